/*
 * fleeting-plugin-local's instances: sshd listeners on 127.0.0.N (see
 * local_group.h for the life cycle and the persistence).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "local_group.h"
#include "local_proc.h"
#include "log.h"
#include "xmalloc.h"

#define KEY_MAX (64 * 1024)
#define BOOT_WAIT_MS 10000	/* for sshd to listen */
#define STOP_GRACE_MS 5000	/* SIGTERM to SIGKILL */
#define KEYGEN_MS 30000
#define BIND_TRIES 3
#define DELETE_ALL_S 25		/* Shutdown with delete_on_shutdown */

enum inst_state {
	I_BOOTING,	/* waiting for boot_at, or for the worker */
	I_STARTING,	/* the worker is starting sshd */
	I_RUNNING,
	I_FAILED,	/* sshd never listened */
	I_DELETING,
	I_VANISHED	/* sshd died: not reported, the worker cleans up */
};

struct inst {
	struct inst *next;
	char id[LOCAL_NAME_MAX + 24];
	uint64_t seq;
	uint32_t addr;
	char addr_s[16];
	int port;		/* 0 until sshd was started */
	pid_t pid;		/* 0 until sshd was started */
	char *dir;
	char *needle;		/* "DIR/sshd_config": in sshd's command line */
	int64_t created;	/* wall clock, ns */
	int64_t boot_at;	/* wall clock, ns: start sshd from then on */
	enum inst_state st;
	bool busy;		/* the worker works on it outside the mutex */
	char cause[256];	/* why it failed */
};

struct local_group {
	struct local_config cfg;
	int64_t max_size;
	char *inst_root;	/* state_dir/instances */
	int lock_fd;
	char *keygen;		/* ssh-keygen's path */
	uint8_t *key;		/* the private key instances trust (PEM) */
	size_t key_len;
	char *pubkey;		/* its public key line */
	bool static_key;	/* key from key_path or the settings */
	char username[64];
	char arch[72];

	pthread_mutex_t mu;
	pthread_cond_t wake;	/* the worker: something to do, or stop */
	pthread_cond_t changed;	/* an instance was removed */
	pthread_t worker;
	bool worker_started;
	bool stop;
	struct inst *list;
	uint64_t next_seq;
};

/* ------------------------------------------------------------- files */

/* Write data to path atomically (tmp file, fsync, rename), mode 0600. */
static int
write_file(const char *path, const void *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp", path);
	const char *p = data;
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(tmp);
		return FL_ERR_IO;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = FL_ERR_IO;
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = FL_ERR_IO;
	if (close(fd) != 0)
		rc = FL_ERR_IO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = FL_ERR_IO;
	if (rc != 0)
		(void)unlink(tmp);
	free(tmp);
	return rc;
}

/* Read a whole (small) file; heap, NUL-terminated; NULL on error. */
static char *
read_file(const char *path, size_t max, size_t *lenp)
{
	struct sbuf sb;
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return NULL;
	sbuf_init(&sb);
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (sb.len + (size_t)r > max) {
			r = -1;
			break;
		}
		sbuf_add(&sb, buf, (size_t)r);
	}
	close(fd);
	if (r != 0) {
		explicit_bzero(sb.buf, sb.len);
		sbuf_release(&sb);
		errno = r < 0 && errno == 0 ? EFBIG : errno;
		return NULL;
	}
	return sbuf_detach(&sb, lenp);
}

/* mkdir -p with mode for the parts it makes. */
static int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				rc = FL_ERR_IO;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

/* Record in (under g->mu). */
static void
save_inst(struct local_group *g, const struct inst *in)
{
	json_t *o;
	char *path, *text;

	(void)g;
	o = json_pack("{s:s, s:I, s:s, s:i, s:i, s:I, s:I, s:b, s:b}",
	    "id", in->id, "seq", (json_int_t)in->seq, "addr", in->addr_s,
	    "port", in->port, "pid", (int)in->pid,
	    "created_unix_ns", (json_int_t)in->created,
	    "boot_at_unix_ns", (json_int_t)in->boot_at,
	    "deleting", in->st == I_DELETING,
	    "failed", in->st == I_FAILED);
	text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	path = xasprintf("%s/instance.json", in->dir);
	if (text == NULL || write_file(path, text, strlen(text)) != 0)
		log_warn("cannot record instance %s in %s: %s", in->id, path,
		    strerror(errno));
	free(path);
	free(text);
	json_decref(o);
}

static void
save_seq(struct local_group *g)
{
	char *path = xasprintf("%s/next_seq", g->cfg.state_dir);
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%llu\n",
	    (unsigned long long)g->next_seq);
	if (write_file(path, buf, strlen(buf)) != 0)
		log_warn("cannot write %s: %s", path, strerror(errno));
	free(path);
}

