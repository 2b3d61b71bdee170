"""A backup's --origin: the parts dst copies server-side instead of uploading them.

Without --origin the backup gets NoOrigin, which has nothing and copies nothing, so
the backup's steps read the same either way (no `origin is None` branches).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import checksums
from ..errors import UsageError
from ..names import MANIFEST_FILE
from ..parts import Part, validate_listing
from ..remotes.base import Remote
from ..remotes.location import location_of, refuse_overlap
from ..remotes.retrying import with_retries, without_retries
from ..settings import RunSettings
from ..workers import parallel
from .opening import Where, opened, reading, writing

if TYPE_CHECKING:
    from ..crypto.keys import UserKey


class Origin(Protocol):
    @property
    def url(self) -> str | None: ...  # None: no origin (as BackupResult.origin says)

    def check(self, dst: Remote) -> None: ...

    def list_parts(self) -> list[Part]: ...

    def known_crcs(self) -> dict[str, checksums.PartCrcs]: ...

    def copy_parts(self, dst: Remote, parts: list[Part], concurrency: int) -> None: ...

    def writer(self, dst: Remote, key: UserKey | None, replace: bool = False) -> Remote:
        """dst as the backup writes it: under `key` with the origin's record, so its sealed
        parts are copied as they are (as it is without a key)."""
        ...


@dataclass(frozen=True)
class RemoteOrigin:
    remote: Remote

    @property
    def url(self) -> str:
        return self.remote.url

    def check(self, dst: Remote) -> None:
        # The backup deletes dst's parts the snapshot lacks: an origin inside dst would lose its own.
        refuse_overlap(location_of(self.remote), location_of(dst), "--origin", "--dst")
        if not dst.can_copy_from(self.remote):
            raise UsageError(
                f"--origin {self.remote.url} cannot be copied server-side to {dst.url}; "
                "use an origin on the same backend (and endpoint) as --dst"
            )

    def list_parts(self) -> list[Part]:
        parts = self.remote.list_parts()
        validate_listing(parts, self.remote.url)  # checked before anything is written or deleted
        return parts

    def known_crcs(self) -> dict[str, checksums.PartCrcs]:
        """The CRCs origin's manifest records, so copied parts keep theirs."""
        if not self.remote.has_file(MANIFEST_FILE):
            return {}
        return checksums.decode(self.remote.read_file(MANIFEST_FILE)) or {}

    def copy_parts(self, dst: Remote, parts: list[Part], concurrency: int) -> None:
        if parts:
            parallel(concurrency, parts, lambda p: dst.copy_part(self.remote, p))

    def writer(self, dst: Remote, key: UserKey | None, replace: bool = False) -> Remote:
        return writing(dst, key, without_retries(self.remote), replace=replace)


@dataclass(frozen=True)
class NoOrigin:
    url: None = None

    def check(self, dst: Remote) -> None:
        pass

    def list_parts(self) -> list[Part]:
        return []

    def known_crcs(self) -> dict[str, checksums.PartCrcs]:
        return {}

    def copy_parts(self, dst: Remote, parts: list[Part], concurrency: int) -> None:
        assert not parts, "no origin lists no parts to copy"

    def writer(self, dst: Remote, key: UserKey | None, replace: bool = False) -> Remote:
        return writing(dst, key)  # no source: a backup under another key there is refused always


def origin_of(stack: contextlib.ExitStack[bool | None], where: Where | None, settings: RunSettings) -> Origin:
    """The one place a missing --origin is a None: the origin opened (or lent) and read with
    the run's key (an encrypted backup copies parts only from an origin the same key opens),
    under its retry layer."""
    if where is None:
        return NoOrigin()
    try:
        keyed = reading(opened(stack, where, settings), settings.key)
    except UsageError as e:  # said of --origin, not of the backup being made
        raise UsageError(f"--origin: {e}; an encrypted backup copies parts only from an "
                         "encrypted origin made with the same key") from None
    return RemoteOrigin(with_retries(keyed, settings.retry))
