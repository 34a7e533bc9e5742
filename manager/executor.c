/*
 * GitLab Runner's Docker executor for one job: the prepare phase (images,
 * network, volumes, services), the stages of the job script in the helper
 * and build containers, and the cleanup, as one state machine on the
 * event loop (executor.h has the contract; reference runner-jobs-docker.md
 * §2 the behaviour copied).
 *
 * Shape.  Every Docker call is an "op": a small record holding the
 * request handle and what to do with the answer, kept on the executor's
 * list so that an abort or exec_free can cancel everything in flight.
 * The phases follow each other through plain functions called from those
 * answers:
 *
 *   begin -> ping -> helper image -> build image -> network -> volumes ->
 *   services (one after the other: image, create, start, inspect) ->
 *   health checks (in parallel) -> stages (§2.1 order) -> cleanup
 *   (containers in parallel, then volumes, then the network) -> final
 *   line -> done
 *
 * A stage: jobscript builds the script (or says to skip it); the stage's
 * container is created on first use; attach with stdin, and once the
 * stream is hijacked: stdin half-closed after the script, start; the
 * output goes through the jobmask to the trace; the stream ends when the
 * shell exits; /wait gives the exit code.  A stage being interrupted
 * (timeout, cancel) gets GitLab's treatment: a detached exec sends SIGTERM
 * to every process but PID 1, then /stop; the stream ends, /wait, and the
 * stage counts as timed out or canceled whatever its exit code.
 *
 * Abort (exec_abort, exec_free): every op is cancelled and cleanup starts
 * at once; removing with force kills what still runs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "config.h"
#include "docker.h"
#include "dockerauth.h"
#include "duration.h"
#include "err.h"
#include "executor.h"
#include "gitlab.h"
#include "joblog.h"
#include "jobmask.h"
#include "jobscript.h"
#include "pullpolicy.h"
#include "timestamper.h"
#include "toml.h"
#include "log.h"
#include "xmalloc.h"

#define TLS_FILE_MAX	(1024 * 1024)

#define LABEL_PREFIX "com.gitlab.gitlab-runner."
#define HELPER_PATH "/usr/bin/flotilla-helper"
/* Where cache-init sees a new volume (GitLab's path). */
#define CACHE_INIT_DIR "/gitlab-runner-cache-init"
#define AFTER_SCRIPT_TIMEOUT_S 300	/* RUNNER_AFTER_SCRIPT_TIMEOUT */
#define POST_STAGE_TIMEOUT_S 300	/* stages after a job timeout */
#define CLEANUP_TIMEOUT_MS (5 * 60 * 1000)
#define STOP_GRACE_S 10			/* the daemon's default */
#define KILL_WAIT_S 15			/* stream still open after stop */
#define SERVICE_PORTS_MAX 20
#define SERVICE_LOG_MAX (64 * 1024)
#define PULL_ATTEMPTS 3

struct exec;
struct op;

typedef void (*op_fn)(struct exec *e, void *data,
    const struct docker_result *res);
typedef void (*op_chunk_fn)(struct exec *e, void *data, int stream,
    const char *buf, size_t len);

/* One Docker request in flight. */
struct op {
	struct exec *e;
	struct docker_req *req;
	op_fn fn;
	op_chunk_fn chunk;
	void *data;
	void (*free_data)(void *);	/* when cancelled */
	TAILQ_ENTRY(op) link;
};
TAILQ_HEAD(op_list, op);

/* A container the executor created (removed at cleanup). */
struct ctr {
	char *name;
	char *id;
	const char *type;
};

/* A volume the executor created or uses. */
struct vol {
	char *name;		/* docker volume name, or NULL for a bind */
	char *dest;
	int temporary;		/* removed at cleanup */
	int created;
};

struct svc {
	struct exec *e;
	char *image;		/* reference as given */
	char *name;		/* without tag, "/" -> "__" */
	char *cname;		/* container name */
	char *image_id;
	char *id;
	char *ip;
	struct strlist aliases;
	json_t *env;		/* "K=V" array */
	json_t *cmd;		/* NULL: image's */
	json_t *entrypoint;	/* NULL: image's */
	enum pullpolicy pol[PULLPOLICY_MAX];
	int npol;
	int ports[SERVICE_PORTS_MAX];
	int nports;
	/* health check */
	int hc_ctr;		/* index in e->ctrs, -1 */
	int hc_done;
	int hc_failed;
	char *hc_err;
	struct sbuf hc_logs, svc_logs;
	struct event *hc_timer;
};

enum phase {
	PH_PREPARE, PH_STAGES, PH_CLEANUP, PH_FINISHED
};

/* The image being resolved (one at a time). */
struct imgget {
	char *ref;
	enum pullpolicy pol[PULLPOLICY_MAX];
	int npol, i;
	int attempt;
	char *id;		/* result: digest or id */
	char *shown_id;		/* sha256:... for the trace */
	char *digest;
	char *lasterr;
	const char *platform;	/* the job's, for the build image; NULL */
	void (*done)(struct exec *e, int ok);
};

struct exec {
	struct event_base *base;
	struct docker *d;
	const struct config_runner *rc;
	const struct config_docker *dc;
	const struct gitlab_job *job;
	char *runner_url, *short_token, *system_id, *instance_id, *hostname;
	char *helper_ref, *helper_tar;
	char *tls_ca, *tls_cert, *tls_key;	/* PEM text; key wiped */
	int helper_configured;
	int concurrent_id;
	exec_output_fn out;
	exec_done_fn done;
	void *arg;

	struct op_list ops;
	struct jobmask *mask;
	struct sbuf ob;
	/* FF_TIMESTAMPS: the runner's stream (00 O), the job's stdout and
	 * stderr (01 O, 01 E); the masker's held bytes are mask_ts's. */
	int ts_on;
	struct tstamp ts[3];
	int mask_ts;
	struct sbuf mb;
	struct jobscript_ctx ctx;
	struct jobscript_paths paths;
	struct dockerauth *auth;

	enum phase phase;
	char *prefix;		/* runner-<short>-project-<id>-concurrent-<n>-<rnd> */
	char *unique;		/* runner-<16 hex> */
	char *hostname_ctr;
	char *network;		/* per-build network name (created) */
	char *network_id;
	const char *network_mode;	/* what containers use; NULL default */
	int per_build;

	json_t *env;		/* container Env */
	json_t *binds;
	json_t *extra_hosts;
	json_t *ulimits;	/* HostConfig.Ulimits; NULL: none */
	json_t *secopt;		/* HostConfig.SecurityOpt; NULL: none */
	json_t *gpus;		/* a DeviceRequests entry; NULL: none */
	json_t *labels;		/* common labels (without type) */
	char *build_image;	/* what the build container runs */
	char *build_ref;	/* the image as named */
	char *helper_image;	/* id of the helper image */
	char *user;

	struct imgget img;

	struct ctr *ctrs;
	size_t nctrs;
	int helper_ctr, build_ctr;	/* index or -1 */
	struct vol *vols;
	size_t nvols, vol_i;
	struct svc *svcs;
	size_t nsvcs, svc_i;
	int hc_pending;

	/* stages */
	enum jobscript_stage stage;
	int stage_started;	/* the container was started */
	int stage_attached;
	int stage_ended;	/* the attach stream ended */
	int stage_attempt;
	const char *stage_reason;	/* interrupt: timeout/canceled */
	char *stage_msg;
	char *stage_sysmsg;	/* a Docker error in the stage */
	struct op *attach;
	int user_phase;		/* step_script started */
	int post_phase;		/* after step_script */
	int timed_out;		/* the job's timeout passed */
	int canceled;
	int64_t start_mono;
	int64_t stage_timeout_s;
	int stage_is_job;	/* the stage's limit is the job's */
	struct event *begin_ev, *job_timer, *stage_timer, *kill_timer;
	struct event *finish_ev;
	struct event *defer_ev;	/* work deferred out of exec_cancel */
	void (*defer_fn)(struct exec *e);

	/* result */
	const char *reason;	/* NULL: success so far */
	char *reason_msg;
	int exit_code;
	int system_failure;
	const char *abort_reason;
	int prepare_attempt, prepare_tries;
	int64_t elapsed_s;
	int retry_prepare;	/* prepare failed, to be tried again */
	size_t step_i;		/* the user step JS_STEP_SCRIPT runs */
	char *step_section;	/* "step_NAME" */
	char *step_header;

	/* cleanup */
	int cleanup_pending;
	int cleanup_stage;	/* 0 containers, 1 volumes, 2 network */
	int freeing;
};

static void stage_next(struct exec *e);
static void stages_begin(struct exec *e);
static void cleanup_begin(struct exec *e);
static void services_next(struct exec *e);
static void health_begin(struct exec *e);
static void volumes_next(struct exec *e);
static void stage_interrupt(struct exec *e, const char *reason, char *msg);
static void stage_end(struct exec *e, int exit_code, int have_code);

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;
	void (*fn)(struct exec *) = e->defer_fn;

	(void)fd;
	(void)what;
	e->defer_fn = NULL;
	if (fn != NULL)
		fn(e);
}

/* Run fn from the loop (so that exec_cancel calls nothing back). */
static void
defer(struct exec *e, void (*fn)(struct exec *))
{
	e->defer_fn = fn;
	event_active(e->defer_ev, 0, 0);
}

/* ---------------------------------------------------------------- */
/* pure helpers                                                      */

void
exec_short_token(const char *token, char *out, size_t outlen)
{
	static const char *const pfx[] = { "glrtr-", "glrt-", "glcbt-" };
	const char *t = token != NULL ? token : "";
	size_t i, n;

	for (i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++) {
		if (strncmp(t, pfx[i], strlen(pfx[i])) == 0) {
			t += strlen(pfx[i]);
			break;
		}
	}
	/* A partition prefix "t<digits>_". */
	if (t[0] == 't' && t[1] >= '0' && t[1] <= '9') {
		const char *p = t + 1;

		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == '_')
			t = p + 1;
	}
	if (outlen == 0)
		return;
	n = strlen(t);
	if (n > 9)
		n = 9;
	if (n > outlen - 1)
		n = outlen - 1;
	memcpy(out, t, n);
	out[n] = '\0';
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = x[p[i] >> 4];
		out[2 * i + 1] = x[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void
exec_md5_hex(const char *s, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL);
	hex(md, 16, out);
}

char *
exec_unique_name(const char *token, const char *system_id,
    long long project_id, int concurrent_id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char h[2 * EVP_MAX_MD_SIZE + 1];
	char *s, *r;

	s = xasprintf("%s-%s-%lld-%d", token != NULL ? token : "",
	    system_id != NULL ? system_id : "", project_id, concurrent_id);
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	freezero_str(s);
	hex(md, 8, h);
	r = xasprintf("runner-%s", h);
	return r;
}

char *
exec_image_name_only(const char *ref)
{
	const char *at = strchr(ref, '@');
	const char *slash, *colon;
	size_t n = at != NULL ? (size_t)(at - ref) : strlen(ref);

	slash = memrchr(ref, '/', n);
	colon = memrchr(ref, ':', n);
	if (colon != NULL && (slash == NULL || colon > slash))
		n = (size_t)(colon - ref);
	return xstrndup(ref, n);
}

int
exec_timestamps_on(const struct config_runner *rc,
    const struct gitlab_job *job)
{
	const char *v;

	if (rc != NULL && rc->feature_flags != NULL &&
	    toml_get(rc->feature_flags, "FF_TIMESTAMPS") != NULL)
		return config_feature_flag(rc, "FF_TIMESTAMPS", 1);
	v = job != NULL ? gitlab_job_variable(job, "FF_TIMESTAMPS") : NULL;
	if (v != NULL && *v != '\0') {
		if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
		    strcasecmp(v, "t") == 0)
			return 1;
		if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
		    strcasecmp(v, "f") == 0)
			return 0;
	}
	return 1;
}

json_t *
exec_ulimits_json(const struct toml_table *t, char *err, size_t errlen)
{
	static const char *const names[] = {
		"as", "core", "cpu", "data", "fsize", "locks", "memlock",
		"msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
		"rttime", "sigpending", "stack"
	};
	json_t *a = json_array();

	for (size_t i = 0; t != NULL && i < t->len; i++) {
		const struct toml_value *v = t->kvs[i].val;
		const char *k = t->kvs[i].key, *p;
		long long soft, hard;
		char *end;
		size_t n;

		for (n = 0; n < sizeof(names) / sizeof(names[0]); n++)
			if (strcmp(k, names[n]) == 0)
				break;
		if (n == sizeof(names) / sizeof(names[0])) {
			snprintf(err, errlen, "ulimit: unknown limit \"%s\"", k);
			goto bad;
		}
		if (v == NULL || v->type != TOML_STRING) {
			snprintf(err, errlen, "ulimit: %s: not a string", k);
			goto bad;
		}
		p = v->u.str.ptr;
		errno = 0;
		soft = strtoll(p, &end, 10);
		if (end == p || errno != 0)
			goto badval;
		hard = soft;
		if (*end == ':') {
			p = end + 1;
			hard = strtoll(p, &end, 10);
			if (end == p || errno != 0)
				goto badval;
		}
		if (*end != '\0' || (soft > hard && hard != -1))
			goto badval;
		json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "Name", k,
		    "Soft", (json_int_t)soft, "Hard", (json_int_t)hard));
		continue;
badval:
		snprintf(err, errlen, "ulimit: %s: \"%s\" is not SOFT[:HARD] "
		    "with SOFT <= HARD", k, v->u.str.ptr);
		goto bad;
	}
	return a;
bad:
	json_decref(a);
	return NULL;
}

json_t *
exec_security_opts(const char *const *opts, size_t n, char *err,
    size_t errlen)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		const char *o = opts[i], *path;
		json_error_t je;
		json_t *profile;
		char *dump;

		if ((strncmp(o, "seccomp=", 8) != 0 &&
		    strncmp(o, "seccomp:", 8) != 0) ||
		    strcmp(o + 8, "unconfined") == 0 ||
		    strcmp(o + 8, "builtin") == 0) {
			json_array_append_new(a, json_string(o));
			continue;
		}
		/* As the docker CLI: the daemon gets the profile itself. */
		path = o + 8;
		profile = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
		if (profile == NULL || !json_is_object(profile)) {
			snprintf(err, errlen, "security_opt: seccomp profile "
			    "%s: %s", path, profile == NULL ? je.text :
			    "not a JSON object");
			json_decref(profile);
			json_decref(a);
			return NULL;
		}
		dump = json_dumps(profile, JSON_COMPACT);
		json_decref(profile);
		json_array_append_new(a, json_sprintf("seccomp=%s", dump));
		free(dump);
	}
	return a;
}

