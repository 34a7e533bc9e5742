/*
 * fleeting-plugin-aws's credential chain and region (see aws_creds.h for
 * the order, which is the AWS SDKs').  The shared files are read with
 * inih; web identity and the instance metadata service go through
 * aws_http's exchange with their own small retry loops (their answers are
 * not signed, so aws_client's loop does not fit them).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>
#include <jansson.h>

#include "aws_creds.h"
#include "aws_xml.h"
#include "err.h"
#include "log.h"
#include "xmalloc.h"

/* ------------------------------------------------------------- INI */

void
aws_profile_release(struct aws_profile *p)
{
	if (p == NULL)
		return;
	free(p->region);
	free(p->akid);
	freezero_str(p->secret);
	freezero_str(p->token);
	free(p->role_arn);
	free(p->web_identity_token_file);
	free(p->role_session_name);
	free(p->source_profile);
	free(p->credential_process);
	free(p->sso);
	memset(p, 0, sizeof(*p));
}

/*
 * Debian's libinih reads lines of at most 200 bytes (INI_MAX_LINE), and
 * a session token alone is longer.  So before inih sees the text, the
 * value of every long "key = value" line is moved aside and replaced by
 * a marker ("\x01" and its index) that the handler looks up.
 */
#define INI_SHORT_LINE	150
#define LONG_MARK	'\x01'

struct ini_ctx {
	const char *profile;
	bool config_style;
	struct aws_profile *p;
	char **longv;		/* values moved aside */
	size_t nlong;
};

static void
trim(const char **b, const char **e)
{
	while (*b < *e && isspace((unsigned char)**b))
		(*b)++;
	while (*e > *b && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

/* The text with long values replaced by markers (a heap string). */
static char *
ini_prepare(const char *text, struct ini_ctx *ctx)
{
	struct sbuf out;
	const char *line = text;

	sbuf_init(&out);
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		const char *end = nl ? nl : line + strlen(line);
		const char *b = line, *e = end, *sep;
		size_t len = (size_t)(end - line);

		trim(&b, &e);
		sep = memchr(b, '=', (size_t)(e - b));
		if (sep == NULL)
			sep = memchr(b, ':', (size_t)(e - b));
		if (len <= INI_SHORT_LINE || b == e) {
			sbuf_add(&out, line, len);
		} else if (*b == ';' || *b == '#') {
			/* a long comment: dropped */
		} else if (sep != NULL && *b != '[') {
			const char *kb = b, *ke = sep, *vb = sep + 1, *ve = e;

			/* inih's inline comments: ";" after a blank. */
			for (const char *q = vb; q < ve; q++)
				if (*q == ';' && q > vb && isspace((unsigned char)q[-1])) {
					ve = q;
					break;
				}
			trim(&kb, &ke);
			trim(&vb, &ve);
			ctx->longv = xreallocarray(ctx->longv, ctx->nlong + 1,
			    sizeof(*ctx->longv));
			ctx->longv[ctx->nlong] = xstrndup(vb, (size_t)(ve - vb));
			sbuf_add(&out, kb, (size_t)(ke - kb));
			sbuf_addf(&out, " = %c%zu", LONG_MARK, ctx->nlong);
			ctx->nlong++;
		} else {
			sbuf_add(&out, line, len);	/* inih will complain */
		}
		sbuf_addch(&out, '\n');
		line = nl ? nl + 1 : end;
	}
	return sbuf_detach(&out, NULL);
}

/* Whether an INI section names the profile we want. */
static bool
section_matches(const struct ini_ctx *ctx, const char *section)
{
	const char *s = section;

	if (!ctx->config_style)
		return strcmp(s, ctx->profile) == 0;
	if (strcmp(s, "default") == 0)
		return strcmp(ctx->profile, "default") == 0;
	if (strncmp(s, "profile", 7) != 0 || !isspace((unsigned char)s[7]))
		return false;
	s += 7;
	while (isspace((unsigned char)*s))
		s++;
	return strcmp(s, ctx->profile) == 0;
}

static void
set_once(char **field, const char *v, bool secret)
{
	if (*field != NULL)
		return;
	*field = xstrdup(v);
	if (secret)
		log_add_secret(v);
}

static int
profile_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct ini_ctx *ctx = user;
	struct aws_profile *p = ctx->p;
	const char *v = value;

	if (!section_matches(ctx, section))
		return 1;
	p->found = true;
	if (name == NULL || value == NULL)
		return 1;
	if (v[0] == LONG_MARK) {
		char *end;
		unsigned long i = strtoul(v + 1, &end, 10);

		if (*end != '\0' || i >= ctx->nlong)
			return 0;
		v = ctx->longv[i];
	}
	if (strcasecmp(name, "region") == 0)
		set_once(&p->region, v, false);
	else if (strcasecmp(name, "aws_access_key_id") == 0)
		set_once(&p->akid, v, false);
	else if (strcasecmp(name, "aws_secret_access_key") == 0)
		set_once(&p->secret, v, true);
	else if (strcasecmp(name, "aws_session_token") == 0 ||
	    strcasecmp(name, "aws_security_token") == 0)
		set_once(&p->token, v, true);
	else if (strcasecmp(name, "role_arn") == 0)
		set_once(&p->role_arn, v, false);
	else if (strcasecmp(name, "web_identity_token_file") == 0)
		set_once(&p->web_identity_token_file, v, false);
	else if (strcasecmp(name, "role_session_name") == 0)
		set_once(&p->role_session_name, v, false);
	else if (strcasecmp(name, "source_profile") == 0 ||
	    strcasecmp(name, "credential_source") == 0)
		set_once(&p->source_profile, v, false);
	else if (strcasecmp(name, "credential_process") == 0)
		set_once(&p->credential_process, v, false);
	else if (strncasecmp(name, "sso_", 4) == 0)
		set_once(&p->sso, v, false);
	return 1;
}

