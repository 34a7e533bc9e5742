/*
 * fleeting-plugin-aws's plugin_config (see aws_config.h): one row per key,
 * read with the SDK's helpers, then checked as a whole.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_config.h"
#include "err.h"
#include "plugin_sdk.h"

const char aws_config_help[] =
    "plugin_config keys (as the official fleeting-plugin-aws):\n"
    "  name              the Auto Scaling group (required)\n"
    "  profile           profile in the shared files (default: AWS_PROFILE, "
    "else \"default\")\n"
    "  config_file       shared config file (default: AWS_CONFIG_FILE, else "
    "~/.aws/config)\n"
    "  credentials_file  shared credentials file (default: "
    "AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials)\n"
    "  region            region (default: AWS_REGION, AWS_DEFAULT_REGION, "
    "the profile's, else the instance metadata's)\n";

static const char *const known_keys[] = {
	"name", "profile", "config_file", "credentials_file", "region", NULL
};

void
aws_config_release(struct aws_config *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->profile);
	free(c->config_file);
	free(c->credentials_file);
	free(c->region);
	memset(c, 0, sizeof(*c));
}

/* No control characters; at most max bytes; not empty. */
static int
check_text(const char *key, const char *v, size_t max, char *err,
    size_t errlen)
{
	size_t n = strlen(v);

	if (n == 0) {
		(void)snprintf(err, errlen, "%s: empty", key);
		return FL_ERR_INVAL;
	}
	if (n > max) {
		(void)snprintf(err, errlen, "%s: longer than %zu bytes", key, max);
		return FL_ERR_INVAL;
	}
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			(void)snprintf(err, errlen, "%s: control character", key);
			return FL_ERR_INVAL;
		}
	return 0;
}

static int
check_region(const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-') {
			(void)snprintf(err, errlen, "region: %.80s is not a "
			    "region name (such as eu-west-1)", v);
			return FL_ERR_INVAL;
		}
	return check_text("region", v, 64, err, errlen);
}

/*
 * An optional string key.  "" is unset, as the official plugin's Go
 * struct reads it (its zero value), so a config written for it loads.
 */
static int
opt_string(const json_t *config, const char *key, size_t max, char **out,
    char *err, size_t errlen)
{
	int rc = plugin_config_string(config, key, NULL, out, err, errlen);

	if (rc != 0 || *out == NULL)
		return rc;
	if ((*out)[0] == '\0') {
		free(*out);
		*out = NULL;
		return 0;
	}
	return check_text(key, *out, max, err, errlen);
}

int
aws_config_load(const json_t *config, struct aws_config *c, char *err,
    size_t errlen)
{
	int rc;

	memset(c, 0, sizeof(*c));
	rc = plugin_config_check_keys(config, known_keys, err, errlen);
	if (rc == 0)
		rc = plugin_config_string(config, "name", NULL, &c->name, err,
		    errlen);
	if (rc == 0 && c->name == NULL) {
		(void)snprintf(err, errlen, "name: required (the Auto Scaling "
		    "group's name)");
		rc = FL_ERR_INVAL;
	}
	if (rc == 0)
		rc = check_text("name", c->name, AWS_ASG_NAME_MAX, err, errlen);
	if (rc == 0)
		rc = opt_string(config, "profile", 255, &c->profile, err,
		    errlen);
	if (rc == 0)
		rc = opt_string(config, "config_file", 4096, &c->config_file,
		    err, errlen);
	if (rc == 0)
		rc = opt_string(config, "credentials_file", 4096,
		    &c->credentials_file, err, errlen);
	if (rc == 0)
		rc = opt_string(config, "region", 64, &c->region, err, errlen);
	if (rc == 0 && c->region != NULL)
		rc = check_region(c->region, err, errlen);
	if (rc != 0)
		aws_config_release(c);
	return rc;
}
