/*
 * Text-level editing of config.toml (see config_edit.h): find the bytes
 * of each [[runners]] entry, cut one out, append one, write the result
 * atomically.  The scanner below knows just enough TOML to tell a table
 * header line from a line inside a multi-line string or array; it runs
 * only on text that lib/toml has accepted, and its findings are checked
 * against the parsed tree (same number of [[runners]] entries).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config_edit.h"
#include "err.h"
#include "toml.h"
#include "xmalloc.h"

#define MAX_FILE (16u * 1024 * 1024)

/* ---- the scanner ---- */

enum line_kind { L_BLANK, L_COMMENT, L_HEADER };
enum hdr_kind { H_OTHER, H_RUNNER, H_RUNNER_SUB };

/* A line the scanner saw at top level (lines inside a value are not
 * recorded). */
struct line {
	size_t start, end;	/* end: after its '\n' (or len) */
	int lineno;
	enum line_kind kind;
	enum hdr_kind hdr;	/* L_HEADER only */
};

struct scan {
	struct line *v;
	size_t n, cap;
};

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(err, errlen, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
}

static void
scan_add(struct scan *s, size_t start, size_t end, int lineno,
    enum line_kind kind, enum hdr_kind hdr)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n].start = start;
	s->v[s->n].end = end;
	s->v[s->n].lineno = lineno;
	s->v[s->n].kind = kind;
	s->v[s->n].hdr = hdr;
	s->n++;
}

/* Skip a string starting at t[p] (a quote); returns the index after it.
 * Counts the newlines crossed into *lineno. */
static size_t
skip_string(const char *t, size_t len, size_t p, int *lineno)
{
	char q = t[p];
	int multi = p + 2 < len && t[p + 1] == q && t[p + 2] == q;

	if (multi) {
		p += 3;
		while (p < len) {
			if (q == '"' && t[p] == '\\') {
				if (p + 1 < len && t[p + 1] == '\n')
					(*lineno)++;
				p += 2;
			} else if (p + 2 < len && t[p] == q && t[p + 1] == q &&
			    t[p + 2] == q) {
				p += 3;
				/* up to two quotes may end the content */
				for (int k = 0; k < 2 && p < len && t[p] == q; k++)
					p++;
				return p;
			} else {
				if (t[p] == '\n')
					(*lineno)++;
				p++;
			}
		}
		return p;
	}
	p++;
	while (p < len && t[p] != q && t[p] != '\n') {
		if (q == '"' && t[p] == '\\')
			p++;
		p++;
	}
	return p < len && t[p] == q ? p + 1 : p;
}

/* Skip a key/value line (the value may span lines); returns the index
 * after its final newline. */
static size_t
skip_keyval(const char *t, size_t len, size_t p, int *lineno)
{
	int depth = 0;

	while (p < len) {
		char c = t[p];

		if (c == '"' || c == '\'') {
			p = skip_string(t, len, p, lineno);
		} else if (c == '#') {
			while (p < len && t[p] != '\n')
				p++;
		} else if (c == '\n') {
			(*lineno)++;
			p++;
			if (depth <= 0)
				return p;
		} else {
			if (c == '[' || c == '{')
				depth++;
			else if (c == ']' || c == '}')
				depth--;
			p++;
		}
	}
	return p;
}

/* Classify a header's key text (between the brackets) by parsing it. */
static enum hdr_kind
header_kind(const char *key, size_t klen, int array)
{
	struct sbuf sb;
	struct toml_table *doc;
	enum hdr_kind k = H_OTHER;

	sbuf_init(&sb);
	sbuf_add(&sb, key, klen);
	sbuf_adds(&sb, " = 0\n");
	doc = toml_parse(sb.buf, sb.len, NULL);
	sbuf_release(&sb);
	if (doc == NULL || doc->len != 1)
		goto out;
	if (doc->kvs[0].keylen != 7 || memcmp(doc->kvs[0].key, "runners", 7))
		goto out;
	if (doc->kvs[0].val->type == TOML_TABLE)
		k = H_RUNNER_SUB;
	else if (array)
		k = H_RUNNER;
out:
	toml_free(doc);
	return k;
}

