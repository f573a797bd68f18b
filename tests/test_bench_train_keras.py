"""bench_train's Keras contender: the Keras twin computes what the globalpool model does.

Skipped without Keras (the optional ``keras`` extra). The reference is the PyTorch model
itself: its weights are copied into the twin and both must give the same logits, in
both Keras data formats; then the bench runs end to end on tiny data.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

from _keras_model import import_keras, keras_twin, param_counts  # noqa: E402
from globalpool.models import create_model  # noqa: E402

keras = import_keras() if os.environ.get("KERAS_BACKEND", "torch") == "torch" else None
pytestmark = pytest.mark.skipif(keras is None, reason="keras (torch backend) not installed")


def _copy_weights(model: torch.nn.Module, twin) -> None:
    """PyTorch -> Keras weights, layer by layer, in the order both run them."""
    torch_layers = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.BatchNorm2d | torch.nn.Linear)
    ]
    keras_layers = [layer for layer in twin.layers if layer.weights]
    assert len(torch_layers) == len(keras_layers)
    for module, layer in zip(torch_layers, keras_layers, strict=True):
        if isinstance(module, torch.nn.Conv2d):  # (O, I, kh, kw) -> (kh, kw, I, O)
            values = [module.weight.permute(2, 3, 1, 0)]
        elif isinstance(module, torch.nn.Linear):  # (out, in) -> (in, out)
            values = [module.weight.t()]
        else:
            values = [module.weight, module.bias, module.running_mean, module.running_var]
        if not isinstance(module, torch.nn.BatchNorm2d) and module.bias is not None:
            values.append(module.bias)
        layer.set_weights([v.detach().numpy() for v in values])


@pytest.mark.parametrize("kwargs", [{}, {"head": "classmap", "pool": "max"}])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_keras_twin_matches_the_torch_model(kwargs, data_format):
    torch.manual_seed(0)
    model = create_model("fastnet", 5, widths=(8, 8, 16), **kwargs).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a wrong axis would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    twin = keras_twin(keras, model, (3, 20, 20), data_format)
    n_params = sum(p.numel() for p in model.parameters())
    assert param_counts(twin) == {"total": n_params, "trainable": n_params}
    _copy_weights(model, twin)
    x = torch.randn(4, 3, 20, 20)
    with torch.no_grad():
        expected = model(x).numpy()
    keras_x = x.numpy() if data_format == "channels_first" else x.permute(0, 2, 3, 1).numpy()
    got = keras.ops.convert_to_numpy(twin(keras_x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_frozen_stem_stays_frozen():
    model = create_model("fastnet", 5, widths=(8, 8, 8), stem="whiten")
    twin = keras_twin(keras, model, (3, 16, 16), "channels_last")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable < total
    assert param_counts(twin) == {"total": total, "trainable": trainable}


def test_untranslatable_model_is_refused():
    model = create_model("vgg_small", 5)
    with pytest.raises(ValueError, match="FCHead"):
        keras_twin(keras, model, (3, 32, 32), "channels_first")


def test_bench_train_runs_with_keras(tmp_path):
    import bench_train

    out = tmp_path / "bench.json"
    argv = ["--n-train", "80", "--size", "16", "--batch-size", "16", "--epochs", "1"]
    assert bench_train.main([*argv, "--no-augment", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["keras"] == keras.__version__
    assert result["keras_channels_first_params"] == result["torch_params"]
    for fmt in ("channels_first", "channels_last"):
        assert result[f"keras_{fmt}_images_per_s"] > 0
        ratio = result["project_loop_images_per_s"] / result[f"keras_{fmt}_images_per_s"]
        assert result[f"ratio_project_over_keras_{fmt}"] == pytest.approx(ratio, rel=1e-3)
