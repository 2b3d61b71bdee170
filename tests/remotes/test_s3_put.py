"""S3 single PUTs signed by us (remotes/s3/fast.py, FastTransport.send): the object, its head and tags, and every
error must be what botocore's put_object gives; the signature must be botocore's.

Each comparison runs on SeaweedFS and moto. "The botocore path" is the same remote
with the fast signer taken away, as it is for an endpoint whose URL shape we do not
know. Neither test server checks signatures (weed without identities accepts any
key), so `seaweedfs_auth` starts one that does.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.servers import weed_mini_argv
from snapferry.errors import RemoteError, TransientRemoteError
from snapferry.remotes import RemoteOptions, open_remote
from snapferry.remotes.s3 import S3Remote
from snapferry.remotes.s3 import store as s3mod
from snapferry.remotes.s3.sigv4 import UNSIGNED_PAYLOAD, Keys
from tests.remotes.test_contract import BytesBody, data_of, part_of, read_all
from tests.servers import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    S3Server,
    _clean_env,
    _s3_options,
    _s3_ready,
    _venv_tool,
    start_server,
)

SERVERS = ["seaweedfs", "moto_server"]
HEAD_FIELDS = ("ContentLength", "StorageClass", "Metadata", "ServerSideEncryption", "SSEKMSKeyId",
               "ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256", "ETag")


def _open(url: str, opts: RemoteOptions) -> S3Remote:
    r = open_remote(url, opts)
    assert isinstance(r, S3Remote)
    return r


def _open_botocore(url: str, opts: RemoteOptions) -> S3Remote:
    """The same remote on botocore alone: no fast signer, as for an unknown URL shape."""
    r = _open(url, opts)
    r.gets.signer = None
    r.gets._probed = True
    assert r.gets.fast_signer() is None
    return r


def _count_botocore_puts(r: S3Remote) -> list[str]:
    seen: list[str] = []
    r._client.meta.events.register("before-send.s3.PutObject", lambda **kw: seen.append("put"))
    return seen


def _count_botocore_heads(r: S3Remote) -> list[str]:
    seen: list[str] = []
    r._client.meta.events.register("before-send.s3.HeadObject", lambda **kw: seen.append("head"))
    return seen


def _head(srv: S3Server, bucket: str, key: str) -> dict[str, Any]:
    head = srv.client().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    got = {f: head.get(f) for f in HEAD_FIELDS}
    tags = srv.client().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    got["tags"] = {t["Key"]: t["Value"] for t in tags}
    got["body"] = srv.raw_get(bucket, key)
    return got


@pytest.mark.parametrize("checksum", [None, "CRC32", "CRC32C", "SHA1", "SHA256", "NONE"])
@pytest.mark.parametrize("server", SERVERS)
def test_put_makes_the_object_botocore_makes(server: str, checksum: str | None, request: pytest.FixtureRequest) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    bucket = url.split("/")[2]
    opts.s3_checksum_algorithm = checksum
    opts.s3_object_tags = {"team": "db", "env": "a b+c/d=e"}
    opts.object_metadata = {"origin": "snapferry"}
    if server == "moto_server":  # SeaweedFS keeps neither
        opts.s3_storage_class = "STANDARD_IA"
    heads = []
    # botocore computes CRC32C only with awscrt installed (it is not): ours alone, checked below.
    paths = [("ours", _open(url, opts))] + ([("theirs", _open_botocore(url, opts))] if checksum != "CRC32C" else [])
    for name, r in paths:
        puts = _count_botocore_puts(r) if name == "theirs" else []
        keys = []
        for p in (part_of(f"{name}/small.bin", 1000), part_of(f"{name}/d ü+%/e.bin", 0)):
            r.upload_part(p, BytesBody(data_of(p.size)))
            keys.append(r._key(p.name))
        r.write_file(f"{name}/meta.ignore", b"{}")
        heads.append([_head(srv, bucket, k) for k in (*keys, r._key(f"{name}/meta.ignore"))])
        if name == "ours":
            assert r._client_obj is None  # static keys: botocore never made, so it sent nothing
        else:
            assert len(puts) == 3  # the baseline really is botocore's put_object
        r.close()
    if checksum == "CRC32C":
        import crc32c

        want = base64.b64encode(crc32c.crc32c(data_of(1000)).to_bytes(4, "big")).decode()
        assert heads[0][0]["body"] == data_of(1000)
        assert heads[0][0]["ChecksumCRC32C"] in (want, None if server == "seaweedfs" else want)
        return
    for a, b in zip(heads[0], heads[1], strict=True):
        assert {k: v for k, v in a.items() if k != "body"} == {k: v for k, v in b.items() if k != "body"}
    assert heads[0] == heads[1]
    if checksum == "NONE":  # no checksum header at all (botocore's path sent the free CRC32 once)
        assert all(h[f] is None for h in heads[0] for f in HEAD_FIELDS if f.startswith("Checksum")), heads[0]
    if checksum not in (None, "NONE") and server == "moto_server":
        assert heads[0][0][f"Checksum{checksum}"], heads[0][0]


@pytest.mark.parametrize("server", SERVERS)
def test_other_credentials_sign_puts_after_the_probe(server: str, request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Credentials static_creds does not know (here: taken away) still sign PUTs themselves
    # once botocore's one probe fixed the base URL, like the GETs do.
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    opts.s3_checksum_algorithm = "CRC32"
    with monkeypatch.context() as mp:
        mp.setattr(s3mod, "static_setup", lambda *a, **k: None)
        r = _open(url, opts)
    puts = _count_botocore_puts(r)
    p = part_of("x/one.bin", 4096)
    data = data_of(p.size)
    r.upload_part(p, BytesBody(data))
    assert r.gets.signer is not None and puts == []
    assert srv.raw_get(url.split("/")[2], r._key(p.name)) == data
    # The checksum HEAD verify uses goes through the same signer, and reads what botocore reads.
    heads = _count_botocore_heads(r)
    got = r.part_checksum(p)
    assert got is not None and heads == []
    assert got == _open_botocore(url, opts).part_checksum(p)
    r.close()


@pytest.mark.parametrize("server", SERVERS)
def test_put_errors_read_as_botocore_words_them(server: str, request: pytest.FixtureRequest) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    bucket = url.split("/")[2]
    missing = url.replace(bucket, "no-such-bucket-snapferry", 1)
    for where in (url, missing):
        got = []
        for r in (_open(where, opts), _open_botocore(where, opts)):
            if where == url:
                # Exclusive create: the second one finds the object, on both paths.
                name = f"lock-{secrets.token_hex(3)}.ignore"
                assert r.create_file_exclusive(name, b"1") is True
                assert r.create_file_exclusive(name, b"2") is False
                assert r.read_file(name) == b"1"
                continue
            with pytest.raises(RemoteError) as e:
                r.upload_part(part_of("x.bin", 3), BytesBody(b"abc"))
            assert not isinstance(e.value, TransientRemoteError), e.value
            got.append(f"{type(e.value).__name__}: {e.value}")
        if where == missing:
            assert got[0] == got[1]
            assert "does not exist" in got[0] and "no-such-bucket-snapferry" in got[0], got[0]


@pytest.fixture(scope="module")
def seaweedfs_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS with an identity (AWS keys in its environment): it checks every signature."""
    weed = _venv_tool("weed")
    workdir = tmp_path_factory.mktemp("seaweedfs-auth")
    ports: dict[str, int] = {}

    def cmd() -> list[str]:
        data = workdir / f"data-{secrets.token_hex(2)}"
        data.mkdir()
        argv, got = weed_mini_argv(weed, data, volume_max=100)
        ports.clear()
        ports.update(got)
        return argv

    def ready() -> bool:
        return _s3_ready(f"http://127.0.0.1:{ports['s3']}")()

    env = _clean_env("AWS_", "S3_") | {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
    proc = start_server("seaweedfs-auth", cmd, ready, workdir, timeout=90, env=env)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    opts, cenv = _s3_options(workdir, endpoint)
    try:
        yield S3Server("s3-seaweedfs", "s3", endpoint, proc, cenv, opts)
    finally:
        proc.stop()


@pytest.mark.parametrize("checksum", [None, "NONE"])
def test_a_server_that_checks_signatures_takes_ours(seaweedfs_auth: S3Server, checksum: str | None,
                                                    tmp_path: Path) -> None:
    url, opts = seaweedfs_auth.new_remote()
    opts.s3_checksum_algorithm = checksum  # NONE: the payload's SHA-256 is signed instead
    opts.s3_object_tags = {"k": "v w"}
    opts.object_metadata = {"m": "1"}
    r = _open(url, opts)
    p = part_of("sig/ü b+%.bin", 5000)
    data = data_of(p.size)
    r.upload_part(p, BytesBody(data))
    assert r.create_file_exclusive("lock.ignore", b"x") is True
    assert read_all(r.open_part(p)) == data
    assert r._client_obj is None
    # A wrong secret is refused, and worded as access denied to this remote.
    creds = tmp_path / "bad"
    creds.write_text(f"[default]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = wrong\n")
    opts.creds_file_path = str(creds)
    bad = _open(url, opts)
    with pytest.raises(RemoteError) as e:
        bad.upload_part(part_of("sig/denied.bin", 3), BytesBody(b"abc"))
    assert "denied access" in str(e.value) and "sig/denied.bin" in str(e.value), e.value
    assert not isinstance(e.value, TransientRemoteError)


def test_header_signature_is_botocores() -> None:
    # The canonical request and signature botocore's own S3SigV4Auth makes of the same
    # request at the same instant (its methods read the stamp from the request context).
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from snapferry.remotes.s3.sigv4 import Signer, canonical_query

    for token in (None, "FwoG+token/with=odd&chars"):
        keys = Keys("AKIDEXAMPLE", "s3cr3t/+=", token)
        signer = Signer("http://127.0.0.1:9000/bkt/", "eu-west-1")
        quoted = "pre%20fix/%C3%BC%2B%25.bin"
        headers = {"x-amz-meta-a": "b  c", "x-amz-tagging": "k=v+w", "if-none-match": "*", "content-length": "3",
                   "x-amz-checksum-crc32": "NSRBwg==", "x-amz-sdk-checksum-algorithm": "CRC32"}
        query = canonical_query({"partNumber": "2", "uploadId": "a/b=c"})
        for payload in (UNSIGNED_PAYLOAD, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"):
            ours = signer.headers(quoted, keys, "PUT", headers, payload, query, now=1_700_000_000)
            req = AWSRequest("PUT", f"http://127.0.0.1:9000/bkt/{quoted}?{query}", data=b"abc",
                             headers={**headers, **{k: v for k, v in ours.items() if k != "authorization"}})
            req.context["timestamp"] = ours["x-amz-date"]
            auth = S3SigV4Auth(Credentials(keys.access_key, keys.secret_key, token), "s3", "eu-west-1")
            signature = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
            assert ours["authorization"].endswith(f"Signature={signature}")
