/*
 * The manager's side of a fleeting plugin: find the binary, start it, do
 * go-plugin's handshake, speak the InstanceGroup protocol to it
 * (proto/fleeting.proto) without ever blocking the event loop, relay its
 * logs, and keep it running: a plugin that crashes is restarted with
 * exponential back-off, re-initialised, and its owner (the scaler glue) is
 * handed a fresh instance list to reconcile.  One plugin_host per
 * [[runners]] entry, one child process per plugin_host.
 *
 * Everything runs on the owner's event_base (one loop; calls complete
 * through lib/rpc's channel onto it).  Process details: spawn.h (own
 * process group, PDEATHSIG=SIGKILL, exec errors synchronous) and child.h
 * (SIGCHLD).  The supervision state machine is described at the top of
 * plugin_host.c.
 *
 * Calls.  Each wrapper returns 0 when the call was sent (its callback then
 * runs exactly once, later, on the loop) or a negative error when it was
 * not (the callback never runs):
 *   FL_ERR_AGAIN   the plugin is starting or restarting (STARTING,
 *                  BACKOFF): calls are not queued; retry after on_ready /
 *                  on_restart.  Chosen over queueing so that nothing the
 *                  owner decided on a stale instance list reaches a freshly
 *                  restarted plugin before the owner has reconciled.
 *   FL_ERR_CLOSED  not started, stopping, stopped or failed.
 *   FL_ERR_INVAL   bad arguments.
 * A call in flight when the plugin dies completes with rc FL_ERR_CLOSED
 * ("plugin exited ..."): an Increase cut short that way reports failure,
 * never success; whatever it did create shows in the Update that follows
 * the restart (on_restart), so nothing is forgotten or created twice as
 * long as the owner counts instances from Update results.
 *
 * Deadlines (the values proto/README.md documents): Init 1 min, Update
 * 30 s, Increase 1 min, Decrease 1 min, ConnectInfo 30 s, Heartbeat 10 s,
 * Shutdown 30 s; health check 10 s; controller Shutdown 2 s; handshake
 * line 1 min.
 *
 * Message size: answers over max_msg_bytes (default 16 MiB) fail that call
 * with rc FL_ERR_TOOBIG and a message naming the limit.  The connection
 * survives (gRPC frames messages, so an oversize one is discarded whole
 * and the stream stays in sync); the plugin is not restarted for it.
 *
 * Callbacks must not call plugin_host_free() on their own host, except
 * the stop callback, which is the last thing the host does.
 */
#ifndef FL_PLUGIN_HOST_H
#define FL_PLUGIN_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "rpc.h"

struct event_base;
struct plugin_host;

#define PLUGIN_DEADLINE_INIT_MS		60000
#define PLUGIN_DEADLINE_UPDATE_MS	30000
#define PLUGIN_DEADLINE_INCREASE_MS	60000
#define PLUGIN_DEADLINE_DECREASE_MS	60000
#define PLUGIN_DEADLINE_CONNECT_INFO_MS	30000
#define PLUGIN_DEADLINE_HEARTBEAT_MS	10000
#define PLUGIN_DEADLINE_SHUTDOWN_MS	30000
#define PLUGIN_DEADLINE_HEALTH_MS	10000
#define PLUGIN_DEADLINE_CONTROLLER_MS	2000
#define PLUGIN_HANDSHAKE_TIMEOUT_MS	60000
#define PLUGIN_MAX_MSG			(16u * 1024 * 1024)
#define PLUGIN_BACKOFF_BASE_MS		1000
#define PLUGIN_BACKOFF_MAX_MS		60000
#define PLUGIN_STABLE_MS		60000	/* running this long resets the tally */
#define PLUGIN_MAX_FAILURES		10	/* consecutive: then FAILED */
#define PLUGIN_STOP_GRACE_MS		2000	/* after Shutdown: exit by itself */
#define PLUGIN_KILL_GRACE_MS		5000	/* after SIGTERM: then SIGKILL */
/* Plugin output relayed to the log: lines a second, burst. */
#define PLUGIN_LOG_RATE			100
#define PLUGIN_LOG_BURST		1000

