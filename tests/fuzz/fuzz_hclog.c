/*
 * libFuzzer target: plugin output (a plugin's stderr), as the plugin host
 * reads it: bytes cut into lines by hclog_linebuf (small max, to exercise
 * the splitting), each line parsed by hclog_parse with panic mode on.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hclog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(void *arg, const char *line, size_t len)
{
	struct hclog_state *st = arg;
	struct hclog_entry e;

	hclog_parse(st, line, len, &e);
	/* Touch everything the host would log. */
	(void)strlen(e.message);
	for (size_t i = 0; i < e.nfields; i++)
		(void)(strlen(e.fields[i].key) + strlen(e.fields[i].value));
	hclog_entry_release(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hclog_linebuf lb;
	struct hclog_state st = { 0 };
	size_t half = size / 2;

	hclog_linebuf_init(&lb, 512);
	hclog_linebuf_feed(&lb, data, half, one_line, &st);
	hclog_linebuf_feed(&lb, data + half, size - half, one_line, &st);
	hclog_linebuf_flush(&lb, one_line, &st);
	hclog_linebuf_release(&lb);
	return 0;
}
