"""``lockhub gateway scan|locks|pair``: find BLE locks, show configured locks, pair one.

``locks`` asks the running daemon (it owns the adapter and the links); ``scan`` and ``pair``
use the adapter themselves, so stop the daemon first on a hub with BLE locks.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from .config import GatewayConfig, LockSection
from .daemon import read_admin_token
from .errors import ConfigError, GatewayError
from .locks.adapter import BleProvider
from .locks.callbacks import CallbackRegistry
from .locks.driver import LockError
from .locks.registry import DRIVERS, DriverContext

# A BLE lock advertises every 1-2 s (Nuki) to 5 s (Yale, asleep): 10 s hears each a few times.
SCAN_SECONDS = 10.0
# The local API answers on the same machine; a hub that takes longer than this is stuck.
API_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Which driver pairs for each `lockhub gateway pair <vendor>` word.
PAIR_DRIVERS = {
    "nuki": "nuki_ble",
    "nuki-bridge": "nuki_bridge",
    "yale": "yale_ble",
    "yale-cloud": "yale_cloud",
    "schlage": "schlage",
    "nuki_ble": "nuki_ble",
    "nuki_bridge": "nuki_bridge",
    "yale_ble": "yale_ble",
    "yale_cloud": "yale_cloud",
}
# Nuki's GATT services: pairing (in pairing mode) and keyturner (paired, in use).
NUKI_SERVICES = {
    "a92ee100-5501-11e4-916c-0800200c9a66": "Nuki Smart Lock (pairing mode)",
    "a92ee200-5501-11e4-916c-0800200c9a66": "Nuki Smart Lock",
}
# Yale / August: the lock's service and the manufacturer ids yalexs-ble recognises.
YALE_SERVICE = "0000fe24-0000-1000-8000-00805f9b34fb"
YALE_MANUFACTURERS = {465: "Yale", 302: "ASSA ABLOY / August"}


def identify(name: str | None, service_uuids: Sequence[str], manufacturers: Sequence[int]) -> str:
    """The lock model an advertisement names, or an empty string for anything else."""
    for uuid in service_uuids:
        if uuid.lower() in NUKI_SERVICES:
            return NUKI_SERVICES[uuid.lower()]
    for manufacturer in manufacturers:
        if manufacturer in YALE_MANUFACTURERS:
            return f"{YALE_MANUFACTURERS[manufacturer]} lock"
    if YALE_SERVICE in (u.lower() for u in service_uuids):
        return "Yale / August lock"
    if name and name.lower().startswith("nuki_"):
        return "Nuki Smart Lock"
    return ""


async def scan(config: GatewayConfig, seconds: float, *, show_all: bool) -> list[dict[str, Any]]:
    """Scan for ``seconds``; the locks heard (every device with ``show_all``)."""
    transport = BleProvider(config.ble).transport()
    tty = sys.stderr.isatty()

    def progress(count: int) -> None:
        if tty:
            print(f"\rscanning... {count} devices heard", end="", file=sys.stderr, flush=True)

    try:
        found = await transport.discover(seconds, progress)
    except LockError as exc:
        raise GatewayError(f"{exc}; is the Bluetooth adapter up and the daemon stopped?") from exc
    finally:
        if tty:
            print(file=sys.stderr)
    rows = []
    for device, ad in found:
        model = identify(ad.local_name, ad.service_uuids, list(ad.manufacturer_data))
        if model or show_all:
            rows.append(
                {"address": device.address, "name": ad.local_name, "model": model, "rssi": ad.rssi}
            )
    return rows


async def fetch_locks(config: GatewayConfig) -> list[dict[str, Any]]:
    """The running daemon's view of every configured lock (GET /v1/admin/locks)."""
    token = read_admin_token(config.api.admin_token_file)
    if token is None:
        raise GatewayError(
            "api.admin_token_file is not set; the lock list is an admin endpoint of the daemon"
        )
    host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::", "") else config.api.host  # noqa: S104 - a bind-all address is not dialable
    url = f"http://{host}:{config.api.port}/v1/admin/locks"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=API_TIMEOUT) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status != 200:
                raise GatewayError(f"the hub answered {response.status} at {url}")
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GatewayError(
            f"the hub is not answering at {url} ({exc.__class__.__name__}); "
            "start it with `lockhub gateway run`"
        ) from exc
    locks: list[dict[str, Any]] = body["locks"]
    return locks


class TerminalPairUI:
    """PairUI on the terminal: messages to stderr, answers from stdin (secrets unechoed)."""

    def say(self, message: str) -> None:
        """Print one line."""
        print(message, file=sys.stderr)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        """Read one answer without blocking the event loop."""
        reader: Callable[[str], str] = getpass.getpass if secret else _plain_input
        answer = await asyncio.to_thread(reader, f"{prompt}: ")
        return answer.strip()


def _plain_input(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise GatewayError("no answer (stdin closed); pairing needs a terminal")
    return line


async def pair(config: GatewayConfig, vendor: str, lock_id: str, source: str) -> str:
    """Pair the configured lock ``lock_id`` with its vendor's procedure; a one-line summary."""
    section = _lock_section(config, lock_id, source)
    wanted = PAIR_DRIVERS[vendor]
    if section.driver != wanted:
        raise ConfigError(
            source,
            [
                f"{source}: locks[{lock_id}].driver: is {section.driver!r}; "
                f"`pair {vendor}` pairs {wanted!r} locks"
            ],
        )
    entry = DRIVERS[wanted]
    # Vendor drivers are registered by "module:function"; pair() lives beside build().
    module_name = entry.partition(":")[0] if isinstance(entry, str) else entry.__module__
    module = importlib.import_module(module_name)
    ble = BleProvider(config.ble)
    context = DriverContext(
        now=_now,
        sleep=asyncio.sleep,
        source=source,
        state_dir=config.hub.state_dir,
        callbacks=CallbackRegistry(),
        ble=ble.transport,
    )
    try:
        summary: str = await module.pair(section, context, TerminalPairUI())
    finally:
        await ble.stop()
    return summary


def _lock_section(config: GatewayConfig, lock_id: str, source: str) -> LockSection:
    for section in config.locks:
        if section.id == lock_id:
            return section
    known = ", ".join(s.id for s in config.locks) or "none"
    raise ConfigError(
        source, [f"{source}: locks: no lock with id {lock_id!r} (configured: {known})"]
    )


def _now() -> datetime:
    return datetime.now(UTC)


def print_locks(locks: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print the lock list as JSON or as an aligned table."""
    if as_json:
        print(json.dumps({"locks": locks}, indent=2))
        return
    header = ("LOCK", "VENDOR", "STATE", "BATTERY", "DOOR", "KEYPAD", "BREAKER")
    rows = [header] + [
        (
            lock["lock_id"],
            lock["vendor"],
            lock["state"],
            "?"
            if lock["battery_percent"] is None
            else f"{lock['battery_percent']}%" + (" low" if lock["battery_low"] else ""),
            lock["door"],
            "yes" if lock["keypad"] else "no",
            lock["breaker"],
        )
        for lock in locks
    ]
    _print_table(rows)


def print_scan(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print scan results as JSON or as an aligned table."""
    if as_json:
        print(json.dumps({"devices": rows}, indent=2))
        return
    if not rows:
        print("no locks heard; is the lock in range and awake (press its button)?")
        return
    table = [("ADDRESS", "MODEL", "NAME", "RSSI")] + [
        (r["address"], r["model"] or "-", r["name"] or "-", str(r["rssi"])) for r in rows
    ]
    _print_table(table)


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
