"""``globalpool tour``: every pooling operator applied to one small random class-map tensor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from globalpool.cli.options import Range, add_range_option, in_range

if TYPE_CHECKING:
    import torch


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tour",
        help="a quick tour of the pooling operators on a random tensor",
        description=(
            "Build a random (N, K, H, W) class-map tensor and print what every global "
            "pooling operator makes of it: output shape and values."
        ),
    )
    add_range_option(
        parser, "--seed", allowed=Range(int, 0), default=0, help="random seed (default 0)"
    )
    parser.add_argument(
        "--shape",
        type=in_range(Range(int, 1)),
        nargs=4,
        default=(2, 3, 4, 4),
        metavar=("N", "K", "H", "W"),
        help="input shape, positive integers (default 2 3 4 4)",
    )
    parser.set_defaults(func=run)


def _row(values: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:+.3f}" for v in values.tolist()) + "]"


def run(args) -> int:
    import torch

    from globalpool.pool import AttentionPool, create_pool, list_pools

    n, k, h, w = args.shape
    generator = torch.Generator().manual_seed(args.seed)
    maps = torch.randn(n, k, h, w, generator=generator)
    print(f"class maps x: shape {tuple(maps.shape)} (N, K, H, W), seed {args.seed}")
    print("sample 0, class 0:")
    for line in maps[0, 0].tolist():
        print("   " + " ".join(f"{v:+.2f}" for v in line))
    print()
    width = max(len(name) for name in list_pools())
    for name in list_pools():
        pool = create_pool(name, channels=k)
        learned_scores = isinstance(pool, AttentionPool)  # attention, gwap
        if learned_scores:  # a fresh one equals avg; show a trained-like one
            with torch.no_grad():
                pool.weight.copy_(torch.linspace(-1.0, 1.0, k))
        with torch.no_grad():
            y = pool(maps)
        note = "  (scoring weights linspace(-1, 1, K))" if learned_scores else ""
        print(f"{name:<{width}}  -> {tuple(y.shape)}  sample 0: {_row(y[0])}{note}")
    print()
    print("catavgmax doubles the features (avg then max); avg <= lse <= max per class;")
    print("`globalpool pools` lists the formulas.")
    return 0
