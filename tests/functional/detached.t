#!/bin/bash
# detached.t - a device unmounted while a program still writes in it: the
# unmount is lazy, so its filesystem lives on, detached. info says so
# (active, "detached-busy"); a snapshot, rmdir or resize is refused with
# EBUSY and a reason in ctl until the program lets go, or the device is
# mounted again (then the snapshot freezes it and holds the data). After
# the writer exits, the snapshot holds everything it wrote.
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
grep -q "^busy: its filesystem lives on, detached, on /dev/.*fuser -vm" "$M/lz/ctl"
ok $? "and says the filesystem stays in use"
is "$(jq -c '[.mounted, .active, .state]' "$M/lz/info")" '[false,true,"detached-busy"]' \
	"info: not mounted, but active, detached-busy"
kill -0 "$writer"; ok $? "the writer goes on"

is "$(errno_of mkdir "$M/lz/snap")" "EBUSY" "a snapshot is refused: EBUSY"
grep -q "^error: snapshot of 'lz': its block device .* is still in use.*fuser -vm" "$M/lz/ctl"
ok $? "ctl says why and how to find the programs"
[ ! -e "$M/lz/snap" ]; ok $? "no snapshot was made"
is "$(errno_of rmdir "$M/lz")" "EBUSY" "rmdir is refused: EBUSY"
is "$(errno_of write "$M/lz/ctl" "resize 1G")" "EBUSY" "resize is refused: EBUSY"
is "$(jq .size "$M/lz/info")" "536870912" "the size did not change"

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
is "$(jq -r .state "$M/lz/info")" "detached-busy" "unmounted again: detached-busy"

touch "$WORK/stop"; wait "$writer"
state=
for _ in $(seq 50); do state=$(jq -c '[.active, .state]' "$M/lz/info"); [ "$state" = '[false,"inactive"]' ] && break; sleep 0.1; done
is "$state" '[false,"inactive"]' "once the writer exits: inactive"
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
