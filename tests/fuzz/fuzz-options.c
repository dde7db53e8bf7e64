/*
 * fuzz-options.c - libFuzzer harness for the dm.* option parser
 * (src/options.c): options_parse_list over the input as an -o list,
 * options_set with the input split at the first '=', parse_size and
 * parse_bool over the whole input. Beyond memory errors (ASan, UBSan) it
 * aborts when a contract of options.h breaks: a refused option changes
 * the options, a refusal's message is empty or not one line, a size is
 * above INT64_MAX, a bool is accepted in a spelling Go refuses.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int r, const char *err)
{
	if (r == 0)
		return;
	if (!err[0])
		abort(); /* a refusal must say why */
	for (const char *c = err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			abort(); /* one line, no control characters */
}

/* The struct's scalars and the strings it owns, for "unchanged". */
static bool same(const struct ds_options *a, const struct ds_options *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void one_set(const char *text)
{
	struct ds_options o, before;
	char err[256];
	char *copy = strdup(text), *eq;
	int r;

	if (!copy)
		return;
	options_init(&o);
	/* Something set first, so a refusal has state to keep. */
	options_set(&o, "dm.mkfsarg", "-m0", err, sizeof(err));
	options_set(&o, "dm.mountopt", "noatime", err, sizeof(err));
	before = o;
	eq = strchr(copy, '=');
	if (eq)
		*eq = '\0';
	r = options_set(&o, copy, eq ? eq + 1 : NULL, err, sizeof(err));
	check_err(r, err);
	if (r < 0 && !same(&o, &before))
		abort(); /* options.h: a refused key or value leaves them unchanged */
	if (r == 0 && o.min_free_space > 99)
		abort();
	if (r == 0 && (o.block_size < 64 * 1024 || o.block_size % (64 * 1024)))
		abort();
	if (r == 0 && (o.libdm_log_level < 2 || o.libdm_log_level > 7))
		abort();
	options_free(&o);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct ds_options o;
	char *text, err[256];
	uint64_t v;
	bool b;
	int r;

	if (!quiet) {
		tf_log_init(true, LOG_CRIT);
		quiet = true;
	}
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	options_init(&o);
	r = options_parse_list(&o, text, err, sizeof(err));
	check_err(r, err);
	if (r == 0) {
		r = options_validate(&o, err, sizeof(err));
		check_err(r, err);
		(void)options_blk_discard(&o);
	}
	options_free(&o);

	one_set(text);

	if (parse_size(text, &v) == 0 && v > (uint64_t)INT64_MAX)
		abort();
	if (parse_bool(text, &b) == 0 && strlen(text) > 5)
		abort(); /* the longest spelling is "FALSE"/"false"/"False" */
	free(text);
	return 0;
}
