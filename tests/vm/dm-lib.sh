# dm-lib.sh -- shared helpers of the dm tests that run inside the guest
# (dm-cases.sh, dm-crash.sh): TAP output, starting and stopping a thinfs
# daemon with backend=dm, tearing down what a killed daemon left, and the
# oracle (thin_check + the pool's device IDs equal the metadata files').
# Sourced, not run. Needs THINFS (the daemon binary) in the environment.

: "${THINFS:?THINFS must name the thinfs binary}"
# errno_of OP ARGS (tests/functional/errno.sh, shared with the functional suite).
. "$(dirname "${BASH_SOURCE[0]}")/../functional/errno.sh"
tap_n=0
tap_failed=0
# Small sizes: the loop files live in the guest's RAM.
DM_SMALL="dm.basesize=1G,dm.loopdatasize=3G,dm.loopmetadatasize=100M"

# require_thin_pool: skip the whole script (TAP "1..0 # SKIP") where the
# kernel has no thin-pool target; bail out when thinfs is not built.
require_thin_pool() {
	if [ ! -e /dev/mapper/control ] || ! dmsetup targets 2>/dev/null | grep -q '^thin-pool'; then
		echo "1..0 # SKIP no device-mapper thin-pool here (run through tests/vm/dm.t)"
		exit 0
	fi
	[ -x "$THINFS" ] || { echo "Bail out! $THINFS is not built"; exit 1; }
}
ok() { # ok COND_STATUS DESCRIPTION
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		tap_failed=$((tap_failed + 1))
	fi
}
check() { # check DESCRIPTION COMMAND...: ok if COMMAND succeeds
	local d=$1
	shift
	"$@"
	ok $? "$d"
}
is() { # is GOT EXPECTED DESCRIPTION
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		echo "#   got '$1', expected '$2'"
	fi
}
diag() { echo "# $*"; }
tap_end() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

# alive PID: running (a killed child of ours stays a zombie until waited
# for, and kill -0 still succeeds on a zombie).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# start_daemon STATEDIR MOUNTPOINT OPTIONS [VAR=VALUE...]
# Runs thinfs in the foreground in the background; sets daemon_pid and
# daemon_log. Returns 0 once MOUNTPOINT/info is readable, 1 if the daemon
# exited first (status in daemon_rc) or did not come up within 120 s.
start_daemon() {
	local sd=$1 mnt=$2 opts=$3 i
	shift 3
	mkdir -p "$sd" "$mnt"
	daemon_log=$sd.log
	daemon_rc=
	env "$@" "$THINFS" -f -o "backend=dm,$opts" "$sd" "$mnt" >>"$daemon_log" 2>&1 &
	daemon_pid=$!
	for ((i = 0; i < 1200; i++)); do
		if ! alive "$daemon_pid"; then
			wait "$daemon_pid"
			daemon_rc=$?
			daemon_pid=
			return 1
		fi
		if mountpoint -q "$mnt" && [ -r "$mnt/info" ] && jq -e . "$mnt/info" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	diag "daemon did not come up within 120 s; log tail:"
	tail -n 20 "$daemon_log" | sed 's/^/#   /'
	return 1
}

# stop_daemon MOUNTPOINT: orderly shutdown (SIGTERM), then make sure the
# mount is gone. 0 if the daemon exited with status 0.
stop_daemon() {
	local mnt=$1 rc=0 i
	if [ -n "${daemon_pid:-}" ]; then
		kill -TERM "$daemon_pid" 2>/dev/null
		for ((i = 0; i < 600; i++)); do
			alive "$daemon_pid" || break
			sleep 0.1
		done
		if alive "$daemon_pid"; then
			diag "daemon $daemon_pid ignored SIGTERM for 60 s; killing it"
			kill -KILL "$daemon_pid"
			rc=1
		fi
		wait "$daemon_pid" || rc=1
		daemon_pid=
	fi
	if mountpoint -q "$mnt" 2>/dev/null; then
		diag "$mnt still mounted after the daemon exited"
		umount -l "$mnt"
		rc=1
	fi
	return $rc
}

# kill_daemon MOUNTPOINT: SIGKILL, as a crash; detach the dead mount.
kill_daemon() {
	local mnt=$1
	if [ -n "${daemon_pid:-}" ]; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
		daemon_pid=
	fi
	umount -l "$mnt" 2>/dev/null
	true
}

# The dm pool of a state dir, from the name the daemon printed in info
# (saved by save_pool_name) or the only thin-pool target around.
save_pool_name() { # save_pool_name MOUNTPOINT STATEDIR
	jq -r .pool_name "$1/info" >"$2.pool"
}

