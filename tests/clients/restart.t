#!/bin/bash
# restart.t - what happens to running processes across a daemon stop and
# start (DESIGN.md §1: mounts outlive the daemon; the next start adopts
# them): a shell in a chroot that keeps reading and writing its files, a
# `sleep` whose cwd is inside rootfs, and a runc container (if runc runs
# here). Through the stop and the start, the device's mount stays, the
# processes keep running and reading, and the restarted daemon shows the
# device "mounted 1"; the same after a kill -9 of the daemon. Then the processes end and the device unmounts.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need chroot
need_busybox
start_daemon || skip_all "thinfs did not start"

make_rootfs box; ok $? "a busybox rootfs in device box, mounted"
R=$(readlink -f "$M/box/rootfs")
mnt_of() { awk -v m="$1" '$5 == m' /proc/self/mountinfo | grep -q .; }
mnt_of "$R"; ok $? "its filesystem is mounted on $R"

# The chroot loop: reads /etc/thinfs-device, counts in /tmp/count.
LOOP='n=0; while :; do read d < /etc/thinfs-device; n=$((n+1)); echo "$n $d" > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'
chroot "$M/box/rootfs" /bin/sh -c "$LOOP" </dev/null >/dev/null 2>&1 &
LOOP_PID=$!
(cd "$M/box/rootfs/root" && exec sleep 100000) </dev/null >/dev/null 2>&1 &
SLEEP_PID=$!
CTR=
if command -v runc >/dev/null && command -v jq >/dev/null; then
	B=$WORK/bundle
	mkdir -p "$B" && (cd "$B" && runc spec) &&
		jq --arg r "$R" --arg c "${LOOP//count/ccount}" '.root.path = $r | .root.readonly = false | .process.terminal = false |
			.process.args = ["/bin/sh", "-c", $c]' "$B/config.json" > "$B/c" && mv "$B/c" "$B/config.json"
	# root.path is where the link leads: runc refuses a symlinked root (runc.t).
	if (cd "$B" && timeout 60 runc --root "$WORK/runc" run -d "t$$" </dev/null >"$WORK/runc.out" 2>&1); then
		CTR=t$$
	else
		diag "runc does not run a container here, the container case is left out: $(tr '\n' ' ' <"$WORK/runc.out" | cut -c1-200)"
	fi
fi
trap '[ -n "$CTR" ] && runc --root "$WORK/runc" delete -f "$CTR" 2>/dev/null; kill $LOOP_PID $SLEEP_PID 2>/dev/null; cleanup' EXIT

# counter FILE: the loop's count in the device, read where the link leads.
counter() { cut -d' ' -f1 "$R/tmp/$1" 2>/dev/null; }
# advances FILE: the count grows within 5 s.
advances() {
	local a b i
	a=$(counter "$1")
	for i in $(seq 1 50); do
		sleep 0.1
		b=$(counter "$1")
		[ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] && return 0
	done
	return 1
}
sleep 1
advances count; ok $? "the chroot loop runs and counts"
[ -z "$CTR" ] || { advances ccount; ok $? "the container runs and counts"; }

stop_daemon; ok $? "the daemon stops (SIGTERM), with the device in use"
mnt_of "$R"; ok $? "the device's mount stays"
kill -0 $LOOP_PID && kill -0 $SLEEP_PID; ok $? "the processes keep running"
is "$(cut -d' ' -f2 "$R/tmp/count" 2>&1)" "box" "the loop still reads its file"
advances count; ok $? "and counts, with no daemon"
[ -z "$CTR" ] || { advances ccount; ok $? "the container counts, with no daemon"; }
[ -z "$CTR" ] || is "$(runc --root "$WORK/runc" state "$CTR" | jq -r .status)" "running" "runc says running"
is "$(readlink /proc/$SLEEP_PID/cwd)" "$R/root" "sleep's cwd is still in the device"

start_daemon; ok $? "the daemon starts again"
is "$(ctl_state box)" "mounted 1" "the restarted daemon shows the device mounted 1"
is "$(jq -r '"\(.mounted) \(.mount_count)"' "$M/box/info" 2>&1)" "true 1" "info: mounted, mount_count 1"
is "$(readlink -f "$M/box/rootfs")" "$R" "rootfs leads to the same mount"
is "$(awk -v m="$R" '$5 == m' /proc/self/mountinfo | wc -l)" "1" "mounted once, not twice"
advances count; ok $? "the loop still counts"
is "$(cut -d' ' -f2 "$M/box/rootfs/tmp/count" 2>&1)" "box" "its file read through NAME/rootfs again"
[ -z "$CTR" ] || { advances ccount; ok $? "the container still counts"; }
kill -0 $SLEEP_PID; ok $? "sleep still runs"

# A crash (kill -9) instead of a stop: the same again.
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
mnt_of "$R"; ok $? "after kill -9 the device's mount stays"
advances count; ok $? "the loop counts, with the daemon dead"
[ -z "$CTR" ] || { advances ccount; ok $? "the container counts, with the daemon dead"; }
start_daemon; ok $? "the daemon starts after the crash"
is "$(ctl_state box)" "mounted 1" "and shows the device mounted 1"
is "$(awk -v m="$R" '$5 == m' /proc/self/mountinfo | wc -l)" "1" "mounted once, not twice"
is "$(cut -d' ' -f2 "$M/box/rootfs/tmp/count" 2>&1)" "box" "the loop's file read through NAME/rootfs"
kill -0 $LOOP_PID && kill -0 $SLEEP_PID; ok $? "the processes still run"

# The end: the processes stop, and the device unmounts.
[ -z "$CTR" ] || runc --root "$WORK/runc" delete -f "$CTR"
CTR=
kill $LOOP_PID $SLEEP_PID; wait $LOOP_PID $SLEEP_PID 2>/dev/null
ctl box unmount; ok $? "unmount once nothing uses it"
! mnt_of "$R"; ok $? "the mount is gone"
is "$(ctl_state box)" "unmounted" "ctl says unmounted"

stop_daemon; ok $? "daemon stops cleanly"
done_testing
