"""Small things a new user tripped over (issue 19): each pinned by what the user sees."""

from __future__ import annotations

import contextlib

from globalpool.cli.main import main


def test_models_listing_names_the_models_that_do_not_fit(capsys):
    assert main(["models", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "alexnet " not in out.split("not shown")[0]  # no all-dash row
    assert "not shown at this size: alexnet" in out and "(63, 63)" in out
    assert main(["models", "alexnet", "--size", "32"]) == 0  # named: the row and the reason
    assert "alexnet: model 'alexnet': input size (32, 32) is too small" in capsys.readouterr().out


def test_a_model_too_big_for_the_data_says_what_to_do(tmp_path, capsys):
    args = ["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "digits images are 8x8" in err and "--dataset-kwargs '{\"size\": 32}'" in err
    assert "smallgap" in err and "Traceback" not in err


def test_threads_flag_on_training_verbs(capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["train", "--threads", "0", "--epochs", "1"]) == 2
        assert "--threads: expected an integer >= 1; got '0'" in capsys.readouterr().err
        for verb in ("train", "compare", "speedrun", "reproduce"):
            with contextlib.suppress(SystemExit):
                main([verb, "--help"])
            assert "--threads N" in capsys.readouterr().out, verb
    finally:
        torch.set_num_threads(before)


def test_output_piped_into_head_stops_quietly():
    import subprocess
    import sys

    # stdout is a pipe whose reader has gone (as after `| head -1`), line-buffered so the
    # first printed line meets the closed pipe inside the command.
    code = (
        "import io, os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "sys.stdout = io.TextIOWrapper(os.fdopen(1, 'wb'), line_buffering=True)\n"
        "from globalpool.cli.main import main\n"
        "sys.exit(main(['pools']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr


def test_stop_after_epoch_is_in_the_help(capsys):
    with contextlib.suppress(SystemExit):
        main(["train", "--help"])
    assert "--stop-after-epoch E" in capsys.readouterr().out


def test_a_dataset_larger_than_memory_is_refused_before_generating(tmp_path, capsys):
    import time

    start = time.perf_counter()
    args = ["train", "--dataset-kwargs", '{"n_train": 1000000000}', "--out", str(tmp_path)]
    assert main(args) == 2
    assert "more than half of this machine's" in capsys.readouterr().err
    assert time.perf_counter() - start < 10


def test_export_out_errors_and_a_missing_extra_are_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    run = tmp_path / "no-run-needed"  # the --out checks come before loading the run
    (tmp_path / "file").write_text("x")
    for out, message in (
        (tmp_path, "is a folder"),
        (tmp_path / "file" / "m.onnx", "is a file"),
    ):
        assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real(n, *a)
    )
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'globalpool[export]'" in capsys.readouterr().err


def test_speedrun_help_does_not_show_train_defaults(capsys):
    with contextlib.suppress(SystemExit):
        main(["speedrun", "--help"])
    out = capsys.readouterr().out
    assert "(default: the recipe's)" in out and "(default: 0.05)" not in out
