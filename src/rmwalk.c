/*
 * rmwalk.c - the marks of the rm -r walks that met a mounted device (see
 * rmwalk.h); fuse-ops.c decides what they refuse.
 */
#include "rmwalk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static time_t now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

void rmwalk_init(struct rmwalk *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
}

void rmwalk_fini(struct rmwalk *w)
{
	while (w->marks) {
		struct rmwalk_mark *m = w->marks;

		w->marks = m->next;
		free(m);
	}
	pthread_mutex_destroy(&w->lock);
}

/* The whole of a small /proc file into buf; -errno. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

void rmwalk_who_of(pid_t tid, struct rmwalk_who *out)
{
	char path[64], buf[1024];
	const char *p;
	long tgid;

	memset(out, 0, sizeof(*out));
	if (tid <= 0)
		return;
	/* A thread's requests carry its own id: its group is the process. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, "\nTgid:")) ||
	    sscanf(p + 6, "%ld", &tgid) != 1 || tgid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/stat", tgid);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return;
	/* After "(comm)": state is field 3, starttime field 22. */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%" SCNu64, &out->start) != 1)
		return;
	out->tgid = (pid_t)tgid;
}

bool rmwalk_any(struct rmwalk *w)
{
	return __atomic_load_n(&w->n, __ATOMIC_RELAXED) > 0;
}

static bool same(const struct rmwalk_who *a, const struct rmwalk_who *b)
{
	return a->tgid == b->tgid && a->start == b->start;
}

/* Unlink and free the marks idle too long (lock held). */
static void sweep(struct rmwalk *w, time_t now)
{
	struct rmwalk_mark **pp = &w->marks;

	while (*pp) {
		struct rmwalk_mark *m = *pp;

		if (now - m->last > RMWALK_IDLE_SECONDS) {
			*pp = m->next;
			free(m);
			__atomic_store_n(&w->n, w->n - 1, __ATOMIC_RELAXED);
		} else {
			pp = &m->next;
		}
	}
}

int rmwalk_mark(struct rmwalk *w, const struct rmwalk_who *who, const char *top)
{
	time_t now = now_s();
	struct rmwalk_mark *m;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	sweep(w, now);
	for (m = w->marks; m; m = m->next)
		if (same(&m->who, who) && strcmp(m->top, top) == 0)
			break;
	if (!m && (m = calloc(1, sizeof(*m)))) {
		m->who = *who;
		snprintf(m->top, sizeof(m->top), "%s", top);
		m->next = w->marks;
		w->marks = m;
		__atomic_store_n(&w->n, w->n + 1, __ATOMIC_RELAXED);
	}
	if (m)
		m->last = now;
	else
		r = -ENOMEM;
	pthread_mutex_unlock(&w->lock);
	return r;
}

size_t rmwalk_tops(struct rmwalk *w, const struct rmwalk_who *who, char (*tops)[DS_NAME_MAX + 1],
		   size_t max)
{
	time_t now = now_s();
	size_t n = 0;

	pthread_mutex_lock(&w->lock);
	sweep(w, now);
	for (struct rmwalk_mark *m = w->marks; m; m = m->next) {
		if (!same(&m->who, who))
			continue;
		/* Asked about means in use: the walk goes on. */
		m->last = now;
		if (n < max)
			snprintf(tops[n], sizeof(tops[n]), "%s", m->top);
		n++;
	}
	pthread_mutex_unlock(&w->lock);
	return n;
}

void rmwalk_drop(struct rmwalk *w, const struct rmwalk_who *who, const char *top)
{
	struct rmwalk_mark **pp;

	pthread_mutex_lock(&w->lock);
	for (pp = &w->marks; *pp; pp = &(*pp)->next) {
		struct rmwalk_mark *m = *pp;

		if (same(&m->who, who) && strcmp(m->top, top) == 0) {
			*pp = m->next;
			free(m);
			__atomic_store_n(&w->n, w->n - 1, __ATOMIC_RELAXED);
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
}
