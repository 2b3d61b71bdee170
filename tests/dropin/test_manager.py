"""vmbackupmanager command lines run by snapferry-vmbackupmanager: every command line of
its docs' examples (flag for flag, placeholders filled in) and the command lines the
VictoriaMetrics operator builds for its `vmbackuper` sidecar and `vmbackuper-restore`
init container, against a real victoria-metrics on fs:// and SeaweedFS.

There is no vmbackupmanager binary to compare with (it is enterprise-only): every
backup the manager leaves is restored by the real vmrestore of the database's version and
by snapferry-vmrestore, and the trees must agree.

Both run on VictoriaMetrics 1.79.5 and 1.145.0. The operator's argument lists run on fs://
and SeaweedFS with both versions; the docs' examples (the longer test) on fs:// and
SeaweedFS with 1.145.0 and on fs:// with 1.79.5, so every line runs on both versions.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.datagen import assert_same_tree
from tests.dropin.helpers import run_script, script
from tests.servers import S3Server, free_port
from tests.vm import NEW, OLD, VMServer, make_samples, require_binary

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

# docs/victoriametrics/vmbackupmanager.md, verbatim (the retention example breaks its line there).
RUN = ("./vmbackupmanager -dst=gs://vmstorage-data/$NODE_IP -credsFilePath=credentials.json "
       "-storageDataPath=/vmstorage-data -snapshot.createURL=$VMSTORAGE_ENDPOINT/snapshot/create "
       "-licenseFile=/path/to/vm-license")
RUN_WITH_RETENTION = ("./vmbackupmanager -dst=gs://vmstorage-data/$NODE_IP -credsFilePath=credentials.json "
                      "-storageDataPath=/vmstorage-data -snapshot.createURL=$VMSTORAGE_ENDPOINT/snapshot/create\n"
                      "-keepLastDaily=3 -licenseFile=/path/to/vm-license")
LOCK = "./vmbackupmanager backup lock daily/2021-02-13 -dst=<DST_PATH> -storageDataPath=/vmstorage-data"
LIST = "./vmbackupmanager backup list -dst=<DST_PATH> -storageDataPath=/vmstorage-data"
UNLOCK = "./vmbackupmanager backup unlock daily/2021-02-13 -dst=<DST_PATH> -storageDataPath=/vmstorage-data"
LIST_PLAIN = "$ ./vmbackupmanager backup list"
RESTORE_CREATE = "$ ./vmbackupmanager restore create daily/2022-10-06"
RESTORE_GET = "$ ./vmbackupmanager restore get"
RESTORE_DELETE = "$ ./vmbackupmanager restore delete"
RESTORE = ("$ /vmbackupmanager-prod restore -dst=gs://vmstorage-data/$NODE_IP -credsFilePath=credentials.json "
           "-storageDataPath=/vmstorage-data")
RESTORE_CREATE_URL = "$ /vmbackupmanager-prod restore create azblob://test1/vmbackupmanager/weekly/2025-17"
RESTORE_NO_DST = "$ /vmbackupmanager-prod restore -credsFilePath=credentials.json -storageDataPath=/vmstorage-data"

NODE_IP = "192.168.0.10"  # the docs' `export NODE_IP=192.168.0.10`


@dataclass
class Env:
    vm: VMServer
    storage: Path
    work: Path
    base: str  # stands for gs://vmstorage-data
    creds: str
    extra: list[str]  # the remote's connection flags (SeaweedFS), none for fs://
    version: str  # of victoria-metrics and the vmrestore compared with

    @property
    def dst(self) -> str:
        return f"{self.base}/{NODE_IP}"

    def args(self, line: str, *, connect: bool = True, **fill: str) -> list[str]:
        """The docs' line filled in; with `connect`, the remote's connection flags appended."""
        for placeholder, value in {
            "gs://vmstorage-data": self.base,
            "$NODE_IP": NODE_IP,
            "$VMSTORAGE_ENDPOINT": self.vm.url,
            "credentials.json": self.creds,
            "/vmstorage-data": str(self.storage),
            "<DST_PATH>": self.dst,
            **fill,
        }.items():
            line = line.replace(placeholder, value)
        words = shlex.split(line.removeprefix("$ "))
        assert words[0].endswith("vmbackupmanager") or words[0].endswith("vmbackupmanager-prod"), words
        return [*words[1:], *(self.extra if connect else [])]

    def manager(self, line: str, *, env: dict[str, str] | None = None, **fill: str) -> str:
        return run_script("vmbackupmanager", self.args(line, **fill), env=env).stdout


def _fs_creds(work: Path) -> str:
    path = work / "credentials.json"  # a service-account file as in the docs; fs:// reads no credentials
    path.write_text(json.dumps({"type": "service_account", "project_id": "p"}))
    return str(path)


def _envs(*pairs: tuple[str, str]) -> pytest.MarkDecorator:
    """Run a test with the `env` of each (version, remote)."""
    return pytest.mark.parametrize("env", pairs, indirect=True, ids=lambda p: "-".join(p))


@pytest.fixture
def env(request: pytest.FixtureRequest, vm_server: Callable[..., VMServer], tmp_path: Path) -> Env:
    version, remote = request.param
    storage = tmp_path / "vmstorage-data"
    vm = vm_server(storage, version=version)
    vm.ingest(make_samples(seed=71, series=3, per_series=200))
    vm.force_flush()
    if remote == "fs":
        (tmp_path / "remote").mkdir()
        return Env(vm, storage, tmp_path, f"fs://{tmp_path / 'remote'}", _fs_creds(tmp_path), [], version)
    s3: S3Server = request.getfixturevalue("seaweedfs")
    assert s3.options.creds_file_path and s3.options.config_file_path
    return Env(vm, storage, tmp_path, f"s3://{s3.new_bucket()}", s3.options.creds_file_path,
               [f"-customS3Endpoint={s3.endpoint}", f"-configFilePath={s3.options.config_file_path}",
                f"-credsFilePath={s3.options.creds_file_path}"], version)


def _listing(env: Env, dst: str) -> list[dict[str, object]]:
    out = run_script("vmbackupmanager", ["backup", "list", f"-dst={dst}", f"-credsFilePath={env.creds}",
                                         *env.extra]).stdout
    data = json.loads(out)
    assert isinstance(data, list)
    return data


def _complete(listing: list[dict[str, object]]) -> set[str]:
    return {str(b["name"]) for b in listing if b.get("state") == "complete"}


def serve_until_backed_up(env: Env, args: list[str], dst: str, *, extra_env: dict[str, str] | None = None,
                          ) -> tuple[set[str], str]:
    """Run the manager service (the command line as given) until its first run is over and
    latest/ and a dated backup of every enabled type are complete, then stop it with SIGTERM,
    as Kubernetes does."""
    import os

    log = env.work / f"manager-{free_port()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([script("vmbackupmanager"), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(extra_env or {})})
    try:
        wanted = {"latest", "daily", "weekly", "monthly"}
        done: set[str] = set()
        while proc.poll() is None:
            text = log.read_text()
            done = _complete(_listing(env, dst))
            # the run is over once the manager says when the next one is due
            if wanted <= {n.split("/")[0] for n in done} and "next backup run at" in text:
                break
            # a failed run waits for the next period: fail now rather than wait with it
            assert '"level": "error"' not in text and " ERROR " not in text, text[-3000:]
            time.sleep(0.5)
        assert proc.poll() is None, f"the manager exited {proc.returncode}:\n{log.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return done, log.read_text()


def restore_both_ways(env: Env, backup_url: str, name: str) -> Path:
    """Restore a backup with the real vmrestore and with snapferry-vmrestore: the same tree."""
    ours, theirs = env.work / f"ours-{name}", env.work / f"theirs-{name}"
    flags = [*env.extra, f"-credsFilePath={env.creds}", f"-httpListenAddr=127.0.0.1:{free_port()}"]
    if env.base.startswith("fs://"):
        flags = [f"-httpListenAddr=127.0.0.1:{free_port()}"]
    run_script("vmrestore", [f"-src={backup_url}", f"-storageDataPath={ours}", *flags])
    p = subprocess.run([require_binary("vmrestore", env.version), f"-src={backup_url}", f"-storageDataPath={theirs}",
                        *flags[:-1], f"-httpListenAddr=127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert_same_tree(ours, theirs)
    return ours


@_envs((NEW, "fs"), (NEW, "s3"), (OLD, "fs"))
def test_vmbackupmanager_docs_examples(env: Env) -> None:
    # The service, as the docs start it (plus -runOnStart so the first run comes now, and a
    # free -httpListenAddr on loopback: both test-only).
    test_only = ["-runOnStart", f"-httpListenAddr=127.0.0.1:{free_port()}"]
    done, log = serve_until_backed_up(env, [*env.args(RUN), *test_only], env.dst)
    assert "-licenseFile is accepted and ignored" in log
    assert env.vm.snapshot_list() == []
    daily = next(n for n in done if n.startswith("daily/"))
    weekly = next(n for n in done if n.startswith("weekly/"))
    for name in ("latest", daily, weekly):
        restore_both_ways(env, f"{env.dst}/{name}", name.replace("/", "-"))

    # The retention example: a second run keeps the daily backup (one of at most 3).
    done2, log2 = serve_until_backed_up(env, [*env.args(RUN_WITH_RETENTION), *test_only], env.dst)
    assert "--keep-last-daily 3" in log2
    assert daily in done2

    # Lock, list, unlock (the docs' daily/2021-02-13 stands for a daily backup that exists).
    locked = json.loads(env.manager(LOCK, **{"daily/2021-02-13": daily}))
    assert locked["name"] == daily and locked["locked"] is True
    listed = {b["name"]: b for b in json.loads(env.manager(LIST))}
    assert listed[daily]["locked"] is True and listed["latest"]["state"] == "complete"
    json.loads(env.manager(UNLOCK, **{"daily/2021-02-13": daily}))
    assert {b["name"]: b for b in json.loads(env.manager(LIST))}[daily]["locked"] is False

    # The commands that ask vmbackupmanager's API take -dst and -storageDataPath from the
    # sidecar's environment here (SNAPFERRY_DST, SNAPFERRY_STORAGE_DATA_PATH).
    target = env.work / "restore-target"
    target.mkdir()
    sidecar = {"SNAPFERRY_DST": env.dst, "SNAPFERRY_STORAGE_DATA_PATH": str(target)}
    if env.extra:
        sidecar |= {"SNAPFERRY_CUSTOM_S3_ENDPOINT": env.extra[0].split("=", 1)[1],
                    "SNAPFERRY_CREDS_FILE_PATH": env.creds,
                    "SNAPFERRY_CONFIG_FILE_PATH": env.extra[1].split("=", 1)[1]}
    assert daily in {b["name"] for b in json.loads(
        run_script("vmbackupmanager", env.args(LIST_PLAIN, connect=False), env=sidecar).stdout)}
    no_flags = {"env": sidecar}
    run_script("vmbackupmanager", env.args(RESTORE_CREATE, **{"daily/2022-10-06": daily}, connect=False),
               **no_flags)
    # the mark holds the full URL, as vmbackupmanager's: the init container needs no -dst
    assert json.loads(run_script("vmbackupmanager", ["restore", "get"], **no_flags).stdout) == {
        "backup": f"{env.dst}/{daily}"}
    run_script("vmbackupmanager", env.args(RESTORE_DELETE, connect=False), **no_flags)
    assert json.loads(run_script("vmbackupmanager", env.args(RESTORE_GET, connect=False),
                                 **no_flags).stdout) == {}

    # Mark, then restore as the docs run it (the database is stopped: a fresh data path).
    run_script("vmbackupmanager", ["restore", "create", daily], **no_flags)
    env.manager(RESTORE, **{"/vmstorage-data": str(target)})
    assert not (target / "backup_restore.ignore").exists()
    assert_same_tree(target, env.work / f"ours-{daily.replace('/', '-')}")

    # A full backup URL as the mark (restore another node's backup), then restore without -dst.
    target2 = env.work / "restore-target-2"
    target2.mkdir()
    by_url = {"env": {**sidecar, "SNAPFERRY_STORAGE_DATA_PATH": str(target2)}}
    run_script("vmbackupmanager", env.args(RESTORE_CREATE_URL, **{
        "azblob://test1/vmbackupmanager/weekly/2025-17": f"{env.dst}/{weekly}"}, connect=False),
        **by_url)
    env.manager(RESTORE_NO_DST, **{"/vmstorage-data": str(target2)})
    assert not (target2 / "backup_restore.ignore").exists()
    assert_same_tree(target2, env.work / f"ours-{weekly.replace('/', '-')}")


def _operator_args(*, storage: Path, dst: str, port: int, creds: str, extra_args: dict[str, str],
                   endpoint: str | None, with_envs: bool) -> list[str]:
    """internal/controller/operator/factory/build/backup.go, VMBackupManager(): the same
    flags in the same order (sorted), for a VMBackup spec with logLevel INFO, logFormat json,
    concurrency 2, disableHourly, a credentialsSecret, customS3Endpoint and extraArgs."""
    args = [
        f"-storageDataPath={storage}",
        f"-dst={dst}",
        f"-snapshot.createURL=http://localhost:{port}/snapshot/create",
        f"-snapshot.deleteURL=http://localhost:{port}/snapshot/delete",
        "-eula",
        "-loggerLevel=INFO",
        "-loggerFormat=json",
        *(f"-{k}={v}" for k, v in extra_args.items()),
        "-concurrency=2",
    ]
    if endpoint:
        args.append(f"-customS3Endpoint={endpoint}")
    args.append("-disableHourly")
    args.append(f"-credsFilePath={creds}")
    if with_envs:
        args.append("-envflag.enable=true")
    return sorted(args)


def _operator_restore_args(*, storage: Path, creds: str, extra_args: dict[str, str], endpoint: str | None,
                           with_envs: bool) -> list[str]:
    """VMRestore(): `restore` followed by the sorted flags."""
    args = [f"-storageDataPath={storage}", "-eula", "-loggerLevel=INFO", "-loggerFormat=json",
            *(f"-{k}={v}" for k, v in extra_args.items()), "-concurrency=2"]
    if endpoint:
        args.append(f"-customS3Endpoint={endpoint}")
    args.append(f"-credsFilePath={creds}")
    if with_envs:
        args.append("-envflag.enable=true")
    return ["restore", *sorted(args)]


@_envs((NEW, "fs"), (NEW, "s3"), (OLD, "fs"), (OLD, "s3"))
def test_operator_sidecar_and_restore_init_container(env: Env, vm_server: Callable[..., VMServer]) -> None:
    endpoint = env.extra[0].split("=", 1)[1] if env.extra else None
    # The extra env of the VMBackup spec: the AWS config file through -envflag.enable (for
    # fs:// any flag will do). Kubernetes expands $(POD_NAME) in the cluster destination.
    extra_envs = ({"configFilePath": env.extra[1].split("=", 1)[1]} if env.extra
                  else {"backupScheduleTimezone": "UTC"})
    dst = env.base.rstrip("/") + "/$(POD_NAME)/"
    pod_dst = dst.replace("$(POD_NAME)", "vmstorage-0")
    extra_args = {"runOnStart": "true", "httpListenAddr": f"127.0.0.1:{free_port()}"}
    sidecar = _operator_args(storage=env.storage, dst=pod_dst, port=env.vm.port, creds=env.creds,
                             extra_args=extra_args, endpoint=endpoint, with_envs=True)
    done, log = serve_until_backed_up(env, sidecar, pod_dst.rstrip("/"), extra_env=extra_envs)
    assert not any(n.startswith("hourly/") for n in done)  # -disableHourly
    assert env.vm.snapshot_list() == []  # -snapshot.deleteURL (a base URL) deleted each snapshot
    assert '"level": "info"' in log  # -loggerFormat=json
    latest_url = f"{pod_dst.rstrip('/')}/latest"
    expected = restore_both_ways(env, latest_url, "operator-latest")

    # The init container: no restore mark, exit 0 at once; with one, restore, then no mark.
    target = env.work / "pod-data"
    target.mkdir()
    init = _operator_restore_args(storage=target, creds=env.creds, extra_args=extra_args, endpoint=endpoint,
                                  with_envs=True)
    run_script("vmbackupmanager", init, env=extra_envs)
    assert list(target.iterdir()) == []
    # (in the sidecar, which knows -dst: snapferry's manager reads the remote options through it)
    run_script("vmbackupmanager", ["restore", "create", latest_url, f"-storageDataPath={target}", f"-dst={pod_dst}",
                                   *env.extra, f"-credsFilePath={env.creds}"])
    run_script("vmbackupmanager", init, env=extra_envs)
    assert not (target / "backup_restore.ignore").exists()
    assert_same_tree(target, expected)
    # The pod's database of that version starts on the restored volume with every series.
    want = env.vm.export('{__name__="snapferry_test"}')
    env.vm.stop()
    assert vm_server(target, version=env.version).export('{__name__="snapferry_test"}') == want
