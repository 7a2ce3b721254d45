"""README.md stays true: its Python blocks run, its two commands exist, its links resolve.

Every fenced ``python`` block is executed on its own in a fresh interpreter
(warnings are errors there too). A block that cannot run may be preceded by
the HTML comment ``<!-- readme-test: skip -->``; the main flow may not.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
_FENCE = re.compile(r"^(`{3,})(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    skipped: bool


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.groups()
        previous = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == fence)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(language, code, i + 1, previous == SKIP_MARK))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.language == "python"]


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first, second = BLOCKS[:2]
    assert (first.language, first.code.split("\n")[:2]) == (
        "bash",
        ["pip install .", "hookbook demo"],
    )
    assert (second.language, second.code.split("\n")[:2]) == ("bash", ["pip install nox uv", "nox"])
    # Nothing but the title and a few words before them: no section comes first.
    before = text[: text.index("```bash")]
    assert [ln for ln in before.splitlines() if ln.startswith("#")] == ["# hookbook"]
    assert second.line < text[: text.index("\n## ")].count("\n") + 1


def test_the_two_commands_are_current() -> None:
    """``hookbook demo`` is a real command; a bare ``nox`` runs lint, tests, notebooks,
    docs, then the browser tests (after docs: they check the built site)."""
    from hookbook.cli import build_parser

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["hookbook"] == "hookbook.cli:main"
    assert build_parser().parse_args(["demo"]).command == "demo"

    noxfile = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    sessions = next(
        ast.literal_eval(node.value)
        for node in ast.walk(noxfile)
        if isinstance(node, ast.Assign)
        and any(ast.unparse(t) == "nox.options.sessions" for t in node.targets)
    )
    assert set(sessions) == {"tests", "notebooks", "docs", "lint", "browser"}
    assert sessions.index("browser") > sessions.index("docs")
    functions = {n.name for n in ast.walk(noxfile) if isinstance(n, ast.FunctionDef)}
    assert set(sessions) <= functions


def test_the_main_flow_is_executed() -> None:
    """The register -> write -> deliver -> history flow is a block that runs."""
    flows = [
        b
        for b in PYTHON
        if not b.skipped
        and "client.webhooks.register" in b.code
        and "receiver.wait_for" in b.code
        and "client.webhooks.history" in b.code
    ]
    assert flows, "README.md must show (and this test must run) the main flow"


@pytest.mark.parametrize("block", PYTHON, ids=[f"line-{b.line}" for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skipped:
        pytest.skip(f"marked {SKIP_MARK}")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", block.code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, (
        f"README.md block at line {block.line} failed (exit {result.returncode}):\n"
        f"--- code ---\n{block.code}--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )


def test_local_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "expected links to the tutorials and docs"
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
