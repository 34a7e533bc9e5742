/*
 * The commands that talk to GitLab about runners and edit the config
 * file: register, verify and unregister, as GitLab Runner's
 * (commands/register.go, verify.go, unregister.go).  The file is edited
 * as text (config_edit.h): the new runner is appended, a removed one cut
 * out, every other byte kept; the result must load (config_load_buf)
 * before it replaces the file, atomically.
 *
 * Tokens never appear in our output: log lines carry the short token
 * (log_short_token) and every token is registered with log_add_secret.
 * GitLab Runner takes the token in argv (--token); so do we, but the
 * environment (CI_SERVER_TOKEN, REGISTRATION_TOKEN) keeps it out of ps.
 *
 * Each command runs one event loop of its own for the GitLab client and
 * waits on it for each answer: nothing else runs in these processes.
 *
 * register asks for what it needs unless --non-interactive is given, as
 * GitLab Runner does (the questions are described above reg_ask).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "config.h"
#include "config_edit.h"
#include "err.h"
#include "gitlab.h"
#include "log.h"
#include "systemid.h"
#include "toml.h"
#include "xmalloc.h"

#define GLRT_PREFIX "glrt-"

/* GitLab Runner's Panicln/Fatalln: logged at fatal level; the command
 * then cleans up and exits 1 (log_fatal would exit at once). */
#define fail(...) log_emit(LOG_FATAL, __func__, NULL, 0, __VA_ARGS__)
/* The same from a helper, in the name of its caller's function. */
#define fail_in(func, ...) log_emit(LOG_FATAL, func, NULL, 0, __VA_ARGS__)

static int
is_glrt(const char *tok)
{
	return tok != NULL && strncmp(tok, GLRT_PREFIX, strlen(GLRT_PREFIX)) == 0;
}

