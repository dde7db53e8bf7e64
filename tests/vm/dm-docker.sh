#!/bin/bash
# dm-docker.sh -- TAP: thinfs opens the state directory that Debian's real
# dockerd (docker.io, devicemapper storage driver) left, shows every device
# with its genealogy from Docker's layer database, mounts them, and leaves
# the directory to Docker as it found it. Run inside the guest by
# dm-guest.sh (root, device-mapper), as a user rescuing a Docker
# devicemapper directory would:
#  1. dockerd on a tmpfs /var/lib/docker: docker import of a busybox-static
#     tarball (img:1), docker create c1, docker cp a file into it, docker
#     start it once, docker commit c1 as img:2 (a second layer)
#  2. stop dockerd: no dm device stays; checksums of Docker's metadata files
#  2b. thinfs -o ro: the layers read through rootfs, every change EROFS,
#     and nothing under the directory changes (sizes, mtimes, ctimes)
#  3. thinfs -o backend=dm on /var/lib/docker/devicemapper: every device
#     visible; the tree is the genealogy (img:1's layer at the top, c1's
#     -init in it, c1's layer in that, img:2's layer in img:1's)
#  4. the image layer and the container layer mount and hold the files
#     (automount and ctl mount); a file written through thinfs into c1
#  5. another owner: a dm device holding the pool's metadata loop device
#     makes the start fail, saying why, and changes nothing
#  6. stop thinfs: no dm device of its own stays; Docker's device files
#     are byte for byte as Docker left them, deviceset-metadata has the
#     same values under Docker's keys; thin_check is clean
#  7. dockerd again on the same directory: docker start c1 sees both files,
#     docker run of img:1 and img:2 work
#  8. while dockerd runs, thinfs refuses to start (Docker's pool is active)
#     and dockerd is unharmed
# SKIP only where dockerd is not installed or cannot start at all.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/dm-lib.sh"

require_thin_pool

DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
if [ ! -x "$DOCKER" ] || [ ! -x "$DOCKERD" ]; then
	echo "1..0 # SKIP Debian's docker.io is not installed (contrib/install-deps.sh installs it)"
	exit 0
fi
BUSYBOX=
for b in /bin/busybox /usr/bin/busybox; do
	if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then BUSYBOX=$b; break; fi
done
if [ -z "$BUSYBOX" ]; then
	echo "1..0 # SKIP no static busybox for the image (Debian: busybox-static)"
	exit 0
fi

ROOT=/var/lib/docker
D=$ROOT/devicemapper
LDB=$ROOT/image/devicemapper/layerdb
work=$(mktemp -d /var/tmp/dm-docker.XXXXXX)
M=$work/mnt
DLOG=$work/dockerd.log
dockerd_pid=
mounted_root=
cleanup() {
	[ -n "${daemon_pid:-}" ] && kill -KILL "$daemon_pid" 2>/dev/null
	umount -l "$M" 2>/dev/null
	if [ -n "$dockerd_pid" ]; then
		kill -TERM "$dockerd_pid" 2>/dev/null
		sleep 5
		kill -KILL "$dockerd_pid" 2>/dev/null
	fi
	[ -n "$containerd_pid" ] && kill -KILL "$containerd_pid" 2>/dev/null
	dmsetup remove foreign-holder >/dev/null 2>&1
	true
}
trap cleanup EXIT

