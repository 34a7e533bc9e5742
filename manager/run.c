/*
 * The run loop (see run.h): runners, their fleets and the jobs in
 * flight, on one event loop.
 *
 * Ownership.  A config (struct cfgref) lives while anything made from it
 * does: a runner's fleet keeps pointers into the config it was made
 * with, a job into the one it started under.  A reload makes a new
 * cfgref; runners kept switch their request settings to it (and give
 * their fleet the new policies), runners gone are drained, new ones
 * started.
 *
 * A job (struct rjob) holds a reserved-then-acquired slot (scaler key),
 * its gitlab_trace, then its instance connection and executor.  Whatever
 * ends it (executor done, no instance, connection failure, abort), it
 * ends through job_finish(): slot released, connection given back, final
 * state sent; the trace's DONE event frees it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "executor.h"
#include "fleet.h"
#include "gitlab.h"
#include "httpd.h"
#include "instconn.h"
#include "log.h"
#include "metrics.h"
#include "run.h"
#include "scaler.h"
#include "systemid.h"
#include "timestamper.h"
#include "xmalloc.h"

#define NS		INT64_C(1000000000)
#define MAX_CONCURRENT_IDS 4096
/* A jobs/request answered 204 after this long was held by Workhorse's
 * long polling, which ends early when the queue changes. */
#define LONG_POLL_HELD_NS	(NS / 4)

struct cfgref {
	struct config *cfg;
	int refs;
};

struct rrunner;

/* A jobs/request in flight, with the slot reserved for it. */
struct rreq {
	struct rreq *next;
	struct rrunner *rr;
	struct gitlab_req *req;
	scaler_key key;
	char last_update[128];	/* what the request sent */
	int64_t sent_ns;	/* monotonic */
};

enum rjob_phase {
	J_ACQUIRING,		/* waiting for the fleet's grant */
	J_CONNECTING,		/* waiting for the instance's connection */
	J_RUNNING,		/* the executor has it */
	J_FINISHING,		/* final state being sent */
};

struct rjob {
	struct rjob *next;
	struct run *run;
	struct rrunner *rr;
	struct cfgref *cref;
	const struct config_runner *rc;
	struct gitlab_job *job;
	struct gitlab_trace *trace;
	scaler_key key;
	int have_key;
	enum rjob_phase phase;
	char *instance;
	int slot;
	int concurrent_id;
	struct instconn_wait *icw;
	struct instconn *ic;
	struct exec *exec;
	int acked;
	int cancel_wanted;	/* canceling seen before the executor ran */
	int interrupted;	/* forceful shutdown reached it */
	int prepare_attempt;	/* GitLab's preparation retries: 0.. */
	struct event *retry_ev;	/* waiting to prepare again */
	int64_t started_ns;	/* monotonic */
	const char *state_name;	/* for /debug/jobs/list */
	char *final_reason;
};

struct rrunner {
	struct rrunner *next;
	struct run *run;
	struct cfgref *cref;		/* what fleet and rc point into */
	const struct config_runner *rc;	/* current settings */
	char short_token[10];
	char name[128];
	struct gitlab_runner *gr;
	struct fleet *fleet;
	struct instconn_pool *pool;
	struct event *feed_timer;
	struct rreq *reqs;
	int nreqs;
	int njobs;
	unsigned char *ids;		/* CI_CONCURRENT_ID in use */
	int draining;			/* removed by a reload, or stopping */
	int stopping, stopped;		/* fleet_stop called / done */
	int unhealthy;			/* consecutive unhealthy requests */
	int64_t rest_until;		/* monotonic ns: unhealthy rest */
};

struct run {
	struct event_base *base;
	struct cfgref *cref;		/* the current config */
	int64_t slots;			/* worker slots started (concurrent) */
	char *config_path;
	char *certs_dir;		/* GitLab's certs/ beside it */
	char *helper_tar;
	struct gitlab *gl;
	struct rrunner *runners;
	struct rjob *jobs;
	int njobs, nreqs;
	enum run_phase phase;
	char system_id[SYSTEMID_LEN + 1];
	char hostname[256];
	struct event *stop_timer;	/* forceful: shutdown_timeout */
	struct event *done_ev;
	void (*done)(void *arg, int exit_code);
	void *done_arg;
	int exit_code;
	struct run_stats st;
	int64_t failed_by_reason[16];
	struct metrics *metrics;
	struct metrics_runner rm;
};

static const char *const reason_names[] = {
	"script_failure", "runner_system_failure", "job_execution_timeout",
	"image_pull_failure", "unknown_failure", "runner_configuration_error",
	"runner_external_dependency_failure", "runner_interrupted",
	"job_canceled", NULL
};

static void feed(struct rrunner *rr);
static void run_collect(struct metrics *scratch, void *arg);
static void slots_update(struct run *r, int64_t concurrent);
static void api_observed(const struct gitlab_attempt *a, void *arg);
static void schedule_feed(struct rrunner *rr, int64_t delay_ns);
static void check_progress(struct run *r);
static void job_finish(struct rjob *j, enum gitlab_state state,
    const char *reason, int exit_code);

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static struct cfgref *
cfgref_new(struct config *cfg)
{
	struct cfgref *c = xcalloc(1, sizeof(*c));

	c->cfg = cfg;
	c->refs = 1;
	return c;
}

static struct cfgref *
cfgref_get(struct cfgref *c)
{
	c->refs++;
	return c;
}

static void
cfgref_put(struct cfgref *c)
{
	if (c != NULL && --c->refs == 0) {
		config_free(c->cfg);
		free(c);
	}
}

static int64_t
check_interval_ns(const struct run *r)
{
	int64_t s = r->cref->cfg->check_interval;

	return (s > 0 ? s : 3) * NS;
}

