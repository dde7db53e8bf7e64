/*
 * devtable.c - the engine's device table (doc/design.md §3): devices hashed
 * by name and by ID, references that keep a device alive after it left
 * the table, each device's op_lock, the names the active devices and their
 * mounts get from the ID, the name grammar, and the errors kept on devices
 * and on the pool.
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "docker.h"
#include "fault.h"
#include "fsutil.h"
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/* ------------------------------------------------------------------ */
/* Names, errors                                                      */

static const char *const reserved_names[] = {
	"ctl", "info", "rootfs", "deviceset-metadata", "transaction-metadata", NULL
};

int ds_check_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return -EINVAL;
	if (len > DS_NAME_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return -EINVAL;
	}
	for (int i = 0; reserved_names[i]; i++)
		if (strcmp(name, reserved_names[i]) == 0)
			return -EINVAL;
	return 0;
}

/* Keep text as d's last_error (the pool's for NULL or the base device,
 * whose directory is the top and whose ctl is the pool's; not for an
 * add's scratch record named "base", which has a parent), stamped now.
 * Takes err_lock only. */
void keep_error(struct deviceset *s, struct device *d, const char *text)
{
	if (d && is_base(d) && !d->m.parent[0])
		d = NULL;
	pthread_mutex_lock(&s->err_lock);
	if (d && !d->last_error)
		d->last_error = malloc(DS_ERROR_MAX);
	if (!d || d->last_error) {
		snprintf(d ? d->last_error : s->last_error, DS_ERROR_MAX, "%s", text);
		*(d ? &d->last_error_at : &s->last_error_at) = (int64_t)time(NULL);
	}
	pthread_mutex_unlock(&s->err_lock);
}

void store_error(struct deviceset *s, struct device *d, const char *fmt, va_list ap)
{
	char buf[DS_ERROR_MAX];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_err("%s", buf);
	keep_error(s, d, buf);
}

/* d's place in the namespace, "/a/b/NAME" ("/" for the base device),
 * for messages and the listing. The table lock or the pool lock held.
 * Built from its end, so no depth is too deep but one longer than buf
 * (or a loop of parents, which the start rules out): -ENAMETOOLONG, and
 * buf holds "/NAME". */
int device_path(struct deviceset *s, struct device *d, char *buf, size_t len)
{
	size_t at = len;

	if (len == 0)
		return -ENAMETOOLONG;
	buf[--at] = '\0';
	for (struct device *up = d; up && up->m.parent[0]; up = find_name(s, up->m.parent)) {
		size_t n = strlen(up->m.name);

		if (at < n + 1) {
			snprintf(buf, len, "/%s", d->m.name);
			return -ENAMETOOLONG;
		}
		at -= n;
		memcpy(buf + at, up->m.name, n);
		buf[--at] = '/';
	}
	if (at == len - 1)
		snprintf(buf, len, "/");
	else
		memmove(buf, buf + at, len - at);
	return 0;
}

int fail(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store_error(s, d, fmt, ap);
	va_end(ap);
	return r;
}

