"""How the browser tests find Chromium, and what they do without it (no browser needed)."""

from __future__ import annotations

import pytest

from browser.chromium import LAUNCH_ARGS, find_chromium
from browser.conftest import unavailable


def test_hookbook_chromium_wins_over_path(tmp_path, monkeypatch):
    executable = tmp_path / "my-chromium"
    executable.write_text("")
    monkeypatch.setenv("HOOKBOOK_CHROMIUM", str(executable))
    assert find_chromium() == str(executable)
    monkeypatch.setenv("HOOKBOOK_CHROMIUM", str(tmp_path / "missing"))
    assert find_chromium() is None


def test_path_is_searched_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HOOKBOOK_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() is None
    executable = tmp_path / "chromium"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    assert find_chromium() == str(executable)


def test_without_chromium_skip_with_the_reason_but_fail_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        unavailable("Chromium not found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI=true: Chromium not found"):
        unavailable("Chromium not found")


def test_the_launch_never_reaches_out():
    for flag in ("--headless", "--no-sandbox", "--disable-background-networking", "--no-first-run"):
        assert flag in LAUNCH_ARGS
