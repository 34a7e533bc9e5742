/*
 * Unit tests for fleeting-plugin-aws's HTTP layer and signed calls
 * (plugin-aws/aws_http.c, aws_client.c): endpoint selection and its
 * overrides, form encoding, the standard retry mode's classification and
 * backoff bounds, AWS_MAX_ATTEMPTS, timestamps, error documents turned
 * into "Action: Code: message", and, against a canned local server
 * (tests/unit/aws_canned.h): what a signed Query call looks like on the
 * wire (libcurl's SigV4 Authorization, one X-Amz-Date, the session
 * token), throttling retried up to the attempt limit with bounded sleeps,
 * non-retryable errors not retried, and no secret in any error string.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../../plugin-aws/aws_client.c"
#include "../../plugin-aws/aws_creds.c"
#include "../../plugin-aws/aws_http.c"
#include "../../plugin-aws/aws_xml.c"
#include "aws_canned.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define TOKEN "FwoGZXIvYXdzEXAMPLESESSIONTOKENxyz"

static const char *const endpoint_vars[] = {
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_AUTO_SCALING", "AWS_ENDPOINT_URL_EC2",
	"AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", "AWS_ENDPOINT_URL_STS",
	"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_MAX_ATTEMPTS", NULL
};

static int
setup(void **state)
{
	(void)state;
	for (size_t i = 0; endpoint_vars[i] != NULL; i++)
		unsetenv(endpoint_vars[i]);
	return 0;
}

static void
expect_endpoint(enum aws_service svc, const char *region, const char *want)
{
	char err[256] = "";
	char *u = aws_endpoint(svc, region, err, sizeof(err));

	if (want == NULL) {
		assert_null(u);
		assert_true(strlen(err) > 0);
		return;
	}
	assert_non_null(u);
	assert_string_equal(u, want);
	free(u);
}

static void
test_endpoints(void **state)
{
	(void)state;
	expect_endpoint(AWS_SVC_AUTOSCALING, "eu-west-1",
	    "https://autoscaling.eu-west-1.amazonaws.com");
	expect_endpoint(AWS_SVC_EC2, "us-east-2", "https://ec2.us-east-2.amazonaws.com");
	expect_endpoint(AWS_SVC_INSTANCE_CONNECT, "ap-south-1",
	    "https://ec2-instance-connect.ap-south-1.amazonaws.com");
	expect_endpoint(AWS_SVC_STS, "eu-west-3", "https://sts.eu-west-3.amazonaws.com");
	expect_endpoint(AWS_SVC_STS, NULL, "https://sts.amazonaws.com");
	expect_endpoint(AWS_SVC_EC2, "cn-north-1",
	    "https://ec2.cn-north-1.amazonaws.com.cn");
	expect_endpoint(AWS_SVC_EC2, NULL, NULL);
	expect_endpoint(AWS_SVC_EC2, "evil.com/x", NULL);

	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/", 1);
	expect_endpoint(AWS_SVC_EC2, "eu-west-1", "http://127.0.0.1:5000");
	expect_endpoint(AWS_SVC_STS, NULL, "http://127.0.0.1:5000");
	setenv("AWS_ENDPOINT_URL_AUTO_SCALING", "https://vpce.example:8443", 1);
	expect_endpoint(AWS_SVC_AUTOSCALING, "eu-west-1", "https://vpce.example:8443");
	expect_endpoint(AWS_SVC_EC2, "eu-west-1", "http://127.0.0.1:5000");
	setenv("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", "http://127.0.0.2:1", 1);
	expect_endpoint(AWS_SVC_INSTANCE_CONNECT, "x-1", "http://127.0.0.2:1");
	setenv("AWS_ENDPOINT_URL_EC2", "ftp://x", 1);
	expect_endpoint(AWS_SVC_EC2, "eu-west-1", NULL);
	setenv("AWS_ENDPOINT_URL_EC2", "http://a b", 1);
	expect_endpoint(AWS_SVC_EC2, "eu-west-1", NULL);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	expect_endpoint(AWS_SVC_EC2, "eu-west-1", "https://ec2.eu-west-1.amazonaws.com");
}

static void
test_form(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	aws_form_add(&sb, "Action", "DescribeAutoScalingGroups");
	aws_form_add(&sb, "AutoScalingGroupNames.member.1", "my asg/+=&~é");
	assert_string_equal(sb.buf, "Action=DescribeAutoScalingGroups&"
	    "AutoScalingGroupNames.member.1=my%20asg%2F%2B%3D%26~%C3%A9");
	sbuf_release(&sb);
}

static void
test_classify(void **state)
{
	(void)state;
	assert_int_equal(aws_retry_classify(200, 0, NULL), AWS_NO_RETRY);
	assert_int_equal(aws_retry_classify(400, 0, "Throttling"), AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(400, 0, "ThrottlingException"),
	    AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(503, 0, "RequestLimitExceeded"),
	    AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(400, 0, "RequestThrottled"),
	    AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(400, 0, "EC2ThrottledException"),
	    AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(429, 0, NULL), AWS_RETRY_THROTTLE);
	assert_int_equal(aws_retry_classify(429, 0, "Whatever"), AWS_RETRY_THROTTLE);
	for (long s = 500; s <= 504; s++)
		assert_int_equal(aws_retry_classify(s, 0, NULL),
		    s == 501 ? AWS_NO_RETRY : AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(500, 0, "ResourceContention"),
	    AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(400, 0, "RequestTimeout"),
	    AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(0, CURLE_COULDNT_CONNECT, NULL),
	    AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(0, CURLE_OPERATION_TIMEDOUT, NULL),
	    AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(0, CURLE_RECV_ERROR, NULL),
	    AWS_RETRY_TRANSIENT);
	assert_int_equal(aws_retry_classify(0, CURLE_URL_MALFORMAT, NULL),
	    AWS_NO_RETRY);
	assert_int_equal(aws_retry_classify(400, 0, "ValidationError"), AWS_NO_RETRY);
	assert_int_equal(aws_retry_classify(403, 0, "AccessDenied"), AWS_NO_RETRY);
	assert_int_equal(aws_retry_classify(403, 0, "SignatureDoesNotMatch"),
	    AWS_NO_RETRY);
	assert_int_equal(aws_retry_classify(400, 0, "ExpiredToken"), AWS_RETRY_REFRESH);
	assert_int_equal(aws_retry_classify(400, 0, "RequestExpired"),
	    AWS_RETRY_REFRESH);
	assert_int_equal(aws_retry_classify(403, 0, "ExpiredTokenException"),
	    AWS_RETRY_REFRESH);
}

static void
test_backoff(void **state)
{
	(void)state;
	assert_int_equal(aws_backoff_ms(0, 0.0), 0);
	assert_int_equal(aws_backoff_ms(0, 0.5), 500);
	assert_int_equal(aws_backoff_ms(1, 0.5), 1000);
	assert_int_equal(aws_backoff_ms(3, 0.5), 4000);
	assert_int_equal(aws_backoff_ms(5, 0.999), AWS_MAX_BACKOFF_MS);
	assert_int_equal(aws_backoff_ms(40, 0.9), AWS_MAX_BACKOFF_MS);
	for (unsigned a = 0; a < 12; a++)
		for (int i = 0; i < 100; i++) {
			double r = i / 100.0;
			int64_t ms = aws_backoff_ms(a, r);
			assert_true(ms >= 0);
			assert_true(ms <= AWS_MAX_BACKOFF_MS);
			assert_true(ms <= (int64_t)(1000.0 * (1u << a)));
		}
	assert_int_equal(aws_max_attempts(), 3);
	setenv("AWS_MAX_ATTEMPTS", "5", 1);
	assert_int_equal(aws_max_attempts(), 5);
	setenv("AWS_MAX_ATTEMPTS", "zero", 1);
	assert_int_equal(aws_max_attempts(), 3);
	setenv("AWS_MAX_ATTEMPTS", "0", 1);
	assert_int_equal(aws_max_attempts(), 3);
}

static void
test_time(void **state)
{
	time_t t;

	(void)state;
	assert_int_equal(aws_parse_time("2030-01-02T03:04:05Z", &t), 0);
	assert_int_equal(t, 1893553445);
	assert_int_equal(aws_parse_time("2030-01-02T03:04:05.123Z", &t), 0);
	assert_int_equal(t, 1893553445);
	assert_int_equal(aws_parse_time("2030-01-02T05:04:05+02:00", &t), 0);
	assert_int_equal(t, 1893553445);
	assert_int_equal(aws_parse_time("2030-01-02T03:04:05", &t), FL_ERR_PARSE);
	assert_int_equal(aws_parse_time("2030-01-02T03:04:05Zjunk", &t),
	    FL_ERR_PARSE);
	assert_int_equal(aws_parse_time(NULL, &t), FL_ERR_PARSE);
}

static void
test_error_parse(void **state)
{
	static const char xml[] = "<ErrorResponse><Error><Type>Sender</Type>"
	    "<Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/ci is "
	    "not authorized</Message></Error></ErrorResponse>";
	static const char json[] = "{\"__type\": \"com.amazon.ec2instanceconnect"
	    "#EC2InstanceNotFoundException\", \"Message\": \"Instance not found\"}";
	struct aws_error e;
	char err[512];

	(void)state;
	aws_error_parse(403, xml, strlen(xml), "", &e);
	assert_string_equal(e.code, "AccessDenied");
	aws_error_format("DescribeAutoScalingGroups", &e, 1, err, sizeof(err));
	assert_string_equal(err, "DescribeAutoScalingGroups: AccessDenied: User: "
	    "arn:aws:iam::1:user/ci is not authorized");
	aws_error_parse(400, json, strlen(json), "", &e);
	assert_string_equal(e.code, "EC2InstanceNotFoundException");
	assert_string_equal(e.message, "Instance not found");
	aws_error_parse(400, "{}", 2, "ThrottlingException", &e);
	assert_string_equal(e.code, "ThrottlingException");
	aws_error_parse(502, "<html>bad gateway</html>", 24, "", &e);
	assert_string_equal(e.code, "");
	aws_error_format("SetDesiredCapacity", &e, 3, err, sizeof(err));
	assert_string_equal(err, "SetDesiredCapacity: HTTP 502 (after 3 attempts)");
}

/* --------------------------------------------------- on the wire */

