/*
 * fuse-ops.c - the namespace of doc/design.md §1 over the engine, as libfuse3
 * low-level operations.
 *
 * Inode numbers are derived from device IDs, so they are stable across
 * lookups, renames and restarts and this layer keeps no per-inode state:
 * the root (the base device's directory) is FUSE_ROOT_ID, the pool's ctl
 * and info are 2 and 3, and device D has its directory at 16 + 4*D, then
 * its ctl, info and rootfs. Lookups, getattr and readdir only call the
 * engine's lookups, which never wait for a mount in progress.
 *
 * rootfs is a symlink to the directory the device's filesystem is mounted
 * on, STATEDIR/mnt/ID, outside this mount (doc/design.md §1): rm -r, find,
 * du and cp -a do not follow it, chroot, tar -C and container tools do,
 * and no handler here ever waits for a mount that resolves a path through
 * this filesystem.
 */
#include "fuse-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "deviceset.h"
#include "list.h"
#include "log.h"
#include "metadata.h"
#include "options.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

enum node_kind { N_ROOT, N_POOL_CTL, N_POOL_INFO, N_POOL_LIST, N_DIR, N_CTL, N_INFO, N_ROOTFS };

#define INO_POOL_CTL 2
#define INO_POOL_INFO 3
#define INO_POOL_LIST 4
#define INO_DEV_BASE 16

/* Device directories keep their entries long: this daemon is the only
 * one changing the tree, and the kernel follows our own mkdir, rmdir and
 * rename. */
#define ENTRY_TIMEOUT 3600.0
/* Directory attributes change only with a mkdir, rmdir or rename in
 * them, which the kernel follows, and with the usage figures (st_blocks),
 * of which usage_changed tells it; the ctl, info and .devices files'
 * never change (their text is made at open). Kept this long, a second
 * walk of the tree (du, find) asks the daemon for none of the files'
 * (a directory's, again: the kernel marks its atime stale at each
 * readdir). rootfs's do change (it may lead into a Docker layer's
 * rootfs/ once mounted). */
#define ATTR_TIMEOUT 60.0

struct node {
	enum node_kind kind;
	struct ds_device_info dev; /* for device nodes */
};

void tf_fuse_ctx_init(struct tf_fuse_ctx *c, struct deviceset *ds)
{
	memset(c, 0, sizeof(*c));
	c->ds = ds;
	c->started = time(NULL);
	pthread_mutex_init(&c->handles_lock, NULL);
	rmwalk_init(&c->walks);
}

static void handle_link(struct tf_fuse_ctx *c, struct tf_handle *h)
{
	pthread_mutex_lock(&c->handles_lock);
	h->prev = NULL;
	h->next = c->handles;
	if (h->next)
		h->next->prev = h;
	c->handles = h;
	pthread_mutex_unlock(&c->handles_lock);
}

static void handle_unlink(struct tf_fuse_ctx *c, struct tf_handle *h)
{
	pthread_mutex_lock(&c->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&c->handles_lock);
}

/* Free a handle the kernel released (or never got: an interrupted open). */
static void handle_close(struct tf_fuse_ctx *c, struct tf_handle *h)
{
	handle_unlink(c, h);
	h->destroy(h);
}

static fuse_ino_t dev_ino(uint32_t id, enum node_kind kind);

/* A usage pass changed a device's exclusive bytes: the kernel keeps
 * directory attributes ATTR_TIMEOUT, and du must see the new
 * st_blocks at once. Attributes only (offset -1): its listing stays. */
static void usage_changed(void *arg, uint32_t device_id, bool base)
{
	struct tf_fuse_ctx *c = arg;
	fuse_ino_t ino = base ? FUSE_ROOT_ID : dev_ino(device_id, N_DIR);

	/* -ENOENT: the kernel does not have it; nothing to drop. */
	fuse_lowlevel_notify_inval_inode(c->se, ino, -1, 0);
}

void tf_fuse_ctx_attach(struct tf_fuse_ctx *c, struct fuse_session *se)
{
	c->se = se;
}

void tf_fuse_ctx_fini(struct tf_fuse_ctx *c)
{
	size_t n = 0;

	while (c->handles) {
		struct tf_handle *h = c->handles;

		c->handles = h->next;
		h->destroy(h);
		n++;
	}
	if (n)
		log_debug("freed %zu file handle(s) still open at shutdown", n);
	pthread_mutex_destroy(&c->handles_lock);
	rmwalk_fini(&c->walks);
}

static struct tf_fuse_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static fuse_ino_t dev_ino(uint32_t id, enum node_kind kind)
{
	return INO_DEV_BASE + (fuse_ino_t)id * 4 + (fuse_ino_t)(kind - N_DIR);
}

