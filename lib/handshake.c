/* The plugin handshake line: parse, format, version negotiation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "handshake.h"

/* Parse a decimal version 1..1000 from [s, e); -1 when malformed. */
static int
parse_version(const char *s, const char *e)
{
	int v = 0;

	if (s == e || e - s > 4)
		return -1;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v <= 1000 ? v : -1;
}

/* Does the comma list contain version v?  -1 when the list is malformed. */
static int
list_has(const char *list, int v)
{
	const char *s = list, *e;
	int found = 0;

	for (;;) {
		int x;

		e = strchr(s, ',');
		if (e == NULL)
			e = s + strlen(s);
		x = parse_version(s, e);
		if (x < 0)
			return -1;
		if (x == v)
			found = 1;
		if (*e == '\0')
			return found;
		s = e + 1;
	}
}

int
handshake_parse(const char *line, size_t len, const char *accepted,
    struct handshake *out, char *err, size_t errlen)
{
	const char *f[7];
	size_t flen[7];
	size_t nf = 0, start = 0;
	char acc[16];

	memset(out, 0, sizeof(*out));
	if (len > HANDSHAKE_LINE_MAX) {
		snprintf(err, errlen, "handshake line longer than %d bytes",
		    HANDSHAKE_LINE_MAX);
		return FL_ERR_PROTO;
	}
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) != NULL) {
		snprintf(err, errlen, "handshake line contains a NUL byte");
		return FL_ERR_PROTO;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i == len || line[i] == '|') {
			if (nf == 7) {
				snprintf(err, errlen, "handshake line has more "
				    "than 7 fields");
				return FL_ERR_PROTO;
			}
			f[nf] = line + start;
			flen[nf] = i - start;
			nf++;
			start = i + 1;
		}
	}
	if (nf < 5) {
		snprintf(err, errlen, "handshake line has %zu fields, expected "
		    "CORE|APP|NETWORK|ADDRESS|PROTOCOL|", nf);
		return FL_ERR_PROTO;
	}
	out->core = parse_version(f[0], f[0] + flen[0]);
	if (out->core != PLUGIN_CORE_VERSION) {
		snprintf(err, errlen, "unsupported core protocol version "
		    "\"%.*s\" (expected %d)", (int)(flen[0] > 10 ? 10 : flen[0]),
		    f[0], PLUGIN_CORE_VERSION);
		return FL_ERR_PROTO;
	}
	out->app = parse_version(f[1], f[1] + flen[1]);
	if (accepted == NULL) {
		snprintf(acc, sizeof(acc), "%d", PLUGIN_APP_VERSION);
		accepted = acc;
	}
	if (out->app < 0 || list_has(accepted, out->app) != 1) {
		snprintf(err, errlen, "plugin speaks application protocol "
		    "version \"%.*s\", this manager speaks %s",
		    (int)(flen[1] > 10 ? 10 : flen[1]), f[1], accepted);
		return FL_ERR_PROTO;
	}
	if (flen[2] != 4 || memcmp(f[2], "unix", 4) != 0) {
		snprintf(err, errlen, "unsupported network \"%.*s\" (expected "
		    "unix)", (int)(flen[2] > 10 ? 10 : flen[2]), f[2]);
		return FL_ERR_PROTO;
	}
	memcpy(out->network, "unix", 5);
	if (flen[3] == 0 || f[3][0] != '/' ||
	    flen[3] >= sizeof(out->address)) {
		snprintf(err, errlen, "bad socket address (an absolute path "
		    "shorter than %zu bytes is needed)", sizeof(out->address));
		return FL_ERR_PROTO;
	}
	memcpy(out->address, f[3], flen[3]);
	out->address[flen[3]] = '\0';
	if (flen[4] != 4 || memcmp(f[4], "grpc", 4) != 0) {
		snprintf(err, errlen, "unsupported plugin protocol \"%.*s\" "
		    "(expected grpc)", (int)(flen[4] > 10 ? 10 : flen[4]), f[4]);
		return FL_ERR_PROTO;
	}
	memcpy(out->protocol, "grpc", 5);
	if (nf >= 6 && flen[5] != 0) {
		snprintf(err, errlen, "the plugin asks for TLS (a server "
		    "certificate), which flotilla does not use");
		return FL_ERR_PROTO;
	}
	return 0;
}

int
handshake_format(const struct handshake *h, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%d|%d|%s|%s|%s|\n", h->core, h->app,
	    h->network, h->address, h->protocol);

	if (n < 0 || (size_t)n >= len || n > HANDSHAKE_LINE_MAX)
		return FL_ERR_RANGE;
	return 0;
}

int
handshake_negotiate(const char *versions, int max_supported)
{
	int best = 0;

	if (versions == NULL || versions[0] == '\0')
		return 0;
	for (int v = 1; v <= max_supported; v++) {
		int r = list_has(versions, v);

		if (r < 0)
			return 0;
		if (r == 1)
			best = v;
	}
	return best;
}
