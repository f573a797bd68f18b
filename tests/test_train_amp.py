"""Precision from the hardware (``amp="auto"``), the startup line and the flip warning."""

from __future__ import annotations

import json

import pytest
import torch

from globalpool import machine
from globalpool.train import TrainConfig, train
from globalpool.train.presets import get_recipe
from globalpool.train.setup import resolve_amp

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, native",
    [
        ({"avx2", "fma", "avx512f"}, False),  # AVX2 / AVX-512 without BF16: emulated
        ({"avx2", "avx512_bf16"}, True),
        ({"avx2", "amx_bf16", "amx_tile"}, True),
        ({"asimd", "bf16"}, True),  # Arm
        (set(), False),
    ],
)
def test_native_bf16_reads_the_cpu_flags(flags, native):
    assert machine.native_bf16("cpu", frozenset(flags), caps={}) is native


@pytest.mark.parametrize(
    "caps, native",
    [
        ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # emulated AVX2
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, False),
        ({"DNNL_MAX_CPU_ISA": "AVX2"}, False),
        ({"ATEN_CPU_CAPABILITY": "avx512"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        ({}, True),
    ],
)
def test_an_instruction_set_cap_below_bf16_answers_as_the_emulated_cpu(caps, native):
    """ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AVX512-BF16 emulates
    an AVX2-only one: `amp: auto` must then pick float32, as it would there."""
    assert machine.native_bf16("cpu", frozenset({"avx2", "avx512_bf16"}), caps=caps) is native


def test_machine_line_names_the_caps_in_the_environment(monkeypatch):
    for name in machine.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert machine.isa_caps() == {} and "capped" not in machine.machine_line()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    line = machine.machine_line()
    assert line.endswith(
        "no native bf16, instruction set capped by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"
    ), line


def test_auto_is_float32_on_a_cpu_without_native_bf16(monkeypatch):
    for name in machine.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert resolve_amp("auto", CPU) == "none"
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert resolve_amp("auto", CPU) == "bf16"
    # An explicit choice is kept whatever the CPU.
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_amp("bf16", CPU) == "bf16" and resolve_amp("none", CPU) == "none"


def test_the_bf16_recipe_lets_the_hardware_choose():
    assert get_recipe("cifar10-94").settings["amp"] == "auto"


def test_run_prints_its_plan_and_records_the_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2"}))
    config = TrainConfig(
        model="smallgap", dataset="digits", dataset_kwargs={"size": 16}, epochs=2,
        batch_size=64, amp="auto", out_dir=str(tmp_path / "run"), tensorboard=False,
    )  # fmt: skip
    summary = train(config)
    out = capsys.readouterr().out
    assert summary["amp_used"] == "none"
    assert "float32 (auto: no native bf16)" in out
    assert "augmentation: crop (padding 4), horizontal flip" in out
    assert "1,295 train / 143 val / 359 test images; 2 epochs x 20 steps of 64" in out
    assert "about" in out and "min more for 1 epoch)" in out
    # digits declare that a flip changes the class: the run says so.
    assert "warning: random horizontal flips are on" in out
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["amp_used"] == "none"
    train(config.replace(flip=False, out_dir=str(tmp_path / "noflip")))
    assert "warning: random horizontal flips" not in capsys.readouterr().out
