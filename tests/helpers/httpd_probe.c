/*
 * httpd_probe: serves manager/httpd.c with a registry of sample data for
 * tests/integration/httpd.sh.  It prints "listening HOST:PORT" on stdout
 * once bound, then runs the event loop until SIGTERM or SIGINT (exit 0,
 * everything freed, so ASan sees leaks).  On a bind or address error it
 * prints "error: <reason>" on stderr and exits 1; usage errors exit 2.
 *
 *   httpd_probe LISTEN_ADDRESS
 *
 * Sample data: GitLab Runner's families for two runners (one with a name
 * full of characters to escape), two fleets' fleeting_* numbers through
 * a collector, the process collector, a collector counting the scrapes
 * (probe_scrapes_total, to show collectors run at scrape time), and two
 * running jobs on /debug/jobs/list.  SIGUSR1 steps the process state:
 * starting -> running -> graceful-shutdown -> forceful-shutdown.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "httpd.h"
#include "metrics.h"
#include "scaler.h"
#include "xmalloc.h"

#define L(...)	((const char *const[]){ __VA_ARGS__ })

struct probe {
	struct event_base *base;
	struct httpd *httpd;
	struct metrics *m;
	struct metrics_runner rm;
	struct scaler_metrics sm[2];
	struct metrics_fleet fleets[2];
	unsigned scrapes;
};

/* Odd characters on purpose: quote, backslash, newline, UTF-8. */
#define WEIRD_NAME	"we\"ird\\name\nline2 caf\xc3\xa9"

static double bounds_a[] = { 1, 5, 10, 30, 60 };
static uint64_t counts_a[] = { 0, 2, 3, 1, 0, 1 };
static uint64_t counts_r[] = { 1, 1, 0, 0, 0, 0 };
static double bounds_b[] = { 15 };
static uint64_t counts_b[] = { 4, 1 };

static void
collect_fleets(struct metrics *scratch, void *arg)
{
	struct probe *p = arg;

	metrics_fleet_collect(scratch, p->fleets, 2);
}

static void
collect_scrapes(struct metrics *scratch, void *arg)
{
	struct probe *p = arg;

	p->scrapes++;
	metrics_set(metrics_counter(scratch, "probe_scrapes_total",
	    "Scrapes served by the probe.", NULL, 0), NULL, p->scrapes);
}

static void
jobs_list(void *arg, struct sbuf *out)
{
	(void)arg;
	httpd_job_line(out, "https://gitlab.example.com/group/project/-/jobs/101",
	    "running", "step_script", "running_script", INT64_C(83500000000));
	httpd_job_line(out, "https://gitlab.example.com/group/project/-/jobs/102",
	    "running", "prepare_executor", "preparing", INT64_C(1500000000));
}

