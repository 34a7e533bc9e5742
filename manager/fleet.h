/*
 * The fleet: one runner's instances, the glue between the scaler's pure
 * decisions (scaler.h) and the world: the plugin process (plugin_host.h),
 * the instance_ready_command run over SSH (connector.h), and the clock
 * (one evtimer on the owner's event_base, re-armed to the scaler's
 * wakeup).  The run loop asks it for slots (reserve, acquire, release)
 * and for the ConnectInfo of the instance a job landed on.
 *
 * Everything runs on the owner's loop.  Every input (a plugin answer, a
 * ready command's end, a job call) only schedules a decision pass on the
 * loop (the timer fired at once); the pass calls scaler_decide() and
 * starts what it asks for.  So no callback or hook is ever made from
 * inside a fleet_* call, and hooks may call any fleet_* function
 * (fleet_free() excepted).
 *
 * Calls of one kind never overlap: one Update, one Increase, one Decrease
 * in flight at a time (what the scaler asks meanwhile is queued and sent
 * when the one in flight ends); Heartbeats and ready checks run one per
 * instance.  While the plugin is (re)starting, an Increase is reported
 * failed (the scaler backs off), a Decrease refused (retried), and the
 * plugin's on_ready/on_restart instance list is fed to scaler_update().
 * An Increase cut short by the plugin's death (FL_ERR_CLOSED) is reported
 * failed only after the next instance list (the restart's or an
 * Update's) has been fed, so the instances it did create are taken as
 * its answer, not as pre-existing ones to remove.
 *
 * State storage ([runners.autoscaler.state_storage], state_store.h).
 * When enabled, fleet_start() opens the store in state_store_dir(ss,
 * hooks->config_path), loads it and scaler_restore()s the records before
 * the plugin starts, so the instances the plugin still lists are adopted
 * (use count kept) instead of removed as pre-existing.  After a pass
 * where the table changed (a cheap digest of ids, states, use counts and
 * jobs), the whole set is saved, at most once per FLEET_SAVE_INTERVAL_NS
 * (an evtimer), with the ConnectInfo from the fleet's cache where it has
 * one; and once more when the fleet has stopped, before the stop
 * callback.  Failures never stop the fleet: a store that cannot be
 * opened is logged (error) and the fleet runs WITHOUT storage (after a
 * restart its instances are then removed as pre-existing, the safe
 * default); an unreadable or corrupt file is logged and the fleet starts
 * from an empty set; a failed save is logged and retried at the next
 * change.  The owner's on_change hook is still called after every pass;
 * it may also persist on its own, or scaler_restore() before
 * fleet_start() (an id restored twice is skipped by the scaler).
 */
#ifndef FL_FLEET_H
#define FL_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "connector.h"
#include "plugin_host.h"
#include "scaler.h"

struct event_base;
struct fleet;

/* State storage: at most one save in this period (the last one wins). */
#define FLEET_SAVE_INTERVAL_NS	(INT64_C(1) * 1000000000)

/* The instance_ready_command's deadline (connecting included). */
#define FLEET_READY_TIMEOUT_NS	(INT64_C(300) * 1000000000)

/*
 * What an acquisition became, for fleet_acquire()'s callback:
 *   FLEET_ACQ_GRANTED    instance and slot are the job's (instance valid
 *                        during the callback; copy it)
 *   FLEET_ACQ_TIMED_OUT  no slot within instance_acquire_timeout, or the
 *                        fleet stopped while it waited: the key is void
 *   FLEET_ACQ_CANCELLED  after (or instead of) a grant: the instance went
 *                        away; the job must fail.  The key is void.
 * After TIMED_OUT or CANCELLED the callback is not called again;
 * fleet_release() of that key is harmless (FL_ERR_NOTFOUND).
 */
enum fleet_acq_event {
	FLEET_ACQ_GRANTED,
	FLEET_ACQ_TIMED_OUT,
	FLEET_ACQ_CANCELLED
};

typedef void (*fleet_acquire_fn)(void *arg, enum fleet_acq_event ev,
    scaler_key key, const char *instance, int slot);

/*
 * ConnectInfo of an instance: rc 0 and ci (owned by the fleet, valid
 * during the callback; plugin_connect_info_dup() to keep it), or rc < 0
 * with msg.
 */
typedef void (*fleet_connect_info_fn)(void *arg, int rc, const char *msg,
    const struct plugin_connect_info *ci);

typedef void (*fleet_stop_fn)(void *arg, struct fleet *f);

