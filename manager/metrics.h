/*
 * A small Prometheus registry and the text exposition format (0.0.4) for
 * the manager's /metrics endpoint.  Families (counter, gauge, histogram
 * with fixed buckets) hold series keyed by label values; collectors are
 * callbacks run at scrape time that fill a scratch registry from numbers
 * kept elsewhere (the scalers, /proc/self).  Nothing here does IO except
 * metrics_process_collect(), which reads /proc/self.
 *
 * Output is stable: families sorted by name, series of a family sorted by
 * their label values, labels in the order the family declared them.  The
 * scratch families of all collectors are merged by name, so two runners
 * rendering the same fleeting_* family produce one HELP/TYPE block.
 *
 * The registry is single-threaded (the manager's event loop).
 */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "scaler.h"
#include "xmalloc.h"

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM
};

/* At most this many labels in a family; names up to 128 bytes. */
#define METRICS_MAX_LABELS	12
#define METRICS_MAX_NAME	128

/* The content type of the exposition, as Prometheus' Go client sends it. */
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

struct metrics;
struct metrics_family;
struct metrics_series;

/*
 * A collector: called by metrics_render() with a scratch registry (empty,
 * freed after the scrape) to add families computed now.  It may also
 * update families of the main registry it holds pointers to (arg), e.g.
 * reset a gauge and set it afresh.
 */
typedef void (*metrics_collect_fn)(struct metrics *scratch, void *arg);

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * Get or create a family.  labels: nlabels label names (copied).  Returns
 * the family, the same one if `name` exists with the same type, labels
 * and (histograms) bounds; NULL if the name or a label name is invalid
 * (metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
 * not starting with "__"; "le" is refused in histograms), if bounds are not
 * strictly increasing finite numbers, or if `name` exists differently.
 * The family belongs to the registry.  Every function taking a family
 * accepts NULL and then does nothing (or returns NULL/FL_ERR_INVAL).
 */
struct metrics_family *metrics_counter(struct metrics *m, const char *name,
    const char *help, const char *const *labels, size_t nlabels);
struct metrics_family *metrics_gauge(struct metrics *m, const char *name,
    const char *help, const char *const *labels, size_t nlabels);
/* bounds: the upper bounds, without +Inf (added by the renderer). */
struct metrics_family *metrics_histogram(struct metrics *m, const char *name,
    const char *help, const char *const *labels, size_t nlabels,
    const double *bounds, size_t nbounds);

/*
 * The series for these label values (one per label, in the family's
 * order; NULL reads as ""), created at zero if new.  The pointer stays
 * valid until metrics_remove()/metrics_reset() of its family or
 * metrics_free(), so hot paths may keep it.
 */
struct metrics_series *metrics_series(struct metrics_family *f,
    const char *const *values);

/* Counters and gauges.  add: a counter refuses v < 0 and NaN (FL_ERR_INVAL);
 * set: gauges, and counters mirrored from a count kept elsewhere. */
int metrics_series_add(struct metrics_series *s, double v);
int metrics_series_set(struct metrics_series *s, double v);
/* Histograms: count v in the first bucket whose bound is >= v. */
int metrics_series_observe(struct metrics_series *s, double v);
/* Current value (counter/gauge) or sample count (histogram). */
double metrics_series_value(const struct metrics_series *s);

/* The same by label values (metrics_series() then the operation). */
int metrics_add(struct metrics_family *f, const char *const *values, double v);
int metrics_inc(struct metrics_family *f, const char *const *values);
int metrics_set(struct metrics_family *f, const char *const *values, double v);
int metrics_observe(struct metrics_family *f, const char *const *values,
    double v);

/*
 * Load a histogram series from counts kept elsewhere: counts[i] are the
 * observations <= bounds[i] (not cumulative), counts[nbounds] the rest.
 * The series takes these bounds (copied), which may differ from the
 * family's (each series of a text-format histogram lists its own "le").
 * FL_ERR_INVAL for a non-histogram or bad bounds.
 */
int metrics_histogram_load(struct metrics_family *f,
    const char *const *values, const double *bounds, size_t nbounds,
    const uint64_t *counts, double sum);

/* Drop one series (0 or FL_ERR_NOTFOUND) or all series of a family. */
int metrics_remove(struct metrics_family *f, const char *const *values);
void metrics_reset(struct metrics_family *f);
size_t metrics_family_size(const struct metrics_family *f);

/* Collectors run in the order added, at every render. */
void metrics_add_collector(struct metrics *m, metrics_collect_fn fn, void *arg);
void metrics_remove_collector(struct metrics *m, metrics_collect_fn fn,
    void *arg);

/*
 * Append the whole exposition to out: the collectors run first, then
 * every family with at least one series is written.  A scratch family
 * whose name the main registry also has is left out, and the call then
 * returns FL_ERR_EXISTS (the rest is still written); otherwise 0.
 */
int metrics_render(struct metrics *m, struct sbuf *out);

/* Text format pieces (exposed for tests and other writers). */
void metrics_escape_label(struct sbuf *out, const char *v);
void metrics_escape_help(struct sbuf *out, const char *v);
/* A sample value: integers exactly, others shortest round-trip, +Inf,
 * -Inf, NaN. */
void metrics_format_value(struct sbuf *out, double v);

/* ---- process_* ---- */

struct metrics_proc {
	double cpu_seconds;		/* utime + stime */
	double start_time_seconds;	/* since the epoch */
	double virtual_memory_bytes;
	double resident_memory_bytes;
};

/*
 * Parse /proc/self/stat (`stat`) with the boot time from /proc/stat's
 * "btime", the clock ticks per second and the page size.  0 or
 * FL_ERR_PARSE.
 */
