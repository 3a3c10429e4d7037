"""DACS benchmarks: each capability measured against a baseline taken in the same run.

Every module ``benchmarks/bench_*.py`` defines ``run(scale: float) -> list[Result]``. ``make bench``
(``python -m benchmarks``) runs them all and prints one table of ratios; absolute numbers vary from
machine to machine, the ratio to a baseline measured seconds earlier on the same machine does not.
``scale`` shrinks data-set sizes for a quick look (``python -m benchmarks --scale 0.1``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One measured case and the baseline it is compared with.

    ``higher_is_better`` is True for throughputs (items/s) and False for latencies (ms).
    ``goal`` is the product's target in the same unit, if the issue sets one.
    """

    capability: str
    case: str
    value: float
    unit: str
    baseline_case: str
    baseline_value: float
    higher_is_better: bool = True
    goal: float | None = None

    @property
    def ratio(self) -> float:
        """Value relative to the baseline (1.0 = as good as the baseline)."""
        if self.higher_is_better:
            return self.value / self.baseline_value if self.baseline_value else float("nan")
        return self.baseline_value / self.value if self.value else float("nan")

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal


def throughput(fn: Callable[[], int], min_seconds: float = 1.0) -> float:
    """Items per second of ``fn`` (which returns how many items it processed), run for at least ``min_seconds``."""
    done = 0
    start = time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def latencies_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(values: list[float]) -> float:
    """95th percentile (inclusive method) of ``values``."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]
