/*
 * fleeting-plugin-aws: a fleeting provider for an EC2 Auto Scaling group,
 * configured as GitLab's official plugin is (plugin-aws/README.md).  The
 * cloud side is in aws_group.c (the group), aws_client.c (signed calls
 * with retries), aws_creds.c (the credential chain), aws_http.c (libcurl)
 * and aws_xml.c (the answers).
 *
 * This file is only the glue between the SDK's callbacks and the group,
 * plus the process-wide initialisation libcurl and libxml2 need before
 * any thread starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "aws_config.h"
#include "aws_group.h"
#include "aws_xml.h"
#include "log.h"
#include "plugin_sdk.h"

#define PLUGIN_NAME "fleeting-plugin-aws"

/* Set by a successful init, which the SDK runs before any other call. */
static struct aws_group *group;

static int
aws_init(void *arg, const json_t *config,
    const struct plugin_connector *settings,
    struct plugin_provider_info *info, char *err, size_t errlen)
{
	struct aws_config cfg;
	int rc;

	(void)arg;
	if (aws_config_load(config, &cfg, err, errlen) != 0)
		return PLUGIN_BAD_CONFIG;
	group = aws_group_new(&cfg, settings, info, &rc, err, errlen);
	aws_config_release(&cfg);
	return group == NULL ? rc : PLUGIN_OK;
}

static int
aws_update(void *arg, plugin_emit_fn emit, void *emit_arg, char *err,
    size_t errlen)
{
	(void)arg;
	return aws_group_update(group, emit, emit_arg, err, errlen);
}

static int
aws_increase(void *arg, int64_t delta, int64_t *succeeded, char *err,
    size_t errlen)
{
	(void)arg;
	return aws_group_increase(group, delta, succeeded, err, errlen);
}

static int
aws_decrease(void *arg, const char *const *ids, size_t n, bool *succeeded,
    char *err, size_t errlen)
{
	(void)arg;
	return aws_group_decrease(group, ids, n, succeeded, err, errlen);
}

static int
aws_connect_info(void *arg, const char *id, struct plugin_connect_info *out,
    char *err, size_t errlen)
{
	(void)arg;
	return aws_group_connect_info(group, id, out, err, errlen);
}

static int
aws_heartbeat(void *arg, const char *id, char *err, size_t errlen)
{
	(void)arg;
	return aws_group_heartbeat(group, id, err, errlen);
}

/* Instances belong to the group and Instance Connect keys expire by
 * themselves: nothing to clean up. */
static int
aws_shutdown(void *arg, char *err, size_t errlen)
{
	(void)arg;
	(void)err;
	(void)errlen;
	return PLUGIN_OK;
}

static void
aws_release(void *arg)
{
	(void)arg;
	aws_group_free(group);
	group = NULL;
}

static const struct plugin_ops aws_ops = {
	.init = aws_init,
	.update = aws_update,
	.increase = aws_increase,
	.decrease = aws_decrease,
	.connect_info = aws_connect_info,
	.heartbeat = aws_heartbeat,
	.shutdown = aws_shutdown,
	.release = aws_release,
};

int
main(int argc, char **argv)
{
	const struct plugin_def def = {
		.name = PLUGIN_NAME,
		.version = FL_VERSION,
		.revision = FL_GIT_REV,
		.help = aws_config_help,
		.ops = &aws_ops,
	};
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "%s: curl_global_init failed\n", PLUGIN_NAME);
		return 1;
	}
	aws_xml_init();
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	rc = plugin_serve(&def, argc, argv);
	aws_xml_cleanup();
	curl_global_cleanup();
	return rc;
}
