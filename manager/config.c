/*
 * config.toml: one table row per key, a generic loader driven by the rows,
 * then whole-file validation.
 *
 * The loader walks the TOML tree section by section.  A key with a row is
 * converted by its type (and bounds, choices or checker); a key without one
 * is a warning, as GitLab Runner ignores unknown keys.  Errors carry the
 * line of the offending value, so an operator gets "FILE:LINE: key: reason"
 * for every problem in one run of check-config.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "cron.h"
#include "duration.h"
#include "err.h"
#include "tz.h"
#include "xmalloc.h"

enum ktype {
	K_STR,		/* char * */
	K_INT,		/* int64_t */
	K_BOOL,		/* int */
	K_TRI,		/* enum tribool */
	K_FLOAT,	/* double */
	K_DUR,		/* int64_t nanoseconds; TOML string or integer */
	K_DATETIME,	/* char *, RFC 3339 */
	K_STRLIST,	/* struct strlist */
	K_STR_OR_LIST,	/* struct strlist; a lone string is a list of one */
	K_FLOATLIST,	/* struct doublelist */
	K_TABLE,	/* const struct toml_table *, kept as written */
	K_SECTION,	/* embedded struct, described by sub */
	K_SECTION_ARRAY	/* array of tables: pointer at off, size_t at count_off */
};

#define KF_SECRET	0x01	/* masked in dumps, wiped when freed */
#define KF_REQUIRED	0x02	/* must be present (checked in validation) */
#define KF_NODEFAULT	0x04	/* unset stays NULL: nothing to dump */

struct section;

/* Checks a converted value; returns NULL or a reason (static or buf). */
typedef const char *(*key_check_fn)(const void *field, char *buf, size_t len);

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;	/* default, written as in the file; NULL: none */
	int64_t min, max;	/* K_INT, K_DUR (ns), K_FLOAT */
	unsigned flags;
	const char *const *choices;	/* NULL-terminated; K_STR and lists */
	key_check_fn check;
	const struct section *sub;
	size_t count_off;
	const char *help;
};

struct section {
	const char *name;	/* dotted path, "" for the top */
	size_t size;
	const struct key *keys;
};

#define NOMIN INT64_MIN
#define NOMAX INT64_MAX
#define OFF(type, field) offsetof(type, field)

static const char *const executors_supported[] = { "docker-autoscaler", NULL };
static const char *const executors_known[] = {
	"docker", "docker-windows", "docker+machine", "docker-autoscaler",
	"shell", "ssh", "parallels", "virtualbox", "kubernetes", "custom",
	"instance", NULL
};
static const char *const shells[] = { "bash", "sh", "pwsh", "powershell", NULL };
static const char *const pull_policies[] = {
	"always", "if-not-present", "never", NULL
};
static const char *const log_levels[] = {
	"debug", "info", "warn", "warning", "error", "fatal", "panic", NULL
};
static const char *const log_formats[] = { "runner", "text", "json", NULL };
static const char *const protocols[] = { "ssh", "winrm", "winrm+https", NULL };
static const char *const oses[] = { "linux", "windows", "darwin", "freebsd", NULL };

static const char *check_periods(const void *field, char *buf, size_t len);
static const char *check_timezone(const void *field, char *buf, size_t len);
static const char *check_environment(const void *field, char *buf, size_t len);
static const char *check_url(const void *field, char *buf, size_t len);
static const char *check_listen(const void *field, char *buf, size_t len);
static const char *check_size(const void *field, char *buf, size_t len);
static const char *check_cpus(const void *field, char *buf, size_t len);
static const char *check_plugin(const void *field, char *buf, size_t len);
static const char *check_executor(const void *field, char *buf, size_t len);

