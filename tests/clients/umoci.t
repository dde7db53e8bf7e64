#!/bin/bash
# umoci.t - umoci raw unpack of an OCI layout, built locally with umoci
# itself (init, new, insert: two layers, one of them removing a file the
# other added), into a mounted device; then the files are checked there,
# and again after an unmount and a mount.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need umoci chroot
need_busybox

# The image: /etc/greeting, /bin/busybox with an sh link, a setuid file,
# a directory with a mode, a file removed by the second layer (a whiteout).
src=$WORK/src
mkdir -p "$src/l1/etc" "$src/l1/bin" "$src/l1/opt/data" "$src/l2/etc"
echo hello-umoci > "$src/l1/etc/greeting"
echo going > "$src/l1/etc/gone"
cp "$BUSYBOX" "$src/l1/bin/busybox"; ln -s busybox "$src/l1/bin/sh"
printf 'x%.0s' $(seq 1 5000) > "$src/l1/opt/data/blob"; chown 123:456 "$src/l1/opt/data/blob"
chmod 4755 "$src/l1/opt/data/blob"; chmod 0750 "$src/l1/opt/data"
echo second > "$src/l2/etc/second"
I=$WORK/layout
{ umoci init --layout "$I" && umoci new --image "$I:t" &&
	umoci insert --image "$I:t" "$src/l1/etc" /etc && umoci insert --image "$I:t" "$src/l1/bin" /bin &&
	umoci insert --image "$I:t" "$src/l1/opt" /opt &&
	umoci insert --image "$I:t" "$src/l2/etc/second" /etc/second &&
	umoci insert --image "$I:t" --whiteout /etc/gone; } >"$WORK/build.log" 2>&1 ||
	skip_all "umoci cannot build an image here: $(tail -n 2 "$WORK/build.log" | tr '\n' ' ')"
# The control: unpack into a plain directory.
umoci raw unpack --image "$I:t" "$WORK/plain" >"$WORK/plain.log" 2>&1 && [ -f "$WORK/plain/etc/second" ] ||
	skip_all "umoci raw unpack fails here even into a plain directory: $(tail -n 2 "$WORK/plain.log" | tr '\n' ' ')"

start_daemon || skip_all "thinfs did not start"
mkdir "$M/img" && ctl img mount; ok $? "device img, mounted"

# check DIR: the unpacked files as the image has them.
check() {
	local r=$1 what=$2
	is "$(cat "$r/etc/greeting" "$r/etc/second" 2>&1)" "hello-umoci
second" "$what: both layers' files"
	[ ! -e "$r/etc/gone" ] && [ ! -e "$r/etc/.wh.gone" ]; ok $? "$what: the whiteout removed /etc/gone"
	is "$(readlink "$r/bin/sh")" "busybox" "$what: the symlink"
	is "$(stat -c '%a %u %g %s' "$r/opt/data" "$r/opt/data/blob" 2>&1 | tr '\n' ' ')" "750 0 0 4096 4755 123 456 5000 " "$what: modes, owners, sizes"
	cmp -s "$BUSYBOX" "$r/bin/busybox"; ok $? "$what: busybox byte for byte"
	is "$(chroot "$r" /bin/sh -c 'read l < /etc/greeting; echo $l' 2>&1)" "hello-umoci" "$what: the unpacked busybox runs in a chroot"
}

# Into the device's own root: umoci lchown()s and sets the times of the
# path it is given, which must be the filesystem's root, not the link to
# it, so it is given where NAME/rootfs leads (as the README says).
root=$(readlink -f "$M/img/rootfs")
umoci raw unpack --image "$I:t" "$root" >"$WORK/link.log" 2>&1; st=$?
ok $st "umoci raw unpack --image L:t \$(readlink -f NAME/rootfs)"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/link.log"
[ $st -eq 0 ] && check "$M/img/rootfs" "into the device's root, read through NAME/rootfs"

# Into a directory of the device, through the link.
umoci raw unpack --image "$I:t" "$M/img/rootfs/image" >"$WORK/sub.log" 2>&1; st=$?
ok $st "umoci raw unpack --image L:t NAME/rootfs/image"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/sub.log"
check "$M/img/rootfs/image" "into NAME/rootfs/image"

ctl img unmount && ctl img mount; ok $? "unmount and mount again"
check "$M/img/rootfs/image" "after a remount"
ctl img unmount

stop_daemon; ok $? "daemon stops cleanly"
done_testing
