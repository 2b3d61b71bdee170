"""The --snapshot-tls-* options of `backup` and `manager` (vmbackup's -snapshot.tls* flags)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..snapshot import SnapshotTLS
from ._common import ENV

_OPTIONS = [
    ("--snapshot-tls-ca-file", "CA certificates (PEM) that sign VictoriaMetrics' certificate; they replace the "
                               "system's CAs."),
    ("--snapshot-tls-cert-file", "Client certificate (PEM) for a VictoriaMetrics that asks for one."),
    ("--snapshot-tls-key-file", "The client certificate's key (PEM)."),
    ("--snapshot-tls-server-name", "The name to expect in VictoriaMetrics' certificate (and send as SNI)."),
]


def snapshot_tls_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--snapshot-tls-insecure-skip-verify", is_flag=True,
                     envvar=ENV + "SNAPSHOT_TLS_INSECURE_SKIP_VERIFY",
                     help="Do not verify VictoriaMetrics' certificate (tests only).")(f)
    for name, text in reversed(_OPTIONS):
        f = click.option(name, envvar=ENV + name[2:].upper().replace("-", "_"), help=text)(f)
    return f


def tls_from(kw: dict[str, Any]) -> SnapshotTLS:
    """Takes the options out of `kw`."""
    return SnapshotTLS(
        ca_file=kw.pop("snapshot_tls_ca_file") or None,
        cert_file=kw.pop("snapshot_tls_cert_file") or None,
        key_file=kw.pop("snapshot_tls_key_file") or None,
        server_name=kw.pop("snapshot_tls_server_name") or None,
        insecure_skip_verify=bool(kw.pop("snapshot_tls_insecure_skip_verify")),
    )
