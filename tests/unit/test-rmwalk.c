/*
 * test-rmwalk.c - the marks of rm -r walks (src/rmwalk.h): a process is
 * its thread group (a thread's id names the same process), a mark is
 * found by its process only, refreshed and dropped; the identity of a
 * process that cannot be read is {0, 0}.
 */
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rmwalk.h"
#include "tap.h"

static struct rmwalk_who from_thread;

static void *thread_who(void *arg)
{
	(void)arg;
	rmwalk_who_of((pid_t)syscall(SYS_gettid), &from_thread);
	return NULL;
}

int main(void)
{
	char tops[4][DS_NAME_MAX + 1];
	struct rmwalk_who me, other, nobody;
	struct rmwalk w;
	pthread_t t;

	rmwalk_who_of(getpid(), &me);
	is_int(me.tgid, getpid(), "the main thread is this process");
	ok(me.start > 0, "with its start time (%llu)", (unsigned long long)me.start);
	ok(pthread_create(&t, NULL, thread_who, NULL) == 0 && pthread_join(t, NULL) == 0, "a second thread ran");
	ok(from_thread.tgid == me.tgid && from_thread.start == me.start,
	   "a request from another thread of the process is the same process");
	rmwalk_who_of(0, &nobody);
	ok(nobody.tgid == 0 && nobody.start == 0, "pid 0 (outside our pid namespace): {0, 0}");
	rmwalk_who_of(0x3fffffff, &nobody);
	ok(nobody.tgid == 0 && nobody.start == 0, "a pid that does not exist: {0, 0}");
	other = me;
	other.start++;

	rmwalk_init(&w);
	ok(!rmwalk_any(&w), "no marks at first");
	is_int(rmwalk_mark(&w, &me, "proj"), 0, "mark proj for this process");
	is_int(rmwalk_mark(&w, &me, "proj"), 0, "marking it again");
	ok(rmwalk_any(&w), "there are marks");
	is_int((int)rmwalk_tops(&w, &me, tops, 4), 1, "one mark, not two");
	is_str(tops[0], "proj", "on proj");
	is_int((int)rmwalk_tops(&w, &other, tops, 4), 0,
	       "a process with the same pid and another start time (a reused pid) has none");
	rmwalk_mark(&w, &me, "a");
	rmwalk_mark(&w, &other, "x");
	is_int((int)rmwalk_tops(&w, &me, tops, 1), 2, "two marks of this process, counted even beyond max");
	rmwalk_drop(&w, &me, "proj");
	is_int((int)rmwalk_tops(&w, &me, tops, 4), 1, "proj's mark dropped");
	is_str(tops[0], "a", "a's stays");
	is_int((int)rmwalk_tops(&w, &other, tops, 4), 1, "the other process's mark stays");
	rmwalk_drop(&w, &me, "a");
	rmwalk_drop(&w, &other, "x");
	ok(!rmwalk_any(&w), "no marks left");
	rmwalk_mark(&w, &me, "left");
	rmwalk_fini(&w);
	return tap_done();
}
