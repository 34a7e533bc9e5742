/*
 * GitLab's artifact and cache paths are doublestar patterns ("*.log",
 * "{bin,lib}/x", a "**" segment), not shell globs: '*' matches dot files
 * and "**" crosses directories.  This module matches them and walks the project
 * directory for them, so that flotilla-helper archives the same files the
 * GitLab Runner helper would.  Pure apart from reading directories.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "pathglob.h"
#include "xmalloc.h"

struct strv {
	char **v;
	size_t n, cap;
};

static void
strv_push(struct strv *sv, char *s)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
}

static void
strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

/* Index just past the class that starts at p[i] == '[', or 0 if unclosed. */
static size_t
class_end(const char *p, size_t i)
{
	i++;
	if (p[i] == '!' || p[i] == '^')
		i++;
	if (p[i] == ']')
		i++;
	for (; p[i] != '\0'; i++) {
		if (p[i] == '\\') {
			if (p[i + 1] == '\0')
				return 0;
			i++;
		} else if (p[i] == ']') {
			return i + 1;
		}
	}
	return 0;
}

/*
 * Brace expansion: "{a,b}x{c,d}" becomes "axc", "axd", "bxc", "bxd" pushed
 * onto out.  Each alternative is expanded again (nesting, several groups).
 */
static int
expand_braces(const char *p, struct strv *out)
{
	size_t i, open = 0, close = 0, depth = 0;
	int found = 0;

	for (i = 0; p[i] != '\0'; i++) {
		if (p[i] == '\\') {
			if (p[i + 1] == '\0')
				return FL_ERR_PARSE;
			i++;
		} else if (p[i] == '[') {
			size_t e = class_end(p, i);

			if (e == 0)
				return FL_ERR_PARSE;
			i = e - 1;
		} else if (p[i] == '{') {
			if (depth++ == 0) {
				open = i;
				found = 1;
			}
		} else if (p[i] == '}' && depth > 0) {
			if (--depth == 0) {
				close = i;
				break;
			}
		}
	}
	if (!found) {
		if (out->n >= PATHGLOB_MAX_ALTS)
			return FL_ERR_TOOBIG;
		strv_push(out, xstrdup(p));
		return 0;
	}
	if (depth != 0)
		return FL_ERR_PARSE;

	/* Split the inside at the commas of depth 1. */
	size_t start = open + 1;
	depth = 0;
	for (i = open + 1; i <= close; i++) {
		if (p[i] == '\\') {
			i++;
			continue;
		}
		if (p[i] == '[') {
			i = class_end(p, i) - 1;
			continue;
		}
		if (p[i] == '{')
			depth++;
		else if (p[i] == '}' && i != close)
			depth--;
		if ((p[i] == ',' && depth == 0) || i == close) {
			char *alt = xasprintf("%.*s%.*s%s", (int)open, p,
			    (int)(i - start), p + start, p + close + 1);
			int rc = expand_braces(alt, out);

			free(alt);
			if (rc < 0)
				return rc;
			start = i + 1;
		}
	}
	return 0;
}

/* The class at p (p[0] == '[', end just past its ']') against c: 1 or 0. */
static int
class_match(const char *p, size_t end, char c)
{
	size_t i = 1, stop = end - 1;	/* p[stop] is the closing ']' */
	int neg = 0, hit = 0;

	if (p[i] == '!' || p[i] == '^') {
		neg = 1;
		i++;
	}
	while (i < stop) {
		char lo = p[i], hi;

		if (lo == '\\')
			lo = p[++i];
		i++;
		hi = lo;
		if (p[i] == '-' && i + 1 < stop) {
			hi = p[++i];
			if (hi == '\\')
				hi = p[++i];
			i++;
		}
		if ((unsigned char)c >= (unsigned char)lo &&
		    (unsigned char)c <= (unsigned char)hi)
			hit = 1;
	}
	return hit != neg;
}

/*
 * One segment (no '/', no braces left) against one path segment: 1, 0 or
 * FL_ERR_PARSE.  Iterative with one backtrack point for the last '*'.
 */
static int
seg_match(const char *p, const char *s)
{
	const char *star_p = NULL, *star_s = NULL;

	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		if (*s == '\0') {
			if (*p == '\0')
				return 1;
			goto backtrack;
		}
		if (*p == '?') {
			p++;
			s++;
			continue;
		}
		if (*p == '[') {
			size_t e = class_end(p, 0);

			if (e == 0)
				return FL_ERR_PARSE;
			if (class_match(p, e, *s)) {
				p += e;
				s++;
				continue;
			}
			goto backtrack;
		}
		if (*p == '\\') {
			if (p[1] == '\0')
				return FL_ERR_PARSE;
			p++;
		}
		if (*p != '\0' && *p == *s) {
			p++;
			s++;
			continue;
		}
backtrack:
		if (star_p == NULL || *star_s == '\0')
			return 0;
		p = star_p;
		s = ++star_s;
	}
}

