#!/bin/bash
# lock.t - one thinfs per state directory (doc/design.md §4, "What a start
# does", step 0; src/dirlock.h). A start beside a running thinfs, or
# beside any live process holding STATEDIR's flock, fails at once naming
# it. A lock left held by a program that an exited process started (a
# thinfs killed between fork and exec of e2fsck: seen once in chaos.t) is
# waited for, up to DIRLOCK_WAIT_MS, and the start goes on; one held past
# that fails naming the program, and changes nothing.
. "$(dirname "$0")/lib.sh"
command -v flock >/dev/null || skip_all "flock(1) missing (util-linux)"

# try_start: a second start on $S, on its own mount point; its output.
mkdir -p "$WORK/mnt2"
try_start() { timeout 60 "$THINFS" -f -o "$BASE_OPTS" "$S" "$WORK/mnt2" 2>&1; }
# tree: everything under STATEDIR but the logs, with sizes and mtimes.
tree() { find "$S" -xdev -printf '%P %y %s %T@\n' | sort; }

start_daemon; ok $? "daemon starts"
mkdir "$M/a"
out=$(try_start); st=$?
ok $((!st)) "a second start on the same state directory fails"
case $out in *"another thinfs runs on this state directory (its flock is held by thinfs (pid $PID))"*)
	ok 0 "  naming the running thinfs and its pid" ;;
*) ok 1 "  naming the running thinfs and its pid: $out" ;; esac
[ -d "$M/a" ] && stat -f "$M" >/dev/null; ok $? "  the first one still answers"
out=$("${top_builddir:-.}/tests/engine/engine-cli" "$S" "$BASE_OPTS" list 2>&1); st=$?
ok $((!st)) "the engine alone (engine-cli) is refused too"
case $out in *"held by thinfs (pid $PID)"*) ok 0 "  saying why" ;; *) ok 1 "  saying why: $out" ;; esac
stop_daemon; ok $? "stop"

# A live process other than thinfs holds the lock: refused at once.
flock -n "$S" sleep 300 &
holder=$!
for _ in $(seq 50); do grep -q "FLOCK.* $holder " /proc/locks && break; sleep 0.1; done
out=$(try_start); st=$?
ok $((!st)) "a start while flock(1) holds the lock fails"
case $out in *"its flock is held by flock (pid $holder)"*) ok 0 "  naming it" ;; *) ok 1 "  naming it: $out" ;; esac
case $out in *waiting*) ok 1 "  without waiting: $out" ;; *) ok 0 "  without waiting" ;; esac
kill "$holder"; wait "$holder" 2>/dev/null

# The process that took the lock has exited; a program it started holds
# it for 2 s: the start waits for it, then goes on.
flock "$S" sh -c 'sleep 2 >/dev/null 2>&1 &'
start_daemon; ok $? "a start while a program the exited taker started holds the lock for 2 s succeeds"
grep -q "its flock is still held by sleep (pid [0-9]*), started by a process that has exited; waiting up to 5 s" \
	"$WORK/log"
ok $? "  saying what it waits for"
grep -q "its flock was let go after [0-9]* ms" "$WORK/log"; ok $? "  and when it was let go"
[ -d "$M/a" ]; ok $? "  with the tree"
stop_daemon; ok $? "stop"

# The same program holds it for good: the start fails after the wait,
# naming it, and changes nothing.
before=$(tree)
flock "$S" sh -c 'exec sleep 300 >/dev/null 2>&1 &'
out=$(try_start); st=$?
ok $((!st)) "a start while that program holds the lock for good fails"
case $out in *"its flock is still held by sleep (pid "*") after 5 s"*) ok 0 "  after the wait, naming it" ;;
*) ok 1 "  after the wait, naming it: $out" ;; esac
is "$(tree)" "$before" "  and changes nothing under STATEDIR"
pkill -f '^sleep 300$'
for _ in $(seq 50); do grep -q "FLOCK.*:$(stat -c %i "$S") " /proc/locks || break; sleep 0.1; done
start_daemon; ok $? "once it ends, a start succeeds"
[ -d "$M/a" ]; ok $? "  with the tree"
stop_daemon; ok $? "stop"
done_testing