json_t *
exec_gpus_json(const char *gpus, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s,s:i}", "Driver", "", "Count", 0);
	json_t *caps = json_array(), *ids = NULL;
	char *s = xstrdup(gpus), *save = NULL, *f;
	int have_count = 0;

	/* The CLI's csv: a bare word is the count; "all" is -1. */
	for (f = strtok_r(s, ",", &save); f != NULL;
	    f = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(f, '=');

		if (eq == NULL && !have_count && ids == NULL) {
			char *end;
			long n;

			if (strcmp(f, "all") == 0) {
				n = -1;
			} else {
				n = strtol(f, &end, 10);
				if (end == f || *end != '\0' || n < 1)
					goto bad;
			}
			json_object_set_new(req, "Count", json_integer(n));
			have_count = 1;
		} else if (eq != NULL && strncmp(f, "count=", 6) == 0 &&
		    !have_count && ids == NULL) {
			char *end;
			long n = strcmp(eq + 1, "all") == 0 ? -1 :
			    strtol(eq + 1, &end, 10);

			if (n == 0 || (n != -1 && (end == eq + 1 || *end)))
				goto bad;
			json_object_set_new(req, "Count", json_integer(n));
			have_count = 1;
		} else if (eq != NULL && strncmp(f, "device=", 7) == 0 &&
		    !have_count) {
			if (ids == NULL)
				ids = json_array();
			if (eq[1] == '\0')
				goto bad;
			json_array_append_new(ids, json_string(eq + 1));
		} else if (eq != NULL && strncmp(f, "driver=", 7) == 0) {
			json_object_set_new(req, "Driver", json_string(eq + 1));
		} else if (eq != NULL && strncmp(f, "capabilities=", 13) == 0) {
			json_array_append_new(caps, json_string(eq + 1));
		} else if (ids != NULL && eq == NULL && *f != '\0') {
			/* device=0,1: the ids after the first one */
			json_array_append_new(ids, json_string(f));
		} else {
			goto bad;
		}
	}
	if (!have_count && ids == NULL)
		goto bad;
	if (ids != NULL)
		json_object_set_new(req, "DeviceIDs", ids);
	if (json_array_size(caps) == 0)
		json_array_append_new(caps, json_string("gpu"));
	json_object_set_new(req, "Capabilities", json_pack("[o]", caps));
	free(s);
	return req;
bad:
	snprintf(err, errlen, "gpus: \"%s\" is not all, a count or "
	    "device=ID[,ID...]", gpus);
	json_decref(ids);
	json_decref(caps);
	json_decref(req);
	free(s);
	return NULL;
}

long long
exec_parse_ram(const char *s)
{
	char *end;
	double v;
	long long mul = 1;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'b': case 'B': mul = 1; end++; break;
	case 'k': case 'K': mul = 1024LL; end++; break;
	case 'm': case 'M': mul = 1024LL * 1024; end++; break;
	case 'g': case 'G': mul = 1024LL * 1024 * 1024; end++; break;
	case 't': case 'T': mul = 1024LL * 1024 * 1024 * 1024; end++; break;
	default: return -1;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0')
		return -1;
	return (long long)(v * (double)mul);
}

/* ---------------------------------------------------------------- */
/* output                                                            */

static int64_t
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static void
deliver(struct exec *e)
{
	if (e->ob.len > 0 && !e->freeing)
		e->out(e->arg, e->ob.buf, e->ob.len);
	sbuf_reset(&e->ob);
}

/* Masked bytes of stream k (in e->mb) on to the trace buffer. */
static void
stamp(struct exec *e, int k)
{
	if (e->mb.len == 0)
		return;
	if (e->ts_on)
		tstamp_write(&e->ts[k], e->mb.buf, e->mb.len, tstamp_now_us(),
		    &e->ob);
	else
		sbuf_add(&e->ob, e->mb.buf, e->mb.len);
	sbuf_reset(&e->mb);
}

/* What the masker holds back belongs to the stream that wrote it. */
static void
mask_switch(struct exec *e, int k)
{
	if (e->mask_ts != k) {
		jobmask_flush(e->mask, &e->mb);
		stamp(e, e->mask_ts);
		e->mask_ts = k;
	}
}

/* Container output (stream 1 stdout, 2 stderr): masked, held back across
 * chunks. */
static void
emit_output(struct exec *e, int stream, const void *data, size_t len)
{
	int k = stream == 2 ? 2 : 1;

	mask_switch(e, k);
	jobmask_write(e->mask, data, len, &e->mb);
	stamp(e, k);
	deliver(e);
}

/* Runner text (already formatted): what was held back first, then this. */
static void
emit_runner(struct exec *e, const struct sbuf *text)
{
	jobmask_flush(e->mask, &e->mb);
	stamp(e, e->mask_ts);
	e->mask_ts = 0;
	jobmask_write(e->mask, text->buf, text->len, &e->mb);
	jobmask_flush(e->mask, &e->mb);
	stamp(e, 0);
	deliver(e);
}

/* A stage's output is over: its partial lines end (GitLab closes the
 * stage's stream writers). */
static void
stamp_close(struct exec *e)
{
	jobmask_flush(e->mask, &e->mb);
	stamp(e, e->mask_ts);
	for (int k = 0; k < 3 && e->ts_on; k++)
		tstamp_close(&e->ts[k], &e->ob);
	deliver(e);
}

