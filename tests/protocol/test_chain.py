"""The record hash chain."""

from __future__ import annotations

import pytest

from cloud_sync.protocol import GENESIS_HASH, ChainError, MalformedError, payload_hash, verify_chain

from .samples import record


def _chain(count: int, first: int = 1, prev: str = GENESIS_HASH) -> list[bytes]:
    out = []
    for seq in range(first, first + count):
        payload = record("lock.event", seq=seq, prev_hash=prev)
        out.append(payload)
        prev = payload_hash(payload)
    return out


def test_good_chain_returns_last_hash() -> None:
    chain = _chain(4)
    assert verify_chain(chain, next_seq=1) == payload_hash(chain[-1])
    assert verify_chain(chain[2:], prev_hash=payload_hash(chain[1])) == payload_hash(chain[-1])
    assert verify_chain([]) == GENESIS_HASH


@pytest.mark.parametrize(
    ("mangle", "bad_seq"),
    [
        (lambda c: [c[0], c[2], c[3]], 3),  # missing record
        (lambda c: [c[1], c[0], c[2]], 2),  # reordered
        (lambda c: [c[0], record("lock.event", 2), c[2]], 2),  # changed record
        (lambda c: [c[0], c[1], c[2].replace(b"front-door", b"back-door"), c[3]], 4),
    ],
)
def test_broken_chains(mangle: object, bad_seq: int) -> None:
    chain = _chain(4)
    with pytest.raises(ChainError) as info:
        verify_chain(mangle(chain), next_seq=1)  # type: ignore[operator]
    assert info.value.seq == bad_seq


def test_wrong_start() -> None:
    with pytest.raises(ChainError, match="expected seq 1"):
        verify_chain(_chain(2, first=2), next_seq=1)
    with pytest.raises(ChainError, match="prev_hash"):
        verify_chain(_chain(2), prev_hash="1" * 64)


def test_not_a_record() -> None:
    with pytest.raises(MalformedError):
        verify_chain([b"{}"])
