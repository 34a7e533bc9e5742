/*
 * gitlab_probe: drives manager/gitlab.c against a (fake) GitLab for
 * tests/integration/gitlab_client.sh.  One scenario per run, results as
 * "key value" lines on stdout; every HTTP attempt is logged on stderr
 * through lib/log (so the test can check that no token leaks).
 *
 * Tokens come from the environment, never argv: GITLAB_PROBE_TOKEN.
 *
 *   gitlab_probe --url URL [options] verify|unregister|request|run
 *
 *   verify      POST runners/verify
 *   unregister  DELETE runners/managers
 *   request     one POST jobs/request; prints the outcome, elapsed time
 *               and the parsed job (no ack is sent)
 *   poll        --wait N job requests one after the other (long polling)
 *   run         requests a job (retrying 204s up to --wait seconds),
 *               starts a trace, appends --bytes of generated text in
 *               --chunk pieces every --every ms, then finishes with
 *               --state; on a cancel it stops and finishes failed /
 *               job_canceled, on an abort it stops and finishes.  Prints
 *               each event and "done ..." with our crc32 and size.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "err.h"
#include "gitlab.h"
#include "log.h"
#include "xmalloc.h"

static struct {
	const char *url, *ca, *system_id, *state, *reason, *scenario;
	struct gitlab_opts gopts;
	struct gitlab_trace_opts topts;
	size_t bytes, chunk;
	int every_ms, exit_code, wait_s;
} o;

static struct event_base *base;
static struct gitlab *gl;
static struct gitlab_runner *runner;
static struct gitlab_trace *trace;
static struct gitlab_job *job;
static struct event *append_ev, *retry_ev;
static size_t produced;
static int64_t t0, wait_until;
static int rc = 1;
static int stopped;		/* no more appends */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
outcome_name(enum gitlab_outcome x)
{
	static const char *const n[] = {
		"ok", "no_job", "accepted", "range", "reset", "abort",
		"not_found", "forbidden", "failed"
	};

	return (unsigned)x < sizeof(n) / sizeof(n[0]) ? n[x] : "?";
}

static void
observer(const struct gitlab_attempt *a, void *arg)
{
	struct log_field f[7];
	char st[16], at[16], rt[24], el[24];

	(void)arg;
	snprintf(st, sizeof(st), "%ld", a->status);
	snprintf(at, sizeof(at), "%d", a->attempt);
	snprintf(rt, sizeof(rt), "%lld", (long long)a->retry_in_ms);
	snprintf(el, sizeof(el), "%lld", (long long)a->elapsed_ms);
	f[0] = (struct log_field){ "status", st };
	f[1] = (struct log_field){ "attempt", at };
	f[2] = (struct log_field){ "retry_in_ms", rt };
	f[3] = (struct log_field){ "elapsed_ms", el };
	f[4] = (struct log_field){ "request_id", a->request_id };
	f[5] = (struct log_field){ "runner", a->runner };
	f[6] = (struct log_field){ "error", a->error != NULL ? a->error : "" };
	log_infof(f, 7, "%s %s", a->method, a->path);
	/* Also the same on stdout for timing checks. */
	printf("attempt %s %s status=%ld n=%d retry_in_ms=%lld at_ms=%lld "
	    "newconn=%d\n", a->method, a->path, a->status, a->attempt,
	    (long long)a->retry_in_ms, (long long)(mono_ms() - t0),
	    a->new_connection);
	fflush(stdout);
}

static void
print_result(const char *what, const struct gitlab_result *res)
{
	printf("%s outcome=%s status=%ld err=%d attempts=%d healthy=%d "
	    "cancel=%d job_status=%d interval_ms=%lld offset=%lld "
	    "elapsed_ms=%lld\n", what, outcome_name(res->outcome), res->status,
	    res->err, res->attempts, res->healthy, res->cancel_requested,
	    (int)res->job_status, (long long)res->update_interval_ms,
	    (long long)res->offset, (long long)(mono_ms() - t0));
	printf("%s msg %s\n", what, res->msg);
	fflush(stdout);
}

