/*
 * Signed AWS calls with the SDKs' standard retry mode: the Query APIs
 * (Auto Scaling 2011-01-01, EC2 2016-11-15: POST / with a form body) and
 * the JSON 1.1 API of EC2 Instance Connect.  Each call gets fresh keys
 * from aws_creds (refreshed before expiry; once more if AWS answers that
 * a session expired), is signed by libcurl, and is retried on throttling,
 * 5xx and network errors (AWS_MAX_ATTEMPTS attempts, default 3, full
 * jitter backoff capped at 20 s).  Errors are reported as
 * "Action: Code: message" from AWS's own error document, never with a
 * credential in them.
 */
#ifndef FL_AWS_CLIENT_H
#define FL_AWS_CLIENT_H

#include <stddef.h>

#include "aws_creds.h"
#include "aws_http.h"
#include "xmalloc.h"

/* An API error: the HTTP status (0: none came) and AWS's code. */
struct aws_error {
	long status;
	char code[128];
	char message[512];
};

struct aws_client;

/*
 * The endpoints of Auto Scaling, EC2 and Instance Connect for the
 * creds' region (aws_endpoint).  http and creds are borrowed.  NULL with
 * a message in err.
 */
struct aws_client *aws_client_new(struct aws_http *http,
    struct aws_creds *creds, char *err, size_t errlen);
void aws_client_free(struct aws_client *c);

const char *aws_client_region(const struct aws_client *c);
const char *aws_client_endpoint(const struct aws_client *c,
    enum aws_service svc);
/* Test hook: how retries sleep (default usleep). */
void aws_client_set_sleep(struct aws_client *c, void (*sleep_ms)(int64_t));
/* Test hook: the time left before the caller's deadline (default
 * plugin_call_remaining_ms; -1: none). */
void aws_client_set_clock(struct aws_client *c, int64_t (*remaining_ms)(void));

/*
 * A Query/EC2 call: Action=action&Version=(the service's)&params (params
 * already form-encoded with aws_form_add, or "" / NULL).  0 with the 2xx
 * answer's body in out (reset first); else an FL_ERR_* code, the error in
 * e (may be NULL) and "action: Code: message" in err.
 */
int aws_client_query(struct aws_client *c, enum aws_service svc,
    const char *action, const char *params, struct sbuf *out,
    struct aws_error *e, char *err, size_t errlen);

/* A JSON 1.1 call (X-Amz-Target prefix.action); as aws_client_query. */
int aws_client_json(struct aws_client *c, enum aws_service svc,
    const char *target_prefix, const char *action, const char *json,
    struct sbuf *out, struct aws_error *e, char *err, size_t errlen);

/*
 * The error of a non-2xx answer: from the XML error document, the JSON
 * body ({"__type": "ns#Code", "message": ...}) or x-amzn-ErrorType, else
 * "HTTP STATUS".  Pure; used by the calls above.
 */
void aws_error_parse(long status, const char *body, size_t len,
    const char *error_type_header, struct aws_error *e);

/* "action: Code: message" (or "action: HTTP N") into err. */
void aws_error_format(const char *action, const struct aws_error *e,
    int attempts, char *err, size_t errlen);

#endif
