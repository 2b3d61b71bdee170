"""botocore's S3 client, as the store uses it: one attempt per request, the checksum and
payload signing settings the fast path copies, the files and profile it was given.

Imported only when a request needs botocore (see the package docstring): importing
botocore and making its client costs about 0.5 s of a run's start-up.
"""

from __future__ import annotations

import threading
from typing import Any

from ...errors import UsageError
from ..base import RemoteOptions

CREDS_HELP = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass an AWS credentials file "
              "(--creds-file-path)")


class LazyClient:
    """One botocore client per remote and its child() copies, made on first use."""

    def __init__(self, opts: RemoteOptions, url: str, endpoint: str | None) -> None:
        self._args = (opts, url, endpoint)
        self._lock = threading.Lock()  # the upload workers' first writes come together
        self.client: Any = None

    def get(self) -> Any:
        with self._lock:
            if self.client is None:
                self.client = botocore_client(*self._args)[0]
            return self.client



def botocore_client(opts: RemoteOptions, url: str, endpoint: str | None) -> tuple[Any, Any, str | None]:
    """botocore's S3 client, its credentials and the CA bundle it trusts, honouring the
    given files and profile without touching os.environ."""
    import botocore.exceptions as bce
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    if opts.creds_file_path:
        session.set_config_variable("credentials_file", opts.creds_file_path)
    if opts.config_file_path:
        session.set_config_variable("config_file", opts.config_file_path)
    if opts.config_profile:
        session.set_config_variable("profile", opts.config_profile)
    try:
        creds = session.get_credentials()
    except bce.ProfileNotFound as e:
        raise UsageError(f"{e}; fix the profile name or the AWS config file") from e
    if creds is None:
        raise UsageError(f"no AWS credentials found for {url}; {CREDS_HELP}")
    checksum = (opts.s3_checksum_algorithm or "").upper()
    config = Config(
        region_name=session.get_config_variable("region") or "us-east-1",
        signature_version="s3v4",
        max_pool_connections=max(opts.max_connections, 1),
        # One attempt per request: the retry layer decides every retry (remotes/retrying.py).
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={
            "addressing_style": "path" if opts.s3_force_path_style else "virtual",
            # The checksum header (CRC32 by default) already protects each body; signing a
            # SHA-256 of every payload too (botocore's default over plain http, not over
            # https) cost a backup to SeaweedFS 7 of its 16 CPU seconds. Without a
            # checksum the signature is the only integrity check left, so it stays.
            "payload_signing_enabled": checksum == "NONE",
        },
        connect_timeout=10,
        read_timeout=opts.read_timeout,
        tcp_keepalive=True,
        # Ranged reads carry no whole-object checksum; asking for one costs a header.
        response_checksum_validation="when_required",
        # "NONE" switches off the default CRC32 for stores that reject checksum headers.
        request_checksum_calculation="when_required" if checksum == "NONE" else "when_supported",
    )
    # verify=None, not True: True makes botocore ignore the CA bundle it was told of
    # (AWS_CA_BUNDLE, a profile's ca_bundle), and a private CA's endpoint fails TLS.
    client = session.create_client("s3", endpoint_url=endpoint, config=config,
                                   verify=False if opts.tls_insecure_skip_verify else None)
    return client, creds, session.get_config_variable("ca_bundle") or None
