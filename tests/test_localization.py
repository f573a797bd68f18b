"""Localization scores, exact on hand-made maps, and over a model whose CAM is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from globalpool.analysis.localization import (
    box_iou,
    box_to_mask,
    localization_metrics,
    localization_scores,
    map_to_box,
    mask_iou,
    point_in_object,
    threshold_map,
)
from globalpool.heads import ClassMapHead


def blob(h, w, y0, y1, x0, x1, value=1.0):
    m = np.zeros((h, w))
    m[y0:y1, x0:x1] = value
    return m


def test_box_iou_exact():
    assert box_iou((0, 0, 4, 4), (0, 0, 4, 4)) == 1.0
    assert box_iou((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(8 / 24)
    assert box_iou((0, 0, 2, 2), (3, 3, 5, 5)) == 0.0
    assert box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # both empty


def test_map_to_box_largest_region_and_threshold():
    m = blob(10, 12, 1, 4, 1, 5, 1.0)  # 3 x 4 = 12 pixels
    m[6:10, 6:12] = 0.5  # 4 x 6 = 24 pixels, above 20% of the max
    m[0, 11] = 0.1  # below threshold
    assert map_to_box(m) == (6.0, 6.0, 12.0, 10.0)
    # at threshold 0.6 only the first blob survives
    assert map_to_box(m, threshold=0.6) == (1.0, 1.0, 5.0, 4.0)
    assert threshold_map(m, 0.6).sum() == 12


def test_map_to_box_joins_diagonal_neighbours():
    m = np.zeros((6, 6))
    for i in range(4):
        m[i, i] = 1.0  # a diagonal line: one 8-connected region of 4 pixels
    m[0, 5] = m[1, 5] = m[2, 5] = 1.0  # a 3-pixel column, separate
    assert map_to_box(m) == (0.0, 0.0, 4.0, 4.0)


def test_box_to_mask_pixel_centres():
    mask = box_to_mask((1, 2, 4, 3), 5, 6)
    expected = np.zeros((5, 6), bool)
    expected[2, 1:4] = True
    np.testing.assert_array_equal(mask, expected)


def test_pointing_game():
    m = blob(8, 8, 0, 8, 0, 8, 0.3)
    m[5, 2] = 1.0
    assert point_in_object(m, box=(2, 5, 3, 6))  # the centre (2.5, 5.5) is inside
    assert not point_in_object(m, box=(3, 5, 6, 8))
    mask = np.zeros((8, 8), bool)
    mask[5, 2] = True
    assert point_in_object(m, mask=mask)
    assert not point_in_object(m, mask=~mask)
    assert not point_in_object(np.zeros((8, 8)), box=(0, 0, 8, 8))  # constant: no point


def test_mask_iou_exact():
    m = blob(6, 6, 0, 2, 0, 3)  # 6 pixels
    gt = blob(6, 6, 1, 3, 0, 3).astype(bool)  # 6 pixels, 3 shared
    assert mask_iou(m, gt) == pytest.approx(3 / 9)


def test_localization_metrics_batch_exact():
    maps = np.stack(
        [
            blob(8, 8, 2, 6, 2, 6),  # exactly the box: IoU 1
            blob(8, 8, 2, 6, 4, 8),  # shifted by 2: IoU 8 / 24
            blob(8, 8, 0, 2, 0, 2),  # elsewhere: IoU 0
        ]
    )
    boxes = np.array([[2, 2, 6, 6]] * 3, dtype=np.float32)
    res = localization_metrics(torch.as_tensor(maps), boxes=torch.as_tensor(boxes))
    np.testing.assert_allclose(res["box_iou"], [1.0, 8 / 24, 0.0])
    np.testing.assert_array_equal(res["box_correct"], [True, False, False])
    np.testing.assert_array_equal(res["pointing"], [True, True, False])  # argmax (2, 4)
    np.testing.assert_allclose(res["mask_iou"], [1.0, 8 / 24, 0.0])
    assert res["box_acc"] == pytest.approx(1 / 3)
    assert res["pointing_acc"] == pytest.approx(2 / 3)
    assert res["mean_mask_iou"] == pytest.approx((1 + 8 / 24) / 3)
    np.testing.assert_array_equal(res["pred_boxes"][1], [4, 2, 8, 6])
    # masks take precedence for pointing and mask IoU
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 0:2, 0:2] = True
    res = localization_metrics(maps, boxes=boxes, masks=masks)
    np.testing.assert_array_equal(res["pointing"], [False, False, True])
    np.testing.assert_allclose(res["mask_iou"], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="boxes or masks"):
        localization_metrics(maps)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        localization_metrics(maps, boxes=boxes[:2])


class IdentityClassifier(nn.Module):
    """Backbone = identity; a 1x1 ClassMapHead whose class-0 map is input channel 0."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Identity()
        self.head = ClassMapHead(3, 2)
        with torch.no_grad():
            self.head.conv.weight.zero_()
            self.head.conv.bias.zero_()
            self.head.conv.weight[0, 0] = 1.0
            self.head.conv.weight[1, 1] = 1.0

    def forward_features(self, x):
        return self.backbone(x)

    def forward_head(self, f, pre_logits=False):
        return self.head(f)

    def forward(self, x):
        return self.head(x)


