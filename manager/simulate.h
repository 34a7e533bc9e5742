/*
 * What-if runs of the scaler: a job trace replayed against the real scaler
 * core, with a simulated provider (instances boot in a fixed delay, delete
 * at once, every ready check and heartbeat succeeds) and a fake clock
 * driven by an event queue.  It answers "how long would jobs wait, and how
 * many instance-hours would this config cost, for this load" per policy
 * period, without a cloud.  `flotilla simulate` (cmd_simulate.c) is the
 * shell around it.
 */
#ifndef FL_SIMULATE_H
#define FL_SIMULATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "xmalloc.h"

struct simulate_job {
	int64_t arrival_ns;	/* since the start of the trace */
	int64_t duration_ns;
};

struct simulate_jobs {
	struct simulate_job *v;	/* sorted by arrival (stable) */
	size_t n;
};

/*
 * Read a trace: one job a line, "arrival,duration", each either decimal
 * seconds ("12", "0.5") or a Go duration ("1h2m", "45s").  Blank lines
 * and text after '#' are ignored; a first line that is not numbers
 * ("arrival,duration") is taken as a header.  Every bad line is reported
 * as "FILE:LINE: reason\n" in *errors (which the caller initialised).
 * Returns 0, FL_ERR_PARSE when a line was bad (*out is then empty),
 * FL_ERR_IO/FL_ERR_NOTFOUND when the file cannot be read.
 */
int simulate_load_jobs(const char *path, struct simulate_jobs *out,
    struct sbuf *errors);
/* The same from a buffer; path only names it in messages. */
int simulate_parse_jobs(const char *path, const char *buf, size_t len,
    struct simulate_jobs *out, struct sbuf *errors);
void simulate_jobs_release(struct simulate_jobs *j);

struct simulate_options {
	int64_t start_ns;	/* wall-clock time of arrival 0 (policies) */
	int64_t boot_delay_ns;	/* creating -> running */
};

/* Figures for one policy (or the total). */
struct simulate_stats {
	int policy;		/* index, -1 for the built-in default */
	int line;		/* the policy's config line, 0 if none */
	int active;		/* was in force at some point */
	uint64_t jobs;		/* jobs that arrived while it was in force */
	uint64_t started;
	uint64_t timed_out;	/* waited instance_acquire_timeout */
	double wait_mean_s;	/* arrival -> slot, of started jobs */
	double wait_p95_s;
	double instance_hours;	/* instances listed, any state */
	int64_t peak_instances;
	uint64_t instances_created;
};

struct simulate_result {
	struct simulate_stats *groups;	/* [0] default, [i + 1] policy i */
	size_t ngroups;
	struct simulate_stats total;
	int64_t end_ns;			/* when the run stopped (since start) */
	uint64_t decisions;
};

/*
 * Run the trace.  The run ends once every job has finished and the fleet
 * has settled: no instance left, or the longest idle_time plus two update
 * intervals after the last job ended.  Returns 0, or FL_ERR_INVAL with a
 * reason in err (the scaler refused the config), or FL_ERR_INTERNAL if the
 * simulation stopped making progress.
 */
int simulate_run(const struct config_autoscaler *as,
    const struct simulate_jobs *jobs, const struct simulate_options *o,
    struct simulate_result *res, char *err, size_t errlen);
void simulate_result_release(struct simulate_result *r);

#endif
