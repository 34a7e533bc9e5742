/*
 * The GitLab runner API client: libcurl's multi-socket interface on the
 * manager's libevent loop, GitLab Runner's request shapes, retries and
 * answer interpretation.  See gitlab.h for the contract; gitlab_job.c
 * parses job payloads and gitlab_trace.c drives a job's log and state.
 *
 * libcurl and libevent (the shape of curl's docs/examples/hiperfifo.c):
 *
 *   sock_cb     libcurl says which fd it wants watched for what; one
 *               persistent event per fd, re-assigned when that changes.
 *   timer_cb    libcurl asks for a timeout; one evtimer.
 *   on_event /  libevent reports; we call curl_multi_socket_action and
 *   on_timer    then drain curl_multi_info_read for finished transfers.
 *
 * Life of a request:
 *
 *   req_new      allocate, register in gl->reqs, start the first attempt
 *                (curl_multi_add_handle: nothing runs before the loop does,
 *                so no callback can fire inside the starting call).  A call
 *                refused up front completes through a zero timer.
 *   attempt      one easy handle per attempt, with a fresh X-Request-Id;
 *                the body is the same bytes each time.
 *   attempt_done the transfer ended: answer headers taken, the observer
 *                told; a retryable status or transport error with attempts
 *                left waits (RateLimit-ResetTime, Retry-After or backoff)
 *                on the request's timer and tries again.
 *   complete     the answer is interpreted for the operation, the callback
 *                runs, the request goes to the graveyard.
 *
 * Re-entrancy: every libevent entry runs between gitlab_enter() and
 * gitlab_leave().  While inside, nothing is freed: cancelled and finished
 * requests and freed runners go to graveyards emptied by the outermost
 * leave, which also frees the client itself if gitlab_free was called.
 */
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "curlretry.h"
#include "err.h"
#include "gitlab.h"
#include "gitlab_int.h"
#include "log.h"
#include "xmalloc.h"

#ifndef FL_VERSION
#define FL_VERSION "0.0.0"
#endif
#ifndef FL_GIT_REV
#define FL_GIT_REV "unknown"
#endif

/* Go's GOARCH names. */
#if defined(__x86_64__)
#define GL_ARCH "amd64"
#elif defined(__aarch64__)
#define GL_ARCH "arm64"
#elif defined(__i386__)
#define GL_ARCH "386"
#elif defined(__arm__)
#define GL_ARCH "arm"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GL_ARCH "ppc64le"
#elif defined(__s390x__)
#define GL_ARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define GL_ARCH "riscv64"
#else
#define GL_ARCH "unknown"
#endif

#define SYSTEM_CAPATH "/etc/ssl/certs"
#define SMALL_BODY (64 * 1024)		/* answers we only read a message from */
#define HDR_MAX 256
#define MAX_RETRY_WAIT_MS (60LL * 60 * 1000)
#define CURL_IDLE_MAX_S 118		/* libcurl's own MAXAGE_CONN default */

enum op { OP_VERIFY, OP_UNREGISTER, OP_REQUEST, OP_UPDATE, OP_PATCH,
    OP_REGISTER };

struct sockinfo {
	struct gitlab *gl;
	struct event *ev;
};

struct hdrs {
	char job_status[32];
	char range[64];
	char last_update[HDR_MAX];
	char interval[32];
	char retry_after[64];
	char reset_time[64];
	char ctype[128];
	char request_id[128];
};

struct gitlab_runner {
	struct gitlab *gl;
	char *name;
	char *base;			/* ".../api/v4/" */
	char *token;			/* secret */
	char *short_token;
	char *ca_file, *cert_file, *key_file;
	char *executor, *shell, *gpus, *system_id;
	char **features_off;
	char last_update[HDR_MAX];
	struct gitlab_trace **traces;
	size_t ntraces;
	int dead;
	TAILQ_ENTRY(gitlab_runner) link;
};

struct gitlab_req {
	struct gitlab *gl;
	struct gitlab_runner *r;
	TAILQ_ENTRY(gitlab_req) link;	/* gl->reqs or gl->grave */
	int dead;
	enum op op;
	const char *method;
	char *path;			/* below /api/v4/ */
	char *url;
	char *body;			/* secret (tokens) */
	size_t body_len;
	char *job_token;		/* secret, JOB-TOKEN */
	const char *ctype;
	int want_json;
	char content_range[64];
	int64_t offset;			/* patch */
	size_t patch_len;
	size_t body_cap;
	CURL *easy;
	struct curl_slist *slist;
	char errbuf[CURL_ERROR_SIZE];
	char reqid[33];
	struct sbuf resp;
	int toobig;
	struct hdrs h;
	long status;
	CURLcode cres;
	int attempt;
	int nbackoff;
	int64_t attempt_start;
	int pre_err;			/* refused before sending */
	char *pre_msg;
	struct event *timer;
	gitlab_cb cb;
	void *arg;
};

struct gitlab {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct gitlab_opts o;
	char *user_agent;
	int have_capath;
	TAILQ_HEAD(, gitlab_req) reqs;
	TAILQ_HEAD(, gitlab_req) grave;
	TAILQ_HEAD(, gitlab_runner) runners;
	TAILQ_HEAD(, gitlab_runner) dead_runners;
	int busy;
	int dying;
	uint64_t rng;
	gitlab_observer_fn obs;
	void *obs_arg;
};

static void attempt_start(struct gitlab_req *req);
static void req_release(struct gitlab_req *req);

/* ---- clocks, randomness ---- */

int64_t
gitlab_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
rng_next(struct gitlab *gl)
{
	/* xorshift64*: jitter needs spread, not secrecy. */
	gl->rng ^= gl->rng >> 12;
	gl->rng ^= gl->rng << 25;
	gl->rng ^= gl->rng >> 27;
	return gl->rng * 0x2545F4914F6CDD1DULL;
}

double
gitlab_rand01(struct gitlab *gl)
{
	return (double)(rng_next(gl) >> 11) / 9007199254740992.0;
}

/* A random UUID (version 4) as 32 hex digits, GitLab Runner's request id. */
static void
new_request_id(struct gitlab *gl, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i;

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		uint64_t x = rng_next(gl), y = rng_next(gl);

		memcpy(b, &x, 8);
		memcpy(b + 8, &y, 8);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
}

/* ---- pure helpers ---- */

