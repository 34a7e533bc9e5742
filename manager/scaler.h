/*
 * The scaler: taskscaler's job-aware autoscaling as a pure core.  It keeps
 * the table of instances the plugin reported, the slots of each, the
 * reservations and acquisitions of jobs, and decides what the plugin should
 * be asked to do next.  It does no IO and reads no clock: every entry point
 * takes `now` (nanoseconds since the Unix epoch) and the glue (the run loop)
 * feeds it the results of the plugin calls it asked for.  The state machines
 * and the capacity model are described at the top of scaler.c.
 *
 * How the glue drives it:
 *
 *	s = scaler_new(&runner->autoscaler, err, sizeof(err));
 *	scaler_restore(s, now, saved, n);	optional, state storage
 *	loop:
 *		scaler_decide(s, now, &act);
 *		if now >= act.next_update: plugin Update -> scaler_update()
 *		act.increase > 0: plugin Increase -> scaler_increase_result()
 *		act.decrease: plugin Decrease -> scaler_decrease_result()
 *		act.ready_checks: instance_ready_command -> scaler_ready_result()
 *		act.heartbeats: plugin Heartbeat -> scaler_heartbeat_result()
 *		act.granted / timed_out / cancelled / lost: wake or fail jobs, log
 *		sleep until act.wakeup or the next input
 *	jobs: scaler_reserve() before asking GitLab for a job,
 *	      scaler_unreserve() if none came, scaler_acquire() once one did,
 *	      scaler_release() when it ended.
 *
 * Call scaler_decide() after any input: binding waiting jobs to freed slots,
 * scale-ups and removals all happen there.  It is O(1) when nothing
 * time-driven is due and O(instances) otherwise.
 */
#ifndef FL_SCALER_H
#define FL_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

/* A reservation, as scaler_reserve() hands it out; never 0. */
typedef uint64_t scaler_key;

/* scaler_reserve(): no slot now, but capacity can come (VMs can be made):
 * taskscaler's reserve_available_capacity_failure. */
#define SCALER_ERR_NO_CAPACITY_NOW	FL_ERR_AGAIN
/* scaler_reserve(): none at all, max_instances x capacity is spoken for:
 * taskscaler's reserve_iop_capacity_failure. */
#define SCALER_ERR_NO_CAPACITY		FL_ERR_RANGE

/* Exponential back-off of scale-ups after a failed ready command or a
 * short Increase: 10 s, doubling, at most 5 min, reset by a success. */
#define SCALER_BACKOFF_BASE_NS	(INT64_C(10) * 1000000000)
#define SCALER_BACKOFF_MAX_NS	(INT64_C(300) * 1000000000)
/* A requested instance the plugin has not listed after this long is
 * forgotten (it no longer counts as coming). */
#define SCALER_REQUEST_EXPIRY_NS (INT64_C(900) * 1000000000)

/* What the plugin says of an instance (fleeting's provider states). */
enum scaler_pstate {
	SCALER_P_CREATING,
	SCALER_P_RUNNING,
	SCALER_P_DELETING,
	SCALER_P_DELETED,	/* the same as not listed */
	SCALER_P_TIMEOUT,	/* failed: removed */
	SCALER_P_COUNT
};

/* Where the scaler has an instance (see the state machine in scaler.c). */
enum scaler_istate {
	SCALER_UNSEEN,		/* restored from storage, not yet listed */
	SCALER_CREATING,	/* listed as creating */
	SCALER_RUNNING,		/* running; waiting for its ready check */
	SCALER_CHECKING,	/* ready command handed to the glue */
	SCALER_READY,		/* its slots take jobs */
	SCALER_REMOVING,	/* to be removed: in Decrease until accepted */
	SCALER_DELETING,	/* deletion began */
	SCALER_ISTATE_COUNT
};

enum scaler_cause {
	SCALER_CAUSE_NEW,		/* it answered one of our Increases */
	SCALER_CAUSE_PREEXISTING,	/* found, not asked for, not stored */
	SCALER_CAUSE_RESTORED		/* known from state storage */
};

/* Why an instance is removed (the label of the removal counters). */
enum scaler_reason {
	SCALER_REASON_NONE = 0,
	SCALER_REASON_IDLE_TIME,
	SCALER_REASON_MAX_USE_COUNT,
	SCALER_REASON_NOT_READY,
	SCALER_REASON_UNHEALTHY,
	SCALER_REASON_TIMEOUT,
	SCALER_REASON_SHUTDOWN,
	SCALER_REASON_COUNT
};

/* One line of the plugin's Update: the whole list is passed at once. */
struct scaler_report {
	const char *id;
	enum scaler_pstate state;
};

