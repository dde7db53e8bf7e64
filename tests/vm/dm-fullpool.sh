#!/bin/bash
# dm-fullpool.sh -- TAP: a full thin pool is a bounded, recoverable event
# (dm backend, in the guest; run by dm-guest.sh). Driven as a user drives
# thinfs, with dmsetup status and thin_check as the oracle:
#  A. ext4, data space: a 2G device on a 1G pool filled by one writer
#     (1 MiB writes, fsync every 4): the writer gets ENOSPC/EIO within
#     seconds of the pool filling (no call of it takes 30 s; the kernel's
#     default would queue for 60 s, or forever); ls, info and stat keep
#     answering all along; the pool reads out_of_data_space; mkdir gets
#     ENOSPC; rmdir of another device works and its space comes back;
#     resize-pool makes the pool rw again and a new device takes data;
#     the full device unmounts; the daemon stops; thin_check is clean and
#     the pool's device IDs are the metadata files'.
#  B. xfs with dm.xfs_nospace_max_retries=0: the writer fails within
#     seconds, the device unmounts, resize-pool brings the pool back.
#  C. metadata space: a 1M metadata file (8G data), a writer provisioning
#     one pool block per 4 KiB (O_DIRECT at a 64 KiB stride): it fails
#     within seconds once the metadata runs out; ls/info answer; mkdir
#     fails; resize-pool brings a read-only pool back or refuses a failed
#     one with EROFS; the device unmounts, the daemon stops, a start with
#     dm.loopmetadatasize=16M (thin_check --clear-needs-check-flag first
#     if the kernel asked for a check) gives a rw pool where mkdir and
#     rmdir work; thin_check is clean.
# Timings are printed as diagnostics ("# timing: ...").
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/dm-lib.sh"

require_thin_pool
modprobe -q xfs 2>/dev/null

