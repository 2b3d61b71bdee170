"""Ranged GETs over plain HTTP, read from the socket with as few copies and calls as we can.

A restore from an `http://` endpoint (an S3-compatible store inside the cluster)
spends most of its CPU moving bytes. Bodies of files written with direct I/O
(64 KiB and more, see directio.py) are read with one recv(MSG_WAITALL) per pool
buffer (`Response.readinto`); bodies of smaller files, written through the page
cache, move socket -> pipe -> file with splice(2) (`Response.read_to_file`), no
byte through user space and the GIL released for the whole move.

Only the little HTTP/1.1 a ranged GET needs: one request per call on a
keep-alive connection, a response with a Content-Length. TLS endpoints keep
the urllib3 path, since the kernel cannot decrypt what it splices. Nothing is
retried here (retry.py decides); the one exception is a pooled keep-alive socket
the server closed while it sat idle, which is not a failed request: it is
dropped, and the request goes out once on a new connection.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import threading
from contextlib import suppress

from ...errors import RemoteError, TransientRemoteError

_HEAD_MAX = 64 * 1024
_PIPE_SIZE = 1024 * 1024
# splice(2) flags: move pages instead of copying where the kernel can; never block
# on the pipe (it is always drained before the next splice).
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

SUPPORTED = hasattr(os, "splice")


class Connections:
    """Idle keep-alive sockets to one host:port, at most `maxsize` kept."""

    def __init__(self, host: str, port: int, connect_timeout: float, read_timeout: float, maxsize: int) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[socket.socket] = []
        self._maxsize = max(1, maxsize)
        self._lock = threading.Lock()

    def get(self, fresh: bool = False) -> tuple[socket.socket, bool]:
        """A socket and whether it was reused (a reused one may have been closed by the
        server); `fresh`: a new connection, whatever the pool holds."""
        while not fresh:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                break
            if _closed_by_peer(sock):
                sock.close()  # the server timed the idle connection out
                continue
            sock.settimeout(self.read_timeout)  # a body read may have left it blocking
            return sock, True
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # A timeout makes the socket non-blocking underneath; splice then answers EAGAIN
        # and the body loop polls with the read timeout itself.
        sock.settimeout(self.read_timeout)
        return sock, False

    def put(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(sock)
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for s in idle:
            s.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket is readable only when the server closed it (or sent junk)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def get(conns: Connections, target: str, host_header: str, headers: dict[str, str], what: str) -> Response:
    """Send `GET target` and read the response head."""
    return request(conns, "GET", target, host_header, headers, what)


# Up to this size the body goes out in the same send as the head: one syscall, one segment.
_JOIN_BODY = 64 * 1024


def request(conns: Connections, method: str, target: str, host_header: str, headers: dict[str, str], what: str,
            body: bytes | bytearray = b"") -> Response:
    """Send one request (with `body`, whose Content-Length the caller put in `headers`) and
    read the response head. It is sent again once, on a new connection, when a pooled socket
    turns out closed by the server before it answered: the race _closed_by_peer cannot see
    (the server saw no request, so a PUT is not sent twice to one that did)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if len(body) <= _JOIN_BODY:
        head, body = head + body, b""
    # Not a retry (those are remotes/retrying.py's, by --retries): a pooled socket the server
    # closed while idle is a connection to replace, as urllib3 replaces one; a request that
    # failed on a fresh connection is a TransientRemoteError for the retry layer.
    for connection in range(2):
        try:
            # The second connection is a new one: the pool's other idle sockets may have
            # been closed by the same server at the same moment (a restart, a proxy's reset).
            sock, reused = conns.get(fresh=connection > 0)
        except OSError as e:
            raise TransientRemoteError(
                f"{what} failed: cannot connect to {conns.host}:{conns.port}: {e}"
            ) from e
        try:
            sock.sendall(head)
            if body:
                sock.sendall(body)
            return Response(conns, sock, what)
        except _StaleConnection:
            sock.close()
            if reused:
                continue
            raise TransientRemoteError(f"{what} failed: {conns.host}:{conns.port} closed the connection") from None
        except OSError as e:
            sock.close()
            if reused and e.errno in (errno.EPIPE, errno.ECONNRESET):
                continue
            raise TransientRemoteError(f"{what} failed: {conns.host}:{conns.port}: {e}") from e
        except BaseException:
            sock.close()
            raise
    raise AssertionError("unreachable")


