/*
 * log.h - the one logging path of thinfs.
 *
 * Everything thinfs says goes through tf_log(): the engine, the backends,
 * the FUSE layer, and (through adapters in thinfs.c and pool-dm.c) libfuse
 * and libdevmapper.  In the foreground it writes to stderr, otherwise to
 * syslog, or to a file where no syslog listens (tf_log_to_file).  Levels are syslog's (LOG_ERR .. LOG_DEBUG).
 */
#ifndef THINFS_LOG_H
#define THINFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* Where log lines go and which are kept (prio <= max_prio). Until it is
 * called, lines go to stderr at LOG_INFO. Safe to call again. */
void tf_log_init(bool to_stderr, int max_prio);
int tf_log_max_prio(void);
/* From now on, append the log to the file path (made 0600 if missing),
 * each line with its time: for a daemon in the background where no
 * syslog listens. 0, or -errno (nothing changed). */
int tf_log_to_file(const char *path);

void tf_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tf_vlog(int prio, const char *fmt, va_list ap);

#define log_err(...) tf_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...) tf_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) tf_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) tf_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) tf_log(LOG_DEBUG, __VA_ARGS__)

#endif
