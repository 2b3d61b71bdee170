"""What a backup reads: a snapshot directory (--src), an existing snapshot of a data
directory (--snapshot-name), or a snapshot made for this run and removed after it
(--snapshot-create-url, through snapguard.made_snapshot). Each gives the backup the
directory to read for as long as it runs, and the directory no backup may land in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import snapshot
from ..errors import SnapferryError, UsageError

if TYPE_CHECKING:
    from ..snapguard import SnapshotGuard


class Source(Protocol):
    @property
    def data_dir(self) -> str: ...  # no backup may land inside it

    def directory(self, dst_url: str) -> contextlib.AbstractContextManager[str]:
        """The snapshot directory while the backup to `dst_url` runs."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotDir:
    """--src: a snapshot directory as it is."""

    path: str

    @property
    def data_dir(self) -> str:
        """For a snapshot path `<data>/snapshots/<name>` the whole data directory, else the source itself."""
        parent = os.path.dirname(os.path.realpath(self.path))
        if os.path.basename(parent) == "snapshots":
            return os.path.dirname(parent)
        return self.path

    @contextlib.contextmanager
    def directory(self, dst_url: str) -> Iterator[str]:
        yield self.path


@dataclass(frozen=True, slots=True)
class NamedSnapshot:
    """--storage-data-path with --snapshot-name: a snapshot made before the run, left as it is."""

    data_dir: str
    name: str

    @contextlib.contextmanager
    def directory(self, dst_url: str) -> Iterator[str]:
        yield snapshot.snapshot_dir(self.data_dir, self.name)


@dataclass(frozen=True, slots=True)
class MadeSnapshot:
    """--storage-data-path with --snapshot-create-url: a snapshot made for this backup and
    deleted afterwards, also when the backup fails, or else by the next such run (snapguard.py).

    `one_shot` (the CLI, the API): a failed backup's error wins over a snapshot it cannot
    delete (a warning), and one left after a good backup fails the run saying both. The
    manager's runs: a snapshot that cannot be deleted fails the step with the delete's error."""

    guard: SnapshotGuard
    one_shot: bool = True

    @property
    def data_dir(self) -> str:
        return self.guard.storage_data_path

    @contextlib.contextmanager
    def directory(self, dst_url: str) -> Iterator[str]:
        from ..snapguard import SnapshotLeft, made_snapshot

        try:
            with made_snapshot(self.guard, warn_after_failure=self.one_shot) as name:
                yield snapshot.snapshot_dir(self.data_dir, name)
        except SnapshotLeft as e:
            if not self.one_shot:
                raise
            # Raised only after the backup succeeded: it is complete and good, but a snapshot
            # left behind still holds disk space (its hard links keep merged-away parts).
            raise SnapferryError(
                f"the backup to {dst_url} is complete, but the snapshot {e.name} is left: {e.cause}; "
                f"delete it with `curl '{e.url}'`"
            ) from e.cause


def source_of(
    src: str | None,
    storage_data_path: str | None,
    snapshot_name: str | None,
    snapshot_create_url: str | None,
    snapshot_delete_url: str | None,
    snapshot_tls: snapshot.SnapshotTLS | None,
) -> Source:
    """The one source the options name, checked before any remote is opened (a wrong path or
    TLS setting is a usage error)."""
    chosen = sum(x is not None for x in (src, snapshot_name, snapshot_create_url))
    if chosen != 1:
        raise UsageError(
            "name exactly one source: --src DIR, or --storage-data-path with --snapshot-name "
            "or --snapshot-create-url"
        )
    if src is not None and storage_data_path is not None:
        raise UsageError(
            "--src and --storage-data-path name two sources; use --src DIR alone, or --storage-data-path "
            "with --snapshot-name or --snapshot-create-url"
        )
    if (snapshot_name or snapshot_create_url) and not storage_data_path:
        raise UsageError("--snapshot-name and --snapshot-create-url need --storage-data-path")
    if snapshot_tls is not None and snapshot_tls != snapshot.SnapshotTLS() and snapshot_create_url is None:
        raise UsageError("the --snapshot-tls-* options apply to --snapshot-create-url, which is not given")
    if src is not None:
        return SnapshotDir(src)
    assert storage_data_path is not None
    if snapshot_name is not None:
        return NamedSnapshot(storage_data_path, snapshot_name)
    assert snapshot_create_url is not None
    from ..snapguard import SnapshotGuard  # fcntl, secrets: only for a run that makes a snapshot

    guard = SnapshotGuard(storage_data_path, snapshot_create_url, snapshot_delete_url,
                          snapshot_tls or snapshot.SnapshotTLS())
    guard.check()
    return MadeSnapshot(guard)
