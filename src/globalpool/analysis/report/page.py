"""The page: the report's sections in order, rendered once to ``report.html`` (CSS, every
figure inline, a render check) and once to ``report.md`` (figures as PNG files beside it),
by :func:`write_report`."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from globalpool.analysis.markup import Section, Text, to_html, to_markdown
from globalpool.analysis.report.claims import claims_section
from globalpool.analysis.report.model_views import model_sections
from globalpool.analysis.report.records import RunRecord, load_records
from globalpool.analysis.report.sections import (
    curves_section,
    environment_section,
    gap_section,
    reproduce_section,
    results_section,
    seeds_section,
)
from globalpool.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["ASSETS_DIRNAME", "write_report"]

ASSETS_DIRNAME = "report_assets"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#fff;line-height:1.45}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#59636e;font-size:.9em}
table{border-collapse:collapse;font-size:.88em;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal;text-align:left;vertical-align:bottom}
td:first-child,th:first-child,td.text{text-align:left}
tr.best td{background:#dafbe1}
.scroll{overflow-x:auto}
img{max-width:100%;height:auto;display:block;margin:8px 0}
figure{margin:8px 0}
figcaption{color:#59636e;font-size:.85em}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:.82em;border-radius:6px}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px;
font-size:.9em}
#render-check{display:none}
"""

# Runs after load: every <img> must have decoded (complete, naturalWidth > 0) and the
# results table must exist; the verdict goes into #render-check for the browser test.
_RENDER_CHECK_JS = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var rows = document.querySelectorAll("#results tbody tr").length;
  var el = document.getElementById("render-check");
  var ok = broken.length === 0 && rows > 0;
  el.setAttribute("data-status", ok ? "ok" : "failed");
  el.setAttribute("data-images", String(imgs.length));
  el.setAttribute("data-broken", String(broken.length));
  el.setAttribute("data-rows", String(rows));
  el.textContent = "Render check: " + (imgs.length - broken.length) + "/" + imgs.length +
    " images decoded, " + rows + " table rows.";
});
"""


def _header(records: Sequence[RunRecord], title: str | None) -> tuple[str, str]:
    """(page title, the line under it: dataset, model, epochs, heads, when generated)."""
    s0 = records[0].summary
    facts = {
        "dataset": s0.get("dataset"),
        "model": s0.get("model"),
        "epochs": s0.get("epochs"),
        "heads": len(records),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    line = " · ".join(f"{k}: {v}" for k, v in facts.items() if v is not None)
    title = title or f"Head comparison: {s0.get('model', '?')} on {s0.get('dataset', '?')}"
    return title, f"{line} · generated {stamp}"


def _html_page(title: str, facts: str, notes: Sequence[str], sections: Sequence[Section]) -> str:
    e = html.escape
    toc = " · ".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections)
    body = [f'<h1>{e(title)}</h1><p class="meta">{e(facts)}</p>', f'<p class="meta">{toc}</p>']
    body += [to_html([Text(note, "note")]) for note in notes]
    for sec in sections:
        body.append(f'<section id="{sec.anchor}"><h2>{e(sec.title)}</h2>')
        body += [to_html(sec.blocks), "</section>"]
    body.append('<p id="render-check" data-status="pending">Render check: not run.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(part for part in body if part)}\n</main>"
        f"<script>{_RENDER_CHECK_JS}</script></body></html>\n"
    )


def _markdown_page(
    title: str, facts: str, notes: Sequence[str], sections: Sequence[Section]
) -> str:
    md = [f"# {title}\n", f"{facts}\n"]
    md += [to_markdown([Text(note, "note")]) for note in notes]
    for sec in sections:
        md += [f"## {sec.title}\n", to_markdown(sec.blocks, ASSETS_DIRNAME)]
    return "\n".join(part for part in md if part)


def _sections(records, command, seed_runs, model_views, model_args, evaluations) -> list[Section]:
    """Every section, in page order: the claims first."""
    claims = claims_section(evaluations) if evaluations else None
    sections = [claims] if claims is not None else []
    sections += [seeds_section(seed_runs)] if seed_runs else []
    sections += [results_section(records), curves_section(records), gap_section(records)]
    if model_views:
        sections += model_sections(records, **model_args)
    return [*sections, reproduce_section(records, command), environment_section(records)]


def write_report(
    out_dir: str | os.PathLike,
    runs: Sequence[str | os.PathLike | RunRecord],
    *,
    labels: Sequence[str] | None = None,
    command: str | None = None,
    title: str | None = None,
    test_set=None,
    num_examples: int = 8,
    num_cam: int = 6,
    cam: bool = True,
    model_views: bool = True,
    cam_methods: Sequence[str] = (),
    notes: Sequence[str] = (),
    seed_runs: dict[str, list[dict]] | None = None,
    evaluations: dict[str, list[dict]] | None = None,
) -> dict[str, Path]:
    """Write ``out_dir/report.html`` and ``out_dir/report.md`` (+ ``report_assets/*.png``).

    Args:
        out_dir: where the report goes (usually the compare directory).
        runs: finished run directories (or records from :func:`load_run_record`), one per
            head, in table order.
        labels: names of the heads in the report; by default each directory's name.
        command: the command line that produced the runs, shown verbatim.
        title: page title; by default "Head comparison: <model> on <dataset>".
        test_set: the test ``ImageSet`` for predictions and CAM; rebuilt from the first
            run's configuration when None.
        num_examples: how many test images to show with predictions.
        num_cam: how many of them to show with class activation maps.
        cam: add class activation maps (and localization scores when the test set has
            boxes or masks).
        model_views: load each run's best checkpoint for predictions/CAM; False renders
            only what the metric files hold.
        cam_methods: CAM methods (of :data:`globalpool.analysis.cam_family.FAMILY`) to
            score on every head beside its own map: adds a methods x heads localization
            table (box accuracy / pointing game) to the CAM section.
        notes: warnings shown at the top (e.g. heads that diverged and are left out).
        seed_runs: head label -> the summaries of its runs over several seeds; adds the
            "Over seeds" section (mean ± sd, and whether the seeds separate the heads).
            The other sections show ``runs`` (one seed).
        evaluations: head label -> its runs' :func:`~globalpool.analysis.evaluation.
            evaluate_run` records (one per seed); adds the leading "claims" section
            (parameters, overfitting, translation, localization, each with a verdict by
            Welch's t-test over the seeds).

    Returns:
        ``{"html": path, "markdown": path, "assets": dir}``.

    Raises:
        ValueError: no runs, or labels of the wrong length / not unique.
        FileNotFoundError: a run directory is missing or unfinished.
    """
    records = load_records(runs, labels)
    model_args = dict(test_set=test_set, num_examples=num_examples, num_cam=num_cam,
                      want_cam=cam, cam_methods=cam_methods)  # fmt: skip
    sections = _sections(records, command, seed_runs, model_views, model_args, evaluations)
    page_title, facts = _header(records, title)

    out_dir = Path(out_dir)
    assets = out_dir / ASSETS_DIRNAME
    for fig in (fig for sec in sections for fig in sec.figures):
        atomic_write_bytes(assets / f"{fig.name}.png", fig.png)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    atomic_write_text(html_path, _html_page(page_title, facts, notes, sections))
    atomic_write_text(md_path, _markdown_page(page_title, facts, notes, sections))
    return {"html": html_path, "markdown": md_path, "assets": assets}
