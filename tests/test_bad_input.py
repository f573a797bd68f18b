"""Every bad input is one line saying what was expected and what came, exit 2, nothing
written (issue 37): option values, sizes no memory holds, damaged checkpoints."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image

from globalpool.cli.main import main
from globalpool.train import TrainConfig, train

GIB = 2**30


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-input") / "run"
    train(TrainConfig(model="smallgap", dataset="shapes", epochs=1, batch_size=64,
                      dataset_kwargs={"n_train": 600, "n_test": 100}, out_dir=str(out),
                      quiet=True, tensorboard=False))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A 40x50 (H x W) RGB PNG of one of the shapes test images, enlarged (off the
    training scale, so that --size native and the default differ)."""
    from globalpool.data import load_dataset

    test = load_dataset("shapes", n_train=10, n_test=20).test
    pixels = test.images[3].permute(1, 2, 0).numpy()
    path = tmp_path_factory.mktemp("images") / "shape.png"
    Image.fromarray(pixels).resize((50, 40), Image.BILINEAR).save(path)
    return path


def _one_line_refusal(argv, capsys, workdir, expected: str) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert list(workdir.iterdir()) == [], f"{argv} wrote {list(workdir.iterdir())}"


# (verb and options, the option's bad values, what the one line says was expected)
TABLE = [
    (["train"], "--epochs", ["0", "x", ""], "expected an integer >= 1"),
    (["train"], "--lr", ["-1", "0", "x", "", "nan", "inf"], "expected a number > 0"),
    (["train"], "--batch-size", ["0", "1.5"], "expected an integer >= 1"),
    (["train"], "--eval-batch-size", ["0"], "expected an integer >= 1"),
    (["train"], "--val-fraction", ["0.95", "-0.1", "x"], "expected a number in [0, 0.9]"),
    (["train"], "--momentum", ["1.5"], "expected a number in [0, 1]"),
    (["train"], "--label-smoothing", ["2"], "expected a number in [0, 1]"),
    (["train"], "--warmup-epochs", ["-1"], "expected a number >= 0"),
    (["train"], "--lookahead-decay", ["1"], "expected a number in [0, 0.999]"),
    (["train"], "--lookahead-every", ["-1"], "expected an integer >= 0"),
    (["train"], "--cutout", ["-2"], "expected an integer >= 0"),
    (["train"], "--seed", ["-1", "x"], "expected an integer >= 0"),
    (["train"], "--stop-after-epoch", ["0"], "expected an integer >= 1"),
    (["train"], "--threads", ["0", "x"], "expected an integer >= 1"),
    (["train", "--betas", "0.9"], "", ["1.5", "x"], "expected a number in [0, 1)"),
    (["predict", "--checkpoint", "RUN", "IMAGE"], "--topk", ["0", "x", ""], "an integer >= 1"),
    (["predict", "--checkpoint", "RUN", "IMAGE"], "--batch-size", ["0"], "an integer >= 1"),
    (["predict", "--checkpoint", "RUN", "IMAGE"], "--size", ["0", "-5", "x", ""], "positive int"),
    (["cam", "--checkpoint", "RUN", "IMAGE"], "--alpha", ["2", "x"], "a number in [0, 1]"),
    (["cam", "--checkpoint", "RUN", "IMAGE"], "--scale", ["0", "65"], "an integer in [1, 64]"),
    (["cam", "--checkpoint", "RUN", "IMAGE"], "--topk", ["0"], "an integer >= 1"),
    (["features", "--checkpoint", "RUN", "IMAGE"], "--k", ["0", "x"], "an integer >= 1"),
    (["features", "--checkpoint", "RUN", "IMAGE"], "--size", ["0"], "positive int"),
    (["models", "smallgap"], "--num-classes", ["0", "x"], "an integer >= 1"),
    (["models", "smallgap"], "--in-chans", ["0"], "an integer >= 1"),
    (["models", "smallgap"], "--size", ["0", "x", ""], "positive sizes"),
    (["export", "--checkpoint", "RUN"], "--opset", ["0", "10", "x", ""], "an integer >= 11"),
    (["export", "--checkpoint", "RUN"], "--opset", ["999"], "opset must be an integer from 11"),
    (["tour"], "--seed", ["-1"], "an integer >= 0"),
    (["tour", "--shape", "1", "1", "1"], "", ["0"], "an integer >= 1"),
    (["compare"], "--seeds", ["-1", "x"], "an integer >= 0"),
    (["speedrun"], "--seeds", ["x"], "an integer >= 0"),
    (["speedrun"], "--target", ["x", "", "101"], "a percentage: 85, 90 or 94"),
    (["cam", "--checkpoint", "RUN", "IMAGE"], "--cmap", ["nosuch"], "unknown matplotlib colormap"),
    (["reproduce"], "--seeds", ["-1"], "an integer >= 0"),
    (["reproduce", "nin-heads-cifar10"], "--rows", ["NIN + GMP"], "expected row(s) of nin-heads"),
]
CASES = [(head, flag, value, expected) for head, flag, values, expected in TABLE
         for value in values]  # fmt: skip


