/*
 * The plugin launch handshake, shared by the manager (which starts plugins)
 * and the plugin SDK (which answers), after HashiCorp go-plugin:
 *
 *   1. The manager starts the plugin with, in its environment,
 *        FLOTILLA_PLUGIN_MAGIC_COOKIE=<PLUGIN_COOKIE_VALUE>
 *        PLUGIN_PROTOCOL_VERSIONS=1[,2...]   application versions it speaks
 *        PLUGIN_UNIX_SOCKET_DIR=<private directory for the socket>
 *   2. The plugin refuses to run without the cookie (a message for the
 *      person who ran it by hand, exit 1), picks the highest version both
 *      speak, listens on a unix socket in that directory, and prints ONE line
 *      on stdout:
 *        CORE|APP|unix|/path/to/socket|grpc|
 *      e.g. "1|1|unix|/run/flotilla/plugins/aws.1234/plugin.sock|grpc|".
 *   3. The manager connects with gRPC to that socket.
 *
 * GitLab's fleeting cookie is not published; ours has its own name so that a
 * flotilla plugin is never mistaken for a GitLab one (proto/README.md).
 */
#ifndef FL_HANDSHAKE_H
#define FL_HANDSHAKE_H

#include <stddef.h>

#define PLUGIN_COOKIE_KEY	"FLOTILLA_PLUGIN_MAGIC_COOKIE"
#define PLUGIN_COOKIE_VALUE	"7c1e3f0a9b5d4e2f8a6c1b3d5e7f9a0b-flotilla-fleeting"
#define PLUGIN_VERSIONS_ENV	"PLUGIN_PROTOCOL_VERSIONS"
#define PLUGIN_SOCKET_DIR_ENV	"PLUGIN_UNIX_SOCKET_DIR"
#define PLUGIN_CORE_VERSION	1	/* go-plugin's core protocol */
#define PLUGIN_APP_VERSION	1	/* the InstanceGroup service of proto/ */
#define HANDSHAKE_LINE_MAX	4096	/* longer is a protocol error */

struct handshake {
	int core;		/* must be PLUGIN_CORE_VERSION */
	int app;		/* negotiated application version */
	char network[8];	/* "unix" */
	char address[108];	/* the socket path (sun_path's size) */
	char protocol[8];	/* "grpc" */
};

/*
 * Parse the handshake line (without or with its trailing newline).
 * Returns 0, or FL_ERR_PROTO with a reason in err: wrong field count,
 * core version, network other than unix, relative or oversize path,
 * protocol other than grpc, or an application version not in accepted
 * (a comma list such as "1,2"; NULL accepts PLUGIN_APP_VERSION only).
 */
int handshake_parse(const char *line, size_t len, const char *accepted,
    struct handshake *out, char *err, size_t errlen);

/* The line a plugin prints, with its newline.  0 or FL_ERR_RANGE. */
int handshake_format(const struct handshake *h, char *buf, size_t len);

/*
 * A plugin's side of version negotiation: the highest version in the
 * manager's comma list (PLUGIN_PROTOCOL_VERSIONS) that the plugin also
 * speaks (1..max_supported).  Returns it, or 0 when there is none or the
 * list is malformed.
 */
int handshake_negotiate(const char *versions, int max_supported);

#endif