static int64_t slept[16];
static size_t nslept;

static void
fake_sleep(int64_t ms)
{
	if (nslept < 16)
		slept[nslept++] = ms;
}

/* A client with env keys (and a session token) pointed at url. */
static struct aws_client *
client_for(const char *url, struct aws_http **http, struct aws_creds **creds)
{
	struct aws_creds_opts o = { .region = "eu-west-3" };
	struct aws_client *c;
	char err[256];

	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
	setenv("AWS_ENDPOINT_URL", url, 1);
	*http = aws_http_new();
	*creds = aws_creds_new(*http, &o, err, sizeof(err));
	assert_non_null(*creds);
	c = aws_client_new(*http, *creds, err, sizeof(err));
	assert_non_null(c);
	nslept = 0;
	aws_client_set_sleep(c, fake_sleep);
	return c;
}

static void
client_done(struct aws_client *c, struct aws_http *http, struct aws_creds *cr)
{
	aws_client_free(c);
	aws_creds_free(cr);
	aws_http_free(http);
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strcasestr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_signed_query(void **state)
{
	const char *answers[] = {
		"200\n<SetDesiredCapacityResponse><ResponseMetadata><RequestId>r"
		"</RequestId></ResponseMetadata></SetDesiredCapacityResponse>",
	};
	struct canned *srv = canned_start(answers, 1);
	char *url = canned_url(srv), err[512];
	struct aws_http *http;
	struct aws_creds *cr;
	struct aws_client *c = client_for(url, &http, &cr);
	struct sbuf params, out;

	(void)state;
	sbuf_init(&params);
	sbuf_init(&out);
	aws_form_add(&params, "AutoScalingGroupName", "asg");
	aws_form_add(&params, "DesiredCapacity", "2");
	aws_form_add(&params, "HonorCooldown", "false");
	assert_int_equal(aws_client_query(c, AWS_SVC_AUTOSCALING,
	    "SetDesiredCapacity", params.buf, &out, NULL, err, sizeof(err)), 0);
	assert_true(aws_xml_is_response(out.buf, out.len,
	    "SetDesiredCapacityResponse"));
	const char *r = srv->requests[0];
	assert_non_null(strstr(r, "POST / HTTP/1.1"));
	assert_non_null(strstr(r, "Authorization: AWS4-HMAC-SHA256 Credential="
	    "AKIAIOSFODNN7EXAMPLE/"));
	assert_non_null(strstr(r, "/eu-west-3/autoscaling/aws4_request, "
	    "SignedHeaders="));
	assert_non_null(strstr(r, "x-amz-security-token"));
	assert_non_null(strstr(r, "X-Amz-Security-Token: " TOKEN));
	assert_int_equal(count_of(r, "\r\nX-Amz-Date:"), 1);
	assert_non_null(strstr(r, "Content-Type: application/x-www-form-"
	    "urlencoded; charset=utf-8"));
	assert_non_null(strstr(r, "\r\n\r\nAction=SetDesiredCapacity&Version="
	    "2011-01-01&AutoScalingGroupName=asg&DesiredCapacity=2&"
	    "HonorCooldown=false"));
	assert_null(strstr(r, SECRET));
	sbuf_release(&params);
	sbuf_release(&out);
	client_done(c, http, cr);
	canned_stop(srv);
	free(url);
}

static void
test_throttle_retried(void **state)
{
	const char *answers[] = {
		"400\n<ErrorResponse><Error><Type>Sender</Type><Code>Throttling"
		"</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
		"503\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
		"<Message>Request limit exceeded.</Message></Error></Errors>"
		"</Response>",
		"200\n<DescribeInstancesResponse><reservationSet/>"
		"</DescribeInstancesResponse>",
	};
	struct canned *srv = canned_start(answers, 3);
	char *url = canned_url(srv), err[512];
	struct aws_http *http;
	struct aws_creds *cr;
	struct aws_client *c = client_for(url, &http, &cr);
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	assert_int_equal(aws_client_query(c, AWS_SVC_EC2, "DescribeInstances",
	    "", &out, NULL, err, sizeof(err)), 0);
	assert_int_equal(canned_count(srv), 3);
	assert_int_equal(nslept, 2);
	assert_true(slept[0] >= 0 && slept[0] <= 1000);
	assert_true(slept[1] >= 0 && slept[1] <= 2000);
	assert_non_null(strstr(srv->requests[0], "Version=2016-11-15"));
	assert_non_null(strstr(srv->requests[0], "/ec2/aws4_request"));
	sbuf_release(&out);
	client_done(c, http, cr);
	canned_stop(srv);
	free(url);
}

static int64_t clock_left;

static int64_t
fake_clock(void)
{
	return clock_left;
}

#define THROTTLED "400\n<ErrorResponse><Error><Code>Throttling</Code>" \
	"<Message>Rate exceeded</Message></Error></ErrorResponse>"

/* Attempts run out; then, with the manager's deadline near, no retry
 * starts that could not end before it: the error comes back at once. */
static void
test_throttle_exhausted(void **state)
{
	const char *answers[] = {
		THROTTLED, THROTTLED, THROTTLED,
		THROTTLED,
		"200\n<ok/>",
	};
	struct canned *srv = canned_start(answers, 5);
	char *url = canned_url(srv), err[512];
	struct aws_http *http;
	struct aws_creds *cr;
	struct aws_client *c = client_for(url, &http, &cr);
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_client_query(c, AWS_SVC_AUTOSCALING,
	    "DescribeAutoScalingGroups", "", NULL, &e, err, sizeof(err)),
	    FL_ERR_PROTO);
	assert_int_equal(canned_count(srv), 3);
	assert_string_equal(e.code, "Throttling");
	assert_string_equal(err, "DescribeAutoScalingGroups: Throttling: Rate "
	    "exceeded (after 3 attempts)");

	clock_left = 1800;	/* less than margin + a retry's minimum */
	aws_client_set_clock(c, fake_clock);
	nslept = 0;
	assert_int_equal(aws_client_query(c, AWS_SVC_AUTOSCALING,
	    "DescribeAutoScalingGroups", "", NULL, &e, err, sizeof(err)),
	    FL_ERR_PROTO);
	assert_int_equal(canned_count(srv), 4);
	assert_int_equal(nslept, 0);
	assert_string_equal(e.code, "Throttling");
	assert_non_null(strstr(err, "before the manager's deadline"));
	/* No deadline: on as usual. */
	clock_left = -1;
	assert_int_equal(aws_client_query(c, AWS_SVC_AUTOSCALING,
	    "DescribeAutoScalingGroups", "", NULL, &e, err, sizeof(err)), 0);
	assert_int_equal(canned_count(srv), 5);
	client_done(c, http, cr);
	canned_stop(srv);
	free(url);
}

