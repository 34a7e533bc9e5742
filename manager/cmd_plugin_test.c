/*
 * flotilla plugin-test: a conformance run of one fleeting plugin, the way
 * the manager will use it, on a real instance: handshake, Init, Update,
 * Increase(1), wait until the new instance runs, ConnectInfo and a real
 * SSH login with what it returned (the system's ssh client running
 * `true`), Heartbeat, Decrease, wait until it is gone, Shutdown.  One line
 * per step on stdout:
 *
 *   PASS step (1.23s)[: note]
 *   FAIL step (1.23s): reason
 *   SKIP step: reason
 *
 * Exit 0 only if no step failed.  After a failure the instance it created
 * (if any) is still deleted and the plugin still shut down.  --timeout
 * bounds the run up to the heartbeat; deleting the instance and stopping
 * the plugin get up to a minute each more, so nothing is left behind.  Plugin logs
 * go to stderr (at warn and above unless --log-level says otherwise).
 *
 * The run is sequential code that turns the event loop until each
 * callback has come: the plugin host underneath is the daemon's own,
 * event-driven one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "child.h"
#include "cli.h"
#include "duration.h"
#include "err.h"
#include "log.h"
#include "plugin_host.h"
#include "rpc.h"
#include "spawn.h"
#include "xmalloc.h"

#define POLL_MS		1000	/* Update polls while waiting */
#define SSH_TRY_MS	60000	/* keep trying ssh this long at most */
#define SSH_ONE_MS	30000	/* one ssh attempt at most */
#define STOP_EXTRA_MS	60000	/* the final stop, past --timeout */
#define CLEANUP_MS	60000	/* Decrease and its wait, past --timeout */

struct pt {
	struct event_base *base;
	struct plugin_host *h;
	int64_t deadline;	/* monotonic ns: the end of --timeout */
	int failed;		/* some step failed */

	/* start-up */
	int ready, start_failed;
	int start_done;		/* ready or failed */
	char start_err[1024];
	int64_t phase_ns[4];
	char phase_err[4][1024];
	int phase_seen[4];

	/* the call in flight */
	int done;
	struct plugin_status st;
	int64_t succeeded;
	struct plugin_instances inst;	/* a copy */
	struct plugin_connect_info *ci;
	int dec_ok;
	const char *target;	/* the instance being tested */

	/* stop */
	struct plugin_stop_result stop;

	/* ssh */
	int ssh_done;
	int ssh_status;
};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Turn the loop until *flag or the monotonic time end; 0 or -1. */
static int
loop_until(struct pt *p, const int *flag, int64_t end)
{
	while (!*flag) {
		int64_t left = end - mono_ns();
		struct timeval tv;

		if (left <= 0)
			return -1;
		if (left > 200000000)
			left = 200000000;
		tv.tv_sec = 0;
		tv.tv_usec = (long)(left / 1000);
		event_base_loopexit(p->base, &tv);
		event_base_loop(p->base, EVLOOP_ONCE);
	}
	return 0;
}

static void
sleep_loop(struct pt *p, int ms)
{
	int never = 0;

	(void)loop_until(p, &never, mono_ns() + (int64_t)ms * 1000000);
}

static void
pass(const char *step, int64_t t0, const char *note)
{
	printf("PASS %s (%.2fs)%s%s\n", step, (mono_ns() - t0) / 1e9,
	    note != NULL && note[0] != '\0' ? ": " : "",
	    note != NULL ? note : "");
	fflush(stdout);
}

static void
fail(struct pt *p, const char *step, int64_t t0, const char *reason)
{
	printf("FAIL %s (%.2fs): %s\n", step, (mono_ns() - t0) / 1e9, reason);
	fflush(stdout);
	p->failed = 1;
}

static void
skip(const char *step, const char *reason)
{
	printf("SKIP %s: %s\n", step, reason);
	fflush(stdout);
}

/* ----------------------------------------------------------- callbacks */

