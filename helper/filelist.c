/*
 * Which files go into an artifacts or cache archive.  Users read the
 * helper's "found N matching ..." lines in their job logs and compare them
 * with GitLab's documentation, so the selection rules and the wording
 * follow GitLab Runner's file archiver (commands/helpers/file_archiver.go):
 * patterns cleaned and kept inside the project directory, a matched
 * directory walked whole, excludes applied to every path, git's untracked
 * files on request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "filelist.h"
#include "log.h"
#include "pathglob.h"
#include "xmalloc.h"

static void
list_add(struct filelist *l, const char *path)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->files = xreallocarray(l->files, l->cap, sizeof(*l->files));
	}
	l->files[l->n++] = xstrdup(path);
}

void
filelist_release(struct filelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->files[i]);
	free(l->files);
	l->files = NULL;
	l->n = l->cap = 0;
}

/* The excludes, cleaned, with a count of the paths each one removed. */
struct excl {
	char **pat;
	size_t *hits;
	size_t n;
};

struct collect {
	struct filelist *l;
	struct excl *ex;
	size_t found;
	int error;
};

/* 1 if excluded (counted against the first rule that matches). */
static int
excluded(struct collect *c, const char *path)
{
	for (size_t i = 0; i < c->ex->n; i++) {
		int m = pathglob_match(c->ex->pat[i], path);

		if (m < 0) {
			c->error = m;
			return 1;
		}
		if (m > 0) {
			c->ex->hits[i]++;
			return 1;
		}
	}
	return 0;
}

static int
add_walked(void *arg, const char *path, const struct stat *st)
{
	struct collect *c = arg;

	(void)st;
	if (strcmp(path, ".") == 0 || excluded(c, path))
		return c->error;
	list_add(c->l, path);
	c->found++;
	return 0;
}

static int
add_match(void *arg, const char *path, const struct stat *st)
{
	struct collect *c = arg;

	if (S_ISDIR(st->st_mode))
		return pathglob_walk(path, add_walked, c);
	return add_walked(c, path, st);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
filelist_git_untracked(struct filelist *l)
{
	char *argv[] = { "git", "ls-files", "-o", "-z", NULL };
	int p[2], ep[2], status, rc = 0, child_errno = 0;
	pid_t pid;
	struct sbuf out;

	/*
	 * fork and exec, with exec's failure reported through a CLOEXEC
	 * pipe (ep) so that "no git" is told apart from "git failed".  (The
	 * manager's spawn.h shadows <spawn.h> on our include path.)
	 */
	if (pipe2(p, O_CLOEXEC) < 0)
		return FL_ERR_IO;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return FL_ERR_IO;
	}
	pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 ||
		    dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		child_errno = errno;
		(void)!write(ep[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	close(p[1]);
	close(ep[1]);
	if (pid < 0) {
		close(p[0]);
		close(ep[0]);
		return FL_ERR_IO;
	}
	if (read(ep[0], &child_errno, sizeof(child_errno)) !=
	    (ssize_t)sizeof(child_errno))
		child_errno = 0;
	close(ep[0]);

	sbuf_init(&out);
	for (;;) {
		char buf[8192];
		ssize_t r = read(p[0], buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		sbuf_add(&out, buf, (size_t)r);
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (child_errno != 0) {
		rc = child_errno == ENOENT ? FL_ERR_NOTFOUND : FL_ERR_IO;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = FL_ERR_IO;
	} else {
		for (size_t i = 0; i < out.len;) {
			const char *s = out.buf + i;
			size_t len = strnlen(s, out.len - i);

			if (len > 0)
				list_add(l, s);
			i += len + 1;
		}
	}
	sbuf_release(&out);
	return rc;
}

static void
add_untracked(struct collect *c)
{
	struct filelist u = { 0 };
	int rc = filelist_git_untracked(&u);

	if (rc == FL_ERR_NOTFOUND) {
		log_warn("untracked: git is not available: untracked files are not added");
	} else if (rc < 0) {
		log_warn("untracked: git ls-files failed (not a git work tree?): untracked files are not added");
	} else {
		c->found = 0;
		for (size_t i = 0; i < u.n; i++) {
			if (!excluded(c, u.files[i])) {
				list_add(c->l, u.files[i]);
				c->found++;
			}
		}
		if (c->found == 0)
			log_warn("untracked: no files");
		else
			log_info("untracked: found %zu files", c->found);
	}
	filelist_release(&u);
}

int
filelist_collect(struct filelist *l, const struct filelist_opts *o)
{
	char cwd[PATH_MAX];
	struct excl ex = { 0 };
	struct collect c = { .l = l, .ex = &ex };
	int rc = 0;

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	ex.pat = xcalloc(o->nexcludes, sizeof(*ex.pat));
	ex.hits = xcalloc(o->nexcludes, sizeof(*ex.hits));
	for (size_t i = 0; i < o->nexcludes; i++) {
		char *clean;

		if (pathglob_clean(o->excludes[i], cwd, &clean) < 0) {
			log_warn("exclude %s is not a subpath of the project directory: ignored",
			    o->excludes[i]);
			continue;
		}
		if (pathglob_match(clean, "x") < 0) {
			log_error("exclude %s: malformed pattern", o->excludes[i]);
			free(clean);
			rc = FL_ERR_PARSE;
			goto out;
		}
		ex.pat[ex.n++] = clean;
	}

	for (size_t i = 0; i < o->npaths; i++) {
		const char *p = o->paths[i];
		char *clean;

		if (pathglob_clean(p, cwd, &clean) < 0) {
			log_warn("artifact path is not a subpath of project directory: %s", p);
			continue;
		}
		c.found = 0;
		int r = pathglob_glob(clean, add_match, &c);
		free(clean);
		if (r < 0 || c.error < 0) {
			log_error("%s: malformed pattern", p);
			rc = FL_ERR_PARSE;
			goto out;
		}
		if (c.found == 0)
			log_warn("%s: no matching files. Ensure that the artifact path is relative to the working directory (%s)",
			    p, cwd);
		else
			log_info("%s: found %zu matching artifact files and directories",
			    p, c.found);
	}
	if (o->untracked)
		add_untracked(&c);
	for (size_t i = 0; i < ex.n; i++) {
		if (ex.hits[i] > 0)
			log_info("%s: excluded %zu files", ex.pat[i], ex.hits[i]);
	}

	/* Sorted, each path once. */
	if (l->n > 1) {
		size_t w = 1;

		qsort(l->files, l->n, sizeof(*l->files), cmp_str);
		for (size_t i = 1; i < l->n; i++) {
			if (strcmp(l->files[i], l->files[w - 1]) == 0)
				free(l->files[i]);
			else
				l->files[w++] = l->files[i];
		}
		l->n = w;
	}
out:
	for (size_t i = 0; i < ex.n; i++)
		free(ex.pat[i]);
	free(ex.pat);
	free(ex.hits);
	return rc;
}
