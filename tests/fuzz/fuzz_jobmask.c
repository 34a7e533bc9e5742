/*
 * libFuzzer target for the trace masker.  The input chooses up to four
 * phrases (over an alphabet without the characters of "[MASKED]", so
 * that the replacement text cannot spell one), the feature flag, the
 * split of the text into writes, and the text.  Checks: no phrase is in
 * the output, whatever the split; the split output equals the one-write
 * output; nothing is held after a flush.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobmask.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char alpha[] = "abcglpt-_=?&01.\x80\xff";

static char *
run(struct jobmask *m, const uint8_t *in, size_t len, const size_t *cuts,
    size_t ncuts, size_t *outlen)
{
	struct sbuf out;
	size_t prev = 0, i;

	sbuf_init(&out);
	for (i = 0; i <= ncuts; i++) {
		size_t at = i < ncuts ? cuts[i] : len;

		if (at < prev)
			at = prev;
		jobmask_write(m, in + prev, at - prev, &out);
		prev = at;
	}
	jobmask_flush(m, &out);
	if (jobmask_held(m) != 0)
		__builtin_trap();
	return sbuf_detach(&out, outlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ph[4][16];
	const char *php[4];
	size_t np, i, k, off = 2, ncuts, l1, l2, cuts[8];
	const uint8_t *text;
	size_t tlen;
	uint32_t seed;
	struct jobmask *m;
	char *o1, *o2;

	if (size < 2)
		return 0;
	np = (size_t)(data[0] & 3) + 1;
	seed = data[1];
	for (i = 0; i < np; i++) {
		size_t pl;

		if (off >= size)
			return 0;
		pl = (size_t)(data[off++] % 12) + 1;
		for (k = 0; k < pl; k++) {
			uint8_t b = off < size ? data[off++] : 0;

			ph[i][k] = alpha[b % (sizeof(alpha) - 1)];
		}
		ph[i][pl] = '\0';
		php[i] = ph[i];
	}
	text = data + (off < size ? off : size);
	tlen = size - (off < size ? off : size);
	ncuts = (data[0] >> 2) & 7;
	for (i = 0; i < ncuts; i++) {
		seed = seed * 1103515245u + 12345u;
		cuts[i] = tlen ? (seed >> 8) % (tlen + 1) : 0;
	}
	for (i = 1; i < ncuts; i++)
		for (k = i; k > 0 && cuts[k - 1] > cuts[k]; k--) {
			size_t t = cuts[k];

			cuts[k] = cuts[k - 1];
			cuts[k - 1] = t;
		}

	m = jobmask_new(php, np, NULL, 0, data[0] & 0x20);
	o1 = run(m, text, tlen, NULL, 0, &l1);
	o2 = run(m, text, tlen, cuts, ncuts, &l2);
	if (l1 != l2 || memcmp(o1, o2, l1) != 0)
		__builtin_trap();
	for (i = 0; i < np; i++)
		if (memmem(o2, l2, php[i], strlen(php[i])) != NULL)
			__builtin_trap();
	free(o1);
	free(o2);
	jobmask_free(m);
	return 0;
}
