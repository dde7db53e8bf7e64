#!/bin/bash
# dm-guest.sh -- the part of tests/vm/dm.t that runs inside the guest: the
# dm backend's test parts, in order, each one's TAP to
# $THINFS_VM_RESULTS/NN-NAME.tap, its stderr to .err, its exit status to
# .rc and its run time (s) to .time, for dm.t to combine on the host.
# Environment: top_srcdir, top_builddir, THINFS, THINFS_VM_RESULTS.
set -u
: "${top_srcdir:?}" "${top_builddir:?}" "${THINFS:?}" "${THINFS_VM_RESULTS:?}"
export top_srcdir top_builddir THINFS
export THINFS_BACKEND=dm
export THINFS_STRESS_SECONDS=20
R=$THINFS_VM_RESULTS
part_timeout=${THINFS_VM_PART_TIMEOUT:-420}
n=0

run_part() { # run_part NAME COMMAND...
	local name=$1 t0 rc
	shift
	n=$((n + 1))
	local f=$R/$(printf %02d $n)-$name
	echo "dm-guest: $name ..."
	t0=$(date +%s%N)
	(cd "$top_builddir" && timeout -k 10 "$part_timeout" "$@") >"$f.tap" 2>"$f.err" </dev/null
	rc=$?
	echo "$rc" >"$f.rc"
	t0=$((($(date +%s%N) - t0) / 1000000))
	printf '%d.%03d\n' $((t0 / 1000)) $((t0 % 1000)) >"$f.time"
	echo "dm-guest: $name exit $rc in $(cat "$f.time") s"
}

# The engine test over dm (tests/engine/test-pool-dm.c), always: missing,
# it fails (no plan, exit 126/127); skipping here (77), dm.t fails it.
run_part engine-test-pool-dm "$top_builddir/tests/engine/test-pool-dm"
# THINFS_VM_PARTS=quick (tests/run's sanitizer build, so that CI fits its
# time): the engine test, the core of the namespace, the stress test and
# the crash points; the plain build runs every part.
if [ "${THINFS_VM_PARTS:-full}" = quick ]; then
	for t in namespace errors stress; do
		run_part "functional-$t" bash "$top_srcdir/tests/functional/$t.t"
	done
	run_part dm-crash bash "$top_srcdir/tests/vm/dm-crash.sh"
	echo "dm-guest: done (quick)"
	exit 0
fi
for t in namespace errors data restart remount detached stress safety automount listing; do
	run_part "functional-$t" bash "$top_srcdir/tests/functional/$t.t"
done
run_part dm-cases bash "$top_srcdir/tests/vm/dm-cases.sh"
run_part dm-safety bash "$top_srcdir/tests/vm/dm-safety.sh"
part_timeout=$((part_timeout > 900 ? part_timeout : 900)) run_part dm-docker bash "$top_srcdir/tests/vm/dm-docker.sh" # dockerd under TCG: ~7 min
part_timeout=$((part_timeout > 1500 ? part_timeout : 1500)) run_part dm-fullpool bash "$top_srcdir/tests/vm/dm-fullpool.sh" # fills 3 pools under TCG: 5-15 min
run_part dm-crash bash "$top_srcdir/tests/vm/dm-crash.sh"
echo "dm-guest: done"
