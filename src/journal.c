/*
 * journal.c - the transactions that keep the metadata files and the pool
 * in step (doc/design.md §4): the open record (written by the base
 * device's creation; an add's record is its device's own file, a delete's
 * its tombstone), the close by the pool's transaction ID, the abandon
 * after an undo, the stop of all changes when an undo fails
 * (need_recovery); and, at start, the roll-forward of interrupted renames
 * and the roll-back of an open transaction or of the adds in flight.
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
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/* ------------------------------------------------------------------ */
/* What a start does with the open transaction                        */

/* -o ro: remember a device the recovery hides instead of rolling back
 * (it is not an orphan). */
static int hide_read_only(struct deviceset *s, uint32_t id)
{
	int r = GROW(s->ro_hidden, s->cap_ro_hidden, s->n_ro_hidden, 4);

	if (r == 0)
		s->ro_hidden[s->n_ro_hidden++] = id;
	return r;
}

/* A record older than the pool is closed: an add does not write the record
 * (its device's file is its record), so the pool moves past it. */
enum ds_txn_action ds_txn_decide(uint64_t pool_tid, uint64_t open_tid)
{
	if (open_tid <= pool_tid)
		return DS_TXN_CLEAN;
	return pool_tid != UINT64_MAX && open_tid == pool_tid + 1 ? DS_TXN_ROLLBACK : DS_TXN_MISMATCH;
}

/* ------------------------------------------------------------------ */
/* Transactions (pool lock held)                                      */

int open_transaction(struct deviceset *s, const char *name, uint32_t id)
{
	struct meta_transaction t = { .open_transaction_id = s->tid + 1, .device_id = id };

	snprintf(t.device_hash, sizeof(t.device_hash), "%s", name);
	return meta_transaction_save(s->meta_dir, &t);
}

int close_transaction(struct deviceset *s)
{
	int r = s->ops->set_transaction_id(s->pool, s->tid, s->tid + 1);

	if (r == 0)
		s->tid++;
	return r;
}

/* Stop taking changes: an undo could not complete, and what is on disk
 * (an open transaction, a roll-forward record) is only safe if the next
 * start is the next thing to touch it. Pool lock held. */
void need_recovery(struct deviceset *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->recovery_reason, sizeof(s->recovery_reason), fmt, ap);
	va_end(ap);
	log_err("pool %s: %s; no more changes are taken until thinfs is restarted, which repairs it",
		s->prefix, s->recovery_reason);
}

/* -EIO (with the reason) once need_recovery() was called; -EROFS under
 * -o ro, where the FUSE mount already refuses these (this is the engine's
 * own guard). Pool lock held. */
int refuse_if_needs_recovery(struct deviceset *s, struct device *d, const char *op)
{
	if (s->opts->read_only)
		return fail(s, d, -EROFS, "%s '%s': thinfs runs read-only (-o ro)", op, d->m.name);
	if (!s->recovery_reason[0])
		return 0;
	return fail(s, d, -EIO, "%s '%s': refused until thinfs is restarted: %s", op, d->m.name,
		    s->recovery_reason);
}

/* Give up an open transaction whose pool change did not happen (or was
 * undone), so a restart does not roll back a device it should keep. */
int abandon_transaction(struct deviceset *s)
{
	struct meta_transaction t = { .open_transaction_id = s->tid };
	int r = meta_transaction_save(s->meta_dir, &t);

	if (r < 0)
		log_err("pool %s: could not reset the open transaction: %s", s->prefix, strerror(-r));
	return r;
}

int save_deviceset(struct deviceset *s)
{
	s->dsm.next_device_id = s->ids.next_id;
	return meta_deviceset_save(s->meta_dir, &s->dsm);
}

/* ------------------------------------------------------------------ */
/* Recovery at start (before any other thread runs)                  */

/* Roll forward a rename a crash interrupted (see ds_rename_device). */
int finish_renames(struct deviceset *s)
{
	bool ro = s->opts->read_only; /* the tree as a finished rename leaves it, in memory only */
	struct device *d, *next;
	int r;

	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_name[i]; d; d = next) {
			struct reparent_arg ra;
			struct device *old;

			next = d->next_name;
			if (!d->m.renamed_from[0])
				continue;
			ra.old_name = d->m.renamed_from;
			ra.new_name = d->m.name;
			ra.r = 0;
			old = find_name(s, d->m.renamed_from);
			/* (A file marked as renamed from itself only loses the
			 * mark: removing "the old file" would remove its own.) */
			if (old && old != d && old->m.device_id == d->m.device_id) {
				r = ro ? 0 : meta_device_remove(s->meta_dir, old->m.name);
				if (r < 0 && r != -ENOENT)
					return r;
				if (next == old)
					next = old->next_name;
				remove_device(s, old);
			}
			for_each_device(s, reparent_one, &ra);
			log_info("%s the interrupted rename of '%s' to '%s'", ro ? "read-only: showing, not writing,"
				 : "completed", ra.old_name, d->m.name);
			d->m.renamed_from[0] = '\0';
			r = ro ? 0 : meta_device_save(s->meta_dir, &d->m);
			if (r < 0 || ra.r < 0)
				return r < 0 ? r : ra.r;
			/* The table changed under the iteration: start over. */
			return finish_renames(s);
		}
	return 0;
}

