/*
 * autofs.c - the kernel's autofs on the mount directory (STATEDIR/mnt, or
 * -o ro's own under /run/thinfs), so that only a walk *into*
 * STATEDIR/mnt/ID mounts an unmounted device (doc/design.md §1,
 * "Automount"): readlink and stat of rootfs, readdir, ls -l, tree, find
 * and shell completion mount nothing. It owns the autofs mount (an
 * indirect autofs, protocol v5), its packet pipe and the thread that
 * answers the kernel's "missing" packets by automounting the device.
 *
 * The daemon's process group is autofs's "oz mode": its own mkdir, mount
 * and walks inside the autofs never trigger (the programs it forks stay in
 * its group). The autofs outlives a stop that leaves a device mounted in
 * it, and a crash; a start takes it over through /dev/autofs (catatonic,
 * then a new pipe), as automount(8) does. Without autofs in the kernel the
 * engine goes on without it: rootfs's readlink automounts (fuse-ops.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/auto_dev-ioctl.h>
#include <linux/auto_fs.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "metadata.h"

#ifndef AUTOFS_SUPER_MAGIC
#define AUTOFS_SUPER_MAGIC 0x0187
#endif
#define AUTOFS_CONTROL "/dev/autofs"

struct ds_autofs {
	int root_fd;      /* the autofs's root, from AUTOFS_DEV_IOCTL_OPENMOUNT */
	int pipe_fd;      /* the packet pipe's read end; -1 before the start */
	pthread_t thread; /* reads pipe_fd; running while started */
	bool started;
};

/* One /dev/autofs command on the autofs's root fd (ioctlfd), with an
 * optional path; io (may be NULL) holds the command's parameters and gets
 * the answer. 0 or a negative errno. */
static int dev_ioctl(unsigned long cmd, int ioctlfd, const char *path, struct autofs_dev_ioctl *io)
{
	const size_t args = offsetof(struct autofs_dev_ioctl, openmount);
	size_t len = sizeof(struct autofs_dev_ioctl) + (path ? strlen(path) + 1 : 0);
	struct autofs_dev_ioctl *p = calloc(1, len);
	int fd, r = 0;

	if (!p)
		return -ENOMEM;
	init_autofs_dev_ioctl(p);
	p->size = (__u32)len;
	p->ioctlfd = ioctlfd;
	if (io)
		memcpy((char *)p + args, (char *)io + args, sizeof(*io) - args);
	if (path)
		strcpy(p->path, path);
	fd = open(AUTOFS_CONTROL, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, cmd, p) < 0)
		r = -errno;
	else if (io)
		*io = *p;
	if (fd >= 0)
		close(fd);
	free(p);
	return r;
}

/* mountinfo's octal escapes (\040 for a space...), undone in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = '\0';
}

/* Does anything have a mount below dir? (/proc/self/mountinfo, field 5) */
static bool has_mounts_below(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, mp[4097]; /* PATH_MAX and its NUL */
	size_t cap = 0, n = strlen(dir);
	bool found = false;

	if (!f)
		return true; /* cannot tell: do not cover anything */
	while (!found && getline(&line, &cap, f) > 0)
		if (sscanf(line, "%*s %*s %*s %*s %4096s", mp) == 1) {
			unescape(mp);
			found = strncmp(mp, dir, n) == 0 && mp[n] == '/';
		}
	free(line);
	fclose(f);
	return found;
}

/* Mount a new autofs on dir; its pipe is closed at once (connect_pipe
 * gives it the daemon's). */
static int mount_autofs(const char *dir)
{
	char opts[128];
	int p[2], r = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* No pgrp=: the caller's (a process started by the kernel may be
	 * in group 0, which pgrp= cannot name). */
	snprintf(opts, sizeof(opts), "fd=%d,minproto=5,maxproto=5,indirect", p[1]);
	if (mount("thinfs", dir, "autofs", MS_NOSUID | MS_NODEV, opts) < 0)
		r = -errno;
	close(p[0]);
	close(p[1]);
	return r;
}

