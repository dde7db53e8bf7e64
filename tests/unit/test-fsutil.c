/*
 * test-fsutil.c - running helper programs (fsutil_run, fsutil_run_output):
 * output captured, missing programs and failures reported, and no hang
 * whatever happens to the output: memory that runs out (realloc is wrapped
 * with -Wl,--wrap=realloc to fail on demand), output past the limit, a
 * program that leaves a process holding its output open, and a child whose
 * status cannot be collected. Each call runs under an alarm: a hang is a
 * failed test, not a stuck suite.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "tap.h"

static bool fail_realloc;

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
	if (fail_realloc) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

static void on_alarm(int sig)
{
	static const char msg[] = "not ok - hung (killed by the test's alarm)\nBail out! hang\n";

	(void)sig;
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_sh(const char *script, char **output)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	int r;

	alarm(20);
	r = output ? fsutil_run_output((char *const *)argv, output) : fsutil_run((char *const *)argv);
	alarm(0);
	return r;
}

int main(void)
{
	char *out = NULL;
	double t;
	int r;

	signal(SIGALRM, on_alarm);

	r = run_sh("echo hello; echo world >&2", &out);
	is_int(r, 0, "run_output: exit 0");
	is_str(out, "hello\nworld\n", "run_output: stdout and stderr captured");
	free(out);
	out = NULL;

	{
		const char *argv[] = { "thinfs-no-such-program", NULL };

		is_int(fsutil_run((char *const *)argv), -ENOENT, "missing program: -ENOENT");
	}
	is_int(run_sh("exit 3", NULL), -EIO, "exit status 3: -EIO");

	/* Memory runs out at the first byte: the child writes 4 MB, far more
	 * than a pipe holds, and must still be read to its end and reaped. */
	fail_realloc = true;
	r = run_sh("head -c 4000000 /dev/zero | tr '\\0' x", NULL);
	fail_realloc = false;
	is_int(r, 0, "realloc fails, output to the log: the run completes and succeeds");
	fail_realloc = true;
	r = run_sh("head -c 4000000 /dev/zero | tr '\\0' x", &out);
	fail_realloc = false;
	is_int(r, -ENOMEM, "realloc fails, output wanted: -ENOMEM, not a hang");
	ok(out == NULL, "realloc fails: no half output handed out");
	free(out);
	out = NULL;

	/* Past the 64 MiB limit the output is cut, and a caller that parses it
	 * (thin_dump) must not get half of it as if it were all. */
	r = run_sh("head -c 70000000 /dev/zero | tr '\\0' x", &out);
	is_int(r, -EFBIG, "output past 64 MiB: -EFBIG");
	ok(out == NULL, "output past 64 MiB: nothing handed out");
	free(out);
	out = NULL;
	is_int(run_sh("head -c 70000000 /dev/zero | tr '\\0' x", NULL), 0,
	       "output past 64 MiB to the log: the run succeeds");

	/* The program exits but leaves a process holding its output open:
	 * EOF never comes until that one exits; the run ends with the program. */
	t = now();
	r = run_sh("sleep 15 & echo started", NULL);
	is_int(r, 0, "program leaving a process behind on its output: success");
	ok(now() - t < 10, "... and returns when the program exits (%.1f s), not when the pipe closes",
	   now() - t);

	/* SIGCHLD ignored: the kernel reaps the child and waitpid has no status
	 * to give; a failed program must not pass for a successful one. */
	signal(SIGCHLD, SIG_IGN);
	r = run_sh("exit 1", NULL);
	ok(r < 0, "status lost (SIGCHLD ignored): an error (%d), not success", r);
	signal(SIGCHLD, SIG_DFL);
	return tap_done();
}
