/*
 * Job artifacts between the helper container and the coordinator: the
 * uploader zips the job's paths and POSTs them as GitLab Runner's helper
 * does (multipart "file", JOB-TOKEN header, its retry rules), the
 * downloader fetches a dependency's archive and unpacks it.  The archive
 * goes through an unlinked temporary file so a retry can send it again
 * and a killed helper leaves nothing behind.  Blocking libcurl is right
 * here: this is a short-lived command doing one thing at a time.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifacts.h"
#include "duration.h"
#include "err.h"
#include "filelist.h"
#include "log.h"
#include "xmalloc.h"
#include "ziparc.h"

#define BODY_MAX (64 * 1024)		/* error bodies kept for the log */
#define MAX_REDIRECTS 5
#define RETRY_DELAY_SEC 1

const char *
artifacts_token(void)
{
	const char *t = getenv("FLOTILLA_HELPER_TOKEN");

	if (t == NULL || t[0] == '\0')
		t = getenv("CI_JOB_TOKEN");
	return t != NULL && t[0] != '\0' ? t : NULL;
}

char *
artifacts_url(const char *base, const char *id)
{
	size_t len = strlen(base);

	if (id[0] == '\0' || strspn(id, "0123456789") != strlen(id) ||
	    strlen(id) > 19)
		return NULL;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
		return NULL;
	while (len > 0 && base[len - 1] == '/')
		len--;
	return xasprintf("%.*s/api/v4/jobs/%s/artifacts", (int)len, base, id);
}

