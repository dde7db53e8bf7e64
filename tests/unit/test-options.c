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

static void refused(const char *key, const char *value)
{
	struct ds_options o, before;
	int r;

	options_init(&o);
	options_init(&before);
	r = options_set(&o, key, value, err, sizeof(err));
	ok(r == -EINVAL && strncmp(err, key, strlen(key)) == 0,
	   "%s=%s refused, message names the key (%s)", key, value ? value : "(none)", err);
	ok(memcmp(&o.base_size, &before.base_size, sizeof(o.base_size)) == 0 &&
	   o.loop_data_size == before.loop_data_size && o.min_free_space == before.min_free_space &&
	   o.block_size == before.block_size && o.blk_discard == before.blk_discard &&
	   o.fs[0] == '\0' && o.n_mkfs_args == 0 && !o.mount_opt && !o.thinpool_dev &&
	   o.libdm_log_level == before.libdm_log_level && !o.xfs_nospace_max_retries_set,
	   "%s=%s left the options unchanged", key, value ? value : "(none)");
	options_free(&o);
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
		"dm.use_deferred_deletion", "dm.min_free_space", "dm.xfs_nospace_max_retries",
		"dm.libdm_log_level", NULL
	};

	options_init(&o);
	/* Defaults, as the original engine's. */
	is_int(o.base_size, 10 * GiB, "dm.basesize defaults to 10G");
	is_int(o.loop_data_size, 100 * GiB, "dm.loopdatasize defaults to 100G");
	is_int(o.loop_metadata_size, 2 * GiB, "dm.loopmetadatasize defaults to 2G");
	is_int(o.block_size, 65536, "dm.blocksize defaults to 64K");
	is_int(o.min_free_space, 10, "dm.min_free_space defaults to 10%%");
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
	size_bad("");
	size_bad("G");
	size_bad("10X");
	size_bad("-1G");
	size_bad("1..5G");
	size_bad("10GBB");
	size_bad("99999999999P");
	size_bad("18446744073709551616");

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
	ok(set1(&o, "dm.blocksize", "512K") == 0 && o.block_size == 512 * 1024, "dm.blocksize=512K");
	ok(set1(&o, "dm.override_udev_sync_check", "true") == 0 && o.override_udev_sync_check,
	   "dm.override_udev_sync_check=true");
	ok(set1(&o, "dm.use_deferred_removal", "1") == 0 && o.deferred_removal, "dm.use_deferred_removal=1");
	ok(set1(&o, "dm.use_deferred_deletion", "True") == 0 && o.deferred_deletion, "dm.use_deferred_deletion=True");
	ok(set1(&o, "dm.min_free_space", "0%") == 0 && o.min_free_space == 0, "dm.min_free_space=0%%");
	ok(set1(&o, "dm.min_free_space", "99%") == 0 && o.min_free_space == 99, "dm.min_free_space=99%%");
	ok(set1(&o, "dm.xfs_nospace_max_retries", "7") == 0 && o.xfs_nospace_max_retries == 7 &&
	   o.xfs_nospace_max_retries_set, "dm.xfs_nospace_max_retries=7");
	ok(set1(&o, "dm.libdm_log_level", "7") == 0 && o.libdm_log_level == 7, "dm.libdm_log_level=7");

	/* Every key, bad values. */
	refused("backend", "lvm");
	refused("dm.basesize", "ten");
	refused("dm.basesize", "0");
	refused("dm.basesize", NULL);
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
	ok(strstr(err, "unknown option") != NULL, "unknown key: \"%s\"", err);

	/* Lists, as in -o. */
	options_free(&o);
	options_init(&o);
	ok(options_parse_list(&o, "dm.basesize=20G,dm.fs=ext4,backend=reflink", err, sizeof(err)) == 0 &&
	   o.base_size == 20 * GiB && strcmp(o.fs, "ext4") == 0 && o.backend == TF_BACKEND_REFLINK,
	   "a list of three keys");
	ok(options_parse_list(&o, "dm.loopdatasize=1G,dm.bogus=1,dm.fs=xfs", err, sizeof(err)) == -EINVAL &&
	   strstr(err, "dm.bogus") && strcmp(o.fs, "ext4") == 0, "a list stops at the bad key and names it");

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
	options_free(&o);
	ok(o.mount_opt == NULL && o.n_mkfs_args == 0, "options_free twice is safe");

	/* Help lists every key. */
	f = tmpfile();
	if (f) {
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
		for (int i = 0; keys[i]; i++)
			ok(strstr(help, keys[i]) != NULL, "--help lists %s", keys[i]);
	}
	return tap_done();
}
