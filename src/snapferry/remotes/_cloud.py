"""The skeleton the object-store backends (s3, gs, azblob) share.

A backend supplies a handful of single requests (`_exists`, `_get`, `_put`,
`_put_chunks`, `_delete`, `_list`, `_open_range`, `_copy`, `_bucket_exists`) and
one function, `_classify`, that says what kind of `Failure` an exception of its
SDK is (restic's backends do the same with IsPermanentError). Everything else is
written once here: the error messages (permanent, or TransientRemoteError for the
retry layer over the remote, remotes/retrying.py: this skeleton and the SDKs make
one attempt per request), the has_file bucket-vs-object probe, exclusive create,
the copy type check, single
versus multipart upload and the connection pool of the requests-based SDKs.
"""

from __future__ import annotations

import abc
import copy
import enum
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

import urllib3
import urllib3.exceptions

from ..errors import NoSpaceError, RemoteError, SnapferryError, TransientRemoteError, UsageError
from ..parts import Part, parse_listing
from ._transfer import ChunkSource, EmptyReader, check_range
from .base import Body, LocalRegion, Reader, Remote, RemoteOptions

if TYPE_CHECKING:
    import requests

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Failure(enum.Enum):
    """What went wrong with a request, as far as the caller needs to know."""

    RETRYABLE = "retryable"  # throttling, 5xx, resets, timeouts: worth another attempt
    NOT_FOUND = "not found"  # the object, or the bucket: the answer does not tell (a bare 404)
    NO_OBJECT = "no object"  # the object, in a bucket the answer says exists (S3's NoSuchKey)
    NO_BUCKET = "no bucket"
    DENIED = "denied"
    NO_CREDENTIALS = "no credentials"
    NO_SPACE = "no space"  # the store's quota or disk is full
    EXISTS = "exists"  # a create-if-absent found the object
    SHORT = "short"  # a range past the object's end: it is shorter than its name says
    PERMANENT = "permanent"


Classified = tuple[Failure, str]  # the failure and the detail for the message


# The one sentence per failure, with its error class (and so its exit code).
_MESSAGES: dict[Failure, tuple[type[SnapferryError], str]] = {
    Failure.NO_BUCKET: (RemoteError, "{word} does not exist: {bucket!r} at {endpoint}; create it or fix the URL {url}"),
    Failure.NOT_FOUND: (RemoteError, "{what}: the object does not exist in {url}"),
    Failure.NO_OBJECT: (RemoteError, "{what}: the object does not exist in {url}"),
    Failure.DENIED: (RemoteError, "{what}: {endpoint} denied access to {url} ({detail}); {denied_hint}"),
    Failure.NO_CREDENTIALS: (UsageError, "no usable credentials for {url}: {detail}; {creds_hint}"),
    Failure.NO_SPACE: (
        NoSpaceError, "{what} on {url} failed: the store is full ({detail}); free space or raise the quota"
    ),
    Failure.SHORT: (RemoteError, "{what}: the object in {url} is shorter than its name says"),
    Failure.RETRYABLE: (TransientRemoteError, "{what} on {url} failed: {detail}"),
    Failure.EXISTS: (RemoteError, "{what} on {url} failed: the object already exists ({detail})"),
    Failure.PERMANENT: (RemoteError, "{what} on {url} failed: {detail}"),
}


class HttpStatus(Exception):
    """An HTTP answer a backend got outside its SDK (the fast read paths), classified like SDK errors."""

    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"HTTP {status} {code}".rstrip())
        self.status = status
        self.code = code


def status_failure(status: int) -> Failure:
    """The failure an HTTP status means when the body's error code says nothing more."""
    if status in (401, 403):
        return Failure.DENIED
    if status == 404:
        return Failure.NOT_FOUND
    if status == 412:
        return Failure.EXISTS
    if status == 416:
        return Failure.SHORT
    if status == 507:
        return Failure.NO_SPACE
    if status in RETRY_STATUS or status >= 500:
        return Failure.RETRYABLE
    return Failure.PERMANENT


def join_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def list_prefix(prefix: str) -> str:
    # The trailing slash keeps prefix "a/b" from matching the objects of "a/bc".
    return f"{prefix}/" if prefix else ""


def remote_url(scheme: str, bucket: str, prefix: str) -> str:
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """User metadata travels in HTTP headers, so only ASCII survives every backend."""
    for k, v in metadata.items():
        if not k.isascii() or not v.isascii() or not k:
            raise UsageError(
                f"object metadata {k!r}={v!r} is not plain ASCII; object stores carry "
                "metadata in HTTP headers, so use ASCII names and values"
            )
    return dict(metadata)


