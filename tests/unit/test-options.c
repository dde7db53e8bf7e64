/*
 * test-options.c - every dm.* key with good and bad values, the units and
 * bool spellings of the original engine, and that a refusal changes
 * nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "tap.h"

#define GiB (1024ULL * 1024 * 1024)

static char err[512];

/* Set key=value on a fresh struct; the struct is returned for checks. */
static int set1(struct ds_options *o, const char *key, const char *value)
{
	options_free(o);
	options_init(o);
	return options_set(o, key, value, err, sizeof(err));
}

/* Every key given a good value that is not its default, so a refusal
 * that touched any field would show. */
static const char populate[] =
	"backend=dm,dm.basesize=20G,dm.loopdatasize=200G,dm.loopmetadatasize=4G,dm.fs=ext4,"
	"dm.mkfsarg=-m0,dm.mountopt=noatime,dm.datadev=/dev/sdb,dm.metadatadev=/dev/sdc,"
	"dm.thinpooldev=pool,dm.blkdiscard=false,dm.blocksize=128K,dm.override_udev_sync_check=1,"
	"dm.use_deferred_removal=true,dm.use_deferred_deletion=T,dm.min_free_space=5%,"
	"dm.low_space_threshold=35%,dm.autoextend=3G,"
	"dm.xfs_nospace_max_retries=3,dm.libdm_log_level=6";

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same(const struct ds_options *a, const struct ds_options *b)
{
	if (a->backend != b->backend || a->base_size != b->base_size ||
	    a->base_size_set != b->base_size_set || a->loop_data_size != b->loop_data_size ||
	    a->loop_data_size_set != b->loop_data_size_set ||
	    a->loop_metadata_size != b->loop_metadata_size ||
	    a->loop_metadata_size_set != b->loop_metadata_size_set || strcmp(a->fs, b->fs) != 0 ||
	    a->n_mkfs_args != b->n_mkfs_args || !same_str(a->mount_opt, b->mount_opt) ||
	    !same_str(a->data_dev, b->data_dev) || !same_str(a->metadata_dev, b->metadata_dev) ||
	    !same_str(a->thinpool_dev, b->thinpool_dev) || a->blk_discard != b->blk_discard ||
	    a->blk_discard_set != b->blk_discard_set ||
	    a->block_size != b->block_size ||
	    a->override_udev_sync_check != b->override_udev_sync_check ||
	    a->deferred_removal != b->deferred_removal || a->deferred_deletion != b->deferred_deletion ||
	    a->min_free_space != b->min_free_space ||
	    a->low_space_threshold != b->low_space_threshold ||
	    a->autoextend_bytes != b->autoextend_bytes || a->autoextend_percent != b->autoextend_percent ||
	    a->xfs_nospace_max_retries != b->xfs_nospace_max_retries ||
	    a->xfs_nospace_max_retries_set != b->xfs_nospace_max_retries_set ||
	    a->libdm_log_level != b->libdm_log_level)
		return 0;
	for (size_t i = 0; i < a->n_mkfs_args; i++)
		if (strcmp(a->mkfs_args[i], b->mkfs_args[i]) != 0)
			return 0;
	return 1;
}

/* key=value is refused with a message that starts with the key, on a
 * struct that holds defaults and on one where every key was set: neither
 * changes. */
