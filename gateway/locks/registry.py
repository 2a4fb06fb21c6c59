"""Build a lock's driver from its ``[[locks]]`` section; adding a driver is one line in DRIVERS.

Vendor drivers are imported only when a config names them, so a hub with only simulated (or
only Nuki) locks never imports the other vendors' libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails

from cloud_sync.protocol.tomlconfig import Section

from ..config import LockSection
from ..errors import ConfigError
from .callbacks import CallbackRegistry
from .credentials import CredentialStore
from .driver import LockDriver
from .sim import SimLock

if TYPE_CHECKING:
    from .ble.transport import BleTransport

# The source named in errors when the caller does not pass the config file's path.
DEFAULT_SOURCE = "config"
# A simulated radio slower than a minute would only make the demo look hung.
MAX_SIM_LATENCY = 60.0
# Real keypads hold 20 (Yale) to 100 (Nuki Keypad 2.0) codes; 1000 is plenty for a simulation.
MAX_SIM_KEYPAD_SLOTS = 1000
# A jam once in a million moves is already "never" for any test or demo.
MAX_SIM_JAM_EVERY = 1_000_000


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What every driver factory gets besides its section.

    ``state_dir`` holds the hub's state (credentials live under it); ``callbacks`` routes
    bridge callbacks from the local API; ``ble`` gives the one shared BLE transport (created on
    first use: one process owns the adapter).
    """

    now: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    source: str
    state_dir: Path | None = None
    callbacks: CallbackRegistry = field(default_factory=CallbackRegistry)
    ble: Callable[[], BleTransport] | None = None

    def credentials(self) -> CredentialStore:
        """The encrypted per-lock credential store in ``state_dir``."""
        if self.state_dir is None:
            raise ConfigError(
                self.source, [f"{self.source}: hub.state_dir is needed for lock credentials"]
            )
        return CredentialStore.open(self.state_dir)

    def ble_transport(self) -> BleTransport:
        """The shared BLE transport; ConfigError when this hub has none."""
        if self.ble is None:
            raise ConfigError(self.source, [f"{self.source}: BLE drivers need a Bluetooth adapter"])
        return self.ble()


OptionsT = TypeVar("OptionsT", bound=Section)
DriverFactory = Callable[[LockSection, DriverContext], LockDriver]


class SimOptions(Section):
    """``options`` of a ``sim`` lock: the simulated lock model."""

    latency: float = Field(default=0.0, ge=0, le=MAX_SIM_LATENCY)
    battery_percent: int = Field(default=100, ge=0, le=100)
    has_keypad: bool = True
    keypad_slots: int = Field(default=20, ge=1, le=MAX_SIM_KEYPAD_SLOTS)
    auto_relock_after: float | None = Field(default=5.0, gt=0)
    door_sensor: bool = True
    # Failure paths on demand: this share of radio calls fails as unreachable (drawn at
    # random; ``seed`` repeats a run), and every ``jam_every``-th bolt movement jams (0: none).
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    jam_every: int = Field(default=0, ge=0, le=MAX_SIM_JAM_EVERY)
    seed: int | None = None


def _build_sim(section: LockSection, context: DriverContext) -> LockDriver:
    options = parse_options(SimOptions, section, context.source)
    return SimLock(
        section.id,
        now=context.now,
        sleep=context.sleep,
        latency=options.latency,
        battery_percent=options.battery_percent,
        has_keypad=options.has_keypad,
        keypad_slots=options.keypad_slots,
        auto_relock_after=options.auto_relock_after,
        door_sensor=options.door_sensor,
        fail_rate=options.fail_rate,
        jam_every=options.jam_every,
        seed=options.seed,
    )


# Each driver: its factory, or "module:function" imported when a config names the driver.
DRIVERS: dict[str, DriverFactory | str] = {
    "sim": _build_sim,
    "nuki_ble": "gateway.locks.ble.nuki.driver:build",
    "nuki_bridge": "gateway.locks.bridges.nuki_bridge:build",
    "yale_ble": "gateway.locks.ble.yale:build",
    "yale_cloud": "gateway.locks.bridges.yale_cloud:build",
    "schlage": "gateway.locks.bridges.schlage:build",
}


def _factory(name: str, source: str, lock_id: str) -> DriverFactory:
    entry = DRIVERS.get(name)
    if entry is None or not isinstance(entry, str):
        if entry is None:
            available = ", ".join(sorted(DRIVERS))
            what = f"unknown driver {name!r} (available: {available})"
            raise ConfigError(source, [f"{source}: locks[{lock_id}].driver: {what}"])
        return entry
    module_name, _, function = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        what = (
            f"driver {name!r} needs a library that is not installed ({exc.name}); "
            "install lockhub with the 'ble' and 'vendors' extras"
        )
        raise ConfigError(source, [f"{source}: locks[{lock_id}].driver: {what}"]) from None
    return cast(DriverFactory, getattr(module, function))


def build_driver(
    section: LockSection,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]],
    source: str = DEFAULT_SOURCE,
    state_dir: Path | None = None,
    callbacks: CallbackRegistry | None = None,
    ble: Callable[[], BleTransport] | None = None,
) -> LockDriver:
    """The driver for ``section``; ConfigError naming ``locks[<id>]...`` when it cannot be built."""
    factory = _factory(section.driver, source, section.id)
    context = DriverContext(
        now=now,
        sleep=sleep,
        source=source,
        state_dir=state_dir,
        callbacks=callbacks if callbacks is not None else CallbackRegistry(),
        ble=ble,
    )
    return factory(section, context)


def parse_options(model: type[OptionsT], section: LockSection, source: str) -> OptionsT:
    """Validate ``section.options`` as ``model``; ConfigError naming each bad option."""
    try:
        return model.model_validate(section.options)
    except ValidationError as exc:
        allowed = ", ".join(model.model_fields)
        lines = [_problem(source, section.id, error, allowed) for error in exc.errors()]
        raise ConfigError(source, lines) from None


def _problem(source: str, lock_id: str, error: ErrorDetails, allowed: str) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    if error["type"] == "extra_forbidden":
        what = f"unknown option (check the spelling); allowed: {allowed}"
    else:
        what = str(error["msg"]).replace("Input should be", "must be")
    return f"{source}: locks[{lock_id}].options{path}: {what}"
