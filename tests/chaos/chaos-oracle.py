#!/usr/bin/env python3
"""chaos-oracle.py MNT MODEL CLIENT_LOG...   (CHAOS_MOUNTS_UNKNOWN=1: skip the mount checks)

After a kill -9 and a restart of the daemon: replay the clients' logs of
acknowledged operations (chaos-client.py) over MODEL (what the previous
round left, a JSON file; absent at the first round) and compare with what
the namespace shows now:

  - every device an acknowledged mkdir or rename made exists, under the
    parent it was made under; every device an acknowledged rmdir removed,
    or a rename's old name, is gone; nothing else appears, except what the
    one operation each client had in flight may or may not have done;
  - every file a client wrote and fsynced (acknowledged) reads back with its
    checksum, through the device's rootfs; a snapshot holds its parent's
    files of the moment it was taken;
  - a device with acknowledged mounts outstanding is mounted after the
    restart (adopted), one without is not "mounted";
  - a device's size is at least its last acknowledged resize;
  - no client saw an errno outside the contract (BAD lines).

Prints "not ok"-style findings, one a line, as "FAIL ..." and a summary;
writes the namespace as it is now (with the files still known) to MODEL for
the next round. Exit 1 if anything failed.
"""
import errno
import hashlib
import json
import os
import re
import sys

mnt, model_path, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
ALLOWED = {"EEXIST", "ENOENT", "EBUSY", "ENOTEMPTY", "EINVAL", "ENOSPC"}
NAME = re.compile(r"^c\d+-\d+$")
fails = []
stats = {"acked": 0, "uncertain": 0, "files_checked": 0, "devices": 0}

try:
    with open(model_path) as f:
        devs = json.load(f)
except FileNotFoundError:
    devs = {}
# name -> set of acceptable states: "present", "absent"; names with a doubt
maybe = {}           # name -> (op, args) of the in-flight operation
unknown_mounts = set()
unknown_size = set()


def apply(op, a):
    if op == "mkdir":
        name, parent = a[0], a[1]
        files = dict(devs[parent]["files"]) if parent in devs else {}
        devs[name] = {"parent": parent, "files": files, "size": 0, "mounts": 0}
    elif op == "rmdir":
        devs.pop(a[0], None)
    elif op == "rename":
        old, new = a
        if old in devs:
            devs[new] = devs.pop(old)
        for d in devs.values():
            if d["parent"] == old:
                d["parent"] = new
    elif op == "mount":
        if a[0] in devs:
            devs[a[0]]["mounts"] += 1
    elif op == "unmount":
        if a[0] in devs:
            devs[a[0]]["mounts"] -= 1
    elif op == "resize":
        if a[0] in devs:
            devs[a[0]]["size"] = int(a[1])
    elif op == "data":
        if a[0] in devs:
            devs[a[0]]["files"][a[1]] = a[2]


for path in logs:
    pending = None
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            kind, op, a = w[0], w[1], w[2:]
            if kind == "B":
                pending = (op, a)
            elif kind == "A":
                apply(op, a)
                stats["acked"] += 1
                pending = None
            elif kind == "E":
                if a and a[-1] in ALLOWED:
                    pending = None  # refused: not done
            elif kind == "BAD":
                fails.append("client %s: %s %s: errno outside the contract" % (path, op, " ".join(a)))
    if pending:
        op, a = pending
        stats["uncertain"] += 1
        if op in ("mkdir", "rmdir"):
            maybe[a[0]] = pending
        elif op == "rename" and a[1] in devs:
            # onto a device that exists: it can only fail (EEXIST); the
            # client picked the name from a listing that missed it.
            pass
        elif op == "rename":
            maybe[a[0]] = pending
            maybe[a[1]] = pending
        elif op in ("mount", "unmount"):
            unknown_mounts.add(a[0])
        elif op == "resize":
            unknown_size.add(a[0])
        elif op == "data" and a[0] in devs:
            devs[a[0]]["files"].pop(a[1], None)  # maybe written, maybe not