/* Make the autofs answer to a new pipe and to this process's group (oz
 * mode): catatonic first (SETPIPEFD wants it; whatever waits on the old
 * pipe gets ENOENT), then the pipe's write end to the kernel. The read
 * end replaces a->pipe_fd. *call: the call that failed. */
static int connect_pipe(struct ds_autofs *a, const char **call)
{
	struct autofs_dev_ioctl io = { 0 };
	int p[2], r;

	*call = AUTOFS_CONTROL ": CATATONIC";
	r = dev_ioctl(AUTOFS_DEV_IOCTL_CATATONIC, a->root_fd, NULL, NULL);
	if (r < 0)
		return r;
	*call = "pipe2";
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*call = AUTOFS_CONTROL ": SETPIPEFD";
	io.setpipefd.pipefd = p[1];
	r = dev_ioctl(AUTOFS_DEV_IOCTL_SETPIPEFD, a->root_fd, NULL, &io);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return r;
	}
	if (a->pipe_fd >= 0)
		close(a->pipe_fd);
	a->pipe_fd = p[0];
	return 0;
}

int autofs_open(struct deviceset *s)
{
	struct autofs_dev_ioctl io = { 0 };
	struct ds_autofs *a = NULL;
	const char *call;
	bool ours = false;
	struct statfs sf;
	struct stat st;
	int r;

	if (statfs(s->mnt_dir, &sf) == 0 && sf.f_type == AUTOFS_SUPER_MAGIC) {
		log_info("autofs on %s left by an earlier run (devices in use are mounted in it): taking it over",
			 s->mnt_dir);
	} else if (has_mounts_below(s->mnt_dir)) {
		log_warn("%s holds mounts of an earlier run that had no autofs there: no autofs this run; "
			 "ls -l and stat of rootfs mount the device", s->mnt_dir);
		goto without;
	} else if (getpgrp() == 0) {
		/* The autofs keeps the process group that mounts it, and the
		 * kernel takes a new pipe (SETPIPEFD, after the fork) only from
		 * a group of that group's pid namespace. A thinfs whose group
		 * lies outside its own pid namespace (started by `unshare
		 * --pid --fork`: getpgrp() is 0) would get an autofs it cannot
		 * serve, which refuses the mount directories of new devices. */
		log_warn("autofs on %s: thinfs's process group is outside its pid namespace: no autofs this run; "
			 "ls -l and stat of rootfs mount the device", s->mnt_dir);
		goto without;
	} else {
		r = mount_autofs(s->mnt_dir);
		if (r == -ENODEV) {
			log_info("kernel has no autofs: ls -l and stat of rootfs mount the device");
			goto without;
		}
		if (r < 0) {
			log_warn("autofs on %s: mount: %s; ls -l and stat of rootfs mount the device", s->mnt_dir,
				 strerror(-r));
			goto without;
		}
		ours = true;
	}
	a = calloc(1, sizeof(*a));
	if (!a || stat(s->mnt_dir, &st) < 0) {
		r = a ? -errno : -ENOMEM;
		log_err("autofs on %s: %s", s->mnt_dir, strerror(-r));
		goto fail;
	}
	/* The root through /dev/autofs: it opens an autofs whatever state
	 * it is in (a killed run's waits on a dead pipe). */
	io.openmount.devid = (__u32)st.st_dev;
	r = dev_ioctl(AUTOFS_DEV_IOCTL_OPENMOUNT, -1, s->mnt_dir, &io);
	if (r < 0) {
		log_err("autofs on %s: %s: open the mount: %s", s->mnt_dir, AUTOFS_CONTROL, strerror(-r));
		goto fail;
	}
	a->root_fd = io.ioctlfd;
	a->pipe_fd = -1;
	/* Ours from now on (a killed run's pipe is dead): the start's own
	 * mkdir and mounts in it are in oz mode (a catatonic autofs refuses
	 * mkdir); a walk by anyone else waits until ds_start_autofs. */
	r = connect_pipe(a, &call);
	if (r < 0) {
		log_err("autofs on %s: take its requests: %s: %s", s->mnt_dir, call, strerror(-r));
		close(a->root_fd);
		goto fail;
	}
	s->autofs = a;
	log_info("autofs on %s: only a walk into a device's rootfs mounts it", s->mnt_dir);
	return 0;
fail:
	free(a);
	/* An autofs of our own that cannot work goes: the start refuses
	 * rather than run half of it. */
	if (ours && umount2(s->mnt_dir, 0) < 0)
		log_warn("autofs on %s: unmount: %s", s->mnt_dir, strerror(errno));
	return r;
without:
	s->autofs = NULL;
	return 0;
}

