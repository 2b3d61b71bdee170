"""SigV4 signing of S3's frequent requests: query-signed reads (GET, HEAD, listings: a restore
makes thousands) and header-signed single PUTs (a backup of small files makes thousands).

botocore signs correctly but slowly for this use: its SigV4 signer re-derives the
signing key, re-parses the host and checks it for IPv6 on every call (py-spy
--gil: 28 % of a restore's Python time from SeaweedFS, even after skipping
generate_presigned_url's endpoint rules). This signs exactly what botocore's
S3SigV4QueryAuth signs (the host header, and any header given, UNSIGNED-PAYLOAD),
with the signing key cached per day. `headers` signs as botocore's S3SigV4Auth does
(every header given, x-amz-date and x-amz-content-sha256 with it).
tests/remotes/test_s3_signatures.py checks both against botocore's signers, request by
request (test_contract.py and test_s3_put.py against real servers too). Everything else
keeps botocore.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass

_SAFE = "-_.~"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True, slots=True)
class Keys:
    access_key: str
    secret_key: str
    token: str | None


class Signer:
    """SigV4 signatures of requests under one base URL (scheme://host[:port]/path-prefix/):
    presigned URLs (`url`) and signed headers (`headers`)."""

    def __init__(self, base: str, region: str, expires: int = 3600) -> None:
        split = urllib.parse.urlsplit(base)
        self._base = base
        self._base_path = split.path
        self._host = _host(split)
        self._region = region
        self._expires = str(expires)
        self._key_cache: tuple[str, str, bytes] | None = None  # (secret, date, signing key)

    def url(self, quoted_key: str, keys: Keys, now: float | None = None, *, method: str = "GET",
            query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> str:
        """A presigned `method` URL of the key; `query` joins the signed query string and
        `headers` (lower-case names) are signed too: the request must send them."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amz_date[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        signed = {"host": self._host, **(headers or {})}
        names = ";".join(sorted(signed))
        params = {
            **(query or {}),
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{keys.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": self._expires,
            "X-Amz-SignedHeaders": names,
        }
        if keys.token:
            params["X-Amz-Security-Token"] = keys.token
        query_s = canonical_query(params)
        header_lines = "".join(f"{k}:{signed[k].strip()}\n" for k in sorted(signed))
        canonical = f"{method}\n{self._base_path}{quoted_key}\n{query_s}\n{header_lines}\n{names}\nUNSIGNED-PAYLOAD"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(keys.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self._base}{quoted_key}?{query_s}&X-Amz-Signature={signature}"

    @property
    def host(self) -> str:
        """The Host header the signatures cover."""
        return self._host

    def base_url(self, quoted_key: str) -> str:
        return f"{self._base}{quoted_key}"

    def target(self, quoted_key: str) -> str:
        """The request target (path) of the key, as signed."""
        return f"{self._base_path}{quoted_key}"

    def headers(self, quoted_key: str, keys: Keys, method: str, headers: dict[str, str], payload_hash: str,
                query: str = "", now: float | None = None) -> dict[str, str]:
        """The headers that sign a request (Authorization and what it covers) to add to
        `headers` (lower-case names, all signed, as botocore signs all but Expect and
        User-Agent). `query` is the canonical query string (sorted, quoted) or "";
        `payload_hash` the body's hex SHA-256, or UNSIGNED-PAYLOAD."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amz_date[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        extra = {"x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if keys.token:
            extra["x-amz-security-token"] = keys.token
        signed = {"host": self._host, **headers, **extra}
        names = ";".join(sorted(signed))
        header_lines = "".join(f"{k}:{' '.join(signed[k].split())}\n" for k in sorted(signed))
        canonical = f"{method}\n{self._base_path}{quoted_key}\n{query}\n{header_lines}\n{names}\n{payload_hash}"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(keys.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        extra["authorization"] = (f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope}, "
                                  f"SignedHeaders={names}, Signature={signature}")
        return extra

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key_cache
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        k = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
        for part in (self._region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self._key_cache = (secret, day, k)
        return k


def quote_key(key: str) -> str:
    """An object key as it goes into the request path and its signature: every byte but
    unreserved ones and "/" escaped, as botocore's S3 serializer and signer do."""
    return urllib.parse.quote(key, safe="/~")


def canonical_query(params: dict[str, str]) -> str:
    """SigV4's canonical query string, which is also the one the request sends."""
    quote = urllib.parse.quote
    return "&".join(f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in sorted(params.items()))


def _host(split: urllib.parse.SplitResult) -> str:
    # As botocore signs it: the port only when it is not the scheme's default.
    host = split.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(split.scheme)
    return host if split.port is None or split.port == default else f"{host}:{split.port}"
