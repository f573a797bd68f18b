"""``globalpool --help`` and argument errors must not wait for torch to import."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_parser_imports_no_torch():
    code = (
        "import sys; from globalpool.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
