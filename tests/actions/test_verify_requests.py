"""What verify and info cost in requests and imports, counted on real servers.

The requests are counted by a wrapper around the remote's own HTTP session (every
request still goes to the server); the imports by `python -X importtime`.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import snapferry
from snapferry.actions.verify import Subset, Verify
from snapferry.findings import ProblemKind
from snapferry.remotes import open_remote
from snapferry.settings import ProgressMode, RunSettings
from tests.servers import GcsServer, S3Server
from tests.test_cli_startup import imported, offenders, static_keys

QUIET = RunSettings(progress=ProgressMode.OFF)

MIB = 1024 * 1024


@contextmanager
def counted(obj: Any, attr: str, url_arg: int) -> Iterator[list[tuple[str, str]]]:
    """Record (method, path?query) of every call of obj.attr (a real HTTP client's request
    method: the call goes on to the server), where argument `url_arg` is the URL."""
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()
    real: Callable[..., Any] = getattr(obj, attr)

    def request(*args: Any, **kw: Any) -> Any:
        method = str(args[0] if args else kw["method"])
        split = urllib.parse.urlsplit(str(args[url_arg] if len(args) > url_arg else kw["url"]))
        with lock:
            calls.append((method.upper(), urllib.parse.unquote(split.path) + "?" + split.query))
        return real(*args, **kw)

    setattr(obj, attr, request)
    try:
        yield calls
    finally:
        setattr(obj, attr, real)


def _s3_backup(server: S3Server, tree: Path) -> tuple[str, Any]:
    url, opts = server.new_remote("vm")
    snapferry.backup(url, str(tree), remote_options=opts, max_part_size=MIB, progress="off")
    return url, opts


def test_structure_only_on_s3_is_one_listing_and_two_small_files(seaweedfs: S3Server, snapshot_tree: Path) -> None:
    """The listing says which small files exist: no HEAD of the marker, the manifest or the
    metadata (a round trip each on a real store), no request per part."""
    url, opts = _s3_backup(seaweedfs, snapshot_tree)
    remote = open_remote(url, opts)
    try:
        with counted(remote.gets._pool, "request", 1) as calls:  # type: ignore[attr-defined]
            r = Verify(remote, QUIET, structure_only=True).run()
    finally:
        remote.close()
    assert r.problems == [] and r.parts == 11 and r.complete and r.made_by == "snapferry"
    assert [m for m, _ in calls] == ["GET"] * 3, calls
    assert "list-type=2" in calls[0][1]
    assert sorted(p.split("?")[0].rsplit("/", 1)[1] for _, p in calls[1:]) == [
        "backup_metadata.ignore", "snapferry_checksums.ignore"]


def test_read_data_on_s3_asks_no_metadata_of_the_parts_it_reads(seaweedfs: S3Server, snapshot_tree: Path) -> None:
    """--read-data checks every part's bytes against the manifest: no HEAD per part beside the
    reads (they were a third of its CPU); a slice leaves the other parts to their HEADs."""
    url, opts = _s3_backup(seaweedfs, snapshot_tree)
    for subset in (None, "1/2"):
        remote = open_remote(url, opts)
        try:
            with counted(remote.gets._pool, "request", 1) as calls:  # type: ignore[attr-defined]
                r = Verify(remote, RunSettings(4, progress=ProgressMode.OFF), read_data=True,
                           subset=Subset.parse(subset) if subset else None).run()
        finally:
            remote.close()
        assert r.problems == []
        assert r.parts_read == 11 if subset is None else 0 < r.parts_read < 11
        # one HEAD for each part not read (SeaweedFS keeps a checksum of each of these parts)
        assert sum(m == "HEAD" for m, _ in calls) == 11 - r.parts_read == r.parts_provider_checked


def test_s3_provider_checks_run_in_parallel_bounded_by_concurrency(seaweedfs: S3Server, snapshot_tree: Path) -> None:
    """One HEAD per part, `concurrency` at a time: the first three meet at a barrier (so three
    ran at once), and no fourth is ever in flight beside them."""
    url, opts = _s3_backup(seaweedfs, snapshot_tree)
    remote = open_remote(url, opts)
    pool: Any = remote.gets._pool  # type: ignore[attr-defined]
    real = pool.request
    meet = threading.Barrier(3, timeout=120)  # fails, rather than hangs, when they run one by one
    lock = threading.Lock()
    heads, in_flight, most = [0], [0], [0]

    def request(method: str, *args: Any, **kw: Any) -> Any:
        if method != "HEAD":
            return real(method, *args, **kw)
        with lock:
            heads[0] += 1
            first = heads[0] <= 3
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            if first:
                meet.wait()
            return real(method, *args, **kw)
        finally:
            with lock:
                in_flight[0] -= 1

    pool.request = request
    try:
        r = Verify(remote, RunSettings(3, progress=ProgressMode.OFF)).run()
    finally:
        pool.request = real
        remote.close()
    assert r.problems == [] and r.parts_provider_checked == 11
    assert heads[0] == 11 and most[0] == 3


@pytest.mark.parametrize("keys", ["environment", "credentials file"])
def test_structure_only_verify_and_info_on_s3_with_static_keys_load_no_sdk(
    keys: str, seaweedfs: S3Server, snapshot_tree: Path
) -> None:
    """Start-up is most of a structure-only verify: with static keys it lists and reads
    through the signed-HTTP path on urllib3, without botocore or requests."""
    url, opts = _s3_backup(seaweedfs, snapshot_tree)
    flags, env = static_keys(seaweedfs, opts, keys)
    banned = ("botocore", "boto3", "requests", "google", "azure", "snapferry.restorer", "snapferry.actions.backup")
    for args in (["verify", "--src", url, "--structure-only", "--json"], ["info", "--src", url, "--json"]):
        p, names = imported(*args, *flags, env=env)
        assert p.returncode == 0, (args, p.stderr[-2000:])
        assert '"parts": 11' in p.stdout, p.stdout
        assert offenders(names, banned) == [], args
        assert "urllib3" in names  # what it does use: the check above can see a package


def test_gcs_checksums_come_from_the_listing(fake_gcs: GcsServer, snapshot_tree: Path) -> None:
    """GCS lists each object's CRC32C: the provider checks make no request per part, and
    bytes flipped behind snapferry's back are still found."""
    from tests.servers import RemoteFactory

    with fake_gcs.environ():
        spec = RemoteFactory("gs", fake_gcs, Path("."))()
        snapferry.backup(spec.url, str(snapshot_tree), remote_options=spec.options, max_part_size=MIB,
                         progress="off")
        victim = next(n for n, _ in spec.open().list_objects() if n.endswith(f"_{MIB:016X}_{MIB:016X}"))

        def verify() -> tuple[Any, list[tuple[str, str]]]:
            remote = open_remote(spec.url, spec.options)
            try:
                with counted(remote._session, "request", 1) as calls:  # type: ignore[attr-defined]
                    return Verify(remote, RunSettings(4, progress=ProgressMode.OFF)).run(), calls
            finally:
                remote.close()

        clean, calls = verify()
        assert clean.problems == [] and clean.parts == 11 and clean.parts_provider_checked == 11
        # one listing page and the two small files (read as media); not one metadata GET of a part
        assert len(calls) == 3, calls
        assert sum("alt=media" in q for _, q in calls) == 2, calls

        body = bytearray(spec.raw_get(victim))
        body[777] ^= 0x10
        spec.raw_put(victim, bytes(body))
        r, calls = verify()
        assert [(p.kind, p.part) for p in r.problems] == [(ProblemKind.CHECKSUM, victim)]
        assert r.problems[0].found.startswith("crc32c ") and len(calls) == 3
