#!/bin/bash
# dm-cases.sh -- TAP: what only the dm backend does, on a real kernel thin
# pool (run inside the guest by dm-guest.sh; root, device-mapper). Cases:
# loopback pool files; restart with the pool still active; taking over a
# pool made with dmsetup (empty: accepted, used: refused); growing the
# pool; deferred removal and deletion of a busy device; snapshots of a
# mounted device under write load checked with fsck; after each daemon,
# the oracle (thin_check + device IDs of pool and metadata files equal).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/dm-lib.sh"

require_thin_pool

work=$(mktemp -d /var/tmp/dm-cases.XXXXXX)
pids_to_kill=()
cleanup() {
	local p
	for p in "${pids_to_kill[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[ -n "${daemon_pid:-}" ] && kill -KILL "$daemon_pid" 2>/dev/null
	true
}
trap cleanup EXIT
GiB=$((1024 * 1024 * 1024))

# ---------------------------------------------------------------- 1 ----
diag "case 1: the pool lives on loopback files under STATEDIR/devicemapper"
S1=$work/s1 M1=$work/m1
if ! start_daemon "$S1" "$M1" "$DM_SMALL"; then
	ok 1 "daemon starts with backend=dm on loopback files"
	diag "exit status ${daemon_rc:-?}; log:"; sed 's/^/#   /' "$S1.log" | tail -n 30
	tap_end
	exit 1
fi
ok 0 "daemon starts with backend=dm on loopback files"
save_pool_name "$M1" "$S1"
pool=$(cat "$S1.pool")
is "$(jq -r .backend "$M1/info")" dm "info says backend dm"
is "$(stat -c %s "$S1/devicemapper/data" 2>/dev/null)" $((3 * GiB)) "data file is 3G (dm.loopdatasize)"
is "$(stat -c %s "$S1/devicemapper/metadata" 2>/dev/null)" $((100 * 1024 * 1024)) "metadata file is 100M (dm.loopmetadatasize)"
blocks=$(stat -c %b "$S1/devicemapper/data")
check "data file is sparse ($blocks blocks allocated)" test "$((blocks * 512))" -lt $((1 * GiB))
dloop=$(loop_of "$S1/devicemapper/data")
mloop=$(loop_of "$S1/devicemapper/metadata")
is "$(echo "$dloop" | wc -w)" 1 "data file attached to one loop device ($dloop)"
is "$(echo "$mloop" | wc -w)" 1 "metadata file attached to one loop device ($mloop)"
is "$(jq -r .data_loopback "$M1/info")" "$dloop" "info data_loopback names it"
is "$(jq -r .data_file "$M1/info")" "$S1/devicemapper/data" "info data_file names the file"
table=$(dmsetup table "$pool")
diag "dmsetup table $pool: $table"
set -- $table
is "$3" thin-pool "the pool '$pool' is a thin-pool target"
is "$2" $((3 * GiB / 512)) "the pool covers the whole data file"
is "$4" "$(lsblk -dno MAJ:MIN "$mloop" | tr -d ' ')" "the pool's metadata device is the metadata loop device"
is "$5" "$(lsblk -dno MAJ:MIN "$dloop" | tr -d ' ')" "the pool's data device is the data loop device"
is "$6" 128 "data block size 64K (128 sectors, dm.blocksize default)"
check "mkdir of a device" mkdir "$M1/a"
check "mkdir of a snapshot of it" mkdir "$M1/a/b"
tid=$(dmsetup status "$pool" | awk '{print $4}')
is "$(jq -r .transaction_id "$M1/info")" "$tid" "info transaction_id is the pool's ($tid)"
is "$(jq -r .device_count "$M1/info")" 2 "info device_count 2"

# ---------------------------------------------------------------- 2 ----
diag "case 2: kill -9, restart with the pool still active"
kill_daemon "$M1"
check "the pool stays active after the daemon is killed" dmsetup info "$pool"
if start_daemon "$S1" "$M1" "$DM_SMALL"; then
	ok 0 "restart after kill -9"
