"""mkdocs hooks: run the figure scripts of ``docs/gen/`` and put their output in the site.

Every number and figure of the guide comes from a script in ``docs/gen/`` that runs
globalpool itself. Each script writes Markdown snippets and images into its own output
folder; pages pull a snippet in with a line ``<!-- gen: SCRIPT/FILE.md -->`` and refer to
images as ``gen/SCRIPT/FILE.png``.

Outputs are cached in ``build/docs-gen/`` under a key made of the script, the helper module
``docs/gen/_common.py``, every source file of ``src/globalpool``, the files the script
declares it reads (``READS``), the outputs of the scripts it depends on (``DEPENDS``) and
the mode, so a rebuild after an edit to the Markdown only is immediate.

Environment:
    GLOBALPOOL_DOCS_QUICK=1   the smallest runs (a few seconds each), for tests and drafts.
    GLOBALPOOL_DOCS_JOBS=N    scripts run in parallel (default 2, one torch thread each).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.globalpool")

ROOT = Path(__file__).resolve().parent.parent
GEN_DIR = ROOT / "docs" / "gen"
CACHE = ROOT / "build" / "docs-gen"
INCLUDE = re.compile(r"^<!-- gen: ([\w-]+)/([\w.-]+) -->[ \t]*$", re.MULTILINE)

_outputs: dict[str, Path] = {}  # script name -> its output folder, for this build


def _quick() -> bool:
    return os.environ.get("GLOBALPOOL_DOCS_QUICK", "") not in ("", "0")


def _declared(script: Path, name: str) -> list[str]:
    """A module-level list of strings (``DEPENDS``, ``READS``) of a script, read
    without running it."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


def _scripts() -> dict[str, Path]:
    return {p.stem: p for p in sorted(GEN_DIR.glob("*.py")) if not p.stem.startswith("_")}


def _hash_files(h, paths) -> None:
    for path in paths:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")


def _package_digest() -> str:
    h = hashlib.sha256()
    _hash_files(h, sorted((ROOT / "src" / "globalpool").rglob("*.py")))
    _hash_files(h, [GEN_DIR / "_common.py"])
    return h.hexdigest()


def _run_all() -> None:
    scripts = _scripts()
    deps = {name: _declared(path, "DEPENDS") for name, path in scripts.items()}
    for name, wanted in deps.items():
        for dep in wanted:
            if dep not in scripts:
                raise PluginError(f"docs/gen/{name}.py depends on unknown script {dep!r}")
    mode = "quick" if _quick() else "full"
    base = _package_digest()
    keys: dict[str, str] = {}

    def key_of(name: str) -> str:
        if name not in keys:
            h = hashlib.sha256(f"{mode}\n{base}\n".encode())
            _hash_files(h, [scripts[name]])
            _hash_files(h, [ROOT / r for r in _declared(scripts[name], "READS")])
            for dep in deps[name]:
                h.update(key_of(dep).encode())
            keys[name] = h.hexdigest()[:16]
        return keys[name]

    CACHE.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    pending = dict(scripts)
    jobs = max(1, int(os.environ.get("GLOBALPOOL_DOCS_JOBS", "2")))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending:
            ready = [n for n in pending if all(d in done for d in deps[n])]
            if not ready:
                raise PluginError(f"docs/gen: circular DEPENDS among {sorted(pending)}")
            futures = {
                n: pool.submit(_run_one, n, pending[n], key_of(n), mode, done, jobs) for n in ready
            }
            for name, future in futures.items():
                done[name] = future.result()
                del pending[name]
    log.info("docs/gen: %d scripts ready in %.1f s", len(done), time.perf_counter() - started)
    # drop stale outputs of earlier keys
    current = {p.name for p in done.values()}
    for old in CACHE.iterdir():
        stale = f"-{mode}-" in old.name and old.name not in current
        if old.is_dir() and stale and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    _outputs.clear()
    _outputs.update(done)


def _run_one(name: str, script: Path, key: str, mode: str, done: dict, jobs: int) -> Path:
    out = CACHE / f"{name}-{mode}-{key}"
    if (out / ".complete").is_file():
        return out
    tmp = CACHE / f".{name}-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, str(script), "--out", str(tmp)]
    if mode == "quick":
        cmd.append("--quick")
    for dep in _declared(script, "DEPENDS"):
        cmd += ["--dep", f"{dep}={done[dep]}"]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    if jobs > 1:  # parallel scripts: one thread each beats two contending thread pools
        env.setdefault("OMP_NUM_THREADS", "1")
    log.info("docs/gen: running %s (%s)", name, mode)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise PluginError(f"docs/gen/{name}.py failed (exit {proc.returncode}):\n{tail}")
    (tmp / ".complete").write_text(f"{time.perf_counter() - started:.1f}\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("docs/gen: %s done in %.1f s", name, time.perf_counter() - started)
    return out


# -- mkdocs events ---------------------------------------------------------------------
def on_pre_build(config, **kwargs) -> None:
    _run_all()


def on_files(files, config, **kwargs):
    for name, out in _outputs.items():
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.suffix.lower() in (".png", ".svg", ".html", ".onnx"):
                uri = f"gen/{name}/{path.relative_to(out).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    def include(match: re.Match) -> str:
        name, filename = match.group(1), match.group(2)
        if name not in _outputs:
            raise PluginError(f"{page.file.src_uri}: no docs/gen script named {name!r}")
        path = _outputs[name] / filename
        if not path.is_file():
            raise PluginError(f"{page.file.src_uri}: docs/gen/{name}.py wrote no {filename}")
        text = path.read_text(encoding="utf-8").rstrip("\n")
        depth = page.file.src_uri.count("/")
        if depth:  # snippets link images as gen/...; fix them for pages in sub-folders
            text = text.replace("](gen/", "](" + "../" * depth + "gen/")
        return text

    return INCLUDE.sub(include, markdown)
