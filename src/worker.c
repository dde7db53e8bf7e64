/*
 * worker.c - the engine's background worker: buried devices discarded and
 * deleted from the pool, automounts expired (doc/design.md §1 and §4),
 * and the space watch: a warning when free space falls under
 * dm.low_space_threshold, dm.autoextend of a loopback data file
 * (doc/design.md §6).
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
#include "elapsed.h"
#include "fault.h"
#include "fsutil.h"
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/* ------------------------------------------------------------------ */
/* Deferred deletion                                                  */

/* References to the devices one worker round deals with, collected
 * under the table lock and worked on without it. */
struct devrefs {
	struct device **d;
	size_t n, cap;
	bool (*want)(const struct device *d);
};

static bool is_automounted(const struct device *d)
{
	return d->automounted;
}

static bool is_buried(const struct device *d)
{
	return d->buried;
}

static void collect(struct deviceset *s, struct device *d, void *arg)
{
	struct devrefs *a = arg;

	(void)s;
	if (!a->want(d))
		return;
	if (GROW(a->d, a->cap, a->n, 16) < 0)
		return; /* this round skips it; the next one tries again */
	d->refs++;
	a->d[a->n++] = d;
}

/* One expiry round, as autofs does it: umount2(MNT_EXPIRE) marks an
 * automount the first time and unmounts it the next time if nothing used
 * it in between. Pool lock held on entry and exit, dropped meanwhile (the
 * op locks come first in the lock order). */
static void expire_automounts(struct deviceset *s)
{
	struct devrefs a = { .want = is_automounted };

	TABLE(s, for_each_device(s, collect, &a));
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < a.n; i++) {
		if (lock_op(s, a.d[i])) {
			drop_automount(s, a.d[i], MNT_EXPIRE);
			unlock_op(a.d[i]);
		}
		put_device(s, a.d[i]);
	}
	free(a.d);
	pthread_mutex_lock(&s->lock);
}

/* Give the buried devices' space back and delete them from the pool.
 * The discard (activate, BLKDISCARD, deactivate: most of a delete's time
 * on a loopback dm pool) runs without the pool lock: nobody else can
 * reach a buried device, and other changes need not wait for it. A device
 * still in use stays for a later round. Pool lock held on entry and exit. */
static void process_buried(struct deviceset *s)
{
	bool discard = options_blk_discard(s->opts) && s->ops->discard;
	struct devrefs a = { .want = is_buried };
	char name[POOL_DEV_NAME_MAX];
	int r;

	/* After need_recovery() what is on disk is the next start's to
	 * settle: nothing more is changed. Under -o ro buried devices stay
	 * as they are, counted as pending. */
	if (s->recovery_reason[0] || s->opts->read_only)
		return;
	TABLE(s, for_each_device(s, collect, &a));
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < a.n; i++) {
		struct device *d = a.d[i];
		char id[DS_NAME_MAX + 1];

		snprintf(id, sizeof(id), "%s", d->m.name);
		r = 0;
		if (discard && !d->discarded) {
			dm_name_of(s, d->m.device_id, name, sizeof(name));
			r = s->ops->discard(s->pool, name, d->m.device_id, d->m.size);
			if (r < 0 && r != -EBUSY && r != -EOPNOTSUPP)
				log_warn("deleted device %s: discard failed (%s); deleting it anyway, its blocks' "
					 "space stays in the data file", d->m.name, strerror(-r));
			d->discarded = r != -EBUSY;
		}
		pthread_mutex_lock(&s->lock);
		if (s->worker_stop) {
			/* The daemon stops: the rest keep their tombstones and
			 * the next start goes on with them. */
			pthread_mutex_unlock(&s->lock);
			for (; i < a.n; i++)
				put_device(s, a.d[i]);
			break;
		}
		if (r != -EBUSY && !d->removed && !s->recovery_reason[0]) {
			r = delete_from_pool(s, d);
			if (r == 0)
				log_info("deleted device %s: gone from the pool", id);
			else if (r != -EBUSY)
				log_err("deleted device %s: %s", id, strerror(-r));
		}
		pthread_mutex_unlock(&s->lock);
		put_device(s, d);
	}
	free(a.d);
	pthread_mutex_lock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* The space watch (pool lock held)                                   */

