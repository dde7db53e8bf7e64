#!/bin/bash
# stress.t - 8 processes doing mkdir, rmdir, mount, unmount, ls -R and
# reading info at once for THINFS_STRESS_SECONDS (60): no deadlock, no
# errno outside the contract, nothing leaked at the end.
. "$(dirname "$0")/lib.sh"
secs=${THINFS_STRESS_SECONDS:-60}

start_daemon; ok $? "daemon starts"
cat > "$WORK/worker.py" <<'PY'
import errno, os, random, sys, time
mnt, seed, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(seed)
allowed = {errno.EEXIST, errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY, errno.EINVAL}
tops = ["t%d" % i for i in range(4)]
kids = ["k%d" % i for i in range(6)]
counts = {}
bad = []
end = time.time() + secs
def path(name):
    if name in tops:
        return os.path.join(mnt, name)
    for t in tops:
        p = os.path.join(mnt, t, name)
        if os.path.isdir(p):
            return p
    return None
def ctl(p, cmd):
    fd = os.open(os.path.join(p, "ctl"), os.O_WRONLY)
    try:
        os.write(fd, cmd.encode())
    finally:
        os.close(fd)
while time.time() < end:
    op = rnd.choice(["mkdir", "mkdir", "rmdir", "mount", "unmount", "ls", "info"])
    name = rnd.choice(tops + kids)
    try:
        if op == "mkdir":
            os.mkdir(os.path.join(mnt, name) if name in tops else os.path.join(mnt, rnd.choice(tops), name))
        elif op == "ls":
            for _ in os.walk(mnt):
                pass
        else:
            p = path(name)
            if p is None:
                continue
            if op == "rmdir":
                os.rmdir(p)
            elif op == "mount":
                ctl(p, "mount")
            elif op == "unmount":
                ctl(p, "unmount")
            else:
                open(os.path.join(p, "info")).read()
        counts[op] = counts.get(op, 0) + 1
    except OSError as e:
        if e.errno not in allowed:
            bad.append("%s %s: %s" % (op, name, errno.errorcode.get(e.errno, e.errno)))
        counts[op + "-" + errno.errorcode.get(e.errno, "?")] = counts.get(op + "-" + errno.errorcode.get(e.errno, "?"), 0) + 1
print("counts", sorted(counts.items()))
for b in bad[:20]:
    print("BAD", b)
sys.exit(1 if bad else 0)
PY
pids=()
for i in $(seq 1 8); do
	timeout $((secs + 120)) python3 "$WORK/worker.py" "$M" "$i" "$secs" > "$WORK/worker$i.out" 2>&1 &
	pids+=($!)
done
fails=0 hung=0
for p in "${pids[@]}"; do
	wait "$p"; st=$?
	[ $st -eq 124 ] && hung=$((hung + 1))
	[ $st -ne 0 ] && fails=$((fails + 1))
done
is "$hung" "0" "no worker hung (8 workers, $secs s)"
is "$fails" "0" "no errno outside the contract"
grep -h BAD "$WORK"/worker*.out | head -5 | sed 's/^/# /'
ops=$(grep -ho "('[a-z]*', [0-9]*)" "$WORK"/worker*.out | awk -F"[ ,)]" '{s+=$3} END {print s}')
diag "$ops operations completed"
is_mounted; ok $? "the daemon is alive and mounted"

# Clean up through the namespace: unmount everything, remove everything.
for d in $(find "$M" -mindepth 1 -name ctl -printf '%h\n' | grep -v "^$M$"); do
	while grep -q '^mounted' "$d/ctl"; do echo unmount > "$d/ctl" || break; done
done
timeout 60 rm -r $(find "$M" -mindepth 1 -maxdepth 1 -type d); ok $? "rm -r of everything"
is "$(jq .device_count "$M/info")" "0" "device_count is 0"
# On dm (dm.blkdiscard on) deleted devices are discarded and deleted by
# the worker after rmdir returned: it must get through them all.
for _ in $(seq 1 1200); do
	[ "$(jq .deferred_deleted_device_count "$M/info")" = 0 ] && break
	sleep 0.1
done
is "$(jq .deferred_deleted_device_count "$M/info")" "0" "nothing pending: the worker finished every deletion"
is "$(awk -v m="$M/" 'index($5, m) == 1' /proc/self/mountinfo | wc -l)" "0" "no device filesystem left mounted"
if [ "$BACKEND" = reflink ]; then
	is "$(losetup -a | grep -c "$S/reflink/images")" "0" "no loop device left on an image"
else
	is "$(dmsetup ls | grep "$(prefix)-" | grep -vc -- '-pool')" "0" "no thin device left active"
fi
# ls -R of the top while a mount is under way.
mkdir "$M/m"
( for _ in $(seq 1 20); do echo mount > "$M/m/ctl"; echo unmount > "$M/m/ctl"; done ) &
w=$!
lshung=0 lsruns=0
while kill -0 $w 2>/dev/null; do
	# Entries may vanish mid-walk (an unmount): only a hang is a failure.
	timeout 30 ls -R "$M" >/dev/null 2>&1
	[ $? -eq 124 ] && lshung=$((lshung + 1))
	lsruns=$((lsruns + 1))
done
wait $w; ok $? "20 mount/unmount cycles, none failing"
is "$lshung" "0" "ls -R during mounts never hung ($lsruns runs)"
stop_daemon; ok $? "stopped"
done_testing
