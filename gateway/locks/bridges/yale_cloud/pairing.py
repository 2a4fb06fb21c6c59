"""Signing in to the August / Yale Access cloud from `lockhub gateway pair`: tokens and keys.

``pair`` stores an access token for the ``yale_cloud`` driver. ``fetch_offline_key`` is used
once by the Yale BLE driver's pairing: it reads the lock's offline key and slot (what the
vendor app loaded into the lock for the owner) so the hub can then talk to the lock over BLE
without the cloud. Passwords and codes are asked with ``secret=True`` and never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import structlog

from ....config import LockSection
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from . import credentials
from .activities import Cursor
from .cloud import (
    PASSWORD_BRANDS,
    CloudClient,
    CloudDetail,
    CloudLock,
    CloudLogin,
    Session,
    YaleCloudAuthError,
    YaleCloudRefusedError,
)
from .driver import CATCH_UP_LIMIT, YaleCloudOptions

log = structlog.get_logger(__name__)

# Typing a code from a phone goes wrong now and then; three tries, then start again.
CODE_ATTEMPTS = 3
# yalexs-ble uses the offline key as an AES key: 16 bytes on August/Yale locks (32 hex
# digits); the other AES sizes are accepted rather than refusing a future lock model.
OFFLINE_KEY_BYTES = (16, 24, 32)


@dataclass(frozen=True, slots=True)
class OfflineKey:
    """A lock's offline (BLE) key and its slot, from the owner's cloud account."""

    key: str = field(repr=False)  # hex; a secret: never in a repr or a log line
    slot: int
    serial: str
    name: str


@dataclass(frozen=True, slots=True)
class _Account:
    session: Session
    install_id: str
    user_id: str


async def fetch_offline_key(ui: PairUI, *, serial: str, api_base: str | None = None) -> OfflineKey:
    """Sign in (password + 2FA) and return the offline key and slot of the lock ``serial``."""
    brand = (await ui.ask(f"Account brand ({' / '.join(PASSWORD_BRANDS)})")).strip().lower()
    client = CloudClient(brand, api_base=api_base)
    try:
        account = await _sign_in(ui, client)
        detail = await _find_by_serial(client, account.session.token, serial)
    finally:
        await client.close()
    if detail.offline_key is None or detail.offline_slot is None:
        raise YaleCloudRefusedError(
            f"the cloud holds no offline key of lock {detail.name!r} for this account: sign in "
            "with the lock owner's account (guests get none), after the owner has opened the "
            "lock once with the vendor app over Bluetooth"
        )
    key = detail.offline_key.strip().lower()
    if len(key) not in {2 * size for size in OFFLINE_KEY_BYTES} or not _is_hex(key):
        raise YaleCloudRefusedError(f"the offline key of lock {detail.name!r} is malformed")
    log.info("yale_cloud.offline_key_fetched", serial=detail.serial, slot=detail.offline_slot)
    return OfflineKey(key, detail.offline_slot, detail.serial, detail.name)


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Sign in, pick the lock, store its token encrypted; return a one-line summary."""
    options = parse_options(YaleCloudOptions, section, context.source)
    store = context.credentials()
    client = CloudClient(options.brand, api_base=options.api_base)
    try:
        account = await _sign_in(ui, client)
        token = account.session.token
        chosen = await _choose_lock(ui, await client.locks(token), options.august_lock_id)
        found = await client.activities(token, chosen.house_id, CATCH_UP_LIMIT)
    finally:
        await client.close()
    creds = credentials.CloudCredentials(
        brand=options.brand,
        install_id=account.install_id,
        access_token=token,
        expires_at=account.session.expires,
        user_id=account.user_id,
        august_lock_id=chosen.lock_id,
        house_id=chosen.house_id,
    )
    credentials.save(store, section.id, creds)
    now_ms = round(context.now().timestamp() * 1000)
    mine = [a for a in found if a.lock_id == chosen.lock_id]
    credentials.save_cursor(store, section.id, Cursor.baseline(mine, now_ms))
    log.info("yale_cloud.paired", lock_id=section.id, august_lock_id=chosen.lock_id)
    return f"lock {section.id} paired with {options.brand} lock {chosen.name!r} ({chosen.lock_id})"


async def _sign_in(ui: PairUI, client: CloudClient) -> _Account:
    identity = (await ui.ask("Account email or phone number (+country code)")).strip()
    password = await ui.ask("Account password", secret=True)
    install_id = str(uuid.uuid4())
    login = CloudLogin(client, identity, password, install_id=install_id)
    state = await login.authenticate()
    if state == "bad_password":
        raise YaleCloudAuthError("sign-in failed: wrong email/phone or password")
    if state == "requires_validation":
        await _validate(ui, login)
        state = await login.authenticate()
    session = login.session()  # YaleCloudAuthError unless now authenticated
    user_id = await client.user_id(session.token)
    ui.say("Signed in.")
    return _Account(session, install_id, user_id)


async def _validate(ui: PairUI, login: CloudLogin) -> None:
    await login.send_code()
    ui.say(f"The cloud sent a verification code to the account's {login.method}.")
    for attempt in range(1, CODE_ATTEMPTS + 1):
        code = (await ui.ask("Verification code", secret=True)).strip()
        if await login.validate(code):
            return
        if attempt < CODE_ATTEMPTS:
            ui.say("That code was not accepted; try again.")
    raise YaleCloudAuthError(f"the verification code was refused {CODE_ATTEMPTS} times")


async def _find_by_serial(client: CloudClient, token: str, serial: str) -> CloudDetail:
    wanted = serial.strip().upper()
    for lock in await client.locks(token):
        detail = await client.detail(token, lock.lock_id)
        if detail.serial.upper() == wanted:
            return detail
    raise YaleCloudRefusedError(f"this account has no lock with serial number {serial}")


async def _choose_lock(ui: PairUI, locks: list[CloudLock], wanted: str | None) -> CloudLock:
    if wanted is not None:
        for lock in locks:
            if lock.lock_id == wanted:
                return lock
        raise YaleCloudRefusedError(f"this account has no lock with id {wanted}")
    if not locks:
        raise YaleCloudRefusedError("this account has no locks")
    if len(locks) == 1:
        return locks[0]
    for number, lock in enumerate(locks, start=1):
        ui.say(f"{number}. {lock.name} ({lock.lock_id})")
    answer = (await ui.ask(f"Which lock (1-{len(locks)})?")).strip()
    if not answer.isdigit() or not 1 <= int(answer) <= len(locks):
        raise YaleCloudRefusedError(f"no lock number {answer!r}")
    return locks[int(answer) - 1]


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)
