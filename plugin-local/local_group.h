/*
 * The instance group of fleeting-plugin-local: "instances" are OpenSSH
 * sshd listeners on loopback addresses of this machine, each in its own
 * directory under state_dir/instances/ID with its own host key, config,
 * authorized key, pid file and log, started in their own session so that
 * they outlive the plugin as a cloud's VMs outlive a crashed plugin.
 *
 * Life of an instance (the state Update reports in brackets):
 *
 *   Increase      records it: directory, instance.json   booting  [creating]
 *   boot_delay    passes; the worker makes the host key,
 *                 picks port 22 or a free one, starts sshd  starting [creating]
 *   sshd listens  (pid file written, LISTEN in /proc/net/tcp)  running [running]
 *   sshd never listens                                     failed   [timeout]
 *   Decrease      marks it; the worker ends sshd and
 *                 everything under it, removes the dir      deleting [deleting]
 *   sshd dies on its own (found by Update, ConnectInfo or
 *   Heartbeat)    not reported any more, dir removed       vanished [-]
 *
 * All slow work (ssh-keygen, starting and stopping sshd) happens on one
 * worker thread, outside the group's mutex, so Update is always quick.
 * instance.json is rewritten (atomically) at every change, under the
 * mutex; a plugin started again on the same state_dir re-adopts the
 * instances whose sshd still runs (pid file, /proc/PID/cmdline naming the
 * instance's sshd_config), resumes pending boots and deletions, and
 * forgets the rest.  A lock file keeps two plugins off one state_dir.
 */
#ifndef FL_LOCAL_GROUP_H
#define FL_LOCAL_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "local_config.h"
#include "plugin_sdk.h"

struct local_group;

/*
 * Set up the group of cfg (whose contents move into the group; cfg is
 * zeroed) with the manager's connector settings: state directory and its
 * lock, the key pair instances trust, the sshd_config check (sshd -t),
 * re-adoption, the worker thread.  NULL with a message in err and *rc set
 * to PLUGIN_BAD_CONFIG or PLUGIN_FAILED.
 */
struct local_group *local_group_new(struct local_config *cfg,
    const struct plugin_connector *settings, int *rc, char *err,
    size_t errlen);
/* Stop the worker and free; instances keep running.  NULL is a no-op. */
void local_group_free(struct local_group *g);

/* min(max_size, addresses in the range). */
int64_t local_group_max_size(const struct local_group *g);
/* The delete_on_shutdown setting. */
bool local_group_delete_on_shutdown(const struct local_group *g);

/* The plugin_ops callbacks (same contracts, see plugin_sdk.h). */
void local_group_update(struct local_group *g, plugin_emit_fn emit,
    void *emit_arg);
int local_group_increase(struct local_group *g, int64_t delta,
    int64_t *succeeded, char *err, size_t errlen);
int local_group_decrease(struct local_group *g, const char *const *ids,
    size_t n, bool *succeeded, char *err, size_t errlen);
int local_group_connect_info(struct local_group *g, const char *id,
    struct plugin_connect_info *out, char *err, size_t errlen);
int local_group_heartbeat(struct local_group *g, const char *id, char *err,
    size_t errlen);
/* Delete every instance and wait (25 s at most) until they are gone. */
int local_group_delete_all(struct local_group *g, char *err, size_t errlen);

#endif
