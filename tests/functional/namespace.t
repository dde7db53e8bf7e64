#!/bin/bash
# namespace.t - the layout of doc/design.md §1 as a user sees it: files and
# directories, mkdir at the top and nested, info JSON, rename, rm -r,
# readdir, df, ctl lines, counted mounts, read-only mounts, resize.
. "$(dirname "$0")/lib.sh"

start_daemon; ok $? "daemon starts on a fresh state directory"
[ -f "$M/info" ] && [ -f "$M/ctl" ]; ok $? "the top has info and ctl"
is "$(ls "$M" | tr '\n' ' ')" "ctl info " "nothing else at first"
jq -e '.backend and (.device_count == 0) and (.data.total > 0) and (.transaction_id >= 1)' "$M/info" >/dev/null; ok $? "pool info is JSON with the pool's figures"
missing=
for k in backend pool_name data_file data_loopback metadata_file metadata_loopback data metadata base_device_size base_device_fs sector_size udev_sync_supported deferred_remove_enabled deferred_delete_enabled deferred_deleted_device_count device_count transaction_id; do
	jq -e "has(\"$k\")" "$M/info" >/dev/null || missing="$missing $k"
done
[ -z "$missing" ]; ok $? "pool info has every key of doc/design.md §2${missing:+ (missing:$missing)}"
is "$(jq -r .base_device_fs "$M/info")" "$FS" "base filesystem is $FS"
grep -q "^ok $BACKEND 0 devices" "$M/ctl"; ok $? "pool ctl reads one line of state ($(cat "$M/ctl"))"

mkdir "$M/web"; ok $? "mkdir at the top"
is "$(ls "$M/web" | tr '\n' ' ')" "ctl info rootfs " "a device has ctl, info, rootfs"
mkdir "$M/web/v2" && mkdir "$M/web/v2/v3"; ok $? "mkdir nested twice"
is "$(jq -r .parent "$M/web/v2/info")" "web" "v2's parent is web"
is "$(jq -r .parent "$M/web/info")" "base" "web's parent is the base"
missing=
for k in name parent device_id size transaction_id initialized deleted mounted mount_count read_only dm_name dev_path filesystem created mapped_bytes last_error; do
	jq -e "has(\"$k\")" "$M/web/info" >/dev/null || missing="$missing $k"
done
[ -z "$missing" ]; ok $? "device info has every key of doc/design.md §2${missing:+ (missing:$missing)}"
jq -e '.mounted == false and .mount_count == 0 and .dev_path == null and .size == 536870912' "$M/web/info" >/dev/null; ok $? "an unmounted device: dev_path null, size 512M"
is "$(cat "$M/web/ctl")" "unmounted" "ctl reads 'unmounted'"
[ -L "$M/web/rootfs" ]; ok $? "rootfs is a symlink"
is "$(readlink "$M/web/rootfs")" "$S/mnt/$(jq .device_id "$M/web/info")" "to STATEDIR/mnt/ID, outside the FUSE tree"
[ -d "$M/web/rootfs/lost+found" ]; ok $? "a walk through it automounts the device (dm.automount)"
is "$(cat "$M/web/ctl")" "automounted" "read-only, uncounted"
is "$(errno_of rmdir "$M/web")" "ENOTEMPTY" "an automount does not change rmdir's answer"
is "$(ls -R "$M" | grep -c '^/.*:$' )" "$(find "$M" -type d | wc -l)" "ls -R and find agree"
is "$(find "$M" -mindepth 1 -maxdepth 1 -type d | wc -l)" "1" "one device at the top"
is "$(jq .device_count "$M/info")" "3" "device_count 3"
id_web=$(jq .device_id "$M/web/info")
ino1=$(stat -c %i "$M/web")

