/*
 * State storage ([runners.autoscaler.state_storage]): what the manager
 * knows of each instance, kept on disk so that a restarted manager keeps
 * its instances instead of removing them "for safety" as pre-existing
 * (reference fleeting-taskscaler.md §4.2, §4.7, §4.9).  The scaler core
 * takes the records back through scaler_restore(); the glue keeps the
 * connect details and the pinned host key so it can reach the instances
 * again without a new trust-on-first-use.
 *
 * Layout: one directory per runner, <dir>/<state_store_dirname(token)>/,
 * mode 0700, holding one file, instances.json, mode 0600.  A save writes
 * the whole set to a temporary file in the same directory
 * (instances.json.tmp-<pid>-<n>, O_EXCL, 0600), fsyncs it, renames it
 * over instances.json and fsyncs the directory: after a crash the file is
 * either the old set or the new one, never a mix.  Stale temporary files
 * (a crash before the rename) are never read, and the next save removes
 * them.  The directory is locked (flock) while a store is open, so two
 * managers cannot share it.
 *
 * File format, version 1 (UTF-8 JSON, one object; written one instance a
 * line, shown spread out here):
 *
 *	{
 *	  "version": 1,
 *	  "instances": [
 *	    {
 *	      "id": "i-0abc",		string, required, unique
 *	      "use_count": 3,		integer >= 0, required
 *	      "created_at": 1767571200000000000,
 *					ns since the epoch, >= 0, required
 *	      "ready": true,		bool, required
 *	      "had_acquisitions": false,	bool, required: had jobs
 *	      "host_key": "SHA256:...",	optional: pinned fingerprint
 *	      "connect_info": {		optional: ConnectInfo's answer
 *	        "os": "linux", "arch": "amd64", "protocol": "ssh",
 *	        "protocol_port": 22,	0 .. 65535, 0: the default
 *	        "username": "core", "password": "...",
 *	        "key": "-----BEGIN ...",	the private key as text, or
 *	        "key_base64": "...",	when it is not UTF-8 text
 *	        "internal_addr": "10.0.0.5", "external_addr": "1.2.3.4",
 *	        "expires": 0		ns since the epoch, 0: never
 *	      }
 *	    }
 *	  ]
 *	}
 *
 * Optional strings are left out when NULL (an empty string is kept as
 * such).  Parsing is strict: a duplicate or unknown key, a wrong type, a
 * value out of range, a duplicate id or more than STATE_STORE_MAX_RECORDS
 * records make the whole file invalid.  A file of another version is
 * refused; a new version number is needed for any change in meaning.
 *
 * Secrets: the file holds credentials (password, key) because the
 * instances cannot be reached without them; hence the 0600/0700 modes.
 * In memory they are wiped (explicit_bzero) when released, and error
 * messages never quote anything from the file (only positions, indexes
 * and the names of known keys).  To wipe what jansson allocates while
 * parsing (the writer is our own), the first use of this module
 * installs, process-wide, jansson allocation functions that wipe each
 * block before freeing it (json_set_alloc_funcs; plain malloc underneath,
 * so blocks allocated before remain compatible).
 */
#ifndef FL_STATE_STORE_H
#define FL_STATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct config_state_storage;
struct plugin_connect_info;
struct scaler_instance_info;
struct scaler_restored;

#define STATE_STORE_VERSION	1
#define STATE_STORE_FILE	"instances.json"
/* Limits, enforced on load and on save (so a save is always loadable). */
#define STATE_STORE_MAX_FILE	((size_t)64 << 20)	/* bytes */
#define STATE_STORE_MAX_RECORDS	100000
#define STATE_STORE_MAX_STR	4096	/* any string but the key */
#define STATE_STORE_MAX_KEY	65536		/* the key, in bytes */
/* state_store_dirname(): 9 characters and the NUL. */
#define STATE_STORE_DIRNAME_SIZE 10

/*
 * One instance.  Every pointer is owned by the record (NULL when absent)
 * and freed by state_store_record_release(), which wipes password and key
 * first.  When has_connect is 0 the connect fields are all unset and the
 * file has no "connect_info".
 */
struct state_record {
	char *id;
	int64_t use_count;
	int64_t created_at;		/* ns since the epoch */
	int ready;			/* was ready when written */
	int had_acquisitions;		/* had jobs when written */
	char *host_key;			/* pinned: "SHA256:..." */

	int has_connect;
	char *os;
	char *arch;
	char *protocol;
	int protocol_port;		/* 0: the protocol's default */
	char *username;
	char *password;			/* secret */
	char *key;			/* secret: key_len bytes and a NUL */
	size_t key_len;
	char *internal_addr;
	char *external_addr;
	int64_t expires;		/* ns since the epoch; 0: never */
};

/* Wipe the secrets, free every field and zero the record. */
void state_store_record_release(struct state_record *r);
/* Release n records and free the array; NULL is a no-op. */
void state_store_records_free(struct state_record *recs, size_t n);

