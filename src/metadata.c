/*
 * metadata.c - the engine's JSON files through json-c, each written
 * atomically (temp file, fsync, rename, fsync of the directory), and the
 * JSON of the info files. The only file that includes json-c; it turns
 * json-c's NULL returns into 0/-errno here.
 */
#include "metadata.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "log.h"

#define META_DEVICESET "deviceset-metadata"
#define META_TRANSACTION "transaction-metadata"
#define META_MAX_FILE (1024 * 1024)

/* A device name as doc/design.md §1 has it; "base" is allowed here (the base
 * device's file), the engine's own two file names are not. */
static bool valid_file_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > DS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return strcmp(name, META_DEVICESET) != 0 && strcmp(name, META_TRANSACTION) != 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int meta_write_atomic(const char *dir, const char *name, const char *data,
		      size_t len)
{
	char tmp[NAME_MAX + 1];
	int dfd, fd = -1, r;
	bool made = false;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		log_err("metadata %s: open directory: %s", dir, strerror(-r));
		return r;
	}
	/* A restarted daemon may get the PID of the one that left a temp file
	 * behind: a clash is retried with another random suffix. */
	for (int tries = 0; tries < 8; tries++) {
		unsigned long rnd;

		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
			rnd = (unsigned long)random() ^ ((unsigned long)time(NULL) << 16);
		snprintf(tmp, sizeof(tmp), ".%.*s.tmp-%d-%lx", 200, name, (int)getpid(), rnd);
		fd = openat(dfd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		r = -errno;
		log_err("metadata %s/%s: create temp file: %s", dir, tmp, strerror(-r));
		goto out;
	}
	made = true;
	r = write_all(fd, data, len);
	if (r < 0) {
		log_err("metadata %s/%s: write: %s", dir, tmp, strerror(-r));
		goto out;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		log_err("metadata %s/%s: fsync: %s", dir, tmp, strerror(-r));
		goto out;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		r = -errno;
		log_err("metadata %s/%s: rename to %s: %s", dir, tmp, name, strerror(-r));
		goto out;
	}
	made = false;
	if (fsync(dfd) < 0) {
		r = -errno;
		log_err("metadata %s: fsync directory: %s", dir, strerror(-r));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (made && unlinkat(dfd, tmp, 0) < 0)
		log_warn("metadata %s/%s: remove the temp file: %s", dir, tmp, strerror(errno));
	close(dfd);
	return r;
}

int meta_fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0) {
		r = -errno;
		log_err("fsync %s: open: %s", path, strerror(-r));
		return r;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		log_err("fsync %s: %s", path, strerror(-r));
	}
	close(fd);
	return r;
}

