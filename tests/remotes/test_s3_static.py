"""S3 reads with static keys: signed by us, no botocore client, answers equal to botocore's.

Each test runs on SeaweedFS and moto. "The botocore path" is the same remote with
static_creds' answer taken away, as it is for credentials it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snapferry.errors import RemoteError, TransientRemoteError
from snapferry.remotes import RemoteOptions, open_remote
from snapferry.remotes.s3 import S3Remote
from snapferry.remotes.s3 import store as s3mod
from snapferry.remotes.s3.static_creds import static_setup
from tests.remotes.test_contract import BytesBody, data_of, part_of, read_all
from tests.servers import S3Server

SERVERS = ["seaweedfs", "moto_server"]


def _open(url: str, opts: RemoteOptions) -> S3Remote:
    r = open_remote(url, opts)
    assert isinstance(r, S3Remote)
    return r


def _open_botocore(url: str, opts: RemoteOptions, monkeypatch: pytest.MonkeyPatch) -> S3Remote:
    with monkeypatch.context() as mp:
        mp.setattr(s3mod, "static_setup", lambda *a, **k: None)
        r = _open(url, opts)
    assert r._client_obj is not None
    return r


@pytest.mark.parametrize("server", SERVERS)
def test_reads_need_no_botocore_client(server: str, request: pytest.FixtureRequest) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    writer = _open(url, opts)
    n = 1105  # more than one ListObjectsV2 page
    parts = [part_of(f"many/{i:05d}.bin", 1) for i in range(n)]
    odd = part_of("dir with space/ünïcødé 日本/a+b=c&d~e%41 ?.bin", 11)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: writer.upload_part(p, BytesBody(b"x")), parts))
    writer.upload_part(odd, BytesBody(b"hello world"))
    writer.write_file("name with space ü.ignore", b"meta")
    writer.close()

    r = _open(url, opts)
    listed = {p.name: p for p in r.list_parts()}
    assert len(listed) == n + 1
    assert set(listed) == {p.name for p in parts} | {odd.name}
    assert read_all(r.open_part(listed[odd.name], 6, 5)) == b"world"
    assert r.has_file("name with space ü.ignore") and not r.has_file("absent.ignore")
    assert r.read_file("name with space ü.ignore") == b"meta"
    assert len(r.list_objects()) == n + 2
    assert r._client_obj is None  # every read above went through the signed-HTTP path
    r.close()


@pytest.mark.parametrize("server", SERVERS)
def test_missing_bucket_and_key_read_as_botocore_words_them(
    server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    bucket = url.split("/")[2]
    missing = url.replace(bucket, "no-such-bucket-snapferry", 1)
    ops: dict[str, Callable[[S3Remote], object]] = {
        "list": lambda r: r.list_parts(),
        "has_file": lambda r: r.has_file("backup_complete.ignore"),
        "read_file": lambda r: r.read_file("backup_metadata.ignore"),
        "open_part": lambda r: read_all(r.open_part(part_of("x.bin", 3))),
        "empty part": lambda r: r.open_part(part_of("e.bin", 0)),
    }
    for where in (url, missing):
        messages = []
        for r in (_open(where, opts), _open_botocore(where, opts, monkeypatch)):
            got: dict[str, str] = {}
            for name, op in ops.items():
                if where == url and name == "list":
                    assert op(r) == []
                    continue
                if where == url and name == "has_file":
                    assert op(r) is False
                    continue
                with pytest.raises(RemoteError) as e:
                    op(r)
                assert not isinstance(e.value, TransientRemoteError), e.value
                got[name] = f"{type(e.value).__name__}: {e.value}"
            messages.append(got)
        assert messages[0] == messages[1], where
        if where == missing:
            assert all("does not exist" in m for m in messages[0].values()), messages[0]
        else:
            assert "backup_metadata.ignore" in messages[0]["read_file"]


def test_provider_checksums_read_alike(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, opts = moto_server.new_remote()
    opts.s3_checksum_algorithm = "CRC32"
    writer = _open(url, opts)
    p = part_of("c/one.bin", 1000)
    writer.upload_part(p, BytesBody(data_of(p.size)))
    ours, theirs = _open(url, opts), _open_botocore(url, opts, monkeypatch)
    got = ours.part_checksum(p)
    assert got is not None and got == theirs.part_checksum(p)
    assert ours._client_obj is None


def _files(tmp_path: Path, creds: str, config: str) -> tuple[str, str]:
    (tmp_path / "c").write_text(creds)
    (tmp_path / "f").write_text(config)
    return str(tmp_path / "c"), str(tmp_path / "f")


def test_static_setup_keeps_botocores_precedence(tmp_path: Path) -> None:
    creds, config = _files(
        tmp_path,
        "[default]\naws_access_key_id = FILE\naws_secret_access_key = s\n[p2]\naws_access_key_id = P2\n"
        "aws_secret_access_key = s2\n[role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
        "[default]\nregion = eu-west-3\n[profile p2]\nregion = ap-south-1\naws_access_key_id = CONF\n"
        "aws_secret_access_key = c\n[profile conf]\naws_access_key_id = ONLYCONF\naws_secret_access_key = c\n",
    )
    env = {"AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"}

    def setup(profile: str | None, env: dict[str, str], endpoint: str | None = "http://127.0.0.1:1",
              path_style: bool = True) -> tuple[str, str, str] | None:
        s = static_setup("bkt", endpoint, path_style, creds, config, profile, env)
        return None if s is None else (s.keys.access_key, s.region, s.base)

    # the environment first, unless a profile is named explicitly; region from the profile
    assert setup(None, env) == ("ENV", "eu-west-3", "http://127.0.0.1:1/bkt/")
    assert setup("p2", env) == ("P2", "ap-south-1", "http://127.0.0.1:1/bkt/")  # credentials over config file
    assert setup(None, {**env, "AWS_PROFILE": "p2"}) == ("ENV", "ap-south-1", "http://127.0.0.1:1/bkt/")
    assert setup(None, {"AWS_PROFILE": "conf"})[:2] == ("ONLYCONF", "us-east-1")  # type: ignore[index]
    assert setup(None, {**env, "AWS_DEFAULT_REGION": "us-west-2"})[1] == "us-west-2"  # type: ignore[index]
    # AWS itself, path and virtual-host style
    assert setup(None, env, None)[2] == "https://s3.eu-west-3.amazonaws.com/bkt/"  # type: ignore[index]
    assert setup(None, env, None, False)[2] == "https://bkt.s3.eu-west-3.amazonaws.com/"  # type: ignore[index]
    # what botocore decides: roles, missing profiles, endpoint settings, virtual hosts on an endpoint
    assert setup("role", env) is None
    assert setup("no-such-profile", env) is None
    assert setup(None, {**env, "AWS_ENDPOINT_URL_S3": "http://x"}) is None
    assert setup(None, {**env, "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}) is None
    assert setup(None, env, path_style=False) is None
    assert setup(None, {}) == ("FILE", "eu-west-3", "http://127.0.0.1:1/bkt/")  # the default profile
    (tmp_path / "empty").write_text("")
    nothing = str(tmp_path / "empty")  # no static keys: instance roles and the rest of the chain
    assert static_setup("bkt", None, True, nothing, nothing, None, {}) is None
    bundle = static_setup("bkt", None, True, creds, config, None, {**env, "AWS_CA_BUNDLE": "/ca.pem"})
    assert bundle is not None and bundle.ca_bundle == "/ca.pem"  # trusted as botocore would
