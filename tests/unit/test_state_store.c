/*
 * State storage: the file round-trips every field, saves are atomic
 * (stale temporary files are ignored and cleaned, a failed write leaves
 * the old file), modes are 0700/0600, broken files are moved aside with a
 * reason that never quotes a secret, and a restart with the real scaler
 * core keeps the instances and their use counts (without state storage
 * the same instances are removed as pre-existing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "plugin_host.h"
#include "scaler.h"
#include "state_store.h"
#include "xmalloc.h"

#define NS	INT64_C(1000000000)
#define SEC(x)	((int64_t)(x) * NS)
#define T0	(INT64_C(1767571200) * NS)	/* 2026-01-05T00:00:00Z */

#define TOKEN	"glrt-t1_AbCdEfGhIjKlMnOp"
#define SHORT	"AbCdEfGhI"
#define PASSWORD "hunter2-s3cr3t-pw"
#define KEY_PEM	"-----BEGIN OPENSSH PRIVATE KEY-----\n" \
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" \
	"SECRETKEYMATERIALxyzzy\n" \
	"-----END OPENSSH PRIVATE KEY-----\n"
#define KEY_MARK "SECRETKEYMATERIALxyzzy"

/* ---- helpers ---- */

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct tmp {
	char dir[64];
};

static int
setup_tmp(void **state)
{
	struct tmp *t = xcalloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/fl-state-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	*state = t;
	return 0;
}

static int
teardown_tmp(void **state)
{
	struct tmp *t = *state;

	rm_rf(t->dir);
	free(t);
	return 0;
}

static struct state_store *
must_open(const char *dir)
{
	char err[512];
	struct state_store *st = state_store_open(dir, TOKEN, err, sizeof(err));

	if (st == NULL)
		fail_msg("state_store_open(%s): %s", dir, err);
	return st;
}

static char *
file_path(const struct state_store *st, const char *name)
{
	return xasprintf("%s/%s", state_store_path(st), name);
}

/* The whole of a file; NULL if absent. */
static char *
slurp(const char *path, size_t *lenp)
{
	struct sbuf sb;
	char b[4096];
	ssize_t r;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	sbuf_init(&sb);
	while ((r = read(fd, b, sizeof(b))) > 0)
		sbuf_add(&sb, b, (size_t)r);
	close(fd);
	return sbuf_detach(&sb, lenp);
}

static void
spit(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Names in dir starting with prefix. */
static int
count_prefix(const char *dir, const char *prefix, char *first, size_t size)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, size, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

static void
fill_record(struct state_record *r, const char *id, int64_t use)
{
	struct plugin_connect_info ci = { 0 };

	memset(r, 0, sizeof(*r));
	r->id = xstrdup(id);
	r->use_count = use;
	r->created_at = T0 - SEC(3600) + use;
	r->ready = 1;
	r->host_key = xstrdup("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	ci.os = "linux";
	ci.arch = "amd64";
	ci.protocol = "ssh";
	ci.port = 2222;
	ci.username = "core";
	ci.password = PASSWORD;
	ci.key = (uint8_t *)KEY_PEM;
	ci.key_len = strlen(KEY_PEM);
	ci.internal_addr = "10.0.0.5";
	ci.external_addr = "[2001:db8::5]:22";
	ci.expires_unix_ns = T0 + SEC(7200);
	state_store_record_set_connect(r, &ci);
}

static void
assert_str_eq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_record_equal(const struct state_record *a, const struct state_record *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->use_count, b->use_count);
	assert_int_equal(a->created_at, b->created_at);
	assert_int_equal(a->ready, b->ready);
	assert_int_equal(a->had_acquisitions, b->had_acquisitions);
	assert_str_eq_opt(a->host_key, b->host_key);
	assert_int_equal(a->has_connect, b->has_connect);
	assert_str_eq_opt(a->os, b->os);
	assert_str_eq_opt(a->arch, b->arch);
	assert_str_eq_opt(a->protocol, b->protocol);
	assert_int_equal(a->protocol_port, b->protocol_port);
	assert_str_eq_opt(a->username, b->username);
	assert_str_eq_opt(a->password, b->password);
	assert_int_equal(a->key_len, b->key_len);
	if (a->key == NULL || b->key == NULL)
		assert_ptr_equal(a->key, b->key);
	else
		assert_memory_equal(a->key, b->key, a->key_len + 1);
	assert_str_eq_opt(a->internal_addr, b->internal_addr);
	assert_str_eq_opt(a->external_addr, b->external_addr);
	assert_int_equal(a->expires, b->expires);
}

static void
assert_no_secret(const char *s)
{
	assert_null(strstr(s, PASSWORD));
	assert_null(strstr(s, "hunter2"));
	assert_null(strstr(s, KEY_MARK));
	assert_null(strstr(s, "PRIVATE KEY"));
}

/* ---- names ---- */

static void
test_dirname(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "glrt-abcdefghijklmn", "abcdefghi" },
		{ "glrt-t1_abcdefghijklmn", "abcdefghi" },
		{ "t3_abcdefghijklmn", "abcdefghi" },
		{ "glrtr-0123456789ab", "012345678" },
		{ "glcbt-zyxwvutsrqpo", "zyxwvutsr" },
		{ "glrt-glcbt-zyxwvutsrqpo", "zyxwvutsr" },
		{ "GR1348941Zz_-yYxXwW", "Zz_-yYxXw" },
		{ "GR134894zabc", "GR134894z" },	/* not 7 hex digits */
		{ "short", "short" },
		{ "a.b", "a.b" },
		{ "..x", "..x" },
		{ NULL, NULL },
		{ "", NULL },
		{ "glrt-", NULL },
		{ ".", NULL },
		{ "glrt-..", NULL },
		{ "ab/cdefghijk", NULL },
		{ "abc def", NULL },
	};
	char out[STATE_STORE_DIRNAME_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = state_store_dirname(cases[i].in, out);

		if (cases[i].out == NULL) {
			assert_null(r);
			assert_string_equal(out, "");
		} else {
			assert_ptr_equal(r, out);
			assert_string_equal(out, cases[i].out);
		}
	}
	/* 9 characters, where logs keep 8. */
	assert_string_equal(state_store_dirname(TOKEN, out), SHORT);
}

