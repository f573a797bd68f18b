"""Speed of every global pooling operator against its naive PyTorch expression.

For each head-like shape, each operator and both memory layouts (NCHW contiguous and
NCHW in ``torch.channels_last`` memory, i.e. (N, H, W, C) data) it times the forward
pass (under no_grad) and forward+backward (grads of x and of the pool's parameters) of:
  - eager:    the globalpool module as a training run uses it (on the CPU: the CPU
              kernel where ``globalpool.pool.dispatch`` picks one, else the formula),
  - plain:    the same module with the CPU kernels switched off, i.e. the plain-torch
              formula alone (what every other device runs): the evidence for keeping
              each kernel,
  - compiled: the same module with ``compiled=True`` (torch.compile / inductor, where
              dispatch picks it),
  - naive:    the plain PyTorch expression (adaptive_avg_pool2d, adaptive_max_pool2d,
              x.clamp(min=eps).pow(p).mean((2,3)).pow(1/p), two passes + cat, ...).
Effective GB/s = bytes of x / forward time (forward) and 2 * bytes of x (read x, write
dx) / time (forward+backward); the machine's read bandwidth is a sum over a 512 MiB
buffer, measured in the same run. The variants of a row are timed in turns, round by
round, and each keeps its fastest round (the machine may be shared: a slow spell then
hits every column alike, and the minimum is the least disturbed run).

    python benchmarks/bench_pool.py            # full run, markdown table on stdout
    python benchmarks/bench_pool.py --quick    # fewer repeats, no compiled column
    python benchmarks/bench_pool.py --against timm --json R.json   # ratio to timm's pools
    python benchmarks/bench_pool.py --against timm --keep-freed-memory --repeats 30 --json R.json
    python benchmarks/bench_pool.py --call-costs --keep-freed-memory --json R.json  # avg's layers
    python benchmarks/bench_pool.py --spread-table R1.json R2.json   # how much rounds swing
    python benchmarks/bench_pool.py --device cuda --json R.json      # on a GPU (no plain column)

On a GPU (``--device cuda``) every timing is bracketed by ``torch.cuda.synchronize()``,
the read bandwidth is that of GPU memory, and there is no plain column (the CPU kernels
are CPU-only: eager is the formula there).

``--against timm`` times globalpool's module and timm's (``SelectAdaptivePool2d`` for
avg, max, avgmax, catavgmax; ``LsePlus2d`` with a fixed r = 10 for lse; ``SimPool2d``
for simpool, one head; ``AttentionPoolLatent`` without its MLP for map, 8 heads; the
same weights in both) side by side on
ResNet-50's last map (64x2048x7x7) and a small one (256x64x8x8), in NCHW and NHWC data
(timm's ``input_fmt="NHWC"``, globalpool's ``data_format="channels_last"``), forward and
forward+backward, interleaved, best of the rounds; it checks that both give the same
values and prints timm's time / globalpool's (above 1: globalpool faster), with the
verdict of Welch's t-test on the log times of the rounds (``speed_verdict``). timm is a
benchmark dependency only. With ``--shape``, that shape alone: a tiny one (8x64x2x2)
measures what each call costs besides its arithmetic.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as TF

import globalpool.pool as gp
from globalpool.machine import isa_caps, machine_line
from globalpool.pool import dispatch

SHAPES = [(64, 512, 14, 14), (256, 2048, 7, 7)]
OPS = [
    "avg", "max", "avgmax", "catavgmax", "gem", "lse", "lp", "mixed", "attention", "wildcat",
    "simpool", "map", "isqrtcov", "stats", "gwap",
]  # fmt: skip


def naive(name: str, pool):
    """The plain PyTorch expression of each pool, on (N, C, H, W) input."""
    if name == "avg":
        return lambda x: TF.adaptive_avg_pool2d(x, 1).flatten(1)
    if name == "max":
        return lambda x: TF.adaptive_max_pool2d(x, 1).flatten(1)
    if name == "avgmax":
        return lambda x: 0.5 * (x.mean((2, 3)) + x.amax((2, 3)))
    if name == "catavgmax":  # two passes plus cat
        return lambda x: torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
    if name == "gem":
        return lambda x: x.clamp(min=pool.eps).pow(pool.p).mean((2, 3)).pow(1.0 / pool.p)
    if name == "lse":
        r = pool.r
        return lambda x: (torch.logsumexp(r * x.flatten(2), -1) - math.log(x[0, 0].numel())) / r
    if name == "lp":
        p = pool.p
        return lambda x: x.abs().pow(p).mean((2, 3)).pow(1.0 / p)
    if name == "mixed":
        return lambda x: pool.alpha * x.amax((2, 3)) + (1 - pool.alpha) * x.mean((2, 3))
    if name == "attention":

        def attention(x):
            score = torch.einsum("nchw,c->nhw", x, pool.weight).flatten(1).softmax(-1)
            return torch.einsum("nchw,nhw->nc", x, score.view(x.shape[0], *x.shape[2:]))

        return attention
    if name == "gwap":  # as written in the paper: exp(sigmoid(score)), normalised, weighted sum

        def gwap(x):
            m = torch.sigmoid(torch.einsum("nchw,c->nhw", x, pool.weight) + pool.bias).exp()
            return torch.einsum("nchw,nhw->nc", x, m / m.sum((1, 2), keepdim=True))

        return gwap
    if name == "wildcat":  # a full sort of each map, as WILDCAT's own code does

        def wildcat(x):
            ranked = x.flatten(2).sort(-1, descending=True).values
            top = ranked[..., : pool.k_max].mean(-1)
            return top + pool.alpha * ranked[..., -pool.k_min :].mean(-1)

        return wildcat
    if name == "simpool":  # one head, as the paper's code: layer norm, two Linears, softmax

        def simpool(x):
            seq = x.flatten(2).transpose(1, 2)  # (N, L, C)
            z = TF.layer_norm(seq, seq.shape[-1:], pool.norm_weight, pool.norm_bias, 1e-6)
            q = TF.linear(seq.mean(1), pool.query_weight)
            k = TF.linear(z, pool.key_weight)
            attn = (torch.einsum("nc,nlc->nl", q, k) / math.sqrt(seq.shape[-1])).softmax(-1)
            return torch.einsum("nl,nlc->nc", attn, z)

        return simpool
    if name == "map":  # torch's own multihead attention, the latent as its one query
        mha = torch.nn.MultiheadAttention(pool.channels, pool.num_heads, batch_first=True)
        mha = mha.to(pool.latent.device)
        mha.in_proj_weight, mha.out_proj.weight = pool.in_weight, pool.out_weight
        mha.in_proj_bias, mha.out_proj.bias = pool.in_bias, pool.out_bias

        def multihead(x):
            seq = x.flatten(2).transpose(1, 2)
            query = pool.latent.expand(x.shape[0], 1, -1)
            return mha(query, seq, seq, need_weights=False)[0][:, 0]

        return multihead
    if name == "isqrtcov":  # the paper's equations as printed: Ibar as an M x M matrix

        def isqrtcov(x):
            norm = pool.reduce_norm
            x = TF.conv2d(x, pool.reduce_weight[..., None, None])
            x = TF.relu(TF.batch_norm(x, None, None, norm.weight, norm.bias, training=True))
            n, d, m = x.shape[0], x.shape[1], x.shape[2] * x.shape[3]
            flat = x.reshape(n, d, m)
            ibar = (torch.eye(m, device=x.device) - 1.0 / m) / m
            sigma = flat @ ibar @ flat.transpose(1, 2)
            trace = sigma.diagonal(dim1=1, dim2=2).sum(1).view(n, 1, 1)
            eye = torch.eye(d, device=x.device).expand(n, d, d)
            y, z = sigma / trace, eye
            for _ in range(pool.iterations):
                step = 0.5 * (3.0 * eye - z @ y)
                y, z = y @ step, step @ z
            rows, cols = torch.triu_indices(d, d)
            return (y * trace.sqrt())[:, rows, cols]

        return isqrtcov
    if name == "stats":  # torch's own variance: two passes and a cat
        return lambda x: torch.cat(
            [x.mean((2, 3)), x.var((2, 3), unbiased=False).clamp(min=pool.eps).sqrt()], 1
        )
    raise ValueError(name)


def _no_sync() -> None:
    pass


# Waits for the GPU's queued work, so that a wall-clock interval covers it: set to
# torch.cuda.synchronize by --device cuda, a no-op on the CPU.
sync = _no_sync


def best_ms(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _setting(pool, how: str):
    """Put ``pool`` in the state of variant ``how``: compiled or not, CPU kernels or not."""
    if isinstance(pool, gp.GlobalPoolBase):
        pool.compiled = how == "compiled"
    dispatch.KERNELS = {} if how == "plain" else CPU_KERNELS


CPU_KERNELS = dispatch.KERNELS


def time_rounds(variants: dict, x, params, repeats: int) -> dict[str, tuple[list, list]]:
    """{name: (forward seconds per round under no_grad, forward+backward seconds per
    round)} for each ``(fn, how)``: ``repeats`` rounds each, after two warm-up rounds.

    The backward pass takes the gradients of x and of ``params`` (a list shared by every
    variant, or a dict of one list per variant name, for variants with parameters of
    their own). The variants are timed in turns, round by round, so a slow spell of this
    shared host hits all of them alike instead of one column, and in the reverse order
    every other round, so that none always runs first (after another's writes).
    """
    xr = x.detach().requires_grad_()
    runs = {}
    for name, (fn, how) in variants.items():
        _setting(fn, how)
        grad_out = torch.ones_like(fn(x).detach())
        own = params[name] if isinstance(params, dict) else params
        inputs = [xr, *[p for p in own if p.requires_grad]]

        def fwd(fn=fn):
            with torch.no_grad():
                fn(x)

        def fwd_bwd(fn=fn, grad_out=grad_out, inputs=inputs):
            torch.autograd.grad(fn(xr), inputs, grad_out)

        runs[name] = (fn, how, fwd, fwd_bwd)
    rounds = {name: ([], []) for name in runs}
    for i in range(2):  # all forward rounds first: a backward's writes evict x from cache
        for round_ in range(repeats + 2):  # two warm-up rounds (compilation, allocator)
            # every other round in reverse order: no variant always runs first
            order = list(runs.items()) if round_ % 2 == 0 else list(runs.items())[::-1]
            for name, (fn, how, *steps) in order:
                _setting(fn, how)
                sync()
                start = time.perf_counter()
                steps[i]()
                sync()
                if round_ >= 2:
                    rounds[name][i].append(time.perf_counter() - start)
    for fn, *_ in runs.values():
        _setting(fn, "eager")
    return rounds


def time_variants(variants: dict, x, params, repeats: int) -> dict[str, tuple[float, float]]:
    """{name: (forward ms under no_grad, forward+backward ms)} for each ``(fn, how)``:
    the fastest of the rounds of :func:`time_rounds` (the least disturbed run)."""
    rounds = time_rounds(variants, x, params, repeats)
    return {name: (min(fwd) * 1e3, min(fb) * 1e3) for name, (fwd, fb) in rounds.items()}


def speed_verdict(ours_s: list[float], theirs_s: list[float]) -> dict:
    """Whether globalpool's rounds are faster than timm's: the project's one rule
    (``analysis.stats.verdict``, Welch's t-test, p < ALPHA) on the log times, so that
    the test compares ratios and a rare slow round weighs less. ``holds``: globalpool
    faster; ``reversed``: slower; ``not separated``."""
    from globalpool.analysis.stats import verdict

    result = verdict([math.log(t) for t in theirs_s], [math.log(t) for t in ours_s],
                     a_higher_claimed=True)  # fmt: skip
    return {"verdict": result["verdict"], "p": result["p"]}


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (``mallopt``): blocks up to 32 MiB
    come from the heap instead of fresh ``mmap`` pages, and freed memory is not handed
    back to the system below 1 GiB. Without it a round whose 4 MiB gradient happens to get
    new pages pays a page fault per 4 KiB page, about 1,000, on a 0.2 ms forward+backward
    (the small map's forward+backward rounds swung up to 3.1x between median and fastest,
    1.4x with it: BENCHMARKS.md, ``--spread-table``); with it both sides of a comparison
    reuse memory, and the rounds time the operators. False where the C library has no
    mallopt or refuses the values (not glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def forward_ops(fn, x) -> list[str]:
    """The ATen ops that one forward call of ``fn`` (under no_grad) runs at its top level,
    in order: what a profile shows of whether two pools end in the same kernels."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(x)
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    nested = {
        id(e) for e in events if e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::")
    }
    return [e.name.removeprefix("aten::") for e in events if id(e) not in nested]


_NODE = "autograd::engine::evaluate_function: "


def backward_nodes(fn, x) -> list[str]:
    """The autograd nodes that one backward pass through ``fn`` (the gradient of x) runs,
    in order, profiled; AccumulateGrad left out: what a profile shows of whether two
    pools' backwards end in the same kernels."""
    from torch.profiler import ProfilerActivity, profile

    xr = x.detach().requires_grad_()
    y = fn(xr)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch.autograd.grad(y, xr, torch.ones_like(y))
    names = [e.name.removeprefix(_NODE) for e in prof.events() if e.name.startswith(_NODE)]
    return [n for n in names if "AccumulateGrad" not in n]


TIMM_OPS = ("avg", "max", "avgmax", "catavgmax", "lse", "simpool", "map")
TIMM_SHAPES = [(64, 2048, 7, 7), (256, 64, 8, 8)]
MAP_HEADS = 8  # timm's AttentionPoolLatent default (ViT-style heads)


def timm_pool(name: str, layout: str, ours):
    """timm's counterpart of globalpool's pool ``ours`` on ``layout`` input, holding the
    same weights: ``(callable, timm module)``. timm's NCHW-only pools get the permute a
    user would write; ``AttentionPoolLatent`` (tokens (N, L, C)) gets the flatten, and
    its MLP block is dropped, as globalpool's ``map`` is the attention alone."""
    from timm.layers import AttentionPoolLatent, SelectAdaptivePool2d, SimPool2d
    from timm.layers.other_pool import LsePlus2d

    if name in ("avg", "max", "avgmax", "catavgmax"):
        module = SelectAdaptivePool2d(pool_type=name, flatten=True, input_fmt=layout)
        return module, module
    if name == "lse":
        module = LsePlus2d(r=10.0, r_learnable=False, flatten=True)
    elif name == "simpool":
        module = SimPool2d(ours.channels, num_heads=ours.num_heads).to(ours.query_weight.dtype)
        module.norm.eps = 1e-6  # globalpool's layer-norm epsilon (timm's default 1e-5)
        with torch.no_grad():
            module.q.weight.copy_(ours.query_weight)
            module.k.weight.copy_(ours.key_weight)
            module.norm.weight.copy_(ours.norm_weight)
            module.norm.bias.copy_(ours.norm_bias)
    elif name == "map":
        c = ours.channels
        module = AttentionPoolLatent(c, num_heads=ours.num_heads).to(ours.latent.dtype)
        module.mlp = None
        with torch.no_grad():
            module.latent.copy_(ours.latent.view(1, 1, c))
            module.q.weight.copy_(ours.in_weight[:c])
            module.q.bias.copy_(ours.in_bias[:c])
            module.kv.weight.copy_(ours.in_weight[c:])
            module.kv.bias.copy_(ours.in_bias[c:])
            module.proj.weight.copy_(ours.out_weight)
            module.proj.bias.copy_(ours.out_bias)
        if layout == "NHWC":
            return (lambda t: module(t.flatten(1, 2))), module
        return (lambda t: module(t.flatten(2).transpose(1, 2))), module
    else:
        raise ValueError(name)
    if layout == "NHWC":
        return (lambda t: module(t.permute(0, 3, 1, 2))), module
    return module, module


def _record(**fields) -> dict:
    """A JSON record of this run: the command, date, machine, instruction-set caps, torch
    and threads, then ``fields``."""
    return {"command": "python benchmarks/bench_pool.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"), "machine": machine_line(),
            "cpu_isa_env": isa_caps(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), **fields}  # fmt: skip


def _write_record(path: str, record: dict) -> None:
    """Write ``record`` to ``path`` as JSON (NaN as null), whole or not at all."""
    from globalpool.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1).replace("NaN", "null") + "\n")