uint32_t
gitlab_crc32(uint32_t crc, const void *p, size_t n)
{
	static uint32_t table[256];
	static int ready;
	const unsigned char *b = p;
	size_t i;

	if (!ready) {
		/* Idempotent: racing threads write the same values. */
		for (i = 0; i < 256; i++) {
			uint32_t c = (uint32_t)i;
			int k;

			for (k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	crc = ~crc;
	for (i = 0; i < n; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

int
gitlab_base_url(const char *url, char **out)
{
	size_t n, skip, i;
	char *s;

	*out = NULL;
	if (url == NULL)
		return FL_ERR_INVAL;
	if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else
		return FL_ERR_INVAL;
	for (i = 0; url[i] != '\0'; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return FL_ERR_INVAL;
	n = strlen(url);
	while (n > skip && url[n - 1] == '/')
		n--;
	if (n >= skip + 3 && memcmp(url + n - 3, "/ci", 3) == 0)
		n -= 3;
	/* A host: something before the first "/" after the scheme. */
	if (n == skip || url[skip] == '/' || url[skip] == '?' ||
	    url[skip] == '#')
		return FL_ERR_INVAL;
	s = xmalloc(n + sizeof("/api/v4/"));
	memcpy(s, url, n);
	memcpy(s + n, "/api/v4/", sizeof("/api/v4/"));
	*out = s;
	return 0;
}

static int
shell_special(char c)
{
	return strchr("*#$@!?-0123456789", c) != NULL && c != '\0';
}

static int
alnum_(char c)
{
	return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static const char *
env_lookup(const char *name, void *arg)
{
	(void)arg;
	return getenv(name);
}

char *
gitlab_expand_env(const char *s, const char *(*lookup)(const char *, void *),
    void *arg)
{
	struct sbuf sb;
	size_t i = 0, n = strlen(s);

	if (lookup == NULL)
		lookup = env_lookup;
	sbuf_init(&sb);
	while (i < n) {
		const char *rest, *val;
		char *name = NULL;
		size_t w = 0;

		if (s[i] != '$' || i + 1 >= n) {
			sbuf_addch(&sb, s[i++]);
			continue;
		}
		rest = s + i + 1;
		if (rest[0] == '{') {
			if (n - i - 1 > 2 && shell_special(rest[1]) &&
			    rest[2] == '}') {
				name = xstrndup(rest + 1, 1);
				w = 3;
			} else {
				const char *close = strchr(rest + 1, '}');

				if (close == NULL) {
					w = 1;		/* bad: eat "${" */
				} else if (close == rest + 1) {
					w = 2;		/* bad: eat "${}" */
				} else {
					name = xstrndup(rest + 1,
					    (size_t)(close - rest - 1));
					w = (size_t)(close - rest) + 1;
				}
			}
		} else if (shell_special(rest[0])) {
			name = xstrndup(rest, 1);
			w = 1;
		} else {
			while (alnum_(rest[w]))
				w++;
			if (w > 0)
				name = xstrndup(rest, w);
		}
		if (name != NULL) {
			val = lookup(name, arg);
			if (val != NULL)
				sbuf_adds(&sb, val);
			free(name);
		} else if (w == 0) {
			sbuf_addch(&sb, '$');	/* "$" then no name: kept */
		}
		i += 1 + w;
	}
	return sbuf_detach(&sb, NULL);
}

/* Decimal int64 (Go's Atoi: optional sign, digits, nothing else). */
static int
parse_int64(const char *s, int64_t *out)
{
	int neg = 0;
	uint64_t v = 0;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (*s == '\0')
		return FL_ERR_PARSE;
	for (; *s != '\0'; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*s < '0' || *s > '9')
			return FL_ERR_PARSE;
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return FL_ERR_PARSE;	/* over INT64_MAX */
		v = v * 10 + d;
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int
gitlab_parse_range(const char *s, int64_t *start, int64_t *end)
{
	const char *dash;
	char a[24], b[24];
	size_t la, lb;

	if (s == NULL || (dash = strchr(s, '-')) == NULL ||
	    strchr(dash + 1, '-') != NULL)
		return FL_ERR_PARSE;
	la = (size_t)(dash - s);
	lb = strlen(dash + 1);
	if (la == 0 || lb == 0 || la >= sizeof(a) || lb >= sizeof(b))
		return FL_ERR_PARSE;
	memcpy(a, s, la);
	a[la] = '\0';
	memcpy(b, dash + 1, lb + 1);
	if (a[0] < '0' || a[0] > '9' || b[0] < '0' || b[0] > '9' ||
	    parse_int64(a, start) < 0 || parse_int64(b, end) < 0)
		return FL_ERR_PARSE;
	return 0;
}

int
gitlab_parse_retry_after(const char *s, int64_t *secs)
{
	if (s == NULL)
		return FL_ERR_PARSE;
	return parse_int64(s, secs);
}

int
gitlab_parse_http_date(const char *s, int64_t *epoch)
{
	static const char *const days[] = {
		"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm tm;
	int i, ok = 0;
	size_t zl;
	time_t t;

	/* "Mon, 02 Jan 2006 15:04:05 MST": fixed widths as Go's layout. */
	if (s == NULL || strlen(s) < 29 || s[3] != ',' || s[4] != ' ' ||
	    s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
	    s[22] != ':' || s[25] != ' ')
		return FL_ERR_PARSE;
	for (i = 0; i < 7; i++)
		if (strncmp(s, days[i], 3) == 0)
			ok = 1;
	if (!ok)
		return FL_ERR_PARSE;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mon = -1;
	for (i = 0; i < 12; i++)
		if (strncmp(s + 8, months[i], 3) == 0)
			tm.tm_mon = i;
#define D(c) ((c) >= '0' && (c) <= '9')
	if (tm.tm_mon < 0 || !D(s[5]) || !D(s[6]) || !D(s[12]) || !D(s[13]) ||
	    !D(s[14]) || !D(s[15]) || !D(s[17]) || !D(s[18]) || !D(s[20]) ||
	    !D(s[21]) || !D(s[23]) || !D(s[24]))
		return FL_ERR_PARSE;
#undef D
	tm.tm_mday = (s[5] - '0') * 10 + (s[6] - '0');
	tm.tm_year = (s[12] - '0') * 1000 + (s[13] - '0') * 100 +
	    (s[14] - '0') * 10 + (s[15] - '0') - 1900;
	tm.tm_hour = (s[17] - '0') * 10 + (s[18] - '0');
	tm.tm_min = (s[20] - '0') * 10 + (s[21] - '0');
	tm.tm_sec = (s[23] - '0') * 10 + (s[24] - '0');
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 59)
		return FL_ERR_PARSE;
	/* The zone: letters only (GMT, UTC, ...), taken as UTC. */
	zl = strlen(s + 26);
	if (zl < 1 || zl > 5)
		return FL_ERR_PARSE;
	for (i = 26; s[i] != '\0'; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
			return FL_ERR_PARSE;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return FL_ERR_PARSE;
	*epoch = (int64_t)t;
	return 0;
}

int64_t
gitlab_retry_wait_ms(const char *reset, const char *retry_after,
    int64_t now_ms)
{
	int64_t v;

	if (reset != NULL && reset[0] != '\0' &&
	    gitlab_parse_http_date(reset, &v) == 0 && v * 1000 > now_ms)
		return v * 1000 - now_ms < MAX_RETRY_WAIT_MS ?
		    v * 1000 - now_ms : MAX_RETRY_WAIT_MS;
	if (retry_after != NULL && retry_after[0] != '\0' &&
	    gitlab_parse_retry_after(retry_after, &v) == 0 && v > 0)
		return v < MAX_RETRY_WAIT_MS / 1000 ? v * 1000 :
		    MAX_RETRY_WAIT_MS;
	return -1;
}

int64_t
gitlab_backoff_ms(int n, int64_t min_ms, int64_t max_ms, double rnd)
{
	int64_t d = min_ms;
	int i;

	if (min_ms <= 0)
		min_ms = d = 1;
	for (i = 0; i < n && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (d < min_ms)
		d = min_ms;
	if (rnd >= 0 && rnd < 1)
		d = min_ms + (int64_t)(rnd * (double)(d - min_ms));
	return d;
}

int
gitlab_retryable_status(long s)
{
	return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 ||
	    s == 504 || s >= 512;
}

enum gitlab_job_status
gitlab_job_status_parse(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return GITLAB_JS_NONE;
	if (strcmp(s, "running") == 0)
		return GITLAB_JS_RUNNING;
	if (strcmp(s, "canceling") == 0)
		return GITLAB_JS_CANCELING;
	if (strcmp(s, "canceled") == 0)
		return GITLAB_JS_CANCELED;
	if (strcmp(s, "failed") == 0)
		return GITLAB_JS_FAILED;
	return GITLAB_JS_OTHER;
}

int64_t
gitlab_parse_update_interval(const char *s)
{
	int64_t v;

	if (s == NULL || parse_int64(s, &v) < 0 || v <= 0)
		return 0;
	if (v > GITLAB_MAX_UPDATE_INTERVAL_MS / 1000)
		return GITLAB_MAX_UPDATE_INTERVAL_MS;
	return v * 1000;
}

/* ---- request bodies ---- */

/* info.features, with who sets each to true (gitlab.h, reference §1.2). */
static const struct {
	const char *name;
	int on;
} features[] = {
	{ "variables", 1 },		/* docker */
	{ "image", 1 },			/* docker */
	{ "services", 1 },		/* docker */
	{ "artifacts", 1 },		/* bash */
	{ "cache", 1 },			/* bash */
	{ "fallback_cache_keys", 1 },	/* bash */
	{ "shared", 0 },
	{ "upload_multiple_artifacts", 1 },	/* bash */
	{ "upload_raw_artifacts", 1 },	/* bash */
	{ "session", 1 },		/* docker */
	{ "terminal", 1 },		/* docker */
	{ "refspecs", 1 },		/* bash */
	{ "masking", 1 },		/* bash */
	{ "proxy", 0 },
	{ "raw_variables", 1 },		/* bash */
	{ "artifacts_exclude", 1 },	/* bash */
	{ "multi_build_steps", 1 },	/* bash */
	{ "trace_reset", 1 },		/* network */
	{ "trace_checksum", 1 },	/* network */
	{ "trace_size", 1 },		/* network */
	{ "vault_secrets", 1 },		/* bash */
	{ "cancelable", 1 },		/* network */
	{ "return_exit_code", 1 },	/* bash */
	{ "service_variables", 1 },	/* docker */
	{ "service_multiple_aliases", 1 },	/* docker */
	{ "image_executor_opts", 1 },	/* docker */
	{ "service_executor_opts", 1 },	/* docker */
	{ "cancel_gracefully", 1 },	/* network */
	{ "native_steps_integration", 1 },	/* docker */
	{ "two_phase_job_commit", 1 },	/* network */
	{ "job_inputs", 1 },		/* network */
};

static void
jset(json_t *o, const char *k, json_t *v)
{
	if (v == NULL || json_object_set_new(o, k, v) < 0)
		abort();	/* jansson only fails on allocation */
}

json_t *
gitlab_info_json(const char *executor, const char *shell, const char *gpus,
    const char *const *off)
{
	json_t *info = json_object(), *feat = json_object(), *cfg = json_object();
	size_t i, k;

	if (info == NULL || feat == NULL || cfg == NULL)
		abort();
	jset(info, "name", json_string(GITLAB_INFO_NAME));
	jset(info, "version", json_string(FL_VERSION));
	jset(info, "revision", json_string(FL_GIT_REV));
	jset(info, "platform", json_string("linux"));
	jset(info, "architecture", json_string(GL_ARCH));
	jset(info, "executor", json_string(executor != NULL ? executor : ""));
	jset(info, "shell", json_string(shell != NULL && shell[0] != '\0' ?
	    shell : "bash"));
	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		int on = features[i].on;

		for (k = 0; off != NULL && off[k] != NULL; k++)
			if (strcmp(off[k], features[i].name) == 0)
				on = 0;
		jset(feat, features[i].name, json_boolean(on));
	}
	jset(info, "features", feat);
	jset(cfg, "gpus", json_string(gpus != NULL ? gpus : ""));
	jset(info, "config", cfg);
	return info;
}

static const char *
state_name(enum gitlab_state s)
{
	switch (s) {
	case GITLAB_RUNNING:
		return "running";
	case GITLAB_SUCCESS:
		return "success";
	case GITLAB_FAILED_STATE:
		return "failed";
	}
	return "failed";
}

json_t *
gitlab_update_json(json_t *info, const char *token,
    const struct gitlab_update *u)
{
	json_t *o = json_object(), *out = json_object();
	char ck[16];

	if (o == NULL || out == NULL)
		abort();
	jset(o, "info", info);
	jset(o, "token", json_string(token));
	jset(o, "state", json_string(state_name(u->state)));
	if (u->state == GITLAB_FAILED_STATE && u->failure_reason != NULL &&
	    u->failure_reason[0] != '\0')
		jset(o, "failure_reason", json_string(u->failure_reason));
	if (u->with_output) {
		snprintf(ck, sizeof(ck), "crc32:%08x", u->crc32);
		jset(o, "checksum", json_string(ck));	/* deprecated copy */
		jset(out, "checksum", json_string(ck));
		if (u->bytesize > 0)
			jset(out, "bytesize",
			    json_integer((json_int_t)u->bytesize));
	}
	jset(o, "output", out);
	if (u->exit_code != 0)
		jset(o, "exit_code", json_integer(u->exit_code));
	return o;
}

static json_t *
runner_info(const struct gitlab_runner *r)
{
	return gitlab_info_json(r->executor, r->shell, r->gpus,
	    (const char *const *)r->features_off);
}

/* Serialize and free a body; the text is a secret (tokens). */
static char *
dump_body(json_t *o, size_t *len)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s == NULL)
		abort();
	*len = strlen(s);
	/* Wipe the tokens jansson holds before letting them go. */
	{
		json_t *t = json_object_get(o, "token");

		if (json_is_string(t))
			explicit_bzero((char *)json_string_value(t),
			    json_string_length(t));
	}
	json_decref(o);
	return s;
}

/* ---- libcurl on libevent ---- */

static void check_multi(struct gitlab *gl);

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
	struct gitlab *gl = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	gitlab_enter(gl);
	curl_multi_socket_action(gl->multi, fd, action, &running);
	check_multi(gl);
	gitlab_leave(gl);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gitlab *gl = arg;
	int running;

	(void)fd;
	(void)what;
	gitlab_enter(gl);
	curl_multi_socket_action(gl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi(gl);
	gitlab_leave(gl);
}

static int
sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct gitlab *gl = userp;
	struct sockinfo *si = sockp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (si != NULL) {
			if (si->ev != NULL)
				event_free(si->ev);
			free(si);
			curl_multi_assign(gl->multi, s, NULL);
		}
		return 0;
	}
	if (si == NULL) {
		si = xcalloc(1, sizeof(*si));
		si->gl = gl;
		curl_multi_assign(gl->multi, s, si);
	} else if (si->ev != NULL) {
		event_free(si->ev);
		si->ev = NULL;
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	si->ev = event_new(gl->base, s, kind, on_event, gl);
	if (si->ev == NULL || event_add(si->ev, NULL) < 0)
		return -1;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct gitlab *gl = userp;
	struct timeval tv;

	(void)m;
	if (timeout_ms < 0) {
		evtimer_del(gl->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(gl->timer, &tv);
	return 0;
}

/* ---- the client ---- */

struct gitlab *
gitlab_new(struct event_base *base, const struct gitlab_opts *opts)
{
	struct gitlab *gl;
	struct stat st;
	uint64_t seed = 0;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	gl = xcalloc(1, sizeof(*gl));
	gl->base = base;
	if (opts != NULL)
		gl->o = *opts;
	if (gl->o.connection_max_age_ns <= 0)
		gl->o.connection_max_age_ns = GITLAB_CONN_MAX_AGE_NS;
	if (gl->o.connect_timeout_ms <= 0)
		gl->o.connect_timeout_ms = GITLAB_CONNECT_TIMEOUT_MS;
	if (gl->o.request_timeout_ms <= 0)
		gl->o.request_timeout_ms = GITLAB_REQUEST_TIMEOUT_MS;
	if (gl->o.backoff_min_ms <= 0)
		gl->o.backoff_min_ms = GITLAB_BACKOFF_MIN_MS;
	if (gl->o.backoff_max_ms <= 0)
		gl->o.backoff_max_ms = GITLAB_BACKOFF_MAX_MS;
	if (gl->o.max_attempts <= 0)
		gl->o.max_attempts = GITLAB_ATTEMPTS;
	gl->user_agent = xasprintf("flotilla %s (%s; C; linux/%s)",
	    FL_VERSION, FL_GIT_REV, GL_ARCH);
	gl->have_capath = stat(SYSTEM_CAPATH, &st) == 0 && S_ISDIR(st.st_mode);
	TAILQ_INIT(&gl->reqs);
	TAILQ_INIT(&gl->grave);
	TAILQ_INIT(&gl->runners);
	TAILQ_INIT(&gl->dead_runners);
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint64_t)real_ms() ^ ((uint64_t)getpid() << 32);
	gl->rng = seed | 1;
	gl->multi = curl_multi_init();
	gl->timer = evtimer_new(base, on_timer, gl);
	if (gl->multi == NULL || gl->timer == NULL) {
		if (gl->multi != NULL)
			curl_multi_cleanup(gl->multi);
		if (gl->timer != NULL)
			event_free(gl->timer);
		free(gl->user_agent);
		free(gl);
		curl_global_cleanup();
		return NULL;
	}
	curl_multi_setopt(gl->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(gl->multi, CURLMOPT_SOCKETDATA, gl);
	curl_multi_setopt(gl->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(gl->multi, CURLMOPT_TIMERDATA, gl);
	return gl;
}

struct event_base *
gitlab_evbase(struct gitlab *gl)
{
	return gl->base;
}

void
gitlab_set_observer(struct gitlab *gl, gitlab_observer_fn fn, void *arg)
{
	gl->obs = fn;
	gl->obs_arg = arg;
}

static void
runner_release(struct gitlab_runner *r)
{
	size_t i;

	free(r->name);
	free(r->base);
	freezero_str(r->token);
	free(r->short_token);
	free(r->ca_file);
	free(r->cert_file);
	free(r->key_file);
	free(r->executor);
	free(r->shell);
	free(r->gpus);
	free(r->system_id);
	for (i = 0; r->features_off != NULL && r->features_off[i] != NULL; i++)
		free(r->features_off[i]);
	free(r->features_off);
	free(r->traces);
	free(r);
}

static void
really_free(struct gitlab *gl)
{
	struct gitlab_runner *r;
	struct gitlab_req *req;

	while ((r = TAILQ_FIRST(&gl->runners)) != NULL)
		gitlab_runner_free(r);
	while ((req = TAILQ_FIRST(&gl->reqs)) != NULL)
		gitlab_req_cancel(req);
	while ((req = TAILQ_FIRST(&gl->grave)) != NULL) {
		TAILQ_REMOVE(&gl->grave, req, link);
		req_release(req);
	}
	while ((r = TAILQ_FIRST(&gl->dead_runners)) != NULL) {
		TAILQ_REMOVE(&gl->dead_runners, r, link);
		runner_release(r);
	}
	curl_multi_cleanup(gl->multi);
	event_free(gl->timer);
	free(gl->user_agent);
	free(gl);
	curl_global_cleanup();
}

void
gitlab_free(struct gitlab *gl)
{
	if (gl == NULL || gl->dying)
		return;
	gl->dying = 1;
	if (gl->busy == 0)
		really_free(gl);
	else {
		/* Cancel now so nothing more is called back. */
		struct gitlab_runner *r;

		while ((r = TAILQ_FIRST(&gl->runners)) != NULL)
			gitlab_runner_free(r);
		while (TAILQ_FIRST(&gl->reqs) != NULL)
			gitlab_req_cancel(TAILQ_FIRST(&gl->reqs));
	}
}

void
gitlab_enter(struct gitlab *gl)
{
	gl->busy++;
}

void
gitlab_leave(struct gitlab *gl)
{
	struct gitlab_req *req;
	struct gitlab_runner *r;

	if (--gl->busy > 0)
		return;
	while ((req = TAILQ_FIRST(&gl->grave)) != NULL) {
		TAILQ_REMOVE(&gl->grave, req, link);
		req_release(req);
	}
	while ((r = TAILQ_FIRST(&gl->dead_runners)) != NULL) {
		TAILQ_REMOVE(&gl->dead_runners, r, link);
		runner_release(r);
	}
	if (gl->dying)
		really_free(gl);
}

/* ---- runners ---- */

char *
gitlab_certs_dir(const char *config_path)
{
	const char *slash;

	if (config_path == NULL)
		return NULL;
	slash = strrchr(config_path, '/');
	if (slash == NULL)
		return xstrdup("certs");
	return xasprintf("%.*s/certs", (int)(slash - config_path),
	    config_path);
}

/* The host of url without port or brackets (heap), or NULL. */
static char *
url_hostname(const char *url)
{
	CURLU *u = curl_url();
	char *h = NULL, *out = NULL;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
		size_t n = strlen(h);

		if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
			out = xstrndup(h + 1, n - 2);
		else
			out = xstrdup(h);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return out;
}

/* *field = dir/name when unset and that file exists (GitLab's
 * findCertificate). */
static void
cert_find(char **field, const char *dir, const char *host, const char *ext)
{
	char *path;

	if (*field != NULL)
		return;
	path = xasprintf("%s/%s%s", dir, host, ext);
	if (access(path, F_OK) == 0) {
		log_info("using %s", path);
		*field = path;
	} else {
		free(path);
	}
}

/* GitLab Runner's certs/ folder: <host>.crt, <host>.auth.crt/.key. */
static void
certs_lookup(struct gitlab_runner *r, const char *dir, const char *url)
{
	char *host, *x;

	if (dir == NULL || url == NULL)
		return;
	x = gitlab_expand_env(url, NULL, NULL);
	host = url_hostname(x);
	free(x);
	if (host == NULL || host[0] == '\0' || strchr(host, '/') != NULL ||
	    host[0] == '.') {
		free(host);
		return;
	}
	cert_find(&r->ca_file, dir, host, ".crt");
	if (r->cert_file == NULL && r->key_file == NULL) {
		/* A client certificate only as a pair. */
		cert_find(&r->cert_file, dir, host, ".auth.crt");
		cert_find(&r->key_file, dir, host, ".auth.key");
		if (r->cert_file == NULL || r->key_file == NULL) {
			free(r->cert_file);
			free(r->key_file);
			r->cert_file = r->key_file = NULL;
		}
	}
	free(host);
}

void
gitlab_runner_tls_files(const struct gitlab_runner *r, const char **ca,
    const char **cert, const char **key)
{
	*ca = r->ca_file;
	*cert = r->cert_file;
	*key = r->key_file;
}

void
gitlab_runner_conf_from_config(struct gitlab_runner_conf *c,
    const struct config_runner *rc, const char *system_id)
{
	memset(c, 0, sizeof(*c));
	c->name = rc->name;
	c->url = rc->url;
	c->token = rc->token;
	c->tls_ca_file = rc->tls_ca_file;
	c->tls_cert_file = rc->tls_cert_file;
	c->tls_key_file = rc->tls_key_file;
	c->executor = rc->executor;
	c->shell = rc->shell;
	c->gpus = rc->docker.gpus;
	c->system_id = system_id;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? xstrdup(s) : NULL;
}

static char *
trimmed(const char *s)
{
	size_t a = 0, b;

	if (s == NULL)
		return xstrdup("");
	b = strlen(s);
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	return xstrndup(s + a, b - a);
}

int
gitlab_runner_new(struct gitlab *gl, const struct gitlab_runner_conf *c,
    struct gitlab_runner **out, char **errmsg)
{
	struct gitlab_runner *r;
	char *url, *tok, shortbuf[9];
	const char *files[3];
	size_t i, n;

	*out = NULL;
	*errmsg = NULL;
	tok = gitlab_expand_env(c->token != NULL ? c->token : "", NULL, NULL);
	if (tok[0] == '\0') {
		freezero_str(tok);
		*errmsg = xstrdup("runner token is empty");
		return FL_ERR_INVAL;
	}
	url = gitlab_expand_env(c->url != NULL ? c->url : "", NULL, NULL);
	r = xcalloc(1, sizeof(*r));
	r->gl = gl;
	r->token = tok;
	log_add_secret(tok);
	log_short_token(tok, shortbuf);
	r->short_token = xstrdup(shortbuf);
	if (gitlab_base_url(url, &r->base) < 0) {
		/* The URL may hold credentials: do not echo it. */
		*errmsg = xstrdup("url: must be an http:// or https:// URL "
		    "with a host");
		free(url);
		runner_release(r);
		return FL_ERR_INVAL;
	}
	free(url);
	r->name = xstrdup(c->name != NULL && c->name[0] != '\0' ? c->name :
	    r->short_token);
	r->ca_file = dup_or_null(c->tls_ca_file);
	r->cert_file = dup_or_null(c->tls_cert_file);
	r->key_file = dup_or_null(c->tls_key_file);
	certs_lookup(r, c->certs_dir, c->url);
	files[0] = r->ca_file;
	files[1] = r->cert_file;
	files[2] = r->key_file;
	for (i = 0; i < 3; i++) {
		if (files[i] != NULL && access(files[i], R_OK) != 0) {
			*errmsg = xasprintf("%s: %s", files[i], strerror(errno));
			runner_release(r);
			return FL_ERR_INVAL;
		}
	}
	if ((r->cert_file == NULL) != (r->key_file == NULL)) {
		*errmsg = xstrdup("tls-cert-file and tls-key-file go together");
		runner_release(r);
		return FL_ERR_INVAL;
	}
	r->executor = xstrdup(c->executor != NULL ? c->executor : "");
	r->shell = xstrdup(c->shell != NULL && c->shell[0] != '\0' ?
	    c->shell : "bash");
	r->gpus = trimmed(c->gpus);
	r->system_id = dup_or_null(c->system_id);
	for (n = 0; c->features_off != NULL && c->features_off[n] != NULL; n++)
		;
	r->features_off = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++)
		r->features_off[i] = xstrdup(c->features_off[i]);
	TAILQ_INSERT_TAIL(&gl->runners, r, link);
	*out = r;
	return 0;
}

void
gitlab_runner_free(struct gitlab_runner *r)
{
	struct gitlab *gl;
	struct gitlab_req *req, *next;

	if (r == NULL || r->dead)
		return;
	gl = r->gl;
	r->dead = 1;
	while (r->ntraces > 0)
		gitlab_trace_free(r->traces[r->ntraces - 1]);
	for (req = TAILQ_FIRST(&gl->reqs); req != NULL; req = next) {
		next = TAILQ_NEXT(req, link);
		if (req->r == r)
			gitlab_req_cancel(req);
	}
	TAILQ_REMOVE(&gl->runners, r, link);
	if (gl->busy > 0)
		TAILQ_INSERT_TAIL(&gl->dead_runners, r, link);
	else
		runner_release(r);
}

struct gitlab *
gitlab_runner_client(struct gitlab_runner *r)
{
	return r->gl;
}

const char *
gitlab_runner_base_url(const struct gitlab_runner *r)
{
	return r->base;
}

const char *
gitlab_runner_last_update(const struct gitlab_runner *r)
{
	return r->last_update;
}

void
gitlab_runner_add_trace(struct gitlab_runner *r, struct gitlab_trace *t)
{
	r->traces = xreallocarray(r->traces, r->ntraces + 1, sizeof(*r->traces));
	r->traces[r->ntraces++] = t;
}

void
gitlab_runner_del_trace(struct gitlab_runner *r, struct gitlab_trace *t)
{
	size_t i;

	for (i = 0; i < r->ntraces; i++) {
		if (r->traces[i] == t) {
			r->traces[i] = r->traces[--r->ntraces];
			return;
		}
	}
}

/* ---- requests ---- */

static void
slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *p;

	for (p = l; p != NULL; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static void
easy_done(struct gitlab_req *req)
{
	if (req->easy != NULL) {
		curl_multi_remove_handle(req->gl->multi, req->easy);
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
	if (req->slist != NULL) {
		slist_wipe_free(req->slist);
		req->slist = NULL;
	}
}

static void
req_release(struct gitlab_req *req)
{
	easy_done(req);
	if (req->timer != NULL)
		event_free(req->timer);
	free(req->path);
	free(req->url);
	freezero(req->body, req->body_len);
	freezero_str(req->job_token);
	free(req->pre_msg);
	if (req->resp.buf != NULL)
		explicit_bzero(req->resp.buf, req->resp.len);
	sbuf_release(&req->resp);
	free(req);
}

/* Off the live list, into the graveyard (freed at the outermost leave). */
static void
req_bury(struct gitlab_req *req)
{
	struct gitlab *gl = req->gl;

	req->dead = 1;
	easy_done(req);
	evtimer_del(req->timer);
	TAILQ_REMOVE(&gl->reqs, req, link);
	if (gl->busy > 0) {
		TAILQ_INSERT_TAIL(&gl->grave, req, link);
	} else {
		req_release(req);
	}
}

void
gitlab_req_cancel(struct gitlab_req *req)
{
	if (req == NULL || req->dead)
		return;
	req_bury(req);
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct gitlab_req *req = ud;
	size_t n = size * nmemb;

	if (req->resp.len + n > req->body_cap) {
		req->toobig = 1;
		return 0;
	}
	sbuf_add(&req->resp, p, n);
	return n;
}

static void
hdr_store(char *dst, size_t cap, const char *v, size_t vl)
{
	if (vl >= cap)
		return;		/* oversize: as if absent */
	memcpy(dst, v, vl);
	dst[vl] = '\0';
}

static size_t
header_cb(char *b, size_t size, size_t nmemb, void *ud)
{
	struct gitlab_req *req = ud;
	size_t n = size * nmemb, nl, vl;
	const char *colon, *v;

	if (n >= 5 && memcmp(b, "HTTP/", 5) == 0) {
		memset(&req->h, 0, sizeof(req->h));	/* a new response */
		return n;
	}
	colon = memchr(b, ':', n);
	if (colon == NULL)
		return n;
	nl = (size_t)(colon - b);
	v = colon + 1;
	vl = n - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
	    v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
#define H(name, field) \
	if (nl == sizeof(name) - 1 && strncasecmp(b, name, nl) == 0) { \
		hdr_store(req->h.field, sizeof(req->h.field), v, vl); \
		return n; \
	}
	H("Job-Status", job_status)
	H("Range", range)
	H("X-GitLab-Last-Update", last_update)
	H("X-GitLab-Trace-Update-Interval", interval)
	H("Retry-After", retry_after)
	H("RateLimit-ResetTime", reset_time)
	H("Content-Type", ctype)
	H("X-Request-Id", request_id)
#undef H
	return n;
}

static void
add_header(struct gitlab_req *req, const char *name, const char *value)
{
	struct curl_slist *l;
	char *line = xasprintf("%s: %s", name, value);

	l = curl_slist_append(req->slist, line);
	freezero_str(line);
	if (l == NULL)
		abort();
	req->slist = l;
}

static void
on_req_timer(evutil_socket_t fd, short what, void *arg);

static struct gitlab_req *
req_new(struct gitlab_runner *r, enum op op, const char *method, char *path,
    gitlab_cb cb, void *arg)
{
	struct gitlab *gl = r->gl;
	struct gitlab_req *req = xcalloc(1, sizeof(*req));

	req->gl = gl;
	req->r = r;
	req->op = op;
	req->method = method;
	req->path = path;
	req->url = xasprintf("%s%s", r->base, path);
	req->cb = cb;
	req->arg = arg;
	req->offset = -1;
	req->body_cap = op == OP_REQUEST ? GITLAB_MAX_BODY : SMALL_BODY;
	sbuf_init(&req->resp);
	req->timer = evtimer_new(gl->base, on_req_timer, req);
	if (req->timer == NULL)
		abort();
	TAILQ_INSERT_TAIL(&gl->reqs, req, link);
	return req;
}

/* Refuse a call: the callback runs from the loop, not from here. */
static struct gitlab_req *
req_refuse(struct gitlab_req *req, int err, const char *msg)
{
	struct timeval tv = { 0, 0 };

	req->pre_err = err;
	req->pre_msg = xstrdup(msg);
	evtimer_add(req->timer, &tv);
	return req;
}

static void
attempt_start(struct gitlab_req *req)
{
	struct gitlab *gl = req->gl;
	struct gitlab_runner *r = req->r;
	CURL *e;
	long age = (long)(gl->o.connection_max_age_ns / 1000000000);

	req->attempt++;
	memset(&req->h, 0, sizeof(req->h));
	sbuf_reset(&req->resp);
	req->toobig = 0;
	req->status = 0;
	req->errbuf[0] = '\0';
	new_request_id(gl, req->reqid);
	req->attempt_start = gitlab_mono_ms();

	add_header(req, "X-Request-Id", req->reqid);
	if (req->ctype != NULL)
		add_header(req, "Content-Type", req->ctype);
	if (req->want_json)
		add_header(req, "Accept", "application/json");
	if (req->job_token != NULL)
		add_header(req, "JOB-TOKEN", req->job_token);
	else
		add_header(req, "RUNNER-TOKEN", r->token);
	if (req->content_range[0] != '\0')
		add_header(req, "Content-Range", req->content_range);
	add_header(req, "Expect", "");	/* no 100-continue round trip */

	e = curl_easy_init();
	if (e == NULL)
		abort();
	req->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_USERAGENT, gl->user_agent);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->slist);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)gl->o.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)gl->o.request_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
	if (age < 1)
		age = 1;
	curl_easy_setopt(e, CURLOPT_MAXLIFETIME_CONN, age);
	curl_easy_setopt(e, CURLOPT_MAXAGE_CONN,
	    age < CURL_IDLE_MAX_S ? age : (long)CURL_IDLE_MAX_S);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 60L);
	if (r->ca_file != NULL) {
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
		if (gl->have_capath)	/* the system store stays trusted */
			curl_easy_setopt(e, CURLOPT_CAPATH, SYSTEM_CAPATH);
	}
	if (r->cert_file != NULL) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, r->cert_file);
		curl_easy_setopt(e, CURLOPT_SSLKEY, r->key_file);
	}
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)req->body_len);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
	if (curl_multi_add_handle(gl->multi, e) != CURLM_OK)
		abort();
}

static const char *
transport_text(struct gitlab_req *req)
{
	if (req->toobig)
		return "answer over the size limit";
	return req->errbuf[0] != '\0' ? req->errbuf :
	    curl_easy_strerror(req->cres);
}

static void complete(struct gitlab_req *req);

/* One attempt's transfer ended (msg from curl_multi_info_read). */
static void
attempt_done(struct gitlab_req *req, CURLcode cres)
{
	struct gitlab *gl = req->gl;
	struct gitlab_attempt a;
	int64_t wait = -1;
	int retry = 0;

	req->cres = cres;
	req->status = 0;
	if (cres == CURLE_OK)
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE,
		    &req->status);
	if (req->status > 0 && req->h.last_update[0] != '\0')
		memcpy(req->r->last_update, req->h.last_update,
		    sizeof(req->r->last_update));
	if (req->attempt < gl->o.max_attempts) {
		if (cres != CURLE_OK && !req->toobig && curlretry_transient(cres))
			retry = 1;
		else if (cres == CURLE_OK && gitlab_retryable_status(req->status))
			retry = 1;
	}
	if (retry) {
		if (cres == CURLE_OK)
			wait = gitlab_retry_wait_ms(req->h.reset_time,
			    req->h.retry_after, real_ms());
		if (wait < 0)
			wait = gitlab_backoff_ms(req->nbackoff++,
			    gl->o.backoff_min_ms, gl->o.backoff_max_ms,
			    gitlab_rand01(gl));
	}
	if (gl->obs != NULL) {
		memset(&a, 0, sizeof(a));
		a.runner = req->r->name;
		a.method = req->method;
		a.path = req->path;
		a.attempt = req->attempt;
		a.status = req->status;
		a.error = cres != CURLE_OK ? transport_text(req) : NULL;
		a.elapsed_ms = gitlab_mono_ms() - req->attempt_start;
		{
			long nc = 0;

			curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &nc);
			a.new_connection = nc > 0;
		}
		a.retry_in_ms = retry ? wait : -1;
		a.request_id = req->reqid;
		a.correlation_id = req->h.request_id;
		gl->obs(&a, gl->obs_arg);
		if (req->dead)
			return;		/* the observer cancelled it */
	}
	if (retry) {
		struct timeval tv;

		easy_done(req);
		tv.tv_sec = (time_t)(wait / 1000);
		tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
		evtimer_add(req->timer, &tv);
		return;
	}
	complete(req);
}

