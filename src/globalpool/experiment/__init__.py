"""The head-comparison experiment: one backbone, several heads, then the report.

- :mod:`globalpool.experiment.heads`: ``HeadSpec`` and the ``--heads`` syntax.
- :mod:`globalpool.experiment.compare`: ``compare(base_config, heads, out_dir)``.
"""

from globalpool.experiment.compare import COMPARE_DEFAULTS, compare, default_compare_config
from globalpool.experiment.heads import DEFAULT_HEADS, HeadSpec, parse_head, parse_heads

__all__ = [
    "COMPARE_DEFAULTS",
    "DEFAULT_HEADS",
    "HeadSpec",
    "compare",
    "default_compare_config",
    "parse_head",
    "parse_heads",
]