/* ------------------------------------------------------------ helpers */

static struct inst *
inst_new(struct local_group *g, const char *id, uint64_t seq, uint32_t addr)
{
	struct inst *in = xcalloc(1, sizeof(*in));

	(void)snprintf(in->id, sizeof(in->id), "%s", id);
	in->seq = seq;
	in->addr = addr;
	local_addr_str(addr, in->addr_s);
	in->dir = xasprintf("%s/%s", g->inst_root, id);
	in->needle = xasprintf("%s/sshd_config", in->dir);
	return in;
}

static void
inst_free(struct inst *in)
{
	if (in == NULL)
		return;
	free(in->dir);
	free(in->needle);
	free(in);
}

/* The instance named id that the manager can still see (not vanished). */
static struct inst *
find(struct local_group *g, const char *id)
{
	for (struct inst *in = g->list; in != NULL; in = in->next) {
		if (in->st != I_VANISHED && strcmp(in->id, id) == 0)
			return in;
	}
	return NULL;
}

static void
unlink_inst(struct local_group *g, struct inst *in)
{
	for (struct inst **pp = &g->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			return;
		}
	}
}

/* Is some TCP socket listening on addr:port?  (/proc/net/tcp) */
static bool
listening(uint32_t addr, int port)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];
	bool found = false;
	uint32_t want = htonl(addr);

	if (f == NULL)
		return true;	/* cannot tell: trust the pid file */
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		unsigned a, p, st;

		if (sscanf(line, " %*d: %8x:%4x %*8x:%*4x %2x", &a, &p,
		    &st) == 3 && st == 0x0A && (int)p == port &&
		    (a == want || a == 0))
			found = true;
	}
	fclose(f);
	return found;
}

/* Port 22 if it can be bound on addr now, else one the kernel picks. */
static int
choose_port(uint32_t addr)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1, port = 0;

	for (int want = 22; want >= 0 && port == 0; want -= 22) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return 0;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(addr);
		sa.sin_port = htons((uint16_t)want);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
			port = ntohs(sa.sin_port);
		close(fd);
	}
	return port;
}

/* The last non-empty line of a log file, for a failure's cause. */
static void
last_line(const char *path, char *buf, size_t len)
{
	size_t n = 0;
	char *text = read_file(path, 1 << 20, &n), *e, *s;

	buf[0] = '\0';
	if (text == NULL)
		return;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	e = text + n;
	s = memrchr(text, '\n', (size_t)(e - text));
	s = s != NULL ? s + 1 : text;
	(void)snprintf(buf, len, "%s", s);
	free(text);
}

static bool
file_has(const char *path, const char *needle)
{
	char *text = read_file(path, 1 << 20, NULL);
	bool r = text != NULL && strstr(text, needle) != NULL;

	free(text);
	return r;
}

/* Run ssh-keygen with args; 0, or an error with its stderr in err. */
static int
keygen(struct local_group *g, const char *const *args, struct sbuf *out,
    char *err, size_t errlen)
{
	const char *argv[16];
	struct sbuf e;
	size_t n = 0;
	int rc, status = 0;

	argv[n++] = g->keygen;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	sbuf_init(&e);
	rc = local_proc_run(argv, out, &e, KEYGEN_MS, &status, err, errlen);
	if (rc == 0 && status != 0) {
		while (e.len > 0 && e.buf[e.len - 1] == '\n')
			e.buf[--e.len] = '\0';
		(void)snprintf(err, errlen, "ssh-keygen %s failed (exit %d): %s",
		    args[0], status, e.len > 0 ? e.buf : "no message");
		rc = FL_ERR_IO;
	}
	sbuf_release(&e);
	return rc;
}

/* A new ed25519 key pair at path (and path.pub). */
static int
keygen_new(struct local_group *g, const char *path, const char *comment,
    char *err, size_t errlen)
{
	const char *args[] = { "-q", "-t", "ed25519", "-N", "", "-C", comment,
	    "-f", path, NULL };

	return keygen(g, args, NULL, err, errlen);
}

/* ---------------------------------------------------- the worker thread */

/*
 * Start sshd for in (outside the mutex; in is busy, so nobody frees it
 * and its immutable fields may be read).  0, or an error with the cause.
 */
