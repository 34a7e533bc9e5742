/*
 * The plugin SDK: everything a fleeting plugin written in C needs except
 * its cloud.  A plugin fills a struct plugin_ops with its callbacks and a
 * struct plugin_def with its name and version, and its main() returns
 * plugin_serve(&def, argc, argv).  The SDK does the rest, as HashiCorp
 * go-plugin and fleeting's plugin.Main do for Go plugins:
 *
 *   --version, -version  print name, version, revision, OS/arch; exit 0
 *   --help, -h           usage (and def->help); exit 0
 *   cookie               without PLUGIN_COOKIE_KEY=PLUGIN_COOKIE_VALUE in
 *                        the environment: a message for the person who ran
 *                        it by hand on stderr, exit 1
 *   version              PLUGIN_PROTOCOL_VERSIONS (unset: ours) must list
 *                        PLUGIN_APP_VERSION, else an error and exit 1
 *   socket               $PLUGIN_UNIX_SOCKET_DIR/plugin<random>, or one in
 *                        a private mkdtemp directory (0700) when unset
 *   gRPC                 flotilla.fleeting.v1.InstanceGroup (the ops),
 *                        grpc.health.v1.Health/Check ("" and "plugin" are
 *                        SERVING, other names NOT_FOUND) and
 *                        plugin.GRPCController/Shutdown (stop and exit 0);
 *                        messages up to PLUGIN_MAX_MSG
 *   handshake            one line on stdout ("1|1|unix|PATH|grpc|"),
 *                        flushed; then stdout is pointed at stderr so that
 *                        a stray printf cannot corrupt anything
 *   logging              hclog JSON lines on stderr (lib/log's
 *                        LOG_FORMAT_HCLOG, @module = def->name); level info
 *                        or $PLUGIN_LOG_LEVEL_ENV.  Plugins log with
 *                        log_info() & co. and fields.
 *   signals              SIGINT and SIGHUP ignored (the manager owns the
 *                        life cycle), SIGPIPE ignored, SIGTERM: stop
 *                        serving, ops->shutdown (unless it already ran),
 *                        ops->release, remove the socket, exit 0
 *
 * The meaning of each InstanceGroup method and its status codes are in
 * proto/fleeting.proto and proto/README.md.  The SDK unpacks and checks
 * every request (malformed or out-of-bounds: INVALID_ARGUMENT, without
 * calling the plugin), answers every InstanceGroup call made before a
 * successful Init with UNKNOWN "not initialised", and turns callback
 * results into statuses:
 *
 *   PLUGIN_OK          OK
 *   PLUGIN_FAILED      UNKNOWN, the message is err (fleeting's "the method
 *                      returned an error")
 *   PLUGIN_BAD_CONFIG  INVALID_ARGUMENT (Init rejecting plugin_config)
 *   PLUGIN_NOT_FOUND   NOT_FOUND (ConnectInfo, Heartbeat: no such id)
 *   PLUGIN_UNHEALTHY   FAILED_PRECONDITION (ConnectInfo, Heartbeat: the
 *                      instance exists but is not usable)
 *
 * Threads.  Callbacks run on the gRPC server's pool threads
 * (def->threads, default 8), several at once: everything but init may run
 * concurrently with everything but init, so a plugin locks its own state.
 * Init runs alone: no other callback runs while it does, and none before
 * it succeeded.  A callback may block (cloud calls), but the manager's
 * deadlines (proto/README.md) bound what is useful.
 *
 * Memory.  Strings a callback receives are valid during the call.  What a
 * callback puts into an out structure is heap memory (xstrdup) that the
 * SDK frees; secrets (password, key) are wiped before freeing.
 */
#ifndef FL_PLUGIN_SDK_H
#define FL_PLUGIN_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest request or response message. */
#define PLUGIN_MAX_MSG		(16u * 1024 * 1024)
/* Longest instance id in bytes (a longer one is INVALID_ARGUMENT). */
#define PLUGIN_ID_MAX		255
/* Most ids in one Decrease; largest delta of one Increase. */
#define PLUGIN_MAX_IDS		10000
#define PLUGIN_MAX_DELTA	10000
/* Size of the err buffers callbacks get (as lib/rpc's status message). */
#define PLUGIN_ERR_MAX		1024
/* Optional: the plugin's log level ("debug", "info", "warn", "error"). */
#define PLUGIN_LOG_LEVEL_ENV	"FLOTILLA_PLUGIN_LOG_LEVEL"
/* Default number of threads serving calls. */
#define PLUGIN_DEFAULT_THREADS	8

