/*
 * The per-stage shell scripts of a job (see jobscript.h).  Written after
 * the facts of GitLab Runner's shells/abstract.go and shells/bash.go (no
 * code taken): the same commands in the same order, the same trace
 * messages, but POSIX sh: single-quote escaping instead of bash's $'...',
 * printf instead of echo (dash's echo would interpret backslashes), no
 * arrays, pipefail only where the shell lists it.
 *
 * One call builds one script: the job's variables are put together and
 * expanded (GitLab's GetAllVariables), the settings read from them
 * (GIT_STRATEGY, GIT_DEPTH ...), the paths derived, and the stage's body
 * written line by line into a buffer, which the outer wrapper then quotes
 * as a whole for eval.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "gitlab.h"
#include "jobscript.h"
#include "toml.h"
#include "xmalloc.h"

#ifndef FL_VERSION
#define FL_VERSION "0.0.0"
#endif
#ifndef FL_GIT_REV
#define FL_GIT_REV "unknown"
#endif

#if defined(__x86_64__)
#define JS_ARCH "amd64"
#elif defined(__aarch64__)
#define JS_ARCH "arm64"
#elif defined(__i386__)
#define JS_ARCH "386"
#elif defined(__arm__)
#define JS_ARCH "arm"
#else
#define JS_ARCH "unknown"
#endif

#define DEFAULT_HELPER "/usr/bin/flotilla-helper"
#define GITLAB_ENV_FILE "gitlab_runner_env"
#define EXT_GIT_CONFIG ".gitlab-runner.ext.conf"
#define EXT_GIT_CONFIG_RE "\\.gitlab-runner\\.ext\\.conf$"
#define GIT_TEMPLATE_DIR "git-template"
#define TLS_CA_VAR	"CI_SERVER_TLS_CA_FILE"
#define TLS_CERT_VAR	"CI_SERVER_TLS_CERT_FILE"
#define TLS_KEY_VAR	"CI_SERVER_TLS_KEY_FILE"
#define BUILD_UID_GID_FILE ".gitlab-build-uid-gid"

/* GitLab's colours (helpers/ansi_colors.go), as printf format text. */
#define C_NOTICE "\\033[32;1m"
#define C_WARNING "\\033[0;33m"
#define C_ERROR "\\033[31;1m"
#define C_RESET "\\033[0;m"

/* ---------- small string helpers ---------- */

struct strv {
	char **v;
	size_t n, cap;
};

static void
strv_push(struct strv *sv, const char *s)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
	}
	sv->v[sv->n++] = xstrdup(s);
}

static void
strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		freezero_str(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

static int
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int
has_suffix(const char *s, const char *p)
{
	size_t ls = strlen(s), lp = strlen(p);

	return ls >= lp && memcmp(s + ls - lp, p, lp) == 0;
}

/*
 * Decode one UTF-8 sequence at s (n bytes left): the code point, or -1
 * for an invalid byte; *len gets the bytes taken (1 for invalid).
 */
static long
utf8_decode(const unsigned char *s, size_t n, size_t *len)
{
	long cp;
	size_t need;

	*len = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		need = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		need = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		need = 4;
	} else {
		return -1;
	}
	if (n < need)
		return -1;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
	    (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = need;
	return cp;
}

/* Go's unicode.IsSpace. */
static int
uni_space(long cp)
{
	switch (cp) {
	case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202f: case 0x205f: case 0x3000:
		return 1;
	}
	return cp >= 0x2000 && cp <= 0x200a;
}

/* Length of s without its trailing Unicode white space. */
static size_t
rtrim_len(const char *s, size_t n)
{
	size_t end = n, i = 0;

	/* Walk forward (UTF-8 cannot be decoded backwards reliably when
	 * invalid); remember where the last non-space sequence ended. */
	end = 0;
	while (i < n) {
		size_t l;
		long cp = utf8_decode((const unsigned char *)s + i, n - i, &l);

		i += l;
		if (cp < 0 || !uni_space(cp))
			end = i;
	}
	return end;
}

/* Go's strings.TrimSpace, as a new string. */
static char *
trim_space(const char *s)
{
	size_t n = strlen(s), i = 0;

	while (i < n) {
		size_t l;
		long cp = utf8_decode((const unsigned char *)s + i, n - i, &l);

		if (cp < 0 || !uni_space(cp))
			break;
		i += l;
	}
	return xstrndup(s + i, rtrim_len(s + i, n - i));
}

/* Go's strconv.Quote, near enough for messages: printable UTF-8 kept. */
static void
go_quote(struct sbuf *sb, const char *s)
{
	size_t n = strlen(s), i = 0;

	sbuf_addch(sb, '"');
	while (i < n) {
		size_t l;
		long cp = utf8_decode((const unsigned char *)s + i, n - i, &l);

		switch (cp) {
		case '"': sbuf_adds(sb, "\\\""); break;
		case '\\': sbuf_adds(sb, "\\\\"); break;
		case '\a': sbuf_adds(sb, "\\a"); break;
		case '\b': sbuf_adds(sb, "\\b"); break;
		case '\f': sbuf_adds(sb, "\\f"); break;
		case '\n': sbuf_adds(sb, "\\n"); break;
		case '\r': sbuf_adds(sb, "\\r"); break;
		case '\t': sbuf_adds(sb, "\\t"); break;
		case '\v': sbuf_adds(sb, "\\v"); break;
		default:
			if (cp < 0 || cp < 0x20 || cp == 0x7f)
				sbuf_addf(sb, "\\x%02x",
				    (unsigned char)s[i]);
			else
				sbuf_add(sb, s + i, l);
		}
		i += l;
	}
	sbuf_addch(sb, '"');
}

/*
 * Go's path.Clean: "." and ".." resolved lexically, repeated slashes
 * folded, no trailing slash; "" gives ".".
 */
static char *
path_clean(const char *p)
{
	size_t n = strlen(p), r = 0, dotdot = 0;
	int rooted = n > 0 && p[0] == '/';
	char *out;
	size_t w = 0;

	if (n == 0)
		return xstrdup(".");
	out = xmalloc(n + 2);
	if (rooted) {
		out[w++] = '/';
		r = 1;
		dotdot = 1;
	}
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' &&
		    (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			for (; r < n && p[r] != '/'; r++)
				out[w++] = p[r];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	return out;
}

/* Go's path.Join of two elements: the non-empty ones joined, cleaned. */
static char *
path_join(const char *a, const char *b)
{
	char *j, *c;

	if (*a == '\0' && *b == '\0')
		return xstrdup("");
	if (*a == '\0')
		return path_clean(b);
	if (*b == '\0')
		return path_clean(a);
	j = xasprintf("%s/%s", a, b);
	c = path_clean(j);
	free(j);
	return c;
}

/* ---------- URLs, the small part of Go's net/url the scripts need ---------- */

struct url {
	char *scheme;	/* "" when none */
	char *user;	/* userinfo, NULL when absent */
	char *host;	/* "" when none (opaque or relative) */
	char *path;	/* raw (still escaped) */
	char *rest;	/* "?query#fragment" or "" */
	int authority;	/* "//" present */
};

static void
url_release(struct url *u)
{
	freezero_str(u->scheme);
	freezero_str(u->user);
	freezero_str(u->host);
	freezero_str(u->path);
	freezero_str(u->rest);
	memset(u, 0, sizeof(*u));
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Split s; 0, or FL_ERR_PARSE for control characters or bad escapes. */
static int
url_parse(const char *s, struct url *u)
{
	const char *p = s, *q;
	size_t i;

	memset(u, 0, sizeof(*u));
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return FL_ERR_PARSE;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] == '%' && (!is_hex(s[i + 1]) || !is_hex(s[i + 2])))
			return FL_ERR_PARSE;
	/* scheme */
	if (is_alpha(*p)) {
		q = p;
		while (is_alpha(*q) || is_digit(*q) || *q == '+' || *q == '-' ||
		    *q == '.')
			q++;
		if (*q == ':') {
			u->scheme = xstrndup(p, (size_t)(q - p));
			p = q + 1;
		}
	}
	if (u->scheme == NULL)
		u->scheme = xstrdup("");
	q = p + strcspn(p, "?#");
	u->rest = xstrdup(q);
	if (p[0] == '/' && p[1] == '/') {
		const char *a = p + 2, *ae = a + strcspn(a, "/?#"), *at = NULL;

		u->authority = 1;
		for (const char *x = a; x < ae; x++)
			if (*x == '@')
				at = x;
		if (at != NULL) {
			u->user = xstrndup(a, (size_t)(at - a));
			a = at + 1;
		}
		u->host = xstrndup(a, (size_t)(ae - a));
		p = ae;
		q = p + strcspn(p, "?#");
	} else {
		u->host = xstrdup("");
	}
	u->path = xstrndup(p, (size_t)(q - p));
	return 0;
}

/* scheme://[user@]host path rest */
static char *
url_string(const struct url *u, const char *user, int with_path)
{
	struct sbuf sb;

	sbuf_init(&sb);
	if (*u->scheme != '\0') {
		sbuf_adds(&sb, u->scheme);
		sbuf_addch(&sb, ':');
	}
	if (u->authority) {
		sbuf_adds(&sb, "//");
		if (user != NULL) {
			sbuf_adds(&sb, user);
			sbuf_addch(&sb, '@');
		}
		sbuf_adds(&sb, u->host);
	}
	if (with_path) {
		/* Go's URL.String: a relative path after a host gets a "/" */
		if (u->authority && *u->host != '\0' && *u->path != '\0' &&
		    *u->path != '/')
			sbuf_addch(&sb, '/');
		sbuf_adds(&sb, u->path);
		sbuf_adds(&sb, u->rest);
	}
	return sbuf_detach(&sb, NULL);
}

static int
url_is_http(const struct url *u)
{
	return strcasecmp(u->scheme, "http") == 0 ||
	    strcasecmp(u->scheme, "https") == 0;
}

/* Go's userinfo escaping: keep alnum and "-._~$&+,;=". */
static void
userinfo_escape(struct sbuf *sb, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (is_alpha(ch) || is_digit(ch) || strchr("-._~$&+,;=", ch))
			sbuf_addch(sb, (char)ch);
		else
			sbuf_addf(sb, "%%%02X", ch);
	}
}

static char *
job_userinfo(const char *token)
{
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_adds(&sb, "gitlab-ci-token:");
	userinfo_escape(&sb, token);
	return sbuf_detach(&sb, NULL);
}

/* Percent-decode; 0 or FL_ERR_PARSE. */
static int
unescape(const char *s, char **out)
{
	struct sbuf sb;

	sbuf_init(&sb);
	for (; *s != '\0'; s++) {
		if (*s == '%') {
			char hx[3] = { s[1], s[2], 0 };

			if (!is_hex(s[1]) || !is_hex(s[2])) {
				sbuf_release(&sb);
				return FL_ERR_PARSE;
			}
			sbuf_addch(&sb, (char)strtol(hx, NULL, 16));
			s += 2;
		} else {
			sbuf_addch(&sb, *s);
		}
	}
	*out = sbuf_detach(&sb, NULL);
	return 0;
}

