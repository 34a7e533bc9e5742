/*
 * The job trace's masker (see jobmask.h).  Why it is its own module: the
 * masking must hold across arbitrary write boundaries of hundreds of MB of
 * container output, and that is easiest to get right, and to fuzz, as a
 * pure filter with no I/O.
 *
 * Layer 1 (phrases) is one Aho-Corasick automaton over all phrases, as a
 * full transition table over byte classes (bytes that occur in no phrase
 * share class 0, which always leads back to the root).  The automaton's
 * state depth d is the length of the longest suffix of the stream that is
 * a prefix of some phrase; no occurrence still to be completed can start
 * before the last d bytes, so everything older is decided.  A write is
 * run through the automaton first (one table look-up per byte; when a
 * phrase ends, the longest one ending there adds a run of covered bytes,
 * merged with the runs it overlaps or touches); then everything but the
 * last d bytes is released, in bulk: plain spans as they are, each run as
 * one "[MASKED]".  The last d bytes are copied aside for the next write.
 *
 * Layers 2 and 3 share one small scanner: a few literal patterns ("?name="
 * and "&name=", or token prefixes), each followed by a value of a byte
 * class.  A pattern being matched is held (a few bytes); once complete it
 * is emitted as is, "[MASKED]" follows on the value's first byte, and the
 * value's bytes are dropped as they come until a byte outside the class.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobmask.h"
#include "xmalloc.h"

/* The URL query parameters whose values are masked (urlsanitizer). */
static const char *const url_params[] = {
	"private_token", "authenticity_token", "rss_token",
	"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
};

/* GitLab's default token prefixes, in GitLab's order; glpat- always. */
static const char *const default_prefixes[] = {
	"glpat-", "gloas-", "gldt-", "glrt-", "glcbt-", "glrtr-", "glptt-",
	"glft-", "glimt-", "glagent-", "glsoat-", "glffct-",
	"_gitlab_session=", "gltok-",
};

/* A run of covered bytes, [s, e) in stream positions. */
struct cover {
	uint64_t s, e;
};

/* Layer 1: the phrase automaton and its held bytes. */
struct phrases {
	size_t nclass;
	size_t nstates;
	uint16_t cls[256];
	uint32_t *delta;	/* nstates * nclass */
	uint32_t *depth;
	uint32_t *outlen;	/* longest phrase ending in this state */
	size_t maxlen;
	uint32_t state;
	uint64_t fed;		/* stream position of the next byte */
	uint64_t done;		/* stream position released up to */
	unsigned char *hold;	/* the bytes of [done, fed) */
	size_t hlen, cap;
	struct cover *cov;	/* pending runs, ordered, disjoint */
	size_t ncov, capcov;
	int prev_covered;	/* the last byte released was covered */
};

/* Layers 2 and 3: literal patterns, each followed by a masked value. */
struct scan {
	char **pat;
	size_t *plen;
	size_t npat;
	size_t maxlen;
	int ci;			/* patterns match regardless of case */
	uint8_t first[256];	/* byte can start a pattern */
	uint8_t pair[256][32];	/* bit set: these two bytes can start one */
	uint8_t value[256];	/* byte belongs to a value */
	unsigned char *hold;	/* a pattern's prefix seen so far */
	size_t hlen;
	int masking;		/* inside a value */
	int emitted;		/* its "[MASKED]" is out */
};

struct jobmask {
	struct phrases *ph;	/* NULL: no phrases */
	struct scan url;
	struct scan tok;
	struct sbuf t1, t2;	/* between the layers */
};

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	    c == '\r';
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static void
wipe_sbuf(struct sbuf *sb)
{
	if (sb->buf != NULL)
		explicit_bzero(sb->buf, sb->cap);
	sbuf_release(sb);
}

/* ------------------------------------------------------------------ */
/* Layer 1: phrases                                                     */

static int
cmp_len_desc(const void *a, const void *b)
{
	const struct { const char *p; size_t n; } *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return memcmp(x->p, y->p, x->n);
}

/*
 * The automaton for the trimmed, non-empty, distinct phrases; NULL if
 * there are none.
 */