static void
test_default_dir(void **state)
{
	struct config_state_storage ss = { 0 };
	char *d;

	(void)state;
	d = state_store_dir(&ss, "/etc/gitlab-runner/config.toml");
	assert_string_equal(d, "/etc/gitlab-runner/.taskscaler");
	free(d);
	d = state_store_dir(NULL, "config.toml");
	assert_string_equal(d, "./.taskscaler");
	free(d);
	d = state_store_dir(&ss, "/config.toml");
	assert_string_equal(d, "/.taskscaler");
	free(d);
	ss.dir = "/var/lib/flotilla/state";
	d = state_store_dir(&ss, "/etc/gitlab-runner/config.toml");
	assert_string_equal(d, "/var/lib/flotilla/state");
	free(d);
}

/* ---- records ---- */

static void
test_record_helpers(void **state)
{
	struct scaler_instance_info ii = { 0 };
	struct state_record r[2];
	struct scaler_restored *sr;

	(void)state;
	memset(r, 0, sizeof(r));
	ii.id = "i-1";
	ii.state = SCALER_READY;
	ii.use_count = 7;
	ii.created_at = T0;
	ii.acquired = 2;
	state_store_record_from_instance(&r[0], &ii);
	assert_string_equal(r[0].id, "i-1");
	assert_int_equal(r[0].use_count, 7);
	assert_int_equal(r[0].created_at, T0);
	assert_int_equal(r[0].ready, 1);
	assert_int_equal(r[0].had_acquisitions, 1);
	ii.id = "i-2";
	ii.state = SCALER_CHECKING;
	ii.acquired = 0;
	ii.use_count = 0;
	state_store_record_from_instance(&r[1], &ii);
	assert_int_equal(r[1].ready, 0);
	assert_int_equal(r[1].had_acquisitions, 0);
	assert_int_equal(r[1].has_connect, 0);

	sr = state_store_restored(r, 2);
	assert_ptr_equal(sr[0].id, r[0].id);
	assert_int_equal(sr[0].use_count, 7);
	assert_int_equal(sr[0].created_at, T0);
	assert_int_equal(sr[0].had_acquisitions, 1);
	assert_string_equal(sr[1].id, "i-2");
	assert_int_equal(sr[1].had_acquisitions, 0);
	free(sr);
	free(state_store_restored(NULL, 0));

	state_store_record_release(&r[1]);
	fill_record(&r[1], "i-2", 1);
	assert_int_equal(r[1].has_connect, 1);
	assert_int_equal(r[1].protocol_port, 2222);
	assert_int_equal(r[1].key_len, strlen(KEY_PEM));
	assert_string_equal(r[1].key, KEY_PEM);
	assert_string_equal(r[1].password, PASSWORD);
	assert_string_equal(r[1].id, "i-2");
	/* A second ConnectInfo replaces the first (ASan sees a leak). */
	{
		struct plugin_connect_info ci = { 0 };

		ci.username = "u2";
		ci.port = 0;
		state_store_record_set_connect(&r[1], &ci);
		assert_string_equal(r[1].username, "u2");
		assert_null(r[1].password);
		assert_null(r[1].key);
		assert_int_equal(r[1].key_len, 0);
		assert_null(r[1].os);
		assert_int_equal(r[1].protocol_port, 0);
		assert_int_equal(r[1].expires, 0);
		assert_int_equal(r[1].has_connect, 1);
		assert_string_equal(r[1].host_key,
		    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	}
	state_store_record_release(&r[0]);
	state_store_record_release(&r[1]);
	assert_null(r[0].id);
	state_store_record_release(NULL);
	state_store_records_free(NULL, 3);
}

/* ---- the store ---- */

static void
test_round_trip(void **state)
{
	struct tmp *t = *state;
	struct state_record in[4], *out = NULL;
	struct state_store *st;
	char err[512], *dir;
	static const char binkey[] = { 'k', '\0', '\xff', '\x80', 'z' };
	size_t n = 99;

	dir = xasprintf("%s/state", t->dir);
	st = must_open(dir);
	/* Nothing saved yet: an empty set, no error. */
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_null(out);
	assert_int_equal(n, 0);

	fill_record(&in[0], "i-0abc", 3);
	in[0].had_acquisitions = 1;
	/* No connect info, no host key, not ready. */
	memset(&in[1], 0, sizeof(in[1]));
	in[1].id = xstrdup("projects/p/zones/z/instances/runner-1");
	in[1].created_at = 0;
	/* Empty strings stay empty (not absent); a binary key; an
	 * expiry at the far end of int64; UTF-8. */
	fill_record(&in[2], "vm-\xc3\xa9t\xc3\xa9", 0);
	freezero(in[2].key, in[2].key_len + 1);
	in[2].key = xmalloc(sizeof(binkey) + 1);
	memcpy(in[2].key, binkey, sizeof(binkey));
	in[2].key[sizeof(binkey)] = '\0';
	in[2].key_len = sizeof(binkey);
	free(in[2].os);
	in[2].os = xstrdup("");
	free(in[2].username);
	in[2].username = NULL;
	free(in[2].arch);
	in[2].arch = xstrdup("a\"b\\c\x01\x1f\t\r\n\b\f\x7f/\xf0\x9f\x98\x80");
	in[2].expires = INT64_MAX;
	in[2].use_count = INT64_MAX;
	in[2].protocol_port = 65535;
	/* Connect info with nothing but the defaults. */
	memset(&in[3], 0, sizeof(in[3]));
	in[3].id = xstrdup("x");
	in[3].has_connect = 1;
	/* A NUL in valid UTF-8 (JSON could carry it, our parser refuses). */
	in[3].key = xmalloc(4);
	memcpy(in[3].key, "a\0b", 4);
	in[3].key_len = 3;

	assert_int_equal(state_store_save(st, in, 4), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_record_equal(&in[i], &out[i]);
	state_store_records_free(out, n);

	/* Save again with fewer: the file is replaced, not merged. */
	assert_int_equal(state_store_save(st, in + 1, 1), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_record_equal(&in[1], &out[0]);
	state_store_records_free(out, n);
	assert_int_equal(state_store_save(st, NULL, 0), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	state_store_records_free(out, n);

	for (size_t i = 0; i < 4; i++)
		state_store_record_release(&in[i]);
	state_store_free(st);
	free(dir);
}

static void
test_format_parse(void **state)
{
	struct state_record in[2], *out;
	char *buf, err[256];
	size_t len, n;

	(void)state;
	fill_record(&in[0], "a", 1);
	fill_record(&in[1], "b", 2);
	assert_int_equal(state_store_format(in, 2, &buf, &len), 0);
	assert_int_equal(strlen(buf), len);
	assert_non_null(strstr(buf, "\"version\": 1"));
	assert_int_equal(state_store_parse(buf, len, &out, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_record_equal(&in[0], &out[0]);
	assert_record_equal(&in[1], &out[1]);
	state_store_records_free(out, n);
	freezero(buf, len);
	state_store_record_release(&in[0]);
	state_store_record_release(&in[1]);

	/* The documented example, written by hand. */
	{
		static const char doc[] =
		    "{\"version\": 1, \"instances\": [{\"id\": \"i-0abc\", "
		    "\"use_count\": 3, \"created_at\": 1767571200000000000, "
		    "\"ready\": true, \"had_acquisitions\": false, "
		    "\"host_key\": \"SHA256:x\", \"connect_info\": {"
		    "\"os\": \"linux\", \"arch\": \"amd64\", \"protocol\": "
		    "\"ssh\", \"protocol_port\": 22, \"username\": \"core\", "
		    "\"password\": \"p\", \"key_base64\": \"AP8=\", "
		    "\"internal_addr\": \"10.0.0.5\", \"external_addr\": "
		    "\"1.2.3.4\", \"expires\": 0}}]}";

		assert_int_equal(state_store_parse(doc, strlen(doc), &out, &n,
		    err, sizeof(err)), 0);
		assert_int_equal(n, 1);
		assert_int_equal(out[0].use_count, 3);
		assert_int_equal(out[0].created_at, T0);
		assert_int_equal(out[0].key_len, 2);
		assert_int_equal((unsigned char)out[0].key[0], 0);
		assert_int_equal((unsigned char)out[0].key[1], 0xff);
		assert_string_equal(out[0].external_addr, "1.2.3.4");
		state_store_records_free(out, n);
	}
}

static void
test_permissions(void **state)
{
	struct tmp *t = *state;
	struct state_record r;
	struct state_store *st;
	struct stat sb;
	char *base, *dir, *f;
	/* The modes must not depend on the umask, even one that takes the
	 * owner's bits. */
	mode_t old = umask(0277);

	base = xasprintf("%s/a/b", t->dir);
	st = must_open(base);
	dir = xasprintf("%s/a/b/" SHORT, t->dir);
	assert_string_equal(state_store_path(st), dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0700);
	free(dir);
	dir = xasprintf("%s/a", t->dir);	/* created parents: 0700 too */
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_int_equal(stat(base, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);

	fill_record(&r, "i-1", 1);
	assert_int_equal(state_store_save(st, &r, 1), 0);
	f = file_path(st, STATE_STORE_FILE);
	assert_int_equal(stat(f, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	umask(old);
	/* A file made looser by hand gets 0600 again at the next save. */
	assert_int_equal(chmod(f, 0644), 0);
	assert_int_equal(state_store_save(st, &r, 1), 0);
	assert_int_equal(stat(f, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	state_store_free(st);

	/* An existing runner directory with loose modes is tightened. */
	free(dir);
	dir = xasprintf("%s/a/b/" SHORT, t->dir);
	assert_int_equal(chmod(dir, 0755), 0);
	st = must_open(base);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	state_store_free(st);

	state_store_record_release(&r);
	free(f);
	free(dir);
	free(base);
}

static void
test_open_errors(void **state)
{
	struct tmp *t = *state;
	struct state_store *st, *st2;
	char err[512], *p, *q;

	/* Locked while open, also against this same process. */
	st = must_open(t->dir);
	assert_null(state_store_open(t->dir, TOKEN, err, sizeof(err)));
	assert_non_null(strstr(err, "in use"));
	/* Another runner's directory is another store. */
	st2 = state_store_open(t->dir, "glrt-other-token-x", err, sizeof(err));
	assert_non_null(st2);
	state_store_free(st2);
	state_store_free(st);
	st = must_open(t->dir);
	state_store_free(st);
	state_store_free(NULL);

	assert_null(state_store_open(t->dir, "glrt-", err, sizeof(err)));
	assert_non_null(strstr(err, "token"));
	assert_null(strstr(err, "glrt"));
	assert_null(state_store_open(NULL, TOKEN, err, sizeof(err)));
	assert_null(state_store_open("", TOKEN, err, sizeof(err)));

	/* The runner directory is a symlink, or a parent is a file. */
	p = xasprintf("%s/link", t->dir);
	q = xasprintf("%s/link/" SHORT, t->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(symlink("/tmp", q), 0);
	assert_null(state_store_open(p, TOKEN, err, sizeof(err)));
	assert_non_null(strstr(err, "symbolic link"));
	free(p);
	free(q);
	p = xasprintf("%s/file", t->dir);
	spit(p, "x", 1);
	q = xasprintf("%s/file/sub", t->dir);
	assert_null(state_store_open(q, TOKEN, err, sizeof(err)));
	assert_non_null(strstr(err, q));
	free(p);
	free(q);
}

/*
 * A crash after the temporary file was written but before the rename
 * leaves it behind: the load reads the old file only, the next save
 * removes it.
 */
static void
test_atomic(void **state)
{
	struct tmp *t = *state;
	struct state_record a[2], b, *out;
	struct state_store *st;
	char err[512], *tmp, *f, *before, *after, *buf;
	size_t n, blen, alen, len;

	st = must_open(t->dir);
	fill_record(&a[0], "old-1", 1);
	fill_record(&a[1], "old-2", 2);
	fill_record(&b, "new-1", 5);
	assert_int_equal(state_store_save(st, a, 2), 0);
	f = file_path(st, STATE_STORE_FILE);
	before = slurp(f, &blen);
	assert_non_null(before);

	/* What the crashed save had written: the new set, complete, and a
	 * second one cut short. */
	assert_int_equal(state_store_format(&b, 1, &buf, &len), 0);
	tmp = file_path(st, STATE_STORE_FILE ".tmp-4242-1");
	spit(tmp, buf, len);
	free(tmp);
	tmp = file_path(st, STATE_STORE_FILE ".tmp-4242-2");
	spit(tmp, buf, len / 2);
	free(tmp);
	freezero(buf, len);
	assert_int_equal(count_prefix(state_store_path(st),
	    STATE_STORE_FILE ".tmp-", NULL, 0), 2);

	/* A restart: the old set, untouched. */
	state_store_free(st);
	st = must_open(t->dir);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_record_equal(&a[0], &out[0]);
	assert_record_equal(&a[1], &out[1]);
	state_store_records_free(out, n);
	after = slurp(f, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);

	/* The next save replaces the file and removes the leftovers. */
	assert_int_equal(state_store_save(st, &b, 1), 0);
	assert_int_equal(count_prefix(state_store_path(st),
	    STATE_STORE_FILE ".tmp-", NULL, 0), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_record_equal(&b, &out[0]);
	state_store_records_free(out, n);

	/* A save that fails half-way through writing (the file size limit
	 * hit after some bytes): FL_ERR_IO, the old file intact, no
	 * temporary file left. */
	{
		struct rlimit rl, lim = { 100, 100 };
		void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
		int rc;

		free(before);
		before = slurp(f, &blen);
		assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
		lim.rlim_max = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		errno = 0;
		rc = state_store_save(st, a, 2);
		assert_int_equal(errno, EFBIG);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
		signal(SIGXFSZ, oldsig);
		assert_int_equal(rc, FL_ERR_IO);
		after = slurp(f, &alen);
		assert_int_equal(alen, blen);
		assert_memory_equal(after, before, blen);
		free(after);
		assert_int_equal(count_prefix(state_store_path(st),
		    STATE_STORE_FILE ".tmp-", NULL, 0), 0);
	}

	/* Records a load would refuse are refused before writing. */
	free(a[1].id);
	a[1].id = xstrdup("old-1");
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_INVAL);
	free(a[1].id);
	a[1].id = NULL;
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_INVAL);
	a[1].id = xstrdup("");
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_INVAL);
	free(a[1].id);
	a[1].id = xstrdup("bad-utf8-\xff");
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_INVAL);
	free(a[1].id);
	a[1].id = xstrdup("old-2");
	{
		/* What jansson's parser refuses, the writer refuses too:
		 * overlong, surrogate, beyond U+10FFFF, cut short. */
		static const char *bad[] = { "\xc0\x80", "\xe0\x80\xaf",
		    "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf0\x9f\x98",
		    "\x80" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			free(a[1].username);
			a[1].username = xstrdup(bad[i]);
			assert_int_equal(state_store_save(st, a, 2),
			    FL_ERR_INVAL);
		}
		free(a[1].username);
		a[1].username = xstrdup("core");
	}
	a[1].protocol_port = 65536;
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_RANGE);
	a[1].protocol_port = 22;
	a[1].use_count = -1;
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_RANGE);
	a[1].use_count = 2;
	free(a[1].os);
	a[1].os = xcalloc(1, STATE_STORE_MAX_STR + 2);
	memset(a[1].os, 'x', STATE_STORE_MAX_STR + 1);
	assert_int_equal(state_store_save(st, a, 2), FL_ERR_RANGE);
	a[1].os[STATE_STORE_MAX_STR] = '\0';	/* at the limit: fine */
	assert_int_equal(state_store_save(st, a, 2), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(strlen(out[1].os), STATE_STORE_MAX_STR);
	state_store_records_free(out, n);
	{
		struct state_record *many = xcalloc(STATE_STORE_MAX_RECORDS + 1,
		    sizeof(*many));

		assert_int_equal(state_store_save(st, many,
		    STATE_STORE_MAX_RECORDS + 1), FL_ERR_TOOBIG);
		free(many);
	}

	state_store_record_release(&a[0]);
	state_store_record_release(&a[1]);
	state_store_record_release(&b);
	free(before);
	free(f);
	state_store_free(st);
}

/* The file holds the credentials (it must), the errors never. */
static void
test_secrets(void **state)
{
	struct tmp *t = *state;
	struct state_record r, *out;
	struct state_store *st;
	char err[512], *f, *text, *cut;
	size_t len, n;
	int rc;

	st = must_open(t->dir);
	fill_record(&r, "i-1", 1);
	assert_int_equal(state_store_save(st, &r, 1), 0);
	f = file_path(st, STATE_STORE_FILE);
	text = slurp(f, &len);
	assert_non_null(strstr(text, PASSWORD));
	assert_non_null(strstr(text, KEY_MARK));

	/* Cut inside the key: a parse error that names no secret. */
	cut = strstr(text, KEY_MARK) + 6;
	spit(f, text, (size_t)(cut - text));
	rc = state_store_load(st, &out, &n, err, sizeof(err));
	assert_int_equal(rc, FL_ERR_PARSE);
	assert_null(out);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err, "moved aside"));
	assert_no_secret(err);
	free(text);

	/* Secrets where names or other values go. */
	{
		static const char *bad[] = {
			"{\"version\":1,\"instances\":[{\"" PASSWORD "\":1}]}",
			"{\"version\":1,\"" PASSWORD "\":[]}",
			"{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":\""
			    PASSWORD "\",\"created_at\":0,\"ready\":true,"
			    "\"had_acquisitions\":false}]}",
			"{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":0,"
			    "\"created_at\":0,\"ready\":true,\"had_acquisitions\":"
			    "false,\"connect_info\":{\"password\":[\"" PASSWORD
			    "\"]}}]}",
			"{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":0,"
			    "\"created_at\":0,\"ready\":true,\"had_acquisitions\":"
			    "false,\"connect_info\":{\"key_base64\":\"" KEY_MARK
			    "!\"}}]}",
			"{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":0,"
			    "\"created_at\":0,\"ready\":true,\"had_acquisitions\":"
			    "false,\"connect_info\":{\"password\":\"x\","
			    "\"password\":\"" PASSWORD "\"}}]}",
			"{\"version\":1,\"instances\":[" PASSWORD "]}",
			"{\"version\":1,\"instances\":[\"" PASSWORD "\\u0000\"]}",
			"{\"version\":1,\"instances\":[\"" KEY_MARK "\xff\"]}",
			"{\"version\":\"" PASSWORD "\",\"instances\":[]}",
			"{\"version\":1,\"instances\":[]} " PASSWORD,
			/* jansson's own messages would quote these. */
			"{\"version\":1,\"instances\":[{\"id\":\"a\","
			    "\"connect_info\":{\"password\":\"" PASSWORD,
			"{\"version\":1,\"instances\":[{\"id\":\"a\","
			    "\"connect_info\":{\"password\":" PASSWORD "}}]}",
			"{\"version\":1,\"instances\":[{\"id\":\"a\","
			    "\"connect_info\":{\"key\":\"" KEY_MARK "\xff\"}}]}",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			rc = state_store_parse(bad[i], strlen(bad[i]), &out, &n,
			    err, sizeof(err));
			if (rc == 0)
				fail_msg("case %zu parsed", i);
			assert_null(out);
			assert_true(err[0] != '\0');
			assert_no_secret(err);
		}
	}
	state_store_record_release(&r);
	free(f);
	state_store_free(st);
}

struct bad_case {
	const char *json;
	int rc;
	const char *why;	/* in the message */
};

static const char rec_ok[] = "\"id\":\"a\",\"use_count\":0,\"created_at\":0,"
    "\"ready\":true,\"had_acquisitions\":false";

static void
test_strict(void **state)
{
	char b[40][400];
	struct bad_case cases[40];
	size_t nc = 0;
	struct state_record *out;
	char err[512];
	size_t n;

	(void)state;
#define CASE(r, w, ...) do {						\
	snprintf(b[nc], sizeof(b[nc]), __VA_ARGS__);			\
	cases[nc].json = b[nc]; cases[nc].rc = (r); cases[nc].why = (w);	\
	nc++;								\
} while (0)
	CASE(FL_ERR_PARSE, "line 1", "%s", "");
	CASE(FL_ERR_PARSE, "truncated", "{\"version\":1,");
	CASE(FL_ERR_PARSE, "not a JSON object", "[]");
	CASE(FL_ERR_PARSE, "\"version\" missing", "{\"instances\":[]}");
	CASE(FL_ERR_PARSE, "not an integer", "{\"version\":1.0,\"instances\":[]}");
	CASE(FL_ERR_RANGE, "unsupported version 2", "{\"version\":2,\"instances\":[]}");
	CASE(FL_ERR_RANGE, "unsupported version 0", "{\"version\":0}");
	CASE(FL_ERR_PARSE, "\"instances\" missing", "{\"version\":1}");
	CASE(FL_ERR_PARSE, "not an array", "{\"version\":1,\"instances\":{}}");
	CASE(FL_ERR_PARSE, "unknown key", "{\"version\":1,\"instances\":[],\"x\":1}");
	CASE(FL_ERR_PARSE, "duplicate key", "{\"version\":1,\"version\":1,\"instances\":[]}");
	CASE(FL_ERR_PARSE, "instances[0]: not an object", "{\"version\":1,\"instances\":[1]}");
	CASE(FL_ERR_PARSE, "instances[1]: \"id\" missing",
	    "{\"version\":1,\"instances\":[{%s},{\"use_count\":0}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0]: \"ready\" missing",
	    "{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":0,"
	    "\"created_at\":0,\"had_acquisitions\":false}]}");
	CASE(FL_ERR_PARSE, "instances[0].id: empty",
	    "{\"version\":1,\"instances\":[{\"id\":\"\",\"use_count\":0,"
	    "\"created_at\":0,\"ready\":true,\"had_acquisitions\":false}]}");
	CASE(FL_ERR_PARSE, "instances[0].use_count: out of range",
	    "{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":-1,"
	    "\"created_at\":0,\"ready\":true,\"had_acquisitions\":false}]}");
	CASE(FL_ERR_PARSE, "number out of range",
	    "{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":"
	    "9223372036854775808,\"created_at\":0,\"ready\":true,"
	    "\"had_acquisitions\":false}]}");
	CASE(FL_ERR_PARSE, "instances[0].ready: not a boolean",
	    "{\"version\":1,\"instances\":[{\"id\":\"a\",\"use_count\":0,"
	    "\"created_at\":0,\"ready\":1,\"had_acquisitions\":false}]}");
	CASE(FL_ERR_PARSE, "instances[0].host_key: not a string",
	    "{\"version\":1,\"instances\":[{%s,\"host_key\":null}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0].connect_info: not an object",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":[]}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0].connect_info.protocol_port: out of range",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":"
	    "{\"protocol_port\":65536}}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0].connect_info: unknown key",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":"
	    "{\"port\":22}}]}", rec_ok);
	CASE(FL_ERR_PARSE, "both key and key_base64",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":"
	    "{\"key\":\"a\",\"key_base64\":\"YQ==\"}}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0].connect_info.key_base64: not base64",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":"
	    "{\"key_base64\":\"Y\"}}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[0].connect_info.expires: not an integer",
	    "{\"version\":1,\"instances\":[{%s,\"connect_info\":"
	    "{\"expires\":\"0\"}}]}", rec_ok);
	CASE(FL_ERR_PARSE, "NUL", "{\"version\":1,\"instances\":[{%s,"
	    "\"host_key\":\"a\\u0000b\"}]}", rec_ok);
	CASE(FL_ERR_PARSE, "instances[1]: the id of instances[0] again",
	    "{\"version\":1,\"instances\":[{%s},{%s}]}", rec_ok, rec_ok);
	CASE(FL_ERR_PARSE, "data after the end",
	    "{\"version\":1,\"instances\":[]}{}");
#undef CASE
	for (size_t i = 0; i < nc; i++) {
		int rc = state_store_parse(cases[i].json, strlen(cases[i].json),
		    &out, &n, err, sizeof(err));

		if (rc != cases[i].rc || strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu %s: rc %d, \"%s\"", i, cases[i].json,
			    rc, err);
		assert_null(out);
		assert_int_equal(n, 0);
	}

	/* Sizes: a string at the limit is fine, one more byte is not. */
	{
		struct sbuf sb;
		char *s;

		for (int over = 0; over < 2; over++) {
			sbuf_init(&sb);
			sbuf_addf(&sb, "{\"version\":1,\"instances\":[{%s,"
			    "\"host_key\":\"", rec_ok);
			for (int k = 0; k < STATE_STORE_MAX_STR + over; k++)
				sbuf_addch(&sb, 'h');
			sbuf_adds(&sb, "\"}]}");
			s = sbuf_detach(&sb, &n);
			assert_int_equal(state_store_parse(s, n, &out, &n, err,
			    sizeof(err)), over ? FL_ERR_PARSE : 0);
			if (over)
				assert_non_null(strstr(err, "longer than 4096"));
			state_store_records_free(out, n);
			free(s);
		}
		/* Too many records: refused before looking at them. */
		sbuf_init(&sb);
		sbuf_adds(&sb, "{\"version\":1,\"instances\":[{}");
		for (int k = 0; k < STATE_STORE_MAX_RECORDS; k++)
			sbuf_adds(&sb, ",{}");
		sbuf_adds(&sb, "]}");
		s = sbuf_detach(&sb, &n);
		assert_int_equal(state_store_parse(s, n, &out, &n, err,
		    sizeof(err)), FL_ERR_TOOBIG);
		assert_non_null(strstr(err, "more than 100000"));
		free(s);
		assert_int_equal(state_store_parse("{}",
		    STATE_STORE_MAX_FILE + 1, &out, &n, err, sizeof(err)),
		    FL_ERR_TOOBIG);
	}
}

/* Broken files are moved aside and the manager starts with nothing. */
static void
test_corrupt_file(void **state)
{
	struct tmp *t = *state;
	struct state_record r, *out;
	struct state_store *st;
	char err[512], name[300], *f, *g, *text;
	size_t n, len;
	int fd;

	st = must_open(t->dir);
	f = file_path(st, STATE_STORE_FILE);
	spit(f, "{\"version\":1,\"instances\":[{\"id\"", 30);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)),
	    FL_ERR_PARSE);
	assert_null(out);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err, "line 1"));
	assert_non_null(strstr(err, "moved aside to " STATE_STORE_FILE
	    ".corrupt-20"));
	assert_int_equal(access(f, F_OK), -1);
	assert_int_equal(count_prefix(state_store_path(st),
	    STATE_STORE_FILE ".corrupt-", name, sizeof(name)), 1);
	assert_non_null(strstr(err, name));
	g = file_path(st, name);
	text = slurp(g, &len);
	assert_int_equal(len, 30);	/* kept as it was */
	free(text);
	free(g);
	/* Then: no file, an empty set, and saving works. */
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	fill_record(&r, "i-1", 1);
	assert_int_equal(state_store_save(st, &r, 1), 0);

	/* A version from the future, twice in the same second: both kept. */
	for (int k = 0; k < 2; k++) {
		spit(f, "{\"version\":7}", 13);
		assert_int_equal(state_store_load(st, &out, &n, err,
		    sizeof(err)), FL_ERR_RANGE);
		assert_non_null(strstr(err, "unsupported version 7"));
		assert_null(out);
	}
	assert_int_equal(count_prefix(state_store_path(st),
	    STATE_STORE_FILE ".corrupt-", NULL, 0), 3);

	/* Oversize (sparse, so cheap): refused unread. */
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)STATE_STORE_MAX_FILE + 1), 0);
	close(fd);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)),
	    FL_ERR_TOOBIG);
	assert_non_null(strstr(err, "larger than"));
	assert_int_equal(count_prefix(state_store_path(st),
	    STATE_STORE_FILE ".corrupt-", NULL, 0), 4);

	/* Not a file: an IO error, left in place. */
	assert_int_equal(mkdir(f, 0700), 0);
	assert_int_equal(state_store_load(st, &out, &n, err, sizeof(err)),
	    FL_ERR_IO);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(f), 0);

	state_store_record_release(&r);
	free(f);
	state_store_free(st);
}

