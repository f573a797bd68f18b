"""Headless Chromium for the tests that check a page renders (report, guide).

Chromium is required in CI (.ci/run installs it); elsewhere a test without it is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Offline, sandbox-free, no background traffic: the machines here have no network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def require(what: str, found: bool) -> None:
    """Fail in CI, skip elsewhere, when a browser-test dependency is missing."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it) but was not found")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render_in_chromium(html_path: Path, work: Path, screenshot: Path | None = None) -> str:
    """Load the page in headless Chromium; return the DOM after load (scripts run)."""
    exe = chromium_path()
    require("chromium", exe is not None)
    url = Path(html_path).resolve().as_uri()
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}"]
    dom = subprocess.run(
        [*base, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    if screenshot is not None:
        subprocess.run(
            [*base, "--window-size=1400,2400", f"--screenshot={screenshot}", url],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
    return dom
