/*
 * test-devtable.c - the engine's device table on its own (src/devtable.c):
 * lookups by name and by ID across the rehashes of a growing table, a
 * buried device found by ID only, references that keep a removed device
 * alive until the last put, get_device hiding devices marked deleted,
 * lock_op refusing a device removed while the caller waited, and the
 * name grammar. No pool, no files: a table as start.c makes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "tap.h"

#define N_DEVICES 5000

static struct device *add(struct deviceset *s, const char *name, uint32_t id, bool buried)
{
	struct meta_device m = { .device_id = id };
	struct device *d;

	snprintf(m.name, sizeof(m.name), "%s", name);
	d = device_new(&m);
	if (d) {
		d->buried = buried;
		insert_device(s, d);
	}
	return d;
}

static void count(struct deviceset *s, struct device *d, void *arg)
{
	(void)s, (void)d;
	++*(size_t *)arg;
}

static void free_one(struct deviceset *s, struct device *d, void *arg)
{
	(void)arg;
	remove_device(s, d);
}

int main(void)
{
	struct deviceset s;
	struct device *d, *held, *buried;
	size_t n = 0, found_name = 0, found_id = 0;
	char name[32];

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.table_lock, NULL);
	pthread_mutex_init(&s.err_lock, NULL);
	s.n_buckets = 4;
	s.by_name = calloc(s.n_buckets, sizeof(*s.by_name));
	s.by_id = calloc(s.n_buckets, sizeof(*s.by_id));
	if (!ok(s.by_name && s.by_id, "a table of 4 buckets"))
		return tap_done();

	for (uint32_t i = 1; i <= N_DEVICES; i++) {
		snprintf(name, sizeof(name), "dev%" PRIu32, i);
		if (!add(&s, name, i * 7, false))
			break;
	}
	is_int((long)s.n_devices, N_DEVICES, "%d devices inserted", N_DEVICES);
	ok(s.n_buckets > 4 && s.n_devices < s.n_buckets * 2, "the table grew (%zu buckets) and chains stay short",
	   s.n_buckets);
	for (uint32_t i = 1; i <= N_DEVICES; i++) {
		snprintf(name, sizeof(name), "dev%" PRIu32, i);
		d = find_name(&s, name);
		found_name += d && d->m.device_id == i * 7;
		d = find_id(&s, i * 7);
		found_id += d && strcmp(d->m.name, name) == 0;
	}
	is_int((long)found_name, N_DEVICES, "every device is found by name after the rehashes");
	is_int((long)found_id, N_DEVICES, "and by ID");
	ok(!find_name(&s, "dev0") && !find_id(&s, 3), "an absent name or ID is not found");

	buried = add(&s, "5", 99991, true);
	ok(buried && find_id(&s, 99991) == buried, "a buried device is found by its ID");
	ok(!find_name(&s, "5"), "its name is free (a device may be called \"5\")");
	ok(add(&s, "5", 99992, false) && find_name(&s, "5")->m.device_id == 99992,
	   "and a live device takes the name");

	held = get_device(&s, "dev10", false);
	ok(held && held->refs == 1, "get_device takes a reference");
	remove_device(&s, held);
	ok(!find_name(&s, "dev10") && !find_id(&s, 70), "a removed device leaves both tables");
	ok(held->removed && strcmp(held->m.name, "dev10") == 0, "a referenced device survives its removal");
	ok(!lock_op(&s, held), "lock_op refuses a device removed while the caller waited");
	put_device(&s, held); /* the last reference frees it (ASan would see a leak or a double free) */

	d = find_name(&s, "dev11");
	d->m.deleted = true;
	ok(!get_device(&s, "dev11", false), "get_device hides a device marked deleted");
	held = get_device(&s, "dev11", true);
	ok(held == d, "unless asked for it");
	put_device(&s, held);
	ok(!lock_op(&s, d), "lock_op refuses it");
	d = find_name(&s, "dev12");
	ok(lock_op(&s, d), "lock_op takes a live device's op_lock");
	unlock_op(d);

	for_each_device(&s, count, &n);
	is_int((long)n, N_DEVICES + 1, "for_each_device visits every device once, buried ones too");

	is_int(ds_check_name("a.b-c_d"), 0, "a name of letters, digits, . - _ is valid");
	is_int(ds_check_name(".hidden"), -EINVAL, "a name starts with a letter or digit");
	is_int(ds_check_name("rootfs"), -EINVAL, "rootfs is reserved");
	is_int(ds_check_name("transaction-metadata"), -EINVAL, "so are the engine's file names");

	for_each_device(&s, free_one, NULL);
	is_int((long)s.n_devices, 0, "removing every device empties the table");
	free(s.by_name);
	free(s.by_id);
	pthread_mutex_destroy(&s.table_lock);
	pthread_mutex_destroy(&s.err_lock);
	return tap_done();
}