/* Resolve an inode to its node; -ENOENT if the device is gone. */
static int get_node(struct deviceset *ds, fuse_ino_t ino, struct node *n)
{
	memset(n, 0, sizeof(*n));
	if (ino == FUSE_ROOT_ID) {
		n->kind = N_ROOT;
		return ds_device_info(ds, DS_BASE_NAME, &n->dev);
	}
	if (ino == INO_POOL_CTL || ino == INO_POOL_INFO || ino == INO_POOL_LIST) {
		n->kind = ino == INO_POOL_CTL ? N_POOL_CTL : ino == INO_POOL_INFO ? N_POOL_INFO : N_POOL_LIST;
		return 0;
	}
	if (ino < INO_DEV_BASE || (ino - INO_DEV_BASE) / 4 > 0xffffff)
		return -ENOENT;
	n->kind = (enum node_kind)(N_DIR + (ino - INO_DEV_BASE) % 4);
	return ds_device_info_by_id(ds, (uint32_t)((ino - INO_DEV_BASE) / 4), &n->dev);
}

/* The device a directory node stands for ("base" for the root). */
static const char *dir_device(const struct node *n)
{
	return n->kind == N_ROOT ? DS_BASE_NAME : n->dev.name;
}

/* A ctl's text: its state line, then "error: TIME REASON" if the last
 * operation on it failed (always the second line, if any), then more
 * (lines ending in "\n", or ""); malloc'd. */
static char *ctl_text_of(const char *state, const char *err, int64_t at, const char *more)
{
	char when[META_ISO_TIME_LEN];
	char *text;

	meta_iso_time(at, when, sizeof(when));
	if (!err[0])
		return asprintf(&text, "%s\n%s", state, more) < 0 ? NULL : text;
	return asprintf(&text, "%s\nerror: %s %s\n%s", state, when[0] ? when : "-", err, more) < 0 ? NULL : text;
}

/* The text of a ctl or info file; malloc'd. */
static char *render(struct deviceset *ds, const struct node *n)
{
	struct ds_pool_info pi;
	char state[64];

	switch (n->kind) {
	case N_CTL: {
		/* The state, why the last operation failed, if it did,
		 * then whether an unmounted filesystem lives on (detached
		 * by the lazy unmount). */
		struct ds_device_info dev = n->dev;
		char busy[2 * POOL_DEV_PATH_MAX + 160] = "";

		ds_device_recheck(ds, &dev);
		if (dev.mount_count > 0)
			snprintf(state, sizeof(state), "mounted %d", dev.mount_count);
		else
			snprintf(state, sizeof(state), dev.automounted ? "automounted" : "unmounted");
		if (dev.held)
			snprintf(busy, sizeof(busy),
				 "busy: its filesystem lives on, detached, on %s: programs still "
				 "use it ('fuser -vm %s' lists them)\n", dev.dev_path, dev.dev_path);
		return ctl_text_of(state, dev.last_error, dev.last_error_at, busy);
	}
	case N_INFO: {
		struct ds_device_info full = n->dev;

		ds_device_usage(ds, &full);
		return meta_device_info_json(&full);
	}
	case N_POOL_LIST: {
		struct ds_listing l;
		char *text;

		if (ds_list_all(ds, &l) < 0)
			return NULL;
		text = meta_listing_json(&l);
		ds_listing_free(&l);
		return text;
	}
	case N_POOL_CTL:
	case N_POOL_INFO:
		if (ds_pool_info(ds, &pi) < 0 && n->kind == N_POOL_CTL)
			return strdup("error: pool status unavailable (see the log)\n");
		if (n->kind == N_POOL_INFO) {
			ds_pool_usage(ds, &pi);
			return meta_pool_info_json(&pi);
		}
		snprintf(state, sizeof(state), "ok %s %u devices", pi.backend, pi.device_count);
		return ctl_text_of(state, pi.last_error, pi.last_error_at, "");
	default:
		return NULL;
	}
}

static void fill_attr(struct tf_fuse_ctx *c, fuse_ino_t ino, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec =
		n->kind == N_POOL_CTL || n->kind == N_POOL_INFO || n->kind == N_POOL_LIST ? c->started
											 : (time_t)n->dev.created;
	switch (n->kind) {
	case N_ROOT:
	case N_DIR:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = (n->kind == N_ROOT ? 2 : 3) + (nlink_t)n->dev.n_children;
		/* du(1): the space deleting the device would free, as the
		 * worker last looked (a copy made under the table lock: no
		 * pool call here). du sums a subtree (doc/design.md §1). */
		st->st_blocks = (blkcnt_t)((n->dev.exclusive_bytes + 511) / 512);
		break;
	case N_ROOTFS:
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n->dev.rootfs);
		break;
	case N_CTL:
	case N_POOL_CTL:
	case N_INFO:
	case N_POOL_INFO:
	case N_POOL_LIST:
		/* Size 0, as /proc's files: their text is made when they are
		 * opened and may need the pool (mapped bytes, space), which
		 * getattr and lookup never ask. Reads are direct_io and go to
		 * the end whatever the size says. */
		st->st_mode = S_IFREG | (n->kind == N_CTL || n->kind == N_POOL_CTL ? 0644 : 0444);
		st->st_nlink = 1;
		break;
	}
	st->st_blksize = 4096;
}

