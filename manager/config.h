/*
 * The configuration model: GitLab Runner's config.toml, as far as the
 * docker-autoscaler executor uses it, loaded into plain structs.
 *
 * Every key is one row of the table in config.c (section, key, type,
 * bounds, default, help).  Loading fills the defaults, reads the file,
 * converts each value with its row, then validates the whole.  Problems are
 * collected, not printed: errors ("FILE:LINE: key: reason") make the load
 * fail; warnings (unknown keys, which GitLab Runner ignores) do not.
 */
#ifndef FL_CONFIG_H
#define FL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "toml.h"

/* A boolean that may be left unset, with a default derived elsewhere. */
enum tribool { TRI_UNSET = -1, TRI_FALSE = 0, TRI_TRUE = 1 };

struct strlist {
	char **v;
	size_t n;
};

struct config_docker_service {
	int line;
	char *name;
	char *alias;
	struct strlist entrypoint;
	struct strlist command;
	struct strlist environment;
};

struct config_docker {
	int line;
	char *host;
	char *hostname;
	int tls_verify;
	char *tls_cert_path;
	char *image;
	int privileged;
	enum tribool services_privileged;
	struct strlist allowed_privileged_images;
	struct strlist allowed_privileged_services;
	struct strlist volumes;
	struct strlist volumes_from;
	char *volume_driver;
	int volume_keep;
	char *cache_dir;
	int disable_cache;
	int disable_entrypoint_overwrite;
	struct strlist pull_policy;	/* each always, if-not-present, never */
	struct strlist allowed_pull_policies;
	struct strlist allowed_images;
	struct strlist allowed_services;
	char *helper_image;
	char *helper_image_flavor;
	char *network_mode;
	char *memory;
	char *memory_swap;
	char *memory_reservation;
	char *cpus;
	char *cpuset_cpus;
	int64_t cpu_shares;
	int oom_kill_disable;
	char *user;
	struct strlist allowed_users;
	struct strlist dns;
	struct strlist dns_search;
	struct strlist extra_hosts;
	struct strlist links;
	char *mac_address;
	struct strlist cap_add;
	struct strlist cap_drop;
	struct strlist security_opt;
	struct strlist device_cgroup_rules;
	struct strlist devices;
	char *gpus;
	int64_t shm_size;
	char *runtime;
	char *userns_mode;
	char *pid_mode;
	char *ipcmode;
	char *isolation;
	int64_t wait_for_services_timeout;
	int64_t services_limit;
	const struct toml_table *tmpfs;		/* path = options */
	const struct toml_table *services_tmpfs;
	const struct toml_table *sysctls;
	const struct toml_table *ulimit;
	const struct toml_table *container_labels;
	struct config_docker_service *services;
	size_t nservices;
};

struct config_connector {
	int line;
	char *os;
	char *arch;
	char *protocol;		/* ssh, winrm, winrm+https */
	int64_t protocol_port;	/* 0: the protocol's default */
	char *username;
	char *password;		/* secret */
	char *key_path;
	int use_static_credentials;
	int64_t keepalive_ns;
	int64_t timeout_ns;
	int use_external_addr;
};

struct config_scale_throttle {
	int line;
	int64_t limit;		/* new instances a second; 0: 100; -1: none */
	int64_t burst;		/* 0: max_instances, or limit */
};

struct config_state_storage {
	int line;
	int enabled;
	char *dir;		/* NULL: <config dir>/.taskscaler */
	int keep_instance_with_acquisitions;
};

struct config_policy {
	int line;
	struct strlist periods;	/* cron time ranges */
	char *timezone;		/* NULL: the system's zone */
	int64_t idle_count;
	int64_t idle_time_ns;
	double scale_factor;
	int64_t scale_factor_limit;
	enum tribool preemptive_mode;	/* unset: idle_count > 0 */
};

struct doublelist {
	double *v;
	size_t n;
};

