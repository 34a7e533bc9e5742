/*
 * The set of files an artifacts or cache archive holds, chosen as GitLab
 * Runner's file archiver chooses them: each --path pattern's matches (a
 * matching directory brings everything below it), the untracked files git
 * reports, minus the --exclude patterns; sorted, without duplicates.  It
 * logs GitLab's lines ("path: found 3 matching artifact files and
 * directories", "untracked: found 2 files", the warnings) through
 * lib/log.h.
 */
#ifndef FL_FILELIST_H
#define FL_FILELIST_H

#include <stddef.h>

struct filelist {
	char **files;		/* relative to the current directory */
	size_t n, cap;
};

struct filelist_opts {
	const char *const *paths;	/* --path patterns */
	size_t npaths;
	const char *const *excludes;	/* --exclude patterns */
	size_t nexcludes;
	int untracked;			/* add `git ls-files -o` */
};

/*
 * Fill l (embedded, filelist_release() afterwards) from the current
 * directory.  0, or FL_ERR_PARSE for a malformed pattern (logged).
 * Patterns that match nothing or leave the directory are warnings only.
 */
int filelist_collect(struct filelist *l, const struct filelist_opts *o);
void filelist_release(struct filelist *l);

/*
 * The untracked files of the git work tree at the current directory
 * (`git ls-files -o -z`, as GitLab's helper runs it).  0 and the names
 * added to l; FL_ERR_NOTFOUND when there is no git program, FL_ERR_IO when
 * git fails (not a repository).  Adds unsorted; no logging.
 */
int filelist_git_untracked(struct filelist *l);

#endif