/* Go's strconv.ParseBool. */
static int
parse_bool(const char *s, int *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false",
	    "False" };

	for (size_t i = 0; i < 6; i++) {
		if (strcmp(s, t[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int
parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0)
		return -1;
	*out = v;
	return 0;
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ---- waiting for GitLab ---- */

struct client {
	struct event_base *base;
	struct gitlab *gl;
	char system_id[SYSTEMID_LEN + 8];
	char *certs_dir;	/* beside config.toml (gitlab_certs_dir) */
};

struct answer {
	struct event_base *base;
	int done;
	enum gitlab_outcome outcome;
	int err;
	long status;
	char *msg;
	char *correlation_id;
	int64_t runner_id;
	char *token;		/* register: secret */
	char *expires;
};

static int
client_init(struct client *c, const char *config_path)
{
	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	if (c->base == NULL)
		return -1;
	c->gl = gitlab_new(c->base, NULL);
	if (c->gl == NULL) {
		event_base_free(c->base);
		return -1;
	}
	if (config_path != NULL)
		systemid_load(config_path, c->system_id, sizeof(c->system_id));
	c->certs_dir = gitlab_certs_dir(config_path);
	return 0;
}

static void
client_release(struct client *c)
{
	free(c->certs_dir);
	gitlab_free(c->gl);
	event_base_free(c->base);
}

static void
answer_release(struct answer *a)
{
	free(a->msg);
	free(a->correlation_id);
	freezero_str(a->token);
	free(a->expires);
	memset(a, 0, sizeof(*a));
}

static void
answer_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct answer *a = arg;

	(void)req;
	a->done = 1;
	a->outcome = res->outcome;
	a->err = res->err;
	a->status = res->status;
	a->msg = xstrdup(res->msg != NULL ? res->msg : "");
	a->correlation_id = xstrdup(res->correlation_id != NULL ?
	    res->correlation_id : "");
	a->runner_id = res->runner_id;
	a->token = res->token != NULL ? xstrdup(res->token) : NULL;
	if (a->token != NULL)
		log_add_secret(a->token);
	a->expires = xstrdup(res->token_expires_at != NULL ?
	    res->token_expires_at : "");
	event_base_loopbreak(a->base);
}

/* a, empty, ready to take one answer on c's loop; for the callback's
 * argument. */
static struct answer *
answer_begin(struct client *c, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->base = c->base;
	return a;
}

static void
answer_wait(struct client *c, struct answer *a)
{
	while (!a->done)
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0)
			break;
}

/* A runner on the client from loose values; NULL after printing why. */
static struct gitlab_runner *
client_runner(struct client *c, const struct gitlab_runner_conf *conf)
{
	struct gitlab_runner_conf cc = *conf;
	struct gitlab_runner *r;
	char *msg;

	if (cc.certs_dir == NULL)
		cc.certs_dir = c->certs_dir;
	if (gitlab_runner_new(c->gl, &cc, &r, &msg) < 0) {
		log_error("%s", msg);
		free(msg);
		return NULL;
	}
	return r;
}

/* A GitLab call that takes nothing but the runner. */
typedef struct gitlab_req *(*runner_op)(struct gitlab_runner *r, gitlab_cb cb,
    void *arg);

/*
 * op for a runner made from conf, waited for: 0 with *a filled (release
 * it), or -1 after printing why the runner could not be made.
 */
static int
runner_call(struct client *c, const struct gitlab_runner_conf *conf,
    runner_op op, struct answer *a)
{
	struct gitlab_runner *r = client_runner(c, conf);

	if (r == NULL)
		return -1;
	op(r, answer_cb, answer_begin(c, a));
	answer_wait(c, a);
	gitlab_runner_free(r);
	return 0;
}

/* GitLab Runner's runner.Log() fields: runner (short token), runner_name,
 * and correlation_id / status when known. */
static void
runner_log(enum log_level lvl, const char *token, const char *name,
    const struct answer *a, int with_status, const char *msg)
{
	char shortbuf[9], st[512];
	struct log_field f[4];
	size_t n = 0;

	f[n].key = "runner";
	f[n++].value = log_short_token(token != NULL ? token : "", shortbuf);
	if (name != NULL && name[0] != '\0') {
		f[n].key = "runner_name";
		f[n++].value = name;
	}
	if (a != NULL) {
		f[n].key = "correlation_id";
		f[n++].value = a->correlation_id;
		if (with_status) {
			if (a->status > 0)
				snprintf(st, sizeof(st), "%ld", a->status);
			else	/* the transport's reason, as GitLab's text */
				snprintf(st, sizeof(st), "%s", a->msg != NULL ?
				    a->msg : err_str(a->err));
			f[n].key = "status";
			f[n++].value = st;
		}
	}
	log_emit(lvl, "runner", f, n, "%s", msg);
}

/*
 * POST runners/verify for one runner, logging as GitLab Runner does.
 * Returns 0 valid, 1 removed (403), -1 could not tell.
 */
static int
verify_one(struct client *c, const struct gitlab_runner_conf *conf,
    int64_t *id, char **expires)
{
	struct answer a;
	int glrt = is_glrt(conf->token), rc;

	if (runner_call(c, conf, gitlab_verify, &a) != 0)
		return -1;
	if (a.outcome == GITLAB_OK) {
		runner_log(LOG_INFO, conf->token, conf->name, &a, 0, glrt ?
		    "Verifying runner... is valid" :
		    "Verifying runner... is alive");
		if (id != NULL)
			*id = a.runner_id;
		if (expires != NULL)
			*expires = xstrdup(a.expires);
		rc = 0;
	} else if (a.outcome == GITLAB_FORBIDDEN) {
		if (glrt)
			runner_log(LOG_INFO, conf->token, conf->name, &a, 0,
			    "Verifying runner... is not valid");
		else
			runner_log(LOG_ERROR, conf->token, conf->name, &a, 1,
			    "Verifying runner... is removed");
		rc = 1;
	} else {
		runner_log(LOG_ERROR, conf->token, conf->name, &a, 1,
		    a.status > 0 ? "Verifying runner... failed" :
		    "Verifying runner... client error");
		log_debug("%s", a.msg);
		rc = -1;
	}
	answer_release(&a);
	return rc;
}

/*
 * Unregister one runner as GitLab Runner: DELETE runners/managers for a
 * glrt- token (this manager only), DELETE runners otherwise.  0 or -1.
 */
static int
unregister_one(struct client *c, const struct gitlab_runner_conf *conf)
{
	struct answer a;
	int glrt = is_glrt(conf->token), rc;
	const char *what = glrt ?
	    "Unregistering runner manager from GitLab" :
	    "Unregistering runner from GitLab";

	if (runner_call(c, conf, glrt ? gitlab_unregister_manager :
	    gitlab_unregister_runner, &a) != 0)
		return -1;
	if (a.outcome == GITLAB_OK) {
		char m[128];

		snprintf(m, sizeof(m), "%s succeeded", what);
		runner_log(LOG_INFO, conf->token, conf->name, &a, 0, m);
		rc = 0;
	} else {
		char m[256];

		snprintf(m, sizeof(m), "%s %s", what,
		    a.outcome == GITLAB_FORBIDDEN ? "forbidden" :
		    a.status > 0 ? "failed" : "client error");
		runner_log(LOG_ERROR, conf->token, conf->name, &a, 1, m);
		log_debug("%s", a.msg);
		rc = -1;
	}
	answer_release(&a);
	return rc;
}

/* ---- the config file ---- */

/* The file's text, or the new-file text when it does not exist. */
static int
read_config_text(const char *path, char **buf, size_t *len, int *exists)
{
	int rc = config_edit_read_file(path, buf, len);

	*exists = rc == 0;
	if (rc == FL_ERR_NOTFOUND) {
		*buf = xstrdup(CONFIG_EDIT_NEW_FILE);
		*len = strlen(*buf);
		return 0;
	}
	if (rc < 0)
		log_error("%s: %s", path, rc == FL_ERR_IO ? strerror(errno) :
		    err_str(rc));
	return rc;
}

/* Does text load?  Prints every diagnostic when not. */
static int
text_loads(const char *path, const char *text, size_t len, int quiet)
{
	struct config_diags d;
	struct config *cfg = NULL;
	int rc = config_load_buf(path, text, len, &cfg, &d);

	if (rc != 0 && !quiet)
		for (size_t i = 0; i < d.n; i++)
			if (d.v[i].level == CONFIG_ERROR)
				fprintf(stderr, "%s\n", d.v[i].msg);
	config_free(cfg);
	config_diags_release(&d);
	return rc;
}

/* Check, then replace the file. */
static int
save_config(const char *path, const char *text, size_t len)
{
	char err[512];

	if (text_loads(path, text, len, 0) != 0) {
		log_error("%s: the edited configuration would not load; the "
		    "file is left as it was", path);
		return -1;
	}
	if (config_edit_write_file(path, text, len, 0600, err,
	    sizeof(err)) < 0) {
		log_error("Failed to update %s: %s", path, err);
		return -1;
	}
	return 0;
}

/* text without the entries marked in drop[], into a new string. */
static int
remove_entries(const char *path, const char *text, size_t len,
    const int *drop, size_t n, struct sbuf *out)
{
	struct sbuf cur;
	char err[256];

	sbuf_init(&cur);
	sbuf_add(&cur, text, len);
	for (size_t i = n; i-- > 0;) {
		struct sbuf next;

		if (!drop[i])
			continue;
		sbuf_init(&next);
		if (config_edit_remove_runner(cur.buf, cur.len, i, &next, err,
		    sizeof(err)) < 0) {
			log_error("%s: %s", path, err);
			sbuf_release(&next);
			sbuf_release(&cur);
			return -1;
		}
		sbuf_release(&cur);
		cur = next;
	}
	sbuf_add(out, cur.buf, cur.len);
	sbuf_release(&cur);
	return 0;
}

/*
 * What verify and unregister work on: the file as text and as loaded, a
 * GitLab client, and a mark per runner entry to cut out.
 */
struct edit {
	char *path;
	char *text;
	size_t len;
	int exists;
	struct config *cfg;
	int *drop;		/* cfg->nrunners + 1 */
	struct client cl;
	int have_client;
};

/*
 * Load the config file (it must exist when need_file) and start the
 * client.  0, or -1 after printing why (failures in func's name);
 * edit_release either way.
 */
static int
edit_open(struct edit *e, struct cli_globals *g, int need_file,
    const char *func)
{
	memset(e, 0, sizeof(*e));
	e->path = cli_config_path(g);
	if (read_config_text(e->path, &e->text, &e->len, &e->exists) < 0)
		return -1;
	if (need_file && !e->exists) {
		fail_in(func, "%s: no such file", e->path);
		return -1;
	}
	e->cfg = cli_load_config(e->path);
	if (e->cfg == NULL)
		return -1;
	e->drop = xcalloc(e->cfg->nrunners + 1, sizeof(*e->drop));
	if (client_init(&e->cl, e->path) != 0) {
		fail_in(func, "cannot start the GitLab client");
		return -1;
	}
	e->have_client = 1;
	return 0;
}

/* The file without the entries marked in drop, checked and saved. */
static int
edit_save(struct edit *e)
{
	struct sbuf out;
	int rc = 0;

	sbuf_init(&out);
	if (remove_entries(e->path, e->text, e->len, e->drop,
	    e->cfg->nrunners, &out) != 0 ||
	    save_config(e->path, out.buf, out.len) != 0)
		rc = -1;
	explicit_bzero(out.buf, out.len);
	sbuf_release(&out);
	return rc;
}

static void
edit_release(struct edit *e)
{
	if (e->have_client)
		client_release(&e->cl);
	config_free(e->cfg);
	free(e->drop);
	if (e->text != NULL)
		freezero(e->text, e->len);
	free(e->path);
}

/* The runners verify and unregister are asked about. */
struct pick {
	const char *name;	/* -n */
	const char *url;	/* -u */
	const char *token;	/* -t; registered with log_add_secret */
	int flag;		/* verify --delete, unregister --all-runners */
};

/*
 * verify's and unregister's flags: -c, -n, -u, -t, -h and the long
 * option flag_name for o->flag.  Returns -1 when parsed, else the exit
 * code (0 after --help, 2 after printing cmd's usage).
 */
static int
pick_parse(const struct cli_command *cmd, const char *flag_name,
    struct cli_globals *g, int argc, char **argv, struct pick *o)
{
	const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ flag_name, no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:n:u:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'u':
			o->url = optarg;
			break;
		case 't':
			o->token = optarg;
			log_add_secret(o->token);
			break;
		case 'f':
			o->flag = 1;
			break;
		case 'h':
			cli_command_usage(cmd, stdout);
			return 0;
		default:
			cli_command_usage(cmd, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		cli_command_usage(cmd, stderr);
		return 2;
	}
	return -1;
}

/* ---- register ---- */

struct reg {
	int non_interactive;
	int leave_runner;
	const char *url;
	const char *token;		/* --token, CI_SERVER_TOKEN */
	const char *registration_token;	/* -r, REGISTRATION_TOKEN */
	const char *name;
	const char *executor;
	const char *docker_image;
	const char *tag_list;
	int run_untagged;
	int locked;
	const char *access_level;
	int64_t maximum_timeout;
	int paused;
	const char *maintenance_note;
	int64_t limit;
	int64_t request_concurrency;
	const char *template_config;
	const char *tls_ca_file, *tls_cert_file, *tls_key_file;
	const char *plugin;
	int64_t capacity_per_instance, max_use_count, max_instances;
};

enum {
	O_NONINT = 256, O_LEAVE, O_URL, O_TOKEN, O_REGTOKEN, O_NAME,
	O_EXECUTOR, O_IMAGE, O_TAGS, O_UNTAGGED, O_LOCKED, O_ACCESS, O_MAXTO,
	O_PAUSED, O_NOTE, O_LIMIT, O_REQCONC, O_TEMPLATE, O_CA, O_CERT, O_KEY,
	O_PLUGIN, O_CAP, O_MAXUSE, O_MAXINST
};

static int
opt_bool(const char *name, const char *arg, int *out)
{
	if (arg == NULL) {
		*out = 1;
		return 0;
	}
	if (parse_bool(arg, out) != 0) {
		fprintf(stderr, "flotilla register: --%s: not a boolean: %s\n",
		    name, arg);
		return -1;
	}
	return 0;
}

static int
opt_int(const char *name, const char *arg, int64_t *out)
{
	if (parse_int(arg, out) != 0 || *out < 0) {
		fprintf(stderr, "flotilla register: %s: not a number >= 0: "
		    "%s\n", name, arg);
		return -1;
	}
	return 0;
}

/* Environment first; the flags override it. */
static int
reg_from_env(struct reg *o)
{
	static const char *const bools[] = { "REGISTER_NON_INTERACTIVE",
	    "REGISTER_LEAVE_RUNNER", "REGISTER_RUN_UNTAGGED", "REGISTER_LOCKED",
	    "REGISTER_PAUSED" };
	int *bdst[] = { &o->non_interactive, &o->leave_runner,
	    &o->run_untagged, &o->locked, &o->paused };
	const char *v;

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if ((v = env(bools[i])) != NULL &&
		    opt_bool(bools[i], v, bdst[i]) != 0)
			return -1;
	o->url = env("CI_SERVER_URL");
	o->token = env("CI_SERVER_TOKEN");
	o->registration_token = env("REGISTRATION_TOKEN");
	if ((v = env("RUNNER_NAME")) != NULL)
		o->name = v;
	o->executor = env("RUNNER_EXECUTOR");
	o->docker_image = env("DOCKER_IMAGE");
	o->tag_list = env("RUNNER_TAG_LIST");
	o->access_level = env("REGISTER_ACCESS_LEVEL");
	o->maintenance_note = env("REGISTER_MAINTENANCE_NOTE");
	o->template_config = env("TEMPLATE_CONFIG_FILE");
	o->tls_ca_file = env("CI_SERVER_TLS_CA_FILE");
	o->tls_cert_file = env("CI_SERVER_TLS_CERT_FILE");
	o->tls_key_file = env("CI_SERVER_TLS_KEY_FILE");
	if ((v = env("REGISTER_MAXIMUM_TIMEOUT")) != NULL &&
	    opt_int("REGISTER_MAXIMUM_TIMEOUT", v, &o->maximum_timeout) != 0)
		return -1;
	if ((v = env("RUNNER_LIMIT")) != NULL &&
	    opt_int("RUNNER_LIMIT", v, &o->limit) != 0)
		return -1;
	if ((v = env("RUNNER_REQUEST_CONCURRENCY")) != NULL &&
	    opt_int("RUNNER_REQUEST_CONCURRENCY", v,
	    &o->request_concurrency) != 0)
		return -1;
	return 0;
}

static const struct option reg_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "non-interactive", optional_argument, NULL, O_NONINT },
	{ "leave-runner", optional_argument, NULL, O_LEAVE },
	{ "url", required_argument, NULL, O_URL },
	{ "token", required_argument, NULL, O_TOKEN },
	{ "registration-token", required_argument, NULL, O_REGTOKEN },
	{ "name", required_argument, NULL, O_NAME },
	{ "description", required_argument, NULL, O_NAME },
	{ "executor", required_argument, NULL, O_EXECUTOR },
	{ "docker-image", required_argument, NULL, O_IMAGE },
	{ "tag-list", required_argument, NULL, O_TAGS },
	{ "run-untagged", optional_argument, NULL, O_UNTAGGED },
	{ "locked", optional_argument, NULL, O_LOCKED },
	{ "access-level", required_argument, NULL, O_ACCESS },
	{ "maximum-timeout", required_argument, NULL, O_MAXTO },
	{ "paused", optional_argument, NULL, O_PAUSED },
	{ "maintenance-note", required_argument, NULL, O_NOTE },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "request-concurrency", required_argument, NULL, O_REQCONC },
	{ "template-config", required_argument, NULL, O_TEMPLATE },
	{ "tls-ca-file", required_argument, NULL, O_CA },
	{ "tls-cert-file", required_argument, NULL, O_CERT },
	{ "tls-key-file", required_argument, NULL, O_KEY },
	{ "autoscaler-plugin", required_argument, NULL, O_PLUGIN },
	{ "autoscaler-capacity-per-instance", required_argument, NULL, O_CAP },
	{ "autoscaler-max-use-count", required_argument, NULL, O_MAXUSE },
	{ "autoscaler-max-instances", required_argument, NULL, O_MAXINST },
	{ NULL, 0, NULL, 0 }
};

