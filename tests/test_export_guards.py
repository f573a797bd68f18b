"""Exported graphs refuse what PyTorch refuses: too-small images, masks of the wrong
shape, masks with no valid pixel (issue 15, item 6).

The ONNX files are run in a bare onnxruntime session here (no globalpool runner), so the
refusal comes from the graph itself; globalpool's own runner is checked separately for
a clear ValueError before the graph runs.
"""

from __future__ import annotations

import pytest
import torch

from globalpool.deploy import export_onnx, export_torchscript
from globalpool.deploy.export import onnx_runner
from globalpool.deploy.guards import MaskMatchesImage
from globalpool.deploy.masked import MaskedClassifier
from globalpool.models import create_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fastnet():
    torch.manual_seed(0)
    return create_model("fastnet", 10, pool="avg").eval()


@pytest.fixture(scope="module")
def masked_file(fastnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("guards") / "masked.onnx"
    export_onnx(fastnet, path, mask=True)
    return path


@pytest.fixture(scope="module")
def plain_file(fastnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("guards") / "plain.onnx"
    export_onnx(fastnet, path)
    return path


def session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def images(n, h, w, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed)).numpy()


def test_pytorch_refuses_what_the_graph_must_refuse(fastnet):
    assert min(fastnet.min_input_size) > 4  # the case from the issue: a 4x4 image
    with pytest.raises(ValueError, match="minimum input size"):
        fastnet(torch.randn(1, 3, 4, 4))
    net = MaskedClassifier(fastnet)
    empty = torch.ones(2, 32, 32, dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ValueError, match=r"no valid \(True\) position for sample\(s\) \[1\]"):
        net(torch.randn(2, 3, 32, 32), empty)


def test_onnx_graph_refuses_too_small_image(fastnet, plain_file):
    sess = session(plain_file)
    low_h, low_w = fastnet.min_input_size
    ok = sess.run(None, {"image": images(2, low_h, low_w)})[0]
    expected = fastnet(torch.from_numpy(images(2, low_h, low_w))).detach().numpy()
    assert abs(ok - expected).max() < 1e-4
    for h, w in [(4, 4), (low_h - 1, low_w), (low_h, low_w - 1)]:
        with pytest.raises(Exception, match="input_at_least_min_size/Gather"):
            sess.run(None, {"image": images(1, h, w)})


def test_onnx_graph_refuses_empty_mask(masked_file):
    sess = session(masked_file)
    mask = torch.ones(3, 32, 32, dtype=torch.bool)
    sess.run(None, {"image": images(3, 32, 32), "mask": mask.numpy()})
    mask[2] = False  # the issue: NaN logits came back for this sample
    with pytest.raises(Exception, match="mask_has_valid_pixel/Gather"):
        sess.run(None, {"image": images(3, 32, 32), "mask": mask.numpy()})


@pytest.mark.parametrize(
    "shape",
    [(2, 32, 31), (2, 1, 32), (1, 32, 32), (2, 32 * 32, 1), (2, 16, 64)],
    ids=["short", "broadcastable-row", "broadcastable-batch", "same-count-flat", "same-count"],
)
def test_onnx_graph_refuses_mask_of_wrong_shape(masked_file, fastnet, shape):
    mask = torch.ones(*shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask must have shape \(N, H, W\) = \(2, 32, 32\)"):
        MaskMatchesImage()(torch.zeros(2, 3, 32, 32), mask)
    with pytest.raises(Exception, match="mask_matches_image/Gather"):
        session(masked_file).run(None, {"image": images(2, 32, 32), "mask": mask.numpy()})


def test_globalpool_runner_gives_clear_errors(fastnet, plain_file, masked_file):
    run = onnx_runner(plain_file)
    with pytest.raises(ValueError, match=r"input size \(4, 4\) is below .* minimum input size"):
        run((torch.randn(1, 3, 4, 4),))
    run_masked = onnx_runner(masked_file)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    with pytest.raises(ValueError, match="no valid"):
        run_masked((torch.randn(1, 3, 32, 32), mask))
    with pytest.raises(ValueError, match="mask must have shape"):
        run_masked((torch.randn(1, 3, 32, 32), torch.ones(1, 16, 16, dtype=torch.bool)))


def test_torchscript_refuses_too_small_image(fastnet, tmp_path):
    path = tmp_path / "fastnet.pt"
    export_torchscript(fastnet, path)
    loaded = torch.jit.load(str(path))
    with pytest.raises(Exception):  # noqa: B017 (torch's own error type differs by version)
        loaded(torch.randn(1, 3, 4, 4))
