/*
 * A canned HTTP server for fleeting-plugin-aws's unit tests: a thread on
 * 127.0.0.1 (an ephemeral port) that answers each request with the next
 * of a list of answers ("STATUS\nBODY"; a status of 0 closes the
 * connection without answering) and keeps every request it read, so a
 * test can check what the plugin sent (signature headers, form fields)
 * and drive the retry loop without AWS.  One connection per request
 * (Connection: close).  Included by the tests/unit/test_aws_*.c files.
 */
#ifndef FL_TEST_AWS_CANNED_H
#define FL_TEST_AWS_CANNED_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xmalloc.h"

#define CANNED_MAX 32

struct canned {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t lock;
	const char *answers[CANNED_MAX];
	size_t n, next;
	char *requests[CANNED_MAX];	/* head + body of each request */
	size_t nreq;
};

static void
canned_serve_one(struct canned *c, int s)
{
	struct sbuf in;
	char buf[8192];
	ssize_t k;
	char *hdr_end = NULL;
	size_t want = 0;
	const char *ans;
	int status = 500;
	const char *body = "";

	sbuf_init(&in);
	for (;;) {
		k = read(s, buf, sizeof(buf));
		if (k <= 0)
			break;
		sbuf_add(&in, buf, (size_t)k);
		if (hdr_end == NULL && (hdr_end = strstr(in.buf, "\r\n\r\n"))) {
			char *cl = strcasestr(in.buf, "\r\nContent-Length:");
			if (cl != NULL && cl < hdr_end)
				want = strtoul(cl + 17, NULL, 10);
		}
		if (hdr_end != NULL &&
		    in.len >= (size_t)(hdr_end - in.buf) + 4 + want)
			break;
	}
	pthread_mutex_lock(&c->lock);
	if (c->nreq < CANNED_MAX)
		c->requests[c->nreq++] = xstrdup(in.buf ? in.buf : "");
	ans = c->next < c->n ? c->answers[c->next++] : "500\n";
	pthread_mutex_unlock(&c->lock);
	sbuf_release(&in);
	status = atoi(ans);
	if (strchr(ans, '\n') != NULL)
		body = strchr(ans, '\n') + 1;
	if (status != 0) {
		char *out = xasprintf("HTTP/1.1 %d X\r\nContent-Type: text/xml\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
		    strlen(body), body);
		(void)!write(s, out, strlen(out));
		free(out);
	}
	close(s);
}

static void *
canned_thread(void *arg)
{
	struct canned *c = arg;

	for (;;) {
		int s = accept(c->fd, NULL, NULL);

		if (s < 0)
			break;
		canned_serve_one(c, s);
	}
	return NULL;
}

/* Start serving answers[0..n). */
static struct canned *
canned_start(const char *const *answers, size_t n)
{
	struct canned *c = xcalloc(1, sizeof(*c));
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	pthread_mutex_init(&c->lock, NULL);
	for (size_t i = 0; i < n && i < CANNED_MAX; i++)
		c->answers[i] = answers[i];
	c->n = n;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(c->fd, 16) != 0 ||
	    getsockname(c->fd, (struct sockaddr *)&a, &len) != 0)
		abort();
	c->port = ntohs(a.sin_port);
	pthread_create(&c->th, NULL, canned_thread, c);
	return c;
}

/* http://127.0.0.1:PORT (heap). */
static char *
canned_url(const struct canned *c)
{
	return xasprintf("http://127.0.0.1:%d", c->port);
}

static size_t
canned_count(struct canned *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->nreq;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static void
canned_stop(struct canned *c)
{
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	pthread_join(c->th, NULL);
	for (size_t i = 0; i < c->nreq; i++)
		free(c->requests[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

#endif