/* 0 parsed, 1 --help printed, -1 bad usage (printed). */
static int
reg_parse(struct cli_globals *g, int argc, char **argv, struct reg *o)
{
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "c:hnt:r:u:", reg_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'h':
			cli_command_usage(&cmd_register, stdout);
			return 1;
		case 'n':
			o->non_interactive = 1;
			break;
		case O_NONINT:
			rc = opt_bool("non-interactive", optarg,
			    &o->non_interactive);
			break;
		case O_LEAVE:
			rc = opt_bool("leave-runner", optarg, &o->leave_runner);
			break;
		case 'u':
		case O_URL:
			o->url = optarg;
			break;
		case 't':
		case O_TOKEN:
			o->token = optarg;
			break;
		case 'r':
		case O_REGTOKEN:
			o->registration_token = optarg;
			break;
		case O_NAME:
			o->name = optarg;
			break;
		case O_EXECUTOR:
			o->executor = optarg;
			break;
		case O_IMAGE:
			o->docker_image = optarg;
			break;
		case O_TAGS:
			o->tag_list = optarg;
			break;
		case O_UNTAGGED:
			rc = opt_bool("run-untagged", optarg, &o->run_untagged);
			break;
		case O_LOCKED:
			rc = opt_bool("locked", optarg, &o->locked);
			break;
		case O_ACCESS:
			o->access_level = optarg;
			break;
		case O_MAXTO:
			rc = opt_int("--maximum-timeout", optarg,
			    &o->maximum_timeout);
			break;
		case O_PAUSED:
			rc = opt_bool("paused", optarg, &o->paused);
			break;
		case O_NOTE:
			o->maintenance_note = optarg;
			break;
		case O_LIMIT:
			rc = opt_int("--limit", optarg, &o->limit);
			break;
		case O_REQCONC:
			rc = opt_int("--request-concurrency", optarg,
			    &o->request_concurrency);
			break;
		case O_TEMPLATE:
			o->template_config = optarg;
			break;
		case O_CA:
			o->tls_ca_file = optarg;
			break;
		case O_CERT:
			o->tls_cert_file = optarg;
			break;
		case O_KEY:
			o->tls_key_file = optarg;
			break;
		case O_PLUGIN:
			o->plugin = optarg;
			break;
		case O_CAP:
			rc = opt_int("--autoscaler-capacity-per-instance",
			    optarg, &o->capacity_per_instance);
			break;
		case O_MAXUSE:
			rc = opt_int("--autoscaler-max-use-count", optarg,
			    &o->max_use_count);
			break;
		case O_MAXINST:
			rc = opt_int("--autoscaler-max-instances", optarg,
			    &o->max_instances);
			break;
		default:
			cli_command_usage(&cmd_register, stderr);
			return -1;
		}
		if (rc != 0)
			return -1;
	}
	if (optind != argc) {
		cli_command_usage(&cmd_register, stderr);
		return -1;
	}
	return 0;
}

