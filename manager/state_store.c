/*
 * State storage: the instances a manager knows, written to one JSON file
 * per runner so that a restart keeps them (see state_store.h for the
 * layout, the format and the crash-safety argument).  The file is small
 * (a few hundred bytes per instance) and rewritten whole after every
 * change that matters; the cost is dominated by the two fsyncs.
 *
 * Every path operation is relative to the runner directory's fd (openat,
 * renameat, unlinkat), so a rename of the parents while we run cannot send
 * a write elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "dockerauth.h"
#include "plugin_host.h"
#include "scaler.h"
#include "state_store.h"
#include "xmalloc.h"

#define TMP_PREFIX	STATE_STORE_FILE ".tmp-"
#define CORRUPT_PREFIX	STATE_STORE_FILE ".corrupt-"

struct state_store {
	int dirfd;
	char *path;
	unsigned seq;		/* temporary file names */
};

/*
 * jansson's allocations hold what it parses, secrets included, and its
 * buffers grow by copy: give it a free that wipes each block.
 */
static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void
alloc_install(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

static void
alloc_init(void)
{
	pthread_once(&alloc_once, alloc_install);
}

/* ---- records ---- */

static void
connect_release(struct state_record *r)
{
	free(r->os);
	free(r->arch);
	free(r->protocol);
	free(r->username);
	freezero_str(r->password);
	if (r->key != NULL)
		freezero(r->key, r->key_len + 1);
	free(r->internal_addr);
	free(r->external_addr);
	r->has_connect = 0;
	r->os = r->arch = r->protocol = r->username = r->password = NULL;
	r->key = NULL;
	r->key_len = 0;
	r->internal_addr = r->external_addr = NULL;
	r->protocol_port = 0;
	r->expires = 0;
}

void
state_store_record_release(struct state_record *r)
{
	if (r == NULL)
		return;
	connect_release(r);
	free(r->id);
	free(r->host_key);
	memset(r, 0, sizeof(*r));
}

void
state_store_records_free(struct state_record *recs, size_t n)
{
	if (recs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		state_store_record_release(&recs[i]);
	free(recs);
}

void
state_store_record_from_instance(struct state_record *r,
    const struct scaler_instance_info *ii)
{
	free(r->id);
	r->id = xstrdup(ii->id);
	r->use_count = ii->use_count;
	r->created_at = ii->created_at;
	r->ready = ii->state == SCALER_READY;
	r->had_acquisitions = ii->acquired > 0;
}

static char *
dup_opt(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
state_store_record_set_connect(struct state_record *r,
    const struct plugin_connect_info *ci)
{
	connect_release(r);
	r->has_connect = 1;
	r->os = dup_opt(ci->os);
	r->arch = dup_opt(ci->arch);
	r->protocol = dup_opt(ci->protocol);
	r->protocol_port = ci->port;
	r->username = dup_opt(ci->username);
	r->password = dup_opt(ci->password);
	if (ci->key != NULL) {
		r->key = xmalloc(ci->key_len + 1);
		memcpy(r->key, ci->key, ci->key_len);
		r->key[ci->key_len] = '\0';
		r->key_len = ci->key_len;
	}
	r->internal_addr = dup_opt(ci->internal_addr);
	r->external_addr = dup_opt(ci->external_addr);
	r->expires = ci->expires_unix_ns;
}

struct scaler_restored *
state_store_restored(const struct state_record *recs, size_t n)
{
	struct scaler_restored *r = xcalloc(n > 0 ? n : 1, sizeof(*r));

	for (size_t i = 0; i < n; i++) {
		r[i].id = recs[i].id;
		r[i].use_count = recs[i].use_count;
		r[i].created_at = recs[i].created_at;
		r[i].had_acquisitions = recs[i].had_acquisitions;
	}
	return r;
}

/* ---- names ---- */

static int
is_partition(const char *p)
{
	return p[0] == 't' && p[1] >= '1' && p[1] <= '3' && p[2] == '_';
}

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

static int
is_name_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
}

char *
state_store_dirname(const char *token,
    char out[static STATE_STORE_DIRNAME_SIZE])
{
	const char *p = token != NULL ? token : "";
	size_t n;
	int i;

	/* The prefixes, in the order of log_short_token(). */
	if (strncmp(p, "glrt-", 5) == 0) {
		p += 5;
		if (is_partition(p))
			p += 3;
	} else if (is_partition(p)) {
		p += 3;
	} else if (strncmp(p, "glrtr-", 6) == 0) {
		p += 6;
	}
	if (strncmp(p, "glcbt-", 6) == 0)
		p += 6;
	if (p[0] == 'G' && p[1] == 'R') {
		for (i = 2; i < 9 && is_hex(p[i]); i++)
			;
		if (i == 9)
			p += 9;
	}
	n = strnlen(p, STATE_STORE_DIRNAME_SIZE - 1);
	out[0] = '\0';
	if (n == 0 || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return NULL;
	for (size_t k = 0; k < n; k++)
		if (!is_name_char(p[k]))
			return NULL;
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

char *
state_store_dir(const struct config_state_storage *ss, const char *config_path)
{
	const char *slash;

	if (ss != NULL && ss->dir != NULL && ss->dir[0] != '\0')
		return xstrdup(ss->dir);
	if (config_path == NULL || (slash = strrchr(config_path, '/')) == NULL)
		return xstrdup("./.taskscaler");
	if (slash == config_path)
		return xstrdup("/.taskscaler");
	return xasprintf("%.*s/.taskscaler", (int)(slash - config_path),
	    config_path);
}

/* ---- checks shared by format and parse ---- */

static int
cmp_idp(const void *a, const void *b)
{
	const struct state_record *const *x = a, *const *y = b;

	return strcmp((*x)->id, (*y)->id);
}

/* Index pair of a duplicate id, or 0 when all differ. */
static int
find_duplicate(const struct state_record *recs, size_t n, size_t *first,
    size_t *second)
{
	const struct state_record **v;
	int dup = 0;

	if (n < 2)
		return 0;
	v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = &recs[i];
	qsort(v, n, sizeof(*v), cmp_idp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1]->id, v[i]->id) == 0) {
			size_t a = (size_t)(v[i - 1] - recs);
			size_t b = (size_t)(v[i] - recs);

			*first = a < b ? a : b;
			*second = a < b ? b : a;
			dup = 1;
			break;
		}
	}
	free(v);
	return dup;
}

/*
 * Valid UTF-8 as jansson's parser takes it: no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
static int
utf8_ok(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned int c = s[i], cp;
		size_t len;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
			return 0;	/* overlong or a surrogate */
		if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
			return 0;
		i += len;
	}
	return 1;
}

