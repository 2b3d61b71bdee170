"""snapferry: back up snapshot directories to object storage and restore them fast.

Reads and writes exactly the VictoriaMetrics vmbackup layout.
"""

from .api import backup, copy, restore, restore_dry_run
from .errors import SnapferryError
from .parts import Part
from .remotes import RemoteOptions
from .results import BackupResult, CopyResult, RestoreDryRun, RestoreResult
from .retry import RetryPolicy

__all__ = [
    "BackupResult",
    "CopyResult",
    "Part",
    "RemoteOptions",
    "RestoreDryRun",
    "RestoreResult",
    "RetryPolicy",
    "SnapferryError",
    "backup",
    "copy",
    "restore",
    "restore_dry_run",
]
__version__ = "0.1.0"
