"""The replay window against a reference model, and its persisted form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.protocol import (
    REPLAY_WINDOW,
    MalformedError,
    ReplayError,
    ReplayGuard,
    ReplayState,
    from_sqlite,
    to_sqlite,
)
from cloud_sync.protocol.replay import accept, check


def test_in_order_out_of_order_and_duplicates() -> None:
    guard = ReplayGuard()
    for seq in (1, 3, 2, 100, 37):
        guard.accept("k", seq)
    for seq in (1, 2, 3, 100, 37, 36, 0, -1, 2**63):
        with pytest.raises(ReplayError):
            guard.check("k", seq)
    guard.check("k", 38)
    guard.check("other", 1)
    assert guard.state("k").highest == 100


def test_window_edge() -> None:
    state = accept(ReplayState(), 100)
    check(state, 100 - REPLAY_WINDOW + 1)
    with pytest.raises(ReplayError, match="older"):
        check(state, 100 - REPLAY_WINDOW)


def test_big_jump_resets_bitmap() -> None:
    state = accept(accept(ReplayState(), 5), 5 + REPLAY_WINDOW + 10)
    assert state.bitmap == 1


def test_restore() -> None:
    guard = ReplayGuard()
    saved = {"k": guard.accept("k", 70)}
    restored = ReplayGuard.restore(saved)
    with pytest.raises(ReplayError):
        restored.accept("k", 70)


@pytest.mark.parametrize(
    ("highest", "bitmap"),
    [(-1, 0), (0, 1), (1, 0), (1, 3), (5, 2), (70, 1 << 64), (2**63, 1)],
)
def test_bad_states(highest: int, bitmap: int) -> None:
    with pytest.raises(MalformedError):
        ReplayState(highest, bitmap)


@pytest.mark.parametrize("bitmap", [0, 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_sqlite_conversion(bitmap: int) -> None:
    stored = to_sqlite(bitmap)
    assert -(2**63) <= stored < 2**63
    assert from_sqlite(stored) == bitmap


@settings(max_examples=150, deadline=200)
@given(st.lists(st.integers(min_value=-3, max_value=300), max_size=120))
def test_matches_reference_model(seqs: list[int]) -> None:
    state = ReplayState()
    seen: set[int] = set()
    for seq in seqs:
        expected = seq >= 1 and seq not in seen and seq > max(seen, default=0) - REPLAY_WINDOW
        try:
            state = accept(state, seq)
        except ReplayError:
            assert not expected
        else:
            assert expected
            seen.add(seq)
        assert state.highest == max(seen, default=0)
        assert ReplayState(state.highest, from_sqlite(to_sqlite(state.bitmap))) == state
