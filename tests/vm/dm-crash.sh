#!/bin/bash
# dm-crash.sh -- TAP: crash safety on a real dm thin pool (run inside the
# guest by dm-guest.sh). For every fault point `thinfs --list-faults`
# names, the daemon runs with THINFS_FAULT=<point> and does operations
# until it dies there (SIGKILL by fault.c); a restart without the fault
# must come up, and with the daemon stopped and the pool deactivated the
# oracle must hold: thin_check clean, pool device IDs == metadata files'.
# base-* points fire during the first start, so they get a fresh STATEDIR;
# the others share one, so each point also starts from the state the
# previous crashes left.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/dm-lib.sh"

require_thin_pool
points=$("$THINFS" --list-faults 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+$')
if [ -z "$points" ]; then
	echo "1..1"
	echo "not ok 1 - thinfs --list-faults lists fault points"
	exit 1
fi
points="$points deferred:delete-after-tombstone"

work=$(mktemp -d /var/tmp/dm-crash.XXXXXX)
trap '[ -n "${daemon_pid:-}" ] && kill -KILL "$daemon_pid" 2>/dev/null; true' EXIT

# Operations that together reach every engine path with a fault point:
# create, mount, unmount, rename, delete, resize. Stops when the daemon dies.
provoke() { # provoke MOUNTPOINT TAG
	local m=$1 t=$2 step
	for step in "mkdir $m/$t" "mkdir $m/$t/${t}c" \
		"sh -c 'echo mount >$m/$t/${t}c/ctl'" "sh -c 'echo unmount >$m/$t/${t}c/ctl'" \
		"sh -c 'echo resize 2G >$m/$t/${t}c/ctl'" \
		"mv $m/$t/${t}c $m/$t/${t}r" "rmdir $m/$t/${t}r" "rmdir $m/$t"; do
		alive "$daemon_pid" || return 0
		eval "timeout 120 $step" >/dev/null 2>&1
		alive "$daemon_pid" || return 0
	done
	return 1
}

# deferred:delete-after-tombstone is the burial's point once more, with a
# device the pool holds busy at rmdir: mount it, hold its dm node open,
# unmount (the node stays), then rmdir with deferred deletion on.
provoke_deferred() { # provoke_deferred MOUNTPOINT TAG
	local m=$1 t=$2 dev
	mkdir "$m/$t" && echo mount >"$m/$t/ctl" || return 1
	dev=$(jq -r .dev_path "$m/$t/info")
	exec 7<"$dev"
	echo unmount >"$m/$t/ctl"
	timeout 120 rmdir "$m/$t" >/dev/null 2>&1
	exec 7<&-
	alive "$daemon_pid" && return 1
	return 0
}

shared=$work/shared
n=0
for p in $points; do
	n=$((n + 1))
	tag=t$n
	case $p in
	base-*) sd=$work/fresh-$n ;;
	*) sd=$shared ;;
	esac
	mnt=$work/mnt
	# died: 1 once the daemon was seen killed by SIGKILL (status 137).
	died=0
	restart_opts=$DM_SMALL
	if [[ $p == base-after-grow-* ]]; then
		# Fires while a start grows the base (a larger dm.basesize): made
		# first at 1G, then started at 2G; the restart keeps 2G (a
		# smaller dm.basesize is refused).
		restart_opts="$DM_SMALL,dm.basesize=2G"
		if ! { start_daemon "$sd" "$mnt" "$DM_SMALL" && stop_daemon "$mnt"; }; then
			diag "$p: the first start failed"
		elif start_daemon "$sd" "$mnt" "$restart_opts" "THINFS_FAULT=$p"; then
			diag "$p: the growing start came up without reaching it"
		elif [ "${daemon_rc:-}" = 137 ]; then
			died=1
		else
			diag "$p: the growing start failed with status ${daemon_rc:-?}, not SIGKILL"
		fi
	elif [[ $p == base-* ]]; then
		if start_daemon "$sd" "$mnt" "$DM_SMALL" "THINFS_FAULT=$p"; then
			diag "$p: the first start came up without reaching it"
		elif [ "${daemon_rc:-}" = 137 ]; then
			died=1
		else
			diag "$p: the start failed with status ${daemon_rc:-?}, not SIGKILL"
		fi
	else
		if [ ! -d "$sd/metadata" ]; then
			# First use of the shared state dir: a clean first start.
			start_daemon "$sd" "$mnt" "$DM_SMALL" && save_pool_name "$mnt" "$sd" && stop_daemon "$mnt"
		fi
		opts=$DM_SMALL
		how=provoke
		if [ "$p" = deferred:delete-after-tombstone ]; then
			opts="$DM_SMALL,dm.use_deferred_deletion=true"
			how=provoke_deferred
		fi
		if start_daemon "$sd" "$mnt" "$opts" "THINFS_FAULT=${p#deferred:}"; then
			if $how "$mnt" "$tag"; then
				wait "$daemon_pid"
				daemon_rc=$?
				daemon_pid=
				if [ "$daemon_rc" = 137 ]; then
					died=1
				else
					diag "$p: the daemon exited with status $daemon_rc, not SIGKILL"
				fi
			else
				diag "$p: no operation reached it"
			fi
		elif [ "${daemon_rc:-}" = 137 ]; then
			died=1 # a point on the start path (e.g. recovery)
		else
			diag "$p: the start itself failed (status ${daemon_rc:-?})"
		fi
	fi
	ok $((1 - died)) "$p: the daemon dies at the fault point"
	if [ $died -eq 0 ] && [ -n "${daemon_pid:-}" ]; then
		# Not reached: leave the daemon as an orderly stop would.
		stop_daemon "$mnt"
	fi
	kill_daemon "$mnt"
	if start_daemon "$sd" "$mnt" "$restart_opts"; then
		ok 0 "$p: restart without the fault"
		save_pool_name "$mnt" "$sd"
		jq -e '.transaction_id != null' "$mnt/info" >/dev/null
		ok $? "$p: pool info readable after the restart"
		if [[ $p == base-after-grow-* ]]; then
			# The interrupted growth was finished: a new device's
			# filesystem has the whole 2G, not 1G.
			size=0
			mkdir "$mnt/grown" && echo mount >"$mnt/grown/ctl" &&
				size=$(df -B1 --output=size "$mnt/grown/rootfs/" | tail -1) &&
				echo unmount >"$mnt/grown/ctl"
			[ "${size:-0}" -gt $((1536 << 20)) ]
			ok $? "$p: a new device's filesystem has the grown size ($size bytes)"
			[ ! -e "$sd/base-grow-pending" ]; ok $? "$p: the grow marker is gone"
		fi
		stop_daemon "$mnt"
		ok $? "$p: orderly stop"
	else
		ok 1 "$p: restart without the fault"
		sed 's/^/#   /' "$sd.log" | tail -n 20
		kill_daemon "$mnt"
	fi
	full_oracle "$sd" "$p"
	if [ "$sd" != "$shared" ]; then
		detach_loops "$sd/devicemapper/data" "$sd/devicemapper/metadata"
	fi
done
detach_loops "$shared/devicemapper/data" "$shared/devicemapper/metadata"
tap_end
