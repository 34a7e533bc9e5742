/*
 * mask_bench: throughput of the trace masker (manager/jobmask.c) on 200 MB
 * of log-like text with 10 masked phrases (and the default token
 * prefixes), in 64 KiB writes, against the same bytes memcpy'd into an
 * sbuf: the cost of masking over the cheapest possible copy.
 *
 *   mask_bench [MB] [ROUNDS]
 *
 * Prints "mask_200mb: median X ms (N MB/s); memcpy median Y ms (M MB/s);
 * masking/memcpy time ratio R".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobmask.h"
#include "xmalloc.h"

#define CHUNK	(64 * 1024)

static const char *const words[] = {
	"Downloading", "package", "from", "https://example.com/repo?ref=main",
	"gcc", "-O2", "-c", "src/main.c", "ok", "compiling", "linking", "test",
	"PASS", "FAIL", "git", "fetch", "origin", "refs/heads/main", "10%",
	"done.", "Step", "1/5", ":", "RUN", "apt-get", "install", "-y", "make",
	"glibc", "Reading", "state", "information...", "[", "]", "=>",
};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 200;
	int rounds = argc > 2 ? atoi(argv[2]) : 3, r;
	size_t len = mb * 1000 * 1000, off = 0, i, masked = 0;
	char *text = xmalloc(len);
	char phbuf[10][48];
	const char *ph[10];
	double *tm = xcalloc((size_t)rounds, sizeof(double));
	double *tc = xcalloc((size_t)rounds, sizeof(double));
	unsigned seed = 7;
	struct sbuf out;

	for (i = 0; i < 10; i++) {
		size_t k, pl = 20 + (size_t)(rand_r(&seed) % 20);

		for (k = 0; k < pl; k++)
			phbuf[i][k] = "abcdefghijklmnopqrstuvwxyzABCDEF0123456789"
			    [rand_r(&seed) % 42];
		phbuf[i][pl] = '\0';
		ph[i] = phbuf[i];
	}
	while (off < len) {
		const char *w = words[rand_r(&seed) %
		    (sizeof(words) / sizeof(words[0]))];
		size_t wl = strlen(w);

		if (rand_r(&seed) % 5000 == 0)	/* a secret now and then */
			w = ph[rand_r(&seed) % 10], wl = strlen(w);
		if (off + wl + 1 > len)
			break;
		memcpy(text + off, w, wl);
		off += wl;
		text[off++] = rand_r(&seed) % 12 == 0 ? '\n' : ' ';
	}
	len = off;

	sbuf_init(&out);
	for (r = 0; r < rounds; r++) {
		struct jobmask *m = jobmask_new(ph, 10, NULL, 0, 1);
		double t0 = now_ms();

		masked = 0;
		for (off = 0; off < len; off += CHUNK) {
			size_t n = len - off < CHUNK ? len - off : CHUNK;

			jobmask_write(m, text + off, n, &out);
			masked += out.len;
			sbuf_reset(&out);
		}
		jobmask_flush(m, &out);
		masked += out.len;
		sbuf_reset(&out);
		tm[r] = now_ms() - t0;
		jobmask_free(m);

		t0 = now_ms();
		for (off = 0; off < len; off += CHUNK) {
			size_t n = len - off < CHUNK ? len - off : CHUNK;

			sbuf_add(&out, text + off, n);
			sbuf_reset(&out);
		}
		tc[r] = now_ms() - t0;
	}
	qsort(tm, (size_t)rounds, sizeof(double), cmpd);
	qsort(tc, (size_t)rounds, sizeof(double), cmpd);
	printf("mask_%zumb: median %.1f ms (%.0f MB/s, 10 phrases, %zu bytes "
	    "out); memcpy into sbuf median %.1f ms (%.0f MB/s); "
	    "masking/memcpy time ratio %.1f\n", mb, tm[rounds / 2],
	    (double)len / 1e3 / tm[rounds / 2], masked, tc[rounds / 2],
	    (double)len / 1e3 / tc[rounds / 2],
	    tc[rounds / 2] > 0 ? tm[rounds / 2] / tc[rounds / 2] : 0.0);
	sbuf_release(&out);
	free(text);
	free(tm);
	free(tc);
	return 0;
}