static void
copy_instances(struct pt *p, const struct plugin_instances *in)
{
	for (size_t i = 0; i < p->inst.n; i++) {
		free(p->inst.v[i].id);
		free(p->inst.v[i].cause);
	}
	free(p->inst.v);
	p->inst.v = NULL;
	p->inst.n = 0;
	if (in == NULL)
		return;
	p->inst.v = xcalloc(in->n + 1, sizeof(*p->inst.v));
	for (size_t i = 0; i < in->n; i++) {
		p->inst.v[i].id = xstrdup(in->v[i].id);
		p->inst.v[i].state = in->v[i].state;
		p->inst.v[i].cause = xstrdup(in->v[i].cause);
	}
	p->inst.n = in->n;
}

static void
on_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	struct pt *p = arg;

	(void)h;
	(void)info;
	(void)ust;
	(void)inst;
	p->ready = 1;
	p->start_done = 1;
}

static void
on_failed(void *arg, struct plugin_host *h, const char *reason)
{
	struct pt *p = arg;

	(void)h;
	snprintf(p->start_err, sizeof(p->start_err), "%s", reason);
	p->start_failed = 1;
	p->start_done = 1;
}

static void
on_phase(void *arg, struct plugin_host *h, enum plugin_phase ph,
    int64_t elapsed, const char *error)
{
	struct pt *p = arg;

	(void)h;
	p->phase_seen[ph] = 1;
	p->phase_ns[ph] = elapsed;
	snprintf(p->phase_err[ph], sizeof(p->phase_err[ph]), "%s",
	    error != NULL ? error : "");
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	struct pt *p = arg;

	p->st = *st;
	copy_instances(p, inst);
	p->done = 1;
}

static void
on_increase(void *arg, const struct plugin_status *st, int64_t n,
    const char *perr)
{
	struct pt *p = arg;

	p->st = *st;
	p->succeeded = n;
	if (st->rc == 0 && perr != NULL && perr[0] != '\0')
		snprintf(p->st.msg, sizeof(p->st.msg), "%s", perr);
	p->done = 1;
}

static void
on_decrease(void *arg, const struct plugin_status *st, char *const *ids,
    size_t n, const char *perr)
{
	struct pt *p = arg;

	p->st = *st;
	p->succeeded = (int64_t)n;
	p->dec_ok = 0;
	for (size_t i = 0; i < n; i++) {
		if (p->target != NULL && strcmp(ids[i], p->target) == 0)
			p->dec_ok = 1;
	}
	if (st->rc == 0 && perr != NULL && perr[0] != '\0')
		snprintf(p->st.msg, sizeof(p->st.msg), "%s", perr);
	p->done = 1;
}

static void
on_connect_info(void *arg, const struct plugin_status *st,
    const struct plugin_connect_info *ci)
{
	struct pt *p = arg;

	p->st = *st;
	plugin_connect_info_free(p->ci);
	p->ci = plugin_connect_info_dup(ci);
	p->done = 1;
}

static void
on_done(void *arg, const struct plugin_status *st)
{
	struct pt *p = arg;

	p->st = *st;
	p->done = 1;
}

static void
on_stop(void *arg, struct plugin_host *h, const struct plugin_stop_result *r)
{
	struct pt *p = arg;

	(void)h;
	p->stop = *r;
	p->done = 1;
}

static void
on_ssh_exit(void *arg, pid_t pid, int status)
{
	struct pt *p = arg;

	(void)pid;
	p->ssh_status = status;
	p->ssh_done = 1;
}

static void
grpc_log(int level, const char *msg)
{
	(void)level;	/* gRPC's own errors are expected here (refused
			   connections while a plugin dies): debug */
	log_emit(LOG_DEBUG, NULL, NULL, 0, "grpc: %s", msg);
}

/* ----------------------------------------------------------- steps */

