"""Every pool against an independent plain-torch formula, in every layout, with masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as TF

from globalpool import functional as F
from globalpool.pool import create_pool, list_pools

# every test here runs with the CPU kernels and with the plain formulas alone
pytestmark = pytest.mark.usefixtures("pool_impl")

ALL = list_pools()  # the registry: every pool, including ones added later


def simpool_reference(x: torch.Tensor, pool, valid: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's equations, float64, one sample and one head at a time: the query is
    Wq times the mean of the (valid) features, the keys Wk times the layer-normed
    features (mean and biased variance over the channels, eps 1e-6), values those."""
    x = x.double()
    wq, wk = pool.query_weight.double(), pool.key_weight.double()
    g, b = pool.norm_weight.double(), pool.norm_bias.double()
    heads = pool.num_heads
    out = []
    for i in range(x.shape[0]):
        v = x[i].flatten(1)  # (C, L)
        if valid is not None:
            v = v[:, valid[i].flatten()]
        c = v.shape[0]
        mu = v.mean(0, keepdim=True)
        var = ((v - mu) ** 2).mean(0, keepdim=True)
        z = (v - mu) / torch.sqrt(var + 1e-6) * g[:, None] + b[:, None]  # (C, L)
        q, k = wq @ v.mean(1), wk @ z
        d = c // heads
        y = []
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            a = torch.softmax(q[part] @ k[part] / math.sqrt(d), 0)  # (L,)
            if pool.gamma is None:
                y.append(z[part] @ a)
            else:
                shifted = (z[part] - z.min() + 1e-6) ** pool.gamma
                y.append((shifted @ a) ** (1 / pool.gamma))
        out.append(torch.cat(y))
    return torch.stack(out)


