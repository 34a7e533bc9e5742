/*
 * docker_probe: drives the Docker client (manager/docker.c) against a real
 * engine's unix socket for tests/integration/docker_client.sh, and measures
 * it.  One scenario per invocation; it prints key=value lines and exits 0
 * when the scenario behaved as expected, 1 otherwise (with "error: ...").
 *
 *   docker_probe SOCKET ping
 *   docker_probe SOCKET pinned VERSION IMAGE   (a pinned version is used)
 *   docker_probe SOCKET inspect-image NAME
 *   docker_probe SOCKET get-image IMAGE JOB CONFIG ALLOWED
 *                 (comma lists, "-" for none: pull policies tried in order)
 *   docker_probe SOCKET pull REF [AUTH-CONFIG-JSON]
 *   docker_probe SOCKET run IMAGE SCRIPT       (create, start, logs, wait)
 *   docker_probe SOCKET attach IMAGE SCRIPT    (the script goes to stdin)
 *   docker_probe SOCKET parallel N IMAGE
 *   docker_probe SOCKET archive IMAGE
 *   docker_probe SOCKET kill IMAGE
 *   docker_probe SOCKET labels IMAGE N
 *   docker_probe SOCKET volumes N
 *   docker_probe SOCKET networks IMAGE
 *   docker_probe SOCKET load TARFILE
 *   docker_probe SOCKET cancel IMAGE           (cancel and free mid-stream)
 *   docker_probe DIR    eof | timeout          (fake engines in DIR)
 *   docker_probe SOCKET bench-ping N | bench-raw N
 *
 * The sequential scenarios are written with await(): run the loop until
 * one request's callback has fired.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "docker.h"
#include "dockerauth.h"
#include "err.h"
#include "pullpolicy.h"
#include "xmalloc.h"

static struct event_base *base;
static struct docker *dk;
static const char *sockpath;
static char label_run[64];
static int dials;

/* docker_dial_unix, counted (keep-alive shows as few dials). */
static struct bufferevent *
counting_dial(struct event_base *b, void *arg, char *err, size_t errlen)
{
	dials++;
	return docker_dial_unix(b, arg, err, errlen);
}

/* One finished request, copied out of the callback. */
struct wres {
	int done;
	int err;
	int status;
	char *msg;
	json_t *json;
	char *id;
	int exit_code;
	char *api;
	struct sbuf out, errout;	/* streams */
	int attached;
	int progress;
	const char *image;		/* attach: to start on attach */
	struct wres *start;
};

static void
wres_init(struct wres *w)
{
	memset(w, 0, sizeof(*w));
	sbuf_init(&w->out);
	sbuf_init(&w->errout);
}

static void
wres_release(struct wres *w)
{
	free(w->msg);
	json_decref(w->json);
	free(w->id);
	free(w->api);
	sbuf_release(&w->out);
	sbuf_release(&w->errout);
}

static void
wcb(void *arg, const struct docker_result *res)
{
	struct wres *w = arg;

	w->done = 1;
	w->err = res->err;
	w->status = res->status;
	w->msg = xstrdup(res->msg);
	w->json = json_incref(res->json);
	w->id = res->id ? xstrdup(res->id) : NULL;
	w->exit_code = res->exit_code;
	w->api = res->api_version ? xstrdup(res->api_version) : NULL;
}

static void
chunk_cb(void *arg, int stream, const char *data, size_t len)
{
	struct wres *w = arg;

	if (stream == DOCKER_ATTACHED) {
		w->attached = 1;
		return;
	}
	sbuf_add(stream == 2 ? &w->errout : &w->out, data, len);
}

static void
progress_cb(void *arg, json_t *msg)
{
	struct wres *w = arg;

	(void)msg;
	w->progress++;
}

static void
await(struct wres *w)
{
	while (!w->done)
		event_base_loop(base, EVLOOP_ONCE);
}

