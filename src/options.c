/*
 * options.c - the dm.* storage options: defaults, the original engine's
 * units and bool spellings, and validation (see options.h). Each setter
 * parses into locals first, so a refused value changes nothing.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deviceset.h"
#include "fsutil.h"
#include "log.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

void options_init(struct ds_options *o)
{
	memset(o, 0, sizeof(*o));
	o->backend = TF_BACKEND_AUTO;
	o->base_size = 10 * GiB;
	o->loop_data_size = 100 * GiB;
	o->loop_metadata_size = 2 * GiB;
	o->blk_discard = true;
	o->block_size = 64 * KiB;
	o->min_free_space = 10;
	o->low_space_threshold = 20;
	o->libdm_log_level = 3;
	o->automount = true;
	o->automount_timeout = 60;
}

void options_free(struct ds_options *o)
{
	for (size_t i = 0; i < o->n_mkfs_args; i++)
		free(o->mkfs_args[i]);
	free(o->mkfs_args);
	o->mkfs_args = NULL;
	o->n_mkfs_args = 0;
	free(o->mount_opt);
	free(o->data_dev);
	free(o->metadata_dev);
	free(o->thinpool_dev);
	o->mount_opt = o->data_dev = o->metadata_dev = o->thinpool_dev = NULL;
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));


/* A message quotes the user's value; keep it one line. */
static void one_line(char *err)
{
	for (char *c = err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		one_line(err);
	}
	return -EINVAL;
}

/* Go's units.RAMInBytes matches ^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$
 * and then hands the number to strconv.ParseFloat, which refuses a second
 * fraction ("1.5.5"); so: digits, at most one fraction, one optional space,
 * an optional binary unit, optional i, optional b. The result must fit the
 * engine's int64, as it did there. */
int parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t whole = 0, mult = 1, frac_bytes, total;
	double frac = 0, scale = 0.1;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == ' ')
		p++;
	switch (*p) {
	case 'k': case 'K': mult = KiB; p++; break;
	case 'm': case 'M': mult = MiB; p++; break;
	case 'g': case 'G': mult = GiB; p++; break;
	case 't': case 'T': mult = 1024 * GiB; p++; break;
	case 'p': case 'P': mult = 1024 * 1024 * GiB; p++; break;
	default: break;
	}
	if (*p == 'i' || *p == 'I')
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return -EINVAL;
	if (whole > (uint64_t)INT64_MAX / mult)
		return -EINVAL;
	/* frac < 1, so this stays below mult; truncated as Go's int64(). */
	frac_bytes = (uint64_t)(frac * (double)mult);
	if (frac_bytes >= mult)
		frac_bytes = mult - 1;
	total = whole * mult + frac_bytes;
	if (total > (uint64_t)INT64_MAX)
		return -EINVAL;
	*out = total;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_uint(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "N%": N, an unsigned integer. 0 or -EINVAL. */
static int parse_percent(const char *value, uint64_t *out)
{
	size_t len = strlen(value);
	char num[32];

	if (len < 2 || value[len - 1] != '%' || len - 1 >= sizeof(num))
		return -EINVAL;
	memcpy(num, value, len - 1);
	num[len - 1] = '\0';
	return parse_uint(num, out);
}

/* Seconds, as "90", "90s", "5m" or "1h" (whole numbers). */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct { char unit; uint64_t seconds; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 },
	};
	char num[32];
	size_t len = strlen(s);
	uint64_t mult = 1, v;

	if (len == 0 || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len + 1);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (num[len - 1] == units[i].unit) {
			mult = units[i].seconds;
			num[--len] = '\0';
			break;
		}
	if (parse_uint(num, &v) < 0 || v > UINT32_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static int set_size(const char *key, const char *value, uint64_t *field,
		    bool *set_flag, char *err, size_t errlen)
{
	uint64_t v;

	if (parse_size(value, &v) < 0)
		return refuse(err, errlen, "%s: invalid size '%s' (use a number with an optional unit k, m, g, t, p: e.g. 10G)", key, value);
	if (v == 0)
		return refuse(err, errlen, "%s: size must be greater than 0", key);
	*field = v;
	if (set_flag)
		*set_flag = true;
	return 0;
}

static int set_bool(const char *key, const char *value, bool *field,
		    char *err, size_t errlen)
{
	bool v;

	if (parse_bool(value, &v) < 0)
		return refuse(err, errlen, "%s: invalid boolean '%s' (use true or false)", key, value);
	*field = v;
	return 0;
}

static int set_string(const char *key, const char *value, char **field,
		      bool need_abs, char *err, size_t errlen)
{
	char *copy;

	if (!*value)
		return refuse(err, errlen, "%s: empty value", key);
	if (need_abs && value[0] != '/')
		return refuse(err, errlen, "%s: '%s' is not an absolute path", key, value);
	copy = strdup(value);
	if (!copy)
		return refuse(err, errlen, "%s: out of memory", key);
	free(*field);
	*field = copy;
	return 0;
}

static int add_mkfs_arg(struct ds_options *o, const char *key, const char *value,
			char *err, size_t errlen)
{
	char **args;
	char *copy;

	if (!*value)
		return refuse(err, errlen, "%s: empty value", key);
	copy = strdup(value);
	args = copy ? realloc(o->mkfs_args, (o->n_mkfs_args + 1) * sizeof(*args)) : NULL;
	if (!args) {
		free(copy);
		return refuse(err, errlen, "%s: out of memory", key);
	}
	args[o->n_mkfs_args++] = copy;
	o->mkfs_args = args;
	return 0;
}

static int add_mount_opt(struct ds_options *o, const char *key, const char *value,
			 char *err, size_t errlen)
{
	char *joined;

	if (!*value)
		return refuse(err, errlen, "%s: empty value", key);
	if (o->mount_opt) {
		if (asprintf(&joined, "%s,%s", o->mount_opt, value) < 0)
			joined = NULL;
	} else {
		joined = strdup(value);
	}
	if (!joined)
		return refuse(err, errlen, "%s: out of memory", key);
	free(o->mount_opt);
	o->mount_opt = joined;
	return 0;
}

int options_set(struct ds_options *o, const char *key, const char *value,
		char *err, size_t errlen)
{
	uint64_t v;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!key || !*key)
		return refuse(err, errlen, "empty option name");
	if (!value)
		return refuse(err, errlen, "%s: a value is required (%s=VALUE)", key, key);

	if (strcmp(key, "backend") == 0) {
		if (strcmp(value, "auto") == 0)
			o->backend = TF_BACKEND_AUTO;
		else if (strcmp(value, "reflink") == 0)
			o->backend = TF_BACKEND_REFLINK;
		else if (strcmp(value, "dm") == 0)
			o->backend = TF_BACKEND_DM;
		else
			return refuse(err, errlen, "backend: unknown backend '%s' (choose auto, reflink or dm)", value);
		return 0;
	}
	if (strcmp(key, "dm.basesize") == 0)
		return set_size(key, value, &o->base_size, &o->base_size_set, err, errlen);
	if (strcmp(key, "dm.loopdatasize") == 0)
		return set_size(key, value, &o->loop_data_size, &o->loop_data_size_set, err, errlen);
	if (strcmp(key, "dm.loopmetadatasize") == 0)
		return set_size(key, value, &o->loop_metadata_size, &o->loop_metadata_size_set, err, errlen);
	if (strcmp(key, "dm.fs") == 0) {
		if (strcmp(value, "xfs") != 0 && strcmp(value, "ext4") != 0)
			return refuse(err, errlen, "dm.fs: unsupported filesystem '%s' (choose xfs or ext4)", value);
		snprintf(o->fs, sizeof(o->fs), "%s", value);
		return 0;
	}
	if (strcmp(key, "dm.mkfsarg") == 0)
		return add_mkfs_arg(o, key, value, err, errlen);
	if (strcmp(key, "dm.mountopt") == 0)
		return add_mount_opt(o, key, value, err, errlen);
	if (strcmp(key, "dm.datadev") == 0)
		return set_string(key, value, &o->data_dev, true, err, errlen);
	if (strcmp(key, "dm.metadatadev") == 0)
		return set_string(key, value, &o->metadata_dev, true, err, errlen);
	if (strcmp(key, "dm.thinpooldev") == 0) {
		const char *name = value;

		if (strncmp(name, "/dev/mapper/", 12) == 0)
			name += 12;
		if (!*name || strchr(name, '/'))
			return refuse(err, errlen, "dm.thinpooldev: invalid pool name '%s' (a device-mapper name, optionally under /dev/mapper/)", value);
		return set_string(key, name, &o->thinpool_dev, false, err, errlen);
	}
	if (strcmp(key, "dm.blkdiscard") == 0) {
		r = set_bool(key, value, &o->blk_discard, err, errlen);
		if (r == 0)
			o->blk_discard_set = true;
		return r;
	}
	if (strcmp(key, "dm.override_udev_sync_check") == 0)
		return set_bool(key, value, &o->override_udev_sync_check, err, errlen);
	if (strcmp(key, "dm.use_deferred_removal") == 0)
		return set_bool(key, value, &o->deferred_removal, err, errlen);
	if (strcmp(key, "dm.use_deferred_deletion") == 0)
		return set_bool(key, value, &o->deferred_deletion, err, errlen);
	if (strcmp(key, "dm.blocksize") == 0) {
		if (parse_size(value, &v) < 0)
			return refuse(err, errlen, "dm.blocksize: invalid size '%s' (use e.g. 64K)", value);
		if (v < 64 * KiB || v > GiB || v % (64 * KiB))
			return refuse(err, errlen, "dm.blocksize: %s is not a multiple of 64K between 64K and 1G", value);
		o->block_size = (uint32_t)v;
		return 0;
	}
	if (strcmp(key, "dm.min_free_space") == 0) {
		if (parse_percent(value, &v) < 0)
			return refuse(err, errlen, "dm.min_free_space: invalid value '%s', should be a percentage (e.g. 10%%)", value);
		if (v >= 100)
			return refuse(err, errlen, "dm.min_free_space: %s must be less than 100%%", value);
		o->min_free_space = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "dm.low_space_threshold") == 0) {
		if (parse_percent(value, &v) < 0 || v < 1 || v > 99)
			return refuse(err, errlen, "dm.low_space_threshold: invalid value '%s', should be a percentage "
				      "from 1%% to 99%% (e.g. 20%%)", value);
		o->low_space_threshold = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "dm.autoextend") == 0) {
		uint64_t bytes = 0;

		if (parse_percent(value, &v) == 0) {
			if (v < 1 || v > 1000)
				return refuse(err, errlen, "dm.autoextend: %s is outside 1%%..1000%%", value);
		} else if (parse_size(value, &bytes) < 0 || bytes < MiB) {
			return refuse(err, errlen, "dm.autoextend: invalid value '%s' (a size of at least 1M, e.g. 10G, "
				      "or a percentage of the data size, e.g. 20%%)", value);
		} else {
			v = 0;
		}
		o->autoextend_bytes = bytes;
		o->autoextend_percent = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "dm.xfs_nospace_max_retries") == 0) {
		if (parse_uint(value, &v) < 0)
			return refuse(err, errlen, "dm.xfs_nospace_max_retries: invalid value '%s' (an unsigned integer)", value);
		o->xfs_nospace_max_retries = v;
		o->xfs_nospace_max_retries_set = true;
		return 0;
	}
	if (strcmp(key, "dm.automount") == 0)
		return set_bool(key, value, &o->automount, err, errlen);
	if (strcmp(key, "dm.automount_timeout") == 0) {
		if (parse_duration(value, &v) < 0 || v == 0)
			return refuse(err, errlen, "dm.automount_timeout: invalid duration '%s' (e.g. 60s, 5m, 1h)", value);
		o->automount_timeout = v;
		return 0;
	}
	if (strcmp(key, "dm.libdm_log_level") == 0) {
		if (parse_uint(value, &v) < 0 || v < 2 || v > 7)
			return refuse(err, errlen, "dm.libdm_log_level: invalid level '%s' (2 fatal .. 7 debug)", value);
		o->libdm_log_level = (int)v;
		return 0;
	}
	return refuse(err, errlen, "%s: unknown option (thinfs --help lists them)", key);
}

