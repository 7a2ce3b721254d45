"""``hookbook demo``: the whole flow in one command, checked through what it prints."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from conftest import wait_until
from hookbook import demo
from hookbook.demo import run_demo

EVENTS = (
    ("container-child-created", "run1"),
    ("container-child-created", "run1/temperature"),
    ("container-child-created", "run1/positions"),
    ("stream-closed", "run1/temperature"),
    ("container-child-metadata-updated", "run1"),
)


def _console() -> Console:
    return Console(record=True, width=120, file=io.StringIO(), color_system=None)


def _section(text: str, title: str) -> list[str]:
    """The rows of the table titled ``title``: after its header rule, up to the next
    line that is not a row (rows start with a number)."""
    lines = text.split(title, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("───")) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip()[:1].isdigit():
            break
        rows.append(line.strip())
    return rows


def test_demo_prints_deliveries_and_history() -> None:
    console = _console()
    assert run_demo(console=console) == 0
    text = console.export_text()

    received = _section(text, "What the receiver got")
    # Five events, the first refused once (500) and retried with the same event id.
    assert len(received) == 6, received
    assert received[0].endswith("500") and received[0].split()[1:3] == list(EVENTS[0])
    assert all(row.endswith("200") for row in received[1:])
    assert all(" valid " in row for row in received)
    first_id = received[0].split()[3]
    assert [row.split()[3] for row in received].count(first_id) == 2
    assert {tuple(row.split()[1:3]) for row in received} == set(EVENTS)

    history = _section(text, "The server's delivery history")
    assert [row.split()[1:3] for row in history] == [list(e) for e in EVENTS]
    assert all(
        row.split()[3:] in (["success", "1", "200"], ["success", "2", "200"]) for row in history
    )
    assert "verified: the receiver checked each signature with the webhook's secret " in text
    assert "(scheme: standard-webhooks;" in text
    assert history[0].split()[4] == "2"  # the retried one

    assert "5 events delivered, each signed and verified; 1 retry" in text
    assert "Skipping the table" not in text


def test_demo_json_shows_each_payload_once() -> None:
    console = _console()
    assert run_demo(show_json=True, console=console) == 0
    text = console.export_text()
    assert text.count("Payload of event") == 5
    assert '"structure_family": "table"' in text
    assert '"status": "done"' in text


def test_demo_without_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core install has no pyarrow: the table is skipped, saying why, and the rest runs."""
    monkeypatch.setattr(demo, "_tables_available", lambda: False)
    console = _console()
    assert run_demo(console=console) == 0
    text = console.export_text()
    assert "Skipping the table: writing tables needs pyarrow" in text
    assert "run1/positions" not in text
    assert "4 events delivered" in text


def test_demo_reports_missing_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event that never arrives: exit status 1 and a message listing what did arrive."""
    write = demo._write_entries
    monkeypatch.setattr(demo, "_write_entries", lambda *a: [*write(*a), "an event never sent"])
    monkeypatch.setattr(demo, "WAIT_TIMEOUT", 0.5)
    console = _console()
    assert run_demo(console=console) == 1
    text = console.export_text()
    assert "Not every event arrived in time" in text
    assert "waited 0.5 s for 6 deliveries" in text
    assert "What the receiver got" not in text


def _hookbook_command() -> str:
    script = Path(sys.executable).with_name("hookbook")
    if script.exists():
        return str(script)
    found = shutil.which("hookbook")
    assert found, "the hookbook command is not installed next to this Python or on PATH"
    return found


@pytest.mark.slow
def test_hookbook_demo_command() -> None:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    result = subprocess.run(
        [_hookbook_command(), "demo"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "What the receiver got" in result.stdout
    assert "5 events delivered" in result.stdout
    assert "Traceback" not in result.stderr
    # The demo explains the relaxed local-development rules itself; the log does not repeat it.
    assert "relaxed" not in result.stderr
    assert "hookbook tutorials" in " ".join(result.stdout.strip().splitlines()[-3:])


def test_demo_ends_by_naming_the_tutorials_command() -> None:
    console = _console()
    assert run_demo(console=console) == 0
    last = console.export_text().strip().splitlines()[-3:]
    assert "`hookbook tutorials`" in " ".join(last)


def test_demo_ui_keeps_both_pages_up_until_stopped() -> None:
    output = io.StringIO()
    console = Console(file=output, width=200, color_system=None)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(run_demo(console=console, ui=True, stop_event=stop))
    )
    thread.start()
    try:
        text = wait_until(
            lambda: "Press Ctrl-C to stop." in output.getvalue() and output.getvalue(),
            timeout=60,
            message="the demo prints the pages' addresses",
        )
        dashboard = re.search(r"http://127\.0\.0\.1:\d+/ui/\?token=\S+", text).group(0)
        inspector = re.search(r"http://127\.0\.0\.1:\d+/_hookbook/\?token=\S+", text).group(0)
        with httpx.Client() as browser:
            assert browser.get(dashboard).status_code == 200  # signs in
            page = browser.get(dashboard.split("?")[0])
            assert page.status_code == 200 and "/webhook" in page.text
        shown = httpx.get(inspector.replace("/?", "/api/deliveries?"))
        assert shown.json()["total"] == 6  # five events, one retried
    finally:
        stop.set()
        thread.join(30)
    assert result == [0]
    assert "Stopped: the server, the receiver and the temporary directory are gone." in (
        output.getvalue()
    )
    with pytest.raises(httpx.TransportError):
        httpx.get(dashboard, timeout=2)


@pytest.mark.slow
def test_hookbook_demo_ui_command_stops_on_ctrl_c() -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [_hookbook_command(), "demo", "--ui"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        text = "".join(lines)
        dashboard = re.search(r"http://127\.0\.0\.1:\d+/ui/\?token=\S+", text)
        assert dashboard, text
        assert httpx.get(dashboard.group(0)).status_code == 200
        assert "/_hookbook/?token=" in text
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, text + out + err
    assert "Stopped:" in out
    assert "relaxed" not in err and "Traceback" not in err


def test_the_demo_quiets_the_relaxed_rules_notice_by_its_logger_only(caplog) -> None:
    from hookbook.demo import _quiet_relaxed_rules_warning
    from hookbook.webhooks.service import RELAXED_RULES_LOGGER

    caplog.set_level(logging.WARNING, logger="hookbook")
    notice = logging.getLogger(RELAXED_RULES_LOGGER)
    service = logging.getLogger("hookbook.webhooks.service")
    with _quiet_relaxed_rules_warning():
        notice.warning("webhook target rules relaxed (quiet)")
        service.warning("another warning of the service")
    notice.warning("webhook target rules relaxed (after the demo)")
    assert [r.getMessage() for r in caplog.records] == [
        "another warning of the service",
        "webhook target rules relaxed (after the demo)",
    ]
