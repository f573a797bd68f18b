"""Property tests (hypothesis): random shapes, formats and masks against plain formulas."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from globalpool import functional as F
from globalpool.pool import list_pools
from test_pool_reference import isqrtcov_numpy

NAMES = list_pools()  # the registry: a pool added without a plain formula below fails


def _plain(name: str, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Pool one sample's valid values v (C, L) with plain ops, float64."""
    if name == "avg":
        return v.mean(1)
    if name == "max":
        return v.amax(1)
    if name == "avgmax":
        return (v.mean(1) + v.amax(1)) / 2
    if name == "catavgmax":
        return torch.cat([v.mean(1), v.amax(1)])
    if name == "gem":
        return v.clamp(min=1e-6).pow(3).mean(1).pow(1 / 3)
    if name == "lse":
        return (torch.logsumexp(2.0 * v, 1) - math.log(v.shape[1])) / 2.0
    if name == "lp":
        return v.abs().pow(1.5).mean(1).pow(1 / 1.5)
    if name == "mixed":
        return 0.25 * v.amax(1) + 0.75 * v.mean(1)
    if name == "wildcat":  # k = 30% of the valid positions (at least 1), alpha 0.6
        k = max(1, round(0.3 * v.shape[1]))
        ranked = v.sort(1, descending=True).values
        return ranked[:, :k].mean(1) + 0.6 * ranked[:, -k:].mean(1)
    if name == "simpool":  # one head: attention from the GAP query over layer-normed values
        wq, wk = _simpool_weights(w)
        z = (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + 1e-6)
        a = torch.softmax((wq @ v.mean(1)) @ (wk @ z) / math.sqrt(v.shape[0]), 0)
        return z @ a
    if name == "map":  # one head, no biases: Wo (Wv v) softmax((Wq l) . (Wk v))
        c = v.shape[0]
        w_in, w_out, latent = _map_weights(w)
        q, k, val = w_in[:c] @ latent, w_in[c : 2 * c] @ v, w_in[2 * c :] @ v
        return w_out @ (val @ torch.softmax(q @ k / math.sqrt(c), 0))
    if name == "stats":
        return torch.cat([v.mean(1), v.var(1, unbiased=False).clamp(min=1e-5).sqrt()])
    if name == "isqrtcov":  # Li et al. 2018's equations, numpy (shared with the reference)
        return torch.from_numpy(isqrtcov_numpy(v.numpy()))
    if name == "gwap":  # weights exp(sigmoid(w . v + b)), normalised
        m = torch.exp(torch.sigmoid(w @ v - 0.4))
        return v @ (m / m.sum())
    return v @ torch.softmax(w @ v, 0)


def _map_weights(w: torch.Tensor):
    """(3C, C) in-projection, (C, C) out-projection and (C,) query from the (C,) weights."""
    c = len(w)
    eye = torch.eye(c, dtype=w.dtype)
    w_in = torch.cat([torch.outer(w, w.flip(0)) + eye, torch.outer(w.flip(0), w), eye - 0.3])
    return w_in, torch.outer(w, w) - eye, w.flip(0)


def _simpool_weights(w: torch.Tensor):
    """(C, C) query and key projections made from the drawn (C,) weights."""
    eye = torch.eye(len(w), dtype=w.dtype)
    return torch.outer(w, w.flip(0)) + eye, torch.outer(w.flip(0), w) - 0.5 * eye


def _apply(name, x, mask, fmt, w):
    kw = {"data_format": fmt}
    extra = {"lse": {"r": 2.0}, "lp": {"p": 1.5}, "mixed": {"alpha": 0.25},
             "wildcat": {"k_max": 0.3, "alpha": 0.6}}.get(name, {})  # fmt: skip
    if name == "attention":
        return F.attention_pool(x, w, mask, **kw)
    if name == "gwap":
        return F.gwap_pool(x, w, -0.4, mask, **kw)
    if name == "simpool":
        return F.simpool(x, *_simpool_weights(w), mask, **kw)
    if name == "map":
        w_in, w_out, latent = _map_weights(w)
        return F.map_pool(x, latent, w_in, w_out, mask, **kw)
    return getattr(F, f"{name}_pool")(x, mask, **kw, **extra)


@st.composite
def cases(draw):
    nd = draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    spatial = draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd))
    seed = draw(st.integers(0, 2**16))
    fmt = draw(st.sampled_from(["channels_first", "channels_last", "memory"]))
    use_mask = draw(st.booleans())
    name = draw(st.sampled_from(NAMES))
    return nd, n, c, spatial, seed, fmt, use_mask, name


@settings(max_examples=40, deadline=None)
@given(cases())
def test_pool_matches_plain_formula_per_sample(case):
    nd, n, c, spatial, seed, fmt, use_mask, name = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *spatial, generator=g, dtype=torch.float64) * 3
    w = torch.randn(c, generator=g, dtype=torch.float64)
    mask = None
    if use_mask:
        mask = torch.rand(n, *spatial, generator=g) < 0.6
        mask.view(n, -1)[:, 0] = True  # at least one valid position each
    if fmt == "channels_last":
        inp, data_format = x.permute(0, *range(2, x.ndim), 1).contiguous(), "channels_last"
    elif fmt == "memory" and nd == 2:
        inp, data_format = x.contiguous(memory_format=torch.channels_last), "channels_first"
    else:
        inp, data_format = x, "channels_first"
    got = _apply(name, inp, mask, data_format, w)
    width = {"catavgmax": 2 * c, "stats": 2 * c, "isqrtcov": c * (c + 1) // 2}.get(name, c)
    assert got.shape == (n, width)
    for i in range(n):
        values = x[i].reshape(c, -1)
        if mask is not None:
            values = values[:, mask[i].reshape(-1)]
        torch.testing.assert_close(got[i], _plain(name, values, w))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.05, 50.0))
def test_lse_and_gem_orderings(seed, power):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    avg, top = x.mean((2, 3)), x.amax((2, 3))
    lse = F.lse_pool(x, r=power)
    assert torch.all(avg - 1e-9 <= lse) and torch.all(lse <= top + 1e-9)
    pos = x.abs() + 0.01
    gem = F.gem_pool(pos, p=max(power, 1.0))
    assert torch.all(pos.mean((2, 3)) - 1e-9 <= gem) and torch.all(gem <= pos.amax((2, 3)) + 1e-9)
