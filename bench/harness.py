"""A registry of benchmark scenarios and the table they print."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: our figure beside a raw baseline measured in the same run."""

    scenario: str
    figure: float
    baseline: float
    unit: str
    # Decimals shown: rates need none, millisecond latencies and MiB need some.
    digits: int = 0

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline


@dataclass(frozen=True, slots=True)
class Context:
    """What every scenario gets: a scratch directory, its time budget per measurement, and
    whether to run at the tiny sizes of a smoke test (``--quick``) instead of full ones."""

    workdir: Path
    seconds: float
    quick: bool = False

    def size(self, variable: str, full: int, quick: int) -> int:
        """A count: ``$LOCKHUB_BENCH_<variable>`` if set, else the quick or the full size."""
        value = os.environ.get(f"LOCKHUB_BENCH_{variable}")
        if value is not None:
            return int(value)
        return quick if self.quick else full


Scenario = Callable[[Context], Iterator[Row]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    """Register a scenario under ``name``; it yields one Row per measured variant."""

    def register(func: Scenario) -> Scenario:
        SCENARIOS[name] = func
        return func

    return register


def rate(run_once: Callable[[], int], seconds: float) -> float:
    """Call ``run_once`` (returns items done) repeatedly for ``seconds``; return items/s."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += run_once()
    return done / elapsed


HEADER = "| scenario | figure | baseline | ratio |\n|---|---:|---:|---:|"


# A ratio keeps this many significant digits, however small (0.00236, not 0.00).
RATIO_DIGITS = 3


def significant(value: float, digits: int = RATIO_DIGITS) -> str:
    """``value`` with ``digits`` significant digits in plain notation (never 1e-05)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.0f}" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_row(row: Row) -> str:
    """Render a Row as a markdown table line with its unit."""
    figure, baseline = f"{row.figure:,.{row.digits}f}", f"{row.baseline:,.{row.digits}f}"
    ratio = significant(row.ratio)
    return f"| {row.scenario} | {figure} {row.unit} | {baseline} {row.unit} | {ratio} |"
