#!/usr/bin/env python3
"""responsiveness.py - do namespace reads wait behind the pool? (issue
"Never wait behind the pool"). Measured side by side in one run, printed as
tables and one JSON line.

One reader (this process) probes the namespace in rotation, with --gap-ms
between probes, for --seconds in each phase:

  stat info     stat(2) of a device's info (attr timeout 0: a GETATTR each time)
  stat dir      statx(2) of a device's directory with AT_STATX_FORCE_SYNC (the
                kernel would otherwise answer from its 1 s attribute cache)
  lookup miss   stat(2) of a name absent from the top: a LOOKUP each time
                (errors are not cached; present names are, for an hour)
  ls top        listdir of the top (OPENDIR, READDIR(PLUS), RELEASEDIR)
  read info     open + read of a device's info (the device's pool status)

Phases: idle; 4 CPU-bound processes doing no I/O (the scheduling floor, as
many as --cpu); 1, 2, 4, 8 writer processes (--writers), each looping
mkdir + rmdir of a leaf snapshot under a device of its own (--shared-origin:
all under one device). The writers' mkdir+rmdir throughput is counted over
the same window, with the daemon's CPU time (user+sys from /proc/PID/stat),
the writers' own and the whole machine's (/proc/stat, which includes
whatever else runs on the host) per mkdir+rmdir.

Targets (from the issue), printed with pass/fail:
  p99 of each read under 4 writers <= 2 x its p99 under 4 CPU-bound processes
  mkdir+rmdir throughput with 4 writers >= 1.5 x one writer's

usage (root): tests/bench/responsiveness.py [--thinfs PATH] [--seconds 15]
    [--gap-ms 1] [--writers 1,2,4,8] [--cpu 4] [--shared-origin]
    [--backend reflink] [--opts dm.KEY=VALUE,...] [--keep]
PATH defaults to $THINFS, else build/plain/thinfs. The daemon runs on a
scratch STATEDIR under /var/tmp, removed at the end (--keep keeps it, with
thinfs.log). Not a test: it asserts nothing and is not run by make check.
"""
import ctypes
import multiprocessing as mp
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7ff

OPS = ["stat info", "stat dir", "lookup miss", "ls top", "read info"]
P99_LIMIT = 2.0      # p99 under 4 writers / p99 under 4 CPU-bound processes
TPUT_LIMIT = 1.5     # throughput with 4 writers / with 1


def make_statx():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.statx
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    buf = ctypes.create_string_buffer(256)

    def statx_sync(path):
        if fn(AT_FDCWD, path.encode(), AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
              STATX_BASIC_STATS, buf) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
    return statx_sync


def writer(mnt, parent, idx, count, errors, stop):
    k = 0
    while not stop.is_set():
        leaf = os.path.join(mnt, parent, "s%d-%d" % (idx, k))
        k += 1
        try:
            os.mkdir(leaf)
            os.rmdir(leaf)
            count.value += 1
        except OSError as e:
            errors.value += 1
            if errors.value <= 3:
                print("writer %d: %s" % (idx, e), file=sys.stderr)
            time.sleep(0.01)


def spinner(stop):
    x = 0
    while not stop.is_set():
        for i in range(20000):
            x += i


def probes(mnt, dev):
    statx_sync = make_statx()
    info = os.path.join(mnt, dev, "info")
    ddir = os.path.join(mnt, dev)
    miss = os.path.join(mnt, "no-such-device")

    def lookup_miss():
        try:
            os.stat(miss)
        except FileNotFoundError:
            return
        raise RuntimeError("%s exists" % miss)

    def read_info():
        with open(info, "rb") as f:
            f.read()
    return {"stat info": lambda: os.stat(info),
            "stat dir": lambda: statx_sync(ddir),
            "lookup miss": lookup_miss,
            "ls top": lambda: os.listdir(mnt),
            "read info": read_info}


