/*
 * fault.c - crash points for tests (see fault.h). THINFS_FAULT names the
 * point at which the process kills itself with SIGKILL, the signal that
 * gives no chance to clean up, so a restart must recover from it.
 */
#include "fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *const fault_points[] = {
	"base-after-open-txn",
	"base-after-pool-create",
	"base-after-register",
	"base-after-mkfs",
	"base-after-initialized",
	"base-after-grow-size",
	"add-after-intent",
	"add-after-pool-create",
	"add-before-commit",
	"add-after-close-txn",
	"delete-after-tombstone",
	"delete-after-pool-delete",
	"delete-after-unregister",
	"rename-after-new-file",
	"rename-after-children",
	"rename-after-old-removed",
	NULL,
};

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static const char *fault_armed;

static void fault_read_env(void)
{
	fault_armed = getenv("THINFS_FAULT");
	if (fault_armed && !*fault_armed)
		fault_armed = NULL;
}

void fault_point(const char *name)
{
	pthread_once(&fault_once, fault_read_env);
	if (!fault_armed || strcmp(fault_armed, name) != 0)
		return;
	log_warn("fault injection: killed at %s", name);
	raise(SIGKILL);
}
