"""The `s3://bucket/prefix` remote (AWS S3 and S3-compatible stores) on botocore.

botocore signs every request and sends the writes; the hot reads (ranged GETs and
listings) go to presigned URLs over a plain connection pool, which costs a fraction
of botocore's request pipeline and response parser.
"""

from __future__ import annotations

import base64
import os
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import botocore.exceptions as bce
import botocore.session
import urllib3
from botocore.config import Config

from ..errors import RemoteError, SnapferryError, TransientRemoteError, UsageError
from ..parts import Part
from . import _cloud, _http, _sigv4
from .base import Body, LocalRegion, Reader, Remote, RemoteOptions

_MIN_CHUNK = 5 * 1024 * 1024  # S3's smallest multipart chunk (but the last)
_MAX_CHUNKS = 10_000
# Listings are idempotent GETs, so the pool may retry them itself, with backoff.
_LIST_RETRIES = urllib3.Retry(total=4, backoff_factor=0.25, status_forcelist=(429, 500, 502, 503, 504),
                              raise_on_status=False)

_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
        "401",
    }
)
_NOT_FOUND_CODES = ("NoSuchKey", "NotFound", "404")
# Failures below the HTTP layer; botocore already retried them max_attempts times.
_CONNECTION_ERRORS = (
    bce.EndpointConnectionError,
    bce.ConnectionClosedError,
    bce.ReadTimeoutError,
    bce.ConnectTimeoutError,
    bce.ResponseStreamingError,
    bce.IncompleteReadError,
    bce.HTTPClientError,
)