static void
scan_text(const char *t, size_t len, struct scan *s)
{
	size_t p = 0;
	int lineno = 1;

	while (p < len) {
		size_t ls = p, q;

		while (p < len && (t[p] == ' ' || t[p] == '\t' || t[p] == '\r'))
			p++;
		if (p >= len) {
			scan_add(s, ls, len, lineno, L_BLANK, H_OTHER);
			break;
		}
		if (t[p] == '\n') {
			scan_add(s, ls, p + 1, lineno++, L_BLANK, H_OTHER);
			p++;
			continue;
		}
		if (t[p] == '#') {
			while (p < len && t[p] != '\n')
				p++;
			if (p < len)
				p++;
			scan_add(s, ls, p, lineno++, L_COMMENT, H_OTHER);
			continue;
		}
		if (t[p] == '[') {
			int array = p + 1 < len && t[p + 1] == '[';
			size_t ks = p + (array ? 2 : 1);
			int dummy = 0;
			enum hdr_kind hk;

			q = ks;
			while (q < len && t[q] != ']' && t[q] != '\n') {
				if (t[q] == '"' || t[q] == '\'')
					q = skip_string(t, len, q, &dummy);
				else
					q++;
			}
			hk = header_kind(t + ks, q - ks, array);
			while (q < len && t[q] != '\n')
				q++;
			if (q < len)
				q++;
			scan_add(s, ls, q, lineno++, L_HEADER, hk);
			p = q;
			continue;
		}
		p = skip_keyval(t, len, p, &lineno);
	}
}

/* How many [[runners]] tables the parsed document has; -1 when runners
 * is there but not an array of tables. */
static long
parsed_runners(const struct toml_table *doc)
{
	const struct toml_value *v = toml_get(doc, "runners");

	if (v == NULL)
		return 0;
	if (v->type != TOML_ARRAY)
		return -1;
	for (size_t i = 0; i < v->u.arr.len; i++)
		if (v->u.arr.items[i]->type != TOML_TABLE)
			return -1;
	return (long)v->u.arr.len;
}

/* Back from line index i (exclusive) over the comment lines directly
 * above it; returns the index of the first of them (or i). */
static size_t
attached_comments(const struct scan *s, size_t i)
{
	while (i > 0 && s->v[i - 1].kind == L_COMMENT &&
	    s->v[i - 1].end == s->v[i].start)
		i--;
	return i;
}

int
config_edit_runners(const char *text, size_t len,
    struct config_edit_span **spans, size_t *n, char *err, size_t errlen)
{
	struct toml_error terr;
	struct toml_table *doc;
	struct scan s = { NULL, 0, 0 };
	struct config_edit_span *out = NULL;
	size_t nout = 0, i, j;
	long want;
	int rc = 0;

	*spans = NULL;
	*n = 0;
	doc = toml_parse(text, len, &terr);
	if (doc == NULL) {
		errf(err, errlen, "line %d: %s", terr.line, terr.msg);
		return FL_ERR_PARSE;
	}
	want = parsed_runners(doc);
	toml_free(doc);
	if (want < 0) {
		errf(err, errlen, "runners is not written as [[runners]] "
		    "tables; edit the file by hand");
		return FL_ERR_INVAL;
	}
	scan_text(text, len, &s);
	out = xcalloc(s.n + 1, sizeof(*out));
	for (i = 0; i < s.n; i++) {
		const struct line *l = &s.v[i];

		if (l->kind != L_HEADER)
			continue;
		if (l->hdr == H_RUNNER_SUB) {
			/* It must follow its [[runners]] with only runner
			 * tables in between. */
			for (j = i; j-- > 0;)
				if (s.v[j].kind == L_HEADER &&
				    s.v[j].hdr != H_RUNNER_SUB)
					break;
			if (j == (size_t)-1 || s.v[j].hdr != H_RUNNER) {
				errf(err, errlen, "line %d: this runners table "
				    "is apart from its [[runners]] header; edit "
				    "the file by hand", l->lineno);
				rc = FL_ERR_INVAL;
				goto done;
			}
			continue;
		}
		if (l->hdr != H_RUNNER)
			continue;
		out[nout].start = s.v[attached_comments(&s, i)].start;
		out[nout].line = l->lineno;
		out[nout].end = len;
		for (j = i + 1; j < s.n; j++) {
			if (s.v[j].kind == L_HEADER &&
			    s.v[j].hdr != H_RUNNER_SUB) {
				out[nout].end =
				    s.v[attached_comments(&s, j)].start;
				break;
			}
		}
		nout++;
	}
	if ((long)nout != want) {
		errf(err, errlen, "found %zu [[runners]] headers for %ld "
		    "runners; edit the file by hand", nout, want);
		rc = FL_ERR_INVAL;
	}
done:
	free(s.v);
	if (rc < 0) {
		free(out);
		return rc;
	}
	*spans = out;
	*n = nout;
	return 0;
}