static bool is_dir_kind(enum node_kind k)
{
	return k == N_ROOT || k == N_DIR;
}

static double attr_timeout(enum node_kind k)
{
	return k == N_ROOTFS ? 0 : ATTR_TIMEOUT;
}

static void reply_entry_for(fuse_req_t req, fuse_ino_t ino)
{
	struct fuse_entry_param e;
	struct node n;
	int r = get_node(ctx_of(req)->ds, ino, &n);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = (uint64_t)n.dev.created;
	fill_attr(ctx_of(req), ino, &n, &e.attr);
	e.entry_timeout = ENTRY_TIMEOUT;
	e.attr_timeout = attr_timeout(n.kind);
	fuse_reply_entry(req, &e);
}

/* The child device name of dir node p, or -ENOENT. */
static int child_ino(struct deviceset *ds, const struct node *p, const char *name, fuse_ino_t *ino)
{
	struct ds_device_info d;

	if (ds_device_info(ds, name, &d) < 0 || strcmp(d.parent, dir_device(p)) != 0)
		return -ENOENT;
	*ino = dev_ino(d.device_id, N_DIR);
	return 0;
}

static void tf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct deviceset *ds = ctx_of(req)->ds;
	struct node p;
	fuse_ino_t ino = 0;
	int r;

	r = get_node(ds, parent, &p);
	if (r < 0)
		goto err;
	if (!is_dir_kind(p.kind)) {
		r = -ENOTDIR;
		goto err;
	}
	if (strcmp(name, "ctl") == 0)
		ino = p.kind == N_ROOT ? INO_POOL_CTL : dev_ino(p.dev.device_id, N_CTL);
	else if (strcmp(name, TF_LIST_FILE) == 0 && p.kind == N_ROOT)
		ino = INO_POOL_LIST;
	else if (strcmp(name, "info") == 0)
		ino = p.kind == N_ROOT ? INO_POOL_INFO : dev_ino(p.dev.device_id, N_INFO);
	else if (strcmp(name, "rootfs") == 0 && p.kind == N_DIR)
		ino = dev_ino(p.dev.device_id, N_ROOTFS);
	else if ((r = child_ino(ds, &p, name, &ino)) < 0)
		goto err;
	reply_entry_for(req, ino);
	return;
err:
	fuse_reply_err(req, -r);
}

static void tf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct deviceset *ds = ctx_of(req)->ds;
	struct node n;
	struct stat st;
	int r;

	(void)fi;
	r = get_node(ds, ino, &n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_attr(ctx_of(req), ino, &n, &st);
	fuse_reply_attr(req, &st, attr_timeout(n.kind));
}

/* For the log: the device a ctl or info file belongs to ("ctl"/"info"
 * for the pool's own). */
static const char *file_name(const struct node *n)
{
	switch (n->kind) {
	case N_POOL_CTL:
		return "ctl";
	case N_POOL_INFO:
		return "info";
	case N_POOL_LIST:
		return TF_LIST_FILE;
	default:
		return n->dev.name;
	}
}

/* The device whose ctl a node's refusals go to (the base device's are
 * the pool's). */
static const char *node_device(const struct node *n)
{
	return n->kind == N_ROOT || n->kind == N_POOL_CTL || n->kind == N_POOL_INFO || n->kind == N_POOL_LIST
		       ? DS_BASE_NAME
		       : n->dev.name;
}

/* The device an operation on name in directory p is about: name's own if
 * it is a device there, else the directory's (mkdir, a create). */
static const char *target_of(struct deviceset *ds, const struct node *p, const char *name)
{
	fuse_ino_t ino;

	return child_ino(ds, p, name, &ino) == 0 ? name : dir_device(p);
}

/* A refusal that never reaches the engine (which keeps its own): logged,
 * and kept as the last_error of device dev, whose ctl the user reads.
 * Returns -err. */
static int refuse(fuse_req_t req, const char *dev, const char *op, const char *name, int err,
		  const char *why_fmt, ...) __attribute__((format(printf, 6, 7)));
