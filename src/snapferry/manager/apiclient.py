"""A client of a running manager's API, for `snapferry manager backup ...|restore ...` with
`--api-url` (vmbackupmanager's `-apiURL`): no data volume and no bucket credentials needed,
only the API's address, its basic-auth credentials and, for https, the CA that signed it.

The API's answers become snapferry's errors with its exit codes: 400 usage (2), 404 no
such backup (2), 409 locked (4), 401 a credentials mistake (2); the message is the
server's own, which names what to do.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import LockedError, SnapferryError, UsageError
from ..httpsec import Secret

_TIMEOUT = 120.0  # a list of a big remote takes a while; a dead manager is an error, not a hang


@dataclass(frozen=True, slots=True)
class ApiClient:
    url: str
    username: str = ""
    password: Secret | None = None
    ca_file: str = ""
    cert_file: str = ""  # a client certificate, for a manager run with --mtls
    key_file: str = ""

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--api-url {self.url!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8300")
        if self.password is not None and not self.username:
            raise UsageError("--api-password is set without --api-username; set both")

    def _context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file or None)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file or None)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"--api-ca-file/--api-cert-file/--api-key-file do not load: "
                             f"{getattr(e, 'strerror', None) or e}; name PEM files") from None
        return ctx

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.password is not None:
            token = base64.b64encode(self.username.encode() + b":" + self.password.bytes()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=_TIMEOUT, context=self._context()) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise UsageError(f"the manager at {self.url} presents a certificate this client does not trust "
                                 f"({reason.verify_message}); pass --api-ca-file") from None
            raise SnapferryError(f"cannot reach the manager at {self.url}: {reason}; check --api-url and "
                                 "that the manager runs") from None
        except (OSError, ssl.SSLError) as e:
            raise SnapferryError(f"the connection to the manager at {self.url} failed: {e}") from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise SnapferryError(f"{self.url}{path} did not answer JSON; is --api-url a snapferry manager?") from None

    def _error(self, e: urllib.error.HTTPError) -> SnapferryError:
        try:
            message = str(json.loads(e.read()).get("error", ""))
        except (ValueError, AttributeError, OSError):
            message = ""
        message = message or f"HTTP {e.code}"
        if e.code == 401:
            return UsageError(f"the manager at {self.url} refused the credentials ({message}); set "
                              "--api-username and --api-password (or SNAPFERRY_API_USERNAME/_PASSWORD)")
        if e.code == 409:
            return LockedError(message)
        if 400 <= e.code < 500:
            return UsageError(message)
        return SnapferryError(f"the manager at {self.url} failed: {message}")
