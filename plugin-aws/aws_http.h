/*
 * fleeting-plugin-aws's HTTP layer: one libcurl exchange at a time
 * (blocking; the SDK's callbacks run on pool threads and may block),
 * signed by libcurl's own SigV4 (CURLOPT_AWS_SIGV4) when keys are given,
 * with connections shared between threads through a CURLSH.  Also the
 * pure pieces every AWS call needs: where each service lives (regional
 * endpoints, AWS_ENDPOINT_URL and the per-service variables), form
 * encoding, which answers the SDK's standard retry mode retries, and its
 * backoff.
 */
#ifndef FL_AWS_HTTP_H
#define FL_AWS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "xmalloc.h"

/* Largest answer body read (a page of 1000 instances is about 2 MiB). */
#define AWS_HTTP_MAX_BODY	(32u * 1024 * 1024)
/* The SDK's standard retry mode: attempts per call, backoff cap. */
#define AWS_DEFAULT_MAX_ATTEMPTS 3
#define AWS_MAX_BACKOFF_MS	20000
/* One exchange's timeout when the call has no shorter deadline. */
#define AWS_HTTP_TIMEOUT_MS	20000

/* The services the plugin speaks to. */
enum aws_service {
	AWS_SVC_AUTOSCALING = 0,
	AWS_SVC_EC2,
	AWS_SVC_INSTANCE_CONNECT,
	AWS_SVC_STS,
	AWS_SVC_N
};

/*
 * Access keys (heap strings; token NULL for long-term keys); expires is
 * the Unix time they stop working, 0 for never.
 */
struct aws_keys {
	char *akid;
	char *secret;
	char *token;
	time_t expires;
};

/* Deep copy; wipe and free (zeroes k; NULL fields are fine). */
void aws_keys_copy(struct aws_keys *dst, const struct aws_keys *src);
void aws_keys_release(struct aws_keys *k);

/* One request.  headers: NULL-terminated "Name: value" lines or NULL. */
struct aws_http_req {
	const char *method;		/* "GET", "POST", "PUT" */
	const char *url;
	const char *body;		/* NULL: none */
	size_t body_len;
	const char *const *headers;
	const char *region;		/* with keys: sign for region/service */
	const char *service;
	const struct aws_keys *keys;	/* NULL: unsigned */
	long timeout_ms;		/* whole exchange; 0: AWS_HTTP_TIMEOUT_MS */
	long connect_timeout_ms;	/* 0: 5 s (never above timeout_ms) */
};

/* The answer: status, body (always NUL-terminated), x-amzn-ErrorType. */
struct aws_http_resp {
	long status;
	struct sbuf body;
	char error_type[128];
	int curl_rc;			/* CURLcode; 0 when an answer came */
	char curl_err[256];		/* libcurl's text for a transport error */
};

void aws_http_resp_init(struct aws_http_resp *r);
void aws_http_resp_release(struct aws_http_resp *r);

struct aws_http;

/* curl_global_init must have run (main does it).  Never NULL. */
struct aws_http *aws_http_new(void);
void aws_http_free(struct aws_http *h);

/*
 * Perform req.  0 when an HTTP answer came (whatever its status; resp
 * filled), FL_ERR_IO for a transport failure (resp->curl_rc and curl_err
 * say which), FL_ERR_TOOBIG for a body over AWS_HTTP_MAX_BODY.  No
 * secret ever reaches resp->curl_err.
 */
int aws_http_perform(struct aws_http *h, const struct aws_http_req *req,
    struct aws_http_resp *resp);

/*
 * The base URL of svc in region, without a trailing slash, as a heap
 * string: AWS_ENDPOINT_URL_<SERVICE> (AUTO_SCALING, EC2,
 * EC2_INSTANCE_CONNECT, STS), else AWS_ENDPOINT_URL, else the regional
 * https endpoint (amazonaws.com.cn for cn-*; STS without a region: the
 * global https://sts.amazonaws.com).  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
 * =true ignores the variables.  An override must be http:// or https://
 * (plain http only this way).  NULL with a message in err when an
 * override is malformed or no region is known.
 */
char *aws_endpoint(enum aws_service svc, const char *region, char *err,
    size_t errlen);

/* Signing name ("autoscaling", "ec2", "ec2-instance-connect", "sts"). */
const char *aws_service_name(enum aws_service svc);
/* The API name for messages ("Auto Scaling", ...). */
const char *aws_service_title(enum aws_service svc);

/* Append "&key=value" (or "key=value" to an empty sb), percent-encoded
 * as RFC 3986 (unreserved characters kept), as AWS's Query APIs read. */
void aws_form_add(struct sbuf *sb, const char *key, const char *value);

/*
 * What the standard retry mode does with an answer.  status: the HTTP
 * status (0: no answer, curl_rc says why); code: AWS's error code or
 * NULL.
 */
enum aws_retry {
	AWS_NO_RETRY = 0,
	AWS_RETRY_THROTTLE,	/* throttling codes, 429 */
	AWS_RETRY_TRANSIENT,	/* 500/502/503/504, RequestTimeout, network */
	AWS_RETRY_REFRESH	/* expired session: refresh keys, once */
};
enum aws_retry aws_retry_classify(long status, int curl_rc, const char *code);

/*
 * Delay before retry number attempt (0 for the first retry) with r in
 * [0, 1): min(r * 2^attempt s, AWS_MAX_BACKOFF_MS), in milliseconds
 * (full jitter, as the SDKs' standard mode).
 */
int64_t aws_backoff_ms(unsigned attempt, double r);

/* AWS_MAX_ATTEMPTS if it is an integer 1..10, else 3. */
int aws_max_attempts(void);

/* "2024-01-01T00:00:00Z" or with fractional seconds or an offset:
 * 0 and *t, or FL_ERR_PARSE. */
int aws_parse_time(const char *s, time_t *t);

#endif
