#!/bin/bash
# restart.t - state survives an orderly restart, a kill -9 with devices
# mounted (the dead mount is cleaned up), and fusermount3 -u; an xfs pool
# grows a mounted device online.
. "$(dirname "$0")/lib.sh"

start_daemon; ok $? "daemon starts"
mkdir "$M/a" "$M/a/b" "$M/c"
ctl a mount; echo keep > "$M/a/rootfs/file"; ctl a unmount
ids=$(for d in a a/b c; do jq .device_id "$M/$d/info"; done | tr '\n' ' ')
stop_daemon; ok $? "SIGTERM stops it"
start_daemon; ok $? "restart"
[ -d "$M/a/b" ] && [ -d "$M/c" ]; ok $? "the tree is back"
is "$(for d in a a/b c; do jq .device_id "$M/$d/info"; done | tr '\n' ' ')" "$ids" "with the same device IDs"
ctl a mount; is "$(cat "$M/a/rootfs/file")" "keep" "and the data"

# kill -9 with devices mounted.
ctl c mount; echo synced > "$M/c/rootfs/s"; sync
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
ls "$M" 2>&1 | grep -q 'not connected'; ok $? "after kill -9 the mount point is dead (ENOTCONN)"
start_daemon; ok $? "a new start on the same mount point cleans it up"
grep -q "daemon that died" "$WORK/log"; ok $? "and says so in the log"
[ -d "$M/a/b" ] && [ -d "$M/c" ]; ok $? "the tree is intact"
is "$(cat "$M/a/ctl")" "unmounted" "devices start unmounted"
ctl c mount; ok $? "a device that was mounted when the daemon died mounts again"
is "$(cat "$M/c/rootfs/s")" "synced" "with its synced data"
ctl c unmount

# fusermount3 -u ends the daemon in order too.
fusermount3 -u "$M"; ok $? "fusermount3 -u"
wait_exit 60; st=$?
is "$st" "0" "the daemon exits cleanly"
grep -q "pool .* closed" "$WORK/log"; ok $? "after closing the pool"

# An xfs pool: a mounted device grows online (xfs_growfs).
rm -rf "$S"; mkdir -p "$S"
BASE_OPTS="backend=$BACKEND,dm.loopdatasize=8G,dm.basesize=512M,dm.fs=xfs"
start_daemon; ok $? "start an xfs pool"
is "$(jq -r .base_device_fs "$M/info")" "xfs" "the base is xfs"
mkdir "$M/x" "$M/x/y" && ctl x mount && echo hi > "$M/x/rootfs/f"
mkdir "$M/x/z"; ok $? "snapshot of a mounted xfs device"
ctl x/z mount; is "$(cat "$M/x/z/rootfs/f")" "hi" "mounted next to its origin (nouuid)"
before=$(df -B1M --output=size "$M/x/rootfs" | tail -1 | tr -d ' ')
ctl x "resize 2G"; ok $? "resize a mounted xfs device to 2G"
after=$(df -B1M --output=size "$M/x/rootfs" | tail -1 | tr -d ' ')
[ "$after" -gt $((before * 3)) ]; ok $? "its filesystem grew online ($before -> $after MiB)"
ctl x/z unmount; ctl x unmount
stop_daemon; ok $? "stopped"
start_daemon dm.basesize=1G; ok $? "restart with a larger dm.basesize"
is "$(jq .base_device_size "$M/info")" "1073741824" "the base device grew"
mkdir "$M/big" && ctl big mount
sz=$(df -B1M --output=size "$M/big/rootfs" | tail -1 | tr -d ' ')
[ "$sz" -gt 900 ]; ok $? "and new devices get the larger filesystem ($sz MiB)"
ctl big unmount
stop_daemon
out=$("$THINFS" -f -o "backend=$BACKEND,dm.basesize=256M" "$S" "$M" 2>&1); st=$?
[ $st -ne 0 ] && echo "$out" | grep -q "cannot shrink"; ok $? "a smaller dm.basesize is refused"
done_testing
