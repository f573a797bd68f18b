"""ONNX and TorchScript export: every pool, mask input, fixed-size FC heads.

Exported files are run (onnxruntime / torch.jit.load) here, in the test, at three input
sizes and compared with eager PyTorch; the export's own verification is switched off so
the check does not rely on the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from globalpool.deploy import MaskedClassifier, export_onnx, export_torchscript
from globalpool.deploy.export import read_export_metadata
from globalpool.deploy.masked import backbone_stride, downsample_mask
from globalpool.models.classifier import Classifier
from globalpool.pool import create_pool, list_pools

ort = pytest.importorskip("onnxruntime")

TOL = 1e-4
SIZES = [(2, 16, 16), (1, 27, 21), (3, 12, 31)]  # (N, H, W): odd sizes exercise ceil modes


def toy_backbone() -> nn.Module:
    """Total stride 4, padded convs: 16x16 -> 4x4 feature maps."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, stride=2, padding=1),
        nn.ReLU(),
    )


def toy_model(head: str = "pool-linear", pool: str = "avg", seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    model = Classifier(toy_backbone(), 5, head=head, pool=pool, input_size=(16, 16))
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN really matters
        bn = model.backbone[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def inputs_at(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 3, h, w, generator=gen)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):  # top-left valid rectangle, different per sample, plus holes
        mask[i, : h - 2 * i - 1, : w // 2 + i + 1] = True
    mask &= torch.rand(n, h, w, generator=gen) > 0.15
    mask[:, 0, 0] = True
    return image, mask


def run_onnx(path, *arrays) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {k: a.numpy() for k, a in zip(names, arrays, strict=True)})[0]


def assert_close(got, expected: torch.Tensor) -> None:
    got = torch.as_tensor(np.asarray(got))
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < TOL


@pytest.mark.parametrize("pool", list_pools())
def test_onnx_every_pool_dynamic_sizes(pool, tmp_path):
    model = toy_model("pool-linear", pool)
    path = tmp_path / f"{pool}.onnx"
    export_onnx(model, path, verify=False)
    for k, (n, h, w) in enumerate(SIZES):
        image, _ = inputs_at(n, h, w, seed=k)
        with torch.no_grad():
            expected = model(image)
        assert_close(run_onnx(path, image), expected)


@pytest.mark.parametrize("pool", list_pools())
def test_onnx_every_pool_with_mask(pool, tmp_path):
    model = toy_model("pool-linear", pool, seed=1)
    path = tmp_path / f"{pool}-mask.onnx"
    export_onnx(model, path, mask=True, verify=False)
    masked = MaskedClassifier(model)
    for k, (n, h, w) in enumerate(SIZES):
        image, mask = inputs_at(n, h, w, seed=10 + k)
        with torch.no_grad():
            expected = masked(image, mask)
            assert torch.isfinite(expected).all()
        assert_close(run_onnx(path, image, mask), expected)
    # All pixels valid: the masked graph must agree with the plain model.
    image, _ = inputs_at(2, 20, 24, seed=99)
    full = torch.ones(2, 20, 24, dtype=torch.bool)
    with torch.no_grad():
        assert_close(run_onnx(path, image, full), model(image))


@pytest.mark.parametrize("pool", list_pools())
def test_torchscript_every_pool(pool, tmp_path):
    per_map = create_pool(pool, channels=4).keeps_channels  # class maps, where it can pool them
    model = toy_model("classmap" if per_map else "pool-linear", pool, seed=2)
    plain, with_mask = tmp_path / f"{pool}.pt", tmp_path / f"{pool}-mask.pt"
    export_torchscript(model, plain, verify=False)
    export_torchscript(model, with_mask, mask=True, verify=False)
    loaded, loaded_mask = torch.jit.load(str(plain)), torch.jit.load(str(with_mask))
    masked = MaskedClassifier(model)
    with torch.no_grad():
        for k, (n, h, w) in enumerate(SIZES):
            image, mask = inputs_at(n, h, w, seed=20 + k)
            assert_close(loaded(image), model(image))
            assert_close(loaded_mask(image, mask), masked(image, mask))


def test_masked_avg_matches_hand_computation(tmp_path):
    """The mask is carried to the feature grid as 'any valid pixel in the stride block'."""
    model = toy_model("pool-linear", "avg", seed=3)
    path = tmp_path / "avg-mask.onnx"
    export_onnx(model, path, mask=True, verify=False)
    image, mask = inputs_at(3, 23, 18, seed=5)
    with torch.no_grad():
        feats = model.forward_features(image).numpy()  # (N, C, 6, 5)
    h, w = feats.shape[-2:]
    m = mask.numpy()
    expected = []
    for i in range(3):
        cells = np.array(
            [[m[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].any() for c in range(w)] for r in range(h)]
        )
        pooled = feats[i][:, cells].mean(axis=1)
        weight = model.head.fc.weight.detach().numpy()
        expected.append(weight @ pooled + model.head.fc.bias.detach().numpy())
    assert_close(run_onnx(path, image, mask), torch.tensor(np.stack(expected)))


def test_masked_pool_linear_keeps_bias_free_linear_and_logit_scale():
    """airbench's head (max pool, Linear without bias, times 1/9) through the masked path."""
    torch.manual_seed(4)
    model = Classifier(
        toy_backbone(), 5, head="pool-linear", pool="max", input_size=(16, 16),
        head_kwargs={"bias": False, "logit_scale": 1 / 9},
    ).eval()  # fmt: skip
    image, mask = inputs_at(2, 20, 24, seed=6)
    with torch.no_grad():
        feats = model.forward_features(image).numpy()  # (N, C, 5, 6)
        got = MaskedClassifier(model)(image, mask)
        full = MaskedClassifier(model)(image, torch.ones(2, 20, 24, dtype=torch.bool))
        assert_close(full, model(image))
    h, w = feats.shape[-2:]
    m, weight = mask.numpy(), model.head.fc.weight.detach().numpy()
    expected = []
    for i in range(2):
        cells = np.array(
            [[m[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].any() for c in range(w)] for r in range(h)]
        )
        expected.append(weight @ feats[i][:, cells].max(axis=1) / 9)
    assert_close(got, torch.tensor(np.stack(expected)))


def test_downsample_mask_against_numpy():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(2, 13, 10, generator=gen) > 0.8
    got = downsample_mask(mask, (5, 4), (3, 3)).numpy()
    m = mask.numpy()
    ref = np.array(
        [
            [[m[n, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3].any() for c in range(4)] for r in range(5)]
            for n in range(2)
        ]
    )
    np.testing.assert_array_equal(got, ref)


def test_backbone_stride():
    assert backbone_stride(toy_model()) == (4, 4)


def test_fc_head_fixed_size_and_no_mask(tmp_path):
    import onnx

    model = toy_model("fc")
    path = tmp_path / "fc.onnx"
    export_onnx(model, path, verify=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    for n in (1, 4, 2):
        image, _ = inputs_at(n, 16, 16, seed=n)
        with torch.no_grad():
            assert_close(run_onnx(path, image), model(image))
    with pytest.raises(ValueError, match="pooling head"):
        export_onnx(model, tmp_path / "fc-mask.onnx", mask=True)
    with pytest.raises(ValueError, match="pooling head"):
        export_torchscript(model, tmp_path / "fc-mask.pt", mask=True)
    assert not (tmp_path / "fc-mask.onnx").exists()


def test_pool_head_graph_is_dynamic_and_carries_metadata(tmp_path):
    import onnx

    model = toy_model("classmap", "max")
    model.classes, model.mean, model.std = list("abcde"), [0.5, 0.4, 0.3], [0.2, 0.2, 0.25]
    path = tmp_path / "m.onnx"
    result = export_onnx(model, path, mask=True)  # with its own verification this time
    assert result.max_abs_diff is not None and result.max_abs_diff < TOL
    assert len(result.verified_shapes) == 3
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image", "mask"]
    image_dims = graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in image_dims] == [True, False, True, True]
    meta = read_export_metadata(path)
    assert meta["classes"] == list("abcde") and meta["mean"] == [0.5, 0.4, 0.3]
    assert meta["inputs"] == ["image", "mask"] and meta["dynamic_height_width"]
    # The training size travels with the file: the size to resize to (scale policy).
    assert meta["input_size"] == [16, 16]
    ts = tmp_path / "m.pt"
    export_torchscript(model, ts)
    assert read_export_metadata(ts)["std"] == [0.2, 0.2, 0.25]


def test_export_errors(tmp_path):
    with pytest.raises(TypeError, match=r"nn\.Module"):
        export_onnx("not a model", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(toy_model(), tmp_path / "x.onnx", exporter="magic")
    with pytest.raises(FileNotFoundError):
        read_export_metadata(tmp_path / "missing.onnx")


def test_dynamo_exporter_when_available(tmp_path):
    pytest.importorskip("onnxscript")
    model = toy_model("pool-linear", "avg")
    path = tmp_path / "dynamo.onnx"
    export_onnx(model, path, exporter="dynamo", verify=False)
    for k, (n, h, w) in enumerate(SIZES):
        image, _ = inputs_at(n, h, w, seed=k)
        with torch.no_grad():
            assert_close(run_onnx(path, image), model(image))


def test_export_help_states_the_scale_policy(capsys):
    from globalpool.cli.main import main

    assert main(["export", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "not scale invariance" in text and "training input size" in text
