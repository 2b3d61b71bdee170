"""SIGKILL a real snapferry mid-transfer, rerun it, and get byte-identical results.

CI runs a few seeded kill points per mode (SNAPFERRY_CRASH_KILLS, default 4);
`python -m tests.crash.soak --count 50` runs many more with the same harness.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from snapferry.restorer.journal import read_journal
from tests.crash import harness as h
from tests.vm import VM_VERSIONS, run_vmrestore

KILLS = int(os.environ.get("SNAPFERRY_CRASH_KILLS", "4"))


@pytest.mark.parametrize("mode", h.MODES)
def test_killed_runs_resume_to_identical_bytes(ws: h.Workspace, mode: str) -> None:
    results = [h.run_cycle(ws, mode, seed) for seed in range(KILLS)]
    for r in results:
        assert not r.problems, (r.mode, r.seed, r.problems)
        assert r.identical, (r.mode, r.seed)
    # The kills must land mid-run, or this tested nothing.
    assert sum(r.kills for r in results) >= KILLS // 2 + 1, [(r.seed, r.kills, r.finished_early) for r in results]
    if mode.startswith("restore"):
        assert sum(r.marker_seen for r in results) >= 1
    h.cleanup_cycles(ws)


def _journal_bytes(target: Path) -> int:
    """Bytes recorded in the fullest journal below target (0 when none).

    Counted in bytes, not records: the short last part of a file may be among the
    first records, and the test wants two whole parts kept.
    """
    best = 0
    for j in target.rglob("*" + h.JOURNAL_SUFFIX):
        tmp = Path(str(j)[: -len(h.JOURNAL_SUFFIX)] + h.TMP_SUFFIX)
        try:
            recorded = read_journal(str(j), tmp.stat().st_size)
        except (FileNotFoundError, ValueError):
            continue
        if recorded:
            best = max(best, sum(n for _off, n in recorded))
    return best


def _partial_inplace(ws: h.Workspace, target: Path) -> bool:
    """A multi-part file is written in place past its second part but not to its end."""
    for path, data in ws.files.items():
        if len(data) <= 3 * h.PART_SIZE:
            continue
        try:
            size = (target / path).stat().st_size
        except FileNotFoundError:
            continue
        if 2 * h.PART_SIZE <= size < len(data):
            return True
    return False


@pytest.mark.parametrize("preallocate", [True, False], ids=["prealloc", "inplace"])
def test_resume_keeps_the_parts_already_written(ws: h.Workspace, preallocate: bool) -> None:
    """Kill once a multi-part file has durable parts: the rerun keeps them and fetches only the rest."""
    target = ws.fresh("resume") / "data"
    argv = ws.restore_argv(target, preallocate, ws.rate)

    def trigger(pid: int) -> bool:
        return _journal_bytes(target) >= 2 * h.PART_SIZE if preallocate else _partial_inplace(ws, target)

    a = h.run_and_kill(argv, trigger, workdir=target.parent)
    assert a.killed, a.describe()
    assert (target / h.RESTORE_MARKER).exists(), "a half-restored directory must carry restore-in-progress"
    res = h.CycleResult("resume", 0)
    want_resumed, want_download = h.check_killed_restore(ws, target, preallocate, True, res)
    assert not res.problems, res.problems
    assert want_resumed >= 2 * h.PART_SIZE

    final = h.run_cli(ws.restore_argv(target, preallocate, 0, json_out=True))
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["resumed_bytes"] == want_resumed > 0
    assert summary["downloaded_bytes"] == want_download < ws.total
    h.check_restored(ws, target, res)
    assert not res.problems and res.identical, res.problems
    assert sorted(p.name for p in target.iterdir()) == ["data", "flock.lock", "indexdb"]


def test_switching_modes_after_a_kill(ws: h.Workspace) -> None:
    """A restore killed in one mode finishes in the other (stale .tmp or partial files are handled)."""
    for first, second in ((True, False), (False, True)):
        target = ws.fresh("switch") / "data"
        a = h.run_and_kill(ws.restore_argv(target, first, ws.rate), h.written_at_least(ws.total // 2),
                           workdir=target.parent)
        assert a.killed, a.describe()
        final = h.run_cli(ws.restore_argv(target, second, 0, json_out=True))
        assert final.returncode == 0, final.stderr
        res = h.CycleResult("switch", 0)
        h.check_restored(ws, target, res)
        assert not res.problems and res.identical, res.problems


def test_killed_backup_resumed_is_restorable_by_vmrestore(ws: h.Workspace) -> None:
    """After a kill and a rerun the backup is vmbackup's layout: the real vmrestore of 1.79.5
    and of 1.145.0 restores it."""
    base = ws.fresh("vmrestore")
    dst = base / "bk"
    a = h.run_and_kill(ws.backup_argv(ws.src, dst, ws.rate), h.written_at_least(ws.total // 3), workdir=base)
    assert a.killed, a.describe()
    assert not (dst / h.COMPLETE).exists()
    assert h.run_cli(ws.backup_argv(ws.src, dst, 0)).returncode == 0
    for version in VM_VERSIONS:
        out = base / f"vm-{version}"
        run_vmrestore(dst, out, version=version)
        assert h.tree_digest(out) == ws.digest, version


def test_backup_over_a_backup_where_a_file_changed_size(tmp_path: Path) -> None:
    old = {"data/p/values.bin": bytes(range(256)) * 4096 + b"old"}  # 1 MiB + 3: 5 parts of 256 KiB
    new = {"data/p/values.bin": bytes(range(255, -1, -1)) * 3072}  # 768 KiB: 3 parts of 256 KiB
    src_old = h.write_tree(tmp_path / "old" / h.OLD_SNAPSHOT_NAME, old)
    src_new = h.write_tree(tmp_path / "new" / h.SNAPSHOT_NAME, new)
    dst = tmp_path / "bk"
    assert h.run_cli(h.backup_argv(src_old, dst)).returncode == 0
    assert h.run_cli(h.backup_argv(src_new, dst)).returncode == 0
    objs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file() and p.suffix != ".ignore")
    assert objs == sorted(h.expected_parts(new))
    r = h.run_cli(h.restore_argv(dst, tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert h.tree_digest(tmp_path / "out") == h.digest_of(new)


def test_backup_files_named_like_restore_temporaries(tmp_path: Path) -> None:
    files = {
        "d/a": bytes(range(256)) * 1200,  # 300 KiB: 5 parts of 64 KiB, so a.tmp gets a journal
        "d/a.tmp": b"\x01" * 5000,
        "d/b.tmp.journal": b"\x02" * 7000,
    }
    src = h.write_tree(tmp_path / "snap" / h.SNAPSHOT_NAME, files)
    bk = tmp_path / "bk"
    # snapferry refuses to back them up (they could not be restored)...
    r = h.run_cli(h.snapferry_argv("backup", "--src", str(src), "--dst", f"fs://{bk}"))
    assert r.returncode == 2 and "d/a.tmp" in r.stderr, r.stderr
    assert not (bk / "backup_complete.ignore").exists()
    # ...but vmbackup stores them: such a backup, laid out by hand here.
    (src / "d" / "a.tmp").unlink()
    (src / "d" / "b.tmp.journal").unlink()
    assert h.run_cli(h.snapferry_argv("backup", "--src", str(src), "--dst", f"fs://{bk}",
                                      "--max-part-size", str(64 * h.KIB))).returncode == 0
    for name, data in files.items():
        if name.endswith((".tmp", ".tmp.journal")):
            (bk / name).mkdir(parents=True)
            (bk / name / f"{len(data):016X}_{0:016X}_{len(data):016X}").write_bytes(data)
    # Such names would collide with the restore's own in-progress files: refused up front,
    # with nothing written, rather than restored wrong.
    for preallocate in (True, False):
        out = tmp_path / f"out-{preallocate}"
        r = h.run_cli(h.restore_argv(bk, out, preallocate))
        assert r.returncode == 3, r.stderr
        assert "d/a.tmp" in r.stderr and "Traceback" not in r.stderr
        assert not (out / "d").exists()


def test_inplace_restore_over_a_shorter_stale_file(tmp_path: Path) -> None:
    new = {"d/a": bytes(range(256)) * 1200}  # 300 KiB
    src = h.write_tree(tmp_path / "snap" / h.SNAPSHOT_NAME, new)
    bk = tmp_path / "bk"
    assert h.run_cli(h.snapferry_argv("backup", "--src", str(src), "--dst", f"fs://{bk}",
                                      "--max-part-size", str(64 * h.KIB))).returncode == 0
    out = tmp_path / "out"
    h.write_tree(out, {"d/a": b"\xff" * 100_000})  # some other, shorter file (e.g. an older database)
    r = h.run_cli(h.restore_argv(bk, out, False))
    assert r.returncode == 0, r.stderr
    assert h.tree_digest(out) == h.digest_of(new)


def _batched_files(ws: h.Workspace) -> list[str]:
    return sorted(p for p, data in ws.files.items() if h.may_be_batched(len(data)) and data)


def test_kill_after_batched_files_were_renamed_before_their_syncfs(ws: h.Workspace) -> None:
    """Small files are renamed with no sync of their own and synced together before the marker
    goes. Killed in between, and with some of their bytes lost as a power loss may lose them
    (same length, zeros), the rerun trusts none of them and ends byte-identical."""
    target = ws.fresh("batch") / "data"
    small = _batched_files(ws)

    def trigger(pid: int) -> bool:
        renamed = sum((target / p).is_file() for p in small)
        whole = sum((target / p).is_file() for p in ws.files)
        return renamed >= 10 and whole < len(ws.files)  # small files renamed, the restore not done

    a = h.run_and_kill(ws.restore_argv(target, True, ws.rate), trigger, workdir=target.parent)
    assert a.killed, a.describe()
    assert (target / h.RESTORE_MARKER).exists()
    res = h.CycleResult("batch", 0)
    want_resumed, want_download = h.check_killed_restore(ws, target, True, True, res)
    assert not res.problems, res.problems
    renamed = [p for p in small if (target / p).is_file()]
    lost = renamed[:3]
    for p in lost:
        (target / p).write_bytes(bytes(len(ws.files[p])))

    final = h.run_cli(ws.restore_argv(target, True, 0, json_out=True))
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert (summary["resumed_bytes"], summary["downloaded_bytes"]) == (want_resumed, want_download)
    assert want_download >= sum(len(ws.files[p]) for p in renamed)  # every renamed small file again
    h.check_restored(ws, target, res)
    assert not res.problems and res.identical, res.problems


def test_marker_left_after_the_syncfs_refetches_the_small_files(ws: h.Workspace) -> None:
    """The last point: every file renamed and synced, killed before the marker's unlink (the
    state is made exactly: a whole restore, the marker put back). The rerun fetches the small
    files again, keeps the rest, and removes the marker."""
    target = ws.fresh("batch-end") / "data"
    first = h.run_cli(ws.restore_argv(target, True, 0))
    assert first.returncode == 0, first.stderr
    (target / h.RESTORE_MARKER).write_bytes(b"")
    victim = _batched_files(ws)[0]
    (target / victim).write_bytes(bytes(len(ws.files[victim])))

    final = h.run_cli(ws.restore_argv(target, True, 0, json_out=True))
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    small = [p for p, data in ws.files.items() if h.may_be_batched(len(data)) and not h.always_transfer(p)]
    always = sum(len(d) for p, d in ws.files.items() if h.always_transfer(p))
    assert summary["downloaded_bytes"] == sum(len(ws.files[p]) for p in small) + always
    res = h.CycleResult("batch-end", 0)
    h.check_restored(ws, target, res)
    assert not res.problems and res.identical, res.problems
    assert not (target / h.RESTORE_MARKER).exists()
