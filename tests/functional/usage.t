#!/bin/bash
# usage.t - where the space goes (doc/design.md §2): each device's info
# gets exclusive_bytes (freed if it were deleted), shared_bytes and
# usage_at, looked at by the worker at start, on refresh-usage and when an
# info file is read and the figures are 30 s old (never on lookup or
# getattr), and the pool's info ranks the devices by exclusive bytes.
# reflink: compared with filefrag(8)'s view of the images (the extents'
# shared flag); dm: tests/vm/dm-safety.sh compares with thin_ls.
. "$(dirname "$0")/lib.sh"
[ "$BACKEND" = reflink ] || skip_all "reflink here (dm: tests/vm/dm-safety.sh, against thin_ls)"
command -v filefrag >/dev/null || skip_all "filefrag (e2fsprogs) missing"

# filefrag_usage IMAGE: "EXCLUSIVE SHARED" bytes from filefrag -v.
filefrag_usage() {
	filefrag -v "$1" | python3 -c '
import re, sys
bs, ex, sh = 4096, 0, 0
for line in sys.stdin:
    m = re.search(r"blocks of (\d+) bytes", line)
    if m:
        bs = int(m.group(1))
    m = re.match(r"\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):.*?([a-z_,]*)$", line.rstrip())
    if m:
        if "shared" in m.group(2).split(","):
            sh += int(m.group(1)) * bs
        else:
            ex += int(m.group(1)) * bs
print(ex, sh)'
}
start_daemon; ok $? "daemon starts"
mkdir "$M/a" && ctl a mount &&
	dd if=/dev/urandom of="$M/a/rootfs/big" bs=1M count=48 conv=fsync status=none && ctl a unmount
ok $? "a holds 48 MiB"
# b's own 24 MiB are written after the pass at start and the figures b
# got from a at the snapshot: refresh-usage has the worker look again.
mkdir "$M/a/b" && ctl a/b mount &&
	dd if=/dev/urandom of="$M/a/b/rootfs/more" bs=1M count=24 conv=fsync status=none && ctl a/b unmount
ok $? "its snapshot b adds 24 MiB of its own"
printf 'refresh-usage\n' > "$M/ctl"; ok $? "refresh-usage: the worker looks, and the write returns when it is done"
for d in a a/b; do
	id=$(jq .device_id "$M/$d/info")
	want=$(filefrag_usage "$S/reflink/images/$id")
	got=$(jq -r '"\(.exclusive_bytes) \(.shared_bytes)"' "$M/$d/info")
	is "$got" "$want" "$d: exclusive and shared bytes as filefrag sees its image"
done
a_sh=$(jq .shared_bytes "$M/a/info")
b_ex=$(jq .exclusive_bytes "$M/a/b/info")
[ "$a_sh" -ge $((48 * 1024 * 1024)) ]; ok $? "a shares its 48 MiB with b ($a_sh)"
[ "$b_ex" -ge $((24 * 1024 * 1024)) ]; ok $? "b's 24 MiB are its own ($b_ex)"
jq -e '.top_exclusive | length >= 2' "$M/info" >/dev/null; ok $? "the pool's info ranks the devices"
jq -e '[.top_exclusive[].exclusive_bytes] as $e | $e == ($e | sort | reverse)' "$M/info" >/dev/null
ok $? "most exclusive bytes first"
is "$(jq -r --arg n b '.top_exclusive[] | select(.name == $n) | .exclusive_bytes' "$M/info")" "$b_ex" \
	"with each device's own figure"
jq -e '.usage_at > 0' "$M/info" >/dev/null; ok $? "and the time of the look"
stop_daemon; ok $? "daemon stops cleanly"
done_testing
