"""VictoriaMetrics snapshots: create one over HTTP(S), list them, find one on disk, delete it.

The calls honour TLS settings as vmbackup's `-snapshot.tls*` flags do (a CA file that
replaces the system's CAs, a client certificate and key, a server name, skip-verify),
and the environment's HTTP(S)_PROXY/NO_PROXY as urllib reads them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import SnapferryError, UsageError

if TYPE_CHECKING:
    # ssl (and socket) load only when a snapshot URL is called: every backup imports this module
    import ssl

_NAME_RE = re.compile(r"^(\d{14})-[0-9A-Fa-f]+$")
CREATE_TIMEOUT = 60.0  # seconds VictoriaMetrics gets to answer /snapshot/create


_SECRET_KEYS = frozenset({"authkey", "auth_key", "password", "token"})


def shown(url: str) -> str:
    """`url` as messages show it: the value of an authKey (VictoriaMetrics' -snapshotAuthKey)
    or a password in the query, and a password in the user part, replaced by `***`."""
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    secret = [k for k, _ in query if k.lower() in _SECRET_KEYS]
    netloc = parsed.netloc
    if parsed.password is not None:
        netloc = netloc.replace(f":{parsed.password}@", ":***@", 1)
    if not secret and netloc == parsed.netloc:
        return url
    masked = "&".join(f"{urllib.parse.quote(k)}=***" if k.lower() in _SECRET_KEYS
                      else urllib.parse.urlencode([(k, v)]) for k, v in query)
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc, query=masked))


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


class NoEffect(SnapferryError):
    """The call certainly did nothing: refused, a TLS handshake that failed, or an error answer
    (a timeout or a reset is not one: VictoriaMetrics may still be making the snapshot)."""


# (native option, drop-in flag) of each TLS setting, for messages.
CA_FLAG = "--snapshot-tls-ca-file (-snapshot.tlsCAFile)"
CERT_FLAG = "--snapshot-tls-cert-file (-snapshot.tlsCertFile)"
KEY_FLAG = "--snapshot-tls-key-file (-snapshot.tlsKeyFile)"
NAME_FLAG = "--snapshot-tls-server-name (-snapshot.tlsServerName)"
SKIP_FLAG = "--snapshot-tls-insecure-skip-verify (-snapshot.tlsInsecureSkipVerify)"


def _named_context(server_name: str) -> ssl.SSLContext:
    """A client context that checks (and sends as SNI) `server_name` instead of the URL's host,
    as Go's tls.Config.ServerName does; the URL's host when `server_name` is empty."""
    import ssl

    class NamedContext(ssl.SSLContext):
        def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,  # type: ignore[no-untyped-def]
                        suppress_ragged_eofs=True, server_hostname=None, session=None):
            return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                       server_name or server_hostname, session)

    return NamedContext(ssl.PROTOCOL_TLS_CLIENT)


@dataclass(frozen=True)
class SnapshotTLS:
    """How to reach an https:// snapshot API; all empty: the system's CAs, no client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False

    @property
    def protective(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file or self.server_name)

    def context(self, url: str) -> ssl.SSLContext | None:
        """The SSL context for `url` (None for http:// without settings); a setting that
        cannot work is a UsageError naming it, raised before any call is made."""
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme != "https":
            if self.protective:
                raise UsageError(
                    f"TLS settings for the snapshot API are given but {shown(url)} is not https://; "
                    f"use the https:// URL VictoriaMetrics serves or drop the {self._set_names()} setting"
                )
            return None
        if bool(self.cert_file) != bool(self.key_file):
            missing = KEY_FLAG if self.cert_file else CERT_FLAG
            raise UsageError(f"a client certificate needs both its certificate and its key; set {missing} too")
        import ssl

        ctx = _named_context(self.server_name or "")
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_file:
            try:  # Go's RootCAs: this file replaces the system's CAs
                ctx.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise UsageError(f"cannot load the CA file {self.ca_file} given by {CA_FLAG}: {_why(e)}") from e
        else:
            ctx.load_default_certs()
        if self.cert_file and self.key_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as e:
                raise UsageError(
                    f"cannot load the client certificate {self.cert_file} with the key {self.key_file} given by "
                    f"{CERT_FLAG} and {KEY_FLAG}: {_why(e)}"
                ) from e
        return ctx

    def _set_names(self) -> str:
        pairs = ((self.ca_file, CA_FLAG), (self.cert_file, CERT_FLAG), (self.key_file, KEY_FLAG),
                 (self.server_name, NAME_FLAG))
        return ", ".join(flag for value, flag in pairs if value)


def _why(e: Exception) -> str:
    return (e.strerror if isinstance(e, OSError) and e.strerror else None) or str(e) or type(e).__name__


def _get_json(url: str, ctx: ssl.SSLContext | None = None, timeout: float = CREATE_TIMEOUT) -> dict[str, object]:
    # urllib.request (http.client, email, ssl) here: every backup imports this module, few call VictoriaMetrics
    import ssl
    import urllib.error
    import urllib.request

    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=ctx)] if ctx else []
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise NoEffect(f"{shown(url)} answered HTTP {e.code}; check the URL and that VictoriaMetrics runs") from e
    except (urllib.error.URLError, OSError) as e:
        # A TLS 1.3 alert comes on the first read, as a bare SSLError (whose .reason is a string).
        reason = e if isinstance(e, ssl.SSLError) else getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise NoEffect(
                f"{shown(url)} presented a certificate this host does not trust ({reason.verify_message}); set "
                f"{CA_FLAG} to the CA that signed it, or {NAME_FLAG} when it names another host"
            ) from e
        if isinstance(reason, ssl.SSLError):
            raise NoEffect(
                f"the TLS handshake with {shown(url)} failed ({reason.reason or reason}); if VictoriaMetrics asks "
                f"for a client certificate, set {CERT_FLAG} and {KEY_FLAG}"
            ) from e
        cls = NoEffect if isinstance(reason, ConnectionRefusedError) else SnapferryError
        raise cls(f"cannot reach {shown(url)}: {reason}; check that VictoriaMetrics runs there") from e
    try:
        data = json.loads(body)
    except ValueError as e:
        raise SnapferryError(f"{shown(url)} did not answer JSON; is it a VictoriaMetrics snapshot URL?") from e
    if not isinstance(data, dict):
        raise SnapferryError(f"{shown(url)} answered {data!r}, not a JSON object")
    return data