/* The template's one [[runners]] table; NULL after printing why. */
static struct toml_table *
load_template(const char *path, const struct toml_table **runner)
{
	struct toml_error terr;
	struct toml_table *doc = toml_parse_file(path, &terr);
	const struct toml_value *v;

	if (doc == NULL) {
		fail("Could not handle configuration merging from "
		    "template file: %s:%d: %s", path, terr.line, terr.msg);
		return NULL;
	}
	v = toml_get(doc, "runners");
	if (v == NULL || v->type != TOML_ARRAY || v->u.arr.len != 1 ||
	    v->u.arr.items[0]->type != TOML_TABLE) {
		fail("Could not handle configuration merging from "
		    "template file: configuration template must contain "
		    "exactly one [[runners]] entry");
		toml_free(doc);
		return NULL;
	}
	*runner = v->u.arr.items[0]->u.table;
	return doc;
}

/* A string key of a template sub-table (docker.image ...), or NULL. */
static const struct toml_value *
tmpl_get(const struct toml_table *t, const char *sect, const char *key)
{
	const struct toml_value *s;

	if (t == NULL)
		return NULL;
	s = toml_get(t, sect);
	if (s == NULL || s->type != TOML_TABLE)
		return NULL;
	return toml_get(s->u.table, key);
}

/* GitLab Runner's askDocker: keep the volumes, add "/cache" unless one
 * ends in /cache or disable_cache is set.  Returns a NULL-terminated
 * vector (free it; the strings are borrowed). */
static const char **
docker_volumes(const struct toml_table *tmpl)
{
	const struct toml_value *v = tmpl_get(tmpl, "docker", "volumes");
	const struct toml_value *dc = tmpl_get(tmpl, "docker",
	    "disable_cache");
	size_t n = v != NULL && v->type == TOML_ARRAY ? v->u.arr.len : 0;
	const char **out = xcalloc(n + 2, sizeof(*out));
	size_t k = 0;
	int have = 0;

	for (size_t i = 0; i < n; i++) {
		const struct toml_value *it = v->u.arr.items[i];
		const char *s, *colon;

		if (it->type != TOML_STRING)
			continue;
		s = it->u.str.ptr;
		out[k++] = s;
		colon = strrchr(s, ':');
		if (strcmp(colon != NULL ? colon + 1 : s, "/cache") == 0)
			have = 1;
	}
	if (!have && !(dc != NULL && dc->type == TOML_BOOL && dc->u.boolean))
		out[k++] = "/cache";
	out[k] = NULL;
	return (const char **)out;
}

/* The runner being registered, with token, as the client takes it. */
static void
reg_runner_conf(struct gitlab_runner_conf *conf, const struct reg *o,
    const char *token, const char *system_id)
{
	memset(conf, 0, sizeof(*conf));
	conf->name = o->name;
	conf->url = o->url;
	conf->token = token;
	conf->tls_ca_file = o->tls_ca_file;
	conf->tls_cert_file = o->tls_cert_file;
	conf->tls_key_file = o->tls_key_file;
	conf->executor = o->executor;
	conf->system_id = system_id;
}

/* ---- register's questions ---- */

/*
 * Without --non-interactive, register asks as GitLab Runner's does
 * (commands/register.go askRunner, askExecutor, askDocker), in this
 * order:
 *
 *   url           "Enter the GitLab instance URL (for example, ...):"
 *   -t TOKEN that is not glrt-: verified at once, then the executor
 *   token         "Enter the registration token:" (unless -t or -r
 *                 gave one)
 *   glrt- token:  verified at once ("Verifying runner... is valid"),
 *                 then "Enter a name for the runner. This is stored
 *                 only in the local config.toml file:"
 *   legacy token: "Enter a description for the runner:", "Enter tags
 *                 for the runner (comma-separated):", "Enter optional
 *                 maintenance note for the runner:"
 *   executor      "Enter an executor: docker-autoscaler:", asked again
 *                 after an unsupported answer
 *   docker image  "Enter the default Docker image (for example, ...):"
 *
 * Each question is a line on stderr (where GitLab Runner's Go println
 * writes them, beside the log), then "[value]: " when a flag, the
 * environment, the template or the host name gives a value: an empty
 * answer takes it.  An empty answer to a question that needs one asks
 * it again; tags and the note may stay empty.  Answers are trimmed.
 * End of input before an answer is an error (exit 1, nothing written,
 * nothing registered).
 *
 * The token is never shown: a token given by flag or environment is not
 * asked for (GitLab Runner would print it as the default), and one typed
 * on a terminal is read with echo off.  Unlike GitLab Runner, a legacy
 * registration token registers the runner (POST runners) only once every
 * question is answered and the entry is known to load, so an abandoned
 * session leaves no runner behind in GitLab to unregister.
 */

#define ASK_MAX 4096		/* an answer's bytes, newline excluded */

struct asker {
	char **kept;		/* the answers (wiped when freed) */
	size_t nkept;
};

/* The terminal's settings while a secret is read, for the signal
 * handler to put back. */
static struct termios ask_tio;
static volatile sig_atomic_t ask_tio_saved;

