/*
 * Unit tests for fleeting-plugin-aws's pure parts outside the wire:
 * lifecycle states mapped to instance states, EC2 architecture and
 * platform in Go's names, plugin_config (the official keys, unknown keys
 * refused, checks), and the ephemeral key pair's OpenSSH formats (a fixed
 * key checked byte for byte against what ssh-keygen derives).  The group's
 * calls on the wire are tested by tests/integration/plugin_aws.sh (strict
 * fake) and plugin_aws_moto.sh (moto).
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

#include "../../plugin-aws/aws_config.c"
#include "../../plugin-aws/aws_sshkey.c"
/* aws_group.c's pure functions, without its cloud calls' dependencies
 * linked: the whole plugin is compiled in. */
#include "../../plugin-aws/aws_client.c"
#include "../../plugin-aws/aws_creds.c"
#include "../../plugin-aws/aws_group.c"
#include "../../plugin-aws/aws_http.c"
#include "../../plugin-aws/aws_xml.c"

static void
test_lifecycle(void **state)
{
	static const struct {
		const char *s;
		enum plugin_state want;
	} cases[] = {
		{ "InService", PLUGIN_STATE_RUNNING },
		{ "Pending", PLUGIN_STATE_CREATING },
		{ "Pending:Wait", PLUGIN_STATE_CREATING },
		{ "Pending:Proceed", PLUGIN_STATE_CREATING },
		{ "Quarantined", PLUGIN_STATE_CREATING },
		{ "Standby", PLUGIN_STATE_CREATING },
		{ "EnteringStandby", PLUGIN_STATE_CREATING },
		{ "Detaching", PLUGIN_STATE_CREATING },
		{ "Warmed:Pending", PLUGIN_STATE_CREATING },
		{ "Terminating", PLUGIN_STATE_DELETING },
		{ "Terminating:Wait", PLUGIN_STATE_DELETING },
		{ "Terminating:Proceed", PLUGIN_STATE_DELETING },
		{ "Terminated", PLUGIN_STATE_DELETING },
		{ "Warmed:Terminating", PLUGIN_STATE_DELETING },
		{ "Warmed:Terminated", PLUGIN_STATE_DELETING },
		{ NULL, PLUGIN_STATE_CREATING },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(aws_lifecycle_state(cases[i].s), cases[i].want);
}

static void
test_arch_os(void **state)
{
	(void)state;
	assert_string_equal(aws_go_arch("x86_64"), "amd64");
	assert_string_equal(aws_go_arch("x86_64_mac"), "amd64");
	assert_string_equal(aws_go_arch("arm64"), "arm64");
	assert_string_equal(aws_go_arch("arm64_mac"), "arm64");
	assert_string_equal(aws_go_arch("i386"), "386");
	assert_null(aws_go_arch("sparc"));
	assert_null(aws_go_arch(NULL));
	assert_string_equal(aws_os_of(NULL, "x86_64"), "linux");
	assert_string_equal(aws_os_of("windows", "x86_64"), "windows");
	assert_string_equal(aws_os_of("Windows", NULL), "windows");
	assert_string_equal(aws_os_of(NULL, "arm64_mac"), "darwin");
}

static int
load(const char *text, struct aws_config *c, char *err, size_t errlen)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(j);
	err[0] = '\0';
	rc = aws_config_load(j, c, err, errlen);
	json_decref(j);
	return rc;
}

