/*
 * The HTTP server behind listen_address (see httpd.h for the endpoints).
 * We make and bind the listening socket ourselves, so a bind failure
 * comes back as a clear error with errno's text, then hand it to evhttp,
 * which runs the connections on the manager's event base.  Every answer
 * is built in one piece: the bodies are small (an exposition of a few
 * hundred series is tens of KiB).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "duration.h"
#include "err.h"
#include "httpd.h"
#include "xmalloc.h"

struct httpd {
	struct evhttp *http;
	struct httpd_hooks hooks;
	enum httpd_state state;
	int port;
	char address[INET6_ADDRSTRLEN + 16];
};

const char *
httpd_state_name(enum httpd_state st)
{
	switch (st) {
	case HTTPD_STARTING:
		return "starting";
	case HTTPD_RUNNING:
		return "running";
	case HTTPD_GRACEFUL_SHUTDOWN:
		return "graceful-shutdown";
	case HTTPD_FORCEFUL_SHUTDOWN:
		return "forceful-shutdown";
	}
	return "unknown";
}

int
httpd_parse_address(const char *in, char *host, size_t hostlen, int *port)
{
	const char *h, *p = NULL;
	size_t hlen;

	if (in == NULL || hostlen == 0)
		return FL_ERR_PARSE;
	if (in[0] == '[') {
		const char *close = strchr(in, ']');

		if (close == NULL)
			return FL_ERR_PARSE;
		h = in + 1;
		hlen = (size_t)(close - h);
		if (close[1] == ':')
			p = close + 2;
		else if (close[1] != '\0')
			return FL_ERR_PARSE;
		if (hlen == 0)
			return FL_ERR_PARSE;
	} else {
		const char *colon = strchr(in, ':');

		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return FL_ERR_PARSE;	/* IPv6 wants brackets */
		h = in;
		hlen = colon != NULL ? (size_t)(colon - in) : strlen(in);
		if (colon != NULL)
			p = colon + 1;
		else if (hlen == 0)
			return FL_ERR_PARSE;
	}
	if (hlen >= hostlen)
		return FL_ERR_TOOBIG;
	for (size_t i = 0; i < hlen; i++)
		if (h[i] == '/' || h[i] == ' ' || h[i] == '[' || h[i] == ']')
			return FL_ERR_PARSE;
	if (p == NULL) {
		*port = HTTPD_DEFAULT_PORT;
	} else {
		long v = 0;

		if (*p == '\0' || strlen(p) > 5)
			return FL_ERR_PARSE;
		for (const char *q = p; *q != '\0'; q++) {
			if (*q < '0' || *q > '9')
				return FL_ERR_PARSE;
			v = v * 10 + (*q - '0');
		}
		if (v > 65535)
			return FL_ERR_PARSE;
		*port = (int)v;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

/* A listening socket for one address; -1 with errno. */
static int
listen_on(int family, const struct sockaddr *sa, socklen_t salen, int dual)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0, saved;

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
		    sizeof(zero));
	if (bind(fd, sa, salen) < 0 || listen(fd, 128) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Bind host:port; fd or -1 with the reason in err. */
static int
bind_address(const char *host, int port, const char *shown, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8];
	int fd = -1, gai, saved = 0;

	if (*host == '\0') {
		struct sockaddr_in6 s6;
		struct sockaddr_in s4;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = in6addr_any;
		s6.sin6_port = htons((uint16_t)port);
		fd = listen_on(AF_INET6, (struct sockaddr *)&s6, sizeof(s6), 1);
		if (fd >= 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
			goto done;
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		s4.sin_addr.s_addr = htonl(INADDR_ANY);
		s4.sin_port = htons((uint16_t)port);
		fd = listen_on(AF_INET, (struct sockaddr *)&s4, sizeof(s4), 0);
		goto done;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((gai = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen %s: %s", shown, gai_strerror(gai));
		return -1;
	}
	/* As Go's net.Listen: the first address that can be bound. */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = listen_on(ai->ai_family, ai->ai_addr, ai->ai_addrlen, 0);
		if (fd >= 0)
			break;
		if (saved == 0)
			saved = errno;
	}
	freeaddrinfo(res);
	if (fd < 0 && saved != 0)
		errno = saved;
done:
	if (fd < 0)
		snprintf(err, errlen, "listen %s: %s", shown, strerror(errno));
	return fd;
}

/* "host:port" of the bound socket. */
static void
bound_name(struct httpd *h, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		h->port = ntohs(s4->sin_port);
		snprintf(h->address, sizeof(h->address), "%s:%d", a, h->port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		h->port = ntohs(s6->sin6_port);
		snprintf(h->address, sizeof(h->address), "[%s]:%d", a, h->port);
	}
}

/* ---- requests ---- */

static void
reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, const char *body, size_t len)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();

	evhttp_add_header(hdr, "Content-Type", ctype);
	evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp would send a HEAD's body (seen with Connection:
		 * close): give only its length. */
		char n[32];

		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(hdr, "Content-Length", n);
	} else if (buf != NULL && len > 0) {
		evbuffer_add(buf, body, len);
	}
	evhttp_send_reply(req, code, reason, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	reply(req, code, reason, "text/plain; charset=utf-8", text,
	    strlen(text));
}

