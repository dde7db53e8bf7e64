#!/bin/bash
# errors.t - every errno of doc/design.md §1, and refusals at start, with the
# words of the reason in info's last_error.
. "$(dirname "$0")/lib.sh"

# Refused options: nothing mounted, one line naming the key.
out=$("$THINFS" -f -o "$BASE_OPTS,dm.bogus=1" "$S" "$M" 2>&1); st=$?
[ $st -ne 0 ] && ! is_mounted; ok $? "an unknown option stops the start (status $st)"
echo "$out" | grep -q "dm.bogus"; ok $? "and the message names the key: $out"
out=$("$THINFS" -f -o "$BASE_OPTS,dm.basesize=ten" "$S" "$M" 2>&1)
echo "$out" | grep -q "^thinfs: dm.basesize: invalid size 'ten'"; ok $? "a bad value names the key: $out"
out=$("$THINFS" -f -o "$BASE_OPTS,dm.min_free_space=10" "$S" "$M" 2>&1)
echo "$out" | grep -q "dm.min_free_space"; ok $? "a percentage without %% is refused: $out"
out=$("$THINFS" -f -s -o "$BASE_OPTS" "$S" "$M" 2>&1); st=$?
[ $st -ne 0 ] && ! is_mounted && echo "$out" | grep -q -- "-s is not supported"; ok $? "-s (single-threaded) is refused with a reason"
out=$("$THINFS" -f -o "$BASE_OPTS" "$S" 2>&1); st=$?
[ $st -ne 0 ] && echo "$out" | grep -q "usage"; ok $? "a missing mount point: usage, status $st"
"$THINFS" --help | grep -q "dm.basesize"; ok $? "--help lists the dm options"
"$THINFS" --version | grep -q "^thinfs [0-9]"; ok $? "--version"
[ "$("$THINFS" --list-faults | wc -l)" -gt 5 ]; ok $? "--list-faults lists the crash points"

start_daemon allow_other; ok $? "daemon with allow_other"
mkdir "$M/a" "$M/a/b" "$M/c"
is "$(errno_of mkdir "$M/a")" "EEXIST" "EEXIST: the name exists"
is "$(errno_of mkdir "$M/c/b")" "EEXIST" "EEXIST: the name exists elsewhere in the pool"
is "$(errno_of mkdir "$M/base")" "EEXIST" "EEXIST: 'base' is the base device"
is "$(errno_of mkdir "$M/-x")" "EINVAL" "EINVAL: a name starting with '-'"
is "$(errno_of mkdir "$M/.x")" "EINVAL" "EINVAL: a name starting with '.'"
is "$(errno_of mkdir "$M/a b")" "EINVAL" "EINVAL: a space"
is "$(errno_of mkdir "$M/a/rootfs2")" "OK" "rootfs2 is a fine name"
is "$(errno_of mkdir "$M/c/rootfs")" "EEXIST" "EEXIST: rootfs exists in a device directory"
is "$(errno_of mkdir "$M/rootfs")" "EINVAL" "EINVAL: rootfs is reserved"
is "$(errno_of mkdir "$M/transaction-metadata")" "EINVAL" "EINVAL: engine file names are reserved"
is "$(errno_of mkdir "$M/$(printf 'x%.0s' $(seq 129))")" "ENAMETOOLONG" "ENAMETOOLONG over 128"
is "$(errno_of mkdir "$M/$(printf 'y%.0s' $(seq 128))")" "OK" "128 characters are fine"
is "$(errno_of mkdir "$M/a/rootfs/x")" "EROFS" "EROFS: mkdir through an unmounted rootfs (the walk automounts it read-only)"
is "$(errno_of create "$M/a/rootfs/x")" "EROFS" "EROFS: a file through an unmounted rootfs"
is "$(errno_of create "$M/a/newfile")" "EPERM" "EPERM: a file in a device directory"
is "$(errno_of rmdir "$M/a")" "ENOTEMPTY" "ENOTEMPTY: a device with children"
is "$(errno_of rmdir "$M/nosuch")" "ENOENT" "ENOENT: no such device"
# (EOPNOTSUPP and ENOTSUP are one value on Linux; Python names it ENOTSUP.)
is "$(errno_of rename "$M/a/b" "$M/c/b")" "ENOTSUP" "EOPNOTSUPP: rename across directories (not EXDEV, which mv answers with a copy)"
is "$(errno_of rename "$M/a" "$M/c")" "EEXIST" "EEXIST: rename onto another device"
is "$(errno_of rename "$M/a/ctl" "$M/a/ctl2")" "EPERM" "EPERM: renaming ctl"
ctl c mount
is "$(errno_of rmdir "$M/c")" "EBUSY" "EBUSY: rmdir of a mounted device"
is "$(errno_of rename "$M/c" "$M/c2")" "EBUSY" "EBUSY: rename of a mounted device"
is "$(errno_of write "$M/c/ctl" "mount ro")" "EBUSY" "EBUSY: mount ro over a rw mount"
ctl c unmount
is "$(errno_of write "$M/c/ctl" unmount)" "EINVAL" "EINVAL: unmount what is not mounted"
is "$(errno_of write "$M/c/ctl" frobnicate)" "EINVAL" "EINVAL: an unknown ctl command"
jq -r .last_error "$M/c/info" | grep -q "unknown command 'frobnicate'"; ok $? "last_error has the words: $(jq -r .last_error "$M/c/info")"
is "$(errno_of write "$M/c/ctl" "resize 1X")" "EINVAL" "EINVAL: resize with a bad size"
is "$(errno_of write "$M/c/ctl" "resize 1M")" "EINVAL" "EINVAL: resize smaller"
is "$(errno_of write "$M/ctl" "resize-pool nope")" "EINVAL" "EINVAL: resize-pool with a bad size"
jq -r .last_error "$M/info" | grep -q "resize-pool"; ok $? "pool last_error has the words"
is "$(errno_of write "$M/c/info" x)" "EACCES" "info is read-only"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
is "$(nobody /usr/bin/python3 -c 'import os,errno
try:
  os.mkdir("'"$M"'/u"); print("OK")