static struct phrases *
phrases_new(const char *const *in, size_t n)
{
	struct { const char *p; size_t n; } *v;
	struct phrases *ph;
	size_t nv = 0, total = 0, i, k, nc, q_head = 0, q_tail = 0;
	uint32_t *fail, *queue, s;

	v = xcalloc(n ? n : 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		const char *p = in[i];
		size_t len;

		if (p == NULL)
			continue;
		len = strlen(p);
		while (len > 0 && is_space((unsigned char)p[0])) {
			p++;
			len--;
		}
		while (len > 0 && is_space((unsigned char)p[len - 1]))
			len--;
		if (len == 0)
			continue;
		v[nv].p = p;
		v[nv].n = len;
		nv++;
	}
	/* Longest first, duplicates next to each other. */
	qsort(v, nv, sizeof(*v), cmp_len_desc);
	for (i = 0, k = 0; i < nv; i++) {
		if (k > 0 && v[k - 1].n == v[i].n &&
		    memcmp(v[k - 1].p, v[i].p, v[i].n) == 0)
			continue;
		v[k++] = v[i];
		total += v[i].n;
	}
	nv = k;
	if (nv == 0) {
		free(v);
		return NULL;
	}

	ph = xcalloc(1, sizeof(*ph));
	ph->maxlen = v[0].n;
	nc = 1;
	for (i = 0; i < nv; i++) {
		for (k = 0; k < v[i].n; k++) {
			unsigned char b = (unsigned char)v[i].p[k];

			if (ph->cls[b] == 0)
				ph->cls[b] = (uint16_t)nc++;
		}
	}
	ph->nclass = nc;
	ph->delta = xcalloc((total + 1) * nc, sizeof(uint32_t));
	ph->depth = xcalloc(total + 1, sizeof(uint32_t));
	ph->outlen = xcalloc(total + 1, sizeof(uint32_t));
	fail = xcalloc(total + 1, sizeof(uint32_t));
	queue = xcalloc(total + 1, sizeof(uint32_t));

	/* The trie: 0 is "no child" while building (the root is no one's
	 * child). */
	ph->nstates = 1;
	for (i = 0; i < nv; i++) {
		s = 0;
		for (k = 0; k < v[i].n; k++) {
			size_t c = ph->cls[(unsigned char)v[i].p[k]];
			uint32_t *t = &ph->delta[s * nc + c];

			if (*t == 0) {
				*t = (uint32_t)ph->nstates++;
				ph->depth[*t] = ph->depth[s] + 1;
			}
			s = *t;
		}
		ph->outlen[s] = (uint32_t)v[i].n;
	}
	free(v);

	/* Failure links breadth first; missing transitions borrowed from
	 * the failure state, whose row is complete by then. */
	for (k = 1; k < nc; k++) {
		uint32_t ch = ph->delta[k];

		if (ch != 0) {
			fail[ch] = 0;
			queue[q_tail++] = ch;
		}
	}
	while (q_head < q_tail) {
		s = queue[q_head++];
		if (ph->outlen[s] == 0)
			ph->outlen[s] = ph->outlen[fail[s]];
		for (k = 1; k < nc; k++) {
			uint32_t *t = &ph->delta[(size_t)s * nc + k];
			uint32_t via = ph->delta[(size_t)fail[s] * nc + k];

			if (*t != 0) {
				fail[*t] = via;
				queue[q_tail++] = *t;
			} else {
				*t = via;
			}
		}
	}
	free(fail);
	free(queue);
	ph->cap = ph->maxlen + 1;
	ph->hold = xmalloc(ph->cap);
	return ph;
}

static void
phrases_free(struct phrases *ph)
{
	if (ph == NULL)
		return;
	/* The table spells the phrases out. */
	freezero(ph->delta, ph->nstates * ph->nclass * sizeof(uint32_t));
	freezero(ph->hold, ph->cap);
	free(ph->cov);
	free(ph->depth);
	free(ph->outlen);
	freezero(ph, sizeof(*ph));
}