/* Issue one call (rc from the wrapper) and wait for its callback. */
static int
wait_call(struct pt *p, int rc)
{
	if (rc != 0) {
		snprintf(p->st.msg, sizeof(p->st.msg), "cannot call: %s",
		    err_str(rc));
		p->st.rc = rc;
		return -1;
	}
	/* Every call has its own deadline: its callback always comes. */
	if (loop_until(p, &p->done, mono_ns() + 120 * (int64_t)1000000000)
	    != 0) {
		snprintf(p->st.msg, sizeof(p->st.msg), "no answer");
		p->st.rc = FL_ERR_TIMEOUT;
		return -1;
	}
	return p->st.rc == 0 ? 0 : -1;
}

static int
do_update(struct pt *p)
{
	p->done = 0;
	return wait_call(p, plugin_host_update(p->h, on_update, p));
}

static const struct plugin_instance *
find_inst(const struct pt *p, const char *id)
{
	for (size_t i = 0; i < p->inst.n; i++) {
		if (strcmp(p->inst.v[i].id, id) == 0)
			return &p->inst.v[i];
	}
	return NULL;
}

/* Split "host", "host:port", "[v6]:port" into host and port. */
static void
split_addr(const char *addr, int dflt_port, char *host, size_t hostlen,
    int *port)
{
	const char *colon;

	*port = dflt_port;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (rb != NULL) {
			snprintf(host, hostlen, "%.*s", (int)(rb - addr - 1),
			    addr + 1);
			if (rb[1] == ':')
				*port = atoi(rb + 2);
			return;
		}
	}
	colon = strchr(addr, ':');
	if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
		*port = atoi(colon + 1);
	} else {
		snprintf(host, hostlen, "%s", addr);	/* IPv6 literal */
	}
}

/* The ssh client: on PATH, else /usr/bin/ssh. */
static char *
find_ssh(void)
{
	const char *path = getenv("PATH"), *s, *e;
	char *cand;

	for (s = path; s != NULL && *s != '\0'; s = *e ? e + 1 : e) {
		e = strchr(s, ':');
		if (e == NULL)
			e = s + strlen(s);
		if (e == s)
			continue;
		cand = xasprintf("%.*s/ssh", (int)(e - s), s);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return xstrdup("/usr/bin/ssh");
}

/* Read what is left in a non-blocking pipe (small) and close it. */
static void
drain_close(int fd, struct sbuf *sb)
{
	char buf[4096];
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (sb != NULL && sb->len < 8192)
			sbuf_add(sb, buf, (size_t)n);
	}
	close(fd);
}

/*
 * One ssh login: `true` as user@host:port with the key in keyfile.
 * 0, or -1 with the reason in why.
 */
