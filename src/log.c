/*
 * log.c - the one logging path: stderr in the foreground, syslog otherwise.
 * A mutex keeps lines from different threads whole on stderr.
 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool log_stderr = true;
static int log_max = LOG_INFO;

void tf_log_init(bool to_stderr, int max_prio)
{
	pthread_mutex_lock(&log_lock);
	log_stderr = to_stderr;
	log_max = max_prio;
	if (!to_stderr)
		openlog("thinfs", LOG_PID, LOG_DAEMON);
	pthread_mutex_unlock(&log_lock);
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

void tf_vlog(int prio, const char *fmt, va_list ap)
{
	if (prio > log_max)
		return;
	if (!log_stderr) {
		vsyslog(prio, fmt, ap);
		return;
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "thinfs: %s: ", prio_word(prio));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

void tf_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tf_vlog(prio, fmt, ap);
	va_end(ap);
}
