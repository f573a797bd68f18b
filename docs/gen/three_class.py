"""The 3-class example: the last convolution emits 3 maps, GAP / GMP make them the logits.

Trains two small class-map models on ``shapes`` (circle, square, triangle) with
``globalpool train``, one pooling with the average, one with the max; then, for a few test
images, draws the 3 class maps and checks that pooling them by hand gives the logits.
"""

from __future__ import annotations

import json
import shlex

import torch
from _common import console, figure_link, md_table, parse_args, run_cli, write
from matplotlib.figure import Figure

DEPENDS: list[str] = []


def train_run(args, pool: str) -> tuple[str, str]:
    n_train, epochs = (200, 1) if args.quick else (1200, 10)
    dataset_kwargs = {"n_train": n_train, "n_test": 300}
    argv = [
        "train", "--model", "fastnet", "--model-kwargs", '{"widths": [32, 64]}',
        "--head", "classmap", "--pool", pool,
        "--dataset", "shapes", "--dataset-kwargs", json.dumps(dataset_kwargs),
        "--epochs", str(epochs), "--batch-size", "64", "--seed", "0",
        "--quiet", "--no-tensorboard", "--out", f"runs/three-class-{pool}",
    ]  # fmt: skip
    command, output = run_cli(argv, cwd=args.out)
    return command, output


def pooled_by_hand(maps: torch.Tensor, pool: str) -> torch.Tensor:
    """(N, K, H, W) -> (N, K): the plain mean or max over positions, no globalpool code."""
    flat = maps.flatten(2)
    return flat.mean(-1) if pool == "avg" else flat.amax(-1)


def main() -> None:
    args = parse_args("three_class")
    import globalpool
    from globalpool.data import load_dataset, normalize

    sections = {}
    for pool, label in (("avg", "GAP"), ("max", "GMP")):
        command, output = train_run(args, pool)
        run_dir = args.out / "runs" / f"three-class-{pool}"
        summary = json.loads((run_dir / "summary.json").read_text())
        model = globalpool.load(run_dir)
        cfg = summary["config"]
        data = load_dataset(cfg["dataset"], **cfg["dataset_kwargs"])
        # one image per class, then one more
        labels = data.test.labels
        index = [int((labels == k).nonzero()[0]) for k in range(len(data.classes))]
        index += [i for i in range(len(labels)) if i not in index][:1]
        images = data.test.images[index]
        x = normalize(images, model.mean, model.std)
        with torch.no_grad():
            logits, maps = model.head.forward_with_maps(model.forward_features(x))
            full = model(x)
        by_hand = pooled_by_hand(maps, pool)
        # the whole claim of the page: the pooled maps ARE the logits, nothing else follows
        torch.testing.assert_close(by_hand, logits)
        torch.testing.assert_close(full, logits)
        probs = full.softmax(-1)

        k = len(data.classes)
        fig = Figure(figsize=(2.0 * (k + 1), 2.1 * len(index)), layout="constrained")
        axes = fig.subplots(len(index), k + 1, squeeze=False)
        lo, hi = float(maps.min()), float(maps.max())
        for row, i in enumerate(index):
            axes[row, 0].imshow(images[row].permute(1, 2, 0).numpy())
            axes[row, 0].set_title(f"test image: {data.classes[int(labels[i])]}", fontsize=9)
            for c in range(k):
                ax = axes[row, c + 1]
                im = ax.imshow(maps[row, c].numpy(), cmap="viridis", vmin=lo, vmax=hi)
                stat = "mean" if pool == "avg" else "max"
                ax.set_title(
                    f"{data.classes[c]} map\n{stat} = logit = {float(logits[row, c]):.2f}",
                    fontsize=9,
                )
            for ax in axes[row]:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.colorbar(im, ax=axes[:, 1:], shrink=0.6, label="class-map value")
        fig.suptitle(f"{label} ({pool} pool): the 3 maps of the last convolution", fontsize=11)
        fig.savefig(args.out / f"maps_{pool}.png", dpi=80)

        h, w = maps.shape[-2:]
        rows = []
        for row, i in enumerate(index):
            pred = int(full[row].argmax())
            cells = [data.classes[int(labels[i])]]
            cells += [f"{float(by_hand[row, c]):.3f}" for c in range(k)]
            cells += [f"{float(full[row, c]):.3f}" for c in range(k)]
            cells += [f"{data.classes[pred]} ({float(probs[row, pred]):.0%})"]
            rows.append(cells)
        header = ["true class"]
        header += [f"{c}: {pool} of map" for c in data.classes]
        header += [f"{c}: model logit" for c in data.classes]
        header += ["prediction"]
        table = md_table(header, rows, "l" + "r" * (2 * k) + "l")
        head_params = sum(p.numel() for p in model.head.parameters())
        text = [
            f"**{label}.** Trained with:",
            "",
            console(command, output, max_lines=3),
            "",
            f"Test accuracy {summary['test_acc']:.1%} after {summary['epochs']} epochs "
            f"(best validation accuracy {summary['best_val_acc']:.1%}). The last "
            f"convolution is a 1x1 conv from {model.num_features} channels to {k} maps of "
            f"{h}x{w}; with its bias that is the whole head: {head_params} parameters "
            f"({model.num_features} x {k} + {k}).",
            "",
            f"![The {k} class maps of {label} for {len(index)} test images]"
            f"({figure_link(args, f'maps_{pool}.png')})",
            "",
            f"The {pool} of each map, computed here with plain `torch` "
            f"(`maps.flatten(2).{'mean' if pool == 'avg' else 'amax'}(-1)`), next to the "
            "logits the model returns; the docs build checks that they are equal "
            "(`torch.testing.assert_close`):",
            "",
            table,
        ]
        sections[pool] = "\n".join(text)
        write(args, f"{pool}.md", sections[pool])
    write(args, "train_command.md", "```bash\n" + shlex.join(["globalpool", "train"]) + "\n```")


if __name__ == "__main__":
    main()