def phase(name, daemon, mnt, fns, seconds, gap, n_writers, n_cpu, parents):
    stop = mp.Event()
    counts = [mp.RawValue("l", 0) for _ in range(n_writers)]
    errors = [mp.RawValue("l", 0) for _ in range(n_writers)]
    procs = [mp.Process(target=writer, args=(mnt, parents[i], i, counts[i], errors[i], stop))
             for i in range(n_writers)]
    procs += [mp.Process(target=spinner, args=(stop,)) for _ in range(n_cpu)]
    load0 = bl.loadavg()
    for p in procs:
        p.start()
    time.sleep(0.5 if procs else 0)  # let them get going
    lat = {op: [] for op in OPS}
    c0 = sum(c.value for c in counts)
    d0, s0 = daemon.cpu_ticks(), bl.system_busy_ticks()
    w0 = sum(bl.proc_cpu_ticks(p.pid) for p in procs[:n_writers])
    t0 = time.perf_counter()
    end = t0 + seconds
    i = 0
    while time.perf_counter() < end:
        op = OPS[i % len(OPS)]
        i += 1
        a = time.perf_counter()
        fns[op]()
        lat[op].append((time.perf_counter() - a) * 1e6)
        if gap:
            time.sleep(gap)
    elapsed = time.perf_counter() - t0
    c1 = sum(c.value for c in counts)
    d1, s1 = daemon.cpu_ticks(), bl.system_busy_ticks()
    w1 = sum(bl.proc_cpu_ticks(p.pid) for p in procs[:n_writers])
    stop.set()
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.terminate()
            p.join(10)
    ops = c1 - c0
    ms = 1000.0 / bl.CLK_TCK
    r = {"phase": name, "writers": n_writers, "cpu_procs": n_cpu, "seconds": round(elapsed, 2),
         "load_before": load0, "load_after": bl.loadavg(),
         "latency": {op: bl.summary(v) for op, v in lat.items()},
         "all_reads": bl.summary([x for v in lat.values() for x in v])}
    if n_writers:
        r.update({"pairs": ops, "pairs_per_s": round(ops / elapsed, 1),
                  "errors": sum(e.value for e in errors),
                  "daemon_cpu_ms_per_op": round((d1 - d0) * ms / ops, 3) if ops else None,
                  "writers_cpu_ms_per_op": round((w1 - w0) * ms / ops, 3) if ops else None,
                  "system_cpu_ms_per_op": round((s1 - s0) * ms / ops, 3) if ops else None})
    r["daemon_cpu_s"] = round((d1 - d0) * ms / 1000, 2)
    r["system_cpu_s"] = round((s1 - s0) * ms / 1000, 2)
    return r


