"""The bridge's callback list: register ours once, never a duplicate, never another's slot."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import structlog

from ...driver import LockRefusedError
from ...registry import DriverContext
from ..nuki_bridge_api import MAX_CALLBACK_URL, MAX_CALLBACKS, NukiBridgeError
from ..nuki_bridge_client import BridgeClient
from .options import option_error

log = structlog.get_logger(__name__)

SECRET_KIND = "nuki_bridge_callback"  # noqa: S105
# Where gateway.api puts the ``secret`` query parameter of a callback for the handler.
# 24 random bytes: 32 URL-safe characters, which keep the callback URL under 254 characters.
SECRET_BYTES = 24


class CallbackRejectedError(NukiBridgeError, LockRefusedError):
    """A callback without this lock's secret: not from our bridge registration."""


def callback_route(
    base: str | None, lock_id: str, context: DriverContext
) -> tuple[str | None, str | None]:
    """This lock's callback URL and its secret; both None without ``callback_url_base``."""
    if base is None:
        return None, None
    secret = callback_secret(lock_id, context)
    url = callback_url(base, lock_id, secret)
    if len(url) > MAX_CALLBACK_URL:
        what = f"makes a callback URL longer than the bridge's {MAX_CALLBACK_URL} characters"
        raise option_error(context.source, lock_id, "callback_url_base", what)
    return url, secret


def callback_url(base: str, lock_id: str, secret: str) -> str:
    """The URL the bridge posts to: the hub's callback route with this lock's secret."""
    return f"{base}/v1/callbacks/{lock_id}?secret={secret}"


def callback_secret(lock_id: str, context: DriverContext) -> str:
    store = context.credentials()
    stored = store.load(lock_id, SECRET_KIND)
    secret = stored.get("secret") if stored else None
    if isinstance(secret, str) and secret:
        return secret
    secret = secrets.token_urlsafe(SECRET_BYTES)
    store.save(lock_id, SECRET_KIND, {"secret": secret})
    return secret


async def ensure_callback(client: BridgeClient, url: str, lock_id: str) -> bool:
    """Register ``url`` on the bridge once; True when it is (or already was) registered."""
    registered = await client.callbacks()
    if any(entry.url == url for entry in registered):
        return True
    # Ours from an earlier secret (same base and path): replace, do not pile up.
    stale = [entry for entry in registered if _same_route(entry.url, url)]
    for entry in stale:
        await client.remove_callback(entry.id)
    others = [entry for entry in registered if entry not in stale]
    if len(others) >= MAX_CALLBACKS:
        log.warning(
            "nuki_bridge.callbacks_full",
            lock_id=lock_id,
            taken_by=[_origin(entry.url) for entry in others],
            advice="remove one with /callback/remove; until then no push events",
        )
        return False
    outcome = await client.add_callback(url)
    if not outcome.success:
        log.warning("nuki_bridge.callback_refused", lock_id=lock_id, message=outcome.message)
        return False
    log.info("nuki_bridge.callback_added", lock_id=lock_id, replaced=len(stale))
    return True


def _same_route(a: str, b: str) -> bool:
    left, right = urlsplit(a), urlsplit(b)
    return (left.scheme, left.netloc, left.path) == (right.scheme, right.netloc, right.path)


def _origin(url: str) -> str:
    """Scheme, host and port only: other integrations' URLs may carry their own secrets."""
    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:  # a port that is no number: say so, show nothing else
        return f"{parts.scheme}://{parts.hostname or '?'}:?"
    return f"{parts.scheme}://{parts.hostname or '?'}:{port}"
