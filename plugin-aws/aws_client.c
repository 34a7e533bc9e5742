/*
 * Signed AWS calls with retries (see aws_client.h).  The loop:
 *
 *   keys = creds (refreshed if due)  ->  sign and send  ->  2xx: done
 *   error answer or network failure  ->  classify (aws_retry_classify):
 *     expired session, first time    ->  force new keys, send again
 *     throttle / transient, attempts left -> sleep min(r*2^n s, 20 s), again
 *     anything else                  ->  "Action: Code: message"
 *
 * Inside the manager's deadline for the plugin call (plugin_call_
 * remaining_ms): each attempt's timeout is cut to what is left less
 * AWS_DEADLINE_MARGIN_MS, and no retry starts (nor backoff sleeps) that
 * could not end before it, so the last error reaches the manager instead
 * of a DEADLINE_EXCEEDED that says nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "aws_client.h"
#include "aws_xml.h"
#include "err.h"
#include "log.h"
#include "plugin_sdk.h"

/* Answer this long before the manager's deadline. */
#define AWS_DEADLINE_MARGIN_MS	1000
/* No retry with less time than this left. */
#define AWS_MIN_ATTEMPT_MS	1000

struct aws_client {
	struct aws_http *http;
	struct aws_creds *creds;
	char *endpoint[AWS_SVC_N];
	int max_attempts;
	void (*sleep_ms)(int64_t);
	int64_t (*remaining_ms)(void);
};

static void
real_sleep(int64_t ms)
{
	if (ms > 0)
		usleep((useconds_t)(ms * 1000));
}

struct aws_client *
aws_client_new(struct aws_http *http, struct aws_creds *creds, char *err,
    size_t errlen)
{
	struct aws_client *c = xcalloc(1, sizeof(*c));
	static const enum aws_service svcs[] = { AWS_SVC_AUTOSCALING,
	    AWS_SVC_EC2, AWS_SVC_INSTANCE_CONNECT };

	c->http = http;
	c->creds = creds;
	c->max_attempts = aws_max_attempts();
	c->sleep_ms = real_sleep;
	c->remaining_ms = plugin_call_remaining_ms;
	for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
		c->endpoint[svcs[i]] = aws_endpoint(svcs[i],
		    aws_creds_region(creds), err, errlen);
		if (c->endpoint[svcs[i]] == NULL) {
			aws_client_free(c);
			return NULL;
		}
	}
	return c;
}

void
aws_client_free(struct aws_client *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < AWS_SVC_N; i++)
		free(c->endpoint[i]);
	free(c);
}

const char *
aws_client_region(const struct aws_client *c)
{
	return aws_creds_region(c->creds);
}

const char *
aws_client_endpoint(const struct aws_client *c, enum aws_service svc)
{
	return c->endpoint[svc];
}

void
aws_client_set_sleep(struct aws_client *c, void (*sleep_ms)(int64_t))
{
	c->sleep_ms = sleep_ms ? sleep_ms : real_sleep;
}

void
aws_client_set_clock(struct aws_client *c, int64_t (*remaining_ms)(void))
{
	c->remaining_ms = remaining_ms ? remaining_ms : plugin_call_remaining_ms;
}

/* Time usable before the caller's deadline, or -1 for no deadline. */
static int64_t
usable_ms(const struct aws_client *c)
{
	int64_t left = c->remaining_ms();

	if (left < 0)
		return -1;
	left -= AWS_DEADLINE_MARGIN_MS;
	return left > 0 ? left : 0;
}

static void
err_clean(char *buf, size_t n, const char *s)
{
	size_t i = 0;

	for (; s != NULL && s[i] != '\0' && i + 1 < n; i++)
		buf[i] = ((unsigned char)s[i] < ' ' || s[i] == 0x7f) ? ' ' :
		    s[i];
	buf[i] = '\0';
}

void
aws_error_parse(long status, const char *body, size_t len,
    const char *error_type_header, struct aws_error *e)
{
	memset(e, 0, sizeof(*e));
	e->status = status;
	if (body != NULL && len > 0 &&
	    aws_xml_error(body, len, e->code, sizeof(e->code), e->message,
	    sizeof(e->message)) == 0)
		return;
	if (body != NULL && len > 0 && body[0] == '{') {
		json_t *j = json_loadb(body, len, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "__type"));
		const char *m = json_string_value(json_object_get(j, "message"));

		if (m == NULL)
			m = json_string_value(json_object_get(j, "Message"));
		if (t == NULL)
			t = json_string_value(json_object_get(j, "code"));
		if (t != NULL) {
			const char *hash = strrchr(t, '#');
			err_clean(e->code, sizeof(e->code), hash ? hash + 1 : t);
		}
		err_clean(e->message, sizeof(e->message), m);
		json_decref(j);
	}
	if (e->code[0] == '\0' && error_type_header != NULL &&
	    error_type_header[0] != '\0')
		err_clean(e->code, sizeof(e->code), error_type_header);
}

void
aws_error_format(const char *action, const struct aws_error *e, int attempts,
    char *err, size_t errlen)
{
	char tail[48] = "";

	if (attempts > 1)
		(void)snprintf(tail, sizeof(tail), " (after %d attempts)",
		    attempts);
	if (e->code[0] != '\0')
		(void)snprintf(err, errlen, "%s: %s: %s%s", action, e->code,
		    e->message[0] ? e->message : "(no message)", tail);
	else
		(void)snprintf(err, errlen, "%s: HTTP %ld%s", action, e->status,
		    tail);
}