/* [[runners.docker.services]] */
static const struct key service_keys[] = {
	{ "name", K_STR, OFF(struct config_docker_service, name), NULL, 0, 0,
	  0, NULL, NULL, NULL, 0, "image of the service" },
	{ "alias", K_STR, OFF(struct config_docker_service, alias), NULL, 0, 0,
	  0, NULL, NULL, NULL, 0, "extra host name of the service" },
	{ "entrypoint", K_STRLIST, OFF(struct config_docker_service, entrypoint),
	  NULL, 0, 0, 0, NULL, NULL, NULL, 0, "entrypoint override" },
	{ "command", K_STRLIST, OFF(struct config_docker_service, command), NULL,
	  0, 0, 0, NULL, NULL, NULL, 0, "command override" },
	{ "environment", K_STRLIST, OFF(struct config_docker_service, environment),
	  NULL, 0, 0, 0, NULL, check_environment, NULL, 0,
	  "KEY=value variables of the service" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section service_section = {
	"runners.docker.services", sizeof(struct config_docker_service),
	service_keys
};

#define DK(name, type, field, def, help) \
	{ name, type, OFF(struct config_docker, field), def, NOMIN, NOMAX, 0, \
	  NULL, NULL, NULL, 0, help }
#define DKC(name, type, field, def, check, help) \
	{ name, type, OFF(struct config_docker, field), def, NOMIN, NOMAX, 0, \
	  NULL, check, NULL, 0, help }

/* [runners.docker] */
static const struct key docker_keys[] = {
	DK("host", K_STR, host, NULL, "Docker endpoint on the instance (unix:// path)"),
	DK("hostname", K_STR, hostname, NULL, "host name of the build container"),
	DK("tls_verify", K_BOOL, tls_verify, "false", "TLS towards the Docker daemon"),
	DK("tls_cert_path", K_STR, tls_cert_path, NULL, "directory of ca.pem, cert.pem, key.pem"),
	DK("image", K_STR, image, NULL, "default job image"),
	DK("privileged", K_BOOL, privileged, "false", "privileged containers"),
	DK("services_privileged", K_TRI, services_privileged, NULL, "privileged services (default: privileged)"),
	DK("allowed_privileged_images", K_STRLIST, allowed_privileged_images, NULL, "images allowed to run privileged"),
	DK("allowed_privileged_services", K_STRLIST, allowed_privileged_services, NULL, "services allowed to run privileged"),
	DK("volumes", K_STRLIST, volumes, NULL, "volumes of every job (path or src:dst[:mode])"),
	DK("volumes_from", K_STRLIST, volumes_from, NULL, "containers to take volumes from"),
	DK("volume_driver", K_STR, volume_driver, NULL, "driver of created volumes"),
	DK("volume_keep", K_BOOL, volume_keep, "false", "keep anonymous volumes"),
	DK("cache_dir", K_STR, cache_dir, NULL, "host directory for cache volumes"),
	DK("disable_cache", K_BOOL, disable_cache, "false", "per-job temporary cache volumes"),
	DK("disable_entrypoint_overwrite", K_BOOL, disable_entrypoint_overwrite, "false", "keep the image entrypoint"),
	{ "pull_policy", K_STR_OR_LIST, OFF(struct config_docker, pull_policy),
	  "always", 0, 0, 0, pull_policies, NULL, NULL, 0,
	  "always, if-not-present, never, or a list tried in order" },
	{ "allowed_pull_policies", K_STRLIST,
	  OFF(struct config_docker, allowed_pull_policies), NULL, 0, 0, 0,
	  pull_policies, NULL, NULL, 0, "pull policies a job may ask for" },
	DK("allowed_images", K_STRLIST, allowed_images, NULL, "image globs jobs may use (empty: all)"),
	DK("allowed_services", K_STRLIST, allowed_services, NULL, "service globs jobs may use (empty: all)"),
	DK("helper_image", K_STR, helper_image, NULL, "helper image (default: flotilla's own)"),
	DK("helper_image_flavor", K_STR, helper_image_flavor, NULL, "helper image flavour"),
	DK("network_mode", K_STR, network_mode, NULL, "network of job containers (host, bridge, ...)"),
	DKC("memory", K_STR, memory, NULL, check_size, "memory limit, e.g. 128m"),
	DKC("memory_swap", K_STR, memory_swap, NULL, check_size, "memory and swap limit"),
	DKC("memory_reservation", K_STR, memory_reservation, NULL, check_size, "soft memory limit"),
	DKC("cpus", K_STR, cpus, NULL, check_cpus, "CPUs of the build container, e.g. 1.5"),
	DK("cpuset_cpus", K_STR, cpuset_cpus, NULL, "CPUs the container may use, e.g. 0-3"),
	{ "cpu_shares", K_INT, OFF(struct config_docker, cpu_shares), "0", 0,
	  NOMAX, 0, NULL, NULL, NULL, 0, "relative CPU weight" },
	DK("oom_kill_disable", K_BOOL, oom_kill_disable, "false", "disable the OOM killer"),
	DK("user", K_STR, user, NULL, "user of the build container"),
	DK("allowed_users", K_STRLIST, allowed_users, NULL, "users a job may ask for"),
	DK("dns", K_STRLIST, dns, NULL, "DNS servers"),
	DK("dns_search", K_STRLIST, dns_search, NULL, "DNS search domains"),
	DK("extra_hosts", K_STRLIST, extra_hosts, NULL, "host:ip entries"),
	DK("links", K_STRLIST, links, NULL, "legacy container links"),
	DK("mac_address", K_STR, mac_address, NULL, "MAC address"),
	DK("cap_add", K_STRLIST, cap_add, NULL, "capabilities to add"),
	DK("cap_drop", K_STRLIST, cap_drop, NULL, "capabilities to drop"),
	DK("security_opt", K_STRLIST, security_opt, NULL, "security options"),
	DK("devices", K_STRLIST, devices, NULL, "host devices"),
	DK("device_cgroup_rules", K_STRLIST, device_cgroup_rules, NULL, "device cgroup rules"),
	DK("gpus", K_STR, gpus, NULL, "GPUs, e.g. all"),
	{ "shm_size", K_INT, OFF(struct config_docker, shm_size), "0", 0, NOMAX,
	  0, NULL, NULL, NULL, 0, "size of /dev/shm in bytes" },
	DK("runtime", K_STR, runtime, NULL, "container runtime"),
	DK("userns_mode", K_STR, userns_mode, NULL, "user namespace mode"),
	DK("pid_mode", K_STR, pid_mode, NULL, "PID namespace mode"),
	DK("ipcmode", K_STR, ipcmode, NULL, "IPC namespace mode"),
	DK("isolation", K_STR, isolation, NULL, "isolation technology (Windows)"),
	{ "wait_for_services_timeout", K_INT,
	  OFF(struct config_docker, wait_for_services_timeout), "30", -1, NOMAX,
	  0, NULL, NULL, NULL, 0, "seconds to wait for services; -1 disables" },
	{ "services_limit", K_INT, OFF(struct config_docker, services_limit),
	  "-1", -1, NOMAX, 0, NULL, NULL, NULL, 0,
	  "services a job may start; -1: no limit" },
	DK("tmpfs", K_TABLE, tmpfs, NULL, "tmpfs mounts of the build container"),
	DK("services_tmpfs", K_TABLE, services_tmpfs, NULL, "tmpfs mounts of services"),
	DK("sysctls", K_TABLE, sysctls, NULL, "sysctls"),
	DK("ulimit", K_TABLE, ulimit, NULL, "ulimits"),
	DK("container_labels", K_TABLE, container_labels, NULL, "labels of created containers"),
	{ "services", K_SECTION_ARRAY, OFF(struct config_docker, services), NULL,
	  0, 0, 0, NULL, NULL, &service_section,
	  OFF(struct config_docker, nservices), "services of every job" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section docker_section = {
	"runners.docker", sizeof(struct config_docker), docker_keys
};

#define CK(name, type, field, def, min, max, flags, help) \
	{ name, type, OFF(struct config_connector, field), def, min, max, \
	  flags, NULL, NULL, NULL, 0, help }

/* [runners.autoscaler.connector_config] */
static const struct key connector_keys[] = {
	{ "os", K_STR, OFF(struct config_connector, os), NULL, 0, 0, 0, oses,
	  NULL, NULL, 0, "operating system of the instances (plugin's default)" },
	CK("arch", K_STR, arch, NULL, 0, 0, 0, "architecture of the instances"),
	{ "protocol", K_STR, OFF(struct config_connector, protocol), NULL, 0, 0,
	  0, protocols, NULL, NULL, 0, "ssh, winrm or winrm+https" },
	CK("protocol_port", K_INT, protocol_port, "0", 0, 65535, 0,
	   "port; 0: the protocol's default (22, 5985, 5986)"),
	CK("username", K_STR, username, NULL, 0, 0, 0, "login user"),
	CK("password", K_STR, password, NULL, 0, 0, KF_SECRET, "login password"),
	CK("key_path", K_STR, key_path, NULL, 0, 0, 0, "private key file for ssh"),
	CK("use_static_credentials", K_BOOL, use_static_credentials, "false", 0,
	   0, 0, "use these credentials instead of the plugin's"),
	CK("keepalive", K_DUR, keepalive_ns, "0s", 0, NOMAX, 0,
	   "keep-alive interval; 0s: the default (30s)"),
	CK("timeout", K_DUR, timeout_ns, "0s", 0, NOMAX, 0,
	   "connection timeout; 0s: the default (10m)"),
	CK("use_external_addr", K_BOOL, use_external_addr, "false", 0, 0, 0,
	   "connect to the instance's external address"),
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section connector_section = {
	"runners.autoscaler.connector_config", sizeof(struct config_connector),
	connector_keys
};

static const struct key throttle_keys[] = {
	{ "limit", K_INT, OFF(struct config_scale_throttle, limit), "0", -1,
	  NOMAX, 0, NULL, NULL, NULL, 0,
	  "new instances a second; 0: 100; -1: unlimited" },
	{ "burst", K_INT, OFF(struct config_scale_throttle, burst), "0", 0,
	  NOMAX, 0, NULL, NULL, NULL, 0,
	  "token bucket size; 0: max_instances, or limit" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section throttle_section = {
	"runners.autoscaler.scale_throttle", sizeof(struct config_scale_throttle),
	throttle_keys
};

static const struct key storage_keys[] = {
	{ "enabled", K_BOOL, OFF(struct config_state_storage, enabled), "false",
	  0, 0, 0, NULL, NULL, NULL, 0, "keep instances across restarts" },
	{ "dir", K_STR, OFF(struct config_state_storage, dir), NULL, 0, 0, 0,
	  NULL, NULL, NULL, 0, "state directory (default: <config dir>/.taskscaler)" },
	{ "keep_instance_with_acquisitions", K_BOOL,
	  OFF(struct config_state_storage, keep_instance_with_acquisitions),
	  "false", 0, 0, 0, NULL, NULL, NULL, 0,
	  "keep instances that had jobs when the manager stopped" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section storage_section = {
	"runners.autoscaler.state_storage", sizeof(struct config_state_storage),
	storage_keys
};

#define PK(name, type, field, def, min, max, check, help) \
	{ name, type, OFF(struct config_policy, field), def, min, max, 0, NULL, \
	  check, NULL, 0, help }

/* [[runners.autoscaler.policy]] */
static const struct key policy_keys[] = {
	PK("periods", K_STRLIST, periods, "* * * * *", 0, 0, check_periods,
	   "cron time ranges when the policy applies"),
	{ "timezone", K_STR, OFF(struct config_policy, timezone), NULL, 0, 0,
	  KF_NODEFAULT, NULL, check_timezone, NULL, 0,
	  "IANA time zone of the periods (default: the system's)" },
	PK("idle_count", K_INT, idle_count, "0", 0, NOMAX, NULL,
	   "idle slots to keep ready"),
	PK("idle_time", K_DUR, idle_time_ns, "5m0s", 0, NOMAX, NULL,
	   "how long an unused instance may stay idle"),
	PK("scale_factor", K_FLOAT, scale_factor, "0.0", 0, NOMAX, NULL,
	   "extra idle slots as a factor of slots in use"),
	PK("scale_factor_limit", K_INT, scale_factor_limit, "0", 0, NOMAX, NULL,
	   "cap of the scale_factor term; 0: none"),
	PK("preemptive_mode", K_TRI, preemptive_mode, NULL, 0, 0, NULL,
	   "ask for jobs only with ready capacity (default: idle_count > 0)"),
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section policy_section = {
	"runners.autoscaler.policy", sizeof(struct config_policy), policy_keys
};

#define AK(name, type, field, def, min, max, help) \
	{ name, type, OFF(struct config_autoscaler, field), def, min, max, 0, \
	  NULL, NULL, NULL, 0, help }

/* [runners.autoscaler] */
static const struct key autoscaler_keys[] = {
	{ "plugin", K_STR, OFF(struct config_autoscaler, plugin), NULL, 0, 0, 0,
	  NULL, check_plugin, NULL, 0,
	  "fleeting plugin: aws, googlecloud, azure, local, a name or a path" },
	AK("capacity_per_instance", K_INT, capacity_per_instance, "1", 1, NOMAX,
	   "jobs an instance runs at once"),
	AK("max_use_count", K_INT, max_use_count, "0", 0, NOMAX,
	   "jobs an instance runs before removal; 0: unlimited"),
	AK("max_instances", K_INT, max_instances, "0", 0, NOMAX,
	   "instances in any state; 0: unlimited"),
	AK("instance_ready_command", K_STR, instance_ready_command, NULL, 0, 0,
	   "command that must succeed on a new instance"),
	AK("instance_acquire_timeout", K_DUR, instance_acquire_timeout_ns, "15m0s",
	   1, NOMAX, "how long a job waits for a slot"),
	AK("update_interval", K_DUR, update_interval_ns, "1m0s", 1, NOMAX,
	   "how often the plugin is asked for instances"),
	AK("update_interval_when_expecting", K_DUR,
	   update_interval_when_expecting_ns, "2s", 1, NOMAX,
	   "the same while a change is expected"),
	AK("deletion_retry_interval", K_DUR, deletion_retry_interval_ns, "1m0s",
	   1, NOMAX, "retry a removal that had no effect after"),
	AK("shutdown_deletion_interval", K_DUR, shutdown_deletion_interval_ns,
	   "10s", 1, NOMAX, "poll period of removals at shutdown"),
	AK("shutdown_deletion_retries", K_INT, shutdown_deletion_retries, "3", 0,
	   NOMAX, "polls of removals at shutdown"),
	AK("failure_threshold", K_INT, failure_threshold, "3", 1, NOMAX,
	   "failed health checks in a row before replacement"),
	AK("reservation_throttling", K_TRI, reservation_throttling, NULL, 0, 0,
	   "keep room to retire an instance (default: true)"),
	AK("delete_instances_on_shutdown", K_BOOL, delete_instances_on_shutdown,
	   "false", 0, 0, "remove every instance when the manager stops"),
	AK("log_internal_ip", K_BOOL, log_internal_ip, "false", 0, 0,
	   "show the internal address in job logs"),
	AK("log_external_ip", K_BOOL, log_external_ip, "false", 0, 0,
	   "show the external address in job logs"),
	AK("instance_operation_time_buckets", K_FLOATLIST,
	   instance_operation_time_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("instance_creation_time_buckets", K_FLOATLIST,
	   instance_creation_time_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("instance_is_running_time_buckets", K_FLOATLIST,
	   instance_is_running_time_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("instance_deletion_time_buckets", K_FLOATLIST,
	   instance_deletion_time_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("instance_readiness_time_buckets", K_FLOATLIST,
	   instance_readiness_time_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("instance_life_duration_buckets", K_FLOATLIST,
	   instance_life_duration_buckets, NULL, 0, 0, "histogram buckets (s)"),
	AK("plugin_config", K_TABLE, plugin_config, NULL, 0, 0,
	   "the plugin's own settings, passed as JSON"),
	AK("vm_isolation", K_TABLE, vm_isolation, NULL, 0, 0,
	   "nested VM isolation (accepted, not supported)"),
	{ "connector_config", K_SECTION,
	  OFF(struct config_autoscaler, connector_config), NULL, 0, 0, 0, NULL,
	  NULL, &connector_section, 0, "how to reach instances" },
	{ "scale_throttle", K_SECTION,
	  OFF(struct config_autoscaler, scale_throttle), NULL, 0, 0, 0, NULL,
	  NULL, &throttle_section, 0, "rate of instance creation" },
	{ "state_storage", K_SECTION,
	  OFF(struct config_autoscaler, state_storage), NULL, 0, 0, 0, NULL,
	  NULL, &storage_section, 0, "instance state across restarts" },
	{ "policy", K_SECTION_ARRAY, OFF(struct config_autoscaler, policy), NULL,
	  0, 0, 0, NULL, NULL, &policy_section,
	  OFF(struct config_autoscaler, npolicy), "idle policies (last match wins)" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section autoscaler_section = {
	"runners.autoscaler", sizeof(struct config_autoscaler), autoscaler_keys
};

#define RK(name, type, field, def, min, max, flags, help) \
	{ name, type, OFF(struct config_runner, field), def, min, max, flags, \
	  NULL, NULL, NULL, 0, help }

/* [[runners]] */
static const struct key runner_keys[] = {
	RK("name", K_STR, name, NULL, 0, 0, 0, "description of the runner"),
	{ "url", K_STR, OFF(struct config_runner, url), NULL, 0, 0, KF_REQUIRED,
	  NULL, check_url, NULL, 0, "GitLab URL" },
	RK("id", K_INT, id, "0", 0, NOMAX, 0, "runner id, written by register"),
	RK("token", K_STR, token, NULL, 0, 0, KF_SECRET | KF_REQUIRED,
	   "runner authentication token"),
	RK("token_obtained_at", K_DATETIME, token_obtained_at, NULL, 0, 0, 0,
	   "when the token was obtained"),
	RK("token_expires_at", K_DATETIME, token_expires_at, NULL, 0, 0, 0,
	   "when the token expires"),
	RK("tls-ca-file", K_STR, tls_ca_file, NULL, 0, 0, 0, "CA certificates of GitLab"),
	RK("tls-cert-file", K_STR, tls_cert_file, NULL, 0, 0, 0, "client certificate"),
	RK("tls-key-file", K_STR, tls_key_file, NULL, 0, 0, 0, "client key"),
	{ "executor", K_STR, OFF(struct config_runner, executor), NULL, 0, 0,
	  KF_REQUIRED, NULL, check_executor, NULL, 0,
	  "the executor: docker-autoscaler" },
	RK("limit", K_INT, limit, "0", 0, NOMAX, 0, "jobs at once; 0: unlimited"),
	RK("request_concurrency", K_INT, request_concurrency, "1", 0, NOMAX, 0,
	   "job requests in flight (below 1: 1)"),
	RK("strict_check_interval", K_BOOL, strict_check_interval, "false", 0, 0,
	   0, "no immediate re-poll after a job"),
	RK("builds_dir", K_STR, builds_dir, "/builds", 0, 0, 0,
	   "build directory in the container"),
	RK("cache_dir", K_STR, cache_dir, "/cache", 0, 0, 0,
	   "cache directory in the container"),
	{ "environment", K_STRLIST, OFF(struct config_runner, environment), NULL,
	  0, 0, 0, NULL, check_environment, NULL, 0, "KEY=value for every job" },
	{ "shell", K_STR, OFF(struct config_runner, shell), "bash", 0, 0, 0,
	  shells, NULL, NULL, 0, "shell of job scripts" },
	RK("output_limit", K_INT, output_limit, "4096", 1, NOMAX, 0,
	   "trace size limit in KiB"),
	RK("clone_url", K_STR, clone_url, NULL, 0, 0, 0, "URL used for git clone"),
	RK("pre_get_sources_script", K_STR, pre_get_sources_script, NULL, 0, 0, 0,
	   "script run before fetching sources"),
	RK("post_get_sources_script", K_STR, post_get_sources_script, NULL, 0, 0,
	   0, "script run after fetching sources"),
	RK("pre_build_script", K_STR, pre_build_script, NULL, 0, 0, 0,
	   "script run before the job's script"),
	RK("post_build_script", K_STR, post_build_script, NULL, 0, 0, 0,
	   "script run after the job's script"),
	RK("debug_trace_disabled", K_BOOL, debug_trace_disabled, "false", 0, 0, 0,
	   "ignore CI_DEBUG_TRACE"),
	RK("unhealthy_requests_limit", K_INT, unhealthy_requests_limit, "3", 1,
	   NOMAX, 0, "failed requests before the runner rests"),
	RK("unhealthy_interval", K_DUR, unhealthy_interval_ns, "1h0m0s", 0, NOMAX,
	   0, "how long an unhealthy runner rests"),
	RK("job_status_final_update_retry_limit", K_INT,
	   job_status_final_update_retry_limit, "10", 1, NOMAX, 0,
	   "tries of a job's final update"),
	RK("feature_flags", K_TABLE, feature_flags, NULL, 0, 0, 0,
	   "FF_* = true/false"),
	RK("custom_build_dir", K_TABLE, custom_build_dir, NULL, 0, 0, 0,
	   "enabled = true allows GIT_CLONE_PATH"),
	RK("cache", K_TABLE, cache, NULL, 0, 0, 0,
	   "distributed cache (kept, not used: the cache is local)"),
	{ "docker", K_SECTION, OFF(struct config_runner, docker), NULL, 0, 0, 0,
	  NULL, NULL, &docker_section, 0, "Docker executor settings" },
	{ "autoscaler", K_SECTION, OFF(struct config_runner, autoscaler), NULL, 0,
	  0, 0, NULL, NULL, &autoscaler_section, 0, "autoscaling settings" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section runner_section = {
	"runners", sizeof(struct config_runner), runner_keys
};

static const struct key session_keys[] = {
	{ "listen_address", K_STR,
	  OFF(struct config_session_server, listen_address), NULL, 0, 0, 0, NULL,
	  check_listen, NULL, 0, "address of the session server" },
	{ "advertise_address", K_STR,
	  OFF(struct config_session_server, advertise_address), NULL, 0, 0, 0,
	  NULL, NULL, NULL, 0, "address given to GitLab" },
	{ "session_timeout", K_INT,
	  OFF(struct config_session_server, session_timeout), "1800", 1, NOMAX,
	  0, NULL, NULL, NULL, 0, "seconds a session may stay open" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section session_section = {
	"session_server", sizeof(struct config_session_server), session_keys
};

/* The top of the file. */
static const struct key global_keys[] = {
	{ "concurrent", K_INT, OFF(struct config, concurrent), "1", 1, NOMAX, 0,
	  NULL, NULL, NULL, 0, "jobs at once across all runners" },
	{ "check_interval", K_INT, OFF(struct config, check_interval), "3", NOMIN,
	  NOMAX, 0, NULL, NULL, NULL, 0, "seconds between job requests (<= 0: 3)" },
	{ "log_level", K_STR, OFF(struct config, log_level), "info", 0, 0, 0,
	  log_levels, NULL, NULL, 0, "debug, info, warn, error, fatal, panic" },
	{ "log_format", K_STR, OFF(struct config, log_format), "runner", 0, 0, 0,
	  log_formats, NULL, NULL, 0, "runner, text or json" },
	{ "listen_address", K_STR, OFF(struct config, listen_address), NULL, 0,
	  0, 0, NULL, check_listen, NULL, 0, "host:port of /metrics (port 9252 if none)" },
	{ "shutdown_timeout", K_INT, OFF(struct config, shutdown_timeout), "30",
	  0, NOMAX, 0, NULL, NULL, NULL, 0, "seconds a forceful shutdown waits" },
	{ "connection_max_age", K_DUR, OFF(struct config, connection_max_age_ns),
	  "15m0s", 0, NOMAX, 0, NULL, NULL, NULL, 0,
	  "age at which connections to GitLab are renewed" },
	{ "sentry_dsn", K_STR, OFF(struct config, sentry_dsn), NULL, 0, 0,
	  KF_SECRET, NULL, NULL, NULL, 0, "accepted, not used" },
	{ "session_server", K_SECTION, OFF(struct config, session_server), NULL,
	  0, 0, 0, NULL, NULL, &session_section, 0, "interactive sessions (not used)" },
	{ "runners", K_SECTION_ARRAY, OFF(struct config, runners), NULL, 0, 0, 0,
	  NULL, NULL, &runner_section, OFF(struct config, nrunners), "runners" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }
};
static const struct section global_section = {
	"", sizeof(struct config), global_keys
};

/*
 * Every section struct starts with "int line": the line of its header, or
 * of the first key when it has none.
 */
#define SECTION_LINE(p) (*(int *)(p))

/* Loading context: the file name and where diagnostics go. */
struct loader {
	const char *path;
	struct config_diags *diags;
};

static void __attribute__((format(printf, 4, 5)))
diag(struct loader *ld, enum config_diag_level lvl, int line,
    const char *fmt, ...)
{
	struct config_diags *d = ld->diags;
	struct sbuf sb;
	va_list ap;

	sbuf_init(&sb);
	if (line > 0)
		sbuf_addf(&sb, "%s:%d: ", ld->path, line);
	else
		sbuf_addf(&sb, "%s: ", ld->path);
	if (lvl == CONFIG_WARNING)
		sbuf_adds(&sb, "warning: ");
	va_start(ap, fmt);
	sbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	d->v = xreallocarray(d->v, d->n + 1, sizeof(*d->v));
	d->v[d->n].level = lvl;
	d->v[d->n].line = line;
	d->v[d->n].msg = sbuf_detach(&sb, NULL);
	d->n++;
	if (lvl == CONFIG_ERROR)
		d->nerrors++;
}

/* "runners.docker" + "image" -> "runners.docker.image" */
static void
keypath(char *buf, size_t len, const struct section *sec, const char *key)
{
	int n;

	if (sec->name[0] == '\0')
		n = snprintf(buf, len, "%s", key);
	else
		n = snprintf(buf, len, "%s.%s", sec->name, key);
	if (n < 0 || (size_t)n >= len)
		buf[len - 1] = '\0';
}

static int
in_choices(const char *const *choices, const char *s)
{
	for (; *choices != NULL; choices++)
		if (strcmp(*choices, s) == 0)
			return 1;
	return 0;
}

static void
choices_text(char *buf, size_t len, const char *const *choices)
{
	struct sbuf sb;

	sbuf_init(&sb);
	for (size_t i = 0; choices[i] != NULL; i++)
		sbuf_addf(&sb, "%s%s", i ? ", " : "", choices[i]);
	if (snprintf(buf, len, "%s", sb.buf) >= (int)len)
		buf[len - 1] = '\0';
	sbuf_release(&sb);
}

static void
strlist_free(struct strlist *l, int secret)
{
	for (size_t i = 0; i < l->n; i++) {
		if (secret)
			freezero_str(l->v[i]);
		else
			free(l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void
strlist_push(struct strlist *l, const char *s)
{
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

static void section_defaults(const struct section *sec, void *base);
static void section_free(const struct section *sec, void *base);

/* Apply a row's default to its field (the struct is zeroed already). */
static void
key_default(const struct key *k, void *field)
{
	switch (k->type) {
	case K_STR:
		if (k->def != NULL)
			*(char **)field = xstrdup(k->def);
		break;
	case K_INT:
		if (k->def != NULL)
			*(int64_t *)field = strtoll(k->def, NULL, 10);
		break;
	case K_BOOL:
		*(int *)field = k->def != NULL && strcmp(k->def, "true") == 0;
		break;
	case K_TRI:
		*(enum tribool *)field = TRI_UNSET;
		break;
	case K_FLOAT:
		if (k->def != NULL)
			*(double *)field = strtod(k->def, NULL);
		break;
	case K_DUR:
		if (k->def != NULL &&
		    duration_parse(k->def, (int64_t *)field) != 0)
			abort();	/* a broken table row */
		break;
	case K_STRLIST:
	case K_STR_OR_LIST:
		if (k->def != NULL)
			strlist_push(field, k->def);
		break;
	case K_SECTION:
		section_defaults(k->sub, field);
		break;
	case K_DATETIME:
	case K_FLOATLIST:
	case K_TABLE:
	case K_SECTION_ARRAY:
		break;
	}
}

static void
section_defaults(const struct section *sec, void *base)
{
	for (const struct key *k = sec->keys; k->name != NULL; k++)
		key_default(k, (char *)base + k->off);
}

static void
key_free(const struct key *k, void *field)
{
	switch (k->type) {
	case K_STR:
	case K_DATETIME:
		if (k->flags & KF_SECRET)
			freezero_str(*(char **)field);
		else
			free(*(char **)field);
		*(char **)field = NULL;
		break;
	case K_STRLIST:
	case K_STR_OR_LIST:
		strlist_free(field, k->flags & KF_SECRET);
		break;
	case K_FLOATLIST:
		free(((struct doublelist *)field)->v);
		((struct doublelist *)field)->v = NULL;
		((struct doublelist *)field)->n = 0;
		break;
	case K_SECTION:
		section_free(k->sub, field);
		break;
	case K_SECTION_ARRAY: {
		char *arr = *(char **)field;
		size_t *count = (size_t *)((char *)field - k->off + k->count_off);

		for (size_t i = 0; i < *count; i++)
			section_free(k->sub, arr + i * k->sub->size);
		free(arr);
		*(char **)field = NULL;
		*count = 0;
		break;
	}
	case K_INT:
	case K_BOOL:
	case K_TRI:
	case K_FLOAT:
	case K_DUR:
	case K_TABLE:
		break;
	}
}

static void
section_free(const struct section *sec, void *base)
{
	for (const struct key *k = sec->keys; k->name != NULL; k++)
		key_free(k, (char *)base + k->off);
}

static const struct key *
find_key(const struct section *sec, const char *name)
{
	for (const struct key *k = sec->keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static const char *
type_wanted(enum ktype t)
{
	switch (t) {
	case K_STR:		return "a string";
	case K_INT:		return "an integer";
	case K_BOOL:
	case K_TRI:		return "a boolean";
	case K_FLOAT:		return "a number";
	case K_DUR:		return "a duration string such as \"20m0s\"";
	case K_DATETIME:	return "a date-time";
	case K_STRLIST:		return "an array of strings";
	case K_STR_OR_LIST:	return "a string or an array of strings";
	case K_FLOATLIST:	return "an array of numbers";
	case K_TABLE:
	case K_SECTION:		return "a table";
	case K_SECTION_ARRAY:	return "an array of tables";
	}
	return "?";
}

static void load_section(struct loader *ld, const struct section *sec,
    void *base, const struct toml_table *t);

/* Convert one TOML value into its field.  Returns 0 or -1 (diagnosed). */
static int
load_value(struct loader *ld, const struct section *sec, const struct key *k,
    void *field, const struct toml_value *v)
{
	char path[160], why[160], errbuf[200];
	const char *reason = NULL;

	keypath(path, sizeof(path), sec, k->name);
	switch (k->type) {
	case K_STR:
		if (v->type != TOML_STRING)
			goto badtype;
		if (strlen(v->u.str.ptr) != v->u.str.len) {
			reason = "must not contain a NUL character";
			break;
		}
		if (k->choices != NULL && !in_choices(k->choices, v->u.str.ptr)) {
			choices_text(why, sizeof(why), k->choices);
			diag(ld, CONFIG_ERROR, v->line,
			    "%s: \"%s\" is not one of: %s", path, v->u.str.ptr,
			    why);
			return -1;
		}
		key_free(k, field);
		*(char **)field = xstrdup(v->u.str.ptr);
		break;
	case K_INT:
		if (v->type != TOML_INTEGER)
			goto badtype;
		if (v->u.integer < k->min || v->u.integer > k->max) {
			if (k->max == NOMAX)
				snprintf(why, sizeof(why),
				    "must be at least %" PRId64, k->min);
			else
				snprintf(why, sizeof(why),
				    "must be between %" PRId64 " and %" PRId64,
				    k->min, k->max);
			diag(ld, CONFIG_ERROR, v->line, "%s: %" PRId64 " %s",
			    path, v->u.integer, why);
			return -1;
		}
		*(int64_t *)field = v->u.integer;
		break;
	case K_BOOL:
		if (v->type != TOML_BOOL)
			goto badtype;
		*(int *)field = v->u.boolean;
		break;
	case K_TRI:
		if (v->type != TOML_BOOL)
			goto badtype;
		*(enum tribool *)field = v->u.boolean ? TRI_TRUE : TRI_FALSE;
		break;
	case K_FLOAT: {
		double d;

		if (v->type == TOML_FLOAT)
			d = v->u.flt;
		else if (v->type == TOML_INTEGER)
			d = (double)v->u.integer;
		else
			goto badtype;
		if (isnan(d) || isinf(d) || d < (double)k->min) {
			diag(ld, CONFIG_ERROR, v->line,
			    "%s: must be a finite number of at least %" PRId64,
			    path, k->min);
			return -1;
		}
		*(double *)field = d;
		break;
	}
	case K_DUR: {
		int64_t ns;

		if (v->type == TOML_INTEGER) {
			ns = v->u.integer;	/* nanoseconds, as Go's TOML */
		} else if (v->type == TOML_STRING) {
			int r = duration_parse(v->u.str.ptr, &ns);

			if (r != 0) {
				diag(ld, CONFIG_ERROR, v->line,
				    "%s: invalid duration \"%s\" (%s; use Go's "
				    "syntax such as \"20m0s\", \"1h30m\", "
				    "\"500ms\")", path, v->u.str.ptr,
				    r == FL_ERR_RANGE ? "out of range" :
				    "malformed");
				return -1;
			}
		} else {
			goto badtype;
		}
		if (ns < k->min) {
			char d[DURATION_STRLEN];

			duration_format(k->min, d, sizeof(d));
			diag(ld, CONFIG_ERROR, v->line,
			    "%s: must be at least %s", path, d);
			return -1;
		}
		*(int64_t *)field = ns;
		break;
	}
	case K_DATETIME: {
		FILE *fp;
		char *s = NULL;
		size_t slen = 0;

		if (v->type == TOML_STRING) {
			/* A string must hold an RFC 3339 date-time. */
			char *doc = xasprintf("x = %s", v->u.str.ptr);
			struct toml_table *t = toml_parse(doc, strlen(doc), NULL);
			const struct toml_value *x = t ? toml_get(t, "x") : NULL;

			free(doc);
			if (x == NULL || x->type != TOML_DATETIME) {
				toml_free(t);
				reason = "must be an RFC 3339 date-time with an "
				    "offset";
				break;
			}
			fp = open_memstream(&s, &slen);
			toml_write_datetime(fp, x->type, &x->u.dt);
			fclose(fp);
			toml_free(t);
		} else if (v->type == TOML_DATETIME) {
			fp = open_memstream(&s, &slen);
			toml_write_datetime(fp, v->type, &v->u.dt);
			fclose(fp);
		} else {
			goto badtype;
		}
		key_free(k, field);
		*(char **)field = s;
		break;
	}
	case K_STR_OR_LIST:
		if (v->type == TOML_STRING) {
			if (k->choices != NULL &&
			    !in_choices(k->choices, v->u.str.ptr)) {
				choices_text(why, sizeof(why), k->choices);
				diag(ld, CONFIG_ERROR, v->line,
				    "%s: \"%s\" is not one of: %s", path,
				    v->u.str.ptr, why);
				return -1;
			}
			key_free(k, field);
			strlist_push(field, v->u.str.ptr);
			break;
		}
		/* FALLTHROUGH */
	case K_STRLIST: {
		struct strlist l = { NULL, 0 };

		if (v->type != TOML_ARRAY)
			goto badtype;
		for (size_t i = 0; i < v->u.arr.len; i++) {
			const struct toml_value *it = v->u.arr.items[i];

			if (it->type != TOML_STRING ||
			    strlen(it->u.str.ptr) != it->u.str.len) {
				diag(ld, CONFIG_ERROR, it->line,
				    "%s: item %zu: expected a string, got %s",
				    path, i + 1, toml_type_name(it->type));
				strlist_free(&l, 0);
				return -1;
			}
			if (k->choices != NULL &&
			    !in_choices(k->choices, it->u.str.ptr)) {
				choices_text(why, sizeof(why), k->choices);
				diag(ld, CONFIG_ERROR, it->line,
				    "%s: \"%s\" is not one of: %s", path,
				    it->u.str.ptr, why);
				strlist_free(&l, 0);
				return -1;
			}
			strlist_push(&l, it->u.str.ptr);
		}
		key_free(k, field);
		*(struct strlist *)field = l;
		break;
	}
	case K_FLOATLIST: {
		struct doublelist *dl = field;

		if (v->type != TOML_ARRAY)
			goto badtype;
		for (size_t i = 0; i < v->u.arr.len; i++) {
			const struct toml_value *it = v->u.arr.items[i];

			if (it->type != TOML_FLOAT && it->type != TOML_INTEGER) {
				diag(ld, CONFIG_ERROR, it->line,
				    "%s: item %zu: expected a number, got %s",
				    path, i + 1, toml_type_name(it->type));
				return -1;
			}
		}
		key_free(k, field);
		dl->v = xcalloc(v->u.arr.len ? v->u.arr.len : 1, sizeof(double));
		for (size_t i = 0; i < v->u.arr.len; i++) {
			const struct toml_value *it = v->u.arr.items[i];

			dl->v[i] = it->type == TOML_FLOAT ? it->u.flt :
			    (double)it->u.integer;
		}
		dl->n = v->u.arr.len;
		break;
	}
	case K_TABLE:
		if (v->type != TOML_TABLE)
			goto badtype;
		*(const struct toml_table **)field = v->u.table;
		break;
	case K_SECTION:
		if (v->type != TOML_TABLE)
			goto badtype;
		SECTION_LINE(field) = v->line;
		load_section(ld, k->sub, field, v->u.table);
		break;
	case K_SECTION_ARRAY: {
		size_t *count = (size_t *)((char *)field - k->off + k->count_off);
		char *arr;

		if (v->type != TOML_ARRAY)
			goto badtype;
		for (size_t i = 0; i < v->u.arr.len; i++) {
			if (v->u.arr.items[i]->type != TOML_TABLE) {
				diag(ld, CONFIG_ERROR, v->u.arr.items[i]->line,
				    "%s: expected [[%s]] tables, got %s", path,
				    path, toml_type_name(v->u.arr.items[i]->type));
				return -1;
			}
		}
		arr = xcalloc(v->u.arr.len ? v->u.arr.len : 1, k->sub->size);
		*(char **)field = arr;
		*count = v->u.arr.len;
		for (size_t i = 0; i < v->u.arr.len; i++) {
			void *el = arr + i * k->sub->size;

			section_defaults(k->sub, el);
			SECTION_LINE(el) = v->u.arr.items[i]->line;
			load_section(ld, k->sub, el, v->u.arr.items[i]->u.table);
		}
		break;
	}
	}
	if (reason == NULL && k->check != NULL)
		reason = k->check(field, errbuf, sizeof(errbuf));
	if (reason != NULL) {
		diag(ld, CONFIG_ERROR, v->line, "%s: %s", path, reason);
		return -1;
	}
	return 0;

badtype:
	diag(ld, CONFIG_ERROR, v->line, "%s: expected %s, got %s", path,
	    type_wanted(k->type), toml_type_name(v->type));
	return -1;
}

static void
load_section(struct loader *ld, const struct section *sec, void *base,
    const struct toml_table *t)
{
	char path[160];

	for (size_t i = 0; i < t->len; i++) {
		const struct toml_kv *kv = &t->kvs[i];
		const struct key *k = find_key(sec, kv->key);

		if (k == NULL) {
			keypath(path, sizeof(path), sec, kv->key);
			diag(ld, CONFIG_WARNING, kv->line,
			    "unknown key '%s' (ignored)", path);
			continue;
		}
		load_value(ld, sec, k, (char *)base + k->off, kv->val);
	}
}

/*
 * Checkers: each looks at a converted field and returns NULL when it is
 * fine, or a reason (in buf or static).
 */
static const char *
check_periods(const void *field, char *buf, size_t len)
{
	const struct strlist *l = field;
	char err[160];

	if (l->n == 0)
		return "must name at least one period";
	for (size_t i = 0; i < l->n; i++) {
		struct cron *c = cron_parse(l->v[i], err, sizeof(err));

		if (c == NULL) {
			snprintf(buf, len, "invalid period \"%s\": %s", l->v[i],
			    err);
			return buf;
		}
		cron_free(c);
	}
	return NULL;
}

static const char *
check_timezone(const void *field, char *buf, size_t len)
{
	const char *name = *(char *const *)field;
	char err[160];
	struct tz *z;

	if (name == NULL)
		return NULL;
	z = tz_load(name, err, sizeof(err));
	if (z == NULL) {
		snprintf(buf, len, "%s", err);
		return buf;
	}
	tz_free(z);
	return NULL;
}

static const char *
check_environment(const void *field, char *buf, size_t len)
{
	const struct strlist *l = field;

	for (size_t i = 0; i < l->n; i++) {
		const char *eq = strchr(l->v[i], '=');

		if (eq == NULL || eq == l->v[i]) {
			snprintf(buf, len, "\"%s\" is not of the form KEY=value",
			    l->v[i]);
			return buf;
		}
	}
	return NULL;
}

static const char *
check_url(const void *field, char *buf, size_t len)
{
	const char *u = *(char *const *)field;

	(void)buf;
	(void)len;
	if (u == NULL || u[0] == '$')	/* $VAR: expanded when used */
		return NULL;
	if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
		return "must be an http:// or https:// URL";
	if (u[strcspn(u, ":") + 3] == '\0')
		return "has no host";
	return NULL;
}

static const char *
check_listen(const void *field, char *buf, size_t len)
{
	const char *a = *(char *const *)field;
	const char *colon;
	char *end;
	long port;

	(void)buf;
	(void)len;
	if (a == NULL || a[0] == '\0')
		return NULL;
	colon = strrchr(a, ':');
	if (colon == NULL || (a[0] == '[' && colon < strchr(a, ']')))
		return NULL;	/* no port: 9252 is added */
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 ||
	    port > 65535)
		return "must be host:port with a port from 0 to 65535";
	return NULL;
}

/* Docker's RAM sizes: a number with an optional b, k, m or g suffix. */
static const char *
check_size(const void *field, char *buf, size_t len)
{
	const char *s = *(char *const *)field;
	char *end;
	double d;

	(void)buf;
	(void)len;
	if (s == NULL)
		return NULL;
	errno = 0;
	d = strtod(s, &end);
	if (end == s || errno != 0 || d < 0 || isnan(d))
		return "must be a size such as \"128m\" or \"1g\"";
	if (*end != '\0') {
		if (strchr("bBkKmMgGtT", *end) == NULL)
			return "must be a size such as \"128m\" or \"1g\"";
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end != '\0')
			return "must be a size such as \"128m\" or \"1g\"";
	}
	return NULL;
}

static const char *
check_cpus(const void *field, char *buf, size_t len)
{
	const char *s = *(char *const *)field;
	char *end;
	double d;

	(void)buf;
	(void)len;
	if (s == NULL)
		return NULL;
	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(d > 0) || isinf(d))
		return "must be a positive number of CPUs such as \"1.5\"";
	return NULL;
}

static const char *
check_plugin(const void *field, char *buf, size_t len)
{
	const char *s = *(char *const *)field;

	(void)buf;
	(void)len;
	if (s != NULL && s[0] == '\0')
		return "must not be empty";
	return NULL;
}

static const char *
check_executor(const void *field, char *buf, size_t len)
{
	const char *s = *(char *const *)field;
	char runs[100];

	if (s == NULL || in_choices(executors_supported, s))
		return NULL;
	choices_text(runs, sizeof(runs), executors_supported);
	snprintf(buf, len, "%s executor \"%s\" (flotilla runs: %s)",
	    in_choices(executors_known, s) ? "unsupported" : "unknown", s, runs);
	return buf;
}

/* Cross-key rules, once everything is loaded. */
static void
validate(struct loader *ld, struct config *cfg)
{
	for (size_t i = 0; i < cfg->nrunners; i++) {
		struct config_runner *r = &cfg->runners[i];
		const char *label = r->name ? r->name : "";

		if (r->url == NULL || r->url[0] == '\0')
			diag(ld, CONFIG_ERROR, r->line,
			    "runners.url: missing in runner \"%s\"", label);
		if (r->token == NULL || r->token[0] == '\0')
			diag(ld, CONFIG_ERROR, r->line,
			    "runners.token: missing in runner \"%s\"", label);
		if (r->executor == NULL) {
			diag(ld, CONFIG_ERROR, r->line,
			    "runners.executor: missing in runner \"%s\"", label);
		} else if (strcmp(r->executor, "docker-autoscaler") == 0 &&
		    r->autoscaler.plugin == NULL) {
			diag(ld, CONFIG_ERROR,
			    r->autoscaler.line ? r->autoscaler.line : r->line,
			    "runners.autoscaler.plugin: the docker-autoscaler "
			    "executor needs a plugin (e.g. plugin = \"aws\")");
		}
		if (r->autoscaler.connector_config.use_static_credentials &&
		    r->autoscaler.connector_config.username == NULL)
			diag(ld, CONFIG_ERROR,
			    r->autoscaler.connector_config.line ?
			    r->autoscaler.connector_config.line : r->line,
			    "runners.autoscaler.connector_config.username: "
			    "required with use_static_credentials = true");
	}
}

int
config_load_buf(const char *path, const char *buf, size_t len,
    struct config **out, struct config_diags *diags)
{
	struct loader ld = { path, diags };
	struct toml_error terr;
	struct config *cfg;
	struct toml_table *doc;

	*out = NULL;
	memset(diags, 0, sizeof(*diags));
	doc = toml_parse(buf, len, &terr);
	if (doc == NULL) {
		if (terr.col > 0)
			diag(&ld, CONFIG_ERROR, terr.line, "%s (column %d)",
			    terr.msg, terr.col);
		else
			diag(&ld, CONFIG_ERROR, terr.line, "%s", terr.msg);
		return FL_ERR_PARSE;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	section_defaults(&global_section, cfg);
	cfg->path = xstrdup(path);
	cfg->doc = doc;
	load_section(&ld, &global_section, cfg, doc);
	validate(&ld, cfg);
	if (diags->nerrors > 0) {
		config_free(cfg);
		return FL_ERR_INVAL;
	}
	*out = cfg;
	return 0;
}

int
config_load(const char *path, struct config **out,
    struct config_diags *diags)
{
	struct loader ld = { path, diags };
	struct sbuf sb;
	char chunk[8192];
	FILE *fp;
	size_t n;
	int r;

	*out = NULL;
	memset(diags, 0, sizeof(*diags));
	fp = fopen(path, "r");
	if (fp == NULL) {
		r = errno == ENOENT ? FL_ERR_NOTFOUND : FL_ERR_IO;
		diag(&ld, CONFIG_ERROR, 0, "cannot open: %s", strerror(errno));
		return r;
	}
	sbuf_init(&sb);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
		sbuf_add(&sb, chunk, n);
		if (sb.len > 16 * 1024 * 1024) {
			fclose(fp);
			sbuf_release(&sb);
			diag(&ld, CONFIG_ERROR, 0, "file larger than 16 MiB");
			return FL_ERR_TOOBIG;
		}
	}
	if (ferror(fp)) {
		fclose(fp);
		sbuf_release(&sb);
		diag(&ld, CONFIG_ERROR, 0, "read error");
		return FL_ERR_IO;
	}
	fclose(fp);
	r = config_load_buf(path, sb.buf, sb.len, out, diags);
	explicit_bzero(sb.buf, sb.len);	/* it held the tokens */
	sbuf_release(&sb);
	return r;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	section_free(&global_section, cfg);
	toml_free(cfg->doc);
	free(cfg->path);
	free(cfg);
}

void
config_diags_release(struct config_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

char *
config_default_path(void)
{
	const char *home;
	struct passwd *pw;

	if (geteuid() == 0)
		return xstrdup("/etc/flotilla/config.toml");
	home = getenv("HOME");
	if (home == NULL || home[0] == '\0') {
		pw = getpwuid(geteuid());
		home = pw != NULL ? pw->pw_dir : "/";
	}
	return xasprintf("%s/.flotilla/config.toml", home);
}

int
config_policy_preemptive(const struct config_policy *p)
{
	if (p->preemptive_mode != TRI_UNSET)
		return p->preemptive_mode == TRI_TRUE;
	return p->idle_count > 0;
}

int
config_reservation_throttling(const struct config_autoscaler *as)
{
	return as->reservation_throttling != TRI_FALSE;
}

/*
 * The dump: the same tree walk, writing each field.  Scalars of a section
 * come before its sub-tables, as TOML requires.
 */
static void dump_table_body(FILE *fp, const char *path,
    const struct toml_table *t);

/* A free table: its values, then its sub-tables under [path.key]. */
static void
dump_table_body(FILE *fp, const char *path, const struct toml_table *t)
{
	for (size_t i = 0; i < t->len; i++) {
		const struct toml_kv *kv = &t->kvs[i];

		if (kv->val->type == TOML_TABLE)
			continue;
		toml_write_key(fp, kv->key, kv->keylen);
		fputs(" = ", fp);
		toml_write_value(fp, kv->val);
		fputc('\n', fp);
	}
	for (size_t i = 0; i < t->len; i++) {
		const struct toml_kv *kv = &t->kvs[i];
		struct sbuf sub;

		if (kv->val->type != TOML_TABLE)
			continue;
		sbuf_init(&sub);
		sbuf_adds(&sub, path);
		sbuf_addch(&sub, '.');
		{
			char *k = NULL;
			size_t klen = 0;
			FILE *kf = open_memstream(&k, &klen);

			toml_write_key(kf, kv->key, kv->keylen);
			fclose(kf);
			sbuf_add(&sub, k, klen);
			free(k);
		}
		fprintf(fp, "\n[%s]\n", sub.buf);
		dump_table_body(fp, sub.buf, kv->val->u.table);
		sbuf_release(&sub);
	}
}

static void
dump_strlist(FILE *fp, const struct strlist *l, int secret, int show)
{
	fputc('[', fp);
	for (size_t i = 0; i < l->n; i++) {
		if (i > 0)
			fputs(", ", fp);
		if (secret && !show)
			fputs("\"[MASKED]\"", fp);
		else
			toml_write_string(fp, l->v[i], strlen(l->v[i]));
	}
	fputc(']', fp);
}

static void dump_section(FILE *fp, const struct section *sec,
    const void *base, const char *path, int show);

static int
is_subtable(const struct key *k)
{
	return k->type == K_SECTION || k->type == K_SECTION_ARRAY ||
	    k->type == K_TABLE;
}

static void
dump_key(FILE *fp, const struct key *k, const void *field, int show)
{
	switch (k->type) {
	case K_STR: {
		const char *s = *(char *const *)field;

		if (s == NULL)
			return;
		fprintf(fp, "%s = ", k->name);
		if ((k->flags & KF_SECRET) && !show)
			fputs("\"[MASKED]\"", fp);
		else
			toml_write_string(fp, s, strlen(s));
		break;
	}
	case K_DATETIME:
		if (*(char *const *)field == NULL)
			return;
		fprintf(fp, "%s = %s", k->name, *(char *const *)field);
		break;
	case K_INT:
		fprintf(fp, "%s = %" PRId64, k->name, *(const int64_t *)field);
		break;
	case K_BOOL:
		fprintf(fp, "%s = %s", k->name,
		    *(const int *)field ? "true" : "false");
		break;
	case K_TRI: {
		enum tribool t = *(const enum tribool *)field;

		if (t == TRI_UNSET)
			return;
		fprintf(fp, "%s = %s", k->name, t == TRI_TRUE ? "true" : "false");
		break;
	}
	case K_FLOAT:
		fprintf(fp, "%s = ", k->name);
		toml_write_float(fp, *(const double *)field);
		break;
	case K_DUR: {
		char d[DURATION_STRLEN];

		duration_format(*(const int64_t *)field, d, sizeof(d));
		fprintf(fp, "%s = \"%s\"", k->name, d);
		break;
	}
	case K_STRLIST:
	case K_STR_OR_LIST:
		fprintf(fp, "%s = ", k->name);
		dump_strlist(fp, field, k->flags & KF_SECRET, show);
		break;
	case K_FLOATLIST: {
		const struct doublelist *dl = field;

		if (dl->v == NULL)
			return;
		fprintf(fp, "%s = [", k->name);
		for (size_t i = 0; i < dl->n; i++) {
			if (i > 0)
				fputs(", ", fp);
			toml_write_float(fp, dl->v[i]);
		}
		fputc(']', fp);
		break;
	}
	case K_TABLE:
	case K_SECTION:
	case K_SECTION_ARRAY:
		return;
	}
	fputc('\n', fp);
}

static void
dump_section(FILE *fp, const struct section *sec, const void *base,
    const char *path, int show)
{
	char sub[200];

	for (const struct key *k = sec->keys; k->name != NULL; k++)
		if (!is_subtable(k))
			dump_key(fp, k, (const char *)base + k->off, show);
	for (const struct key *k = sec->keys; k->name != NULL; k++) {
		const void *field = (const char *)base + k->off;

		if (!is_subtable(k))
			continue;
		if (path[0] == '\0')
			snprintf(sub, sizeof(sub), "%s", k->name);
		else
			snprintf(sub, sizeof(sub), "%s.%s", path, k->name);
		if (k->type == K_TABLE) {
			const struct toml_table *t =
			    *(const struct toml_table *const *)field;

			if (t == NULL)
				continue;
			fprintf(fp, "\n[%s]\n", sub);
			dump_table_body(fp, sub, t);
		} else if (k->type == K_SECTION) {
			fprintf(fp, "\n[%s]\n", sub);
			dump_section(fp, k->sub, field, sub, show);
		} else {
			const char *arr = *(const char *const *)field;
			size_t count = *(const size_t *)((const char *)base +
			    k->count_off);

			for (size_t i = 0; i < count; i++) {
				fprintf(fp, "\n[[%s]]\n", sub);
				dump_section(fp, k->sub, arr + i * k->sub->size,
				    sub, show);
			}
		}
	}
}

void
config_dump(const struct config *cfg, FILE *fp, int show_secrets)
{
	fprintf(fp, "# effective configuration of %s\n", cfg->path);
	dump_section(fp, &global_section, cfg, "", show_secrets);
}

/* TOML value to JSON, for plugin_config. */
static json_t *
toml_to_json(const struct toml_value *v)
{
	switch (v->type) {
	case TOML_STRING:
		return json_stringn(v->u.str.ptr, v->u.str.len);
	case TOML_INTEGER:
		return json_integer(v->u.integer);
	case TOML_FLOAT:
		return isfinite(v->u.flt) ? json_real(v->u.flt) : json_null();
	case TOML_BOOL:
		return json_boolean(v->u.boolean);
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL: {
		char *s = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&s, &len);
		json_t *j;

		toml_write_datetime(fp, v->type, &v->u.dt);
		fclose(fp);
		j = json_stringn(s, len);
		free(s);
		return j;
	}
	case TOML_ARRAY: {
		json_t *a = json_array();

		for (size_t i = 0; i < v->u.arr.len; i++)
			json_array_append_new(a, toml_to_json(v->u.arr.items[i]));
		return a;
	}
	case TOML_TABLE: {
		json_t *o = json_object();

		for (size_t i = 0; i < v->u.table->len; i++)
			json_object_setn_new(o, v->u.table->kvs[i].key,
			    v->u.table->kvs[i].keylen,
			    toml_to_json(v->u.table->kvs[i].val));
		return o;
	}
	}
	return json_null();
}

char *
config_plugin_json(const struct config_autoscaler *as)
{
	struct toml_value v;
	json_t *j;
	char *s;

	if (as->plugin_config == NULL)
		return xstrdup("{}");
	memset(&v, 0, sizeof(v));
	v.type = TOML_TABLE;
	v.u.table = (struct toml_table *)(uintptr_t)as->plugin_config;
	j = toml_to_json(&v);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (s == NULL)
		return xstrdup("{}");
	return s;
}

static const char *
ktype_name(enum ktype t)
{
	switch (t) {
	case K_STR:		return "string";
	case K_INT:		return "integer";
	case K_BOOL:
	case K_TRI:		return "boolean";
	case K_FLOAT:		return "float";
	case K_DUR:		return "duration";
	case K_DATETIME:	return "datetime";
	case K_STRLIST:		return "[string]";
	case K_STR_OR_LIST:	return "string|[string]";
	case K_FLOATLIST:	return "[float]";
	case K_TABLE:		return "table";
	case K_SECTION:		return "section";
	case K_SECTION_ARRAY:	return "[[section]]";
	}
	return "?";
}

static void
print_keys(FILE *fp, const struct section *sec)
{
	char path[160];

	for (const struct key *k = sec->keys; k->name != NULL; k++) {
		if (k->type == K_SECTION || k->type == K_SECTION_ARRAY) {
			print_keys(fp, k->sub);
			continue;
		}
		keypath(path, sizeof(path), sec, k->name);
		fprintf(fp, "%-58s %-16s %-10s %s\n", path, ktype_name(k->type),
		    k->def ? k->def : "-", k->help);
	}
}

void
config_print_keys(FILE *fp)
{
	fprintf(fp, "%-58s %-16s %-10s %s\n", "KEY", "TYPE", "DEFAULT",
	    "MEANING");
	print_keys(fp, &global_section);
}

int
config_feature_flag(const struct config_runner *rc, const char *name, int def)
{
	const struct toml_value *v;

	if (rc == NULL || rc->feature_flags == NULL)
		return def;
	v = toml_get(rc->feature_flags, name);
	if (v == NULL || v->type != TOML_BOOL)
		return def;
	return v->u.boolean != 0;
}
