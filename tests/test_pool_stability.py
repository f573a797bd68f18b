"""Numerical stability: huge inputs, zeros and negatives, half precision, bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from globalpool import functional as F
from globalpool.pool import create_pool

ALL = ["avg", "max", "avgmax", "catavgmax", "gem", "lse", "lp", "mixed", "attention"]


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
    if name == "attention":
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
