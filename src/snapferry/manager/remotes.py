"""The remotes of one --dst: its root, opened once, and each backup under it as a child.

A child shares the root's client and connection pools. Opening a fresh remote per
backup cost about 0.5 s of CPU on s3:// (botocore builds a session, loads its
service model and a client each time): a run touching latest/ and four dated
backups spent more time there than copying, and a listing paid it per backup.

With --backup-type-tag-name NAME (vmbackupmanager's -backupTypeTagName) each child
writes its objects with NAME=<type> (latest, hourly, daily, weekly, monthly), so a
bucket's lifecycle rules can expire backups by type: S3 object tags on s3://, blob index
tags on azblob:// (lifecycle rules match them too), user metadata on gs:// (GCS has no
object tags), nothing on fs:// (no tags there).
"""

from __future__ import annotations

import logging
import re

from ..errors import UsageError
from ..remotes import Remote, RemoteOptions, open_remote
from ..remotes._cloud import ObjectStore
from ..remotes.retrying import with_retries, without_retries
from ..retry import RetryPolicy

log = logging.getLogger("snapferry")

# What S3 allows in a tag key (letters, digits, space and + - = . _ : / @, at most 128),
# narrowed to ASCII without space, which also survives as gs:// and azblob:// metadata.
_TAG_NAME = re.compile(r"[A-Za-z0-9+\-=._:/@]{1,128}")
_AZURE_TAG_NAME = re.compile(r"[A-Za-z0-9+\-./:=_]{1,128}")  # Azure's blob index tag keys (no @)
_S3_MAX_TAGS = 10  # tags one S3 object may carry


class DstRemotes:
    def __init__(self, dst: str, options: RemoteOptions, retry: RetryPolicy | None = None) -> None:
        self.dst = dst.rstrip("/")
        self.options = options
        self.tag_name = options.backup_type_tag_name
        check_tag_name(self.tag_name, options)
        # Every remote of the catalog under the retry layer, with the manager's --retries.
        self._policy = retry or RetryPolicy()
        self.root = with_retries(open_remote(self.dst, options), self._policy)
        if self.tag_name:
            self._check_tagging()

    def _check_tagging(self) -> None:
        """Refuse a name the store cannot carry; say once, at start, what the tag becomes here."""
        root = without_retries(self.root)
        if not isinstance(root, ObjectStore):
            log.warning("--backup-type-tag-name %s does nothing on %s: files have no tags; expire backups "
                        "by directory (hourly/, daily/, ...) or with --keep-last-*", self.tag_name, self.dst)
            return
        if root.scheme == "azblob" and not _AZURE_TAG_NAME.fullmatch(self.tag_name):
            root.close()
            raise UsageError(f"--backup-type-tag-name {self.tag_name!r} cannot name an Azure blob index tag on "
                             f"{self.dst}: use ASCII letters, digits and + - . / : = _")
        if root.scheme == "gs":
            # Stored, but not what the flag is for: say so rather than let a lifecycle rule miss.
            log.warning("GCS has no object tags: objects written under %s carry the object metadata "
                        "%s=<backup type>, which GCS lifecycle rules cannot match; expire backups by prefix "
                        "(matchesPrefix hourly/, daily/, ...) or with --keep-last-*", self.dst, self.tag_name)
            return
        log.info("objects written under %s carry the %s %s=<backup type> (--backup-type-tag-name)",
                 self.dst, root.tag_kind, self.tag_name)

    def child(self, sub: str) -> Remote:
        """The remote of `sub` (a validated backup name) under the root; never close it."""
        remote = without_retries(self.root).child(sub)  # the backend knows what a child shares
        if self.tag_name and isinstance(remote, ObjectStore):
            remote = remote.tagged(self.tag_name, sub.split("/", 1)[0])
        return with_retries(remote, self._policy)

    def url(self, sub: str) -> str:
        return f"{self.dst}/{sub}"

    def close(self) -> None:
        self.root.close()


def check_tag_name(name: str, options: RemoteOptions) -> None:
    """A tag name S3 and the metadata of gs:// and azblob:// all accept, not already set by --s3-object-tags."""
    if not name:
        return
    if not _TAG_NAME.fullmatch(name) or name.lower().startswith("aws:"):
        raise UsageError(
            f"--backup-type-tag-name {name!r} is not a usable tag name: use 1 to 128 ASCII letters, digits "
            "or + - = . _ : / @ (no space, not starting with aws:)"
        )
    if len(options.s3_object_tags) >= _S3_MAX_TAGS:
        raise UsageError(
            f"--s3-object-tags sets {len(options.s3_object_tags)} tags; S3 keeps at most {_S3_MAX_TAGS} per "
            f"object, so --backup-type-tag-name {name!r} has no room: drop one of them"
        )
    if name in options.s3_object_tags or name in options.object_metadata:
        raise UsageError(
            f"--backup-type-tag-name {name!r} is also set by --s3-object-tags or --object-metadata; "
            "the backup type would overwrite it: choose another name"
        )
