#!/bin/bash
# startup.t - what a start refuses, warns about and survives (doc/design.md
# §4, "What a start does"; issue #17, items 4, 6, 9 and 10):
#   - a refused start (an unknown option, a FUSE option libfuse does not
#     know, a dm.basesize mkfs cannot use, no root, STATEDIR inside
#     MOUNTPOINT) says so in one line naming the value, exits 1, and
#     leaves STATEDIR as it was (absent, or every file with its size and
#     mtime);
#   - resize-pool below the pool's size is refused naming both sizes;
#   - warnings: STATEDIR on tmpfs, a loopback data file larger than the
#     free space behind it, a device resized beyond the pool;
#   - in the background without syslog, the log goes to STATEDIR/thinfs.log;
#   - the daemon does not die of SIGPIPE when its log's reader goes
#     (thinfs -f | head), and a later umount stops it cleanly;
#   - a start after a clean stop reports nothing "left active".
. "$(dirname "$0")/lib.sh"

# tree DIR: everything under DIR with sizes and mtimes.
tree() { find "$1" -xdev -printf '%P %y %s %T@\n' 2>/dev/null | sort; }
# refused DESC WANT ARGS...: a start that must fail at once, printing one
# line that contains WANT, and change nothing under $S or $WORK/new.
refused() {
	local desc=$1 want=$2 out st before
	shift 2
	before=$(tree "$S")
	out=$(timeout -k 5 60 "$@" 2>&1); st=$?
	is "$st" 1 "$desc: refused (exit 1)"
	case $out in *"$want"*) ok 0 "  saying '$want'" ;; *) ok 1 "  saying '$want': $out" ;; esac
	is "$(printf '%s\n' "$out" | wc -l)" 1 "  in one line"
	is "$(tree "$S")" "$before" "  STATEDIR unchanged"
	[ ! -e "$WORK/new" ]; ok $? "  a new STATEDIR not made"
}

start_daemon; ok $? "daemon starts"
mkdir "$M/a"; ok $? "a device"
stop_daemon; ok $? "stop"

for s in "$S" "$WORK/new"; do
	refused "--bogus ($s)" "unknown option(s): \`--bogus'" "$THINFS" --bogus "$s" "$M"
	refused "-o foo=bar ($s)" "unknown option(s): \`-o foo=bar'" "$THINFS" -f -o "$BASE_OPTS,foo=bar" "$s" "$M"
	refused "dm.bogus ($s)" "dm.bogus" "$THINFS" -f -o "$BASE_OPTS,dm.bogus=1" "$s" "$M"
done
refused "STATEDIR inside MOUNTPOINT" "the state directory $M/new/s and the mount point $M must not contain each other" \
	"$THINFS" -f -o "$BASE_OPTS" "$M/new/s" "$M"
[ ! -e "$M/new" ]; ok $? "  and not made there"
if command -v mkfs.xfs >/dev/null; then
	refused "dm.basesize=100M,dm.fs=xfs" "dm.basesize=100M: smaller than the 300M an xfs filesystem needs" \
		"$THINFS" -f -o "backend=$BACKEND,dm.loopdatasize=8G,dm.basesize=100M,dm.fs=xfs" "$WORK/new" "$M"
else
	skip 5 "mkfs.xfs missing"
fi
if command -v setpriv >/dev/null; then
	for s in "$S" "$WORK/new"; do
		refused "not root ($s)" "needs root (CAP_SYS_ADMIN)" \
			setpriv --reuid=nobody --regid=nogroup --clear-groups "$THINFS" -f -o "$BASE_OPTS" "$s" "$M"
	done
else
	skip 10 "setpriv missing"
fi
! is_mounted; ok $? "nothing mounted by the refused starts"

# SIGPIPE: the log's reader goes away after three lines.
("$THINFS" -f -o "$BASE_OPTS" "$S" "$M" 2>&1; echo "exit $?" >"$WORK/piped-exit") | head -3 >/dev/null &
for _ in $(seq 300); do is_mounted && [ -f "$M/ctl" ] && break; sleep 0.1; done
sleep 1 # the daemon goes on logging into the closed pipe
mkdir "$M/b" && [ -d "$M/a" ] && ls "$M/b" >/dev/null; ok $? "with its log pipe closed, the daemon serves the namespace"
ctl b mount && ctl b unmount; ok $? "  and mounts and unmounts a device (which logs)"
umount "$M"
for _ in $(seq 300); do [ -e "$WORK/piped-exit" ] && break; sleep 0.1; done
is "$(cat "$WORK/piped-exit" 2>/dev/null)" "exit 0" "  a later umount stops it cleanly"
is "$(losetup -j "$S/devicemapper/data" -n -O NAME 2>/dev/null | wc -l)" 0 "  no loop device left"

