"""The guide: ``mkdocs build --strict`` (smallest figure runs) and its pages in Chromium.

Builds the site into a temporary folder with ``GLOBALPOOL_DOCS_QUICK=1`` (the docs hook
then trains for seconds, not minutes; outputs are cached in build/docs-gen/ keyed by the
code), then opens the index and the compare page in headless Chromium and checks, from
inside the page, that every <img> loaded.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from browser import render_in_chromium, require

ROOT = Path(__file__).resolve().parent.parent
# Appended to a copy of each page: after load, report how many <img> decoded.
CHECK = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var p = document.createElement("p");
  p.id = "img-check";
  p.setAttribute("data-images", String(imgs.length));
  p.setAttribute("data-broken", broken.map(function (i) { return i.src; }).join(" "));
  document.body.appendChild(p);
});
</script>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        require("the docs extra (pip install -e '.[docs]')", False)
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, GLOBALPOOL_DOCS_QUICK="1", NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-5000:]}"
    return out


def _images_in_chromium(page: Path, work: Path) -> tuple[int, str]:
    checked = page.with_name("checked.html")  # beside the page: relative links still work
    checked.write_text(
        page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8"
    )
    dom = render_in_chromium(checked, work)
    marker = re.search(r'<p id="img-check"([^>]*)>', dom)
    assert marker, f"the image check did not run in {page}"
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', marker.group(1)))
    return int(attrs["images"]), attrs["broken"]


def test_generated_pages_have_their_figures(site):
    compare = (site / "compare" / "index.html").read_text(encoding="utf-8")
    for figure in ("learning_curves.png", "gap.png", "cam.png"):
        assert f"gen/compare_shapes/{figure}" in compare
        assert (site / "gen" / "compare_shapes" / figure).stat().st_size > 1000
    why = (site / "why-global-pooling" / "index.html").read_text(encoding="utf-8")
    assert "61,100,840" in why and "58,631,144" in why  # AlexNet, from `globalpool models`
    ops = (site / "operators" / "index.html").read_text(encoding="utf-8")
    from globalpool.pool import list_pools

    for name in list_pools():
        assert f"<code>{name}</code>" in ops
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert "create_model" in api and "AlexNet" in api


@pytest.mark.parametrize(("page", "min_images"), [("index.html", 1), ("compare/index.html", 4)])
def test_page_images_load_in_chromium(site, tmp_path, page, min_images):
    count, broken = _images_in_chromium(site / page, tmp_path)
    assert broken == ""
    assert count >= min_images
