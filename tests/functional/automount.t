#!/bin/bash
# automount.t - namespace v2 (doc/design.md §1): a walk through an
# unmounted device's rootfs mounts it read-only, uncounted, until it
# expires or an explicit mount takes it over; it never stands in the way
# of rmdir; dm.mountopt takes VFS flags and filesystem options together
# (libmount); behind allow_other, device filesystems are nosuid,nodev.
. "$(dirname "$0")/lib.sh"

# The mount's flags, then its filesystem's options (after " - " in mountinfo).
mnt_opts() { awk -v d="$1" '$5 == d { split($0, a, " - "); split(a[2], b, " "); print $6 "," b[3] }' /proc/self/mountinfo; }

start_daemon "dm.automount_timeout=2s"; ok $? "daemon starts"
mkdir "$M/img"
ctl img mount; echo hello > "$M/img/rootfs/file"; ctl img unmount
# (readlink would automount it: the kernel asks for the link on every walk.)
dir=$S/mnt/$(jq .device_id "$M/img/info")
! grep -q " $dir " /proc/self/mountinfo; ok $? "unmounted to begin with"

is "$(ls "$M/img/rootfs/")" "$(printf 'file\nlost+found')" "ls through rootfs shows the image's files at once"
is "$(cat "$M/img/ctl")" "automounted" "ctl says automounted"
jq -e '.automounted and (.mounted | not) and .mount_count == 0' "$M/img/info" >/dev/null
ok $? "info: automounted, not mounted, not counted"
mnt_opts "$dir" | grep -q '^ro'; ok $? "read-only"
is "$(errno_of create "$M/img/rootfs/new")" "EROFS" "writes get EROFS"
printf 'unmount\n' > "$M/img/ctl" 2>/dev/null; ok $((!$?)) "unmount of an automount is refused (nothing counted)"

# An explicit mount takes it over, read-write, counted.
ctl img mount; ok $? "explicit mount of an automounted device"
is "$(cat "$M/img/ctl")" "mounted 1" "counted"
echo more > "$M/img/rootfs/more"; ok $? "and writable"
ctl img unmount; is "$(head -1 "$M/img/ctl")" "unmounted" "unmount as usual"

# Expiry: unused for the timeout (2s here), it goes away.
ls "$M/img/rootfs/" >/dev/null
is "$(cat "$M/img/ctl")" "automounted" "automounted again"
gone=1
for _ in $(seq 1 100); do
	[ "$(cat "$M/img/ctl")" = unmounted ] && { gone=0; break; }
	sleep 0.1
done
ok $gone "an unused automount expires: ctl says unmounted"
! grep -q " $dir " /proc/self/mountinfo; ok $? "and nothing is mounted there"
jq -e '.active == false' "$M/img/info" >/dev/null; ok $? "and the device is deactivated"

# In use, it does not expire, and rmdir gets EBUSY; unused, rmdir takes it away.
(cd "$M/img/rootfs/" && exec sleep 600) & holder=$!
sleep 5
grep -q " $dir " /proc/self/mountinfo; ok $? "an automount in use does not expire"
is "$(errno_of rmdir "$M/img")" "EBUSY" "rmdir of a device whose automount is in use: EBUSY"
kill "$holder"; wait "$holder" 2>/dev/null
mkdir "$M/img2"; ls "$M/img2/rootfs/" >/dev/null
is "$(cat "$M/img2/ctl")" "automounted" "a second device automounted"
is "$(errno_of rmdir "$M/img2")" "OK" "rmdir of an unused automounted device works"
dir2_gone=$(grep -c "$S/mnt/" /proc/self/mountinfo)
stop_daemon; ok $? "stop"
! grep -q "$S/mnt/" /proc/self/mountinfo; ok $? "the stop takes unused automounts away (had $dir2_gone mounts)"

# dm.automount=false: the link of an unmounted device leads nowhere.
start_daemon "dm.automount=false"; ok $? "start with dm.automount=false"
is "$(errno_of stat "$M/img/rootfs/")" "ENOENT" "rootfs of an unmounted device: ENOENT"
is "$(cat "$M/img/ctl")" "unmounted" "nothing was mounted"
stop_daemon

