"""Where a backup lives, and whether two places overlap.

copy, backup (--dst against the data directory and --origin) and restore all
refuse a source and a destination that are the same place or one inside the
other: a copy or backup deletes the destination's parts the source lacks, and
when the source lies inside the destination those are the source's own files.
The identity of a place and that one overlap rule live here, so every action
asks the same question.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from ..errors import UsageError
from . import split_url
from .base import Remote, innermost, local_tree


@dataclass(frozen=True, slots=True)
class Location:
    """A place that holds a backup (or a local directory).

    scheme: 'fs' or the object store's scheme; endpoint: the normalised service
    URL ('' on fs://); bucket: bucket or container ('' on fs://); path: on fs://
    the real path (symlinks and `..` resolved), else the prefix without slashes at
    either end ('' for the whole bucket); own_id and ids: on fs://, the (device,
    inode) of the path when it exists and of it and each existing ancestor, so bind
    mounts and other aliases that realpath cannot see still match.
    """

    url: str
    scheme: str
    endpoint: str
    bucket: str
    path: str
    own_id: tuple[int, int] | None = None
    ids: frozenset[tuple[int, int]] = frozenset()


def local_location(path: str) -> Location:
    """The Location of a local directory (it need not exist yet)."""
    real = os.path.realpath(os.path.abspath(path))
    ids: list[tuple[int, int]] = []
    own: tuple[int, int] | None = None
    d = real
    while True:
        try:
            st = os.stat(d)
        except OSError:
            pass
        else:
            ids.append((st.st_dev, st.st_ino))
            if d == real:
                own = ids[0]
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return Location(f"fs://{real}", "fs", "", "", real, own, frozenset(ids))


def location_of(remote: Remote) -> Location:
    """The Location of a remote: a local directory's identity, or an object store's
    endpoint, bucket and prefix."""
    remote = innermost(remote)  # an encrypted backup is where its objects are
    tree = local_tree(remote)
    if tree is not None:
        loc = local_location(tree.root)
        return Location(remote.url, loc.scheme, "", "", loc.path, loc.own_id, loc.ids)
    from ._cloud import ObjectStore  # here, not at the top: fs:// runs never load the SDKs' helpers

    if isinstance(remote, ObjectStore):
        return object_location(remote.url, remote.endpoint, remote.bucket, remote.prefix)
    # A backend outside ObjectStore: its URL is all there is to compare.
    _scheme, bucket, prefix = split_url(remote.url)
    return object_location(remote.url, "", bucket, prefix)


def object_location(url: str, endpoint: str, bucket: str, prefix: str) -> Location:
    """The Location of a prefix in an object store's bucket, the endpoint in one spelling."""
    return Location(url, url.split("://", 1)[0], _normal_endpoint(endpoint), bucket, prefix.strip("/"))


def _normal_endpoint(endpoint: str) -> str:
    """One spelling per service: case, default ports and a trailing slash do not make another place."""
    u = urllib.parse.urlsplit(endpoint.strip().rstrip("/"))
    host = (u.hostname or "").lower()
    if host.endswith(".amazonaws.com"):
        # AWS bucket names are global: every regional endpoint reaches the same bucket.
        return "https://s3.amazonaws.com"
    port = u.port
    default = port is None or (u.scheme.lower(), port) in (("http", 80), ("https", 443))
    netloc = host if default else f"{host}:{port}"
    return urllib.parse.urlunsplit((u.scheme.lower(), netloc, u.path.rstrip("/"), "", ""))


def within(inner: Location, outer: Location) -> bool:
    """True when `inner` is `outer` or lies below it."""
    if inner.scheme != outer.scheme or inner.endpoint != outer.endpoint or inner.bucket != outer.bucket:
        return False
    if inner.scheme == "fs":
        if _below(inner.path, outer.path):
            return True
        # outer's own identity among inner's existing ancestors: an alias realpath missed.
        return outer.own_id is not None and outer.own_id in inner.ids
    return _below(inner.path, outer.path)


def overlaps(a: Location, b: Location) -> bool:
    """True when a and b are the same place or one holds the other."""
    return within(a, b) or within(b, a)


def refuse_overlap(src: Location, dst: Location, src_flag: str = "--src", dst_flag: str = "--dst") -> None:
    """A usage error (exit 2) naming both places when they overlap."""
    if within(src, dst) and within(dst, src):
        how = "are the same place"
    elif within(src, dst):
        how = f"overlap: {src_flag} is inside {dst_flag}"
    elif within(dst, src):
        how = f"overlap: {dst_flag} is inside {src_flag}"
    else:
        return
    raise UsageError(
        f"{src_flag} {src.url} and {dst_flag} {dst.url} {how}, and writing one would delete or "
        "mix the other's files; pick places that do not contain each other"
    )


def _below(path: str, root: str) -> bool:
    """Whole-segment containment: 'a/bc' is not below 'a/b'; everything is below ''."""
    if root in ("", "/"):
        return True
    return path == root or path.startswith(root.rstrip("/") + "/")

