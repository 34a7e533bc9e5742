/*
 * jobmask: masked phrases, URL query values and token prefixes, checked
 * for every way of splitting the stream into writes (one split at every
 * offset, two splits at every pair, byte by byte), overlapping phrases, a
 * phrase that is a prefix of another, trimming and empty phrases, the
 * token prefix list and its limit of 15, binary data, and a randomised
 * comparison with a naive whole-text masker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jobmask.h"
#include "xmalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Mask in in writes cut at the given offsets (ascending), then flush. */
static char *
run_cuts(struct jobmask *m, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, size_t *outlen)
{
	struct sbuf out;
	size_t prev = 0, i;

	sbuf_init(&out);
	for (i = 0; i <= ncuts; i++) {
		size_t at = i < ncuts ? cuts[i] : len;

		jobmask_write(m, in + prev, at - prev, &out);
		prev = at;
	}
	jobmask_flush(m, &out);
	return sbuf_detach(&out, outlen);
}

/*
 * The masked form of in (length len) with the given masker settings,
 * checked to be the same for every single split, every pair of splits
 * (len <= 80) and byte by byte.  Returns the one-write result.
 */
static char *
mask_all_ways(const char *const *ph, size_t n, const char *const *pfx,
    size_t npfx, int ff, const char *in, size_t len)
{
	struct jobmask *m = jobmask_new(ph, n, pfx, npfx, ff);
	size_t wl, l, i, j;
	char *whole = run_cuts(m, in, len, NULL, 0, &wl), *o;
	size_t *bytes;

	for (i = 0; i <= len; i++) {
		o = run_cuts(m, in, len, &i, 1, &l);
		if (l != wl || memcmp(o, whole, l) != 0)
			fail_msg("split at %zu: \"%s\" != \"%s\"", i, o, whole);
		free(o);
	}
	if (len <= 80) {
		for (i = 0; i <= len; i++) {
			for (j = i; j <= len; j++) {
				size_t c[2] = { i, j };

				o = run_cuts(m, in, len, c, 2, &l);
				if (l != wl || memcmp(o, whole, l) != 0)
					fail_msg("splits at %zu,%zu: \"%s\"",
					    i, j, o);
				free(o);
			}
		}
	}
	bytes = xcalloc(len + 1, sizeof(*bytes));
	for (i = 0; i < len; i++)
		bytes[i] = i;
	o = run_cuts(m, in, len, bytes, len, &l);
	assert_int_equal(l, wl);
	assert_memory_equal(o, whole, l);
	free(o);
	free(bytes);
	jobmask_free(m);
	return whole;
}

static void
expect(const char *const *ph, size_t n, const char *in, const char *want)
{
	char *got = mask_all_ways(ph, n, NULL, 0, 1, in, strlen(in));

	assert_string_equal(got, want);
	free(got);
}

static void
expect_tok(const char *const *pfx, size_t npfx, int ff, const char *in,
    const char *want)
{
	char *got = mask_all_ways(NULL, 0, pfx, npfx, ff, in, strlen(in));

	assert_string_equal(got, want);
	free(got);
}

static void
test_phrase_basic(void **state)
{
	const char *ph[] = { "s3cr3t-Value_42" };

	(void)state;
	expect(ph, 1, "echo s3cr3t-Value_42 done\n",
	    "echo [MASKED] done\n");
	expect(ph, 1, "s3cr3t-Value_42", "[MASKED]");
	expect(ph, 1, "s3cr3t-Value_4 s3cr3t-Value_42s3cr3t-Value_",
	    "s3cr3t-Value_4 [MASKED]s3cr3t-Value_");
	expect(ph, 1, "no secret here", "no secret here");
	expect(ph, 1, "", "");
	/* Repeated: one run (adjacent occurrences join). */
	expect(ph, 1, "s3cr3t-Value_42s3cr3t-Value_42 x",
	    "[MASKED] x");
	expect(ph, 1, "a s3cr3t-Value_42 b s3cr3t-Value_42 c",
	    "a [MASKED] b [MASKED] c");
}