bool ds_autofs_link(struct deviceset *s, const struct ds_device_info *info)
{
	struct device *d;
	bool known = false;

	/* Without the thread that answers the kernel (ds_start_autofs
	 * failed), no walk would mount: the reader mounts, as without. */
	if (!s->autofs || !s->autofs->started)
		return false;
	/* A layout not known yet: the reader mounts, so that the link is
	 * answered right (a Docker layer's leads into its rootfs/). */
	d = get_device(s, info->name, false);
	if (d) {
		TABLE(s, known = d->layout_known);
		put_device(s, d);
	}
	if (!known)
		return false;
	/* Made once and kept (unmounts leave it): a directory that is not
	 * there would be looked up as a trigger, and a stat would mount.
	 * Failing, a walk still mounts it (the kernel asks for the name). */
	if (mkdir(info->mount_dir, 0755) < 0 && errno != EEXIST)
		log_debug("autofs: mkdir %s: %s", info->mount_dir, strerror(errno));
	return true;
}

/* A walk into STATEDIR/mnt/NAME: automount device ID NAME, 0 if it is
 * mounted now. */
static int answer_missing(struct deviceset *s, const char *name)
{
	char dev_name[DS_NAME_MAX + 1], *end;
	unsigned long id = strtoul(name, &end, 10);
	char rootfs[PATH_MAX];
	struct device *d;
	bool found = false, mounted = false, layer = false;
	struct stat st;
	int r;

	if (end == name || *end || id > UINT32_MAX)
		return -ENOENT;
	/* layer: the link, answered before this mount, led into rootfs/. */
	TABLE(s, d = find_id(s, (uint32_t)id); found = d && !d->buried; layer = found && d->docker_layout;
	      if (found) snprintf(dev_name, sizeof(dev_name), "%s", d->m.name));
	if (!found)
		return -ENOENT;
	r = ds_automount(s, dev_name);
	if (r < 0)
		return r;
	d = get_device(s, dev_name, false);
	if (d) {
		TABLE(s, mounted = d->m.device_id == id && (d->mount_count > 0 || d->automounted));
		put_device(s, d);
	}
	if (!mounted)
		return -ENOENT;
	/* The walk goes on into rootfs/: it must be the filesystem's own
	 * directory, not a symlink made since the layout was seen (a
	 * program in a detached mount) that would lead onto the host. The
	 * next readlink, mounted, checks it again and answers the mount. */
	mount_dir_of(s, (uint32_t)id, rootfs, sizeof(rootfs) - strlen("/rootfs"));
	strcat(rootfs, "/rootfs");
	if (layer && (lstat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode))) {
		log_warn("device '%s': %s is not a directory any more: the walk into it fails", dev_name, rootfs);
		return -ENOENT;
	}
	return 0;
}

/* The thread that answers the kernel: it ends when the autofs goes
 * catatonic (ds_close, or an unmount), which closes the pipe. */
