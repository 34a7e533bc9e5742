/*
 * Unit tests for fleeting-plugin-local's pure parts: plugin_config
 * (defaults, every key's checks, unknown keys), address ranges, and the
 * sshd_config an instance gets with and without sshd_config_extra.  The
 * instances themselves (sshd processes) are tested by
 * tests/integration/plugin_local.sh.
 *
 * The plugin's sources are not in a library (the Makefile links each
 * plugin-NAME/ folder into its program only), so the file under test is
 * compiled into this program directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../plugin-local/local_config.c"

/* Load JSON text; 0 or the error with its message in err. */
static int
load(const char *text, struct local_config *c, char *err, size_t errlen)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(j);
	err[0] = '\0';
	rc = local_config_load(j, c, err, errlen);
	json_decref(j);
	return rc;
}

static void
expect_error(const char *text, const char *want)
{
	struct local_config c;
	char err[512];

	if (load(text, &c, err, sizeof(err)) == 0) {
		local_config_release(&c);
		fail_msg("accepted: %s", text);
	}
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, want);
}

static void
test_defaults(void **state)
{
	struct local_config c;
	char err[512], want[256];

	(void)state;
	assert_int_equal(load("{}", &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "local");
	assert_int_equal(c.max_size, 10);
	assert_int_equal(c.addr_first, 0x7f000002u);
	assert_int_equal(c.addr_last, 0x7f0000feu);
	if (geteuid() == 0)
		(void)snprintf(want, sizeof(want),
		    "/run/fleeting-plugin-local/local");
	else
		(void)snprintf(want, sizeof(want),
		    "/fleeting-plugin-local-%u/local", (unsigned)geteuid());
	assert_non_null(strstr(c.state_dir, want));
	assert_null(c.key_path);
	assert_string_equal(c.sshd_path, "/usr/sbin/sshd");
	assert_int_equal(c.boot_delay_ns, 0);
	assert_string_equal(c.sshd_config_extra, "");
	assert_false(c.delete_on_shutdown);
	local_config_release(&c);
}

static void
test_all_keys(void **state)
{
	struct local_config c;
	char err[512];

	(void)state;
	assert_int_equal(load("{\"name\":\"demo-1.a_b\",\"max_size\":2,"
	    "\"address_range\":\"127.0.1.10-127.0.1.20\","
	    "\"state_dir\":\"/tmp/x/state\",\"key_path\":\"/tmp/x/id\","
	    "\"sshd_path\":\"/usr/sbin/sshd\",\"boot_delay\":\"1m30s\","
	    "\"sshd_config_extra\":[\"ClientAliveInterval 10\",\"# c\"],"
	    "\"delete_on_shutdown\":true}", &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "demo-1.a_b");
	assert_int_equal(c.max_size, 2);
	assert_int_equal(c.addr_first, 0x7f00010au);
	assert_int_equal(c.addr_last, 0x7f000114u);
	assert_string_equal(c.state_dir, "/tmp/x/state");
	assert_string_equal(c.key_path, "/tmp/x/id");
	assert_int_equal(c.boot_delay_ns, INT64_C(90000000000));
	assert_string_equal(c.sshd_config_extra,
	    "ClientAliveInterval 10\n# c\n");
	assert_true(c.delete_on_shutdown);
	local_config_release(&c);

	/* A string of lines gets its final newline. */
	assert_int_equal(load("{\"sshd_config_extra\":\"A b\\nC d\","
	    "\"boot_delay\":2000000000}", &c, err, sizeof(err)), 0);
	assert_string_equal(c.sshd_config_extra, "A b\nC d\n");
	assert_int_equal(c.boot_delay_ns, INT64_C(2000000000));
	local_config_release(&c);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("{\"colour\":\"red\"}",
	    "unknown key colour in plugin_config");
	expect_error("{\"name\":\"\"}", "name:");
	expect_error("{\"name\":\"a/b\"}", "name: only letters");
	expect_error("{\"name\":\"-x\"}", "name:");
	expect_error("{\"name\":7}", "name: want a string");
	expect_error("{\"max_size\":0}", "max_size: 0 is out of range");
	expect_error("{\"max_size\":\"2\"}", "max_size: want an integer");
	expect_error("{\"address_range\":\"10.0.0.2-10.0.0.9\"}",
	    "only addresses in 127.0.0.0/8");
	expect_error("{\"address_range\":\"127.0.0.9-127.0.0.2\"}",
	    "first address after the last");
	expect_error("{\"address_range\":\"127.0.0.0-127.0.0.9\"}",
	    "127.0.0.0/8");
	expect_error("{\"address_range\":\"127.0.0.2\"}", "want FIRST-LAST");
	expect_error("{\"address_range\":\"a-b\"}", "not two IPv4 addresses");
	expect_error("{\"state_dir\":\"relative/dir\"}",
	    "state_dir: relative/dir is not an absolute path");
	expect_error("{\"state_dir\":\"/tmp/with space\"}", "state_dir:");
	expect_error("{\"state_dir\":\"/tmp/a#b\"}", "state_dir:");
	expect_error("{\"key_path\":\"id_ed25519\"}", "key_path:");
	expect_error("{\"sshd_path\":\"/nonexistent/sshd\"}",
	    "sshd_path: /nonexistent/sshd:");
	expect_error("{\"boot_delay\":\"soon\"}", "boot_delay:");
	expect_error("{\"boot_delay\":\"-1s\"}", "boot_delay: negative");
	expect_error("{\"delete_on_shutdown\":1}",
	    "delete_on_shutdown: want true or false");
	expect_error("{\"sshd_config_extra\":\"ListenAddress 0.0.0.0\"}",
	    "sshd_config_extra: ListenAddress is set by the plugin");
	expect_error("{\"sshd_config_extra\":[\"  port=2222\"]}",
	    "Port is set by the plugin");
	expect_error("{\"sshd_config_extra\":[\"AllowStreamLocalForwarding "
	    "no\"]}", "AllowStreamLocalForwarding is set by the plugin");
	expect_error("{\"sshd_config_extra\":[\"A\\nB\"]}", "one line each");
	expect_error("{\"sshd_config_extra\":[1]}", "is not a string");
	expect_error("{\"sshd_config_extra\":{}}", "want a string or a list");
}

static void
test_ranges(void **state)
{
	uint32_t a, b;
	char err[256], s[16];

	(void)state;
	assert_int_equal(local_config_parse_range("127.0.0.2-127.0.0.2", &a,
	    &b, err, sizeof(err)), 0);
	assert_int_equal(a, b);
	assert_int_equal(local_config_parse_range("127.1.2.3-127.255.255.254",
	    &a, &b, err, sizeof(err)), 0);
	local_addr_str(a, s);
	assert_string_equal(s, "127.1.2.3");
	local_addr_str(b, s);
	assert_string_equal(s, "127.255.255.254");
	assert_int_equal(local_config_parse_range("127.0.0.2-127.255.255.255",
	    &a, &b, err, sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(local_config_parse_range(
	    "127.0.0.2-127.0.0.2000000000000000000000000000", &a, &b, err,
	    sizeof(err)), FL_ERR_INVAL);
}

static void
test_sshd_config(void **state)
{
	char *c;

	(void)state;
	c = local_sshd_config("/s/instances/demo-1", "127.0.0.3", 22, "");
	assert_non_null(strstr(c, "ListenAddress 127.0.0.3:22\n"));
	assert_non_null(strstr(c,
	    "HostKey /s/instances/demo-1/ssh_host_ed25519_key\n"));
	assert_non_null(strstr(c, "PidFile /s/instances/demo-1/sshd.pid\n"));
	assert_non_null(strstr(c,
	    "AuthorizedKeysFile /s/instances/demo-1/authorized_keys\n"));
	assert_non_null(strstr(c, "AllowStreamLocalForwarding yes\n"));
	assert_non_null(strstr(c, "PermitRootLogin prohibit-password\n"));
	assert_non_null(strstr(c, "LogLevel VERBOSE\n"));
	assert_null(strstr(c, "sshd_config_extra"));
	free(c);

	/* Extra lines replace a default (first value wins in sshd); a
	 * keyword set only inside a Match block does not. */
	c = local_sshd_config("/s/i/x", "127.0.0.4", 40000,
	    "loglevel DEBUG3\nMatch User nobody\n  PermitRootLogin no\n");
	assert_non_null(strstr(c, "ListenAddress 127.0.0.4:40000\n"));
	assert_null(strstr(c, "LogLevel VERBOSE"));
	assert_non_null(strstr(c, "PermitRootLogin prohibit-password\n"));
	assert_non_null(strstr(c, "# sshd_config_extra\nloglevel DEBUG3\n"
	    "Match User nobody\n  PermitRootLogin no\n"));
	/* The extra lines come last. */
	assert_true(strstr(c, "Match User") > strstr(c, "Subsystem sftp"));
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_sshd_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