/* An instance known from state storage, given before the first Update. */
struct scaler_restored {
	const char *id;
	int64_t use_count;
	int64_t created_at;		/* ns since the epoch */
	int had_acquisitions;		/* jobs were on it when we stopped */
};

/* Ask for the deletion of id (owned by the scaler, see scaler_actions). */
struct scaler_removal {
	const char *id;
	enum scaler_reason reason;
};

/* A waiting scaler_acquire() got its slot. */
struct scaler_grant {
	scaler_key key;
	const char *instance;		/* owned by the scaler */
	int slot;
};

/* An acquisition that is void: its instance went away (or shutdown). */
struct scaler_cancel {
	scaler_key key;
	char *instance;			/* owned by the actions */
	int slot;
};

/*
 * "instance unexpectedly removed": it vanished (or the plugin deleted it)
 * without our asking.  slots reads as Go prints the slot map, slot index
 * to in use, e.g. "map[0:true 1:false]".
 */
struct scaler_lost {
	char *instance;			/* owned by the actions */
	int64_t max_use_count;
	int64_t used;
	char *slots;			/* owned by the actions */
};

/* The "required scaling change" record, taskscaler's capacity info. */
struct scaler_capacity {
	int64_t instance_count;		/* coming, up, and going with jobs */
	int64_t max_instance_count;	/* 0: unlimited */
	int64_t acquired;
	int64_t unavailable_capacity;	/* slots that cannot take a job */
	int64_t pending;		/* acquisitions waiting for a slot */
	int64_t reserved;
	int64_t idle_count;
	double scale_factor;
	int64_t scale_factor_limit;
	int64_t capacity_per_instance;
	int64_t desired;		/* instances wanted */
	int policy;			/* index of the active policy, -1: none */
};

/*
 * What the glue should do, filled by scaler_decide().  Strings the scaler
 * owns (decrease ids, ready_checks, heartbeats, grant instances) stay valid
 * until the next scaler_update(), scaler_decide(), scaler_shutdown() or
 * scaler_free(): copy them into requests.  The others are owned by the
 * struct and freed by the next decision or scaler_actions_release().
 */
struct scaler_actions {
	int64_t increase;		/* Increase(n) when > 0 */
	struct scaler_removal *decrease;
	size_t ndecrease;
	const char **ready_checks;	/* run instance_ready_command */
	size_t nready_checks;
	const char **heartbeats;	/* plugin Heartbeat */
	size_t nheartbeats;
	struct scaler_grant *granted;
	size_t ngranted;
	scaler_key *timed_out;		/* acquisitions past instance_acquire_timeout */
	size_t ntimed_out;
	struct scaler_cancel *cancelled;
	size_t ncancelled;
	struct scaler_lost *lost;
	size_t nlost;
	int scaling_change;		/* desired changed: log capacity */
	struct scaler_capacity capacity;	/* always filled */
	int64_t next_update;		/* call the plugin's Update at/after */
	int64_t wakeup;			/* decide again no later than */
	int shutdown_done;		/* after scaler_shutdown(): finished */
	/* private */
	size_t cap_[7];
};

void scaler_actions_init(struct scaler_actions *a);
void scaler_actions_release(struct scaler_actions *a);

/* A histogram as Prometheus keeps it: counts[i] observations <= bounds[i],
 * counts[nbounds] the rest (+Inf); not cumulative. */
struct scaler_histogram {
	double *bounds;
	size_t nbounds;
	uint64_t *counts;
	double sum;
	uint64_t count;
};

enum scaler_iop {		/* fleeting_provisioner_instance_operations_total */
	SCALER_IOP_CREATE,
	SCALER_IOP_CREATE_ERROR,
	SCALER_IOP_DELETE,
	SCALER_IOP_DELETE_ERROR,
	SCALER_IOP_UPDATE,
	SCALER_IOP_UPDATE_ERROR,
	SCALER_IOP_HEARTBEAT,
	SCALER_IOP_HEARTBEAT_ERROR,
	SCALER_IOP_COUNT
};

enum scaler_internal_op {	/* fleeting_provisioner_internal_operations_total */
	SCALER_INT_REQUEST_EXPIRED,
	SCALER_INT_UNEXPECTED_REMOVAL,
	SCALER_INT_PREEXISTING,
	SCALER_INT_RESTORED,
	SCALER_INT_COUNT
};

enum scaler_task_state {	/* fleeting_taskscaler_tasks{state} */
	SCALER_TASK_IDLE,
	SCALER_TASK_PENDING,
	SCALER_TASK_RESERVED,
	SCALER_TASK_ACQUIRED,
	SCALER_TASK_UNAVAILABLE,
	SCALER_TASK_UNHEALTHY,
	SCALER_TASK_COUNT
};

