"""The comparison report, rendered from generated run directories (no training)."""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from browser import render_in_chromium
from globalpool.analysis.report import (
    environment_info,
    load_run_record,
    results_table,
    select_examples,
    write_report,
)

HEADS = {
    # label: (head, pool, params_head, final train acc, final val acc)
    "fc": ("fc", None, 163_850, 0.995, 0.62),
    "fc-dropout0.5": ("fc", None, 163_850, 0.97, 0.66),
    "classmap-avg": ("classmap", "avg", 2_570, 0.88, 0.84),
    "pool-linear-avg": ("pool-linear", "avg", 2_570, 0.90, 0.85),
}


def write_fixture_run(run_dir: Path, label: str, epochs: int = 6, seed: int = 0) -> dict:
    """A run directory as ``globalpool train`` writes it: config.json, metrics.jsonl and
    summary.json with the contract's keys, curves shaped like real ones (train accuracy
    rising to its final value, validation plateauing below it)."""
    head, pool, params_head, train_end, val_end = HEADS[label]
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model": "fastnet",
        "head": head,
        "pool": pool,
        "head_kwargs": {"dropout": 0.5} if "dropout" in label else {},
        "dataset": "shapes",
        "dataset_kwargs": {"n_train": 600},
        "epochs": epochs,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.05,
        "seed": 0,
        "out_dir": str(run_dir),
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    wall, rows = 0.0, []
    for epoch in range(1, epochs + 1):
        t = epoch / epochs
        train_acc = 0.1 + (train_end - 0.1) * (1 - math.exp(-4 * t)) / (1 - math.exp(-4))
        val_acc = 0.1 + (val_end - 0.1) * min(1.0, 1.6 * t) + rng.normal(0, 0.01)
        epoch_time = 2.0 + rng.uniform(0, 0.2)
        wall += epoch_time
        rows.append(
            {
                "epoch": epoch,
                "train_loss": 2.3 * (1 - train_acc) + 0.01,
                "train_acc": train_acc,
                "val_loss": 2.3 * (1 - val_acc) + 0.2,
                "val_acc": val_acc,
                "gap": train_acc - val_acc,
                "lr": 0.05 * 0.5 * (1 + math.cos(math.pi * t)),
                "images_per_s": 300.0 + rng.uniform(0, 10),
                "epoch_time_s": epoch_time,
                "wall_time_s": wall,
            }
        )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "run_dir": str(run_dir),
        "model": "fastnet",
        "head": head,
        "pool": pool,
        "dataset": "shapes",
        "params_total": 100_000 + params_head,
        "params_backbone": 100_000,
        "params_head": params_head,
        "flops_per_image": 12_345_678,
        "best_val_acc": max(r["val_acc"] for r in rows),
        "final_val_acc": rows[-1]["val_acc"],
        "test_acc": rows[-1]["val_acc"] - 0.01,
        "final_train_acc": rows[-1]["train_acc"],
        "gap": rows[-1]["gap"],
        "epochs": epochs,
        "wall_time_s": wall,
        "images_per_s": 305.0,
        "device": "cpu",
        "config": config,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


@pytest.fixture
def fixture_runs(tmp_path) -> list[Path]:
    dirs = []
    for i, label in enumerate(HEADS):
        write_fixture_run(tmp_path / "cmp" / label, label, seed=i)
        dirs.append(tmp_path / "cmp" / label)
    return dirs


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)


def test_report_files_are_self_contained(fixture_runs, tmp_path):
    out = tmp_path / "cmp"
    paths = write_report(
        out, fixture_runs, command="globalpool compare --epochs 6", model_views=False
    )
    page = paths["html"].read_text(encoding="utf-8")
    # Every image is an inline PNG that decodes to PNG bytes; nothing is fetched.
    sources = _img_sources(page)
    assert len(sources) == 2  # learning curves + gap
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "@import" not in page
    # One table row per head, in the given order, with the contract's numbers formatted.
    table = page[page.index('id="results"') : page.index("</table>", page.index('id="results"'))]
    assert [m for m in re.findall(r'<tr[^>]*><td class="text">([^<]+)</td>', table)] == list(HEADS)
    assert "163,850" in table and "12.35 M" in table
    assert "globalpool compare --epochs 6" in page
    # No leftover temporary files from the atomic writes.
    assert not [p for p in out.rglob("*.tmp")]


