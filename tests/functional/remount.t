#!/bin/bash
# remount.t - explicit mounts survive a stop and a start, and a kill -9
# and a start: each device comes back mounted as it was (read-write or
# read-only, with its count); one unmounted to 0 stays unmounted, even
# after a kill inside the unmount; a read-only run (-o ro) mounts none
# and writes nothing; an older thinfs's file gets a record.
. "$(dirname "$0")/lib.sh"

# state NAME: what a user sees of a device's mounts.
state() {
	echo "$(head -1 "$M/$1/ctl") $(jq -c '[.mounted, .mount_count, .read_only, .automounted]' "$M/$1/info")"
}
# check WHEN: rw mounted twice read-write, ro once read-only, both with
# the data written before.
check() {
	is "$(state rw)" "mounted 2 [true,2,false,false]" "$1: rw is mounted 2, read-write"
	is "$(state ro)" "mounted 1 [true,1,true,false]" "$1: ro is mounted 1, read-only"
	is "$(cat "$M/rw/rootfs/f" 2>&1)" "before" "$1: rw has its data"
	is "$(errno_of create "$M/rw/rootfs/new-$2")" "OK" "$1: a write in rw succeeds"
	is "$(errno_of create "$M/ro/rootfs/new")" "EROFS" "$1: a write in ro gets EROFS"
	is "$(cat "$M/ro/rootfs/f" 2>&1)" "ro data" "$1: ro has its data"
}

start_daemon; ok $? "start"
mkdir "$M/rw" "$M/ro" "$M/idle"
ctl ro mount && echo "ro data" > "$M/ro/rootfs/f" && ctl ro unmount && ctl ro "mount ro"
ctl rw mount && ctl rw mount && echo before > "$M/rw/rootfs/f"
is "$(state rw)" "mounted 2 [true,2,false,false]" "rw mounted twice"

stop_daemon; ok $? "an orderly stop"
! grep -q " $S/mnt/" /proc/self/mountinfo; ok $? "unmounted what nothing used"
start_daemon; ok $? "start again"
check "after a stop and start" 1
is "$(state idle)" "unmounted [false,0,false,false]" "a device never mounted stays unmounted"

# kill -9 with both mounted: the start adopts the mounts still there.
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
start_daemon; ok $? "start after kill -9"
grep -q "device 'rw': adopted mount, read-write, count 2 as recorded" "$WORK/log"; ok $? "rw's mount was adopted"
check "after kill -9 and start" 2

# kill -9, then the mounts go (as a reboot takes them): the start mounts
# them anew.
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
abort_fuse; umount -l "$M" 2>/dev/null
for m in $(awk -v d="$S/mnt/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo); do umount "$m"; done
if [ "$BACKEND" = dm ]; then
	for d in $(dmsetup ls | awk '{print $1}' | grep "^$(prefix)-" | grep -v -- "-pool$"); do dmsetup remove "$d"; done
else
	for l in $(losetup -a | grep "$S/reflink/images/" | cut -d: -f1); do losetup -d "$l"; done
fi
start_daemon; ok $? "start after kill -9 with the mounts gone"
grep -q "device 'rw': mounted again as recorded (read-write, count 2)" "$WORK/log"; ok $? "rw was mounted anew"
check "after kill -9, mounts gone, start" 3

# -o ro: writes nothing, mounts none of them.
stop_daemon
sum=$(cat "$S/metadata/rw" "$S/metadata/ro" | sha256sum)
start_daemon ro; ok $? "start read-only (-o ro)"
is "$(head -1 "$M/rw/ctl")" "unmounted" "-o ro leaves a recorded mount unmounted"
stop_daemon
is "$(cat "$S/metadata/rw" "$S/metadata/ro" | sha256sum)" "$sum" "and changes no device file"

# Unmounted to 0: stays unmounted across a stop and start.
start_daemon; ok $? "read-write start"
check "after a read-only run" 4
ctl rw unmount; is "$(state rw)" "mounted 1 [true,1,false,false]" "rw unmounted once: count 1"
stop_daemon; start_daemon
is "$(state rw)" "mounted 1 [true,1,false,false]" "the count 1 survives a restart"
ctl rw unmount; ctl ro unmount
stop_daemon; start_daemon; ok $? "restart after unmounting both"
is "$(state rw)" "unmounted [false,0,false,false]" "rw stays unmounted"
is "$(state ro)" "unmounted [false,0,false,false]" "ro stays unmounted"
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
start_daemon; ok $? "start after kill -9"
is "$(state rw)" "unmounted [false,0,false,false]" "rw stays unmounted after kill -9"

# A kill between an unmount's record (0) and the unmount itself: the
# start adopts the mount and finishes the unmount.
ctl rw mount
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
jq '.mount_count = 0' "$S/metadata/rw" > "$WORK/rw.json" && mv "$WORK/rw.json" "$S/metadata/rw"
start_daemon; ok $? "start after a kill inside an unmount"
is "$(state rw)" "unmounted [false,0,false,false]" "a mount recorded 0 is unmounted at the start"
! grep -q " $S/mnt/$(jq .device_id "$S/metadata/rw") " /proc/self/mountinfo; ok $? "and its filesystem is gone"

# An older thinfs's file (no mount keys) with its mount adopted: the
# start records the mount, which stays.
ctl rw mount
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
jq 'del(.mount_count, .mount_read_only)' "$S/metadata/rw" > "$WORK/rw.json" && mv "$WORK/rw.json" "$S/metadata/rw"
start_daemon; ok $? "start with an older thinfs's file"
is "$(state rw)" "mounted 1 [true,1,false,false]" "its adopted mount stays, counted"
is "$(jq -c '[.mount_count, .mount_read_only]' "$S/metadata/rw")" "[1,false]" "and is recorded"
stop_daemon
done_testing