# dm names of the thin devices that sit on pool POOL (by major:minor).
thin_devs_of_pool() {
	local pool=$1 mm
	mm=$(dmsetup info -c --noheadings -o major,minor "$pool" 2>/dev/null | tr -d ' ')
	# No pool, no thin devices on it ("No devices found" is no line to match).
	[ -n "$mm" ] || return 0
	dmsetup table --target thin 2>/dev/null | while IFS= read -r line; do
		# "name: 0 LEN thin MAJ:MIN ID"
		set -- $line
		[ "${5:-}" = "$mm" ] && echo "${1%:}"
	done
}

# deactivate_pool POOL: remove its thin devices, then the pool itself.
deactivate_pool() {
	local pool=$1 d
	for d in $(thin_devs_of_pool "$pool"); do
		dmsetup remove --retry "$d" || diag "dmsetup remove $d failed"
	done
	if dmsetup info "$pool" >/dev/null 2>&1; then
		dmsetup remove --retry "$pool" || diag "dmsetup remove $pool failed"
	fi
}

# Device IDs of the metadata files of STATEDIR, sorted, one a line:
# the devices' (metadata/NAME) and the deleted ones the worker has yet to
# delete from the pool (deleted/ID).
meta_ids() {
	local f
	for f in "$1"/metadata/* "$1"/deleted/*; do
		[ -e "$f" ] || continue
		case ${f##*/} in
		deviceset-metadata | transaction-metadata | .*) continue ;;
		esac
		jq -r .device_id "$f"
	done | sort -n
}

# Device IDs in thin-pool metadata (a file or a block device), sorted.
pool_ids() {
	thin_dump "$1" | sed -n 's/.*<device dev_id="\([0-9]*\)".*/\1/p' | sort -n
}

# oracle STATEDIR METADATA_DEV DESC: the daemon must be stopped and the
# pool deactivated. thin_check is clean and the pool's device IDs are the
# metadata files' (no leak, no loss), and no transaction is left open
# beyond the pool's.
oracle() {
	local sd=$1 md=$2 desc=$3 a b
	if thin_check "$md" >"$sd.thin_check" 2>&1; then
		ok 0 "$desc: thin_check of the pool metadata is clean"
	else
		ok 1 "$desc: thin_check of the pool metadata is clean"
		sed 's/^/#   /' "$sd.thin_check" | head -n 20
	fi
	a=$(pool_ids "$md" | tr '\n' ' ')
	b=$(meta_ids "$sd" | tr '\n' ' ')
	if [ -n "$a" ] && [ "$a" = "$b" ]; then
		ok 0 "$desc: pool device IDs equal the metadata files' ($a)"
	else
		ok 1 "$desc: pool device IDs equal the metadata files'"
		diag "  pool (thin_dump): $a"
		diag "  metadata files:   $b"
	fi
}

# loop_of FILE: the loop devices FILE is attached to.
loop_of() {
	losetup -j "$1" -O NAME -n 2>/dev/null | tr -d ' '
}

detach_loops() { # detach_loops FILE...
	local f l
	for f in "$@"; do
		for l in $(loop_of "$f"); do
			losetup -d "$l" 2>/dev/null
		done
	done
	true
}

# full_oracle STATEDIR DESC: pool of a stopped daemon with loopback files.
# The thin tools open with O_DIRECT, which the guest's tmpfs refuses: read
# the metadata through its loop device (attached read-only if need be).
full_oracle() {
	local sd=$1 pool md tmp_loop=
	pool=$(cat "$sd.pool" 2>/dev/null)
	[ -n "$pool" ] && deactivate_pool "$pool"
	md=$(loop_of "$sd/devicemapper/metadata" | head -n 1)
	if [ -z "$md" ]; then
		md=$(losetup -r -f --show "$sd/devicemapper/metadata") || md=$sd/devicemapper/metadata
		tmp_loop=$md
	fi
	oracle "$sd" "$md" "$2"
	[ -n "$tmp_loop" ] && losetup -d "$tmp_loop"
	true
}

# pool_ids_of_file METADATA_FILE: pool_ids through a loop device (as above).
pool_ids_of_file() {
	local md tmp_loop=
	md=$(loop_of "$1" | head -n 1)
	if [ -z "$md" ]; then
		md=$(losetup -r -f --show "$1") || return 1
		tmp_loop=$md
	fi
	pool_ids "$md"
	[ -n "$tmp_loop" ] && losetup -d "$tmp_loop"
	true
}
