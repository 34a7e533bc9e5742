/*
 * fleeting-plugin-aws's HTTP layer (see aws_http.h).  libcurl does the
 * signing (CURLOPT_AWS_SIGV4, present since 7.75): the plugin never holds
 * a hand-written signer.  Each exchange uses its own easy handle; a CURLSH
 * shares the connection cache and DNS between the SDK's pool threads so
 * that keep-alive connections are reused.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "aws_http.h"
#include "curlretry.h"
#include "err.h"

void
aws_keys_copy(struct aws_keys *dst, const struct aws_keys *src)
{
	dst->akid = src->akid ? xstrdup(src->akid) : NULL;
	dst->secret = src->secret ? xstrdup(src->secret) : NULL;
	dst->token = src->token ? xstrdup(src->token) : NULL;
	dst->expires = src->expires;
}

void
aws_keys_release(struct aws_keys *k)
{
	if (k == NULL)
		return;
	freezero_str(k->akid);
	freezero_str(k->secret);
	freezero_str(k->token);
	memset(k, 0, sizeof(*k));
}

void
aws_http_resp_init(struct aws_http_resp *r)
{
	memset(r, 0, sizeof(*r));
	sbuf_init(&r->body);
}

void
aws_http_resp_release(struct aws_http_resp *r)
{
	sbuf_release(&r->body);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------- sharing */

struct aws_http {
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static void
share_lock(CURL *handle, curl_lock_data data, curl_lock_access access,
    void *arg)
{
	struct aws_http *h = arg;

	(void)handle;
	(void)access;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->locks[data]);
}

static void
share_unlock(CURL *handle, curl_lock_data data, void *arg)
{
	struct aws_http *h = arg;

	(void)handle;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->locks[data]);
}

struct aws_http *
aws_http_new(void)
{
	struct aws_http *h = xcalloc(1, sizeof(*h));

	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->locks[i], NULL);
	h->share = curl_share_init();
	if (h->share != NULL) {
		curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
		curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
		curl_share_setopt(h->share, CURLSHOPT_SHARE,
		    CURL_LOCK_DATA_CONNECT);
		curl_share_setopt(h->share, CURLSHOPT_SHARE,
		    CURL_LOCK_DATA_DNS);
	}
	return h;
}

void
aws_http_free(struct aws_http *h)
{
	if (h == NULL)
		return;
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->locks[i]);
	free(h);
}

/* ------------------------------------------------------------ exchange */

struct sink {
	struct aws_http_resp *resp;
	bool toobig;
};

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (s->resp->body.len + n > AWS_HTTP_MAX_BODY) {
		s->toobig = true;
		return 0;
	}
	sbuf_add(&s->resp->body, ptr, n);
	return n;
}

/* Keep x-amzn-ErrorType (JSON services put the error code there). */
static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	static const char name[] = "x-amzn-errortype:";
	size_t nl = sizeof(name) - 1;

	if (n > nl && strncasecmp(ptr, name, nl) == 0) {
		const char *v = ptr + nl, *end = ptr + n;

		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && isspace((unsigned char)end[-1]))
			end--;
		/* "Code:http://internal.amazon.com/..." : keep the code. */
		const char *colon = memchr(v, ':', (size_t)(end - v));
		if (colon != NULL)
			end = colon;
		size_t len = (size_t)(end - v);
		if (len >= sizeof(s->resp->error_type))
			len = sizeof(s->resp->error_type) - 1;
		memcpy(s->resp->error_type, v, len);
		s->resp->error_type[len] = '\0';
	}
	return n;
}

/* Free a header list after wiping it (it may hold a session token). */
static void
slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p != NULL; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

int
aws_http_perform(struct aws_http *h, const struct aws_http_req *req,
    struct aws_http_resp *resp)
{
	struct curl_slist *hdrs = NULL;
	struct sink sink = { .resp = resp };
	char errbuf[CURL_ERROR_SIZE] = "";
	char *sigv4 = NULL, *tokhdr = NULL;
	CURL *c;
	CURLcode rc;
	int ret = 0;

	sbuf_reset(&resp->body);
	resp->status = 0;
	resp->error_type[0] = '\0';
	resp->curl_rc = 0;
	resp->curl_err[0] = '\0';

