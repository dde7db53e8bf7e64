#!/bin/bash
# nspawn.t - systemd-nspawn -D NAME/rootfs on a busybox rootfs in a device.
# Flags for a machine where systemd may not be PID 1 (a CI container):
#   --register=no   no systemd-machined to register with
#   --keep-unit     no systemd to make a scope unit: stay in our cgroup
#   --pipe          no terminal: stdin/stdout are pipes
#   -M NAME         the machine name would be the directory's name,
#                   "rootfs", for every device: name each run
# The same command on a plain directory first: if nspawn cannot run here
# at all, the test skips with its error.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need systemd-nspawn chroot
need_busybox

nspawn() {
	local d=$1; shift
	timeout 120 systemd-nspawn -q -D "$d" -M "thinfs-t$$" --register=no --keep-unit --pipe "$@" </dev/null
}

plain_rootfs "$WORK/plain" || skip_all "cannot build a plain busybox rootfs"
out=$(nspawn "$WORK/plain" /bin/cat /etc/thinfs-device 2>"$WORK/plain.err")
[ "$out" = plain ] || skip_all "systemd-nspawn does not run here even on a plain directory: $(tr '\n' ' ' <"$WORK/plain.err" | cut -c1-200)"

start_daemon || skip_all "thinfs did not start"
make_rootfs box; ok $? "a busybox rootfs in device box"

out=$(nspawn "$M/box/rootfs" /bin/sh -c 'cat /etc/thinfs-device; echo pid=$$; echo from-nspawn > /root/note; ls /bin/sh' 2>"$WORK/ns.err")
st=$?
is "$st:$out" "0:box
pid=1
/bin/sh" "systemd-nspawn -D NAME/rootfs runs the shell as PID 1 on the device's files"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/ns.err"
is "$(cat "$M/box/rootfs/root/note" 2>&1)" "from-nspawn" "what it wrote is in the device"

# nspawn's own mounts (proc, sys, dev, run...) live in its namespace: after
# it exits the device unmounts.
ctl box unmount; ok $? "the device unmounts after nspawn exits (nothing left mounted in it)"
is "$(ctl_state box)" "unmounted" "ctl says unmounted"

# Read-only: nspawn --read-only on a device mounted "mount ro".
ctl box "mount ro"; ok $? "mount ro"
out=$(nspawn "$M/box/rootfs" --read-only /bin/sh -c 'cat /root/note; touch /root/x 2>/dev/null && echo wrote || echo refused' 2>"$WORK/ns.err")
is "$out" "from-nspawn
refused" "nspawn on a read-only mount reads the files and cannot write"
ctl box unmount

stop_daemon; ok $? "daemon stops cleanly"
done_testing
