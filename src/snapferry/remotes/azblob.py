"""The `azblob://container/prefix` remote (Azure Blob Storage) on azure-storage-blob."""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests
import requests.adapters
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import HttpRequest, RequestsTransport
from azure.storage.blob import BlobBlock, BlobServiceClient, ExponentialRetry

from ..errors import RemoteError, SnapferryError, TransientRemoteError, UsageError
from ..parts import Part
from . import _cloud
from .base import Body, LocalRegion, Reader, Remote, RemoteOptions

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_AUTH_STATUS = frozenset({401, 403})
_CONN_STR_VARS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_CONNECTION_STRING")
_ENV_HELP = (
    "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and "
    "AZURE_STORAGE_ACCOUNT_KEY (plus AZURE_STORAGE_DOMAIN or AZURE_STORAGE_BLOB_ENDPOINT "
    "for a non-default endpoint)"
)
_MAX_BLOCKS = 50_000  # per block blob
# Polling a server-side copy: same-account copies usually finish at once.
_COPY_POLL = 0.05
_COPY_TIMEOUT = 1800.0


class AzblobRemote(_cloud.ObjectStore):
    def __init__(self, container: str, prefix: str, opts: RemoteOptions) -> None:
        self.bucket = container
        self.prefix = prefix
        self.url = _cloud.remote_url("azblob", container, prefix)
        self._opts = opts
        self._metadata = _cloud.check_metadata(opts.object_metadata)
        self._chunk = max(opts.multipart_chunk_size, 1)
        session = requests.Session()
        # requests keeps 10 connections per host unless told; restore runs more streams.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=max(opts.max_connections, 1), max_retries=0
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        attempts = max(opts.max_attempts, 1)
        if opts.tls_insecure_skip_verify:
            _cloud.quiet_insecure_tls_warnings()
        kwargs: dict[str, Any] = {
            "transport": RequestsTransport(
                session=session,
                session_owner=True,
                connection_verify=not opts.tls_insecure_skip_verify,
            ),
            "retry_policy": _Retry(retry_total=attempts - 1),
            "connection_timeout": 10,
            "read_timeout": opts.read_timeout,
            "max_single_put_size": self._chunk,
            "max_block_size": self._chunk,
        }
        self._service: Any = _service_client(self.url, kwargs)
        self._container: Any = self._service.get_container_client(container)
        self.endpoint: str = str(self._service.url).rstrip("/")

    def _blob(self, key: str) -> Any:
        return self._container.get_blob_client(key)

    # --- errors ---------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SnapferryError:
            raise
        except ResourceNotFoundError as e:
            raise self._not_found(what, _code(e)) from e
        except ClientAuthenticationError as e:
            raise self._denied(what, _code(e) or str(e.reason)) from e
        except (ServiceRequestError, ServiceResponseError) as e:
            raise TransientRemoteError(
                f"{what} on {self.url} failed: cannot talk to {self.endpoint}: {e.message}"
            ) from e
        except HttpResponseError as e:
            raise self._status_error(what, e.status_code or 0, _code(e) or str(e.reason)) from e
        except AzureError as e:
            raise RemoteError(f"{what} on {self.url} failed: {e.message}") from e

    def _status_error(self, what: str, status: int, code: str) -> RemoteError:
        if code == "ContainerNotFound":
            return self._no_container()
        if status in _AUTH_STATUS:
            return self._denied(what, code)
        if status in _RETRY_STATUS:
            return TransientRemoteError(f"{what} on {self.url} failed: HTTP {status} {code}")
        if status == 404:
            return self._not_found(what, code)
        return RemoteError(f"{what} on {self.url} failed: HTTP {status} {code}")

    def _denied(self, what: str, code: str) -> RemoteError:
        return RemoteError(
            f"{what}: {self.endpoint} denied access to {self.url} ({code}); check the "
            "account key or connection string"
        )

    def _no_container(self) -> RemoteError:
        return RemoteError(
            f"container {self.bucket!r} does not exist at {self.endpoint}; "
            f"create it or fix the URL {self.url}"
        )

    def _not_found(self, what: str, code: str | None) -> RemoteError:
        if code == "ContainerNotFound":
            return self._no_container()
        return RemoteError(f"{what}: the object does not exist in {self.url}")

    # --- parts ----------------------------------------------------------

    def list_parts(self) -> list[Part]:
        with self._errors("listing"):
            listing = self._container.list_blobs(
                name_starts_with=_cloud.list_prefix(self.prefix), results_per_page=1000
            )
            return self._parts((props.name, int(props.size or 0)) for props in listing)

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        length = _cloud.check_range(part, offset, length)
        blob = self._blob(self._key(part.name))
        what = f"reading {part}"
        if length == 0:
            with self._errors(what):
                blob.get_blob_properties()
            return _cloud.EmptyReader()
        # StorageStreamDownloader copies every chunk several times (about half the
        # speed measured on Azurite); a streamed GET through the client's own
        # pipeline keeps its auth and retry policies and reads from the socket.
        req = HttpRequest(
            "GET",
            blob.url,
            headers={
                "x-ms-range": f"bytes={offset}-{offset + length - 1}",
                "x-ms-version": blob.api_version,
                "Accept-Encoding": "identity",
            },
        )
        with self._errors(what):
            resp = blob._pipeline.run(req, stream=True).http_response
        status = resp.status_code
        inner: requests.Response = resp.internal_response
        if status not in (200, 206):
            code = resp.headers.get("x-ms-error-code") or resp.reason or ""
            inner.close()
            if status == 416:
                raise RemoteError(
                    f"{what}: the object in {self.url} is shorter than its name says"
                )
            raise self._status_error(what, status, code)
        _cloud.check_range_response(resp.headers.get("Content-Length"), status, offset, length, what, self.url,
                                    inner.close)
        return _cloud.RangeReader(inner.raw, length, what, inner.close)

    def upload_part(
        self,
        part: Part,
        body: Body,
        local: LocalRegion | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int] | None:
        blob = self._blob(self._key(part.name))
        what = f"uploading {part}"
        with _cloud.ChunkSource(part, body, local, what) as src:
            if part.size <= self._chunk:
                data = src.read(part.size)
                with self._errors(what):
                    blob.upload_blob(
                        data,
                        blob_type="BlockBlob",
                        length=len(data),
                        overwrite=True,
                        metadata=self._metadata or None,
                        max_concurrency=1,
                    )
                if progress is not None:
                    progress(len(data))
                return src.crcs
            chunk = max(self._chunk, -(-part.size // _MAX_BLOCKS))
            # Blocks stay uncommitted (and invisible) until the list is committed, so
            # a failure midway never leaves a short blob; Azure drops them in a week.
            blocks: list[Any] = []
            for number, piece in enumerate(src.chunks(chunk, reuse=True)):
                block_id = base64.b64encode(f"snapferry-{number:08d}".encode()).decode()
                with self._errors(what):
                    blob.stage_block(block_id, piece, length=len(piece))
                blocks.append(BlobBlock(block_id=block_id))
                if progress is not None:
                    progress(len(piece))
            with self._errors(what):
                blob.commit_block_list(blocks, metadata=self._metadata or None)
            return src.crcs

    def delete_part(self, part: Part) -> None:
        self._delete(self._key(part.name), f"deleting {part}")

    def _delete(self, key: str, what: str) -> None:
        with self._errors(what), suppress(ResourceNotFoundError):
            self._blob(key).delete_blob(delete_snapshots="include")

    def can_copy_from(self, src: Remote) -> bool:
        # An account key signs copies only from its own account; other sources need a SAS.
        return isinstance(src, AzblobRemote) and src.endpoint == self.endpoint

    def copy_part(self, src: Remote, part: Part) -> None:
        if not isinstance(src, AzblobRemote):
            raise TypeError(f"cannot copy server-side from {src!r} to {self.url}")
        what = f"copying {part} from {src.url}"
        dst = self._blob(self._key(part.name))
        source_url = src._blob(src._key(part.name)).url
        with self._errors(what):
            copy = dst.start_copy_from_url(source_url, metadata=self._metadata or None)
            status = copy.get("copy_status")
            deadline = time.monotonic() + _COPY_TIMEOUT
            while status == "pending":
                if time.monotonic() > deadline:
                    with suppress(AzureError):
                        dst.abort_copy(copy["copy_id"])
                    raise TransientRemoteError(
                        f"{what}: the server-side copy did not finish in {_COPY_TIMEOUT:.0f} s"
                    )
                time.sleep(_COPY_POLL)
                status = dst.get_blob_properties().copy.status
        if status != "success":
            raise TransientRemoteError(f"{what}: the server-side copy ended as {status!r}")

    # --- small files ----------------------------------------------------

    def has_file(self, name: str) -> bool:
        with self._errors(f"checking {name}"):
            try:
                self._blob(self._key(name)).get_blob_properties()
            except ResourceNotFoundError as e:
                if _code(e) == "ContainerNotFound":
                    raise
            else:
                return True
            # A HEAD has no body, so the SDK cannot always tell which of the two is missing.
            if not self._container.exists():
                raise self._no_container()
        return False

    def read_file(self, name: str) -> bytes:
        with self._errors(f"reading {name}"):
            data: bytes = self._blob(self._key(name)).download_blob().readall()
            return data

    def write_file(self, name: str, data: bytes) -> None:
        with self._errors(f"writing {name}"):
            self._blob(self._key(name)).upload_blob(
                data,
                blob_type="BlockBlob",
                length=len(data),
                overwrite=True,
                metadata=self._metadata or None,
            )

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            with self._errors(f"creating {name}"):
                self._blob(self._key(name)).upload_blob(
                    data, blob_type="BlockBlob", length=len(data), overwrite=False, metadata=self._metadata or None
                )
        except SnapferryError as e:
            if isinstance(e.__cause__, ResourceExistsError):
                return False
            raise
        except ResourceExistsError:
            return False
        return True

    def delete_file(self, name: str) -> None:
        self._delete(self._key(name), f"deleting {name}")

    def close(self) -> None:
        with suppress(Exception):
            self._service.close()


class _Retry(ExponentialRetry):
    """Full-jitter exponential backoff like botocore's: the SDK's own formula waits
    initial + base**n seconds (15 s, 18 s, 24 s by default) before its retries."""

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return random.uniform(0, min(8.0, 0.5 * 2 ** int(settings["count"])))


def _code(e: AzureError) -> str:
    # The storage SDK adds error_code (x-ms-error-code) to the exceptions it raises.
    return str(getattr(e, "error_code", None) or "")


def _service_client(url: str, kwargs: dict[str, Any]) -> Any:
    env = os.environ
    conn = next((env[v] for v in _CONN_STR_VARS if env.get(v)), None)
    if conn:
        try:
            return BlobServiceClient.from_connection_string(conn, **kwargs)
        except ValueError as e:
            raise UsageError(f"the Azure connection string for {url} is invalid: {e}") from e
    name = env.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not name:
        raise UsageError(f"no Azure credentials found for {url}; {_ENV_HELP}")
    account_url = env.get("AZURE_STORAGE_BLOB_ENDPOINT") or (
        f"https://{name}.blob.{env.get('AZURE_STORAGE_DOMAIN') or 'core.windows.net'}"
    )
    key = env.get("AZURE_STORAGE_ACCOUNT_KEY")
    if key:
        credential: Any = {"account_name": name, "account_key": key}
    else:
        try:
            from azure.identity import (  # type: ignore[import-not-found,unused-ignore]
                DefaultAzureCredential,
            )
        except ImportError:
            raise UsageError(
                f"no Azure account key found for {url}; set AZURE_STORAGE_ACCOUNT_KEY "
                "(or install azure-identity to sign in with a managed identity)"
            ) from None
        credential = DefaultAzureCredential()
    return BlobServiceClient(account_url, credential=credential, **kwargs)
