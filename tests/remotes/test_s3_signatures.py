"""The S3 fast path signs every request as botocore signs it (remotes/s3/sigv4.py).

Which requests take the fast path is in remotes/s3/__init__.py. Here each kind of them
is signed twice at one fixed instant: by the store's fast transport, and by botocore's
own S3SigV4Auth (signed headers: single PUTs, DELETEs) or S3SigV4QueryAuth (presigned
URLs: GETs, ranged GETs, HEADs, ListObjectsV2 pages), and the Authorization header or
the query string must be identical. The object keys have spaces, unicode, `+`, `~`,
`//`, `%` and sub-delimiters in them. botocore's clock is fixed by replacing
`botocore.auth.get_current_datetime`, the one function its signers read the time from.

The last tests go one step further out: botocore's client serializes the request
itself (put_object with every write option, sent to a real moto server, and
generate_presigned_url), and the fast path's request must carry the same headers
and the same signature. That a server which checks signatures takes ours, a ranged GET
with its unsigned Range header among them, is
test_s3_put.py::test_a_server_that_checks_signatures_takes_ours.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import urllib.parse
from pathlib import Path
from typing import Any

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from snapferry.checksums import crc32
from snapferry.remotes import RemoteOptions, open_remote
from snapferry.remotes.s3 import S3Remote
from snapferry.remotes.s3.sigv4 import UNSIGNED_PAYLOAD, quote_key
from tests.servers import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, S3Server

FIXED = datetime.datetime(2026, 12, 7, 21, 30, 5)  # naive UTC, as botocore's clock answers
NOW = calendar.timegm(FIXED.timetuple())
REGION = "eu-west-1"  # not botocore's default, so the scope must come from the profile
ACCESS, SECRET, TOKEN = "AKIDEXAMPLE", "s3cr3t/+=Key", "FwoG+token/with=odd&chars"
KEYS = [
    "plain/0000000000000001_0000000000000000_01",
    "with space/a b.bin",
    "ünïcødé/日本語/ß.bin",
    "plus+sign/a+b=c&d.bin",
    "tilde~/x~y.bin",
    "double//slash//x.bin",
    "percent%41/%2F.bin",
    "sub-delims/!$'()*,;:@[].bin",
]
# Where the bucket is: a path-style custom endpoint over http (the in-cluster store), one
# over https on a port, and AWS itself with virtual-host addressing.
ENDPOINTS = {
    "http": ("http://127.0.0.1:9000", True),
    "https-port": ("https://s3.example.com:8443", True),
    "aws-virtual-host": (None, False),
}
WRITE_OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "tags-metadata": {"s3_object_tags": {"team": "db", "env": "prod x+y"},
                      "object_metadata": {"cluster": "eu 1", "note": "two  spaces"}},
    "sse-kms-acl-class": {"s3_sse_kms_key_id": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd",
                          "s3_acl": "bucket-owner-full-control", "s3_storage_class": "STANDARD_IA"},
    "crc32c": {"s3_checksum_algorithm": "CRC32C"},
    "sha1": {"s3_checksum_algorithm": "SHA1"},
    "sha256": {"s3_checksum_algorithm": "SHA256"},
    "crc32-named": {"s3_checksum_algorithm": "CRC32"},
    "no-checksum": {"s3_checksum_algorithm": "NONE"},  # the body's SHA-256 is signed instead
}
# botocore's client computes a CRC32C only with awscrt, which snapferry does not install
# (the fast path computes it itself): its put_object is compared without that one.
CLIENT_WRITE_OPTIONS = [name for name in WRITE_OPTIONS if name != "crc32c"]


@pytest.fixture
def botocore_at_fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: FIXED)


def _files(tmp_path: Path, token: str | None) -> RemoteOptions:
    """Static keys in a profile named explicitly: the environment plays no part."""
    creds = tmp_path / "credentials"
    creds.write_text(f"[sig]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"
                     + (f"aws_session_token = {token}\n" if token else ""))
    config = tmp_path / "config"
    config.write_text(f"[profile sig]\nregion = {REGION}\n")
    return RemoteOptions(creds_file_path=str(creds), config_file_path=str(config), config_profile="sig")


def _remote(tmp_path: Path, endpoint: str, token: str | None = None, **options: Any) -> S3Remote:
    url, path_style = ENDPOINTS[endpoint]
    opts = _files(tmp_path, token)
    opts.custom_s3_endpoint, opts.s3_force_path_style = url, path_style
    for name, value in options.items():
        setattr(opts, name, value)
    r = open_remote("s3://bkt/pre", opts)
    assert isinstance(r, S3Remote)
    assert r.gets.fast_signer() is not None  # static keys: the fast path signs, without a probe
    return r


def _bucket_url(endpoint: str) -> str:
    """The bucket's URL, written out here rather than taken from the code under test."""
    url, path_style = ENDPOINTS[endpoint]
    return f"{url}/bkt/" if path_style else f"https://bkt.s3.{REGION}.amazonaws.com/"