/* Roll back the open transaction (ds_txn_decide said so: open = pool + 1).
 * Only a record this engine's protocol leaves is acted on: the device it
 * names, if it has a file, has the record's ID, and no other device holds
 * that ID. Anything else stops the start, naming what does not match. */
static int rollback(struct deviceset *s, const struct meta_transaction *t, uint64_t pool_tid)
{
	struct device *holder = find_id(s, t->device_id), *d;
	char name[POOL_DEV_NAME_MAX];
	int r;

	/* An older engine's record of a buried device's delete names it
	 * "#ID", which no device name can equal. */
	d = holder && holder->buried ? holder : t->device_hash[0] == '#' ? NULL : find_name(s, t->device_hash);

	if (d && d->m.device_id != t->device_id) {
		log_err("cannot start: the open transaction %" PRIu64 " in %s/transaction-metadata names device '%s' "
			"with ID %" PRIu32 ", but %s/%s has ID %" PRIu32 ": not rolling back", t->open_transaction_id,
			s->meta_dir, t->device_hash, t->device_id, s->meta_dir, d->m.name, d->m.device_id);
		return -EUCLEAN;
	}
	if (holder && holder != d) {
		log_err("cannot start: the open transaction %" PRIu64 " in %s/transaction-metadata names device '%s' "
			"with ID %" PRIu32 ", which %s/%s holds: not rolling back", t->open_transaction_id,
			s->meta_dir, t->device_hash, t->device_id, s->meta_dir, holder->m.name);
		return -EUCLEAN;
	}
	log_info("%s transaction %" PRIu64 " (device '%s', id %" PRIu32 "): the pool is at %" PRIu64,
		 s->opts->read_only ? "read-only: hiding, not rolling back," : "rolling back",
		 t->open_transaction_id, t->device_hash, t->device_id, pool_tid);
	if (s->opts->read_only) {
		r = hide_read_only(s, t->device_id);
		if (r == 0 && d)
			remove_device(s, d);
		return r;
	}
	dm_name_of(s, t->device_id, name, sizeof(name));
	s->ops->deactivate(s->pool, name, t->device_id, false);
	r = s->ops->delete_thin(s->pool, t->device_id);
	if (r < 0 && r != -ENOENT) {
		log_err("rollback: cannot delete pool device %" PRIu32 ": %s", t->device_id, strerror(-r));
		return r;
	}
	if (d) {
		r = remove_device_file(s, d);
		if (r < 0 && r != -ENOENT)
			return r;
		remove_device(s, d);
	}
	idmap_mark_free(&s->ids, t->device_id);
	s->tid = pool_tid;
	return abandon_transaction(s);
}

/* Does a device made after d name d as its parent? A device that names
 * it but is older had a parent of that name that is gone (shown at the
 * top), and the new device only took the name. */
static bool has_later_children(struct deviceset *s, const struct device *d)
{
	for (size_t i = 0; i < s->n_buckets; i++)
		for (struct device *c = s->by_id[i]; c; c = c->next_id)
			if (!c->buried && c != d && strcmp(c->m.parent, d->m.name) == 0 &&
			    c->m.created >= d->m.created)
				return true;
	return false;
}

/* A device file further ahead of the pool than an add in flight leaves
 * means the pool was reset or restored, or the metadata is another
 * pool's: nothing may be rolled back then, not even the open record. */
static int refuse_files_ahead(struct deviceset *s, uint64_t pool_tid)
{
	if (pool_tid == UINT64_MAX)
		return 0;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (struct device *d = s->by_id[i]; d; d = d->next_id)
			if (d->m.transaction_id > pool_tid + 1) {
				log_err("cannot start: %s/%s records transaction %" PRIu64 ", but the pool is at %"
					PRIu64 ": this metadata does not belong to this pool, or the pool was reset "
					"or restored. Nothing was changed", d->buried ? s->deleted_dir : s->meta_dir,
					d->m.name, d->m.transaction_id, pool_tid);
				return -EUCLEAN;
			}
	return 0;
}

/* The adds a crash interrupted: each one's device file, written before
 * the pool was asked, holds the pool's transaction ID + 1 until its group
 * closes by setting the pool's ID (doc/design.md §4). Only what the
 * protocol leaves is acted on: such files of new devices, none the base,
 * none buried, none named as parent by a device made after it (an add in
 * flight has no children). Anything else stops the start, naming the
 * file: -EUCLEAN. *out (caller frees) lists the adds to roll back, *n of
 * them. Device skip_id is left out of the search. */
