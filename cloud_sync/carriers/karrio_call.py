"""One karrio gateway call, and what karrio does not return: the failed HTTP status.

karrio answers an HTTP error with its body and logs the status (``HTTP request failed``,
``error_code``) through loguru under the call's ``request_id``, which it takes from the
tracer's context. A loguru sink keeps those statuses by request id until the call reads them;
the Retry-After comes from the tracer's ``error`` record.
"""

from __future__ import annotations

import functools
import secrets
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    # karrio 2026.1 imports PyPDF2, which warns that it is deprecated: karrio's to fix.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="PyPDF2")
    import karrio.core.errors as kerrors  # type: ignore[import-untyped]
    import karrio.core.models as km  # type: ignore[import-untyped]
    import karrio.lib as klib  # type: ignore[import-untyped]
    import karrio.sdk as karrio  # type: ignore[import-untyped]
    from karrio.core.utils.logger import logger as karrio_log  # type: ignore[import-untyped]

__all__ = [
    "KarrioCall",
    "install_status_sink",
    "installed_carriers",
    "kerrors",
    "klib",
    "km",
    "open_call",
    "providers",
    "settings_class",
]

_FAILED_EVENT = "HTTP request failed"
_statuses: dict[str, int] = {}
_statuses_lock = threading.Lock()
_sink_ready = threading.Event()


def _capture_status(message: Any) -> None:
    extra = message.record["extra"]
    request_id, status = extra.get("request_id"), extra.get("error_code")
    if isinstance(request_id, str) and isinstance(status, int):
        with _statuses_lock:
            _statuses[request_id] = status


def install_status_sink() -> None:
    """Start keeping the HTTP statuses karrio logs for failed requests (once per process)."""
    with _statuses_lock:
        if not _sink_ready.is_set():
            karrio_log.add(
                _capture_status, level="ERROR", filter=lambda r: r["message"] == _FAILED_EVENT
            )
            _sink_ready.set()


@functools.cache
def settings_class(carrier_name: str, server_url: str | None) -> type:
    """The plugin's Settings, its ``server_url`` replaced when one is given."""
    base: type = karrio.gateway.providers[carrier_name].Settings
    if server_url is None:
        return base
    return type(f"{base.__name__}At", (base,), {"server_url": property(lambda _self: server_url)})


def installed_carriers() -> list[str]:
    """Names of the karrio carriers installed (``dhl_express``, ``ups``...)."""
    return sorted(karrio.gateway.providers)


def providers() -> Any:
    """karrio's installed providers by carrier name."""
    return karrio.gateway.providers


@dataclass
class KarrioCall:
    """One gateway call: its gateway, its tracer and the request id karrio logs under."""

    gateway: Any
    tracer: Any
    request_id: str

    def http_failure(self) -> tuple[int | None, dict[str, str]]:
        """The HTTP status of a failed request (None if none failed) and its headers."""
        with _statuses_lock:
            status = _statuses.pop(self.request_id, None)
        headers: dict[str, str] = {}
        for record in self.tracer.records:
            if record.key == "error":
                headers = dict(record.data.get("response_headers") or {})
        return status, headers


@contextmanager
def open_call(carrier_name: str, settings: Any, cache: Any) -> Iterator[KarrioCall]:
    """A fresh gateway for one call, its tracer tagged with a request id of our own."""
    tracer = klib.Tracer()
    request_id = f"lockhub-{secrets.token_hex(8)}"
    tracer.add_context({"request_id": request_id})
    gateway = karrio.gateway[carrier_name].create(settings, tracer=tracer, cache=cache)
    try:
        yield KarrioCall(gateway, tracer, request_id)
    finally:
        with _statuses_lock:
            _statuses.pop(request_id, None)