int
config_edit_remove_runner(const char *text, size_t len, size_t idx,
    struct sbuf *out, char *err, size_t errlen)
{
	struct config_edit_span *sp;
	size_t n, a, b;
	int rc;

	rc = config_edit_runners(text, len, &sp, &n, err, errlen);
	if (rc < 0)
		return rc;
	if (idx >= n) {
		free(sp);
		errf(err, errlen, "no runner #%zu in the file", idx);
		return FL_ERR_NOTFOUND;
	}
	a = sp[idx].start;
	b = sp[idx].end;
	free(sp);
	if (b == len) {
		/* The last thing in the file: its blank lines go too. */
		while (a > 0) {
			size_t ls = a - 1, k;

			while (ls > 0 && text[ls - 1] != '\n')
				ls--;
			for (k = ls; k < a - 1; k++)
				if (text[k] != ' ' && text[k] != '\t' &&
				    text[k] != '\r')
					break;
			if (k < a - 1 || text[a - 1] != '\n' || ls == 0)
				break;
			/* Keep the newline that ends the line before. */
			a = ls;
		}
	}
	sbuf_add(out, text, a);
	sbuf_add(out, text + b, len - b);
	return 0;
}

void
config_edit_append(const char *text, size_t len, const char *entry,
    struct sbuf *out)
{
	sbuf_add(out, text, len);
	if (len > 0 && text[len - 1] != '\n')
		sbuf_addch(out, '\n');
	if (len > 0 && !(len >= 2 && text[len - 1] == '\n' &&
	    (text[len - 2] == '\n' ||
	    (len >= 3 && text[len - 2] == '\r' && text[len - 3] == '\n'))))
		sbuf_addch(out, '\n');
	sbuf_adds(out, entry);
}

/* ---- a new entry ---- */

void
config_edit_datetime(const char *s, char *out, size_t outlen)
{
	struct toml_table *doc = NULL;
	const struct toml_value *v;
	char *txt;
	FILE *fp;
	size_t n;

	snprintf(out, outlen, "0001-01-01T00:00:00Z");
	if (s == NULL || s[0] == '\0' || strlen(s) > 64 ||
	    strpbrk(s, "\n\r#=[]{}\"'") != NULL)
		return;
	txt = xasprintf("x = %s\n", s);
	doc = toml_parse(txt, strlen(txt), NULL);
	free(txt);
	v = doc != NULL ? toml_get(doc, "x") : NULL;
	if (v != NULL && v->type == TOML_DATETIME) {
		fp = open_memstream(&txt, &n);
		if (fp == NULL)
			abort();
		toml_write_datetime(fp, v->type, &v->u.dt);
		fclose(fp);
		if (n < outlen)
			memcpy(out, txt, n + 1);
		free(txt);
	}
	toml_free(doc);
}

static void
put_str(FILE *fp, const char *key, const char *v)
{
	if (v == NULL)
		return;
	fprintf(fp, "%s = ", key);
	toml_write_string(fp, v, strlen(v));
	putc('\n', fp);
}

static void
put_int(FILE *fp, const char *key, int64_t v)
{
	if (v >= 0)
		fprintf(fp, "%s = %lld\n", key, (long long)v);
}