static int
fail(const char *what, const struct wres *w)
{
	printf("error: %s: %s (%s, status %d)\n", what, w->msg ? w->msg : "",
	    err_str(w->err), w->status);
	return 1;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Output with newlines shown as '|', for one-line key=value output. */
static void
print_stream(const char *key, const struct sbuf *sb)
{
	printf("%s=", key);
	for (size_t i = 0; i < sb->len; i++)
		putchar(sb->buf[i] == '\n' ? '|' : sb->buf[i]);
	putchar('\n');
}

/* A container body: image, sh -c script, our labels, host network. */
static json_t *
container_body(const char *image, const char *script, const char *label)
{
	json_t *b = json_pack("{s:s, s:[s,s,s], s:{s:s, s:s}, s:{s:s}}",
	    "Image", image, "Cmd", "sh", "-c", script,
	    "Labels", "com.gitlab.gitlab-runner.managed", "true",
	    "flotilla.test", label ? label : label_run,
	    "HostConfig", "NetworkMode", "host");

	return b;
}

/* create; returns the id (caller frees) or NULL after printing. */
static char *
create(json_t *body, const char *name)
{
	struct wres w;
	char *id;

	wres_init(&w);
	docker_container_create(dk, name, body, wcb, &w);
	await(&w);
	if (w.err != 0 || w.id == NULL) {
		fail("create", &w);
		wres_release(&w);
		return NULL;
	}
	id = xstrdup(w.id);
	wres_release(&w);
	return id;
}

static int
simple(struct docker_req *(*fn)(struct docker *, const char *, docker_cb,
    void *), const char *id, const char *what)
{
	struct wres w;
	int rc = 0;

	wres_init(&w);
	fn(dk, id, wcb, &w);
	await(&w);
	if (w.err != 0)
		rc = fail(what, &w);
	wres_release(&w);
	return rc;
}

static void
remove_quiet(const char *id)
{
	struct wres w;

	wres_init(&w);
	docker_container_remove(dk, id, 1, 1, wcb, &w);
	await(&w);
	wres_release(&w);
}

/* --- scenarios --------------------------------------------------------- */

static int
cmd_ping(void)
{
	struct wres w;
	int rc = 0;

	wres_init(&w);
	docker_ping(dk, wcb, &w);
	await(&w);
	if (w.err != 0)
		rc = fail("ping", &w);
	else
		printf("api_version=%s\n", w.api);
	wres_release(&w);
	if (rc == 0) {
		/* The version endpoint answers through the versioned path. */
		wres_init(&w);
		docker_version(dk, wcb, &w);
		await(&w);
		if (w.err != 0)
			rc = fail("version", &w);
		else
			printf("server_api=%s\nclient_api=%s\ndials=%d\n",
			    json_string_value(json_object_get(w.json,
			    "ApiVersion")), docker_api_version(dk), dials);
		wres_release(&w);
	}
	return rc;
}

static int
cmd_pinned(const char *version, const char *image)
{
	struct wres w;

	if (docker_set_api_version(dk, version) < 0) {
		printf("error: bad version\n");
		return 1;
	}
	wres_init(&w);
	docker_image_inspect(dk, image, wcb, &w);
	await(&w);
	printf("err=%s\nstatus=%d\nmsg=%s\n", err_str(w.err), w.status,
	    w.msg);
	wres_release(&w);
	return 0;
}

static int
cmd_inspect_image(const char *name)
{
	struct wres w;
	int rc = 0;

	wres_init(&w);
	docker_image_inspect(dk, name, wcb, &w);
	await(&w);
	if (w.err != 0) {
		rc = fail("inspect", &w);
		printf("err=%s\n", err_str(w.err));
	} else {
		printf("id=%s\n", json_string_value(json_object_get(w.json,
		    "Id")));
	}
	wres_release(&w);
	return rc;
}

/* "a,b,c" → vector (in place); "-" → none. */
static size_t
split_list(char *s, const char **v, size_t max)
{
	size_t n = 0;

	if (strcmp(s, "-") == 0)
		return 0;
	for (char *p = strtok_r(s, ",", &s); p != NULL && n < max;
	    p = strtok_r(NULL, ",", &s))
		v[n++] = p;
	return n;
}

/*
 * GitLab Runner's getImageUsingPullPolicy for each effective policy, in
 * order, until one gives an image.
 */
static int
cmd_get_image(const char *image, char *job, char *cfg, char *allowed)
{
	const char *jv[8], *cv[8], *av[8];
	size_t nj = split_list(job, jv, 8), nc = split_list(cfg, cv, 8);
	size_t na = split_list(allowed, av, 8);
	enum pullpolicy pol[PULLPOLICY_MAX];
	char err[512], *last = NULL;
	int n;

	n = pullpolicy_effective(image, jv, nj, cv, nc, av, na, pol, err,
	    sizeof(err));
	if (n < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("effective=");
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? "," : "", pullpolicy_name(pol[i]));
	printf("\n");
	for (int i = 0; i < n; i++) {
		struct wres w;

		wres_init(&w);
		docker_image_inspect(dk, image, wcb, &w);
		await(&w);
		if (pol[i] == PULL_NEVER || (pol[i] == PULL_IF_NOT_PRESENT &&
		    w.err == 0)) {
			if (w.err == 0) {
				printf("policy=%s\nimage=%s\npulled=0\n",
				    pullpolicy_name(pol[i]),
				    json_string_value(json_object_get(w.json,
				    "Id")));
				wres_release(&w);
				free(last);
				return 0;
			}
			printf("attempt=%s: %s\n", pullpolicy_name(pol[i]),
			    w.msg);
			free(last);
			last = xstrdup(w.msg);
			wres_release(&w);
			continue;
		}
		wres_release(&w);
		wres_init(&w);
		docker_image_pull(dk, image, NULL, progress_cb, wcb, &w);
		await(&w);
		if (w.err != 0) {
			printf("attempt=%s: %s\n", pullpolicy_name(pol[i]),
			    w.msg);
			free(last);
			last = xstrdup(w.msg);
			wres_release(&w);
			continue;
		}
		wres_release(&w);
		printf("policy=%s\npulled=1\n", pullpolicy_name(pol[i]));
		free(last);
		return 0;
	}
	printf("error: failed to pull image \"%s\": %s\n", image,
	    last ? last : "");
	free(last);
	return 1;
}

static int
cmd_pull(const char *ref, const char *authcfg)
{
	struct dockerauth *a = dockerauth_new();
	char err[256], *hdr = NULL;
	const char *src = NULL, *reg = NULL;
	struct wres w;

	if (authcfg != NULL && dockerauth_add_config(a, authcfg,
	    strlen(authcfg), "$DOCKER_AUTH_CONFIG", err, sizeof(err)) < 0) {
		printf("error: DOCKER_AUTH_CONFIG: %s\n", err);
		dockerauth_free(a);
		return 1;
	}
	hdr = dockerauth_header(a, ref, &src, &reg);
	if (hdr != NULL)
		printf("auth_source=%s\nauth_registry=%s\n", src, reg);
	wres_init(&w);
	docker_image_pull(dk, ref, hdr, progress_cb, wcb, &w);
	freezero_str(hdr);
	dockerauth_free(a);
	await(&w);
	printf("err=%s\nstatus=%d\nprogress=%d\nmsg=%s\n", err_str(w.err),
	    w.status, w.progress, w.msg);
	wres_release(&w);
	return 0;
}

/* create, start, logs (follow), wait, remove: one container's life. */
struct life {
	int i;
	char *id;
	struct wres create, start, logs, wait, rm;
	int stage;
	int ok;
};

static void
life_step(struct life *l)
{
	/* Called repeatedly by the loop driver; advances when ready. */
	switch (l->stage) {
	case 0:
		if (!l->create.done)
			return;
		if (l->create.err != 0) {
			fail("create", &l->create);
			l->stage = 9;
			return;
		}
		l->id = xstrdup(l->create.id);
		docker_container_start(dk, l->id, wcb, &l->start);
		l->stage = 1;
		return;
	case 1:
		if (!l->start.done)
			return;
		if (l->start.err != 0) {
			fail("start", &l->start);
			l->stage = 9;
			return;
		}
		docker_container_logs(dk, l->id, DOCKER_STREAM_FOLLOW,
		    chunk_cb, wcb, &l->logs);
		docker_container_wait(dk, l->id, "not-running", wcb, &l->wait);
		l->stage = 2;
		return;
	case 2:
		if (!l->logs.done || !l->wait.done)
			return;
		docker_container_remove(dk, l->id, 1, 1, wcb, &l->rm);
		l->stage = 3;
		return;
	case 3:
		if (!l->rm.done)
			return;
		l->ok = l->logs.err == 0 && l->wait.err == 0 &&
		    l->rm.err == 0;
		if (l->logs.err)
			fail("logs", &l->logs);
		if (l->wait.err)
			fail("wait", &l->wait);
		if (l->rm.err)
			fail("remove", &l->rm);
		l->stage = 9;
		return;
	default:
		return;
	}
}

static void
life_start(struct life *l, const char *image, const char *script)
{
	json_t *body = container_body(image, script, NULL);

	wres_init(&l->create);
	wres_init(&l->start);
	wres_init(&l->logs);
	wres_init(&l->wait);
	wres_init(&l->rm);
	docker_container_create(dk, NULL, body, wcb, &l->create);
	json_decref(body);
}

static void
life_release(struct life *l)
{
	free(l->id);
	wres_release(&l->create);
	wres_release(&l->start);
	wres_release(&l->logs);
	wres_release(&l->wait);
	wres_release(&l->rm);
}

static void
lives_run(struct life *v, int n)
{
	for (;;) {
		int busy = 0;

		for (int i = 0; i < n; i++) {
			life_step(&v[i]);
			if (v[i].stage != 9)
				busy = 1;
		}
		if (!busy)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static int
cmd_run(const char *image, const char *script)
{
	struct life l;
	int rc;

	memset(&l, 0, sizeof(l));
	life_start(&l, image, script);
	lives_run(&l, 1);
	print_stream("stdout", &l.logs.out);
	print_stream("stderr", &l.logs.errout);
	printf("exit=%d\n", l.wait.exit_code);
	rc = l.ok ? 0 : 1;
	life_release(&l);
	return rc;
}

static int
cmd_parallel(int n, const char *image)
{
	struct life *v = xcalloc((size_t)n, sizeof(*v));
	int64_t t0 = now_ns();
	int good = 0;

	for (int i = 0; i < n; i++) {
		char *script = xasprintf("echo hello-%d; echo e%d >&2; "
		    "exit %d", i, i, i % 4);

		v[i].i = i;
		life_start(&v[i], image, script);
		free(script);
	}
	lives_run(v, n);
	for (int i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "hello-%d\n", i);
		if (v[i].ok && v[i].logs.out.len == strlen(want) &&
		    memcmp(v[i].logs.out.buf, want, strlen(want)) == 0 &&
		    v[i].wait.exit_code == i % 4 && v[i].logs.errout.len > 0)
			good++;
		else
			printf("container %d: ok=%d exit=%d out=%.*s\n", i,
			    v[i].ok, v[i].wait.exit_code,
			    (int)v[i].logs.out.len,
			    v[i].logs.out.buf ? v[i].logs.out.buf : "");
		life_release(&v[i]);
	}
	free(v);
	printf("good=%d\nelapsed_ms=%lld\ndials=%d\n", good,
	    (long long)((now_ns() - t0) / 1000000), dials);
	return good == n ? 0 : 1;
}

static int
cmd_attach(const char *image, const char *script)
{
	json_t *body = json_pack("{s:s, s:[s], s:b, s:b, s:b, s:b, s:b, "
	    "s:b, s:{s:s}, s:{s:s}}", "Image", image, "Cmd", "sh",
	    "Tty", 0, "AttachStdin", 1, "AttachStdout", 1, "AttachStderr", 1,
	    "OpenStdin", 1, "StdinOnce", 1, "Labels", "flotilla.test",
	    label_run, "HostConfig", "NetworkMode", "host");
	struct wres att, st, wt;
	struct docker_req *ar;
	char *id;
	int rc = 0;

	id = create(body, NULL);
	json_decref(body);
	if (id == NULL)
		return 1;
	wres_init(&att);
	wres_init(&st);
	wres_init(&wt);
	ar = docker_container_attach(dk, id, DOCKER_STREAM_STDIN, chunk_cb,
	    wcb, &att);
	/* Queued before the upgrade: must arrive after it. */
	docker_stream_write(ar, script, strlen(script));
	while (!att.attached && !att.done)
		event_base_loop(base, EVLOOP_ONCE);
	if (att.done) {
		rc = fail("attach", &att);
		goto out;
	}
	if (docker_stream_close_stdin(ar) < 0) {
		printf("error: close stdin refused\n");
		rc = 1;
		goto out;
	}
	docker_container_start(dk, id, wcb, &st);
	await(&st);
	if (st.err != 0) {
		rc = fail("start", &st);
		docker_cancel(ar);
		goto out;
	}
	await(&att);
	docker_container_wait(dk, id, "not-running", wcb, &wt);
	await(&wt);
	if (att.err != 0)
		rc = fail("attach", &att);
	print_stream("stdout", &att.out);
	print_stream("stderr", &att.errout);
	printf("exit=%d\n", wt.exit_code);
out:
	remove_quiet(id);
	free(id);
	wres_release(&att);
	wres_release(&st);
	wres_release(&wt);
	return rc;
}

/* A tar with one directory and one executable script, in memory. */
static void *
make_tar(const char *dir, const char *name, const char *content,
    size_t *lenp)
{
	size_t cap = 64 * 1024, used = 0;
	void *buf = xmalloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char *path = xasprintf("%s/%s", dir, name);

	archive_write_set_format_ustar(a);
	archive_write_open_memory(a, buf, cap, &used);
	archive_entry_set_pathname(e, dir);
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	archive_write_header(a, e);
	archive_entry_clear(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0755);
	archive_entry_set_size(e, (la_int64_t)strlen(content));
	archive_write_header(a, e);
	archive_write_data(a, content, strlen(content));
	archive_write_close(a);
	archive_write_free(a);
	archive_entry_free(e);
	free(path);
	*lenp = used;
	return buf;
}

static int
cmd_archive(const char *image)
{
	const char *script = "#!/bin/sh\necho from-archive \"$0\"\n"
	    "echo to-stderr >&2\nexit 7\n";
	json_t *body = json_pack("{s:s, s:[s], s:{s:s}, s:{s:s}}", "Image",
	    image, "Cmd", "/flotilla/run.sh", "Labels", "flotilla.test",
	    label_run, "HostConfig", "NetworkMode", "host");
	struct wres put, lg, wt;
	size_t len;
	void *tar;
	char *id;
	int rc = 0;

	id = create(body, NULL);
	json_decref(body);
	if (id == NULL)
		return 1;
	tar = make_tar("flotilla", "run.sh", script, &len);
	wres_init(&put);
	wres_init(&lg);
	wres_init(&wt);
	docker_container_put_archive(dk, id, "/", tar, len, wcb, &put);
	free(tar);
	await(&put);
	if (put.err != 0) {
		rc = fail("put archive", &put);
		goto out;
	}
	printf("archive_bytes=%zu\n", len);
	if ((rc = simple(docker_container_start, id, "start")) != 0)
		goto out;
	docker_container_wait(dk, id, NULL, wcb, &wt);
	await(&wt);
	docker_container_logs(dk, id, DOCKER_STREAM_FOLLOW, chunk_cb, wcb,
	    &lg);
	await(&lg);
	if (lg.err != 0 || wt.err != 0)
		rc = fail("logs/wait", lg.err ? &lg : &wt);
	print_stream("stdout", &lg.out);
	print_stream("stderr", &lg.errout);
	printf("exit=%d\n", wt.exit_code);
	/* A bad path is Docker's 404 with its message. */
	{
		struct wres bad;

		wres_init(&bad);
		docker_container_put_archive(dk, id, "/no/such/dir", "x", 1,
		    wcb, &bad);
		await(&bad);
		printf("badpath_err=%s\nbadpath_msg=%s\n", err_str(bad.err),
		    bad.msg);
		wres_release(&bad);
	}
out:
	remove_quiet(id);
	free(id);
	wres_release(&put);
	wres_release(&lg);
	wres_release(&wt);
	return rc;
}

static int
cmd_kill(const char *image)
{
	json_t *body = container_body(image, "sleep 300", NULL);
	struct wres k, wt, k2;
	int64_t t0;
	char *id;
	int rc = 0;

	id = create(body, NULL);
	json_decref(body);
	if (id == NULL)
		return 1;
	if (simple(docker_container_start, id, "start") != 0) {
		remove_quiet(id);
		free(id);
		return 1;
	}
	wres_init(&k);
	wres_init(&wt);
	wres_init(&k2);
	t0 = now_ns();
	docker_container_wait(dk, id, "not-running", wcb, &wt);
	docker_container_kill(dk, id, "SIGKILL", wcb, &k);
	await(&k);
	await(&wt);
	if (k.err != 0)
		rc = fail("kill", &k);
	printf("exit=%d\nkill_to_exit_ms=%lld\n", wt.exit_code,
	    (long long)((now_ns() - t0) / 1000000));
	/* Killing it again: 409 "is not running". */
	docker_container_kill(dk, id, NULL, wcb, &k2);
	await(&k2);
	printf("again_err=%s\nagain_status=%d\nagain_msg=%s\n",
	    err_str(k2.err), k2.status, k2.msg);
	remove_quiet(id);
	free(id);
	wres_release(&k);
	wres_release(&wt);
	wres_release(&k2);
	return rc;
}

static int
count_list(struct docker_req *(*fn)(struct docker *, const char *const *,
    size_t, docker_cb, void *), const char *label, const char *key)
{
	const char *labels[1] = { label };
	struct wres w;
	json_t *arr;
	int n;

	wres_init(&w);
	fn(dk, labels, 1, wcb, &w);
	await(&w);
	if (w.err != 0) {
		fail("list", &w);
		wres_release(&w);
		return -1;
	}
	arr = key ? json_object_get(w.json, key) : w.json;
	n = json_is_array(arr) ? (int)json_array_size(arr) : 0;
	wres_release(&w);
	return n;
}

static int
cmd_labels(const char *image, int n)
{
	char lbl[256], other[96];
	char **ids = xcalloc((size_t)n + 1, sizeof(*ids));
	struct wres *rm = xcalloc((size_t)n, sizeof(*rm));
	const char *labels[1] = { lbl };
	struct wres w;
	char *keep;
	int before, after, rc = 0;
	json_t *b;

	snprintf(lbl, sizeof(lbl), "flotilla.test=%s", label_run);
	snprintf(other, sizeof(other), "%s-other", label_run);
	for (int i = 0; i < n; i++) {
		b = container_body(image, "true", NULL);
		ids[i] = create(b, NULL);
		json_decref(b);
		if (ids[i] == NULL)
			return 1;
	}
	b = container_body(image, "true", other);
	keep = create(b, NULL);
	json_decref(b);
	before = count_list(docker_container_list, lbl, NULL);
	/* Remove all that the label finds, in parallel. */
	wres_init(&w);
	docker_container_list(dk, labels, 1, wcb, &w);
	await(&w);
	for (size_t i = 0; i < json_array_size(w.json) && i < (size_t)n; i++) {
		wres_init(&rm[i]);
		docker_container_remove(dk, json_string_value(json_object_get(
		    json_array_get(w.json, i), "Id")), 1, 1, wcb, &rm[i]);
	}
	for (size_t i = 0; i < json_array_size(w.json) && i < (size_t)n; i++) {
		await(&rm[i]);
		if (rm[i].err != 0)
			rc = fail("remove", &rm[i]);
		wres_release(&rm[i]);
	}
	wres_release(&w);
	after = count_list(docker_container_list, lbl, NULL);
	snprintf(lbl, sizeof(lbl), "flotilla.test=%s", other);
	printf("listed=%d\nafter_remove=%d\nother_left=%d\n", before, after,
	    count_list(docker_container_list, lbl, NULL));
	if (keep != NULL)
		remove_quiet(keep);
	free(keep);
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(rm);
	return rc || before != n || after != 0;
}

static int
cmd_volumes(int n)
{
	char lbl[128];
	int before, after, rc = 0;

	snprintf(lbl, sizeof(lbl), "flotilla.test=%s", label_run);
	for (int i = 0; i < n; i++) {
		char *name = xasprintf("flotilla-%s-%d", label_run, i);
		json_t *b = json_pack("{s:s, s:s, s:{s:s}}", "Name", name,
		    "Driver", "local", "Labels", "flotilla.test", label_run);
		struct wres w;

		wres_init(&w);
		docker_volume_create(dk, b, wcb, &w);
		await(&w);
		if (w.err != 0)
			rc = fail("volume create", &w);
		json_decref(b);
		free(name);
		wres_release(&w);
	}
	before = count_list(docker_volume_list, lbl, "Volumes");
	for (int i = 0; i < n; i++) {
		char *name = xasprintf("flotilla-%s-%d", label_run, i);
		struct wres w;

		wres_init(&w);
		docker_volume_remove(dk, name, 1, wcb, &w);
		await(&w);
		if (w.err != 0)
			rc = fail("volume remove", &w);
		free(name);
		wres_release(&w);
	}
	after = count_list(docker_volume_list, lbl, "Volumes");
	printf("listed=%d\nafter_remove=%d\n", before, after);
	return rc || before != n || after != 0;
}

/* Create a labelled bridge network; returns its id or NULL. */
static char *
net_create(const char *name)
{
	json_t *b = json_pack("{s:s, s:s, s:b, s:{s:s}}", "Name", name,
	    "Driver", "bridge", "CheckDuplicate", 1, "Labels",
	    "flotilla.test", label_run);
	struct wres w;
	char *id = NULL;

	wres_init(&w);
	docker_network_create(dk, b, wcb, &w);
	json_decref(b);
	await(&w);
	if (w.err != 0 || w.id == NULL)
		fail("network create", &w);
	else
		id = xstrdup(w.id);
	wres_release(&w);
	return id;
}

/*
 * Two bridge networks (the engine runs with --bridge=none: user-defined
 * bridges still work); a container on the first runs, is connected to the
 * second and disconnected again; everything removed by label.
 */
static int
cmd_networks(const char *image)
{
	char lbl[128], *na = xasprintf("flotilla-%s-a", label_run);
	char *nb = xasprintf("flotilla-%s-b", label_run);
	char *ida = net_create(na), *idb = net_create(nb), *cid = NULL;
	struct wres c, dc, w, wt;
	int before, after, rc = 0, connected = -1, disconnected = -1;
	json_t *b;

	snprintf(lbl, sizeof(lbl), "flotilla.test=%s", label_run);
	wres_init(&c);
	wres_init(&dc);
	wres_init(&wt);
	if (ida == NULL || idb == NULL) {
		rc = 1;
		goto out;
	}
	before = count_list(docker_network_list, lbl, NULL);
	b = container_body(image, "ip -o addr | grep -c inet", NULL);
	json_object_set_new(json_object_get(b, "HostConfig"), "NetworkMode",
	    json_string(na));
	cid = create(b, NULL);
	json_decref(b);
	if (cid == NULL) {
		rc = 1;
		goto out;
	}
	if (simple(docker_container_start, cid, "start") != 0) {
		rc = 1;
		goto out;
	}
	docker_container_wait(dk, cid, NULL, wcb, &wt);
	await(&wt);
	printf("run_exit=%d\n", wt.exit_code);
	docker_network_connect(dk, idb, cid, wcb, &c);
	await(&c);
	if (c.err != 0)
		rc = fail("connect", &c);
	wres_init(&w);
	docker_container_inspect(dk, cid, wcb, &w);
	await(&w);
	connected = json_object_get(json_object_get(json_object_get(w.json,
	    "NetworkSettings"), "Networks"), nb) != NULL;
	wres_release(&w);
	docker_network_disconnect(dk, idb, cid, 1, wcb, &dc);
	await(&dc);
	if (dc.err != 0)
		rc = fail("disconnect", &dc);
	wres_init(&w);
	docker_container_inspect(dk, cid, wcb, &w);
	await(&w);
	disconnected = json_object_get(json_object_get(json_object_get(w.json,
	    "NetworkSettings"), "Networks"), nb) == NULL;
	wres_release(&w);
	printf("listed=%d\nconnected=%d\ndisconnected=%d\n", before,
	    connected, disconnected);
	if (before != 2 || connected != 1 || disconnected != 1 ||
	    wt.exit_code != 0)
		rc = 1;
out:
	if (cid != NULL)
		remove_quiet(cid);
	/* Remove every network the label finds. */
	wres_init(&w);
	{
		const char *labels[1] = { lbl };

		docker_network_list(dk, labels, 1, wcb, &w);
	}
	await(&w);
	for (size_t i = 0; i < json_array_size(w.json); i++) {
		struct wres rm;

		wres_init(&rm);
		docker_network_remove(dk, json_string_value(json_object_get(
		    json_array_get(w.json, i), "Id")), wcb, &rm);
		await(&rm);
		if (rm.err != 0)
			rc = fail("network remove", &rm);
		wres_release(&rm);
	}
	wres_release(&w);
	after = count_list(docker_network_list, lbl, NULL);
	printf("after_remove=%d\n", after);
	free(cid);
	free(ida);
	free(idb);
	free(na);
	free(nb);
	wres_release(&c);
	wres_release(&dc);
	wres_release(&wt);
	return rc || after != 0;
}

static int
cmd_load(const char *path)
{
	struct wres w;
	int rc = 0;

	wres_init(&w);
	docker_image_load(dk, path, progress_cb, wcb, &w);
	await(&w);
	if (w.err != 0)
		rc = fail("load", &w);
	printf("progress=%d\n", w.progress);
	wres_release(&w);
	return rc;
}

/* Cancel a following logs request mid-stream, then free the client with
 * requests in flight (a wait, an inspect, a pull). */
static int
cmd_cancel(const char *image)
{
	json_t *body = container_body(image,
	    "while :; do echo tick; sleep 0.05; done", NULL);
	struct wres lg, wt, in, pl;
	struct docker_req *r;
	char *id;

	id = create(body, NULL);
	json_decref(body);
	if (id == NULL || simple(docker_container_start, id, "start"))
		return 1;
	wres_init(&lg);
	r = docker_container_logs(dk, id, DOCKER_STREAM_FOLLOW, chunk_cb, wcb,
	    &lg);
	while (lg.out.len < 15 && !lg.done)
		event_base_loop(base, EVLOOP_ONCE);
	docker_cancel(r);
	printf("got_before_cancel=%d\ncallback_after_cancel=%d\n",
	    lg.out.len >= 15, lg.done);
	/* The connection was dropped, not reused mid-stream: a new request
	 * still works. */
	remove_quiet(id);
	free(id);
	wres_init(&wt);
	wres_init(&in);
	wres_init(&pl);
	docker_container_wait(dk, "nonexistent-flotilla", NULL, wcb, &wt);
	docker_image_inspect(dk, image, wcb, &in);
	docker_image_pull(dk, "127.0.0.1:9/x:1", NULL, NULL, wcb, &pl);
	event_base_loop(base, EVLOOP_ONCE);
	docker_free(dk);
	dk = NULL;
	/* Nothing may call back now. */
	{
		struct timeval tv = { 0, 300000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	printf("callbacks_after_free=%d\n", wt.done + in.done + pl.done);
	wres_release(&lg);
	wres_release(&wt);
	wres_release(&in);
	wres_release(&pl);
	return 0;
}

/* --- fake engines -------------------------------------------------------- */

static int fake_mode;		/* 0 eof: close at once; 1 timeout: silent */
static struct bufferevent *silent[16];
static int nsilent;

static void
fake_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev), (size_t)-1);
	if (fake_mode == 0)
		bufferevent_free(bev);	/* the request read, then EOF */
}

static void
fake_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct bufferevent *bev;

	(void)l;
	(void)sa;
	(void)socklen;
	(void)arg;
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, fake_read, NULL, NULL, NULL);
	bufferevent_enable(bev, EV_READ);
	if (fake_mode == 1 && nsilent < 16)
		silent[nsilent++] = bev;
}

