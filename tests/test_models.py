"""Models: every architecture x every head x every pool, sizes, reset, model_args."""

import json

import pytest
import torch

from globalpool.heads import list_heads
from globalpool.models import Classifier, count_params, create_model, list_models, model_entry
from globalpool.pool import create_pool, list_pools

MODELS = list_models()
OURS = ["allcnn_c", "fastnet", "lenet5", "nin", "smallgap", "vgg_small"]


def _x(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_list_models():
    assert set(OURS) <= set(MODELS) and sorted(MODELS) == MODELS


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("head", list_heads())
def test_every_model_every_head(name, head):
    torch.manual_seed(0)
    # a small FC hidden layer keeps large-input models (alexnet: 9216 -> 4096) cheap here
    # and large-input models are built at 64x64 instead of their own size
    head_kwargs = {"hidden": [32]} if head == "fc" else None
    size = None if model_entry(name).input_size[0] <= 64 else 64
    model = create_model(name, 7, head=head, head_kwargs=head_kwargs, input_size=size)
    assert isinstance(model, Classifier)
    assert model.head_kind == head and model.num_classes == 7
    assert model.pool_name == (None if head == "fc" else "avg")
    h, w = model.input_size
    x = _x((2, model.in_chans, h, w))
    model.eval()
    feats = model.forward_features(x)
    assert feats.shape[:2] == (2, model.num_features)
    assert tuple(feats.shape[2:]) == model.feature_size
    out = model(x)
    assert out.shape == (2, 7)
    torch.testing.assert_close(model.forward_head(feats), out)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.ndim == 2 and pre.shape[0] == 2
    # model_args is JSON and rebuilds the same architecture
    args = json.loads(json.dumps(model.model_args))
    again = create_model(**args)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.eval()(x), out)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_every_pool(name):
    torch.manual_seed(0)
    model = create_model(name, 5, head="pool-linear").eval()
    x = _x((2, model.in_chans, *model.min_input_size))
    for head in ("pool-linear", "classmap"):
        for pool in list_pools():
            if head == "classmap" and not create_pool(pool, channels=5).keeps_channels:
                with pytest.raises(ValueError, match="use it in a pool-linear head"):
                    model.reset_classifier(5, head=head, pool=pool)
                continue
            model.reset_classifier(5, head=head, pool=pool)
            assert (model.head_kind, model.pool_name) == (head, pool)
            out = model(x)
            assert out.shape == (2, 5) and torch.isfinite(out).all(), (head, pool)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("head", ["classmap", "pool-linear"])
def test_pooling_heads_take_other_sizes(name, head):
    own = create_model(name, head=head)
    if own.min_input_size[0] <= 24:  # built on 32x32, run on smaller, larger, non-square
        model = create_model(name, 4, head=head, input_size=32, in_chans=3)
        sizes = [(24, 24), (48, 48), (64, 40)]
    else:  # a large-input model (alexnet): its minimum, and two other sizes
        mh, mw = own.min_input_size
        model = create_model(name, 4, head=head, input_size=2 * mh, in_chans=3)
        sizes = [(mh, mw), (2 * mh, mw + 9), (mh + 1, 2 * mw)]
    model.eval()
    for size in sizes:
        assert model(_x((1, 3, *size))).shape == (1, 4)


@pytest.mark.parametrize("name", MODELS)
def test_min_input_size_is_the_minimum(name):
    model = create_model(name, 3, head="classmap").eval()
    mh, mw = model.min_input_size
    c = model.in_chans
    assert model(_x((1, c, mh, mw))).shape == (1, 3)
    if mh > 1:
        with pytest.raises(ValueError, match=rf"minimum input size \({mh}, {mw}\)"):
            model(_x((1, c, mh - 1, mw + 5)))
        # the limit is real: the backbone itself cannot run one pixel below it
        with pytest.raises(RuntimeError):
            model.backbone(_x((1, c, mh - 1, mw)))


def test_min_input_sizes():
    expected = {  # from the layer lists, by hand
        "lenet5": (16, 16),  # 5x5 conv, /2, 5x5 conv, /2: 16 -> 12 -> 6 -> 2 -> 1
        "allcnn_c": (9, 9),  # two stride-2 3x3 convs then a valid 3x3: 9 -> 5 -> 3 -> 1
        "smallgap": (8, 8),  # three 2x2 max pools
        "vgg_small": (8, 8),
        "fastnet": (9, 9),  # 2x2 stem: 9 -> 8, then 3 pools -> 1
        "nin": (1, 1),  # same-padded convs, padded pools
    }
    for name, size in expected.items():
        assert create_model(name, head="classmap").min_input_size == size, name


