# errno.sh - errno_of OP ARGS: "OK", or the errno name one system call
# gets, as a user sees it (write: one write(2) of ARG2 to ARG1). Sourced by
# tests/functional/lib.sh and tests/vm/dm-lib.sh: one definition for both.
errno_of() {
	python3 - "$@" <<'PY'
import errno, os, sys
op, *a = sys.argv[1:]
try:
    if op == "write":
        fd = os.open(a[0], os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, a[1].encode())
        finally:
            os.close(fd)
    elif op == "mkdir": os.mkdir(a[0])
    elif op == "rmdir": os.rmdir(a[0])
    elif op == "rename": os.rename(a[0], a[1])
    elif op == "unlink": os.unlink(a[0])
    elif op == "create": open(a[0], "w").close()
    elif op == "read": open(a[0]).read()
    elif op == "stat": os.stat(a[0])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}
