/*
 * log.c - the one logging path: stderr in the foreground, syslog otherwise.
 * A mutex keeps lines from different threads whole on stderr. A stderr
 * that stops taking lines (a pipe whose reader went away: thinfs -f |
 * head) hands the log over to syslog, said there once; the daemon
 * ignores SIGPIPE (thinfs.c), so the write fails and nothing dies.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool log_stderr = true;
static int log_fd = -1; /* tf_log_to_file's, else -1 */
static int log_max = LOG_INFO;

void tf_log_init(bool to_stderr, int max_prio)
{
	pthread_mutex_lock(&log_lock);
	log_stderr = to_stderr;
	log_max = max_prio;
	if (!to_stderr && log_fd < 0)
		openlog("thinfs", LOG_PID, LOG_DAEMON);
	pthread_mutex_unlock(&log_lock);
}

int tf_log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_stderr = false;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

int tf_log_max_prio(void)
{
	return log_max;
}

static const char *prio_word(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* One line to tf_log_to_file's file: "2026-12-08T03:52:54Z thinfs[PID]:
 * LEVEL: ...", written whole (O_APPEND) so that a rotation by copy and
 * truncate keeps lines whole. Log lock held. */
static void file_line(int prio, const char *fmt, va_list ap)
{
	char line[4096], stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "%s thinfs[%d]: %s: ", stamp, (int)getpid(), prio_word(prio));
	if (n >= 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2; /* cut, still one line */
	line[n++] = '\n';
	/* Nowhere left to say that the log file failed. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}

void tf_vlog(int prio, const char *fmt, va_list ap)
{
	if (prio > log_max)
		return;
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0) {
		file_line(prio, fmt, ap);
	} else if (log_stderr) {
		va_list again;
		int e;

		va_copy(again, ap);
		errno = 0;
		fprintf(stderr, "thinfs: %s: ", prio_word(prio));
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		if (ferror(stderr)) {
			e = errno;
			clearerr(stderr);
			log_stderr = false;
			openlog("thinfs", LOG_PID, LOG_DAEMON);
			syslog(LOG_WARNING, "stderr takes no more lines (%s): the log goes to syslog from here on",
			       e ? strerror(e) : "write error");
			vsyslog(prio, fmt, again);
		}
		va_end(again);
	} else {
		vsyslog(prio, fmt, ap);
	}
	pthread_mutex_unlock(&log_lock);
}

void tf_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tf_vlog(prio, fmt, ap);
	va_end(ap);
}
