/* libFuzzer target: the plugin handshake line (a plugin's stdout). */
#include <stddef.h>
#include <stdint.h>

#include "handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct handshake h;
	char err[200], buf[HANDSHAKE_LINE_MAX + 1];

	if (handshake_parse((const char *)data, size, "1,2", &h, err,
	    sizeof(err)) == 0)
		(void)handshake_format(&h, buf, sizeof(buf));
	return 0;
}