struct config_autoscaler {
	int line;
	char *plugin;
	int64_t capacity_per_instance;
	int64_t max_use_count;		/* 0: unlimited */
	int64_t max_instances;		/* 0: unlimited */
	char *instance_ready_command;
	int64_t instance_acquire_timeout_ns;
	int64_t update_interval_ns;
	int64_t update_interval_when_expecting_ns;
	int64_t deletion_retry_interval_ns;
	int64_t shutdown_deletion_interval_ns;
	int64_t shutdown_deletion_retries;
	int64_t failure_threshold;
	enum tribool reservation_throttling;	/* unset: true */
	int delete_instances_on_shutdown;
	int log_internal_ip;
	int log_external_ip;
	struct doublelist instance_operation_time_buckets;
	struct doublelist instance_creation_time_buckets;
	struct doublelist instance_is_running_time_buckets;
	struct doublelist instance_deletion_time_buckets;
	struct doublelist instance_readiness_time_buckets;
	struct doublelist instance_life_duration_buckets;
	const struct toml_table *plugin_config;	/* free table, sent as JSON */
	const struct toml_table *vm_isolation;	/* accepted, not used */
	struct config_connector connector_config;
	struct config_scale_throttle scale_throttle;
	struct config_state_storage state_storage;
	struct config_policy *policy;
	size_t npolicy;
};

struct config_runner {
	int line;
	char *name;
	char *url;
	int64_t id;
	char *token;		/* secret */
	char *token_obtained_at;	/* RFC 3339, as written */
	char *token_expires_at;
	char *tls_ca_file;
	char *tls_cert_file;
	char *tls_key_file;
	char *executor;
	int64_t limit;
	int64_t request_concurrency;
	int strict_check_interval;
	char *builds_dir;
	char *cache_dir;
	struct strlist environment;
	char *shell;
	int64_t output_limit;	/* KiB */
	char *clone_url;
	char *pre_get_sources_script;
	char *post_get_sources_script;
	char *pre_build_script;
	char *post_build_script;
	int debug_trace_disabled;
	int64_t unhealthy_requests_limit;
	int64_t unhealthy_interval_ns;
	int64_t job_status_final_update_retry_limit;
	const struct toml_table *feature_flags;	/* FF_NAME = bool */
	const struct toml_table *custom_build_dir;
	const struct toml_table *cache;		/* [runners.cache], kept as is */
	struct config_docker docker;
	struct config_autoscaler autoscaler;
};

struct config_session_server {
	int line;
	char *listen_address;
	char *advertise_address;
	int64_t session_timeout;
};

struct config {
	char *path;			/* the file it came from */
	struct toml_table *doc;		/* owns the free tables above */
	int64_t concurrent;
	int64_t check_interval;		/* seconds */
	char *log_level;
	char *log_format;
	char *listen_address;
	int64_t shutdown_timeout;	/* seconds */
	int64_t connection_max_age_ns;
	char *sentry_dsn;
	struct config_session_server session_server;
	struct config_runner *runners;
	size_t nrunners;
};

enum config_diag_level { CONFIG_ERROR, CONFIG_WARNING };

/* One problem found while loading, formatted "FILE:LINE: key: reason". */
struct config_diag {
	enum config_diag_level level;
	int line;
	char *msg;
};

struct config_diags {
	struct config_diag *v;
	size_t n;
	size_t nerrors;
};

/*
 * Load and validate a config file.  On success returns 0 and *out (free
 * with config_free()).  Returns FL_ERR_PARSE or FL_ERR_INVAL when the file
 * has errors, FL_ERR_IO/FL_ERR_NOTFOUND when it cannot be read; *diags is
 * filled in either case (release with config_diags_release()).
 */
int config_load(const char *path, struct config **out,
    struct config_diags *diags);

/* The same from a buffer; path is only used in messages. */
int config_load_buf(const char *path, const char *buf, size_t len,
    struct config **out, struct config_diags *diags);

void config_free(struct config *cfg);
void config_diags_release(struct config_diags *d);

/*
 * Write the effective configuration, defaults filled, as TOML that loads
 * back to the same configuration.  Secrets are written as "[MASKED]"
 * unless show_secrets is set.
 */
void config_dump(const struct config *cfg, FILE *fp, int show_secrets);

/* The default path: /etc/flotilla/config.toml as root, else ~/.flotilla/. */
char *config_default_path(void);

/*
 * The plugin_config table as a JSON document (the plugin's Init input).
 * Returns a string to free, "{}" when the table is absent.
 */
char *config_plugin_json(const struct config_autoscaler *as);

/* Effective values of keys whose default depends on others. */
int config_policy_preemptive(const struct config_policy *p);
int config_reservation_throttling(const struct config_autoscaler *as);

/* Print the key table (section, key, type, default, help) for docs. */
void config_print_keys(FILE *fp);

/* [runners.feature_flags] NAME as a bool, or def when not set. */
int config_feature_flag(const struct config_runner *rc, const char *name,
    int def);

#endif
