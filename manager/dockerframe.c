/*
 * Docker's stream frames: see dockerframe.h.  Two states: collecting the
 * 8-byte header (hdrlen < 8), then handing out `left` payload bytes.
 */
#include <string.h>

#include "dockerframe.h"
#include "err.h"

void
dockerframe_init(struct dockerframe *d, uint32_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max ? max : DOCKERFRAME_DEFAULT_MAX;
}

int
dockerframe_feed(struct dockerframe *d, const void *buf, size_t len,
    size_t *used, int *stream, const char **data, size_t *dlen)
{
	const char *p = buf;
	size_t i = 0;

	*used = 0;
	*data = NULL;
	*dlen = 0;
	*stream = -1;
	if (d->failed)
		return d->failed;

	while (i < len) {
		if (d->left > 0) {
			size_t n = len - i;

			if (n > d->left)
				n = d->left;
			d->left -= (uint32_t)n;
			*stream = d->stream;
			*data = p + i;
			*dlen = n;
			*used = i + n;
			if (d->left == 0)
				d->hdrlen = 0;
			return 1;
		}
		while (d->hdrlen < 8 && i < len)
			d->hdr[d->hdrlen++] = (uint8_t)p[i++];
		if (d->hdrlen < 8)
			break;
		if (d->hdr[0] > DOCKERFRAME_SYSERR || d->hdr[1] != 0 ||
		    d->hdr[2] != 0 || d->hdr[3] != 0) {
			d->failed = FL_ERR_PROTO;
			*used = i;
			return d->failed;
		}
		d->stream = d->hdr[0];
		d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
		    (uint32_t)d->hdr[6] << 8 | (uint32_t)d->hdr[7];
		if (d->left > d->max) {
			d->failed = FL_ERR_TOOBIG;
			*used = i;
			return d->failed;
		}
		if (d->left == 0)
			d->hdrlen = 0;	/* an empty frame: next header */
	}
	*used = i;
	return 0;
}

int
dockerframe_end(const struct dockerframe *d)
{
	if (d->failed)
		return d->failed;
	return d->hdrlen == 0 && d->left == 0 ? 0 : FL_ERR_CLOSED;
}
