"""`python -m bench` as `make bench` runs it, at tiny sizes: the table it prints, in order.

The figures of a smoke run mean nothing; what is checked is that every scenario still runs
against the real parts and prints its rows as (scenario, figure, baseline, ratio).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.services import PostgresDatabase

REPO = Path(__file__).resolve().parents[2]
HEADER = ["| scenario | figure | baseline | ratio |", "|---|---:|---:|---:|"]
# A figure or baseline: a number with thousands separators, then its unit.
AMOUNT = re.compile(r"^[0-9][0-9,]*(\.[0-9]+)? [a-z/A-Z]+$")
# A ratio: three significant digits in plain notation, never rounded away to 0.00.
RATIO = re.compile(r"^(0\.0*[1-9][0-9]{2}|[1-9][0-9.]*)$")
# What the quick run of each scenario prints first, in the table's order.
FIRST_ROWS = [
    ("append", "append_records, batch 1 vs sqlite3 executemany"),
    ("unlock", "windows into the store, batches of 5,000 vs sqlite3 executemany"),
    ("rss", "gateway RSS, 1,000 windows loaded vs 0"),
    ("drain", "backlog drain, 500 records, 1 worker, SQLite vs raw paho 500 x "),
    ("latency", "unlock via local API -> PoD stored, production settings"),
    ("windows", "50 window.upsert applied on the hub vs raw paho 50 x "),
    ("ingest", "cloud ingest, SQLite, 1 worker(s), 400 records vs sqlite3 executemany"),
    ("rateshop", "rate shop, 5 carriers x 200 ms (vs 1), p50"),
]


def bench(tmp_path: Path, *args: str, timeout: float) -> list[list[str]]:
    """Run the bench; check the header; return each row's four cells."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--dir", str(tmp_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[:2] == HEADER
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 4, line
        scenario, figure, baseline, ratio = cells
        assert scenario
        assert AMOUNT.match(figure), line
        assert AMOUNT.match(baseline), line
        assert figure.split()[1] == baseline.split()[1], line  # the same unit
        assert RATIO.match(ratio), line
        rows.append(cells)
    assert re.fullmatch(r"\d+ scenario\(s\) in \d+ s", lines[-1]), lines[-1]
    return rows


def test_the_first_scenario_prints_the_four_column_table(tmp_path: Path) -> None:
    rows = bench(tmp_path, "append", "--seconds", "0.2", timeout=60)
    assert [row[0] for row in rows] == [
        "append_records, batch 1 vs sqlite3 executemany",
        "append_records, batch 100 vs sqlite3 executemany",
    ]
    assert all(row[1].endswith(" records/s") for row in rows)


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_every_scenario_runs_at_quick_sizes_in_the_table_order(
    tmp_path: Path, postgres_db: PostgresDatabase
) -> None:
    del postgres_db  # the ingest scenario makes its own databases on the same server
    rows = bench(tmp_path, "--quick", "--seconds", "0.2", timeout=540)
    scenarios = [row[0] for row in rows]
    firsts = [next(i for i, s in enumerate(scenarios) if s.startswith(p)) for _, p in FIRST_ROWS]
    assert firsts == sorted(firsts), "the scenarios ran out of the table's order"
    assert firsts[0] == 0  # signed, chained appends first
    assert len(rows) == 2 + 6 + 2 + 2 + 8 + 1 + 4 + 1