/* ---------- the job's variables (GitLab's GetAllVariables) ---------- */

struct jsvar {
	char *key;
	char *value;
	int file;
	int raw;
};

struct jsvars {
	struct jsvar *v;
	size_t n, cap;
};

static void
vars_add(struct jsvars *vs, const char *key, const char *value, int file,
    int raw)
{
	if (vs->n == vs->cap) {
		vs->cap = vs->cap ? vs->cap * 2 : 32;
		vs->v = xreallocarray(vs->v, vs->cap, sizeof(*vs->v));
	}
	vs->v[vs->n].key = xstrdup(key);
	vs->v[vs->n].value = xstrdup(value);
	vs->v[vs->n].file = file;
	vs->v[vs->n].raw = raw;
	vs->n++;
}

static void
vars_release(struct jsvars *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		freezero_str(vs->v[i].key);
		freezero_str(vs->v[i].value);
	}
	free(vs->v);
	memset(vs, 0, sizeof(*vs));
}

/* The last variable named key (GitLab's Variables.value), or NULL. */
static const struct jsvar *
vars_find(const struct jsvars *vs, const char *key)
{
	for (size_t i = vs->n; i > 0; i--)
		if (strcmp(vs->v[i - 1].key, key) == 0)
			return &vs->v[i - 1];
	return NULL;
}

/* Variables.Value: the content ("" when unset). */
static const char *
vars_value(const struct jsvars *vs, const char *key)
{
	const struct jsvar *v = vars_find(vs, key);

	return v != NULL ? v->value : "";
}

struct lookup_ctx {
	const struct jsvars *vs;
	char *scratch;		/* the last file path handed out */
};

/* Variables.Get for os.Expand: file variables give their path. */
static const char *
vars_lookup(const char *name, void *arg)
{
	struct lookup_ctx *lc = arg;
	const struct jsvar *v;

	if (strcmp(name, "$") == 0)
		return "$";
	if (strlen(name) == 1 && strchr("*#@!?0123456789", name[0]))
		return "";
	v = vars_find(lc->vs, name);
	if (v == NULL)
		return NULL;
	if (v->file) {
		free(lc->scratch);
		lc->scratch = path_join(vars_value(lc->vs,
		    "RUNNER_TEMP_PROJECT_DIR"), v->key);
		return lc->scratch;
	}
	return v->value;
}

static char *
vars_expand(const struct jsvars *vs, const char *s)
{
	struct lookup_ctx lc = { vs, NULL };
	char *r = gitlab_expand_env(s, vars_lookup, &lc);

	free(lc.scratch);
	return r;
}

/* ---------- one script being built ---------- */

enum git_strategy { GIT_CLONE, GIT_FETCH, GIT_NONE, GIT_EMPTY };
enum sub_strategy { SUB_NONE, SUB_NORMAL, SUB_RECURSIVE, SUB_INVALID };

struct settings {
	enum git_strategy strategy;
	int strategy_bad;		/* GIT_STRATEGY unknown: default used */
	int checkout;
	enum sub_strategy submodules;
	struct strv submodule_paths;
	int64_t submodule_depth;
	int64_t depth;
	struct strv clean_flags;
	struct strv fetch_flags;
	struct strv submodule_update_flags;
	int lfs_skip_smudge;
	int submodule_force_https;
	int after_script_ignore_errors;
	int debug_trace;
	const char *clone_path;		/* GIT_CLONE_PATH, in vars */
};

struct jsb {
	const struct jobscript_ctx *c;
	const struct gitlab_job *job;
	const struct config_runner *rc;
	struct jobscript_paths p;
	struct jsvars vars;		/* expanded */
	struct settings s;
	const char *helper;
	const char *runner_url;
	struct sbuf body;
	char *error;			/* the stage fails with this */
};

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

/* Go's strconv.ParseBool: 1 true, 0 false, -1 not a bool. */
static int
parse_bool(const char *s)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true",
	    "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false",
	    "False" };

	for (size_t i = 0; i < 6; i++) {
		if (strcmp(s, t[i]) == 0)
			return 1;
		if (strcmp(s, f[i]) == 0)
			return 0;
	}
	return -1;
}

/* Go's strconv.ParseInt(s, 10, 64): 0 or -1. */
static int
parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0' || (!is_digit(*s) && *s != '-' && *s != '+'))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* strings.Fields (ASCII and Unicode white space). */
static void
fields(struct strv *out, const char *s)
{
	size_t n = strlen(s), i = 0, start = 0;
	int in = 0;

	while (i < n) {
		size_t l;
		long cp = utf8_decode((const unsigned char *)s + i, n - i, &l);
		int sp = cp >= 0 && uni_space(cp);

		if (sp && in) {
			char *f = xstrndup(s + start, i - start);

			strv_push(out, f);
			free(f);
			in = 0;
		} else if (!sp && !in) {
			start = i;
			in = 1;
		}
		i += l;
	}
	if (in)
		strv_push(out, s + start);
}

/* GitLab's cmdFlags: "" → default, "none" → nothing, else the fields. */
static void
cmd_flags(struct strv *out, const char *raw, const char *const *def)
{
	if (*raw == '\0') {
		for (; *def != NULL; def++)
			strv_push(out, *def);
	} else if (strcmp(raw, "none") != 0) {
		fields(out, raw);
	}
}

static int
ff(const struct jsb *b, const char *name, int def)
{
	int v = config_feature_flag(b->rc, name, -1);

	if (v >= 0)
		return v;
	v = parse_bool(vars_value(&b->vars, name));
	return v >= 0 ? v : def;
}

static int
var_bool(const struct jsb *b, const char *name, int def)
{
	const char *raw = vars_value(&b->vars, name);
	int v;

	if (*raw == '\0')
		return def;
	v = parse_bool(raw);
	return v >= 0 ? v : def;
}

static int64_t
var_int(const struct jsb *b, const char *name, int64_t def)
{
	const char *raw = vars_value(&b->vars, name);
	int64_t v;

	if (*raw == '\0' || parse_int(raw, &v) != 0)
		return def;
	return v;
}

static void
settings_release(struct settings *s)
{
	strv_release(&s->submodule_paths);
	strv_release(&s->clean_flags);
	strv_release(&s->fetch_flags);
	strv_release(&s->submodule_update_flags);
}

/* GitLab's BuildSettings, read from the expanded variables. */
static void
settings_read(struct jsb *b)
{
	static const char *const clean_def[] = { "-ffdx", NULL };
	static const char *const fetch_def[] = { "--prune", "--quiet", NULL };
	static const char *const none_def[] = { NULL };
	struct settings *s = &b->s;
	const char *v;

	settings_release(s);
	memset(s, 0, sizeof(*s));
	s->strategy = b->job->allow_git_fetch ? GIT_FETCH : GIT_CLONE;
	v = vars_value(&b->vars, "GIT_STRATEGY");
	if (strcmp(v, "clone") == 0)
		s->strategy = GIT_CLONE;
	else if (strcmp(v, "fetch") == 0)
		s->strategy = GIT_FETCH;
	else if (strcmp(v, "none") == 0)
		s->strategy = GIT_NONE;
	else if (strcmp(v, "empty") == 0)
		s->strategy = GIT_EMPTY;
	else if (*v != '\0')
		s->strategy_bad = 1;
	s->checkout = var_bool(b, "GIT_CHECKOUT", 1);
	v = vars_value(&b->vars, "GIT_SUBMODULE_STRATEGY");
	if (*v == '\0' || strcmp(v, "none") == 0)
		s->submodules = SUB_NONE;
	else if (strcmp(v, "normal") == 0)
		s->submodules = SUB_NORMAL;
	else if (strcmp(v, "recursive") == 0)
		s->submodules = SUB_RECURSIVE;
	else
		s->submodules = SUB_INVALID;
	if (s->strategy == GIT_NONE || s->strategy == GIT_EMPTY) {
		s->checkout = 0;
		s->submodules = SUB_NONE;
	}
	fields(&s->submodule_paths, vars_value(&b->vars, "GIT_SUBMODULE_PATHS"));
	/* The depth comes from git_info.depth (GitLab puts GIT_DEPTH there);
	 * a GIT_DEPTH variable is honoured too, for coordinators that do
	 * not. */
	s->depth = var_int(b, "GIT_DEPTH", b->job->git_info.depth);
	s->submodule_depth = var_int(b, "GIT_SUBMODULE_DEPTH", s->depth);
	cmd_flags(&s->clean_flags, vars_value(&b->vars, "GIT_CLEAN_FLAGS"),
	    clean_def);
	cmd_flags(&s->fetch_flags, vars_value(&b->vars, "GIT_FETCH_EXTRA_FLAGS"),
	    fetch_def);
	cmd_flags(&s->submodule_update_flags,
	    vars_value(&b->vars, "GIT_SUBMODULE_UPDATE_FLAGS"), none_def);
	s->lfs_skip_smudge = var_bool(b, "GIT_LFS_SKIP_SMUDGE", 0);
	s->submodule_force_https = var_bool(b, "GIT_SUBMODULE_FORCE_HTTPS", 0);
	s->after_script_ignore_errors = var_bool(b,
	    "AFTER_SCRIPT_IGNORE_ERRORS", 1);
	s->debug_trace = var_bool(b, "CI_DEBUG_TRACE", 0) &&
	    (b->rc == NULL || !b->rc->debug_trace_disabled);
	s->clone_path = vars_value(&b->vars, "GIT_CLONE_PATH");
}

/* A key the shell can export. */
static int
valid_name(const char *k)
{
	if (!is_alpha(*k) && *k != '_')
		return 0;
	for (; *k != '\0'; k++)
		if (!is_alpha(*k) && !is_digit(*k) && *k != '_')
			return 0;
	return 1;
}

/* A feature flag set in [runners.feature_flags]. */
static int
ff_configured(const struct config_runner *rc, const char *key)
{
	const struct toml_value *v;

	if (rc == NULL || rc->feature_flags == NULL)
		return 0;
	v = toml_get(rc->feature_flags, key);
	return v != NULL && v->type == TOML_BOOL;
}

/*
 * GitLab's GetAllVariables: configured feature flags, CI_JOB_IMAGE, the
 * runner's (CI_RUNNER_SHORT_TOKEN, environment), the defaults
 * (CI_BUILDS_DIR, CI_PROJECT_DIR, CI_SERVER, CI_JOB_STATUS,
 * CI_JOB_TIMEOUT), the job's, then CI_DISPOSABLE_ENVIRONMENT, the runner
 * version and RUNNER_TEMP_PROJECT_DIR; then each value not raw expanded
 * once against the list.  project_dir "" is the state GitLab derives the
 * paths in.
 */