static int refuse(fuse_req_t req, const char *dev, const char *op, const char *name, int err,
		  const char *why_fmt, ...)
{
	char why[DS_ERROR_MAX];
	va_list ap;

	va_start(ap, why_fmt);
	vsnprintf(why, sizeof(why), why_fmt, ap);
	va_end(ap);
	ds_set_device_error(ctx_of(req)->ds, dev, "%s '%s' (uid %u): refused: %s: %s", op, name,
			    (unsigned)fuse_req_ctx(req)->uid, strerror(err), why);
	return -err;
}

/* Writers: only root changes anything (the contract's EPERM). */
static bool caller_is_root(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid == 0;
}

static void tf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct deviceset *ds = ctx_of(req)->ds;
	struct node n;
	int r;

	r = get_node(ds, ino, &n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (!caller_is_root(req)) {
		fuse_reply_err(req, -refuse(req, node_device(&n), "setattr", file_name(&n), EPERM,
					    "only root changes the pool"));
		return;
	}
	/* A chown to the owner every node has (root:root) changes nothing
	 * and is accepted: tools that unpack into NAME/rootfs (umoci) lchown
	 * the path they are given. */
	if (!(to_set & ~(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    (!(to_set & FUSE_SET_ATTR_UID) || attr->st_uid == 0) &&
	    (!(to_set & FUSE_SET_ATTR_GID) || attr->st_gid == 0)) {
		tf_getattr(req, ino, fi);
		return;
	}
	/* `echo cmd > ctl` truncates first: accepted, nothing to do. */
	if ((n.kind == N_CTL || n.kind == N_POOL_CTL) &&
	    !(to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME))) {
		tf_getattr(req, ino, fi);
		return;
	}
	fuse_reply_err(req, -refuse(req, node_device(&n), "setattr", file_name(&n), EPERM,
				    "modes, owners and times of the namespace are fixed (a chown to root and "
				    "a truncate of ctl are accepted)"));
}

/* rootfs: the device's mount directory. The kernel asks for the link both
 * when a program reads or stats it (ls -l, stat -L, tree, completion) and
 * on every walk through it. With an autofs on the mount directories
 * (src/autofs.c) the answer mounts nothing: the kernel asks the daemon
 * for the mount only when the walk goes *into* the directory. Without
 * one, an unmounted device is automounted (read-only, dm.automount)
 * before the answer, so that the walk finds its files. Mounting resolves
 * no path in this filesystem, so this worker waits for nothing that needs
 * another FUSE request. Without automount, or if it fails, the link leads
 * nowhere (ENOENT when followed). */
static void tf_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct deviceset *ds = ctx_of(req)->ds;
	bool autofs, mounted;
	struct stat st;
	struct node n;
	int r = get_node(ds, ino, &n);

	if (r == 0 && n.kind != N_ROOTFS)
		r = -EINVAL;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	mounted = n.dev.mount_count > 0 || n.dev.automounted;
	autofs = ds_autofs_link(ds, &n.dev);
	/* Mounted now, the device's info says where its files are (a
	 * Docker layer keeps them in rootfs/ of its filesystem). */
	if (!autofs && !mounted && ds_automount(ds, n.dev.name) == 0) {
		ds_device_info(ds, n.dev.name, &n.dev);
		mounted = n.dev.mount_count > 0 || n.dev.automounted;
	}
	/* A layer's rootfs/ lives in the device's own filesystem: should it
	 * have been turned into a symlink since the mount, the link must not
	 * lead through it to somewhere else on the host. (Unmounted, the
	 * layout is the one seen at its last unmount: nothing changed it.) */
	if (strcmp(n.dev.rootfs, n.dev.mount_dir) != 0 && (mounted || !autofs) &&
	    (lstat(n.dev.rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
		snprintf(n.dev.rootfs, sizeof(n.dev.rootfs), "%s", n.dev.mount_dir);
	fuse_reply_readlink(req, n.dev.rootfs);
}

struct dir_list {
	struct tf_handle h; /* first: fi->fh points at it */
	size_t n;
	struct dir_ent {
		char name[DS_NAME_MAX + 1];
		fuse_ino_t ino;
		mode_t type;
	} *e;
};

static void dir_list_destroy(struct tf_handle *h)
{
	struct dir_list *l = (struct dir_list *)h;

	free(l->e);
	free(l);
}

/* Make (again) the listing of directory ino in l: ".", "..", its files,
 * then its child devices. */
static int fill_listing(struct deviceset *ds, fuse_ino_t ino, struct dir_list *l)
{
	struct ds_entry *children = NULL;
	struct dir_ent *e;
	size_t nchildren = 0, k = 0;
	struct node n;
	int r;

	r = get_node(ds, ino, &n);
	if (r < 0)
		return r;
	if (!is_dir_kind(n.kind))
		return -ENOTDIR;
	r = ds_list(ds, dir_device(&n), &children, &nchildren);
	if (r < 0)
		return r;
	e = calloc(nchildren + 6, sizeof(*e));
	if (!e) {
		free(children);
		return -ENOMEM;
	}
#define ADD(nm, in, ty) do { \
		snprintf(e[k].name, sizeof(e[k].name), "%s", nm); \
		e[k].ino = in; \
		e[k].type = ty; \
		k++; \
	} while (0)
	ADD(".", ino, S_IFDIR);
	ADD("..", FUSE_ROOT_ID, S_IFDIR);
	if (n.kind == N_ROOT) {
		ADD("ctl", INO_POOL_CTL, S_IFREG);
		ADD("info", INO_POOL_INFO, S_IFREG);
		ADD(TF_LIST_FILE, INO_POOL_LIST, S_IFREG);
	} else if (n.kind == N_DIR) {
		ADD("ctl", dev_ino(n.dev.device_id, N_CTL), S_IFREG);
		ADD("info", dev_ino(n.dev.device_id, N_INFO), S_IFREG);
		ADD("rootfs", dev_ino(n.dev.device_id, N_ROOTFS), S_IFLNK);
	}
	for (size_t i = 0; i < nchildren; i++)
		ADD(children[i].name, dev_ino(children[i].device_id, N_DIR), S_IFDIR);
#undef ADD
	free(children);
	free(l->e);
	l->e = e;
	l->n = k;
	return 0;
}

static void tf_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tf_fuse_ctx *c = ctx_of(req);
	struct dir_list *l;
	struct node n;
	int r;

	r = get_node(c->ds, ino, &n);
	if (r == 0 && !is_dir_kind(n.kind))
		r = -ENOTDIR;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	l->h.destroy = dir_list_destroy;
	fi->fh = (uint64_t)(uintptr_t)l;
	/* The kernel keeps the listing until a mkdir, rmdir or rename in
	 * this directory (all of which come through it) changes it. It
	 * keeps what a READDIR answered, tagged with the directory's
	 * version when that READDIR was sent, so the listing is made at
	 * the READDIR of offset 0 (tf_readdir), never before: one made at
	 * opendir could miss a mkdir done between the two and stay cached
	 * as current. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	handle_link(c, &l->h);
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_close(c, &l->h);
}

static void tf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;
	char *buf;
	size_t used = 0;
	int r;

	/* The kernel serialises the READDIRs of one open directory. */
	if (off == 0) {
		r = fill_listing(ctx_of(req)->ds, ino, l);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < l->n; i++) {
		struct stat st = { .st_ino = l->e[i].ino, .st_mode = l->e[i].type };
		size_t len = fuse_add_direntry(req, buf + used, size - used, l->e[i].name, &st,
					       (off_t)(i + 1));

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void tf_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;

	(void)ino;
	if (l)
		handle_close(ctx_of(req), &l->h);
	fuse_reply_err(req, 0);
}

/* The parent directory of a change by the namespace (mkdir, rmdir, unlink,
 * rename): nothing changes for a caller who is not root (EPERM). */
static int may_change(fuse_req_t req, const char *op, fuse_ino_t parent, const char *name,
		      struct node *p)
{
	int r = get_node(ctx_of(req)->ds, parent, p);

	if (r < 0)
		return r;
	if (!is_dir_kind(p->kind))
		return -ENOTDIR;
	if (!caller_is_root(req))
		return refuse(req, target_of(ctx_of(req)->ds, p, name), op, name, EPERM,
			      "only root changes the pool");
	return 0;
}

static void tf_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct deviceset *ds = ctx_of(req)->ds;
	struct ds_device_info d;
	struct node p;
	int r;

	(void)mode;
	r = may_change(req, "mkdir", parent, name, &p);
	if (r < 0)
		goto err;
	r = ds_add_device(ds, name, dir_device(&p));
	if (r < 0)
		goto err;
	r = ds_device_info(ds, name, &d);
	if (r < 0)
		goto err;
	reply_entry_for(req, dev_ino(d.device_id, N_DIR));
	return;
err:
	fuse_reply_err(req, -r);
}

/* How many marks of one process are looked at: one per walk that met a
 * mounted device in the last RMWALK_IDLE_SECONDS, so a few. */
#define WALK_TOPS_MAX 16

/* rm -r of a tree that holds a mounted device deletes nothing of it
 * (doc/design.md §1, "rm -r"). A walk removes a directory's own files
 * before its subdirectories (readdir lists ctl, info and rootfs first),
 * so its first step in the tree of device top is the unlink of top's ctl:
 * refused (EBUSY) while that tree holds a mounted device, and the process
 * is marked; then every unlink and rmdir of that process inside top's
 * tree is refused too, while the tree still holds the mount (and the mark
 * has not idled out, RMWALK_IDLE_SECONDS). Only that first step (first)
 * looks at the whole tree: the other steps look up the caller's marks,
 * so a walk of many devices is not a scan of the table at each step. A
 * caller whose process cannot be told (outside our pid namespace) has
 * its first step refused but is not marked: such callers would share
 * one mark. 0, or -EBUSY with the reason kept in the ctl of dev, the
 * device whose entry the walk removes. */
static int walk_guard(fuse_req_t req, const char *op, const char *dev, const char *name, bool first)
{
	struct tf_fuse_ctx *c = ctx_of(req);
	char tops[WALK_TOPS_MAX][DS_NAME_MAX + 1];
	char why[DS_ERROR_MAX], path[PATH_MAX];
	const char *covered = NULL;
	struct rmwalk_who who;
	bool busy;
	size_t n;

	/* The first step of a walk in dev's tree? */
	busy = first && ds_subtree_busy(c->ds, dev, why, sizeof(why)) == -EBUSY;
	if (!busy && !rmwalk_any(&c->walks))
		return 0;
	rmwalk_who_of(fuse_req_ctx(req)->pid, &who);
	n = who.tgid ? rmwalk_tops(&c->walks, &who, tops, WALK_TOPS_MAX) : 0;
	for (size_t i = 0; i < n && i < WALK_TOPS_MAX && !covered; i++) {
		if (!ds_within(c->ds, dev, tops[i]))
			continue;
		/* The tree let its mount go: the mark has done its work. */
		if (!busy && ds_subtree_busy(c->ds, tops[i], why, sizeof(why)) != -EBUSY) {
			rmwalk_drop(&c->walks, &who, tops[i]);
			continue;
		}
		covered = tops[i];
	}
	if (busy) {
		/* Inside a walk already marked higher up, that mark covers
		 * it: a process keeps one mark per walk. */
		if (!covered && who.tgid && rmwalk_mark(&c->walks, &who, dev) < 0)
			log_err("rm -r walk of '%s': no memory to remember it", dev);
		ds_device_path(c->ds, covered ? covered : dev, path, sizeof(path));
		return refuse(req, dev, op, name, EBUSY,
			      "%s: nothing under '%s' is deleted while it holds a mounted device "
			      "(unmount it, then delete again)", why, path);
	}
	if (!covered)
		return 0;
	ds_device_path(c->ds, covered, path, sizeof(path));
	return refuse(req, dev, op, name, EBUSY,
		      "this process's delete of '%s' met a mounted device (%s): nothing under it "
		      "is deleted by that delete", path, why);
}

static void tf_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct deviceset *ds = ctx_of(req)->ds;
	fuse_ino_t ino;
	struct node p;
	int r;

	r = may_change(req, "rmdir", parent, name, &p);
	if (r < 0)
		goto out;
	if (strcmp(name, "ctl") == 0 || strcmp(name, "info") == 0 || strcmp(name, "rootfs") == 0) {
		r = refuse(req, dir_device(&p), "rmdir", name, ENOTDIR,
			   "ctl, info and rootfs are files of the device (rmdir the device's directory)");
		goto out;
	}
	r = child_ino(ds, &p, name, &ino);
	if (r == 0)
		r = walk_guard(req, "rmdir", name, name, false);
	if (r == 0)
		r = ds_delete_device(ds, name);
out:
	fuse_reply_err(req, -r);
}

