#!/bin/bash
# run-long.sh -- the chaos test (tests/functional/chaos.t) run long: N
# rounds (default 100) of load, kill -9 at a random moment, restart and the
# oracle, with the engine's consistency check every 10th round.
#
#   tests/chaos/run-long.sh [-b reflink|dm] [-n ROUNDS] [-s SEED] [-t THINFS]
#
# reflink runs here (root). dm needs device-mapper: run it in the guest,
#   tests/vm/run-in-vm.sh -e THINFS -e top_builddir RESDIR -- \
#       bash tests/chaos/run-long.sh -b dm -n 100
# (thin_check is added to the check there). The TAP stream goes to stdout;
# the last lines summarise. Exit status: chaos.t's.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
backend=reflink
n=100
seed=
thinfs=${THINFS:-}
while getopts "b:n:s:t:" o; do
	case $o in
	b) backend=$OPTARG ;;
	n) n=$OPTARG ;;
	s) seed=$OPTARG ;;
	t) thinfs=$OPTARG ;;
	*) echo "usage: $0 [-b reflink|dm] [-n ROUNDS] [-s SEED] [-t THINFS]" >&2; exit 2 ;;
	esac
done
[ -n "$thinfs" ] || { echo "run-long: give the daemon with -t or THINFS" >&2; exit 2; }
thinfs=$(readlink -f "$thinfs")
export THINFS=$thinfs THINFS_BACKEND=$backend THINFS_CHAOS_ITERATIONS=$n
export THINFS_CHAOS_CHECK_EVERY=${THINFS_CHAOS_CHECK_EVERY:-10}
export top_builddir=${top_builddir:-$(dirname "$thinfs")}
[ -n "$seed" ] && export THINFS_CHAOS_SEED=$seed
t0=$SECONDS
bash "$here/../functional/chaos.t"
st=$?
echo "# run-long: backend $backend, $n rounds, $((SECONDS - t0)) s, exit $st"
exit $st
