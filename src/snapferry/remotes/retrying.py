"""The one retry layer: a Remote over a Remote that retries transient failures.

As restic's internal/backend/retry: every remote a run uses is wrapped once, on top
(`with_retries`, called where the actions receive their remote and the run's policy);
the backends below make one attempt per request and only say which failures are
worth another (TransientRemoteError, from _cloud's `_classify`); the actions call
the remote and never loop. What each operation does on a retry:

- a small request (listing, small file, delete, server-side copy) is made again;
- an upload is sent again from the start of a fresh body (a `Rewindable` one: the
  action's body opens its bytes again and takes back the progress it counted); a
  body that cannot rewind is not retried here (crypto's, below this layer);
- a read resumes from its first missing byte on a new request (`ResumingReader`): a
  body cut short mid-stream is not read again from its start, and each failure that
  comes after bytes arrived starts its attempts afresh, so a long transfer over a
  flaky link is not abandoned while it still advances.

The first attempt of each runs bare (policy.call / the readers' fast path): a run of
30,000 small parts where nearly every request succeeds at once pays no tenacity state
per request, and a nothing-changed run never imports it (tests/test_cli_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast, runtime_checkable

from ..errors import TransientRemoteError
from ..parts import Part
from ..retry import RetryPolicy
from .base import Body, FileReader, KeepsChecksums, LocalRegion, Reader, Remote, Transparent

if TYPE_CHECKING:
    from ..checksums import ProviderChecksum

T = TypeVar("T")
OpenFn = Callable[[int, int], Reader]  # (offset, length) -> a reader of those bytes


@runtime_checkable
class Rewindable(Protocol):
    """An upload body that can start over: the retry layer rewinds it before each new attempt."""

    def rewind(self) -> None: ...


class RetryingRemote(Transparent):
    """`inner`, with every operation retried on TransientRemoteError by `policy`.

    Transparent (base.py): a local tree or a store's checksums below it are still seen."""

    def __init__(self, inner: Remote, policy: RetryPolicy) -> None:
        self.inner = inner
        self.url = inner.url
        self.policy = policy
        # A single request restarts nothing and a dead endpoint should be said in seconds:
        # it gets at most retry.REQUEST_ATTEMPTS of the run's attempts (retry.py says why).
        self._requests = policy.for_requests()

    def __repr__(self) -> str:
        return self.url

    def _call(self, fn: Callable[[], T]) -> T:
        return self._requests.call(fn)

    # --- transfers ------------------------------------------------------------------

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        if length is None:
            length = part.size - offset
        inner = self.inner

        def reopen(at: int, n: int) -> Reader:
            return inner.open_part(part, at, n)

        return resuming(reopen, offset, length, self.policy, f"the body of {part.name} from {self.url}", part.size)

    def upload_part(
        self, part: Part, body: Body, local: LocalRegion | None = None, progress: Callable[[int], None] | None = None
    ) -> list[int] | None:
        try:
            return self.inner.upload_part(part, body, local, progress)  # the bare first attempt
        except TransientRemoteError as e:
            if not isinstance(body, Rewindable):
                raise
            failure = e

        def again() -> list[int] | None:
            body.rewind()
            return self.inner.upload_part(part, body, local, progress)

        return self.policy.after(failure, again)

    def copy_part(self, src: Remote, part: Part) -> None:
        self.policy.call(lambda: self.inner.copy_part(without_retries(src), part))

    # --- single requests ------------------------------------------------------------

    def list_parts(self) -> list[Part]:
        return self._call(self.inner.list_parts)

    def list_objects(self) -> list[tuple[str, int]]:
        return self._call(self.inner.list_objects)

    def delete_part(self, part: Part) -> None:
        self._call(lambda: self.inner.delete_part(part))

    def can_copy_from(self, src: Remote) -> bool:
        return self.inner.can_copy_from(without_retries(src))

    def has_file(self, name: str) -> bool:
        return self._call(lambda: self.inner.has_file(name))

    def read_file(self, name: str) -> bytes:
        return self._call(lambda: self.inner.read_file(name))

    def write_file(self, name: str, data: bytes) -> None:
        self._call(lambda: self.inner.write_file(name, data))

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        return self._call(lambda: self.inner.create_file_exclusive(name, data))

    def delete_file(self, name: str) -> None:
        self._call(lambda: self.inner.delete_file(name))

    def child(self, sub: str) -> Remote:
        return with_retries(self.inner.child(sub), self.policy)

    def close(self) -> None:
        self.inner.close()


