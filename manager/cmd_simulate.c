/*
 * flotilla simulate: replay a job trace against a runner's autoscaler
 * settings with the real scaler core and a simulated provider, and print
 * jobs, waits, instance-hours, peak and created instances for each policy
 * period and in total (see simulate.c for the model).  Nothing touches the
 * network or a cloud.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "duration.h"
#include "err.h"
#include "simulate.h"
#include "xmalloc.h"

/* 2026-01-05T00:00:00Z, a Monday: the default start of the trace. */
#define DEFAULT_START	INT64_C(1767571200)
#define DEFAULT_BOOT	(45 * DURATION_SEC)

/* "45s", "1m30s" or plain seconds "45", "0.5". */
static int
parse_delay(const char *s, int64_t *ns)
{
	char *end;
	double d;

	if (duration_parse(s, ns) == 0)
		return *ns >= 0 ? 0 : -1;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || !(d >= 0 && d <= 9.2e9))
		return -1;
	*ns = (int64_t)(d * 1e9 + 0.5);
	return 0;
}

/* RFC 3339 ("2026-03-29T00:30:00Z", "...+02:00") or Unix seconds. */
static int
parse_start(const char *s, int64_t *ns)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh, om;
	const char *p;
	char *end;
	long long secs;
	time_t t;
	long off = 0;

	secs = strtoll(s, &end, 10);
	if (end != s && *end == '\0') {
		*ns = (int64_t)secs * DURATION_SEC;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi,
	    &sec, &n) != 6 || n == 0)
		return -1;
	p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') &&
	    sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) == 2) {
		off = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
		p += 1 + n;
	} else {
		return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ns = ((int64_t)t - off) * DURATION_SEC;
	return 0;
}

static void
print_policy(FILE *fp, const struct config_policy *p, int k)
{
	char idle[DURATION_STRLEN];

	duration_format(p->idle_time_ns, idle, sizeof(idle));
	fprintf(fp, "# policy%d (line %d): periods", k + 1, p->line);
	for (size_t i = 0; i < p->periods.n; i++)
		fprintf(fp, "%s \"%s\"", i ? "," : "", p->periods.v[i]);
	fprintf(fp, " in %s; idle_count %lld, idle_time %s, scale_factor %g, "
	    "scale_factor_limit %lld, preemptive %s\n",
	    p->timezone ? p->timezone : "Local", (long long)p->idle_count,
	    idle, p->scale_factor, (long long)p->scale_factor_limit,
	    config_policy_preemptive(p) ? "yes" : "no");
}

static void
print_row(FILE *fp, const char *label, const struct simulate_stats *st)
{
	fprintf(fp, "%-9s %8llu %8llu %9llu %11.3f %10.3f %14.3f %14lld %17llu\n",
	    label, (unsigned long long)st->jobs,
	    (unsigned long long)st->started, (unsigned long long)st->timed_out,
	    st->wait_mean_s, st->wait_p95_s, st->instance_hours,
	    (long long)st->peak_instances,
	    (unsigned long long)st->instances_created);
}

static const struct config_runner *
pick_runner(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nrunners; i++) {
		const struct config_runner *r = &cfg->runners[i];

		if (name != NULL) {
			if (r->name != NULL && strcmp(r->name, name) == 0)
				return r;
		} else if (r->executor != NULL &&
		    strcmp(r->executor, "docker-autoscaler") == 0) {
			return r;
		}
	}
	return NULL;
}