static void
vars_build(struct jsb *b, const char *builds_dir, const char *project_dir)
{
	const struct gitlab_job *job = b->job;
	const struct config_runner *rc = b->rc;
	struct jsvars raw = { 0 };
	char *tmp, *s;

	vars_release(&b->vars);
	if (rc != NULL && rc->feature_flags != NULL) {
		for (size_t i = 0; i < rc->feature_flags->len; i++) {
			const struct toml_kv *kv = &rc->feature_flags->kvs[i];

			if (kv->val->type == TOML_BOOL)
				vars_add(&raw, kv->key, kv->val->u.boolean ?
				    "true" : "false", 0, 0);
		}
	}
	if (*job->image.name != '\0')
		vars_add(&raw, "CI_JOB_IMAGE", job->image.name, 0, 0);
	if (b->c->short_token != NULL)
		vars_add(&raw, "CI_RUNNER_SHORT_TOKEN", b->c->short_token, 0, 0);
	if (rc != NULL) {
		for (size_t i = 0; i < rc->environment.n; i++) {
			const char *e = rc->environment.v[i];
			const char *eq = strchr(e, '=');

			if (eq == NULL)
				continue;
			s = xstrndup(e, (size_t)(eq - e));
			vars_add(&raw, s, eq + 1, 0, 0);
			free(s);
		}
	}
	vars_add(&raw, "CI_BUILDS_DIR", builds_dir, 0, 0);
	vars_add(&raw, "CI_PROJECT_DIR", project_dir, 0, 0);
	vars_add(&raw, "CI_SERVER", "yes", 0, 0);
	vars_add(&raw, "CI_JOB_STATUS", b->c->job_status != NULL ?
	    b->c->job_status : "running", 0, 0);
	s = xasprintf("%lld", (long long)gitlab_job_timeout(job));
	vars_add(&raw, "CI_JOB_TIMEOUT", s, 0, 0);
	free(s);
	/* GetCITLSVariables */
	if (b->c->tls_ca_chain != NULL && *b->c->tls_ca_chain != '\0')
		vars_add(&raw, TLS_CA_VAR, b->c->tls_ca_chain, 1, 1);
	if (b->c->tls_auth_cert != NULL && *b->c->tls_auth_cert != '\0' &&
	    b->c->tls_auth_key != NULL && *b->c->tls_auth_key != '\0') {
		vars_add(&raw, TLS_CERT_VAR, b->c->tls_auth_cert, 1, 1);
		vars_add(&raw, TLS_KEY_VAR, b->c->tls_auth_key, 1, 1);
	}
	/* flotilla: the job token and the server URL when the job does not
	 * carry them (GitLab's payload always does). */
	if (gitlab_job_variable(job, "CI_JOB_TOKEN") == NULL)
		vars_add(&raw, "CI_JOB_TOKEN", job->token, 0, 1);
	if (gitlab_job_variable(job, "CI_SERVER_URL") == NULL &&
	    *b->runner_url != '\0') {
		s = xstrdup(b->runner_url);
		while (*s != '\0' && s[strlen(s) - 1] == '/')
			s[strlen(s) - 1] = '\0';
		vars_add(&raw, "CI_SERVER_URL", s, 0, 1);
		free(s);
	}
	for (size_t i = 0; i < job->variables.n; i++) {
		const struct gitlab_variable *v = &job->variables.v[i];

		if (ff_configured(rc, v->key))
			continue;	/* config.toml wins over the job */
		vars_add(&raw, v->key, v->value, v->file, v->raw);
	}
	vars_add(&raw, "CI_DISPOSABLE_ENVIRONMENT", "true", 0, 0);
	vars_add(&raw, "CI_RUNNER_VERSION", FL_VERSION, 0, 0);
	vars_add(&raw, "CI_RUNNER_REVISION", FL_GIT_REV, 0, 0);
	vars_add(&raw, "CI_RUNNER_EXECUTABLE_ARCH", "linux/" JS_ARCH, 0, 0);
	tmp = xasprintf("%s.tmp", project_dir);
	vars_add(&raw, "RUNNER_TEMP_PROJECT_DIR", tmp, 0, 0);
	free(tmp);

	for (size_t i = 0; i < raw.n; i++) {
		const struct jsvar *v = &raw.v[i];

		if (v->raw) {
			vars_add(&b->vars, v->key, v->value, v->file, 1);
		} else {
			char *e = vars_expand(&raw, v->value);

			vars_add(&b->vars, v->key, e, v->file, 0);
			freezero_str(e);
		}
	}
	vars_release(&raw);
}

/* ---------- paths ---------- */

/* ProjectSlug: the path of repo_url without ".git", or NULL. */
static char *
project_slug(const char *repo_url)
{
	struct url u;
	char *path = NULL, *slug;
	size_t n;

	if (url_parse(repo_url, &u) != 0)
		return NULL;
	if (*u.host == '\0' || unescape(u.path, &path) != 0) {
		url_release(&u);
		return NULL;
	}
	url_release(&u);
	n = strlen(path);
	if (has_suffix(path, ".git"))
		path[n - 4] = '\0';
	slug = path_clean(path);
	free(path);
	if (strcmp(slug, ".") == 0 || strstr(slug, "..") != NULL) {
		free(slug);
		return NULL;
	}
	return slug;
}

/* ProjectUniqueDir(false). */
static char *
project_unique_dir(const struct jsb *b)
{
	char *slug = project_slug(b->job->git_info.repo_url), *d;

	if (slug == NULL)
		slug = xasprintf("project-%lld",
		    (long long)b->job->job_info.project_id);
	if (b->s.strategy == GIT_EMPTY) {
		d = xasprintf("%s-empty", slug);
		free(slug);
		slug = d;
	}
	return slug;
}

static int
custom_build_dir_enabled(const struct config_runner *rc)
{
	const struct toml_value *v;

	if (rc == NULL || rc->custom_build_dir == NULL)
		return 1;	/* the Docker executor's default */
	v = toml_get(rc->custom_build_dir, "enabled");
	if (v == NULL || v->type != TOML_BOOL)
		return 1;
	return v->u.boolean != 0;
}

/* dir inside root (filepath.Rel not starting with ".."). */
static int
path_within(const char *root, const char *dir)
{
	char *r = path_clean(root), *d = path_clean(dir);
	size_t lr = strlen(r);
	int ok;

	if ((r[0] == '/') != (d[0] == '/'))
		ok = 0;
	else if (strcmp(r, d) == 0)
		ok = 1;
	else if (strcmp(r, "/") == 0)
		ok = 1;
	else if (strcmp(r, ".") == 0)
		ok = !has_prefix(d, "..");
	else
		ok = strncmp(d, r, lr) == 0 && d[lr] == '/' &&
		    !has_prefix(d + lr + 1, "..");
	free(r);
	free(d);
	return ok;
}

/*
 * StartBuild: the variables are first put together with an empty project
 * dir (as GitLab does) to read GIT_STRATEGY and GIT_CLONE_PATH, the paths
 * derived, then the variables rebuilt with them.
 */
static int
jsb_init(struct jsb *b, const struct jobscript_ctx *c)
{
	const struct config_runner *rc = c->rc;
	const char *builds, *cache;
	char *uniq;

	memset(b, 0, sizeof(*b));
	sbuf_init(&b->body);
	b->c = c;
	b->job = c->job;
	b->rc = rc;
	b->helper = c->helper_path != NULL ? c->helper_path : DEFAULT_HELPER;
	b->runner_url = c->runner_url != NULL ? c->runner_url :
	    rc != NULL ? nz(rc->url) : "";
	builds = rc != NULL && rc->builds_dir != NULL ? rc->builds_dir :
	    "/builds";
	cache = rc != NULL && rc->cache_dir != NULL ? rc->cache_dir : "/cache";

	vars_build(b, builds, "");
	settings_read(b);
	if (*builds == '\0') {
		b->error = xstrdup("the builds_dir is not configured");
		return FL_ERR_INVAL;
	}
	if (*cache == '\0') {
		b->error = xstrdup("the cache_dir is not configured");
		return FL_ERR_INVAL;
	}
	uniq = project_unique_dir(b);
	b->p.builds_dir = xstrdup(builds);
	b->p.cache_dir = path_join(cache, uniq);
	if (*b->s.clone_path == '\0') {
		b->p.project_dir = path_join(builds, uniq);
	} else if (!custom_build_dir_enabled(rc)) {
		b->error = xstrdup("setting GIT_CLONE_PATH is not allowed, "
		    "enable `custom_build_dir` feature");
	} else if (!path_within(builds, b->s.clone_path)) {
		struct sbuf sb;

		sbuf_init(&sb);
		sbuf_adds(&sb, "the GIT_CLONE_PATH=");
		go_quote(&sb, b->s.clone_path);
		sbuf_adds(&sb, " has to be within ");
		go_quote(&sb, builds);
		b->error = sbuf_detach(&sb, NULL);
	} else {
		b->p.project_dir = path_clean(b->s.clone_path);
	}
	free(uniq);
	if (b->error != NULL) {
		jobscript_paths_release(&b->p);
		return FL_ERR_INVAL;
	}
	b->p.tmp_dir = xasprintf("%s.tmp", b->p.project_dir);
	vars_build(b, builds, b->p.project_dir);
	settings_read(b);
	return 0;
}

static void
jsb_release(struct jsb *b)
{
	jobscript_paths_release(&b->p);
	vars_release(&b->vars);
	settings_release(&b->s);
	if (b->body.buf != NULL)
		explicit_bzero(b->body.buf, b->body.len);
	sbuf_release(&b->body);
	free(b->error);
}

/* ---------- the shell writer ---------- */

void
jobscript_quote(struct sbuf *out, const char *s)
{
	sbuf_addch(out, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			sbuf_adds(out, "'\\''");
		else
			sbuf_addch(out, *s);
	}
	sbuf_addch(out, '\'');
}

static void
w_raw(struct jsb *b, const char *s)
{
	sbuf_adds(&b->body, s);
}

static void
w_q(struct jsb *b, const char *s)
{
	jobscript_quote(&b->body, s);
}

static void
w_nl(struct jsb *b)
{
	sbuf_addch(&b->body, '\n');
}

static void
w_cmd_va(struct jsb *b, const char *first, va_list ap)
{
	const char *a;

	w_q(b, first);
	while ((a = va_arg(ap, const char *)) != NULL) {
		sbuf_addch(&b->body, ' ');
		w_q(b, a);
	}
}

/* A command line: each word quoted, NULL-terminated list. */
static void
w_cmd(struct jsb *b, const char *first, ...)
{
	va_list ap;

	va_start(ap, first);
	w_cmd_va(b, first, ap);
	va_end(ap);
	w_nl(b);
}

/* The same without the newline: more words follow. */
static void
w_cmd_nonl(struct jsb *b, const char *first, ...)
{
	va_list ap;

	va_start(ap, first);
	w_cmd_va(b, first, ap);
	va_end(ap);
}

static void
w_words(struct jsb *b, const struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		sbuf_addch(&b->body, ' ');
		w_q(b, sv->v[i]);
	}
}

static void
w_colored(struct jsb *b, const char *color, const char *text)
{
	w_raw(b, "printf '");
	w_raw(b, color);
	w_raw(b, "%s" C_RESET "\\n' ");
	w_q(b, text);
	w_nl(b);
}

