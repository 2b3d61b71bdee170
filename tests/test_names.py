"""The layout's names: vmbackup's own spellings, and every marker invisible to a listing of parts."""

from __future__ import annotations

from snapferry import names
from snapferry.parts import Part, parse_listing

MARKERS = [
    names.BACKUP_COMPLETE_FILE, names.BACKUP_METADATA_FILE, names.MANIFEST_FILE, names.LEASE_FILE,
    names.BACKUP_LOCKED_FILE, names.RESTORE_MARK_FILE, names.MANAGER_STATE_FILE, names.SNAPSHOT_RECORD_FILE,
]


def test_vmbackup_names_are_spelled_as_victoriametrics_does() -> None:
    # lib/backup/backupnames and app/vmbackupmanager: a different spelling breaks interoperability.
    assert names.BACKUP_COMPLETE_FILE == "backup_complete.ignore"
    assert names.BACKUP_METADATA_FILE == "backup_metadata.ignore"
    assert names.RESTORE_IN_PROGRESS_FILE == "restore-in-progress"
    assert names.FLOCK_FILE == "flock.lock"
    assert names.BACKUP_LOCKED_FILE == "backup_locked.ignore"
    assert names.RESTORE_MARK_FILE == "backup_restore.ignore"
    assert [names.LATEST, names.HOURLY, names.DAILY, names.WEEKLY, names.MONTHLY] == [
        "latest", "hourly", "daily", "weekly", "monthly",
    ]


def test_every_marker_is_left_out_of_a_listing_of_parts() -> None:
    part = "data/small/x/index.bin/0000000000000003_0000000000000000_0000000000000003"
    listed = parse_listing([(m, 7) for m in MARKERS] + [(part, 3)])
    assert listed == [Part("data/small/x/index.bin", 3, 0, 3, 3)]
    assert len(set(MARKERS)) == len(MARKERS)
