/*
 * Unit tests for fleeting-plugin-aws's credential chain and region
 * (plugin-aws/aws_creds.c): INI parsing of both shared files ([profile x]
 * in config, [x] in credentials, long values past libinih's 200-byte
 * lines, comments, syntax errors), the chain's order (aws-sdk-go-v2's:
 * environment keys, environment web identity, the profile, IMDS; a
 * plugin_config profile pins the chain) and the region's (config,
 * AWS_REGION, AWS_DEFAULT_REGION, profile, IMDS), refresh timing, and
 * IMDSv2 and STS against a canned local server (tests/unit/aws_canned.h),
 * including a session refreshed once it is due.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../../plugin-aws/aws_creds.c"
#include "../../plugin-aws/aws_http.c"
#include "../../plugin-aws/aws_xml.c"
#include "aws_canned.h"

static char tmpdir[64];

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE",
	"AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_STS", "AWS_MAX_ATTEMPTS", NULL
};

/* A clean environment: no AWS variable, HOME empty, IMDS off. */
static int
setup(void **state)
{
	(void)state;
	for (size_t i = 0; aws_vars[i] != NULL; i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", tmpdir, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	return 0;
}

static char *
write_file(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* ------------------------------------------------------------- INI */

static const char config_text[] =
    "# the config file\n"
    "[default]\n"
    "region = us-west-2\n"
    "\n"
    "[profile build]\n"
    "region = eu-west-3 ; inline comment\n"
    "aws_access_key_id = AKIABUILD\n"
    "aws_secret_access_key = buildsecret\n"
    "s3 =\n"
    "  max_concurrent_requests = 20\n"
    "[profile  spaced]\n"
    "region=ap-south-1\n"
    "[build]\n"
    "region = not-this-one\n";

static const char creds_text[] =
    "[default]\n"
    "aws_access_key_id = AKIADEFAULT\n"
    "aws_secret_access_key = defaultsecret\n"
    "[ci]\n"
    "aws_access_key_id=AKIACI\n"
    "aws_secret_access_key=cisecret\n"
    "[profile ci]\n"
    "aws_access_key_id = AKIANOTTHIS\n";

static void
test_ini_config_style(void **state)
{
	struct aws_profile p = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(aws_ini_parse(config_text, "config", "build", true, &p,
	    err, sizeof(err)), 0);
	assert_true(p.found);
	assert_string_equal(p.region, "eu-west-3");
	assert_string_equal(p.akid, "AKIABUILD");
	assert_string_equal(p.secret, "buildsecret");
	aws_profile_release(&p);

	assert_int_equal(aws_ini_parse(config_text, "config", "default", true,
	    &p, err, sizeof(err)), 0);
	assert_true(p.found);
	assert_string_equal(p.region, "us-west-2");
	assert_null(p.akid);
	aws_profile_release(&p);

	assert_int_equal(aws_ini_parse(config_text, "config", "spaced", true,
	    &p, err, sizeof(err)), 0);
	assert_string_equal(p.region, "ap-south-1");
	aws_profile_release(&p);

	assert_int_equal(aws_ini_parse(config_text, "config", "nope", true, &p,
	    err, sizeof(err)), 0);
	assert_false(p.found);
	aws_profile_release(&p);
}

static void
test_ini_credentials_style(void **state)
{
	struct aws_profile p = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(aws_ini_parse(creds_text, "credentials", "ci", false,
	    &p, err, sizeof(err)), 0);
	assert_string_equal(p.akid, "AKIACI");
	assert_string_equal(p.secret, "cisecret");
	/* the config file fills only what is missing */
	assert_int_equal(aws_ini_parse(config_text, "config", "build", true,
	    &p, err, sizeof(err)), 0);
	assert_string_equal(p.akid, "AKIACI");
	assert_string_equal(p.region, "eu-west-3");
	aws_profile_release(&p);
}

/* A session token is far longer than libinih's 200-byte lines. */
static void
test_ini_long_values(void **state)
{
	struct aws_profile p = { 0 };
	char tok[1201], *text, err[256];

	(void)state;
	memset(tok, 'T', 1200);
	tok[1200] = '\0';
	tok[0] = 'F';
	text = xasprintf("[x]\naws_access_key_id = AKIAX\n"
	    "aws_secret_access_key = sec\naws_session_token = %s ; note\n"
	    "; %s\nregion = eu-north-1\n", tok, tok);
	assert_int_equal(aws_ini_parse(text, "credentials", "x", false, &p, err,
	    sizeof(err)), 0);
	assert_non_null(p.token);
	assert_string_equal(p.token, tok);
	assert_string_equal(p.region, "eu-north-1");
	aws_profile_release(&p);
	free(text);
}

static void
test_ini_errors(void **state)
{
	struct aws_profile p = { 0 };
	char err[256];
	char *path;

	(void)state;
	assert_int_equal(aws_ini_parse("[a]\nok = 1\nthis line is bad\n", "f",
	    "a", false, &p, err, sizeof(err)), FL_ERR_PARSE);
	assert_string_equal(err, "f:3: syntax error");
	aws_profile_release(&p);
	assert_int_equal(aws_ini_parse("[a]\nk = \x01" "0\n", "f", "a", false,
	    &p, err, sizeof(err)), FL_ERR_PARSE);
	aws_profile_release(&p);
	/* a missing file is no error */
	path = xasprintf("%s/does-not-exist", tmpdir);
	assert_int_equal(aws_ini_load(path, "a", false, &p, err, sizeof(err)),
	    0);
	assert_false(p.found);
	free(path);
}

/* ----------------------------------------------------------- chain */

static struct aws_creds *
new_creds(const struct aws_creds_opts *o, char *err, size_t errlen)
{
	static struct aws_http *http;

	if (http == NULL)
		http = aws_http_new();
	err[0] = '\0';
	return aws_creds_new(http, o, err, errlen);
}

static void
expect_keys(struct aws_creds *c, const char *akid, const char *secret,
    const char *token)
{
	struct aws_keys k;
	char err[256];

	assert_int_equal(aws_creds_get(c, false, &k, err, sizeof(err)), 0);
	assert_string_equal(k.akid, akid);
	assert_string_equal(k.secret, secret);
	if (token == NULL)
		assert_null(k.token);
	else
		assert_string_equal(k.token, token);
	aws_keys_release(&k);
}

static void
test_chain_env_first(void **state)
{
	char *cred = write_file("credentials", creds_text);
	char *cfg = write_file("config", config_text);
	struct aws_creds_opts o = { .credentials_file = cred,
	    .config_file = cfg };
	struct aws_creds *c;
	char err[256];

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_ENV);
	expect_keys(c, "AKIAENV", "envsecret", "envtoken");
	/* default profile's region from the config file */
	assert_string_equal(aws_creds_region(c), "us-west-2");
	aws_creds_free(c);

	/* half the pair is an error, not a silent fall-through */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	c = new_creds(&o, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY is not"));
	free(cred);
	free(cfg);
}

static void
test_chain_files(void **state)
{
	char *cred = write_file("credentials", creds_text);
	char *cfg = write_file("config", config_text);
	struct aws_creds_opts o = { .credentials_file = cred,
	    .config_file = cfg };
	struct aws_creds *c;
	char err[256];

	(void)state;
	/* default profile from the credentials file */
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_PROFILE);
	assert_string_equal(aws_creds_profile(c), "default");
	expect_keys(c, "AKIADEFAULT", "defaultsecret", NULL);
	aws_creds_free(c);

	/* plugin_config profile: [ci] of the credentials file */
	o.profile = "ci";
	o.region = "ca-central-1";
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	expect_keys(c, "AKIACI", "cisecret", NULL);
	assert_string_equal(aws_creds_region(c), "ca-central-1");
	aws_creds_free(c);

	/* [profile build] of the config file: keys and region */
	o.profile = "build";
	o.region = NULL;
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	expect_keys(c, "AKIABUILD", "buildsecret", NULL);
	assert_string_equal(aws_creds_region(c), "eu-west-3");
	aws_creds_free(c);

	/* AWS_PROFILE when plugin_config has none; env files when none */
	o.profile = NULL;
	o.credentials_file = NULL;
	o.config_file = NULL;
	setenv("AWS_PROFILE", "build", 1);
	setenv("AWS_CONFIG_FILE", cfg, 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	expect_keys(c, "AKIABUILD", "buildsecret", NULL);
	aws_creds_free(c);

	/* plugin_config profile beats AWS_PROFILE */
	o.profile = "ci";
	o.region = "eu-central-1";
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	expect_keys(c, "AKIACI", "cisecret", NULL);
	aws_creds_free(c);

	/* a profile neither file has is ignored, as by aws-sdk-go-v2: the
	 * chain goes on to IMDS (turned off here) */
	o.profile = "ghost";
	c = new_creds(&o, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "no AWS credentials"));
	assert_non_null(strstr(err, "profile ghost"));
	free(cred);
	free(cfg);
}

/*
 * The order of aws-sdk-go-v2: a profile named in plugin_config pins the
 * chain to it; else environment keys, then the environment's web
 * identity, then the profile (AWS_PROFILE does not pin).
 */
static void
test_chain_order(void **state)
{
	char *cred = write_file("credentials", creds_text);
	char *tok = write_file("webtoken", "eyJhbGciOi.token.sig\n");
	struct aws_creds_opts o = { .credentials_file = cred,
	    .region = "eu-west-1" };
	struct aws_creds *c;
	char err[256];

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);

	/* plugin_config profile: the environment is ignored */
	o.profile = "ci";
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_PROFILE);
	expect_keys(c, "AKIACI", "cisecret", NULL);
	aws_creds_free(c);

	/* AWS_PROFILE does not pin: the environment's keys first */
	o.profile = NULL;
	setenv("AWS_PROFILE", "ci", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_ENV);
	aws_creds_free(c);

	/* then the environment's web identity, before the profile's keys */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_WEB_IDENTITY);
	aws_creds_free(c);

	/* without it, the profile */
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_PROFILE);
	expect_keys(c, "AKIACI", "cisecret", NULL);
	aws_creds_free(c);
	free(cred);
	free(tok);
}