def mount_pool(session: requests.Session, opts: RemoteOptions) -> requests.Session:
    """One pool for a requests-based SDK: as many connections as workers, no retries of its own."""
    # Imported here: s3:// reads on urllib3 alone, and requests is 40 ms of their start-up.
    import requests.adapters

    # requests keeps 10 connections per host unless told; restore runs more streams.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(opts.max_connections, 1), max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = not opts.tls_insecure_skip_verify
    return session


class ObjectStore(abc.ABC):
    """A bucket (container) and a prefix in an object store; implements the Remote protocol.

    Objects are durable once a PUT returns and there are no directories, so an object
    store is not a LocalTree (base.py): it has no sync or pruning to do. Every method
    makes one attempt; remotes/retrying.py decides what is tried again.
    """

    scheme: ClassVar[str]
    bucket_word: ClassVar[str] = "bucket"
    denied_hint: ClassVar[str]  # what to check when access is denied
    creds_hint: ClassVar[str]  # how to give credentials
    max_chunks: ClassVar[int]  # most chunks one multipart upload may have
    single_put_reuses_buffer: ClassVar[bool] = True  # the SDK takes a bytearray body
    # Whether _delete honours --delete-all-object-versions; the others refuse the flag at start.
    deletes_all_versions: ClassVar[bool] = False
    # What a tag (--backup-type-tag-name) becomes on this store, for the manager's log line.
    tag_kind: ClassVar[str] = "object metadata"
    endpoint: str

    def __init__(self, bucket: str, prefix: str, opts: RemoteOptions, chunk_size: int) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.url = remote_url(self.scheme, bucket, prefix)
        self._opts = opts
        self._metadata = check_metadata(opts.object_metadata)
        if opts.delete_all_object_versions and not self.deletes_all_versions:
            raise UsageError(
                f"--delete-all-object-versions (-deleteAllObjectVersions) is not supported for {self.url}: "
                "snapferry deletes every version of an object only on s3://; remove the flag and expire "
                "old versions with a lifecycle rule of the bucket"
            )
        self._chunk = chunk_size
        if opts.tls_insecure_skip_verify:
            # The user asked to skip TLS checks; urllib3 would otherwise warn on every request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def __repr__(self) -> str:
        return self.url

    def child(self, sub: str) -> Self:
        """The backup at prefix/sub on the same client, pools and credentials.

        A fresh remote costs a botocore session and client (about 0.5 s of CPU on
        s3://); the manager opens one per backup under its --dst. `sub` must be
        validated by the caller (a layout name).
        """
        return self.at(join_key(self.prefix, sub))

    def at(self, prefix: str) -> Self:
        """The remote at another prefix of the same bucket, on the same client (see child)."""
        c = copy.copy(self)
        c.prefix = prefix
        c.url = remote_url(self.scheme, self.bucket, prefix)
        return c

    def tagged(self, name: str, value: str) -> Self:
        """This remote (same client, see child) whose writes also carry the tag name=value."""
        c = copy.copy(self)
        c._add_tag(name, value)
        return c

    def _add_tag(self, name: str, value: str) -> None:
        # GCS has no object tags: user metadata is its closest kin (s3 and azblob tag for real).
        self._metadata = check_metadata({**self._metadata, name: value})

    def _key(self, name: str) -> str:
        return join_key(self.prefix, name)

    # --- what a backend supplies -----------------------------------------------------

    @abc.abstractmethod
    def _classify(self, e: BaseException) -> Classified | None:
        """The failure e means, or None when it is not an error of this backend's SDK."""

    @abc.abstractmethod
    def _bucket_exists(self) -> bool: ...

    @abc.abstractmethod
    def _exists(self, key: str) -> bool:
        """False for a missing object; a missing bucket may also answer False."""

    @abc.abstractmethod
    def _get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def _put(self, key: str, data: bytes | bytearray, crc: int | None, exclusive: bool) -> None:
        """One PUT of a whole object; crc is the CRC32 of data when it came for free."""

    @abc.abstractmethod
    def _put_chunks(self, key: str, src: ChunkSource, chunk: int, progress: Callable[[int], None] | None) -> None:
        """A multipart upload of every byte of src, in chunks of `chunk` bytes."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterable[tuple[str, int]]:
        """(key, real length) of every object under prefix."""

    @abc.abstractmethod
    def _open_range(self, key: str, offset: int, length: int, what: str) -> Reader:
        """A streamed GET of length bytes from offset; HttpStatus for an answer other than 200/206."""

    @abc.abstractmethod
    def _copy(self, src_key: str, src: ObjectStore, key: str) -> None: ...

    def _same_account(self, src: ObjectStore) -> bool:
        """Whether this remote's credentials may read src server-side (same kind and endpoint)."""
        return True

    # --- errors ---------------------------------------------------------------------

    def _error(self, what: str, failure: Failure, detail: str) -> SnapferryError:
        # A missing bucket answers a bare 404 to a HEAD, and some stores (SeaweedFS) deny
        # a PUT into it: ask the bucket, so backup and restore word it the same way.
        if failure in (Failure.NOT_FOUND, Failure.DENIED) and not self._bucket_exists_quietly():
            failure = Failure.NO_BUCKET
        kind, template = _MESSAGES[failure]
        return kind(template.format(
            what=what, url=self.url, endpoint=self.endpoint, detail=detail, bucket=self.bucket,
            word=self.bucket_word, denied_hint=self.denied_hint, creds_hint=self.creds_hint,
        ))

    def _bucket_exists_quietly(self) -> bool:
        try:
            return self._bucket_exists()
        except Exception:
            return True  # only used to word an error; when unsure, blame the object

    def _failure(self, e: BaseException) -> Failure | None:
        kind = self._classify(e)
        return kind[0] if kind is not None else None

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """SDK errors inside become one SnapferryError sentence; ours pass as they are."""
        try:
            yield
        except SnapferryError:
            raise
        except Exception as e:
            kind = self._classify(e)
            if kind is None:
                raise
            raise self._error(what, *kind) from e

    def _request(self, what: str, fn: Callable[[], T]) -> T:
        """One request, its SDK errors made one sentence (retried above, by the retry layer)."""
        with self._errors(what):
            return fn()

    # --- parts ----------------------------------------------------------------------

    def list_parts(self) -> list[Part]:
        return self._request(
            "listing", lambda: parse_listing(self._list(list_prefix(self.prefix)), len(list_prefix(self.prefix)))
        )

    def list_objects(self) -> list[tuple[str, int]]:
        """Every object under the prefix, parts or not (verify names the junk)."""
        prefix = list_prefix(self.prefix)
        return self._request("listing", lambda: [(key[len(prefix):], size) for key, size in self._list(prefix)])

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        length = check_range(part, offset, length)
        key = self._key(part.name)
        what = f"reading {part}"
        with self._errors(what):
            if length > 0:
                return self._open_range(key, offset, length, what)
            # A Range header on an empty object is an error; still prove the object exists.
            if not self._exists(key):
                raise self._error(what, Failure.NOT_FOUND, "")
            return EmptyReader()

    def upload_part(
        self, part: Part, body: Body, local: LocalRegion | None = None, progress: Callable[[int], None] | None = None
    ) -> list[int] | None:
        key = self._key(part.name)
        what = f"uploading {part}"
        chunk = max(self._chunk, -(-part.size // self.max_chunks))
        with ChunkSource(part, body, local, what) as src, self._errors(what):
            if part.size > chunk:
                self._put_chunks(key, src, chunk, progress)
            else:
                data = src.read_reused(part.size) if self.single_put_reuses_buffer else src.read(part.size)
                self._put(key, data, src.last_crc, False)
                if progress is not None:
                    progress(len(data))
        return src.crcs

    def delete_part(self, part: Part) -> None:
        self._delete_if_there(self._key(part.name), f"deleting {part}")

    def can_copy_from(self, src: Remote) -> bool:
        return isinstance(src, type(self)) and src.endpoint == self.endpoint and self._same_account(src)

    def copy_part(self, src: Remote, part: Part) -> None:
        if not isinstance(src, type(self)):
            raise TypeError(f"cannot copy server-side from {src!r} to {self.url}")
        with self._errors(f"copying {part} from {src.url}"):
            self._copy(src._key(part.name), src, self._key(part.name))

    # --- small files ----------------------------------------------------------------

    def has_file(self, name: str) -> bool:
        if self._request(f"checking {name}", lambda: self._exists(self._key(name))):
            return True
        # A HEAD answers a bare 404 for a missing bucket and a missing object alike.
        if not self._bucket_exists_quietly():
            raise self._error(f"checking {name}", Failure.NO_BUCKET, "")
        return False

    def read_file(self, name: str) -> bytes:
        return self._request(f"reading {name}", lambda: self._get(self._key(name)))

    def write_file(self, name: str, data: bytes) -> None:
        self._request(f"writing {name}", lambda: self._put(self._key(name), data, None, False))

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        def create() -> bool:
            try:
                self._put(self._key(name), data, None, True)
            except Exception as e:
                if self._failure(e) is Failure.EXISTS:
                    return False
                raise
            return True

        return self._request(f"creating {name}", create)

    def delete_file(self, name: str) -> None:
        self._delete_if_there(self._key(name), f"deleting {name}")

    def _delete_if_there(self, key: str, what: str) -> None:
        def delete() -> None:
            try:
                self._delete(key)
            except Exception as e:
                if self._failure(e) not in (Failure.NOT_FOUND, Failure.NO_OBJECT):
                    raise

        self._request(what, delete)
