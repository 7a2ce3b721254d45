"""``hookbook tutorials [DIR]``: the notebooks ship in the wheel and copy out to open."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from hookbook.cli import main
from hookbook.errors import HookbookError
from hookbook.tutorials import copy_tutorials, tutorial_files

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_the_five_tutorials_are_found() -> None:
    names = [path.name for path in tutorial_files()]
    assert names == sorted(path.name for path in NOTEBOOKS.glob("*.md"))
    assert len(names) == 5 and names[0] == "01-webhooks-in-ten-minutes.md"


def test_copy_then_refuse_to_overwrite_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    copied = copy_tutorials(folder)
    assert [p.name for p in copied] == [p.name for p in tutorial_files()]
    for path in copied:
        assert path.read_bytes() == (NOTEBOOKS / path.name).read_bytes()
    copied[0].write_text("my notes")
    with pytest.raises(HookbookError, match=r"already exist.*--force") as caught:
        copy_tutorials(folder)
    assert copied[0].name in str(caught.value)
    assert copied[0].read_text() == "my notes"
    copy_tutorials(folder, force=True)
    assert copied[0].read_bytes() == (NOTEBOOKS / copied[0].name).read_bytes()


def test_the_command_copies_and_says_how_to_open_them(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tutorials"]) == 0
    out = capsys.readouterr().out
    assert len(list((tmp_path / "hookbook-tutorials").glob("*.md"))) == 5
    assert "jupytext" in out and "jupyter lab hookbook-tutorials" in out
    assert "Open With > Notebook" in out
    assert main(["tutorials"]) == 2  # a second copy would overwrite: refused, saying why
    assert "--force" in capsys.readouterr().err


@pytest.mark.slow
def test_the_wheel_ships_the_notebooks(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed: it builds the wheel here")
    root = NOTEBOOKS.parent
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("hookbook-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for notebook in NOTEBOOKS.glob("*.md"):
        assert f"hookbook/tutorials/{notebook.name}" in names
    assert "hookbook/server/ui/templates/base.html" in names
    assert "hookbook/server/ui/static/dashboard.js" in names
    assert "hookbook/testing/inspector_assets/inspector.js" in names
