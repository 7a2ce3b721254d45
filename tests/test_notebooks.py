"""The tutorial notebooks are tests: each ``notebooks/*.md`` runs as one test.

jupytext reads the MyST-Markdown file, nbclient executes it in a fresh
kernel of *this* interpreter (a ``python3`` kernelspec for
``sys.executable`` is written to a temporary folder, so no machine-wide
Jupyter install is used), with a per-cell timeout of 120 s and the
notebook's folder as the working directory. A failing cell fails the test
with the notebook, the cell (index, code-cell number, line in the ``.md``)
and the traceback; so does a Python warning on stderr, or a server,
receiver or process left running. The kernel is shut down afterwards.

The selected notebooks start together when the first of them is needed, as
many at a time as there are CPUs (each in its own kernel, with its own
servers on free ports); each test then waits for its own notebook. So the
session takes about as long as the slowest notebooks, not their sum.

Run every notebook::

    pytest tests/test_notebooks.py

Run one notebook alone (the test ids are the file stems, e.g.
``03-retries-failures-redelivery``)::

    pytest tests/test_notebooks.py -k 03

The PostgreSQL part of ``05-running-in-production`` runs only when
``HOOKBOOK_TUTORIAL_POSTGRES`` holds a database URI, e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from notebook_runner import NotebookFailed, run_notebook, write_kernelspec

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.md"))

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


@pytest.fixture(scope="session")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield write_kernelspec(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="session")
def notebook_runs(
    request: pytest.FixtureRequest, kernel_dirs: Path
) -> Iterator[dict[Path, Future[Any]]]:
    """Start every selected tutorial notebook, one per CPU at a time; waits for all at the end."""
    selected = [
        item.callspec.params["notebook"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_notebook" and hasattr(item, "callspec")
    ]
    workers = max(1, min(len(selected), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notebook") as pool:
        runs = {path: pool.submit(run_notebook, path, kernel_dirs=kernel_dirs) for path in selected}
        try:
            yield runs
        finally:
            for run in runs.values():
                run.cancel()  # the ones not started yet (after -x, or Ctrl-C)


def test_the_five_tutorials_exist() -> None:
    assert [p.stem[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-"], NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(notebook: Path, notebook_runs: dict[Path, Future[Any]]) -> None:
    nb = notebook_runs[notebook].result()  # raises NotebookFailed, naming notebook and cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{notebook.name} has no code cells"


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_a_failing_cell_names_the_notebook_and_the_cell(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "broken.md",
        """
        # A broken notebook

        ```{code-cell} ipython3
        import os
        here = os.getcwd()
        ```

        Some prose between the cells.

        ```{code-cell} ipython3
        def check(value):
            assert value == 2, f"expected 2, got {value}"

        check(1 + 2)
        ```

        ```{code-cell} ipython3
        raise SystemExit("never reached")
        ```
        """,
    )
    with pytest.raises(NotebookFailed) as failed:
        run_notebook(notebook, kernel_dirs=kernel_dirs)
    message = str(failed.value)
    assert isinstance(failed.value, AssertionError)
    first_line = message.splitlines()[0]
    # Cell 0 is the "# A broken notebook" markdown cell.
    assert first_line == "broken.md: cell 3 (code cell 2, line 21 of broken.md) failed:"
    assert 'assert value == 2, f"expected 2, got {value}"' in message  # the source
    assert "AssertionError: expected 2, got 3" in message  # the traceback
    assert "check(1 + 2)" in message
    assert "\x1b[" not in message  # no terminal colours
    assert "never reached" not in message


def test_a_notebook_runs_in_its_folder_with_this_python(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "cwd.md",
        """
        ```{code-cell} ipython3
        import pathlib, sys
        pathlib.Path("here.txt").write_text(sys.executable)
        ```
        """,
    )
    run_notebook(notebook, kernel_dirs=kernel_dirs)
    assert (tmp_path / "here.txt").read_text() == sys.executable


def test_a_cell_over_the_timeout_fails(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "slow.md",
        """
        ```{code-cell} ipython3
        import threading
        threading.Event().wait(30)
        ```
        """,
    )
    with pytest.raises(
        NotebookFailed, match=r"slow\.md: cell 0 .*\n(.|\n)*per-cell timeout of 1 s"
    ):
        run_notebook(notebook, kernel_dirs=kernel_dirs, timeout=1)


def test_a_server_left_running_fails(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "leaky.md",
        """
        ```{code-cell} ipython3
        from hookbook.testing import WebhookReceiver
        receiver = WebhookReceiver().start()
        ```
        """,
    )
    with pytest.raises(NotebookFailed, match="left servers or receivers running"):
        run_notebook(notebook, kernel_dirs=kernel_dirs)


def test_a_process_left_running_fails_and_is_killed(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "orphan.md",
        """
        ```{code-cell} ipython3
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open("child.pid", "w").write(str(child.pid))
        ```
        """,
    )
    with pytest.raises(NotebookFailed, match="left child processes running"):
        run_notebook(notebook, kernel_dirs=kernel_dirs)
    pid = int((tmp_path / "child.pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), "the orphan was not killed"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_python_warning_fails(tmp_path: Path, kernel_dirs: Path) -> None:
    notebook = _write(
        tmp_path,
        "warns.md",
        """
        ```{code-cell} ipython3
        import warnings
        warnings.warn("this API is going away", UserWarning, stacklevel=1)
        ```
        """,
    )
    with pytest.raises(NotebookFailed, match=r"warns\.md: cell 0 .* printed a Python warning"):
        run_notebook(notebook, kernel_dirs=kernel_dirs)
