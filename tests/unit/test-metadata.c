/*
 * test-metadata.c - the engine's JSON files: round trips, files in the
 * original engine's format, every kind of corruption reported (never a
 * crash, never a silent drop), name checks before names become paths,
 * atomic writes, and the info JSON (checked with jq).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metadata.h"
#include "tap.h"

static char dir[] = "/tmp/thinfs-meta-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void corrupt(const char *what, const char *text)
{
	struct meta_device m;

	put("bad", text);
	is_int(meta_device_load(dir, "bad", &m), -EUCLEAN, "corrupt device file (%s) -> EUCLEAN", what);
}

static int count_entries(void)
{
	char cmd[600];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* Run jq FILTER on text; 0 if jq says true. */
static int jq_true(const char *text, const char *filter)
{
	char path[600], cmd[1200];
	int r;

	snprintf(path, sizeof(path), "%s/.json", dir);
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "jq -e '%s' %s >/dev/null 2>&1", filter, path);
	r = system(cmd);
	unlink(path);
	return r;
}

int main(void)
{
	struct meta_device m = { 0 }, back;
	struct meta_deviceset s = { 0 }, sback;
	struct meta_transaction t = { 0 }, tback;
	struct ds_device_info di = { 0 };
	struct ds_pool_info pi = { 0 };
	char **names = NULL, *json;
	size_t n = 0;

	if (!mkdtemp(dir))
		tap_skip_all("mkdtemp failed");

	/* Round trips. */
	snprintf(m.name, sizeof(m.name), "web");
	snprintf(m.parent, sizeof(m.parent), "base");
	m.device_id = 0xffffff;
	m.size = 10737418240ULL;
	m.transaction_id = 42;
	m.initialized = true;
	m.created = 1795580637;
	ok(meta_device_save(dir, &m) == 0, "save a device file");
	ok(meta_device_load(dir, "web", &back) == 0 && back.device_id == m.device_id && back.size == m.size &&
	   back.transaction_id == 42 && back.initialized && !back.deleted &&
	   strcmp(back.parent, "base") == 0 && back.created == m.created && !back.renamed_from[0] &&
	   strcmp(back.name, "web") == 0, "device file round trip");
	snprintf(m.renamed_from, sizeof(m.renamed_from), "old");
	m.deleted = true;
	meta_device_save(dir, &m);
	ok(meta_device_load(dir, "web", &back) == 0 && strcmp(back.renamed_from, "old") == 0 && back.deleted,
	   "renamed_from and deleted round trip");
	s.next_device_id = 77;
	snprintf(s.base_device_uuid, sizeof(s.base_device_uuid), "1b0d1e5e-aaaa-bbbb-cccc-1234567890ab");
	snprintf(s.base_device_fs, sizeof(s.base_device_fs), "xfs");
	ok(meta_deviceset_save(dir, &s) == 0 && meta_deviceset_load(dir, &sback) == 0 &&
	   sback.next_device_id == 77 && strcmp(sback.base_device_uuid, s.base_device_uuid) == 0 &&
	   strcmp(sback.base_device_fs, "xfs") == 0, "deviceset-metadata round trip");
	t.open_transaction_id = 9;
	t.device_id = 12;
	snprintf(t.device_hash, sizeof(t.device_hash), "web");
	ok(meta_transaction_save(dir, &t) == 0 && meta_transaction_load(dir, &tback) == 0 &&
	   tback.open_transaction_id == 9 && tback.device_id == 12 && strcmp(tback.device_hash, "web") == 0,
	   "transaction-metadata round trip");

	/* The original engine's files. */
	put("0123abcd", "{\"device_id\":5,\"size\":10737418240,\"transaction_id\":3,\"initialized\":false,\"deleted\":false}");
	ok(meta_device_load(dir, "0123abcd", &back) == 0 && back.device_id == 5 && back.transaction_id == 3 &&
	   back.parent[0] == '\0' && back.created == 0, "a device file in Docker's format loads");
	put("plain", "{\"device_id\":6,\"size\":1,\"transaction_id\":1}");
	ok(meta_device_load(dir, "plain", &back) == 0 && !back.initialized && !back.deleted,
	   "initialized/deleted default to false");
	put("deviceset-metadata", "{\"next_device_id\":3,\"base_device_uuid\":\"u\",\"base_device_fs\":\"ext4\",\"extra\":1}");
	ok(meta_deviceset_load(dir, &sback) == 0 && sback.next_device_id == 3, "unknown keys are ignored");

	/* Corruption: reported, never a crash. */
	corrupt("empty", "");
	corrupt("truncated", "{\"device_id\":5,\"size\":10");
	corrupt("not JSON", "hello");
	corrupt("an array", "[1,2,3]");
	corrupt("device_id missing", "{\"size\":1,\"transaction_id\":1}");
	corrupt("size missing", "{\"device_id\":1,\"transaction_id\":1}");
	corrupt("device_id a string", "{\"device_id\":\"5\",\"size\":1,\"transaction_id\":1}");
	corrupt("device_id too big", "{\"device_id\":16777216,\"size\":1,\"transaction_id\":1}");
	corrupt("negative size", "{\"device_id\":1,\"size\":-5,\"transaction_id\":1}");
	corrupt("deleted not a bool", "{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"deleted\":\"no\"}");
	corrupt("parent not a name", "{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"parent\":\"../x\"}");
	corrupt("binary", "\x01\x02\x03");
	put("transaction-metadata", "{\"open_transaction_id\":");
	is_int(meta_transaction_load(dir, &tback), -EUCLEAN, "corrupt transaction-metadata -> EUCLEAN");
	unlink("/nonexistent");
	is_int(meta_device_load(dir, "missing", &back), -ENOENT, "a missing file is ENOENT");

	/* Names are checked before they become paths. */
	const char *bad[] = { "../x", "a/b", ".hidden", "", "deviceset-metadata", "transaction-metadata", NULL };
	for (int i = 0; bad[i]; i++) {
		struct meta_device bm = m;

		snprintf(bm.name, sizeof(bm.name), "%s", bad[i]);
		ok(meta_device_save(dir, &bm) == -EINVAL && meta_device_load(dir, bad[i], &back) == -EINVAL &&
		   meta_device_remove(dir, bad[i]) == -EINVAL, "name '%s' refused for save, load and remove", bad[i]);
	}
	{
		struct meta_device bm = m;

		memset(bm.name, 'a', DS_NAME_MAX);
		bm.name[DS_NAME_MAX] = '\0';
		ok(meta_device_save(dir, &bm) == 0, "a 128-character name is fine");
		meta_device_remove(dir, bm.name);
	}
	is_int(meta_device_load(dir, "a\\b", &back), -EINVAL, "backslash refused");

	/* Listing: sorted, engine files and temp files left out, stale temp files removed. */
	unlink("/dev/null/x");
	put(".web.tmp-1-2", "partial");
	put("bad", "{}");
	put("not a name", "{}");
	ok(meta_device_list(dir, &names, &n) == 0, "list device files");
	ok(n == 4 && strcmp(names[0], "0123abcd") == 0 && strcmp(names[1], "bad") == 0 &&
	   strcmp(names[2], "plain") == 0 && strcmp(names[3], "web") == 0, "sorted device names only (%zu)", n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	{
		char p[600];
		struct stat st;

		snprintf(p, sizeof(p), "%s/.web.tmp-1-2", dir);
		ok(stat(p, &st) < 0 && errno == ENOENT, "a stale temp file is removed");
	}

	/* Atomic writes: content replaced, no temp file left. */
	int before = count_entries();
	ok(meta_write_atomic(dir, "plain", "{\"device_id\":8,\"size\":2,\"transaction_id\":2}", 44) == 0 &&
	   meta_device_load(dir, "plain", &back) == 0 && back.device_id == 8, "atomic write replaces the content");
	is_int(count_entries(), before, "no temp file left behind");
	ok(meta_device_remove(dir, "plain") == 0 && meta_device_load(dir, "plain", &back) == -ENOENT,
	   "remove a device file");
	is_int(meta_device_remove(dir, "plain"), -ENOENT, "removing it again is ENOENT");
	ok(meta_write_atomic("/nonexistent-dir", "x", "y", 1) < 0, "writing into a missing directory fails");
	{
		char sub[600];

		snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
		ok(meta_mkdir_p(sub, 0700) == 0 && meta_mkdir_p(sub, 0700) == 0 && access(sub, F_OK) == 0,
		   "mkdir -p, twice");
	}

	/* Info JSON, read back by jq. */
	snprintf(di.name, sizeof(di.name), "web");
	snprintf(di.parent, sizeof(di.parent), "base");
	di.device_id = 7;
	di.size = 512;
	di.mount_count = 2;
	di.mounted = true;
	snprintf(di.dm_name, sizeof(di.dm_name), "thinfs-8:1-2-web");
	snprintf(di.filesystem, sizeof(di.filesystem), "xfs");
	di.created = 1795580637;
	snprintf(di.last_error, sizeof(di.last_error), "bad \"quote\" and \\ backslash");
	json = meta_device_info_json(&di);
	ok(json && json[strlen(json) - 1] == '\n', "device info JSON ends in a newline");
	const char *dkeys[] = { "name", "parent", "device_id", "size", "transaction_id", "initialized", "deleted",
		"mounted", "mount_count", "read_only", "dm_name", "dev_path", "filesystem", "created",
		"mapped_bytes", "last_error", NULL };
	for (int i = 0; json && dkeys[i]; i++) {
		char f[128];

		snprintf(f, sizeof(f), "has(\"%s\")", dkeys[i]);
		ok(jq_true(json, f) == 0, "device info has %s", dkeys[i]);
	}
	ok(json && jq_true(json, ".mapped_bytes == null and .dev_path == null and .mount_count == 2 and "
			   ".created == \"2026-11-25T04:23:57Z\" and .last_error == \"bad \\\"quote\\\" and \\\\ backslash\"") == 0,
	   "unknown figures are null, strings escaped");
	free(json);
	di.mapped_known = true;
	di.mapped_bytes = 4096;
	di.parent[0] = '\0';
	json = meta_device_info_json(&di);
	ok(json && jq_true(json, ".mapped_bytes == 4096 and .parent == null") == 0, "mapped_bytes when known");
	free(json);
	snprintf(pi.backend, sizeof(pi.backend), "reflink");
	pi.data_total = 100;
	pi.data_used = 40;
	pi.data_available = 60;
	pi.min_free_space = 10;
	json = meta_pool_info_json(&pi);
	const char *pkeys[] = { "backend", "pool_name", "data_file", "data_loopback", "metadata_file",
		"metadata_loopback", "data", "metadata", "base_device_size", "base_device_fs", "sector_size",
		"udev_sync_supported", "deferred_remove_enabled", "deferred_delete_enabled",
		"deferred_deleted_device_count", "device_count", "transaction_id", NULL };
	for (int i = 0; json && pkeys[i]; i++) {
		char f[128];

		snprintf(f, sizeof(f), "has(\"%s\")", pkeys[i]);
		ok(jq_true(json, f) == 0, "pool info has %s", pkeys[i]);
	}
	ok(json && jq_true(json, ".data.used == 40 and .data.total == 100 and .data.available == 60 and "
			   ".min_free_space == \"10%\"") == 0, "pool data figures");
	free(json);

	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
