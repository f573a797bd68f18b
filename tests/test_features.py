"""Feature-map views: hooks by layer name, strongest channels, the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from globalpool.analysis.features import (
    capture_activations,
    feature_grid_figure,
    layer_names,
    strongest_channels,
)


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(6, 5, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 2),
    )


def test_capture_activations_equal_direct_computation():
    model = net()
    x = torch.randn(2, 3, 9, 7)
    acts = capture_activations(model, x, ["1", "2.0"])
    assert list(acts) == ["1", "2.0"]
    first = torch.relu(model[0](x))
    torch.testing.assert_close(acts["1"], first)
    torch.testing.assert_close(acts["2.0"], model[2][0](first))
    assert not model._forward_hooks and not model[1]._forward_hooks  # hooks removed


def test_unknown_layer_lists_available_names():
    model = net()
    assert layer_names(model)[:4] == ["0", "1", "2", "2.0"]
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) 'conv9'; available: 0, 1, 2"):
        capture_activations(model, torch.randn(1, 3, 4, 4), ["conv9"])


def test_strongest_channels_by_mean_activation():
    act = torch.zeros(4, 3, 3)
    act[1] = 2.0
    act[3, 0, 0] = 9.0  # mean 1.0
    act[2] = -1.0
    assert strongest_channels(act, 3).tolist() == [1, 3, 0]
    assert strongest_channels(act, 10).tolist() == [1, 3, 0, 2]


def test_feature_grid_figure_shape_and_titles():
    model = net()
    x = torch.randn(1, 3, 8, 8)
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    fig = feature_grid_figure(model, x, ["1", "2.1"], k=4, image_uint8=image)
    axes = np.array(fig.axes).reshape(2, 5)
    act = torch.relu(model[0](x))[0]
    best = int(act.mean(dim=(1, 2)).argmax())
    assert axes[0, 1].get_title().startswith(f"ch {best} ")
    assert axes[0, 0].get_title() == "input"
    with pytest.raises(ValueError, match="not a feature map"):
        feature_grid_figure(model, x, ["5"])
