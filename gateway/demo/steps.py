"""The demo's steps in order; each returns a one-line detail or raises DemoFailedError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .delivery import (
    step_courier,
    step_keypad,
    step_lockout,
    step_outage,
    step_recovery,
    step_window,
)
from .parts import step_broker, step_cloud, step_hub, step_setup
from .scene import Demo
from .shipping import step_cost_export, step_job_done, step_label, step_rate_shop
from .wrapup import step_no_secrets, step_report, step_shutdown

Step = Callable[[Demo], Awaitable[str]]
STEPS: list[tuple[str, Step]] = [
    ("MQTT broker", step_broker),
    ("cloud and hub set up with the lockhub CLI", step_setup),
    ("cloud service running (MQTT worker, REST API, SQLite)", step_cloud),
    ("hub running (store, access engine, 3 simulated locks, local API, MQTT link)", step_hub),
    ("window created through the cloud API reaches the hub", step_window),
    ("courier opens the front door; the PoD reaches the cloud", step_courier),
    ("wrong codes: the guesser is locked out", step_lockout),
    ("network outage: deliveries go on offline", step_outage),
    ("link back: every PoD arrives exactly once", step_recovery),
    ("lock-enforced window: a code typed on the parcel room's keypad", step_keypad),
    ("rate shopping for a task; the best offer booked", step_rate_shop),
    ("the booked job's shipping label", step_label),
    ("the carrier's courier delivers; the job completes with its cost", step_job_done),
    ("cost export", step_cost_export),
    ("the day's report from the cloud API", step_report),
    ("shutdown", step_shutdown),
    ("no code or key in any file", step_no_secrets),
]
