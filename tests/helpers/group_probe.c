/*
 * group_probe: drives one cloud plugin's instance group through the
 * manager's plugin host, with a plugin_config and connector settings, for
 * tests/integration/plugin_aws.sh and bench/aws_update.sh (things
 * `flotilla plugin-test` does not do: many instances, a count of cloud
 * requests per Update, a shell step between two calls against the same
 * running plugin).
 *
 *   group_probe [-c CONFIG.json] [-k KEY] [-u USER] [-s] [-p PORT]
 *               [-T deadline_ms] PLUGIN COMMAND...
 *
 *   -c   Init's plugin_config (a JSON object; default {})
 *   -k   connector key_path (and use_static_credentials = true)
 *   -u   connector username          -p  connector protocol_port
 *   -s   use_static_credentials = true without a key
 *
 * Commands, in order (a "?" suffix prints a failure instead of exiting):
 *   start                  handshake, Init, first Update: "ready id=..."
 *   update                 "instances N running R creating C deleting D"
 *   list                   update, then one "ID STATE" line per instance
 *   updates N              N Updates in a row: "updates N instances I
 *                          ms T median_us=M p95_us=P"
 *   increase N             "increased N"
 *   decrease ID|first|all  "decreased N"
 *   wait-running N SECS    until N are running: "running N ms T"
 *   wait-total N SECS      until the plugin lists exactly N (any state)
 *   connect-info ID|first [KEYFILE]
 *                          "connect id= os= arch= protocol= port= user=
 *                          internal= external= key_bytes= expires_in=";
 *                          the key (a secret) goes to KEYFILE (0600),
 *                          never to stdout
 *   heartbeat ID|first     "heartbeat code C"
 *   sh CMD                 run CMD with /bin/sh: "sh rc N"
 *   sleep MS               turn the loop MS milliseconds
 *   stop                   "stopped how=..."
 * "first" is the first running instance of the last Update.  Plugin logs
 * go to stderr.  Exit 0 when every command worked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "plugin_host.h"
#include "xmalloc.h"

static struct event_base *base;
static struct plugin_host *host;
static int deadline_ms = 60000;

static int done, failed, settled;
static char fail_msg[2048];
static int64_t increased;
static size_t ndecreased;
static int hb_code;
static struct plugin_connect_info *ci;

/* The last Update's instances (copied). */
static char **ids;
static int *states;
static size_t nids;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until *flag or ms have passed; 0 or -1 (timed out). */
static int
loop_until(const int *flag, int ms)
{
	int64_t end = now_ms() + ms;

	while (!*flag) {
		struct timeval tv = { 0, 50000 };

		if (now_ms() >= end)
			return -1;
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return 0;
}

static void
clear_ids(void)
{
	for (size_t i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	free(states);
	ids = NULL;
	states = NULL;
	nids = 0;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "group_probe: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	plugin_host_free(host);
	event_base_free(base);
	clear_ids();
	exit(1);
}

static void
on_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	(void)arg;
	(void)h;
	printf("ready id=%s max_size=%lld instances=%zu%s%s\n", info->id,
	    (long long)info->max_size, inst != NULL ? inst->n : 0,
	    ust->rc != 0 ? " update_error=" : "", ust->rc != 0 ? ust->msg : "");
	fflush(stdout);
	settled = 1;
}

static void
on_failed(void *arg, struct plugin_host *h, const char *reason)
{
	(void)arg;
	(void)h;
	snprintf(fail_msg, sizeof(fail_msg), "%s", reason);
	failed = 1;
	settled = 1;
}

static void
set_failed(const struct plugin_status *st)
{
	snprintf(fail_msg, sizeof(fail_msg), "%s (%s)", st->msg,
	    err_str(st->rc));
	failed = 1;
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	(void)arg;
	done = 1;
	if (st->rc != 0) {
		set_failed(st);
		return;
	}
	clear_ids();
	ids = xcalloc(inst->n + 1, sizeof(*ids));
	states = xcalloc(inst->n + 1, sizeof(*states));
	for (size_t i = 0; i < inst->n; i++) {
		ids[i] = xstrdup(inst->v[i].id);
		states[i] = inst->v[i].state;
	}
	nids = inst->n;
}

static void
on_increase(void *arg, const struct plugin_status *st, int64_t succeeded,
    const char *perr)
{
	(void)arg;
	done = 1;
	increased = succeeded;
	if (st->rc != 0)
		set_failed(st);
	else if (perr != NULL && perr[0] != '\0')
		printf("increase partial_error=%s\n", perr);
}

static void
on_decrease(void *arg, const struct plugin_status *st, char *const *ok,
    size_t nok, const char *perr)
{
	(void)arg;
	(void)ok;
	done = 1;
	ndecreased = nok;
	if (st->rc != 0)
		set_failed(st);
	else if (perr != NULL && perr[0] != '\0')
		printf("decrease partial_error=%s\n", perr);
}

static void
on_connect(void *arg, const struct plugin_status *st,
    const struct plugin_connect_info *c)
{
	(void)arg;
	done = 1;
	if (st->rc != 0) {
		set_failed(st);
		return;
	}
	ci = plugin_connect_info_dup(c);
}

static void
on_heartbeat(void *arg, const struct plugin_status *st)
{
	(void)arg;
	done = 1;
	hb_code = st->code;
	if (st->rc != 0 && st->code < 0)
		set_failed(st);
}

static void
on_stop(void *arg, struct plugin_host *h, const struct plugin_stop_result *r)
{
	static const char *const how[] = { "none", "self", "term", "kill" };

	(void)arg;
	(void)h;
	printf("stopped how=%s\n", how[r->how]);
	done = 1;
}

/* One Update, waiting for its answer; 0 or -1 (fail_msg). */
static int
update(void)
{
	int rc;

	done = failed = 0;
	if ((rc = plugin_host_update(host, on_update, NULL)) != 0) {
		snprintf(fail_msg, sizeof(fail_msg), "update: %s", err_str(rc));
		return -1;
	}
	if (loop_until(&done, deadline_ms) != 0) {
		snprintf(fail_msg, sizeof(fail_msg), "update: timed out");
		return -1;
	}
	return failed ? -1 : 0;
}

static size_t
count_state(int st)
{
	size_t n = 0;

	for (size_t i = 0; i < nids; i++)
		n += states[i] == st;
	return n;
}

static const char *
pick(const char *arg)
{
	if (strcmp(arg, "first") != 0)
		return arg;
	for (size_t i = 0; i < nids; i++) {
		if (states[i] == PLUGIN_I_RUNNING)
			return ids[i];
	}
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Write the key to path (0600); 0 or -1. */
static int
write_key(const char *path, const uint8_t *key, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, key, len);
	if (w == (ssize_t)len && len > 0 && key[len - 1] != '\n')
		w = write(fd, "\n", 1) == 1 ? (ssize_t)len : -1;
	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

/* Run one command at argv[*i]; 0, or -1 with fail_msg set. */
static int
command(char **argv, int argc, int *i)
{
	const char *cmd = argv[*i];
	char err[1024];
	int rc;

#define NEED(n) do { if (*i + (n) >= argc) { \
	snprintf(fail_msg, sizeof(fail_msg), "%s: missing argument", cmd); \
	return -1; } } while (0)

	done = failed = 0;
	if (strcmp(cmd, "start") == 0) {
		if (plugin_host_start(host, err, sizeof(err)) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "%s", err);
			return -1;
		}
		settled = 0;
		if (loop_until(&settled, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "start: timed out");
			return -1;
		}
		return failed ? -1 : 0;
	}
	if (strcmp(cmd, "update") == 0 || strcmp(cmd, "list") == 0) {
		if (update() != 0)
			return -1;
		printf("instances %zu running %zu creating %zu deleting %zu\n",
		    nids, count_state(PLUGIN_I_RUNNING),
		    count_state(PLUGIN_I_CREATING),
		    count_state(PLUGIN_I_DELETING));
		if (cmd[0] == 'l') {
			for (size_t k = 0; k < nids; k++)
				printf("%s %s\n", ids[k],
				    plugin_istate_name(states[k]));
		}
		return 0;
	}
	if (strcmp(cmd, "updates") == 0) {
		int n, k;
		int64_t t0 = now_ms(), *us;

		NEED(1);
		n = atoi(argv[++*i]);
		if (n < 1 || n > 100000) {
			snprintf(fail_msg, sizeof(fail_msg), "updates: 1..100000");
			return -1;
		}
		us = xcalloc((size_t)n, sizeof(*us));
		for (k = 0; k < n; k++) {
			struct timespec a, b;

			clock_gettime(CLOCK_MONOTONIC, &a);
			if (update() != 0) {
				free(us);
				return -1;
			}
			clock_gettime(CLOCK_MONOTONIC, &b);
			us[k] = (b.tv_sec - a.tv_sec) * 1000000 +
			    (b.tv_nsec - a.tv_nsec) / 1000;
		}
		qsort(us, (size_t)n, sizeof(*us), cmp_i64);
		printf("updates %d instances %zu ms %lld median_us=%lld "
		    "p95_us=%lld\n", n, nids, (long long)(now_ms() - t0),
		    (long long)us[n / 2], (long long)us[(n * 95) / 100 < n ?
		    (n * 95) / 100 : n - 1]);
		free(us);
		return 0;
	}
	if (strcmp(cmd, "increase") == 0) {
		NEED(1);
		rc = plugin_host_increase(host, atoll(argv[++*i]), on_increase,
		    NULL);
		if (rc != 0 || loop_until(&done, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "increase: %s",
			    rc != 0 ? err_str(rc) : "timed out");
			return -1;
		}
		printf("increased %lld\n", (long long)increased);
		return failed ? -1 : 0;
	}
	if (strcmp(cmd, "decrease") == 0) {
		const char *one[1];
		const char *const *list;
		size_t n;

		NEED(1);
		++*i;
		if (strcmp(argv[*i], "all") == 0) {
			list = (const char *const *)ids;
			n = nids;
		} else {
			if ((one[0] = pick(argv[*i])) == NULL) {
				snprintf(fail_msg, sizeof(fail_msg),
				    "decrease: no running instance");
				return -1;
			}
			list = one;
			n = 1;
		}
		rc = plugin_host_decrease(host, list, n, on_decrease, NULL);
		if (rc != 0 || loop_until(&done, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "decrease: %s",
			    rc != 0 ? err_str(rc) : "timed out");
			return -1;
		}
		printf("decreased %zu\n", ndecreased);
		return failed ? -1 : 0;
	}
	if (strcmp(cmd, "wait-running") == 0 || strcmp(cmd, "wait-total") == 0) {
		int64_t t0 = now_ms(), end;
		size_t want;
		int total = cmd[5] == 't';

		NEED(2);
		want = (size_t)atol(argv[++*i]);
		end = t0 + (int64_t)atoi(argv[++*i]) * 1000;
		for (;;) {
			int tick = 0;
			size_t have;

			if (update() != 0)
				return -1;
			have = total ? nids : count_state(PLUGIN_I_RUNNING);
			if (total ? have == want : have >= want) {
				printf("%s %zu ms %lld\n", total ? "total" :
				    "running", have, (long long)(now_ms() - t0));
				return 0;
			}
			if (now_ms() >= end) {
				snprintf(fail_msg, sizeof(fail_msg), "%s: %zu "
				    "after the wait, not %zu", cmd, have, want);
				return -1;
			}
			(void)loop_until(&tick, 250);
		}
	}
	if (strcmp(cmd, "connect-info") == 0) {
		const char *id, *keyfile = NULL;
		struct timespec ts;
		long long left = 0;

		NEED(1);
		if ((id = pick(argv[++*i])) == NULL) {
			snprintf(fail_msg, sizeof(fail_msg),
			    "connect-info: no running instance");
			return -1;
		}
		if (*i + 1 < argc && argv[*i + 1][0] == '/')
			keyfile = argv[++*i];
		plugin_connect_info_free(ci);
		ci = NULL;
		rc = plugin_host_connect_info(host, id, on_connect, NULL);
		if (rc != 0 || loop_until(&done, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "connect-info: %s",
			    rc != 0 ? err_str(rc) : "timed out");
			return -1;
		}
		if (failed)
			return -1;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ci->expires_unix_ns > 0)
			left = (long long)((ci->expires_unix_ns -
			    ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec)) /
			    1000000000);
		printf("connect id=%s os=%s arch=%s protocol=%s port=%d user=%s "
		    "internal=%s external=%s key_bytes=%zu static=%d "
		    "expires_in=%lld\n", ci->id, ci->os, ci->arch, ci->protocol,
		    ci->port, ci->username, ci->internal_addr,
		    ci->external_addr, ci->key_len, ci->use_static_credentials,
		    left);
		if (keyfile != NULL && write_key(keyfile, ci->key,
		    ci->key_len) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "cannot write %s: "
			    "%s", keyfile, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (strcmp(cmd, "heartbeat") == 0) {
		const char *id;

		NEED(1);
		if ((id = pick(argv[++*i])) == NULL) {
			snprintf(fail_msg, sizeof(fail_msg),
			    "heartbeat: no running instance");
			return -1;
		}
		rc = plugin_host_heartbeat(host, id, on_heartbeat, NULL);
		if (rc != 0 || loop_until(&done, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "heartbeat: %s",
			    rc != 0 ? err_str(rc) : "timed out");
			return -1;
		}
		printf("heartbeat code %d\n", hb_code);
		return failed ? -1 : 0;
	}
	if (strcmp(cmd, "sh") == 0) {
		NEED(1);
		fflush(stdout);
		rc = system(argv[++*i]);
		printf("sh rc %d\n", WIFEXITED(rc) ? WEXITSTATUS(rc) : 128);
		return 0;
	}
	if (strcmp(cmd, "sleep") == 0) {
		int never = 0;

		NEED(1);
		(void)loop_until(&never, atoi(argv[++*i]));
		return 0;
	}
	if (strcmp(cmd, "stop") == 0) {
		plugin_host_stop(host, on_stop, NULL);
		if (loop_until(&done, deadline_ms) != 0) {
			snprintf(fail_msg, sizeof(fail_msg), "stop: timed out");
			return -1;
		}
		return 0;
	}
	snprintf(fail_msg, sizeof(fail_msg), "unknown command %s", cmd);
	return -1;
#undef NEED
}