static void
sample_data(struct probe *p)
{
	struct metrics_version v = { "flotilla", "0.1.0", "abcdef12", "main",
	    "gcc", "2026-01-01T00:00:00+0000", "linux", "amd64" };
	struct metrics_runner_id a = { "t_aaaa1111", "alpha", "s_000000000001" };
	struct metrics_runner_id b = { "t_bbbb2222", WEIRD_NAME, "s_000000000002" };

	metrics_runner_init(&p->rm, p->m, &v);
	metrics_runner_add(&p->rm, &a, 10, 2);
	metrics_runner_add(&p->rm, &b, 0, 1);
	metrics_set(p->rm.concurrent, NULL, 8);
	metrics_set(p->rm.jobs, L(a.runner, a.runner_name, a.system_id,
	    "running", "step_script", "running_script"), 1);
	metrics_set(p->rm.jobs, L(a.runner, a.runner_name, a.system_id,
	    "running", "prepare_executor", "preparing"), 1);
	metrics_add(p->rm.jobs_total, L(a.runner, a.runner_name, a.system_id), 7);
	metrics_add(p->rm.jobs_total, L(b.runner, b.runner_name, b.system_id), 1);
	metrics_inc(p->rm.failed_jobs_total, L(a.runner, a.runner_name,
	    "script_failure", "traditional"));
	metrics_inc(p->rm.failed_jobs_total, L(b.runner, b.runner_name,
	    "runner_system_failure", "traditional"));
	for (int i = 0; i < 5; i++)
		metrics_observe(p->rm.job_duration_seconds, L(a.runner,
		    a.runner_name, a.system_id, "traditional"), 20.0 + 100 * i);
	metrics_add(p->rm.api_request_statuses_total, L(a.runner, a.system_id,
	    "request_job", "204", "post"), 40);
	metrics_add(p->rm.api_request_statuses_total, L(a.runner, a.system_id,
	    "request_job", "201", "post"), 7);
	metrics_add(p->rm.api_request_statuses_total, L(a.runner, a.system_id,
	    "patch_trace", "202", "patch"), 31);
	metrics_observe(p->rm.api_request_duration_seconds, L(a.runner,
	    a.system_id, "request_job", metrics_status_class(204), "post"), 0.3);
	metrics_inc(p->rm.request_concurrency_exceeded_total,
	    L(a.runner, a.system_id));
	metrics_inc(p->rm.errors_total, L("warning"));

	p->sm[0].instances[SCALER_P_RUNNING] = 2;
	p->sm[0].instances[SCALER_P_CREATING] = 1;
	p->sm[0].max_instances = 4;
	p->sm[0].tasks[SCALER_TASK_ACQUIRED] = 2;
	p->sm[0].tasks[SCALER_TASK_IDLE] = 4;
	p->sm[0].max_tasks_per_instance = 2;
	p->sm[0].max_use_count_per_instance = 3;
	p->sm[0].task_operations_total[SCALER_TOP_RESERVE] = 12;
	p->sm[0].scale_operations_up_total = 5;
	p->sm[0].scale_operations_down_total = 2;
	p->sm[0].removals_total[SCALER_REASON_MAX_USE_COUNT] = 2;
	p->sm[0].desired_instances = 3;
	p->sm[0].creation_time = (struct scaler_histogram){ bounds_a, 5,
	    counts_a, 123.5, 7 };
	p->sm[0].is_running_time = (struct scaler_histogram){ bounds_a, 5,
	    counts_a, 130, 7 };
	p->sm[0].deletion_time = (struct scaler_histogram){ bounds_a, 5,
	    counts_r, 3, 2 };
	p->sm[0].life_duration = (struct scaler_histogram){ bounds_b, 1,
	    counts_b, 60, 5 };
	p->sm[0].readiness_time = (struct scaler_histogram){ bounds_a, 5,
	    counts_r, 4.5, 2 };
	p->sm[1].max_instances = 1;
	p->sm[1].creation_time = (struct scaler_histogram){ bounds_b, 1,
	    counts_b, 50, 5 };
	p->fleets[0] = (struct metrics_fleet){ &p->sm[0], a };
	p->fleets[1] = (struct metrics_fleet){ &p->sm[1], b };

	metrics_add_collector(p->m, collect_fleets, p);
	metrics_add_collector(p->m, metrics_process_collect, NULL);
	metrics_add_collector(p->m, collect_scrapes, p);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct probe *p = arg;

	(void)sig;
	(void)what;
	event_base_loopexit(p->base, NULL);
}

static void
on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct probe *p = arg;
	enum httpd_state st = httpd_get_state(p->httpd);

	(void)sig;
	(void)what;
	if (st < HTTPD_FORCEFUL_SHUTDOWN)
		st++;
	httpd_set_state(p->httpd, st);
	metrics_runner_set_state(&p->rm, httpd_state_name(st));
	printf("state %s\n", httpd_state_name(st));
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct probe p;
	struct httpd_hooks hooks;
	struct event *ev_term, *ev_int, *ev_usr1;
	char err[256];

	if (argc != 2) {
		fprintf(stderr, "usage: httpd_probe LISTEN_ADDRESS\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&p, 0, sizeof(p));
	p.base = event_base_new();
	p.m = metrics_new();
	sample_data(&p);

	p.httpd = httpd_new(p.base, argv[1], err, sizeof(err));
	if (p.httpd == NULL) {
		fprintf(stderr, "error: %s\n", err);
		metrics_free(p.m);
		event_base_free(p.base);
		return 1;
	}
	hooks = (struct httpd_hooks){ .metrics = p.m, .jobs_list = jobs_list,
	    .arg = &p };
	httpd_set_hooks(p.httpd, &hooks);
	printf("listening %s\n", httpd_address(p.httpd));
	fflush(stdout);

	ev_term = evsignal_new(p.base, SIGTERM, on_stop, &p);
	ev_int = evsignal_new(p.base, SIGINT, on_stop, &p);
	ev_usr1 = evsignal_new(p.base, SIGUSR1, on_usr1, &p);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_usr1, NULL);
	event_base_dispatch(p.base);

	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	httpd_free(p.httpd);
	metrics_free(p.m);
	event_base_free(p.base);
	printf("stopped\n");
	return 0;
}
