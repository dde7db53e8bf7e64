#!/bin/bash
# dm-safety.sh -- TAP: regression cases for the dm backend's data-safety
# fixes, on a real kernel thin pool, driven as a user drives thinfs (mkdir,
# rmdir, echo mount > ctl), with dmsetup, thin_check and xfs_repair as the
# oracle. Run inside the guest by dm-guest.sh (root, device-mapper).
#  1. a device named "pool" (PREFIX-pool is the pool's dm name): mkdir,
#     mount, rmdir leave the dm pool, the other devices and a restart alone
#  2. long names mount: 128 characters, a Docker 64-hex layer and its -init
#  3. a foreign dm device that holds a thin device's dm name (PREFIX-ID) is
#     not reused, reloaded or removed: the mount fails, then works once it
#     is gone
#  4. rmdir of a device that someone outside thinfs holds open fails with
#     EBUSY and discards nothing (dm.blkdiscard is on: loopback pool)
#  5. snapshots of an origin that is live (mounted by thinfs, or activated
#     and mounted outside thinfs) are taken suspended: the child is clean
#     and holds what was written before the mkdir (xfs, and at the end
#     ext4 on a second daemon)
#  6. resize-pool 200P is EINVAL and leaves the pool rw and resumed
#  7. a kill -9 with a device mounted: the restart adopts the mount
#  8. each device's exclusive_bytes and shared_bytes equal thin_ls's
# At the end the oracle (thin_check, pool IDs == metadata files' IDs).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/dm-lib.sh"

require_thin_pool

work=$(mktemp -d /var/tmp/dm-safety.XXXXXX)
pids_to_kill=()
ext_mounts=()
ext_devs=()
cleanup() {
	local p
	for p in "${pids_to_kill[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${ext_mounts[@]}"; do umount -l "$p" 2>/dev/null; done
	for p in "${ext_devs[@]}"; do dmsetup remove "$p" >/dev/null 2>&1; done
	[ -n "${daemon_pid:-}" ] && kill -KILL "$daemon_pid" 2>/dev/null
	true
}
trap cleanup EXIT

