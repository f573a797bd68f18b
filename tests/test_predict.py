"""``predict``: input kinds, sizing rules, batching, against a hand-computed softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from globalpool.deploy import find_images, predict, predict_proba, to_image_tensors
from globalpool.deploy.prediction import target_size
from globalpool.models.classifier import Classifier

MEAN, STD = [0.5, 0.45, 0.4], [0.25, 0.2, 0.3]


def toy_model(head: str = "pool-linear") -> Classifier:
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)
    )
    model = Classifier(backbone, 4, head=head, input_size=(12, 12)).eval()
    model.classes, model.mean, model.std = ["ant", "bee", "cat", "dog"], MEAN, STD
    return model


def reference_probs(model, uint8_hwc: np.ndarray) -> np.ndarray:
    """Independent path: numpy normalisation, one image at a time."""
    x = (uint8_hwc.astype(np.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(
        STD, np.float32
    )
    with torch.no_grad():
        logits = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy()
    e = np.exp(logits - logits.max())
    return e / e.sum()


def random_image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_every_input_kind_gives_the_same_tensor(tmp_path):
    array = random_image(9, 7, 0)
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    kinds = [
        str(path),
        path,
        Image.fromarray(array),
        array,
        torch.from_numpy(array).permute(2, 0, 1).contiguous(),  # uint8 (C, H, W)
        expected.clone(),  # float (C, H, W) in [0, 1]
    ]
    for item in kinds:
        (got,) = to_image_tensors(item)
        assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-6)
    batch = torch.stack([expected, expected * 0.5])  # (N, C, H, W) counts as N images
    assert len(to_image_tensors([batch, array])) == 3


def test_grey_and_alpha_inputs():
    grey = np.full((5, 6), 200, np.uint8)
    (rgb,) = to_image_tensors(grey, channels=3)
    assert rgb.shape == (3, 5, 6) and torch.allclose(rgb, torch.full((3, 5, 6), 200 / 255))
    rgba = Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA")
    assert to_image_tensors(rgba)[0].shape == (3, 4, 4)
    (luma,) = to_image_tensors(np.full((2, 2, 3), 255, np.uint8), channels=1)
    assert luma.shape == (1, 2, 2) and torch.allclose(luma, torch.ones(1, 2, 2), atol=1e-3)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        to_image_tensors(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(TypeError, match="file path, PIL image"):
        to_image_tensors(42)
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        to_image_tensors(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="5 channels"):
        to_image_tensors(torch.zeros(5, 4, 4))
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        to_image_tensors(str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        to_image_tensors(bad)
    with pytest.raises(ValueError, match="no images"):
        to_image_tensors([])


def test_predict_matches_reference_softmax_and_keeps_order():
    model = toy_model()
    images = [random_image(12, 12, 1), random_image(20, 14, 2), random_image(12, 12, 3)]
    probs = predict_proba(model, images, batch_size=1, size="native")
    for image, row in zip(images, probs, strict=True):
        np.testing.assert_allclose(row.numpy(), reference_probs(model, image), atol=1e-5)
    top = predict(model, images, topk=2, size="native")
    assert [len(t) for t in top] == [2, 2, 2]
    for row, t in zip(probs, top, strict=True):
        best = int(row.argmax())
        assert t[0]["index"] == best and t[0]["class"] == model.classes[best]
        assert t[0]["prob"] == pytest.approx(float(row[best]))
        assert t[0]["prob"] >= t[1]["prob"]
    assert len(predict(model, images[0], topk=99)[0]) == 4  # capped at the class count


def test_pooling_head_size_option():
    model = toy_model()
    assert target_size(model, (20, 40), size="native") == (20, 40)
    assert target_size(model, (20, 40), size=10) == (10, 20)  # shorter side, aspect kept
    assert target_size(model, (20, 40), size=(8, 9)) == (8, 9)
    image = random_image(24, 24, 4)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255,
        size=(12, 12),
        mode="bilinear",
        antialias=True,
    )[0]
    np.testing.assert_allclose(
        predict_proba(model, image, size=12).numpy(),
        predict_proba(model, resized, size="native").numpy(),
        atol=1e-6,
    )


def test_default_is_the_training_scale_and_native_far_from_it_warns(recwarn):
    model = toy_model()  # trained at 12x12
    assert target_size(model, (24, 48)) == (12, 24)  # shorter side to 12, aspect kept
    assert target_size(model, (12, 12)) == (12, 12)
    image = random_image(36, 36, 5)
    default = predict_proba(model, image).numpy()
    np.testing.assert_allclose(default, predict_proba(model, image, size=12).numpy(), atol=1e-6)
    assert not recwarn.list
    with pytest.warns(UserWarning, match=r"3x the training scale \(12, 12\).*not scale invariant"):
        predict_proba(model, image, size="native")
    with pytest.raises(ValueError, match="more than the 16,777,216 fed at native size"):
        target_size(model, (5000, 4000), size="native")
    assert target_size(model, (5000, 4000)) == (15, 12)  # the default resizes instead
    with pytest.raises(ValueError, match="'native', an int"):
        target_size(model, (20, 20), size="big")


def test_fc_head_resizes_to_trained_size():
    model = toy_model("fc")
    assert target_size(model, (50, 30)) == (12, 12)
    probs = predict_proba(model, [random_image(50, 30, 5), random_image(12, 12, 6)])
    assert probs.shape == (2, 4)
    np.testing.assert_allclose(
        probs[1].numpy(), reference_probs(model, random_image(12, 12, 6)), atol=1e-5
    )
    with pytest.raises(ValueError, match="fixed-size FC head"):
        predict(model, random_image(12, 12, 0), size=20)


def test_predict_argument_errors():
    model = toy_model()
    with pytest.raises(ValueError, match="topk"):
        predict(model, random_image(12, 12, 0), topk=0)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, random_image(12, 12, 0), batch_size=0)
    with pytest.raises(ValueError, match="positive"):
        predict(model, random_image(12, 12, 0), size=(0, 5))


def test_find_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.bmp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images([tmp_path])]
    assert found == ["a.JPG", "b.png", "sub/c.bmp"]
    with pytest.raises(FileNotFoundError, match="missing"):
        find_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        find_images([tmp_path / "empty"])


def test_decompression_bomb_is_a_one_line_error(tmp_path, monkeypatch):
    from PIL import Image

    from globalpool.data import read_image

    path = tmp_path / "big.png"
    Image.fromarray(random_image(30, 30, 6)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 900 px > 2x the limit: an error
    with pytest.raises(ValueError, match="too large to decode safely"):
        read_image(path)