static void
print_job(const struct gitlab_job *j)
{
	size_t i;

	printf("job id=%lld\n", (long long)j->id);
	printf("job image=%s\n", j->image.name);
	printf("job image_entrypoint=%zu\n", j->image.entrypoint.n);
	printf("job image_pull_policy=%s\n",
	    j->image.pull_policy.n > 0 ? j->image.pull_policy.v[0] : "");
	printf("job steps=%zu\n", j->nsteps);
	for (i = 0; i < j->nsteps; i++)
		printf("job step %s lines=%zu timeout=%lld when=%s\n",
		    j->steps[i].name, j->steps[i].script.n,
		    (long long)j->steps[i].timeout, j->steps[i].when);
	printf("job variables=%zu\n", j->variables.n);
	for (i = 0; i < j->variables.n; i++)
		printf("job var %s public=%d masked=%d file=%d raw=%d\n",
		    j->variables.v[i].key, j->variables.v[i].public,
		    j->variables.v[i].masked, j->variables.v[i].file,
		    j->variables.v[i].raw);
	printf("job services=%zu\n", j->nservices);
	for (i = 0; i < j->nservices; i++)
		printf("job service %s aliases=%zu\n", j->services[i].name,
		    j->services[i].aliases.n);
	printf("job artifacts=%zu\n", j->nartifacts);
	printf("job caches=%zu\n", j->ncaches);
	printf("job dependencies=%zu\n", j->ndependencies);
	printf("job git_ref=%s git_sha=%s depth=%lld\n", j->git_info.ref,
	    j->git_info.sha, (long long)j->git_info.depth);
	printf("job timeout=%lld\n", (long long)gitlab_job_timeout(j));
	printf("job trace_sections=%d\n", j->trace_sections);
	printf("job unsupported=%s\n", j->unsupported != NULL ?
	    j->unsupported : "");
	fflush(stdout);
}

static void
finish_loop(int code)
{
	rc = code;
	event_base_loopexit(base, NULL);
}

static void
simple_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	(void)req;
	print_result(arg, res);
	if (res->job != NULL) {
		print_job(res->job);
		gitlab_job_free(res->job);
	}
	finish_loop(0);
}

/* Generated job output: 63 letters and a newline a line. */
static void
gen(size_t off, char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t x = off + i;

		p[i] = (x % 64 == 63) ? '\n' :
		    (char)('a' + (x * 7 + x / 64) % 26);
	}
}

static void
do_finish(enum gitlab_state st, const char *reason, int code)
{
	stopped = 1;
	if (append_ev != NULL)
		evtimer_del(append_ev);
	printf("finish state=%d reason=%s at_ms=%lld\n", (int)st,
	    reason != NULL ? reason : "",
	    (long long)(mono_ms() - t0));
	fflush(stdout);
	gitlab_trace_finish(trace, st, reason, code);
}

static void
final_finish(void)
{
	if (strcmp(o.state, "success") == 0)
		do_finish(GITLAB_SUCCESS, NULL, 0);
	else
		do_finish(GITLAB_FAILED_STATE, o.reason, o.exit_code);
}

static void
on_append(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { o.every_ms / 1000, (o.every_ms % 1000) * 1000 };
	char *p;
	size_t n;

	(void)fd;
	(void)what;
	(void)arg;
	if (stopped)
		return;
	n = o.bytes - produced < o.chunk ? o.bytes - produced : o.chunk;
	if (n > 0) {
		p = xmalloc(n);
		gen(produced, p, n);
		gitlab_trace_append(trace, p, n);
		free(p);
		produced += n;
	}
	if (produced >= o.bytes)
		final_finish();
	else
		evtimer_add(append_ev, &tv);
}

