"""Prometheus text exposition (format 0.0.4) for a handful of counters and gauges.

Small on purpose: the hub exports a few dozen series, so a dependency buys nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# Floats hold every integer exactly up to 2**53; counts print as integers up to there.
_EXACT_INTEGERS = 2.0**53


def _number(value: float) -> str:
    """A sample value without losing precision (``%g`` keeps only 6 digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < _EXACT_INTEGERS:
        return str(int(value))
    return repr(value)


def _series(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


@dataclass
class Counter:
    """A monotonically increasing count, per label set."""

    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the series with ``labels``."""
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> Iterable[str]:
        """Lines of the exposition format."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield _series(self.name, labels, value)


@dataclass
class Gauge:
    """Values read when scraped: ``collect`` returns (labels, value) pairs.

    ``kind`` is ``counter`` for totals kept elsewhere (read, not incremented, here).
    """

    name: str
    help: str
    collect: Callable[[], Iterable[tuple[dict[str, str], float]]]
    kind: str = "gauge"

    def render(self) -> Iterable[str]:
        """Lines of the exposition format."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.collect():
            yield _series(self.name, tuple(sorted(labels.items())), value)


@dataclass
class Registry:
    """The metrics one process exports."""

    metrics: list[Counter | Gauge] = field(default_factory=list)

    def counter(self, name: str, help_text: str) -> Counter:
        """Register and return a counter."""
        counter = Counter(name, help_text)
        self.metrics.append(counter)
        return counter

    def gauge(
        self,
        name: str,
        help_text: str,
        collect: Callable[[], Iterable[tuple[dict[str, str], float]]],
        kind: str = "gauge",
    ) -> Gauge:
        """Register and return a gauge (or a counter read from elsewhere)."""
        gauge = Gauge(name, help_text, collect, kind)
        self.metrics.append(gauge)
        return gauge

    def render(self) -> str:
        """The whole exposition, ending in a newline."""
        return "\n".join(line for metric in self.metrics for line in metric.render()) + "\n"
