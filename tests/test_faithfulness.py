"""Faithfulness scores against numpy written here: the model is an identity backbone
with an average-pool + linear head, so every probability has a closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from globalpool.analysis.faithfulness import faithfulness
from globalpool.models.classifier import Classifier

W = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])  # (K=3, C=2)
B = np.array([0.1, -0.2, 0.3])


def model() -> Classifier:
    m = Classifier(nn.Identity(), 3, head="pool-linear", pool="avg", in_chans=2,
                   input_size=(4, 4))  # fmt: skip
    with torch.no_grad():
        m.head.fc.weight.copy_(torch.tensor(W))
        m.head.fc.bias.copy_(torch.tensor(B))
    return m.eval()


def prob(image: np.ndarray, k: int) -> float:
    logits = W @ image.mean(axis=(1, 2)) + B
    e = np.exp(logits - logits.max())
    return float(e[k] / e.sum())


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    radius = 3  # 3 sigma (sigma 1), capped at H - 1 = 3
    t = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        rows = np.pad(image[c], ((0, 0), (radius, radius)), mode="reflect")
        rows = np.stack([np.convolve(r, g, mode="valid") for r in rows])
        cols = np.pad(rows, ((radius, radius), (0, 0)), mode="reflect")
        out[c] = np.stack([np.convolve(col, g, mode="valid") for col in cols.T]).T
    return out


def curve(image, saliency, start, finish, k, steps):
    order = np.argsort(-saliency.ravel(), kind="stable")
    values = []
    for j in range(steps + 1):
        count = int(np.round(j * saliency.size / steps))
        changed = np.zeros(saliency.size, bool)
        changed[order[:count]] = True
        changed = changed.reshape(saliency.shape)
        values.append(prob(np.where(changed[None], finish, start), k))
    return np.array(values)


def area(values):
    return float(np.sum((values[1:] + values[:-1]) / 2) / (len(values) - 1))


def test_scores_match_the_closed_form():
    g = np.random.default_rng(1)
    x = g.normal(size=(2, 2, 4, 4))
    maps = g.uniform(size=(2, 4, 4))
    maps[0, 0, :2] = maps[0, 0, 2]  # ties: broken by position
    classes = [1, 2]
    got = faithfulness(model(), torch.tensor(x, dtype=torch.float32),
                       torch.tensor(maps, dtype=torch.float32), classes, steps=8,
                       blur_sigma=1.0, batch_size=5)  # fmt: skip
    for i, k in enumerate(classes):
        p, p_masked = prob(x[i], k), prob(x[i] * maps[i][None], k)
        deletion = area(curve(x[i], maps[i], x[i], np.zeros_like(x[i]), k, 8))
        insertion = area(curve(x[i], maps[i], blur(x[i], 1.0), x[i], k, 8))
        assert got["prob"][i] == pytest.approx(p, rel=1e-5)
        assert got["deletion"][i] == pytest.approx(deletion, rel=1e-5)
        assert got["insertion"][i] == pytest.approx(insertion, rel=1e-5)
        assert got["average_drop"][i] == pytest.approx(
            100 * max(0.0, p - p_masked) / p, rel=1e-4, abs=1e-6
        )
        assert got["increase"][i] == float(p_masked > p)


def test_a_map_on_the_evidence_deletes_faster_than_its_reverse():
    """Class 0 rises with channel 0: a map that ranks the pixels by channel 0 deletes the
    evidence first (smaller deletion area, larger insertion area) than its reverse."""
    g = np.random.default_rng(2)
    x = torch.tensor(g.normal(size=(1, 2, 4, 4)), dtype=torch.float32)
    x[:, 1] = 0.0  # only channel 0 carries evidence (W[0, 0] = 1)
    good = (x[:, 0] - x[:, 0].min()) / (x[:, 0].max() - x[:, 0].min())
    bad = 1.0 - good
    m = model()
    a = faithfulness(m, x, good, 0, steps=16, blur_sigma=1.0)
    b = faithfulness(m, x, bad, 0, steps=16, blur_sigma=1.0)
    assert a["deletion"][0] < b["deletion"][0] and a["insertion"][0] > b["insertion"][0]


def test_bad_arguments_say_what_was_expected():
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        faithfulness(model(), x, torch.zeros(1, 3, 3), 0)
    with pytest.raises(ValueError, match="steps must be an integer"):
        faithfulness(model(), x, torch.zeros(1, 4, 4), 0, steps=0)
