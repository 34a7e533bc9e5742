/*
 * Zip archives of artifacts and caches, written and read with libarchive,
 * in the layout GitLab Runner's helper uses: one entry per file, directory
 * (name ending in '/') and symbolic link, paths relative to the project
 * directory, Unix modes and mtimes kept, deflate compression.
 */
#ifndef FL_ZIPARC_H
#define FL_ZIPARC_H

#include <stddef.h>

struct sbuf;

/* Called for each file skipped while archiving (vanished, unreadable). */
typedef void (*ziparc_warn_fn)(void *arg, const char *path, const char *why);

/*
 * Write a zip of files[0..n) (paths relative to the current directory, in
 * that order; "." entries are skipped) to fd, which must be a regular file
 * or pipe opened for writing; the caller keeps fd.  A file that vanished
 * or cannot be read is skipped with warn (may be NULL).  0, or FL_ERR_IO
 * with the reason appended to why (may be NULL).
 */
int ziparc_create(int fd, const char *const *files, size_t n,
    ziparc_warn_fn warn, void *warn_arg, struct sbuf *why);

/*
 * Extract the zip read from fd (a regular file, read from offset 0) into
 * the current directory, replacing existing files.  The names are checked
 * first: an archive with an absolute path or a ".." component is refused
 * as a whole (FL_ERR_PROTO, nothing written).  Writes never go through a
 * symbolic link (libarchive's SECURE_SYMLINKS).  Ownership is not
 * restored; modes and mtimes are.  *nentries (may be NULL) gets the
 * number of entries extracted.  0, FL_ERR_PARSE for a broken archive,
 * FL_ERR_PROTO, or FL_ERR_IO; the reason appended to why (may be NULL).
 */
int ziparc_extract(int fd, size_t *nentries, struct sbuf *why);

#endif
