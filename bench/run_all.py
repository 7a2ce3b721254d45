"""Run every benchmark, each in a fresh process, and collect the tables.

    python bench/run_all.py            # full sizes: about 6-8 minutes on 2 idle cores
    python bench/run_all.py --quick    # about 2 minutes

The tables are printed as each benchmark finishes and appended, as Markdown,
to ``bench/results/latest.md`` (or ``--markdown PATH``; ``bench/results/`` is
not committed). Extra arguments after ``--`` go to every benchmark.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_catalog.py", "bench_webhooks.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        default=str(HERE / "results" / "latest.md"),
        help="where to write the Markdown tables (default: bench/results/latest.md)",
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then arguments for each")
    args = parser.parse_args()
    markdown = Path(args.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text("")
    extra = [a for a in args.extra if a != "--"]
    failed = []
    started = time.monotonic()
    for name in args.only or BENCHMARKS:
        command = [sys.executable, str(HERE / name), "--markdown", str(markdown), *extra]
        if args.quick:
            command.insert(2, "--quick")
        t0 = time.monotonic()
        # Bounded: a full benchmark takes minutes, never half an hour.
        result = subprocess.run(command, timeout=1800, check=False)
        print(f"{name}: exit {result.returncode} after {time.monotonic() - t0:.0f} s\n")
        if result.returncode:
            failed.append(name)
    print(f"all benchmarks: {time.monotonic() - started:.0f} s; Markdown tables in {markdown}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
