#!/bin/bash
# podman.t - podman run --rootfs NAME/rootfs on a busybox rootfs in a device.
# Flags, for a CI machine:
#   --root/--runroot/--tmpdir under the test's directory: no system storage
#   --network none            no network set-up (none needed)
#   --events-backend file     no journald
#   --cgroup-manager cgroupfs where systemd is not PID 1
#   --ulimit nofile/nproc     podman asks for 1048576 open files by default;
#                             a root without CAP_SYS_RESOURCE cannot raise
#                             its hard limit that far
# With a v1 or hybrid cgroup layout (crun, podman's default runtime, refuses
# hybrid), podman runs in a private mount namespace that has cgroup2 on
# /sys/fs/cgroup, with --cgroups disabled.
# The same command on a plain directory first: if podman cannot run here at
# all, the test skips with its error.
. "${top_srcdir:-.}/tests/clients/lib.sh"
need podman chroot
need_busybox

P=$WORK/podman
mkdir -p "$P/tmp"
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 4096 ] && nofile=4096
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
OPTS=(--root "$P/root" --runroot "$P/runroot" --tmpdir "$P/tmp" --events-backend file)
RUN=(run --rm --network none --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
[ -d /run/systemd/system ] || OPTS+=(--cgroup-manager cgroupfs)
UNSHARE=()
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
	RUN+=(--cgroups disabled)
	UNSHARE=(unshare -m sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" "$@"')
fi
CMD='cat /etc/thinfs-device; id -u; echo from-podman > /root/note; ls /bin/sh'
pod() { timeout 180 "${UNSHARE[@]}" podman "${OPTS[@]}" "${RUN[@]}" --rootfs "$1" /bin/sh -c "$CMD" </dev/null; }

plain_rootfs "$WORK/plain" || skip_all "cannot build a plain busybox rootfs"
out=$(pod "$WORK/plain" 2>"$WORK/plain.err")
[ "$(echo "$out" | head -n 1)" = plain ] || skip_all "podman does not run here even on a plain directory: $(tr '\n' ' ' <"$WORK/plain.err" | cut -c1-200)"
diag "podman's runtime: $(podman "${OPTS[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null)"

start_daemon || skip_all "thinfs did not start"
make_rootfs box; ok $? "a busybox rootfs in device box"

out=$(pod "$M/box/rootfs" 2>"$WORK/pod.err"); st=$?
is "$st:$out" "0:box
0
/bin/sh" "podman run --rootfs NAME/rootfs runs in the device"
[ $st -eq 0 ] || sed 's/^/#   /' "$WORK/pod.err"
is "$(cat "$M/box/rootfs/root/note" 2>&1)" "from-podman" "what the container wrote is in the device"

ctl box unmount; ok $? "the device unmounts after the container exits"
is "$(ctl_state box)" "unmounted" "ctl says unmounted"

stop_daemon; ok $? "daemon stops cleanly"
done_testing