static int
boot(struct local_group *g, struct inst *in, char *cause, size_t len)
{
	char *hostkey = xasprintf("%s/ssh_host_ed25519_key", in->dir);
	char *ak = xasprintf("%s/authorized_keys", in->dir);
	char *pidfile = xasprintf("%s/sshd.pid", in->dir);
	char *logfile = xasprintf("%s/sshd.log", in->dir);
	char *comment = xasprintf("fleeting-plugin-local %s", in->id);
	char *conf = NULL;
	int rc = 0;

	if (geteuid() == 0 && mkdir("/run/sshd", 0755) != 0 &&
	    errno != EEXIST)
		log_warn("cannot make /run/sshd: %s", strerror(errno));
	if (access(hostkey, R_OK) != 0 &&
	    (rc = keygen_new(g, hostkey, comment, cause, len)) != 0)
		goto out;
	if (write_file(ak, g->pubkey, strlen(g->pubkey)) != 0) {
		(void)snprintf(cause, len, "cannot write %s: %s", ak,
		    strerror(errno));
		rc = FL_ERR_IO;
		goto out;
	}
	for (int try = 1; try <= BIND_TRIES; try++) {
		const char *argv[] = { g->cfg.sshd_path, "-f", in->needle, "-D",
		    "-E", logfile, NULL };
		struct local_proc_spec sp = { argv, -1, -1, -1, true };
		int port = choose_port(in->addr);
		pid_t pid;
		int64_t end;
		bool up = false;

		if (port == 0) {
			(void)snprintf(cause, len, "no free port on %s",
			    in->addr_s);
			rc = FL_ERR_IO;
			goto out;
		}
		free(conf);
		conf = local_sshd_config(in->dir, in->addr_s, port,
		    g->cfg.sshd_config_extra);
		(void)unlink(pidfile);
		if (write_file(in->needle, conf, strlen(conf)) != 0) {
			(void)snprintf(cause, len, "cannot write %s: %s",
			    in->needle, strerror(errno));
			rc = FL_ERR_IO;
			goto out;
		}
		rc = local_proc_spawn(&sp, &pid, cause, len);
		if (rc != 0)
			goto out;
		pthread_mutex_lock(&g->mu);
		in->pid = pid;
		in->port = port;
		save_inst(g, in);
		pthread_mutex_unlock(&g->mu);

		/* sshd writes its pid file once it listens. */
		end = local_now_mono() + (int64_t)BOOT_WAIT_MS * 1000000;
		while (local_now_mono() < end) {
			if (!local_proc_alive(pid, NULL))
				break;
			if (access(pidfile, F_OK) == 0 &&
			    listening(in->addr, port)) {
				up = true;
				break;
			}
			struct timespec ts = { 0, 20 * 1000000L };

			nanosleep(&ts, NULL);
		}
		if (up) {
			const struct log_field f[] = {
				{ "id", in->id },
				{ "address", in->addr_s },
			};
			char msg[64];

			(void)snprintf(msg, sizeof(msg), "sshd pid %d port %d",
			    (int)pid, port);
			log_infof(f, 2, "instance running: %s", msg);
			rc = 0;
			goto out;
		}
		if (local_proc_alive(pid, NULL)) {
			(void)local_proc_kill_tree(pid, NULL, 1000);
			(void)snprintf(cause, len, "sshd did not listen on "
			    "%s:%d within %d s", in->addr_s, port,
			    BOOT_WAIT_MS / 1000);
			rc = FL_ERR_TIMEOUT;
			goto out;
		}
		/* Someone took the port between our check and sshd's bind. */
		if (try < BIND_TRIES && file_has(logfile, "Address already in use"))
			continue;
		last_line(logfile, cause, len);
		if (cause[0] == '\0')
			(void)snprintf(cause, len, "sshd exited at once");
		rc = FL_ERR_IO;
		goto out;
	}
out:
	free(conf);
	free(hostkey);
	free(ak);
	free(pidfile);
	free(logfile);
	free(comment);
	return rc;
}

/* End in's sshd and everything under it, remove its directory. */
static void
teardown_inst(struct inst *in)
{
	if (in->pid > 0 && local_proc_kill_tree(in->pid, in->needle,
	    STOP_GRACE_MS) != 0)
		log_warn("instance %s: processes survive SIGKILL", in->id);
	if (local_proc_rm_rf(in->dir) != 0)
		log_warn("instance %s: cannot remove %s: %s", in->id, in->dir,
		    strerror(errno));
}

/* The next job for the worker (under the mutex), or NULL. */
static struct inst *
next_job(struct local_group *g, int64_t now, int64_t *wake_at)
{
	*wake_at = INT64_MAX;
	for (struct inst *in = g->list; in != NULL; in = in->next) {
		if (in->busy)
			continue;
		if (in->st == I_DELETING || in->st == I_VANISHED)
			return in;
		if (in->st == I_BOOTING) {
			if (in->boot_at <= now)
				return in;
			if (in->boot_at < *wake_at)
				*wake_at = in->boot_at;
		}
	}
	return NULL;
}

