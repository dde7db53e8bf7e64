#!/bin/bash
# data.t - what a snapshot holds: the origin's data before it, not after;
# writes in a snapshot never reach the origin; a snapshot of a mounted
# device with unsynced data is consistent; container-style use with tar.
. "$(dirname "$0")/lib.sh"

start_daemon; ok $? "daemon starts"
mkdir "$M/origin" && ctl origin mount; ok $? "origin mounted"
R=$M/origin/rootfs
echo before > "$R/before.txt"
dd if=/dev/urandom of="$R/blob" bs=1M count=8 status=none
sum=$(sha256sum < "$R/blob")
sync
mkdir "$M/origin/snap1"; ok $? "snapshot of the mounted origin"
echo after > "$R/after.txt"
echo changed > "$R/before.txt"
ctl origin/snap1 mount
S1=$M/origin/snap1/rootfs
is "$(cat "$S1/before.txt")" "before" "the snapshot holds the data from before it"
[ ! -e "$S1/after.txt" ]; ok $? "and not what was written after"
is "$(sha256sum < "$S1/blob")" "$sum" "an 8 MiB file is identical in the snapshot"
if [ "$BACKEND" = reflink ]; then
	# A reflinked image takes direct I/O only in 4K units (XFS): the loop
	# device has 4K sectors and no second page cache.
	loop=$(jq -r .dev_path "$M/origin/snap1/info")
	dio=$(cat "/sys/block/${loop#/dev/}/loop/dio" 2>/dev/null)
	is "$dio $(blockdev --getss "$loop")" "1 4096" "the snapshot's loop device ($loop) does direct I/O with 4K sectors"
fi
echo mine > "$S1/snap-only.txt"
rm "$S1/blob"
[ ! -e "$R/snap-only.txt" ] && [ -e "$R/blob" ]; ok $? "writes and deletes in the snapshot do not reach the origin"

# Unsynced data: written, not synced, snapshot at once.
for i in $(seq 1 50); do echo "line $i" >> "$R/unsynced.txt"; done
mkdir "$M/origin/snap2"; ok $? "snapshot right after unsynced writes"
ctl origin/snap2 mount
is "$(wc -l < "$M/origin/snap2/rootfs/unsynced.txt")" "50" "the unsynced writes are all in the snapshot"
is "$(cat "$M/origin/snap2/rootfs/before.txt")" "changed" "and the latest content"

# Snapshot under write load.
( for i in $(seq 1 2000); do echo "$i" >> "$R/load.txt"; done ) &
w=$!
made=0
for i in 1 2 3; do mkdir "$M/origin/load$i" || break; made=$((made + 1)); done
wait $w
is "$made" 3 "three snapshots while a writer appends"
seq 1 2000 | cmp -s - "$R/load.txt"; ok $? "the origin holds all 2000 lines, in order"
# Each snapshot: mountable, a clean prefix of the file (no torn or lost
# line), at least as long as the one taken before it.
prev=0
for i in 1 2 3; do
	f=$M/origin/load$i/rootfs/load.txt
	n=none
	if ctl "origin/load$i" mount; then
		n=0
		[ -e "$f" ] && n=$(wc -l < "$f")
	fi
	[ "$n" != none ] && [ "$n" -ge "$prev" ] && { [ "$n" -eq 0 ] || seq 1 "$n" | cmp -s - "$f"; }
	ok $? "snapshot load$i mounts and holds a clean prefix of the file, no shorter than the snapshot before it ($([ "$n" = none ] && echo "mount failed" || echo "$n lines"); before it $prev)"
	[ "$n" = none ] || prev=$n
	ctl "origin/load$i" unmount
done

# Container use: a root filesystem at a plain path.
mkdir "$WORK/tree"; mkdir -p "$WORK/tree/etc" "$WORK/tree/bin"
echo thinfs-test > "$WORK/tree/etc/hostname"; cp /bin/true "$WORK/tree/bin/"
mkdir "$M/ct" && ctl ct mount
tar -C "$WORK/tree" -cf - . | tar -C "$M/ct/rootfs" -xf -; ok $? "tar -x into rootfs"
is "$(cat "$M/ct/rootfs/etc/hostname")" "thinfs-test" "the files are there"
cmp -s /bin/true "$M/ct/rootfs/bin/true"; ok $? "binaries intact"
tar -C "$M/ct/rootfs" -cf - . | tar -tf - | grep -q './etc/hostname'; ok $? "tar -c out of rootfs"

for d in ct origin/snap2 origin/snap1 origin; do ctl "$d" unmount; done
stop_daemon; ok $? "stopped"
done_testing