static void
test_not_retried_and_no_secret(void **state)
{
	const char *answers[] = {
		"403\n<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
		"<Message>The request signature we calculated does not match"
		"</Message></Error></ErrorResponse>",
		"400\n{\"__type\": \"InvalidArgsException\", \"Message\": "
		"\"bad key\"}",
		"0\n",		/* connection closed without an answer */
		"0\n", "0\n",
		"400\n<Response><Errors><Error><Code>ExpiredToken</Code><Message>"
		"expired</Message></Error></Errors></Response>",
		"400\n<Response><Errors><Error><Code>ExpiredToken</Code><Message>"
		"expired</Message></Error></Errors></Response>",
	};
	struct canned *srv = canned_start(answers, 7);
	char *url = canned_url(srv), err[512];
	struct aws_http *http;
	struct aws_creds *cr;
	struct aws_client *c = client_for(url, &http, &cr);
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_client_query(c, AWS_SVC_AUTOSCALING,
	    "DescribeAutoScalingGroups", "", NULL, &e, err, sizeof(err)),
	    FL_ERR_PROTO);
	assert_int_equal(canned_count(srv), 1);
	assert_non_null(strstr(err, "SignatureDoesNotMatch"));
	assert_null(strstr(err, SECRET));
	assert_null(strstr(err, TOKEN));

	assert_int_equal(aws_client_json(c, AWS_SVC_INSTANCE_CONNECT,
	    "AWSEC2InstanceConnectService", "SendSSHPublicKey", "{}", NULL, &e,
	    err, sizeof(err)), FL_ERR_PROTO);
	assert_string_equal(err, "SendSSHPublicKey: InvalidArgsException: bad key");
	const char *r = srv->requests[1];
	assert_non_null(strstr(r, "X-Amz-Target: AWSEC2InstanceConnectService."
	    "SendSSHPublicKey"));
	assert_non_null(strstr(r, "Content-Type: application/x-amz-json-1.1"));
	assert_non_null(strstr(r, "/ec2-instance-connect/aws4_request"));

	/* network failures: retried, then reported without secrets */
	assert_int_equal(aws_client_query(c, AWS_SVC_EC2, "DescribeInstances",
	    "", NULL, &e, err, sizeof(err)), FL_ERR_IO);
	assert_int_equal(canned_count(srv), 5);
	assert_non_null(strstr(err, "DescribeInstances: "));
	assert_null(strstr(err, SECRET));
	assert_null(strstr(err, TOKEN));
	assert_null(strstr(err, "AKIAIOSFODNN7EXAMPLE"));

	/* an expired session: keys fetched again once, not more */
	assert_int_equal(aws_client_query(c, AWS_SVC_EC2, "DescribeInstances",
	    "", NULL, &e, err, sizeof(err)), FL_ERR_PROTO);
	assert_int_equal(canned_count(srv), 7);
	assert_string_equal(e.code, "ExpiredToken");
	assert_null(strstr(err, TOKEN));
	client_done(c, http, cr);
	canned_stop(srv);

	/* nothing listening at all */
	setenv("AWS_MAX_ATTEMPTS", "1", 1);
	c = client_for("http://127.0.0.1:1", &http, &cr);
	assert_int_equal(aws_client_query(c, AWS_SVC_EC2, "DescribeInstances",
	    "", NULL, &e, err, sizeof(err)), FL_ERR_IO);
	assert_null(strstr(err, SECRET));
	assert_null(strstr(err, TOKEN));
	client_done(c, http, cr);
	free(url);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_endpoints, setup),
		cmocka_unit_test_setup(test_form, setup),
		cmocka_unit_test_setup(test_classify, setup),
		cmocka_unit_test_setup(test_backoff, setup),
		cmocka_unit_test_setup(test_time, setup),
		cmocka_unit_test_setup(test_error_parse, setup),
		cmocka_unit_test_setup(test_signed_query, setup),
		cmocka_unit_test_setup(test_throttle_retried, setup),
		cmocka_unit_test_setup(test_throttle_exhausted, setup),
		cmocka_unit_test_setup(test_not_retried_and_no_secret, setup),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	aws_xml_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	log_release();
	return rc;
}