enum plugin_host_state {
	PLUGIN_HOST_NEW,	/* created, not started */
	PLUGIN_HOST_STARTING,	/* spawned: handshake, Init, first Update */
	PLUGIN_HOST_READY,	/* calls accepted */
	PLUGIN_HOST_BACKOFF,	/* crashed or failed to start; waiting */
	PLUGIN_HOST_STOPPING,	/* Shutdown, then signals */
	PLUGIN_HOST_STOPPED,	/* process gone after plugin_host_stop() */
	PLUGIN_HOST_FAILED	/* gave up after max_failures */
};

const char *plugin_host_state_name(enum plugin_host_state s);

/* Start-up phases, for on_phase (plugin-test prints them as steps). */
enum plugin_phase {
	PLUGIN_PHASE_HANDSHAKE,	/* spawn to a valid handshake line */
	PLUGIN_PHASE_HEALTH,	/* grpc.health.v1 Check "plugin" */
	PLUGIN_PHASE_INIT,	/* Init */
	PLUGIN_PHASE_SYNC	/* the Update that follows Init */
};

const char *plugin_phase_name(enum plugin_phase p);

/* An instance's state as the plugin reports it (fleeting.proto values). */
enum plugin_istate {
	PLUGIN_I_CREATING = 1,
	PLUGIN_I_RUNNING = 2,
	PLUGIN_I_DELETING = 3,
	PLUGIN_I_DELETED = 4,
	PLUGIN_I_TIMEOUT = 5
};

const char *plugin_istate_name(enum plugin_istate s);

struct plugin_instance {
	char *id;
	enum plugin_istate state;
	char *cause;		/* "" when none */
};

/* Update's answer; instances with an unknown state or an empty id are
 * left out. */
struct plugin_instances {
	struct plugin_instance *v;
	size_t n;
};

/* ProviderInfo from Init. */
struct plugin_info {
	char *id;
	int64_t max_size;
	char *version;
	char *build_info;
	char **capabilities;
	size_t ncapabilities;
};

/* ConnectInfo's answer.  password and key are secrets. */
struct plugin_connect_info {
	char *id;
	char *os;
	char *arch;
	char *protocol;
	int port;		/* 0: the protocol's default */
	char *username;
	char *password;
	uint8_t *key;		/* PEM, key_len bytes, not NUL-terminated */
	size_t key_len;
	int use_static_credentials;
	int64_t keepalive_ns;
	int64_t timeout_ns;
	char *external_addr;
	char *internal_addr;
	int64_t expires_unix_ns;	/* 0: never */
};

/* A deep copy (for an owner that keeps it) and its release (wipes the
 * secrets).  free(NULL) is a no-op. */
struct plugin_connect_info *plugin_connect_info_dup(
    const struct plugin_connect_info *ci);
void plugin_connect_info_free(struct plugin_connect_info *ci);

/*
 * A call's outcome.  rc: 0 or FL_ERR_* (FL_ERR_TIMEOUT deadline,
 * FL_ERR_CLOSED plugin gone/unavailable, FL_ERR_TOOBIG oversize answer,
 * FL_ERR_PROTO undecodable answer or plugin error, FL_ERR_NOTFOUND also
 * for UNIMPLEMENTED: read code).  code: the gRPC code (RPC_*), or -1 when
 * the failure is local (the plugin exited).  msg: human text, "" on OK.
 */
struct plugin_status {
	int rc;
	int code;
	char msg[RPC_MSG_MAX];
};

/* Data passed to callbacks is owned by the host and valid during the
 * callback only. */
typedef void (*plugin_update_fn)(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst);
typedef void (*plugin_increase_fn)(void *arg, const struct plugin_status *st,
    int64_t succeeded, const char *partial_error);
typedef void (*plugin_decrease_fn)(void *arg, const struct plugin_status *st,
    char *const *succeeded, size_t nsucceeded, const char *partial_error);
typedef void (*plugin_connect_info_fn)(void *arg,
    const struct plugin_status *st, const struct plugin_connect_info *ci);