static void *
worker(void *arg)
{
	struct local_group *g = arg;
	char cause[256];

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		int64_t wake_at;
		struct inst *in = next_job(g, local_now_real(), &wake_at);

		if (in == NULL) {
			if (wake_at == INT64_MAX) {
				pthread_cond_wait(&g->wake, &g->mu);
			} else {
				struct timespec ts = {
					(time_t)(wake_at / 1000000000),
					(long)(wake_at % 1000000000)
				};

				pthread_cond_timedwait(&g->wake, &g->mu, &ts);
			}
			continue;
		}
		in->busy = true;
		if (in->st == I_BOOTING) {
			int rc;

			in->st = I_STARTING;
			pthread_mutex_unlock(&g->mu);
			cause[0] = '\0';
			rc = boot(g, in, cause, sizeof(cause));
			pthread_mutex_lock(&g->mu);
			in->busy = false;
			if (in->st == I_DELETING)
				continue;	/* deleted meanwhile */
			if (rc == 0) {
				in->st = I_RUNNING;
			} else {
				in->st = I_FAILED;
				(void)snprintf(in->cause, sizeof(in->cause),
				    "%s", cause);
				log_error("instance %s failed to start: %s",
				    in->id, cause);
			}
			save_inst(g, in);
			continue;
		}
		/* Deleting or vanished: tear down, forget. */
		pthread_mutex_unlock(&g->mu);
		teardown_inst(in);
		pthread_mutex_lock(&g->mu);
		log_info("instance %s %s", in->id, in->st == I_DELETING ?
		    "deleted" : "removed (its sshd had died)");
		unlink_inst(g, in);
		inst_free(in);
		pthread_cond_broadcast(&g->changed);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* -------------------------------------------------------------- set-up */

static int
find_keygen(struct local_group *g)
{
	static const char *const dirs[] = { "/usr/bin", "/bin",
	    "/usr/local/bin", NULL };

	for (size_t i = 0; dirs[i] != NULL; i++) {
		char *p = xasprintf("%s/ssh-keygen", dirs[i]);

		if (access(p, X_OK) == 0) {
			g->keygen = p;
			return 0;
		}
		free(p);
	}
	return FL_ERR_NOTFOUND;
}

/*
 * The key pair instances trust: key_path, else the manager's static key,
 * else one generated in state_dir (kept there, so that a restarted plugin
 * and its adopted instances keep using it).
 */
static int
setup_keys(struct local_group *g, const struct plugin_connector *settings,
    int *prc, char *err, size_t errlen)
{
	const char *priv = g->cfg.key_path;
	char *own = NULL, *tmp = NULL;
	struct sbuf pub;
	int rc = 0;

	*prc = PLUGIN_FAILED;
	sbuf_init(&pub);
	if (priv != NULL) {
		*prc = PLUGIN_BAD_CONFIG;
		g->static_key = true;
	} else if (settings->use_static_credentials && settings->key != NULL) {
		tmp = xasprintf("%s/static_key", g->cfg.state_dir);
		if (write_file(tmp, settings->key, settings->key_len) != 0) {
			(void)snprintf(err, errlen, "cannot write %s: %s", tmp,
			    strerror(errno));
			rc = FL_ERR_IO;
			goto out;
		}
		priv = tmp;
		*prc = PLUGIN_BAD_CONFIG;
		g->static_key = true;
	} else {
		own = xasprintf("%s/id_ed25519", g->cfg.state_dir);
		if (access(own, R_OK) != 0) {
			char *pubpath = xasprintf("%s.pub", own);

			(void)unlink(pubpath);
			free(pubpath);
			rc = keygen_new(g, own, "fleeting-plugin-local client",
			    err, errlen);
			if (rc != 0)
				goto out;
			log_info("generated the instances' key pair %s", own);
		}
		priv = own;
	}
	g->key = (uint8_t *)read_file(priv, KEY_MAX, &g->key_len);
	if (g->key == NULL) {
		(void)snprintf(err, errlen, "%s%s: %s",
		    g->cfg.key_path != NULL ? "key_path: " : "", priv,
		    strerror(errno));
		rc = FL_ERR_IO;
		goto out;
	}
	{
		const char *args[] = { "-y", "-f", priv, NULL };

		rc = keygen(g, args, &pub, err, errlen);
	}
	if (rc != 0 || pub.len == 0 || (strncmp(pub.buf, "ssh-", 4) != 0 &&
	    strncmp(pub.buf, "ecdsa-", 6) != 0)) {
		char msg[PLUGIN_ERR_MAX];

		(void)snprintf(msg, sizeof(msg), "%s", rc != 0 ? err :
		    "no public key");
		(void)snprintf(err, errlen, "%s%s: not a usable private key "
		    "(%s)", g->cfg.key_path != NULL ? "key_path: " : "",
		    g->cfg.key_path != NULL ? priv : "the connector's key", msg);
		rc = FL_ERR_INVAL;
		goto out;
	}
	if (pub.buf[pub.len - 1] != '\n')
		sbuf_addch(&pub, '\n');
	g->pubkey = sbuf_detach(&pub, NULL);
	*prc = PLUGIN_OK;
out:
	if (tmp != NULL) {
		(void)unlink(tmp);
		free(tmp);
	}
	free(own);
	sbuf_release(&pub);
	return rc;
}

/* Let sshd judge the configuration (sshd_config_extra) now, with -t. */
static int
check_sshd(struct local_group *g, char *err, size_t errlen)
{
	char *dir = xasprintf("%s/check", g->cfg.state_dir);
	char *hostkey = xasprintf("%s/ssh_host_ed25519_key", dir);
	char *conf = xasprintf("%s/sshd_config", dir);
	char addr[16], *text;
	const char *argv[] = { g->cfg.sshd_path, "-t", "-f", conf, NULL };
	struct sbuf e;
	int rc, status = 0;

	sbuf_init(&e);
	local_addr_str(g->cfg.addr_first, addr);
	if (geteuid() == 0)
		(void)mkdir("/run/sshd", 0755);
	(void)mkdir(dir, 0700);
	rc = access(hostkey, R_OK) == 0 ? 0 :
	    keygen_new(g, hostkey, "fleeting-plugin-local check", err, errlen);
	if (rc == 0) {
		text = local_sshd_config(dir, addr, 22,
		    g->cfg.sshd_config_extra);
		rc = write_file(conf, text, strlen(text));
		free(text);
		if (rc != 0)
			(void)snprintf(err, errlen, "cannot write %s: %s", conf,
			    strerror(errno));
	}
	if (rc == 0)
		rc = local_proc_run(argv, NULL, &e, KEYGEN_MS, &status, err,
		    errlen);
	if (rc == 0 && status != 0) {
		while (e.len > 0 && e.buf[e.len - 1] == '\n')
			e.buf[--e.len] = '\0';
		(void)snprintf(err, errlen, "sshd -t rejects the configuration "
		    "(sshd_config_extra?): %s", e.len > 0 ? e.buf : "no message");
		rc = FL_ERR_INVAL;
	}
	sbuf_release(&e);
	free(dir);
	free(hostkey);
	free(conf);
	return rc;
}

/* Read one recorded instance and decide its fate. */
static void
adopt(struct local_group *g, const char *name)
{
	char *dir = xasprintf("%s/%s", g->inst_root, name);
	char *path = xasprintf("%s/instance.json", dir);
	char *pidpath = xasprintf("%s/sshd.pid", dir);
	char *ak = xasprintf("%s/authorized_keys", dir);
	json_t *o = json_load_file(path, 0, NULL);
	const char *id = NULL, *addr_s = NULL;
	json_int_t seq = 0, port = 0, pid = 0, created = 0, boot_at = 0;
	int deleting = 0, failed = 0;
	struct in_addr a;
	struct inst *in = NULL;
	char *pidtext;

	if (o == NULL || json_unpack(o, "{s:s, s:I, s:s, s:I, s:I, s:I, s:I, "
	    "s:b, s?b}", "id", &id, "seq", &seq, "addr", &addr_s, "port",
	    &port, "pid", &pid, "created_unix_ns", &created,
	    "boot_at_unix_ns", &boot_at, "deleting", &deleting, "failed",
	    &failed) != 0 || strcmp(id, name) != 0 ||
	    inet_pton(AF_INET, addr_s, &a) != 1) {
		log_warn("%s: not a recorded instance; removing %s", path, dir);
		(void)local_proc_rm_rf(dir);
		goto out;
	}
	in = inst_new(g, id, (uint64_t)seq, ntohl(a.s_addr));
	in->port = (int)port;
	in->created = (int64_t)created;
	in->boot_at = (int64_t)boot_at;
	if ((uint64_t)seq >= g->next_seq)
		g->next_seq = (uint64_t)seq + 1;
	/* sshd's own pid file is the better witness. */
	pidtext = read_file(pidpath, 64, NULL);
	if (pidtext != NULL && atoi(pidtext) > 0)
		pid = atoi(pidtext);
	free(pidtext);
	in->pid = (pid_t)pid;
	if (pid > 0 && local_proc_alive((pid_t)pid, in->needle)) {
		in->st = deleting ? I_DELETING : failed ? I_FAILED : I_RUNNING;
		if (failed)
			(void)snprintf(in->cause, sizeof(in->cause),
			    "failed before the plugin restarted");
		/* The key may have changed; sshd reads the file per login. */
		if (write_file(ak, g->pubkey, strlen(g->pubkey)) != 0)
			log_warn("cannot write %s", ak);
		log_info("re-adopted instance %s (%s:%d, sshd pid %d)", id,
		    addr_s, (int)port, (int)pid);
	} else if (pid == 0 && !deleting) {
		/* Recorded, never started: the boot goes on. */
		in->st = I_BOOTING;
		log_info("instance %s resumes booting", id);
	} else if (deleting) {
		in->st = I_DELETING;
	} else {
		/* It died while the plugin was away: it is gone. */
		log_warn("instance %s: sshd (pid %d) is gone; forgetting it",
		    id, (int)pid);
		in->st = I_VANISHED;
	}
	in->next = g->list;
	g->list = in;
out:
	json_decref(o);
	free(dir);
	free(path);
	free(pidpath);
	free(ak);
}

static void
adopt_all(struct local_group *g)
{
	DIR *d = opendir(g->inst_root);
	struct dirent *de;
	char *seqtext, *path = xasprintf("%s/next_seq", g->cfg.state_dir);

	seqtext = read_file(path, 64, NULL);
	if (seqtext != NULL)
		g->next_seq = strtoull(seqtext, NULL, 10);
	if (g->next_seq == 0)
		g->next_seq = 1;
	free(seqtext);
	free(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(
		    ((struct inst *)0)->id))
			continue;
		adopt(g, de->d_name);
	}
	closedir(d);
}

