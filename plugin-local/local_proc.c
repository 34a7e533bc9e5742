/*
 * Process handling for the local plugin (see local_proc.h): the one spawn
 * function, run-to-completion with captured output, liveness by /proc, and
 * ending a process tree the way a VM's deletion ends everything on it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "local_proc.h"
#include "xmalloc.h"

#define CAPTURE_MAX (64 * 1024)
#define MAX_TREE 4096

/* The environment of every child: enough for ssh-keygen and sshd. */
static char *const child_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C",
	NULL
};

int64_t
local_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
local_now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* In the child: report errno on the pipe and exit (async-signal-safe). */
static void
child_fail(int fd, int e)
{
	(void)!write(fd, &e, sizeof(e));
	_exit(127);
}

int
local_proc_spawn(const struct local_proc_spec *s, pid_t *pid, char *err,
    size_t errlen)
{
	int ep[2], nullfd, fds[3], e = 0;
	struct sigaction dfl;
	sigset_t none;
	pid_t p;
	ssize_t r;

	if (s->argv == NULL || s->argv[0] == NULL || s->argv[0][0] != '/') {
		(void)snprintf(err, errlen, "spawn: not an absolute path");
		return FL_ERR_INVAL;
	}
	/* Everything the child needs is prepared before fork. */
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0) {
		(void)snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		return FL_ERR_IO;
	}
	if (pipe2(ep, O_CLOEXEC) != 0) {
		(void)snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(nullfd);
		return FL_ERR_IO;
	}
	fds[0] = s->stdin_fd >= 0 ? s->stdin_fd : nullfd;
	fds[1] = s->stdout_fd >= 0 ? s->stdout_fd : nullfd;
	fds[2] = s->stderr_fd >= 0 ? s->stderr_fd : nullfd;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&none);

	p = fork();
	if (p < 0) {
		(void)snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ep[0]);
		close(ep[1]);
		close(nullfd);
		return FL_ERR_IO;
	}
	if (p == 0) {
		int sig;

		for (sig = 1; sig < NSIG; sig++) {
			if (sig != SIGKILL && sig != SIGSTOP)
				(void)sigaction(sig, &dfl, NULL);
		}
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		if (s->new_session && setsid() < 0)
			child_fail(ep[1], errno);
		/* fds may overlap 0..2: move them above first. */
		for (int i = 0; i < 3; i++) {
			int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

			if (d < 0)
				child_fail(ep[1], errno);
			fds[i] = d;
		}
		for (int i = 0; i < 3; i++) {
			if (dup2(fds[i], i) < 0)
				child_fail(ep[1], errno);
		}
		/* Everything else closes; the error pipe is close-on-exec. */
		if (ep[1] > 3)
			(void)close_range(3, (unsigned)ep[1] - 1, 0);
		(void)close_range((unsigned)ep[1] + 1, ~0U, 0);
		execve(s->argv[0], (char *const *)s->argv, child_env);
		child_fail(ep[1], errno);
	}
	close(ep[1]);
	close(nullfd);
	do {
		r = read(ep[0], &e, sizeof(e));
	} while (r < 0 && errno == EINTR);
	close(ep[0]);
	if (r == (ssize_t)sizeof(e)) {
		int st;

		(void)waitpid(p, &st, 0);
		(void)snprintf(err, errlen, "%s: %s", s->argv[0], strerror(e));
		return e == ENOENT || e == EACCES ? FL_ERR_NOTFOUND : FL_ERR_IO;
	}
	*pid = p;
	return 0;
}

