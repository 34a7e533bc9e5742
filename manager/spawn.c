/*
 * Starting child processes (see spawn.h for the contract).  The shape is
 * git's run-command.c: everything that allocates happens before fork();
 * between fork() and execve() the child makes only async-signal-safe
 * system calls; an execve() failure travels back as an errno value over a
 * close-on-exec pipe, whose EOF otherwise tells the parent that execve()
 * succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "spawn.h"
#include "xmalloc.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

int
spawn_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return FL_ERR_IO;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) == 0 ? 0 : FL_ERR_IO;
}

/*
 * Move fd above 2 (keeping close-on-exec), so that the dup2() calls onto
 * 0, 1 and 2 in the child can never clobber one of our own descriptors
 * (possible when the manager runs with a standard descriptor closed).
 */
static int
fd_above_std(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int
make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) != 0) {
		p[0] = p[1] = -1;
		return -1;
	}
	p[0] = fd_above_std(p[0]);
	p[1] = fd_above_std(p[1]);
	if (p[0] < 0 || p[1] < 0) {
		close_fd(&p[0]);
		close_fd(&p[1]);
		return -1;
	}
	return 0;
}

/* Point std (0, 1, 2) at fd in the child; async-signal-safe. */
static int
child_dup(int fd, int std)
{
	if (fd == std)
		return fcntl(fd, F_SETFD, 0);	/* keep it across exec */
	return dup2(fd, std) == std ? 0 : -1;
}

/* The child, between fork() and execve(): async-signal-safe calls only. */
static void __attribute__((noreturn))
child_run(const struct spawn_opts *o, char *const *envp, pid_t parent,
    int devnull, int out_w, int err_w, int exec_w)
{
	struct sigaction sa;
	sigset_t empty;
	int e, sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);	/* EINVAL: fine */
	}
	if (o->new_pgrp && setpgid(0, 0) != 0)
		goto fail;
	if (o->pdeathsig != 0) {
		if (prctl(PR_SET_PDEATHSIG, o->pdeathsig, 0, 0, 0) != 0)
			goto fail;
		/* The manager may have died before prctl(): nobody to wait
		 * for us, so do not start at all. */
		if (getppid() != parent)
			_exit(127);
	}
	if (child_dup(devnull, 0) != 0)
		goto fail;
	if (!o->keep_stdout && child_dup(out_w, 1) != 0)
		goto fail;
	if (!o->keep_stderr && child_dup(err_w, 2) != 0)
		goto fail;
	/* Whatever else is open (ours, libraries') must not leak; the exec
	 * pipe is close-on-exec already and stays usable until execve(). */
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	sigemptyset(&empty);
	(void)sigprocmask(SIG_SETMASK, &empty, NULL);
	execve(o->path, o->argv, envp);
fail:
	e = errno;
	while (write(exec_w, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

int
spawn_start(const struct spawn_opts *o, struct spawn_child *out, char *err,
    size_t errlen)
{
	int devnull = -1, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int execp[2] = { -1, -1 }, child_errno = 0, rc;
	char *const *envp;
	sigset_t all, old;
	ssize_t n;
	size_t got = 0;
	pid_t pid, parent;

	out->pid = -1;
	out->out_fd = out->err_fd = -1;
	if (o == NULL || o->path == NULL || o->argv == NULL ||
	    o->argv[0] == NULL) {
		snprintf(err, errlen, "spawn: no program given");
		return FL_ERR_INVAL;
	}
	envp = o->envp != NULL ? o->envp : environ;

	devnull = fd_above_std(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (devnull < 0 || (!o->keep_stdout && make_pipe(outp) != 0) ||
	    (!o->keep_stderr && make_pipe(errp) != 0) ||
	    make_pipe(execp) != 0) {
		snprintf(err, errlen, "cannot run %s: %s", o->path,
		    strerror(errno));
		rc = FL_ERR_IO;
		goto out;
	}

	/* No handler of ours may run in the child before it resets them. */
	parent = getpid();
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_run(o, envp, parent, devnull, outp[1], errp[1],
		    execp[1]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		snprintf(err, errlen, "cannot run %s: fork: %s", o->path,
		    strerror(errno));
		rc = FL_ERR_IO;
		goto out;
	}
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	close_fd(&execp[1]);
	close_fd(&devnull);

	/* EOF: execve() succeeded.  An int: it failed with that errno. */
	while (got < sizeof(child_errno)) {
		n = read(execp[0], (char *)&child_errno + got,
		    sizeof(child_errno) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (got < sizeof(child_errno))
			child_errno = EIO;
		snprintf(err, errlen, "cannot run %s: %s", o->path,
		    strerror(child_errno));
		rc = child_errno == ENOENT || child_errno == ENOTDIR ?
		    FL_ERR_NOTFOUND : FL_ERR_IO;
		goto out;
	}
	if ((outp[0] >= 0 && spawn_set_nonblock(outp[0], 1) != 0) ||
	    (errp[0] >= 0 && spawn_set_nonblock(errp[0], 1) != 0)) {
		/* Cannot happen on a pipe we just made; keep the promise. */
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		snprintf(err, errlen, "cannot run %s: fcntl: %s", o->path,
		    strerror(errno));
		rc = FL_ERR_IO;
		goto out;
	}
	out->pid = pid;
	out->out_fd = outp[0];
	out->err_fd = errp[0];
	outp[0] = errp[0] = -1;
	rc = 0;
out:
	close_fd(&devnull);
	close_fd(&outp[0]);
	close_fd(&outp[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	close_fd(&execp[0]);
	close_fd(&execp[1]);
	return rc;
}

/* Does env entry e ("KEY=...") set the same key as s ("KEY=...")? */
static int
same_key(const char *e, const char *s)
{
	const char *eq = strchr(s, '=');
	size_t klen = eq != NULL ? (size_t)(eq - s) : strlen(s);

	return strncmp(e, s, klen) == 0 && e[klen] == '=';
}

char **
spawn_env_new(char *const *set, size_t nset)
{
	size_t n = 0, i, j, k = 0;
	char **env;

	while (environ != NULL && environ[n] != NULL)
		n++;
	env = xcalloc(n + nset + 1, sizeof(*env));
	for (i = 0; i < n; i++) {
		int replaced = 0;

		for (j = 0; j < nset && !replaced; j++)
			replaced = same_key(environ[i], set[j]);
		if (!replaced)
			env[k++] = xstrdup(environ[i]);
	}
	for (j = 0; j < nset; j++)
		env[k++] = xstrdup(set[j]);
	env[k] = NULL;
	return env;
}

void
spawn_env_free(char **envp)
{
	if (envp == NULL)
		return;
	for (size_t i = 0; envp[i] != NULL; i++)
		free(envp[i]);
	free(envp);
}