static const char *
go_arch(const char *m)
{
	if (strcmp(m, "x86_64") == 0)
		return "amd64";
	if (strcmp(m, "aarch64") == 0)
		return "arm64";
	if (strncmp(m, "armv", 4) == 0)
		return "arm";
	if (strcmp(m, "i686") == 0 || strcmp(m, "i386") == 0)
		return "386";
	return m;
}

struct local_group *
local_group_new(struct local_config *cfg,
    const struct plugin_connector *settings, int *prc, char *err,
    size_t errlen)
{
	struct local_group *g = xcalloc(1, sizeof(*g));
	struct passwd pw, *pwp = NULL;
	struct utsname u;
	char pwbuf[4096], *lockpath;
	int64_t range;

	*prc = PLUGIN_FAILED;
	g->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	g->lock_fd = -1;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->changed, NULL);
	{
		pthread_condattr_t ca;

		/* boot_at is wall-clock time (it survives a restart). */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_REALTIME);
		pthread_cond_init(&g->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	range = (int64_t)g->cfg.addr_last - g->cfg.addr_first + 1;
	g->max_size = g->cfg.max_size < range ? g->cfg.max_size : range;
	g->inst_root = xasprintf("%s/instances", g->cfg.state_dir);

	if (find_keygen(g) != 0) {
		(void)snprintf(err, errlen, "ssh-keygen not found (package "
		    "openssh-client)");
		goto fail;
	}
	if (mkdir_p(g->inst_root, 0700) != 0) {
		(void)snprintf(err, errlen, "state_dir: cannot make %s: %s",
		    g->inst_root, strerror(errno));
		*prc = PLUGIN_BAD_CONFIG;
		goto fail;
	}
	lockpath = xasprintf("%s/lock", g->cfg.state_dir);
	g->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lockpath);
	if (g->lock_fd < 0 || flock(g->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		(void)snprintf(err, errlen, "state_dir %s is in use by another "
		    "plugin process (%s)", g->cfg.state_dir, strerror(errno));
		*prc = PLUGIN_BAD_CONFIG;
		goto fail;
	}
	if (setup_keys(g, settings, prc, err, errlen) != 0)
		goto fail;
	if (check_sshd(g, err, errlen) != 0) {
		*prc = PLUGIN_BAD_CONFIG;
		goto fail;
	}
	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 ||
	    pwp == NULL) {
		(void)snprintf(err, errlen, "no user name for uid %u",
		    (unsigned)geteuid());
		goto fail;
	}
	(void)snprintf(g->username, sizeof(g->username), "%s", pw.pw_name);
	(void)snprintf(g->arch, sizeof(g->arch), "%s",
	    uname(&u) == 0 ? go_arch(u.machine) : "amd64");

	adopt_all(g);
	if (pthread_create(&g->worker, NULL, worker, g) != 0) {
		(void)snprintf(err, errlen, "cannot start the worker thread");
		goto fail;
	}
	g->worker_started = true;
	*prc = PLUGIN_OK;
	return g;