/*
 * Fill the scaler's part of r from an instance (scaler_instance_at()):
 * id (copied), use_count, created_at, ready (state READY) and
 * had_acquisitions (acquired > 0).  r's other fields are left alone.
 */
void state_store_record_from_instance(struct state_record *r,
    const struct scaler_instance_info *ii);
/* Copy ConnectInfo's answer into r (replacing, wiping, any earlier one);
 * sets has_connect. */
void state_store_record_set_connect(struct state_record *r,
    const struct plugin_connect_info *ci);

/*
 * The records as scaler_restore() takes them.  The ids are borrowed: the
 * records must outlive the scaler_restore() call (the scaler copies them).
 * Returns an array of n entries (caller frees with free(); never NULL).
 */
struct scaler_restored *state_store_restored(const struct state_record *recs,
    size_t n);

/*
 * The directory name for a runner: GitLab's ShortenToken, i.e. the token
 * with its known prefixes stripped (as log_short_token() does: "glrt-"
 * with an optional partition "t1_".."t3_", a partition alone, or
 * "glrtr-"; then "glcbt-"; then "GR" and 7 hex digits) and cut to 9
 * characters (log_short_token() keeps 8, our log limit; the runner's
 * directory uses 9, so a store written by GitLab Runner has the same
 * name).  Writes into out and returns it.  Returns NULL, out set to "",
 * when the result cannot be a directory name: empty, ".", "..", or a
 * character outside [A-Za-z0-9._-].
 */
char *state_store_dirname(const char *token,
    char out[static STATE_STORE_DIRNAME_SIZE]);

/*
 * The configured directory: ss->dir when set, else <the directory of
 * config_path>/.taskscaler ("./.taskscaler" for a bare file name).
 * Caller frees.
 */
char *state_store_dir(const struct config_state_storage *ss,
    const char *config_path);

struct state_store;

/*
 * Open (creating it) <dir>/<state_store_dirname(runner_token)>/, mode
 * 0700; missing parents of it are created 0700 too.  An existing runner
 * directory must be a directory owned by us (not a symlink); group or
 * other permissions on it are removed.  The directory is locked for the
 * life of the store.  NULL on failure, with the reason in err: a bad
 * token or directory, or the store is in use by another process (or
 * another store in this one).
 */
struct state_store *state_store_open(const char *dir, const char *runner_token,
    char *err, size_t errlen);
/* Close and unlock; NULL is a no-op. */
void state_store_free(struct state_store *st);
/* <dir>/<short token>, owned by the store. */
const char *state_store_path(const struct state_store *st);

/*
 * Replace the stored set by recs[0..n) (n may be 0), atomically (see the
 * top of this file), and remove stale temporary files.  Returns 0;
 * FL_ERR_INVAL (a record without id, a duplicate id, or a string that is
 * not valid UTF-8), FL_ERR_RANGE (a
 * string or number beyond the format's limits), FL_ERR_TOOBIG (more than
 * STATE_STORE_MAX_RECORDS, or the file would exceed STATE_STORE_MAX_FILE)
 * with nothing written; FL_ERR_IO with errno set when writing failed: the
 * old file is then intact, unless only the last step (the fsync of the
 * directory) failed, when the new file is in place but might not survive
 * a crash.  Cost: about 10 ms for 1,000 instances (tests/helpers/
 * state_bench.c), most of it the two fsyncs and the text.
 */
int state_store_save(struct state_store *st, const struct state_record *recs,
    size_t n);

/*
 * Read the stored set: *recs (free with state_store_records_free()) and
 * *n.  No file: 0 and an empty set (*recs NULL, *n 0).  Otherwise 0, or
 * an error with the reason in err and always an empty set, so the manager
 * can start without state (it then removes the instances it finds, as
 * pre-existing):
 *   FL_ERR_PARSE  malformed (not JSON, wrong structure or values),
 *   FL_ERR_RANGE  a version this flotilla does not read,
 *   FL_ERR_TOOBIG over STATE_STORE_MAX_FILE;
 * for these three the file is renamed instances.json.corrupt-<UTC time,
 * YYYYMMDDTHHMMSSZ> (err says so) so a later save does not destroy it.
 *   FL_ERR_IO     the file could not be read (left in place).
 */
int state_store_load(struct state_store *st, struct state_record **recs,
    size_t *n, char *err, size_t errlen);

/*
 * The parser state_store_load() uses, on a buffer (any bytes, len of
 * them; no NUL needed).  0 with *recs and *n, or FL_ERR_PARSE,
 * FL_ERR_RANGE or FL_ERR_TOOBIG with the reason in err and *recs NULL,
 * *n 0.
 */
int state_store_parse(const char *buf, size_t len, struct state_record **recs,
    size_t *n, char *err, size_t errlen);

/*
 * The file's text for recs[0..n) (what state_store_save() writes):
 * 0 with *out (NUL-terminated, *outlen bytes; it holds the secrets: free
 * with freezero(*out, *outlen)), or the errors of state_store_save()
 * other than FL_ERR_IO.
 */
int state_store_format(const struct state_record *recs, size_t n,
    char **out, size_t *outlen);

#endif
