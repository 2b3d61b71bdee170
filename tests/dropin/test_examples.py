"""Every command line of the vmbackup and vmrestore docs' examples, flag for flag, run by
the real binaries and by the snapferry scripts, on fs:// and on SeaweedFS, against a real
victoria-metrics: the backups hold the same objects, and every restore the same tree.

Each test runs on VictoriaMetrics 1.79.5 and 1.145.0 (`vm_version`). The docs' examples (the
longest test here: it waits for the database to settle before each snapshot) run on fs://
and SeaweedFS with 1.145.0 and on fs:// only with 1.79.5: every example line runs on both
versions, and 1.79.5's vmbackup/vmrestore on S3 are also compared in tests/test_interop_vm_s3.py.

The docs' lines are copied verbatim below; only their placeholders are filled in (paths,
URLs of this test's servers, `gs://` replaced by the remote under test). For S3 the
connection flags of SeaweedFS and, for both tools, a free -httpListenAddr are appended.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.datagen import assert_same_tree, make_vm_snapshot, tree_digest, tree_sizes
from tests.dropin.helpers import parts_of, run_script, s3_objects
from tests.servers import S3Server, free_port
from tests.vm import NEW, OLD, VMServer, make_samples, require_binary, run_tool, run_vmrestore

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

# docs/victoriametrics/vmbackup.md, "Use cases", in order.
REGULAR = ("./vmbackup -storageDataPath=</path/to/victoria-metrics-data> "
           "-snapshot.createURL=http://localhost:8428/snapshot/create -dst=gs://<bucket>/<path/to/new/backup>")
WITH_ORIGIN = ("./vmbackup -storageDataPath=</path/to/victoria-metrics-data> "
               "-snapshot.createURL=http://localhost:8428/snapshot/create -dst=gs://<bucket>/<path/to/new/backup> "
               "-origin=gs://<bucket>/<path/to/existing/backup>")
INCREMENTAL = ("./vmbackup -storageDataPath=</path/to/victoria-metrics-data> "
               "-snapshot.createURL=http://localhost:8428/snapshot/create -dst=gs://<bucket>/<path/to/existing/backup>")
SMART_HOURLY = ("./vmbackup -storageDataPath=</path/to/victoria-metrics-data> "
                "-snapshot.createURL=http://localhost:8428/snapshot/create -dst=gs://<bucket>/latest")
SMART_DAILY = "./vmbackup -origin=gs://<bucket>/latest -dst=gs://<bucket>/<YYYYMMDD>"
SERVER_SIDE_COPY = "./vmbackup -origin=gs://bucket/foo -dst=gs://bucket/bar"
CLUSTER_NODE = ("vmstorage-1$ /vmbackup -storageDataPath=</path/to/vmstorage-data> "
                "-snapshot.createURL=http://vmstorage1:8482/snapshot/create -dst=gs://<bucket>/vmstorage-1")
# docs/victoriametrics/vmrestore.md, "Usage".
RESTORE = "./vmrestore -src=<storageType>://<path/to/backup> -storageDataPath=<local/path/to/restore>"


@dataclass
class Side:
    """Where one tool's backups go: a base URL standing for the docs' `gs://<bucket>`."""

    base: str
    parts: Callable[[str], dict[str, str]]


@dataclass
class Setup:
    vm: VMServer
    storage: Path
    work: Path
    extra: list[str]  # connection flags of the remote under test
    original: Side
    snapferry: Side
    version: str

    def args(self, line: str, side: Side, **fill: str) -> list[str]:
        """The docs' line with its placeholders filled in, without the program name."""
        for placeholder, value in {
            "</path/to/victoria-metrics-data>": str(self.storage),
            "</path/to/vmstorage-data>": str(self.storage),
            "http://localhost:8428": self.vm.url,
            "http://vmstorage1:8482": self.vm.url,
            "gs://<bucket>": side.base,
            "gs://bucket": side.base,
            **fill,
        }.items():
            line = line.replace(placeholder, value)
        assert "<" not in line.split("$ ")[-1], f"unfilled placeholder in {line}"
        words = shlex.split(line.split("$ ")[-1])
        assert words[0].endswith(("/vmbackup", "/vmrestore"))
        return [*words[1:], *self.extra, f"-httpListenAddr=127.0.0.1:{free_port()}"]

    def both(self, line: str, **fill: str) -> None:
        """Run the line with the original binary and with the snapferry script."""
        tool = "vmrestore" if "vmrestore" in line.split()[0] else "vmbackup"
        if "-snapshot.createURL" in line:
            settle(self.vm)
        orig = self.args(line, self.original, **fill)
        _run([require_binary(tool, self.version), *orig])
        run_script(tool, self.args(line, self.snapferry, **fill))

    def same_backup(self, path: str) -> dict[str, str]:
        ours = self.snapferry.parts(f"{self.snapferry.base}/{path}")
        assert ours, f"no parts at {path}"
        assert ours == self.original.parts(f"{self.original.base}/{path}"), path
        return ours