static void
check_multi(struct gitlab *gl)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(gl->multi, &left)) != NULL) {
		struct gitlab_req *req = NULL;
		CURLcode res;

		if (msg->msg != CURLMSG_DONE)
			continue;
		res = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&req);
		if (req == NULL || req->dead)
			continue;
		attempt_done(req, res);
	}
}

static void
on_req_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gitlab_req *req = arg;
	struct gitlab *gl = req->gl;

	(void)fd;
	(void)what;
	gitlab_enter(gl);
	if (req->dead) {
		/* nothing */
	} else if (req->pre_err != 0) {
		complete(req);
	} else {
		attempt_start(req);
	}
	gitlab_leave(gl);
}

/* ---- interpreting answers ---- */

/* GitLab's error body: {"message": "..."} or {"error": "..."}; text that
 * is safe to show (printable ASCII, bounded).  "" when none. */
static void
body_message(struct gitlab_req *req, char *out, size_t len)
{
	json_t *root, *m;
	const char *s = NULL;
	size_t i, j = 0;

	out[0] = '\0';
	if (req->resp.len == 0 || req->resp.len > SMALL_BODY)
		return;
	root = json_loadb(req->resp.buf, req->resp.len, 0, NULL);
	if (root != NULL) {
		m = json_object_get(root, "message");
		if (!json_is_string(m))
			m = json_object_get(root, "error");
		if (json_is_string(m))
			s = json_string_value(m);
	}
	if (s != NULL)
		for (i = 0; s[i] != '\0' && j + 1 < len && i < 200; i++)
			out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[j] = '\0';
	json_decref(root);
}

