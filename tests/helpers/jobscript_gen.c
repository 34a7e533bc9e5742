/*
 * jobscript_gen: print the script of one stage of a job, for the
 * integration test that runs the scripts for real (tests/integration/
 * jobscript.sh) and for looking at them by hand.
 *
 *   jobscript_gen JOB.json STAGE [--builds-dir D] [--cache-dir D]
 *       [--url RUNNER_URL] [--helper PATH] [--status S] [--clone-url U]
 *       [--env KEY=VALUE]... [--step NAME]
 *
 * STAGE is a stage name (get_sources, step_script ...).  Exit 0 with the
 * script on stdout, 3 when the stage is skipped, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gitlab.h"
#include "jobscript.h"
#include "xmalloc.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	struct sbuf sb;
	char buf[4096];
	size_t n;

	if (fp == NULL)
		return NULL;
	sbuf_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sbuf_add(&sb, buf, n);
	fclose(fp);
	return sbuf_detach(&sb, len);
}

int
main(int argc, char **argv)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job = NULL;
	const char *step = NULL;
	char err[256], *buf, *s, *env[64];
	size_t len, nenv = 0;
	int st = -1, skip = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s JOB.json STAGE [options]\n", argv[0]);
		return 2;
	}
	memset(&rc, 0, sizeof(rc));
	memset(&c, 0, sizeof(c));
	rc.builds_dir = (char *)"/builds";
	rc.cache_dir = (char *)"/cache";
	rc.url = (char *)"http://127.0.0.1/";
	c.rc = &rc;
	c.short_token = "jobscript";
	c.hostname = "jobscript_gen";
	for (int i = 3; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL) {
			fprintf(stderr, "%s: missing value\n", o);
			return 2;
		}
		i++;
		if (strcmp(o, "--builds-dir") == 0)
			rc.builds_dir = (char *)v;
		else if (strcmp(o, "--cache-dir") == 0)
			rc.cache_dir = (char *)v;
		else if (strcmp(o, "--url") == 0)
			rc.url = (char *)v;
		else if (strcmp(o, "--helper") == 0)
			c.helper_path = v;
		else if (strcmp(o, "--status") == 0)
			c.job_status = v;
		else if (strcmp(o, "--clone-url") == 0)
			rc.clone_url = (char *)v;
		else if (strcmp(o, "--step") == 0)
			step = v;
		else if (strcmp(o, "--env") == 0 && nenv < 64)
			env[nenv++] = (char *)v;
		else {
			fprintf(stderr, "unknown option %s\n", o);
			return 2;
		}
	}
	rc.environment.v = env;
	rc.environment.n = nenv;
	for (int i = 0; i < JS_NSTAGES; i++)
		if (strcmp(argv[2], jobscript_stage_name(i)) == 0)
			st = i;
	if (st < 0) {
		fprintf(stderr, "unknown stage %s\n", argv[2]);
		return 2;
	}
	buf = slurp(argv[1], &len);
	if (buf == NULL) {
		perror(argv[1]);
		return 2;
	}
	if (gitlab_job_parse(buf, len, &job, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 2;
	}
	free(buf);
	c.job = job;
	s = step != NULL ? jobscript_build_step(&c, step, &skip) :
	    jobscript_build(&c, st, &skip);
	if (s == NULL) {
		gitlab_job_free(job);
		return skip ? 3 : 2;
	}
	fputs(s, stdout);
	freezero_str(s);
	gitlab_job_free(job);
	return 0;
}
