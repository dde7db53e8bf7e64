#!/bin/bash
# listing.t - listing the namespace mounts nothing; only a walk *into* a
# device's rootfs automounts it (doc/design.md §1, "Automount"). With
# autofs in the kernel (the QEMU guest's; tests/vm/dm-guest.sh runs this
# with the dm backend): tree -d, ls -lR, find -type d, stat -L, readlink,
# test -d and bash completion of an unmounted device's rootfs mount
# nothing, ls DEV/rootfs/ still shows its files, the automount expires,
# and the autofs is taken over after a stop that leaves a device in use
# and after a kill -9. Without autofs (this build host's kernel) the
# daemon says once that ls -l and stat of rootfs mount the device, and a
# walk through rootfs still finds the files.
. "$(dirname "$0")/lib.sh"

# Device filesystems mounted under STATEDIR/mnt (not the autofs itself).
dev_mounts() { awk -v p="$S/mnt/" 'index($5, p) == 1' /proc/self/mountinfo | wc -l; }
states() { for d in a a/b c; do head -1 "$M/$d/ctl"; done | tr '\n' ' '; }
none="unmounted unmounted unmounted "

start_daemon "dm.automount_timeout=2s"; ok $? "daemon starts"
mkdir "$M/a" "$M/c"
ctl a mount; echo hello > "$M/a/rootfs/file"; ctl a unmount
mkdir "$M/a/b"
# autofs in the kernel (built in, or a module it loads on the first mount).
if ! grep -qw autofs /proc/filesystems && ! { modprobe -q autofs4 2>/dev/null && grep -qw autofs /proc/filesystems; }; then
	is "$(grep -c 'kernel has no autofs: ls -l and stat of rootfs mount the device' "$WORK/log")" 1 \
		"no autofs here: the log says once that ls -l and stat of rootfs mount the device"
	is "$(cat "$M/a/rootfs/file" 2>&1)" "hello" "a walk through rootfs finds the files"
	stop_daemon; ok $? "stop"
	done_testing
fi

grep -q "only a walk into a device's rootfs mounts it" "$WORK/log"; ok $? "the daemon uses the autofs"
is "$(dev_mounts) $(states)" "0 $none" "nothing mounted to begin with"
# Each listing, and a check after it that it mounted nothing.
listing() { # listing DESCRIPTION COMMAND...
	local what=$1
	shift
	"$@" >/dev/null 2>&1
	is "$(dev_mounts) $(states)" "0 $none" "$what mounts nothing"
}
listing "tree -d MOUNTPOINT" tree -d "$M"
listing "tree MOUNTPOINT" tree "$M"
listing "ls -lR MOUNTPOINT" ls -lR "$M"
listing "ls -l --color=always DEV/" ls -l --color=always "$M/a/"
listing "find MOUNTPOINT -type d" find "$M" -type d
listing "stat -L DEV/rootfs" stat -L "$M/a/rootfs" "$M/a/b/rootfs"
listing "readlink DEV/rootfs" readlink "$M/a/rootfs"
listing "test -d DEV/rootfs" test -d "$M/a/rootfs"
listing "bash completion of DEV/r (compgen -f)" compgen -f "$M/a/r"
listing "bash completion of DEV/ (compgen -d)" compgen -d "$M/a/"
is "$(stat -L -c %F "$M/a/rootfs")" "directory" "stat -L of rootfs says directory"

# A walk into rootfs mounts it, read-only, uncounted, and it expires.
# The walk is made by a process that then stays inside, so that the
# automount (2 s timeout) cannot expire while a slow guest checks it.
(cd "$M/a/rootfs/" && ls >"$WORK/ls.out" && exec sleep 60) & inside=$!
for _ in $(seq 1 300); do [ -s "$WORK/ls.out" ] && break; sleep 0.1; done
is "$(tr '\n' ' ' <"$WORK/ls.out")" "file lost+found " "ls DEV/rootfs/ shows the device's files"
is "$(states)" "automounted unmounted unmounted " "only that device is automounted"
is "$(dev_mounts)" 1 "one device filesystem mounted"
kill "$inside"; wait "$inside" 2>/dev/null
is "$(cat "$M/a/b/rootfs/file" 2>&1)" "hello" "cat DEV/rootfs/FILE of another device mounts it"
gone=1
for _ in $(seq 1 150); do
	[ "$(dev_mounts)" = 0 ] && { gone=0; break; }
	sleep 0.1
done
ok $gone "unused, the automounts expire"
listing "stat -L DEV/rootfs after an expiry" stat -L "$M/a/rootfs"
b_id=$(jq .device_id "$M/a/b/info")
[ -d "$S/mnt/$b_id" ]; ok $? "an unmounted device keeps its directory in the autofs"
is "$(errno_of rmdir "$M/a/b")" "OK" "rmdir of a device once automounted"
[ ! -e "$S/mnt/$b_id" ]; ok $? "its directory in the autofs goes with it"
mkdir "$M/a/b"

# A stop that leaves a device in use keeps the autofs; the next start
# takes it over, and a walk mounts again.
(cd "$M/a/rootfs/" && exec sleep 600) & holder=$!
sleep 0.5
stop_daemon; ok $? "stop with an automount in use"
awk -v d="$S/mnt" '$5 == d && / - autofs /' /proc/self/mountinfo | grep -q .; ok $? "the autofs stays"
start_daemon "dm.automount_timeout=2s"; ok $? "start again"
grep -q "autofs on $S/mnt left by an earlier run" "$WORK/log"; ok $? "it takes the autofs over"
is "$(ls "$M/c/rootfs/" 2>&1)" "lost+found" "a walk into another device's rootfs mounts it"
listing_some() { "$@" >/dev/null 2>&1; }
before=$(dev_mounts)
listing_some tree -d "$M"; listing_some stat -L "$M/a/b/rootfs"
is "$(dev_mounts)" "$before" "listing still mounts nothing"

# kill -9: the autofs is left with no one to answer; the next start
# recovers it.
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
kill "$holder"; wait "$holder" 2>/dev/null
start_daemon "dm.automount_timeout=2s"; ok $? "start after kill -9"
is "$(ls "$M/a/b/rootfs/" | tr '\n' ' ')" "file lost+found " "a walk into rootfs mounts again"
before=$(dev_mounts)
listing_some ls -lR "$M"; listing_some compgen -f "$M/c/r"
is "$(dev_mounts)" "$before" "and listing mounts nothing"
stop_daemon; ok $? "stop"
awk -v d="$S/mnt" '$5 == d && / - autofs /' /proc/self/mountinfo | grep -q .
ok $((!$?)) "a stop with nothing in use unmounts the autofs"
done_testing