const char *
run_default_helper_tar(void)
{
	static char path[512];
	const char *dirs[] = { "/usr/lib/flotilla/helper-images", NULL };

	for (size_t i = 0; dirs[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/flotilla-helper-%s.tar",
		    dirs[i], FL_VERSION);
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

/* ------------------------------------------------------------------ jobs */

static void
job_trace_line(struct rjob *j, const char *color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
job_trace_line(struct rjob *j, const char *color, const char *fmt, ...)
{
	char line[1024];
	char out[TSTAMP_HEADER_LEN + 1100];
	size_t h = 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (exec_timestamps_on(j->rc, j->job)) {	/* the runner's stream */
		tstamp_header(out, tstamp_now_us(), 0, TSTAMP_STDOUT, ' ');
		h = TSTAMP_HEADER_LEN;
	}
	n = snprintf(out + h, sizeof(out) - h, "%s%s\033[0;m\n", color, line);
	if (n > 0 && j->trace != NULL)
		gitlab_trace_append(j->trace, out, h +
		    ((size_t)n < sizeof(out) - h ? (size_t)n :
		    sizeof(out) - h - 1));
}

static int
take_concurrent_id(struct rrunner *rr)
{
	for (int i = 0; i < MAX_CONCURRENT_IDS; i++) {
		if (!rr->ids[i]) {
			rr->ids[i] = 1;
			return i;
		}
	}
	return MAX_CONCURRENT_IDS - 1;
}

static void
count_failure(struct run *r, const char *reason)
{
	for (size_t i = 0; reason_names[i] != NULL; i++) {
		if (strcmp(reason_names[i], reason) == 0) {
			r->failed_by_reason[i]++;
			return;
		}
	}
}

static void
job_free(struct rjob *j)
{
	struct run *r = j->run;
	struct rrunner *rr = j->rr;

	for (struct rjob **pp = &r->jobs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	r->njobs--;
	rr->njobs--;
	if (j->concurrent_id >= 0 && j->concurrent_id < MAX_CONCURRENT_IDS)
		rr->ids[j->concurrent_id] = 0;
	instconn_wait_cancel(j->icw);
	exec_free(j->exec);
	if (j->retry_ev != NULL)
		event_free(j->retry_ev);
	instconn_put(j->ic);
	if (j->have_key)
		fleet_release(rr->fleet, j->key);
	gitlab_trace_free(j->trace);
	gitlab_job_free(j->job);
	cfgref_put(j->cref);
	free(j->final_reason);
	free(j->instance);
	free(j);
	/* A slot is free: ask for the next job at once. */
	if (!rr->draining)
		schedule_feed(rr, 0);
	check_progress(r);
}

static void
job_finish(struct rjob *j, enum gitlab_state state, const char *reason,
    int exit_code)
{
	const char *mapped = NULL;

	if (j->phase == J_FINISHING)
		return;
	j->phase = J_FINISHING;
	j->state_name = "finishing";
	if (j->retry_ev != NULL)
		evtimer_del(j->retry_ev);
	if (j->icw != NULL) {
		instconn_wait_cancel(j->icw);
		j->icw = NULL;
	}
	instconn_put(j->ic);
	j->ic = NULL;
	if (j->have_key) {
		fleet_release(j->rr->fleet, j->key);
		j->have_key = 0;
	}
	if (state == GITLAB_SUCCESS) {
		j->run->st.jobs_succeeded++;
	} else {
		mapped = gitlab_failure_reason(j->job, reason);
		j->run->st.jobs_failed++;
		count_failure(j->run, reason != NULL ? reason :
		    "script_failure");
		metrics_inc(j->run->rm.failed_jobs_total, (const char *const[]){
		    j->rr->short_token, j->rr->name, reason != NULL ? reason :
		    "script_failure", "" });
	}
	metrics_observe(j->run->rm.job_duration_seconds, (const char *const[]){
	    j->rr->short_token, j->rr->name, j->run->system_id, "" },
	    (double)(mono_ns() - j->started_ns) / 1e9);
	{
		char id[32];
		char dur[32];
		struct log_field f[] = {
			{ "job", id }, { "runner", j->rr->short_token },
			{ "instance", j->instance != NULL ? j->instance : "" },
			{ "state", state == GITLAB_SUCCESS ? "success" :
			    "failed" },
			{ "failure_reason", mapped != NULL ? mapped : "" },
			{ "duration_s", dur },
		};

		snprintf(id, sizeof(id), "%" PRId64, j->job->id);
		snprintf(dur, sizeof(dur), "%.3f",
		    (double)(mono_ns() - j->started_ns) / 1e9);
		log_infof(f, sizeof(f) / sizeof(f[0]), "Job finished");
	}
	gitlab_trace_finish(j->trace, state, mapped, exit_code);
}

/* A failure before the executor ran: say it in the trace, then finish. */
static void
job_fail_early(struct rjob *j, const char *reason, const char *msg)
{
	if (j->phase == J_FINISHING)
		return;
	job_trace_line(j, "\033[31;1m", "ERROR: Job failed (system failure): %s",
	    msg);
	job_finish(j, GITLAB_FAILED_STATE, reason, 0);
}

static void
exec_out(void *arg, const void *data, size_t len)
{
	struct rjob *j = arg;

	gitlab_trace_append(j->trace, data, len);
}

static void got_connection(void *arg, int err, const char *msg,
    struct instconn *ic);

/* The retry interval is over: connect again (a broken connection is
 * replaced by the pool), then prepare again. */
static void
retry_fire(evutil_socket_t fd, short what, void *arg)
{
	struct rjob *j = arg;

	(void)fd;
	(void)what;
	if (j->phase != J_CONNECTING)
		return;
	j->icw = instconn_get(j->rr->pool, j->instance, got_connection, j);
}

static void
exec_done(void *arg, const struct exec_result *res)
{
	struct rjob *j = arg;
	const char *reason = res->failure_reason;

	if (res->retry && !j->interrupted && !j->cancel_wanted &&
	    j->have_key && j->phase == J_RUNNING) {
		/* GitLab's preparation retry: the same instance, a new
		 * executor, EXEC_PREPARE_RETRY_S later.  Nothing ran yet. */
		struct timeval tv = { EXEC_PREPARE_RETRY_S, 0 };

		exec_free(j->exec);
		j->exec = NULL;
		instconn_put(j->ic);
		j->ic = NULL;
		j->prepare_attempt++;
		j->phase = J_CONNECTING;
		j->state_name = "preparing";
		if (j->retry_ev == NULL)
			j->retry_ev = evtimer_new(j->run->base, retry_fire, j);
		evtimer_add(j->retry_ev, &tv);
		return;
	}
	if (j->interrupted && res->state != GITLAB_SUCCESS)
		reason = "runner_interrupted";
	else if (res->retry && j->cancel_wanted)
		reason = "job_canceled";
	job_finish(j, res->state, reason, res->exit_code);
}

static void
got_connection(void *arg, int err, const char *msg, struct instconn *ic)
{
	struct rjob *j = arg;
	struct run *r = j->run;
	struct exec_params p;

	j->icw = NULL;
	if (err != 0 && j->prepare_attempt > 0) {
		/* A retry that cannot reach the instance: GitLab's Prepare
		 * failing to dial, counted as an attempt. */
		job_trace_line(j, "\033[31;1m", "ERROR: Preparation failed: %s",
		    msg);
		if (j->prepare_attempt + 1 < EXEC_PREPARE_TRIES &&
		    !j->cancel_wanted && !j->interrupted) {
			struct timeval tv = { EXEC_PREPARE_RETRY_S, 0 };

			job_trace_line(j, "", "Will be retried in %ds ...",
			    EXEC_PREPARE_RETRY_S);
			j->prepare_attempt++;
			evtimer_add(j->retry_ev, &tv);
			return;
		}
	}
	if (err != 0) {
		job_fail_early(j, "runner_system_failure", msg);
		return;
	}
	j->ic = ic;
	if (j->cancel_wanted || j->interrupted) {
		job_fail_early(j, j->interrupted ? "runner_interrupted" :
		    "job_canceled", "the job was stopped before it started");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.base = r->base;
	p.docker = instconn_docker(ic);
	p.rc = j->rc;
	p.job = j->job;
	p.runner_url = j->rc->url;
	p.short_token = j->rr->short_token;
	p.system_id = r->system_id;
	p.instance_id = j->instance;
	p.hostname = r->hostname;
	p.helper_image = j->rc->docker.helper_image != NULL &&
	    *j->rc->docker.helper_image != '\0' ? j->rc->docker.helper_image :
	    NULL;
	p.helper_image_tar = r->helper_tar;
	p.concurrent_id = j->concurrent_id;
	p.prepare_attempt = j->prepare_attempt;
	p.prepare_tries = EXEC_PREPARE_TRIES;
	p.elapsed_s = (mono_ns() - j->started_ns) / 1000000000;
	gitlab_runner_tls_files(j->rr->gr, &p.tls_ca_file, &p.tls_cert_file,
	    &p.tls_key_file);
	j->phase = J_RUNNING;
	j->state_name = "running";
	j->exec = exec_start(&p, exec_out, exec_done, j);
	if (j->exec == NULL)
		job_fail_early(j, "runner_system_failure",
		    "the executor could not start");
}

static void
acquired(void *arg, enum fleet_acq_event ev, scaler_key key,
    const char *instance, int slot)
{
	struct rjob *j = arg;

	(void)key;
	switch (ev) {
	case FLEET_ACQ_GRANTED:
		free(j->instance);
		j->instance = xstrdup(instance);
		j->slot = slot;
		if (j->phase != J_ACQUIRING)
			return;
		j->phase = J_CONNECTING;
		j->state_name = "connecting";
		log_debug("job %" PRId64 " granted slot %d on instance %s",
		    j->job->id, slot, instance);
		j->icw = instconn_get(j->rr->pool, instance, got_connection,
		    j);
		break;
	case FLEET_ACQ_TIMED_OUT:
		j->have_key = 0;
		job_fail_early(j, "runner_system_failure",
		    "no instance became available in time "
		    "(instance_acquire_timeout)");
		break;
	case FLEET_ACQ_CANCELLED:
		j->have_key = 0;
		if (j->exec != NULL && j->phase == J_RUNNING)
			exec_abort(j->exec, "runner_system_failure");
		else
			job_fail_early(j, "runner_system_failure",
			    "the instance was removed");
		break;
	}
}

static void
trace_event(struct gitlab_trace *t, enum gitlab_trace_event ev,
    const struct gitlab_result *res, void *arg)
{
	struct rjob *j = arg;

	(void)t;
	switch (ev) {
	case GITLAB_TRACE_ACK:
		j->acked = 1;
		if (res != NULL && res->outcome == GITLAB_ABORT) {
			/* GitLab refused the job: nothing runs, nothing sent. */
			j->cancel_wanted = 1;
			job_finish(j, GITLAB_FAILED_STATE, "job_canceled", 0);
			return;
		}
		if (res != NULL && res->cancel_requested) {
			j->cancel_wanted = 1;
			job_finish(j, GITLAB_FAILED_STATE, "job_canceled", 0);
		}
		break;
	case GITLAB_TRACE_CANCEL:
		log_info("job %" PRId64 " is being canceled", j->job->id);
		if (j->phase != J_FINISHING)
			j->cancel_wanted = 1;	/* also: no preparation retry */
		if (j->exec != NULL && j->phase == J_RUNNING)
			exec_cancel(j->exec);
		if (j->phase == J_ACQUIRING)
			job_finish(j, GITLAB_FAILED_STATE, "job_canceled", 0);
		break;
	case GITLAB_TRACE_ABORT:
		log_info("job %" PRId64 " was aborted by GitLab", j->job->id);
		if (j->exec != NULL && j->phase == J_RUNNING)
			exec_abort(j->exec, "job_canceled");
		else
			job_finish(j, GITLAB_FAILED_STATE, "job_canceled", 0);
		break;
	case GITLAB_TRACE_DONE:
		if (res == NULL || res->outcome != GITLAB_OK)
			log_warn("job %" PRId64 ": the final state was not "
			    "accepted: %s", j->job->id,
			    res != NULL && res->msg != NULL ? res->msg :
			    "aborted");
		j->trace = NULL;	/* freed by job_free below */
		gitlab_trace_free(t);
		job_free(j);
		break;
	}
}

static void
job_start(struct rrunner *rr, struct gitlab_job *job, scaler_key key)
{
	struct run *r = rr->run;
	struct rjob *j = xcalloc(1, sizeof(*j));
	struct gitlab_trace_opts to;
	char id[32];
	int rc;

	j->run = r;
	j->rr = rr;
	j->cref = cfgref_get(rr->cref == r->cref ? r->cref : rr->cref);
	j->rc = rr->rc;
	j->job = job;
	j->key = key;
	j->have_key = 1;
	j->phase = J_ACQUIRING;
	j->state_name = "acquiring";
	j->started_ns = mono_ns();
	j->concurrent_id = take_concurrent_id(rr);
	j->next = r->jobs;
	r->jobs = j;
	r->njobs++;
	rr->njobs++;
	r->st.jobs_total++;
	metrics_inc(r->rm.jobs_total, (const char *const[]){ rr->short_token,
	    rr->name, r->system_id });
	snprintf(id, sizeof(id), "%" PRId64, job->id);
	{
		struct log_field f[] = {
			{ "job", id }, { "runner", rr->short_token },
			{ "repo_url", "" }, { "project", "" },
		};
		char proj[32];

		snprintf(proj, sizeof(proj), "%" PRId64,
		    job->job_info.project_id);
		f[2].value = job->job_info.project_full_path;
		f[3].value = proj;
		log_infof(f, 4, "Checking for jobs... received");
	}
	memset(&to, 0, sizeof(to));
	if (j->rc->output_limit > 0)
		to.output_limit = (size_t)j->rc->output_limit * 1024;
	if (j->rc->job_status_final_update_retry_limit > 0)
		to.final_retry_limit =
		    (int)j->rc->job_status_final_update_retry_limit;
	j->trace = gitlab_trace_new(rr->gr, job->id, job->token, &to,
	    trace_event, j);
	if (job->unsupported != NULL) {
		job_fail_early(j, "runner_system_failure", job->unsupported);
		return;
	}
	rc = fleet_acquire(rr->fleet, key, acquired, j);
	if (rc != 0) {
		j->have_key = 0;
		job_fail_early(j, "runner_system_failure",
		    "the reserved capacity was lost");
	}
}

/* --------------------------------------------------------------- feeding */

static int
runner_may_ask(struct rrunner *rr)
{
	struct run *r = rr->run;
	const struct config_runner *rc = rr->rc;
	int64_t rq = rc->request_concurrency > 0 ? rc->request_concurrency : 1;

	if (r->phase != RUN_RUNNING || rr->draining || rr->gr == NULL)
		return 0;
	if (rr->rest_until > mono_ns())
		return 0;
	if (rr->nreqs >= rq)
		return 0;
	if (r->njobs + r->nreqs >= r->cref->cfg->concurrent)
		return 0;
	if (rc->limit > 0 && rr->njobs + rr->nreqs >= rc->limit)
		return 0;
	return 1;
}

static void
req_remove(struct rrunner *rr, struct rreq *q)
{
	for (struct rreq **pp = &rr->reqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	rr->nreqs--;
	rr->run->nreqs--;
	free(q);
}

static void
requested(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct rreq *q = arg;
	struct rrunner *rr = q->rr;
	struct run *r = rr->run;
	scaler_key key = q->key;
	struct gitlab_job *job = res->job;
	int64_t next = check_interval_ns(r);

	char last_update[128];
	int64_t sent_ns;

	(void)req;
	res->job = NULL;
	snprintf(last_update, sizeof(last_update), "%s", q->last_update);
	sent_ns = q->sent_ns;
	req_remove(rr, q);
	if (res->healthy) {
		rr->unhealthy = 0;
	} else if (++rr->unhealthy >= rr->rc->unhealthy_requests_limit &&
	    rr->rc->unhealthy_requests_limit > 0) {
		log_errorf((struct log_field[]){ { "runner",
		    rr->short_token } }, 1,
		    "Runner is not healthy and will be disabled for %" PRId64
		    "s", rr->rc->unhealthy_interval_ns / NS);
		rr->rest_until = mono_ns() + rr->rc->unhealthy_interval_ns;
		rr->unhealthy = 0;
		next = rr->rc->unhealthy_interval_ns;
	}
	switch (res->outcome) {
	case GITLAB_OK:
		if (job != NULL && r->phase == RUN_RUNNING) {
			job_start(rr, job, key);
			if (!rr->rc->strict_check_interval)
				next = 0;
			break;
		}
		gitlab_job_free(job);
		fleet_unreserve(rr->fleet, key);
		break;
	case GITLAB_NO_JOB:
		log_debugf((struct log_field[]){ { "runner",
		    rr->short_token } }, 1, "Checking for jobs... nothing");
		fleet_unreserve(rr->fleet, key);
		/* A long poll (Workhorse held the request) already waited:
		 * it ends early when the queue changes, so a job is likely
		 * there; and X-GitLab-Last-Update moving says the same.
		 * Ask again now rather than after check_interval. */
		if (!rr->rc->strict_check_interval &&
		    (strcmp(last_update, gitlab_runner_last_update(rr->gr)) !=
		    0 || mono_ns() - sent_ns >= LONG_POLL_HELD_NS))
			next = 0;
		break;
	case GITLAB_FORBIDDEN:
		log_errorf((struct log_field[]){ { "runner",
		    rr->short_token }, { "status", "403 Forbidden" } }, 2,
		    "Checking for jobs... forbidden");
		fleet_unreserve(rr->fleet, key);
		break;
	default:
		log_warnf((struct log_field[]){ { "runner", rr->short_token },
		    { "error", res->msg != NULL ? res->msg : "" } }, 2,
		    "Checking for jobs... failed");
		fleet_unreserve(rr->fleet, key);
		break;
	}
	schedule_feed(rr, next);
	check_progress(r);
}

static void
feed(struct rrunner *rr)
{
	while (runner_may_ask(rr)) {
		struct rreq *q;
		scaler_key key;
		int rc = fleet_reserve(rr->fleet, &key);

		if (rc != 0) {
			log_debugf((struct log_field[]){ { "runner",
			    rr->short_token } }, 1,
			    "no free capacity: not asking for a job (%s)",
			    err_str(rc));
			return;
		}
		q = xcalloc(1, sizeof(*q));
		q->rr = rr;
		q->key = key;
		q->next = rr->reqs;
		rr->reqs = q;
		rr->nreqs++;
		rr->run->nreqs++;
		snprintf(q->last_update, sizeof(q->last_update), "%s",
		    gitlab_runner_last_update(rr->gr));
		q->sent_ns = mono_ns();
		q->req = gitlab_request_job(rr->gr, requested, q);
	}
}

static void
feed_fire(evutil_socket_t fd, short what, void *arg)
{
	struct rrunner *rr = arg;

	(void)fd;
	(void)what;
	feed(rr);
	/* Capacity may appear later (an instance becoming ready): look
	 * again every check_interval anyway. */
	if (rr->run->phase == RUN_RUNNING && !rr->draining &&
	    !evtimer_pending(rr->feed_timer, NULL))
		schedule_feed(rr, check_interval_ns(rr->run));
}

static void
schedule_feed(struct rrunner *rr, int64_t delay_ns)
{
	struct timeval tv;
	struct timeval left;

	if (rr->feed_timer == NULL)
		return;
	if (evtimer_pending(rr->feed_timer, &left)) {
		struct timeval now;
		int64_t at;

		event_base_gettimeofday_cached(rr->run->base, &now);
		at = ((int64_t)left.tv_sec - now.tv_sec) * NS +
		    ((int64_t)left.tv_usec - now.tv_usec) * 1000;
		if (at <= delay_ns)
			return;	/* sooner already */
	}
	tv.tv_sec = delay_ns / NS;
	tv.tv_usec = (delay_ns % NS) / 1000;
	evtimer_add(rr->feed_timer, &tv);
}

static void
cancel_requests(struct rrunner *rr)
{
	while (rr->reqs != NULL) {
		struct rreq *q = rr->reqs;

		gitlab_req_cancel(q->req);
		fleet_unreserve(rr->fleet, q->key);
		req_remove(rr, q);
	}
}

/* --------------------------------------------------------------- runners */

/* An instance lost, or being removed: its pooled connection goes. */
static void
fleet_gone(void *arg, struct fleet *f, const char *instance)
{
	struct rrunner *rr = arg;

	(void)f;
	instconn_drop(rr->pool, instance);
}

static void
fleet_failed(void *arg, struct fleet *f, const char *reason)
{
	struct rrunner *rr = arg;

	(void)f;
	log_errorf((struct log_field[]){ { "runner", rr->short_token } }, 1,
	    "the fleeting plugin failed for good: %s", reason);
}

static struct rrunner *
runner_new(struct run *r, const struct config_runner *rc, char *err,
    size_t errlen)
{
	struct rrunner *rr = xcalloc(1, sizeof(*rr));
	struct gitlab_runner_conf gc;
	struct fleet_hooks h;
	char *msg = NULL;

	rr->run = r;
	rr->cref = cfgref_get(r->cref);
	rr->rc = rc;
	rr->ids = xcalloc(MAX_CONCURRENT_IDS, 1);
	log_short_token(rc->token, rr->short_token);
	snprintf(rr->name, sizeof(rr->name), "%s",
	    rc->name != NULL && *rc->name != '\0' ? rc->name : rr->short_token);
	gitlab_runner_conf_from_config(&gc, rc, r->system_id);
	gc.certs_dir = r->certs_dir;
	if (gitlab_runner_new(r->gl, &gc, &rr->gr, &msg) != 0) {
		snprintf(err, errlen, "runner %s: %s", rr->name,
		    msg != NULL ? msg : "unusable");
		free(msg);
		goto fail;
	}
	memset(&h, 0, sizeof(h));
	h.arg = rr;
	h.on_lost = fleet_gone;
	h.on_removing = fleet_gone;
	h.on_plugin_failed = fleet_failed;
	h.config_path = r->config_path;
	rr->fleet = fleet_new(r->base, rc, &h, err, errlen);
	if (rr->fleet == NULL)
		goto fail;
	rr->pool = instconn_pool_new(r->base, rr->fleet, rc);
	rr->feed_timer = evtimer_new(r->base, feed_fire, rr);
	return rr;
fail:
	gitlab_runner_free(rr->gr);
	cfgref_put(rr->cref);
	free(rr->ids);
	free(rr);
	return NULL;
}

static void
runner_free(struct rrunner *rr)
{
	cancel_requests(rr);
	if (rr->feed_timer != NULL)
		event_free(rr->feed_timer);
	instconn_pool_free(rr->pool);
	fleet_free(rr->fleet);
	gitlab_runner_free(rr->gr);
	cfgref_put(rr->cref);
	free(rr->ids);
	free(rr);
}

static int
runner_start(struct rrunner *rr, char *err, size_t errlen)
{
	if (fleet_start(rr->fleet, err, errlen) != 0)
		return -1;
	log_infof((struct log_field[]){ { "runner", rr->short_token },
	    { "name", rr->name } }, 2, "Runner started");
	schedule_feed(rr, 0);
	return 0;
}

static void
fleet_stopped(void *arg, struct fleet *f)
{
	struct rrunner *rr = arg;

	(void)f;
	rr->stopped = 1;
	log_infof((struct log_field[]){ { "runner", rr->short_token } }, 1,
	    "Runner stopped");
	check_progress(rr->run);
}

/* Drained runners whose jobs are over: stop their fleets, free the
 * stopped ones; then see whether the whole run is over. */
static void
progress(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	if ((r->phase == RUN_GRACEFUL || r->phase == RUN_FORCEFUL) &&
	    r->njobs == 0) {
		r->phase = RUN_STOPPING;
		for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next)
			rr->draining = 1;
		if (r->stop_timer != NULL)
			evtimer_del(r->stop_timer);
	}
	for (struct rrunner **pp = &r->runners; *pp != NULL;) {
		struct rrunner *rr = *pp;

		if (rr->draining && rr->njobs == 0 && !rr->stopping) {
			rr->stopping = 1;
			cancel_requests(rr);
			evtimer_del(rr->feed_timer);
			if (fleet_stop(rr->fleet, rr->rc->autoscaler
			    .delete_instances_on_shutdown, fleet_stopped,
			    rr) != 0)
				rr->stopped = 1;
		}
		if (rr->stopped && rr->njobs == 0) {
			*pp = rr->next;
			runner_free(rr);
			continue;
		}
		pp = &rr->next;
	}
	if (r->phase == RUN_STOPPING && r->runners == NULL) {
		r->phase = RUN_DONE;
		log_info("All workers stopped.");
		if (r->done != NULL)
			r->done(r->done_arg, r->exit_code);
	}
}

static void
check_progress(struct run *r)
{
	struct timeval tv = { 0, 0 };

	if (r->done_ev != NULL)
		evtimer_add(r->done_ev, &tv);
}

/* ---------------------------------------------------------------- run */

struct run *
run_new(struct event_base *base, struct config *cfg,
    const struct run_opts *opts, char *err, size_t errlen)
{
	struct run *r = xcalloc(1, sizeof(*r));
	struct gitlab_opts go;
	struct rrunner **tail = &r->runners;

	r->base = base;
	r->cref = cfgref_new(cfg);
	r->config_path = xstrdup(opts->config_path != NULL ?
	    opts->config_path : cfg->path);
	r->certs_dir = gitlab_certs_dir(r->config_path);
	if (opts->helper_image_tar != NULL)
		r->helper_tar = xstrdup(opts->helper_image_tar);
	else if (run_default_helper_tar() != NULL)
		r->helper_tar = xstrdup(run_default_helper_tar());
	r->done = opts->done;
	r->done_arg = opts->done_arg;
	if (gethostname(r->hostname, sizeof(r->hostname)) != 0)
		snprintf(r->hostname, sizeof(r->hostname), "flotilla");
	r->hostname[sizeof(r->hostname) - 1] = '\0';
	if (systemid_load(r->config_path, r->system_id,
	    sizeof(r->system_id)) != 0)
		log_warn("cannot store the system ID beside %s: using an "
		    "ephemeral one", r->config_path);
	memset(&go, 0, sizeof(go));
	go.connection_max_age_ns = cfg->connection_max_age_ns;
	r->gl = gitlab_new(base, &go);
	if (r->gl == NULL) {
		snprintf(err, errlen, "cannot initialise libcurl");
		goto fail;
	}
	r->done_ev = evtimer_new(base, progress, r);
	{
		struct metrics_version v = { "flotilla", FL_VERSION,
		    FL_GIT_REV, "main", "cc " __VERSION__, "", "linux",
#if defined(__x86_64__)
		    "amd64"
#elif defined(__aarch64__)
		    "arm64"
#else
		    "unknown"
#endif
		};

		r->metrics = metrics_new();
		metrics_runner_init(&r->rm, r->metrics, &v);
		metrics_add_collector(r->metrics, metrics_process_collect,
		    NULL);
		metrics_add_collector(r->metrics, run_collect, r);
		gitlab_set_observer(r->gl, api_observed, r);
	}
	slots_update(r, cfg->concurrent);
	if (cfg->nrunners == 0) {
		snprintf(err, errlen, "no [[runners]] in %s", r->config_path);
		goto fail;
	}
	for (size_t i = 0; i < cfg->nrunners; i++) {
		struct rrunner *rr = runner_new(r, &cfg->runners[i], err,
		    errlen);

		if (rr == NULL)
			goto fail;
		*tail = rr;
		tail = &rr->next;
	}
	r->phase = RUN_RUNNING;
	return r;
fail:
	run_free(r);
	return NULL;
}

int
run_start(struct run *r, char *err, size_t errlen)
{
	log_infof((struct log_field[]){ { "version", FL_VERSION },
	    { "system_id", r->system_id } }, 2,
	    "Starting multi-runner from %s...", r->config_path);
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next)
		if (runner_start(rr, err, errlen) != 0)
			return -1;
	return 0;
}

void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	while (r->jobs != NULL) {
		struct rjob *j = r->jobs;

		r->jobs = j->next;
		instconn_wait_cancel(j->icw);
		exec_free(j->exec);
		if (j->retry_ev != NULL)
			event_free(j->retry_ev);
		instconn_put(j->ic);
		gitlab_trace_free(j->trace);
		gitlab_job_free(j->job);
		cfgref_put(j->cref);
		free(j->final_reason);
		free(j->instance);
		free(j);
	}
	while (r->runners != NULL) {
		struct rrunner *rr = r->runners;

		r->runners = rr->next;
		runner_free(rr);
	}
	gitlab_free(r->gl);
	metrics_free(r->metrics);
	if (r->stop_timer != NULL)
		event_free(r->stop_timer);
	if (r->done_ev != NULL)
		event_free(r->done_ev);
	cfgref_put(r->cref);
	free(r->config_path);
	free(r->certs_dir);
	free(r->helper_tar);
	free(r);
}

void
run_graceful(struct run *r)
{
	if (r->phase != RUN_RUNNING)
		return;
	log_warnf((struct log_field[]){ { "StopSignal", "quit" } }, 1,
	    "Starting graceful shutdown: running jobs finish, no new ones");
	r->phase = RUN_GRACEFUL;
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next) {
		cancel_requests(rr);
		evtimer_del(rr->feed_timer);
	}
	check_progress(r);
}

static void
stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	log_error("shutdown_timeout passed with %d job(s) still finishing: "
	    "exiting", r->njobs);
	r->exit_code = 1;
	r->phase = RUN_DONE;
	if (r->done != NULL)
		r->done(r->done_arg, 1);
}

void
run_forceful(struct run *r)
{
	struct timeval tv;
	int64_t t;

	if (r->phase == RUN_FORCEFUL || r->phase == RUN_STOPPING) {
		/* A second signal: exit now. */
		log_warn("forced exit");
		r->exit_code = 1;
		r->phase = RUN_DONE;
		if (r->done != NULL)
			r->done(r->done_arg, 1);
		return;
	}
	if (r->phase == RUN_DONE)
		return;
	log_warnf((struct log_field[]){ { "StopSignal", "term" } }, 1,
	    "Starting forceful shutdown: aborting running jobs");
	r->phase = RUN_FORCEFUL;
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next) {
		cancel_requests(rr);
		evtimer_del(rr->feed_timer);
	}
	for (struct rjob *j = r->jobs; j != NULL; j = j->next) {
		j->interrupted = 1;
		if (j->phase == J_RUNNING && j->exec != NULL)
			exec_abort(j->exec, "runner_interrupted");
		else if (j->phase == J_ACQUIRING || j->phase == J_CONNECTING)
			job_fail_early(j, "runner_interrupted",
			    "the runner is shutting down");
	}
	t = r->cref->cfg->shutdown_timeout > 0 ?
	    r->cref->cfg->shutdown_timeout : 30;
	tv.tv_sec = t;
	tv.tv_usec = 0;
	r->stop_timer = evtimer_new(r->base, stop_timeout, r);
	evtimer_add(r->stop_timer, &tv);
	check_progress(r);
}