/* Ours as a TOML document (parsed back for the merge). */
static char *
own_text(const struct config_edit_runner *r, size_t *lenp)
{
	char *buf, exp[48];
	size_t len;
	FILE *fp = open_memstream(&buf, &len);
	struct tm tm;
	time_t t = (time_t)r->token_obtained_at;

	if (fp == NULL)
		abort();
	fputs("[[runners]]\n", fp);
	put_str(fp, "name", r->name);
	put_str(fp, "url", r->url);
	fprintf(fp, "id = %lld\n", (long long)r->id);
	put_str(fp, "token", r->token);
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	fprintf(fp, "token_obtained_at = %04d-%02d-%02dT%02d:%02d:%02dZ\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
	config_edit_datetime(r->token_expires_at, exp, sizeof(exp));
	fprintf(fp, "token_expires_at = %s\n", exp);
	put_str(fp, "tls-ca-file", r->tls_ca_file);
	put_str(fp, "tls-cert-file", r->tls_cert_file);
	put_str(fp, "tls-key-file", r->tls_key_file);
	put_str(fp, "executor", r->executor);
	put_int(fp, "limit", r->limit);
	put_int(fp, "request_concurrency", r->request_concurrency);
	if (r->docker_image != NULL || r->docker_volumes != NULL) {
		fputs("[runners.docker]\n", fp);
		put_str(fp, "image", r->docker_image);
		if (r->docker_volumes != NULL) {
			fputs("volumes = [", fp);
			for (size_t i = 0; r->docker_volumes[i] != NULL; i++) {
				if (i > 0)
					fputs(", ", fp);
				toml_write_string(fp, r->docker_volumes[i],
				    strlen(r->docker_volumes[i]));
			}
			fputs("]\n", fp);
		}
	}
	if (r->autoscaler_plugin != NULL || r->capacity_per_instance >= 0 ||
	    r->max_use_count >= 0 || r->max_instances >= 0) {
		fputs("[runners.autoscaler]\n", fp);
		put_str(fp, "plugin", r->autoscaler_plugin);
		put_int(fp, "capacity_per_instance", r->capacity_per_instance);
		put_int(fp, "max_use_count", r->max_use_count);
		put_int(fp, "max_instances", r->max_instances);
	}
	fclose(fp);
	*lenp = len;
	return buf;
}

static int
is_table_array(const struct toml_value *v)
{
	if (v->type != TOML_ARRAY || v->u.arr.len == 0)
		return 0;
	for (size_t i = 0; i < v->u.arr.len; i++)
		if (v->u.arr.items[i]->type != TOML_TABLE)
			return 0;
	return 1;
}

static void
indent(FILE *fp, int n)
{
	for (int i = 0; i < n; i++)
		putc(' ', fp);
}

/* The value of key in t, or NULL (t may be NULL). */
static const struct toml_value *
get_kv(const struct toml_table *t, const struct toml_kv *kv)
{
	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < t->len; i++)
		if (t->kvs[i].keylen == kv->keylen &&
		    memcmp(t->kvs[i].key, kv->key, kv->keylen) == 0)
			return t->kvs[i].val;
	return NULL;
}

/*
 * One table, a's keys over b's (either may be NULL): its header, its
 * plain keys, its sub-tables, then its arrays of tables.  top: the
 * [[runners]] entry itself, whose token b may not give.
 */
static void
emit(FILE *fp, const char *path, int depth, const struct toml_table *a,
    const struct toml_table *b, int array, int top)
{
	const struct toml_table *src[2] = { a, b };
	int pass, s;

	indent(fp, 2 * (depth - 1));
	fprintf(fp, "%s%s%s\n", array ? "[[" : "[", path, array ? "]]" : "]");
	for (pass = 0; pass < 3; pass++) {
		for (s = 0; s < 2; s++) {
			const struct toml_table *t = src[s];

			for (size_t i = 0; t != NULL && i < t->len; i++) {
				const struct toml_kv *kv = &t->kvs[i];
				const struct toml_value *v = kv->val;
				int tbl = v->type == TOML_TABLE;
				int tarr = is_table_array(v);

				if (s == 1 && get_kv(a, kv) != NULL)
					continue;
				if (s == 1 && top && strcmp(kv->key, "token") == 0)
					continue;
				if (pass == 0 && !tbl && !tarr) {
					indent(fp, 2 * depth);
					toml_write_key(fp, kv->key, kv->keylen);
					fputs(" = ", fp);
					toml_write_value(fp, v);
					putc('\n', fp);
				} else if ((pass == 1 && tbl) ||
				    (pass == 2 && tarr)) {
					char *sub;
					size_t sl;
					FILE *pf = open_memstream(&sub, &sl);

					if (pf == NULL)
						abort();
					fprintf(pf, "%s.", path);
					toml_write_key(pf, kv->key, kv->keylen);
					fclose(pf);
					if (tbl) {
						const struct toml_value *o =
						    s == 0 ? get_kv(b, kv) :
						    NULL;

						emit(fp, sub, depth + 1,
						    v->u.table,
						    o != NULL &&
						    o->type == TOML_TABLE ?
						    o->u.table : NULL, 0, 0);
					} else {
						for (size_t k = 0;
						    k < v->u.arr.len; k++)
							emit(fp, sub, depth + 1,
							    v->u.arr.items[k]->
							    u.table, NULL, 1, 0);
					}
					free(sub);
				}
			}
		}
	}
}