static void
serve_metrics(struct httpd *h, struct evhttp_request *req)
{
	struct sbuf out;

	sbuf_init(&out);
	if (h->hooks.metrics != NULL)
		(void)metrics_render(h->hooks.metrics, &out);
	reply(req, HTTP_OK, "OK", METRICS_CONTENT_TYPE, out.buf, out.len);
	sbuf_release(&out);
}

static void
serve_jobs(struct httpd *h, struct evhttp_request *req)
{
	struct sbuf out;

	sbuf_init(&out);
	if (h->hooks.jobs_list != NULL)
		h->hooks.jobs_list(h->hooks.arg, &out);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-List-Version", "2");
	reply(req, HTTP_OK, "OK", "text/plain", out.buf, out.len);
	sbuf_release(&out);
}

static void
handle(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	char line[64];

	if (path == NULL || *path == '\0')
		path = "/";
	if (strcmp(path, "/metrics") != 0 &&
	    strcmp(path, "/debug/jobs/list") != 0 &&
	    strcmp(path, "/debug/process/state") != 0 &&
	    strcmp(path, "/health/ready") != 0 &&
	    strcmp(path, "/healthz") != 0) {
		reply_text(req, HTTP_NOTFOUND, "Not Found",
		    "404 page not found\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed",
		    "405 method not allowed\n");
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		serve_metrics(h, req);
	} else if (strcmp(path, "/debug/jobs/list") == 0) {
		serve_jobs(h, req);
	} else if (strcmp(path, "/debug/process/state") == 0) {
		snprintf(line, sizeof(line), "%s\n", httpd_state_name(h->state));
		reply_text(req, HTTP_OK, "OK", line);
	} else if (strcmp(path, "/health/ready") == 0) {
		if (h->state == HTTPD_RUNNING) {
			reply_text(req, HTTP_OK, "OK", "ready\n");
		} else {
			snprintf(line, sizeof(line), "%s\n",
			    httpd_state_name(h->state));
			reply_text(req, HTTP_SERVUNAVAIL, "Service Unavailable",
			    line);
		}
	} else {
		reply_text(req, HTTP_OK, "OK", "ok\n");
	}
}

/* ---- lifecycle ---- */

struct httpd *
httpd_new(struct event_base *base, const char *listen_address, char *err,
    size_t errlen)
{
	char host[256];
	struct httpd *h;
	int port, fd, rc;

	if (base == NULL || listen_address == NULL) {
		snprintf(err, errlen, "listen: no address");
		return NULL;
	}
	rc = httpd_parse_address(listen_address, host, sizeof(host), &port);
	if (rc != 0) {
		snprintf(err, errlen, "listen %s: invalid address "
		    "(want host:port, [v6addr]:port or :port)", listen_address);
		return NULL;
	}
	if ((fd = bind_address(host, port, listen_address, err, errlen)) < 0)
		return NULL;

	h = xcalloc(1, sizeof(*h));
	h->state = HTTPD_STARTING;
	bound_name(h, fd);
	if ((h->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "listen %s: evhttp_new failed",
		    listen_address);
		close(fd);
		free(h);
		return NULL;
	}
	/* Let every method reach handle(), which answers 405 itself. */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_timeout(h->http, HTTPD_TIMEOUT_SECONDS);
	evhttp_set_max_headers_size(h->http, HTTPD_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTPD_MAX_BODY);
	evhttp_set_gencb(h->http, handle, h);
	/* evhttp owns the socket from here (closes it on free). */
	if (evhttp_accept_socket_with_handle(h->http, fd) == NULL) {
		snprintf(err, errlen, "listen %s: cannot watch the socket",
		    listen_address);
		close(fd);
		evhttp_free(h->http);
		free(h);
		return NULL;
	}
	return h;
}

void
httpd_free(struct httpd *h)
{
	if (h == NULL)
		return;
	evhttp_free(h->http);
	free(h);
}

void
httpd_set_hooks(struct httpd *h, const struct httpd_hooks *hooks)
{
	if (hooks != NULL)
		h->hooks = *hooks;
	else
		memset(&h->hooks, 0, sizeof(h->hooks));
}

void
httpd_set_state(struct httpd *h, enum httpd_state st)
{
	if (h != NULL)
		h->state = st;
}

enum httpd_state
httpd_get_state(const struct httpd *h)
{
	return h->state;
}

int
httpd_port(const struct httpd *h)
{
	return h->port;
}

const char *
httpd_address(const struct httpd *h)
{
	return h->address;
}

void
httpd_job_line(struct sbuf *out, const char *url, const char *state,
    const char *stage, const char *executor_stage, int64_t duration_ns)
{
	char d[DURATION_STRLEN];

	duration_format(duration_ns, d, sizeof(d));
	sbuf_addf(out, "url=%s state=%s stage=%s executor_stage=%s "
	    "duration=%s\n", url != NULL ? url : "",
	    state != NULL ? state : "", stage != NULL ? stage : "",
	    executor_stage != NULL ? executor_stage : "", d);
}
