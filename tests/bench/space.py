#!/usr/bin/env python3
"""space.py - space at a glance with many devices: `thinfs list` and
du(1) of the mount, printed as a table and one JSON line.

N devices (default 10,000) are made by mkdir at the top (snapshots of
the base, as tests/bench/scale.py makes them), the daemon is restarted
(a cold kernel cache), then, each the first run after the start and the
median of --runs:

  list         thinfs list MOUNTPOINT (the table: read MOUNTPOINT/.devices,
               parse, print)
  list --json  thinfs list --json MOUNTPOINT (read and pass on)
  du -s        du -s MOUNTPOINT (a walk of every device directory)
  du floor     du -s of a tree of the same shape on tmpfs (N directories,
               each with two empty files and a symlink): what du costs
               without FUSE on this machine at this load
  refresh      echo refresh-usage > MOUNTPOINT/ctl (one usage pass over
               every image)

with the daemon's CPU time per run (from /proc) beside the wall time:
on a shared machine the wall time carries the load.

Targets (issue #17, item 12): list <= 200 ms and du -s <= 200 ms at
10,000 devices on the reflink backend (medians), with pass/fail.

usage (root): tests/bench/space.py [--thinfs PATH] [--devices 10000]
    [--runs 5] [--backend reflink] [--opts dm.KEY=VALUE,...] [--keep]
PATH defaults to $THINFS, else build/plain/thinfs. Making 10,000
devices takes 10,000 mkdirs (about 5 ms each on an idle host). Not a
test: it asserts nothing and is not run by make check.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

LIMITS = {"list_ms": 200.0, "du_ms": 200.0}


def runs(cmd, n, daemon=None):
    """Wall ms of each run of cmd, and the daemon's CPU ms of each."""
    wall, cpu = [], []
    for _ in range(n):
        c0 = daemon.cpu_ticks() if daemon else 0
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, shell=isinstance(cmd, str))
        wall.append((time.perf_counter() - t0) * 1000)
        if daemon:
            cpu.append((daemon.cpu_ticks() - c0) * 1000.0 / bl.CLK_TCK)
    r = {"first_ms": round(wall[0], 1), "median_ms": round(statistics.median(wall), 1),
         "max_ms": round(max(wall), 1)}
    if daemon:
        r["daemon_cpu_ms"] = round(statistics.median(cpu), 1)
    return r


def floor_tree(n):
    """A tmpfs tree of the namespace's shape; its path."""
    d = tempfile.mkdtemp(prefix="thinfs-space-floor-", dir="/dev/shm")
    for i in range(n):
        p = os.path.join(d, "d%05d" % i)
        os.mkdir(p)
        for f in ("ctl", "info"):
            open(os.path.join(p, f), "w").close()
        os.symlink("/nonexistent/%d" % i, os.path.join(p, "rootfs"))
    return d


def main():
    ap = bl.parser(__doc__)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    thinfs = bl.check_thinfs(a.thinfs)

    work = bl.Work("thinfs-space", keep=a.keep)
    daemon = work.daemon(thinfs, "backend=%s,%s" % (a.backend, a.opts))
    mnt = work.mnt
    res = {"bench": "space", "backend": a.backend, "thinfs": thinfs, "devices": a.devices,
           "cores": os.cpu_count(), "load_before": bl.loadavg()}
    floor = None
    try:
        daemon.start()
        print("making %d devices ..." % a.devices, file=sys.stderr, flush=True)
        res["made_s"] = round(bl.make_top_devices(mnt, 0, a.devices), 1)
        daemon.stop()
        res["start_s"] = round(daemon.start(), 3)
        res["refresh"] = runs("echo refresh-usage > %s/ctl" % mnt, 1, daemon)
        print("measuring ...", file=sys.stderr, flush=True)
        res["list"] = runs([thinfs, "list", mnt], a.runs, daemon)
        res["list_json"] = runs([thinfs, "list", "--json", mnt], a.runs, daemon)
        res["du"] = runs(["du", "-s", mnt], a.runs, daemon)
        out = subprocess.run([thinfs, "list", "--json", mnt], check=True, stdout=subprocess.PIPE).stdout
        res["listed"] = out.count(b'"name"')
        floor = floor_tree(a.devices)
        res["du_floor"] = runs(["du", "-s", floor], a.runs)
        res["load_after"] = bl.loadavg()
    finally:
        if floor:
            shutil.rmtree(floor, ignore_errors=True)
        ok = daemon.running()
        daemon.stop()
        if not ok:
            print(work.log_tail(), file=sys.stderr)

    print("%d devices (%s backend), %d listed; load %s -> %s" % (
        a.devices, a.backend, res["listed"], res["load_before"], res["load_after"]))
    print("%-12s %9s %9s %9s %14s" % ("", "first ms", "median", "max", "daemon CPU ms"))
    for key, label in (("list", "list"), ("list_json", "list --json"), ("du", "du -s"),
                       ("du_floor", "du floor"), ("refresh", "refresh")):
        r = res[key]
        print("%-12s %9.1f %9.1f %9.1f %14s" % (label, r["first_ms"], r["median_ms"], r["max_ms"],
                                               r.get("daemon_cpu_ms", "-")))
    for key, label, value in (("list_ms", "thinfs list median", res["list"]["median_ms"]),
                              ("du_ms", "du -s median", res["du"]["median_ms"])):
        verdict = "pass" if value <= LIMITS[key] else "FAIL"
        print("target: %s %.1f ms <= %.0f ms: %s" % (label, value, LIMITS[key], verdict))
    res["targets"] = {"list_ms": res["list"]["median_ms"] <= LIMITS["list_ms"],
                      "du_ms": res["du"]["median_ms"] <= LIMITS["du_ms"]}
    bl.print_json(res)


if __name__ == "__main__":
    main()
