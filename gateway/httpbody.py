"""Reading an HTTP request body whole, within a limit (shared by the hub's and the cloud's APIs).

A leaf module: the cloud imports it without pulling in the hub's access engine.
"""

from __future__ import annotations

from aiohttp import web


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, or 413 once it passes ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    raw = bytearray()
    # read(n) returns what has arrived so far, up to n bytes: a body split over several TCP
    # segments needs several reads.
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    return bytes(raw)
