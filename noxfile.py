"""nox is hookbook's one entry point for checks: a bare ``nox`` runs them all.

Every session uses the Python that nox runs under (nothing downloads an
interpreter) and installs the project with the extras it needs. uv is used
to install when it is on PATH; pip otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys

import nox

# browser runs after docs: it checks the built site too.
nox.options.sessions = ["lint", "tests", "notebooks", "docs", "browser"]
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Bytecode compiled at install time: every test subprocess and kernel starts faster.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
if shutil.which("uv") is None:
    nox.options.default_venv_backend = "venv"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff, and types with mypy (no changes made).

    mypy (strict, configured in pyproject.toml) needs the project and its optional
    dependencies installed to see their real types.
    """
    session.install("-e", ".[tables,postgres,lint]")
    paths = ["src", "tests", "bench", "noxfile.py", "docs/conf.py", "docs/_ext", "docs/examples"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (PostgreSQL tests too, when it is reachable; required under CI)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--ignore=tests/test_notebooks.py",
        "--ignore=tests/browser",  # the browser session runs those
        *session.posargs,
        env={"PYTHONFAULTHANDLER": "1"},
    )


@nox.session(python=PYTHON)
def notebooks(session: nox.Session) -> None:
    """Execute every tutorial notebook as a test (a failing cell fails it)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_notebooks.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the Sphinx site, executing the notebooks; any warning fails the build."""
    session.install("-e", ".[docs]")
    out = os.path.join("docs", "_build", "html")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-j",
        "auto",
        "-b",
        "html",
        "docs",
        out,
        *session.posargs,
    )


SITE = os.path.join("docs", "_build", "html")


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """Drive the dashboard, the inspector and the built docs in headless Chromium.

    Uses Debian's chromium (or HOOKBOOK_CHROMIUM), never Playwright's download. Runs
    after ``docs``, whose site it checks; without Chromium the tests skip, saying why
    (a failure under CI=true).
    """
    if not os.path.exists(os.path.join(SITE, "index.html")):
        session.error(f"the docs site is not built ({SITE}): run `nox -s docs browser`")
    session.install("-e", ".[browser]")
    session.run("pytest", "tests/browser", *session.posargs)


@nox.session(python=PYTHON)
def screenshots(session: nox.Session) -> None:
    """Regenerate the dashboard and inspector images in docs/_static/screenshots/."""
    session.install("-e", ".[browser]")
    session.run("python", "-m", "browser.screenshots", env={"PYTHONPATH": "tests"})
