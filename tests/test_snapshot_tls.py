"""The snapshot API over TLS: a real victoria-metrics started with -tls and a test CA's
certificate (tests/tlsca.py), on 1.79.5 and 1.145.0; client certificates against socat as an
mTLS front, since neither open-source victoria-metrics has -mtls (an enterprise flag)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE
from snapferry.snapshot import SnapshotTLS
from tests.servers import die_with_parent, free_port
from tests.tlsca import TestCA
from tests.vm import NEW, VMServer, run_snapferry, run_vmbackup, snapferry_command

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]


def tls_vm(vm_server: Callable[..., VMServer], tmp_path: Path, ca: TestCA, version: str) -> VMServer:
    """A victoria-metrics whose certificate names only `vm.test` (not 127.0.0.1), signed by `ca`."""
    cert, key = ca.issue("vm", dns=("vm.test",), ip=False)
    vm = vm_server(tmp_path / "vmdata", "-tls", f"-tlsCertFile={cert}", f"-tlsKeyFile={key}", version=version)
    assert vm.url.startswith("https://")
    vm.import_prometheus('up{job="tls"} 1\n')
    vm.force_flush()
    return vm


def backup(vm: VMServer, dst: Path, *tls: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_snapferry("backup", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                         url or vm.snapshot_create_url, "--dst", f"fs://{dst}", "--progress", "off", *tls,
                         check=False)


def one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and lines, proc.stderr
    for w in words:
        assert w in lines[-1], (w, lines[-1])
    return lines[-1]


def test_snapshot_calls_honour_the_ca_file_and_the_server_name(
        vm_server: Callable[..., VMServer], vm_version: str, tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    vm = tls_vm(vm_server, tmp_path, ca, vm_version)
    # the system's CAs do not know the test CA: one sentence naming the URL and the flag to set
    msg = one_line(backup(vm, tmp_path / "b0"), 1, vm.url, "--snapshot-tls-ca-file", "-snapshot.tlsCAFile")
    assert "not trust" in msg
    # the CA is right but the certificate names vm.test, not 127.0.0.1
    one_line(backup(vm, tmp_path / "b1", "--snapshot-tls-ca-file", str(ca.ca_file)), 1, vm.url,
             "--snapshot-tls-server-name")
    assert vm.snapshot_list() == []  # nothing was created by the refused runs
    ok = backup(vm, tmp_path / "b2", "--snapshot-tls-ca-file", str(ca.ca_file), "--snapshot-tls-server-name",
                "vm.test")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "b2" / BACKUP_COMPLETE_FILE).exists()
    skip = backup(vm, tmp_path / "b3", "--snapshot-tls-insecure-skip-verify")
    assert skip.returncode == 0, skip.stderr
    assert vm.snapshot_list() == []  # each run deleted its snapshot over TLS too
    # another CA's file: refused as untrusted
    other = TestCA(tmp_path / "other", "another CA")
    one_line(backup(vm, tmp_path / "b4", "--snapshot-tls-ca-file", str(other.ca_file), "--snapshot-tls-server-name",
                    "vm.test"), 1, "not trust")


def test_the_dropin_flags_and_the_manager(vm_server: Callable[..., VMServer], vm_version: str,
                                          tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    vm = tls_vm(vm_server, tmp_path, ca, vm_version)
    exe = [*snapferry_command(), "vmbackup"]
    proc = subprocess.run([*exe, f"-storageDataPath={vm.storage_data_path}",
                           f"-snapshot.createURL={vm.snapshot_create_url}", f"-snapshot.tlsCAFile={ca.ca_file}",
                           "-snapshot.tlsServerName=vm.test", f"-dst=fs://{tmp_path / 'dropin'}",
                           f"-httpListenAddr=127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "ignored" not in proc.stderr or "snapshot.tls" not in proc.stderr, proc.stderr
    assert (tmp_path / "dropin" / BACKUP_COMPLETE_FILE).exists()
    if vm_version == NEW:  # the real vmbackup 1.145.0 reads the same flags the same way (1.79.5 has none)
        real = run_vmbackup(vm.storage_data_path, "", tmp_path / "real", version=NEW, extra_args=[
            f"-snapshot.createURL={vm.snapshot_create_url}", f"-snapshot.tlsCAFile={ca.ca_file}",
            "-snapshot.tlsServerName=vm.test"], check=False)
        assert real.returncode == 0, real.stderr[-2000:]
        assert vm.snapshot_list() == []
    config = ManagerConfig(storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url,
                           dst=f"fs://{tmp_path / 'mgr'}",
                           snapshot_tls=SnapshotTLS(ca_file=str(ca.ca_file), server_name="vm.test"))
    mgr = Manager(config)
    try:
        res = mgr.run_once()
    finally:
        mgr.close()
    assert res.ok, res
    assert (tmp_path / "mgr" / "latest" / BACKUP_COMPLETE_FILE).exists()
    assert vm.snapshot_list() == []
    # and the manager without the CA fails its run naming the flag, leaving no snapshot
    mgr = Manager(ManagerConfig(storage_data_path=str(vm.storage_data_path),
                                snapshot_create_url=vm.snapshot_create_url, dst=f"fs://{tmp_path / 'mgr'}"))
    try:
        res = mgr.run_once()
    finally:
        mgr.close()
    assert not res.ok and res.error is not None and "--snapshot-tls-ca-file" in res.error
    assert vm.snapshot_list() == []


@pytest.fixture
def mtls_front(tmp_path: Path) -> Iterator[Callable[[int, Path, Path, Path], int]]:
    """socat as a TLS front that demands a client certificate signed by a CA file; forwards to a port."""
    procs: list[subprocess.Popen[bytes]] = []
    socat = shutil.which("socat")
    assert socat, "socat is missing; run scripts/setup.sh"

    def start(upstream: int, cert: Path, key: Path, ca_file: Path) -> int:
        port = free_port()
        procs.append(subprocess.Popen(
            [socat, f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},"
                    f"cafile={ca_file},verify=1", f"TCP:127.0.0.1:{upstream}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("socat did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def test_a_client_certificate_for_an_mtls_front(vm_server: Callable[..., VMServer], mtls_front: Callable[
        [int, Path, Path, Path], int], tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    vm = vm_server(tmp_path / "vmdata")
    vm.import_prometheus('up{job="mtls"} 1\n')
    vm.force_flush()
    server_cert, server_key = ca.issue("front")
    port = mtls_front(vm.port, server_cert, server_key, ca.ca_file)
    url = f"https://127.0.0.1:{port}/snapshot/create"
    client_cert, client_key = ca.issue("client", ip=False, client=True)
    one_line(backup(vm, tmp_path / "b0", "--snapshot-tls-ca-file", str(ca.ca_file), url=url), 1,
             f"127.0.0.1:{port}", "--snapshot-tls-cert-file")
    stranger = TestCA(tmp_path / "stranger", "stranger CA")
    bad_cert, bad_key = stranger.issue("client", ip=False, client=True)
    one_line(backup(vm, tmp_path / "b1", "--snapshot-tls-ca-file", str(ca.ca_file), "--snapshot-tls-cert-file",
                    str(bad_cert), "--snapshot-tls-key-file", str(bad_key), url=url), 1, f"127.0.0.1:{port}")
    assert vm.snapshot_list() == []
    ok = backup(vm, tmp_path / "b2", "--snapshot-tls-ca-file", str(ca.ca_file), "--snapshot-tls-cert-file",
                str(client_cert), "--snapshot-tls-key-file", str(client_key), url=url)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "b2" / BACKUP_COMPLETE_FILE).exists()
    assert vm.snapshot_list() == []


def test_tls_settings_that_cannot_work_stop_the_run_at_start(vm_server: Callable[..., VMServer],
                                                             tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    cert, _key = ca.issue("client", client=True)
    vm = vm_server(tmp_path / "vmdata")
    https = f"https://127.0.0.1:{vm.port}/snapshot/create"
    one_line(backup(vm, tmp_path / "b", "--snapshot-tls-ca-file", str(tmp_path / "nope.pem"), url=https), 2,
             "--snapshot-tls-ca-file", "nope.pem")
    one_line(backup(vm, tmp_path / "b", "--snapshot-tls-cert-file", str(cert), url=https), 2,
             "--snapshot-tls-key-file")
    one_line(backup(vm, tmp_path / "b", "--snapshot-tls-cert-file", str(cert), "--snapshot-tls-key-file",
                    str(ca.ca_file), url=https), 2, "--snapshot-tls-cert-file")
    one_line(backup(vm, tmp_path / "b", "--snapshot-tls-ca-file", str(ca.ca_file)), 2, "not https://",
             "--snapshot-tls-ca-file")
    one_line(run_snapferry("manager", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                           https, "--dst", f"fs://{tmp_path / 'm'}", "--snapshot-tls-ca-file",
                           str(tmp_path / "nope.pem"), check=False), 2, "--snapshot-tls-ca-file")
    assert vm.snapshot_list() == [] and not (tmp_path / "b").exists()
    assert json.loads(vm.request("/snapshot/list"))["status"] == "ok"


def test_the_dropin_manager_takes_the_snapshot_tls_flags(vm_server: Callable[..., VMServer], tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    vm = tls_vm(vm_server, tmp_path, ca, NEW)
    backups = tmp_path / "backups"
    proc = subprocess.Popen(
        [*snapferry_command(), "vmbackupmanager", f"-storageDataPath={vm.storage_data_path}",
         f"-snapshot.createURL={vm.snapshot_create_url}", f"-snapshot.tlsCAFile={ca.ca_file}",
         "-snapshot.tlsServerName=vm.test", f"-dst=fs://{backups}", "-runOnStart", "-disableScheduledBackups",
         f"-httpListenAddr=127.0.0.1:{free_port()}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (backups / "latest" / BACKUP_COMPLETE_FILE).exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the manager's first run did not finish"
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 60
        while vm.snapshot_list() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert vm.snapshot_list() == [], err
    assert "snapshot.tls" not in err or "ignored" not in err, err