static void
ask_signal(int sig)
{
	if (ask_tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &ask_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * One line from stdin, byte by byte (nothing is read past it, and no
 * stdio buffer keeps a copy of a token).  A last line without a newline
 * counts.  0 with buf NUL-terminated, 1 at end of input, -1 on a read
 * error (errno), -2 when longer than size - 1.
 */
static int
ask_read_line(char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(STDIN_FILENO, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			if (n == 0)
				return 1;
			break;
		}
		if (ch == '\n')
			break;
		if (n + 1 >= size)
			return -2;
		buf[n++] = ch;
	}
	buf[n] = '\0';
	return 0;
}

/* The signal dispositions ask_echo_off replaced. */
static const int ask_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
static struct sigaction ask_old_sa[4];

/*
 * Turn the terminal's echo off when stdin is one (before the question is
 * printed, so nothing typed after it shows), keeping the newline's echo;
 * a signal meanwhile puts the settings back before it takes effect.
 * Typed-ahead input is kept (TCSANOW).
 */
static void
ask_echo_off(void)
{
	struct sigaction sa;
	struct termios quiet;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &ask_tio) != 0)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ask_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 4; i++)
		sigaction(ask_sigs[i], &sa, &ask_old_sa[i]);
	ask_tio_saved = 1;
	quiet = ask_tio;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
}

static void
ask_echo_on(void)
{
	int saved_errno = errno;

	if (!ask_tio_saved)
		return;
	tcsetattr(STDIN_FILENO, TCSANOW, &ask_tio);
	ask_tio_saved = 0;
	for (size_t i = 0; i < 4; i++)
		sigaction(ask_sigs[i], &ask_old_sa[i], NULL);
	errno = saved_errno;
}

