"""``globalpool cam`` and ``globalpool features`` end to end on a saved run directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from globalpool.cli.main import main
from globalpool.models import create_model
from globalpool.train.checkpoint import save_weights, write_model_json

CLASSES = ["circle", "square", "triangle"]


def make_run(path, head: str, pool: str | None = "avg", in_chans: int = 3):
    """A run directory as ``train`` writes it: model.json + checkpoints/best.safetensors."""
    torch.manual_seed(0)
    model = create_model(
        "smallgap", num_classes=3, head=head, pool=pool, in_chans=in_chans, input_size=(16, 16)
    )
    save_weights(model, path / "checkpoints" / "best.safetensors")
    write_model_json(
        path,
        {
            "model": "smallgap",
            "model_args": model.model_args,
            "classes": CLASSES,
            "mean": [0.5] * in_chans,
            "std": [0.25] * in_chans,
            "input_size": [16, 16],
            "in_chans": in_chans,
        },
    )
    return path


def write_png(path, h, w, mode="RGB"):
    rng = np.random.default_rng(h * 100 + w)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def test_cam_cli_writes_overlays_at_image_size(tmp_path, capsys):
    run = make_run(tmp_path / "run", "classmap")
    a = write_png(tmp_path / "a.png", 16, 16)
    b = write_png(tmp_path / "b.png", 23, 40, mode="L")  # other size, grey: converted to RGB
    out = tmp_path / "cams"
    rc = main(["cam", "--checkpoint", str(run), str(a), str(b), "--out", str(out), "--topk", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "classmap map of" in text
    # a.png is at the training scale (16x16); b.png is resized to it, and says so
    assert "a.png: resized" not in text
    assert "b.png: resized 40x23 -> 28x16 (W x H): the scale the model was trained at" in text
    assert sum(name in text for name in CLASSES) >= 2
    with Image.open(out / "a_cam.png") as img:
        assert img.size == (16, 16)
    with Image.open(out / "b_cam.png") as img:
        assert img.size == (40, 23)  # drawn on the original
    capsys.readouterr()
    rc = main(["cam", "--checkpoint", str(run), str(b), "--out", str(out), "--size", "native"])
    assert rc == 0 and "resized" not in capsys.readouterr().out


def test_cam_cli_fc_head_resizes_and_says_so(tmp_path, capsys):
    run = make_run(tmp_path / "run", "fc", pool=None)
    b = write_png(tmp_path / "big.png", 30, 20)
    rc = main(
        ["cam", "--checkpoint", str(run), str(b), "--out", str(tmp_path), "--class", "square"]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "resized 20x30 -> 16x16" in text and "FC head" in text
    assert "gradcam map of 'square'" in text
    with Image.open(tmp_path / "big_cam.png") as img:
        assert img.size == (20, 30)  # drawn on the original


def test_cam_cli_user_errors(tmp_path, capsys):
    run = make_run(tmp_path / "run", "pool-linear")
    a = write_png(tmp_path / "a.png", 16, 16)
    assert main(["cam", "--checkpoint", str(run), str(a), "--class", "dog"]) == 2
    assert "unknown class 'dog'; this model's classes: circle, square" in capsys.readouterr().err
    assert main(["cam", "--checkpoint", str(run), str(tmp_path / "missing.png")]) == 2
    assert "no such image file" in capsys.readouterr().err
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["cam", "--checkpoint", str(run), str(tmp_path / "bad.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_features_cli(tmp_path, capsys):
    run = make_run(tmp_path / "run", "classmap")
    a = write_png(tmp_path / "a.png", 20, 24)
    assert main(["features", "--checkpoint", str(run), str(a)]) == 0
    listing = capsys.readouterr().out
    assert "head.conv" in listing and "backbone" in listing
    out = tmp_path / "f.png"
    args = ["--layers", "head.conv", "--k", "2", "--out", str(out)]
    rc = main(["features", "--checkpoint", str(run), str(a), *args])
    assert rc == 0 and out.is_file()
    assert main(["features", "--checkpoint", str(run), str(a), "--layers", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown layer name(s) 'nope'; available:" in err and "head.conv" in err


@pytest.mark.parametrize("head,pool,in_chans", [("pool-linear", "max", 3), ("classmap", "gem", 1)])
def test_cam_cli_pooling_heads_any_size(tmp_path, capsys, head, pool, in_chans):
    run = make_run(tmp_path / "run", head, pool, in_chans)
    a = write_png(tmp_path / "wide.png", 18, 44)
    assert main(["cam", "--checkpoint", str(run), str(a), "--out", str(tmp_path)]) == 0
    method = "gradcam" if head == "pool-linear" else "classmap"
    assert f"{method} map of" in capsys.readouterr().out
    with Image.open(tmp_path / "wide_cam.png") as img:
        assert img.size == (44, 18)


def test_cam_after_a_real_training_run(tmp_path, capsys):
    """train (a few steps on shapes) -> load_run -> cam / features on a PNG we write."""
    from globalpool.train import TrainConfig, train

    config = TrainConfig(
        model="smallgap",
        head="pool-linear",
        pool="avg",
        dataset="shapes",
        dataset_kwargs={"n_train": 96, "n_test": 16, "size": 24},
        epochs=1,
        batch_size=32,
        device="cpu",
        out_dir=str(tmp_path / "run"),
        quiet=True,
        tensorboard=False,
    )
    train(config)
    image = write_png(tmp_path / "x.png", 29, 35)
    out = tmp_path / "cams"
    args = [str(image), "--out", str(out), "--class", "triangle", "--topk", "3"]
    assert main(["cam", "--checkpoint", str(tmp_path / "run"), *args]) == 0
    text = capsys.readouterr().out
    assert "cam map of 'triangle'" in text
    assert all(name in text for name in ("circle", "square", "triangle"))
    with Image.open(out / "x_cam.png") as img:
        assert img.size == (35, 29)
    feats = tmp_path / "f.png"
    args = [str(image), "--layers", "backbone.0,head", "--out", str(feats)]
    assert main(["features", "--checkpoint", str(tmp_path / "run"), *args]) == 2
    assert "not a feature map" in capsys.readouterr().err  # the head outputs logits
    args[2] = "backbone.0"
    assert main(["features", "--checkpoint", str(tmp_path / "run"), *args]) == 0
    assert feats.is_file()


@pytest.mark.parametrize("kind", ["classmap", "pool-linear", "fc"])
def test_cam_cli_new_methods_on_every_head(tmp_path, capsys, kind):
    run = make_run(tmp_path / "run", kind, pool=None if kind == "fc" else "avg")
    a = write_png(tmp_path / "a.png", 16, 16)
    args = ["cam", "--checkpoint", str(run), str(a), "--out", str(tmp_path / "o")]
    for method in ("hirescam", "xgradcam", "ablationcam"):
        assert main([*args, "--method", method, "--metrics"]) == 0
        out = capsys.readouterr().out
        assert f"{method} map of" in out
        assert all(w in out for w in ("deletion", "insertion", "average drop", "increase"))
        assert (tmp_path / "o" / "a_cam.png").is_file()


@pytest.mark.parametrize("kind", ["classmap", "pool-linear", "fc"])
def test_cam_cli_scorecam_at_a_named_layer_on_every_head(tmp_path, capsys, kind):
    run = make_run(tmp_path / "run", kind, pool=None if kind == "fc" else "avg")
    a = write_png(tmp_path / "a.png", 16, 16)
    args = ["cam", "--checkpoint", str(run), str(a), "--out", str(tmp_path / "o")]
    assert main([*args, "--method", "scorecam", "--layer", "backbone.0"]) == 0
    assert "scorecam map of" in capsys.readouterr().out
    assert (tmp_path / "o" / "a_cam.png").is_file()
    assert main([*args, "--layer", "backbone.0"]) == 2
    assert "--layer needs a --method" in capsys.readouterr().err


def test_cam_cli_scale_enlarges_small_overlays(tmp_path, capsys):
    run = make_run(tmp_path / "run", "classmap")
    a = write_png(tmp_path / "a.png", 16, 16)
    args = ["cam", "--checkpoint", str(run), str(a), "--out", str(tmp_path / "o")]
    assert main([*args, "--scale", "4"]) == 0
    with Image.open(tmp_path / "o" / "a_cam.png") as img:
        assert img.size == (64, 64)
    assert main([*args, "--scale", "0"]) == 2
    assert "argument --scale: expected an integer in [1, 64]" in capsys.readouterr().err


def test_cam_cli_pxap_against_a_mask_file(tmp_path, capsys):
    """A built-in fashion_canvas item and its true mask, the shipped GAP model: the PxAP
    printed is that of the map compute_cam gives, scored by analysis.wsol.pxap."""
    from globalpool.analysis.cam import compute_cam
    from globalpool.analysis.wsol import pxap
    from globalpool.data import load_dataset, normalize
    from globalpool.deploy import load

    test = load_dataset("fashion_canvas").test
    image, mask = test.images[0], test.masks[0]
    Image.fromarray(image[0].numpy()).save(tmp_path / "item.png")
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(tmp_path / "masks" / "item.png")
    args = ["cam", "--checkpoint", "fmnist-smallgap-gap", str(tmp_path / "item.png"),
            "--size", "native", "--out", str(tmp_path / "o"), "--metrics"]  # fmt: skip
    assert main([*args, "--masks", str(tmp_path / "masks")]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if "PxAP" in t)
    model = load("fmnist-smallgap-gap")
    _, maps = compute_cam(model, normalize(image[None], model.mean, model.std))
    assert line.split()[1] == f"{100 * pxap(maps, mask[None]):.1f}%"
    (tmp_path / "empty").mkdir()
    assert main([*args, "--masks", str(tmp_path / "empty")]) == 2
    assert "no mask for" in capsys.readouterr().err
    assert main([*args[:-1], "--masks", str(tmp_path / "masks")]) == 2
    assert "add --metrics" in capsys.readouterr().err
