/*
 * TOML 1.0.0 (see toml.h), because GitLab Runner's config.toml is TOML and
 * Debian packages no C parser for it.  The toml-test suite is the spec: the
 * conformance test runs every 1.0.0 case through tests/toml-decoder.
 *
 * The parser works in two passes over the bytes.  The first checks the
 * encoding of the whole document: valid UTF-8 (no overlong forms, no
 * surrogates), no control character but tab and LF, CR only as part of
 * CRLF.  TOML forbids those bytes everywhere (in comments and strings too),
 * so after that pass no later code needs to think about them.  The second
 * pass is a hand-written recursive descent over the grammar; recursion
 * only happens for nested arrays and inline tables, and the depth of the
 * tree is limited to TOML_MAX_DEPTH, so hostile input cannot exhaust the
 * stack (here or in the recursive toml_free()).
 *
 * TOML's redefinition rules are tracked with flags on each table:
 *
 *   IMPLICIT  created as an intermediate of a [header] path ([a.b] makes a);
 *             a later [a] may still define it, once.
 *   HEADER    defined by its own [header] or [[header]]; nothing may define
 *             it again and dotted keys may not reopen it.
 *   DOTTED    created (or extended) by a dotted key (a.b = 1 makes a);
 *             a [header] may not define it but may define sub-tables of it.
 *   INLINE    an inline table, or a table made by dotted keys inside one;
 *             frozen once the closing brace is read.
 *   AOT       an element of an array of tables ([[x]]); only arrays whose
 *             elements carry it may be appended to by [[x]].
 *
 * Tables are allocated inside a private struct that adds a hash index
 * (built once a table has more than a few keys, so that a table of 10,000
 * keys does not cost 10,000^2/2 comparisons) and the depth in the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "toml.h"
#include "xmalloc.h"

#define TF_PRIV		0x01u	/* made by the parser: a struct tbl */
#define TF_IMPLICIT	0x02u
#define TF_HEADER	0x04u
#define TF_DOTTED	0x08u
#define TF_INLINE	0x10u
#define TF_AOT		0x20u

#define INDEX_MIN	8	/* tables this small are scanned linearly */
#define FILE_MAX	(64u << 20)	/* toml_parse_file() refuses more */

struct tbl {
	struct toml_table pub;	/* first: a struct tbl * is a table * */
	uint32_t *idx;		/* open addressing: kv index + 1, 0 empty */
	size_t idx_cap;		/* a power of two, or 0 without index */
	int depth;		/* the root is 0, its tables 1, ... */
};

struct pos {
	int line, col;
};

/* One segment of a (possibly dotted) key. */
struct keyseg {
	char *s;
	size_t len;
	struct pos pos;
};

struct keypath {
	struct keyseg *seg;
	size_t n, cap;
};

struct parser {
	const char *buf;
	size_t len;
	size_t pos;
	int line;
	size_t line_start;	/* offset of the first byte of this line */
	struct toml_error *err;
	struct tbl *root;
	struct tbl *cur;	/* the table that key/values go into */
	struct sbuf tmp;	/* scratch for numbers */
};

static void free_value(struct toml_value *v);
static struct toml_value *parse_value(struct parser *p, int depth);

/* ------------------------------------------------------------------ */
/* Errors */

static struct pos
here(const struct parser *p)
{
	struct pos at;

	at.line = p->line;
	at.col = (int)(p->pos - p->line_start) + 1;
	return at;
}