def test_localization_scores_on_a_model_with_known_cam():
    # the object is drawn in channel 0 (class 0's evidence), so CAM == object mask
    n, h, w = 5, 16, 16
    images = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    boxes = torch.zeros(n, 4)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    rng = np.random.default_rng(0)
    for i in range(n):
        y0, x0 = rng.integers(0, 10, size=2)
        images[i, 0, y0 : y0 + 5, x0 : x0 + 6] = 200
        masks[i, y0 : y0 + 5, x0 : x0 + 6] = True
        boxes[i] = torch.tensor([x0, y0, x0 + 6, y0 + 5], dtype=torch.float32)
    imageset = SimpleNamespace(
        images=images, labels=torch.zeros(n, dtype=torch.long), boxes=boxes, masks=masks
    )
    scores = localization_scores(IdentityClassifier(), imageset, [0, 0, 0], [1, 1, 1], 2)
    assert scores["cam_method"] == "classmap"
    assert scores["n_images"] == n and scores["accuracy"] == 1.0
    # bilinear upsampling at scale 1 is the identity, so the scores are exact
    assert scores["box_acc"] == 1.0 and scores["top1_loc"] == 1.0
    assert scores["pointing_acc"] == 1.0 and scores["mask_iou"] == 1.0
    # mapping class 1 (channel 1 is empty: constant map) finds nothing
    imageset.labels = torch.ones(n, dtype=torch.long)
    scores = localization_scores(IdentityClassifier(), imageset, [0, 0, 0], [1, 1, 1], 2)
    assert scores["pointing_acc"] == 0.0 and scores["accuracy"] == 0.0
    with pytest.raises(ValueError, match="boxes or masks"):
        localization_scores(
            IdentityClassifier(), SimpleNamespace(images=images, labels=imageset.labels), 0, 1
        )


def test_max_box_acc_v2_counts_any_regions_box_at_three_ious():
    """Hand-made maps: map 0 has a large blob off the object and a small one on it (the
    largest-region box misses, a box from every region hits); map 1 covers the object
    and a margin (IoU 16/36 = 0.44: a hit at 0.3 only)."""
    import numpy as np

    from globalpool.analysis.localization import map_to_box, map_to_boxes
    from globalpool.analysis.wsol import box_ious, max_box_acc_v2

    maps = np.zeros((2, 12, 12))
    maps[0, 0:6, 0:6] = 1.0  # the larger region, away from the object
    maps[0, 8:12, 8:12] = 0.8  # exactly on the object's box
    maps[1, 2:8, 2:8] = 1.0  # 6x6 around the 4x4 object at (3, 3)-(7, 7)
    boxes = np.array([[8, 8, 12, 12], [3, 3, 7, 7]], dtype=float)
    assert map_to_box(maps[0], 0.5) == (0.0, 0.0, 6.0, 6.0)
    assert map_to_boxes(maps[0], 0.5) == [(0.0, 0.0, 6.0, 6.0), (8.0, 8.0, 12.0, 12.0)]
    result = max_box_acc_v2(maps, boxes, convention="pixel-edge")
    # map 0 hits at every IoU from some threshold (<= 0.8); map 1 only at 0.3 (0.44)
    assert result["by_iou"] == {"0.3": 1.0, "0.5": 0.5, "0.7": 0.5}
    assert result["max_box_acc_v2"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    # wsolevaluation's boxes are one pixel wider and taller (x + w read as inclusive)
    # but at the right and bottom borders: map 0's region on the object touches both
    # (IoU 1 still); map 1's 6x6 region becomes a 7x7 box: 16/49 = 0.33, a hit at 0.3
    largest, every = box_ious(maps, boxes, [0.5])
    assert every[:, 0].tolist() == [1.0, 16 / 49] and largest[0, 0] == 0.0
    result = max_box_acc_v2(maps, boxes)
    assert result["by_iou"] == {"0.3": 1.0, "0.5": 0.5, "0.7": 0.5}
