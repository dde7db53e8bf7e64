#!/bin/bash
# safety.t - data-safety regressions, each found by a user's tool or a
# review and each able to fail on the code that had the defect: rm -r of a
# mounted device, concurrent first mounts, mv across directories, names of
# every length, a lost transaction record, a crash between an add's file
# and its commit, a stop with a device in use (doc/design.md §1, §4).
. "$(dirname "$0")/lib.sh"
cli=${top_builddir:-.}/tests/engine/engine-cli

start_daemon; ok $? "daemon starts"

# rm -r of a mounted device deletes nothing: rootfs is a symlink that rm
# does not follow, and the device directory itself is EBUSY.
mkdir "$M/img" "$M/img/child"
ctl img mount; echo precious > "$M/img/rootfs/data"; mkdir "$M/img/rootfs/dir"; echo deep > "$M/img/rootfs/dir/f"
rm -r "$M/img" 2>"$WORK/rm.err"; st=$?
[ "$st" -ne 0 ] && grep -q "Device or resource busy" "$WORK/rm.err"; ok $? "rm -r of a mounted device fails with EBUSY"
is "$(cat "$M/img/rootfs/data") $(cat "$M/img/rootfs/dir/f")" "precious deep" "and its files are all still there"
[ -d "$M/img" ] && [ -L "$M/img/rootfs" ]; ok $? "the device and its rootfs link remain"
is "$(head -1 "$M/img/ctl")" "mounted 1" "still mounted"
sed -n 2p "$M/img/ctl" | grep -Eq "^error: [0-9T:Z-]+ .*the device at '/img' is mounted \(1\)"
ok $? "and ctl says why rm -r failed: $(sed -n 2p "$M/img/ctl")"
# rm -r of a tree that holds a mounted device deletes nothing of it: the
# unmounted child stays too (doc/design.md §1, "rm -r").
[ -d "$M/img/child" ] && [ -f "$M/img/child/info" ]; ok $? "rm -r left the unmounted snapshot inside it"
find "$M" >/dev/null; du -s "$M" >/dev/null
is "$(cat "$M/img/rootfs/data")" "precious" "find and du over the pool touch nothing"

# 20 concurrent first mounts (libfuse's old default of 10 workers, each
# mount resolving a path in our own mount, hung the namespace for good).
for i in $(seq 1 20); do mkdir "$M/c$i"; done
pids=()
for i in $(seq 1 20); do (ctl "c$i" mount) & pids+=($!); done
hung=1
for _ in $(seq 1 1200); do
	left=0
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
	[ "$left" -eq 0 ] && { hung=0; break; }
	sleep 0.1
done
ok $hung "20 concurrent first mounts complete (no hang)"
[ "$hung" -eq 0 ] && wait "${pids[@]}"
n=0
for i in $(seq 1 20); do [ "$(cat "$M/c$i/ctl")" = "mounted 1" ] && n=$((n + 1)); done
is "$n" "20" "all 20 are mounted"
timeout 10 ls "$M" >/dev/null; ok $? "the namespace answers afterwards"
pids=()
for i in $(seq 1 20); do (ctl "c$i" unmount) & pids+=($!); done
wait "${pids[@]}"

# mv across directories: EOPNOTSUPP, so mv reports it and creates nothing.
mkdir "$M/a" "$M/b"
before=$(find "$M" -maxdepth 3 -type d | sort)
mv "$M/a" "$M/b/a" 2>"$WORK/mv.err"; st=$?
[ "$st" -ne 0 ] && grep -q "not supported" "$WORK/mv.err"; ok $? "mv across directories fails, saying why"
is "$(find "$M" -maxdepth 3 -type d | sort)" "$before" "and creates no device"

# Every valid name works fully, mount included: 128 characters, and a
# Docker layer ID with its -init sibling.
long=$(printf 'L%.0s' $(seq 128))
hex=$(printf '%064x' 1234567890)
mkdir "$M/$long" "$M/$hex" "$M/$hex-init"
for d in "$long" "$hex" "$hex-init"; do
	ctl "$d" mount && echo ok > "$M/$d/rootfs/f" && [ "$(cat "$M/$d/rootfs/f")" = ok ] && ctl "$d" unmount
	ok $? "a ${#d}-character name mounts"
done