static char *
read_file(const char *path)
{
	struct sbuf sb;
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	sbuf_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&sb, buf, n);
	fclose(f);
	return sbuf_detach(&sb, NULL);
}

int
main(int argc, char **argv)
{
	struct plugin_host_opts o;
	struct config_connector cc;
	char err[1024], *path, *cfg = NULL;
	int c, i;

	memset(&o, 0, sizeof(o));
	memset(&cc, 0, sizeof(cc));
	while ((c = getopt(argc, argv, "c:k:u:sp:T:")) != -1) {
		switch (c) {
		case 'c':
			free(cfg);
			if ((cfg = read_file(optarg)) == NULL) {
				fprintf(stderr, "group_probe: %s: %s\n", optarg,
				    strerror(errno));
				return 2;
			}
			break;
		case 'k':
			cc.key_path = optarg;
			cc.use_static_credentials = 1;
			break;
		case 'u':
			cc.username = optarg;
			break;
		case 's':
			cc.use_static_credentials = 1;
			break;
		case 'p':
			cc.protocol_port = atoi(optarg);
			break;
		case 'T':
			deadline_ms = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: group_probe [-c config.json] "
			    "[-k key] [-u user] [-s] [-p port] [-T ms] PLUGIN "
			    "CMD...\n");
			return 2;
		}
	}
	if (optind >= argc)
		return 2;
	log_set_level(LOG_INFO);
	if (plugin_resolve(argv[optind], &path, err, sizeof(err)) != 0) {
		fprintf(stderr, "group_probe: error: %s\n", err);
		return 1;
	}
	base = event_base_new();
	o.path = path;
	o.name = "probe";
	o.plugin_config_json = cfg;
	o.connector = &cc;
	o.cbs.on_ready = on_ready;
	o.cbs.on_restart = on_ready;
	o.cbs.on_failed = on_failed;
	o.max_failures = 1;
	host = plugin_host_new(base, &o, err, sizeof(err));
	free(path);
	if (host == NULL)
		die("%s", err);
	for (i = optind + 1; i < argc; i++) {
		size_t len = strlen(argv[i]);
		int may_fail = len > 0 && argv[i][len - 1] == '?';
		const char *name = argv[i];

		if (may_fail)
			argv[i][len - 1] = '\0';
		if (command(argv, argc, &i) != 0) {
			if (!may_fail)
				die("%s", fail_msg);
			printf("%s failed: %s\n", name, fail_msg);
		}
		fflush(stdout);
	}
	plugin_connect_info_free(ci);
	plugin_host_free(host);
	event_base_free(base);
	clear_ids();
	free(cfg);
	log_release();
	return 0;
}
