#!/bin/bash
# ro.t - -o ro (doc/design.md §8): a start that changes nothing in the
# pool or STATEDIR. Every file and directory under STATEDIR (the pool's
# data file included: a loop device writing to it moves its mtime) keeps
# its contents, size, mtime and ctime across a read-only run; the tree is
# read-only (EROFS), devices are reached through rootfs's automount,
# mounted read-only without journal replay under /run/thinfs/PREFIX, and
# the engine refuses changes itself (engine-cli without FUSE); an
# add a crash interrupted is hidden, not rolled back, and a read-write
# start afterwards rolls it back as always; a read-only start beside a
# read-write run is refused, and a read-write start refuses what a killed
# read-only run left, saying what it is.
. "$(dirname "$0")/lib.sh"
[ "$BACKEND" = reflink ] || skip_all "reflink's store and images; dm's -o ro is case 2b of tests/vm/dm-docker.sh"

# Everything under STATEDIR as a line each: type, size, mtime, ctime and,
# for a small file, its checksum. (Run only while nothing is mounted
# under STATEDIR.)
snapshot() {
	find "$S" -xdev -printf '%y %p %s %T@ %C@\n' | sort
	find "$S" -xdev -type f -size -1024k -print0 | sort -z | xargs -0 sha256sum
}
ro_mnt() { echo "/run/thinfs/thinfs-ro-${S_ID}"; }

S_ID=$(stat -c '%Hd:%Ld-%i' "$S")
start_daemon; ok $? "read-write start"
mkdir "$M/img"; ctl img mount
echo hello > "$M/img/rootfs/file"; mkdir "$M/img/rootfs/dir"
ctl img unmount
mkdir "$M/img/snap" "$M/gone"
ctl img/snap mount; echo changed > "$M/img/snap/rootfs/file"; ctl img/snap unmount
rmdir "$M/gone"
id=$(jq .device_id "$M/img/info")
stop_daemon; ok $? "stop"
before=$(snapshot)

start_daemon "ro"; ok $? "start with -o ro"
is "$(ls "$M")" "$(printf 'ctl\nimg\ninfo')" "the tree as the read-write run left it"
is "$(ls "$M/img")" "$(printf 'ctl\ninfo\nrootfs\nsnap')" "and the snapshot under its origin"
is "$(cat "$M/img/rootfs/file")" "hello" "a device's files are read through rootfs"
is "$(cat "$M/img/snap/rootfs/file")" "changed" "and the snapshot's own"
dir=$(ro_mnt)/$id
is "$(readlink "$M/img/rootfs")" "$dir" "rootfs leads to /run/thinfs/PREFIX/ID, outside STATEDIR"
opts=$(awk -v d="$dir" '$5 == d { split($0, a, " - "); split(a[2], b, " "); print $6 "," b[3] }' /proc/self/mountinfo)
case $opts in ro,*norecovery*) ok 0 "mounted ro,norecovery" ;; *) ok 1 "mounted ro,norecovery (got '$opts')" ;; esac
jq -e '.automounted and .read_only' "$M/img/info" >/dev/null; ok $? "info: automounted, read-only"
is "$(errno_of create "$M/img/rootfs/new")" "EROFS" "writing in a device: EROFS"
is "$(errno_of mkdir "$M/img/x")" "EROFS" "mkdir (snapshot): EROFS"
is "$(errno_of mkdir "$M/new")" "EROFS" "mkdir at the top: EROFS"
is "$(errno_of rmdir "$M/img/snap")" "EROFS" "rmdir: EROFS"
is "$(errno_of rename "$M/img/snap" "$M/img/snap2")" "EROFS" "rename: EROFS"
is "$(errno_of write "$M/img/ctl" mount)" "EROFS" "writing ctl: EROFS"
is "$(errno_of write "$M/ctl" "resize-pool 16G")" "EROFS" "writing the pool's ctl: EROFS"
jq -e . "$M/info" >/dev/null; ok $? "the pool's info reads"
# The usage figures come from FIEMAP, a read.
cat "$M/img/info" >/dev/null; sleep 1
for _ in $(seq 1 50); do
	[ "$(jq .usage_at "$M/img/snap/info")" != 0 ] && break
	sleep 0.2
done
jq -e '.usage_at > 0' "$M/img/snap/info" >/dev/null; ok $? "usage figures are read"
stop_daemon; ok $? "stop"
[ ! -e "$(ro_mnt)" ]; ok $? "its mount directory in /run is gone"
# The engine alone, read-only, without the read-only FUSE mount in front
# of it: it refuses every change itself (EROFS is errno 30).
cli=${top_builddir:-.}/tests/engine/engine-cli
ro_cli() { ENGINE_CLI_RO=1 "$cli" "$S" "$BASE_OPTS" "$@" >/dev/null 2>>"$WORK/log"; echo $?; }
is "$(ro_cli add x img)" 30 "engine, read-only: add (mkdir) is EROFS"
is "$(ro_cli delete snap)" 30 "  delete (rmdir) too"
is "$(ro_cli rename snap snap2)" 30 "  rename too"
is "$(ro_cli mount snap)" 30 "  a read-write mount too"
is "$(ro_cli resize-pool 16G)" 30 "  resize-pool too"
is "$(ro_cli mount-ro snap)" 0 "  a read-only mount is allowed"
after=$(snapshot)
is "$after" "$before" "nothing under STATEDIR changed: contents, sizes, mtimes, ctimes"
[ "$after" = "$before" ] || diff <(echo "$before") <(echo "$after") | head -20 | sed 's/^/# /'

