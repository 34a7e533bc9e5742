/*
 * HTTP/1.1 responses, parsed strictly and incrementally; requests written.
 * See http1.h for the contract.  The Docker client speaks to a daemon
 * reached through a tunnel to a machine we do not fully trust: every
 * length from the peer is checked before it is used, and anything that is
 * not plainly HTTP/1.1 is refused.
 *
 * The parser is a state machine over the bytes of one response:
 *
 *   S_HEAD        copy bytes into head_ (bounded) until an empty line;
 *                 then parse the status line and the fields in place.
 *                 1xx other than 101: forget them, stay in S_HEAD.
 *   S_NOBODY      report DONE
 *   S_LENGTH      left_ bytes of body, then DONE
 *   S_CHUNK_SIZE  a chunk-size line (hex, extensions) into line_;
 *                 size 0 leads to S_TRAILER, else S_CHUNK_DATA
 *   S_CHUNK_DATA  left_ bytes of body, then S_CHUNK_CR
 *   S_CHUNK_CR    the CRLF after the chunk's data (linelen_ counts the
 *                 CR seen), then S_CHUNK_SIZE
 *   S_TRAILER     trailer field lines (validated, dropped) until an
 *                 empty line, then DONE
 *   S_CLOSE       body until http1_resp_eof()
 *   S_DONE, S_UPGRADED, S_ERROR: nothing more to parse
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http1.h"
#include "xmalloc.h"

enum {
	S_HEAD = 0,
	S_NOBODY,
	S_LENGTH,
	S_CHUNK_SIZE,
	S_CHUNK_DATA,
	S_CHUNK_CR,
	S_TRAILER,
	S_CLOSE,
	S_DONE,
	S_UPGRADED,
	S_ERROR
};

/* RFC 9110 tchar. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: HTAB, SP, VCHAR, obs-text. */
static int
is_vchar_ws(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int
fail(struct http1_resp *r, int code)
{
	r->state_ = S_ERROR;
	return code;
}

void
http1_resp_init(struct http1_resp *r, size_t max_head, int flags)
{
	memset(r, 0, sizeof(*r));
	r->max_head_ = max_head ? max_head : HTTP1_DEFAULT_MAX_HEAD;
	r->flags_ = flags;
	r->reason = "";
	r->state_ = S_HEAD;
}

void
http1_resp_release(struct http1_resp *r)
{
	if (r == NULL)
		return;
	free(r->head_);
	free(r->headers);
	r->head_ = NULL;
	r->headers = NULL;
	r->nheaders = 0;
	r->headlen_ = r->headcap_ = r->linestart_ = 0;
}

int
http1_resp_have_head(const struct http1_resp *r)
{
	return r->state_ != S_HEAD && r->status != 0;
}

const char *
http1_resp_header(const struct http1_resp *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

/* Does the comma-separated list s hold token (case-insensitive)? */
static int
list_has(const char *s, const char *token)
{
	size_t tl = strlen(token);

	while (*s != '\0') {
		const char *e;
		size_t n;

		while (is_ows((unsigned char)*s) || *s == ',')
			s++;
		e = s;
		while (*e != '\0' && *e != ',')
			e++;
		n = (size_t)(e - s);
		while (n > 0 && is_ows((unsigned char)s[n - 1]))
			n--;
		if (n == tl && strncasecmp(s, token, n) == 0)
			return 1;
		s = e;
	}
	return 0;
}

int
http1_resp_has_token(const struct http1_resp *r, const char *name,
    const char *token)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0 &&
		    list_has(r->headers[i].value, token))
			return 1;
	return 0;
}

/*
 * Cut the next line off [*p, end): NUL-terminate it in place (the LF and an
 * optional CR before it become NULs).  Returns the line, or NULL on a bare
 * CR or a NUL byte inside the line.  The head always ends in LF.
 */
static char *
next_line(char **p, char *end)
{
	char *line = *p, *nl = memchr(line, '\n', (size_t)(end - line));
	size_t n;

	if (nl == NULL)
		return NULL;
	*p = nl + 1;
	*nl = '\0';
	n = (size_t)(nl - line);
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL)
		return NULL;
	return line;
}

