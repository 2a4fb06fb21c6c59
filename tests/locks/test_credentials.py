"""CredentialStore: sealed per lock and kind, 0600, atomic, refusing moved or damaged files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.locks.credentials import CredentialError, CredentialStore


def test_round_trip_and_file_modes(tmp_path: Path) -> None:
    store = CredentialStore.open(tmp_path / "state")
    assert store.load("front-door", "nuki_ble") is None
    store.save("front-door", "nuki_ble", {"shared_key": "00ff", "auth_id": 7})
    assert store.load("front-door", "nuki_ble") == {"shared_key": "00ff", "auth_id": 7}
    # Another store over the same state dir (a restart) opens it with the same key.
    assert CredentialStore.open(tmp_path / "state").load("front-door", "nuki_ble") == {
        "shared_key": "00ff",
        "auth_id": 7,
    }
    for path in (
        tmp_path / "state" / "lock-credentials.key",
        *(tmp_path / "state" / "credentials").iterdir(),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in (tmp_path / "state" / "credentials").iterdir() if p.name.startswith(".")]
    assert (
        b"00ff"
        not in (tmp_path / "state" / "credentials" / "front-door.nuki_ble.cred").read_bytes()
    )
    store.save("front-door", "nuki_ble", {"shared_key": "11"})
    assert store.load("front-door", "nuki_ble") == {"shared_key": "11"}
    store.delete("front-door", "nuki_ble")
    store.delete("front-door", "nuki_ble")
    assert store.load("front-door", "nuki_ble") is None


def test_a_file_moved_to_another_lock_does_not_open(tmp_path: Path) -> None:
    store = CredentialStore.open(tmp_path)
    store.save("a", "yale_ble", {"key": "k"})
    folder = tmp_path / "credentials"
    (folder / "a.yale_ble.cred").rename(folder / "b.yale_ble.cred")
    with pytest.raises(CredentialError, match="does not open with this hub's key"):
        store.load("b", "yale_ble")


@pytest.mark.parametrize("blob", [b"", b"\x01short", b"\x02" + bytes(40)])
def test_damaged_files_are_reported(tmp_path: Path, blob: bytes) -> None:
    store = CredentialStore.open(tmp_path)
    (tmp_path / "credentials" / "a.k.cred").write_bytes(blob)
    with pytest.raises(CredentialError, match="pair the lock again"):
        store.load("a", "k")


def test_another_hubs_key_does_not_open_it(tmp_path: Path) -> None:
    CredentialStore.open(tmp_path / "one").save("a", "k", {"x": 1})
    other = CredentialStore.open(tmp_path / "two")
    (tmp_path / "one" / "credentials" / "a.k.cred").rename(
        tmp_path / "two" / "credentials" / "a.k.cred"
    )
    with pytest.raises(CredentialError):
        other.load("a", "k")


def test_a_non_object_is_damage(tmp_path: Path) -> None:
    store = CredentialStore.open(tmp_path)
    store.save("a", "k", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match="damaged"):
        store.load("a", "k")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 65])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        CredentialStore.open(tmp_path).load(name, "k")
