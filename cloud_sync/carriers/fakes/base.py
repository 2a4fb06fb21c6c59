"""What every fake carrier shares: a real socket, a request log, canned failures."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class CannedFailure:
    """An answer to give instead of the real one."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the fake received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class FakeServer:
    """An aiohttp app on 127.0.0.1 and a free port; ``url`` once started."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._record_and_fail])
        self.seen: list[Seen] = []
        self._failures: deque[tuple[str | None, CannedFailure]] = deque()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail_next(self, failure: CannedFailure, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` requests (to paths containing ``path``) with ``failure``."""
        self._failures.extend([(path, failure)] * times)

    def _take_failure(self, path: str) -> CannedFailure | None:
        if self._failures and (self._failures[0][0] is None or self._failures[0][0] in path):
            return self._failures.popleft()[1]
        return None

    @web.middleware
    async def _record_and_fail(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        failure = self._take_failure(request.path)
        if failure is not None:
            return web.Response(
                status=failure.status,
                body=failure.body,
                content_type=failure.content_type,
                headers=dict(failure.headers),
            )
        return await handler(request)

    def calls(self, path_part: str) -> list[Seen]:
        """The requests whose path contains ``path_part``."""
        return [seen for seen in self.seen if path_part in seen.path]

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port); returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
