/*
 * Registry credentials for pulls (DOCKER_AUTH_CONFIG and the job's
 * credentials) and the X-Registry-Auth header: see dockerauth.h.  Every
 * buffer that holds a secret is sized exactly and wiped before it is freed
 * (no growing buffers, whose old copies would be freed unwiped).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dockerauth.h"
#include "err.h"
#include "xmalloc.h"

struct cred {
	char *path;		/* normalized registry path */
	char *server;		/* as written in the source */
	char *username;		/* secret */
	char *password;		/* secret */
	char *identitytoken;	/* secret */
	char *source;
};

struct dockerauth {
	struct cred *v;
	size_t n;
};

struct dockerauth *
dockerauth_new(void)
{
	return xcalloc(1, sizeof(struct dockerauth));
}

static void
cred_release(struct cred *c)
{
	free(c->path);
	free(c->server);
	freezero_str(c->username);
	freezero_str(c->password);
	freezero_str(c->identitytoken);
	free(c->source);
	memset(c, 0, sizeof(*c));
}

void
dockerauth_free(struct dockerauth *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		cred_release(&a->v[i]);
	free(a->v);
	free(a);
}

static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
dockerauth_b64(const void *data, size_t len, int url)
{
	const unsigned char *p = data;
	const char *tab = url ? b64url : b64std;
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
		*o++ = tab[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		*o++ = tab[p[i + 2] & 63];
	}
	if (i < len) {
		*o++ = tab[p[i] >> 2];
		if (i + 1 < len) {
			*o++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
			*o++ = tab[(p[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64val(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(b64std, c)) == NULL)
		return -1;
	return (int)(p - b64std);
}

void *
dockerauth_b64_decode(const char *s, size_t *lenp)
{
	size_t n = strlen(s), pad = 0, i, o = 0;
	unsigned char *out;
	unsigned int acc = 0;
	int bits = 0;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return NULL;
	out = xmalloc(n * 3 / 4 + 1);
	for (i = 0; i < n; i++) {
		int v = b64val(s[i]);

		if (v < 0) {
			freezero(out, n * 3 / 4 + 1);
			return NULL;
		}
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		freezero(out, n * 3 / 4 + 1);
		return NULL;
	}
	out[o] = '\0';
	*lenp = o;
	return out;
}

/* Lower-case the host part (up to the first '/') of s in place. */
static void
lower_host(char *s)
{
	for (; *s != '\0' && *s != '/'; s++)
		*s = (char)tolower((unsigned char)*s);
}

int
dockerauth_registry(const char *image, char *out, size_t outlen)
{
	const char *slash = strchr(image, '/');
	size_t n;
	const char *host = "docker.io";

	if (slash != NULL) {
		n = (size_t)(slash - image);
		if (memchr(image, '.', n) != NULL ||
		    memchr(image, ':', n) != NULL ||
		    (n == 9 && strncmp(image, "localhost", 9) == 0)) {
			if (!(n == 15 && strncmp(image, "index.docker.io",
			    15) == 0)) {
				if (n + 1 > outlen)
					return FL_ERR_RANGE;
				memcpy(out, image, n);
				out[n] = '\0';
				return (int)n;
			}
		}
	}
	n = strlen(host);
	if (n + 1 > outlen)
		return FL_ERR_RANGE;
	memcpy(out, host, n + 1);
	return (int)n;
}

char *
dockerauth_image_path(const char *image)
{
	const char *last = strrchr(image, '/');
	const char *name = last ? last + 1 : image;
	size_t dirlen = (size_t)(name - image), namelen;
	char *norm, *o, *res;
	const char *first_end;
	size_t firstlen;
	int hub;

	/* Drop "@digest", then ":tag", from the last component. */
	namelen = strcspn(name, "@");
	namelen = strcspn(name, ":") < namelen ? strcspn(name, ":") : namelen;

	/* Join dir and name, collapsing repeated and trailing slashes. */
	norm = xmalloc(dirlen + namelen + 1);
	o = norm;
	for (size_t i = 0; i < dirlen; i++) {
		if (image[i] == '/' && (o == norm || o[-1] == '/'))
			continue;
		*o++ = image[i];
	}
	memcpy(o, name, namelen);
	o += namelen;
	while (o > norm && o[-1] == '/')
		o--;
	*o = '\0';

	first_end = strchr(norm, '/');
	firstlen = first_end ? (size_t)(first_end - norm) : strlen(norm);
	hub = first_end == NULL ||
	    (memchr(norm, '.', firstlen) == NULL &&
	    memchr(norm, ':', firstlen) == NULL &&
	    !(firstlen == 9 && strncasecmp(norm, "localhost", 9) == 0));
	if (hub) {
		res = xasprintf("docker.io/%s", norm);
	} else if (firstlen == 15 && strncasecmp(norm, "index.docker.io",
	    15) == 0) {
		res = xstrdup(norm + 6);	/* cut "index." */
	} else {
		res = xstrdup(norm);
	}
	free(norm);
	lower_host(res);
	return res;
}

char *
dockerauth_server_path(const char *server)
{
	char *p;
	size_t n;

	if (strncasecmp(server, "https://", 8) == 0 ||
	    strncasecmp(server, "http://", 7) == 0) {
		const char *h = strstr(server, "://") + 3;

		p = xstrndup(h, strcspn(h, "/"));
		lower_host(p);
		if (strcmp(p, "index.docker.io") == 0) {
			free(p);
			p = xstrdup("docker.io");
		}
		return p;
	}
	p = xstrdup(server);
	n = strlen(p);
	if (n > 0 && p[n - 1] == '/')
		p[--n] = '\0';
	{
		char *colon = strrchr(p, ':'), *slash = strrchr(p, '/');

		if (slash != NULL && colon != NULL && colon > slash)
			*colon = '\0';
	}
	lower_host(p);
	return p;
}

static const struct cred *
find(const struct dockerauth *a, const char *path)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].path, path) == 0)
			return &a->v[i];
	return NULL;
}

