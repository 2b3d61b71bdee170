"""-backupTypeTagName and -deleteAllObjectVersions reach the snapferry options that do them
(they used to be accepted and ignored); vmrestore, which deletes nothing, still ignores the latter."""

from __future__ import annotations

from snapferry.cli.dropin_cmd import accepted
from snapferry.dropin.run import flag_set
from snapferry.dropin.tables import Tool
from snapferry.dropin.translate import Translation, translate


def tr(tool: Tool, *argv: str) -> Translation:
    parsed = flag_set(tool).parse(list(argv), {}, interspersed=tool is Tool.VMBACKUPMANAGER)
    return translate(tool, parsed, accepted)


def test_the_manager_gets_both_flags() -> None:
    t = tr(Tool.VMBACKUPMANAGER, "-dst=s3://b/n", "-storageDataPath=/d", "-snapshot.createURL=http://h/c",
           "-backupTypeTagName=VMBackupType", "-deleteAllObjectVersions")
    words = " ".join(t.argv) + " "
    assert "--backup-type-tag-name VMBackupType " in words and "--delete-all-object-versions " in words
    assert t.ignored == []
    # `backup lock` writes backup_locked.ignore into the backup: tagged as the service would
    lock = " ".join(tr(Tool.VMBACKUPMANAGER, "backup", "lock", "daily/2026-11-27", "-dst=s3://b/n",
                       "-backupTypeTagName=VMBackupType").argv)
    assert "--backup-type-tag-name VMBackupType" in lock
    # `restore get` touches no remote object: both are left out of it
    get = tr(Tool.VMBACKUPMANAGER, "restore", "get", "-storageDataPath=/d", "-backupTypeTagName=VMBackupType",
             "-deleteAllObjectVersions").argv
    assert "--backup-type-tag-name" not in get and "--delete-all-object-versions" not in get


def test_vmbackup_passes_it_to_backup_and_copy_and_vmrestore_ignores_it() -> None:
    backup = tr(Tool.VMBACKUP, "-dst=s3://b/p", "-snapshotName=s", "-storageDataPath=/d", "-deleteAllObjectVersions")
    assert backup.argv[2] == "backup" and "--delete-all-object-versions" in backup.argv
    copy = tr(Tool.VMBACKUP, "-dst=s3://b/p", "-origin=s3://b/o", "-deleteAllObjectVersions")
    assert copy.argv[2] == "copy" and "--delete-all-object-versions" in copy.argv
    restore = tr(Tool.VMRESTORE, "-src=s3://b/p", "-storageDataPath=/d", "-deleteAllObjectVersions")
    assert "--delete-all-object-versions" not in restore.argv
    assert restore.ignored == [("deleteAllObjectVersions", "a restore deletes no object of the backup")]
