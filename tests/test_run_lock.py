"""One writer per run directory, and run directories that cannot be made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from globalpool.cli.main import main
from globalpool.train import TrainConfig, train
from globalpool.train.rundir import LOCK_NAME, RunDirBusy, run_dir_lock

HOLD = """
import sys, time
from globalpool.train.rundir import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def tiny(out) -> TrainConfig:
    return TrainConfig(
        model="smallgap", dataset="digits", dataset_kwargs={"size": 16}, epochs=1,
        batch_size=64, out_dir=str(out), quiet=True, tensorboard=False,
    )  # fmt: skip


def test_second_writer_is_refused_and_a_killed_holder_frees_the_directory(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RunDirBusy, match=rf"in use by another training \(pid {holder.pid} "):
            train(tiny(run))
        assert not (run / "config.json").exists()  # nothing written by the refused run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the dead holder's lock: the next run goes ahead.
    assert train(tiny(run))["test_acc"] >= 0
    assert (run / LOCK_NAME).is_file()


def test_same_process_lock_is_exclusive_and_released(tmp_path):
    with run_dir_lock(tmp_path / "r"), pytest.raises(RunDirBusy), run_dir_lock(tmp_path / "r"):
        pass
    with run_dir_lock(tmp_path / "r"):
        pass


def test_out_that_cannot_be_a_folder_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    start = time.perf_counter()
    args = ["train", "--model", "smallgap", "--dataset", "digits", "--epochs", "1"]
    assert main([*args, "--out", str(blocker)]) == 2
    assert f"{blocker} is a file" in capsys.readouterr().err
    assert main([*args, "--out", str(blocker / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        assert main([*args, "--out", str(locked / "run")]) == 2
        assert "cannot write the run directory" in capsys.readouterr().err
    assert time.perf_counter() - start < 5  # refused before loading data or models
