/*
 * list.c - `thinfs list` (see list.h): reads MOUNTPOINT/.devices, which
 * the daemon renders from memory in one read, and prints it as a table
 * (like lvs or `zfs list -o space`) or passes its JSON on. --refresh
 * first writes refresh-usage to the pool's ctl, which returns once the
 * worker has fresh figures.
 */
#include "list.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deviceset.h"
#include "metadata.h"

/* The listing of a very large pool is a few MiB; more is not ours. */
#define LIST_MAX_BYTES (256u << 20)

static void list_usage(FILE *f)
{
	fprintf(f, "usage: thinfs list [--json] [--bytes] [--refresh] MOUNTPOINT\n"
		"  one line per device: name (its path under MOUNTPOINT), parent, size, mapped,\n"
		"  exclusive (what deleting it frees), shared, state, rootfs\n"
		"  --json     the daemon's JSON array (keys as in the info files)\n"
		"  --bytes    sizes in bytes, not K/M/G/T\n"
		"  --refresh  have the daemon read fresh usage figures first, and wait (root)\n");
}

/* The whole file at path, NUL-terminated; -errno. */
static int read_all(const char *path, char **out)
{
	size_t len = 0, cap = 64 * 1024;
	char *buf = malloc(cap);
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *t = cap < LIST_MAX_BYTES ? realloc(buf, cap * 2) : NULL;

			if (!t) {
				r = -EFBIG;
				break;
			}
			buf = t;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* refresh-usage on the pool's ctl; a refusal is explained from the
 * ctl's read-back. */
static int refresh(const char *mnt)
{
	static const char cmd[] = "refresh-usage\n";
	char path[PATH_MAX], *back = NULL, *err;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/ctl", mnt);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else if (write(fd, cmd, sizeof(cmd) - 1) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		return 0;
	if (r == -EPERM || r == -EACCES) {
		fprintf(stderr, "thinfs list: --refresh: only root asks for fresh figures (it writes %s); "
			"without it the figures are at most %d s older than the last read\n", path,
			USAGE_MAX_AGE_SECONDS);
		return r;
	}
	err = read_all(path, &back) == 0 ? strstr(back, "error: ") : NULL;
	if (err)
		err[strcspn(err, "\n")] = '\0';
	fprintf(stderr, "thinfs list: --refresh: %s: %s%s%s\n", path, strerror(-r), err ? ": " : "",
		err ? err + 7 : "");
	free(back);
	return r;
}

/* A size as du -h shows one (1024-based, rounded up, so the two agree),
 * or in bytes. */
static void size_text(char *buf, size_t len, uint64_t v, bool known, bool bytes)
{
	static const char units[] = "KMGTPE";
	unsigned __int128 d = 1024, tenths, whole;
	int u = 0;

	if (!known) {
		snprintf(buf, len, "-");
		return;
	}
	if (bytes || v < 1024) {
		snprintf(buf, len, "%" PRIu64, v);
		return;
	}
	while (u < (int)sizeof(units) - 2 && v >= d * 1024) {
		d *= 1024;
		u++;
	}
	for (;;) {
		tenths = ((unsigned __int128)v * 10 + d - 1) / d;
		whole = (v + d - 1) / d;
		if (whole < 1024 || u == (int)sizeof(units) - 2)
			break;
		d *= 1024; /* 1023.5M shows as 1.0G, as du -h has it */
		u++;
	}
	if (tenths < 100)
		snprintf(buf, len, "%u.%u%c", (unsigned)(tenths / 10), (unsigned)(tenths % 10), units[u]);
	else
		snprintf(buf, len, "%u%c", (unsigned)whole, units[u]);
}

static void state_text(char *buf, size_t len, const struct ds_list_entry *e)
{
	snprintf(buf, len, "%s%s", meta_state_word(e->mount_count, e->automounted, e->held, e->active),
		 e->mount_count > 0 && e->read_only ? " ro" : "");
	if (e->mount_count > 1)
		snprintf(buf + strlen(buf), len - strlen(buf), " %d", e->mount_count);
}

enum { C_NAME, C_PARENT, C_SIZE, C_MAPPED, C_EXCL, C_SHARED, C_STATE, C_ROOTFS, NCOLS };
static const char *const headers[NCOLS] = { "NAME", "PARENT", "SIZE", "MAPPED", "EXCL", "SHARED", "STATE",
					    "ROOTFS" };

/* Row i's cells (i == n: the headers) into cell[][64]; the name and the
 * rootfs point into e. */
static void row(const struct ds_listing *l, size_t i, bool bytes, char cell[NCOLS][64], const char *text[NCOLS])
{
	const struct ds_list_entry *e;
	bool known;

	if (i == l->n) {
		memcpy(text, headers, sizeof(headers));
		return;
	}
	e = &l->e[i];
	known = e->usage_at != 0;
	for (int c = 0; c < NCOLS; c++)
		text[c] = cell[c];
	text[C_NAME] = e->path[0] ? e->path : e->name;
	text[C_PARENT] = e->parent[0] ? e->parent : "-";
	size_text(cell[C_SIZE], 64, e->size, true, bytes);
	size_text(cell[C_MAPPED], 64, e->exclusive_bytes + e->shared_bytes, known, bytes);
	size_text(cell[C_EXCL], 64, e->exclusive_bytes, known, bytes);
	size_text(cell[C_SHARED], 64, e->shared_bytes, known, bytes);
	state_text(cell[C_STATE], 64, e);
	text[C_ROOTFS] = e->mount_count > 0 || e->automounted ? e->rootfs : "-";
}

static void print_table(const struct ds_listing *l, bool bytes)
{
	char cell[NCOLS][64];
	const char *text[NCOLS];
	int width[NCOLS] = { 0 };

	for (size_t i = 0; i <= l->n; i++) {
		row(l, i, bytes, cell, text);
		for (int c = 0; c < NCOLS; c++)
			if ((int)strlen(text[c]) > width[c])
				width[c] = (int)strlen(text[c]);
	}
	for (size_t k = 0; k <= l->n; k++) {
		size_t i = k == 0 ? l->n : k - 1; /* the headers first */

		row(l, i, bytes, cell, text);
		for (int c = 0; c < NCOLS; c++) {
			bool right = c >= C_SIZE && c <= C_SHARED;

			if (c == NCOLS - 1)
				printf("%s\n", text[c]);
			else
				printf(right ? "%*s  " : "%-*s  ", width[c], text[c]);
		}
	}
}

int list_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "bytes", no_argument, NULL, 'b' },
		{ "refresh", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, bytes = false, fresh = false;
	struct ds_listing l = { 0 };
	char path[PATH_MAX], err[128], *text = NULL;
	int c, r;

	optind = 1;
	opterr = 0; /* one line of ours instead */
	while ((c = getopt_long(argc, argv, "+jbrh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'b':
			bytes = true;
			break;
		case 'r':
			fresh = true;
			break;
		case 'h':
			list_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "thinfs list: unknown option '%s' (see thinfs list --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "thinfs list: %s (usage: thinfs list [--json] [--bytes] [--refresh] MOUNTPOINT)\n",
			optind < argc ? "one MOUNTPOINT only" : "no MOUNTPOINT given");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/%s", argv[optind], TF_LIST_FILE);
	if (fresh && refresh(argv[optind]) < 0)
		return 1;
	r = read_all(path, &text);
	if (r < 0) {
		fprintf(stderr, "thinfs list: %s: %s%s\n", path, strerror(-r),
			r == -ENOENT ? " (is a thinfs daemon serving it?)" : "");
		return 1;
	}
	if (json) {
		/* The daemon's lines, as one array. */
		bool first = true;

		putchar('[');
		for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
			printf("%s%s", first ? "" : ",\n", line);
			first = false;
		}
		puts("]");
		free(text);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	r = meta_listing_parse(text, &l, err, sizeof(err));
	free(text);
	if (r < 0) {
		fprintf(stderr, "thinfs list: %s: %s\n", path, err);
		return 1;
	}
	print_table(&l, bytes);
	ds_listing_free(&l);
	return fflush(stdout) == 0 ? 0 : 1;
}
