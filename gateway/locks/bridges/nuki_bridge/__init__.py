"""Nuki smart locks through a Nuki Bridge's local HTTP API: status, lock/unlock, callbacks.

The bridge pushes every state change to up to 3 callback URLs; ours points at the hub's local
API (``POST /v1/callbacks/{lock_id}?secret=...``) with a per-lock secret kept in the credential
store. The Bridge HTTP API has no keypad code management (that is the Web API's), so this
driver has no keypad. ``build`` and ``pair`` are the registry's entry points.
"""

from __future__ import annotations

from .callbacks import SECRET_KIND, CallbackRejectedError, callback_url
from .driver import NukiBridgeLock, build, find_device
from .options import TOKEN_KIND, NukiBridgeOptions, read_token_file
from .pairing import pair

__all__ = [
    "SECRET_KIND",
    "TOKEN_KIND",
    "CallbackRejectedError",
    "NukiBridgeLock",
    "NukiBridgeOptions",
    "build",
    "callback_url",
    "find_device",
    "pair",
    "read_token_file",
]
