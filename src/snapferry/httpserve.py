"""Serving an ASGI app the way every snapferry HTTP server does: uvicorn on a thread of its
own, behind the `Security` of httpsec.py, bounded against connection floods.

- `/health` is answered here, before authentication (as VictoriaMetrics does), "OK" or
  a 503 while the server drains before a shutdown (`-http.shutdownDelay`).
- Basic auth on every other path, compared with `hmac.compare_digest` (constant time,
  user and password both compared whatever the first gave); `/metrics` takes
  `?authKey=` instead when a metrics auth key is set.
- Connections are bounded (at most `max_connections`, and never more than half the
  process's descriptor limit): a new connection over the bound closes the oldest idle
  one (no request in progress), or else the oldest, so a flood cannot lock /health out.
  A connection that has not sent a whole request head within `header_timeout` is
  closed (slowloris), and so is a TLS handshake that has not ended by then. Errors
  of the event loop (EMFILE on accept among them) are logged at most once per
  `_LOG_EVERY` seconds, with a count, without tracebacks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import resource
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import SnapferryError, UsageError
from .httpsec import Security, TlsReloader

log = logging.getLogger("snapferry")


_STARTUP_WAIT = 30.0
_LOG_EVERY = 10.0
_GRACE = 1.0  # seconds a new connection is not evicted for being idle
_GRACEFUL_SHUTDOWN = 7  # seconds the stop waits for requests in progress (VictoriaMetrics' default)


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 1000
    header_timeout: float = 5.0  # VictoriaMetrics' ReadHeaderTimeout
    idle_timeout: float = 5.0  # keep-alive between requests
    shutdown_delay: float = 0.0  # -http.shutdownDelay: /health is non-OK this long before the stop


class Front:
    """/health, then authentication, then the app."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.security.headers:
            send = self._with_headers(send)
        path = scope["path"]
        if path == "/health":
            if self.draining:
                await _reply(send, 503, b"draining before shutdown", "text/plain")
            else:
                await _reply(send, 200, b"OK", "text/plain")
            return
        s = self.security
        if path == "/metrics" and s.metrics_auth_key is not None:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = query.get("authKey", [""])[0].encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, s.metrics_auth_key.bytes()):
                await _json(send, 401, "the authKey query parameter does not match -metricsAuthKey; "
                                       "pass /metrics?authKey=...")
                return
        elif s.password is not None and not self._basic_ok(scope):
            await _json(send, 401, "authentication required: send HTTP basic auth with "
                                   "-httpAuth.username and -httpAuth.password",
                        [(b"www-authenticate", b'Basic realm="snapferry"')])
            return
        await self.app(scope, receive, send)

    def _with_headers(self, send: Send) -> Send:
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.security.headers]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sending

    def _basic_ok(self, scope: Scope) -> bool:
        assert self.security.password is not None
        header = dict(scope["headers"]).get(b"authorization", b"")
        kind, _, encoded = header.partition(b" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            user, password = b"", b""
        # both compared, always: which one was wrong is not told by the time taken
        ok_user = hmac.compare_digest(user, self.security.username.encode("utf-8"))
        ok_password = hmac.compare_digest(password, self.security.password.bytes())
        return kind.lower() == b"basic" and ok_user & ok_password


async def _reply(send: Send, status: int, body: bytes, ctype: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _reply(send, status, json.dumps({"error": message}).encode(), "application/json", headers)


class _Bound:
    """The open connections of one server, oldest first."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.cap = limits.max_connections if soft == resource.RLIM_INFINITY else \
            max(4, min(limits.max_connections, soft // 2))
        self.open: dict[_Protocol, None] = {}
        # asyncio accepts up to `backlog` connections per loop tick before any of them reaches
        # the bound (and an evicted one frees its descriptor a tick later): the batch is kept
        # small beside the bound so that the peak stays under the descriptor limit
        self.batch = max(8, min(128, self.cap // 4))

    def admit(self, proto: _Protocol) -> None:
        """Over the bound, the oldest idle connection goes, or else the oldest of all: a
        flood of requests that never finish their bodies must not lock the probes out."""
        if len(self.open) >= self.cap:
            # idle long enough to have spoken: a connection accepted in this same batch has not
            # had its bytes read yet, and evicting it would let a flood evict the probes
            now = proto.opened_at
            victim = next((p for p in self.open if p.idle and now - p.opened_at >= _GRACE), next(iter(self.open)))
            victim.transport.abort()
            self.open.pop(victim, None)
        self.open[proto] = None


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with the bound and the header timeout (`bound` is set on a
    subclass per server)."""

    bound: _Bound

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self.opened_at = self.loop.time()
        self.bound.admit(self)
        self._await_head()

    @property
    def idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        seen = self.cycle

        def expire() -> None:
            if self.cycle is seen and self.idle:  # no new request head arrived
                self.transport.abort()

        self._timer = self.loop.call_later(self.bound.limits.header_timeout, expire)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._timer is not None:
            self._timer.cancel()
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.bound.open.pop(self, None)
        if getattr(self, "_timer", None) is not None:
            assert self._timer is not None
            self._timer.cancel()
        super().connection_lost(exc)


class _RateLimitedLog:
    def __init__(self) -> None:
        self.last = -_LOG_EVERY
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < _LOG_EVERY:
            self.suppressed += 1
            return
        exc = context.get("exception")
        more = f" ({self.suppressed} more since the last such line)" if self.suppressed else ""
        log.error("HTTP server: %s%s%s", context.get("message", "error"), f": {exc}" if exc else "", more)
        self.last, self.suppressed = now, 0


class _RateLimitedRecords(logging.Filter):
    """uvicorn's own warnings (one per malformed request: a flood of garbage would be a
    flood of lines): each message at most once per _LOG_EVERY seconds, without traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = str(record.msg), time.monotonic()
        if now - self.last.get(key, -_LOG_EVERY) < _LOG_EVERY:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        more = self.suppressed.pop(key, 0)
        if more:
            record.msg = f"{record.msg} ({more} more since the last such line)"
        record.exc_info, record.exc_text = None, None
        self.last[key] = now
        return True


_UVICORN_LOG = logging.getLogger("uvicorn.error")


class HttpServer:
    """`app` behind `Front` on a socket bound at construction, served on a thread."""

    def __init__(self, app: ASGIApp, host: str, port: int, security: Security, limits: Limits | None = None,
                 what: str = "the HTTP server") -> None:
        self.security = security
        self.limits = limits or Limits()
        self.front = Front(app, security)
        self.what = what
        self._tls = TlsReloader(security.tls) if security.tls else None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1024)
        except OSError as e:
            sock.close()
            raise UsageError(f"{what} cannot listen on {host}:{port}: {e.strerror}; pick a free address") from e
        self.sock = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._records = _RateLimitedRecords()
        self._loop_errors = _RateLimitedLog()

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"{self.security.scheme}://{where}"

    def start(self) -> None:
        bound = _Bound(self.limits)
        proto = type("_BoundProtocol", (_Protocol,), {"bound": bound})
        tls = self._tls
        # log_config=None: uvicorn's records go to our handlers, and it configures no logging of its own
        config = uvicorn.Config(
            self.front, lifespan="off", access_log=False, log_config=None, log_level="warning",
            server_header=False, http=proto, timeout_keep_alive=int(max(1, self.limits.idle_timeout)),
            backlog=bound.batch, timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
            ssl_context_factory=(lambda _c, _d: tls.context) if tls is not None else None,
        )
        server = self._server = uvicorn.Server(config)
        _UVICORN_LOG.addFilter(self._records)
        self._thread = threading.Thread(target=self._serve, name="snapferry-http", daemon=True)
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(_STARTUP_WAIT / 0.01)):
            if server.started or not self._thread.is_alive():
                break
            waited.wait(0.01)
        if not server.started:
            self.stop()
            raise SnapferryError(f"{self.what} on {self.url} did not start; see the log above")

    def _serve(self) -> None:
        assert self._server is not None
        server = self._server

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(self._loop_errors)
            # A TLS handshake holds a descriptor before the protocol (and so the bound) sees the
            # connection; asyncio waits 60 s for it by default and uvicorn passes no timeout: this
            # loop is ours alone, so its create_server gets the header timeout for handshakes.
            create = loop.create_server

            async def create_server(*args: Any, **kwargs: Any) -> asyncio.Server:
                if kwargs.get("ssl") is not None:
                    kwargs["ssl_handshake_timeout"] = self.limits.header_timeout
                return await create(*args, **kwargs)

            setattr(loop, "create_server", create_server)  # noqa: B010 (an instance attribute, on purpose)
            await server.serve(sockets=[self.sock])

        asyncio.run(main())

    def drain(self) -> None:
        """From now on /health answers 503 (the shutdown delay)."""
        self.front.draining = True

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STARTUP_WAIT)
        _UVICORN_LOG.removeFilter(self._records)
        self.sock.close()
        if self._loop_errors.suppressed:
            log.error("HTTP server: %d more errors like the last one before it stopped", self._loop_errors.suppressed)
