"""One module per action: backup, restore, copy."""