int meta_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		return meta_fsync_path(".");
	if (slash == path)
		return meta_fsync_path("/");
	if ((size_t)(slash - path) >= sizeof(dir)) {
		log_err("fsync the directory of %s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return meta_fsync_path(dir);
}

int meta_mkdir_p(const char *path, int mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	struct stat st;
	int r = 0;

	if (len == 0 || len >= sizeof(buf)) {
		log_err("mkdir '%s': empty or too long a path", path);
		return -EINVAL;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(buf, (mode_t)mode) == 0) {
			/* Make the new entry durable in its parent. */
			r = meta_fsync_parent(buf);
			if (r < 0)
				return r;
		} else if (errno != EEXIST) {
			r = -errno;
			log_err("mkdir %s: %s", buf, strerror(-r));
			return r;
		}
		*p = saved;
		if (!saved)
			break;
	}
	/* EEXIST may have been a file of that name. */
	if (stat(path, &st) < 0) {
		r = -errno;
		log_err("mkdir %s: stat: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("mkdir %s: exists and is not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

/* Read dir/name into a parsed JSON object. -ENOENT, -EUCLEAN (logged). */
static int load_object(const char *dir, const char *name, struct json_object **out)
{
	char path[PATH_MAX];
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	char *buf = NULL;
	ssize_t n;
	size_t len = 0, cap = 0, end;
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r != -ENOENT)
			log_err("metadata %s: open: %s", path, strerror(-r));
		return r;
	}
	/* The buffer grows with the file (up to one byte past the limit, to
	 * tell a file that is too large): a start reads thousands of files of
	 * a few hundred bytes, and a megabyte each is wasted work (under ASan
	 * an mmap and munmap per file). */
	for (n = 0; len <= META_MAX_FILE; len += (size_t)n) {
		if (len == cap) {
			char *nb;

			cap = cap ? (cap * 2 > META_MAX_FILE + 1 ? META_MAX_FILE + 1 : cap * 2) : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
	}
	if (n < 0) {
		r = -errno;
		log_err("metadata %s: read: %s", path, strerror(-r));
		goto out;
	}
	if (len > META_MAX_FILE) {
		r = -EUCLEAN;
		log_err("metadata %s: larger than %d bytes: not a metadata file", path, META_MAX_FILE);
		goto out;
	}
	if (len == 0) {
		r = -EUCLEAN;
		log_err("metadata %s: file is empty", path);
		goto out;
	}
	tok = json_tokener_new();
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	end = obj ? json_tokener_get_parse_end(tok) : len;
	if (!obj && json_tokener_get_error(tok) == json_tokener_continue) {
		/* A bare number or literal waits for a delimiter: the end of
		 * the file is one. Objects and arrays stay unfinished. */
		obj = json_tokener_parse_ex(tok, "", 1);
	}
	if (!obj) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		r = -EUCLEAN;
		if (e == json_tokener_success)
			log_err("metadata %s: not a JSON object (null)", path);
		else
			log_err("metadata %s: not valid JSON: %s", path,
				e == json_tokener_continue || e == json_tokener_error_parse_eof ?
				"truncated" : json_tokener_error_desc(e));
		goto out;
	}
	for (; end < len; end++) {
		char c = buf[end];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			r = -EUCLEAN;
			log_err("metadata %s: unexpected data after the JSON value at byte %zu",
				path, end);
			goto out;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		r = -EUCLEAN;
		log_err("metadata %s: not a JSON object", path);
		goto out;
	}
	*out = obj;
	obj = NULL;
	r = 0;
out:
	json_object_put(obj);
	if (tok)
		json_tokener_free(tok);
	free(buf);
	close(fd);
	return r;
}

static int get_uint(struct json_object *o, const char *dir, const char *file,
		    const char *key, bool required, uint64_t max, uint64_t *out)
{
	struct json_object *v;
	int64_t i;
	uint64_t u;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		if (!required)
			return 1;
		log_err("metadata %s/%s: key '%s' is missing", dir, file, key);
		return -EUCLEAN;
	}
	if (!json_object_is_type(v, json_type_int)) {
		log_err("metadata %s/%s: key '%s' is not an integer", dir, file, key);
		return -EUCLEAN;
	}
	i = json_object_get_int64(v);
	if (i < 0) {
		log_err("metadata %s/%s: key '%s' is negative", dir, file, key);
		return -EUCLEAN;
	}
	/* json-c saturates at INT64_MAX; larger values are kept as unsigned. */
	u = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
	if (u > max) {
		log_err("metadata %s/%s: key '%s' is out of range (%" PRIu64 ")", dir, file, key, u);
		return -EUCLEAN;
	}
	*out = u;
	return 0;
}

