#!/bin/bash
# rm-mv.t - coreutils rm and mv on device directories, as a user types them:
# `rm -r NAME` of a mounted device fails with EBUSY and deletes nothing of
# its filesystem (rm does not follow rootfs); `mv NAME other/NAME2` across
# directories fails (EOPNOTSUPP, so mv does not fall back to a copy) and
# creates nothing.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need rm mv chroot
need_busybox
start_daemon || skip_all "thinfs did not start"

make_rootfs box; ok $? "a busybox rootfs in device box, mounted"
mkdir -p "$M/box/rootfs/data/deep/er" && echo keep > "$M/box/rootfs/data/deep/er/f"
before=$(snap "$M/box/rootfs")
n_before=$(echo "$before" | wc -l)
[ "$n_before" -gt 200 ]; ok $? "the rootfs has its files ($n_before lines)"

# rm -r NAME
rm -r "$M/box" 2>"$WORK/rm.err"; st=$?
[ $st -ne 0 ]; ok $? "rm -r of the mounted device fails"
grep -q "Device or resource busy" "$WORK/rm.err"; ok $? "with EBUSY"
sed 's/^/#   /' "$WORK/rm.err"
[ -d "$M/box" ] && [ -f "$M/box/ctl" ] && [ -f "$M/box/info" ] && [ -L "$M/box/rootfs" ]; ok $? "the device is still there, ctl, info and rootfs in it"
is "$(ctl_state box)" "mounted 1" "still mounted, count unchanged"
is "$(snap "$M/box/rootfs")" "$before" "nothing in its filesystem deleted"
# rm -rf, and rm -r with a trailing slash (which some shells complete to).
rm -rf "$M/box" 2>/dev/null; rm -r "$M/box/" 2>/dev/null
is "$(snap "$M/box/rootfs")" "$before" "nor by rm -rf or rm -r NAME/"
# rm -r of the rootfs link itself removes nothing either.
rm -r "$M/box/rootfs" 2>/dev/null
is "$(snap "$M/box/rootfs")" "$before" "nor by rm -r NAME/rootfs"

# mv NAME other/NAME2, mounted and unmounted.
mkdir "$M/other"; ok $? "a second device, other"
count() { find "$M" -xdev -name ctl | wc -l; }
n=$(count)
for state in mounted unmounted; do
	[ $state = unmounted ] && { ctl box unmount; before=$(ctl box mount && snap "$M/box/rootfs"; ctl box unmount); }
	mv "$M/box" "$M/other/box2" 2>"$WORK/mv.err"; st=$?
	[ $st -ne 0 ]; ok $? "mv NAME other/NAME2 of a $state device fails"
	grep -q "Operation not supported" "$WORK/mv.err"; ok $? "with EOPNOTSUPP ($state)"
	sed 's/^/#   /' "$WORK/mv.err"
	[ ! -e "$M/other/box2" ] && [ -z "$(find "$M" -xdev -name 'box2*')" ]; ok $? "nothing created ($state)"
	is "$(count)" "$n" "no device added or lost ($state)"
	[ -d "$M/box" ]; ok $? "box still in place ($state)"
done
ctl box mount
is "$(snap "$M/box/rootfs")" "$before" "box's files intact after the mv attempts"
# mv with the same name across directories, and mv -t.
mv "$M/box" "$M/other/" 2>/dev/null; mv -t "$M/other" "$M/box" 2>/dev/null
[ -d "$M/box" ] && [ ! -e "$M/other/box" ]; ok $? "mv NAME other/ and mv -t other NAME fail too, nothing created"
ctl box unmount

stop_daemon; ok $? "daemon stops cleanly"
done_testing
