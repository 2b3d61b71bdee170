"""One source of truth for each default: the API's and the CLI's are Tuning's."""

from __future__ import annotations

import inspect

import click

import snapferry
from snapferry import api
from snapferry.cli import backup_cmd, copy_cmd, restore_cmd, verify_cmd
from snapferry.manager.catalog import Catalog
from snapferry.manager.service import ManagerConfig
from snapferry.restorer.downloader import Tuning
from snapferry.settings import RunSettings

D = Tuning()


def _default(cmd: click.Command, name: str) -> object:
    return next(p.default for p in cmd.params if p.name == name)


def test_tuning_is_exported_from_the_package_and_the_api() -> None:
    assert snapferry.Tuning is Tuning
    assert api.Tuning is Tuning
    assert "Tuning" in snapferry.__all__


def test_the_apis_defaults_are_tunings() -> None:
    assert D.concurrency == api.DEFAULT_CONCURRENCY
    for fn in (api.backup, api.restore, api.copy, api.verify):
        assert inspect.signature(fn).parameters["concurrency"].default == D.concurrency, fn.__name__
    assert ManagerConfig.__dataclass_fields__["concurrency"].default == D.concurrency
    # and the actions' own (their RunSettings'), for callers that skip the API (the manager, tests)
    assert RunSettings().concurrency == D.concurrency
    assert inspect.signature(Catalog).parameters["concurrency"].default == D.concurrency


def test_the_clis_defaults_are_tunings() -> None:
    for cmd in (backup_cmd.backup, restore_cmd.restore, copy_cmd.copy, verify_cmd.verify):
        assert _default(cmd, "concurrency") == D.concurrency, cmd.name
    r = restore_cmd.restore
    assert _default(r, "max_inflight_bytes") == D.max_inflight_bytes
    assert _default(r, "chunk_size") == D.chunk_size
    assert _default(r, "direct_io") is (D.direct_min > 0)


def test_the_package_version_is_the_installed_distributions() -> None:
    # Backups record "snapferry <version>" from snapferry.__version__ (importlib.metadata costs
    # a nothing-changed run its start-up): the two must not drift apart.
    import importlib.metadata

    assert snapferry.__version__ == importlib.metadata.version("snapferry")
    assert RunSettings().concurrency == snapferry.Tuning().concurrency
