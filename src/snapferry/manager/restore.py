"""`snapferry manager restore`: restore the marked backup into the storage data path.

For an init container before the database starts: without a mark it returns at
once; with one it restores (resumably: a killed restore reruns from where it
stopped, since the mark stays) and removes the mark only after success.
"""

from __future__ import annotations

import dataclasses
import logging

from ..crypto import load_optional_key
from ..errors import SnapferryError
from ..partitions import PartitionFilter
from ..results import RestoreResult
from ..settings import RunSettings
from .catalog import Catalog
from .layout import parse_backup_name
from .marks import RestoreMarks, normal_url

log = logging.getLogger("snapferry")


def restore_marked(storage_data_path: str, dst: str | None, settings: RunSettings,
                   encryption_key_file: str | None = None) -> RestoreResult | None:
    """The restore's result, or None when there is no restore mark (the key file is read
    only when there is one: an init container without a mark returns at once)."""
    marks = RestoreMarks(storage_data_path, None)
    value = marks.get()
    if value is None:
        log.info("no restore mark in %s: nothing to restore", storage_data_path)
        return None
    src = marks.source_url(value) if "://" in value else ""
    root = dst or (_layout_root(src) if src else None)
    if root:
        with Catalog(root, settings.options(), settings.concurrency, settings.retry) as catalog:
            own = RestoreMarks(storage_data_path, catalog)
            src = own.source_url(value)
            name = own.own_name(src) if "://" in value else parse_backup_name(value)
            if name is not None:
                # Looked at as the catalog's child first: on fs:// a backup that is a symlink
                # below the root (or reached through one) is refused, not restored from.
                catalog.info(name)
    else:
        src = marks.source_url(value)
    sel = marks.selection()
    log.info("restoring %s into %s (restore mark %s%s)", src, storage_data_path, marks.path,
             "" if sel.partitions is None and sel.since is None
             else f"; partitions {sel.partitions or 'any'}, since {sel.since or 'any time'}")
    from ..actions.restore import Restore

    keyed = dataclasses.replace(settings, key=load_optional_key(encryption_key_file))
    result = Restore(src, storage_data_path, keyed, only=PartitionFilter(sel.partitions, sel.since)).run()
    marks.delete()
    return result


def _layout_root(url: str) -> str | None:
    """The manager's --dst a backup URL of its layout lies in (`.../daily/2026-11-27` -> `...`),
    or None for a URL of no layout: a mark holds only the URL, and the backup is then checked
    as the child of that root, as with --dst."""
    head, _, last = url.rpartition("/")
    for root, tail in ((head, last), (head.rpartition("/")[0], f"{head.rpartition('/')[2]}/{last}")):
        if "://" in root and root.split("://", 1)[1]:
            try:
                parse_backup_name(tail)
            except SnapferryError:
                continue
            return normal_url(root)
    return None
