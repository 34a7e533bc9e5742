/*
 * flotilla: the command line.  Global options, then one command from the
 * table below; each command parses its own options and has its own --help.
 * The commands themselves live in cmd_*.c files; this file only dispatches.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static const struct cli_command *const commands[] = {
	&cmd_check_config,
	&cmd_list,
	&cmd_register,
	&cmd_verify,
	&cmd_unregister,
	&cmd_simulate,
	&cmd_plugin_test,
	&cmd_run,
	NULL
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: flotilla [global options] COMMAND [options]\n"
	    "\n"
	    "An autoscaling GitLab CI runner: the docker-autoscaler executor.\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; commands[i] != NULL; i++)
		fprintf(fp, "  %-14s %s\n", commands[i]->name,
		    commands[i]->summary);
	fprintf(fp,
	    "\n"
	    "Global options:\n"
	    "  -c, --config FILE      config file (default %s;\n"
	    "                         also $CONFIG_FILE)\n"
	    "  -l, --log-level LEVEL  debug, info, warn, error, fatal, panic\n"
	    "      --log-format FMT   runner, text or json\n"
	    "      --debug            the same as --log-level debug\n"
	    "  -h, --help             this help; COMMAND --help for a command's\n"
	    "  -v, --version          print the version\n",
	    cli_default_config_hint());
}

static void
version(void)
{
	printf("flotilla %s (%s)\n", FL_VERSION, FL_GIT_REV);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'F' },
		{ "debug", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_globals g;
	const char *name;
	int c;

	/* A peer that hangs up must be an error on that socket, not death. */
	signal(SIGPIPE, SIG_IGN);
	memset(&g, 0, sizeof(g));
	/* '+': stop at the command name; the command parses the rest. */
	while ((c = getopt_long(argc, argv, "+c:l:hv", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g.config = optarg;
			break;
		case 'l':
			g.log_level = optarg;
			break;
		case 'F':
			g.log_format = optarg;
			break;
		case 'D':
			g.log_level = "debug";
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			version();
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (cli_setup_logging(&g) != 0)
		return 2;
	name = argv[optind];
	if (strcmp(name, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(name, "version") == 0) {
		version();
		return 0;
	}
	for (size_t i = 0; commands[i] != NULL; i++) {
		if (strcmp(commands[i]->name, name) == 0) {
			optind++;
			return cli_run(commands[i], &g, argc - optind + 1,
			    argv + optind - 1);
		}
	}
	fprintf(stderr, "flotilla: unknown command '%s' (see flotilla --help)\n",
	    name);
	return 2;
}
