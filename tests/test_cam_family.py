"""The CAM family against maps derived by hand (numpy), not by the code under test.

The model: an identity backbone (features = the input, C = 2 channels, 3x3) and an
average-pool + linear head, so logit_k = sum_c W_kc mean_s(A_cs) + b_k and the gradient
of logit_k with respect to A_cs is W_kc / 9 at every position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from globalpool.analysis.cam import compute_cam
from globalpool.models import create_model
from globalpool.models.classifier import Classifier

W = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])  # (K=3, C=2)
B = np.array([0.1, -0.2, 0.3])


def identity_model() -> Classifier:
    model = Classifier(nn.Identity(), 3, head="pool-linear", pool="avg", in_chans=2,
                       input_size=(3, 3))  # fmt: skip
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.tensor(W))
        model.head.fc.bias.copy_(torch.tensor(B))
    return model.eval()


def x_batch():
    g = np.random.default_rng(0)
    return g.uniform(0.1, 2.0, size=(2, 2, 3, 3))


def relu(a):
    return np.maximum(a, 0.0)


def hand_maps(method: str, a: np.ndarray, k: int) -> np.ndarray:
    grad = np.broadcast_to((W[k] / 9.0)[:, None, None], a.shape)  # (C, h, w)
    if method == "gradcam":
        return relu(np.tensordot(grad.mean(axis=(1, 2)), a, axes=1))
    if method == "gradcam++":
        g2, g3 = grad**2, grad**3
        denom = 2 * g2 + a.sum(axis=(1, 2))[:, None, None] * g3
        alpha = np.where(grad != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        weights = (alpha * relu(grad)).sum(axis=(1, 2))
        return relu(np.tensordot(weights, a, axes=1))
    if method == "layercam":
        return relu((relu(grad) * a).sum(axis=0))
    if method == "hirescam":  # gradient times activation, position by position
        return relu((grad * a).sum(axis=0))
    if method == "xgradcam":
        weights = (grad * a).sum(axis=(1, 2)) / a.sum(axis=(1, 2))
        return relu(np.tensordot(weights, a, axes=1))
    if method == "ablationcam":  # logit with channel c zeroed: W_k . mean(A) - W_kc mean(A_c)
        y = W[k] @ a.mean(axis=(1, 2)) + B[k]
        y_without = np.array([y - W[k, c] * a[c].mean() for c in range(2)])
        return relu(np.tensordot((y - y_without) / y, a, axes=1))
    if method == "eigencam":  # the paper's O V_1: O (hw, C) not centred
        flat = a.reshape(2, 9).T
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        proj = flat @ vt[0]
        return (proj if proj.sum() >= 0 else -proj).reshape(3, 3)
    if method == "scorecam":  # Algorithm 1: softmax over channels of the class logit
        scores = []
        for c in range(2):
            m = a[c]
            mask = (m - m.min()) / (m.max() - m.min())
            masked = a * mask  # the identity backbone: the masked input is the features
            scores.append((W @ masked.mean(axis=(1, 2)) + B)[k])
        w = np.exp(np.array(scores) - max(scores))
        w /= w.sum()
        return relu(np.tensordot(w, a, axes=1))
    raise AssertionError(method)


ALL = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam",
       "ablationcam"]  # fmt: skip


@pytest.mark.parametrize("method", ALL)
def test_raw_maps_match_the_hand_derivation(method):
    model, x = identity_model(), x_batch()
    classes = [1, 2]
    _, maps = compute_cam(model, torch.tensor(x, dtype=torch.float32), classes, raw=True,
                          method=method, batch_size=1)  # fmt: skip
    for i, k in enumerate(classes):
        np.testing.assert_allclose(maps[i].numpy(), hand_maps(method, x[i], k), rtol=1e-4,
                                   atol=1e-6)  # fmt: skip


def test_any_named_layer_and_batches_alike():
    model = create_model("smallgap", 3, head="fc", in_chans=3, input_size=(16, 16)).eval()
    x = torch.randn(3, 3, 16, 16)
    names = [n for n, _ in model.named_modules()]
    assert "backbone.2" in names
    for method in ALL:
        _, maps = compute_cam(model, x, 0, method=method, layer="backbone.2", batch_size=3)
        singles = torch.cat([
            compute_cam(model, x[i : i + 1], 0, method=method, layer="backbone.2")[1]
            for i in range(3)
        ])  # fmt: skip
        assert maps.shape == (3, 16, 16)
        # Ablation-CAM's weights are differences of logits from batches of other sizes
        # (batch_size 3 against the default): float32 rounding of the convs moves them
        atol = 2e-4 if method == "ablationcam" else 1e-5
        torch.testing.assert_close(maps, singles, atol=atol, rtol=1e-4)
        assert all(p.grad is None for p in model.parameters())


def test_layer_errors_are_clear():
    model = create_model("smallgap", 3, head="classmap", in_chans=3, input_size=(16, 16))
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        compute_cam(model, x, method="gradcam", layer="nope")
    with pytest.raises(ValueError, match="reads the head's own maps"):
        compute_cam(model, x, method="classmap", layer="backbone.2")


def test_family_is_what_the_cli_offers():
    """cmd_cam writes the family out (no torch at parser build): the copies agree."""
    from globalpool.analysis.cam_family import FAMILY, GRADIENT_METHODS
    from globalpool.cli import cmd_cam

    assert ("auto", *FAMILY) == cmd_cam.METHOD_CHOICES and tuple(ALL) == FAMILY
    assert cmd_cam._GRADIENT_MAPS == GRADIENT_METHODS


def test_ablation_at_a_named_layer_matches_zeroing_that_channel_by_hand():
    model = create_model("smallgap", 3, head="fc", in_chans=3, input_size=(16, 16)).eval()
    x = torch.randn(1, 3, 16, 16)
    layer = dict(model.named_modules())["backbone.2"]
    acts = []
    # a copy: backbone.2's output is overwritten by the in-place ReLU that follows it
    handle = layer.register_forward_hook(lambda _m, _i, o: acts.append(o.clone()))
    with torch.no_grad():
        y = model(x)[0, 1].item()
    handle.remove()
    a = acts[0][0].double()
    drops = []
    for c in range(a.shape[0]):  # zero channel c by hand, one forward pass each
        handle = layer.register_forward_hook(
            lambda _m, _i, o, c=c: o.index_fill(1, torch.tensor([c]), 0.0)
        )
        with torch.no_grad():
            drops.append((y - model(x)[0, 1].item()) / y)
        handle.remove()
    hand = torch.relu(torch.einsum("c,chw->hw", torch.tensor(drops, dtype=torch.float64), a))
    _, raw = compute_cam(model, x, 1, method="ablationcam", layer="backbone.2", raw=True,
                         batch_size=5)  # fmt: skip
    torch.testing.assert_close(raw[0].double(), hand, rtol=1e-4, atol=1e-5)


def _without_inplace(model: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return twin


@pytest.mark.parametrize("method", ALL)
def test_a_layer_before_an_inplace_relu_gives_that_layers_map(method):
    """The shipped fmnist-smallgap-gap: backbone.12 is a Conv2d followed by
    ReLU(inplace=True). Its map is the conv output's, as on the same model without
    in-place ops, not the ReLU's."""
    import globalpool

    torch.manual_seed(0)
    model = globalpool.load("fmnist-smallgap-gap").eval()
    assert isinstance(model.backbone[13], nn.ReLU) and model.backbone[13].inplace
    twin = _without_inplace(model).eval()
    x = torch.randn(2, 1, 28, 28)
    _, maps = compute_cam(model, x, 1, method=method, layer="backbone.12", raw=True,
                          batch_size=8)  # fmt: skip
    _, expected = compute_cam(twin, x, 1, method=method, layer="backbone.12", raw=True,
                              batch_size=8)  # fmt: skip
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)
    if method in ("gradcam", "eigencam"):  # and the conv's map is not the ReLU's
        _, relu_maps = compute_cam(twin, x, 1, method=method, layer="backbone.13", raw=True)
        assert (maps - relu_maps).abs().max() > 0.1 * maps.abs().max()