# A failed ctl command says why when ctl is read next.
printf 'frobnicate\n' > "$M/a/ctl" 2>/dev/null
is "$(sed -n 2p "$M/a/ctl" | cut -d' ' -f3-)" "device 'a': unknown command 'frobnicate' (expected mount, mount ro, unmount, resize SIZE)" \
	"reading ctl after a failed command gives the reason"
ctl a mount && ctl a unmount
is "$(cat "$M/a/ctl")" "unmounted" "a later success clears it"

# df -i: used inodes are the devices, never negative.
used=$(df --output=iused "$M" | tail -1 | tr -d ' ')
[ "$used" -gt 0 ] && [ "$used" -lt 100 ]; ok $? "df -i shows the devices as used inodes ($used)"
[ "$(stat -c %Y "$M/info")" -gt 1000000000 ]; ok $? "the pool's info is not dated 1970"

# A stop with a device in use leaves it mounted; the next start adopts it.
ctl a mount; echo kept > "$M/a/rootfs/f"
dir=$(readlink "$M/a/rootfs")
(cd "$dir" && exec sleep 600) & holder=$!
sleep 0.2
stop_daemon; ok $? "the daemon stops with a device in use"
grep -q " $dir " /proc/self/mountinfo; ok $? "the device in use stays mounted"
is "$(cat "$dir/f")" "kept" "and usable"
start_daemon; ok $? "restart"
is "$(cat "$M/a/ctl")" "mounted 1" "the next start adopts the mount"
is "$(cat "$M/a/rootfs/f")" "kept" "reachable through rootfs"
kill "$holder"; wait "$holder" 2>/dev/null
ctl a unmount; ! grep -q " $dir " /proc/self/mountinfo; ok $? "and unmounts it as usual"
stop_daemon

# A rename whose metadata cannot all be written (a child's file is
# immutable) keeps its roll-forward record and stops further changes;
# the next start finishes it. Before, the record was dropped and the
# child vanished from the tree.
start_daemon; ok $? "restart"
mkdir "$M/ra" "$M/ra/rb"
if chattr +i "$S/metadata/rb" 2>/dev/null; then
	mv "$M/ra" "$M/rz"; ok $? "the rename itself is done"
	is "$(jq -r .renamed_from "$S/metadata/rz")" "ra" "its roll-forward record stays while a child's file could not be written"
	is "$(errno_of mkdir "$M/other")" "EIO" "further changes are refused until a restart"
	grep -q "refused until thinfs is restarted" "$M/info"; ok $? "and the pool's info says why"
	stop_daemon
	chattr -i "$S/metadata/rb"
	start_daemon; ok $? "restart"
	[ -d "$M/rz/rb" ] && [ ! -e "$M/ra" ]; ok $? "the rename was finished: rb is under rz"
	is "$(jq -r '.parent' "$S/metadata/rb")" "rz" "and its file says so"
	mkdir "$M/other"; ok $? "changes are taken again"
else
	skip 8 "chattr +i does not work on $S's filesystem"
fi
stop_daemon

# Callers thinfs cannot tell apart (outside its pid namespace: FUSE gives
# pid 0) share no rm -r mark: one's refused walk step does not refuse
# another's deletes in that tree for minutes (doc/design.md §1, "rm -r").
if unshare --pid --fork true 2>/dev/null; then
	printf '#!/bin/sh\nexec unshare --pid --fork "%s" "$@"\n' "$THINFS" >"$WORK/thinfs-pidns"
	chmod +x "$WORK/thinfs-pidns"
	THINFS="$WORK/thinfs-pidns" start_daemon; ok $? "a daemon in a pid namespace of its own"
	mkdir "$M/pt" "$M/pt/m" "$M/pt/s" && ctl pt/m mount; ok $? "it mounts a new device (pt/m)"
	is "$(errno_of unlink "$M/pt/ctl")" "EBUSY" "a walk's first step in a tree holding a mount: EBUSY"
	is "$(errno_of rmdir "$M/pt/s")" "OK" "another such caller's rmdir in that tree is not refused"
	ctl pt/m unmount
	kill -TERM "$(pgrep -P "$PID")"; wait_exit 120; ok $? "it stops"
else
	skip 5 "no pid namespaces here (unshare --pid)"
fi

