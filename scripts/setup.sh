#!/usr/bin/env bash
# Installs everything snapferry and its test suite need on a fresh Debian 12 machine:
# the Python package in .venv, the real VictoriaMetrics tools (apt), Azurite (npm).
# Safe to rerun; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# victoria-metrics: the real database and tools; podman, mmdebstrap and runc: the image's tests
# (tests/container.py makes the base image with mmdebstrap and runs podman with runc);
# socat: an mTLS front before victoria-metrics, whose open-source builds have no -mtls
# (tests/test_snapshot_tls.py); tinyproxy: a real forward proxy that logs and marks (Via)
# every request it forwards (tests/test_proxy.py).
APT_PACKAGES=""
for tool in vmrestore:victoria-metrics victoria-metrics:victoria-metrics podman:podman mmdebstrap:mmdebstrap runc:runc \
            socat:socat tinyproxy:tinyproxy-bin; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES ${tool#*:}"
done
if [ -n "$APT_PACKAGES" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi

# Today's VictoriaMetrics (1.145.0, Debian unstable's package), unpacked into .cache/vm, not installed.
bash scripts/fetch-vm-sid.sh >/dev/null

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Every package at the version and hash requirements-test.lock pins (docs/install.md: how to
# regenerate it), then snapferry itself, editable, without resolving anything again.
.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-test.lock
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
# An editable install leaves src/ uncompiled, and with PYTHONDONTWRITEBYTECODE set no run
# caches its bytecode: every command would compile snapferry again (about 40 ms of CPU at
# start-up, measured on `snapferry info`). pip compiles a regular install the same way.
.venv/bin/python -m compileall -q src >/dev/null

if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p .cache/azurite
  npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@3.35.0 >/dev/null
fi
