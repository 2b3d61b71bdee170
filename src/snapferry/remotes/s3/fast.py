"""The S3 fast transport: GETs, HEADs and listings on presigned URLs, and single PUTs
and DELETEs signed in headers, over a plain pool (which request comes here: the
package docstring).

These skip botocore's request pipeline and response parser (about 1.2 ms of CPU per
GET; a PUT of a small object cost more). With static keys (static_creds) the
base URL and signing region are known without botocore, which then is never
imported by a restore or a verify. Otherwise botocore presigns one probe key
once, which fixes them; each request after it is signed by sigv4 (checked
against botocore by tests/remotes/test_s3_signatures.py). An endpoint whose URLs
have another shape keeps botocore's presigner for the reads, and botocore's client
for the rest.
Plain-HTTP endpoints are read through plainhttp (recv into the caller's buffer, or
splice into a file); TLS ones through urllib3. A request that botocore would send
through a forward proxy (proxy: HTTP(S)_PROXY, NO_PROXY) goes through the same
proxy on a urllib3 ProxyManager instead, never around it. Errors come back as HttpStatus or
the stream's own exceptions, for S3Remote._classify to word. Nothing is retried
here: a failed range is retried by the restore, from its first missing byte.
"""

from __future__ import annotations

import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from ...errors import RemoteError
from .._cloud import HttpStatus
from .._transfer import RangeReader, check_range_response
from ..base import Reader, RemoteOptions
from . import plainhttp, sigv4
from . import proxy as proxies
from .static_creds import StaticS3

_PLAIN_QUERY = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                          "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"})


