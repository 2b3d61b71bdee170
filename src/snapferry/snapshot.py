"""VictoriaMetrics snapshots: create one over HTTP, find it on disk, delete it."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from datetime import UTC, datetime

from .errors import SnapferryError, UsageError

_NAME_RE = re.compile(r"^(\d{14})-[0-9A-Fa-f]+$")


def snapshot_time(name: str) -> datetime | None:
    """The creation time encoded in a snapshot name `YYYYMMDDhhmmss-HEX`, if it is one."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def validate_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"{name!r} is not a snapshot name; expect something like 20261125030000-17A3F0C2D1E50050")


def snapshot_dir(storage_data_path: str, name: str) -> str:
    validate_name(name)
    path = os.path.join(storage_data_path, "snapshots", name)
    if not os.path.isdir(path):
        raise UsageError(f"the snapshot {name!r} does not exist in {storage_data_path}/snapshots; check the name")
    return path


def _get_json(url: str, timeout: float = 60.0) -> dict[str, object]:
    # urllib.request (http.client, email, ssl) here: every backup imports this module, few call VictoriaMetrics
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise SnapferryError(f"{url} answered HTTP {e.code}; check the URL and that VictoriaMetrics runs") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SnapferryError(f"cannot reach {url}: {reason}; check that VictoriaMetrics runs there") from e
    try:
        data = json.loads(body)
    except ValueError as e:
        raise SnapferryError(f"{url} did not answer JSON; is it a VictoriaMetrics snapshot URL?") from e
    if not isinstance(data, dict):
        raise SnapferryError(f"{url} answered {data!r}, not a JSON object")
    return data


def create(create_url: str) -> str:
    parsed = urllib.parse.urlparse(create_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"{create_url!r} is not an http(s) URL; expect http://host:8428/snapshot/create")
    data = _get_json(create_url)
    if data.get("status") != "ok" or not isinstance(data.get("snapshot"), str):
        raise SnapferryError(f"{create_url} could not create a snapshot: {data!r}")
    name = str(data["snapshot"])
    validate_name(name)
    return name


def delete_url_for(create_url: str, name: str) -> str:
    parsed = urllib.parse.urlparse(create_url)
    path = parsed.path
    base = path[: -len("/create")] if path.endswith("/create") else path.rstrip("/")
    query = urllib.parse.urlencode({"snapshot": name})
    return urllib.parse.urlunparse(parsed._replace(path=base + "/delete", query=query))


def delete_url(create_url: str, delete_url: str | None, name: str) -> str:
    """The URL that deletes snapshot `name`: a given --snapshot-delete-url with
    `snapshot=<name>` added (vmbackup's -snapshot.deleteURL is such a base URL, e.g.
    http://host:8428/snapshot/delete, and vmbackup sends the name with it), or else
    the create URL's /delete sibling."""
    if not delete_url:
        return delete_url_for(create_url, name)
    parsed = urllib.parse.urlparse(delete_url)
    query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    if any(k == "snapshot" for k, _ in query):
        return delete_url
    query.append(("snapshot", name))
    return urllib.parse.urlunparse(parsed._replace(query=urllib.parse.urlencode(query)))


def delete(delete_url: str) -> None:
    data = _get_json(delete_url)
    if data.get("status") != "ok":
        raise SnapferryError(f"{delete_url} could not delete the snapshot: {data!r}")
