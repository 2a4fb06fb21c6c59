"""Run the benchmark scenarios: ``python -m bench [scenario ...] [--seconds S] [--dir D]``."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import structlog

from . import ingest, rateshop, records, sync, unlock  # noqa: F401 - importing a scenario module registers it
from .harness import HEADER, SCENARIOS, Context, format_row

# Each measurement runs this long; with two variants per scenario and its baseline the whole
# run stays well under a minute.
DEFAULT_SECONDS = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a temp dir)")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - SCENARIOS.keys())
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    # The store logs each open and close; the table is the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        context = Context(Path(scratch), args.seconds)
        print(HEADER)
        for name in args.scenarios or list(SCENARIOS):
            for row in SCENARIOS[name](context):
                print(format_row(row), flush=True)


main()
