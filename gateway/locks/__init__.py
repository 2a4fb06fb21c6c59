"""Locks: the driver seam, the simulated lock, and one coordinator per lock."""

from .breaker import BreakerState, CircuitBreaker
from .coordinator import LockCircuitOpenError, LockCoordinator
from .driver import (
    BATTERY_LOW_PERCENT,
    DoorState,
    DuplicateCodeError,
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadFullError,
    KeypadUnsupportedError,
    LockDriver,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    Trigger,
)
from .registry import DRIVERS, build_driver
from .sim import SimLock

__all__ = [
    "BATTERY_LOW_PERCENT",
    "DRIVERS",
    "BreakerState",
    "CircuitBreaker",
    "DoorState",
    "DuplicateCodeError",
    "EventKind",
    "EventQueue",
    "KeypadCode",
    "KeypadFullError",
    "KeypadUnsupportedError",
    "LockCircuitOpenError",
    "LockCoordinator",
    "LockDriver",
    "LockError",
    "LockEvent",
    "LockJammedError",
    "LockRefusedError",
    "LockState",
    "LockStatus",
    "LockUnreachableError",
    "SimLock",
    "Trigger",
    "build_driver",
]