def settle(vm: VMServer) -> None:
    """Wait until victoria-metrics has flushed and merged what it will: two snapshots in a
    row hold the same files. The two tools make a snapshot each, one after the other, and
    compare their backups, so nothing may change between them."""
    vm.force_flush()
    while True:
        a = vm.snapshot_create()
        # Index items wait in memory for up to a second before a snapshot can see them
        # (lib/mergeset's pending-items flush), so the second look comes later than that.
        time.sleep(2.5)
        b = vm.snapshot_create()
        same = tree_digest(vm.snapshot_dir(a)) == tree_digest(vm.snapshot_dir(b))
        vm.snapshot_delete(a)
        vm.snapshot_delete(b)
        if same:
            return


def _run(cmd: list[str]) -> None:
    run_tool(cmd)  # tests/vm.py: reruns a Go tool whose early stop panicked after its work


def _fs_side(root: Path) -> Side:
    root.mkdir(parents=True)
    return Side(f"fs://{root}", lambda url: parts_of(Path(url[len("fs://"):])) if Path(url[5:]).exists() else {})


def _s3_side(server: S3Server) -> Side:
    return Side(f"s3://{server.new_bucket()}", lambda url: parts_of(s3_objects(server, url)))


@pytest.fixture(params=[(NEW, "fs"), (NEW, "s3"), (OLD, "fs")], ids=lambda p: "-".join(p))
def setup(request: pytest.FixtureRequest, vm_server: Callable[..., VMServer], tmp_path: Path) -> Setup:
    version, remote = request.param
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=version)
    vm.ingest(make_samples(seed=61, series=4, per_series=300))
    settle(vm)
    if remote == "fs":
        return Setup(vm, storage, tmp_path, [], _fs_side(tmp_path / "orig"), _fs_side(tmp_path / "snap"), version)
    s3: S3Server = request.getfixturevalue("seaweedfs")
    o = s3.options
    assert o.creds_file_path and o.config_file_path
    extra = [f"-customS3Endpoint={s3.endpoint}", f"-credsFilePath={o.creds_file_path}",
             f"-configFilePath={o.config_file_path}"]
    return Setup(vm, storage, tmp_path, extra, _s3_side(s3), _s3_side(s3), version)


def test_vmbackup_and_vmrestore_docs_examples(setup: Setup) -> None:
    s = setup
    # Regular backup (also the source of the server-side copy example's gs://bucket/foo).
    s.both(REGULAR, **{"<path/to/new/backup>": "new"})
    s.both(REGULAR, **{"<path/to/new/backup>": "foo"})
    new = s.same_backup("new")
    assert s.vm.snapshot_list() == []  # both deleted the snapshot they made

    # A new backup with server-side copies from an existing one.
    s.both(WITH_ORIGIN, **{"<path/to/new/backup>": "from-origin", "<path/to/existing/backup>": "new"})
    assert s.same_backup("from-origin") == new

    # Incremental: more samples, then a backup over the existing one.
    s.vm.ingest(make_samples(seed=62, series=4, per_series=300, extra_labels={"batch": "2"}))
    settle(s.vm)
    s.both(INCREMENTAL, **{"<path/to/existing/backup>": "new"})
    incremental = s.same_backup("new")
    assert incremental != new

    # Smart backups: hourly into latest/, then a daily server-side copy of it.
    s.both(SMART_HOURLY)
    latest = s.same_backup("latest")
    # vmbackup 1.79.5 predates server-side copies without a snapshot (-origin alone): there
    # only snapferry runs these two, and each must copy its origin exactly; 1.145.0 runs them.
    if s.version == OLD:
        run_script("vmbackup", s.args(SMART_DAILY, s.snapferry, **{"<YYYYMMDD>": "20261128"}))
        run_script("vmbackup", s.args(SERVER_SIDE_COPY, s.snapferry))
    else:
        s.both(SMART_DAILY, **{"<YYYYMMDD>": "20261128"})
        s.both(SERVER_SIDE_COPY)
        assert s.same_backup("20261128") == latest and s.same_backup("bar") == new
    assert s.snapferry.parts(f"{s.snapferry.base}/20261128") == latest
    assert s.snapferry.parts(f"{s.snapferry.base}/bar") == s.snapferry.parts(f"{s.snapferry.base}/foo") == new

    # One vmstorage node of a cluster.
    s.both(CLUSTER_NODE)
    s.same_backup("vmstorage-1")
    assert s.vm.snapshot_list() == []

    # vmrestore's usage line, for a backup each tool made, by each tool.
    for name in ("new", "latest", "20261128", "bar", "vmstorage-1"):
        backup = f"{s.snapferry.base}/{name}"
        by_ours, by_theirs = s.work / f"ours-{name}", s.work / f"theirs-{name}"
        fill = {"<storageType>://<path/to/backup>": backup}
        run_script("vmrestore", s.args(RESTORE, s.snapferry, **fill, **{"<local/path/to/restore>": str(by_ours)}))
        _run([require_binary("vmrestore", s.version),
              *s.args(RESTORE, s.snapferry, **fill, **{"<local/path/to/restore>": str(by_theirs)})])
        assert_same_tree(by_ours, by_theirs)
    orig_latest = s.work / "theirs-orig-latest"
    _run([require_binary("vmrestore", s.version), *s.args(RESTORE, s.original, **{
        "<storageType>://<path/to/backup>": f"{s.original.base}/latest", "<local/path/to/restore>": str(orig_latest)})])
    assert_same_tree(orig_latest, s.work / "ours-latest")


