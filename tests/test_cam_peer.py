"""The CAM family against an independent implementation, pytorch-grad-cam (1.5.7; the
``test`` extra installs it without its own torch requirements, see .ci/run), on the
shipped fmnist-smallgap-gap model and correctly classified official test images.

Equal where both follow the papers: Grad-CAM, HiResCAM, XGrad-CAM, Layer-CAM; Score-CAM
once both upsample alike; Ablation-CAM on layers whose output is >= 0. Where they differ,
the test pins the documented difference:

- pytorch-grad-cam keeps the hooked tensor without a copy: at a layer followed by an
  in-place ReLU it maps the ReLU's output. It is run on a twin of the model without
  in-place ops; globalpool on the model itself (and must agree).
- Score-CAM: pytorch-grad-cam upsamples the activations with ``align_corners=True``
  (``nn.UpsamplingBilinear2d``), globalpool with ``align_corners=False`` as the authors'
  code does; with its upsampling switched to globalpool's the maps are equal.
- Grad-CAM++: pytorch-grad-cam adds 1e-6 to the alpha denominator (the paper has none).
- Ablation-CAM: on a layer with negative outputs pytorch-grad-cam fills the ablated
  channel with ``min - 1e7`` instead of zero (the paper's ablation): not compared there.
- Eigen-CAM: pytorch-grad-cam centres the activations, keeps the SVD's sign and applies
  a ReLU; globalpool projects the activations themselves (the paper's ``O V_1``), signed
  so the map sums >= 0. Both are checked against numpy on the same activations.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

FASHION_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
if not FASHION_MNIST.is_dir():
    pytest.skip("needs ../shared/data/fashion-mnist", allow_module_level=True)

with warnings.catch_warnings():  # a torchvision built for another torch: still imports
    warnings.simplefilter("ignore")
    try:
        from globalpool.models.vision_compat import import_torchvision

        import_torchvision()
    except ImportError:
        pass
    pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import globalpool  # noqa: E402
from globalpool.analysis.cam import compute_cam  # noqa: E402
from globalpool.analysis.features import capture_activations  # noqa: E402
from globalpool.data import load_dataset, normalize  # noqa: E402

# backbone.12: a conv (negative outputs) followed by ReLU(inplace=True); 13: that ReLU;
# 7: the second block's last conv; 14: the last feature map (after max pooling)
LAYERS = ("backbone.12", "backbone.13", "backbone.7", "backbone.14")
NONNEGATIVE = ("backbone.13", "backbone.14")


@pytest.fixture(scope="module")
def setup():
    model = globalpool.load("fmnist-smallgap-gap").eval()
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    test = load_dataset("fashion_mnist", path=FASHION_MNIST).test
    x = normalize(test.images[:32], model.mean, model.std)
    with torch.no_grad():
        correct = (model(x).argmax(1) == test.labels[:32]).nonzero()[:6, 0]
    return model, twin, x[correct], test.labels[:32][correct]


def _scaled(maps: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's per-map scaling (scale_cam_image), at the maps' own size."""
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    return maps / (1e-7 + maps.max(axis=(1, 2), keepdims=True))


def _theirs(cls, twin, layer: str, x, labels, **kwargs) -> np.ndarray:
    module = dict(twin.named_modules())[layer]
    cam = cls(model=twin, target_layers=[module], **kwargs)
    h, w = capture_activations(twin, x[:1], [layer])[layer].shape[-2:]
    cam.get_target_width_height = lambda _x: (w, h)  # their maps at the layer's size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in labels])
    return np.asarray(out, dtype=np.float64)


def _ours(model, method: str, layer: str, x, labels) -> np.ndarray:
    _, raw = compute_cam(model, x, labels, method=method, layer=layer, raw=True)
    return _scaled(raw.double().numpy())


EQUAL = {"gradcam": "GradCAM", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
         "layercam": "LayerCAM"}  # fmt: skip


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("method", sorted(EQUAL))
def test_gradient_methods_equal_pytorch_grad_cam(setup, method, layer):
    model, twin, x, labels = setup
    theirs = _theirs(getattr(pgc, EQUAL[method]), twin, layer, x, labels)
    np.testing.assert_allclose(_ours(model, method, layer, x, labels), theirs, atol=2e-5)


