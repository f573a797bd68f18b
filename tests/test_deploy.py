"""``globalpool.load`` and the ``predict`` / ``export`` CLI on run directories.

Run directories are written here with the training code's own checkpoint writers
(safetensors + model.json), so these tests need no training; one end-to-end test trains
a tiny run first.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import globalpool
from globalpool.cli.main import main
from globalpool.models import create_model
from globalpool.train.checkpoint import save_weights, write_model_json

CLASSES = ["circle", "square", "triangle"]
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def make_run(path, head="pool-linear", num_classes=3, seed=0):
    torch.manual_seed(seed)
    model = create_model("fastnet", num_classes, head=head).eval()
    (path / "checkpoints").mkdir(parents=True)
    save_weights(model, path / "checkpoints" / "best.safetensors", {"epoch": 1})
    info = {
        "model": "fastnet",
        "model_args": model.model_args,
        "classes": CLASSES[:num_classes] + [f"c{k}" for k in range(3, num_classes)],
        "mean": MEAN,
        "std": STD,
        "input_size": [32, 32],
    }
    write_model_json(path, info)
    return model


def write_images(folder, sizes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k, (h, w) in enumerate(sizes):
        path = folder / f"img{k}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_load_sets_attributes_and_predicts(tmp_path):
    original = make_run(tmp_path / "run")
    model = globalpool.load(tmp_path / "run")
    assert not model.training
    assert model.classes == CLASSES and model.mean == MEAN and model.std == STD
    assert tuple(model.input_size) == (32, 32)
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    image = np.random.default_rng(1).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN)[:, None, None]
    x = x / torch.tensor(STD)[:, None, None]
    with torch.no_grad():
        expected = original(x[None]).softmax(-1)[0]
    (top,) = model.predict(image, topk=3, size="native")
    assert [t["class"] for t in top] == [CLASSES[k] for k in expected.argsort(descending=True)]
    assert top[0]["prob"] == pytest.approx(float(expected.max()), abs=1e-5)
    # A checkpoint file works as well as the run directory.
    same = globalpool.load(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert same.predict(image, topk=1, size="native")[0][0]["class"] == top[0]["class"]


def test_import_globalpool_stays_light():
    code = "import sys, globalpool; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]  # globalpool.load resolves lazily, on first use
    assert globalpool.load is globalpool.deploy.load


def test_deploy_functions_do_not_shadow_their_modules():
    """``globalpool.deploy.predict`` / ``.load`` are the functions; their modules have
    other names, so ``import globalpool.deploy.<module>`` gives a module, not a function."""
    import importlib
    import inspect

    import globalpool.deploy as deploy

    for name in ("predict", "load"):
        assert inspect.isfunction(getattr(deploy, name))
    for module in ("prediction", "loading", "export", "masked", "images"):
        assert inspect.ismodule(importlib.import_module(f"globalpool.deploy.{module}"))


def test_bad_checkpoints_are_refused_with_reasons(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run)
    ckpt = run / "checkpoints" / "best.safetensors"
    good = ckpt.read_bytes()

    ckpt.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated"):
        globalpool.load(run)

    # Pickle bytes under the expected name: refused before anything is unpickled.
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(str(marker)))
    ckpt.write_bytes(payload)
    with pytest.raises(ValueError, match="pickle"):
        globalpool.load(run)
    assert not marker.exists()
    pt_file = run / "checkpoints" / "model.pt"
    pt_file.write_bytes(payload)
    with pytest.raises(ValueError, match="pickle"):
        globalpool.load(pt_file)
    assert not marker.exists()

    # Weights of another model (other head) and of another class count.
    other = tmp_path / "other"
    make_run(other, head="classmap")
    ckpt.write_bytes((other / "checkpoints" / "best.safetensors").read_bytes())
    with pytest.raises(ValueError, match="different model"):
        globalpool.load(run)
    five = tmp_path / "five"
    make_run(five, num_classes=5)
    ckpt.write_bytes((five / "checkpoints" / "best.safetensors").read_bytes())
    with pytest.raises(ValueError, match="5 classes"):
        globalpool.load(run)

    # The same refusals through the CLI: exit code 2 and one line naming the reason.
    ckpt.write_bytes(payload)
    image = write_images(tmp_path / "imgs", [(32, 32)])[0]
    assert main(["predict", "--checkpoint", str(run), str(image)]) == 2
    assert "pickle" in capsys.readouterr().err
    ckpt.write_bytes(good[:100])
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "truncated" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(tmp_path / "nowhere"), str(image)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not marker.exists()


class _Exploit:
    """Unpickling this would create a file: proof of whether pickle ever ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_cli_predict_table_and_json(tmp_path, capsys):
    make_run(tmp_path / "run")
    folder = tmp_path / "imgs"
    paths = write_images(folder, [(32, 32), (48, 40), (32, 32), (36, 64)])
    (folder / "readme.txt").write_text("not an image")
    model = globalpool.load(tmp_path / "run")
    expected = model.predict([str(p) for p in paths], topk=2)

    assert main(["predict", "--checkpoint", str(tmp_path / "run"), str(folder), "--topk", "2",
                 "--json", "--batch-size", "3"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths]
    for line, top in zip(lines, expected, strict=True):
        assert [t["class"] for t in line["topk"]] == [t["class"] for t in top]
        assert line["topk"][0]["prob"] == pytest.approx(top[0]["prob"], abs=1e-5)

    assert main(["predict", "--checkpoint", str(tmp_path / "run"), str(paths[1]),
                 "--topk", "1", "--size", "40"]) == 0  # fmt: skip
    row = capsys.readouterr().out.strip()
    best = model.predict(str(paths[1]), topk=1, size=40)[0][0]
    assert row.startswith(str(paths[1])) and best["class"] in row and "%" in row

    assert main(["predict", "--checkpoint", str(tmp_path / "run"), str(tmp_path / "no")]) == 2
    assert "no such image file or folder" in capsys.readouterr().err


def test_cli_predict_fc_head_resizes(tmp_path, capsys):
    make_run(tmp_path / "fc", head="fc")
    paths = write_images(tmp_path / "imgs", [(50, 30), (32, 32)])
    assert main(["predict", "--checkpoint", str(tmp_path / "fc"), *map(str, paths),
                 "--json"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["predict", "--checkpoint", str(tmp_path / "fc"), str(paths[0]),
                 "--size", "48"]) == 2  # fmt: skip
    assert "fixed-size FC head" in capsys.readouterr().err


def test_cli_export_onnx_and_torchscript(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    make_run(tmp_path / "run", head="classmap")
    model = globalpool.load(tmp_path / "run")
    onnx_path, ts_path = tmp_path / "out" / "m.onnx", tmp_path / "out" / "m.pt"
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--format", "onnx",
                 "--out", str(onnx_path), "--mask"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "dynamic batch, height, width" in out and "max abs diff" in out
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--format", "torchscript",
                 "--out", str(ts_path)]) == 0  # fmt: skip
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    traced = torch.jit.load(str(ts_path))
    gen = torch.Generator().manual_seed(0)
    for n, h, w in [(1, 32, 32), (2, 45, 38), (3, 64, 24)]:
        x = torch.randn(n, 3, h, w, generator=gen)
        full = np.ones((n, h, w), dtype=bool)
        with torch.no_grad():
            expected = model(x)
            assert float((traced(x) - expected).abs().max()) < 1e-4
        got = session.run(None, {"image": x.numpy(), "mask": full})[0]
        assert float(np.abs(got - expected.numpy()).max()) < 1e-4

    make_run(tmp_path / "fc", head="fc")
    assert main(["export", "--checkpoint", str(tmp_path / "fc"), "--out",
                 str(tmp_path / "fc.onnx"), "--mask"]) == 2  # fmt: skip
    assert "pooling head" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "fc"), "--out",
                 str(tmp_path / "fc.onnx")]) == 0  # fmt: skip
    assert "fixed size (32, 32)" in capsys.readouterr().out