/* A string field: 0, FL_ERR_RANGE (too long) or FL_ERR_INVAL (not
 * UTF-8). */
static int
str_check(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	if ((n = strnlen(s, STATE_STORE_MAX_STR + 1)) > STATE_STORE_MAX_STR)
		return FL_ERR_RANGE;
	return utf8_ok(s, n) ? 0 : FL_ERR_INVAL;
}

/* What a save refuses (what a load would refuse). */
static int
record_check(const struct state_record *r)
{
	const char *strs[] = { r->id, r->host_key, r->os, r->arch,
	    r->protocol, r->username, r->password, r->internal_addr,
	    r->external_addr };
	size_t nstrs = r->has_connect ? sizeof(strs) / sizeof(strs[0]) : 2;
	int rc;

	if (r->id == NULL || r->id[0] == '\0')
		return FL_ERR_INVAL;
	for (size_t i = 0; i < nstrs; i++)
		if ((rc = str_check(strs[i])) != 0)
			return rc;
	if (r->use_count < 0 || r->created_at < 0)
		return FL_ERR_RANGE;
	if (r->has_connect && (r->protocol_port < 0 ||
	    r->protocol_port > 65535 || r->expires < 0 ||
	    r->key_len > STATE_STORE_MAX_KEY ||
	    (r->key == NULL && r->key_len > 0)))
		return FL_ERR_RANGE;
	return 0;
}

/* ---- format ---- */

/*
 * The writer is our own rather than jansson's: building and dumping a
 * jansson tree cost ~20 us a record, over 20 ms for 1,000 instances, on
 * every save.  It writes exactly what the parser reads (the fuzz target
 * checks the round trip).
 */

/* A growing output buffer that wipes what it lets go of. */
struct wbuf {
	char *p;
	size_t len;
	size_t cap;
	int toobig;
};

