#!/bin/bash
# crash.t - kill the engine (SIGKILL through THINFS_FAULT) at every crash
# point of add, delete, rename, base creation and deferred deletion; after
# each, a new start must leave no leaked ID, no metadata without an image,
# no image without metadata, and every device that was reported created.
set -u
cli=${top_builddir:-.}/tests/engine/engine-cli
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (loop devices, mounts)"; exit 0; }
[ -e /dev/loop-control ] || { echo "1..0 # SKIP no loop devices"; exit 0; }
[ -x "$cli" ] || { echo "1..0 # SKIP $cli not built"; exit 0; }

work=$(mktemp -d /var/tmp/thinfs-crash-XXXXXX)
opts="backend=reflink,dm.loopdatasize=4G,dm.basesize=64M,dm.fs=ext4,dm.use_deferred_deletion=true"
n=0 failed=0
cleanup() {
	for m in $(grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null; done
	for l in $(losetup -j "$work/s/devicemapper/data" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
	rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
cli() { "$cli" "$work/s" "$opts" "$@" 2>>"$work/log"; }

# Fresh state: base, a, a/b, c.
fresh() {
	cli_store_cleanup
	rm -rf "$work/s"
	mkdir -p "$work/s"
	cli init && cli add a base && cli add b a && cli add c base
}
cli_store_cleanup() {
	if grep -q " $work/s/reflink " /proc/self/mountinfo; then umount -l "$work/s/reflink"; fi
	for l in $(losetup -j "$work/s/devicemapper/data" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
}
tree() { cli list | sort; }
killed() { THINFS_FAULT=$1 "$cli" "$work/s" "$opts" "${@:2}" >/dev/null 2>>"$work/log"; echo $?; }

# Each point, and the burial's point once more with the device held busy
# (dm.use_deferred_deletion leaves it buried for the worker), and the
# add's points with four adds at once, of four parents (a group commit).
points="$("$cli" list-faults) deferred:delete-after-tombstone group:add-after-intent group:add-after-pool-create
group:add-before-commit group:add-after-close-txn"
count=0
for p in $points; do
	count=$((count + 1))
	case $p in
	base-after-grow-*)
		# dm.basesize grows the base: the size is recorded before its
		# filesystem grows; a kill in between is finished at the next
		# start, so a snapshot's filesystem has the whole new size.
		fresh || { ok 1 "$p: set up"; continue; }
		big="$opts,dm.basesize=256M"
		st=$(THINFS_FAULT=$p "$cli" "$work/s" "$big" init >/dev/null 2>>"$work/log"; echo $?)
		ok $([ "$st" -eq 137 ]; echo $?) "$p: start growing the base killed (status $st)"
		"$cli" "$work/s" "$big" init 2>>"$work/log"; ok $? "$p: the next start finishes it"
		[ ! -e "$work/s/base-grow-pending" ]; ok $? "$p: the grow marker is gone"
		"$cli" "$work/s" "$big" add g base 2>>"$work/log" &&
			size=$("$cli" "$work/s" "$big" mount g 2>>"$work/log") && [ "$size" -gt $((200 << 20)) ]
		ok $? "$p: a new snapshot's filesystem has the grown size (${size:-none} bytes)"
		out=$("$cli" "$work/s" "$big" check 2>>"$work/log"); ok $? "$p: consistent after restart ($out)"
		continue ;;
	base-*)
		cli_store_cleanup; rm -rf "$work/s"; mkdir -p "$work/s"
		st=$(killed "$p" init)
		ok $([ "$st" -eq 137 ]; echo $?) "$p: first start killed (status $st)"
		cli init; ok $? "$p: the next start makes or keeps the base"
		out=$(cli check); ok $? "$p: consistent after restart ($out)"
		cli add x base; ok $? "$p: a device can be made afterwards"
		continue ;;
	esac
	fresh || { ok 1 "$p: set up"; continue; }
	before=$(tree)
	case $p in
	add-*)
		st=$(killed "$p" add n a)
		after=$(tree | grep -v '^n ')
		[ "$after" = "$before" ]; ok $? "$p: every earlier device is still there"
		if tree | grep -q '^n a '; then
			cli add n2 n; ok $? "$p: the new device survived whole (a snapshot of it works)"
		else
			cli add n a; ok $? "$p: the new device was rolled back; adding it again works"
		fi ;;
	group:*)
		st=$(killed "${p#group:}" add-many 4 g a b c base)
		if [ "$p" = group:add-before-commit ]; then
			# Killed as a group commits: until one such group had two
			# or more adds (their files all one past the pool), which
			# the start must roll back together.
			tries=1
			while [ "$(ls "$work/s/metadata" | grep -c '^g[0-9]$')" -lt 2 ] && [ $tries -lt 20 ]; do
				fresh >/dev/null 2>&1
				st=$(killed "${p#group:}" add-many 4 g a b c base)
				tries=$((tries + 1))
			done
			n_files=$(ls "$work/s/metadata" | grep -c '^g[0-9]$')
			[ "$n_files" -ge 2 ]; ok $? "$p: a group of $n_files adds was in flight at the kill ($tries tries)"
			tree | grep -q '^g[0-9] '; [ $? -ne 0 ]; ok $? "$p: all of them rolled back"
		fi
		after=$(tree | grep -v '^g[0-9] ')
		[ "$after" = "$before" ]; ok $? "$p: every earlier device is still there"
		kept=0 redo=0
		for i in 1 2 3 4; do
			if tree | grep -q "^g$i "; then
				cli add "h$i" "g$i" || redo=1
				kept=$((kept + 1))
			else
				cli add "g$i" base || redo=1
			fi
		done
		[ $redo -eq 0 ]; ok $? "$p: each new device survived whole ($kept of 4) or was rolled back and can be added again"
		;;
	delete-*)
		id=$(cli list | awk '$1=="c"{print $3}')
		st=$(killed "$p" delete c)
		after=$(tree | grep -v '^c ')
		[ "$after" = "$(echo "$before" | grep -v '^c ')" ]; ok $? "$p: the other devices are untouched"
		! tree | grep -q '^c '; ok $? "$p: the interrupted delete is not undone at restart"
		# The tombstone is the delete's record. Once the pool deleted
		# the device, the start finishes it; before, the worker does.
		if [ "$p" != delete-after-tombstone ]; then
			[ ! -e "$work/s/deleted/$id" ]; ok $? "$p: the start removed c's tombstone (ID $id)"
		fi
		cli deferred && [ ! -e "$work/s/metadata/c" ] && [ ! -e "$work/s/deleted/$id" ]
		ok $? "$p: finished, no file left for c (ID $id)"
		cli add c base; ok $? "$p: the name c can be used again" ;;
	rename-*)
		st=$(killed "$p" rename a z)
		t=$(tree)
		if echo "$t" | grep -q '^z base'; then
			echo "$t" | grep -q '^b z ' && ! echo "$t" | grep -q '^a '
			ok $? "$p: rename rolled forward, b follows z"
		else
			echo "$t" | grep -q '^a base' && echo "$t" | grep -q '^b a '
			ok $? "$p: rename rolled back, b under a"
		fi ;;
	deferred:*)
		# Deferred deletion needs a device the pool holds busy: mount the
		# image store ourselves and hold c's image open on a loop device.
		id=$(cli list | awk '$1=="c"{print $3}')
		store=$(losetup -f --show "$work/s/devicemapper/data")
		mount "$store" "$work/s/reflink"
		busy=$(losetup -f --show "$work/s/reflink/images/$id")
		exec 7<"$busy"
		st=$(killed "${p#deferred:}" delete c)
		! tree | grep -q '^c '; ok $? "$p: the device marked deleted stays hidden after restart"
		# Killed once its file became its tombstone: the name is free.
		[ -e "$work/s/deleted/$id" ] && [ ! -e "$work/s/metadata/c" ]
		ok $? "$p: its tombstone deleted/$id is there, and its name's file is gone"
		cli add c base && cli delete c; ok $? "$p: the name is free while it waits (a new c made and deleted)"
		exec 7<&-
		sleep 0.2
		cli deferred; ok $? "$p: the deferred deletion runs once the device is released"
		[ ! -e "$work/s/metadata/c" ] && [ ! -e "$work/s/deleted/$id" ]; ok $? "$p: the metadata files are gone"
		img=$work/s/reflink/images/$id
		# (Once the store is unmounted lazily, the loop's backing_file
		# may read as a path under its old mount or "/images/ID".)
		bf=$(cat "/sys/block/${busy#/dev/}/loop/backing_file" 2>/dev/null)
		case $bf in */images/"$id" | */images/"$id"\ \(deleted\)) false ;; esac
		ok $? "$p: the loop device we held on its image ($busy) was detached${bf:+ (still on $bf)}"
		# The engine unmounts the image store at close: look into it
		# read-only. c's image must be gone, its ID free.
		look=
		if ! grep -q " $work/s/reflink " /proc/self/mountinfo; then
			look=$(losetup -f --show -r "$work/s/devicemapper/data") && mount -o ro "$look" "$work/s/reflink"
		fi
		[ -n "$id" ] && [ -d "$work/s/reflink/images" ] && [ ! -e "$img" ]
		ok $? "$p: its image (ID $id) is gone from the store"
		grep -q " $work/s/reflink " /proc/self/mountinfo && umount -l "$work/s/reflink"
		[ -z "$look" ] || losetup -d "$look" 2>/dev/null
		losetup -d "$store" 2>/dev/null ;;
	esac
	ok $([ "$st" -eq 137 ]; echo $?) "$p: killed at the point (status $st)"
	out=$(cli check); ok $? "$p: no leaked ID, no file without image or image without file ($out)"
done
echo "# $count crash points tested"
[ "$count" -ge 21 ]; ok $? "all $count crash points were exercised"
echo "1..$n"
[ $failed -eq 0 ] || { echo "# log:"; tail -n 30 "$work/log" | sed 's/^/# /'; }
exit $((failed > 0))