static void *autofs_main(void *arg)
{
	struct deviceset *s = arg;
	struct ds_autofs *a = s->autofs;
	union autofs_v5_packet_union p;
	ssize_t n;

	for (;;) {
		n = read(a->pipe_fd, &p, sizeof(p));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n < sizeof(p.hdr) || p.hdr.proto_version != 5)
			continue;
		if (p.hdr.type == autofs_ptype_missing_indirect) {
			struct autofs_v5_packet *m = &p.v5_packet;

			m->name[m->len < NAME_MAX ? m->len : NAME_MAX] = '\0';
			if (answer_missing(s, m->name) == 0)
				ioctl(a->root_fd, AUTOFS_IOC_READY, m->wait_queue_token);
			else
				ioctl(a->root_fd, AUTOFS_IOC_FAIL, m->wait_queue_token);
		} else if (p.hdr.type == autofs_ptype_expire_indirect) {
			/* Never asked for (the worker expires automounts). */
			ioctl(a->root_fd, AUTOFS_IOC_FAIL, p.v5_packet.wait_queue_token);
		}
	}
	return NULL;
}

int ds_start_autofs(struct deviceset *s)
{
	struct ds_autofs *a = s->autofs;
	const char *call;
	int r;

	if (!a || a->started)
		return 0;
	/* Oz mode is a process group: the daemon's own (it may have forked
	 * to the background since autofs_open), not its caller's (a script
	 * that starts thinfs -f in the background would never trigger a
	 * mount). A group leader already (a shell's job) stays where it is. */
	if (getpgrp() != getpid() && setpgid(0, 0) < 0)
		log_warn("autofs on %s: setpgid: %s; processes in thinfs's process group never trigger a mount",
			 s->mnt_dir, strerror(errno));
	r = connect_pipe(a, &call);
	if (r == 0) {
		call = "pthread_create";
		r = -pthread_create(&a->thread, NULL, autofs_main, s);
	}
	if (r < 0) {
		/* rootfs's readlink mounts, as without an autofs
		 * (ds_autofs_link). Catatonic, the autofs lets every walk
		 * in but refuses mkdir: it goes unless a device is mounted
		 * in it (then only devices with a directory there mount). */
		ioctl(a->root_fd, AUTOFS_IOC_CATATONIC, 0);
		r = fail(s, NULL, r, "autofs on %s: cannot take the kernel's requests: %s: %s; reading a "
			 "rootfs link mounts the device", s->mnt_dir, call, strerror(-r));
		if (umount2(s->mnt_dir, 0) == 0) {
			close(a->pipe_fd);
			close(a->root_fd);
			free(a);
			s->autofs = NULL;
		}
		return r;
	}
	a->started = true;
	return 0;
}

void autofs_stop(struct deviceset *s)
{
	struct ds_autofs *a = s->autofs;

	if (!a || !a->started)
		return;
	/* Catatonic: the kernel lets go of the pipe, the thread reads EOF. */
	if (ioctl(a->root_fd, AUTOFS_IOC_CATATONIC, 0) < 0)
		log_warn("autofs on %s: catatonic: %s", s->mnt_dir, strerror(errno));
	pthread_join(a->thread, NULL);
	close(a->pipe_fd);
	a->pipe_fd = -1;
	a->started = false;
}

void autofs_close(struct deviceset *s)
{
	struct ds_autofs *a = s->autofs;

	if (!a)
		return;
	autofs_stop(s);
	if (a->pipe_fd >= 0) {
		ioctl(a->root_fd, AUTOFS_IOC_CATATONIC, 0);
		close(a->pipe_fd);
	}
	close(a->root_fd);
	free(a);
	s->autofs = NULL;
	/* A device still in use stays mounted in it, and the autofs with
	 * it (catatonic), for the next start to take over. */
	if (umount2(s->mnt_dir, 0) == 0)
		log_info("autofs on %s unmounted", s->mnt_dir);
	else if (errno == EBUSY)
		log_info("autofs on %s stays (a device mounted in it is in use); the next start takes it over",
			 s->mnt_dir);
	else
		log_warn("autofs on %s: unmount: %s", s->mnt_dir, strerror(errno));
}