static const struct config_runner *
find_runner(const struct config *cfg, const struct config_runner *old)
{
	for (size_t i = 0; i < cfg->nrunners; i++) {
		const struct config_runner *rc = &cfg->runners[i];

		if (strcmp(rc->token, old->token) == 0 &&
		    strcmp(rc->url, old->url) == 0)
			return rc;
	}
	return NULL;
}

int
run_reload(struct run *r)
{
	struct config *cfg;
	struct config_diags diags;
	struct cfgref *nref;
	char err[512];
	int rc;

	if (r->phase != RUN_RUNNING)
		return 0;
	log_info("Configuration reload requested (SIGHUP)");
	memset(&diags, 0, sizeof(diags));
	cfg = NULL;
	rc = config_load(r->config_path, &cfg, &diags);
	for (size_t i = 0; i < diags.n; i++) {
		if (diags.v[i].level == CONFIG_ERROR)
			log_error("%s", diags.v[i].msg);
		else
			log_warn("%s", diags.v[i].msg);
	}
	config_diags_release(&diags);
	if (rc != 0 || cfg == NULL) {
		log_errorf((struct log_field[]){ { "file", r->config_path } },
		    1, "Configuration reload failed; the running "
		    "configuration is kept");
		config_free(cfg);
		return -1;
	}
	nref = cfgref_new(cfg);
	/* Runners kept: new settings and policies.  Gone: drained. */
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next) {
		const struct config_runner *nrc;

		if (rr->draining)
			continue;
		nrc = find_runner(cfg, rr->rc);
		if (nrc == NULL) {
			log_infof((struct log_field[]){ { "runner",
			    rr->short_token } }, 1,
			    "Runner removed from the configuration: draining");
			rr->draining = 1;
			cancel_requests(rr);
			continue;
		}
		if (fleet_set_policies(rr->fleet, nrc->autoscaler.policy,
		    nrc->autoscaler.npolicy, err, sizeof(err)) != 0)
			log_errorf((struct log_field[]){ { "runner",
			    rr->short_token } }, 1,
			    "new autoscaler policies refused: %s", err);
		/* The fleet keeps pointing into the config it was made
		 * with (rr->cref); requests use the new settings. */
		rr->rc = nrc;
	}
	/* New runners. */
	for (size_t i = 0; i < cfg->nrunners; i++) {
		const struct config_runner *nrc = &cfg->runners[i];
		struct rrunner *rr, *nr;
		int found = 0;

		for (rr = r->runners; rr != NULL; rr = rr->next)
			if (!rr->draining && rr->rc == nrc)
				found = 1;
		if (found)
			continue;
		{
			struct cfgref *old = r->cref;

			r->cref = nref;
			nr = runner_new(r, nrc, err, sizeof(err));
			r->cref = old;
		}
		if (nr == NULL || runner_start(nr, err, sizeof(err)) != 0) {
			log_errorf(NULL, 0, "new runner not started: %s", err);
			if (nr != NULL)
				runner_free(nr);
			continue;
		}
		nr->next = r->runners;
		r->runners = nr;
	}
	cfgref_put(r->cref);
	r->cref = nref;
	slots_update(r, cfg->concurrent);
	if (cfg->log_level != NULL && *cfg->log_level != '\0') {
		enum log_level lv;

		if (log_level_parse(cfg->log_level, &lv) == 0)
			log_set_level(lv);
	}
	log_info("Configuration reloaded");
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next)
		if (!rr->draining)
			schedule_feed(rr, 0);
	check_progress(r);
	return 0;
}

