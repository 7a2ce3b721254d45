"""What the light entry points pull in: a notebook's first cell and every test that
uses the client pay for ``import hookbook.client``; every pytest run that has the
plugin installed pays for ``import hookbook.testing``.

Checked as lists of modules in a fresh interpreter, never as times (the time is
measured by ``bench/bench_imports.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: The server's stack and the optional data libraries: none belongs in a client.
SERVER_AND_DATA = ["fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "aiohttp",
                   "jinja2", "pandas", "pyarrow", "zarr"]  # fmt: skip


def loaded_after(statement: str, candidates: list[str]) -> list[str]:
    """Which of ``candidates`` (top-level package names) a fresh interpreter has
    imported after running ``statement``."""
    code = (
        "import json, sys\n"
        f"{statement}\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        f"print(json.dumps(sorted(loaded & set({candidates!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("statement", "heavy"),
    [
        # numpy too: it is imported on the first array read or write.
        ("import hookbook.client", [*SERVER_AND_DATA, "numpy"]),
        ("import hookbook.testing", [*SERVER_AND_DATA, "numpy", "httpx", "werkzeug"]),
        ("from hookbook.testing import WebhookReceiver", SERVER_AND_DATA),
    ],
)
def test_light_imports_leave_the_server_and_data_stacks_alone(
    statement: str, heavy: list[str]
) -> None:
    assert loaded_after(statement, heavy) == []


def test_the_check_sees_a_heavy_import() -> None:
    """The probe itself works: the server does load its stack."""
    assert loaded_after("from hookbook.server import SimpleServer", ["fastapi", "sqlalchemy"]) == [
        "fastapi",
        "sqlalchemy",
    ]