enum scaler_task_op {		/* fleeting_taskscaler_task_operations_total */
	SCALER_TOP_RESERVE,
	SCALER_TOP_RESERVE_AVAILABLE_FAILURE,
	SCALER_TOP_RESERVE_IOP_FAILURE,
	SCALER_TOP_UNRESERVE,
	SCALER_TOP_ACQUIRE,
	SCALER_TOP_ACQUIRE_TIMEOUT,
	SCALER_TOP_ACQUIRE_CANCELLED,
	SCALER_TOP_RELEASE,
	SCALER_TOP_READY,
	SCALER_TOP_READY_FAILURE,
	SCALER_TOP_COUNT
};

/*
 * Counters and gauges for the exporter; label values come from the
 * scaler_*_name() functions.  Gauges are current after each entry point.
 */
struct scaler_metrics {
	/* fleeting_provisioner_* */
	int64_t instances[SCALER_P_COUNT + 1];	/* by plugin state; [SCALER_P_COUNT]: requested */
	int64_t max_instances;
	uint64_t missed_updates_total;
	uint64_t instance_operations_total[SCALER_IOP_COUNT];
	uint64_t internal_operations_total[SCALER_INT_COUNT];
	struct scaler_histogram creation_time;		/* request -> listed */
	struct scaler_histogram is_running_time;	/* request -> running */
	struct scaler_histogram deletion_time;		/* Decrease -> gone */
	struct scaler_histogram life_duration;		/* created -> gone */
	/* fleeting_taskscaler_* */
	int64_t tasks[SCALER_TASK_COUNT];
	int64_t max_tasks_per_instance;
	int64_t max_use_count_per_instance;
	uint64_t task_operations_total[SCALER_TOP_COUNT];
	uint64_t scale_operations_up_total;		/* instances asked for */
	uint64_t scale_operations_down_total;		/* instances removed */
	uint64_t removals_total[SCALER_REASON_COUNT];	/* by reason */
	int64_t desired_instances;
	struct scaler_histogram readiness_time;		/* created -> ready */
};

/* The policy values in force (see scaler_policy()). */
struct scaler_policy_view {
	int index;			/* -1: the built-in default */
	int line;			/* config line, 0 for the default */
	int64_t idle_count;
	int64_t idle_time_ns;
	double scale_factor;
	int64_t scale_factor_limit;
	int preemptive;
};

/* One instance, for state storage, debugging and tests. */
struct scaler_instance_info {
	const char *id;			/* owned by the scaler */
	enum scaler_istate state;
	enum scaler_pstate plugin_state;
	enum scaler_cause cause;
	enum scaler_reason reason;	/* NONE unless removal is wanted */
	int64_t use_count;
	int acquired;
	int reserved;
	int heartbeat_failures;
	int64_t created_at;
	int64_t ready_at;		/* 0: not yet */
	int64_t idle_since;		/* end of its last job, or ready_at */
};

struct scaler;

/*
 * A scaler for one [runners.autoscaler] section (copied: `as` may be freed
 * afterwards).  Fails (NULL, reason in err) only when a policy's period or
 * time zone cannot be used.  A ready check is asked for each new or
 * restored instance when instance_ready_command is set.
 */
struct scaler *scaler_new(const struct config_autoscaler *as, char *err,
    size_t errlen);
void scaler_free(struct scaler *s);

/*
 * Replace the policies (SIGHUP reload).  The active policy at a time is the
 * last one with an active period (cron_active() in its zone; no timezone
 * means the system's, "Local"); when none is active, or there are none:
 * idle_count 0, idle_time 5m, scale_factor 0, not preemptive.  Returns 0,
 * or FL_ERR_INVAL with the reason in err, the old policies kept.
 */
int scaler_set_policies(struct scaler *s, const struct config_policy *p,
    size_t n, char *err, size_t errlen);

/* The policy in force at now. */
void scaler_policy(struct scaler *s, int64_t now, struct scaler_policy_view *out);

/* Heartbeat period of ready instances (default update_interval); 0: none. */
void scaler_set_heartbeat_interval(struct scaler *s, int64_t ns);

/*
 * Instances from state storage, before the first scaler_update().  Those
 * the plugin lists keep their use count and go through the ready check;
 * one with had_acquisitions is removed (not_ready) unless
 * state_storage.keep_instance_with_acquisitions.  Unlisted ones are
 * forgotten.  Returns 0 or FL_ERR_EXISTS (a duplicate id, skipped).
 */
int scaler_restore(struct scaler *s, int64_t now,
    const struct scaler_restored *r, size_t n);

/*
 * The plugin's Update: every instance of the group with its state.  An
 * instance not listed (or listed as deleted) is gone; if it was not being
 * removed, scaler_decide() reports it in `lost` and its acquisitions in
 * `cancelled`.  Unknown ids answer our oldest outstanding Increase; with
 * none outstanding they are pre-existing and removed for safety
 * (not_ready).  Returns 0, or FL_ERR_INVAL for a NULL or duplicate id
 * (that line is skipped).
 */
