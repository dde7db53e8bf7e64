# lib.sh - sourced by tests/clients/*.t: the functional tests' daemon
# harness (tests/functional/lib.sh: a thinfs on a temporary state directory,
# reflink backend unless THINFS_BACKEND says otherwise, TAP helpers and a
# cleanup that leaves nothing behind), plus a small rootfs built from
# busybox-static inside a device, as a user would.

# shellcheck source=../functional/lib.sh
. "${top_srcdir:-.}/tests/functional/lib.sh"

BUSYBOX=$(command -v busybox 2>/dev/null)

# need TOOL...: skip the whole file unless every tool is installed.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed (contrib/install-deps.sh)"
	done
}

# busybox-static: a dynamic busybox would need its libraries in the rootfs.
need_busybox() {
	[ -n "$BUSYBOX" ] || skip_all "busybox not installed (busybox-static)"
	file_is_static "$BUSYBOX" || skip_all "$BUSYBOX is not static (install busybox-static)"
}
file_is_static() {
	# No PT_INTERP program header: nothing for the kernel to load first.
	! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
}

# make_rootfs NAME [PARENT]: a device NAME (inside PARENT if given),
# mounted, holding a busybox rootfs: /bin/busybox and its applet links
# (busybox --install -s, run inside the new root), /etc/passwd and
# /etc/group for root, and the empty directories a container runtime
# mounts on. Returns non-zero if any step fails.
make_rootfs() {
	local d=${2:+$2/}$1
	mkdir "$M/$d" || return 1
	ctl "$d" mount || return 1
	plain_rootfs "$M/$d/rootfs" || return 1
	echo "$1" > "$M/$d/rootfs/etc/thinfs-device"
	sync -f "$M/$d/rootfs/etc/thinfs-device"
}

# ctl_state NAME: the first line of NAME/ctl ("unmounted" | "mounted N").
ctl_state() { head -n 1 "$M/$1/ctl"; }

# snap: a listing of every file under DIR with type, mode, size and
# checksum, to compare a tree before and after.
snap() {
	(cd "$1" && find . -xdev -printf '%y %m %s %p %l\n' | LC_ALL=C sort &&
		find . -xdev -type f -exec md5sum {} + | LC_ALL=C sort -k2)
}

# plain_rootfs DIR: the same busybox rootfs in a plain directory, the
# control a client runs on first: if it fails there, the machine cannot run
# the client at all and the test skips; if it works there and not on a
# device, that is thinfs's failure.
plain_rootfs() {
	local r=$1
	mkdir -p "$r"/bin "$r"/sbin "$r"/usr/bin "$r"/usr/sbin "$r"/etc \
		"$r"/proc "$r"/sys "$r"/dev "$r"/tmp "$r"/root "$r"/run "$r"/var || return 1
	chmod 1777 "$r"/tmp
	cp "$BUSYBOX" "$r"/bin/busybox && chroot "$r" /bin/busybox --install -s || return 1
	echo 'root:x:0:0:root:/root:/bin/sh' > "$r"/etc/passwd
	echo 'root:x:0:' > "$r"/etc/group
	: > "$r"/etc/hostname; : > "$r"/etc/resolv.conf; : > "$r"/etc/hosts
	printf 'ID=busybox\nNAME=busybox\n' > "$r"/etc/os-release
	echo plain > "$r"/etc/thinfs-device
}

# Midnight Commander driven in tmux, read with capture-pane (mc.t,
# rm-tree.t): one tmux server per mc run (a new server on a socket just
# killed can race its shutdown); mc runs with -u (no subshell), -a (ASCII
# frames), --nocolor, TERM=xterm (its F-keys), HOME in the test's
# directory (no user setup).
SESS=0
tm() { tmux -S "$WORK/tmux.$SESS" -f /dev/null "$@"; }
HOME_MC=$WORK/mchome
screen() { tm capture-pane -p 2>/dev/null; }
keys() { tm send-keys "$@"; sleep 0.3; }
# screen_has REGEX SECONDS: wait until the screen shows REGEX.
screen_has() {
	local i
	for i in $(seq 1 $(($2 * 5))); do
		screen | grep -Eq -- "$1" && return 0
		sleep 0.2
	done
	return 1
}
show_screen() { screen | grep -v '^|[ |]*|$' | sed 's/^/#   /'; }
# mc_start DIR: mc with DIR in the left panel (the active one).
mc_start() {
	mkdir -p "$HOME_MC"
	tm kill-server 2>/dev/null
	SESS=$((SESS + 1))
	tm new-session -d -x 200 -y 50 \
		"env TERM=xterm HOME=$HOME_MC mc -u -a --nocolor '$1' '$HOME_MC'" || return 1
	screen_has "Left +File" 10
}
