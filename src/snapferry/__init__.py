"""snapferry: back up snapshot directories to object storage and restore them fast.

Reads and writes exactly the VictoriaMetrics vmbackup layout.
"""

from .api import backup, copy, info, restore, restore_dry_run, verify
from .errors import SnapferryError
from .parts import Part
from .remotes import RemoteOptions
from .results import BackupResult, CopyResult, InfoResult, RestoreDryRun, RestoreResult, VerifyResult
from .retry import RetryPolicy

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
    "VerifyResult",
    "backup",
    "copy",
    "info",
    "restore",
    "restore_dry_run",
    "verify",
]
__version__ = "0.1.0"
