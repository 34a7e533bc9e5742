/*
 * Pull policies and image allowlists, as GitLab Runner decides them: see
 * pullpolicy.h.  Pure functions; the Docker calls that carry a policy out
 * (inspect, pull) live in docker.c and its callers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pullpolicy.h"
#include "xmalloc.h"

static const char *const names[] = {
	[PULL_ALWAYS] = "always",
	[PULL_IF_NOT_PRESENT] = "if-not-present",
	[PULL_NEVER] = "never",
};

int
pullpolicy_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return FL_ERR_INVAL;
}

const char *
pullpolicy_name(enum pullpolicy p)
{
	if ((unsigned)p >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[p];
}

/* Go's %q, near enough: quotes, \" \\ and \xNN for control bytes. */
static void
add_quoted(struct sbuf *sb, const char *s)
{
	sbuf_addch(sb, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			sbuf_addch(sb, '\\');
			sbuf_addch(sb, c);
		} else if (c < 0x20 || c == 0x7f) {
			sbuf_addf(sb, "\\x%02x", c);
		} else {
			sbuf_addch(sb, c);
		}
	}
	sbuf_addch(sb, '"');
}

/* Go's %v of a []string: [a b c]. */
static void
add_list(struct sbuf *sb, const char *const *v, size_t n)
{
	sbuf_addch(sb, '[');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sbuf_addch(sb, ' ');
		sbuf_adds(sb, v[i]);
	}
	sbuf_addch(sb, ']');
}

static int
set_err(char *err, size_t errlen, struct sbuf *sb)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s", sb->buf ? sb->buf : "");
	sbuf_release(sb);
	return FL_ERR_INVAL;
}

/* Every value a policy name?  Else the error for `what`. */
static int
validate(const char *const *v, size_t n, const char *what, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (pullpolicy_parse(v[i]) < 0) {
			struct sbuf sb;

			sbuf_init(&sb);
			sbuf_addf(&sb, "unsupported %s config: ", what);
			add_quoted(&sb, v[i]);
			return set_err(err, errlen, &sb);
		}
	}
	return 0;
}

int
pullpolicy_effective(const char *image,
    const char *const *job, size_t njob,
    const char *const *config, size_t nconfig,
    const char *const *allowed, size_t nallowed,
    enum pullpolicy *out, char *err, size_t errlen)
{
	static const char *const dflt[] = { "always" };
	const char *const *pull, *const *allow;
	size_t npull, nallow, n = 0;
	int rc;

	if (nconfig == 0) {
		config = dflt;
		nconfig = 1;
	}
	if (njob > 0) {
		pull = job;
		npull = njob;
	} else {
		if ((rc = validate(config, nconfig, "pull_policy", err,
		    errlen)) < 0)
			return rc;
		pull = config;
		npull = nconfig;
	}
	if (nallowed > 0) {
		if ((rc = validate(allowed, nallowed, "allowed_pull_policies",
		    err, errlen)) < 0)
			return rc;
		allow = allowed;
		nallow = nallowed;
	} else {
		if ((rc = validate(config, nconfig, "pull_policy", err,
		    errlen)) < 0)
			return rc;
		allow = config;
		nallow = nconfig;
	}

	for (size_t i = 0; i < npull; i++) {
		int keep = 0;

		for (size_t j = 0; j < nallow && !keep; j++)
			keep = strcmp(pull[i], allow[j]) == 0;
		if (!keep)
			continue;
		if (n == PULLPOLICY_MAX) {
			if (errlen > 0)
				snprintf(err, errlen, "more than %d pull "
				    "policies for image \"%s\"",
				    PULLPOLICY_MAX, image);
			return FL_ERR_INVAL;
		}
		out[n++] = (enum pullpolicy)pullpolicy_parse(pull[i]);
	}
	if (n == 0) {
		struct sbuf sb;
		const char *source = njob > 0 ? "GitLab pipeline config" :
		    config != dflt ? "Runner config" :
		    "Runner config (default)";

		sbuf_init(&sb);
		sbuf_adds(&sb, "invalid pull policy for image ");
		add_quoted(&sb, image);
		sbuf_adds(&sb, ": pull_policy (");
		add_list(&sb, pull, npull);
		sbuf_addf(&sb, ") defined in %s is not one of the "
		    "allowed_pull_policies (", source);
		add_list(&sb, allow, nallow);
		sbuf_addch(&sb, ')');
		return set_err(err, errlen, &sb);
	}
	return (int)n;
}