/* Record an error at a position; returns -1 for "return perr(...)". */
static int __attribute__((format(printf, 3, 4)))
perr(struct parser *p, struct pos at, const char *fmt, ...)
{
	va_list ap;

	if (p->err == NULL)
		return -1;
	p->err->line = at.line;
	p->err->col = at.col;
	va_start(ap, fmt);
	/* A message cut at 200 bytes is still a message: truncation is fine. */
	(void)vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * A key made fit for a message: printable ASCII and UTF-8 as is, anything
 * else as '?', at most about 40 bytes.
 */
static const char *
show_key(char *out, size_t outlen, const char *k, size_t len)
{
	size_t o = 0, max = outlen - 4;

	for (size_t i = 0; i < len && o < max; i++) {
		unsigned char c = (unsigned char)k[i];

		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (o == max && len > max) {
		/* Do not cut a UTF-8 sequence in half. */
		while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0 && (unsigned char)out[o - 1] >= 0xc0)
			o--;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

#define SHOW(buf, s, n)	show_key((buf), sizeof(buf), (s), (n))

/* The dotted path of a header for messages: a.b."c d". */
static const char *
show_path(char *out, size_t outlen, const struct keypath *kp)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < kp->n && o + 8 < outlen; i++) {
		char one[48];
		int n;

		n = snprintf(out + o, outlen - o, "%s%s", i ? "." : "",
		    SHOW(one, kp->seg[i].s, kp->seg[i].len));
		if (n < 0 || (size_t)n >= outlen - o)
			break;	/* truncated path in a message: acceptable */
		o += (size_t)n;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* Tables */

static uint32_t
hash_key(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static void
index_put(struct tbl *t, size_t i)
{
	const struct toml_kv *kv = &t->pub.kvs[i];
	size_t mask = t->idx_cap - 1;
	size_t h = hash_key(kv->key, kv->keylen) & mask;

	while (t->idx[h] != 0)
		h = (h + 1) & mask;
	t->idx[h] = (uint32_t)(i + 1);
}

static void
index_rebuild(struct tbl *t, size_t cap)
{
	free(t->idx);
	t->idx = xcalloc(cap, sizeof(*t->idx));
	t->idx_cap = cap;
	for (size_t i = 0; i < t->pub.len; i++)
		index_put(t, i);
}

static struct tbl *
tbl_new(int depth, unsigned flags, struct pos at)
{
	struct tbl *t = xcalloc(1, sizeof(*t));

	t->pub.flags = TF_PRIV | flags;
	t->pub.line = at.line;
	t->pub.col = at.col;
	t->depth = depth;
	return t;
}

static struct tbl *
tbl_of(const struct toml_table *t)
{
	/* Only valid when TF_PRIV is set. */
	return (struct tbl *)(uintptr_t)t;
}

/* Index of key in t, or -1. */
static ptrdiff_t
tbl_find(const struct toml_table *t, const char *key, size_t len)
{
	const struct tbl *pt;

	if ((t->flags & TF_PRIV) && (pt = tbl_of(t))->idx != NULL) {
		size_t mask = pt->idx_cap - 1;
		size_t h = hash_key(key, len) & mask;

		for (; pt->idx[h] != 0; h = (h + 1) & mask) {
			const struct toml_kv *kv = &t->kvs[pt->idx[h] - 1];

			if (kv->keylen == len && memcmp(kv->key, key, len) == 0)
				return (ptrdiff_t)pt->idx[h] - 1;
		}
		return -1;
	}
	for (size_t i = 0; i < t->len; i++) {
		const struct toml_kv *kv = &t->kvs[i];

		if (kv->keylen == len && memcmp(kv->key, key, len) == 0)
			return (ptrdiff_t)i;
	}
	return -1;
}

static struct toml_value *
tbl_lookup(const struct tbl *t, const struct keyseg *k)
{
	ptrdiff_t i = tbl_find(&t->pub, k->s, k->len);

	return i < 0 ? NULL : t->pub.kvs[i].val;
}

/* Append a key (the table takes k->s) that the caller knows is new. */
static void
tbl_insert(struct tbl *t, struct keyseg *k, struct toml_value *v)
{
	struct toml_table *pt = &t->pub;
	struct toml_kv *kv;

	if (pt->len == pt->cap) {
		pt->cap = pt->cap ? pt->cap * 2 : 4;
		pt->kvs = xreallocarray(pt->kvs, pt->cap, sizeof(*pt->kvs));
	}
	kv = &pt->kvs[pt->len++];
	kv->key = k->s;
	kv->keylen = k->len;
	kv->line = k->pos.line;
	kv->col = k->pos.col;
	kv->val = v;
	k->s = NULL;
	if (t->idx != NULL && pt->len * 2 > t->idx_cap)
		index_rebuild(t, t->idx_cap * 2);
	else if (t->idx != NULL)
		index_put(t, pt->len - 1);
	else if (pt->len > INDEX_MIN)
		index_rebuild(t, 64);
}

static struct toml_value *
value_new(enum toml_type type, struct pos at)
{
	struct toml_value *v = xcalloc(1, sizeof(*v));

	v->type = type;
	v->line = at.line;
	v->col = at.col;
	return v;
}

static struct toml_value *
table_value(struct tbl *t, struct pos at)
{
	struct toml_value *v = value_new(TOML_TABLE, at);

	v->u.table = &t->pub;
	return v;
}

static void
array_push(struct toml_value *a, struct toml_value *item)
{
	size_t n = a->u.arr.len;

	/* Grow at powers of two: the capacity is implied by the length. */
	if (n == 0 || (n & (n - 1)) == 0)
		a->u.arr.items = xreallocarray(a->u.arr.items,
		    n == 0 ? 1 : n * 2, sizeof(*a->u.arr.items));
	a->u.arr.items[a->u.arr.len++] = item;
}

static void
free_table(struct toml_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->len; i++) {
		free(t->kvs[i].key);
		free_value(t->kvs[i].val);
	}
	free(t->kvs);
	if (t->flags & TF_PRIV)
		free(tbl_of(t)->idx);
	free(t);
}

static void
free_value(struct toml_value *v)
{
	if (v == NULL)
		return;
	switch (v->type) {
	case TOML_STRING:
		free(v->u.str.ptr);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.arr.len; i++)
			free_value(v->u.arr.items[i]);
		free(v->u.arr.items);
		break;
	case TOML_TABLE:
		free_table(v->u.table);
		break;
	default:
		break;
	}
	free(v);
}

/* Freeze an inline table and the tables dotted keys made inside it. */
static void
freeze(struct toml_table *t)
{
	t->flags |= TF_INLINE;
	for (size_t i = 0; i < t->len; i++) {
		struct toml_value *v = t->kvs[i].val;

		if (v->type == TOML_TABLE && !(v->u.table->flags & TF_INLINE))
			freeze(v->u.table);
	}
}

static bool
is_aot(const struct toml_value *v)
{
	return v->type == TOML_ARRAY && v->u.arr.len > 0 &&
	    v->u.arr.items[0]->type == TOML_TABLE &&
	    (v->u.arr.items[0]->u.table->flags & TF_AOT);
}

/* ------------------------------------------------------------------ */
/* Encoding */

/* Length of the UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;	/* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;	/* nothing past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* The first pass: encoding and control characters of the whole input. */
static int
check_bytes(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->buf;
	struct pos at = { 1, 1 };
	size_t i = 0;

	while (i < p->len) {
		unsigned char c = s[i];
		size_t n;

		if (c == '\n') {
			at.line++;
			at.col = 1;
			i++;
			continue;
		}
		if (c == '\r' && (i + 1 == p->len || s[i + 1] != '\n'))
			return perr(p, at, "carriage return not followed by a "
			    "newline");
		if (c == 0)
			return perr(p, at, "NUL byte in input");
		if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
			return perr(p, at, "control character 0x%02x not "
			    "allowed (write it as an escape in a string)", c);
		n = utf8_len(s + i, p->len - i);
		if (n == 0)
			return perr(p, at, "invalid UTF-8");
		i += n;
		at.col += (int)n;
	}
	return 0;
}

static void
put_utf8(struct sbuf *sb, uint32_t cp)
{
	char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sbuf_add(sb, b, n);
}

/* ------------------------------------------------------------------ */
/* Lexing helpers */

static bool
at_end(const struct parser *p)
{
	return p->pos >= p->len;
}

static int
peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->buf[p->pos] : -1;
}

static int
peek_at(const struct parser *p, size_t off)
{
	return p->pos + off < p->len ?
	    (unsigned char)p->buf[p->pos + off] : -1;
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    is_digit(c) || c == '_' || c == '-';
}

static bool
is_newline(const struct parser *p)
{
	int c = peek(p);

	return c == '\n' || (c == '\r' && peek_at(p, 1) == '\n');
}

/* Consume one LF or CRLF (the caller checked is_newline()). */
static void
eat_newline(struct parser *p)
{
	p->pos += p->buf[p->pos] == '\r' ? 2 : 1;
	p->line++;
	p->line_start = p->pos;
}

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len &&
	    (p->buf[p->pos] == ' ' || p->buf[p->pos] == '\t'))
		p->pos++;
}

