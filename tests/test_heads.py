"""Heads: shapes, every pool, reference values from plain torch, clear errors."""

import pytest
import torch
import torch.nn.functional as F

from globalpool.heads import ClassMapHead, FCHead, PoolLinearHead, create_head, list_heads
from globalpool.pool import create_pool, list_pools


def _x(c=16, h=5, w=7, n=3, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_list_heads():
    assert list_heads() == ["fc", "classmap", "pool-linear"]


@pytest.mark.parametrize("pool", list_pools())
@pytest.mark.parametrize("kind", ["classmap", "pool-linear"])
def test_pooling_heads_take_every_pool(kind, pool):
    torch.manual_seed(0)
    if kind == "classmap" and not create_pool(pool, channels=10).keeps_channels:
        with pytest.raises(ValueError, match="use it in a pool-linear head"):
            create_head(kind, 16, 10, pool=pool)
        return
    head = create_head(kind, 16, 10, pool=pool)
    assert head.pool_name == pool and head.num_classes == 10 and head.fixed_size is False
    x = _x().requires_grad_()
    out = head(x)
    assert out.shape == (3, 10)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # any spatial size
    assert head(_x(h=1, w=1)).shape == (3, 10)
    assert head(_x(h=11, w=3)).shape == (3, 10)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_classmap_matches_plain_torch(kernel_size):
    torch.manual_seed(0)
    x = _x()
    for pool, reduce in [
        ("avg", lambda m: m.mean((2, 3))),
        ("max", lambda m: m.amax((2, 3))),
        # feat_mult 2: the head sums the average and the max of each class map
        ("catavgmax", lambda m: m.mean((2, 3)) + m.amax((2, 3))),
    ]:
        head = ClassMapHead(16, 10, pool=pool, kernel_size=kernel_size)
        maps_ref = F.conv2d(x, head.conv.weight, head.conv.bias, padding=kernel_size // 2)
        logits, maps = head.forward_with_maps(x)
        assert maps.shape == (3, 10, 5, 7)
        torch.testing.assert_close(maps, maps_ref)
        torch.testing.assert_close(logits, reduce(maps_ref))
        torch.testing.assert_close(head(x), logits)
    assert sum(p.numel() for p in head.parameters()) == 16 * 10 * kernel_size**2 + 10


def test_classmap_rejects_other_kernels():
    with pytest.raises(ValueError, match="kernel_size must be 1 or 3"):
        ClassMapHead(16, 10, kernel_size=5)


def test_pool_linear_matches_plain_torch():
    torch.manual_seed(0)
    x = _x()
    head = PoolLinearHead(16, 10, pool="avg", dropout=0.5).eval()
    torch.testing.assert_close(head.pre_logits(x), x.mean((2, 3)))
    torch.testing.assert_close(head(x), x.mean((2, 3)) @ head.fc.weight.T + head.fc.bias)
    cat = PoolLinearHead(16, 10, pool="catavgmax")
    assert cat.pre_logits(x).shape == (3, 32) and cat.fc.in_features == 32
    assert sum(p.numel() for p in cat.parameters()) == 32 * 10 + 10


def test_fc_head_matches_plain_torch_and_counts():
    torch.manual_seed(0)
    head = FCHead(16, 10, (5, 5), hidden=(120, 84)).eval()
    # LeNet-5's C5/F6/output by hand: 400*120+120 + 120*84+84 + 84*10+10
    assert sum(p.numel() for p in head.parameters()) == 48120 + 10164 + 850
    x = _x(h=5, w=5)
    l1, l2 = head.hidden_layers[0], head.hidden_layers[2]
    ref = F.relu(x.reshape(3, -1) @ l1.weight.T + l1.bias)
    ref = F.relu(ref @ l2.weight.T + l2.bias)
    torch.testing.assert_close(head.pre_logits(x), ref)
    torch.testing.assert_close(head(x), ref @ head.fc.weight.T + head.fc.bias)
    assert head.fixed_size is True and head.pool_name is None and head.feature_size == (5, 5)


def test_fc_head_names_both_sizes():
    head = FCHead(16, 10, (16, 5, 5))  # (C, H, W) accepted too
    with pytest.raises(ValueError, match=r"built for .*\(16, 5, 5\).*received \(16, 6, 5\)"):
        head(_x(h=6, w=5))
    with pytest.raises(ValueError, match="channels"):
        FCHead(16, 10, (8, 5, 5))


def test_fc_head_dropout_layers():
    head = FCHead(8, 3, (2, 2), hidden=(4,), dropout=0.5)
    assert isinstance(head.hidden_layers[-1], torch.nn.Dropout)
    assert FCHead(8, 3, (2, 2)).fc.in_features == 32  # no hidden layer: one Linear


def test_create_head_errors():
    with pytest.raises(ValueError, match="unknown head 'gap'"):
        create_head("gap", 16, 10)
    with pytest.raises(ValueError, match="feature_size"):
        create_head("fc", 16, 10)
    with pytest.raises(ValueError, match="unknown pool"):
        create_head("pool-linear", 16, 10, pool="median")
    with pytest.raises(ValueError, match="num_classes"):
        create_head("classmap", 16, 0)


def test_every_head_is_a_head_that_describes_itself():
    import torch as _torch

    from globalpool.heads import Head, create_head
    from globalpool.models import create_model

    x = _torch.randn(2, 8, 4, 4)
    cases = (
        ("fc", {"feature_size": (4, 4), "hidden": [6]}),
        ("classmap", {"pool": "max"}),
        ("pool-linear", {"pool": "catavgmax"}),
    )
    for kind, kw in cases:
        head = create_head(kind, 8, 5, **kw)
        assert isinstance(head, Head)
        assert head.in_channels == 8 and head.num_classes == 5
        assert head.pre_logits(x).shape == (2, head.num_features)
        assert head(x).shape == (2, 5)
        assert head.fixed_size is (kind == "fc")
        assert (head.pool_name is None) is (kind == "fc")
        before = [p.detach().clone() for p in head.parameters()]
        _torch.manual_seed(123)
        head.reset()
        assert any(not _torch.equal(a, b) for a, b in zip(before, head.parameters(), strict=True))
    assert create_model("smallgap", head="fc", input_size=(16, 16)).fixed_size
    assert not create_model("smallgap", head="classmap").fixed_size


def test_pool_linear_without_bias_and_with_a_logit_scale():
    torch.manual_seed(0)
    x = _x()
    head = PoolLinearHead(16, 10, pool="max", bias=False, logit_scale=1 / 9)
    assert head.fc.bias is None and "logit_scale=0.111111" in repr(head)
    torch.testing.assert_close(head(x), x.amax((2, 3)) @ head.fc.weight.T / 9)
    assert sum(p.numel() for p in head.parameters()) == 16 * 10
    for bad in (0.0, -1.0, float("inf"), True, "2"):
        with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
            PoolLinearHead(16, 10, logit_scale=bad)
