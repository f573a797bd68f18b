"""replace_head on Classifiers and on plain user modules (found with torch.fx)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from globalpool.models import count_params, create_model, replace_head
from globalpool.pool import list_pools


def seq_lenet(in_chans=1):
    return nn.Sequential(
        nn.Conv2d(in_chans, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip


class FunctionalLeNet(nn.Module):
    """A hand-written LeNet whose forward flattens with torch.flatten or view."""

    def __init__(self, flatten="torch"):
        super().__init__()
        self.flatten = flatten
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1) if self.flatten == "torch" else x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.dropout(F.relu(self.fc2(x)), 0.5, self.training)
        return F.log_softmax(self.fc3(x), dim=1)


def _x(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_sequential_lenet_gets_a_gap_head():
    torch.manual_seed(0)
    user = seq_lenet()
    model = replace_head(user, 7, "pool-linear", "avg")
    assert model.input_size == (32, 32) and model.in_chans == 1  # deduced
    assert model.num_features == 16 and model.min_input_size == (16, 16)
    assert count_params(model)["head"] == 16 * 7 + 7
    # the old FC layers are gone from the backbone: only the two convs remain
    assert count_params(model)["backbone"] == (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16)
    assert model.model_args is None
    # the backbone IS the user's conv stack (shared weights), ending at the flatten's input
    assert model.backbone.get_submodule("0").weight is user[0].weight
    x = _x((2, 1, 32, 32))
    torch.testing.assert_close(model.forward_features(x), user[:6](x))
    for size in [(32, 32), (48, 48), (64, 40)]:
        assert model(_x((2, 1, *size))).shape == (2, 7)


@pytest.mark.parametrize("flatten", ["torch", "view"])
def test_functional_lenet(flatten):
    user = FunctionalLeNet(flatten)
    model = replace_head(user, 10, "classmap", "max")
    assert model.input_size == (32, 32) and model.in_chans == 3
    x = _x((2, 3, 32, 32))
    torch.testing.assert_close(model.forward_features(x), user.features(x))
    logits, maps = model.head.forward_with_maps(model.forward_features(x))
    torch.testing.assert_close(logits, maps.amax((2, 3)))
    assert model(_x((1, 3, 40, 56))).shape == (1, 10)


@pytest.mark.parametrize("pool", list_pools())
def test_every_pool(pool):
    model = replace_head(seq_lenet(), 5, "pool-linear", pool)
    assert model(_x((2, 1, 28, 36))).shape == (2, 5)


def test_fc_replacement_and_explicit_size():
    model = replace_head(seq_lenet(), 3, "fc", input_size=(32, 32))
    assert model.head_kind == "fc" and count_params(model)["head"] == 400 * 3 + 3
    with pytest.raises(ValueError, match=r"built for input size \(32, 32\)"):
        model(_x((1, 1, 28, 28)))
    # a non-square model: the square-size deduction fails and says so, input_size fixes it
    user = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 12, 2))
    with pytest.raises(ValueError, match="pass input_size"):
        replace_head(user, 2)
    assert replace_head(user, 2, input_size=(8, 12)).input_size == (8, 12)


def test_classifier_is_reset_in_place():
    model = create_model("lenet5", 10)
    assert replace_head(model, 4, "pool-linear", "max") is model
    assert (model.head_kind, model.pool_name, model.num_classes) == ("pool-linear", "max", 4)


def test_refuses_to_guess():
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        replace_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), 10)

    class ChannelMLP(nn.Module):  # a Linear over channels, no flatten
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    with pytest.raises(ValueError, match="no flatten"):
        replace_head(ChannelMLP(), 10)

    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 5)
            self.fc = nn.Linear(4 * 30 * 30 + 4 * 28 * 28, 10)

        def forward(self, x):
            return self.fc(torch.cat([self.a(x).flatten(1), self.b(x).flatten(1)], 1))

    with pytest.raises(ValueError, match="2 flattened branches"):
        replace_head(TwoBranches(), 10)

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 30 * 30, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.conv(x), 1)) + x.mean((1, 2, 3)).unsqueeze(1)

    with pytest.raises(ValueError, match="skips the flatten"):
        replace_head(Skip(), 10)

    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 30 * 30, 10)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
                x = -x
            return self.fc(torch.flatten(self.conv(x), 1))

    with pytest.raises(ValueError, match="could not trace"):
        replace_head(Dynamic(), 10)

    class FlatImage(nn.Module):  # flattens the image itself: no feature maps before it
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(x, 1))

    with pytest.raises(ValueError, match="Conv2d"):
        replace_head(FlatImage(), 10)
    with pytest.raises(TypeError):
        replace_head("lenet", 10)