static void
skip_comment(struct parser *p)
{
	if (peek(p) != '#')
		return;
	while (p->pos < p->len && p->buf[p->pos] != '\n' &&
	    p->buf[p->pos] != '\r')
		p->pos++;
}

/* Whitespace, comments and newlines, as allowed inside arrays. */
static void
skip_ws_nl(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		skip_comment(p);
		if (!is_newline(p))
			return;
		eat_newline(p);
	}
}

static bool
match(const struct parser *p, const char *word)
{
	size_t n = strlen(word);

	return p->len - p->pos >= n && memcmp(p->buf + p->pos, word, n) == 0;
}

/* What we found instead of what we wanted, for messages. */
static const char *
found(const struct parser *p, char *out, size_t outlen)
{
	int c = peek(p);

	if (c < 0)
		return "end of input";
	if (c == '\n' || c == '\r')
		return "end of line";
	if (c >= 0x80)
		return "a non-ASCII character";
	(void)snprintf(out, outlen, "'%c'", c);
	return out;
}

/* ------------------------------------------------------------------ */
/* Strings */

static int
parse_escape(struct parser *p, struct sbuf *sb)
{
	struct pos at = here(p);
	int c = peek_at(p, 1);
	size_t ndig;
	uint32_t cp = 0;

	switch (c) {
	case 'b': sbuf_addch(sb, '\b'); p->pos += 2; return 0;
	case 't': sbuf_addch(sb, '\t'); p->pos += 2; return 0;
	case 'n': sbuf_addch(sb, '\n'); p->pos += 2; return 0;
	case 'f': sbuf_addch(sb, '\f'); p->pos += 2; return 0;
	case 'r': sbuf_addch(sb, '\r'); p->pos += 2; return 0;
	case '"': sbuf_addch(sb, '"'); p->pos += 2; return 0;
	case '\\': sbuf_addch(sb, '\\'); p->pos += 2; return 0;
	case 'u': ndig = 4; break;
	case 'U': ndig = 8; break;
	default:
		if (c < 0 || c == '\n' || c == '\r')
			return perr(p, at, "backslash at end of line in a "
			    "single-line string");
		if (c >= 0x20 && c < 0x7f)
			return perr(p, at, "invalid escape '\\%c'", c);
		return perr(p, at, "invalid escape sequence");
	}
	for (size_t i = 0; i < ndig; i++) {
		int d = peek_at(p, 2 + i);

		if (!is_hex(d))
			return perr(p, at, "\\%c needs %zu hex digits", c,
			    ndig);
		cp = cp * 16 + (uint32_t)(is_digit(d) ? d - '0' :
		    (d | 0x20) - 'a' + 10);
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return perr(p, at, "escape \\%c%0*" PRIX32 " is not a Unicode "
		    "scalar value", c, (int)ndig, cp);
	put_utf8(sb, cp);
	p->pos += 2 + ndig;
	return 0;
}

/*
 * After a line-ending backslash in a multi-line basic string: only
 * whitespace may follow it on its line; then all whitespace and newlines
 * up to the next other character are dropped.
 */
static int
line_continuation(struct parser *p)
{
	struct pos at = here(p);

	p->pos++;
	skip_ws(p);
	if (!is_newline(p))
		return perr(p, at, "backslash followed by whitespace must end "
		    "the line");
	for (;;) {
		skip_ws(p);
		if (!is_newline(p))
			return 0;
		eat_newline(p);
	}
}

/*
 * A string; p->pos is at its opening quote.  Multi-line forms drop a
 * newline right after the opening quotes and normalise CRLF to LF.
 */
static int
parse_string(struct parser *p, struct sbuf *sb, bool allow_multi)
{
	struct pos start = here(p);
	char q = p->buf[p->pos];
	bool basic = q == '"';
	bool multi = peek_at(p, 1) == q && peek_at(p, 2) == q;

	if (multi && !allow_multi)
		return perr(p, start, "a multi-line string cannot be a key");
	p->pos += multi ? 3 : 1;
	if (multi && is_newline(p))
		eat_newline(p);
	for (;;) {
		size_t run = p->pos;
		int c;

		while (run < p->len) {
			unsigned char b = (unsigned char)p->buf[run];

			if (b == (unsigned char)q || b == '\n' || b == '\r' ||
			    (basic && b == '\\'))
				break;
			run++;
		}
		sbuf_add(sb, p->buf + p->pos, run - p->pos);
		p->pos = run;
		c = peek(p);
		if (c < 0)
			return perr(p, start, "unterminated string");
		if (c == '\n' || c == '\r') {
			if (!multi)
				return perr(p, start, "unterminated string "
				    "(newline before the closing quote)");
			sbuf_addch(sb, '\n');
			eat_newline(p);
		} else if (c == '\\') {
			if (multi && (peek_at(p, 1) == ' ' ||
			    peek_at(p, 1) == '\t' || peek_at(p, 1) == '\n' ||
			    peek_at(p, 1) == '\r')) {
				if (line_continuation(p) < 0)
					return -1;
			} else if (parse_escape(p, sb) < 0)
				return -1;
		} else if (!multi) {
			p->pos++;
			return 0;
		} else {
			size_t n = 0;

			while (peek_at(p, n) == q)
				n++;
			if (n < 3) {
				sbuf_add(sb, p->buf + p->pos, n);
				p->pos += n;
				continue;
			}
			if (n > 5)
				return perr(p, here(p), "too many quotes at the "
				    "end of a multi-line string");
			sbuf_add(sb, p->buf + p->pos, n - 3);
			p->pos += n;
			return 0;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Keys */

static void
keypath_release(struct keypath *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		free(kp->seg[i].s);
	free(kp->seg);
	kp->seg = NULL;
	kp->n = kp->cap = 0;
}

/* A key: one or more simple keys joined by dots. */
static int
parse_key(struct parser *p, struct keypath *kp)
{
	for (;;) {
		struct keyseg k;
		int c = peek(p);
		char what[8];

		k.pos = here(p);
		if (kp->n == TOML_MAX_DEPTH)
			return perr(p, k.pos, "key has more than %d parts",
			    TOML_MAX_DEPTH);
		if (c == '"' || c == '\'') {
			struct sbuf sb;

			sbuf_init(&sb);
			if (parse_string(p, &sb, false) < 0) {
				sbuf_release(&sb);
				return -1;
			}
			k.s = sbuf_detach(&sb, &k.len);
		} else if (is_bare(c)) {
			size_t s = p->pos;

			while (is_bare(peek(p)))
				p->pos++;
			k.len = p->pos - s;
			k.s = xstrndup(p->buf + s, k.len);
		} else
			return perr(p, k.pos, "expected a key, found %s",
			    found(p, what, sizeof(what)));
		if (kp->n == kp->cap) {
			kp->cap = kp->cap ? kp->cap * 2 : 4;
			kp->seg = xreallocarray(kp->seg, kp->cap,
			    sizeof(*kp->seg));
		}
		kp->seg[kp->n++] = k;
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
		skip_ws(p);
	}
}

/* ------------------------------------------------------------------ */
/* Numbers, dates and times */

/*
 * Digits of a number (is_ok says which) with single underscores between
 * them, appended to p->tmp without the underscores.
 */
static int
read_digits(struct parser *p, bool (*is_ok)(int), const char *what)
{
	if (!is_ok(peek(p)))
		return perr(p, here(p), "expected %s digit", what);
	for (;;) {
		int c = peek(p);

		if (is_ok(c)) {
			sbuf_addch(&p->tmp, c);
			p->pos++;
		} else if (c == '_') {
			if (!is_ok(peek_at(p, 1)))
				return perr(p, here(p), "'_' must be between "
				    "digits");
			p->pos++;
		} else
			return 0;
	}
}

static bool
is_oct(int c)
{
	return c >= '0' && c <= '7';
}

static bool
is_bin(int c)
{
	return c == '0' || c == '1';
}

static int
digit_value(int c)
{
	return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* 0x, 0o, 0b integers: no sign, any number of leading zeros. */
static int
parse_prefixed(struct parser *p, struct toml_value *v, struct pos start)
{
	int kind = peek_at(p, 1);
	bool (*ok)(int) = kind == 'x' ? is_hex : kind == 'o' ? is_oct : is_bin;
	unsigned base = kind == 'x' ? 16 : kind == 'o' ? 8 : 2;
	uint64_t n = 0;

	p->pos += 2;
	sbuf_reset(&p->tmp);
	if (read_digits(p, ok, kind == 'x' ? "a hexadecimal" :
	    kind == 'o' ? "an octal" : "a binary") < 0)
		return -1;
	for (size_t i = 0; i < p->tmp.len; i++) {
		unsigned d = (unsigned)digit_value(p->tmp.buf[i]);

		if (n > ((uint64_t)INT64_MAX - d) / base)
			return perr(p, start, "integer does not fit in 64 bits");
		n = n * base + d;
	}
	v->type = TOML_INTEGER;
	v->u.integer = (int64_t)n;
	return 0;
}

/* Decimal integers and floats, including inf and nan. */
static int
parse_number(struct parser *p, struct toml_value *v, struct pos start)
{
	int sign = 0, c;
	bool is_float = false;
	size_t intlen;

	c = peek(p);
	if (c == '0' && (peek_at(p, 1) == 'x' || peek_at(p, 1) == 'o' ||
	    peek_at(p, 1) == 'b'))
		return parse_prefixed(p, v, start);
	if (c == '+' || c == '-') {
		sign = c;
		p->pos++;
	}
	if (match(p, "inf") || match(p, "nan")) {
		v->type = TOML_FLOAT;
		v->u.flt = p->buf[p->pos] == 'i' ? INFINITY : NAN;
		if (sign == '-')
			v->u.flt = -v->u.flt;
		p->pos += 3;
		return 0;
	}
	sbuf_reset(&p->tmp);
	if (sign == '-')
		sbuf_addch(&p->tmp, '-');
	if (!is_digit(peek(p)))
		return perr(p, start, "invalid value");
	if (read_digits(p, is_digit, "a decimal") < 0)
		return -1;
	intlen = p->tmp.len - (sign == '-');
	if (intlen > 1 && p->tmp.buf[p->tmp.len - intlen] == '0')
		return perr(p, start, "leading zeros are not allowed");
	if (peek(p) == '.') {
		is_float = true;
		sbuf_addch(&p->tmp, '.');
		p->pos++;
		if (read_digits(p, is_digit, "a decimal") < 0)
			return -1;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		is_float = true;
		sbuf_addch(&p->tmp, 'e');
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-') {
			sbuf_addch(&p->tmp, peek(p));
			p->pos++;
		}
		if (read_digits(p, is_digit, "an exponent") < 0)
			return -1;
	}
	if (is_float) {
		char *end;
		double d;

		errno = 0;
		d = strtod(p->tmp.buf, &end);
		if (*end != '\0')
			return perr(p, start, "invalid float");
		if (errno == ERANGE && isinf(d))
			return perr(p, start, "float out of range");
		v->type = TOML_FLOAT;
		v->u.flt = d;
		return 0;
	} else {
		const char *s = p->tmp.buf + (sign == '-');
		uint64_t n = 0, max = sign == '-' ?
		    (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

		for (; *s != '\0'; s++) {
			unsigned d = (unsigned)(*s - '0');

			if (n > (max - d) / 10)
				return perr(p, start, "integer does not fit in "
				    "64 bits");
			n = n * 10 + d;
		}
		v->type = TOML_INTEGER;
		if (sign == '-')
			v->u.integer = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN :
			    -(int64_t)n;
		else
			v->u.integer = (int64_t)n;
		return 0;
	}
}

/* n digits exactly at p->pos + off, or -1. */
static int
fixed_digits(const struct parser *p, size_t off, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		int c = peek_at(p, off + i);

		if (!is_digit(c))
			return -1;
		v = v * 10 + (c - '0');
	}
	return v;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* HH:MM:SS[.frac] at p->pos. */
static int
parse_time(struct parser *p, struct toml_datetime *dt)
{
	struct pos at = here(p);

	dt->hour = fixed_digits(p, 0, 2);
	dt->minute = fixed_digits(p, 3, 2);
	dt->second = fixed_digits(p, 6, 2);
	if (dt->hour < 0 || peek_at(p, 2) != ':' || dt->minute < 0 ||
	    peek_at(p, 5) != ':' || dt->second < 0)
		return perr(p, at, "invalid time (expected HH:MM:SS)");
	if (dt->hour > 23 || dt->minute > 59 || dt->second > 60)
		return perr(p, at, "time out of range");
	p->pos += 8;
	if (peek(p) == '.') {
		int scale = 100000000;

		p->pos++;
		if (!is_digit(peek(p)))
			return perr(p, here(p), "expected digits after '.'");
		while (is_digit(peek(p))) {
			dt->nanosecond += (peek(p) - '0') * scale;
			scale /= 10;
			if (dt->frac_digits < 1000)
				dt->frac_digits++;
			p->pos++;
		}
	}
	return 0;
}

/* A date, a date-time or a time; p->pos is at its first digit. */
static int
parse_datetime(struct parser *p, struct toml_value *v, struct pos start)
{
	struct toml_datetime *dt = &v->u.dt;

	if (peek_at(p, 2) == ':') {
		v->type = TOML_TIME_LOCAL;
		return parse_time(p, dt);
	}
	dt->year = fixed_digits(p, 0, 4);
	dt->month = fixed_digits(p, 5, 2);
	dt->day = fixed_digits(p, 8, 2);
	if (dt->year < 0 || peek_at(p, 4) != '-' || dt->month < 0 ||
	    peek_at(p, 7) != '-' || dt->day < 0 || is_digit(peek_at(p, 10)))
		return perr(p, start, "invalid date (expected YYYY-MM-DD)");
	if (dt->month < 1 || dt->month > 12 || dt->day < 1 ||
	    dt->day > days_in_month(dt->year, dt->month))
		return perr(p, start, "date out of range");
	p->pos += 10;
	v->type = TOML_DATE_LOCAL;
	if (peek(p) == 'T' || peek(p) == 't')
		p->pos++;
	else if (peek(p) == ' ' && is_digit(peek_at(p, 1)) &&
	    is_digit(peek_at(p, 2)) && peek_at(p, 3) == ':')
		p->pos++;
	else
		return 0;
	if (parse_time(p, dt) < 0)
		return -1;
	v->type = TOML_DATETIME_LOCAL;
	if (peek(p) == 'Z' || peek(p) == 'z') {
		v->type = TOML_DATETIME;
		dt->offset_z = 1;
		p->pos++;
	} else if (peek(p) == '+' || peek(p) == '-') {
		struct pos at = here(p);
		int h = fixed_digits(p, 1, 2), m = fixed_digits(p, 4, 2);

		if (h < 0 || peek_at(p, 3) != ':' || m < 0)
			return perr(p, at, "invalid UTC offset (expected "
			    "+HH:MM)");
		if (h > 23 || m > 59)
			return perr(p, at, "UTC offset out of range");
		dt->offset_minutes = (h * 60 + m) * (peek(p) == '-' ? -1 : 1);
		v->type = TOML_DATETIME;
		p->pos += 6;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Values */

static struct toml_value *
parse_array(struct parser *p, int depth)
{
	struct toml_value *a = value_new(TOML_ARRAY, here(p));

	p->pos++;
	for (;;) {
		struct toml_value *item;
		char what[8];

		skip_ws_nl(p);
		if (peek(p) == ']')
			break;
		if ((item = parse_value(p, depth + 1)) == NULL)
			goto fail;
		array_push(a, item);
		skip_ws_nl(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == ']')
			break;
		perr(p, here(p), "expected ',' or ']' in array, found %s",
		    found(p, what, sizeof(what)));
		goto fail;
	}
	p->pos++;
	return a;
fail:
	free_value(a);
	return NULL;
}

static int parse_keyval(struct parser *p, struct tbl *t);

static struct toml_value *
parse_inline_table(struct parser *p, int depth)
{
	struct pos start = here(p);
	struct tbl *t = tbl_new(depth, 0, start);
	struct toml_value *v = table_value(t, start);

	p->pos++;
	skip_ws(p);
	if (peek(p) != '}') {
		for (;;) {
			char what[8];

			if (parse_keyval(p, t) < 0)
				goto fail;
			skip_ws(p);
			if (peek(p) == '}')
				break;
			if (peek(p) != ',') {
				perr(p, here(p), "expected ',' or '}' in inline "
				    "table, found %s%s",
				    found(p, what, sizeof(what)),
				    is_newline(p) ? " (an inline table must be "
				    "on one line)" : "");
				goto fail;
			}
			p->pos++;
			skip_ws(p);
			if (peek(p) == '}') {
				perr(p, here(p), "trailing comma not allowed "
				    "in an inline table");
				goto fail;
			}
		}
	}
	p->pos++;
	freeze(&t->pub);
	return v;
fail:
	free_value(v);
	return NULL;
}

/* A value of depth depth (the depth of the tree once it is stored). */
static struct toml_value *
parse_value(struct parser *p, int depth)
{
	struct pos start = here(p);
	struct toml_value *v;
	int c = peek(p);
	char what[8];

	if (depth > TOML_MAX_DEPTH) {
		perr(p, start, "nesting deeper than %d levels", TOML_MAX_DEPTH);
		return NULL;
	}
	switch (c) {
	case '"':
	case '\'': {
		struct sbuf sb;

		sbuf_init(&sb);
		if (parse_string(p, &sb, true) < 0) {
			sbuf_release(&sb);
			return NULL;
		}
		v = value_new(TOML_STRING, start);
		v->u.str.ptr = sbuf_detach(&sb, &v->u.str.len);
		return v;
	}
	case '[':
		return parse_array(p, depth);
	case '{':
		return parse_inline_table(p, depth);
	case 't':
	case 'f':
		if (match(p, "true") || match(p, "false")) {
			v = value_new(TOML_BOOL, start);
			v->u.boolean = c == 't';
			p->pos += c == 't' ? 4 : 5;
			return v;
		}
		break;
	default:
		break;
	}
	if (is_digit(c) || c == '+' || c == '-' || match(p, "inf") ||
	    match(p, "nan")) {
		int r;

		v = value_new(TOML_INTEGER, start);
		if (is_digit(c) && (peek_at(p, 2) == ':' ||
		    (fixed_digits(p, 0, 4) >= 0 && peek_at(p, 4) == '-')))
			r = parse_datetime(p, v, start);
		else
			r = parse_number(p, v, start);
		if (r < 0) {
			free(v);
			return NULL;
		}
		return v;
	}
	if (c < 0 || c == '\n' || c == '\r' || c == '#')
		perr(p, start, "missing value");
	else if (is_bare(c))
		perr(p, start, "invalid value (strings must be quoted)");
	else
		perr(p, start, "expected a value, found %s",
		    found(p, what, sizeof(what)));
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Key/value pairs and headers */

/* "a string", "an integer", ... for messages. */
static const char *
a_type(const struct toml_value *v)
{
	switch (v->type) {
	case TOML_STRING: return "a string";
	case TOML_INTEGER: return "an integer";
	case TOML_FLOAT: return "a float";
	case TOML_BOOL: return "a boolean";
	case TOML_DATETIME: return "an offset date-time";
	case TOML_DATETIME_LOCAL: return "a local date-time";
	case TOML_DATE_LOCAL: return "a local date";
	case TOML_TIME_LOCAL: return "a local time";
	case TOML_ARRAY: return is_aot(v) ? "an array of tables" : "an array";
	case TOML_TABLE: return "a table";
	}
	return "a value";
}

static int
not_a_table(struct parser *p, const struct tbl *t, const struct keyseg *k)
{
	ptrdiff_t i = tbl_find(&t->pub, k->s, k->len);
	const struct toml_kv *kv = &t->pub.kvs[i];
	char key[48];

	return perr(p, k->pos, "key '%s' is already %s (line %d), not a "
	    "table", SHOW(key, k->s, k->len), a_type(kv->val), kv->line);
}

/*
 * key = value into t.  The dotted part of the key walks (or creates)
 * tables the same key/value context may extend; the last part must be
 * new.  The value is parsed after the key is checked, so that a duplicate
 * is reported at the key.
 */
static int
parse_keyval(struct parser *p, struct tbl *t)
{
	struct keypath kp = { 0 };
	struct keyseg *last;
	struct toml_value *v;
	ptrdiff_t i;
	char key[48], what[8];

	if (parse_key(p, &kp) < 0)
		goto fail;
	if (peek(p) != '=') {
		perr(p, here(p), "expected '=' after key, found %s",
		    found(p, what, sizeof(what)));
		goto fail;
	}
	p->pos++;
	skip_ws(p);
	for (size_t s = 0; s + 1 < kp.n; s++) {
		struct keyseg *k = &kp.seg[s];
		struct toml_value *sub = tbl_lookup(t, k);
		struct tbl *st;

		if (sub == NULL) {
			if (t->depth + 1 > TOML_MAX_DEPTH) {
				perr(p, k->pos, "nesting deeper than %d levels",
				    TOML_MAX_DEPTH);
				goto fail;
			}
			st = tbl_new(t->depth + 1, TF_DOTTED, k->pos);
			tbl_insert(t, k, table_value(st, k->pos));
			t = st;
			continue;
		}
		if (sub->type != TOML_TABLE) {
			not_a_table(p, t, k);
			goto fail;
		}
		st = tbl_of(sub->u.table);
		if (st->pub.flags & TF_INLINE) {
			perr(p, k->pos, "cannot add keys to inline table '%s' "
			    "(line %d)", SHOW(key, k->s, k->len), st->pub.line);
			goto fail;
		}
		if (st->pub.flags & TF_HEADER) {
			perr(p, k->pos, "cannot use a dotted key to add to "
			    "table '%s' defined by a header at line %d",
			    SHOW(key, k->s, k->len), st->pub.line);
			goto fail;
		}
		st->pub.flags |= TF_DOTTED;
		t = st;
	}
	last = &kp.seg[kp.n - 1];
	if ((i = tbl_find(&t->pub, last->s, last->len)) >= 0) {
		perr(p, last->pos, "duplicate key '%s' (first defined at line "
		    "%d)", SHOW(key, last->s, last->len),
		    t->pub.kvs[i].line);
		goto fail;
	}
	if ((v = parse_value(p, t->depth + 1)) == NULL)
		goto fail;
	tbl_insert(t, last, v);
	keypath_release(&kp);
	return 0;
fail:
	keypath_release(&kp);
	return -1;
}

/* [a.b.c] or [[a.b.c]]; p->pos is at the first '['. */
static int
parse_header(struct parser *p)
{
	struct pos start = here(p);
	struct keypath kp = { 0 };
	bool aot = peek_at(p, 1) == '[';
	struct tbl *t = p->root;
	struct keyseg *last;
	struct toml_value *v;
	char key[48], path[160], what[8];

	p->pos += aot ? 2 : 1;
	skip_ws(p);
	if (parse_key(p, &kp) < 0)
		goto fail;
	if (peek(p) != ']' || (aot && peek_at(p, 1) != ']')) {
		perr(p, here(p), "expected '%s' to close the table header, "
		    "found %s", aot ? "]]" : "]", found(p, what, sizeof(what)));
		goto fail;
	}
	p->pos += aot ? 2 : 1;
	for (size_t s = 0; s + 1 < kp.n; s++) {
		struct keyseg *k = &kp.seg[s];
		struct tbl *st;

		v = tbl_lookup(t, k);
		if (v == NULL) {
			st = tbl_new(t->depth + 1, TF_IMPLICIT, k->pos);
			tbl_insert(t, k, table_value(st, k->pos));
		} else if (v->type == TOML_TABLE) {
			st = tbl_of(v->u.table);
			if (st->pub.flags & TF_INLINE) {
				perr(p, k->pos, "cannot add to inline table "
				    "'%s' (line %d)", SHOW(key, k->s, k->len),
				    st->pub.line);
				goto fail;
			}
		} else if (is_aot(v)) {
			st = tbl_of(v->u.arr.items[v->u.arr.len - 1]->u.table);
		} else {
			not_a_table(p, t, k);
			goto fail;
		}
		t = st;
	}
	/* Intermediates are shallower than the table itself. */
	if (t->depth + (aot ? 2 : 1) > TOML_MAX_DEPTH) {
		perr(p, start, "nesting deeper than %d levels", TOML_MAX_DEPTH);
		goto fail;
	}
	last = &kp.seg[kp.n - 1];
	v = tbl_lookup(t, last);
	if (aot) {
		struct tbl *elt;

		if (v != NULL && !is_aot(v)) {
			perr(p, start, "cannot define [[%s]]: key '%s' is "
			    "already %s (line %d)", show_path(path,
			    sizeof(path), &kp), SHOW(key, last->s, last->len),
			    a_type(v), v->line);
			goto fail;
		}
		if (v == NULL) {
			v = value_new(TOML_ARRAY, start);
			tbl_insert(t, last, v);
		}
		elt = tbl_new(t->depth + 2, TF_AOT | TF_HEADER, start);
		array_push(v, table_value(elt, start));
		t = elt;
	} else if (v == NULL) {
		struct tbl *st = tbl_new(t->depth + 1, TF_HEADER, start);

		tbl_insert(t, last, table_value(st, start));
		t = st;
	} else {
		struct tbl *st = v->type == TOML_TABLE ? tbl_of(v->u.table) :
		    NULL;

		if (st == NULL) {
			perr(p, start, "cannot define table [%s]: key '%s' is "
			    "already %s (line %d)", show_path(path,
			    sizeof(path), &kp), SHOW(key, last->s, last->len),
			    a_type(v), v->line);
			goto fail;
		}
		if (st->pub.flags & (TF_HEADER | TF_DOTTED | TF_INLINE)) {
			perr(p, start, "table [%s] already defined at line %d",
			    show_path(path, sizeof(path), &kp), st->pub.line);
			goto fail;
		}
		st->pub.flags = (st->pub.flags & ~TF_IMPLICIT) | TF_HEADER;
		st->pub.line = start.line;
		st->pub.col = start.col;
		/* The value now starts where the table is defined. */
		v->line = start.line;
		v->col = start.col;
		t = st;
	}
	p->cur = t;
	keypath_release(&kp);
	return 0;
fail:
	keypath_release(&kp);
	return -1;
}

/* What may follow a key/value pair or a header on its line. */
static int
end_of_line(struct parser *p, const char *after)
{
	char what[8];

	skip_ws(p);
	skip_comment(p);
	if (at_end(p))
		return 0;
	if (!is_newline(p))
		return perr(p, here(p), "expected end of line after %s, found "
		    "%s", after, found(p, what, sizeof(what)));
	eat_newline(p);
	return 0;
}

static int
parse_document(struct parser *p)
{
	/* A byte order mark is allowed at the very start. */
	if (match(p, "\xef\xbb\xbf")) {
		p->pos = 3;
		p->line_start = 3;
	}
	for (;;) {
		skip_ws(p);
		skip_comment(p);
		if (at_end(p))
			return 0;
		if (is_newline(p)) {
			eat_newline(p);
			continue;
		}
		if (peek(p) == '[') {
			if (parse_header(p) < 0 ||
			    end_of_line(p, "table header") < 0)
				return -1;
		} else if (parse_keyval(p, p->cur) < 0 ||
		    end_of_line(p, "value") < 0)
			return -1;
	}
}

/* ------------------------------------------------------------------ */
/* Public API */

struct toml_table *
toml_parse(const char *buf, size_t len, struct toml_error *err)
{
	struct parser p = { 0 };
	struct pos origin = { 1, 1 };

	if (err != NULL) {
		err->line = err->col = 0;
		err->msg[0] = '\0';
	}
	p.buf = buf;
	p.len = len;
	p.line = 1;
	p.err = err;
	if (len > INT_MAX) {
		if (err != NULL)
			(void)snprintf(err->msg, sizeof(err->msg), "input "
			    "larger than %d bytes", INT_MAX);
		return NULL;
	}
	if (check_bytes(&p) < 0)
		return NULL;
	p.root = tbl_new(0, TF_HEADER, origin);
	p.cur = p.root;
	sbuf_init(&p.tmp);
	if (parse_document(&p) < 0) {
		free_table(&p.root->pub);
		sbuf_release(&p.tmp);
		return NULL;
	}
	sbuf_release(&p.tmp);
	return &p.root->pub;
}

struct toml_table *
toml_parse_file(const char *path, struct toml_error *err)
{
	struct toml_error dummy;
	struct toml_table *t;
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd;

	if (err == NULL)
		err = &dummy;
	err->line = err->col = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		(void)snprintf(err->msg, sizeof(err->msg), "cannot open: %s",
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		(void)snprintf(err->msg, sizeof(err->msg), "cannot read: %s",
		    strerror(errno));
		close(fd);
		return NULL;
	}

	/* Pipes report 0: the buffer grows as needed. */
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	if (cap > FILE_MAX) {
		(void)snprintf(err->msg, sizeof(err->msg), "file larger than "
		    "%u MiB", FILE_MAX >> 20);
		close(fd);
		return NULL;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= FILE_MAX) {
				(void)snprintf(err->msg, sizeof(err->msg),
				    "file larger than %u MiB", FILE_MAX >> 20);
				goto fail;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			(void)snprintf(err->msg, sizeof(err->msg), "cannot "
			    "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	t = toml_parse(buf, len, err);
	free(buf);
	return t;
fail:
	close(fd);
	free(buf);
	return NULL;
}

void
toml_free(struct toml_table *t)
{
	free_table(t);
}

const struct toml_kv *
toml_get_kv(const struct toml_table *t, const char *key)
{
	ptrdiff_t i;

	if (t == NULL || key == NULL)
		return NULL;
	i = tbl_find(t, key, strlen(key));
	return i < 0 ? NULL : &t->kvs[i];
}

const struct toml_value *
toml_get(const struct toml_table *t, const char *key)
{
	const struct toml_kv *kv = toml_get_kv(t, key);

	return kv == NULL ? NULL : kv->val;
}

const char *
toml_type_name(enum toml_type type)
{
	switch (type) {
	case TOML_STRING: return "string";
	case TOML_INTEGER: return "integer";
	case TOML_FLOAT: return "float";
	case TOML_BOOL: return "boolean";
	case TOML_DATETIME: return "offset date-time";
	case TOML_DATETIME_LOCAL: return "local date-time";
	case TOML_DATE_LOCAL: return "local date";
	case TOML_TIME_LOCAL: return "local time";
	case TOML_ARRAY: return "array";
	case TOML_TABLE: return "table";
	}
	return "unknown";
}

/* ------------------------------------------------------------------ */
/* Writers */

void
toml_write_string(FILE *fp, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	putc('"', fp);
	while (i < len) {
		unsigned char c = u[i];
		size_t n;

		switch (c) {
		case '"': fputs("\\\"", fp); i++; continue;
		case '\\': fputs("\\\\", fp); i++; continue;
		case '\b': fputs("\\b", fp); i++; continue;
		case '\t': fputs("\\t", fp); i++; continue;
		case '\n': fputs("\\n", fp); i++; continue;
		case '\f': fputs("\\f", fp); i++; continue;
		case '\r': fputs("\\r", fp); i++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(fp, "\\u%04X", c);
			i++;
			continue;
		}
		n = utf8_len(u + i, len - i);
		if (n == 0) {
			/* Not UTF-8: TOML cannot say it; U+FFFD instead. */
			fputs("\\uFFFD", fp);
			i++;
			continue;
		}
		fwrite(u + i, 1, n, fp);
		i += n;
	}
	putc('"', fp);
}

void
toml_write_key(FILE *fp, const char *key, size_t len)
{
	bool bare = len > 0;

	for (size_t i = 0; i < len && bare; i++)
		bare = is_bare((unsigned char)key[i]);
	if (bare)
		fwrite(key, 1, len, fp);
	else
		toml_write_string(fp, key, len);
}

static void
write_time(FILE *fp, const struct toml_datetime *dt)
{
	int digits = dt->frac_digits > 9 ? 9 : dt->frac_digits;
	int ns = dt->nanosecond;

	fprintf(fp, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
	if (digits == 0 && ns != 0) {
		/* Not from the parser: as many digits as needed. */
		digits = 9;
		while (ns % 10 == 0) {
			ns /= 10;
			digits--;
		}
		fprintf(fp, ".%0*d", digits, ns);
	} else if (digits > 0) {
		for (int i = digits; i < 9; i++)
			ns /= 10;
		fprintf(fp, ".%0*d", digits, ns);
	}
}

void
toml_write_datetime(FILE *fp, enum toml_type type,
    const struct toml_datetime *dt)
{
	if (type != TOML_TIME_LOCAL)
		fprintf(fp, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
	if (type == TOML_DATE_LOCAL)
		return;
	if (type != TOML_TIME_LOCAL)
		putc('T', fp);
	write_time(fp, dt);
	if (type != TOML_DATETIME)
		return;
	if (dt->offset_z)
		putc('Z', fp);
	else {
		int off = dt->offset_minutes;

		fprintf(fp, "%c%02d:%02d", off < 0 ? '-' : '+',
		    abs(off) / 60, abs(off) % 60);
	}
}

void
toml_write_float(FILE *fp, double d)
{
	char buf[40];

	if (isnan(d)) {
		fputs(signbit(d) ? "-nan" : "nan", fp);
		return;
	}
	if (isinf(d)) {
		fputs(d < 0 ? "-inf" : "inf", fp);
		return;
	}
	/* The shortest of %.15g .. %.17g that reads back the same. */
	for (int prec = 15; prec <= 17; prec++) {
		(void)snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, fp);
	if (strpbrk(buf, ".e") == NULL)
		fputs(".0", fp);
}

void
toml_write_value(FILE *fp, const struct toml_value *v)
{
	switch (v->type) {
	case TOML_STRING:
		toml_write_string(fp, v->u.str.ptr, v->u.str.len);
		break;
	case TOML_INTEGER:
		fprintf(fp, "%" PRId64, v->u.integer);
		break;
	case TOML_FLOAT:
		toml_write_float(fp, v->u.flt);
		break;
	case TOML_BOOL:
		fputs(v->u.boolean ? "true" : "false", fp);
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		toml_write_datetime(fp, v->type, &v->u.dt);
		break;
	case TOML_ARRAY:
		putc('[', fp);
		for (size_t i = 0; i < v->u.arr.len; i++) {
			if (i > 0)
				fputs(", ", fp);
			toml_write_value(fp, v->u.arr.items[i]);
		}
		putc(']', fp);
		break;
	case TOML_TABLE: {
		const struct toml_table *t = v->u.table;

		putc('{', fp);
		for (size_t i = 0; i < t->len; i++) {
			fputs(i > 0 ? ", " : " ", fp);
			toml_write_key(fp, t->kvs[i].key, t->kvs[i].keylen);
			fputs(" = ", fp);
			toml_write_value(fp, t->kvs[i].val);
		}
		fputs(t->len > 0 ? " }" : "}", fp);
		break;
	}
	}
}