/* Parse "name: value" in place; returns 0 or FL_ERR_PROTO. */
static int
parse_field(char *line, const char **name, const char **value)
{
	char *c = line, *v, *e;

	while (is_tchar((unsigned char)*c))
		c++;
	if (c == line || *c != ':')
		return FL_ERR_PROTO;	/* empty name, or space before ':' */
	*c = '\0';
	v = c + 1;
	while (is_ows((unsigned char)*v))
		v++;
	e = v + strlen(v);
	while (e > v && is_ows((unsigned char)e[-1]))
		e--;
	*e = '\0';
	for (const char *q = v; q < e; q++)
		if (!is_vchar_ws((unsigned char)*q))
			return FL_ERR_PROTO;
	*name = line;
	*value = v;
	return 0;
}

/* A decimal length (1*DIGIT), bounded by HTTP1_MAX_LENGTH. */
static int
parse_length(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return FL_ERR_PROTO;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return FL_ERR_PROTO;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > HTTP1_MAX_LENGTH)
			return FL_ERR_TOOBIG;
	}
	*out = v;
	return 0;
}

/*
 * Every Content-Length field (and every element of a comma list in one)
 * must be the same number.  Returns 1 with *out set, 0 when there is none,
 * or a negative error.
 */
static int
content_length(const struct http1_resp *r, uint64_t *out)
{
	int seen = 0;

	for (size_t i = 0; i < r->nheaders; i++) {
		const char *s;

		if (strcasecmp(r->headers[i].name, "Content-Length") != 0)
			continue;
		s = r->headers[i].value;
		for (;;) {
			const char *e = strchr(s, ',');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			uint64_t v;
			int rc;

			while (n > 0 && is_ows((unsigned char)*s)) {
				s++;
				n--;
			}
			while (n > 0 && is_ows((unsigned char)s[n - 1]))
				n--;
			if ((rc = parse_length(s, n, &v)) < 0)
				return rc;
			if (seen && v != *out)
				return FL_ERR_PROTO;
			*out = v;
			seen = 1;
			if (e == NULL)
				break;
			s = e + 1;
		}
	}
	return seen;
}

/*
 * Transfer-Encoding: 1 when it is exactly "chunked" (over all fields,
 * empty list elements ignored), 0 when absent, FL_ERR_PROTO otherwise: we
 * never ask for other codings.
 */
static int
transfer_chunked(const struct http1_resp *r)
{
	int n = 0, present = 0;

	for (size_t i = 0; i < r->nheaders; i++) {
		const char *s;

		if (strcasecmp(r->headers[i].name, "Transfer-Encoding") != 0)
			continue;
		present = 1;
		s = r->headers[i].value;
		while (*s != '\0') {
			const char *e;
			size_t len;

			while (is_ows((unsigned char)*s) || *s == ',')
				s++;
			if (*s == '\0')
				break;
			e = s;
			while (*e != '\0' && *e != ',')
				e++;
			len = (size_t)(e - s);
			while (len > 0 && is_ows((unsigned char)s[len - 1]))
				len--;
			if (len != 7 || strncasecmp(s, "chunked", 7) != 0)
				return FL_ERR_PROTO;
			n++;
			s = e;
		}
	}
	if (!present)
		return 0;
	return n == 1 ? 1 : FL_ERR_PROTO;
}

/* Parse the complete head in head_[0, headlen_).  Sets the public fields. */
static int
parse_head(struct http1_resp *r)
{
	char *p = r->head_, *end = r->head_ + r->headlen_, *line;
	size_t nlines = 0;
	const char *s;

	for (const char *q = p; q < end; q++)
		if (*q == '\n')
			nlines++;
	/* Status line, fields, empty line. */
	if (nlines < 2 || nlines - 2 > HTTP1_MAX_HEADERS)
		return nlines < 2 ? FL_ERR_PROTO : FL_ERR_TOOBIG;

	if ((line = next_line(&p, end)) == NULL)
		return FL_ERR_PROTO;
	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (strncmp(line, "HTTP/1.", 7) != 0 ||
	    (line[7] != '0' && line[7] != '1') || line[8] != ' ')
		return FL_ERR_PROTO;
	r->minor = line[7] - '0';
	s = line + 9;
	if (s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
	    s[2] < '0' || s[2] > '9' || (s[3] != '\0' && s[3] != ' '))
		return FL_ERR_PROTO;
	r->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	r->reason = s[3] == ' ' ? s + 4 : "";
	for (const char *q = r->reason; *q != '\0'; q++)
		if (!is_vchar_ws((unsigned char)*q))
			return FL_ERR_PROTO;

	free(r->headers);
	r->headers = NULL;
	r->nheaders = 0;
	if (nlines > 2)
		r->headers = xcalloc(nlines - 2, sizeof(*r->headers));
	while ((line = next_line(&p, end)) != NULL && *line != '\0') {
		struct http1_header *h = &r->headers[r->nheaders];

		if (r->nheaders >= nlines - 2)
			return FL_ERR_INTERNAL;
		if (parse_field(line, &h->name, &h->value) < 0)
			return FL_ERR_PROTO;	/* also obs-fold */
		r->nheaders++;
	}
	if (line == NULL || p != end)
		return FL_ERR_PROTO;
	return 0;
}

