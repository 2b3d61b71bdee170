"""Client-side encryption of a backup (docs/encryption.md).

`keys.py`: the user's key file, the per-backup data key and its wrapped record;
`chunks.py`: the format of one encrypted part (header, chunks, nonces, AAD) and the
streams that encrypt an upload and decrypt a ranged read; `remote.py`: the
`EncryptedRemote` wrapper that gives the actions a plaintext view of an encrypted
backup, so the pipelines (backup, restore, copy, verify, info) stay as they are.
"""
