/*
 * Path patterns as GitLab's artifacts and cache `paths:` and `exclude:` read
 * them (the doublestar library's syntax), and the walk that finds the files
 * a pattern names, relative to the current directory.  No printing: the
 * caller (filelist.c) says what was found in GitLab's words.
 *
 * Syntax, matched segment by segment ('/' separates segments):
 *   *        any run of characters but '/' (dot files too: no shell rule)
 *   ?        one character but '/'
 *   [abc] [a-z] [!a-z] [^a-z]   one character of (not of) a class
 *   {a,b/c}  alternatives (nested allowed; they may hold '/')
 *   **       as a whole segment: zero or more segments
 *   \x       x literally
 */
#ifndef FL_PATHGLOB_H
#define FL_PATHGLOB_H

#include <stddef.h>
#include <sys/stat.h>

/* Alternatives one pattern may expand to ({a,b}{c,d} is 4). */
#define PATHGLOB_MAX_ALTS 1024

/*
 * 1 when path (relative, '/'-separated, no trailing '/') matches pattern,
 * 0 when not, FL_ERR_PARSE for a malformed pattern (an unclosed '[' or
 * '{', a trailing '\') or FL_ERR_TOOBIG for too many alternatives.
 */
int pathglob_match(const char *pattern, const char *path);

/*
 * Lexically clean a user's pattern as filepath.Clean and GitLab's
 * findRelativePathInProject do: "./" and repeated or trailing '/' dropped,
 * "a/../b" folded; an absolute pattern under cwd (an absolute directory)
 * made relative to it.  *out (caller frees) is "." for the directory
 * itself.  FL_ERR_RANGE when the pattern leaves cwd ("../x", "/etc" with
 * cwd elsewhere), FL_ERR_INVAL for an empty pattern.
 */
int pathglob_clean(const char *pattern, const char *cwd, char **out);

/*
 * Called for each path found, relative to the current directory, with its
 * lstat.  A non-zero return stops the walk and is returned by it.
 */
typedef int (*pathglob_fn)(void *arg, const char *path, const struct stat *st);

/*
 * Call fn for each existing path that matches the (clean) pattern, in
 * sorted order within a directory; symbolic links are reported, never
 * followed; a matching directory is reported once, not descended into.
 * Unreadable directories are skipped.  0, fn's non-zero value, or
 * FL_ERR_PARSE / FL_ERR_TOOBIG for the pattern.
 */
int pathglob_glob(const char *pattern, pathglob_fn fn, void *arg);

/*
 * Call fn for dir itself then everything below it, depth first, names
 * sorted, not following symbolic links.  0 or fn's non-zero value;
 * FL_ERR_NOTFOUND when dir does not exist.
 */
int pathglob_walk(const char *dir, pathglob_fn fn, void *arg);

#endif
