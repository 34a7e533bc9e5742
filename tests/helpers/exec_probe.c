/*
 * exec_probe: runs GitLab jobs with the Docker executor (manager/
 * executor.c) for tests/integration/executor.sh, the way the manager
 * will: the real GitLab client requests the job from a (fake) GitLab, a
 * trace sender reports it, the executor runs it on a Docker engine and
 * its result finishes the trace.
 *
 *   exec_probe --config FILE [--socket PATH | --ssh ADDR --ssh-key FILE
 *       [--ssh-user U] [--ssh-socket PATH] [--dial-stdio]]
 *       [--jobs N] [--parallel P] [--wait S] [--interval MS]
 *       [--cancel-after S] [--abort-after S] [--helper-tar FILE]
 *       [--system-id ID]
 *
 * The runner is the config's first [[runners]] entry.  Jobs are requested
 * until N have run, at most P at a time (slot number = CI_CONCURRENT_ID);
 * a 204 is retried every 200 ms until --wait seconds have passed without
 * a job.  For each job one line:
 *   result job=ID state=success|failed reason=R exit=N trace=DONE-OUTCOME
 * then "summary jobs=N ok=N failed=N elapsed_ms=N".  Exit 0 when every
 * requested job ran to a final update, 1 otherwise.
 *
 * --cancel-after S calls exec_cancel S seconds after each job started
 * (besides GitLab's own Job-Status: canceling, which is honoured too);
 * --abort-after S calls exec_abort(runner_system_failure).
 */
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "connector.h"
#include "docker.h"
#include "err.h"
#include "executor.h"
#include "gitlab.h"
#include "log.h"
#include "tunnel.h"
#include "xmalloc.h"

struct slot {
	int no;
	int busy;
	struct gitlab_job *job;
	struct gitlab_trace *trace;
	struct exec *exec;
	struct event *timer;	/* cancel/abort after */
	struct exec_result res;
	char reason[64];
	int exec_done;
};

static struct {
	const char *config, *socket, *ssh, *ssh_key, *ssh_user, *ssh_socket;
	const char *helper_tar, *system_id;
	int jobs, parallel, wait_s, dial_stdio;
	double cancel_after, abort_after;
	int64_t interval_ms;
} o;

static struct event_base *base;
static struct config *cfg;
static const struct config_runner *rc;
static struct gitlab *gl;
static struct gitlab_runner *runner;
static struct docker *dk;
static struct conn *conn;
static struct tunnel *tun;
static struct slot *slots;
static struct event *retry_ev;
static int requested, finished, ok_jobs, failed_jobs, requesting;
static int64_t t0, last_job_ms;
static int rc_exit;
static char short_token[16], hostname[HOST_NAME_MAX + 1];
static char *runner_url;

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void request_more(void);

static void
maybe_exit(void)
{
	if (finished >= o.jobs || (requested == finished && !requesting &&
	    mono_ms() - last_job_ms > (int64_t)o.wait_s * 1000)) {
		printf("summary jobs=%d ok=%d failed=%d elapsed_ms=%lld\n",
		    finished, ok_jobs, failed_jobs,
		    (long long)(mono_ms() - t0));
		fflush(stdout);
		if (finished < o.jobs)
			rc_exit = 1;
		event_base_loopexit(base, NULL);
	}
}

static void
slot_release(struct slot *s)
{
	exec_free(s->exec);
	s->exec = NULL;
	if (s->trace != NULL)
		gitlab_trace_free(s->trace);
	s->trace = NULL;
	gitlab_job_free(s->job);
	s->job = NULL;
	evtimer_del(s->timer);
	s->busy = 0;
	s->exec_done = 0;
}

static void
exec_out(void *arg, const void *data, size_t len)
{
	struct slot *s = arg;

	if (s->trace != NULL)
		gitlab_trace_append(s->trace, data, len);
}

