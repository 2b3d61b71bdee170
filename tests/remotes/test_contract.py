"""The Remote contract, checked on every backend against a real server.

Every test runs on fs://, s3:// (SeaweedFS and moto), gs:// (fake-gcs-server)
and azblob:// (Azurite), through open_remote, the way the actions use them.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import os
import random
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snapferry.errors import RemoteError, TransientRemoteError, UsageError
from snapferry.parts import Part
from snapferry.remotes import LocalRegion, Reader, Remote, RemoteOptions, local_tree, open_remote
from snapferry.remotes.base import FileReader, kept_checksums
from snapferry.remotes.s3 import S3Remote
from tests.servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    SERVER_FIXTURES,
    AzuriteServer,
    CutProxy,
    ObjectServer,
    RemoteFactory,
    RemoteSpec,
    S3Server,
)

MiB = 1024 * 1024


class BytesBody:
    """A Body over bytes; `size` larger than the data makes a short body."""

    def __init__(self, data: bytes, size: int | None = None) -> None:
        self._f = io.BytesIO(data)
        self.size = len(data) if size is None else size

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


class NoBody:
    """For uploads from a LocalRegion: reading the body would be a bug."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, n: int = -1) -> bytes:
        raise AssertionError("the body was read although a local region was given")


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def part_of(path: str, size: int, file_size: int | None = None, offset: int = 0) -> Part:
    return Part(path, size if file_size is None else file_size, offset, size, size)


def read_all(reader: Reader, bufsize: int = 64 * 1024) -> bytes:
    buf = memoryview(bytearray(bufsize))
    out = bytearray()
    try:
        while n := reader.readinto(buf):
            out += buf[:n]
    finally:
        reader.close()
    return bytes(out)


def upload(remote: Remote, part: Part, data: bytes) -> None:
    remote.upload_part(part, BytesBody(data))


@pytest.fixture
def remote(any_remote: RemoteFactory) -> Iterator[tuple[RemoteSpec, Remote]]:
    spec = any_remote()
    r = spec.open()
    yield spec, r
    r.close()


def by_name(parts: list[Part]) -> dict[str, Part]:
    return {p.name: p for p in parts}


# --- parts -------------------------------------------------------------------------


