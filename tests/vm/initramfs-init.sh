#!/bin/busybox sh
# /init of the thinfs test guest's initramfs (built by run-in-vm.sh).
# Owns stage 1 of the boot: load the virtio/9p/overlay modules, mount the
# host's / (read-only 9p) under a tmpfs overlay, copy in the job, and hand
# over to tests/vm/guest-init.sh (stage 2) with switch_root.
# The modules to load, in dependency order, are listed in /modules.order.
export PATH=/bin

fail() {
	echo "thinfs-vm stage1: $*"
	echo o >/proc/sysrq-trigger
	sleep 30
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/modules/$m.ko" || fail "insmod $m failed"
done </modules.order

job=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	thinfs.job=*) job=${arg#thinfs.job=} ;;
	esac
done
[ -n "$job" ] || fail "no thinfs.job= on the kernel command line"

mkdir -p /lower /ovl /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 \
	hostroot /lower || fail "mount of the host root (9p) failed"
mount -t tmpfs -o size=90%,mode=0755 ovl /ovl || fail "tmpfs for the overlay"
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work \
	overlay /newroot || fail "overlay mount failed"

# The job directory sits in the host's /tmp, which the guest hides under a
# fresh tmpfs: copy it into the new root before that happens.
mkdir -p /newroot/thinfs-vm
cp -a "/lower$job/." /newroot/thinfs-vm/ || fail "copy of the job $job failed"
cp /guest-init.sh /newroot/thinfs-vm/guest-init.sh

umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/sh /thinfs-vm/guest-init.sh