static void tf_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct deviceset *ds = ctx_of(req)->ds;
	fuse_ino_t ino;
	struct node p;
	int r;

	r = may_change(req, "unlink", parent, name, &p);
	if (r < 0)
		goto out;
	if (strcmp(name, "ctl") == 0 || strcmp(name, "info") == 0 ||
	    (p.kind == N_DIR && strcmp(name, "rootfs") == 0) ||
	    (p.kind == N_ROOT && strcmp(name, TF_LIST_FILE) == 0)) {
		/* Part of `rm -r DEV`: changes nothing, unless the walk must
		 * stop here (walk_guard). */
		r = walk_guard(req, "unlink", dir_device(&p), name, strcmp(name, "ctl") == 0);
		goto out;
	}
	if (child_ino(ds, &p, name, &ino) == 0)
		r = refuse(req, name, "unlink", name, EISDIR, "a device is a directory: rmdir or rm -r deletes it");
	else
		r = -ENOENT;
out:
	fuse_reply_err(req, -r);
}

static void tf_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct deviceset *ds = ctx_of(req)->ds;
	fuse_ino_t ino;
	struct node p;
	int r;

	r = may_change(req, "rename", parent, name, &p);
	if (r < 0)
		goto out;
	if (flags & RENAME_EXCHANGE) {
		r = refuse(req, target_of(ds, &p, name), "rename", name, EINVAL, "devices cannot be exchanged");
		goto out;
	}
	if (strcmp(name, "ctl") == 0 || strcmp(name, "info") == 0 || strcmp(name, "rootfs") == 0) {
		r = refuse(req, dir_device(&p), "rename", name, EPERM, "ctl, info and rootfs keep their names");
		goto out;
	}
	r = child_ino(ds, &p, name, &ino);
	if (r < 0)
		goto out;
	if (newparent != parent) {
		/* The tree is the snapshot genealogy: devices do not move.
		 * Not EXDEV, which mv and file managers answer with a copy
		 * that makes a wrong device. */
		r = refuse(req, name, "rename", name, EOPNOTSUPP,
			   "a device stays in the directory of the device it was snapshotted from "
			   "(copy it with mkdir inside it)");
		goto out;
	}
	r = ds_rename_device(ds, name, newname);
