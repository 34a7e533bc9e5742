/*
 * plugin_config of fleeting-plugin-local (see local_config.h and
 * plugin-local/README.md), and the sshd_config it implies.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "err.h"
#include "local_config.h"
#include "plugin_sdk.h"
#include "xmalloc.h"

#define STATE_DIR_MAX 200
#define DEFAULT_RANGE "127.0.0.2-127.0.0.254"
#define DEFAULT_SSHD "/usr/sbin/sshd"

static const char *const known_keys[] = {
	"name", "max_size", "address_range", "state_dir", "key_path",
	"sshd_path", "boot_delay", "sshd_config_extra", "delete_on_shutdown",
	NULL
};

const char local_config_help[] =
    "plugin_config keys (all optional):\n"
    "  name                group name, in ids and the state directory "
    "(\"local\")\n"
    "  max_size            most instances (10)\n"
    "  address_range       loopback addresses to use "
    "(\"" DEFAULT_RANGE "\")\n"
    "  state_dir           where instances are recorded "
    "(/run/fleeting-plugin-local/NAME as root,\n"
    "                      else $TMPDIR/fleeting-plugin-local-UID/NAME)\n"
    "  key_path            private key whose public key instances trust "
    "(generated if unset)\n"
    "  sshd_path           OpenSSH server (\"" DEFAULT_SSHD "\")\n"
    "  boot_delay          time instances stay \"creating\" before sshd "
    "starts (\"0s\")\n"
    "  sshd_config_extra   more sshd_config lines (a string or a list)\n"
    "  delete_on_shutdown  Shutdown deletes every instance (false)\n";

/* sshd_config keywords the plugin sets and extra lines may not. */
static const char *const owned_keywords[] = {
	"ListenAddress", "Port", "HostKey", "PidFile", "AuthorizedKeysFile",
	"AllowStreamLocalForwarding", "PubkeyAuthentication", NULL
};

/* Defaults, each replaced when the extra lines set the keyword. */
static const char *const default_lines[] = {
	"PermitRootLogin prohibit-password",
	"PasswordAuthentication no",
	"KbdInteractiveAuthentication no",
	"UsePAM no",
	"StrictModes no",
	"AllowTcpForwarding yes",
	"StreamLocalBindUnlink yes",
	"X11Forwarding no",
	"PrintMotd no",
	"UseDNS no",
	"LogLevel VERBOSE",
	"MaxStartups 100:30:200",
	"MaxSessions 100",
	"Subsystem sftp internal-sftp",
	NULL
};

void
local_addr_str(uint32_t addr, char buf[16])
{
	(void)snprintf(buf, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255,
	    (addr >> 8) & 255, addr & 255);
}

static int
parse_addr(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

int
local_config_parse_range(const char *s, uint32_t *first, uint32_t *last,
    char *err, size_t errlen)
{
	char a[32], b[32];
	const char *dash = strchr(s, '-');
	size_t la;

	if (dash == NULL || (la = (size_t)(dash - s)) >= sizeof(a) ||
	    strlen(dash + 1) >= sizeof(b)) {
		(void)snprintf(err, errlen, "address_range: want FIRST-LAST, "
		    "such as \"" DEFAULT_RANGE "\"");
		return FL_ERR_INVAL;
	}
	memcpy(a, s, la);
	a[la] = '\0';
	memcpy(b, dash + 1, strlen(dash + 1) + 1);
	if (parse_addr(a, first) != 0 || parse_addr(b, last) != 0) {
		(void)snprintf(err, errlen, "address_range: \"%.40s\" is not "
		    "two IPv4 addresses", s);
		return FL_ERR_INVAL;
	}
	/* Loopback only, neither the network nor the broadcast address. */
	if ((*first >> 24) != 127 || (*last >> 24) != 127 ||
	    *first == 0x7f000000u || *last == 0x7fffffffu) {
		(void)snprintf(err, errlen, "address_range: %s: only addresses "
		    "in 127.0.0.0/8 (but 127.0.0.0 and 127.255.255.255)", s);
		return FL_ERR_INVAL;
	}
	if (*first > *last) {
		(void)snprintf(err, errlen, "address_range: %s: first address "
		    "after the last", s);
		return FL_ERR_INVAL;
	}
	return 0;
}

/* The keyword of an sshd_config line; "" for blank and comment lines. */
static void
line_keyword(const char *line, size_t n, char *kw, size_t kwlen)
{
	size_t i = 0, k = 0;

	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < n && line[i] == '#')
		i = n;
	while (i < n && line[i] != ' ' && line[i] != '\t' && line[i] != '=' &&
	    k + 1 < kwlen)
		kw[k++] = line[i++];
	kw[k] = '\0';
}