enum run_phase
run_phase(const struct run *r)
{
	return r->phase;
}

const char *
run_phase_name(enum run_phase p)
{
	switch (p) {
	case RUN_RUNNING:
		return "running";
	case RUN_GRACEFUL:
		return "graceful shutdown";
	case RUN_FORCEFUL:
		return "forceful shutdown";
	case RUN_STOPPING:
		return "stopping";
	case RUN_DONE:
		return "stopped";
	}
	return "?";
}

const char *
run_system_id(const struct run *r)
{
	return r->system_id;
}

void
run_get_stats(const struct run *r, struct run_stats *st)
{
	*st = r->st;
	st->jobs_running = r->njobs;
	st->requests_in_flight = r->nreqs;
	st->concurrent = r->cref->cfg->concurrent;
}

void
run_jobs_list(const struct run *r, struct sbuf *out)
{
	int64_t now = mono_ns();

	for (const struct rjob *j = r->jobs; j != NULL; j = j->next) {
		char *url = xasprintf("%s/%s/-/jobs/%" PRId64,
		    j->rc->url, j->job->job_info.project_full_path, j->job->id);

		httpd_job_line(out, url, j->state_name,
		    j->job->job_info.stage, j->state_name,
		    now - j->started_ns);
		free(url);
	}
}