/* Append what fd has to sb (capped); returns 0 at EOF, 1 otherwise. */
static int
drain(int fd, struct sbuf *sb)
{
	char buf[4096];
	ssize_t r = read(fd, buf, sizeof(buf));

	if (r < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (r == 0)
		return 0;
	if (sb != NULL && sb->len < CAPTURE_MAX)
		sbuf_add(sb, buf, (size_t)r);
	return 1;
}

int
local_proc_run(const char *const *argv, struct sbuf *out, struct sbuf *errout,
    int timeout_ms, int *exit_status, char *err, size_t errlen)
{
	struct local_proc_spec s = { argv, -1, -1, -1, false };
	int po[2], pe[2], rc, st, open_n = 2;
	struct pollfd pfd[2];
	int64_t end = local_now_mono() + (int64_t)timeout_ms * 1000000;
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) != 0) {
		(void)snprintf(err, errlen, "pipe: %s", strerror(errno));
		return FL_ERR_IO;
	}
	if (pipe2(pe, O_CLOEXEC) != 0) {
		(void)snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(po[0]);
		close(po[1]);
		return FL_ERR_IO;
	}
	s.stdout_fd = po[1];
	s.stderr_fd = pe[1];
	rc = local_proc_spawn(&s, &pid, err, errlen);
	close(po[1]);
	close(pe[1]);
	if (rc != 0) {
		close(po[0]);
		close(pe[0]);
		return rc;
	}
	pfd[0].fd = po[0];
	pfd[1].fd = pe[0];
	pfd[0].events = pfd[1].events = POLLIN;
	while (open_n > 0) {
		int64_t left = (end - local_now_mono()) / 1000000;

		if (left <= 0) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &st, 0);
			close(po[0]);
			close(pe[0]);
			(void)snprintf(err, errlen, "%s: no answer within %d ms",
			    argv[0], timeout_ms);
			return FL_ERR_TIMEOUT;
		}
		if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd >= 0 && (pfd[i].revents &
			    (POLLIN | POLLHUP | POLLERR)) &&
			    !drain(pfd[i].fd, i == 0 ? out : errout)) {
				pfd[i].fd = -1;
				open_n--;
			}
		}
	}
	close(po[0]);
	close(pe[0]);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			(void)snprintf(err, errlen, "waitpid: %s",
			    strerror(errno));
			return FL_ERR_IO;
		}
	}
	*exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

/* Read /proc/PID/stat: state letter and parent pid; 0 or -1. */
static int
proc_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	int fd;
	ssize_t n;
	long pp;

	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold anything: the state follows the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0')
		return -1;
	*state = p[2];
	if (sscanf(p + 3, " %ld", &pp) != 1)
		return -1;
	*ppid = (pid_t)pp;
	return 0;
}

/* Does /proc/PID/cmdline contain needle? */
static bool
cmdline_has(pid_t pid, const char *needle)
{
	char path[64], buf[8192];
	int fd;
	ssize_t n;

	(void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\0')
			buf[i] = ' ';
	}
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

bool
local_proc_alive(pid_t pid, const char *needle)
{
	char state;
	pid_t ppid;
	int st;

	if (pid <= 1)
		return false;
	/* Our own child that exited: reap it (then /proc has nothing). */
	(void)waitpid(pid, &st, WNOHANG);
	if (proc_stat(pid, &state, &ppid) != 0 || state == 'Z' || state == 'X')
		return false;
	return needle == NULL || cmdline_has(pid, needle);
}

/* Append the descendants of pid to v (breadth-first over /proc). */
static size_t
descendants(pid_t pid, pid_t *v, size_t n, size_t cap)
{
	size_t start = n;
	DIR *d;
	struct dirent *de;

	v[n++] = pid;
	for (size_t k = start; k < n; k++) {
		d = opendir("/proc");
		if (d == NULL)
			break;
		while ((de = readdir(d)) != NULL && n < cap) {
			char state, *end;
			pid_t ppid;
			long p = strtol(de->d_name, &end, 10);

			if (*end != '\0' || p <= 1)
				continue;
			if (proc_stat((pid_t)p, &state, &ppid) == 0 &&
			    ppid == v[k] && state != 'Z')
				v[n++] = (pid_t)p;
		}
		closedir(d);
	}
	return n;
}

static bool
all_dead(const pid_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (local_proc_alive(v[i], NULL))
			return false;
	}
	return true;
}

int
local_proc_kill_tree(pid_t pid, const char *needle, int grace_ms)
{
	pid_t *v;
	size_t n;
	int64_t end;
	int rc = 0;

	if (!local_proc_alive(pid, needle))
		return 0;
	v = xcalloc(MAX_TREE, sizeof(*v));
	n = descendants(pid, v, 0, MAX_TREE);
	/* Children first, so that the listener does not outlive them. */
	for (size_t i = n; i-- > 0;)
		(void)kill(v[i], SIGTERM);
	end = local_now_mono() + (int64_t)grace_ms * 1000000;
	while (!all_dead(v, n) && local_now_mono() < end)
		sleep_ms(20);
	if (!all_dead(v, n)) {
		/* Whatever started meanwhile goes too. */
		n = descendants(pid, v, 0, MAX_TREE);
		for (size_t i = 0; i < n; i++)
			(void)kill(v[i], SIGKILL);
		end = local_now_mono() + 2000000000LL;
		while (!all_dead(v, n) && local_now_mono() < end)
			sleep_ms(20);
		if (!all_dead(v, n))
			rc = FL_ERR_TIMEOUT;
	}
	free(v);
	return rc;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int
local_proc_rm_rf(const char *path)
{
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 :
	    FL_ERR_IO;
}