def _object_url(endpoint: str, key: str) -> str:
    return _bucket_url(endpoint) + percent_encode(key, safe="/~")  # as botocore's serializer quotes a key


def _creds(token: str | None) -> Credentials:
    return Credentials(ACCESS, SECRET, token)


def _query(url: str) -> tuple[str, str, list[tuple[str, str]]]:
    split = urllib.parse.urlsplit(url)
    return split.netloc, split.path, sorted(urllib.parse.parse_qsl(split.query, keep_blank_values=True))


def _presigned_by_botocore(method: str, url: str, token: str | None, headers: dict[str, str] | None = None,
                           params: dict[str, str] | None = None) -> str:
    req = AWSRequest(method, url, headers=headers or {}, params=params or {})
    S3SigV4QueryAuth(_creds(token), "s3", REGION, expires=3600).add_auth(req)
    return str(req.url)


# --- presigned URLs (query-signed) ---------------------------------------------------

@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_presigned_get_is_botocores(endpoint: str, token: str | None, tmp_path: Path) -> None:
    # GETs of whole objects and the restore's ranged GETs: the Range header goes outside
    # the signature (only `host` is signed), as on any presigned URL.
    r = _remote(tmp_path, endpoint, token)
    for key in KEYS:
        ours = r.gets.presigned_get(key, NOW)
        theirs = _presigned_by_botocore("GET", _object_url(endpoint, key), token)
        assert _query(ours) == _query(theirs), key
        assert "X-Amz-SignedHeaders=host&" in ours
        if token is None:  # botocore's parameter order is ours then: the very same string
            assert ours == theirs, key


@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_presigned_head_is_botocores(endpoint: str, token: str | None, tmp_path: Path) -> None:
    # An object's HEAD, and verify's: the stored checksum (a signed header) of the whole
    # object or of its first part (a signed query parameter).
    r = _remote(tmp_path, endpoint, token)
    for key in KEYS:
        for query, headers in (({}, {}), ({}, {"x-amz-checksum-mode": "ENABLED"}), ({"partNumber": "1"}, {})):
            ours = r.gets._presign(quote_key(key), "HEAD", query, "head_object", {}, headers, now=NOW)
            theirs = _presigned_by_botocore("HEAD", _object_url(endpoint, key), token, headers, query)
            assert _query(ours) == _query(theirs), (key, query, headers)


@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_presigned_listing_is_botocores(endpoint: str, token: str | None, tmp_path: Path) -> None:
    # ListObjectsV2 pages and the bucket's HEAD; the continuation token is opaque and
    # full of '/', '+' and '=', the prefix has what keys have.
    r = _remote(tmp_path, endpoint, token)
    for prefix in ("pre/", "pre/with space/ünï+~/"):
        for page in ({}, {"continuation-token": "1/AbC+dEf==/g~h i"}):
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000", "encoding-type": "url", **page}
            ours = r.gets._presign("", "GET", query, "list_objects_v2", {}, now=NOW)
            theirs = _presigned_by_botocore("GET", _bucket_url(endpoint), token, params=query)
            assert _query(ours) == _query(theirs), (prefix, page)
    ours = r.gets._presign("", "HEAD", {}, "head_bucket", {}, now=NOW)
    assert _query(ours) == _query(_presigned_by_botocore("HEAD", _bucket_url(endpoint), token))


# --- signed headers -------------------------------------------------------------------

def _signed_by_botocore(r: S3Remote, method: str, url: str, headers: dict[str, str], body: bytes,
                        token: str | None, config: Any) -> AWSRequest:
    """`config`: botocore's client configuration, which decides, as in the store's own
    client, whether the body's SHA-256 is signed; None: botocore's defaults."""
    req = AWSRequest(method, url, data=body, headers=headers)
    if config is not None:
        req.context["client_config"] = config
    S3SigV4Auth(_creds(token), "s3", REGION).add_auth(req)
    return req