work=$(mktemp -d /var/tmp/dm-fullpool.XXXXXX)
prober_pid=
cleanup() {
	local m
	[ -n "$prober_pid" ] && kill "$prober_pid" 2>/dev/null
	[ -n "${daemon_pid:-}" ] && kill -KILL "$daemon_pid" 2>/dev/null
	for m in $(awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	for m in "$work"/*.pool; do
		[ -e "$m" ] && deactivate_pool "$(cat "$m")" 2>/dev/null
	done
	for m in "$work"/*/devicemapper/data "$work"/*/devicemapper/metadata; do
		[ -e "$m" ] && detach_loops "$m"
	done
	true
}
trap cleanup EXIT

cat >"$work/fill.py" <<'PY'
# fill.py FILE LIMIT_S [seq|stride]: write until the first error. seq: 1 MiB
# buffered writes, fsync every 4; stride: 4 KiB O_DIRECT writes at a 64 KiB
# stride (one new pool block each), fsync every 256. Prints one line:
# result ERRNO bytes=N total=S failing_call=S worst_ok=S
import errno, mmap, os, sys, time
path, limit = sys.argv[1], float(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "seq"
if mode == "seq":
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    buf, chunk, every = os.urandom(1 << 20), 1 << 20, 4
else:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, 4096)
    buf.write(os.urandom(4096))
    chunk, every = 4096, 256
t0 = time.monotonic()
n = 0
worst = 0.0
res = "LIMIT"
while time.monotonic() - t0 < limit:
    t = time.monotonic()
    try:
        if mode == "seq":
            os.write(fd, buf)
        else:
            os.pwritev(fd, [buf], n * 65536)
        n += 1
        if n % every == 0:
            os.fsync(fd)
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno))
        break
    worst = max(worst, time.monotonic() - t)
end = time.monotonic()
print("result %s bytes=%d total=%.1f failing_call=%.2f worst_ok=%.2f" %
      (res, n * chunk, end - t0, end - t, worst), flush=True)
PY

# pool_mode SD: the pool's mode from dmsetup status (rw, ro,
# out_of_data_space, Fail), plus ",needs_check" when the flag is set.
pool_mode() {
	dmsetup status "$(cat "$1.pool")" 2>/dev/null |
		awk '{m = $8; for (i = 9; i <= NF; i++) if ($i == "needs_check") m = m ",needs_check"; print m}'
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
# secs_le A B: A <= B (decimals)
secs_le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a != "" && a + 0 <= b + 0)}'; }

# prober MNT FILE OUT: every 0.5 s, ls of the top, the pool's info and a
# stat of FILE, each timed; OUT gets "max_ms N hung N runs N".
prober() {
	local mnt=$1 f=$2 out=$3 max=0 hung=0 runs=0 t0 ms
	while :; do
		for c in "ls $mnt" "cat $mnt/info" "stat $f"; do
			t0=$(date +%s%N)
			timeout 20 $c >/dev/null 2>&1
			[ $? -eq 124 ] && hung=$((hung + 1))
			ms=$((($(date +%s%N) - t0) / 1000000))
			[ $ms -gt $max ] && max=$ms
		done
		runs=$((runs + 1))
		echo "max_ms $max hung $hung runs $runs" >"$out.tmp" && mv "$out.tmp" "$out"
		sleep 0.5
	done
}
start_prober() {
	prober "$@" &
	prober_pid=$!
}
stop_prober() {
	kill "$prober_pid" 2>/dev/null
	wait "$prober_pid" 2>/dev/null
	prober_pid=
}
# responsive DESC PROBE_OUT: the prober's commands never hung and each
# answered within 15 s (a process start alone takes a second in a TCG
# guest on a loaded host; the failure this catches is minutes).
responsive() {
	local max hung runs
	read -r _ max _ hung _ runs <"$2" || { ok 1 "$1 (no prober output)"; return; }
	diag "timing: $1: slowest of ls/info/stat ${max} ms over $runs rounds, $hung hung"
	[ "$hung" -eq 0 ] && [ "$max" -lt 15000 ] && [ "$runs" -gt 0 ]
	ok $? "$1: ls, info and stat answered within 15 s ($runs rounds, slowest ${max} ms)"
}
ctl() { echo "$2" >"$1/ctl"; }
used_data() { jq -r .data.used "$1/info"; }

parts=${DM_FULLPOOL_PARTS:-ABC} # a subset, for a quicker run by hand
if [[ $parts == *A* ]]; then
# ---------------------------------------------------------------- A: ext4
S=$work/a
M=$work/a.mnt
OPTS="dm.fs=ext4,dm.basesize=2G,dm.loopdatasize=1G,dm.loopmetadatasize=100M"
start_daemon "$S" "$M" "$OPTS"
ok $? "A: daemon starts on a 1G pool with 2G ext4 devices"
save_pool_name "$M" "$S"
mkdir "$M/other" && ctl "$M/other" mount &&
	dd if=/dev/urandom of="$M/other/rootfs/data" bs=1M count=200 conv=fsync status=none &&
	ctl "$M/other" unmount
ok $? "A: device 'other' holds 200 MiB and is unmounted"
mkdir "$M/w" && ctl "$M/w" mount
ok $? "A: device 'w' mounted"
start_prober "$M" "$M/w/info" "$work/a.probe"
timeout 600 python3 "$work/fill.py" "$M/w/rootfs/fill" 500 seq >"$work/a.fill" 2>&1
cat "$work/a.fill" | sed 's/^/# /'
res=$(awk '$1 == "result" {print $2}' "$work/a.fill")
fc=$(field "$work/a.fill" failing_call)
diag "timing: A: writer ran $(field "$work/a.fill" total) s, wrote $(field "$work/a.fill" bytes) bytes; the failing call took ${fc} s; slowest successful call $(field "$work/a.fill" worst_ok) s"
case $res in ENOSPC | EIO) ok 0 "A: the writer failed with $res" ;; *) ok 1 "A: the writer failed with ENOSPC or EIO (got '$res')" ;; esac
secs_le "$fc" 30
ok $? "A: the writer's failing call returned within 30 s (${fc} s)"
secs_le "$(field "$work/a.fill" worst_ok)" 30
ok $? "A: no successful write or fsync took 30 s ($(field "$work/a.fill" worst_ok) s)"
mode=$(pool_mode "$S")
diag "A: pool mode after the writer failed: $mode; $(dmsetup status "$(cat "$S.pool")")"
is "$mode" "out_of_data_space" "A: the pool reads out_of_data_space"
sleep 2
responsive "A: while filling and full" "$work/a.probe"
stop_prober
line=$(timeout 30 cat "$M/ctl" | head -n 1)
case $line in "ok dm "*) ok 0 "A: the pool's ctl answers on a full pool ($line)" ;; *) ok 1 "A: the pool's ctl answers on a full pool (got '$line')" ;; esac
jq -e .device_id "$M/w/info" >/dev/null
ok $? "A: info of the full device answers"
is "$(jq -r .low_space "$M/info")" "true" "A: the pool's info says low_space"
for _ in $(seq 100); do grep -q "low on space (threshold 20%)" "$S.log" && break; sleep 0.1; done
grep -q "low on space (threshold 20%)" "$S.log"; ok $? "A: the space watch warned in the log"
is "$(errno_of mkdir "$M/new")" "ENOSPC" "A: mkdir on a full pool: ENOSPC"
before=$(used_data "$M")
t0=$(date +%s%N)
is "$(errno_of rmdir "$M/other")" "OK" "A: rmdir of another device on a full pool works"
diag "timing: A: rmdir took $((($(date +%s%N) - t0) / 1000000)) ms"
sleep 1.2 # the engine's status cache
after=$(used_data "$M")
diag "A: pool data used $before -> $after bytes after the rmdir"
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -lt $((before - 150 * 1024 * 1024)) ]
ok $? "A: rmdir gave the other device's space back ($before -> $after)"
t0=$(date +%s%N)
is "$(errno_of write "$M/ctl" "resize-pool 2G")" "OK" "A: resize-pool 2G on the full pool works"
diag "timing: A: resize-pool took $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(pool_mode "$S")" "rw" "A: after resize-pool the pool is rw"
is "$(jq -r .data.total "$M/info")" "$((2 * 1024 * 1024 * 1024))" "A: info shows 2 GiB of data space"
for _ in $(seq 100); do [ "$(jq -r .low_space "$M/info")" = false ] && break; sleep 0.1; done
is "$(jq -r .low_space "$M/info")" "false" "A: after resize-pool low_space is false"
mkdir "$M/after" && ctl "$M/after" mount &&
	dd if=/dev/urandom of="$M/after/rootfs/f" bs=1M count=50 conv=fsync status=none &&
	ctl "$M/after" unmount && rmdir "$M/after"
ok $? "A: after resize-pool a new device takes 50 MiB (fsynced) and goes"
t0=$(date +%s%N)
timeout 60 bash -c "echo unmount > '$M/w/ctl'"
ok $? "A: the device that filled the pool unmounts"
diag "timing: A: unmount took $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(errno_of rmdir "$M/w")" "OK" "A: rmdir of the device that filled the pool"
stop_daemon "$M"
ok $? "A: daemon stops with status 0"
full_oracle "$S" "A"

fi
if [[ $parts == *B* ]]; then
# ---------------------------------------------------------------- B: xfs
S=$work/b
M=$work/b.mnt
if ! grep -qw xfs /proc/filesystems; then
	ok 0 "B: # SKIP no xfs in this kernel"
else
	OPTS="dm.fs=xfs,dm.basesize=2G,dm.loopdatasize=1G,dm.loopmetadatasize=100M,dm.xfs_nospace_max_retries=0"
	start_daemon "$S" "$M" "$OPTS"
	ok $? "B: daemon starts (xfs, dm.xfs_nospace_max_retries=0)"
	save_pool_name "$M" "$S"
	mkdir "$M/w" && ctl "$M/w" mount
	ok $? "B: device 'w' mounted"
	start_prober "$M" "$M/w/info" "$work/b.probe"
	timeout 600 python3 "$work/fill.py" "$M/w/rootfs/fill" 500 seq >"$work/b.fill" 2>&1
	sed 's/^/# /' "$work/b.fill"
	res=$(awk '$1 == "result" {print $2}' "$work/b.fill")
	fc=$(field "$work/b.fill" failing_call)
	diag "timing: B: writer ran $(field "$work/b.fill" total) s, wrote $(field "$work/b.fill" bytes) bytes; the failing call took ${fc} s"
	case $res in ENOSPC | EIO) ok 0 "B: the writer failed with $res" ;; *) ok 1 "B: the writer failed with ENOSPC or EIO (got '$res')" ;; esac
	secs_le "$fc" 30
	ok $? "B: the writer's failing call returned within 30 s (${fc} s)"
	sleep 2
	responsive "B: while filling and full" "$work/b.probe"
	stop_prober
	is "$(errno_of mkdir "$M/new")" "ENOSPC" "B: mkdir on a full pool: ENOSPC"
	t0=$(date +%s%N)
	timeout 60 bash -c "echo unmount > '$M/w/ctl'"
	ok $? "B: the full xfs device unmounts"
	diag "timing: B: unmount took $((($(date +%s%N) - t0) / 1000000)) ms"
	is "$(errno_of write "$M/ctl" "resize-pool 2G")" "OK" "B: resize-pool 2G works"
	is "$(pool_mode "$S")" "rw" "B: after resize-pool the pool is rw"
	is "$(errno_of rmdir "$M/w")" "OK" "B: rmdir of the device that filled the pool"
	stop_daemon "$M"
	ok $? "B: daemon stops with status 0"
	full_oracle "$S" "B"
fi

fi
if [[ $parts == *C* ]]; then
# ---------------------------------------------------------------- C: metadata
S=$work/c
M=$work/c.mnt
OPTS="dm.fs=ext4,dm.basesize=8G,dm.loopdatasize=8G,dm.loopmetadatasize=1M"
start_daemon "$S" "$M" "$OPTS"
ok $? "C: daemon starts with a 1M metadata file (8G data)"
save_pool_name "$M" "$S"
mkdir "$M/other" && mkdir "$M/w" && ctl "$M/w" mount
ok $? "C: devices 'other' and 'w', w mounted"
start_prober "$M" "$M/w/info" "$work/c.probe"
timeout 700 python3 "$work/fill.py" "$M/w/rootfs/fill" 600 stride >"$work/c.fill" 2>&1
sed 's/^/# /' "$work/c.fill"
res=$(awk '$1 == "result" {print $2}' "$work/c.fill")
fc=$(field "$work/c.fill" failing_call)
mode=$(pool_mode "$S")
diag "C: $(dmsetup status "$(cat "$S.pool")"); mode $mode"
diag "timing: C: writer ran $(field "$work/c.fill" total) s, wrote $(field "$work/c.fill" bytes) bytes in 4 KiB pieces; the failing call took ${fc} s"
case $res in ENOSPC | EIO) ok 0 "C: the writer failed with $res" ;; *) ok 1 "C: the writer failed with ENOSPC or EIO (got '$res')" ;; esac
secs_le "$fc" 30
ok $? "C: the writer's failing call returned within 30 s (${fc} s)"
sleep 2
responsive "C: while filling the metadata and after" "$work/c.probe"
stop_prober
# Out of metadata space the kernel turns the pool read-only ("ro", and
# resize-pool brings it back), or, when a metadata commit itself ran out
# (a metadata device this small), fails it ("Fail", needs_check): then
# only a stop and a start that checks the metadata bring it back.
r=$(timeout 60 python3 -c 'import os, sys, errno
try:
    os.mkdir(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$M/new")
diag "C: mkdir with the metadata space full: $r (mode $mode)"
case $r in ENOSPC | EROFS | EIO) ok 0 "C: mkdir with the metadata space full fails ($r)" ;; *) ok 1 "C: mkdir with the metadata space full fails (got '$r')" ;; esac
r=$(errno_of write "$M/ctl" "resize-pool 8G")
mode=$(pool_mode "$S")
diag "C: resize-pool: $r; after it: $(dmsetup status "$(cat "$S.pool")")"
case $r/$mode in OK/rw | EROFS/*) ok 0 "C: resize-pool brings the pool back (rw) or refuses with EROFS ($r, $mode)" ;;
*) ok 1 "C: resize-pool brings the pool back (rw) or refuses with EROFS (got $r, mode $mode)" ;; esac
grep -E 'error|warning' "$S.log" | tail -n 12 | sed 's/^/#   log: /'
t0=$(date +%s%N)
timeout 60 bash -c "echo unmount > '$M/w/ctl'"
ok $? "C: the device that filled the metadata unmounts"
diag "timing: C: unmount took $((($(date +%s%N) - t0) / 1000000)) ms"
timeout 120 bash -c "kill -TERM $daemon_pid; while kill -0 $daemon_pid 2>/dev/null; do sleep 0.2; done"
ok $? "C: the daemon stops within 120 s"
wait "$daemon_pid" 2>/dev/null
daemon_pid=
mountpoint -q "$M" && umount -l "$M"
# The start that follows grows the metadata file and, if the kernel set
# needs_check, runs thin_check --clear-needs-check-flag first.
start_daemon "$S" "$M" "${OPTS/loopmetadatasize=1M/loopmetadatasize=16M}"
ok $? "C: the daemon starts again with dm.loopmetadatasize=16M"
grep -E 'needs_check|thin_check' "$S.log" | tail -n 4 | sed 's/^/#   log: /'
is "$(pool_mode "$S")" "rw" "C: the pool is rw after the start"
mkdir "$M/after" && rmdir "$M/after"
ok $? "C: mkdir and rmdir work again"
for d in other w; do
	[ -d "$M/$d" ] && { is "$(errno_of rmdir "$M/$d")" "OK" "C: rmdir $d"; }
done
stop_daemon "$M"
ok $? "C: daemon stops with status 0"
full_oracle "$S" "C"
fi
tap_end