int
aws_ini_parse(const char *text, const char *name, const char *profile,
    bool config_style, struct aws_profile *p, char *err, size_t errlen)
{
	struct ini_ctx ctx = {
		.profile = profile, .config_style = config_style, .p = p
	};
	char *prepared;
	int line;

	if (strchr(text, LONG_MARK) != NULL) {
		(void)snprintf(err, errlen, "%s: control character in the file",
		    name);
		return FL_ERR_PARSE;
	}
	prepared = ini_prepare(text, &ctx);
	line = ini_parse_string(prepared, profile_handler, &ctx);
	freezero_str(prepared);
	for (size_t i = 0; i < ctx.nlong; i++)
		freezero_str(ctx.longv[i]);
	free(ctx.longv);
	if (line != 0) {
		(void)snprintf(err, errlen, "%s:%d: syntax error", name, line);
		return FL_ERR_PARSE;
	}
	return 0;
}

/* Read a whole small file; NULL with errno set (ENOENT: no file). */
static char *
read_small_file(const char *path, size_t max, size_t *lenp)
{
	struct sbuf sb;
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	sbuf_init(&sb);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (sb.len + (size_t)n > max) {
			n = -1;
			errno = EFBIG;
			break;
		}
		sbuf_add(&sb, buf, (size_t)n);
	}
	explicit_bzero(buf, sizeof(buf));
	if (n < 0) {
		int e = errno;

		freezero(sb.buf, sb.cap);
		close(fd);
		errno = e;
		return NULL;
	}
	close(fd);
	if (lenp != NULL)
		*lenp = sb.len;
	return sbuf_detach(&sb, NULL);
}

int
aws_ini_load(const char *path, const char *profile, bool config_style,
    struct aws_profile *p, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	text = read_small_file(path, 1024 * 1024, &len);
	if (text == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return FL_ERR_IO;
	}
	if (memchr(text, '\0', len) != NULL) {
		(void)snprintf(err, errlen, "%s: NUL byte in the file", path);
		freezero(text, len);
		return FL_ERR_PARSE;
	}
	rc = aws_ini_parse(text, path, profile, config_style, p, err, errlen);
	freezero(text, len);
	return rc;
}

/* --------------------------------------------------------- the chain */

struct aws_creds {
	pthread_mutex_t lock;
	struct aws_http *http;
	enum aws_creds_source source;
	char *region;
	char *profile;
	struct aws_keys keys;		/* current; akid NULL: none yet */
	time_t fetched;
	/* web identity */
	char *role_arn;
	char *token_file;
	char *session_name;
	char *sts_endpoint;
	/* IMDS */
	char *imds;			/* base URL */
	char *imds_token;
	time_t imds_token_exp;
};

