"""deploy/: every file parses, every metric it reads is one the manager exports, every flag exists,
and the alert rules and dashboard queries are accepted and evaluated by real vmalert / victoria-metrics,
each of VictoriaMetrics 1.79.5 and 1.145.0 (`vm_version`)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from snapferry.manager.catalog import BackupInfo
from snapferry.manager.layout import BackupType
from snapferry.manager.metrics import Metrics, config_flags
from tests.servers import REPO, free_port
from tests.vm import VMServer, require_binary, snapferry_command

DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "alerts.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
UNIT = DEPLOY / "snapferry-manager.service"
K8S = DEPLOY / "kubernetes" / "victoria-metrics-with-snapferry.yaml"
DAY = 24 * 3600
# What each alert rule promises: backup type -> days without a success before it fires.
ALERT_DAYS = {"latest": 1, "hourly": 1, "daily": 3, "weekly": 14, "monthly": 62}
# Grafana's variables, as a query sees them once Grafana has filled them in.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "5m", "$__range": "1h", "$job": ".*", "$instance": ".*"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def exported() -> dict[str, set[str]]:
    """Sample name -> its label names, from a real render of the manager's metrics with every
    type, a backup listed and its settings bound."""
    backups = [BackupInfo("daily/2026-11-27", 1000, datetime(2026, 11, 27, tzinfo=UTC), False, True)]
    m = Metrics()
    m.bind(list(BackupType), in_flight=lambda: False, list_backups=lambda: backups,
           flags=config_flags({BackupType.HOURLY: True}, {BackupType.DAILY: 3}, 0, "UTC", False, False, 8, 0))
    m.backup_done(BackupType.LATEST, True, 1.0, 10)
    m.retention_done(True, 0.5, 0)
    out: dict[str, set[str]] = {}
    for f in text_string_to_metric_families(m.render().decode()):
        for sample in f.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def exported_names() -> set[str]:
    return set(exported())


# What VictoriaMetrics' own vmbackupmanager dashboard (dashboards/backupmanager.json) and alert
# rules (deployment/docker/rules/alerts-vmbackupmanager.yml) read: name -> the labels they use.
UPSTREAM = {
    "vm_backup_last_success_at": {"type"}, "vm_backup_last_run_failed": set(), "vm_backup_errors_total": set(),
    "vm_backups_total": {"type"}, "vm_backup_duration_seconds_total": {"type"},
    "vm_backups_size_bytes": {"backup", "type"}, "vm_backups_stored": set(),
    "vm_retention_last_run_failed": set(), "vm_retention_errors_total": set(),
    "vm_retention_duration_seconds_total": set(), "vm_backups_uploaded_bytes_total": set(),
    "vm_app_uptime_seconds": set(), "vm_app_version": {"version"}, "flag": {"name", "value", "is_set"},
}


def test_every_series_the_upstream_dashboard_and_alerts_read_is_exported() -> None:
    got = exported()
    missing = {n: labels for n, labels in UPSTREAM.items() if n not in got or not labels <= got[n]}
    assert not missing, missing


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    for p in walk(dash["panels"]):
        out.extend(t["expr"] for t in p.get("targets", []))
    for v in dash["templating"]["list"]:
        if isinstance(v.get("query"), dict):
            out.append(v["query"]["query"])
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords or label lists."""
    e = re.sub(r'"[^"]*"', "", expr)  # label values
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)  # label lists
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", e.strip())  # Grafana's: the label is not a metric
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        if not m.group(2) and m.group(1) not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_alerts_read_only_exported_metrics_and_cover_every_type() -> None:
    exported = exported_names()
    rules = alert_rules()
    for r in rules:
        used = metric_names(r["expr"])
        assert used, r["alert"]
        assert used <= exported, (r["alert"], used - exported)
    by_type = {}
    for r in rules:
        types = set(re.findall(r'type="(\w+)"', r["expr"]))
        if types:
            (t,) = types
            by_type[t] = r
    assert set(by_type) == set(ALERT_DAYS)


def test_dashboard_reads_only_exported_metrics() -> None:
    exported = exported_names()
    queries = dashboard_queries()
    assert len(queries) >= 15
    used: set[str] = set()
    for q in queries:
        used |= metric_names(q)
    assert used - exported == set()
    # the names vmbackupmanager's dashboard reads are all here too
    assert {"vm_backup_last_run_failed", "vm_backups_stored", "vm_backups_size_bytes", "vm_backup_errors_total",
            "vm_retention_last_run_failed", "vm_retention_errors_total", "vm_backup_duration_seconds_total",
            "vm_backups_total", "vm_backups_uploaded_bytes_total", "vm_retention_duration_seconds_total"} <= used


