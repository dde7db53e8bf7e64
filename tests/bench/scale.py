#!/usr/bin/env python3
"""scale.py - thinfs with 100 / 1,000 / 10,000 devices, measured in one run,
printed as a table and one JSON line.

For each size N (devices made by mkdir at the top, snapshots of the base,
kept from one size to the next) the daemon is stopped and started again:

  start        exec of thinfs to the mount answering (its ctl looked up)
  pool open    the pool's own activation, in-process (tests/bench/pool-floor
               --open, on the stopped daemon's STATEDIR, median of 3); and,
               from the daemon's log lines as they arrived, when the pool
               was open ("reflink pool: image store ... mounted", dm: "pool")
               and when the engine was ready ("pool ... ready: N devices")
  ls / ls -l   ls(1) of the top (ls -l lists the top's device directories;
               it does not follow rootfs), first run after the start and
               median of --ls-runs; the floor is ls(1) of an empty directory
               (the cost of running ls at all)
  mkdir        median of --mkdirs new snapshots of the base, then removed
  RSS          the daemon's VmRSS after the start and after the ls runs,
               less the empty daemon's (started, listed, the same way)

Targets (from the issue), with pass/fail:
  start <= 1 s beyond the pool's activation (start - pool open)
  ls <= 50 ms, ls -l <= 100 ms (medians)
  mkdir median at the largest N <= 1.2 x at the smallest
  RSS <= 1 KiB per device (after the ls runs)

usage (root): tests/bench/scale.py [--thinfs PATH] [--floor PATH]
    [--sizes 100,1000,10000 | --quick] [--mkdirs 50] [--ls-runs 5]
    [--backend reflink] [--opts dm.KEY=VALUE,...] [--keep]
PATH defaults to $THINFS, else build/plain/thinfs; the floor to
tests/bench/pool-floor next to it (make tests/bench/pool-floor; without it
the pool-open column is left empty). --quick: 100 and 1,000. Making 10,000
devices takes 10,000 mkdirs (about 5 ms each on an idle host). Not a test:
it asserts nothing and is not run by make check.
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

LIMITS = {"beyond_pool_s": 1.0, "ls_ms": 50.0, "ls_l_ms": 100.0, "mkdir_ratio": 1.2, "rss_per_dev_kib": 1.0}


def time_cmd(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def ls_runs(cmd, runs):
    v = [time_cmd(cmd) for _ in range(runs)]
    return {"first_ms": round(v[0], 2), "median_ms": round(statistics.median(v), 2),
            "max_ms": round(max(v), 2), "runs": [round(x, 2) for x in v]}


def pool_open(floor, backend, statedir, opts, n=3):
    if not floor:
        return None
    out = bl.run([floor, "--open", backend, statedir, bl.prefix_of(statedir), str(n), opts])
    d = json.loads(out.splitlines()[-1])
    return round(statistics.median(d["open_us"]) / 1e6, 4)


def measure(daemon, work, floor, a, n, empty_dir):
    mnt = work.mnt
    r = {"devices": n, "load_before": bl.loadavg()}
    daemon.stop()
    r["pool_open_s"] = pool_open(floor, a.backend, work.state, a.opts)
    r["start_s"] = round(daemon.start(), 3)
    pool_line = daemon.line_time(r"image store .* (mounted on|already mounted)|reflink pool: using|"
                                 r"pool:?.* (created|activated|reusing it|taken over)")
    ready_line = daemon.line_time(r"pool .* ready: ")
    r["log_pool_open_s"] = round(pool_line, 3) if pool_line is not None else None
    r["log_ready_s"] = round(ready_line, 3) if ready_line is not None else None
    if r["pool_open_s"] is not None:
        r["beyond_pool_s"] = round(r["start_s"] - r["pool_open_s"], 3)
    r["rss_start_kib"] = daemon.rss_kib()
    listed = len(os.listdir(mnt)) - 3  # ctl, info, .devices
    r["listed"] = listed
    # ls first: the first listing after the start is the cold one.
    r["ls"] = ls_runs(["ls", mnt], a.ls_runs)
    r["ls_l"] = ls_runs(["ls", "-l", mnt], a.ls_runs)
    r["ls_floor"] = ls_runs(["ls", "-l", empty_dir], a.ls_runs)
    r["rss_kib"] = daemon.rss_kib()
    r["hwm_kib"] = bl.vm_kib(daemon.pid, "VmHWM")
    names = ["m%03d" % i for i in range(a.mkdirs)]
    mk = [bl.timed(lambda p=os.path.join(mnt, x): os.mkdir(p)) for x in names]
    rm = [bl.timed(lambda p=os.path.join(mnt, x): os.rmdir(p)) for x in names]
    r["mkdir"] = bl.summary(mk)
    r["rmdir"] = bl.summary(rm)
    r["load_after"] = bl.loadavg()
    return r


def main():
    ap = bl.parser(__doc__)
    ap.add_argument("--floor", default=None)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--quick", action="store_true", help="sizes 100,1000")
    ap.add_argument("--mkdirs", type=int, default=50)
    ap.add_argument("--ls-runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    thinfs = bl.check_thinfs(a.thinfs)
    floor = a.floor or os.path.join(os.path.dirname(thinfs), "tests", "bench", "pool-floor")
    if not os.access(floor, os.X_OK):
        print("scale: no pool-floor at %s: no pool-open floor" % floor, file=sys.stderr)
        floor = None
    sizes = [100, 1000] if a.quick else sorted(int(x) for x in a.sizes.split(",") if x)

    work = bl.Work("thinfs-scale", keep=a.keep)
    empty_dir = os.path.join(work.dir, "empty")
    os.mkdir(empty_dir)
    results = {"bench": "scale", "backend": a.backend, "thinfs": thinfs, "sizes": sizes,
               "load_before": bl.loadavg(), "cores": os.cpu_count()}
    daemon = work.daemon(thinfs, "backend=%s,%s" % (a.backend, a.opts))
    t_all = time.perf_counter()
    rows = []
    try:
        results["first_start_s"] = round(daemon.start(), 3)  # makes the pool and the base
        print("empty daemon ...", file=sys.stderr, flush=True)
        empty = measure(daemon, work, floor, a, 0, empty_dir)
        results["empty"] = empty
        have = 0
        for n in sizes:
            print("making devices %d..%d ..." % (have, n - 1), file=sys.stderr, flush=True)
            made = bl.make_top_devices(work.mnt, have, n)
            have = n
            print("measuring %d ..." % n, file=sys.stderr, flush=True)
            r = measure(daemon, work, floor, a, n, empty_dir)
            r["made_s"] = round(made, 1)
            r["rss_per_dev_kib"] = round((r["rss_kib"] - empty["rss_kib"]) / n, 3)
            r["rss_start_per_dev_kib"] = round((r["rss_start_kib"] - empty["rss_start_kib"]) / n, 3)
            rows.append(r)
    finally:
        ok = daemon.running()
        daemon.stop()
        if not ok:
            print(work.log_tail(), file=sys.stderr)
    results["rows"] = rows
    results["load_after"] = bl.loadavg()
    results["total_s"] = round(time.perf_counter() - t_all, 1)

    def f(v, fmt):
        return fmt % v if v is not None else "-"
    print("thinfs at scale, backend %s, %d cores; load (1/5/15 min) before %s, after %s; %.0f s in all"
          % (a.backend, os.cpu_count(), results["load_before"], results["load_after"], results["total_s"]))
    e = results["empty"]
    print("empty daemon: start %.3f s, pool open %s s, RSS %d KiB after the start, %d KiB after ls; "
          "ls(1) of an empty dir: %.2f ms (floor)" % (e["start_s"], f(e["pool_open_s"], "%.3f"),
                                                      e["rss_start_kib"], e["rss_kib"], e["ls_floor"]["median_ms"]))
    print()
    hdr = ("devices", "start s", "pool open", "beyond", "log:pool", "log:ready", "ls ms", "ls 1st",
           "ls -l ms", "ls -l 1st", "mkdir ms", "mkdir p95", "rmdir ms", "RSS KiB", "KiB/dev", "made s", "load")
    print("%7s %8s %9s %7s %8s %9s %7s %7s %8s %9s %8s %9s %8s %8s %8s %7s  %s" % hdr)
    for r in rows:
        print("%7d %8.3f %9s %7s %8s %9s %7.2f %7.2f %8.2f %9.2f %8.3f %9.3f %8.3f %8d %8.3f %7.1f  %s -> %s" % (
            r["devices"], r["start_s"], f(r["pool_open_s"], "%.3f"), f(r.get("beyond_pool_s"), "%.3f"),
            f(r["log_pool_open_s"], "%.3f"), f(r["log_ready_s"], "%.3f"),
            r["ls"]["median_ms"], r["ls"]["first_ms"], r["ls_l"]["median_ms"], r["ls_l"]["first_ms"],
            r["mkdir"]["median_ms"], r["mkdir"]["p95_ms"], r["rmdir"]["median_ms"],
            r["rss_kib"], r["rss_per_dev_kib"], r["made_s"], r["load_before"], r["load_after"]))
    # Targets.
    targets = {}
    print()
    print("%-44s %10s %10s %6s" % ("target", "measured", "limit", ""))

    def target(key, label, value, limit, le=True):
        ok = value is not None and (value <= limit if le else value >= limit)
        targets[key] = {"value": value, "limit": limit, "pass": ok}
        print("%-44s %10s %10s %6s" % (label, f(value, "%.3f"), "%.3f" % limit, "pass" if ok else "FAIL"))
    for r in rows:
        n = r["devices"]
        target("beyond_pool_s@%d" % n, "start - pool open, s (%d devices)" % n, r.get("beyond_pool_s"),
               LIMITS["beyond_pool_s"])
        target("ls_ms@%d" % n, "ls of the top, ms (%d devices)" % n, r["ls"]["median_ms"], LIMITS["ls_ms"])
        target("ls_l_ms@%d" % n, "ls -l of the top, ms (%d devices)" % n, r["ls_l"]["median_ms"],
               LIMITS["ls_l_ms"])
        target("rss_per_dev_kib@%d" % n, "RSS per device, KiB (%d devices)" % n, r["rss_per_dev_kib"],
               LIMITS["rss_per_dev_kib"])
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        ratio = hi["mkdir"]["median_ms"] / lo["mkdir"]["median_ms"]
        target("mkdir_ratio", "mkdir median at %d / at %d" % (hi["devices"], lo["devices"]), round(ratio, 3),
               LIMITS["mkdir_ratio"])
    results["targets"] = targets
    bl.print_json(results)


if __name__ == "__main__":
    main()
