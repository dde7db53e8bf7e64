#!/bin/bash
# chaos.t - kill -9 of the daemon at a random moment under load, then a
# restart, THINFS_CHAOS_ITERATIONS times (10) on one state directory.
# Each round: 4 clients (tests/chaos/chaos-client.py) do mkdir, rmdir,
# rename, mount, unmount, resize and fsynced writes inside mounted devices,
# each logging what it was told; after 0.5-3 s (THINFS_CHAOS_MAX_MS) the
# daemon gets SIGKILL; a new daemon starts on the same state directory and
# mount point; tests/chaos/chaos-oracle.py checks that every acknowledged
# device exists where it was made with its fsynced files (checksums), that
# nothing else appeared, mounts were adopted and sizes kept. Every 5th round
# and at the end the daemon is stopped and the engine's consistency check
# (tests/engine/engine-cli check: no leaked ID, metadata files equal the
# pool's devices) runs, with thin_check on the pool metadata for dm.
# Long runs: tests/chaos/run-long.sh. THINFS_CHAOS_SEED fixes the seed.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
chaos=$here/../chaos
CLI=${top_builddir:-.}/tests/engine/engine-cli
iters=${THINFS_CHAOS_ITERATIONS:-10}
max_ms=${THINFS_CHAOS_MAX_MS:-3000}
check_every=${THINFS_CHAOS_CHECK_EVERY:-5}
seed=${THINFS_CHAOS_SEED:-$(date +%s)}
RANDOM=$seed
OPTS="dm.loopdatasize=4G,dm.basesize=256M"
diag "seed $seed, $iters rounds, kill within ${max_ms} ms"
model=$WORK/model
failed_rounds=0

# thin_check of a stopped dm daemon's pool: the metadata through a loop
# device (the guest's tmpfs refuses the tools' O_DIRECT).
thin_check_pool() {
	local md l
	md=$(losetup -j "$S/devicemapper/metadata" -O NAME -n | head -n 1 | tr -d ' ')
	if [ -z "$md" ]; then
		md=$(losetup -r -f --show "$S/devicemapper/metadata") || return 1
		l=$md
	fi
	thin_check "$md" >"$WORK/thin_check" 2>&1
	local st=$?
	[ -n "${l:-}" ] && losetup -d "$l"
	[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/thin_check" | head -n 10
	return $st
}

# check_stopped DESC: stop the daemon in order, then the engine's check
# (and thin_check on dm), then start again.
check_stopped() {
	local out
	stop_daemon
	ok $? "$1: the daemon stops in order"
	if [ "$BACKEND" = dm ]; then
		thin_check_pool
		ok $? "$1: thin_check of the pool metadata is clean"
	fi
	out=$("$CLI" "$S" "$BASE_OPTS,$OPTS" check 2>>"$WORK/log")
	ok $? "$1: engine consistency check: $out"
}

start_daemon "$OPTS"; ok $? "daemon starts"
for ((it = 1; it <= iters; it++)); do
	pids=()
	for c in 1 2 3 4; do
		python3 "$chaos/chaos-client.py" "$M" "$c" $((seed * 100 + it * 4 + c)) 60 "$WORK/log.$it.$c" \
			>>"$WORK/clients.err" 2>&1 &
		pids+=($!)
	done
	# The random moment counts from when every client has begun.
	for _ in $(seq 1 200); do
		[ "$(for c in 1 2 3 4; do grep -m1 -c '^B' "$WORK/log.$it.$c" 2>/dev/null; done | grep -c 1)" -eq 4 ] && break
		sleep 0.05
	done
	ms=$((500 + RANDOM % (max_ms - 499)))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	PID=
	# The clients stop where the kill left them: what they logged is what
	# they were told. One blocked in a filesystem the killed daemon left
	# frozen (a snapshot of a mounted device) dies only once the restart
	# thaws it.
	exec 3>&2 2>>"$WORK/clients.err" # bash's "Killed" notices
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	if ! start_daemon "$OPTS"; then
		ok 1 "round $it: restart after kill -9 at ${ms} ms"
		failed_rounds=$((failed_rounds + 1))
		keep=/var/tmp/thinfs-chaos-fail.$$.$it
		mkdir -p "$keep" && cp "$WORK"/log "$WORK"/log."$it".* "$keep"/
		grep "$M" /proc/self/mountinfo >"$keep/mountinfo"
		diag "logs and the mount table kept in $keep"
		break
	fi
	hung=0
	for p in "${pids[@]}"; do
		if timeout 60 tail --pid="$p" -f /dev/null; then
			wait "$p" 2>/dev/null
		else
			hung=$((hung + 1))
			diag "client $p still blocked 60 s after the restart: $(tr '\n' ' ' <"/proc/$p/stack" 2>/dev/null | cut -c1-200)"
		fi
	done
	exec 2>&3 3>&-
	acked=$(cat "$WORK"/log."$it".* 2>/dev/null | grep -c '^A ')
	out=$(timeout 300 python3 "$chaos/chaos-oracle.py" "$M" "$model" "$WORK"/log."$it".* 2>&1)
	st=$?
	[ $hung -eq 0 ] || { st=1; out="$out; $hung client(s) blocked after the restart"; }
	if [ $st -ne 0 ]; then
		failed_rounds=$((failed_rounds + 1))
		echo "$out" | sed 's/^/# /' | head -n 20
		keep=/var/tmp/thinfs-chaos-fail.$$.$it
		mkdir -p "$keep" && cp "$WORK"/log "$WORK"/log."$it".* "$keep"/
		diag "daemon errors and warnings (last 15); daemon and client logs kept in $keep:"
		grep -E ': (error|warning):' "$WORK/log" | grep -v -e 'delete them first' -e 'unmount it first' \
			-e 'is mounted$' | tail -n 15 | sed 's/^/#   /'
	fi
	ok $st "round $it: kill -9 at ${ms} ms ($acked acknowledged), restart: $(echo "$out" | tail -n 1)"
	if [ $((it % check_every)) -eq 0 ] || [ $it -eq $iters ]; then
		check_stopped "round $it"
		start_daemon "$OPTS" || { ok 1 "round $it: start after the check"; break; }
		# An orderly stop unmounts what nothing uses: the mounts are
		# read again; devices and files must all be there.
		out=$(CHAOS_MOUNTS_UNKNOWN=1 timeout 300 python3 "$chaos/chaos-oracle.py" "$M" "$model" 2>&1)
		st=$?
		ok $st "round $it: after the orderly stop and a start: $(echo "$out" | tail -n 1)"
		[ $st -eq 0 ] || echo "$out" | sed 's/^/# /' | head -n 20
	fi
done
bad=$(cat "$WORK"/log.* 2>/dev/null | grep -c '^BAD')
is "$bad" "0" "no client saw an errno outside the contract"
[ "$bad" -eq 0 ] || grep -h '^BAD' "$WORK"/log.* | sort | uniq -c | sort -rn | head -n 10 | sed 's/^/# /'
diag "ops: $(cat "$WORK"/log.* | awk '$1 == "A" {a[$2]++} END {for (k in a) printf "%s=%d ", k, a[k]}')"
diag "refusals: $(cat "$WORK"/log.* | awk '$1 == "E" {a[$2 "-" $NF]++} END {for (k in a) printf "%s=%d ", k, a[k]}')"
stop_daemon; ok $? "the daemon stops at the end"
done_testing