static void
test_phrase_overlap(void **state)
{
	const char *ab[] = { "abcd", "cdef" };
	const char *long_short[] = { "bcde", "abc" };
	const char *self[] = { "aa" };
	const char *abab[] = { "abab" };
	const char *three[] = { "xyz1", "1234", "34zz" };

	(void)state;
	expect(ab, 2, "-abcdef-", "-[MASKED]-");
	expect(ab, 2, "-abcde-", "-[MASKED]e-");
	expect(ab, 2, "-bcdef-", "-b[MASKED]-");
	/* GitLab's longest-first chain would show "a" or "de"; here no
	 * byte of either occurrence shows. */
	expect(long_short, 2, "abcde", "[MASKED]");
	expect(long_short, 2, "abcdX", "[MASKED]dX");
	expect(self, 1, "aaa", "[MASKED]");
	expect(self, 1, "baab", "b[MASKED]b");
	expect(self, 1, "bab", "bab");
	expect(abab, 1, "abababa", "[MASKED]a");
	expect(abab, 1, "abaabab", "aba[MASKED]");
	expect(three, 3, "xyz1234zz!", "[MASKED]!");
	expect(three, 3, "xyz123", "[MASKED]23");
}

static void
test_phrase_prefix_of_other(void **state)
{
	const char *ph[] = { "secret99", "secret99long" };
	const char *rev[] = { "secret99long", "secret99" };

	(void)state;
	expect(ph, 2, "secret99 secret99long secret99lo",
	    "[MASKED] [MASKED] [MASKED]lo");
	expect(rev, 2, "secret99lon|secret99long|secret9",
	    "[MASKED]lon|[MASKED]|secret9");
	/* A phrase inside a longer one's prefix that never completes. */
	expect(ph, 2, "xsecret99lonsecret99longx",
	    "x[MASKED]lon[MASKED]x");
}

static void
test_phrase_trim_empty_dup(void **state)
{
	const char *ph[] = { "  padded1  ", "", "   ", NULL, "\tpadded1\n",
	    "tab\tin" };
	char *got;

	(void)state;
	expect(ph, NELEM(ph), "a  padded1  b", "a  [MASKED]  b");
	expect(ph, NELEM(ph), "x tab\tin y", "x [MASKED] y");
	expect(ph, NELEM(ph), "   \t  ", "   \t  ");
	/* Only empty phrases: no phrase layer at all. */
	got = mask_all_ways(ph + 1, 3, NULL, 0, 0, "a b", 3);
	assert_string_equal(got, "a b");
	free(got);
}

static void
test_held_bound(void **state)
{
	const char *ph[] = { "0123456789", "abc" };
	struct jobmask *m = jobmask_new(ph, 2, NULL, 0, 0);
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	jobmask_write(m, "xx012345678", 11, &out);
	assert_string_equal(out.buf, "xx");
	assert_int_equal(jobmask_held(m), 9);	/* longest - 1 */
	jobmask_write(m, "8", 1, &out);		/* not "9": all out */
	assert_string_equal(out.buf, "xx0123456788");
	assert_int_equal(jobmask_held(m), 0);
	jobmask_write(m, "012", 3, &out);
	assert_int_equal(jobmask_held(m), 3);
	/* A whole occurrence waits for the next byte, which might
	 * extend the run; its bytes are all covered. */
	jobmask_write(m, "3456789", 7, &out);
	assert_string_equal(out.buf, "xx0123456788");
	assert_int_equal(jobmask_held(m), 10);
	jobmask_write(m, "x", 1, &out);
	assert_string_equal(out.buf, "xx0123456788[MASKED]x");
	assert_int_equal(jobmask_held(m), 0);
	jobmask_write(m, "ab", 2, &out);
	assert_int_equal(jobmask_held(m), 2);
	/* A flush gives up the held bytes as they are. */
	jobmask_flush(m, &out);
	assert_string_equal(out.buf, "xx0123456788[MASKED]xab");
	jobmask_write(m, "c", 1, &out);
	assert_string_equal(out.buf, "xx0123456788[MASKED]xabc");
	jobmask_free(m);
	sbuf_release(&out);
}

