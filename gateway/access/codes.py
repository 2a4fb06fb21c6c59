"""Courier codes at rest: a keyed hash bound to the lock, compared in constant time.

The hub never stores a code in clear. ``code_hash`` is HMAC-SHA256 under the hub's own secret
(``code-hmac.key``, unique per hub) over the lock id and the code, so a stolen database does
not give the codes away (a 6-digit space is tiny, but the key is not in the database), and one
lookup by hash finds the windows of that lock with that code. A dictionary lookup by a keyed
hash leaks, through timing at most, something about the HMAC of the guess, which is useless
without the key; the final comparison is ``hmac.compare_digest`` all the same.
"""

from __future__ import annotations

import hashlib
import hmac

from cloud_sync.protocol.errors import MalformedError
from cloud_sync.protocol.sealing import check_code

_DOMAIN = b"lockhub/v1 code-hash|"


def code_hash(secret: bytes, lock_id: str, code: str) -> bytes:
    """The keyed hash of ``code`` for ``lock_id`` (32 bytes)."""
    message = _DOMAIN + lock_id.encode() + b"|" + code.encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def well_formed(code: str) -> bool:
    """True when ``code`` has the shape of a courier code (6 to 10 digits) or token code."""
    try:
        check_code(code)
    except MalformedError:
        return False
    return True


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two hashes."""
    return hmac.compare_digest(a, b)
