"""benchlib.py - what the thinfs benchmarks in tests/bench share: where the
binary is, a daemon on a scratch STATEDIR under /var/tmp whose log lines are
timestamped as they arrive, a cleanup that leaves no mount, loop device or
dm device behind even when the benchmark fails, percentiles, the load, and
CPU time from /proc.

Not a test: nothing here asserts.
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_OPTS = "dm.loopdatasize=64G,dm.basesize=1G,dm.fs=ext4"


def default_thinfs():
    """$THINFS, else build/plain/thinfs under the repository."""
    return os.environ.get("THINFS") or os.path.join(REPO, "build", "plain", "thinfs")


def parser(doc):
    """The argument parser a bench starts from (doc: its module docstring,
    shown by --help): --thinfs, --backend, --opts."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    ap.add_argument("--thinfs", default=default_thinfs())
    ap.add_argument("--backend", default="reflink")
    ap.add_argument("--opts", default=DEFAULT_OPTS)
    return ap


def make_top_devices(mnt, first, end):
    """mkdir MNT/dNNNNN for first <= N < end (snapshots of the base);
    the seconds it took."""
    t0 = time.perf_counter()
    for i in range(first, end):
        os.mkdir(os.path.join(mnt, "d%05d" % i))
    return time.perf_counter() - t0


def check_thinfs(path):
    if os.geteuid() != 0:
        sys.exit("%s: run as root (FUSE, loop devices, mounts)" % os.path.basename(sys.argv[0]))
    if not os.access(path, os.X_OK):
        sys.exit("%s: no thinfs binary at %s (give --thinfs or $THINFS; build one with "
                 "configure && make)" % (os.path.basename(sys.argv[0]), path))
    return os.path.abspath(path)


# Statistics, on lists of microseconds.

def pct(values, p):
    """Nearest-rank percentile (as bench-thinfs.py)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def summary(values_us):
    if not values_us:
        return {"n": 0}
    return {"median_ms": round(statistics.median(values_us) / 1000, 3),
            "p50_ms": round(pct(values_us, 50) / 1000, 3),
            "p95_ms": round(pct(values_us, 95) / 1000, 3),
            "p99_ms": round(pct(values_us, 99) / 1000, 3),
            "max_ms": round(max(values_us) / 1000, 3),
            "n": len(values_us)}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e6


# The machine.

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def system_busy_ticks():
    """Busy CPU time of the whole machine (all but idle and iowait), in ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]


def vm_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == key:
                return int(v.split()[0])
    return None


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw).stdout.strip()


def mountpoints():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# A daemon on a scratch directory.

class Daemon:
    """thinfs -f -o OPTS STATEDIR MNT. Its output goes to LOG, each line
    prefixed by the seconds since the exec when it arrived, and kept in
    self.lines as (seconds, text) for the last start."""

    def __init__(self, thinfs, statedir, mnt, opts, log):
        self.cmd = [thinfs, "-f", "-o", opts, statedir, mnt]
        self.statedir, self.mnt = statedir, mnt
        self.log = open(log, "a")
        self.proc = None
        self.reader = None
        self.lines = []

    @property
    def pid(self):
        return self.proc.pid

    def _read(self, proc, t0, lines):
        for raw in proc.stdout:
            t = time.perf_counter() - t0
            text = raw.decode(errors="replace").rstrip("\n")
            lines.append((t, text))
            self.log.write("%9.4f %s\n" % (t, text))
        self.log.flush()

    def mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == self.mnt and " - fuse.thinfs " in line for line in f)

    def start(self, limit=900):
        """Start; return the seconds from the exec to the mount answering
        (its ctl can be looked up)."""
        self.lines = []
        self.log.write("--- start: %s\n" % " ".join(self.cmd))
        self.log.flush()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, args=(self.proc, t0, self.lines), daemon=True)
        self.reader.start()
        while not (self.mounted() and os.path.exists(os.path.join(self.mnt, "ctl"))):
            if self.proc.poll() is not None:
                self.reader.join(5)
                sys.exit("thinfs exited at start (status %s):\n  %s" % (
                    self.proc.returncode, "\n  ".join(t for _, t in self.lines[-20:])))
            if time.perf_counter() - t0 > limit:
                sys.exit("thinfs did not mount within %d s" % limit)
            time.sleep(0.002)
        return time.perf_counter() - t0

    def line_time(self, pattern):
        """Seconds after the exec at which the first line matching
        pattern arrived, or None."""
        rx = re.compile(pattern)
        for t, text in list(self.lines):
            if rx.search(text):
                return t
        return None

    def cpu_ticks(self):
        return proc_cpu_ticks(self.proc.pid)

    def rss_kib(self):
        return vm_kib(self.proc.pid, "VmRSS")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=600):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.reader:
            self.reader.join(10)
            self.reader = None

    def kill(self):
        if self.running():
            self.proc.kill()
            time.sleep(0.5)
            abort_fuse(self.mnt)
            self.proc.wait(timeout=60)


