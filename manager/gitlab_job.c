/*
 * The job payload of jobs/request (GitLab Runner's common/spec Job) taken
 * apart into plain structs for the executor.  A pure function over bytes,
 * so it is unit-tested and fuzzed without a network.
 *
 * Types are checked the way Go's encoding/json checks them when it fills
 * GitLab Runner's structs: null is the zero value, unknown keys are
 * ignored, and a value of the wrong type anywhere fails the whole decode
 * (the runner then counts the request as a client error).  Errors name the
 * path ("services[1].entrypoint[0]: not a string") and never quote a
 * value, since values may be secrets.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "gitlab.h"
#include "xmalloc.h"

struct jp {
	char *err;
	size_t errlen;
	int failed;
	json_t *empty;		/* {} standing for an absent object */
};

static int __attribute__((format(printf, 2, 3)))
fail(struct jp *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->failed && p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	p->failed = 1;
	return FL_ERR_PARSE;
}

/* "prefix.key" or "key" into buf. */
static const char *
path_of(char *buf, size_t len, const char *prefix, const char *key)
{
	int n;

	if (prefix == NULL || prefix[0] == '\0')
		n = snprintf(buf, len, "%s", key);
	else
		n = snprintf(buf, len, "%s.%s", prefix, key);
	if (n < 0 || (size_t)n >= len)
		return "(path too long)";
	return buf;
}

