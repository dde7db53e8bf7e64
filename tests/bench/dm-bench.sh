#!/bin/bash
# dm-bench.sh -- thinfs on the dm backend against its floor and LVM, side
# by side in one run, inside the test guest (needs device-mapper):
#   tests/vm/run-in-vm.sh -m 3072 -t 1800 -e THINFS -e top_builddir -e BENCH_N \
#       /work/vmres -- bash tests/bench/dm-bench.sh
# Measures (median and p95, milliseconds):
#   mkdir / rmdir on the FUSE mount            (BENCH_N, default 200),
#   rmdir again with dm.blkdiscard=false
#   floor: create_snap+set_transaction_id, delete+set_transaction_id
#          through libdevmapper in-process      (tests/bench/dm-floor)
#   lvcreate -s / lvremove of a thin LV         (BENCH_LVM_N, default 100)
#   `echo mount > ctl` against its floor, activation through libdevmapper +
#          mount(2) in-process (tests/bench/pool-floor --mount), and against
#          dmsetup create + mount by hand               (BENCH_MOUNT_N, 20)
# All devices are 1G, all pools 64K blocks on loop files in the guest's RAM.
# Prints a table and one JSON line. Not a test: it asserts nothing, but
# exits 1 when a part could not run (its rows are null) or a command failed.
set -u
: "${top_builddir:?top_builddir must name the build dir}"
THINFS=${THINFS:-$top_builddir/thinfs}
FLOOR=$top_builddir/tests/bench/dm-floor
N=${BENCH_N:-200}
LN=${BENCH_LVM_N:-100}
MN=${BENCH_MOUNT_N:-20}
GiB=$((1024 * 1024 * 1024))

for x in "$THINFS" "$FLOOR"; do
	[ -x "$x" ] || { echo "dm-bench: $x is not built" >&2; exit 2; }
done
[ -e /dev/mapper/control ] || { echo "dm-bench: no device-mapper here; run it through tests/vm/run-in-vm.sh" >&2; exit 2; }
command -v lvcreate >/dev/null || { echo "dm-bench: lvm2 is not installed" >&2; exit 2; }

w=$(mktemp -d /var/tmp/dm-bench.XXXXXX)
mount -t tmpfs -o size=2500M tmpfs "$w"
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	mountpoint -q "$w/m" && umount -l "$w/m"
	mountpoint -q "$w/hand" && umount "$w/hand"
	true
}
trap cleanup EXIT