const char *
aws_creds_source_name(enum aws_creds_source s)
{
	switch (s) {
	case AWS_CREDS_ENV:
		return "environment";
	case AWS_CREDS_PROFILE:
		return "shared files";
	case AWS_CREDS_WEB_IDENTITY:
		return "web identity";
	case AWS_CREDS_IMDS:
		return "instance metadata";
	}
	return "?";
}

const char *
aws_creds_region(const struct aws_creds *c)
{
	return c->region;
}

enum aws_creds_source
aws_creds_source(const struct aws_creds *c)
{
	return c->source;
}

const char *
aws_creds_profile(const struct aws_creds *c)
{
	return c->profile;
}

bool
aws_creds_due(time_t expires, time_t fetched, time_t now)
{
	time_t margin;

	if (expires == 0)
		return false;
	margin = (expires - fetched) / 2;
	if (margin > AWS_REFRESH_MARGIN)
		margin = AWS_REFRESH_MARGIN;
	if (margin < 1)
		margin = 1;
	return now >= expires - margin;
}

static const char *
env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool
env_true(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

/* ~/.aws/NAME (HOME unset: /.aws/NAME, which will not exist). */
static char *
home_file(const char *name)
{
	const char *home = getenv("HOME");

	return xasprintf("%s/.aws/%s", home ? home : "", name);
}

/* ------------------------------------------------------------ IMDS */

#define IMDS_TTL	21600

/* One IMDS exchange, tried twice (IMDS is local: short timeouts). */
static int
imds_exchange(struct aws_creds *c, const char *method, const char *p,
    const char *const *headers, struct aws_http_resp *resp, char *err,
    size_t errlen)
{
	char *url = xasprintf("%s%s", c->imds, p);
	struct aws_http_req req = {
		.method = method, .url = url, .headers = headers,
		.timeout_ms = 2000, .connect_timeout_ms = 1000,
	};
	int rc = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		rc = aws_http_perform(c->http, &req, resp);
		if (rc == 0 && resp->status < 500)
			break;
	}
	free(url);
	if (rc != 0) {
		(void)snprintf(err, errlen, "instance metadata %s: %s", p,
		    resp->curl_err);
		return FL_ERR_IO;
	}
	return 0;
}

/* A session token for IMDSv2, kept until a minute before it expires. */
static int
imds_token(struct aws_creds *c, bool force, char *err, size_t errlen)
{
	static const char *const hdrs[] = {
		"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL
	};
	struct aws_http_resp resp;
	time_t now = time(NULL);
	int rc;

	if (!force && c->imds_token != NULL && now < c->imds_token_exp - 60)
		return 0;
	aws_http_resp_init(&resp);
	rc = imds_exchange(c, "PUT", "/latest/api/token", hdrs, &resp, err,
	    errlen);
	if (rc == 0 && resp.status != 200) {
		(void)snprintf(err, errlen, "instance metadata token: HTTP %ld",
		    resp.status);
		rc = FL_ERR_PROTO;
	}
	if (rc == 0) {
		const char *b = resp.body.buf, *e = b + resp.body.len;

		trim(&b, &e);
		if (e == b || e - b > 1024) {
			(void)snprintf(err, errlen, "instance metadata token: "
			    "empty or oversize answer");
			rc = FL_ERR_PROTO;
		} else {
			if (c->imds_token != NULL)
				log_remove_secret(c->imds_token);
			freezero_str(c->imds_token);
			c->imds_token = xstrndup(b, (size_t)(e - b));
			log_add_secret(c->imds_token);
			c->imds_token_exp = now + IMDS_TTL;
		}
	}
	explicit_bzero(resp.body.buf, resp.body.len);
	aws_http_resp_release(&resp);
	return rc;
}

/* GET an IMDS path with the session token into out (heap, trimmed). */
static int
imds_get(struct aws_creds *c, const char *p, char **out, char *err,
    size_t errlen)
{
	struct aws_http_resp resp;
	int rc = 0;

	aws_http_resp_init(&resp);
	for (int round = 0; round < 2; round++) {
		rc = imds_token(c, round > 0, err, errlen);
		if (rc != 0)
			break;
		char *h = xasprintf("X-aws-ec2-metadata-token: %s",
		    c->imds_token);
		const char *hdrs[] = { h, NULL };
		rc = imds_exchange(c, "GET", p, hdrs, &resp, err, errlen);
		freezero_str(h);
		if (rc != 0 || resp.status != 401)
			break;
	}
	if (rc == 0 && resp.status != 200) {
		(void)snprintf(err, errlen, "instance metadata %s: HTTP %ld", p,
		    resp.status);
		rc = resp.status == 404 ? FL_ERR_NOTFOUND : FL_ERR_PROTO;
	}
	if (rc == 0) {
		const char *b = resp.body.buf, *e = b + resp.body.len;

		trim(&b, &e);
		*out = xstrndup(b, (size_t)(e - b));
	}
	explicit_bzero(resp.body.buf, resp.body.len);
	aws_http_resp_release(&resp);
	return rc;
}

