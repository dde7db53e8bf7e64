#!/bin/bash
# run-in-vm.sh -- run one command as root inside a QEMU guest that runs
# Debian's own kernel (which has device-mapper thin provisioning), for the
# tests of thinfs' dm backend on hosts whose kernel has no device-mapper.
#
# Usage: tests/vm/run-in-vm.sh [-m MEM_MB] [-t TIMEOUT_S] [-e VAR]... RESULTDIR -- COMMAND [ARG]...
#
#   -m MEM_MB   guest memory in MiB (default 2048)
#   -t TIMEOUT  seconds before the guest is killed (default 600): exit 124
#   -e VAR      pass the caller's variable VAR into the command's environment
#               (repeatable); THINFS_IN_VM=1 and DM_DISABLE_UDEV=1 are always set
#
# The guest's root is the host's / shared read-only over virtio-9p under a
# tmpfs overlay, so every host path (build tree, tools) is visible at the
# same place and writes stay in the guest. RESULTDIR is shared writable and
# mounted at the same absolute path in the guest. The guest's /tmp is a
# fresh tmpfs: the current directory (the command's cwd in the guest) and
# anything the command reads from the host must be outside /tmp.
# First the guest does `modprobe dm-thin-pool loop ext4 xfs fuse`; then it
# runs COMMAND with stdout+stderr to RESULTDIR/output and its exit status
# to RESULTDIR/status, and powers off. On the host this script prints the
# output and exits with the command's status; 124 on timeout (with the
# console tail), 77 if the guest cannot run here at all (no qemu, no
# kernel with dm-thin-pool, no busybox), 2 on usage errors, 1 if the
# guest died without a status.
#
# KVM is never used: on these hosts a KVM guest hangs after the kernel
# starts; TCG boots to the command in a few seconds.
# The initramfs (busybox-static + virtio/9p/overlay modules + the two init
# scripts beside this file) is built on demand into a cache directory
# ($THINFS_VM_CACHE, else $XDG_CACHE_HOME/thinfs-vm, else
# /var/cache/thinfs-vm) and rebuilt when the kernel or the scripts change.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mem=2048
timeout_s=600
envvars=()

usage() {
	sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}
skip() {
	echo "run-in-vm: cannot run a guest here: $*" >&2
	exit 77
}
die() {
	echo "run-in-vm: $*" >&2
	exit 2
}

