"""The `gs://bucket/prefix` remote (Google Cloud Storage) on google-cloud-storage."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import google.auth
import google.auth.exceptions as gae
import requests
import requests.adapters
from google.api_core import exceptions as gex
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage import exceptions as gsx
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from ..errors import RemoteError, SnapferryError, TransientRemoteError, UsageError
from ..parts import Part
from . import _cloud
from .base import Body, LocalRegion, Reader, Remote, RemoteOptions

_SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
_CHUNK_ALIGN = 256 * 1024  # GCS wants resumable chunks in multiples of 256 KiB
# The storage SDK's own test for retryable errors (429, 5xx, resets, timeouts).
_SHOULD_RETRY: Callable[[Exception], bool] = DEFAULT_RETRY._predicate
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT = (
    gex.TooManyRequests,
    gex.ServerError,
    gex.RetryError,
    gex.DeadlineExceeded,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    gae.TransportError,
    gsx.DataCorruption,
    *_cloud.STREAM_ERRORS,
)


class GcsRemote(_cloud.ObjectStore):
    def __init__(self, bucket: str, prefix: str, opts: RemoteOptions) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.url = _cloud.remote_url("gs", bucket, prefix)
        self._opts = opts
        self._metadata = _cloud.check_metadata(opts.object_metadata)
        self._chunk = max(_CHUNK_ALIGN, opts.multipart_chunk_size // _CHUNK_ALIGN * _CHUNK_ALIGN)
        self._attempts = max(opts.max_attempts, 1)
        creds, project = _credentials(opts, self.url)
        self._session = AuthorizedSession(creds)  # type: ignore[no-untyped-call]
        # requests keeps 10 connections per host unless told; restore runs more streams.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=max(opts.max_connections, 1), max_retries=0
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.verify = not opts.tls_insecure_skip_verify
        if opts.tls_insecure_skip_verify:
            _cloud.quiet_insecure_tls_warnings()
        self._client: Any = storage.Client(project=project, credentials=creds, _http=self._session)
        self._bucket: Any = self._client.bucket(bucket)
        self.endpoint: str = str(self._client.api_endpoint).rstrip("/")
        # A backstop for the attempt count below: sleeps plus a minute per request.
        self._read_timeout = opts.read_timeout
        self._retry_timeout = sum(min(8.0, 0.25 * 2**i) for i in range(self._attempts))
        self._retry_timeout += opts.read_timeout * self._attempts

    @property
    def _retry(self) -> Any:
        """A fresh policy per call: google's Retry counts time, not attempts, so the
        predicate counts them (one budget per call; a resumable upload shares it
        across its chunks)."""
        left = [self._attempts - 1]

        def predicate(exc: Exception) -> bool:
            if not _SHOULD_RETRY(exc):
                return False
            left[0] -= 1
            return left[0] >= 0

        return (
            DEFAULT_RETRY.with_predicate(predicate)
            .with_delay(initial=0.25, maximum=8.0, multiplier=2.0)
            .with_timeout(self._retry_timeout)
        )

    # --- errors ---------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SnapferryError:
            raise
        except gex.NotFound as e:
            raise self._not_found(what) from e
        except (gex.Forbidden, gex.Unauthorized, gae.RefreshError) as e:
            raise self._denied(what, e) from e
        except gsx.InvalidResponse as e:
            status = getattr(getattr(e, "response", None), "status_code", 0)
            if status in _RETRY_STATUS:
                raise TransientRemoteError(f"{what} on {self.url} failed: {e}") from e
            raise RemoteError(f"{what} on {self.url} failed: {e}") from e
        except _TRANSIENT as e:
            raise TransientRemoteError(f"{what} on {self.url} failed: {e}") from e
        except gae.DefaultCredentialsError as e:
            raise UsageError(f"no usable Google credentials for {self.url}: {e}") from e
        except gex.GoogleAPICallError as e:
            raise RemoteError(f"{what} on {self.url} failed: {e}") from e

    def _denied(self, what: str, e: BaseException) -> RemoteError:
        return RemoteError(
            f"{what}: {self.endpoint} denied access to {self.url} ({e}); check the "
            "service account and its roles on the bucket"
        )

    def _no_bucket(self) -> RemoteError:
        return RemoteError(
            f"bucket {self.bucket!r} does not exist at {self.endpoint}; "
            f"create it or fix the URL {self.url}"
        )

    def _not_found(self, what: str) -> RemoteError:
        """GCS answers 404 for a missing bucket and a missing object alike: tell them apart."""
        if not self._bucket_exists():
            return self._no_bucket()
        return RemoteError(f"{what}: the object does not exist in {self.url}")

    def _bucket_exists(self) -> bool:
        try:
            return bool(self._bucket.exists(retry=self._retry))
        except Exception:
            # Only used to word an error; when unsure, blame the object.
            return True

    # --- parts ----------------------------------------------------------

    def list_parts(self) -> list[Part]:
        with self._errors("listing"):
            blobs = self._client.list_blobs(
                self.bucket,
                prefix=_cloud.list_prefix(self.prefix),
                page_size=1000,
                fields="items(name,size),nextPageToken",
                retry=self._retry,
            )
            return self._parts((blob.name, int(blob.size or 0)) for blob in blobs)

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        length = _cloud.check_range(part, offset, length)
        key = self._key(part.name)
        what = f"reading {part}"
        if length == 0:
            with self._errors(what):
                if not self._bucket.blob(key).exists(retry=self._retry):
                    raise self._not_found(what)
            return _cloud.EmptyReader()
        # The SDK's download helpers copy through their own buffers (or want a file to
        # write to); a streamed GET on the client's authorised session lets restore
        # read straight from the socket into its buffer.
        url = (
            f"{self.endpoint}/download/storage/v1/b/{urllib.parse.quote(self.bucket, safe='')}"
            f"/o/{urllib.parse.quote(key, safe='')}?alt=media"
        )
        headers = {
            "Range": f"bytes={offset}-{offset + length - 1}",
            # Never let the server transcode: the reader counts raw bytes.
            "Accept-Encoding": "identity",
        }
        delays = _cloud.backoff_delays(self._attempts)
        while True:
            try:
                resp = self._session.get(url, headers=headers, stream=True, timeout=(10, self._read_timeout))
            except (requests.exceptions.RequestException, gae.TransportError) as e:
                delay = next(delays, None)
                if delay is None:
                    raise TransientRemoteError(
                        f"{what}: cannot reach {self.endpoint}: {e}"
                    ) from e
                time.sleep(delay)
                continue
            except gae.RefreshError as e:
                raise self._denied(what, e) from e
            status = resp.status_code
            if status in (200, 206):
                return self._range_reader(resp, offset, length, what)
            detail = resp.text[:200].strip()
            resp.close()
            if status in _RETRY_STATUS:
                delay = next(delays, None)
                if delay is None:
                    raise TransientRemoteError(
                        f"{what} on {self.url} failed: HTTP {status} {detail}".rstrip()
                    )
                time.sleep(delay)
                continue
            if status == 404:
                raise self._not_found(what)
            if status in (401, 403):
                raise self._denied(what, RuntimeError(f"HTTP {status}"))
            if status == 416:
                raise RemoteError(
                    f"{what}: the object in {self.url} is shorter than its name says"
                )
            raise RemoteError(f"{what} on {self.url} failed: HTTP {status} {detail}".rstrip())

    def _range_reader(
        self, resp: requests.Response, offset: int, length: int, what: str
    ) -> Reader:
        _cloud.check_range_response(resp.headers.get("Content-Length"), resp.status_code, offset, length, what,
                                    self.url, resp.close)
        return _cloud.RangeReader(resp.raw, length, what, resp.close)

    def upload_part(
        self,
        part: Part,
        body: Body,
        local: LocalRegion | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int] | None:
        what = f"uploading {part}"
        blob = self._bucket.blob(self._key(part.name), chunk_size=self._chunk)
        if self._metadata:
            blob.metadata = self._metadata
        with (
            _cloud.ChunkSource(part, body, local, what) as src,
            self._errors(what),
        ):
            stream = _UploadStream(src, part.size, local is not None, progress)
            # Parts up to 8 MiB go in one request, bigger ones as a resumable
            # upload in chunks of multipart_chunk_size; both send a CRC32C.
            blob.upload_from_file(
                stream,
                size=part.size,
                content_type="application/octet-stream",
                retry=self._retry,
            )
        if blob.size is not None and int(blob.size) != part.size:
            with suppress(Exception):
                blob.delete(retry=self._retry)
            raise TransientRemoteError(
                f"{what}: {self.url} stored {blob.size} of {part.size} bytes"
            )
        return src.crcs

    def delete_part(self, part: Part) -> None:
        self._delete(self._key(part.name), f"deleting {part}")

    def _delete(self, key: str, what: str) -> None:
        with self._errors(what), suppress(gex.NotFound):
            self._bucket.blob(key).delete(retry=self._retry)

    def can_copy_from(self, src: Remote) -> bool:
        return isinstance(src, GcsRemote) and src.endpoint == self.endpoint

    def copy_part(self, src: Remote, part: Part) -> None:
        if not isinstance(src, GcsRemote):
            raise TypeError(f"cannot copy server-side from {src!r} to {self.url}")
        what = f"copying {part} from {src.url}"
        dst = self._bucket.blob(self._key(part.name))
        # rewrite sends the destination's metadata, so the copy carries this run's.
        dst.metadata = self._metadata or None
        source = src._bucket.blob(src._key(part.name))
        with self._errors(what):
            token, _done, _total = dst.rewrite(source, retry=self._retry)
            # Big objects across locations or storage classes take several calls.
            while token is not None:
                token, _done, _total = dst.rewrite(source, token=token, retry=self._retry)

    # --- small files ----------------------------------------------------

    def has_file(self, name: str) -> bool:
        with self._errors(f"checking {name}"):
            if self._bucket.blob(self._key(name)).exists(retry=self._retry):
                return True
        if not self._bucket_exists():
            raise self._no_bucket()
        return False

    def read_file(self, name: str) -> bytes:
        with self._errors(f"reading {name}"):
            data: bytes = self._bucket.blob(self._key(name)).download_as_bytes(
                retry=self._retry
            )
            return data

    def write_file(self, name: str, data: bytes) -> None:
        blob = self._bucket.blob(self._key(name))
        if self._metadata:
            blob.metadata = self._metadata
        with self._errors(f"writing {name}"):
            blob.upload_from_string(
                data, content_type="application/octet-stream", retry=self._retry
            )

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        blob = self._bucket.blob(self._key(name))
        if self._metadata:
            blob.metadata = self._metadata
        try:
            with self._errors(f"creating {name}"):
                # Generation 0 means "only if no live object": an atomic create.
                blob.upload_from_string(
                    data, content_type="application/octet-stream", if_generation_match=0, retry=self._retry
                )
        except SnapferryError as e:
            if isinstance(e.__cause__, gex.PreconditionFailed):
                return False
            raise
        return True

    def delete_file(self, name: str) -> None:
        self._delete(self._key(name), f"deleting {name}")

    def close(self) -> None:
        with suppress(Exception):
            self._client.close()


class _UploadStream:
    """The file object the SDK uploads from: exactly `size` bytes, seekable enough.

    A resumable upload rewinds to the last byte the server confirmed before it
    retries a chunk; that is always inside the last chunk read, so that chunk
    is kept. A local file can seek anywhere.
    """

    def __init__(
        self,
        src: _cloud.ChunkSource,
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
            f"to a service-account JSON file or pass it with -credsFilePath ({e})"
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
