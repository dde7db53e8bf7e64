# lib.sh - sourced by the functional tests: runs a thinfs daemon on a
# temporary state directory and mount point, TAP helpers, errno probes,
# and a cleanup that leaves no mount, loop device or dm device behind.
# Environment: THINFS (the binary), THINFS_BACKEND (reflink|dm, default
# reflink), THINFS_FS (ext4|xfs, default ext4), THINFS_TEST_OPTS (extra -o).
set -u

THINFS=${THINFS:-${top_builddir:-.}/thinfs}
BACKEND=${THINFS_BACKEND:-reflink}
FS=${THINFS_FS:-ext4}
T_N=0
T_FAILED=0
PID=

skip_all() { echo "1..0 # SKIP $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (FUSE, loop devices, mounts)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$THINFS" ] || skip_all "$THINFS not built"

WORK=$(mktemp -d /var/tmp/thinfs-ft-XXXXXX)
S=$WORK/state
M=$WORK/mnt
mkdir -p "$S" "$M"
chmod 755 "$WORK" # other users browse the mount in errors.t
BASE_OPTS="backend=$BACKEND,dm.loopdatasize=8G,dm.basesize=512M,dm.fs=$FS${THINFS_TEST_OPTS:+,$THINFS_TEST_OPTS}"

ok() {
	T_N=$((T_N + 1))
	if [ "$1" -eq 0 ]; then echo "ok $T_N - $2"; else echo "not ok $T_N - $2"; T_FAILED=$((T_FAILED + 1)); fi
}
# is GOT WANT DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; echo "#   got '$1', want '$2'"; fi
}
diag() { echo "# $*"; }
# skip N REASON: N checks that cannot run here, said so.
skip() { local i; for i in $(seq 1 "$1"); do T_N=$((T_N + 1)); echo "ok $T_N # SKIP $2"; done; }

. "$(dirname "${BASH_SOURCE[0]}")/errno.sh"

is_mounted() { awk -v m="$M" '$5 == m && / - fuse\.thinfs /' /proc/self/mountinfo | grep -q .; }

# start_daemon [EXTRA_OPTS]: start in the foreground, in the background.
start_daemon() {
	"$THINFS" -f -o "$BASE_OPTS${1:+,$1}" "$S" "$M" >>"$WORK/log" 2>&1 &
	PID=$!
	for _ in $(seq 1 600); do
		# A dead mount left by a killed daemon is listed too: wait until
		# ours answers.
		# (statfs always asks the daemon; a stat may come from the
		# kernel's cache of a dead mount.)
		is_mounted && stat -f "$M" >/dev/null 2>&1 && [ -f "$M/ctl" ] && return 0
		kill -0 "$PID" 2>/dev/null || { PID=; diag "thinfs exited at start:"; tail -n 20 "$WORK/log" | sed 's/^/#   /'; return 1; }
		sleep 0.1
	done
	diag "thinfs did not mount within 60 s"
	return 1
}

# wait_exit [SECONDS]: wait for the daemon to exit by itself; one that
# does not is killed and counts as a failure. Returns its exit status.
wait_exit() {
	local st
	if ! timeout "${1:-120}" tail --pid="$PID" -f /dev/null; then
		diag "thinfs did not exit within ${1:-120} s: killing it"
		kill -9 "$PID" 2>/dev/null
		abort_fuse
	fi
	wait "$PID" 2>/dev/null
	st=$?
	PID=
	return $st
}

# stop_daemon: SIGTERM, wait, the mount must be gone.
stop_daemon() {
	local st
	[ -n "$PID" ] || return 0
	kill -TERM "$PID" 2>/dev/null
	wait_exit 120
	st=$?
	! is_mounted || return 1
	return $st
}

ctl() { printf '%s\n' "$2" > "$M/$1/ctl"; }

prefix() { echo "thinfs-$(stat -c '%Hd:%Ld-%i' "$S")"; }

# abort_fuse: a daemon that died with a request in flight can leave the
# mount hanging; the kernel's fusectl can cut the connection.
abort_fuse() {
	local dev
	dev=$(awk -v m="$M" '$5 == m && / - fuse\.thinfs / {split($3, a, ":"); print a[2]}' /proc/self/mountinfo)
	[ -n "$dev" ] || return 0
	[ -d /sys/fs/fuse/connections/"$dev" ] || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
	[ -e /sys/fs/fuse/connections/"$dev"/abort ] && echo 1 > /sys/fs/fuse/connections/"$dev"/abort
}

cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null && sleep 0.5
	abort_fuse
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	local ro_dir=
	[ -d "$S" ] && ro_dir=/run/thinfs/thinfs-ro-$(stat -c '%Hd:%Ld-%i' "$S")
	for m in $(awk -v w="$WORK" -v r="${ro_dir:-/nonexistent}" 'index($5, w) == 1 || index($5, r) == 1 {print $5}' \
		/proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	[ -n "$ro_dir" ] && rm -rf --one-file-system "$ro_dir" 2>/dev/null
	if command -v dmsetup >/dev/null && [ -e /dev/mapper/control ] && [ -d "$S" ]; then
		local p
		p=$(prefix)
		for d in $(dmsetup ls 2>/dev/null | awk '{print $1}' | grep "^$p-" | grep -v -- "-pool$"); do
			dmsetup remove -f "$d" >/dev/null 2>&1
		done
		dmsetup remove -f "$p-pool" >/dev/null 2>&1
	fi
	for f in "$S"/devicemapper/data "$S"/devicemapper/metadata; do
		[ -e "$f" ] || continue
		for l in $(losetup -j "$f" -O NAME -n 2>/dev/null); do losetup -d "$l" 2>/dev/null; done
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

done_testing() {
	echo "1..$T_N"
	if [ "$T_FAILED" -ne 0 ]; then
		diag "daemon log (tail):"
		tail -n 40 "$WORK/log" | sed 's/^/#   /'
	fi
	exit $((T_FAILED > 0))
}
