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
    assert machine.native_bf16("cpu", frozenset(flags)) is native


def test_auto_is_float32_on_a_cpu_without_native_bf16(monkeypatch):
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