fail:
	local_group_free(g);
	return NULL;
}

void
local_group_free(struct local_group *g)
{
	struct inst *in, *next;

	if (g == NULL)
		return;
	if (g->worker_started) {
		pthread_mutex_lock(&g->mu);
		g->stop = true;
		pthread_cond_broadcast(&g->wake);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->worker, NULL);
	}
	for (in = g->list; in != NULL; in = next) {
		next = in->next;
		inst_free(in);
	}
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	freezero(g->key, g->key_len);
	free(g->pubkey);
	free(g->keygen);
	free(g->inst_root);
	local_config_release(&g->cfg);
	pthread_cond_destroy(&g->wake);
	pthread_cond_destroy(&g->changed);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int64_t
local_group_max_size(const struct local_group *g)
{
	return g->max_size;
}

bool
local_group_delete_on_shutdown(const struct local_group *g)
{
	return g->cfg.delete_on_shutdown;
}

/* ---------------------------------------------------------- the calls */

/*
 * A running instance whose sshd died is gone (under the mutex): mark it
 * vanished for the worker to clean up.  Returns true if it is alive.
 */
static bool
check_alive(struct local_group *g, struct inst *in)
{
	if (in->st != I_RUNNING || in->busy)
		return true;
	if (local_proc_alive(in->pid, in->needle))
		return true;
	log_warn("instance %s: sshd (pid %d) died; the instance is gone",
	    in->id, (int)in->pid);
	in->st = I_VANISHED;
	pthread_cond_broadcast(&g->wake);
	return false;
}

