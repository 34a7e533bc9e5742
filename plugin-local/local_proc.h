/*
 * Child processes of the local plugin: ssh-keygen runs to completion and
 * sshd listeners that outlive the plugin.  Every child is started by
 * local_proc_spawn: argv only (no shell), a fixed small environment,
 * chosen standard fds, signal dispositions and mask reset (the SDK blocks
 * SIGTERM and ignores SIGINT/SIGHUP/SIGPIPE, which exec would otherwise
 * pass on), every other fd closed, optionally a new session; an exec
 * failure comes back as an error through a close-on-exec pipe.
 *
 * Processes are found again by pid plus a check of /proc/PID/cmdline, so
 * a recycled pid is never signalled.
 */
#ifndef FL_LOCAL_PROC_H
#define FL_LOCAL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sbuf;

struct local_proc_spec {
	const char *const *argv;	/* argv[0]: an absolute path */
	int stdin_fd;			/* -1: /dev/null */
	int stdout_fd;			/* -1: /dev/null */
	int stderr_fd;			/* -1: /dev/null */
	bool new_session;		/* setsid() in the child */
};

/*
 * Start a child.  0 and *pid, or FL_ERR_IO / FL_ERR_NOTFOUND (exec
 * failed: missing or not executable) with a message in err.  The caller
 * reaps it (waitpid).  Thread-safe; the child runs only async-signal-safe
 * code before exec.
 */
int local_proc_spawn(const struct local_proc_spec *s, pid_t *pid, char *err,
    size_t errlen);

/*
 * Run argv to completion within timeout_ms (then SIGKILL and
 * FL_ERR_TIMEOUT), its stdout appended to out and its stderr to errout
 * (either may be NULL: discarded; each capped at 64 KiB).  0 and
 * *exit_status (the exit code, or 128 + signal), or an FL_ERR_* code
 * with a message in err.
 */
int local_proc_run(const char *const *argv, struct sbuf *out,
    struct sbuf *errout, int timeout_ms, int *exit_status, char *err,
    size_t errlen);

/*
 * pid is a live process (not a zombie) whose command line contains
 * needle (NULL: any).  Reaps pid first if it is our child and has exited.
 */
bool local_proc_alive(pid_t pid, const char *needle);

/*
 * End pid (checked with needle as above) and all its descendants:
 * SIGTERM, up to grace_ms for them to go, then SIGKILL and up to 2 s
 * more.  Reaps those that are our children.  0, or FL_ERR_TIMEOUT if
 * some survive SIGKILL.
 */
int local_proc_kill_tree(pid_t pid, const char *needle, int grace_ms);

/* Remove path and everything below it (no symlinks followed). 0 or FL_ERR_IO. */
int local_proc_rm_rf(const char *path);

/* Monotonic and wall clocks in nanoseconds. */
int64_t local_now_mono(void);
int64_t local_now_real(void);

#endif