def test_restored_samples_are_the_ingested_ones(vm_server: Callable[..., VMServer], tmp_path: Path,
                                                vm_version: str) -> None:
    """The regular example end to end: what snapferry-vmbackup saved, snapferry-vmrestore brings back
    into a directory a second victoria-metrics serves with every sample."""
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    samples = make_samples(seed=63, series=3, per_series=200)
    vm.ingest(samples)
    vm.force_flush()
    bk = tmp_path / "bk"
    run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshot.createURL={vm.snapshot_create_url}",
                            f"-dst=fs://{bk}", f"-httpListenAddr=127.0.0.1:{free_port()}"])
    out = tmp_path / "out"
    run_script("vmrestore", [f"-src=fs://{bk}", f"-storageDataPath={out}", f"-httpListenAddr=127.0.0.1:{free_port()}"])
    run_vmrestore(bk, tmp_path / "by-vmrestore", version=vm_version)
    assert_same_tree(out, tmp_path / "by-vmrestore")
    vm.stop()
    assert vm_server(out, version=vm_version).export('{__name__="snapferry_test"}') == samples


def test_snapshot_delete_url_is_a_base_url_as_for_vmbackup(vm_server: Callable[..., VMServer], tmp_path: Path,
                                                          vm_version: str) -> None:
    """-snapshot.deleteURL=http://host:8428/snapshot/delete (as the operator passes it):
    vmbackup sends the snapshot's name along; so must snapferry, or the snapshot stays."""
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    vm.ingest(make_samples(seed=64, series=2, per_series=50))
    vm.force_flush()
    args = [f"-storageDataPath={storage}", f"-snapshot.createURL={vm.snapshot_create_url}",
            f"-snapshot.deleteURL={vm.url}/snapshot/delete"]
    _run([require_binary("vmbackup", vm_version), *args, f"-dst=fs://{tmp_path}/theirs",
          f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert vm.snapshot_list() == []
    run_script("vmbackup", [*args, f"-dst=fs://{tmp_path}/ours", f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert vm.snapshot_list() == []
    assert not any((storage / "snapshots").iterdir())


def test_a_failed_backup_exits_non_zero_and_still_deletes_its_snapshot(
    vm_server: Callable[..., VMServer], tmp_path: Path, vm_version: str
) -> None:
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    vm.ingest(make_samples(seed=65, series=2, per_series=50))
    vm.force_flush()
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    proc = run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshot.createURL={vm.snapshot_create_url}",
                                   f"-dst=fs://{blocker}/backup", f"-httpListenAddr=127.0.0.1:{free_port()}"],
                      check=False)
    assert proc.returncode not in (0, 2), proc.stderr  # a runtime failure, not a usage error
    assert "Traceback" not in proc.stderr
    assert vm.snapshot_list() == []
    assert not any((storage / "snapshots").iterdir())


def test_pushmetrics_url_pushes_the_run_to_victoria_metrics(vm_server: Callable[..., VMServer], tmp_path: Path,
                                                           vm_version: str) -> None:
    """-pushmetrics.url as VictoriaMetrics' import endpoint: the run's byte counter arrives there."""
    vm = vm_server(tmp_path / "metrics-db", version=vm_version)
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=66, scale_bytes=1024 * 1024)
    proc = run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}",
                                   f"-dst=fs://{tmp_path}/bk", f"-httpListenAddr=127.0.0.1:{free_port()}",
                                   f"-pushmetrics.url={vm.url}/api/v1/import/prometheus"])
    assert "pushing metrics" not in proc.stderr, proc.stderr  # the push went through
    pushed: dict[object, list[tuple[int, float]]] = {}
    while not pushed:  # a new series becomes searchable shortly after its import
        vm.force_flush()
        pushed = dict(vm.export('{__name__="vm_backups_uploaded_bytes_total"}'))
        time.sleep(0.2)
    assert [points[-1][1] for points in pushed.values()] == [float(sum(tree_sizes(snap).values()))]
