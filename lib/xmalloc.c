/* Allocation wrappers and the sbuf string buffer (see xmalloc.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"

static void
oom(size_t n)
{
	char msg[96];
	int len = snprintf(msg, sizeof(msg),
	    "fatal: out of memory allocating %zu bytes\n", n);

	if (len > 0)
		(void)!write(STDERR_FILENO, msg, (size_t)len);
	_exit(2);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	void *q;

	if (size != 0 && nmemb > SIZE_MAX / size)
		oom(SIZE_MAX);
	q = realloc(p, (nmemb * size) != 0 ? nmemb * size : 1);
	if (q == NULL)
		oom(nmemb * size);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;
	size_t len = strnlen(s, n);

	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom(0);
	va_end(ap);
	return s;
}

void
freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

void
freezero_str(char *s)
{
	if (s == NULL)
		return;
	freezero(s, strlen(s));
}

void
sbuf_init(struct sbuf *sb)
{
	sb->cap = 64;
	sb->len = 0;
	sb->buf = xmalloc(sb->cap);
	sb->buf[0] = '\0';
}

void
sbuf_release(struct sbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

char *
sbuf_detach(struct sbuf *sb, size_t *lenp)
{
	char *s = sb->buf;

	if (lenp != NULL)
		*lenp = sb->len;
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return s;
}

static void
sbuf_grow(struct sbuf *sb, size_t extra)
{
	size_t want;

	if (sb->buf == NULL)
		sbuf_init(sb);
	if (extra > SIZE_MAX - sb->len - 1)
		oom(SIZE_MAX);
	want = sb->len + extra + 1;
	if (want <= sb->cap)
		return;
	while (sb->cap < want)
		sb->cap = sb->cap > SIZE_MAX / 2 ? want : sb->cap * 2;
	sb->buf = xreallocarray(sb->buf, sb->cap, 1);
}

void
sbuf_add(struct sbuf *sb, const void *data, size_t n)
{
	sbuf_grow(sb, n);
	if (n > 0)
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void
sbuf_addch(struct sbuf *sb, int c)
{
	char ch = (char)c;

	sbuf_add(sb, &ch, 1);
}

void
sbuf_adds(struct sbuf *sb, const char *s)
{
	sbuf_add(sb, s, strlen(s));
}

void
sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	sbuf_grow(sb, 64);
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if ((size_t)n >= sb->cap - sb->len) {
		sbuf_grow(sb, (size_t)n);
		n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
		if (n < 0)
			return;
	}
	sb->len += (size_t)n;
}

void
sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void
sbuf_reset(struct sbuf *sb)
{
	if (sb->buf == NULL) {
		sbuf_init(sb);
		return;
	}
	sb->len = 0;
	sb->buf[0] = '\0';
}