/* ---- restart with the scaler core ---- */

/* A fake plugin: instances that are running as soon as they exist. */
struct plug {
	char id[16][32];
	size_t n;
	int next;
	/* Decreases asked for. */
	char dec_id[16][32];
	int dec_reason[16];
	size_t ndec;
};

static void
plug_add(struct plug *p, const char *id)
{
	snprintf(p->id[p->n++], sizeof(p->id[0]), "%s", id);
}

static void
plug_del(struct plug *p, const char *id)
{
	for (size_t k = 0; k < p->n; k++) {
		if (strcmp(p->id[k], id) == 0) {
			memcpy(p->id[k], p->id[--p->n], sizeof(p->id[0]));
			return;
		}
	}
}

static size_t
plug_ndec(const struct plug *p, const char *id, int reason)
{
	size_t n = 0;

	for (size_t k = 0; k < p->ndec; k++)
		n += strcmp(p->dec_id[k], id) == 0 && p->dec_reason[k] == reason;
	return n;
}

struct rig {
	struct config_autoscaler as;
	struct config_policy pol;
	char *period;
	struct scaler *s;
	struct scaler_actions a;
	int64_t now;
	struct plug *p;
};

static void
rig_init(struct rig *g, struct plug *p, int keep_with_acquisitions)
{
	char err[256];

	memset(g, 0, sizeof(*g));
	g->as.capacity_per_instance = 1;
	g->as.max_use_count = 4;
	g->as.instance_acquire_timeout_ns = SEC(900);
	g->as.update_interval_ns = SEC(60);
	g->as.update_interval_when_expecting_ns = SEC(2);
	g->as.deletion_retry_interval_ns = SEC(60);
	g->as.shutdown_deletion_interval_ns = SEC(10);
	g->as.shutdown_deletion_retries = 3;
	g->as.failure_threshold = 3;
	g->as.reservation_throttling = TRI_FALSE;
	g->as.scale_throttle.limit = -1;
	g->period = "* * * * *";
	g->pol.periods.v = &g->period;
	g->pol.periods.n = 1;
	g->pol.timezone = "UTC";
	g->pol.idle_time_ns = SEC(300);
	g->pol.preemptive_mode = TRI_FALSE;
	g->as.policy = &g->pol;
	g->as.npolicy = 1;
	g->as.state_storage.enabled = 1;
	g->as.state_storage.keep_instance_with_acquisitions =
	    keep_with_acquisitions;
	g->now = T0;
	g->p = p;
	scaler_actions_init(&g->a);
	g->s = scaler_new(&g->as, err, sizeof(err));
	if (g->s == NULL)
		fail_msg("scaler_new: %s", err);
}

