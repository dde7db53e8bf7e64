#!/bin/bash
# chroot.t - chroot NAME/rootfs /bin/sh -c '...' on a busybox rootfs the
# test builds in a device: the shell runs inside the device's filesystem,
# reads and writes there, and what it wrote is in the device after an
# unmount and a mount.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need chroot
need_busybox
start_daemon || skip_all "thinfs did not start"

make_rootfs box; ok $? "a busybox rootfs in device box (mkdir, mount, busybox --install -s)"

out=$(chroot "$M/box/rootfs" /bin/sh -c 'cat /etc/thinfs-device; ls /bin/sh /bin/ls; echo written > /root/note; echo $(ls / | wc -l)' 2>&1)
is "$out" "box
/bin/ls
/bin/sh
$(ls "$M/box/rootfs" | wc -l)" "chroot NAME/rootfs /bin/sh -c: the shell sees the device's files"
is "$(cat "$M/box/rootfs/root/note" 2>&1)" "written" "what the shell wrote is in the device"

# The chroot's / is the device's filesystem (its own st_dev, not the FUSE
# mount's).
is "$(chroot "$M/box/rootfs" /bin/stat -c %d / 2>&1)" "$(stat -L -c %d "$M/box/rootfs")" "/ inside the chroot is the device's filesystem"
[ "$(stat -L -c %d "$M/box/rootfs")" != "$(stat -c %d "$M/box")" ]; ok $? "and that is not the FUSE mount"

# A snapshot taken while mounted carries the file; the chroot of the
# snapshot sees it, and a write there does not reach the origin.
mkdir "$M/box/v2" && ctl box/v2 mount; ok $? "snapshot box/v2 of the mounted box, mounted"
is "$(chroot "$M/box/v2/rootfs" /bin/sh -c 'cat /root/note; echo v2 > /root/note; cat /etc/thinfs-device' 2>&1)" "written
box" "chroot into the snapshot sees the origin's files"
is "$(cat "$M/box/rootfs/root/note")" "written" "a write in the snapshot leaves the origin alone"

ctl box/v2 unmount && ctl box unmount; ok $? "unmount both"
ctl box mount; ok $? "mount box again"
is "$(chroot "$M/box/rootfs" /bin/cat /root/note 2>&1)" "written" "the file survived unmount and mount"
ctl box unmount

stop_daemon; ok $? "daemon stops cleanly"
done_testing
