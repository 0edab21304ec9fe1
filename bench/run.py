"""Run the napari-digits benchmarks: print a table, write JSON.

Usage::

    .venv/bin/python bench/run.py [NAME ...]   # kernels, training, scan, real, archive

Each benchmark is a module ``bench/bench_<NAME>.py`` with a function
``run() -> list[dict]``: one dict a table row, all rows of one module sharing
their keys. Results go to ``bench/results/<NAME>.json`` (git-ignored).
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the benchmark modules next to this file."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def format_table(rows: list[dict]) -> str:
    """Format rows as an aligned plain-text (Markdown) table."""
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]

    def line(items: list[str]) -> str:
        padded = (s.ljust(w) for s, w in zip(items, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(keys), sep, *(line(c) for c in cells)])


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default)."""
    names = argv or available()
    unknown = set(names) - set(available())
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; "
            f"available: {', '.join(available())}",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(HERE))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        start = time.perf_counter()
        rows = module.run()
        print(f"\n## {name} ({time.perf_counter() - start:.0f} s)\n")
        print(format_table(rows))
        record = {
            "benchmark": name,
            "machine": platform.platform(),
            "python": platform.python_version(),
            "rows": rows,
        }
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(record, indent=2, default=float))
        print(f"\nwritten {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