static void msg(struct exec *e, enum joblog_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
msg(struct exec *e, enum joblog_level lv, const char *fmt, ...)
{
	struct sbuf text, line;
	va_list ap;

	sbuf_init(&text);
	sbuf_init(&line);
	va_start(ap, fmt);
	sbuf_vaddf(&text, fmt, ap);
	va_end(ap);
	joblog_line(&line, lv, "%s", text.buf != NULL ? text.buf : "");
	emit_runner(e, &line);
	sbuf_release(&text);
	sbuf_release(&line);
}

static void
section_start(struct exec *e, const char *name, const char *header)
{
	struct sbuf s;

	sbuf_init(&s);
	if (e->job->trace_sections)
		joblog_section_start(&s, (int64_t)time(NULL), name, header, 0);
	else if (header != NULL)
		sbuf_addf(&s, "%s%s%s\n", JOBLOG_BOLD_CYAN, header,
		    JOBLOG_RESET);
	emit_runner(e, &s);
	sbuf_release(&s);
}

static void
section_end(struct exec *e, const char *name)
{
	struct sbuf s;

	sbuf_init(&s);
	if (e->job->trace_sections)
		joblog_section_end(&s, (int64_t)time(NULL), name);
	emit_runner(e, &s);
	sbuf_release(&s);
}

/* ---------------------------------------------------------------- */
/* ops                                                               */

static void
op_cb(void *arg, const struct docker_result *res)
{
	struct op *o = arg;
	struct exec *e = o->e;
	op_fn fn = o->fn;
	void *data = o->data;

	TAILQ_REMOVE(&e->ops, o, link);
	free(o);
	if (fn != NULL)
		fn(e, data, res);
}

static void
op_chunk_cb(void *arg, int stream, const char *data, size_t len)
{
	struct op *o = arg;

	if (o->chunk != NULL)
		o->chunk(o->e, o->data, stream, data, len);
}

static struct op *
op_new(struct exec *e, op_fn fn, void *data)
{
	struct op *o = xcalloc(1, sizeof(*o));

	o->e = e;
	o->fn = fn;
	o->data = data;
	TAILQ_INSERT_TAIL(&e->ops, o, link);
	return o;
}

static void
op_cancel(struct exec *e, struct op *o)
{
	if (o == NULL)
		return;
	TAILQ_REMOVE(&e->ops, o, link);
	docker_cancel(o->req);
	if (o->free_data != NULL)
		o->free_data(o->data);
	free(o);
}

static void
ops_cancel_all(struct exec *e)
{
	struct op *o;

	while ((o = TAILQ_FIRST(&e->ops)) != NULL)
		op_cancel(e, o);
	e->attach = NULL;
}

/* A request nobody waits for (best-effort cleanup after exec_free). */
static void
noop_cb(void *arg, const struct docker_result *res)
{
	(void)arg;
	(void)res;
}

/* ---------------------------------------------------------------- */
/* results                                                           */

/* Record the job's error unless one is recorded already (the first error
 * wins, as GitLab's pickPriorityError for the job's own). */
static void set_error(struct exec *e, const char *reason, int exit_code,
    int system, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
set_error(struct exec *e, const char *reason, int exit_code, int system,
    const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	if (e->reason != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	e->reason = reason;
	e->exit_code = exit_code;
	e->system_failure = system;
	free(e->reason_msg);
	e->reason_msg = m != NULL ? m : xstrdup(reason);
}

static void
timeout_text(int64_t secs, char *buf, size_t len)
{
	duration_format(secs * DURATION_SEC, buf, len);
}

/* A failure of the prepare phase: stop preparing, clean up. */
static void
prepare_failed(struct exec *e, const char *reason, int system,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
prepare_failed(struct exec *e, const char *reason, int system,
    const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	set_error(e, reason, 0, system, "%s", m != NULL ? m : reason);
	free(m);
	/* GitLab retries a preparation that failed for a system reason
	 * (not a BuildError such as a failed pull, not a cancel). */
	if (system && e->reason == reason && !e->canceled &&
	    e->abort_reason == NULL &&
	    e->prepare_attempt + 1 < e->prepare_tries)
		e->retry_prepare = 1;
	else
		section_end(e, "prepare_executor");
	cleanup_begin(e);
}

/* ---------------------------------------------------------------- */
/* labels and container configs                                      */

static void
label(json_t *o, const char *k, const char *v)
{
	char *key = xasprintf(LABEL_PREFIX "%s", k);

	json_object_set_new(o, key, json_string(v != NULL ? v : ""));
	free(key);
}

static json_t *
labels_for(struct exec *e, const char *type)
{
	json_t *l = json_deep_copy(e->labels);

	label(l, "type", type);
	return l;
}

static void
build_labels(struct exec *e)
{
	const struct gitlab_job *j = e->job;
	char buf[64], tmo[DURATION_STRLEN];
	char *url;
	size_t n;
	size_t i;

	e->labels = json_object();
	snprintf(buf, sizeof(buf), "%lld", (long long)j->id);
	label(e->labels, "job.id", buf);
	n = strlen(e->runner_url);
	while (n > 0 && e->runner_url[n - 1] == '/')
		n--;
	url = xasprintf("%.*s/%s/-/jobs/%lld", (int)n, e->runner_url,
	    j->job_info.project_full_path, (long long)j->id);
	label(e->labels, "job.url", url);
	free(url);
	label(e->labels, "job.sha", j->git_info.sha);
	label(e->labels, "job.before_sha", j->git_info.before_sha);
	label(e->labels, "job.ref", j->git_info.ref);
	timeout_text(gitlab_job_timeout(j), tmo, sizeof(tmo));
	label(e->labels, "job.timeout", tmo);
	snprintf(buf, sizeof(buf), "%lld", (long long)j->job_info.project_id);
	label(e->labels, "project.id", buf);
	snprintf(buf, sizeof(buf), "%d", e->concurrent_id);
	label(e->labels, "project.runner_id", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)j->job_info.pipeline_id);
	label(e->labels, "pipeline.id", buf);
	label(e->labels, "runner.id", e->short_token);
	label(e->labels, "runner.local_id", "0");
	label(e->labels, "runner.system_id", e->system_id);
	label(e->labels, "managed", "true");
	/* container_labels: with and without the prefix. */
	if (e->dc->container_labels != NULL) {
		const struct toml_table *t = e->dc->container_labels;

		for (i = 0; i < t->len; i++) {
			const struct toml_value *v = t->kvs[i].val;

			if (v == NULL || v->type != TOML_STRING)
				continue;
			json_object_set_new(e->labels, t->kvs[i].key,
			    json_string(v->u.str.ptr));
			label(e->labels, t->kvs[i].key, v->u.str.ptr);
		}
	}
}

/* A JSON array of n strings. */
static json_t *
strs_json(char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
strlist_json(const struct strlist *l)
{
	return strs_json(l->v, l->n);
}

static json_t *
strv_json(const struct gitlab_strv *l)
{
	return strs_json(l->v, l->n);
}

static json_t *
toml_map_json(const struct toml_table *t)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; t != NULL && i < t->len; i++) {
		const struct toml_value *v = t->kvs[i].val;

		if (v != NULL && v->type == TOML_STRING)
			json_object_set_new(o, t->kvs[i].key,
			    json_string(v->u.str.ptr));
	}
	return o;
}

static int
privileged_allowed(const struct strlist *allowed, const char *image)
{
	if (allowed->n == 0)
		return 1;
	return pullpolicy_image_allowed(image,
	    (const char *const *)allowed->v, allowed->n, NULL, 0, "images",
	    NULL, 0) == 0;
}

/* HostConfig shared by the helper, build, service and wait containers. */
static json_t *
host_config(struct exec *e, int build, int service, const char *image)
{
	const struct config_docker *dc = e->dc;
	json_t *h = json_object();
	long long v;

	json_object_set_new(h, "Binds", json_deep_copy(e->binds));
	if (json_array_size(e->extra_hosts) > 0 || dc->extra_hosts.n > 0) {
		json_t *x = strlist_json(&dc->extra_hosts);

		json_array_extend(x, e->extra_hosts);
		json_object_set_new(h, "ExtraHosts", x);
	}
	if (e->network_mode != NULL)
		json_object_set_new(h, "NetworkMode",
		    json_string(e->network_mode));
	json_object_set_new(h, "RestartPolicy",
	    json_pack("{s:s}", "Name", "no"));
	json_object_set_new(h, "LogConfig",
	    json_pack("{s:s}", "Type", "json-file"));
	if (service) {
		int priv = dc->services_privileged != TRI_UNSET ?
		    dc->services_privileged == TRI_TRUE : dc->privileged;

		if (priv && privileged_allowed(&dc->allowed_privileged_services,
		    image))
			json_object_set_new(h, "Privileged", json_true());
		if (dc->services_tmpfs != NULL)
			json_object_set_new(h, "Tmpfs",
			    toml_map_json(dc->services_tmpfs));
	} else {
		if (dc->privileged && privileged_allowed(
		    &dc->allowed_privileged_images, image))
			json_object_set_new(h, "Privileged", json_true());
		if (dc->tmpfs != NULL)
			json_object_set_new(h, "Tmpfs", toml_map_json(dc->tmpfs));
		if ((v = exec_parse_ram(dc->memory)) > 0)
			json_object_set_new(h, "Memory", json_integer(v));
		if ((v = exec_parse_ram(dc->memory_swap)) > 0)
			json_object_set_new(h, "MemorySwap", json_integer(v));
		if ((v = exec_parse_ram(dc->memory_reservation)) > 0)
			json_object_set_new(h, "MemoryReservation",
			    json_integer(v));
		if (dc->cpus != NULL && *dc->cpus != '\0') {
			double c = strtod(dc->cpus, NULL);

			if (c > 0)
				json_object_set_new(h, "NanoCpus",
				    json_integer((json_int_t)(c * 1e9)));
		}
		if (dc->cpuset_cpus != NULL)
			json_object_set_new(h, "CpusetCpus",
			    json_string(dc->cpuset_cpus));
		if (dc->cpu_shares > 0)
			json_object_set_new(h, "CpuShares",
			    json_integer(dc->cpu_shares));
		if (dc->oom_kill_disable)
			json_object_set_new(h, "OomKillDisable", json_true());
		if (dc->sysctls != NULL)
			json_object_set_new(h, "Sysctls",
			    toml_map_json(dc->sysctls));
		if (e->ulimits != NULL && json_array_size(e->ulimits) > 0)
			json_object_set(h, "Ulimits", e->ulimits);
		if (build && e->gpus != NULL)
			json_object_set_new(h, "DeviceRequests",
			    json_pack("[O]", e->gpus));
		if (dc->device_cgroup_rules.n > 0)
			json_object_set_new(h, "DeviceCgroupRules",
			    strlist_json(&dc->device_cgroup_rules));
		if (dc->isolation != NULL && *dc->isolation != '\0')
			json_object_set_new(h, "Isolation",
			    json_string(dc->isolation));
	}
	if (build && dc->pid_mode != NULL)
		json_object_set_new(h, "PidMode", json_string(dc->pid_mode));
	if (dc->dns.n > 0)
		json_object_set_new(h, "Dns", strlist_json(&dc->dns));
	if (dc->dns_search.n > 0)
		json_object_set_new(h, "DnsSearch", strlist_json(&dc->dns_search));
	if (dc->cap_add.n > 0)
		json_object_set_new(h, "CapAdd", strlist_json(&dc->cap_add));
	if (dc->cap_drop.n > 0)
		json_object_set_new(h, "CapDrop", strlist_json(&dc->cap_drop));
	if (e->secopt != NULL && json_array_size(e->secopt) > 0)
		json_object_set(h, "SecurityOpt", e->secopt);
	if (dc->links.n > 0)
		json_object_set_new(h, "Links", strlist_json(&dc->links));
	if (dc->volumes_from.n > 0)
		json_object_set_new(h, "VolumesFrom",
		    strlist_json(&dc->volumes_from));
	if (dc->volume_driver != NULL)
		json_object_set_new(h, "VolumeDriver",
		    json_string(dc->volume_driver));
	if (dc->shm_size > 0)
		json_object_set_new(h, "ShmSize", json_integer(dc->shm_size));
	if (dc->runtime != NULL)
		json_object_set_new(h, "Runtime", json_string(dc->runtime));
	if (dc->userns_mode != NULL)
		json_object_set_new(h, "UsernsMode", json_string(dc->userns_mode));
	if (dc->ipcmode != NULL)
		json_object_set_new(h, "IpcMode", json_string(dc->ipcmode));
	if (dc->devices.n > 0) {
		json_t *a = json_array();
		size_t i;

		for (i = 0; i < dc->devices.n; i++) {
			char *s = xstrdup(dc->devices.v[i]);
			char *p1 = strchr(s, ':'), *p2 = NULL;

			if (p1 != NULL) {
				*p1++ = '\0';
				p2 = strchr(p1, ':');
				if (p2 != NULL)
					*p2++ = '\0';
			}
			json_array_append_new(a, json_pack("{s:s,s:s,s:s}",
			    "PathOnHost", s, "PathInContainer",
			    p1 != NULL ? p1 : s, "CgroupPermissions",
			    p2 != NULL ? p2 : "rwm"));
			free(s);
		}
		json_object_set_new(h, "Devices", a);
	}
	return h;
}

/* NetworkingConfig for a per-build network: aliases. */
static json_t *
networking(struct exec *e, json_t *aliases)
{
	json_t *ep;

	if (!e->per_build) {
		json_decref(aliases);
		return NULL;
	}
	ep = json_object();
	json_object_set_new(ep, e->network, json_pack("{s:o}", "Aliases",
	    aliases));
	return json_pack("{s:o}", "EndpointsConfig", ep);
}

/* ---------------------------------------------------------------- */
/* finishing                                                         */

static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;
	struct exec_result r;
	struct sbuf s;

	(void)fd;
	(void)what;
	memset(&r, 0, sizeof(r));
	sbuf_init(&s);
	stamp_close(e);
	if (e->retry_prepare && e->reason != NULL && !e->canceled &&
	    e->abort_reason == NULL) {
		joblog_line(&s, JOBLOG_ERROR, "ERROR: Preparation failed: %s",
		    e->reason_msg);
		joblog_line(&s, JOBLOG_PLAIN, "Will be retried in %ds ...",
		    EXEC_PREPARE_RETRY_S);
		r.state = GITLAB_FAILED_STATE;
		r.failure_reason = e->reason;
		r.retry = 1;
	} else if (e->reason == NULL) {
		joblog_line(&s, JOBLOG_NOTICE, "Job succeeded");
		r.state = GITLAB_SUCCESS;
	} else {
		joblog_line(&s, JOBLOG_ERROR, "ERROR: Job failed%s: %s",
		    e->system_failure ? " (system failure)" : "",
		    e->reason_msg);
		r.state = GITLAB_FAILED_STATE;
		r.failure_reason = e->reason;
		r.exit_code = strcmp(e->reason, "script_failure") == 0 ?
		    e->exit_code : 0;
	}
	emit_runner(e, &s);
	sbuf_release(&s);
	e->phase = PH_FINISHED;
	/* e may be freed from inside done. */
	e->done(e->arg, &r);
}

/* ---------------------------------------------------------------- */
/* cleanup                                                           */

static void cleanup_step(struct exec *e);

static void
cleanup_one_cb(struct exec *e, void *data, const struct docker_result *res)
{
	const char *what = data;

	if (res->err != 0 && res->err != FL_ERR_NOTFOUND)
		msg(e, JOBLOG_WARNING, "WARNING: Failed to remove %s: %s", what,
		    res->msg);
	if (--e->cleanup_pending == 0) {
		e->cleanup_stage++;
		cleanup_step(e);
	}
}

static void
cleanup_step(struct exec *e)
{
	struct op *o;
	size_t i;

	for (;;) {
		e->cleanup_pending = 0;
		switch (e->cleanup_stage) {
		case 0:
			for (i = 0; i < e->nctrs; i++) {
				if (e->ctrs[i].id == NULL)
					continue;
				o = op_new(e, cleanup_one_cb, "container");
				o->req = docker_container_remove(e->d,
				    e->ctrs[i].id, 1, !e->dc->volume_keep, op_cb,
				    o);
				docker_req_set_timeout(o->req, CLEANUP_TIMEOUT_MS);
				e->cleanup_pending++;
			}
			break;
		case 1:
			for (i = 0; i < e->nvols; i++) {
				if (!e->vols[i].temporary || !e->vols[i].created)
					continue;
				o = op_new(e, cleanup_one_cb, "volume");
				o->req = docker_volume_remove(e->d,
				    e->vols[i].name, 1, op_cb, o);
				docker_req_set_timeout(o->req, CLEANUP_TIMEOUT_MS);
				e->cleanup_pending++;
			}
			break;
		case 2:
			if (e->network_id != NULL) {
				o = op_new(e, cleanup_one_cb, "network");
				o->req = docker_network_remove(e->d,
				    e->network_id, op_cb, o);
				docker_req_set_timeout(o->req, CLEANUP_TIMEOUT_MS);
				e->cleanup_pending++;
			}
			break;
		default:
			event_active(e->finish_ev, 0, 0);
			return;
		}
		if (e->cleanup_pending > 0)
			return;
		e->cleanup_stage++;
	}
}

static void
cleanup_begin(struct exec *e)
{
	if (e->phase >= PH_CLEANUP)
		return;
	e->phase = PH_CLEANUP;
	e->defer_fn = NULL;
	evtimer_del(e->job_timer);
	evtimer_del(e->stage_timer);
	evtimer_del(e->kill_timer);
	{
		size_t i;

		for (i = 0; i < e->nsvcs; i++)
			if (e->svcs[i].hc_timer != NULL)
				evtimer_del(e->svcs[i].hc_timer);
	}
	ops_cancel_all(e);
	e->cleanup_stage = 0;
	cleanup_step(e);
}

/* ---------------------------------------------------------------- */
/* images                                                            */

static void img_try(struct exec *e);
static void img_pull(struct exec *e);

static void
img_reset(struct imgget *g)
{
	free(g->ref);
	free(g->id);
	free(g->shown_id);
	free(g->digest);
	free(g->lasterr);
	memset(g, 0, sizeof(*g));
}

static void
img_found(struct exec *e, json_t *js)
{
	struct imgget *g = &e->img;
	json_t *digests = json_object_get(js, "RepoDigests");
	const char *id = json_string_value(json_object_get(js, "Id"));

	free(g->shown_id);
	g->shown_id = xstrdup(id != NULL ? id : g->ref);
	free(g->digest);
	g->digest = NULL;
	if (json_array_size(digests) > 0 &&
	    json_is_string(json_array_get(digests, 0)))
		g->digest = xstrdup(json_string_value(json_array_get(digests,
		    0)));
	free(g->id);
	g->id = xstrdup(g->digest != NULL ? g->digest : g->shown_id);
	if (g->digest != NULL)
		msg(e, JOBLOG_PLAIN, "Using docker image %s for %s with digest "
		    "%s ...", g->shown_id, g->ref, g->digest);
	else
		msg(e, JOBLOG_PLAIN, "Using docker image %s for %s ...",
		    g->shown_id, g->ref);
	g->done(e, 1);
}

static void
img_after_pull_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	if (res->err == 0) {
		img_found(e, res->json);
		return;
	}
	free(e->img.lasterr);
	e->img.lasterr = xstrdup(res->msg);
	e->img.i++;
	img_try(e);
}

static void
img_pull_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct imgget *g = &e->img;
	struct op *o;

	(void)data;
	if (res->err != 0) {
		/* Transient errors are retried; a missing image or denied
		 * access fails fast (4xx). */
		if (res->status >= 500 || res->status == 0) {
			if (++g->attempt < PULL_ATTEMPTS) {
				msg(e, JOBLOG_WARNING, "WARNING: Failed to pull "
				    "image %s: %s (retrying)", g->ref, res->msg);
				img_pull(e);
				return;
			}
		}
		msg(e, JOBLOG_WARNING, "WARNING: Failed to pull image with "
		    "policy \"%s\": %s", pullpolicy_name(g->pol[g->i]),
		    res->msg);
		free(g->lasterr);
		g->lasterr = xstrdup(res->msg);
		g->i++;
		g->attempt = 0;
		img_try(e);
		return;
	}
	o = op_new(e, img_after_pull_cb, NULL);
	o->req = docker_image_inspect(e->d, g->ref, op_cb, o);
}

static void
img_pull(struct exec *e)
{
	struct imgget *g = &e->img;
	struct op *o;
	char *hdr = NULL;
	const char *src = NULL, *reg = NULL;

	if (g->attempt == 0)
		msg(e, JOBLOG_PLAIN, "Pulling docker image %s ...", g->ref);
	if (e->auth != NULL) {
		hdr = dockerauth_header(e->auth, g->ref, &src, &reg);
		if (hdr != NULL && g->attempt == 0)
			msg(e, JOBLOG_PLAIN, "Authenticating with credentials "
			    "from %s", src);
	}
	o = op_new(e, img_pull_cb, NULL);
	o->req = docker_image_pull_platform(e->d, g->ref, g->platform, hdr,
	    NULL, op_cb, o);
	freezero_str(hdr);
}

static void
img_inspect_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct imgget *g = &e->img;
	enum pullpolicy p = g->pol[g->i];

	(void)data;
	if (res->err == 0 && p != PULL_ALWAYS) {
		if (p == PULL_IF_NOT_PRESENT)
			msg(e, JOBLOG_PLAIN, "Using locally found image version "
			    "due to \"if-not-present\" pull policy");
		img_found(e, res->json);
		return;
	}
	if (res->err != 0 && res->err != FL_ERR_NOTFOUND) {
		free(g->lasterr);
		g->lasterr = xstrdup(res->msg);
		g->i++;
		img_try(e);
		return;
	}
	if (p == PULL_NEVER) {
		free(g->lasterr);
		g->lasterr = xasprintf("Image %s not found locally and the "
		    "pull policy is \"never\"", g->ref);
		msg(e, JOBLOG_WARNING, "WARNING: %s", g->lasterr);
		g->i++;
		img_try(e);
		return;
	}
	img_pull(e);
}

static void
img_try(struct exec *e)
{
	struct imgget *g = &e->img;
	struct op *o;

	if (g->i >= g->npol) {
		g->done(e, 0);
		return;
	}
	o = op_new(e, img_inspect_cb, NULL);
	o->req = docker_image_inspect(e->d, g->ref, op_cb, o);
}

static void build_image_done(struct exec *e, int ok);

static void
img_get(struct exec *e, const char *ref, const enum pullpolicy *pol, int n,
    void (*done)(struct exec *, int))
{
	img_reset(&e->img);
	e->img.ref = xstrdup(ref);
	/* GitLab passes the job's platform for the build image only. */
	if (done == build_image_done && e->job->image.docker_platform != NULL &&
	    *e->job->image.docker_platform != '\0')
		e->img.platform = e->job->image.docker_platform;
	memcpy(e->img.pol, pol, (size_t)n * sizeof(*pol));
	e->img.npol = n;
	e->img.done = done;
	img_try(e);
}

