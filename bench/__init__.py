"""Benchmarks for snapferry against vmbackup/vmrestore 1.79.5 and `cp -a`; see bench/README.md."""
