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
from pathlib import Path

import pytest

from snapferry.errors import TransientRemoteError
from snapferry.parts import Part
from snapferry.remotes import Remote, local_tree, open_remote
from snapferry.remotes.base import kept_checksums
from snapferry.remotes.retrying import with_retries
from snapferry.retry import REQUEST_ATTEMPTS, RetryPolicy
from tests.servers import SERVER_FIXTURES, ObjectServer, S3Server
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


def test_a_second_retry_layer_replaces_the_first_and_never_multiplies_attempts(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, server_factory: Callable[[Handler], Server],
) -> None:
    """with_retries on a remote that has the layer gives it the new policy: an action handed an
    already-wrapped remote must not make attempts x attempts requests."""
    srv = server_factory(answer(503))
    _, r = remote_at("s3-moto", request, monkeypatch, srv, attempts=3)
    twice = with_retries(r, RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01, jitter=0.0))
    with pytest.raises(TransientRemoteError):
        twice.read_file("backup_complete.ignore")
    assert len(srv.requests) == 2, [req.split(b"\r\n")[0].decode() for req in srv.requests]


def test_transfers_get_every_attempt_and_single_requests_at_most_three(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, server_factory: Callable[[Handler], Server],
) -> None:
    """One knob: --retries is every attempt of a transfer; a listing or small file gets at
    most retry.REQUEST_ATTEMPTS of them, so a dead endpoint is said in seconds."""
    srv = server_factory(answer(503))
    _, r = remote_at("s3-moto", request, monkeypatch, srv, attempts=1)
    r = with_retries(r, RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.01, jitter=0.0))
    with pytest.raises(TransientRemoteError):
        r.list_parts()
    assert len(srv.requests) == REQUEST_ATTEMPTS
    del srv.requests[:]
    part = Part("data/x.bin", 10, 0, 10, 10)
    with pytest.raises(TransientRemoteError):
        r.open_part(part).close()
    assert len(srv.requests) == 5, [req.split(b"\r\n")[0].decode() for req in srv.requests]


def test_the_layer_keeps_the_capabilities_of_the_remote_under_it(tmp_path: Path, seaweedfs: S3Server) -> None:
    """An fs:// backup under the retry layer is still a local tree (synced, pruned, copied in
    the kernel), an s3:// one still has the store's checksums; encryption is no local tree."""
    policy = RetryPolicy()
    fs = with_retries(open_remote(f"fs://{tmp_path}"), policy)
    tree = local_tree(fs)
    assert tree is not None and tree.root == str(tmp_path)
    url, opts = seaweedfs.new_remote("caps")
    s3 = with_retries(open_remote(url, opts), policy)
    assert kept_checksums(s3) is not None and local_tree(s3) is None
    assert local_tree(with_retries(s3, policy)) is None and kept_checksums(with_retries(s3, policy)) is not None