static void
wbuf_add(struct wbuf *w, const char *buf, size_t size)
{
	if (w->toobig || w->len + size > STATE_STORE_MAX_FILE) {
		w->toobig = 1;
		return;
	}
	if (w->len + size + 1 > w->cap) {
		size_t nc = w->cap * 2;
		char *np;

		while (nc < w->len + size + 1)
			nc *= 2;
		np = xmalloc(nc);
		memcpy(np, w->p, w->len);
		freezero(w->p, w->cap);
		w->p = np;
		w->cap = nc;
	}
	memcpy(w->p + w->len, buf, size);
	w->len += size;
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define WLIT(w, s) wbuf_add((w), (s), sizeof(s) - 1)

/* A JSON string of s[0..n) (checked UTF-8). */
static void
w_string(struct wbuf *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	WLIT(w, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		wbuf_add(w, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
			break;
		}
		wbuf_add(w, esc, elen);
	}
	wbuf_add(w, s + run, n - run);
	WLIT(w, "\"");
}

/* ", "name": (the first member of an object writes no comma). */
static void
w_name(struct wbuf *w, const char *name, int *first)
{
	if (!*first)
		WLIT(w, ", ");
	*first = 0;
	wbuf_add(w, "\"", 1);
	wbuf_add(w, name, strlen(name));
	WLIT(w, "\": ");
}

static void
w_str(struct wbuf *w, const char *name, const char *s, int *first)
{
	if (s == NULL)
		return;
	w_name(w, name, first);
	w_string(w, s, strlen(s));
}

static void
w_int(struct wbuf *w, const char *name, int64_t v, int *first)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	w_name(w, name, first);
	wbuf_add(w, num, (size_t)n);
}

static void
w_bool(struct wbuf *w, const char *name, int v, int *first)
{
	w_name(w, name, first);
	if (v)
		WLIT(w, "true");
	else
		WLIT(w, "false");
}

static void
w_key(struct wbuf *w, const struct state_record *r, int *first)
{
	char *b64;

	if (r->key == NULL)
		return;
	/* Text (PEM, OpenSSH) as it is; anything else as base64. */
	if (memchr(r->key, '\0', r->key_len) == NULL &&
	    utf8_ok(r->key, r->key_len)) {
		w_name(w, "key", first);
		w_string(w, r->key, r->key_len);
		return;
	}
	b64 = dockerauth_b64(r->key, r->key_len, 0);
	w_str(w, "key_base64", b64, first);
	freezero_str(b64);
}

static void
w_record(struct wbuf *w, const struct state_record *r)
{
	int first = 1, cfirst = 1;

	WLIT(w, "{");
	w_str(w, "id", r->id, &first);
	w_int(w, "use_count", r->use_count, &first);
	w_int(w, "created_at", r->created_at, &first);
	w_bool(w, "ready", r->ready, &first);
	w_bool(w, "had_acquisitions", r->had_acquisitions, &first);
	w_str(w, "host_key", r->host_key, &first);
	if (r->has_connect) {
		w_name(w, "connect_info", &first);
		WLIT(w, "{");
		w_str(w, "os", r->os, &cfirst);
		w_str(w, "arch", r->arch, &cfirst);
		w_str(w, "protocol", r->protocol, &cfirst);
		w_int(w, "protocol_port", r->protocol_port, &cfirst);
		w_str(w, "username", r->username, &cfirst);
		w_str(w, "password", r->password, &cfirst);
		w_key(w, r, &cfirst);
		w_str(w, "internal_addr", r->internal_addr, &cfirst);
		w_str(w, "external_addr", r->external_addr, &cfirst);
		w_int(w, "expires", r->expires, &cfirst);
		WLIT(w, "}");
	}
	WLIT(w, "}");
}

/*
 * Layout: one instance a line.
 *
 *	{
 *	 "version": 1,
 *	 "instances": [
 *	  {"id": "i-1", ...},
 *	  {"id": "i-2", ...}
 *	 ]
 *	}
 */
