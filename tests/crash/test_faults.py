"""Backups and restores through a faulty network: a real S3 server behind tests/faultproxy.py.

The proxy answers 500/503/429, resets and truncates bodies, and stalls, on a
seeded schedule. snapferry must retry what is transient, end byte-identical,
and, when the faults never stop, give up after its bounded retries with one
clear line, a non-zero exit, and no completion marker on an unfinished backup.

SNAPFERRY_FAULT_RUNS sets how many restores and backups run in a row (8 each by
default, to keep CI short); `python -m tests.crash.soak --mode faults --count 20` runs
the full 20 of each (it sets SNAPFERRY_FAULT_RUNS and runs this file).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapferry.errors import EXIT_BAD_BACKUP
from tests.crash import harness as h
from tests.faultproxy import ERROR_KINDS, FaultPlan, FaultProxy, Request, ranged_get
from tests.servers import S3Server

RUNS = int(os.environ.get("SNAPFERRY_FAULT_RUNS", "8"))
FAULT_RATE = 0.05


def lease_put(req: Request) -> bool:
    return req.method == "PUT" and req.path.endswith("/" + h.LEASE)


@pytest.fixture
def proxy(seaweedfs: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(seaweedfs.endpoint) as p:
        yield p
        assert not p.stats.errors, p.stats.errors  # the proxy itself must not have failed


def s3_args(server: S3Server, endpoint: str, *extra: str) -> list[str]:
    o = server.options
    assert o.creds_file_path and o.config_file_path
    return ["--custom-s3-endpoint", endpoint, "--creds-file-path", o.creds_file_path,
            "--config-file-path", o.config_file_path, "--progress", "off", *extra]


def backup_cmd(src: Path, url: str, server: S3Server, endpoint: str, *extra: str) -> list[str]:
    return h.snapferry_argv("backup", "--src", str(src), "--dst", url, "--max-part-size", str(h.PART_SIZE),
                            *s3_args(server, endpoint, *extra))


def restore_cmd(url: str, target: Path, server: S3Server, endpoint: str, *extra: str) -> list[str]:
    return h.snapferry_argv("restore", "--src", url, "--dst", str(target), *s3_args(server, endpoint, *extra))


def objects(server: S3Server, url: str) -> dict[str, bytes]:
    """Every object under the remote's prefix, read straight from the server (no proxy)."""
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    c = server.client()
    out: dict[str, bytes] = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", ()):
            key = obj["Key"]
            out[key[len(prefix) + 1 :]] = c.get_object(Bucket=bucket, Key=key)["Body"].read()
    return out


