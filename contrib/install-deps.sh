#!/bin/bash
# Install every package thinfs needs to build, run and be tested on Debian 12
# (build tools and libraries, the filesystem tools it runs, and the QEMU guest
# the dm backend is tested in). Idempotent; needs root.
set -euo pipefail

packages=(
	build-essential autoconf automake pkg-config
	libfuse3-dev fuse3 libdevmapper-dev libjson-c-dev libblkid-dev libmount-dev
	# sd_notify for the Type=notify unit (contrib/thinfs.service)
	libsystemd-dev
	dmsetup thin-provisioning-tools xfsprogs e2fsprogs util-linux
	jq python3 procps kmod
	# tests/functional/listing.t: listing the namespace mounts nothing
	tree
	qemu-system-x86 linux-image-amd64 busybox-static xz-utils
	lvm2
	# tests/vm/dm-docker.sh: Debian's dockerd with the devicemapper driver
	# makes the state directory thinfs opens (the client is /usr/bin/docker)
	docker.io
	# tests/clients: the clients run on a device's rootfs
	systemd-container runc podman crun umoci mc tmux acl attr
	# tests/fuzz: libFuzzer harnesses (clang with its fuzzer runtime)
	clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
