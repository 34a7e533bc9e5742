/*
 * dockerauth: DOCKER_AUTH_CONFIG parsing, registry and path
 * normalization as GitLab Runner does it, the most specific credential
 * winning, first source winning, the X-Registry-Auth encoding, and errors
 * that never quote a secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "dockerauth.h"
#include "err.h"
#include "xmalloc.h"

static void
test_registry(void **state)
{
	static const struct {
		const char *image, *want;
	} cases[] = {
		{ "alpine", "docker.io" },
		{ "alpine:3.19", "docker.io" },
		{ "library/alpine", "docker.io" },
		{ "gitlab/gitlab-runner:latest", "docker.io" },
		{ "registry.gitlab.com/group/img:1", "registry.gitlab.com" },
		{ "localhost/img", "localhost" },
		{ "localhost:5000/img", "localhost:5000" },
		{ "myhost:5000/img", "myhost:5000" },
		{ "index.docker.io/library/alpine", "docker.io" },
		{ "127.0.0.1:9/x", "127.0.0.1:9" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(dockerauth_registry(cases[i].image, out,
		    sizeof(out)) > 0);
		assert_string_equal(out, cases[i].want);
	}
	assert_int_equal(dockerauth_registry("registry.example.com/x", out, 5),
	    FL_ERR_RANGE);
}

static void
test_paths(void **state)
{
	static const struct {
		const char *in, *want;
	} img[] = {
		{ "nginx", "docker.io/nginx" },
		{ "nginx:latest", "docker.io/nginx" },
		{ "library/nginx@sha256:abcd", "docker.io/library/nginx" },
		{ "index.docker.io/nginx", "docker.io/nginx" },
		{ "Registry.Example.COM/Group/Img:1", "registry.example.com/Group/Img" },
		{ "localhost:5000/a//b/", "localhost:5000/a/b" },
		{ "LOCALHOST/x", "localhost/x" },
	}, srv[] = {
		{ "https://index.docker.io/v1/", "docker.io" },
		{ "HTTP://Registry.Example.com/anything", "registry.example.com" },
		{ "registry.example.com", "registry.example.com" },
		{ "Registry.Example.com/Group/", "registry.example.com/Group" },
		{ "registry.example.com:5000/group/img:tag",
		    "registry.example.com:5000/group/img" },
		{ "registry.example.com:5000", "registry.example.com:5000" },
		{ "index.docker.io", "index.docker.io" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(img) / sizeof(img[0]); i++) {
		char *p = dockerauth_image_path(img[i].in);

		assert_string_equal(p, img[i].want);
		free(p);
	}
	for (size_t i = 0; i < sizeof(srv) / sizeof(srv[0]); i++) {
		char *p = dockerauth_server_path(srv[i].in);

		assert_string_equal(p, srv[i].want);
		free(p);
	}
}

static void
test_base64(void **state)
{
	size_t n;
	char *s, *d;

	(void)state;
	s = dockerauth_b64("user:pass", 9, 0);
	assert_string_equal(s, "dXNlcjpwYXNz");
	free(s);
	s = dockerauth_b64("\xfb\xff", 2, 0);
	assert_string_equal(s, "+/8=");
	free(s);
	s = dockerauth_b64("\xfb\xff", 2, 1);
	assert_string_equal(s, "-_8=");
	free(s);
	s = dockerauth_b64("a", 1, 0);
	assert_string_equal(s, "YQ==");
	free(s);
	s = dockerauth_b64("", 0, 0);
	assert_string_equal(s, "");
	free(s);
	d = dockerauth_b64_decode("dXNlcjpwYXNz", &n);
	assert_int_equal(n, 9);
	assert_memory_equal(d, "user:pass", 9);
	free(d);
	d = dockerauth_b64_decode("YQ", &n);	/* padding optional */
	assert_non_null(d);
	assert_int_equal(n, 1);
	free(d);
	assert_null(dockerauth_b64_decode("Y", &n));
	assert_null(dockerauth_b64_decode("YR==", &n));	/* non-canonical */
	assert_null(dockerauth_b64_decode("Y!==", &n));
	assert_null(dockerauth_b64_decode("YQ=", &n));
}

/* Decode a header back to its JSON for checking. */
static json_t *
decode_header(const char *h)
{
	char *std = xstrdup(h), *raw;
	size_t n;
	json_t *j;

	for (char *p = std; *p; p++) {
		if (*p == '-')
			*p = '+';
		else if (*p == '_')
			*p = '/';
	}
	raw = dockerauth_b64_decode(std, &n);
	free(std);
	assert_non_null(raw);
	j = json_loadb(raw, n, 0, NULL);
	free(raw);
	assert_non_null(j);
	return j;
}

