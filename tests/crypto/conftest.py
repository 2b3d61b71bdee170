"""The backends the encryption tests run on: fs:// and SeaweedFS (S3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import SERVER_FIXTURES, RemoteFactory


@pytest.fixture(params=["fs", "s3-seaweedfs"])
def remotes(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteFactory:
    server = None
    if request.param != "fs":
        server = request.getfixturevalue(SERVER_FIXTURES[request.param])
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
    return RemoteFactory(request.param, server, tmp_path)