int
state_store_format(const struct state_record *recs, size_t n, char **out,
    size_t *outlen)
{
	struct wbuf w = { 0 };
	size_t a, b;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (n > STATE_STORE_MAX_RECORDS)
		return FL_ERR_TOOBIG;
	for (size_t i = 0; i < n; i++)
		if ((rc = record_check(&recs[i])) != 0)
			return rc;
	if (find_duplicate(recs, n, &a, &b))
		return FL_ERR_INVAL;

	w.cap = 4096 + (n < 4096 ? n : 4096) * 1024;
	w.p = xmalloc(w.cap);
	WLIT(&w, "{\n \"version\": " STR(STATE_STORE_VERSION)
	    ",\n \"instances\": [");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			WLIT(&w, ",");
		WLIT(&w, "\n  ");
		w_record(&w, &recs[i]);
	}
	WLIT(&w, "\n ]\n}\n");
	if (w.toobig) {
		freezero(w.p, w.cap);
		return FL_ERR_TOOBIG;
	}
	w.p[w.len] = '\0';
	*out = w.p;
	*outlen = w.len;
	return 0;
}

/* ---- parse ---- */

enum ftype { F_STR, F_INT, F_BOOL, F_PORT, F_KEY, F_KEY64, F_CONNECT };

struct field {
	const char *name;
	enum ftype type;
	size_t off;
	int required;
};

#define OFF(f) offsetof(struct state_record, f)

static const struct field record_fields[] = {
	{ "id", F_STR, OFF(id), 1 },
	{ "use_count", F_INT, OFF(use_count), 1 },
	{ "created_at", F_INT, OFF(created_at), 1 },
	{ "ready", F_BOOL, OFF(ready), 1 },
	{ "had_acquisitions", F_BOOL, OFF(had_acquisitions), 1 },
	{ "host_key", F_STR, OFF(host_key), 0 },
	{ "connect_info", F_CONNECT, 0, 0 },
};

static const struct field connect_fields[] = {
	{ "os", F_STR, OFF(os), 0 },
	{ "arch", F_STR, OFF(arch), 0 },
	{ "protocol", F_STR, OFF(protocol), 0 },
	{ "protocol_port", F_PORT, OFF(protocol_port), 0 },
	{ "username", F_STR, OFF(username), 0 },
	{ "password", F_STR, OFF(password), 0 },
	{ "key", F_KEY, 0, 0 },
	{ "key_base64", F_KEY64, 0, 0 },
	{ "internal_addr", F_STR, OFF(internal_addr), 0 },
	{ "external_addr", F_STR, OFF(external_addr), 0 },
	{ "expires", F_INT, OFF(expires), 0 },
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* Where a value sits, for messages ("instances[3].connect_info"). */
struct where {
	size_t idx;
	const char *obj;	/* "" or ".connect_info" */
};

#define FAIL(fmt, ...) do {						\
	snprintf(err, errlen, "instances[%zu]%s" fmt, w->idx, w->obj,	\
	    __VA_ARGS__);						\
	return FL_ERR_PARSE;						\
} while (0)

static int parse_object(json_t *o, const struct field *tab, size_t ntab,
    struct state_record *r, const struct where *w, char *err, size_t errlen);

