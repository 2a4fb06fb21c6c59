"""Build a lock's driver from its ``[[locks]]`` section; adding a driver is one line in DRIVERS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails

from cloud_sync.protocol.tomlconfig import Section

from ..config import LockSection
from ..errors import ConfigError
from .driver import LockDriver
from .sim import SimLock

# The source named in errors when the caller does not pass the config file's path.
DEFAULT_SOURCE = "config"
# A simulated radio slower than a minute would only make the demo look hung.
MAX_SIM_LATENCY = 60.0
# Real keypads hold 20 (Yale) to 100 (Nuki Keypad 2.0) codes; 1000 is plenty for a simulation.
MAX_SIM_KEYPAD_SLOTS = 1000


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What every driver factory gets besides its section: clocks and the config's name."""

    now: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    source: str


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
    )


DRIVERS: dict[str, DriverFactory] = {
    "sim": _build_sim,
}


def build_driver(
    section: LockSection,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]],
    source: str = DEFAULT_SOURCE,
) -> LockDriver:
    """The driver for ``section``; ConfigError naming ``locks[<id>]...`` when it cannot be built."""
    factory = DRIVERS.get(section.driver)
    if factory is None:
        available = ", ".join(sorted(DRIVERS))
        what = (
            f"driver {section.driver!r} is not available in this version yet"
            f" (available: {available})"
        )
        raise ConfigError(source, [f"{source}: locks[{section.id}].driver: {what}"])
    return factory(section, DriverContext(now=now, sleep=sleep, source=source))


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
