"""Numerical stability: huge inputs, zeros and negatives, half precision, bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from globalpool import functional as F
from globalpool.pool import create_pool, list_pools

# every test here runs with the CPU kernels and with the plain formulas alone
pytestmark = pytest.mark.usefixtures("pool_impl")

ALL = list_pools()  # the registry: every pool, including ones added later


def test_lse_with_inputs_around_1e4():
    g = torch.Generator().manual_seed(0)
    x = 1e4 + torch.randn(2, 3, 5, 5, generator=g)
    for r in (1.0, 10.0, 100.0):
        y = F.lse_pool(x, r=r)
        assert torch.isfinite(y).all()
        assert torch.all(y >= x.mean((2, 3)) - 1e-2) and torch.all(y <= x.amax((2, 3)) + 1e-2)
        want = (torch.logsumexp(r * x.double().flatten(2), -1) - math.log(25)) / r
        torch.testing.assert_close(y.double(), want, atol=2e-3, rtol=0)
    xr = (-1e4 + torch.randn(2, 3, 5, 5, generator=g)).requires_grad_()
    F.lse_pool(xr, r=10.0).sum().backward()
    assert torch.isfinite(xr.grad).all()
    torch.testing.assert_close(xr.grad.sum((2, 3)), torch.ones(2, 3))  # softmax weights


def test_gem_with_zeros_and_negative_inputs():
    x = torch.zeros(2, 3, 4, 4)
    x[1] = -torch.rand(3, 4, 4)
    xr = x.clone().requires_grad_()
    y = F.gem_pool(xr, p=3.0, eps=1e-6)
    torch.testing.assert_close(y, torch.full((2, 3), 1e-6))
    y.sum().backward()
    assert torch.isfinite(xr.grad).all() and torch.all(xr.grad == 0)  # all clamped
    p = torch.tensor(6.0, requires_grad=True)  # eps ** p underflows float32
    yp = F.gem_pool(x, p=p)
    yp.sum().backward()
    assert torch.isfinite(yp).all() and torch.isfinite(p.grad)
    torch.testing.assert_close(yp, torch.full((2, 3), 1e-6))


def test_gem_large_p_and_large_values():
    x = torch.rand(2, 3, 7, 7) * 1e3 + 1.0
    y = F.gem_pool(x, p=60.0)  # 1000 ** 60 overflows float32
    assert torch.isfinite(y).all() and torch.all(y <= x.amax((2, 3)) * (1 + 1e-5))
    want = x.double().pow(60).mean((2, 3)).pow(1 / 60)
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=0)


def test_lp_all_zero_sample():
    x = torch.zeros(1, 2, 3, 3, requires_grad=True)
    y = F.lp_pool(x, p=2.0)
    y.sum().backward()
    assert torch.all(y == 0) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_close_to_float32(name, dtype):
    g = torch.Generator().manual_seed(5)
    x32 = torch.randn(4, 8, 7, 7, generator=g) * 4
    pool = create_pool(name, channels=8)
    if name in ("attention", "gwap"):
        with torch.no_grad():
            pool.weight.copy_(torch.linspace(-0.5, 0.5, 8))
    want = pool(x32)
    got = pool.to(dtype)(x32.to(dtype))
    assert got.dtype == dtype and torch.isfinite(got).all()
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    torch.testing.assert_close(got.float(), want, atol=tol * 4, rtol=tol)
    # large values: x ** 3 and exp(10 x) overflow half precision, the pools must not
    big = pool(x32.to(dtype) * 8)
    assert torch.isfinite(big).all()


def test_learnable_gem_under_bf16_autocast_keeps_p_and_loss_finite():
    torch.manual_seed(0)
    # a 1x1 conv as a Linear over channels-last features: bf16 activations into GeM
    model = nn.Sequential(
        nn.Linear(8, 16),
        nn.ReLU(),
        create_pool("gem", p=3.0, data_format="channels_last"),
        nn.Linear(16, 4),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x = torch.randn(16, 6, 6, 8) * 3
    y = torch.randint(0, 4, (16,))
    losses = []
    for _ in range(300):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert math.isfinite(losses[-1])
    p = model[2].p.detach()
    assert torch.isfinite(p) and p > 0
    assert losses[-1] < losses[0]


# ---- edge values (issue 15): references computed in float64 with plain torch ops
def test_lse_tends_to_the_mean_as_r_goes_to_zero():
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(F.lse_pool(x, r=1e-8), x.mean((2, 3)), atol=1e-5, rtol=0)
    xd = x.double().flatten(2)
    for r in (1e-5, 1e-3, 0.3, 3.0):
        want = (torch.logsumexp(r * xd, -1) - math.log(25)) / r  # float64: exact enough
        torch.testing.assert_close(F.lse_pool(x, r=r).double(), want, atol=1e-5, rtol=0)


def test_lse_stays_finite_where_r_times_x_overflows():
    x = torch.full((1, 2, 3, 3), 4e37)
    x[0, 1, 0, 0] = 3e38
    y = F.lse_pool(x, r=10.0)
    assert torch.isfinite(y).all()
    assert y[0, 0] == pytest.approx(4e37, rel=1e-6) and y[0, 1] <= 3e38


def test_gem_tends_to_the_geometric_mean_as_p_goes_to_zero():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(2)) + 0.1
    geo = x.double().log().mean((2, 3)).exp()
    torch.testing.assert_close(F.gem_pool(x, p=1e-8).double(), geo, rtol=1e-5, atol=0)
    for p in (1e-4, 0.01, 0.04, 0.06, 0.5):  # both sides of the switch to the log form
        want = x.double().pow(p).mean((2, 3)).pow(1 / p)  # float64: exact enough
        torch.testing.assert_close(F.gem_pool(x, p=p).double(), want, rtol=1e-5, atol=0)
    lp = F.lp_pool(-x, p=1e-6)  # |x|: the same geometric mean
    torch.testing.assert_close(lp.double(), geo, rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", ["avg", "max", "avgmax", "gem", "lse", "lp", "mixed"])
def test_plus_inf_pools_to_plus_inf(name):
    x = torch.rand(2, 3, 4, 4) + 0.5
    x[0, 1, 2, 2] = math.inf
    y = create_pool(name)(x)
    assert y[0, 1] == math.inf, (name, y[0, 1])
    assert torch.isfinite(y[1]).all() and torch.isfinite(y[0, [0, 2]]).all()


def test_mixed_at_alpha_zero_and_one_with_inf():
    x = torch.rand(1, 2, 3, 3)
    x[0, 0, 1, 1] = math.inf
    for alpha in (0.0, 1.0):
        assert F.mixed_pool(x, alpha=alpha)[0, 0] == math.inf


@pytest.mark.parametrize("name", ["attention", "gwap"])
def test_learned_weights_ignore_nan_at_masked_out_positions(name):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 3, 3, generator=g)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[:, 2, :] = False
    padded = x.clone()
    padded[:, :, 2, :] = math.nan
    weight = torch.randn(4, generator=g)
    pool = getattr(F, f"{name}_pool")
    y = pool(padded, weight, mask=mask)
    assert torch.isfinite(y).all()
    want = pool(x[:, :, :2, :], weight)  # the valid rows alone
    torch.testing.assert_close(y, want)


def _gem_both_paths(x, p, monkeypatch):
    """GeM of x by the CPU kernel and by the plain formula: [(y, dy/dx, dy/dp or None)]."""
    from globalpool.pool import dispatch
    from globalpool.pool.cpu_kernels import KERNELS

    out = []
    for kernels in (KERNELS, {}):
        monkeypatch.setattr(dispatch, "KERNELS", kernels)
        xr = x.clone().requires_grad_()
        pr = p.clone().requires_grad_() if isinstance(p, torch.Tensor) else p
        y = F.gem_pool(xr, p=pr, eps=1e-38)  # below every x
        y.sum().backward()
        out.append((y.detach(), xr.grad, pr.grad if isinstance(pr, torch.Tensor) else None))
    return out


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1.0, 1e10, 1e30, 1e37])
@pytest.mark.parametrize("p", [1e-6, 0.5, 1.0, 3.0, 64.0])
def test_gem_formula_and_kernel_agree_and_stay_finite(scale, p, monkeypatch):
    """The formula path (every other device, compile, export) against the CPU kernel and
    a float64 log-domain reference, values and gradients (x and a learnable p)."""
    g = torch.Generator().manual_seed(0)
    x = scale * (0.1 + 2 * torch.rand(2, 3, 5, 5, generator=g))
    xd = x.double().requires_grad_()
    pd = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    # float64 reference: exp((logsumexp(p log x) - log n) / p), autograd's gradient
    want = torch.exp((torch.logsumexp(pd * xd.flatten(2).log(), -1) - math.log(25)) / pd)
    want.sum().backward()
    for p_arg in (p, torch.tensor(p)):
        both = _gem_both_paths(x, p_arg, monkeypatch)
        for path, (y, gx, gp) in zip(("kernel", "formula"), both, strict=True):
            assert torch.isfinite(y).all() and torch.isfinite(gx).all(), path
            torch.testing.assert_close(y.double(), want.detach(), rtol=2e-5, atol=0)
            torch.testing.assert_close(gx.double(), xd.grad, rtol=1e-4, atol=1e-6)
            if gp is None:
                continue
            assert torch.isfinite(gp), path
            if p >= 0.5:
                torch.testing.assert_close(gp.double(), pd.grad, rtol=2e-3, atol=0)
            elif path == "formula":
                # dy/dp = y * mean(r**p log r) / p: at p = 1e-6 a float32 mean of logs that
                # cancel to O(p) keeps about one digit (the kernel, blocked, less)
                assert abs(float(gp) / float(pd.grad) - 1) < 0.3, (path, float(gp))