char *
config_edit_runner_text(const struct config_edit_runner *r)
{
	char *own, *buf;
	size_t olen, len;
	struct toml_table *doc;
	const struct toml_value *rv;
	FILE *fp;

	own = own_text(r, &olen);
	doc = toml_parse(own, olen, NULL);
	freezero(own, olen);
	rv = doc != NULL ? toml_get(doc, "runners") : NULL;
	if (rv == NULL || rv->type != TOML_ARRAY || rv->u.arr.len != 1)
		abort();	/* we wrote it: a broken invariant */
	fp = open_memstream(&buf, &len);
	if (fp == NULL)
		abort();
	emit(fp, "runners", 1, rv->u.arr.items[0]->u.table, r->tmpl, 1, 1);
	fclose(fp);
	/* Wipe the token held by the parsed copy. */
	{
		const struct toml_value *t =
		    toml_get(rv->u.arr.items[0]->u.table, "token");

		if (t != NULL && t->type == TOML_STRING)
			explicit_bzero(t->u.str.ptr, t->u.str.len);
	}
	toml_free(doc);
	return buf;
}

/* ---- files ---- */

int
config_edit_read_file(const char *path, char **bufp, size_t *lenp)
{
	struct sbuf sb;
	char tmp[8192];
	ssize_t r;
	int fd;

	*bufp = NULL;
	*lenp = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? FL_ERR_NOTFOUND : FL_ERR_IO;
	sbuf_init(&sb);
	for (;;) {
		r = read(fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			sbuf_release(&sb);
			errno = e;
			return FL_ERR_IO;
		}
		if (r == 0)
			break;
		if (sb.len + (size_t)r > MAX_FILE) {
			close(fd);
			sbuf_release(&sb);
			return FL_ERR_TOOBIG;
		}
		sbuf_add(&sb, tmp, (size_t)r);
	}
	close(fd);
	*bufp = sbuf_detach(&sb, lenp);
	return 0;
}

/* mkdir -p with mode for the missing components. */
static int
make_dirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				rc = -1;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

int
config_edit_write_file(const char *path, const char *buf, size_t len,
    mode_t new_mode, char *err, size_t errlen)
{
	char *target = NULL, *dcopy, *dir, *tmp = NULL;
	struct stat st;
	mode_t mode = new_mode;
	size_t off = 0;
	int fd = -1, dfd, rc = FL_ERR_IO;

	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		target = realpath(path, NULL);
		if (target == NULL) {
			errf(err, errlen, "%s: %s", path, strerror(errno));
			return FL_ERR_IO;
		}
	} else {
		target = xstrdup(path);
	}
	if (stat(target, &st) == 0)
		mode = st.st_mode & 07777;
	dcopy = xstrdup(target);
	dir = dirname(dcopy);
	if (make_dirs(dir, 0700) != 0) {
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	tmp = xasprintf("%s.tmp.XXXXXX", target);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		errf(err, errlen, "%s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (fchmod(fd, mode) != 0) {
		errf(err, errlen, "%s: chmod: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			errf(err, errlen, "%s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		errf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, target) != 0) {
		errf(err, errlen, "%s: rename: %s", target, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(dcopy);
	free(target);
	return rc;
}
