"""Run a snapferry restore with Tuning fields the CLI does not expose (writers, block size).

Used by the tuning grid to measure what a change of defaults in
snapferry.restorer.downloader.Tuning would do, without editing src/.
Prints the RestoreResult as JSON, like `snapferry restore --json`.

Run: python -m bench.sfrun --src URL --dst DIR [--concurrency 8] [--writers 2]
     [--chunk-size B] [--block-size B] [--max-inflight-bytes B] [--no-zero-copy] [--direct-min B]
     [--custom-s3-endpoint URL] [--defer-fsync]

--defer-fsync is an experiment, not a safe mode: it replaces the per-file fsync
(TargetFile.finish) and the per-directory fsyncs with one sync() after the
restore, to measure what batching durability (one syncfs per batch of files
before their renames) could gain. The restore still writes every byte.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from snapferry import api
from snapferry.remotes import RemoteOptions
from snapferry.restorer.downloader import Tuning


def main() -> None:
    d = Tuning()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--concurrency", type=int, default=api.DEFAULT_CONCURRENCY)
    ap.add_argument("--writers", type=int, default=d.writers)
    ap.add_argument("--chunk-size", type=int, default=d.chunk_size)
    ap.add_argument("--block-size", type=int, default=d.block_size)
    ap.add_argument("--max-inflight-bytes", type=int, default=d.max_inflight_bytes)
    ap.add_argument("--no-zero-copy", action="store_true")
    ap.add_argument("--direct-min", type=int, default=d.direct_min, help="O_DIRECT from this file size (0: never)")
    ap.add_argument("--custom-s3-endpoint")
    ap.add_argument("--defer-fsync", action="store_true", help="experiment: one sync() at the end (see above)")
    a = ap.parse_args()
    if a.defer_fsync:
        _defer_fsync()
    tuning = Tuning(
        concurrency=a.concurrency, writers=a.writers, chunk_size=a.chunk_size, block_size=a.block_size,
        max_inflight_bytes=a.max_inflight_bytes, zero_copy=not a.no_zero_copy, direct_min=a.direct_min,
    )
    opts = RemoteOptions(custom_s3_endpoint=a.custom_s3_endpoint, max_connections=max(16, a.concurrency * 2))
    r = api.restore(a.src, a.dst, concurrency=a.concurrency, remote_options=opts, progress="off", tuning=tuning)
    d = r.to_dict()
    if a.defer_fsync:
        t0 = time.perf_counter()
        os.sync()
        d["final_sync_seconds"] = time.perf_counter() - t0
        d["seconds"] = float(d["seconds"]) + d["final_sync_seconds"]
    print(json.dumps(d, indent=2))


def _defer_fsync() -> None:
    from snapferry import durable
    from snapferry.restorer import writer

    def finish(self: writer.TargetFile) -> None:
        os.close(self.fd)
        self.fd = -1
        if not self.inplace:
            os.rename(self.tmp, self.final)
        if self.journal is not None:
            self.journal.close()
            os.unlink(self.journal.path)
        self.finished = True

    def no_fsync_dir(path: str) -> None:
        return None

    writer.TargetFile.finish = finish  # type: ignore[method-assign]
    durable.fsync_dir = no_fsync_dir  # restore.py calls it through the module


if __name__ == "__main__":
    main()
