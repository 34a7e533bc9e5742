/*
 * fleeting-plugin-local: a fleeting provider for one machine.  Its
 * instances are sshd processes on loopback addresses (local_group.c); the
 * Docker engine "on" each instance is this machine's own.  It exists so
 * that flotilla can be run, demonstrated and tested end to end without a
 * cloud, through exactly the plugin protocol the cloud plugins speak.
 *
 * This file is only the glue between the SDK's callbacks and the group.
 */
#include <stdio.h>
#include <string.h>

#include "local_config.h"
#include "local_group.h"
#include "log.h"
#include "plugin_sdk.h"

#define PLUGIN_NAME "fleeting-plugin-local"

/* Set by a successful init, which the SDK runs before any other call. */
static struct local_group *group;

static int
local_init(void *arg, const json_t *config,
    const struct plugin_connector *settings,
    struct plugin_provider_info *info, char *err, size_t errlen)
{
	struct local_config cfg;
	int rc;

	(void)arg;
	if (settings->protocol != NULL &&
	    strcmp(settings->protocol, "ssh") != 0) {
		(void)snprintf(err, errlen, "connector protocol %s: this plugin "
		    "serves ssh only", settings->protocol);
		return PLUGIN_BAD_CONFIG;
	}
	if (settings->os != NULL && strcmp(settings->os, "linux") != 0) {
		(void)snprintf(err, errlen, "connector os %s: instances of this "
		    "plugin run linux", settings->os);
		return PLUGIN_BAD_CONFIG;
	}
	if (local_config_load(config, &cfg, err, errlen) != 0)
		return PLUGIN_BAD_CONFIG;
	(void)snprintf(info->id, sizeof(info->id), "local/%s", cfg.name);
	group = local_group_new(&cfg, settings, &rc, err, errlen);
	local_config_release(&cfg);
	if (group == NULL)
		return rc;
	info->max_size = local_group_max_size(group);
	return PLUGIN_OK;
}

static int
local_update(void *arg, plugin_emit_fn emit, void *emit_arg, char *err,
    size_t errlen)
{
	(void)arg;
	(void)err;
	(void)errlen;
	local_group_update(group, emit, emit_arg);
	return PLUGIN_OK;
}

static int
local_increase(void *arg, int64_t delta, int64_t *succeeded, char *err,
    size_t errlen)
{
	(void)arg;
	return local_group_increase(group, delta, succeeded, err, errlen);
}

static int
local_decrease(void *arg, const char *const *ids, size_t n, bool *succeeded,
    char *err, size_t errlen)
{
	(void)arg;
	return local_group_decrease(group, ids, n, succeeded, err, errlen);
}

static int
local_connect_info(void *arg, const char *id, struct plugin_connect_info *out,
    char *err, size_t errlen)
{
	(void)arg;
	return local_group_connect_info(group, id, out, err, errlen);
}

static int
local_heartbeat(void *arg, const char *id, char *err, size_t errlen)
{
	(void)arg;
	return local_group_heartbeat(group, id, err, errlen);
}

/* Instances belong to the group; only delete_on_shutdown ends them. */
static int
local_shutdown(void *arg, char *err, size_t errlen)
{
	struct local_group *g = group;

	(void)arg;
	if (g == NULL || !local_group_delete_on_shutdown(g))
		return PLUGIN_OK;
	log_info("delete_on_shutdown: deleting every instance");
	return local_group_delete_all(g, err, errlen);
}

static void
local_release(void *arg)
{
	(void)arg;
	local_group_free(group);
	group = NULL;
}

static const struct plugin_ops local_ops = {
	.init = local_init,
	.update = local_update,
	.increase = local_increase,
	.decrease = local_decrease,
	.connect_info = local_connect_info,
	.heartbeat = local_heartbeat,
	.shutdown = local_shutdown,
	.release = local_release,
};

int
main(int argc, char **argv)
{
	const struct plugin_def def = {
		.name = PLUGIN_NAME,
		.version = FL_VERSION,
		.revision = FL_GIT_REV,
		.help = local_config_help,
		.ops = &local_ops,
	};

	return plugin_serve(&def, argc, argv);
}