except OSError as e: print(errno.errorcode[e.errno])')" "EPERM" "EPERM: mkdir by a user who is not root"
is "$(nobody /usr/bin/python3 -c 'import os,errno
try:
  os.rmdir("'"$M"'/c"); print("OK")
except OSError as e: print(errno.errorcode[e.errno])')" "EPERM" "EPERM: rmdir by a user who is not root"
is "$(nobody /usr/bin/python3 -c 'import os,errno
try:
  fd=os.open("'"$M"'/c/ctl", os.O_WRONLY); print("OK")
except OSError as e: print(errno.errorcode[e.errno])')" "EPERM" "EPERM: writing ctl as a user who is not root"
nobody ls "$M/a" >/dev/null && nobody cat "$M/a/info" >/dev/null; ok $? "other users may browse with allow_other"
grep -q "rmdir 'c' (uid 65534): refused: Operation not permitted" "$WORK/log"; ok $? "a refusal that never reaches the engine is logged"

# Where the user looks: every refusal's reason is in the read-back of the
# ctl of the directory the name was asked in (mkdir, a create), or of the
# device the operation is on, as "error: TIME REASON" under the state line;
# a later success on that object clears it, nothing else does.
ISO='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
err_of() { sed -n 2p "$M/${1:+$1/}ctl"; }
# says DIR ERRNO REGEX DESCRIPTION: the error line of DIR's ctl.
says() {
	local line
	line=$(err_of "$1")
	echo "$line" | grep -Eq "^error: $ISO .*$3"; ok $? "$4 ($2): ${1:-pool} ctl says: ${line:-(nothing)}"
}
mkdir "$M/db" "$M/web"
is "$(errno_of mkdir "$M/db/web")" "EEXIST" "mkdir db/web while web is at the top"
says db EEXIST "mkdir 'web': the name 'web' is used by the device at '/web'" "the parent's ctl names the other device's path"
is "$(head -n 1 "$M/db/ctl")" "unmounted" "the first line is still the state line"
t=$(err_of db | awk '{print $2}')
now=$(date -u +%s); then=$(date -u -d "$t" +%s 2>/dev/null || echo 0)
[ $((now - then)) -ge 0 ] && [ $((now - then)) -lt 30 ]; ok $? "the error line has the time it happened (UTC): $t"
is "$(jq -r .last_error_at "$M/db/info")" "$t" "info's last_error_at is that time"
jq -r .last_error "$M/db/info" | grep -q "used by the device at '/web'"; ok $? "and info's last_error the words"
is "$(errno_of write "$M/c/ctl" frobnicate)" "EINVAL" "an error on another device"
ctl c mount && ctl c unmount; ok $? "and a success on another device"
says db EEXIST "used by the device at '/web'" "leave db's error alone"
is "$(errno_of mkdir "$M/b")" "EEXIST" "mkdir of a name used deeper in the tree, at the top"
says "" EEXIST "the name 'b' is used by the device at '/a/b'" "the pool's ctl names it"
is "$(errno_of mkdir "$M/db/base")" "EEXIST" "mkdir db/base"
says db EEXIST "'base' is the base device's name" "the parent's ctl says why"
is "$(errno_of mkdir "$M/db/-x")" "EINVAL" "mkdir db/-x"
says db EINVAL "mkdir '-x': invalid name" "the parent's ctl says why"
is "$(errno_of mkdir "$M/db/$(printf 'x%.0s' $(seq 129))")" "ENAMETOOLONG" "mkdir of a 129-character name"
says db ENAMETOOLONG "longer than 128 characters" "the parent's ctl says why"
is "$(errno_of create "$M/db/file")" "EPERM" "a file in db"
says db EPERM "create 'file' .*only devices \\(mkdir\\)" "the parent's ctl says why"
is "$(errno_of rmdir "$M/a")" "ENOTEMPTY" "rmdir of a device with snapshots"
says a ENOTEMPTY "rmdir 'a': the device has 2 snapshot" "its ctl says why"
is "$(errno_of rename "$M/a" "$M/web")" "EEXIST" "rename onto a used name"
says a EEXIST "rename 'a' to 'web': the name is used by the device at '/web'" "its ctl says why"
is "$(errno_of rename "$M/a/b" "$M/c/b")" "ENOTSUP" "rename across directories"
says a/b EOPNOTSUPP "stays in the directory" "its ctl says why"
ctl c mount
is "$(errno_of rmdir "$M/c")" "EBUSY" "rmdir of a mounted device"
says c EBUSY "rmdir 'c': the device is mounted" "its ctl says why"
is "$(errno_of rename "$M/c" "$M/c2")" "EBUSY" "rename of a mounted device"
says c EBUSY "rename 'c': .*mounted \\(the device at '/c' is mounted" "its ctl says why"
ctl c unmount
is "$(nobody /usr/bin/python3 -c 'import os
try:
  os.mkdir("'"$M"'/db/u"); print("OK")
