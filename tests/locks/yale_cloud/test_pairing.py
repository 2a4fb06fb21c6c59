"""Signing in (password + 2FA) and fetching the offline key / storing the token, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.locks.bridges.fake_august import FakeAccount, FakeAugustCloud, FakeLock
from gateway.locks.bridges.yale_cloud import (
    YaleCloudAuthError,
    YaleCloudRefusedError,
    fetch_offline_key,
    pair,
)
from gateway.locks.bridges.yale_cloud.credentials import KIND, load
from gateway.locks.credentials import CredentialStore
from gateway.testing import FakeClock

from .conftest import (
    LOCK_ID,
    OFFLINE_KEY,
    OWNER_EMAIL,
    PASSWORD,
    SERIAL,
    ScriptedUI,
    context,
    login_answers,
    section,
)


async def test_offline_key_after_password_and_emailed_code(
    cloud: FakeAugustCloud, front: FakeLock
) -> None:
    ui = ScriptedUI("august", *login_answers(cloud))
    key = await fetch_offline_key(ui, serial=SERIAL.lower(), api_base=cloud.base_url)
    assert (key.key, key.slot, key.serial, key.name) == (OFFLINE_KEY, 2, SERIAL, "Front door")
    assert OFFLINE_KEY not in repr(key)
    # The password and the code were asked as secrets; the identity was not.
    assert [secret for _, secret in ui.asked] == [False, False, True, True]
    assert any("email" in line for line in ui.said)
    assert cloud.sent_codes == {}  # the code was used


async def test_a_validated_install_needs_no_code(cloud: FakeAugustCloud, front: FakeLock) -> None:
    cloud.accounts[front.owner].validated_installs.add("anything")  # another install: still 2FA
    ui = ScriptedUI("yale_access", *login_answers(cloud))
    key = await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)
    assert key.slot == 2


async def test_phone_sign_in_sends_the_code_by_sms(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI("august", *login_answers(cloud, "+15550100"))
    await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)
    assert any("phone" in line for line in ui.said)


async def test_wrong_password_is_refused(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI("august", OWNER_EMAIL, "wrong")
    with pytest.raises(YaleCloudAuthError, match="wrong email/phone or password"):
        await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)


async def test_unknown_account_is_refused(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI("august", "nobody@example.com", PASSWORD)
    with pytest.raises(YaleCloudAuthError, match="refused the sign-in"):
        await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)


async def test_three_wrong_codes_give_up(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI("august", OWNER_EMAIL, PASSWORD, "000000", "111111", "222222")
    with pytest.raises(YaleCloudAuthError, match="refused 3 times"):
        await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)
    assert ui.said.count("That code was not accepted; try again.") == 2


async def test_a_wrong_code_then_the_right_one(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI(
        "august", OWNER_EMAIL, PASSWORD, "000000", lambda: cloud.sent_codes[OWNER_EMAIL]
    )
    key = await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)
    assert key.key == OFFLINE_KEY


async def test_unknown_serial_is_refused(cloud: FakeAugustCloud, front: FakeLock) -> None:
    ui = ScriptedUI("august", *login_answers(cloud))
    with pytest.raises(YaleCloudRefusedError, match="no lock with serial number NOPE"):
        await fetch_offline_key(ui, serial="NOPE", api_base=cloud.base_url)


async def test_a_guest_account_gets_no_offline_key(cloud: FakeAugustCloud, front: FakeLock) -> None:
    guest = cloud.add_account("guest@example.com", PASSWORD)
    front.guests.add(guest.user_id)
    ui = ScriptedUI("august", *login_answers(cloud, "guest@example.com"))
    with pytest.raises(YaleCloudRefusedError, match="owner's account"):
        await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)


async def test_a_malformed_offline_key_is_refused(cloud: FakeAugustCloud, front: FakeLock) -> None:
    front.offline_key = "not-hex"
    ui = ScriptedUI("august", *login_answers(cloud))
    with pytest.raises(YaleCloudRefusedError, match="malformed"):
        await fetch_offline_key(ui, serial=SERIAL, api_base=cloud.base_url)


@pytest.mark.parametrize("brand", ["yale_global", "yale_home", "schlage"])
async def test_brands_without_password_sign_in_are_refused(brand: str) -> None:
    with pytest.raises(YaleCloudRefusedError, match="not supported"):
        await fetch_offline_key(ScriptedUI(brand), serial=SERIAL)


async def test_pair_stores_the_token_encrypted(
    cloud: FakeAugustCloud, front: FakeLock, fake_clock: FakeClock, tmp_path: Path
) -> None:
    ctx = context(fake_clock, tmp_path)
    summary = await pair(section(cloud), ctx, ScriptedUI(*login_answers(cloud)))
    assert summary == f"lock front-door paired with august lock 'Front door' ({LOCK_ID})"
    creds = load(CredentialStore.open(tmp_path), "front-door")
    assert (creds.august_lock_id, creds.house_id, creds.user_id) == (
        LOCK_ID,
        front.house_id,
        front.owner,
    )
    assert cloud.token_expiry(creds.access_token) == creds.expires_at
    raw = (tmp_path / "credentials" / f"front-door.{KIND}.cred").read_bytes()
    assert creds.access_token.encode() not in raw
    assert PASSWORD.encode() not in raw
    assert creds.access_token not in repr(creds)


async def test_pair_asks_which_lock_when_the_account_has_several(
    cloud: FakeAugustCloud,
    front: FakeLock,
    owner: FakeAccount,
    fake_clock: FakeClock,
    tmp_path: Path,
) -> None:
    cloud.add_lock("B0000000000000000000000000000002", owner=owner, serial="L3X", name="Back")
    ui = ScriptedUI(*login_answers(cloud), "2")
    summary = await pair(section(cloud), context(fake_clock, tmp_path), ui)
    assert "'Back'" in summary
    assert ui.said[-2:] == [
        f"1. Front door ({LOCK_ID})",
        "2. Back (B0000000000000000000000000000002)",
    ]


async def test_pair_refuses_a_bad_choice_or_id(
    cloud: FakeAugustCloud,
    front: FakeLock,
    owner: FakeAccount,
    fake_clock: FakeClock,
    tmp_path: Path,
) -> None:
    cloud.add_lock("B0000000000000000000000000000002", owner=owner, serial="L3X", name="Back")
    ctx = context(fake_clock, tmp_path)
    with pytest.raises(YaleCloudRefusedError, match="no lock number '9'"):
        await pair(section(cloud), ctx, ScriptedUI(*login_answers(cloud), "9"))
    with pytest.raises(YaleCloudRefusedError, match="no lock with id NOPE"):
        await pair(section(cloud, august_lock_id="NOPE"), ctx, ScriptedUI(*login_answers(cloud)))
    assert CredentialStore.open(tmp_path).load("front-door", KIND) is None


async def test_pair_refuses_an_account_without_locks(
    cloud: FakeAugustCloud, fake_clock: FakeClock, tmp_path: Path
) -> None:
    cloud.add_account(OWNER_EMAIL, PASSWORD)
    with pytest.raises(YaleCloudRefusedError, match="has no locks"):
        await pair(section(cloud), context(fake_clock, tmp_path), ScriptedUI(*login_answers(cloud)))