# containerd first, waited for as long as it takes (dockerd gives the
# containerd it starts itself a fixed time, too short under TCG on a busy
# host); then dockerd as VM-HARNESS.md has it: devicemapper on loopback
# files, no network set-up, udev sync check off (no udev in the guest).
CSOCK=/run/containerd/containerd.sock
containerd_pid=
start_containerd() {
	local i
	[ -n "$containerd_pid" ] && alive "$containerd_pid" && return 0
	rm -f "$CSOCK"
	containerd >>"$work/containerd.log" 2>&1 &
	containerd_pid=$!
	for ((i = 0; i < 1500; i++)); do
		[ -S "$CSOCK" ] && return 0
		alive "$containerd_pid" || break
		sleep 0.2
	done
	return 1
}
start_dockerd() {
	local i
	start_containerd || { echo "containerd did not start" >>"$DLOG"; return 1; }
	"$DOCKERD" --containerd="$CSOCK" --storage-driver=devicemapper --storage-opt dm.loopdatasize=4G \
		--storage-opt dm.basesize=1G --storage-opt dm.override_udev_sync_check=true \
		--iptables=false --bridge=none --ip-masq=false >>"$DLOG" 2>&1 &
	dockerd_pid=$!
	for ((i = 0; i < 1500; i++)); do
		"$DOCKER" version >/dev/null 2>&1 && return 0
		alive "$dockerd_pid" || break
		sleep 0.2
	done
	kill -TERM "$dockerd_pid" 2>/dev/null
	wait "$dockerd_pid" 2>/dev/null
	dockerd_pid=
	return 1
}
stop_dockerd() {
	local i rc=0
	[ -n "$dockerd_pid" ] || return 0
	kill -TERM "$dockerd_pid"
	for ((i = 0; i < 600; i++)); do
		alive "$dockerd_pid" || break
		sleep 0.1
	done
	if alive "$dockerd_pid"; then
		diag "dockerd ignored SIGTERM for 60 s; killing it"
		kill -KILL "$dockerd_pid"
		rc=1
	fi
	wait "$dockerd_pid"
	dockerd_pid=
	return $rc
}
stop_containerd() {
	[ -n "$containerd_pid" ] || return 0
	kill -TERM "$containerd_pid" 2>/dev/null
	wait "$containerd_pid" 2>/dev/null
	containerd_pid=
}
dlog_tail() { tail -n "${1:-20}" "$DLOG" | sed 's/^/#   /'; }
tlog_tail() { tail -n "${1:-20}" "$D.log" | sed 's/^/#   /'; }
dm_names() { dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}' | sort; }
# Docker's device files and transaction record, byte for byte;
# deviceset-metadata by the keys Docker reads (thinfs adds its own names
# for the base UUID and filesystem when it saves it at stop).
meta_sums() { (cd "$D/metadata" && md5sum -- * | grep -v ' deviceset-metadata$' | sort -k2); }
docker_keys() { jq -c '{next_device_id, BaseDeviceUUID, BaseDeviceFilesystem}' "$D/metadata/deviceset-metadata"; }

# ---------------------------------------------------------------- 1 ----
diag "case 1 (at ${SECONDS}s): dockerd with the devicemapper driver makes images and a container"
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
if ! mountpoint -q "$ROOT"; then
	mkdir -p "$ROOT" && mount -t tmpfs -o size=6g,mode=0711 tmpfs "$ROOT" && mounted_root=1
fi
if ! start_dockerd; then
	echo "1..0 # SKIP dockerd cannot start here: $(grep -iE 'level=(fatal|error)|failed|did not' "$DLOG" | tail -n 1 | cut -c1-300)"
	exit 0
fi
ok 0 "dockerd starts with --storage-driver=devicemapper on loopback files"
is "$("$DOCKER" info -f '{{.Driver}}' 2>/dev/null)" devicemapper "docker info: driver devicemapper"

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for a in sh cat echo ls date sleep; do ln -s busybox "$rootfs/bin/$a"; done
echo image-file >"$rootfs/image.txt"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
check "docker import of a busybox-static tarball as img:1" sh -c "'$DOCKER' import '$work/rootfs.tar' img:1 >/dev/null"
check "docker create c1 from img:1" sh -c "'$DOCKER' create --name c1 --network none img:1 /bin/sh -c 'cat /hello.txt /from-thinfs.txt 2>&1; date >>/runs' >/dev/null"
echo hello-from-docker >"$work/hello.txt"
check "docker cp a file into c1" "$DOCKER" cp "$work/hello.txt" c1:/hello.txt
run1=$("$DOCKER" start -a c1 2>&1)
if grep -q hello-from-docker <<<"$run1"; then
	ok 0 "docker start -a c1 runs it and it reads the file"
	can_run=1
else
	ok 1 "docker start -a c1 runs it and it reads the file"
	diag "docker start said: $run1"
	dlog_tail 10
	can_run=
