#!/bin/sh
# py-spy profiles of snapferry restores; prints the top functions per restore.
#   bench/profile.sh [a,b,c] [--scale GiB] ...   (a = fs://, b = s3://, c = s3:// via the proxy)
# Env: PROFILE_IDLE=1 adds idle samples (where threads wait); PROFILE_FLAGS="--concurrency 16"
# passes extra snapferry restore flags; PROFILE_LABEL=x names the output file profile-<s>-x.txt.
set -e
cd "$(dirname "$0")/.."
which=${1:-a,b,c}
[ $# -gt 0 ] && shift
exec .venv/bin/python -m bench.run --profile --profile-scenarios "$which" "$@"
