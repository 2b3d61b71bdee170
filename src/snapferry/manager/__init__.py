"""`snapferry manager`: scheduled backups in vmbackupmanager's layout, retention, restore marks."""
