/*
 * flotilla-helper's path patterns (helper/pathglob.c) and file selection
 * (helper/filelist.c): doublestar matching tables, lexical cleaning with
 * the project-directory fence, and the walk over a real temporary tree
 * (matches, a matched directory walked whole, excludes, no symlink
 * following, sorted and de-duplicated output).
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

#include "err.h"
#include "../../helper/filelist.h"
#include "log.h"
#include "../../helper/pathglob.h"
#include "xmalloc.h"

static const struct {
	const char *pat, *path;
	int want;
} cases[] = {
	{ "a", "a", 1 },
	{ "a", "b", 0 },
	{ "a", "a/b", 0 },
	{ "*", "abc", 1 },
	{ "*", ".hidden", 1 },		/* doublestar: no dot-file rule */
	{ "*", "a/b", 0 },
	{ "*.log", "x.log", 1 },
	{ "*.log", "x.log.1", 0 },
	{ "*.log", "d/x.log", 0 },
	{ "a*b*c", "aXXbYYc", 1 },
	{ "a*b*c", "aXXbYY", 0 },
	{ "a*", "a", 1 },
	{ "?", "x", 1 },
	{ "?", "", 0 },
	{ "?", "xy", 0 },
	{ "a?c", "a/c", 0 },
	{ "[abc]", "b", 1 },
	{ "[abc]", "d", 0 },
	{ "[a-c]x", "cx", 1 },
	{ "[!a-c]x", "cx", 0 },
	{ "[^a-c]x", "dx", 1 },
	{ "[]]", "]", 1 },
	{ "[\\]]", "]", 1 },
	{ "\\*", "*", 1 },
	{ "\\*", "a", 0 },
	{ "**", "a", 1 },
	{ "**", "a/b/c", 1 },
	{ "**/*.log", "x.log", 1 },
	{ "**/*.log", "a/b/x.log", 1 },
	{ "**/*.log", "a/b/x.txt", 0 },
	{ "a/**", "a", 1 },
	{ "a/**", "a/b", 1 },
	{ "a/**", "a/b/c", 1 },
	{ "a/**", "b/c", 0 },
	{ "a/**/z", "a/z", 1 },
	{ "a/**/z", "a/b/c/z", 1 },
	{ "a/**/z", "a/b/c/y", 0 },
	{ "a/**/**/z", "a/z", 1 },
	{ "a**b", "aXb", 1 },		/* not a whole segment: like '*' */
	{ "a**b", "a/b", 0 },
	{ "{a,b}", "a", 1 },
	{ "{a,b}", "b", 1 },
	{ "{a,b}", "c", 0 },
	{ "x{a,b/c}", "xb/c", 1 },
	{ "{a,{b,c}d}", "cd", 1 },
	{ "{a,{b,c}d}", "d", 0 },
	{ "{a,b}{c,d}", "bd", 1 },
	{ "{,x}y", "y", 1 },
	{ "vendor/**/*.{so,a}", "vendor/lib/x.a", 1 },
	{ "[", "x", FL_ERR_PARSE },
	{ "{a,b", "a", FL_ERR_PARSE },
	{ "a\\", "a", FL_ERR_PARSE },
};

static void
test_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = pathglob_match(cases[i].pat, cases[i].path);

		if (got != cases[i].want)
			fail_msg("match(\"%s\", \"%s\") = %d, want %d",
			    cases[i].pat, cases[i].path, got, cases[i].want);
	}
}

static void
test_match_too_many_alternatives(void **state)
{
	/* 2^11 = 2048 alternatives > PATHGLOB_MAX_ALTS */
	const char *p = "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}";

	(void)state;
	assert_int_equal(pathglob_match(p, "aaaaaaaaaaa"), FL_ERR_TOOBIG);
}

