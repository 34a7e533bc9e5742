/*
 * Artifacts and caches travel as zip files, as GitLab expects them (it
 * lists and serves their contents), so the helper writes and reads zip with
 * libarchive.  Extraction trusts nothing in the archive: it comes from the
 * coordinator or from a cache volume another job wrote, so names that
 * would land outside the directory are refused before anything is
 * written.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "xmalloc.h"
#include "ziparc.h"

#define COPY_BUF (64 * 1024)

static int fail(struct sbuf *why, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct sbuf *why, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL) {
		va_start(ap, fmt);
		sbuf_vaddf(why, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* libarchive's last error, never NULL. */
static const char *
aerr(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown libarchive error";
}

/* Add one file's data; a short read (file shrank) ends the entry early. */
static int
copy_data(struct archive *a, const char *path, int fd, struct sbuf *why)
{
	char *buf = xmalloc(COPY_BUF);
	ssize_t r;
	int rc = 0;

	while ((r = read(fd, buf, COPY_BUF)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = fail(why, FL_ERR_IO, "%s: %s", path, strerror(errno));
			break;
		}
		if (archive_write_data(a, buf, (size_t)r) != r) {
			rc = fail(why, FL_ERR_IO, "%s: %s", path,
			    aerr(a));
			break;
		}
	}
	free(buf);
	return rc;
}

static int
add_one(struct archive *a, struct archive_entry *e, const char *path,
    ziparc_warn_fn warn, void *warn_arg, struct sbuf *why)
{
	struct stat st;
	char target[PATH_MAX];
	int fd = -1, rc;

	if (lstat(path, &st) < 0) {
		if (warn)
			warn(warn_arg, path, strerror(errno));
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (warn)
				warn(warn_arg, path, strerror(errno));
			return 0;
		}
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0) {
			if (warn)
				warn(warn_arg, path, strerror(errno));
			return 0;
		}
		target[n] = '\0';
	} else if (!S_ISDIR(st.st_mode)) {
		if (warn)
			warn(warn_arg, path, "not a regular file, directory or link");
		return 0;
	}

	archive_entry_clear(e);
	archive_entry_copy_pathname(e, path);
	archive_entry_set_mode(e, st.st_mode);
	archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (S_ISREG(st.st_mode))
		archive_entry_set_size(e, st.st_size);
	else
		archive_entry_set_size(e, 0);
	if (S_ISLNK(st.st_mode))
		archive_entry_copy_symlink(e, target);
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		rc = fail(why, FL_ERR_IO, "%s: %s", path, aerr(a));
		goto out;
	}
	rc = fd >= 0 ? copy_data(a, path, fd, why) : 0;
	if (rc == 0 && archive_write_finish_entry(a) != ARCHIVE_OK)
		rc = fail(why, FL_ERR_IO, "%s: %s", path, aerr(a));
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
ziparc_create(int fd, const char *const *files, size_t n,
    ziparc_warn_fn warn, void *warn_arg, struct sbuf *why)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int rc = 0;

	if (a == NULL || e == NULL) {
		rc = FL_ERR_NOMEM;
		goto out;
	}
	if (archive_write_set_format_zip(a) != ARCHIVE_OK ||
	    archive_write_zip_set_compression_deflate(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		rc = fail(why, FL_ERR_IO, "zip: %s", aerr(a));
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (strcmp(files[i], ".") == 0)
			continue;
		rc = add_one(a, e, files[i], warn, warn_arg, why);
	}
	if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
		rc = fail(why, FL_ERR_IO, "zip: %s", aerr(a));
out:
	archive_entry_free(e);
	if (a != NULL)
		archive_write_free(a);
	return rc;
}

/* A name that stays inside the directory: relative, no ".." segment. */
static int
name_is_safe(const char *name)
{
	const char *s = name;

	if (name[0] == '\0' || name[0] == '/')
		return 0;
	while (*s != '\0') {
		const char *e = strchrnul(s, '/');

		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return 0;
		s = *e ? e + 1 : e;
	}
	return 1;
}

