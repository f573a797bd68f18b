"""Parameter and FLOP counts, against numbers computed by hand from the layer shapes."""

import pytest
from torch import nn

from globalpool.models import count_flops, count_params, create_model


def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


def linear_params(fin, fout):
    return fin * fout + fout


def test_nin_published_count():
    # Lin et al. 2013, cuda-convnet CIFAR-10 definition, with biases
    assert count_params(create_model("nin", 10)) == {
        "total": 966_986,
        "backbone": 966_986 - conv_params(192, 10, 1),
        "head": conv_params(192, 10, 1),
    }


def test_nin_with_batch_norm_count():
    # norm=True: the feature extractor's 8 convs lose their biases, each gains a
    # BatchNorm's weight and bias (the class-map conv keeps its bias)
    widths = (192, 160, 96, 192, 192, 192, 192, 192)
    total = 966_986 - sum(widths) + 2 * sum(widths)
    model = create_model("nin", 10, norm=True)
    assert count_params(model)["total"] == total
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(widths)


def test_allcnn_c_published_count():
    # Springenberg et al. 2014: "1.4M" (exactly 1,369,738 for 10 classes)
    assert count_params(create_model("allcnn_c", 10))["total"] == 1_369_738


def test_lenet5_fc_versus_gap_split():
    backbone = conv_params(3, 6, 5) + conv_params(6, 16, 5)  # 456 + 2416
    fc_head = linear_params(16 * 5 * 5, 120) + linear_params(120, 84) + linear_params(84, 10)
    gap_head = linear_params(16, 10)  # pool-linear: GAP then Linear(16, 10)
    classmap_head = conv_params(16, 10, 1)  # 1x1 conv to the class maps, then GAP
    assert count_params(create_model("lenet5", 10, head="fc")) == {
        "total": backbone + fc_head,
        "backbone": backbone,
        "head": fc_head,
    }
    assert count_params(create_model("lenet5", 10, head="pool-linear", pool="avg")) == {
        "total": backbone + gap_head,
        "backbone": backbone,
        "head": gap_head,
    }
    assert count_params(create_model("lenet5", 10, head="classmap"))["head"] == classmap_head
    assert gap_head / fc_head < 0.003  # the GAP head removes almost all head parameters


def test_lenet5_flops_by_hand():
    # FlopCounterMode: 2 FLOPs per multiply-add, convs and matmuls only
    macs = 6 * 28 * 28 * (3 * 5 * 5) + 16 * 10 * 10 * (6 * 5 * 5)
    fc = 400 * 120 + 120 * 84 + 84 * 10
    model = create_model("lenet5", 10)
    assert count_flops(model, 32) == 2 * (macs + fc)
    gap = create_model("lenet5", 10, head="pool-linear")
    assert count_flops(gap, (32, 32)) == 2 * (macs + 16 * 10)


def test_nin_flops_by_hand_and_size():
    def macs(size):
        layers = [  # (cin, cout, k, spatial side)
            (3, 192, 5, size), (192, 160, 1, size), (160, 96, 1, size),
            (96, 192, 5, size // 2), (192, 192, 1, size // 2), (192, 192, 1, size // 2),
            (192, 192, 3, size // 4), (192, 192, 1, size // 4), (192, 10, 1, size // 4),
        ]  # fmt: skip
        return sum(cin * cout * k * k * s * s for cin, cout, k, s in layers)

    model = create_model("nin", 10)
    assert count_flops(model, 32) == 2 * macs(32)
    assert count_flops(model, 64) == 2 * macs(64)
    assert model.training  # count_flops restores the mode


def test_counting_needs_a_classifier():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match=r"backbone and \.head"):
        count_params(plain)
    with pytest.raises(TypeError, match="in_chans"):
        count_flops(plain, 8)