/* One value into its field.  Messages name the key, never the value. */
static int
parse_value(json_t *v, const struct field *f, struct state_record *r,
    const struct where *w, char *err, size_t errlen)
{
	char *base = (char *)r;
	const char *s;
	size_t len;
	json_int_t i;

	switch (f->type) {
	case F_STR:
		if (!json_is_string(v))
			FAIL(".%s: not a string", f->name);
		s = json_string_value(v);
		len = json_string_length(v);
		if (len > STATE_STORE_MAX_STR)
			FAIL(".%s: longer than %d bytes", f->name,
			    STATE_STORE_MAX_STR);
		if (memchr(s, '\0', len) != NULL)
			FAIL(".%s: contains a NUL", f->name);
		if (strcmp(f->name, "id") == 0 && len == 0)
			FAIL(".%s: empty", f->name);
		*(char **)(base + f->off) = xstrndup(s, len);
		return 0;
	case F_INT:
	case F_PORT:
		if (!json_is_integer(v))
			FAIL(".%s: not an integer", f->name);
		i = json_integer_value(v);
		if (i < 0 || (f->type == F_PORT && i > 65535))
			FAIL(".%s: out of range", f->name);
		if (f->type == F_PORT)
			*(int *)(base + f->off) = (int)i;
		else
			*(int64_t *)(base + f->off) = (int64_t)i;
		return 0;
	case F_BOOL:
		if (!json_is_boolean(v))
			FAIL(".%s: not a boolean", f->name);
		*(int *)(base + f->off) = json_is_true(v);
		return 0;
	case F_KEY:
		if (r->key != NULL)
			FAIL(": both %s and key_base64", "key");
		if (!json_is_string(v))
			FAIL(".%s: not a string", f->name);
		len = json_string_length(v);
		if (len > STATE_STORE_MAX_KEY)
			FAIL(".%s: longer than %d bytes", f->name,
			    STATE_STORE_MAX_KEY);
		r->key = xmalloc(len + 1);
		memcpy(r->key, json_string_value(v), len);
		r->key[len] = '\0';
		r->key_len = len;
		return 0;
	case F_KEY64:
		if (r->key != NULL)
			FAIL(": both %s and key_base64", "key");
		if (!json_is_string(v))
			FAIL(".%s: not a string", f->name);
		len = json_string_length(v);
		if (len > (STATE_STORE_MAX_KEY + 2) / 3 * 4)
			FAIL(".%s: longer than %d bytes decoded", f->name,
			    STATE_STORE_MAX_KEY);
		s = json_string_value(v);
		if (memchr(s, '\0', len) != NULL ||
		    (r->key = dockerauth_b64_decode(s, &r->key_len)) == NULL)
			FAIL(".%s: not base64", f->name);
		return 0;
	case F_CONNECT:
		if (!json_is_object(v))
			FAIL(".%s: not an object", f->name);
		r->has_connect = 1;
		{
			struct where cw = { w->idx, ".connect_info" };

			return parse_object(v, connect_fields,
			    NFIELDS(connect_fields), r, &cw, err, errlen);
		}
	}
	snprintf(err, errlen, "internal error");
	return FL_ERR_INTERNAL;
}

static int
parse_object(json_t *o, const struct field *tab, size_t ntab,
    struct state_record *r, const struct where *w, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	int rc;

	/* Unknown keys are not quoted: they are data from the file. */
	json_object_foreach(o, key, v) {
		size_t k;

		for (k = 0; k < ntab; k++)
			if (strcmp(key, tab[k].name) == 0)
				break;
		if (k == ntab)
			FAIL(": unknown key (%zu bytes)", strlen(key));
	}
	for (size_t k = 0; k < ntab; k++) {
		if ((v = json_object_get(o, tab[k].name)) == NULL) {
			if (tab[k].required)
				FAIL(": \"%s\" missing", tab[k].name);
			continue;
		}
		if ((rc = parse_value(v, &tab[k], r, w, err, errlen)) != 0)
			return rc;
	}
	return 0;
}

#undef FAIL

/* jansson's error kinds in our words (its text can quote the input). */
static const char *
json_err_text(const json_error_t *je)
{
	switch (json_error_code(je)) {
	case json_error_out_of_memory:
		return "out of memory";
	case json_error_stack_overflow:
		return "nested too deeply";
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "truncated";
	case json_error_end_of_input_expected:
		return "data after the end";
	case json_error_invalid_syntax:
		return "invalid syntax";
	case json_error_invalid_format:
		return "not a JSON object";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "NUL character";
	case json_error_duplicate_key:
		return "duplicate key";
	case json_error_numeric_overflow:
		return "number out of range";
	default:
		return "invalid JSON";
	}
}

