/*
 * libFuzzer target for the TOML parser: toml_parse() on arbitrary bytes.
 * A rejected input must come with a positioned, terminated message.  An
 * accepted one is walked (positions, string termination, datetime ranges,
 * lookups of every key) and written back with the writers as one
 * "key = value" line per root key; that text must parse again to the same
 * tree.  Everything is freed, so leaks show under ASan.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk(const struct toml_value *v, int depth)
{
	if (depth > TOML_MAX_DEPTH || v->line < 1 || v->col < 1)
		__builtin_trap();
	switch (v->type) {
	case TOML_STRING:
		if (v->u.str.ptr[v->u.str.len] != '\0')
			__builtin_trap();
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		if (v->u.dt.hour > 23 || v->u.dt.minute > 59 ||
		    v->u.dt.second > 60 || v->u.dt.nanosecond < 0 ||
		    v->u.dt.nanosecond > 999999999 || v->u.dt.month > 12 ||
		    v->u.dt.day > 31 || abs(v->u.dt.offset_minutes) >= 24 * 60)
			__builtin_trap();
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.arr.len; i++)
			walk(v->u.arr.items[i], depth + 1);
		break;
	case TOML_TABLE: {
		const struct toml_table *t = v->u.table;

		for (size_t i = 0; i < t->len; i++) {
			const struct toml_kv *kv = &t->kvs[i];

			if (kv->line < 1 || kv->col < 1 ||
			    kv->key[kv->keylen] != '\0')
				__builtin_trap();
			/* Lookups by name find it (unless the key has a NUL). */
			if (strlen(kv->key) == kv->keylen &&
			    toml_get_kv(t, kv->key) != kv)
				__builtin_trap();
			walk(kv->val, depth + 1);
		}
		break;
	}
	default:
		break;
	}
}

static int
same(const struct toml_value *a, const struct toml_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TOML_STRING:
		return a->u.str.len == b->u.str.len &&
		    memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
	case TOML_INTEGER:
		return a->u.integer == b->u.integer;
	case TOML_FLOAT:
		if (isnan(a->u.flt))
			return isnan(b->u.flt);
		return memcmp(&a->u.flt, &b->u.flt, sizeof(double)) == 0;
	case TOML_BOOL:
		return a->u.boolean == b->u.boolean;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		return a->u.dt.year == b->u.dt.year &&
		    a->u.dt.month == b->u.dt.month &&
		    a->u.dt.day == b->u.dt.day &&
		    a->u.dt.hour == b->u.dt.hour &&
		    a->u.dt.minute == b->u.dt.minute &&
		    a->u.dt.second == b->u.dt.second &&
		    a->u.dt.nanosecond == b->u.dt.nanosecond &&
		    a->u.dt.offset_minutes == b->u.dt.offset_minutes &&
		    a->u.dt.offset_z == b->u.dt.offset_z;
	case TOML_ARRAY:
		if (a->u.arr.len != b->u.arr.len)
			return 0;
		for (size_t i = 0; i < a->u.arr.len; i++)
			if (!same(a->u.arr.items[i], b->u.arr.items[i]))
				return 0;
		return 1;
	case TOML_TABLE: {
		const struct toml_table *ta = a->u.table, *tb = b->u.table;

		if (ta->len != tb->len)
			return 0;
		for (size_t i = 0; i < ta->len; i++)
			if (ta->kvs[i].keylen != tb->kvs[i].keylen ||
			    memcmp(ta->kvs[i].key, tb->kvs[i].key,
			    ta->kvs[i].keylen) != 0 ||
			    !same(ta->kvs[i].val, tb->kvs[i].val))
				return 0;
		return 1;
	}
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_error err;
	struct toml_table *t, *t2;
	struct toml_value root = { .type = TOML_TABLE, .line = 1, .col = 1 };
	struct toml_value root2 = root;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	t = toml_parse((const char *)data, size, &err);
	if (t == NULL) {
		if (memchr(err.msg, '\0', sizeof(err.msg)) == NULL ||
		    err.msg[0] == '\0' || err.line < 1 || err.col < 1)
			__builtin_trap();
		return 0;
	}
	root.u.table = t;
	walk(&root, 0);

	if ((fp = open_memstream(&text, &len)) == NULL)
		abort();
	for (size_t i = 0; i < t->len; i++) {
		toml_write_key(fp, t->kvs[i].key, t->kvs[i].keylen);
		fputs(" = ", fp);
		toml_write_value(fp, t->kvs[i].val);
		putc('\n', fp);
	}
	if (fclose(fp) != 0)
		abort();
	t2 = toml_parse(text, len, &err);
	if (t2 == NULL) {
		fprintf(stderr, "written text does not parse: %d:%d: %s\n%s\n",
		    err.line, err.col, err.msg, text);
		__builtin_trap();
	}
	root2.u.table = t2;
	if (!same(&root, &root2)) {
		fprintf(stderr, "written text parses differently:\n%s\n", text);
		__builtin_trap();
	}
	toml_free(t2);
	toml_free(t);
	free(text);
	return 0;
}
