#!/bin/bash
# notify.t - thinfs under a Type=notify service manager (contrib/
# thinfs.service; doc/thinfs.8, "SERVICE"): with NOTIFY_SOCKET set, a
# start sends READY=1 once the namespace answers, with a STATUS= line
# naming the state directory, mount point and devices, kept up to date
# (every 10 s), and STOPPING=1 at the stop. The service manager is played
# by a Python datagram socket, which checks the namespace the moment
# READY=1 arrives. The unit file passes systemd-analyze verify.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip_all "python3 missing"

sock=$WORK/notify
cat >"$WORK/listen.py" <<'EOF'
import os, socket, sys, time
path, mnt, out = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(120)
with open(out, "w", buffering=1) as f:
    f.write("listening\n")
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            f.write("timeout\n")
            break
        for line in msg.split("\n"):
            f.write("got " + line + "\n")
        if "READY=1" in msg.split("\n"):
            # The namespace must answer now: the device list and its ctl.
            f.write("answers %s\n" % ("yes" if os.path.isfile(mnt + "/ctl") and
                                       os.path.isdir(mnt + "/a") else "no"))
        if "STOPPING=1" in msg.split("\n"):
            break
EOF

start_daemon; ok $? "start"
mkdir "$M/a"; ok $? "a device"
stop_daemon; ok $? "stop"

python3 "$WORK/listen.py" "$sock" "$M" "$WORK/heard" &
lp=$!
for _ in $(seq 100); do grep -q listening "$WORK/heard" 2>/dev/null && break; sleep 0.1; done
NOTIFY_SOCKET=$sock "$THINFS" -f -o "$BASE_OPTS" "$S" "$M" >>"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 600); do grep -q "^answers" "$WORK/heard" && break; sleep 0.1; done
grep -q "^got READY=1$" "$WORK/heard"; ok $? "READY=1 sent"
is "$(grep "^answers" "$WORK/heard")" "answers yes" "  when it comes, the namespace answers"
grep -q "^got STATUS=$S on $M: 1 devices, data [0-9]* of [0-9]* MiB used ($BACKEND)$" "$WORK/heard"
ok $? "  with a STATUS= line: state directory, mount point, devices, data space"
mkdir "$M/b"; ok $? "another device"
for _ in $(seq 150); do grep -q "^got STATUS=.*: 2 devices" "$WORK/heard" && break; sleep 0.1; done
grep -q "^got STATUS=$S on $M: 2 devices, data [0-9]* of [0-9]* MiB used ($BACKEND)$" "$WORK/heard"
ok $? "  the STATUS= line follows within 15 s"
stop_daemon; ok $? "stop"
wait "$lp"
grep -q "^got STOPPING=1$" "$WORK/heard"; ok $? "STOPPING=1 sent at the stop"
grep -q "^got STATUS=stopping" "$WORK/heard"; ok $? "  with its STATUS= line"
sed 's/^/#   /' "$WORK/heard"

unit=${top_srcdir:-.}/contrib/thinfs.service
if command -v systemd-analyze >/dev/null; then
	# Not installed here: the binary and the man page it names.
	out=$(systemd-analyze verify "$unit" 2>&1 | grep -v "/thinfs is not executable\|'man thinfs(8)' failed")
	is "$out" "" "systemd-analyze verify contrib/thinfs.service"
else
	skip 1 "systemd-analyze missing"
fi
grep -q "^Type=notify$" "$unit"; ok $? "the unit is Type=notify"
done_testing