static int
str_value(json_t *v, char **out, const char *path, struct jp *p)
{
	if (v == NULL || json_is_null(v)) {
		*out = xstrdup("");
		return 0;
	}
	if (!json_is_string(v))
		return fail(p, "%s: not a string", path);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(p, "%s: string holds a NUL character", path);
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int
get_str(json_t *obj, const char *key, char **out, const char *prefix,
    struct jp *p)
{
	char path[256];

	return str_value(json_object_get(obj, key), out,
	    path_of(path, sizeof(path), prefix, key), p);
}

static int
get_int(json_t *obj, const char *key, int64_t *out, const char *prefix,
    struct jp *p)
{
	json_t *v = json_object_get(obj, key);
	char path[256];

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return fail(p, "%s: not an integer",
		    path_of(path, sizeof(path), prefix, key));
	*out = (int64_t)json_integer_value(v);
	return 0;
}

static int
get_bool(json_t *obj, const char *key, int *out, const char *prefix,
    struct jp *p)
{
	json_t *v = json_object_get(obj, key);
	char path[256];

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(p, "%s: not a boolean",
		    path_of(path, sizeof(path), prefix, key));
	*out = json_is_true(v);
	return 0;
}

/* An object member that must be an object (NULL when absent or null). */
static int
get_obj(json_t *obj, const char *key, json_t **out, const char *prefix,
    struct jp *p)
{
	json_t *v = json_object_get(obj, key);
	char path[256];

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(p, "%s: not an object",
		    path_of(path, sizeof(path), prefix, key));
	*out = v;
	return 0;
}

static int
get_arr(json_t *obj, const char *key, json_t **out, const char *prefix,
    struct jp *p)
{
	json_t *v = json_object_get(obj, key);
	char path[256];

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return fail(p, "%s: not an array",
		    path_of(path, sizeof(path), prefix, key));
	*out = v;
	return 0;
}

static int
get_strv(json_t *obj, const char *key, struct gitlab_strv *sv,
    const char *prefix, struct jp *p)
{
	json_t *a;
	char path[256], ipath[300];
	size_t i;

	sv->v = NULL;
	sv->n = 0;
	if (get_arr(obj, key, &a, prefix, p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	path_of(path, sizeof(path), prefix, key);
	sv->v = xcalloc(json_array_size(a) + 1, sizeof(char *));
	for (i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);

		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		/* Go: a null element of []string is "". */
		if (str_value(e, &sv->v[i], ipath, p) < 0)
			return FL_ERR_PARSE;
		sv->n++;
	}
	return 0;
}

static void
strv_free(struct gitlab_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

/* An array member whose elements are objects: count and array in *a. */
static int
get_objarr(json_t *obj, const char *key, json_t **a, const char *prefix,
    struct jp *p)
{
	char path[256];
	size_t i;

	if (get_arr(obj, key, a, prefix, p) < 0)
		return FL_ERR_PARSE;
	if (*a == NULL)
		return 0;
	for (i = 0; i < json_array_size(*a); i++) {
		json_t *e = json_array_get(*a, i);

		if (!json_is_object(e) && !json_is_null(e))
			return fail(p, "%s[%zu]: not an object",
			    path_of(path, sizeof(path), prefix, key), i);
	}
	return 0;
}

/* Element i of an object array, {} for a null element. */
static json_t *
elem(json_t *a, size_t i, struct jp *p)
{
	json_t *e = json_array_get(a, i);

	return json_is_object(e) ? e : p->empty;
}

static int
parse_variables(json_t *obj, const char *key, struct gitlab_variables *vs,
    const char *prefix, struct jp *p)
{
	json_t *a;
	char path[256], ip[300];
	size_t i;

	vs->v = NULL;
	vs->n = 0;
	if (get_objarr(obj, key, &a, prefix, p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	path_of(path, sizeof(path), prefix, key);
	vs->v = xcalloc(json_array_size(a) + 1, sizeof(*vs->v));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_variable *v = &vs->v[i];
		json_t *e = elem(a, i, p);

		vs->n++;
		snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
		if (get_str(e, "key", &v->key, ip, p) < 0 ||
		    get_str(e, "value", &v->value, ip, p) < 0 ||
		    get_bool(e, "public", &v->public, ip, p) < 0 ||
		    get_bool(e, "masked", &v->masked, ip, p) < 0 ||
		    get_bool(e, "file", &v->file, ip, p) < 0 ||
		    get_bool(e, "raw", &v->raw, ip, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static void
variables_free(struct gitlab_variables *vs)
{
	size_t i;

	for (i = 0; i < vs->n; i++) {
		free(vs->v[i].key);
		freezero_str(vs->v[i].value);
	}
	free(vs->v);
	vs->v = NULL;
	vs->n = 0;
}

/* Printable, bounded copy of a key for a message. */
static void
safe_key(char *out, size_t len, const char *k)
{
	size_t i, j = 0;

	for (i = 0; k[i] != '\0' && j + 1 < len && i < 64; i++)
		out[j++] = (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"') ?
		    k[i] : '?';
	out[j] = '\0';
}

/*
 * executor_opts: {"docker": {"platform", "user"}, "kubernetes": {"user"}}.
 * Unknown keys do not fail the decode (GitLab Runner decodes them, then
 * its validation refuses the job): they are reported in *unsupported.
 */
static int
parse_executor_opts(json_t *img, struct gitlab_image *im, const char *prefix,
    char **unsupported, struct jp *p)
{
	json_t *eo, *d, *v;
	const char *k;
	char path[256], sk[80];

	if (get_obj(img, "executor_opts", &eo, prefix, p) < 0)
		return FL_ERR_PARSE;
	if (eo == NULL)
		return 0;
	path_of(path, sizeof(path), prefix, "executor_opts");
	json_object_foreach(eo, k, v) {
		if (strcmp(k, "docker") != 0 && strcmp(k, "kubernetes") != 0 &&
		    *unsupported == NULL) {
			safe_key(sk, sizeof(sk), k);
			*unsupported = xasprintf("%s: unsupported key \"%s\"",
			    path, sk);
		}
	}
	if (get_obj(eo, "docker", &d, path, p) < 0)
		return FL_ERR_PARSE;
	if (d != NULL) {
		char dpath[300];

		snprintf(dpath, sizeof(dpath), "%s.docker", path);
		free(im->docker_platform);
		im->docker_platform = NULL;
		if (get_str(d, "platform", &im->docker_platform, dpath, p) < 0)
			return FL_ERR_PARSE;
		v = json_object_get(d, "user");
		free(im->docker_user);
		im->docker_user = NULL;
		if (json_is_integer(v))	/* Go's StringOrInt64 */
			im->docker_user = xasprintf("%lld",
			    (long long)json_integer_value(v));
		else if (get_str(d, "user", &im->docker_user, dpath, p) < 0)
			return FL_ERR_PARSE;
		json_object_foreach(d, k, v) {
			if (strcmp(k, "platform") != 0 &&
			    strcmp(k, "user") != 0 && *unsupported == NULL) {
				safe_key(sk, sizeof(sk), k);
				*unsupported = xasprintf(
				    "%s: unsupported key \"%s\"", dpath, sk);
			}
		}
	}
	if (get_obj(eo, "kubernetes", &d, path, p) < 0)
		return FL_ERR_PARSE;
	if (d != NULL) {
		json_object_foreach(d, k, v) {
			if (strcmp(k, "user") != 0 && *unsupported == NULL) {
				safe_key(sk, sizeof(sk), k);
				*unsupported = xasprintf(
				    "%s.kubernetes: unsupported key \"%s\"",
				    path, sk);
			}
		}
	}
	return 0;
}

/* alias "a, b c" → {"a", "b", "c"} (Go: Fields after "," → " "). */
static void
split_aliases(const char *alias, struct gitlab_strv *sv)
{
	size_t n = strlen(alias), i = 0;

	sv->v = xcalloc(n / 2 + 2, sizeof(char *));
	sv->n = 0;
	while (i < n) {
		size_t j;

		while (i < n && strchr(" ,\t\n\r\v\f", alias[i]) != NULL)
			i++;
		j = i;
		while (j < n && strchr(" ,\t\n\r\v\f", alias[j]) == NULL)
			j++;
		if (j > i)
			sv->v[sv->n++] = xstrndup(alias + i, j - i);
		i = j;
	}
}

static int
parse_image(json_t *img, struct gitlab_image *im, const char *prefix,
    char **unsupported, struct jp *p)
{
	json_t *ports;
	char path[256], ip[300];
	size_t i;

	im->docker_platform = xstrdup("");
	im->docker_user = xstrdup("");
	if (get_str(img, "name", &im->name, prefix, p) < 0 ||
	    get_str(img, "alias", &im->alias, prefix, p) < 0)
		return FL_ERR_PARSE;
	split_aliases(im->alias, &im->aliases);
	if (get_strv(img, "command", &im->command, prefix, p) < 0 ||
	    get_strv(img, "entrypoint", &im->entrypoint, prefix, p) < 0 ||
	    get_strv(img, "pull_policy", &im->pull_policy, prefix, p) < 0 ||
	    parse_variables(img, "variables", &im->variables, prefix, p) < 0 ||
	    get_objarr(img, "ports", &ports, prefix, p) < 0)
		return FL_ERR_PARSE;
	if (ports != NULL) {
		path_of(path, sizeof(path), prefix, "ports");
		im->ports = xcalloc(json_array_size(ports) + 1,
		    sizeof(*im->ports));
		for (i = 0; i < json_array_size(ports); i++) {
			json_t *e = elem(ports, i, p);

			im->nports++;
			snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
			if (get_int(e, "number", &im->ports[i].number, ip,
			    p) < 0 ||
			    get_str(e, "protocol", &im->ports[i].protocol, ip,
			    p) < 0 ||
			    get_str(e, "name", &im->ports[i].name, ip, p) < 0)
				return FL_ERR_PARSE;
		}
	}
	return parse_executor_opts(img, im, prefix, unsupported, p);
}

static void
image_release(struct gitlab_image *im)
{
	size_t i;

	free(im->name);
	free(im->alias);
	strv_free(&im->aliases);
	strv_free(&im->command);
	strv_free(&im->entrypoint);
	strv_free(&im->pull_policy);
	variables_free(&im->variables);
	for (i = 0; i < im->nports; i++) {
		free(im->ports[i].protocol);
		free(im->ports[i].name);
	}
	free(im->ports);
	free(im->docker_platform);
	free(im->docker_user);
}

static int
parse_steps(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "steps", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->steps = xcalloc(json_array_size(a) + 1, sizeof(*j->steps));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_step *s = &j->steps[i];
		json_t *e = elem(a, i, p);

		j->nsteps++;
		snprintf(ip, sizeof(ip), "steps[%zu]", i);
		if (get_str(e, "name", &s->name, ip, p) < 0 ||
		    get_strv(e, "script", &s->script, ip, p) < 0 ||
		    get_int(e, "timeout", &s->timeout, ip, p) < 0 ||
		    get_str(e, "when", &s->when, ip, p) < 0 ||
		    get_bool(e, "allow_failure", &s->allow_failure, ip, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_services(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "services", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->services = xcalloc(json_array_size(a) + 1, sizeof(*j->services));
	for (i = 0; i < json_array_size(a); i++) {
		j->nservices++;
		snprintf(ip, sizeof(ip), "services[%zu]", i);
		if (parse_image(elem(a, i, p), &j->services[i], ip,
		    &j->unsupported, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_artifacts(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "artifacts", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->artifacts = xcalloc(json_array_size(a) + 1, sizeof(*j->artifacts));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_artifact *ar = &j->artifacts[i];
		json_t *e = elem(a, i, p);

		j->nartifacts++;
		snprintf(ip, sizeof(ip), "artifacts[%zu]", i);
		if (get_str(e, "name", &ar->name, ip, p) < 0 ||
		    get_bool(e, "untracked", &ar->untracked, ip, p) < 0 ||
		    get_strv(e, "paths", &ar->paths, ip, p) < 0 ||
		    get_strv(e, "exclude", &ar->exclude, ip, p) < 0 ||
		    get_str(e, "when", &ar->when, ip, p) < 0 ||
		    get_str(e, "expire_in", &ar->expire_in, ip, p) < 0 ||
		    get_str(e, "artifact_type", &ar->artifact_type, ip, p) < 0 ||
		    get_str(e, "artifact_format", &ar->artifact_format, ip,
		    p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_caches(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "cache", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->caches = xcalloc(json_array_size(a) + 1, sizeof(*j->caches));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_cache *c = &j->caches[i];
		json_t *e = elem(a, i, p);

		j->ncaches++;
		snprintf(ip, sizeof(ip), "cache[%zu]", i);
		if (get_str(e, "key", &c->key, ip, p) < 0 ||
		    get_bool(e, "untracked", &c->untracked, ip, p) < 0 ||
		    get_str(e, "policy", &c->policy, ip, p) < 0 ||
		    get_strv(e, "paths", &c->paths, ip, p) < 0 ||
		    get_str(e, "when", &c->when, ip, p) < 0 ||
		    get_strv(e, "fallback_keys", &c->fallback_keys, ip, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_credentials(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "credentials", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->credentials = xcalloc(json_array_size(a) + 1,
	    sizeof(*j->credentials));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_credential *c = &j->credentials[i];
		json_t *e = elem(a, i, p);

		j->ncredentials++;
		snprintf(ip, sizeof(ip), "credentials[%zu]", i);
		if (get_str(e, "type", &c->type, ip, p) < 0 ||
		    get_str(e, "url", &c->url, ip, p) < 0 ||
		    get_str(e, "username", &c->username, ip, p) < 0 ||
		    get_str(e, "password", &c->password, ip, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_dependencies(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a, *af;
	char ip[64], ap[96];
	size_t i;

	if (get_objarr(job, "dependencies", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->dependencies = xcalloc(json_array_size(a) + 1,
	    sizeof(*j->dependencies));
	for (i = 0; i < json_array_size(a); i++) {
		struct gitlab_dependency *d = &j->dependencies[i];
		json_t *e = elem(a, i, p);

		j->ndependencies++;
		snprintf(ip, sizeof(ip), "dependencies[%zu]", i);
		snprintf(ap, sizeof(ap), "%s.artifacts_file", ip);
		if (get_int(e, "id", &d->id, ip, p) < 0 ||
		    get_str(e, "token", &d->token, ip, p) < 0 ||
		    get_str(e, "name", &d->name, ip, p) < 0 ||
		    get_obj(e, "artifacts_file", &af, ip, p) < 0)
			return FL_ERR_PARSE;
		if (af == NULL)
			af = p->empty;
		if (get_str(af, "filename", &d->artifacts_filename, ap, p) < 0 ||
		    get_int(af, "size", &d->artifacts_size, ap, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_hooks(json_t *job, struct gitlab_job *j, struct jp *p)
{
	json_t *a;
	char ip[64];
	size_t i;

	if (get_objarr(job, "hooks", &a, "", p) < 0)
		return FL_ERR_PARSE;
	if (a == NULL)
		return 0;
	j->hooks = xcalloc(json_array_size(a) + 1, sizeof(*j->hooks));
	for (i = 0; i < json_array_size(a); i++) {
		json_t *e = elem(a, i, p);

		j->nhooks++;
		snprintf(ip, sizeof(ip), "hooks[%zu]", i);
		if (get_str(e, "name", &j->hooks[i].name, ip, p) < 0 ||
		    get_strv(e, "script", &j->hooks[i].script, ip, p) < 0)
			return FL_ERR_PARSE;
	}
	return 0;
}

static int
parse_job(json_t *root, struct gitlab_job *j, struct jp *p)
{
	json_t *o, *v;

	if (!json_is_object(root))
		return fail(p, "job: not an object");
	v = json_object_get(root, "id");
	if (v == NULL || !json_is_integer(v))
		return fail(p, "id: missing or not an integer");
	j->id = (int64_t)json_integer_value(v);
	if (j->id <= 0)
		return fail(p, "id: not positive");
	if (get_str(root, "token", &j->token, "", p) < 0)
		return FL_ERR_PARSE;
	if (j->token[0] == '\0')
		return fail(p, "token: missing or empty");
	if (get_bool(root, "allow_git_fetch", &j->allow_git_fetch, "", p) < 0)
		return FL_ERR_PARSE;

	if (get_obj(root, "job_info", &o, "", p) < 0)
		return FL_ERR_PARSE;
	if (o == NULL)
		o = p->empty;
	if (get_str(o, "name", &j->job_info.name, "job_info", p) < 0 ||
	    get_str(o, "stage", &j->job_info.stage, "job_info", p) < 0 ||
	    get_int(o, "project_id", &j->job_info.project_id, "job_info",
	    p) < 0 ||
	    get_str(o, "project_name", &j->job_info.project_name, "job_info",
	    p) < 0 ||
	    get_str(o, "project_full_path", &j->job_info.project_full_path,
	    "job_info", p) < 0 ||
	    get_int(o, "pipeline_id", &j->job_info.pipeline_id, "job_info",
	    p) < 0)
		return FL_ERR_PARSE;

	if (get_obj(root, "git_info", &o, "", p) < 0)
		return FL_ERR_PARSE;
	if (o == NULL)
		o = p->empty;
	if (get_str(o, "repo_url", &j->git_info.repo_url, "git_info", p) < 0 ||
	    get_str(o, "repo_object_format", &j->git_info.repo_object_format,
	    "git_info", p) < 0 ||
	    get_str(o, "ref", &j->git_info.ref, "git_info", p) < 0 ||
	    get_str(o, "sha", &j->git_info.sha, "git_info", p) < 0 ||
	    get_str(o, "before_sha", &j->git_info.before_sha, "git_info",
	    p) < 0 ||
	    get_str(o, "ref_type", &j->git_info.ref_type, "git_info", p) < 0 ||
	    get_strv(o, "refspecs", &j->git_info.refspecs, "git_info", p) < 0 ||
	    get_int(o, "depth", &j->git_info.depth, "git_info", p) < 0)
		return FL_ERR_PARSE;
	v = json_object_get(o, "protected");
	if (v == NULL || json_is_null(v))
		j->git_info.protected = -1;
	else if (json_is_boolean(v))
		j->git_info.protected = json_is_true(v);
	else
		return fail(p, "git_info.protected: not a boolean");

	if (get_obj(root, "runner_info", &o, "", p) < 0)
		return FL_ERR_PARSE;
	if (o == NULL)
		o = p->empty;
	if (get_int(o, "timeout", &j->timeout, "runner_info", p) < 0 ||
	    get_str(o, "uuid", &j->runner_uuid, "runner_info", p) < 0)
		return FL_ERR_PARSE;

	if (parse_variables(root, "variables", &j->variables, "", p) < 0 ||
	    parse_steps(root, j, p) < 0)
		return FL_ERR_PARSE;

	if (get_obj(root, "image", &o, "", p) < 0)
		return FL_ERR_PARSE;
	if (parse_image(o != NULL ? o : p->empty, &j->image, "image",
	    &j->unsupported, p) < 0)
		return FL_ERR_PARSE;

	if (parse_services(root, j, p) < 0 || parse_artifacts(root, j, p) < 0 ||
	    parse_caches(root, j, p) < 0 || parse_credentials(root, j, p) < 0 ||
	    parse_dependencies(root, j, p) < 0 || parse_hooks(root, j, p) < 0)
		return FL_ERR_PARSE;

	if (get_obj(root, "features", &o, "", p) < 0)
		return FL_ERR_PARSE;
	if (o == NULL)
		o = p->empty;
	if (get_bool(o, "trace_sections", &j->trace_sections, "features",
	    p) < 0 ||
	    get_strv(o, "token_mask_prefixes", &j->token_mask_prefixes,
	    "features", p) < 0 ||
	    get_strv(o, "failure_reasons", &j->failure_reasons, "features",
	    p) < 0)
		return FL_ERR_PARSE;
	return 0;
}

int
gitlab_job_parse(const char *buf, size_t len, struct gitlab_job **out,
    char *err, size_t errlen)
{
	struct jp p = { err, errlen, 0, NULL };
	struct gitlab_job *j;
	json_error_t je;
	json_t *root;
	int rc;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (len > GITLAB_MAX_BODY) {
		fail(&p, "job: %zu bytes, over the %u limit", len,
		    GITLAB_MAX_BODY);
		return FL_ERR_TOOBIG;
	}
	root = json_loadb(buf, len, JSON_DECODE_ANY, &je);
	if (root == NULL) {
		/* jansson's text names the position, not the value. */
		return fail(&p, "job: malformed JSON at line %d column %d: %s",
		    je.line, je.column, je.text);
	}
	j = xcalloc(1, sizeof(*j));
	j->json = root;
	p.empty = json_object();
	if (p.empty == NULL)
		abort();
	rc = parse_job(root, j, &p);
	json_decref(p.empty);
	if (rc < 0) {
		gitlab_job_free(j);
		return FL_ERR_PARSE;
	}
	*out = j;
	return 0;
}

/* Wipe every string in a JSON tree (jansson keeps them in heap buffers
 * it owns; the const is jansson's promise to itself, not to us). */
static void
json_wipe(json_t *v, int depth)
{
	const char *k;
	json_t *e;
	size_t i;

	if (v == NULL || depth > 4096)
		return;
	if (json_is_string(v)) {
		explicit_bzero((char *)json_string_value(v),
		    json_string_length(v));
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, e)
			json_wipe(e, depth + 1);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			json_wipe(e, depth + 1);
	}
}

void
gitlab_job_free(struct gitlab_job *j)
{
	size_t i;

	if (j == NULL)
		return;
	freezero_str(j->token);
	free(j->job_info.name);
	free(j->job_info.stage);
	free(j->job_info.project_name);
	free(j->job_info.project_full_path);
	freezero_str(j->git_info.repo_url);
	free(j->git_info.repo_object_format);
	free(j->git_info.ref);
	free(j->git_info.sha);
	free(j->git_info.before_sha);
	free(j->git_info.ref_type);
	strv_free(&j->git_info.refspecs);
	free(j->runner_uuid);
	variables_free(&j->variables);
	for (i = 0; i < j->nsteps; i++) {
		free(j->steps[i].name);
		strv_free(&j->steps[i].script);
		free(j->steps[i].when);
	}
	free(j->steps);
	image_release(&j->image);
	for (i = 0; i < j->nservices; i++)
		image_release(&j->services[i]);
	free(j->services);
	for (i = 0; i < j->nartifacts; i++) {
		struct gitlab_artifact *a = &j->artifacts[i];

		free(a->name);
		strv_free(&a->paths);
		strv_free(&a->exclude);
		free(a->when);
		free(a->expire_in);
		free(a->artifact_type);
		free(a->artifact_format);
	}
	free(j->artifacts);
	for (i = 0; i < j->ncaches; i++) {
		struct gitlab_cache *c = &j->caches[i];

		free(c->key);
		free(c->policy);
		strv_free(&c->paths);
		free(c->when);
		strv_free(&c->fallback_keys);
	}
	free(j->caches);
	for (i = 0; i < j->ncredentials; i++) {
		free(j->credentials[i].type);
		free(j->credentials[i].url);
		free(j->credentials[i].username);
		freezero_str(j->credentials[i].password);
	}
	free(j->credentials);
	for (i = 0; i < j->ndependencies; i++) {
		freezero_str(j->dependencies[i].token);
		free(j->dependencies[i].name);
		free(j->dependencies[i].artifacts_filename);
	}
	free(j->dependencies);
	for (i = 0; i < j->nhooks; i++) {
		free(j->hooks[i].name);
		strv_free(&j->hooks[i].script);
	}
	free(j->hooks);
	strv_free(&j->token_mask_prefixes);
	strv_free(&j->failure_reasons);
	free(j->unsupported);
	json_wipe(j->json, 0);
	json_decref(j->json);
	free(j);
}

int64_t
gitlab_job_timeout(const struct gitlab_job *j)
{
	return j->timeout > 0 ? j->timeout : GITLAB_DEFAULT_JOB_TIMEOUT;
}

const char *
gitlab_job_variable(const struct gitlab_job *j, const char *key)
{
	const char *found = NULL;
	size_t i;

	/* The last one wins, as the runner's JobVariables.Get. */
	for (i = 0; i < j->variables.n; i++)
		if (strcmp(j->variables.v[i].key, key) == 0)
			found = j->variables.v[i].value;
	return found;
}

const char *
gitlab_failure_reason(const struct gitlab_job *job, const char *reason)
{
	static const char *const always[] = {
		"script_failure", "runner_system_failure",
		"job_execution_timeout"
	};
	static const struct {
		const char *from, *to;
	} compat[] = {
		{ "image_pull_failure", "runner_system_failure" },
		{ "runner_configuration_error", "script_failure" },
		{ "runner_external_dependency_failure",
		  "runner_system_failure" },
	};
	size_t i;

	if (reason == NULL || reason[0] == '\0')
		return "script_failure";
	for (i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (strcmp(reason, always[i]) == 0)
			return always[i];
	if (job != NULL)
		for (i = 0; i < job->failure_reasons.n; i++)
			if (strcmp(reason, job->failure_reasons.v[i]) == 0)
				return job->failure_reasons.v[i];
	for (i = 0; i < sizeof(compat) / sizeof(compat[0]); i++)
		if (strcmp(reason, compat[i].from) == 0)
			return compat[i].to;
	return "unknown_failure";
}