/* The common loop; body and headers ready. */
static int
call(struct aws_client *c, enum aws_service svc, const char *action,
    const char *body, size_t body_len, const char *const *headers,
    struct sbuf *out, struct aws_error *ep, char *err, size_t errlen)
{
	struct aws_error e_local, *e = ep ? ep : &e_local;
	struct aws_http_resp resp;
	char *url = xasprintf("%s/", c->endpoint[svc]);
	bool refreshed = false, force = false;
	int rc = FL_ERR_INTERNAL, attempt = 0;

	memset(e, 0, sizeof(*e));
	aws_http_resp_init(&resp);
	while (attempt < c->max_attempts) {
		struct aws_keys keys;
		enum aws_retry cls;
		int64_t left = usable_ms(c);

		/* The first attempt always goes, with at least this much. */
		if (left >= 0 && left < AWS_MIN_ATTEMPT_MS)
			left = AWS_MIN_ATTEMPT_MS;
		rc = aws_creds_get(c->creds, force, &keys, err, errlen);
		force = false;
		if (rc != 0)
			break;
		struct aws_http_req req = {
			.method = "POST", .url = url, .body = body,
			.body_len = body_len, .headers = headers,
			.region = aws_creds_region(c->creds),
			.service = aws_service_name(svc), .keys = &keys,
			.timeout_ms = left >= 0 && left < AWS_HTTP_TIMEOUT_MS ?
			    (long)left : 0,
		};
		rc = aws_http_perform(c->http, &req, &resp);
		aws_keys_release(&keys);
		attempt++;
		if (rc == 0 && resp.status >= 200 && resp.status < 300) {
			if (out != NULL) {
				sbuf_reset(out);
				sbuf_add(out, resp.body.buf, resp.body.len);
			}
			break;
		}
		if (rc == 0) {
			aws_error_parse(resp.status, resp.body.buf, resp.body.len,
			    resp.error_type, e);
			aws_error_format(action, e, attempt, err, errlen);
			rc = FL_ERR_PROTO;
		} else {
			memset(e, 0, sizeof(*e));
			(void)snprintf(err, errlen, "%s: %s%s", action,
			    resp.curl_err, attempt > 1 ? " (after retries)" : "");
			if (rc == FL_ERR_TOOBIG)
				break;
		}
		cls = aws_retry_classify(resp.status, resp.curl_rc, e->code);
		if (cls == AWS_RETRY_REFRESH && !refreshed) {
			refreshed = true;
			force = true;
			attempt--;	/* a new session is not a retry */
			log_info("%s: %s: fetching new credentials", action,
			    e->code);
			continue;
		}
		if ((cls == AWS_RETRY_THROTTLE || cls == AWS_RETRY_TRANSIENT) &&
		    attempt < c->max_attempts) {
			int64_t ms = aws_backoff_ms((unsigned)attempt - 1,
			    (double)random() / ((double)RAND_MAX + 1));
			int64_t usable = usable_ms(c);

			if (usable >= 0 && ms + AWS_MIN_ATTEMPT_MS > usable) {
				size_t l = strlen(err);

				(void)snprintf(err + l, errlen - l, " (no time "
				    "left for a retry before the manager's "
				    "deadline)");
				break;
			}
			log_debug("%s: retrying in %lld ms: %s", action,
			    (long long)ms, err);
			c->sleep_ms(ms);
			continue;
		}
		break;
	}
	aws_http_resp_release(&resp);
	free(url);
	return rc;
}

static const char *
api_version(enum aws_service svc)
{
	switch (svc) {
	case AWS_SVC_AUTOSCALING:
		return "2011-01-01";
	case AWS_SVC_EC2:
		return "2016-11-15";
	case AWS_SVC_STS:
		return "2011-06-15";
	default:
		return "";
	}
}

int
aws_client_query(struct aws_client *c, enum aws_service svc,
    const char *action, const char *params, struct sbuf *out,
    struct aws_error *e, char *err, size_t errlen)
{
	static const char *const hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		NULL
	};
	struct sbuf form;
	int rc;

	sbuf_init(&form);
	aws_form_add(&form, "Action", action);
	aws_form_add(&form, "Version", api_version(svc));
	if (params != NULL && params[0] != '\0') {
		sbuf_addch(&form, '&');
		sbuf_adds(&form, params);
	}
	rc = call(c, svc, action, form.buf, form.len, hdrs, out, e, err,
	    errlen);
	sbuf_release(&form);
	return rc;
}

int
aws_client_json(struct aws_client *c, enum aws_service svc,
    const char *target_prefix, const char *action, const char *json,
    struct sbuf *out, struct aws_error *e, char *err, size_t errlen)
{
	char *target = xasprintf("X-Amz-Target: %s.%s", target_prefix, action);
	const char *hdrs[] = { "Content-Type: application/x-amz-json-1.1",
	    target, NULL };
	int rc;

	rc = call(c, svc, action, json, strlen(json), hdrs, out, e, err,
	    errlen);
	free(target);
	return rc;
}
