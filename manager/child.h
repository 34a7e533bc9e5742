/*
 * The manager's one SIGCHLD handler: a registry of the children it started
 * (pid -> callback), fed by a libevent signal event on the manager's loop
 * and reaping with waitpid(-1, WNOHANG) in a loop, so no child stays a
 * zombie and each exit reaches the code that started the child, on the
 * loop thread, never inside a signal handler.
 *
 * Usage: child_init(base) once (reference-counted: every user may call it
 * and pair it with child_release()); spawn_start(); child_watch(pid, ...)
 * before returning to the loop (a child that exits in between is simply
 * reaped at the next turn of the loop and its callback still runs).
 *
 * Every child of the process should be watched: the reaping loop also
 * collects children nobody registered (their status is dropped, with a
 * debug log line).  Process-wide state: one event_base only (libevent
 * lets one base own a signal at a time).
 */
#ifndef FL_CHILD_H
#define FL_CHILD_H

#include <sys/types.h>

struct event_base;

/* The child ended; status as waitpid() returns it.  Runs on the loop. */
typedef void (*child_exit_fn)(void *arg, pid_t pid, int status);

/*
 * Install the SIGCHLD event on base (first call) or take one more
 * reference (later calls with the same base).  0, FL_ERR_INVAL (another
 * base is already in use) or FL_ERR_INTERNAL (libevent refused).
 */
int child_init(struct event_base *base);

/* Drop a reference; the last one removes the event and forgets every
 * watch (their children are no longer reaped by us). */
void child_release(void);

/* Call fn(arg, pid, status) when pid ends.  0, FL_ERR_INVAL (not
 * initialised, bad pid) or FL_ERR_EXISTS (already watched). */
int child_watch(pid_t pid, child_exit_fn fn, void *arg);

/* Forget pid's callback (the child is still reaped, silently).  For a
 * caller that reaps pid itself (waitpid(pid, ...)) after this. */
void child_unwatch(pid_t pid);

/* Reap now whatever has ended, running callbacks (the signal event does
 * this by itself; for tests and shutdown paths). */
void child_reap(void);

/* How many children are watched (tests). */
unsigned child_count(void);

/* "exit_code=3" / "signal=KILL": a short form of a wait status, for logs
 * and messages.  Writes into buf (32 bytes are enough) and returns it. */
char *child_status_str(int status, char *buf, size_t len);

#endif
