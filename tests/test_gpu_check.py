"""benchmarks/gpu_check.sh: its dry run (every step at toy size on the CPU) and its data parts."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_runs_every_step_and_keeps_its_records(tmp_path):
    records = tmp_path / "records"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run",
         "--work", str(tmp_path / "work"), "--records", str(records)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((records / "gpu-check.json").read_text())
    assert result["dry_run"] and not result["machine"]["cuda_available"]
    names = [s["name"] for s in result["steps"]]
    assert names[0] == "speedrun-94" and "bench-pool-cuda" in names
    assert [n for n in names if n.startswith("nin-full")] == [
        "nin-full NIN + GAP",
        "nin-full NIN + FC",
        "nin-full NIN + FC + dropout",
    ]
    assert all(s["status"] == "finished" for s in result["steps"]), result["steps"]
    # flat records, as the device tool returns them (at most 8 files)
    kept = sorted(p.name for p in records.iterdir())
    assert kept == ["bench-pool-cuda.json", "gpu-check.json", "nin-heads-cifar10-full.json",
                    "nin-heads-cifar10-full.png", "speedrun-94.json"]  # fmt: skip
    nin = json.loads((records / "nin-heads-cifar10-full.json").read_text())
    assert nin["protocol"] == "full" and len(nin["runs"]) == 3  # one head per step, all kept
    pools = json.loads((records / "bench-pool-cuda.json").read_text())
    assert {r["op"] for r in pools["rows"]} == {"avg", "max"} and pools["device"] == "cpu"


def test_the_archive_travels_in_parts_and_is_checked_when_joined(tmp_path):
    gpu_check = _module()
    archive = tmp_path / gpu_check.ARCHIVE
    payload = os.urandom(2 * 1000 + 7)
    archive.write_bytes(payload)
    gpu_check.PART_BYTES = 1000
    parts = gpu_check.split_data(archive, tmp_path / "carry")
    assert [p.stat().st_size for p in parts] == [1000, 1000, 7]
    digest = hashlib.sha256(payload).hexdigest()
    joined = gpu_check.join_data(tmp_path / "carry", digest)
    assert joined.read_bytes() == payload
    # a part missing: the joined archive's sha256 differs, and it says so
    other = tmp_path / "short"
    other.mkdir()
    for part in parts[:2]:
        (other / part.name).write_bytes(part.read_bytes())
    with pytest.raises(SystemExit, match="a part missing"):
        gpu_check.join_data(other, digest)