else
	ok 1 "restart after kill -9"
	sed 's/^/#   /' "$S1.log" | tail -n 30
fi
is "$(jq -r .pool_name "$M1/info")" "$pool" "the same pool is used"
is "$(dmsetup ls --target thin-pool | grep -c .)" 1 "no second pool was made"
is "$(loop_of "$S1/devicemapper/data")" "$dloop" "the data file is still on the same single loop device"
is "$(loop_of "$S1/devicemapper/metadata")" "$mloop" "the metadata file is still on the same single loop device"
check "device a survived" test -d "$M1/a"
check "device b survived" test -d "$M1/a/b"
is "$(jq -r .transaction_id "$M1/info")" "$tid" "transaction id unchanged by the restart"

# ---------------------------------------------------------------- 4 ----
diag "case 4: grow the pool (ctl resize-pool)"
total0=$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')
if echo "resize-pool 4G" >"$M1/ctl"; then ok 0 "resize-pool 4G accepted"; else ok 1 "resize-pool 4G accepted"; fi
total1=$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')
is "$total1" $((4 * GiB / 65536)) "dmsetup status shows more data blocks ($total0 -> $total1)"
is "$(stat -c %s "$S1/devicemapper/data")" $((4 * GiB)) "data file grown to 4G"
is "$(jq -r .data.total "$M1/info")" $((4 * GiB)) "info data.total is 4G"
if echo "resize-pool 2G" >"$M1/ctl" 2>/dev/null; then ok 1 "shrinking the pool is refused"; else ok 0 "shrinking the pool is refused"; fi
is "$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')" "$total1" "a refused shrink changes nothing"
kill_daemon "$M1"
if start_daemon "$S1" "$M1" "dm.basesize=1G,dm.loopdatasize=5G,dm.loopmetadatasize=100M"; then
	ok 0 "restart on the active pool with dm.loopdatasize=5G"
else
	ok 1 "restart on the active pool with dm.loopdatasize=5G"
	sed 's/^/#   /' "$S1.log" | tail -n 30
fi
is "$(stat -c %s "$S1/devicemapper/data")" $((5 * GiB)) "data file grown to 5G"
is "$(dmsetup status "$pool" | awk '{split($6, a, "/"); print a[2]}')" $((5 * GiB / 65536)) \
	"the active pool was reloaded with the grown file"
is "$(jq -r .data.total "$M1/info")" $((5 * GiB)) "info data.total is 5G"
check "stop the daemon" stop_daemon "$M1"
full_oracle "$S1" "loopback pool"
detach_loops "$S1/devicemapper/data" "$S1/devicemapper/metadata"

# ---------------------------------------------------------------- 3 ----
diag "case 3: dm.thinpooldev: take over an empty pool, refuse a used one"
mkpool() { # mkpool NAME DIR: thin pool on two fresh loop files
	mkdir -p "$2"
	truncate -s 2G "$2/data"
	truncate -s 64M "$2/meta"
	local d m
	d=$(losetup -f --show "$2/data") && m=$(losetup -f --show "$2/meta") || return 1
	dd if=/dev/zero of="$m" bs=4096 count=1 status=none
	dmsetup create "$1" --table "0 $((2 * GiB / 512)) thin-pool $m $d 128 32768"
}
if mkpool tfs-ext "$work/ext"; then
	S3=$work/s3 M3=$work/m3
	if start_daemon "$S3" "$M3" "dm.thinpooldev=tfs-ext,dm.basesize=1G"; then
		ok 0 "takes over an empty pool made by dmsetup"
		is "$(jq -r .pool_name "$M3/info")" tfs-ext "info pool_name is the given pool"
		check "mkdir on the taken-over pool" mkdir "$M3/x"
		check "stop the daemon" stop_daemon "$M3"
		check "the daemon leaves a pool it did not make active" dmsetup info tfs-ext
		deactivate_pool tfs-ext
		oracle "$S3" "$(loop_of "$work/ext/meta")" "taken-over pool"
	else
		ok 1 "takes over an empty pool made by dmsetup"
		sed 's/^/#   /' "$S3.log" | tail -n 20
	fi
	deactivate_pool tfs-ext
	detach_loops "$work/ext/data" "$work/ext/meta"
