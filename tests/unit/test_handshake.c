/* Unit tests of the plugin handshake line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "handshake.h"

static int
parse(const char *line, const char *acc, struct handshake *h, char *err)
{
	return handshake_parse(line, strlen(line), acc, h, err, 200);
}

static void
test_good(void **state)
{
	struct handshake h;
	char err[200], buf[256];

	(void)state;
	assert_int_equal(parse("1|1|unix|/tmp/p/plugin.sock|grpc|\n", NULL, &h,
	    err), 0);
	assert_int_equal(h.core, 1);
	assert_int_equal(h.app, 1);
	assert_string_equal(h.address, "/tmp/p/plugin.sock");
	assert_int_equal(handshake_format(&h, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1|1|unix|/tmp/p/plugin.sock|grpc|\n");
	/* No trailing empty field, CRLF, and a 7th (mux) field. */
	assert_int_equal(parse("1|1|unix|/s|grpc", NULL, &h, err), 0);
	assert_int_equal(parse("1|1|unix|/s|grpc|\r\n", NULL, &h, err), 0);
	assert_int_equal(parse("1|2|unix|/s|grpc||", "1,2", &h, err), 0);
	assert_int_equal(h.app, 2);
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		"", "hello world", "1|1|unix|/s", "2|1|unix|/s|grpc|",
		"1|9|unix|/s|grpc|", "1|x|unix|/s|grpc|", "1|1|tcp|/s|grpc|",
		"1|1|unix|rel/s|grpc|", "1|1|unix|/s|netrpc|",
		"1|1|unix|/s|grpc|CERTDATA", "1|1|unix|/s|grpc|||",
		"1|1|unix||grpc|", "01|1|unix|/s|grpc|x",
	};
	struct handshake h;
	char err[200], longpath[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i], NULL, &h, err), FL_ERR_PROTO);
		assert_true(err[0] != '\0');
	}
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "1|1|unix|/", 10);
	memcpy(longpath + 250, "|grpc|", 7);
	assert_int_equal(parse(longpath, NULL, &h, err), FL_ERR_PROTO);
	assert_non_null(strstr(err, "socket address"));
	assert_int_equal(handshake_parse("1|1|unix|/s\0|grpc|", 17, NULL, &h,
	    err, sizeof(err)), FL_ERR_PROTO);
}

static void
test_negotiate(void **state)
{
	(void)state;
	assert_int_equal(handshake_negotiate("1", 1), 1);
	assert_int_equal(handshake_negotiate("1,2,3", 2), 2);
	assert_int_equal(handshake_negotiate("3", 2), 0);
	assert_int_equal(handshake_negotiate("", 2), 0);
	assert_int_equal(handshake_negotiate(NULL, 2), 0);
	assert_int_equal(handshake_negotiate("1,,2", 2), 0);
	assert_int_equal(handshake_negotiate("one", 2), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_negotiate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