out:
	fuse_reply_err(req, -r);
}

static void refuse_create(fuse_req_t req, const char *op, fuse_ino_t parent, const char *name)
{
	struct node p;
	int r = get_node(ctx_of(req)->ds, parent, &p);

	if (r == 0 && !is_dir_kind(p.kind))
		r = -ENOTDIR;
	else if (r == 0)
		r = refuse(req, dir_device(&p), op, name, EPERM, "only devices (mkdir) are made in the pool");
	fuse_reply_err(req, -r);
}

static void tf_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)mode, (void)rdev;
	refuse_create(req, "mknod", parent, name);
}

static void tf_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	refuse_create(req, "symlink", parent, name);
}

static void tf_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	refuse_create(req, "link", newparent, newname);
}

static void tf_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)mode, (void)fi;
	refuse_create(req, "create", parent, name);
}

struct open_file {
	struct tf_handle h; /* first: fi->fh points at it */
	char *text;
	size_t len;
};

static void open_file_destroy(struct tf_handle *h)
{
	struct open_file *of = (struct open_file *)h;

	free(of->text);
	free(of);
}

static void tf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tf_fuse_ctx *c = ctx_of(req);
	struct deviceset *ds = c->ds;
	struct open_file *of;
	struct node n;
	int r;

	r = get_node(ds, ino, &n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (is_dir_kind(n.kind)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		if (!caller_is_root(req)) {
			fuse_reply_err(req, -refuse(req, node_device(&n), "open for writing", file_name(&n), EPERM,
						    "only root changes the pool"));
			return;
		}
		if (n.kind == N_INFO || n.kind == N_POOL_INFO || n.kind == N_POOL_LIST) {
			fuse_reply_err(req, -refuse(req, node_device(&n), "open for writing", file_name(&n), EACCES,
						    "info is read-only (commands go to ctl)"));
			return;
		}
	}
	of = calloc(1, sizeof(*of));
	if (!of || !(of->text = render(ds, &n))) {
		free(of);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	of->h.destroy = open_file_destroy;
	of->len = strlen(of->text);
	fi->fh = (uint64_t)(uintptr_t)of;
	/* The content changes with the device: never cache it. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	handle_link(c, &of->h);
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_close(c, &of->h);
}

static void tf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	char *copy;

	(void)ino;
	if ((size_t)off >= of->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > of->len - (size_t)off)
		size = of->len - (size_t)off;
	/* Reply from a buffer this thread owns: once the kernel has the
	 * reply, the reader may close and another thread free of->text
	 * while this writev is still returning, and ASan checks writev's
	 * buffers after the call (a heap-use-after-free report). */
	copy = malloc(size);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, of->text + off, size);
	fuse_reply_buf(req, copy, size);
	free(copy);
}

