/*
 * The run loop's connections to instances: one SSH connection and one
 * Docker client (through the tunnel) per instance, shared by every job
 * that lands there, as fleeting's connector does.  A job asks for its
 * instance (instconn_get), uses the Docker client, and gives it back
 * (instconn_put).  A connection nobody uses is kept for
 * INSTCONN_IDLE_NS, so the next job on a warm instance starts without a
 * handshake, then closed; one whose instance went away is closed as soon
 * as its last job lets go.
 *
 * The host key seen first is pinned in the fleet (fleet_pin) for the
 * instance's life; a reconnect to the same instance must show it again.
 * Everything runs on the owner's loop; callbacks come from the loop,
 * never from inside a call here.
 */
#ifndef FL_INSTCONN_H
#define FL_INSTCONN_H

#include <stdint.h>

struct event_base;
struct fleet;
struct config_runner;
struct docker;
struct instconn_pool;
struct instconn;
struct instconn_wait;

#define INSTCONN_IDLE_NS	(INT64_C(300) * 1000000000)

/*
 * The instance's connection is up (err 0, ic to use, then instconn_put),
 * or could not be made (err < 0, msg says why; no secrets; ic NULL).
 */
typedef void (*instconn_cb)(void *arg, int err, const char *msg,
    struct instconn *ic);

struct instconn_pool *instconn_pool_new(struct event_base *base,
    struct fleet *f, const struct config_runner *rc);
/* Closes every connection (jobs still using one see Docker errors).  The
 * waiters are dropped without callbacks.  NULL: no-op. */
void instconn_pool_free(struct instconn_pool *p);

/* cb runs once from the loop unless the wait is cancelled first. */
struct instconn_wait *instconn_get(struct instconn_pool *p, const char *id,
    instconn_cb cb, void *arg);
void instconn_wait_cancel(struct instconn_wait *w);

struct docker *instconn_docker(struct instconn *ic);
const char *instconn_id(const struct instconn *ic);
/* The connection went down since it was handed out. */
int instconn_broken(const struct instconn *ic);
/* Done with it.  NULL: no-op. */
void instconn_put(struct instconn *ic);

/* The instance is gone: its connection is closed when unused, and the
 * next instconn_get() of id makes a new one. */
void instconn_drop(struct instconn_pool *p, const char *id);

/* Connections open (for metrics and tests). */
int instconn_count(const struct instconn_pool *p);

#endif
