#!/usr/bin/env python3
"""bench-thinfs.py - thinfs benchmarks of DESIGN section 6, measured side by
side in one run, printed as a table and one JSON line.

  snapshot (mkdir) and delete (rmdir) latency on the FUSE namespace,
      against the bare pool operations the engine needs (pool-floor);
  ctl mount latency, and the first walk through an unmounted device's
      rootfs/ (automount), against activate + mount(2) in-process
      (pool-floor --mount) and activating and mounting by hand;
  start time and daemon memory with DEVICES devices;
  sequential I/O on rootfs/, against a sibling snapshot mounted directly.

usage (root): tests/bench/bench-thinfs.py [--thinfs PATH] [--build DIR]
              [--backend reflink|dm] [--count 200] [--devices 10000] [--io-mib 512]
PATH defaults to $THINFS, else BUILD/thinfs; BUILD (for tests/bench/pool-floor:
make tests/bench/pool-floor) to PATH's directory, else build/plain.
Not a test: it asserts nothing and is not run by make check.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


ROUNDS = 5    # floor and namespace measured in this many alternating rounds
MOUNTS = 20   # ctl mounts, automounts and mount floors, in all


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def summary(values_us):
    return {"median_ms": round(statistics.median(values_us) / 1000, 3),
            "p95_ms": round(pct(values_us, 95) / 1000, 3), "n": len(values_us)}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e6


class Daemon:
    def __init__(self, thinfs, statedir, mnt, opts):
        self.cmd = [thinfs, "-f", "-o", opts, statedir, mnt]
        self.mnt = mnt
        self.proc = None
        self.log = open(os.path.join(os.path.dirname(statedir), "thinfs.log"), "a")

    def mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == self.mnt for line in f)

    def start(self):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=self.log)
        while not self.mounted():
            if self.proc.poll() is not None:
                sys.exit("thinfs exited at start; see its log")
            if time.perf_counter() - t0 > 600:
                sys.exit("thinfs did not mount within 600 s")
            time.sleep(0.005)
        os.listdir(self.mnt)
        return time.perf_counter() - t0

    def memory_kib(self):
        fields = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=600)


def write_ctl(path, cmd):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, cmd.encode())
    finally:
        os.close(fd)


def info(path):
    with open(path) as f:
        return json.load(f)


def run(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout.strip()


def activate_by_hand(backend, statedir, dev_info, pool_info):
    """Activate a device the way an admin would without thinfs; return
    (node, undo)."""
    if backend == "reflink":
        image = os.path.join(pool_info["pool_name"], "images", str(dev_info["device_id"]))
        node = run(["losetup", "--find", "--show", "--direct-io=on", image])
        return node, lambda: run(["losetup", "-d", node])
    name = "thinfs-bench-hand"
    sectors = dev_info["size"] // 512
    pool = "/dev/mapper/" + pool_info["pool_name"]
    run(["dmsetup", "create", name, "--table",
         "0 %d thin %s %d" % (sectors, pool, dev_info["device_id"])])
    run(["dmsetup", "mknodes", name])
    return "/dev/mapper/" + name, lambda: run(["dmsetup", "remove", name])


def dd_mib_s(args):
    out = subprocess.run(["dd"] + args, check=True, stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True).stderr
    m = re.search(r"copied, ([0-9.]+) s", out)
    return float(m.group(1))


def io_pass(directory, mib):
    path = os.path.join(directory, "bench.dat")
    w = dd_mib_s(["if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "conv=fsync"])
    r = dd_mib_s(["if=" + path, "of=/dev/null", "bs=1M", "iflag=direct"])
    os.unlink(path)
    return mib / w, mib / r


def main():
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thinfs", default=os.environ.get("THINFS"))
    ap.add_argument("--build", default=None)
    ap.add_argument("--backend", default="reflink")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--io-mib", type=int, default=512)
    ap.add_argument("--opts", default="dm.loopdatasize=64G,dm.basesize=1G,dm.fs=ext4")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-thinfs: run as root")
    if not a.build:
        a.build = os.path.dirname(os.path.abspath(a.thinfs)) if a.thinfs else os.path.join(top, "build", "plain")
    thinfs = os.path.abspath(a.thinfs or os.path.join(a.build, "thinfs"))
    floor = os.path.join(a.build, "tests", "bench", "pool-floor")
    # Cleanup even on failure: mounts, loop and dm devices below work.
    bw = benchlib.Work("thinfs-bench")
    work = bw.dir
    results = {"backend": a.backend, "count": a.count, "devices": a.devices,
               "thinfs": thinfs, "load_before": benchlib.loadavg()}
    daemon = None
    try:
        # 1 and 2. The floors (bare pool operations, in-process, each
        # round on a fresh pool of its own) and the same operations on the
        # namespace, in ROUNDS alternating rounds: a host whose I/O speed
        # drifts (a VM's disk) moves both sides alike.
        sd, mnt = os.path.join(work, "state"), os.path.join(work, "mnt")
        os.makedirs(sd, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        opts = "backend=%s,%s" % (a.backend, a.opts)
        daemon = Daemon(thinfs, sd, mnt, opts)
        bw.prefixes.add(benchlib.prefix_of(sd))  # dm: its devices, at cleanup
        results["first_start_s"] = round(daemon.start(), 3)
        fl_snap, fl_del, mk, rm = [], [], [], []
        per = max(1, a.count // ROUNDS)
        for k in range(ROUNDS):
            fs = os.path.join(work, "floor-%d" % k)
            os.mkdir(fs)
            fl = json.loads(run([floor, a.backend, fs, str(per), a.opts]).splitlines()[-1])
            fl_snap += fl["snap_us"]
            fl_del += fl["delete_us"]
            names = ["b%d-%05d" % (k, i) for i in range(per)]
            mk += [timed(lambda n=n: os.mkdir(os.path.join(mnt, n))) for n in names]
            rm += [timed(lambda n=n: os.rmdir(os.path.join(mnt, n))) for n in names]
        results["floor_snapshot"] = summary(fl_snap)
        results["floor_delete"] = summary(fl_del)
        results["mkdir"] = summary(mk)
        results["rmdir"] = summary(rm)

        # 3. ctl mount, and the first walk through an unmounted device's
        # rootfs/ (the readlink automounts it read-only before the walk
        # goes on; a fresh device each time, removed afterwards: rmdir
        # takes an unused automount away), against the mount floor
        # (activate + mkdir + mount(2), rw of one device, ro of fresh
        # snapshots), alternating as above; then activating and mounting
        # by hand.
        os.mkdir(os.path.join(mnt, "m"))
        ctl = os.path.join(mnt, "m", "ctl")
        fl_mount, fl_mount_ro, fl_unmount, mounts, unmounts, walks = [], [], [], [], [], []
        per = max(1, MOUNTS // ROUNDS)
        for k in range(ROUNDS):
            fs = os.path.join(work, "floor-mount-%d" % k)
            os.mkdir(fs)
            fl = json.loads(run([floor, "--mount", a.backend, fs, str(per), a.opts]).splitlines()[-1])
            fl_mount += fl["mount_us"]
            fl_mount_ro += fl["mount_ro_us"]
            fl_unmount += fl["unmount_us"]
            for _ in range(per):
                mounts.append(timed(lambda: write_ctl(ctl, "mount")))
                unmounts.append(timed(lambda: write_ctl(ctl, "unmount")))
            autos = ["a%d-%02d" % (k, i) for i in range(per)]
            for n in autos:
                os.mkdir(os.path.join(mnt, n))
            walks += [timed(lambda n=n: os.stat(os.path.join(mnt, n, "rootfs") + "/")) for n in autos]
            with open(os.path.join(mnt, autos[0], "ctl")) as f:
                results["automount_ctl"] = f.readline().strip()
            for n in autos:
                os.rmdir(os.path.join(mnt, n))
        results["floor_mount"] = summary(fl_mount)
        results["floor_mount_ro"] = summary(fl_mount_ro)
        results["floor_unmount"] = summary(fl_unmount)
        results["ctl_mount"] = summary(mounts)
        results["ctl_unmount"] = summary(unmounts)
        results["automount_walk"] = summary(walks)
        dev, pool = info(os.path.join(mnt, "m", "info")), info(os.path.join(mnt, "info"))
        hand_dir = os.path.join(work, "hand")
        os.mkdir(hand_dir)
        hand = []
        for _ in range(20):
            t0 = time.perf_counter()
            node, undo = activate_by_hand(a.backend, sd, dev, pool)
            run(["mount", node, hand_dir])
            hand.append((time.perf_counter() - t0) * 1e6)
            run(["umount", hand_dir])
            undo()
        results["hand_mount"] = summary(hand)

        # 4. I/O through rootfs/ against a device mounted directly. Each
        # pass writes into a fresh snapshot of the base, so each pays the
        # same copy-on-write. The first writes into a new store also pay
        # for allocating the backing file, so one untimed pass warms it up,
        # and the passes run thinfs, hand, hand, thinfs (each side's mean).
        def thinfs_pass(name):
            c = os.path.join(mnt, name, "ctl")
            write_ctl(c, "mount")
            try:
                return io_pass(os.path.join(mnt, name, "rootfs"), a.io_mib)
            finally:
                write_ctl(c, "unmount")

        def hand_pass(name):
            node, undo = activate_by_hand(a.backend, sd, info(os.path.join(mnt, name, "info")), pool)
            run(["mount", node, hand_dir])
            try:
                return io_pass(hand_dir, a.io_mib)
            finally:
                run(["umount", hand_dir])
                undo()

        order = [("warm", thinfs_pass), ("t1", thinfs_pass), ("h1", hand_pass),
                 ("h2", hand_pass), ("t2", thinfs_pass)]
        io = {}
        for name, fn in order:
            os.mkdir(os.path.join(mnt, "io-" + name))
            io[name] = fn("io-" + name)
        rw, rr = [(x + y) / 2 for x, y in zip(io["t1"], io["t2"])]
        dw, dr = [(x + y) / 2 for x, y in zip(io["h1"], io["h2"])]
        results["io_mib_s"] = {"rootfs_write": round(rw, 1), "rootfs_read": round(rr, 1),
                               "direct_write": round(dw, 1), "direct_read": round(dr, 1)}

        # 5. Start time and memory with many devices.
        results["create_devices_s"] = round(benchlib.make_top_devices(mnt, 0, a.devices), 1)
        daemon.stop()
        results["start_s"] = round(daemon.start(), 3)
        t0 = time.perf_counter()
        listed = len(os.listdir(mnt))
        results["list_top_s"] = round(time.perf_counter() - t0, 3)
        results["listed"] = listed
        rss, hwm = daemon.memory_kib()
        results["rss_kib"], results["hwm_kib"] = rss, hwm
    finally:
        if daemon:
            daemon.stop()
        subprocess.run(["umount", "-l", os.path.join(work, "hand")], stderr=subprocess.DEVNULL)
        bw.cleanup()
    results["load_after"] = benchlib.loadavg()

    r = results
    ratio = lambda x, y: x["median_ms"] / y["median_ms"] if y["median_ms"] else float("nan")
    print("thinfs benchmark, backend %s; load (1/5/15 min) before %s, after %s"
          % (a.backend, r["load_before"], r["load_after"]))
    print("%-40s %12s %12s %10s" % ("operation", "median ms", "p95 ms", "x floor"))
    rows = [("mkdir (snapshot)", r["mkdir"], r["floor_snapshot"]),
            ("  floor: create_snap + set_tid", r["floor_snapshot"], r["floor_snapshot"]),
            ("rmdir (delete)", r["rmdir"], r["floor_delete"]),
            ("  floor: delete + set_tid", r["floor_delete"], r["floor_delete"]),
            ("echo mount > ctl", r["ctl_mount"], r["floor_mount"]),
            ("first walk through rootfs/ (automount)", r["automount_walk"], r["floor_mount_ro"]),
            ("  floor: activate + mount(2)", r["floor_mount"], r["floor_mount"]),
            ("  floor: activate + mount(2) ro", r["floor_mount_ro"], r["floor_mount_ro"]),
            ("  by hand: activate + mount(8)", r["hand_mount"], r["floor_mount"]),
            ("echo unmount > ctl", r["ctl_unmount"], r["floor_unmount"]),
            ("  floor: umount2 + deactivate", r["floor_unmount"], r["floor_unmount"])]
    for name, s, f in rows:
        print("%-40s %12.3f %12.3f %10.2f" % (name, s["median_ms"], s["p95_ms"], ratio(s, f)))
    if r["automount_ctl"] != "automounted":
        print("  (the walk did not automount: ctl read '%s')" % r["automount_ctl"])
    io = r["io_mib_s"]
    print("%-40s %12s %12s" % ("sequential I/O (MiB/s)", "write", "read"))
    print("%-40s %12.1f %12.1f" % ("  rootfs/", io["rootfs_write"], io["rootfs_read"]))
    print("%-40s %12.1f %12.1f" % ("  sibling mounted directly", io["direct_write"], io["direct_read"]))
    print("start with %d devices: %.3f s (first start %.3f s); ls of the top: %.3f s; "
          "daemon RSS %d KiB (peak %d KiB); creating them took %.1f s"
          % (a.devices, r["start_s"], r["first_start_s"], r["list_top_s"],
             r["rss_kib"], r["hwm_kib"], r["create_devices_s"]))
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
