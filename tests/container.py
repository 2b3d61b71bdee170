"""The image (deploy/Containerfile), built and run for real with podman.

No image registry is reachable here, so the base (Debian 12 with its Python, what
python:3.11-slim-bookworm gives users) is made locally with mmdebstrap and cached as a
tarball under .cache/image, keyed by the recipe; the image is built once per session (podman
keeps its layers, so a rerun with the same lock and sources rebuilds nothing). podman is
configured through a containers.conf this module writes (runc: crun refuses this kernel's
hybrid cgroups; capped ulimits: root here may not raise them), named by CONTAINERS_CONF.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import REPO

CACHE = REPO / ".cache" / "image"
CONTAINERFILE = REPO / "deploy" / "Containerfile"
SUITE = "bookworm"
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# A slim base: Debian's Essential set (no apt) and Python, merged /usr without the usrmerge
# package (and the perl it pulls in), no docs, man pages or locales.
MMDEBSTRAP = (
    "mmdebstrap", "--quiet", "--format=tar", "--variant=essential",
    "--include=python3,python3-venv,ca-certificates,passwd",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)
CONTAINERS_CONF = """\
# Written by tests/container.py for the suite's podman runs.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""
# What the image's content depends on: a change to any of these builds a new one.
IMAGE_INPUTS = ("deploy/Containerfile", ".dockerignore", "requirements.lock", "pyproject.toml", "README.md",
                "LICENSE")


def require_tool(name: str) -> str:
    """podman and mmdebstrap are installed by scripts/setup.sh: a missing one fails the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing; run scripts/setup.sh (it installs podman, mmdebstrap and runc)",
                    pytrace=False)
    return path


def _digest(parts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()[:16]


def _source_files() -> list[Path]:
    # as .dockerignore filters the build context: no bytecode, no setuptools metadata
    return sorted(p for p in (REPO / "src").rglob("*") if p.is_file()
                  and not any(part == "__pycache__" or part.endswith(".egg-info") for part in p.parts))


def image_key() -> str:
    files = [REPO / n for n in IMAGE_INPUTS] + _source_files()
    return _digest([str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() for f in files])


@dataclass(frozen=True)
class Podman:
    """podman with the suite's containers.conf."""

    binary: str
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout, check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} ... exited {p.returncode}:\n"
                                 f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        return p

    def exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0


def podman_tool() -> Podman:
    binary = require_tool("podman")
    require_tool("runc")
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(CONTAINERS_CONF)
        tmp.replace(conf)
    return Podman(binary, {**os.environ, "CONTAINERS_CONF": str(conf)})


def base_image(pm: Podman) -> str:
    """localhost/snapferry-base:KEY, imported from the cached mmdebstrap tarball (made if missing)."""
    argv = [*MMDEBSTRAP, SUITE, "OUT", *SOURCES]
    key = _digest([a.encode() for a in argv])
    ref = f"localhost/snapferry-base:{key}"
    if pm.exists(ref):
        return ref
    tarball = CACHE / f"base-{key}.tar"
    if not tarball.exists():
        require_tool("mmdebstrap")
        tmp = CACHE / f"base-{key}.tar.part"
        cmd = [a if a != "OUT" else str(tmp) for a in argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        assert p.returncode == 0, f"mmdebstrap failed:\n{p.stderr[-4000:]}"
        tmp.replace(tarball)
    pm.run("import", "--change", "CMD=[\"python3\"]", str(tarball), ref)
    return ref


def pip_build_mounts() -> list[str]:
    """This machine's pip reaches PyPI through its own CA bundle: lend it to the build, read-only,
    rather than baking it into the image."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    return ["-v", f"{bundle}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"] \
        if bundle.exists() else []


def build_image(pm: Podman) -> str:
    base = base_image(pm)
    ref = f"localhost/snapferry:test-{image_key()}"
    if pm.exists(ref):
        return ref
    pm.run("build", "--network=host", "--pull=never", "-f", str(CONTAINERFILE), "-t", ref,
           "--build-arg", f"PYTHON_IMAGE={base}", *pip_build_mounts(), str(REPO), timeout=1200)
    # the suite's earlier builds, and the build stages left untagged (labelled as the image), are
    # of no further use
    for old in pm.run("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/snapferry").stdout.split():
        if old.startswith("localhost/snapferry:test-") and old != ref:
            pm.run("rmi", old, check=False)
    pm.run("image", "prune", "--force", "--filter", "label=org.opencontainers.image.title=snapferry", check=False)
    return ref


@pytest.fixture(scope="session")
def image() -> Iterator[tuple[Podman, str]]:
    """(podman, the image's reference), built once per session."""
    pm = podman_tool()
    yield pm, build_image(pm)