static int
ssh_once(struct pt *p, const char *ssh, const char *keyfile,
    const char *user, const char *host, int port, char *why, size_t whylen)
{
	char portbuf[16], *argv[24];
	struct spawn_opts so;
	struct spawn_child sc;
	struct sbuf err;
	int n = 0, rc;

	snprintf(portbuf, sizeof(portbuf), "%d", port);
	argv[n++] = "ssh";
	argv[n++] = "-F";
	argv[n++] = "/dev/null";
	argv[n++] = "-i";
	argv[n++] = (char *)keyfile;
	argv[n++] = "-o";
	argv[n++] = "IdentitiesOnly=yes";
	argv[n++] = "-o";
	argv[n++] = "StrictHostKeyChecking=no";
	argv[n++] = "-o";
	argv[n++] = "UserKnownHostsFile=/dev/null";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = "-o";
	argv[n++] = "ConnectTimeout=10";
	argv[n++] = "-o";
	argv[n++] = "LogLevel=ERROR";
	argv[n++] = "-p";
	argv[n++] = portbuf;
	argv[n++] = "-l";
	argv[n++] = (char *)user;
	argv[n++] = (char *)host;
	argv[n++] = "true";
	argv[n] = NULL;
	memset(&so, 0, sizeof(so));
	so.path = ssh;
	so.argv = argv;
	so.new_pgrp = 1;
	so.pdeathsig = SIGKILL;
	if ((rc = spawn_start(&so, &sc, why, whylen)) != 0)
		return -1;
	p->ssh_done = 0;
	if (child_watch(sc.pid, on_ssh_exit, p) != 0) {
		kill(sc.pid, SIGKILL);
		waitpid(sc.pid, NULL, 0);
		drain_close(sc.out_fd, NULL);
		drain_close(sc.err_fd, NULL);
		snprintf(why, whylen, "cannot watch ssh");
		return -1;
	}
	if (loop_until(p, &p->ssh_done, mono_ns() +
	    (int64_t)SSH_ONE_MS * 1000000) != 0) {
		kill(-sc.pid, SIGKILL);
		(void)loop_until(p, &p->ssh_done, mono_ns() +
		    5 * (int64_t)1000000000);
		drain_close(sc.out_fd, NULL);
		drain_close(sc.err_fd, NULL);
		snprintf(why, whylen, "ssh did not finish within %ds",
		    SSH_ONE_MS / 1000);
		return -1;
	}
	sbuf_init(&err);
	drain_close(sc.out_fd, NULL);
	drain_close(sc.err_fd, &err);
	if (WIFEXITED(p->ssh_status) && WEXITSTATUS(p->ssh_status) == 0) {
		sbuf_release(&err);
		return 0;
	}
	while (err.len > 0 && (err.buf[err.len - 1] == '\n' ||
	    err.buf[err.len - 1] == '\r'))
		err.buf[--err.len] = '\0';
	for (size_t i = 0; i < err.len; i++) {
		if (err.buf[i] == '\n' || err.buf[i] == '\r')
			err.buf[i] = ' ';
	}
	{
		char st[32];

		snprintf(why, whylen, "ssh %s@%s -p %d: %s%s%s", user, host,
		    port, child_status_str(p->ssh_status, st, sizeof(st)),
		    err.len ? ": " : "", err.len ? err.buf : "");
	}
	sbuf_release(&err);
	return -1;
}

