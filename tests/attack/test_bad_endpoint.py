"""Attacks of round 3: a mistyped --custom-s3-endpoint is the user's mistake, told in one
line with exit 2 (and --json), on the botocore-free path and on botocore's alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapferry.errors import EXIT_USAGE
from tests.test_cli import assert_one_line_error, run

BAD = ["http://127.0.0.1:99999", "http://[::1", "http://127.0.0.1:port", "ftp://127.0.0.1:9000", "http://"]


@pytest.mark.parametrize("static", [True, False], ids=["static-keys", "botocore"])
@pytest.mark.parametrize("endpoint", BAD)
def test_a_malformed_s3_endpoint_is_a_usage_error(endpoint: str, static: bool, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    creds, config = tmp_path / "credentials", tmp_path / "config"
    creds.write_text("[default]\naws_access_key_id = k\naws_secret_access_key = s\n")
    # A setting static_creds does not know sends the setup to botocore.
    config.write_text("[default]\nregion = us-east-1\n" + ("" if static else "signature_version = s3v4\n"))
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    p = run("restore", "--src", "s3://bkt/vm", "--dst", str(tmp_path / "out"), "--custom-s3-endpoint", endpoint,
            "--creds-file-path", str(creds), "--config-file-path", str(config), "--retries", "1", "--json")
    assert_one_line_error(p, EXIT_USAGE, "endpoint")
    assert json.loads(p.stdout)["kind"] == "UsageError"
    assert not (tmp_path / "out").exists()
