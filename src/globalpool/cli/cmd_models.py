"""``globalpool models``: every architecture with its head, pool, parameters and FLOPs."""

from __future__ import annotations

import argparse
import json

from globalpool.cli.options import Range, add_range_option


def _size(text: str) -> tuple[int, int]:
    """'32' or '64x40' -> (H, W)."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N or HxW with positive sizes; got {text!r}"
        ) from None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes; got {text!r}")
    return size


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the models with parameters (backbone/head) and FLOPs",
        description="Build every registered model (or those named) with the given head and "
        "pool and print its parameters, split into backbone and head, and its FLOPs per "
        "image at the input size (PyTorch FlopCounterMode; a multiply-add is 2 FLOPs).",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="MODEL",
        help="models to show (default: all registered ones; torchvision:NAME and timm:NAME too)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=None,
        help="input size N or HxW, positive integers (default: each model's own)",
    )
    add_range_option(
        parser, "--num-classes", allowed=Range(int, 1), default=10, help="classes (default 10)"
    )
    add_range_option(
        parser, "--in-chans", allowed=Range(int, 1), default=None,
        help="input channels (default: each model's own)",
    )  # fmt: skip
    parser.add_argument("--head", default=None, help="fc, classmap, pool-linear (default: model's)")
    parser.add_argument("--pool", default=None, help="any registered pool (default: model's)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="list the pretrained models shipped in the package (load by name: "
        "globalpool predict --checkpoint NAME ...)",
    )
    parser.set_defaults(func=run)


def _row(name: str, args) -> dict:
    from globalpool.models import count_flops, count_params, create_model
    from globalpool.models.memory import InsufficientMemoryError

    row = {"model": name}
    try:
        model = create_model(
            name,
            args.num_classes,
            head=args.head,
            pool=args.pool,
            in_chans=args.in_chans,
            input_size=args.size,
        )
    except ValueError as err:
        # a wrong --head / --pool / name, or a --size no memory holds: the user's mistake
        if "unknown" in str(err) or isinstance(err, InsufficientMemoryError):
            raise
        return {**row, "error": str(err)}
    params = count_params(model)
    row.update(
        head=model.head_kind,
        pool=model.pool_name,
        input_size=list(model.input_size),
        in_chans=model.in_chans,
        min_input_size=list(model.min_input_size),
        params_total=params["total"],
        params_backbone=params["backbone"],
        params_head=params["head"],
        flops=count_flops(model, model.input_size),
    )
    return row


def _list_pretrained(as_json: bool) -> int:
    from globalpool.pretrained import list_pretrained, pretrained_card

    cards = [pretrained_card(name) for name in list_pretrained()]
    if as_json:
        for card in cards:
            print(json.dumps(card))
        return 0
    if not cards:
        print("no pretrained models are shipped in this installation")
    for c in cards:
        h, w = c["input_size"]
        print(
            f"{c['name']}: {c['model']} {c['head']} head (pool {c['pool'] or '-'}), "
            f"{c['params']:,} parameters, {h}x{w}, {c['dataset']}: test accuracy "
            f"{100 * c['test_acc']:.2f}% on {c['data']}\n  trained by: {c['command']}\n"
            f"  sha256 {c['sha256']}"
        )
    return 0


def run(args) -> int:
    if args.pretrained:
        return _list_pretrained(args.json)
    from globalpool.heads import list_heads
    from globalpool.models import list_models
    from globalpool.pool import list_pools

    if args.head is not None and args.head not in list_heads():
        raise ValueError(f"unknown head {args.head!r}; expected one of: {', '.join(list_heads())}")
    if args.pool is not None and args.pool not in list_pools():
        raise ValueError(f"unknown pool {args.pool!r}; expected one of: {', '.join(list_pools())}")
    from globalpool.models.external import is_external

    names = args.names or list_models()
    unknown = [n for n in names if n not in list_models() and not is_external(n)]
    if unknown:
        raise ValueError(
            f"unknown model {unknown[0]!r}; expected one of: {', '.join(list_models())}, "
            "or torchvision:NAME / timm:NAME"
        )
    rows = [_row(name, args) for name in names]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ("model", "head", "pool", "input", "params", "backbone", "head params", "MFLOPs")
    table = [header]
    # Listing every model, those that cannot run at this size are named below, not shown.
    skipped = [r for r in rows if "error" in r and not args.names]
    for r in rows:
        if "error" in r:
            if not args.names:
                continue
            table.append((r["model"], "-", "-", "-", "-", "-", "-", "-"))
            continue
        table.append(
            (
                r["model"],
                r["head"],
                r["pool"] or "-",
                f"{r['in_chans']}x{r['input_size'][0]}x{r['input_size'][1]}",
                f"{r['params_total']:,}",
                f"{r['params_backbone']:,}",
                f"{r['params_head']:,}",
                f"{r['flops'] / 1e6:,.1f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if j < 4 else c.rjust(w) for j, (c, w) in pairs]  # text left
        print("  ".join(cells).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if "error" in r and args.names:
            print(f"{r['model']}: {r['error']}")
    if skipped:
        print(
            "not shown at this size: " + "; ".join(f"{r['model']} ({r['error']})" for r in skipped)
        )
    return 0