# A read-only run while a read-write one runs: refused, nothing touched.
start_daemon; ok $? "read-write start"
mkdir -p "$WORK/mnt2"
out=$(timeout 60 "$THINFS" -f -o "ro,backend=$BACKEND" "$S" "$WORK/mnt2" 2>&1)
ok $((!$?)) "a read-only start beside a running read-write one fails"
case $out in *"another thinfs (pid $PID) serves $S on $M"*) ok 0 "  saying why" ;; *) ok 1 "  saying why: $out" ;; esac
stop_daemon
# A read-write run killed: its store stays mounted on STATEDIR/reflink,
# which a read-only start does not take over.
start_daemon; ok $? "read-write start"
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
abort_fuse; umount -l "$M" 2>/dev/null
out=$(timeout 60 "$THINFS" -f -o "ro,backend=$BACKEND" "$S" "$WORK/mnt2" 2>&1)
ok $((!$?)) "a read-only start over a killed read-write run's mounted store fails"
case $out in *"image store is mounted on $S/reflink"*) ok 0 "  saying why" ;; *) ok 1 "  saying why: $out" ;; esac
start_daemon; ok $? "a read-write start takes it over"
stop_daemon

# What a killed read-only run leaves: a read-only start takes it over, a
# read-write start refuses it, saying what to undo.
start_daemon "ro"; ok $? "read-only start"
cat "$M/img/rootfs/file" >/dev/null
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
abort_fuse; umount -l "$M" 2>/dev/null
start_daemon "ro"; ok $? "a read-only start over a killed read-only run's left-overs"
is "$(cat "$M/img/rootfs/file")" "hello" "  reads as before"
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
abort_fuse; umount -l "$M" 2>/dev/null
start_daemon 2>/dev/null; ok $((!$?)) "a read-write start over them is refused"
grep -q "attached read-only to /dev/loop[0-9]*, as a read-only thinfs run (-o ro) leaves it" "$WORK/log"
ok $? "  saying what they are"
start_daemon "ro"; ok $? "a read-only start and stop..."
stop_daemon
[ ! -e "$(ro_mnt)" ]; ok $? "  releases them: nothing left in /run/thinfs"
start_daemon; ok $? "then the read-write start works"
is "$(cat "$M/img/rootfs/file")" "hello" "  and the data is there"
stop_daemon

# An add interrupted by a crash: hidden read-only, rolled back read-write.
start_daemon; ok $? "read-write start"
ids_before=$(ls "$S/reflink/images" | sort)
stop_daemon
THINFS_FAULT=add-after-pool-create start_daemon
mkdir "$M/img/half" 2>/dev/null
wait_exit 30; ok $((!$?)) "the daemon died at add-after-pool-create"
abort_fuse; umount -l "$M" 2>/dev/null
[ -e "$S/metadata/half" ]; ok $? "it left the add's file"
# As after a reboot: the killed run's store mount and loop devices gone.
umount "$S/reflink" 2>/dev/null
for l in $(losetup -j "$S/devicemapper/data" -O NAME -n); do losetup -d "$l"; done
before=$(snapshot)
start_daemon "ro"; ok $? "read-only start over the interrupted add"
[ ! -e "$M/img/half" ]; ok $? "the interrupted add is not shown"
grep -q "read-only: hiding, not rolling back, the interrupted add of device 'half'" "$WORK/log"
ok $? "the log says it is hidden, not rolled back"
! grep -q "has no file in" "$WORK/log"; ok $? "  and does not call its pool device an orphan"
stop_daemon; ok $? "stop"
is "$(snapshot)" "$before" "the read-only start left the interrupted add on disk"
start_daemon; ok $? "read-write start"
[ ! -e "$M/img/half" ] && [ ! -e "$S/metadata/half" ]; ok $? "which rolls it back"
is "$(ls "$S/reflink/images" | sort)" "$ids_before" "and its image"
stop_daemon

# What -o ro refuses, changing nothing.
rm -rf "$WORK/none"
"$THINFS" -f -o "ro,backend=$BACKEND" "$WORK/none" "$M" >>"$WORK/log" 2>&1
ok $((!$?)) "-o ro on a missing state directory fails"
[ ! -e "$WORK/none" ]; ok $? "and does not make it"
mkdir "$WORK/empty"
"$THINFS" -f -o "ro,backend=$BACKEND" "$WORK/empty" "$M" >>"$WORK/log" 2>&1
ok $((!$?)) "-o ro on an empty directory fails"
is "$(ls -A "$WORK/empty")" "" "and leaves it empty"
grep -q "cannot start read-only: $WORK/empty/metadata" "$WORK/log"; ok $? "saying why"
out=$("$THINFS" -f -o "ro,dm.automount=false" "$S" "$M" 2>&1)
ok $((!$?)) "-o ro with dm.automount=false is refused"
case $out in *"ro: devices are reached only through rootfs"*) ok 0 "saying why" ;; *) ok 1 "saying why: $out" ;; esac

done_testing