/* The owner's hooks; every one may be NULL.  Called from the loop. */
struct fleet_hooks {
	void *arg;
	/* After each decision pass that followed an input: the scaler's
	 * instance table may have changed (persist it: fleet_scaler(),
	 * scaler_instance_at()). */
	void (*on_change)(void *arg, struct fleet *f);
	/* The job events, also delivered to the acquisition's callback. */
	void (*on_granted)(void *arg, struct fleet *f, scaler_key key,
	    const char *instance, int slot);
	void (*on_timed_out)(void *arg, struct fleet *f, scaler_key key);
	void (*on_cancelled)(void *arg, struct fleet *f, scaler_key key,
	    const char *instance, int slot);
	/* An instance vanished without being asked to (logged already). */
	void (*on_lost)(void *arg, struct fleet *f, const char *instance);
	/* The fleet is about to ask the plugin to delete an instance (used
	 * up, idle, unhealthy): close what is connected to it first, so its
	 * going away is not mistaken for a lost connection. */
	void (*on_removing)(void *arg, struct fleet *f, const char *instance);
	/* A ready check ended (ok 0: the instance is being removed;
	 * reason says why). */
	void (*on_ready_check)(void *arg, struct fleet *f, const char *instance,
	    int ok, const char *reason);
	/* The plugin host gave up (FAILED): no more plugin calls. */
	void (*on_plugin_failed)(void *arg, struct fleet *f,
	    const char *reason);
	/* Not a hook: the config file's path (copied), for the default
	 * state_storage dir (<its directory>/.taskscaler); NULL: ".". */
	const char *config_path;
};

/*
 * A fleet for rc (its autoscaler section; rc must outlive the fleet).
 * The plugin is resolved with plugin_resolve() and its host created, not
 * started.  NULL with the reason in err (unusable policy, plugin not
 * found, unreadable key_path).
 */
struct fleet *fleet_new(struct event_base *base, const struct config_runner *rc,
    const struct fleet_hooks *hooks, char *err, size_t errlen);

/* Start the plugin; 0, or < 0 with err (the binary cannot be run). */
int fleet_start(struct fleet *f, char *err, size_t errlen);

/*
 * Stop: scaler_shutdown() (pending acquisitions time out; with
 * delete_instances every instance is decreased and polled every
 * shutdown_deletion_interval up to shutdown_deletion_retries), then
 * plugin_host_stop(), then cb (may be NULL) from the loop; the fleet may
 * be freed from cb.  0, or FL_ERR_AGAIN when already stopping.
 */
int fleet_stop(struct fleet *f, int delete_instances, fleet_stop_fn cb,
    void *arg);

/* Free (a running plugin is killed: fleet_stop() first).  NULL: no-op. */
void fleet_free(struct fleet *f);

/* Jobs: as scaler_reserve() / scaler_unreserve(), at the current time. */
int fleet_reserve(struct fleet *f, scaler_key *key);
int fleet_unreserve(struct fleet *f, scaler_key key);

/*
 * A job came for key: cb will tell (from the loop) GRANTED, then maybe
 * CANCELLED; or TIMED_OUT.  0, or the scaler's error (FL_ERR_NOTFOUND),
 * FL_ERR_EXISTS when key already has a callback, FL_ERR_CLOSED when
 * stopping.
 */
int fleet_acquire(struct fleet *f, scaler_key key, fleet_acquire_fn cb,
    void *arg);

/* The job ended: no more callbacks for key.  0 or FL_ERR_NOTFOUND. */
int fleet_release(struct fleet *f, scaler_key key);

/*
 * The instance's ConnectInfo, from the cache while not expired, else from
 * the plugin (and cached).  cb runs once from the loop.  0, or
 * FL_ERR_AGAIN (plugin restarting), FL_ERR_CLOSED, FL_ERR_INVAL; then cb
 * never runs.
 */
int fleet_connect_info(struct fleet *f, const char *instance_id,
    fleet_connect_info_fn cb, void *arg);

/*
 * A connection to instance id from its ConnectInfo and the runner's
 * connector_config (static credentials, protocol_port, keepalive,
 * timeout, use_external_addr).  The host key pinned for id by an earlier
 * connection (fleet_pin()) is required.  NULL with why when the params
 * are unusable.  cb as conn_new()'s (may be NULL).
 */
struct conn *fleet_connect(struct fleet *f, const char *id,
    const struct plugin_connect_info *ci, conn_state_cb cb, void *arg,
    char *why, size_t whylen);
/* Record the host key a connection to id saw (the first one wins in
 * practice: later connections are made with it pinned). */
void fleet_pin(struct fleet *f, const char *id, const char *fingerprint);

/* New policies (SIGHUP): scaler_set_policies(); 0 or FL_ERR_INVAL. */
int fleet_set_policies(struct fleet *f, const struct config_policy *p,
    size_t n, char *err, size_t errlen);

/* The scaler (read its state, scaler_restore() before fleet_start()). */
struct scaler *fleet_scaler(struct fleet *f);
struct plugin_host *fleet_plugin_host(struct fleet *f);

/* Unix time in ns, as the fleet feeds the scaler. */
int64_t fleet_now(void);

#endif