fi
check "docker commit c1 as img:2 (a second layer)" sh -c "'$DOCKER' commit c1 img:2 >/dev/null"
cid=$("$DOCKER" inspect -f '{{.Id}}' c1)
mount_id=$(cat "$LDB/mounts/$cid/mount-id" 2>/dev/null)
init_id=$(cat "$LDB/mounts/$cid/init-id" 2>/dev/null)
l1= l2=
for dir in "$LDB"/sha256/*/; do
	if [ -e "$dir/parent" ]; then l2=$(cat "$dir/cache-id"); else l1=$(cat "$dir/cache-id"); fi
done
check "the layer database names c1's devices and both layers" test -n "$mount_id" -a -n "$init_id" -a -n "$l1" -a -n "$l2"
diag "img:1 layer $l1, img:2 layer $l2, c1: $init_id and $mount_id"

# ---------------------------------------------------------------- 2 ----
diag "case 2 (at ${SECONDS}s): dockerd stops and leaves no dm device"
check "dockerd stops on SIGTERM" stop_dockerd
is "$(dm_names | grep -c '^docker-')" 0 "no docker-* dm device stays active"
check "Docker's state directory has its device files" test -f "$D/metadata/$mount_id" -a -f "$D/metadata/base"
sums_before=$(meta_sums)
keys_before=$(docker_keys)
ls -l "$D/devicemapper" | sed 's/^/#   /'
n_files=$(ls "$D/metadata" | grep -cvE '^(deviceset-metadata|transaction-metadata|base)$')
diag "Docker's deviceset-metadata: $(cat "$D/metadata/deviceset-metadata")"

# --------------------------------------------------------------- 2b ----
# -o ro, the way to look at data one wants to rescue: nothing under
# Docker's directory changes (a loop device writing to a pool file moves
# its mtime), the layers read through rootfs, every change is EROFS.
diag "case 2b (at ${SECONDS}s): thinfs -o ro on Docker's directory changes nothing"
tree_state() {
	find "$D" -xdev -printf '%y %p %s %T@ %C@\n' | sort
	find "$D" -xdev -type f -size -1024k -print0 | sort -z | xargs -0 md5sum
}
state_before=$(tree_state)
rm -f "$D.log"
if start_daemon "$D" "$M" "ro"; then
	ok 0 "thinfs -o ro starts on $D"
	is "$(head -n 1 "$M/ctl")" "ok dm $n_files devices" "  pool ctl: ok dm $n_files devices"
	RI=$M/$l1 RC=$M/$l1/$init_id/$mount_id
	is "$(md5sum <"$RI/rootfs/bin/busybox" 2>/dev/null | cut -d' ' -f1)" \
		"$(md5sum <"$BUSYBOX" | cut -d' ' -f1)" "  img:1's layer reads through rootfs (automount)"
	is "$(cat "$RC/rootfs/hello.txt" 2>/dev/null)" hello-from-docker "  c1's layer too: the file docker cp wrote"
	pfx=$(jq -r .pool_name "$M/info" 2>/dev/null); pfx=${pfx%-pool}
	is "$(readlink "$RI/rootfs")" "/run/thinfs/$pfx/$(jq -r .device_id "$RI/info" 2>/dev/null)/rootfs" \
		"  mounted under /run/thinfs/PREFIX, not in Docker's directory"
	check "  read-only, without journal replay" sh -c "grep ' /run/thinfs/$pfx/' /proc/self/mountinfo | grep -q ' ro,.* - [a-z0-9]* [^ ]* ro,.*norecovery'"
	dmsetup table "$pfx-pool" 2>/dev/null | grep -q ' read_only'
	ok $? "  the pool is loaded with the read_only feature"
	is "$(errno_of create "$RC/rootfs/new")" EROFS "  writing into a layer: EROFS"
	is "$(errno_of mkdir "$RI/snap")" EROFS "  mkdir: EROFS"
	is "$(errno_of rmdir "$RC")" EROFS "  rmdir: EROFS"
	is "$(errno_of write "$RC/ctl" mount)" EROFS "  writing ctl: EROFS"
	cat "$RC/info" >/dev/null
	for ((i = 0; i < 100; i++)); do
		[ "$(jq .usage_at "$RC/info" 2>/dev/null)" != 0 ] && break
		sleep 0.3
	done
	check "  usage figures are read (thin_ls of the live metadata, no metadata snapshot)" \
		jq -e '.usage_at > 0' "$RC/info"
	grep -E 'usage|thin_ls|loop attach' "$D.log" | sed 's/^/#   /'
	diag "c1's layer info under -o ro:"
	jq -c '{name, device_id, parent, read_only, automounted, rootfs, exclusive_bytes, shared_bytes}' "$RC/info" | sed 's/^/#   /'
	for ((i = 0; i < 100; i++)); do
		[ "$(jq .usage_at "$RI/info" 2>/dev/null)" != 0 ] && break
		sleep 0.3
	done
	diag "img:1's layer info under -o ro:"
	jq -c '{name, device_id, parent, read_only, automounted, rootfs, exclusive_bytes, shared_bytes}' "$RI/info" | sed 's/^/#   /'
	ro_usage=$(for x in "$RI" "$RC"; do jq -r '"\(.device_id) \(.exclusive_bytes) \(.shared_bytes)"' "$x/info"; done)
	check "  stop" stop_daemon "$M"
	mloop=$(losetup -r -f --show "$D/devicemapper/metadata")
	tl=$(thin_ls --no-headers -o DEV,EXCLUSIVE_BYTES,SHARED_BYTES "$mloop" 2>&1)
	losetup -d "$mloop"
	diag "thin_ls of the metadata afterwards (DEV EXCLUSIVE_BYTES SHARED_BYTES):"
	sed 's/^/#   /' <<<"$tl"
	want=$(for x in $(cut -d' ' -f1 <<<"$ro_usage"); do awk -v d="$x" '$1 == d {print $1, $2, $3}' <<<"$tl"; done)
	is "$ro_usage" "$want" "  info's exclusive_bytes and shared_bytes of both layers equal thin_ls's"
else
	ok 1 "thinfs -o ro starts on $D"
	tlog_tail 30
fi
is "$(dm_names | grep -c '^thinfs-')" 0 "  no thinfs-* dm device stays active"
is "$(loop_of "$D/devicemapper/data" "$D/devicemapper/metadata" | wc -l)" 0 "  no loop device stays on the pool files"
state_after=$(tree_state)
is "$state_after" "$state_before" "  nothing under $D changed: contents, sizes, mtimes, ctimes"
[ "$state_after" = "$state_before" ] || diff <(echo "$state_before") <(echo "$state_after") | head -20 | sed 's/^/#   /'
# A read-only run killed leaves its read-only pool: a read-write start
# refuses it, naming it, and one read-only start and stop releases it.
if start_daemon "$D" "$M" "ro"; then
	kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null; daemon_pid=
	umount -l "$M" 2>/dev/null
	check "  a killed read-only run leaves its pool (thinfs-ro-*)" sh -c "dmsetup ls | grep -q '^thinfs-ro-.*-pool'"
	timeout -k 5 120 "$THINFS" -f -o backend=dm "$D" "$M" >"$work/ro-left.log" 2>&1
	ok $((!$?)) "  a read-write start over it is refused"
	check "    naming it" grep -q "in use by dm device thinfs-ro-.*-pool: a killed thinfs run of the other kind" "$work/ro-left.log"
	mountpoint -q "$M" && umount -l "$M"
	if start_daemon "$D" "$M" "ro"; then
		check "  a read-only start takes it over, and stops" stop_daemon "$M"
	else
		ok 1 "  a read-only start takes it over, and stops"
		tlog_tail 20
	fi
	is "$(dm_names | grep -c '^thinfs-')" 0 "  after which no thinfs-* dm device stays"
	is "$(loop_of "$D/devicemapper/data" "$D/devicemapper/metadata" | wc -l)" 0 "  nor a loop device on the pool files"
else
	ok 1 "thinfs -o ro starts on $D again"
	tlog_tail 20
fi

# ---------------------------------------------------------------- 3 ----
diag "case 3 (at ${SECONDS}s): thinfs opens Docker's directory with backend=dm"
rm -f "$D.log"
if ! start_daemon "$D" "$M" "dm.libdm_log_level=3"; then
	ok 1 "thinfs starts on $D"
	diag "exit status ${daemon_rc:-?}; log:"
	tlog_tail 30
	tap_end
	exit 1
fi
ok 0 "thinfs starts on $D"
save_pool_name "$M" "$D"
grep -E 'ready:|layer database' "$D.log" | sed 's/^/#   /'
is "$(head -n 1 "$M/ctl")" "ok dm $n_files devices" "pool ctl: ok dm $n_files devices"
# Every device file (but base) is a directory somewhere in the tree; find
# does not follow the rootfs links.
missing=
tree=$(find "$M" -mindepth 1 -type d -printf '%f\n' | sort)
for f in "$D"/metadata/*; do
	n=${f##*/}
	case $n in base | deviceset-metadata | transaction-metadata) continue ;; esac
	grep -qxF "$n" <<<"$tree" || missing="$missing $n"
