#!/usr/bin/env bash
# bench/api.sh - an inline API round trip of `echo hi` (bash, with a
# thread_id) against a running `corral serve`, beside bwrap running the same
# command directly; and executions per second at concurrency 1, 2 and 16
# (DESIGN.md section 8: the round trip costs no more than bwrap alone).
#
#   bench/api.sh /abs/path/to/build/corral        (for `make bench`)
#
# The measuring is done by bench/api.py (Python 3, standard library only),
# which starts its own server on a free loopback port with a temporary state
# directory and removes it afterwards.  Environment: BENCH_RUNS (default
# 200) round trips per candidate after BENCH_WARMUP (default 20) warm-ups;
# BENCH_EXECUTIONS (default 400) executions per concurrency level.
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: bench/api.sh /abs/path/to/corral"
corral=$1
[ -x "$corral" ] || die "'$corral' is not an executable corral binary (run make first)"
case $corral in /*) ;; *) corral=$PWD/$corral ;; esac
command -v bwrap >/dev/null || die "bwrap is not installed (Debian package bubblewrap)"
python=$(command -v /usr/bin/python3 || command -v python3 || true)
[ -n "$python" ] || die "python3 is not installed"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$python" "$here/api.py" "$corral"