except OSError as e: print(e.errno)')" "1" "mkdir by a user who is not root"
says db EPERM "mkdir 'u' \\(uid 65534\\): refused: .*only root" "the parent's ctl says why"
# A later success on the same object clears its error line.
ctl db mount && ctl db unmount; ok $? "a command on db succeeds"
is "$(cat "$M/db/ctl")" "unmounted" "db's ctl is the state line alone"
is "$(jq -c '[.last_error, .last_error_at]' "$M/db/info")" "[null,null]" "info's last_error and its time are null"
errno_of mkdir "$M/db/web" >/dev/null
mkdir "$M/db/ok"; ok $? "after another refusal, a mkdir in db succeeds"
is "$(err_of db)" "" "the snapshot of db clears db's error"
mv "$M/a/b" "$M/a/b2"; ok $? "a rename of b succeeds"
is "$(err_of a/b2)" "" "and clears b's error"
says a EEXIST "rename 'a' to 'web'" "a's error stays (not its object)"
mkdir "$M/top2"; ok $? "a mkdir at the top succeeds"
is "$(err_of "")" "" "and clears the pool's error"
stop_daemon; ok $? "stopped"

# The free-space floor: use a little over 1% of the pool (8G), then ask
# for 99% free.
start_daemon; ctl c mount
dd if=/dev/zero of="$M/c/rootfs/fill" bs=1M count=160 conv=fsync status=none; ok $? "160 MiB written"
ctl c unmount
stop_daemon
start_daemon dm.min_free_space=99%; ok $? "restart with dm.min_free_space=99%"
is "$(errno_of mkdir "$M/full")" "ENOSPC" "ENOSPC below the free-space floor"
jq -r .last_error "$M/info" | grep -q "free data space"; ok $? "the pool's last_error says why"
stop_daemon

# A corrupt metadata file stops the start and is named; nothing is dropped.
echo '{"device_id": 9, "size": ' > "$S/metadata/c"
out=$("$THINFS" -f -o "$BASE_OPTS" "$S" "$M" 2>&1); st=$?
[ $st -ne 0 ] && ! is_mounted; ok $? "a corrupt metadata file stops the start"
echo "$out" | grep -q "$S/metadata/c"; ok $? "the message names the file"
[ -f "$S/metadata/c" ]; ok $? "and the file is left as it was"
done_testing