static int
cmd_fake(const char *dir, int mode)
{
	char *path = xasprintf("%s/fake.sock", dir);
	struct sockaddr_un sun;
	struct evconnlistener *l;
	struct wres w, v;
	struct docker_req *r;
	int64_t t0;

	fake_mode = mode;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	l = evconnlistener_new_bind(base, fake_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, (struct sockaddr *)&sun, sizeof(sun));
	if (l == NULL) {
		printf("error: listen %s: %s\n", path, strerror(errno));
		return 1;
	}
	docker_free(dk);
	dk = docker_new(base, docker_dial_unix, path);
	wres_init(&w);
	wres_init(&v);
	t0 = now_ns();
	if (mode == 1) {
		docker_set_timeout(dk, 300);
		r = docker_ping(dk, wcb, &w);
		(void)r;
		/* A versioned request waits on negotiation, which times out. */
		docker_image_inspect(dk, "x", wcb, &v);
	} else {
		docker_ping(dk, wcb, &w);
		docker_image_inspect(dk, "x", wcb, &v);
	}
	await(&w);
	await(&v);
	printf("err=%s\nmsg=%s\nelapsed_ms=%lld\nversioned_err=%s\n"
	    "versioned_msg=%s\n", err_str(w.err), w.msg,
	    (long long)((now_ns() - t0) / 1000000), err_str(v.err), v.msg);
	wres_release(&w);
	wres_release(&v);
	for (int i = 0; i < nsilent; i++)
		bufferevent_free(silent[i]);
	evconnlistener_free(l);
	unlink(path);
	free(path);
	return 0;
}

