"""Secret files are made 0600 (in 0700 directories), and any group/other bit is refused.

Covers the hub's key files (signing, sealing, code HMAC), the cloud's command-signing key, the
hub's lock-credential store and the admin token file. Files are created under umask 0, so the
modes come from the code, not from a kind umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.identity import SIGNING_KEY_FILE, init_cloud_identity, load_cloud_identity
from cloud_sync.identity import IdentityError as CloudIdentityError
from gateway.daemon import read_admin_token
from gateway.errors import GatewayError, IdentityError
from gateway.identity import KEY_FILES, init_identity, load_identity
from gateway.keyfile import read_key_file
from gateway.locks.credentials import KEY_FILE, CredentialStore

# Every mode that gives group or others any access, one bit at a time, plus the usual mistake.
EXPOSING = [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o644]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Create files as if the umask allowed everything."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_hub_keys_are_created_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    init_identity(state)
    assert mode(state) == 0o700
    assert {name: mode(state / name) for name in KEY_FILES} == dict.fromkeys(KEY_FILES, 0o600)
    assert sorted(p.name for p in state.iterdir()) == sorted(KEY_FILES)  # no temp file left


@pytest.mark.usefixtures("open_umask")
def test_the_cloud_key_is_created_private(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    init_cloud_identity(state, "cloud-1")
    assert (mode(state), mode(state / SIGNING_KEY_FILE)) == (0o700, 0o600)


@pytest.mark.usefixtures("open_umask")
def test_lock_credentials_are_created_private(tmp_path: Path) -> None:
    store = CredentialStore.open(tmp_path / "state")
    store.save("front-door", "nuki", {"secret": "s"})
    assert mode(tmp_path / "state" / KEY_FILE) == 0o600
    (directory,) = [p for p in (tmp_path / "state").iterdir() if p.is_dir()]
    assert mode(directory) == 0o700
    assert [mode(p) for p in directory.iterdir()] == [0o600]


@pytest.mark.parametrize("exposed", EXPOSING, ids=[f"{m:04o}" for m in EXPOSING])
def test_exposed_hub_keys_are_refused(tmp_path: Path, exposed: int) -> None:
    keys, _ = init_identity(tmp_path)
    for name in KEY_FILES:
        path = tmp_path / name
        path.chmod(exposed)
        with pytest.raises(IdentityError, match=f"chmod 600 {path}"):
            load_identity(tmp_path)
        path.chmod(0o600)
    assert load_identity(tmp_path).code_secret == keys.code_secret


@pytest.mark.parametrize("exposed", EXPOSING, ids=[f"{m:04o}" for m in EXPOSING])
def test_exposed_cloud_key_is_refused(tmp_path: Path, exposed: int) -> None:
    init_cloud_identity(tmp_path, "cloud-1")
    (tmp_path / SIGNING_KEY_FILE).chmod(exposed)
    with pytest.raises(CloudIdentityError, match="readable by group or others"):
        load_cloud_identity(tmp_path, "cloud-1")


@pytest.mark.parametrize("exposed", EXPOSING, ids=[f"{m:04o}" for m in EXPOSING])
def test_an_exposed_credential_key_is_refused(tmp_path: Path, exposed: int) -> None:
    CredentialStore.open(tmp_path)
    (tmp_path / KEY_FILE).chmod(exposed)
    with pytest.raises(IdentityError, match="readable by group or others"):
        CredentialStore.open(tmp_path)


@pytest.mark.parametrize("exposed", EXPOSING, ids=[f"{m:04o}" for m in EXPOSING])
def test_an_exposed_admin_token_is_refused(tmp_path: Path, exposed: int) -> None:
    path = tmp_path / "admin-token"
    path.write_text("a-long-enough-admin-token\n")
    path.chmod(0o600)
    assert read_admin_token(path) == "a-long-enough-admin-token"
    path.chmod(exposed)
    with pytest.raises(GatewayError, match="readable by others"):
        read_admin_token(path)


def test_a_key_file_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    """O_NOFOLLOW: a link planted in the state directory cannot point the hub at another key."""
    init_identity(tmp_path / "real")
    link = tmp_path / "link.key"
    link.symlink_to(tmp_path / "real" / KEY_FILES[0])
    with pytest.raises(IdentityError, match="cannot read key file"):
        read_key_file(link)
