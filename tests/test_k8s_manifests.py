"""Every Kubernetes YAML in deploy/ and docs/kubernetes.md is valid against the Kubernetes API
schemas (kubernetes-validate's bundled copies: offline), and the plain manifest meets the
restricted Pod Security Standard, sets resources and runs a current VictoriaMetrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.servers import REPO

K8S_VERSION = "1.37.0"
DEPLOY = REPO / "deploy"
DOCS = REPO / "docs" / "kubernetes.md"
# YAML in deploy/ that is not Kubernetes, and the test that checks it instead.
NOT_KUBERNETES = {"alerts.yml": "tests/test_deploy.py (vmalert -dryRun)"}
# The VictoriaMetrics operator's custom resources have no schema in kubernetes-validate: their
# vmBackup sections are checked against the VMBackup fields of the operator's API (docs/api.md).
VMBACKUP_FIELDS = {
    "acceptEULA", "image", "destination", "destinationDisableSuffixAdd", "credentialsSecret", "customS3Endpoint",
    "extraArgs", "extraEnvs", "extraEnvsFrom", "resources", "restore", "concurrency", "disableHourly",
    "disableDaily", "disableWeekly", "disableMonthly", "snapshotCreateURL", "snapshotDeleteURL", "port",
    "logLevel", "logFormat", "volumeMounts",
}


def deploy_yaml() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def docs_yaml() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks
    return [d for b in blocks for d in yaml.safe_load_all(b) if d]


@pytest.mark.parametrize("path", deploy_yaml(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_kubernetes_yaml_in_deploy_is_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if path.name in NOT_KUBERNETES:
        assert not any(isinstance(d, dict) and "apiVersion" in d for d in docs)
        return
    assert docs and all("apiVersion" in d and "kind" in d for d in docs), path
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)  # raises ValidationError


def test_the_validator_refuses_a_wrong_field() -> None:
    pod = next(d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "victoria-metrics-with-snapferry.yaml")
                                             .read_text()) if d["kind"] == "StatefulSet")
    pod["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_the_plain_manifest_is_restricted_with_resources_and_a_current_victoriametrics() -> None:
    pod = next(d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "victoria-metrics-with-snapferry.yaml")
                                             .read_text()) if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], c["name"]
    (vm,) = (c for c in pod["containers"] if c["name"] == "victoria-metrics")
    major, minor, _patch = map(int, vm["image"].rsplit(":v", 1)[1].split("."))
    assert (major, minor) >= (1, 133), vm["image"]  # the per-partition indexdb layout of today's releases


def test_the_docs_kubernetes_yaml_is_valid() -> None:
    kinds = set()
    for d in docs_yaml():
        if "apiVersion" not in d:  # Helm values
            server = d["server"]
            if "vmbackupmanager" in server:
                manager = server["vmbackupmanager"]
                assert manager["image"]["repository"].endswith("/snapferry")
                assert manager["restore"]["onStart"]["enabled"]
                kinds.add("helm-vmbackupmanager")
            else:  # the generic hooks: real containers, checked as the pod they end up in
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vmsingle"},
                       "spec": {"initContainers": server["initContainers"], "containers": server["extraContainers"],
                                "volumes": server["extraVolumes"]}}
                kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
                assert server["initContainers"][0]["args"][0] == "restore"
                kinds.add("helm-containers")
            continue
        kinds.add(d["kind"])
        if d["apiVersion"].startswith("operator.victoriametrics.com/"):
            spec = d["spec"]
            backup = spec["vmBackup"] if d["kind"] == "VMSingle" else spec["vmstorage"]["vmBackup"]
            assert set(backup) <= VMBACKUP_FIELDS, set(backup) - VMBACKUP_FIELDS
            assert backup["acceptEULA"] is True and backup["restore"]["onStart"]["enabled"] is True
            assert backup["image"]["repository"].endswith("/snapferry")
            assert all(isinstance(v, str) for v in backup["extraArgs"].values())  # map[string]string
        else:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    assert {"VMSingle", "VMCluster", "Secret", "NetworkPolicy", "helm-vmbackupmanager", "helm-containers"} <= kinds
