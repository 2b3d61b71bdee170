"""The crash suites' shared workspace: one generated snapshot (and an older one) per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.crash import harness as h


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[h.Workspace]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    w = h.Workspace(tmp_path_factory.mktemp(name))
    yield w
    shutil.rmtree(w.root, ignore_errors=True)
