#!/bin/bash
# rm-tree.t - the delete of a tree of devices that holds a mounted device
# deletes nothing of that tree (DESIGN.md §1, doc/design.md §1 "rm -r"),
# with the programs people use: GNU rm -r, rm -rf, find -delete, and
# Midnight Commander's F8 driven in tmux (its error dialog answered "Skip
# all", so the walk goes on). The mounted device sits at depth 0, 1 and 2
# of the tree removed. Every device of the tree survives, with its info;
# the mounted device keeps its files; the program reports EBUSY. After an
# unmount, rm -r deletes the whole tree.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need rm find jq
start_daemon || skip_all "thinfs did not start"

# The tree: proj, proj/a, proj/a/b, proj/a/d, proj/c (c and d are the
# siblings a partial delete takes first).
TREE="proj proj/a proj/a/b proj/a/d proj/c"
mounted_at() { case $1 in 0) echo proj ;; 1) echo proj/a ;; 2) echo proj/a/b ;; esac; }
make_tree() {
	local d
	for d in $TREE; do mkdir "$M/$d" || return 1; done
	ctl "$1" mount && echo "data of $1" > "$M/$1/rootfs/keep" && sync -f "$M/$1/rootfs/keep"
}
# survivors: every device of the tree is still listed and its info read.
survivors() {
	local d n=0
	for d in $TREE; do
		[ -d "$M/$d" ] && [ "$(jq -r .name "$M/$d/info" 2>/dev/null)" = "${d##*/}" ] && n=$((n + 1))
	done
	echo "$n"
}
# check_kept WHO DEV ERRFILE STATUS
check_kept() {
	[ "$4" -ne 0 ]; ok $? "$1: fails (status $4)"
	if [ -n "$3" ]; then
		grep -q "Device or resource busy" "$3"; ok $? "$1: reports EBUSY"
		head -n 3 "$3" | sed 's/^/#   /'
	fi
	is "$(survivors)" 5 "$1: every device of the tree survives"
	is "$(ctl_state "$2")" "mounted 1" "$1: $2 is still mounted"
	is "$(cat "$M/$2/rootfs/keep" 2>/dev/null)" "data of $2" "$1: its files are intact"
	sed -n 2p "$M/proj/ctl" | grep -q "^error: .*mounted"; ok $? "$1: proj/ctl says why: $(sed -n 2p "$M/proj/ctl")"
}
# unmount_and_remove DEV: after the unmount, rm -r deletes the whole tree.
unmount_and_remove() {
	ctl "$1" unmount && rm -r "$M/proj"; ok $? "after unmount of $1, rm -r deletes the tree"
	[ ! -e "$M/proj" ] && [ -z "$(ls "$M" | grep -vx -e ctl -e info)" ]; ok $? "and nothing of it is left"
}

for depth in 0 1 2; do
	dev=$(mounted_at $depth)
	for how in "rm -r" "rm -rf" "find -delete"; do
		make_tree "$dev"; ok $? "tree with $dev mounted (depth $depth)"
		case $how in
		"find -delete") find "$M/proj" -delete 2>"$WORK/err"; st=$? ;;
		*) $how "$M/proj" 2>"$WORK/err"; st=$? ;;
		esac
		check_kept "$how, depth $depth" "$dev" "$WORK/err" $st
		unmount_and_remove "$dev"
	done
done

# A deep tree: the mount 20 levels down, a sibling at the top visited
# after the whole chain (readdir lists children by name).
chain=proj; for i in $(seq 1 20); do chain=$chain/l$i; done
mkdir -p "$M/$chain" "$M/proj/s" && ctl "$chain" mount; ok $? "a chain of 20 devices under proj, the last mounted, and proj/s"
rm -r "$M/proj" 2>/dev/null; st=$?
[ $st -ne 0 ] && [ -d "$M/$chain" ] && [ -d "$M/proj/s" ]; ok $? "rm -r keeps the chain and proj/s (status $st)"
is "$(find "$M/proj" -name info | wc -l)" 22 "all 22 devices survive"
ctl "$chain" unmount && rm -r "$M/proj" && [ ! -e "$M/proj" ]; ok $? "after the unmount rm -r deletes them all"

# An automount stands in the way only while something uses it.
for d in $TREE; do mkdir "$M/$d"; done
ls "$M/proj/a/b/rootfs/" >/dev/null && is "$(ctl_state proj/a/b)" "automounted" "proj/a/b automounted by a walk"
( cd "$M/proj/a/b/rootfs/" && exec sleep 600 ) & user=$!
for _ in $(seq 1 100); do [ "$(readlink /proc/$user/cwd)" = "$(readlink "$M/proj/a/b/rootfs")" ] && break; sleep 0.1; done
rm -r "$M/proj" 2>"$WORK/err"; st=$?
[ $st -ne 0 ] && grep -q "Device or resource busy" "$WORK/err"; ok $? "rm -r while a process is inside proj/a/b's automount fails with EBUSY"
is "$(survivors)" 5 "and every device of the tree survives"
sed -n 2p "$M/proj/ctl" | grep -q "automount of the device at '/proj/a/b' is in use"; ok $? "proj/ctl says why: $(sed -n 2p "$M/proj/ctl")"
kill $user; wait $user 2>/dev/null
rm -r "$M/proj"; ok $? "once nothing uses it, rm -r takes the automount away and deletes the tree"
[ ! -e "$M/proj" ]; ok $? "and nothing of it is left"

# mc: F8 on proj in the pool's directory, confirmed, errors skipped.
if command -v mc >/dev/null && command -v tmux >/dev/null; then
	trap 'tm kill-server 2>/dev/null; cleanup' EXIT
	for depth in 0 1 2; do
		dev=$(mounted_at $depth)
		make_tree "$dev"; ok $? "mc: tree with $dev mounted (depth $depth)"
		mc_start "$M"; ok $? "mc starts in the pool's directory"
		# Directories first, by name: proj is the only one.
		keys Down
		screen | grep -A1 -- '^|---' | grep -Eq '^\|/proj +\|'; ok $? "mc: proj selected"
		keys F8
		screen_has 'Delete' 5; ok $? "mc: F8 asks to delete"
		keys y
		# Confirm the recursive delete; then, at the first error, skip
		# all the others, as a user who wants the rest deleted would.
		seen=1
		for _ in $(seq 1 10); do
			if screen | grep -q 'busy'; then
				seen=0
				screen | grep -E 'Cannot|busy' | sed 's/^[ |+]*//; s/[ |+]*$//; s/^/#   /' | head -n 2
				keys -l p  # "Ski&p all"
			elif screen | grep -qi 'recursive'; then
				keys y
			else
				sleep 0.5
			fi
			screen | grep -qiE 'busy|recursive' || { [ $seen -eq 0 ] && break; }
		done
		ok $seen "mc: reports EBUSY"
		[ $seen -eq 0 ] || show_screen
		sleep 1
		tm kill-server 2>/dev/null
		check_kept "mc, depth $depth" "$dev" "" 1
		unmount_and_remove "$dev"
	done
else
	skip 30 "mc or tmux not installed"
fi

stop_daemon; ok $? "daemon stops cleanly"
done_testing