/* Split s at '/' (escaped slashes are not special in paths we accept). */
static void
split(const char *s, struct strv *out)
{
	const char *b = s;

	for (const char *q = s;; q++) {
		if (*q == '/' || *q == '\0') {
			if (q > b)
				strv_push(out, xstrndup(b, (size_t)(q - b)));
			if (*q == '\0')
				break;
			b = q + 1;
		}
	}
}

/*
 * Pattern segments p[0..np) against path segments s[0..ns).  prefix: is
 * there a longer path, extending s, that could match (used to prune the
 * walk)?
 */
static int
segs_match(char **p, size_t np, char **s, size_t ns, int prefix)
{
	if (np == 0)
		return prefix ? 0 : ns == 0;
	if (strcmp(p[0], "**") == 0) {
		while (np > 1 && strcmp(p[1], "**") == 0) {
			p++;
			np--;
		}
		if (prefix && ns == 0)
			return 1;
		for (size_t k = 0; k <= ns; k++) {
			int r = segs_match(p + 1, np - 1, s + k, ns - k, prefix);

			if (r != 0)
				return r;
		}
		return 0;
	}
	if (ns == 0)
		return prefix;
	int r = seg_match(p[0], s[0]);
	if (r <= 0)
		return r;
	return segs_match(p + 1, np - 1, s + 1, ns - 1, prefix);
}

/* Alternatives of a pattern, each split into segments. */
struct compiled {
	struct strv *alts;
	size_t n;
};

static int
compile(const char *pattern, struct compiled *c)
{
	struct strv exp = { 0 };
	int rc = expand_braces(pattern, &exp);

	c->alts = NULL;
	c->n = 0;
	if (rc < 0) {
		strv_release(&exp);
		return rc;
	}
	c->alts = xcalloc(exp.n, sizeof(*c->alts));
	c->n = exp.n;
	for (size_t i = 0; i < exp.n; i++)
		split(exp.v[i], &c->alts[i]);
	strv_release(&exp);
	return 0;
}

static void
compiled_release(struct compiled *c)
{
	for (size_t i = 0; i < c->n; i++)
		strv_release(&c->alts[i]);
	free(c->alts);
}

static int
compiled_match(const struct compiled *c, const char *path, int prefix)
{
	struct strv s = { 0 };
	int r = 0;

	split(path, &s);
	for (size_t i = 0; i < c->n && r == 0; i++)
		r = segs_match(c->alts[i].v, c->alts[i].n, s.v, s.n, prefix);
	strv_release(&s);
	return r;
}

int
pathglob_match(const char *pattern, const char *path)
{
	struct compiled c;
	int r = compile(pattern, &c);

	if (r < 0)
		return r;
	r = compiled_match(&c, path, 0);
	compiled_release(&c);
	return r;
}

/*
 * Lexical clean into *out ("" for the root or the directory itself):
 * absolute paths keep their leading '/', ".." above the top is dropped
 * for them and FL_ERR_RANGE for relative ones.
 */
static int
clean_lexical(const char *path, char **out)
{
	struct strv segs = { 0 }, parts = { 0 };
	struct sbuf sb;
	int abs = path[0] == '/';

	*out = NULL;
	split(path, &parts);
	for (size_t i = 0; i < parts.n; i++) {
		if (strcmp(parts.v[i], ".") == 0)
			continue;
		if (strcmp(parts.v[i], "..") == 0) {
			if (segs.n > 0)
				free(segs.v[--segs.n]);
			else if (!abs) {
				strv_release(&segs);
				strv_release(&parts);
				return FL_ERR_RANGE;
			}
			continue;
		}
		strv_push(&segs, xstrdup(parts.v[i]));
	}
	sbuf_init(&sb);
	for (size_t i = 0; i < segs.n; i++) {
		if (i > 0 || abs)
			sbuf_addch(&sb, '/');
		sbuf_adds(&sb, segs.v[i]);
	}
	if (abs && segs.n == 0)
		sbuf_addch(&sb, '/');
	*out = sbuf_detach(&sb, NULL);
	strv_release(&segs);
	strv_release(&parts);
	return 0;
}

