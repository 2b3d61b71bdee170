"""The remotes of one --dst: its root, opened once, and each backup under it as a child.

A child shares the root's client and connection pools. Opening a fresh remote per
backup cost about 0.5 s of CPU on s3:// (botocore builds a session, loads its
service model and a client each time): a run touching latest/ and four dated
backups spent more time there than copying, and a listing paid it per backup.
"""

from __future__ import annotations

from ..remotes import Remote, RemoteOptions, open_remote
from ..remotes.retrying import with_retries
from ..retry import RetryPolicy


class DstRemotes:
    def __init__(self, dst: str, options: RemoteOptions) -> None:
        self.dst = dst.rstrip("/")
        self.options = options
        # Listings and small files under the retry layer (a run's transfers get its policy).
        self.root = with_retries(open_remote(self.dst, options), RetryPolicy())

    def child(self, sub: str) -> Remote:
        """The remote of `sub` (a validated backup name) under the root; never close it."""
        return self.root.child(sub)  # the backend knows what a child shares

    def url(self, sub: str) -> str:
        return f"{self.dst}/{sub}"

    def close(self) -> None:
        self.root.close()
