/*
 * fuzz-name.c - libFuzzer harness for the name check ds_check_name
 * (src/devtable.c). Its answer is compared with the rule of doc/design.md §1,
 * written again here independently: [A-Za-z0-9][A-Za-z0-9_.-]{0,127},
 * not one of the reserved names; -ENAMETOOLONG past 128 characters,
 * -EINVAL otherwise. A name it accepts must also work as a metadata file:
 * saved and loaded back by src/metadata.c. Any disagreement aborts.
 */
#include <errno.h>
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
	rmdir(dir);
}

static int expected(const char *s, size_t len)
{
	static const char *const reserved[] = {
		"ctl", "info", "rootfs", "deviceset-metadata", "transaction-metadata",
	};

	if (len == 0)
		return -EINVAL;
	if (len > 128)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
			     (c >= 'a' && c <= 'z');

		if (!alnum && (i == 0 || !strchr("_.-", c) || c == '\0'))
			return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(s, reserved[i]) == 0)
			return -EINVAL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct meta_device m, back;
	char *name;
	int r;

	if (!dir[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		tf_log_init(true, LOG_CRIT);
		snprintf(dir, sizeof(dir), "%s/thinfs-fuzz-XXXXXX", base);
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}
	/* A C string: the name stops at the first NUL, as the kernel's does. */
	name = malloc(size + 1);
	if (!name)
		return 0;
	memcpy(name, data, size);
	name[size] = '\0';
	r = ds_check_name(name);
	if (r != expected(name, strlen(name)))
		abort();
	if (r == 0) {
		memset(&m, 0, sizeof(m));
		memcpy(m.name, name, strlen(name) + 1);
		m.device_id = 7;
		m.size = 1 << 20;
		snprintf(m.parent, sizeof(m.parent), "base");
		m.mount_recorded = true; /* a saved file has the mount record's keys */
		if (meta_device_save(dir, &m) < 0 || meta_device_load(dir, name, &back) < 0 ||
		    memcmp(&m, &back, sizeof(m)) != 0 || meta_device_remove(dir, name) < 0)
			abort(); /* an accepted name must work as a metadata file */
	}
	free(name);
	return 0;
}
