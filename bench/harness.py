"""A registry of benchmark scenarios and the table they print."""

from __future__ import annotations

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
    """What every scenario gets: a scratch directory and its time budget per measurement."""

    workdir: Path
    seconds: float


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


def format_row(row: Row) -> str:
    """Render a Row as a markdown table line with its unit."""
    figure, baseline = f"{row.figure:,.{row.digits}f}", f"{row.baseline:,.{row.digits}f}"
    return f"| {row.scenario} | {figure} {row.unit} | {baseline} {row.unit} | {row.ratio:.2f} |"
