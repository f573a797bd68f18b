"""Gradients: gradcheck in float64 for every operator, with and without mask; max ties."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from globalpool import functional as F
from globalpool.pool import cpu_kernels as _kernels
from globalpool.pool import list_pools

# every test here runs with the CPU kernels and with the plain formulas alone
pytestmark = pytest.mark.usefixtures("pool_impl")

ALL = list_pools()  # the registry: every pool, including ones added later


def _call(name, x, mask, fmt, params):
    kw = {"data_format": fmt}
    if name == "attention":
        return F.attention_pool(x, params["weight"], mask, **kw)
    if name == "gwap":  # the bias's gradient checked too (alpha stands in for it)
        return F.gwap_pool(x, params["weight"], params["alpha"], mask, **kw)
    if name == "gem":
        return F.gem_pool(x, mask, p=params["p"], eps=1e-3, **kw)
    if name == "lp":
        return F.lp_pool(x, mask, p=params["p"], **kw)
    if name == "lse":
        return F.lse_pool(x, mask, r=params["r"], **kw)
    if name == "mixed":
        return F.mixed_pool(x, mask, alpha=params["alpha"], **kw)
    if name == "map":  # the query, projections and biases all inputs
        w_in = torch.cat([params["wq"], params["wk"], params["wq"] - params["wk"]])
        return F.map_pool(x, params["weight"], w_in, params["wk"].T, mask,
                          in_bias=torch.cat([params["weight"]] * 3), out_bias=params["weight"],
                          **kw)  # fmt: skip
    if name == "simpool":  # every learned tensor an input: their gradients checked too
        return F.simpool(x, params["wq"], params["wk"], mask, norm_weight=params["weight"],
                         norm_bias=params["weight"] * 0.5, **kw)  # fmt: skip
    return getattr(F, f"{name}_pool")(x, mask, **kw)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "memory_channels_last"])
def test_gradcheck(name, masked, layout):
    g = torch.Generator().manual_seed(11)
    # positive, well-separated values: away from GeM's clamp, |x|'s kink and max ties
    base = torch.randperm(2 * 3 * 3 * 4, generator=g).double().reshape(2, 3, 3, 4) / 24 + 0.2
    fmt = "channels_first"
    if layout == "channels_last":
        base, fmt = base.permute(0, 2, 3, 1).contiguous(), "channels_last"
    elif layout == "memory_channels_last":
        base = base.contiguous(memory_format=torch.channels_last)
    x = base.requires_grad_()
    mask = None
    if masked:
        mask = torch.ones(2, 3, 4, dtype=torch.bool)
        mask[1, 2:, :] = False
        mask[1, :, 3] = False
    params = {
        "p": torch.tensor(2.5, dtype=torch.float64, requires_grad=True),
        "r": torch.tensor(1.7, dtype=torch.float64, requires_grad=True),
        "alpha": torch.tensor(0.3, dtype=torch.float64, requires_grad=True),
        "weight": torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64, requires_grad=True),
        "wq": (torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.7).requires_grad_(),
        "wk": (torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.7).requires_grad_(),
    }
    inputs = (x, *params.values())

    def fn(x, p, r, alpha, weight, wq, wk):
        vals = {"p": p, "r": r, "alpha": alpha, "weight": weight, "wq": wq, "wk": wk}
        return _call(name, x, mask, fmt, vals)

    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["gem", "lp", "lse"])
def test_gradcheck_fixed_params_and_large_scale(name):
    # float params (no grad) and inputs that take the rescaled (overflow-safe) branch
    x = (torch.rand(2, 3, 4, 4, dtype=torch.float64) + 0.5).requires_grad_()
    if name == "lse":
        assert gradcheck(lambda t: F.lse_pool(t * 100.0, r=3.0), (x,))
    else:
        pool = getattr(F, f"{name}_pool")
        assert gradcheck(lambda t: pool(t, p=40.0), (x,), atol=1e-5)
        assert gradcheck(lambda t: pool(t * 1e10, p=40.0) / 1e10, (x,), atol=1e-5)


@pytest.mark.parametrize("name", ["max", "avgmax", "catavgmax", "mixed"])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "memory_channels_last"])
def test_max_ties_gradient_goes_to_first_position(name, layout):
    x = torch.zeros(2, 3, 3, 4)
    x[0, 0, 1, 2] = x[0, 0, 2, 0] = x[0, 0, 0, 3] = 5.0  # first in row-major: (0, 3)
    x[1, 2] = 7.0  # a whole tied (dead) channel: first position (0, 0)
    expected_pos = {(0, 0): (0, 3), (1, 2): (0, 0)}
    fmt = "channels_first"
    if layout == "channels_last":
        x, fmt = x.permute(0, 2, 3, 1).contiguous(), "channels_last"
    elif layout == "memory_channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    grads = []
    for _ in range(3):
        xr = x.clone().requires_grad_()
        out = getattr(F, f"{name}_pool")(xr, data_format=fmt)
        out[:, -3:].sum().backward()  # the max part (for catavgmax: its last C outputs)
        grads.append(xr.grad)
    assert all(torch.equal(grads[0], gr) for gr in grads[1:])  # same on every run
    gcf = grads[0] if fmt == "channels_first" else grads[0].permute(0, 3, 1, 2)
    avg_share = {"max": 0.0, "avgmax": 0.5 / 12, "catavgmax": 0.0, "mixed": 0.5 / 12}[name]
    max_share = {"max": 1.0, "avgmax": 0.5, "catavgmax": 1.0, "mixed": 0.5}[name]
    for (n, c), (h, w) in expected_pos.items():
        want = torch.full((3, 4), avg_share)
        want[h, w] += max_share
        torch.testing.assert_close(gcf[n, c], want)


def test_masked_max_ignores_padding_even_when_larger():
    x = torch.tensor([[[1.0, 9.0, 2.0]]], requires_grad=True)
    mask = torch.tensor([[True, False, True]])
    y = F.max_pool(x, mask)
    y.sum().backward()
    assert y.item() == 2.0
    assert x.grad.tolist() == [[[0.0, 0.0, 1.0]]]


def _reference(name, x, p, r):
    """Plain torch expressions on (N, C, H, W) (autograd through ordinary ops)."""
    if name == "max":
        return x.amax((2, 3))
    if name == "avgmax":
        return 0.5 * (x.mean((2, 3)) + x.amax((2, 3)))
    if name == "catavgmax":
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
    if name == "gem":
        return x.clamp(min=1e-3).pow(p).mean((2, 3)).pow(1 / p)
    if name == "lp":
        return x.abs().pow(p).mean((2, 3)).pow(1 / p)
    return (torch.logsumexp(r * x.flatten(2), -1) - math.log(x[0, 0].numel())) / r


@pytest.mark.parametrize("name", ["max", "avgmax", "catavgmax", "gem", "lp", "lse"])
@pytest.mark.parametrize("layout", ["channels_first", "memory_channels_last"])
def test_kernels_split_into_many_blocks_match_plain_torch(name, layout, monkeypatch):
    # One sample per block (the kernels' cache blocking), against plain torch, in float64.
    monkeypatch.setattr(_kernels, "_BLOCK_ELEMS", 1)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 3, 3, 4, generator=g, dtype=torch.float64)
    if layout == "memory_channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    r = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = _call(name, xa, None, "channels_first", {"p": p, "r": r})
    yb = _reference(name, xb, p, r)
    torch.testing.assert_close(ya, yb)
    w = torch.randn(ya.shape, generator=g, dtype=torch.float64)
    params = {"gem": [p], "lp": [p], "lse": [r]}.get(name, [])
    grads_a = torch.autograd.grad((ya * w).sum(), [xa, *params])
    grads_b = torch.autograd.grad((yb * w).sum(), [xb, *params])
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("name", ["max", "avgmax", "catavgmax", "mixed", "gem", "lp", "lse"])
def test_gradcheck_many_blocks_with_mask(name, monkeypatch):
    monkeypatch.setattr(_kernels, "_BLOCK_ELEMS", 1)
    g = torch.Generator().manual_seed(3)
    x = torch.randperm(3 * 2 * 12, generator=g).double().reshape(3, 2, 3, 4) / 24 + 0.2
    mask = torch.ones(3, 3, 4, dtype=torch.bool)
    mask[1, 1:, :] = False
    mask[2, :, 0] = False
    p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    r = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)

    alpha = torch.tensor(0.3, dtype=torch.float64)

    def fn(x, p, r):
        return _call(name, x, mask, "channels_first", {"p": p, "r": r, "alpha": alpha})

    assert gradcheck(fn, (x.requires_grad_(), p, r), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["gem", "lse"])
def test_half_input_many_blocks_matches_float32(name, monkeypatch):
    monkeypatch.setattr(_kernels, "_BLOCK_ELEMS", 1)
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(9))
    xh = x.bfloat16().requires_grad_()
    xf = xh.detach().float().requires_grad_()
    yh = _call(name, xh, None, "channels_first", {"p": 3.0, "r": 2.0})
    yf = _call(name, xf, None, "channels_first", {"p": 3.0, "r": 2.0})
    assert yh.dtype == torch.bfloat16
    torch.testing.assert_close(yh.float(), yf, rtol=2e-2, atol=2e-2)
    yh.sum().backward()
    yf.sum().backward()
    assert xh.grad.dtype == torch.bfloat16
    torch.testing.assert_close(xh.grad.float(), xf.grad, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("layout", ["channels_first", "memory_channels_last"])
def test_avg_pool_is_twice_differentiable_like_mean(layout):
    # gradient penalties differentiate the gradient: avg's kernel must allow it, as t.mean does
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    if layout == "memory_channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(2, 3, generator=g, dtype=torch.float64)

    def penalty(pool):
        xr = x.detach().requires_grad_()
        (dx,) = torch.autograd.grad((pool(xr) ** 3 * w).sum(), xr, create_graph=True)
        (ddx,) = torch.autograd.grad(dx.pow(2).sum(), xr)
        return ddx

    torch.testing.assert_close(penalty(F.avg_pool), penalty(lambda t: t.mean((2, 3))))