/* --- benchmarks ---------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
report(const char *what, int64_t *v, int n)
{
	int64_t sum = 0;

	qsort(v, (size_t)n, sizeof(*v), cmp_i64);
	for (int i = 0; i < n; i++)
		sum += v[i];
	printf("%s n=%d median_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f\n",
	    what, n, v[n / 2] / 1000.0, v[n * 9 / 10] / 1000.0,
	    v[n * 99 / 100] / 1000.0, (double)sum / n / 1000.0);
}

static int
cmd_bench_ping(int n)
{
	int64_t *v = xcalloc((size_t)n, sizeof(*v));

	for (int i = -20; i < n; i++) {	/* 20 warm-up rounds */
		struct wres w;
		int64_t t0 = now_ns();

		wres_init(&w);
		docker_ping(dk, wcb, &w);
		await(&w);
		if (w.err != 0)
			return fail("ping", &w);
		if (i >= 0)
			v[i] = now_ns() - t0;
		wres_release(&w);
	}
	report("client", v, n);
	printf("dials=%d\n", dials);
	free(v);
	return 0;
}

/* Blocking write/read of GET /_ping on one keep-alive connection. */
static int
cmd_bench_raw(int n)
{
	static const char req[] = "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
	int64_t *v = xcalloc((size_t)n, sizeof(*v));
	struct sockaddr_un sun;
	char buf[4096];
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		printf("error: connect: %s\n", strerror(errno));
		return 1;
	}
	for (int i = -20; i < n; i++) {
		int64_t t0 = now_ns();
		size_t have = 0;
		char *eoh = NULL;
		long clen = -1;

		if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
			return 1;
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);

			if (r <= 0)
				return 1;
			have += (size_t)r;
			buf[have] = '\0';
			if (eoh == NULL && (eoh = strstr(buf, "\r\n\r\n"))) {
				char *cl = strcasestr(buf, "Content-Length:");

				clen = cl ? strtol(cl + 15, NULL, 10) : 0;
			}
			if (eoh != NULL && (long)have >= (eoh + 4 - buf) + clen)
				break;
		}
		if (i >= 0)
			v[i] = now_ns() - t0;
	}
	close(fd);
	report("raw", v, n);
	free(v);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cmd;
	int rc = 2;

	if (argc < 3) {
		fprintf(stderr, "usage: docker_probe SOCKET COMMAND [ARGS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);	/* as any daemon using docker.c must */
	sockpath = argv[1];
	cmd = argv[2];
	snprintf(label_run, sizeof(label_run), "probe-%d", (int)getpid());
	base = event_base_new();
	dk = docker_new(base, counting_dial, (void *)sockpath);

	if (strcmp(cmd, "ping") == 0)
		rc = cmd_ping();
	else if (strcmp(cmd, "pinned") == 0 && argc == 5)
		rc = cmd_pinned(argv[3], argv[4]);
	else if (strcmp(cmd, "inspect-image") == 0 && argc == 4)
		rc = cmd_inspect_image(argv[3]);
	else if (strcmp(cmd, "get-image") == 0 && argc == 7)
		rc = cmd_get_image(argv[3], argv[4], argv[5], argv[6]);
	else if (strcmp(cmd, "pull") == 0 && (argc == 4 || argc == 5))
		rc = cmd_pull(argv[3], argc == 5 ? argv[4] : NULL);
	else if (strcmp(cmd, "run") == 0 && argc == 5)
		rc = cmd_run(argv[3], argv[4]);
	else if (strcmp(cmd, "attach") == 0 && argc == 5)
		rc = cmd_attach(argv[3], argv[4]);
	else if (strcmp(cmd, "parallel") == 0 && argc == 5)
		rc = cmd_parallel(atoi(argv[3]), argv[4]);
	else if (strcmp(cmd, "archive") == 0 && argc == 4)
		rc = cmd_archive(argv[3]);
	else if (strcmp(cmd, "kill") == 0 && argc == 4)
		rc = cmd_kill(argv[3]);
	else if (strcmp(cmd, "labels") == 0 && argc == 5)
		rc = cmd_labels(argv[3], atoi(argv[4]));
	else if (strcmp(cmd, "volumes") == 0 && argc == 4)
		rc = cmd_volumes(atoi(argv[3]));
	else if (strcmp(cmd, "networks") == 0 && argc == 4)
		rc = cmd_networks(argv[3]);
	else if (strcmp(cmd, "load") == 0 && argc == 4)
		rc = cmd_load(argv[3]);
	else if (strcmp(cmd, "cancel") == 0 && argc == 4)
		rc = cmd_cancel(argv[3]);
	else if (strcmp(cmd, "eof") == 0)
		rc = cmd_fake(argv[1], 0);
	else if (strcmp(cmd, "timeout") == 0)
		rc = cmd_fake(argv[1], 1);
	else if (strcmp(cmd, "bench-ping") == 0 && argc == 4)
		rc = cmd_bench_ping(atoi(argv[3]));
	else if (strcmp(cmd, "bench-raw") == 0 && argc == 4)
		rc = cmd_bench_raw(atoi(argv[3]));
	else
		fprintf(stderr, "docker_probe: unknown command %s\n", cmd);

	docker_free(dk);
	event_base_free(base);
	return rc;
}
