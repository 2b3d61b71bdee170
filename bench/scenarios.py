"""The bench's scenarios: datasets, backups and servers they need, and the tools each one compares."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import measure
from .datagen import GIB, Dataset, ensure_bigfile, ensure_dataset, ensure_small
from .servers import BUCKET, Proxy, Weed, s3_env, write_creds
from .tools import (
    HERE,
    READ_FLOOR,
    WEED,
    Scenario,
    Tool,
    rmtree,
    sf_backup,
    sf_restore,
    sf_verify,
    sfrun,
    sh_cp,
    sh_read,
    vm_flags_s3,
    vmbackup,
    vmrestore,
)
from .verify import Verifier

SFRUN_FLAGS = ("--writers", "--block-size", "--no-zero-copy", "--defer-fsync", "--direct-min")

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


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.workdir.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.targets: Path = args.targets.resolve() if args.targets else self.work / "targets"
        self.targets.mkdir(parents=True, exist_ok=True)  # machine_info names its filesystem
        self.creds = write_creds(self.work / "creds")
        self.env = s3_env()
        self.weed: Weed | None = None
        self.proxy: Proxy | None = None
        self.results: dict[str, dict[str, object]] = {}
        self.can_drop = measure.check_drop_caches(self.work)
        self._ds: Dataset | None = None
        self._big: Dataset | None = None
        self._small: dict[int, Dataset] = {}
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

    def small(self, files: int | None = None) -> Dataset:
        """The many-small-files snapshot of scenario g and the cost curve (`--files` by default)."""
        n = files if files is not None else self.args.files
        if n not in self._small:
            self._small[n] = ensure_small(self.work, n, self.args.seed)
        return self._small[n]

    def fs_backup(self, ds: Dataset | None = None) -> Path:
        """The reference fs:// backup of a dataset (the main one by default; made once by snapferry, cached)."""
        ds = ds or self.ds
        root = self.work / "backups" / ds.key / "fs"
        stamp = root.parent / "fs.done"
        if not stamp.exists():
            rmtree(root)
            print(f"[setup] snapferry backup -> fs://{root}", flush=True)
            measure.run(sf_backup(ds, f"fs://{root}")(), self.logs / "setup" / f"fs-backup-{ds.key}", env=self.env)
            Verifier(ds).parts_fs(root)
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
        if sid in ("a", "b"):
            # The same restore without the default in-memory check of every byte: the ratio is its cost.
            t = target("snapferry-nocheck")
            tools.append(Tool("snapferry --no-checksums", sf_restore(url, t, [*sf_extra, "--no-checksums"]),
                              clean(t), lambda t=t: ver.tree(t), self.env))
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
            return self.full_backup_fs("e-fs", self.ds, "full backup, fs://")
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
            return self.full_backup_s3("e-s3", self.ds, "full backup, s3:// (SeaweedFS, loopback)")
        if sid == "v":
            return self._verify_scenario()
        if sid.startswith("grid-"):
            return self._grid(sid)
        raise SystemExit(f"unknown scenario {sid!r}")

    def full_backup_fs(self, sid: str, ds: Dataset, title: str) -> Scenario:
        """A full backup of ds to a fresh fs:// root: snapferry, vmbackup, cp -a + sync, read only."""
        ver = Verifier(ds)
        tools = []
        for name, kind in (("snapferry", "snapferry"), ("vmbackup", "peer"), ("cp", "floor")):
            root = self.targets / f"{sid}-backup-{name}"  # on the targets' filesystem (--targets)
            dst = f"fs://{root}"
            if name == "snapferry":
                argv = sf_backup(ds, dst)
            elif name == "vmbackup":
                argv = vmbackup(ds, dst)
            else:
                argv = lambda root=root: sh_cp(ds.snapshot, root)  # noqa: E731
            verify = (lambda root=root: ver.parts_fs(root)) if name != "cp" else (
                lambda root=root: ver.tree(root))
            label = {"snapferry": "snapferry", "vmbackup": "vmbackup 1.79.5", "cp": "cp -a + sync"}[name]
            tools.append(Tool(label, argv, lambda root=root: rmtree(root), verify, self.env, kind))
        tools.append(Tool(READ_FLOOR, lambda: sh_read(ds.snapshot), env=self.env, kind="floor"))

        def drop_backups() -> None:
            for n in ("snapferry", "vmbackup", "cp"):
                rmtree(self.targets / f"{sid}-backup-{n}")

        return Scenario(sid, title, ds.total_bytes, tools, cleanup=drop_backups)

    def full_backup_s3(self, sid: str, ds: Dataset, title: str) -> Scenario:
        """A full backup of ds to a fresh prefix in SeaweedFS: snapferry, vmbackup."""
        weed = self.start_weed()
        ver = Verifier(ds)
        tools = []
        for name, kind in (("snapferry", "snapferry"), ("vmbackup", "peer")):
            prefix = f"{ds.key}/{sid}-{name}"
            url = f"s3://{BUCKET}/{prefix}"

            def prep(prefix: str = prefix) -> None:
                if weed.delete_prefix(prefix):
                    weed.vacuum()

            if name == "snapferry":
                argv = sf_backup(ds, url, ["--custom-s3-endpoint", weed.endpoint])
            else:
                argv = vmbackup(ds, url, vm_flags_s3(weed.endpoint, self.creds))
            label = "snapferry" if name == "snapferry" else "vmbackup 1.79.5"
            tools.append(Tool(label, argv, prep, lambda prefix=prefix: ver.parts_s3(weed, prefix), self.env, kind))

        def drop_all() -> None:
            for n in ("snapferry", "vmbackup"):
                weed.delete_prefix(f"{ds.key}/{sid}-{n}")
            weed.vacuum()

        return Scenario(sid, title, ds.total_bytes, tools, watch=[weed.pid],
                        notes="old objects deleted and volumes vacuumed before each run", cleanup=drop_all)

    def _verify_scenario(self) -> Scenario:
        """verify of the reference s3:// backup, each mode, beside a full restore of the same bytes."""
        weed = self.start_weed()
        src = self.s3_backup(self.ds)
        ep = ["--custom-s3-endpoint", weed.endpoint]
        t = self.targets / "v-restore"
        tools = [
            Tool("verify --read-data", sf_verify(src, [*ep, "--read-data"]), env=self.env),
            Tool("snapferry restore", sf_restore(src, t, ep), lambda: rmtree(t), env=self.env, kind="peer"),
            Tool("verify (provider checksums)", sf_verify(src, ep), env=self.env, kind="floor"),
            Tool("verify --structure-only", sf_verify(src, [*ep, "--structure-only"]), env=self.env, kind="floor"),
        ]
        return Scenario("v", "verify, s3:// (SeaweedFS, loopback)", self.ds.total_bytes, tools, watch=[weed.pid],
                        notes="MB/s of the structure and provider rows count the backup's bytes, not bytes read",
                        cleanup=lambda: rmtree(t))

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
            argv = sfrun(src, t, args) if any(x in v for x in SFRUN_FLAGS) else sf_restore(src, t, args)
            tools.append(Tool(v or "defaults", argv, lambda t=t: rmtree(t), lambda t=t: ver.tree(t), self.env))
        env = dict(self.env)
        env["PYTHONPATH"] = str(HERE.parent)
        for t in tools:
            t.env = env
        return Scenario(sid, f"snapferry tuning grid, {where}", ds.total_bytes, tools, watch=watch, group="grid")