static void
exec_done(void *arg, const struct exec_result *r)
{
	struct slot *s = arg;
	const char *reason = NULL;

	s->res = *r;
	s->exec_done = 1;
	snprintf(s->reason, sizeof(s->reason), "%s",
	    r->failure_reason != NULL ? r->failure_reason : "");
	evtimer_del(s->timer);
	if (r->state != GITLAB_SUCCESS)
		reason = gitlab_failure_reason(s->job, r->failure_reason);
	printf("exec job=%lld state=%s reason=%s exit=%d at_ms=%lld\n",
	    (long long)s->job->id, r->state == GITLAB_SUCCESS ? "success" :
	    "failed", s->reason, r->exit_code, (long long)(mono_ms() - t0));
	fflush(stdout);
	gitlab_trace_finish(s->trace, r->state, reason, r->exit_code);
}

static void
slot_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;

	(void)fd;
	(void)what;
	if (s->exec == NULL || s->exec_done)
		return;
	if (o.cancel_after > 0) {
		printf("cancel job=%lld at_ms=%lld\n", (long long)s->job->id,
		    (long long)(mono_ms() - t0));
		exec_cancel(s->exec);
	} else {
		printf("abort job=%lld at_ms=%lld\n", (long long)s->job->id,
		    (long long)(mono_ms() - t0));
		exec_abort(s->exec, "runner_system_failure");
	}
	fflush(stdout);
}

static void
start_exec(struct slot *s)
{
	struct exec_params p;

	memset(&p, 0, sizeof(p));
	p.base = base;
	p.docker = dk;
	p.rc = rc;
	p.job = s->job;
	p.runner_url = runner_url;
	p.short_token = short_token;
	p.system_id = o.system_id;
	p.instance_id = o.ssh;
	p.hostname = hostname;
	p.helper_image_tar = o.helper_tar;
	p.concurrent_id = s->no;
	s->exec = exec_start(&p, exec_out, exec_done, s);
	if (o.cancel_after > 0 || o.abort_after > 0) {
		double a = o.cancel_after > 0 ? o.cancel_after : o.abort_after;
		struct timeval tv;

		tv.tv_sec = (time_t)a;
		tv.tv_usec = (suseconds_t)((a - (double)tv.tv_sec) * 1e6);
		evtimer_add(s->timer, &tv);
	}
}

static void
trace_cb(struct gitlab_trace *t, enum gitlab_trace_event ev,
    const struct gitlab_result *res, void *arg)
{
	struct slot *s = arg;

	(void)t;
	switch (ev) {
	case GITLAB_TRACE_ACK:
		if (res->outcome == GITLAB_ABORT) {
			gitlab_trace_finish(s->trace, GITLAB_FAILED_STATE,
			    "runner_system_failure", 0);
		} else if (res->cancel_requested) {
			gitlab_trace_finish(s->trace, GITLAB_FAILED_STATE,
			    "job_canceled", 0);
		} else {
			start_exec(s);
		}
		break;
	case GITLAB_TRACE_CANCEL:
		printf("gitlab-cancel job=%lld at_ms=%lld\n",
		    (long long)s->job->id, (long long)(mono_ms() - t0));
		fflush(stdout);
		exec_cancel(s->exec);
		break;
	case GITLAB_TRACE_ABORT:
		printf("gitlab-abort job=%lld\n", (long long)s->job->id);
		fflush(stdout);
		exec_abort(s->exec, "runner_system_failure");
		break;
	case GITLAB_TRACE_DONE:
		printf("result job=%lld state=%s reason=%s exit=%d trace=%s "
		    "size=%llu at_ms=%lld\n", (long long)s->job->id,
		    s->exec_done && s->res.state == GITLAB_SUCCESS ? "success" :
		    "failed", s->reason, s->res.exit_code,
		    res == NULL ? "abort" : res->outcome == GITLAB_OK ? "ok" :
		    "failed", (unsigned long long)gitlab_trace_size(t),
		    (long long)(mono_ms() - t0));
		fflush(stdout);
		if (s->exec_done && s->res.state == GITLAB_SUCCESS)
			ok_jobs++;
		else
			failed_jobs++;
		/* The trace is freed here: the slot forgets it first. */
		gitlab_trace_free(t);
		s->trace = NULL;
		slot_release(s);
		finished++;
		last_job_ms = mono_ms();
		request_more();
		maybe_exit();
		break;
	}
}

