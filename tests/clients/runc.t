#!/bin/bash
# runc.t - runc run on an OCI bundle whose config.json root.path is
# NAME/rootfs (runc spec, edited with jq: rootless off, root user, no
# terminal). The same bundle on a plain directory first: if runc cannot run
# here at all, the test skips with its error.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need runc jq chroot
need_busybox

CMD='cat /etc/thinfs-device; id -u; echo from-runc > /root/note; ls /bin/sh'
# bundle DIR ROOTPATH: a bundle made by runc spec, root.path set.
bundle() {
	mkdir -p "$1" && (cd "$1" && runc spec) &&
		jq --arg r "$2" --arg c "$CMD" '.root.path = $r | .root.readonly = false |
			.process.terminal = false | .process.user = {uid: 0, gid: 0} |
			.process.args = ["/bin/sh", "-c", $c] | .hostname = "thinfs"' \
			"$1/config.json" > "$1/config.new" && mv "$1/config.new" "$1/config.json"
}
# run DIR: runc run in bundle DIR, with its own state root.
run() { (cd "$1" && timeout 120 runc --root "$WORK/runc" run "t$$-${1##*/}" </dev/null); }

plain_rootfs "$WORK/plain" && bundle "$WORK/b-plain" "$WORK/plain" || skip_all "cannot build a plain bundle"
out=$(run "$WORK/b-plain" 2>"$WORK/plain.err")
[ "$(echo "$out" | head -n 1)" = plain ] || skip_all "runc does not run here even on a plain directory: $(tr '\n' ' ' <"$WORK/plain.err" | cut -c1-200)"

start_daemon || skip_all "thinfs did not start"
make_rootfs box; ok $? "a busybox rootfs in device box"
want="box
0
/bin/sh"

# runc refuses a root.path that resolves through a symlink ("invalid
# rootfs: not an absolute path, or a symlink", with no switch to turn it
# off), so a bundle names where NAME/rootfs leads: $(readlink -f
# NAME/rootfs), as the README says. (podman --rootfs with crun follows
# the link itself: podman.t.)
bundle "$WORK/b-real" "$(readlink -f "$M/box/rootfs")"
out=$(run "$WORK/b-real" 2>"$WORK/real.err"); st=$?
is "$st:$out" "0:$want" "runc run with root.path \$(readlink -f NAME/rootfs) runs in the device"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/real.err"
is "$(cat "$M/box/rootfs/root/note" 2>&1)" "from-runc" "what the container wrote is in the device"
is "$(runc --root "$WORK/runc" list -q 2>/dev/null)" "" "no container left behind"

ctl box unmount; ok $? "the device unmounts after the container exits"
is "$(ctl_state box)" "unmounted" "ctl says unmounted"

stop_daemon; ok $? "daemon stops cleanly"
done_testing