/* The worker slots follow concurrent (GitLab's updateWorkers). */
static void
slots_update(struct run *r, int64_t concurrent)
{
	static const char *const started[] = { "started" };
	static const char *const stopped[] = { "stopped" };

	if (r->metrics == NULL)
		return;
	if (concurrent > r->slots)
		metrics_add(r->rm.worker_slot_operations_total, started,
		    (double)(concurrent - r->slots));
	else if (concurrent < r->slots)
		metrics_add(r->rm.worker_slot_operations_total, stopped,
		    (double)(r->slots - concurrent));
	r->slots = concurrent;
}

/* At each scrape: the gauges that mirror the run's state. */
static void
run_collect(struct metrics *scratch, void *arg)
{
	struct run *r = arg;
	struct metrics_fleet fl[64];
	size_t nfl = 0;

	metrics_set(r->rm.concurrent, NULL, (double)r->cref->cfg->concurrent);
	metrics_set(r->rm.worker_slots_number, NULL, (double)r->slots);
	metrics_reset(r->rm.jobs);
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next) {
		struct metrics_runner_id id = { rr->short_token, rr->name,
		    r->system_id };
		int64_t rq = rr->rc->request_concurrency > 0 ?
		    rr->rc->request_concurrency : 1;

		metrics_runner_add(&r->rm, &id, rr->rc->limit, rq);
		metrics_set(r->rm.request_concurrency, (const char *const[]){
		    rr->short_token, r->system_id }, (double)rr->nreqs);
		if (nfl < sizeof(fl) / sizeof(fl[0]) && rr->fleet != NULL) {
			fl[nfl].m = scaler_metrics(fleet_scaler(rr->fleet));
			fl[nfl].id = id;
			nfl++;
		}
	}
	for (struct rjob *j = r->jobs; j != NULL; j = j->next)
		metrics_inc(r->rm.jobs, (const char *const[]){
		    j->rr->short_token, j->rr->name, r->system_id,
		    j->state_name, j->job->job_info.stage, j->state_name });
	metrics_runner_set_state(&r->rm, r->phase == RUN_RUNNING ? "running" :
	    r->phase == RUN_GRACEFUL ? "graceful-shutdown" :
	    "forceful-shutdown");
	metrics_fleet_collect(scratch, fl, nfl);
}

