/*
 * fleeting-plugin-aws's plugin_config, the official plugin's keys: name
 * (the Auto Scaling group, required), profile, config_file,
 * credentials_file, region.  Anything else fails Init with "unknown key
 * X in plugin_config" (INVALID_ARGUMENT).  An optional key set to "" is
 * unset, as in the official plugin's Go struct.  plugin-aws/README.md
 * documents them.
 */
#ifndef FL_AWS_CONFIG_H
#define FL_AWS_CONFIG_H

#include <stddef.h>

#include <jansson.h>

/* An Auto Scaling group name is at most 255 characters. */
#define AWS_ASG_NAME_MAX 255

struct aws_config {
	char *name;			/* required */
	char *profile;			/* NULL: AWS_PROFILE or "default" */
	char *config_file;		/* NULL: AWS_CONFIG_FILE or ~/.aws/config */
	char *credentials_file;		/* NULL: AWS_SHARED_CREDENTIALS_FILE ... */
	char *region;			/* NULL: from the environment, profile, IMDS */
};

/*
 * Read and check config into c (zeroed first).  0, or FL_ERR_INVAL with
 * "key: reason" (or "unknown key X in plugin_config") in err; c is
 * released on failure.
 */
int aws_config_load(const json_t *config, struct aws_config *c, char *err,
    size_t errlen);
void aws_config_release(struct aws_config *c);

/* --help text listing the keys. */
extern const char aws_config_help[];

#endif
