#!/bin/bash
# tar-xattrs.t - a `tar --xattrs --acls` round trip between two devices:
# files with a user xattr, an access ACL and a default ACL (setfattr,
# setfacl) in one device's rootfs, tar -C that rootfs, extract into another
# device's rootfs, and getfattr/getfacl must read the same on both sides,
# and again after the target is unmounted and mounted.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need tar setfattr getfattr setfacl getfacl
start_daemon || skip_all "thinfs did not start"

mkdir "$M/src" && ctl src mount && mkdir "$M/dst" && ctl dst mount; ok $? "two devices, mounted"
S=$M/src/rootfs
mkdir -p "$S/data/shared" && echo content > "$S/data/file" && echo other > "$S/data/shared/in" &&
	ln -s file "$S/data/link" && mkfifo "$S/data/fifo"
setfattr -n user.thinfs -v hello "$S/data/file" &&
	setfattr -n user.bin -v 0x00ff10 "$S/data/file" &&
	setfattr -n user.dir -v onadir "$S/data/shared"
ok $? "setfattr user.* on a file and a directory"
setfacl -m u:1234:rw,g:2345:r "$S/data/file" &&
	setfacl -m d:u:1234:rwx,u:1234:rx "$S/data/shared"
ok $? "setfacl: an access ACL and a default ACL"
# A file made under the default ACL inherits it.
echo new > "$S/data/shared/inherits"

# attrs DIR: every xattr (ACLs included: system.posix_acl_*) and every ACL
# under DIR/data, with paths relative to DIR.
attrs() {
	(cd "$1" && getfattr -R -h -d -m - -e hex data 2>&1 && getfacl -R -p data 2>&1)
}
want=$(attrs "$S")
echo "$want" | grep -q '^user.thinfs=0x68656c6c6f$'; ok $? "getfattr reads the xattr on the source"
echo "$want" | grep -q '^default:user:1234:rwx$'; ok $? "getfacl reads the default ACL on the source"
echo "$want" | grep -A8 '^# file: data/shared/inherits' | grep -q '^user:1234:rwx'; ok $? "the inherited ACL is on the new file"

tar --xattrs --xattrs-include='*' --acls -C "$S" -cpf "$WORK/a.tar" data; ok $? "tar --xattrs --acls -C src/rootfs -c"
tar --xattrs --xattrs-include='*' --acls -C "$M/dst/rootfs" -xpf "$WORK/a.tar"; ok $? "tar --xattrs --acls -C dst/rootfs -x"
is "$(attrs "$M/dst/rootfs")" "$want" "getfattr/getfacl read the same on the copy"
is "$(snap "$M/dst/rootfs/data")" "$(snap "$S/data")" "files, modes and contents the same"

# Straight through a pipe, the way people copy trees: tar -C a | tar -C b.
mkdir "$M/dst/rootfs/piped"
tar --xattrs --xattrs-include='*' --acls -C "$S" -cpf - data | tar --xattrs --xattrs-include='*' --acls -C "$M/dst/rootfs/piped" -xpf -
is "$(attrs "$M/dst/rootfs/piped")" "$want" "and through a pipe"

ctl dst unmount && ctl dst mount; ok $? "unmount and mount the copy"
is "$(attrs "$M/dst/rootfs")" "$want" "the xattrs and ACLs survived the remount"
ctl src unmount; ctl dst unmount

stop_daemon; ok $? "daemon stops cleanly"
done_testing