static void
trace_cb(struct gitlab_trace *t, enum gitlab_trace_event ev,
    const struct gitlab_result *res, void *arg)
{
	(void)arg;
	switch (ev) {
	case GITLAB_TRACE_ACK:
		print_result("event ack", res);
		if (res->outcome == GITLAB_ABORT) {
			do_finish(GITLAB_FAILED_STATE, "runner_system_failure", 0);
		} else if (res->cancel_requested) {
			do_finish(GITLAB_FAILED_STATE, "job_canceled", 0);
		} else {
			struct timeval tv = { 0, 0 };

			evtimer_add(append_ev, &tv);
		}
		break;
	case GITLAB_TRACE_CANCEL:
		print_result("event cancel", res);
		do_finish(GITLAB_FAILED_STATE,
		    gitlab_failure_reason(job, "job_canceled"), 0);
		break;
	case GITLAB_TRACE_ABORT:
		print_result("event abort", res);
		do_finish(GITLAB_FAILED_STATE, "runner_system_failure", 0);
		break;
	case GITLAB_TRACE_DONE:
		if (res != NULL)
			print_result("event done", res);
		printf("done outcome=%s crc32=%08x size=%llu sent=%llu "
		    "produced=%zu job=%lld at_ms=%lld\n",
		    res != NULL ? outcome_name(res->outcome) : "abort",
		    gitlab_trace_crc32(t),
		    (unsigned long long)gitlab_trace_size(t),
		    (unsigned long long)gitlab_trace_sent(t), produced,
		    (long long)job->id,
		    (long long)(mono_ms() - t0));
		fflush(stdout);
		gitlab_trace_free(t);
		trace = NULL;
		finish_loop(res != NULL && res->outcome == GITLAB_OK ? 0 : 2);
		break;
	}
}

static void request_for_run(void);
static int polls_left, poll_no;
static int64_t poll_t;

static void
poll_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	char what[32];

	(void)req;
	(void)arg;
	snprintf(what, sizeof(what), "poll %d", ++poll_no);
	print_result(what, res);
	printf("poll %d took_ms=%lld last_update=%s\n", poll_no,
	    (long long)(mono_ms() - poll_t), gitlab_runner_last_update(runner));
	fflush(stdout);
	if (res->job != NULL) {
		printf("poll %d job=%lld\n", poll_no, (long long)res->job->id);
		gitlab_job_free(res->job);
	}
	if (--polls_left <= 0) {
		finish_loop(0);
		return;
	}
	poll_t = mono_ms();
	gitlab_request_job(runner, poll_cb, NULL);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	request_for_run();
}

static void
run_request_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	(void)req;
	(void)arg;
	if (res->outcome == GITLAB_NO_JOB &&
	    mono_ms() < wait_until) {
		struct timeval tv = { 0, 200000 };

		evtimer_add(retry_ev, &tv);
		return;
	}
	print_result("request", res);
	if (res->job == NULL) {
		finish_loop(3);
		return;
	}
	job = res->job;
	res->job = NULL;
	printf("job id=%lld\n", (long long)job->id);
	fflush(stdout);
	trace = gitlab_trace_new(runner, job->id, job->token, &o.topts,
	    trace_cb, NULL);
}

