"""Scenario x (issue 23): encrypted against unencrypted snapferry, in one run, alternating.

  x-backup-fs   full backup of the data set to fs://: snapferry | snapferry --encrypt
  x-restore-fs  full restore from fs://: snapferry | snapferry of the encrypted backup
  x-backup-s3   full backup to s3:// (SeaweedFS): snapferry | snapferry --encrypt
  x-restore-s3  full restore from s3://: snapferry | snapferry of the encrypted backup

The first row of each is the unencrypted run: the report's ratios (time, CPU) of the
second row against it are the cost of encryption (targets: at most 1.10x the time,
1.5x the CPU). Encrypted outputs are checked by `snapferry verify --read-data` with the
key (backups) and against the data set (restores).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import measure
from .scenarios import Bench
from .servers import BUCKET
from .tools import SNAPFERRY, Scenario, Tool, rmtree, sf_backup, sf_restore
from .verify import Verifier

X_IDS = ["x-backup-fs", "x-restore-fs", "x-backup-s3", "x-restore-s3"]


def key_file(bench: Bench) -> Path:
    key = bench.work / "bench-encryption.key"
    if not key.exists():
        subprocess.run([str(SNAPFERRY), "keygen", str(key)], check=True)
    return key


def _verify_encrypted(url: str, key: Path, extra: list[str], env: dict[str, str] | None) -> None:
    r = subprocess.run([str(SNAPFERRY), "verify", "--src", url, "--read-data", "--encryption-key-file", str(key),
                        "--progress", "off", *extra], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise AssertionError(f"the encrypted backup {url} does not verify: {r.stderr[-2000:]}")


def encrypted_backup(bench: Bench, url: str, extra: list[str], stamp: Path) -> str:
    """An encrypted backup of the data set at url, made once (cached by its stamp)."""
    if not stamp.exists():
        print(f"[setup] snapferry backup --encrypt -> {url}", flush=True)
        argv = sf_backup(bench.ds, url, ["--encrypt", "--encryption-key-file", str(key_file(bench)), *extra])()
        measure.run(argv, bench.logs / "setup" / f"x-backup-{stamp.stem}", env=bench.env)
        stamp.write_text("ok\n")
    return url


def build_x(bench: Bench, sid: str) -> Scenario:
    ds = bench.ds
    key = key_file(bench)
    enc = ["--encryption-key-file", str(key)]
    ver = Verifier(ds)
    s3 = sid.endswith("-s3")
    extra: list[str] = []
    watch: list[int] = []
    if s3:
        weed = bench.start_weed()
        extra, watch = ["--custom-s3-endpoint", weed.endpoint], [weed.pid]
    where = "s3:// (SeaweedFS, loopback)" if s3 else "fs://"
    if sid.startswith("x-backup"):
        tools = []
        for name in ("plain", "encrypted"):
            if s3:
                prefix = f"{ds.key}/{sid}-{name}"
                url = f"s3://{BUCKET}/{prefix}"

                def prepare(prefix: str = prefix) -> None:
                    if weed.delete_prefix(prefix):
                        weed.vacuum()
            else:
                root = bench.targets / f"{sid}-{name}"
                url = f"fs://{root}"
                prepare = lambda root=root: rmtree(root)  # noqa: E731
            if name == "plain":
                verify = (lambda url=url: ver.parts_s3(weed, url[len(f"s3://{BUCKET}/"):])) if s3 else (
                    lambda root=root: ver.parts_fs(root))
                tools.append(Tool("snapferry", sf_backup(ds, url, extra), prepare, verify, bench.env))
            else:
                tools.append(Tool("snapferry --encrypt", sf_backup(ds, url, ["--encrypt", *enc, *extra]), prepare,
                                  lambda url=url: _verify_encrypted(url, key, extra, bench.env), bench.env))
        return Scenario(sid, f"full backup, encrypted vs not, {where}", ds.total_bytes, tools, watch=watch,
                        notes="ratio of the encrypted row = the cost of encryption")
    if s3:
        plain = bench.s3_backup(ds)
        encrypted = encrypted_backup(bench, f"s3://{BUCKET}/{ds.key}/x-encrypted", extra,
                                     bench.work / "backups" / ds.key / "x-s3.done")
    else:
        plain = f"fs://{bench.fs_backup()}"
        root = bench.work / "backups" / ds.key / "x-fs"
        encrypted = encrypted_backup(bench, f"fs://{root}", [], root.parent / "x-fs.done")
    tools = []
    for name, url, more in (("snapferry", plain, []), ("snapferry encrypted", encrypted, enc)):
        t = bench.targets / f"{sid}-{name.replace(' ', '-')}"
        tools.append(Tool(name, sf_restore(url, t, [*extra, *more]), lambda t=t: rmtree(t),
                          lambda t=t: ver.tree(t), bench.env))
    return Scenario(sid, f"full restore, encrypted vs not, {where}", ds.total_bytes, tools, watch=watch,
                    notes="ratio of the encrypted row = the cost of decryption")