int options_parse_list(struct ds_options *o, const char *list,
		       char *err, size_t errlen)
{
	char *copy, *save = NULL, *item;
	int r = 0;

	if (!list)
		return 0;
	copy = strdup(list);
	if (!copy)
		return refuse(err, errlen, "out of memory");
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (eq)
			*eq = '\0';
		r = options_set(o, item, eq ? eq + 1 : NULL, err, errlen);
		if (r < 0)
			break;
	}
	free(copy);
	return r;
}

int options_validate(const struct ds_options *o, char *err, size_t errlen)
{
	if (!!o->data_dev != !!o->metadata_dev)
		return refuse(err, errlen, "%s: dm.datadev and dm.metadatadev must be given together",
			      o->data_dev ? "dm.datadev" : "dm.metadatadev");
	if (o->thinpool_dev && o->data_dev)
		return refuse(err, errlen, "dm.thinpooldev: cannot be combined with dm.datadev/dm.metadatadev");
	if (fsutil_check_mount_options(o->mount_opt, err, errlen) < 0) {
		if (err && errlen)
			one_line(err); /* fsutil quotes the value as given */
		return -EINVAL;
	}
	if (o->read_only && !o->automount)
		return refuse(err, errlen, "ro: devices are reached only through rootfs's automount then; "
			      "dm.automount=false would leave no way to mount them");
	if (o->read_only && (o->autoextend_bytes || o->autoextend_percent))
		return refuse(err, errlen, "ro: dm.autoextend grows the pool, and -o ro changes nothing");
	if (o->read_only && o->thinpool_dev)
		return refuse(err, errlen, "ro: dm.thinpooldev takes over an empty pool: there is nothing to read");
	if (o->read_only && (o->base_size_set || o->loop_data_size_set || o->loop_metadata_size_set))
		log_warn("ro: dm.basesize, dm.loopdatasize and dm.loopmetadatasize are ignored: nothing grows");
	if (o->data_dev && (o->loop_data_size_set || o->loop_metadata_size_set))
		log_warn("dm.loopdatasize/dm.loopmetadatasize are ignored with dm.datadev");
	return 0;
}

