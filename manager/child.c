/*
 * SIGCHLD and reaping for the whole manager (see child.h).  The registry
 * is a small array: a manager has a handful of children (one plugin per
 * runner, the odd ssh of plugin-test), so a linear search is the simplest
 * thing that is fast enough.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "child.h"
#include "err.h"
#include "log.h"
#include "xmalloc.h"

struct watch {
	pid_t pid;
	child_exit_fn fn;
	void *arg;
};

static struct event_base *child_base;
static struct event *child_ev;
static unsigned child_refs;
static struct watch *watches;
static size_t nwatches, capwatches;

static struct watch *
find(pid_t pid)
{
	for (size_t i = 0; i < nwatches; i++) {
		if (watches[i].pid == pid)
			return &watches[i];
	}
	return NULL;
}

static void
drop(struct watch *w)
{
	size_t i = (size_t)(w - watches);

	memmove(&watches[i], &watches[i + 1],
	    (nwatches - i - 1) * sizeof(*watches));
	nwatches--;
}

void
child_reap(void)
{
	struct watch *w, copy;
	int status;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;	/* 0: none ended yet; ECHILD: none at all */
		w = find(pid);
		if (w == NULL) {
			char st[32];

			log_debug("reaped unwatched child %ld (%s)", (long)pid,
			    child_status_str(status, st, sizeof(st)));
			continue;
		}
		/* The callback may watch or unwatch others: copy first. */
		copy = *w;
		drop(w);
		copy.fn(copy.arg, pid, status);
	}
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	child_reap();
}

int
child_init(struct event_base *base)
{
	if (base == NULL)
		return FL_ERR_INVAL;
	if (child_refs > 0) {
		if (base != child_base)
			return FL_ERR_INVAL;
		child_refs++;
		return 0;
	}
	child_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if (child_ev == NULL || evsignal_add(child_ev, NULL) != 0) {
		if (child_ev != NULL)
			event_free(child_ev);
		child_ev = NULL;
		return FL_ERR_INTERNAL;
	}
	child_base = base;
	child_refs = 1;
	return 0;
}

void
child_release(void)
{
	if (child_refs == 0 || --child_refs > 0)
		return;
	event_free(child_ev);
	child_ev = NULL;
	child_base = NULL;
	free(watches);
	watches = NULL;
	nwatches = capwatches = 0;
}

int
child_watch(pid_t pid, child_exit_fn fn, void *arg)
{
	if (child_refs == 0 || pid <= 0 || fn == NULL)
		return FL_ERR_INVAL;
	if (find(pid) != NULL)
		return FL_ERR_EXISTS;
	if (nwatches == capwatches) {
		capwatches = capwatches ? capwatches * 2 : 8;
		watches = xreallocarray(watches, capwatches,
		    sizeof(*watches));
	}
	watches[nwatches].pid = pid;
	watches[nwatches].fn = fn;
	watches[nwatches].arg = arg;
	nwatches++;
	/* A child that already ended is still a zombie: reaping only runs
	 * on the loop (or child_reap()), after this returns. */
	return 0;
}

void
child_unwatch(pid_t pid)
{
	struct watch *w = find(pid);

	if (w != NULL)
		drop(w);
}

unsigned
child_count(void)
{
	return (unsigned)nwatches;
}

char *
child_status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exit_code=%d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));

		if (name != NULL)
			snprintf(buf, len, "signal=%s", name);
		else
			snprintf(buf, len, "signal=%d", WTERMSIG(status));
	} else {
		snprintf(buf, len, "status=0x%x", (unsigned)status);
	}
	return buf;
}