/* After a final head: choose the framing and the next state. */
static int
choose_framing(struct http1_resp *r)
{
	uint64_t cl = 0;
	int chunked, has_cl;

	r->keepalive = 0;
	if (r->status == 101) {
		r->framing = HTTP1_FRAMING_NONE;
		r->state_ = S_UPGRADED;
		return 0;
	}
	if ((r->flags_ & HTTP1_HEAD_REQUEST) || r->status == 204 ||
	    r->status == 304) {
		r->framing = HTTP1_FRAMING_NONE;
		r->state_ = S_NOBODY;
	} else {
		if ((chunked = transfer_chunked(r)) < 0)
			return chunked;
		if ((has_cl = content_length(r, &cl)) < 0)
			return has_cl;
		if (chunked && has_cl)
			return FL_ERR_PROTO;	/* request smuggling's signature */
		if (chunked) {
			r->framing = HTTP1_FRAMING_CHUNKED;
			r->state_ = S_CHUNK_SIZE;
			r->linelen_ = 0;
		} else if (has_cl) {
			r->content_length = cl;
			r->framing = cl ? HTTP1_FRAMING_LENGTH :
			    HTTP1_FRAMING_NONE;
			r->left_ = cl;
			r->state_ = cl ? S_LENGTH : S_NOBODY;
		} else {
			r->framing = HTTP1_FRAMING_CLOSE;
			r->state_ = S_CLOSE;
		}
	}
	if (r->framing != HTTP1_FRAMING_CLOSE)
		r->keepalive = r->minor == 1 ?
		    !http1_resp_has_token(r, "Connection", "close") :
		    http1_resp_has_token(r, "Connection", "keep-alive");
	return 0;
}

/* Accumulate head bytes; report HEAD/UPGRADE when the empty line comes. */
static int
feed_head(struct http1_resp *r, const char *buf, size_t len, size_t *used,
    struct http1_event *ev)
{
	size_t i = 0;
	int rc;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) + 1 : len - i;
		size_t linelen;

		if (n > r->max_head_ - r->headlen_)
			return fail(r, FL_ERR_TOOBIG);
		if (r->headlen_ + n + 1 > r->headcap_) {
			size_t cap = r->headcap_ ? r->headcap_ : 1024;

			while (cap < r->headlen_ + n + 1)
				cap *= 2;
			if (cap > r->max_head_ + 1)
				cap = r->max_head_ + 1;
			r->head_ = xreallocarray(r->head_, cap, 1);
			r->headcap_ = cap;
		}
		memcpy(r->head_ + r->headlen_, buf + i, n);
		r->headlen_ += n;
		i += n;
		if (nl == NULL)
			break;
		linelen = r->headlen_ - r->linestart_;
		if (linelen > 2 || (linelen == 2 &&
		    r->head_[r->linestart_] != '\r')) {
			r->linestart_ = r->headlen_;
			continue;
		}
		/* An empty line: the head is complete. */
		r->head_[r->headlen_] = '\0';
		if ((rc = parse_head(r)) < 0)
			return fail(r, rc);
		if (r->status >= 100 && r->status < 200 && r->status != 101) {
			if (++r->interim_ > HTTP1_MAX_INTERIM)
				return fail(r, FL_ERR_PROTO);
			free(r->headers);
			r->headers = NULL;
			r->nheaders = 0;
			r->status = 0;
			r->reason = "";
			r->headlen_ = r->linestart_ = 0;
			continue;
		}
		if ((rc = choose_framing(r)) < 0)
			return fail(r, rc);
		*used = i;
		ev->type = r->state_ == S_UPGRADED ? HTTP1_EV_UPGRADE :
		    HTTP1_EV_HEAD;
		return 0;
	}
	*used = i;
	return 0;
}