void
local_group_update(struct local_group *g, plugin_emit_fn emit,
    void *emit_arg)
{
	pthread_mutex_lock(&g->mu);
	for (struct inst *in = g->list; in != NULL; in = in->next) {
		switch (in->st) {
		case I_BOOTING:
		case I_STARTING:
			emit(emit_arg, in->id, PLUGIN_STATE_CREATING, NULL);
			break;
		case I_RUNNING:
			if (!check_alive(g, in))
				break;
			emit(emit_arg, in->id, listening(in->addr, in->port) ?
			    PLUGIN_STATE_RUNNING : PLUGIN_STATE_CREATING, NULL);
			break;
		case I_FAILED:
			emit(emit_arg, in->id, PLUGIN_STATE_TIMEOUT, in->cause);
			break;
		case I_DELETING:
			emit(emit_arg, in->id, PLUGIN_STATE_DELETING, NULL);
			break;
		case I_VANISHED:
			break;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

/* The lowest address of the range no instance uses; 0 if none. */
static uint32_t
free_addr(struct local_group *g)
{
	for (uint32_t a = g->cfg.addr_first; ; a++) {
		struct inst *in;

		for (in = g->list; in != NULL && in->addr != a; in = in->next)
			;
		if (in == NULL)
			return a;
		if (a == g->cfg.addr_last)
			return 0;
	}
}

int
local_group_increase(struct local_group *g, int64_t delta,
    int64_t *succeeded, char *err, size_t errlen)
{
	int64_t count = 0, i;
	int rc = PLUGIN_OK;

	pthread_mutex_lock(&g->mu);
	for (struct inst *in = g->list; in != NULL; in = in->next)
		count += in->st != I_VANISHED;
	for (i = 0; i < delta; i++) {
		char id[LOCAL_NAME_MAX + 24];
		uint32_t addr;
		struct inst *in;

		if (count >= g->max_size) {
			(void)snprintf(err, errlen, "max_size %lld reached: "
			    "%lld of %lld instances not started",
			    (long long)g->max_size, (long long)(delta - i),
			    (long long)delta);
			rc = PLUGIN_FAILED;
			break;
		}
		if ((addr = free_addr(g)) == 0) {
			(void)snprintf(err, errlen, "no free address in "
			    "address_range");
			rc = PLUGIN_FAILED;
			break;
		}
		(void)snprintf(id, sizeof(id), "%s-%llu", g->cfg.name,
		    (unsigned long long)g->next_seq);
		in = inst_new(g, id, g->next_seq, addr);
		if (mkdir(in->dir, 0700) != 0) {
			(void)snprintf(err, errlen, "cannot make %s: %s",
			    in->dir, strerror(errno));
			inst_free(in);
			rc = PLUGIN_FAILED;
			break;
		}
		g->next_seq++;
		save_seq(g);
		in->created = local_now_real();
		in->boot_at = in->created + g->cfg.boot_delay_ns;
		in->st = I_BOOTING;
		save_inst(g, in);
		in->next = g->list;
		g->list = in;
		count++;
		(*succeeded)++;
		log_info("instance %s created on %s", in->id, in->addr_s);
	}
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->mu);
	return rc;
}

int
local_group_decrease(struct local_group *g, const char *const *ids,
    size_t n, bool *succeeded, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		struct inst *in = find(g, ids[i]);

		/* Unknown ids are gone already: that counts as done. */
		if (in != NULL && in->st != I_DELETING) {
			in->st = I_DELETING;
			save_inst(g, in);
			log_info("instance %s: deleting", in->id);
		}
		succeeded[i] = true;
	}
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->mu);
	return PLUGIN_OK;
}

