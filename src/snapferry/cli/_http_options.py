"""The options of `snapferry manager` for its HTTP side: the server's protection (basic auth,
auth keys, TLS, mTLS, security headers, shutdown delay, connection bound; docs/http-api.md)
and the client's (`--api-url` and its credentials, for `backup ...`/`restore ...` asking a
running manager)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..httpsec import FLAGS, Security, read_secret, security_from
from ..manager.apiclient import ApiClient
from ._common import ENV


def server_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Protection of the API and /metrics (docs/http-api.md); VictoriaMetrics' names in brackets."""
    texts = {
        "username": "HTTP basic auth user for every path but /health.",
        "password": "Its password, or file:///path to read it from (never logged).",
        "metrics_auth_key": "/metrics asks ?authKey=KEY (instead of basic auth); or file:///path.",
        "cert_file": "PEM certificate for --tls; reloaded when the file changes.",
        "key_file": "PEM private key for --tls; reloaded when the file changes.",
        "min_version": "TLS10, TLS11, TLS12 (the default) or TLS13.",
        "cipher_suites": "Comma-separated Go names of TLS 1.2 suites, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256.",
        "mtls_ca_file": "PEM CA of client certificates for --mtls (default: the system's CAs).",
        "hsts": "Strict-Transport-Security header value, e.g. max-age=31536000.",
        "csp": "Content-Security-Policy header value.",
        "frame_options": "X-Frame-Options header value, e.g. DENY.",
    }
    for key, (native, dropin) in reversed(FLAGS.items()):
        env = ENV + native[2:].upper().replace("-", "_")
        if key in ("tls", "mtls"):
            f = click.option(native, is_flag=True, envvar=env,
                             help=("Serve HTTPS." if key == "tls" else "Ask clients for a certificate (needs --tls).")
                             + f" [{dropin}]")(f)
        else:
            f = click.option(native, envvar=env, help=f"{texts[key]} [{dropin}]")(f)
    f = click.option("--http-shutdown-delay", default="0", envvar=ENV + "HTTP_SHUTDOWN_DELAY",
                     help="On SIGTERM, /health answers 503 this long (seconds or e.g. 10s) before the stop "
                          "[-http.shutdownDelay].")(f)
    return click.option("--http-max-connections", type=click.IntRange(4), default=1000, show_default=True,
                        envvar=ENV + "HTTP_MAX_CONNECTIONS",
                        help="Open API connections at most (and at most half the descriptor limit); over it "
                             "the oldest idle one is closed.")(f)


def security_of(kw: dict[str, Any]) -> Security:
    return security_from({key: kw[native[2:].replace("-", "_")] for key, (native, _) in FLAGS.items()})


def client_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--api-key-file", envvar=ENV + "API_KEY_FILE", help="Its private key.")(f)
    f = click.option("--api-cert-file", envvar=ENV + "API_CERT_FILE",
                     help="A client certificate, for a manager run with --mtls.")(f)
    f = click.option("--api-ca-file", envvar=ENV + "API_CA_FILE",
                     help="PEM CA that signed the manager's certificate.")(f)
    f = click.option("--api-password", envvar=ENV + "API_PASSWORD",
                     help="Its basic-auth password, or file:///path (never logged).")(f)
    f = click.option("--api-username", envvar=ENV + "API_USERNAME", help="The manager's basic-auth user.")(f)
    return click.option("--api-url", envvar=ENV + "API_URL",
                        help="Ask the running manager at this URL (e.g. https://vm-0:8300) instead of reading "
                             "--dst and --storage-data-path [-apiURL].")(f)


def client_of(kw: dict[str, Any]) -> ApiClient | None:
    url = kw.pop("api_url", None)
    parts = {k: kw.pop(k, None) for k in ("api_username", "api_password", "api_ca_file", "api_cert_file",
                                          "api_key_file")}
    if not url:
        return None
    password = parts["api_password"]
    return ApiClient(url, parts["api_username"] or "", read_secret(password, "--api-password") if password else None,
                     parts["api_ca_file"] or "", parts["api_cert_file"] or "", parts["api_key_file"] or "")


