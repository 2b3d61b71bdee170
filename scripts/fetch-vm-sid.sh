#!/usr/bin/env bash
# Fetches today's VictoriaMetrics (Debian unstable's package) into .cache/vm/<version>/ without
# installing it: the package asks for a newer libzstd1 than Debian 12 has, yet its binaries run
# with Debian 12's. Prints the directory that holds victoria-metrics, vmbackup, vmrestore, vmalert.
# Safe to rerun: skipped when the binaries are there.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${VM_SID_VERSION:-1.145.0}"
dest=".cache/vm/$version"
if [ -x "$dest/usr/bin/victoria-metrics" ] && [ -x "$dest/usr/bin/vmrestore" ]; then
  echo "$PWD/$dest/usr/bin"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
echo "deb $mirror sid main" > "$work/sources.list"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${opts[@]}" update -qq >/dev/null
(cd "$work" && apt-get "${opts[@]}" download -qq "victoria-metrics=$version*" >/dev/null)
deb=$(ls "$work"/victoria-metrics_*.deb)
mkdir -p "$dest.partial"
dpkg-deb -x "$deb" "$dest.partial"
rm -rf "$dest"; mv "$dest.partial" "$dest"
echo "$PWD/$dest/usr/bin"
