"""Open a remote from its URL."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import UsageError
from .base import Body, LocalRegion, LocalTree, Reader, Remote, RemoteOptions, local_tree

__all__ = [
    "Body", "LocalRegion", "LocalTree", "Reader", "Remote", "RemoteOptions", "local_tree", "open_remote", "split_url",
]

SCHEMES = ("fs", "s3", "gs", "azblob")
_HELP = "use fs:///absolute/path, s3://bucket/prefix, gs://bucket/prefix or azblob://container/prefix"


def split_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix) for a remote URL; for fs:// bucket is '' and prefix the path."""
    if "://" not in url:
        raise UsageError(f"{url!r} is not a remote URL; {_HELP}")
    scheme, rest = url.split("://", 1)
    if scheme not in SCHEMES:
        raise UsageError(f"{url!r} has the unknown scheme {scheme!r}; {_HELP}")
    if scheme == "fs":
        if not rest.startswith("/"):
            raise UsageError(
                f"{url!r} is a relative path; fs:// needs an absolute one, like fs:///var/backups/vm"
            )
        path = os.path.normpath(rest)
        return scheme, "", path
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"{url!r} names no bucket; {_HELP}")
    prefix = prefix.strip("/")
    if any(seg in (".", "..") for seg in prefix.split("/")) or "//" in prefix:
        raise UsageError(f"{url!r} has '.', '..' or empty segments in its prefix; {_HELP}")
    return scheme, bucket, prefix


def open_remote(url: str, options: RemoteOptions | None = None) -> Remote:
    scheme, bucket, prefix = split_url(url)
    opts = options or RemoteOptions()
    if scheme == "fs":
        from .fs import FsRemote

        return FsRemote(prefix)
    if scheme == "s3":
        from .s3 import S3Remote

        return S3Remote(bucket, prefix, opts)
    if scheme == "gs":
        with _sdk(url, "gcs", "Google Cloud Storage"):
            from .gcs import GcsRemote
        return GcsRemote(bucket, prefix, opts)
    with _sdk(url, "azure", "Azure Blob Storage"):
        from .azblob import AzblobRemote
    return AzblobRemote(bucket, prefix, opts)


# The top-level modules each optional extra brings (and their own dependencies).
_EXTRA_MODULES = frozenset({"google", "azure", "requests", "proto", "grpc", "isodate", "typing_extensions"})


@contextlib.contextmanager
def _sdk(url: str, extra: str, what: str) -> Iterator[None]:
    """gs:// and azblob:// need SDKs that a base install leaves out (`snapferry[gcs]`,
    `snapferry[azure]`): say which extra to install instead of an ImportError."""
    try:
        yield
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in _EXTRA_MODULES:
            raise
        raise UsageError(
            f"{url!r} needs the {what} SDK, which this install of snapferry lacks (no module {e.name!r}); "
            f"install it with: pip install 'snapferry[{extra}]'"
        ) from None