else
	ok 1 "dmsetup could make a pool to take over"
fi
if mkpool tfs-used "$work/used"; then
	# Used: a thin device with data in it, and a transaction ID of 5.
	dmsetup message tfs-used 0 "create_thin 7" &&
		dmsetup create tfs-used-7 --table "0 204800 thin /dev/mapper/tfs-used 7" &&
		dmsetup mknodes tfs-used-7 &&
		dd if=/dev/urandom of=/dev/mapper/tfs-used-7 bs=1M count=4 oflag=direct status=none &&
		dmsetup remove tfs-used-7 &&
		dmsetup message tfs-used 0 "set_transaction_id 0 5"
	before=$(dmsetup status tfs-used)
	S3u=$work/s3u M3u=$work/m3u
	if start_daemon "$S3u" "$M3u" "dm.thinpooldev=tfs-used,dm.basesize=1G"; then
		ok 1 "refuses a pool that is in use (transaction id 5, data blocks used)"
		stop_daemon "$M3u"
	else
		ok 0 "refuses a pool that is in use (transaction id 5, data blocks used)"
		diag "its message:"
		grep -v '^\s*$' "$S3u.log" | tail -n 3 | sed 's/^/#   /'
		check "the refusal names the pool" grep -q tfs-used "$S3u.log"
		check "the daemon exited non-zero" test "${daemon_rc:-0}" -ne 0
	fi
	is "$(dmsetup status tfs-used)" "$before" "the used pool is unchanged"
	deactivate_pool tfs-used
	detach_loops "$work/used/data" "$work/used/meta"
else
	ok 1 "dmsetup could make a used pool"
fi

# ---------------------------------------------------------------- 5 ----
diag "case 5: deferred removal and deletion of a busy device"
S5=$work/s5 M5=$work/m5
if start_daemon "$S5" "$M5" "$DM_SMALL,dm.use_deferred_removal=true,dm.use_deferred_deletion=true"; then
	ok 0 "daemon starts with deferred removal and deletion"
	save_pool_name "$M5" "$S5"
	is "$(jq -r .deferred_remove_enabled "$M5/info")" true "info deferred_remove_enabled"
	is "$(jq -r .deferred_delete_enabled "$M5/info")" true "info deferred_delete_enabled"
	mkdir "$M5/busy" && echo mount >"$M5/busy/ctl"
	ok $? "mkdir busy, mount it"
	dmname=$(jq -r .dm_name "$M5/busy/info")
	busy_id=$(jq -r .device_id "$M5/busy/info")
	echo data >"$M5/busy/rootfs/held"
	# Keep the filesystem busy through an open file, then let the daemon
	# unmount it lazily: the mount goes, the filesystem (and with it the
	# dm device) stays in use until the file is closed.
	sleep 100000 <"$M5/busy/rootfs/held" &
	holder=$!
	pids_to_kill+=("$holder")
	check "unmount of the busy device succeeds (lazy)" sh -c "echo unmount >'$M5/busy/ctl'"
	check "its dm device still exists (deferred removal)" dmsetup info "$dmname"
	is "$(dmsetup info -c --noheadings -o open "$dmname" 2>/dev/null | tr -d ' ')" 1 "and it is still open"
	check "rmdir of the busy device succeeds" rmdir "$M5/busy"
	check "it vanished from the tree" test ! -e "$M5/busy"
	is "$(jq -r .deferred_deleted_device_count "$M5/info")" 1 "info deferred_deleted_device_count is 1"
	is "$(jq -r .device_id "$S5/deleted/$busy_id" 2>/dev/null)" "$busy_id" "its tombstone deleted/$busy_id is its file"
	check "its name is free at once: mkdir busy again" sh -c "mkdir '$M5/busy' && rmdir '$M5/busy'"
	check "its ID is still in the pool while busy" sh -c "dmsetup info '$dmname' >/dev/null"
	kill -KILL "$holder"
	wait "$holder" 2>/dev/null
	# Released: the kernel removes the device at last close, the worker
	# deletes it from the pool (kicked by its timer; allow two minutes).
	for ((i = 0; i < 1200; i++)); do
		[ "$(jq -r .deferred_deleted_device_count "$M5/info")" = 0 ] && break
		sleep 0.1
	done
	is "$(jq -r .deferred_deleted_device_count "$M5/info")" 0 "the worker deleted it after release"
	check "its dm device is gone" sh -c "! dmsetup info '$dmname' >/dev/null 2>&1"
	check "its metadata files are gone" sh -c "test ! -e '$S5/metadata/busy' && test ! -e '$S5/deleted/$busy_id'"
	check "stop the daemon" stop_daemon "$M5"
	full_oracle "$S5" "deferred deletion"
	if pool_ids_of_file "$S5/devicemapper/metadata" | grep -qx "$busy_id"; then
		ok 1 "device ID $busy_id is no longer in the pool"
	else
		ok 0 "device ID $busy_id is no longer in the pool"
	fi
	detach_loops "$S5/devicemapper/data" "$S5/devicemapper/metadata"