static void w_notice(struct jsb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void w_warning(struct jsb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void w_vcolored(struct jsb *b, const char *color, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

/* w_colored with the text formatted. */
static void
w_vcolored(struct jsb *b, const char *color, const char *fmt, va_list ap)
{
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_vaddf(&sb, fmt, ap);
	w_colored(b, color, sb.buf);
	sbuf_release(&sb);
}

static void
w_notice(struct jsb *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	w_vcolored(b, C_NOTICE, fmt, ap);
	va_end(ap);
}

static void
w_warning(struct jsb *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	w_vcolored(b, C_WARNING, fmt, ap);
	va_end(ap);
}

static void
w_printf_plain(struct jsb *b, const char *text)
{
	w_colored(b, C_RESET, text);
}

/* rm -f PATH */
static void
w_rm_file(struct jsb *b, const char *path)
{
	w_cmd(b, "rm", "-f", path, NULL);
}

/* GitLab's RmDir: make it writable, then rm -r -f. */
static void
w_rm_dir(struct jsb *b, const char *path)
{
	w_raw(b, "if [ -d ");
	w_q(b, path);
	w_raw(b, " ]; then\n  ");
	w_cmd(b, "chmod", "-R", "u+rwX", path, NULL);
	w_raw(b, "fi\n");
	w_cmd(b, "rm", "-r", "-f", path, NULL);
}

/* find DIR -name NAME -type T, each removed (portable -exec terminator). */
static void
w_rm_recursive(struct jsb *b, const char *dir, const char *name, int dirs)
{
	w_raw(b, "if [ -d ");
	w_q(b, dir);
	w_raw(b, " ]; then\n  et='+' ; find /dev/null -exec true {} + "
	    "2>/dev/null || et=';' ; find ");
	w_q(b, dir);
	w_raw(b, " -name ");
	w_q(b, name);
	w_raw(b, dirs ? " -type d -depth -exec rm -rf -- {} \"${et}\"\n" :
	    " -type f -exec rm -f {} \"${et}\"\n");
	w_raw(b, "fi\n");
}

static void
w_export(struct jsb *b, const char *key, const char *value)
{
	if (!valid_name(key))
		return;		/* the shell would refuse it, and errexit */
	w_raw(b, "export ");
	w_raw(b, key);
	sbuf_addch(&b->body, '=');
	w_q(b, value);
	w_nl(b);
}

static char *
tmp_file(const struct jsb *b, const char *name)
{
	return path_join(b->p.tmp_dir, name);
}

/*
 * exportVariables: every variable exported (a file variable's content
 * written to <tmp>/KEY unless env_only), GITLAB_ENV set and its lines
 * exported.
 */
static void
w_exports(struct jsb *b, int env_only)
{
	char *envf = tmp_file(b, GITLAB_ENV_FILE);

	for (size_t i = 0; i < b->vars.n; i++) {
		const struct jsvar *v = &b->vars.v[i];

		if (v->file) {
			char *f = tmp_file(b, v->key);

			if (!valid_name(v->key)) {
				free(f);
				continue;
			}
			if (!env_only) {
				w_cmd(b, "mkdir", "-p", b->p.tmp_dir, NULL);
				w_raw(b, "printf '%s' ");
				w_q(b, v->value);
				w_raw(b, " > ");
				w_q(b, f);
				w_nl(b);
			}
			w_export(b, v->key, f);
			free(f);
		} else {
			w_export(b, v->key, v->value);
		}
	}
	w_export(b, "GITLAB_ENV", envf);
	w_cmd(b, "mkdir", "-p", b->p.tmp_dir, NULL);
	w_cmd(b, "touch", envf, NULL);
	/* GitLab: while read -r line; do export "$line"; done; empty lines
	 * skipped here (export "" fails, and errexit would end the stage). */
	w_raw(b, "while read -r line; do if [ -n \"$line\" ]; then "
	    "export \"$line\"; fi; done < ");
	w_q(b, envf);
	w_nl(b);
	free(envf);
}

static void
w_cd_project(struct jsb *b)
{
	w_cmd(b, "cd", b->p.project_dir, NULL);
}

static void
w_check_errors(struct jsb *b)
{
	if (ff(b, "FF_ENABLE_BASH_EXIT_CODE_CHECK", 0))
		w_raw(b, "_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; "
		    "then exit $_runner_exit_code; fi\n");
}

/*
 * writeCommands: each command trimmed, shown as "$ cmd" in green (a
 * multi-line one by its first line + " # collapsed multi-line command";
 * an empty one as an empty line), then run.
 */
static void
w_commands(struct jsb *b, char *const *cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *cmd = trim_space(cmds[i]);
		const char *nl = strchr(cmd, '\n');

		if (*cmd == '\0') {
			w_raw(b, "printf '\\n'\n");
		} else if (nl != NULL) {
			char *first = xstrndup(cmd, (size_t)(nl - cmd));

			w_notice(b, "$ %s # collapsed multi-line command",
			    first);
			free(first);
		} else {
			w_notice(b, "$ %s", cmd);
		}
		w_raw(b, cmd);
		w_nl(b);
		w_check_errors(b);
		freezero_str(cmd);
	}
}

static void
w_command1(struct jsb *b, const char *cmd)
{
	char *v[1] = { (char *)cmd };

	w_commands(b, v, 1);
}

/* guardRunnerCommand: run f only when the helper answers --version. */
static void
w_guard_begin(struct jsb *b)
{
	w_raw(b, "if ");
	w_q(b, b->helper);
	w_raw(b, " --version >/dev/null 2>&1 ; then\n");
}

static void
w_guard_end(struct jsb *b, const char *action)
{
	w_raw(b, "else\n");
	w_warning(b, "Missing %s. %s is disabled.", b->helper, action);
	w_raw(b, "fi\n");
}

/* ---------- get_sources ---------- */

struct remote {
	char *with_creds;
	char *without_creds;
	char *scheme_host;	/* for git credential reject; NULL: none */
	struct strv instead_of;	/* pairs: [with creds, without creds] */
};

static void
remote_release(struct remote *r)
{
	freezero_str(r->with_creds);
	freezero_str(r->without_creds);
	freezero_str(r->scheme_host);
	strv_release(&r->instead_of);
}

static void
add_instead_of(struct remote *r, const char *with, const char *without)
{
	for (size_t i = 0; i + 1 < r->instead_of.n; i += 2)
		if (strcmp(r->instead_of.v[i], with) == 0 &&
		    strcmp(r->instead_of.v[i + 1], without) == 0)
			return;
	strv_push(&r->instead_of, with);
	strv_push(&r->instead_of, without);
}

static char *
trim_slashes(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

/*
 * GetRemoteURL and GetInsteadOfs (helpers/url/gitauth.go, authenticated
 * mode): the job's repo_url, or clone_url + "/<project path>.git" with the
 * job token; insteadOf rules that map the token-free URLs to the ones
 * with the token.
 */
static int
remote_init(struct jsb *b, struct remote *r)
{
	const char *clone = b->rc != NULL ? nz(b->rc->clone_url) : "";
	struct url cu, u;
	char *ui = job_userinfo(b->job->token);
	int have_clone = 0;

	memset(r, 0, sizeof(*r));
	if (*clone != '\0' && url_parse(clone, &cu) == 0) {
		if (*cu.scheme != '\0')
			have_clone = 1;
		else
			url_release(&cu);
	}
	if (have_clone) {
		const char *pp = vars_value(&b->vars, "CI_PROJECT_PATH");
		char *tail, *np;

		if (*pp == '\0')
			pp = b->job->job_info.project_full_path;
		tail = xasprintf("%s.git", pp);
		np = path_join(cu.path, tail);
		free(tail);
		free(cu.path);
		cu.path = np;
		r->with_creds = url_string(&cu, ui, 1);
		r->without_creds = url_string(&cu, NULL, 1);
		if (url_is_http(&cu) || strcasecmp(cu.scheme, "ssh") == 0)
			r->scheme_host = url_string(&cu, NULL, 0);
		url_release(&cu);
	} else {
		if (url_parse(b->job->git_info.repo_url, &u) != 0) {
			free(ui);
			return FL_ERR_PARSE;
		}
		r->with_creds = xstrdup(b->job->git_info.repo_url);
		r->without_creds = url_string(&u, NULL, 1);
		if ((url_is_http(&u) || strcasecmp(u.scheme, "ssh") == 0) &&
		    *u.host != '\0')
			r->scheme_host = url_string(&u, NULL, 0);
		url_release(&u);
	}
	if (strcmp(r->with_creds, r->without_creds) != 0)
		add_instead_of(r, r->with_creds, r->without_creds);

	/* The base URL: clone_url, else the runner's URL. */
	if (url_parse(have_clone ? clone : b->runner_url, &u) == 0) {
		if (url_is_http(&u)) {
			char *a = trim_slashes(url_string(&u, ui, 1));
			char *p = trim_slashes(url_string(&u, NULL, 1));

			add_instead_of(r, a, p);
			if (b->s.submodule_force_https) {
				const char *host = vars_value(&b->vars,
				    "CI_SERVER_SHELL_SSH_HOST");
				const char *port = vars_value(&b->vars,
				    "CI_SERVER_SHELL_SSH_PORT");
				char *x, *y;

				if (*host == '\0')
					host = vars_value(&b->vars,
					    "CI_SERVER_HOST");
				if (*port == '\0' || strcmp(port, "22") == 0) {
					x = xasprintf("%s/", a);
					y = xasprintf("git@%s:", host);
					add_instead_of(r, x, y);
					free(x);
					free(y);
					y = xasprintf("ssh://git@%s", host);
					add_instead_of(r, a, y);
					free(y);
				} else {
					y = xasprintf("ssh://git@%s:%s", host,
					    port);
					add_instead_of(r, a, y);
					free(y);
				}
			}
			freezero_str(a);
			free(p);
			/* the repo_url's host, for submodules of other
			 * projects on the same server */
			struct url ru;

			if (url_parse(b->job->git_info.repo_url, &ru) == 0) {
				if (url_is_http(&ru)) {
					char *ra, *rp;

					free(ru.path);
					ru.path = xstrdup("");
					ra = trim_slashes(url_string(&ru, ui,
					    1));
					rp = trim_slashes(url_string(&ru, NULL,
					    1));
					add_instead_of(r, ra, rp);
					freezero_str(ra);
					free(rp);
				}
				url_release(&ru);
			}
		}
		url_release(&u);
	}
	freezero_str(ui);
	return 0;
}

/* Go's regexp.QuoteMeta. */
static char *
quote_meta(const char *s)
{
	struct sbuf sb;

	sbuf_init(&sb);
	for (; *s != '\0'; s++) {
		if (strchr("\\.+*?()|[]{}^$", *s))
			sbuf_addch(&sb, '\\');
		sbuf_addch(&sb, *s);
	}
	return sbuf_detach(&sb, NULL);
}

/* writeGitCleanup: stale lock files, then the configs and hooks. */
static void
w_git_cleanup(struct jsb *b)
{
	static const char *const locks[] = { "index.lock", "shallow.lock",
	    "HEAD.lock", "hooks/post-checkout", "config.lock" };
	int subs = b->s.submodules == SUB_NORMAL ||
	    b->s.submodules == SUB_RECURSIVE;
	char *gitdir = path_join(b->p.project_dir, ".git");
	char *modules = path_join(gitdir, "modules");
	char *refs = path_join(gitdir, "refs");

	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
		char *f = path_join(gitdir, locks[i]);
		const char *base = strrchr(locks[i], '/');

		w_rm_file(b, f);
		if (subs)
			w_rm_recursive(b, modules, base != NULL ? base + 1 :
			    locks[i], 0);
		free(f);
	}
	w_rm_recursive(b, refs, "*.lock", 0);
	/* writeGitCleanupAllConfigs: on for the Docker executor unless the
	 * strategy is none. */
	if (b->s.strategy != GIT_NONE) {
		char *tpl = tmp_file(b, GIT_TEMPLATE_DIR);
		const char *dirs[2] = { tpl, gitdir };

		for (size_t i = 0; i < 2; i++) {
			char *cf = path_join(dirs[i], "config");
			char *hk = path_join(dirs[i], "hooks");

			w_rm_file(b, cf);
			w_rm_dir(b, hk);
			free(cf);
			free(hk);
		}
		if (subs) {
			w_rm_recursive(b, modules, "config", 0);
			w_rm_recursive(b, modules, "hooks", 1);
		}
		free(tpl);
	}
	free(gitdir);
	free(modules);
	free(refs);
}

static void
w_user_agent(struct jsb *b)
{
	w_raw(b, "git -c ");
	w_q(b, "http.userAgent=flotilla " FL_VERSION " linux/" JS_ARCH);
}

/* writeRefspecFetchCmd */
static void
w_fetch(struct jsb *b, const char *tpl, const struct remote *r)
{
	const char *fmt = b->job->git_info.repo_object_format;

	if (b->s.depth > 0)
		w_notice(b, "Fetching changes with git depth set to %lld...",
		    (long long)b->s.depth);
	else
		w_notice(b, "Fetching changes...");
	if (*fmt != '\0' && strcmp(fmt, "sha1") != 0)
		w_cmd(b, "git", "init", b->p.project_dir, "--template", tpl,
		    "--object-format", fmt, NULL);
	else
		w_cmd(b, "git", "init", b->p.project_dir, "--template", tpl,
		    NULL);
	w_cd_project(b);
	w_raw(b, "if git remote add origin ");
	w_q(b, r->without_creds);
	w_raw(b, " >/dev/null 2>&1 ; then\n");
	w_notice(b, "Created fresh repository.");
	w_raw(b, "else\n");
	w_cmd(b, "git", "remote", "set-url", "origin", r->without_creds, NULL);
	w_raw(b, "git config --file '.git/config' --replace-all include.path "
	    "\"$GLR_EXT_GIT_CONFIG_PATH\" '" EXT_GIT_CONFIG_RE "'\n");
	w_raw(b, "fi\n");

	for (int unshallow = b->s.depth > 0 ? 1 : 0; unshallow < 2;
	    unshallow++) {
		if (b->s.depth <= 0)
			w_raw(b, unshallow == 0 ?
			    "if [ -e '.git/shallow' ]; then\n" : "else\n");
		w_user_agent(b);
		w_raw(b, " fetch origin --no-recurse-submodules");
		for (size_t i = 0; i < b->job->git_info.refspecs.n; i++) {
			sbuf_addch(&b->body, ' ');
			w_q(b, b->job->git_info.refspecs.v[i]);
		}
		if (b->s.depth > 0)
			sbuf_addf(&b->body, " --depth %lld",
			    (long long)b->s.depth);
		w_words(b, &b->s.fetch_flags);
		if (b->s.depth <= 0 && unshallow == 0)
			w_raw(b, " --unshallow");
		w_nl(b);
	}
	if (b->s.depth <= 0)
		w_raw(b, "fi\n");
}

/*
 * writeGitSSLConfig (not a shared environment: --global): git trusts the
 * runner's CA and presents its client certificate for the repository's
 * host, through the file variables' paths.  The key is the URL without
 * user or path, so no token lands in the git config.
 */
static void
w_git_ssl_config(struct jsb *b, const struct remote *r)
{
	static const char *const map[][2] = {
		{ TLS_CA_VAR, "sslCAInfo" },
		{ TLS_CERT_VAR, "sslCert" },
		{ TLS_KEY_VAR, "sslKey" },
	};

	if (r->scheme_host == NULL)
		return;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		char *key;

		if (*vars_value(&b->vars, map[i][0]) == '\0')
			continue;
		key = xasprintf("http.%s.%s", r->scheme_host, map[i][1]);
		w_cmd_nonl(b, "git", "config", "--global", key, NULL);
		w_raw(b, " \"$");
		w_raw(b, map[i][0]);
		w_raw(b, "\"\n");
		free(key);
	}
}

/* setupTemplateDir + setupExternalGitConfig; returns the template dir. */
static char *
w_template(struct jsb *b, const struct remote *r)
{
	char *tpl = tmp_file(b, GIT_TEMPLATE_DIR);
	char *tplcfg = path_join(tpl, "config");
	char *ext = tmp_file(b, EXT_GIT_CONFIG);

	w_cmd(b, "mkdir", "-p", tpl, NULL);
	w_cmd(b, "git", "config", "--global", "--add", "safe.directory",
	    b->p.project_dir, NULL);
	w_cmd(b, "git", "config", "-f", tplcfg, "init.defaultBranch", "none",
	    NULL);
	w_cmd(b, "git", "config", "-f", tplcfg, "fetch.recurseSubmodules",
	    "false", NULL);
	w_cmd(b, "git", "config", "-f", tplcfg, "credential.interactive",
	    "never", NULL);
	w_cmd(b, "git", "config", "-f", tplcfg, "gc.autoDetach", "false",
	    NULL);
	w_rm_file(b, ext);
	if (ff(b, "FF_USE_GIT_BUNDLE_URIS", 1))
		w_cmd(b, "git", "config", "-f", ext, "transfer.bundleURI",
		    "true", NULL);
	for (size_t i = 0; i + 1 < r->instead_of.n; i += 2) {
		char *stanza = xasprintf("url.%s.insteadOf", r->instead_of.v[i]);
		char *qm = quote_meta(r->instead_of.v[i + 1]);
		char *pat = xasprintf("^%s$", qm);

		w_cmd(b, "git", "config", "--file", ext, "--replace-all",
		    stanza, r->instead_of.v[i + 1], pat, NULL);
		freezero_str(stanza);
		free(qm);
		free(pat);
	}
	w_cmd(b, "git", "config", "--file", tplcfg, "--replace-all",
	    "include.path", ext, EXT_GIT_CONFIG_RE, NULL);
	w_export(b, "GLR_EXT_GIT_CONFIG_PATH", ext);
	free(tplcfg);
	free(ext);
	return tpl;
}

static void
w_lfs_pull(struct jsb *b)
{
	w_raw(b, "if git lfs version >/dev/null 2>&1 ; then\n");
	w_cmd(b, "git", "lfs", "pull", NULL);
	w_raw(b, "printf '\\n'\n");
	w_raw(b, "fi\n");
}

static void
w_checkout(struct jsb *b)
{
	const char *sha = b->job->git_info.sha;
	char short_sha[9];
	size_t n = strlen(sha) < 8 ? strlen(sha) : 8;

	memcpy(short_sha, sha, n);
	short_sha[n] = '\0';
	w_notice(b, "Checking out %s as detached HEAD (ref is %s)...",
	    short_sha, b->job->git_info.ref);
	w_cmd(b, "git", "-c", "submodule.recurse=false", "checkout", "-f",
	    "-q", sha, NULL);
	if (b->s.clean_flags.n > 0) {
		w_raw(b, "git clean");
		w_words(b, &b->s.clean_flags);
		w_nl(b);
	}
	if (!b->s.lfs_skip_smudge)
		w_lfs_pull(b);
}

#define EXT_INCLUDE "-c \"include.path=$GLR_EXT_GIT_CONFIG_PATH\""

/* writeSubmoduleUpdateCmd */
static void
w_submodules(struct jsb *b, int recursive)
{
	struct settings *s = &b->s;
	int64_t depth = s->submodule_depth;
	const char *rec = recursive ? " --recursive" : "";
	struct sbuf paths, sync, update, clean;

	if (recursive && depth > 0)
		w_notice(b, "Updating/initializing submodules recursively with "
		    "git depth set to %lld...", (long long)depth);
	else if (recursive)
		w_notice(b, "Updating/initializing submodules recursively...");
	else if (depth > 0)
		w_notice(b, "Updating/initializing submodules with git depth "
		    "set to %lld...", (long long)depth);
	else
		w_notice(b, "Updating/initializing submodules...");

	sbuf_init(&paths);
	if (s->submodule_paths.n > 0) {
		sbuf_adds(&paths, " --");
		for (size_t i = 0; i < s->submodule_paths.n; i++) {
			sbuf_addch(&paths, ' ');
			jobscript_quote(&paths, s->submodule_paths.v[i]);
		}
	}
	sbuf_init(&sync);
	sbuf_addf(&sync, "git submodule sync%s%s\n", rec, nz(paths.buf));
	sbuf_init(&update);
	sbuf_addf(&update, "submodule update --init%s", rec);
	if (depth > 0)
		sbuf_addf(&update, " --depth %lld", (long long)depth);
	for (size_t i = 0; i < s->submodule_update_flags.n; i++) {
		sbuf_addch(&update, ' ');
		jobscript_quote(&update, s->submodule_update_flags.v[i]);
	}
	sbuf_adds(&update, nz(paths.buf));
	sbuf_init(&clean);
	sbuf_addf(&clean, "git submodule foreach%s git clean", rec);
	if (s->clean_flags.n == 0) {
		sbuf_adds(&clean, " '-ffdx'");
	} else {
		for (size_t i = 0; i < s->clean_flags.n; i++) {
			sbuf_addch(&clean, ' ');
			jobscript_quote(&clean, s->clean_flags.v[i]);
		}
	}
	sbuf_addch(&clean, '\n');

	w_raw(b, "git submodule init\n");
	w_raw(b, sync.buf);
	w_raw(b, clean.buf);
	sbuf_addf(&b->body, "git submodule foreach%s git reset --hard\n", rec);
	sbuf_addf(&b->body, "if git " EXT_INCLUDE " %s ; then\n", update.buf);
	w_notice(b, "Updated submodules");
	w_raw(b, sync.buf);
	w_raw(b, "else\n");
	w_warning(b, "Updating submodules failed. Retrying...");
	for (size_t i = 0; i < s->submodule_update_flags.n; i++) {
		if (strcasecmp(s->submodule_update_flags.v[i], "--remote") == 0) {
			sbuf_addf(&b->body, "git " EXT_INCLUDE " submodule "
			    "foreach%s git fetch origin "
			    "'+refs/heads/*:refs/remotes/origin/*'\n", rec);
			break;
		}
	}
	w_raw(b, sync.buf);
	sbuf_addf(&b->body, "git " EXT_INCLUDE " %s\n", update.buf);
	sbuf_addf(&b->body, "git submodule foreach%s git reset --hard\n", rec);
	w_raw(b, "fi\n");
	w_raw(b, clean.buf);
	w_notice(b, "Configuring submodules to use parent git credentials...");
	w_raw(b, "git submodule foreach --recursive git config --replace-all "
	    "include.path \"$GLR_EXT_GIT_CONFIG_PATH\"\n");
	if (!s->lfs_skip_smudge) {
		w_raw(b, "if git lfs version >/dev/null 2>&1 ; then\n");
		w_notice(b, "Pulling LFS files...");
		sbuf_addf(&b->body, "git " EXT_INCLUDE " submodule foreach%s "
		    "git lfs pull\n", rec);
		w_raw(b, "fi\n");
	}
	sbuf_release(&paths);
	sbuf_release(&sync);
	sbuf_release(&update);
	sbuf_release(&clean);
}

/* writeClearGitCredentials: best effort. */
static void
w_clear_credentials(struct jsb *b, const struct remote *r)
{
	struct sbuf sb;

	if (r->scheme_host == NULL)
		return;
	sbuf_init(&sb);
	sbuf_addf(&sb, "url=%s", r->scheme_host);
	w_raw(b, "printf '%s\\n' ");
	w_q(b, sb.buf);
	w_raw(b, " 'username=gitlab-ci-token' | git credential reject "
	    "|| true\n");
	sbuf_release(&sb);
}

static void
w_hooks(struct jsb *b, int pre)
{
	struct strv cmds = { 0 };
	const char *cfg = NULL;
	const char *hook = pre ? "pre_get_sources_script" :
	    "post_get_sources_script";

	if (b->s.strategy == GIT_NONE || b->s.strategy == GIT_EMPTY)
		return;
	if (b->rc != NULL)
		cfg = pre ? b->rc->pre_get_sources_script :
		    b->rc->post_get_sources_script;
	if (pre && cfg != NULL && *cfg != '\0')
		strv_push(&cmds, cfg);
	for (size_t i = 0; i < b->job->nhooks; i++) {
		if (strcmp(b->job->hooks[i].name, hook) != 0)
			continue;
		for (size_t j = 0; j < b->job->hooks[i].script.n; j++)
			strv_push(&cmds, b->job->hooks[i].script.v[j]);
		break;
	}
	if (!pre && cfg != NULL && *cfg != '\0')
		strv_push(&cmds, cfg);
	w_commands(b, cmds.v, cmds.n);
	strv_release(&cmds);
}

static void
build_get_sources(struct jsb *b)
{
	struct remote r;
	char *tpl;

	if (b->s.submodules == SUB_INVALID) {
		b->error = xstrdup("unknown GIT_SUBMODULE_STRATEGY");
		return;
	}
	for (size_t i = 0; i < b->s.submodule_paths.n; i++) {
		if (strcmp(b->s.submodule_paths.v[i], ":(exclude)") == 0) {
			b->error = xstrdup("GIT_SUBMODULE_PATHS: invalid "
			    "submodule pathspec");
			return;
		}
	}
	if (remote_init(b, &r) != 0) {
		remote_release(&r);
		b->error = xstrdup("getting remote URL: invalid repository "
		    "URL");
		return;
	}
	w_exports(b, 0);
	w_export(b, "GIT_TERMINAL_PROMPT", "0");
	w_export(b, "GCM_INTERACTIVE", "Never");
	w_git_ssl_config(b, &r);
	if (b->s.strategy_bad)
		w_warning(b, "GIT_STRATEGY: expected either 'clone', 'fetch', "
		    "'none' or 'empty', using default value '%s'",
		    b->job->allow_git_fetch ? "fetch" : "clone");
	w_hooks(b, 1);
	if (!b->s.lfs_skip_smudge)
		w_export(b, "GIT_LFS_SKIP_SMUDGE", "1");
	switch (b->s.strategy) {
	case GIT_CLONE:
	case GIT_FETCH:
		w_git_cleanup(b);
		tpl = w_template(b, &r);
		if (b->s.strategy == GIT_CLONE)
			w_rm_dir(b, b->p.project_dir);
		w_fetch(b, tpl, &r);
		free(tpl);
		break;
	case GIT_NONE:
		w_notice(b, "Skipping Git repository setup");
		w_cmd(b, "mkdir", "-p", b->p.project_dir, NULL);
		break;
	case GIT_EMPTY:
		w_notice(b, "Skipping Git repository setup and creating an "
		    "empty build directory");
		w_rm_dir(b, b->p.project_dir);
		w_cmd(b, "mkdir", "-p", b->p.project_dir, NULL);
		break;
	}
	if (b->s.checkout)
		w_checkout(b);
	else
		w_notice(b, "Skipping Git checkout");
	if (b->s.submodules == SUB_NORMAL || b->s.submodules == SUB_RECURSIVE)
		w_submodules(b, b->s.submodules == SUB_RECURSIVE);
	else
		w_notice(b, "Skipping Git submodules setup");
	w_hooks(b, 0);
	w_clear_credentials(b, &r);
	remote_release(&r);
}

/* ---------- cache ---------- */

char *
jobscript_sanitize_cache_key(const char *key)
{
	struct sbuf sb;
	char *rooted, *clean, *k;
	size_t n;

	if (key == NULL || *key == '\0')
		return NULL;
	sbuf_init(&sb);
	sbuf_addch(&sb, '/');
	for (const char *p = key; *p != '\0'; p++) {
		if (*p == '%' && p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) {
			sbuf_addch(&sb, '/');
			p += 2;
		} else if (*p == '%' && p[1] == '2' &&
		    (p[2] == 'e' || p[2] == 'E')) {
			sbuf_addch(&sb, '.');
			p += 2;
		} else if (*p == '\\') {
			sbuf_addch(&sb, '/');
		} else {
			sbuf_addch(&sb, *p);
		}
	}
	rooted = sbuf_detach(&sb, NULL);
	clean = path_clean(rooted);
	free(rooted);
	/* drop the root, then trailing white space of the last segments,
	 * dropping those that become empty */
	k = xstrdup(clean + 1);
	free(clean);
	n = strlen(k);
	for (;;) {
		char *seg = strrchr(k, '/');
		size_t start = seg != NULL ? (size_t)(seg - k) + 1 : 0;
		size_t l = rtrim_len(k + start, n - start);

		k[start + l] = '\0';
		n = start + l;
		if (l > 0)
			break;
		if (seg == NULL)
			break;
		k[start - 1] = '\0';
		n = start - 1;
	}
	if (*k == '\0') {
		free(k);
		return NULL;
	}
	return k;
}

struct cache_cfg {
	char *key;	/* human key */
	char *file;	/* absolute archive path */
};

static void
cache_cfg_release(struct cache_cfg *cc)
{
	free(cc->key);
	free(cc->file);
	memset(cc, 0, sizeof(*cc));
}

/*
 * newCacheConfig: the raw key (default "<job name>/<ref>") expanded,
 * sanitised (a warning when it changed or could not be), the archive
 * file under the cache dir.  Returns 0, or -1 when it cannot be used
 * (notice written with what).
 */
static int
cache_config(struct jsb *b, const char *user_key, int expand,
    struct cache_cfg *cc, const char *what, int (*check)(struct jsb *,
    const char *, const char *))
{
	char *raw, *human, *dir;

	memset(cc, 0, sizeof(*cc));
	if (*user_key != '\0') {
		raw = expand ? vars_expand(&b->vars, user_key) :
		    xstrdup(user_key);
	} else {
		char *j = path_join("/", b->job->job_info.name), *k;

		k = path_join(j, b->job->git_info.ref);
		raw = xstrdup(k + 1);
		free(j);
		free(k);
	}
	human = jobscript_sanitize_cache_key(raw);
	if (human == NULL && *raw != '\0') {
		struct sbuf sb;

		sbuf_init(&sb);
		sbuf_adds(&sb, "cache key ");
		go_quote(&sb, raw);
		sbuf_adds(&sb, " could not be sanitized");
		w_warning(b, "%s", sb.buf);
		sbuf_release(&sb);
	} else if (human != NULL && strcmp(human, raw) != 0) {
		struct sbuf sb;

		sbuf_init(&sb);
		sbuf_adds(&sb, "cache key ");
		go_quote(&sb, raw);
		sbuf_adds(&sb, " sanitized to ");
		go_quote(&sb, human);
		w_warning(b, "%s", sb.buf);
		sbuf_release(&sb);
	}
	if (check != NULL && !check(b, human != NULL ? human : "", raw)) {
		free(raw);
		free(human);
		return -1;
	}
	free(raw);
	if (human == NULL) {
		w_notice(b, "Skipping cache %s due to empty cache key", what);
		return -1;
	}
	dir = path_join(b->p.cache_dir, human);
	cc->file = path_join(dir, "cache.zip");
	cc->key = human;
	free(dir);
	return 0;
}

/* CACHE_FALLBACK_KEY may not end in "-protected" (after ". " trimmed). */
static int
check_not_protected(struct jsb *b, const char *human, const char *raw)
{
	size_t n = strlen(human);

	while (n > 0 && (human[n - 1] == '.' || human[n - 1] == ' '))
		n--;
	if (n >= 10 && memcmp(human + n - 10, "-protected", 10) == 0) {
		struct sbuf sb;

		sbuf_init(&sb);
		sbuf_adds(&sb, "CACHE_FALLBACK_KEY ");
		go_quote(&sb, raw);
		sbuf_adds(&sb, " not allowed to end in \"-protected\"");
		w_warning(b, "%s", sb.buf);
		sbuf_release(&sb);
		return 0;
	}
	return 1;
}

/* CheckPolicy after expansion: 1 wanted, 0 not, -1 unknown (error set). */
static int
cache_policy(struct jsb *b, const struct gitlab_cache *ca, const char *key,
    const char *wanted)
{
	char *pol = vars_expand(&b->vars, ca->policy);
	int r;

	if (*pol == '\0' || strcmp(pol, "pull-push") == 0)
		r = 1;
	else if (strcmp(pol, "pull") == 0 || strcmp(pol, "push") == 0)
		r = strcmp(pol, wanted) == 0;
	else {
		b->error = xasprintf("unknown cache policy %s for %s", pol, key);
		r = -1;
	}
	free(pol);
	return r;
}

static int
cache_has_paths(const struct gitlab_cache *ca)
{
	return ca->paths.n > 0 || ca->untracked;
}

/* addExtractCacheCommand: the first key, the others as fallbacks. */
static void
w_extract(struct jsb *b, struct cache_cfg *ccs, size_t n,
    const struct gitlab_cache *ca)
{
	w_notice(b, "Checking cache for %s...", ccs[0].key);
	w_raw(b, "if ");
	w_q(b, b->helper);
	w_raw(b, " cache-extractor --file ");
	w_q(b, ccs[0].file);
	w_raw(b, " ; then\n");
	w_notice(b, "Successfully extracted cache");
	w_raw(b, "else\n");
	w_warning(b, "Failed to extract cache");
	if (ff(b, "FF_CLEANUP_FAILED_CACHE_EXTRACT", 0)) {
		for (size_t i = 0; i < ca->paths.n; i++) {
			char *m = xasprintf("Removing %s", ca->paths.v[i]);

			w_printf_plain(b, m);
			free(m);
			w_rm_dir(b, ca->paths.v[i]);
		}
	}
	if (n > 1)
		w_extract(b, ccs + 1, n - 1, ca);
	w_raw(b, "fi\n");
}

static int
build_restore_cache(struct jsb *b)
{
	int skip = 1;

	w_exports(b, 0);
	w_cd_project(b);
	for (size_t i = 0; i < b->job->ncaches && b->error == NULL; i++) {
		const struct gitlab_cache *ca = &b->job->caches[i];
		struct cache_cfg *ccs;
		size_t nccs = 0;
		const char *fb;

		if (!cache_has_paths(ca))
			continue;
		skip = 0;
		ccs = xcalloc(ca->fallback_keys.n + 2, sizeof(*ccs));
		if (cache_config(b, ca->key, 1, &ccs[0], "extraction",
		    NULL) != 0) {
			free(ccs);
			continue;
		}
		nccs = 1;
		switch (cache_policy(b, ca, ccs[0].key, "pull")) {
		case -1:
			break;
		case 0:
			w_notice(b, "Not downloading cache %s due to policy",
			    ccs[0].key);
			break;
		default:
			for (size_t j = 0; j < ca->fallback_keys.n; j++) {
				char *k = vars_expand(&b->vars,
				    ca->fallback_keys.v[j]);

				if (*k != '\0' && cache_config(b, k, 1,
				    &ccs[nccs], "extraction", NULL) == 0)
					nccs++;
				free(k);
			}
			fb = vars_value(&b->vars, "CACHE_FALLBACK_KEY");
			if (*fb != '\0' && cache_config(b, fb, 1, &ccs[nccs],
			    "extraction", check_not_protected) == 0)
				nccs++;
			w_guard_begin(b);
			w_extract(b, ccs, nccs, ca);
			w_guard_end(b, "Extracting cache");
		}
		for (size_t j = 0; j < nccs; j++)
			cache_cfg_release(&ccs[j]);
		free(ccs);
	}
	return skip;
}

static int
cache_when(const char *when, int on_success)
{
	if (on_success)
		return *when == '\0' || strcmp(when, "on_success") == 0 ||
		    strcmp(when, "always") == 0;
	return strcmp(when, "on_failure") == 0 || strcmp(when, "always") == 0;
}

static int
build_archive_cache(struct jsb *b, int on_success)
{
	int skip = 1;

	w_exports(b, 0);
	w_cd_project(b);
	for (size_t i = 0; i < b->job->ncaches && b->error == NULL; i++) {
		const struct gitlab_cache *ca = &b->job->caches[i];
		struct cache_cfg cc;
		int pol;

		if (!cache_when(ca->when, on_success) || !cache_has_paths(ca))
			continue;
		skip = 0;
		if (cache_config(b, ca->key, 1, &cc, "archiving", NULL) != 0)
			continue;
		pol = cache_policy(b, ca, cc.key, "push");
		if (pol == 0) {
			w_notice(b, "Not uploading cache %s due to policy",
			    cc.key);
		} else if (pol > 0) {
			w_guard_begin(b);
			w_notice(b, "Creating cache %s...", cc.key);
			w_raw(b, "if ");
			w_q(b, b->helper);
			w_raw(b, " cache-archiver --file ");
			w_q(b, cc.file);
			for (size_t j = 0; j < ca->paths.n; j++) {
				w_raw(b, " --path ");
				w_q(b, ca->paths.v[j]);
			}
			if (ca->untracked)
				w_raw(b, " --untracked");
			w_raw(b, " ; then\n");
			w_notice(b, "Created cache");
			w_raw(b, "else\n");
			w_warning(b, "Failed to create cache");
			w_raw(b, "fi\n");
			w_guard_end(b, "Creating cache");
		}
		cache_cfg_release(&cc);
	}
	return skip;
}

/* ---------- artifacts ---------- */

static int
build_download_artifacts(struct jsb *b)
{
	int any = 0;

	for (size_t i = 0; i < b->job->ndependencies; i++)
		if (*b->job->dependencies[i].artifacts_filename != '\0')
			any = 1;
	if (!any)
		return 1;
	w_exports(b, 0);
	w_cd_project(b);
	w_guard_begin(b);
	for (size_t i = 0; i < b->job->ndependencies; i++) {
		const struct gitlab_dependency *d = &b->job->dependencies[i];
		char id[32];

		if (*d->artifacts_filename == '\0')
			continue;
		w_notice(b, "Downloading artifacts for %s (%lld)...", d->name,
		    (long long)d->id);
		snprintf(id, sizeof(id), "%lld", (long long)d->id);
		w_raw(b, "FLOTILLA_HELPER_TOKEN=");
		w_q(b, d->token);
		sbuf_addch(&b->body, ' ');
		w_cmd(b, b->helper, "artifacts-downloader", "--url",
		    b->runner_url, "--id", id, NULL);
	}
	w_guard_end(b, "Artifacts downloading");
	return 0;
}

static int
artifact_when(const char *when, int on_success)
{
	if (on_success)
		return *when == '\0' || strcmp(when, "on_success") == 0 ||
		    strcmp(when, "always") == 0;
	return strcmp(when, "on_failure") == 0 || strcmp(when, "always") == 0;
}

static int
build_upload_artifacts(struct jsb *b, int on_success)
{
	int skip = 1;
	char id[32];

	if (*b->runner_url == '\0')
		return 1;
	snprintf(id, sizeof(id), "%lld", (long long)b->job->id);
	w_exports(b, 0);
	w_cd_project(b);
	for (size_t i = 0; i < b->job->nartifacts; i++) {
		const struct gitlab_artifact *a = &b->job->artifacts[i];

		if (!artifact_when(a->when, on_success))
			continue;
		if (a->paths.n == 0 && a->exclude.n == 0 && !a->untracked)
			continue;
		skip = 0;
		w_guard_begin(b);
		w_notice(b, "Uploading artifacts...");
		w_raw(b, "FLOTILLA_HELPER_TOKEN=");
		w_q(b, b->job->token);
		sbuf_addch(&b->body, ' ');
		w_q(b, b->helper);
		w_raw(b, " artifacts-uploader --url ");
		w_q(b, b->runner_url);
		w_raw(b, " --id ");
		w_raw(b, id);
		for (size_t j = 0; j < a->paths.n; j++) {
			w_raw(b, " --path ");
			w_q(b, a->paths.v[j]);
		}
		for (size_t j = 0; j < a->exclude.n; j++) {
			w_raw(b, " --exclude ");
			w_q(b, a->exclude.v[j]);
		}
		if (a->untracked)
			w_raw(b, " --untracked");
		if (*a->name != '\0') {
			w_raw(b, " --name ");
			w_q(b, a->name);
		}
		if (*a->expire_in != '\0') {
			w_raw(b, " --expire-in ");
			w_q(b, a->expire_in);
		}
		if (*a->artifact_format != '\0') {
			w_raw(b, " --artifact-format ");
			w_q(b, a->artifact_format);
		}
		if (*a->artifact_type != '\0') {
			w_raw(b, " --artifact-type ");
			w_q(b, a->artifact_type);
		}
		w_nl(b);
		w_guard_end(b, "Uploading artifacts");
	}
	return skip;
}

/* ---------- user scripts ---------- */

static const struct gitlab_step *
find_step(const struct gitlab_job *job, const char *name)
{
	for (size_t i = 0; i < job->nsteps; i++)
		if (strcasecmp(job->steps[i].name, name) == 0)
			return &job->steps[i];
	return NULL;
}

static int
build_user_step(struct jsb *b, const char *name)
{
	const struct gitlab_step *st = find_step(b->job, name);
	const char *pre = b->rc != NULL ? nz(b->rc->pre_build_script) : "";
	const char *post = b->rc != NULL ? nz(b->rc->post_build_script) : "";

	if (st == NULL || strcmp(name, "after_script") == 0)
		return 1;
	w_exports(b, 0);
	w_cd_project(b);
	if (*pre != '\0')
		w_command1(b, pre);
	if (strcmp(st->name, "release") == 0) {
		for (size_t i = 0; i < st->script.n; i++) {
			char *e = vars_expand(&b->vars, st->script.v[i]);

			w_command1(b, e);
			freezero_str(e);
		}
	} else {
		w_commands(b, st->script.v, st->script.n);
	}
	if (*post != '\0')
		w_command1(b, post);
	return 0;
}

static int
build_after_script(struct jsb *b)
{
	const struct gitlab_step *st = find_step(b->job, "after_script");

	if (st == NULL || st->script.n == 0)
		return 1;
	w_exports(b, 0);
	w_cd_project(b);
	w_notice(b, "Running after script...");
	w_commands(b, st->script.v, st->script.n);
	return 0;
}

/* ---------- prepare, cleanup ---------- */

static void
build_prepare(struct jsb *b)
{
	char *f;

	if (b->c->hostname != NULL && *b->c->hostname != '\0') {
		w_raw(b, "printf 'Running on %s via %s...\\n' \"$(hostname)\" ");
		w_q(b, b->c->hostname);
		w_nl(b);
	} else {
		w_raw(b, "printf 'Running on %s...\\n' \"$(hostname)\"\n");
	}
	f = tmp_file(b, GITLAB_ENV_FILE);
	w_rm_file(b, f);
	free(f);
	f = tmp_file(b, "masking.db");
	w_rm_file(b, f);
	free(f);
}

static void
build_cleanup(struct jsb *b)
{
	static const char *const files[] = { GITLAB_ENV_FILE, "masking.db",
	    EXT_GIT_CONFIG, ".glr.gconf" };
	struct remote r;
	char *f;

	w_exports(b, 1);
	if (remote_init(b, &r) == 0)
		w_clear_credentials(b, &r);
	remote_release(&r);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		f = tmp_file(b, files[i]);
		w_rm_file(b, f);
		free(f);
	}
	for (size_t i = 0; i < b->vars.n; i++) {
		if (!b->vars.v[i].file || !valid_name(b->vars.v[i].key))
			continue;
		f = tmp_file(b, b->vars.v[i].key);
		w_rm_file(b, f);
		free(f);
	}
	if (ff(b, "FF_ENABLE_JOB_CLEANUP", 0)) {
		switch (b->s.strategy) {
		case GIT_CLONE:
		case GIT_EMPTY:
			w_rm_dir(b, b->p.project_dir);
			break;
		case GIT_FETCH:
			w_cd_project(b);
			if (b->s.clean_flags.n > 0) {
				w_raw(b, "git clean");
				w_words(b, &b->s.clean_flags);
				w_nl(b);
			}
			w_raw(b, "git reset --hard\n");
			if (b->s.submodules != SUB_NONE) {
				const char *rec = b->s.submodules ==
				    SUB_RECURSIVE ? " --recursive" : "";

				if (b->s.clean_flags.n > 0) {
					sbuf_addf(&b->body, "git submodule "
					    "foreach%s git clean", rec);
					w_words(b, &b->s.clean_flags);
					w_nl(b);
				}
				sbuf_addf(&b->body, "git submodule foreach%s "
				    "git reset --hard\n", rec);
			}
			break;
		case GIT_NONE:
			w_notice(b, "Skipping build directory cleanup step");
			break;
		}
	}
	w_git_cleanup(b);
	f = path_join(b->p.builds_dir, BUILD_UID_GID_FILE);
	w_rm_file(b, f);
	free(f);
}