/*
 * Collect one line into line_ (bounded); returns 1 with the line
 * NUL-terminated (CRLF or LF removed) in line_, 0 when more input is
 * needed, or a negative error.  *used is advanced.
 */
static int
collect_line(struct http1_resp *r, const char *buf, size_t len, size_t *used)
{
	const char *nl = memchr(buf, '\n', len);
	size_t n = nl ? (size_t)(nl - buf) + 1 : len;

	if (n > sizeof(r->line_) - 1 - r->linelen_)
		return FL_ERR_TOOBIG;
	memcpy(r->line_ + r->linelen_, buf, n);
	r->linelen_ += n;
	*used += n;
	if (nl == NULL)
		return 0;
	n = r->linelen_ - 1;		/* drop LF */
	if (n > 0 && r->line_[n - 1] == '\r')
		n--;
	r->line_[n] = '\0';
	r->linelen_ = 0;
	if (memchr(r->line_, '\r', n) != NULL || memchr(r->line_, '\0', n))
		return FL_ERR_PROTO;
	return 1;
}

/* quoted-string at *p (RFC 9110 5.6.4); advances *p past it. */
static int
skip_quoted(const char **p)
{
	const unsigned char *s = (const unsigned char *)*p;

	if (*s++ != '"')
		return FL_ERR_PROTO;
	for (;;) {
		if (*s == '"') {
			*p = (const char *)s + 1;
			return 0;
		}
		if (*s == '\\') {
			s++;
			if (!is_vchar_ws(*s))
				return FL_ERR_PROTO;
			s++;
			continue;
		}
		if (*s == '\0' || !is_vchar_ws(*s))
			return FL_ERR_PROTO;
		s++;
	}
}

