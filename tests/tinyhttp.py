"""A tiny real HTTP/1.1 server on 127.0.0.1 whose answers a test writes by hand.

For what the real object stores cannot be made to do on cue: stall, answer 503 to
everything, close a keep-alive connection without saying so, send a chunked body.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

Handler = Callable[[socket.socket, bytes], bool]  # (conn, request head) -> keep the connection


class Server:
    """Accepts connections and answers each request with `handler`; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests.append(head)
                try:
                    if not self.handler(conn, head):
                        return
                except OSError:
                    return

    def close(self) -> None:
        self.sock.close()



def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """A handler that answers every request with status and body, then closes."""

    def handle(conn: socket.socket, head: bytes) -> bool:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode()
            + body
        )
        return False

    return handle


def stall(release: threading.Event) -> Handler:
    """A handler that reads the request and never answers (until release is set)."""

    def handle(conn: socket.socket, head: bytes) -> bool:
        release.wait()
        return False

    return handle


@pytest.fixture
def server_factory() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def make(handler: Handler) -> Server:
        s = Server(handler)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
