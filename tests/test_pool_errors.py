"""Bad input: clear ValueError / TypeError naming what was expected and what came."""

from __future__ import annotations

import pytest
import torch

from globalpool import functional as F
from globalpool.pool import create_pool, list_pools, pool_entry

# every test here runs with the CPU kernels and with the plain formulas alone
pytestmark = pytest.mark.usefixtures("pool_impl")

ALL = list_pools()  # the registry: every pool, including ones added later


@pytest.mark.parametrize("name", ALL)
def test_wrong_rank(name):
    pool = create_pool(name, channels=3)
    with pytest.raises(ValueError, match=r"\(N, C, \*S\).*got 2-D shape \(2, 3\)"):
        pool(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"1 to 3 spatial dims.*got 6-D"):
        pool(torch.randn(1, 3, 2, 2, 2, 2))
    last = create_pool(name, channels=3, data_format="channels_last")
    with pytest.raises(ValueError, match=r"\(N, \*S, C\)"):
        last(torch.randn(2, 3))


@pytest.mark.parametrize("name", ALL)
def test_integer_and_non_tensor_input(name):
    pool = create_pool(name, channels=3)
    with pytest.raises(TypeError, match=r"floating-point tensor.*got torch.int64"):
        pool(torch.ones(2, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch.Tensor, got list"):
        pool([[1.0]])


@pytest.mark.parametrize("name", ALL)
def test_empty_spatial_dim(name):
    with pytest.raises(ValueError, match=r"non-empty spatial dims.*\(2, 3, 0, 4\)"):
        create_pool(name, channels=3)(torch.randn(2, 3, 0, 4))


@pytest.mark.parametrize("name", ALL)
def test_bad_masks(name):
    pool = create_pool(name, channels=3)
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"mask of shape \(N, \*S\) = \(2, 4, 4\).*got \(2, 4\)"):
        pool(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*got \(2, 3, 4, 4\)"):
        pool(x, torch.ones(2, 3, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"bool tensor.*got torch.float32"):
        pool(x, torch.ones(2, 4, 4))
    empty = torch.ones(2, 4, 4, dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ValueError, match=r"no valid \(True\) position for sample\(s\) \[1\]"):
        pool(x, empty)


def test_unknown_pool_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown pool 'gap'; expected one of: avg, max, avgmax"):
        create_pool("gap")
    with pytest.raises(ValueError, match="attention"):
        pool_entry("nope")


def test_bad_arguments():
    with pytest.raises(ValueError, match="data_format must be 'channels_first' or 'channels_last'"):
        create_pool("avg", data_format="NWHC")
    with pytest.raises(ValueError, match="needs channels=C"):
        create_pool("attention")
    with pytest.raises(ValueError, match="p > 0"):
        create_pool("gem", p=0.0)
    with pytest.raises(ValueError, match="p > 0"):
        F.lp_pool(torch.ones(1, 1, 2), p=-1.0)
    with pytest.raises(ValueError, match="r > 0"):
        F.lse_pool(torch.ones(1, 1, 2), r=float("inf"))
    with pytest.raises(ValueError, match=r"alpha in \[0, 1\]"):
        F.mixed_pool(torch.ones(1, 1, 2), alpha=1.5)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        create_pool("mixed", alpha=1.0)
    with pytest.raises(ValueError, match=r"weight of shape \(3,\), got \(4,\)"):
        F.attention_pool(torch.ones(1, 3, 2), torch.ones(4))
    with pytest.raises(ValueError, match="gwap pool needs channels=C"):
        create_pool("gwap")
    with pytest.raises(ValueError, match=r"gwap pool expects a scalar bias .* got \(2,\)"):
        F.gwap_pool(torch.ones(1, 3, 2), torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="positive int"):
        create_pool("avg", channels=0)


def test_data_format_aliases():
    x = torch.randn(2, 3, 4, 5)
    assert create_pool("avg", data_format="NCHW").data_format == "channels_first"
    last = create_pool("max", data_format="nhwc")
    torch.testing.assert_close(last(x.permute(0, 2, 3, 1)), x.amax((2, 3)))