def map_reference(x: torch.Tensor, pool, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Multihead attention pooling written out, float64, one sample and head at a time."""
    x = x.double()
    w_in, w_out = pool.in_weight.double(), pool.out_weight.double()
    b_in = pool.in_bias.double() if pool.in_bias is not None else torch.zeros(w_in.shape[0])
    b_out = pool.out_bias.double() if pool.out_bias is not None else torch.zeros(w_out.shape[0])
    c = w_out.shape[0]
    wq, wk, wv = w_in[:c], w_in[c : 2 * c], w_in[2 * c :]
    bq, bk, bv = b_in[:c], b_in[c : 2 * c], b_in[2 * c :]
    q = wq @ pool.latent.double() + bq
    d = c // pool.num_heads
    out = []
    for i in range(x.shape[0]):
        v = x[i].flatten(1)  # (C, L)
        if valid is not None:
            v = v[:, valid[i].flatten()]
        k, val = wk @ v + bk[:, None], wv @ v + bv[:, None]
        heads = []
        for h in range(pool.num_heads):
            part = slice(h * d, (h + 1) * d)
            a = torch.softmax(q[part] @ k[part] / math.sqrt(d), 0)
            heads.append(val[part] @ a)
        out.append(w_out @ torch.cat(heads) + b_out)
    return torch.stack(out)


def isqrtcov_numpy(v: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Li et al. 2018, equations as printed, numpy float64, one sample: v (C, M) ->
    triu(sqrt(tr Sigma) Y_N) with Sigma = v Ibar v^T, Ibar = (I - 1 1^T / M) / M."""
    c, m = v.shape
    sigma = v @ ((np.eye(m) - np.ones((m, m)) / m) / m) @ v.T
    trace = np.trace(sigma)
    if trace == 0:
        return np.zeros(c * (c + 1) // 2)
    y, z = sigma / trace, np.eye(c)
    for _ in range(iterations):
        step = (3 * np.eye(c) - z @ y) / 2
        y, z = y @ step, step @ z
    return (np.sqrt(trace) * y)[np.triu_indices(c)]


def isqrtcov_reference(x: torch.Tensor, pool, valid: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`isqrtcov_numpy` per sample of a channels-first x (no reduction layer)."""
    out = []
    for i in range(x.shape[0]):
        v = x[i].detach().double().flatten(1).numpy()
        if valid is not None:
            v = v[:, valid[i].flatten().numpy()]
        out.append(isqrtcov_numpy(v, pool.iterations))
    return torch.from_numpy(np.stack(out))


def reference(name: str, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Plain formula on a channels-first (N, C, *S) tensor, in float64."""
    x = x.double()
    dims = tuple(range(2, x.ndim))
    if name == "avg":
        return x.mean(dims)
    if name == "max":
        return x.amax(dims)
    if name == "avgmax":
        return 0.5 * (x.mean(dims) + x.amax(dims))
    if name == "catavgmax":
        return torch.cat([x.mean(dims), x.amax(dims)], 1)
    if name == "gem":
        return x.clamp(min=1e-6).pow(3.0).mean(dims).pow(1 / 3.0)
    if name == "lse":
        flat = x.flatten(2)
        return (torch.logsumexp(10.0 * flat, -1) - math.log(flat.shape[-1])) / 10.0
    if name == "lp":
        return x.abs().pow(2.0).mean(dims).pow(0.5)
    if name == "mixed":
        return 0.5 * x.amax(dims) + 0.5 * x.mean(dims)
    if name == "attention":
        flat = x.flatten(2)  # (N, C, L)
        attn = torch.softmax(torch.einsum("ncl,c->nl", flat, weight.double()), -1)
        return torch.einsum("ncl,nl->nc", flat, attn)
    if name == "gwap":  # Qiu 2018: m = exp(sigmoid(w . x + b)), y = sum m x / sum m (numpy)
        flat = x.flatten(2).numpy()  # (N, C, L)
        m = np.exp(1 / (1 + np.exp(-(np.einsum("ncl,c->nl", flat, weight.detach().double().numpy())
                                     + GWAP_BIAS))))  # fmt: skip
        return torch.from_numpy((flat * m[:, None]).sum(-1) / m.sum(-1)[:, None])
    if name == "wildcat":  # defaults k_max = k_min = 1, alpha = 0.7: max + 0.7 * min
        return x.amax(dims) + 0.7 * x.amin(dims)
    if name == "stats":  # numpy: mean and population std (variance floored at 1e-5)
        flat = x.flatten(2).numpy()
        std = np.sqrt(np.maximum(flat.var(-1), 1e-5))
        return torch.from_numpy(np.concatenate([flat.mean(-1), std], 1))
    raise AssertionError(name)


GWAP_BIAS = 0.3


def make_pool(name: str, channels: int, **kw):
    pool = create_pool(name, channels=channels, **kw)
    if name in ("attention", "gwap"):
        with torch.no_grad():
            pool.weight.copy_(torch.linspace(-1.0, 1.0, channels))
    if name == "gwap":
        with torch.no_grad():
            pool.bias.fill_(GWAP_BIAS)
    if name in ("simpool", "map"):  # a fixed, non-trivial state (the same for every layout)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in pool.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    return pool


def to_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, *range(2, x.ndim), 1).contiguous()


def test_registry_names():
    assert list_pools() == [
        "avg",
        "max",
        "avgmax",
        "catavgmax",
        "gem",
        "lse",
        "lp",
        "mixed",
        "attention",
        "wildcat",
        "simpool",
        "map",
        "isqrtcov",
        "stats",
        "gwap",
    ]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_max_match_adaptive_pools_and_plain_reductions(nd):
    g = torch.Generator().manual_seed(nd)
    x = torch.randn(2, 5, *([4, 3, 5][:nd]), generator=g)
    dims = tuple(range(2, x.ndim))
    adaptive_avg = getattr(torch.nn, f"AdaptiveAvgPool{nd}d")(1)
    adaptive_max = getattr(torch.nn, f"AdaptiveMaxPool{nd}d")(1)
    torch.testing.assert_close(create_pool("avg")(x), adaptive_avg(x).flatten(1))
    torch.testing.assert_close(create_pool("max")(x), adaptive_max(x).flatten(1))
    torch.testing.assert_close(F.avg_pool(x), x.mean(dims))
    torch.testing.assert_close(F.max_pool(x), x.amax(dims))
    torch.testing.assert_close(F.avg_pool(x, keepdim=True), adaptive_avg(x))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_matches_reference_in_every_layout(name, nd):
    g = torch.Generator().manual_seed(7 + nd)
    x = torch.randn(3, 4, *([5, 3, 2][:nd]), generator=g, dtype=torch.float64)
    pool = make_pool(name, 4).double()
    if name == "simpool":
        expected = simpool_reference(x, pool)
    elif name == "map":
        expected = map_reference(x, pool)
    elif name == "isqrtcov":
        expected = isqrtcov_reference(x, pool)
    else:
        expected = reference(name, x, getattr(pool, "weight", None))
    torch.testing.assert_close(pool(x), expected)
    # channels-last input (N, *S, C) with an explicit data format
    pool_last = make_pool(name, 4, data_format="channels_last").double()
    torch.testing.assert_close(pool_last(to_last(x)), expected)
    # channels-first logical shape in channels_last / channels_last_3d memory format
    if nd in (2, 3):
        fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
        torch.testing.assert_close(pool(x.contiguous(memory_format=fmt)), expected)
    # a non-contiguous view
    torch.testing.assert_close(pool(x.transpose(0, 0)[..., :]), expected)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_keepdim_shapes(name, fmt, nd):
    spatial = [4, 3, 2][:nd]
    x = torch.randn(2, 5, *spatial)
    if fmt == "channels_last":
        x = to_last(x)
    pool = make_pool(name, 5, data_format=fmt, keepdim=True)
    out = pool.out_channels(5)
    expected = (2, out, *[1] * nd) if fmt == "channels_first" else (2, *[1] * nd, out)
    assert pool(x).shape == expected
    assert make_pool(name, 5, data_format=fmt)(x).shape == (2, out)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_masked_pooling_equals_unpadded_crop(name, fmt):
    g = torch.Generator().manual_seed(3)
    sizes = [(5, 6), (2, 3), (1, 1), (4, 2)]
    x = torch.randn(len(sizes), 3, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.zeros(len(sizes), 5, 6, dtype=torch.bool)
    for i, (h, w) in enumerate(sizes):
        mask[i, :h, :w] = True
    x = x.masked_fill(~mask[:, None], 1e3)  # padding that would dominate if it leaked in
    pool = make_pool(name, 3, data_format=fmt).double()
    inp = x if fmt == "channels_first" else to_last(x)
    got = pool(inp, mask)
    for i, (h, w) in enumerate(sizes):
        crop = x[i : i + 1, :, :h, :w]
        crop = crop if fmt == "channels_first" else to_last(crop)
        torch.testing.assert_close(got[i : i + 1], pool(crop))


def test_masked_pooling_3d_and_1d():
    x = torch.randn(2, 3, 4, 3, 2, dtype=torch.float64)
    mask = torch.zeros(2, 4, 3, 2, dtype=torch.bool)
    mask[0] = True
    mask[1, :2, :1, :] = True
    y = F.gem_pool(x, mask)
    torch.testing.assert_close(y[1:], F.gem_pool(x[1:, :, :2, :1, :]))
    x1 = torch.randn(2, 3, 7, dtype=torch.float64)
    m1 = torch.arange(7)[None] < torch.tensor([[7], [3]])
    torch.testing.assert_close(F.lse_pool(x1, m1)[1], F.lse_pool(x1[1:, :, :3])[0])


def test_lse_between_avg_and_max_and_limits():
    x = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    for r in (0.1, 1.0, 10.0, 100.0):
        y = F.lse_pool(x, r=r)
        assert torch.all(y >= x.mean((2, 3)) - 1e-12) and torch.all(y <= x.amax((2, 3)) + 1e-12)
    torch.testing.assert_close(F.lse_pool(x, r=1e-6), x.mean((2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(F.lse_pool(x, r=1e4), x.amax((2, 3)), atol=1e-3, rtol=0)


def test_gem_and_lp_special_orders():
    x = torch.rand(3, 4, 5, 5, dtype=torch.float64) + 0.1
    torch.testing.assert_close(F.gem_pool(x, p=1.0), x.mean((2, 3)))
    torch.testing.assert_close(F.lp_pool(-x, p=1.0), x.mean((2, 3)))
    torch.testing.assert_close(F.lp_pool(x, p=4.0), x.pow(4).mean((2, 3)).pow(0.25))
    torch.testing.assert_close(F.gem_pool(x, p=500.0), x.amax((2, 3)), atol=0.02, rtol=0)


@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_gwap_weight_map_is_bounded_sums_to_one_and_is_what_it_pools_with(fmt):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) * 5
    mask = torch.ones(2, 4, 5, dtype=torch.bool)
    mask[1, :, 3:] = False
    pool = make_pool("gwap", 3, data_format=fmt).double()
    inp = to_last(x) if fmt == "channels_last" else x
    weights = pool.attention_map(inp, mask).double()  # (N, H, W)
    assert weights.shape == (2, 4, 5) and (weights[1, :, 3:] == 0).all()
    torch.testing.assert_close(weights.sum((1, 2)), torch.ones(2, dtype=torch.float64))
    for sample, valid in zip(weights, mask, strict=True):  # exp(sigmoid): within a factor e
        assert sample[valid].max() / sample[valid].min() <= math.e
    torch.testing.assert_close(pool(inp, mask), torch.einsum("nchw,nhw->nc", x, weights))


def test_mixed_and_attention_extremes():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(F.mixed_pool(x, alpha=0.0), x.mean((2, 3)))
    torch.testing.assert_close(F.mixed_pool(x, alpha=1.0), x.amax((2, 3)))
    # a fresh attention pool is average pooling (zero scores), and so is a fresh GWAP
    torch.testing.assert_close(create_pool("attention", channels=3).double()(x), x.mean((2, 3)))
    torch.testing.assert_close(create_pool("gwap", channels=3).double()(x), x.mean((2, 3)))


def test_catavgmax_layout_and_naive():
    x = torch.randn(4, 8, 7, 7)
    naive = torch.cat([TF.adaptive_avg_pool2d(x, 1), TF.adaptive_max_pool2d(x, 1)], 1).flatten(1)
    torch.testing.assert_close(F.catavgmax_pool(x), naive)
    xr = x.clone().requires_grad_()
    torch.testing.assert_close(F.catavgmax_pool(xr), naive)  # the autograd path


def test_module_learnable_parameters():
    assert [n for n, _ in create_pool("gem").named_parameters()] == ["log_p"]
    assert list(create_pool("gem", learn_p=False).parameters()) == []
    assert [n for n, _ in create_pool("lse", learn_r=True).named_parameters()] == ["log_r"]
    assert [n for n, _ in create_pool("mixed").named_parameters()] == ["alpha_logit"]
    assert [n for n, _ in create_pool("attention", channels=4).named_parameters()] == ["weight"]
    gem = create_pool("gem", p=4.0)
    assert float(gem.p.detach()) == pytest.approx(4.0)
    x = torch.rand(2, 3, 4, 4) + 0.5
    gem(x).sum().backward()
    assert gem.log_p.grad is not None and torch.isfinite(gem.log_p.grad)


@pytest.mark.parametrize("k_max, k_min, alpha", [(3, 2, 0.7), (0.25, 0.5, 1.0), (1, 40, 0.0)])
@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_wildcat_is_the_papers_top_and_bottom_means(k_max, k_min, alpha, fmt):
    """Durand et al. 2017, eq. 2: s = 1/k+ sum_{top k+} h + alpha/k- sum_{bottom k-} h,
    with k as a count or a fraction of the (valid) regions, computed here with numpy."""
    import numpy as np

    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 6, 5, generator=g) > 0.4
    mask[:, 0, 0] = True
    arr, valid = x.numpy(), mask.numpy()
    want = np.zeros((2, 3))

    def k_of(k, count):
        return min(k, count) if isinstance(k, int) else max(1, round(k * count))

    for n in range(2):
        top, low = k_of(k_max, int(valid[n].sum())), k_of(k_min, int(valid[n].sum()))
        for c in range(3):
            h = np.sort(arr[n, c][valid[n]])[::-1]
            want[n, c] = h[:top].mean() + alpha * h[-low:].mean()
    pool = create_pool("wildcat", k_max=k_max, k_min=k_min, alpha=alpha, data_format=fmt)
    got = pool(x if fmt == "channels_first" else to_last(x), mask)
    torch.testing.assert_close(got, torch.from_numpy(want))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k_max": 0}, "k_max as a count"),
        ({"k_max": 1.0}, "k_max as a count"),
        ({"k_max": True}, "k_max as a count"),
        ({"k_min": -2}, "k_min as a count"),
        ({"alpha": -0.1}, "alpha >= 0"),
        ({"alpha": float("nan")}, "alpha >= 0"),
    ],
)
def test_wildcat_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_pool("wildcat", **kwargs)


@pytest.mark.parametrize("heads, gamma", [(1, None), (3, None), (2, 2.0), (3, 1.25)])
@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_simpool_is_the_papers_equations_with_heads_gamma_and_masks(heads, gamma, fmt):
    g = torch.Generator().manual_seed(heads)
    x = torch.randn(3, 6, 4, 5, generator=g, dtype=torch.float64)
    valid = torch.ones(3, 4, 5, dtype=torch.bool)
    valid[1, 2:, :] = False
    valid[2, :, 1:] = False
    pool = make_pool("simpool", 6, num_heads=heads, gamma=gamma, data_format=fmt).double()
    inp = x if fmt == "channels_first" else to_last(x)
    torch.testing.assert_close(pool(inp, valid), simpool_reference(x, pool, valid))
    torch.testing.assert_close(pool(inp), simpool_reference(x, pool))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "needs channels=C"),
        ({"channels": 6, "num_heads": 4}, "must divide"),
        ({"channels": 6, "num_heads": 0}, "num_heads >= 1"),
        ({"channels": 6, "gamma": -1.0}, "gamma > 0"),
    ],
)
def test_simpool_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_pool("simpool", **kwargs)


