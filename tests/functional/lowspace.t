#!/bin/bash
# lowspace.t - the space watch (doc/design.md §6): below
# dm.low_space_threshold the pool's info says low_space and the log warns
# once; dm.autoextend grows a loopback data file (here reflink's image
# store in STATEDIR/devicemapper/data) and the pool with it, and the log
# says so; bad values are refused at start. The dm counterpart is in
# tests/vm/dm-fullpool.sh (the warning and low_space; dm.autoextend itself
# is tested on reflink only).
. "$(dirname "$0")/lib.sh"
[ "$BACKEND" = reflink ] || skip_all "reflink only (dm: tests/vm/dm-fullpool.sh)"
MiB=$((1024 * 1024))

# wait_for SECONDS CMD...: until CMD succeeds (the watch looks every 5 s).
wait_for() {
	local t=$1
	shift
	for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done
	return 1
}
low() { [ "$(jq -r .low_space "$M/info")" = "$1" ]; }

for bad in dm.low_space_threshold=0% dm.low_space_threshold=100% dm.low_space_threshold=20 \
	dm.autoextend=0 dm.autoextend=2000% dm.autoextend=lots; do
	timeout 20 "$THINFS" -f -o "$BASE_OPTS,$bad" "$S" "$M" >"$WORK/bad.log" 2>&1
	st=$?
	[ $st -ne 0 ] && [ $st -ne 124 ] && grep -q "${bad%%=*}" "$WORK/bad.log"
	ok $? "$bad is refused at start, naming the key"
done
! is_mounted; ok $? "and nothing was mounted"

start_daemon "dm.loopdatasize=1G,dm.basesize=2G,dm.low_space_threshold=30%"; ok $? "a 1G store, threshold 30%"
[ "$(jq -r .data_file "$M/info")" != null ] || skip_all "the images live in a filesystem that reflinks: no data file"
is "$(jq -c '[.low_space, .low_space_threshold]' "$M/info")" '[false,"30%"]' "an empty pool is not low on space"
mkdir "$M/fill" && ctl fill mount; ok $? "a device to fill"
total=$(jq .data.total "$M/info")
used=$(jq .data.used "$M/info")
# Leave about 20% free: under the 30% threshold.
mb=$(( (total * 8 / 10 - used) / MiB ))
dd if=/dev/urandom of="$M/fill/rootfs/data" bs=1M count=$mb conv=fsync status=none; ok $? "wrote $mb MiB"
wait_for 15 low true; ok $? "the pool's info says low_space"
wait_for 15 grep -q "low on space (threshold 30%)" "$WORK/log"; ok $? "the log warns"
sleep 6
is "$(grep -c "low on space" "$WORK/log")" 1 "once, not at every look"
echo resize-pool 2G > "$M/ctl"; ok $? "resize-pool 2G"
wait_for 15 low false; ok $? "low_space is false again"
wait_for 15 grep -q "free space is back above 30%" "$WORK/log"; ok $? "the log says the space is back"
ctl fill unmount
stop_daemon

start_daemon "dm.loopdatasize=1G,dm.basesize=2G,dm.low_space_threshold=30%,dm.autoextend=1G"
ok $? "restart with dm.autoextend=1G"
ctl fill mount
total=$(jq .data.total "$M/info")
used=$(jq .data.used "$M/info")
size0=$(stat -c %s "$S/devicemapper/data")
mb=$(( (total * 8 / 10 - used) / MiB ))
dd if=/dev/urandom of="$M/fill/rootfs/data2" bs=1M count=$mb conv=fsync status=none; ok $? "wrote $mb MiB more"
wait_for 20 grep -q "dm.autoextend grew" "$WORK/log"; ok $? "the log says the data file grew"
size1=$(stat -c %s "$S/devicemapper/data")
is "$size1" $((size0 + 1024 * MiB)) "the data file grew by 1G"
wait_for 15 low false; ok $? "low_space is false"
total1=$(jq .data.total "$M/info")
[ "$total1" -gt $((total + 900 * MiB)) ]; ok $? "the pool's data space grew with it ($total -> $total1)"
echo more > "$M/fill/rootfs/more" && sync; ok $? "the device still takes writes"
ctl fill unmount
stop_daemon; ok $? "daemon stops cleanly"
done_testing
