/*
 * Unit tests of config_edit: finding [[runners]] entries in text, cutting
 * one out and appending one with every other byte kept, the new entry's
 * text (and its merge with a template), the atomic write.
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

#include "config.h"
#include "config_edit.h"
#include "err.h"
#include "toml.h"
#include "xmalloc.h"

#define R(name) \
	"[[runners]]\n" \
	"  name = \"" name "\"\n" \
	"  url = \"https://gitlab.example.com\"\n" \
	"  token = \"glrt-" name "-abcdefgh\"\n" \
	"  executor = \"docker-autoscaler\"\n" \
	"  [runners.autoscaler]\n" \
	"    plugin = \"local\"\n"

/* A file with comments everywhere, strings that look like headers, a
 * multi-line array with a nested array at the start of a line. */
static const char rich[] =
    "# flotilla config, hand written\r\n"
    "concurrent = 4   # jobs\n"
    "check_interval = 3\n"
    "\n"
    "[session_server]\n"
    "  session_timeout = 1800\n"
    "\n"
    "# the first runner\n"
    R("one")
    "    plugin_config = { note = \"[[runners]]\" }\n"
    "  [runners.docker]\n"
    "    volumes = [\n"
    "      \"/cache\",   # ] comment with a bracket\n"
    "    ]\n"
    "    pre = '''\n"
    "[[runners]]\n"
    "# not a comment\n"
    "'''\n"
    "\n"
    "# the second runner\n"
    "# (two comment lines)\n"
    R("two")
    "  [[runners.autoscaler.policy]]\n"
    "    idle_count = 1\n"
    "\n"
    "[[runners]]\n"
    "  name = \"three\"\n"
    "  url = \"https://gitlab.example.com\"\n"
    "  token = \"\"\"glrt-three-\n"
    "[[runners]]\"\"\"\n"
    "  executor = \"docker-autoscaler\"\n"
    "  environment = [\"A=[\", \"B=}\"]\n"
    "  [runners.autoscaler]\n"
    "    plugin = \"local\"\n"
    "\n"
    "# trailing comment\n";

static int
loads(const char *text, size_t len, size_t *nrunners)
{
	struct config *cfg = NULL;
	struct config_diags d;
	int rc = config_load_buf("t.toml", text, len, &cfg, &d);

	if (rc != 0)
		for (size_t i = 0; i < d.n; i++)
			print_message("%s\n", d.v[i].msg);
	if (cfg != NULL && nrunners != NULL)
		*nrunners = cfg->nrunners;
	config_free(cfg);
	config_diags_release(&d);
	return rc;
}

static const char *
find(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);

	assert_non_null(p);
	return p;
}

