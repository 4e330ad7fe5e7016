#!/usr/bin/env bash
# bench/egress.sh - what the egress proxy (127.0.0.1:3128 in a sandbox)
# costs: a 100 MiB download from a local HTTP server on 127.0.0.2 with curl
# on the host, beside the same curl in a sandbox through the proxy
# (absolute-form and a CONNECT tunnel), as medians and ratios (goal: proxy /
# direct >= 0.8); and the latency one CONNECT adds to a TCP connection.
#
#   bench/egress.sh /abs/path/to/build/corral        (for `make bench`)
#
# The measuring is done by bench/egress.py (Python 3, standard library
# only), which starts the HTTP server and its own `corral serve` on free
# loopback ports with a temporary state directory and removes it afterwards.
# Environment: BENCH_DOWNLOADS (default 9) downloads per candidate after one
# warm-up round; BENCH_CONNECTS (default 200) connections per candidate
# after BENCH_WARMUP (default 20) warm-ups.
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: bench/egress.sh /abs/path/to/corral"
corral=$1
[ -x "$corral" ] || die "'$corral' is not an executable corral binary (run make first)"
case $corral in /*) ;; *) corral=$PWD/$corral ;; esac
command -v curl >/dev/null || die "curl is not installed (Debian package curl)"
python=$(command -v /usr/bin/python3 || command -v python3 || true)
[ -n "$python" ] || die "python3 is not installed"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$python" "$here/egress.py" "$corral"
