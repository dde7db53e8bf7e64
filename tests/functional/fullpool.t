#!/bin/bash
# fullpool.t - a full pool is a bounded, recoverable event (reflink: the
# image store, an XFS in STATEDIR/devicemapper/data, fills up; the dm
# backend's counterpart is tests/vm/dm-fullpool.sh). A 2G ext4 device on a
# 1G store filled by one writer (1 MiB writes, fsync every 4):
#  - the writer gets ENOSPC or EIO, and no call of it takes 30 s;
#  - ls, the pool's info and a device's info keep answering (5 s) all along;
#  - mkdir gets ENOSPC; rmdir of another device works and its space comes
#    back; resize-pool grows the store and a new device takes data;
#  - the full device unmounts, the daemon stops, and the engine's own
#    consistency check is clean.
# Timings are printed as diagnostics ("# timing: ...").
. "$(dirname "$0")/lib.sh"
[ "$BACKEND" = reflink ] || skip_all "reflink only (dm: tests/vm/dm-fullpool.sh)"
CLI=${top_builddir:-.}/tests/engine/engine-cli

cat >"$WORK/fill.py" <<'PY'
import errno, os, sys, time
path, limit = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
buf = os.urandom(1 << 20)
t0 = time.monotonic()
n, worst, res = 0, 0.0, "LIMIT"
while time.monotonic() - t0 < limit:
    t = time.monotonic()
    try:
        os.write(fd, buf)
        n += 1
        if n % 4 == 0:
            os.fsync(fd)
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno))
        break
    worst = max(worst, time.monotonic() - t)
end = time.monotonic()
print("result %s bytes=%d total=%.1f failing_call=%.2f worst_ok=%.2f" %
      (res, n << 20, end - t0, end - t, worst), flush=True)
PY
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
secs_le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a != "" && a + 0 <= b + 0)}'; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# prober FILE OUT: every 0.5 s, ls of the top, the pool's info and FILE
# (a device's info), each timed; OUT gets "max_ms N hung N runs N".
prober() {
	local max=0 hung=0 runs=0 t0 ms c
	while :; do
		for c in "ls $M" "cat $M/info" "cat $1"; do
			t0=$(date +%s%N)
			timeout 20 $c >/dev/null 2>&1
			[ $? -eq 124 ] && hung=$((hung + 1))
			ms=$(ms_since "$t0")
			[ "$ms" -gt $max ] && max=$ms
		done
		runs=$((runs + 1))
		echo "max_ms $max hung $hung runs $runs" >"$2.tmp" && mv "$2.tmp" "$2"
		sleep 0.5
	done
}

start_daemon "dm.loopdatasize=1G,dm.basesize=2G"; ok $? "daemon starts on a 1G store with 2G devices"
[ "$(jq -r .data_file "$M/info")" != null ] || skip_all "the images live in a filesystem that reflinks; nothing to fill safely"
mkdir "$M/other" && ctl other mount &&
	dd if=/dev/urandom of="$M/other/rootfs/data" bs=1M count=200 conv=fsync status=none && ctl other unmount
ok $? "device 'other' holds 200 MiB and is unmounted"
mkdir "$M/w" && ctl w mount; ok $? "device 'w' mounted"

prober "$M/w/info" "$WORK/probe" &
prober_pid=$!
timeout 600 python3 "$WORK/fill.py" "$M/w/rootfs/fill" 300 >"$WORK/fill" 2>&1
sed 's/^/# /' "$WORK/fill"
res=$(awk '$1 == "result" {print $2}' "$WORK/fill")
fc=$(field "$WORK/fill" failing_call)
diag "timing: writer ran $(field "$WORK/fill" total) s, wrote $(field "$WORK/fill" bytes) bytes; the failing call took $fc s; slowest successful call $(field "$WORK/fill" worst_ok) s"
case $res in ENOSPC | EIO) ok 0 "the writer failed with $res" ;; *) ok 1 "the writer failed with ENOSPC or EIO (got '$res')" ;; esac
secs_le "$fc" 30; ok $? "the writer's failing call returned within 30 s ($fc s)"
secs_le "$(field "$WORK/fill" worst_ok)" 30; ok $? "no successful write or fsync took 30 s"
sleep 2
kill "$prober_pid"; wait "$prober_pid" 2>/dev/null
read -r _ max _ hung _ runs <"$WORK/probe"
diag "timing: slowest of ls/info/stat ${max} ms over $runs rounds, $hung hung"
[ "$hung" -eq 0 ] && [ "$max" -lt 5000 ] && [ "$runs" -gt 0 ]
ok $? "ls, info and a device's info answered within 5 s while filling and full ($runs rounds)"
avail=$(jq -r .data.available "$M/info")
diag "store after the writer: $(jq -c .data "$M/info")"
[ "$avail" -lt $((64 * 1024 * 1024)) ]; ok $? "the store is full (available $avail bytes)"

line=$(timeout 30 cat "$M/ctl" | head -n 1)
case $line in "ok reflink "*) ok 0 "the pool's ctl answers ($line)" ;; *) ok 1 "the pool's ctl answers (got '$line')" ;; esac
is "$(errno_of mkdir "$M/new")" "ENOSPC" "mkdir on a full pool: ENOSPC"
before=$(jq -r .data.used "$M/info")
t0=$(date +%s%N)
is "$(errno_of rmdir "$M/other")" "OK" "rmdir of another device on a full pool works"
diag "timing: rmdir took $(ms_since "$t0") ms"
sleep 1.2 # the engine's status cache
after=$(jq -r .data.used "$M/info")
[ "$after" -lt $((before - 150 * 1024 * 1024)) ]; ok $? "rmdir gave the other device's space back ($before -> $after)"
t0=$(date +%s%N)
is "$(errno_of write "$M/ctl" "resize-pool 2G")" "OK" "resize-pool 2G on the full pool works"
diag "timing: resize-pool took $(ms_since "$t0") ms"
sleep 1.2
total=$(jq -r .data.total "$M/info")
[ "$total" -gt $((1536 * 1024 * 1024)) ]; ok $? "the store grew ($total bytes)"
mkdir "$M/after" && ctl after mount &&
	dd if=/dev/urandom of="$M/after/rootfs/f" bs=1M count=50 conv=fsync status=none &&
	ctl after unmount && rmdir "$M/after"
ok $? "after resize-pool a new device takes 50 MiB (fsynced) and goes"
t0=$(date +%s%N)
timeout 60 bash -c "echo unmount > '$M/w/ctl'"; ok $? "the device that filled the store unmounts"
diag "timing: unmount took $(ms_since "$t0") ms"
is "$(errno_of rmdir "$M/w")" "OK" "rmdir of the device that filled the store"
stop_daemon; ok $? "daemon stops"
if [ -x "$CLI" ]; then
	out=$("$CLI" "$S" "$BASE_OPTS,dm.loopdatasize=1G,dm.basesize=2G" check 2>>"$WORK/log")
	ok $? "the engine's consistency check after the stop: $out"
fi
done_testing