# What the namespace shows.
seen = {}  # name -> (parent, path)
todo = [mnt]
while todo:  # not os.walk: its is_dir follows rootfs links, which automounts
    root = todo.pop()
    with os.scandir(root) as it:
        for e in it:
            if e.name == "rootfs" or not e.is_dir(follow_symlinks=False):
                continue
            todo.append(e.path)
            if NAME.match(e.name):
                seen[e.name] = (os.path.basename(root) if root != mnt else "-", e.path)


def ctl_state(p):
    try:
        with open(os.path.join(p, "ctl")) as f:
            return f.readline().split()
    except OSError as e:
        return ["error", errno.errorcode.get(e.errno, str(e.errno))]


def rename_pair(name):
    op, a = maybe[name]
    return (a[0], a[1]) if op == "rename" else None


for name, d in sorted(devs.items()):
    if name in maybe:
        continue
    if name not in seen:
        fails.append("device %s (acknowledged) is missing" % name)
        continue
    parent = d["parent"]
    ok_parents = {parent}
    if parent in maybe and rename_pair(parent):
        ok_parents |= set(rename_pair(parent))
    if seen[name][0] not in ok_parents:
        fails.append("device %s is under %s, expected %s" % (name, seen[name][0], parent))
for name in sorted(seen):
    if name not in devs and name not in maybe:
        fails.append("device %s exists but no client made it (leak or lost rmdir)" % name)
for name, (op, a) in sorted(maybe.items()):
    if op == "rename":
        old, new = a
        if name == old and (old in seen) == (new in seen):
            fails.append("rename %s -> %s in flight: %s" % (old, new,
                         "both exist" if old in seen else "neither exists"))

# Data, mounts, sizes of the devices present.
newmodel = {}
for name, (parent, path) in sorted(seen.items()):
    stats["devices"] += 1
    d = devs.get(name)
    if d is None and name in maybe:
        op, a = maybe[name]
        src = a[0] if op == "rename" else None
        d = devs.get(src) if src else None
        if d is None and op == "mkdir":
            d = {"parent": a[1], "files": dict(devs[a[1]]["files"]) if a[1] in devs else {},
                 "size": 0, "mounts": 0}
        if d is None:
            d = {"parent": parent, "files": {}, "size": 0, "mounts": 0}
        d = dict(d, mounts=None)
    st = ctl_state(path)
    cnt = int(st[1]) if len(st) > 1 and st[0] == "mounted" and st[1].isdigit() else 0
    if st and st[0] == "error":
        fails.append("device %s: ctl read fails with %s" % (name, st[1]))
    if d.get("mounts") is not None and name not in unknown_mounts and not os.environ.get("CHAOS_MOUNTS_UNKNOWN"):
        if d["mounts"] > 0 and cnt == 0:
            fails.append("device %s: %d acknowledged mounts outstanding, but ctl reads '%s' after the restart"
                         % (name, d["mounts"], " ".join(st)))
        if d["mounts"] <= 0 and cnt > 0:
            fails.append("device %s: no mount outstanding, but ctl reads '%s'" % (name, " ".join(st)))
    try:
        with open(os.path.join(path, "info")) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        fails.append("device %s: info: %s" % (name, e))
        info = {}
    size = info.get("size", 0)
    if name not in unknown_size and d.get("size", 0) > size:
        fails.append("device %s: size %s, below the acknowledged resize to %d" % (name, size, d["size"]))
    for fname, md5 in sorted(d["files"].items()):
        stats["files_checked"] += 1
        try:
            with open(os.path.join(path, "rootfs", fname), "rb") as f:
                got = hashlib.md5(f.read()).hexdigest()
        except OSError as e:
            got = errno.errorcode.get(e.errno, str(e.errno))
        if got != md5:
            fails.append("device %s: fsynced file %s reads %s, wrote %s" % (name, fname, got, md5))
    newmodel[name] = {"parent": parent, "files": d["files"], "size": size, "mounts": cnt}

with open(model_path + ".tmp", "w") as f:
    json.dump(newmodel, f)
os.replace(model_path + ".tmp", model_path)
for m in fails:
    print("FAIL", m)
print("oracle: %(acked)d acknowledged operations, %(uncertain)d in flight at the kill, "
      "%(devices)d devices, %(files_checked)d fsynced files checked" % stats, "-", len(fails), "failures")
sys.exit(1 if fails else 0)