int scaler_update(struct scaler *s, int64_t now,
    const struct scaler_report *instances, size_t n);
/* The Update call failed: counted as a missed update, retried later. */
void scaler_update_failed(struct scaler *s, int64_t now);

/* Increase(requested) returned succeeded (<= requested). */
void scaler_increase_result(struct scaler *s, int64_t now, int64_t requested,
    int64_t succeeded);
/*
 * Decrease(requested) accepted `succeeded` (a subset).  The others are
 * asked again after deletion_retry_interval, as are accepted ones the
 * plugin still lists as not deleting by then.
 */
void scaler_decrease_result(struct scaler *s, int64_t now,
    const char *const *requested, size_t nrequested,
    const char *const *succeeded, size_t nsucceeded);
/* Result of instance_ready_command: ok makes its slots usable; a failure
 * removes it (not_ready) and backs scale-ups off.  0 or FL_ERR_NOTFOUND. */
int scaler_ready_result(struct scaler *s, int64_t now, const char *id, int ok);
/* Result of a Heartbeat: failure_threshold failures in a row remove it
 * (unhealthy).  0 or FL_ERR_NOTFOUND. */
int scaler_heartbeat_result(struct scaler *s, int64_t now, const char *id,
    int ok);

/*
 * Reserve a slot for a job not yet asked for.  0 and *key on success;
 * SCALER_ERR_NO_CAPACITY_NOW when preemptive mode finds no idle ready slot
 * or reservation throttling refuses; SCALER_ERR_NO_CAPACITY when neither
 * ready nor potential capacity is left; FL_ERR_CLOSED after shutdown.
 */
int scaler_reserve(struct scaler *s, int64_t now, scaler_key *key);
/* Give a reservation back (no job came).  0 or FL_ERR_NOTFOUND;
 * FL_ERR_INVAL if it was acquired (use scaler_release()). */
int scaler_unreserve(struct scaler *s, int64_t now, scaler_key key);
/*
 * A job came for this reservation: get its slot.  0 with *instance (owned
 * by the scaler, valid while acquired) and *slot when one is ready;
 * FL_ERR_AGAIN when it must wait: the scaler keeps it pending and a later
 * scaler_decide() reports it in `granted` (calling scaler_acquire() again
 * then also answers 0), or in `timed_out` after instance_acquire_timeout.
 * FL_ERR_NOTFOUND for an unknown, timed-out or cancelled key.
 */
int scaler_acquire(struct scaler *s, int64_t now, scaler_key key,
    const char **instance, int *slot);
/*
 * The job ended.  The use was counted when the slot was acquired; an
 * instance that reached max_use_count is removed once its last
 * acquisition is released.  0 or FL_ERR_NOTFOUND.  Releasing a reservation
 * that was never acquired is the same as scaler_unreserve().
 */
int scaler_release(struct scaler *s, int64_t now, scaler_key key);

/* Decide what to do now (see struct scaler_actions). */
void scaler_decide(struct scaler *s, int64_t now, struct scaler_actions *out);

/*
 * Stop: no more reservations, pending acquisitions reported as timed out.
 * With delete_instances, every instance is decreased, then those still
 * listed are decreased again every shutdown_deletion_interval, at most
 * shutdown_deletion_retries times; out->shutdown_done says when to stop.
 * Keep calling scaler_update() and scaler_decide() until then.
 */
void scaler_shutdown(struct scaler *s, int64_t now, int delete_instances,
    struct scaler_actions *out);

/* The capacity record as of the last decision. */
void scaler_capacity(const struct scaler *s, struct scaler_capacity *out);
const struct scaler_metrics *scaler_metrics(const struct scaler *s);

size_t scaler_instance_count(const struct scaler *s);
/* By id: 0 or FL_ERR_NOTFOUND.  By position (0 .. count-1, any order). */
int scaler_instance(const struct scaler *s, const char *id,
    struct scaler_instance_info *out);
int scaler_instance_at(const struct scaler *s, size_t i,
    struct scaler_instance_info *out);

/* Make the next scaler_decide() walk every instance (tests, benchmarks). */
void scaler_invalidate(struct scaler *s);

const char *scaler_pstate_name(enum scaler_pstate st);
const char *scaler_istate_name(enum scaler_istate st);
const char *scaler_reason_name(enum scaler_reason r);
const char *scaler_task_state_name(enum scaler_task_state st);
const char *scaler_task_op_name(enum scaler_task_op op);
const char *scaler_iop_name(enum scaler_iop op);
const char *scaler_internal_op_name(enum scaler_internal_op op);

#endif