ctl() { # ctl DEVDIR COMMAND: echo COMMAND > DEVDIR/ctl; its status
	echo "$2" >"$1/ctl"
}
sum_of() { md5sum <"$1" 2>/dev/null | cut -d' ' -f1; }
# put_data FILE: 2 MiB of random data (fsynced); prints its md5.
put_data() {
	dd if=/dev/urandom of="$1" bs=64k count=32 conv=fsync status=none && sum_of "$1"
}
state_of() { dmsetup info "$1" 2>/dev/null | awk '$1 == "State:" {print $2}'; }
open_count() { dmsetup info -c --noheadings -o open "$1" 2>/dev/null | tr -d ' '; }
show_log() { tail -n "${1:-15}" "$S.log" | sed 's/^/#   /'; }
# map_dev NAME ID SIZE_BYTES: activate thin device ID of the pool as NAME,
# by hand, as something outside thinfs would.
map_dev() {
	dmsetup create "$1" --table "0 $(($3 / 512)) thin $pool_mm $2" && dmsetup mknodes "$1" &&
		ext_devs+=("$1")
}
unmap_dev() { dmsetup remove --retry "$1"; }
# xfs_clean DEV DESC: xfs_repair -n finds nothing wrong (exit 0, and no
# unreplayed log left unchecked).
xfs_clean() {
	local out rc
	out=$(xfs_repair -n "$1" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && ! grep -q "valuable metadata changes in a log" <<<"$out"; then
		ok 0 "$2"
	else
		ok 1 "$2"
		diag "xfs_repair -n $1: exit $rc; what it found:"
		grep -v -e '^ *- ' -e '^Phase' -e '^No modify flag' <<<"$out" | head -n 25 | sed 's/^/#   /'
	fi
}

S=$work/s M=$work/m
if ! start_daemon "$S" "$M" "$DM_SMALL"; then
	ok 1 "daemon starts with backend=dm on loopback files"
	diag "exit status ${daemon_rc:-?}; log:"
	show_log 30
	tap_end
	exit 1
fi
ok 0 "daemon starts with backend=dm on loopback files"
save_pool_name "$M" "$S"
pool=$(cat "$S.pool")
prefix=${pool%-pool}
pool_mm=$(dmsetup info -c --noheadings -o major,minor "$pool" | tr -d ' ')

# ---------------------------------------------------------------- 1 ----
diag "case 1: a device named 'pool' leaves the dm pool $pool alone"
check "mkdir keep, mount it" sh -c "mkdir '$M/keep' && echo mount >'$M/keep/ctl'"
keep_sum=$(put_data "$M/keep/rootfs/data")
check "unmount keep" ctl "$M/keep" unmount
is "$(errno_of mkdir "$M/pool")" OK "mkdir pool"
pool_dev_id=$(jq -r .device_id "$M/pool/info")
is "$(jq -r .dm_name "$M/pool/info")" "$prefix-$pool_dev_id" "device 'pool' has dm name PREFIX-ID, not the pool's $pool"
check "mount pool" ctl "$M/pool" mount
echo hello >"$M/pool/rootfs/f" 2>/dev/null
is "$(cat "$M/pool/rootfs/f" 2>/dev/null)" hello "write and read a file in device 'pool'"
set -- $(dmsetup table "$pool" 2>/dev/null)
is "${3:-}" thin-pool "while 'pool' is mounted, $pool is still the thin-pool"
check "unmount pool" ctl "$M/pool" unmount
is "$(errno_of rmdir "$M/pool")" OK "rmdir pool"
check "pool is gone from the tree" test ! -e "$M/pool"
set -- $(dmsetup status "$pool" 2>/dev/null)
is "${3:-}" thin-pool "dmsetup status $pool still shows a thin-pool"
is "${8:-}" rw "and it is read-write"
is "$(state_of "$pool")" ACTIVE "and not suspended"
check "mount keep again" ctl "$M/keep" mount
is "$(sum_of "$M/keep/rootfs/data")" "$keep_sum" "device keep's data read back after rmdir pool"
check "unmount keep" ctl "$M/keep" unmount
check "stop the daemon" stop_daemon "$M"
if start_daemon "$S" "$M" "$DM_SMALL"; then
	ok 0 "restart after rmdir pool"
else
	ok 1 "restart after rmdir pool"
	show_log 30
	tap_end
	exit 1
fi
is "$(jq -r .pool_name "$M/info")" "$pool" "the same pool, $pool"
check "mount keep after the restart" ctl "$M/keep" mount
is "$(sum_of "$M/keep/rootfs/data")" "$keep_sum" "keep's data read back after the restart"
check "unmount keep" ctl "$M/keep" unmount
is "$(errno_of mkdir "$M/pool")" OK "the name 'pool' is free again: mkdir"
is "$(errno_of rmdir "$M/pool")" OK "and rmdir"

# ---------------------------------------------------------------- 2 ----
diag "case 2: long names mount on dm"
long=a$(printf 'b1_.-%.0s' $(seq 25))xy
hex=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
is "${#long}/${#hex}" 128/64 "names of 128 and 64 characters"
is "$(errno_of mkdir "$M/${long}z")" ENAMETOOLONG "129 characters: ENAMETOOLONG"
is "$(errno_of mkdir "$M/$long")" OK "mkdir of a 128-character name"
id=$(jq -r .device_id "$M/$long/info")
is "$(jq -r .dm_name "$M/$long/info")" "$prefix-$id" "its dm name is PREFIX-ID"
if ctl "$M/$long" mount; then
	ok 0 "mount of the 128-character name"
	echo "$long" >"$M/$long/rootfs/name"
	is "$(cat "$M/$long/rootfs/name")" "$long" "write and read a file in it"
	is "$(cat "$M/$long/ctl")" "mounted 1" "its ctl reads 'mounted 1'"
	check "unmount it" ctl "$M/$long" unmount
	check "its dm device is gone" sh -c "! dmsetup info '$prefix-$id' >/dev/null 2>&1"
else
	ok 1 "mount of the 128-character name"
	diag "last_error: $(jq -r .last_error "$M/$long/info")"
fi
is "$(errno_of mkdir "$M/$hex-init")" OK "mkdir of a Docker-style $hex-init"
# Docker's order: the -init layer is written, then the layer made on it.
if ctl "$M/$hex-init" mount; then
	ok 0 "mount of the -init layer"
	echo init >"$M/$hex-init/rootfs/init-file"
	is "$(cat "$M/$hex-init/rootfs/init-file")" init "write and read a file in it"
	check "unmount the -init layer" ctl "$M/$hex-init" unmount
else
	ok 1 "mount of the -init layer"
	diag "last_error: $(jq -r .last_error "$M/$hex-init/info")"
fi
is "$(errno_of mkdir "$M/$hex-init/$hex")" OK "mkdir of its 64-hex sibling (a snapshot of the -init)"
hid=$(jq -r .device_id "$M/$hex-init/$hex/info")
is "$(jq -r .dm_name "$M/$hex-init/$hex/info")" "$prefix-$hid" "its dm name is PREFIX-ID"
if ctl "$M/$hex-init/$hex" mount; then
	ok 0 "mount of the 64-hex layer"
	is "$(cat "$M/$hex-init/$hex/rootfs/init-file" 2>/dev/null)" init "it holds the -init layer's file"
	echo layer >"$M/$hex-init/$hex/rootfs/layer-file"
	is "$(cat "$M/$hex-init/$hex/rootfs/layer-file")" layer "write and read a file in it"
	check "unmount the 64-hex layer" ctl "$M/$hex-init/$hex" unmount
else
	ok 1 "mount of the 64-hex layer"
	diag "last_error: $(jq -r .last_error "$M/$hex-init/$hex/info")"
fi

# ---------------------------------------------------------------- 3 ----
diag "case 3: a foreign dm device named like a thin device is not reused"
# The engine hands out the ID after the last one it handed out: learn it
# from a probe device (deviceset-metadata's next_device_id is saved only
# at close).
mkdir "$M/probe" && nid=$(($(jq -r .device_id "$M/probe/info") + 1)) && rmdir "$M/probe"
ok $? "a probe device says the next device ID is ${nid:-?}"
foreign=$prefix-$nid
dmsetup create "$foreign" --table "0 2048 zero" && ext_devs+=("$foreign")
ok $? "dmsetup create $foreign (zero target), the name of the next device ID"
ftable=$(dmsetup table "$foreign")
is "$(errno_of mkdir "$M/x")" OK "mkdir x"
xid=$(jq -r .device_id "$M/x/info")
is "$xid" "$nid" "x got device ID $nid"
r=$(errno_of write "$M/x/ctl" mount)
check "mount of x fails ($r) while $foreign is another device" test "$r" != OK
diag "x's last_error: $(jq -r .last_error "$M/x/info")"
is "$(dmsetup table "$foreign" 2>/dev/null)" "$ftable" "$foreign still exists, its table unchanged"
is "$(head -n 1 "$M/x/ctl")" unmounted "x reads 'unmounted'"
check "x's mount directory holds nothing mounted" sh -c "! mountpoint -q '$S/mnt/$xid'"
check "dmsetup remove $foreign" unmap_dev "$foreign"
if ctl "$M/x" mount; then
	ok 0 "with it gone, mount of x works"
	x_sum=$(put_data "$M/x/rootfs/data")
	check "unmount x" ctl "$M/x" unmount
else
	ok 1 "with it gone, mount of x works"
	diag "last_error: $(jq -r .last_error "$M/x/info")"
	x_sum=none
fi
# A thin target of the same pool, but another thin ID (x's, which holds
# data): a reuse would show x's files in y.
is "$(errno_of mkdir "$M/y")" OK "mkdir y"
yid=$(jq -r .device_id "$M/y/info")
ysize=$(jq -r .size "$M/y/info")
map_dev "$prefix-$yid" "$xid" "$ysize"
ok $? "dmsetup create $prefix-$yid: thin $pool_mm $xid (x's ID under y's dm name)"
ftable=$(dmsetup table "$prefix-$yid")
r=$(errno_of write "$M/y/ctl" mount)
check "mount of y fails ($r) while its dm name maps x" test "$r" != OK
if [ "$r" = OK ]; then
	[ -e "$M/y/rootfs/data" ] && diag "y's rootfs shows x's data file"
	ctl "$M/y" unmount
fi
is "$(dmsetup table "$prefix-$yid" 2>/dev/null)" "$ftable" "$prefix-$yid still exists, its table unchanged"
check "dmsetup remove $prefix-$yid" unmap_dev "$prefix-$yid"
if ctl "$M/y" mount; then
	ok 0 "with it gone, mount of y works"
	check "y does not hold x's file" test ! -e "$M/y/rootfs/data"
	check "unmount y" ctl "$M/y" unmount
else
	ok 1 "with it gone, mount of y works"
fi
check "mount x" ctl "$M/x" mount
is "$(sum_of "$M/x/rootfs/data")" "$x_sum" "x's data intact"
check "unmount x" ctl "$M/x" unmount

# ---------------------------------------------------------------- 4 ----
diag "case 4: rmdir of a device open outside thinfs is EBUSY and discards nothing"
check "mkdir held, mount it" sh -c "mkdir '$M/held' && echo mount >'$M/held/ctl'"
held_sum=$(put_data "$M/held/rootfs/data")
hname=$(jq -r .dm_name "$M/held/info")
sleep 100000 <"/dev/mapper/$hname" &
holder=$!
pids_to_kill+=("$holder")
for ((i = 0; i < 100; i++)); do [ "$(open_count "$hname")" = 2 ] && break; sleep 0.1; done
is "$(open_count "$hname")" 2 "$hname is open by its filesystem and by a process ($holder)"
check "unmount held" ctl "$M/held" unmount
check "$hname stays active: still open" test "$(state_of "$hname")" = ACTIVE
is "$(errno_of rmdir "$M/held")" EBUSY "rmdir held: EBUSY while the process holds it open"
check "held is still in the tree" test -d "$M/held"
check "its metadata file is still there" test -e "$S/metadata/held"
kill -KILL "$holder"
wait "$holder" 2>/dev/null
check "mount held after the holder is gone" ctl "$M/held" mount
is "$(sum_of "$M/held/rootfs/data")" "$held_sum" "held's data read back"
check "unmount held" ctl "$M/held" unmount
# The same for a device thinfs left inactive, activated by someone else.
check "mkdir held2, mount it" sh -c "mkdir '$M/held2' && echo mount >'$M/held2/ctl'"
held2_sum=$(put_data "$M/held2/rootfs/data")
check "unmount held2" ctl "$M/held2" unmount
h2id=$(jq -r .device_id "$M/held2/info")
h2name=$prefix-$h2id
check "held2 is inactive" sh -c "! dmsetup info '$h2name' >/dev/null 2>&1"
map_dev "$h2name" "$h2id" "$(jq -r .size "$M/held2/info")"
ok $? "dmsetup create $h2name (held2's own table), outside thinfs"
sleep 100000 <"/dev/mapper/$h2name" &
holder=$!
pids_to_kill+=("$holder")
for ((i = 0; i < 100; i++)); do [ "$(open_count "$h2name")" = 1 ] && break; sleep 0.1; done
is "$(open_count "$h2name")" 1 "$h2name is open by a process"
is "$(errno_of rmdir "$M/held2")" EBUSY "rmdir held2: EBUSY"
check "held2 is still in the tree" test -d "$M/held2"
kill -KILL "$holder"
wait "$holder" 2>/dev/null
check "dmsetup remove $h2name" unmap_dev "$h2name"
check "mount held2" ctl "$M/held2" mount
is "$(sum_of "$M/held2/rootfs/data")" "$held2_sum" "held2's data read back"
check "unmount held2" ctl "$M/held2" unmount
is "$(errno_of rmdir "$M/held")" OK "rmdir held once nobody holds it"
check "its dm device is gone" sh -c "! dmsetup info '$hname' >/dev/null 2>&1"

# ---------------------------------------------------------------- 5 ----
# check_child CHILD FS DESC SUM FILE: the snapshot CHILD (a path under
# $M), checked through a dm device of our own before anything mounts it:
# ext4 has no journal to recover (a frozen ext4 clears needs_recovery; a
# snapshot of a live, unfrozen one has it set) and fsck.ext4 -fn is clean;
# xfs (whose freeze leaves a covered log that xfs_repair -n still calls
# dirty) is clean after its log is replayed. Then, mounted read-only by
# thinfs, CHILD holds FILE with md5 SUM.
check_child() {
	local c=$1 fs=$2 d=$3 cid csize out rc
	cid=$(jq -r .device_id "$M/$c/info")
	csize=$(jq -r .size "$M/$c/info")
	if map_dev tfs-check "$cid" "$csize"; then
		if [ "$fs" = ext4 ]; then
			out=$(dumpe2fs -h /dev/mapper/tfs-check 2>/dev/null | sed -n 's/^Filesystem features: *//p')
			if [[ " $out " == *" needs_recovery "* ]]; then
				ok 1 "$d: the child's journal needs no recovery (it was frozen)"
				diag "features: $out"
			else
				ok 0 "$d: the child's journal needs no recovery (it was frozen)"
			fi
			out=$(fsck.ext4 -fn /dev/mapper/tfs-check 2>&1)
			rc=$?
			ok $rc "$d: fsck.ext4 -fn finds the child clean"
			[ $rc -eq 0 ] || tail -n 15 <<<"$out" | sed 's/^/#   /'
		else
			out=$(xfs_repair -n /dev/mapper/tfs-check 2>&1)
			rc=$?
			grep -q "valuable metadata changes in a log" <<<"$out" &&
				diag "$d: before its log is replayed, xfs_repair -n exits $rc and calls the log dirty (expected of a frozen xfs)"
			mkdir -p "$work/chk"
			if mount -o nouuid /dev/mapper/tfs-check "$work/chk"; then
				umount "$work/chk"
				ok $? "$d: the child mounts (its log replayed) and unmounts"
			else
				ok 1 "$d: the child mounts (its log replayed) and unmounts"
			fi
			xfs_clean /dev/mapper/tfs-check "$d: xfs_repair -n finds the child clean"
		fi
		unmap_dev tfs-check
	else
		ok 1 "$d: could activate the child to check it"
	fi
	if ctl "$M/$c" "mount ro"; then
		is "$(sum_of "$M/$c/rootfs/$5")" "$4" "$d: the child holds what was written before the mkdir"
		ctl "$M/$c" unmount
	else
		ok 1 "$d: mount ro of the child"
		diag "last_error: $(jq -r .last_error "$M/$c/info")"
	fi
}
# case5 FS: a child of an origin mounted by thinfs, and of one activated
# and mounted outside thinfs (under the dm name thinfs would give it).
# The origin's last file is written, not synced, just before the mkdir:
# only a suspend (dm freezes the filesystem) puts it on the device in
# time for the snapshot.
case5() {
	local fs=$1 o_sum o2id o2name ext mopt=
	[ "$fs" = xfs ] && mopt="-o nouuid"
	diag "case 5 ($fs): snapshots of a live origin are taken suspended"
	check "$fs: mkdir o, mount it" sh -c "mkdir '$M/o' && echo mount >'$M/o/ctl'"
	dd if=/dev/urandom of="$M/o/rootfs/unsynced" bs=64k count=64 status=none
	o_sum=$(sum_of "$M/o/rootfs/unsynced")
	is "$(errno_of mkdir "$M/o/c1")" OK "$fs: mkdir of a child of mounted o"
	check_child o/c1 "$fs" "$fs, origin mounted by thinfs" "$o_sum" unsynced
	check "$fs: unmount o" ctl "$M/o" unmount
	is "$(errno_of mkdir "$M/o2")" OK "$fs: mkdir o2"
	o2id=$(jq -r .device_id "$M/o2/info")
	o2name=$prefix-$o2id
	ext=$work/ext-o2-$fs
	mkdir -p "$ext"
	if map_dev "$o2name" "$o2id" "$(jq -r .size "$M/o2/info")" && mount $mopt "/dev/mapper/$o2name" "$ext"; then
		ext_mounts+=("$ext")
		ok 0 "$fs: o2 activated and mounted outside thinfs ($o2name on $ext)"
		dd if=/dev/urandom of="$ext/unsynced" bs=64k count=64 status=none
		o_sum=$(sum_of "$ext/unsynced")
		is "$(errno_of mkdir "$M/o2/c2")" OK "$fs: mkdir of a child of o2"
		is "$(state_of "$o2name")" ACTIVE "$fs: o2 is resumed after the snapshot"
		echo after >"$ext/after" && sync
		ok $? "$fs: o2 still takes writes"
		check_child o2/c2 "$fs" "$fs, origin live outside thinfs" "$o_sum" unsynced
		umount "$ext"
		unmap_dev "$o2name"
	else
		ok 1 "$fs: o2 activated and mounted outside thinfs"
	fi
}
case5 xfs

# ---------------------------------------------------------------- 6 ----
diag "case 6: resize-pool past what the metadata can map is refused"
dsize=$(stat -c %s "$S/devicemapper/data")
blocks0=$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')
is "$(errno_of write "$M/ctl" "resize-pool 200P")" EINVAL "resize-pool 200P: EINVAL"
set -- $(dmsetup status "$pool" 2>/dev/null)
is "${8:-}" rw "the pool is still read-write"
is "${11:-}" - "and does not need a check"
is "$(state_of "$pool")" ACTIVE "and not suspended"
is "$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')" "$blocks0" "its data blocks unchanged"
is "$(stat -c %s "$S/devicemapper/data")" "$dsize" "the data file unchanged"
is "$(errno_of mkdir "$M/after6")" OK "mkdir works after the refusal"
new=$((dsize + 1024 * 1024 * 1024))
is "$(errno_of write "$M/ctl" "resize-pool $new")" OK "resize-pool $new (1G more) works"
is "$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')" $((new / 65536)) "the pool has the new size"
check "mount after6" ctl "$M/after6" mount
a6_sum=$(put_data "$M/after6/rootfs/data")
check "unmount after6" ctl "$M/after6" unmount

# ---------------------------------------------------------------- 7 ----
diag "case 7: kill -9 with a device mounted: the restart adopts the mount"
check "mkdir k, mount it" sh -c "mkdir '$M/k' && echo mount >'$M/k/ctl'"
k_sum=$(put_data "$M/k/rootfs/data")
kid=$(jq -r .device_id "$M/k/info")
kill_daemon "$M"
check "k's filesystem stays mounted on STATEDIR/mnt/$kid" mountpoint -q "$S/mnt/$kid"
if start_daemon "$S" "$M" "$DM_SMALL"; then
	ok 0 "restart after kill -9"
	is "$(cat "$M/k/ctl")" "mounted 1" "k/ctl reads 'mounted 1'"
	is "$(jq -r .mounted "$M/k/info")" true "k's info says mounted"
	is "$(readlink "$M/k/rootfs")" "$S/mnt/$kid" "k/rootfs links to STATEDIR/mnt/$kid"
	is "$(sum_of "$M/k/rootfs/data")" "$k_sum" "k's data reads through k/rootfs"
	check "unmount k" ctl "$M/k" unmount
	check "k's filesystem is unmounted" sh -c "! mountpoint -q '$S/mnt/$kid'"
	check "mount after6" ctl "$M/after6" mount
	is "$(sum_of "$M/after6/rootfs/data")" "$a6_sum" "after6's data reads back"
	check "unmount after6" ctl "$M/after6" unmount
else
	ok 1 "restart after kill -9"
	show_log 30
fi
# 8. rmdir does not wait for the discard (dm.blkdiscard is on for a
# loopback pool): the name is free at once, a worker discards and deletes
# the device in the background, and the space goes back to the data file.
check "mkdir bg, write 64 MiB in it, unmount" sh -c "mkdir '$M/bg' && echo mount >'$M/bg/ctl' &&
	dd if=/dev/urandom of='$M/bg/rootfs/big' bs=1M count=64 conv=fsync status=none && echo unmount >'$M/bg/ctl'"
bgid=$(jq -r .device_id "$M/bg/info")
used_before=$(du -k "$S/devicemapper/data" | cut -f1)
check "rmdir bg" rmdir "$M/bg"
check "mkdir bg again at once: the name is free" mkdir "$M/bg"
[ "$(jq -r .device_id "$M/bg/info")" != "$bgid" ]; ok $? "the new bg is a new device (the old one was $bgid)"
gone=1
for _ in $(seq 1 600); do
	[ "$(jq .deferred_deleted_device_count "$M/info")" = 0 ] && { gone=0; break; }
	sleep 0.1
done
ok $gone "the worker finished the old bg's deletion (deferred_deleted_device_count back to 0)"
used_after=$(du -k "$S/devicemapper/data" | cut -f1)
[ "$used_after" -lt $((used_before - 32768)) ]
ok $? "the discard gave the space back to the data file ($used_before KiB, then $used_after KiB)"
check "rmdir the new bg" rmdir "$M/bg"
check "stop the daemon" stop_daemon "$M"
is "$(dmsetup ls 2>/dev/null | grep -c "^$prefix-[0-9]")" 0 "no thin device of the pool is left active"
full_oracle "$S" "after the safety cases"
detach_loops "$S/devicemapper/data" "$S/devicemapper/metadata"

# Case 5 again on ext4, whose frozen snapshots carry no journal to recover.
S=$work/s5 M=$work/m5
if start_daemon "$S" "$M" "$DM_SMALL,dm.fs=ext4"; then
	ok 0 "daemon starts with dm.fs=ext4"
	save_pool_name "$M" "$S"
	pool=$(cat "$S.pool")
	prefix=${pool%-pool}
	pool_mm=$(dmsetup info -c --noheadings -o major,minor "$pool" | tr -d ' ')
	case5 ext4
	check "stop the daemon" stop_daemon "$M"
	full_oracle "$S" "after the ext4 snapshots"
	detach_loops "$S/devicemapper/data" "$S/devicemapper/metadata"
else
	ok 1 "daemon starts with dm.fs=ext4"
	show_log 30
fi

# Case 8: where the space goes. Each device's exclusive_bytes and
# shared_bytes (the worker's thin_ls of a metadata snapshot, read at start,
# when an info file is read and on refresh-usage) equal thin_ls's own view
# of the same pool.
S=$work/s8 M=$work/m8
if start_daemon "$S" "$M" "$DM_SMALL,dm.fs=ext4"; then
	ok 0 "usage: daemon starts"
	save_pool_name "$M" "$S"
	pool=$(cat "$S.pool")
	check "usage: a holds 32 MiB, its snapshot b 16 MiB more" sh -c "
		mkdir '$M/a' && echo mount >'$M/a/ctl' &&
		dd if=/dev/urandom of='$M/a/rootfs/big' bs=1M count=32 conv=fsync status=none &&
		echo unmount >'$M/a/ctl' && mkdir '$M/a/b' && echo mount >'$M/a/b/ctl' &&
		dd if=/dev/urandom of='$M/a/b/rootfs/more' bs=1M count=16 conv=fsync status=none &&
		echo unmount >'$M/a/b/ctl'"
	# Synchronous: the worker's pass, and its metadata snapshot, are done
	# when the write returns.
	check "usage: refresh-usage returns once the worker has looked" sh -c "echo refresh-usage >'$M/ctl'"
	check "usage: usage_at set" jq -e '.usage_at > 0' "$M/a/info"
	meta=$(jq -r .metadata_loopback "$M/info")
	dmsetup message "$pool" 0 reserve_metadata_snap &&
		thin_ls -m --no-headers -o DEV,EXCLUSIVE_BYTES,SHARED_BYTES "$meta" >"$work/thin_ls.out"
	dmsetup message "$pool" 0 release_metadata_snap
	for d in a a/b; do
		id=$(jq .device_id "$M/$d/info")
		is "$(jq -r '"\(.exclusive_bytes) \(.shared_bytes)"' "$M/$d/info")" \
			"$(awk -v id="$id" '$1 == id {print $2, $3}' "$work/thin_ls.out")" \
			"usage: $d: exclusive and shared bytes as thin_ls sees them"
	done
	check "usage: b has 16 MiB of its own" jq -e '.exclusive_bytes >= 16777216' "$M/a/b/info"
	check "usage: the pool's info ranks b first" jq -e '.top_exclusive[0].name == "b"' "$M/info"
	check "stop the daemon" stop_daemon "$M"
	full_oracle "$S" "after the usage case"
	detach_loops "$S/devicemapper/data" "$S/devicemapper/metadata"
else
	ok 1 "usage: daemon starts"
	show_log 30
fi

tap_end
