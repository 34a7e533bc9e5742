/*
 * flotilla-helper's artifacts-uploader and artifacts-downloader commands
 * (the coordinator side of GitLab's job artifacts, /tmp/apis.md §E).
 */
#ifndef FL_ARTIFACTS_H
#define FL_ARTIFACTS_H

/* The commands: argv[0] is the command name; the exit status (0 or 1). */
int artifacts_uploader_main(int argc, char **argv);
int artifacts_downloader_main(int argc, char **argv);

/*
 * The job token: FLOTILLA_HELPER_TOKEN if set and not empty, else
 * CI_JOB_TOKEN, else NULL.  Points into the environment.
 */
const char *artifacts_token(void);

/*
 * "<base without trailing '/'>/api/v4/jobs/<id>/artifacts"; NULL when id
 * is not a decimal job id or base not an http(s) URL.  Caller frees.
 */
char *artifacts_url(const char *base, const char *id);

/*
 * url with its scheme, host and port replaced by those of location (a 307
 * answer's Location, absolute or relative to url); NULL if either does not
 * parse.  Caller frees.
 */
char *artifacts_rebase(const char *url, const char *location);

#endif