static void
policy_list(enum pullpolicy *pol, int n, char *buf, size_t len)
{
	struct sbuf s;
	int i;

	sbuf_init(&s);
	sbuf_addch(&s, '[');
	for (i = 0; i < n; i++)
		sbuf_addf(&s, "%s%s", i > 0 ? " " : "", pullpolicy_name(pol[i]));
	sbuf_addch(&s, ']');
	snprintf(buf, len, "%s", s.buf);
	sbuf_release(&s);
}

/* ---------------------------------------------------------------- */
/* services                                                          */

static void
svc_release(struct svc *s)
{
	size_t i;

	free(s->image);
	free(s->name);
	free(s->cname);
	free(s->image_id);
	free(s->id);
	free(s->ip);
	for (i = 0; i < s->aliases.n; i++)
		free(s->aliases.v[i]);
	free(s->aliases.v);
	json_decref(s->env);
	json_decref(s->cmd);
	json_decref(s->entrypoint);
	free(s->hc_err);
	sbuf_release(&s->hc_logs);
	sbuf_release(&s->svc_logs);
	if (s->hc_timer != NULL)
		event_free(s->hc_timer);
}

static void
strlist_push(struct strlist *l, const char *s)
{
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

static int
alias_used(struct exec *e, const char *a)
{
	size_t i, k;

	for (i = 0; i < e->nsvcs; i++)
		for (k = 0; k < e->svcs[i].aliases.n; k++)
			if (strcmp(e->svcs[i].aliases.v[k], a) == 0)
				return 1;
	return 0;
}

static char *
replace_slash(const char *s, const char *with)
{
	struct sbuf b;

	sbuf_init(&b);
	for (; *s != '\0'; s++) {
		if (*s == '/')
			sbuf_adds(&b, with);
		else
			sbuf_addch(&b, *s);
	}
	return sbuf_detach(&b, NULL);
}

static void
add_alias(struct exec *e, struct svc *s, const char *a)
{
	size_t k;

	if (*a == '\0')
		return;
	for (k = 0; k < s->aliases.n; k++)
		if (strcmp(s->aliases.v[k], a) == 0)
			return;		/* its own default twice */
	if (alias_used(e, a)) {
		msg(e, JOBLOG_WARNING, "WARNING: Service %s: alias %s is "
		    "already in use, skipped", s->image, a);
		return;
	}
	strlist_push(&s->aliases, a);
}

static void
svc_add_port(struct svc *s, long port)
{
	int i;

	if (port <= 0 || port > 65535 || s->nports >= SERVICE_PORTS_MAX)
		return;
	for (i = 0; i < s->nports; i++)
		if (s->ports[i] == port)
			return;
	s->ports[s->nports++] = (int)port;
}

/* Define the services: config ones first, then the job's. */
static int
services_plan(struct exec *e, char *err, size_t errlen)
{
	const struct config_docker *dc = e->dc;
	size_t nconf = dc->nservices, njob = e->job->nservices, i, k;
	const char **internal;
	size_t total = nconf + njob;

	if (dc->services_limit >= 0 && (int64_t)total > dc->services_limit) {
		snprintf(err, errlen, "services count %zu exceeds the maximum "
		    "of %lld (services_limit)", total,
		    (long long)dc->services_limit);
		return FL_ERR_INVAL;
	}
	internal = xcalloc(nconf + 1, sizeof(*internal));
	for (i = 0; i < nconf; i++)
		internal[i] = dc->services[i].name;
	for (i = 0; i < njob; i++) {
		if (pullpolicy_image_allowed(e->job->services[i].name,
		    (const char *const *)dc->allowed_services.v,
		    dc->allowed_services.n, internal, nconf, "services", err,
		    errlen) < 0) {
			free(internal);
			return FL_ERR_INVAL;
		}
	}
	free(internal);
	e->svcs = xcalloc(total + 1, sizeof(*e->svcs));
	for (i = 0; i < total; i++) {
		struct svc *s = &e->svcs[i];
		const char *image, *alias;
		char *n2;
		int n;

		s->e = e;
		s->hc_ctr = -1;
		s->env = json_array();
		sbuf_init(&s->hc_logs);
		sbuf_init(&s->svc_logs);
		/* Job variables that are public or internal, then the
		 * service's own. */
		for (k = 0; k < e->job->variables.n; k++) {
			const struct gitlab_variable *v = &e->job->variables.v[k];

			if (!v->public || v->file)
				continue;
			json_array_append_new(s->env, json_sprintf("%s=%s",
			    v->key, v->value));
		}
		if (i < nconf) {
			const struct config_docker_service *cs = &dc->services[i];

			image = cs->name;
			alias = cs->alias;
			for (k = 0; k < cs->environment.n; k++)
				json_array_append_new(s->env,
				    json_string(cs->environment.v[k]));
			if (cs->command.n > 0)
				s->cmd = strlist_json(&cs->command);
			if (cs->entrypoint.n > 0 &&
			    !dc->disable_entrypoint_overwrite)
				s->entrypoint = strlist_json(&cs->entrypoint);
			n = pullpolicy_effective(image, NULL, 0,
			    (const char *const *)dc->pull_policy.v,
			    dc->pull_policy.n,
			    (const char *const *)dc->allowed_pull_policies.v,
			    dc->allowed_pull_policies.n, s->pol, err, errlen);
		} else {
			const struct gitlab_image *gi =
			    &e->job->services[i - nconf];

			image = gi->name;
			alias = NULL;
			for (k = 0; k < gi->variables.n; k++)
				json_array_append_new(s->env, json_sprintf(
				    "%s=%s", gi->variables.v[k].key,
				    gi->variables.v[k].value));
			if (gi->command.n > 0)
				s->cmd = strv_json(&gi->command);
			if (gi->entrypoint.n > 0 &&
			    !dc->disable_entrypoint_overwrite)
				s->entrypoint = strv_json(&gi->entrypoint);
			for (k = 0; k < gi->nports; k++)
				svc_add_port(s, (long)gi->ports[k].number);
			n = pullpolicy_effective(image,
			    (const char *const *)gi->pull_policy.v,
			    gi->pull_policy.n,
			    (const char *const *)dc->pull_policy.v,
			    dc->pull_policy.n,
			    (const char *const *)dc->allowed_pull_policies.v,
			    dc->allowed_pull_policies.n, s->pol, err, errlen);
		}
		e->nsvcs = i + 1;
		s->image = xstrdup(image != NULL ? image : "");
		if (n < 0)
			return FL_ERR_INVAL;
		s->npol = n;
		{
			char *plain = exec_image_name_only(s->image);

			s->name = replace_slash(plain, "__");
			n2 = replace_slash(plain, "-");
			free(plain);
		}
		s->cname = xasprintf("%s-%s-%zu", e->prefix, s->name, i);
		/* Aliases: the defaults, then the user's. */
		add_alias(e, s, s->name);
		add_alias(e, s, n2);
		free(n2);
		if (i < nconf) {
			if (alias != NULL) {
				char *cp = xstrdup(alias), *save = NULL, *t;

				for (t = strtok_r(cp, " ,", &save); t != NULL;
				    t = strtok_r(NULL, " ,", &save))
					add_alias(e, s, t);
				free(cp);
			}
		} else {
			const struct gitlab_image *gi =
			    &e->job->services[i - nconf];

			for (k = 0; k < gi->aliases.n; k++)
				add_alias(e, s, gi->aliases.v[k]);
		}
		/* HEALTHCHECK_TCP_PORT from the service's env. */
		for (k = 0; k < json_array_size(s->env); k++) {
			const char *kv = json_string_value(json_array_get(s->env,
			    k));

			if (kv != NULL && strncmp(kv, "HEALTHCHECK_TCP_PORT=",
			    21) == 0)
				svc_add_port(s, strtol(kv + 21, NULL, 10));
		}
	}
	return 0;
}

static void
svc_inspect_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	json_t *ns, *nets, *v;
	const char *ip = NULL, *key;
	size_t k;

	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "inspect service "
		    "container %s: %s", s->cname, res->msg);
		return;
	}
	ns = json_object_get(res->json, "NetworkSettings");
	if (e->network_mode != NULL && strcmp(e->network_mode, "host") == 0) {
		ip = "127.0.0.1";
	} else {
		nets = json_object_get(ns, "Networks");
		if (e->per_build && (v = json_object_get(nets, e->network)))
			ip = json_string_value(json_object_get(v, "IPAddress"));
		if ((ip == NULL || *ip == '\0'))
			ip = json_string_value(json_object_get(ns, "IPAddress"));
		if (ip == NULL || *ip == '\0') {
			json_object_foreach(nets, key, v) {
				ip = json_string_value(json_object_get(v,
				    "IPAddress"));
				if (ip != NULL && *ip != '\0')
					break;
			}
		}
	}
	s->ip = xstrdup(ip != NULL ? ip : "");
	/* Exposed ports of the container (the image's). */
	{
		json_t *cfg = json_object_get(res->json, "Config");
		json_t *ex = json_object_get(cfg, "ExposedPorts");
		const char *p;

		json_object_foreach(ex, p, v) {
			if (strstr(p, "/tcp") != NULL || strchr(p, '/') == NULL)
				svc_add_port(s, strtol(p, NULL, 10));
		}
	}
	/* On the default bridge (and host mode) aliases go in ExtraHosts of
	 * every later container. */
	if (!e->per_build && *s->ip != '\0') {
		for (k = 0; k < s->aliases.n; k++)
			json_array_append_new(e->extra_hosts, json_sprintf(
			    "%s:%s", s->aliases.v[k], s->ip));
	}
	e->svc_i++;
	services_next(e);
}

static void
svc_start_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	struct op *o;

	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "start service "
		    "%s: %s", s->image, res->msg);
		return;
	}
	o = op_new(e, svc_inspect_cb, s);
	o->req = docker_container_inspect(e->d, s->id, op_cb, o);
}

static void
add_ctr(struct exec *e, const char *name, const char *id, const char *type)
{
	e->ctrs = xreallocarray(e->ctrs, e->nctrs + 1, sizeof(*e->ctrs));
	e->ctrs[e->nctrs].name = xstrdup(name);
	e->ctrs[e->nctrs].id = xstrdup(id);
	e->ctrs[e->nctrs].type = type;
	e->nctrs++;
}

static void
svc_create_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	struct op *o;

	if (res->err != 0 || res->id == NULL) {
		prepare_failed(e, res->status == 400 ?
		    "runner_configuration_error" : "runner_system_failure",
		    res->status != 400, "create service container %s: %s",
		    s->cname, res->msg);
		return;
	}
	s->id = xstrdup(res->id);
	add_ctr(e, s->cname, s->id, "service");
	o = op_new(e, svc_start_cb, s);
	o->req = docker_container_start(e->d, s->id, op_cb, o);
}

static void
svc_image_done(struct exec *e, int ok)
{
	struct svc *s = &e->svcs[e->svc_i];
	json_t *body, *labels, *aliases;
	struct op *o;
	char *plain;
	size_t k;

	if (!ok) {
		prepare_failed(e, "image_pull_failure", 0, "failed to pull "
		    "image \"%s\": %s", s->image, e->img.lasterr != NULL ?
		    e->img.lasterr : "no pull policy left");
		return;
	}
	s->image_id = xstrdup(e->img.id);
	labels = labels_for(e, "service");
	plain = exec_image_name_only(s->image);
	label(labels, "service", plain);
	label(labels, "service.version", strlen(s->image) > strlen(plain) &&
	    s->image[strlen(plain)] == ':' ? s->image + strlen(plain) + 1 :
	    "latest");
	free(plain);
	body = json_pack("{s:s, s:O, s:o, s:o}", "Image", s->image_id,
	    "Env", s->env, "Labels", labels,
	    "HostConfig", host_config(e, 0, 1, s->image));
	if (s->cmd != NULL)
		json_object_set(body, "Cmd", s->cmd);
	if (s->entrypoint != NULL)
		json_object_set(body, "Entrypoint", s->entrypoint);
	aliases = json_array();
	for (k = 0; k < s->aliases.n; k++)
		json_array_append_new(aliases, json_string(s->aliases.v[k]));
	{
		json_t *nc = networking(e, aliases);

		if (nc != NULL)
			json_object_set_new(body, "NetworkingConfig", nc);
	}
	msg(e, JOBLOG_PLAIN, "Starting service %s ...", s->image);
	o = op_new(e, svc_create_cb, s);
	o->req = docker_container_create(e->d, s->cname, body, op_cb, o);
	json_decref(body);
}

static void
services_next(struct exec *e)
{
	struct svc *s;
	char pl[128];

	if (e->svc_i >= e->nsvcs) {
		health_begin(e);
		return;
	}
	s = &e->svcs[e->svc_i];
	policy_list(s->pol, s->npol, pl, sizeof(pl));
	msg(e, JOBLOG_PLAIN, "Using effective pull policy of %s for container "
	    "%s", pl, s->image);
	img_get(e, s->image, s->pol, s->npol, svc_image_done);
}

/* ---- health checks ---- */

static void
health_report(struct exec *e)
{
	size_t i;

	for (i = 0; i < e->nsvcs; i++) {
		struct svc *s = &e->svcs[i];
		struct sbuf b;

		if (!s->hc_failed)
			continue;
		sbuf_init(&b);
		sbuf_addf(&b, "\n%s*** WARNING:%s Service %s probably didn't "
		    "start properly.\n\nHealth check error:\n%s\n\n"
		    "Health check container logs:\n%s\n\n"
		    "Service container logs:\n%s\n\n%s*********%s\n\n",
		    JOBLOG_YELLOW, JOBLOG_RESET, s->image,
		    s->hc_err != NULL ? s->hc_err : "",
		    s->hc_logs.buf != NULL ? s->hc_logs.buf : "",
		    s->svc_logs.buf != NULL ? s->svc_logs.buf : "",
		    JOBLOG_YELLOW, JOBLOG_RESET);
		emit_runner(e, &b);
		sbuf_release(&b);
	}
	section_end(e, "prepare_executor");
	stages_begin(e);
}

static void
health_one_done(struct exec *e, struct svc *s)
{
	if (s->hc_done)
		return;
	s->hc_done = 1;
	if (s->hc_timer != NULL)
		evtimer_del(s->hc_timer);
	if (--e->hc_pending == 0)
		health_report(e);
}

