"""S3Remote: the `s3://bucket/prefix` ObjectStore (AWS S3 and S3-compatible stores).

It writes each request once and picks its path: the fast transport (`fast`) or
botocore's client (`boto`); the package docstring says which request takes which.
Its errors, ours (HttpStatus) and botocore's, are classified here into one Failure.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from ...checksums import ChecksumAlgorithm, ProviderChecksum, crc32, parse_s3_checksum
from ...crc32c_ext import crc32c
from ...errors import UsageError
from ...parts import Part
from .._cloud import Classified, Failure, HttpStatus, ObjectStore, status_failure
from .._transfer import STREAM_ERRORS, ChunkSource
from ..base import KeepsChecksums, Reader, RemoteOptions
from .boto import CREDS_HELP, LazyClient, botocore_client
from .fast import FastTransport
from .sigv4 import UNSIGNED_PAYLOAD
from .static_creds import StaticS3, static_setup

_MIN_CHUNK = 5 * 1024 * 1024  # S3's smallest multipart chunk (but the last)
_THROTTLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled",
    "TooManyRequestsException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
    "ServiceUnavailable", "OperationAborted",
})
_AUTH_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "403", "401",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_EXISTS_CODES = frozenset({"PreconditionFailed", "412"})
_FULL_CODES = frozenset({"QuotaExceeded", "XMinioStorageFull"})  # Ceph RGW, MinIO
# PutObject's arguments in _write_args, by the header botocore sends each in.
_ARG_HEADERS = {"StorageClass": "x-amz-storage-class", "ACL": "x-amz-acl",
                "ServerSideEncryption": "x-amz-server-side-encryption",
                "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id", "Tagging": "x-amz-tagging"}
_CHECKSUM_ALGORITHMS = frozenset({"CRC32", "CRC32C", "SHA1", "SHA256"})  # what the fast PUT computes
_CHECKSUM_FIELDS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256", "ChecksumCRC64NVME")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the payload hash of a request without a body


class S3Remote(ObjectStore, KeepsChecksums):
    scheme = "s3"
    denied_hint = "check the credentials, the region and the bucket policy"
    creds_hint = CREDS_HELP
    max_chunks = 10_000
    deletes_all_versions = True
    tag_kind = "S3 object tag"

    def __init__(self, bucket: str, prefix: str, opts: RemoteOptions) -> None:
        super().__init__(bucket, prefix, opts, max(opts.multipart_chunk_size, _MIN_CHUNK))
        endpoint = opts.custom_s3_endpoint or None
        if endpoint is not None and "://" not in endpoint:
            raise UsageError(
                f"the S3 endpoint {endpoint!r} has no scheme; write it as http://host:port or https://host"
            )
        if endpoint is not None:
            _check_endpoint(endpoint)
        for path, what in ((opts.creds_file_path, "credentials file"), (opts.config_file_path, "config file")):
            if path and not os.path.isfile(path):
                # A pipe (`<(vault read ...)`) or a device: botocore reads the file again at
                # each credentials refresh, which a pipe cannot give twice.
                state = ("is not a regular file (a pipe or a device?); write it to a file readable only by "
                         "this user" if os.path.exists(path) else "does not exist")
                raise UsageError(f"the AWS {what} {path!r} for {self.url} {state}")
        checksum = (opts.s3_checksum_algorithm or "").upper()
        self._checksum_alg = checksum if checksum not in ("", "NONE") else None
        self._no_checksum = checksum == "NONE"
        self._lazy = LazyClient(opts, self.url, endpoint)  # shared with child() copies
        self._static: StaticS3 | None = static_setup(
            bucket, endpoint, opts.s3_force_path_style, opts.creds_file_path, opts.config_file_path,
            opts.config_profile,
        )
        probe = self._key("snapferry-probe")
        if self._static is not None:
            self._access_key = self._static.keys.access_key
            self.endpoint: str = endpoint or self._static.origin
            self.gets = FastTransport(lambda: self._client, None, bucket, probe, self.url, opts, self._static)
            return
        client, creds, ca_bundle = botocore_client(opts, self.url, endpoint)
        self._lazy.client = client
        self._access_key = creds.access_key
        self.endpoint = str(endpoint or client.meta.endpoint_url)
        self.gets = FastTransport(lambda: self._client, creds, bucket, probe, self.url, opts, ca_bundle=ca_bundle)

    @property
    def _client(self) -> Any:
        """botocore's S3 client, made (and botocore imported) on first use."""
        return self._lazy.get()

    @property
    def _client_obj(self) -> Any:
        """The client if it was made, else None."""
        return self._lazy.client

    # --- what failed ----------------------------------------------------------------

    def _classify(self, e: BaseException) -> Classified | None:
        if isinstance(e, HttpStatus):
            code, status, detail = e.code, e.status, str(e)
        elif isinstance(e, STREAM_ERRORS):  # below the HTTP layer
            return Failure.RETRYABLE, f"cannot talk to {self.endpoint}: {e}"
        elif "botocore" not in sys.modules:  # no botocore error without botocore
            return None
        else:
            return self._classify_botocore(e)
        return _classify_code(code, status, detail)

    def _classify_botocore(self, e: BaseException) -> Classified | None:
        import botocore.exceptions as bce

        if isinstance(e, bce.ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            detail = f"{code} {e.response.get('Error', {}).get('Message') or ''}".rstrip()
            return _classify_code(code, status, detail)
        if isinstance(e, (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ReadTimeoutError,
                          bce.ConnectTimeoutError, bce.ResponseStreamingError, bce.IncompleteReadError,
                          bce.HTTPClientError)):
            return Failure.RETRYABLE, f"cannot talk to {self.endpoint}: {e}"
        if isinstance(e, bce.NoCredentialsError):
            return Failure.NO_CREDENTIALS, str(e)
        if isinstance(e, bce.BotoCoreError):
            return Failure.PERMANENT, str(e)
        return None

    # --- requests -------------------------------------------------------------------

    def _bucket_exists(self) -> bool:
        return self._found(self.gets.head_bucket, (Failure.NO_BUCKET, Failure.NOT_FOUND))

    def _exists(self, key: str) -> bool:
        return self._found(lambda: self.gets.head(key), (Failure.NOT_FOUND, Failure.NO_OBJECT))

    def _found(self, head: Callable[[], object], absent: tuple[Failure, ...]) -> bool:
        """True when the HEAD answers, False when it fails as one of `absent`; other failures raise."""
        try:
            head()
        except HttpStatus as e:
            if self._failure(e) in absent:
                return False
            raise
        return True

    def _get(self, key: str) -> bytes:
        return self.gets.get(key)

    def _list(self, prefix: str) -> Iterable[tuple[str, int]]:
        return self.gets.list_objects(prefix)

    def _open_range(self, key: str, offset: int, length: int, what: str) -> Reader:
        return self.gets.open_range(key, offset, length, what)

    def _write_args(self) -> dict[str, Any]:
        o = self._opts
        args: dict[str, Any] = {}
        if self._metadata:
            args["Metadata"] = self._metadata
        if o.s3_storage_class:
            args["StorageClass"] = o.s3_storage_class
        if o.s3_acl:
            args["ACL"] = o.s3_acl
        if o.s3_sse_kms_key_id or o.s3_sse_algorithm:
            args["ServerSideEncryption"] = o.s3_sse_algorithm or "aws:kms"
        if o.s3_sse_kms_key_id:
            args["SSEKMSKeyId"] = o.s3_sse_kms_key_id
        if o.s3_object_tags:
            args["Tagging"] = urllib.parse.urlencode(o.s3_object_tags)
        if self._checksum_alg:
            args["ChecksumAlgorithm"] = self._checksum_alg
        return args

    def _checksum_arg(self, data: bytes | bytearray, crc: int | None) -> dict[str, str]:
        """The checksum botocore is given instead of computing it: the CRC32 of a body whose
        CRC came free with the manifest's block CRCs (botocore then does not hash the body a
        second time), or the CRC32C, which botocore computes only with awscrt (not
        installed). None with "NONE", which is there for stores that reject checksum
        headers (it used to send this one still)."""
        if self._no_checksum:
            return {}
        if self._checksum_alg == "CRC32C":
            return {"ChecksumCRC32C": base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()}
        if self._checksum_alg not in (None, "CRC32") or crc is None:
            return {}
        return {"ChecksumCRC32": base64.b64encode(crc.to_bytes(4, "big")).decode()}

    def _write_headers(self) -> dict[str, str]:
        """_write_args as the headers botocore serializes them to (the checksum aside)."""
        args = self._write_args()
        args.pop("ChecksumAlgorithm", None)
        headers = {f"x-amz-meta-{k}": v for k, v in args.pop("Metadata", {}).items()}
        headers.update({_ARG_HEADERS[k]: v for k, v in args.items()})  # a KeyError: a new arg lacks its header
        return headers

    def _checksum_headers(self, data: bytes | bytearray, crc: int | None) -> dict[str, str] | None:
        """The checksum headers botocore would send with this body (its default is CRC32;
        "NONE" sends none), or None for an algorithm only botocore computes (CRC64NVME)."""
        if self._no_checksum:
            return {}
        alg = self._checksum_alg or "CRC32"
        if alg not in _CHECKSUM_ALGORITHMS:
            return None
        if alg == "CRC32":
            digest = (crc if crc is not None else crc32(data)).to_bytes(4, "big")
        elif alg == "CRC32C":
            digest = crc32c(data).to_bytes(4, "big")
        else:
            digest = hashlib.new(alg.lower(), data).digest()
        headers = {f"x-amz-checksum-{alg.lower()}": base64.b64encode(digest).decode()}
        # botocore names the algorithm when it was asked for one or computed its default;
        # a value given it (_checksum_arg) goes alone, and moto, for one, keeps it only named.
        if self._checksum_alg is not None or crc is None:
            headers["x-amz-sdk-checksum-algorithm"] = alg
        return headers

    def _payload_hash(self, data: bytes | bytearray) -> str:
        # As botocore is configured (boto.botocore_client): a body with a checksum header goes
        # unsigned; without one the signature covers its SHA-256.
        if self._no_checksum:
            return hashlib.sha256(data).hexdigest()
        return UNSIGNED_PAYLOAD

    def _put_headers(self, data: bytes | bytearray, crc: int | None, exclusive: bool) -> dict[str, str] | None:
        """The headers of a single PUT on the fast path: those botocore's put_object sends
        with these arguments; None when only botocore can compute the checksum."""
        checksum = self._checksum_headers(data, crc)
        if checksum is None:
            return None
        headers = {**self._write_headers(), **checksum}
        if exclusive:
            headers["if-none-match"] = "*"
        return headers

    def _put(self, key: str, data: bytes | bytearray, crc: int | None, exclusive: bool) -> None:
        if self.gets.fast_signer() is not None and (headers := self._put_headers(data, crc, exclusive)) is not None:
            self.gets.send("PUT", key, headers, data, self._payload_hash(data), f"writing {key}")
            return
        args = {**self._write_args(), **self._checksum_arg(data, crc)}
        if "ChecksumCRC32C" in args:
            del args["ChecksumAlgorithm"]  # named, botocore would compute it (and fail without awscrt)
        if exclusive:
            args["IfNoneMatch"] = "*"
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentLength=len(data), **args)

    def _put_chunks(self, key: str, src: ChunkSource, chunk: int, progress: Callable[[int], None] | None) -> None:
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, **self._write_args())["UploadId"]
        try:
            done: list[dict[str, Any]] = []
            for number, data in enumerate(src.chunks(chunk, reuse=True), 1):
                extra = self._checksum_arg(data, src.last_crc)
                if not extra and self._checksum_alg:
                    extra = {"ChecksumAlgorithm": self._checksum_alg}
                r = self._client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                    ContentLength=len(data), **extra,
                )
                entry: dict[str, Any] = {"PartNumber": number, "ETag": r["ETag"]}
                for field in _CHECKSUM_FIELDS:
                    if self._checksum_alg and r.get(field):
                        entry[field] = r[field]
                done.append(entry)
                if progress is not None:
                    progress(len(data))
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            # Uploaded chunks cost storage until aborted; a failed abort is only a leak.
            with suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _add_tag(self, name: str, value: str) -> None:
        # Into the options _write_args reads: PUTs, multipart uploads and copies (REPLACE) carry it.
        self._opts = dataclasses.replace(self._opts, s3_object_tags={**self._opts.s3_object_tags, name: value})

    def _delete(self, key: str) -> None:
        if self._opts.delete_all_object_versions:
            self._delete_versions(key)
            return
        # S3 answers 204 for a missing key, so this is already idempotent. Signed by us when
        # we can: a nothing-changed backup's only botocore request was its lease's delete.
        if self.gets.fast_signer() is not None:
            self.gets.send("DELETE", key, {}, b"", _EMPTY_SHA256, f"deleting {key}", ok=(200, 204))
            return
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def _delete_versions(self, key: str) -> None:
        """Every version and delete marker of key, as -deleteAllObjectVersions: on a versioned
        bucket a plain delete only hides the bytes behind a marker, and they stay billed."""
        pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
        for page in pages:
            for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if version["Key"] == key:  # the prefix also lists longer keys: never theirs
                    self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version["VersionId"])

    def _same_account(self, src: ObjectStore) -> bool:
        return isinstance(src, S3Remote) and src._access_key == self._access_key

    def _copy(self, src_key: str, src: ObjectStore, key: str) -> None:
        args = self._write_args()
        # REPLACE, so the copy carries this run's metadata and tags, not the origin's.
        args["MetadataDirective"] = "REPLACE"
        if "Tagging" in args:
            args["TaggingDirective"] = "REPLACE"
        self._client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": src.bucket, "Key": src_key}, **args)

    # --- verify's optional capabilities -----------------------------------

    def part_checksum(self, part: Part) -> ProviderChecksum | None:
        """The CRC32C or CRC32 S3 keeps of an object uploaded with a checksum algorithm."""
        key = self._key(part.name)
        head = self._request(f"reading the checksum of {part}", lambda: self._head_checksum(key))
        for alg in (ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC32):
            value = head.get(f"Checksum{alg.name}")
            if not value:
                continue
            chunk = 0
            if "-" in value:  # a composite: the size of chunk 1 says whether chunks are manifest blocks
                with suppress(Exception):
                    chunk = self._first_chunk_size(key)
            return parse_s3_checksum(alg, value, chunk)
        return None

    def _head_checksum(self, key: str) -> dict[str, str]:
        if self.gets.fast_signer() is None:
            head: dict[str, str] = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            return head
        headers = self.gets.head(key, headers={"x-amz-checksum-mode": "ENABLED"})
        return {f"Checksum{alg.name}": headers.get(f"x-amz-checksum-{alg.name.lower()}", "")
                for alg in (ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC32)}

    def _first_chunk_size(self, key: str) -> int:
        if self.gets.fast_signer() is None:
            return int(self._client.head_object(Bucket=self.bucket, Key=key, PartNumber=1)["ContentLength"])
        return int(self.gets.head(key, query={"partNumber": "1"})["Content-Length"])

    def close(self) -> None:
        self.gets.close()
        if self._lazy.client is not None:
            with suppress(Exception):
                self._lazy.client.close()