/* ---------- the outer wrapper ---------- */

/* BashWriter.Finish, for sh. */
static char *
finish(struct jsb *b)
{
	struct sbuf out;

	sbuf_init(&out);
	sbuf_adds(&out, "#!/usr/bin/env sh\n\n");
	sbuf_adds(&out, "trap 'exit 1' TERM\n\n");
	if (b->s.debug_trace)
		sbuf_adds(&out, "set -o xtrace\n");
	sbuf_adds(&out, "case \"$(set -o)\" in *\"pipefail\"*) set -o "
	    "pipefail;; esac; set -o errexit\n");
	sbuf_adds(&out, "set +o noclobber\n");
	if (ff(b, "FF_USE_LEGACY_BASH_EVAL", 0)) {
		sbuf_adds(&out, ": | eval ");
		jobscript_quote(&out, nz(b->body.buf));
		sbuf_addch(&out, '\n');
	} else {
		sbuf_adds(&out, "( trap 'exit 1' TERM; eval ");
		jobscript_quote(&out, nz(b->body.buf));
		sbuf_adds(&out, " ) < /dev/null\n");
	}
	sbuf_adds(&out, "exit 0\n");
	return sbuf_detach(&out, NULL);
}

/* The stage fails: GitLab returns the error from the script writer. */
static char *
fail_script(struct jsb *b)
{
	if (b->body.buf != NULL)
		explicit_bzero(b->body.buf, b->body.len);
	sbuf_reset(&b->body);
	w_colored(b, C_ERROR, b->error);
	w_raw(b, "exit 1\n");
	return finish(b);
}

