"""The head-comparison report: ``report.html`` (one self-contained file) and ``report.md``.

The report is rendered from run directories alone (``summary.json``, ``metrics.jsonl``,
``config.json`` and, when present, ``checkpoints/best.safetensors``), so it can be
rebuilt at any time from finished runs. Sections:

- a table per head: parameters (total and head), FLOPs, best and final validation
  accuracy, test accuracy, final train accuracy, generalization gap, epochs, wall time,
  images/s;
- learning curves (train/validation accuracy and loss per epoch, one panel per head,
  shared axes) and the generalization gap per epoch of every head in one plot;
- a few test images with every model's prediction (needs the checkpoints and the data);
- class activation maps and localization scores (needs :mod:`globalpool.analysis.cam`);
- the exact command, the configuration, software versions and the machine.

``report.html`` embeds every plot as a base64 PNG and its CSS inline; it loads nothing
from the network. A small inline script checks, once the page has loaded, that every
image decoded, and records the result in ``#render-check`` (used by the browser test).
``report.md`` refers to the same plots saved as PNG files in ``report_assets/``.

Each section is described once (:mod:`globalpool.analysis.markup` blocks) and rendered to
both files. One job per module:

- ``records``: reading runs (:class:`RunRecord`, :func:`results_table`, highlights, the
  shared and differing configuration);
- ``tables``: formatting cells, the results table as plain text;
- ``figures``: learning curves, the gap plot, the predictions grid;
- ``environment``: software versions and the machine;
- ``sections``: the sections read from the run files;
- ``model_views``: the sections that load the checkpoints (predictions through
  :mod:`globalpool.deploy`, CAM, localization);
- ``page``: the page itself, :func:`write_report`.

Example:
    >>> from globalpool.analysis.report import write_report  # doctest: +SKIP
    >>> runs = ["runs/compare/fc", "runs/compare/classmap-avg"]
    >>> paths = write_report("runs/compare", runs)  # doctest: +SKIP
"""

from globalpool.analysis.report.environment import environment_info
from globalpool.analysis.report.figures import (
    gap_figure,
    learning_curves_figure,
    predictions_figure,
)
from globalpool.analysis.report.model_views import select_examples
from globalpool.analysis.report.page import ASSETS_DIRNAME, write_report
from globalpool.analysis.report.records import (
    RunRecord,
    highlights,
    load_run_record,
    results_table,
)
from globalpool.analysis.report.tables import text_table

__all__ = [
    "ASSETS_DIRNAME",
    "RunRecord",
    "environment_info",
    "gap_figure",
    "highlights",
    "learning_curves_figure",
    "load_run_record",
    "predictions_figure",
    "results_table",
    "select_examples",
    "text_table",
    "write_report",
]