static struct slot *
free_slot(void)
{
	int i;

	for (i = 0; i < o.parallel; i++)
		if (!slots[i].busy)
			return &slots[i];
	return NULL;
}

static void
request_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct slot *s;
	struct timeval tv = { 0, 200000 };

	(void)req;
	(void)arg;
	requesting = 0;
	if (res->job == NULL) {
		if (res->outcome != GITLAB_NO_JOB)
			printf("request outcome=%d status=%ld msg=%s\n",
			    (int)res->outcome, res->status, res->msg);
		if (mono_ms() - last_job_ms > (int64_t)o.wait_s * 1000) {
			maybe_exit();
			return;
		}
		evtimer_add(retry_ev, &tv);
		return;
	}
	s = free_slot();
	s->busy = 1;
	s->job = res->job;
	res->job = NULL;
	requested++;
	last_job_ms = mono_ms();
	printf("job id=%lld slot=%d at_ms=%lld\n", (long long)s->job->id,
	    s->no, (long long)(mono_ms() - t0));
	fflush(stdout);
	{
		struct gitlab_trace_opts to;

		memset(&to, 0, sizeof(to));
		to.update_interval_ms = o.interval_ms;
		s->trace = gitlab_trace_new(runner, s->job->id, s->job->token,
		    &to, trace_cb, s);
	}
	request_more();
}

static void
request_more(void)
{
	if (requesting || requested >= o.jobs || free_slot() == NULL)
		return;
	requesting = 1;
	gitlab_request_job(runner, request_cb, NULL);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	request_more();
}