static char *
build(const struct jobscript_ctx *c, enum jobscript_stage st,
    const char *step, int *skip)
{
	struct jsb b;
	char *out = NULL;
	int sk = 0;

	*skip = 0;
	if (c == NULL || c->job == NULL || (int)st < 0 || st >= JS_NSTAGES)
		return NULL;
	if (jsb_init(&b, c) != 0) {
		out = fail_script(&b);
		jsb_release(&b);
		return out;
	}
	switch (st) {
	case JS_PREPARE_SCRIPT:
		build_prepare(&b);
		break;
	case JS_GET_SOURCES:
		build_get_sources(&b);
		break;
	case JS_RESTORE_CACHE:
		sk = build_restore_cache(&b);
		break;
	case JS_DOWNLOAD_ARTIFACTS:
		sk = build_download_artifacts(&b);
		break;
	case JS_STEP_SCRIPT:
		sk = build_user_step(&b, step != NULL ? step : "script");
		break;
	case JS_AFTER_SCRIPT:
		sk = build_after_script(&b);
		break;
	case JS_ARCHIVE_CACHE:
	case JS_ARCHIVE_CACHE_ON_FAILURE:
		sk = build_archive_cache(&b, st == JS_ARCHIVE_CACHE);
		break;
	case JS_UPLOAD_ARTIFACTS_ON_SUCCESS:
	case JS_UPLOAD_ARTIFACTS_ON_FAILURE:
		sk = build_upload_artifacts(&b,
		    st == JS_UPLOAD_ARTIFACTS_ON_SUCCESS);
		break;
	case JS_CLEANUP_FILE_VARIABLES:
		build_cleanup(&b);
		break;
	case JS_NSTAGES:
		break;
	}
	if (b.error != NULL)
		out = fail_script(&b);
	else if (sk)
		*skip = 1;
	else
		out = finish(&b);
	jsb_release(&b);
	return out;
}

