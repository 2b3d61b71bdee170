"""How snapferry's HTTP servers are protected: basic auth, /metrics auth key, TLS and mTLS.

One `Security` per server, built from flags by `security_from` (VictoriaMetrics' flag
names in the drop-in, native ones in `snapferry manager`; every message names both).
A mistake stops the program at start (`UsageError`, exit 2): a protective flag either
works or is refused, never accepted and ignored.

Secrets (`Secret`) may be given as `file:///path`, as VictoriaMetrics' password flags
allow; their value never reaches a repr, a log line, an error or /metrics.

TLS: the certificate and key are reloaded when either file changes on disk (as
cert-manager rotates them): the server's context asks `TlsReloader.pick` on every
handshake (an SNI callback, which OpenSSL calls with or without SNI), which stats
the files (and the mTLS CA file) and swaps in a context built from the new ones. A pair that does not load
(mid-rotation: the new certificate beside the old key) keeps the old one, said once.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

log = logging.getLogger("snapferry")

# (native option, drop-in flag) of each setting, for messages
FLAGS: dict[str, tuple[str, str]] = {
    "username": ("--http-auth-username", "-httpAuth.username"),
    "password": ("--http-auth-password", "-httpAuth.password"),
    "metrics_auth_key": ("--metrics-auth-key", "-metricsAuthKey"),
    "tls": ("--tls", "-tls"),
    "cert_file": ("--tls-cert-file", "-tlsCertFile"),
    "key_file": ("--tls-key-file", "-tlsKeyFile"),
    "min_version": ("--tls-min-version", "-tlsMinVersion"),
    "cipher_suites": ("--tls-cipher-suites", "-tlsCipherSuites"),
    "mtls": ("--mtls", "-mtls"),
    "mtls_ca_file": ("--mtls-ca-file", "-mtlsCAFile"),
    "hsts": ("--http-header-hsts", "-http.header.hsts"),
    "csp": ("--http-header-csp", "-http.header.csp"),
    "frame_options": ("--http-header-frame-options", "-http.header.frameOptions"),
}
_HEADERS = {"hsts": "Strict-Transport-Security", "csp": "Content-Security-Policy", "frame_options": "X-Frame-Options"}


def flag(key: str) -> str:
    native, dropin = FLAGS[key]
    return f"{native} ({dropin})"


MIN_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's names (crypto/tls, what -tlsCipherSuites takes) -> OpenSSL's. TLS 1.3 suites are
# not configurable in Go either: they are always on when TLS 1.3 is negotiated.
_GO_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or key: compared, never shown."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def bytes(self) -> bytes:
        return self.value.encode("utf-8")


def read_secret(value: str, name: str) -> Secret:
    """A secret flag's value, or the contents of `file:///path` (one trailing newline
    dropped, as a Kubernetes Secret file often ends with one)."""
    if not value.startswith("file://"):
        return Secret(value)
    path = value[len("file://"):]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
        raise UsageError(f"{name}: cannot read {path}: {reason}; point it at a readable file") from None
    text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise UsageError(f"{name}: {path} is empty; put the secret in it")
    return Secret(text)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: str
    key_file: str
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    ciphers: str = ""  # OpenSSL's names joined by ':'; empty: OpenSSL's defaults
    mtls: bool = False
    mtls_ca_file: str = ""  # empty with mtls: the system's CAs verify client certificates


@dataclass(frozen=True, slots=True)
class Security:
    username: str = ""
    password: Secret | None = None
    metrics_auth_key: Secret | None = None
    tls: TlsSettings | None = None
    headers: tuple[tuple[str, str], ...] = ()  # added to every response (HSTS, CSP, X-Frame-Options)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def security_from(values: dict[str, Any]) -> Security:
    """A Security from the settings named in FLAGS (absent or empty: not set); validated."""
    def s(key: str) -> str:
        v = values.get(key)
        return v if isinstance(v, str) else ""

    username, password = s("username"), s("password")
    if password and not username:
        raise UsageError(f"{flag('password')} is set without {flag('username')}; set both")
    if username and not password:
        raise UsageError(f"{flag('username')} is set without {flag('password')}; an empty password "
                         "protects nothing, set one")
    key = s("metrics_auth_key")
    tls = _tls_from(values, s)
    headers = []
    for k, name in _HEADERS.items():
        if s(k):
            if any(c in s(k) for c in "\r\n\0"):
                raise UsageError(f"{flag(k)} holds a line break; give the header's value on one line")
            headers.append((name, s(k)))
    return Security(username, read_secret(password, flag("password")) if password else None,
                    read_secret(key, flag("metrics_auth_key")) if key else None, tls, tuple(headers))


def _tls_from(values: dict[str, Any], s: Any) -> TlsSettings | None:
    on, mtls = bool(values.get("tls")), bool(values.get("mtls"))
    if not on:
        for key in ("cert_file", "key_file", "min_version", "cipher_suites", "mtls", "mtls_ca_file"):
            if values.get(key):
                raise UsageError(f"{flag(key)} is set without {flag('tls')}; the server would speak plain "
                                 f"HTTP: add {FLAGS['tls'][0]} or drop it")
        return None
    cert, key = s("cert_file"), s("key_file")
    if not cert or not key:
        missing = "cert_file" if not cert else "key_file"
        raise UsageError(f"{flag('tls')} needs {flag(missing)}; name the PEM file")
    version = s("min_version") or "TLS12"
    if version.upper() not in MIN_VERSIONS:
        raise UsageError(f"{flag('min_version')}={version!r} is not one of {', '.join(MIN_VERSIONS)}")
    ciphers = []
    for name in (n.strip() for n in s("cipher_suites").split(",")):
        if not name or name in _TLS13_SUITES:
            continue
        if name not in _GO_CIPHERS:
            raise UsageError(f"{flag('cipher_suites')}: unknown cipher suite {name!r}; use Go's names, e.g. "
                             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        ciphers.append(_GO_CIPHERS[name])
    ca = s("mtls_ca_file")
    if ca and not mtls:
        raise UsageError(f"{flag('mtls_ca_file')} is set without {flag('mtls')}; client certificates would "
                         f"not be checked: add {FLAGS['mtls'][0]} or drop it")
    settings = TlsSettings(cert, key, MIN_VERSIONS[version.upper()], ":".join(ciphers), mtls, ca)
    build_context(settings)  # every file is read now: a mistake stops the start
    return settings


def build_context(t: TlsSettings) -> ssl.SSLContext:
    """A server context for `t`; UsageError naming the flag when a file does not load."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = t.min_version
    if t.ciphers:
        try:
            ctx.set_ciphers(t.ciphers)
        except ssl.SSLError:
            raise UsageError(f"{flag('cipher_suites')}: this OpenSSL supports none of the suites named; "
                             "name others") from None
    for path, key in ((t.cert_file, "cert_file"), (t.key_file, "key_file")):
        if not os.access(path, os.R_OK):
            raise UsageError(f"{flag(key)}: cannot read {path}; check the path and its permissions")
    try:
        ctx.load_cert_chain(t.cert_file, t.key_file)
    except (ssl.SSLError, OSError) as e:
        raise UsageError(f"{flag('cert_file')}/{flag('key_file')}: {t.cert_file} and {t.key_file} are not a "
                         f"PEM certificate and its private key ({getattr(e, 'reason', None) or e})") from None
    if t.mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            if t.mtls_ca_file:
                ctx.load_verify_locations(cafile=t.mtls_ca_file)
            else:
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (ssl.SSLError, OSError) as e:
            raise UsageError(f"{flag('mtls_ca_file')}: {t.mtls_ca_file} does not load as PEM CA certificates "
                             f"({getattr(e, 'reason', None) or e})") from None
    return ctx


def _stamp(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)  # follows the symlinks a Kubernetes Secret volume swaps
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class TlsReloader:
    """The server's SSLContext; every handshake gets the context of the current files."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stamps = self._read_stamps()
        self._current = build_context(settings)
        self._failed: object = None  # the stamps of a pair that did not load, said once
        self.context = build_context(settings)
        self.context.sni_callback = self.pick

    def _read_stamps(self) -> object:
        files = [self.settings.cert_file, self.settings.key_file]
        if self.settings.mtls_ca_file:  # a rotated client CA bundle is taken up the same way
            files.append(self.settings.mtls_ca_file)
        return tuple(_stamp(f) for f in files)

    def pick(self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
             ctx: ssl.SSLContext) -> None:
        sslobj.context = self.current()

    def current(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamps = self._read_stamps()
            except OSError:  # mid-rotation a file can be missing for a moment
                return self._current
            if stamps != self._stamps and stamps != self._failed:
                try:
                    self._current = build_context(self.settings)
                except UsageError as e:
                    self._failed = stamps
                    log.warning("keeping the previous TLS certificate: %s", e)
                else:
                    self._stamps, self._failed = stamps, None
                    log.info("loaded the new TLS certificate from %s", self.settings.cert_file)
            return self._current