def call_costs(repeats: int, json_path: str | None, shape=(256, 64, 8, 8)) -> int:
    """Where the time of avg's channels-last call goes, beside timm's: the bare reduction
    of x over its spatial dims, the same after the flat (N, L, C) view globalpool reduces,
    globalpool's functional form (input checks, view, dispatch), its module, and timm's
    ``SelectAdaptivePool2d``; forward and forward+backward, interleaved rounds. The
    difference between two lines is what one layer of the call costs."""
    from globalpool.models.vision_compat import import_timm
    from globalpool.pool import functional as F

    import_timm()
    n, c, h, w = shape
    x = torch.randn(*shape).permute(0, 2, 3, 1).contiguous()
    ours = gp.create_pool("avg", data_format="channels_last")
    theirs, _ = timm_pool("avg", "NHWC", ours)
    variants = {
        "x.mean((1, 2))": (lambda t: t.mean((1, 2)), "eager"),
        "x.reshape(N, H*W, C).mean(1)": (lambda t: t.reshape(n, h * w, c).mean(1), "eager"),
        "functional.avg_pool": (lambda t: F.avg_pool(t, data_format="channels_last"), "eager"),
        "GlobalAvgPool module": (ours, "eager"),
        "timm SelectAdaptivePool2d": (theirs, "eager"),
    }
    rounds = time_rounds(variants, x, [], repeats)
    rows = [
        {"call": name, "fwd_rounds_ms": [t * 1e3 for t in fwd],
         "fb_rounds_ms": [t * 1e3 for t in fb]}
        for name, (fwd, fb) in rounds.items()
    ]  # fmt: skip
    record = _record(shape=list(shape), repeats=repeats, rows=rows)
    if json_path:
        _write_record(json_path, record)
    print(call_costs_table(record))
    return 0