static const struct {
	const char *in, *cwd, *want;	/* want NULL: FL_ERR_RANGE */
} cleans[] = {
	{ "a", "/p", "a" },
	{ "./a/", "/p", "a" },
	{ "a//b/./c", "/p", "a/b/c" },
	{ "a/../b", "/p", "b" },
	{ ".", "/p", "." },
	{ "a/..", "/p", "." },
	{ "..", "/p", NULL },
	{ "../x", "/p", NULL },
	{ "a/../../x", "/p", NULL },
	{ "/p/a/*.log", "/p", "a/*.log" },
	{ "/p", "/p", "." },
	{ "/p/", "/p/", "." },
	{ "/pa/x", "/p", NULL },
	{ "/etc/passwd", "/builds/x", NULL },
	{ "/builds/x/../y", "/builds/y", "." },
	{ "**/*.log", "/p", "**/*.log" },
	{ "/x", "/", "x" },
	{ "/", "/", "." },
	{ "/..", "/", "." },
};

static void
test_clean(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cleans) / sizeof(cleans[0]); i++) {
		char *out = NULL;
		int rc = pathglob_clean(cleans[i].in, cleans[i].cwd, &out);

		if (cleans[i].want == NULL) {
			if (rc != FL_ERR_RANGE)
				fail_msg("clean(\"%s\") = %d \"%s\", want RANGE",
				    cleans[i].in, rc, out ? out : "");
		} else if (rc != 0 || strcmp(out, cleans[i].want) != 0) {
			fail_msg("clean(\"%s\") = %d \"%s\", want \"%s\"",
			    cleans[i].in, rc, out ? out : "", cleans[i].want);
		}
		free(out);
	}
	char *out = NULL;
	assert_int_equal(pathglob_clean("", "/p", &out), FL_ERR_INVAL);
	assert_null(out);
}

/* A scratch tree, entered; the previous directory restored after. */
static char tmpdir[64], oldcwd[4096];

static void
put(const char *path)
{
	char *dir = xstrdup(path), *s;
	FILE *f;

	for (s = dir + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(dir, 0755);
		*s = '/';
	}
	free(dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", path);
	fclose(f);
}

static int
setup_tree(void **state)
{
	(void)state;
	assert_non_null(getcwd(oldcwd, sizeof(oldcwd)));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fl-pathglob-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chdir(tmpdir), 0);
	put("a/x.log");
	put("a/b/y.log");
	put("a/b/keep.txt");
	put("c/z.txt");
	put(".hidden/h.log");
	put("top.log");
	mkdir("empty", 0755);
	mkdir("outside", 0755);
	put("outside/secret.log");
	assert_int_equal(symlink("outside", "link"), 0);
	return 0;
}

