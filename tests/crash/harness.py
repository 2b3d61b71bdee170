"""Kill harness: SIGKILL a real `snapferry` process mid-transfer, rerun it, compare bytes.

Every cycle runs the real CLI as a subprocess against real files (fs:// remote):

* restore (preallocated `.tmp` + journal, or in place with
  --skip-file-preallocation): a throttled restore is killed at a seeded random
  moment, sometimes killed again while it resumes, then rerun to completion;
* backup: a throttled backup is killed the same way, rerun, and the backup is
  checked part by part and restored.

The kill moment is chosen by bytes written: the harness polls the child's
`/proc/<pid>/io` `wchar` (it counts write(2), pwrite(2) and copy_file_range(2)
bytes) until it passes a seeded random threshold in [0, bytes to move), then
waits a further seeded random few milliseconds and sends SIGKILL. The run is
throttled with --max-bytes-per-second, so the kill lands mid-transfer.

Between the runs the harness checks what a crash may leave behind:

* restore: `restore-in-progress` exists whenever the target holds anything;
  no file at its final name is torn (preallocated mode), or every file is a
  prefix of its source (in place, fresh target); every part the journal of a
  `.tmp` records holds the right bytes (the journal's promise);
* backup: `backup_complete.ignore` is absent and a restore refuses the backup;
  no part object is torn (each holds exactly the bytes of its range).

After the final run it checks that the tree is byte-identical, that nothing of
ours is left (`*.tmp`, `*.tmp.journal`, `restore-in-progress`, `.snapferry-tmp`),
and that the rerun moved exactly what was missing: its --json `resumed_bytes`
and `downloaded_bytes` (restore) or `uploaded_bytes` and `parts_deleted`
(backup) equal what the harness computes from the state the kill left.

Problems are collected, not asserted, so tests/crash/soak.py can count them; the
tests assert that a cycle reports none.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from snapferry.restorer.journal import read_journal
from tests import datagen

KIB = 1024
MIB = 1024 * KIB
PART_SIZE = 256 * KIB
SNAPSHOT_NAME = "20261124120000-17A3F0C2D1E50050"
OLD_SNAPSHOT_NAME = "20261123120000-17A3F0C2D1E40000"

FLOCK = "flock.lock"
RESTORE_MARKER = "restore-in-progress"
COMPLETE = "backup_complete.ignore"
METADATA = "backup_metadata.ignore"
TMP_SUFFIX = ".tmp"
JOURNAL_SUFFIX = ".tmp.journal"
UPLOAD_TMP_SUFFIX = ".snapferry-tmp"
LEASE = "snapferry_lock.ignore"  # the backup lease; gone after a backup ends

EXIT_BAD_BACKUP = 3
MODES = ("restore-prealloc", "restore-inplace", "backup")
DEFAULT_RATE = 4 * MIB  # --max-bytes-per-second of the runs that get killed
RUN_BOUND = 120.0  # seconds; only to never hang, not a performance assertion


# -- data -------------------------------------------------------------------------


def _rand(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def snapshot_files(seed: int) -> dict[str, bytes]:
    """A VictoriaMetrics-like snapshot: multi-part files, many small ones, empty ones."""
    rng = random.Random(seed)
    small = "data/small/2026_11/17A3F0C2D1E50050"
    big = "data/big/2026_11/17A3F0C2D1E50060"
    files: dict[str, bytes] = {
        f"{small}/values.bin": _rand(rng, 3 * MIB + 17),  # 13 parts, short last part
        f"{small}/timestamps.bin": _rand(rng, MIB + 100),  # 5 parts
        f"{small}/index.bin": _rand(rng, 70_000),
        f"{small}/metaindex.bin": b"",
        f"{big}/values.bin": _rand(rng, 3 * MIB // 2 - 1),  # 6 parts
        f"{big}/timestamps.bin": _rand(rng, PART_SIZE),  # exactly one part
        "indexdb/17A3F0C2D1E50051/items.bin": _rand(rng, 2 * MIB),  # 8 parts, aligned
        "indexdb/17A3F0C2D1E50051/lens.bin": _rand(rng, PART_SIZE + 1),  # 2 parts, 1-byte tail
        "indexdb/17A3F0C2D1E50051/metaindex.bin": _rand(rng, 1234),
        "data/small/2026_11/parts.json": b'{"parts":["17A3F0C2D1E50050"]}',
        "data/big/2026_11/parts.json": b'{"parts":["17A3F0C2D1E50060"]}',
        "data/big/appliedRetention.txt": b"1700000000",
        "indexdb/parts.json": b'{"parts":["17A3F0C2D1E50051"]}',
    }
    for i in range(48):
        d = f"indexdb/17A3F0C2D1E5{0x1000 + i // 6:04X}"
        size = rng.choice((0, 1, 17, 512, 4095, 4096, 4097, rng.randrange(1, 12_000)))
        files[f"{d}/f{i:02d}.bin"] = _rand(rng, size)
    return files


def old_snapshot_files(seed: int, resized: bool = True) -> dict[str, bytes]:
    """An older snapshot of the same database: shared files, files gone since, a changed size.

    A file kept at the same path keeps its bytes (VictoriaMetrics never rewrites
    a part file), except the always-transferred parts.json and appliedRetention.txt,
    and, with `resized`, a few files that were larger (other bytes) in the old tree.
    Backups get the old tree without resized files: a backup over a backup whose
    file changed size at the same path is a known bug (see test_kill.py).
    """
    new = snapshot_files(seed)
    rng = random.Random(seed + 1_000_003)
    old: dict[str, bytes] = {}
    for path, data in new.items():
        r = rng.random()
        if r < 0.6:
            old[path] = data
        elif r < 0.7 and len(data) > PART_SIZE:
            bigger = _rand(rng, len(data) + PART_SIZE + 3)  # larger, other bytes
            if resized:
                old[path] = bigger
    old["data/small/2026_11/parts.json"] = b'{"parts":["17A3F0C2D1E40000"]}'
    old["data/big/appliedRetention.txt"] = b"1690000000"
    old["data/small/2026_10/17A3F0C2D1E40000/values.bin"] = _rand(rng, MIB + 5)
    old["data/small/2026_10/17A3F0C2D1E40000/index.bin"] = _rand(rng, 3000)
    old["indexdb/17A3F0C2D1E40001/items.bin"] = _rand(rng, PART_SIZE * 2)
    return old


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        _write(root / rel, data)
    return root


# The crash tests' digest: restore-in-progress counts (a leftover marker is a finding),
# symlinks are recorded as such, only the lock file is skipped.
tree_digest = functools.partial(datagen.tree_digest, ignore=(FLOCK,), follow_links=False)


def digest_of(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def part_ranges(size: int, part_size: int = PART_SIZE) -> list[tuple[int, int]]:
    """(offset, size) of the parts of a file of `size` bytes; an empty file is one empty part."""
    if size == 0:
        return [(0, 0)]
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)]


def part_name(path: str, file_size: int, offset: int, size: int) -> str:
    return f"{path}/{file_size:016X}_{offset:016X}_{size:016X}"


def expected_parts(files: dict[str, bytes], part_size: int = PART_SIZE) -> dict[str, bytes]:
    """Object name -> bytes of the backup of `files` in vmbackup's layout."""
    out: dict[str, bytes] = {}
    for path, data in files.items():
        for off, size in part_ranges(len(data), part_size):
            out[part_name(path, len(data), off, size)] = data[off : off + size]
    return out


