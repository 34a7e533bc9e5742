/*
 * Allocation that cannot fail for daemon code: on exhaustion the process
 * logs and exits, since a manager half-way through a state change with no
 * memory cannot keep its promises anyway.  Plus a growable string buffer.
 */
#ifndef FL_XMALLOC_H
#define FL_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf that cannot fail. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Zero n bytes at p (not optimised away), then free p.  NULL is a no-op. */
void freezero(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it.  NULL is a no-op. */
void freezero_str(char *s);

/*
 * A growable byte buffer, always NUL-terminated.  Embedded: sbuf_init()
 * then sbuf_release(); sbuf_detach() hands the string to the caller.
 */
struct sbuf {
	char *buf;
	size_t len;
	size_t cap;
};

void sbuf_init(struct sbuf *sb);
void sbuf_release(struct sbuf *sb);
char *sbuf_detach(struct sbuf *sb, size_t *lenp);
void sbuf_add(struct sbuf *sb, const void *data, size_t n);
void sbuf_addch(struct sbuf *sb, int c);
void sbuf_adds(struct sbuf *sb, const char *s);
void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void sbuf_reset(struct sbuf *sb);

#endif