static int
teardown_tree(void **state)
{
	char *cmd;

	(void)state;
	assert_int_equal(chdir(oldcwd), 0);
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

struct seen {
	struct sbuf sb;
};

static int
record(void *arg, const char *path, const struct stat *st)
{
	struct seen *s = arg;

	sbuf_addf(&s->sb, "%s%s ", path, S_ISDIR(st->st_mode) ? "/" :
	    S_ISLNK(st->st_mode) ? "@" : "");
	return 0;
}

static char *
glob_str(const char *pat)
{
	struct seen s;

	sbuf_init(&s.sb);
	assert_int_equal(pathglob_glob(pat, record, &s), 0);
	return sbuf_detach(&s.sb, NULL);
}

static void
expect_glob(const char *pat, const char *want)
{
	char *got = glob_str(pat);

	if (strcmp(got, want) != 0)
		fail_msg("glob(\"%s\") = \"%s\", want \"%s\"", pat, got, want);
	free(got);
}

static void
test_glob(void **state)
{
	(void)state;
	expect_glob("a", "a/ ");
	expect_glob("nothing", "");
	expect_glob("*.log", "top.log ");
	expect_glob("**/*.log", ".hidden/h.log a/b/y.log a/x.log "
	    "outside/secret.log top.log ");
	expect_glob("a/**/*.log", "a/b/y.log a/x.log ");
	expect_glob("a/*", "a/b/ a/x.log ");
	/* links are reported, never followed */
	expect_glob("li*", "link@ ");
	expect_glob("link/*", "");
	expect_glob("{c,empty}", "c/ empty/ ");
	expect_glob("*/z.txt", "c/z.txt ");
	assert_int_equal(pathglob_glob("[", record, NULL), FL_ERR_PARSE);
}

static void
test_walk(void **state)
{
	struct seen s;

	(void)state;
	sbuf_init(&s.sb);
	assert_int_equal(pathglob_walk("a", record, &s), 0);
	assert_string_equal(s.sb.buf, "a/ a/b/ a/b/keep.txt a/b/y.log a/x.log ");
	sbuf_release(&s.sb);
	assert_int_equal(pathglob_walk("missing", record, &s), FL_ERR_NOTFOUND);
}

static char *
collect(const char *const *paths, size_t np, const char *const *ex, size_t nx)
{
	struct filelist l = { 0 };
	struct filelist_opts o = { .paths = paths, .npaths = np,
	    .excludes = ex, .nexcludes = nx };
	struct sbuf sb;

	sbuf_init(&sb);
	assert_int_equal(filelist_collect(&l, &o), 0);
	for (size_t i = 0; i < l.n; i++)
		sbuf_addf(&sb, "%s ", l.files[i]);
	filelist_release(&l);
	return sbuf_detach(&sb, NULL);
}

static void
test_filelist(void **state)
{
	char *got;

	(void)state;
	/* a directory brings its subtree; duplicates once; sorted */
	got = collect((const char *[]){ "a", "**/*.log", "./a/x.log" }, 3, NULL, 0);
	assert_string_equal(got, ".hidden/h.log a a/b a/b/keep.txt a/b/y.log "
	    "a/x.log outside/secret.log top.log ");
	free(got);

	/* excludes apply to every path, walked ones included */
	got = collect((const char *[]){ "a", "c" }, 2,
	    (const char *[]){ "**/*.log", "c/z.txt" }, 2);
	assert_string_equal(got, "a a/b a/b/keep.txt c ");
	free(got);

	/* outside the project and absolute-outside: warnings, nothing added */
	got = collect((const char *[]){ "../x", "/etc/passwd", "missing" }, 3,
	    NULL, 0);
	assert_string_equal(got, "");
	free(got);

	/* an absolute path inside the project works */
	char *abs = xasprintf("%s/c", tmpdir);
	got = collect((const char *[]){ abs }, 1, NULL, 0);
	assert_string_equal(got, "c c/z.txt ");
	free(got);
	free(abs);

	/* a symlink is archived as a link, its target is not walked */
	got = collect((const char *[]){ "link" }, 1, NULL, 0);
	assert_string_equal(got, "link ");
	free(got);

	/* a malformed pattern is an error */
	struct filelist l = { 0 };
	struct filelist_opts o = { .paths = (const char *[]){ "a[" },
	    .npaths = 1 };
	assert_int_equal(filelist_collect(&l, &o), FL_ERR_PARSE);
	filelist_release(&l);
}

static void
test_untracked(void **state)
{
	struct filelist l = { 0 };
	int rc;

	(void)state;
	if (system("git --version >/dev/null 2>&1") != 0)
		skip();
	/* not a work tree: git fails */
	rc = filelist_git_untracked(&l);
	assert_int_equal(rc, FL_ERR_IO);
	assert_int_equal(system("git init -q . && git add c/z.txt"), 0);
	rc = filelist_git_untracked(&l);
	assert_int_equal(rc, 0);
	/* every file but the tracked one; links too */
	int has_tracked = 0, has_top = 0;
	for (size_t i = 0; i < l.n; i++) {
		has_tracked |= strcmp(l.files[i], "c/z.txt") == 0;
		has_top |= strcmp(l.files[i], "top.log") == 0;
	}
	assert_false(has_tracked);
	assert_true(has_top);
	filelist_release(&l);
	assert_int_equal(system("rm -rf .git"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_match_too_many_alternatives),
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_filelist),
		cmocka_unit_test(test_untracked),
	};

	log_set_fd(STDERR_FILENO);
	return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
