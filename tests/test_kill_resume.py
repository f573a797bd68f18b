"""A kill at any point of an epoch's checkpoint commit leaves a resumable run whose resumed
result is bitwise the uninterrupted one, with every metrics row, and no temporary files.
So does a kill at randomly drawn points of the whole run (any training step or write).

A subprocess trains with every step of the checkpoint sequence that changes what is on disk
(each rename into place, the hard link of the kept best weights, the new link and its
switch, the removal of the previous set, the metrics append) counted during the last
epoch's commit, and SIGKILLs itself just before the K-th one, for every K."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from globalpool.train import TrainConfig, train
from globalpool.train.checkpoint import read_safetensors
from globalpool.train.metrics import read_metrics

KILLER = r"""
import json, os, shutil, signal, sys
import globalpool.train.loop as loop
from globalpool.train import TrainConfig, train
from globalpool.train.metrics import MetricsWriter

import torch
config, kill_at = TrainConfig.from_json(sys.argv[1]), int(sys.argv[2])
everywhere = sys.argv[3] == "everywhere"  # every backward and every commit, not one commit
state = {"armed": everywhere, "n": 0}

def point(fn):
    def wrapped(*args, **kwargs):
        if state["armed"]:
            if state["n"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            state["n"] += 1
        return fn(*args, **kwargs)
    return wrapped

for name in ("replace", "symlink", "link"):
    setattr(os, name, point(getattr(os, name)))
shutil.rmtree = point(shutil.rmtree)
commit, write = loop.commit_checkpoints, MetricsWriter.write

def commit_spy(run_dir, link, epoch, fn, **kw):
    state["armed"] = everywhere or epoch == config.epochs
    return commit(run_dir, link, epoch, fn, **kw)

def write_spy(self, row):
    point(lambda: None)()
    write(self, row)
    state["armed"] = everywhere

if everywhere:  # also mid-epoch: before any training step
    torch.Tensor.backward = point(torch.Tensor.backward)

loop.commit_checkpoints, MetricsWriter.write = commit_spy, write_spy
train(config)
print(json.dumps({"points": state["n"]}))
"""


def config_for(out: Path) -> TrainConfig:
    return TrainConfig(
        model="smallgap", dataset="digits", dataset_kwargs={"size": 8}, epochs=2,
        batch_size=128, out_dir=str(out), quiet=True, tensorboard=False, seed=3,
    )  # fmt: skip


def run_killer(
    config: TrainConfig, kill_at: int, where: str = "last-commit"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLER, config.to_json(), str(kill_at), where],
        capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )  # fmt: skip


def weights(run: Path, which: str) -> dict[str, torch.Tensor]:
    return read_safetensors(run / "checkpoints" / f"{which}.safetensors")[0]


def assert_resumes_bitwise(run: Path, reference: Path, k: int) -> None:
    """Resume the killed ``run`` to the end; it must equal the uninterrupted ``reference``."""
    want_rows = [r["epoch"] for r in read_metrics(reference / "metrics.jsonl")]
    if (run / "checkpoints").exists():
        summary = train(config_for(run), resume=True)
    else:  # killed before its first checkpoint: nothing to resume, start again
        summary = train(config_for(run), overwrite=True)
    assert summary["epochs"] == 2
    for which in ("last", "best"):
        got, want = weights(run, which), weights(reference, which)
        assert got.keys() == want.keys()
        assert all(torch.equal(got[n], want[n]) for n in want), (k, which)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == want_rows, k
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    leftovers += [p.name for p in run.glob(".ckpt-e*")]
    assert leftovers == [".ckpt-e00002"], (k, leftovers)


def count_points(tmp_path: Path, where: str) -> int:
    dry = run_killer(config_for(tmp_path / f"dry-{where}"), -1, where)
    assert dry.returncode == 0, dry.stderr
    return json.loads(dry.stdout.strip().splitlines()[-1])["points"]


@pytest.mark.slow
def test_kill_at_random_points_of_the_whole_run_resumes_bitwise(tmp_path):
    """Kill points drawn (seeded) from every training step and every write of both epochs."""
    reference = tmp_path / "reference"
    train(config_for(reference))
    points = count_points(tmp_path, "everywhere")
    assert points >= 2 * 8 + 20  # two commits and every step of 2 epochs of ~12 batches
    rng = torch.Generator().manual_seed(2026)
    for k in torch.randperm(points, generator=rng)[:4].tolist():
        run = tmp_path / f"random{k}"
        killed = run_killer(config_for(run), k, "everywhere")
        assert killed.returncode == -9, (k, killed.stderr)
        assert_resumes_bitwise(run, reference, k)


@pytest.mark.slow
def test_kill_at_every_write_of_the_commit_resumes_bitwise(tmp_path):
    reference = tmp_path / "reference"
    train(config_for(reference))
    points = count_points(tmp_path, "last-commit")
    assert points >= 8  # renames of every file, the link switch, clean-up, the append
    for k in range(points):
        run = tmp_path / f"kill{k}"
        killed = run_killer(config_for(run), k)
        assert killed.returncode == -9, (k, killed.stderr)
        assert (run / "checkpoints").exists()  # the kill came after epoch 1's commit
        assert_resumes_bitwise(run, reference, k)


def test_the_checkpoint_set_is_one_link_to_the_last_epoch(tmp_path):
    run = tmp_path / "run"
    train(config_for(run))
    link = run / "checkpoints"
    assert link.is_symlink() and Path(link.readlink()).name == ".ckpt-e00002"
    assert sorted(p.name for p in link.iterdir()) == [
        "best.safetensors", "last.safetensors", "last.state.json", "last.state.safetensors"
    ]  # fmt: skip
    doc = json.loads((link / "last.state.json").read_text())
    assert [r["epoch"] for r in doc["metrics"]] == [1, 2]
    # --overwrite starts afresh: the old set is gone, one new link.
    train(config_for(run).replace(epochs=1), overwrite=True)
    assert [p.name for p in run.glob(".ckpt-e*")] == [".ckpt-e00001"]