static void
test_spans(void **state)
{
	struct config_edit_span *sp;
	size_t n, len = strlen(rich);
	char err[256];

	(void)state;
	assert_int_equal(loads(rich, len, NULL), 0);
	assert_int_equal(config_edit_runners(rich, len, &sp, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(rich + sp[0].start, find(rich, "# the first"));
	assert_ptr_equal(rich + sp[0].end, find(rich, "# the second"));
	assert_ptr_equal(rich + sp[1].start, find(rich, "# the second"));
	assert_ptr_equal(rich + sp[1].end, find(rich, "[[runners]]\n  name = \"three\""));
	assert_ptr_equal(rich + sp[2].start, rich + sp[1].end);
	assert_int_equal(sp[2].end, len);
	assert_int_equal(sp[0].line, 9);
	free(sp);
}

static void
check_remove(size_t idx, const char *gone, const char *kept)
{
	struct sbuf out;
	char err[256];
	size_t n = 0, len = strlen(rich);

	sbuf_init(&out);
	assert_int_equal(config_edit_remove_runner(rich, len, idx, &out, err,
	    sizeof(err)), 0);
	assert_int_equal(loads(out.buf, out.len, &n), 0);
	assert_int_equal(n, 2);
	assert_null(strstr(out.buf, gone));
	assert_non_null(strstr(out.buf, kept));
	/* Everything but the entry is byte for byte the same: the result
	 * is a prefix of rich plus a suffix of rich. */
	{
		size_t pre = 0, suf = 0;

		while (pre < out.len && out.buf[pre] == rich[pre])
			pre++;
		while (suf < out.len - pre &&
		    out.buf[out.len - 1 - suf] == rich[len - 1 - suf])
			suf++;
		assert_int_equal(pre + suf, out.len);
	}
	sbuf_release(&out);
}

static void
test_remove(void **state)
{
	(void)state;
	check_remove(0, "\"one\"", "# the second runner\n# (two");
	check_remove(1, "\"two\"", "# the first runner\n");
	check_remove(2, "\"three\"", "idle_count = 1\n");
}

static void
test_remove_last_blank_lines(void **state)
{
	const char *t = "concurrent = 1\n\n\n" R("a");
	struct sbuf out;
	char err[256];

	(void)state;
	sbuf_init(&out);
	assert_int_equal(config_edit_remove_runner(t, strlen(t), 0, &out, err,
	    sizeof(err)), 0);
	assert_string_equal(out.buf, "concurrent = 1\n");
	sbuf_reset(&out);
	assert_int_equal(config_edit_remove_runner(t, strlen(t), 1, &out, err,
	    sizeof(err)), FL_ERR_NOTFOUND);
	sbuf_release(&out);
}

static void
test_refused_layouts(void **state)
{
	const char *inl = "runners = [{ name = \"x\" }]\n";
	const char *apart = R("a") "[session_server]\nsession_timeout = 1\n"
	    "[runners.docker]\nimage = \"x\"\n";
	const char *bad = "[[runners]\n";
	struct config_edit_span *sp;
	size_t n;
	char err[256];

	(void)state;
	assert_int_equal(config_edit_runners(inl, strlen(inl), &sp, &n, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_non_null(strstr(err, "by hand"));
	assert_int_equal(config_edit_runners(apart, strlen(apart), &sp, &n,
	    err, sizeof(err)), FL_ERR_INVAL);
	assert_non_null(strstr(err, "line 10"));
	assert_int_equal(config_edit_runners(bad, strlen(bad), &sp, &n, err,
	    sizeof(err)), FL_ERR_PARSE);
	/* No runners at all: fine, none found. */
	assert_int_equal(config_edit_runners("", 0, &sp, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(sp);
}

static void
test_append(void **state)
{
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	config_edit_append("a = 1", 5, "X\n", &out);
	assert_string_equal(out.buf, "a = 1\n\nX\n");
	sbuf_reset(&out);
	config_edit_append("a = 1\n", 6, "X\n", &out);
	assert_string_equal(out.buf, "a = 1\n\nX\n");
	sbuf_reset(&out);
	config_edit_append("a = 1\n\n", 7, "X\n", &out);
	assert_string_equal(out.buf, "a = 1\n\nX\n");
	sbuf_reset(&out);
	config_edit_append("", 0, "X\n", &out);
	assert_string_equal(out.buf, "X\n");
	sbuf_release(&out);
}

static struct config_edit_runner
runner(void)
{
	struct config_edit_runner r;

	memset(&r, 0, sizeof(r));
	r.name = "new \"one\"";
	r.url = "http://127.0.0.1:8080/";
	r.id = 42;
	r.token = "glrt-secret-token";
	r.token_obtained_at = 1700000000;
	r.token_expires_at = "2024-05-01T10:20:30.000Z";
	r.executor = "docker-autoscaler";
	r.limit = -1;
	r.request_concurrency = 3;
	r.autoscaler_plugin = "local";
	r.capacity_per_instance = 2;
	r.max_use_count = -1;
	r.max_instances = 4;
	return r;
}

static void
test_entry_text(void **state)
{
	struct config_edit_runner r = runner();
	static const char *const vols[] = { "/cache", NULL };
	char *txt;
	struct sbuf out;
	size_t n = 0;

	(void)state;
	r.docker_image = "busybox";
	r.docker_volumes = vols;
	txt = config_edit_runner_text(&r);
	assert_string_equal(txt,
	    "[[runners]]\n"
	    "  name = \"new \\\"one\\\"\"\n"
	    "  url = \"http://127.0.0.1:8080/\"\n"
	    "  id = 42\n"
	    "  token = \"glrt-secret-token\"\n"
	    "  token_obtained_at = 2023-11-14T22:13:20Z\n"
	    "  token_expires_at = 2024-05-01T10:20:30.000Z\n"
	    "  executor = \"docker-autoscaler\"\n"
	    "  request_concurrency = 3\n"
	    "  [runners.docker]\n"
	    "    image = \"busybox\"\n"
	    "    volumes = [\"/cache\"]\n"
	    "  [runners.autoscaler]\n"
	    "    plugin = \"local\"\n"
	    "    capacity_per_instance = 2\n"
	    "    max_instances = 4\n");
	sbuf_init(&out);
	config_edit_append(rich, strlen(rich), txt, &out);
	assert_int_equal(loads(out.buf, out.len, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out.buf, rich, strlen(rich));
	sbuf_release(&out);
	freezero_str(txt);
}

static void
test_datetime(void **state)
{
	char b[48];

	(void)state;
	config_edit_datetime(NULL, b, sizeof(b));
	assert_string_equal(b, "0001-01-01T00:00:00Z");
	config_edit_datetime("", b, sizeof(b));
	assert_string_equal(b, "0001-01-01T00:00:00Z");
	config_edit_datetime("2024-01-02T03:04:05+02:00", b, sizeof(b));
	assert_string_equal(b, "2024-01-02T03:04:05+02:00");
	config_edit_datetime("2024-01-02", b, sizeof(b));	/* local date */
	assert_string_equal(b, "0001-01-01T00:00:00Z");
	config_edit_datetime("2024-01-02T03:04:05Z\nx = 1", b, sizeof(b));
	assert_string_equal(b, "0001-01-01T00:00:00Z");
}

static void
test_template_merge(void **state)
{
	static const char tmpl[] =
	    "[[runners]]\n"
	    "  name = \"from-template\"\n"
	    "  token = \"glrt-template-token\"\n"
	    "  limit = 7\n"
	    "  request_concurrency = 9\n"
	    "  [runners.docker]\n"
	    "    privileged = true\n"
	    "  [runners.autoscaler]\n"
	    "    plugin = \"aws\"\n"
	    "    max_use_count = 5\n"
	    "    [runners.autoscaler.plugin_config]\n"
	    "      name = \"asg\"\n"
	    "    [[runners.autoscaler.policy]]\n"
	    "      idle_count = 2\n"
	    "      idle_time = \"20m\"\n";
	struct config_edit_runner r = runner();
	struct toml_table *doc = toml_parse(tmpl, strlen(tmpl), NULL);
	const struct toml_value *rv;
	struct config *cfg = NULL;
	struct config_diags d;
	char *txt;

	(void)state;
	assert_non_null(doc);
	rv = toml_get(doc, "runners");
	r.tmpl = rv->u.arr.items[0]->u.table;
	txt = config_edit_runner_text(&r);
	assert_int_equal(config_load_buf("t", txt, strlen(txt), &cfg, &d), 0);
	config_diags_release(&d);
	assert_int_equal(cfg->nrunners, 1);
	/* Ours win, the template fills the rest, its token never. */
	assert_string_equal(cfg->runners[0].name, "new \"one\"");
	assert_string_equal(cfg->runners[0].token, "glrt-secret-token");
	assert_int_equal(cfg->runners[0].limit, 7);
	assert_int_equal(cfg->runners[0].request_concurrency, 3);
	assert_true(cfg->runners[0].docker.privileged);
	assert_string_equal(cfg->runners[0].autoscaler.plugin, "local");
	assert_int_equal(cfg->runners[0].autoscaler.max_use_count, 5);
	assert_int_equal(cfg->runners[0].autoscaler.max_instances, 4);
	assert_int_equal(cfg->runners[0].autoscaler.npolicy, 1);
	assert_int_equal(cfg->runners[0].autoscaler.policy[0].idle_count, 2);
	assert_non_null(cfg->runners[0].autoscaler.plugin_config);
	assert_null(strstr(txt, "glrt-template-token"));
	assert_non_null(strstr(txt, "    [runners.autoscaler.plugin_config]\n"
	    "      name = \"asg\"\n"));
	assert_non_null(strstr(txt, "    [[runners.autoscaler.policy]]\n"));
	config_free(cfg);
	toml_free(doc);
	freezero_str(txt);
}

static void
test_write_file(void **state)
{
	char dir[] = "/tmp/test_config_edit.XXXXXX";
	char *path, *buf, err[256];
	size_t len;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/sub/dir/config.toml", dir);
	assert_int_equal(config_edit_read_file(path, &buf, &len),
	    FL_ERR_NOTFOUND);
	assert_int_equal(config_edit_write_file(path, "a = 1\n", 6, 0600, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(config_edit_read_file(path, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "a = 1\n");
	free(buf);
	/* An existing file keeps its mode. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_edit_write_file(path, "b = 2\n", 6, 0600, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* A symlink is followed, not replaced. */
	{
		char *link = xasprintf("%s/link.toml", dir);

		assert_int_equal(symlink(path, link), 0);
		assert_int_equal(config_edit_write_file(link, "c = 3\n", 6,
		    0600, err, sizeof(err)), 0);
		assert_int_equal(lstat(link, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		assert_int_equal(config_edit_read_file(path, &buf, &len), 0);
		assert_string_equal(buf, "c = 3\n");
		free(buf);
		unlink(link);
		free(link);
	}
	/* A directory that cannot be made: an error, nothing left behind. */
	assert_int_equal(config_edit_write_file("/proc/nope/x.toml", "a", 1,
	    0600, err, sizeof(err)), FL_ERR_IO);
	unlink(path);
	free(path);
	path = xasprintf("%s/sub/dir", dir);
	rmdir(path);
	free(path);
	path = xasprintf("%s/sub", dir);
	rmdir(path);
	free(path);
	assert_int_equal(rmdir(dir), 0);	/* empty: no temp files left */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_remove_last_blank_lines),
		cmocka_unit_test(test_refused_layouts),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_entry_text),
		cmocka_unit_test(test_datetime),
		cmocka_unit_test(test_template_merge),
		cmocka_unit_test(test_write_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