class S3Remote(_cloud.ObjectStore):
    def __init__(self, bucket: str, prefix: str, opts: RemoteOptions) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.url = _cloud.remote_url("s3", bucket, prefix)
        self._opts = opts
        self._metadata = _cloud.check_metadata(opts.object_metadata)
        self._chunk = max(opts.multipart_chunk_size, _MIN_CHUNK)
        session = _session(opts, self.url)
        endpoint = opts.custom_s3_endpoint or None
        if endpoint is not None and "://" not in endpoint:
            raise UsageError(
                f"the S3 endpoint {endpoint!r} has no scheme; "
                "write it as http://host:port or https://host"
            )
        try:
            creds = session.get_credentials()
        except bce.ProfileNotFound as e:
            raise UsageError(f"{e}; fix the profile name or the AWS config file") from e
        if creds is None:
            raise UsageError(
                f"no AWS credentials found for {self.url}; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or pass an AWS credentials file (-credsFilePath)"
            )
        self._access_key = creds.access_key
        self._creds = creds
        # Signs ranged GETs; None when the endpoint's presigned URLs are not of the plain
        # form it makes (see _presigned_get).
        self._get_signer: _sigv4.GetSigner | None = None
        self._probed = False
        checksum = (opts.s3_checksum_algorithm or "").upper()
        self._checksum_alg = checksum if checksum not in ("", "NONE") else None
        config = Config(
            region_name=session.get_config_variable("region") or "us-east-1",
            signature_version="s3v4",
            max_pool_connections=max(opts.max_connections, 1),
            # "standard" retries throttling codes and 5xx with exponential backoff and jitter.
            retries={"max_attempts": max(opts.max_attempts, 1), "mode": "standard"},
            s3={
                "addressing_style": "path" if opts.s3_force_path_style else "virtual",
                # The checksum header (CRC32 by default) already protects each body; signing a
                # SHA-256 of every payload too (botocore's default over plain http, not over
                # https) cost a backup to SeaweedFS 7 of its 16 CPU seconds. Without a
                # checksum the signature is the only integrity check left, so it stays.
                "payload_signing_enabled": checksum == "NONE",
            },
            connect_timeout=10,
            read_timeout=opts.read_timeout,
            tcp_keepalive=True,
            # Ranged reads carry no whole-object checksum; asking for one costs a header.
            response_checksum_validation="when_required",
            # "NONE" switches off the default CRC32 for stores that reject checksum headers.
            request_checksum_calculation=(
                "when_required" if checksum == "NONE" else "when_supported"
            ),
        )
        if opts.tls_insecure_skip_verify:
            _cloud.quiet_insecure_tls_warnings()
        self._client: Any = session.create_client(
            "s3",
            endpoint_url=endpoint,
            config=config,
            verify=not opts.tls_insecure_skip_verify,
        )
        self.endpoint: str = str(endpoint or self._client.meta.endpoint_url)
        self._pool = urllib3.PoolManager(
            maxsize=max(opts.max_connections, 1),
            retries=False,  # a failed range is retried by the restore, from its first missing byte
            timeout=urllib3.Timeout(connect=10.0, read=opts.read_timeout),
            cert_reqs="CERT_NONE" if opts.tls_insecure_skip_verify else "CERT_REQUIRED",
        )
        # Plain-HTTP endpoints get splice(2) GETs (remotes/_http.py), one pool per host.
        self._conns: dict[str, _http.Connections] = {}
        self._conns_lock = threading.Lock()

    # --- errors ---------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SnapferryError:
            raise
        except bce.ClientError as e:
            raise self._client_error(e, what) from e
        except _CONNECTION_ERRORS as e:
            raise TransientRemoteError(
                f"{what} on {self.url} failed: cannot talk to {self.endpoint}: {e}"
            ) from e
        except bce.NoCredentialsError as e:
            raise UsageError(
                f"no AWS credentials found for {self.url}; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or pass an AWS credentials file (-credsFilePath)"
            ) from e
        except bce.BotoCoreError as e:
            raise RemoteError(f"{what} on {self.url} failed: {e}") from e

    def _client_error(self, e: bce.ClientError, what: str) -> SnapferryError:
        code = _code(e)
        msg = e.response.get("Error", {}).get("Message") or ""
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NoSuchBucket":
            return self._no_bucket()
        if code in _NOT_FOUND_CODES:
            if code != "NoSuchKey":
                # A HEAD gets a bare 404 for a missing bucket and a missing key alike.
                self._raise_if_no_bucket()
            return RemoteError(f"{what}: the object does not exist in {self.url}")
        if code in _AUTH_CODES or status in (401, 403):
            return RemoteError(
                f"{what}: {self.endpoint} denied access to {self.url} ({code}); "
                "check the credentials, the region and the bucket policy"
            )
        if code in _THROTTLE_CODES or status == 429 or status >= 500:
            return TransientRemoteError(f"{what} on {self.url} failed: {code} {msg}".rstrip())
        return RemoteError(f"{what} on {self.url} failed: {code} {msg}".rstrip())

    def _no_bucket(self) -> RemoteError:
        return RemoteError(
            f"bucket {self.bucket!r} does not exist at {self.endpoint}; "
            f"create it or fix the URL {self.url}"
        )

    def _raise_if_no_bucket(self) -> None:
        """HEAD answers a bare 404 for a missing bucket and a missing key alike."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except bce.ClientError as e:
            if _code(e) in ("NoSuchBucket", *_NOT_FOUND_CODES):
                raise self._no_bucket() from e
        except bce.BotoCoreError:
            pass

    # --- write arguments ------------------------------------------------

    def _write_args(self) -> dict[str, Any]:
        o = self._opts
        args: dict[str, Any] = {}
        if self._metadata:
            args["Metadata"] = self._metadata
        if o.s3_storage_class:
            args["StorageClass"] = o.s3_storage_class
        if o.s3_acl:
            args["ACL"] = o.s3_acl
        if o.s3_sse_kms_key_id:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = o.s3_sse_kms_key_id
        if o.s3_object_tags:
            args["Tagging"] = urllib.parse.urlencode(o.s3_object_tags)
        if self._checksum_alg:
            args["ChecksumAlgorithm"] = self._checksum_alg
        return args

    # --- parts ----------------------------------------------------------

    def list_parts(self) -> list[Part]:
        return self._parts(self._list_objects(_cloud.list_prefix(self.prefix)))

    def _list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under prefix: ListObjectsV2 pages on presigned URLs,
        parsed with ElementTree (botocore's parser took 0.15 s per 2,000 keys)."""
        token: str | None = None
        what = "listing"
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000, "EncodingType": "url"}
            if token:
                params["ContinuationToken"] = token
            with self._errors(what):
                url = self._client.generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=3600)
            try:
                resp = self._pool.request("GET", url, retries=_LIST_RETRIES)
            except _cloud.STREAM_ERRORS as e:
                raise TransientRemoteError(
                    f"{what} {self.url} failed: cannot talk to {self.endpoint}: {e}"
                ) from e
            if resp.status != 200:
                self._raise_for_get(resp.status, resp.data[:4096], what)
            try:
                root = ET.fromstring(resp.data)
            except ET.ParseError as e:
                raise RemoteError(
                    f"{what} {self.url} failed: {self.endpoint} sent a listing that is not XML: {e}"
                ) from e
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
            for obj in root.iter(f"{ns}Contents"):
                key = obj.findtext(f"{ns}Key") or ""
                yield (urllib.parse.unquote(key) if encoded else key), int(obj.findtext(f"{ns}Size") or 0)
            token = root.findtext(f"{ns}NextContinuationToken")
            if (root.findtext(f"{ns}IsTruncated") or "").lower() != "true":
                return
            if not token:
                raise RemoteError(
                    f"{what} {self.url} failed: {self.endpoint} sent a truncated listing without a "
                    "continuation token"
                )

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        length = _cloud.check_range(part, offset, length)
        key = self._key(part.name)
        what = f"reading {part}"
        if length == 0:
            # A Range header on an empty object is an error; still prove the object exists.
            with self._errors(what):
                self._client.head_object(Bucket=self.bucket, Key=key)
            return _cloud.EmptyReader()
        # The data path skips boto3's request pipeline, which costs about 1.2 ms of CPU
        # per GET (a restore makes thousands): botocore presigns the URL (endpoint,
        # addressing style, credentials and session tokens stay botocore's business) and
        # a plain urllib3 pool sends it; the Range header needs no signature.
        with self._errors(what):
            url = self._presigned_get(key)
        split = urllib.parse.urlsplit(url)
        byte_range = f"bytes={offset}-{offset + length - 1}"
        if split.scheme == "http" and _http.SUPPORTED:
            conns = self._splice_conns(split)
            target = f"{split.path}?{split.query}" if split.query else split.path
            r = _http.get(conns, target, split.netloc, {"Range": byte_range}, f"{what} on {self.url}")
            if r.status not in (200, 206):
                self._raise_for_get(r.status, r.read_small(), what)
            _http.check_body_length(r, what)
            _cloud.check_range_response(str(r.length), r.status, offset, length, what, self.url, r.close)
            return r
        try:
            resp = self._pool.request("GET", url, headers={"Range": byte_range}, preload_content=False)
        except _cloud.STREAM_ERRORS as e:
            raise TransientRemoteError(f"{what} on {self.url} failed: cannot talk to {self.endpoint}: {e}") from e
        if resp.status not in (200, 206):
            body = resp.read(4096, decode_content=False) if resp.status != 304 else b""
            resp.release_conn()
            self._raise_for_get(resp.status, body, what)
        _cloud.check_range_response(resp.headers.get("Content-Length"), resp.status, offset, length, what, self.url,
                                    resp.release_conn)
        return _cloud.RangeReader(resp, length, what, resp.release_conn)

    def _presigned_get(self, key: str) -> str:
        """A presigned GET of key, at a fraction of generate_presigned_url's cost.

        generate_presigned_url resolves the endpoint rules and emits a dozen events on
        every call (py-spy --gil: 36 % of a restore's Python time from SeaweedFS). The
        URLs of two keys differ only in the path, so botocore presigns one probe key
        once, which fixes the base URL and the signing region, and each GET after it is
        signed by _sigv4 (checked against botocore by the tests). An endpoint whose URLs
        have any other shape keeps botocore's full path.
        """
        if not self._probed:
            base = self._probe_get_base()
            self._get_signer = _sigv4.GetSigner(*base) if base is not None else None
            self._probed = True
        if self._get_signer is None:
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=3600
            )
            return url
        c = self._creds.get_frozen_credentials()
        keys = _sigv4.Keys(c.access_key, c.secret_key, c.token)
        return self._get_signer.url(urllib.parse.quote(key, safe="/~"), keys)

    def _probe_get_base(self) -> tuple[str, str] | None:
        probe = self._key("snapferry-probe")
        url = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": probe}, ExpiresIn=3600
        )
        split = urllib.parse.urlsplit(url)
        quoted = urllib.parse.quote(probe, safe="/~")
        query = urllib.parse.parse_qs(split.query)
        scope = query.get("X-Amz-Credential", [""])[0].split("/")
        plain = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                 "X-Amz-Signature", "X-Amz-Security-Token"}
        if not split.path.endswith("/" + quoted) or set(query) - plain or len(scope) != 5 or scope[3] != "s3":
            return None
        return f"{split.scheme}://{split.netloc}{split.path[: -len(quoted)]}", scope[2]

    def _splice_conns(self, split: urllib.parse.SplitResult) -> _http.Connections:
        with self._conns_lock:
            conns = self._conns.get(split.netloc)
            if conns is None:
                conns = _http.Connections(
                    split.hostname or "", split.port or 80, 10.0, self._opts.read_timeout,
                    self._opts.max_connections,
                )
                self._conns[split.netloc] = conns
            return conns

    def _raise_for_get(self, status: int, body: bytes, what: str) -> None:
        code = ""
        if b"<Code>" in body:
            code = body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode(errors="replace")
        if code == "NoSuchBucket":
            raise self._no_bucket()
        if status == 404:
            raise RemoteError(f"{what}: the object does not exist in {self.url}")
        if status in (401, 403):
            raise RemoteError(
                f"{what}: {self.endpoint} denied access to {self.url} ({code or status}); "
                "check the credentials, the region and the bucket policy"
            )
        if code in _THROTTLE_CODES or status == 429 or status >= 500:
            raise TransientRemoteError(f"{what} on {self.url} failed: HTTP {status} {code}".rstrip())
        raise RemoteError(f"{what} on {self.url} failed: HTTP {status} {code}".rstrip())

    def upload_part(
        self,
        part: Part,
        body: Body,
        local: LocalRegion | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int] | None:
        key = self._key(part.name)
        what = f"uploading {part}"
        chunk = max(self._chunk, -(-part.size // _MAX_CHUNKS))
        with _cloud.ChunkSource(part, body, local, what) as src:
            if part.size <= chunk:
                data = src.read_reused(part.size)
                with self._errors(what):
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=data,
                        ContentLength=len(data),
                        **self._checksum_arg(src),
                        **self._write_args(),
                    )
                if progress is not None:
                    progress(len(data))
            else:
                self._multipart(key, src, chunk, what, progress)
            return src.crcs

    def _checksum_arg(self, src: _cloud.ChunkSource) -> dict[str, str]:
        """The CRC32 header of the chunk just read, when the manifest's CRCs gave it for free;
        botocore then does not hash the body a second time."""
        if self._checksum_alg not in (None, "CRC32") or src.last_crc is None:
            return {}
        return {"ChecksumCRC32": base64.b64encode(src.last_crc.to_bytes(4, "big")).decode()}

    def _multipart(
        self,
        key: str,
        src: _cloud.ChunkSource,
        chunk: int,
        what: str,
        progress: Callable[[int], None] | None,
    ) -> None:
        with self._errors(what):
            upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, **self._write_args()
            )["UploadId"]
        try:
            done: list[dict[str, Any]] = []
            for number, data in enumerate(src.chunks(chunk, reuse=True), 1):
                extra = self._checksum_arg(src)
                if not extra and self._checksum_alg:
                    extra = {"ChecksumAlgorithm": self._checksum_alg}
                with self._errors(what):
                    r = self._client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ContentLength=len(data),
                        **extra,
                    )
                entry: dict[str, Any] = {"PartNumber": number, "ETag": r["ETag"]}
                for field in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256",
                              "ChecksumCRC64NVME"):
                    if self._checksum_alg and r.get(field):
                        entry[field] = r[field]
                done.append(entry)
                if progress is not None:
                    progress(len(data))
            with self._errors(what):
                self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},
                )
        except BaseException:
            # Uploaded chunks cost storage until aborted; a failed abort is only a leak.
            with suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            raise

    def delete_part(self, part: Part) -> None:
        with self._errors(f"deleting {part}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(part.name))

    def can_copy_from(self, src: Remote) -> bool:
        return (
            isinstance(src, S3Remote)
            and src.endpoint == self.endpoint
            and src._access_key == self._access_key
        )

    def copy_part(self, src: Remote, part: Part) -> None:
        if not isinstance(src, S3Remote):
            raise TypeError(f"cannot copy server-side from {src!r} to {self.url}")
        args = self._write_args()
        # REPLACE, so the copy carries this run's metadata and tags, not the origin's.
        args["MetadataDirective"] = "REPLACE"
        if "Tagging" in args:
            args["TaggingDirective"] = "REPLACE"
        with self._errors(f"copying {part} from {src.url}"):
            self._client.copy_object(
                Bucket=self.bucket,
                Key=self._key(part.name),
                CopySource={"Bucket": src.bucket, "Key": src._key(part.name)},
                **args,
            )

    # --- small files ----------------------------------------------------

    def has_file(self, name: str) -> bool:
        with self._errors(f"checking {name}"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(name))
            except bce.ClientError as e:
                if _code(e) not in _NOT_FOUND_CODES:
                    raise
            else:
                return True
        self._raise_if_no_bucket()
        return False

    def read_file(self, name: str) -> bytes:
        with self._errors(f"reading {name}"):
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(name))
            data: bytes = resp["Body"].read()
            return data

    def write_file(self, name: str, data: bytes) -> None:
        with self._errors(f"writing {name}"):
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(name),
                Body=data,
                ContentLength=len(data),
                **self._write_args(),
            )

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        try:
            with self._errors(f"creating {name}"):
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(name),
                    Body=data,
                    ContentLength=len(data),
                    IfNoneMatch="*",
                    **self._write_args(),
                )
        except SnapferryError as e:
            cause = e.__cause__
            if isinstance(cause, bce.ClientError) and _code(cause) in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def delete_file(self, name: str) -> None:
        # S3 answers 204 for a missing key, so this is already idempotent.
        with self._errors(f"deleting {name}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def close(self) -> None:
        for conns in self._conns.values():
            conns.close()
        with suppress(Exception):
            self._client.close()


def _code(e: bce.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _session(opts: RemoteOptions, url: str) -> botocore.session.Session:
    """A session that honours the given files and profile without touching os.environ."""
    bs = botocore.session.Session()
    for path, var, what in (
        (opts.creds_file_path, "credentials_file", "credentials file"),
        (opts.config_file_path, "config_file", "config file"),
    ):
        if path:
            if not os.path.isfile(path):
                raise UsageError(f"the AWS {what} {path!r} for {url} does not exist")
            bs.set_config_variable(var, path)
    if opts.config_profile:
        bs.set_config_variable("profile", opts.config_profile)
    return bs