typedef void (*plugin_done_fn)(void *arg, const struct plugin_status *st);

struct plugin_host_cbs {
	/*
	 * First successful start: handshake, Init, and the Update that
	 * follows it (ust its status, inst its instances, NULL if it failed).
	 */
	void (*on_ready)(void *arg, struct plugin_host *h,
	    const struct plugin_info *info, const struct plugin_status *ust,
	    const struct plugin_instances *inst);
	/* The same after a restart: reconcile the instance list. */
	void (*on_restart)(void *arg, struct plugin_host *h,
	    const struct plugin_info *info, const struct plugin_status *ust,
	    const struct plugin_instances *inst);
	/* Gave up (FAILED) after max_failures consecutive failures. */
	void (*on_failed)(void *arg, struct plugin_host *h,
	    const char *reason);
	/* Optional: every state change. */
	void (*on_state)(void *arg, struct plugin_host *h,
	    enum plugin_host_state from, enum plugin_host_state to);
	/* Optional: a start-up phase ended (error NULL: it succeeded). */
	void (*on_phase)(void *arg, struct plugin_host *h,
	    enum plugin_phase phase, int64_t elapsed_ns, const char *error);
};

struct plugin_host_opts {
	const char *path;		/* the executable (plugin_resolve) */
	const char *name;		/* plugin=NAME in logs; NULL: basename */
	const char *plugin_config_json;	/* Init's plugin_config; NULL: "{}" */
	/* Init's settings; NULL: empty.  key_path is read by
	 * plugin_host_new (an unreadable key is an error there). */
	const struct config_connector *connector;
	const char *socket_parent;	/* NULL: $TMPDIR, else /tmp */
	/* 0 means the default (the PLUGIN_* constants above). */
	int handshake_timeout_ms;
	int init_timeout_ms;
	int call_timeout_ms;		/* > 0: every call's deadline (tests) */
	int backoff_base_ms;
	int backoff_max_ms;
	int stable_ms;
	int max_failures;
	int stop_grace_ms;
	int kill_grace_ms;
	size_t max_msg_bytes;
	struct plugin_host_cbs cbs;
	void *cb_arg;
};

/*
 * Create a host (no process yet).  Takes a child.h reference on base.
 * NULL with a message in err when the options are unusable (no path,
 * unreadable key_path, base already used by child.h for another base).
 */
struct plugin_host *plugin_host_new(struct event_base *base,
    const struct plugin_host_opts *o, char *err, size_t errlen);

/*
 * Start the plugin (from NEW, STOPPED or FAILED; the failure tally is
 * reset).  The spawn is synchronous: a binary that cannot be executed is
 * an error here ("cannot run /path: No such file or directory") and the
 * state does not change.  Otherwise 0: the host is STARTING and on_ready
 * (or, failing that repeatedly, on_failed) follows.
 */
int plugin_host_start(struct plugin_host *h, char *err, size_t errlen);

/* How the process ended in a stop. */
enum plugin_exit_how {
	PLUGIN_EXIT_NONE,	/* there was no process */
	PLUGIN_EXIT_SELF,	/* exited by itself after Shutdown */
	PLUGIN_EXIT_TERM,	/* needed SIGTERM */
	PLUGIN_EXIT_KILL	/* needed SIGKILL */
};

struct plugin_stop_result {
	/* InstanceGroup.Shutdown's outcome; rc FL_ERR_AGAIN when it was not
	 * called (the plugin was not ready). */
	struct plugin_status shutdown;
	enum plugin_exit_how how;
	int status;		/* wait status, when how != NONE */
};

typedef void (*plugin_stop_fn)(void *arg, struct plugin_host *h,
    const struct plugin_stop_result *r);

/*
 * Stop: InstanceGroup.Shutdown (when READY), then controller Shutdown,
 * then up to stop_grace for the process to exit, then SIGTERM to its
 * process group, then SIGKILL after kill_grace; the socket directory is
 * removed.  cb (may be NULL) runs once when the process is reaped and
 * its pipes closed (from the loop, never from inside this call); the
 * host is then STOPPED and may be freed from cb.  In-flight calls
 * complete with FL_ERR_CLOSED.  0, or FL_ERR_AGAIN when already stopping.
 */
