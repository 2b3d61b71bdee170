"""Tuning: the knobs of a restore, and the defaults the API and the CLI share.

Its own module, with nothing heavy to import, so api.py and the CLI can take their
defaults from it at start-up without loading the restore pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuning:
    """The restore's knobs; its defaults are the API's and the CLI's (one source of truth)."""

    concurrency: int = 8  # download workers; every action's default (api.DEFAULT_CONCURRENCY)
    writers: int = 2  # threads doing pwrite
    finishers: int = 2  # threads doing the per-file fsync and rename, so writes never wait on them
    chunk_size: int = 0  # bytes per ranged request; 0 = a part split evenly over the workers
    min_chunk_size: int = 32 * 1024 * 1024
    block_size: int = 4 * 1024 * 1024  # one buffer of the pool
    max_inflight_bytes: int = 64 * 1024 * 1024  # the pool's total
    zero_copy: bool = True
    # Files this big or bigger are written with O_DIRECT (0 = never); smaller ones are
    # not worth a second descriptor.
    direct_min: int = 64 * 1024
    # Small single-part files written as a batch, synced by one syncfs (restorer/session.py).
    batch_small_files: bool = True
    # Small files a download worker takes from the shared job list at once (one lock take
    # for several; 1 = each file to the next free worker, in order).
    small_jobs_per_take: int = 8