else
	ok 1 "daemon starts with deferred removal and deletion"
	sed 's/^/#   /' "$S5.log" | tail -n 20
fi

# ---------------------------------------------------------------- 6 ----
diag "case 6: snapshots of a mounted device under write load are consistent (ext4)"
S6=$work/s6 M6=$work/m6
if start_daemon "$S6" "$M6" "$DM_SMALL,dm.fs=ext4"; then
	ok 0 "daemon starts with dm.fs=ext4"
	save_pool_name "$M6" "$S6"
	mkdir "$M6/origin" && echo mount >"$M6/origin/ctl"
	ok $? "mkdir origin, mount it"
	(
		i=0
		while :; do
			dd if=/dev/urandom of="$M6/origin/rootfs/f$((i % 8))" bs=64k count=16 conv=fsync status=none
			mkdir -p "$M6/origin/rootfs/d$((i % 5))/e$i" && rmdir "$M6/origin/rootfs/d$((i % 5))/e$i"
			i=$((i + 1))
		done
	) 2>/dev/null &
	writer=$!
	pids_to_kill+=("$writer")
	sleep 1
	fails=0
	for n in $(seq 1 10); do
		mkdir "$M6/origin/snap$n" || fails=$((fails + 1))
	done
	is "$fails" 0 "10 snapshots of the mounted origin under write load"
	kill -KILL "$writer"
	wait "$writer" 2>/dev/null
	bad=0
	for n in $(seq 1 10); do
		if ! echo "mount ro" >"$M6/origin/snap$n/ctl"; then
			diag "mount ro of snap$n failed: $(jq -r .last_error "$M6/origin/snap$n/info")"
			bad=$((bad + 1))
			continue
		fi
		dev=$(jq -r .dev_path "$M6/origin/snap$n/info")
		if ! out=$(fsck.ext4 -fn "$dev" 2>&1); then
			diag "fsck.ext4 -fn of snap$n ($dev) failed:"
			echo "$out" | tail -n 15 | sed 's/^/#   /'
			bad=$((bad + 1))
		fi
		echo unmount >"$M6/origin/snap$n/ctl" || bad=$((bad + 1))
	done
	is "$bad" 0 "fsck.ext4 -fn finds every snapshot's filesystem clean"
	check "origin unmount" sh -c "echo unmount >'$M6/origin/ctl'"
	check "stop the daemon" stop_daemon "$M6"
	full_oracle "$S6" "snapshots under load"
	detach_loops "$S6/devicemapper/data" "$S6/devicemapper/metadata"
else
	ok 1 "daemon starts with dm.fs=ext4"
	sed 's/^/#   /' "$S6.log" | tail -n 20
fi

tap_end