def test_vmalert_accepts_the_rules(tmp_path: Path, vm_version: str) -> None:
    p = subprocess.run([require_binary("vmalert", vm_version), f"-rule={ALERTS}", "-dryRun", "-loggerLevel=ERROR",
                        f"-httpListenAddr=127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture
def vm(vm_server: Callable[..., VMServer], tmp_path: Path, vm_version: str) -> VMServer:
    return vm_server(tmp_path / "vm", version=vm_version)


def query(vm: VMServer, expr: str) -> list[dict[str, Any]]:
    body = json.loads(vm.request("/api/v1/query?" + urllib.parse.urlencode({"query": expr, "nocache": "1"})))
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


def test_each_alert_fires_exactly_when_its_type_is_overdue(vm: VMServer) -> None:
    """Ingest the manager's series as a scrape would, some types overdue, and evaluate every rule."""
    now = int(time.time())
    overdue = {"daily", "monthly"}
    lines = [f'vm_app_uptime_seconds{{job="snapferry",instance="a"}} {100 * DAY}']
    for t, days in ALERT_DAYS.items():
        age = (days + 1) * DAY if t in overdue else (days * DAY) // 2
        lines.append(f'vm_backup_last_success_at{{job="snapferry",instance="a",type="{t}"}} {now - age}')
    vm.import_prometheus("\n".join(lines) + "\n")
    fired: set[str] = set()
    for _ in range(200):  # new series are searchable about a second after the import
        vm.force_flush()
        if query(vm, "vm_app_uptime_seconds"):
            break
        time.sleep(0.05)
    for r in alert_rules():
        types = re.findall(r'type="(\w+)"', r["expr"])
        if types and query(vm, r["expr"]):
            fired.add(types[0])
    assert fired == overdue


def test_dashboard_queries_are_valid_metricsql(vm: VMServer) -> None:
    for q in dashboard_queries():
        if q.startswith("label_values("):
            continue  # Grafana's own function, not a query language expression
        for k, v in GRAFANA_VARS.items():
            q = q.replace(k, v)
        query(vm, q)  # a syntax error is HTTP 422 and fails here


def test_k8s_manifests_wire_the_sidecar_and_the_init_container() -> None:
    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"StatefulSet", "Service", "Secret"}
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["args"][:2] == ["manager", "restore"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "snapferry-manager")
    vm = next(c for c in pod["containers"] if c["name"] == "victoria-metrics")
    assert sidecar["args"][0] == "manager"
    assert sidecar["ports"][0]["containerPort"] == 8300
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/health"
    storage = {m["mountPath"] for m in vm["volumeMounts"] if m["name"] == "storage"}
    for c in (init, sidecar):
        (path,) = (a.split("=", 1)[1] for a in c["args"] if a.startswith("--storage-data-path="))
        assert {path} == storage == {m["mountPath"] for m in c["volumeMounts"] if m["name"] == "storage"}
    assert "-storageDataPath=/storage" in vm["args"]
    ports = {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]}
    assert ports == {"http", "manager"}


def flags_of(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


def help_text(*cmd: str) -> str:
    p = subprocess.run([*snapferry_command(), *cmd, "--help"], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_every_flag_in_the_unit_and_manifests_exists() -> None:
    unit = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S)
    assert exec_start is not None
    argv = exec_start.group(1).replace("\\\n", " ").split()
    assert argv[1] == "manager"
    used = {("manager",): flags_of(argv)}
    pod = next(d for d in yaml.safe_load_all(K8S.read_text()) if d and d["kind"] == "StatefulSet")
    spec = pod["spec"]["template"]["spec"]
    used[("manager", "restore")] = flags_of(spec["initContainers"][0]["args"])
    sidecar = next(c for c in spec["containers"] if c["name"] == "snapferry-manager")
    used[("manager",)] |= flags_of(sidecar["args"])
    for cmd, flags in used.items():
        text = help_text(*cmd)
        missing = {f for f in flags if not re.search(rf"{re.escape(f)}\b", text)}
        assert not missing, (cmd, missing)