/* Does extra set keyword kw before its first Match block? */
static bool
extra_sets(const char *extra, const char *kw)
{
	const char *p = extra;
	char k[64];

	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

		line_keyword(p, n, k, sizeof(k));
		if (strcasecmp(k, "Match") == 0)
			return false;
		if (strcasecmp(k, kw) == 0)
			return true;
		p += n + (e != NULL);
	}
	return false;
}

/* Check extra's lines; 0 or FL_ERR_INVAL. */
static int
check_extra(const char *extra, char *err, size_t errlen)
{
	const char *p = extra;
	char k[64];

	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

		if (memchr(p, '\r', n) != NULL) {
			(void)snprintf(err, errlen, "sshd_config_extra: carriage "
			    "return in a line");
			return FL_ERR_INVAL;
		}
		line_keyword(p, n, k, sizeof(k));
		for (size_t i = 0; owned_keywords[i] != NULL; i++) {
			if (strcasecmp(k, owned_keywords[i]) == 0) {
				(void)snprintf(err, errlen, "sshd_config_extra: "
				    "%s is set by the plugin", owned_keywords[i]);
				return FL_ERR_INVAL;
			}
		}
		p += n + (e != NULL);
	}
	return 0;
}

/* sshd_config_extra: a string of lines or a list of one-line strings. */
static int
load_extra(const json_t *config, char **out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(config, "sshd_config_extra");
	struct sbuf sb;
	size_t i;
	json_t *el;

	sbuf_init(&sb);
	if (v == NULL || json_is_null(v)) {
		/* nothing */
	} else if (json_is_string(v)) {
		if (strlen(json_string_value(v)) != json_string_length(v))
			goto nul;
		sbuf_adds(&sb, json_string_value(v));
		if (sb.len > 0 && sb.buf[sb.len - 1] != '\n')
			sbuf_addch(&sb, '\n');
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, el) {
			if (!json_is_string(el)) {
				(void)snprintf(err, errlen, "sshd_config_extra: "
				    "item %zu is not a string", i);
				sbuf_release(&sb);
				return FL_ERR_INVAL;
			}
			if (strlen(json_string_value(el)) !=
			    json_string_length(el))
				goto nul;
			if (strchr(json_string_value(el), '\n') != NULL) {
				(void)snprintf(err, errlen, "sshd_config_extra: "
				    "item %zu has a newline (one line each)",
				    i);
				sbuf_release(&sb);
				return FL_ERR_INVAL;
			}
			sbuf_adds(&sb, json_string_value(el));
			sbuf_addch(&sb, '\n');
		}
	} else {
		(void)snprintf(err, errlen, "sshd_config_extra: want a string "
		    "or a list of strings");
		sbuf_release(&sb);
		return FL_ERR_INVAL;
	}
	if (check_extra(sb.buf, err, errlen) != 0) {
		sbuf_release(&sb);
		return FL_ERR_INVAL;
	}
	*out = sbuf_detach(&sb, NULL);
	return 0;
nul:
	(void)snprintf(err, errlen, "sshd_config_extra: NUL byte");
	sbuf_release(&sb);
	return FL_ERR_INVAL;
}

/* Paths go into sshd_config unquoted: no blanks, quotes or controls. */
static int
check_path(const char *key, const char *path, char *err, size_t errlen)
{
	if (path[0] != '/') {
		(void)snprintf(err, errlen, "%s: %s is not an absolute path",
		    key, path);
		return FL_ERR_INVAL;
	}
	if (strlen(path) > STATE_DIR_MAX) {
		(void)snprintf(err, errlen, "%s: longer than %d bytes", key,
		    STATE_DIR_MAX);
		return FL_ERR_INVAL;
	}
	for (const char *p = path; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\'' ||
		    *p == '#' || *p == '\\' || *p == 0x7f) {
			(void)snprintf(err, errlen, "%s: blanks, quotes, '#' "
			    "and control characters are not allowed", key);
			return FL_ERR_INVAL;
		}
	}
	return 0;
}

static int
check_name(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (n == 0 || n > LOCAL_NAME_MAX || name[0] == '.' || name[0] == '-') {
		(void)snprintf(err, errlen, "name: want 1 to %d characters, "
		    "not starting with '.' or '-'", LOCAL_NAME_MAX);
		return FL_ERR_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-')) {
			(void)snprintf(err, errlen, "name: only letters, "
			    "digits, '.', '_' and '-'");
			return FL_ERR_INVAL;
		}
	}
	return 0;
}

