/*
 * flotilla-helper's zip archives (helper/ziparc.c): a round trip of files,
 * directories, a symbolic link, modes, mtimes, an empty file and a big
 * incompressible one; the archive read by an independent reader
 * (libarchive's own listing); hostile archives refused whole (".." and
 * absolute names, a write through a symbolic link); garbage input; the
 * health-check port list and the artifacts URL helpers.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
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

#include "../../helper/artifacts.h"
#include "err.h"
#include "../../helper/healthcheck.h"
#include "xmalloc.h"
#include "../../helper/ziparc.h"

static char tmpdir[64], oldcwd[4096];

static int
setup(void **state)
{
	(void)state;
	assert_non_null(getcwd(oldcwd, sizeof(oldcwd)));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fl-ziparc-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char *cmd;

	(void)state;
	assert_int_equal(chdir(oldcwd), 0);
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

/* chdir into a fresh subdirectory of tmpdir. */
static void
enter(const char *name)
{
	char *d = xasprintf("%s/%s", tmpdir, name);

	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(chdir(d), 0);
	free(d);
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int
tmpfile_fd(void)
{
	char *p = xasprintf("%s/zipXXXXXX", tmpdir);
	int fd = mkstemp(p);

	assert_true(fd >= 0);
	unlink(p);
	free(p);
	return fd;
}

static int
same_file(const char *a, const char *b)
{
	char *cmd = xasprintf("cmp -s '%s' '%s'", a, b);
	int rc = system(cmd);

	free(cmd);
	return rc == 0;
}

static void
test_round_trip(void **state)
{
	static const char *files[] = { "bin", "bin/run.sh", "data",
	    "data/big.bin", "data/empty", "data/sub", "data/sub/x.txt",
	    "link", "top.txt" };
	size_t n = sizeof(files) / sizeof(files[0]), got = 0;
	unsigned char *big = xmalloc(3 * 1024 * 1024 + 17);
	uint32_t x = 12345;
	struct sbuf why;
	struct stat st;
	int fd;

	(void)state;
	enter("src");
	mkdir("bin", 0755);
	mkdir("data", 0750);
	mkdir("data/sub", 0755);
	write_file("bin/run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	for (size_t i = 0; i < 3 * 1024 * 1024 + 17; i++) {
		x = x * 1103515245 + 12345;
		big[i] = (unsigned char)(x >> 16);
	}
	write_file("data/big.bin", big, 3 * 1024 * 1024 + 17, 0644);
	write_file("data/empty", "", 0, 0600);
	write_file("data/sub/x.txt", "x\n", 2, 0644);
	write_file("top.txt", "top\n", 4, 0644);
	assert_int_equal(symlink("data/sub/x.txt", "link"), 0);
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, "top.txt", ts, 0), 0);

	fd = tmpfile_fd();
	sbuf_init(&why);
	assert_int_equal(ziparc_create(fd, files, n, NULL, NULL, &why), 0);

	/* An independent reading of the archive: names and types. */
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	struct sbuf names;
	sbuf_init(&names);
	archive_read_support_format_zip(a);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(archive_read_open_fd(a, fd, 10240), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK)
		sbuf_addf(&names, "%s ", archive_entry_pathname(e));
	archive_read_free(a);
	assert_string_equal(names.buf, "bin/ bin/run.sh data/ data/big.bin "
	    "data/empty data/sub/ data/sub/x.txt link top.txt ");
	sbuf_release(&names);

	assert_int_equal(chdir(".."), 0);
	enter("dst");
	assert_int_equal(ziparc_extract(fd, &got, &why), 0);
	assert_int_equal(got, n);
	close(fd);

	assert_true(same_file("bin/run.sh", "../src/bin/run.sh"));
	assert_true(same_file("data/big.bin", "../src/data/big.bin"));
	assert_true(same_file("top.txt", "../src/top.txt"));
	assert_int_equal(stat("bin/run.sh", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat("data/empty", &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat("data", &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(stat("top.txt", &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(lstat("link", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	char target[64];
	ssize_t tl = readlink("link", target, sizeof(target) - 1);
	assert_true(tl > 0);
	target[tl] = '\0';
	assert_string_equal(target, "data/sub/x.txt");

	/* Extracting again over the same files replaces them. */
	write_file("top.txt", "changed\n", 8, 0644);
	assert_int_equal(chdir("../src"), 0);
	fd = tmpfile_fd();
	assert_int_equal(ziparc_create(fd, files, n, NULL, NULL, &why), 0);
	assert_int_equal(chdir("../dst"), 0);
	assert_int_equal(ziparc_extract(fd, NULL, &why), 0);
	close(fd);
	assert_true(same_file("top.txt", "../src/top.txt"));
	sbuf_release(&why);
	free(big);
}

static void
warn_count(void *arg, const char *path, const char *why)
{
	(void)path;
	(void)why;
	(*(int *)arg)++;
}

static void
test_vanished_file_skipped(void **state)
{
	const char *files[] = { "here", "gone" };
	int warned = 0, fd;
	size_t got;

	(void)state;
	enter("vanish");
	write_file("here", "h", 1, 0644);
	fd = tmpfile_fd();
	assert_int_equal(ziparc_create(fd, files, 2, warn_count, &warned, NULL), 0);
	assert_int_equal(warned, 1);
	enter("vanish/out");
	assert_int_equal(ziparc_extract(fd, &got, NULL), 0);
	assert_int_equal(got, 1);
	close(fd);
}

/* A zip written by hand with libarchive: entries name/content or link. */
struct evil {
	const char *name;
	const char *data;	/* NULL: a symlink to link */
	const char *link;
};

static int
make_zip(const struct evil *ev, size_t n)
{
	int fd = tmpfile_fd();
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	archive_write_set_format_zip(a);
	assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, ev[i].name);
		if (ev[i].data != NULL) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_size(e, (la_int64_t)strlen(ev[i].data));
		} else {
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, ev[i].link);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ev[i].data != NULL)
			archive_write_data(a, ev[i].data, strlen(ev[i].data));
	}
	archive_write_close(a);
	archive_write_free(a);
	archive_entry_free(e);
	return fd;
}

static void
test_hostile_archives(void **state)
{
	struct sbuf why;
	struct stat st;
	int fd;

	(void)state;
	enter("evil");
	mkdir("dir", 0755);
	assert_int_equal(chdir("dir"), 0);
	sbuf_init(&why);

	/* ".." anywhere: refused whole, the good first entry not written */
	const struct evil dotdot[] = { { "good.txt", "g", NULL },
	    { "sub/../../escaped.txt", "x", NULL } };
	fd = make_zip(dotdot, 2);
	assert_int_equal(ziparc_extract(fd, NULL, &why), FL_ERR_PROTO);
	close(fd);
	assert_non_null(strstr(why.buf, "escaped.txt"));
	assert_int_not_equal(stat("good.txt", &st), 0);
	assert_int_not_equal(stat("../escaped.txt", &st), 0);

	/* absolute names */
	sbuf_reset(&why);
	char *abs = xasprintf("%s/evil/abs.txt", tmpdir);
	const struct evil absolute[] = { { abs, "x", NULL } };
	fd = make_zip(absolute, 1);
	assert_int_equal(ziparc_extract(fd, NULL, &why), FL_ERR_PROTO);
	close(fd);
	assert_int_not_equal(stat(abs, &st), 0);
	free(abs);

	/* a link out, then a file written through it */
	sbuf_reset(&why);
	const struct evil through[] = { { "out", NULL, ".." },
	    { "out/through.txt", "x", NULL } };
	fd = make_zip(through, 2);
	assert_int_equal(ziparc_extract(fd, NULL, &why), FL_ERR_PROTO);
	close(fd);
	assert_non_null(strstr(why.buf, "through the link out"));
	assert_int_not_equal(stat("../through.txt", &st), 0);
	assert_int_not_equal(lstat("out", &st), 0);

	/* a link that already exists in the directory */
	sbuf_reset(&why);
	assert_int_equal(system("rm -rf ./*"), 0);
	assert_int_equal(symlink("..", "pre"), 0);
	const struct evil pre[] = { { "pre/pre.txt", "x", NULL } };
	fd = make_zip(pre, 1);
	(void)ziparc_extract(fd, NULL, &why);
	close(fd);
	assert_int_not_equal(stat("../pre.txt", &st), 0);
	/* (libarchive replaced the link by a directory: UNLINK) */
	assert_int_equal(lstat("pre", &st), 0);
	assert_false(S_ISLNK(st.st_mode));
	sbuf_release(&why);
}

static void
test_garbage(void **state)
{
	struct sbuf why;
	int fd;

	(void)state;
	enter("garbage");
	fd = tmpfile_fd();
	assert_int_equal(write(fd, "this is not a zip file at all\n", 30), 30);
	sbuf_init(&why);
	assert_int_equal(ziparc_extract(fd, NULL, &why), FL_ERR_PARSE);
	assert_true(why.len > 0);
	sbuf_release(&why);
	close(fd);
	/* empty input: no archive */
	fd = tmpfile_fd();
	assert_true(ziparc_extract(fd, NULL, NULL) < 0);
	close(fd);
}

static void
test_health_ports(void **state)
{
	char *env[] = {
		"PATH=/bin",
		"WAIT_FOR_SERVICE_TCP_ADDR=abc",
		"WAIT_FOR_SERVICE_5432_TCP_PORT=5432",
		"WAIT_FOR_SERVICE_80_TCP_PORT=80",
		"WAIT_FOR_SERVICE_TCP_PORT=6379",
		"WAIT_FOR_SERVICE_X_TCP_PORT=7",
		"WAIT_FOR_SERVICE_1_TCP_PORT=0",
		"WAIT_FOR_SERVICE_2_TCP_PORT=70000",
		"WAIT_FOR_SERVICE_3_TCP_PORT=80",
		"WAIT_FOR_SERVICE_4_TCP_PORT=12a",
		"XWAIT_FOR_SERVICE_5_TCP_PORT=99",
		NULL
	};
	int ports[8];

	(void)state;
	assert_int_equal(healthcheck_ports(env, ports, 8), 3);
	assert_int_equal(ports[0], 5432);
	assert_int_equal(ports[1], 80);
	assert_int_equal(ports[2], 6379);
	assert_int_equal(healthcheck_ports(env, ports, 1), 1);
}

static void
test_urls(void **state)
{
	char *u;

	(void)state;
	u = artifacts_url("http://127.0.0.1:8080/", "42");
	assert_string_equal(u, "http://127.0.0.1:8080/api/v4/jobs/42/artifacts");
	free(u);
	u = artifacts_url("https://gitlab.example.com/gitlab//", "7");
	assert_string_equal(u, "https://gitlab.example.com/gitlab/api/v4/jobs/7/artifacts");
	free(u);
	assert_null(artifacts_url("http://x/", "4a"));
	assert_null(artifacts_url("http://x/", ""));
	assert_null(artifacts_url("http://x/", "../1"));
	assert_null(artifacts_url("ftp://x/", "1"));

	u = artifacts_rebase("http://127.0.0.1:8080/gitlab/api/v4/jobs/1/artifacts",
	    "https://other:9443/whatever?x=1");
	assert_string_equal(u, "https://other:9443/gitlab/api/v4/jobs/1/artifacts");
	free(u);
	u = artifacts_rebase("http://a:1/api/v4/jobs/1/artifacts", "http://b/x");
	assert_string_equal(u, "http://b/api/v4/jobs/1/artifacts");
	free(u);
	assert_null(artifacts_rebase("http://a/api", "file:///etc/passwd"));

	setenv("CI_JOB_TOKEN", "ci-token", 1);
	unsetenv("FLOTILLA_HELPER_TOKEN");
	assert_string_equal(artifacts_token(), "ci-token");
	setenv("FLOTILLA_HELPER_TOKEN", "", 1);
	assert_string_equal(artifacts_token(), "ci-token");
	setenv("FLOTILLA_HELPER_TOKEN", "helper-token", 1);
	assert_string_equal(artifacts_token(), "helper-token");
	unsetenv("FLOTILLA_HELPER_TOKEN");
	unsetenv("CI_JOB_TOKEN");
	assert_null(artifacts_token());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_vanished_file_skipped),
		cmocka_unit_test(test_hostile_archives),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_health_ports),
		cmocka_unit_test(test_urls),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