static void
logs_add(struct sbuf *b, const char *buf, size_t len)
{
	if (b->len + len > SERVICE_LOG_MAX)
		len = b->len < SERVICE_LOG_MAX ? SERVICE_LOG_MAX - b->len : 0;
	sbuf_add(b, buf, len);
}

static void
hc_logs_chunk(struct exec *e, void *data, int stream, const char *buf,
    size_t len)
{
	struct svc *s = data;

	(void)e;
	(void)stream;
	logs_add(&s->hc_logs, buf, len);
}

static void
svc_logs_chunk(struct exec *e, void *data, int stream, const char *buf,
    size_t len)
{
	struct svc *s = data;

	(void)e;
	(void)stream;
	logs_add(&s->svc_logs, buf, len);
}

static void
svc_logs_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)res;
	health_one_done(e, data);
}

/* After the wait container's logs: the service container's. */
static void
hc_logs_done(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	struct op *o;

	(void)res;
	o = op_new(e, svc_logs_cb, s);
	o->chunk = svc_logs_chunk;
	o->req = docker_container_logs(e->d, s->id, 0, op_chunk_cb, op_cb, o);
}

/* The health check failed: collect the logs, then count it done. */
static void
hc_failed(struct exec *e, struct svc *s, const char *why)
{
	struct op *o;

	if (s->hc_failed)
		return;
	s->hc_failed = 1;
	free(s->hc_err);
	s->hc_err = xstrdup(why);
	if (s->hc_ctr >= 0) {
		o = op_new(e, hc_logs_done, s);
		o->chunk = hc_logs_chunk;
		o->req = docker_container_logs(e->d, e->ctrs[s->hc_ctr].id, 0,
		    op_chunk_cb, op_cb, o);
	} else {
		hc_logs_done(e, s, NULL);
	}
}

static int64_t
services_timeout_s(const struct exec *e)
{
	return e->dc->wait_for_services_timeout > 0 ?
	    e->dc->wait_for_services_timeout : 30;
}

static void
hc_wait_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	char *m;

	evtimer_del(s->hc_timer);
	if (res->err != 0) {
		hc_failed(e, s, res->msg);
		return;
	}
	if (res->exit_code != 0) {
		m = xasprintf("service %s: health check exited with code %d",
		    s->image, res->exit_code);
		hc_failed(e, s, m);
		free(m);
		return;
	}
	health_one_done(e, s);
}

static void
hc_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	struct exec *e = s->e;
	struct op *o, *next;
	char *m;

	(void)fd;
	(void)what;
	for (o = TAILQ_FIRST(&e->ops); o != NULL; o = next) {
		next = TAILQ_NEXT(o, link);
		if (o->data == s && o->fn == hc_wait_cb)
			op_cancel(e, o);
	}
	m = xasprintf("service %s did not answer on its ports within %llds",
	    s->image, (long long)services_timeout_s(e));
	hc_failed(e, s, m);
	free(m);
}

static void
hc_start_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	struct op *o;
	struct timeval tv = { 0, 0 };

	if (res->err != 0) {
		hc_failed(e, s, res->msg);
		return;
	}
	tv.tv_sec = (time_t)services_timeout_s(e);
	evtimer_add(s->hc_timer, &tv);
	o = op_new(e, hc_wait_cb, s);
	o->req = docker_container_wait(e->d, e->ctrs[s->hc_ctr].id,
	    "not-running", op_cb, o);
}

static void
hc_create_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct svc *s = data;
	struct op *o;
	char *name;

	if (res->err != 0 || res->id == NULL) {
		hc_failed(e, s, res->msg);
		return;
	}
	name = xasprintf("%s-wait-for-service", s->cname);
	add_ctr(e, name, res->id, "wait");
	free(name);
	s->hc_ctr = (int)e->nctrs - 1;
	o = op_new(e, hc_start_cb, s);
	o->req = docker_container_start(e->d, res->id, op_cb, o);
}

/* One wait container per service, in parallel, each bounded by
 * wait_for_services_timeout; a failure is a warning, never the job's. */
static void
health_begin(struct exec *e)
{
	size_t i;
	int k;

	if (e->dc->wait_for_services_timeout < 0 || e->nsvcs == 0) {
		health_report(e);
		return;
	}
	e->hc_pending = (int)e->nsvcs;
	for (i = 0; i < e->nsvcs; i++) {
		struct svc *s = &e->svcs[i];
		json_t *env, *hosts, *body, *hc;
		char id12[13], *name;
		struct op *o;

		s->hc_timer = evtimer_new(e->base, hc_timeout, s);
		if (s->nports == 0) {
			/* GitLab reports it too: nothing to wait for. */
			s->hc_failed = 1;
			s->hc_err = xasprintf("service %s has no exposed TCP "
			    "port (and no HEALTHCHECK_TCP_PORT)", s->image);
			health_one_done(e, s);
			continue;
		}
		snprintf(id12, sizeof(id12), "%.12s", s->id);
		env = json_array();
		json_array_append_new(env, json_sprintf(
		    "WAIT_FOR_SERVICE_TCP_ADDR=%s", id12));
		for (k = 0; k < s->nports; k++)
			json_array_append_new(env, json_sprintf(
			    "WAIT_FOR_SERVICE_%d_TCP_PORT=%d", s->ports[k],
			    s->ports[k]));
		hc = host_config(e, 0, 0, e->helper_image);
		hosts = json_object_get(hc, "ExtraHosts");
		if (hosts == NULL) {
			hosts = json_array();
			json_object_set_new(hc, "ExtraHosts", hosts);
		}
		json_array_append_new(hosts, json_sprintf("%s:%s", id12,
		    s->ip));
		json_object_set_new(hc, "Binds", json_array());
		body = json_pack("{s:s, s:[s,s], s:o, s:o, s:o}", "Image",
		    e->helper_image, "Cmd", HELPER_PATH, "health-check",
		    "Env", env, "Labels", labels_for(e, "wait"),
		    "HostConfig", hc);
		name = xasprintf("%s-wait-for-service", s->cname);
		o = op_new(e, hc_create_cb, s);
		o->req = docker_container_create(e->d, name, body, op_cb, o);
		free(name);
		json_decref(body);
	}
}

/* ---------------------------------------------------------------- */
/* volumes                                                           */

static void
vol_add(struct exec *e, const char *name, const char *dest, int temporary)
{
	e->vols = xreallocarray(e->vols, e->nvols + 1, sizeof(*e->vols));
	e->vols[e->nvols].name = name != NULL ? xstrdup(name) : NULL;
	e->vols[e->nvols].dest = xstrdup(dest);
	e->vols[e->nvols].temporary = temporary;
	e->vols[e->nvols].created = 0;
	e->nvols++;
}

/* Is dest already a mount point of a configured volume? */
static int
covered(struct exec *e, const char *dest)
{
	size_t i;

	for (i = 0; i < e->nvols; i++)
		if (strcmp(e->vols[i].dest, dest) == 0)
			return 1;
	return 0;
}

static const char *
protected_suffix(struct exec *e)
{
	return e->job->git_info.protected == 1 ? "-protected" : "";
}

/* A cache volume for a bare path (§2.4): temporary with disable_cache, a
 * host directory under cache_dir, else a named reusable volume. */
static void
cache_volume(struct exec *e, const char *dest, int temporary)
{
	char md5[33], *name;

	exec_md5_hex(dest, md5);
	if (temporary) {
		name = xasprintf("%s-cache-%s", e->prefix, md5);
		vol_add(e, name, dest, 1);
	} else if (e->dc->cache_dir != NULL && *e->dc->cache_dir != '\0') {
		char *bind = xasprintf("%s/%s/%s%s:%s", e->dc->cache_dir,
		    e->unique, md5, protected_suffix(e), dest);

		json_array_append_new(e->binds, json_string(bind));
		vol_add(e, NULL, dest, 0);
		free(bind);
		return;
	} else {
		name = xasprintf("%s-cache-%s%s", e->unique, md5,
		    protected_suffix(e));
		vol_add(e, name, dest, 0);
	}
	free(name);
}

static void
volumes_plan(struct exec *e)
{
	const struct config_docker *dc = e->dc;
	const char *strategy, *cache;
	size_t i;

	for (i = 0; i < dc->volumes.n; i++) {
		const char *v = dc->volumes.v[i];
		const char *c = strchr(v, ':');

		if (c != NULL) {
			char *dest = xstrdup(c + 1), *m = strchr(dest, ':');

			if (m != NULL)
				*m = '\0';
			json_array_append_new(e->binds, json_string(v));
			vol_add(e, NULL, dest, 0);
			free(dest);
		} else {
			cache_volume(e, v, dc->disable_cache);
		}
	}
	if (!covered(e, e->paths.builds_dir)) {
		strategy = gitlab_job_variable(e->job, "GIT_STRATEGY");
		if (strategy == NULL || *strategy == '\0')
			strategy = e->job->allow_git_fetch ? "fetch" : "clone";
		cache_volume(e, e->paths.builds_dir,
		    strcmp(strategy, "fetch") != 0 || dc->disable_cache);
	}
	cache = e->rc->cache_dir != NULL && *e->rc->cache_dir != '\0' ?
	    e->rc->cache_dir : "/cache";
	if (!dc->disable_cache && !covered(e, cache))
		cache_volume(e, cache, 0);
}

/*
 * After a volume is created, a short-lived helper container runs
 * "cache-init" on it, so that a job whose image runs as another user than
 * root can write there (GitLab's volumes/permission: world-writable).
 */
static void
ci_wait_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct vol *v = &e->vols[e->vol_i];

	(void)data;
	if (res->err != 0 || res->exit_code != 0) {
		prepare_failed(e, "runner_system_failure", 1, "cache-init of "
		    "volume %s: %s", v->name, res->err != 0 ? res->msg :
		    "the helper exited with an error");
		return;
	}
	e->vol_i++;
	volumes_next(e);
}

static void
ci_start_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct op *o;

	(void)data;
	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "cache-init of "
		    "volume %s: %s", e->vols[e->vol_i].name, res->msg);
		return;
	}
	o = op_new(e, ci_wait_cb, NULL);
	o->req = docker_container_wait(e->d, e->ctrs[e->nctrs - 1].id,
	    "not-running", op_cb, o);
}

static void
ci_create_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct vol *v = &e->vols[e->vol_i];
	struct op *o;
	char *name;

	(void)data;
	if (res->err != 0 || res->id == NULL) {
		prepare_failed(e, "runner_system_failure", 1, "cache-init of "
		    "volume %s: %s", v->name, res->msg);
		return;
	}
	name = xasprintf("%s-cache-init-%zu", e->prefix, e->vol_i);
	add_ctr(e, name, res->id, "cache-init");
	free(name);
	o = op_new(e, ci_start_cb, NULL);
	o->req = docker_container_start(e->d, res->id, op_cb, o);
}

static void
cache_init_begin(struct exec *e, const struct vol *v)
{
	json_t *body, *hc;
	char *name;
	struct op *o;

	hc = json_pack("{s:[s+], s:s}", "Binds", v->name,
	    ":" CACHE_INIT_DIR, "NetworkMode", "none");
	body = json_pack("{s:s, s:[s,s,s], s:o, s:o}", "Image",
	    e->helper_image, "Cmd", HELPER_PATH, "cache-init", CACHE_INIT_DIR,
	    "Labels", labels_for(e, "cache-init"), "HostConfig", hc);
	name = xasprintf("%s-cache-init-%zu", e->prefix, e->vol_i);
	o = op_new(e, ci_create_cb, NULL);
	o->req = docker_container_create(e->d, name, body, op_cb, o);
	free(name);
	json_decref(body);
}

static void
vol_create_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct vol *v = &e->vols[e->vol_i];
	char *bind;

	(void)data;
	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "create volume "
		    "%s: %s", v->name, res->msg);
		return;
	}
	v->created = 1;
	bind = xasprintf("%s:%s", v->name, v->dest);
	json_array_append_new(e->binds, json_string(bind));
	free(bind);
	cache_init_begin(e, v);
}

static void
volumes_next(struct exec *e)
{
	struct vol *v;
	json_t *body, *labels;
	struct op *o;

	while (e->vol_i < e->nvols && e->vols[e->vol_i].name == NULL)
		e->vol_i++;
	if (e->vol_i >= e->nvols) {
		char err[512];

		if (services_plan(e, err, sizeof(err)) < 0) {
			prepare_failed(e, "runner_configuration_error", 0, "%s",
			    err);
			return;
		}
		services_next(e);
		return;
	}
	v = &e->vols[e->vol_i];
	labels = labels_for(e, "cache");
	label(labels, "destination", v->dest);
	label(labels, "protected", e->job->git_info.protected == 1 ? "true" :
	    "false");
	label(labels, "reusable", v->temporary ? "false" : "true");
	body = json_pack("{s:s, s:o}", "Name", v->name, "Labels", labels);
	if (e->dc->volume_driver != NULL)
		json_object_set_new(body, "Driver",
		    json_string(e->dc->volume_driver));
	o = op_new(e, vol_create_cb, NULL);
	o->req = docker_volume_create(e->d, body, op_cb, o);
	json_decref(body);
}

/* ---------------------------------------------------------------- */
/* network                                                           */

static void
network_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	if (res->err != 0 || res->id == NULL) {
		prepare_failed(e, "runner_system_failure", 1, "create network "
		    "%s: %s", e->network, res->msg);
		return;
	}
	e->network_id = xstrdup(res->id);
	e->network_mode = e->network;
	volumes_next(e);
}

static void
network_begin(struct exec *e)
{
	json_t *body;
	struct op *o;

	if (e->dc->network_mode != NULL && *e->dc->network_mode != '\0') {
		e->network_mode = e->dc->network_mode;
	} else if (config_feature_flag(e->rc, "FF_NETWORK_PER_BUILD", 0)) {
		e->per_build = 1;
		e->network = xasprintf("%s-network", e->prefix);
		body = json_pack("{s:s, s:s, s:b, s:o}", "Name", e->network,
		    "Driver", "bridge", "CheckDuplicate", 1, "Labels",
		    labels_for(e, "network"));
		o = op_new(e, network_cb, NULL);
		o->req = docker_network_create(e->d, body, op_cb, o);
		json_decref(body);
		return;
	}
	volumes_next(e);
}

/* ---------------------------------------------------------------- */
/* build image, helper image                                         */

