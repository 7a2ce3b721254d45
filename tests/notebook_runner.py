"""Execute a MyST-Markdown notebook (jupytext) with nbclient, and fail loudly.

:func:`run_notebook` reads a ``.md`` notebook with jupytext, runs every cell
in a fresh kernel with a per-cell timeout, and raises :class:`NotebookFailed`
(an ``AssertionError``) naming the notebook, the cell (its index, its number
among the code cells and its line in the ``.md`` file), the cell's source and
the traceback when a cell raises or times out. It also fails a notebook that:

- prints a Python warning (``...Warning: ...`` on stderr), the notebook
  counterpart of pytest's ``filterwarnings = error``;
- leaves a server, receiver or child process running at its end (a check
  cell appended by the runner looks, then the kernel's process group is
  checked after the kernel has shut down; whatever is left is killed).

The kernel is resolved to *this* interpreter, never to a machine-wide
Jupyter install: :func:`write_kernelspec` writes a ``python3`` kernelspec
for ``sys.executable`` into a directory, and the kernel manager looks only
there. The kernel starts in the notebook's folder and is shut down
afterwards, whatever happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["CELL_TIMEOUT", "NotebookFailed", "run_notebook", "write_kernelspec"]

#: Seconds one cell may run before the notebook fails.
CELL_TIMEOUT = 120
#: The kernel name the notebooks' headers use.
KERNEL_NAME = "python3"
#: How long the runner waits for threads and processes to end after the last cell.
CLEANUP_GRACE = 2.0

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CODE_CELL = re.compile(r"^(`{3,}|~{3,})\{code-cell\}")
_PY_WARNING = re.compile(r"^.*\b[A-Z]\w*Warning: .*$", re.MULTILINE)

#: Appended to every notebook by the runner: what the notebook must have stopped.
_CLEANUP_CHECK = f"""
import os as _os, threading as _threading, time as _time

def _leftovers():
    threads = sorted(
        t.name for t in _threading.enumerate()
        if t.name.startswith(("hookbook-server", "hookbook-receiver"))
    )
    children = []
    if _os.path.isdir("/proc"):
        for pid in filter(str.isdigit, _os.listdir("/proc")):
            try:
                with open(f"/proc/{{pid}}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{{pid}}/cmdline", "rb") as fh:
                    command = fh.read().replace(b"\\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if int(fields[1]) == _os.getpid() and fields[0] != "Z":
                children.append(f"pid {{pid}}: {{command[:120]}}")
    return threads, children

_deadline = _time.monotonic() + {CLEANUP_GRACE}
while True:
    _threads, _children = _leftovers()
    if not (_threads or _children) or _time.monotonic() > _deadline:
        break
    _time.sleep(0.05)
assert not _threads, f"the notebook left servers or receivers running (threads {{_threads}})"
assert not _children, f"the notebook left child processes running: {{_children}}"
"""


class NotebookFailed(AssertionError):
    """A notebook cell raised, timed out, warned, or the notebook did not clean up."""


def write_kernelspec(directory: Path) -> Path:
    """Write a ``python3`` kernelspec that runs ``sys.executable``; return its kernels folder."""
    spec = Path(directory) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (hookbook notebook tests)",
                "language": "python",
                "metadata": {"debugger": False},
            },
            indent=1,
        )
    )
    return spec.parent


def _kernel_manager_class(kernel_dirs: Path) -> type:
    """An AsyncKernelManager that finds kernels only in ``kernel_dirs``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[str(kernel_dirs)], ensure_native_kernel=False)

    return LocalKernelManager


