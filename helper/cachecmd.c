/*
 * The job cache as GitLab Runner keeps it without a distributed cache: a
 * zip per cache key on the /cache volume, written by the archive_cache
 * stage and unpacked by the next job's restore_cache.  Jobs run in
 * parallel on one volume, so the archive is written under a temporary
 * name and renamed into place: a reader sees the old archive or the new
 * one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachecmd.h"
#include "err.h"
#include "filelist.h"
#include "log.h"
#include "xmalloc.h"
#include "ziparc.h"

int
cachecmd_mkparents(const char *path)
{
	char *p = xstrdup(path);
	char *slash = strrchr(p, '/');
	int rc = 0;

	if (slash == NULL || slash == p) {
		free(p);
		return 0;
	}
	*slash = '\0';
	for (char *s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0777) == 0)
			;
		else if (errno != EEXIST)
			rc = FL_ERR_IO;
		else {
			struct stat st;

			if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				rc = FL_ERR_IO;
			}
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rc;
}

static void
warn_skip(void *arg, const char *path, const char *why)
{
	(void)arg;
	log_warn("%s: %s: not archived", path, why);
}

static const struct option archiver_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "path", required_argument, NULL, 'p' },
	{ "exclude", required_argument, NULL, 'x' },
	{ "untracked", no_argument, NULL, 'U' },
	{ "timeout", required_argument, NULL, 'T' },
	{ NULL, 0, NULL, 0 }
};

static void
push(const char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = s;
}

int
cachecmd_archiver_main(int argc, char **argv)
{
	const char *file = NULL, **paths = NULL, **excludes = NULL;
	size_t npaths = 0, nexcludes = 0;
	int untracked = 0, c, fd = -1, rc = 1;
	struct filelist l = { 0 };
	char *tmp = NULL;
	struct sbuf why;

	sbuf_init(&why);
	while ((c = getopt_long(argc, argv, "", archiver_opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'p': push(&paths, &npaths, optarg); break;
		case 'x': push(&excludes, &nexcludes, optarg); break;
		case 'U': untracked = 1; break;
		case 'T': break;	/* local files: nothing to time out */
		default:
			log_fatal("cache-archiver: unknown option (see flotilla-helper --help)");
		}
	}
	if (optind < argc)
		log_fatal("cache-archiver: unexpected argument %s", argv[optind]);
	if (file == NULL || file[0] == '\0')
		log_fatal("cache-archiver: --file is required");

	struct filelist_opts fo = { .paths = paths, .npaths = npaths,
	    .excludes = excludes, .nexcludes = nexcludes,
	    .untracked = untracked };
	if (filelist_collect(&l, &fo) < 0)
		goto out;
	if (cachecmd_mkparents(file) < 0) {
		log_error("%s: creating its directory: %s", file, strerror(errno));
		goto out;
	}

	/* A temporary name next to the target, then rename(2). */
	const char *slash = strrchr(file, '/');
	tmp = slash ? xasprintf("%.*s/.%s.XXXXXX", (int)(slash - file), file,
	    slash + 1) : xasprintf(".%s.XXXXXX", file);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		log_error("%s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	mode_t um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) < 0 ||
	    ziparc_create(fd, (const char *const *)l.files, l.n, warn_skip,
	    NULL, &why) < 0 || fsync(fd) < 0) {
		log_error("%s: creating the cache archive: %s", file,
		    why.len ? why.buf : strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		log_error("%s: %s", file, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, file) < 0) {
		log_error("%s: %s", file, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	sbuf_release(&why);
	filelist_release(&l);
	free(paths);
	free(excludes);
	return rc;
}

static const struct option extractor_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "timeout", required_argument, NULL, 'T' },
	{ NULL, 0, NULL, 0 }
};

int
cachecmd_extractor_main(int argc, char **argv)
{
	const char *file = NULL;
	struct sbuf why;
	size_t n;
	int c, fd, rc;

	while ((c = getopt_long(argc, argv, "", extractor_opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'T': break;
		default:
			log_fatal("cache-extractor: unknown option (see flotilla-helper --help)");
		}
	}
	if (optind < argc)
		log_fatal("cache-extractor: unexpected argument %s", argv[optind]);
	if (file == NULL || file[0] == '\0')
		log_fatal("cache-extractor: --file is required");
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		log_fatal("cache not found: %s", file);
	if (fd < 0)
		log_fatal("%s: %s", file, strerror(errno));
	sbuf_init(&why);
	rc = ziparc_extract(fd, &n, &why);
	close(fd);
	if (rc < 0) {
		log_error("%s: extracting the cache: %s", file,
		    why.len ? why.buf : err_str(rc));
		sbuf_release(&why);
		return 1;
	}
	sbuf_release(&why);
	log_debug("%s: %zu entries extracted", file, n);
	return 0;
}

int
cachecmd_init_main(int argc, char **argv)
{
	if (argc < 2)
		log_fatal("cache-init: no directory given");
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (argv[i][0] == '-')
			log_fatal("cache-init: unknown option %s", argv[i]);
		if (stat(argv[i], &st) < 0) {
			if (errno != ENOENT)
				log_fatal("%s: %s", argv[i], strerror(errno));
			if (cachecmd_mkparents(argv[i]) < 0 ||
			    (mkdir(argv[i], 0777) < 0 && errno != EEXIST))
				log_fatal("%s: %s", argv[i], strerror(errno));
		}
		if (chmod(argv[i], 0777) < 0)
			log_fatal("%s: %s", argv[i], strerror(errno));
	}
	return 0;
}