static char *
default_state_dir(const char *name)
{
	const char *tmp;

	if (geteuid() == 0)
		return xasprintf("/run/fleeting-plugin-local/%s", name);
	tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] != '/')
		tmp = "/tmp";
	return xasprintf("%s/fleeting-plugin-local-%u/%s", tmp,
	    (unsigned)geteuid(), name);
}

int
local_config_load(const json_t *config, struct local_config *c, char *err,
    size_t errlen)
{
	char *range = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = plugin_config_check_keys(config, known_keys, err, errlen);
	if (rc == 0)
		rc = plugin_config_string(config, "name", "local", &c->name,
		    err, errlen);
	if (rc == 0)
		rc = check_name(c->name, err, errlen);
	if (rc == 0)
		rc = plugin_config_int(config, "max_size", 10, 1, 65536,
		    &c->max_size, err, errlen);
	if (rc == 0)
		rc = plugin_config_string(config, "address_range",
		    DEFAULT_RANGE, &range, err, errlen);
	if (rc == 0)
		rc = local_config_parse_range(range, &c->addr_first,
		    &c->addr_last, err, errlen);
	if (rc == 0)
		rc = plugin_config_string(config, "state_dir", NULL,
		    &c->state_dir, err, errlen);
	if (rc == 0 && c->state_dir == NULL)
		c->state_dir = default_state_dir(c->name);
	if (rc == 0)
		rc = check_path("state_dir", c->state_dir, err, errlen);
	if (rc == 0)
		rc = plugin_config_string(config, "key_path", NULL,
		    &c->key_path, err, errlen);
	if (rc == 0 && c->key_path != NULL && c->key_path[0] != '/') {
		(void)snprintf(err, errlen, "key_path: %s is not an absolute "
		    "path", c->key_path);
		rc = FL_ERR_INVAL;
	}
	if (rc == 0)
		rc = plugin_config_string(config, "sshd_path", DEFAULT_SSHD,
		    &c->sshd_path, err, errlen);
	if (rc == 0)
		rc = check_path("sshd_path", c->sshd_path, err, errlen);
	if (rc == 0 && access(c->sshd_path, X_OK) != 0) {
		(void)snprintf(err, errlen, "sshd_path: %s: %s", c->sshd_path,
		    strerror(errno));
		rc = FL_ERR_INVAL;
	}
	if (rc == 0)
		rc = plugin_config_duration(config, "boot_delay", 0,
		    &c->boot_delay_ns, err, errlen);
	if (rc == 0)
		rc = load_extra(config, &c->sshd_config_extra, err, errlen);
	if (rc == 0)
		rc = plugin_config_bool(config, "delete_on_shutdown", false,
		    &c->delete_on_shutdown, err, errlen);
	free(range);
	if (rc != 0)
		local_config_release(c);
	return rc;
}

void
local_config_release(struct local_config *c)
{
	free(c->name);
	free(c->state_dir);
	free(c->key_path);
	free(c->sshd_path);
	free(c->sshd_config_extra);
	memset(c, 0, sizeof(*c));
}

char *
local_sshd_config(const char *dir, const char *addr, int port,
    const char *extra)
{
	struct sbuf sb;
	char kw[64];

	sbuf_init(&sb);
	sbuf_addf(&sb, "# fleeting-plugin-local instance %s:%d\n", addr, port);
	sbuf_addf(&sb, "ListenAddress %s:%d\n", addr, port);
	sbuf_addf(&sb, "HostKey %s/ssh_host_ed25519_key\n", dir);
	sbuf_addf(&sb, "PidFile %s/sshd.pid\n", dir);
	sbuf_addf(&sb, "AuthorizedKeysFile %s/authorized_keys\n", dir);
	/* The connector reaches the Docker socket with direct-streamlocal. */
	sbuf_adds(&sb, "AllowStreamLocalForwarding yes\n");
	sbuf_adds(&sb, "PubkeyAuthentication yes\n");
	for (size_t i = 0; default_lines[i] != NULL; i++) {
		line_keyword(default_lines[i], strlen(default_lines[i]), kw,
		    sizeof(kw));
		if (extra == NULL || !extra_sets(extra, kw))
			sbuf_addf(&sb, "%s\n", default_lines[i]);
	}
	if (extra != NULL && extra[0] != '\0') {
		sbuf_adds(&sb, "# sshd_config_extra\n");
		sbuf_adds(&sb, extra);
	}
	return sbuf_detach(&sb, NULL);
}
