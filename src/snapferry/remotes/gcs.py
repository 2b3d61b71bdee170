"""The `gs://bucket/prefix` remote (Google Cloud Storage) on google-cloud-storage.

Every SDK call gets retry=None (and our read timeout), and the session's pools retry
nothing: the retry layer (remotes/retrying.py) decides every retry. Ranged reads
are streamed GETs on the client's authorised session, so restore reads straight
from the socket.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import google.auth
import google.auth.exceptions as gae
import requests
from google.api_core import exceptions as gex
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage import exceptions as gsx
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from ..checksums import ChecksumAlgorithm, ProviderChecksum
from ..errors import TransientRemoteError, UsageError
from ..parts import Part
from ._cloud import RETRY_STATUS, Classified, Failure, HttpStatus, ObjectStore, mount_pool, status_failure
from ._transfer import STREAM_ERRORS, ChunkSource, RangeReader, check_range_response
from .base import KeepsChecksums, Reader, RemoteOptions

log = logging.getLogger("snapferry")
_SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
_CHUNK_ALIGN = 256 * 1024  # GCS wants resumable chunks in multiples of 256 KiB
_TRANSIENT: tuple[type[BaseException], ...] = (
    gex.TooManyRequests, gex.ServerError, gex.RetryError, gex.DeadlineExceeded, gsx.DataCorruption,
)
_UNREACHABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException, gae.TransportError, *STREAM_ERRORS,
)


class GcsRemote(ObjectStore, KeepsChecksums):
    scheme = "gs"
    denied_hint = "check the service account and its roles on the bucket"
    creds_hint = "set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file or pass it with --creds-file-path"
    max_chunks = 1 << 62  # a resumable upload has no chunk limit
    single_put_reuses_buffer = False  # upload_from_string takes bytes only

    def __init__(self, bucket: str, prefix: str, opts: RemoteOptions) -> None:
        chunk = max(_CHUNK_ALIGN, opts.multipart_chunk_size // _CHUNK_ALIGN * _CHUNK_ALIGN)
        super().__init__(bucket, prefix, opts, chunk)
        with _google_quiet():
            creds, project = _credentials(opts, self.url)
            # Token refreshes go through a pool of ours too: AuthorizedSession's default one
            # retries them three times on its own, and logs each retry as a warning.
            auth_request = AuthRequest(mount_pool(requests.Session(), opts))
            self._session = AuthorizedSession(creds, auth_request=auth_request)  # type: ignore[no-untyped-call]
            mount_pool(self._session, opts)
            self._client: Any = storage.Client(project=project, credentials=creds, _http=self._session)
        # google-cloud-storage 3.x fetches bucket metadata for its tracing in a background
        # thread, with the SDK's own retries, on first use of each bucket: a request and a
        # retry layer nobody asked for (and one that outlives a failed run's error).
        self._client._bucket_metadata_cache = None
        self._bucket: Any = self._client.bucket(bucket)
        self.endpoint: str = str(self._client.api_endpoint).rstrip("/")
        # The SDK's calls take their own timeout (60 s unless told), not the session's.
        self._timeout = (10.0, opts.read_timeout)
        self._listed_crc32c: dict[str, str] = {}  # key -> base64 CRC32C, from the latest listing

    # --- what failed ----------------------------------------------------------------

    def _classify(self, e: BaseException) -> Classified | None:
        if isinstance(e, HttpStatus):
            return status_failure(e.status), str(e)
        if isinstance(e, gex.NotFound):
            return Failure.NOT_FOUND, str(e)
        if isinstance(e, gex.PreconditionFailed):
            return Failure.EXISTS, str(e)
        if isinstance(e, (gex.Forbidden, gex.Unauthorized, gae.RefreshError)):
            return Failure.DENIED, str(e)
        if isinstance(e, gsx.InvalidResponse):
            status = getattr(getattr(e, "response", None), "status_code", 0) or 0
            return (Failure.RETRYABLE if status in RETRY_STATUS else Failure.PERMANENT), str(e)
        if isinstance(e, _TRANSIENT):
            return Failure.RETRYABLE, str(e)
        if isinstance(e, gae.DefaultCredentialsError):
            return Failure.NO_CREDENTIALS, str(e)
        if isinstance(e, _UNREACHABLE):
            return Failure.RETRYABLE, f"cannot reach {self.endpoint}: {e}"
        if isinstance(e, gex.GoogleAPICallError):
            return Failure.PERMANENT, str(e)
        return None

    # --- requests -------------------------------------------------------------------

    def _bucket_exists(self) -> bool:
        return bool(self._bucket.exists(retry=None, timeout=self._timeout))

    def _exists(self, key: str) -> bool:
        return bool(self._bucket.blob(key).exists(retry=None, timeout=self._timeout))

    def _get(self, key: str) -> bytes:
        data: bytes = self._bucket.blob(key).download_as_bytes(retry=None, timeout=self._timeout)
        return data

    def _list(self, prefix: str) -> Iterator[tuple[str, int]]:
        # The listing carries each object's CRC32C for a few bytes more: kept, so verify's
        # provider checks need no metadata request per part (part_checksum).
        blobs = self._client.list_blobs(
            self.bucket, prefix=prefix, page_size=1000, fields="items(name,size,crc32c),nextPageToken",
            retry=None, timeout=self._timeout,
        )
        listed: dict[str, str] = {}
        for blob in blobs:
            if blob.crc32c:
                listed[blob.name] = blob.crc32c
            yield blob.name, int(blob.size or 0)
        # Replaced whole, never changed in place: a child() shares the parent's until it lists.
        self._listed_crc32c = listed

    def _open_range(self, key: str, offset: int, length: int, what: str) -> Reader:
        # The SDK's download helpers copy through their own buffers (or want a file to
        # write to); a streamed GET on the client's authorised session lets restore
        # read straight from the socket into its buffer.
        url = (
            f"{self.endpoint}/download/storage/v1/b/{urllib.parse.quote(self.bucket, safe='')}"
            f"/o/{urllib.parse.quote(key, safe='')}?alt=media"
        )
        headers = {
            "Range": f"bytes={offset}-{offset + length - 1}",
            "Accept-Encoding": "identity",  # never let the server transcode: the reader counts raw bytes
        }
        resp = self._session.get(url, headers=headers, stream=True, timeout=self._timeout)
        if resp.status_code not in (200, 206):
            detail = resp.text[:200].strip()
            resp.close()
            raise HttpStatus(resp.status_code, detail)
        check_range_response(resp.headers.get("Content-Length"), resp.status_code, offset, length, what, self.url,
                             resp.close)
        return RangeReader(resp.raw, length, what, resp.close)

    def _blob(self, key: str, chunk_size: int | None = None) -> Any:
        blob = self._bucket.blob(key, chunk_size=chunk_size)
        if self._metadata:
            blob.metadata = self._metadata
        return blob

    def _put(self, key: str, data: bytes | bytearray, crc: int | None, exclusive: bool) -> None:
        blob = self._blob(key)
        # Generation 0 means "only if no live object": an atomic create.
        blob.upload_from_string(
            bytes(data), content_type="application/octet-stream", if_generation_match=0 if exclusive else None,
            retry=None, timeout=self._timeout,
        )
        self._check_stored(blob, len(data))

    def _put_chunks(self, key: str, src: ChunkSource, chunk: int, progress: Callable[[int], None] | None) -> None:
        blob = self._blob(key, chunk)
        size = src.left
        # A resumable upload in chunks of multipart_chunk_size, with a CRC32C.
        blob.upload_from_file(
            _UploadStream(src, size, src.random_access, progress), size=size,
            content_type="application/octet-stream", retry=None, timeout=self._timeout,
        )
        self._check_stored(blob, size)

    def _check_stored(self, blob: Any, size: int) -> None:
        if blob.size is not None and int(blob.size) != size:
            stored = blob.size
            try:
                blob.delete(retry=None, timeout=self._timeout)
            except Exception as e:
                log.debug("cannot delete the short object %s: %s", blob.name, e)
            raise TransientRemoteError(f"uploading {blob.name}: {self.url} stored {stored} of {size} bytes")

    def _delete(self, key: str) -> None:
        self._bucket.blob(key).delete(retry=None, timeout=self._timeout)

    def _copy(self, src_key: str, src: ObjectStore, key: str) -> None:
        assert isinstance(src, GcsRemote)
        dst = self._bucket.blob(key)
        # rewrite sends the destination's metadata, so the copy carries this run's.
        dst.metadata = self._metadata or None
        source = src._bucket.blob(src_key)
        token, _done, _total = dst.rewrite(source, retry=None, timeout=self._timeout)
        # Big objects across locations or storage classes take several calls.
        while token is not None:
            token, _done, _total = dst.rewrite(source, token=token, retry=None, timeout=self._timeout)

    # --- verify's optional capabilities -----------------------------------

    def part_checksum(self, part: Part) -> ProviderChecksum | None:
        """GCS keeps the CRC32C of every object: from the latest listing when it had the part
        (verify lists first: no request), else from the object's metadata (one GET)."""
        key = self._key(part.name)
        value = self._listed_crc32c.get(key)
        if value is None:
            what = f"reading the checksum of {part}"
            blob = self._request(what, lambda: self._bucket.get_blob(key, retry=None, timeout=self._timeout))
            if blob is None:
                raise self._error(what, Failure.NO_OBJECT, "404")
            value = blob.crc32c
        if not value:
            return None
        return ProviderChecksum(ChecksumAlgorithm.CRC32C, base64.b64decode(value))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception as e:
            log.debug("closing the GCS client: %s", e)