static void
conn_cb(void *arg, enum conn_state state, int err, const char *m)
{
	(void)arg;
	printf("ssh state=%d err=%d msg=%s\n", (int)state, err,
	    m != NULL ? m : "");
	fflush(stdout);
	if (state == CONN_UP && requested == 0 && !requesting) {
		last_job_ms = mono_ms();
		request_more();
	} else if (state == CONN_DOWN) {
		rc_exit = 1;
		event_base_loopexit(base, NULL);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: exec_probe --config FILE [--socket PATH | "
	    "--ssh ADDR --ssh-key FILE [--ssh-user U] [--ssh-socket PATH] "
	    "[--dial-stdio]] [--jobs N] [--parallel P] [--wait S] "
	    "[--interval MS] [--cancel-after S] [--abort-after S] "
	    "[--helper-tar FILE] [--system-id ID]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", 1, NULL, 'c' }, { "socket", 1, NULL, 's' },
		{ "ssh", 1, NULL, 'S' }, { "ssh-key", 1, NULL, 'k' },
		{ "ssh-user", 1, NULL, 'u' }, { "ssh-socket", 1, NULL, 'P' },
		{ "dial-stdio", 0, NULL, 'D' }, { "jobs", 1, NULL, 'n' },
		{ "parallel", 1, NULL, 'p' }, { "wait", 1, NULL, 'w' },
		{ "interval", 1, NULL, 'i' }, { "cancel-after", 1, NULL, 'C' },
		{ "abort-after", 1, NULL, 'A' }, { "helper-tar", 1, NULL, 'H' },
		{ "system-id", 1, NULL, 'y' },
		{ NULL, 0, NULL, 0 }
	};
	struct config_diags diags;
	struct gitlab_runner_conf conf;
	char *err = NULL;
	int c, i;
	size_t k;

	o.jobs = 1;
	o.parallel = 1;
	o.wait_s = 20;
	o.ssh_user = "root";
	o.system_id = "s_0123456789ab";
	o.interval_ms = 500;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 's': o.socket = optarg; break;
		case 'S': o.ssh = optarg; break;
		case 'k': o.ssh_key = optarg; break;
		case 'u': o.ssh_user = optarg; break;
		case 'P': o.ssh_socket = optarg; break;
		case 'D': o.dial_stdio = 1; break;
		case 'n': o.jobs = atoi(optarg); break;
		case 'p': o.parallel = atoi(optarg); break;
		case 'w': o.wait_s = atoi(optarg); break;
		case 'i': o.interval_ms = atoll(optarg); break;
		case 'C': o.cancel_after = atof(optarg); break;
		case 'A': o.abort_after = atof(optarg); break;
		case 'H': o.helper_tar = optarg; break;
		case 'y': o.system_id = optarg; break;
		default: usage();
		}
	}
	if (o.config == NULL || o.jobs < 1 || o.parallel < 1 ||
	    (o.socket == NULL && o.ssh == NULL) ||
	    (o.ssh != NULL && o.ssh_key == NULL))
		usage();
	if (o.parallel > o.jobs)
		o.parallel = o.jobs;

	memset(&diags, 0, sizeof(diags));
	if (config_load(o.config, &cfg, &diags) < 0 || cfg->nrunners < 1) {
		for (k = 0; k < diags.n; k++)
			fprintf(stderr, "%s\n", diags.v[k].msg);
		fprintf(stderr, "exec_probe: bad config %s\n", o.config);
		config_diags_release(&diags);
		return 1;
	}
	config_diags_release(&diags);
	rc = &cfg->runners[0];
	exec_short_token(rc->token, short_token, sizeof(short_token));
	if (gethostname(hostname, sizeof(hostname)) < 0)
		snprintf(hostname, sizeof(hostname), "localhost");
	runner_url = gitlab_expand_env(rc->url, NULL, NULL);

	log_set_level(LOG_INFO);
	base = event_base_new();
	gl = gitlab_new(base, NULL);
	if (base == NULL || gl == NULL) {
		fprintf(stderr, "exec_probe: cannot start\n");
		return 1;
	}
	gitlab_runner_conf_from_config(&conf, rc, o.system_id);
	if (gitlab_runner_new(gl, &conf, &runner, &err) < 0) {
		fprintf(stderr, "exec_probe: runner: %s\n", err);
		free(err);
		return 1;
	}
	slots = xcalloc((size_t)o.parallel, sizeof(*slots));
	for (i = 0; i < o.parallel; i++) {
		slots[i].no = i;
		slots[i].timer = evtimer_new(base, slot_timer_cb, &slots[i]);
	}
	retry_ev = evtimer_new(base, retry_cb, NULL);
	t0 = last_job_ms = mono_ms();

	if (o.ssh != NULL) {
		struct conn_params cp;
		char *key = NULL;
		size_t keylen = 0;
		int cerr = 0;

		if (conn_read_key_file(o.ssh_key, &key, &keylen) < 0) {
			fprintf(stderr, "exec_probe: cannot read %s\n",
			    o.ssh_key);
			return 1;
		}
		memset(&cp, 0, sizeof(cp));
		cp.instance_id = o.ssh;
		cp.internal_addr = o.ssh;
		cp.cred.username = o.ssh_user;
		cp.cred.key = key;
		cp.cred.key_len = keylen;
		conn = conn_new(base, &cp, conn_cb, NULL, &cerr);
		freezero(key, keylen);
		if (conn == NULL) {
			fprintf(stderr, "exec_probe: conn_new: %s\n",
			    err_str(cerr));
			return 1;
		}
		tun = tunnel_new(conn, o.ssh_socket, o.dial_stdio);
		dk = tunnel_docker_new(base, tun);
	} else {
		dk = docker_new(base, docker_dial_unix, (void *)o.socket);
		request_more();
	}
	event_base_dispatch(base);

	for (i = 0; i < o.parallel; i++) {
		slot_release(&slots[i]);
		event_free(slots[i].timer);
	}
	free(slots);
	event_free(retry_ev);
	docker_free(dk);
	tunnel_free(tun);
	if (conn != NULL) {
		/* Let the channels the tunnel closed finish closing on the
		 * loop before the SSH connection goes (the connector frees
		 * a channel's end when it has closed). */
		struct timeval tv = { 0, 300000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	conn_free(conn);
	gitlab_free(gl);
	free(runner_url);
	config_free(cfg);
	event_base_free(base);
	log_release();
	return rc_exit;
}
