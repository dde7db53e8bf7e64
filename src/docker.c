/*
 * docker.c - the genealogy of a Docker devicemapper state directory, read
 * from Docker's layer database (see docker.h), and the name Docker gives
 * that directory's pool. Reads only; nothing of Docker's is written.
 */
#include "docker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deviceset.h"
#include "grow.h"
#include "log.h"

/* "sha256:" and 64 hex digits; room for longer digests. */
#define CHAIN_MAX 160
/* Docker's files hold an ID or a digest: anything longer is not one. */
#define SMALL_FILE_MAX 512

struct layer {
	char chain[CHAIN_MAX];      /* "ALG:HEX", the layer's directory */
	char cache[DS_NAME_MAX + 1];
	char parent[CHAIN_MAX];     /* "" for a bottom layer */
};

struct pairs {
	struct docker_parent *v;
	size_t n, cap;
};

/* dir/name (dirfd) into buf, trailing whitespace dropped. 0; -ENOENT;
 * -EUCLEAN for a file too long to be an ID or a digest; -errno. Only
 * ENOENT is left for the caller to log. */
static int read_small(int dirfd, const char *dir, const char *name, char *buf, size_t len)
{
	char tmp[SMALL_FILE_MAX + 1];
	size_t got = 0;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		if (r != -ENOENT)
			log_warn("docker layer database: open %s/%s: %s", dir, name, strerror(-r));
		return r;
	}
	while (got < sizeof(tmp)) {
		ssize_t k = read(fd, tmp + got, sizeof(tmp) - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			log_warn("docker layer database: read %s/%s: %s", dir, name, strerror(-r));
			goto out;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	while (got > 0 && (tmp[got - 1] == '\n' || tmp[got - 1] == ' ' || tmp[got - 1] == '\t' ||
			   tmp[got - 1] == '\r'))
		got--;
	if (got >= len || got > SMALL_FILE_MAX) {
		log_warn("docker layer database: %s/%s: longer than an ID or a digest", dir, name);
		r = -EUCLEAN;
		goto out;
	}
	memcpy(buf, tmp, got);
	buf[got] = '\0';
out:
	close(fd);
	return r;
}

static int add_pair(struct pairs *p, const char *name, const char *parent)
{
	if (GROW(p->v, p->cap, p->n, 32) < 0)
		return -ENOMEM;
	snprintf(p->v[p->n].name, sizeof(p->v[p->n].name), "%s", name);
	snprintf(p->v[p->n].parent, sizeof(p->v[p->n].parent), "%s", parent);
	p->n++;
	return 0;
}

static int cmp_layer(const void *a, const void *b)
{
	return strcmp(((const struct layer *)a)->chain, ((const struct layer *)b)->chain);
}

static const struct layer *find_layer(const struct layer *v, size_t n, const char *chain)
{
	struct layer key;

	snprintf(key.chain, sizeof(key.chain), "%s", chain);
	return bsearch(&key, v, n, sizeof(*v), cmp_layer);
}

static bool is_subdir(int dirfd, const struct dirent *e)
{
	struct stat st;

	if (e->d_name[0] == '.')
		return false;
	if (e->d_type == DT_DIR)
		return true;
	if (e->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* The layers of layerdb/ALG (one directory per chain ID) appended to
 * *v. -ENOMEM only; unreadable layers are logged and left out. */
static int read_layers(const char *db, const char *alg, struct layer **v, size_t *n, size_t *cap)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (snprintf(dir, sizeof(dir), "%s/%s", db, alg) >= (int)sizeof(dir))
		return 0;
	d = opendir(dir);
	if (!d) {
		log_warn("docker layer database: opendir %s: %s", dir, strerror(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		struct layer l;
		int fd;

		if (!is_subdir(dirfd(d), e))
			continue;
		if (snprintf(l.chain, sizeof(l.chain), "%s:%s", alg, e->d_name) >= (int)sizeof(l.chain) ||
		    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub)) {
			log_warn("docker layer database: %s/%s: not a chain ID", dir, e->d_name);
			continue;
		}
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			log_warn("docker layer database: open %s: %s", sub, strerror(errno));
			continue;
		}
		r = read_small(fd, sub, "cache-id", l.cache, sizeof(l.cache));
		if (r == 0 && ds_check_name(l.cache) < 0) {
			log_warn("docker layer database: %s/cache-id: '%s' is not a device name", sub, l.cache);
			r = -EUCLEAN;
		}
		if (r == 0) {
			r = read_small(fd, sub, "parent", l.parent, sizeof(l.parent));
			if (r == -ENOENT) {
				l.parent[0] = '\0';
				r = 0;
			}
		} else if (r == -ENOENT) {
			/* A layer half made or half removed: no device to
			 * place. */
			log_info("docker layer database: %s has no cache-id: left out", sub);
		}
		close(fd);
		if (r < 0) {
			r = 0;
			continue;
		}
		r = GROW(*v, *cap, *n, 32);
		if (r < 0)
			break;
		(*v)[(*n)++] = l;
	}
	closedir(d);
	return r;
}

/* The device an image (a chain ID, "" for none) leaves its snapshots on:
 * its top layer's device, "base" for none. NULL (logged) if the chain is
 * not in the database. */
static const char *image_device(const struct layer *v, size_t n, const char *chain,
				const char *who)
{
	const struct layer *l;

	if (!chain[0])
		return DS_BASE_NAME;
	l = find_layer(v, n, chain);
	if (!l)
		log_warn("docker layer database: %s names parent %s, which is not in the database: left out",
			 who, chain);
	return l ? l->cache : NULL;
}

/* Each container of layerdb/mounts: its -init device on the image's top
 * layer, its own device on the -init one. -ENOMEM only. */
static int read_mounts(const char *db, const struct layer *v, size_t n, struct pairs *out)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0;

	snprintf(dir, sizeof(dir), "%s/mounts", db);
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			log_warn("docker layer database: opendir %s: %s", dir, strerror(errno));
		return 0;
	}
	while (r == 0 && (e = readdir(d))) {
		char mount_id[DS_NAME_MAX + 1], init_id[DS_NAME_MAX + 1], parent[CHAIN_MAX];
		const char *img;
		int fd, k;

		if (!is_subdir(dirfd(d), e))
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			log_warn("docker layer database: open %s: %s", sub, strerror(errno));
			continue;
		}
		k = read_small(fd, sub, "mount-id", mount_id, sizeof(mount_id));
		if (k == -ENOENT)
			log_info("docker layer database: %s has no mount-id: left out", sub);
		if (k == 0) {
			k = read_small(fd, sub, "init-id", init_id, sizeof(init_id));
			if (k == -ENOENT) {
				init_id[0] = '\0';
				k = 0;
			}
		}
		if (k == 0) {
			k = read_small(fd, sub, "parent", parent, sizeof(parent));
			if (k == -ENOENT) {
				parent[0] = '\0';
				k = 0;
			}
		}
		close(fd);
		if (k < 0)
			continue;
		if (ds_check_name(mount_id) < 0 || (init_id[0] && ds_check_name(init_id) < 0)) {
			log_warn("docker layer database: %s: mount-id or init-id is not a device name: left out",
				 sub);
			continue;
		}
		img = image_device(v, n, parent, sub);
		if (!img)
			continue;
		if (init_id[0]) {
			r = add_pair(out, init_id, img);
			if (r == 0)
				r = add_pair(out, mount_id, init_id);
		} else {
			r = add_pair(out, mount_id, img);
		}
	}
	closedir(d);
	return r;
}