# google-auth logs each failed probe of the GCE metadata server (and more) as a warning
# while it looks for credentials; the user gets one error sentence instead.
_CHATTY_LOGGERS = ("google.auth._default", "google.auth.compute_engine._metadata", "google.auth.transport.requests")


class _ToDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        log.debug("%s: %s", record.name, record.getMessage())
        return False


@contextmanager
def _google_quiet() -> Iterator[None]:
    """google-auth and the storage SDK warn (warnings.warn and logging) about credentials,
    projects and the metadata server; in a CLI run those are stray stderr lines, so while
    credentials and the client are set up they go to the debug log instead."""
    demote = _ToDebug()
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    for lg in loggers:
        lg.addFilter(demote)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(demote)
    for w in caught:
        log.debug("google: %s", w.message)


class _UploadStream:
    """The file object the SDK uploads from: exactly `size` bytes, seekable enough.

    A resumable upload rewinds to the last byte the server confirmed before it
    retries a chunk; that is always inside the last chunk read, so that chunk
    is kept. A local file can seek anywhere.
    """

    def __init__(
        self,
        src: ChunkSource,
        size: int,
        random_access: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._src = src
        self._size = size
        self._random_access = random_access
        self._progress = progress
        self._pos = 0
        self._buf = b""
        self._buf_start = 0
        self._reported = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            pos += self._pos
        elif whence == os.SEEK_END:
            pos += self._size
        if self._random_access:
            self._src.pos = pos
            self._buf = b""
            self._buf_start = pos
        elif not self._buf_start <= pos <= self._src.pos:
            raise TransientRemoteError(
                f"the upload asked to rewind to byte {pos}, before the kept chunk "
                f"at {self._buf_start}; the part will be retried"
            )
        self._pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        n = min(n, self._size - self._pos)
        if n <= 0:
            return b""
        start = self._pos
        pieces: list[bytes] = []
        buf_end = self._buf_start + len(self._buf)
        if self._buf_start <= start < buf_end:
            piece = self._buf[start - self._buf_start : start - self._buf_start + n]
            pieces.append(piece)
            self._pos += len(piece)
        need = n - (self._pos - start)
        if need > 0:
            if self._src.pos != self._pos:
                self._src.pos = self._pos  # only reachable for random-access sources
            pieces.append(self._src.read(need))
            self._pos += need
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._buf = data
        self._buf_start = start
        if self._progress is not None and self._pos > self._reported:
            self._progress(self._pos - self._reported)
            self._reported = self._pos
        return data


def _credentials(opts: RemoteOptions, url: str) -> tuple[Any, str | None]:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        # The emulator checks no credentials, and the SDK insists on some project.
        anon = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return anon, os.environ.get("GOOGLE_CLOUD_PROJECT") or "test"
    if opts.creds_file_path:
        return _credentials_from_file(opts.creds_file_path, url)
    try:
        creds, project = google.auth.default(scopes=_SCOPES)
    except gae.DefaultCredentialsError as e:
        raise UsageError(
            f"no Google credentials found for {url}; set GOOGLE_APPLICATION_CREDENTIALS "
            f"to a service-account JSON file or pass it with --creds-file-path ({e})"
        ) from e
    return creds, project


def _credentials_from_file(path: str, url: str) -> tuple[Any, str | None]:
    """A service-account key (what vmbackup takes), or a user's authorized_user file.

    google.auth.load_credentials_from_file would also run external-account
    configs, which it now warns about loading from files of unknown origin.
    """
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise UsageError(
            f"the Google credentials file {path!r} for {url} does not exist"
        ) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the Google credentials file {path!r}: {e}") from e
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            sa = service_account.Credentials
            creds: Any = sa.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=_SCOPES
            )
            return creds, info.get("project_id")
        if kind == "authorized_user":
            user = user_credentials.Credentials
            creds = user.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=_SCOPES
            )
            return creds, info.get("quota_project_id")
    except (ValueError, gae.GoogleAuthError) as e:
        raise UsageError(f"the Google credentials file {path!r} is invalid: {e}") from e
    raise UsageError(
        f"the Google credentials file {path!r} has type {kind!r}; give a service-account "
        "key (type service_account) or an authorized_user file"
    )