class FastTransport:
    """The fast requests of one bucket's objects. With `static` set they sign themselves; else
    `client()` (botocore's S3 client, made on first call) presigns and `creds` sign."""

    def __init__(self, client: Callable[[], Any], creds: Any, bucket: str, probe_key: str, url: str,
                 opts: RemoteOptions, static: StaticS3 | None = None, ca_bundle: str | None = None) -> None:
        self._client = client
        self._creds = creds
        self._bucket = bucket
        self._probe_key = probe_key
        self._url = url
        self._opts = opts
        self._static = static
        self.signer: sigv4.Signer | None = None
        self._probed = False
        if static is not None:
            self.signer = sigv4.Signer(static.base, static.region)
            self._probed = True
        self._pool = urllib3.PoolManager(
            maxsize=max(opts.max_connections, 1),
            retries=False,
            timeout=urllib3.Timeout(connect=10.0, read=opts.read_timeout),
            cert_reqs="CERT_NONE" if opts.tls_insecure_skip_verify else "CERT_REQUIRED",
            # The CA bundle botocore trusts (AWS_CA_BUNDLE, a profile's ca_bundle), or the default.
            ca_certs=None if opts.tls_insecure_skip_verify else static.ca_bundle if static is not None else ca_bundle,
        )
        self._conns: dict[str, plainhttp.Connections] = {}  # plain-HTTP hosts, one pool each
        self._conns_lock = threading.Lock()
        # Read once: without a *_proxy variable every request goes direct, at no cost per request.
        self._proxies_set = proxies.any_set()
        self._routes: dict[tuple[str, str], str | None] = {}  # (scheme, netloc) -> its proxy, or None
        self._proxied: dict[str, urllib3.ProxyManager] = {}  # proxy URL -> its pool

    def _route(self, split: urllib.parse.SplitResult) -> str | None:
        """The forward proxy of this scheme and host (decided once: the environment is read once)."""
        key = (split.scheme, split.netloc)
        try:
            return self._routes[key]
        except KeyError:
            pass
        proxy = proxies.proxy_for(f"{split.scheme}://{split.netloc}/")
        with self._conns_lock:
            return self._routes.setdefault(key, proxy)

    def _pool_for(self, url: str) -> urllib3.PoolManager:
        """The direct pool, or the proxy's when a proxy applies to `url`."""
        if not self._proxies_set:
            return self._pool
        proxy = self._route(urllib.parse.urlsplit(url))
        if proxy is None:
            return self._pool
        with self._conns_lock:
            pool = self._proxied.get(proxy)
            if pool is None:
                pool = self._proxied[proxy] = urllib3.ProxyManager(
                    proxy, proxy_headers=proxies.proxy_headers(proxy), **self._pool.connection_pool_kw)
            return pool

    def _direct_http(self, split: urllib.parse.SplitResult) -> bool:
        """The plain-HTTP fast path: http://, splice there, and no proxy to go through."""
        return (split.scheme == "http" and plainhttp.SUPPORTED
                and (not self._proxies_set or self._route(split) is None))

    def open_range(self, key: str, offset: int, length: int, what: str) -> Reader:
        url = self.presigned_get(key)
        split = urllib.parse.urlsplit(url)
        byte_range = f"bytes={offset}-{offset + length - 1}"
        if self._direct_http(split):
            target = f"{split.path}?{split.query}" if split.query else split.path
            conns = self._http_conns(split)
            r = plainhttp.get(conns, target, split.netloc, {"Range": byte_range}, f"{what} on {self._url}")
            if r.status not in (200, 206):
                raise _status(r.status, r.read_small())
            plainhttp.check_body_length(r, what)
            check_range_response(str(r.length), r.status, offset, length, what, self._url, r.close)
            return r
        resp = self._pool_for(url).request("GET", url, headers={"Range": byte_range}, preload_content=False)
        if resp.status not in (200, 206):
            body = resp.read(4096, decode_content=False) if resp.status != 304 else b""
            resp.release_conn()
            raise _status(resp.status, body)
        check_range_response(resp.headers.get("Content-Length"), resp.status, offset, length, what, self._url,
                             resp.release_conn)
        return RangeReader(resp, length, what, resp.release_conn)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under prefix: ListObjectsV2 pages on presigned URLs,
        parsed with ElementTree (botocore's parser took 0.15 s per 2,000 keys)."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000", "encoding-type": "url"}
            params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": 1000, "EncodingType": "url"}
            if token:
                query["continuation-token"] = params["ContinuationToken"] = token
            url = self._presign("", "GET", query, "list_objects_v2", params)
            resp = self._pool_for(url).request("GET", url)
            if resp.status != 200:
                raise _status(resp.status, resp.data[:4096])
            try:
                root = ET.fromstring(resp.data)
            except ET.ParseError as e:
                raise RemoteError(f"listing {self._url} failed: the listing is not XML: {e}") from e
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
            for obj in root.iter(f"{ns}Contents"):
                key = obj.findtext(f"{ns}Key") or ""
                yield (urllib.parse.unquote(key) if encoded else key), int(obj.findtext(f"{ns}Size") or 0)
            token = root.findtext(f"{ns}NextContinuationToken")
            if (root.findtext(f"{ns}IsTruncated") or "").lower() != "true":
                return
            if not token:
                raise RemoteError(f"listing {self._url} failed: a truncated listing came without a continuation token")

    def get(self, key: str) -> bytes:
        """The whole object (a small file: the whole body is held)."""
        url = self.presigned_get(key)
        resp = self._pool_for(url).request("GET", url)
        if resp.status != 200:
            raise _status(resp.status, resp.data[:4096])
        data: bytes = resp.data
        return data

    def fast_signer(self) -> sigv4.Signer | None:
        """Our signer when it knows the base URL (after the one probe), else None: botocore then."""
        if not self._probed:
            self.presigned_get(self._probe_key)
        return self.signer

    def send(self, method: str, key: str, headers: dict[str, str], body: bytes | bytearray, payload_hash: str,
             what: str, query: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> dict[str, str]:
        """One header-signed request (a single PUT, a DELETE),
        for when fast_signer() is not None. Returns the answer's headers (lower-case names);
        an answer not in `ok` raises HttpStatus with S3's error code, for _classify."""
        url, target, hdrs = self.signed(method, key, headers, len(body), payload_hash, query)
        signer = self.signer
        assert signer is not None
        split = urllib.parse.urlsplit(url)
        if self._direct_http(split):
            conns = self._http_conns(split)
            r = plainhttp.request(conns, method, target, signer.host, hdrs, f"{what} on {self._url}", body)
            if r.status not in ok:
                raise _status(r.status, r.read_small())
            r.read_body()
            return r.headers
        # urllib3 sends bytes whole but would iterate a bytearray as ints: one copy, over TLS only.
        resp = self._pool_for(url).request(method, url, body=bytes(body), headers=hdrs)
        if resp.status not in ok:
            raise _status(resp.status, resp.data[:4096])
        return {k.lower(): v for k, v in resp.headers.items()}

    def signed(self, method: str, key: str, headers: dict[str, str], length: int, payload_hash: str,
               query: dict[str, str] | None = None, now: float | None = None) -> tuple[str, str, dict[str, str]]:
        """The URL, request target and headers (with their signature) of one header-signed
        request whose body has `length` bytes; `now` (epoch seconds) fixes x-amz-date."""
        signer = self.signer
        assert signer is not None, "signed() needs fast_signer()"
        quoted = sigv4.quote_key(key)
        query_s = sigv4.canonical_query(query) if query else ""
        hdrs = {**headers, "content-length": str(length)}
        hdrs.update(signer.headers(quoted, self._keys(), method, hdrs, payload_hash, query_s, now))
        suffix = f"?{query_s}" if query_s else ""
        return signer.base_url(quoted) + suffix, signer.target(quoted) + suffix, hdrs

    def head(self, key: str, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> urllib3.HTTPHeaderDict:
        """The object's headers; HttpStatus (no code: a HEAD has no body) when it is not there.
        `query` and `headers` are S3's names (partNumber, x-amz-checksum-mode): fast_signer() only."""
        params = {"Bucket": self._bucket, "Key": key}
        url = self._presign(sigv4.quote_key(key), "HEAD", query or {}, "head_object", params, headers)
        resp = self._pool_for(url).request("HEAD", url, headers=headers)
        if resp.status not in (200, 206):  # 206: a HEAD of one part (partNumber) of a multipart object
            raise HttpStatus(resp.status)
        return resp.headers

    def head_bucket(self) -> None:
        url = self._presign("", "HEAD", {}, "head_bucket", {"Bucket": self._bucket})
        resp = self._pool_for(url).request("HEAD", url)
        if resp.status != 200:
            raise HttpStatus(resp.status)

    def _presign(self, quoted_key: str, method: str, query: dict[str, str], op: str, params: dict[str, Any],
                 headers: dict[str, str] | None = None, now: float | None = None) -> str:
        """Signed by sigv4 when the base URL is known, else by botocore's presigner (which
        reads its own clock: `now` fixes X-Amz-Date of ours only, for the tests)."""
        if not self._probed:
            self.presigned_get(self._probe_key)
        if self.signer is not None:
            return self.signer.url(quoted_key, self._keys(), now, method=method, query=query, headers=headers)
        if headers:
            raise RuntimeError("signed headers need the fast signer")  # S3Remote asks only when fast_signer()
        url: str = self._client().generate_presigned_url(op, Params=params, ExpiresIn=3600, HttpMethod=method)
        return url

    def _keys(self) -> sigv4.Keys:
        if self._static is not None:
            return self._static.keys
        c = self._creds.get_frozen_credentials()
        return sigv4.Keys(c.access_key, c.secret_key, c.token)

    def presigned_get(self, key: str, now: float | None = None) -> str:
        """A presigned GET of key, at a fraction of generate_presigned_url's cost (py-spy
        --gil: its endpoint rules and events were 36 % of a restore's Python time).
        `now` (epoch seconds) fixes X-Amz-Date, so tests can compare with botocore."""
        if not self._probed:
            base = self._probe_get_base()
            self.signer = sigv4.Signer(*base) if base is not None else None
            self._probed = True
        if self.signer is None:
            url: str = self._client().generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=3600
            )
            return url
        return self.signer.url(sigv4.quote_key(key), self._keys(), now)

    def _probe_get_base(self) -> tuple[str, str] | None:
        url = self._client().generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": self._probe_key}, ExpiresIn=3600
        )
        split = urllib.parse.urlsplit(url)
        quoted = sigv4.quote_key(self._probe_key)
        query = urllib.parse.parse_qs(split.query)
        scope = query.get("X-Amz-Credential", [""])[0].split("/")
        if not split.path.endswith("/" + quoted) or set(query) - _PLAIN_QUERY or len(scope) != 5 or scope[3] != "s3":
            return None
        return f"{split.scheme}://{split.netloc}{split.path[: -len(quoted)]}", scope[2]

    def _http_conns(self, split: urllib.parse.SplitResult) -> plainhttp.Connections:
        with self._conns_lock:
            conns = self._conns.get(split.netloc)
            if conns is None:
                conns = plainhttp.Connections(
                    split.hostname or "", split.port or 80, 10.0, self._opts.read_timeout, self._opts.max_connections
                )
                self._conns[split.netloc] = conns
            return conns

    def close(self) -> None:
        for conns in self._conns.values():
            conns.close()
        self._pool.clear()
        for pool in self._proxied.values():
            pool.clear()


def _status(status: int, body: bytes) -> HttpStatus:
    """The error answer, worded as botocore words it ("Code Message") when the body says."""
    code, message = _xml_field(body, b"Code"), _xml_field(body, b"Message")
    e = HttpStatus(status, code)
    if code:
        e.args = (f"{code} {message}".rstrip(),)
    return e


def _xml_field(body: bytes, name: bytes) -> str:
    start, end = b"<" + name + b">", b"</" + name + b">"
    if start not in body:
        return ""
    return body.split(start, 1)[1].split(end, 1)[0].decode(errors="replace")