static int
imds_fetch(struct aws_creds *c, struct aws_keys *k, char *err, size_t errlen)
{
	char *roles = NULL, *doc = NULL, *p;
	json_t *j = NULL;
	const char *code, *akid, *secret, *token, *exp;
	int rc;

	rc = imds_get(c, "/latest/meta-data/iam/security-credentials/",
	    &roles, err, errlen);
	if (rc == FL_ERR_NOTFOUND)
		(void)snprintf(err, errlen, "instance metadata: no IAM role "
		    "attached to this instance");
	if (rc != 0)
		return rc;
	roles[strcspn(roles, "\r\n")] = '\0';
	if (roles[0] == '\0' || strchr(roles, '/') != NULL) {
		(void)snprintf(err, errlen, "instance metadata: no IAM role "
		    "attached to this instance");
		free(roles);
		return FL_ERR_NOTFOUND;
	}
	p = xasprintf("/latest/meta-data/iam/security-credentials/%s", roles);
	rc = imds_get(c, p, &doc, err, errlen);
	free(p);
	if (rc == 0) {
		j = json_loads(doc, 0, NULL);
		code = json_string_value(json_object_get(j, "Code"));
		akid = json_string_value(json_object_get(j, "AccessKeyId"));
		secret = json_string_value(json_object_get(j, "SecretAccessKey"));
		token = json_string_value(json_object_get(j, "Token"));
		exp = json_string_value(json_object_get(j, "Expiration"));
		if (code == NULL || strcmp(code, "Success") != 0) {
			(void)snprintf(err, errlen, "instance metadata: role "
			    "%.100s: Code %.60s", roles, code ? code : "missing");
			rc = FL_ERR_PROTO;
		} else if (akid == NULL || secret == NULL || token == NULL ||
		    aws_parse_time(exp, &k->expires) != 0) {
			(void)snprintf(err, errlen, "instance metadata: role "
			    "%.100s: incomplete credentials", roles);
			rc = FL_ERR_PROTO;
		} else {
			k->akid = xstrdup(akid);
			k->secret = xstrdup(secret);
			k->token = xstrdup(token);
		}
	}
	if (j != NULL) {
		/* Wipe the secrets jansson holds before it frees them. */
		const char *names[] = { "SecretAccessKey", "Token" };
		for (int i = 0; i < 2; i++) {
			json_t *s = json_object_get(j, names[i]);
			if (json_is_string(s))
				explicit_bzero((char *)json_string_value(s),
				    json_string_length(s));
		}
		json_decref(j);
	}
	freezero_str(doc);
	free(roles);
	return rc;
}

/* ----------------------------------------------------- web identity */