static void
rig_done(struct rig *g)
{
	scaler_actions_release(&g->a);
	scaler_free(g->s);
}

static void
rig_update(struct rig *g)
{
	struct scaler_report r[16];

	for (size_t k = 0; k < g->p->n; k++) {
		r[k].id = g->p->id[k];
		r[k].state = SCALER_P_RUNNING;
	}
	assert_int_equal(scaler_update(g->s, g->now, r, g->p->n), 0);
}

/* Play the glue for `secs` seconds of fake time. */
static void
rig_run(struct rig *g, int64_t secs)
{
	int64_t until = g->now + SEC(secs);
	int loops = 0;

	for (;;) {
		struct scaler_actions *a = &g->a;
		int fed = 0;

		assert_true(++loops < 1000);
		if (g->now >= a->next_update)
			rig_update(g);
		scaler_decide(g->s, g->now, a);
		if (a->increase > 0) {
			for (int64_t k = 0; k < a->increase; k++) {
				char id[32];

				snprintf(id, sizeof(id), "vm-%d", g->p->next++);
				plug_add(g->p, id);
			}
			scaler_increase_result(g->s, g->now, a->increase,
			    a->increase);
			fed = 1;
		}
		if (a->ndecrease > 0) {
			const char *req[16];

			for (size_t k = 0; k < a->ndecrease; k++) {
				struct plug *p = g->p;

				req[k] = a->decrease[k].id;
				snprintf(p->dec_id[p->ndec], sizeof(p->dec_id[0]),
				    "%s", req[k]);
				p->dec_reason[p->ndec++] = a->decrease[k].reason;
				plug_del(p, req[k]);
			}
			scaler_decrease_result(g->s, g->now, req, a->ndecrease,
			    req, a->ndecrease);
			fed = 1;
		}
		for (size_t k = 0; k < a->nready_checks; k++) {
			assert_int_equal(scaler_ready_result(g->s, g->now,
			    a->ready_checks[k], 1), 0);
			fed = 1;
		}
		for (size_t k = 0; k < a->nheartbeats; k++) {
			assert_int_equal(scaler_heartbeat_result(g->s, g->now,
			    a->heartbeats[k], 1), 0);
			fed = 1;
		}
		if (fed)
			continue;
		if (g->now >= until)
			break;
		{
			int64_t next = a->wakeup < a->next_update ? a->wakeup :
			    a->next_update;

			g->now = next > g->now && next < until ? next : until;
		}
	}
}

