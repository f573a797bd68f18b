"""The pool registry on the command line (`globalpool pools`, `globalpool tour`), compile path."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

import globalpool.pool as gp
from globalpool import functional as F
from globalpool.cli.main import main
from globalpool.pool import compile as pool_compile


def test_pools_command_prints_every_registered_pool(capsys):
    assert main(["pools"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "summary", "formula"]
    for name in gp.list_pools():
        entry = gp.pool_entry(name)
        assert any(line.startswith(name + " ") and entry.formula in line for line in lines)
    assert main(["pools", "--markdown"]) == 0
    assert "| catavgmax | average and max" in capsys.readouterr().out


def test_tour_command_shows_every_pool(capsys):
    assert main(["tour", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "shape (2, 3, 4, 4)" in out
    for name in gp.list_pools():
        shape = "(2, 6)" if name == "catavgmax" else "(2, 3)"
        assert any(line.startswith(name) and shape in line for line in out.splitlines())
    assert main(["tour", "--shape", "1", "0", "2", "2"]) == 2
    assert "four positive sizes" in capsys.readouterr().err


def test_compile_switch_falls_back_to_eager_when_compilation_fails(monkeypatch):
    def broken_compile(fn, **kw):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(pool_compile, "_compiled", {})
    monkeypatch.setattr(pool_compile, "_failed", set())
    x = torch.randn(2, 3, 4, 4)
    gp.set_compile(True)
    try:
        assert gp.compile_enabled()
        with pytest.warns(RuntimeWarning, match="using the eager kernel"):
            y = F.lp_pool(x, p=2.0)
        torch.testing.assert_close(y, x.abs().pow(2).mean((2, 3)).sqrt())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once only; avg, gem and lse never compile
            F.lp_pool(x, p=2.0)
            torch.testing.assert_close(
                F.gem_pool(x), x.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3)
            )
            F.lse_pool(x)
        assert set(pool_compile._failed) == {"lp"}
    finally:
        gp.set_compile(False)
    assert not gp.compile_enabled()


@pytest.mark.parametrize("name", ["avg", "max", "catavgmax", "gem", "lse", "lp", "mixed"])
def test_composite_forms_match_eager_kernels(name):
    # the formulas torch.compile receives, run eagerly, agree with the eager kernels
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 5) < 0.7
    mask[:, 0] = True
    f = getattr(F, f"{name}_pool")
    flat = x.permute(0, 1, 2)  # (N, C, L) view, reduced over dim 2
    m3, count = mask.unsqueeze(1), mask.sum(1, keepdim=True).double()
    args = {"gem": (3.0, 1e-6, False), "lp": (2.0, 0.0, True), "lse": (10.0,), "mixed": (0.5,)}
    key = name
    forms = (pool_compile.composite[key], pool_compile._to_compile[key])
    for form, (msk, cnt) in itertools.product(forms, ((None, None), (m3, count))):
        want = f(x, None if msk is None else mask)
        got = form(flat, 2, msk, cnt, *args.get(name, ()))
        if isinstance(got, tuple):  # catavgmax's compiled form: the parts, cat outside
            got = torch.cat(got, 1)
        torch.testing.assert_close(got, want)
        (gw,) = torch.autograd.grad(want.sum(), x)
        (gg,) = torch.autograd.grad(got.sum(), x)
        torch.testing.assert_close(gg, gw)


def test_compiled_max_pools_match_eager_with_ties_in_both_layouts():
    # torch.compile for real: values, and the first-maximum tie rule of the gradient
    # inside a compiled function; set_compile(True) for a call without gradient
    x = torch.randn(2, 3, 4, 4).round()  # many ties
    x[0, 0] = 1.0  # a dead channel, all positions equal
    weights = torch.arange(6.0).repeat(2, 1)
    for fmt in ("channels_first", "channels_last"):
        xi = x if fmt == "channels_first" else x.permute(0, 2, 3, 1).contiguous()

        def pool(t, fmt=fmt):
            return F.catavgmax_pool(t, data_format=fmt)

        results = []
        for fn in (pool, torch.compile(pool)):
            xr = xi.clone().requires_grad_()
            y = fn(xr)
            results.append((y.detach(), torch.autograd.grad(y, xr, weights)[0]))
        torch.testing.assert_close(results[1], results[0])
        gp.set_compile(True)
        try:
            with torch.no_grad():
                torch.testing.assert_close(pool(xi), results[0][0])
        finally:
            gp.set_compile(False)
    assert "catavgmax" in pool_compile._compiled and not pool_compile._failed


@pytest.mark.parametrize(
    "module",
    [
        "globalpool.functional",
        "globalpool.pool.functional",
        "globalpool.pool.avg_max",
        "globalpool.pool.gem",
        "globalpool.pool.lse",
        "globalpool.pool.lp",
        "globalpool.pool.mixed",
        "globalpool.pool.attention",
        "globalpool.pool.compile",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", ["max", "catavgmax", "gem", "lse", "mixed", "attention"])
def test_pools_trace_into_one_graph_inside_a_compiled_model(name):
    # TrainConfig.compile: the pool joins the model's graph (no data-dependent breaks)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), gp.create_pool(name, channels=4))
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 6, 6))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_set_compile_routes_each_call_to_the_faster_kernel(monkeypatch):
    compiled = []

    def recording_compile(fn, **kw):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", recording_compile)
    monkeypatch.setattr(pool_compile, "_compiled", {})
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    gp.set_compile(True)
    try:
        F.avg_pool(x), F.gem_pool(x), F.lse_pool(x)  # EAGER_FASTER: never compiled
        F.max_pool(x), F.catavgmax_pool(x)  # gradient needed: the eager kernels
        assert compiled == []
        with torch.no_grad():  # no gradient: the compiled forms
            F.max_pool(x), F.catavgmax_pool(x)
        F.lp_pool(x)  # compiled with or without gradient
    finally:
        gp.set_compile(False)
    assert set(pool_compile._compiled) == {"max", "catavgmax", "lp"}
    assert compiled == [pool_compile._to_compile[k] for k in ("max", "catavgmax", "lp")]