static int
webid_fetch(struct aws_creds *c, struct aws_keys *k, char *err, size_t errlen)
{
	static const char *const hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		NULL
	};
	struct aws_http_resp resp;
	struct sbuf form;
	char *tok, *url;
	size_t len;
	int rc = 0, attempts = aws_max_attempts();

	tok = read_small_file(c->token_file, AWS_TOKEN_FILE_MAX, &len);
	if (tok == NULL) {
		(void)snprintf(err, errlen, "web identity token file %s: %s",
		    c->token_file, strerror(errno));
		return FL_ERR_IO;
	}
	while (len > 0 && isspace((unsigned char)tok[len - 1]))
		tok[--len] = '\0';
	if (len == 0 || strlen(tok) != len) {
		(void)snprintf(err, errlen, "web identity token file %s: empty "
		    "or binary", c->token_file);
		freezero_str(tok);
		return FL_ERR_PARSE;
	}
	log_add_secret(tok);
	sbuf_init(&form);
	aws_form_add(&form, "Action", "AssumeRoleWithWebIdentity");
	aws_form_add(&form, "Version", "2011-06-15");
	aws_form_add(&form, "RoleArn", c->role_arn);
	aws_form_add(&form, "RoleSessionName", c->session_name);
	aws_form_add(&form, "WebIdentityToken", tok);
	url = xasprintf("%s/", c->sts_endpoint);
	struct aws_http_req req = {
		.method = "POST", .url = url, .body = form.buf,
		.body_len = form.len, .headers = hdrs,
	};
	aws_http_resp_init(&resp);
	for (int attempt = 0; attempt < attempts; attempt++) {
		char code[128] = "", msg[512] = "";

		if (attempt > 0)
			usleep((useconds_t)aws_backoff_ms((unsigned)attempt - 1,
			    (double)random() / ((double)RAND_MAX + 1)) * 1000);
		rc = aws_http_perform(c->http, &req, &resp);
		if (rc == 0 && resp.status == 200) {
			rc = aws_xml_sts_credentials(resp.body.buf,
			    resp.body.len, k, err, errlen);
			break;
		}
		if (rc == 0)
			(void)aws_xml_error(resp.body.buf, resp.body.len, code,
			    sizeof(code), msg, sizeof(msg));
		if (rc != 0)
			(void)snprintf(err, errlen, "AssumeRoleWithWebIdentity: "
			    "%s", resp.curl_err);
		else if (code[0] != '\0')
			(void)snprintf(err, errlen, "AssumeRoleWithWebIdentity: "
			    "%s: %s", code, msg);
		else
			(void)snprintf(err, errlen, "AssumeRoleWithWebIdentity: "
			    "HTTP %ld", resp.status);
		rc = rc != 0 ? rc : FL_ERR_PROTO;
		if (aws_retry_classify(resp.status, resp.curl_rc, code) ==
		    AWS_NO_RETRY)
			break;
	}
	explicit_bzero(resp.body.buf, resp.body.len);
	aws_http_resp_release(&resp);
	explicit_bzero(form.buf, form.len);
	sbuf_release(&form);
	free(url);
	/* Held only during this call: forget it (tokens rotate hourly). */
	log_remove_secret(tok);
	freezero_str(tok);
	return rc;
}

/* ------------------------------------------------------------ setup */

/*
 * The chain's order is aws-sdk-go-v2's (config/resolve_credentials.go),
 * which the official plugin uses:
 *
 *   profile named in plugin_config  ->  that profile only (its keys, its
 *                                       web identity, else IMDS); the
 *                                       environment's keys are ignored
 *   otherwise                       ->  environment keys, then the
 *                                       environment's web identity, then
 *                                       the profile (AWS_PROFILE or
 *                                       default), then IMDS
 *
 * Each step returns 1 when it chose the source, 0 to go on, or a negative
 * FL_ERR_* with a message in err.
 */