/* A job: reserve and acquire (waiting for a grant when needed). */
static scaler_key
rig_job(struct rig *g, const char **inst)
{
	scaler_key k = 0;
	int rc;

	assert_int_equal(scaler_reserve(g->s, g->now, &k), 0);
	rc = scaler_acquire(g->s, g->now, k, inst, NULL);
	if (rc == FL_ERR_AGAIN) {
		rig_run(g, 10);
		rc = scaler_acquire(g->s, g->now, k, inst, NULL);
	}
	assert_int_equal(rc, 0);
	return k;
}

static int64_t
use_of(struct rig *g, const char *id)
{
	struct scaler_instance_info ii;

	assert_int_equal(scaler_instance(g->s, id, &ii), 0);
	return ii.use_count;
}

/* Save every instance of g, with connect info, as the glue would. */
static void
rig_save(struct rig *g, struct state_store *st)
{
	size_t n = scaler_instance_count(g->s);
	struct state_record *r = xcalloc(n, sizeof(*r));

	for (size_t i = 0; i < n; i++) {
		struct scaler_instance_info ii;

		assert_int_equal(scaler_instance_at(g->s, i, &ii), 0);
		fill_record(&r[i], ii.id, 0);
		state_store_record_from_instance(&r[i], &ii);
	}
	assert_int_equal(state_store_save(st, r, n), 0);
	state_store_records_free(r, n);
}

