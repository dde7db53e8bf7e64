#!/bin/bash
# dm.t -- the dm backend's tests, run by `make check` on the host: boots
# ONE QEMU guest with Debian's kernel (tests/vm/run-in-vm.sh) that runs
# tests/vm/dm-guest.sh: the engine's test-pool-dm, the functional suite
# with THINFS_BACKEND=dm, dm-cases.sh and dm-crash.sh. Their TAP streams
# come back through a shared results directory and are printed here as
# one stream, renumbered, each line tagged [part]; a part that crashes,
# times out or runs fewer tests than it planned adds a failing line.
# SKIP only when no guest can run here (no qemu, no kernel image).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
THINFS=${THINFS:-$top_builddir/thinfs}
export top_srcdir top_builddir THINFS

if [ ! -x "$THINFS" ]; then
	echo "1..1"
	echo "not ok 1 - $THINFS is built"
	exit 1
fi

tmp=$(mktemp -d /var/tmp/thinfs-dmt.XXXXXX) || { echo "Bail out! mktemp in /var/tmp failed"; exit 1; }
trap 'rm -rf -- "$tmp"' EXIT

# The guest's /tmp is its own tmpfs: trees under the host's /tmp must be
# copied to where the guest sees them.
under_tmp() { case $1/ in /tmp/*) return 0 ;; esac; return 1; }
if under_tmp "$top_srcdir"; then
	mkdir -p "$tmp/src" && cp -a "$top_srcdir/." "$tmp/src/" || { echo "Bail out! cannot copy $top_srcdir"; exit 1; }
	top_srcdir=$tmp/src
fi
if under_tmp "$top_builddir"; then
	old=$top_builddir
	mkdir -p "$tmp/build" && cp -a "$old/." "$tmp/build/" || { echo "Bail out! cannot copy $old"; exit 1; }
	top_builddir=$tmp/build
	case $THINFS in "$old"/*) THINFS=$top_builddir/${THINFS#"$old"/} ;; esac
fi
if under_tmp "$THINFS"; then
	cp "$THINFS" "$tmp/thinfs" && THINFS=$tmp/thinfs
fi

res=$tmp/res
THINFS_VM_RESULTS=$res/parts
mkdir -p "$THINFS_VM_RESULTS"
export THINFS_VM_RESULTS

t0=$SECONDS
cd "$top_builddir" || exit 1
"$top_srcdir/tests/vm/run-in-vm.sh" -m 3072 -t "${THINFS_VM_TIMEOUT:-3600}" \
	-e top_srcdir -e top_builddir -e THINFS -e THINFS_VM_RESULTS \
	-e THINFS_VM_PART_TIMEOUT -e THINFS_VM_PARTS \
	"$res" -- bash "$top_srcdir/tests/vm/dm-guest.sh" >"$tmp/guest.out" 2>"$tmp/guest.err"
vmrc=$?
elapsed=$((SECONDS - t0))
if [ $vmrc -eq 77 ]; then
	echo "1..0 # SKIP $(tail -n 1 "$tmp/guest.err")"
	exit 0
fi

n=0
failed=0
emit() { # emit ok|not-ok TEXT
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

sed 's/^/# guest: /' "$tmp/guest.out"
if [ $vmrc -ne 0 ]; then
	emit not-ok "the guest ran every part (run-in-vm exit $vmrc after ${elapsed}s)"
	sed 's/^/#   /' "$tmp/guest.err" | tail -n 40
else
	emit ok "the guest booted and ran every part (${elapsed}s)"
fi

for tap in "$THINFS_VM_RESULTS"/*.tap; do
	[ -e "$tap" ] || continue
	f=${tap%.tap}
	part=${f##*/}
	part=${part#[0-9][0-9]-}
	rc=$(cat "$f.rc" 2>/dev/null || echo "none")
	secs=$(cat "$f.time" 2>/dev/null || echo "?")
	plan=
	seen=0
	pfail=0
	skipped=
	while IFS= read -r line; do
		if [[ $line =~ ^1\.\.([0-9]+)(.*)$ ]]; then
			plan=${BASH_REMATCH[1]}
			if [ "$plan" = 0 ]; then
				skipped=${BASH_REMATCH[2]#*# }
				[ -n "$skipped" ] || skipped="SKIP (empty plan)"
			fi
		elif [[ $line =~ ^(not\ )?ok([[:space:]]+[0-9]+)?([[:space:]]*-)?[[:space:]]*(.*)$ ]]; then
			seen=$((seen + 1))
			text=${BASH_REMATCH[4]}
			if [ -n "${BASH_REMATCH[1]}" ] && [[ ! $text =~ \#[[:space:]]*TODO ]]; then
				emit not-ok "[$part] $text"
				pfail=$((pfail + 1))
			else
				emit ok "[$part] $text"
			fi
		elif [[ $line =~ ^Bail\ out! ]]; then
			emit not-ok "[$part] $line"
			pfail=$((pfail + 1))
		elif [[ $line =~ ^# ]]; then
			echo "$line"
		elif [ -n "$line" ]; then
			echo "# [$part] $line"
		fi
	done <"$tap"
	if [ -n "$skipped" ] && [ $seen -eq 0 ]; then
		if [ "$rc" = 77 ]; then
			# automake's SKIP code: "cannot run here", and this guest
			# is where the dm tests must run.
			emit not-ok "[$part] ran in the guest (it skipped: ${skipped#SKIP })"
			pfail=$((pfail + 1))
		elif [ "$rc" = 0 ]; then
			emit ok "[$part] # SKIP ${skipped#SKIP }"
		else
			emit not-ok "[$part] skipped but exited with status $rc"
		fi
	elif [ -z "$plan" ]; then
		emit not-ok "[$part] printed a plan (exit $rc; ran $seen tests)"
		pfail=$((pfail + 1))
	elif [ "$plan" != "$seen" ]; then
		emit not-ok "[$part] ran all $plan planned tests (ran $seen; exit $rc)"
		pfail=$((pfail + 1))
	elif [ "$rc" != 0 ] && [ $pfail -eq 0 ]; then
		emit not-ok "[$part] exited with status 0 (got $rc$([ "$rc" = 124 ] && echo ", timeout"))"
		pfail=$((pfail + 1))
	fi
	echo "# [$part] $seen tests, $pfail failed, exit $rc, ${secs}s"
	if [ $pfail -ne 0 ] && [ -s "$f.err" ]; then
		echo "# [$part] stderr tail:"
		tail -n 25 "$f.err" | sed 's/^/#   /'
	fi
done
echo "1..$n"
echo "# dm.t: guest run ${elapsed}s in all"
[ $failed -eq 0 ]
