"""CAM, class-map CAM and Grad-CAM against hand computations (numpy / plain torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from globalpool.analysis.cam import cam_method, compute_cam, normalize_maps
from globalpool.heads import ClassMapHead, FCHead, PoolLinearHead


class TinyClassifier(nn.Module):
    """The Classifier contract in miniature: backbone -> head."""

    def __init__(self, head: nn.Module, in_chans: int = 3, channels: int = 4):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(in_chans, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = head

    def forward_features(self, x):
        return self.backbone(x)

    def forward_head(self, feats, pre_logits=False):
        return self.head(feats)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def tiny(head_kind: str, pool: str = "avg", k: int = 3, c: int = 4, size: int = 8):
    torch.manual_seed(0)
    if head_kind == "classmap":
        head = ClassMapHead(c, k, pool=pool)
    elif head_kind == "pool-linear":
        head = PoolLinearHead(c, k, pool=pool)
    else:
        head = FCHead(c, k, (size // 2, size // 2))
    return TinyClassifier(head, channels=c).eval()


def test_cam_method_dispatch():
    assert cam_method(tiny("classmap")) == "classmap"
    assert cam_method(tiny("classmap", pool="max")) == "classmap"
    assert cam_method(tiny("pool-linear")) == "cam"
    assert cam_method(tiny("pool-linear", pool="max")) == "gradcam"
    assert cam_method(tiny("fc")) == "gradcam"


def test_classmap_cam_is_the_class_map():
    model = tiny("classmap")
    x = torch.randn(5, 3, 8, 8)
    logits, raw = compute_cam(model, x, raw=True)
    feats = model.backbone(x)
    class_maps = F.conv2d(feats, model.head.conv.weight, model.head.conv.bias)  # (N, K, h, w)
    pred = class_maps.mean(dim=(2, 3)).argmax(1)
    expected = torch.stack([class_maps[i, pred[i]] for i in range(5)])
    torch.testing.assert_close(raw, expected)
    torch.testing.assert_close(logits, model(x))
    # an explicit class per sample
    idx = torch.tensor([0, 1, 2, 0, 1])
    _, raw = compute_cam(model, x, idx, raw=True)
    torch.testing.assert_close(raw, torch.stack([class_maps[i, idx[i]] for i in range(5)]))


def test_pool_linear_cam_is_the_weighted_feature_sum():
    model = tiny("pool-linear")
    x = torch.randn(4, 3, 10, 6)
    logits, raw = compute_cam(model, x, 2, raw=True)
    feats = model.backbone(x).detach().numpy()  # (N, C, h, w)
    w = model.head.fc.weight.detach().numpy()
    b = model.head.fc.bias.detach().numpy()
    by_hand = np.zeros((4, *feats.shape[2:]))
    for c in range(feats.shape[1]):
        by_hand += w[2, c] * feats[:, c]
    np.testing.assert_allclose(raw.numpy(), by_hand, rtol=1e-5, atol=1e-6)
    # spatial mean + bias is the logit, for every image
    np.testing.assert_allclose(
        raw.mean(dim=(1, 2)).numpy() + b[2], logits[:, 2].numpy(), rtol=1e-5, atol=1e-6
    )


def test_pool_linear_cam_includes_the_logit_scale():
    model = tiny("pool-linear")
    torch.manual_seed(1)
    model.head = PoolLinearHead(4, 3, pool="avg", bias=False, logit_scale=0.25).eval()
    x = torch.randn(3, 3, 8, 8)
    logits, raw = compute_cam(model, x, 1, raw=True)
    # no bias: the map's spatial mean is the logit itself, scale included
    np.testing.assert_allclose(
        raw.mean(dim=(1, 2)).numpy(), logits[:, 1].numpy(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(logits, model(x))


def test_gradcam_fc_head_matches_hand_computation():
    # logit_k = W_k . flatten(f) + b_k, so d logit_k / d f = W_k reshaped to (C, h, w)
    model = tiny("fc")
    x = torch.randn(3, 3, 8, 8)
    logits, raw = compute_cam(model, x, [0, 1, 2], raw=True)
    feats = model.backbone(x).detach().numpy()
    _, c, h, w = feats.shape
    weight = model.head.fc.weight.detach().numpy()
    for i, k in enumerate([0, 1, 2]):
        alpha = weight[k].reshape(c, h, w).mean(axis=(1, 2))
        expected = np.maximum((alpha[:, None, None] * feats[i]).sum(0), 0.0)
        np.testing.assert_allclose(raw[i].numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, model(x))


def test_gradcam_max_pool_head_matches_hand_computation():
    # logit_k = sum_c w_kc max_s f_cs + b_k: the gradient is w_kc at the argmax of channel
    # c, zero elsewhere, so alpha_c = w_kc / (h w).
    model = tiny("pool-linear", pool="max")
    x = torch.randn(2, 3, 8, 8)
    _, raw = compute_cam(model, x, raw=True)
    pred = model(x).argmax(1)
    feats = model.backbone(x).detach().numpy()
    weight = model.head.fc.weight.detach().numpy()
    h, w = feats.shape[2:]
    for i in range(2):
        alpha = weight[int(pred[i])] / (h * w)
        expected = np.maximum((alpha[:, None, None] * feats[i]).sum(0), 0.0)
        np.testing.assert_allclose(raw[i].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_gradcam_batched_equals_one_by_one_and_leaves_model_alone():
    model = tiny("fc")
    model.train()
    x = torch.randn(4, 3, 8, 8)
    _, batched = compute_cam(model, x)
    singles = torch.cat([compute_cam(model, x[i : i + 1])[1] for i in range(4)])
    torch.testing.assert_close(batched, singles)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():  # works under no_grad too
        torch.testing.assert_close(compute_cam(model, x)[1], batched)


@pytest.mark.parametrize("kind,pool", [("classmap", "avg"), ("pool-linear", "avg"), ("fc", "")])
def test_maps_upsampled_to_input_and_normalised(kind, pool):
    model = tiny(kind, pool=pool or "avg")
    x = torch.randn(3, 3, 8, 8)
    _, raw = compute_cam(model, x, raw=True)
    _, maps = compute_cam(model, x)
    assert maps.shape == (3, 8, 8) and maps.dtype == torch.float32
    up = F.interpolate(raw[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    up = up.numpy()
    for i in range(3):
        span = up[i].max() - up[i].min()
        expected = (up[i] - up[i].min()) / span if span > 1e-12 else np.zeros_like(up[i])
        np.testing.assert_allclose(maps[i].numpy(), expected, atol=1e-5)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_pooling_head_takes_other_input_sizes():
    model = tiny("classmap")
    _, maps = compute_cam(model, torch.randn(2, 3, 14, 22))
    assert maps.shape == (2, 14, 22)


def test_normalize_constant_map_is_zero():
    maps = torch.stack([torch.full((3, 3), 5.0), torch.arange(9.0).view(3, 3)])
    out = normalize_maps(maps)
    assert torch.equal(out[0], torch.zeros(3, 3))
    assert float(out[1].min()) == 0.0 and float(out[1].max()) == 1.0


def test_forced_gradcam_and_bad_inputs():
    model = tiny("classmap")
    x = torch.randn(2, 3, 8, 8)
    _, maps = compute_cam(model, x, method="gradcam")
    assert maps.shape == (2, 8, 8)
    with pytest.raises(ValueError, match="supports 'classmap'"):
        compute_cam(model, x, method="cam")
    with pytest.raises(ValueError, match="out of range"):
        compute_cam(model, x, 3)
    with pytest.raises(ValueError, match="one per image"):
        compute_cam(model, x, [0, 1, 2])
    with pytest.raises(TypeError, match="integers"):
        compute_cam(model, x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        compute_cam(model, torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="Classifier"):
        compute_cam(nn.Conv2d(3, 3, 1), x)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        compute_cam(tiny("fc"), x)


@pytest.mark.parametrize(
    "head,pool,method",
    [
        ("classmap", "avg", "classmap"),
        ("pool-linear", "avg", "cam"),
        ("pool-linear", "max", "gradcam"),
        ("fc", None, "gradcam"),
    ],
)
def test_real_models_every_head_gets_a_map(head, pool, method):
    from globalpool.models import create_model

    torch.manual_seed(0)
    model = create_model(
        "smallgap", num_classes=4, head=head, pool=pool, in_chans=3, input_size=(16, 16)
    )
    x = torch.randn(3, 3, 16, 16)
    assert cam_method(model) == method
    logits, maps = compute_cam(model, x)
    torch.testing.assert_close(logits, model.eval()(x))
    assert maps.shape == (3, 16, 16)
    peaks = maps.amax(dim=(1, 2))  # 1 for every map, 0 where Grad-CAM's ReLU left nothing
    assert all(float(p) == pytest.approx(1.0) or float(p) == 0.0 for p in peaks)
    assert float(maps.min()) >= 0.0
    if method == "cam":  # spatial mean + bias == logit on the real PoolLinearHead
        _, raw = compute_cam(model, x, 1, raw=True)
        torch.testing.assert_close(raw.mean(dim=(1, 2)) + model.head.fc.bias[1], logits[:, 1])
