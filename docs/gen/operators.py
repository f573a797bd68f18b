"""Operators: every pool of the registry (summary, formula, when to use it), a live
``globalpool tour``, and the measured speed against timm, formatted from its records."""

from __future__ import annotations

import importlib.util
import json

from _common import ROOT, console, md_table, parse_args, run_cli, write

from globalpool.machine import caps_prefix

DEPENDS: list[str] = []
# A literal list (docs/hooks.py reads it without running the script): the speed records
# this page formats, in this order.
READS = [
    "benchmarks/results/bench-pool-vs-timm-epyc-4.json",
    "benchmarks/results/bench-pool-vs-timm-epyc-avx2-3.json",
    "benchmarks/bench_pool.py",
]

# Advice per registered pool. The build fails when the registry gains a pool that has no
# entry here, so the page cannot silently fall behind the code.
WHEN = {
    "avg": "The default. Every position votes; smooth gradients; the class maps stay "
    "exact CAMs. Best for objects that fill much of the image.",
    "max": "The single strongest position decides: small or off-centre objects, "
    "'is it anywhere?' questions. Gradients reach one position per map, so training is "
    "noisier.",
    "avgmax": "A cheap compromise between avg and max with the same output width.",
    "catavgmax": "Keeps both statistics (2C features, so the Linear after it doubles); "
    "a common choice in fine-tuning heads.",
    "gem": "Image retrieval and fine-grained recognition: a learned p moves between avg "
    "(p=1) and max (p->inf). Needs non-negative inputs (after ReLU).",
    "lse": "A smooth maximum with a fixed sharpness r; weakly supervised localization.",
    "lp": "Power average of |x|; p=2 is the root mean square, stressing strong responses.",
    "mixed": "Lets training choose the avg/max blend per layer (one learned scalar).",
    "attention": "Learned spatial weights: the network decides where to look; adds C+1 "
    "parameters and a softmax over positions.",
    "wildcat": "Class maps for weakly supervised localization (Durand et al. 2017): the "
    "k highest regions are evidence for the class, the k lowest (weight alpha) evidence "
    "against it; k a count or a fraction of the map.",
    "simpool": "Attention with the global average as the query (Psomas et al. 2023): a "
    "drop-in GAP replacement for CNNs and ViTs whose attention maps localize; adds 2C^2 + "
    "2C parameters (query and key projections, LayerNorm).",
    "map": "Multihead attention pooling with one learned query, the pooling head of "
    "ViT-22B and SigLIP (timm's AttentionPoolLatent without its MLP): 4C^2 + 5C "
    "parameters; for transformer tokens as much as for CNN maps.",
    "isqrtcov": "Second-order pooling (Li et al. 2018): how channels vary together, not "
    "only how strong each is; fine-grained recognition. Reduce the channels first "
    "(reduced_channels, 256 by default: 32,896 features); pool-linear heads only (the "
    "output is d(d+1)/2 values, not one per class map).",
    "gwap": "Global weighted average (Qiu 2018): a learned weight map, bounded so every "
    "position keeps a share (weights within a factor e of each other), for localization "
    "from image labels; adds C+1 parameters. A fresh one is GAP.",
    "stats": "Sequences of any length (speech, time series; the x-vector's pooling): "
    "how strong and how variable each channel is, 2C features; pass a mask for padded "
    "batches.",
}


IN_CODE = """\
import torch
from globalpool.pool import create_pool
import globalpool.functional as GF

x = torch.randn(8, 256, 7, 7)
print(create_pool("gem", p=3.0)(x.relu()).shape)
print(create_pool("catavgmax")(x).shape)
print(GF.avg_pool(x).shape)  # the functional form
"""


def main() -> None:
    args = parse_args("operators")
    from globalpool.pool import list_pools, pool_entry

    missing = [name for name in list_pools() if name not in WHEN]
    if missing:
        raise SystemExit(f"docs/gen/operators.py has no advice for pool(s) {missing}")
    rows = []
    for name in list_pools():
        entry = pool_entry(name)
        rows.append(
            [f"`{name}`", f"`{entry.cls.__name__}`", entry.summary,
             f"`{entry.formula}`", WHEN[name]]
        )  # fmt: skip
    write(
        args,
        "registry.md",
        md_table(["name", "class", "what it computes", "formula", "when to use it"], rows)
        + "\n\n`s` runs over the spatial positions, `c` over the channels. Read from "
        "`globalpool.pool.list_pools()` and `pool_entry(name)` when the guide was built.",
    )

    command, output = run_cli(["tour", "--seed", "0"])
    write(args, "tour.md", console(command, output))

    write(args, "speed.md", recorded_speed())

    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(IN_CODE, {})  # the snippet shown on the page, run as shown
    write(
        args,
        "in_code.md",
        f"```python\n{IN_CODE}```\n\nprints\n\n```text\n{printed.getvalue()}```",
    )


def recorded_speed() -> str:
    """Each pool against timm's, case by case, formatted from the ``--against timm``
    records in ``READS`` by the same function as ``bench_pool.py --timm-table``."""
    spec = importlib.util.spec_from_file_location("bench_pool", ROOT / READS[-1])
    bench_pool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_pool)
    parts = [
        "timm's time divided by globalpool's for the pools both have (above 1: globalpool "
        "faster), forward and forward+backward, channels-first and channels-last, at "
        "ResNet-50's last map and at a small one; the best of interleaved rounds, and "
        "Welch's t-test on the log times of the rounds (bold: globalpool slower by the "
        "test, italics: not separated). "
        '`BENCHMARKS.md` (section "Pooling operators") has the other measurements: '
        "the CPU kernels against the plain formula, and `torch.compile`.",
    ]
    for name in READS[:-1]:
        path = ROOT / name
        record = json.loads(path.read_text(encoding="utf-8"))
        prefix = caps_prefix(record.get("cpu_isa_env") or {})
        caps = prefix.strip()
        # Records made before machine_line named the caps say them only in cpu_isa_env.
        capped = caps and "capped" not in record["machine"]
        how = f", instruction set capped by {caps} (an AVX2-only CPU emulated)" if capped else ""
        parts += [
            "",
            f"`{name}`: {record['machine']}{how}; torch {record['torch']}, timm "
            f"{record['timm']}, {record['threads']} threads; {record['date']}.",
            "",
            "```bash",
            prefix + record["command"],
            "```",
            "",
            bench_pool.timm_table(str(path)),
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