int plugin_host_stop(struct plugin_host *h, plugin_stop_fn cb, void *arg);

/*
 * Free the host.  A process still running is killed at once (SIGKILL to
 * its group) and reaped synchronously: use plugin_host_stop() first for
 * a clean stop.  Calls in flight are dropped without their callbacks.
 * NULL is a no-op.
 */
void plugin_host_free(struct plugin_host *h);

enum plugin_host_state plugin_host_state(const struct plugin_host *h);
/* The running plugin's pid, or -1. */
pid_t plugin_host_pid(const struct plugin_host *h);
/* ProviderInfo of the last successful Init, or NULL. */
const struct plugin_info *plugin_host_info(const struct plugin_host *h);
/* The last start failure or crash, "" if none. */
const char *plugin_host_last_error(const struct plugin_host *h);
/* Completed restarts (READY again after a crash or failed start). */
unsigned plugin_host_restarts(const struct plugin_host *h);
/* Consecutive failures counted towards max_failures. */
unsigned plugin_host_failures(const struct plugin_host *h);
/* The private socket directory (exists while a process may run). */
const char *plugin_host_socket_dir(const struct plugin_host *h);
const char *plugin_host_name(const struct plugin_host *h);

int plugin_host_update(struct plugin_host *h, plugin_update_fn cb,
    void *arg);
int plugin_host_increase(struct plugin_host *h, int64_t delta,
    plugin_increase_fn cb, void *arg);
int plugin_host_decrease(struct plugin_host *h, const char *const *ids,
    size_t nids, plugin_decrease_fn cb, void *arg);
int plugin_host_connect_info(struct plugin_host *h, const char *id,
    plugin_connect_info_fn cb, void *arg);
/* Heartbeat: code RPC_FAILED_PRECONDITION means unhealthy, RPC_NOT_FOUND
 * unknown instance, RPC_UNIMPLEMENTED capability absent (healthy). */
int plugin_host_heartbeat(struct plugin_host *h, const char *id,
    plugin_done_fn cb, void *arg);
/* InstanceGroup.Shutdown alone (plugin_host_stop() calls it itself). */
int plugin_host_shutdown(struct plugin_host *h, plugin_done_fn cb,
    void *arg);

/* ----------------------------------------------------------- resolving */

/*
 * The executable name for a plugin reference: "aws" ->
 * "fleeting-plugin-aws", "googlecloud" and "googlecompute" ->
 * "fleeting-plugin-googlecompute", "azure", "local" likewise,
 * "fleeting-plugin-x" as is, any other NAME -> "fleeting-plugin-NAME".
 * GitLab's OCI forms ("[registry/]repository/NAME[:constraint]") are
 * reduced to NAME: flotilla does not install plugins.  Returns a string
 * to free, or NULL for an empty or unusable reference.
 */
char *plugin_binary_name(const char *ref);

/*
 * Find the executable for ref.  An absolute path is returned as is (its
 * absence is reported by the spawn); "./x" and "../x" likewise, and a
 * relative path with a '/' that names an executable file.  Other
 * references are looked up by plugin_binary_name() in each of dirs, then
 * in each directory of pathenv (a $PATH-style list; NULL: none).  Returns
 * 0 and *path (to free), or FL_ERR_NOTFOUND with err listing every place
 * looked at, FL_ERR_INVAL for a bad reference.
 */
int plugin_resolve_in(const char *ref, const char *const *dirs, size_t ndirs,
    const char *pathenv, char **path, char *err, size_t errlen);

/* plugin_resolve_in() over the default places: the flotilla binary's own
 * directory (/proc/self/exe), /usr/lib/flotilla/plugins, each directory
 * of $FLEETING_PLUGIN_PATH, then $PATH. */
int plugin_resolve(const char *ref, char **path, char *err, size_t errlen);

#endif