	c = curl_easy_init();
	if (c == NULL) {
		resp->curl_rc = CURLE_FAILED_INIT;
		(void)snprintf(resp->curl_err, sizeof(resp->curl_err),
		    "curl_easy_init failed");
		return FL_ERR_IO;
	}
	if (h->share != NULL)
		curl_easy_setopt(c, CURLOPT_SHARE, h->share);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    req->timeout_ms > 0 ? req->timeout_ms : (long)AWS_HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "fleeting-plugin-aws/" FL_VERSION " (flotilla)");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);

	if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
		    (long)(req->body ? req->body_len : 0));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS,
		    req->body ? req->body : "");
	} else if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	}
	for (const char *const *p = req->headers; p != NULL && *p != NULL; p++)
		hdrs = curl_slist_append(hdrs, *p);
	if (req->keys != NULL) {
		sigv4 = xasprintf("aws:amz:%s:%s", req->region, req->service);
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, req->keys->akid);
		curl_easy_setopt(c, CURLOPT_PASSWORD, req->keys->secret);
		if (req->keys->token != NULL && req->keys->token[0] != '\0') {
			tokhdr = xasprintf("X-Amz-Security-Token: %s",
			    req->keys->token);
			hdrs = curl_slist_append(hdrs, tokhdr);
		}
	} else if (req->url != NULL && strncmp(req->url, "http://", 7) == 0) {
		/* Unsigned plain-http calls are the metadata service's. */
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	}
	if (hdrs != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	} else if (sink.toobig) {
		resp->curl_rc = rc;
		(void)snprintf(resp->curl_err, sizeof(resp->curl_err),
		    "answer over %u bytes", AWS_HTTP_MAX_BODY);
		ret = FL_ERR_TOOBIG;
	} else {
		resp->curl_rc = rc;
		(void)snprintf(resp->curl_err, sizeof(resp->curl_err), "%s",
		    errbuf[0] ? errbuf : curl_easy_strerror(rc));
		ret = FL_ERR_IO;
	}
	curl_easy_cleanup(c);
	slist_free_wiped(hdrs);
	freezero_str(tokhdr);
	free(sigv4);
	return ret;
}

/* ----------------------------------------------------------- endpoints */

static const struct {
	const char *name;	/* signing name and host prefix */
	const char *env;	/* AWS_ENDPOINT_URL_<env> */
	const char *title;
} services[AWS_SVC_N] = {
	[AWS_SVC_AUTOSCALING] = { "autoscaling", "AUTO_SCALING", "Auto Scaling" },
	[AWS_SVC_EC2] = { "ec2", "EC2", "EC2" },
	[AWS_SVC_INSTANCE_CONNECT] = { "ec2-instance-connect",
	    "EC2_INSTANCE_CONNECT", "EC2 Instance Connect" },
	[AWS_SVC_STS] = { "sts", "STS", "STS" },
};

const char *
aws_service_name(enum aws_service svc)
{
	return services[svc].name;
}

const char *
aws_service_title(enum aws_service svc)
{
	return services[svc].title;
}

static bool
http_env_true(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

/* A region name as AWS spells them: lower-case letters, digits, '-'. */
static bool
region_ok(const char *r)
{
	if (r == NULL || r[0] == '\0' || strlen(r) > 64)
		return false;
	for (const char *p = r; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-')
			return false;
	return true;
}

/* Check an override URL and copy it without trailing slashes. */
static char *
override_url(const char *var, const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v);

	if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
	    n > 2048) {
		(void)snprintf(err, errlen, "%s: %.200s is not an http:// or "
		    "https:// URL", var, v);
		return NULL;
	}
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			(void)snprintf(err, errlen, "%s: blank or control "
			    "character in the URL", var);
			return NULL;
		}
	while (n > 8 && v[n - 1] == '/')
		n--;
	return xstrndup(v, n);
}

char *
aws_endpoint(enum aws_service svc, const char *region, char *err,
    size_t errlen)
{
	if (!http_env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
		char var[64];
		const char *v;

		(void)snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s",
		    services[svc].env);
		v = getenv(var);
		if (v != NULL && v[0] != '\0')
			return override_url(var, v, err, errlen);
		v = getenv("AWS_ENDPOINT_URL");
		if (v != NULL && v[0] != '\0')
			return override_url("AWS_ENDPOINT_URL", v, err, errlen);
	}
	if (region == NULL || region[0] == '\0') {
		if (svc == AWS_SVC_STS)
			return xstrdup("https://sts.amazonaws.com");
		(void)snprintf(err, errlen, "no region for the %s endpoint",
		    services[svc].title);
		return NULL;
	}
	if (!region_ok(region)) {
		(void)snprintf(err, errlen, "region %.80s: not a region name",
		    region);
		return NULL;
	}
	return xasprintf("https://%s.%s.amazonaws.com%s", services[svc].name,
	    region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
}

