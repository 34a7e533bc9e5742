/*
 * The run loop of `flotilla run`: for each [[runners]] entry a GitLab
 * runner, a fleet (its plugin process and scaler) and a pool of instance
 * connections; jobs go GitLab → reserved slot → instance → executor →
 * GitLab, as GitLab Runner's multi.go with the docker-autoscaler
 * provider (fleeting-taskscaler.md §4.1):
 *
 *   feed:  while the runner may ask (concurrent, limit,
 *          request_concurrency, not unhealthy, not stopping), reserve a
 *          slot in the fleet (no capacity: do not ask), then POST
 *          jobs/request (long polling);
 *   none:  unreserve, ask again after check_interval;
 *   job:   start its trace (PUT running), acquire the reserved slot
 *          (wait for an instance up to instance_acquire_timeout), get the
 *          instance's connection (instconn), run the executor, stream its
 *          output into the trace, release the slot, send the final state;
 *          unless strict_check_interval, ask again at once.
 *
 * Signals are the owner's (cmd_run.c); it calls run_graceful() for
 * SIGQUIT (stop asking, let jobs finish), run_forceful() for SIGTERM and
 * SIGINT (abort jobs as runner_interrupted, wait shutdown_timeout), and
 * run_reload() for SIGHUP.  All on one event loop.
 */
#ifndef FL_RUN_H
#define FL_RUN_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;
struct run;
struct sbuf;

enum run_phase {
	RUN_RUNNING,
	RUN_GRACEFUL,		/* SIGQUIT: jobs finish, no new ones */
	RUN_FORCEFUL,		/* SIGTERM/INT: jobs aborted */
	RUN_STOPPING,		/* jobs over: fleets stopping */
	RUN_DONE
};

struct run_opts {
	const char *config_path;	/* for reloads and state storage */
	/* The helper image tar loaded onto instances that lack it; NULL:
	 * the packaged one (run_default_helper_tar()). */
	const char *helper_image_tar;
	/* Called once everything has stopped (from the loop). */
	void (*done)(void *arg, int exit_code);
	void *done_arg;
};

/*
 * A run over cfg (the run takes it; freed when no runner uses it any
 * more).  NULL with the reason in err (no runner, a plugin that cannot be
 * found...).
 */
struct run *run_new(struct event_base *base, struct config *cfg,
    const struct run_opts *opts, char *err, size_t errlen);
/* Start every runner's fleet and feeding; 0 or < 0 with err. */
int run_start(struct run *r, char *err, size_t errlen);
void run_free(struct run *r);

void run_graceful(struct run *r);
void run_forceful(struct run *r);
/* Load the config file again and apply it; 0, or < 0 with the old
 * configuration kept (the reason is logged). */
int run_reload(struct run *r);

enum run_phase run_phase(const struct run *r);
const char *run_phase_name(enum run_phase p);
const char *run_system_id(const struct run *r);

/* What the HTTP server shows. */
struct run_stats {
	int64_t jobs_running;
	int64_t requests_in_flight;
	int64_t jobs_total;		/* received */
	int64_t jobs_succeeded;
	int64_t jobs_failed;
	int64_t concurrent;
};
void run_get_stats(const struct run *r, struct run_stats *st);

/* One line per running job, GitLab Runner's /debug/jobs/list format. */
void run_jobs_list(const struct run *r, struct sbuf *out);

/* The run's Prometheus registry: GitLab Runner's families, process_*,
 * and the fleets' fleeting_* (refreshed at each render). */
struct metrics *run_registry(struct run *r);

/* The helper image tar shipped with the package, or NULL if none. */
const char *run_default_helper_tar(void);

#endif
