"""One retry layer: the SDKs make one attempt per request, the retry layer over the remote
(remotes/retrying.py, with the run's RetryPolicy) makes the rest.

Each cloud backend is pointed at a tiny real HTTP server (tests/tinyhttp.py) that
answers 503 to everything, or never answers: the number of requests it sees is
the number of attempts, and each retry is logged when it happens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from snapferry.errors import TransientRemoteError
from snapferry.remotes import Remote, open_remote
from snapferry.remotes.retrying import with_retries
from snapferry.retry import RetryPolicy
from tests.servers import SERVER_FIXTURES, ObjectServer
from tests.tinyhttp import Handler, Server, answer, stall

CLOUDS = ["s3-moto", "gs", "azblob"]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()  # lets a stalled handler thread end


def remote_at(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, srv: Server,
              attempts: int, read_timeout: float = 60.0) -> tuple[str, Remote]:
    """A remote of `kind` (its URL and the opened remote) whose endpoint is srv."""
    real: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    url, _ = real.new_remote("bk")
    opts, env = real.via(f"http://127.0.0.1:{srv.port}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    opts.read_timeout = read_timeout
    return url, with_retries(open_remote(url, opts), RetryPolicy(attempts=attempts))


@pytest.mark.parametrize("kind", CLOUDS)
def test_each_attempt_is_one_request(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    server_factory: Callable[[Handler], Server], caplog: pytest.LogCaptureFixture,
) -> None:
    srv = server_factory(answer(503))
    url, r = remote_at(kind, request, monkeypatch, srv, attempts=3)
    with caplog.at_level(logging.WARNING, logger="snapferry"), pytest.raises(TransientRemoteError) as e:
        r.read_file("backup_complete.ignore")
    assert "reading backup_complete.ignore" in str(e.value) and url in str(e.value)
    # Three attempts, one request each: the SDK retried nothing on its own.
    assert len(srv.requests) == 3, [req.split(b"\r\n")[0].decode() for req in srv.requests]
    retried = [rec.getMessage() for rec in caplog.records if "retrying" in rec.getMessage()]
    assert len(retried) == 2, retried


@pytest.mark.parametrize("kind", CLOUDS)
def test_a_stalled_read_is_logged_at_its_first_timeout(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    server_factory: Callable[[Handler], Server], release: threading.Event, caplog: pytest.LogCaptureFixture,
) -> None:
    srv = server_factory(stall(release))
    _, r = remote_at(kind, request, monkeypatch, srv, attempts=2, read_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="snapferry"), pytest.raises(TransientRemoteError):
        r.read_file("backup_complete.ignore")
    assert len(srv.requests) == 2, srv.requests
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    # The first timeout is said at once, with what is retried, not after every attempt ran out.
    assert len(warnings) == 1, warnings
    assert "attempt 1 failed" in warnings[0] and "reading backup_complete.ignore" in warnings[0], warnings