char *
jobscript_build(const struct jobscript_ctx *c, enum jobscript_stage st,
    int *skip)
{
	return build(c, st, NULL, skip);
}

char *
jobscript_build_step(const struct jobscript_ctx *c, const char *step,
    int *skip)
{
	*skip = 0;
	if (step == NULL)
		return NULL;
	return build(c, JS_STEP_SCRIPT, step, skip);
}

/* ---------- the rest of the API ---------- */

int
jobscript_paths(const struct jobscript_ctx *c, struct jobscript_paths *p)
{
	struct jsb b;
	int r;

	memset(p, 0, sizeof(*p));
	if (c == NULL || c->job == NULL)
		return FL_ERR_INVAL;
	r = jsb_init(&b, c);
	if (r == 0) {
		*p = b.p;
		memset(&b.p, 0, sizeof(b.p));
	}
	jsb_release(&b);
	return r;
}

void
jobscript_paths_release(struct jobscript_paths *p)
{
	free(p->builds_dir);
	free(p->project_dir);
	free(p->tmp_dir);
	free(p->cache_dir);
	memset(p, 0, sizeof(*p));
}

char **
jobscript_env(const struct jobscript_ctx *c, size_t *n)
{
	struct jsb b;
	char **env = NULL;

	*n = 0;
	if (c == NULL || c->job == NULL)
		return NULL;
	if (jsb_init(&b, c) == 0) {
		env = xcalloc(b.vars.n + 1, sizeof(*env));
		for (size_t i = 0; i < b.vars.n; i++) {
			const struct jsvar *v = &b.vars.v[i];

			if (v->file) {
				char *f = tmp_file(&b, v->key);

				env[i] = xasprintf("%s=%s", v->key, f);
				free(f);
			} else {
				env[i] = xasprintf("%s=%s", v->key, v->value);
			}
		}
		*n = b.vars.n;
	}
	jsb_release(&b);
	return env;
}

