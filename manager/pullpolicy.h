/*
 * Which image pull policies to try for a job's image, and whether the
 * image may be used at all: GitLab Runner's rules (reference
 * runner-jobs-docker.md §2.3 and §2.2 step 7), as pure functions.
 *
 *  - The job's image.pull_policy list wins when it is not empty;
 *    otherwise [runners.docker] pull_policy; otherwise ["always"].
 *  - allowed_pull_policies (default: the configured pull_policy, or
 *    ["always"]) filters that list, keeping its order.  Nothing left is a
 *    configuration error:
 *      invalid pull policy for image "alpine": pull_policy ([never])
 *      defined in GitLab pipeline config is not one of the
 *      allowed_pull_policies ([always])
 *    where the source is "GitLab pipeline config" (the job's list), "Runner
 *    config" ([runners.docker] pull_policy) or "Runner config (default)".
 *  - The policies are then tried in order until one yields the image.
 *
 * allowed_images / allowed_services are globs in the syntax of Go's
 * doublestar package, matched against the whole image reference: `*`
 * matches any run of characters other than '/', `?` one such character,
 * `**` as a whole path segment any number of segments (none included),
 * `[a-z]`, `[!x]` / `[^x]` classes (never '/'), `{a,b}` alternatives and
 * `\` escapes.  An empty list allows every image; the runner's own
 * configured image is always allowed.  A malformed pattern matches
 * nothing.
 */
#ifndef FL_PULLPOLICY_H
#define FL_PULLPOLICY_H

#include <stddef.h>

enum pullpolicy {
	PULL_ALWAYS = 0,
	PULL_IF_NOT_PRESENT,
	PULL_NEVER
};

/* Longest policy list handled (longer lists are an error). */
#define PULLPOLICY_MAX 16

/* "always", "if-not-present", "never" to the enum, else FL_ERR_INVAL. */
int pullpolicy_parse(const char *s);
const char *pullpolicy_name(enum pullpolicy p);

/*
 * The policies to try for image, in order.  job: the job's
 * image.pull_policy (njob may be 0); config: [runners.docker] pull_policy
 * (nconfig 0: ["always"]); allowed: allowed_pull_policies (nallowed 0: the
 * configured list).  Fills out[] (room for PULLPOLICY_MAX) and returns how
 * many (at least 1), or FL_ERR_INVAL with the reason in err:
 *   unsupported pull_policy config: "x"
 *   unsupported allowed_pull_policies config: "x"
 *   invalid pull policy for image "img": pull_policy (...) defined in ...
 *   is not one of the allowed_pull_policies (...)
 * A job value that is not a policy name is dropped by the filter (as the
 * runner does; GitLab validates the job's values already).
 */
int pullpolicy_effective(const char *image,
    const char *const *job, size_t njob,
    const char *const *config, size_t nconfig,
    const char *const *allowed, size_t nallowed,
    enum pullpolicy *out, char *err, size_t errlen);

/* 1 if name matches the doublestar glob pattern, else 0. */
int pullpolicy_glob_match(const char *pattern, const char *name);

/*
 * May image be used?  allowed: allowed_images (or allowed_services), n 0:
 * everything; internal: images always allowed (the configured default
 * image), matched exactly.  what: "images" or "services", for the text.
 * Returns 0, or FL_ERR_INVAL with err:
 *   the "img" image is not present on list of allowed images
 */
int pullpolicy_image_allowed(const char *image,
    const char *const *allowed, size_t n,
    const char *const *internal, size_t ninternal,
    const char *what, char *err, size_t errlen);

#endif
