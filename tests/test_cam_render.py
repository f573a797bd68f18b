"""Overlays and the CAM grid figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from globalpool.analysis.render import (
    cam_grid_figure,
    denormalize,
    heatmap_rgb,
    overlay_heatmap,
    save_figure,
    save_overlay,
    to_hwc_uint8,
)
from globalpool.heads import ClassMapHead, FCHead, PoolLinearHead


class TinyClassifier(nn.Module):
    """The Classifier contract in miniature: backbone (8x8 -> 4x4) -> head."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = head

    def forward_features(self, x):
        return self.backbone(x)

    def forward_head(self, feats, pre_logits=False):
        return self.head(feats)

    def forward(self, x):
        return self.head(self.backbone(x))


def test_overlay_png_has_the_input_size(tmp_path):
    rng = np.random.default_rng(0)
    image = torch.as_tensor(rng.integers(0, 256, (3, 21, 34), dtype=np.uint8))
    cam = torch.rand(5, 7)  # coarser than the image: resized to it
    path = save_overlay(tmp_path / "sub" / "o.png", image, cam, alpha=0.4)
    with Image.open(path) as img:
        assert img.size == (34, 21) and img.mode == "RGB"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_overlay_alpha_blends_exactly():
    image = np.full((4, 6, 3), 100, np.uint8)
    cam = np.linspace(0, 1, 24).reshape(4, 6)
    np.testing.assert_array_equal(overlay_heatmap(image, cam, alpha=0.0), image)
    heat = heatmap_rgb(cam, "viridis")
    np.testing.assert_array_equal(overlay_heatmap(image, cam, alpha=1.0, cmap="viridis"), heat)
    half = overlay_heatmap(image, cam, alpha=0.5, cmap="viridis").astype(int)
    assert np.abs(half - (image.astype(int) + heat.astype(int)) / 2).max() <= 0.5
    # the colormap is matplotlib's
    import matplotlib

    ref = np.rint(matplotlib.colormaps["viridis"](cam)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(heat, ref)
    with pytest.raises(ValueError, match="colormap"):
        heatmap_rgb(cam, "no-such-map")
    with pytest.raises(ValueError, match="alpha"):
        overlay_heatmap(image, cam, alpha=1.5)


def test_to_hwc_uint8_layouts():
    chw = np.arange(2 * 3, dtype=np.uint8).reshape(1, 2, 3)  # grey (1, H, W)
    out = to_hwc_uint8(chw)
    assert out.shape == (2, 3, 3) and (out[..., 0] == out[..., 2]).all()
    assert to_hwc_uint8(np.zeros((5, 7, 3), np.uint8)).shape == (5, 7, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_hwc_uint8(np.zeros((4, 5, 6), np.uint8))


def test_denormalize_roundtrip():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    assert torch.equal(denormalize(x, mean, std), images)


def test_cam_grid_figure_rows_images_columns_heads(tmp_path):
    torch.manual_seed(0)
    models = [
        ("nin", TinyClassifier(ClassMapHead(4, 3)).eval()),
        ("gap", TinyClassifier(PoolLinearHead(4, 3)).eval()),
        ("gmp", TinyClassifier(PoolLinearHead(4, 3, pool="max")).eval()),
        ("fc", TinyClassifier(FCHead(4, 3, (4, 4))).eval()),
    ]
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    fig = cam_grid_figure(models, images, [0.5] * 3, [0.25] * 3, ["a", "b", "c"], labels=[0, 1, 2])
    axes = np.array(fig.axes).reshape(3, 5)
    assert axes[0, 0].get_title() == "input: a"
    assert axes[2, 1].get_title().startswith("nin (classmap)")
    assert axes[0, 2].get_title().startswith("gap (cam)")
    assert axes[1, 3].get_title().startswith("gmp (gradcam)")
    assert axes[1, 4].get_title().startswith("fc (gradcam)")
    path = save_figure(fig, tmp_path / "grid.png")
    with Image.open(path) as img:
        assert img.size[0] > img.size[1]  # 5 columns, 3 rows
    with pytest.raises(ValueError, match="uint8"):
        cam_grid_figure(models, images.float(), [0.5] * 3, [0.25] * 3)
