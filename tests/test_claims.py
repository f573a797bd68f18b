"""The report's claims: Welch's t-test verdicts over seeds, checked against statistics
computed here by hand, and the per-run evaluation they read."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from globalpool.analysis.report.claims import (
    claims_section,
    compare_heads,
    reference_head,
)


def _welch_by_hand(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se2 = va / len(a) + vb / len(b)
    t = (ma - mb) / math.sqrt(se2)
    df = se2**2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return t, 2 * stats.t.sf(abs(t), df)  # the t distribution's tail, not ttest_ind


@pytest.mark.parametrize(
    "pooled, fc, higher, verdict",
    [
        ([10.0, 12.0, 14.0], [20.0, 21.0, 22.0], False, "holds"),  # smaller gap, separated
        ([10.0, 12.0, 14.0], [20.0, 21.0, 22.0], True, "reversed"),
        ([75.0, 77.0, 79.0], [40.0, 37.0, 36.0], True, "holds"),
        ([50.0, 60.0, 55.0], [52.0, 58.0, 49.0], True, "not separated"),
    ],
)
def test_verdicts_follow_welchs_t_at_five_percent(pooled, fc, higher, verdict):
    got = compare_heads(pooled, fc, higher)
    t, p = _welch_by_hand(pooled, fc)
    assert got["t"] == pytest.approx(t, rel=1e-9) and got["p"] == pytest.approx(p, rel=1e-6)
    assert got["diff"] == pytest.approx(sum(pooled) / 3 - sum(fc) / 3)
    assert got["verdict"] == verdict
    assert (p < 0.05) == (verdict != "not separated")


def test_one_seed_is_untested_and_identical_seeds_are_handled():
    assert compare_heads([70.0], [60.0], True)["verdict"] == "untested"
    same = compare_heads([70.0, 70.0], [70.0, 70.0], True)
    assert same["verdict"] == "not separated" and same["p"] == 1.0
    apart = compare_heads([80.0, 80.0], [60.0, 60.0], True)  # no spread, yet apart
    assert apart["verdict"] == "holds" and apart["p"] == 0.0


def test_reference_head_is_gap_class_maps_else_the_first_pooling_head():
    assert reference_head(["fc", "classmap-max", "classmap-avg"]) == "classmap-avg"
    assert reference_head(["fc-dropout0", "pool-linear-gem"]) == "pool-linear-gem"
    assert reference_head(["fc", "fc-dropout0.5"]) is None


def _record(gap, shifted, box, params):
    return {"gap": gap, "shifted_acc": shifted, "max_box_acc": box, "params_head": params,
            "train_acc": 0.9, "test_acc": 0.9 - gap}  # fmt: skip


def test_claims_section_states_each_claim_with_its_test():
    from globalpool.analysis.markup import to_markdown

    evaluations = {
        "fc-dropout0": [_record(g, s, b, 51914) for g, s, b in
                        [(0.22, 0.37, 0.36), (0.23, 0.37, 0.35), (0.22, 0.38, 0.37)]],
        "classmap-avg": [_record(g, s, b, 330) for g, s, b in
                         [(0.17, 0.76, 0.44), (0.19, 0.77, 0.40), (0.14, 0.79, 0.47)]],
    }  # fmt: skip
    sec = claims_section(evaluations)
    text = to_markdown(sec.blocks)
    assert "classmap-avg head holds 330 parameters; fc-dropout0 51,914" in text
    table = next(b for b in sec.blocks if getattr(b, "table_id", None) == "claims")
    rows = {(r[0], r[1]): r for r in table.rows}
    translation = rows[("Translation", "fc-dropout0")]
    t, p = _welch_by_hand([76.0, 77.0, 79.0], [37.0, 37.0, 38.0])
    assert translation[4] == f"{(76 + 77 + 79) / 3 - (37 + 37 + 38) / 3:+.1f}"
    assert translation[5] == f"{t:.2f}" and translation[6] == f"{p:.3g}"
    assert translation[7] == "holds"
    assert rows[("Overfitting", "fc-dropout0")][7] in ("holds", "not separated")
    assert rows[("Localization", "classmap-avg")][2] == "43.7 ± 3.5"
    assert sec.figures and sec.figures[0].png.startswith(b"\x89PNG")


def test_evaluate_run_scores_a_run_and_reuses_its_record(tmp_path):
    from globalpool.analysis.evaluation import EVALUATION_FILE, evaluate_run
    from globalpool.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(model="smallgap", model_kwargs={"norm": True}, head="classmap",
                      dataset="fashion_canvas", dataset_kwargs={"n_train": 200, "n_test": 100},
                      val_fraction=0.0, augment=False, epochs=1, batch_size=50,
                      out_dir=str(run), quiet=True, tensorboard=False))  # fmt: skip
    record = evaluate_run(run, loc_images=50)
    summary = json.loads((run / "summary.json").read_text())
    assert record["test_acc"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert record["train_images"] == 200 and record["gap"] == pytest.approx(
        record["train_acc"] - record["test_acc"]
    )
    assert 0.0 <= record["shifted_acc"] <= 1.0 and record["loc_images"] == 50
    assert 0.0 <= record["max_box_acc"] <= 1.0 and record["cam_method"] == "classmap"
    assert record["params_head"] == summary["params_head"]
    saved = (run / EVALUATION_FILE).read_text()
    assert evaluate_run(run, loc_images=50) == json.loads(saved)  # reused, not recomputed


def test_gap_is_tested_against_gmp_on_accuracy_and_localization():
    """The seed's own comparison (the GAP-vs-GMP article, and CAM): GAP class maps against
    GMP class maps on test accuracy and MaxBoxAcc; the FC claims stay against FC heads."""
    from globalpool.analysis.report.claims import claim_verdicts

    def rec(test, box):
        return {"gap": 0.1, "shifted_acc": 0.5, "max_box_acc": box, "params_head": 330,
                "train_acc": 1.0, "test_acc": test}  # fmt: skip

    evaluations = {
        "fc": [rec(0.70, 0.30), rec(0.71, 0.31), rec(0.69, 0.33)],
        "classmap-avg": [rec(0.74, 0.47), rec(0.73, 0.45), rec(0.74, 0.49)],
        "classmap-max": [rec(0.69, 0.20), rec(0.71, 0.25), rec(0.67, 0.18)],
    }
    by = {(v["claim"].title, v["against"]): v for v in claim_verdicts(evaluations)}
    assert set(by) == {("Overfitting", "fc"), ("Translation", "fc"), ("Localization", "fc"),
                       ("Accuracy vs GMP", "classmap-max"),
                       ("Localization vs GMP", "classmap-max")}  # fmt: skip
    t, p = _welch_by_hand([74.0, 73.0, 74.0], [69.0, 71.0, 67.0])
    acc = by[("Accuracy vs GMP", "classmap-max")]
    assert acc["t"] == pytest.approx(t, rel=1e-9) and acc["p"] == pytest.approx(p, rel=1e-6)
    assert acc["verdict"] == ("holds" if p < 0.05 else "not separated")
    assert by[("Localization vs GMP", "classmap-max")]["verdict"] == "holds"