static int get_bool(struct json_object *o, const char *dir, const char *file,
		    const char *key, bool *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		*out = false;
		return 0;
	}
	if (!json_object_is_type(v, json_type_boolean)) {
		log_err("metadata %s/%s: key '%s' is not a boolean", dir, file, key);
		return -EUCLEAN;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_string(struct json_object *o, const char *dir, const char *file,
		      const char *key, char *out, size_t len)
{
	struct json_object *v;
	const char *s;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		log_err("metadata %s/%s: key '%s' is not a string", dir, file, key);
		return -EUCLEAN;
	}
	s = json_object_get_string(v);
	if (strlen(s) >= len) {
		log_err("metadata %s/%s: key '%s' is too long", dir, file, key);
		return -EUCLEAN;
	}
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* Serialise obj and write it atomically; drops obj. */
static int save_object(const char *dir, const char *name, struct json_object *obj)
{
	const char *text;
	int r;

	if (!obj)
		return -ENOMEM;
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = text ? meta_write_atomic(dir, name, text, strlen(text)) : -ENOMEM;
	json_object_put(obj);
	return r;
}

/* json_object_object_add that reports allocation failure. */
static int add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int check_name(const char *dir, const char *name, const char *what)
{
	if (valid_file_name(name))
		return 0;
	log_err("metadata %s: refusing to %s device file with invalid name '%s'",
		dir, what, name ? name : "(null)");
	return -EINVAL;
}

int meta_device_save(const char *dir, const struct meta_device *m)
{
	struct json_object *o;
	int r;

	r = check_name(dir, m->name, "write");
	if (r < 0)
		return r;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	r = add(o, "device_id", json_object_new_int64(m->device_id));
	r = r ?: add(o, "size", json_object_new_uint64(m->size));
	r = r ?: add(o, "transaction_id", json_object_new_uint64(m->transaction_id));
	r = r ?: add(o, "initialized", json_object_new_boolean(m->initialized));
	r = r ?: add(o, "deleted", json_object_new_boolean(m->deleted));
	r = r ?: add(o, "parent", json_object_new_string(m->parent));
	r = r ?: add(o, "created", json_object_new_int64(m->created));
	if (!r && m->renamed_from[0])
		r = add(o, "renamed_from", json_object_new_string(m->renamed_from));
	r = r ?: add(o, "mount_count", json_object_new_int(m->mount_count));
	r = r ?: add(o, "mount_read_only", json_object_new_boolean(m->mount_read_only));
	if (r < 0) {
		json_object_put(o);
		return r;
	}
	return save_object(dir, m->name, o);
}

int meta_device_load(const char *dir, const char *name, struct meta_device *m)
{
	struct json_object *o = NULL;
	uint64_t v;
	int r;

	r = check_name(dir, name, "read");
	if (r < 0)
		return r;
	r = load_object(dir, name, &o);
	if (r < 0)
		return r;
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	r = get_uint(o, dir, name, "device_id", true, 0xffffff, &v);
	if (r < 0)
		goto out;
	m->device_id = (uint32_t)v;
	r = get_uint(o, dir, name, "size", true, INT64_MAX, &m->size);
	r = r < 0 ? r : get_uint(o, dir, name, "transaction_id", true, UINT64_MAX, &m->transaction_id);
	r = r < 0 ? r : get_bool(o, dir, name, "initialized", &m->initialized);
	r = r < 0 ? r : get_bool(o, dir, name, "deleted", &m->deleted);
	r = r < 0 ? r : get_string(o, dir, name, "parent", m->parent, sizeof(m->parent));
	r = r < 0 ? r : get_string(o, dir, name, "renamed_from", m->renamed_from, sizeof(m->renamed_from));
	if (r < 0)
		goto out;
	r = get_uint(o, dir, name, "created", false, INT64_MAX, &v);
	if (r < 0)
		goto out;
	m->created = r == 1 ? 0 : (int64_t)v;
	r = get_uint(o, dir, name, "mount_count", false, INT_MAX, &v);
	if (r < 0)
		goto out;
	m->mount_count = r == 1 ? 0 : (int)v;
	m->mount_recorded = r == 0;
	r = get_bool(o, dir, name, "mount_read_only", &m->mount_read_only);
	if (r < 0)
		goto out;
	if ((m->parent[0] && !valid_file_name(m->parent)) ||
	    (m->renamed_from[0] && !valid_file_name(m->renamed_from))) {
		log_err("metadata %s/%s: parent or renamed_from is not a device name", dir, name);
		r = -EUCLEAN;
	}
out:
	json_object_put(o);
	return r;
}

int meta_device_remove(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int r;

	r = check_name(dir, name, "remove");
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (unlink(path) < 0) {
		r = -errno;
		if (r != -ENOENT)
			log_err("metadata %s: unlink: %s", path, strerror(-r));
		return r;
	}
	return meta_fsync_path(dir);
}

int meta_device_move(const char *from_dir, const char *from, const char *to_dir, const char *to, bool *moved)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	*moved = false;
	r = check_name(from_dir, from, "move");
	if (r == 0)
		r = check_name(to_dir, to, "move");
	if (r < 0)
		return r;
	snprintf(src, sizeof(src), "%s/%s", from_dir, from);
	snprintf(dst, sizeof(dst), "%s/%s", to_dir, to);
	r = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) < 0 ? -errno : 0;
	if (r == -EINVAL) {
		/* A filesystem without RENAME_NOREPLACE: dst is a name the
		 * engine holds (a tombstone's ID, or a device name, reserved
		 * under its pool lock), so nothing of its own makes it in
		 * between. */
		if (faccessat(AT_FDCWD, dst, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			r = -EEXIST;
		else
			r = rename(src, dst) < 0 ? -errno : 0;
	}
	if (r < 0) {
		if (r != -ENOENT)
			log_err("metadata %s: rename to %s: %s", src, dst, strerror(-r));
		return r;
	}
	*moved = true;
	r = meta_fsync_path(to_dir);
	return r < 0 || strcmp(from_dir, to_dir) == 0 ? r : meta_fsync_path(from_dir);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int meta_device_list(const char *dir, bool remove_temp, char ***names, size_t *n)
{
	DIR *d;
	struct dirent *e;
	char **list = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	*names = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d) {
		r = -errno;
		log_err("metadata %s: opendir: %s", dir, strerror(-r));
		return r;
	}
	while ((errno = 0, e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, META_DEVICESET) == 0 ||
		    strcmp(e->d_name, META_TRANSACTION) == 0)
			continue;
		if (e->d_name[0] == '.') {
			if (!remove_temp)
				continue;
			if (unlinkat(dirfd(d), e->d_name, 0) == 0)
				log_info("metadata %s/%s: removed a stale temp file from an interrupted write",
					 dir, e->d_name);
			else
				log_warn("metadata %s/%s: stale temp file: unlink: %s",
					 dir, e->d_name, strerror(errno));
			continue;
		}
		if (!valid_file_name(e->d_name)) {
			log_warn("metadata %s/%s: not a device name, ignored", dir, e->d_name);
			continue;
		}
		r = GROW(list, cap, count, 64);
		if (r < 0)
			goto out;
		list[count] = strdup(e->d_name);
		if (!list[count]) {
			r = -ENOMEM;
			goto out;
		}
		count++;
	}
	if (errno) {
		r = -errno;
		log_err("metadata %s: readdir: %s", dir, strerror(-r));
		goto out;
	}
	if (count)
		qsort(list, count, sizeof(*list), cmp_names);
	*names = list;
	*n = count;
	list = NULL;
	count = 0;
out:
	for (size_t i = 0; i < count; i++)
		free(list[i]);
	free(list);
	closedir(d);
	return r;
}