static int find_unfinished_adds(struct deviceset *s, uint64_t pool_tid, uint32_t skip_id, struct device ***out,
				size_t *n)
{
	struct device **list = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	*out = NULL;
	*n = 0;
	if (pool_tid == UINT64_MAX)
		return 0;
	for (size_t i = 0; i < s->n_buckets && r == 0; i++)
		for (struct device *d = s->by_id[i]; d && r == 0; d = d->next_id) {
			if (d->buried || d->m.transaction_id != pool_tid + 1 || d->m.device_id == skip_id)
				continue;
			if (is_base(d) || has_later_children(s, d)) {
				log_err("cannot start: %s/%s records transaction %" PRIu64 ", one past the pool's, "
					"but it is %s: an interrupted add leaves such files of new devices only; "
					"not rolling back", s->meta_dir, d->m.name, d->m.transaction_id,
					is_base(d) ? "the base device" : "a parent");
				r = -EUCLEAN;
			} else {
				r = GROW(list, cap, count, 4);
				if (r == 0)
					list[count++] = d;
			}
		}
	if (r < 0) {
		free(list);
		return r;
	}
	*out = list;
	*n = count;
	return 0;
}

/* Roll back an add find_unfinished_adds found: its pool device first
 * (already gone is fine), then its file, then its ID. */
static int rollback_unfinished_add(struct deviceset *s, struct device *found, uint64_t pool_tid)
{
	char name[POOL_DEV_NAME_MAX];
	int r;

	log_info("%s the interrupted add of device '%s' (id %" PRIu32 "): the pool is at transaction %" PRIu64,
		 s->opts->read_only ? "read-only: hiding, not rolling back," : "rolling back", found->m.name,
		 found->m.device_id, pool_tid);
	if (s->opts->read_only) {
		r = hide_read_only(s, found->m.device_id);
		if (r == 0)
			remove_device(s, found);
		return r;
	}
	dm_name_of(s, found->m.device_id, name, sizeof(name));
	s->ops->deactivate(s->pool, name, found->m.device_id, false);
	r = s->ops->delete_thin(s->pool, found->m.device_id);
	if (r < 0 && r != -ENOENT) {
		log_err("rollback: cannot delete pool device %" PRIu32 ": %s", found->m.device_id, strerror(-r));
		return r;
	}
	r = remove_device_file(s, found);
	if (r < 0 && r != -ENOENT)
		return r;
	idmap_mark_free(&s->ids, found->m.device_id);
	remove_device(s, found);
	return 0;
}

int recover_transaction(struct deviceset *s)
{
	enum ds_txn_action action = DS_TXN_CLEAN;
	struct meta_transaction t;
	struct device **adds = NULL;
	size_t n_adds = 0;
	uint64_t pool_tid;
	bool have_record;
	int r;

	r = s->ops->get_transaction_id(s->pool, &pool_tid);
	if (r < 0)
		return r;
	s->tid = pool_tid;
	r = meta_transaction_load(s->meta_dir, &t);
	if (r < 0 && r != -ENOENT)
		return r;
	have_record = r == 0;
	if (have_record)
		action = ds_txn_decide(pool_tid, t.open_transaction_id);
	if (action == DS_TXN_MISMATCH) {
		log_err("cannot start: the pool's transaction ID is %" PRIu64 " but %s/transaction-metadata records "
			"%" PRIu64 " (device '%s'); an interrupted change leaves exactly one more than the pool: "
			"this metadata does not belong to this pool, or the pool was reset or restored. "
			"Nothing was changed", pool_tid, s->meta_dir, t.open_transaction_id, t.device_hash);
		return -EUCLEAN;
	}
	/* Every refusal comes before anything is rolled back. The device an
	 * open record names (a base made, or an add of an older thinfs, in
	 * flight) is the record's to roll back; its rollback removes no
	 * other device, so add stays valid across it. */
	r = refuse_files_ahead(s, pool_tid);
	if (r == 0)
		r = find_unfinished_adds(s, pool_tid, action == DS_TXN_ROLLBACK ? t.device_id : UINT32_MAX, &adds,
					 &n_adds);
	if (r < 0)
		return r;
	if (!have_record && !s->opts->read_only)
		r = abandon_transaction(s);
	else if (action == DS_TXN_ROLLBACK)
		r = rollback(s, &t, pool_tid); /* a base made, or an older engine's change, in flight */
	for (size_t i = 0; i < n_adds && r == 0; i++)
		r = rollback_unfinished_add(s, adds[i], pool_tid);
	free(adds);
	return r;
}
