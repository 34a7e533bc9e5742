/*
 * THE one way the manager starts a child process (plugins, and the ssh
 * client of `flotilla plugin-test`).  Everything is prepared before fork():
 * argv, envp, /dev/null for stdin and close-on-exec pipes for stdout and
 * stderr, so the child only runs async-signal-safe system calls between
 * fork() and execve().  A failed execve() is reported back through a
 * close-on-exec pipe, so "binary missing" is a synchronous error of
 * spawn_start() ("cannot run /path: No such file or directory") rather
 * than a child that exits 127 later.
 *
 * In the child, before execve():
 *   - every signal disposition back to the default and an empty signal mask
 *     (the manager's handlers and blocked signals are not inherited);
 *   - optionally its own process group (setpgid(0, 0)), so that a terminal's
 *     ^C or a signal sent to the manager's group does not reach plugins,
 *     which the manager stops in its own order (Shutdown, then signals);
 *   - optionally PR_SET_PDEATHSIG: the kernel sends that signal to the child
 *     when the thread that forked it ends, so `kill -9` of the manager takes
 *     its plugins along.  getppid() is checked afterwards: if the manager
 *     died between fork() and prctl(), the child exits at once.  Caveat:
 *     the signal follows the forking THREAD, so spawn from the thread that
 *     lives as long as the process (the event loop's);
 *   - every descriptor above 2 marked close-on-exec (close_range), so
 *     nothing the manager holds leaks into the child.
 *
 * Reaping is not done here (except after a failed exec): register the pid
 * with child_watch() (child.h) before returning to the event loop.
 */
#ifndef FL_SPAWN_H
#define FL_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct spawn_opts {
	const char *path;	/* executable: used as is, no PATH search */
	char *const *argv;	/* argv[0] first, NULL-terminated */
	char *const *envp;	/* NULL: the manager's environment */
	int new_pgrp;		/* setpgid(0, 0) in the child */
	int pdeathsig;		/* 0: none, else the signal (SIGKILL) */
	int keep_stdout;	/* 1: the child's stdout is the manager's own
				   stdout instead of a pipe (out_fd = -1) */
	int keep_stderr;	/* the same for stderr */
};

struct spawn_child {
	pid_t pid;
	int out_fd;	/* read end of the child's stdout: non-blocking,
			   close-on-exec; the caller closes it.  -1 if kept */
	int err_fd;	/* the same for stderr */
};

/*
 * Start o->path.  Returns 0 and fills *out, or a negative FL_ERR_* with a
 * message in err: FL_ERR_NOTFOUND / FL_ERR_IO for an exec failure
 * ("cannot run PATH: <strerror>"; the child has been reaped), FL_ERR_IO for
 * pipe/fork failures, FL_ERR_INVAL for bad arguments.  On failure no fd
 * is left open and no child is left running.
 */
int spawn_start(const struct spawn_opts *o, struct spawn_child *out,
    char *err, size_t errlen);

/*
 * An environment for a child: the manager's environ with every variable
 * named in set ("KEY=VALUE" strings) replaced or added.  Returns a
 * NULL-terminated array to free with spawn_env_free().
 */
char **spawn_env_new(char *const *set, size_t nset);
void spawn_env_free(char **envp);

/* Set or clear O_NONBLOCK; 0 or FL_ERR_IO. */
int spawn_set_nonblock(int fd, int on);

#endif
