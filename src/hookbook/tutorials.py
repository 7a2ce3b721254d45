"""``hookbook tutorials [DIR]``: copy the tutorial notebooks into a folder to open in Jupyter.

The notebooks are MyST Markdown (``notebooks/*.md`` in the source, the single
source of truth); the wheel ships them as ``hookbook/tutorials/``. Jupyter
opens them as notebooks through jupytext.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import HookbookError

__all__ = ["copy_tutorials", "tutorial_files"]

_PACKAGED = Path(__file__).parent / "tutorials"  # in a wheel (pyproject: force-include)
_SOURCE = Path(__file__).resolve().parents[2] / "notebooks"  # in a checkout (editable)

#: What to install and run to open them (the notebooks use pandas, matplotlib, ...).
HOW_TO_OPEN = (
    'pip install "hookbook[test]" jupyterlab',
    "jupyter lab {folder}",
)


def tutorial_files() -> list[Path]:
    """The tutorial notebooks this installation ships, in order."""
    for folder in (_PACKAGED, _SOURCE):
        found = sorted(folder.glob("[0-9][0-9]-*.md"))
        if found:
            return found
    raise HookbookError(
        "this installation has no tutorial notebooks (they ship in the wheel as "
        "hookbook/tutorials/); reinstall hookbook"
    )


def copy_tutorials(folder: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the notebooks into ``folder`` (made if needed); return the new files.

    A file already there is not overwritten unless ``force``: the error names it.
    """
    folder = Path(folder)
    sources = tutorial_files()
    targets = [folder / source.name for source in sources]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise HookbookError(
            f"{', '.join(str(t) for t in existing)} already exist(s); "
            "use --force to overwrite, or choose another folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, targets, strict=True):
        shutil.copyfile(source, target)
    return targets
