/*
 * What gitlab.c shares with gitlab_trace.c and nobody else: the event
 * base, the re-entrancy guard and the clocks.  Not a public interface.
 */
#ifndef FL_GITLAB_INT_H
#define FL_GITLAB_INT_H

#include <stdint.h>

struct event_base;
struct gitlab;
struct gitlab_runner;
struct gitlab_trace;

struct gitlab *gitlab_runner_client(struct gitlab_runner *r);
struct event_base *gitlab_evbase(struct gitlab *gl);

/*
 * Every entry from libevent that may call a user callback runs between
 * gitlab_enter() and gitlab_leave(): gitlab_free() and
 * gitlab_runner_free() called meanwhile only mark; the outermost leave
 * does the freeing.
 */
void gitlab_enter(struct gitlab *gl);
void gitlab_leave(struct gitlab *gl);

/* The runner's list of live traces, so that freeing the runner frees them. */
void gitlab_runner_add_trace(struct gitlab_runner *r, struct gitlab_trace *t);
void gitlab_runner_del_trace(struct gitlab_runner *r, struct gitlab_trace *t);

int64_t gitlab_mono_ms(void);
/* A uniform double in [0,1) from the client's generator (jitter). */
double gitlab_rand01(struct gitlab *gl);

#endif
