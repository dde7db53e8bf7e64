/*
 * ctl.c - the ctl files' commands parsed into verbs (see ctl.h). Pure:
 * no engine, no FUSE, so the fuzz harness (tests/fuzz) runs it alone.
 */
#include "ctl.h"

#include <errno.h>
#include <string.h>

#include "options.h"

int ctl_text(const char *buf, size_t len, char *out, size_t outlen)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len >= outlen || memchr(buf, '\0', len))
		return -EINVAL;
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

static int sized(const char *arg, enum ctl_verb verb, struct ctl_cmd *out)
{
	out->verb = verb;
	out->arg = arg;
	return parse_size(arg, &out->size) < 0 ? -EINVAL : 0;
}

int ctl_parse_device(const char *line, struct ctl_cmd *out)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(line, "mount") == 0)
		out->verb = CTL_MOUNT;
	else if (strcmp(line, "mount ro") == 0)
		out->verb = CTL_MOUNT_RO;
	else if (strcmp(line, "unmount") == 0)
		out->verb = CTL_UNMOUNT;
	else if (strncmp(line, "resize ", 7) == 0)
		return sized(line + 7, CTL_RESIZE, out);
	else
		return -EINVAL;
	return 0;
}

int ctl_parse_pool(const char *line, struct ctl_cmd *out)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(line, "resize-pool ", 12) == 0)
		return sized(line + 12, CTL_RESIZE_POOL, out);
	if (strcmp(line, "refresh-usage") == 0) {
		out->verb = CTL_REFRESH_USAGE;
		return 0;
	}
	return -EINVAL;
}
