"""``make soak``: the crash campaign at length, then the figures table.

    python -m tests.reliability.soak [--rounds 200] [--backends sqlite,postgres]
                                     [--seed N] [--power-cuts 50] [--loop-rounds 0]

Runs tests/reliability/test_campaign.py with ``--rounds`` rounds on each cloud backend, the
power-cut tests with ``--power-cuts`` cuts of the store and a tenth as many of the whole hub
(at least 3), and with ``--loop-rounds`` N > 0 also the fault loops of tests/faults at N
rounds each. pytest prints the table of figures at the end; the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import pytest

# The long profile: ten times the campaign of `make test`.
DEFAULT_ROUNDS = 200
DEFAULT_POWER_CUTS = 50
CAMPAIGN = "tests/reliability/test_campaign.py"
POWER = "tests/reliability/test_power_loss.py"
LOOPS = "tests/faults/test_fault_loops.py"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="campaign rounds")
    parser.add_argument("--backends", default="sqlite,postgres", help="cloud databases")
    parser.add_argument("--seed", type=int, default=None, help="replay a campaign schedule")
    parser.add_argument("--power-cuts", type=int, default=DEFAULT_POWER_CUTS)
    parser.add_argument("--loop-rounds", type=int, default=0, help="fault loops too (0: no)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Set the campaign's knobs in the environment and run pytest."""
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ["LOCKHUB_SOAK_ROUNDS"] = str(args.rounds)
    os.environ["LOCKHUB_SOAK_BACKENDS"] = args.backends
    os.environ["LOCKHUB_POWERCUT_ROUNDS"] = str(args.power_cuts)
    os.environ["LOCKHUB_POWERCUT_HUB_ROUNDS"] = str(max(3, args.power_cuts // 10))
    if args.seed is not None:
        os.environ["LOCKHUB_SOAK_SEED"] = str(args.seed)
    paths = [CAMPAIGN, POWER]
    if args.loop_rounds > 0:
        os.environ["LOCKHUB_FAULT_ROUNDS"] = str(args.loop_rounds)
        paths.append(LOOPS)
    # -q keeps the figures table the last thing on the screen.
    return int(pytest.main(["-q", "-p", "no:cacheprovider", *paths]))


if __name__ == "__main__":
    sys.exit(main())