void
jobscript_env_free(char **env, size_t n)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		freezero_str(env[i]);
	free(env);
}

int
jobscript_after_script_ignore_errors(const struct jobscript_ctx *c)
{
	struct jsb b;
	int r = 1;

	if (c == NULL || c->job == NULL)
		return 1;
	jsb_init(&b, c);
	r = b.s.after_script_ignore_errors;
	jsb_release(&b);
	return r;
}

int
jobscript_attempts(const struct jobscript_ctx *c, enum jobscript_stage st)
{
	const char *name;
	struct jsb b;
	int64_t v;

	switch (st) {
	case JS_GET_SOURCES: name = "GET_SOURCES_ATTEMPTS"; break;
	case JS_RESTORE_CACHE: name = "RESTORE_CACHE_ATTEMPTS"; break;
	case JS_DOWNLOAD_ARTIFACTS: name = "ARTIFACT_DOWNLOAD_ATTEMPTS"; break;
	default: return 1;
	}
	if (c == NULL || c->job == NULL)
		return 1;
	jsb_init(&b, c);
	v = var_int(&b, name, 1);
	jsb_release(&b);
	if (v < 1)
		v = 1;
	if (v > 10)
		v = 10;
	return (int)v;
}

static const char *const stage_names[JS_NSTAGES] = {
	[JS_PREPARE_SCRIPT] = "prepare_script",
	[JS_GET_SOURCES] = "get_sources",
	[JS_RESTORE_CACHE] = "restore_cache",
	[JS_DOWNLOAD_ARTIFACTS] = "download_artifacts",
	[JS_STEP_SCRIPT] = "step_script",
	[JS_AFTER_SCRIPT] = "after_script",
	[JS_ARCHIVE_CACHE] = "archive_cache",
	[JS_ARCHIVE_CACHE_ON_FAILURE] = "archive_cache_on_failure",
	[JS_UPLOAD_ARTIFACTS_ON_SUCCESS] = "upload_artifacts_on_success",
	[JS_UPLOAD_ARTIFACTS_ON_FAILURE] = "upload_artifacts_on_failure",
	[JS_CLEANUP_FILE_VARIABLES] = "cleanup_file_variables",
};

static const char *const stage_headers[JS_NSTAGES] = {
	[JS_PREPARE_SCRIPT] = "Preparing environment",
	[JS_GET_SOURCES] = "Getting source from Git repository",
	[JS_RESTORE_CACHE] = "Restoring cache",
	[JS_DOWNLOAD_ARTIFACTS] = "Downloading artifacts",
	[JS_STEP_SCRIPT] = "Executing \"step_script\" stage of the job script",
	[JS_AFTER_SCRIPT] = "Running after_script",
	[JS_ARCHIVE_CACHE] = "Saving cache for successful job",
	[JS_ARCHIVE_CACHE_ON_FAILURE] = "Saving cache for failed job",
	[JS_UPLOAD_ARTIFACTS_ON_SUCCESS] =
	    "Uploading artifacts for successful job",
	[JS_UPLOAD_ARTIFACTS_ON_FAILURE] = "Uploading artifacts for failed job",
	[JS_CLEANUP_FILE_VARIABLES] =
	    "Cleaning up project directory and file based variables",
};

const char *
jobscript_stage_name(enum jobscript_stage st)
{
	if ((int)st < 0 || st >= JS_NSTAGES)
		return "unknown";
	return stage_names[st];
}

const char *
jobscript_stage_header(enum jobscript_stage st, const struct jobscript_ctx *c)
{
	(void)c;
	if ((int)st < 0 || st >= JS_NSTAGES)
		return "unknown";
	return stage_headers[st];
}

int
jobscript_stage_in_build(enum jobscript_stage st)
{
	return st == JS_STEP_SCRIPT || st == JS_AFTER_SCRIPT;
}

const char *
jobscript_shell_detect(void)
{
	return "if [ -x /usr/local/bin/bash ]; then\n"
	    "\texec /usr/local/bin/bash\n"
	    "elif [ -x /usr/bin/bash ]; then\n"
	    "\texec /usr/bin/bash\n"
	    "elif [ -x /bin/bash ]; then\n"
	    "\texec /bin/bash\n"
	    "elif [ -x /usr/local/bin/sh ]; then\n"
	    "\texec /usr/local/bin/sh\n"
	    "elif [ -x /usr/bin/sh ]; then\n"
	    "\texec /usr/bin/sh\n"
	    "elif [ -x /bin/sh ]; then\n"
	    "\texec /bin/sh\n"
	    "elif [ -x /busybox/sh ]; then\n"
	    "\texec /busybox/sh\n"
	    "else\n"
	    "\techo shell not found\n"
	    "\texit 1\n"
	    "fi\n\n";
}