@pytest.mark.parametrize("head, flag, value, expected", CASES)
def test_bad_option_values_are_one_line(
    head, flag, value, expected, run, image, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = [str(run) if a == "RUN" else str(image) if a == "IMAGE" else a for a in head]
    argv += [flag, value] if flag else [value]
    outputs = {"train": "--out", "cam": "--out", "features": "--out", "export": "--out"}
    if argv[0] in outputs:  # anything written would land in the (checked) empty folder
        suffix = {"export": "x.onnx", "features": "f.png"}.get(argv[0], "out")
        argv += [outputs[argv[0]], str(tmp_path / suffix)]
    _one_line_refusal(argv, capsys, tmp_path, expected)


@pytest.fixture
def one_gib(monkeypatch):
    """The memory check sees 1 GiB available, whatever this machine has."""
    import globalpool.models.memory as memory

    monkeypatch.setattr(memory, "memory_available", lambda device="cpu": GIB)


@pytest.mark.parametrize(
    "verb, size, expected",
    [
        ("predict", "60000", "needs at least 50.3 GiB"),  # the input alone: 3 x 60000 x 75000
        ("predict", "1000000000", "needs at least"),  # int64 would overflow: never allocated
        ("predict", "8000", "needs an estimated"),  # the input fits; the layers do not
        ("cam", "60000", "needs at least"),
        ("features", "60000", "needs at least"),
    ],
)
def test_sizes_beyond_memory_are_refused_before_allocating(
    verb, size, expected, run, image, tmp_path, monkeypatch, capsys, one_gib
):
    monkeypatch.chdir(tmp_path)
    argv = [verb, "--checkpoint", str(run), str(image), "--size", size]
    if verb != "predict":
        argv += ["--out", str(tmp_path / ("c" if verb == "cam" else "f.png"))]
    if verb == "features":
        argv += ["--layers", "backbone.0"]
    _one_line_refusal(argv, capsys, tmp_path, expected)
    capsys.readouterr()


def test_models_and_python_entry_points_check_the_size(tmp_path, monkeypatch, capsys, one_gib):
    from globalpool.deploy.export import export_onnx
    from globalpool.models import create_model
    from globalpool.models.memory import InsufficientMemoryError

    monkeypatch.chdir(tmp_path)
    _one_line_refusal(["models", "smallgap", "--size", "1000000"], capsys, tmp_path, "1.0 GiB")
    with pytest.raises(InsufficientMemoryError, match=r"size 20000x20000 \(H x W\)"):
        create_model("fastnet", 10, input_size=20000)
    with pytest.raises(InsufficientMemoryError, match="needs an estimated"):
        export_onnx(create_model("fastnet", 10), tmp_path / "x.onnx", input_size=(6000, 6000))
    assert list(tmp_path.iterdir()) == []


def test_a_batch_beyond_memory_is_refused_before_training(tmp_path, monkeypatch, capsys):
    import globalpool.models.memory as memory

    monkeypatch.setattr(memory, "memory_available", lambda device="cpu": 64 * 2**20)
    out = tmp_path / "runs" / "big"
    argv = ["train", "--model", "smallgap", "--dataset", "shapes", "--epochs", "1",
            "--dataset-kwargs", '{"n_train": 600, "n_test": 100, "size": 64}',
            "--batch-size", "512", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "512 images through this model (forward and backward)" in err
    assert "lower --batch-size" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # not even the lock file or the folders


def test_native_size_means_the_same_in_predict_and_cam(run, image, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(run), str(image), "--size", "native",
                 "--json", "--topk", "1"]) == 0  # fmt: skip
    predicted = json.loads(capsys.readouterr().out)["topk"][0]
    cam_out = tmp_path / "cams"
    argv = ["cam", "--checkpoint", str(run), str(image), "--size", "native", "--topk", "1"]
    assert main([*argv, "--out", str(cam_out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.split()[1] == predicted["class"]
    assert float(line.split()[2].rstrip("%")) == pytest.approx(100 * predicted["prob"], abs=0.06)
    # the native size differs from the training scale here: a different answer is possible
    assert main(["predict", "--checkpoint", str(run), str(image), "--json"]) == 0


def _damage(run, tmp_path, change):
    """A copy of ``run`` whose checkpoints' safetensors headers are ``change(header)``
    (and whose data is ``change``'s second value, when it returns a pair)."""
    import shutil

    bad = tmp_path / "damaged"
    shutil.copytree(run, bad, symlinks=True)
    folder = (bad / "checkpoints").resolve()
    for name in ("best.safetensors", "last.safetensors"):
        raw = (folder / name).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
        result = change(header, data)
        header, data = result if isinstance(result, tuple) else (result, data)
        text = json.dumps(header).encode()
        (folder / name).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return bad


def _first_tensor(header):
    return next(k for k in header if k != "__metadata__")


def _drop(key):
    def change(header, data):
        del header[_first_tensor(header)][key]
        return header

    return change


def _set(key, value):
    def change(header, data):
        header[_first_tensor(header)][key] = value
        return header

    return change


def _overlap(header, data):
    first, second = [k for k in header if k != "__metadata__"][:2]
    header[second]["data_offsets"] = list(header[first]["data_offsets"])
    header[second]["shape"], header[second]["dtype"] = (
        header[first]["shape"],
        header[first]["dtype"],
    )
    return header


@pytest.mark.parametrize(
    "change, fault",
    [
        (lambda h, d: {"a": 1}, "tensor 'a' is a JSON int, not an object"),
        (lambda h, d: [1, 2], "is not a safetensors file (bad header)"),
        (_drop("data_offsets"), "has no data_offsets"),
        (_drop("dtype"), "has no dtype"),
        (_drop("shape"), "has no shape"),
        (_set("dtype", "F33"), "unknown dtype 'F33'"),
        (_set("shape", [2, "x"]), "a shape that is not a list of sizes"),
        (_set("shape", [-1]), "a shape that is not a list of sizes"),
        (_set("data_offsets", [8, 4]), "bad data_offsets [8, 4]"),
        (_set("data_offsets", [0]), "bad data_offsets [0]"),
        (_set("data_offsets", [0, 10**12]), "its data_offsets span 1000000000000"),
        (_overlap, "overlap in the data"),
        (lambda h, d: (h, d[: len(d) // 2]), "is truncated"),
        (lambda h, d: ({**h, "__metadata__": {"epoch": 1}}, d), "__metadata__ must map"),
    ],
)
def test_damaged_checkpoint_headers_are_named(change, fault, run, image, tmp_path, capsys):
    from globalpool.models.io import load_run

    bad = _damage(run, tmp_path, change)
    with pytest.raises(ValueError) as err:
        load_run(bad)
    assert "best.safetensors" in str(err.value) and fault in str(err.value)
    assert main(["predict", "--checkpoint", str(bad), str(image)]) == 2
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and fault in line


def test_memory_estimate_grows_with_the_pixels_and_counts_a_backward_pass():
    from globalpool.machine import memory_available
    from globalpool.models import create_model
    from globalpool.models.memory import activation_bytes, format_bytes

    model = create_model("fastnet", 10)
    small, large = (activation_bytes(model, 3, (s, s)) for s in (64, 1024))
    assert 200 < large / small < 300  # 256x the pixels: spatial maps dominate
    assert activation_bytes(model, 3, (64, 64), grad=True) > small
    assert activation_bytes(model, 3, (64, 64), batch=4, grad=True) == pytest.approx(
        4 * activation_bytes(model, 3, (64, 64), grad=True), rel=0.01
    )
    assert memory_available("cpu") > 0
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * GIB) == "3.0 GiB"
    np.testing.assert_equal(activation_bytes(model, 3, (1, 75001)), None)  # cannot run
