"""remotes/s3/plainhttp.py: ranged GETs whose bodies are spliced into files, on real sockets.

A small threaded HTTP server on 127.0.0.1 (tests/tinyhttp.py) plays the object store, so each test
can shape the response (length, framing, early close, stalls, keep-alive).
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from snapferry.errors import RemoteError, TransientRemoteError
from snapferry.remotes.s3 import plainhttp as _http
from tests.tinyhttp import Handler, Server

pytestmark = pytest.mark.skipif(not _http.SUPPORTED, reason="os.splice is Linux-only")

DATA = random.Random(7).randbytes(3 * 1024 * 1024 + 123)

def range_of(head: bytes) -> tuple[int, int]:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"range: bytes="):
            a, b = line.split(b"=", 1)[1].split(b"-")
            return int(a), int(b)
    return 0, len(DATA) - 1


def ranged(conn: socket.socket, head: bytes) -> bool:
    a, b = range_of(head)
    body = DATA[a : b + 1]
    conn.sendall(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\nContent-Range: bytes %d-%d/%d\r\n\r\n"
        % (len(body), a, b, len(DATA)) + body
    )
    return True


def conns_for(server: Server, read_timeout: float = 10.0) -> _http.Connections:
    return _http.Connections("127.0.0.1", server.port, 5.0, read_timeout, 4)


def fetch_to_file(conns: _http.Connections, path: Path, offset: int, length: int, step: int = 1 << 20) -> bytes:
    """GET a range and splice it into a fresh file at the same offset; returns those bytes."""
    r = _http.get(conns, "/obj", "127.0.0.1", {"Range": f"bytes={offset}-{offset + length - 1}"}, "reading obj")
    assert r.status == 206
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        pos = offset
        while r.left > 0:
            n = r.read_to_file(fd, pos, step)
            assert n > 0
            pos += n
        assert pos == offset + length
    finally:
        os.close(fd)
        r.close()
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def test_splices_ranges_into_the_file_at_their_offsets(server_factory: Callable[[Handler], Server],
                                                       tmp_path: Path) -> None:
    srv = server_factory(ranged)
    conns = conns_for(srv)
    target = tmp_path / "t"
    for off, length in ((0, 1), (5, 4096), (1 << 20, 2 << 20), (0, len(DATA))):
        assert fetch_to_file(conns, target, off, length) == DATA[off : off + length]
    # Every complete body returned its connection: one connection served all four GETs.
    assert srv.connections == 1
    assert len(srv.requests) == 4


def test_readinto_reads_the_same_bytes(server_factory: Callable[[Handler], Server]) -> None:
    srv = server_factory(ranged)
    r = _http.get(conns_for(srv), "/obj", "127.0.0.1", {"Range": "bytes=10-200009"}, "reading obj")
    out = bytearray()
    buf = memoryview(bytearray(7000))
    while n := r.readinto(buf):
        out += buf[:n]
    r.close()
    assert bytes(out) == DATA[10:200010]


def test_a_body_cut_short_is_a_transient_error_and_the_connection_is_dropped(
    server_factory: Callable[[Handler], Server], tmp_path: Path
) -> None:
    def cut(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 100000\r\n\r\n" + DATA[:5000])
        return False  # closes the connection 95,000 bytes early

    srv = server_factory(cut)
    conns = conns_for(srv)
    r = _http.get(conns, "/obj", "127.0.0.1", {"Range": "bytes=0-99999"}, "reading obj")
    fd = os.open(tmp_path / "t", os.O_RDWR | os.O_CREAT, 0o644)
    got = 0
    try:
        with pytest.raises(TransientRemoteError, match="broke after 5000 of 100000 bytes"):
            while True:
                got += r.read_to_file(fd, got, 1 << 20)
    finally:
        os.close(fd)
        r.close()
    assert got == 5000
    assert (tmp_path / "t").read_bytes() == DATA[:5000]
    assert conns._idle == []


def test_a_stale_keep_alive_connection_is_replaced(server_factory: Callable[[Handler], Server],
                                                  tmp_path: Path) -> None:
    def once(conn: socket.socket, head: bytes) -> bool:
        ranged(conn, head)
        return False  # the server closes after every answer, without saying so

    srv = server_factory(once)
    conns = conns_for(srv)
    for i in range(3):
        assert fetch_to_file(conns, tmp_path / f"t{i}", 0, 1000) == DATA[:1000]
    assert srv.connections == 3
    assert len(srv.requests) == 3


def test_connection_close_is_honoured(server_factory: Callable[[Handler], Server], tmp_path: Path) -> None:
    def close_header(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Length: 10\r\n\r\n" + DATA[:10])
        return True

    srv = server_factory(close_header)
    conns = conns_for(srv)
    fetch_to_file(conns, tmp_path / "t", 0, 10)
    assert conns._idle == []


def test_a_chunked_answer_is_refused(server_factory: Callable[[Handler], Server]) -> None:
    def chunked(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n")
        return True

    srv = server_factory(chunked)
    r = _http.get(conns_for(srv), "/obj", "127.0.0.1", {}, "reading obj")
    with pytest.raises(RemoteError, match="no Content-Length"):
        _http.check_body_length(r, "reading obj")


def test_error_bodies_are_read_without_waiting(server_factory: Callable[[Handler], Server]) -> None:
    body = b"<Error><Code>SlowDown</Code></Error>"

    def slow_down(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    srv = server_factory(slow_down)
    r = _http.get(conns_for(srv), "/obj", "127.0.0.1", {}, "reading obj")
    assert r.status == 503
    assert r.read_small() == body


def test_a_stalled_body_trips_the_read_timeout(server_factory: Callable[[Handler], Server], tmp_path: Path) -> None:
    release = threading.Event()

    def stall(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\n\r\n")
        release.wait(30)
        return False

    srv = server_factory(stall)
    r = _http.get(conns_for(srv, read_timeout=0.5), "/obj", "127.0.0.1", {}, "reading obj")
    fd = os.open(tmp_path / "t", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with pytest.raises(TransientRemoteError, match=r"no byte for 0\.5 s"):
            r.read_to_file(fd, 0, 1000)
    finally:
        release.set()
        os.close(fd)
        r.close()


def test_a_file_error_is_an_oserror_not_a_remote_error(server_factory: Callable[[Handler], Server],
                                                        tmp_path: Path) -> None:
    srv = server_factory(ranged)
    r = _http.get(conns_for(srv), "/obj", "127.0.0.1", {"Range": "bytes=0-99999"}, "reading obj")
    fd = os.open(tmp_path / "t", os.O_RDONLY | os.O_CREAT, 0o644)  # not writable
    try:
        with pytest.raises(OSError) as ei:
            while r.left > 0:
                r.read_to_file(fd, 100000 - r.left, 1 << 20)
        assert not isinstance(ei.value, RemoteError)
    finally:
        os.close(fd)
        r.close()


def test_when_every_pooled_connection_is_stale_the_retry_opens_a_new_one(
    server_factory: Callable[[Handler], Server], tmp_path: Path
) -> None:
    # A server that restarts (or a proxy that resets) closes all idle connections at once:
    # the retry of a request that met one must not take another from the pool.
    stale: set[int] = set()  # client ports of the connections the server drops

    def drop_the_pooled_ones(conn: socket.socket, head: bytes) -> bool:
        if conn.getpeername()[1] in stale:
            return False  # closed without an answer, as a stale keep-alive connection is
        return ranged(conn, head)

    srv = server_factory(drop_the_pooled_ones)
    conns = conns_for(srv)
    idle = [conns.get()[0], conns.get()[0]]  # two kept-alive connections, idle in the pool
    stale.update(sock.getsockname()[1] for sock in idle)
    for sock in idle:
        conns.put(sock)
    assert fetch_to_file(conns, tmp_path / "t", 0, 1000) == DATA[:1000]
    assert srv.connections == 3
