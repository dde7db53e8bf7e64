#!/bin/bash
# space.t - space at a glance (doc/design.md §1): a device directory's
# st_blocks is what the device holds alone, so du(1) of a device, or of a
# subtree, answers "what would deleting this free"; `thinfs list` prints
# every device with its figures from the pool's listing file; figures are
# there at once (a pass at start, a snapshot's own from its origin's),
# `refresh-usage` on the pool's ctl waits for fresh ones; and neither du
# nor list mounts or activates anything, for root or another user.
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || skip_all "jq missing"

MiB=$((1024 * 1024))
list() { "$THINFS" list "$@"; }
# du_b PATH: du's total for PATH in bytes (st_blocks * 512 summed).
du_b() { du -sB1 "$1" | cut -f1; }
# field PATH KEY: KEY of the device at PATH in the listing.
field() { list --json "$M" | jq -r --arg p "$1" --arg k "$2" '.[] | select(.path == $p) | .[$k]'; }
# between N LO HI
between() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
# the device filesystems mounted and the devices active (reflink: loop
# devices on images; dm: thin devices): what du and list must leave as
# they are.
mounts_and_loops() {
	awk -v s="$S/mnt/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort
	losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$S/reflink/images/" | sort
	if [ "$BACKEND" = dm ]; then
		dmsetup ls 2>/dev/null | awk '{print $1}' | grep "^$(prefix)-" | grep -v -- '-pool$' | sort
	fi
}

start_daemon; ok $? "daemon starts"
# No info file is read: only the pass at start can give st_blocks.
blocks=0
for _ in $(seq 100); do
	blocks=$(stat -c %b "$M")
	[ "$blocks" -gt 0 ] && break
	sleep 0.1
done
[ "$blocks" -gt 0 ]; ok $? "a usage pass runs at start: the top's st_blocks is the base's own space ($blocks)"

mkdir "$M/a" && ctl a mount &&
	dd if=/dev/urandom of="$M/a/rootfs/big" bs=1M count=32 conv=fsync status=none && ctl a unmount
ok $? "a holds 32 MiB"
list --refresh "$M" >/dev/null; ok $? "thinfs list --refresh returns"
got=$(du_b "$M/a")
between "$got" $((32 * MiB)) $((36 * MiB)); ok $? "du -s a: about 32 MiB at once after the refresh ($got)"
is "$(field a exclusive_bytes)" "$(jq .exclusive_bytes "$M/a/info")" "the listing has the info file's exclusive bytes"
a_mapped=$(field a mapped_bytes)

mkdir "$M/a/b"; ok $? "snapshot a/b"
is "$(jq .exclusive_bytes "$M/a/b/info")" 0 "a fresh snapshot owns 0 bytes at once (not null)"
is "$(du_b "$M/a/b")" 0 "du -s a/b: 0"
is "$(field a/b shared_bytes)" "$a_mapped" "it shares what its origin mapped"
is "$(field a exclusive_bytes)" 0 "and the origin owns none of it alone any more"
[ "$(jq .usage_at "$M/a/b/info")" != null ]; ok $? "usage_at says how old the figures are"
# du of a subtree sums what each device holds alone: the 32 MiB that a
# and b share are in neither's figure (doc/design.md §1: a lower bound).
between "$(du_b "$M/a")" 0 $((1 * MiB)); ok $? "du -s a: a and b hold next to nothing alone ($(du_b "$M/a"))"

# The origin's data deleted: b becomes the only owner of the 32 MiB.
ctl a mount && rm "$M/a/rootfs/big" && sync -f "$M/a/rootfs/" && fstrim "$(readlink "$M/a/rootfs")" && ctl a unmount
ok $? "a's file deleted and trimmed"
printf 'refresh-usage\n' > "$M/ctl"; ok $? "echo refresh-usage > ctl returns once fresh figures are in"
b_ex=$(field a/b exclusive_bytes)
between "$b_ex" $((32 * MiB)) $((36 * MiB)); ok $? "b now owns the 32 MiB alone ($b_ex)"
between "$(du_b "$M/a/b")" $((32 * MiB)) $((36 * MiB)); ok $? "du -s a/b shows them"
between "$(field a exclusive_bytes)" 0 $((2 * MiB)); ok $? "a owns next to nothing"

# du sums a subtree: a directory's blocks, and its descendants'.
sum() { list --json "$M" | jq --arg p "$1" '[.[] | select($p == "" or .path == $p or (.path | startswith($p + "/"))) |
	(.exclusive_bytes + 511) / 512 | floor * 512] | add'; }
is "$(du_b "$M/a")" "$(sum a)" "du -s a = a's own bytes + b's"
is "$(du_b "$M")" "$(sum "")" "du -s MOUNTPOINT = every device's own bytes"

# The listing: every device, with its parent and state.
mkdir "$M/c" && ctl c mount; ok $? "c made and mounted"
want=$( (echo base; cd "$M" && find . -mindepth 1 -type d -printf '%P\n') | sort)
is "$(list --json "$M" | jq -r '.[] | if .path == "" then .name else .path end' | sort)" "$want" \
	"thinfs list --json: every device, by its path under the mount"
list --json "$M" | jq -e 'type == "array" and length == 4' >/dev/null; ok $? "--json is a JSON array jq reads"
is "$(field a/b parent)" a "b's parent is a"
out=$(list "$M")
is "$(echo "$out" | head -1 | tr -s ' ')" "NAME PARENT SIZE MAPPED EXCL SHARED STATE ROOTFS" "the table's columns"
is "$(echo "$out" | awk '$1 == "c" {print $2, $7, $8}')" "base mounted $(readlink "$M/c/rootfs")" \
	"c: parent base, mounted, its rootfs"
is "$(echo "$out" | awk '$1 == "a/b" {print $2, $7, $8}')" "a inactive -" "a/b: parent a, inactive"
is "$(list --bytes "$M" | awk '$1 == "a/b" {print $5}')" "$b_ex" "--bytes: sizes in bytes"
ctl c unmount

# Neither du nor list mounts or activates anything.
before=$(mounts_and_loops)
du -sh "$M"/* >/dev/null && du -s "$M" >/dev/null && list "$M" >/dev/null && list --json "$M" >/dev/null
ok $? "du -sh MOUNTPOINT/*, du -s MOUNTPOINT, thinfs list"
is "$(mounts_and_loops)" "$before" "no filesystem mounted, no loop device attached"
is "$(cat "$M/a/ctl" "$M/a/b/ctl" "$M/c/ctl" | sort -u)" unmounted "every ctl reads unmounted"
is "$(list --json "$M" | jq '[.[] | select(.active or .mounted or .automounted)] | length')" 0 \
	"the listing says none is active"
stop_daemon; ok $? "daemon stops"

# Another user, where the mount lets them in.
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
start_daemon allow_other; ok $? "daemon with allow_other"
out=$(nobody "$THINFS" list "$M" 2>&1); ok $? "thinfs list as another user"
is "$(echo "$out" | awk 'NR > 1 {print $1}' | sort | tr '\n' ' ')" "a a/b base c " "lists every device"
got=$(nobody du -sB1 "$M/a/b" | cut -f1)
between "$got" $((32 * MiB)) $((36 * MiB)); ok $? "du -s as another user ($got)"
err=$(nobody "$THINFS" list --refresh "$M" 2>&1 >/dev/null)
[ $? -ne 0 ] && [[ "$err" == *"only root"* ]]; ok $? "--refresh as another user: refused, saying why ($err)"
is "$(mounts_and_loops)" "" "nothing mounted after the restart and another user's du and list"
stop_daemon; ok $? "daemon stops"
done_testing
