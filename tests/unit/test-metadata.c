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

/* Does dir/name contain the text key? */
static bool file_has(const char *name, const char *key)
{
	char path[512], buf[4096];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return strstr(buf, key) != NULL;
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

/* Redirect stderr (where the log goes in the foreground) to a file, so a
 * test can read what a user would see. */
static char logpath[600];
static int saved_stderr = -1;

static void log_capture(void)
{
	int fd;

	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

/* Stop capturing; the captured text in buf. */
static const char *log_captured(char *buf, size_t len)
{
	FILE *f;
	size_t n = 0;

	fflush(stderr);
	if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	buf[0] = '\0';
	f = fopen(logpath, "r");
	if (f) {
		n = fread(buf, 1, len - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	unlink(logpath);
	fputs(buf, stderr);
	return buf;
}

/* A corrupt file gives EUCLEAN and a log line with its full path and the
 * words saying what is wrong. */
static void corrupt_says(const char *what, const char *text, const char *words)
{
	struct meta_device m;
	char logbuf[4096], want[700];
	int r;

	put("bad", text);
	log_capture();
	r = meta_device_load(dir, "bad", &m);
	log_captured(logbuf, sizeof(logbuf));
	snprintf(want, sizeof(want), "metadata %s/bad: %s", dir, words);
	ok(r == -EUCLEAN && strstr(logbuf, want), "%s -> EUCLEAN, logged as \"%s\"", what, want + strlen(dir) + 9);
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
	ok(back.mount_count == 0 && !back.mount_read_only && back.mount_recorded && file_has("web", "mount_count"),
	   "an unmounted device's file records 0 mounts");
	m.mount_count = 2;
	m.mount_read_only = true;
	meta_device_save(dir, &m);
	ok(meta_device_load(dir, "web", &back) == 0 && back.mount_count == 2 && back.mount_read_only,
	   "the mount record (count, read-only) round trip");
	m.mount_count = 0;
	m.mount_read_only = false;
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
	corrupt("trailing garbage", "{\"device_id\":1,\"size\":1,\"transaction_id\":1}xyz");
	corrupt("two objects", "{\"device_id\":1,\"size\":1,\"transaction_id\":1}{\"device_id\":2}");
	corrupt("a number", "42");
	corrupt("whitespace only", "  \n");
	corrupt("null", "null");
	corrupt("transaction_id missing", "{\"device_id\":1,\"size\":1}");
	corrupt("size a float", "{\"device_id\":1,\"size\":1.5,\"transaction_id\":1}");
	corrupt("negative device_id", "{\"device_id\":-1,\"size\":1,\"transaction_id\":1}");
	corrupt("initialized a number", "{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"initialized\":1}");
	corrupt("parent a number", "{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"parent\":7}");
	corrupt("created a string", "{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"created\":\"now\"}");
	{
		char path[600];
		FILE *f;

		snprintf(path, sizeof(path), "%s/bad", dir);
		f = fopen(path, "w");
		if (f) {
			static const char nul_tail[] = "{\"device_id\":1,\"size\":1,\"transaction_id\":1}\0\0\0";

			fwrite(nul_tail, 1, sizeof(nul_tail) - 1, f);
			fclose(f);
		}
		is_int(meta_device_load(dir, "bad", &m), -EUCLEAN, "corrupt device file (NUL bytes after it) -> EUCLEAN");
		/* Bigger than any metadata file: refused before parsing. */
		f = fopen(path, "w");
		if (f) {
			fputs("{\"device_id\":1,\"size\":1,\"transaction_id\":1,\"x\":\"", f);
			for (int i = 0; i < 1100; i++) {
				char kb[1024];

				memset(kb, 'a', sizeof(kb));
				fwrite(kb, 1, sizeof(kb), f);
			}
			fputs("\"}", f);
			fclose(f);
		}
		is_int(meta_device_load(dir, "bad", &m), -EUCLEAN, "a file over 1 MiB -> EUCLEAN");
	}
	corrupt_says("missing device_id", "{\"size\":1,\"transaction_id\":1}", "key 'device_id' is missing");
	corrupt_says("device_id a string", "{\"device_id\":\"5\",\"size\":1,\"transaction_id\":1}",
		     "key 'device_id' is not an integer");
	corrupt_says("device_id 0x1000000", "{\"device_id\":16777216,\"size\":1,\"transaction_id\":1}",
		     "key 'device_id' is out of range");
	corrupt_says("negative size", "{\"device_id\":1,\"size\":-5,\"transaction_id\":1}", "key 'size' is negative");
	corrupt_says("empty file", "", "file is empty");
	corrupt_says("truncated", "{\"device_id\":5,\"size\":10", "not valid JSON: truncated");
	corrupt_says("an array", "[1,2,3]", "not a JSON object");
	unlink("/nonexistent");
	{
		char sub[600];

		/* An empty metadata directory: no engine files yet. */
		snprintf(sub, sizeof(sub), "%s/empty", dir);
		mkdir(sub, 0700);
		is_int(meta_deviceset_load(sub, &sback), -ENOENT, "a missing deviceset-metadata is ENOENT");
		is_int(meta_transaction_load(sub, &tback), -ENOENT, "a missing transaction-metadata is ENOENT");
		rmdir(sub);
	}
	put("deviceset-metadata", "{\"next_device_id\":\"x\"}");
	is_int(meta_deviceset_load(dir, &sback), -EUCLEAN, "corrupt deviceset-metadata -> EUCLEAN");
	put("deviceset-metadata", "{\"next_device_id\":3,\"base_device_uuid\":\"u\",\"base_device_fs\":\"ext4\",\"extra\":1}");
	put("transaction-metadata", "{\"open_transaction_id\":");
	is_int(meta_transaction_load(dir, &tback), -EUCLEAN, "corrupt transaction-metadata -> EUCLEAN");
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
	{
		char longname[DS_NAME_MAX + 2];

		memset(longname, 'a', DS_NAME_MAX + 1);
		longname[DS_NAME_MAX + 1] = '\0';
		ok(meta_device_load(dir, longname, &back) == -EINVAL && meta_device_remove(dir, longname) == -EINVAL,
		   "a 129-character name is refused for load and remove");
	}
	{
		struct meta_device bm = m;
		const char *good[] = { "base", "a", "0", "A.b-c_d", NULL };

		for (int i = 0; good[i]; i++) {
			snprintf(bm.name, sizeof(bm.name), "%s", good[i]);
			bm.renamed_from[0] = '\0';
			ok(meta_device_save(dir, &bm) == 0 && meta_device_load(dir, good[i], &back) == 0 &&
			   meta_device_remove(dir, good[i]) == 0, "name '%s' accepted", good[i]);
		}
	}
	is_int(meta_device_load(dir, "-x", &back), -EINVAL, "a name starting with '-' is refused");
	is_int(meta_device_load(dir, "a b", &back), -EINVAL, "a name with a space is refused");
	is_int(meta_device_load(dir, "a\\b", &back), -EINVAL, "backslash refused");

	/* Listing: sorted, engine files and temp files left out, stale temp files removed. */
	unlink("/dev/null/x");
	put(".web.tmp-1-2", "partial");
	put("bad", "{}");
	put("not a name", "{}");
	{
		char logbuf[4096], want[700];
		int r;

		log_capture();
		r = meta_device_list(dir, true, &names, &n);
		log_captured(logbuf, sizeof(logbuf));
		ok(r == 0, "list device files");
		snprintf(want, sizeof(want), "%s/.web.tmp-1-2: removed a stale temp file", dir);
		ok(strstr(logbuf, want) != NULL, "the removal of a stale temp file is logged");
		snprintf(want, sizeof(want), "%s/not a name", dir);
		ok(strstr(logbuf, want) != NULL, "a file that is not a device name is logged with its path");
	}
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
		snprintf(p, sizeof(p), "%s/not a name", dir);
		ok(stat(p, &st) == 0, "a file that is not a device name is left alone");
		unlink(p);
	}

	/* Atomic writes: content replaced, no temp file left. */
	int before = count_entries();
	const char *plain = "{\"device_id\":8,\"size\":2,\"transaction_id\":2}";

	ok(meta_write_atomic(dir, "plain", plain, strlen(plain)) == 0 &&
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
		snprintf(sub, sizeof(sub), "%s/web/x", dir);
		ok(meta_mkdir_p(sub, 0700) < 0, "mkdir -p through a file fails");
		snprintf(sub, sizeof(sub), "%s/web", dir);
		is_int(meta_mkdir_p(sub, 0700), -ENOTDIR, "mkdir -p of an existing file is ENOTDIR");
		ok(meta_fsync_path(sub) == 0 && meta_fsync_path(dir) == 0, "fsync of a file and of a directory");
	}
	{
		char text[64], path[600];
		int fd;
		ssize_t got;

		ok(meta_write_atomic(dir, "blob", "first version", 13) == 0 &&
		   meta_write_atomic(dir, "blob", "second", 6) == 0, "two atomic writes of one file");
		snprintf(path, sizeof(path), "%s/blob", dir);
		fd = open(path, O_RDONLY);
		got = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
		if (fd >= 0)
			close(fd);
		text[got > 0 ? got : 0] = '\0';
		is_str(text, "second", "the second write replaced the first whole");
		unlink(path);
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
	ok(json && strstr(json, "\"name\": \"web\"") && strstr(json, "\"device_id\": 7") &&
	   strstr(json, "\"mount_count\": 2") && strstr(json, "\"mapped_bytes\": null") &&
	   strstr(json, "\"dev_path\": null") && strstr(json, "\"created\": \"2026-11-25T04:23:57Z\"") &&
	   strstr(json, "\"created_unix\": 1795580637") && strstr(json, "\"mounted\": true") &&
	   strstr(json, "\"dm_name\": \"thinfs-8:1-2-web\""), "device info text has the expected keys and values");
	const char *dkeys[] = { "name", "parent", "device_id", "size", "transaction_id", "initialized", "deleted",
		"mounted", "mount_count", "read_only", "active", "dm_name", "dev_path", "filesystem", "created",
		"created_unix", "mapped_bytes", "last_error", "children", NULL };
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
	ok(json && strstr(json, "\"parent\": null") && strstr(json, "\"mapped_bytes\": 4096"),
	   "the base device's parent is null");
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
		"deferred_deleted_device_count", "device_count", "transaction_id", "block_size", "min_free_space",
		"last_error", NULL };
	for (int i = 0; json && pkeys[i]; i++) {
		char f[128];

		snprintf(f, sizeof(f), "has(\"%s\")", pkeys[i]);
		ok(jq_true(json, f) == 0, "pool info has %s", pkeys[i]);
	}
	ok(json && jq_true(json, ".data.used == 40 and .data.total == 100 and .data.available == 60 and "
			   ".min_free_space == \"10%\" and .metadata_loopback == null and .last_error == null and "
			   ".backend == \"reflink\"") == 0, "pool data figures");
	ok(json && strstr(json, "\"backend\": \"reflink\"") && strstr(json, "\"min_free_space\": \"10%\"") &&
	   strstr(json, "\"metadata_loopback\": null") && strstr(json, "\"used\": 40"),
	   "pool info text has the expected keys and values");
	free(json);

	/* The pool's listing: one object a line, read back by the client. */
	{
		struct ds_list_entry le[2] = { { .name = "base", .path = "", .rootfs = "/s/mnt/1",
						 .device_id = 1, .exclusive_bytes = 5, .shared_bytes = 7,
						 .usage_at = 1795580637, .active = true, .held = true },
					       { .name = "b", .parent = "base", .path = "b",
						 .rootfs = "/s \"q\"\\/mnt/2/rootfs", .device_id = 2,
						 .size = 1 << 20, .mount_count = 2, .read_only = true } };
		struct ds_listing lin = { .e = le, .n = 2 }, lout = { 0 };
		char err[128] = "";

		size_t lines = 0;

		json = meta_listing_json(&lin);
		for (const char *c = json; c && *c; c++)
			lines += *c == '\n';
		ok(json && lines == 2 && json[strlen(json) - 1] == '\n', "listing: one line a device");
		ok(json && jq_true(json, "[., inputs] | length == 2 and .[0].mapped_bytes == 12 and "
				   ".[0].parent == null and .[1].exclusive_bytes == null and .[1].mapped_bytes == null "
				   "and .[1].usage_at == null and .[1].mount_count == 2 and .[1].path == \"b\"") == 0,
		   "listing: mapped is exclusive + shared, unknown figures null");
		ok(json && jq_true(json, "[., inputs] | .[0].held and .[0].state == \"detached-busy\" and "
				   "(.[1].held | not) and .[1].state == \"mounted\"") == 0,
		   "listing: a held device's state is info's, detached-busy");
		ok(json && meta_listing_parse(json, &lout, err, sizeof(err)) == 0 && lout.n == 2 &&
		   strcmp(lout.e[1].rootfs, le[1].rootfs) == 0 && strcmp(lout.e[1].parent, "base") == 0 &&
		   lout.e[1].mount_count == 2 && lout.e[1].read_only && lout.e[0].shared_bytes == 7 &&
		   lout.e[0].usage_at == 1795580637 && lout.e[0].parent[0] == '\0' && lout.e[0].held &&
		   !lout.e[1].held, "listing read back as written");
		ds_listing_free(&lout);
		free(json);
		ok(meta_listing_parse("{\"name\": \"x\"}\n", &lout, err, sizeof(err)) == -EINVAL && lout.n == 0 &&
		   strstr(err, "entry 1"), "a listing entry without its keys: EINVAL, named (%s)", err);
		ok(meta_listing_parse("[1]", &lout, err, sizeof(err)) == -EINVAL, "not lines of objects: EINVAL");
	}

	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
