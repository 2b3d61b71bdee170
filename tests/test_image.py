"""The image runs the VictoriaMetrics operator's argument lists as they are.

The operator (internal/controller/operator/factory/build/backup.go) gives the backup sidecar
of a VMSingle, and of each vmstorage pod of a VMCluster, a sorted list of `-flag=value`
arguments and no -httpListenAddr, then probes /health at the pod's IP, port 8300; its
restore init container gets `restore` and the same kind of list, without -dst. Here each
list runs in the image (podman, host network: the host's address stands for the pod's) against
a real victoria-metrics and SeaweedFS, with the data directory bind-mounted as the pod's volume:
the sidecar answers /health on :8300 of a non-loopback address, its first run makes latest/ and
the dated backups, a restore mark is made through its API, and the init container restores the
marked backup into an empty volume that a second victoria-metrics serves with the same series.

There is no vmstorage binary here (Debian packages the single-node server only): the
vmstorage pod's list runs against a victoria-metrics, which serves the same snapshot API; what
differs is the list itself (its data path, the /$(POD_NAME)/ suffix of the destination).

Port 8300 is the operator's and so fixed: the sidecars run one at a time, and a port already
taken fails the test naming it (nothing in the suite binds 8300 on the host otherwise: every
other manager test passes -httpListenAddr=127.0.0.1:<free port>).
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container import Podman
from tests.servers import S3Server, unique_name
from tests.vm import NEW, OLD, VMServer, make_samples

OPERATOR_PORT = 8300
CREDS_DIR = "/etc/vm/creds"  # vmBackuperCreds
SECRETS_DIR = "/etc/vm/secrets"  # vmv1beta1.SecretsDir, where a license keyRef is mounted
# extraArgs of the VMBackup spec, as docs/kubernetes.md shows them (retention, a run at start).
EXTRA_ARGS = {"runOnStart": "true", "keepLastHourly": "24", "keepLastDaily": "7"}
# The restricted securityContext of deploy/kubernetes and docs/kubernetes.md: a read-only root
# filesystem, no capabilities, no privilege escalation.
RESTRICTED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges")


@dataclass(frozen=True)
class Pod:
    """What differs between a VMSingle and a vmstorage pod of a VMCluster."""

    kind: str
    storage: str  # the data volume's mount path
    pod_name: str
    cluster: bool  # the operator appends /$(POD_NAME)/ to a cluster's destination

    def destination(self, bucket: str) -> str:
        base = f"s3://{bucket}/{self.kind}"
        # Kubernetes expands $(POD_NAME) from the env the operator sets; podman does not.
        return base.rstrip("/") + f"/{self.pod_name}/" if self.cluster else base


VMSINGLE = Pod("vmsingle", "/victoria-metrics-data", "vmsingle-db-0", cluster=False)
VMSTORAGE = Pod("vmstorage", "/vm-data", "vmstorage-db-0", cluster=True)


def sidecar_args(pod: Pod, *, dst: str, vm_port: int, endpoint: str) -> list[str]:
    """VMBackupManager(): as built for a spec with acceptEULA, a license (key and keyRef),
    extraArgs, customS3Endpoint and credentialsSecret {name: s3-creds, key: credentials}."""
    args = [
        f"-storageDataPath={pod.storage}",
        f"-dst={dst}",
        f"-snapshot.createURL=http://localhost:{vm_port}/snapshot/create",
        f"-snapshot.deleteURL=http://localhost:{vm_port}/snapshot/delete",
        "-eula",
        *(f"-{k}={v}" for k, v in EXTRA_ARGS.items()),
        f"-customS3Endpoint={endpoint}",
        f"-credsFilePath={CREDS_DIR}/credentials",
        "-license=LICENSE-KEY",
        f"-licenseFile={SECRETS_DIR}/vm-license/key",
    ]
    return sorted(args)


def restore_args(pod: Pod, *, endpoint: str) -> list[str]:
    """VMRestore(): `restore` and the sorted flags; no -dst (the mark says where)."""
    args = [f"-storageDataPath={pod.storage}", "-eula", *(f"-{k}={v}" for k, v in EXTRA_ARGS.items()),
            f"-customS3Endpoint={endpoint}", f"-credsFilePath={CREDS_DIR}/credentials"]
    return ["restore", *sorted(args)]


def pod_address() -> str:
    """The host's non-loopback address: with host networking, the pod IP the kubelet probes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        addr = str(s.getsockname()[0])
    assert not addr.startswith("127."), f"no address but loopback to probe ({addr})"
    return addr


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def http(url: str, data: dict[str, object] | None = None, method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def wait_for(what: str, check: Callable[[], bool], logs: Callable[[], str], timeout: float = 240) -> None:
    """Poll until `check` holds; give up (with the container's log) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached; the container's log:\n{logs()[-4000:]}")
        time.sleep(0.5)


def complete_backups(api: str) -> set[str]:
    try:
        status, body = http(f"{api}/api/v1/backups")
    except OSError:
        return set()
    return {b["name"] for b in json.loads(body) if b.get("state") == "complete"} if status == 200 else set()


def run_operator_pod(pod: Pod, version: str, pm: Podman, image: str, s3: S3Server,
                     vm_server: Callable[..., VMServer], tmp: Path) -> None:
    samples = make_samples(seed=sum(map(ord, pod.kind)), series=6, per_series=200)  # fixed per pod kind
    volume = tmp / f"{pod.kind}-volume"
    vm = vm_server(volume, version=version)
    vm.ingest(samples)
    vm.force_flush()
    assert vm.export() == samples

    creds = tmp / "creds"
    creds.mkdir(exist_ok=True)
    assert s3.options.creds_file_path
    shutil.copy(s3.options.creds_file_path, creds / "credentials")
    creds.chmod(0o755)
    (creds / "credentials").chmod(0o644)
    bucket = s3.new_bucket()
    dst = pod.destination(bucket)
    assert port_free(OPERATOR_PORT), f"port {OPERATOR_PORT} (the operator's) is taken on this host: free it"

    name = unique_name(f"snapferry-{pod.kind}")
    # The pod's containers share one user (its securityContext): here the database runs as
    # root on the host, so the sidecar runs as root too.
    pm.run("run", "--detach", "--name", name, "--network=host", "--user=0:0", *RESTRICTED,
           "-e", f"POD_NAME={pod.pod_name}",
           "-v", f"{volume}:{pod.storage}", "-v", f"{creds}:{CREDS_DIR}:ro", image,
           *sidecar_args(pod, dst=dst, vm_port=vm.port, endpoint=s3.endpoint))
    api = f"http://{pod_address()}:{OPERATOR_PORT}"

    def logs() -> str:
        p = pm.run("logs", name, check=False)
        return p.stdout + p.stderr

    try:
        wait_for("/health on the pod address", lambda: _healthy(api), logs)
        wait_for("latest/ and the dated backups",
                 lambda: {"latest", "hourly", "daily", "weekly", "monthly"}
                 <= {n.split("/")[0] for n in complete_backups(api)}, logs)
        names = complete_backups(api)
        daily = next(n for n in sorted(names) if n.startswith("daily/"))
        keys = s3.client().list_objects_v2(Bucket=bucket, Prefix=dst.split("/", 3)[3])
        stored = {o["Key"] for o in keys.get("Contents", [])}
        prefix = dst.split("/", 3)[3].rstrip("/")
        assert f"{prefix}/latest/backup_complete.ignore" in stored
        assert f"{prefix}/{daily}/backup_complete.ignore" in stored
        assert vm.snapshot_list() == []  # -snapshot.deleteURL removed the run's snapshot

        status, metrics = http(f"{api}/metrics")
        assert status == 200 and b"vm_backup_last_success_at" in metrics
        assert b"LICENSE-KEY" not in metrics  # the license flags are accepted, never shown

        status, body = http(f"{api}/api/v1/restore", {"backup": daily}, "POST")
        assert status in (200, 201), body
    finally:
        stopped = pm.run("stop", "--time=60", name, check=False)
        code = pm.run("inspect", "--format", "{{.State.ExitCode}}", name, check=False).stdout.strip()
        log = logs()
        pm.run("rm", "--force", name, check=False)
    assert stopped.returncode == 0 and code == "0", f"the sidecar stopped with {code}:\n{log[-3000:]}"
    assert "LICENSE-KEY" not in log
    vm.stop()

    # The init container on a new, empty volume (a pod rescheduled with a fresh claim): the
    # mark the API wrote is all it gets; it runs as the image's own non-root user.
    mark = volume / "backup_restore.ignore"
    # the mark names the backup in full, as vmbackupmanager's do: the init container has no -dst
    assert mark.read_text().strip() == f"{dst.rstrip('/')}/{daily}"
    target = tmp / f"{pod.kind}-new-volume"
    target.mkdir()
    shutil.copy(mark, target / mark.name)
    shutil.chown(target, 1000, 1000)
    shutil.chown(target / mark.name, 1000, 1000)
    p = pm.run("run", "--rm", "--network=host", *RESTRICTED, "-v", f"{target}:{pod.storage}",
               "-v", f"{creds}:{CREDS_DIR}:ro", image, *restore_args(pod, endpoint=s3.endpoint), check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert not (target / mark.name).exists()  # done: the next start restores nothing
    restored = vm_server(target, version=version)
    assert restored.export() == samples


def _healthy(api: str) -> bool:
    try:
        return http(f"{api}/health")[0] == 200
    except OSError:
        return False


@pytest.mark.vm
@pytest.mark.parametrize(("pod", "version"), [(VMSINGLE, NEW), (VMSTORAGE, NEW), (VMSINGLE, OLD)],
                         ids=["vmsingle-1.145.0", "vmstorage-1.145.0", "vmsingle-1.79.5"])
def test_the_image_runs_the_operators_sidecar_and_restore_init_container(
        pod: Pod, version: str, image: tuple[Podman, str], seaweedfs: S3Server,
        vm_server: Callable[..., VMServer], tmp_path: Path) -> None:
    pm, ref = image
    run_operator_pod(pod, version, pm, ref, seaweedfs, vm_server, tmp_path)


def test_the_image_has_the_entrypoint_commands_labels_and_a_non_root_user(image: tuple[Podman, str]) -> None:
    pm, ref = image
    info = json.loads(pm.run("image", "inspect", ref).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["snapferry-vmbackupmanager"]
    assert config["User"] not in ("", "0", "root", "0:0")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] and labels["org.opencontainers.image.source"]
    for tool in ("snapferry", "snapferry-vmbackup", "snapferry-vmrestore", "snapferry-vmbackupmanager"):
        p = pm.run("run", "--rm", "--entrypoint", tool, ref, "--version", check=False)
        assert p.returncode == 0 and "0.1.0" in p.stdout + p.stderr, (tool, p.stdout, p.stderr)
    p = pm.run("run", "--rm", "--entrypoint", "id", ref, "-u")
    assert p.stdout.strip() == "1000"