def call_costs_table(record: dict) -> str:
    """A :func:`call_costs` record as a table: each call's fastest and median round, µs."""
    import statistics

    n, c, h, w = record["shape"]
    lines = [f"| avg, {n}x{h}x{w}x{c} channels-last input | fwd fastest µs | fwd median µs "
             "| f+b fastest µs | f+b median µs |", "|:--|--:|--:|--:|--:|"]  # fmt: skip
    for row in record["rows"]:
        fwd, fb = row["fwd_rounds_ms"], row["fb_rounds_ms"]
        lines.append(f"| `{row['call']}` | {min(fwd) * 1e3:.1f} | "
                     f"{statistics.median(fwd) * 1e3:.1f} | {min(fb) * 1e3:.1f} | "
                     f"{statistics.median(fb) * 1e3:.1f} |")  # fmt: skip
    return "\n".join(lines)


def against_timm(
    repeats: int, json_path: str | None, shapes=TIMM_SHAPES, kept_memory: bool = False
) -> int:
    """globalpool's pools against timm's, case by case (see the module docstring);
    ``kept_memory``: whether :func:`keep_freed_memory` is in force (recorded)."""
    from globalpool.models.vision_compat import import_timm

    timm = import_timm()

    print(f"bench_pool --against timm: torch {torch.__version__}, timm {timm.__version__}, "
          f"{torch.get_num_threads()} threads, {machine_line()}"
          + (", malloc keeps freed memory" if kept_memory else ""))  # fmt: skip
    print("| shape | op | layout | fwd gp ms | fwd timm ms | fwd timm/gp | f+b gp ms "
          "| f+b timm ms | f+b timm/gp |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for shape in shapes:
        base = torch.randn(*shape)
        for layout in ("NCHW", "NHWC"):
            x = base if layout == "NCHW" else base.permute(0, 2, 3, 1).contiguous()
            fmt = "channels_first" if layout == "NCHW" else "channels_last"
            for name in TIMM_OPS:
                torch.manual_seed(0)
                kw = {
                    "lse": {"r": 10.0, "learn_r": False},
                    "simpool": {"channels": shape[1]},
                    "map": {"channels": shape[1], "num_heads": MAP_HEADS},
                }.get(name, {})
                ours = gp.create_pool(name, data_format=fmt, **kw)
                theirs, module = timm_pool(name, layout, ours)
                # the attention pools sum over C in another order (reassociated): 1e-4
                tol = 1e-4 if name in ("simpool", "map") else 1e-5
                with torch.no_grad():
                    torch.testing.assert_close(ours(x), theirs(x), rtol=tol, atol=tol)
                params = {"gp": list(ours.parameters()), "timm": list(module.parameters())}
                rounds = time_rounds({"gp": (ours, "eager"), "timm": (theirs, "eager")}, x,
                                     params, repeats)  # fmt: skip
                (fwd_gp, fb_gp), (fwd_timm, fb_timm) = rounds["gp"], rounds["timm"]
                fg, bg, ft, bt = (min(r) * 1e3 for r in (fwd_gp, fb_gp, fwd_timm, fb_timm))
                fwd_test, fb_test = speed_verdict(fwd_gp, fwd_timm), speed_verdict(fb_gp, fb_timm)
                rows.append(
                    {
                        "shape": list(shape),
                        "op": name,
                        "layout": layout,
                        "fwd_gp_ms": fg,
                        "fwd_timm_ms": ft,
                        "fb_gp_ms": bg,
                        "fb_timm_ms": bt,
                        "fwd_ratio": ft / fg,
                        "fb_ratio": bt / bg,
                        "fwd_verdict": fwd_test["verdict"],
                        "fwd_p": fwd_test["p"],
                        "fb_verdict": fb_test["verdict"],
                        "fb_p": fb_test["p"],
                        "rounds_ms": {
                            key: [t * 1e3 for t in r]
                            for key, r in (
                                ("fwd_gp", fwd_gp),
                                ("fwd_timm", fwd_timm),
                                ("fb_gp", fb_gp),
                                ("fb_timm", fb_timm),
                            )
                        },
                        "fwd_ops_gp": forward_ops(ours, x),
                        "fwd_ops_timm": forward_ops(theirs, x),
                        "bwd_nodes_gp": backward_nodes(ours, x),
                        "bwd_nodes_timm": backward_nodes(theirs, x),
                    }
                )
                print(f"| {'x'.join(map(str, shape))} | {name} | {layout} | {fg:.3f} | "
                      f"{ft:.3f} | {ft / fg:.2f} ({fwd_test['verdict']}) | {bg:.3f} | "
                      f"{bt:.3f} | {bt / bg:.2f} ({fb_test['verdict']}) |", flush=True)  # fmt: skip
    if json_path:
        record = _record(timm=timm.__version__, repeats=repeats,
                         malloc_keeps_freed_memory=kept_memory, rows=rows)  # fmt: skip
        _write_record(json_path, record)
    behind = [f"{r['op']} {r['layout']} {step} {'x'.join(map(str, r['shape']))}"
              for r in rows for step in ("fwd", "fb") if _behind(r, step)]  # fmt: skip
    print(
        f"\n{len(rows) * 2 - len(behind)} of {len(rows) * 2} cases not behind timm by "
        f"the test; behind: {', '.join(behind) or 'none'}"
    )
    return 0


# How a cell of timm_table shows the test of its case (records with rounds).
_VERDICT_MARK = {"holds": "{}", "not separated": "_{}_", "reversed": "**{}**"}


def _behind(row: dict, step: str) -> bool:
    """Whether ``step`` of a case is behind timm's: by the test where the record has one
    (separated, slower), else by the ratio of the fastest rounds (below 1.0)."""
    if f"{step}_verdict" in row:
        return row[f"{step}_verdict"] == "reversed"
    return row[f"{step}_ratio"] < 1.0


def timm_table(path: str, times: bool = False) -> str:
    """The markdown table of an ``--against timm`` record: timm's time / globalpool's per
    case (fastest rounds), or with ``times`` each case's two times in microseconds.

    A record with each case's rounds (since 2026-12-07, afternoon) also marks the test of
    each (:func:`speed_verdict`): bold where globalpool is slower, italics where the test
    does not separate the two, plain where globalpool is faster; an older record bolds
    the ratios below 1.0.
    """
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    rows = record["rows"]
    tested = "fwd_verdict" in rows[0]
    cases = [(lay, step) for lay in ("NCHW", "NHWC") for step in ("fwd", "fb")]
    names = {"fwd": "fwd", "fb": "f+b"}
    if times:
        head = [f"{lay} {names[step]} gp / timm µs" for lay, step in cases]
    else:
        head = [f"{lay} {names[step]}" for lay, step in cases]
    lines = ["| shape | op | " + " | ".join(head) + " |", "|:--|:--|" + "--:|" * len(cases)]
    keys = dict.fromkeys((tuple(r["shape"]), r["op"]) for r in rows)
    by_case = {(tuple(r["shape"]), r["op"], r["layout"]): r for r in rows}
    below = 0
    verdicts = {"holds": 0, "not separated": 0, "reversed": 0}
    for shape, op in keys:
        cells = []
        for lay, step in cases:
            row = by_case[shape, op, lay]
            ratio = row[f"{step}_ratio"]
            below += ratio < 1.0
            if tested:
                verdicts[row[f"{step}_verdict"]] += 1
            if times:
                gp_us, timm_us = row[f"{step}_gp_ms"] * 1e3, row[f"{step}_timm_ms"] * 1e3
                cells.append(f"{gp_us:.1f} / {timm_us:.1f}")
            elif tested:
                cells.append(_VERDICT_MARK[row[f"{step}_verdict"]].format(f"{ratio:.2f}"))
            else:
                cells.append(f"**{ratio:.2f}**" if ratio < 1.0 else f"{ratio:.2f}")
        lines.append(f"| {'x'.join(map(str, shape))} | {op} | " + " | ".join(cells) + " |")
    total = len(keys) * len(cases)
    lines.append(f"\n{total - below} of {total} cases at or above 1.0.")
    if tested:
        lines[-1] += (
            f" Welch's t-test on the log times of each case's {record['repeats']} rounds "
            f"(p < 0.05): globalpool faster in {verdicts['holds']}, slower in "
            f"{verdicts['reversed']} (bold), not separated in {verdicts['not separated']} "
            "(italics)."
        )
    if not times:
        lines += _profiled_behind(
            rows, "fwd", "fwd_ops", "The ATen ops of each forward behind timm's (profiled, "
            "top level; same kernels: the same computing ops, views aside):")  # fmt: skip
        lines += _profiled_behind(
            rows, "fb", "bwd_nodes", "The autograd nodes of each backward behind timm's "
            "(profiled; same kernels: the same nodes, view nodes aside):")  # fmt: skip
    return "\n".join(lines)


def _profiled_behind(rows: list[dict], step: str, key: str, caption: str) -> list[str]:
    """Lines of the table of the cases whose ``step`` ("fwd" or "fb") is behind timm's
    (:func:`_behind`), with the profiled ``<key>_gp`` / ``<key>_timm`` lists of each and
    whether they run the same kernels (:func:`same_kernels`); none when no such case or
    no profile."""
    behind = [r for r in rows if _behind(r, step) and f"{key}_gp" in r]
    if not behind:
        return []
    tested = f"{step}_p" in behind[0]
    lines = [f"\n{caption}\n",
             "| shape | op | layout | globalpool | timm | same kernels |"
             + (" ratio | p |" if tested else ""),
             "|:--|:--|:--|:--|:--|:--|" + ("--:|--:|" if tested else "")]  # fmt: skip
    for r in behind:
        ours, theirs = r[f"{key}_gp"], r[f"{key}_timm"]
        same = "yes" if same_kernels(ours, theirs) else "no"
        shape = "x".join(map(str, r["shape"]))
        test = f" {r[f'{step}_ratio']:.2f} | {r[f'{step}_p']:.2g} |" if tested else ""
        lines.append(f"| {shape} | {r['op']} | {r['layout']} | {', '.join(ours)} | "
                     f"{', '.join(theirs)} | {same} |{test}")  # fmt: skip
    return lines


def spread_table(paths: list[str]) -> str:
    """How much the rounds of ``--against timm`` records swing: per record and per
    column (forward / forward+backward, globalpool / timm), the median over the cases of
    (median round / fastest round), and the largest. Near 1: every round timed the same
    work; well above: something else (page faults, the scheduler) took part of them."""
    import statistics

    keys = [("fwd_gp", "fwd gp"), ("fwd_timm", "fwd timm"), ("fb_gp", "f+b gp"),
            ("fb_timm", "f+b timm")]  # fmt: skip
    lines = ["| record | malloc keeps freed memory | "
             + " | ".join(f"{name}: median (largest)" for _, name in keys) + " |",
             "|:--|:--|" + "--:|" * len(keys)]  # fmt: skip
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        if "rounds_ms" not in record["rows"][0]:
            raise ValueError(f"{path}: no rounds kept (an --against timm record written "
                             "before 2026-12-07, afternoon); rerun it to get them")  # fmt: skip
        cells = []
        for key, _ in keys:
            swings = [statistics.median(r["rounds_ms"][key]) / min(r["rounds_ms"][key])
                      for r in record["rows"]]  # fmt: skip
            cells.append(f"{statistics.median(swings):.2f} ({max(swings):.2f})")
        kept = "yes" if record.get("malloc_keeps_freed_memory") else "no"
        lines.append(f"| `{path.rsplit('/', 1)[-1]}` | {kept} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def naive_table(path: str, ops: list[str] | None = None) -> str:
    """The markdown table of a record of the plain run (``--json`` without ``--against``):
    each pool's forward and forward+backward time beside its naive PyTorch expression's
    (naive time / globalpool's: above 1, globalpool faster), for ``ops`` (default all)."""
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)["rows"]
    lines = ["| shape | pool | layout | fwd ms | naive fwd ms | fwd naive / ours | f+b ms "
             "| naive f+b ms | f+b naive / ours |",
             "|:--|:--|:--|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for r in rows:
        if ops and r["op"] not in ops:
            continue
        shape = "x".join(map(str, r["shape"]))
        lines.append(
            f"| {shape} | {r['op']} | {r['layout']} | {r['fwd_ms']:.1f} | "
            f"{r['fwd_naive_ms']:.1f} | {r['fwd_naive_ms'] / r['fwd_ms']:.2f}x | "
            f"{r['fb_ms']:.1f} | {r['fb_naive_ms']:.1f} | {r['fb_naive_ms'] / r['fb_ms']:.2f}x |"
        )
    return "\n".join(lines)


# Ops that only relabel a tensor's memory (or return it unchanged): no arithmetic
VIEW_OPS = frozenset({"reshape", "view", "flatten", "permute", "squeeze", "unsqueeze",
                      "transpose", "expand", "as_strided", "slice", "select", "to",
                      "contiguous", "detach", "alias"})  # fmt: skip
# Their backward nodes (the gradient viewed back): no arithmetic either
VIEW_NODES = frozenset({"ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0",
                        "PermuteBackward0", "TransposeBackward0", "SqueezeBackward1",
                        "SqueezeBackward0", "UnsqueezeBackward0", "ExpandBackward0",
                        "AliasBackward0", "ToCopyBackward0"})  # fmt: skip


def same_kernels(ops_a: list[str], ops_b: list[str]) -> bool:
    """Whether two forwards (:func:`forward_ops` lists) or two backwards
    (:func:`backward_nodes` lists) run the same computing ops in the same order once the
    view ops and nodes are left out: then a gap between their times is the per-call work
    around the kernels (or noise), not the arithmetic."""
    views = VIEW_OPS | VIEW_NODES
    return [o for o in ops_a if o not in views] == [o for o in ops_b if o not in views]


def read_bandwidth(repeats: int, device: str = "cpu") -> float:
    big = torch.ones(128 * 1024 * 1024, device=device)  # 512 MiB
    ms = best_ms(lambda: big.sum(), repeats)
    return big.numel() * 4 / ms / 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, no compiled column")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ops", nargs="*", default=OPS, choices=OPS)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-formula column")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as a JSON record")
    parser.add_argument("--against", choices=("timm",), help="time against timm's pools")
    parser.add_argument("--call-costs", action="store_true",
                        help="time the layers of avg's channels-last call beside timm's "
                        "(call_costs; --shape, --json)")  # fmt: skip
    parser.add_argument("--call-costs-table", metavar="RECORD",
                        help="print the table of a --call-costs record and stop")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--shape", type=int, nargs=4, metavar=("N", "C", "H", "W"),
                        help="time this one shape instead of the two head-like ones")  # fmt: skip
    parser.add_argument("--naive-table", metavar="RECORD",
                        help="print the table (ours beside naive) of a record and stop; "
                        "with --ops, those pools only")  # fmt: skip
    parser.add_argument("--timm-table", metavar="RECORD",
                        help="print the table of an --against timm record and stop")  # fmt: skip
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc malloc keeps freed memory (keep_freed_memory): rounds "
                        "without page-fault swings")  # fmt: skip
    parser.add_argument("--spread-table", metavar="RECORD", nargs="+",
                        help="print how much the rounds of --against timm records swing "
                        "(spread_table) and stop")  # fmt: skip
    parser.add_argument("--times", action="store_true",
                        help="with --timm-table: times in microseconds, not ratios")  # fmt: skip
    args = parser.parse_args(argv)
    if args.naive_table:
        print(naive_table(args.naive_table, args.ops))
        return 0
    if args.timm_table:
        print(timm_table(args.timm_table, args.times))
        return 0
    if args.call_costs_table:
        with open(args.call_costs_table, encoding="utf-8") as fh:
            print(call_costs_table(json.load(fh)))
        return 0
    if args.spread_table:
        try:
            print(spread_table(args.spread_table))
        except ValueError as err:
            print(f"bench_pool.py: {err}", file=sys.stderr)
            return 2
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if args.device == "cuda" and args.against:
        parser.error("--against timm times CPU cases only (the issue's table)")
    if args.device == "cuda":
        global sync
        sync = torch.cuda.synchronize
    repeats = args.repeats or (3 if args.quick else 10)
    use_compile = not (args.quick or args.no_compile)
    use_plain = not args.no_plain and args.device == "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error("--keep-freed-memory: this C library has no glibc mallopt")
    torch.manual_seed(0)
    if args.call_costs:
        return call_costs(repeats, args.json, tuple(args.shape) if args.shape else (256, 64, 8, 8))
    if args.against == "timm":
        shapes = [tuple(args.shape)] if args.shape else TIMM_SHAPES
        return against_timm(repeats, args.json, shapes, args.keep_freed_memory)
    torch._dynamo.config.cache_size_limit = 64  # one graph per shape/layout/grad mode

    bw = read_bandwidth(max(repeats // 2, 3), args.device)
    machine = machine_line()
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); host {machine}"
    print(
        f"bench_pool: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{machine}, python {sys.version.split()[0]}"
    )
    print(f"machine read bandwidth (sum over 512 MiB): {bw:.1f} GB/s\n")
    head = (
        "| shape | op | layout | fwd eager ms | fwd GB/s | fwd / read bw | fwd naive ms "
        "| fwd speedup vs naive | fwd compiled ms | fwd compiled / read bw "
        "| fwd compiled speedup vs naive | f+b eager ms | f+b naive ms "
        "| f+b compiled ms | f+b speedup vs naive | fwd plain ms | f+b plain ms "
        "| kernel speedup vs plain, fwd | kernel speedup vs plain, f+b |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    records = []
    for shape in [tuple(args.shape)] if args.shape else SHAPES:
        n, c, h, w = shape
        base = torch.randn(n, c, h, w, device=args.device)
        gb = base.numel() * base.element_size() / 1e9
        for layout in ("NCHW", "channels_last"):
            x = base if layout == "NCHW" else base.contiguous(memory_format=torch.channels_last)
            for name in args.ops:
                pool = gp.create_pool(name, channels=c).to(args.device)
                if isinstance(pool, gp.AttentionPool):  # attention, gwap: fresh ones are avg
                    with torch.no_grad():
                        pool.weight.normal_(0, 0.05)
                params = list(pool.parameters())
                variants = {"eager": (pool, "eager"), "naive": (naive(name, pool), "eager")}
                if use_plain and name in CPU_KERNELS:
                    variants["plain"] = (pool, "plain")
                if use_compile and pool.takes_compiled:  # attention, simpool, map...: none
                    variants["compiled"] = (pool, "compiled")
                times = time_variants(variants, x, params, repeats)
                (fe, be), (fn, bn) = times["eager"], times["naive"]
                fc, bc = times.get("compiled", (float("nan"), float("nan")))
                fp, bp = times.get("plain", (float("nan"), float("nan")))
                plain = (
                    f"{fp:.2f} | {bp:.2f} | {fp / fe:.2f}x | {bp / be:.2f}x"
                    if fp == fp  # not nan
                    else "- | - | - | -"
                )
                gbs = gb / fe * 1e3
                compiled = (
                    f"{fc:.2f} | {gb / fc * 1e3 / bw:.2f} | {fn / fc:.2f}x"
                    if fc == fc  # not nan
                    else "- | - | -"
                )
                records.append({"shape": list(shape), "op": name, "layout": layout,
                                "fwd_ms": fe, "fwd_naive_ms": fn, "fb_ms": be,
                                "fb_naive_ms": bn, "fwd_compiled_ms": fc, "fb_compiled_ms": bc,
                                "fwd_plain_ms": fp, "fb_plain_ms": bp})  # fmt: skip
                print(
                    f"| {n}x{c}x{h}x{w} | {name} | {layout} | {fe:.2f} | {gbs:.1f} | "
                    f"{gbs / bw:.2f} | {fn:.2f} | {fn / fe:.2f}x | {compiled} | {be:.2f} | "
                    f"{bn:.2f} | {'-' if bc != bc else f'{bc:.2f}'} | {bn / be:.2f}x | {plain} |",
                    flush=True,
                )
    print(
        "\nf+b = forward+backward; speedups are naive time / eager (or compiled) time; "
        "plain = the formula alone, CPU kernels off (kernel speedup = plain / eager; "
        "-: no CPU kernel); compiled = what compiled=True runs (-: not compiled): "
        f"inductor's code, except the CPU kernels of {sorted(dispatch.KERNEL_BEATS_COMPILED)} "
        f"always and of {sorted(dispatch.KERNEL_BEATS_COMPILED_WITH_GRAD)} when a gradient "
        "is needed (f+b)."
    )
    if args.json:
        record = {"command": "python benchmarks/bench_pool.py " + " ".join(sys.argv[1:]),
                  "date": time.strftime("%Y-%m-%d"), "machine": machine,
                  "device": args.device,
                  "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "read_bandwidth_gb_s": bw,
                  "malloc_keeps_freed_memory": args.keep_freed_memory, "rows": records}  # fmt: skip
        _write_record(args.json, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
