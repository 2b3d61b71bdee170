"""A fault-injecting HTTP/1.1 proxy for object-store tests (user space: no netem here).

It sits on 127.0.0.1 between snapferry and a real S3 server (SeaweedFS or
moto from tests/servers.py). Most requests are forwarded faithfully: the
request head and body as received (Content-Length or chunked, trailers
included; `Expect: 100-continue` is answered by the proxy itself), the
response head and body as the server sent them, keep-alive kept on both
sides. On a seeded random schedule, with a configurable fault rate, a request
gets one of these faults instead:

* ``500``, ``503``, ``429``: an S3-style XML error (InternalError, SlowDown)
  without forwarding the request;
* ``reset``: the request is forwarded, then the response is cut mid-body by
  a TCP RST (before any byte when the body is empty);
* ``truncate``: the request is forwarded, the full head (with its
  Content-Length) and only part of the body are sent, then the connection
  is closed cleanly (FIN); an empty body cannot be truncated, and that
  request gets a ``close`` (connection closed before the response) instead;
* ``stall``: the request is forwarded, then the proxy sends nothing (or half
  the body) for ``stall_seconds`` and closes the connection; a client whose
  read timeout is shorter gives up first, which is counted as
  ``stall_abandoned``;
* ``drop``: the connection is closed after the request, which never reaches
  the server;
* ``flip`` (never by default): the whole response is sent with one byte of its
  body inverted, as a bad NIC or memory would: only a checksum can see it.

Counters (``stats``) say how many requests passed and which faults fired, so
tests can assert that the faults really happened.

Run by hand: python -m tests.faultproxy --upstream http://127.0.0.1:8333 --rate 0.05
"""

from __future__ import annotations

import argparse
import contextlib
import random
import select
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

ERROR_KINDS = ("500", "503", "429")
DEFAULT_KINDS = ("500", "503", "429", "reset", "truncate", "stall")
ALL_KINDS = (*DEFAULT_KINDS, "drop", "flip")
_MAX_LINE = 65536

