"""The drop-in scripts as processes: exit codes, one-line errors, env flags, ignored
flags, -version/-help, the completion-marker check and /metrics while the run lasts."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from snapferry.dropin.tables import TABLES, Tool
from tests.datagen import assert_same_tree, make_vm_snapshot, tree_digest
from tests.dropin.helpers import TOOLS, parts_of, restores_to, run_script, script
from tests.servers import free_port

MiB = 1024 * 1024


@pytest.mark.parametrize(("tool", "via_snapferry"), [(t, False) for t in TOOLS] + [("vmbackup", True)])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-concurrency=2", "-noSuchFlag=1"], "flag provided but not defined: -noSuchFlag"),
        (["-concurrency=many"], 'invalid value "many" for flag -concurrency: parse error'),
        (["-maxBytesPerSecond=fast"], 'invalid value "fast" for flag -maxBytesPerSecond: strconv.ParseFloat'),
        (["-s3ForcePathStyle=maybe"], 'invalid boolean value "maybe" for -s3ForcePathStyle'),
        (["-credsFilePath"], "flag needs an argument: -credsFilePath"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(tool: str, args: list[str], message: str,
                                                via_snapferry: bool) -> None:
    proc = run_script(tool, args, check=False, via_snapferry=via_snapferry)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("tool", TOOLS)
def test_version_prints_snapferrys_version(tool: str) -> None:
    from importlib.metadata import version

    for flag in ("-version", "--version", "-version=true"):
        proc = run_script(tool, [flag])
        assert f"snapferry {version('snapferry')}" in proc.stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_help_lists_every_flag_of_the_original(tool: str) -> None:
    proc = run_script(tool, ["-help"])
    for rule in TABLES[Tool(tool)]:
        assert f"\n  -{rule.name}" in proc.stdout, rule.name
    assert run_script(tool, ["-h"]).stdout == proc.stdout


def test_unprocessed_arguments_are_refused(tmp_path: Path) -> None:
    """`-skipBackupCompleteCheck false` leaves `false` behind: the originals refuse that."""
    proc = run_script("vmrestore", [f"-src=fs://{tmp_path}/b", "-skipBackupCompleteCheck", "false"], check=False)
    assert proc.returncode == 2
    assert "unprocessed command-line args left: ['false']" in proc.stderr


def test_vmrestore_refuses_a_backup_without_the_marker_unless_told(tmp_path: Path) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=41, scale_bytes=MiB)
    run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-dst=fs://{bk}",
                            f"-httpListenAddr=127.0.0.1:{free_port()}"])
    (bk / "backup_complete.ignore").unlink()
    out = tmp_path / "out"

    refused = run_script("vmrestore", [f"-src=fs://{bk}", f"-storageDataPath={out}"], check=False)
    assert refused.returncode == 3
    assert "backup_complete.ignore" in refused.stderr and "Traceback" not in refused.stderr
    assert not out.exists() or not any(out.rglob("*.bin"))

    run_script("vmrestore", [f"-src=fs://{bk}", f"-storageDataPath={out}", "-skipBackupCompleteCheck",
                             f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert_same_tree(snap, out)


def test_env_flags_with_prefix_run_a_restore(tmp_path: Path) -> None:
    storage, bk, out = tmp_path / "vm", tmp_path / "bk", tmp_path / "out"
    snap = make_vm_snapshot(storage, seed=42, scale_bytes=MiB)
    env = {"SF_storageDataPath": str(storage), "SF_snapshotName": snap.name, "SF_dst": f"fs://{bk}",
           "SF_httpListenAddr": f"127.0.0.1:{free_port()}"}
    run_script("vmbackup", ["-envflag.enable", "-envflag.prefix=SF_"], env=env)
    env = {"src": f"fs://{bk}", "storageDataPath": str(tmp_path / "not-here"), "concurrency": "3"}
    proc = run_script("vmrestore", ["-envflag.enable=true", f"-storageDataPath={out}",
                                    f"-httpListenAddr=127.0.0.1:{free_port()}"], env=env)
    assert_same_tree(snap, out)  # the command line's -storageDataPath won over the environment's
    assert not (tmp_path / "not-here").exists()
    assert "-src is read from the environment variable src" in proc.stderr
    assert "--concurrency 3" in proc.stderr


def test_ignored_flags_are_reported_once_and_change_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=43, scale_bytes=MiB)
    args = [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-httpListenAddr=127.0.0.1:{free_port()}",
            "-eula", "-fs.disableMmap", "-memory.allowedPercent=40", "-tls=false",
            "-http.connTimeout=1m", "-licenseFile=/nonexistent/license", "-deleteAllObjectVersions"]
    plain = run_script("vmbackup", [*args[:3], f"-dst=fs://{tmp_path}/plain"])
    noisy = run_script("vmbackup", [*args, f"-dst=fs://{tmp_path}/noisy"])
    assert parts_of(tmp_path / "plain") == parts_of(tmp_path / "noisy")
    # -tls=false is no ignored flag: the server flags are handled (plain HTTP here), and change nothing either
    for flag in ("eula", "fs.disableMmap", "memory.allowedPercent", "http.connTimeout", "licenseFile"):
        assert noisy.stderr.count(f"-{flag} is accepted and ignored:") == 1, flag
    # -deleteAllObjectVersions is done now (--delete-all-object-versions); fs:// keeps no versions
    assert "-deleteAllObjectVersions is accepted" not in noisy.stderr
    assert "accepted and ignored" not in plain.stderr


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("tool", ["vmbackup", "vmrestore"])
def test_metrics_are_served_while_the_run_lasts(tool: str, tmp_path: Path) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=44, scale_bytes=6 * MiB)
    if tool == "vmrestore":
        run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-dst=fs://{bk}",
                                f"-httpListenAddr=127.0.0.1:{free_port()}"])
        args = [f"-src=fs://{bk}", f"-storageDataPath={tmp_path / 'out'}"]
        counter, other = "vm_backups_downloaded_bytes_total", "vm_backups_uploaded_bytes_total"
    else:
        args = [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-dst=fs://{bk}"]
        counter, other = "vm_backups_uploaded_bytes_total", "vm_backups_downloaded_bytes_total"
    port = free_port()
    # Throttled to 1 MiB/s, so the 6 MiB run lasts long enough to be scraped mid-way.
    proc = subprocess.Popen([script(tool), *args, f"-httpListenAddr=127.0.0.1:{port}", "-maxBytesPerSecond=1MiB"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[dict[str, float]] = []
    try:
        while proc.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                seen.append(_scrape(port))
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen, "no scrape succeeded while the run lasted"
    moving = [s[counter] for s in seen if 0 < s[counter] < 6 * MiB]
    assert moving, f"never saw {counter} mid-run: {[s.get(counter) for s in seen]}"
    assert [s[counter] for s in seen] == sorted(s[counter] for s in seen)  # a counter never goes down
    assert all(s[other] == 0 for s in seen)
    assert all(s["snapferry_run_in_progress"] == 1 for s in seen)
    assert any(k.startswith("snapferry_transferred_bytes") for k in seen[-1])
    assert not _port_open(port)  # the listener ends with the run
    if tool == "vmbackup":
        assert restores_to(bk) == tree_digest(snap)


def test_an_explicit_listen_address_in_use_fails_before_the_run(tmp_path: Path) -> None:
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=45, scale_bytes=MiB)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}",
                                       f"-dst=fs://{tmp_path}/bk", f"-httpListenAddr=127.0.0.1:{port}"], check=False)
    assert proc.returncode == 1
    assert f"cannot serve /metrics at -httpListenAddr=127.0.0.1:{port}" in proc.stderr
    assert not (tmp_path / "bk").exists()


def test_the_default_listen_address_is_loopback_and_a_busy_one_only_warns(tmp_path: Path) -> None:
    """Without -httpListenAddr the original's port is served on 127.0.0.1 (never on every
    interface); when that port is taken the run goes on with a warning."""
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=46, scale_bytes=MiB)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            busy.bind(("127.0.0.1", 8420))
            busy.listen()
        except OSError:
            pass  # someone else holds it: the run must warn all the same
        proc = run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}",
                                       f"-dst=fs://{tmp_path}/bk"])
    assert "not serving /metrics at 127.0.0.1:8420" in proc.stderr
    assert restores_to(tmp_path / "bk") == tree_digest(snap)


def test_console_scripts_are_installed() -> None:
    for tool in TOOLS:
        assert Path(script(tool)).parent == Path(sys.executable).parent


def test_sigterm_stops_with_143_and_the_exact_drop_in_command_to_rerun(tmp_path: Path) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=47, scale_bytes=6 * MiB)
    port = free_port()
    args = [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-dst=fs://{bk}",
            f"-httpListenAddr=127.0.0.1:{port}", "-maxBytesPerSecond=1MiB"]
    proc = subprocess.Popen([script("vmbackup"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:  # stop it once bytes have moved
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                if _scrape(port)["vm_backups_uploaded_bytes_total"] > 0:
                    proc.send_signal(signal.SIGTERM)
                    break
            time.sleep(0.1)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    hint = [ln for ln in err.splitlines() if "interrupted by SIGTERM" in ln]
    assert len(hint) == 1 and "Traceback" not in err, err
    rerun = shlex.split(hint[0].split("rerun `", 1)[1].split("`", 1)[0])
    assert rerun == ["snapferry-vmbackup", *args]
    assert not (bk / "backup_complete.ignore").exists()
    run_script("vmbackup", rerun[1:])
    assert restores_to(bk) == tree_digest(snap)


def test_logger_flags_json_lines_on_stdout_at_the_level_asked(tmp_path: Path) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=48, scale_bytes=MiB)
    common = [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-httpListenAddr=127.0.0.1:{free_port()}"]
    proc = run_script("vmbackup", [*common, f"-dst=fs://{bk}", "-loggerFormat=json", "-loggerOutput=stdout", "-eula"])
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records and all(set(r) == {"ts", "level", "caller", "msg"} for r in records)
    assert any(r["level"] == "warn" and r["msg"].startswith("-eula is accepted and ignored") for r in records)
    assert any(r["msg"].startswith("running: snapferry --log-level info backup") for r in records)
    assert "accepted and ignored" not in proc.stderr  # the log went to stdout; the summary stays on stderr
    quiet = run_script("vmbackup", [*common, f"-dst=fs://{tmp_path}/bk2", "-loggerLevel=ERROR", "-eula"])
    assert "INFO" not in quiet.stderr and "WARNING" not in quiet.stderr
    assert restores_to(tmp_path / "bk2") == tree_digest(snap)
