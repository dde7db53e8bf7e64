#!/bin/bash
# detached.t - a device unmounted while a program still writes in it: the
# unmount is lazy, so its filesystem lives on, detached. info says so
# (active, "detached-busy"); a snapshot, rmdir or resize is refused with
# EBUSY and a reason in ctl until the program lets go, or the device is
# mounted again (then the snapshot freezes it and holds the data). After
# the writer exits, the snapshot holds everything it wrote. On dm, whose
# suspend freezes even a detached filesystem, the snapshot is taken, and
# holds what was written before it; without dm.use_deferred_removal the
# device stays active ("active"), as the unmount could not deactivate it,
# until a stop and start asks for its deferred removal. Through a restart
# it stays detached-busy (reflink).
. "$(dirname "$0")/lib.sh"

start_daemon; ok $? "start"
mkdir "$M/lz"; ctl lz mount
# The writer: its working directory in the device, a line every 5 ms,
# never an fsync.
python3 -c '
import os, sys, time
os.chdir(sys.argv[1])
f = open("log", "a")
i = 0
while not os.path.exists(sys.argv[2]):
    f.write("line %d\n" % i); f.flush(); i += 1; time.sleep(0.005)
' "$M/lz/rootfs" "$WORK/stop" &
writer=$!
for _ in $(seq 50); do [ -s "$M/lz/rootfs/log" ] && break; sleep 0.1; done
sleep 0.5
ctl lz unmount; ok $? "unmount returns 0 (a lazy unmount)"
is "$(head -1 "$M/lz/ctl")" "unmounted" "ctl: unmounted"
if [ "$BACKEND" = dm ]; then
	busy_state='\[false,true,"(detached-busy|active)"\]'
else
	busy_state='\[false,true,"detached-busy"\]'
fi
st=$(jq -c '[.mounted, .active, .state]' "$M/lz/info")
[[ $st =~ ^$busy_state$ ]]; ok $? "info: not mounted, but active, detached-busy ($st)"
if [[ $st = *detached-busy* ]]; then
	grep -q "^busy: its filesystem lives on, detached, on /dev/.*fuser -vm" "$M/lz/ctl"
	ok $? "and ctl says the filesystem stays in use"
else
	skip 1 "dm without deferred removal: the device stays active"
fi
kill -0 "$writer"; ok $? "the writer goes on"

if [ "$BACKEND" = dm ]; then
	n=$(wc -l < "/proc/$writer/cwd/log")
	mkdir "$M/lz/snap"; ok $? "dm: the snapshot is taken (the suspend freezes the detached filesystem)"
	ctl lz/snap mount
	got=$(wc -l < "$M/lz/snap/rootfs/log")
	[ "$got" -ge "$n" ] && [ "$n" -gt 10 ]; ok $? "and holds the lines written before it ($got >= $n)"
	ctl lz/snap unmount; rmdir "$M/lz/snap"
else
	is "$(errno_of mkdir "$M/lz/snap")" "EBUSY" "a snapshot is refused: EBUSY"
	grep -q "^error: [0-9TZ:-]* snapshot of 'lz': its block device .* is still in use.*fuser -vm" "$M/lz/ctl"
	ok $? "ctl says why and how to find the programs"
	[ ! -e "$M/lz/snap" ]; ok $? "no snapshot was made"
fi
is "$(errno_of rmdir "$M/lz")" "EBUSY" "rmdir is refused: EBUSY"
is "$(errno_of write "$M/lz/ctl" "resize 1G")" "EBUSY" "resize is refused: EBUSY"
is "$(jq .size "$M/lz/info")" "536870912" "the size did not change"
# The refusal's error is ctl's second line, the busy line after it; the
# listing (.devices, thinfs list) says what info says.
info_state=$(jq -r .state "$M/lz/info")
sed -n 2p "$M/lz/ctl" | grep -q "^error: [0-9TZ:-]* resize"; ok $? "ctl's second line is the error: $(sed -n 2p "$M/lz/ctl" | cut -c1-60)"
if [ "$info_state" = detached-busy ]; then
	sed -n 3p "$M/lz/ctl" | grep -q "^busy: "; ok $? "and the busy line comes after it"
else
	skip 1 "dm without deferred removal: the device stays active"
fi
is "$(jq -r 'select(.name == "lz") | .state' "$M/.devices")" "$info_state" ".devices: the state info has ($info_state)"
is "$("$THINFS" list "$M" | awk '$1 == "lz" {print $7}')" "$info_state" "thinfs list: the state info has"

# Mounted again, the live filesystem is the one mounted: a snapshot
# freezes it and holds what was written before it.
ctl lz mount; ok $? "mount it again while the writer writes"
is "$(jq -r .state "$M/lz/info")" "mounted" "info: mounted"
n=$(wc -l < "$M/lz/rootfs/log")
mkdir "$M/lz/frozen"; ok $? "a snapshot of it succeeds"
ctl lz/frozen mount
got=$(wc -l < "$M/lz/frozen/rootfs/log")
[ "$got" -ge "$n" ] && [ "$n" -gt 10 ]; ok $? "and holds the lines written before it ($got >= $n)"
cmp -n "$(head -n "$n" "$M/lz/rootfs/log" | wc -c)" "$M/lz/rootfs/log" "$M/lz/frozen/rootfs/log"
ok $? "the same lines"
ctl lz/frozen unmount
ctl lz unmount
st=$(jq -c '[.mounted, .active, .state]' "$M/lz/info")
[[ $st =~ ^$busy_state$ ]]; ok $? "unmounted again: detached-busy ($st)"

# Through a restart of the daemon, with the writer still writing.
stop_daemon; ok $? "stop while the detached filesystem is in use"
start_daemon; ok $? "start again"
if [ "$BACKEND" = dm ]; then
	# The stop asked for the device's deferred removal, and libdm
	# without udev (the test guest) removes its /dev/mapper node at
	# once: the start has no node to open to ask.
	skip 2 "dm without udev: the node of a device pending removal is gone"
else
	st=$(jq -c '[.mounted, .active, .state]' "$M/lz/info")
	[[ $st =~ ^$busy_state$ ]]; ok $? "after the restart: still detached-busy ($st)"
	is "$(errno_of mkdir "$M/lz/snap")" "EBUSY" "and a snapshot is still refused"
fi
kill -0 "$writer"; ok $? "the writer still goes on"

touch "$WORK/stop"; wait "$writer"
# (On dm the start above asked for its deferred removal.)
want='[false,"inactive"]'
state=
for _ in $(seq 50); do state=$(jq -c '[.active, .state]' "$M/lz/info"); [ "$state" = "$want" ] && break; sleep 0.1; done
is "$state" "$want" "once the writer exits: $want"
mkdir "$M/lz/snap"; ok $? "the snapshot succeeds"
ctl lz mount; ctl lz/snap mount
is "$(sha256sum < "$M/lz/snap/rootfs/log")" "$(sha256sum < "$M/lz/rootfs/log")" "and holds all the writer wrote"
[ "$(wc -l < "$M/lz/rootfs/log")" -gt "$n" ]; ok $? "(more than before the first snapshot)"
ctl lz/snap unmount; ctl lz unmount
rmdir "$M/lz/snap" "$M/lz/frozen"; ok $? "rmdir of the snapshots"
ctl lz "resize 1G"; ok $? "resize works once released"
rmdir "$M/lz"; ok $? "rmdir too"
stop_daemon; ok $? "stop"
done_testing