def test_markdown_refers_to_png_files_beside_it(fixture_runs, tmp_path):
    paths = write_report(tmp_path / "cmp", fixture_runs, model_views=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["report_assets/learning_curves.png", "report_assets/gap.png"]
    for link in links:
        assert (paths["markdown"].parent / link).read_bytes()[:4] == b"\x89PNG"
    # The table has a header, an alignment row and one row per head.
    results = md[md.index("## Results") :].split("\n\n")[1].splitlines()
    assert results[0].startswith("| Head | Pool | Params (total)")
    assert [ln.split("|")[1].strip() for ln in results[2:]] == list(HEADS)


def test_table_values_and_highlights_follow_the_summaries(fixture_runs):
    records = [load_run_record(d) for d in fixture_runs]
    rows = results_table(records)
    by_label = {r["label"]: r for r in rows}
    summary = json.loads((fixture_runs[0] / "summary.json").read_text())
    assert by_label["fc"]["test_acc"] == summary["test_acc"]
    assert by_label["fc"]["gap"] == pytest.approx(
        summary["final_train_acc"] - summary["final_val_acc"]
    )
    from globalpool.analysis.report import highlights

    text = " ".join(highlights(rows))
    # The FC head overfits most in the fixture; pool-linear has the best test accuracy.
    assert "Largest generalization gap: <b>fc</b>" in text
    assert "Highest test accuracy: <b>pool-linear-avg</b>" in text


def test_config_section_separates_shared_and_per_head_settings(fixture_runs, tmp_path):
    page = write_report(tmp_path / "cmp", fixture_runs, model_views=False)["html"].read_text()
    section = page[page.index('id="reproduce"') :]
    assert "Settings that differ between heads" in section
    for key in ("head", "pool", "head_kwargs.dropout"):
        assert f"<th>{key}</th>" in section
    # Shared settings appear once, per-run output dirs are not called a difference.
    assert "&quot;batch_size&quot;: 64" in section
    assert "<th>out_dir</th>" not in section


def test_environment_names_versions_and_machine():
    info = environment_info()
    import torch

    assert info["torch"] == torch.__version__
    assert info["numpy"] == np.__version__
    assert int(info["cpu_count"]) == os.cpu_count()
    for key in ("python", "globalpool", "platform", "cuda"):
        assert info[key]


def test_torn_last_metrics_line_is_skipped(fixture_runs):
    path = fixture_runs[0] / "metrics.jsonl"
    path.write_text(path.read_text() + '{"epoch": 7, "train_lo')
    assert len(load_run_record(fixture_runs[0]).metrics) == 6
    lines = path.read_text().splitlines()
    lines[2] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 3"):
        load_run_record(fixture_runs[0])


def test_bad_inputs_raise_clear_errors(fixture_runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path, [tmp_path / "nope"])
    (fixture_runs[0] / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no summary\.json"):
        write_report(tmp_path, fixture_runs)
    with pytest.raises(ValueError, match="at least one run"):
        write_report(tmp_path, [])
    with pytest.raises(ValueError, match="unique"):
        write_report(tmp_path, fixture_runs[1:3], labels=["a", "a"])


def test_missing_checkpoints_leave_a_note_not_a_crash(fixture_runs, tmp_path):
    with pytest.warns(RuntimeWarning, match="Not rendered"):
        paths = write_report(tmp_path / "cmp", fixture_runs)
    page = paths["html"].read_text()
    assert 'id="predictions"' in page and "Not rendered" in page
    assert 'id="results"' in page and 'id="environment"' in page


def test_select_examples_covers_classes_first():
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 2])
    idx = select_examples(labels, 4)
    assert sorted(set(labels[idx].tolist())) == [0, 1, 2]
    assert len(idx) == 4 and list(idx) == sorted(idx)
    assert len(select_examples(labels, 100)) == len(labels)


# ------------------------------------------------------------------ headless browser
def test_report_renders_in_headless_chromium(fixture_runs, tmp_path):
    paths = write_report(tmp_path / "cmp", fixture_runs, model_views=False)
    shot = tmp_path / "shot" / "report.png"
    shot.parent.mkdir()
    dom = render_in_chromium(paths["html"], tmp_path, screenshot=shot)
    marker = re.search(r'<p id="render-check"([^>]*)>', dom)
    assert marker, "the render check did not run"
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', marker.group(1)))
    assert attrs == {"status": "ok", "images": "2", "broken": "0", "rows": str(len(HEADS))}
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_render_check_catches_a_broken_image(fixture_runs, tmp_path):
    paths = write_report(tmp_path / "cmp", fixture_runs, model_views=False)
    page = paths["html"].read_text()
    first = _img_sources(page)[0]
    paths["html"].write_text(page.replace(first, "data:image/png;base64,AAAA", 1))
    dom = render_in_chromium(paths["html"], tmp_path)
    assert 'data-status="failed"' in dom and 'data-broken="1"' in dom


def test_gap_in_points_and_a_negative_gap_is_called_underfit():
    from globalpool.analysis.report import highlights, text_table

    rows = [
        {"label": "fc", "test_acc": 0.9, "gap": 0.05, "params_head": 100},
        {"label": "fc-drop", "test_acc": 0.6, "gap": -0.031, "params_head": 100},
        {"label": "gap", "test_acc": 0.91, "gap": 0.01, "params_head": 10},
    ]
    notes = " ".join(highlights(rows))
    assert "smallest: <b>gap</b>" in notes  # not the negative one
    assert "<b>fc-drop</b> trains below its validation accuracy (-3.1 points)" in notes
    table = text_table(rows)
    assert (
        "Gap (train − val), points" in table
        and "-3.1" in table
        and "%" not in "".join(line.split()[-1] for line in table.splitlines()[2:])
    )


def test_prediction_grid_labels_are_readable_and_do_not_overlap():
    """The report's prediction grid: every label at least ~13 px high at the report's 100
    dpi, and no two labels of one row overlap (the longest class name, 100%)."""
    from globalpool.analysis.report import predictions_figure

    k, names = 6, ["triangle", "rectangle", "ellipse"]
    images = np.zeros((k, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(k) % 3
    heads = {f"pool-linear-avg-{i}": (np.full(k, 1), np.ones(k)) for i in range(5)}
    fig = predictions_figure(images, labels, names, heads)
    fig.set_dpi(100)
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    assert min(t.get_fontsize() for t in texts) * 100 / 72 >= 13
    rows: dict[float, list] = {}
    for t in texts:
        rows.setdefault(round(t.get_window_extent(renderer).y0), []).append(
            t.get_window_extent(renderer)
        )
    for boxes in rows.values():
        boxes.sort(key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(boxes))