/* The GitLab client's observer: every attempt, as GitLab Runner's API
 * request metrics count them. */
static void
api_observed(const struct gitlab_attempt *a, void *arg)
{
	struct run *r = arg;
	const char *ep = "other";
	char status[16];
	char method[16];
	size_t i;

	if (strncmp(a->path, "jobs/request", 12) == 0)
		ep = "request_job";
	else if (strstr(a->path, "/trace") != NULL)
		ep = "patch_trace";
	else if (strncmp(a->path, "jobs/", 5) == 0 &&
	    strcmp(a->method, "PUT") == 0)
		ep = "update_job";
	else if (strncmp(a->path, "runners/verify", 14) == 0)
		ep = "verify";
	else if (strncmp(a->path, "runners/managers", 16) == 0)
		ep = "unregister_manager";
	snprintf(status, sizeof(status), "%ld", a->status);
	for (i = 0; a->method[i] != '\0' && i + 1 < sizeof(method); i++)
		method[i] = (char)(a->method[i] | 0x20);
	method[i] = '\0';
	for (struct rrunner *rr = r->runners; rr != NULL; rr = rr->next) {
		if (strcmp(a->runner, rr->name) != 0 &&
		    strcmp(a->runner, rr->short_token) != 0)
			continue;
		metrics_inc(r->rm.api_request_statuses_total,
		    (const char *const[]){ rr->short_token, r->system_id, ep,
		    status, method });
		metrics_observe(r->rm.api_request_duration_seconds,
		    (const char *const[]){ rr->short_token, r->system_id, ep,
		    metrics_status_class((int)a->status), method },
		    (double)a->elapsed_ms / 1e3);
		break;
	}
}

struct metrics *
run_registry(struct run *r)
{
	return r->metrics;
}
