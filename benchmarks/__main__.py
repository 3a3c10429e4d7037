"""``python -m benchmarks [--scale S] [--only NAME]``: run every ``bench_*`` module, print one table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from rich.console import Console
from rich.table import Table

import benchmarks
from benchmarks import Result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink data-set sizes (0 < scale <= 1)")
    parser.add_argument("--only", default="", help="run only modules whose name contains this")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 160))
    results: list[Result] = []
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    for name in names:
        if args.only and args.only not in name:
            continue
        console.print(f"[bold]running {name}[/bold]")
        module = importlib.import_module(f"benchmarks.{name}")
        results.extend(module.run(args.scale))
    table = Table(title="DACS benchmarks (ratio = against the baseline measured in the same run)")
    for col in ("capability", "case", "value", "baseline", "baseline value", "ratio", "goal"):
        table.add_column(col)
    for r in results:
        goal = "" if r.goal is None else f"{r.goal:g} {r.unit} " + ("ok" if r.meets_goal else "MISSED")
        table.add_row(r.capability, r.case, f"{r.value:,.1f} {r.unit}", r.baseline_case,
                      f"{r.baseline_value:,.1f} {r.unit}", f"{r.ratio:.2f}", goal)
    console.print(table)


if __name__ == "__main__":
    main()
