/*
 * check.c - do the metadata files and the pool agree? The consistency
 * check (ds_check_consistency) and, at start, the comparison with the
 * pool's devices: deletes the pool finished before a crash, and orphans,
 * pool devices that no file names (doc/design.md §4).
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
/* Consistency                                                        */

/* Is id one of the orphans the start found? */
static bool is_orphan(const struct deviceset *s, uint32_t id)
{
	return s->n_orphans && bsearch(&id, s->orphans, s->n_orphans, sizeof(*s->orphans), idmap_cmp_id);
}

int ds_check_consistency(struct deviceset *s, char *report, size_t len)
{
	struct meta_transaction t;
	uint32_t *ids = NULL;
	size_t n = 0, problems = 0;
	uint64_t pool_tid = 0;
	struct device *d;
	int r;

	if (len)
		report[0] = '\0';
#define PROBLEM(...) do { \
		char msg_[512]; \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__); \
		log_err("check: %s", msg_); \
		if (problems++ == 0 && len) \
			snprintf(report, len, "%s", msg_); \
	} while (0)
	pthread_mutex_lock(&s->lock);
	adds_wait_idle(s);
	r = s->ops->list_ids(s->pool, &ids, &n);
	if (r < 0) {
		PROBLEM("cannot list the pool's devices: %s", strerror(-r));
		goto out;
	}
	/* Orphans the start found are reported again: the check says
	 * whether files and pool agree, and a crash test must see a leak. */
	for (size_t i = 0; i < n; i++)
		if (!find_id(s, ids[i]))
			PROBLEM("pool device %" PRIu32 " has no metadata file%s", ids[i],
				is_orphan(s, ids[i]) ? " (an orphan, named at start)" : "");
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_id[i]; d; d = d->next_id) {
			bool found = n && bsearch(&d->m.device_id, ids, n, sizeof(*ids), idmap_cmp_id) != NULL;

			if (!found)
				PROBLEM("device '%s' (id %" PRIu32 ") has no pool device", d->m.name, d->m.device_id);
			if (!idmap_is_used(&s->ids, d->m.device_id))
				PROBLEM("device '%s' (id %" PRIu32 ") is free in the ID bitmap", d->m.name, d->m.device_id);
			if (find_id(s, d->m.device_id) != d)
				PROBLEM("device '%s' shares id %" PRIu32 " with another", d->m.name, d->m.device_id);
			if (d->m.transaction_id > s->tid)
				PROBLEM("device '%s' records transaction %" PRIu64 ", past the pool's %" PRIu64
					" (an add left open)", d->m.name, d->m.transaction_id, s->tid);
		}
	for (uint32_t id = 0; id <= IDMAP_MAX_ID; id++)
		if (idmap_is_used(&s->ids, id) && !find_id(s, id) && !is_orphan(s, id)) /* said above */
			PROBLEM("device ID %" PRIu32 " is used in the bitmap but by no device (leaked)", id);
	if (s->ops->get_transaction_id(s->pool, &pool_tid) == 0 && pool_tid != s->tid)
		PROBLEM("pool transaction ID %" PRIu64 " differs from the engine's %" PRIu64, pool_tid, s->tid);
	if (meta_transaction_load(s->meta_dir, &t) == 0 && ds_txn_decide(pool_tid, t.open_transaction_id) != DS_TXN_CLEAN)
		PROBLEM("transaction %" PRIu64 " is open (pool at %" PRIu64 ")", t.open_transaction_id, pool_tid);
out:
	pthread_mutex_unlock(&s->lock);
#undef PROBLEM
	free(ids);
	return problems ? -EUCLEAN : 0;
}

/* ------------------------------------------------------------------ */
/* At start: orphans, and deletes the pool finished                   */

/* Buried devices the pool no longer has: a delete interrupted after the
 * pool's step, finished now by removing the tombstone (doc/design.md
 * §4). Under -o ro they stay buried (hidden), as they are. */
static void finish_pool_deletes(struct deviceset *s, const uint32_t *ids, size_t n)
{
	struct device *d, *next;
	int r;

	if (s->opts->read_only)
		return;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_id[i]; d; d = next) {
			next = d->next_id;
			if (!d->buried || (n && bsearch(&d->m.device_id, ids, n, sizeof(*ids), idmap_cmp_id)))
				continue;
			r = remove_device_file(s, d);
			if (r < 0 && r != -ENOENT) {
				log_warn("deleted device %s: its tombstone could not be removed (%s): the worker "
					 "tries again", d->m.name, strerror(-r));
				continue;
			}
			log_info("deleted device %s: its interrupted delete is finished", d->m.name);
			forget_deleted(s, d);
		}
}

/* Compare the files with the pool's devices, listed once (on dm that is
 * thin_dump, a long step with many devices): tombstones whose device is
 * gone are finished; pool devices that no file names (a file lost or
 * removed by hand; every crash of an operation is rolled back or
 * finished before this) are orphans: their data may be all that is left
 * of a device, so they are left as they are, their IDs never handed out
 * again, each named in the log and all counted in the pool's info
 * (doc/design.md §4). A pool that cannot list its devices
 * (dm.thinpooldev, a metadata snapshot already held) starts without the
 * comparison, saying so; its tombstones go to the worker. After
 * count_children. */
void compare_with_pool(struct deviceset *s)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int r;

	r = s->ops->list_ids(s->pool, &ids, &n);
	if (r < 0) {
		log_warn("pool %s: the pool's devices could not be compared with %s (%s): pool devices without "
			 "a file go unnoticed", s->prefix, s->meta_dir, strerror(-r));
		return;
	}
	finish_pool_deletes(s, ids, n);
	for (size_t i = 0; i < n; i++) {
		bool hidden = false;

		for (size_t j = 0; j < s->n_ro_hidden; j++)
			hidden = hidden || s->ro_hidden[j] == ids[i];
		if (find_id(s, ids[i]) || hidden)
			continue;
		log_err("pool %s: pool device %" PRIu32 " has no file in %s (lost or removed by hand): left "
			"as it is, its ID not used again", s->prefix, ids[i], s->meta_dir);
		idmap_mark_used(&s->ids, ids[i]);
		ids[s->n_orphans++] = ids[i];
	}
	if (s->n_orphans) {
		/* ids is sorted, and the orphans keep its order. */
		s->orphans = ids;
		ids = NULL;
	}
	free(ids);
}