static void
build_image_done(struct exec *e, int ok)
{
	if (!ok) {
		prepare_failed(e, "image_pull_failure", 0, "failed to pull "
		    "image \"%s\": %s", e->build_ref, e->img.lasterr != NULL ?
		    e->img.lasterr : "no pull policy left");
		return;
	}
	e->build_image = xstrdup(e->img.id);
	network_begin(e);
}

static void
build_image_begin(struct exec *e)
{
	const struct config_docker *dc = e->dc;
	enum pullpolicy pol[PULLPOLICY_MAX];
	const char *internal[1];
	char err[512], pl[128];
	int n;

	internal[0] = dc->image;
	if (pullpolicy_image_allowed(e->build_ref,
	    (const char *const *)dc->allowed_images.v, dc->allowed_images.n,
	    internal, dc->image != NULL ? 1 : 0, "images", err,
	    sizeof(err)) < 0) {
		prepare_failed(e, "runner_configuration_error", 0, "%s", err);
		return;
	}
	n = pullpolicy_effective(e->build_ref,
	    (const char *const *)e->job->image.pull_policy.v,
	    e->job->image.pull_policy.n,
	    (const char *const *)dc->pull_policy.v, dc->pull_policy.n,
	    (const char *const *)dc->allowed_pull_policies.v,
	    dc->allowed_pull_policies.n, pol, err, sizeof(err));
	if (n < 0) {
		prepare_failed(e, "runner_configuration_error", 0, "%s", err);
		return;
	}
	policy_list(pol, n, pl, sizeof(pl));
	msg(e, JOBLOG_PLAIN, "Using effective pull policy of %s for container "
	    "%s", pl, e->build_ref);
	img_get(e, e->build_ref, pol, n, build_image_done);
}

static void helper_inspect(struct exec *e, int after_load);

static void
helper_found(struct exec *e, json_t *js)
{
	const char *id = json_string_value(json_object_get(js, "Id"));

	e->helper_image = xstrdup(id != NULL ? id : e->helper_ref);
	build_image_begin(e);
}

static void
helper_image_done(struct exec *e, int ok)
{
	if (!ok) {
		prepare_failed(e, "image_pull_failure", 0, "failed to pull "
		    "helper image \"%s\": %s", e->helper_ref,
		    e->img.lasterr != NULL ? e->img.lasterr : "not found");
		return;
	}
	e->helper_image = xstrdup(e->img.id);
	build_image_begin(e);
}

/*
 * One helper image load per engine at a time: jobs landing together on a
 * fresh instance wait for the first one's load instead of each sending
 * the whole tar again (memory and the engine's time).
 */
struct helper_load {
	struct helper_load *next;
	struct docker *d;
	struct exec *loader;
	struct exec **waiters;
	size_t n;
};
static struct helper_load *helper_loads;

static struct helper_load *
helper_load_find(struct docker *d)
{
	for (struct helper_load *l = helper_loads; l != NULL; l = l->next)
		if (l->d == d)
			return l;
	return NULL;
}

static void helper_inspect(struct exec *e, int after_load);

/* e is freed: it no longer waits; if it was loading, its load is
 * abandoned and the waiters look again (one of them loads). */
static void
helper_load_forget(struct exec *e)
{
	for (struct helper_load **pp = &helper_loads; *pp != NULL;) {
		struct helper_load *l = *pp;

		for (size_t i = 0; i < l->n; i++)
			if (l->waiters[i] == e)
				l->waiters[i] = NULL;
		if (l->loader != e) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		for (size_t i = 0; i < l->n; i++)
			if (l->waiters[i] != NULL)
				helper_inspect(l->waiters[i], 0);
		free(l->waiters);
		free(l);
	}
}

/* The load for e->d ended: wake the jobs that waited for it. */
static void
helper_load_end(struct exec *e)
{
	struct helper_load *l = helper_load_find(e->d);

	if (l == NULL)
		return;
	for (struct helper_load **pp = &helper_loads; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->waiters[i] != NULL)
			helper_inspect(l->waiters[i], 1);
	free(l->waiters);
	free(l);
}

static void
helper_load_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	helper_load_end(e);
	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "loading the "
		    "helper image from %s: %s", e->helper_tar, res->msg);
		return;
	}
	helper_inspect(e, 1);
}

static void
helper_inspect_cb(struct exec *e, void *data, const struct docker_result *res)
{
	int after_load = data != NULL;
	struct op *o;

	if (res->err == 0) {
		helper_found(e, res->json);
		return;
	}
	if (res->err != FL_ERR_NOTFOUND) {
		prepare_failed(e, "runner_system_failure", 1, "inspect helper "
		    "image %s: %s", e->helper_ref, res->msg);
		return;
	}
	if (!after_load && e->helper_tar != NULL && !e->helper_configured) {
		struct helper_load *l = helper_load_find(e->d);

		if (l != NULL) {	/* another job is loading it */
			msg(e, JOBLOG_PLAIN, "Waiting for the helper image %s "
			    "being loaded ...", e->helper_ref);
			l->waiters = xreallocarray(l->waiters, l->n + 1,
			    sizeof(*l->waiters));
			l->waiters[l->n++] = e;
			return;
		}
		l = xcalloc(1, sizeof(*l));
		l->d = e->d;
		l->loader = e;
		l->next = helper_loads;
		helper_loads = l;
		msg(e, JOBLOG_PLAIN, "Loading helper image %s from %s ...",
		    e->helper_ref, e->helper_tar);
		o = op_new(e, helper_load_cb, NULL);
		o->req = docker_image_load(e->d, e->helper_tar, NULL, op_cb, o);
		return;
	}
	if (after_load) {
		prepare_failed(e, "runner_system_failure", 1, "the helper image "
		    "%s is not in %s", e->helper_ref, e->helper_tar);
		return;
	}
	{
		enum pullpolicy pol[1] = { PULL_ALWAYS };

		img_get(e, e->helper_ref, pol, 1, helper_image_done);
	}
}

static void
helper_inspect(struct exec *e, int after_load)
{
	struct op *o = op_new(e, helper_inspect_cb, after_load ? e : NULL);

	o->req = docker_image_inspect(e->d, e->helper_ref, op_cb, o);
}

static void
ping_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	if (res->err != 0) {
		prepare_failed(e, "runner_system_failure", 1, "Cannot connect to "
		    "the Docker daemon: %s", res->msg);
		return;
	}
	helper_inspect(e, 0);
}

/* ---------------------------------------------------------------- */
/* stages                                                            */

static const char *
step_name(const struct exec *e, enum jobscript_stage st)
{
	if (st == JS_AFTER_SCRIPT)
		return "after_script";
	if (e->step_i < e->job->nsteps)
		return e->job->steps[e->step_i].name;
	return "script";
}

/* The first user step at or after index i (not after_script), or nsteps:
 * GitLab runs them in the job's order, each its own "step_NAME" stage,
 * and stops at the first that fails. */
static size_t
user_step_from(const struct exec *e, size_t i)
{
	for (; i < e->job->nsteps; i++)
		if (strcmp(e->job->steps[i].name, "after_script") != 0)
			return i;
	return e->job->nsteps;
}

/* The section of stage st: "step_NAME" for a user step. */
static const char *
stage_section(struct exec *e, enum jobscript_stage st)
{
	if (st != JS_STEP_SCRIPT || e->step_i >= e->job->nsteps)
		return jobscript_stage_name(st);
	free(e->step_section);
	e->step_section = xasprintf("step_%s", step_name(e, st));
	return e->step_section;
}

static int64_t
step_timeout(struct exec *e, enum jobscript_stage st)
{
	size_t i;

	for (i = 0; i < e->job->nsteps; i++)
		if (strcmp(e->job->steps[i].name, step_name(e, st)) == 0)
			return e->job->steps[i].timeout;
	return 0;
}

static int64_t
job_remaining(struct exec *e)
{
	int64_t left = gitlab_job_timeout(e->job) - (mono_s() - e->start_mono);

	return left > 0 ? left : 0;
}

/* The stage's time limit and what passing it means. */
static int64_t
stage_limit(struct exec *e, enum jobscript_stage st, int *is_job)
{
	int64_t t, s;

	*is_job = 0;
	if (st == JS_AFTER_SCRIPT) {
		s = step_timeout(e, st);
		return s > 0 ? s : AFTER_SCRIPT_TIMEOUT_S;
	}
	if (e->timed_out || e->canceled)
		return POST_STAGE_TIMEOUT_S;
	t = job_remaining(e);
	*is_job = 1;
	if (st == JS_STEP_SCRIPT && (s = step_timeout(e, st)) > 0 && s < t) {
		*is_job = 0;
		return s;
	}
	return t;
}

static void
stage_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;
	char d[DURATION_STRLEN];

	(void)fd;
	(void)what;
	timeout_text(e->stage_is_job ? gitlab_job_timeout(e->job) :
	    e->stage_timeout_s, d, sizeof(d));
	if (e->stage == JS_AFTER_SCRIPT) {
		stage_interrupt(e, "after_script_timeout", xasprintf(
		    "after_script timed out after %s", d));
		return;
	}
	e->timed_out = 1;
	stage_interrupt(e, "job_execution_timeout", xasprintf(
	    "execution took longer than %s seconds", d));
}

static void
job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;
	char d[DURATION_STRLEN];

	(void)fd;
	(void)what;
	if (e->phase != PH_PREPARE)
		return;
	/* Still preparing: the job is over. */
	e->timed_out = 1;
	timeout_text(gitlab_job_timeout(e->job), d, sizeof(d));
	ops_cancel_all(e);
	prepare_failed(e, "job_execution_timeout", 0, "execution took longer "
	    "than %s seconds", d);
}

static struct ctr *
stage_ctr(struct exec *e)
{
	int i = jobscript_stage_in_build(e->stage) ? e->build_ctr :
	    e->helper_ctr;

	return i >= 0 ? &e->ctrs[i] : NULL;
}

static void
stage_wait_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	evtimer_del(e->kill_timer);
	if (res->err != 0 && res->status != 200) {
		if (e->stage_sysmsg == NULL)
			e->stage_sysmsg = xasprintf("wait: %s", res->msg);
		stage_end(e, 0, 0);
		return;
	}
	stage_end(e, res->exit_code, 1);
}

static void
stage_wait(struct exec *e)
{
	struct ctr *c = stage_ctr(e);
	struct op *o = op_new(e, stage_wait_cb, NULL);

	o->req = docker_container_wait(e->d, c->id, "not-running", op_cb, o);
}

static void
stage_attach_done(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	e->attach = NULL;
	e->stage_ended = 1;
	if (res->err != 0 && e->stage_reason == NULL &&
	    e->stage_sysmsg == NULL)
		e->stage_sysmsg = xasprintf("attach: %s", res->msg);
	if (!e->stage_started) {
		/* Never started (start failed, or interrupted first). */
		stage_end(e, 0, 0);
		return;
	}
	stage_wait(e);
}

static void
stop_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct timeval tv = { KILL_WAIT_S, 0 };

	(void)data;
	(void)res;
	/* Stopped: the stream should end now; do not wait forever. */
	if (!e->stage_ended)
		evtimer_add(e->kill_timer, &tv);
}

static void
kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;

	(void)fd;
	(void)what;
	if (e->attach != NULL) {
		op_cancel(e, e->attach);
		e->attach = NULL;
		e->stage_ended = 1;
		stage_wait(e);
	}
}

static void
send_stop(struct exec *e)
{
	struct ctr *c = stage_ctr(e);
	struct op *o = op_new(e, stop_cb, NULL);

	o->req = docker_container_stop(e->d, c->id, STOP_GRACE_S, op_cb, o);
}

static void
exec_started_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	(void)res;
	send_stop(e);
}

static void
exec_created_cb(struct exec *e, void *data, const struct docker_result *res)
{
	const char *id = json_string_value(json_object_get(res->json, "Id"));
	json_t *body;
	char *path;
	struct op *o;

	(void)data;
	if (res->err != 0 || id == NULL) {
		send_stop(e);
		return;
	}
	path = xasprintf("/exec/%s/start", id);
	body = json_pack("{s:b, s:b}", "Detach", 1, "Tty", 0);
	o = op_new(e, exec_started_cb, NULL);
	o->req = docker_request(e->d, "POST", path, body, op_cb, o);
	json_decref(body);
	free(path);
}

/* GitLab's graceful stop of a stage: SIGTERM to every process but PID 1
 * (and the killer itself), highest PID first, then /stop. */
static const char kill_script[] =
    "for p in $(ls /proc | grep -E '^[0-9]+$' | sort -rn); do "
    "[ \"$p\" = 1 ] || [ \"$p\" = \"$$\" ] || kill -TERM \"$p\" "
    "2>/dev/null; done; exit 0";

static void
stage_kill(struct exec *e)
{
	struct ctr *c = stage_ctr(e);
	json_t *body;
	char *path;
	struct op *o;

	body = json_pack("{s:[s,s,s], s:b, s:b, s:b}", "Cmd", "sh", "-c",
	    kill_script, "AttachStdout", 0, "AttachStderr", 0, "Tty", 0);
	path = xasprintf("/containers/%s/exec", c->id);
	o = op_new(e, exec_created_cb, NULL);
	o->req = docker_request(e->d, "POST", path, body, op_cb, o);
	json_decref(body);
	free(path);
}

static void
stage_end_interrupted(struct exec *e)
{
	if (e->phase == PH_STAGES)
		stage_end(e, 0, 0);
}

/* Stop the running stage: reason is what it will count as. */
static void
stage_interrupt(struct exec *e, const char *reason, char *m)
{
	if (e->phase != PH_STAGES || e->stage_reason != NULL) {
		free(m);
		return;
	}
	e->stage_reason = reason;
	e->stage_msg = m;
	evtimer_del(e->stage_timer);
	if (e->stage_ended)
		return;
	if (!e->stage_attached) {
		/* Not attached yet (container being created, or attach
		 * pending): drop what is in flight and end the stage. */
		struct op *o, *next;

		for (o = TAILQ_FIRST(&e->ops); o != NULL; o = next) {
			next = TAILQ_NEXT(o, link);
			op_cancel(e, o);
		}
		e->attach = NULL;
		defer(e, stage_end_interrupted);
		return;
	}
	if (e->stage_started)
		stage_kill(e);
	/* else: the start answer will see stage_reason. */
}