/* Append the plain bytes of stream positions [x, y) (held or in p). */
static void
phrases_plain(struct phrases *ph, const unsigned char *p, uint64_t base,
    uint64_t x, uint64_t y, struct sbuf *out)
{
	if (x >= y)
		return;
	if (x < base) {
		uint64_t hs = base - ph->hlen;
		uint64_t to = y < base ? y : base;

		sbuf_add(out, ph->hold + (x - hs), (size_t)(to - x));
		x = to;
	}
	if (x < y)
		sbuf_add(out, p + (x - base), (size_t)(y - x));
	ph->prev_covered = 0;
}

/*
 * Release stream positions [done, a): plain bytes as they are, each run
 * of covered bytes as one "[MASKED]".  p holds positions [base, fed).
 */
static void
phrases_release(struct phrases *ph, const unsigned char *p, uint64_t base,
    uint64_t a, struct sbuf *out)
{
	size_t k = 0;

	while (k < ph->ncov && ph->cov[k].s < a) {
		struct cover *c = &ph->cov[k];

		phrases_plain(ph, p, base, ph->done, c->s, out);
		if (!(ph->prev_covered && c->s == ph->done))
			sbuf_add(out, JOBMASK_TEXT, sizeof(JOBMASK_TEXT) - 1);
		ph->prev_covered = 1;
		if (c->e > a) {
			c->s = a;	/* goes on: no second token */
			ph->done = a;
			break;
		}
		ph->done = c->e;
		k++;
	}
	if (k > 0) {
		memmove(ph->cov, ph->cov + k, (ph->ncov - k) * sizeof(*ph->cov));
		ph->ncov -= k;
	}
	if (ph->done < a) {
		phrases_plain(ph, p, base, ph->done, a, out);
		ph->done = a;
	}
}

/* A phrase occurrence covers [s, e): merge it into the pending runs. */
static void
phrases_cover(struct phrases *ph, uint64_t s, uint64_t e)
{
	while (ph->ncov > 0 && ph->cov[ph->ncov - 1].e >= s) {
		if (ph->cov[ph->ncov - 1].s < s)
			s = ph->cov[ph->ncov - 1].s;
		if (ph->cov[ph->ncov - 1].e > e)
			e = ph->cov[ph->ncov - 1].e;
		ph->ncov--;
	}
	if (ph->ncov == ph->capcov) {
		ph->capcov = ph->capcov ? 2 * ph->capcov : 16;
		ph->cov = xreallocarray(ph->cov, ph->capcov, sizeof(*ph->cov));
	}
	ph->cov[ph->ncov].s = s;
	ph->cov[ph->ncov].e = e;
	ph->ncov++;
}

/*
 * The automaton runs over the whole write first (a table look-up per
 * byte; an occurrence adds a run); then everything older than the last
 * depth(state) bytes is released, and those are kept for the next write.
 */
static void
phrases_feed(struct phrases *ph, const unsigned char *p, size_t len,
    struct sbuf *out)
{
	const size_t nc = ph->nclass;
	const uint32_t *delta = ph->delta, *outlen = ph->outlen;
	const uint16_t *cls = ph->cls;
	uint64_t base = ph->fed, a;
	uint32_t st = ph->state;
	size_t i, keep;

	for (i = 0; i < len; i++) {
		st = delta[(size_t)st * nc + cls[p[i]]];
		if (outlen[st] != 0)
			phrases_cover(ph, base + i + 1 - outlen[st],
			    base + i + 1);
	}
	ph->state = st;
	ph->fed = base + len;
	a = ph->fed - ph->depth[st];
	phrases_release(ph, p, base, a, out);

	/* Keep [a, fed): the end of the old hold, then of p. */
	keep = (size_t)(ph->fed - a);
	if (a < base) {
		size_t from_hold = (size_t)(base - a);

		memmove(ph->hold, ph->hold + (ph->hlen - from_hold),
		    from_hold);
		memcpy(ph->hold + from_hold, p, len);
	} else {
		memcpy(ph->hold, p + (a - base), keep);
	}
	if (ph->hlen > keep)
		explicit_bzero(ph->hold + keep, ph->hlen - keep);
	ph->hlen = keep;
}