/* The ssh step: a key file, then tries until one works or time is up. */
static void
step_ssh(struct pt *p, int prefer_external)
{
	const struct plugin_connect_info *ci = p->ci;
	char tmpl[256], host[256], why[2048], note[512];
	const char *addr, *tmp = getenv("TMPDIR"), *user;
	int64_t t0 = mono_ns(), end;
	int fd, port, tries = 0;
	char *ssh;

	if (ci->protocol[0] != '\0' && strcmp(ci->protocol, "ssh") != 0) {
		skip("ssh", "the instance speaks another protocol");
		return;
	}
	addr = prefer_external ?
	    (ci->external_addr[0] ? ci->external_addr : ci->internal_addr) :
	    (ci->internal_addr[0] ? ci->internal_addr : ci->external_addr);
	if (addr[0] == '\0') {
		fail(p, "ssh", t0, "ConnectInfo returned no address");
		return;
	}
	if (ci->key_len == 0) {
		fail(p, "ssh", t0, "ConnectInfo returned no key (password "
		    "logins are not tried)");
		return;
	}
	user = ci->username[0] != '\0' ? ci->username : "root";
	split_addr(addr, ci->port > 0 ? ci->port : 22, host, sizeof(host),
	    &port);
	snprintf(tmpl, sizeof(tmpl), "%s/flotilla-plugin-test-key.XXXXXX",
	    tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
	fd = mkstemp(tmpl);
	if (fd < 0) {
		snprintf(why, sizeof(why), "cannot write a key file: %s",
		    strerror(errno));
		fail(p, "ssh", t0, why);
		return;
	}
	(void)fchmod(fd, 0600);
	if (write(fd, ci->key, ci->key_len) != (ssize_t)ci->key_len) {
		close(fd);
		unlink(tmpl);
		fail(p, "ssh", t0, "cannot write the key file");
		return;
	}
	/* OpenSSH wants a newline after the PEM footer. */
	if (ci->key[ci->key_len - 1] != '\n' && write(fd, "\n", 1) != 1) {
		close(fd);
		unlink(tmpl);
		fail(p, "ssh", t0, "cannot write the key file");
		return;
	}
	close(fd);
	ssh = find_ssh();
	end = mono_ns() + (int64_t)SSH_TRY_MS * 1000000;
	if (end > p->deadline)
		end = p->deadline;
	for (;;) {
		tries++;
		if (ssh_once(p, ssh, tmpl, user, host, port, why,
		    sizeof(why)) == 0) {
			snprintf(note, sizeof(note), "ran `true` as %s@%s "
			    "port %d%s", user, host, port, tries > 1 ?
			    " (after retries)" : "");
			pass("ssh", t0, note);
			break;
		}
		if (mono_ns() + 2 * (int64_t)1000000000 >= end) {
			fail(p, "ssh", t0, why);
			break;
		}
		sleep_loop(p, 2000);	/* sshd may still be starting */
	}
	free(ssh);
	unlink(tmpl);
}

/* Poll Update until pred says done or the deadline; 0 or -1 (why). */
static int
poll_until(struct pt *p, const char *id, int want_gone, char *why,
    size_t whylen)
{
	const struct plugin_instance *in;

	for (;;) {
		if (do_update(p) != 0) {
			snprintf(why, whylen, "%s", p->st.msg);
			return -1;
		}
		in = find_inst(p, id);
		if (want_gone && (in == NULL || in->state == PLUGIN_I_DELETED))
			return 0;
		if (!want_gone && in != NULL) {
			if (in->state == PLUGIN_I_RUNNING)
				return 0;
			if (in->state == PLUGIN_I_TIMEOUT) {
				snprintf(why, whylen, "instance %s failed "
				    "(timeout): %s", id, in->cause);
				return -1;
			}
			if (in->state == PLUGIN_I_DELETING ||
			    in->state == PLUGIN_I_DELETED) {
				snprintf(why, whylen, "instance %s is %s",
				    id, plugin_istate_name(in->state));
				return -1;
			}
		}
		if (mono_ns() + (int64_t)POLL_MS * 1000000 >= p->deadline) {
			snprintf(why, whylen, "instance %s still %s when the "
			    "time ran out", id, in != NULL ?
			    plugin_istate_name(in->state) : "not listed");
			return -1;
		}
		sleep_loop(p, POLL_MS);
	}
}

/* The steps after a good start; returns when done (shutdown separate). */
static void
run_steps(struct pt *p, int prefer_external)
{
	char why[2048], note[256], *new_id = NULL, **before = NULL;
	size_t nbefore = 0;
	int64_t t0;

	/* update */
	t0 = mono_ns();
	if (do_update(p) != 0) {
		fail(p, "update", t0, p->st.msg);
		return;
	}
	snprintf(note, sizeof(note), "%zu instance%s", p->inst.n,
	    p->inst.n == 1 ? "" : "s");
	pass("update", t0, note);
	before = xcalloc(p->inst.n + 1, sizeof(*before));
	for (size_t i = 0; i < p->inst.n; i++)
		before[nbefore++] = xstrdup(p->inst.v[i].id);

	/* increase */
	t0 = mono_ns();
	p->done = 0;
	if (wait_call(p, plugin_host_increase(p->h, 1, on_increase, p)) != 0) {
		fail(p, "increase", t0, p->st.msg);
		goto out;
	}
	if (p->succeeded != 1) {
		snprintf(why, sizeof(why), "succeeded %lld of 1%s%s",
		    (long long)p->succeeded, p->st.msg[0] ? ": " : "",
		    p->st.msg);
		fail(p, "increase", t0, why);
		goto out;
	}
	pass("increase", t0, NULL);

	/* find the new instance, wait for it to run */
	t0 = mono_ns();
	for (;;) {
		if (do_update(p) != 0) {
			fail(p, "wait-running", t0, p->st.msg);
			goto out;
		}
		for (size_t i = 0; i < p->inst.n && new_id == NULL; i++) {
			size_t j;

			for (j = 0; j < nbefore; j++) {
				if (strcmp(before[j], p->inst.v[i].id) == 0)
					break;
			}
			if (j == nbefore)
				new_id = xstrdup(p->inst.v[i].id);
		}
		if (new_id != NULL)
			break;
		if (mono_ns() + (int64_t)POLL_MS * 1000000 >= p->deadline) {
			fail(p, "wait-running", t0, "no new instance listed "
			    "by Update after Increase(1)");
			goto out;
		}
		sleep_loop(p, POLL_MS);
	}
	if (poll_until(p, new_id, 0, why, sizeof(why)) != 0) {
		fail(p, "wait-running", t0, why);
		goto cleanup;
	}
	snprintf(note, sizeof(note), "instance %s", new_id);
	pass("wait-running", t0, note);

	/* connect-info */
	t0 = mono_ns();
	p->done = 0;
	if (wait_call(p, plugin_host_connect_info(p->h, new_id,
	    on_connect_info, p)) != 0 || p->ci == NULL) {
		fail(p, "connect-info", t0, p->st.msg);
		skip("ssh", "no connection details");
	} else {
		snprintf(note, sizeof(note), "%s %s@%s (internal %s)",
		    p->ci->protocol[0] ? p->ci->protocol : "ssh",
		    p->ci->username, p->ci->external_addr[0] ?
		    p->ci->external_addr : "-", p->ci->internal_addr[0] ?
		    p->ci->internal_addr : "-");
		if (strcmp(p->ci->id, new_id) != 0) {
			snprintf(why, sizeof(why), "answered for id \"%s\", "
			    "asked for \"%s\"", p->ci->id, new_id);
			fail(p, "connect-info", t0, why);
		} else {
			pass("connect-info", t0, note);
		}
		step_ssh(p, prefer_external);
	}

	/* heartbeat */
	t0 = mono_ns();
	p->done = 0;
	if (wait_call(p, plugin_host_heartbeat(p->h, new_id, on_done, p))
	    == 0)
		pass("heartbeat", t0, NULL);
	else if (p->st.code == RPC_UNIMPLEMENTED)
		pass("heartbeat", t0, "not implemented");
	else
		fail(p, "heartbeat", t0, p->st.msg);

cleanup:
	/* Deleting what we made gets its own minute, past --timeout. */
	if (p->deadline - mono_ns() < (int64_t)CLEANUP_MS * 1000000)
		p->deadline = mono_ns() + (int64_t)CLEANUP_MS * 1000000;
	/* decrease */
	t0 = mono_ns();
	p->done = 0;
	p->target = new_id;
	{
		const char *ids[1] = { new_id };

		if (wait_call(p, plugin_host_decrease(p->h, ids, 1,
		    on_decrease, p)) != 0) {
			fail(p, "decrease", t0, p->st.msg);
			goto out;
		}
	}
	if (!p->dec_ok) {
		snprintf(why, sizeof(why), "%s not among the succeeded ids%s%s",
		    new_id, p->st.msg[0] ? ": " : "", p->st.msg);
		fail(p, "decrease", t0, why);
		goto out;
	}
	pass("decrease", t0, NULL);

	/* wait-deleted */
	t0 = mono_ns();
	if (poll_until(p, new_id, 1, why, sizeof(why)) != 0)
		fail(p, "wait-deleted", t0, why);
	else
		pass("wait-deleted", t0, NULL);
out:
	p->target = NULL;
	for (size_t i = 0; i < nbefore; i++)
		free(before[i]);
	free(before);
	free(new_id);
}

static void
step_start(struct pt *p)
{
	static const char *const names[] = {
		"handshake", "handshake", "init", NULL
	};
	int64_t t0 = mono_ns();
	char err[1024];

	if (plugin_host_start(p->h, err, sizeof(err)) != 0) {
		fail(p, "handshake", t0, err);
		p->start_failed = 1;
		return;
	}
	/* A second more than the handshake's own deadline, which reports
	 * itself better. */
	if (loop_until(p, &p->start_done, p->deadline + 1000000000) != 0 &&
	    !p->start_failed) {
		snprintf(p->start_err, sizeof(p->start_err), "not ready when "
		    "the time ran out");
		p->start_failed = 1;
	}
	/* handshake = the line + the health check; then Init. */
	for (int ph = PLUGIN_PHASE_HANDSHAKE; ph <= PLUGIN_PHASE_INIT; ph++) {
		const char *name = names[ph];
		int64_t el = p->phase_ns[ph];

		if (ph == PLUGIN_PHASE_HEALTH)
			continue;
		if (ph == PLUGIN_PHASE_HANDSHAKE) {
			el += p->phase_ns[PLUGIN_PHASE_HEALTH];
			if (p->phase_err[PLUGIN_PHASE_HEALTH][0] != '\0') {
				fail(p, name, mono_ns() - el,
				    p->phase_err[PLUGIN_PHASE_HEALTH]);
				return;
			}
		}
		if (p->phase_err[ph][0] != '\0') {
			fail(p, name, mono_ns() - el, p->phase_err[ph]);
			return;
		}
		if (!p->phase_seen[ph]) {
			fail(p, name, t0, p->start_failed ? p->start_err :
			    "did not happen");
			return;
		}
		pass(name, mono_ns() - el, NULL);
	}
	if (p->start_failed)
		fail(p, "init", t0, p->start_err);
}

static void
step_shutdown(struct pt *p)
{
	int64_t t0 = mono_ns();
	char why[1200], st[32];

	p->done = 0;
	if (plugin_host_stop(p->h, on_stop, p) != 0 ||
	    loop_until(p, &p->done, mono_ns() +
	    (int64_t)STOP_EXTRA_MS * 1000000) != 0) {
		fail(p, "shutdown", t0, "the plugin did not stop");
		return;
	}
	if (p->stop.shutdown.rc != 0) {
		fail(p, "shutdown", t0, p->stop.shutdown.msg);
		return;
	}
	if (p->stop.how == PLUGIN_EXIT_TERM || p->stop.how == PLUGIN_EXIT_KILL) {
		snprintf(why, sizeof(why), "the process did not exit within "
		    "%.0fs of controller Shutdown; it needed %s",
		    PLUGIN_STOP_GRACE_MS / 1e3,
		    p->stop.how == PLUGIN_EXIT_TERM ? "SIGTERM" : "SIGKILL");
		fail(p, "shutdown", t0, why);
		return;
	}
	if (p->stop.how == PLUGIN_EXIT_SELF && !(WIFEXITED(p->stop.status) &&
	    WEXITSTATUS(p->stop.status) == 0)) {
		snprintf(why, sizeof(why), "the process exited with %s",
		    child_status_str(p->stop.status, st, sizeof(st)));
		fail(p, "shutdown", t0, why);
		return;
	}
	pass("shutdown", t0, NULL);
}

/* ----------------------------------------------------------- command */

static const char usage_opts[] =
    "      --config FILE      the plugin's configuration, a JSON object\n"
    "                         (plugin_config as the manager sends it;\n"
    "                         default {})\n"
    "      --timeout DUR      bound on the whole run (default 5m)\n"
    "      --key-path FILE    connector key: static credentials with this\n"
    "                         private key (default: the plugin provisions)\n"
    "      --username USER    connector username\n"
    "      --external         log in to external_addr (default: internal,\n"
    "                         else external)\n";

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: flotilla plugin-test PLUGIN [--config FILE.json] "
	    "[--timeout 5m]\n\n%s\n\nPLUGIN is a path or a name (aws, "
	    "local, fleeting-plugin-x...).\n\nOptions:\n%s"
	    "  -h, --help             this help\n", cmd_plugin_test.summary,
	    usage_opts);
}