def abort_fuse(mnt):
    """Cut a hanging FUSE connection (a daemon killed with requests in
    flight), as tests/functional/lib.sh does."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()
            if p[4] == mnt and " - fuse.thinfs " in line:
                minor = p[2].split(":")[1]
                conn = "/sys/fs/fuse/connections/" + minor
                if not os.path.isdir(conn):
                    subprocess.run(["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"],
                                   stderr=subprocess.DEVNULL)
                try:
                    with open(conn + "/abort", "w") as a:
                        a.write("1")
                except OSError:
                    pass


def prefix_of(statedir):
    """The daemon's active device prefix: thinfs-MAJ:MIN-INO of STATEDIR."""
    st = os.stat(statedir)
    return "thinfs-%d:%d-%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


class Work:
    """A scratch directory /var/tmp/PREFIX-XXXXXX with state/ and mnt/,
    and daemons on it. cleanup() (also at exit, on SIGTERM/SIGINT/SIGHUP)
    stops them, unmounts everything below it, removes dm devices of its
    pools, detaches loop devices whose file is below it, and removes it."""

    def __init__(self, prefix, keep=False):
        self.dir = tempfile.mkdtemp(prefix=prefix + "-", dir="/var/tmp")
        os.chmod(self.dir, 0o755)
        self.state = os.path.join(self.dir, "state")
        self.mnt = os.path.join(self.dir, "mnt")
        self.logpath = os.path.join(self.dir, "thinfs.log")
        os.mkdir(self.state)
        os.mkdir(self.mnt)
        self.keep = keep
        self.daemons = []
        self.prefixes = set()
        self.done = False
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        raise SystemExit("%s: signal %d" % (os.path.basename(sys.argv[0]), signum))

    def daemon(self, thinfs, opts, statedir=None, mnt=None):
        d = Daemon(thinfs, statedir or self.state, mnt or self.mnt, opts, self.logpath)
        self.daemons.append(d)
        return d

    def log_tail(self, n=30):
        try:
            with open(self.logpath) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        if self.done:
            return
        self.done = True
        for d in self.daemons:
            try:
                d.stop(timeout=120)
            except Exception:
                d.kill()
        for sd in [d.statedir for d in self.daemons]:
            if os.path.isdir(sd):
                self.prefixes.add(prefix_of(sd))
        for m in sorted((m for m in mountpoints() if m.startswith(self.dir + "/")), reverse=True):
            abort_fuse(m)
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        if shutil.which("dmsetup") and os.path.exists("/dev/mapper/control"):
            out = subprocess.run(["dmsetup", "ls"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True).stdout
            names = [l.split()[0] for l in out.splitlines() if l.strip() and l.split()[0] != "No"]
            for p in self.prefixes:
                for n in sorted(n for n in names if n.startswith(p + "-")):
                    if not n.endswith("-pool"):
                        subprocess.run(["dmsetup", "remove", "-f", n], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                if p + "-pool" in names:
                    subprocess.run(["dmsetup", "remove", "-f", p + "-pool"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        out = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].strip().startswith(self.dir + "/"):
                subprocess.run(["losetup", "-d", parts[0]], stderr=subprocess.DEVNULL)
        if self.keep:
            print("kept %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def print_json(results):
    print(json.dumps(results, sort_keys=True))
