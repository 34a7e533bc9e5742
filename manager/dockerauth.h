/*
 * Registry credentials for image pulls: DOCKER_AUTH_CONFIG (a Docker
 * client config.json as a job variable) and the job's own registry
 * credentials, turned into the X-Registry-Auth header of
 * POST /images/create for one image.  GitLab Runner's rules
 * (helpers/docker/auth, reference runner-jobs-docker.md §2.3):
 *
 *  - Sources are added in order (DOCKER_AUTH_CONFIG first, then the job
 *    payload's credentials); for a registry path already known, later
 *    sources are ignored.
 *  - A credential's registry path: "https://host/anything" or
 *    "http://..." is just the host (lower-cased; index.docker.io becomes
 *    docker.io); otherwise the text without a trailing '/' and without a
 *    ":tag" on its last component, its host part lower-cased
 *    ("registry.example.com/group/project" is a path).
 *  - An image's path: the reference without tag (or digest), with
 *    "docker.io/" put in front of Docker Hub names (no '.', ':' in the
 *    first component and not "localhost"), index.docker.io shortened
 *    to docker.io, the host lower-cased.
 *  - The most specific credential wins: the image's path, then each of its
 *    parents ("a/b/c", "a/b", "a").
 *  - In the config, "auths": {"<registry>": {"auth": base64("user:pass")}}
 *    or explicit "username"/"password", plus "identitytoken".  Credential
 *    stores and helpers ("credsStore", "credHelpers") would run programs on
 *    the manager and are not supported: they are ignored.
 *  - The header is base64url (padded) of the JSON {"username", "password",
 *    "serveraddress"[, "identitytoken"]}.
 *
 * Secrets: the module's own copies of user names, passwords and headers
 * are wiped before they are freed.  Nothing here logs; callers must never
 * log a header or a credential (the registry name and the source are
 * fine).  Pure: no I/O.
 */
#ifndef FL_DOCKERAUTH_H
#define FL_DOCKERAUTH_H

#include <stddef.h>

struct dockerauth;

struct dockerauth *dockerauth_new(void);
/* Wipes and frees every credential.  NULL is a no-op. */
void dockerauth_free(struct dockerauth *a);

/*
 * Add the "auths" of a Docker config JSON text (DOCKER_AUTH_CONFIG) with
 * source name `source` (e.g. "$DOCKER_AUTH_CONFIG").  Returns the number
 * of credentials added, or FL_ERR_PARSE with a reason in err (which never
 * contains a secret): not JSON, "auths" not an object, an "auth" that is
 * not base64 of "user:password".  On error nothing is added.
 */
int dockerauth_add_config(struct dockerauth *a, const char *json, size_t len,
    const char *source, char *err, size_t errlen);

/* Add one credential (e.g. the job payload's type "registry" entries). */
void dockerauth_add(struct dockerauth *a, const char *server,
    const char *username, const char *password, const char *source);

/*
 * The X-Registry-Auth value for image, or NULL when no credential
 * matches.  The caller frees it with freezero_str().  *source (if not
 * NULL) gets the matching credential's source name and *registry its
 * registry path (both valid until dockerauth_free): safe to log.
 */
char *dockerauth_header(const struct dockerauth *a, const char *image,
    const char **source, const char **registry);

/*
 * The registry host of an image reference (GitLab's splitDockerImageName):
 * "docker.io" unless the first '/'-separated component contains '.' or ':'
 * or is "localhost"; "index.docker.io" becomes "docker.io".  Returns the
 * length, or FL_ERR_RANGE if it does not fit in outlen.
 */
int dockerauth_registry(const char *image, char *out, size_t outlen);

/* The normalized path of an image reference (above); caller frees. */
char *dockerauth_image_path(const char *image);
/* The normalized registry path of a credential's server; caller frees. */
char *dockerauth_server_path(const char *server);

/* Base64 (RFC 4648 §4, padded) and base64url (§5, padded); caller frees. */
char *dockerauth_b64(const void *data, size_t len, int url);
/* Decode standard base64 (padding optional); NULL if malformed. */
void *dockerauth_b64_decode(const char *s, size_t *lenp);

#endif
