/*
 * rpc_bench: how long one manager-to-plugin round trip takes over lib/rpc,
 * for the heaviest routine call: an Update answering ~1,000 instances
 * (~100 KB of protobuf).  Times N sequential blocking calls, each including
 * the plugin packing the UpdateResponse and the manager unpacking it, and
 * prints median, p95, p99 and mean per call.
 *
 *   build/tests/rpc_bench [-n calls] [-i instances] [-f]
 *
 * -f serves from a forked child process (as a real plugin is) instead of a
 * server thread pool in this process.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "rpc.h"
#include "xmalloc.h"

static Flotilla__Fleeting__V1__UpdateResponse update;

static void
build_update(size_t n)
{
	Flotilla__Fleeting__V1__Instance *in;
	size_t i;

	flotilla__fleeting__v1__update_response__init(&update);
	update.n_instances = n;
	update.instances = xcalloc(n, sizeof *update.instances);
	for (i = 0; i < n; i++) {
		in = xcalloc(1, sizeof *in);
		flotilla__fleeting__v1__instance__init(in);
		in->id = xasprintf("projects/flotilla-ci/zones/europe-west4-a/"
		    "instances/runner-%010zu", i);
		in->state = i % 10 == 0 ?
		    FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_CREATING :
		    FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
		in->cause = xstrdup("cloud status RUNNING");
		update.instances[i] = in;
	}
}

static void
free_update(void)
{
	size_t i;

	for (i = 0; i < update.n_instances; i++) {
		free(update.instances[i]->id);
		free(update.instances[i]->cause);
		free(update.instances[i]);
	}
	free(update.instances);
}

static int
h_update(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	uint8_t *buf;
	size_t n;

	(void)arg;
	(void)req;
	(void)reqlen;
	(void)st;
	n = flotilla__fleeting__v1__update_response__get_packed_size(&update);
	buf = xmalloc(n);
	flotilla__fleeting__v1__update_response__pack(&update, buf);
	sbuf_add(resp, buf, n);
	free(buf);
	return RPC_OK;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static struct rpc_server *
serve(const char *path)
{
	struct rpc_server *srv;
	char err[256];

	srv = rpc_server_new(path, 0, err, sizeof err);
	if (srv == NULL) {
		fprintf(stderr, "rpc_bench: server: %s\n", err);
		return NULL;
	}
	if (rpc_server_add_method(srv, FLEETING_RPC_UPDATE, h_update,
	    NULL) != 0 || rpc_server_start(srv) != 0) {
		fprintf(stderr, "rpc_bench: cannot start server\n");
		rpc_server_free(srv);
		return NULL;
	}
	return srv;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/rpc_bench.XXXXXX", path[64];
	struct rpc_server *srv = NULL;
	struct rpc_client *cl;
	struct rpc_status st;
	struct sbuf resp;
	Flotilla__Fleeting__V1__UpdateResponse *u;
	int64_t *t, t0, sum = 0;
	size_t ninst = 1000, resp_bytes = 0;
	int ncalls = 1000, fork_server = 0, c, i, rc = 1;
	pid_t child = -1;
	char err[256];

	while ((c = getopt(argc, argv, "n:i:f")) != -1) {
		switch (c) {
		case 'n':
			ncalls = atoi(optarg);
			break;
		case 'i':
			ninst = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			fork_server = 1;
			break;
		default:
			fprintf(stderr, "usage: rpc_bench [-n calls] "
			    "[-i instances] [-f]\n");
			return 2;
		}
	}
	if (ncalls < 1 || ninst < 1)
		return 2;
	if (mkdtemp(dir) == NULL) {
		perror("rpc_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/plugin.sock", dir);
	build_update(ninst);

	if (fork_server) {
		int ready[2];
		char ch = 0;

		if (pipe(ready) != 0)
			return 1;
		/* Fork before any gRPC state exists in this process. */
		child = fork();
		if (child == 0) {
			sigset_t set;
			int sig;

			close(ready[0]);
			sigemptyset(&set);
			sigaddset(&set, SIGTERM);
			sigprocmask(SIG_BLOCK, &set, NULL);
			srv = serve(path);
			if (srv == NULL)
				_exit(1);
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			close(ready[1]);
			sigwait(&set, &sig);
			rpc_server_free(srv);
			free_update();
			_exit(0);
		}
		close(ready[1]);
		if (child < 0 || read(ready[0], &ch, 1) != 1) {
			fprintf(stderr, "rpc_bench: server did not start\n");
			return 1;
		}
		close(ready[0]);
	} else if ((srv = serve(path)) == NULL) {
		return 1;
	}

	cl = rpc_client_new(path, 0, NULL, err, sizeof err);
	if (cl == NULL) {
		fprintf(stderr, "rpc_bench: client: %s\n", err);
		goto out;
	}
	t = xcalloc((size_t)ncalls, sizeof *t);
	sbuf_init(&resp);
	for (i = -20; i < ncalls; i++) {	/* 20 warm-up calls */
		t0 = now_ns();
		if (rpc_call(cl, FLEETING_RPC_UPDATE, NULL, 0, 10000, &resp,
		    &st) != 0) {
			fprintf(stderr, "rpc_bench: call: %s %s\n",
			    rpc_code_name(st.code), st.message);
			break;
		}
		u = flotilla__fleeting__v1__update_response__unpack(NULL,
		    resp.len, (const uint8_t *)resp.buf);
		if (u == NULL || u->n_instances != ninst) {
			fprintf(stderr, "rpc_bench: bad response\n");
			break;
		}
		flotilla__fleeting__v1__update_response__free_unpacked(u, NULL);
		if (i >= 0) {
			t[i] = now_ns() - t0;
			sum += t[i];
		}
		resp_bytes = resp.len;
	}
	if (i == ncalls) {
		qsort(t, (size_t)ncalls, sizeof *t, cmp_i64);
		printf("rpc_update: server=%s calls=%d instances=%zu "
		    "resp_bytes=%zu median_us=%.1f p95_us=%.1f p99_us=%.1f "
		    "mean_us=%.1f\n", fork_server ? "child" : "thread",
		    ncalls, ninst, resp_bytes, t[ncalls / 2] / 1e3,
		    t[(size_t)ncalls * 95 / 100] / 1e3,
		    t[(size_t)ncalls * 99 / 100] / 1e3, sum / 1e3 / ncalls);
		rc = 0;
	}
	sbuf_release(&resp);
	free(t);
	rpc_client_free(cl);
out:
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	rpc_server_free(srv);
	free_update();
	rmdir(dir);
	return rc;
}