static int
is_json_ctype(const char *ct)
{
	size_t n = strlen("application/json");

	return strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void
complete(struct gitlab_req *req)
{
	struct gitlab_result res;
	struct sbuf msg;
	char bm[256], perr[256];
	int js;
	struct gitlab_job *job = NULL;
	json_t *root = NULL;

	memset(&res, 0, sizeof(res));
	sbuf_init(&msg);
	res.offset = -1;
	res.attempts = req->attempt;
	res.status = req->status;
	res.correlation_id = req->h.request_id;
	res.token_expires_at = "";
	res.healthy = 1;
	res.job_status = gitlab_job_status_parse(req->h.job_status);
	res.cancel_requested = res.job_status == GITLAB_JS_CANCELING;
	res.update_interval_ms = gitlab_parse_update_interval(req->h.interval);
	js = res.job_status == GITLAB_JS_CANCELED ||
	    res.job_status == GITLAB_JS_FAILED;
	sbuf_addf(&msg, "%s %s: ", req->method, req->path);
	if (req->pre_err != 0) {
		res.outcome = GITLAB_FAILED;
		res.err = req->pre_err;
		res.healthy = 0;
		sbuf_adds(&msg, req->pre_msg);
		goto done;
	}
	if (req->cres != CURLE_OK) {
		res.outcome = GITLAB_FAILED;
		res.err = req->toobig ? FL_ERR_TOOBIG :
		    req->cres == CURLE_OPERATION_TIMEDOUT ? FL_ERR_TIMEOUT :
		    FL_ERR_IO;
		res.healthy = 0;
		sbuf_adds(&msg, transport_text(req));
		if (req->attempt > 1)
			sbuf_addf(&msg, " (after %d attempts)", req->attempt);
		goto done;
	}
	body_message(req, bm, sizeof(bm));
	sbuf_addf(&msg, "%ld", req->status);
	if (bm[0] != '\0')
		sbuf_addf(&msg, " %s", bm);
	if (req->attempt > 1)
		sbuf_addf(&msg, " (after %d attempts)", req->attempt);
	res.outcome = GITLAB_FAILED;

	switch (req->op) {
	case OP_VERIFY:
		if (req->status == 200) {
			res.outcome = GITLAB_OK;
			if (is_json_ctype(req->h.ctype))
				root = json_loadb(req->resp.buf, req->resp.len,
				    0, NULL);
			if (json_is_object(root)) {
				json_t *v = json_object_get(root, "id");
				json_t *x = json_object_get(root,
				    "token_expires_at");

				if (json_is_integer(v))
					res.runner_id = json_integer_value(v);
				if (json_is_string(x))
					res.token_expires_at =
					    json_string_value(x);
			}
		} else if (req->status == 403) {
			res.outcome = GITLAB_FORBIDDEN;
		}
		break;
	case OP_REGISTER:
		if (req->status == 201) {
			json_t *v, *t, *x;

			if (is_json_ctype(req->h.ctype))
				root = json_loadb(req->resp.buf, req->resp.len,
				    0, NULL);
			v = json_object_get(root, "id");
			t = json_object_get(root, "token");
			x = json_object_get(root, "token_expires_at");
			if (!json_is_object(root) || !json_is_string(t) ||
			    json_string_length(t) == 0) {
				res.err = FL_ERR_PROTO;
				sbuf_adds(&msg, ": answer has no token");
				break;
			}
			res.outcome = GITLAB_OK;
			res.token = json_string_value(t);
			log_add_secret(res.token);
			if (json_is_integer(v))
				res.runner_id = json_integer_value(v);
			if (json_is_string(x))
				res.token_expires_at = json_string_value(x);
		} else if (req->status == 403) {
			res.outcome = GITLAB_FORBIDDEN;
		}
		break;
	case OP_UNREGISTER:
		if (req->status == 204)
			res.outcome = GITLAB_OK;
		else if (req->status == 403)
			res.outcome = GITLAB_FORBIDDEN;
		else if (req->status == 404)
			res.outcome = GITLAB_NOT_FOUND;
		break;
	case OP_REQUEST:
		if (req->status == 201) {
			int rc;

			if (!is_json_ctype(req->h.ctype)) {
				res.err = FL_ERR_PROTO;
				res.healthy = 0;
				sbuf_adds(&msg, ": answer is not "
				    "application/json");
				break;
			}
			rc = gitlab_job_parse(req->resp.buf, req->resp.len,
			    &job, perr, sizeof(perr));
			if (rc < 0) {
				res.err = rc;
				res.healthy = 0;
				sbuf_addf(&msg, ": %s", perr);
				break;
			}
			log_add_secret(job->token);
			res.outcome = GITLAB_OK;
			res.job = job;
		} else if (req->status == 204) {
			res.outcome = GITLAB_NO_JOB;
		} else if (req->status == 403) {
			res.outcome = GITLAB_FORBIDDEN;
			res.healthy = 0;
		}
		break;
	case OP_UPDATE:
		if (js || req->status == 403)
			res.outcome = GITLAB_ABORT;
		else if (req->status == 200)
			res.outcome = GITLAB_OK;
		else if (req->status == 202)
			res.outcome = GITLAB_ACCEPTED;
		else if (req->status == 412)
			res.outcome = GITLAB_RESET;
		else if (req->status == 404)
			res.outcome = GITLAB_ABORT;
		break;
	case OP_PATCH:
		if (js || req->status == 403) {
			res.outcome = GITLAB_ABORT;
		} else if (req->status == 202) {
			res.outcome = GITLAB_OK;
			res.offset = req->offset + (int64_t)req->patch_len;
		} else if (req->status == 404) {
			res.outcome = GITLAB_NOT_FOUND;
		} else if (req->status == 416) {
			int64_t a, b;

			if (gitlab_parse_range(req->h.range, &a, &b) == 0) {
				res.outcome = GITLAB_RANGE;
				res.offset = b;
			} else {
				res.err = FL_ERR_PROTO;
				sbuf_adds(&msg, ": no valid Range header");
			}
		}
		break;
	}
done:
	res.msg = msg.buf;
	if (req->cb != NULL) {
		req->cb(req, &res, req->arg);
	} else if (res.job != NULL) {
		gitlab_job_free(res.job);
	}
	if (req->op == OP_REGISTER && json_is_object(root)) {
		json_t *t = json_object_get(root, "token");

		if (json_is_string(t))
			explicit_bzero((char *)json_string_value(t),
			    json_string_length(t));
	}
	json_decref(root);
	sbuf_release(&msg);
	if (!req->dead)
		req_bury(req);
}

/* ---- operations ---- */

static json_t *
runner_body(struct gitlab_runner *r, int with_info)
{
	json_t *o = json_object();

	if (o == NULL)
		abort();
	if (with_info)
		jset(o, "info", runner_info(r));
	jset(o, "token", json_string(r->token));
	if (r->system_id != NULL)
		jset(o, "system_id", json_string(r->system_id));
	return o;
}

struct gitlab_req *
gitlab_verify(struct gitlab_runner *r, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_VERIFY, "POST",
	    xstrdup("runners/verify"), cb, arg);

	req->body = dump_body(runner_body(r, 1), &req->body_len);
	req->ctype = "application/json";
	req->want_json = 1;
	attempt_start(req);
	return req;
}

