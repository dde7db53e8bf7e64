#!/bin/bash
# Set up thinfs on a fresh Debian 12 machine and start it:
# install the packages it needs, build, `make install`, then start the
# daemon on the embedded default (a sparse loopback pool under STATEDIR,
# backend auto) and print where it is mounted.
# Usage: sudo contrib/setup.sh [STATEDIR [MOUNTPOINT]]
#        (defaults /var/lib/thinfs and /mnt/thinfs)
set -euo pipefail
statedir=${1:-/var/lib/thinfs}
mountpoint=${2:-/mnt/thinfs}
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: thinfs owns a thin pool and mounts filesystems: run as root" >&2
	exit 1
fi
bash "$top/contrib/install-deps.sh"
cd "$top"
./autogen.sh >/dev/null
mkdir -p build/install
cd build/install
[ -f Makefile ] || "$top/configure" --prefix=/usr/local >configure.out
make -j"$(nproc)" >make.out 2>&1 || { tail -n 40 make.out; exit 1; }
make install >install.out
modprobe fuse 2>/dev/null || true

if grep -q " $mountpoint fuse.thinfs " /proc/self/mountinfo; then
	echo "setup: thinfs is already mounted on $mountpoint"
else
	mkdir -p "$statedir" "$mountpoint"
	/usr/local/sbin/thinfs "$statedir" "$mountpoint"
fi
echo "thinfs is running: pool state in $statedir, mounted on $mountpoint"
echo "try:  mkdir $mountpoint/mybox && echo mount > $mountpoint/mybox/ctl && ls $mountpoint/mybox/rootfs"
