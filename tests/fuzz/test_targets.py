"""The atheris targets run as plain calls on a small corpus, so that they cannot rot.

Each target must take its seeds (most of them to a valid value: the target still reaches its
parser's success path), and damaged versions of them, without raising anything but its
parser's own error. ``fuzz.run``'s reading of libFuzzer's output is checked on samples.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from fuzz import run
from fuzz.targets import TARGETS, Target

# The parsers issue #8 names, each with its target.
EXPECTED = {
    "commands",
    "records",
    "acks",
    "control",
    "envelopes",
    "tokens",
    "sealed_codes",
    "nuki_ble",
    "nuki_bridge",
    "unlock_body",
    "hub_config",
    "cloud_config",
}


def damaged(seed: bytes) -> list[bytes]:
    """Cheap mutations of one seed: cut, flipped bytes, doubled, and the mode alone."""
    out = [seed[:1], seed[: len(seed) // 2], seed + seed[1:], seed[:1] + b"\xff" * 8]
    for where in (1, len(seed) // 3, len(seed) // 2, len(seed) - 2):
        if 0 < where < len(seed):
            out.append(seed[:where] + bytes([seed[where] ^ 0x5A]) + seed[where + 1 :])
    return out


def corpus(target: Target) -> list[bytes]:
    seeds = target.seeds()
    modes = [bytes([m]) for m in range(16)]
    return [b"", *modes, *seeds, *(d for seed in seeds for d in damaged(seed))]


def test_every_named_parser_has_a_target() -> None:
    assert set(TARGETS) == EXPECTED


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_target_takes_its_corpus(name: str) -> None:
    target = TARGETS[name]
    for data in corpus(target):
        target.check(data)  # raises only what is not the parser's own error


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_most_seeds_reach_a_valid_value(name: str) -> None:
    target = TARGETS[name]
    valid = 0
    for seed in target.seeds():
        with contextlib.suppress(*target.errors):
            target.parse(seed)
            valid += 1
    assert valid * 2 >= len(target.seeds()), f"{valid} of {len(target.seeds())}"


def test_a_foreign_exception_is_a_crash() -> None:
    known: dict[bytes, object] = {}

    def parse(data: bytes) -> object:
        return known[data]

    target = Target("broken", parse, (ValueError,), list)
    with pytest.raises(KeyError):
        target.check(b"x")


OK_LOG = """\
#19845	DONE   cov: 119 ft: 261 corp: 55/3874b lim: 170 exec/s: 1804 rss: 94Mb
Done 19845 runs in 11 second(s)
stat::number_of_executed_units: 19845
stat::average_exec_per_sec:     1804
"""
CRASH_LOG = """\
#120	NEW    cov: 80 ft: 90 corp: 12/300b lim: 4 exec/s: 0 rss: 60Mb
 === Uncaught Python exception: ===
KeyError: b'x'
Traceback (most recent call last):
==1234== ERROR: libFuzzer: fuzz target exited
MS: 1 ChangeBit-; base unit: 0
Test unit written to /tmp/crashes/acks-crash-0123abcd
stat::number_of_executed_units: 121
stat::average_exec_per_sec:     60
"""


def test_the_summary_reads_libfuzzers_figures() -> None:
    ok = run.parse_log("acks", OK_LOG, 0, Path("acks.log"))
    assert (ok.runs, ok.seconds, ok.exec_per_second, ok.coverage, ok.corpus) == (
        19845,
        11.0,
        1804,
        119,
        55,
    )
    assert ok.crash is None
    crash = run.parse_log("acks", CRASH_LOG, 1, Path("acks.log"))
    assert crash.crash == "KeyError: b'x' (/tmp/crashes/acks-crash-0123abcd)"
    table = run.summary([ok, crash])
    assert "ok" in table
    assert "CRASH KeyError" in table


def test_seeds_and_dictionary_are_written(tmp_path: Path) -> None:
    target = TARGETS["acks"]
    run.write_seeds(target, tmp_path / "acks")
    run.write_seeds(target, tmp_path / "acks")  # named by content: idempotent
    assert len(list((tmp_path / "acks").iterdir())) == len(set(target.seeds()))
    run.write_dictionary(target, tmp_path / "acks.dict")
    words = (tmp_path / "acks.dict").read_text().splitlines()
    assert '"\\x22acked\\x22"' in words
    flags = run.command("acks", tmp_path / "acks", tmp_path / "crashes", 5, 100)
    assert flags[-1] == str(tmp_path / "acks")
    assert "-max_total_time=5" in flags
    assert "-runs=100" in flags


def test_unknown_targets_are_refused() -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--targets", "acks,nope"])
    assert run.parse_args(["--seconds", "3"]).targets.split(",") == list(TARGETS)