struct gitlab_req *
gitlab_unregister_manager(struct gitlab_runner *r, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_UNREGISTER, "DELETE",
	    xstrdup("runners/managers"), cb, arg);

	if (r->system_id == NULL)
		return req_refuse(req, FL_ERR_INVAL, "no system_id");
	req->body = dump_body(runner_body(r, 0), &req->body_len);
	req->ctype = "application/json";
	attempt_start(req);
	return req;
}

struct gitlab_req *
gitlab_unregister_runner(struct gitlab_runner *r, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_UNREGISTER, "DELETE",
	    xstrdup("runners"), cb, arg);

	req->body = dump_body(runner_body(r, 0), &req->body_len);
	req->ctype = "application/json";
	attempt_start(req);
	return req;
}

/* Go's omitempty: strings left out when empty. */
static void
jset_nonempty(json_t *o, const char *k, const char *v)
{
	if (v != NULL && v[0] != '\0')
		jset(o, k, json_string(v));
}

json_t *
gitlab_register_json(json_t *info, const char *token,
    const struct gitlab_register *p)
{
	json_t *o = json_object();

	if (o == NULL)
		abort();
	jset_nonempty(o, "description", p->description);
	jset_nonempty(o, "maintenance_note", p->maintenance_note);
	jset_nonempty(o, "tag_list", p->tag_list);
	jset(o, "run_untagged", json_boolean(p->run_untagged));
	jset(o, "locked", json_boolean(p->locked));
	jset_nonempty(o, "access_level", p->access_level);
	if (p->maximum_timeout != 0)
		jset(o, "maximum_timeout",
		    json_integer((json_int_t)p->maximum_timeout));
	jset(o, "paused", json_boolean(p->paused));
	jset(o, "info", info);
	jset_nonempty(o, "token", token);
	return o;
}

