"""A real VictoriaMetrics database with months of samples, backed up by snapferry, and the
helpers the partial-restore tests share (tests/test_partial_restore_vm.py and its siblings)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vm import NEW, Samples, make_samples, merge_samples, run_snapferry, start_vm

OLD_MONTHS = ("2026_01", "2026_02", "2026_03", "2026_04")


def month_of(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y_%m")


def by_month(samples: Samples) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for key, points in samples.items():
        for ts, v in points:
            out.setdefault(month_of(ts), {}).setdefault(key, []).append((ts, v))
    return out


def mid_month_ms(name: str) -> int:
    return int(dt.datetime(int(name[:4]), int(name[5:]), 15, tzinfo=dt.UTC).timestamp() * 1000)


@dataclass
class Backup:
    url: str
    samples: Samples  # everything ingested
    months: tuple[str, ...]  # every partition the backup holds


def ingest_and_back_up(base: Path, version: str, *, big_months: tuple[str, ...] = ()) -> Backup:
    """A real victoria-metrics of `version` with samples in four old months (backfilled)
    and the current one, snapshotted and backed up by snapferry to fs://."""
    base.mkdir(parents=True, exist_ok=True)
    server = start_vm(base / "db", base, version=version)
    try:
        ingested: list[Samples] = []
        for i, m in enumerate(OLD_MONTHS):
            per = 20_000 if m in big_months else 200  # big: values.bin over 1 MiB, kept by a rerun
            series = 30 if m in big_months else 4
            ingested.append(make_samples(seed=i + 1, series=series, per_series=per, end_ms=mid_month_ms(m)))
        ingested.append(make_samples(seed=99, per_series=50))
        for s in ingested:
            server.ingest(s)
        server.force_flush()
        time.sleep(1.5)  # the ingested rows reach parts before the snapshot
        snap = server.snapshot_create()
        url = f"fs://{base / 'backup'}"
        run_snapferry("backup", f"--src={server.snapshot_dir(snap)}", f"--dst={url}")
    finally:
        server.stop()
    samples = merge_samples(*ingested)
    return Backup(url, samples, tuple(sorted(by_month(samples))))


def restore(backup: Backup, dst: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_snapferry("restore", f"--src={backup.url}", f"--dst={dst}", "--json", "--progress=off", *extra,
                         check=check)


def export_from(dst: Path, log_dir: Path) -> Samples:
    server = start_vm(dst, log_dir, version=NEW)
    try:
        return server.export()
    finally:
        server.stop()


def months_on_disk(dst: Path) -> set[str]:
    found: set[str] = set()
    for sub in ("small", "big", "indexdb"):
        d = dst / "data" / sub
        if d.is_dir():
            found.update(n for n in os.listdir(d) if len(n) == 7 and n[4] == "_" and any((d / n).iterdir()))
    return found