@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("options", list(WRITE_OPTIONS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_single_put_is_signed_as_botocore_signs_it(endpoint: str, options: str, token: str | None,
                                                   tmp_path: Path) -> None:
    # The headers are the store's own (tags, metadata, SSE-KMS, ACL, storage class, the
    # checksum, If-None-Match); whether the payload is signed is decided by the store's
    # botocore configuration on botocore's side and by the store's _payload_hash on ours.
    r = _remote(tmp_path, endpoint, token, **WRITE_OPTIONS[options])
    data = b"the body \x00\xff" * 100
    for key in KEYS:
        for crc, exclusive in ((crc32(data), False), (None, True)):
            headers = r._put_headers(data, crc, exclusive)
            assert headers is not None
            url, target, ours = r.gets.signed("PUT", key, headers, len(data), r._payload_hash(data), now=NOW)
            assert url == _object_url(endpoint, key) and url.endswith(target)
            theirs = _signed_by_botocore(r, "PUT", url, {**headers, "content-length": str(len(data))}, data, token,
                                         r._client.meta.config)
            assert ours["authorization"] == theirs.headers["Authorization"], (key, crc, exclusive)
            assert ours["x-amz-content-sha256"] == theirs.headers["X-Amz-Content-SHA256"]
            assert ours["x-amz-date"] == theirs.headers["X-Amz-Date"] == FIXED.strftime("%Y%m%dT%H%M%SZ")
            assert ours.get("x-amz-security-token") == theirs.headers.get("X-Amz-Security-Token") == token
    if options == "no-checksum":
        assert r._payload_hash(data) != UNSIGNED_PAYLOAD


@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_delete_is_signed_as_botocore_signs_it(endpoint: str, token: str | None, tmp_path: Path) -> None:
    # A DELETE has no body: the fast path signs the empty body's SHA-256, as botocore's
    # signer does by default for a request without one.
    r = _remote(tmp_path, endpoint, token)
    for key in KEYS:
        url, _, ours = r.gets.signed("DELETE", key, {}, 0, hashlib.sha256(b"").hexdigest(), now=NOW)
        theirs = _signed_by_botocore(r, "DELETE", url, {"content-length": "0"}, b"", token, None)
        assert ours["authorization"] == theirs.headers["Authorization"], key


# --- botocore's client serializes the request -----------------------------------------

def _epoch(amz_date: str) -> int:
    return calendar.timegm(datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").timetuple())


@pytest.mark.parametrize("options", CLIENT_WRITE_OPTIONS)
def test_put_object_of_botocores_client_is_the_fast_put(options: str, moto_server: S3Server,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The store's botocore path (its fast signer taken away) sends put_object to moto; the
    # request botocore serialized and signed must be the one the fast path would send:
    # same URL, same signed headers and values, same signature. botocore also signs its
    # retry bookkeeping (amz-sdk-invocation-id, amz-sdk-request), which the fast path
    # does not send: those two are left out of the comparison, and botocore re-signs
    # its request without them, at the instant it stamped.
    url, opts = moto_server.new_remote()
    for name, value in WRITE_OPTIONS[options].items():
        setattr(opts, name, value)
    fast = open_remote(url, opts)
    slow = open_remote(url, opts)
    assert isinstance(fast, S3Remote) and isinstance(slow, S3Remote)
    slow.gets.signer, slow.gets._probed = None, True
    sent: list[Any] = []
    slow._client.meta.events.register("before-send.s3.PutObject", lambda request, **kw: sent.append(request))
    data = b"x" * 1000
    for i, key in enumerate(KEYS):
        crc, exclusive = (crc32(data), False) if i % 2 else (None, True)
        full_key = slow._key(f"{options}/{key}")
        slow._put(full_key, data, crc, exclusive)
        req = sent[-1]
        theirs = {k.lower(): v for k, v in req.headers.items()}
        theirs = {k: v.decode() if isinstance(v, bytes) else v for k, v in theirs.items()}
        headers = fast._put_headers(data, crc, exclusive)
        assert headers is not None
        u, _, ours = fast.gets.signed("PUT", full_key, headers, len(data), fast._payload_hash(data),
                                      now=_epoch(theirs["x-amz-date"]))
        assert u == req.url, key
        signed_names = theirs["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        bookkeeping = {"amz-sdk-invocation-id", "amz-sdk-request"}
        assert set(signed_names) - bookkeeping == {*ours, "host"} - {"authorization"}, key
        assert {k: theirs[k] for k in ours if k != "authorization"} == {k: v for k, v in ours.items()
                                                                        if k != "authorization"}, key
        resend = {k: v for k, v in theirs.items() if k not in bookkeeping | {"authorization", "user-agent"}}
        stamp = datetime.datetime.strptime(theirs["x-amz-date"], "%Y%m%dT%H%M%SZ")
        again = AWSRequest("PUT", req.url, data=data, headers=resend)
        again.context["client_config"] = slow._client.meta.config
        with monkeypatch.context() as mp:
            mp.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True, s=stamp: s)
            S3SigV4Auth(Credentials(S3_ACCESS_KEY, S3_SECRET_KEY), "s3", S3_REGION).add_auth(again)
        assert ours["authorization"] == again.headers["Authorization"], key
        assert fast.read_file(f"{options}/{key}") == data


@pytest.mark.usefixtures("botocore_at_fixed_time")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_presigned_urls_of_botocores_client_are_the_fast_paths(endpoint: str, token: str | None,
                                                                tmp_path: Path) -> None:
    # botocore's client (the store's, made from the same files) presigns get_object and
    # head_object; the fast path must make the same URLs without it.
    r = _remote(tmp_path, endpoint, token)
    for key in KEYS:
        theirs = r._client.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=3600)
        assert _query(r.gets.presigned_get(key, NOW)) == _query(theirs), key
        theirs = r._client.generate_presigned_url(
            "head_object", Params={"Bucket": "bkt", "Key": key, "ChecksumMode": "ENABLED"}, ExpiresIn=3600)
        ours = r.gets._presign(quote_key(key), "HEAD", {}, "head_object", {}, {"x-amz-checksum-mode": "ENABLED"},
                               now=NOW)
        assert _query(ours) == _query(theirs), key
