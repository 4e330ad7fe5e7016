#!/usr/bin/env bash
# bench/run.sh - how long a trivial `corral run` takes next to bubblewrap and
# unshare, measured in one run on this machine (DESIGN.md section 8).
#
#   bench/run.sh /abs/path/to/build/corral        (what `make bench` runs)
#
# Four candidates each run /bin/true; bench/timeit.c starts them without a
# shell, interleaved round by round, and reports median, p90 and min wall
# time per candidate:
#   plain    /bin/true itself: the cost of fork, exec and reap;
#   unshare  util-linux unshare with corral's namespaces: the kernel floor;
#   bwrap    bubblewrap with comparable isolation: the yardstick;
#   corral   `corral run -- /bin/true`.
# The goal is corral <= 0.5 x bwrap; corral must never exceed 1.0 x bwrap.
#
# Environment: BENCH_RUNS (default 200) counted runs per candidate after
# BENCH_WARMUP (default 20) warm-up runs; CC (default cc) builds timeit.
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: bench/run.sh /abs/path/to/corral"
corral=$1
[ -x "$corral" ] || die "'$corral' is not an executable corral binary (run make first)"
case $corral in /*) ;; *) corral=$PWD/$corral ;; esac

runs=${BENCH_RUNS:-200}
warmup=${BENCH_WARMUP:-20}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"
[[ $warmup =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a non-negative integer, not '$warmup'"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=$(dirname "$corral")/bench
timeit=$outdir/timeit
mkdir -p "$outdir"
if [ ! -x "$timeit" ] || [ "$here/timeit.c" -nt "$timeit" ]; then
	"${CC:-cc}" -std=gnu11 -O2 -Wall -Wextra -o "$timeit" "$here/timeit.c" ||
		die "cannot build the timing driver from $here/timeit.c"
fi

bwrap=$(command -v bwrap || true)
unshare=$(command -v unshare || true)
[ -n "$bwrap" ] || die "bwrap is not installed (Debian package bubblewrap; scripts/install-deps installs it)"
[ -n "$unshare" ] || die "unshare is not installed (Debian package util-linux)"
true_bin=/bin/true

# bwrap with what corral sets up, as far as bwrap can express it: every
# namespace, /usr read-only with the host's top-level /usr symlinks, a new
# /proc, a minimal /dev (with devpts and shm), tmpfs /tmp and home.
bwrap_cmd=("$bwrap" --unshare-all --die-with-parent
	--ro-bind /usr /usr)
for l in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$l" ]; then
		bwrap_cmd+=(--symlink "$(readlink "/$l")" "/$l")
	fi
done
bwrap_cmd+=(--proc /proc --dev /dev --tmpfs /tmp --tmpfs /home/baponi "$true_bin")
unshare_cmd=("$unshare" --user --map-root-user --mount --pid --fork --net --ipc --uts --cgroup "$true_bin")
corral_cmd=("$corral" run -- "$true_bin")

# Each must work once before it is timed; say which one does not.
for c in bwrap_cmd unshare_cmd corral_cmd; do
	declare -n cmd=$c
	err=$("${cmd[@]}" 2>&1 >/dev/null) || die "'${cmd[*]}' fails here: ${err:-no message}"
	unset -n cmd
done

# The cgroup layout, detected as corral detects it: a cgroup2 file system
# at /sys/fs/cgroup is v2; anything else means the v1 controllers.
cgroup_layout() {
	local root=/sys/fs/cgroup type ctrls
	type=$(stat -f -c %T "$root" 2>/dev/null || echo none)
	if [ "$type" = cgroup2fs ]; then
		ctrls=$(cat "$root/cgroup.controllers" 2>/dev/null || true)
		echo "v2 (unified at $root; controllers: ${ctrls:-none})"
		return
	fi
	ctrls=$(awk '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++)
		if (o[i] ~ /^(cpu|cpuacct|cpuset|memory|pids|freezer|blkio|devices|io|name=.*)$/) printf "%s%s", sep, o[i], sep = "," }' /proc/mounts)
	local hybrid=""
	if [ "$(stat -f -c %T "$root/unified" 2>/dev/null)" = cgroup2fs ]; then
		local v2c
		v2c=$(cat "$root/unified/cgroup.controllers" 2>/dev/null || true)
		hybrid="; cgroup2 at $root/unified with controllers: ${v2c:-none}"
	fi
	echo "v1 (controllers: ${ctrls:-none}$hybrid)"
}

echo "corral bench: $runs runs per candidate after $warmup warm-ups, interleaved"
echo "kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown CPU))"
echo "cgroups: $(cgroup_layout)"
echo "versions: $("$bwrap" --version 2>/dev/null | head -n1), unshare $("$unshare" --version 2>/dev/null | awk '{ print $NF; exit }')"
echo "commands:"
echo "  plain    $true_bin"
echo "  unshare  ${unshare_cmd[*]}"
echo "  bwrap    ${bwrap_cmd[*]}"
echo "  corral   ${corral_cmd[*]}"
echo

results=$("$timeit" -n "$runs" -w "$warmup" -- \
	plain "$true_bin" :: \
	unshare "${unshare_cmd[@]}" :: \
	bwrap "${bwrap_cmd[@]}" :: \
	corral "${corral_cmd[@]}") || die "timing failed"

awk '
	{ med[$1] = $2; p90[$1] = $3; min[$1] = $4; max[$1] = $5 }
	END {
		printf "%-9s %12s %12s %12s %12s\n", "candidate", "median_us", "p90_us", "min_us", "max_us"
		n = split("plain unshare bwrap corral", order, " ")
		for (i = 1; i <= n; i++) {
			c = order[i]
			printf "%-9s %12.1f %12.1f %12.1f %12.1f\n", c, med[c], p90[c], min[c], max[c]
		}
		rb = med["corral"] / med["bwrap"]
		ru = med["corral"] / med["unshare"]
		printf "\n"
		printf "corral / bwrap   = %.2f  (medians; goal <= 0.50, must <= 1.00)\n", rb
		printf "corral / unshare = %.2f  (medians; unshare is the floor)\n", ru
		if (rb <= 0.5)
			v = "goal met: corral is at most half of bwrap"
		else if (rb <= 1.0)
			v = sprintf("goal missed, must met: corral is %.2f x bwrap (goal 0.50 x)", rb)
		else
			v = sprintf("FAIL: corral is slower than bwrap (%.2f x; must be <= 1.00 x)", rb)
		printf "verdict: %s\n", v
	}' <<<"$results"
