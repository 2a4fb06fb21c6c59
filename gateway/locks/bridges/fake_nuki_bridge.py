"""A Nuki Bridge on 127.0.0.1 that answers as the Bridge HTTP API (v1.13) documents.

A real aiohttp server: its devices and their states, one request at a time (503 while busy),
the three token modes checked as the bridge does (60 s window, each rnr/nonce once), at most 3
callback URLs that it POSTs every state change to, and knobs for faults: a storm of 503s, slow
answers, any HTTP status, a connection dropped after the action ran, garbled replies, a jammed
motor, a lock out of the bridge's radio range. Counters let tests prove what ran and how often.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from .nuki_bridge_api import (
    MAX_CALLBACK_URL,
    MAX_CALLBACKS,
    TOKEN_WINDOW_SECONDS,
    AuthMode,
    BridgeFormatError,
    check_encrypted,
    check_hashed,
)

# What each smart lock action leaves the lock in (API v1.13 lock states).
ACTION_RESULT = {1: 3, 2: 1, 3: 5, 4: 6, 5: 5}
STATE_NAMES = {
    1: "locked",
    3: "unlocked",
    5: "unlatched",
    6: "unlocked (lock 'n' go)",
    254: "motor blocked",
}
DOOR_NAMES = {1: "deactivated", 2: "door closed", 3: "door opened", 4: "door state unknown"}
# How long /auth waits for the button, as the real bridge does (tests shorten it).
AUTH_WAIT_SECONDS = 30.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeDevice:
    """One device paired with the fake bridge."""

    nuki_id: int
    name: str = "Front door"
    device_type: int = 0
    state: int = 1
    battery_critical: bool = False
    battery_charge: int = 80
    keypad_battery_critical: bool = False
    door_sensor: int = 2
    in_range: bool = True
    jam_next: bool = False

    def report(self) -> dict[str, Any]:
        """The state fields of /lockState, lastKnownState and callbacks."""
        return {
            "mode": 2,
            "state": self.state,
            "stateName": STATE_NAMES.get(self.state, "undefined"),
            "batteryCritical": self.battery_critical,
            "batteryCharging": False,
            "batteryChargeState": self.battery_charge,
            "keypadBatteryCritical": self.keypad_battery_critical,
            "doorsensorState": self.door_sensor,
            "doorsensorStateName": DOOR_NAMES.get(self.door_sensor, "unknown"),
        }


@dataclass
class FakeNukiBridge:
    """The fake bridge; ``async with`` serves it on an ephemeral port of 127.0.0.1."""

    token: str = "abc123"  # noqa: S105 - a fake bridge's well-known test token
    devices: list[FakeDevice] = field(default_factory=list)
    modes: frozenset[AuthMode] = frozenset(AuthMode)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    action_seconds: float = 0.0
    auth_wait: float = AUTH_WAIT_SECONDS
    auth_enabled: bool = True
    callback_before_reply: bool = True
    # Fault knobs.
    busy_next: int = 0
    delay_next: float = 0.0
    drop_next: str | None = None
    garble_next: int = 0
    status_next: list[int] = field(default_factory=list)
    # Counters.
    actions: list[tuple[int, int]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    busy_answers: int = 0
    max_in_flight: int = 0
    callbacks: dict[int, str] = field(default_factory=dict)
    delivered: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._in_flight = 0
        self._seen: set[str] = set()
        self._button = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def __aenter__(self) -> FakeNukiBridge:
        app = web.Application(middlewares=[self._one_at_a_time, self._faults, self._auth])
        routes = {
            "/auth": self._auth_token,
            "/info": self._info,
            "/list": self._list,
            "/lockState": self._lock_state,
            "/lockAction": self._lock_action,
            "/callback/list": self._callback_list,
            "/callback/add": self._callback_add,
            "/callback/remove": self._callback_remove,
        }
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def device(self, nuki_id: int) -> FakeDevice:
        """The device with ``nuki_id`` (KeyError if none)."""
        return next(d for d in self.devices if d.nuki_id == nuki_id)

    def press_button(self) -> None:
        """Press the bridge's button: a waiting /auth gets the token."""
        self._button.set()

    async def change(self, nuki_id: int, **fields: Any) -> None:
        """Change a device at the lock (a thumb turn, the door, the battery) and call back."""
        device = self.device(nuki_id)
        for name, value in fields.items():
            setattr(device, name, value)
        await self.call_back(device)

    async def call_back(self, device: FakeDevice) -> None:
        """POST the device's state to every registered callback URL, as the bridge does."""
        body = {"nukiId": device.nuki_id, "deviceType": device.device_type, **device.report()}
        assert self._session is not None  # noqa: S101 - only while serving
        for url in list(self.callbacks.values()):
            try:
                async with self._session.post(url, json=body) as response:
                    self.delivered.append((url, response.status))
            except aiohttp.ClientError:
                self.delivered.append((url, 0))

    # Middlewares: the order is the bridge's: busy first, then faults, then the token.

    @web.middleware
    async def _one_at_a_time(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(request.path)
        if self.busy_next > 0 or self._in_flight:
            self.busy_next = max(0, self.busy_next - 1)
            self.busy_answers += 1
            return web.Response(status=503, text="HTTP 503 Service Unavailable")
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.delay_next:
            delay, self.delay_next = self.delay_next, 0.0
            await asyncio.sleep(delay)
        if self.status_next:
            return web.Response(status=self.status_next.pop(0), text="HTTP error")
        response = await handler(request)
        if self.drop_next == request.path.lstrip("/"):
            self.drop_next = None
            assert request.transport is not None  # noqa: S101 - the request is being served
            request.transport.close()  # the command ran; its answer never leaves
        if self.garble_next > 0:
            self.garble_next -= 1
            return web.Response(
                status=200, body=b'{"success": tru', content_type="application/json"
            )
        return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/auth" or self._token_ok(request.query):
            return await handler(request)
        return web.Response(status=401, text="HTTP 401 Unauthorized")

    def _token_ok(self, query: Any) -> bool:
        try:
            if "token" in query:
                given = str(query["token"]).encode()
                return AuthMode.PLAIN in self.modes and hmac.compare_digest(
                    given, self.token.encode()
                )
            if "ctoken" in query and AuthMode.ENCRYPTED in self.modes:
                moment, _ = check_encrypted(self.token, query["ctoken"], query.get("nonce", ""))
                return self._fresh(moment, "nonce:" + query.get("nonce", ""))
            if "hash" in query and AuthMode.HASHED in self.modes:
                ts, rnr = query.get("ts", ""), query.get("rnr", "")
                moment, _ = check_hashed(self.token, ts, rnr, query["hash"])
                return self._fresh(moment, f"hash:{ts},{rnr}")
        except BridgeFormatError:
            return False
        return False

    def _fresh(self, moment: datetime, once: str) -> bool:
        if abs((self.now() - moment).total_seconds()) > TOKEN_WINDOW_SECONDS or once in self._seen:
            return False
        self._seen.add(once)
        return True

    # Endpoints.

    async def _auth_token(self, _: web.Request) -> web.Response:
        if not self.auth_enabled:
            return web.Response(status=403, text="HTTP 403 Forbidden")
        try:
            await asyncio.wait_for(self._button.wait(), self.auth_wait)
        except TimeoutError:
            return web.json_response({"success": False})
        return web.json_response({"token": self.token, "success": True})

    async def _info(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "bridgeType": 1,
                "ids": {"hardwareId": 12345678, "serverId": 87654321},
                "versions": {"firmwareVersion": "2.14.0", "wifiFirmwareVersion": "2.2.0"},
                "uptime": 120,
                "currentTime": self.now().strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                "serverConnected": True,
                "scanResults": [],
            }
        )

    async def _list(self, _: web.Request) -> web.Response:
        stamp = self.now().strftime("%Y-%m-%dT%H:%M:%S+00:00")
        body = [
            {
                "nukiId": d.nuki_id,
                "deviceType": d.device_type,
                "name": d.name,
                "firmwareVersion": "3.4.2",
                "lastKnownState": {**d.report(), "timestamp": stamp},
            }
            for d in self.devices
        ]
        return web.json_response(body)

    async def _lock_state(self, request: web.Request) -> web.Response:
        device = self._target(request)
        if not device.in_range:
            return web.Response(status=503, text="HTTP 503 Service Unavailable")
        return web.json_response({**device.report(), "success": True})

    async def _lock_action(self, request: web.Request) -> web.Response:
        device = self._target(request)
        action = _int_param(request, "action")
        if action not in ACTION_RESULT:
            raise web.HTTPBadRequest(text="HTTP 400 Bad Request")
        if not device.in_range:
            return web.Response(status=503, text="HTTP 503 Service Unavailable")
        self.actions.append((device.nuki_id, action))
        if request.query.get("noWait") == "1":
            asyncio.get_running_loop().create_task(self._run_action(device, action))
            return web.json_response({"success": True, "batteryCritical": device.battery_critical})
        success = await self._run_action(device, action)
        return web.json_response({"success": success, "batteryCritical": device.battery_critical})

    async def _run_action(self, device: FakeDevice, action: int) -> bool:
        await asyncio.sleep(self.action_seconds)
        success = not device.jam_next
        device.state = ACTION_RESULT[action] if success else 254
        device.jam_next = False
        if self.callback_before_reply:
            await self.call_back(device)
        else:
            asyncio.get_running_loop().call_later(0.01, self._later, device)
        return success

    def _later(self, device: FakeDevice) -> None:
        asyncio.get_running_loop().create_task(self.call_back(device))

    async def _callback_list(self, _: web.Request) -> web.Response:
        entries = [{"id": key, "url": url} for key, url in sorted(self.callbacks.items())]
        return web.json_response({"callbacks": entries})

    async def _callback_add(self, request: web.Request) -> web.Response:
        url = request.query.get("url", "")
        if not url.startswith("http://") or len(url) > MAX_CALLBACK_URL:
            return web.json_response({"success": False, "message": "invalid url"})
        if len(self.callbacks) >= MAX_CALLBACKS:
            return web.json_response({"success": False, "message": "too many callbacks registered"})
        free = next(n for n in range(MAX_CALLBACKS) if n not in self.callbacks)
        self.callbacks[free] = url
        return web.json_response({"success": True})

    async def _callback_remove(self, request: web.Request) -> web.Response:
        if self.callbacks.pop(_int_param(request, "id"), None) is None:
            return web.json_response({"success": False, "message": "callback not found"})
        return web.json_response({"success": True})

    def _target(self, request: web.Request) -> FakeDevice:
        nuki_id, device_type = _int_param(request, "nukiId"), _int_param(request, "deviceType")
        for device in self.devices:
            if (device.nuki_id, device.device_type) == (nuki_id, device_type):
                return device
        raise web.HTTPNotFound(text="HTTP 404 Not Found")


def _int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.query[name])
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} missing"})) from None