static void
phrases_flush(struct phrases *ph, struct sbuf *out)
{
	phrases_release(ph, NULL, ph->fed, ph->fed, out);
	explicit_bzero(ph->hold, ph->hlen);
	ph->hlen = 0;
	ph->ncov = 0;
	ph->state = 0;
	ph->prev_covered = 0;
}

/* ------------------------------------------------------------------ */
/* Layers 2 and 3: patterns followed by values                          */

static void
scan_add(struct scan *s, const char *pat, size_t len)
{
	size_t i;

	s->pat = xreallocarray(s->pat, s->npat + 1, sizeof(*s->pat));
	s->plen = xreallocarray(s->plen, s->npat + 1, sizeof(*s->plen));
	s->pat[s->npat] = xstrndup(pat, len);
	if (s->ci)
		for (i = 0; i < len; i++)
			s->pat[s->npat][i] = (char)lower((unsigned char)pat[i]);
	s->plen[s->npat] = len;
	s->npat++;
	if (len > s->maxlen)
		s->maxlen = len;
	for (i = 0; i < 256; i++) {
		unsigned char a = (unsigned char)i, b;
		size_t j;

		if ((s->ci ? lower(a) : a) != (unsigned char)s->pat[s->npat - 1][0])
			continue;
		s->first[a] = 1;
		for (j = 0; j < 256; j++) {
			b = (unsigned char)j;
			if (len == 1 || (s->ci ? lower(b) : b) ==
			    (unsigned char)s->pat[s->npat - 1][1])
				s->pair[a][b >> 3] |= (uint8_t)(1u << (b & 7));
		}
	}
}

static void
scan_ready(struct scan *s)
{
	s->hold = xmalloc(s->maxlen + 1);
}

static void
scan_release(struct scan *s)
{
	size_t i;

	for (i = 0; i < s->npat; i++)
		free(s->pat[i]);
	free(s->pat);
	free(s->plen);
	freezero(s->hold, s->maxlen + 1);
}

/* 2: the held bytes are a whole pattern; 1: a proper prefix of one; 0. */
static int
scan_match(const struct scan *s)
{
	int best = 0;
	size_t i, k;

	for (i = 0; i < s->npat; i++) {
		if (s->plen[i] < s->hlen)
			continue;
		for (k = 0; k < s->hlen; k++) {
			unsigned char c = s->hold[k];

			if ((s->ci ? lower(c) : c) != (unsigned char)s->pat[i][k])
				break;
		}
		if (k < s->hlen)
			continue;
		if (s->plen[i] == s->hlen)
			return 2;
		best = 1;
	}
	return best;
}

/* After a byte joined the held ones: emit what cannot start a pattern. */
static void
scan_settle(struct scan *s, struct sbuf *out)
{
	for (;;) {
		switch (scan_match(s)) {
		case 2:
			sbuf_add(out, s->hold, s->hlen);
			s->hlen = 0;
			s->masking = 1;
			s->emitted = 0;
			return;
		case 1:
			return;
		default:
			sbuf_add(out, s->hold, 1);
			memmove(s->hold, s->hold + 1, --s->hlen);
			if (s->hlen == 0)
				return;
		}
	}
}

static void
scan_feed(struct scan *s, const unsigned char *p, size_t len,
    struct sbuf *out)
{
	size_t i = 0, j;

	while (i < len) {
		if (s->masking) {
			if (s->value[p[i]]) {
				if (!s->emitted)
					sbuf_add(out, JOBMASK_TEXT,
					    sizeof(JOBMASK_TEXT) - 1);
				s->emitted = 1;
				while (i < len && s->value[p[i]])
					i++;
				continue;
			}
			s->masking = 0;
		}
		if (s->hlen == 0) {
			/* Bytes that cannot start a pattern, or whose next
			 * byte rules it out, go out in bulk. */
			for (j = i; j < len; j++) {
				if (!s->first[p[j]])
					continue;
				if (j + 1 < len && !(s->pair[p[j]][p[j + 1] >> 3] &
				    (1u << (p[j + 1] & 7))))
					continue;
				break;
			}
			if (j > i) {
				sbuf_add(out, p + i, j - i);
				i = j;
				continue;
			}
		}
		s->hold[s->hlen++] = p[i++];
		scan_settle(s, out);
	}
}

