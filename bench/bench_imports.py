"""What a notebook's first cell pays: ``import hookbook.client`` beside ``import tiled.client``.

Each import runs in a fresh interpreter with ``-X importtime``; its cost is the
sum of the cumulative times of the top-level imports the statement triggers
(interpreter start-up is left out). The targets take turns, round by round, so
a busy machine slows them alike; the table shows medians and the ratio.

- ``tiled.client`` is imported in this interpreter (the ``test`` extra installs
  Tiled's client, with the same httpx and pydantic as hookbook), and, when its
  venv exists (``python bench/_envs.py``), in the real Tiled 0.2.20 venv.
- Bytecode is written once before measuring (this machine sets
  ``PYTHONDONTWRITEBYTECODE=1``; a user's machine caches bytecode).

Target (issue 13): ``import hookbook.client`` at most as slow as ``import
tiled.client`` in the same run.

    python bench/bench_imports.py [--quick] [--rounds N] [--python PATH] [--markdown PATH]

``--python`` measures hookbook and tiled in another interpreter: the development
venv holds hundreds of distributions, and pydantic scans their entry points at
import; a lean venv (``uv venv /tmp/lean && uv pip install -p /tmp/lean .
"tiled[client]==0.2.20"``) is closer to a notebook user's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import Row, add_common_arguments, report
from _envs import cache_dir

#: Printed to stderr just before the import, to tell it from the interpreter's start-up.
_MARK = "-- hookbook bench: import starts --"


def import_cost(python: str, module: str) -> tuple[float, dict[str, float]]:
    """Seconds that ``import module`` spends importing in a fresh ``python``, and, for
    each package it loads, the cumulative seconds of its outermost import (which
    include what that package imports in turn)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = f"import sys; print({_MARK!r}, file=sys.stderr, flush=True); import {module}"
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    # What comes before the mark is the interpreter's own start-up (site, encodings).
    after_mark = done.stderr.split(_MARK, 1)[1].splitlines()
    total = 0.0
    packages: dict[str, float] = {}
    for line in after_mark:
        fields = line.split("|", 2)
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        seconds = int(fields[1]) / 1e6
        if not fields[2][1:].startswith(" "):  # indent 0: triggered by the statement itself
            total += seconds
        package = fields[2].strip().split(".")[0]
        packages[package] = max(packages.get(package, 0.0), seconds)
    return total, packages


def third_party(python: str, module: str) -> list[str]:
    """The top-level third-party packages ``import module`` loads."""
    code = (
        "import sys\n"
        f"import {module}\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(n for n in names if not n.startswith('_')"
        " and n not in sys.stdlib_module_names and n not in ('hookbook', 'tiled'))))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--rounds", type=int, help="fresh interpreters per target (default 15)")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter holding hookbook and tiled"
    )
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)

    here = args.python
    tiled_venv = cache_dir() / "tiled-0.2.20" / "bin" / "python"
    targets = {
        "hookbook.client": (here, "hookbook.client"),
        "hookbook.testing": (here, "hookbook.testing"),
        "tiled.client": (here, "tiled.client"),
    }
    if tiled_venv.exists():
        targets["tiled.client (0.2.20 venv)"] = (str(tiled_venv), "tiled.client")

    for python, module in targets.values():  # write bytecode once
        import_cost(python, module)
    times: dict[str, list[float]] = {name: [] for name in targets}
    heaviest: dict[str, float] = {}
    for i in range(rounds):
        order = list(targets.items())
        if i % 2:
            order.reverse()
        for name, (python, module) in order:
            total, parts = import_cost(python, module)
            times[name].append(total)
            if name == "hookbook.client":
                for part, seconds in parts.items():
                    heaviest[part] = heaviest.get(part, 0.0) + seconds / rounds

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["hookbook.client"] / median["tiled.client"]
    tiled_0220 = median.get("tiled.client (0.2.20 venv)")
    rows = [
        Row(
            "import hookbook.client, median",
            f"{median['hookbook.client'] * 1000:.0f} ms",
            "<= import tiled.client",
            f"{tiled_0220 * 1000:.0f} ms" if tiled_0220 else "",
        ),
        Row(
            "import tiled.client (same interpreter), median",
            f"{median['tiled.client'] * 1000:.0f} ms",
        ),
        Row("ratio hookbook.client / tiled.client", f"{ratio:.2f}x", "<= 1.00x", ok=ratio <= 1.0),
        Row("import hookbook.testing, median", f"{median['hookbook.testing'] * 1000:.0f} ms"),
    ]
    notes = [
        f"{rounds} fresh interpreters per target, alternating; sum of top-level -X importtime",
        "hookbook.client loads: " + " ".join(third_party(here, "hookbook.client")),
        "tiled.client loads: " + " ".join(third_party(here, "tiled.client")),
        "hookbook.client's heaviest packages (mean, with what they import): "
        + ", ".join(
            f"{name} {seconds * 1000:.0f} ms"
            for name, seconds in sorted(heaviest.items(), key=lambda kv: -kv[1])[:6]
        ),
    ]
    report("import cost (issue 13)", rows, args, notes=notes)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
