"""Every file, marker and directory name of the layout, in one place.

Like VictoriaMetrics' lib/backup/backupnames: the names vmbackup, vmrestore and
vmbackupmanager agree on, and snapferry's own additions. A name ending in
IGNORED_SUFFIX is never a part: vmrestore skips it, so every marker ends so.
"""

from __future__ import annotations

# --- markers at a backup's root -------------------------------------------------------

IGNORED_SUFFIX = ".ignore"
# Written last, after every part: its presence means a whole backup (vmbackup's name).
BACKUP_COMPLETE_FILE = "backup_complete.ignore"
# JSON with created_at / completed_at (vmbackup's name and fields).
BACKUP_METADATA_FILE = "backup_metadata.ignore"
# snapferry's CRC32 manifest of every part (checksums.py).
MANIFEST_FILE = "snapferry_checksums.ignore"
# An encrypted backup's completion marker, in place of BACKUP_COMPLETE_FILE: vmrestore, which
# cannot decrypt, finds no marker and refuses the backup (docs/encryption.md).
ENCRYPTED_COMPLETE_FILE = "snapferry_encrypted_complete.ignore"
# An encrypted backup's identity and its data key, wrapped by the user's key (crypto/keys.py).
ENCRYPTION_RECORD_FILE = "snapferry_encryption.ignore"
# The writer's lease, so two writers never interleave in one backup (lease.py).
LEASE_FILE = "snapferry_lock.ignore"

# --- in a VictoriaMetrics data directory (a restore target) ----------------------------

# VictoriaMetrics' own lock file: held while it runs, so a restore refuses to start.
FLOCK_FILE = "flock.lock"
# Present from the first change a restore makes until the last directory sync (vmrestore's name).
RESTORE_IN_PROGRESS_FILE = "restore-in-progress"
# partitions-swap's record of the months it is moving into the directory (a rerun finishes them).
SWAP_RECORD_FILE = "snapferry-partitions-swap.json"
# A restore's in-progress names beside a file: the preallocated copy and its journal.
TMP_SUFFIX = ".tmp"
JOURNAL_SUFFIX = TMP_SUFFIX + ".journal"

# --- snapferry's temporary names ------------------------------------------------------

# A file being written under its final name plus this, renamed when whole (durable.py,
# fs://); listings skip these, so a killed upload never shows up as a part.
UPLOAD_TMP_SUFFIX = ".snapferry-tmp"

# --- vmbackupmanager's layout under --dst ---------------------------------------------

LATEST = "latest"
HOURLY = "hourly"
DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
# Inside a backup retention must leave alone (vmbackupmanager's name).
BACKUP_LOCKED_FILE = "backup_locked.ignore"
# The restore mark, in the storage data path: which backup to restore at the next start.
RESTORE_MARK_FILE = "backup_restore.ignore"
# At the --dst root: the last successful run's time, so a restart resumes the schedule.
MANAGER_STATE_FILE = "snapferry_manager.ignore"
# In the storage data path: the snapshot a run made, until it is deleted.
SNAPSHOT_RECORD_FILE = "snapferry_snapshot.ignore"