/* Load and restore into g; returns the records (for the connect info). */
static size_t
rig_restore(struct rig *g, struct state_store *st, struct state_record **recs)
{
	struct scaler_restored *sr;
	char err[512];
	size_t n;

	assert_int_equal(state_store_load(st, recs, &n, err, sizeof(err)), 0);
	sr = state_store_restored(*recs, n);
	assert_int_equal(scaler_restore(g->s, g->now, sr, n), 0);
	free(sr);
	return n;
}

static void
test_restart(void **state)
{
	struct tmp *t = *state;
	struct plug *p = xcalloc(1, sizeof(*p));
	struct rig *g = xcalloc(1, sizeof(*g));
	struct scaler_instance_info ii;
	struct state_record *recs;
	struct state_store *st;
	const char *x, *y, *i3, *i4;
	char xid[32], yid[32];
	scaler_key k1, k2, k3, k4;
	size_t n;

	/* Manager A: two instances, jobs until their use counts are 3
	 * and 1. */
	rig_init(g, p, 0);
	rig_run(g, 1);
	k1 = rig_job(g, &x);
	k2 = rig_job(g, &y);
	snprintf(xid, sizeof(xid), "%s", x);
	snprintf(yid, sizeof(yid), "%s", y);
	assert_string_not_equal(xid, yid);
	assert_int_equal(p->n, 2);
	assert_int_equal(scaler_release(g->s, g->now, k1), 0);
	rig_run(g, 1);
	k3 = rig_job(g, &i3);		/* y is busy: on x */
	assert_string_equal(i3, xid);
	assert_int_equal(scaler_release(g->s, g->now, k3), 0);
	rig_run(g, 1);
	k4 = rig_job(g, &i4);
	assert_string_equal(i4, xid);
	assert_int_equal(scaler_release(g->s, g->now, k4), 0);
	assert_int_equal(scaler_release(g->s, g->now, k2), 0);
	rig_run(g, 5);
	assert_int_equal(use_of(g, xid), 3);
	assert_int_equal(use_of(g, yid), 1);
	assert_int_equal(p->ndec, 0);
	assert_int_equal(p->n, 2);

	st = must_open(t->dir);
	rig_save(g, st);
	state_store_free(st);
	rig_done(g);

	/* Manager B, with state storage: the same instances, listed by
	 * the plugin, are kept with their use counts. */
	rig_init(g, p, 0);
	g->now = T0 + SEC(60);
	st = must_open(t->dir);
	n = rig_restore(g, st, &recs);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(recs[i].password, PASSWORD);
		assert_string_equal(recs[i].key, KEY_PEM);
		assert_int_equal(recs[i].ready, 1);
		assert_int_equal(recs[i].had_acquisitions, 0);
	}
	state_store_records_free(recs, n);
	rig_run(g, 5);
	assert_int_equal(p->ndec, 0);
	assert_int_equal(p->n, 2);
	assert_int_equal(scaler_instance(g->s, xid, &ii), 0);
	assert_int_equal(ii.state, SCALER_READY);
	assert_int_equal(ii.cause, SCALER_CAUSE_RESTORED);
	assert_int_equal(ii.use_count, 3);
	assert_int_equal(scaler_instance(g->s, yid, &ii), 0);
	assert_int_equal(ii.state, SCALER_READY);
	assert_int_equal(ii.use_count, 1);
	assert_int_equal(scaler_metrics(g->s)->internal_operations_total[
	    SCALER_INT_RESTORED], 2);
	assert_int_equal(scaler_metrics(g->s)->internal_operations_total[
	    SCALER_INT_PREEXISTING], 0);

	/* max_use_count 4: x takes exactly one more job. */
	k1 = rig_job(g, &x);
	k2 = rig_job(g, &y);
	assert_string_not_equal(x, y);
	assert_int_equal(use_of(g, xid), 4);
	assert_int_equal(use_of(g, yid), 2);
	assert_int_equal(scaler_release(g->s, g->now, k1), 0);
	assert_int_equal(scaler_release(g->s, g->now, k2), 0);
	rig_run(g, 5);
	assert_int_equal(plug_ndec(p, xid, SCALER_REASON_MAX_USE_COUNT), 1);
	assert_int_equal(p->ndec, 1);
	assert_int_equal(scaler_instance(g->s, xid, &ii), FL_ERR_NOTFOUND);
	k3 = rig_job(g, &i3);
	assert_string_equal(i3, yid);
	assert_int_equal(use_of(g, yid), 3);
	/* With y busy, the next job needs a new instance, not x. */
	k4 = rig_job(g, &i4);
	assert_string_not_equal(i4, xid);
	assert_string_not_equal(i4, yid);
	assert_int_equal(scaler_release(g->s, g->now, k3), 0);
	assert_int_equal(scaler_release(g->s, g->now, k4), 0);
	rig_done(g);
	state_store_free(st);

	/* Manager C, without state storage: the same two instances are
	 * pre-existing and removed for safety. */
	memset(p, 0, sizeof(*p));
	plug_add(p, xid);
	plug_add(p, yid);
	rig_init(g, p, 0);
	rig_run(g, 5);
	assert_int_equal(plug_ndec(p, xid, SCALER_REASON_NOT_READY), 1);
	assert_int_equal(plug_ndec(p, yid, SCALER_REASON_NOT_READY), 1);
	assert_int_equal(p->n, 0);
	assert_int_equal(scaler_metrics(g->s)->internal_operations_total[
	    SCALER_INT_PREEXISTING], 2);
	rig_done(g);

	free(g);
	free(p);
}

