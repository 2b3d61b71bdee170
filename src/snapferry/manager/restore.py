"""`snapferry manager restore`: restore the marked backup into the storage data path.

For an init container before the database starts: without a mark it returns at
once; with one it restores (resumably: a killed restore reruns from where it
stopped, since the mark stays) and removes the mark only after success.
"""

from __future__ import annotations

import logging

from .. import api
from ..remotes import RemoteOptions
from ..results import RestoreResult
from ..retry import RetryPolicy
from .catalog import Catalog
from .layout import parse_backup_name
from .marks import RestoreMarks

log = logging.getLogger("snapferry")


def restore_marked(
    storage_data_path: str,
    dst: str | None,
    *,
    remote_options: RemoteOptions,
    concurrency: int = api.DEFAULT_CONCURRENCY,
    max_bytes_per_second: int = 0,
    retries: int = 6,
    progress: str = "auto",
    encryption_key_file: str | None = None,
) -> RestoreResult | None:
    """The restore's result, or None when there is no restore mark."""
    marks = RestoreMarks(storage_data_path, None)
    value = marks.get()
    if value is None:
        log.info("no restore mark in %s: nothing to restore", storage_data_path)
        return None
    if dst:
        with Catalog(dst, remote_options, concurrency) as catalog:
            src = RestoreMarks(storage_data_path, catalog).source_url(value)
            if "://" not in value:
                # Looked at as the catalog's child first: on fs:// a backup that is a symlink
                # below the root (or reached through one) is refused, not restored from.
                catalog.info(parse_backup_name(value))
    else:
        src = marks.source_url(value)
    log.info("restoring %s into %s (restore mark %s)", src, storage_data_path, marks.path)
    result = api.restore(
        src, storage_data_path, concurrency=concurrency, max_bytes_per_second=max_bytes_per_second,
        remote_options=remote_options, retry=RetryPolicy(attempts=retries), progress=progress,
        encryption_key_file=encryption_key_file,
    )
    marks.delete()
    return result