def _gradcam_pp_by_hand(twin, layer: str, x, labels, eps: float) -> np.ndarray:
    """Grad-CAM++ in float64 numpy from the layer's output and gradient (plain autograd
    on the twin), with ``eps`` added to the alpha denominator."""
    kept = []
    handle = dict(twin.named_modules())[layer].register_forward_hook(
        lambda _m, _i, out: kept.append(out)
    )
    logits = twin(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), kept[0])
    a, g = kept[0].detach().double().numpy(), grad.double().numpy()
    denom = 2 * g**2 + a.sum(axis=(2, 3), keepdims=True) * g**3 + eps
    alpha = np.where(g != 0, g**2 / np.where(denom != 0, denom, 1.0), 0.0)
    weights = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))
    return _scaled(np.maximum(np.einsum("nc,nchw->nhw", weights, a), 0))


@pytest.mark.parametrize("layer", LAYERS)
def test_gradcam_plus_plus_differs_only_by_their_epsilon(setup, layer):
    model, twin, x, labels = setup
    theirs = _theirs(pgc.GradCAMPlusPlus, twin, layer, x, labels)
    ours = _ours(model, "gradcam++", layer, x, labels)
    np.testing.assert_allclose(ours, _gradcam_pp_by_hand(twin, layer, x, labels, 0.0), atol=1e-4)
    np.testing.assert_allclose(theirs, _gradcam_pp_by_hand(twin, layer, x, labels, 1e-6),
                               atol=1e-4)  # fmt: skip


@pytest.mark.parametrize("layer", LAYERS)
def test_score_cam_equals_pytorch_grad_cam_once_upsampled_alike(setup, layer, monkeypatch):
    from pytorch_grad_cam import score_cam

    model, twin, x, labels = setup
    aligned = _theirs(pgc.ScoreCAM, twin, layer, x, labels)
    monkeypatch.setattr(score_cam.torch.nn, "UpsamplingBilinear2d",
                        lambda size: nn.Upsample(size=size, mode="bilinear"))  # fmt: skip
    theirs = _theirs(pgc.ScoreCAM, twin, layer, x, labels)
    ours = _ours(model, "scorecam", layer, x, labels)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.abs(ours - aligned).max() > 1e-3  # the upsampling is what differed


@pytest.mark.parametrize("layer", NONNEGATIVE)
def test_ablation_cam_equals_pytorch_grad_cam_on_nonnegative_layers(setup, layer):
    model, twin, x, labels = setup
    theirs = _theirs(pgc.AblationCAM, twin, layer, x, labels)
    np.testing.assert_allclose(_ours(model, "ablationcam", layer, x, labels), theirs, atol=1e-4)


@pytest.mark.parametrize("layer", LAYERS)
def test_eigen_cam_differs_as_documented(setup, layer):
    model, twin, x, labels = setup
    theirs = _theirs(pgc.EigenCAM, twin, layer, x, labels)
    acts = capture_activations(model, x, [layer])[layer].double().numpy()
    ours = _ours(model, "eigencam", layer, x, labels)
    for i, a in enumerate(acts):
        o = a.reshape(a.shape[0], -1).T  # (hw, C)
        _, _, vt = np.linalg.svd(o, full_matrices=False)
        paper = o @ vt[0]
        paper = paper if paper.sum() >= 0 else -paper
        np.testing.assert_allclose(ours[i], _scaled(paper.reshape(1, *a.shape[1:]))[0],
                                   atol=1e-5)  # fmt: skip
        centred = o - o.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        # the SVD's sign is whatever LAPACK returns: theirs is one of the two
        options = [_scaled(np.maximum(s * centred @ vt[0], 0).reshape(1, *a.shape[1:]))[0]
                   for s in (1.0, -1.0)]  # fmt: skip
        assert min(np.abs(theirs[i] - opt).max() for opt in options) < 1e-4