int
state_store_parse(const char *buf, size_t len, struct state_record **recs,
    size_t *n, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *ver, *arr, *v;
	struct state_record *out = NULL;
	const char *key;
	size_t cnt = 0, a, b;
	int rc = FL_ERR_PARSE;

	*recs = NULL;
	*n = 0;
	if (errlen > 0)
		err[0] = '\0';
	alloc_init();
	if (len > STATE_STORE_MAX_FILE) {
		snprintf(err, errlen, "larger than %zu bytes",
		    (size_t)STATE_STORE_MAX_FILE);
		return FL_ERR_TOOBIG;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		snprintf(err, errlen, "line %d, column %d: %s", je.line,
		    je.column, json_err_text(&je));
		return FL_ERR_PARSE;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		goto out;
	}
	ver = json_object_get(root, "version");
	if (!json_is_integer(ver)) {
		snprintf(err, errlen, "\"version\" %s",
		    ver == NULL ? "missing" : "not an integer");
		goto out;
	}
	if (json_integer_value(ver) != STATE_STORE_VERSION) {
		snprintf(err, errlen, "unsupported version %lld (this flotilla "
		    "reads version %d)", (long long)json_integer_value(ver),
		    STATE_STORE_VERSION);
		rc = FL_ERR_RANGE;
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "version") != 0 &&
		    strcmp(key, "instances") != 0) {
			snprintf(err, errlen, "unknown key (%zu bytes) at the "
			    "top level", strlen(key));
			goto out;
		}
	}
	arr = json_object_get(root, "instances");
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "\"instances\" %s",
		    arr == NULL ? "missing" : "not an array");
		goto out;
	}
	if (json_array_size(arr) > STATE_STORE_MAX_RECORDS) {
		snprintf(err, errlen, "more than %d instances",
		    STATE_STORE_MAX_RECORDS);
		rc = FL_ERR_TOOBIG;
		goto out;
	}
	out = xcalloc(json_array_size(arr) + 1, sizeof(*out));
	for (cnt = 0; cnt < json_array_size(arr); cnt++) {
		struct where w = { cnt, "" };

		v = json_array_get(arr, cnt);
		if (!json_is_object(v)) {
			snprintf(err, errlen, "instances[%zu]: not an object",
			    cnt);
			cnt++;
			goto out;
		}
		if (parse_object(v, record_fields, NFIELDS(record_fields),
		    &out[cnt], &w, err, errlen) != 0) {
			cnt++;
			goto out;
		}
	}
	if (find_duplicate(out, cnt, &a, &b)) {
		snprintf(err, errlen, "instances[%zu]: the id of "
		    "instances[%zu] again", b, a);
		goto out;
	}
	*recs = out;
	*n = cnt;
	out = NULL;
	rc = 0;
out:
	state_store_records_free(out, cnt);
	json_decref(root);
	return rc;
}

/* ---- the store ---- */

/* mkdir -p of the parents and dir itself, new ones 0700. */
static int
make_dirs(const char *dir)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1; ; s++) {
		int last = *s == '\0';

		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == 0) {
			(void)chmod(p, 0700);	/* whatever the umask */
		} else if (errno != EEXIST) {
			rc = -1;
			break;
		}
		if (last)
			break;
		*s = '/';
		while (s[1] == '/')
			s++;
	}
	free(p);
	return rc;
}