def test_upload_list_and_ranged_reads(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    assert r.list_parts() == []
    sizes = {"a/empty.bin": 0, "a/one.bin": 1, "b/c/small.bin": 1000, "b/big.bin": 300_001}
    contents: dict[str, bytes] = {}
    for i, (path, size) in enumerate(sizes.items()):
        data = data_of(size, i)
        contents[path] = data
        upload(r, part_of(path, size), data)

    parts = by_name(r.list_parts())
    assert sorted(p.path for p in parts.values()) == sorted(sizes)
    for p in parts.values():
        assert p.actual_size == p.size == sizes[p.path]
        assert not p.is_broken

    big = parts[part_of("b/big.bin", 300_001).name]
    data = contents["b/big.bin"]
    for offset, length in [(0, None), (0, 1), (1, 10), (300_000, 1), (123_457, 65_536),
                           (65_535, 2), (299_000, None)]:
        got = read_all(r.open_part(big, offset, length), bufsize=10_000)
        want = data[offset:] if length is None else data[offset : offset + length]
        assert got == want, (offset, length)
    # A buffer larger than the range must not read past it.
    assert read_all(r.open_part(big, 10, 5), bufsize=MiB) == data[10:15]

    one = parts[part_of("a/one.bin", 1).name]
    assert read_all(r.open_part(one)) == contents["a/one.bin"]
    empty = parts[part_of("a/empty.bin", 0).name]
    assert read_all(r.open_part(empty)) == b""


def test_zero_copy_reads_match_buffered_reads(remote: tuple[RemoteSpec, Remote], tmp_path: Path) -> None:
    """Readers that can splice into a file (s3:// over plain HTTP) move exactly the bytes
    a buffered copy would, at the offsets asked for; the others are checked the buffered way."""
    spec, r = remote
    p = part_of("z/file.bin", 3 * MiB + 17)
    data = data_of(p.size, 11)
    upload(r, p, data)
    reader = r.open_part(p, 1000, 2 * MiB)
    if spec.kind.startswith("s3"):
        assert isinstance(reader, FileReader)  # the http:// test servers take the splice path
    target = tmp_path / "t"
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    buf = memoryview(bytearray(700_001))
    try:
        pos = 500
        while True:
            if isinstance(reader, FileReader):
                n = reader.read_to_file(fd, pos, len(buf))
            else:  # what the downloader does for readers that cannot splice
                n = reader.readinto(buf)
                os.pwrite(fd, buf[:n], pos)
            if not n:
                break
            pos += n
    finally:
        os.close(fd)
        reader.close()
    assert pos == 500 + 2 * MiB
    assert target.read_bytes()[500:] == data[1000 : 1000 + 2 * MiB]
    assert read_all(r.open_part(p, 0, 10)) == data[:10]  # the connection went back usable


def test_reader_closed_early_leaves_the_remote_usable(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    p = part_of("x/file.bin", 2 * MiB + 3)
    data = data_of(p.size, 7)
    upload(r, p, data)
    for _ in range(3):
        reader = r.open_part(p)
        buf = memoryview(bytearray(4096))
        assert reader.readinto(buf) > 0
        reader.close()
        reader.close()  # closing twice is harmless
    assert read_all(r.open_part(p, 5, MiB)) == data[5 : 5 + MiB]


def test_missing_part_read_names_the_part(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    p = part_of("not/there.bin", 10)
    with pytest.raises(RemoteError) as e:
        read_all(r.open_part(p))
    assert p.name in str(e.value)


def test_actual_size_of_a_truncated_object(remote: tuple[RemoteSpec, Remote]) -> None:
    spec, r = remote
    p = part_of("data/values.bin", 100, file_size=250, offset=100)
    spec.raw_put(p.name, data_of(60))
    [got] = r.list_parts()
    assert (got.path, got.offset, got.size, got.actual_size) == ("data/values.bin", 100, 100, 60)
    assert got.is_broken


def test_markers_unparseable_names_and_sibling_prefixes_are_not_parts(
    any_remote: RemoteFactory,
) -> None:
    spec = any_remote(prefix="backup")
    sibling = any_remote(prefix="backup2", bucket=spec.bucket)
    r = spec.open()
    p = part_of("data/f.bin", 5)
    upload(r, p, b"12345")
    spec.raw_put("backup_complete.ignore", b"")
    spec.raw_put("data/backup_metadata.ignore", b"{}")
    spec.raw_put("data/not-a-part.bin", b"x")
    spec.raw_put("0000000000000001_0000000000000000_0000000000000001", b"x")  # no path
    upload(sibling.open(), part_of("data/g.bin", 3), b"abc")
    assert [q.name for q in r.list_parts()] == [p.name]


def test_delete_part(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    keep, drop = part_of("d/keep.bin", 3), part_of("d/drop.bin", 4)
    upload(r, keep, b"abc")
    upload(r, drop, b"abcd")
    r.delete_part(drop)
    assert [p.name for p in r.list_parts()] == [keep.name]


def test_upload_from_a_local_region(remote: tuple[RemoteSpec, Remote], tmp_path: Path) -> None:
    _spec, r = remote
    src = tmp_path / "source.bin"
    data = data_of(3 * MiB, 3)
    src.write_bytes(data)
    p = part_of("l/file.bin", MiB + 5, file_size=len(data), offset=MiB - 2)
    r.upload_part(p, NoBody(p.size), LocalRegion(str(src), p.offset, p.size))
    [got] = r.list_parts()
    assert got.actual_size == p.size
    assert read_all(r.open_part(got), bufsize=MiB) == data[p.offset : p.end]


def test_progress_counts_every_byte(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    seen: list[int] = []
    p = part_of("p/file.bin", 700_000)
    r.upload_part(p, BytesBody(data_of(p.size)), progress=seen.append)
    assert sum(seen) == p.size


def test_short_body_raises_and_leaves_no_object(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    p = part_of("s/short.bin", 1000)
    with pytest.raises(RemoteError):
        r.upload_part(p, BytesBody(data_of(600), size=p.size))
    assert r.list_parts() == []


def test_short_local_file_raises(remote: tuple[RemoteSpec, Remote], tmp_path: Path) -> None:
    spec, r = remote
    src = tmp_path / "shrunk.bin"
    src.write_bytes(data_of(500))
    p = part_of("s/shrunk.bin", 1000)
    # fs:// copies in the kernel and reports the short copy as a plain RemoteError.
    expected = RemoteError if spec.kind == "fs" else TransientRemoteError
    with pytest.raises(expected):
        r.upload_part(p, NoBody(p.size), LocalRegion(str(src), 0, p.size))
    assert r.list_parts() == []


def test_multipart_upload(any_remote: RemoteFactory, tmp_path: Path) -> None:
    spec = any_remote(multipart_chunk_size=5 * MiB)
    r = spec.open()
    data = data_of(12 * MiB + 17, 11)
    p1 = part_of("m/body.bin", len(data))
    seen: list[int] = []
    r.upload_part(p1, BytesBody(data), progress=seen.append)
    assert sum(seen) == len(data)
    src = tmp_path / "m.bin"
    src.write_bytes(data)
    p2 = part_of("m/local.bin", len(data))
    r.upload_part(p2, NoBody(p2.size), LocalRegion(str(src), 0, p2.size))

    parts = by_name(r.list_parts())
    for p in (p1, p2):
        got = parts[p.name]
        assert got.actual_size == len(data)
        whole = read_all(r.open_part(got), bufsize=4 * MiB)
        assert hashlib.sha256(whole).digest() == hashlib.sha256(data).digest()
        # A range across the boundary of two upload chunks.
        assert read_all(r.open_part(got, 5 * MiB - 10, 20)) == data[5 * MiB - 10 : 5 * MiB + 10]


def test_short_body_in_a_multipart_upload_leaves_no_object(any_remote: RemoteFactory) -> None:
    spec = any_remote(multipart_chunk_size=5 * MiB)
    r = spec.open()
    p = part_of("m/short.bin", 12 * MiB)
    with pytest.raises(RemoteError):
        r.upload_part(p, BytesBody(data_of(7 * MiB), size=p.size))
    assert r.list_parts() == []


def test_keys_with_spaces_and_unicode(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    p = part_of("dir with space/ünïcødé 日本/file name+%20&?.bin", 11)
    upload(r, p, b"hello world")
    [got] = r.list_parts()
    assert got.path == p.path
    assert read_all(r.open_part(got, 6, 5)) == b"world"
    r.write_file("name with space ü.ignore", b"x")
    assert r.has_file("name with space ü.ignore")
    assert r.read_file("name with space ü.ignore") == b"x"
    r.delete_part(got)
    assert r.list_parts() == []


def test_listing_paginates(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    n = 1105
    parts = [part_of(f"many/{i:05d}.bin", 1) for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: upload(r, p, b"x"), parts))
    listed = r.list_parts()
    assert len(listed) == n
    assert {p.name for p in listed} == {p.name for p in parts}


# --- small files ---------------------------------------------------------------------


def test_small_files(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    name = "backup_metadata.ignore"
    assert not r.has_file(name)
    r.write_file(name, b'{"created_at": "x"}')
    assert r.has_file(name)
    assert r.read_file(name) == b'{"created_at": "x"}'
    r.write_file(name, b"")
    assert r.read_file(name) == b""
    r.delete_file(name)
    assert not r.has_file(name)
    r.delete_file(name)  # deleting a missing file is not an error
    assert r.list_parts() == []


def test_local_path_and_empty_dirs(remote: tuple[RemoteSpec, Remote]) -> None:
    spec, r = remote
    p = part_of("e/f.bin", 1)
    upload(r, p, b"1")
    r.delete_part(p)
    tree = local_tree(r)
    if spec.kind == "fs":
        assert tree is not None
        tree.prune_empty_dirs()
        assert tree.part_path(p) == str(Path(spec.prefix, p.name))
        assert not Path(spec.prefix, "e").exists()
    else:
        assert tree is None


def test_child_shares_the_root_and_lists_every_object(remote: tuple[RemoteSpec, Remote]) -> None:
    """child() is part of the Protocol on every backend; list_objects names markers and junk too."""
    spec, r = remote
    c = r.child("daily/2026-11-01")
    assert c.url == f"{r.url}/daily/2026-11-01"
    p = part_of("x/y.bin", 3)
    upload(c, p, b"abc")
    c.write_file("backup_complete.ignore", b"")
    spec.raw_put("junk.txt", b"12")
    assert [q.name for q in c.list_parts()] == [p.name]
    assert sorted(r.list_objects()) == [
        ("daily/2026-11-01/backup_complete.ignore", 0), (f"daily/2026-11-01/{p.name}", 3), ("junk.txt", 2),
    ]
    assert read_all(r.open_part(Part(f"daily/2026-11-01/{p.path}", 3, 0, 3, 3))) == b"abc"


def test_capabilities_are_explicit(remote: tuple[RemoteSpec, Remote]) -> None:
    """Only fs:// is a LocalTree; only s3:// and gs:// keep checksums verify can read."""
    spec, r = remote
    assert (local_tree(r) is not None) is (spec.kind == "fs")
    assert (local_tree(r.child("latest")) is not None) is (spec.kind == "fs")
    assert (kept_checksums(r) is not None) is (spec.url.split(":", 1)[0] in ("s3", "gs"))


# --- server-side copy -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["other-bucket", "same-bucket"])
def test_server_side_copy(any_remote: RemoteFactory, where: str) -> None:
    src_spec = any_remote(prefix="origin")
    dst_spec = any_remote(
        prefix="copy", bucket=src_spec.bucket if where == "same-bucket" else None
    )
    src, dst = src_spec.open(), dst_spec.open()
    assert dst.can_copy_from(src)
    parts = [part_of("c/a.bin", 1000), part_of("c/empty.bin", 0), part_of("c d/ü.bin", 3 * MiB)]
    datas = [data_of(p.size, i) for i, p in enumerate(parts)]
    for p, d in zip(parts, datas, strict=True):
        upload(src, p, d)
    for p in parts:
        dst.copy_part(src, p)
    got = by_name(dst.list_parts())
    assert set(got) == {p.name for p in parts}
    for p, d in zip(parts, datas, strict=True):
        assert got[p.name].actual_size == p.size
        assert read_all(dst.open_part(got[p.name]), bufsize=MiB) == d
    # The source is untouched.
    assert len(src.list_parts()) == len(parts)


def test_copy_needs_the_same_backend(any_remote: RemoteFactory, tmp_path: Path) -> None:
    r = any_remote().open()
    fs = open_remote(f"fs://{tmp_path}/other")
    if any_remote.is_fs:
        assert r.can_copy_from(fs)
    else:
        assert not r.can_copy_from(fs)
        assert not fs.can_copy_from(r)


def test_copy_of_a_missing_part_fails(any_remote: RemoteFactory) -> None:
    src, dst = any_remote(prefix="a").open(), any_remote(prefix="b").open()
    p = part_of("gone.bin", 5)
    with pytest.raises(RemoteError) as e:
        dst.copy_part(src, p)
    assert not isinstance(e.value, TransientRemoteError)


def test_reading_a_missing_small_file_fails(remote: tuple[RemoteSpec, Remote]) -> None:
    _spec, r = remote
    with pytest.raises(RemoteError) as e:
        r.read_file("backup_metadata.ignore")
    assert "backup_metadata.ignore" in str(e.value)


# --- metadata and options -------------------------------------------------------------


def test_object_metadata_on_every_write(any_remote: RemoteFactory) -> None:
    meta = {"origin": "snapferry", "run": "42"}
    spec = any_remote(object_metadata=meta, multipart_chunk_size=5 * MiB)
    r = spec.open()
    small, big = part_of("meta/small.bin", 10), part_of("meta/big.bin", 11 * MiB)
    upload(r, small, data_of(10))
    upload(r, big, data_of(big.size))
    r.write_file("backup_complete.ignore", b"")
    src_spec = any_remote(prefix="origin", bucket=spec.bucket)
    src = src_spec.open()
    copied = part_of("meta/copied.bin", 5)
    upload(src, copied, b"hello")
    r.copy_part(src, copied)
    if spec.kind == "fs":
        return  # files carry no metadata
    for name in (small.name, big.name, "backup_complete.ignore", copied.name):
        got = {k.lower(): v for k, v in spec.raw_metadata(name).items()}
        assert got == meta, name


def test_missing_bucket_is_one_clear_error(any_remote: RemoteFactory) -> None:
    spec = any_remote()
    missing = spec.url.replace(spec.bucket, "no-such-bucket-snapferry", 1)
    r = open_remote(missing, spec.options)
    if spec.kind == "fs":
        assert r.list_parts() == []
        assert not r.has_file("backup_complete.ignore")
        return
    for op in (
        r.list_parts,
        lambda: r.has_file("backup_complete.ignore"),
        lambda: read_all(r.open_part(part_of("x.bin", 3))),
    ):
        with pytest.raises(RemoteError) as e:
            op()
        msg = str(e.value)
        assert "no-such-bucket-snapferry" in msg and "does not exist" in msg, msg
        assert not isinstance(e.value, TransientRemoteError)
        assert "\n" not in msg


def test_s3_write_options_reach_the_object(moto_server: S3Server) -> None:
    url, opts = moto_server.new_remote()
    opts.s3_object_tags = {"team": "db", "env": "test"}
    opts.s3_storage_class = "STANDARD_IA"
    opts.s3_checksum_algorithm = "SHA256"
    opts.multipart_chunk_size = 5 * MiB
    r = open_remote(url, opts)
    bucket = url.split("/")[2]
    for p in (part_of("t/small.bin", 100), part_of("t/big.bin", 11 * MiB)):
        upload(r, p, data_of(p.size))
        key = f"backup/{p.name}"
        head = moto_server.client().head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == p.size
        assert head.get("StorageClass") == "STANDARD_IA"
        tags = moto_server.client().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert {t["Key"]: t["Value"] for t in tags} == opts.s3_object_tags


def _epoch(amz_date: str) -> float:
    return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_s3_gets_signed_from_the_probed_base_match_botocore(server: str, request: pytest.FixtureRequest) -> None:
    # Ranged GETs skip generate_presigned_url after one probe; the URL must be the one
    # botocore would have made (same path, scope and signature), for awkward keys too.
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    r = open_remote(url, opts)
    assert isinstance(r, S3Remote)
    for name in ("dir with space/ünïcødé 日本/a+b=c&d~e%41.bin", "plain/0000000000000001_0000000000000000_01"):
        key = f"backup/{name}"
        # Ours is signed at the second botocore stamped, so a slow machine cannot split them.
        theirs = urllib.parse.urlsplit(r._client.generate_presigned_url(
            "get_object", Params={"Bucket": url.split("/")[2], "Key": key}, ExpiresIn=3600))
        qt = urllib.parse.parse_qs(theirs.query)
        ours = urllib.parse.urlsplit(r.gets.presigned_get(key, _epoch(qt["X-Amz-Date"][0])))
        qo = urllib.parse.parse_qs(ours.query)
        assert (ours.scheme, ours.netloc, ours.path) == (theirs.scheme, theirs.netloc, theirs.path)
        assert qo == qt
    assert r.gets.signer is not None  # the fast path, not the fallback


def test_s3_get_signing_with_a_session_token_matches_botocore(tmp_path: Path) -> None:
    # No request is made: only the URLs are compared (temporary credentials add a token).
    creds = tmp_path / "creds"
    creds.write_text("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t/+=\n"
                     "aws_session_token = FwoG+token/with=odd&chars\n")
    for endpoint in ("https://s3.example.com", "http://127.0.0.1:9000", "https://s3.example.com:8443"):
        opts = RemoteOptions(custom_s3_endpoint=endpoint, creds_file_path=str(creds))
        r = open_remote("s3://bkt/pre fix", opts)
        assert isinstance(r, S3Remote)
        key = "pre fix/a b/ü+%.bin"
        theirs = urllib.parse.urlsplit(r._client.generate_presigned_url(
            "get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=3600))
        qt = urllib.parse.parse_qs(theirs.query)
        ours = urllib.parse.urlsplit(r.gets.presigned_get(key, _epoch(qt["X-Amz-Date"][0])))
        qo = urllib.parse.parse_qs(ours.query)
        assert (ours.scheme, ours.netloc, ours.path) == (theirs.scheme, theirs.netloc, theirs.path), endpoint
        assert qo == qt, endpoint
        assert r.gets.signer is not None


def test_azblob_without_credentials_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_CONNECTION_STRING",
                "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_remote("azblob://container/prefix")


def test_s3_missing_credentials_file_is_a_usage_error(tmp_path: Path) -> None:
    from snapferry.remotes import RemoteOptions

    opts = RemoteOptions(custom_s3_endpoint="http://127.0.0.1:1", creds_file_path=str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="does not exist"):
        open_remote("s3://bucket/prefix", opts)


def test_s3_credentials_file_that_is_a_pipe_is_named_as_one(tmp_path: Path) -> None:
    """`--creds-file-path <(...)` is a pipe: said so, not "does not exist" (it does)."""
    from snapferry.remotes import RemoteOptions

    fifo = tmp_path / "creds.fifo"
    os.mkfifo(fifo)
    opts = RemoteOptions(custom_s3_endpoint="http://127.0.0.1:1", creds_file_path=str(fifo))
    with pytest.raises(UsageError, match="is not a regular file") as e:
        open_remote("s3://bucket/prefix", opts)
    assert str(fifo) in str(e.value) and "does not exist" not in str(e.value)


# --- broken connections ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SERVER_FIXTURES))
def test_download_cut_midway_is_transient(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    url, opts = server.new_remote()
    p = part_of("cut/file.bin", MiB)
    upload(open_remote(url, opts), p, data_of(p.size))
    with CutProxy(int(urllib.parse.urlsplit(server.base_url).port or 0), cut_after=200_000) as fp:
        popts, penv = server.via(fp.endpoint)
        for k, v in penv.items():
            monkeypatch.setenv(k, v)
        r = open_remote(url, popts)
        with pytest.raises(TransientRemoteError, match=r"after \d+ of 1048576 bytes"):
            read_all(r.open_part(p))


@pytest.mark.parametrize("kind", list(SERVER_FIXTURES))
def test_unreachable_server_is_transient(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    url, _opts = server.new_remote()
    with CutProxy(int(urllib.parse.urlsplit(server.base_url).port or 0), cut_after=0) as fp:
        popts, penv = server.via(fp.endpoint)
        for k, v in penv.items():
            monkeypatch.setenv(k, v)
        r = open_remote(url, popts)
        p = part_of("gone/file.bin", 10)
        for op in (
            r.list_parts,
            lambda: read_all(r.open_part(p)),
            lambda: r.upload_part(p, BytesBody(b"0123456789")),
            lambda: r.write_file("backup_complete.ignore", b""),
        ):
            with pytest.raises(TransientRemoteError):
                op()


# --- credentials ---------------------------------------------------------------------------


def test_azblob_with_account_name_key_and_endpoint(
    azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", azurite.endpoint)
    url, opts = azurite.new_remote()
    r = open_remote(url, opts)
    r.write_file("backup_complete.ignore", b"ok")
    assert r.read_file("backup_complete.ignore") == b"ok"


def test_s3_unknown_profile_is_a_usage_error(moto_server: S3Server) -> None:
    url, opts = moto_server.new_remote()
    opts.config_profile = "no-such-profile"
    with pytest.raises(UsageError, match="no-such-profile"):
        open_remote(url, opts)


def test_gcs_bad_credentials_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapferry.remotes import RemoteOptions

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    bad = tmp_path / "sa.json"
    bad.write_text('{"type": "nonsense"}')
    with pytest.raises(UsageError, match="credentials"):
        open_remote("gs://bucket/prefix", RemoteOptions(creds_file_path=str(bad)))
    with pytest.raises(UsageError, match="does not exist"):
        open_remote("gs://bucket/prefix", RemoteOptions(creds_file_path=str(tmp_path / "nope")))