# Single-part files up to this size are restored as a batch (restorer/session.py):
# after a kill, a rerun that finds restore-in-progress fetches every such file again.
BATCH_FILE_MAX = MIB


def may_be_batched(size: int, part_size: int = PART_SIZE) -> bool:
    return len(part_ranges(size, part_size)) == 1 and size <= BATCH_FILE_MAX


def always_transfer(path: str) -> bool:
    return path.endswith("/parts.json") or path.endswith("/appliedRetention.txt")


# -- processes -------------------------------------------------------------------


def snapferry_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "snapferry", *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFERRY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(argv: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = RUN_BOUND) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env or child_env())


def wchar(pid: int) -> int:
    """Bytes the process passed to write-like syscalls so far (-1 once it is gone)."""
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return -1
    return -1


def flock_holders(path: Path) -> set[int]:
    """PIDs holding a flock on path, from /proc/locks (without touching the lock)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return set()
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders: set[int] = set()
    with open("/proc/locks") as f:
        for line in f:
            cols = line.split()
            # "1: FLOCK  ADVISORY  WRITE 7151 fe:00:2180099 0 EOF" (blocked waiters have "->")
            if "->" in cols or len(cols) < 6 or cols[1] != "FLOCK":
                continue
            if cols[5] == dev:
                holders.add(int(cols[4]))
    return holders


def wait_until(pred: Callable[[], bool], bound: float = 60.0, step: float = 0.005) -> bool:
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


@dataclass
class Attempt:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    killed: bool  # the signal landed while the process was running

    def describe(self) -> str:
        return f"rc={self.returncode} argv={' '.join(self.argv)}\nstderr:\n{self.stderr[-3000:]}"


def written_at_least(threshold: int) -> Callable[[int], bool]:
    """A trigger: the process (by pid) has written `threshold` bytes."""
    return lambda pid: wchar(pid) >= threshold


def run_and_kill(
    argv: Sequence[str],
    trigger: Callable[[int], bool] | None,
    extra_delay: float = 0.0,
    sig: int = signal.SIGKILL,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> Attempt:
    """Run argv; once trigger(pid) holds, wait extra_delay seconds and send sig.

    trigger None means: never signal (run to the end). A run that ends before
    the signal is simply reported with killed=False.
    """
    logdir = workdir or Path(os.environ.get("TMPDIR", "/tmp"))
    logdir.mkdir(parents=True, exist_ok=True)
    out_path = logdir / f"attempt-{os.getpid()}-{time.monotonic_ns()}.out"
    err_path = out_path.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env or child_env())
        try:
            killed = False
            if trigger is not None:
                if sig == signal.SIGKILL and not extra_delay:
                    _wait_frozen(proc, trigger)
                else:
                    wait_until(lambda: proc.poll() is not None or trigger(proc.pid), RUN_BOUND, 0.002)
                end = time.monotonic() + extra_delay
                while proc.poll() is None and time.monotonic() < end:
                    time.sleep(0.002)
                if proc.poll() is None:
                    proc.send_signal(sig)
                    killed = True
            rc = proc.wait(timeout=RUN_BOUND)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    # A signal that arrives as the process exits on its own does not count as a kill.
    landed = killed and rc in (-sig, 128 + sig)
    return Attempt(list(argv), rc, stdout, stderr, landed)


def _wait_frozen(proc: subprocess.Popen[bytes], trigger: Callable[[int], bool]) -> None:
    """Wait until trigger holds, then leave the process stopped (SIGSTOP) with it still holding.

    On a loaded machine this process can be descheduled between seeing the trigger
    and sending SIGKILL, and the run moves on meanwhile (a file it was writing gets
    finished and renamed): the kill then lands on a state the trigger never saw. The
    trigger is checked again on the stopped process; SIGKILL ends a stopped process.
    """
    deadline = time.monotonic() + RUN_BOUND
    while time.monotonic() < deadline:
        wait_until(lambda: proc.poll() is not None or trigger(proc.pid), RUN_BOUND, 0.002)
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: proc.poll() is not None or _stopped(proc.pid), RUN_BOUND, 0.001)
        if trigger(proc.pid):
            return
        proc.send_signal(signal.SIGCONT)


def _stopped(pid: int) -> bool:
    """Every thread of pid has stopped (state T in /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = [Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True  # gone: nothing runs on
    return all(st in ("T", "t", "Z", "X") for st in states)


# -- cycles ----------------------------------------------------------------------


@dataclass
class CycleResult:
    mode: str
    seed: int
    kills: int = 0  # SIGKILLs that landed mid-run
    finished_early: int = 0  # runs that ended before their kill moment
    marker_seen: int = 0  # kills after which restore-in-progress existed
    killed_after_done: int = 0  # kills that landed after the restore had finished its work
    resumed_bytes: int = 0  # from the final run's --json (restore)
    moved_bytes: int = 0  # downloaded (restore) or uploaded (backup) by the final run
    identical: bool = False
    problems: list[str] = field(default_factory=list)

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    @property
    def ok(self) -> bool:
        return self.identical and not self.problems


class Workspace:
    """One source snapshot, its backup, and a directory for cycles; reused by many cycles."""

    def __init__(self, root: Path, seed: int = 1, rate: int = DEFAULT_RATE) -> None:
        self.root = root
        self.rate = rate
        self.files = snapshot_files(seed)
        self.old_files = old_snapshot_files(seed)  # an older restore in a target
        self.old_backup_files = old_snapshot_files(seed, resized=False)  # an older backup at a dst
        self.src = write_tree(root / "vmdata" / "snapshots" / SNAPSHOT_NAME, self.files)
        self.old_src = write_tree(root / "vmdata" / "snapshots" / OLD_SNAPSHOT_NAME, self.old_backup_files)
        self.digest = digest_of(self.files)
        self.total = sum(len(v) for v in self.files.values())
        self.parts = expected_parts(self.files)
        self.old_parts = expected_parts(self.old_backup_files)
        self.backup = root / "backup"
        self.old_backup = root / "old-backup"
        self._n = 0
        for src, dst in ((self.src, self.backup), (self.old_src, self.old_backup)):
            p = run_cli(self.backup_argv(src, dst, rate=0))
            if p.returncode != 0:
                raise RuntimeError(f"cannot make the test backup: {p.stderr}")

    def fresh(self, name: str) -> Path:
        self._n += 1
        d = self.root / "cycles" / f"{self._n:04d}-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def restore_argv(self, target: Path, preallocate: bool, rate: int, src: Path | None = None,
                     json_out: bool = False) -> list[str]:
        return restore_argv(src or self.backup, target, preallocate, rate, json_out)

    def backup_argv(self, src: Path, dst: Path, rate: int, json_out: bool = False) -> list[str]:
        return backup_argv(src, dst, rate, json_out)


def restore_argv(backup: Path, target: Path, preallocate: bool = True, rate: int = 0,
                 json_out: bool = False, *extra: str) -> list[str]:
    args = ["restore", "--src", f"fs://{backup}", "--dst", str(target), "--progress", "off", *extra]
    if not preallocate:
        args.append("--skip-file-preallocation")
    if rate:
        args += ["--max-bytes-per-second", str(rate)]
    if json_out:
        args.append("--json")
    return snapferry_argv(*args)


def backup_argv(src: Path, dst: Path, rate: int = 0, json_out: bool = False, *extra: str) -> list[str]:
    args = ["backup", "--src", str(src), "--dst", f"fs://{dst}", "--progress", "off",
            "--max-part-size", str(PART_SIZE), *extra]
    if rate:
        args += ["--max-bytes-per-second", str(rate)]
    if json_out:
        args.append("--json")
    return snapferry_argv(*args)


def _kill_point(rng: random.Random, total: int) -> tuple[int, float]:
    # Threshold in bytes written, then a short random delay so kills also land
    # between a write and its bookkeeping (journal record, rename).
    return rng.randrange(0, max(1, total)), rng.uniform(0.0, 0.08)


# -- restore ---------------------------------------------------------------------


def _target_files(target: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dirpath, _dirs, names in os.walk(target):
        for fn in names:
            full = Path(dirpath, fn)
            out[full.relative_to(target).as_posix()] = full
    return out


def check_killed_restore(ws: Workspace, target: Path, preallocate: bool, fresh_target: bool,
                         res: CycleResult) -> tuple[int, int]:
    """Check what a killed restore left; return the (resumed, download) bytes a rerun must report."""
    present = _target_files(target)
    data_files = {k: v for k, v in present.items() if k not in (FLOCK, RESTORE_MARKER)}
    if RESTORE_MARKER in present:
        res.marker_seen += 1
    elif tree_digest(target) == ws.digest:
        res.killed_after_done += 1  # the kill landed after the marker went: the restore was whole
    elif data_files and fresh_target:
        res.problem(f"killed restore left data but no {RESTORE_MARKER}: {sorted(data_files)[:5]}")
    elif data_files and not fresh_target and tree_digest(target) != digest_of(ws.old_files):
        res.problem(f"killed restore changed the target but left no {RESTORE_MARKER}")

    resumed = 0
    download = 0
    for path, data in ws.files.items():
        size = len(data)
        final = present.get(path)
        final_size = final.stat().st_size if final is not None else None
        if final is not None:
            content = final.read_bytes()
            stale = ws.old_files.get(path)
            if preallocate:
                # A file at its final name is whole: ours, or the untouched stale one.
                if content != data and (fresh_target or content != stale):
                    res.problem(f"{path}: torn file at its final name after a kill ({len(content)} of {size})")
            elif data[: len(content)] != content and (fresh_target or content != stale):
                res.problem(f"{path}: in place, the file is not a prefix of the source after a kill")
        parts = part_ranges(size)
        marker = present.get(path + JOURNAL_SUFFIX)
        ours = marker is not None and read_journal(str(marker), size) is not None
        if not preallocate and final_size is not None and ours:
            # In place, a file marked as being written keeps its whole parts below its length;
            # the last part is fetched again (its sync comes only at the finish).
            todo = [(off, n) for off, n in parts if off + n > min(final_size, size)] or parts[-1:]
            keep = 0 if always_transfer(path) else todo[0][0]
            resumed += keep
            download += size - keep
            continue
        if final_size == size and not always_transfer(path):
            if not (RESTORE_MARKER in present and may_be_batched(size)):
                continue  # the rerun keeps it
            download += size  # its bytes may never have been synced: fetched again
            continue
        if preallocate:
            tmp = present.get(path + TMP_SUFFIX)
            journal = present.get(path + JOURNAL_SUFFIX)
            done: set[tuple[int, int]] = set()
            if tmp is not None and journal is not None and len(parts) > 1:
                recorded = read_journal(str(journal), size)
                if recorded is not None and tmp.stat().st_size == size:
                    tmp_bytes = tmp.read_bytes()
                    for off, n in recorded:
                        if tmp_bytes[off : off + n] != data[off : off + n]:
                            res.problem(f"{path}: journal records part {off}+{n} but its bytes are wrong")
                    done = {r for r in recorded if r in set(parts)}
            kept = sum(n for _off, n in done)
            resumed += kept
            download += size - kept
        else:
            download += size  # not marked as ours: rewritten from its first byte
    return resumed, download


def restore_cycle(ws: Workspace, seed: int, preallocate: bool) -> CycleResult:
    mode = "restore-prealloc" if preallocate else "restore-inplace"
    res = CycleResult(mode, seed)
    rng = random.Random(f"{mode}-{seed}")
    target = ws.fresh(f"{mode}-{seed}") / "data"
    fresh_target = rng.random() < 0.75
    if not fresh_target:
        write_tree(target, ws.old_files)  # an older restore to bring up to date
    kills = 1 if rng.random() < 0.7 else 2
    expect: tuple[int, int] | None = None
    # Bytes the next run has to write (an older restore in the target needs less).
    left = check_killed_restore(ws, target, preallocate, fresh_target, CycleResult(mode, seed))[1]
    for _ in range(kills):
        threshold, delay = _kill_point(rng, left)
        a = run_and_kill(ws.restore_argv(target, preallocate, ws.rate), written_at_least(threshold), delay,
                         workdir=target.parent)
        if a.killed:
            res.kills += 1
            expect = check_killed_restore(ws, target, preallocate, fresh_target, res)
            left = expect[1]
        elif a.returncode == 0:
            res.finished_early += 1
            expect = None
        else:
            res.problem(f"throttled restore failed: {a.describe()}")
            return res
    if expect is None and (target / RESTORE_MARKER).exists():
        res.problem("restore-in-progress left after a successful run")
    final = run_cli(ws.restore_argv(target, preallocate, 0, json_out=True))
    if final.returncode != 0:
        res.problem(f"rerun of the restore failed rc={final.returncode}: {final.stderr[-3000:]}")
        return res
    summary = json.loads(final.stdout)
    res.resumed_bytes = int(summary["resumed_bytes"])
    res.moved_bytes = int(summary["downloaded_bytes"])
    if expect is not None:
        want_resumed, want_download = expect
        if (res.resumed_bytes, res.moved_bytes) != (want_resumed, want_download):
            res.problem(
                f"rerun moved the wrong amount: resumed {res.resumed_bytes} (expected {want_resumed}), "
                f"downloaded {res.moved_bytes} (expected {want_download})"
            )
    check_restored(ws, target, res)
    return res


def check_restored(ws: Workspace, target: Path, res: CycleResult) -> None:
    got = tree_digest(target)
    leftovers = sorted(
        k for k in got if k == RESTORE_MARKER or k.endswith((TMP_SUFFIX, JOURNAL_SUFFIX, UPLOAD_TMP_SUFFIX))
    )
    if leftovers:
        res.problem(f"left behind after success: {leftovers[:10]}")
    if got == ws.digest:
        res.identical = True
        return
    missing = sorted(set(ws.digest) - set(got))
    extra = sorted(set(got) - set(ws.digest))
    differ = sorted(k for k in set(got) & set(ws.digest) if got[k] != ws.digest[k])
    res.problem(f"restored tree differs: missing {missing[:5]}, extra {extra[:5]}, different {differ[:5]}")


# -- backup ----------------------------------------------------------------------


def _objects(dst: Path) -> dict[str, Path]:
    return _target_files(dst) if dst.exists() else {}


def check_killed_backup(ws: Workspace, dst: Path, res: CycleResult) -> tuple[int, int, bool]:
    """Check a killed backup's dst; return (bytes, stale parts) a rerun must upload/delete, complete?"""
    objs = _objects(dst)
    complete = COMPLETE in objs
    upload = 0
    stale = 0
    for name, path in objs.items():
        if name.endswith((".ignore", UPLOAD_TMP_SUFFIX)):
            continue  # markers and other non-part files (names ending in .ignore are never parts)
        body = path.read_bytes()
        want = ws.parts.get(name)
        old = ws.old_parts.get(name)
        if body != want and body != old:
            res.problem(f"torn part object after a kill: {name} ({len(body)} bytes)")
        if want is None:
            stale += 1
    for name, body in ws.parts.items():
        path = name.rsplit("/", 1)[0]
        have = objs.get(name)
        if have is None or have.stat().st_size != len(body) or always_transfer(path):
            upload += len(body)
    if complete and (stale or any(n not in objs for n in ws.parts)):
        res.problem("backup_complete.ignore present on an incomplete backup after a kill")
    return upload, stale, complete


def backup_cycle(ws: Workspace, seed: int, check_refusal: bool = True) -> CycleResult:
    res = CycleResult("backup", seed)
    rng = random.Random(f"backup-{seed}")
    base = ws.fresh(f"backup-{seed}")
    dst = base / "bk"
    if rng.random() < 0.3:
        shutil.copytree(ws.old_backup, dst)  # an older backup to bring up to date (incremental)
    kills = 1 if rng.random() < 0.7 else 2
    expect: tuple[int, int, bool] | None = None
    left = check_killed_backup(ws, dst, CycleResult("backup", seed))[0]  # bytes the next run uploads
    for _ in range(kills):
        threshold, delay = _kill_point(rng, left)
        a = run_and_kill(ws.backup_argv(ws.src, dst, ws.rate), written_at_least(threshold), delay, workdir=base)
        if a.killed:
            res.kills += 1
            expect = check_killed_backup(ws, dst, res)
            left = expect[0]
            if check_refusal and not expect[2] and dst.exists():
                r = run_cli(ws.restore_argv(base / "refused", True, 0, src=dst))
                if r.returncode != EXIT_BAD_BACKUP or COMPLETE not in r.stderr:
                    res.problem(f"restore of a killed backup was not refused: rc={r.returncode} {r.stderr[-500:]}")
        elif a.returncode == 0:
            res.finished_early += 1
            expect = None
        else:
            res.problem(f"throttled backup failed: {a.describe()}")
            return res
    final = run_cli(ws.backup_argv(ws.src, dst, 0, json_out=True))
    if final.returncode != 0:
        res.problem(f"rerun of the backup failed rc={final.returncode}: {final.stderr[-3000:]}")
        return res
    summary = json.loads(final.stdout)
    res.moved_bytes = int(summary["uploaded_bytes"])
    if expect is not None:
        want_upload, want_stale, _ = expect
        got = (res.moved_bytes, int(summary["parts_deleted"]))
        if got != (want_upload, want_stale):
            res.problem(
                f"backup rerun moved the wrong amount: uploaded {got[0]} (expected {want_upload}), "
                f"deleted {got[1]} parts (expected {want_stale})"
            )
    check_backup(ws, dst, res)
    if not res.problems:
        out = base / "restored"
        r = run_cli(ws.restore_argv(out, True, 0, src=dst))
        if r.returncode != 0:
            res.problem(f"restore of the resumed backup failed: {r.stderr[-2000:]}")
            res.identical = False
        else:
            check_restored(ws, out, res)
    return res


def check_backup(ws: Workspace, dst: Path, res: CycleResult) -> None:
    objs = _objects(dst)
    leftovers = sorted(n for n in objs if n.endswith(UPLOAD_TMP_SUFFIX))
    if leftovers:
        res.problem(f"upload temporaries left in the backup: {leftovers[:5]}")
    if COMPLETE not in objs or METADATA not in objs:
        res.problem("markers missing after a successful backup")
    if LEASE in objs:
        res.problem(f"{LEASE} left behind after a successful backup")
    names = {n for n in objs if not n.endswith((".ignore", UPLOAD_TMP_SUFFIX))}
    if names != set(ws.parts):
        res.problem(
            f"backup objects differ: missing {sorted(set(ws.parts) - names)[:5]}, "
            f"extra {sorted(names - set(ws.parts))[:5]}"
        )
        return
    bad = [n for n in names if objs[n].read_bytes() != ws.parts[n]]
    if bad:
        res.problem(f"backup parts with wrong bytes: {sorted(bad)[:5]}")
    else:
        res.identical = True


# -- driver ----------------------------------------------------------------------


def run_cycle(ws: Workspace, mode: str, seed: int) -> CycleResult:
    if mode == "restore-prealloc":
        return restore_cycle(ws, seed, preallocate=True)
    if mode == "restore-inplace":
        return restore_cycle(ws, seed, preallocate=False)
    if mode == "backup":
        return backup_cycle(ws, seed)
    raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


def cleanup_cycles(ws: Workspace) -> None:
    shutil.rmtree(ws.root / "cycles", ignore_errors=True)