/* How often the worker looks at the pool's free space. */
#define SPACE_WATCH_SECONDS 5

/* Room kept free on the host filesystem beyond what the pool's sparse
 * files could still take. */
#define AUTOEXTEND_HOST_MARGIN (256ULL << 20)

/* What a sparse file could still take: its size less what it holds. */
static uint64_t unallocated(const char *path)
{
	struct stat st;

	if (!path[0] || stat(path, &st) < 0 || (uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size)
		return 0;
	return (uint64_t)st.st_size - (uint64_t)st.st_blocks * 512;
}

/* How far dm.autoextend grows the data file from its size, within what
 * the host filesystem holding it can still take: the pool's files are
 * sparse, so what counts is what they could come to hold (the data
 * file's growth, and what it and a metadata file beside it hold not yet),
 * plus a margin. 0 when it cannot grow; why in *why. */
static uint64_t autoextend_to(struct deviceset *s, const struct pool_status *ps, const char **why)
{
	char dir[PATH_MAX], *slash;
	struct stat st;
	struct statvfs vfs;
	uint64_t grow, room, owed, to;

	grow = s->opts->autoextend_bytes ? s->opts->autoextend_bytes
					 : ps->data_total / 100 * s->opts->autoextend_percent;
	snprintf(dir, sizeof(dir), "%s", ps->data_file);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (stat(ps->data_file, &st) < 0 || statvfs(dir, &vfs) < 0) {
		*why = "the data file or its directory cannot be examined";
		return 0;
	}
	room = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	owed = unallocated(ps->data_file) + unallocated(ps->metadata_file) + AUTOEXTEND_HOST_MARGIN;
	room = room > owed ? room - owed : 0;
	if (grow > room)
		grow = room;
	to = ((uint64_t)st.st_size + grow) & ~((1ULL << 20) - 1); /* whole MiB */
	if (to <= (uint64_t)st.st_size) {
		*why = "the host filesystem has no room for a larger data file";
		return 0;
	}
	return to;
}

/* Look at the pool's free space: say once when it falls under the
 * threshold (and once when it is back), and grow a loopback data file by
 * dm.autoextend while its data is short. */
static void watch_space(struct deviceset *s)
{
	unsigned pct = s->opts->low_space_threshold;
	struct pool_status st;
	const char *why = NULL;
	uint64_t to, max;
	bool data_low, low;
	int r;

	if (s->ops->status(s->pool, &st) < 0)
		return;
	data_low = space_below(pct, st.data_used, st.data_total);
	if (data_low && (s->opts->autoextend_bytes || s->opts->autoextend_percent)) {
		/* A loop device says the data is a file (dm.datadev: a block
		 * device, which only its owner can grow). */
		to = st.data_loopback[0] ? autoextend_to(s, &st, &why) : 0;
		if (!st.data_loopback[0])
			why = "the pool's data is not a loopback file";
		r = to ? resize_pool_locked(s, to, &max) : -ENOSPC;
		if (r == 0) {
			log_info("pool %s: data space under %u%% free: dm.autoextend grew %s to %" PRIu64 " bytes",
				 s->prefix, pct, st.data_file, to);
			s->autoextend_said = false;
			if (s->ops->status(s->pool, &st) < 0)
				return;
		} else if (!s->autoextend_said) {
			if (r == -E2BIG)
				log_warn("pool %s: dm.autoextend: %" PRIu64 " bytes are more than the metadata space can "
					 "map (%" PRIu64 "); not extended", s->prefix, to, max);
			else if (why)
				log_warn("pool %s: dm.autoextend: %s; not extended", s->prefix, why);
			else
				log_warn("pool %s: dm.autoextend to %" PRIu64 " bytes failed: %s", s->prefix, to,
					 strerror(-r));
			s->autoextend_said = true;
		}
	}
	low = space_below(pct, st.data_used, st.data_total) ||
	      space_below(pct, st.metadata_used, st.metadata_total);
	if (low && !s->space_low)
		log_warn("pool %s: low on space (threshold %u%%): data %" PRIu64 " of %" PRIu64 " bytes used, "
			 "metadata %" PRIu64 " of %" PRIu64, s->prefix, pct, st.data_used, st.data_total,
			 st.metadata_used, st.metadata_total);
	else if (!low && s->space_low)
		log_info("pool %s: free space is back above %u%%", s->prefix, pct);
	s->space_low = low;
}

/* ------------------------------------------------------------------ */
/* Usage: exclusive and shared bytes                                  */

static int set_usage(void *arg, uint32_t dev_id, uint64_t exclusive, uint64_t shared)
{
	struct deviceset *s = arg;
	int64_t now = (int64_t)time(NULL);
	struct device *d;
	bool changed = false, base = false;

	pthread_mutex_lock(&s->table_lock);
	d = find_id(s, dev_id);
	if (d) {
		base = is_base(d);
		changed = d->exclusive_bytes != exclusive || !d->usage_at;
		d->exclusive_bytes = exclusive;
		d->shared_bytes = shared;
		d->usage_at = now;
	}
	pthread_mutex_unlock(&s->table_lock);
	if (changed) {
		pthread_mutex_lock(&s->hook_lock);
		if (s->usage_hook)
			s->usage_hook(s->usage_hook_arg, dev_id, base);
		pthread_mutex_unlock(&s->hook_lock);
	}
	return 0;
}

void ds_set_usage_hook(struct deviceset *s, void (*fn)(void *arg, uint32_t device_id, bool base), void *arg)
{
	pthread_mutex_lock(&s->hook_lock);
	s->usage_hook = fn;
	s->usage_hook_arg = arg;
	pthread_mutex_unlock(&s->hook_lock);
}

/* The backend's figures for every device, applied to the table. Called
 * with the pool lock held, and dropped meanwhile: the read takes seconds
 * on a large pool, and mkdir, mount and automounts take the pool lock
 * (the backend serialises its metadata snapshots itself). */
static void refresh_usage(struct deviceset *s)
{
	struct timespec t0, t1;
	int r;

	atomic_store(&s->usage_tried_at, (int64_t)time(NULL));
	s->usage_passes_started++;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_unlock(&s->lock);
	r = s->ops->usage(s->pool, set_usage, s);
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->usage_result = r < 0 ? r : 0;
	s->usage_passes_done++;
	pthread_cond_broadcast(&s->usage_cond);
	if (r < 0) {
		/* dm.thinpooldev: the metadata device is not known; nothing to
		 * say each time. */
		if (r != -EOPNOTSUPP)
			log_warn("pool %s: the devices' exclusive and shared bytes could not be read: %s",
				 s->prefix, strerror(-r));
		return;
	}
	atomic_store(&s->usage_at, (int64_t)time(NULL));
	log_debug("pool %s: usage of the devices read in %ld ms", s->prefix,
		  ms_between(&t0, &t1));
}

/* The snapshot snap of origin was just made (pool lock held, snap not in
 * the table yet): it maps what its origin mapped and owns none of it, so
 * its figures need no pass. They are as old as the origin's, whose own
 * bytes are now all shared with snap. An origin not looked at yet gives
 * a snapshot of 0 exclusive bytes at once, and a pass for the rest. */
void usage_of_snapshot(struct deviceset *s, struct device *origin, struct device *snap)
{
	bool known;

	pthread_mutex_lock(&s->table_lock);
	known = origin->usage_at != 0;
	snap->exclusive_bytes = 0;
	snap->shared_bytes = known ? origin->exclusive_bytes + origin->shared_bytes : 0;
	snap->usage_at = known ? origin->usage_at : (int64_t)time(NULL);
	origin->shared_bytes += origin->exclusive_bytes;
	origin->exclusive_bytes = 0;
	pthread_mutex_unlock(&s->table_lock);
	if (!known && s->ops->usage && !atomic_exchange(&s->usage_wanted, true))
		pthread_cond_signal(&s->worker_cond);
}

int ds_refresh_usage(struct deviceset *s)
{
	uint64_t want;
	int r;

	if (!s->ops->usage)
		return fail(s, NULL, -EOPNOTSUPP, "refresh-usage: this pool's backend gives no per-device usage");
	pthread_mutex_lock(&s->lock);
	/* A pass under way may have read some images before the caller's
	 * last change: wait for the one after it. */
	want = s->usage_passes_started + 1;
	atomic_store(&s->usage_wanted, true);
	pthread_cond_signal(&s->worker_cond);
	while (s->usage_passes_done < want && s->worker_running && !s->worker_stop)
		pthread_cond_wait(&s->usage_cond, &s->lock);
	r = s->usage_passes_done >= want ? s->usage_result : -ESHUTDOWN;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return fail(s, NULL, r, "refresh-usage: the devices' usage could not be read: %s", strerror(-r));
	return 0;
}

/* An info file is being read: have the worker look at usage if the
 * figures are stale. Never waits: the reader gets the figures there are,
 * with their time. */
void want_usage(struct deviceset *s)
{
	if (!s->ops->usage || (int64_t)time(NULL) - atomic_load(&s->usage_tried_at) < USAGE_MAX_AGE_SECONDS)
		return;
	if (!atomic_exchange(&s->usage_wanted, true))
		pthread_cond_signal(&s->worker_cond);
}

static void *worker_main(void *arg)
{
	struct deviceset *s = arg;
	/* An automount goes after dm.automount_timeout to twice that unused;
	 * the space watch looks at least every SPACE_WATCH_SECONDS. */
	time_t tick = s->opts->automount_timeout < SPACE_WATCH_SECONDS ? (time_t)s->opts->automount_timeout
								       : SPACE_WATCH_SECONDS;
	time_t last_expiry = time(NULL);
	struct timespec until;

	pthread_mutex_lock(&s->lock);
	while (!s->worker_stop) {
		if (s->deferred_count > 0)
			process_buried(s);
		/* A stop asked while process_buried had the lock dropped (for
		 * the discards) signalled nobody: look before going on. */
		if (s->worker_stop)
			break;
		watch_space(s);
		if (atomic_exchange(&s->usage_wanted, false)) {
			refresh_usage(s);
			if (s->worker_stop) /* asked while the lock was dropped */
				break;
		}
		if (s->opts->automount && time(NULL) - last_expiry >= (time_t)s->opts->automount_timeout) {
			last_expiry = time(NULL);
			expire_automounts(s);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += tick;
		pthread_cond_timedwait(&s->worker_cond, &s->lock, &until);
	}
	/* A refresh-usage waiting for a pass that will not come. */
	pthread_cond_broadcast(&s->usage_cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int ds_start_worker(struct deviceset *s)
{
	int r;

	if (s->worker_running)
		return 0;
	/* Figures from the start on: the first round reads them. */
	if (s->ops->usage)
		atomic_store(&s->usage_wanted, true);
	r = -pthread_create(&s->worker, NULL, worker_main, s);
	if (r < 0)
		return fail(s, NULL, r, "cannot start the deferred-deletion worker: %s", strerror(-r));
	s->worker_running = true;
	return 0;
}

void ds_kick_deferred(struct deviceset *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->worker_running)
		pthread_cond_signal(&s->worker_cond);
	else if (s->deferred_count > 0)
		process_buried(s);
	pthread_mutex_unlock(&s->lock);
}