def test_capture_activations_keeps_the_output_before_an_inplace_relu():
    from globalpool.analysis.features import capture_activations

    torch.manual_seed(0)
    model = create_model("smallgap", 3, head="fc", in_chans=3, input_size=(16, 16)).eval()
    x = torch.randn(2, 3, 16, 16)
    got = capture_activations(model, x, ["backbone.12", "backbone.13"])
    want = capture_activations(_without_inplace(model), x, ["backbone.12", "backbone.13"])
    torch.testing.assert_close(got["backbone.12"], want["backbone.12"])
    assert got["backbone.12"].min() < 0 and got["backbone.13"].min() == 0


FASHION_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_score_cam_maps_of_two_classes_differ_on_a_trained_model():
    """Score-CAM is class-discriminative: on the shipped fmnist-smallgap-gap, the maps of
    each image's top two classes correlate 0.75 on average over 8 correctly classified
    test images (the double softmax globalpool used before: 0.95)."""
    import globalpool
    from globalpool.data import load_dataset, normalize

    model = globalpool.load("fmnist-smallgap-gap").eval()
    test = load_dataset("fashion_mnist", path=FASHION_MNIST).test
    x = normalize(test.images[:64], model.mean, model.std)
    with torch.no_grad():
        logits = model(x)
    correct = (logits.argmax(1) == test.labels[:64]).nonzero()[:8, 0]
    top2 = logits[correct].topk(2, dim=1).indices
    _, first = compute_cam(model, x[correct], top2[:, 0], method="scorecam")
    _, second = compute_cam(model, x[correct], top2[:, 1], method="scorecam")
    r = [np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
         for a, b in zip(first, second, strict=True)]  # fmt: skip
    assert np.mean(r) < 0.85
