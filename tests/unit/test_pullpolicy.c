/*
 * pullpolicy: GitLab Runner's choice of pull policies (job list over
 * config over the default, filtered by allowed_pull_policies, with the
 * runner's error texts) and allowed_images globs (doublestar syntax).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "pullpolicy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
test_names(void **state)
{
	(void)state;
	assert_int_equal(pullpolicy_parse("always"), PULL_ALWAYS);
	assert_int_equal(pullpolicy_parse("if-not-present"),
	    PULL_IF_NOT_PRESENT);
	assert_int_equal(pullpolicy_parse("never"), PULL_NEVER);
	assert_int_equal(pullpolicy_parse("Always"), FL_ERR_INVAL);
	assert_int_equal(pullpolicy_parse(""), FL_ERR_INVAL);
	assert_string_equal(pullpolicy_name(PULL_IF_NOT_PRESENT),
	    "if-not-present");
}

static void
test_effective(void **state)
{
	enum pullpolicy out[PULLPOLICY_MAX];
	char err[512];
	const char *job[] = { "if-not-present", "always" };
	const char *job_never[] = { "never" };
	const char *cfg[] = { "always", "if-not-present" };
	const char *allowed[] = { "if-not-present", "never" };
	int n;

	(void)state;
	/* Nothing configured: always. */
	n = pullpolicy_effective("alpine", NULL, 0, NULL, 0, NULL, 0, out, err,
	    sizeof(err));
	assert_int_equal(n, 1);
	assert_int_equal(out[0], PULL_ALWAYS);
	/* The config's list, in order; allowed defaults to it. */
	n = pullpolicy_effective("alpine", NULL, 0, cfg, 2, NULL, 0, out, err,
	    sizeof(err));
	assert_int_equal(n, 2);
	assert_int_equal(out[0], PULL_ALWAYS);
	assert_int_equal(out[1], PULL_IF_NOT_PRESENT);
	/* The job's list wins, in its order, limited to what is allowed. */
	n = pullpolicy_effective("alpine", job, 2, cfg, 2, NULL, 0, out, err,
	    sizeof(err));
	assert_int_equal(n, 2);
	assert_int_equal(out[0], PULL_IF_NOT_PRESENT);
	assert_int_equal(out[1], PULL_ALWAYS);
	n = pullpolicy_effective("alpine", job, 2, cfg, 2, allowed, 2, out,
	    err, sizeof(err));
	assert_int_equal(n, 1);
	assert_int_equal(out[0], PULL_IF_NOT_PRESENT);
	/* The job asks for something not allowed. */
	n = pullpolicy_effective("alpine", job_never, 1, cfg, 1, NULL, 0, out,
	    err, sizeof(err));
	assert_int_equal(n, FL_ERR_INVAL);
	assert_string_equal(err, "invalid pull policy for image \"alpine\": "
	    "pull_policy ([never]) defined in GitLab pipeline config is not "
	    "one of the allowed_pull_policies ([always])");
	/* The config's list against allowed_pull_policies. */
	n = pullpolicy_effective("img:1", NULL, 0, cfg, 1, job_never, 1, out,
	    err, sizeof(err));
	assert_int_equal(n, FL_ERR_INVAL);
	assert_string_equal(err, "invalid pull policy for image \"img:1\": "
	    "pull_policy ([always]) defined in Runner config is not one of "
	    "the allowed_pull_policies ([never])");
	/* The default against allowed_pull_policies. */
	n = pullpolicy_effective("x", NULL, 0, NULL, 0, allowed, 2, out, err,
	    sizeof(err));
	assert_int_equal(n, FL_ERR_INVAL);
	assert_string_equal(err, "invalid pull policy for image \"x\": "
	    "pull_policy ([always]) defined in Runner config (default) is not "
	    "one of the allowed_pull_policies ([if-not-present never])");
}

