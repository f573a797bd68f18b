"""Why global pooling: parameter tables of LeNet-5 and AlexNet, FC head versus pooling
heads, from ``globalpool models --json``, and a bar chart of where the parameters sit."""

from __future__ import annotations

import json

from _common import figure_link, md_table, parse_args, run_cli, write
from matplotlib.figure import Figure

DEPENDS: list[str] = []

MODELS = {"lenet5": 10, "alexnet": 1000}  # model -> classes of its classic task
HEADS = ("fc", "classmap", "pool-linear")


def main() -> None:
    args = parse_args("why")
    rows: dict[tuple[str, str], dict] = {}
    commands = []
    for name, classes in MODELS.items():
        for head in HEADS:
            argv = ["models", name, "--num-classes", str(classes), "--head", head, "--json"]
            if head != "fc":
                argv += ["--pool", "avg"]
            command, output = run_cli(argv)
            commands.append(command)
            rows[name, head] = json.loads(output.strip().splitlines()[-1])

    table = []
    for (name, head), r in rows.items():
        table.append(
            [
                f"`{name}`",
                f"{head}" + (f" ({r['pool']})" if r["pool"] else ""),
                "{}x{}x{}".format(r["in_chans"], *r["input_size"]),
                MODELS[name],
                f"{r['params_total']:,}",
                f"{r['params_backbone']:,}",
                f"{r['params_head']:,}",
                f"{r['params_head'] / r['params_total']:.1%}",
                f"{r['flops'] / 1e6:,.1f}",
            ]
        )
    header = ["model", "head", "input", "classes", "parameters", "backbone", "head",
              "head share", "MFLOPs"]  # fmt: skip
    text = [md_table(header, table, "lllrrrrrr"), "", "Produced by:", "", "```bash"]
    text += commands
    text += ["```"]
    write(args, "params_table.md", "\n".join(text))

    # the sentences of the page that quote these numbers
    a_fc, a_gap = rows["alexnet", "fc"], rows["alexnet", "classmap"]
    l_fc, l_gap = rows["lenet5", "fc"], rows["lenet5", "classmap"]
    write(
        args,
        "alexnet_sentence.md",
        f"With its FC head, AlexNet has **{a_fc['params_total']:,}** parameters for 1000 "
        f"classes, and **{a_fc['params_head']:,}** of them "
        f"({a_fc['params_head'] / a_fc['params_total']:.1%}) sit in the three "
        f"fully-connected layers; its five convolutions, which do all the seeing, hold "
        f"{a_fc['params_backbone']:,}. A class-map head with global average pooling keeps "
        f"the convolutions and replaces the FC layers by one 1x1 convolution of "
        f"{a_gap['params_head']:,} parameters: {a_gap['params_total']:,} in all, "
        f"{a_fc['params_total'] / a_gap['params_total']:.1f}x fewer. LeNet-5 tells the "
        f"same story at a small scale: {l_fc['params_head']:,} of its "
        f"{l_fc['params_total']:,} parameters are in the FC head, against "
        f"{l_gap['params_head']:,} for the class-map head.",
    )

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, MODELS, strict=True):
        labels = list(HEADS)
        backbone = [rows[name, h]["params_backbone"] for h in HEADS]
        head = [rows[name, h]["params_head"] for h in HEADS]
        ax.bar(labels, backbone, label="backbone (convolutions)", color="#4c72b0")
        ax.bar(labels, head, bottom=backbone, label="head", color="#dd8452")
        ax.set_title(f"{name}, {MODELS[name]} classes")
        ax.set_ylabel("parameters")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axes[0].legend(fontsize=8)
    fig.savefig(args.out / "params.png", dpi=90)
    write(
        args,
        "params_figure.md",
        f"![Parameters of the backbone and the head, per head kind]"
        f"({figure_link(args, 'params.png')})",
    )


if __name__ == "__main__":
    main()
