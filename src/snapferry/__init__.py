"""snapferry: back up snapshot directories to object storage and restore them fast.

Reads and writes exactly the VictoriaMetrics vmbackup layout.

The public names are loaded on first use (PEP 562): `import snapferry.cli` (every
command line) runs this file, and importing the whole API here would make each
command pay for every action, backend and SDK at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import backup, copy, info, partitions_swap, restore, restore_dry_run, verify
    from .errors import SnapferryError
    from .findings import InfoResult, VerifyResult
    from .parts import Part
    from .remotes import RemoteOptions
    from .results import BackupResult, CopyResult, RestoreDryRun, RestoreResult
    from .retry import RetryPolicy
    from .snapshot import SnapshotTLS
    from .tuning import Tuning

# public name -> the module (relative to this package) that defines it
_EXPORTS = {
    "backup": "api",
    "copy": "api",
    "info": "api",
    "partitions_swap": "api",
    "restore": "api",
    "restore_dry_run": "api",
    "verify": "api",
    "SnapferryError": "errors",
    "Part": "parts",
    "RemoteOptions": "remotes",
    "BackupResult": "results",
    "CopyResult": "results",
    "InfoResult": "findings",
    "RestoreDryRun": "results",
    "RestoreResult": "results",
    "VerifyResult": "findings",
    "RetryPolicy": "retry",
    "SnapshotTLS": "snapshot",
    "Tuning": "tuning",
}

__all__ = [
    "BackupResult",
    "CopyResult",
    "InfoResult",
    "Part",
    "RemoteOptions",
    "RestoreDryRun",
    "RestoreResult",
    "RetryPolicy",
    "SnapferryError",
    "SnapshotTLS",
    "Tuning",
    "VerifyResult",
    "backup",
    "copy",
    "info",
    "partitions_swap",
    "restore",
    "restore_dry_run",
    "verify",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snapferry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
