"""snapferry benchmarks against vmbackup/vmrestore 1.79.5 and `cp -a` + `sync`.

Run: .venv/bin/python -m bench.run [--scale GiB] [--seed N] [--runs 5]
         [--scenarios a,b,c,d,e,f,planner] [--workdir DIR] [--profile] [--fresh]

Scenarios (ids accepted by --scenarios; a letter selects all its variants):
  a      full restore from fs://                snapferry | vmrestore | cp -a + sync
  b      full restore from s3:// (SeaweedFS)    snapferry | vmrestore
  c      one 4 GiB x scale/3 file from s3:// through bench/proxy.py
         (20 ms per request, 100 MB/s per connection)  snapferry | vmrestore
  d      incremental restore, nothing changed: d-fs, d-s3   snapferry | vmrestore
  e      full backup: e-fs (snapferry | vmbackup | cp -a + sync), e-s3 (snapferry | vmbackup)
  f      incremental backup, nothing changed: f-fs, f-s3   snapferry | vmbackup
  planner  plan_restore of 1,000,000 synthetic parts (bench/planner.py)
  grid-fs, grid-s3, grid-proxy   snapferry tuning grid (not in the default set)

Each scenario runs its tools in alternation (A B C A B C ...): one warm-up round
(not counted; its output is verified against the dataset), then --runs counted
rounds. Before every run the target is removed and the page cache dropped, both
outside the timing. Results merge into bench/results/results.json (same scale
and seed; --fresh starts over) and are rendered to results.md and results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import measure
from .datagen import GIB, Dataset, ensure_bigfile, ensure_dataset
from .servers import BUCKET, Proxy, Weed, free_port, s3_env, write_creds

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VENV_BIN = Path(sys.executable).parent
SNAPFERRY = VENV_BIN / "snapferry"
WEED = VENV_BIN / "weed"
VMRESTORE = Path("/usr/bin/vmrestore")
VMBACKUP = Path("/usr/bin/vmbackup")
IGNORED_IN_TARGET = {"flock.lock", "restore-in-progress"}
MIB = 1024 * 1024

DEFAULT_SCENARIOS = "a,b,c,d,e,f,planner"
ALL_IDS = ["a", "d-fs", "f-fs", "e-fs", "b", "d-s3", "f-s3", "c", "e-s3", "planner",
           "grid-fs", "grid-s3", "grid-proxy"]


@dataclass
class Tool:
    name: str
    argv: Callable[[], list[str]]
    prepare: Callable[[], None] = lambda: None
    verify: Callable[[], None] | None = None
    env: dict[str, str] | None = None
    kind: str = "snapferry"  # snapferry | peer | floor


@dataclass
class Scenario:
    id: str
    title: str
    data_bytes: int  # bytes moved by a full run (0 for nothing-changed runs)
    tools: list[Tool]
    watch: list[int] = field(default_factory=list)  # server pids whose CPU is reported
    notes: str = ""
    group: str = "main"  # main | grid
    cleanup: Callable[[], None] = lambda: None  # after the scenario (unless --keep-targets)


# ----------------------------------------------------------------------------- helpers


def rmtree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)


def sh_cp(src: Path, dst: Path) -> list[str]:
    return ["sh", "-c", 'cp -a "$0" "$1" && sync', str(src), str(dst)]


def sh_read(src: Path) -> list[str]:
    """Only read every source file (8 at a time, to /dev/null): how long the disk needs to
    hand over the bytes at all, the floor under any local restore or backup."""
    return ["sh", "-c", 'find -L "$0" -type f -print0 | xargs -0 -P 8 -n 64 cat > /dev/null', str(src)]


READ_FLOOR = "read only: cat > /dev/null"


def vm_flags_s3(endpoint: str, creds: Path) -> list[str]:
    return [f"-customS3Endpoint={endpoint}", f"-credsFilePath={creds}"]


def vmrestore(src: str, dst: Path, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(VMRESTORE), f"-src={src}", f"-storageDataPath={dst}",
                    f"-httpListenAddr=127.0.0.1:{free_port()}", *(extra or [])]


def vmbackup(ds: Dataset, dst: str, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(VMBACKUP), f"-storageDataPath={ds.storage}", f"-snapshotName={ds.name}", f"-dst={dst}",
                    f"-httpListenAddr=127.0.0.1:{free_port()}", *(extra or [])]


def sf_restore(src: str, dst: Path, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(SNAPFERRY), "restore", "--src", src, "--dst", str(dst), "--progress", "off", "--json",
                    *(extra or [])]


def _sfrun(src: str, dst: Path, args: list[str]) -> Callable[[], list[str]]:
    return lambda: [sys.executable, "-m", "bench.sfrun", "--src", src, "--dst", str(dst), *args]


def sf_backup(ds: Dataset, dst: str, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(SNAPFERRY), "backup", "--src", str(ds.snapshot), "--dst", dst, "--progress", "off",
                    "--json", *(extra or [])]


def tree_sizes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for fn in files:
            full = Path(dirpath, fn)
            rel = full.relative_to(root).as_posix()
            if rel in IGNORED_IN_TARGET or (rel.endswith(".ignore") and "/" not in rel):
                continue
            out[rel] = full.stat().st_size
    return out


def _sample_digest(path: Path, size: int) -> str:
    """Whole small files; for big ones 1 MiB windows at the start, end and around each 1 GiB boundary."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 4 * MIB:
            h.update(f.read())
            return h.hexdigest()
        offs = {0, max(0, size - MIB), size // 2}
        for b in range(GIB, size, GIB):
            offs.update({max(0, b - MIB // 2)})
        for off in sorted(offs):
            f.seek(off)
            h.update(f.read(MIB))
    return h.hexdigest()


class Verifier:
    """Checks a restored tree (or a backup's listing) against the dataset, outside the timing."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._sizes: dict[str, int] | None = None
        self._digests: dict[str, str] = {}

    def sizes(self) -> dict[str, int]:
        if self._sizes is None:
            self._sizes = tree_sizes(self.ds.snapshot)
        return self._sizes

    def tree(self, target: Path) -> None:
        want = self.sizes()
        got = tree_sizes(target)
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            extra = sorted(set(got) - set(want))[:5]
            wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
            raise AssertionError(f"{target} differs: missing {missing} extra {extra} wrong size {wrong}")
        # content: every file up to 4 MiB whole, sampled windows of bigger ones; a stride over small files
        keys = sorted(want)
        pick = [k for k in keys if want[k] > 4 * MIB] + keys[:: max(1, len(keys) // 200)]
        for k in pick:
            if k not in self._digests:
                self._digests[k] = _sample_digest(self.ds.snapshot / k, want[k])
            if _sample_digest(target / k, want[k]) != self._digests[k]:
                raise AssertionError(f"{target / k}: content differs from the dataset")

    def parts_fs(self, backup_root: Path) -> None:
        names = {
            p.relative_to(backup_root).as_posix()
            for p in backup_root.rglob("*") if p.is_file() and not p.name.endswith(".ignore")
        }
        self._check_names(names, str(backup_root))
        if not (backup_root / "backup_complete.ignore").exists():
            raise AssertionError(f"{backup_root} has no backup_complete.ignore")

    def parts_s3(self, weed: Weed, prefix: str) -> None:
        c = weed.client()
        names: set[str] = set()
        complete = False
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                rel = o["Key"][len(prefix) + 1 :]
                if rel == "backup_complete.ignore":
                    complete = True
                elif not rel.endswith(".ignore"):
                    names.add(rel)
        self._check_names(names, f"s3://{BUCKET}/{prefix}")
        if not complete:
            raise AssertionError(f"s3://{BUCKET}/{prefix} has no backup_complete.ignore")

    def _check_names(self, names: set[str], where: str) -> None:
        want: set[str] = set()
        for rel, size in self.sizes().items():
            if size == 0:
                want.add(f"{rel}/{0:016X}_{0:016X}_{0:016X}")
            for off in range(0, size, GIB):
                want.add(f"{rel}/{size:016X}_{off:016X}_{min(GIB, size - off):016X}")
        if names != want:
            raise AssertionError(
                f"{where}: {len(names)} parts, expected {len(want)}; "
                f"missing {sorted(want - names)[:3]} extra {sorted(names - want)[:3]}"
            )


# ----------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.workdir.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.targets = self.work / "targets"
        self.creds = write_creds(self.work / "creds")
        self.env = s3_env()
        self.weed: Weed | None = None
        self.proxy: Proxy | None = None
        self.results: dict[str, dict[str, object]] = {}
        self.can_drop = measure.check_drop_caches(self.work)
        self._ds: Dataset | None = None
        self._big: Dataset | None = None
        self.s3_ok: bool | None = None

    # -- fixtures ---------------------------------------------------------------------------
    @property
    def ds(self) -> Dataset:
        if self._ds is None:
            self._ds = ensure_dataset(self.work, self.args.scale, self.args.seed)
        return self._ds

    @property
    def big(self) -> Dataset:
        if self._big is None:
            self._big = ensure_bigfile(self.work, self.args.scale, self.args.seed)
        return self._big

    def fs_backup(self) -> Path:
        """The reference fs:// backup of the dataset (made once by snapferry, cached)."""
        root = self.work / "backups" / self.ds.key / "fs"
        stamp = root.parent / "fs.done"
        if not stamp.exists():
            rmtree(root)
            print(f"[setup] snapferry backup -> fs://{root}", flush=True)
            measure.run(sf_backup(self.ds, f"fs://{root}")(), self.logs / "setup" / "fs-backup", env=self.env)
            Verifier(self.ds).parts_fs(root)
            stamp.write_text("ok\n")
        return root

    def fs_incr_backup(self) -> Path:
        """A hard-linked copy of the reference backup for the incremental-backup runs."""
        ref = self.fs_backup()
        root = ref.parent / "fs-incr"
        if not root.exists():
            subprocess.run(["cp", "-al", str(ref), str(root)], check=True)
        return root

    def start_weed(self) -> Weed:
        if self.weed is None:
            print("[setup] starting weed mini", flush=True)
            self.weed = Weed(self.work, WEED)
        return self.weed

    def s3_backup(self, ds: Dataset) -> str:
        """The reference s3:// backup of ds in SeaweedFS: s3://bench/<key>/full."""
        weed = self.start_weed()
        prefix = f"{ds.key}/full"
        url = f"s3://{BUCKET}/{prefix}"
        if weed.count_prefix(prefix) == 0 or not self._s3_complete(prefix):
            weed.delete_prefix(prefix)
            print(f"[setup] snapferry backup -> {url}", flush=True)
            try:
                measure.run(sf_backup(ds, url, ["--custom-s3-endpoint", weed.endpoint])(),
                            self.logs / "setup" / f"s3-backup-{ds.key}", env=self.env)
                self.s3_ok = True
            except measure.CommandFailed as e:
                print(f"[setup] snapferry s3 backup failed, using vmbackup for the reference:\n{e}", flush=True)
                self.s3_ok = False
                weed.delete_prefix(prefix)
                measure.run(vmbackup(ds, url, vm_flags_s3(weed.endpoint, self.creds))(),
                            self.logs / "setup" / f"s3-vmbackup-{ds.key}", env=self.env)
            Verifier(ds).parts_s3(weed, prefix)
        return url

    def _s3_complete(self, prefix: str) -> bool:
        assert self.weed is not None
        try:
            self.weed.client().head_object(Bucket=BUCKET, Key=f"{prefix}/backup_complete.ignore")
            return True
        except Exception:
            return False

    def start_proxy(self) -> Proxy:
        if self.proxy is None:
            weed = self.start_weed()
            self.proxy = Proxy(self.work, weed.s3_port, self.args.proxy_delay_ms, self.args.proxy_rate_mbps)
        return self.proxy

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.weed is not None:
            self.weed.stop()

    # -- scenarios -----------------------------------------------------------------------------
    def restore_tools(self, sid: str, src_fs: str | None, src_s3: str | None, endpoint: str | None,
                      ds: Dataset, with_cp: bool, fresh: bool = True) -> list[Tool]:
        ver = Verifier(ds)
        tools: list[Tool] = []
        url = src_fs or src_s3
        assert url is not None
        sf_extra = ["--custom-s3-endpoint", endpoint] if endpoint else []
        vm_extra = vm_flags_s3(endpoint, self.creds) if endpoint else []

        def target(name: str) -> Path:
            return self.targets / f"{sid}-{name}"

        def clean(p: Path) -> Callable[[], None]:
            return (lambda: rmtree(p)) if fresh else (lambda: None)

        t = target("snapferry")
        tools.append(Tool("snapferry", sf_restore(url, t, sf_extra), clean(t), lambda t=t: ver.tree(t), self.env))
        t = target("vmrestore")
        tools.append(Tool("vmrestore 1.79.5", vmrestore(url, t, vm_extra), clean(t), lambda t=t: ver.tree(t),
                          self.env, kind="peer"))
        if with_cp:
            t = target("cp")
            tools.append(Tool("cp -a + sync", lambda t=t: sh_cp(ds.snapshot, t), clean(t),
                              lambda t=t: ver.tree(t), self.env, kind="floor"))
            if src_fs is not None:
                root = Path(src_fs[len("fs://"):])
                tools.append(Tool(READ_FLOOR, lambda: sh_read(root), env=self.env, kind="floor"))
        return tools

    def build(self, sid: str) -> Scenario | None:
        a = self.args
        if sid == "a":
            src = f"fs://{self.fs_backup()}"
            return Scenario("a", "full restore, fs://", self.ds.total_bytes,
                            self.restore_tools("a", src, None, None, self.ds, with_cp=True),
                            notes="snapferry: reads of the backup into its buffers, O_DIRECT writes; "
                            "cp -a copies the snapshot dir")
        if sid == "d-fs":
            src = f"fs://{self.fs_backup()}"
            return self._incr_restore("d-fs", src, None)
        if sid == "f-fs":
            dst = f"fs://{self.fs_incr_backup()}"
            ver = Verifier(self.ds)
            root = self.fs_incr_backup()
            tools = [
                Tool("snapferry", sf_backup(self.ds, dst), verify=lambda: ver.parts_fs(root), env=self.env),
                Tool("vmbackup 1.79.5", vmbackup(self.ds, dst), verify=lambda: ver.parts_fs(root), env=self.env,
                     kind="peer"),
            ]
            return Scenario("f-fs", "incremental backup, nothing changed, fs://", 0, tools)
        if sid == "e-fs":
            ver = Verifier(self.ds)
            tools = []
            for name, kind in (("snapferry", "snapferry"), ("vmbackup", "peer"), ("cp", "floor")):
                root = self.work / "backups" / self.ds.key / f"e-{name}"
                dst = f"fs://{root}"
                if name == "snapferry":
                    argv = sf_backup(self.ds, dst)
                elif name == "vmbackup":
                    argv = vmbackup(self.ds, dst)
                else:
                    argv = lambda root=root: sh_cp(self.ds.snapshot, root)  # noqa: E731
                verify = (lambda root=root: ver.parts_fs(root)) if name != "cp" else (
                    lambda root=root: ver.tree(root))
                label = {"snapferry": "snapferry", "vmbackup": "vmbackup 1.79.5", "cp": "cp -a + sync"}[name]
                tools.append(Tool(label, argv, lambda root=root: rmtree(root), verify, self.env, kind))
            tools.append(Tool(READ_FLOOR, lambda: sh_read(self.ds.snapshot), env=self.env, kind="floor"))

            def drop_backups() -> None:
                for n in ("snapferry", "vmbackup", "cp"):
                    rmtree(self.work / "backups" / self.ds.key / f"e-{n}")

            return Scenario("e-fs", "full backup, fs://", self.ds.total_bytes, tools, cleanup=drop_backups)
        # ---- s3 ----
        if sid == "b":
            weed = self.start_weed()
            src = self.s3_backup(self.ds)
            return Scenario("b", "full restore, s3:// (SeaweedFS, loopback)", self.ds.total_bytes,
                            self.restore_tools("b", None, src, weed.endpoint, self.ds, with_cp=False),
                            watch=[weed.pid], notes="server CPU = weed mini")
        if sid == "d-s3":
            weed = self.start_weed()
            return self._incr_restore("d-s3", self.s3_backup(self.ds), weed.endpoint, watch=[weed.pid])
        if sid == "f-s3":
            weed = self.start_weed()
            url = self.s3_backup(self.ds)
            prefix = url[len(f"s3://{BUCKET}/"):]
            ver = Verifier(self.ds)
            tools = [
                Tool("snapferry", sf_backup(self.ds, url, ["--custom-s3-endpoint", weed.endpoint]),
                     verify=lambda: ver.parts_s3(weed, prefix), env=self.env),
                Tool("vmbackup 1.79.5", vmbackup(self.ds, url, vm_flags_s3(weed.endpoint, self.creds)),
                     verify=lambda: ver.parts_s3(weed, prefix), env=self.env, kind="peer"),
            ]
            return Scenario("f-s3", "incremental backup, nothing changed, s3://", 0, tools, watch=[weed.pid])
        if sid == "c":
            weed = self.start_weed()
            src = self.s3_backup(self.big)
            proxy = self.start_proxy()
            gib = self.big.total_bytes / GIB
            return Scenario(
                "c", f"one {gib:.2f} GiB file, s3:// via proxy ({a.proxy_delay_ms:g} ms/request, "
                f"{a.proxy_rate_mbps:g} MB/s per connection)", self.big.total_bytes,
                self.restore_tools("c", None, src, proxy.endpoint, self.big, with_cp=False),
                watch=[weed.pid, proxy.pid], notes="server CPU = weed mini + proxy")
        if sid == "e-s3":
            weed = self.start_weed()
            ver = Verifier(self.ds)
            tools = []
            for name, kind in (("snapferry", "snapferry"), ("vmbackup", "peer")):
                prefix = f"{self.ds.key}/e-{name}"
                url = f"s3://{BUCKET}/{prefix}"

                def prep(prefix: str = prefix) -> None:
                    if weed.delete_prefix(prefix):
                        weed.vacuum()

                if name == "snapferry":
                    argv = sf_backup(self.ds, url, ["--custom-s3-endpoint", weed.endpoint])
                else:
                    argv = vmbackup(self.ds, url, vm_flags_s3(weed.endpoint, self.creds))
                label = "snapferry" if name == "snapferry" else "vmbackup 1.79.5"
                tools.append(Tool(label, argv, prep, lambda prefix=prefix: ver.parts_s3(weed, prefix), self.env,
                                  kind))
            def drop_all() -> None:
                for n in ("snapferry", "vmbackup"):
                    weed.delete_prefix(f"{self.ds.key}/e-{n}")
                weed.vacuum()

            return Scenario("e-s3", "full backup, s3:// (SeaweedFS, loopback)", self.ds.total_bytes, tools,
                            watch=[weed.pid], notes="old objects deleted and volumes vacuumed before each run",
                            cleanup=drop_all)
        if sid.startswith("grid-"):
            return self._grid(sid)
        raise SystemExit(f"unknown scenario {sid!r}")

    def _incr_restore(self, sid: str, src: str, endpoint: str | None, watch: list[int] | None = None) -> Scenario:
        target = self.targets / f"{sid}-shared"
        ready = self.targets / f"{sid}-shared.ready"
        ver = Verifier(self.ds)
        if not ready.exists():
            rmtree(target)
            extra = ["--custom-s3-endpoint", endpoint] if endpoint else []
            measure.run(sf_restore(src, target, extra)(), self.logs / "setup" / f"{sid}-restore", env=self.env)
            ver.tree(target)
            ready.write_text("")
        sf_extra = ["--custom-s3-endpoint", endpoint] if endpoint else []
        vm_extra = vm_flags_s3(endpoint, self.creds) if endpoint else []
        tools = [
            Tool("snapferry", sf_restore(src, target, sf_extra), verify=lambda: ver.tree(target), env=self.env),
            Tool("vmrestore 1.79.5", vmrestore(src, target, vm_extra), verify=lambda: ver.tree(target),
                 env=self.env, kind="peer"),
        ]
        where = "fs://" if endpoint is None else "s3://"
        return Scenario(sid, f"incremental restore, nothing changed, {where}", 0, tools, watch=watch or [],
                        notes="one target restored beforehand; both tools run against it")

    def _grid(self, sid: str) -> Scenario:
        """snapferry variants: CLI knobs (concurrency, chunk, in-flight) and Tuning-only ones via bench.sfrun."""
        where = sid.split("-", 1)[1]
        watch: list[int] = []
        if where == "fs":
            ds, src, endpoint = self.ds, f"fs://{self.fs_backup()}", None
        elif where == "s3":
            weed = self.start_weed()
            ds, src, endpoint = self.ds, self.s3_backup(self.ds), weed.endpoint
            watch = [weed.pid]
        else:
            weed = self.start_weed()
            ds, src = self.big, self.s3_backup(self.big)
            proxy = self.start_proxy()
            endpoint = proxy.endpoint
            watch = [weed.pid, proxy.pid]
        ver = Verifier(ds)
        variants = self.args.grid or GRID_DEFAULT[where]
        tools = []
        for i, v in enumerate(variants):
            t = self.targets / f"{sid}-{i}"
            args = v.split()
            if endpoint:
                args += ["--custom-s3-endpoint", endpoint]
            argv = _sfrun(src, t, args) if any(x in v for x in SFRUN_FLAGS) else sf_restore(src, t, args)
            tools.append(Tool(v or "defaults", argv, lambda t=t: rmtree(t), lambda t=t: ver.tree(t), self.env))
        env = dict(self.env)
        env["PYTHONPATH"] = str(HERE.parent)
        for t in tools:
            t.env = env
        return Scenario(sid, f"snapferry tuning grid, {where}", ds.total_bytes, tools, watch=watch, group="grid")

    # -- running ---------------------------------------------------------------------------------
    def run_scenario(self, scn: Scenario) -> dict[str, object]:
        runs, warmup = self.args.runs, self.args.warmup
        print(f"\n=== {scn.id}: {scn.title} ({len(scn.tools)} tools, {warmup} warm-up + {runs} runs)", flush=True)
        per_tool: dict[str, list[measure.Measurement]] = {t.name: [] for t in scn.tools}
        failed: dict[str, str] = {}
        busy = {"load_start": os.getloadavg()[0]}
        for rnd in range(warmup + runs):
            counted = rnd >= warmup
            for tool in scn.tools:
                if tool.name in failed:
                    continue
                tool.prepare()
                measure.drop_caches()
                log = self.logs / scn.id / f"{_slug(tool.name)}-{rnd}"
                try:
                    m = measure.run(tool.argv(), log, env=tool.env, watch_pids=scn.watch)
                except measure.CommandFailed as e:
                    print(f"  {tool.name}: FAILED\n{e}", flush=True)
                    failed[tool.name] = str(e).splitlines()[0] + f" (log {log}.err)"
                    continue
                sf_secs = _snapferry_seconds(log)
                if sf_secs is not None:
                    m.extra["internal_seconds"] = sf_secs
                if not counted and tool.verify is not None:
                    try:
                        tool.verify()
                    except AssertionError as e:
                        print(f"  {tool.name}: WRONG OUTPUT: {e}", flush=True)
                        failed[tool.name] = f"wrong output: {e}"
                        continue
                tag = "run" if counted else "warm-up"
                print(f"  {tag} {rnd - warmup + 1 if counted else 0}: {tool.name:<28} {m.wall:8.2f}s  "
                      f"cpu {m.cpu:6.2f}s  rss {m.maxrss_kib / 1024:7.1f} MiB  srv {m.server_cpu:5.2f}s  "
                      f"others {m.other_cpu:5.2f}s", flush=True)
                if counted:
                    per_tool[tool.name].append(m)
        busy["load_end"] = os.getloadavg()[0]
        rows = []
        for tool in scn.tools:
            ms = per_tool[tool.name]
            row: dict[str, object] = {"tool": tool.name, "kind": tool.kind, "runs": len(ms)}
            if tool.name in failed:
                row["failed"] = failed[tool.name]
            if ms:
                row.update(_summary(ms, scn.data_bytes))
            rows.append(row)
        sf = next((r for r in rows if r["tool"] == scn.tools[0].name and "median" in r), None)
        for r in rows:
            if sf is not None and "median" in r and r is not sf:
                r["ratio"] = float(sf["median"]) / float(r["median"])  # type: ignore[arg-type]
        res = {"id": scn.id, "title": scn.title, "data_bytes": scn.data_bytes, "notes": scn.notes,
               "group": scn.group, "rows": rows, "load": busy, "drop_caches": self.can_drop,
               "date": datetime.now(UTC).isoformat(timespec="seconds")}
        return res

    def run_planner(self) -> dict[str, object]:
        print("\n=== planner: plan_restore of 1,000,000 parts", flush=True)
        rows = []
        ms = []
        for i in range(max(1, min(self.args.runs, 3))):
            log = self.logs / "planner" / f"run-{i}"
            env = dict(os.environ)
            env["PYTHONPATH"] = str(HERE.parent)
            m = measure.run([sys.executable, "-m", "bench.planner", "--json", "--parts", str(self.args.planner_parts)],
                            log, env=env)
            out = json.loads(log.with_suffix(".out").read_text())
            m.extra.update(out)
            ms.append(m)
            print(f"  run {i + 1}: plan {out['plan_seconds']:.2f}s parse {out['parse_seconds']:.2f}s "
                  f"rss {m.maxrss_kib / 1024:.0f} MiB others {m.other_cpu:.1f}s", flush=True)
        plan_s = statistics.median(float(m.extra["plan_seconds"]) for m in ms)  # type: ignore[arg-type]
        parse_s = statistics.median(float(m.extra["parse_seconds"]) for m in ms)  # type: ignore[arg-type]
        row = {"tool": "snapferry plan_restore", "kind": "snapferry", "runs": len(ms),
               **_summary(ms, 0), "plan_seconds": plan_s, "parse_seconds": parse_s,
               "parts": ms[0].extra["parts"], "files": ms[0].extra["files"]}
        rows.append(row)
        return {"id": "planner", "title": f"plan a restore of {self.args.planner_parts:,} parts (empty target)",
                "data_bytes": 0, "group": "main", "rows": rows, "drop_caches": self.can_drop,
                "notes": "median of the child's own timers; wall includes python startup and name generation",
                "date": datetime.now(UTC).isoformat(timespec="seconds")}


SFRUN_FLAGS = ("--writers", "--block-size", "--no-zero-copy", "--defer-fsync")

GRID_DEFAULT = {
    "fs": [
        "",
        "--chunk-size 1073741824",
        "--concurrency 4",
        "--concurrency 16",
        "--defer-fsync",
    ],
    "s3": [
        "",
        "--writers 1",
        "--writers 4",
        "--concurrency 4",
        "--concurrency 16",
        "--max-inflight-bytes 268435456",
        "--chunk-size 8388608",
        "--defer-fsync",
        "--skip-file-preallocation",
    ],
    "proxy": [
        "",
        "--concurrency 4",
        "--concurrency 16",
        "--chunk-size 8388608",
        "--chunk-size 134217728",
        "--max-inflight-bytes 268435456",
        "--concurrency 16 --max-inflight-bytes 268435456",
    ],
}


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-")[:60] or "default"


def _snapferry_seconds(log: Path) -> float | None:
    try:
        d = json.loads(log.with_suffix(".out").read_text())
        return float(d["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _summary(ms: list[measure.Measurement], data_bytes: int) -> dict[str, object]:
    walls = [m.wall for m in ms]
    med = statistics.median(walls)
    out: dict[str, object] = {
        "median": med,
        "min": min(walls),
        "max": max(walls),
        "walls": walls,
        "mbps": data_bytes / med / 1e6 if data_bytes and med > 0 else None,
        "rss_mib": max(m.maxrss_kib for m in ms) / 1024,
        "cpu": statistics.median(m.cpu for m in ms),
        "server_cpu": statistics.median(m.server_cpu for m in ms),
        "other_cpu": statistics.median(m.other_cpu for m in ms),
    }
    internal = [m.extra["internal_seconds"] for m in ms if "internal_seconds" in m.extra]
    if internal:
        out["internal_median"] = statistics.median(float(x) for x in internal)  # type: ignore[arg-type]
    return out


# ----------------------------------------------------------------------------- machine info


def machine_info(work: Path, can_drop: bool) -> dict[str, object]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except OSError:
            return "?"

    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu_model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    df = cmd("df", "-PT", str(work)).splitlines()
    fs = df[-1].split()[1] if len(df) > 1 else "?"
    from importlib.metadata import version

    vmv = cmd("dpkg-query", "-W", "-f=vmbackup/vmrestore ${Version} (Debian package victoria-metrics)",
              "victoria-metrics")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        # Relative to the repo when inside it: results are committed and must not name this machine.
        "workdir": _display_path(work),
        "filesystem": fs,
        "device": df[-1].split()[0] if len(df) > 1 else "?",
        "python": platform.python_version(),
        "snapferry": version("snapferry"),
        "vmrestore": vmv.splitlines()[0] if vmv else "?",
        "weed": cmd(str(WEED), "version").splitlines()[0] if WEED.exists() else "?",
        "drop_caches": can_drop,
        "loadavg": os.getloadavg(),
    }


def git_commit() -> str:
    """HEAD of the repository under test, with '+dirty' when src/ has uncommitted changes."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def snapferry_defaults() -> str:
    """The snapferry restore defaults in effect (src changes while the bench runs)."""
    import dataclasses

    from snapferry import api
    from snapferry.restorer.downloader import Tuning

    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(Tuning()).items() if k != "concurrency")
    return f"--concurrency {api.DEFAULT_CONCURRENCY}; Tuning({fields})"


# ----------------------------------------------------------------------------- main


def expand(spec: str) -> list[str]:
    want: list[str] = []
    for s in spec.split(","):
        s = s.strip()
        if not s:
            continue
        if s in ("d", "e", "f"):
            want += [f"{s}-fs", f"{s}-s3"]
        elif s == "grid":
            want += ["grid-fs", "grid-s3", "grid-proxy"]
        else:
            want.append(s)
    bad = [s for s in want if s not in ALL_IDS]
    if bad:
        raise SystemExit(f"unknown scenarios {bad}; choose from {ALL_IDS} (or d, e, f, grid)")
    return [s for s in ALL_IDS if s in want]  # fs first, s3 after, planner, grids last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=3.0, help="dataset size in GiB (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5, help="counted runs per tool (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted, verified runs per tool (default 1)")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"default {DEFAULT_SCENARIOS}")
    ap.add_argument("--workdir", type=Path, default=HERE / "work")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--fresh", action="store_true", help="discard earlier results in results.json")
    ap.add_argument("--profile", action="store_true", help="py-spy profiles of snapferry restores (then exit)")
    ap.add_argument("--profile-scenarios", default="a,b,c", help="restores to profile (a, b, c)")
    ap.add_argument("--grid", action="append",
                    help='a grid variant, e.g. --grid="--concurrency 4" (repeatable; --grid= is the defaults)')
    ap.add_argument("--proxy-delay-ms", type=float, default=20.0)
    ap.add_argument("--proxy-rate-mbps", type=float, default=100.0)
    ap.add_argument("--planner-parts", type=int, default=1_000_000)
    ap.add_argument("--keep-targets", action="store_true", help="keep restored trees at the end")
    args = ap.parse_args(argv)
    os.environ["PYTHONPATH"] = str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")

    bench = Bench(args)
    if not bench.can_drop:
        print("[warn] cannot drop the page cache: runs are warm-cache", flush=True)
    if args.profile:
        from .profile import run_profiles

        try:
            run_profiles(bench, args.profile_scenarios.split(","))
        finally:
            bench.close()
        return 0

    from .report import load_results, render, save_results

    args.results.mkdir(parents=True, exist_ok=True)
    store = load_results(args.results, args.scale, args.seed, fresh=args.fresh)
    store["machine"] = machine_info(bench.work, bench.can_drop)
    t_start = time.monotonic()
    try:
        for sid in expand(args.scenarios):
            t0 = time.monotonic()
            try:
                if sid == "planner":
                    res = bench.run_planner()
                else:
                    scn = bench.build(sid)
                    if scn is None:
                        continue
                    res = bench.run_scenario(scn)
                    if not args.keep_targets:
                        rmtree(bench.targets)
                        scn.cleanup()
            except (measure.CommandFailed, RuntimeError, AssertionError) as e:
                print(f"[{sid}] could not run: {e}", flush=True)
                res = {"id": sid, "title": sid, "rows": [], "error": str(e)[:2000],
                       "group": "grid" if sid.startswith("grid") else "main"}
            res["elapsed"] = time.monotonic() - t0
            old = store["scenarios"].get(sid)
            if old and old.get("rows") and res.get("rows"):  # keep earlier passes: noise is part of the result
                store.setdefault("previous", {}).setdefault(sid, []).append(
                    {k: old.get(k) for k in ("date", "load", "rows")})
            store["scenarios"][sid] = res
            big = bench._big.total_bytes if bench._big else store.get("settings", {}).get("bigfile_bytes")
            store["settings"] = {"scale": args.scale, "seed": args.seed, "runs": args.runs, "warmup": args.warmup,
                                 "dataset_bytes": bench.ds.total_bytes, "dataset_files": bench.ds.files,
                                 "bigfile_bytes": big, "snapferry_defaults": snapferry_defaults()}
            save_results(args.results, store)
    finally:
        bench.close()
    store["machine"]["loadavg_end"] = os.getloadavg()
    store["machine"]["bench_minutes"] = round((time.monotonic() - t_start) / 60, 1)
    store.setdefault("invocations", []).append({
        "date": store["machine"]["date"], "scenarios": args.scenarios, "runs": args.runs,
        "grid": args.grid, "minutes": store["machine"]["bench_minutes"],
        "load_start": store["machine"]["loadavg"][0], "load_end": store["machine"]["loadavg_end"][0],
        "commit": git_commit(),
    })
    save_results(args.results, store)
    table = render(args.results, store)
    print("\n" + table)
    return 0


def _display_path(path: Path) -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        return path.resolve().relative_to(repo).as_posix()
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
