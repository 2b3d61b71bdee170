"""Drop-in command lines: vmbackup, vmrestore and vmbackupmanager flags run snapferry.

goflags.py parses Go's flag syntax, tables.py says what each original flag becomes,
translate.py builds the snapferry command line, metrics.py serves /metrics during the
run, run.py ties them together; cli/dropin_cmd.py makes the commands and scripts.
"""

from .run import run, usage
from .tables import Tool

__all__ = ["Tool", "run", "usage"]