/* An instance's state, as proto/fleeting.proto's InstanceState. */
enum plugin_state {
	PLUGIN_STATE_CREATING = 1,
	PLUGIN_STATE_RUNNING = 2,
	PLUGIN_STATE_DELETING = 3,
	PLUGIN_STATE_DELETED = 4,
	PLUGIN_STATE_TIMEOUT = 5
};

/* What a callback returns (see the table above). */
enum plugin_rc {
	PLUGIN_OK = 0,
	PLUGIN_FAILED = 1,
	PLUGIN_BAD_CONFIG = 2,
	PLUGIN_NOT_FOUND = 3,
	PLUGIN_UNHEALTHY = 4
};

/*
 * proto's ConnectorConfig in C.  Strings are heap strings or NULL (sent
 * as ""); key is key_len bytes of PEM (not NUL-terminated) or NULL.
 * Release with plugin_connector_release, which wipes password and key.
 */
struct plugin_connector {
	char *os;
	char *arch;
	char *protocol;
	int32_t protocol_port;
	char *username;
	char *password;
	uint8_t *key;
	size_t key_len;
	bool use_static_credentials;
	int64_t keepalive_ns;
	int64_t timeout_ns;
	bool use_external_addr;
};

/* A deep copy of src into dst (which is overwritten, not released). */
void plugin_connector_copy(struct plugin_connector *dst,
    const struct plugin_connector *src);
/* Wipe secrets and free everything; c is zeroed.  NULL is a no-op. */
void plugin_connector_release(struct plugin_connector *c);
/* Replace *field by a copy of value (NULL: none), freeing the old one. */
void plugin_set_str(char **field, const char *value);
/* Replace c's key by a copy of len bytes at key, wiping the old one. */
void plugin_set_key(struct plugin_connector *c, const void *key, size_t len);

/*
 * What Init reports (ProviderInfo).  The version and build_info sent are
 * the plugin_def's.  capabilities: a NULL-terminated static list or NULL.
 */
struct plugin_provider_info {
	char id[PLUGIN_ID_MAX + 1];	/* e.g. "local/demo" */
	int64_t max_size;		/* hard bound of the group */
	const char *const *capabilities;
};

/*
 * ConnectInfo's answer.  The SDK fills connector with a copy of Init's
 * settings before the call; the callback changes what it owns (with
 * plugin_set_str, plugin_set_key) and sets the addresses ("IP" or
 * "IP:PORT", heap strings).  expires_unix_ns 0: valid until further notice.
 */
struct plugin_connect_info {
	struct plugin_connector connector;
	char *external_addr;
	char *internal_addr;
	int64_t expires_unix_ns;
};

/* Update's callback: report one instance (cause: NULL or a short text). */
typedef void (*plugin_emit_fn)(void *emit_arg, const char *id,
    enum plugin_state state, const char *cause);

/*
 * The callbacks.  arg is plugin_def.arg.  err/errlen: a buffer for the
 * error text (a NUL-terminated message, PLUGIN_ERR_MAX bytes), read when
 * the result is not PLUGIN_OK and, for increase and decrease, also on a
 * partial success.  Required: init, update, increase, decrease,
 * connect_info.  Optional (NULL): heartbeat (then the method is
 * UNIMPLEMENTED: the manager treats instances as healthy), shutdown (OK
 * without doing anything), release.
 */
