/* Helpers shared by the commands (see cli.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "xmalloc.h"

int
cli_run(const struct cli_command *cmd, struct cli_globals *g, int argc,
    char **argv)
{
	optind = 0;	/* glibc: full re-initialisation of getopt */
	return cmd->run(g, argc, argv);
}

void
cli_command_usage(const struct cli_command *cmd, FILE *fp)
{
	fprintf(fp, "usage: flotilla %s %s\n\n%s\n\nOptions:\n%s"
	    "  -c, --config FILE      config file (default %s)\n"
	    "  -h, --help             this help\n",
	    cmd->name, cmd->usage, cmd->summary, cmd->options,
	    cli_default_config_hint());
}

int
cli_setup_logging(const struct cli_globals *g)
{
	enum log_level lvl;
	enum log_format fmt;

	if (g->log_level != NULL) {
		if (log_level_parse(g->log_level, &lvl) != 0) {
			fprintf(stderr, "flotilla: unknown log level '%s' "
			    "(debug, info, warn, error, fatal, panic)\n",
			    g->log_level);
			return -1;
		}
		log_set_level(lvl);
	}
	if (g->log_format != NULL) {
		if (log_format_parse(g->log_format, &fmt) != 0) {
			fprintf(stderr, "flotilla: unknown log format '%s' "
			    "(runner, text, json)\n", g->log_format);
			return -1;
		}
		log_set_format(fmt);
	}
	return 0;
}

char *
cli_config_path(const struct cli_globals *g)
{
	const char *env = getenv("CONFIG_FILE");

	if (g->config != NULL)
		return xstrdup(g->config);
	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	return config_default_path();
}

const char *
cli_default_config_hint(void)
{
	return "/etc/flotilla/config.toml as root, ~/.flotilla/config.toml "
	    "otherwise";
}

struct config *
cli_load_config(const char *path)
{
	struct config_diags d;
	struct config *cfg;

	config_load(path, &cfg, &d);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.v[i].msg);
	config_diags_release(&d);
	return cfg;
}