# Times in ms, one a line on stdin -> "median p95 n".
stats() {
	sort -n | awk '{v[NR] = $1} END {
		if (NR == 0) { print "null null 0"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = v[int(NR * 0.95 + 0.999999)]; if (p == "") p = v[NR]
		printf "%.2f %.2f %d\n", m, p, NR }'
}
# Run a command N times with {} replaced by the index; ms per run on stdout.
# The clock is read in this shell (no extra process), so the cost includes
# the command's own process start, as a user pays it.
time_each() { # time_each N CMD_TEMPLATE
	local n=$1 tmpl=$2 i t0 t1 cmd
	for ((i = 1; i <= n; i++)); do
		cmd=${tmpl//\{\}/$i}
		t0=${EPOCHREALTIME/./}
		eval "$cmd" >/dev/null 2>"$w/cmd.err" || { echo "dm-bench: failed: $cmd"; cat "$w/cmd.err"; } >>"$w/errors"
		t1=${EPOCHREALTIME/./}
		echo "$(((t1 - t0) / 1000)).$(printf %03d $(((t1 - t0) % 1000)))"
	done
}
# Python-free in-process timing of mkdir/rmdir through bash would still pay
# a fork+exec per call, so thinfs' mkdir/rmdir are timed by one process.
time_fs_ops() { # time_fs_ops OP DIR N   (OP: mkdir|rmdir|mount|unmount)
	python3 - "$@" <<'PY'
import os, sys, time
op, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(1, n + 1):
    p = os.path.join(d, "b%d" % i)
    t = time.perf_counter()
    if op == "mkdir":
        os.mkdir(p)
    elif op == "rmdir":
        os.rmdir(p)
    else:
        with open(os.path.join(p, "ctl"), "w") as f:
            f.write(op)
    print("%.3f" % ((time.perf_counter() - t) * 1000))
PY
}

# ---- thinfs ----
sd=$w/s m=$w/m
mkdir -p "$sd" "$m"
# start_thinfs [EXTRA_OPTS]: the daemon on $sd/$m; 0 once its info answers.
start_thinfs() {
	local i
	"$THINFS" -f -o "backend=dm,dm.basesize=1G,dm.loopdatasize=2G,dm.loopmetadatasize=200M,dm.min_free_space=0%${1:+,$1}" \
		"$sd" "$m" >>"$w/thinfs.log" 2>&1 &
	daemon=$!
	for ((i = 0; i < 600; i++)); do
		[ -r "$m/info" ] && return 0
		kill -0 "$daemon" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop_thinfs() { kill -TERM "$daemon"; wait "$daemon"; daemon=; }
status=0
rn_med=null rn_p95=null rn_n=0
if start_thinfs; then
	fs=$(jq -r .base_device_fs "$m/info")
	read -r mk_med mk_p95 mk_n < <(time_fs_ops mkdir "$m" "$N" | stats)
	read -r tm_med tm_p95 tm_n < <(time_fs_ops mount "$m" "$MN" | stats)
	time_fs_ops unmount "$m" "$MN" >/dev/null
	read -r rm_med rm_p95 rm_n < <(time_fs_ops rmdir "$m" "$N" | stats)
	stop_thinfs
	# The same without the discard before the delete (dm.blkdiscard=false).
	if start_thinfs dm.blkdiscard=false; then
		time_fs_ops mkdir "$m" "$N" >/dev/null
		read -r rn_med rn_p95 rn_n < <(time_fs_ops rmdir "$m" "$N" | stats)
		stop_thinfs
	else
		echo "dm-bench: thinfs did not start with dm.blkdiscard=false. Log:" >&2
		tail -n 20 "$w/thinfs.log" >&2
		status=1
	fi
else
	echo "dm-bench: thinfs did not start; its rows are null. Log:" >&2
	status=1
	tail -n 20 "$w/thinfs.log" >&2
	fs=xfs
	read -r mk_med mk_p95 mk_n < <(stats </dev/null)
	tm_med=$mk_med tm_p95=$mk_p95 tm_n=0 rm_med=$mk_med rm_p95=$mk_p95 rm_n=0
fi

# ---- floor of a mount: activate + mkdir + mount(2) in-process (pool-floor) ----
# Read-write, one device over and over, as thinfs' ctl mounts above.
PFLOOR=$top_builddir/tests/bench/pool-floor
mf_med=null mf_p95=null mf_n=0
mkdir -p "$w/pf"
if pf_json=$("$PFLOOR" --mount dm "$w/pf" "$MN" \
	"dm.basesize=1G,dm.loopdatasize=2G,dm.loopmetadatasize=200M,dm.fs=$fs" 2>"$w/pfloor.log"); then
	read -r mf_med mf_p95 mf_n < <(echo "$pf_json" | tail -n 1 | jq -r '.mount_us[] / 1000' | stats)
else
	echo "dm-bench: pool-floor --mount failed; its row is null. Its log:" >&2
	tail -n 20 "$w/pfloor.log" >&2
	status=1
fi

# ---- floor: the same pool messages through libdevmapper, and mount by hand ----
truncate -s 2G "$w/fdata"
truncate -s 200M "$w/fmeta"
fd=$(losetup -f --show "$w/fdata")
fm=$(losetup -f --show "$w/fmeta")
dd if=/dev/zero of="$fm" bs=4096 count=1 status=none
dmsetup create bench-pool --table "0 $((2 * GiB / 512)) thin-pool $fm $fd 128 32768 1 skip_block_zeroing"
dmsetup message bench-pool 0 "create_thin 0"
dmsetup create bench-origin --table "0 $((GiB / 512)) thin /dev/mapper/bench-pool 0"
mkfs."$fs" -q /dev/mapper/bench-origin >/dev/null 2>&1 || mkfs."$fs" /dev/mapper/bench-origin >/dev/null
dmsetup remove bench-origin
floor_json=$("$FLOOR" bench-pool 0 1 "$N")
read -r fs_med fs_p95 fs_n < <(echo "$floor_json" | jq -r '.snap_us[] / 1000' | stats)
read -r fd_med fd_p95 fd_n < <(echo "$floor_json" | jq -r '.delete_us[] / 1000' | stats)
# Mount by hand: activate a snapshot with dmsetup and mount it.
for ((i = 1; i <= MN; i++)); do dmsetup message bench-pool 0 "create_snap $i 0"; done
mkdir -p "$w/hand"
mopt=
[ "$fs" = xfs ] && mopt="-o nouuid"
# Timed: activation + mount (unmount and removal are not).
for ((i = 1; i <= MN; i++)); do
	t0=${EPOCHREALTIME/./}
	dmsetup create "bench-snap-$i" --table "0 $((GiB / 512)) thin /dev/mapper/bench-pool $i"
	mount $mopt "/dev/mapper/bench-snap-$i" "$w/hand"
	t1=${EPOCHREALTIME/./}
	echo "$(((t1 - t0) / 1000)).$(printf %03d $(((t1 - t0) % 1000)))" >>"$w/hand.ms"
	umount "$w/hand"
	dmsetup remove "bench-snap-$i"
done
read -r hm_med hm_p95 hm_n < <(stats <"$w/hand.ms")
dmsetup remove bench-pool
losetup -d "$fd" "$fm"

# ---- LVM: thin LV of the same size, lvcreate -s / lvremove ----
truncate -s 3G "$w/lvm"
ld=$(losetup -f --show "$w/lvm")
lvmconf='devices { obtain_device_list_from_udev=0 scan_lvs=0 } activation { udev_sync=0 udev_rules=0 monitoring=0 thin_pool_autoextend_threshold=100 } global { use_lvmpolld=0 }'
lvmc() { "$@" --config "$lvmconf"; }
lvmc pvcreate -q "$ld" >/dev/null
lvmc vgcreate -q benchvg "$ld" >/dev/null
lvmc lvcreate -q --type thin-pool -L 2G -c 64k --poolmetadatasize 200M -Zn -n tp benchvg >/dev/null
lvmc lvcreate -q -V 1G -T benchvg/tp -n origin >/dev/null
read -r lc_med lc_p95 lc_n < <(time_each "$LN" "lvmc lvcreate -q -s benchvg/origin -n s{}" | stats)
read -r lr_med lr_p95 lr_n < <(time_each "$LN" "lvmc lvremove -q -f benchvg/s{}" | stats)
lvmc vgremove -q -f benchvg >/dev/null
lvmc pvremove -q "$ld" >/dev/null
losetup -d "$ld"

if [ -s "$w/errors" ]; then
	echo "dm-bench: errors:" >&2
	sort "$w/errors" | uniq -c | head -n 20 >&2
	status=1
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "null") printf "%.2f", a / b; else print "null" }'; }
printf '%-34s %10s %10s %6s %14s\n' operation "median ms" "p95 ms" n "thinfs/this"
row() { printf '%-34s %10s %10s %6s %14s\n' "$1" "$2" "$3" "$4" "$5"; }
row "thinfs mkdir (snapshot)" "$mk_med" "$mk_p95" "$mk_n" 1.00
row "floor create_snap+set_tid" "$fs_med" "$fs_p95" "$fs_n" "$(ratio "$mk_med" "$fs_med")"
row "lvcreate -s (thin)" "$lc_med" "$lc_p95" "$lc_n" "$(ratio "$mk_med" "$lc_med")"
row "thinfs rmdir (delete)" "$rm_med" "$rm_p95" "$rm_n" 1.00
row "floor delete+set_tid" "$fd_med" "$fd_p95" "$fd_n" "$(ratio "$rm_med" "$fd_med")"
row "thinfs rmdir, dm.blkdiscard=false" "$rn_med" "$rn_p95" "$rn_n" "$(ratio "$rm_med" "$rn_med")"
row "lvremove (thin)" "$lr_med" "$lr_p95" "$lr_n" "$(ratio "$rm_med" "$lr_med")"
row "thinfs echo mount > ctl ($fs)" "$tm_med" "$tm_p95" "$tm_n" 1.00
row "floor activate + mount(2)" "$mf_med" "$mf_p95" "$mf_n" "$(ratio "$tm_med" "$mf_med")"
row "dmsetup create + mount by hand" "$hm_med" "$hm_p95" "$hm_n" "$(ratio "$tm_med" "$hm_med")"
jq -cn --arg fs "$fs" \
	--argjson mk "[$mk_med,$mk_p95,$mk_n]" --argjson fsn "[$fs_med,$fs_p95,$fs_n]" \
	--argjson lc "[$lc_med,$lc_p95,$lc_n]" --argjson rm "[$rm_med,$rm_p95,$rm_n]" \
	--argjson fdl "[$fd_med,$fd_p95,$fd_n]" --argjson rn "[$rn_med,$rn_p95,$rn_n]" --argjson lr "[$lr_med,$lr_p95,$lr_n]" \
	--argjson tm "[$tm_med,$tm_p95,$tm_n]" --argjson hm "[$hm_med,$hm_p95,$hm_n]" \
	--argjson mf "[$mf_med,$mf_p95,$mf_n]" \
	'def s(a): {median_ms: a[0], p95_ms: a[1], n: a[2]};
	 def r(a; b): if (a[0] | type) == "number" and (b[0] | type) == "number" and b[0] > 0
	              then (a[0] / b[0] * 100 | round) / 100 else null end;
	 {bench: "dm", fs: $fs, mkdir: s($mk), floor_snap: s($fsn), lvcreate_snap: s($lc),
	  rmdir: s($rm), floor_delete: s($fdl), rmdir_nodiscard: s($rn), lvremove: s($lr),
	  ctl_mount: s($tm), floor_mount: s($mf), hand_mount: s($hm),
	  ratio: {mkdir_floor: r($mk; $fsn), mkdir_lvcreate: r($mk; $lc),
	          rmdir_floor: r($rm; $fdl), rmdir_lvremove: r($rm; $lr),
	          rmdir_nodiscard_floor: r($rn; $fdl), rmdir_nodiscard_lvremove: r($rn; $lr),
	          mount_floor: r($tm; $mf), mount_hand: r($tm; $hm)}}'
exit $status