static void
stage_start_cb(struct exec *e, void *data, const struct docker_result *res)
{
	(void)data;
	if (res->err != 0) {
		if (e->stage_sysmsg == NULL)
			e->stage_sysmsg = xasprintf("start: %s", res->msg);
		if (e->attach != NULL) {
			op_cancel(e, e->attach);
			e->attach = NULL;
		}
		stage_end(e, 0, 0);
		return;
	}
	e->stage_started = 1;
	if (e->stage_reason != NULL && !e->stage_ended)
		stage_kill(e);
}

static void
stage_chunk(struct exec *e, void *data, int stream, const char *buf,
    size_t len)
{
	struct ctr *c;
	struct op *o;

	(void)data;
	if (stream == DOCKER_ATTACHED) {
		e->stage_attached = 1;
		if (docker_stream_close_stdin(e->attach->req) < 0 &&
		    e->stage_sysmsg == NULL)
			e->stage_sysmsg = xstrdup("cannot half-close the "
			    "container's stdin");
		c = stage_ctr(e);
		o = op_new(e, stage_start_cb, NULL);
		o->req = docker_container_start(e->d, c->id, op_cb, o);
		return;
	}
	emit_output(e, stream, buf, len);
}

static void
stage_attach(struct exec *e, char *script)
{
	struct ctr *c = stage_ctr(e);
	struct op *o;

	o = op_new(e, stage_attach_done, NULL);
	o->chunk = stage_chunk;
	e->attach = o;
	o->req = docker_container_attach(e->d, c->id, DOCKER_STREAM_STDIN,
	    op_chunk_cb, op_cb, o);
	docker_stream_write(o->req, script, strlen(script));
	freezero_str(script);
}

struct create_arg {
	char *script;
	int build;
};

static void
create_arg_free(void *p)
{
	struct create_arg *a = p;

	freezero_str(a->script);
	free(a);
}

static void
ctr_create_cb(struct exec *e, void *data, const struct docker_result *res)
{
	struct create_arg *a = data;
	char *script = a->script;
	int build = a->build;

	free(a);
	if (res->err != 0 || res->id == NULL) {
		freezero_str(script);
		if (res->status == 400) {
			set_error(e, "runner_configuration_error", 0, 0,
			    "create %s container: %s", build ? "build" :
			    "helper", res->msg);
		} else if (e->stage_sysmsg == NULL) {
			e->stage_sysmsg = xasprintf("create %s container: %s",
			    build ? "build" : "helper", res->msg);
		}
		stage_end(e, 0, 0);
		return;
	}
	add_ctr(e, build ? "build" : "predefined", res->id, build ? "build" :
	    "predefined");
	free(e->ctrs[e->nctrs - 1].name);
	e->ctrs[e->nctrs - 1].name = xasprintf("%s-%s", e->prefix, build ?
	    "build" : "predefined");
	if (build)
		e->build_ctr = (int)e->nctrs - 1;
	else
		e->helper_ctr = (int)e->nctrs - 1;
	stage_attach(e, script);
}

static void
ctr_create(struct exec *e, int build, char *script)
{
	json_t *body, *cmd, *aliases;
	struct create_arg *a;
	const char *image = build ? e->build_image : e->helper_image;
	char *name;
	struct op *o;

	if (!build && !config_feature_flag(e->rc,
	    "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR", 0)) {
		/* GitLab's helper entrypoint (gitlab-runner-build): what the
		 * helper writes (sources, .tmp, caches) is writable by a
		 * build container that does not run as root. */
		char *c = xasprintf("umask 0000\n%s", jobscript_shell_detect());

		cmd = json_pack("[s,s,s]", "sh", "-c", c);
		free(c);
	} else {
		cmd = json_pack("[s,s,s]", "sh", "-c", jobscript_shell_detect());
	}
	body = json_pack("{s:s, s:s, s:o, s:O, s:o, s:b, s:b, s:b, s:b, s:b, "
	    "s:b, s:o}", "Image", image, "Hostname", e->hostname_ctr,
	    "Cmd", cmd, "Env", e->env,
	    "Labels", labels_for(e, build ? "build" : "predefined"),
	    "Tty", 0, "AttachStdin", 1, "AttachStdout", 1, "AttachStderr", 1,
	    "OpenStdin", 1, "StdinOnce", 1,
	    "HostConfig", host_config(e, build, 0, build ? e->build_ref :
	    e->helper_ref));
	if (build) {
		if (e->job->image.entrypoint.n > 0 &&
		    !e->dc->disable_entrypoint_overwrite)
			json_object_set_new(body, "Entrypoint",
			    strv_json(&e->job->image.entrypoint));
		if (e->user != NULL)
			json_object_set_new(body, "User", json_string(e->user));
		if (e->dc->mac_address != NULL && *e->dc->mac_address != '\0')
			json_object_set_new(body, "MacAddress",
			    json_string(e->dc->mac_address));
	}
	name = xasprintf("%s-%s", e->prefix, build ? "build" : "predefined");
	aliases = json_pack("[s,s]", build ? "build" : "predefined", name);
	{
		json_t *nc = networking(e, aliases);

		if (nc != NULL)
			json_object_set_new(body, "NetworkingConfig", nc);
	}
	a = xcalloc(1, sizeof(*a));
	a->script = script;
	a->build = build;
	o = op_new(e, ctr_create_cb, a);
	o->free_data = create_arg_free;
	o->req = docker_container_create_platform(e->d, name, build &&
	    e->job->image.docker_platform != NULL ?
	    e->job->image.docker_platform : NULL, body, op_cb, o);
	json_decref(body);
	free(name);
}

/* Run stage st (or skip it). */
static void
stage_begin(struct exec *e, enum jobscript_stage st)
{
	struct timeval tv = { 0, 0 };
	struct ctr *c;
	char *script;
	int skip = 0, is_job;

	e->stage = st;
	e->stage_started = e->stage_attached = e->stage_ended = 0;
	e->stage_reason = NULL;
	free(e->stage_msg);
	e->stage_msg = NULL;
	free(e->stage_sysmsg);
	e->stage_sysmsg = NULL;
	if (st == JS_AFTER_SCRIPT || st >= JS_ARCHIVE_CACHE)
		e->ctx.job_status = e->canceled ? "canceled" :
		    e->reason != NULL ? "failed" : "success";
	if (st == JS_STEP_SCRIPT && e->step_i < e->job->nsteps)
		script = jobscript_build_step(&e->ctx, step_name(e, st), &skip);
	else
		script = jobscript_build(&e->ctx, st, &skip);
	if (script == NULL) {
		stage_next(e);
		return;
	}
	if (st == JS_STEP_SCRIPT)
		e->user_phase = 1;
	if (st == JS_STEP_SCRIPT && e->step_i < e->job->nsteps) {
		free(e->step_header);
		e->step_header = xasprintf("Executing \"%s\" stage of the job "
		    "script", stage_section(e, st));
		section_start(e, stage_section(e, st), e->step_header);
	} else {
		section_start(e, jobscript_stage_name(st),
		    jobscript_stage_header(st, &e->ctx));
	}
	e->stage_timeout_s = stage_limit(e, st, &is_job);
	e->stage_is_job = is_job;
	tv.tv_sec = (time_t)e->stage_timeout_s;
	evtimer_add(e->stage_timer, &tv);
	if (is_job && e->stage_timeout_s == 0) {
		/* The job's time is up already. */
		freezero_str(script);
		e->timed_out = 1;
		e->stage_reason = "job_execution_timeout";
		{
			char d[DURATION_STRLEN];

			timeout_text(gitlab_job_timeout(e->job), d, sizeof(d));
			e->stage_msg = xasprintf("execution took longer than %s "
			    "seconds", d);
		}
		stage_end(e, 0, 0);
		return;
	}
	c = stage_ctr(e);
	if (c == NULL)
		ctr_create(e, jobscript_stage_in_build(st), script);
	else
		stage_attach(e, script);
}

/* Does a failure of this stage fail the job? */
static int
stage_counts(enum jobscript_stage st)
{
	switch (st) {
	case JS_AFTER_SCRIPT:
	case JS_ARCHIVE_CACHE_ON_FAILURE:
	case JS_UPLOAD_ARTIFACTS_ON_FAILURE:
	case JS_CLEANUP_FILE_VARIABLES:
		return 0;
	default:
		return 1;
	}
}

static void
stage_end(struct exec *e, int exit_code, int have_code)
{
	enum jobscript_stage st = e->stage;
	const char *name = stage_section(e, st);

	evtimer_del(e->stage_timer);
	evtimer_del(e->kill_timer);
	/* Release what the masker held back and end partial lines, then
	 * close the section. */
	stamp_close(e);
	if (e->stage_reason != NULL) {
		if (strcmp(e->stage_reason, "after_script_timeout") == 0) {
			msg(e, JOBLOG_WARNING, "WARNING: after_script failed, "
			    "but job will continue unaffected: %s",
			    e->stage_msg);
		} else {
			set_error(e, e->stage_reason, 0, 0, "%s",
			    e->stage_msg != NULL ? e->stage_msg :
			    e->stage_reason);
		}
	} else if (e->stage_sysmsg != NULL) {
		if (stage_counts(st))
			set_error(e, "runner_system_failure", 0, 1, "%s",
			    e->stage_sysmsg);
		else
			msg(e, JOBLOG_WARNING, "WARNING: %s: %s", name,
			    e->stage_sysmsg);
	} else if (have_code && exit_code != 0) {
		if (st == JS_AFTER_SCRIPT) {
			if (jobscript_after_script_ignore_errors(&e->ctx))
				msg(e, JOBLOG_WARNING, "WARNING: after_script "
				    "failed, but job will continue unaffected: "
				    "exit code %d", exit_code);
			else
				set_error(e, "script_failure", exit_code, 0,
				    "exit code %d", exit_code);
		} else if (stage_counts(st)) {
			if (e->stage_attempt + 1 <
			    jobscript_attempts(&e->ctx, st)) {
				e->stage_attempt++;
				section_end(e, name);
				stage_begin(e, st);
				return;
			}
			set_error(e, "script_failure", exit_code, 0,
			    "exit code %d", exit_code);
		}
	}
	e->stage_attempt = 0;
	section_end(e, name);
	stage_next(e);
}

/* The stage after e->stage (§2.1: a failure before the user script skips
 * it but still runs the on-failure stages; after prepare_script, or on
 * a cancel before the script, the job ends). */
static void
stage_next(struct exec *e)
{
	enum jobscript_stage st = e->stage, next;
	int failed = e->reason != NULL;

	if (e->phase != PH_STAGES)
		return;
	switch (st) {
	case JS_PREPARE_SCRIPT:
		next = failed ? JS_NSTAGES : JS_GET_SOURCES;
		break;
	case JS_GET_SOURCES:
	case JS_RESTORE_CACHE:
	case JS_DOWNLOAD_ARTIFACTS:
		if (e->canceled && !e->user_phase)
			next = JS_NSTAGES;
		else if (failed)
			next = JS_ARCHIVE_CACHE_ON_FAILURE;
		else
			next = st + 1;
		if (next == JS_STEP_SCRIPT)
			e->step_i = user_step_from(e, 0);
		break;
	case JS_STEP_SCRIPT:
		next = JS_AFTER_SCRIPT;
		if (!failed && !e->canceled && !e->timed_out &&
		    e->step_i < e->job->nsteps &&
		    (e->step_i = user_step_from(e, e->step_i + 1)) <
		    e->job->nsteps)
			next = JS_STEP_SCRIPT;
		break;
	case JS_AFTER_SCRIPT:
		e->post_phase = 1;
		next = failed ? JS_ARCHIVE_CACHE_ON_FAILURE : JS_ARCHIVE_CACHE;
		break;
	case JS_ARCHIVE_CACHE:
		next = failed ? JS_UPLOAD_ARTIFACTS_ON_FAILURE :
		    JS_UPLOAD_ARTIFACTS_ON_SUCCESS;
		break;
	case JS_ARCHIVE_CACHE_ON_FAILURE:
		next = JS_UPLOAD_ARTIFACTS_ON_FAILURE;
		break;
	case JS_UPLOAD_ARTIFACTS_ON_SUCCESS:
	case JS_UPLOAD_ARTIFACTS_ON_FAILURE:
		next = JS_CLEANUP_FILE_VARIABLES;
		break;
	default:
		next = JS_NSTAGES;
		break;
	}
	if (next == JS_NSTAGES) {
		cleanup_begin(e);
		return;
	}
	if (next > JS_AFTER_SCRIPT)
		e->post_phase = 1;
	stage_begin(e, next);
}

static void
stages_begin(struct exec *e)
{
	if (e->phase != PH_PREPARE)
		return;
	e->phase = PH_STAGES;
	e->stage_attempt = 0;
	stage_begin(e, JS_PREPARE_SCRIPT);
}

/* ---------------------------------------------------------------- */
/* start                                                             */