/*
 * Glob matching, doublestar style.  Braces are expanded first (bounded),
 * then each brace-free pattern is matched segment by segment ('/'
 * separates segments); `**` segments are resolved with a memo table so a
 * hostile name cannot make the match exponential.
 */
#define GLOB_MAX_EXPANSIONS 64
#define GLOB_MAX_SEGS 64
#define GLOB_MAX_LEN 4096

/*
 * Match one character class starting at *pp ('[') and ending before pe
 * against c; advances *pp past its ']'.  -1 when malformed.
 */
static int
match_class(const char **pp, const char *pe, unsigned char c, int *ok)
{
	const char *p = *pp + 1;	/* after '[' */
	int neg = 0, hit = 0, first = 1;

	if (p < pe && (*p == '!' || *p == '^')) {
		neg = 1;
		p++;
	}
	for (;;) {
		unsigned char lo, hi;

		if (p >= pe)
			return -1;
		if (*p == ']' && !first)
			break;
		if (*p == ']')
			return -1;	/* empty class */
		first = 0;
		if (*p == '\\' && p + 1 < pe)
			p++;
		lo = hi = (unsigned char)*p++;
		if (p + 1 < pe && *p == '-' && p[1] != ']') {
			p++;
			if (*p == '\\' && p + 1 < pe)
				p++;
			hi = (unsigned char)*p++;
			if (hi < lo)
				return -1;
		}
		if (c >= lo && c <= hi)
			hit = 1;
	}
	*pp = p + 1;
	*ok = hit != neg;
	return 0;
}

/*
 * One segment: pattern [p, pe) against [s, se), no '/' in either.
 * Returns 1, 0, or -1 for a malformed pattern.
 */
