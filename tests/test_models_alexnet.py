"""AlexNet: parameter counts worked out by hand from the layer list, shapes, every head."""

import pytest
import torch
from torch import nn

from globalpool.models import count_params, create_model, list_models


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out  # weights + bias


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# The single-tower layout, layer by layer (Krizhevsky 2012 / the PyTorch port).
CONVS = _conv(3, 64, 11) + _conv(64, 192, 5) + _conv(192, 384, 3) + _conv(384, 256, 3)
CONVS += _conv(256, 256, 3)
FC_1000 = _linear(256 * 6 * 6, 4096) + _linear(4096, 4096) + _linear(4096, 1000)


def test_hand_counts_are_the_published_ones():
    # The hand formula itself, against the numbers the issue (and torchvision) quote.
    assert FC_1000 == 58_631_144
    assert CONVS + FC_1000 == 61_100_840


@pytest.fixture(scope="module")
def alexnet_fc():
    torch.manual_seed(0)
    return create_model("alexnet", 1000)


def test_registered_with_fc_default(alexnet_fc):
    assert "alexnet" in list_models()
    assert alexnet_fc.head_kind == "fc"
    assert alexnet_fc.input_size == (224, 224)
    assert alexnet_fc.num_features == 256
    assert alexnet_fc.feature_size == (6, 6)


def test_fc_head_parameter_counts(alexnet_fc):
    counts = count_params(alexnet_fc)
    assert counts["total"] == 61_100_840 == CONVS + FC_1000
    assert counts["head"] == 58_631_144 == FC_1000
    assert counts["backbone"] == CONVS
    # the FC parameters are exactly those of the three Linear layers
    linear = sum(p.numel() for m in alexnet_fc.modules() if isinstance(m, nn.Linear)
                 for p in m.parameters())  # fmt: skip
    assert linear == FC_1000


@pytest.mark.parametrize("head", ["classmap", "pool-linear"])
def test_pooling_heads_leave_a_single_layer(head):
    model = create_model("alexnet", 1000, head=head, pool="max")
    counts = count_params(model)
    # 1x1 conv 256 -> 1000 (classmap) or Linear 256 -> 1000: the same count
    assert counts["head"] == 256 * 1000 + 1000
    assert counts["total"] == CONVS + 256 * 1000 + 1000


def test_forward_shapes_and_sizes(alexnet_fc):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    alexnet_fc.eval()
    with torch.no_grad():
        assert alexnet_fc.forward_features(x).shape == (2, 256, 6, 6)
        assert alexnet_fc(x).shape == (2, 1000)
    # the FC head is tied to 224x224: a clear ValueError, not a matmul error
    with pytest.raises(ValueError, match="FC head built for input size"):
        alexnet_fc(torch.randn(1, 3, 256, 256))


def test_pooling_head_runs_on_other_sizes_down_to_63():
    model = create_model("alexnet", 5, head="classmap", pool="avg").eval()
    assert model.min_input_size == (63, 63)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 63, 63)).shape == (1, 5)
        assert model(torch.randn(1, 3, 256, 192)).shape == (1, 5)
    with pytest.raises(ValueError, match="minimum input size"):
        model(torch.randn(1, 3, 62, 62))


def test_rebuilds_from_model_args():
    model = create_model("alexnet", 7, head="pool-linear", pool="gem", in_chans=1)
    clone = create_model(**model.model_args)
    assert count_params(clone) == count_params(model)
    assert clone.in_chans == 1 and clone.pool_name == "gem"