static void
test_chain_home_files(void **state)
{
	char *dir = xasprintf("%s/.aws", tmpdir);
	struct aws_creds_opts o = { .region = "eu-west-1" };
	struct aws_creds *c;
	char err[256], *p;

	(void)state;
	mkdir(dir, 0700);
	p = write_file(".aws/credentials", "[default]\naws_access_key_id = "
	    "AKIAHOME\naws_secret_access_key = homesecret\n");
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	expect_keys(c, "AKIAHOME", "homesecret", NULL);
	aws_creds_free(c);
	unlink(p);
	free(p);
	rmdir(dir);
	free(dir);
}

static void
test_chain_nothing(void **state)
{
	struct aws_creds_opts o = { .region = "eu-west-1" };
	struct aws_creds *c;
	char err[512];

	(void)state;
	c = new_creds(&o, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "no AWS credentials"));

	/* unsupported profile sources are named */
	char *cfg = write_file("config3", "[profile r]\nrole_arn = arn:aws:iam::"
	    "1:role/x\nsource_profile = default\n");
	o.config_file = cfg;
	o.profile = "r";
	c = new_creds(&o, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "not supported"));
	free(cfg);
}

static void
test_region_order(void **state)
{
	char *cfg = write_file("config2", "[default]\nregion = from-profile-1\n"
	    "aws_access_key_id = A\naws_secret_access_key = B\n");
	struct aws_creds_opts o = { .config_file = cfg };
	struct aws_creds *c;
	char err[256];

	(void)state;
	c = new_creds(&o, err, sizeof(err));
	assert_string_equal(aws_creds_region(c), "from-profile-1");
	aws_creds_free(c);
	setenv("AWS_DEFAULT_REGION", "default-region-1", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_string_equal(aws_creds_region(c), "default-region-1");
	aws_creds_free(c);
	setenv("AWS_REGION", "aws-region-1", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_string_equal(aws_creds_region(c), "aws-region-1");
	aws_creds_free(c);
	o.region = "config-region-1";
	c = new_creds(&o, err, sizeof(err));
	assert_string_equal(aws_creds_region(c), "config-region-1");
	aws_creds_free(c);

	/* no region anywhere and IMDS off */
	char *cfg2 = write_file("config4", "[default]\naws_access_key_id = A\n"
	    "aws_secret_access_key = B\n");
	struct aws_creds_opts o2 = { .config_file = cfg2 };
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	c = new_creds(&o2, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "no AWS region"));
	free(cfg);
	free(cfg2);
}

static void
test_due(void **state)
{
	(void)state;
	assert_false(aws_creds_due(0, 100, 1000000));
	/* 6 h session: due 5 min before expiry */
	assert_false(aws_creds_due(21600, 0, 21600 - 301));
	assert_true(aws_creds_due(21600, 0, 21600 - 300));
	/* 8 s session: due at half its life */
	assert_false(aws_creds_due(108, 100, 103));
	assert_true(aws_creds_due(108, 100, 104));
	/* already expired */
	assert_true(aws_creds_due(100, 100, 100));
	assert_true(aws_creds_due(100, 50, 200));
}

/* -------------------------------------------- IMDS and web identity */

static char *
iso(time_t t)
{
	struct tm tm;
	char buf[32];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(buf);
}

static void
test_imds(void **state)
{
	time_t now = time(NULL);
	char *e1 = iso(now + 1), *e2 = iso(now + 21600);
	char *doc1 = xasprintf("200\n{\"Code\": \"Success\", \"Type\": "
	    "\"AWS-HMAC\", \"AccessKeyId\": \"ASIAIMDS1\", \"SecretAccessKey\": "
	    "\"imdssecret1\", \"Token\": \"imdstoken1\", \"Expiration\": \"%s\"}",
	    e1);
	char *doc2 = xasprintf("200\n{\"Code\": \"Success\", \"AccessKeyId\": "
	    "\"ASIAIMDS2\", \"SecretAccessKey\": \"imdssecret2\", \"Token\": "
	    "\"imdstoken2\", \"Expiration\": \"%s\"}", e2);
	const char *answers[] = {
		"200\nimds-session-token",	/* PUT token */
		"200\nrunner-role\n",		/* region? no: role list */
		NULL,				/* credentials 1 */
		"200\nrunner-role\n",
		NULL,				/* credentials 2 */
	};
	struct canned *srv;
	/* The seed document's plugin_config on an EC2 host with a role:
	 * profile "default" pinned, its files absent.  The environment's
	 * keys are not used (the profile pins the chain), IMDS is. */
	struct aws_creds_opts o = { .region = "eu-west-1",
	    .profile = "default",
	    .credentials_file = "/nonexistent/.aws/credentials",
	    .config_file = "/nonexistent/.aws/config" };
	struct aws_creds *c;
	char err[256], *url;

	(void)state;
	answers[2] = doc1;
	answers[4] = doc2;
	srv = canned_start(answers, 5);
	url = canned_url(srv);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	c = new_creds(&o, err, sizeof(err));
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_IMDS);
	expect_keys(c, "ASIAIMDS1", "imdssecret1", "imdstoken1");
	assert_int_equal(canned_count(srv), 3);
	assert_non_null(strstr(srv->requests[0], "PUT /latest/api/token"));
	assert_non_null(strstr(srv->requests[0],
	    "X-aws-ec2-metadata-token-ttl-seconds: 21600"));
	assert_non_null(strstr(srv->requests[1],
	    "GET /latest/meta-data/iam/security-credentials/ HTTP"));
	assert_non_null(strstr(srv->requests[1],
	    "X-aws-ec2-metadata-token: imds-session-token"));
	assert_non_null(strstr(srv->requests[2],
	    "GET /latest/meta-data/iam/security-credentials/runner-role"));
	/* a 1 s session is due at once: the next get refreshes */
	expect_keys(c, "ASIAIMDS2", "imdssecret2", "imdstoken2");
	assert_int_equal(canned_count(srv), 5);
	/* and then it is not due for hours */
	expect_keys(c, "ASIAIMDS2", "imdssecret2", "imdstoken2");
	assert_int_equal(canned_count(srv), 5);
	aws_creds_free(c);
	canned_stop(srv);
	free(url);
	free(doc1);
	free(doc2);
	free(e1);
	free(e2);
}

