/*
 * The local plugin's plugin_config: one table row per key (type, default,
 * help), read from Init's JSON object with the SDK's helpers, then
 * validated as a whole.  Also the sshd_config each instance gets, since
 * sshd_config_extra is validated against it.  plugin-local/README.md
 * documents every key.
 */
#ifndef FL_LOCAL_CONFIG_H
#define FL_LOCAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define LOCAL_NAME_MAX 64

struct local_config {
	char *name;			/* group name: [A-Za-z0-9._-], 1..64 */
	int64_t max_size;		/* 1..65536 */
	uint32_t addr_first;		/* address_range, host byte order */
	uint32_t addr_last;
	char *state_dir;		/* absolute */
	char *key_path;			/* NULL: none given */
	char *sshd_path;		/* absolute */
	int64_t boot_delay_ns;
	char *sshd_config_extra;	/* "" or lines, each ending in \n */
	bool delete_on_shutdown;
};

/*
 * Read and validate config into c (zeroed first).  0, or FL_ERR_INVAL
 * with "key: reason" (or "unknown key X in plugin_config") in err; c is
 * released on failure.
 */
int local_config_load(const json_t *config, struct local_config *c,
    char *err, size_t errlen);
void local_config_release(struct local_config *c);

/* "127.0.0.2-127.0.0.254" into host-order bounds within 127.0.0.0/8. */
int local_config_parse_range(const char *s, uint32_t *first, uint32_t *last,
    char *err, size_t errlen);

/* Dotted quad of a host-order address into buf (16 bytes). */
void local_addr_str(uint32_t addr, char buf[16]);

/*
 * The sshd_config text for an instance in dir listening on addr:port:
 * the plugin's own lines (listen address, host key, pid file,
 * authorized keys, stream-local forwarding), then the defaults that
 * extra does not set, then extra.  A heap string.
 */
char *local_sshd_config(const char *dir, const char *addr, int port,
    const char *extra);

/* The help text listing the keys (for --help). */
extern const char local_config_help[];

#endif
