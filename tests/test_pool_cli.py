"""The pool registry on the command line (`globalpool pools`, `globalpool tour`), compile path."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

import globalpool.pool as gp
from globalpool import functional as F
from globalpool.cli.main import main
from globalpool.pool import cpu_kernels, dispatch, formulas


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
        shape = f"(2, {gp.create_pool(name, channels=3).out_channels(3)})"
        assert any(line.startswith(name) and shape in line for line in out.splitlines())
    assert main(["tour", "--shape", "1", "0", "2", "2"]) == 2
    assert "--shape: expected an integer >= 1; got '0'" in capsys.readouterr().err


def test_compiled_pool_falls_back_to_eager_when_compilation_fails(monkeypatch):
    def broken_compile(fn, **kw):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(dispatch, "_compiled", {})
    monkeypatch.setattr(dispatch, "_failed", set())
    x = torch.randn(2, 3, 4, 4)
    with pytest.warns(RuntimeWarning, match="using the eager implementation"):
        y = F.lp_pool(x, p=2.0, compiled=True)
    torch.testing.assert_close(y, x.abs().pow(2).mean((2, 3)).sqrt())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only; avg, gem and lse never compile
        F.lp_pool(x, p=2.0, compiled=True)
        torch.testing.assert_close(
            F.gem_pool(x, compiled=True), x.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3)
        )
        F.lse_pool(x, compiled=True)
    assert set(dispatch._failed) == {"lp"}


@pytest.mark.parametrize("name", ["avg", "max", "catavgmax", "gem", "lse", "lp", "mixed"])
def test_formulas_and_compiled_forms_match_the_cpu_kernels(name):
    # values and gradients, with and without a mask, in float64
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 5) < 0.7
    mask[:, 0] = True
    m3, count = mask.unsqueeze(1), mask.sum(1, keepdim=True).double()
    args = {"gem": (3.0, 1e-6), "lp": (2.0,), "lse": (10.0,), "mixed": (0.5,)}.get(name, ())
    forms = (formulas.FORMULAS[name], dispatch._COMPILE_FORMS[name])
    for form, (msk, cnt) in itertools.product(forms, ((None, None), (m3, count))):
        want = cpu_kernels.KERNELS[name](x, 2, msk, cnt, *args)
        got = form(x, 2, msk, cnt, *args)
        if isinstance(got, tuple):  # catavgmax's compiled form: the parts, cat outside
            got = torch.cat(got, 1)
        torch.testing.assert_close(got, want)
        (gw,) = torch.autograd.grad(want.sum(), x)
        (gg,) = torch.autograd.grad(got.sum(), x)
        torch.testing.assert_close(gg, gw)


def test_compiled_max_pools_match_eager_with_ties_in_both_layouts():
    # torch.compile for real: values, and the first-maximum tie rule of the gradient
    # inside a compiled function; compiled=True for a call without gradient
    x = torch.randn(2, 3, 4, 4).round()  # many ties
    x[0, 0] = 1.0  # a dead channel, all positions equal
    weights = torch.arange(6.0).repeat(2, 1)
    for fmt in ("channels_first", "channels_last"):
        xi = x if fmt == "channels_first" else x.permute(0, 2, 3, 1).contiguous()

        def pool(t, fmt=fmt, compiled=False):
            return F.catavgmax_pool(t, data_format=fmt, compiled=compiled)

        results = []
        for fn in (pool, torch.compile(pool)):
            xr = xi.clone().requires_grad_()
            y = fn(xr)
            results.append((y.detach(), torch.autograd.grad(y, xr, weights)[0]))
        torch.testing.assert_close(results[1], results[0])
        with torch.no_grad():
            torch.testing.assert_close(pool(xi, compiled=True), results[0][0])
    assert "catavgmax" in dispatch._compiled and not dispatch._failed


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
        "globalpool.pool.gwap",
        "globalpool.pool.base",
        "globalpool.pool.dispatch",
        "globalpool.pool.formulas",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", ["max", "catavgmax", "gem", "lse", "mixed", "attention", "gwap"])
def test_pools_trace_into_one_graph_inside_a_compiled_model(name):
    # TrainConfig.compile: the pool joins the model's graph (no data-dependent breaks)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), gp.create_pool(name, channels=4))
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 6, 6))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_calls_route_each_call_to_the_faster_implementation(monkeypatch):
    compiled = []

    def recording_compile(fn, **kw):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", recording_compile)
    monkeypatch.setattr(dispatch, "_compiled", {})
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    kw = {"compiled": True}
    F.avg_pool(x, **kw), F.gem_pool(x, **kw), F.lse_pool(x, **kw)  # kernel beats compiled
    F.max_pool(x, **kw), F.catavgmax_pool(x, **kw)  # gradient needed: the CPU kernels
    F.max_pool(x), F.lp_pool(x)  # not asked to compile
    assert compiled == []
    with torch.no_grad():  # no gradient: the compiled forms
        F.max_pool(x, **kw), F.catavgmax_pool(x, **kw)
    F.lp_pool(x, **kw)  # compiled with or without gradient
    assert set(dispatch._compiled) == {"max", "catavgmax", "lp"}
    assert compiled == [dispatch._COMPILE_FORMS[k] for k in ("max", "catavgmax", "lp")]


def test_compile_pools_sets_every_pool_of_a_model_and_nothing_global():
    model = torch.nn.Sequential(gp.create_pool("max"), gp.create_pool("attention", channels=3))
    assert gp.compile_pools(model) == 2 and all(m.compiled for m in model)
    assert "compiled=True" in repr(model[0])
    assert not gp.create_pool("max").compiled  # a new pool is not affected
    assert gp.compile_pools(model, enabled=False) == 2 and not model[0].compiled


@pytest.mark.parametrize("name", gp.list_pools())
def test_off_the_cpu_every_pool_runs_its_formula_without_reading_the_host(name):
    # meta tensors hold no data: any host read (.item(), .tolist(), bool()) would raise,
    # so this pins the accelerator path: formulas only, no sync, masks included
    x = torch.randn(4, 3, 5, 5, device="meta", requires_grad=True)
    mask = torch.ones(4, 5, 5, dtype=torch.bool, device="meta")
    pool = gp.create_pool(name, channels=3).to("meta")
    for m in (None, mask):
        y = pool(x, m)
        assert y.device.type == "meta" and y.shape == (4, pool.out_channels(3))
        y.sum().backward()
    t = torch.empty(4, 3, 25, device="meta")
    for op in ("avg", "max", "gem", "lse"):
        fn = dispatch.implementation(op, t, needs_grad=True)
        assert fn is formulas.FORMULAS[op]
        on_cpu = torch.empty(t.shape)
        assert dispatch.implementation(op, on_cpu, needs_grad=True) is cpu_kernels.KERNELS[op]
