#!/bin/bash
# hostile-start.t - starts over hostile metadata (doc/design.md §4 and the contract's §4: "a corrupt
# metadata file at start is reported by path; the daemon does not silently
# drop devices").
#
# A real state directory is made once with the engine (tests/engine/
# engine-cli, backend reflink): base, a, a/b, a/b/c, d, d/e. Then, case by
# case, its metadata directory is copied and mutated at random (bytes
# flipped, files truncated or removed, contents swapped between devices,
# device IDs duplicated, parent chains broken or looped, renames and
# transactions left half done, flags and types changed, junk files added)
# and the engine is started on it (`engine-cli ... check`, under timeout).
# Each start must either
#   - succeed with a consistent tree ("OK"), every device file that still
#     parses (and is not marked deleted) listed by `engine-cli ... list`
#     or named in the start's log (a rollback names its device), or
#   - refuse, with a message naming a file under STATEDIR/metadata;
# and never end on a signal, a timeout, or a sanitizer report.
# The pool image is shared by all cases: only the metadata directory is
# copied, and the pool's data file is put back after a start that may have
# changed it.
#   HOSTILE_CASES   number of cases (default 300)
#   HOSTILE_SEED    first random seed (default 1; case N uses SEED+N)
#   HOSTILE_BUDGET  seconds for the cases (default 90): no new case starts
#                   after it, so make check stays under 2 minutes
set -u
cli=${top_builddir:-.}/tests/engine/engine-cli
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (loop devices, mounts)"; exit 0; }
[ -e /dev/loop-control ] || { echo "1..0 # SKIP no loop devices"; exit 0; }
[ -x "$cli" ] || { echo "1..0 # SKIP $cli not built"; exit 0; }
command -v python3 >/dev/null || { echo "1..0 # SKIP python3 missing"; exit 0; }
command -v timeout >/dev/null || { echo "1..0 # SKIP timeout missing"; exit 0; }