static char *
read_config(const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	char *s;

	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: not a JSON object", path);
		json_decref(j);
		return NULL;
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL) {
		snprintf(err, errlen, "%s: cannot encode", path);
		return NULL;
	}
	return s;
}

static int
plugin_test_run(struct cli_globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "key-path", required_argument, NULL, 'k' },
		{ "username", required_argument, NULL, 'u' },
		{ "external", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *config_path = NULL, *key_path = NULL, *username = NULL;
	struct plugin_host_opts o;
	struct config_connector cc;
	struct pt p;
	char err[1024], *path = NULL, *json = NULL, *cfg_copy;
	int64_t timeout = 5 * DURATION_MIN;
	int c, external = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			if (duration_parse(optarg, &timeout) != 0 ||
			    timeout <= 0) {
				fprintf(stderr, "flotilla plugin-test: bad "
				    "--timeout '%s' (e.g. 90s, 5m)\n", optarg);
				return 2;
			}
			break;
		case 'k':
			key_path = optarg;
			break;
		case 'u':
			username = optarg;
			break;
		case 'e':
			external = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (g->log_level == NULL)
		log_set_level(LOG_WARN);
	if (plugin_resolve(argv[optind], &path, err, sizeof(err)) != 0) {
		printf("FAIL handshake (0.00s): %s\n", err);
		return 1;
	}
	if (config_path != NULL &&
	    (json = read_config(config_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "flotilla plugin-test: %s\n", err);
		free(path);
		return 2;
	}
	cfg_copy = xstrdup(json != NULL ? json : "{}");
	free(json);

	signal(SIGPIPE, SIG_IGN);
	rpc_set_log_handler(grpc_log);
	memset(&p, 0, sizeof(p));
	p.base = event_base_new();
	p.deadline = mono_ns() + timeout;
	memset(&cc, 0, sizeof(cc));
	cc.key_path = (char *)key_path;
	cc.username = (char *)username;
	cc.use_static_credentials = key_path != NULL;
	memset(&o, 0, sizeof(o));
	o.path = path;
	o.plugin_config_json = cfg_copy;
	o.connector = &cc;
	o.max_failures = 1;	/* a conformance run does not retry */
	if (timeout < (int64_t)PLUGIN_HANDSHAKE_TIMEOUT_MS * 1000000)
		o.handshake_timeout_ms = (int)(timeout / 1000000);
	o.cbs.on_ready = on_ready;
	o.cbs.on_restart = on_ready;
	o.cbs.on_failed = on_failed;
	o.cbs.on_phase = on_phase;
	o.cb_arg = &p;
	p.h = plugin_host_new(p.base, &o, err, sizeof(err));
	if (p.h == NULL) {
		printf("FAIL handshake (0.00s): %s\n", err);
		p.failed = 1;
		goto out;
	}
	step_start(&p);
	if (!p.start_failed) {
		run_steps(&p, external);
		step_shutdown(&p);
	} else {
		skip("update ... shutdown", "the plugin did not start");
	}
	plugin_host_free(p.h);
out:
	copy_instances(&p, NULL);
	plugin_connect_info_free(p.ci);
	if (p.base != NULL)
		event_base_free(p.base);
	free(cfg_copy);
	free(path);
	printf("%s\n", p.failed ? "plugin-test: FAILED" : "plugin-test: all "
	    "steps passed");
	return p.failed ? 1 : 0;
}

const struct cli_command cmd_plugin_test = {
	"plugin-test",
	"Run a fleeting plugin through every call on a real instance, "
	"SSH login included.",
	"PLUGIN [--config FILE.json] [--timeout 5m]",
	usage_opts,
	plugin_test_run
};