static void
test_unsupported(void **state)
{
	enum pullpolicy out[PULLPOLICY_MAX];
	char err[512];
	const char *badcfg[] = { "always", "sometimes" };
	const char *badallowed[] = { "Never" };
	const char *job[] = { "bogus", "never" };
	const char *never[] = { "never" };

	(void)state;
	assert_int_equal(pullpolicy_effective("a", NULL, 0, badcfg, 2, NULL, 0,
	    out, err, sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "unsupported pull_policy config: "
	    "\"sometimes\"");
	assert_int_equal(pullpolicy_effective("a", NULL, 0, NULL, 0,
	    badallowed, 1, out, err, sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "unsupported allowed_pull_policies config: "
	    "\"Never\"");
	/* Unknown job values are filtered away like disallowed ones. */
	assert_int_equal(pullpolicy_effective("a", job, 2, never, 1, NULL, 0,
	    out, err, sizeof(err)), 1);
	assert_int_equal(out[0], PULL_NEVER);
	/* A job list overrides a bad config only if allowed is given. */
	assert_int_equal(pullpolicy_effective("a", never, 1, badcfg, 2, never,
	    1, out, err, sizeof(err)), 1);
	/* A tiny error buffer truncates, never overflows. */
	assert_int_equal(pullpolicy_effective("a", NULL, 0, badcfg, 2, NULL, 0,
	    out, err, 8), FL_ERR_INVAL);
	assert_string_equal(err, "unsuppo");
}

static void
test_glob(void **state)
{
	static const struct {
		const char *pat, *name;
		int want;
	} cases[] = {
		{ "ruby:*", "ruby:2.7", 1 },
		{ "ruby:*", "ruby:", 1 },
		{ "ruby:*", "rubyx:2.7", 0 },
		{ "ruby:*", "library/ruby:2.7", 0 },
		{ "*", "alpine", 1 },
		{ "*", "library/alpine", 0 },
		{ "*/*", "library/alpine", 1 },
		{ "**", "anything/at/all:tag", 1 },
		{ "**", "", 1 },
		{ "**/*", "alpine", 1 },
		{ "**/*", "a/b/c", 1 },
		{ "my.registry.tld:5000/*:*", "my.registry.tld:5000/img:1", 1 },
		{ "my.registry.tld:5000/*:*", "my.registry.tld:5000/g/img:1", 0 },
		{ "my.registry.tld:5000/**", "my.registry.tld:5000/g/img:1", 1 },
		{ "my.registry.tld:5000/**", "my.registry.tld:5000", 1 },
		{ "registry.gitlab.com/**/*:latest",
		    "registry.gitlab.com/a/b/c:latest", 1 },
		{ "registry.gitlab.com/**/*:latest",
		    "registry.gitlab.com/c:latest", 1 },
		{ "registry.gitlab.com/**/*:latest",
		    "registry.gitlab.com/a/c:1.0", 0 },
		{ "a/**/b", "a/b", 1 },
		{ "a/**/b", "a/x/y/b", 1 },
		{ "a/**/b", "a/x/y/c", 0 },
		{ "a**b", "axxb", 1 },
		{ "a**b", "ax/xb", 0 },
		{ "alpine:3.1?", "alpine:3.19", 1 },
		{ "alpine:3.1?", "alpine:3.1", 0 },
		{ "alpine:3.[0-9]", "alpine:3.7", 1 },
		{ "alpine:3.[!0-5]", "alpine:3.7", 1 },
		{ "alpine:3.[^0-9]", "alpine:3.7", 0 },
		{ "alpine:3.[0-9", "alpine:3.7", 0 },	/* malformed */
		{ "alpine:3.[]", "alpine:3.7", 0 },
		{ "{ruby,python}:*", "python:3", 1 },
		{ "{ruby,python}:*", "perl:5", 0 },
		{ "{a,{b,c}d}", "cd", 1 },
		{ "{a,b", "a", 0 },
		{ "x\\*", "x*", 1 },
		{ "x\\*", "xy", 0 },
		{ "", "", 1 },
		{ "", "a", 0 },
		{ "alpine", "alpine", 1 },
		{ "alpine", "alpine:latest", 0 },
	};

	(void)state;
	for (size_t i = 0; i < N(cases); i++)
		if (pullpolicy_glob_match(cases[i].pat, cases[i].name) !=
		    cases[i].want)
			fail_msg("glob %s vs %s: want %d", cases[i].pat,
			    cases[i].name, cases[i].want);
}

/* Pathological patterns stay fast (memo table, bounded braces). */
static void
test_glob_bounded(void **state)
{
	char pat[512], name[512];
	size_t o = 0;

	(void)state;
	for (int i = 0; i < 30; i++) {
		memcpy(pat + o, "**/", 3);
		o += 3;
	}
	memcpy(pat + o, "z", 2);
	memset(name, 0, sizeof(name));
	for (int i = 0; i < 60; i++)
		memcpy(name + i * 2, "a/", 2);
	name[120] = 'y';
	assert_int_equal(pullpolicy_glob_match(pat, name), 0);
	assert_int_equal(pullpolicy_glob_match(
	    "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", "bbbbbbbbb"), 0);
	assert_int_equal(pullpolicy_glob_match("{a,b}{a,b}{a,b}", "bab"), 1);
	memset(name, 'a', 200);
	name[200] = '\0';
	assert_int_equal(pullpolicy_glob_match("*a*a*a*a*a*a*a*a*b", name), 0);
}

static void
test_image_allowed(void **state)
{
	char err[256];
	const char *allowed[] = { "ruby:*", "python:*" };
	const char *internal[] = { "alpine:3.19" };

	(void)state;
	assert_int_equal(pullpolicy_image_allowed("anything", NULL, 0, NULL, 0,
	    "images", err, sizeof(err)), 0);
	assert_int_equal(pullpolicy_image_allowed("ruby:3", allowed, 2,
	    internal, 1, "images", err, sizeof(err)), 0);
	assert_int_equal(pullpolicy_image_allowed("alpine:3.19", allowed, 2,
	    internal, 1, "images", err, sizeof(err)), 0);
	assert_int_equal(pullpolicy_image_allowed("alpine:3.18", allowed, 2,
	    internal, 1, "images", err, sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "the \"alpine:3.18\" image is not present on "
	    "list of allowed images");
	assert_int_equal(pullpolicy_image_allowed("redis", allowed, 2, NULL, 0,
	    "services", err, sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "the \"redis\" image is not present on list "
	    "of allowed services");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_effective),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_glob_bounded),
		cmocka_unit_test(test_image_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
