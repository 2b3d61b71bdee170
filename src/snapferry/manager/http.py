"""The manager's HTTP API and /metrics, in vmbackupmanager's shapes (Starlette on uvicorn, on a thread).

Routes (vmbackupmanager's): `GET/POST /api/v1/backups`, `GET/PUT /api/v1/backups/<name>`,
`POST/GET/DELETE /api/v1/restore`, `GET /health`, `GET /metrics`. Served by
snapferry.httpserve (authentication, TLS, connection bounds, /health). Every error is
JSON `{"error": "..."}` with a 4xx for the caller's mistakes; a request is fully
validated (name against the layout, body shape) before it changes anything.

The endpoints are async only to read bodies; the manager's blocking work (listing,
locking, marks) goes to Starlette's thread pool, and runs start on the manager's
own thread (`Manager.trigger`), so a slow remote never stalls /health or /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import BadBackupError, LockedError, SnapferryError, UsageError
from ..httpsec import Security
from ..httpserve import HttpServer, Limits
from .catalog import NoSuchBackupError
from .layout import DATED_TYPES, BackupType, parse_backup_name
from .marks import MarkSelection
from .metrics import CONTENT_TYPE, Metrics, config_flags
from .service import Manager, ManagerEvents, NoEvents

log = logging.getLogger("snapferry")

MAX_BODY = 64 * 1024  # the API's bodies are a few dozen bytes
BODY_TIMEOUT = 10.0  # seconds for a whole body of at most MAX_BODY
DEFAULT_HOST = "127.0.0.1"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListenAddr:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen_addr(value: str) -> ListenAddr:
    """`host:port`, `[v6]:port` or `:port`; an empty host is 127.0.0.1, never every interface."""
    host, sep, port_s = value.strip().rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not sep or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise UsageError(f"--http-listen-addr {value!r} is not host:port, e.g. 127.0.0.1:8300")
    return ListenAddr(host, int(port_s))


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _status_of(e: SnapferryError) -> int:
    if isinstance(e, NoSuchBackupError):
        return 404
    if isinstance(e, UsageError | BadBackupError):
        return 400
    if isinstance(e, LockedError):
        return 409
    return 500


async def _call(fn: Callable[[], T], failed: Callable[[], None] | None = None) -> T:
    """Run blocking manager work on the thread pool; its errors become API errors, and
    `failed` hears of those that are not the caller's mistake."""
    try:
        return await run_in_threadpool(fn)
    except SnapferryError as e:
        status = _status_of(e)
        if status >= 500:
            log.error("API request failed: %s", e)
            if failed is not None:
                failed()
        raise ApiError(status, str(e)) from e


async def _json_object(
    request: Request, keys: dict[str, type], optional: dict[str, type] | None = None
) -> dict[str, Any]:
    """The body as a JSON object with exactly `keys` (and any of `optional`) of the given types."""
    optional = optional or {}
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
    raw = bytearray()

    async def read() -> None:
        async for chunk in request.stream():  # a chunked body is cut off at the limit, never held whole
            raw.extend(chunk)
            if len(raw) > MAX_BODY:
                raise ApiError(413, f"the request body is over {MAX_BODY} bytes")

    try:  # a body sent a byte at a time would hold the connection and a task for ever
        await asyncio.wait_for(read(), BODY_TIMEOUT)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {BODY_TIMEOUT:g} s; send it whole") from None
    except ClientDisconnect:  # the client left (or the connection bound closed it): nobody to answer
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    want = ", ".join([f'"{k}": {t.__name__}' for k, t in keys.items()]
                     + [f'optional "{k}": {t.__name__}' for k, t in optional.items()])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...]]]] nested deep
        raise ApiError(400, f"the body is not JSON; send {{{want}}}") from None
    # bool is not an int here and an int is not a bool: {"locked": 1} is refused
    types = {**keys, **optional}
    if (not isinstance(data, dict) or not set(keys) <= set(data) <= set(types)
            or any(type(data[k]) is not types[k] for k in data)):
        raise ApiError(400, f"the body must be exactly {{{want}}}")
    return data


def _selection(sel: MarkSelection) -> dict[str, str]:
    return {k: v for k, v in (("partitions", sel.partitions), ("since", sel.since)) if v is not None}


def _backup_name(value: str) -> str:
    try:
        return str(parse_backup_name(value))
    except UsageError as e:
        raise ApiError(400, str(e)) from None


