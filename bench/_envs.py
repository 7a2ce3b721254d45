"""Virtual environments for side-by-side benchmarks, created on first use.

Each comparison target runs in its own interpreter, because their pins differ:

- :func:`tiled_python`: the real Tiled 0.2.20 (``pip install "tiled[server]==0.2.20"``);
  it cannot import hookbook.
- :func:`baseline_python`: hookbook at an earlier commit (default: ``BASELINE``,
  the commit the current wave of issues measured against), extracted with
  ``git archive`` and installed (not editable) with its ``tables`` and
  ``postgres`` extras.

Environments live under ``$HOOKBOOK_BENCH_CACHE`` (default
``~/.cache/hookbook-bench``), outside the repository, and are reused: a
marker file is written only once an install has succeeded, so an
interrupted install is redone. uv is used when it is on PATH, pip otherwise.
Their bytecode is compiled once (:func:`_compiled`): this machine sets
``PYTHONDONTWRITEBYTECODE=1``, and without bytecode every start of Tiled
spends ~10 s of CPU compiling its imports (twice: ``SimpleTiledServer``
runs ``tiled catalog init`` in a subprocess). Nothing here runs at import
time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The commit issues 10-14 measured against ("hookbook at commit 5067661").
BASELINE = "5067661"
#: The Tiled release hookbook is compared with.
TILED_REQUIREMENT = "tiled[server]==0.2.20"

REPO = Path(__file__).resolve().parent.parent
_READY = ".hookbook-bench-ready"
_COMPILED = ".hookbook-bench-compiled"


def cache_dir() -> Path:
    return Path(os.environ.get("HOOKBOOK_BENCH_CACHE", Path.home() / ".cache" / "hookbook-bench"))


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _install(venv: Path, *requirements: str) -> None:
    """Create ``venv`` with this interpreter and install ``requirements`` into it."""
    if venv.exists():
        shutil.rmtree(venv)
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run([uv, "pip", "install", "-q", *requirements], check=True, env=env)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(_venv_python(venv)), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *requirements], check=True)
    (venv / _READY).write_text(" ".join(requirements) + "\n")


def _compiled(venv: Path) -> Path:
    """``venv``'s interpreter, after compiling its site-packages once (a marker remembers)."""
    python = _venv_python(venv)
    if not (venv / _COMPILED).exists():
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # Failures to compile a file (a test fixture with bad syntax) are not fatal.
        subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", site], check=False)
        (venv / _COMPILED).write_text("compiled\n")
    return python


def tiled_python() -> Path:
    """The interpreter of a venv holding the real Tiled 0.2.20 server and client."""
    venv = cache_dir() / "tiled-0.2.20"
    if not (venv / _READY).exists():
        print(f"creating {venv} ({TILED_REQUIREMENT}) ...", file=sys.stderr)
        _install(venv, TILED_REQUIREMENT)
    return _compiled(venv)


def resolve_commit(commit: str = BASELINE) -> str:
    """The full hash of ``commit`` in this repository."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def baseline_source(commit: str = BASELINE) -> Path:
    """The source tree of hookbook at ``commit`` (``git archive``, extracted once)."""
    full = resolve_commit(commit)
    tree = cache_dir() / f"hookbook-{full[:12]}" / "src-tree"
    if not (tree / _READY).exists():
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", full],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        (tree / _READY).write_text(full + "\n")
    return tree


def baseline_python(commit: str = BASELINE) -> Path:
    """The interpreter of a venv holding hookbook at ``commit`` (with tables and postgres)."""
    tree = baseline_source(commit)
    venv = tree.parent / "venv"
    if not (venv / _READY).exists():
        print(f"creating {venv} (hookbook at {commit}) ...", file=sys.stderr)
        _install(venv, f"{tree}[tables,postgres]")
    return _compiled(venv)


def current_python() -> Path:
    """The interpreter running this benchmark: hookbook as it is in this checkout."""
    return Path(sys.executable)


if __name__ == "__main__":  # python bench/_envs.py: create (or show) both environments
    print("tiled:", tiled_python())
    print("baseline:", baseline_python())
