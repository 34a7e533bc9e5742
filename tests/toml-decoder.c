/*
 * The toml-test decoder interface over lib/toml: TOML on stdin, the
 * document as toml-test's "tagged JSON" on stdout and exit 0; on invalid
 * input "LINE:COL: message" on stderr and exit 1.  Used by
 * tests/integration/toml_test.sh to run the conformance suite.
 *
 * Tagged JSON: a table is an object, an array an array, and a scalar an
 * object {"type": T, "value": "V"} with V written as a string.
 */
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toml.h"
#include "xmalloc.h"

static void
json_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\b': fputs("\\b", stdout); break;
		case '\f': fputs("\\f", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default:
			if (c < 0x20)
				printf("\\u%04x", c);
			else
				putchar(c);
		}
	}
	putchar('"');
}

static void json_value(const struct toml_value *v);

static void
json_table(const struct toml_table *t)
{
	putchar('{');
	for (size_t i = 0; i < t->len; i++) {
		if (i > 0)
			putchar(',');
		json_string(t->kvs[i].key, t->kvs[i].keylen);
		putchar(':');
		json_value(t->kvs[i].val);
	}
	putchar('}');
}

static void
json_scalar(const char *type, const char *value)
{
	printf("{\"type\":\"%s\",\"value\":", type);
	json_string(value, strlen(value));
	putchar('}');
}

static void
json_value(const struct toml_value *v)
{
	char buf[64];

	switch (v->type) {
	case TOML_STRING:
		fputs("{\"type\":\"string\",\"value\":", stdout);
		json_string(v->u.str.ptr, v->u.str.len);
		putchar('}');
		break;
	case TOML_INTEGER:
		(void)snprintf(buf, sizeof(buf), "%" PRId64, v->u.integer);
		json_scalar("integer", buf);
		break;
	case TOML_FLOAT:
		if (isnan(v->u.flt))
			json_scalar("float", "nan");
		else if (isinf(v->u.flt))
			json_scalar("float", v->u.flt < 0 ? "-inf" : "inf");
		else {
			(void)snprintf(buf, sizeof(buf), "%.17g", v->u.flt);
			json_scalar("float", buf);
		}
		break;
	case TOML_BOOL:
		json_scalar("bool", v->u.boolean ? "true" : "false");
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL: {
		static const char *names[] = {
			[TOML_DATETIME] = "datetime",
			[TOML_DATETIME_LOCAL] = "datetime-local",
			[TOML_DATE_LOCAL] = "date-local",
			[TOML_TIME_LOCAL] = "time-local",
		};
		FILE *mem = fmemopen(buf, sizeof(buf), "w");

		if (mem == NULL) {
			perror("fmemopen");
			exit(2);
		}
		toml_write_datetime(mem, v->type, &v->u.dt);
		fclose(mem);
		json_scalar(names[v->type], buf);
		break;
	}
	case TOML_ARRAY:
		putchar('[');
		for (size_t i = 0; i < v->u.arr.len; i++) {
			if (i > 0)
				putchar(',');
			json_value(v->u.arr.items[i]);
		}
		putchar(']');
		break;
	case TOML_TABLE:
		json_table(v->u.table);
		break;
	}
}

int
main(void)
{
	struct sbuf in;
	struct toml_error err;
	struct toml_table *doc;
	char chunk[65536];
	size_t n;

	sbuf_init(&in);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		sbuf_add(&in, chunk, n);
	if (ferror(stdin)) {
		perror("stdin");
		return 2;
	}
	doc = toml_parse(in.buf, in.len, &err);
	sbuf_release(&in);
	if (doc == NULL) {
		fprintf(stderr, "%d:%d: %s\n", err.line, err.col, err.msg);
		return 1;
	}
	json_table(doc);
	putchar('\n');
	toml_free(doc);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("stdout");
		return 2;
	}
	return 0;
}
