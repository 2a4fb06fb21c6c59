"""Run every fuzz target for a while and print a summary: ``python -m fuzz.run --seconds 60``.

Each target runs in its own process (``fuzz.one``) on its own corpus directory, seeded with
valid inputs and a dictionary of the JSON words in them; the corpus grows from run to run.
Exit status 1 when any target crashed (an exception other than the parser's own error): the
input is kept under ``--crashes`` and replays with ``python -m fuzz.one TARGET FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .targets import TARGETS, Target

HERE = Path(__file__).resolve().parent
# One input taking longer than this is a hang, reported like a crash (libFuzzer's default
# is 20 minutes; our slowest parser needs milliseconds).
INPUT_TIMEOUT_SECONDS = 10
# Our configs and batches are a few KiB; longer inputs only slow the search down.
MAX_INPUT_BYTES = 8192
# libFuzzer needs a moment to start and to write its final statistics after the time is up.
STARTUP_SLACK_SECONDS = 120
_JSON_WORD = re.compile(rb'"[A-Za-z0-9_.:+-]{1,40}"')


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one target's run did."""

    name: str
    runs: int
    seconds: float
    exec_per_second: int
    coverage: int
    corpus: int
    crash: str | None
    log: Path


def write_seeds(target: Target, corpus: Path) -> None:
    """Put the target's seeds into its corpus directory (named by content: idempotent)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / f"seed-{hashlib.sha256(seed).hexdigest()[:16]}").write_bytes(seed)


def write_dictionary(target: Target, path: Path) -> None:
    """A libFuzzer dictionary of the quoted JSON words found in the seeds."""
    words = sorted({w for seed in target.seeds() for w in _JSON_WORD.findall(seed)})
    lines = [f'"{_escape(word)}"' for word in words]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _escape(word: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02X}" for b in word)


def command(name: str, corpus: Path, crashes: Path, seconds: int, runs: int | None) -> list[str]:
    """The ``fuzz.one`` command line for one target."""
    flags = [
        f"-max_total_time={seconds}",
        f"-timeout={INPUT_TIMEOUT_SECONDS}",
        f"-max_len={MAX_INPUT_BYTES}",
        f"-artifact_prefix={crashes}/{name}-",
        f"-dict={corpus.parent / f'{name}.dict'}",
        "-print_final_stats=1",
    ]
    if runs is not None:
        flags.append(f"-runs={runs}")
    return [sys.executable, "-m", "fuzz.one", name, *flags, str(corpus)]


def _stat(text: str, name: str) -> int:
    found = re.search(rf"stat::{name}:\s*(\d+)", text)
    return int(found.group(1)) if found else 0


def parse_log(name: str, text: str, returncode: int, log: Path) -> Outcome:
    """The figures libFuzzer printed, and the crash if it found one."""
    coverage = [int(c) for c in re.findall(r"\bcov: (\d+)", text)]
    corpus = [int(c) for c in re.findall(r"\bcorp: (\d+)/", text)]
    done = re.search(r"Done (\d+) runs in (\d+) second", text)
    runs = _stat(text, "number_of_executed_units")
    seconds = float(done.group(2)) if done else 0.0
    crash = None
    if returncode != 0:
        written = re.search(r"Test unit written to (\S+)", text)
        raised = re.findall(r"^(\w[\w.]*(?:Error|Exception|Exit)\b.*)$", text, re.MULTILINE)
        what = raised[-1] if raised else f"exit status {returncode}"
        crash = f"{what} ({written.group(1) if written else 'no input saved'})"
    return Outcome(
        name=name,
        runs=runs,
        seconds=seconds,
        exec_per_second=_stat(text, "average_exec_per_sec"),
        coverage=max(coverage, default=0),
        corpus=corpus[-1] if corpus else 0,
        crash=crash,
        log=log,
    )


def run_target(name: str, args: argparse.Namespace) -> Outcome:
    """Seed, run and read back one target."""
    target = TARGETS[name]
    corpus = Path(args.corpus) / name
    crashes = Path(args.crashes)
    crashes.mkdir(parents=True, exist_ok=True)
    write_seeds(target, corpus)
    write_dictionary(target, corpus.parent / f"{name}.dict")
    argv = command(name, corpus, crashes, args.seconds, args.runs)
    log = crashes / f"{name}.log"
    with log.open("w") as out:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed flags
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=args.seconds + STARTUP_SLACK_SECONDS,
            cwd=HERE.parent,
        )
    return parse_log(name, log.read_text(errors="replace"), done.returncode, log)


def summary(outcomes: Sequence[Outcome]) -> str:
    """A table of the figures per target."""
    header = f"{'target':<14}{'runs':>10}{'secs':>6}{'exec/s':>8}{'cov':>6}{'corpus':>8}  result"
    lines = [header, "-" * len(header)]
    for o in outcomes:
        result = "ok" if o.crash is None else f"CRASH {o.crash}"
        lines.append(
            f"{o.name:<14}{o.runs:>10}{o.seconds:>6.0f}{o.exec_per_second:>8}"
            f"{o.coverage:>6}{o.corpus:>8}  {result}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    parser.add_argument("--runs", type=int, default=None, help="stop each after this many inputs")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="targets run at once"
    )
    parser.add_argument("--corpus", default=str(HERE / "corpus"), help="corpus root directory")
    parser.add_argument("--crashes", default=str(HERE / "crashes"), help="crash inputs and logs")
    args = parser.parse_args(argv)
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen targets, print the table; 1 if any crashed."""
    args = parse_args(argv)
    names = args.targets.split(",")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda name: run_target(name, args), names))
    print(summary(outcomes))
    crashed = [o for o in outcomes if o.crash is not None]
    for outcome in crashed:
        print(f"{outcome.name}: see {outcome.log}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