int meta_deviceset_save(const char *dir, const struct meta_deviceset *m)
{
	struct json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	r = add(o, "next_device_id", json_object_new_int64(m->next_device_id));
	r = r ?: add(o, "base_device_uuid", json_object_new_string(m->base_device_uuid));
	r = r ?: add(o, "base_device_fs", json_object_new_string(m->base_device_fs));
	/* The same two under the names Docker's engine gives them (Go's
	 * field names, no json tag), so a Docker state directory stays
	 * Docker's: dockerd checks its base device against them. */
	r = r ?: add(o, "BaseDeviceUUID", json_object_new_string(m->base_device_uuid));
	r = r ?: add(o, "BaseDeviceFilesystem", json_object_new_string(m->base_device_fs));
	if (r < 0) {
		json_object_put(o);
		return r;
	}
	return save_object(dir, META_DEVICESET, o);
}

int meta_deviceset_load(const char *dir, struct meta_deviceset *m)
{
	struct json_object *o = NULL;
	uint64_t v = 0;
	int r;

	memset(m, 0, sizeof(*m));
	r = load_object(dir, META_DEVICESET, &o);
	if (r < 0)
		return r;
	r = get_uint(o, dir, META_DEVICESET, "next_device_id", false, 0xffffff, &v);
	if (r < 0)
		goto out;
	m->next_device_id = r == 1 ? 0 : (uint32_t)v;
	r = get_string(o, dir, META_DEVICESET, "base_device_uuid", m->base_device_uuid,
		       sizeof(m->base_device_uuid));
	r = r < 0 ? r : get_string(o, dir, META_DEVICESET, "base_device_fs", m->base_device_fs,
				   sizeof(m->base_device_fs));
	/* A file Docker's engine wrote has its keys only. */
	if (r == 0 && !m->base_device_uuid[0])
		r = get_string(o, dir, META_DEVICESET, "BaseDeviceUUID", m->base_device_uuid,
			       sizeof(m->base_device_uuid));
	if (r == 0 && !m->base_device_fs[0])
		r = get_string(o, dir, META_DEVICESET, "BaseDeviceFilesystem", m->base_device_fs,
			       sizeof(m->base_device_fs));
out:
	json_object_put(o);
	return r < 0 ? r : 0;
}