static void
test_config_and_match(void **state)
{
	/* user:pass, other:secret, deep:deeper */
	const char *cfg = "{\"auths\": {"
	    "\"https://index.docker.io/v1/\": {\"auth\": \"dXNlcjpwYXNz\"},"
	    "\"registry.example.com\": {\"auth\": \"b3RoZXI6c2VjcmV0\"},"
	    "\"registry.example.com/group/sub\": {\"auth\": \"ZGVlcDpkZWVwZXI=\"},"
	    "\"plain.example.com\": {\"username\": \"u\", \"password\": "
	    "\"p\\\"q\", \"identitytoken\": \"tok\"}},"
	    "\"credsStore\": \"desktop\"}";
	struct dockerauth *a = dockerauth_new();
	const char *src, *reg;
	char err[256], *h;
	json_t *j;

	(void)state;
	assert_int_equal(dockerauth_add_config(a, cfg, strlen(cfg),
	    "$DOCKER_AUTH_CONFIG", err, sizeof(err)), 4);

	h = dockerauth_header(a, "alpine:3.19", &src, &reg);
	assert_non_null(h);
	assert_string_equal(src, "$DOCKER_AUTH_CONFIG");
	assert_string_equal(reg, "docker.io");
	j = decode_header(h);
	assert_string_equal(json_string_value(json_object_get(j, "username")),
	    "user");
	assert_string_equal(json_string_value(json_object_get(j, "password")),
	    "pass");
	assert_string_equal(json_string_value(json_object_get(j,
	    "serveraddress")), "https://index.docker.io/v1/");
	json_decref(j);
	freezero_str(h);

	/* The most specific path wins; its parent serves the rest. */
	h = dockerauth_header(a, "registry.example.com/group/sub/img:1", NULL,
	    &reg);
	assert_string_equal(reg, "registry.example.com/group/sub");
	j = decode_header(h);
	assert_string_equal(json_string_value(json_object_get(j, "username")),
	    "deep");
	json_decref(j);
	freezero_str(h);
	h = dockerauth_header(a, "Registry.Example.com/group/other:1", NULL,
	    &reg);
	assert_string_equal(reg, "registry.example.com");
	freezero_str(h);

	/* Explicit fields, escaping and the identity token. */
	h = dockerauth_header(a, "plain.example.com/x", NULL, NULL);
	j = decode_header(h);
	assert_string_equal(json_string_value(json_object_get(j, "password")),
	    "p\"q");
	assert_string_equal(json_string_value(json_object_get(j,
	    "identitytoken")), "tok");
	json_decref(j);
	freezero_str(h);

	/* No match. */
	assert_null(dockerauth_header(a, "quay.io/x/y", NULL, NULL));

	/* A later source does not override; a new registry is added. */
	dockerauth_add(a, "registry.example.com", "job", "jobpw",
	    "job payload (GitLab Registry)");
	dockerauth_add(a, "quay.io", "q", "qpw",
	    "job payload (GitLab Registry)");
	h = dockerauth_header(a, "registry.example.com/a", &src, NULL);
	assert_string_equal(src, "$DOCKER_AUTH_CONFIG");
	freezero_str(h);
	h = dockerauth_header(a, "quay.io/x/y", &src, NULL);
	assert_string_equal(src, "job payload (GitLab Registry)");
	freezero_str(h);
	dockerauth_free(a);
	dockerauth_free(NULL);
}

static void
test_config_errors(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[1,2]",
		"{\"auths\": []}",
		"{\"auths\": {\"r\": 1}}",
		"{\"auths\": {\"r\": {\"auth\": 5}}}",
		"{\"auths\": {\"r\": {\"auth\": \"!!!\"}}}",
		/* base64 of "nocolonsecret" */
		"{\"auths\": {\"r\": {\"auth\": \"bm9jb2xvbnNlY3JldA==\"}}}",
	};
	struct dockerauth *a = dockerauth_new();
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dockerauth_add_config(a, bad[i],
		    strlen(bad[i]), "x", err, sizeof(err)), FL_ERR_PARSE);
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "nocolon"));
		assert_null(strstr(err, "secret"));
	}
	/* Nothing was added by the failures; no auths is no error. */
	assert_null(dockerauth_header(a, "r/x", NULL, NULL));
	assert_int_equal(dockerauth_add_config(a, "{}", 2, "x", err,
	    sizeof(err)), 0);
	/* An entry without "auth" but with nothing else is added empty. */
	assert_int_equal(dockerauth_add_config(a, "{\"auths\":{\"e.com\":{}}}",
	    22, "x", err, sizeof(err)), 1);
	dockerauth_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_config_and_match),
		cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