def build_app(manager: Manager, metrics: Metrics) -> Starlette:
    async def metrics_page(request: Request) -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def list_backups(request: Request) -> Response:
        infos = await _call(manager.list_backups)
        return JSONResponse([i.to_dict() for i in infos])

    async def start_backup(request: Request) -> Response:
        if not manager.trigger():
            raise ApiError(400, "backups latest is in progress; retry when vm_backup_in_flight is 0")
        return JSONResponse({}, status_code=201)

    async def get_backup(request: Request) -> Response:
        name = _backup_name(request.path_params["name"])
        info = await _call(lambda: manager.backup_info(name))
        return JSONResponse(info.to_dict())

    async def update_backup(request: Request) -> Response:
        name = _backup_name(request.path_params["name"])
        if name == BackupType.LATEST.value:
            raise ApiError(400, "latest is never deleted by retention and cannot be locked; lock a dated backup")
        body = await _json_object(request, {"locked": bool})
        info = await _call(lambda: manager.set_locked(name, body["locked"]))
        return JSONResponse(info.to_dict())

    async def create_mark(request: Request) -> Response:
        body = await _json_object(request, {"backup": str}, {"partitions": str, "since": str})
        sel = MarkSelection(body.get("partitions"), body.get("since"))  # a partial restore
        # vmbackupmanager's `restore create s3://other/vm-0/weekly/2025-17` posts a full URL
        # (a backup of another --dst, e.g. another cluster's): marks.create validates it and
        # checks that it is complete, as it does a name of the layout.
        value = body["backup"].strip()
        name = value if "://" in value else _backup_name(value)
        await _call(lambda: manager.restore_mark_create(name, sel), metrics.restore_state_failed)
        written = await _call(manager.restore_mark_selection, metrics.restore_state_failed)  # as stored: sorted
        return JSONResponse({"backup": name, **_selection(written)}, status_code=201)

    async def get_mark(request: Request) -> Response:
        value = await _call(manager.restore_mark_get, metrics.restore_state_failed)
        # {} without a mark, as `snapferry manager restore get` prints
        if value is None:
            return JSONResponse({})
        sel = await _call(manager.restore_mark_selection, metrics.restore_state_failed)
        return JSONResponse({"backup": value, **_selection(sel)})

    async def delete_mark(request: Request) -> Response:
        await _call(manager.restore_mark_delete, metrics.restore_state_failed)
        return JSONResponse({})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        if exc.status_code == 404:
            return _error(404, f"no such endpoint {request.url.path}; see docs/manager.md")
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("API %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    routes = [
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/api/v1/backups", list_backups, methods=["GET"]),
        Route("/api/v1/backups", start_backup, methods=["POST"]),
        Route("/api/v1/backups/{name:path}", get_backup, methods=["GET"]),
        Route("/api/v1/backups/{name:path}", update_backup, methods=["PUT"]),
        Route("/api/v1/restore", create_mark, methods=["POST"]),
        Route("/api/v1/restore", get_mark, methods=["GET"]),
        Route("/api/v1/restore", delete_mark, methods=["DELETE"]),
    ]
    return Starlette(routes=routes, exception_handlers={
        ApiError: api_error, HTTPException: http_error, Exception: server_error,
    })


class _Fanout:
    """Events to the metrics and to whatever observer the manager already had."""

    def __init__(self, *observers: ManagerEvents) -> None:
        self.observers = observers

    def run_started(self, type: BackupType) -> None:
        for o in self.observers:
            o.run_started(type)

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
        for o in self.observers:
            o.backup_done(type, ok, seconds, uploaded_bytes)

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
        for o in self.observers:
            o.retention_done(ok, seconds, deleted)


class ApiServer:
    """The API on an HttpServer: uvicorn on a thread of its own, on a socket bound at start."""

    def __init__(self, manager: Manager, addr: ListenAddr, security: Security | None = None,
                 limits: Limits | None = None) -> None:
        self.manager = manager
        self.addr = addr
        self.security = security or Security()
        self.limits = limits or Limits()
        events = manager.events
        if isinstance(events, Metrics):
            self.metrics = events
        else:  # the service made none: ours, beside whatever observer the manager has
            self.metrics = Metrics()
            manager.events = self.metrics if isinstance(events, NoEvents) else _Fanout(events, self.metrics)
        c = manager.config
        self.metrics.bind(
            [BackupType.LATEST, *c.enabled_types()],
            in_flight=lambda: manager.in_flight, list_backups=manager.list_backups,
            clock=lambda: manager.clock.now().timestamp(),
            flags=config_flags(
                {t: t not in c.enabled_types() for t in DATED_TYPES}, c.keep(),
                c.backup_interval.total_seconds() if c.backup_interval else 0, c.backup_schedule_timezone,
                c.run_on_start, c.disable_scheduled_backups, c.concurrency, c.max_bytes_per_second,
            ),
        )
        self._http: HttpServer | None = None
        self._retries = contextlib.ExitStack()

    @property
    def url(self) -> str:
        assert self._http is not None
        return self._http.url

    def start(self) -> None:
        try:
            http = HttpServer(build_app(self.manager, self.metrics), self.addr.host, self.addr.port,
                              self.security, self.limits, "the API")
        except UsageError as e:
            raise UsageError(f"{e} (--http-listen-addr)") from e
        self._http = http
        http.start()
        self._retries.enter_context(self.metrics.retries.attached())
        log.info("API and /metrics on %s%s", self.url,
                 " (basic auth)" if self.security.password is not None else "")

    def drain(self) -> None:
        """/health answers 503 from now on: the shutdown delay before stop()."""
        if self._http is not None:
            self._http.drain()

    def stop(self) -> None:
        self._retries.close()
        if self._http is not None:
            self._http.stop()


def start_server(manager: Manager, listen_addr: str, security: Security | None = None,
                 limits: Limits | None = None) -> ApiServer:
    """Serve the API and /metrics on a thread (the service command's hook)."""
    server = ApiServer(manager, parse_listen_addr(listen_addr), security, limits)
    server.start()
    return server