/* Takes ownership of the strings (secrets included). */
static int
add_cred(struct dockerauth *a, const char *server, char *user, char *pass,
    char *token, const char *source)
{
	char *path = dockerauth_server_path(server);
	struct cred *c;

	if (find(a, path) != NULL) {
		free(path);
		freezero_str(user);
		freezero_str(pass);
		freezero_str(token);
		return 0;
	}
	a->v = xreallocarray(a->v, a->n + 1, sizeof(*a->v));
	c = &a->v[a->n++];
	c->path = path;
	c->server = xstrdup(server);
	c->username = user;
	c->password = pass;
	c->identitytoken = token;
	c->source = xstrdup(source ? source : "");
	return 1;
}

void
dockerauth_add(struct dockerauth *a, const char *server,
    const char *username, const char *password, const char *source)
{
	(void)add_cred(a, server, xstrdup(username ? username : ""),
	    xstrdup(password ? password : ""), NULL, source);
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* One "auths" entry, decoded; secrets allocated exactly. */
struct entry {
	const char *server;
	char *user, *pass, *token;
};

static void
entry_wipe(struct entry *e)
{
	freezero_str(e->user);
	freezero_str(e->pass);
	freezero_str(e->token);
	e->user = e->pass = e->token = NULL;
}

static int
decode_entry(const char *server, json_t *obj, struct entry *e, char *err,
    size_t errlen)
{
	json_t *v;

	memset(e, 0, sizeof(*e));
	e->server = server;
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "auths.\"%s\" is not an object", server);
		return FL_ERR_PARSE;
	}
	if ((v = json_object_get(obj, "username")) != NULL &&
	    json_is_string(v))
		e->user = xstrdup(json_string_value(v));
	if ((v = json_object_get(obj, "password")) != NULL &&
	    json_is_string(v))
		e->pass = xstrdup(json_string_value(v));
	if ((v = json_object_get(obj, "identitytoken")) != NULL &&
	    json_is_string(v) && json_string_length(v) > 0)
		e->token = xstrdup(json_string_value(v));
	v = json_object_get(obj, "auth");
	if (v != NULL && !json_is_string(v)) {
		snprintf(err, errlen, "auths.\"%s\".auth is not a string",
		    server);
		entry_wipe(e);
		return FL_ERR_PARSE;
	}
	if (v != NULL && json_string_length(v) > 0) {
		size_t n;
		char *raw = dockerauth_b64_decode(json_string_value(v), &n);
		char *colon, *p, *q;

		colon = raw ? memchr(raw, ':', n) : NULL;
		if (colon == NULL) {
			if (raw != NULL)
				freezero(raw, n + 1);
			snprintf(err, errlen, "auths.\"%s\".auth is not base64 "
			    "of \"user:password\"", server);
			entry_wipe(e);
			return FL_ERR_PARSE;
		}
		freezero_str(e->user);
		freezero_str(e->pass);
		e->user = xstrndup(raw, (size_t)(colon - raw));
		/* The password with NULs trimmed from both ends (as docker). */
		p = colon + 1;
		q = raw + n;
		while (p < q && *p == '\0')
			p++;
		while (q > p && q[-1] == '\0')
			q--;
		e->pass = xstrndup(p, (size_t)(q - p));
		freezero(raw, n + 1);
	}
	return 0;
}