static void
request_for_run(void)
{
	gitlab_request_job(runner, run_request_cb, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: gitlab_probe --url URL [--ca FILE] "
	    "[--system-id ID] [--attempts N] [--backoff-min MS] "
	    "[--interval MS] [--force-send MS] [--patch-limit N] "
	    "[--final-retries N] [--final-backoff MS] [--output-limit N] "
	    "[--bytes N] [--chunk N] [--every MS] [--state S] [--reason R] "
	    "[--exit N] [--wait S] verify|unregister|request|poll|run\n"
	    "token: $GITLAB_PROBE_TOKEN\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", 1, NULL, 'u' }, { "ca", 1, NULL, 'c' },
		{ "system-id", 1, NULL, 's' }, { "attempts", 1, NULL, 'a' },
		{ "backoff-min", 1, NULL, 'b' }, { "interval", 1, NULL, 'i' },
		{ "force-send", 1, NULL, 'f' }, { "patch-limit", 1, NULL, 'p' },
		{ "final-retries", 1, NULL, 'r' },
		{ "final-backoff", 1, NULL, 'B' },
		{ "output-limit", 1, NULL, 'o' }, { "bytes", 1, NULL, 'n' },
		{ "chunk", 1, NULL, 'k' }, { "every", 1, NULL, 'e' },
		{ "state", 1, NULL, 'S' }, { "reason", 1, NULL, 'R' },
		{ "exit", 1, NULL, 'x' }, { "wait", 1, NULL, 'w' },
		{ "timeout", 1, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	struct gitlab_runner_conf rc_conf;
	char *err = NULL;
	const char *tok;
	int c;

	o.state = "success";
	o.reason = "script_failure";
	o.chunk = 4096;
	o.every_ms = 100;
	o.wait_s = 10;
	o.system_id = "s_0123456789ab";
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o.url = optarg; break;
		case 'c': o.ca = optarg; break;
		case 's': o.system_id = optarg; break;
		case 'a': o.gopts.max_attempts = atoi(optarg); break;
		case 'b': o.gopts.backoff_min_ms = atoll(optarg); break;
		case 't': o.gopts.request_timeout_ms = atoll(optarg); break;
		case 'i': o.topts.update_interval_ms = atoll(optarg); break;
		case 'f': o.topts.force_send_interval_ms = atoll(optarg); break;
		case 'p': o.topts.patch_limit = (size_t)atoll(optarg); break;
		case 'r': o.topts.final_retry_limit = atoi(optarg); break;
		case 'B': o.topts.final_backoff_min_ms = atoll(optarg); break;
		case 'o': o.topts.output_limit = (size_t)atoll(optarg); break;
		case 'n': o.bytes = (size_t)atoll(optarg); break;
		case 'k': o.chunk = (size_t)atoll(optarg); break;
		case 'e': o.every_ms = atoi(optarg); break;
		case 'S': o.state = optarg; break;
		case 'R': o.reason = optarg; break;
		case 'x': o.exit_code = atoi(optarg); break;
		case 'w': o.wait_s = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || o.url == NULL || o.chunk == 0)
		usage();
	o.scenario = argv[optind];
	tok = getenv("GITLAB_PROBE_TOKEN");
	if (tok == NULL)
		tok = "";

	log_set_level(LOG_DEBUG);
	base = event_base_new();
	gl = gitlab_new(base, &o.gopts);
	if (base == NULL || gl == NULL) {
		fprintf(stderr, "gitlab_probe: cannot start\n");
		return 1;
	}
	gitlab_set_observer(gl, observer, NULL);
	memset(&rc_conf, 0, sizeof(rc_conf));
	rc_conf.name = "probe";
	rc_conf.url = o.url;
	rc_conf.token = tok;
	rc_conf.tls_ca_file = o.ca;
	rc_conf.executor = "docker-autoscaler";
	rc_conf.shell = "bash";
	rc_conf.system_id = o.system_id;
	if (gitlab_runner_new(gl, &rc_conf, &runner, &err) < 0) {
		printf("runner error %s\n", err);
		log_error("runner: %s", err);
		free(err);
		gitlab_free(gl);
		event_base_free(base);
		return 1;
	}
	printf("base_url %s\n", gitlab_runner_base_url(runner));
	t0 = mono_ms();
	append_ev = evtimer_new(base, on_append, NULL);
	retry_ev = evtimer_new(base, on_retry, NULL);
	if (strcmp(o.scenario, "verify") == 0) {
		gitlab_verify(runner, simple_cb, "verify");
	} else if (strcmp(o.scenario, "unregister") == 0) {
		gitlab_unregister_manager(runner, simple_cb, "unregister");
	} else if (strcmp(o.scenario, "request") == 0) {
		gitlab_request_job(runner, simple_cb, "request");
	} else if (strcmp(o.scenario, "poll") == 0) {
		polls_left = o.wait_s;
		poll_t = mono_ms();
		gitlab_request_job(runner, poll_cb, NULL);
	} else if (strcmp(o.scenario, "run") == 0) {
		wait_until = mono_ms() + (int64_t)o.wait_s * 1000;
		request_for_run();
	} else {
		usage();
	}
	event_base_dispatch(base);
	printf("last_update %s\n", gitlab_runner_last_update(runner));
	printf("exit %d\n", rc);
	gitlab_free(gl);
	gitlab_job_free(job);
	event_free(append_ev);
	event_free(retry_ev);
	event_base_free(base);
	log_release();
	return rc;
}