/* Why in cannot be used (under the mutex); PLUGIN_OK if it can. */
static int
usable(struct local_group *g, struct inst *in, const char *id, char *err,
    size_t errlen)
{
	if (in == NULL) {
		(void)snprintf(err, errlen, "no instance %s", id);
		return PLUGIN_NOT_FOUND;
	}
	switch (in->st) {
	case I_BOOTING:
	case I_STARTING:
		(void)snprintf(err, errlen, "instance %s is still being "
		    "created", id);
		return PLUGIN_FAILED;
	case I_RUNNING:
		if (check_alive(g, in))
			return PLUGIN_OK;
		(void)snprintf(err, errlen, "instance %s: sshd (pid %d) is not "
		    "running", id, (int)in->pid);
		return PLUGIN_UNHEALTHY;
	case I_FAILED:
		(void)snprintf(err, errlen, "instance %s failed: %s", id,
		    in->cause);
		return PLUGIN_UNHEALTHY;
	case I_DELETING:
		(void)snprintf(err, errlen, "instance %s is being deleted", id);
		return PLUGIN_UNHEALTHY;
	case I_VANISHED:
		break;
	}
	(void)snprintf(err, errlen, "no instance %s", id);
	return PLUGIN_NOT_FOUND;
}

int
local_group_connect_info(struct local_group *g, const char *id,
    struct plugin_connect_info *out, char *err, size_t errlen)
{
	struct inst *in;
	int rc;

	pthread_mutex_lock(&g->mu);
	in = find(g, id);
	rc = usable(g, in, id, err, errlen);
	if (rc == PLUGIN_OK) {
		char *addr = xasprintf("%s:%d", in->addr_s, in->port);

		plugin_set_str(&out->connector.os, "linux");
		plugin_set_str(&out->connector.arch, g->arch);
		plugin_set_str(&out->connector.protocol, "ssh");
		out->connector.protocol_port = in->port;
		plugin_set_str(&out->connector.username, g->username);
		plugin_set_str(&out->connector.password, NULL);
		plugin_set_key(&out->connector, g->key, g->key_len);
		out->connector.use_static_credentials = g->static_key;
		out->internal_addr = addr;
		out->external_addr = xstrdup(addr);
		out->expires_unix_ns = 0;
	}
	pthread_mutex_unlock(&g->mu);
	return rc;
}

int
local_group_heartbeat(struct local_group *g, const char *id, char *err,
    size_t errlen)
{
	struct inst *in;
	int rc;

	pthread_mutex_lock(&g->mu);
	in = find(g, id);
	rc = usable(g, in, id, err, errlen);
	/* Booting is healthy: nothing is wrong with it yet. */
	if (rc == PLUGIN_FAILED && in != NULL &&
	    (in->st == I_BOOTING || in->st == I_STARTING))
		rc = PLUGIN_OK;
	pthread_mutex_unlock(&g->mu);
	return rc;
}

int
local_group_delete_all(struct local_group *g, char *err, size_t errlen)
{
	struct timespec ts;
	int rc = PLUGIN_OK;

	/* Within the manager's 30 s deadline for Shutdown. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += DELETE_ALL_S;
	pthread_mutex_lock(&g->mu);
	for (struct inst *in = g->list; in != NULL; in = in->next) {
		if (in->st != I_DELETING && in->st != I_VANISHED) {
			in->st = I_DELETING;
			save_inst(g, in);
		}
	}
	pthread_cond_broadcast(&g->wake);
	while (g->list != NULL) {
		if (pthread_cond_timedwait(&g->changed, &g->mu, &ts) ==
		    ETIMEDOUT) {
			(void)snprintf(err, errlen, "instances still being "
			    "deleted after %d s", DELETE_ALL_S);
			rc = PLUGIN_FAILED;
			break;
		}
	}
	pthread_mutex_unlock(&g->mu);
	return rc;
}
