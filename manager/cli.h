/*
 * What the command implementations share: the global options, the command
 * table entry, and helpers for the options every command takes.
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <stdio.h>

#include "config.h"

struct cli_globals {
	const char *config;	/* -c before the command, or NULL */
	const char *log_level;
	const char *log_format;
};

struct cli_command {
	const char *name;
	const char *summary;
	const char *usage;	/* "[options]" text after the name */
	const char *options;	/* help lines of its own options */
	/* argv[0] is the command name; getopt state is reset for it. */
	int (*run)(struct cli_globals *g, int argc, char **argv);
};

extern const struct cli_command cmd_check_config;
extern const struct cli_command cmd_list;
extern const struct cli_command cmd_simulate;
extern const struct cli_command cmd_plugin_test;
extern const struct cli_command cmd_register;
extern const struct cli_command cmd_verify;
extern const struct cli_command cmd_unregister;
extern const struct cli_command cmd_run;

/* Run a command (resets getopt for it). */
int cli_run(const struct cli_command *cmd, struct cli_globals *g, int argc,
    char **argv);

/* Print a command's help to fp. */
void cli_command_usage(const struct cli_command *cmd, FILE *fp);

/* Apply --log-level and --log-format; prints and returns -1 when bad. */
int cli_setup_logging(const struct cli_globals *g);

/*
 * The config path to use: -c, else $CONFIG_FILE, else the default.
 * Returns a string to free.
 */
char *cli_config_path(const struct cli_globals *g);

/* "/etc/flotilla/config.toml as root, ~/.flotilla/config.toml otherwise" */
const char *cli_default_config_hint(void);

/* Load the config, printing every diagnostic to stderr.  NULL on error. */
struct config *cli_load_config(const char *path);

#endif