static void
test_imds_region(void **state)
{
	const char *answers[] = { "200\ntok", "200\nsa-east-1" };
	struct canned *srv = canned_start(answers, 2);
	char *url = canned_url(srv), err[256];
	struct aws_creds_opts o = { 0 };
	struct aws_creds *c;

	(void)state;
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(aws_creds_region(c), "sa-east-1");
	assert_non_null(strstr(srv->requests[1],
	    "GET /latest/meta-data/placement/region"));
	aws_creds_free(c);
	canned_stop(srv);
	free(url);
}

static void
test_web_identity(void **state)
{
	char *exp = iso(time(NULL) + 3600);
	char *ok = xasprintf("200\n<AssumeRoleWithWebIdentityResponse xmlns="
	    "\"https://sts.amazonaws.com/doc/2011-06-15/\">"
	    "<AssumeRoleWithWebIdentityResult><Credentials>"
	    "<SessionToken>ststoken</SessionToken><SecretAccessKey>stssecret"
	    "</SecretAccessKey><Expiration>%s</Expiration><AccessKeyId>ASIASTS"
	    "</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResponse>", exp);
	const char *answers[] = {
		"400\n<ErrorResponse><Error><Type>Sender</Type><Code>"
		"IDPCommunicationError</Code><Message>try again</Message>"
		"</Error></ErrorResponse>",
		NULL,
		"400\n<ErrorResponse><Error><Code>InvalidIdentityToken</Code>"
		"<Message>bad token</Message></Error></ErrorResponse>",
	};
	struct canned *srv;
	char *url, *tokfile, err[512];
	struct aws_creds_opts o = { .region = "eu-west-1" };
	struct aws_creds *c;
	struct aws_keys k;

	(void)state;
	answers[1] = ok;
	srv = canned_start(answers, 3);
	url = canned_url(srv);
	tokfile = write_file("webtoken", "eyJwebidentitytoken\n");
	setenv("AWS_ENDPOINT_URL_STS", url, 1);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokfile, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/runner", 1);
	setenv("AWS_ROLE_SESSION_NAME", "flotilla-test", 1);
	c = new_creds(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(aws_creds_source(c), AWS_CREDS_WEB_IDENTITY);
	/* IDPCommunicationError is retried */
	expect_keys(c, "ASIASTS", "stssecret", "ststoken");
	assert_int_equal(canned_count(srv), 2);
	const char *r = srv->requests[1];
	assert_non_null(strstr(r, "POST / HTTP/1.1"));
	assert_null(strstr(r, "Authorization:"));	/* unsigned */
	assert_non_null(strstr(r, "Action=AssumeRoleWithWebIdentity"));
	assert_non_null(strstr(r, "Version=2011-06-15"));
	assert_non_null(strstr(r, "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012"
	    "%3Arole%2Frunner"));
	assert_non_null(strstr(r, "RoleSessionName=flotilla-test"));
	assert_non_null(strstr(r, "WebIdentityToken=eyJwebidentitytoken&") ||
	    strstr(r, "WebIdentityToken=eyJwebidentitytoken\0"));
	/* forced refresh: the STS error comes back with its code, no token */
	assert_int_equal(aws_creds_get(c, true, &k, err, sizeof(err)),
	    FL_ERR_PROTO);
	assert_string_equal(err, "AssumeRoleWithWebIdentity: "
	    "InvalidIdentityToken: bad token");
	assert_null(strstr(err, "eyJweb"));
	aws_creds_free(c);
	canned_stop(srv);
	free(url);
	free(tokfile);
	free(ok);
	free(exp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ini_config_style, setup),
		cmocka_unit_test_setup(test_ini_credentials_style, setup),
		cmocka_unit_test_setup(test_ini_long_values, setup),
		cmocka_unit_test_setup(test_ini_errors, setup),
		cmocka_unit_test_setup(test_chain_env_first, setup),
		cmocka_unit_test_setup(test_chain_files, setup),
		cmocka_unit_test_setup(test_chain_order, setup),
		cmocka_unit_test_setup(test_chain_home_files, setup),
		cmocka_unit_test_setup(test_chain_nothing, setup),
		cmocka_unit_test_setup(test_region_order, setup),
		cmocka_unit_test_setup(test_due, setup),
		cmocka_unit_test_setup(test_imds, setup),
		cmocka_unit_test_setup(test_imds_region, setup),
		cmocka_unit_test_setup(test_web_identity, setup),
	};
	char cmd[128];
	int rc;

	(void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_aws_creds.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	aws_xml_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	(void)!system(cmd);
	curl_global_cleanup();
	log_release();
	return rc;
}