def main():
    ap = bl.parser(__doc__)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--gap-ms", type=float, default=1.0)
    ap.add_argument("--writers", default="1,2,4,8")
    ap.add_argument("--cpu", type=int, default=4)
    ap.add_argument("--shared-origin", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    thinfs = bl.check_thinfs(a.thinfs)
    writer_counts = [int(x) for x in a.writers.split(",") if x]
    mp.set_start_method("fork")

    work = bl.Work("thinfs-resp", keep=a.keep)
    results = {"bench": "responsiveness", "backend": a.backend, "thinfs": thinfs,
               "seconds": a.seconds, "gap_ms": a.gap_ms, "shared_origin": a.shared_origin,
               "load_before": bl.loadavg(), "cores": os.cpu_count()}
    daemon = work.daemon(thinfs, "backend=%s,%s" % (a.backend, a.opts))
    results["start_s"] = round(daemon.start(), 3)
    mnt = work.mnt
    os.mkdir(os.path.join(mnt, "probe"))
    nw = max(writer_counts + [1])
    parents = ["origin"] * nw if a.shared_origin else ["w%d" % i for i in range(nw)]
    for p in sorted(set(parents)):
        os.mkdir(os.path.join(mnt, p))
    fns = probes(mnt, "probe")
    for op in OPS:  # warm up: every path once
        fns[op]()
    plan = [("idle", 0, 0), ("cpu%d" % a.cpu, 0, a.cpu)] + [("w%d" % n, n, 0) for n in writer_counts]
    phases = []
    try:
        for name, nwr, ncpu in plan:
            print("phase %s ..." % name, file=sys.stderr, flush=True)
            phases.append(phase(name, daemon, mnt, fns, a.seconds, a.gap_ms / 1000.0, nwr, ncpu, parents))
    finally:
        results["daemon_exit_ok"] = daemon.running()
        daemon.stop()
        results["load_after"] = bl.loadavg()
        if not results["daemon_exit_ok"]:
            print(work.log_tail(), file=sys.stderr)
    results["phases"] = phases

    by = {p["phase"]: p for p in phases}
    # Tables.
    print("thinfs responsiveness, backend %s, %d cores, %.0f s per phase, %.1f ms between probes%s"
          % (a.backend, os.cpu_count(), a.seconds, a.gap_ms,
             ", writers share one origin" if a.shared_origin else ", each writer under its own device"))
    print("load (1/5/15 min) before %s, after %s" % (results["load_before"], results["load_after"]))
    print()
    print("read latency, p50 / p99 ms (n per op per phase in the JSON)")
    print("%-8s" % "phase" + "".join("%17s" % op for op in OPS) + "%17s" % "all reads" + "  load before -> after")
    for p in phases:
        cells = ["%7.3f /%7.3f" % (p["latency"][op]["p50_ms"], p["latency"][op]["p99_ms"]) for op in OPS]
        cells.append("%7.3f /%7.3f" % (p["all_reads"]["p50_ms"], p["all_reads"]["p99_ms"]))
        print("%-8s" % p["phase"] + "".join("%17s" % c for c in cells)
              + "  %s -> %s" % (p["load_before"], p["load_after"]))
    targets = {}
    w4, c4 = by.get("w4"), by.get("cpu4")
    if w4 and c4:
        print()
        print("target: p99 under 4 writers <= %.1f x p99 under 4 CPU-bound processes" % P99_LIMIT)
        print("%-12s %12s %12s %8s %8s %6s" % ("read", "p99 w4 ms", "p99 cpu4 ms", "ratio", "limit", ""))
        for op in OPS + ["all reads"]:
            x = w4["all_reads"] if op == "all reads" else w4["latency"][op]
            y = c4["all_reads"] if op == "all reads" else c4["latency"][op]
            ratio = x["p99_ms"] / y["p99_ms"] if y["p99_ms"] else float("inf")
            ok = ratio <= P99_LIMIT
            targets["p99_w4_over_cpu4 " + op] = {"ratio": round(ratio, 2), "limit": P99_LIMIT, "pass": ok}
            print("%-12s %12.3f %12.3f %8.2f %8.1f %6s" % (op, x["p99_ms"], y["p99_ms"], ratio, P99_LIMIT,
                                                          "pass" if ok else "FAIL"))
    print()
    print("writers: mkdir+rmdir of a leaf snapshot (CPU ms per mkdir+rmdir; system = the whole host)")
    print("%-8s %10s %10s %10s %12s %12s %12s %7s" % ("writers", "pairs", "pairs/s", "x 1 writer",
                                                      "daemon CPU", "writers CPU", "system CPU", "errors"))
    one = by.get("w1", {}).get("pairs_per_s")
    for p in phases:
        if not p["writers"]:
            continue
        f = lambda v: "%12.3f" % v if v is not None else "%12s" % "-"
        print("%-8d %10d %10.1f %10s %s %s %s %7d" % (
            p["writers"], p["pairs"], p["pairs_per_s"],
            "%.2f" % (p["pairs_per_s"] / one) if one else "-",
            f(p["daemon_cpu_ms_per_op"]), f(p["writers_cpu_ms_per_op"]), f(p["system_cpu_ms_per_op"]),
            p["errors"]))
    if one and w4:
        ratio = w4["pairs_per_s"] / one
        ok = ratio >= TPUT_LIMIT
        targets["throughput_w4_over_w1"] = {"ratio": round(ratio, 2), "limit": TPUT_LIMIT, "pass": ok}
        print()
        print("target: throughput with 4 writers >= %.1f x one writer: %.2f  %s"
              % (TPUT_LIMIT, ratio, "pass" if ok else "FAIL"))
    results["targets"] = targets
    bl.print_json(results)


if __name__ == "__main__":
    main()