/* chunk-size [chunk-ext]; RFC 9112 7.1.1, with BWS. */
static int
parse_chunk_size(const char *line, uint64_t *size)
{
	const char *p = line;
	uint64_t v = 0;
	int digits = 0;

	for (;; p++, digits++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (v > (HTTP1_MAX_LENGTH >> 4))
			return FL_ERR_TOOBIG;
		v = v * 16 + (uint64_t)d;
	}
	if (digits == 0)
		return FL_ERR_PROTO;
	for (;;) {
		while (is_ows((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		if (*p++ != ';')
			return FL_ERR_PROTO;
		while (is_ows((unsigned char)*p))
			p++;
		if (!is_tchar((unsigned char)*p))
			return FL_ERR_PROTO;
		while (is_tchar((unsigned char)*p))
			p++;
		while (is_ows((unsigned char)*p))
			p++;
		if (*p != '=')
			continue;
		p++;
		while (is_ows((unsigned char)*p))
			p++;
		if (*p == '"') {
			if (skip_quoted(&p) < 0)
				return FL_ERR_PROTO;
		} else {
			if (!is_tchar((unsigned char)*p))
				return FL_ERR_PROTO;
			while (is_tchar((unsigned char)*p))
				p++;
		}
	}
	*size = v;
	return 0;
}

int
http1_resp_feed(struct http1_resp *r, const char *buf, size_t len,
    size_t *used, struct http1_event *ev)
{
	size_t n;
	int rc;

	*used = 0;
	ev->type = HTTP1_EV_NONE;
	ev->data = NULL;
	ev->len = 0;

	for (;;) {
		switch (r->state_) {
		case S_HEAD:
			if ((rc = feed_head(r, buf, len, used, ev)) < 0)
				return rc;
			return 0;
		case S_NOBODY:
			r->state_ = S_DONE;
			ev->type = HTTP1_EV_DONE;
			return 0;
		case S_LENGTH:
			if (r->left_ == 0) {
				r->state_ = S_DONE;
				ev->type = HTTP1_EV_DONE;
				return 0;
			}
			if (*used == len)
				return 0;
			n = len - *used;
			if (n > r->left_)
				n = (size_t)r->left_;
			ev->type = HTTP1_EV_BODY;
			ev->data = buf + *used;
			ev->len = n;
			r->left_ -= n;
			*used += n;
			return 0;
		case S_CHUNK_SIZE: {
			uint64_t size;

			if (*used == len)
				return 0;
			rc = collect_line(r, buf + *used, len - *used, used);
			if (rc < 0)
				return fail(r, rc);
			if (rc == 0)
				return 0;
			if ((rc = parse_chunk_size(r->line_, &size)) < 0)
				return fail(r, rc);
			if (size == 0) {
				r->state_ = S_TRAILER;
				r->left_ = 0;	/* trailer bytes so far */
			} else {
				r->state_ = S_CHUNK_DATA;
				r->left_ = size;
			}
			continue;
		}
		case S_CHUNK_DATA:
			if (*used == len)
				return 0;
			n = len - *used;
			if (n > r->left_)
				n = (size_t)r->left_;
			ev->type = HTTP1_EV_BODY;
			ev->data = buf + *used;
			ev->len = n;
			r->left_ -= n;
			*used += n;
			if (r->left_ == 0) {
				r->state_ = S_CHUNK_CR;
				r->linelen_ = 0;
			}
			return 0;
		case S_CHUNK_CR:
			if (*used == len)
				return 0;
			if (buf[*used] == '\r' && r->linelen_ == 0) {
				r->linelen_ = 1;
				(*used)++;
				continue;
			}
			if (buf[*used] != '\n')
				return fail(r, FL_ERR_PROTO);
			(*used)++;
			r->linelen_ = 0;
			r->state_ = S_CHUNK_SIZE;
			continue;
		case S_TRAILER: {
			size_t before = *used;
			const char *name, *value;

			if (*used == len)
				return 0;
			rc = collect_line(r, buf + *used, len - *used, used);
			if (rc < 0)
				return fail(r, rc);
			r->left_ += *used - before;
			if (r->left_ > r->max_head_)
				return fail(r, FL_ERR_TOOBIG);
			if (rc == 0)
				return 0;
			if (r->line_[0] == '\0') {
				r->state_ = S_DONE;
				ev->type = HTTP1_EV_DONE;
				return 0;
			}
			if (parse_field(r->line_, &name, &value) < 0)
				return fail(r, FL_ERR_PROTO);
			continue;
		}
		case S_CLOSE:
			if (*used == len)
				return 0;
			ev->type = HTTP1_EV_BODY;
			ev->data = buf + *used;
			ev->len = len - *used;
			*used = len;
			return 0;
		default:
			return FL_ERR_INVAL;
		}
	}
}

int
http1_resp_eof(struct http1_resp *r, struct http1_event *ev)
{
	ev->type = HTTP1_EV_NONE;
	ev->data = NULL;
	ev->len = 0;
	switch (r->state_) {
	case S_CLOSE:
		r->state_ = S_DONE;
		ev->type = HTTP1_EV_DONE;
		return 0;
	case S_NOBODY:
		/* The head was complete and nothing else was due. */
		r->state_ = S_DONE;
		ev->type = HTTP1_EV_DONE;
		return 0;
	case S_LENGTH:
		if (r->left_ == 0) {
			r->state_ = S_DONE;
			ev->type = HTTP1_EV_DONE;
			return 0;
		}
		return fail(r, FL_ERR_CLOSED);
	case S_DONE:
	case S_UPGRADED:
	case S_ERROR:
		return FL_ERR_INVAL;
	default:
		return fail(r, FL_ERR_CLOSED);
	}
}

static int
valid_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

static int
valid_value(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

int
http1_write_request(struct sbuf *out, const char *method, const char *target,
    const char *host, const struct http1_header *hdrs, size_t nhdrs,
    int64_t content_length)
{
	if (!valid_token(method) || target[0] != '/' || !valid_value(host) ||
	    strchr(host, ' ') != NULL)
		return FL_ERR_INVAL;
	for (const unsigned char *t = (const unsigned char *)target; *t; t++)
		if (*t <= 0x20 || *t == 0x7f)
			return FL_ERR_INVAL;
	for (size_t i = 0; i < nhdrs; i++)
		if (!valid_token(hdrs[i].name) || !valid_value(hdrs[i].value))
			return FL_ERR_INVAL;

	sbuf_addf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host);
	for (size_t i = 0; i < nhdrs; i++) {
		sbuf_adds(out, hdrs[i].name);
		sbuf_add(out, ": ", 2);
		sbuf_adds(out, hdrs[i].value);
		sbuf_add(out, "\r\n", 2);
	}
	if (content_length >= 0)
		sbuf_addf(out, "Content-Length: %lld\r\n",
		    (long long)content_length);
	sbuf_add(out, "\r\n", 2);
	return 0;
}
