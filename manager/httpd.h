/*
 * The manager's HTTP server on listen_address: the endpoints GitLab
 * Runner serves there (commands/multi.go setupMetricsAndDebugServer),
 * with libevent's evhttp on the manager's event loop.
 *
 *	GET /metrics		the registry in Prometheus text format 0.0.4
 *	GET /debug/jobs/list	one line per running job (X-List-Version: 2):
 *				"url=<u> state=<s> stage=<s> executor_stage=<s>
 *				duration=<Go duration>"
 *	GET /debug/process/state	"starting", "running",
 *				"graceful-shutdown" or "forceful-shutdown"
 *	GET /health/ready	200 "ready" once the runners are started;
 *				503 and the state before that and while
 *				shutting down (GitLab Runner gates this on its
 *				boot-verify canary only; a load balancer is
 *				better served by dropping a stopping manager)
 *	GET /healthz		200 "ok" while the event loop turns (ours)
 *
 * HEAD is answered like GET without a body; other methods get 405 with
 * "Allow: GET, HEAD"; other paths 404.  No pprof.
 */
#ifndef FL_HTTPD_H
#define FL_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "xmalloc.h"

struct event_base;

/* GitLab Runner's default port when listen_address has none. */
#define HTTPD_DEFAULT_PORT	9252

/* Requests time out after this many seconds of silence; request headers
 * and bodies are capped (nothing we serve takes a body). */
#define HTTPD_TIMEOUT_SECONDS	30
#define HTTPD_MAX_HEADERS	8192
#define HTTPD_MAX_BODY		4096

/* GitLab Runner's process states (commands/internal/process_state). */
enum httpd_state {
	HTTPD_STARTING,
	HTTPD_RUNNING,
	HTTPD_GRACEFUL_SHUTDOWN,
	HTTPD_FORCEFUL_SHUTDOWN
};

struct httpd_hooks {
	struct metrics *metrics;	/* /metrics; NULL: an empty exposition */
	/* /debug/jobs/list: append the lines (see httpd_job_line()). */
	void (*jobs_list)(void *arg, struct sbuf *out);
	void *arg;
};

struct httpd;

/*
 * Listen on listen_address ("host:port", "[v6addr]:port", ":port" for
 * every address (IPv6 and IPv4 when the host has IPv6), or "host" with
 * port 9252) and serve on base.  Returns NULL with the reason in err
 * ("listen 127.0.0.1:9252: Address already in use") when the address is
 * malformed, does not resolve or cannot be bound.  Until
 * httpd_set_hooks(), /metrics and /debug/jobs/list answer empty.
 */
struct httpd *httpd_new(struct event_base *base, const char *listen_address,
    char *err, size_t errlen);
/* Closes the listener and open connections.  NULL is a no-op. */
void httpd_free(struct httpd *h);

/* hooks is copied; what it points to must outlive h (or the next call). */
void httpd_set_hooks(struct httpd *h, const struct httpd_hooks *hooks);
void httpd_set_state(struct httpd *h, enum httpd_state st);
enum httpd_state httpd_get_state(const struct httpd *h);
const char *httpd_state_name(enum httpd_state st);

/* The bound port (useful after ":0"), and "host:port" as bound. */
int httpd_port(const struct httpd *h);
const char *httpd_address(const struct httpd *h);

/*
 * Split listen_address into host ("" for every address) and port.  0, or
 * FL_ERR_PARSE (bad syntax, port not 0..65535), FL_ERR_TOOBIG (host does
 * not fit hostlen).
 */
int httpd_parse_address(const char *in, char *host, size_t hostlen,
    int *port);

/* One /debug/jobs/list line as GitLab Runner writes it ("\n" added);
 * duration in nanoseconds, printed as Go's Duration. */
void httpd_job_line(struct sbuf *out, const char *url, const char *state,
    const char *stage, const char *executor_stage, int64_t duration_ns);

#endif
