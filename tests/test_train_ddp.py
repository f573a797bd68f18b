"""DistributedDataParallel: ``torchrun --nproc_per_node=2`` (gloo, CPU) matches one process.

Each rank gets half of every global batch, DDP averages the two half-batch gradients,
which equals the full-batch gradient of one process: the final weights agree up to float
rounding. The model is ``smallgap`` with its class-map head: no batch norm (per-rank
batch statistics would differ from full-batch ones, and SyncBatchNorm needs a GPU) and no
dropout (per-rank masks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from globalpool.train import train
from globalpool.train.metrics import read_metrics
from test_train_loop import DATA, assert_same_weights, tiny, weights


def test_two_cpu_processes_match_one(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    # Odd split sizes: the distributed eval loaders pad to a multiple of 2 and the loop
    # must not count the repeats.
    config = tiny(single, epochs=2, dataset_kwargs={**DATA, "n_train": 245, "n_test": 63})
    summary_single = train(config)

    config.replace(out_dir=str(ddp)).save(tmp_path / "ddp.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "globalpool", "train", "--config", str(tmp_path / "ddp.json"), "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert_same_weights(weights(single), weights(ddp), exact=False)
    summary_ddp = json.loads((ddp / "summary.json").read_text())
    assert summary_ddp["world_size"] == 2 and summary_single["world_size"] == 1
    # Metrics are reduced over both ranks: same totals as one process.
    for a, b in zip(read_metrics(single / "metrics.jsonl"), read_metrics(ddp / "metrics.jsonl"),
                    strict=True):  # fmt: skip
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
        assert a["val_acc"] == b["val_acc"] and a["train_acc"] == b["train_acc"]
    assert summary_ddp["test_acc"] == summary_single["test_acc"]
    assert summary_ddp["test_images"] == 63
    # Only rank 0 wrote: one set of files, no stray temporaries.
    leftovers = [p for p in ddp.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    assert torch.isfinite(weights(ddp)["head.conv.weight"]).all()


def test_two_nodes_over_loopback_match_one_process(tmp_path):
    """The multi-node launch of the guide: two torchrun launchers (one process each) meet
    by c10d rendezvous at 127.0.0.1:PORT, as two machines would at the first one's address."""
    import socket

    single, multi = tmp_path / "single", tmp_path / "multi"
    config = tiny(single, epochs=2, dataset_kwargs={**DATA, "n_train": 245, "n_test": 63})
    summary_single = train(config)
    config.replace(out_dir=str(multi)).save(tmp_path / "multi.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
        "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id",
        "loopback", "-m", "globalpool", "train", "--config", str(tmp_path / "multi.json"),
        "--quiet",
    ]  # fmt: skip
    nodes = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    for node in nodes:
        out, _ = node.communicate(timeout=240)
        assert node.returncode == 0, out[-3000:]
    assert_same_weights(weights(single), weights(multi), exact=False)
    summary = json.loads((multi / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["test_acc"] == summary_single["test_acc"]