class _StaleConnection(Exception):
    """The server closed an idle connection before answering."""


class Response:
    """One response; the body is read with readinto or moved into a file with read_to_file."""

    def __init__(self, conns: Connections, sock: socket.socket, what: str) -> None:
        self._conns = conns
        self._sock: socket.socket | None = sock
        self._what = what
        self._pipe: tuple[int, int] | None = None
        head, self._pending = self._read_head(sock)
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise TransientRemoteError(f"{what} failed: not an HTTP response: {status_line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        for line in rest.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                self.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        self._keep = self.headers.get("connection", "").lower() != "close" and parts[0] != b"HTTP/1.0"
        cl = self.headers.get("content-length")
        if self.status in (204, 304):
            cl = "0"  # no body, by definition (a DELETE's answer): the connection stays usable
        if "chunked" in self.headers.get("transfer-encoding", "").lower() or cl is None or not cl.isdigit():
            # Object stores answer GETs with a length; without one the body has no end we trust.
            self._keep = False
            self.length = -1
        else:
            self.length = int(cl)
        self.left = self.length
        self.done = 0
        self._blocking = False

    def _read_head(self, sock: socket.socket) -> tuple[bytes, bytes]:
        buf = bytearray()
        while True:
            try:
                chunk = sock.recv(8192)  # the head and at most a few KiB of body
            except TimeoutError:
                raise TransientRemoteError(
                    f"{self._what} failed: no answer within {self._conns.read_timeout:g} s"
                ) from None
            except (ConnectionResetError, BrokenPipeError):
                if not buf:
                    raise _StaleConnection() from None
                raise
            if not chunk:
                if not buf:
                    raise _StaleConnection()
                raise TransientRemoteError(f"{self._what} failed: the connection closed inside the response head")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                return bytes(buf[:end]), bytes(buf[end + 4 :])
            if len(buf) > _HEAD_MAX:
                raise TransientRemoteError(f"{self._what} failed: the response head is over {_HEAD_MAX} bytes")

    # -- the body ---------------------------------------------------------------

    def read_small(self, limit: int = 4096) -> bytes:
        """Up to `limit` bytes of an (error) body, then the connection is dropped."""
        out = bytearray(self._pending[:limit])
        self._pending = b""
        sock = self._sock
        # Without a length only what came with the head is taken: waiting for more
        # could wait for the read timeout.
        want = min(limit, self.length) if self.length >= 0 else 0
        with suppress(OSError):
            while sock is not None and len(out) < want:
                chunk = sock.recv(want - len(out))
                if not chunk:
                    break
                out += chunk
        self._keep = False
        self.close()
        return bytes(out)

    def read_body(self, limit: int = 1024 * 1024) -> bytes:
        """The whole (small) body of an answer with a length, and the connection back to the
        pool; a body without a length, or over `limit`, ends the connection (read_small)."""
        if self.length < 0 or self.length > limit:
            return self.read_small(limit)
        out = bytearray(self._pending[: self.length])
        self._pending = b""
        sock = self._sock
        try:
            while sock is not None and len(out) < self.length:
                chunk = sock.recv(self.length - len(out))
                if not chunk:
                    raise self._broken("the connection closed")
                out += chunk
        except TimeoutError:
            self.close()
            raise self._broken(f"no byte for {self._conns.read_timeout:g} s") from None
        except OSError as e:
            self.close()
            raise self._broken(str(e)) from e
        except BaseException:
            self.close()
            raise
        self._advance(len(out))
        self.close()
        return bytes(out)

    def readinto(self, buf: memoryview) -> int:
        """Fill buf from the body: one recv(MSG_WAITALL) per call, not one per arriving segment.

        Each recv on a socket with a Python timeout is a poll plus a recv, and each lets the
        GIL go and come back; a 4 MiB block used to take ~20 of them (strace of a 3 GiB
        restore: 290,000 futex calls). A blocking socket with SO_RCVTIMEO keeps the read
        timeout, in the kernel.
        """
        if self.left <= 0 or len(buf) == 0 or self._sock is None:
            return 0
        want = min(len(buf), self.left)
        if self._pending:
            n = min(want, len(self._pending))
            buf[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        else:
            if not self._blocking:
                self._block_with_timeout(self._sock)
            try:
                n = self._sock.recv_into(buf[:want], want, socket.MSG_WAITALL)
            except (BlockingIOError, TimeoutError):
                raise self._broken(f"no byte for {self._conns.read_timeout:g} s") from None
            except OSError as e:
                raise self._broken(str(e)) from e
            if not n:
                raise self._broken("the connection closed")
        self._advance(n)
        return n

    def _block_with_timeout(self, sock: socket.socket) -> None:
        t = self._conns.read_timeout
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(t), int(t % 1 * 1e6)))
        self._blocking = True

    def read_to_file(self, fd: int, offset: int, n: int) -> int:
        """Move up to n body bytes into fd at offset without copying them through Python.

        Errors reading the socket raise TransientRemoteError (worth a retry from the
        first missing byte); errors writing the file raise OSError as they are.
        """
        if self.left <= 0 or n <= 0 or self._sock is None:
            return 0
        n = min(n, self.left)
        if self._pending:
            k = min(n, len(self._pending))
            os.pwrite(fd, self._pending[:k], offset)  # a few KiB that arrived with the head
            self._pending = self._pending[k:]
            self._advance(k)
            return k
        rfd, wfd = self._pipe or self._make_pipe()
        sfd = self._sock.fileno()
        moved = 0
        while moved < n:
            try:
                got = os.splice(sfd, wfd, min(n - moved, _PIPE_SIZE), flags=_SPLICE_FLAGS)
            except BlockingIOError:
                if moved:
                    break  # hand back what arrived; the caller comes back for more
                self._wait_readable()
                continue
            except OSError as e:
                raise self._broken(str(e)) from e
            if not got:
                if moved:
                    break
                raise self._broken("the connection closed")
            written = 0
            while written < got:
                # The pipe holds `got` bytes; a file error leaves them there, so the
                # pipe and the connection are dropped with it (close()).
                try:
                    written += os.splice(rfd, fd, got - written, offset_dst=offset + moved + written)
                except OSError:
                    self._keep = False
                    raise
            moved += got
        self._advance(moved)
        return moved

    def _wait_readable(self) -> None:
        assert self._sock is not None
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(self._conns.read_timeout * 1000):
            raise self._broken(f"no byte for {self._conns.read_timeout:g} s")

    def _make_pipe(self) -> tuple[int, int]:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        with suppress(OSError):
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # fewer splices; 64 KiB if refused
        self._pipe = (rfd, wfd)
        return self._pipe

    def _advance(self, n: int) -> None:
        self.left -= n
        self.done += n

    def _broken(self, why: str) -> TransientRemoteError:
        self._keep = False
        return TransientRemoteError(
            f"{self._what}: the download broke after {self.done} of {self.length} bytes: {why}"
        )

    def close(self) -> None:
        """Back to the pool after a complete body; dropped otherwise (it holds unread bytes)."""
        if self._pipe is not None:
            for pfd in self._pipe:
                os.close(pfd)
            self._pipe = None
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._keep and self.left == 0 and not self._pending:
            self._conns.put(sock)
        else:
            sock.close()


def check_body_length(resp: Response, what: str) -> None:
    if resp.length < 0:
        resp.close()
        raise RemoteError(f"{what} failed: the server sent no Content-Length for a ranged GET")