def test_fc_head_is_tied_to_its_input_size():
    model = create_model("lenet5", 10)
    assert model.head_kind == "fc" and model.min_input_size == (32, 32)
    with pytest.raises(ValueError, match=r"built for input size \(32, 32\), got \(48, 48\)"):
        model(_x((1, 3, 48, 48)))
    other = create_model("lenet5", 10, input_size=(64, 40))
    assert other(_x((1, 3, 64, 40))).shape == (1, 10)
    assert other.head.feature_size == (13, 7)


def test_bad_inputs_are_clear():
    model = create_model("fastnet", 10)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        model(_x((1, 1, 32, 32)))
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        create_model("resnet")
    with pytest.raises(ValueError, match="unknown head"):
        create_model("nin", head="gap")
    with pytest.raises(ValueError, match="unknown pool"):
        create_model("nin", pool="median")
    with pytest.raises(TypeError, match="bad arguments for model 'nin'"):
        create_model("nin", widths=(1, 2))
    with pytest.raises(TypeError, match="bad arguments for the 'classmap' head"):
        create_model("nin", head_kwargs={"hidden": [10]})
    with pytest.raises(ValueError, match=r"minimum input size is \(16, 16\)"):
        create_model("lenet5", input_size=12)


def test_defaults_and_in_chans():
    small = create_model("smallgap")
    assert (small.in_chans, small.input_size, small.head_kind) == (1, (28, 28), "classmap")
    assert small(_x((2, 1, 28, 28))).shape == (2, 10)
    assert create_model("smallgap", in_chans=3).backbone[0].in_channels == 3
    lenet = create_model("lenet5", in_chans=1)
    assert lenet.backbone[0].in_channels == 1 and lenet.head.hidden == (120, 84)
    assert create_model("fastnet").head_kind == "pool-linear"
    assert create_model("fastnet", widths=(8, 16, 24)).num_features == 24


def test_smallgap_norm_variant():
    """norm=True puts a BatchNorm after each of the six convs (conv bias dropped), keeps
    the article's layout and sizes, and is recorded in model_args; the default has none."""
    plain = create_model("smallgap", 6, in_chans=3, input_size=64)
    normed = create_model("smallgap", 6, in_chans=3, input_size=64, norm=True)
    kinds = lambda m: [type(x).__name__ for x in m.backbone]  # noqa: E731
    assert "BatchNorm2d" not in kinds(plain)
    assert kinds(normed).count("BatchNorm2d") == 6
    assert kinds(normed)[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert all(c.bias is None for c in normed.backbone if isinstance(c, torch.nn.Conv2d))
    x = _x((2, 3, 64, 64))
    assert normed.forward_features(x).shape == plain.forward_features(x).shape == (2, 32, 8, 8)
    assert normed.model_args["norm"] is True


def test_reset_classifier():
    torch.manual_seed(0)
    model = create_model("lenet5", 10)
    backbone_state = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.reset_classifier(3, head="pool-linear", pool="gem")
    assert (model.num_classes, model.head_kind, model.pool_name) == (3, "pool-linear", "gem")
    assert model.min_input_size == (16, 16)
    assert model(_x((1, 3, 20, 24))).shape == (1, 3)
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, backbone_state[k])  # backbone untouched
    assert model.model_args["head"] == "pool-linear" and model.model_args["pool"] == "gem"
    assert create_model(**model.model_args).head.pool_name == "gem"
    model.eval()
    model.reset_classifier(4)  # keeps kind and pool, and the eval mode
    assert not model.head.training
    assert (model.num_classes, model.head_kind, model.pool_name) == (4, "pool-linear", "gem")
    model.reset_classifier(4, head="fc")
    assert model.pool_name is None and model.min_input_size == (32, 32)
    assert count_params(model)["head"] == 48120 + 10164 + 84 * 4 + 4


def test_nin_class_map_conv_is_its_last_1x1():
    model = create_model("nin", 10)
    assert model.head_kind == "classmap" and model.pool_name == "avg"
    conv = model.head.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (192, 10, (1, 1))
    convs = [m for m in model.backbone if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (192, 5), (160, 1), (96, 1), (192, 5), (192, 1), (192, 1), (192, 3), (192, 1),
    ]  # fmt: skip
    logits, maps = model.eval().head.forward_with_maps(model.forward_features(_x((1, 3, 32, 32))))
    assert maps.shape == (1, 10, 8, 8)
    torch.testing.assert_close(logits, maps.mean((2, 3)))