while getopts "m:t:e:h" opt; do
	case $opt in
	m) [[ $OPTARG =~ ^[0-9]+$ ]] || die "-m wants MiB, got '$OPTARG'"; mem=$OPTARG ;;
	t) [[ $OPTARG =~ ^[0-9]+$ ]] || die "-t wants seconds, got '$OPTARG'"; timeout_s=$OPTARG ;;
	e) [[ $OPTARG =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "-e wants a variable name, got '$OPTARG'"
	   envvars+=("$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] && [ "$2" = "--" ] || usage
resultdir=$1
shift 2

case $PWD/ in
/tmp/*) die "the current directory $PWD is under /tmp, which the guest does not share; cd elsewhere" ;;
esac
mkdir -p -- "$resultdir" || die "cannot create $resultdir"
resultdir=$(cd -- "$resultdir" && pwd -P) || die "cannot enter $resultdir"
case $resultdir in
*,*) die "RESULTDIR $resultdir contains a comma, which qemu's -virtfs cannot take" ;;
/tmp | /tmp/*) die "RESULTDIR $resultdir is under /tmp; use a directory elsewhere" ;;
esac

qemu=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
busybox=
for b in /bin/busybox /usr/bin/busybox; do
	if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || skip "no static busybox (Debian: busybox-static)"

# The newest installed kernel that has dm-thin-pool as a module or built in.
kver=
for v in $(ls /boot 2>/dev/null | sed -n 's/^vmlinuz-//p' | sort -rV); do
	[ -r "/boot/vmlinuz-$v" ] && [ -d "/lib/modules/$v" ] || continue
	if compgen -G "/lib/modules/$v/kernel/drivers/md/dm-thin-pool.ko*" >/dev/null ||
		grep -q '/dm-thin-pool\.ko$' "/lib/modules/$v/modules.builtin" 2>/dev/null; then
		kver=$v
		break
	fi
done
[ -n "$kver" ] || skip "no /boot/vmlinuz-* with dm-thin-pool in /lib/modules (Debian: linux-image-amd64)"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver

# Stage-1 modules, in load order (each needs the ones before it).
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay"

work=
qpid=
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null
		sleep 1
		kill -KILL "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
	fi
	[ -n "$work" ] && rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

work=$(mktemp -d /tmp/thinfs-vm.XXXXXX) || die "mktemp failed"

# ---- initramfs, cached per kernel ----
cache=${THINFS_VM_CACHE:-}
if [ -z "$cache" ]; then
	if [ -n "${XDG_CACHE_HOME:-}" ]; then
		cache=$XDG_CACHE_HOME/thinfs-vm
	else
		cache=/var/cache/thinfs-vm
	fi
fi
mkdir -p -- "$cache" 2>/dev/null && [ -w "$cache" ] || cache=$work/cache
mkdir -p -- "$cache"
initrd=$cache/initramfs-$kver.cpio.gz
key="$kver $(stat -c '%s %Y' "$kernel" "$moddir/modules.dep" | tr '\n' ' ') \
$(cat "$here/initramfs-init.sh" "$here/guest-init.sh" "$busybox" | sha256sum | cut -d' ' -f1) $modules"
if [ ! -s "$initrd" ] || [ "$(cat "$initrd.key" 2>/dev/null)" != "$key" ]; then
	st=$work/initramfs
	mkdir -p "$st/bin" "$st/modules" "$st/proc" "$st/sys" "$st/dev"
	cp "$busybox" "$st/bin/busybox"
	for a in sh mount umount mkdir insmod switch_root cat cp echo sleep; do
		ln -s busybox "$st/bin/$a"
	done
	: >"$st/modules.order"
	for m in $modules; do
		pat="/${m//_/[_-]}\.ko"
		if grep -q "${pat}\$" "$moddir/modules.builtin" 2>/dev/null; then
			continue
		fi
		rel=$(grep -E "${pat}(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)
		[ -n "$rel" ] || skip "kernel $kver has module $m neither built in nor in modules.dep"
		case $rel in
		*.ko.xz) xz -dc "$moddir/$rel" >"$st/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$moddir/$rel" >"$st/modules/$m.ko" ;;
		*.ko.gz) gzip -dc "$moddir/$rel" >"$st/modules/$m.ko" ;;
		*) cp "$moddir/$rel" "$st/modules/$m.ko" ;;
		esac || die "cannot unpack $moddir/$rel"
		echo "$m" >>"$st/modules.order"
	done
	install -m 0755 "$here/initramfs-init.sh" "$st/init"
	install -m 0755 "$here/guest-init.sh" "$st/guest-init.sh"
	(cd "$st" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.tmp" ||
		die "cannot build the initramfs"
	# Atomic replace: another run may be booting from the old one.
	cp "$work/initrd.tmp" "$initrd.tmp.$$" && mv -f "$initrd.tmp.$$" "$initrd" &&
		echo "$key" >"$initrd.key.tmp.$$" && mv -f "$initrd.key.tmp.$$" "$initrd.key" ||
		die "cannot write $initrd"
fi

# ---- the job: cwd, environment, command ----
rm -f -- "$resultdir/output" "$resultdir/status"
mkdir -p "$work/job"
echo "$resultdir" >"$work/job/resultdir"
{
	printf 'cd -- %q || exit 125\n' "$PWD"
	printf 'export THINFS_IN_VM=1 DM_DISABLE_UDEV=1\n'
	for v in "${envvars[@]}"; do
		if [ -n "${!v+set}" ]; then
			printf 'export %s=%q\n' "$v" "${!v}"
		fi
	done
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$work/job/job.sh"

console=$work/console.log
"$qemu" -accel tcg -m "$mem" -smp 2 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet thinfs.job=$work/job" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$resultdir,mount_tag=results,security_model=none,multidevs=remap" \
	</dev/null >"$console" 2>&1 &
qpid=$!

# Wait for qemu, or kill it at the deadline.
deadline=$((SECONDS + timeout_s))
while kill -0 "$qpid" 2>/dev/null; do
	if [ $SECONDS -ge $deadline ]; then
		kill -TERM "$qpid" 2>/dev/null
		sleep 2
		kill -KILL "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
		qpid=
		echo "run-in-vm: timeout after ${timeout_s}s; console tail:" >&2
		tail -n 40 "$console" >&2
		if [ -s "$resultdir/output" ]; then
			echo "run-in-vm: output tail:" >&2
			tail -n 40 "$resultdir/output" >&2
		fi
		exit 124
	fi
	sleep 0.5
done
wait "$qpid"
qrc=$?
qpid=

if [ ! -s "$resultdir/status" ]; then
	echo "run-in-vm: the guest ended without a status (qemu exit $qrc); console tail:" >&2
	tail -n 40 "$console" >&2
	[ -s "$resultdir/output" ] && { echo "run-in-vm: output:" >&2; tail -n 40 "$resultdir/output" >&2; }
	exit 1
fi
cat "$resultdir/output"
status=$(cat "$resultdir/status")
[[ $status =~ ^[0-9]+$ ]] || status=1
exit "$status"