int meta_transaction_save(const char *dir, const struct meta_transaction *m)
{
	struct json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	r = add(o, "open_transaction_id", json_object_new_uint64(m->open_transaction_id));
	r = r ?: add(o, "device_hash", json_object_new_string(m->device_hash));
	r = r ?: add(o, "device_id", json_object_new_int64(m->device_id));
	if (r < 0) {
		json_object_put(o);
		return r;
	}
	return save_object(dir, META_TRANSACTION, o);
}

int meta_transaction_load(const char *dir, struct meta_transaction *m)
{
	struct json_object *o = NULL;
	uint64_t v = 0;
	int r;

	memset(m, 0, sizeof(*m));
	r = load_object(dir, META_TRANSACTION, &o);
	if (r < 0)
		return r;
	r = get_uint(o, dir, META_TRANSACTION, "open_transaction_id", true, UINT64_MAX,
		     &m->open_transaction_id);
	r = r < 0 ? r : get_string(o, dir, META_TRANSACTION, "device_hash", m->device_hash,
				   sizeof(m->device_hash));
	if (r < 0)
		goto out;
	r = get_uint(o, dir, META_TRANSACTION, "device_id", false, 0xffffff, &v);
	if (r < 0)
		goto out;
	m->device_id = r == 1 ? 0 : (uint32_t)v;
	r = 0;
out:
	json_object_put(o);
	return r;
}

