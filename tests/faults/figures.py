"""The figures each fault loop, campaign round set or power-cut run reports, as one table.

A test hands its ``Figures`` to ``record``; they travel on the test report's
``user_properties`` (so they survive pytest-xdist workers), and the terminal summary of the
run prints every figure of the session in one table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import pytest

# The user_properties key the figures travel under.
FIGURES_KEY = "lockhub_figures"
_PRINTED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class Figures:
    """What one loop did and what the cloud (or the hub's disk) holds afterwards."""

    loop: str
    rounds: int
    records: int
    pods_ok: int
    pods_in_cloud: int
    lost: int
    duplicated: int
    extra: int
    seconds: float
    backend: str = "-"
    notes: str = ""

    def line(self) -> str:
        """One line for ``pytest -s``."""
        return (
            f"[faults] {self.loop} ({self.backend}): rounds={self.rounds} "
            f"records={self.records} pods_200={self.pods_ok} pods_in_cloud={self.pods_in_cloud} "
            f"lost={self.lost} duplicated={self.duplicated} extra={self.extra} "
            f"seconds={self.seconds:.1f} {self.notes}"
        ).rstrip()


def record(user_properties: list[tuple[str, object]], figures: Figures) -> None:
    """Print ``figures`` (for ``pytest -s``) and attach them to the running test's report."""
    print(figures.line())
    user_properties.append((FIGURES_KEY, json.dumps(asdict(figures))))


_COLUMNS = (
    ("loop", "loop", "<"),
    ("backend", "cloud db", "<"),
    ("rounds", "rounds", ">"),
    ("records", "records", ">"),
    ("pods_ok", "PoD 200", ">"),
    ("pods_in_cloud", "PoD stored", ">"),
    ("lost", "lost", ">"),
    ("duplicated", "dup", ">"),
    ("extra", "extra", ">"),
    ("seconds", "seconds", ">"),
    ("notes", "notes", "<"),
)


def table(rows: list[Figures]) -> list[str]:
    """The figures as a fixed-width text table, one line per loop."""
    cells = [[title for _, title, _ in _COLUMNS]]
    for row in rows:
        values = asdict(row)
        values["seconds"] = f"{row.seconds:.1f}"
        cells.append([str(values[name]) for name, _, _ in _COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = []
    for line in cells:
        parts = [
            f"{cell:{align}{width}}"
            for cell, width, (_, _, align) in zip(line, widths, _COLUMNS, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return lines


def collected(reporter: pytest.TerminalReporter) -> list[Figures]:
    """Every Figures attached to a test report of this session, in report order."""
    names = {f.name for f in fields(Figures)}
    found = []
    for reports in reporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":  # teardown carries the same list
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == FIGURES_KEY and isinstance(value, str):
                    data = json.loads(value)
                    found.append(Figures(**{k: v for k, v in data.items() if k in names}))
    return found


def print_summary(reporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the session's figures once, however many conftests call this hook."""
    if config.stash.get(_PRINTED, False):
        return
    config.stash[_PRINTED] = True
    rows = collected(reporter)
    if rows:
        reporter.write_sep("=", "lockhub reliability figures")
        for line in table(rows):
            reporter.write_line(line)