def _code_cell_lines(text: str) -> list[int]:
    """The 1-based line of each ``{code-cell}`` fence in a MyST notebook, in order."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if _CODE_CELL.match(line)]


def _process_group(pgid: int) -> list[str]:
    """The live (non-zombie) processes of a process group, as ``pid N: command``."""
    found = []
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux: just ask the kernel
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [f"process group {pgid}"]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        found.append(f"pid {pid}: {command.decode(errors='replace').strip()[:160]}")
    return found


def _end_process_group(pgid: int | None) -> list[str]:
    """Wait (bounded) for the kernel's process group to empty; kill what stays. Returns it."""
    if pgid is None or pgid in (os.getpgid(0), 0, 1):
        return []
    deadline = time.monotonic() + CLEANUP_GRACE
    left = _process_group(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _process_group(pgid)
    if left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    return left


def _describe_cell(path: Path, nb: Any, index: int, fences: list[int]) -> str:
    if index < 0:
        return f"{path.name}: before the first cell (starting the kernel)"
    if index >= len(nb.cells) or nb.cells[index].metadata.get("hookbook_runner_check"):
        return f"{path.name}: the runner's clean-up check (after the last cell)"
    code_index = sum(1 for c in nb.cells[:index] if c.cell_type == "code")
    where = f"{path.name}: cell {index} (code cell {code_index + 1}"
    if code_index < len(fences):
        where += f", line {fences[code_index]} of {path.name}"
    return where + ")"


def run_notebook(
    path: str | os.PathLike[str],
    *,
    timeout: int = CELL_TIMEOUT,
    kernel_dirs: Path | None = None,
    check_cleanup: bool = True,
) -> Any:
    """Execute the MyST notebook at ``path``; return the executed notebook node.

    Raises :class:`NotebookFailed` naming the notebook and the cell, with the
    cell's source and the traceback, if a cell raises or runs longer than
    ``timeout`` seconds. ``kernel_dirs``: a folder made by
    :func:`write_kernelspec` (default: a temporary one).
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path).resolve()
    text = path.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="md:myst")
    fences = _code_cell_lines(text)
    if check_cleanup:
        check = nbformat.v4.new_code_cell(_CLEANUP_CHECK)
        check.metadata["hookbook_runner_check"] = True
        nb.cells.append(check)

    with tempfile.TemporaryDirectory(prefix="hookbook-kernels-") as scratch:
        kernels = kernel_dirs if kernel_dirs is not None else write_kernelspec(Path(scratch))

        class Client(NotebookClient):  # type: ignore[misc]
            current_index: int = -1
            kernel_pgid: int | None = None

            async def async_execute_cell(self, cell: Any, cell_index: int, *a: Any, **kw: Any):
                self.current_index = cell_index
                if self.kernel_pgid is None and self.km is not None:
                    self.kernel_pgid = getattr(self.km.provisioner, "pgid", None)
                return await super().async_execute_cell(cell, cell_index, *a, **kw)

        client = Client(
            nb,
            timeout=timeout,
            kernel_name=KERNEL_NAME,
            kernel_manager_class=_kernel_manager_class(kernels),
            resources={"metadata": {"path": str(path.parent)}},
            allow_errors=False,
            record_timing=True,
        )
        failure: str | None = None
        try:
            # A new event loop, closed afterwards: this may run in a worker thread.
            asyncio.run(client.async_execute())
        except CellExecutionError as exc:
            # nbclient's message already holds the cell's source and its output.
            failure = _failure(path, nb, client.current_index, fences, str(exc), with_source=False)
        except CellTimeoutError as exc:
            failure = _failure(
                path,
                nb,
                client.current_index,
                fences,
                f"the cell ran longer than the per-cell timeout of {timeout} s\n{exc}",
            )
        except DeadKernelError as exc:
            failure = _failure(path, nb, client.current_index, fences, f"the kernel died: {exc}")
        finally:
            left = _end_process_group(client.kernel_pgid)
    if failure is not None:
        raise NotebookFailed(failure)
    if left and check_cleanup:
        raise NotebookFailed(
            f"{path.name}: processes were still running after the kernel shut down "
            f"(now killed): {left}"
        )
    _check_warnings(path, nb, fences)
    return nb


def _failure(
    path: Path, nb: Any, index: int, fences: list[int], detail: str, *, with_source: bool = True
) -> str:
    """The message: where, the cell's source (unless ``detail`` shows it), what happened."""
    where = _describe_cell(path, nb, index, fences)
    parts = [f"{where} failed:"]
    if with_source and 0 <= index < len(nb.cells):
        cell = nb.cells[index]
        if cell.metadata.get("hookbook_runner_check"):
            parts.append("(the runner's check that no server, receiver or process is left running)")
        else:
            parts.append("-" * 18 + "\n" + cell.source + "\n" + "-" * 18)
    parts.append(_ANSI.sub("", detail).strip())
    return "\n\n".join(parts)


def _check_warnings(path: Path, nb: Any, fences: list[int]) -> None:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found = _PY_WARNING.findall(output.get("text", ""))
                if found:
                    where = _describe_cell(path, nb, index, fences)
                    raise NotebookFailed(
                        f"{where} printed a Python warning (notebooks must run warning-free):\n"
                        + "\n".join(found)
                    )