int metrics_parse_proc_stat(const char *stat, int64_t btime, long ticks,
    long pagesize, struct metrics_proc *out);

/*
 * A collector (arg unused) adding Prometheus' process collector families
 * from /proc/self: process_cpu_seconds_total, process_open_fds,
 * process_max_fds, process_virtual_memory_bytes,
 * process_virtual_memory_max_bytes, process_resident_memory_bytes,
 * process_start_time_seconds.  Families it cannot read are left out.
 */
void metrics_process_collect(struct metrics *scratch, void *arg);

/* ---- GitLab Runner's own families ---- */

/*
 * The gitlab_runner_* families the run loop updates, with GitLab Runner's
 * names, help texts, label sets and buckets (R: commands/builds_helper.go,
 * commands/multi.go, helpers/prometheus/ (failures, log hook), network/api_requests_collector.go,
 * common/version.go, commands/internal/process_state/tracker.go).
 * Label order (values arrays follow it):
 *   jobs:				runner runner_name system_id state stage executor_stage
 *   jobs_total:			runner runner_name system_id
 *   failed_jobs_total:			runner runner_name failure_reason mode
 *   job_duration_seconds:		runner runner_name system_id mode
 *   concurrent:			(none)
 *   limit:				runner runner_name system_id
 *   request_concurrency:		runner system_id
 *   request_concurrency_exceeded_total:	runner system_id
 *   request_concurrency_hard_limit:	runner system_id
 *   api_request_statuses_total:	runner system_id endpoint status method
 *   api_request_duration_seconds:	runner system_id endpoint status_class method
 *   worker_feeds_total:		runner runner_name system_id
 *   worker_feed_failures_total:	runner runner_name system_id
 *   worker_processing_failures_total:	failure_type runner runner_name system_id
 *   worker_slots_number:		(none)
 *   worker_slot_operations_total:	operation ("started", "stopped")
 *   errors_total:			level
 *   version_info:			name version revision branch go_version built_at os architecture
 *   process_state_info:		state
 */
struct metrics_runner {
	struct metrics_family *jobs;
	struct metrics_family *jobs_total;
	struct metrics_family *failed_jobs_total;
	struct metrics_family *job_duration_seconds;
	struct metrics_family *concurrent;
	struct metrics_family *limit;
	struct metrics_family *request_concurrency;
	struct metrics_family *request_concurrency_exceeded_total;
	struct metrics_family *request_concurrency_hard_limit;
	struct metrics_family *api_request_statuses_total;
	struct metrics_family *api_request_duration_seconds;
	struct metrics_family *worker_feeds_total;
	struct metrics_family *worker_feed_failures_total;
	struct metrics_family *worker_processing_failures_total;
	struct metrics_family *worker_slots_number;
	struct metrics_family *worker_slot_operations_total;
	struct metrics_family *errors_total;
	struct metrics_family *version_info;
	struct metrics_family *process_state_info;
};

struct metrics_version {
	const char *name;		/* "flotilla" */
	const char *version;
	const char *revision;
	const char *branch;
	const char *go_version;		/* we put the compiler here */
	const char *built_at;
	const char *os;			/* "linux" */
	const char *architecture;	/* "amd64", "arm64" */
};

/*
 * Define the families in m (0, or FL_ERR_EXISTS if one of the names is
 * already used differently).  errors_total starts with its four levels
 * (panic, fatal, error, warning) at 0, version_info with v at 1 (v may be
 * NULL: left out), process_state_info with state "starting".
 */
int metrics_runner_init(struct metrics_runner *rm, struct metrics *m,
    const struct metrics_version *v);

/* Identity labels of one [[runners]] entry (short token, name, system id). */
struct metrics_runner_id {
	const char *runner;		/* the short token */
	const char *runner_name;
	const char *system_id;
};

/*
 * Make a runner's always-present series: jobs{state,stage,executor_stage
 * = "idle"} at 0, limit, request_concurrency 0, exceeded 0, hard limit.
 * A run loop that rebuilds gitlab_runner_jobs at scrape time (a collector
 * doing metrics_reset(rm->jobs), then one metrics_inc() per running job)
 * calls this again afterwards for the idle series, as GitLab Runner
 * always shows it.
 */
void metrics_runner_add(struct metrics_runner *rm,
    const struct metrics_runner_id *id, int64_t limit,
    int64_t request_concurrency);
/* Drop every series carrying this runner (a runner removed on reload). */
void metrics_runner_remove(struct metrics_runner *rm,
    const struct metrics_runner_id *id);
/* gitlab_runner_process_state_info: only `state` at 1 ("starting",
 * "running", "graceful-shutdown", "forceful-shutdown"). */
void metrics_runner_set_state(struct metrics_runner *rm, const char *state);
/* The level label of errors_total for a log level name ("warn" ->
 * "warning"); NULL for levels it does not count. */
const char *metrics_error_level(const char *level);
/* "2xx" .. "5xx", "1xx", else "unknown", as GitLab Runner classes. */
const char *metrics_status_class(int status);

/* ---- fleeting_provisioner_* and fleeting_taskscaler_* ---- */

struct metrics_fleet {
	const struct scaler_metrics *m;
	struct metrics_runner_id id;
};

/*
 * Add the scaler numbers of n fleets to the (scratch) registry as the
 * fleeting_provisioner_* and fleeting_taskscaler_* families, each series
 * labelled runner, runner_name, system_id (+ state, operation or reason).
 * Call it from a collector; calls for several fleets merge.
 */
void metrics_fleet_collect(struct metrics *scratch,
    const struct metrics_fleet *fleets, size_t n);

#endif