/* ---------------------------------------------------------------- form */

void
aws_form_add(struct sbuf *sb, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { key, value };

	if (sb->len > 0)
		sbuf_addch(sb, '&');
	for (int i = 0; i < 2; i++) {
		for (const unsigned char *p = (const unsigned char *)parts[i];
		    *p; p++) {
			if (isalnum(*p) || *p == '-' || *p == '_' ||
			    *p == '.' || *p == '~') {
				sbuf_addch(sb, *p);
			} else {
				sbuf_addch(sb, '%');
				sbuf_addch(sb, hex[*p >> 4]);
				sbuf_addch(sb, hex[*p & 15]);
			}
		}
		if (i == 0)
			sbuf_addch(sb, '=');
	}
}

/* ------------------------------------------------------------- retries */

/* botocore's retries/standard.py and the Go SDK's retry package. */
static const char *const throttle_codes[] = {
	"Throttling", "ThrottlingException", "ThrottledException",
	"RequestThrottledException", "TooManyRequestsException",
	"ProvisionedThroughputExceededException",
	"TransactionInProgressException", "RequestLimitExceeded",
	"BandwidthLimitExceeded", "LimitExceededException",
	"RequestThrottled", "SlowDown", "PriorRequestNotComplete",
	"EC2ThrottledException", NULL
};
static const char *const transient_codes[] = {
	"RequestTimeout", "RequestTimeoutException", "InternalError",
	"InternalFailure", "ServiceUnavailable", "IDPCommunicationError",
	NULL
};
static const char *const expired_codes[] = {
	"ExpiredToken", "ExpiredTokenException", "RequestExpired", NULL
};

static bool
in_list(const char *code, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

enum aws_retry
aws_retry_classify(long status, int curl_rc, const char *code)
{
	if (status == 0)
		return curlretry_transient(curl_rc) ? AWS_RETRY_TRANSIENT :
		    AWS_NO_RETRY;
	if (status >= 200 && status < 300)
		return AWS_NO_RETRY;
	if (code != NULL && code[0] != '\0') {
		if (in_list(code, throttle_codes))
			return AWS_RETRY_THROTTLE;
		if (in_list(code, transient_codes))
			return AWS_RETRY_TRANSIENT;
		if (in_list(code, expired_codes))
			return AWS_RETRY_REFRESH;
	}
	if (status == 429)
		return AWS_RETRY_THROTTLE;
	if (status == 500 || status == 502 || status == 503 || status == 504)
		return AWS_RETRY_TRANSIENT;
	return AWS_NO_RETRY;
}

int64_t
aws_backoff_ms(unsigned attempt, double r)
{
	double cap = AWS_MAX_BACKOFF_MS, d;

	if (r < 0)
		r = 0;
	if (r >= 1)
		r = 0.999999;
	if (attempt > 20)
		attempt = 20;
	d = r * 1000.0 * (double)(1u << attempt);
	if (d > cap)
		d = cap;
	return (int64_t)d;
}

int
aws_max_attempts(void)
{
	const char *v = getenv("AWS_MAX_ATTEMPTS");
	char *end;
	long n;

	if (v == NULL || v[0] == '\0')
		return AWS_DEFAULT_MAX_ATTEMPTS;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < 1 || n > 10)
		return AWS_DEFAULT_MAX_ATTEMPTS;
	return (int)n;
}

/* ---------------------------------------------------------------- time */

int
aws_parse_time(const char *s, time_t *t)
{
	struct tm tm;
	const char *p;
	long off = 0;

	if (s == NULL)
		return FL_ERR_PARSE;
	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return FL_ERR_PARSE;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return FL_ERR_PARSE;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && p[3] == ':' &&
	    isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600L +
		    ((p[4] - '0') * 10 + (p[5] - '0')) * 60L;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return FL_ERR_PARSE;
	}
	if (*p != '\0')
		return FL_ERR_PARSE;
	*t = timegm(&tm) - off;
	return 0;
}