static int
match_seg(const char *p, const char *pe, const char *s, const char *se)
{
	const char *star_p = NULL, *star_s = NULL;

	for (;;) {
		if (p < pe && *p == '*') {
			while (p < pe && *p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		if (s == se) {
			if (p == pe)
				return 1;
			goto backtrack;
		}
		if (p < pe) {
			int ok = 0;

			if (*p == '?') {
				p++;
				s++;
				continue;
			}
			if (*p == '[') {
				const char *q = p;

				if (match_class(&q, pe, (unsigned char)*s,
				    &ok) < 0)
					return -1;
				if (ok) {
					p = q;
					s++;
					continue;
				}
				goto backtrack;
			}
			if (*p == '\\' && p + 1 < pe)
				p++;
			if (*p == *s) {
				p++;
				s++;
				continue;
			}
		}
backtrack:
		if (star_p == NULL || star_s == se)
			return 0;
		p = star_p;
		s = ++star_s;
	}
}

struct segs {
	const char *b[GLOB_MAX_SEGS];
	const char *e[GLOB_MAX_SEGS];
	size_t n;
};

static int
split(const char *s, struct segs *out)
{
	out->n = 0;
	for (;;) {
		const char *e = strchr(s, '/');

		if (out->n == GLOB_MAX_SEGS)
			return -1;
		out->b[out->n] = s;
		out->e[out->n] = e ? e : s + strlen(s);
		out->n++;
		if (e == NULL)
			return 0;
		s = e + 1;
	}
}

/* memo: 0 unknown, 1 no, 2 yes; -1 bad pattern propagates. */
static int
match_segs(const struct segs *p, size_t i, const struct segs *s, size_t j,
    signed char *memo)
{
	signed char *m = &memo[i * (s->n + 1) + j];
	int r;

	if (*m)
		return *m - 1;
	if (i == p->n) {
		r = j == s->n;
	} else if (p->e[i] - p->b[i] == 2 && p->b[i][0] == '*' &&
	    p->b[i][1] == '*') {
		r = 0;
		for (size_t k = j; k <= s->n && !r; k++)
			if ((r = match_segs(p, i + 1, s, k, memo)) < 0)
				return r;
	} else if (j == s->n) {
		r = 0;
	} else {
		r = match_seg(p->b[i], p->e[i], s->b[j], s->e[j]);
		if (r < 0)
			return r;
		if (r)
			r = match_segs(p, i + 1, s, j + 1, memo);
		if (r < 0)
			return r;
	}
	*m = (signed char)(r + 1);
	return r;
}

static int
match_plain(const char *pattern, const char *name)
{
	struct segs p, s;
	signed char *memo;
	int r;

	if (split(pattern, &p) < 0 || split(name, &s) < 0)
		return 0;
	memo = xcalloc((p.n + 1) * (s.n + 1), 1);
	r = match_segs(&p, 0, &s, 0, memo);
	free(memo);
	return r == 1;
}

/*
 * Expand the first top-level {a,b} of pattern and recurse; *budget counts
 * the patterns still allowed.  Returns 1 on a match, 0, or -1 (bad).
 */
static int
match_braces(const char *pattern, const char *name, int *budget)
{
	const char *open = NULL, *close = NULL, *p;
	int depth = 0;

	for (p = pattern; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '{') {
			if (depth++ == 0)
				open = p;
		} else if (*p == '}' && depth > 0) {
			if (--depth == 0) {
				close = p;
				break;
			}
		}
	}
	if (open == NULL)
		return match_plain(pattern, name);
	if (close == NULL)
		return -1;

	/* Each top-level alternative between open and close. */
	for (const char *a = open + 1;;) {
		const char *e = a;
		size_t plen, alen, slen;
		char *alt;
		int r;

		depth = 0;
		for (; e < close; e++) {
			if (*e == '\\' && e + 1 < close) {
				e++;
				continue;
			}
			if (*e == '{')
				depth++;
			else if (*e == '}')
				depth--;
			else if (*e == ',' && depth == 0)
				break;
		}
		if (--*budget < 0)
			return -1;
		plen = (size_t)(open - pattern);
		alen = (size_t)(e - a);
		slen = strlen(close + 1);
		alt = xmalloc(plen + alen + slen + 1);
		memcpy(alt, pattern, plen);
		memcpy(alt + plen, a, alen);
		memcpy(alt + plen + alen, close + 1, slen + 1);
		r = match_braces(alt, name, budget);
		free(alt);
		if (r != 0)
			return r;
		if (e >= close)
			return 0;
		a = e + 1;
	}
}

int
pullpolicy_glob_match(const char *pattern, const char *name)
{
	int budget = GLOB_MAX_EXPANSIONS;

	if (strlen(pattern) > GLOB_MAX_LEN || strlen(name) > GLOB_MAX_LEN)
		return 0;
	return match_braces(pattern, name, &budget) == 1;
}

int
pullpolicy_image_allowed(const char *image,
    const char *const *allowed, size_t n,
    const char *const *internal, size_t ninternal,
    const char *what, char *err, size_t errlen)
{
	struct sbuf sb;

	for (size_t i = 0; i < n; i++)
		if (pullpolicy_glob_match(allowed[i], image))
			return 0;
	for (size_t i = 0; i < ninternal; i++)
		if (internal[i] != NULL && strcmp(internal[i], image) == 0)
			return 0;
	if (n == 0)
		return 0;
	sbuf_init(&sb);
	sbuf_adds(&sb, "the ");
	add_quoted(&sb, image);
	sbuf_addf(&sb, " image is not present on list of allowed %s", what);
	return set_err(err, errlen, &sb);
}