struct state_store *
state_store_open(const char *dir, const char *runner_token, char *err,
    size_t errlen)
{
	char name[STATE_STORE_DIRNAME_SIZE];
	struct state_store *st;
	struct stat sb;
	char *path;
	size_t dl;
	int fd;

	if (errlen > 0)
		err[0] = '\0';
	if (dir == NULL || dir[0] == '\0') {
		snprintf(err, errlen, "state storage: no directory");
		return NULL;
	}
	if (state_store_dirname(runner_token, name) == NULL) {
		snprintf(err, errlen, "state storage: the runner token gives "
		    "no usable directory name");
		return NULL;
	}
	if (make_dirs(dir) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	path = xasprintf("%.*s/%s", (int)dl, dir, name);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
			snprintf(err, errlen, "%s: a symbolic link", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		free(path);
		return NULL;
	}
	if (fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (sb.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: not owned by this user", path);
		goto fail;
	}
	if ((sb.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0) {
		snprintf(err, errlen, "%s: chmod: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s: %s", path, errno == EWOULDBLOCK ?
		    "in use by another process" : strerror(errno));
		goto fail;
	}
	alloc_init();
	st = xcalloc(1, sizeof(*st));
	st->dirfd = fd;
	st->path = path;
	return st;
fail:
	close(fd);
	free(path);
	return NULL;
}

void
state_store_free(struct state_store *st)
{
	if (st == NULL)
		return;
	close(st->dirfd);	/* drops the lock */
	free(st->path);
	free(st);
}

const char *
state_store_path(const struct state_store *st)
{
	return st->path;
}

/* Remove temporary files a crash left behind (we hold the lock). */
static void
clean_temps(struct state_store *st)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
			(void)unlinkat(st->dirfd, de->d_name, 0);
	closedir(d);
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
state_store_save(struct state_store *st, const struct state_record *recs,
    size_t n)
{
	char tmp[64], *buf;
	size_t len;
	int fd, rc, e;

	if ((rc = state_store_format(recs, n, &buf, &len)) != 0)
		return rc;
	clean_temps(st);
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%ld-%u", (long)getpid(),
	    ++st->seq);
	fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		freezero(buf, len);
		errno = e;
		return FL_ERR_IO;
	}
	if (fchmod(fd, 0600) != 0 || write_all(fd, buf, len) != 0 ||
	    fsync(fd) != 0) {
		e = errno;
		close(fd);
		goto fail;
	}
	freezero(buf, len);
	buf = NULL;
	if (close(fd) != 0 ||
	    renameat(st->dirfd, tmp, st->dirfd, STATE_STORE_FILE) != 0) {
		e = errno;
		goto fail;
	}
	/* The rename is durable once the directory is. */
	if (fsync(st->dirfd) != 0)
		return FL_ERR_IO;
	return 0;
fail:
	if (buf != NULL)
		freezero(buf, len);
	(void)unlinkat(st->dirfd, tmp, 0);
	errno = e;
	return FL_ERR_IO;
}

/* Rename the file out of the way; the new name into name. */
static int
move_aside(struct state_store *st, char *name, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "%lld", (long long)ts.tv_sec);
	for (int k = 0; k < 100; k++) {
		if (k == 0)
			snprintf(name, size, CORRUPT_PREFIX "%s", stamp);
		else
			snprintf(name, size, CORRUPT_PREFIX "%s-%d", stamp, k);
		if (renameat2(st->dirfd, STATE_STORE_FILE, st->dirfd, name,
		    RENAME_NOREPLACE) == 0)
			return 0;
		if (errno == EEXIST)
			continue;
		if (errno != EINVAL && errno != ENOSYS)
			return -1;
		/* No RENAME_NOREPLACE here: check, then rename. */
		if (faccessat(st->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		return renameat(st->dirfd, STATE_STORE_FILE, st->dirfd, name);
	}
	errno = EEXIST;
	return -1;
}

int
state_store_load(struct state_store *st, struct state_record **recs,
    size_t *n, char *err, size_t errlen)
{
	char why[256], aside[96];
	struct stat sb;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd, rc;

	*recs = NULL;
	*n = 0;
	if (errlen > 0)
		err[0] = '\0';
	fd = openat(st->dirfd, STATE_STORE_FILE, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s/%s: %s", st->path, STATE_STORE_FILE,
		    strerror(errno));
		return FL_ERR_IO;
	}
	if (fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "%s/%s: %s", st->path, STATE_STORE_FILE,
		    strerror(errno));
		close(fd);
		return FL_ERR_IO;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s/%s: not a regular file", st->path,
		    STATE_STORE_FILE);
		close(fd);
		return FL_ERR_IO;
	}
	if ((uint64_t)sb.st_size > STATE_STORE_MAX_FILE) {
		close(fd);
		snprintf(why, sizeof(why), "larger than %zu bytes",
		    (size_t)STATE_STORE_MAX_FILE);
		rc = FL_ERR_TOOBIG;
		goto bad;
	}
	/* Read to the end, whatever st_size said, up to the limit. */
	cap = (size_t)sb.st_size + 1;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			char *nb;

			if (cap > STATE_STORE_MAX_FILE)
				break;
			nb = xmalloc(cap * 2);
			memcpy(nb, buf, len);
			freezero(buf, cap);
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s/%s: %s", st->path,
			    STATE_STORE_FILE, strerror(errno));
			freezero(buf, cap);
			close(fd);
			return FL_ERR_IO;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > STATE_STORE_MAX_FILE) {
		snprintf(why, sizeof(why), "larger than %zu bytes",
		    (size_t)STATE_STORE_MAX_FILE);
		rc = FL_ERR_TOOBIG;
	} else {
		rc = state_store_parse(buf, len, recs, n, why, sizeof(why));
	}
	freezero(buf, cap);
	if (rc == 0)
		return 0;
bad:
	if (move_aside(st, aside, sizeof(aside)) == 0)
		snprintf(err, errlen, "%s/%s: %s; moved aside to %s", st->path,
		    STATE_STORE_FILE, why, aside);
	else
		snprintf(err, errlen, "%s/%s: %s (could not move it aside: %s)",
		    st->path, STATE_STORE_FILE, why, strerror(errno));
	return rc;
}