@pytest.mark.parametrize("heads, bias", [(1, True), (2, True), (4, False)])
def test_map_pool_is_multihead_attention_with_one_learned_query(heads, bias):
    """Against the plain formula and against torch's own nn.MultiheadAttention with the
    same weights, the latent as its one query."""
    g = torch.Generator().manual_seed(heads)
    x = torch.randn(3, 8, 3, 4, generator=g, dtype=torch.float64)
    valid = torch.ones(3, 3, 4, dtype=torch.bool)
    valid[1, 1:, :] = False
    pool = make_pool("map", 8, num_heads=heads, bias=bias).double()
    torch.testing.assert_close(pool(x, valid), map_reference(x, pool, valid))
    mha = torch.nn.MultiheadAttention(8, heads, bias=bias, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(pool.in_weight)
        mha.out_proj.weight.copy_(pool.out_weight)
        if bias:
            mha.in_proj_bias.copy_(pool.in_bias)
            mha.out_proj.bias.copy_(pool.out_bias)
    seq = x.flatten(2).transpose(1, 2)  # (N, L, C)
    query = pool.latent.double().expand(3, 1, 8)
    out, _ = mha(query, seq, seq, key_padding_mask=~valid.flatten(1))
    torch.testing.assert_close(pool(x, valid), out[:, 0])


@pytest.mark.parametrize(
    "kwargs, message",
    [({}, "needs channels=C"), ({"channels": 6, "num_heads": 4}, "must divide")],
)
def test_map_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_pool("map", **kwargs)


def test_isqrtcov_converges_to_the_matrix_square_root_of_the_covariance():
    """Newton-Schulz -> sqrtm (scipy) of the covariance as iterations grow; 5 is close on a
    well-conditioned covariance (many positions, few channels)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, 8, generator=g, dtype=torch.float64)
    for iterations, tol in ((40, 1e-10), (5, 5e-3)):
        got = F.isqrtcov_pool(x, iterations=iterations)
        for i in range(2):
            cov = np.cov(x[i].flatten(1).numpy(), bias=True)
            root = scipy.linalg.sqrtm(cov).real[np.triu_indices(5)]
            np.testing.assert_allclose(got[i].numpy(), root, atol=tol)


@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_isqrtcov_masks_iterations_and_constant_features(fmt):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, 3, generator=g, dtype=torch.float64)
    valid = torch.ones(3, 5, 3, dtype=torch.bool)
    valid[1, 2:] = False
    valid[2, :, 1:] = False
    inp = x if fmt == "channels_first" else to_last(x)
    for iterations in (1, 3, 7):
        pool = create_pool("isqrtcov", channels=4, iterations=iterations, data_format=fmt)
        torch.testing.assert_close(pool(inp, valid), isqrtcov_reference(x, pool, valid))
    # constant features (one valid position, or equal values) have no covariance: zeros
    single = torch.zeros(3, 5, 3, dtype=torch.bool)
    single[:, 0, 0] = True
    assert pool(inp, single).abs().max() == 0


def test_isqrtcov_reduction_is_conv_bn_relu_and_masks_keep_padding_out():
    """The reduction is the paper's 1x1 conv -> BN -> ReLU (plain torch layers with the
    same weights); with a mask, training-mode batch statistics come from valid positions
    only, so a padded batch equals its crops pooled alone."""
    torch.manual_seed(0)
    pool = create_pool("isqrtcov", channels=6, reduced_channels=3).double()
    conv = torch.nn.Conv2d(6, 3, 1, bias=False).double()
    norm = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        conv.weight.copy_(pool.reduce_weight[..., None, None])
    x = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    for train in (True, False):
        pool.train(train), norm.train(train)
        reduced = torch.relu(norm(conv(x)))
        torch.testing.assert_close(pool(x), isqrtcov_reference(reduced, pool))
    torch.testing.assert_close(pool.reduce_norm.running_mean, norm.running_mean)
    assert pool.out_channels(6) == 6 and create_pool("isqrtcov", channels=6).out_channels(6) == 21
    # padded batch (NaN in the padding) == the valid crop, in training mode
    valid = torch.zeros(4, 5, 5, dtype=torch.bool)
    valid[:, :3, :4] = True
    padded = x.clone()
    padded[~valid[:, None].expand_as(x)] = float("nan")
    pool.train()
    got = pool(padded, valid)
    torch.testing.assert_close(got, pool(x[:, :, :3, :4].contiguous()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "needs channels=C"),
        ({"channels": 6, "reduced_channels": 0}, "reduced_channels to be an int >= 1"),
        ({"channels": 6, "iterations": 0}, "iterations to be an int >= 1"),
        ({"channels": 6, "iterations": 2.5}, "iterations to be an int >= 1"),
    ],
)
def test_isqrtcov_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_pool("isqrtcov", **kwargs)