static void
scan_flush(struct scan *s, struct sbuf *out)
{
	sbuf_add(out, s->hold, s->hlen);
	explicit_bzero(s->hold, s->hlen);
	s->hlen = 0;
	s->masking = 0;
	s->emitted = 0;
}

/* ------------------------------------------------------------------ */

struct jobmask *
jobmask_new(const char *const *phrases, size_t n,
    const char *const *prefixes, size_t nprefixes, int all_default_tokens)
{
	struct jobmask *m = xcalloc(1, sizeof(*m));
	size_t i, k, c;

	m->ph = phrases_new(phrases, n);
	sbuf_init(&m->t1);
	sbuf_init(&m->t2);

	m->url.ci = 1;
	for (i = 0; i < sizeof(url_params) / sizeof(url_params[0]); i++) {
		char *q = xasprintf("?%s=", url_params[i]);
		char *a = xasprintf("&%s=", url_params[i]);

		scan_add(&m->url, q, strlen(q));
		scan_add(&m->url, a, strlen(a));
		free(q);
		free(a);
	}
	for (c = 0; c < 256; c++)
		m->url.value[c] = !(c <= 0x20 || c == 0x7f || c == '&' ||
		    c == '#' || c == '"' || c == '\'' || c == '<' || c == '>' ||
		    c == '`');
	scan_ready(&m->url);

	for (i = 0; i < (all_default_tokens ?
	    sizeof(default_prefixes) / sizeof(default_prefixes[0]) : 1); i++)
		scan_add(&m->tok, default_prefixes[i],
		    strlen(default_prefixes[i]));
	for (i = 0; i < nprefixes && m->tok.npat < JOBMASK_MAX_PREFIXES;
	    i++) {
		const char *p = prefixes[i];

		if (p == NULL || *p == '\0')
			continue;
		for (k = 0; k < m->tok.npat; k++)
			if (strcmp(m->tok.pat[k], p) == 0)
				break;
		if (k == m->tok.npat)
			scan_add(&m->tok, p, strlen(p));
	}
	for (c = 0; c < 256; c++)
		m->tok.value[c] = (c >= '0' && c <= '9') ||
		    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    c == '-' || c == '.' || c == '_' || c == '=';
	scan_ready(&m->tok);
	return m;
}

void
jobmask_write(struct jobmask *m, const void *data, size_t len,
    struct sbuf *out)
{
	const unsigned char *p = data;

	if (len == 0)
		return;
	sbuf_reset(&m->t2);
	if (m->ph != NULL) {
		sbuf_reset(&m->t1);
		phrases_feed(m->ph, p, len, &m->t1);
		scan_feed(&m->url, (const unsigned char *)m->t1.buf,
		    m->t1.len, &m->t2);
	} else {
		scan_feed(&m->url, p, len, &m->t2);
	}
	scan_feed(&m->tok, (const unsigned char *)m->t2.buf, m->t2.len, out);
}

void
jobmask_flush(struct jobmask *m, struct sbuf *out)
{
	sbuf_reset(&m->t1);
	sbuf_reset(&m->t2);
	if (m->ph != NULL)
		phrases_flush(m->ph, &m->t1);
	scan_feed(&m->url, (const unsigned char *)m->t1.buf, m->t1.len,
	    &m->t2);
	scan_flush(&m->url, &m->t2);
	scan_feed(&m->tok, (const unsigned char *)m->t2.buf, m->t2.len, out);
	scan_flush(&m->tok, out);
}

size_t
jobmask_held(const struct jobmask *m)
{
	return (m->ph != NULL ? m->ph->hlen : 0) + m->url.hlen + m->tok.hlen;
}

const char *const *
jobmask_prefixes(const struct jobmask *m, size_t *n)
{
	*n = m->tok.npat;
	return (const char *const *)m->tok.pat;
}

void
jobmask_free(struct jobmask *m)
{
	if (m == NULL)
		return;
	phrases_free(m->ph);
	scan_release(&m->url);
	scan_release(&m->tok);
	wipe_sbuf(&m->t1);
	wipe_sbuf(&m->t2);
	free(m);
}