int docker_genealogy(const char *state_dir, struct docker_parent **out, size_t *n)
{
	char db[PATH_MAX];
	const char *slash = strrchr(state_dir, '/');
	struct layer *v = NULL;
	size_t nv = 0, cap = 0, plen;
	struct pairs p = { 0 };
	struct dirent *e;
	DIR *d;
	int r = 0;

	*out = NULL;
	*n = 0;
	/* The image store sits beside the driver's directory:
	 * /var/lib/docker/{devicemapper,image/devicemapper}. */
	plen = slash ? (size_t)(slash - state_dir) : 1;
	if (snprintf(db, sizeof(db), "%.*s/image/devicemapper/layerdb", (int)plen,
		     slash ? state_dir : ".") >= (int)sizeof(db)) {
		log_err("docker layer database of %s: path too long", state_dir);
		return -ENAMETOOLONG;
	}
	d = opendir(db);
	if (!d) {
		r = -errno;
		if (r == -ENOENT || r == -ENOTDIR)
			return 0;
		log_err("docker layer database %s: opendir: %s", db, strerror(-r));
		return r;
	}
	/* layerdb/ALG/CHAIN for each digest algorithm (Docker writes
	 * sha256); mounts/ and tmp/ are not layers. */
	while (r == 0 && (e = readdir(d))) {
		if (!is_subdir(dirfd(d), e) || strcmp(e->d_name, "mounts") == 0 ||
		    strcmp(e->d_name, "tmp") == 0)
			continue;
		r = read_layers(db, e->d_name, &v, &nv, &cap);
	}
	closedir(d);
	if (r < 0)
		goto fail;
	if (nv > 0)
		qsort(v, nv, sizeof(*v), cmp_layer);
	for (size_t i = 0; i < nv; i++) {
		char who[PATH_MAX];
		const char *parent;

		/* layerdb/ALG/HEX, its directory */
		if (snprintf(who, sizeof(who), "%s/%s", db, v[i].chain) < (int)sizeof(who))
			*strchr(who + strlen(db) + 1, ':') = '/';
		parent = image_device(v, nv, v[i].parent, who);
		if (!parent)
			continue;
		r = add_pair(&p, v[i].cache, parent);
		if (r < 0)
			goto fail;
	}
	r = read_mounts(db, v, nv, &p);
	if (r < 0)
		goto fail;
	free(v);
	log_info("docker layer database %s: %zu layers, %zu device parents", db, nv, p.n);
	*out = p.v;
	*n = p.n;
	return 0;
fail:
	log_err("docker layer database %s: %s", db, strerror(-r));
	free(v);
	free(p.v);
	return r;
}

int docker_pool_name(const char *prefix, char *buf, size_t len)
{
	static const char ours[] = "thinfs-";
	const char *rest = prefix + sizeof(ours) - 1;

	if (strncmp(prefix, ours, sizeof(ours) - 1) != 0)
		return -EINVAL;
	if (strncmp(rest, DS_RO_PREFIX_TAG, strlen(DS_RO_PREFIX_TAG)) == 0)
		rest += strlen(DS_RO_PREFIX_TAG);
	if (!*rest)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "docker-%s-pool", rest) >= len)
		return -ENAMETOOLONG;
	return 0;
}

bool docker_layer_layout(const char *dir)
{
	bool id = false, rootfs = false, other = false;
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!other && (e = readdir(d))) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "lost+found") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			other = true;
		else if (strcmp(e->d_name, "id") == 0 && S_ISREG(st.st_mode))
			id = true;
		else if (strcmp(e->d_name, "rootfs") == 0 && S_ISDIR(st.st_mode))
			rootfs = true;
		else
			other = true;
	}
	closedir(d);
	return id && rootfs && !other;
}