# dm.mountopt: VFS flags and filesystem options together (the kernel
# refused "nosuid" as a filesystem option before).
# (-o splits at commas: dm.mountopt is given once per option, and joined.)
start_daemon "dm.mountopt=nosuid,dm.mountopt=noatime,dm.mountopt=nodelalloc"; ok $? "start with VFS flags and an ext4 option in dm.mountopt"
ctl img mount; ok $? "a device mounts with them"
o=$(mnt_opts "$(readlink "$M/img/rootfs")")
case $o in *nosuid*noatime*nodelalloc*) r=0 ;; *) r=1 ;; esac
ok $r "mountinfo shows nosuid, noatime and nodelalloc ($o)"
ctl img unmount
stop_daemon
for bad in bind noauto x-systemd.foo; do
	"$THINFS" -f -o "$BASE_OPTS,dm.mountopt=$bad" "$S" "$M" >"$WORK/bad.out" 2>&1
	st=$?
	[ "$st" -ne 0 ] && grep -q "dm.mountopt" "$WORK/bad.out"; ok $? "dm.mountopt=$bad is refused at start, naming the key"
done

# allow_other: nosuid,nodev unless asked, and others may pass STATEDIR.
start_daemon "allow_other"; ok $? "start with allow_other"
is "$(stat -c %a "$S") $(stat -c %a "$S/mnt") $(stat -c %a "$S/metadata")" "711 711 700" \
	"STATEDIR and mnt/ passable, metadata closed"
ctl img mount
cp /usr/bin/id "$M/img/rootfs/id"; chmod 4755 "$M/img/rootfs/id"
o=$(mnt_opts "$(readlink "$M/img/rootfs")")
case $o in *nosuid*nodev*) r=0 ;; *) r=1 ;; esac
ok $r "device filesystems are nosuid,nodev ($o)"
is "$(setpriv --reuid=65534 --regid=65534 --clear-groups "$M/img/rootfs/id" -u 2>&1)" "65534" \
	"a setuid-root binary in an image runs as the user, not root"
is "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$M/img/rootfs/file" 2>&1)" "hello" \
	"and the user can read the image"
ctl img unmount
stop_daemon
start_daemon "allow_other,dm.mountopt=suid"; ok $? "allow_other with dm.mountopt=suid"
ctl img mount
o=$(mnt_opts "$(readlink "$M/img/rootfs")")
case $o in *nosuid*) r=1 ;; *nodev*) r=0 ;; *) r=1 ;; esac
ok $r "suid kept as asked, nodev still added ($o)"
ctl img unmount
stop_daemon

# A Docker layer keeps its files in rootfs/ of its filesystem, beside an
# id file: the link leads into that rootfs/, so NAME/rootfs shows them.
start_daemon; ok $? "restart"
mkdir "$M/dk"
ctl dk mount
top=$(readlink "$M/dk/rootfs")
mkdir "$top/rootfs" && echo layer-id > "$top/id" && echo from-layer > "$top/rootfs/hello"
ctl dk unmount
dir=$S/mnt/$(jq .device_id "$M/dk/info")
is "$(cat "$M/dk/rootfs/hello" 2>&1)" "from-layer" "a Docker-laid-out device shows its layer's files at rootfs/"
is "$(readlink "$M/dk/rootfs")" "$dir/rootfs" "its link leads into the filesystem's rootfs/"
is "$(jq -r .rootfs "$M/dk/info")" "$dir/rootfs" "info's rootfs says so"
ctl dk mount; mv "$dir/rootfs" "$dir/rootfs.d" && ln -s /etc "$dir/rootfs"
is "$(readlink "$M/dk/rootfs")" "$dir" "a rootfs turned into a symlink since the mount is not followed to the host"
rm "$dir/rootfs" && mv "$dir/rootfs.d" "$dir/rootfs"; ctl dk unmount
ctl dk mount; echo junk > "$dir/other"; ctl dk unmount
is "$(readlink "$M/dk/rootfs")" "$dir" "anything else beside id and rootfs/: the link leads to the filesystem's top"
stop_daemon

done_testing