static void
test_url_params(void **state)
{
	(void)state;
	expect_tok(NULL, 0, 1,
	    "GET https://h/api/v4/x?private_token=abc123&y=1 200",
	    "GET https://h/api/v4/x?private_token=[MASKED]&y=1 200");
	expect_tok(NULL, 0, 1,
	    "u?a=1&X-Amz-Signature=deadbeef%2F#frag",
	    "u?a=1&X-Amz-Signature=[MASKED]#frag");
	expect_tok(NULL, 0, 1,
	    "u?X-AMZ-CREDENTIAL=AKIA/2024&x-amz-security-token=tok\n",
	    "u?X-AMZ-CREDENTIAL=[MASKED]&x-amz-security-token=[MASKED]\n");
	expect_tok(NULL, 0, 1, "\"u?rss_token=r1\" 'u&authenticity_token=q'",
	    "\"u?rss_token=[MASKED]\" 'u&authenticity_token=[MASKED]'");
	/* Not after ? or &, an empty value, a longer name: unchanged. */
	expect_tok(NULL, 0, 1, "private_token=abc", "private_token=abc");
	expect_tok(NULL, 0, 1, "u?private_token=&x", "u?private_token=&x");
	expect_tok(NULL, 0, 1, "u?private_tokens=abc", "u?private_tokens=abc");
	expect_tok(NULL, 0, 1, "u??&private_token=a", "u??&private_token=[MASKED]");
}

static void
test_token_prefixes(void **state)
{
	const char *job[] = { "myco_", "glpat-", "", "other-" };
	const char *many[] = { "p1-", "p2-", "p3-" };
	const char *const *got;
	size_t n;
	struct jobmask *m;

	(void)state;
	expect_tok(NULL, 0, 1, "token glpat-AbC_12.3-x=y ok",
	    "token glpat-[MASKED] ok");
	expect_tok(NULL, 0, 0, "glpat-abc glrt-abc gldt-x",
	    "glpat-[MASKED] glrt-abc gldt-x");
	expect_tok(NULL, 0, 1, "glrt-abc gldt-x glrtr-z _gitlab_session=s1;",
	    "glrt-[MASKED] gldt-[MASKED] glrtr-[MASKED] "
	    "_gitlab_session=[MASKED];");
	expect_tok(NULL, 0, 1, "glagent-1 glsoat-2 glffct-3 gltok-4 glimt-5",
	    "glagent-[MASKED] glsoat-[MASKED] glffct-[MASKED] gltok-[MASKED] "
	    "glimt-[MASKED]");
	expect_tok(NULL, 0, 1, "gloas-1 glcbt-2 glptt-3 glft-4",
	    "gloas-[MASKED] glcbt-[MASKED] glptt-[MASKED] glft-[MASKED]");
	/* Nothing after the prefix; a prefix inside a word; ggl. */
	expect_tok(NULL, 0, 1, "glpat- x glpat-", "glpat- x glpat-");
	expect_tok(NULL, 0, 1, "xxglpat-abc gglpat-d glglpat-e",
	    "xxglpat-[MASKED] gglpat-[MASKED] glglpat-[MASKED]");
	/* Job prefixes; a duplicate takes no slot. */
	expect_tok(job, NELEM(job), 0, "myco_abc other-q glrt-z",
	    "myco_[MASKED] other-[MASKED] glrt-z");
	m = jobmask_new(NULL, 0, job, NELEM(job), 0);
	got = jobmask_prefixes(m, &n);
	assert_int_equal(n, 3);
	assert_string_equal(got[0], "glpat-");
	assert_string_equal(got[1], "myco_");
	assert_string_equal(got[2], "other-");
	jobmask_free(m);
	/* 14 defaults with the flag: one job prefix fits, not two. */
	m = jobmask_new(NULL, 0, many, NELEM(many), 1);
	got = jobmask_prefixes(m, &n);
	assert_int_equal(n, JOBMASK_MAX_PREFIXES);
	assert_string_equal(got[14], "p1-");
	jobmask_free(m);
	expect_tok(many, NELEM(many), 1, "p1-a p2-b p3-c",
	    "p1-[MASKED] p2-b p3-c");
	expect_tok(many, NELEM(many), 0, "p1-a p2-b p3-c",
	    "p1-[MASKED] p2-[MASKED] p3-[MASKED]");
}

static void
test_layers_together(void **state)
{
	const char *ph[] = { "hunter2hunter2" };
	char *got;
	const char *in = "clone https://u:hunter2hunter2@h/r?private_token="
	    "glpat-zz&x glpat-hunter2hunter2!";

	(void)state;
	got = mask_all_ways(ph, 1, NULL, 0, 1, in, strlen(in));
	assert_string_equal(got, "clone https://u:[MASKED]@h/r?private_token="
	    "[MASKED]&x glpat-[MASKED]!");
	free(got);
}