char *
artifacts_rebase(const char *url, const char *location)
{
	CURLU *u = curl_url(), *l = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL, *res = NULL;

	if (u == NULL || l == NULL)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_set(l, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_set(l, CURLUPART_URL, location, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(l, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(l, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	(void)curl_url_get(l, CURLUPART_PORT, &port, 0);
	if (curl_url_set(u, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_HOST, host, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_PORT, port, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
		res = xstrdup(out);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(out);
	curl_url_cleanup(u);
	curl_url_cleanup(l);
	return res;
}

/* ---- one HTTP exchange ---- */

struct resp {
	long code;
	char status[64];	/* "201 Created" */
	char *location;
	struct sbuf body;	/* error bodies, capped */
	int body_fd;		/* 200 of a download: the body goes here */
	int write_err;
};

static void
resp_reset(struct resp *r)
{
	r->code = 0;
	r->status[0] = '\0';
	free(r->location);
	r->location = NULL;
	sbuf_reset(&r->body);
	r->write_err = 0;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', len);

		r->status[0] = '\0';
		free(r->location);
		r->location = NULL;
		if (sp != NULL) {
			const char *v = sp + 1;
			size_t l = len - (size_t)(v - data);

			while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == '\n' ||
			    v[l - 1] == ' '))
				l--;
			if (l >= sizeof(r->status))
				l = sizeof(r->status) - 1;
			memcpy(r->status, v, l);
			r->status[l] = '\0';
		}
	} else if (len > 9 && strncasecmp(data, "location:", 9) == 0) {
		const char *v = data + 9;
		size_t l = len - 9;

		while (l > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			l--;
		}
		while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == '\n' ||
		    v[l - 1] == ' '))
			l--;
		free(r->location);
		r->location = xstrndup(v, l);
	}
	return len;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	if (r->body_fd >= 0 && r->status[0] == '2') {
		size_t off = 0;

		while (off < len) {
			ssize_t w = write(r->body_fd, data + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->write_err = errno ? errno : EIO;
				return 0;
			}
			off += (size_t)w;
		}
		return len;
	}
	if (r->body.len < BODY_MAX)
		sbuf_add(&r->body, data, len < BODY_MAX - r->body.len ?
		    len : BODY_MAX - r->body.len);
	return len;
}

/* The reason phrase when the server sent none (HTTP/2). */
static void
status_fill(struct resp *r)
{
	const char *sp = strchr(r->status, ' ');

	if (sp != NULL && sp[1] != '\0')
		return;
	const char *t = r->code == 200 ? "OK" : r->code == 201 ? "Created" :
	    r->code == 302 ? "Found" : r->code == 307 ? "Temporary Redirect" :
	    r->code == 401 ? "Unauthorized" : r->code == 403 ? "Forbidden" :
	    r->code == 404 ? "Not Found" : r->code == 413 ? "Request Entity Too Large" :
	    r->code == 503 ? "Service Unavailable" : "";
	snprintf(r->status, sizeof(r->status), "%ld%s%s", r->code,
	    t[0] ? " " : "", t);
}

struct req {
	const char *url;
	const char *token;	/* NULL: no JOB-TOKEN (a foreign host) */
	curl_mime *(*mime)(CURL *c, void *arg);	/* POST body, or NULL: GET */
	void *mime_arg;
	int64_t timeout_ns;
};

/*
 * The runner's TLS data, as GitLab's helper takes it: the paths of the
 * job's file variables CI_SERVER_TLS_CA_FILE (trusted besides the system
 * store) and CI_SERVER_TLS_CERT_FILE with CI_SERVER_TLS_KEY_FILE (a client
 * certificate).
 */
static void
tls_from_env(CURL *c)
{
	const char *ca = getenv("CI_SERVER_TLS_CA_FILE");
	const char *cert = getenv("CI_SERVER_TLS_CERT_FILE");
	const char *key = getenv("CI_SERVER_TLS_KEY_FILE");
	struct stat st;

	if (ca != NULL && *ca != '\0') {
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
		if (stat("/etc/ssl/certs", &st) == 0 && S_ISDIR(st.st_mode))
			curl_easy_setopt(c, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (cert != NULL && *cert != '\0' && key != NULL && *key != '\0') {
		curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, key);
	}
}

/* One request; 0 with r filled, or the curl error text in err. */
static int
http_do(const struct req *q, struct resp *r, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	curl_mime *mime = NULL;
	char ebuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	int rc = 0;

	if (c == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return FL_ERR_NOMEM;
	}
	resp_reset(r);
	if (q->token != NULL) {
		char *hdr = xasprintf("JOB-TOKEN: %s", q->token);

		h = curl_slist_append(h, hdr);
		freezero_str(hdr);
	}
	h = curl_slist_append(h, "Accept: application/json, */*");
	curl_easy_setopt(c, CURLOPT_URL, q->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "flotilla-helper/" FL_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	tls_from_env(c);
	if (q->timeout_ns > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
		    (long)(q->timeout_ns / DURATION_MS));
	if (q->mime != NULL) {
		mime = q->mime(c, q->mime_arg);
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	if (cc != CURLE_OK) {
		if (r->write_err)
			snprintf(err, errlen, "writing the download: %s",
			    strerror(r->write_err));
		else
			snprintf(err, errlen, "%s", ebuf[0] ? ebuf :
			    curl_easy_strerror(cc));
		rc = FL_ERR_IO;
	} else {
		status_fill(r);
	}
	curl_mime_free(mime);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

/* The error message of a GitLab answer's JSON body, for the log. */
static void
body_message(const struct resp *r, char *out, size_t len)
{
	const char *b = r->body.buf ? r->body.buf : "";
	size_t i, j = 0;

	for (i = 0; b[i] != '\0' && j + 1 < len && i < 200; i++)
		out[j++] = isprint((unsigned char)b[i]) ? b[i] : ' ';
	out[j] = '\0';
}

/* ---- option parsing shared by both commands ---- */

static int
parse_timeout(const char *s, int64_t *ns)
{
	char *end;
	long v;

	if (duration_parse(s, ns) == 0 && *ns >= 0)
		return 0;
	/* A bare number of minutes, as GitLab's cache commands take. */
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && *end == '\0' && v >= 0 && v < 100000) {
		*ns = (int64_t)v * DURATION_MIN;
		return 0;
	}
	return FL_ERR_PARSE;
}

static void
refuse_token_flag(void)
{
	log_fatal("--token is not accepted on the command line: the job token comes from FLOTILLA_HELPER_TOKEN or CI_JOB_TOKEN");
}

/* ---- upload ---- */

struct upload {
	const char *url_base;
	const char *id;
	const char *name;
	const char *expire_in;
	const char *format;
	const char *type;
	int64_t timeout_ns;
	const char **paths, **excludes;
	size_t npaths, nexcludes;
	int untracked;
	int fd;			/* the archive */
	off_t size;
};

struct mime_src {
	int fd;
	off_t pos, size;
};

static size_t
mime_read(char *buf, size_t size, size_t n, void *arg)
{
	struct mime_src *m = arg;
	size_t want = size * n;
	ssize_t r;

	if (m->pos >= m->size)
		return 0;
	if ((off_t)want > m->size - m->pos)
		want = (size_t)(m->size - m->pos);
	do
		r = pread(m->fd, buf, want, m->pos);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return CURL_READFUNC_ABORT;
	m->pos += r;
	return (size_t)r;
}

static int
mime_seek(void *arg, curl_off_t off, int origin)
{
	struct mime_src *m = arg;

	if (origin != SEEK_SET || off < 0 || off > m->size)
		return CURL_SEEKFUNC_CANTSEEK;
	m->pos = off;
	return CURL_SEEKFUNC_OK;
}

static curl_mime *
upload_mime(CURL *c, void *arg)
{
	struct mime_src *m = ((void **)arg)[0];
	const char *filename = ((void **)arg)[1];
	curl_mime *mime = curl_mime_init(c);
	curl_mimepart *part = curl_mime_addpart(mime);

	m->pos = 0;
	curl_mime_name(part, "file");
	curl_mime_filename(part, filename);
	curl_mime_type(part, "application/octet-stream");
	curl_mime_data_cb(part, m->size, mime_read, mime_seek, NULL, m);
	return mime;
}

static char *
upload_query_url(const struct upload *u, const char *base_url)
{
	struct sbuf sb;
	const char *keys[] = { "artifact_format", "artifact_type", "expire_in" };
	const char *vals[] = { u->format, u->type, u->expire_in };
	char sep = '?';

	sbuf_init(&sb);
	sbuf_adds(&sb, base_url);
	for (size_t i = 0; i < 3; i++) {
		if (vals[i] == NULL || vals[i][0] == '\0')
			continue;
		char *e = curl_easy_escape(NULL, vals[i], 0);
		sbuf_addf(&sb, "%c%s=%s", sep, keys[i], e ? e : "");
		curl_free(e);
		sep = '&';
	}
	return sbuf_detach(&sb, NULL);
}

static int
make_archive(struct upload *u, const struct filelist *l)
{
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/flotilla-artifacts-XXXXXX",
	    tmp && tmp[0] ? tmp : "/tmp");
	struct sbuf why;
	struct stat st;
	int rc;

	u->fd = mkostemp(path, O_CLOEXEC);
	if (u->fd < 0) {
		log_error("creating a temporary file in %s: %s",
		    tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
		free(path);
		return -1;
	}
	unlink(path);
	free(path);
	sbuf_init(&why);
	rc = ziparc_create(u->fd, (const char *const *)l->files, l->n,
	    NULL, NULL, &why);
	if (rc < 0 || fstat(u->fd, &st) < 0) {
		log_error("creating the artifacts archive: %s",
		    why.len ? why.buf : err_str(rc));
		sbuf_release(&why);
		return -1;
	}
	sbuf_release(&why);
	u->size = st.st_size;
	return 0;
}

static void
upload_fields(struct log_field *f, size_t *n, const struct upload *u,
    const struct resp *r, const char *token, char *shortok)
{
	*n = 0;
	f[(*n)++] = (struct log_field){ "id", u->id };
	f[(*n)++] = (struct log_field){ "responseStatus", r->status };
	f[(*n)++] = (struct log_field){ "token", log_short_token(token, shortok) };
}

/*
 * POST the archive until GitLab takes it: 201 done; 307 go to the
 * Location's host; 403 and 413 final; 503 up to 6 tries; anything else
 * (network errors included) up to 3 tries.
 */
static int
upload_send(struct upload *u, const char *token)
{
	char *base = artifacts_url(u->url_base, u->id), *url = NULL;
	char *filename = xasprintf("%s.zip", u->name);
	struct mime_src src = { .fd = u->fd, .size = u->size };
	void *marg[2] = { &src, filename };
	struct resp r = { .body_fd = -1 };
	struct log_field f[4];
	char shortok[9], err[CURL_ERROR_SIZE + 64], msg[256];
	int tries = 0, redirects = 0, rc = -1;
	size_t nf;

	sbuf_init(&r.body);
	url = upload_query_url(u, base);
	for (;;) {
		struct req q = { .url = url, .token = token, .mime = upload_mime,
		    .mime_arg = marg, .timeout_ns = u->timeout_ns };
		int limit;

		tries++;
		if (http_do(&q, &r, err, sizeof(err)) < 0) {
			log_warnf((struct log_field[]){ { "error", err } }, 1,
			    "Uploading artifacts as \"%s\" to coordinator... error",
			    u->type);
			limit = 3;
			goto retry;
		}
		upload_fields(f, &nf, u, &r, token, shortok);
		if (r.code == 201) {
			log_infof(f, nf, "Uploading artifacts as \"%s\" to coordinator... %s",
			    u->type, r.status);
			rc = 0;
			break;
		}
		if (r.code == 307 && r.location != NULL &&
		    redirects < MAX_REDIRECTS) {
			char *nb = artifacts_rebase(base, r.location);

			log_infof(f, nf, "Uploading artifacts as \"%s\" to coordinator... %s",
			    u->type, r.status);
			if (nb == NULL) {
				log_error("Uploading artifacts: the redirect's Location does not parse");
				break;
			}
			free(base);
			base = nb;
			free(url);
			url = upload_query_url(u, base);
			redirects++;
			tries--;	/* a redirect is not a failed try */
			continue;
		}
		body_message(&r, msg, sizeof(msg));
		f[nf++] = (struct log_field){ "status", msg };
		if (r.code == 403) {
			log_errorf(f, nf, "Uploading artifacts as \"%s\" to coordinator... forbidden",
			    u->type);
			log_error("permission denied");
			break;
		}
		if (r.code == 413) {
			log_errorf(f, nf, "Uploading artifacts as \"%s\" to coordinator... too large archive",
			    u->type);
			log_error("too large");
			break;
		}
		if (r.code == 503) {
			log_warnf(f, nf, "Uploading artifacts as \"%s\" to coordinator... service unavailable",
			    u->type);
			limit = 6;
		} else {
			log_warnf(f, nf, "Uploading artifacts as \"%s\" to coordinator... failed",
			    u->type);
			limit = 3;
		}
retry:
		if (tries >= limit) {
			log_error("Uploading artifacts as \"%s\" to coordinator: giving up after %d tries",
			    u->type, tries);
			break;
		}
		log_warn("Retrying...");
		sleep(RETRY_DELAY_SEC);
	}
	resp_reset(&r);
	sbuf_release(&r.body);
	free(url);
	free(base);
	free(filename);
	return rc;
}

static void
push(const char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = s;
}

static const struct option upload_opts[] = {
	{ "url", required_argument, NULL, 'u' },
	{ "id", required_argument, NULL, 'i' },
	{ "name", required_argument, NULL, 'n' },
	{ "expire-in", required_argument, NULL, 'e' },
	{ "artifact-format", required_argument, NULL, 'f' },
	{ "artifact-type", required_argument, NULL, 't' },
	{ "when", required_argument, NULL, 'w' },
	{ "untracked", no_argument, NULL, 'U' },
	{ "path", required_argument, NULL, 'p' },
	{ "exclude", required_argument, NULL, 'x' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "response-header-timeout", required_argument, NULL, 'R' },
	{ "token", required_argument, NULL, 'K' },
	{ NULL, 0, NULL, 0 }
};

int
artifacts_uploader_main(int argc, char **argv)
{
	struct upload u = { .name = "artifacts", .format = "zip",
	    .type = "archive", .timeout_ns = DURATION_HOUR, .fd = -1 };
	struct filelist l = { 0 };
	const char *token;
	int c, rc = 1;
	int64_t ignored;

	while ((c = getopt_long(argc, argv, "", upload_opts, NULL)) != -1) {
		switch (c) {
		case 'u': u.url_base = optarg; break;
		case 'i': u.id = optarg; break;
		case 'n': u.name = optarg; break;
		case 'e': u.expire_in = optarg; break;
		case 'f': u.format = optarg; break;
		case 't': u.type = optarg; break;
		case 'w': break;	/* the script decides when to run us */
		case 'U': u.untracked = 1; break;
		case 'p': push(&u.paths, &u.npaths, optarg); break;
		case 'x': push(&u.excludes, &u.nexcludes, optarg); break;
		case 'T':
			if (parse_timeout(optarg, &u.timeout_ns) < 0)
				log_fatal("--timeout %s: not a duration", optarg);
			break;
		case 'R':
			if (parse_timeout(optarg, &ignored) < 0)
				log_fatal("--response-header-timeout %s: not a duration",
				    optarg);
			break;
		case 'K': refuse_token_flag(); break;
		default:
			log_fatal("artifacts-uploader: unknown option (see flotilla-helper --help)");
		}
	}
	if (optind < argc)
		log_fatal("artifacts-uploader: unexpected argument %s", argv[optind]);
	if (u.url_base == NULL || u.id == NULL)
		log_fatal("artifacts-uploader: --url and --id are required");
	char *probe = artifacts_url(u.url_base, u.id);
	if (probe == NULL)
		log_fatal("artifacts-uploader: --url must be an http(s) URL and --id a job id");
	free(probe);
	if (strcmp(u.format, "zip") != 0)
		log_fatal("artifacts-uploader: artifact format %s is not supported (only zip)",
		    u.format);
	if (u.name[0] == '\0' || strchr(u.name, '/') != NULL)
		log_fatal("artifacts-uploader: --name must be a file name");
	token = artifacts_token();
	if (token == NULL)
		log_fatal("artifacts-uploader: no job token (set FLOTILLA_HELPER_TOKEN or CI_JOB_TOKEN)");
	log_add_secret(token);

	log_info("Uploading artifacts...");
	struct filelist_opts fo = { .paths = u.paths, .npaths = u.npaths,
	    .excludes = u.excludes, .nexcludes = u.nexcludes,
	    .untracked = u.untracked };
	if (filelist_collect(&l, &fo) < 0)
		goto out;
	if (l.n == 0) {
		/* GitLab's helper: an error line, but not a failed job. */
		log_error("No files to upload");
		rc = 0;
		goto out;
	}
	if (make_archive(&u, &l) < 0)
		goto out;
	if (upload_send(&u, token) == 0)
		rc = 0;
out:
	if (u.fd >= 0)
		close(u.fd);
	filelist_release(&l);
	free(u.paths);
	free(u.excludes);
	return rc;
}

/* ---- download ---- */

static const struct option download_opts[] = {
	{ "url", required_argument, NULL, 'u' },
	{ "id", required_argument, NULL, 'i' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "token", required_argument, NULL, 'K' },
	{ NULL, 0, NULL, 0 }
};

/* The host part ("scheme://host:port") of a URL, for comparisons. */
static char *
url_origin(const char *url)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL, *p = NULL, *res = NULL;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK)
		res = xasprintf("%s://%s:%s", s, h, p);
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return res;
}

/* Resolve a Location against the URL it answered. */
static char *
resolve(const char *url, const char *location)
{
	CURLU *u = curl_url();
	char *out = NULL, *res = NULL;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
		res = xstrdup(out);
	curl_free(out);
	curl_url_cleanup(u);
	return res;
}

int
artifacts_downloader_main(int argc, char **argv)
{
	const char *base = NULL, *id = NULL, *token;
	int64_t timeout_ns = DURATION_HOUR;
	char *url, *origin, *cur = NULL;
	char shortok[9], err[CURL_ERROR_SIZE + 64], msg[256];
	struct resp r = { .body_fd = -1 };
	int c, rc = 1, tries = 0, redirects = 0;

	while ((c = getopt_long(argc, argv, "", download_opts, NULL)) != -1) {
		switch (c) {
		case 'u': base = optarg; break;
		case 'i': id = optarg; break;
		case 'T':
			if (parse_timeout(optarg, &timeout_ns) < 0)
				log_fatal("--timeout %s: not a duration", optarg);
			break;
		case 'K': refuse_token_flag(); break;
		default:
			log_fatal("artifacts-downloader: unknown option (see flotilla-helper --help)");
		}
	}
	if (optind < argc)
		log_fatal("artifacts-downloader: unexpected argument %s", argv[optind]);
	if (base == NULL || id == NULL)
		log_fatal("artifacts-downloader: --url and --id are required");
	url = artifacts_url(base, id);
	if (url == NULL)
		log_fatal("artifacts-downloader: --url must be an http(s) URL and --id a job id");
	token = artifacts_token();
	if (token == NULL)
		log_fatal("artifacts-downloader: no job token (set FLOTILLA_HELPER_TOKEN or CI_JOB_TOKEN)");
	log_add_secret(token);

	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/flotilla-download-XXXXXX",
	    tmp && tmp[0] ? tmp : "/tmp");
	r.body_fd = mkostemp(path, O_CLOEXEC);
	if (r.body_fd < 0)
		log_fatal("creating a temporary file: %s", strerror(errno));
	unlink(path);
	free(path);
	sbuf_init(&r.body);
	origin = url_origin(url);
	cur = xstrdup(url);

	for (;;) {
		char *co = url_origin(cur);
		int same = co != NULL && origin != NULL && strcmp(co, origin) == 0;
		struct req q = { .url = cur, .token = same ? token : NULL,
		    .timeout_ns = timeout_ns };
		struct log_field f[4] = {
			{ "id", id }, { "responseStatus", "" },
			{ "token", log_short_token(token, shortok) },
			{ "status", "" } };

		free(co);
		tries++;
		if (ftruncate(r.body_fd, 0) < 0 || lseek(r.body_fd, 0, SEEK_SET) < 0)
			log_fatal("truncating the download file: %s", strerror(errno));
		if (http_do(&q, &r, err, sizeof(err)) < 0) {
			log_warnf((struct log_field[]){ { "error", err } }, 1,
			    "Downloading artifacts from coordinator... error");
			goto retry;
		}
		f[1].value = r.status;
		if (r.code == 200) {
			struct sbuf why;
			size_t n;
			int xr;

			log_infof(f, 3, "Downloading artifacts from coordinator... ok");
			sbuf_init(&why);
			xr = ziparc_extract(r.body_fd, &n, &why);
			if (xr < 0)
				log_error("extracting the artifacts: %s",
				    why.len ? why.buf : err_str(xr));
			else
				rc = 0;
			sbuf_release(&why);
			break;
		}
		if ((r.code == 302 || r.code == 307) && r.location != NULL &&
		    redirects < MAX_REDIRECTS) {
			char *next = resolve(cur, r.location);

			log_infof(f, 3, "Downloading artifacts from coordinator... redirected");
			if (next == NULL) {
				log_error("Downloading artifacts: the redirect's Location does not parse");
				break;
			}
			free(cur);
			cur = next;
			redirects++;
			tries--;
			continue;
		}
		body_message(&r, msg, sizeof(msg));
		f[3].value = msg;
		if (r.code == 401) {
			log_errorf(f, 4, "Downloading artifacts from coordinator... unauthorized");
			break;
		}
		if (r.code == 403) {
			log_errorf(f, 4, "Downloading artifacts from coordinator... forbidden");
			break;
		}
		if (r.code == 404) {
			log_errorf(f, 4, "Downloading artifacts from coordinator... not found");
			break;
		}
		log_warnf(f, 4, "Downloading artifacts from coordinator... failed");
retry:
		if (tries >= 3) {
			log_error("Downloading artifacts from coordinator: giving up after %d tries",
			    tries);
			break;
		}
		log_warn("Retrying...");
		sleep(RETRY_DELAY_SEC);
	}
	close(r.body_fd);
	resp_reset(&r);
	sbuf_release(&r.body);
	free(cur);
	free(origin);
	free(url);
	return rc;
}
