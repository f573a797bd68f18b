"""A kill at any point of an epoch's checkpoint commit leaves a resumable run whose resumed
result is bitwise the uninterrupted one, with every metrics row, and no temporary files.

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

config, kill_at = TrainConfig.from_json(sys.argv[1]), int(sys.argv[2])
state = {"armed": False, "n": 0}

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
    state["armed"] = epoch == config.epochs
    return commit(run_dir, link, epoch, fn, **kw)

def write_spy(self, row):
    point(lambda: None)()
    write(self, row)
    state["armed"] = False

loop.commit_checkpoints, MetricsWriter.write = commit_spy, write_spy
train(config)
print(json.dumps({"points": state["n"]}))
"""


def config_for(out: Path) -> TrainConfig:
    return TrainConfig(
        model="smallgap", dataset="digits", dataset_kwargs={"size": 8}, epochs=2,
        batch_size=128, out_dir=str(out), quiet=True, tensorboard=False, seed=3,
    )  # fmt: skip


def run_killer(config: TrainConfig, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLER, config.to_json(), str(kill_at)],
        capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )  # fmt: skip


def weights(run: Path, which: str) -> dict[str, torch.Tensor]:
    return read_safetensors(run / "checkpoints" / f"{which}.safetensors")[0]


@pytest.mark.slow
def test_kill_at_every_write_of_the_commit_resumes_bitwise(tmp_path):
    reference = tmp_path / "reference"
    train(config_for(reference))
    dry = run_killer(config_for(tmp_path / "dry"), -1)
    assert dry.returncode == 0, dry.stderr
    points = json.loads(dry.stdout.strip().splitlines()[-1])["points"]
    assert points >= 8  # renames of every file, the link switch, clean-up, the append
    want_rows = [r["epoch"] for r in read_metrics(reference / "metrics.jsonl")]
    for k in range(points):
        run = tmp_path / f"kill{k}"
        killed = run_killer(config_for(run), k)
        assert killed.returncode == -9, (k, killed.stderr)
        summary = train(config_for(run), resume=True)
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