static struct archive *
open_reader(int fd, struct sbuf *why, int *rc)
{
	struct archive *a;

	*rc = 0;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		*rc = fail(why, FL_ERR_IO, "seek: %s", strerror(errno));
		return NULL;
	}
	a = archive_read_new();
	if (a == NULL) {
		*rc = FL_ERR_NOMEM;
		return NULL;
	}
	archive_read_support_format_zip(a);
	if (archive_read_open_fd(a, fd, COPY_BUF) != ARCHIVE_OK) {
		*rc = fail(why, FL_ERR_PARSE, "zip: %s", aerr(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Does path lie below one of the links[0..n) ("l/x" for link "l")? */
static const char *
below_link(char **links, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(links[i]);

		while (l > 0 && links[i][l - 1] == '/')
			l--;
		if (strncmp(path, links[i], l) == 0 && path[l] == '/')
			return links[i];
	}
	return NULL;
}

/*
 * First pass: every name is safe, no entry is written through a symbolic
 * link of the same archive, and the archive reads to its end.
 */
static int
check_names(int fd, struct sbuf *why)
{
	struct archive_entry *e;
	char **links = NULL;
	size_t nlinks = 0;
	int rc, r;
	struct archive *a = open_reader(fd, why, &rc);

	if (a == NULL)
		return rc;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e), *l;

		if (name == NULL || !name_is_safe(name)) {
			rc = fail(why, FL_ERR_PROTO,
			    "refusing the archive: entry %s leaves the directory",
			    name ? name : "(no name)");
			break;
		}
		const char *hl = archive_entry_hardlink(e);
		if (hl != NULL && !name_is_safe(hl)) {
			rc = fail(why, FL_ERR_PROTO,
			    "refusing the archive: link %s -> %s leaves the directory",
			    name, hl);
			break;
		}
		if ((l = below_link(links, nlinks, name)) != NULL) {
			rc = fail(why, FL_ERR_PROTO,
			    "refusing the archive: entry %s goes through the link %s",
			    name, l);
			break;
		}
		if (archive_entry_filetype(e) == AE_IFLNK) {
			links = xreallocarray(links, nlinks + 1, sizeof(*links));
			links[nlinks++] = xstrdup(name);
		}
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = fail(why, FL_ERR_PARSE, "zip: %s", aerr(a));
	for (size_t i = 0; i < nlinks; i++)
		free(links[i]);
	free(links);
	archive_read_free(a);
	return rc;
}

int
ziparc_extract(int fd, size_t *nentries, struct sbuf *why)
{
	struct archive *a, *w;
	struct archive_entry *e;
	size_t count = 0;
	int rc, r;

	if (nentries != NULL)
		*nentries = 0;
	rc = check_names(fd, why);
	if (rc < 0)
		return rc;
	a = open_reader(fd, why, &rc);
	if (a == NULL)
		return rc;
	w = archive_write_disk_new();
	if (w == NULL) {
		archive_read_free(a);
		return FL_ERR_NOMEM;
	}
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME |
	    ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_UNLINK |
	    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);

	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);

		/* No owner from the archive: the files are the job's. */
		archive_entry_set_uid(e, getuid());
		archive_entry_set_gid(e, getgid());
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			rc = fail(why, FL_ERR_IO, "%s: %s", name,
			    aerr(w));
			break;
		}
		if (archive_entry_size(e) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;

			while ((r = archive_read_data_block(a, &buf, &len, &off))
			    == ARCHIVE_OK) {
				if (archive_write_data_block(w, buf, len, off)
				    != ARCHIVE_OK) {
					r = ARCHIVE_FATAL;
					rc = fail(why, FL_ERR_IO, "%s: %s", name,
					    aerr(w));
					break;
				}
			}
			if (rc == 0 && r != ARCHIVE_EOF) {
				rc = fail(why, FL_ERR_PARSE, "%s: %s", name,
				    aerr(a));
			}
			if (rc < 0)
				break;
		}
		if (archive_write_finish_entry(w) != ARCHIVE_OK) {
			rc = fail(why, FL_ERR_IO, "%s: %s", name,
			    aerr(w));
			break;
		}
		count++;
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = fail(why, FL_ERR_PARSE, "zip: %s", aerr(a));
	if (archive_write_close(w) != ARCHIVE_OK && rc == 0)
		rc = fail(why, FL_ERR_IO, "%s", aerr(w));
	archive_write_free(w);
	archive_read_free(a);
	if (nentries != NULL)
		*nentries = count;
	return rc;
}
