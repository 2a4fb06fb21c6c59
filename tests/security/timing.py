"""Interleaved timing of two inputs to one function, and robust statistics to compare them.

Each sample times a batch of calls (one call is a few microseconds, near the timer's
resolution). The two inputs alternate in a random order within each pair, so load from other
processes, frequency scaling and cache state fall on both alike. The comparison is paired:
each pair was measured within microseconds, so a load spike moves both halves of it, and the
statistics (the sign test's proportion, the median paired difference) ignore how large an
outlier is. Unpaired statistics (Mann-Whitney U, trimmed means) proved less stable on a busy
machine with coverage tracing on: a slow phase of the run shifts them.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Comparison:
    """How two paired timing samples differ."""

    # The sign test's statistic: the share of pairs where ``first`` took longer (ties half).
    # 0.5 = no difference; its standard error is 0.5 / sqrt(pairs).
    superiority: float
    # The median of the paired differences, relative to the median time.
    relative_difference: float
    # Vargha-Delaney A (Mann-Whitney U / n*m) of the unpaired samples, for the record.
    unpaired_superiority: float
    first_ns: float
    second_ns: float


def sample(
    call: Callable[[str], object], first: str, second: str, *, pairs: int, batch: int, seed: int
) -> tuple[list[int], list[int]]:
    """Time ``batch`` calls with ``first`` and with ``second``, ``pairs`` times, interleaved."""
    order = random.Random(seed)
    times: dict[str, list[int]] = {first: [], second: []}
    for _ in range(batch * 10):  # warm caches and the specialising interpreter
        call(first)
        call(second)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(pairs):
            pair = [first, second]
            order.shuffle(pair)
            for value in pair:
                start = time.perf_counter_ns()
                for _ in range(batch):
                    call(value)
                times[value].append(time.perf_counter_ns() - start)
    finally:
        if enabled:
            gc.enable()
    return times[first], times[second]


def superiority(first: list[int], second: list[int]) -> float:
    """Vargha-Delaney A (Mann-Whitney U / (n*m)) by ranks: O((n+m) log(n+m))."""
    tagged = sorted([(v, 0) for v in first] + [(v, 1) for v in second])
    rank_sum, i = 0.0, 0
    while i < len(tagged):
        j = i
        while j < len(tagged) and tagged[j][0] == tagged[i][0]:
            j += 1
        mid_rank = (i + j + 1) / 2  # ranks i+1..j share their average
        rank_sum += mid_rank * sum(1 for k in range(i, j) if tagged[k][1] == 0)
        i = j
    n, m = len(first), len(second)
    u = rank_sum - n * (n + 1) / 2
    return u / (n * m)


def trimmed_mean(values: list[int], cut: float = 0.2) -> float:
    """The mean of ``values`` without the lowest and highest ``cut`` fraction."""
    ordered = sorted(values)
    k = int(len(ordered) * cut)
    return statistics.fmean(ordered[k : len(ordered) - k])


def compare(first: list[int], second: list[int]) -> Comparison:
    """Paired comparison of two samples taken pair by pair (``first[i]`` with ``second[i]``)."""
    pairs = list(zip(first, second, strict=True))
    longer = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs)
    typical = statistics.median(first + second)
    shift = statistics.median(a - b for a, b in pairs)
    return Comparison(
        superiority=longer / len(pairs),
        relative_difference=shift / typical,
        unpaired_superiority=superiority(first, second),
        first_ns=trimmed_mean(first),
        second_ns=trimmed_mean(second),
    )