# Left-overs: a clean stop leaves none, and a start says none.
start_daemon; ok $? "start after the stop"
stop_daemon; ok $? "clean stop"
: >"$WORK/log"
start_daemon; ok $? "start again"
! grep -q "left active\|left half" "$WORK/log"; ok $? "  reports nothing left by the earlier run"
grep "left active" "$WORK/log" | sed 's/^/#   /'

# resize-pool below the pool's size.
out=$( (echo resize-pool 1G >"$M/ctl") 2>&1); st=$?
[ $st -ne 0 ] && case $out in *"Invalid argument"*) true ;; *) false ;; esac; ok $? "resize-pool 1G: EINVAL"
grep -q "^error: [0-9TZ:-]* resize-pool 1073741824: smaller than the pool's [0-9]* bytes, and a pool never shrinks: give a size of at least [0-9]* bytes; nothing changed" \
	"$M/ctl"; ok $? "  ctl says why, naming the value and the pool's size"
grep -q "resize-pool 1073741824: smaller than the pool's" "$WORK/log"; ok $? "  and so does the log"

# A device resized beyond the pool (8G of data space): allowed, said.
ctl a "resize 20G"; ok $? "resize a device to 20G, beyond the 8G pool"
grep -q "device 'a' (21474836480 bytes) is now larger than the pool's data space ([0-9]* bytes)" "$WORK/log"
ok $? "  warned"
stop_daemon; ok $? "stop"

# In the background where no syslog listens, the log goes to
# STATEDIR/thinfs.log, each line with its time.
if [ ! -e /dev/log ]; then
	out=$("$THINFS" -o "$BASE_OPTS" "$S" "$M" 2>&1); ok $? "a start in the background without syslog"
	case $out in *"no syslog here (/dev/log is missing): the log goes to $S/thinfs.log"*) ok 0 "  says where the log goes" ;;
	*) ok 1 "  says where the log goes: $out" ;; esac
	mkdir "$M/c"; ok $? "  a device made in the background"
	grep -q "^20[0-9-]*T[0-9:]*Z thinfs\[[0-9]*\]: info: created device 'c' (snapshot of 'base')$" "$S/thinfs.log"
	ok $? "  is logged, with its time, in STATEDIR/thinfs.log"
	umount "$M"
	for _ in $(seq 300); do grep -q "pool .* closed" "$S/thinfs.log" && break; sleep 0.1; done
	grep -q "info: pool .* closed" "$S/thinfs.log"; ok $? "  and so is its stop"
	for _ in $(seq 50); do losetup -j "$S/devicemapper/data" -n -O NAME | grep -q . || break; sleep 0.1; done
else
	skip 5 "a syslog listens here (/dev/log)"
fi

# STATEDIR on tmpfs, and a data file larger than its free space.
mkdir -p "$WORK/tmpfs"
if mount -t tmpfs -o size=2G tmpfs "$WORK/tmpfs"; then
	: >"$WORK/log"
	S_save=$S
	S=$WORK/tmpfs/state
	start_daemon; ok $? "a start with STATEDIR on a 2G tmpfs and an 8G data file"
	grep -q "state directory $S is on a tmpfs: the pool and every device in it vanish at reboot" "$WORK/log"
	ok $? "  warns that the pool vanishes at reboot"
	grep -q "data file $S/devicemapper/data is 8192 MiB, of which [0-9]* MiB not yet written, and its filesystem has only [0-9]* MiB free: the pool is overcommitted" \
		"$WORK/log"; ok $? "  warns that the data file overcommits the tmpfs"
	stop_daemon; ok $? "stop"
	losetup -j "$S/devicemapper/data" -n -O NAME 2>/dev/null | xargs -r -n1 losetup -d
	S=$S_save
	umount -l "$WORK/tmpfs"
else
	skip 4 "cannot mount a tmpfs"
fi
done_testing
