"""What a test does when something it needs is missing: skip, saying why; fail under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require, unavailable

TESTS = Path(__file__).parent


def test_unavailable_skips_with_the_reason_but_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the X tests skipped: no X here"):
        unavailable("no X here", needed_by="the X tests")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="the X tests are required under CI=true"):
        unavailable("no X here", needed_by="the X tests")


def test_require_imports_or_skips_or_fails_under_ci(monkeypatch):
    assert require("json").dumps([]) == "[]"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module_xyz cannot be imported"):
        require("no_such_module_xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_xyz cannot be imported"):
        require("no_such_module_xyz")


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        ("", "SKIPPED [1] tests/conftest.py"),
        ("true", "the tests are required under CI=true: tiled.client cannot be imported"),
    ],
)
def test_the_tiled_client_tests_without_tiled(tmp_path, ci, outcome):
    # A ``tiled`` package that cannot be imported shadows the real one.
    (tmp_path / "tiled").mkdir()
    (tmp_path / "tiled" / "__init__.py").write_text("raise ImportError('tiled is hidden')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CI": ci}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            str(TESTS / "test_tiled_client.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=TESTS.parent,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    # A skip collects nothing (exit 5); a failure is a collection error (exit 2).
    assert result.returncode == (2 if ci else 5), result.stdout
