/*
 * Commands that only read the config file: check-config (validate, list
 * every problem, optionally dump the effective configuration) and list
 * (one line per runner, as gitlab-runner list; no network).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "xmalloc.h"

static int
check_config_run(struct cli_globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "dump", no_argument, NULL, 'd' },
		{ "show-secrets", no_argument, NULL, 's' },
		{ "keys", no_argument, NULL, 'k' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int dump = 0, show = 0, quiet = 0, c;
	struct config *cfg;
	char *path;

	while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'd':
			dump = 1;
			break;
		case 's':
			show = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'k':
			config_print_keys(stdout);
			return 0;
		case 'h':
			cli_command_usage(&cmd_check_config, stdout);
			return 0;
		default:
			cli_command_usage(&cmd_check_config, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		cli_command_usage(&cmd_check_config, stderr);
		return 2;
	}
	path = cli_config_path(g);
	cfg = cli_load_config(path);
	if (cfg == NULL) {
		fprintf(stderr, "%s: configuration is not valid\n", path);
		free(path);
		return 1;
	}
	if (dump)
		config_dump(cfg, stdout, show);
	else if (!quiet)
		printf("%s: configuration is valid (%zu runner%s)\n", path,
		    cfg->nrunners, cfg->nrunners == 1 ? "" : "s");
	config_free(cfg);
	free(path);
	return 0;
}

const struct cli_command cmd_check_config = {
	"check-config",
	"Check a config file: every error and warning as FILE:LINE: reason.",
	"[-c FILE] [--dump [--show-secrets]] [--keys] [-q]",
	"      --dump             print the effective configuration as TOML\n"
	"      --show-secrets     with --dump: tokens and passwords in clear\n"
	"      --keys             print every key with its type and default\n"
	"  -q, --quiet            no output when the file is valid\n",
	check_config_run
};

static int
list_run(struct cli_globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct config *cfg;
	char *path;
	int c;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 'h':
			cli_command_usage(&cmd_list, stdout);
			return 0;
		default:
			cli_command_usage(&cmd_list, stderr);
			return 2;
		}
	}
	path = cli_config_path(g);
	cfg = cli_load_config(path);
	if (cfg == NULL) {
		free(path);
		return 1;
	}
	{
		struct log_field f[] = { { "ConfigFile", path } };

		log_infof(f, 1, "Listing configured runners");
	}
	for (size_t i = 0; i < cfg->nrunners; i++) {
		const struct config_runner *r = &cfg->runners[i];
		char tok[9];
		struct log_field f[] = {
			{ "Executor", r->executor },
			{ "Token", log_short_token(r->token, tok) },
			{ "URL", r->url },
		};

		log_infof(f, 3, "%s", r->name ? r->name : "");
	}
	config_free(cfg);
	free(path);
	return 0;
}

const struct cli_command cmd_list = {
	"list",
	"List the configured runners (no network access).",
	"[-c FILE]",
	"",
	list_run
};