/* Saved while a job ran: removed on restore, unless
 * keep_instance_with_acquisitions. */
static void
test_restart_with_acquisitions(void **state)
{
	struct tmp *t = *state;
	struct plug *p = xcalloc(1, sizeof(*p));
	struct rig *g = xcalloc(1, sizeof(*g));
	struct scaler_instance_info ii;
	struct state_record *recs;
	struct state_store *st;
	const char *x;
	char xid[32];
	scaler_key k;
	size_t n;

	rig_init(g, p, 0);
	k = rig_job(g, &x);
	snprintf(xid, sizeof(xid), "%s", x);
	st = must_open(t->dir);
	rig_save(g, st);		/* the job still runs */
	state_store_free(st);
	(void)k;
	rig_done(g);

	for (int keep = 0; keep < 2; keep++) {
		rig_init(g, p, keep);
		st = must_open(t->dir);
		n = rig_restore(g, st, &recs);
		assert_int_equal(n, 1);
		assert_int_equal(recs[0].had_acquisitions, 1);
		state_store_records_free(recs, n);
		state_store_free(st);
		p->ndec = 0;
		rig_run(g, 5);
		if (keep) {
			assert_int_equal(p->ndec, 0);
			assert_int_equal(scaler_instance(g->s, xid, &ii), 0);
			assert_int_equal(ii.state, SCALER_READY);
			assert_int_equal(ii.use_count, 1);
		} else {
			assert_int_equal(plug_ndec(p, xid,
			    SCALER_REASON_NOT_READY), 1);
			plug_add(p, xid);	/* for the next round */
		}
		rig_done(g);
	}
	free(g);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirname),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test(test_record_helpers),
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_strict),
		cmocka_unit_test_setup_teardown(test_round_trip, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_permissions, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_open_errors, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_atomic, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_secrets, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_corrupt_file, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_restart, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(test_restart_with_acquisitions,
		    setup_tmp, teardown_tmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