cases=${HOSTILE_CASES:-300}
seed0=${HOSTILE_SEED:-1}
budget=${HOSTILE_BUDGET:-90}
work=$(mktemp -d /var/tmp/thinfs-hostile-XXXXXX)
s=$work/s
opts="backend=reflink,dm.loopdatasize=1G,dm.basesize=32M,dm.fs=ext4"
n=0 failed=0
cleanup() {
	for m in $(grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null; done
	losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$work" 'index($0, w) { print $1 }' |
		while read -r l; do losetup -d "$l" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
run() { timeout -k 5 30 "$cli" "$s" "$opts" "$@"; }

# The mutator: mutate.py SRC DST SEED copies SRC to DST, mutates DST, and
# prints what it did; parsable.py DIR prints the device files that still
# parse as device files and are not marked deleted.
cat >"$work/mutate.py" <<'EOF'
import json, os, random, shutil, sys

src, dst, seed = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(int(seed) if seed.isdigit() else 0)
shutil.copytree(src, dst)
ENGINE = ("deviceset-metadata", "transaction-metadata")

def files():
    return sorted(f for f in os.listdir(dst) if not f.startswith("."))

def devices():
    return [f for f in files() if f not in ENGINE]

def load(f):
    try:
        with open(os.path.join(dst, f)) as fh:
            v = json.load(fh)
        return v if isinstance(v, dict) else None
    except (ValueError, OSError):
        return None

def save(f, obj):
    with open(os.path.join(dst, f), "w") as fh:
        json.dump(obj, fh, separators=(",", ":"))

def edit(f, key, value):
    obj = load(f)
    if obj is None:
        return "%s unreadable, not edited" % f
    obj[key] = value
    save(f, obj)
    return "%s.%s=%s" % (f, key, json.dumps(value))

def read(f):
    with open(os.path.join(dst, f), "rb") as fh:
        return fh.read()

def write(f, data):
    with open(os.path.join(dst, f), "wb") as fh:
        fh.write(data)

def flip():
    f = rng.choice(files()); d = bytearray(read(f))
    if not d:
        return "flip: %s empty" % f
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(d)); d[i] ^= rng.randint(1, 255)
    write(f, bytes(d)); return "flip bytes in " + f

def trunc():
    f = rng.choice(files()); d = read(f); k = rng.randrange(len(d) or 1)
    write(f, d[:k]); return "truncate %s to %d" % (f, k)

def swap():
    a, b = rng.sample(devices(), 2); da, db = read(a), read(b)
    write(a, db); write(b, da); return "swap %s and %s" % (a, b)

def dupid():
    a, b = rng.sample(devices(), 2); obj = load(b)
    return edit(a, "device_id", obj["device_id"] if obj else 1)

def copy():
    a = rng.choice(devices()); new = rng.choice(["copy", "x9", "Zz.z"])
    write(new, read(a)); return "copy %s to %s" % (a, new)

def parent():
    a = rng.choice(devices())
    return edit(a, "parent", rng.choice(devices() + ["ghost", a, "", "base"]))

def remove():
    f = rng.choice(files()); os.unlink(os.path.join(dst, f)); return "remove " + f

def txn():
    d = rng.choice(devices() + ["ghost"]); obj = load(d) or {}
    t = load("transaction-metadata") or {"open_transaction_id": 6}
    base = t.get("open_transaction_id", 6)
    if not isinstance(base, int):
        base = 6
    save("transaction-metadata", {
        "open_transaction_id": rng.choice([base + 1, base + 1, base, base + 2, 0, 2**64 - 1]),
        "device_hash": d,
        "device_id": rng.choice([obj.get("device_id", 9), 9, 1, 6, 0])})
    return "transaction-metadata: %s" % json.dumps(load("transaction-metadata"))

def flag():
    return edit(rng.choice(devices()), rng.choice(["deleted", "initialized"]),
                rng.choice([True, False, 1, "yes", None]))

def renamed():
    a = rng.choice(devices())
    return edit(a, "renamed_from", rng.choice(devices() + ["ghost", a]))

def badtype():
    f = rng.choice(files()); obj = load(f)
    if not obj:
        return "badtype: %s unreadable" % f
    k = rng.choice(sorted(obj))
    return edit(f, k, rng.choice([-1, 1.5, "7", [], {}, 2**63, 2**64, 16777216, "", None, True]))

def engine():
    return edit("deviceset-metadata", rng.choice(["next_device_id", "base_device_uuid", "base_device_fs"]),
                rng.choice([0, 16777215, 99999999, "", "00000000-0000-0000-0000-000000000000", "xfs", 5]))

def junk():
    name = rng.choice(["not a name", ".stale.tmp-1-2", "-x", "a" * 129, "ctl"])
    write(name, rng.choice([b"", b"{}", b"junk", read(rng.choice(devices()))]))
    return "junk file %r" % name

def empty_dir():
    for f in files():
        os.unlink(os.path.join(dst, f))
    return "every file removed"

if not seed.isdigit():
    # Regression cases, by name.
    if seed == "swap-base":      # base and b swapped: the root had a parent (list looped)
        a, b = read("base"), read("b"); write("base", b); write("b", a)
    elif seed == "base-parent":  # base names a descendant as its parent
        edit("base", "parent", "c")
    elif seed == "parent-loop":  # a -> c -> b -> a
        edit("a", "parent", "c")
    elif seed == "self-rename":  # renamed from itself: its own file was removed (use after free)
        edit("b", "renamed_from", "b")
    elif seed == "deleted-parent":  # c under a parent marked deleted vanished silently
        edit("b", "deleted", True)
    elif seed == "lost-file":    # c's file gone, its pool device not: the start said nothing
        os.unlink(os.path.join(dst, "c"))
    print("regression " + seed)
    sys.exit(0)

ops = [flip, flip, trunc, trunc, swap, dupid, copy, parent, parent, remove, txn, txn,
       flag, renamed, badtype, engine, junk]
said = []
for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
    try:
        said.append((empty_dir if rng.random() < 0.01 else rng.choice(ops))())
    except (ValueError, IndexError, OSError) as e:
        said.append("(skipped: %s)" % e)
print("; ".join(said))
EOF
cat >"$work/parsable.py" <<'EOF'
import json, os, re, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    if f in ("deviceset-metadata", "transaction-metadata") or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", f):
        continue
    try:
        with open(os.path.join(d, f)) as fh:
            o = json.load(fh)
    except (ValueError, OSError, UnicodeDecodeError):
        continue
    def uint(k, mx, need=True):
        v = o.get(k)
        if v is None:
            return not need
        return type(v) is int and 0 <= v <= mx
    if not isinstance(o, dict) or not (uint("device_id", 0xffffff) and uint("size", 2**63 - 1)
                                       and uint("transaction_id", 2**64 - 1)):
        continue
    if o.get("deleted") is True or f == "base":
        continue
    print(f)
EOF

# The real state directory, and what it holds.
mkdir -p "$s"
setup_ok=0
{ run init && run add a base && run add b a && run add c b &&
	run add d base && run add e d; } 2>>"$work/setup.log" || setup_ok=1
if [ $setup_ok -ne 0 ]; then
	echo "1..1"; ok 1 "set up a state directory with engine-cli (see below)"
	sed 's/^/# /' "$work/setup.log"; exit 1
fi
pristine=$(run list 2>/dev/null | sort)
cp -a "$s/metadata" "$work/meta.orig"
cp --sparse=always "$s/devicemapper/data" "$work/data.orig"

fixed="swap-base base-parent parent-loop self-rename deleted-parent lost-file"
set -- $fixed
# The plan comes last: the time budget decides how many cases run.
[ "$(echo "$pristine" | wc -l)" -eq 5 ]; ok $? "the real state directory lists its 5 devices"
restore_pool() {
	cp --sparse=always "$work/data.orig" "$s/devicemapper/data.new" &&
		mv "$s/devicemapper/data.new" "$s/devicemapper/data"
}
start=$SECONDS
ran=0 refused=0 started=0
for ((i = 1 - $#; i <= cases; i++)); do
	if [ $i -le 0 ]; then
		seed=${fixed%% *}; fixed=${fixed#* }
	elif [ $((SECONDS - start)) -ge "$budget" ]; then
		echo "# time budget of ${budget}s spent: $((i - 1)) of $cases random cases run"
		break
	else
		seed=$((seed0 + i))
	fi
	rm -rf "$s/metadata"
	what=$(python3 "$work/mutate.py" "$work/meta.orig" "$s/metadata" "$seed")
	want=$(python3 "$work/parsable.py" "$s/metadata")
	ENGINE_CLI_DEBUG=1 run check >"$work/out" 2>"$work/err"
	st=$?
	grep -a ' check: ' "$work/err" | grep -av 'engine-cli: check:' >"$work/err.check"
	ran=$((ran + 1))
	why= label=
	if [ $st -eq 124 ] || [ $st -eq 137 ]; then
		why="hung (timeout)"
	elif [ $st -gt 128 ]; then
		why="killed by signal $((st - 128))"
	elif grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$work/err"; then
		why="sanitizer report: $(grep -m1 -E 'Sanitizer|runtime error' "$work/err")"
	elif [ $st -ne 0 ] && [ -s "$work/out" ] &&
		! grep -qv 'has no metadata file (an orphan, named at start)' "$work/out" "$work/err.check" 2>/dev/null; then
		# Started, and the check found only pool devices whose file is
		# gone: each must be named by the start (an orphan, left alone).
		started=$((started + 1)) label="started, its orphans named"
		for id in $(sed -n 's/.*pool device \([0-9]*\) has no metadata file.*/\1/p' "$work/out" "$work/err.check" | sort -u); do
			grep -aq "pool device $id has no file in $s/metadata" "$work/err" ||
				{ why="pool device $id has no file, and the start did not say so"; break; }
		done
	elif [ "$seed" = lost-file ]; then
		why="the pool device whose file is gone is not an orphan (status $st): $(head -c 200 "$work/out")"
	elif [ $st -eq 0 ]; then
		started=$((started + 1))
		if [ "$(cat "$work/out")" != OK ]; then
			why="started, but inconsistent: $(head -c 300 "$work/out")"
		elif ! listed=$(run list 2>"$work/err2" | head -c 100000; exit "${PIPESTATUS[0]}"); then
			why="started, but list failed: $(tail -1 "$work/err2")"
		elif [ "$(echo "$listed" | wc -l)" -gt 64 ]; then
			why="started, but list shows more devices than there are files (a loop?)"
		else
			for d in $want; do
				if ! echo "$listed" | grep -q "^$d " && ! grep -aq "'$d'\|/$d\b" "$work/err"; then
					why="device file $d parses but is neither listed nor named"
					break
				fi
			done
		fi
	else
		refused=$((refused + 1))
		grep -aqE "$s/metadata/[A-Za-z0-9._-]+" "$work/err" ||
			why="refused (status $st) without naming a file: $(grep -av ' debug: \| info: ' "$work/err" | tail -2 | tr '\n' ' ')"
	fi
	if [ -n "$why" ]; then
		ok 1 "seed $seed [$what]: $why"
		sed 's/^/#   /' "$work/err" | grep -av ' debug: ' | tail -15
	else
		ok 0 "seed $seed [$what]: ${label:-$([ $st -eq 0 ] && echo started || echo "refused ($st)")}"
	fi
	# A start may have changed the pool (a rollback, a base made again):
	# put the data file back for the next case.
	if [ $st -eq 0 ] || grep -qiE 'roll|base device|creat|mkfs' "$work/err"; then
		restore_pool
	fi
done
echo "# $ran cases in $((SECONDS - start))s: $started started, $refused refused, $failed failed"
echo "1..$n"
[ $failed -eq 0 ]
