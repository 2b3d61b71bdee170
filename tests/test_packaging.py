"""Packaging: the wheel and sdist build; the wheel, installed into a clean venv with the locked
dependencies and nothing else, backs up and restores; a base install names the extra a gs:// or
azblob:// URL needs; every third-party import of src/ is a declared dependency."""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import tree_digest
from tests.servers import REPO

LOCK = REPO / "requirements.lock"
TEST_LOCK = REPO / "requirements-test.lock"
# The Pythons a clean venv is made with: every 3.11+ this machine provides (scripts/setup.sh
# names where they come from); 3.11 is the floor pyproject declares.
PYTHONS = ("3.11", "3.12", "3.13")


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel built from it, as `python -m build` makes them from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    wheels, sdists = list(out.glob("snapferry-*.whl")), list(out.glob("snapferry-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode())


def test_the_wheel_declares_license_extras_classifiers_and_urls(dist: dict[str, Path]) -> None:
    meta = _metadata(dist["wheel"])
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert set(meta.get_all("Provides-Extra") or []) >= {"gcs", "azure", "all"}
    requires = meta.get_all("Requires-Dist") or []
    base = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert {"urllib3", "botocore", "click"} <= base
    assert not base & {"google-cloud-storage", "azure-storage-blob", "requests"}  # only with their extras
    assert any(r.startswith("google-cloud-storage") and 'extra == "gcs"' in r for r in requires)
    assert any(r.startswith("azure-storage-blob") and 'extra == "azure"' in r for r in requires)
    runtime = [r.split(";")[0] for r in requires if not re.search(r'extra == "(test|bench)"', r)]
    assert all(re.search(r"[<>=]", r) for r in runtime), runtime  # a range, never a bare name
    assert not [r for r in runtime if "==" in r], runtime  # ranges: the lock pins, pyproject does not
    assert "Programming Language :: Python :: 3.11" in (meta.get_all("Classifier") or [])
    assert meta.get_all("Project-URL")
    with zipfile.ZipFile(dist["wheel"]) as z:
        license_text = next(z.read(n) for n in z.namelist() if n.endswith("licenses/LICENSE"))
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    with tarfile.open(dist["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"LICENSE", "pyproject.toml", "README.md", "src/snapferry/cli/main.py"} <= names


def _declared() -> list[str]:
    """Requirement strings of pyproject.toml: the base and the gcs, azure and all extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["gcs"], *extras["azure"], *extras["all"]]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ;\[]", req)[0].lower().replace("_", "-")


def _third_party_imports() -> dict[str, set[str]]:
    """Imported module (two levels for the google.* and azure.* namespaces) -> the src files that
    import it, for every module outside the stdlib and snapferry."""
    out: dict[str, set[str]] = {}
    for path in (REPO / "src" / "snapferry").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for n in names:
                parts = n.split(".")
                if parts[0] in sys.stdlib_module_names or parts[0] == "snapferry":
                    continue
                key = ".".join(parts[:2]) if parts[0] in NAMESPACES else parts[0]
                out.setdefault(key, set()).add(str(path.relative_to(REPO)))
    return out


NAMESPACES = {"google", "azure"}
# The distribution of each namespace package src imports.
NAMESPACED = {"google.auth": "google-auth", "google.oauth2": "google-auth", "google.api_core": "google-api-core",
              "google.cloud": "google-cloud-storage", "azure.core": "azure-core", "azure.storage": "azure-storage-blob"}
# Imported only where used, with a message naming the package when it is missing.
OPTIONAL = {"azure.identity"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = {_name(r) for r in _declared()}
    providers = importlib.metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for module, files in _third_party_imports().items():
        if module in OPTIONAL:
            continue
        dists = {NAMESPACED[module]} if module in NAMESPACED else {
            d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            missing[module] = sorted(files)
    assert not missing, missing


def _python(version: str) -> str:
    """pythonX.Y from PATH, or pyenv's (its shims answer only for the selected version)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}"),
                  *map(str, sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}")))]
    for c in candidates:
        if c and subprocess.run([c, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return c
    pytest.fail(f"python{version} is missing; this machine's Pythons 3.11 to 3.13 come with its image "
                "(pyenv) or from the distribution", pytrace=False)


def _constraints(tmp: Path) -> Path:
    """The lock's pins without its hashes: pip takes hashes only for what a file installs itself,
    and a base install leaves the extras' packages out."""
    text = re.sub(r" \\\n(\s+--hash=\S+( \\)?\n?)+", "\n", LOCK.read_text())
    out = tmp / "constraints.txt"
    out.write_text(text)
    return out


@pytest.mark.parametrize("version", PYTHONS)
def test_the_wheel_in_a_clean_venv_backs_up_restores_and_names_missing_extras(
        version: str, dist: dict[str, Path], snapshot_tree: Path, tmp_path: Path) -> None:
    venv = tmp_path / f"venv-{version}"
    subprocess.run([_python(version), "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(_constraints(tmp_path)),
                        str(dist["wheel"])], capture_output=True, text=True, timeout=900, env=env, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    freeze = subprocess.run([str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True, env=env,
                            check=True).stdout
    assert "google-cloud-storage" not in freeze and "azure-storage-blob" not in freeze  # the base install only
    snapferry = str(venv / "bin" / "snapferry")
    dst = f"fs://{tmp_path / 'backups' / 'b1'}"
    for argv in (["backup", "--src", str(snapshot_tree), "--dst", dst],
                 ["restore", "--src", dst, "--dst", str(tmp_path / "restored")]):
        r = subprocess.run([snapferry, *argv], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
    assert tree_digest(tmp_path / "restored") == tree_digest(snapshot_tree)

    for url, extra in (("gs://bucket/vm", "gcs"), ("azblob://container/vm", "azure")):
        r = subprocess.run([snapferry, "backup", "--src", str(snapshot_tree), "--dst", url],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert f"pip install 'snapferry[{extra}]'" in r.stderr and url in r.stderr
        assert "Traceback" not in r.stderr


def test_the_locks_pin_every_package_with_hashes_and_cover_pyproject() -> None:
    for lock in (LOCK, TEST_LOCK):
        text = lock.read_text()
        reqs = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.M)
        assert reqs, lock
        assert "--hash=sha256:" in text
        assert "file://" not in text and "@ " not in text  # nothing of this checkout or machine
        assert "pip-compile" in text  # docs/install.md: how to regenerate it
    pinned = {n.lower() for n, _ in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", LOCK.read_text(), re.M)}
    for r in _declared():
        assert _name(r) in pinned, r
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    test_pinned = {n.lower() for n, _ in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", TEST_LOCK.read_text(), re.M)}
    for r in [*_declared(), *extras["test"], *extras["bench"]]:
        assert _name(r) in test_pinned, r