static void
begin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *e = arg;
	struct timeval tv = { 0, 0 };
	struct op *o;
	const char *user;

	(void)fd;
	(void)what;
	tv.tv_sec = (time_t)(gitlab_job_timeout(e->job) - e->elapsed_s);
	if (tv.tv_sec < 1)
		tv.tv_sec = 1;
	evtimer_add(e->job_timer, &tv);
	if (e->prepare_attempt == 0) {
		char *h = xasprintf("Preparing the \"%s\" executor",
		    e->rc->executor != NULL ? e->rc->executor : "docker");

		msg(e, JOBLOG_PLAIN, "Running with flotilla %s (%s)",
		    FL_VERSION, FL_GIT_REV);
		msg(e, JOBLOG_PLAIN, "  on %s %s, system ID: %s",
		    e->rc->name != NULL ? e->rc->name : "", e->short_token,
		    e->system_id);
		section_start(e, "prepare_executor", h);
		free(h);
	}
	if (e->job->unsupported != NULL) {
		prepare_failed(e, "runner_system_failure", 1, "%s",
		    e->job->unsupported);
		return;
	}
	if (e->paths.builds_dir == NULL) {
		prepare_failed(e, "runner_configuration_error", 0, "cannot "
		    "derive the build paths (GIT_CLONE_PATH, builds_dir)");
		return;
	}
	if (e->build_ref == NULL || *e->build_ref == '\0') {
		prepare_failed(e, "runner_configuration_error", 0, "no image "
		    "specified: set [runners.docker] image or the job's image");
		return;
	}
	{
		char why[256];

		if (e->dc->ulimit != NULL && (e->ulimits = exec_ulimits_json(
		    e->dc->ulimit, why, sizeof(why))) == NULL) {
			prepare_failed(e, "runner_configuration_error", 0,
			    "%s", why);
			return;
		}
		if (e->dc->gpus != NULL && *e->dc->gpus != '\0' &&
		    (e->gpus = exec_gpus_json(e->dc->gpus, why,
		    sizeof(why))) == NULL) {
			prepare_failed(e, "runner_configuration_error", 0,
			    "%s", why);
			return;
		}
		if ((e->secopt = exec_security_opts(
		    (const char *const *)e->dc->security_opt.v,
		    e->dc->security_opt.n, why, sizeof(why))) == NULL) {
			prepare_failed(e, "runner_configuration_error", 0,
			    "%s", why);
			return;
		}
	}
	msg(e, JOBLOG_PLAIN, "Using Docker executor with image %s ...",
	    e->build_ref);
	if (e->instance_id != NULL)
		msg(e, JOBLOG_PLAIN, "Instance %s connected", e->instance_id);
	/* The build container's user, checked against allowed_users. */
	user = e->dc->user != NULL && *e->dc->user != '\0' ? e->dc->user :
	    e->job->image.docker_user;
	if (user != NULL && *user != '\0') {
		size_t i;
		int ok = e->dc->allowed_users.n == 0;

		for (i = 0; i < e->dc->allowed_users.n; i++)
			if (strcmp(e->dc->allowed_users.v[i], user) == 0)
				ok = 1;
		if (!ok) {
			prepare_failed(e, "runner_configuration_error", 0,
			    "user \"%s\" is not an allowed user (allowed_users)",
			    user);
			return;
		}
		e->user = xstrdup(user);
	}
	/* Registry credentials. */
	{
		const char *cfg = gitlab_job_variable(e->job,
		    "DOCKER_AUTH_CONFIG");
		size_t i;
		char err[256];

		/* The job's variable wins over the runner's environment
		 * (GitLab's GetAllVariables, the last one counts). */
		for (i = 0; cfg == NULL && i < e->rc->environment.n; i++)
			if (strncmp(e->rc->environment.v[i],
			    "DOCKER_AUTH_CONFIG=", 19) == 0)
				cfg = e->rc->environment.v[i] + 19;

		e->auth = dockerauth_new();
		if (cfg != NULL && dockerauth_add_config(e->auth, cfg,
		    strlen(cfg), "$DOCKER_AUTH_CONFIG", err, sizeof(err)) < 0)
			msg(e, JOBLOG_WARNING, "WARNING: DOCKER_AUTH_CONFIG: %s",
			    err);
		for (i = 0; i < e->job->ncredentials; i++) {
			const struct gitlab_credential *c =
			    &e->job->credentials[i];

			if (strcmp(c->type, "registry") == 0)
				dockerauth_add(e->auth, c->url, c->username,
				    c->password, "job payload (GitLab Registry)");
		}
	}
	volumes_plan(e);
	o = op_new(e, ping_cb, NULL);
	o->req = docker_ping(e->d, op_cb, o);
}

/* A TLS file's text for a job's file variable (at most 1 MiB), or NULL
 * (logged: the job then runs without it, as GitLab's would). */
static char *
tls_read(const char *path)
{
	struct stat st;
	char *buf;
	size_t n;
	FILE *f;

	if (path == NULL)
		return NULL;
	if ((f = fopen(path, "re")) == NULL || fstat(fileno(f), &st) != 0) {
		log_warn("%s: %s", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size > TLS_FILE_MAX) {
		log_warn("%s: empty or larger than 1 MiB", path);
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

struct exec *
exec_start(const struct exec_params *p, exec_output_fn out,
    exec_done_fn done, void *arg)
{
	struct exec *e = xcalloc(1, sizeof(*e));
	const struct gitlab_job *j = p->job;
	const char **phrases;
	size_t i, n = 0;
	char **env;
	size_t nenv = 0;
	unsigned char rnd[8];
	char rhex[17];

	e->base = p->base;
	e->d = p->docker;
	e->rc = p->rc;
	e->dc = &p->rc->docker;
	e->job = j;
	e->runner_url = xstrdup(p->runner_url != NULL ? p->runner_url :
	    p->rc->url != NULL ? p->rc->url : "");
	e->short_token = xstrdup(p->short_token != NULL ? p->short_token : "");
	e->system_id = xstrdup(p->system_id != NULL ? p->system_id : "");
	e->instance_id = p->instance_id != NULL ? xstrdup(p->instance_id) :
	    NULL;
	e->hostname = xstrdup(p->hostname != NULL ? p->hostname : "");
	if (p->helper_image != NULL) {
		e->helper_ref = xstrdup(p->helper_image);
	} else if (e->dc->helper_image != NULL && *e->dc->helper_image) {
		e->helper_ref = xstrdup(e->dc->helper_image);
		e->helper_configured = 1;
	} else {
		e->helper_ref = xstrdup("flotilla-helper:" FL_VERSION);
	}
	e->helper_tar = p->helper_image_tar != NULL ?
	    xstrdup(p->helper_image_tar) : NULL;
	e->concurrent_id = p->concurrent_id;
	e->prepare_attempt = p->prepare_attempt;
	e->prepare_tries = p->prepare_tries > 0 ? p->prepare_tries : 1;
	e->elapsed_s = p->elapsed_s;
	e->out = out;
	e->done = done;
	e->arg = arg;
	TAILQ_INIT(&e->ops);
	sbuf_init(&e->ob);
	e->helper_ctr = e->build_ctr = -1;
	e->phase = PH_PREPARE;
	e->start_mono = mono_s() - e->elapsed_s;	/* earlier attempts */

	/* The masker: masked variables, and the job token itself. */
	phrases = xcalloc(j->variables.n + 2, sizeof(*phrases));
	for (i = 0; i < j->variables.n; i++)
		if (j->variables.v[i].masked)
			phrases[n++] = j->variables.v[i].value;
	phrases[n++] = j->token;
	e->mask = jobmask_new(phrases, n,
	    (const char *const *)j->token_mask_prefixes.v,
	    j->token_mask_prefixes.n,
	    config_feature_flag(p->rc, "FF_MASK_ALL_DEFAULT_TOKENS", 1));
	free(phrases);
	e->ts_on = exec_timestamps_on(p->rc, j);
	tstamp_init(&e->ts[0], 0, TSTAMP_STDOUT);
	tstamp_init(&e->ts[1], 1, TSTAMP_STDOUT);
	tstamp_init(&e->ts[2], 1, TSTAMP_STDERR);
	sbuf_init(&e->mb);

	e->ctx.job = j;
	e->ctx.rc = p->rc;
	e->ctx.runner_url = e->runner_url;
	e->ctx.short_token = e->short_token;
	e->ctx.hostname = e->hostname;
	e->ctx.helper_path = NULL;
	e->ctx.job_status = NULL;
	e->tls_ca = tls_read(p->tls_ca_file);
	if (p->tls_cert_file != NULL && p->tls_key_file != NULL) {
		e->tls_cert = tls_read(p->tls_cert_file);
		e->tls_key = tls_read(p->tls_key_file);
	}
	e->ctx.tls_ca_chain = e->tls_ca;
	e->ctx.tls_auth_cert = e->tls_cert;
	e->ctx.tls_auth_key = e->tls_key;
	if (jobscript_paths(&e->ctx, &e->paths) < 0)
		memset(&e->paths, 0, sizeof(e->paths));

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(rnd, &ts.tv_nsec, sizeof(rnd) < sizeof(ts.tv_nsec) ?
		    sizeof(rnd) : sizeof(ts.tv_nsec));
	}
	hex(rnd, sizeof(rnd), rhex);
	e->prefix = xasprintf("runner-%s-project-%lld-concurrent-%d-%s",
	    e->short_token, (long long)j->job_info.project_id,
	    e->concurrent_id, rhex);
	e->unique = exec_unique_name(p->rc->token, e->system_id,
	    (long long)j->job_info.project_id, e->concurrent_id);
	e->hostname_ctr = e->dc->hostname != NULL && *e->dc->hostname ?
	    xstrdup(e->dc->hostname) :
	    xasprintf("runner-%s-project-%lld-concurrent-%d", e->short_token,
	    (long long)j->job_info.project_id, e->concurrent_id);
	e->build_ref = xstrdup(*j->image.name != '\0' ? j->image.name :
	    e->dc->image != NULL ? e->dc->image : "");

	e->env = json_array();
	env = jobscript_env(&e->ctx, &nenv);
	for (i = 0; i < nenv; i++)
		json_array_append_new(e->env, json_string(env[i]));
	if (env != NULL)
		jobscript_env_free(env, nenv);
	e->binds = json_array();
	e->extra_hosts = json_array();
	build_labels(e);

	e->job_timer = evtimer_new(e->base, job_timer_cb, e);
	e->stage_timer = evtimer_new(e->base, stage_timer_cb, e);
	e->kill_timer = evtimer_new(e->base, kill_timer_cb, e);
	e->finish_ev = event_new(e->base, -1, 0, finish_cb, e);
	e->begin_ev = evtimer_new(e->base, begin_cb, e);
	e->defer_ev = event_new(e->base, -1, 0, defer_cb, e);
	{
		struct timeval tv = { 0, 0 };

		/* begin from the loop, never from inside exec_start. */
		evtimer_add(e->begin_ev, &tv);
	}
	return e;
}

static void
cancel_prepare(struct exec *e)
{
	if (e->phase != PH_PREPARE)
		return;
	set_error(e, "job_canceled", 0, 0, "canceled");
	section_end(e, "prepare_executor");
	cleanup_begin(e);
}

void
exec_cancel(struct exec *e)
{
	if (e == NULL || e->canceled || e->phase >= PH_CLEANUP)
		return;
	if (e->phase == PH_PREPARE) {
		/* Nothing of the user's ran: the job stops now. */
		e->canceled = 1;
		ops_cancel_all(e);
		evtimer_del(e->job_timer);
		if (evtimer_pending(e->begin_ev, NULL)) {
			/* Not even begun: no header, no section. */
			evtimer_del(e->begin_ev);
			set_error(e, "job_canceled", 0, 0, "canceled");
			e->phase = PH_STAGES;	/* no section to close */
			cleanup_begin(e);
			return;
		}
		defer(e, cancel_prepare);
		return;
	}
	/* Once the script is over, a cancel changes nothing (GitLab's
	 * cancel only covers the script stages). */
	if (e->post_phase || (e->user_phase && e->stage != JS_STEP_SCRIPT))
		return;
	e->canceled = 1;
	/* Before the script the whole job stops; in it, after_script and
	 * the on-failure stages still run. */
	stage_interrupt(e, "job_canceled", xstrdup("canceled"));
}

void
exec_abort(struct exec *e, const char *reason)
{
	if (e == NULL || e->phase >= PH_CLEANUP)
		return;
	e->abort_reason = reason != NULL ? reason : "runner_system_failure";
	ops_cancel_all(e);
	evtimer_del(e->begin_ev);
	free(e->reason_msg);
	e->reason_msg = NULL;
	e->reason = NULL;
	set_error(e, e->abort_reason, 0, 0, "aborted: %s", e->abort_reason);
	cleanup_begin(e);
}

static void
exec_release(struct exec *e)
{
	size_t i;

	ops_cancel_all(e);
	if (e->job_timer != NULL)
		event_free(e->job_timer);
	if (e->stage_timer != NULL)
		event_free(e->stage_timer);
	if (e->kill_timer != NULL)
		event_free(e->kill_timer);
	if (e->finish_ev != NULL)
		event_free(e->finish_ev);
	if (e->begin_ev != NULL)
		event_free(e->begin_ev);
	if (e->defer_ev != NULL)
		event_free(e->defer_ev);
	for (i = 0; i < e->nctrs; i++) {
		free(e->ctrs[i].name);
		free(e->ctrs[i].id);
	}
	free(e->ctrs);
	for (i = 0; i < e->nvols; i++) {
		free(e->vols[i].name);
		free(e->vols[i].dest);
	}
	free(e->vols);
	for (i = 0; i < e->nsvcs; i++)
		svc_release(&e->svcs[i]);
	free(e->svcs);
	img_reset(&e->img);
	jobmask_free(e->mask);
	sbuf_release(&e->ob);
	sbuf_release(&e->mb);
	for (i = 0; i < 3; i++)
		tstamp_release(&e->ts[i]);
	jobscript_paths_release(&e->paths);
	dockerauth_free(e->auth);
	json_decref(e->env);
	json_decref(e->binds);
	json_decref(e->extra_hosts);
	json_decref(e->ulimits);
	json_decref(e->secopt);
	json_decref(e->gpus);
	json_decref(e->labels);
	free(e->runner_url);
	free(e->short_token);
	free(e->system_id);
	free(e->instance_id);
	free(e->hostname);
	free(e->helper_ref);
	free(e->helper_tar);
	free(e->step_section);
	free(e->step_header);
	free(e->tls_ca);
	free(e->tls_cert);
	freezero_str(e->tls_key);
	free(e->prefix);
	free(e->unique);
	free(e->hostname_ctr);
	free(e->network);
	free(e->network_id);
	free(e->build_image);
	free(e->build_ref);
	free(e->helper_image);
	free(e->user);
	free(e->stage_msg);
	free(e->stage_sysmsg);
	free(e->reason_msg);
	free(e);
}

void
exec_free(struct exec *e)
{
	size_t i;

	if (e == NULL)
		return;
	helper_load_forget(e);
	if (e->phase < PH_FINISHED) {
		/* Best effort: remove what was created, nobody listens. */
		e->freeing = 1;
		ops_cancel_all(e);
		for (i = 0; i < e->nctrs; i++)
			if (e->ctrs[i].id != NULL)
				docker_container_remove(e->d, e->ctrs[i].id, 1,
				    !e->dc->volume_keep, noop_cb, NULL);
		for (i = 0; i < e->nvols; i++)
			if (e->vols[i].temporary && e->vols[i].created)
				docker_volume_remove(e->d, e->vols[i].name, 1,
				    noop_cb, NULL);
		if (e->network_id != NULL)
			docker_network_remove(e->d, e->network_id, noop_cb,
			    NULL);
	}
	exec_release(e);
}