def assert_backup_is(server: S3Server, url: str, parts: dict[str, bytes]) -> None:
    objs = objects(server, url)
    assert h.COMPLETE in objs and h.METADATA in objs, sorted(objs)[:5]
    got = {k: v for k, v in objs.items() if not k.endswith(".ignore")}
    assert sorted(got) == sorted(parts)
    bad = [k for k in parts if got[k] != parts[k]]
    assert not bad, bad[:5]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("snapferry:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def write_report(runs: list[dict[str, object]]) -> None:
    """For tests/crash/soak.py: the per-run outcome, when SNAPFERRY_FAULT_REPORT names a file."""
    path = os.environ.get("SNAPFERRY_FAULT_REPORT")
    if path:
        Path(path).write_text(json.dumps(runs))


def test_restores_through_5_percent_faults_are_identical(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    p = h.run_cli(backup_cmd(ws.src, url, seaweedfs, seaweedfs.endpoint))  # made without faults
    assert p.returncode == 0, p.stderr
    runs: list[dict[str, object]] = []
    for i in range(RUNS):
        proxy.set_plan(FaultPlan(rate=FAULT_RATE, seed=1000 + i, stall_seconds=1.5))
        before = proxy.stats.total_faults
        target = tmp_path / f"r{i}"
        r = h.run_cli(restore_cmd(url, target, seaweedfs, proxy.endpoint, "--json"))
        res = h.CycleResult("restore-faults", i)
        if r.returncode != 0:
            res.problem(f"rc {r.returncode}: {r.stderr[-2000:]}")
        elif json.loads(r.stdout)["downloaded_bytes"] != ws.total:
            res.problem(f"downloaded {json.loads(r.stdout)['downloaded_bytes']} of {ws.total}")
        else:
            h.check_restored(ws, target, res)
        runs.append({"run": i, "identical": res.ok, "faults": proxy.stats.total_faults - before,
                     "problems": res.problems})
        shutil.rmtree(target, ignore_errors=True)
    write_report(runs)
    bad = [r for r in runs if not r["identical"]]
    assert not bad, f"{len(runs) - len(bad)}/{len(runs)} identical; failed: {bad}"
    fired = Counter(proxy.stats.faults)
    # ~90 requests a run: the faults did fire, and of several kinds.
    assert proxy.stats.total_faults >= RUNS * 2, fired
    assert len(fired) >= 3, fired


def test_backups_through_5_percent_faults_are_identical(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy
) -> None:
    bucket = seaweedfs.new_bucket()
    runs: list[dict[str, object]] = []
    for i in range(RUNS):
        url = f"s3://{bucket}/bk{i}"
        incremental = i % 3 == 2  # over an older backup: deletes and skips go through the faults too
        proxy.set_plan(FaultPlan(rate=FAULT_RATE, seed=2000 + i, stall_seconds=1.5))
        before = proxy.stats.total_faults
        problems: list[str] = []
        if incremental:
            p = h.run_cli(backup_cmd(ws.old_src, url, seaweedfs, proxy.endpoint))
            if p.returncode != 0:
                problems.append(f"older backup: rc {p.returncode}: {p.stderr[-2000:]}")
        p = h.run_cli(backup_cmd(ws.src, url, seaweedfs, proxy.endpoint, "--json"))
        if p.returncode != 0:
            problems.append(f"rc {p.returncode}: {p.stderr[-2000:]}")
        else:
            try:
                assert_backup_is(seaweedfs, url, ws.parts)
            except AssertionError as e:
                problems.append(f"backup differs: {e}")
        runs.append({"run": i, "identical": not problems, "faults": proxy.stats.total_faults - before,
                     "problems": problems})
    write_report(runs)
    bad = [r for r in runs if not r["identical"]]
    assert not bad, f"{len(runs) - len(bad)}/{len(runs)} identical; failed: {bad}"
    fired = Counter(proxy.stats.faults)
    assert proxy.stats.total_faults >= RUNS * 2, fired
    assert len(fired) >= 3, fired
    # And the last one restores, byte for byte (without faults).
    target = ws.root / "restored-last"
    r = h.run_cli(restore_cmd(f"s3://{bucket}/bk{RUNS - 1}", target, seaweedfs, seaweedfs.endpoint))
    assert r.returncode == 0, r.stderr
    assert h.tree_digest(target) == ws.digest


@pytest.mark.parametrize("kind", ["truncate", "reset", "stall"])
def test_broken_part_bodies_are_retried_never_written_as_whole(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path, kind: str
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    assert h.run_cli(backup_cmd(ws.src, url, seaweedfs, seaweedfs.endpoint)).returncode == 0
    for preallocate in (True, False):
        # One ranged GET in ten breaks; --retries 10 makes a part that breaks every time unlikely (0.1**10).
        proxy.set_plan(FaultPlan(rate=0.1, kinds=(kind,), seed=7, stall_seconds=1.0, match=ranged_get))
        before = proxy.stats.faults[kind]
        target = tmp_path / f"{kind}-{preallocate}"
        extra = ["--retries", "10"] + ([] if preallocate else ["--skip-file-preallocation"])
        r = h.run_cli(restore_cmd(url, target, seaweedfs, proxy.endpoint, "--json", *extra))
        assert r.returncode == 0, r.stderr[-3000:]
        assert proxy.stats.faults[kind] > before, proxy.stats
        if kind in ("truncate", "reset"):
            # The head came whole, the body did not: snapferry's own reader must notice the
            # short body and retry from the missing byte, not take it as the part.
            assert "retrying after a transient error" in r.stderr, r.stderr[-3000:]
        res = h.CycleResult(kind, 0)
        h.check_restored(ws, target, res)
        assert res.identical and not res.problems, res.problems


def test_restore_gives_up_when_every_request_fails(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    assert h.run_cli(backup_cmd(ws.src, url, seaweedfs, seaweedfs.endpoint)).returncode == 0
    proxy.set_plan(FaultPlan(rate=1.0, kinds=ERROR_KINDS, seed=3))
    target = tmp_path / "r"
    r = h.run_cli(restore_cmd(url, target, seaweedfs, proxy.endpoint, "--retries", "2"))
    assert r.returncode not in (0, 130, 143) and r.returncode > 0, r.stderr
    line = one_error_line(r.stderr)
    assert "error" in line and url.split("/")[2] in line, line
    assert proxy.stats.requests <= 8, "bounded retries: a handful of requests, not a storm"
    # Every request failed, so the checks before the first write failed: a refused
    # restore leaves the target as it was (here: never created), nothing half-done.
    assert not target.exists(), sorted(p.name for p in target.iterdir())


def test_backup_gives_up_when_every_request_fails(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    proxy.set_plan(FaultPlan(rate=1.0, kinds=ERROR_KINDS, seed=4))
    r = h.run_cli(backup_cmd(ws.src, url, seaweedfs, proxy.endpoint, "--retries", "2"))
    assert r.returncode not in (0, 130, 143) and r.returncode > 0, r.stderr
    line = one_error_line(r.stderr)
    assert "error" in line and url.split("/")[2] in line, line
    assert h.COMPLETE not in objects(seaweedfs, url)


def test_outage_mid_backup_leaves_it_marked_incomplete_then_resumes(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    # dst holds a complete older backup, so its marker exists before the run.
    assert h.run_cli(backup_cmd(ws.old_src, url, seaweedfs, seaweedfs.endpoint)).returncode == 0
    assert h.COMPLETE in objects(seaweedfs, url)
    # The store answers until three parts are in, then every request fails: an outage
    # mid-upload. (Counted in part PUTs, not requests: how many requests come before the
    # first part grew with the lease and overlap checks, and a fixed count missed it.)
    part_puts = [0]

    def outage(req: Request) -> bool:
        if req.method == "PUT" and not req.path.endswith(".ignore"):
            part_puts[0] += 1
        return part_puts[0] > 3

    proxy.set_plan(FaultPlan(rate=1.0, kinds=("503", "500", "reset"), seed=5, match=outage))
    r = h.run_cli(backup_cmd(ws.src, url, seaweedfs, proxy.endpoint, "--retries", "2"))
    assert r.returncode > 0 and r.returncode not in (130, 143), r.stderr
    one_error_line(r.stderr)
    assert proxy.stats.total_faults > 0
    objs = objects(seaweedfs, url)
    assert h.COMPLETE not in objs, "a failed backup must not carry the completion marker"
    assert any(k in ws.parts and k not in ws.old_parts for k in objs), "the outage hit mid-upload"
    refused = h.run_cli(restore_cmd(url, tmp_path / "refused", seaweedfs, seaweedfs.endpoint))
    assert refused.returncode == EXIT_BAD_BACKUP, refused.stderr
    # The outage ends: a rerun finishes the backup.
    proxy.set_plan(FaultPlan(rate=0.0))
    r = h.run_cli(backup_cmd(ws.src, url, seaweedfs, proxy.endpoint, "--json"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["uploaded_bytes"] < ws.total
    assert_backup_is(seaweedfs, url, ws.parts)


def test_stalled_downloads_trip_the_read_timeout(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    assert h.run_cli(backup_cmd(ws.src, url, seaweedfs, seaweedfs.endpoint)).returncode == 0
    # The proxy stalls 8 s; a 1 s read timeout must fire first and the request be retried.
    proxy.set_plan(FaultPlan(rate=0.1, kinds=("stall",), seed=9, stall_seconds=8.0, match=ranged_get))
    target = tmp_path / "r"
    r = h.run_cli(restore_cmd(url, target, seaweedfs, proxy.endpoint, "--read-timeout", "1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert proxy.stats.faults["stall"] > 0
    assert proxy.stats.stall_abandoned > 0, "the client waited out the stall: its read timeout never fired"
    assert h.tree_digest(target) == ws.digest


def test_proxy_forwards_streaming_bodies_and_expect_continue(seaweedfs: S3Server, proxy: FaultProxy) -> None:
    """Without faults the proxy is transparent, also for the bodies snapferry does not send today."""
    import io

    import boto3
    from botocore.config import Config

    bucket = seaweedfs.new_bucket()
    client = boto3.client(
        "s3", endpoint_url=proxy.endpoint, aws_access_key_id="k", aws_secret_access_key="s",
        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 4}),
    )
    payload = os.urandom(3 * 1024 * 1024 + 7)
    # A file-like body: boto sends Expect: 100-continue and a streamed (aws-chunked) upload.
    client.put_object(Bucket=bucket, Key="stream", Body=io.BytesIO(payload))
    client.upload_fileobj(io.BytesIO(payload), bucket, "multipart",
                          Config=boto3.s3.transfer.TransferConfig(multipart_threshold=1024 * 1024,
                                                                  multipart_chunksize=1024 * 1024))
    direct = seaweedfs.client()
    assert direct.get_object(Bucket=bucket, Key="stream")["Body"].read() == payload
    assert direct.get_object(Bucket=bucket, Key="multipart")["Body"].read() == payload
    got = client.get_object(Bucket=bucket, Key="multipart", Range="bytes=5-1048580")["Body"].read()
    assert got == payload[5:1048581]
    # Plain HTTP/1.1 chunked transfer encoding on one kept-alive connection.
    import http.client

    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=30)
    conn.request("PUT", f"/{bucket}/chunked", body=iter([payload[:1000], payload[1000:]]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    assert conn.getresponse().read() is not None
    conn.request("GET", f"/{bucket}/chunked")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == payload
    conn.close()
    st = proxy.stats
    assert st.total_faults == 0 and st.requests == st.forwarded >= 7, st
    assert st.expect_continue >= 1 and st.chunked_requests >= 1, st


def test_lost_reply_to_the_lease_put_is_not_another_backup(
    ws: h.Workspace, seaweedfs: S3Server, proxy: FaultProxy
) -> None:
    url, _ = seaweedfs.new_remote("bk")
    # The lease PUT reaches the server, then the connection drops before the reply.
    proxy.set_plan(FaultPlan(rate=1.0, kinds=("reset",), match=lease_put, limit=1))
    r = h.run_cli(backup_cmd(ws.src, url, seaweedfs, proxy.endpoint))
    assert proxy.stats.faults["reset"] == 1
    assert r.returncode == 0, r.stderr[-2000:]
    assert_backup_is(seaweedfs, url, ws.parts)