static int
source_env_keys(struct aws_creds *c, char *err, size_t errlen)
{
	const char *akid = env_nonempty("AWS_ACCESS_KEY_ID");
	const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
	const char *token = env_nonempty("AWS_SESSION_TOKEN");

	if (token == NULL)
		token = env_nonempty("AWS_SECURITY_TOKEN");
	if ((akid == NULL) != (secret == NULL)) {
		(void)snprintf(err, errlen, "%s is set but %s is not",
		    akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
		    akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return FL_ERR_INVAL;
	}
	if (akid == NULL)
		return 0;
	c->source = AWS_CREDS_ENV;
	c->keys.akid = xstrdup(akid);
	c->keys.secret = xstrdup(secret);
	c->keys.token = token ? xstrdup(token) : NULL;
	return 1;
}

static int
source_env_webid(struct aws_creds *c, char *err, size_t errlen)
{
	if (env_nonempty("AWS_WEB_IDENTITY_TOKEN_FILE") == NULL)
		return 0;
	if (env_nonempty("AWS_ROLE_ARN") == NULL) {
		(void)snprintf(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is set "
		    "but AWS_ROLE_ARN is not");
		return FL_ERR_INVAL;
	}
	c->source = AWS_CREDS_WEB_IDENTITY;
	c->role_arn = xstrdup(getenv("AWS_ROLE_ARN"));
	c->token_file = xstrdup(getenv("AWS_WEB_IDENTITY_TOKEN_FILE"));
	if (env_nonempty("AWS_ROLE_SESSION_NAME") != NULL)
		c->session_name = xstrdup(getenv("AWS_ROLE_SESSION_NAME"));
	return 1;
}

static int
source_profile(struct aws_creds *c, const struct aws_profile *prof,
    char *err, size_t errlen)
{
	if (prof->akid != NULL || prof->secret != NULL) {
		if (prof->akid == NULL || prof->secret == NULL) {
			(void)snprintf(err, errlen, "profile %s: "
			    "aws_access_key_id and aws_secret_access_key must "
			    "both be set", c->profile);
			return FL_ERR_INVAL;
		}
		c->source = AWS_CREDS_PROFILE;
		c->keys.akid = xstrdup(prof->akid);
		c->keys.secret = xstrdup(prof->secret);
		c->keys.token = prof->token ? xstrdup(prof->token) : NULL;
		return 1;
	}
	if (prof->role_arn != NULL && prof->web_identity_token_file != NULL) {
		c->source = AWS_CREDS_WEB_IDENTITY;
		c->role_arn = xstrdup(prof->role_arn);
		c->token_file = xstrdup(prof->web_identity_token_file);
		if (prof->role_session_name != NULL)
			c->session_name = xstrdup(prof->role_session_name);
		return 1;
	}
	if (prof->source_profile != NULL || prof->credential_process != NULL ||
	    prof->sso != NULL) {
		(void)snprintf(err, errlen, "profile %s: %s is not supported by "
		    "this plugin (use static keys, web identity or the "
		    "instance's role)", c->profile,
		    prof->source_profile ? "role_arn with source_profile" :
		    prof->credential_process ? "credential_process" :
		    "IAM Identity Center (sso_*)");
		return FL_ERR_INVAL;
	}
	return 0;
}

/* Pick the source in the chain's order (above); 0 or an error in err. */
static int
choose_source(struct aws_creds *c, const struct aws_profile *prof,
    bool profile_pinned, bool imds_off, char *err, size_t errlen)
{
	int rc = 0;

	if (!profile_pinned) {
		rc = source_env_keys(c, err, errlen);
		if (rc == 0)
			rc = source_env_webid(c, err, errlen);
	}
	if (rc == 0)
		rc = source_profile(c, prof, err, errlen);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (!imds_off) {
		c->source = AWS_CREDS_IMDS;
		return 0;
	}
	(void)snprintf(err, errlen, "no AWS credentials: none in the "
	    "environment (AWS_ACCESS_KEY_ID), in profile %s of the shared "
	    "files, no web identity (AWS_WEB_IDENTITY_TOKEN_FILE), and the "
	    "instance metadata service is disabled", c->profile);
	return FL_ERR_NOTFOUND;
}

struct aws_creds *
aws_creds_new(struct aws_http *http, const struct aws_creds_opts *o,
    char *err, size_t errlen)
{
	struct aws_creds *c = xcalloc(1, sizeof(*c));
	struct aws_profile prof = { 0 };
	char *cfg, *cred;
	const char *v;
	bool explicit_profile, imds_off = env_true("AWS_EC2_METADATA_DISABLED");
	int rc = 0;

	pthread_mutex_init(&c->lock, NULL);
	c->http = http;
	v = o->profile ? o->profile : env_nonempty("AWS_PROFILE");
	explicit_profile = v != NULL;
	c->profile = xstrdup(v ? v : "default");

	v = o->credentials_file ? o->credentials_file :
	    env_nonempty("AWS_SHARED_CREDENTIALS_FILE");
	cred = v ? xstrdup(v) : home_file("credentials");
	v = o->config_file ? o->config_file : env_nonempty("AWS_CONFIG_FILE");
	cfg = v ? xstrdup(v) : home_file("config");
	rc = aws_ini_load(cred, c->profile, false, &prof, err, errlen);
	if (rc == 0)
		rc = aws_ini_load(cfg, c->profile, true, &prof, err, errlen);
	/*
	 * aws-sdk-go-v2 (loadSharedConfigIgnoreNotExist) ignores a profile
	 * that neither file has, even one named explicitly: the chain goes
	 * on to the instance metadata.  The seed document's example names
	 * profile "default" and files a runner on EC2 with an instance role
	 * does not have, so refusing here would break it.  Say so, though.
	 */
	if (rc == 0 && explicit_profile && !prof.found)
		log_info("profile %s is in neither %s nor %s: ignored, as the "
		    "AWS SDK does", c->profile, cred, cfg);
	free(cred);
	free(cfg);

	v = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (v != NULL) {
		size_t n = strlen(v);

		while (n > 8 && v[n - 1] == '/')
			n--;
		c->imds = xstrndup(v, n);
	} else if ((v = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) &&
	    strcasecmp(v, "IPv6") == 0) {
		c->imds = xstrdup("http://[fd00:ec2::254]");
	} else {
		c->imds = xstrdup("http://169.254.169.254");
	}

	if (rc == 0) {
		if (o->region != NULL)
			v = o->region;
		else if ((v = env_nonempty("AWS_REGION")) == NULL &&
		    (v = env_nonempty("AWS_DEFAULT_REGION")) == NULL)
			v = prof.region;
		if (v != NULL)
			c->region = xstrdup(v);
		rc = choose_source(c, &prof, o->profile != NULL, imds_off,
		    err, errlen);
	}
	if (rc == 0 && c->region == NULL) {
		if (imds_off) {
			(void)snprintf(err, errlen, "no AWS region: set region "
			    "in plugin_config, AWS_REGION, or region in profile "
			    "%s", c->profile);
			rc = FL_ERR_NOTFOUND;
		} else {
			char ierr[256];

			rc = imds_get(c, "/latest/meta-data/placement/region",
			    &c->region, ierr, sizeof(ierr));
			if (rc != 0)
				(void)snprintf(err, errlen, "no AWS region: set "
				    "region in plugin_config, AWS_REGION, or "
				    "region in profile %s (%s)", c->profile,
				    ierr);
		}
	}
	if (rc == 0 && c->source == AWS_CREDS_WEB_IDENTITY) {
		c->sts_endpoint = aws_endpoint(AWS_SVC_STS, c->region, err,
		    errlen);
		if (c->sts_endpoint == NULL)
			rc = FL_ERR_INVAL;
		if (c->session_name == NULL)
			c->session_name = xasprintf("flotilla-%lld",
			    (long long)time(NULL));
	}
	aws_profile_release(&prof);
	if (rc != 0) {
		aws_creds_free(c);
		return NULL;
	}
	if (c->keys.secret != NULL)
		log_add_secret(c->keys.secret);
	if (c->keys.token != NULL)
		log_add_secret(c->keys.token);
	c->fetched = time(NULL);
	return c;
}

void
aws_creds_free(struct aws_creds *c)
{
	if (c == NULL)
		return;
	aws_keys_release(&c->keys);
	free(c->region);
	free(c->profile);
	free(c->role_arn);
	free(c->token_file);
	free(c->session_name);
	free(c->sts_endpoint);
	free(c->imds);
	freezero_str(c->imds_token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int
aws_creds_get(struct aws_creds *c, bool force, struct aws_keys *out,
    char *err, size_t errlen)
{
	struct aws_keys k = { 0 };
	time_t now = time(NULL);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->lock);
	if (c->source == AWS_CREDS_ENV || c->source == AWS_CREDS_PROFILE) {
		aws_keys_copy(out, &c->keys);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (c->keys.akid != NULL && !force &&
	    !aws_creds_due(c->keys.expires, c->fetched, now)) {
		aws_keys_copy(out, &c->keys);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (c->source == AWS_CREDS_WEB_IDENTITY)
		rc = webid_fetch(c, &k, err, errlen);
	else
		rc = imds_fetch(c, &k, err, errlen);
	if (rc == 0) {
		if (c->keys.secret != NULL)
			log_remove_secret(c->keys.secret);
		if (c->keys.token != NULL)
			log_remove_secret(c->keys.token);
		aws_keys_release(&c->keys);
		c->keys = k;
		c->fetched = now;
		log_add_secret(c->keys.secret);
		log_add_secret(c->keys.token);
		log_debug("new %s session %s, expires in %llds",
		    aws_creds_source_name(c->source), c->keys.akid,
		    (long long)(c->keys.expires - now));
	} else if (c->keys.akid != NULL && !force &&
	    (c->keys.expires == 0 || now < c->keys.expires - 5)) {
		/* Keep using the old session while it lasts. */
		log_warn("refreshing %s credentials: %s (the current session "
		    "still works)", aws_creds_source_name(c->source), err);
		rc = 0;
	}
	if (rc == 0)
		aws_keys_copy(out, &c->keys);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