# The engine alone, on a state directory of its own.
E=$WORK/engine
eo="backend=reflink,dm.loopdatasize=4G,dm.basesize=64M,dm.fs=ext4"
ecli() { "$cli" "$E" "$eo" "$@" 2>>"$WORK/engine.log"; }
ecleanup() {
	grep -q " $E/reflink " /proc/self/mountinfo && umount -l "$E/reflink"
	for l in $(losetup -j "$E/devicemapper/data" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
}
mkdir -p "$E"

# A crash after an add's file and pool device are made, before its commit: the child is
# rolled back at the next start, and its parent's child count with it.
ecli init && ecli add p base
THINFS_FAULT=add-after-pool-create "$cli" "$E" "$eo" add c p >/dev/null 2>>"$WORK/engine.log"
is "$?" "137" "killed between the child's file and its commit"
ecli delete p; ok $? "after the restart the parent can be deleted (no stale child count)"

# A lost transaction record must not roll back a committed device: the
# start refuses, naming the mismatch, and deletes nothing.
ecli add x base; ecli add y base
ecleanup
store=$(losetup -f --show "$E/devicemapper/data"); mkdir -p "$E/reflink"; mount "$store" "$E/reflink"
rm "$E/reflink/transaction_id"
umount "$E/reflink"; losetup -d "$store"
out=$("$cli" "$E" "$eo" list 2>&1); st=$?
[ "$st" -ne 0 ]; ok $? "a start whose pool lost its transaction ID is refused"
echo "$out" | grep -Eq "(transaction-metadata|metadata/[a-z]*) records (transaction )?[0-9]+.*the pool was reset or restored"
ok $? "naming the record or a file ahead of the pool"
[ -e "$E/metadata/x" ] && [ -e "$E/metadata/y" ]; ok $? "and no device was rolled back"
ecleanup

# An add in flight is recorded by its own file, one transaction past the
# pool: only a new leaf can be that. A parent's file that says so (hand
# edits, corruption) stops the start, naming it, and nothing is deleted.
rm -rf "$E"; mkdir -p "$E"
ecli init && ecli add p base && ecli add c p
tid=$(jq .transaction_id "$E/metadata/c")
jq -c ".transaction_id = $((tid + 1))" "$E/metadata/p" >"$WORK/p.json" && cp "$WORK/p.json" "$E/metadata/p"
out=$("$cli" "$E" "$eo" list 2>&1); st=$?
[ "$st" -ne 0 ] && echo "$out" | grep -q "metadata/p records transaction $((tid + 1)), one past the pool's, but it is a parent"
ok $? "a parent whose file reads as an add in flight stops the start, named (status $st)"
jq -c ".transaction_id = $tid" "$E/metadata/p" >"$WORK/p.json" && cp "$WORK/p.json" "$E/metadata/p"
[ "$(ecli list | sort | tr '\n' ' ')" = "c p 3 p base 2 " ]; ok $? "put back, both devices are there"
# A file further ahead of the pool than an add in flight (a pool reset or
# restored under its metadata): refused, naming it, nothing rolled back.
jq -c ".transaction_id = $((tid + 5))" "$E/metadata/c" >"$WORK/c.json" && cp "$WORK/c.json" "$E/metadata/c"
out=$("$cli" "$E" "$eo" list 2>&1); st=$?
[ "$st" -ne 0 ] && echo "$out" | grep -q "metadata/c records transaction $((tid + 5)), but the pool is at $tid"
ok $? "a file five transactions ahead of the pool stops the start, named (status $st)"
jq -c ".transaction_id = $tid" "$E/metadata/c" >"$WORK/c.json" && cp "$WORK/c.json" "$E/metadata/c"
# An older device whose parent is gone (shown at the top) names a name a
# new device then takes: that new device's interrupted add is still
# rolled back at the next start, not taken for a parent.
jq -c '.parent = "q"' "$E/metadata/c" >"$WORK/c.json" && cp "$WORK/c.json" "$E/metadata/c"
sleep 1 # a later creation second than c's
THINFS_FAULT=add-after-intent "$cli" "$E" "$eo" add q base >/dev/null 2>>"$WORK/engine.log"
is "$?" "137" "killed in the add of q, which c names as its (missing) parent"
out=$("$cli" "$E" "$eo" list 2>&1); st=$?
[ "$st" -eq 0 ] && ! echo "$out" | grep -q "^q "; ok $? "the next start rolls q back (status $st)"
ecleanup

done_testing
