/*
 * fleeting-plugin-aws's credentials and region, found as the AWS SDKs'
 * default chain finds them, so that a runner host configured for the
 * official plugin (or the aws CLI) works unchanged:
 *
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 *      AWS_SESSION_TOKEN (or the legacy AWS_SECURITY_TOKEN);
 *   2. web identity from the environment: AWS_WEB_IDENTITY_TOKEN_FILE +
 *      AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME) through STS
 *      AssumeRoleWithWebIdentity, an unsigned Query call (endpoint
 *      AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or
 *      https://sts.REGION.amazonaws.com); the token file is read again at
 *      each refresh (Kubernetes rotates it);
 *   3. the shared files (INI, read with inih): the credentials file's
 *      [NAME] section, then the config file's [profile NAME] ([default]
 *      for the default profile); NAME is plugin_config's profile, else
 *      AWS_PROFILE, else "default".  Files: plugin_config's
 *      credentials_file/config_file, else AWS_SHARED_CREDENTIALS_FILE /
 *      AWS_CONFIG_FILE, else ~/.aws/credentials and ~/.aws/config.  A
 *      missing file is no error; a profile named explicitly that neither
 *      file has is.  A profile may instead name role_arn +
 *      web_identity_token_file (web identity as in 2);
 *   4. the instance metadata service, IMDSv2 only: PUT /latest/api/token,
 *      then /latest/meta-data/iam/security-credentials/[ROLE]
 *      (AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254,
 *      or http://[fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
 *      =IPv6; AWS_EC2_METADATA_DISABLED=true turns it off).
 *
 * As in aws-sdk-go-v2 (which the official plugin uses), a profile named
 * in plugin_config pins the chain to that profile: 1 and 2 are skipped
 * (AWS_PROFILE does not pin).
 *
 * The region: plugin_config's region, AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's region, else IMDS's /latest/meta-data/placement/region.
 *
 * Temporary keys (web identity, IMDS) are fetched again before they
 * expire: when less than min(5 min, half their lifetime) is left.  One
 * thread fetches at a time; others wait for its result.  Secrets are
 * registered with lib/log (log_add_secret) so that they can never show
 * in a log line, and wiped before they are freed.
 */
#ifndef FL_AWS_CREDS_H
#define FL_AWS_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "aws_http.h"

/* Longest web identity token file read. */
#define AWS_TOKEN_FILE_MAX	(64 * 1024)
/* Refresh this long before expiry at most (see above). */
#define AWS_REFRESH_MARGIN	300

/* What a profile says (both files merged; the credentials file wins). */
struct aws_profile {
	bool found;
	char *region;
	char *akid;
	char *secret;
	char *token;
	char *role_arn;
	char *web_identity_token_file;
	char *role_session_name;
	char *source_profile;		/* unsupported sources, for messages */
	char *credential_process;
	char *sso;
};

void aws_profile_release(struct aws_profile *p);

/*
 * Read profile's section of an INI text into p, keeping what p already
 * has (call for the credentials file first).  config_style: sections are
 * [profile NAME] (and [default] / [profile default]); else [NAME].
 * 0, or FL_ERR_PARSE with "NAME:LINE: syntax error" in err (name is the
 * file name for messages).
 */
int aws_ini_parse(const char *text, const char *name, const char *profile,
    bool config_style, struct aws_profile *p, char *err, size_t errlen);
/* The same from a file; a file that does not exist is 0, p unchanged. */
int aws_ini_load(const char *path, const char *profile, bool config_style,
    struct aws_profile *p, char *err, size_t errlen);

enum aws_creds_source {
	AWS_CREDS_ENV = 1,
	AWS_CREDS_PROFILE,
	AWS_CREDS_WEB_IDENTITY,
	AWS_CREDS_IMDS
};

/* "environment", "shared files", "web identity", "instance metadata". */
const char *aws_creds_source_name(enum aws_creds_source s);

/* Init's options from plugin_config (NULL: not set). */
struct aws_creds_opts {
	const char *profile;
	const char *config_file;
	const char *credentials_file;
	const char *region;
};

struct aws_creds;

/*
 * Choose the region and the credential source (reading the files, and
 * IMDS when the region must come from it; keys themselves are fetched at
 * the first aws_creds_get).  http is borrowed and must outlive the
 * result.  NULL with a message in err (never a secret).
 */
struct aws_creds *aws_creds_new(struct aws_http *http,
    const struct aws_creds_opts *o, char *err, size_t errlen);
void aws_creds_free(struct aws_creds *c);

const char *aws_creds_region(const struct aws_creds *c);
enum aws_creds_source aws_creds_source(const struct aws_creds *c);
/* The profile name in use ("default" unless set). */
const char *aws_creds_profile(const struct aws_creds *c);

/*
 * A copy of the current keys in out (release with aws_keys_release),
 * fetching new ones first when none are held, they are due for refresh,
 * or force (after an answer said they expired).  0, or an FL_ERR_* code
 * with a message in err.  Thread-safe.
 */
int aws_creds_get(struct aws_creds *c, bool force, struct aws_keys *out,
    char *err, size_t errlen);

/* Whether keys fetched at fetched and expiring at expires (0: never) are
 * due for refresh at now. */
bool aws_creds_due(time_t expires, time_t fetched, time_t now);

#endif