done
is "$missing" "" "every Docker device is visible in the tree"
find "$M" -mindepth 1 -type d -printf '#   %P\n'
check "img:1's layer is at the top" test -d "$M/$l1"
is "$(jq -r .parent "$M/$l1/info" 2>/dev/null)" base "  its parent: base"
check "c1's -init device is inside img:1's layer" test -d "$M/$l1/$init_id"
is "$(jq -r .parent "$M/$l1/$init_id/info" 2>/dev/null)" "$l1" "  its parent: img:1's layer"
check "c1's device is inside its -init device" test -d "$M/$l1/$init_id/$mount_id"
is "$(jq -r .parent "$M/$l1/$init_id/$mount_id/info" 2>/dev/null)" "$init_id" "  its parent: the -init device"
check "img:2's layer is inside img:1's" test -d "$M/$l1/$l2"
is "$(jq -r .parent "$M/$l1/$l2/info" 2>/dev/null)" "$l1" "  its parent: img:1's layer"
is "$(jq -r .children "$M/$l1/info" 2>/dev/null)" 2 "img:1's layer has 2 children (img:2's layer, c1's -init)"
I=$M/$l1 C=$M/$l1/$init_id/$mount_id

# ---------------------------------------------------------------- 4 ----
diag "case 4 (at ${SECONDS}s): the layers mount and hold their files at rootfs/ (Docker keeps them under rootfs/ in the device: the link leads into it)"
is "$(md5sum <"$I/rootfs/bin/busybox" 2>/dev/null | cut -d' ' -f1)" \
	"$(md5sum <"$BUSYBOX" | cut -d' ' -f1)" "img:1's layer, automounted: rootfs/bin/busybox is the image's"