mv "$M/web/v2" "$M/web/second"; ok $? "rename within a directory"
[ -d "$M/web/second/v3" ] && [ ! -e "$M/web/v2" ]; ok $? "the tree follows the rename"
is "$(jq -r .parent "$M/web/second/v3/info")" "second" "the child's parent follows"
mv "$M/web" "$M/site"; ok $? "rename a device that has children"
is "$(jq .device_id "$M/site/info")" "$id_web" "the device keeps its ID"
is "$(stat -c %i "$M/site")" "$ino1" "and its inode number"

ctl site mount; ok $? "echo mount > ctl"
is "$(cat "$M/site/ctl")" "mounted 1" "ctl reads 'mounted 1'"
site_dir=$(readlink "$M/site/rootfs")
grep -q " $site_dir " /proc/self/mountinfo; ok $? "the filesystem is mounted where rootfs points"
[ "$(stat -c %d "$M/site/rootfs/")" != "$(stat -c %d "$M")" ]; ok $? "and rootfs/ leads into it"
jq -e '.mounted and .mount_count == 1 and (.dev_path | startswith("/dev/")) and .mapped_bytes > 0' "$M/site/info" >/dev/null; ok $? "info of a mounted device"
ctl site mount; is "$(cat "$M/site/ctl")" "mounted 2" "a second mount counts"
ctl site unmount; is "$(cat "$M/site/ctl")" "mounted 1" "one unmount leaves it mounted"
ctl site unmount; is "$(cat "$M/site/ctl")" "unmounted" "the last unmount unmounts"
! grep -q " $site_dir " /proc/self/mountinfo; ok $? "nothing is mounted there any more"
jq -e '.dev_path == null and .active == false' "$M/site/info" >/dev/null; ok $? "and the device is deactivated"

ctl site "mount ro"; ok $? "mount ro"
jq -e '.read_only' "$M/site/info" >/dev/null; ok $? "info says read_only"
is "$(errno_of create "$M/site/rootfs/x")" "EROFS" "writing in a read-only mount is EROFS"
is "$(errno_of write "$M/site/ctl" mount)" "EBUSY" "mount rw while mounted ro is EBUSY"
ctl site unmount

ctl site "resize 1G"; ok $? "resize 1G (unmounted)"
is "$(jq .size "$M/site/info")" "1073741824" "size is 1G"
ctl site mount
sz=$(df -B1M --output=size "$M/site/rootfs" | tail -1 | tr -d ' ')
[ "$sz" -gt 800 ]; ok $? "the filesystem grew ($sz MiB)"
ctl site unmount

total=$(jq .data.total "$M/info")
echo "resize-pool 12G" > "$M/ctl"; ok $? "resize-pool 12G"
[ "$(jq .data.total "$M/info")" -gt "$total" ]; ok $? "the pool's data space grew"
df -B1 --output=size "$M" | tail -1 | grep -q "$(jq .data.total "$M/info")"; ok $? "df shows the pool's data space"
[ "$(stat -f -c %l "$M")" = 128 ]; ok $? "statfs: names up to 128"

rm -r "$M/site"; ok $? "rm -r removes a device and its descendants"
is "$(ls "$M" | tr '\n' ' ')" "ctl info " "the top is empty again"
is "$(jq .device_count "$M/info")" "0" "device_count 0"

# A directory opened before a mkdir in it and read after: the listing is
# made when it is read, so the kernel never keeps one that misses the new
# device (found by stress.t: a later ls, find or rm -r missed it).
out=$(python3 - "$M" <<'PY'
import os, sys
m = sys.argv[1]
fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
os.mkdir(os.path.join(m, "late"))
first = sorted(os.listdir(fd))
os.close(fd)
print(" ".join(first), "|", " ".join(sorted(os.listdir(m))))
PY
)
is "$out" ".devices ctl info late | .devices ctl info late" "a directory opened before a mkdir lists the new device, and so does the next ls"
rmdir "$M/late"
is "$(ls "$M" | tr '\n' ' ')" "ctl info " "and not after its rmdir"

stop_daemon; ok $? "SIGTERM: orderly shutdown, the mount is gone"
grep -q "pool .* closed" "$WORK/log"; ok $? "the log says the pool was closed"
done_testing
