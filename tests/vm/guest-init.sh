#!/bin/sh
# Stage 2 of the thinfs test guest (PID 1 after switch_root; see
# run-in-vm.sh). Owns the guest's runtime: kernel filesystems, the modules
# the tests need, the results export, running the job and powering off.
# The job directory /thinfs-vm holds: resultdir (absolute path, one line)
# and job.sh (cd + environment + the command, written by run-in-vm.sh).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
LANG=C.UTF-8
export PATH HOME LANG

poweroff_now() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# What udev would add: bash's <(...) needs /dev/fd.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# Fresh /tmp and /run: the host's are visible through the overlay and
# their sockets, pid and lock files mean nothing here.
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/lvm
hostname thinfs-vm 2>/dev/null || true

resultdir=$(cat /thinfs-vm/resultdir)
mkdir -p "$resultdir"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "$resultdir"; then
	echo "thinfs-vm stage2: mount of the results dir $resultdir failed"
	poweroff_now
fi

# No udev here: libdevmapper must make the /dev/mapper nodes itself.
DM_DISABLE_UDEV=1
THINFS_IN_VM=1
export DM_DISABLE_UDEV THINFS_IN_VM
modprobe -a dm-thin-pool loop ext4 xfs fuse >"$resultdir/modprobe.log" 2>&1 ||
	echo "thinfs-vm stage2: modprobe failed: $(cat "$resultdir/modprobe.log")"
rm -f "$resultdir/modprobe.log"
# Pick up device nodes for what was just loaded (devtmpfs does, but wait
# for /dev/mapper/control, which the tests open at once).
i=0
while [ ! -e /dev/mapper/control ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done

# The shell waits with wait(-1), so it also reaps daemons that were
# orphaned to PID 1 (tests check with kill -0 that a daemon is gone).
bash /thinfs-vm/job.sh </dev/null >"$resultdir/output" 2>&1
echo $? >"$resultdir/status"
poweroff_now