is "$(cat "$I/rootfs/image.txt" 2>/dev/null)" image-file "img:1's layer: image.txt"
is "$(head -n 1 "$I/ctl")" automounted "img:1's layer reads automounted"
is "$(readlink "$I/rootfs")" "$D/mnt/$(jq -r .device_id "$I/info" 2>/dev/null)/rootfs" "img:1's rootfs link leads into the layer's rootfs/ (STATEDIR/mnt/ID/rootfs)"
is "$(jq -r .rootfs "$I/info" 2>/dev/null)" "$(readlink "$I/rootfs")" "  and info's rootfs says so"
check "  the layer's id file is beside it, not in it" test ! -e "$I/rootfs/id"
diag "img:1's layer info:"
jq . "$I/info" | sed 's/^/#   /'
check "mount ro c1's layer" sh -c "echo 'mount ro' >'$C/ctl'"
is "$(cat "$C/rootfs/hello.txt" 2>/dev/null)" hello-from-docker "c1's layer: the file docker cp wrote"
is "$(cat "$C/rootfs/image.txt" 2>/dev/null)" image-file "c1's layer: the image's file"
diag "c1's layer info:"
jq . "$C/info" | sed 's/^/#   /'
check "unmount c1's layer" sh -c "echo unmount >'$C/ctl'"
check "mount c1's layer read-write" sh -c "echo mount >'$C/ctl'"
check "write a file into c1 through thinfs" sh -c "echo written-by-thinfs >'$C/rootfs/from-thinfs.txt' && sync"
check "unmount c1's layer" sh -c "echo unmount >'$C/ctl'"
is "$(cat "$M/$l1/$l2/rootfs/hello.txt" 2>/dev/null)" hello-from-docker "img:2's layer (automounted) holds the committed file"