int options_check_base_size(const struct ds_options *o, const char *state_dir, char *err, size_t errlen)
{
	const char *fs = o->fs[0] ? o->fs : fsutil_default_fs();
	uint64_t min = fsutil_min_size(fs);
	char base[PATH_MAX];

	if (o->read_only || o->base_size >= min)
		return 0;
	snprintf(base, sizeof(base), "%s/metadata/%s", state_dir ? state_dir : "", DS_BASE_NAME);
	if (state_dir && access(base, F_OK) == 0)
		return 0; /* made already: dm.basesize can only grow it */
	return refuse(err, errlen, "dm.basesize=%" PRIu64 "M: smaller than the %" PRIu64 "M an %s filesystem "
		      "needs (mkfs.%s's minimum): give dm.basesize=%" PRIu64 "M or more%s", (uint64_t)(o->base_size / MiB),
		      (uint64_t)(min / MiB), fs, fs, (uint64_t)(min / MiB), strcmp(fs, "ext4") != 0 ? ", or dm.fs=ext4" : "");
}

bool options_blk_discard(const struct ds_options *o)
{
	if (o->blk_discard_set)
		return o->blk_discard;
	return !o->data_dev && !o->thinpool_dev;
}

void options_print_help(void)
{
	static const char *const lines[][2] = {
		{ "backend=auto|reflink|dm", "pool backend: dm-thin, or reflinked image files (default auto)" },
		{ "dm.basesize=SIZE", "size of the base device and so of new devices (default 10G)" },
		{ "dm.loopdatasize=SIZE", "sparse data file STATEDIR/devicemapper/data (default 100G)" },
		{ "dm.loopmetadatasize=SIZE", "sparse metadata file STATEDIR/devicemapper/metadata (default 2G)" },
		{ "dm.fs=xfs|ext4", "filesystem of the base device (default xfs if available, else ext4)" },
		{ "dm.mkfsarg=ARG", "extra mkfs argument, repeatable (default none)" },
		{ "dm.mountopt=OPTS", "mount flags (nosuid, noatime...) and filesystem options for device filesystems (default none)" },
		{ "dm.automount=BOOL", "mount a device read-only when its rootfs is first walked through (default true)" },
		{ "dm.automount_timeout=DURATION", "unmount such an automount after this long unused (default 60s)" },
		{ "dm.datadev=PATH", "block device for the pool's data (default none: loopback)" },
		{ "dm.metadatadev=PATH", "block device for the pool's metadata (default none: loopback)" },
		{ "dm.thinpooldev=NAME", "take over an existing, empty thin pool (default none)" },
		{ "dm.blkdiscard=BOOL", "discard a device's blocks before deleting it (default true on loopback files, false on dm.datadev or dm.thinpooldev)" },
		{ "dm.blocksize=SIZE", "pool block size, 64K..1G in 64K steps (default 64K)" },
		{ "dm.override_udev_sync_check=BOOL", "start without udev sync (default false)" },
		{ "dm.use_deferred_removal=BOOL", "let the kernel remove busy devices at last close (default false)" },
		{ "dm.use_deferred_deletion=BOOL", "delete busy devices later, from a worker (default false)" },
		{ "dm.min_free_space=N%", "refuse new devices below this free space (default 10%)" },
		{ "dm.low_space_threshold=N%", "warn once, and say low_space in the pool's info, below this free space (default 20%)" },
		{ "dm.autoextend=SIZE|N%", "grow a loopback data file by this much below the threshold (default off)" },
		{ "dm.xfs_nospace_max_retries=N", "XFS metadata ENOSPC retries (default: the kernel's)" },
		{ "dm.libdm_log_level=2..7", "libdevmapper log level kept (default 3)" },
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		printf("    -o %-34s %s\n", lines[i][0], lines[i][1]);
}