int meta_parse_tid(const char *text, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len == 0)
		return -EUCLEAN;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)text[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -EUCLEAN;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static struct json_object *str_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static char *to_text(struct json_object *o, int r)
{
	const char *text;
	char *copy = NULL;

	if (r == 0) {
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
		if (text && asprintf(&copy, "%s\n", text) < 0)
			copy = NULL;
	}
	json_object_put(o);
	return copy;
}

/* add() for values that may legitimately be JSON null. */
static int add_nullable(struct json_object *o, const char *key, struct json_object *v)
{
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

void meta_iso_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (len)
		buf[0] = '\0';
	if (t && gmtime_r(&tt, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *meta_state_word(int mount_count, bool automounted, bool held, bool active)
{
	return mount_count > 0 ? "mounted" : automounted ? "automounted" : held ? "detached-busy"
		: active ? "active" : "inactive";
}

char *meta_device_info_json(const struct ds_device_info *d)
{
	struct json_object *o = json_object_new_object();
	char created[META_ISO_TIME_LEN], error_at[META_ISO_TIME_LEN];
	int r;

	if (!o)
		return NULL;
	meta_iso_time(d->created, created, sizeof(created));
	meta_iso_time(d->last_error[0] ? d->last_error_at : 0, error_at, sizeof(error_at));
	r = add(o, "name", json_object_new_string(d->name));
	r = r ?: add_nullable(o, "parent", str_or_null(d->parent));
	r = r ?: add(o, "device_id", json_object_new_int64(d->device_id));
	r = r ?: add(o, "size", json_object_new_uint64(d->size));
	r = r ?: add(o, "transaction_id", json_object_new_uint64(d->transaction_id));
	r = r ?: add(o, "initialized", json_object_new_boolean(d->initialized));
	r = r ?: add(o, "deleted", json_object_new_boolean(d->deleted));
	r = r ?: add(o, "mounted", json_object_new_boolean(d->mounted));
	r = r ?: add(o, "mount_count", json_object_new_int(d->mount_count));
	r = r ?: add(o, "automounted", json_object_new_boolean(d->automounted));
	r = r ?: add(o, "read_only", json_object_new_boolean(d->read_only));
	r = r ?: add(o, "active", json_object_new_boolean(d->active));
	r = r ?: add(o, "state", json_object_new_string(meta_state_word(d->mount_count, d->automounted, d->held,
									 d->active)));
	r = r ?: add(o, "dm_name", json_object_new_string(d->dm_name));
	r = r ?: add_nullable(o, "dev_path", str_or_null(d->dev_path));
	r = r ?: add(o, "filesystem", json_object_new_string(d->filesystem));
	r = r ?: add(o, "rootfs", json_object_new_string(d->rootfs));
	r = r ?: add_nullable(o, "created", str_or_null(created));
	r = r ?: add(o, "created_unix", json_object_new_int64(d->created));
	r = r ?: add_nullable(o, "mapped_bytes",
			      d->mapped_known ? json_object_new_uint64(d->mapped_bytes) : NULL);
	r = r ?: add_nullable(o, "exclusive_bytes", d->usage_at ? json_object_new_uint64(d->exclusive_bytes) : NULL);
	r = r ?: add_nullable(o, "shared_bytes", d->usage_at ? json_object_new_uint64(d->shared_bytes) : NULL);
	r = r ?: add_nullable(o, "usage_at", d->usage_at ? json_object_new_int64(d->usage_at) : NULL);
	r = r ?: add_nullable(o, "last_error", str_or_null(d->last_error));
	r = r ?: add_nullable(o, "last_error_at", str_or_null(error_at));
	r = r ?: add(o, "children", json_object_new_int(d->n_children));
	return to_text(o, r);
}

static struct json_object *space(uint64_t used, uint64_t total, uint64_t avail)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (add(o, "used", json_object_new_uint64(used)) ||
	    add(o, "total", json_object_new_uint64(total)) ||
	    add(o, "available", json_object_new_uint64(avail))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *id_array(const uint32_t *ids, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++) {
		struct json_object *v = json_object_new_int64(ids[i]);

		if (!v || json_object_array_add(a, v) < 0) {
			json_object_put(v);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

/* [{"name", "exclusive_bytes", "shared_bytes"}...], most exclusive first. */
static struct json_object *usage_ranking(const struct ds_pool_info *p)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; a && i < p->n_top_usage; i++) {
		struct json_object *e = json_object_new_object();
		int r = e ? 0 : -ENOMEM;

		r = r ?: add(e, "name", json_object_new_string(p->top_usage[i].name));
		r = r ?: add(e, "exclusive_bytes", json_object_new_uint64(p->top_usage[i].exclusive_bytes));
		r = r ?: add(e, "shared_bytes", json_object_new_uint64(p->top_usage[i].shared_bytes));
		if (r < 0 || json_object_array_add(a, e) < 0) {
			json_object_put(e);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

char *meta_pool_info_json(const struct ds_pool_info *p)
{
	struct json_object *o = json_object_new_object();
	char pct[16], error_at[META_ISO_TIME_LEN];
	int r;

	meta_iso_time(p->last_error[0] ? p->last_error_at : 0, error_at, sizeof(error_at));
	if (!o)
		return NULL;
	snprintf(pct, sizeof(pct), "%u%%", p->min_free_space);
	r = add(o, "backend", json_object_new_string(p->backend));
	r = r ?: add(o, "pool_name", json_object_new_string(p->pool_name));
	r = r ?: add_nullable(o, "data_file", str_or_null(p->data_file));
	r = r ?: add_nullable(o, "data_loopback", str_or_null(p->data_loopback));
	r = r ?: add_nullable(o, "metadata_file", str_or_null(p->metadata_file));
	r = r ?: add_nullable(o, "metadata_loopback", str_or_null(p->metadata_loopback));
	r = r ?: add(o, "data", space(p->data_used, p->data_total, p->data_available));
	r = r ?: add(o, "metadata", space(p->metadata_used, p->metadata_total, p->metadata_available));
	r = r ?: add(o, "base_device_size", json_object_new_uint64(p->base_device_size));
	r = r ?: add(o, "base_device_fs", json_object_new_string(p->base_device_fs));
	r = r ?: add(o, "sector_size", json_object_new_int64(p->sector_size));
	r = r ?: add(o, "block_size", json_object_new_int64(p->block_size));
	r = r ?: add(o, "udev_sync_supported", json_object_new_boolean(p->udev_sync_supported));
	r = r ?: add(o, "deferred_remove_enabled", json_object_new_boolean(p->deferred_remove_enabled));
	r = r ?: add(o, "deferred_delete_enabled", json_object_new_boolean(p->deferred_delete_enabled));
	r = r ?: add(o, "deferred_deleted_device_count", json_object_new_int64(p->deferred_deleted_device_count));
	r = r ?: add(o, "device_count", json_object_new_int64(p->device_count));
	r = r ?: add(o, "top_exclusive", usage_ranking(p));
	r = r ?: add_nullable(o, "usage_at", p->usage_at ? json_object_new_int64(p->usage_at) : NULL);
	r = r ?: add(o, "orphan_device_count", json_object_new_int64(p->orphan_count));
	r = r ?: add(o, "orphan_device_ids", id_array(p->orphan_ids, p->orphan_count < DS_ORPHANS_SHOWN
								      ? p->orphan_count : DS_ORPHANS_SHOWN));
	r = r ?: add(o, "transaction_id", json_object_new_uint64(p->transaction_id));
	r = r ?: add(o, "min_free_space", json_object_new_string(pct));
	snprintf(pct, sizeof(pct), "%u%%", p->low_space_threshold);
	r = r ?: add(o, "low_space", json_object_new_boolean(p->low_space));
	r = r ?: add(o, "low_space_threshold", json_object_new_string(pct));
	r = r ?: add_nullable(o, "last_error", str_or_null(p->last_error));
	r = r ?: add_nullable(o, "last_error_at", str_or_null(error_at));
	return to_text(o, r);
}

static struct json_object *listing_entry(const struct ds_list_entry *e)
{
	struct json_object *o = json_object_new_object();
	bool known = e->usage_at != 0;
	int r;

	if (!o)
		return NULL;
	r = add(o, "name", json_object_new_string(e->name));
	r = r ?: add(o, "path", json_object_new_string(e->path));
	r = r ?: add_nullable(o, "parent", str_or_null(e->parent));
	r = r ?: add(o, "device_id", json_object_new_int64(e->device_id));
	r = r ?: add(o, "size", json_object_new_uint64(e->size));
	r = r ?: add_nullable(o, "mapped_bytes",
			      known ? json_object_new_uint64(e->exclusive_bytes + e->shared_bytes) : NULL);
	r = r ?: add_nullable(o, "exclusive_bytes", known ? json_object_new_uint64(e->exclusive_bytes) : NULL);
	r = r ?: add_nullable(o, "shared_bytes", known ? json_object_new_uint64(e->shared_bytes) : NULL);
	r = r ?: add_nullable(o, "usage_at", known ? json_object_new_int64(e->usage_at) : NULL);
	r = r ?: add(o, "mounted", json_object_new_boolean(e->mount_count > 0));
	r = r ?: add(o, "mount_count", json_object_new_int(e->mount_count));
	r = r ?: add(o, "automounted", json_object_new_boolean(e->automounted));
	r = r ?: add(o, "read_only", json_object_new_boolean(e->read_only));
	r = r ?: add(o, "active", json_object_new_boolean(e->active));
	r = r ?: add(o, "held", json_object_new_boolean(e->held));
	r = r ?: add(o, "state", json_object_new_string(meta_state_word(e->mount_count, e->automounted, e->held,
									 e->active)));
	r = r ?: add(o, "rootfs", json_object_new_string(e->rootfs));
	r = r ?: add(o, "created_unix", json_object_new_int64(e->created));
	if (r < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

char *meta_listing_json(const struct ds_listing *l)
{
	char *text = NULL;
	size_t len = 0, cap = 0;
	bool ok = true;

	/* Object by object, each freed once written: the listing of a large
	 * pool is never a tree of json-c objects at once, here or in the
	 * reader (meta_listing_parse). */
	for (size_t i = 0; ok && i < l->n; i++) {
		struct json_object *o = listing_entry(&l->e[i]);
		const char *one = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE)
				    : NULL;
		size_t need = (one ? strlen(one) : 0) + 2;

		if (!one)
			ok = false;
		else if (len + need + 1 > cap) {
			size_t ncap = (len + need + 1) * 2;
			char *t = realloc(text, ncap);

			if (t) {
				text = t;
				cap = ncap;
			} else {
				ok = false;
			}
		}
		if (ok)
			len += (size_t)sprintf(text + len, "%s\n", one);
		json_object_put(o);
	}
	if (ok && !text)
		ok = (text = strdup("")) != NULL;
	if (!ok) {
		free(text);
		return NULL;
	}
	return text;
}

static const char *listed_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

static int64_t listed_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static uint64_t listed_uint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static bool listed_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* One line's object into e; -EINVAL without the keys every entry has. */
static int listed_entry(struct json_object *o, struct ds_list_entry *e)
{
	const char *name = listed_str(o, "name"), *path = listed_str(o, "path");
	const char *parent = listed_str(o, "parent"), *rootfs = listed_str(o, "rootfs");

	if (!name || !path || !rootfs)
		return -EINVAL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->parent, sizeof(e->parent), "%s", parent ? parent : "");
	e->path = strdup(path);
	e->rootfs = strdup(rootfs);
	if (!e->path || !e->rootfs)
		return -ENOMEM;
	e->device_id = (uint32_t)listed_int(o, "device_id");
	e->size = listed_uint(o, "size");
	e->mount_count = (int)listed_int(o, "mount_count");
	e->automounted = listed_bool(o, "automounted");
	e->read_only = listed_bool(o, "read_only");
	e->active = listed_bool(o, "active");
	e->held = listed_bool(o, "held");
	e->exclusive_bytes = listed_uint(o, "exclusive_bytes");
	e->shared_bytes = listed_uint(o, "shared_bytes");
	e->usage_at = listed_int(o, "usage_at");
	e->created = listed_int(o, "created_unix");
	return 0;
}

int meta_listing_parse(const char *text, struct ds_listing *out, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct ds_listing l = { 0 };
	size_t cap = 0, len = strlen(text), at = 0;
	int r = tok ? 0 : -ENOMEM;

	/* One object a line, each parsed and freed in turn. */
	while (r == 0) {
		struct json_object *o;

		at += strspn(text + at, " \t\r\n");
		if (at >= len)
			break;
		json_tokener_reset(tok);
		o = json_tokener_parse_ex(tok, text + at, (int)(len - at));
		if (!o || !json_object_is_type(o, json_type_object)) {
			snprintf(err, errlen, "entry %zu: not a JSON object", l.n + 1);
			json_object_put(o);
			r = -EINVAL;
			break;
		}
		at += json_tokener_get_parse_end(tok);
		r = GROW(l.e, cap, l.n, 1024);
		if (r == 0) {
			memset(&l.e[l.n], 0, sizeof(l.e[l.n]));
			r = listed_entry(o, &l.e[l.n++]);
			if (r == -EINVAL)
				snprintf(err, errlen, "entry %zu has no name, path or rootfs", l.n);
		}
		json_object_put(o);
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
	}
	if (r == 0) {
		*out = l;
		l.e = NULL;
		l.n = 0;
	}
	ds_listing_free(&l);
	json_tokener_free(tok);
	return r;
}