_ERRORS = {
    "500": (500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
    "429": (429, "Too Many Requests", "SlowDown", "Please reduce your request rate."),
}


class _ClientGone(Exception):
    """The client closed its side; end this connection quietly."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes  # raw, with chunked framing when the request was chunked
    expected_continue: bool = False  # the client sent Expect: 100-continue

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.target).query, keep_blank_values=True)


@dataclass
class Response:
    status: int
    head: bytes  # status line and headers, as received
    body: bytes  # raw, with chunked framing when chunked
    close: bool  # the connection must close after it


@dataclass
class FaultPlan:
    """Which requests fail and how. Requests that `match` rejects are never faulted."""

    rate: float = 0.05
    kinds: Sequence[str] = DEFAULT_KINDS
    seed: int = 0
    stall_seconds: float = 3.0
    match: Callable[[Request], bool] | None = None
    after: int = 0  # the first `after` requests always pass
    limit: int = 0  # at most this many faults (0: no limit)

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in ALL_KINDS]
        if bad or not self.kinds:
            raise ValueError(f"unknown fault kinds {bad}; use some of {', '.join(ALL_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate {self.rate} is not in [0, 1]")


@dataclass
class Stats:
    requests: int = 0  # requests read from clients
    forwarded: int = 0  # requests sent to the server
    connections: int = 0  # client connections accepted
    upstream_connections: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    stall_abandoned: int = 0  # stalls during which the client gave up (its read timeout fired)
    expect_continue: int = 0  # requests that asked for 100-continue (answered by the proxy)
    chunked_requests: int = 0  # requests with a chunked body (forwarded as received)
    errors: list[str] = field(default_factory=list)  # proxy-side failures (not injected)

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())


def ranged_get(req: Request) -> bool:
    """A part download: a GET of an object with a Range header."""
    return req.method == "GET" and req.header("range") is not None


def object_put(req: Request) -> bool:
    """An upload (PUT object or upload part; not a bucket creation)."""
    return req.method == "PUT" and req.path.strip("/").count("/") >= 1


class FaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream {upstream!r} must be http://host:port")
        self.upstream = (u.hostname, u.port or 80)
        self._plan = plan or FaultPlan(rate=0.0)
        self._rng = random.Random(self._plan.seed)
        self._decided = 0  # faults decided under the current plan
        self._lock = threading.Lock()
        self.stats = Stats()
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control ----------------------------------------------------------------
    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._decided = 0

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def start(self) -> FaultProxy:
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join(5)
        for t in list(self._threads):
            t.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing -----------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)  # closing a socket does not wake a blocked accept()
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.stats.connections += 1
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(conn,), name="faultproxy-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _decide(self, req: Request) -> str | None:
        with self._lock:
            self.stats.requests += 1
            self.stats.methods[req.method] += 1
            plan = self._plan
            if req.expected_continue:
                self.stats.expect_continue += 1
            if _is_chunked(req.headers):
                self.stats.chunked_requests += 1
            if self.stats.requests <= plan.after or plan.rate <= 0:
                return None
            if plan.match is not None and not plan.match(req):
                return None
            if plan.limit and self._decided >= plan.limit:
                return None
            if self._rng.random() >= plan.rate:
                return None
            self._decided += 1
            return self._rng.choice(list(plan.kinds))

    def _count(self, kind: str) -> None:
        with self._lock:
            self.stats.faults[kind] += 1

    def _serve(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb")
        up: _Upstream | None = None
        try:
            while not self._closing.is_set():
                req = _read_request(rfile, conn)
                if req is None:
                    return
                kind = self._decide(req)
                client_close = (req.header("connection") or "").lower() == "close" or req.version == "HTTP/1.0"
                if kind in ERROR_KINDS:
                    self._count(kind)
                    conn.sendall(_error_response(kind, req, client_close))
                    if client_close:
                        return
                    continue
                if kind == "drop":
                    self._count("drop")
                    _reset(conn)
                    return
                if up is None:
                    up = _Upstream(self.upstream, self)
                resp = up.exchange(req)
                if resp is None:
                    # The server is unreachable: a plain 502, as any proxy would answer.
                    conn.sendall(_plain_response(502, "Bad Gateway", b"upstream unreachable\n", True))
                    return
                if resp.close:
                    up.close()
                    up = None
                if kind is None:
                    conn.sendall(resp.head + resp.body)
                    if resp.close or client_close:
                        return
                    continue
                self._fault(kind, conn, resp)
                return
        except _ClientGone:
            return
        except OSError:
            return
        except Exception as e:  # a proxy bug must be visible to the tests
            with self._lock:
                self.stats.errors.append(f"{type(e).__name__}: {e}")
        finally:
            if up is not None:
                up.close()
            with contextlib.suppress(OSError):
                rfile.close()
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._conns.discard(conn)

    def _fault(self, kind: str, conn: socket.socket, resp: Response) -> None:
        body = resp.body
        with self._lock:
            cut = self._rng.randrange(0, len(body)) if body else 0
            mid_body = self._rng.random() < 0.5
            stall = self._plan.stall_seconds
        if kind == "reset":
            self._count("reset")
            if body:
                conn.sendall(resp.head + body[:cut])
            _reset(conn)
        elif kind == "truncate":
            if not body:
                self._count("close")
                conn.close()
                return
            self._count("truncate")
            conn.sendall(resp.head + body[:cut])
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
        elif kind == "stall":
            self._count("stall")
            if body and mid_body:
                conn.sendall(resp.head + body[: len(body) // 2])
            if _client_leaves_within(conn, stall):
                with self._lock:
                    self.stats.stall_abandoned += 1
            _reset(conn)
        elif kind == "flip":
            self._count("flip")
            flipped = bytearray(body)
            if flipped:
                flipped[cut] ^= 0xFF
            conn.sendall(resp.head + bytes(flipped))
        else:
            raise ValueError(kind)


class _Upstream:
    """One keep-alive connection to the server, reopened when the server closed it."""

    def __init__(self, addr: tuple[str, int], proxy: FaultProxy) -> None:
        self.addr = addr
        self.proxy = proxy
        self.sock: socket.socket | None = None
        self.rfile: BinaryIO | None = None

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.addr, timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        with self.proxy._lock:
            self.proxy.stats.upstream_connections += 1

    def close(self) -> None:
        if self.rfile is not None:
            with contextlib.suppress(OSError):
                self.rfile.close()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.rfile = None

    def exchange(self, req: Request) -> Response | None:
        head = _request_head(req)
        for attempt in (1, 2):
            fresh = self.sock is None
            try:
                if fresh:
                    self._connect()
                assert self.sock is not None and self.rfile is not None
                self.sock.sendall(head + req.body)
                with self.proxy._lock:
                    self.proxy.stats.forwarded += 1
                resp = _read_response(self.rfile, req.method)
            except (OSError, _ClientGone):
                resp = None
            if resp is not None:
                return resp
            self.close()
            # A kept-alive connection the server had closed: retry once on a new one.
            if fresh or attempt == 2:
                return None
        return None


# -- HTTP/1.1 framing ------------------------------------------------------------


def _readline(f: BinaryIO) -> bytes:
    line = f.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ValueError("header line too long")
    return line


def _read_exact(f: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        b = f.read(min(left, 1 << 20))
        if not b:
            raise _ClientGone()
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def _read_headers(f: BinaryIO) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = _readline(f)
        if not line:
            raise _ClientGone()
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


def _read_chunked(f: BinaryIO) -> bytes:
    """The raw bytes of a chunked body, trailers and final CRLF included."""
    out: list[bytes] = []
    while True:
        size_line = _readline(f)
        if not size_line:
            raise _ClientGone()
        out.append(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = _readline(f)
                if not trailer:
                    raise _ClientGone()
                out.append(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(out)
        out.append(_read_exact(f, size + 2))


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _is_chunked(headers: list[tuple[str, str]]) -> bool:
    te = _get(headers, "transfer-encoding")
    return te is not None and "chunked" in te.lower()


def _read_request(f: BinaryIO, conn: socket.socket) -> Request | None:
    line = _readline(f)
    while line in (b"\r\n", b"\n"):
        line = _readline(f)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line {line!r}")
    method, target, version = parts
    headers = _read_headers(f)
    expect = (_get(headers, "expect") or "").lower() == "100-continue"
    if expect:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        headers = [(k, v) for k, v in headers if k.lower() != "expect"]
    chunked = _is_chunked(headers)
    body = _read_chunked(f) if chunked else _read_exact(f, int(_get(headers, "content-length") or 0))
    return Request(method, target, version, headers, body, expect)


def _request_head(req: Request) -> bytes:
    lines = [f"{req.method} {req.target} {req.version}"]
    lines += [f"{k}: {v}" for k, v in req.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_response(f: BinaryIO, method: str) -> Response | None:
    while True:
        status_line = _readline(f)
        if not status_line:
            return None
        headers = _read_headers(f)
        status = int(status_line.split(b" ", 2)[1])
        if 100 <= status < 200:
            continue  # informational: not for the client (Expect was answered here)
        break
    head = status_line + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers) + b"\r\n"
    close = (_get(headers, "connection") or "").lower() == "close"
    if method == "HEAD" or status in (204, 304):
        return Response(status, head, b"", close)
    if _is_chunked(headers):
        return Response(status, head, _read_chunked(f), close)
    length = _get(headers, "content-length")
    if length is not None:
        return Response(status, head, _read_exact(f, int(length)), close)
    return Response(status, head, f.read(), True)  # delimited by the close


def _error_response(kind: str, req: Request, close: bool) -> bytes:
    status, reason, code, message = _ERRORS[kind]
    request_id = f"{random.getrandbits(64):016X}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{req.path}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    if req.method == "HEAD":
        body = b""
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/xml",
        f"Content-Length: {len(body)}",
        f"x-amz-request-id: {request_id}",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}",
        "Server: faultproxy",
    ]
    if kind in ("503", "429"):
        head.append("Retry-After: 1")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _plain_response(status: int, reason: str, body: bytes, close: bool) -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\nContent-Type: text/plain\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def _reset(conn: socket.socket) -> None:
    """Close with an RST instead of a FIN: the client sees ECONNRESET."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()


def _client_leaves_within(conn: socket.socket, seconds: float) -> bool:
    """Wait up to `seconds`; True when the client closed its side meanwhile."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        try:
            readable, _, _ = select.select([conn], [], [], left)
        except (OSError, ValueError):
            return True
        if readable:
            try:
                data = conn.recv(65536, socket.MSG_PEEK)
            except OSError:
                return True
            if not data:
                return True
            # The client pipelined more bytes: it is still there; keep stalling.
            time.sleep(min(left, 0.05))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the S3 server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stall-seconds", type=float, default=3.0)
    a = ap.parse_args(argv)
    plan = FaultPlan(rate=a.rate, kinds=tuple(a.kinds.split(",")), seed=a.seed, stall_seconds=a.stall_seconds)
    proxy = FaultProxy(a.upstream, plan, port=a.port).start()
    print(f"fault proxy on {proxy.endpoint} -> {a.upstream}", flush=True)
    try:
        while True:
            time.sleep(10)
            s = proxy.stats
            print(f"requests {s.requests}, faults {dict(s.faults)}", flush=True)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