class _RetryingKeeper(RetryingRemote, KeepsChecksums):
    """The retry layer over a store that keeps checksums (verify asks them, retried too)."""

    def part_checksum(self, part: Part) -> ProviderChecksum | None:
        keeper = self.inner
        assert isinstance(keeper, KeepsChecksums)
        return self._call(lambda: keeper.part_checksum(part))


def with_retries(remote: Remote, policy: RetryPolicy) -> Remote:
    """`remote` retried by `policy`: the layer goes on top, once (a remote already wrapped
    gets the new policy instead of a second layer, whose attempts would multiply)."""
    inner = without_retries(remote)
    if isinstance(inner, KeepsChecksums):
        return _RetryingKeeper(inner, policy)
    return RetryingRemote(inner, policy)


def without_retries(remote: Remote) -> Remote:
    """The remote under the retry layer, for a wrapper that goes below it (encryption)."""
    return remote.inner if isinstance(remote, RetryingRemote) else remote


def resuming(open_range: OpenFn, offset: int, length: int, policy: RetryPolicy, what: str, size: int) -> Reader:
    """A reader of `length` bytes from `offset` that, on a transient failure (an error, or a
    body that ends early), opens the rest again from its first missing byte. `what` names
    the body and `size` its whole length, for the message of a body that ends early."""
    first = policy.call(lambda: open_range(offset, length))
    # An attribute test, not isinstance(first, FileReader): a runtime Protocol's isinstance
    # costs ~90 us when it fails (Python 3.11), more than the rest of a small range's read.
    cls = ResumingFileReader if callable(getattr(first, "read_to_file", None)) else ResumingReader
    return cls(open_range, first, offset, length, policy, what, size)


class ResumingReader:
    """A Reader whose transient failures are retried by reading on from where it stopped."""

    __slots__ = ("_end", "_open", "_policy", "_r", "_size", "_what", "pos")

    def __init__(self, open_range: OpenFn, first: Reader, offset: int, length: int, policy: RetryPolicy,
                 what: str, size: int) -> None:
        self._open = open_range
        self._r: Reader | None = first
        self.pos = offset
        self._end = offset + length
        self._policy = policy
        self._what = what
        self._size = size

    def readinto(self, buf: memoryview) -> int:
        if self.pos >= self._end:
            return 0
        r = self._r
        try:
            # The bare fast path, inline (a restore calls this per pool buffer): nearly
            # every read succeeds at once.
            n = r.readinto(buf) if r is not None else 0
            if not n:
                raise self._short()
        except TransientRemoteError as e:
            n = self._resume(e, lambda: self._read(buf))
        self.pos += n
        return n

    def _read(self, buf: memoryview) -> int:
        n = self._reader().readinto(buf)
        if not n:
            raise self._short()
        return n

    def _reader(self) -> Reader:
        if self._r is None:
            self._r = self._open(self.pos, self._end - self.pos)
        return self._r

    def _short(self) -> TransientRemoteError:
        return TransientRemoteError(f"{self._what} ended early at byte {self.pos} of {self._size}")

    def _resume(self, failure: TransientRemoteError, step: Callable[[], int]) -> int:
        """step() on a new request from self.pos, by the policy; attempt 1 is `failure`."""

        def again() -> int:
            self.close()  # the broken request's connection is not reused: a new one from pos
            return step()

        return self._policy.after(failure, again)

    def close(self) -> None:
        r, self._r = self._r, None
        if r is not None:
            r.close()


class ResumingFileReader(ResumingReader):
    """A ResumingReader over readers that can also move bytes into a file in the kernel."""

    __slots__ = ()

    def read_to_file(self, fd: int, offset: int, n: int) -> int:
        if self.pos >= self._end:
            return 0

        def step() -> int:
            r = cast("FileReader", self._reader())  # the same backend opens the same kind each time
            got = r.read_to_file(fd, offset, n)
            if not got and n:
                raise self._short()
            return got

        try:
            got = step()
        except TransientRemoteError as e:
            got = self._resume(e, step)
        self.pos += got
        return got