static int
simulate_cmd_run(struct cli_globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "boot-delay", required_argument, NULL, 'b' },
		{ "runner", required_argument, NULL, 'r' },
		{ "start", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *jobs_path = NULL, *runner = NULL;
	struct simulate_options o = { DEFAULT_START * DURATION_SEC, DEFAULT_BOOT };
	const struct config_runner *r;
	struct simulate_result res;
	struct simulate_jobs jobs;
	struct config *cfg;
	struct sbuf errs;
	char err[256], buf[DURATION_STRLEN], when[64];
	char *path;
	struct tm tm;
	time_t st;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'j':
			jobs_path = optarg;
			break;
		case 'b':
			if (parse_delay(optarg, &o.boot_delay_ns) != 0) {
				fprintf(stderr, "flotilla simulate: --boot-delay: "
				    "not a duration: %s\n", optarg);
				return 2;
			}
			break;
		case 'r':
			runner = optarg;
			break;
		case 's':
			if (parse_start(optarg, &o.start_ns) != 0) {
				fprintf(stderr, "flotilla simulate: --start: not "
				    "RFC 3339 or Unix seconds: %s\n", optarg);
				return 2;
			}
			break;
		case 'h':
			cli_command_usage(&cmd_simulate, stdout);
			return 0;
		default:
			cli_command_usage(&cmd_simulate, stderr);
			return 2;
		}
	}
	if (optind != argc || jobs_path == NULL) {
		cli_command_usage(&cmd_simulate, stderr);
		return 2;
	}
	path = cli_config_path(g);
	cfg = cli_load_config(path);
	if (cfg == NULL) {
		fprintf(stderr, "%s: configuration is not valid\n", path);
		free(path);
		return 1;
	}
	r = pick_runner(cfg, runner);
	if (r == NULL) {
		if (runner != NULL)
			fprintf(stderr, "%s: no runner named \"%s\"\n", path,
			    runner);
		else
			fprintf(stderr, "%s: no docker-autoscaler runner\n",
			    path);
		config_free(cfg);
		free(path);
		return 1;
	}
	sbuf_init(&errs);
	if (simulate_load_jobs(jobs_path, &jobs, &errs) != 0) {
		fputs(errs.buf, stderr);
		sbuf_release(&errs);
		config_free(cfg);
		free(path);
		return 1;
	}
	sbuf_release(&errs);

	rc = simulate_run(&r->autoscaler, &jobs, &o, &res, err, sizeof(err));
	if (rc == FL_ERR_INVAL) {
		fprintf(stderr, "%s: runner \"%s\": %s\n", path,
		    r->name ? r->name : "", err);
		simulate_jobs_release(&jobs);
		config_free(cfg);
		free(path);
		return 1;
	}
	st = (time_t)(o.start_ns / DURATION_SEC);
	gmtime_r(&st, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	duration_format(o.boot_delay_ns, buf, sizeof(buf));
	printf("# flotilla simulate: %zu jobs from %s, runner \"%s\", boot "
	    "delay %s, start %s\n", jobs.n, jobs_path, r->name ? r->name : "",
	    buf, when);
	duration_format(res.end_ns, buf, sizeof(buf));
	printf("# simulated %s, %llu decisions\n", buf,
	    (unsigned long long)res.decisions);
	printf("# default: no policy in force (idle_count 0, idle_time 5m0s, "
	    "scale_factor 0, preemptive no)\n");
	for (size_t k = 0; k < r->autoscaler.npolicy; k++)
		print_policy(stdout, &r->autoscaler.policy[k], (int)k);
	printf("%-9s %8s %8s %9s %11s %10s %14s %14s %17s\n", "period", "jobs",
	    "started", "timed_out", "wait_mean_s", "wait_p95_s",
	    "instance_hours", "peak_instances", "instances_created");
	for (size_t k = 0; k < res.ngroups; k++) {
		char label[32];

		if (!res.groups[k].active)
			continue;
		if (k == 0)
			snprintf(label, sizeof(label), "default");
		else
			snprintf(label, sizeof(label), "policy%zu", k);
		print_row(stdout, label, &res.groups[k]);
	}
	print_row(stdout, "total", &res.total);
	if (rc != 0)
		fprintf(stderr, "flotilla simulate: %s\n", err);
	simulate_result_release(&res);
	simulate_jobs_release(&jobs);
	config_free(cfg);
	free(path);
	return rc == 0 ? 0 : 1;
}

const struct cli_command cmd_simulate = {
	"simulate",
	"Replay a job trace against a runner's autoscaler settings.",
	"[-c FILE] --jobs FILE.csv [--boot-delay 45s] [--runner NAME] "
	"[--start TIME]",
	"      --jobs FILE        the trace: one job a line, arrival,duration\n"
	"                         (seconds or Go durations; # comments and a\n"
	"                         header line allowed)\n"
	"      --boot-delay DUR   how long an instance takes to boot (45s)\n"
	"      --runner NAME      the [[runners]] entry (default: the first\n"
	"                         docker-autoscaler one)\n"
	"      --start TIME       wall-clock time of arrival 0, RFC 3339 or\n"
	"                         Unix seconds, for policy periods\n"
	"                         (default 2026-01-05T00:00:00Z, a Monday)\n",
	simulate_cmd_run
};