struct gitlab_req *
gitlab_register_runner(struct gitlab_runner *r,
    const struct gitlab_register *p, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_REGISTER, "POST",
	    xstrdup("runners"), cb, arg);

	req->body = dump_body(gitlab_register_json(runner_info(r), r->token,
	    p), &req->body_len);
	req->ctype = "application/json";
	req->want_json = 1;
	attempt_start(req);
	return req;
}

struct gitlab_req *
gitlab_request_job(struct gitlab_runner *r, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_REQUEST, "POST",
	    xstrdup("jobs/request"), cb, arg);
	json_t *o = runner_body(r, 1);

	if (r->last_update[0] != '\0')
		jset(o, "last_update", json_string(r->last_update));
	req->body = dump_body(o, &req->body_len);
	req->ctype = "application/json";
	req->want_json = 1;
	attempt_start(req);
	return req;
}

struct gitlab_req *
gitlab_update_job(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const struct gitlab_update *u, gitlab_cb cb,
    void *arg)
{
	struct gitlab_req *req = req_new(r, OP_UPDATE, "PUT",
	    xasprintf("jobs/%lld", (long long)job_id), cb, arg);

	if (job_token == NULL || job_token[0] == '\0')
		return req_refuse(req, FL_ERR_INVAL, "no job token");
	req->job_token = xstrdup(job_token);
	req->body = dump_body(gitlab_update_json(runner_info(r), job_token, u),
	    &req->body_len);
	req->ctype = "application/json";
	attempt_start(req);
	return req;
}

struct gitlab_req *
gitlab_patch_trace(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const void *data, size_t len, int64_t offset,
    int debug_trace, gitlab_cb cb, void *arg)
{
	struct gitlab_req *req = req_new(r, OP_PATCH, "PATCH",
	    xasprintf("jobs/%lld/trace?debug_trace=%s", (long long)job_id,
	    debug_trace ? "true" : "false"), cb, arg);

	if (job_token == NULL || job_token[0] == '\0')
		return req_refuse(req, FL_ERR_INVAL, "no job token");
	if (len == 0 || len > GITLAB_PATCH_LIMIT || offset < 0)
		return req_refuse(req, FL_ERR_INVAL, "bad patch size or offset");
	req->job_token = xstrdup(job_token);
	req->body = xmalloc(len);
	memcpy(req->body, data, len);
	req->body_len = len;
	req->offset = offset;
	req->patch_len = len;
	snprintf(req->content_range, sizeof(req->content_range), "%lld-%lld",
	    (long long)offset, (long long)(offset + (int64_t)len - 1));
	req->ctype = "text/plain";
	attempt_start(req);
	return req;
}
