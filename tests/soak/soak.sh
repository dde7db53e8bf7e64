#!/bin/bash
# soak.sh -- the 8-client stress test (tests/functional/stress.t) run long
# against a daemon, sampling the daemon's RSS and open file descriptors at
# minute 1 and at the end (default: 10 minutes), for leaks. Meant for the
# sanitizer build (configure --enable-sanitizers): ASan reports a leak or
# a memory error at the daemon's exit, and stress.t's own checks (no hung
# client, no errno outside the contract, nothing left over) still apply.
#
#   tests/soak/soak.sh [-b reflink|dm] [-m MINUTES] [-t THINFS] [-o OUTDIR]
#
# Prints a summary; exits non-zero if stress.t failed, the daemon logged a
# sanitizer report, RSS grew by more than 50% (and 16 MiB) or the fd count
# grew by more than 8 between minute 1 and the end. Needs root.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
backend=reflink
minutes=10
thinfs=${THINFS:-}
out=
while getopts "b:m:t:o:" o; do
	case $o in
	b) backend=$OPTARG ;;
	m) minutes=$OPTARG ;;
	t) thinfs=$OPTARG ;;
	o) out=$OPTARG ;;
	*) echo "usage: $0 [-b reflink|dm] [-m MINUTES] [-t THINFS] [-o OUTDIR]" >&2; exit 2 ;;
	esac
done
[ -n "$thinfs" ] || { echo "soak: give the daemon with -t (e.g. build/san/thinfs) or THINFS" >&2; exit 2; }
thinfs=$(readlink -f "$thinfs")
[ -x "$thinfs" ] || { echo "soak: $thinfs is not executable" >&2; exit 2; }
[ -n "$out" ] || out=$(mktemp -d /var/tmp/thinfs-soak.XXXXXX)
mkdir -p "$out"
secs=$((minutes * 60))

sample() { # sample PID LABEL
	local rss fds
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
	fds=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
	echo "$2 rss_kib=${rss:-?} fds=$fds" | tee -a "$out/samples"
	eval "${2}_rss=${rss:-0} ${2}_fds=$fds"
}

echo "soak: backend=$backend, $minutes min, daemon $thinfs, output in $out"
# ASan keeps freed memory in a quarantine of 256 MiB by default, which a
# slow run (dm in the guest) fills over minutes: RSS grew by the quarantine,
# not by live memory. A small one makes RSS follow what the daemon holds.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:quarantine_size_mb=16} \
THINFS="$thinfs" THINFS_BACKEND=$backend THINFS_STRESS_SECONDS=$secs \
	bash "$top_srcdir/tests/functional/stress.t" >"$out/stress.tap" 2>&1 &
spid=$!
# The daemon: the thinfs child of stress.t's shell.
dpid=
for _ in $(seq 1 600); do
	dpid=$(pgrep -P "$spid" -x thinfs | head -n 1)
	[ -n "$dpid" ] && break
	sleep 0.1
done
[ -n "$dpid" ] || { echo "soak: the daemon did not start"; wait "$spid"; cat "$out/stress.tap"; exit 1; }
echo "soak: daemon pid $dpid"
sleep 60
sample "$dpid" m1
sleep $((secs - 70))
sample "$dpid" end
wait "$spid"
st=$?
sed 's/^/  /' "$out/stress.tap" | grep -v '^  #   ' | tail -n 20
rc=0
[ $st -eq 0 ] || { echo "soak: FAIL stress.t exited $st"; rc=1; }
# stress.t's log lives in its own temp dir, removed at its end: ASan's
# report goes to the daemon's stderr, which lib.sh appended to it and
# done_testing printed only on failure; sanitizer reports make it fail.
if grep -q "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:" "$out/stress.tap"; then
	echo "soak: FAIL a sanitizer report"; rc=1
fi
drss=$((end_rss - m1_rss))
dfds=$((end_fds - m1_fds))
echo "soak: RSS ${m1_rss} KiB at minute 1, ${end_rss} KiB at minute $minutes (${drss} KiB); fds ${m1_fds} -> ${end_fds}"
if [ "$drss" -gt $((m1_rss / 2)) ] && [ "$drss" -gt 16384 ]; then
	echo "soak: FAIL RSS grew by more than half"; rc=1
fi
[ "$dfds" -le 8 ] || { echo "soak: FAIL open fds grew by $dfds"; rc=1; }
[ $rc -eq 0 ] && echo "soak: PASS"
exit $rc
