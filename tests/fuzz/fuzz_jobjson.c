/*
 * libFuzzer target for the job payload parser: gitlab_job_parse() on
 * arbitrary bytes.  A rejected payload must leave a NUL-terminated,
 * non-empty message; an accepted one must satisfy the header's promises
 * (id > 0, a token, every string non-NULL, counts matching the arrays),
 * and the helpers that read a job must not trip on it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "gitlab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
strv_ok(const struct gitlab_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		if (sv->v[i] == NULL)
			__builtin_trap();
}

static void
image_ok(const struct gitlab_image *im)
{
	if (im->name == NULL || im->alias == NULL ||
	    im->docker_platform == NULL || im->docker_user == NULL)
		__builtin_trap();
	strv_ok(&im->aliases);
	strv_ok(&im->command);
	strv_ok(&im->entrypoint);
	strv_ok(&im->pull_policy);
	for (size_t i = 0; i < im->aliases.n; i++)
		if (im->aliases.v[i][0] == '\0' ||
		    strpbrk(im->aliases.v[i], " ,") != NULL)
			__builtin_trap();
	for (size_t i = 0; i < im->variables.n; i++)
		if (im->variables.v[i].key == NULL ||
		    im->variables.v[i].value == NULL)
			__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gitlab_job *j = NULL;
	char err[256];
	int rc;

	memset(err, 'x', sizeof(err));
	rc = gitlab_job_parse((const char *)data, size, &j, err, sizeof(err));
	if (rc < 0) {
		if (j != NULL || memchr(err, '\0', sizeof(err)) == NULL ||
		    err[0] == '\0' || (rc != FL_ERR_PARSE && rc != FL_ERR_TOOBIG))
			__builtin_trap();
		return 0;
	}
	if (rc != 0 || j == NULL || j->id <= 0 || j->token == NULL ||
	    j->token[0] == '\0' || j->json == NULL)
		__builtin_trap();
	if (j->git_info.repo_url == NULL || j->git_info.ref == NULL ||
	    j->job_info.name == NULL || j->runner_uuid == NULL)
		__builtin_trap();
	strv_ok(&j->git_info.refspecs);
	image_ok(&j->image);
	for (size_t i = 0; i < j->nservices; i++)
		image_ok(&j->services[i]);
	for (size_t i = 0; i < j->nsteps; i++) {
		if (j->steps[i].name == NULL || j->steps[i].when == NULL)
			__builtin_trap();
		strv_ok(&j->steps[i].script);
	}
	for (size_t i = 0; i < j->ndependencies; i++)
		if (j->dependencies[i].artifacts_filename == NULL ||
		    j->dependencies[i].token == NULL)
			__builtin_trap();
	(void)gitlab_job_timeout(j);
	(void)gitlab_job_variable(j, "CI_JOB_ID");
	for (size_t i = 0; i < j->failure_reasons.n; i++)
		if (gitlab_failure_reason(j, j->failure_reasons.v[i]) == NULL)
			__builtin_trap();
	gitlab_job_free(j);
	return 0;
}
