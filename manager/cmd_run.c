/*
 * flotilla run: the daemon.  Loads the config, starts the run loop
 * (run.h), the HTTP server on listen_address (metrics, debug, health),
 * and turns signals into what GitLab Runner does with them:
 *
 *   SIGQUIT          graceful: no new jobs, running ones finish, exit 0
 *   SIGTERM, SIGINT  forceful: running jobs aborted (runner_interrupted),
 *                    wait at most shutdown_timeout; a second one exits now
 *   SIGHUP           reload the config file (a broken one is reported and
 *                    the running configuration kept)
 *
 * Under systemd with Type=notify it reports READY=1 once the runners are
 * started, RELOADING=1/READY=1 around a reload and STOPPING=1.
 */
#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "run.h"
#include "sdnotify.h"
#include "xmalloc.h"

struct daemon {
	struct event_base *base;
	struct run *run;
	struct httpd *httpd;
	struct event *watchdog;
	int exit_code;
	int finished;
};

static void
run_done(void *arg, int exit_code)
{
	struct daemon *d = arg;

	d->exit_code = exit_code;
	d->finished = 1;
	event_base_loopbreak(d->base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	switch (sig) {
	case SIGQUIT:
		sdnotify_stopping();
		sdnotify_status("graceful shutdown: running jobs finish");
		httpd_set_state(d->httpd, HTTPD_GRACEFUL_SHUTDOWN);
		run_graceful(d->run);
		break;
	case SIGTERM:
	case SIGINT:
		sdnotify_stopping();
		sdnotify_status("forceful shutdown: running jobs aborted");
		httpd_set_state(d->httpd, HTTPD_FORCEFUL_SHUTDOWN);
		run_forceful(d->run);
		break;
	case SIGHUP:
		sdnotify_reloading(0);
		run_reload(d->run);
		sdnotify_ready("running");
		break;
	default:
		break;
	}
}

static int
apply_config_logging(const struct cli_globals *g, const struct config *cfg)
{
	enum log_level lvl;
	enum log_format fmt;

	if (g->log_level == NULL && cfg->log_level != NULL &&
	    *cfg->log_level != '\0' &&
	    log_level_parse(cfg->log_level, &lvl) == 0)
		log_set_level(lvl);
	if (g->log_format == NULL && cfg->log_format != NULL &&
	    *cfg->log_format != '\0' &&
	    log_format_parse(cfg->log_format, &fmt) == 0)
		log_set_format(fmt);
	return 0;
}

/* What the HTTP server asks of the run. */
static void
http_jobs(void *arg, struct sbuf *out)
{
	struct daemon *d = arg;

	run_jobs_list(d->run, out);
}

static void
watchdog_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sdnotify_watchdog();
}

static int
run_main(struct cli_globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen-address", required_argument, NULL, 'l' },
		{ "working-directory", required_argument, NULL, 'd' },
		{ "service", required_argument, NULL, 'n' },
		{ "helper-image-tar", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *listen = NULL, *workdir = NULL, *helper_tar = NULL;
	const int sigs[] = { SIGQUIT, SIGTERM, SIGINT, SIGHUP };
	struct event *sev[4] = { NULL, NULL, NULL, NULL };
	struct daemon d;
	struct run_opts ro;
	struct config *cfg;
	char err[1024];
	char *path;
	int c;

	while ((c = getopt_long(argc, argv, "c:d:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'd':
			workdir = optarg;
			break;
		case 'n':
			break;	/* the service name: systemd's business */
		case 'H':
			helper_tar = optarg;
			break;
		case 'h':
			cli_command_usage(&cmd_run, stdout);
			return 0;
		default:
			cli_command_usage(&cmd_run, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		cli_command_usage(&cmd_run, stderr);
		return 2;
	}
	if (workdir != NULL && chdir(workdir) != 0) {
		fprintf(stderr, "flotilla: %s: %s\n", workdir, strerror(errno));
		return 1;
	}
	path = cli_config_path(g);
	cfg = cli_load_config(path);
	if (cfg == NULL) {
		free(path);
		return 1;
	}
	apply_config_logging(g, cfg);
	if (listen == NULL)
		listen = getenv("LISTEN_ADDRESS");
	if (listen == NULL && cfg->listen_address != NULL &&
	    *cfg->listen_address != '\0')
		listen = cfg->listen_address;

	memset(&d, 0, sizeof(d));
	d.base = event_base_new();
	if (d.base == NULL) {
		fprintf(stderr, "flotilla: cannot create the event loop\n");
		config_free(cfg);
		free(path);
		return 1;
	}
	memset(&ro, 0, sizeof(ro));
	ro.config_path = path;
	ro.helper_image_tar = helper_tar;
	ro.done = run_done;
	ro.done_arg = &d;
	d.run = run_new(d.base, cfg, &ro, err, sizeof(err));
	if (d.run == NULL) {
		log_error("%s", err);
		event_base_free(d.base);
		free(path);
		return 1;
	}
	for (size_t i = 0; i < 4; i++) {
		sev[i] = evsignal_new(d.base, sigs[i], on_signal, &d);
		event_add(sev[i], NULL);
	}
	if (listen != NULL) {
		struct httpd_hooks hh;

		d.httpd = httpd_new(d.base, listen, err, sizeof(err));
		if (d.httpd == NULL) {
			log_error("listen_address: %s", err);
			d.exit_code = 1;
			goto out;
		}
		memset(&hh, 0, sizeof(hh));
		hh.arg = &d;
		hh.metrics = run_registry(d.run);
		hh.jobs_list = http_jobs;
		httpd_set_hooks(d.httpd, &hh);
		log_infof((struct log_field[]){ { "address",
		    httpd_address(d.httpd) } }, 1,
		    "Metrics and debug server listening");
	}
	if (run_start(d.run, err, sizeof(err)) != 0) {
		log_error("%s", err);
		d.exit_code = 1;
		goto out;
	}
	httpd_set_state(d.httpd, HTTPD_RUNNING);
	sdnotify_ready("running");
	if (sdnotify_watchdog_usec() > 0) {
		uint64_t half = sdnotify_watchdog_usec() / 2;
		struct timeval tv = { (time_t)(half / 1000000),
		    (suseconds_t)(half % 1000000) };

		d.watchdog = event_new(d.base, -1, EV_PERSIST, watchdog_fire,
		    NULL);
		event_add(d.watchdog, &tv);
	}
	event_base_dispatch(d.base);
	if (!d.finished)
		d.exit_code = 1;
	log_infof((struct log_field[]){ { "exit_code",
	    d.exit_code == 0 ? "0" : "1" } }, 1, "flotilla stopped");
out:
	if (d.watchdog != NULL)
		event_free(d.watchdog);
	httpd_free(d.httpd);
	run_free(d.run);
	for (size_t i = 0; i < 4; i++)
		if (sev[i] != NULL)
			event_free(sev[i]);
	event_base_free(d.base);
	free(path);
	return d.exit_code;
}

const struct cli_command cmd_run = {
	"run",
	"Run the runner manager: take jobs from GitLab, run them on the fleet.",
	"[-c FILE] [--listen-address ADDR] [-d DIR]",
	"      --listen-address ADDR   metrics and debug HTTP server (host:port)\n"
	"  -d, --working-directory DIR chdir there first\n"
	"  -n, --service NAME          accepted for GitLab Runner compatibility\n"
	"      --helper-image-tar FILE the helper image to load onto instances\n"
	"\n"
	"  SIGQUIT: finish running jobs, then exit.  SIGTERM, SIGINT: abort\n"
	"  running jobs, exit.  SIGHUP: reload the config file.\n",
	run_main
};
