#!/usr/bin/env python3
"""chaos-client.py MNT CLIENT SEED SECONDS LOG

One client of tests/functional/chaos.t: random mkdir, rmdir, rename, mount,
unmount, resize and fsynced writes inside mounted devices, on devices named
cCLIENT-K only (clients never touch each other's devices), until SECONDS pass
or the daemon goes away (ENOTCONN: it was killed).

Every operation is logged to LOG before it starts ("B ...") and, when it
returned, as acknowledged ("A ...") or refused ("E ... ERRNO"); each line is
flushed and fsynced before the next step, so the log is what the client was
told. chaos-oracle.py replays the logs against what a restart shows.

  B/A/E mkdir NAME PARENT     (PARENT "-" for the top)
  B/A/E rmdir NAME
  B/A/E rename OLD NEW
  B/A/E mount NAME | unmount NAME
  B/A/E resize NAME BYTES
  B/A/E data NAME FILE MD5    (A: written and fsynced, file and directory)
  BAD OP ERRNO                an errno outside the contract
"""
import errno
import hashlib
import json
import os
import random
import sys
import time

mnt, client, seed, secs, logpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rnd = random.Random(seed)
log = open(logpath, "a")
# Refusals the contract allows for these operations on a busy, changing
# tree; a full pool is ENOSPC.
ALLOWED = {errno.EEXIST, errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY, errno.EINVAL, errno.ENOSPC}
GONE = {errno.ENOTCONN, errno.ECONNABORTED}
prefix = "c%d-" % client
NAMES = int(os.environ.get("CHAOS_NAMES", "6"))  # devices per client at most


def emit(*words):
    log.write(" ".join(str(w) for w in words) + "\n")
    log.flush()
    os.fsync(log.fileno())


def scan():
    """name -> path of this client's devices, from the namespace. Never
    stats a rootfs link: following it automounts the device (os.walk
    does, through DirEntry.is_dir)."""
    found = {}
    todo = [mnt]
    while todo:
        d = todo.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.name == "rootfs" or not e.is_dir(follow_symlinks=False):
                    continue
                todo.append(e.path)
                if e.name.startswith(prefix):
                    found[e.name] = e.path
    return found


def ctl(path, cmd):
    fd = os.open(os.path.join(path, "ctl"), os.O_WRONLY)
    try:
        os.write(fd, cmd.encode())
    finally:
        os.close(fd)


def mount_count(path):
    try:
        with open(os.path.join(path, "ctl")) as f:
            w = f.readline().split()
        return int(w[1]) if w and w[0] == "mounted" else 0
    except (OSError, ValueError, IndexError):
        return 0


def daemon_gone():
    # statvfs, not stat: the kernel answers a stat from its caches for a
    # while after the daemon died. Asked a few times: a kill -9 does not
    # stop the daemon's threads at once, and one may still answer while
    # the reply another was writing came back cut off (EIO).
    # statvfs itself may get EIO (its reply cut off by the kill too):
    # only GONE or a run of answers decides.
    for _ in range(10):
        try:
            os.statvfs(mnt)
        except OSError as e:
            if e.errno in GONE:
                return True
        time.sleep(0.1)
    return False


devs = scan()
mounted = {n: mount_count(p) for n, p in devs.items()}
nfile = 0
end = time.time() + secs
while time.time() < end:
    op = rnd.choice(["mkdir", "mkdir", "rmdir", "rename", "mount", "mount", "unmount",
                     "resize", "data", "data"])
    names = sorted(devs)
    free = [prefix + str(k) for k in range(NAMES) if prefix + str(k) not in devs]
    args = None
    try:
        if op == "mkdir":
            if not free:
                continue
            name = rnd.choice(free)
            parent = rnd.choice(names + ["-", "-"]) if names else "-"
            args = (name, parent)
            emit("B", op, *args)
            os.mkdir(os.path.join(devs[parent] if parent != "-" else mnt, name))
            devs[name] = os.path.join(devs[parent] if parent != "-" else mnt, name)
            mounted[name] = 0
        elif op == "rmdir":
            if not names:
                continue
            name = rnd.choice(names)
            args = (name,)
            emit("B", op, *args)
            os.rmdir(devs[name])
            del devs[name]
            mounted.pop(name, None)
        elif op == "rename":
            if not names or not free:
                continue
            old, new = rnd.choice(names), rnd.choice(free)
            args = (old, new)
            emit("B", op, *args)
            newpath = os.path.join(os.path.dirname(devs[old]), new)
            oldpath = devs[old]
            os.rename(oldpath, newpath)
            # children moved with it
            devs = {(new if n == old else n):
                    (newpath + p[len(oldpath):] if p == oldpath or p.startswith(oldpath + "/") else p)
                    for n, p in devs.items()}
            mounted[new] = mounted.pop(old, 0)
        elif op == "mount":
            if not names:
                continue
            name = rnd.choice(names)
            args = (name,)
            emit("B", op, *args)
            ctl(devs[name], "mount")
            mounted[name] = mounted.get(name, 0) + 1
        elif op == "unmount":
            cand = [n for n in names if mounted.get(n, 0) > 0]
            if not cand:
                continue
            name = rnd.choice(cand)
            args = (name,)
            emit("B", op, *args)
            ctl(devs[name], "unmount")
            mounted[name] -= 1
        elif op == "resize":
            # Unmounted devices only: growing a mounted ext4 needs
            # CAP_SYS_RESOURCE, which containers lack (README).
            cand = [n for n in names if mounted.get(n, 0) == 0]
            if not cand:
                continue
            name = rnd.choice(cand)
            with open(os.path.join(devs[name], "info")) as f:
                size = json.load(f)["size"] + 64 * 1024 * 1024
            args = (name, size)
            emit("B", op, *args)
            ctl(devs[name], "resize %d" % size)
        elif op == "data":
            cand = [n for n in names if mounted.get(n, 0) > 0]
            if not cand:
                continue
            name = rnd.choice(cand)
            nfile += 1
            fname = "f-%d-%d-%d" % (client, seed, nfile)
            body = os.urandom(rnd.choice([4096, 16384, 65536]))
            md5 = hashlib.md5(body).hexdigest()
            args = (name, fname, md5)
            emit("B", op, *args)
            root = os.path.join(devs[name], "rootfs")
            fd = os.open(os.path.join(root, fname), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
        emit("A", op, *args)
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno))
        if e.errno not in GONE and e.errno not in ALLOWED and daemon_gone():
            # A request cut off by the kill can surface as EIO (a read
            # through the page cache): the daemon is gone, not wrong.
            name += "-gone"
            e.errno = errno.ENOTCONN
        if e.errno in GONE:
            emit("E", op, *(args or ()), name)
            break
        if e.errno in ALLOWED:
            emit("E", op, *(args or ()), name)
        else:
            emit("BAD", op, *(args or ()), name)
            emit("E", op, *(args or ()), name)
        # The tree may have changed under a refusal (e.g. rename EBUSY):
        # read it again.
        try:
            devs = scan()
            for n in devs:
                mounted.setdefault(n, 0)
        except OSError as e2:
            if e2.errno in GONE:
                break
log.close()
