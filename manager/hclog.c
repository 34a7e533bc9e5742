/*
 * Plugin output to log entries: line cutting, hclog JSON / text parsing and
 * rate limiting, as pure functions (see hclog.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "hclog.h"
#include "xmalloc.h"

/* ----------------------------------------------------------- lines */

void
hclog_linebuf_init(struct hclog_linebuf *lb, size_t max)
{
	lb->max = max ? max : HCLOG_LINE_MAX;
	lb->buf = xmalloc(lb->max);
	lb->len = 0;
}

void
hclog_linebuf_release(struct hclog_linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = 0;
}

static void
deliver(const char *p, size_t n, hclog_line_fn fn, void *arg)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	fn(arg, p, n);
}

void
hclog_linebuf_feed(struct hclog_linebuf *lb, const void *data, size_t n,
    hclog_line_fn fn, void *arg)
{
	const char *p = data, *nl;
	size_t take;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		take = nl != NULL ? (size_t)(nl - p) : n;
		/* Fill the buffer up to max; a full buffer is one piece. */
		while (take > 0) {
			size_t room = lb->max - lb->len;
			size_t k = take < room ? take : room;

			memcpy(lb->buf + lb->len, p, k);
			lb->len += k;
			p += k;
			n -= k;
			take -= k;
			if (lb->len == lb->max) {
				fn(arg, lb->buf, lb->len);
				lb->len = 0;
			}
		}
		if (nl != NULL) {
			deliver(lb->buf, lb->len, fn, arg);
			lb->len = 0;
			p++;	/* the newline */
			n--;
		}
	}
}

void
hclog_linebuf_flush(struct hclog_linebuf *lb, hclog_line_fn fn, void *arg)
{
	if (lb->len > 0)
		deliver(lb->buf, lb->len, fn, arg);
	lb->len = 0;
}

/* ----------------------------------------------------------- parsing */

int
hclog_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level lvl;
	} names[] = {
		{ "trace", LOG_DEBUG }, { "debug", LOG_DEBUG },
		{ "info", LOG_INFO }, { "warn", LOG_WARN },
		{ "warning", LOG_WARN }, { "error", LOG_ERROR },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return -1;
}

/* A field key from a JSON key: '@' dropped, odd bytes as '_', capped. */
static char *
field_key(const char *k)
{
	size_t n, i;
	char *out;

	if (k[0] == '@')
		k++;
	n = strlen(k);
	if (n > HCLOG_KEY_MAX)
		n = HCLOG_KEY_MAX;
	if (n == 0)
		return xstrdup("_");
	out = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];

		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		    c == '.' || c == '/' ? (char)c : '_';
	}
	out[n] = '\0';
	return out;
}

/* A JSON value as a field value: strings as they are, others compact. */
static char *
field_value(json_t *v)
{
	char *s, *copy;

	if (json_is_string(v))
		return xstrndup(json_string_value(v), json_string_length(v));
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s == NULL)
		return xstrdup("");
	copy = xstrdup(s);
	free(s);
	return copy;
}

static int
parse_json(const char *line, size_t len, struct hclog_entry *out)
{
	const char *key;
	json_error_t jerr;
	json_t *root, *v;
	size_t i = 0, nkeys;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] != '{')
		return -1;
	root = json_loadb(line, len, 0, &jerr);	/* duplicates: last wins */
	if (root == NULL)
		return -1;
	if (!json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	out->json = 1;
	out->level = LOG_INFO;
	nkeys = json_object_size(root);
	if (nkeys > HCLOG_MAX_FIELDS)
		nkeys = HCLOG_MAX_FIELDS;
	out->fields = xcalloc(nkeys ? nkeys : 1, sizeof(*out->fields));
	json_object_foreach(root, key, v) {
		if (strcmp(key, "@message") == 0) {
			free(out->message);
			out->message = field_value(v);
		} else if (strcmp(key, "@level") == 0) {
			enum log_level lvl;

			if (json_is_string(v) &&
			    hclog_level_parse(json_string_value(v), &lvl) == 0)
				out->level = lvl;
		} else if (strcmp(key, "@timestamp") == 0) {
			free(out->timestamp);
			out->timestamp = field_value(v);
		} else if (out->nfields < nkeys) {
			struct log_field *f = &out->fields[out->nfields++];

			f->key = field_key(key);
			f->value = field_value(v);
		}
	}
	json_decref(root);
	if (out->message == NULL)
		out->message = xstrdup("");
	return 0;
}

/* Does line start with prefix? */
static int
starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(line, prefix, n) == 0;
}

static void
parse_text(struct hclog_state *st, const char *line, size_t len,
    struct hclog_entry *out)
{
	static const struct {
		const char *tag;
		enum log_level lvl;
	} tags[] = {
		{ "[TRACE]", LOG_DEBUG }, { "[DEBUG]", LOG_DEBUG },
		{ "[INFO]", LOG_INFO }, { "[WARN]", LOG_WARN },
		{ "[ERROR]", LOG_ERROR },
	};
	size_t i;

	out->json = 0;
	out->level = st != NULL && st->panic ? LOG_ERROR : LOG_INFO;
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		size_t n = strlen(tags[i].tag);

		if (starts(line, len, tags[i].tag)) {
			out->level = tags[i].lvl;
			line += n;
			len -= n;
			while (len > 0 && (*line == ' ' || *line == '\t')) {
				line++;
				len--;
			}
			break;
		}
	}
	if (i == sizeof(tags) / sizeof(tags[0]) &&
	    (starts(line, len, "panic: ") ||
	    starts(line, len, "fatal error: "))) {
		out->level = LOG_ERROR;
		if (st != NULL)
			st->panic = 1;
	}
	out->message = xstrndup(line, len);
}

void
hclog_parse(struct hclog_state *st, const char *line, size_t len,
    struct hclog_entry *out)
{
	memset(out, 0, sizeof(*out));
	if (parse_json(line, len, out) == 0)
		return;
	hclog_entry_release(out);
	memset(out, 0, sizeof(*out));
	parse_text(st, line, len, out);
}

void
hclog_entry_release(struct hclog_entry *e)
{
	for (size_t i = 0; i < e->nfields; i++) {
		free((char *)e->fields[i].key);
		free((char *)e->fields[i].value);
	}
	free(e->fields);
	free(e->message);
	free(e->timestamp);
	e->fields = NULL;
	e->nfields = 0;
	e->message = e->timestamp = NULL;
}

/* ----------------------------------------------------------- rate */

void
hclog_ratelimit_init(struct hclog_ratelimit *rl, double rate, double burst)
{
	rl->rate = rate > 0 ? rate : 1;
	rl->burst = burst >= 1 ? burst : 1;
	rl->tokens = rl->burst;
	rl->last_ns = 0;
	rl->dropped = 0;
}

int
hclog_ratelimit_take(struct hclog_ratelimit *rl, int64_t now_ns,
    uint64_t *dropped_before)
{
	if (rl->last_ns != 0 && now_ns > rl->last_ns) {
		rl->tokens += (double)(now_ns - rl->last_ns) / 1e9 * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	if (rl->last_ns == 0 || now_ns > rl->last_ns)
		rl->last_ns = now_ns;
	if (rl->tokens < 1) {
		rl->dropped++;
		return 0;
	}
	rl->tokens -= 1;
	*dropped_before = rl->dropped;
	rl->dropped = 0;
	return 1;
}