static void
test_config(void **state)
{
	struct aws_config c;
	char err[256];

	(void)state;
	assert_int_equal(load("{\"name\": \"asg\", \"profile\": \"ci\", "
	    "\"config_file\": \"/c\", \"credentials_file\": \"/k\", "
	    "\"region\": \"eu-west-1\"}", &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "asg");
	assert_string_equal(c.profile, "ci");
	assert_string_equal(c.config_file, "/c");
	assert_string_equal(c.credentials_file, "/k");
	assert_string_equal(c.region, "eu-west-1");
	aws_config_release(&c);

	assert_int_equal(load("{\"name\": \"asg\"}", &c, err, sizeof(err)), 0);
	assert_null(c.profile);
	assert_null(c.region);
	aws_config_release(&c);

	/* "" is unset, as in the official plugin's Go struct */
	assert_int_equal(load("{\"name\": \"asg\", \"profile\": \"\", "
	    "\"region\": \"\", \"config_file\": \"\"}", &c, err,
	    sizeof(err)), 0);
	assert_null(c.profile);
	assert_null(c.region);
	assert_null(c.config_file);
	aws_config_release(&c);

	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{}", "name: required" },
		{ "{\"name\": \"\"}", "name: empty" },
		{ "{\"name\": 3}", "name" },
		{ "{\"name\": \"a\", \"max_size\": 3}",
		  "unknown key max_size in plugin_config" },
		{ "{\"name\": \"a\", \"region\": \"EU West\"}", "region: EU West" },
		{ "{\"name\": \"a\\nb\"}", "name: control character" },
		{ "{\"name\": \"a\", \"profile\": \"a\\tb\"}",
		  "profile: control character" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(bad[i].json, &c, err, sizeof(err)),
		    FL_ERR_INVAL);
		assert_non_null(strstr(err, bad[i].want));
		assert_null(c.name);
	}
}

/* RFC 8032 test vector 1's key pair. */
static const uint8_t seed1[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4,
	0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
	0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60
};
static const uint8_t pub1[32] = {
	0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3,
	0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25,
	0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a
};

/* ssh-keygen -y of a private key text: the public line, or NULL. */
static char *
keygen_y(const char *priv, size_t len)
{
	char path[] = "/tmp/test_aws_key.XXXXXX", cmd[128], line[512];
	int fd = mkstemp(path);
	FILE *p;
	char *out = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, priv, len), (ssize_t)len);
	close(fd);
	(void)snprintf(cmd, sizeof(cmd), "ssh-keygen -y -f %s 2>/dev/null", path);
	p = popen(cmd, "r");
	if (p != NULL && fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		out = xstrdup(line);
	}
	if (p != NULL)
		pclose(p);
	unlink(path);
	return out;
}

static void
test_sshkey_format(void **state)
{
	char *priv, *pub, *derived;
	size_t len;

	(void)state;
	aws_sshkey_format(seed1, pub1, 0x01020304, "test", &priv, &len, &pub);
	assert_int_equal(strlen(priv), len);
	assert_true(strncmp(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36)
	    == 0);
	assert_non_null(strstr(priv, "\n-----END OPENSSH PRIVATE KEY-----\n"));
	assert_string_equal(pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQ"
	    "q31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea test");
	assert_true(strlen(pub) >= 80);	/* SendSSHPublicKey's minimum */
	derived = keygen_y(priv, len);
	if (access("/usr/bin/ssh-keygen", X_OK) == 0) {
		assert_non_null(derived);
		assert_true(strncmp(derived, pub, strlen(pub) - 5) == 0);
	}
	free(derived);
	freezero(priv, len);
	free(pub);
}

static void
test_sshkey_new(void **state)
{
	char *priv1, *pub1s, *priv2, *pub2s;
	size_t l1, l2;

	(void)state;
	assert_int_equal(aws_sshkey_new("c", &priv1, &l1, &pub1s), 0);
	assert_int_equal(aws_sshkey_new("c", &priv2, &l2, &pub2s), 0);
	assert_string_not_equal(pub1s, pub2s);
	assert_true(strncmp(pub1s, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 37)
	    == 0);
	if (access("/usr/bin/ssh-keygen", X_OK) == 0) {
		char *d = keygen_y(priv1, l1);
		assert_non_null(d);
		assert_true(strncmp(d, pub1s, strlen(pub1s) - 2) == 0);
		free(d);
	}
	freezero(priv1, l1);
	freezero(priv2, l2);
	free(pub1s);
	free(pub2s);
}

static void
test_idset(void **state)
{
	struct idset s = { 0 };
	char id[32];

	(void)state;
	for (int i = 0; i < 100; i++) {
		(void)snprintf(id, sizeof(id), "i-%d", i % 50);
		idset_add(&s, id);
	}
	assert_int_equal(s.n, 50);
	assert_true(idset_has(&s, "i-49"));
	assert_false(idset_has(&s, "i-50"));
	idset_release(&s);
	idset_release(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_arch_os),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_sshkey_format),
		cmocka_unit_test(test_sshkey_new),
		cmocka_unit_test(test_idset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