int
dockerauth_add_config(struct dockerauth *a, const char *json, size_t len,
    const char *source, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *auths, *val;
	const char *key, **keys = NULL;
	struct entry *ents = NULL;
	size_t nkeys = 0, i;
	int rc = 0, added = 0;

	if (errlen > 0)
		err[0] = '\0';
	root = json_loadb(json, len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		/* jerr.text can quote the input: keep only the position. */
		snprintf(err, errlen, "not a JSON object (line %d, column %d)",
		    root ? 1 : jerr.line, root ? 1 : jerr.column);
		json_decref(root);
		return FL_ERR_PARSE;
	}
	auths = json_object_get(root, "auths");
	if (auths == NULL) {
		json_decref(root);
		return 0;
	}
	if (!json_is_object(auths)) {
		snprintf(err, errlen, "\"auths\" is not an object");
		json_decref(root);
		return FL_ERR_PARSE;
	}
	/* Sorted by registry, as the runner orders them. */
	keys = xcalloc(json_object_size(auths) + 1, sizeof(*keys));
	json_object_foreach(auths, key, val)
		keys[nkeys++] = key;
	qsort(keys, nkeys, sizeof(*keys), cmp_str);
	ents = xcalloc(nkeys + 1, sizeof(*ents));
	for (i = 0; i < nkeys && rc == 0; i++)
		rc = decode_entry(keys[i], json_object_get(auths, keys[i]),
		    &ents[i], err, errlen);
	if (rc == 0) {
		for (i = 0; i < nkeys; i++) {
			added += add_cred(a, ents[i].server, ents[i].user,
			    ents[i].pass, ents[i].token, source);
			ents[i].user = ents[i].pass = ents[i].token = NULL;
		}
	}
	for (i = 0; i < nkeys; i++)
		entry_wipe(&ents[i]);
	free(ents);
	free(keys);
	json_decref(root);
	return rc < 0 ? rc : added;
}

/* Length of s as a JSON string body (no quotes), and the writer. */
static size_t
json_esc_len(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\' || c == '\n' || c == '\r' ||
		    c == '\t')
			n += 2;
		else if (c < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

static char *
json_esc_put(char *o, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': *o++ = '\\'; *o++ = '"'; break;
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		default:
			if (c < 0x20) {
				static const char hex[] = "0123456789abcdef";

				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				o += 6;
			} else {
				*o++ = (char)c;
			}
		}
	}
	return o;
}

char *
dockerauth_header(const struct dockerauth *a, const char *image,
    const char **source, const char **registry)
{
	const struct cred *c = NULL;
	char *path = dockerauth_image_path(image), *json, *o, *hdr;
	const char *names[4] = { "username", "password", "serveraddress",
	    "identitytoken" };
	const char *vals[4];
	size_t len = 2, jlen;

	for (;;) {
		char *slash;

		if ((c = find(a, path)) != NULL || path[0] == '\0')
			break;
		if ((slash = strrchr(path, '/')) == NULL)
			path[0] = '\0';
		else
			*slash = '\0';
	}
	free(path);
	if (c == NULL)
		return NULL;

	vals[0] = c->username;
	vals[1] = c->password;
	vals[2] = c->server;
	vals[3] = c->identitytoken;
	for (int i = 0; i < 4; i++)
		if (vals[i] != NULL && vals[i][0] != '\0')
			len += strlen(names[i]) + 6 + json_esc_len(vals[i]);
	json = xmalloc(len + 1);
	o = json;
	*o++ = '{';
	for (int i = 0; i < 4; i++) {
		if (vals[i] == NULL || vals[i][0] == '\0')
			continue;
		if (o[-1] != '{')
			*o++ = ',';
		*o++ = '"';
		memcpy(o, names[i], strlen(names[i]));
		o += strlen(names[i]);
		memcpy(o, "\":\"", 3);
		o += 3;
		o = json_esc_put(o, vals[i]);
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	jlen = (size_t)(o - json);
	hdr = dockerauth_b64(json, jlen, 1);
	freezero(json, len + 1);
	if (source != NULL)
		*source = c->source;
	if (registry != NULL)
		*registry = c->path;
	return hdr;
}
