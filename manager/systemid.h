/*
 * The runner manager's system ID, as GitLab Runner keeps it: "s_" and 12
 * hex digits, stored in .runner_system_id beside the config file so it
 * survives restarts; "r_" and 12 hex digits when that file can be neither
 * read nor written (an ephemeral ID, as GitLab Runner does).  GitLab uses
 * it to tell the managers of one runner apart (system_id in every
 * request, runner.system_id label, runner managers in the UI).
 */
#ifndef FL_SYSTEMID_H
#define FL_SYSTEMID_H

#include <stddef.h>

#define SYSTEMID_LEN 14		/* "s_" + 12 */

/* Fill out (at least SYSTEMID_LEN + 1 bytes) for the config at
 * config_path.  Returns 0 (stored ID), 1 (ephemeral ID). */
int systemid_load(const char *config_path, char *out, size_t outlen);

/* "s_" + 12 lowercase hex digits?  (For a file written by hand.) */
int systemid_valid(const char *s);

#endif