static void tf_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;

	(void)ino;
	if (of)
		handle_close(ctx_of(req), &of->h);
	fuse_reply_err(req, 0);
}

static int device_command(struct tf_fuse_ctx *c, const char *name, const char *cmd)
{
	struct ctl_cmd k;

	if (ctl_parse_device(cmd, &k) < 0) {
		if (k.verb == CTL_RESIZE)
			ds_set_device_error(c->ds, name, "resize '%s': invalid size '%s' (use e.g. 20G)",
					    name, k.arg);
		else
			ds_set_device_error(c->ds, name,
					    "device '%s': unknown command '%s' (expected mount, mount ro, unmount, resize SIZE)",
					    name, cmd);
		return -EINVAL;
	}
	if (k.verb == CTL_MOUNT || k.verb == CTL_MOUNT_RO)
		return ds_mount(c->ds, name, k.verb == CTL_MOUNT_RO);
	if (k.verb == CTL_UNMOUNT)
		return ds_unmount(c->ds, name);
	return ds_resize_device(c->ds, name, k.size);
}

static int pool_command(struct tf_fuse_ctx *c, const char *cmd)
{
	struct ctl_cmd k;

	if (ctl_parse_pool(cmd, &k) < 0) {
		if (k.verb == CTL_RESIZE_POOL)
			ds_set_pool_error(c->ds, "resize-pool: invalid size '%s' (use e.g. 200G)", k.arg);
		else
			ds_set_pool_error(c->ds, "pool: unknown command '%s' (expected resize-pool SIZE, refresh-usage)",
					  cmd);
		return -EINVAL;
	}
	if (k.verb == CTL_REFRESH_USAGE)
		return ds_refresh_usage(c->ds);
	return ds_resize_pool(c->ds, k.size);
}

