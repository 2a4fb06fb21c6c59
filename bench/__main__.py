"""Run the benchmark scenarios: ``python -m bench [scenario ...] [--seconds S] [--dir D]
[--quick]``; ``make bench`` runs them all at full size."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import structlog

from . import ingest, latency, rateshop, records, sync, unlock  # noqa: F401 - importing a scenario module registers it
from .harness import HEADER, SCENARIOS, Context, format_row

# Each rate measurement of `append` runs this long.
DEFAULT_SECONDS = 3.0
# The table's order: the hub's own store first (the foundation's figure), then the hub with
# its windows, then the MQTT link end to end, the cloud's ingest, and the carrier desk.
ORDER = ("append", "unlock", "rss", "drain", "latency", "windows", "ingest", "rateshop")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(ORDER)} (default: all)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a temp dir)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (a smoke test of the bench itself; the figures mean nothing)",
    )
    args = parser.parse_args()
    assert set(ORDER) == SCENARIOS.keys(), "ORDER must name every registered scenario"
    unknown = sorted(set(args.scenarios) - SCENARIOS.keys())
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    chosen = [name for name in ORDER if not args.scenarios or name in args.scenarios]
    # The store logs each open and close; the table is the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        context = Context(Path(scratch), args.seconds, args.quick)
        print(HEADER)
        for name in chosen:
            for row in SCENARIOS[name](context):
                print(format_row(row), flush=True)
    print(f"\n{len(chosen)} scenario(s) in {time.perf_counter() - started:.0f} s", flush=True)


main()