struct plugin_ops {
	/*
	 * Check config (plugin_config as a JSON object; {} when the manager
	 * sent none), set up, fill info.  settings are the manager's
	 * connector settings (valid during the call; the SDK keeps its own
	 * copy for ConnectInfo).  PLUGIN_BAD_CONFIG for a bad configuration.
	 * May be called again after a failure; never again after success.
	 */
	int (*init)(void *arg, const json_t *config,
	    const struct plugin_connector *settings,
	    struct plugin_provider_info *info, char *err, size_t errlen);
	/* Call emit once per instance of the group, then return. */
	int (*update)(void *arg, plugin_emit_fn emit, void *emit_arg,
	    char *err, size_t errlen);
	/*
	 * Request delta (1..PLUGIN_MAX_DELTA) new instances; set *succeeded
	 * (0..delta, starts at 0) to how many were accepted.  A partial
	 * success is *succeeded > 0 with a message in err (whatever the
	 * result); nothing accepted and not PLUGIN_OK is a failed call.
	 */
	int (*increase)(void *arg, int64_t delta, int64_t *succeeded,
	    char *err, size_t errlen);
	/*
	 * Begin deleting ids[0..n) (1..PLUGIN_MAX_IDS distinct, non-empty
	 * ids); set succeeded[i] (all false at the start) for each id whose
	 * deletion was accepted or that is already gone.  Partial success
	 * and failure as for increase.
	 */
	int (*decrease)(void *arg, const char *const *ids, size_t n,
	    bool *succeeded, char *err, size_t errlen);
	/* Fill out for id; PLUGIN_NOT_FOUND, PLUGIN_UNHEALTHY, ... */
	int (*connect_info)(void *arg, const char *id,
	    struct plugin_connect_info *out, char *err, size_t errlen);
	/* PLUGIN_OK healthy, PLUGIN_UNHEALTHY, PLUGIN_NOT_FOUND, ... */
	int (*heartbeat)(void *arg, const char *id, char *err, size_t errlen);
	/*
	 * InstanceGroup.Shutdown: clean up plugin-side resources.  Also run
	 * on SIGTERM (after serving stopped) unless it already ran.
	 */
	int (*shutdown)(void *arg, char *err, size_t errlen);
	/* Free everything, at exit, after serving stopped. */
	void (*release)(void *arg);
};

struct plugin_def {
	const char *name;	/* "fleeting-plugin-local": logs, --version */
	const char *version;	/* "0.1.0" */
	const char *revision;	/* git revision, "" if unknown */
	const char *help;	/* extra --help text (plugin_config keys) or NULL */
	const struct plugin_ops *ops;
	void *arg;		/* passed to every callback */
	unsigned threads;	/* server threads; 0 = PLUGIN_DEFAULT_THREADS */
};

/*
 * The whole plugin process (see the top of this file).  Returns the exit
 * status for main() to return: 0 after a controller Shutdown or SIGTERM
 * (and for --version, --help), 1 for a missing cookie, no common protocol
 * version or a start-up failure, 2 for a bad command line.
 */
int plugin_serve(const struct plugin_def *def, int argc, char **argv);

/*
 * From inside a callback: milliseconds left before the manager's deadline
 * for this call (proto/README.md; 0 once past it), or -1 when it set none.
 * A callback that retries cloud calls stops before it, so that its answer
 * (with the last error) still reaches the manager.
 */
int64_t plugin_call_remaining_ms(void);

/* ------------------------------------------------ plugin_config helpers */

/*
 * Each returns 0, or FL_ERR_INVAL with "KEY: reason" in err.  config is
 * the JSON object init received.  An absent key (or JSON null) gives the
 * default.  Init returns PLUGIN_BAD_CONFIG with that text.
 */

/* Every key of config is in known (NULL-terminated); else "unknown key
 * KEY in plugin_config". */
int plugin_config_check_keys(const json_t *config, const char *const *known,
    char *err, size_t errlen);
/* A string; *out is a heap copy, or a copy of def, or NULL if def is NULL. */
int plugin_config_string(const json_t *config, const char *key,
    const char *def, char **out, char *err, size_t errlen);
/* An integer in [min, max]. */
int plugin_config_int(const json_t *config, const char *key, int64_t def,
    int64_t min, int64_t max, int64_t *out, char *err, size_t errlen);
/* true or false. */
int plugin_config_bool(const json_t *config, const char *key, bool def,
    bool *out, char *err, size_t errlen);
/* A Go duration string ("30s", "1m30s") or integer nanoseconds, >= 0. */
int plugin_config_duration(const json_t *config, const char *key,
    int64_t def, int64_t *out_ns, char *err, size_t errlen);

/* -------------------------------------------- the server, for tests */

/*
 * plugin_serve's server without the process around it: no arguments, no
 * environment, no signals, no stdout, no exit.  Serves def on the unix
 * socket sock_path (which must not exist).  NULL with a message in err on
 * failure.
 */
struct plugin_server *plugin_server_new(const struct plugin_def *def,
    const char *sock_path, char *err, size_t errlen);
/*
 * An fd that becomes readable once plugin.GRPCController/Shutdown has
 * been answered (poll it; the server owns it).
 */
int plugin_server_stop_fd(const struct plugin_server *ps);
/*
 * Stop serving (calls in progress get up to 1 s), remove the socket.  If
 * run_shutdown, then call ops->shutdown as SIGTERM does (only if Init
 * succeeded and Shutdown did not run yet).  Then ops->release and free
 * everything.  NULL is a no-op.
 */
void plugin_server_free(struct plugin_server *ps, bool run_shutdown);

#endif