static void tf_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct tf_fuse_ctx *c = ctx_of(req);
	char cmd[256];
	struct node n;
	size_t len = size;
	int r;

	(void)off, (void)fi;
	r = get_node(c->ds, ino, &n);
	if (r < 0)
		goto err;
	if (n.kind != N_CTL && n.kind != N_POOL_CTL) {
		r = -EACCES;
		goto err;
	}
	if (!caller_is_root(req)) {
		r = refuse(req, node_device(&n), "write", file_name(&n), EPERM, "only root changes the pool");
		goto err;
	}
	if (ctl_text(buf, len, cmd, sizeof(cmd)) < 0) {
		r = -EINVAL;
		if (n.kind == N_CTL)
			ds_set_device_error(c->ds, n.dev.name, "device '%s': command too long or not text",
					    n.dev.name);
		else
			ds_set_pool_error(c->ds, "pool: command too long or not text");
		goto err;
	}
	/* Synchronous: the write returns when the command is done. */
	r = n.kind == N_CTL ? device_command(c, n.dev.name, cmd) : pool_command(c, cmd);
	if (r < 0)
		goto err;
	ds_clear_error(c->ds, n.kind == N_CTL ? n.dev.name : NULL);
	fuse_reply_write(req, size);
	return;
err:
	fuse_reply_err(req, -r);
}

static void tf_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ds_pool_info pi;
	struct statvfs st;

	(void)ino;
	memset(&st, 0, sizeof(st));
	if (ds_pool_info(ctx_of(req)->ds, &pi) == 0) {
		st.f_bsize = st.f_frsize = 4096;
		st.f_blocks = pi.data_total / 4096;
		st.f_bfree = st.f_bavail = pi.data_available / 4096;
		/* Inodes: the pool's device IDs, used by every device (base and
		 * those waiting for deletion included). */
		st.f_files = (fsfilcnt_t)POOL_MAX_DEVICE_ID + 1;
		st.f_ffree = st.f_favail = st.f_files - (pi.device_count + 1 + pi.deferred_deleted_device_count);
	}
	st.f_namemax = DS_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

static void tf_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct node n;
	int r = get_node(ctx_of(req)->ds, ino, &n);

	if (r == 0 && (mask & W_OK) &&
	    (!caller_is_root(req) || n.kind == N_INFO || n.kind == N_POOL_INFO || n.kind == N_POOL_LIST))
		r = -EACCES;
	fuse_reply_err(req, -r);
}

static void tf_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tf_fuse_ctx *c = userdata;

	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Until the loop ends (thinfs.c clears it before the unmount closes
	 * the session's fd; tf_destroy clears it too, for a session
	 * destroyed without that). */
	if (c->se)
		ds_set_usage_hook(c->ds, usage_changed, c);
}

static void tf_destroy(void *userdata)
{
	struct tf_fuse_ctx *c = userdata;

	ds_set_usage_hook(c->ds, NULL, NULL);
}

const struct fuse_lowlevel_ops tf_fuse_ops = {
	.init = tf_init,
	.destroy = tf_destroy,
	.lookup = tf_lookup,
	.getattr = tf_getattr,
	.readlink = tf_readlink,
	.setattr = tf_setattr,
	.opendir = tf_opendir,
	.readdir = tf_readdir,
	.releasedir = tf_releasedir,
	.mkdir = tf_mkdir,
	.rmdir = tf_rmdir,
	.unlink = tf_unlink,
	.rename = tf_rename,
	.mknod = tf_mknod,
	.symlink = tf_symlink,
	.link = tf_link,
	.create = tf_create,
	.open = tf_open,
	.read = tf_read,
	.write = tf_write,
	.release = tf_release,
	.statfs = tf_statfs,
	.access = tf_access,
};