static void
test_binary(void **state)
{
	const char *ph[] = { "\xff\xfe\x80z\x01", "\x7f\x7f\x7f" };
	unsigned char in[600];
	char *got;
	size_t i, gl;
	struct jobmask *m;
	struct sbuf out;

	(void)state;
	for (i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	memcpy(in + 256, "\xff\xfe\x80z\x01", 5);
	in[261] = 0;
	memcpy(in + 262, "\x7f\x7f\x7f\x7f", 4);
	for (i = 266; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7);
	got = mask_all_ways(ph, 2, NULL, 0, 0, (const char *)in, sizeof(in));
	/* The first 256 bytes are unchanged, then the two runs. */
	assert_memory_equal(got, in, 256);
	assert_memory_equal(got + 256, "[MASKED]\0[MASKED]", 17);
	free(got);
	/* No phrase in raw data: identical output. */
	m = jobmask_new(NULL, 0, NULL, 0, 0);
	sbuf_init(&out);
	jobmask_write(m, in, 256, &out);
	jobmask_flush(m, &out);
	got = sbuf_detach(&out, &gl);
	assert_int_equal(gl, 256);
	assert_memory_equal(got, in, 256);
	free(got);
	jobmask_free(m);
	jobmask_free(NULL);
}

/* The naive masker: cover every occurrence, runs become [MASKED]. */
static char *
naive(const char *const *ph, size_t n, const char *in, size_t len,
    size_t *outlen)
{
	unsigned char *cov = xcalloc(len + 1, 1);
	struct sbuf out;
	size_t i, k;

	for (k = 0; k < n; k++) {
		size_t pl = strlen(ph[k]);

		for (i = 0; pl > 0 && i + pl <= len; i++)
			if (memcmp(in + i, ph[k], pl) == 0)
				memset(cov + i, 1, pl);
	}
	sbuf_init(&out);
	for (i = 0; i < len; i++) {
		if (!cov[i])
			sbuf_addch(&out, in[i]);
		else if (i == 0 || !cov[i - 1])
			sbuf_adds(&out, "[MASKED]");
	}
	free(cov);
	return sbuf_detach(&out, outlen);
}

static void
test_random_vs_naive(void **state)
{
	const char alpha[] = "abcz 01\n";
	unsigned seed = 12345;
	int round;

	(void)state;
	for (round = 0; round < 300; round++) {
		char phbuf[6][12], text[400];
		const char *ph[6];
		size_t np = 1 + (size_t)(rand_r(&seed) % 6), i, len, wl, nl;
		char *want, *got;
		struct jobmask *m;
		size_t cuts[8];

		for (i = 0; i < np; i++) {
			size_t pl = 1 + (size_t)(rand_r(&seed) % 10), k;

			for (k = 0; k < pl; k++)
				phbuf[i][k] = alpha[rand_r(&seed) % 4];
			phbuf[i][pl] = '\0';
			ph[i] = phbuf[i];
		}
		len = (size_t)(rand_r(&seed) % sizeof(text));
		for (i = 0; i < len; i++)
			text[i] = alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
		want = naive(ph, np, text, len, &nl);
		m = jobmask_new(ph, np, NULL, 0, 1);
		for (i = 0; i < 8; i++)
			cuts[i] = len ? (size_t)(rand_r(&seed) % (len + 1)) : 0;
		/* ascending */
		for (i = 1; i < 8; i++) {
			size_t k = i;

			while (k > 0 && cuts[k - 1] > cuts[k]) {
				size_t t = cuts[k];

				cuts[k] = cuts[k - 1];
				cuts[k - 1] = t;
				k--;
			}
		}
		got = run_cuts(m, text, len, cuts, 8, &wl);
		if (wl != nl || memcmp(got, want, nl) != 0)
			fail_msg("round %d: got \"%s\" want \"%s\"", round, got,
			    want);
		free(got);
		free(want);
		jobmask_free(m);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phrase_basic),
		cmocka_unit_test(test_phrase_overlap),
		cmocka_unit_test(test_phrase_prefix_of_other),
		cmocka_unit_test(test_phrase_trim_empty_dup),
		cmocka_unit_test(test_held_bound),
		cmocka_unit_test(test_url_params),
		cmocka_unit_test(test_token_prefixes),
		cmocka_unit_test(test_layers_together),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_random_vs_naive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
