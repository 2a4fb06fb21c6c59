"""The hub's Bluetooth adapter, opened only when a BLE driver asks for it.

A hub with only bridge or cloud locks never imports bleak nor touches the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import BleSection

if TYPE_CHECKING:
    from .ble.transport import BleTransport


class BleProvider:
    """Creates the one BleTransport on first use; starts and stops it with the hub."""

    def __init__(self, settings: BleSection, transport: BleTransport | None = None) -> None:
        self._settings = settings
        self._transport = transport

    @property
    def in_use(self) -> bool:
        """True once a driver asked for the transport."""
        return self._transport is not None

    def transport(self) -> BleTransport:
        """The shared transport (created here on first call)."""
        if self._transport is None:
            from .ble.transport import BleTransport  # noqa: PLC0415 - bleak only when needed

            self._transport = BleTransport(
                connection_slots=self._settings.connection_slots,
                idle_disconnect=self._settings.idle_disconnect_seconds,
            )
        return self._transport

    async def start(self) -> None:
        """Start watching advertisements, if any driver uses BLE."""
        if self._transport is not None:
            await self._transport.start()

    async def stop(self) -> None:
        """Stop scanning and close every link."""
        if self._transport is not None:
            await self._transport.stop()
