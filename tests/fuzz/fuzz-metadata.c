/*
 * fuzz-metadata.c - libFuzzer harness for the metadata loaders
 * (src/metadata.c). The input is written as a device file, as
 * deviceset-metadata and as transaction-metadata in a temporary
 * directory, and each is loaded with meta_device_load,
 * meta_deviceset_load and meta_transaction_load. A file that loads must
 * satisfy metadata.h (NUL-terminated names, IDs in range, parent and
 * renamed_from valid device names) and survive a round trip: saved and
 * loaded again it gives the same struct. Anything else aborts. A refusal
 * must be -EUCLEAN (corrupt) -- never a crash. The input is also parsed
 * as the reflink pool's transaction_id file (meta_parse_tid), which must
 * take exactly the numbers it prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deviceset.h"
#include "log.h"
#include "metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void)
{
	static const char *const names[] = { "dev", "deviceset-metadata", "transaction-metadata" };
	char path[128];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void put(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
}

static bool terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* What metadata.h lets name a device file: a device name by the pattern
 * of doc/design.md §1 ("base" and the reserved ctl, info, rootfs included: files
 * of other programs' state may have them), not the engine's own files. */
static bool file_name(const char *s)
{
	int r = ds_check_name(s);

	if (r == -ENAMETOOLONG)
		return false;
	if (r == 0 || strcmp(s, "base") == 0 || strcmp(s, "ctl") == 0 ||
	    strcmp(s, "info") == 0 || strcmp(s, "rootfs") == 0)
		return true;
	return false;
}

static void refused(int r)
{
	/* A present, readable file is either taken or corrupt. */
	if (r != -EUCLEAN)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct meta_device d, d2;
	struct meta_deviceset s, s2;
	struct meta_transaction t, t2;
	uint64_t tid;
	int r;

	if (!dir[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		tf_log_init(true, LOG_CRIT);
		snprintf(dir, sizeof(dir), "%s/thinfs-fuzz-XXXXXX", base);
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}

	/* The reflink pool's transaction_id file: taken only as printed. */
	if (meta_parse_tid((const char *)data, size, &tid) == 0) {
		char back[32];
		size_t len = size && data[size - 1] == '\n' ? size - 1 : size, z = 0;

		while (z + 1 < len && data[z] == '0')
			z++; /* leading zeros are harmless */
		snprintf(back, sizeof(back), "%" PRIu64, tid);
		if (strlen(back) != len - z || memcmp(back, data + z, len - z) != 0)
			abort();
	}

	put("dev", data, size);
	r = meta_device_load(dir, "dev", &d);
	if (r == 0) {
		if (strcmp(d.name, "dev") || d.device_id > 0xffffff ||
		    d.size > (uint64_t)INT64_MAX || d.created < 0 ||
		    !terminated(d.parent, sizeof(d.parent)) ||
		    !terminated(d.renamed_from, sizeof(d.renamed_from)) ||
		    (d.parent[0] && !file_name(d.parent)) ||
		    (d.renamed_from[0] && !file_name(d.renamed_from)))
			abort();
		/* A saved file always has the mount record's keys. */
		d.mount_recorded = true;
		if (meta_device_save(dir, &d) < 0 || meta_device_load(dir, "dev", &d2) < 0 ||
		    memcmp(&d, &d2, sizeof(d)) != 0)
			abort(); /* round trip */
	} else {
		refused(r);
	}

	put("deviceset-metadata", data, size);
	r = meta_deviceset_load(dir, &s);
	if (r == 0) {
		if (s.next_device_id > 0xffffff ||
		    !terminated(s.base_device_uuid, sizeof(s.base_device_uuid)) ||
		    !terminated(s.base_device_fs, sizeof(s.base_device_fs)))
			abort();
		if (meta_deviceset_save(dir, &s) < 0 || meta_deviceset_load(dir, &s2) < 0 ||
		    memcmp(&s, &s2, sizeof(s)) != 0)
			abort();
	} else {
		refused(r);
	}

	put("transaction-metadata", data, size);
	r = meta_transaction_load(dir, &t);
	if (r == 0) {
		if (t.device_id > 0xffffff || !terminated(t.device_hash, sizeof(t.device_hash)))
			abort();
		if (meta_transaction_save(dir, &t) < 0 || meta_transaction_load(dir, &t2) < 0 ||
		    memcmp(&t, &t2, sizeof(t)) != 0)
			abort();
	} else {
		refused(r);
	}
	return 0;
}