int
pathglob_clean(const char *pattern, const char *cwd, char **out)
{
	char *p = NULL, *c = NULL;
	size_t cl;
	int rc;

	*out = NULL;
	if (pattern[0] == '\0')
		return FL_ERR_INVAL;
	rc = clean_lexical(pattern, &p);
	if (rc < 0)
		return rc;
	if (p[0] != '/') {
		if (p[0] == '\0') {
			free(p);
			p = xstrdup(".");
		}
		*out = p;
		return 0;
	}
	/* Absolute: it must be cwd or below it. */
	if (cwd == NULL || cwd[0] != '/' || clean_lexical(cwd, &c) < 0) {
		free(p);
		return FL_ERR_RANGE;
	}
	cl = strcmp(c, "/") == 0 ? 0 : strlen(c);
	if (strcmp(p, c) == 0)
		*out = xstrdup(".");
	else if (strncmp(p, c, cl) == 0 && p[cl] == '/')
		*out = xstrdup(p + cl + 1);
	else
		rc = FL_ERR_RANGE;
	free(p);
	free(c);
	return rc;
}

/* A directory's entries, sorted (readdir order is the filesystem's). */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
list_dir(const char *dir, struct strv *names)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return FL_ERR_IO;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		strv_push(names, xstrdup(de->d_name));
	}
	closedir(d);
	if (names->n > 1)
		qsort(names->v, names->n, sizeof(*names->v), cmp_str);
	return 0;
}

static char *
join(const char *dir, const char *name)
{
	if (strcmp(dir, ".") == 0)
		return xstrdup(name);
	return xasprintf("%s/%s", dir, name);
}

struct globwalk {
	struct compiled c;
	pathglob_fn fn;
	void *arg;
};

static int
glob_dir(struct globwalk *g, const char *dir)
{
	struct strv names = { 0 };
	int rc = 0;

	if (list_dir(dir, &names) < 0)
		return 0;	/* unreadable: nothing there for us */
	for (size_t i = 0; i < names.n && rc == 0; i++) {
		char *rel = join(dir, names.v[i]);
		struct stat st;

		if (lstat(rel, &st) == 0) {
			int m = compiled_match(&g->c, rel, 0);

			if (m < 0)
				rc = m;
			else if (m > 0)
				rc = g->fn(g->arg, rel, &st);
			else if (S_ISDIR(st.st_mode)) {
				m = compiled_match(&g->c, rel, 1);
				if (m < 0)
					rc = m;
				else if (m > 0)
					rc = glob_dir(g, rel);
			}
		}
		free(rel);
	}
	strv_release(&names);
	return rc;
}

static int
has_meta(const char *s)
{
	return strpbrk(s, "*?[{\\") != NULL;
}

int
pathglob_glob(const char *pattern, pathglob_fn fn, void *arg)
{
	struct globwalk g = { .fn = fn, .arg = arg };
	struct stat st;
	int rc;

	if (!has_meta(pattern)) {
		if (lstat(pattern, &st) < 0)
			return 0;
		return fn(arg, pattern, &st);
	}
	rc = compile(pattern, &g.c);
	if (rc < 0)
		return rc;

	/* Start the walk at the longest literal directory prefix. */
	struct strv segs = { 0 };
	struct sbuf base;
	sbuf_init(&base);
	split(pattern, &segs);
	for (size_t i = 0; i + 1 < segs.n && !has_meta(segs.v[i]); i++) {
		if (base.len)
			sbuf_addch(&base, '/');
		sbuf_adds(&base, segs.v[i]);
	}
	const char *start = base.len ? base.buf : ".";
	if (lstat(start, &st) == 0 && S_ISDIR(st.st_mode))
		rc = glob_dir(&g, start);
	sbuf_release(&base);
	strv_release(&segs);
	compiled_release(&g.c);
	return rc;
}

static int
walk_rec(const char *dir, pathglob_fn fn, void *arg)
{
	struct strv names = { 0 };
	int rc = 0;

	if (list_dir(dir, &names) < 0)
		return 0;
	for (size_t i = 0; i < names.n && rc == 0; i++) {
		char *rel = join(dir, names.v[i]);
		struct stat st;

		if (lstat(rel, &st) == 0) {
			rc = fn(arg, rel, &st);
			if (rc == 0 && S_ISDIR(st.st_mode))
				rc = walk_rec(rel, fn, arg);
		}
		free(rel);
	}
	strv_release(&names);
	return rc;
}

int
pathglob_walk(const char *dir, pathglob_fn fn, void *arg)
{
	struct stat st;
	int rc;

	if (lstat(dir, &st) < 0)
		return FL_ERR_NOTFOUND;
	rc = fn(arg, dir, &st);
	if (rc == 0 && S_ISDIR(st.st_mode))
		rc = walk_rec(dir, fn, arg);
	return rc;
}