static void refused(const char *key, const char *value)
{
	struct ds_options o, before;
	char pre[sizeof(err)], shown[64];
	int r1, r2, unchanged;

	options_init(&o);
	options_init(&before);
	r1 = options_set(&o, key, value, err, sizeof(err));
	unchanged = same(&o, &before);
	options_free(&o);
	options_free(&before);

	options_init(&o);
	options_init(&before);
	options_parse_list(&o, populate, pre, sizeof(pre));
	options_parse_list(&before, populate, pre, sizeof(pre));
	r2 = options_set(&o, key, value, err, sizeof(err));
	unchanged = unchanged && same(&o, &before);
	options_free(&o);
	options_free(&before);

	/* The value as TAP can show it on one line. */
	snprintf(shown, sizeof(shown), "%s", value ? value : "(none)");
	for (char *c = shown; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = '?';
	ok(r1 == -EINVAL && r2 == -EINVAL && strncmp(err, key, strlen(key)) == 0 &&
	   err[strlen(key)] == ':' && !strchr(err, '\n'),
	   "%s=%s refused, one-line message starts with the key (%s)", key, shown, err);
	ok(unchanged, "%s=%s left the options unchanged", key, shown);
}

static void size_is(const char *s, unsigned long long want)
{
	uint64_t v = 0;
	int r = parse_size(s, &v);

	ok(r == 0 && v == want, "size '%s' = %llu (got %llu, r=%d)", s, want, (unsigned long long)v, r);
}

static void size_bad(const char *s)
{
	uint64_t v = 0;

	is_int(parse_size(s, &v), -EINVAL, "size '%s' refused", s);
}

int main(void)
{
	struct ds_options o;
	bool b;
	FILE *f;
	char help[8192];
	size_t n;
	static const char *const keys[] = {
		"backend", "dm.basesize", "dm.loopdatasize", "dm.loopmetadatasize", "dm.fs", "dm.mkfsarg",
		"dm.mountopt", "dm.datadev", "dm.metadatadev", "dm.thinpooldev", "dm.blkdiscard",
		"dm.blocksize", "dm.override_udev_sync_check", "dm.use_deferred_removal",
		"dm.use_deferred_deletion", "dm.min_free_space", "dm.low_space_threshold", "dm.autoextend",
		"dm.xfs_nospace_max_retries",
		"dm.libdm_log_level", NULL
	};

	options_init(&o);
	/* Defaults, as the original engine's. */
	is_int(o.base_size, 10 * GiB, "dm.basesize defaults to 10G");
	is_int(o.loop_data_size, 100 * GiB, "dm.loopdatasize defaults to 100G");
	is_int(o.loop_metadata_size, 2 * GiB, "dm.loopmetadatasize defaults to 2G");
	is_int(o.block_size, 65536, "dm.blocksize defaults to 64K");
	is_int(o.min_free_space, 10, "dm.min_free_space defaults to 10%%");
	is_int(o.low_space_threshold, 20, "dm.low_space_threshold defaults to 20%%");
	ok(!o.autoextend_bytes && !o.autoextend_percent, "dm.autoextend is off by default");
	ok(o.blk_discard && !o.deferred_removal && !o.deferred_deletion && !o.override_udev_sync_check,
	   "bool defaults");
	is_int(o.backend, TF_BACKEND_AUTO, "backend defaults to auto");

	/* Units. */
	size_is("10G", 10 * GiB);
	size_is("10g", 10 * GiB);
	size_is("10GB", 10 * GiB);
	size_is("10GiB", 10 * GiB);
	size_is("10 G", 10 * GiB);
	size_is("1.5G", 3 * GiB / 2);
	size_is("512", 512);
	size_is("0.5k", 512);
	size_is("64K", 65536);
	size_is("2t", 2048 * GiB);
	size_is("1p", 1024ULL * 1024 * GiB);
	size_is("0.1k", 102);
	size_is("10 ", 10);
	size_is("10 b", 10);
	size_is("1.25MiB", 1310720);
	size_is("8191P", 8191ULL * 1024 * 1024 * GiB);
	size_is("9223372036854775807", 9223372036854775807ULL);
	size_bad("");
	size_bad("G");
	size_bad("10X");
	size_bad("-1G");
	size_bad("1..5G");
	size_bad("10GBB");
	size_bad("99999999999P");
	size_bad("18446744073709551616");
	size_bad("8192P");
	size_bad("9223372036854775808");
	size_bad("1.5.5G");
	size_bad("1.G");
	size_bad(".5G");
	size_bad("10  G");
	size_bad(" 10G");
	size_bad("10E");
	size_bad("10BG");

	/* Bools: Go's spellings only. */
	const char *yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	const char *no[] = { "0", "f", "F", "FALSE", "false", "False" };
	for (int i = 0; i < 6; i++) {
		ok(parse_bool(yes[i], &b) == 0 && b, "bool '%s' is true", yes[i]);
		ok(parse_bool(no[i], &b) == 0 && !b, "bool '%s' is false", no[i]);
	}
	ok(parse_bool("yes", &b) == -EINVAL && parse_bool("on", &b) == -EINVAL &&
	   parse_bool("2", &b) == -EINVAL && parse_bool("", &b) == -EINVAL, "yes/on/2/empty are not bools");

	/* Every key, a good value. */
	ok(set1(&o, "backend", "reflink") == 0 && o.backend == TF_BACKEND_REFLINK, "backend=reflink");
	ok(set1(&o, "backend", "dm") == 0 && o.backend == TF_BACKEND_DM, "backend=dm");
	ok(set1(&o, "dm.basesize", "20G") == 0 && o.base_size == 20 * GiB && o.base_size_set, "dm.basesize=20G");
	ok(set1(&o, "dm.loopdatasize", "200G") == 0 && o.loop_data_size == 200 * GiB && o.loop_data_size_set,
	   "dm.loopdatasize=200G");
	ok(set1(&o, "dm.loopmetadatasize", "4G") == 0 && o.loop_metadata_size == 4 * GiB, "dm.loopmetadatasize=4G");
	ok(set1(&o, "dm.fs", "xfs") == 0 && strcmp(o.fs, "xfs") == 0, "dm.fs=xfs");
	ok(set1(&o, "dm.fs", "ext4") == 0 && strcmp(o.fs, "ext4") == 0, "dm.fs=ext4");
	ok(set1(&o, "dm.mkfsarg", "-b") == 0 &&
	   options_set(&o, "dm.mkfsarg", "4096", err, sizeof(err)) == 0 &&
	   o.n_mkfs_args == 2 && strcmp(o.mkfs_args[1], "4096") == 0, "dm.mkfsarg repeats");
	ok(set1(&o, "dm.mountopt", "nodiscard") == 0 &&
	   options_set(&o, "dm.mountopt", "noatime", err, sizeof(err)) == 0 &&
	   strcmp(o.mount_opt, "nodiscard,noatime") == 0, "dm.mountopt joins with commas");
	ok(set1(&o, "dm.datadev", "/dev/sdb") == 0 && strcmp(o.data_dev, "/dev/sdb") == 0, "dm.datadev");
	ok(set1(&o, "dm.metadatadev", "/dev/sdc") == 0 && strcmp(o.metadata_dev, "/dev/sdc") == 0, "dm.metadatadev");
	ok(set1(&o, "dm.thinpooldev", "/dev/mapper/vg-pool") == 0 && strcmp(o.thinpool_dev, "vg-pool") == 0,
	   "dm.thinpooldev strips /dev/mapper/");
	ok(set1(&o, "dm.blkdiscard", "false") == 0 && !o.blk_discard, "dm.blkdiscard=false");
	ok(set1(&o, "dm.blkdiscard", "false") == 0 && !options_blk_discard(&o),
	   "dm.blkdiscard=false: no discard on delete");
	ok(set1(&o, "dm.loopdatasize", "1G") == 0 && options_blk_discard(&o),
	   "loopback pool: discard on delete by default");
	ok(set1(&o, "dm.thinpooldev", "vg-pool") == 0 && !options_blk_discard(&o),
	   "dm.thinpooldev: no discard by default");
	ok(set1(&o, "dm.datadev", "/dev/sdb") == 0 && !options_blk_discard(&o),
	   "dm.datadev: no discard by default");
	ok(options_set(&o, "dm.blkdiscard", "true", err, sizeof(err)) == 0 && options_blk_discard(&o),
	   "dm.datadev with dm.blkdiscard=true: discard");
	ok(set1(&o, "dm.blocksize", "512K") == 0 && o.block_size == 512 * 1024, "dm.blocksize=512K");
	ok(set1(&o, "dm.override_udev_sync_check", "true") == 0 && o.override_udev_sync_check,
	   "dm.override_udev_sync_check=true");
	ok(set1(&o, "dm.use_deferred_removal", "1") == 0 && o.deferred_removal, "dm.use_deferred_removal=1");
	ok(set1(&o, "dm.use_deferred_deletion", "True") == 0 && o.deferred_deletion, "dm.use_deferred_deletion=True");
	ok(set1(&o, "dm.min_free_space", "0%") == 0 && o.min_free_space == 0, "dm.min_free_space=0%%");
	ok(set1(&o, "dm.min_free_space", "99%") == 0 && o.min_free_space == 99, "dm.min_free_space=99%%");
	ok(set1(&o, "dm.low_space_threshold", "1%") == 0 && o.low_space_threshold == 1, "dm.low_space_threshold=1%%");
	ok(set1(&o, "dm.autoextend", "10G") == 0 && o.autoextend_bytes == 10 * GiB && !o.autoextend_percent,
	   "dm.autoextend=10G");
	ok(set1(&o, "dm.autoextend", "20%") == 0 && o.autoextend_percent == 20 && !o.autoextend_bytes,
	   "dm.autoextend=20%% replaces a size");
	ok(set1(&o, "dm.xfs_nospace_max_retries", "7") == 0 && o.xfs_nospace_max_retries == 7 &&
	   o.xfs_nospace_max_retries_set, "dm.xfs_nospace_max_retries=7");
	ok(set1(&o, "dm.libdm_log_level", "7") == 0 && o.libdm_log_level == 7, "dm.libdm_log_level=7");
	ok(set1(&o, "dm.libdm_log_level", "2") == 0 && o.libdm_log_level == 2, "dm.libdm_log_level=2");
	ok(set1(&o, "backend", "auto") == 0 && o.backend == TF_BACKEND_AUTO, "backend=auto");
	ok(set1(&o, "dm.thinpooldev", "docker-pool") == 0 && strcmp(o.thinpool_dev, "docker-pool") == 0,
	   "dm.thinpooldev without /dev/mapper/");
	ok(set1(&o, "dm.blocksize", "64K") == 0 && o.block_size == 65536 &&
	   set1(&o, "dm.blocksize", "1G") == 0 && o.block_size == 1024 * 1024 * 1024,
	   "dm.blocksize limits 64K and 1G accepted");
	ok(set1(&o, "dm.loopmetadatasize", "1.5G") == 0 && o.loop_metadata_size == 3 * GiB / 2 &&
	   o.loop_metadata_size_set, "dm.loopmetadatasize=1.5G");
	ok(set1(&o, "dm.basesize", "10GiB") == 0 && o.base_size == 10 * GiB, "dm.basesize=10GiB");
	ok(set1(&o, "dm.xfs_nospace_max_retries", "0") == 0 && o.xfs_nospace_max_retries == 0 &&
	   o.xfs_nospace_max_retries_set, "dm.xfs_nospace_max_retries=0 is set (0 = retry forever)");
	ok(set1(&o, "dm.mkfsarg", "-m0") == 0 && options_set(&o, "dm.mkfsarg", "-i 8192", err, sizeof(err)) == 0 &&
	   options_set(&o, "dm.mkfsarg", "-L x", err, sizeof(err)) == 0 && o.n_mkfs_args == 3 &&
	   strcmp(o.mkfs_args[0], "-m0") == 0 && strcmp(o.mkfs_args[2], "-L x") == 0,
	   "dm.mkfsarg three times keeps all three in order");

	/* Every key, bad values. */
	refused("backend", "lvm");
	refused("dm.basesize", "ten");
	refused("dm.basesize", "0");
	refused("dm.basesize", NULL);
	refused("dm.basesize", "-1G");
	refused("dm.basesize", "99999999999P");
	refused("dm.loopdatasize", "0G");
	refused("dm.loopmetadatasize", "0");
	refused("dm.fs", "XFS");
	refused("dm.fs", "");
	refused("dm.fs", "ext4\nxfs");
	refused("dm.datadev", "");
	refused("dm.metadatadev", "");
	refused("dm.thinpooldev", "");
	refused("backend", "");
	refused("dm.blocksize", "0");
	refused("dm.blocksize", "1T");
	refused("dm.blocksize", "64X");
	refused("dm.min_free_space", "-1%");
	refused("dm.min_free_space", "150%");
	refused("dm.min_free_space", "10%%");
	refused("dm.min_free_space", " 10%");
	refused("dm.low_space_threshold", "0%");
	refused("dm.low_space_threshold", "100%");
	refused("dm.low_space_threshold", "20");
	refused("dm.autoextend", "0");
	refused("dm.autoextend", "512K");
	refused("dm.autoextend", "0%");
	refused("dm.autoextend", "1001%");
	refused("dm.autoextend", "lots");
	refused("dm.xfs_nospace_max_retries", "");
	refused("dm.xfs_nospace_max_retries", "1.5");
	refused("dm.libdm_log_level", "3x");
	refused("dm.libdm_log_level", "");
	refused("dm.blkdiscard", "Yes");
	refused("dm.loopdatasize", "10X");
	refused("dm.loopmetadatasize", "");
	refused("dm.fs", "btrfs");
	refused("dm.mkfsarg", "");
	refused("dm.mountopt", "");
	refused("dm.datadev", "sdb");
	refused("dm.metadatadev", "relative/path");
	refused("dm.thinpooldev", "/dev/mapper/");
	refused("dm.thinpooldev", "a/b");
	refused("dm.blkdiscard", "yes");
	refused("dm.blocksize", "32K");
	refused("dm.blocksize", "100K");
	refused("dm.blocksize", "2G");
	refused("dm.override_udev_sync_check", "2");
	refused("dm.use_deferred_removal", "on");
	refused("dm.use_deferred_deletion", "");
	refused("dm.min_free_space", "10");
	refused("dm.min_free_space", "100%");
	refused("dm.min_free_space", "abc%");
	refused("dm.min_free_space", "%");
	refused("dm.xfs_nospace_max_retries", "-1");
	refused("dm.xfs_nospace_max_retries", "many");
	refused("dm.libdm_log_level", "1");
	refused("dm.libdm_log_level", "8");
	refused("dm.foo", "1");
	ok(strstr(err, "dm.foo: unknown option") != NULL, "unknown key named in the message: \"%s\"", err);
	refused("basesize", "10G");
	refused("dm.BASESIZE", "10G");

	/* Lists, as in -o. */
	options_free(&o);
	options_init(&o);
	ok(options_parse_list(&o, "dm.basesize=20G,dm.fs=ext4,backend=reflink", err, sizeof(err)) == 0 &&
	   o.base_size == 20 * GiB && strcmp(o.fs, "ext4") == 0 && o.backend == TF_BACKEND_REFLINK,
	   "a list of three keys");
	ok(options_parse_list(&o, "dm.loopdatasize=1G,dm.bogus=1,dm.fs=xfs", err, sizeof(err)) == -EINVAL &&
	   strncmp(err, "dm.bogus", 8) == 0 && strcmp(o.fs, "ext4") == 0,
	   "a list stops at the bad key and names it (%s)", err);
	ok(options_parse_list(&o, "dm.basesize=30G,dm.blocksize=3K,dm.fs=xfs", err, sizeof(err)) == -EINVAL &&
	   strncmp(err, "dm.blocksize", 12) == 0 && o.base_size == 30 * GiB && strcmp(o.fs, "ext4") == 0,
	   "a bad value in the middle stops the list there (%s)", err);
	ok(options_parse_list(&o, "dm.mkfsarg=-K,dm.mountopt=nouuid,dm.mountopt=noatime", err, sizeof(err)) == 0 &&
	   o.n_mkfs_args == 1 && strcmp(o.mount_opt, "nouuid,noatime") == 0, "repeated keys in one list");
	ok(options_parse_list(&o, "dm.basesize", err, sizeof(err)) == -EINVAL &&
	   strncmp(err, "dm.basesize", 11) == 0, "a key without a value is refused (%s)", err);

	/* Combinations. */
	options_free(&o);
	options_init(&o);
	options_set(&o, "dm.datadev", "/dev/sdb", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strstr(err, "dm.metadatadev"),
	   "dm.datadev without dm.metadatadev refused (%s)", err);
	options_set(&o, "dm.metadatadev", "/dev/sdc", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == 0, "dm.datadev with dm.metadatadev accepted");
	options_set(&o, "dm.thinpooldev", "pool", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strncmp(err, "dm.thinpooldev", 14) == 0,
	   "dm.thinpooldev with dm.datadev refused");
	options_free(&o);
	options_init(&o);
	options_set(&o, "dm.metadatadev", "/dev/sdc", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strncmp(err, "dm.metadatadev", 14) == 0,
	   "dm.metadatadev without dm.datadev refused (%s)", err);
	options_free(&o);
	options_init(&o);
	ok(options_validate(&o, err, sizeof(err)) == 0, "the defaults validate");
	options_set(&o, "dm.thinpooldev", "pool", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == 0, "dm.thinpooldev alone validates");
	options_free(&o);
	options_init(&o);
	options_parse_list(&o, "dm.datadev=/dev/sdb,dm.metadatadev=/dev/sdc,dm.loopdatasize=1G", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == 0,
	   "dm.loopdatasize with dm.datadev is only a warning, not a refusal");
	options_free(&o);
	/* -o ro (read_only, set by the daemon) and what it cannot go with. */
	options_init(&o);
	o.read_only = true;
	options_set(&o, "dm.basesize", "20G", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == 0, "ro with dm.basesize validates (ignored, with a warning)");
	options_set(&o, "dm.automount", "false", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strncmp(err, "ro: ", 4) == 0 &&
	   strstr(err, "dm.automount"), "ro with dm.automount=false refused (%s)", err);
	options_set(&o, "dm.automount", "true", err, sizeof(err));
	options_set(&o, "dm.autoextend", "10%", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strstr(err, "dm.autoextend"),
	   "ro with dm.autoextend refused (%s)", err);
	options_free(&o);
	options_init(&o);
	o.read_only = true;
	options_set(&o, "dm.thinpooldev", "pool", err, sizeof(err));
	ok(options_validate(&o, err, sizeof(err)) == -EINVAL && strstr(err, "dm.thinpooldev"),
	   "ro with dm.thinpooldev refused (%s)", err);
	options_free(&o);
	options_free(&o);
	ok(o.mount_opt == NULL && o.n_mkfs_args == 0, "options_free twice is safe");

	/* Help lists every key. Its text is captured through a temporary
	 * file; without one every check below fails on an empty text. */
	help[0] = '\0';
	n = 0;
	f = tmpfile();
	if (ok(f != NULL, "a temporary file to capture --help (%s)", f ? "made" : strerror(errno))) {
		int saved = dup(1);

		fflush(stdout);
		dup2(fileno(f), 1);
		options_print_help();
		fflush(stdout);
		dup2(saved, 1);
		close(saved);
		rewind(f);
		n = fread(help, 1, sizeof(help) - 1, f);
		help[n] = '\0';
		fclose(f);
	}
	ok(n > 0 && n < sizeof(help) - 1, "--help printed its text, all of it captured (%zu bytes)", n);
	for (int i = 0; keys[i]; i++) {
		char want[64], *line;

		snprintf(want, sizeof(want), "    -o %s=", keys[i]);
		line = strstr(help, want);
		ok(line && strstr(line, "(default") && strstr(line, "(default") < strchr(line, '\n'),
		   "--help has a line for %s with its default", keys[i]);
	}
	ok(strstr(help, "(default 10G)") && strstr(help, "(default 100G)") && strstr(help, "(default 2G)") &&
	   strstr(help, "(default 64K)") && strstr(help, "(default 10%)"), "--help shows the default sizes");
	return tap_done();
}
