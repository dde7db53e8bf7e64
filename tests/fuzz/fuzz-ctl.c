/*
 * fuzz-ctl.c - libFuzzer harness for the ctl files' commands (src/ctl.c):
 * the bytes of a write through ctl_text, then ctl_parse_device and
 * ctl_parse_pool, as tf_write in fuse-ops.c does. Aborts when a result
 * breaks ctl.h: an accepted line that is not exactly a command, a size
 * above INT64_MAX, a refusal without its verb.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[256];
	struct ctl_cmd k;
	int r;

	tf_log_init(true, LOG_CRIT);
	if (ctl_text((const char *)data, size, line, sizeof(line)) < 0) {
		size_t len = size && data[size - 1] == '\n' ? size - 1 : size;

		if (len < sizeof(line) && !memchr(data, '\0', len))
			abort(); /* a short line without NUL must be taken */
		return 0;
	}
	if (strlen(line) >= sizeof(line))
		abort();
	r = ctl_parse_device(line, &k);
	if (r == 0) {
		switch (k.verb) {
		case CTL_MOUNT: if (strcmp(line, "mount")) abort(); break;
		case CTL_MOUNT_RO: if (strcmp(line, "mount ro")) abort(); break;
		case CTL_UNMOUNT: if (strcmp(line, "unmount")) abort(); break;
		case CTL_RESIZE:
			if (strncmp(line, "resize ", 7) || k.arg != line + 7 ||
			    k.size > (uint64_t)INT64_MAX)
				abort();
			break;
		default: abort();
		}
	} else if (k.verb != CTL_UNKNOWN && k.verb != CTL_RESIZE) {
		abort();
	} else if (k.verb == CTL_RESIZE && k.arg != line + 7) {
		abort();
	}
	r = ctl_parse_pool(line, &k);
	if (r == 0 && k.verb == CTL_REFRESH_USAGE) {
		if (strcmp(line, "refresh-usage") != 0 || k.arg)
			abort();
	} else if (r == 0 && (k.verb != CTL_RESIZE_POOL || strncmp(line, "resize-pool ", 12) ||
			      k.size > (uint64_t)INT64_MAX)) {
		abort();
	}
	if (r < 0 && k.verb != CTL_UNKNOWN && k.verb != CTL_RESIZE_POOL)
		abort();
	return 0;
}