def test_end_to_end_train_predict_export(tmp_path, capsys):
    """A tiny real run, then the CLI: predictions on the test images saved as PNG files
    must reproduce the accuracy the training loop measured on the same images."""
    from globalpool.data import load_dataset

    data_kwargs = {"n_train": 160, "n_test": 40, "size": 24}
    run = tmp_path / "run"
    assert main(["train", "--model", "fastnet", "--dataset", "shapes", "--dataset-kwargs",
                 json.dumps(data_kwargs), "--epochs", "1", "--batch-size", "32", "--out",
                 str(run), "--quiet", "--no-tensorboard", "--device", "cpu"]) == 0  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    test = load_dataset("shapes", **data_kwargs).test
    folder = tmp_path / "test_images"
    folder.mkdir()
    truth = {}
    for i in range(len(test)):
        path = folder / f"{i:03d}.png"
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(path)
        truth[str(path)] = test.classes[int(test.labels[i])]
    capsys.readouterr()

    # test_acc is measured with the final weights: compare with the `last` checkpoint.
    assert main(["predict", "--checkpoint", str(run), str(folder), "--json",
                 "--which", "last"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(test)
    hits = sum(truth[line["path"]] == line["topk"][0]["class"] for line in lines)
    assert hits / len(lines) == pytest.approx(summary["test_acc"], abs=1e-9)

    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--mask"]) == 0
    assert "max abs diff" in capsys.readouterr().out and out.stat().st_size > 0