def _check_endpoint(endpoint: str) -> None:
    """A mistyped endpoint is the user's mistake (exit 2), not a failed request retried
    and then worded by botocore, or a ValueError from urllib deep in the signer."""
    try:
        split = urllib.parse.urlsplit(endpoint)
        ok = split.scheme in ("http", "https") and bool(split.hostname)
        split.port  # noqa: B018  # raises on a port that is not a number in 0-65535
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            f"the S3 endpoint {endpoint!r} is not a valid http:// or https:// URL; "
            "write it as http://host:port or https://host"
        )


def _classify_code(code: str, status: int, detail: str) -> Classified:
    """The failure of an error answer, by S3's error code first, then its status."""
    if code == "NoSuchBucket":
        return Failure.NO_BUCKET, code
    if code == "NoSuchKey":  # a GET's answer: the bucket is there
        return Failure.NO_OBJECT, code
    if code in _NOT_FOUND_CODES:
        return Failure.NOT_FOUND, code
    if code in _EXISTS_CODES:
        return Failure.EXISTS, code
    if code in _AUTH_CODES:
        return Failure.DENIED, code
    if code in _FULL_CODES:
        return Failure.NO_SPACE, code
    if code in _THROTTLE_CODES:
        return Failure.RETRYABLE, detail
    failure = status_failure(status)
    return failure, (code or str(status)) if failure is Failure.DENIED else detail
