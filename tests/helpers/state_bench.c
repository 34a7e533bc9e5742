/*
 * state_bench: what a state storage save costs, since the manager saves
 * after every change that matters (a use count, an instance ready, a
 * removal).  Builds N records (default 1,000) with a full ConnectInfo (an
 * OpenSSH ed25519 key, a password, both addresses) and a pinned host key,
 * then times, over R rounds (default 51): state_store_format() alone (no
 * IO), state_store_save() (write, fsync, rename, fsync of the directory)
 * and state_store_load().  Prints medians and p95s in milliseconds and the
 * file size; exits 1 if the save median is not under 100 ms.
 *
 *	build/tests/state_bench [records] [rounds] [dir]
 *
 * dir (default: a new directory under $TMPDIR or /tmp, removed at the end)
 * should be on the file system the manager will use: the fsyncs dominate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plugin_host.h"
#include "state_store.h"
#include "xmalloc.h"

#define NS INT64_C(1000000000)

static const char key_pem[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBrHZKzJ0kQ0Qp7V5hX8e6Y4Ew3bq2r0y0xJm7bqv4RZQAAAJgq1+oBKtfq\n"
    "AQAAAAtzc2gtZWQyNTUxOQAAACBrHZKzJ0kQ0Qp7V5hX8e6Y4Ew3bq2r0y0xJm7bqv4RZQ\n"
    "AAAEA0mQ3Rz9dF0b0vKxW1l6n4b2m2kTz2d0lX6a2vN9tq2Gsdkr MnSRDRCntXmFfx7pjgTDdu\n"
    "rav5RZAAAAEXJ1bm5lckBmbG90aWxsYQECAwQ=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

static int64_t
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median and p95 of v (sorted in place), in ms. */
static void
stats(int64_t *v, size_t n, double *med, double *p95)
{
	qsort(v, n, sizeof(*v), cmp64);
	*med = (double)v[n / 2] / 1e6;
	*p95 = (double)v[n * 95 / 100] / 1e6;
}

int
main(int argc, char **argv)
{
	size_t nrec = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 51;
	char tmpl[256], err[512], *buf, *dir;
	struct state_record *recs, *out;
	struct state_store *st;
	int64_t *tf, *ts, *tl;
	double med, p95, save_med;
	size_t len, n;
	int made = 0;

	if (nrec == 0 || rounds == 0) {
		fprintf(stderr, "usage: %s [records] [rounds] [dir]\n", argv[0]);
		return 2;
	}
	if (argc > 3) {
		dir = argv[3];
	} else {
		const char *t = getenv("TMPDIR");

		snprintf(tmpl, sizeof(tmpl), "%s/fl-state-bench-XXXXXX",
		    t != NULL && t[0] != '\0' ? t : "/tmp");
		if ((dir = mkdtemp(tmpl)) == NULL) {
			perror("mkdtemp");
			return 2;
		}
		made = 1;
	}
	st = state_store_open(dir, "glrt-t1_benchmarkTokenXYZ", err,
	    sizeof(err));
	if (st == NULL) {
		fprintf(stderr, "state_store_open: %s\n", err);
		return 2;
	}

	recs = xcalloc(nrec, sizeof(*recs));
	for (size_t i = 0; i < nrec; i++) {
		struct plugin_connect_info ci = { 0 };
		char id[64], in[32], ex[32], pw[40];

		snprintf(id, sizeof(id), "i-0%015zx", i * 2654435761u);
		snprintf(in, sizeof(in), "10.%zu.%zu.%zu", i >> 16 & 255,
		    i >> 8 & 255, i & 255);
		snprintf(ex, sizeof(ex), "203.0.%zu.%zu", i >> 8 & 255, i & 255);
		snprintf(pw, sizeof(pw), "pw-%032zx", i * 40503u);
		ci.os = "linux";
		ci.arch = "amd64";
		ci.protocol = "ssh";
		ci.port = 22;
		ci.username = "core";
		ci.password = pw;
		ci.key = (uint8_t *)key_pem;
		ci.key_len = sizeof(key_pem) - 1;
		ci.internal_addr = in;
		ci.external_addr = ex;
		recs[i].id = xstrdup(id);
		recs[i].use_count = (int64_t)(i % 7);
		recs[i].created_at = INT64_C(1767571200) * NS + (int64_t)i * NS;
		recs[i].ready = 1;
		recs[i].host_key = xstrdup("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
		state_store_record_set_connect(&recs[i], &ci);
	}

	tf = xcalloc(rounds, sizeof(*tf));
	ts = xcalloc(rounds, sizeof(*ts));
	tl = xcalloc(rounds, sizeof(*tl));
	len = 0;
	for (size_t r = 0; r < rounds; r++) {
		int64_t t0 = mono(), t1, t2, t3;

		if (state_store_format(recs, nrec, &buf, &len) != 0) {
			fprintf(stderr, "state_store_format failed\n");
			return 1;
		}
		t1 = mono();
		freezero(buf, len);
		recs[r % nrec].use_count++;	/* a change, as in real use */
		t2 = mono();
		if (state_store_save(st, recs, nrec) != 0) {
			perror("state_store_save");
			return 1;
		}
		t3 = mono();
		if (state_store_load(st, &out, &n, err, sizeof(err)) != 0 ||
		    n != nrec) {
			fprintf(stderr, "state_store_load: %s\n", err);
			return 1;
		}
		tl[r] = mono() - t3;
		state_store_records_free(out, n);
		tf[r] = t1 - t0;
		ts[r] = t3 - t2;
	}

	printf("state file: %zu records, %zu bytes (%.0f bytes/record)\n",
	    nrec, len, (double)len / (double)nrec);
	stats(tf, rounds, &med, &p95);
	printf("state_format_%zu: median %.3f ms p95 %.3f ms (no IO)\n", nrec,
	    med, p95);
	stats(ts, rounds, &save_med, &p95);
	printf("state_save_%zu: median %.3f ms p95 %.3f ms (goal: < 100 ms; "
	    "write + 2 fsync + rename)\n", nrec, save_med, p95);
	stats(tl, rounds, &med, &p95);
	printf("state_load_%zu: median %.3f ms p95 %.3f ms\n", nrec, med, p95);

	state_store_records_free(recs, nrec);
	free(tf);
	free(ts);
	free(tl);
	if (made) {
		char *f = xasprintf("%s/%s", state_store_path(st),
		    STATE_STORE_FILE);

		unlink(f);
		free(f);
		rmdir(state_store_path(st));
		rmdir(dir);
	}
	state_store_free(st);
	return save_med < 100.0 ? 0 : 1;
}
