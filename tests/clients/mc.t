#!/bin/bash
# mc.t - Midnight Commander driven in tmux, read with capture-pane, as a
# user browses: into a mounted device's rootfs (its files show), into an
# unmounted device's rootfs (its files show: automount, DESIGN.md §1), and
# F8 (delete) on a mounted device's directory: mc reports the EBUSY and the
# device and its files survive.
# mc runs with -u (no subshell), -a (ASCII frames), --nocolor, TERM=xterm
# (its F-keys), HOME in the test's directory (no user setup).
. "${top_srcdir:-.}/tests/clients/lib.sh"
need mc tmux chroot
need_busybox

# enter NAME: quick search (C-s) for NAME in the active panel, Enter.
enter() { keys C-s; keys -l "$1"; keys Enter; }
trap 'tm kill-server 2>/dev/null; cleanup' EXIT

start_daemon || skip_all "thinfs did not start"
make_rootfs box && echo box > "$M/box/rootfs/README.box"; ok $? "device box, mounted, a busybox rootfs and README.box"
make_rootfs ubox && echo ubox > "$M/ubox/rootfs/README.ubox" && ctl ubox unmount; ok $? "device ubox with README.ubox, unmounted"

# 1. Browse into a mounted device's rootfs.
mc_start "$M/box"; ok $? "mc starts in NAME"
enter rootfs
screen_has "<- $M/box/rootfs -" 10; ok $? "Enter on rootfs: the panel is in NAME/rootfs"
screen_has '^\| ?README\.box ' 5 && screen_has '^\|/bin ' 1 && screen_has '^\|/etc ' 1
ok $? "the panel lists the device's files (README.box, /bin, /etc)"
[ $? -eq 0 ] || show_screen
# And down into a directory of it.
enter etc
screen_has '^\| ?thinfs-device ' 5 && screen_has '^\| ?passwd ' 1; ok $? "and into rootfs/etc: its files"

# 2. Browse into an unmounted device's rootfs (automount).
mc_start "$M/ubox"; ok $? "mc starts in an unmounted NAME"
enter rootfs
screen_has '^\| ?README\.ubox ' 10; st=$?
ok $st "Enter on the rootfs of an unmounted device shows its files (automount)"
[ $st -eq 0 ] || show_screen

# 3. F8 on a mounted device's directory, recursively, confirmed.
before=$(snap "$M/box/rootfs")
mc_start "$M"; ok $? "mc starts in the pool's directory"
# Devices sort first, by name: box, then ubox. Down selects box; the
# mini-status line under the panel names the selection.
keys Down
screen | grep -A1 -- '^|---' | grep -Eq '^\|/box +\|'; ok $? "box selected"
keys F8
screen_has 'Delete directory' 5; ok $? "F8 asks to delete the directory"
keys y
# mc asks again for a non-empty directory (recursively?); say yes.
for _ in 1 2 3; do
	screen_has 'busy|recursive' 5 || break
	screen | grep -q 'busy' && break
	keys y
done
screen_has 'Device or resource busy' 10; st=$?
ok $st "mc reports EBUSY for the mounted device"
[ $st -eq 0 ] || show_screen
screen | grep -E 'Cannot|busy' | sed 's/^[ |+]*//; s/[ |+]*$//; s/^/#   /'
keys Escape; keys Escape
tm kill-server 2>/dev/null
[ -d "$M/box" ] && [ -L "$M/box/rootfs" ]; ok $? "the device is still there"
is "$(ctl_state box)" "mounted 1" "still mounted"
is "$(snap "$M/box/rootfs")" "$before" "every file in its filesystem survived"
[ -d "$M/ubox" ]; ok $? "the other device was not touched"

ctl box unmount
stop_daemon; ok $? "daemon stops cleanly"
done_testing