int fail_logged(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
{
	char buf[DS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	keep_error(s, d, buf);
	return r;
}

void ds_set_pool_error(struct deviceset *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store_error(s, NULL, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The device table                                                   */

static size_t hash_name(const char *name)
{
	size_t h = 5381;

	while (*name)
		h = h * 33 + (unsigned char)*name++;
	return h;
}

/* find_name, find_id: the table lock held, or the pool lock (every
 * writer of the tables holds both). */
struct device *find_name(struct deviceset *s, const char *name)
{
	struct device *d = s->by_name[hash_name(name) % s->n_buckets];

	while (d && strcmp(d->m.name, name) != 0)
		d = d->next_name;
	return d;
}

struct device *find_id(struct deviceset *s, uint32_t id)
{
	struct device *d = s->by_id[id % s->n_buckets];

	while (d && d->m.device_id != id)
		d = d->next_id;
	return d;
}

/* A buried device (deleted, waiting for the worker) is in the ID table
 * only: its name is free. link_device, unlink_name, unlink_device: the
 * table lock and the pool lock held (or the start, one thread). */
void link_device(struct deviceset *s, struct device *d)
{
	size_t hn = hash_name(d->m.name) % s->n_buckets, hi = d->m.device_id % s->n_buckets;

	if (!d->buried) {
		d->next_name = s->by_name[hn];
		s->by_name[hn] = d;
	}
	d->next_id = s->by_id[hi];
	s->by_id[hi] = d;
}

void unlink_name(struct deviceset *s, struct device *d)
{
	struct device **pp;

	for (pp = &s->by_name[hash_name(d->m.name) % s->n_buckets]; *pp; pp = &(*pp)->next_name)
		if (*pp == d) {
			*pp = d->next_name;
			break;
		}
}

void unlink_device(struct deviceset *s, struct device *d)
{
	struct device **pp;

	if (!d->buried)
		unlink_name(s, d);
	for (pp = &s->by_id[d->m.device_id % s->n_buckets]; *pp; pp = &(*pp)->next_id)
		if (*pp == d) {
			*pp = d->next_id;
			break;
		}
}

/* Grow the tables so chains stay short with 10,000s of devices. */
static int maybe_rehash(struct deviceset *s)
{
	struct device **nn, **ni, *d, *next;
	size_t old = s->n_buckets, nb = old * 4;

	if (s->n_devices < old * 2)
		return 0;
	nn = calloc(nb, sizeof(*nn));
	ni = calloc(nb, sizeof(*ni));
	if (!nn || !ni) {
		free(nn);
		free(ni);
		return 0; /* keep the smaller table: slower, still correct */
	}
	for (size_t i = 0; i < old; i++)
		for (d = s->by_name[i]; d; d = next) {
			next = d->next_name;
			d->next_name = nn[hash_name(d->m.name) % nb];
			nn[hash_name(d->m.name) % nb] = d;
		}
	for (size_t i = 0; i < old; i++)
		for (d = s->by_id[i]; d; d = next) {
			next = d->next_id;
			d->next_id = ni[d->m.device_id % nb];
			ni[d->m.device_id % nb] = d;
		}
	free(s->by_name);
	free(s->by_id);
	s->by_name = nn;
	s->by_id = ni;
	s->n_buckets = nb;
	return 0;
}

struct device *device_new(const struct meta_device *m)
{
	struct device *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->m = *m;
	pthread_mutex_init(&d->op_lock, NULL);
	return d;
}

void device_free(struct device *d)
{
	free(d->last_error);
	free(d->held);
	pthread_mutex_destroy(&d->op_lock);
	free(d);
}

/* Pool lock held (or the start, single-threaded) for these two. */
void insert_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	link_device(s, d);
	s->n_devices++;
	maybe_rehash(s);
	pthread_mutex_unlock(&s->table_lock);
}

/* Take d out of the tables; freed at its last put. */
void remove_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	unlink_device(s, d);
	s->n_devices--;
	d->removed = true;
	if (d->refs == 0)
		device_free(d);
	pthread_mutex_unlock(&s->table_lock);
}

/* A referenced visible device by name (base included), or NULL. */
struct device *get_device(struct deviceset *s, const char *name, bool include_deleted)
{
	struct device *d;

	pthread_mutex_lock(&s->table_lock);
	d = name ? find_name(s, name) : NULL;
	if (d && d->m.deleted && !include_deleted)
		d = NULL;
	if (d)
		d->refs++;
	pthread_mutex_unlock(&s->table_lock);
	return d;
}

void put_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	if (--d->refs == 0 && d->removed)
		device_free(d);
	pthread_mutex_unlock(&s->table_lock);
}

void for_each_device(struct deviceset *s, void (*fn)(struct deviceset *, struct device *, void *),
			    void *arg)
{
	struct device *d, *next;

	/* By ID: buried devices are in that table only. */
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_id[i]; d; d = next) {
			next = d->next_id;
			fn(s, d, arg);
		}
}

/* Take d's op_lock for a long operation. false if d was deleted while
 * the caller waited for it (the caller then answers -ENOENT). */
bool lock_op(struct deviceset *s, struct device *d)
{
	bool alive;

	pthread_mutex_lock(&d->op_lock);
	pthread_mutex_lock(&s->table_lock);
	alive = !d->removed && !d->m.deleted;
	pthread_mutex_unlock(&s->table_lock);
	if (!alive)
		pthread_mutex_unlock(&d->op_lock);
	return alive;
}

void unlock_op(struct device *d)
{
	pthread_mutex_unlock(&d->op_lock);
}

/* The active device's name: PREFIX-ID. By ID, so no device name can equal
 * the pool's own dm name (PREFIX-pool) or outgrow DM_NAME_LEN, and a
 * rename touches only the metadata (doc/design.md §5). */
void dm_name_of(struct deviceset *s, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%" PRIu32, s->prefix, id);
}

/* Where a device's filesystem is mounted: STATEDIR/mnt/ID, outside the
 * FUSE tree, named by ID so a rename does not move it. */
void mount_dir_of(struct deviceset *s, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu32, s->mnt_dir, id);
}

bool is_base(const struct device *d)
{
	return strcmp(d->m.name, DS_BASE_NAME) == 0;
}