/* s without its leading and trailing white space, in place. */
static char *
ask_trim(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static const char *
ask_keep(struct asker *k, const char *s)
{
	k->kept = xreallocarray(k->kept, k->nkept + 1, sizeof(*k->kept));
	k->kept[k->nkept] = xstrdup(s);
	return k->kept[k->nkept++];
}

static void
asker_release(struct asker *k)
{
	for (size_t i = 0; i < k->nkept; i++)
		freezero_str(k->kept[i]);
	free(k->kept);
	memset(k, 0, sizeof(*k));
}

/*
 * Ask one question; def (NULL or "" for none) is taken on an empty
 * answer, and shown unless secret.  *val is the answer, def, or NULL
 * when empty answers are allowed and there is neither.  0, or -1 after
 * printing why (end of input, read error).
 */
static int
ask(struct asker *k, const char *prompt, const char *def, int allow_empty,
    int secret, const char **val)
{
	char buf[ASK_MAX + 1];
	int have_def = def != NULL && def[0] != '\0';

	for (;;) {
		char *t;
		int rc;

		if (secret)
			ask_echo_off();
		fprintf(stderr, "%s\n", prompt);
		if (have_def && !secret)
			fprintf(stderr, "[%s]: ", def);
		fflush(stderr);
		rc = ask_read_line(buf, sizeof(buf));
		if (secret)
			ask_echo_on();
		if (rc != 0) {
			if (have_def && !secret)
				fputc('\n', stderr);	/* end "[x]: " */
			if (rc == 1)
				fail_in("register", "Unexpected EOF. Did you "
				    "mean to use --non-interactive?");
			else if (rc == -2)
				fail_in("register", "The answer is longer "
				    "than %d bytes", ASK_MAX);
			else
				fail_in("register", "Cannot read the answer: "
				    "%s", strerror(errno));
			explicit_bzero(buf, sizeof(buf));
			return -1;
		}
		t = ask_trim(buf);
		if (t[0] != '\0') {
			*val = ask_keep(k, t);
			if (secret)
				log_add_secret(*val);
			explicit_bzero(buf, sizeof(buf));
			return 0;
		}
		if (have_def || allow_empty) {
			*val = have_def ? def : NULL;
			return 0;
		}
	}
}

/* mkdir -p of the directory path is in, so that the system ID can be
 * stored beside the file before the first call to GitLab. */
static void
make_config_dir(const char *path)
{
	char *copy = xstrdup(path);
	char *dir = dirname(copy);

	for (char *s = dir + 1; ; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			break;
		*s = c;
		if (c == '\0')
			break;
	}
	free(copy);
}

/* GitLab Runner's ensureServerConfigArgsEmpty for a glrt- token: 0, or
 * -1 after printing why. */
static int
reg_check_reserved(const struct reg *o, const char *token)
{
	if (!is_glrt(token) || (o->locked && o->access_level == NULL &&
	    !o->run_untagged && o->maximum_timeout == 0 && !o->paused &&
	    o->tag_list == NULL && o->maintenance_note == NULL))
		return 0;
	if (o->registration_token != NULL &&
	    strcmp(o->registration_token, token) == 0) {
		log_warn("You have specified an authentication token "
		    "in the legacy parameter --registration-token: "
		    "--locked, --access-level, --run-untagged, "
		    "--maximum-timeout, --paused, --tag-list and "
		    "--maintenance-note are ignored");
		return 0;
	}
	fail_in("register_run", "Runner configuration other than name and "
	    "executor configuration is reserved (specifically "
	    "--locked, --access-level, --run-untagged, "
	    "--maximum-timeout, --paused, --tag-list, and "
	    "--maintenance-note) and cannot be specified when "
	    "registering with a runner authentication token. "
	    "This configuration is specified on the GitLab "
	    "server. Please try again without specifying any "
	    "of those arguments.");
	return -1;
}

/* What the questions found out beyond the values in struct reg. */
struct reg_asked {
	int verified;		/* GitLab verified the token already */
	int64_t id;		/* glrt-: the runner's id */
	char *expires;		/* glrt-: token_expires_at */
};

/*
 * The questions above, filling o (strings kept in k).  cl is started
 * here (*have_client set) when a token is verified.  0, or -1 after
 * printing why.
 */
static int
reg_ask(struct reg *o, struct asker *k, const struct toml_table *tmpl,
    const char *path, struct client *cl, int *have_client,
    struct reg_asked *out)
{
	const char *v, *token;
	const struct toml_value *ti;

	if (ask(k, "Enter the GitLab instance URL (for example, "
	    "https://gitlab.com/):", o->url, 0, 0, &o->url) != 0)
		return -1;
	token = o->token;
	if (token == NULL || is_glrt(token)) {
		if (token == NULL)
			token = o->registration_token;
		if (token == NULL) {
			if (ask(k, "Enter the registration token:", NULL, 0, 1,
			    &token) != 0)
				return -1;
			/* where a flag would have put it */
			if (is_glrt(token))
				o->token = token;
			else
				o->registration_token = token;
		}
	}
	if (is_glrt(token) && reg_check_reserved(o, token) != 0)
		return -1;
	if (o->token != NULL || is_glrt(token)) {
		struct gitlab_runner_conf conf;
		int glrt = is_glrt(token);

		make_config_dir(path);
		if (client_init(cl, path) != 0) {
			fail_in("register_run", "cannot start the GitLab "
			    "client");
			return -1;
		}
		*have_client = 1;
		reg_runner_conf(&conf, o, token, cl->system_id);
		if (!glrt) {
			log_info("Token specified trying to verify runner...");
			log_warn("If you want to register use the '-r' instead "
			    "of '-t'.");
		}
		if (verify_one(cl, &conf, glrt ? &out->id : NULL,
		    glrt ? &out->expires : NULL) != 0 ||
		    (glrt && out->id == 0)) {
			fail_in("register_run", glrt ?
			    "Failed to verify the runner." :
			    "Failed to verify the runner. You may be having "
			    "network problems.");
			return -1;
		}
		out->verified = 1;
		if (glrt && ask(k, "Enter a name for the runner. This is "
		    "stored only in the local config.toml file:", o->name, 0,
		    0, &o->name) != 0)
			return -1;
	} else {
		if (ask(k, "Enter a description for the runner:", o->name, 0,
		    0, &o->name) != 0 ||
		    ask(k, "Enter tags for the runner (comma-separated):",
		    o->tag_list, 1, 0, &o->tag_list) != 0 ||
		    ask(k, "Enter optional maintenance note for the runner:",
		    o->maintenance_note, 1, 0, &o->maintenance_note) != 0)
			return -1;
	}
	v = o->executor;
	for (;;) {
		if (ask(k, "Enter an executor: docker-autoscaler:", v, 1, 0,
		    &v) != 0)
			return -1;
		if (v != NULL && strcmp(v, "docker-autoscaler") == 0)
			break;
		log_error("Invalid executor specified: flotilla runs the "
		    "docker-autoscaler executor only");
		v = NULL;
	}
	o->executor = v;
	v = o->docker_image;
	ti = tmpl_get(tmpl, "docker", "image");
	if (v == NULL && ti != NULL && ti->type == TOML_STRING)
		v = ti->u.str.ptr;
	return ask(k, "Enter the default Docker image (for example, "
	    "ruby:3.3):", v, 0, 0, &o->docker_image);
}

static int
register_run(struct cli_globals *g, int argc, char **argv)
{
	struct reg o;
	struct config_edit_runner er;
	struct toml_table *tdoc = NULL;
	const struct toml_table *tmpl = NULL;
	const char **vols = NULL;
	char *path = NULL, *text = NULL, *entry = NULL, *hostname = NULL;
	char *expires = NULL, *new_token = NULL;
	size_t len = 0;
	int exists, rc = 1, registered = 0, prc;
	int64_t id = 0;
	const char *token;
	struct client cl;
	int have_client = 0;
	struct sbuf out;
	struct asker asker = { NULL, 0 };
	struct reg_asked asked = { 0, 0, NULL };

	memset(&o, 0, sizeof(o));
	o.locked = 1;		/* GitLab Runner's default */
	o.limit = -1;
	o.request_concurrency = -1;
	o.capacity_per_instance = o.max_use_count = o.max_instances = -1;
	sbuf_init(&out);
	if (reg_from_env(&o) != 0) {
		rc = 2;
		goto out;
	}
	prc = reg_parse(g, argc, argv, &o);
	if (prc != 0) {
		rc = prc > 0 ? 0 : 2;
		goto out;
	}
	if (o.token != NULL)
		log_add_secret(o.token);
	if (o.registration_token != NULL)
		log_add_secret(o.registration_token);
	if (o.access_level != NULL && o.access_level[0] != '\0' &&
	    strcmp(o.access_level, "not_protected") != 0 &&
	    strcmp(o.access_level, "ref_protected") != 0) {
		fail("Given access-level is not valid. Refer to flotilla "
		    "register -h for the correct options.");
		goto out;
	}
	if (o.template_config != NULL) {
		log_info("Merging configuration from template file \"%s\"",
		    o.template_config);
		tdoc = load_template(o.template_config, &tmpl);
		if (tdoc == NULL)
			goto out;
	}
	/* The file first, as GitLab Runner: no questions for a file that
	 * could not take the answers. */
	path = cli_config_path(g);
	if (read_config_text(path, &text, &len, &exists) < 0)
		goto out;
	if (exists && text_loads(path, text, len, 0) != 0) {
		fail("%s: the configuration is not valid; fix it first",
		    path);
		goto out;
	}
	if (o.name == NULL) {
		hostname = xmalloc(256);
		if (gethostname(hostname, 256) != 0)
			hostname[0] = '\0';
		hostname[255] = '\0';
		o.name = hostname;
	}
	if (!o.non_interactive && reg_ask(&o, &asker, tmpl, path, &cl,
	    &have_client, &asked) != 0)
		goto out;
	if (o.url == NULL) {
		fail("The url needs to be entered");
		goto out;
	}
	/* GitLab Runner: a --token that is not glrt- is an existing
	 * runner's token to verify; else the token to register with. */
	token = o.token;
	if (token == NULL || is_glrt(token)) {
		if (token == NULL)
			token = o.registration_token;
		if (token == NULL) {
			fail("The registration-token needs to be entered");
			goto out;
		}
	}
	if (o.executor == NULL) {
		fail("The executor needs to be entered");
		goto out;
	}
	if (strcmp(o.executor, "docker-autoscaler") != 0) {
		fail("Invalid executor specified: flotilla runs the "
		    "docker-autoscaler executor only");
		goto out;
	}
	if (o.docker_image == NULL) {
		const struct toml_value *v = tmpl_get(tmpl, "docker", "image");

		if (v == NULL || v->type != TOML_STRING) {
			fail("The docker-image needs to be entered");
			goto out;
		}
	}
	if (!asked.verified && reg_check_reserved(&o, token) != 0)
		goto out;
	if (o.tag_list == NULL || o.tag_list[0] == '\0')
		o.run_untagged = 1;

	/* The entry, with a stand-in token: would the file load? */
	vols = docker_volumes(tmpl);
	memset(&er, 0, sizeof(er));
	er.name = o.name;
	er.url = o.url;
	er.id = 0;
	er.token = "glrt-flotilla-stand-in";
	er.token_obtained_at = (int64_t)time(NULL);
	er.executor = o.executor;
	er.tls_ca_file = o.tls_ca_file;
	er.tls_cert_file = o.tls_cert_file;
	er.tls_key_file = o.tls_key_file;
	er.limit = o.limit;
	er.request_concurrency = o.request_concurrency;
	er.docker_image = o.docker_image;
	er.docker_volumes = vols;
	er.autoscaler_plugin = o.plugin;
	er.capacity_per_instance = o.capacity_per_instance;
	er.max_use_count = o.max_use_count;
	er.max_instances = o.max_instances;
	er.tmpl = tmpl;
	entry = config_edit_runner_text(&er);
	config_edit_append(text, len, entry, &out);
	freezero_str(entry);
	entry = NULL;
	if (text_loads(path, out.buf, out.len, 0) != 0) {
		fail("%s: the runner would make the configuration "
		    "invalid (above); nothing was registered", path);
		goto out;
	}
	sbuf_reset(&out);

	if (!exists) {
		/* The system ID lives beside the file. */
		char err[256];

		if (config_edit_write_file(path, text, len, 0600, err,
		    sizeof(err)) < 0) {
			fail("%s", err);
			goto out;
		}
	}
	if (!have_client && client_init(&cl, path) != 0) {
		fail("cannot start the GitLab client");
		goto out;
	}
	have_client = 1;
	{
		struct gitlab_runner_conf conf;

		reg_runner_conf(&conf, &o, token, cl.system_id);
		if (asked.verified) {
			/* verified while asking */
			new_token = xstrdup(token);
			if (is_glrt(token)) {
				id = asked.id;
				expires = asked.expires;
				asked.expires = NULL;
				registered = 1;
			}
		} else if (o.token != NULL && !is_glrt(o.token)) {
			log_info("Token specified trying to verify runner...");
			log_warn("If you want to register use the '-r' instead "
			    "of '-t'.");
			if (verify_one(&cl, &conf, NULL, NULL) != 0) {
				fail("Failed to verify the runner. You may "
				    "be having network problems.");
				goto out;
			}
			new_token = xstrdup(token);
		} else if (is_glrt(token)) {
			if (verify_one(&cl, &conf, &id, &expires) != 0 ||
			    id == 0) {
				fail("Failed to verify the runner.");
				goto out;
			}
			new_token = xstrdup(token);
			registered = 1;
		} else {
			struct gitlab_runner *r = client_runner(&cl, &conf);
			struct gitlab_register p;
			struct answer a;

			if (r == NULL)
				goto out;
			memset(&p, 0, sizeof(p));
			p.description = o.name;
			p.maintenance_note = o.maintenance_note;
			p.tag_list = o.tag_list;
			p.run_untagged = o.run_untagged;
			p.locked = o.locked;
			p.access_level = o.access_level;
			p.maximum_timeout = o.maximum_timeout;
			p.paused = o.paused;
			log_warn("Support for registration tokens and runner "
			    "parameters in the 'register' command has been "
			    "deprecated in GitLab Runner 15.6 and will be "
			    "replaced with support for authentication tokens. "
			    "For more information, see "
			    "https://docs.gitlab.com/ci/runners/"
			    "new_creation_workflow/");
			gitlab_register_runner(r, &p, answer_cb,
			    answer_begin(&cl, &a));
			answer_wait(&cl, &a);
			if (a.outcome == GITLAB_OK) {
				runner_log(LOG_INFO, token, o.name, &a, 0,
				    "Registering runner... succeeded");
				id = a.runner_id;
				new_token = xstrdup(a.token);
				expires = xstrdup(a.expires);
				registered = 1;
			} else {
				runner_log(LOG_ERROR, token, o.name, &a, 1,
				    a.outcome == GITLAB_FORBIDDEN ?
				    "Registering runner... forbidden (check "
				    "registration token)" : a.status > 0 ?
				    "Registering runner... failed" :
				    "Registering runner... client error");
				log_error("%s", a.msg);
			}
			answer_release(&a);
			gitlab_runner_free(r);
			if (!registered) {
				fail("Failed to register the runner.");
				goto out;
			}
		}
	}

	er.id = id;
	er.token = new_token;
	er.token_expires_at = expires;
	if (o.token != NULL && !is_glrt(o.token))
		er.token_obtained_at = 0;	/* GitLab Runner leaves it */
	entry = config_edit_runner_text(&er);
	config_edit_append(text, len, entry, &out);
	if (save_config(path, out.buf, out.len) != 0) {
		if (registered && !o.leave_runner) {
			struct gitlab_runner_conf conf;

			reg_runner_conf(&conf, &o, new_token, cl.system_id);
			unregister_one(&cl, &conf);
		}
		goto out;
	}
	{
		struct config *cfg = NULL;
		struct config_diags d;

		if (config_load_buf(path, out.buf, out.len, &cfg, &d) == 0) {
			if (o.limit > cfg->concurrent)
				log_warn("The specified runner job concurrency "
				    "limit (%lld) is larger than current global "
				    "concurrency limit (%lld). The global "
				    "concurrent limit will not be increased and "
				    "takes precedence.", (long long)o.limit,
				    (long long)cfg->concurrent);
			if (o.request_concurrency > cfg->concurrent)
				log_warn("The specified runner request "
				    "concurrency (%lld) is larger than the "
				    "current global concurrent limit (%lld). The "
				    "global concurrent limit will not be "
				    "increased and takes precedence.",
				    (long long)o.request_concurrency,
				    (long long)cfg->concurrent);
		}
		config_free(cfg);
		config_diags_release(&d);
	}
	log_info("Runner registered successfully. Feel free to start it, but "
	    "if it's running already the config should be automatically "
	    "reloaded!");
	log_info("Configuration (with the authentication token) was saved in "
	    "\"%s\"", path);
	rc = 0;
out:
	if (have_client)
		client_release(&cl);
	if (out.buf != NULL)
		explicit_bzero(out.buf, out.len);
	sbuf_release(&out);
	freezero_str(entry);
	freezero_str(new_token);
	free(expires);
	free(vols);
	free(text);
	free(path);
	free(hostname);
	free(asked.expires);
	asker_release(&asker);
	toml_free(tdoc);
	return rc;
}

const struct cli_command cmd_register = {
	"register",
	"Register a runner with GitLab and add it to the config file.",
	"[-n] [--url URL] [--token TOKEN | -r TOKEN] "
	"[--executor docker-autoscaler] [--docker-image IMAGE] [options]",
	"  Without -n, register asks (on stderr, answers from stdin) for the\n"
	"  URL, the token (unless given; read without echo on a terminal), the\n"
	"  name (registration token: description, tags, note), the executor\n"
	"  and the image; a value in [brackets] is taken on an empty answer.\n"
	"  -n, --non-interactive  no questions: a missing value is an error\n"
	"                         (REGISTER_NON_INTERACTIVE)\n"
	"  -u, --url URL          GitLab instance URL (CI_SERVER_URL)\n"
	"  -t, --token TOKEN      runner authentication token, glrt-... "
	"(CI_SERVER_TOKEN;\n"
	"                         the environment keeps it out of ps: safer)\n"
	"  -r, --registration-token TOKEN\n"
	"                         legacy registration token, deprecated "
	"(REGISTRATION_TOKEN)\n"
	"      --name NAME        runner name, default the host name "
	"(RUNNER_NAME;\n"
	"                         also --description)\n"
	"      --executor E       docker-autoscaler (RUNNER_EXECUTOR)\n"
	"      --docker-image IMG default job image (DOCKER_IMAGE)\n"
	"      --limit N          jobs at once, 0 unlimited (RUNNER_LIMIT)\n"
	"      --request-concurrency N\n"
	"                         job requests in flight "
	"(RUNNER_REQUEST_CONCURRENCY)\n"
	"      --template-config FILE\n"
	"                         a config with one [[runners]] entry whose "
	"keys fill\n"
	"                         in the rest, [runners.autoscaler] included\n"
	"                         (TEMPLATE_CONFIG_FILE)\n"
	"      --tls-ca-file F, --tls-cert-file F, --tls-key-file F\n"
	"                         TLS towards GitLab (CI_SERVER_TLS_CA_FILE, "
	"...)\n"
	"      --leave-runner     keep the runner in GitLab if saving fails\n"
	"                         (REGISTER_LEAVE_RUNNER)\n"
	"  Legacy registration tokens only (refused with glrt- tokens):\n"
	"      --tag-list a,b     (RUNNER_TAG_LIST)\n"
	"      --run-untagged[=BOOL]  (REGISTER_RUN_UNTAGGED; true without "
	"tags)\n"
	"      --locked[=BOOL]    (REGISTER_LOCKED; default true)\n"
	"      --access-level L   not_protected or ref_protected "
	"(REGISTER_ACCESS_LEVEL)\n"
	"      --maximum-timeout S  (REGISTER_MAXIMUM_TIMEOUT)\n"
	"      --paused[=BOOL]    (REGISTER_PAUSED)\n"
	"      --maintenance-note TEXT  (REGISTER_MAINTENANCE_NOTE)\n"
	"  flotilla's own (GitLab Runner takes these from --template-config):\n"
	"      --autoscaler-plugin P\n"
	"      --autoscaler-capacity-per-instance N\n"
	"      --autoscaler-max-use-count N\n"
	"      --autoscaler-max-instances N\n",
	register_run
};

/* ---- verify ---- */

static int
verify_run(struct cli_globals *g, int argc, char **argv)
{
	struct pick p = { NULL, NULL, NULL, 0 };
	const char *name, *url, *tok;
	int del, rc = 1, selector;
	size_t nverified = 0, nremoved = 0, nfailed = 0;
	struct edit e;

	rc = pick_parse(&cmd_verify, "delete", g, argc, argv, &p);
	if (rc >= 0)
		return rc;
	rc = 1;
	name = p.name;
	url = p.url;
	tok = p.token;
	del = p.flag;
	selector = name != NULL || url != NULL || tok != NULL;
	if (edit_open(&e, g, 1, __func__) != 0)
		goto out;
	for (size_t i = 0; i < e.cfg->nrunners; i++) {
		const struct config_runner *r = &e.cfg->runners[i];
		struct gitlab_runner_conf conf;
		int v;

		/* GitLab Runner: the name, or RunnerCredentials.SameAs: the
		 * same token, and the same URL unless either is "" or "*". */
		if (selector && !(name != NULL && r->name != NULL &&
		    strcmp(name, r->name) == 0) &&
		    !(strcmp(tok != NULL ? tok : "", r->token) == 0 &&
		    (url == NULL || strcmp(url, "*") == 0 ||
		    strcmp(r->url, "*") == 0 || strcmp(url, r->url) == 0)))
			continue;
		nverified++;
		gitlab_runner_conf_from_config(&conf, r, e.cl.system_id);
		v = verify_one(&e.cl, &conf, NULL, NULL);
		if (v == 1) {
			e.drop[i] = 1;
			nremoved++;
		} else if (v < 0) {
			nfailed++;
		}
	}
	if (selector && nverified == 0) {
		fail("no runner matches the filtering parameters");
		goto out;
	}
	if (nremoved > 0 && !del) {
		fail("Failed to verify runners");
		goto out;
	}
	if (nremoved > 0) {
		if (edit_save(&e) != 0)
			goto out;
		log_info("Updated %s", e.path);
	}
	/* GitLab Runner exits 0 when a runner could not be reached; a
	 * script deserves to know. */
	rc = nfailed > 0 ? 1 : 0;
out:
	edit_release(&e);
	return rc;
}

const struct cli_command cmd_verify = {
	"verify",
	"Check with GitLab that the configured runners still exist.",
	"[-c FILE] [-n NAME | -u URL -t TOKEN] [--delete]",
	"  -n, --name NAME        only the runner with this name\n"
	"  -u, --url URL          with --token: only the runner with these\n"
	"  -t, --token TOKEN        credentials (no environment variables)\n"
	"      --delete           remove runners GitLab no longer knows (403)\n"
	"                         from the config file; other bytes are kept\n",
	verify_run
};

/* ---- unregister ---- */

static int
unregister_run(struct cli_globals *g, int argc, char **argv)
{
	struct pick p = { NULL, NULL, env("CI_SERVER_TOKEN"), 0 };
	const char *name, *tok;
	int all, rc, changed = 0, failed = 0;
	struct edit e;

	/* -u: GitLab Runner takes it, and finds the runner by its token
	 * alone. */
	rc = pick_parse(&cmd_unregister, "all-runners", g, argc, argv, &p);
	if (rc >= 0)
		return rc;
	rc = 1;
	name = p.name;
	tok = p.token;
	all = p.flag;
	if (tok != NULL)
		log_add_secret(tok);
	if (!all && name == NULL && tok == NULL) {
		fail("failed to unregister runner: at least one of --name "
		    "or --token must be specified");
		return 1;
	}
	if (edit_open(&e, g, 0, __func__) != 0)
		goto out;
	if (all) {
		log_warn("Unregistering all runners");
		for (size_t i = 0; i < e.cfg->nrunners; i++) {
			const struct config_runner *r = &e.cfg->runners[i];
			struct gitlab_runner_conf conf;

			gitlab_runner_conf_from_config(&conf, r,
			    e.cl.system_id);
			if (unregister_one(&e.cl, &conf) == 0) {
				e.drop[i] = 1;
				changed = 1;
			} else {
				log_error("Failed to unregister runner \"%s\"",
				    r->name ? r->name : "");
				failed = 1;
			}
		}
	} else {
		const struct config_runner *found = NULL;
		struct gitlab_runner_conf conf;

		for (size_t i = 0; i < e.cfg->nrunners && found == NULL;
		    i++) {
			const struct config_runner *r = &e.cfg->runners[i];

			if (name != NULL && (r->name == NULL ||
			    strcmp(r->name, name) != 0))
				continue;
			if (tok != NULL && strcmp(r->token, tok) != 0)
				continue;
			found = r;
		}
		if (found == NULL) {
			char sb[9];

			fail("failed to unregister runner: get runner by "
			    "token or name: could not find a runner with the "
			    "%s '%s'", name != NULL ? "name" : "token",
			    name != NULL ? name : log_short_token(tok, sb));
			goto out;
		}
		gitlab_runner_conf_from_config(&conf, found, e.cl.system_id);
		if (unregister_one(&e.cl, &conf) != 0) {
			fail("failed to unregister runner: failed to "
			    "unregister runner \"%s\"", found->name ?
			    found->name : "");
			goto out;
		}
		/* Every entry with the same credentials goes. */
		for (size_t i = 0; i < e.cfg->nrunners; i++) {
			const struct config_runner *r = &e.cfg->runners[i];

			if (strcmp(r->token, found->token) == 0 &&
			    strcmp(r->url, found->url) == 0) {
				e.drop[i] = 1;
				changed = 1;
			}
		}
	}
	if (changed) {
		if (edit_save(&e) != 0)
			goto out;
		log_info("Updated %s", e.path);
	}
	rc = failed ? 1 : 0;
out:
	edit_release(&e);
	return rc;
}

const struct cli_command cmd_unregister = {
	"unregister",
	"Unregister runners from GitLab and remove them from the config file.",
	"[-c FILE] (-t TOKEN [-u URL] | -n NAME | --all-runners)",
	"  -n, --name NAME        the runner with this name\n"
	"  -t, --token TOKEN      the runner with this token (CI_SERVER_TOKEN;\n"
	"                         the environment keeps it out of ps)\n"
	"  -u, --url URL          accepted as GitLab Runner does; the runner is\n"
	"                         found by its token (CI_SERVER_URL)\n"
	"      --all-runners      every runner; those that fail stay\n"
	"  glrt- tokens: DELETE runners/managers (this manager only, as GitLab\n"
	"  Runner); other tokens: DELETE runners.\n",
	unregister_run
};