# ---------------------------------------------------------------- 5 ----
diag "case 5 (at ${SECONDS}s): thinfs refuses a pool whose storage someone else holds"
check "stop thinfs" stop_daemon "$M"
is "$(dm_names | grep -c '^thinfs-')" 0 "no thinfs-* dm device stays active"
is "$(loop_of "$D/devicemapper/data" "$D/devicemapper/metadata" | wc -l)" 0 "thinfs detached its loop devices"
mloop=$(losetup -f --show "$D/devicemapper/metadata")
dmsetup create foreign-holder --table "0 8 linear $mloop 0"
timeout -k 5 120 "$THINFS" -f -o backend=dm "$D" "$M" >"$work/refused.log" 2>&1
rc=$?
[ "$rc" -ne 0 ]
ok $? "thinfs refuses to start (exit $rc) while dm device foreign-holder holds the metadata file's loop device"
check "  and says who holds it" grep -q "in use by dm device foreign-holder" "$work/refused.log"
grep -m1 'in use by' "$work/refused.log" | sed 's/^/#   /'
is "$(dm_names | grep -c '^thinfs-')" 0 "  and leaves no dm device of its own"
mountpoint -q "$M" && umount -l "$M"
dmsetup remove foreign-holder
losetup -d "$mloop"

# ---------------------------------------------------------------- 6 ----
diag "case 6 (at ${SECONDS}s): Docker's metadata is as Docker left it"
is "$(meta_sums)" "$sums_before" "Docker's device files and transaction-metadata are byte for byte unchanged"
is "$(docker_keys)" "$keys_before" "deviceset-metadata: the keys Docker reads are unchanged"
diag "deviceset-metadata now: $(cat "$D/metadata/deviceset-metadata")"
mloop=$(losetup -r -f --show "$D/devicemapper/metadata")
oracle "$D" "$mloop" "after thinfs"
losetup -d "$mloop"
is "$(loop_of "$D/devicemapper/data" "$D/devicemapper/metadata" | wc -l)" 0 "no loop device left on the pool files"

# ---------------------------------------------------------------- 7 ----
diag "case 7 (at ${SECONDS}s): dockerd runs again on the same directory"
if start_dockerd; then
	ok 0 "dockerd starts again on the directory thinfs opened"
else
	ok 1 "dockerd starts again on the directory thinfs opened"
	dlog_tail 20
	tap_end
	exit 1
fi
is "$("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')" "img:1 img:2 " "docker images: img:1 and img:2"
if [ -n "$can_run" ]; then
	out=$("$DOCKER" start -a c1 2>&1)
	grep -q hello-from-docker <<<"$out" && grep -q written-by-thinfs <<<"$out"
	rc=$?
	ok $rc "docker start -a c1: the old container runs and reads the file docker cp and thinfs wrote"
	[ $rc -eq 0 ] || diag "it said: $out"
	is "$("$DOCKER" run --rm --network none img:2 /bin/cat /hello.txt 2>&1)" hello-from-docker "docker run img:2"
	is "$("$DOCKER" run --rm --network none img:1 /bin/cat /image.txt 2>&1)" image-file "docker run img:1"
else
	diag "containers could not run in this guest before thinfs either: checking with docker cp instead"
	check "docker cp reads the file thinfs wrote into c1" sh -c "'$DOCKER' cp c1:/from-thinfs.txt - | grep -q written-by-thinfs"
fi

# ---------------------------------------------------------------- 8 ----
diag "case 8 (at ${SECONDS}s): thinfs refuses to start while dockerd holds the pool"
dpool=$(dm_names | grep -- '-pool$' | grep '^docker-')
timeout -k 5 120 "$THINFS" -f -o backend=dm "$D" "$M" >"$work/refused2.log" 2>&1
rc=$?
[ "$rc" -ne 0 ]
ok $? "thinfs refuses to start (exit $rc) while Docker's pool $dpool is active"
check "  and says why" grep -q "Docker's pool $dpool .* is active" "$work/refused2.log"
grep -m1 "Docker's pool" "$work/refused2.log" | sed 's/^/#   /'
mountpoint -q "$M" && umount -l "$M"
is "$(dm_names | grep -c '^thinfs-')" 0 "  and makes no dm device"
if [ -n "$can_run" ]; then
	is "$("$DOCKER" run --rm --network none img:1 /bin/echo still-fine 2>&1)" still-fine "dockerd still runs containers"
fi
check "dockerd stops" stop_dockerd
stop_containerd

if [ -n "$mounted_root" ]; then
	umount -l "$ROOT"
fi
diag "done at ${SECONDS}s"
tap_end
