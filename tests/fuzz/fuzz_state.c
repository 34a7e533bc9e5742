/*
 * libFuzzer target: the state storage file, as state_store_load() reads
 * it (state_store_parse on the raw bytes).  What parses must also survive
 * the trip back: format it, parse that, and get the same records.  And
 * the other way: the bytes as strings of a record, which our own writer
 * must either refuse or write so that the parser reads them back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state_store.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
rec_eq(const struct state_record *a, const struct state_record *b)
{
	return str_eq(a->id, b->id) && a->use_count == b->use_count &&
	    a->created_at == b->created_at && a->ready == b->ready &&
	    a->had_acquisitions == b->had_acquisitions &&
	    str_eq(a->host_key, b->host_key) &&
	    a->has_connect == b->has_connect && str_eq(a->os, b->os) &&
	    str_eq(a->arch, b->arch) && str_eq(a->protocol, b->protocol) &&
	    a->protocol_port == b->protocol_port &&
	    str_eq(a->username, b->username) &&
	    str_eq(a->password, b->password) && a->key_len == b->key_len &&
	    (a->key == NULL ? b->key == NULL :
	    b->key != NULL && memcmp(a->key, b->key, a->key_len + 1) == 0) &&
	    str_eq(a->internal_addr, b->internal_addr) &&
	    str_eq(a->external_addr, b->external_addr) &&
	    a->expires == b->expires;
}

/*
 * The writer's side: the bytes as an id, a password and a key.  What
 * state_store_format() accepts, the parser must read back the same.
 */
static void
write_side(const uint8_t *data, size_t size)
{
	struct state_record r = { 0 }, *back = NULL;
	size_t n = 0, len;
	char err[256], *buf;

	if (size > 8192)
		return;
	r.id = xstrndup((const char *)data, size);
	r.password = xstrndup((const char *)data, size);
	r.has_connect = 1;
	r.key = xmalloc(size + 1);
	memcpy(r.key, data, size);
	r.key[size] = '\0';
	r.key_len = size;
	if (state_store_format(&r, 1, &buf, &len) == 0) {
		if (state_store_parse(buf, len, &back, &n, err,
		    sizeof(err)) != 0 || n != 1 || !rec_eq(&r, &back[0]))
			abort();
		freezero(buf, len);
		state_store_records_free(back, n);
	}
	state_store_record_release(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_record *r1 = NULL, *r2 = NULL;
	size_t n1 = 0, n2 = 0, len;
	char err[256], *buf;
	int rc;

	write_side(data, size);
	rc = state_store_parse((const char *)data, size, &r1, &n1, err,
	    sizeof(err));
	if (rc != 0) {
		if (r1 != NULL || n1 != 0 || err[0] == '\0')
			abort();
		return 0;
	}
	/* Anything accepted can be written back, and reads the same. */
	if (state_store_format(r1, n1, &buf, &len) != 0)
		abort();
	if (state_store_parse(buf, len, &r2, &n2, err, sizeof(err)) != 0 ||
	    n2 != n1)
		abort();
	for (size_t i = 0; i < n1; i++)
		if (!rec_eq(&r1[i], &r2[i]))
			abort();
	freezero(buf, len);
	state_store_records_free(r1, n1);
	state_store_records_free(r2, n2);
	return 0;
}