def check_url(create_url: str) -> None:
    parsed = urllib.parse.urlparse(create_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"{shown(create_url)!r} is not an http(s) URL; expect http://host:8428/snapshot/create")


def create(create_url: str, tls: SnapshotTLS | None = None) -> str:
    check_url(create_url)
    data = _get_json(create_url, (tls or SnapshotTLS()).context(create_url))
    if data.get("status") != "ok" or not isinstance(data.get("snapshot"), str):
        raise NoEffect(f"{shown(create_url)} could not create a snapshot: {data!r}")
    name = str(data["snapshot"])
    validate_name(name)
    return name


def _sibling(create_url: str, leaf: str, extra: list[tuple[str, str]]) -> str:
    """The create URL's /<leaf> sibling, its query (an authKey, say) kept and `extra` added."""
    parsed = urllib.parse.urlparse(create_url)
    path = parsed.path
    base = path[: -len("/create")] if path.endswith("/create") else path.rstrip("/")
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True) if k != "snapshot"]
    return urllib.parse.urlunparse(parsed._replace(path=f"{base}/{leaf}", query=urllib.parse.urlencode(query + extra)))


def delete_url_for(create_url: str, name: str) -> str:
    return _sibling(create_url, "delete", [("snapshot", name)])


def list_url_for(create_url: str) -> str:
    return _sibling(create_url, "list", [])


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


def delete(delete_url: str, tls: SnapshotTLS | None = None) -> None:
    data = _get_json(delete_url, (tls or SnapshotTLS()).context(delete_url))
    if data.get("status") != "ok":
        raise SnapferryError(f"{shown(delete_url)} could not delete the snapshot: {data!r}")


def list_names(create_url: str, tls: SnapshotTLS | None = None) -> list[str]:
    """The snapshots VictoriaMetrics has (its /snapshot/list, the create URL's sibling)."""
    url = list_url_for(create_url)
    data = _get_json(url, (tls or SnapshotTLS()).context(url))
    names = data.get("snapshots") or []
    if data.get("status") != "ok" or not isinstance(names, list):
        raise SnapferryError(f"{shown(url)} could not list the snapshots: {data!r}")
    return [str(n) for n in names]
