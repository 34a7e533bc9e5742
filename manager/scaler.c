/*
 * The scaler's pure core: GitLab taskscaler's semantics (instances, slots,
 * reservations, acquisitions, idle policies, removals) over plain structs,
 * with time passed in.  scaler.h has the API and how the glue drives it;
 * this comment is the model.
 *
 * INSTANCES
 *
 * Instances are known by the plugin's id.  Before it has an id, an
 * instance we asked for is only a number: `inflight` while our Increase
 * call is under way, then `requested` (a FIFO of request times) until an
 * Update lists an id nobody knew; that id takes the oldest request (or,
 * when an Update overtakes the Increase's result, one still in flight).
 * A request not answered within SCALER_REQUEST_EXPIRY_NS is forgotten.
 *
 *   (restore)                 Update lists it
 *   UNSEEN ------------------------------------+
 *                                              v
 *   (new id) --> CREATING --running--> RUNNING --no ready command--> READY
 *                   |                     |                           ^
 *                   |                     | decide: ready command     | ok
 *                   |                     v                           |
 *                   |                  CHECKING ----------------------+
 *                   |                     | failed: reason not_ready,
 *                   |                     | scale-ups back off
 *                   v                     v
 *   any up state --(removal reason, no acquisitions)--> REMOVING
 *   REMOVING --Decrease accepted or plugin says deleting--> DELETING
 *   REMOVING --Decrease refused--> REMOVING, again after deletion_retry_interval
 *   DELETING --still listed, not as deleting, deletion_retry_interval later-->
 *            REMOVING (asked again)
 *   any --not listed by Update (or listed "deleted")--> gone (freed)
 *
 * A removal reason is set once: idle_time (idle past the policy's
 * idle_time and not needed), max_use_count (used up), not_ready (ready
 * command failed; pre-existing without state; restored with jobs),
 * unhealthy (failure_threshold failed heartbeats in a row), timeout (the
 * plugin said so), shutdown.  An instance with a reason but acquisitions
 * still on it is "draining": it keeps its state, takes no new work, its
 * reservations move elsewhere, and it turns REMOVING when its last job is
 * released.  We never remove an instance holding acquisitions or
 * reservations; only shutdown with delete_instances_on_shutdown does.
 *
 * A plugin "deleting" we did not ask for makes the instance DELETING at
 * once (no new work).  An instance that disappears without our asking is
 * "unexpectedly removed": the next decision reports it (`lost`) and every
 * acquisition on it (`cancelled`); its reservations go back to the queue.
 * Ids nobody asked for while no request was outstanding are
 * "pre-existing" and removed for safety (not_ready), as the runner does
 * without state storage.
 *
 * SLOTS AND JOBS
 *
 * Each instance has capacity_per_instance slots.  A job's life is a
 * claim, named by a scaler_key:
 *
 *   reserve --> RESERVED (bound to a slot of a READY instance, or unbound,
 *                         waiting in FIFO order for one)
 *   RESERVED --acquire, bound--> ACQUIRED (the use is counted now)
 *   RESERVED --acquire, unbound--> PENDING (FIFO, deadline
 *                  instance_acquire_timeout) --slot frees--> ACQUIRED
 *                  ("granted")  or --deadline--> gone ("timed_out")
 *   RESERVED --unreserve--> gone;  ACQUIRED --release--> gone
 *
 * Waiting claims get slots in scaler_decide(): PENDING ones first, then
 * unbound reservations.  A slot is taken on the READY instance with the
 * fewest usable free slots (packing, so other instances stay idle and can
 * expire) and, among equals, the one that was busy most recently (so the
 * long-idle ones are left to expire).  Usable free slots of an instance
 * are min(free slots, max_use_count - use_count - reservations).
 *
 * Preemptive mode (policy preemptive_mode, default idle_count > 0): a
 * reservation needs a usable free slot now, else SCALER_ERR_NO_CAPACITY_NOW,
 * and holds that slot.  Otherwise a reservation succeeds while potential
 * capacity exists (free, coming, or room under max_instances; when none
 * does: SCALER_ERR_NO_CAPACITY) and holds nothing: it is not demand (no
 * job yet) and pins no instance, so a runner that keeps polling does not
 * keep an instance alive nor make one appear; the job it brings is
 * demand once acquired (pending, then granted a slot).  Reservation throttling (on unless
 * reservation_throttling = false): when idle capacity exists (slots of
 * ready instances not acquired), a new reservation beyond the first may
 * not bring the reservations above that idle capacity minus
 * capacity_per_instance, so a fleet of long-polling workers always leaves
 * one instance's worth unreserved, which can then expire: the fleet
 * shrinks to what is really used (one instance for an idle runner that
 * keeps polling, as a reservation is demand).
 *
 * CAPACITY (per decision, all in slots)
 *
 *   in_use      = acquired + bound reservations + pending
 *   idle_target = idle_count; with scale_factor > 0:
 *                 max(idle_count, min(ceil(scale_factor * in_use),
 *                                     scale_factor_limit if > 0))
 *   u           = min(capacity_per_instance, max_use_count if > 0):
 *                 the usable slots of a fresh instance
 *   surplus     = free (usable, on ready instances) + coming (usable, on
 *                 booting and requested instances)
 *                 - pending - idle_target
 *   surplus < 0 : Increase(ceil(-surplus / u)), at most max_instances
 *                 minus every instance we know in any state (deleting
 *                 ones too) minus requests; throttled by the scale_throttle
 *                 token bucket and the back-off.
 *   surplus > 0 : idle READY instances past idle_time are removed while
 *                 the surplus still covers them.  Which goes first: the
 *                 most used (nearest max_use_count, so the fewest
 *                 remaining uses are given up; with unlimited use the one
 *                 with the most accumulated state), then the one idle
 *                 longest, then by id.
 *   desired     = instance_count + ceil(-surplus / u) when short, else
 *                 ceil((in_use + unavailable + idle_target) / capacity),
 *                 capped by max_instances less instances in other states;
 *                 equal to taskscaler's formula when u = capacity.
 *   instance_count counts requested, creating, running and ready
 *   instances without a removal reason, plus any instance holding jobs.
 *   unavailable counts the slots of counted instances that cannot take a
 *   job: used up, draining, or beyond max_use_count.
 *
 * The aggregates (counted instances, free, coming, unavailable, state
 * counts, free-slot buckets) are kept incrementally: every change to an
 * instance is bracketed by acct_remove() and acct_add(), which record and
 * withdraw its contribution.  So reserve, acquire, release and a decision
 * with nothing due are O(1); the walk over all instances (ready checks,
 * Decrease retries, heartbeats, idle expiry) runs only when an input
 * changed instances or something time-driven falls due.
 *
 * TIMING: the next Update is due update_interval after the last one, or
 * update_interval_when_expecting while instances are coming or going.
 * Heartbeats of ready instances every update_interval (configurable).
 * The active policy is cached until the next minute any period can change.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "scaler.h"
#include "tz.h"
#include "xmalloc.h"

#define NS_PER_SEC	INT64_C(1000000000)
#define NEVER		INT64_MAX
#define CLAIM_CHUNK	1024
#define POLICY_HORIZON	3600	/* seconds: re-evaluate policies at least hourly */

enum claim_state { CL_FREE, CL_RESERVED, CL_PENDING, CL_ACQUIRED };

struct inst;

struct claim {
	struct claim *prev, *next;	/* queue (pending, unbound) or free list */
	struct inst *inst;		/* bound instance, or NULL */
	int64_t deadline;		/* PENDING: acquire deadline */
	uint32_t gen;
	uint32_t index;
	int slot;
	uint8_t state;
	uint8_t queued;
};

struct clist {
	struct claim *head, *tail;
	size_t n;
};

struct inst {
	struct inst *bprev, *bnext;	/* free-slot bucket */
	int64_t requested_at;		/* NEW: when asked for */
	int64_t created_at;
	int64_t ready_at;
	int64_t idle_since;
	int64_t removal_at;		/* first Decrease sent */
	int64_t retry_at;		/* next Decrease allowed */
	int64_t hb_due;
	int64_t use_count;
	uint64_t hash;
	size_t idx;			/* in s->inst */
	uint32_t seen_gen;
	int32_t nacq, nres;
	int32_t hb_failures;
	/* contribution recorded by acct_add() */
	int32_t c_usable, c_unavail;
	uint8_t c_counted, c_bucket, c_unhealthy, c_seen, c_pstate, c_state;
	uint8_t in_acct;
	uint8_t state, pstate, cause, reason;
	uint8_t seen;			/* listed at least once */
	uint8_t dec_inflight, hb_inflight, unexpected, had_acq, mark;
	char *id;			/* in this allocation, after slots */
	struct claim *slots[];
};

/* Open addressing on the id string, linear probing, backward-shift delete. */
struct ient {
	uint64_t h;
	struct inst *p;
};

struct itab {
	struct ient *v;
	size_t cap;			/* power of two */
	size_t n;
};

struct spolicy {
	struct cron **crons;
	size_t ncrons;
	struct tz *tz;			/* owned by s->zones */
	struct scaler_policy_view v;
};

struct zone {
	char *name;
	struct tz *tz;
};

struct scaler {
	/* configuration */
	int64_t cap, max_use, max_instances;
	int64_t acquire_timeout, update_interval, when_expecting;
	int64_t deletion_retry, shutdown_interval, shutdown_retries;
	int64_t failure_threshold, hb_interval;
	int throttling, need_ready, keep_with_acq;
	int tb_unlimited, tb_started;
	double tb_rate, tb_burst, tb_tokens;
	int64_t tb_last;

	/* policies */
	struct spolicy *pol;
	size_t npol;
	struct zone *zones;
	size_t nzones;
	int pol_idx;
	int64_t pol_from, pol_until;
	struct scaler_policy_view cur;

	/* instances */
	struct inst **inst;
	size_t ninst, capinst;
	struct itab tab;
	struct inst **bucket;		/* [cap + 1]: by usable free slots */
	uint32_t gen;
	int synced;			/* an Update was applied */
	int64_t last_update;

	/* requests: ring of request times */
	int64_t *req;
	size_t req_head, req_n, req_cap;
	int64_t inflight;
	int64_t inflight_seen;		/* listed before Increase returned */
	int64_t inflight_at;

	/* claims */
	struct claim **chunks;
	size_t nchunks;
	uint32_t nclaims;		/* slots handed out in chunks */
	struct claim *cfree;
	struct clist pending, unbound;
	int64_t nreserved, nbound, nacquired;

	/* aggregates, kept by acct_add/acct_remove */
	int64_t count, free, future, unavail, unhealthy;
	int64_t nstate[SCALER_ISTATE_COUNT];
	int64_t npstate[SCALER_P_COUNT];
	int64_t nseen;

	/* scheduling */
	int dirty;
	int64_t next_scan_at;
	int64_t expired_idle, expired_min_f;
	int64_t backoff_until;
	int64_t ready_fails, incr_fails;
	int64_t last_desired;
	int have_desired;
	struct scaler_capacity capinfo;

	/* reported by the next decision */
	struct scaler_cancel *ev_cancel;
	size_t nev_cancel, capev_cancel;
	struct scaler_lost *ev_lost;
	size_t nev_lost, capev_lost;
	scaler_key *ev_timeout;
	size_t nev_timeout, capev_timeout;

	/* shutdown */
	int shutdown, shutdown_delete, shutdown_sent;
	int64_t shutdown_next, shutdown_polls;

	int64_t now;
	struct scaler_metrics m;
	struct inst **cand;
	size_t capcand;
};

/* Append val to arr (n elements, room for cap), growing it by doubling. */
#define PUSH(arr, n, cap, val) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? (cap) * 2 : 16; \
		(arr) = xreallocarray((arr), (cap), sizeof(*(arr))); \
	} \
	(arr)[(n)++] = (val); \
} while (0)

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* ceil(a / b) for a >= 0, b > 0 */
static int64_t
ceil_div(int64_t a, int64_t b)
{
	return a <= 0 ? 0 : (a + b - 1) / b;
}

/* Instances asked for and not yet listed. */
static int64_t
coming(const struct scaler *s)
{
	return (int64_t)s->req_n + s->inflight - s->inflight_seen;
}

/* ---- names ---- */

const char *
scaler_pstate_name(enum scaler_pstate st)
{
	static const char *const n[] = { "creating", "running", "deleting",
	    "deleted", "timeout" };

	return (unsigned)st < SCALER_P_COUNT ? n[st] : "requested";
}

const char *
scaler_istate_name(enum scaler_istate st)
{
	static const char *const n[] = { "unseen", "creating", "running",
	    "checking", "ready", "removing", "deleting" };

	return (unsigned)st < SCALER_ISTATE_COUNT ? n[st] : "?";
}

const char *
scaler_reason_name(enum scaler_reason r)
{
	static const char *const n[] = { "none", "idle_time", "max_use_count",
	    "not_ready", "unhealthy", "timeout", "shutdown" };

	return (unsigned)r < SCALER_REASON_COUNT ? n[r] : "?";
}

const char *
scaler_task_state_name(enum scaler_task_state st)
{
	static const char *const n[] = { "idle", "pending", "reserved",
	    "acquired", "unavailable", "unhealthy" };

	return (unsigned)st < SCALER_TASK_COUNT ? n[st] : "?";
}

const char *
scaler_task_op_name(enum scaler_task_op op)
{
	static const char *const n[] = { "reserve",
	    "reserve_available_capacity_failure",
	    "reserve_iop_capacity_failure", "unreserve", "acquire",
	    "acquire_timeout", "acquire_cancelled", "release", "ready",
	    "ready_failure" };

	return (unsigned)op < SCALER_TOP_COUNT ? n[op] : "?";
}

const char *
scaler_iop_name(enum scaler_iop op)
{
	static const char *const n[] = { "create", "create_error", "delete",
	    "delete_error", "update", "update_error", "heartbeat",
	    "heartbeat_error" };

	return (unsigned)op < SCALER_IOP_COUNT ? n[op] : "?";
}

const char *
scaler_internal_op_name(enum scaler_internal_op op)
{
	static const char *const n[] = { "request_expired",
	    "unexpected_removal", "preexisting", "restored" };

	return (unsigned)op < SCALER_INT_COUNT ? n[op] : "?";
}

/* ---- the id table ---- */

static uint64_t
hash_str(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(1099511628211);
	}
	h ^= h >> 29;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 32;
	return h;
}

static struct inst *
itab_find(const struct itab *t, const char *id, uint64_t h)
{
	size_t mask, k;

	if (t->cap == 0)
		return NULL;
	mask = t->cap - 1;
	for (k = h & mask; t->v[k].p != NULL; k = (k + 1) & mask)
		if (t->v[k].h == h && strcmp(t->v[k].p->id, id) == 0)
			return t->v[k].p;
	return NULL;
}

static void
itab_put(struct itab *t, struct inst *p)
{
	size_t mask = t->cap - 1, k;

	for (k = p->hash & mask; t->v[k].p != NULL; k = (k + 1) & mask)
		;
	t->v[k].h = p->hash;
	t->v[k].p = p;
}

static void
itab_insert(struct itab *t, struct inst *p)
{
	if ((t->n + 1) * 2 > t->cap) {
		struct ient *old = t->v;
		size_t oldcap = t->cap;

		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = xcalloc(t->cap, sizeof(*t->v));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].p != NULL)
				itab_put(t, old[i].p);
		free(old);
	}
	itab_put(t, p);
	t->n++;
}

static void
itab_delete(struct itab *t, struct inst *p)
{
	size_t mask = t->cap - 1, k, j, home;

	for (k = p->hash & mask; t->v[k].p != p; k = (k + 1) & mask)
		;
	/* Shift later members of the cluster back over the hole. */
	for (j = (k + 1) & mask; t->v[j].p != NULL; j = (j + 1) & mask) {
		home = t->v[j].h & mask;
		if (((j - home) & mask) >= ((j - k) & mask)) {
			t->v[k] = t->v[j];
			k = j;
		}
	}
	t->v[k].p = NULL;
	t->v[k].h = 0;
	t->n--;
}

/* ---- claims ---- */

static void
clist_push(struct clist *l, struct claim *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
	c->queued = 1;
}

static void
clist_push_front(struct clist *l, struct claim *c)
{
	c->prev = NULL;
	c->next = l->head;
	if (l->head != NULL)
		l->head->prev = c;
	else
		l->tail = c;
	l->head = c;
	l->n++;
	c->queued = 1;
}

static void
clist_remove(struct clist *l, struct claim *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	l->n--;
	c->queued = 0;
}

static struct claim *
claim_new(struct scaler *s)
{
	struct claim *c = s->cfree;

	if (c != NULL) {
		s->cfree = c->next;
	} else {
		if (s->nclaims % CLAIM_CHUNK == 0) {
			s->chunks = xreallocarray(s->chunks, s->nchunks + 1,
			    sizeof(*s->chunks));
			s->chunks[s->nchunks++] = xcalloc(CLAIM_CHUNK,
			    sizeof(struct claim));
		}
		c = &s->chunks[s->nclaims / CLAIM_CHUNK][s->nclaims % CLAIM_CHUNK];
		c->index = s->nclaims++;
		c->gen = 1;
	}
	c->prev = c->next = NULL;
	c->inst = NULL;
	c->slot = -1;
	c->deadline = 0;
	c->queued = 0;
	return c;
}

static scaler_key
claim_key(const struct claim *c)
{
	return ((uint64_t)c->gen << 32) | ((uint64_t)c->index + 1);
}

static void
claim_free(struct scaler *s, struct claim *c)
{
	c->state = CL_FREE;
	c->inst = NULL;
	if (++c->gen == 0)
		c->gen = 1;
	c->next = s->cfree;
	s->cfree = c;
}

static struct claim *
claim_find(const struct scaler *s, scaler_key key)
{
	uint64_t idx = (key & 0xffffffffu);
	struct claim *c;

	if (idx == 0 || idx > s->nclaims)
		return NULL;
	idx--;
	c = &s->chunks[idx / CLAIM_CHUNK][idx % CLAIM_CHUNK];
	if (c->state == CL_FREE || c->gen != (uint32_t)(key >> 32))
		return NULL;
	return c;
}

/* ---- accounting ---- */

/* Is the instance in an up state (not yet being removed)? */
static int
inst_up(const struct inst *i)
{
	return i->state == SCALER_CREATING || i->state == SCALER_RUNNING ||
	    i->state == SCALER_CHECKING || i->state == SCALER_READY;
}

/* Slots it could still give to new work (0 if none may go there). */
static int64_t
inst_usable(const struct scaler *s, const struct inst *i)
{
	int64_t u;

	if (!inst_up(i) || i->reason != SCALER_REASON_NONE)
		return 0;
	u = s->cap - i->nacq - i->nres;
	if (s->max_use > 0)
		u = min64(u, s->max_use - i->use_count - i->nres);
	return u > 0 ? u : 0;
}

static int
inst_counted(const struct inst *i)
{
	if (i->state == SCALER_UNSEEN)
		return 0;
	if (inst_up(i) && i->reason == SCALER_REASON_NONE)
		return 1;
	return i->nacq > 0;
}

static void
bucket_unlink(struct scaler *s, struct inst *i)
{
	if (i->bprev != NULL)
		i->bprev->bnext = i->bnext;
	else
		s->bucket[i->c_bucket] = i->bnext;
	if (i->bnext != NULL)
		i->bnext->bprev = i->bprev;
	i->bprev = i->bnext = NULL;
}

/* Withdraw the instance's contribution before changing it. */
static void
acct_remove(struct scaler *s, struct inst *i)
{
	if (!i->in_acct)
		abort();	/* broken invariant */
	i->in_acct = 0;
	s->count -= i->c_counted;
	if (i->c_bucket) {
		bucket_unlink(s, i);
		s->free -= i->c_usable;
	} else {
		s->future -= i->c_usable;
	}
	s->unavail -= i->c_unavail;
	s->unhealthy -= i->c_unhealthy ? s->cap : 0;
	s->nstate[i->c_state]--;
	if (i->c_seen) {
		s->npstate[i->c_pstate]--;
		s->nseen--;
	}
}

/* Record the instance's contribution after changing it. */
static void
acct_add(struct scaler *s, struct inst *i)
{
	int64_t usable = inst_usable(s, i), unav = 0;

	if (i->in_acct)
		abort();
	i->in_acct = 1;
	i->c_counted = (uint8_t)inst_counted(i);
	s->count += i->c_counted;
	i->c_usable = (int32_t)usable;
	i->c_bucket = 0;
	if (i->state == SCALER_READY && usable > 0) {
		i->c_bucket = (uint8_t)(usable <= 255 ? usable : 255);
		/* Buckets index usable counts; capacity is capped at 255 by
		 * scaler_new() for this reason. */
		i->bprev = NULL;
		i->bnext = s->bucket[i->c_bucket];
		if (i->bnext != NULL)
			i->bnext->bprev = i;
		s->bucket[i->c_bucket] = i;
		s->free += usable;
	} else {
		s->future += usable;
	}
	if (i->c_counted)
		unav = max64(0, s->cap - i->nacq - i->nres - usable);
	i->c_unavail = (int32_t)unav;
	s->unavail += unav;
	i->c_unhealthy = i->reason == SCALER_REASON_UNHEALTHY;
	s->unhealthy += i->c_unhealthy ? s->cap : 0;
	i->c_state = i->state;
	s->nstate[i->state]++;
	i->c_seen = i->seen;
	i->c_pstate = i->pstate;
	if (i->seen) {
		s->npstate[i->pstate]++;
		s->nseen++;
	}
	/* An idle instance: make sure a walk happens when it expires. */
	if (i->c_bucket && i->nacq == 0 && i->nres == 0 &&
	    i->reason == SCALER_REASON_NONE) {
		int64_t exp = i->idle_since + s->cur.idle_time_ns;

		if (exp <= s->now) {
			s->expired_idle++;
			s->expired_min_f = min64(s->expired_min_f, usable);
		} else {
			s->next_scan_at = min64(s->next_scan_at, exp);
		}
	}
}

/* ---- histograms ---- */

static const double default_op_buckets[] = { 1, 5, 10, 15, 30, 45, 60, 90,
    120, 180, 300, 600, 900, 1800 };
static const double default_life_buckets[] = { 60, 300, 600, 1800, 3600,
    7200, 14400, 28800, 57600, 86400, 172800, 604800 };

static void
hist_init(struct scaler_histogram *h, const struct doublelist *own,
    const struct doublelist *fallback, const double *def, size_t ndef)
{
	const double *b = def;
	size_t n = ndef;

	if (own != NULL && own->n > 0) {
		b = own->v;
		n = own->n;
	} else if (fallback != NULL && fallback->n > 0) {
		b = fallback->v;
		n = fallback->n;
	}
	h->bounds = xcalloc(n, sizeof(double));
	memcpy(h->bounds, b, n * sizeof(double));
	h->nbounds = n;
	h->counts = xcalloc(n + 1, sizeof(uint64_t));
	h->sum = 0;
	h->count = 0;
}

static void
hist_release(struct scaler_histogram *h)
{
	free(h->bounds);
	free(h->counts);
	memset(h, 0, sizeof(*h));
}

static void
hist_observe(struct scaler_histogram *h, int64_t ns)
{
	double v = (double)ns / 1e9;
	size_t k = 0;

	while (k < h->nbounds && v > h->bounds[k])
		k++;
	h->counts[k]++;
	h->sum += v;
	h->count++;
}

/* ---- policies ---- */

static struct tz *
zone_get(struct scaler *s, const char *name, char *err, size_t errlen)
{
	const char *key = name != NULL ? name : "Local";
	struct tz *z;

	for (size_t i = 0; i < s->nzones; i++)
		if (strcmp(s->zones[i].name, key) == 0)
			return s->zones[i].tz;
	z = tz_load(key, err, errlen);
	if (z == NULL)
		return NULL;
	s->zones = xreallocarray(s->zones, s->nzones + 1, sizeof(*s->zones));
	s->zones[s->nzones].name = xstrdup(key);
	s->zones[s->nzones].tz = z;
	s->nzones++;
	return z;
}

static void
policies_free(struct spolicy *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < p[i].ncrons; k++)
			cron_free(p[i].crons[k]);
		free(p[i].crons);
	}
	free(p);
}

static void
default_policy(struct scaler_policy_view *v)
{
	memset(v, 0, sizeof(*v));
	v->index = -1;
	v->idle_time_ns = 5 * 60 * NS_PER_SEC;
}

int
scaler_set_policies(struct scaler *s, const struct config_policy *p,
    size_t n, char *err, size_t errlen)
{
	struct spolicy *np = n ? xcalloc(n, sizeof(*np)) : NULL;
	char why[160];

	for (size_t i = 0; i < n; i++) {
		const struct config_policy *c = &p[i];
		struct spolicy *q = &np[i];

		q->tz = zone_get(s, c->timezone, why, sizeof(why));
		if (q->tz == NULL) {
			snprintf(err, errlen, "policy %zu: %s", i + 1, why);
			policies_free(np, i);
			return FL_ERR_INVAL;
		}
		if (c->periods.n == 0) {
			q->crons = xcalloc(1, sizeof(*q->crons));
			q->crons[0] = cron_parse("* * * * *", why, sizeof(why));
			q->ncrons = 1;
		} else {
			q->crons = xcalloc(c->periods.n, sizeof(*q->crons));
			for (size_t k = 0; k < c->periods.n; k++) {
				q->crons[k] = cron_parse(c->periods.v[k], why,
				    sizeof(why));
				if (q->crons[k] == NULL) {
					snprintf(err, errlen,
					    "policy %zu: period \"%s\": %s",
					    i + 1, c->periods.v[k], why);
					policies_free(np, i + 1);
					return FL_ERR_INVAL;
				}
				q->ncrons++;
			}
		}
		q->v.index = (int)i;
		q->v.line = c->line;
		q->v.idle_count = c->idle_count;
		q->v.idle_time_ns = c->idle_time_ns;
		q->v.scale_factor = c->scale_factor;
		q->v.scale_factor_limit = c->scale_factor_limit;
		q->v.preemptive = config_policy_preemptive(c);
	}
	policies_free(s->pol, s->npol);
	s->pol = np;
	s->npol = n;
	s->pol_from = s->pol_until = 0;	/* re-evaluate */
	s->dirty = 1;
	return 0;
}

/* floor(ns / 1e9) */
static time_t
ns_to_sec(int64_t ns)
{
	int64_t q = ns / NS_PER_SEC;

	if (ns % NS_PER_SEC < 0)
		q--;
	return (time_t)q;
}

/* Evaluate the policies at now (cached until the next possible change). */
static const struct scaler_policy_view *
policy_at(struct scaler *s, int64_t now)
{
	struct scaler_policy_view v;
	time_t t, until;
	int idx = -1;

	if (now >= s->pol_from && now < s->pol_until)
		return &s->cur;
	t = ns_to_sec(now);
	until = t + POLICY_HORIZON;
	for (size_t i = 0; i < s->npol; i++) {
		const struct spolicy *p = &s->pol[i];

		for (size_t k = 0; k < p->ncrons; k++) {
			time_t nx;

			if (cron_active(p->crons[k], p->tz, t) == 1)
				idx = (int)i;
			if (cron_next_change(p->crons[k], p->tz, t, until,
			    &nx) == 1 && nx < until)
				until = nx;
		}
	}
	if (idx >= 0)
		v = s->pol[idx].v;
	else
		default_policy(&v);
	if (v.index != s->cur.index || v.idle_time_ns != s->cur.idle_time_ns)
		s->dirty = 1;
	s->cur = v;
	s->pol_idx = idx;
	s->pol_from = (int64_t)t * NS_PER_SEC;
	s->pol_until = (int64_t)until * NS_PER_SEC;
	return &s->cur;
}

void
scaler_policy(struct scaler *s, int64_t now, struct scaler_policy_view *out)
{
	*out = *policy_at(s, now);
}

/* ---- life cycle ---- */

struct scaler *
scaler_new(const struct config_autoscaler *as, char *err, size_t errlen)
{
	struct scaler *s = xcalloc(1, sizeof(*s));
	int64_t limit = as->scale_throttle.limit, burst = as->scale_throttle.burst;

	s->cap = as->capacity_per_instance > 0 ? as->capacity_per_instance : 1;
	if (s->cap > 255) {
		snprintf(err, errlen, "capacity_per_instance: at most 255");
		free(s);
		return NULL;
	}
	s->max_use = as->max_use_count > 0 ? as->max_use_count : 0;
	s->max_instances = as->max_instances > 0 ? as->max_instances : 0;
	s->acquire_timeout = as->instance_acquire_timeout_ns > 0 ?
	    as->instance_acquire_timeout_ns : 15 * 60 * NS_PER_SEC;
	s->update_interval = as->update_interval_ns > 0 ?
	    as->update_interval_ns : 60 * NS_PER_SEC;
	s->when_expecting = as->update_interval_when_expecting_ns > 0 ?
	    as->update_interval_when_expecting_ns : 2 * NS_PER_SEC;
	s->deletion_retry = as->deletion_retry_interval_ns > 0 ?
	    as->deletion_retry_interval_ns : 60 * NS_PER_SEC;
	s->shutdown_interval = as->shutdown_deletion_interval_ns > 0 ?
	    as->shutdown_deletion_interval_ns : 10 * NS_PER_SEC;
	s->shutdown_retries = as->shutdown_deletion_retries >= 0 ?
	    as->shutdown_deletion_retries : 3;
	s->failure_threshold = as->failure_threshold > 0 ?
	    as->failure_threshold : 3;
	s->hb_interval = s->update_interval;
	s->throttling = config_reservation_throttling(as);
	s->need_ready = as->instance_ready_command != NULL &&
	    as->instance_ready_command[0] != '\0';
	s->keep_with_acq = as->state_storage.keep_instance_with_acquisitions;

	/* scale_throttle: limit 0 -> 100/s, -1 -> none; burst 0 ->
	 * max_instances, or the limit when max_instances is unset. */
	if (limit < 0) {
		s->tb_unlimited = 1;
	} else {
		s->tb_rate = limit > 0 ? (double)limit : 100.0;
		s->tb_burst = burst > 0 ? (double)burst : s->max_instances > 0 ?
		    (double)s->max_instances : s->tb_rate;
		s->tb_tokens = s->tb_burst;
	}

	s->bucket = xcalloc((size_t)s->cap + 1, sizeof(*s->bucket));
	s->next_scan_at = NEVER;
	s->expired_min_f = INT64_MAX;
	s->pol_idx = -1;
	default_policy(&s->cur);
	s->cur.index = -2;	/* forces the first evaluation to differ */

	hist_init(&s->m.creation_time, &as->instance_creation_time_buckets,
	    &as->instance_operation_time_buckets, default_op_buckets,
	    sizeof(default_op_buckets) / sizeof(double));
	hist_init(&s->m.is_running_time, &as->instance_is_running_time_buckets,
	    &as->instance_operation_time_buckets, default_op_buckets,
	    sizeof(default_op_buckets) / sizeof(double));
	hist_init(&s->m.deletion_time, &as->instance_deletion_time_buckets,
	    &as->instance_operation_time_buckets, default_op_buckets,
	    sizeof(default_op_buckets) / sizeof(double));
	hist_init(&s->m.readiness_time, &as->instance_readiness_time_buckets,
	    &as->instance_operation_time_buckets, default_op_buckets,
	    sizeof(default_op_buckets) / sizeof(double));
	hist_init(&s->m.life_duration, &as->instance_life_duration_buckets,
	    NULL, default_life_buckets,
	    sizeof(default_life_buckets) / sizeof(double));
	s->m.max_instances = s->max_instances;
	s->m.max_tasks_per_instance = s->cap;
	s->m.max_use_count_per_instance = s->max_use;

	if (scaler_set_policies(s, as->policy, as->npolicy, err, errlen) != 0) {
		scaler_free(s);
		return NULL;
	}
	return s;
}

static void
lost_release(struct scaler_lost *l)
{
	free(l->instance);
	free(l->slots);
}

void
scaler_free(struct scaler *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ninst; i++)
		free(s->inst[i]);
	free(s->inst);
	free(s->tab.v);
	free(s->bucket);
	free(s->req);
	for (size_t i = 0; i < s->nchunks; i++)
		free(s->chunks[i]);
	free(s->chunks);
	policies_free(s->pol, s->npol);
	for (size_t i = 0; i < s->nzones; i++) {
		free(s->zones[i].name);
		tz_free(s->zones[i].tz);
	}
	free(s->zones);
	for (size_t i = 0; i < s->nev_cancel; i++)
		free(s->ev_cancel[i].instance);
	free(s->ev_cancel);
	for (size_t i = 0; i < s->nev_lost; i++)
		lost_release(&s->ev_lost[i]);
	free(s->ev_lost);
	free(s->ev_timeout);
	hist_release(&s->m.creation_time);
	hist_release(&s->m.is_running_time);
	hist_release(&s->m.deletion_time);
	hist_release(&s->m.readiness_time);
	hist_release(&s->m.life_duration);
	free(s->cand);
	free(s);
}

void
scaler_set_heartbeat_interval(struct scaler *s, int64_t ns)
{
	s->hb_interval = ns > 0 ? ns : 0;
	s->dirty = 1;
}

void
scaler_invalidate(struct scaler *s)
{
	s->dirty = 1;
}

/* ---- actions ---- */

void
scaler_actions_init(struct scaler_actions *a)
{
	memset(a, 0, sizeof(*a));
}

static void
actions_reset(struct scaler_actions *a)
{
	for (size_t i = 0; i < a->ncancelled; i++)
		free(a->cancelled[i].instance);
	for (size_t i = 0; i < a->nlost; i++)
		lost_release(&a->lost[i]);
	a->increase = 0;
	a->ndecrease = a->nready_checks = a->nheartbeats = 0;
	a->ngranted = a->ntimed_out = a->ncancelled = a->nlost = 0;
	a->scaling_change = 0;
	a->shutdown_done = 0;
	memset(&a->capacity, 0, sizeof(a->capacity));
}

void
scaler_actions_release(struct scaler_actions *a)
{
	actions_reset(a);
	free(a->decrease);
	free(a->ready_checks);
	free(a->heartbeats);
	free(a->granted);
	free(a->timed_out);
	free(a->cancelled);
	free(a->lost);
	memset(a, 0, sizeof(*a));
}

#define SWAP(T, a, b) do { T t_ = (a); (a) = (b); (b) = t_; } while (0)

/* Hand the events gathered since the last decision to out. */
static void
move_events(struct scaler *s, struct scaler_actions *out)
{
	SWAP(struct scaler_cancel *, s->ev_cancel, out->cancelled);
	SWAP(size_t, s->nev_cancel, out->ncancelled);
	SWAP(size_t, s->capev_cancel, out->cap_[5]);
	SWAP(struct scaler_lost *, s->ev_lost, out->lost);
	SWAP(size_t, s->nev_lost, out->nlost);
	SWAP(size_t, s->capev_lost, out->cap_[6]);
	SWAP(scaler_key *, s->ev_timeout, out->timed_out);
	SWAP(size_t, s->nev_timeout, out->ntimed_out);
	SWAP(size_t, s->capev_timeout, out->cap_[4]);
}

/* ---- instances ---- */

static struct inst *
inst_new(struct scaler *s, const char *id, uint64_t h)
{
	size_t idlen = strlen(id);
	size_t sz = sizeof(struct inst) + (size_t)s->cap * sizeof(struct claim *);
	struct inst *i = xcalloc(1, sz + idlen + 1);

	i->id = (char *)i + sz;
	memcpy(i->id, id, idlen + 1);
	i->hash = h;
	i->state = SCALER_UNSEEN;
	i->idx = s->ninst;
	PUSH(s->inst, s->ninst, s->capinst, i);
	itab_insert(&s->tab, i);
	acct_add(s, i);
	return i;
}

/* Unbind the reservations on i (call between acct_remove and acct_add):
 * they go back to the front of the unbound queue. */
static void
unbind_all(struct scaler *s, struct inst *i)
{
	for (int64_t k = s->cap - 1; k >= 0 && i->nres > 0; k--) {
		struct claim *c = i->slots[k];

		if (c == NULL || c->state != CL_RESERVED)
			continue;
		i->slots[k] = NULL;
		c->inst = NULL;
		c->slot = -1;
		i->nres--;
		s->nbound--;
		clist_push_front(&s->unbound, c);
	}
}

/* Cancel the acquisitions on i (between acct_remove and acct_add). */
static void
cancel_all(struct scaler *s, struct inst *i)
{
	for (int64_t k = 0; k < s->cap && i->nacq > 0; k++) {
		struct claim *c = i->slots[k];
		struct scaler_cancel ev;

		if (c == NULL || c->state != CL_ACQUIRED)
			continue;
		ev.key = claim_key(c);
		ev.instance = xstrdup(i->id);
		ev.slot = (int)k;
		PUSH(s->ev_cancel, s->nev_cancel, s->capev_cancel, ev);
		i->slots[k] = NULL;
		i->nacq--;
		s->nacquired--;
		s->m.task_operations_total[SCALER_TOP_ACQUIRE_CANCELLED]++;
		claim_free(s, c);
	}
}

static int64_t
backoff_for(int64_t fails)
{
	int64_t b = SCALER_BACKOFF_BASE_NS;

	for (int64_t k = 1; k < fails && b < SCALER_BACKOFF_MAX_NS; k++)
		b *= 2;
	return min64(b, SCALER_BACKOFF_MAX_NS);
}

/*
 * Want i gone.  The first reason sticks (shutdown overrides).  Without
 * acquisitions it becomes REMOVING at once; otherwise it drains.
 */
static void
set_reason(struct scaler *s, struct inst *i, enum scaler_reason r)
{
	if (i->reason != SCALER_REASON_NONE && r != SCALER_REASON_SHUTDOWN)
		return;
	acct_remove(s, i);
	unbind_all(s, i);
	if (i->reason == SCALER_REASON_NONE)
		s->m.removals_total[r]++;
	i->reason = (uint8_t)r;
	if (i->nacq == 0 && i->state != SCALER_REMOVING &&
	    i->state != SCALER_DELETING) {
		i->state = SCALER_REMOVING;
		i->retry_at = 0;
	}
	acct_add(s, i);
	s->dirty = 1;
}

/* RUNNING (or CHECKING) -> READY */
static void
make_ready(struct scaler *s, struct inst *i, int64_t now)
{
	i->state = SCALER_READY;
	i->ready_at = now;
	i->idle_since = now;
	i->hb_due = now + s->hb_interval;
	i->hb_failures = 0;
	hist_observe(&s->m.readiness_time, now - i->created_at);
	s->m.task_operations_total[SCALER_TOP_READY]++;
}

/* Render the slot map as Go prints map[int]bool. */
static char *
slots_string(const struct scaler *s, const struct inst *i)
{
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_adds(&sb, "map[");
	for (int64_t k = 0; k < s->cap; k++)
		sbuf_addf(&sb, "%s%lld:%s", k ? " " : "", (long long)k,
		    i->slots[k] != NULL && i->slots[k]->state == CL_ACQUIRED ?
		    "true" : "false");
	sbuf_addch(&sb, ']');
	return sbuf_detach(&sb, NULL);
}

/* The plugin no longer lists i: forget it. */
static void
inst_gone(struct scaler *s, struct inst *i, int64_t now)
{
	size_t idx = i->idx;

	acct_remove(s, i);
	if (i->state == SCALER_UNSEEN) {
		/* restored, never listed: gone while we were away */
	} else if ((i->state == SCALER_REMOVING ||
	    i->state == SCALER_DELETING) && !i->unexpected) {
		if (i->removal_at > 0)
			hist_observe(&s->m.deletion_time, now - i->removal_at);
		hist_observe(&s->m.life_duration, now - i->created_at);
	} else {
		struct scaler_lost l;

		l.instance = xstrdup(i->id);
		l.max_use_count = s->max_use;
		l.used = i->use_count;
		l.slots = slots_string(s, i);
		PUSH(s->ev_lost, s->nev_lost, s->capev_lost, l);
		s->m.internal_operations_total[SCALER_INT_UNEXPECTED_REMOVAL]++;
		hist_observe(&s->m.life_duration, now - i->created_at);
	}
	unbind_all(s, i);
	cancel_all(s, i);
	itab_delete(&s->tab, i);
	s->inst[idx] = s->inst[s->ninst - 1];
	s->inst[idx]->idx = idx;
	s->ninst--;
	free(i);
	s->dirty = 1;
}

/* Apply one reported state to i. */
static void
inst_report(struct scaler *s, struct inst *i, enum scaler_pstate ps,
    int64_t now)
{
	int timeout = 0;

	/* The same report as last time changes nothing. */
	if (i->seen && i->pstate == ps && i->state != SCALER_UNSEEN &&
	    ps != SCALER_P_TIMEOUT &&
	    (ps != SCALER_P_DELETING || i->state == SCALER_DELETING))
		return;
	acct_remove(s, i);
	i->pstate = (uint8_t)ps;
	i->seen = 1;
	switch (ps) {
	case SCALER_P_CREATING:
		if (i->state == SCALER_UNSEEN)
			i->state = SCALER_CREATING;
		break;
	case SCALER_P_RUNNING:
		if (i->state == SCALER_UNSEEN || i->state == SCALER_CREATING) {
			if (i->cause == SCALER_CAUSE_NEW)
				hist_observe(&s->m.is_running_time,
				    now - i->requested_at);
			i->state = SCALER_RUNNING;
			if (!s->need_ready && i->reason == SCALER_REASON_NONE)
				make_ready(s, i, now);
		}
		break;
	case SCALER_P_DELETING:
		if (i->state == SCALER_REMOVING) {
			i->state = SCALER_DELETING;
			i->retry_at = now + s->deletion_retry;
		} else if (i->state != SCALER_DELETING) {
			/* Deleted behind our back: no new work goes there. */
			i->unexpected = 1;
			unbind_all(s, i);
			i->state = SCALER_DELETING;
		}
		break;
	case SCALER_P_TIMEOUT:
		if (i->state == SCALER_UNSEEN)
			i->state = SCALER_CREATING;
		timeout = 1;
		break;
	default:
		break;
	}
	acct_add(s, i);
	if (timeout)
		set_reason(s, i, SCALER_REASON_TIMEOUT);
}

int
scaler_restore(struct scaler *s, int64_t now,
    const struct scaler_restored *r, size_t n)
{
	int rc = 0;

	s->now = now;
	for (size_t k = 0; k < n; k++) {
		uint64_t h;
		struct inst *i;

		if (r[k].id == NULL) {
			rc = FL_ERR_INVAL;
			continue;
		}
		h = hash_str(r[k].id);
		if (itab_find(&s->tab, r[k].id, h) != NULL) {
			rc = FL_ERR_EXISTS;
			continue;
		}
		i = inst_new(s, r[k].id, h);
		acct_remove(s, i);
		i->cause = SCALER_CAUSE_RESTORED;
		i->use_count = r[k].use_count > 0 ? r[k].use_count : 0;
		i->created_at = r[k].created_at > 0 ? r[k].created_at : now;
		i->had_acq = r[k].had_acquisitions != 0;
		acct_add(s, i);
	}
	s->dirty = 1;
	return rc;
}

static void
req_push(struct scaler *s, int64_t t)
{
	if (s->req_n == s->req_cap) {
		size_t nc = s->req_cap ? s->req_cap * 2 : 16;
		int64_t *nr = xcalloc(nc, sizeof(*nr));

		for (size_t k = 0; k < s->req_n; k++)
			nr[k] = s->req[(s->req_head + k) % s->req_cap];
		free(s->req);
		s->req = nr;
		s->req_cap = nc;
		s->req_head = 0;
	}
	s->req[(s->req_head + s->req_n) % s->req_cap] = t;
	s->req_n++;
}

static int64_t
req_pop(struct scaler *s)
{
	int64_t t = s->req[s->req_head];

	s->req_head = (s->req_head + 1) % s->req_cap;
	s->req_n--;
	return t;
}

static void
update_gauges(struct scaler *s)
{
	for (int k = 0; k < SCALER_P_COUNT; k++)
		s->m.instances[k] = s->npstate[k];
	s->m.instances[SCALER_P_COUNT] = coming(s);
	s->m.tasks[SCALER_TASK_IDLE] = s->free;
	s->m.tasks[SCALER_TASK_PENDING] = (int64_t)s->pending.n;
	s->m.tasks[SCALER_TASK_RESERVED] = s->nreserved;
	s->m.tasks[SCALER_TASK_ACQUIRED] = s->nacquired;
	s->m.tasks[SCALER_TASK_UNAVAILABLE] = s->capinfo.unavailable_capacity;
	s->m.tasks[SCALER_TASK_UNHEALTHY] = s->unhealthy;
}

int
scaler_update(struct scaler *s, int64_t now,
    const struct scaler_report *rep, size_t n)
{
	int rc = 0;

	s->now = now;
	if (++s->gen == 0)
		s->gen = 1;
	s->m.instance_operations_total[SCALER_IOP_UPDATE]++;
	for (size_t k = 0; k < n; k++) {
		const char *id = rep[k].id;
		uint64_t h;
		struct inst *i;

		if (id == NULL || (unsigned)rep[k].state >= SCALER_P_COUNT) {
			rc = FL_ERR_INVAL;
			continue;
		}
		if (rep[k].state == SCALER_P_DELETED)
			continue;	/* as good as not listed */
		h = hash_str(id);
		i = itab_find(&s->tab, id, h);
		if (i != NULL && i->seen_gen == s->gen) {
			rc = FL_ERR_INVAL;	/* listed twice */
			continue;
		}
		if (i == NULL) {
			i = inst_new(s, id, h);
			acct_remove(s, i);
			if (s->req_n > 0 || s->inflight > s->inflight_seen) {
				i->cause = SCALER_CAUSE_NEW;
				if (s->req_n > 0) {
					i->requested_at = req_pop(s);
				} else {
					i->requested_at = s->inflight_at;
					s->inflight_seen++;
				}
				i->created_at = i->requested_at;
				hist_observe(&s->m.creation_time,
				    now - i->requested_at);
			} else {
				i->cause = SCALER_CAUSE_PREEXISTING;
				i->created_at = now;
				s->m.internal_operations_total[SCALER_INT_PREEXISTING]++;
			}
			acct_add(s, i);
			if (i->cause == SCALER_CAUSE_PREEXISTING)
				set_reason(s, i, SCALER_REASON_NOT_READY);
		} else if (i->state == SCALER_UNSEEN) {
			s->m.internal_operations_total[SCALER_INT_RESTORED]++;
			if (i->had_acq && !s->keep_with_acq)
				set_reason(s, i, SCALER_REASON_NOT_READY);
		}
		i->seen_gen = s->gen;
		inst_report(s, i, rep[k].state, now);
	}
	for (size_t k = s->ninst; k-- > 0;) {
		struct inst *i = s->inst[k];

		if (i->seen_gen != s->gen)
			inst_gone(s, i, now);
	}
	s->synced = 1;
	s->last_update = now;
	s->dirty = 1;
	update_gauges(s);
	return rc;
}

void
scaler_update_failed(struct scaler *s, int64_t now)
{
	s->now = now;
	s->m.missed_updates_total++;
	s->m.instance_operations_total[SCALER_IOP_UPDATE_ERROR]++;
	s->last_update = now;
}

void
scaler_increase_result(struct scaler *s, int64_t now, int64_t requested,
    int64_t succeeded)
{
	int64_t early;

	s->now = now;
	if (requested < 0)
		requested = 0;
	succeeded = succeeded < 0 ? 0 : min64(succeeded, requested);
	s->inflight = max64(0, s->inflight - requested);
	/* Instances an Update already showed are not requested any more. */
	early = min64(s->inflight_seen, succeeded);
	s->inflight_seen -= early;
	if (s->inflight == 0)
		s->inflight_seen = 0;
	for (int64_t k = early; k < succeeded; k++)
		req_push(s, now);
	s->m.instance_operations_total[SCALER_IOP_CREATE] += (uint64_t)succeeded;
	if (succeeded < requested) {
		s->m.instance_operations_total[SCALER_IOP_CREATE_ERROR] +=
		    (uint64_t)(requested - succeeded);
		s->incr_fails++;
		s->backoff_until = max64(s->backoff_until,
		    now + backoff_for(s->incr_fails));
	} else {
		s->incr_fails = 0;
	}
	update_gauges(s);
}

static struct inst *
find(const struct scaler *s, const char *id)
{
	return id != NULL ? itab_find(&s->tab, id, hash_str(id)) : NULL;
}

void
scaler_decrease_result(struct scaler *s, int64_t now,
    const char *const *requested, size_t nrequested,
    const char *const *succeeded, size_t nsucceeded)
{
	s->now = now;
	for (size_t k = 0; k < nsucceeded; k++) {
		struct inst *i = find(s, succeeded[k]);

		if (i != NULL)
			i->mark = 1;
	}
	for (size_t k = 0; k < nrequested; k++) {
		struct inst *i = find(s, requested[k]);

		if (i == NULL || !i->dec_inflight)
			continue;
		i->dec_inflight = 0;
		i->retry_at = now + s->deletion_retry;
		s->next_scan_at = min64(s->next_scan_at, i->retry_at);
		if (i->mark) {
			s->m.instance_operations_total[SCALER_IOP_DELETE]++;
			if (i->state == SCALER_REMOVING) {
				acct_remove(s, i);
				i->state = SCALER_DELETING;
				acct_add(s, i);
			}
		} else {
			s->m.instance_operations_total[SCALER_IOP_DELETE_ERROR]++;
		}
	}
	for (size_t k = 0; k < nsucceeded; k++) {
		struct inst *i = find(s, succeeded[k]);

		if (i != NULL)
			i->mark = 0;
	}
	update_gauges(s);
}

int
scaler_ready_result(struct scaler *s, int64_t now, const char *id, int ok)
{
	struct inst *i = find(s, id);

	s->now = now;
	if (i == NULL)
		return FL_ERR_NOTFOUND;
	if (i->state != SCALER_CHECKING && i->state != SCALER_RUNNING)
		return 0;	/* overtaken (e.g. the plugin timed it out) */
	if (ok) {
		s->ready_fails = 0;
		if (i->reason == SCALER_REASON_NONE) {
			acct_remove(s, i);
			make_ready(s, i, now);
			acct_add(s, i);
			s->dirty = 1;
		}
	} else {
		s->ready_fails++;
		s->backoff_until = max64(s->backoff_until,
		    now + backoff_for(s->ready_fails));
		s->m.task_operations_total[SCALER_TOP_READY_FAILURE]++;
		set_reason(s, i, SCALER_REASON_NOT_READY);
	}
	update_gauges(s);
	return 0;
}

int
scaler_heartbeat_result(struct scaler *s, int64_t now, const char *id, int ok)
{
	struct inst *i = find(s, id);

	s->now = now;
	if (i == NULL)
		return FL_ERR_NOTFOUND;
	i->hb_inflight = 0;
	i->hb_due = now + s->hb_interval;
	if (s->hb_interval > 0)
		s->next_scan_at = min64(s->next_scan_at, i->hb_due);
	if (ok) {
		s->m.instance_operations_total[SCALER_IOP_HEARTBEAT]++;
		i->hb_failures = 0;
		return 0;
	}
	s->m.instance_operations_total[SCALER_IOP_HEARTBEAT_ERROR]++;
	i->hb_failures++;
	if (i->hb_failures >= s->failure_threshold &&
	    i->reason == SCALER_REASON_NONE) {
		set_reason(s, i, SCALER_REASON_UNHEALTHY);
		update_gauges(s);
	}
	return 0;
}

/* ---- jobs ---- */

static void
tb_refill(struct scaler *s, int64_t now)
{
	if (s->tb_unlimited || (s->tb_started && now <= s->tb_last))
		return;
	if (s->tb_started)
		s->tb_tokens += s->tb_rate * (double)(now - s->tb_last) / 1e9;
	s->tb_started = 1;
	if (s->tb_tokens > s->tb_burst)
		s->tb_tokens = s->tb_burst;
	s->tb_last = now;
}

/* Usable slots of a fresh instance. */
static int64_t
fresh_usable(const struct scaler *s)
{
	return s->max_use > 0 ? min64(s->cap, s->max_use) : s->cap;
}

/* Instances in any state, ours and coming. */
static int64_t
total_any(const struct scaler *s)
{
	return s->nseen + coming(s);
}

/* Could a claim without a slot get one, now or after scaling up? */
static int
potential(const struct scaler *s)
{
	int64_t slots = s->free + s->future + coming(s) * fresh_usable(s) -
	    (int64_t)(s->unbound.n + s->pending.n);

	if (s->max_instances == 0)
		return 1;
	slots += max64(0, s->max_instances - total_any(s)) * fresh_usable(s);
	return slots > 0;
}

/* The best slot for new work: fewest usable free slots, most recently busy. */
static struct inst *
pick_free(const struct scaler *s)
{
	for (int64_t u = 1; u <= s->cap && u <= 255; u++)
		if (s->bucket[u] != NULL)
			return s->bucket[u];
	return NULL;
}

/* Put c (not queued) on a free slot of i, reserved or acquired. */
static void
bind(struct scaler *s, struct claim *c, struct inst *i, int acquire)
{
	int64_t k;

	acct_remove(s, i);
	for (k = 0; k < s->cap && i->slots[k] != NULL; k++)
		;
	if (k == s->cap)
		abort();	/* the bucket said it had room */
	i->slots[k] = c;
	c->inst = i;
	c->slot = (int)k;
	if (acquire) {
		c->state = CL_ACQUIRED;
		i->nacq++;
		i->use_count++;
		s->nacquired++;
		s->m.task_operations_total[SCALER_TOP_ACQUIRE]++;
	} else {
		c->state = CL_RESERVED;
		i->nres++;
		s->nbound++;
	}
	acct_add(s, i);
	if (acquire && s->max_use > 0 && i->use_count >= s->max_use)
		set_reason(s, i, SCALER_REASON_MAX_USE_COUNT);
}

int
scaler_reserve(struct scaler *s, int64_t now, scaler_key *key)
{
	const struct scaler_policy_view *p;
	struct claim *c;
	int64_t idle_cap;

	s->now = now;
	if (s->shutdown)
		return FL_ERR_CLOSED;
	p = policy_at(s, now);
	idle_cap = s->free + s->nbound;
	if (s->throttling && idle_cap > 0 && s->nreserved > 0 &&
	    s->nreserved + 1 > idle_cap - s->cap) {
		s->m.task_operations_total[SCALER_TOP_RESERVE_AVAILABLE_FAILURE]++;
		return SCALER_ERR_NO_CAPACITY_NOW;
	}
	if (s->free > 0 && p->preemptive) {
		c = claim_new(s);
		bind(s, c, pick_free(s), 0);
	} else if (!potential(s)) {
		s->m.task_operations_total[SCALER_TOP_RESERVE_IOP_FAILURE]++;
		return SCALER_ERR_NO_CAPACITY;
	} else if (p->preemptive) {
		s->m.task_operations_total[SCALER_TOP_RESERVE_AVAILABLE_FAILURE]++;
		return SCALER_ERR_NO_CAPACITY_NOW;
	} else {
		c = claim_new(s);
		c->state = CL_RESERVED;
		clist_push(&s->unbound, c);
	}
	s->nreserved++;
	s->m.task_operations_total[SCALER_TOP_RESERVE]++;
	*key = claim_key(c);
	return 0;
}

/* Take claim c off its slot (reserved or acquired). */
static void
unbind_one(struct scaler *s, struct claim *c, int64_t now)
{
	struct inst *i = c->inst;

	acct_remove(s, i);
	i->slots[c->slot] = NULL;
	if (c->state == CL_ACQUIRED) {
		i->nacq--;
		s->nacquired--;
		if (i->nacq == 0) {
			i->idle_since = now;
			if (i->reason != SCALER_REASON_NONE && inst_up(i)) {
				i->state = SCALER_REMOVING;
				i->retry_at = 0;
				s->dirty = 1;
			}
		}
	} else {
		i->nres--;
		s->nbound--;
	}
	acct_add(s, i);
}

int
scaler_unreserve(struct scaler *s, int64_t now, scaler_key key)
{
	struct claim *c = claim_find(s, key);

	s->now = now;
	if (c == NULL)
		return FL_ERR_NOTFOUND;
	if (c->state == CL_ACQUIRED)
		return FL_ERR_INVAL;
	if (c->state == CL_PENDING) {
		clist_remove(&s->pending, c);
	} else {
		if (c->inst != NULL)
			unbind_one(s, c, now);
		else
			clist_remove(&s->unbound, c);
		s->nreserved--;
	}
	s->m.task_operations_total[SCALER_TOP_UNRESERVE]++;
	claim_free(s, c);
	return 0;
}

int
scaler_acquire(struct scaler *s, int64_t now, scaler_key key,
    const char **instance, int *slot)
{
	struct claim *c = claim_find(s, key);

	s->now = now;
	if (c == NULL)
		return FL_ERR_NOTFOUND;
	switch (c->state) {
	case CL_ACQUIRED:
		break;
	case CL_PENDING:
		return FL_ERR_AGAIN;
	case CL_RESERVED:
		if (c->inst != NULL) {
			struct inst *i = c->inst;

			acct_remove(s, i);
			c->state = CL_ACQUIRED;
			i->nres--;
			i->nacq++;
			i->use_count++;
			s->nbound--;
			s->nacquired++;
			s->nreserved--;
			s->m.task_operations_total[SCALER_TOP_ACQUIRE]++;
			acct_add(s, i);
			if (s->max_use > 0 && i->use_count >= s->max_use)
				set_reason(s, i, SCALER_REASON_MAX_USE_COUNT);
			break;
		}
		clist_remove(&s->unbound, c);
		s->nreserved--;
		if (s->free > 0 && s->pending.n == 0) {
			bind(s, c, pick_free(s), 1);
			break;
		}
		c->state = CL_PENDING;
		c->deadline = now + s->acquire_timeout;
		clist_push(&s->pending, c);
		return FL_ERR_AGAIN;
	default:
		return FL_ERR_NOTFOUND;
	}
	if (instance != NULL)
		*instance = c->inst->id;
	if (slot != NULL)
		*slot = c->slot;
	return 0;
}

int
scaler_release(struct scaler *s, int64_t now, scaler_key key)
{
	struct claim *c = claim_find(s, key);

	s->now = now;
	if (c == NULL)
		return FL_ERR_NOTFOUND;
	if (c->state != CL_ACQUIRED)
		return scaler_unreserve(s, now, key);
	unbind_one(s, c, now);
	s->m.task_operations_total[SCALER_TOP_RELEASE]++;
	claim_free(s, c);
	return 0;
}

/* ---- decisions ---- */

/* Waiting claims take free slots: pending acquisitions, then reservations. */
static void
bind_waiting(struct scaler *s, struct scaler_actions *out)
{
	struct claim *c;
	struct inst *i;

	while (s->pending.head != NULL && (i = pick_free(s)) != NULL) {
		struct scaler_grant g;

		c = s->pending.head;
		clist_remove(&s->pending, c);
		bind(s, c, i, 1);
		g.key = claim_key(c);
		g.instance = i->id;
		g.slot = c->slot;
		PUSH(out->granted, out->ngranted, out->cap_[3], g);
	}
	/* Reservations hold slots in preemptive mode only: otherwise a
	 * runner that keeps polling would pin an instance forever. */
	if (!policy_at(s, s->now)->preemptive)
		return;
	while (s->unbound.head != NULL && (i = pick_free(s)) != NULL) {
		c = s->unbound.head;
		clist_remove(&s->unbound, c);
		bind(s, c, i, 0);
	}
}

static void
push_decrease(struct inst *i, struct scaler_actions *out,
    int64_t now)
{
	struct scaler_removal r;

	r.id = i->id;
	r.reason = (enum scaler_reason)i->reason;
	PUSH(out->decrease, out->ndecrease, out->cap_[0], r);
	i->dec_inflight = 1;
	if (i->removal_at == 0)
		i->removal_at = now;
}

/* Most used first, then idle longest, then by id. */
static int
cand_cmp(const void *a, const void *b)
{
	const struct inst *x = *(struct inst *const *)a;
	const struct inst *y = *(struct inst *const *)b;

	if (x->use_count != y->use_count)
		return x->use_count > y->use_count ? -1 : 1;
	if (x->idle_since != y->idle_since)
		return x->idle_since < y->idle_since ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* The walk over every instance; returns the number of idle candidates. */
static size_t
scan(struct scaler *s, int64_t now, struct scaler_actions *out)
{
	int64_t next = NEVER;
	size_t ncand = 0;

	for (size_t k = 0; k < s->ninst; k++) {
		struct inst *i = s->inst[k];

		switch (i->state) {
		case SCALER_RUNNING:
			if (s->need_ready && i->reason == SCALER_REASON_NONE) {
				acct_remove(s, i);
				i->state = SCALER_CHECKING;
				acct_add(s, i);
				PUSH(out->ready_checks, out->nready_checks,
				    out->cap_[1], i->id);
			}
			break;
		case SCALER_REMOVING:
			if (i->dec_inflight)
				break;
			if (i->retry_at <= now)
				push_decrease(i, out, now);
			else
				next = min64(next, i->retry_at);
			break;
		case SCALER_DELETING:
			if (i->unexpected || i->dec_inflight ||
			    i->pstate == SCALER_P_DELETING)
				break;
			if (i->retry_at <= now) {
				acct_remove(s, i);
				i->state = SCALER_REMOVING;
				acct_add(s, i);
				push_decrease(i, out, now);
			} else {
				next = min64(next, i->retry_at);
			}
			break;
		case SCALER_READY:
			if (s->hb_interval > 0 && !i->hb_inflight &&
			    i->reason != SCALER_REASON_UNHEALTHY) {
				if (i->hb_due <= now) {
					PUSH(out->heartbeats, out->nheartbeats,
					    out->cap_[2], i->id);
					i->hb_inflight = 1;
				} else {
					next = min64(next, i->hb_due);
				}
			}
			if (i->reason == SCALER_REASON_NONE && i->nacq == 0 &&
			    i->nres == 0 && i->c_usable > 0) {
				int64_t exp = i->idle_since + s->cur.idle_time_ns;

				if (exp <= now) {
					PUSH(s->cand, ncand, s->capcand, i);
				} else {
					next = min64(next, exp);
				}
			}
			break;
		default:
			break;
		}
	}
	s->next_scan_at = next;
	s->dirty = 0;
	return ncand;
}

struct calc {
	int64_t in_use, target, u, coming, count, unavail, surplus, desired;
	int64_t desired_raw;
};

static void
calc(const struct scaler *s, const struct scaler_policy_view *p,
    struct calc *c)
{
	int64_t needed, future, claims, limit;

	c->u = fresh_usable(s);
	c->in_use = s->nacquired + s->nbound + (int64_t)s->pending.n;
	c->target = p->idle_count;
	if (p->scale_factor > 0) {
		double x = ceil(p->scale_factor * (double)c->in_use);
		int64_t extra = x > 9e15 ? INT64_C(9000000000000000) : (int64_t)x;

		if (p->scale_factor_limit > 0 && extra > p->scale_factor_limit)
			extra = p->scale_factor_limit;
		c->target = max64(c->target, extra);
	}
	c->coming = coming(s);
	c->count = s->count + c->coming;
	c->unavail = s->unavail + c->coming * (s->cap - c->u);
	future = s->future + c->coming * c->u;
	/* Unbound reservations (not preemptive: no job yet) are not
	 * demand; the job they may bring is, once acquired (pending). */
	claims = (int64_t)s->pending.n;
	c->surplus = s->free + future - claims - c->target;
	needed = c->in_use + c->unavail + c->target;
	if (c->surplus < 0)
		c->desired = c->count + ceil_div(-c->surplus, c->u);
	else
		c->desired = ceil_div(needed, s->cap);
	c->desired_raw = c->desired;
	if (s->max_instances > 0) {
		limit = s->max_instances - (total_any(s) - c->count);
		if (c->desired > limit)
			c->desired = max64(0, limit);
	}
}

static void
fill_capacity(struct scaler *s, const struct scaler_policy_view *p,
    const struct calc *c)
{
	struct scaler_capacity *ci = &s->capinfo;

	ci->instance_count = c->count;
	ci->max_instance_count = s->max_instances;
	ci->acquired = s->nacquired;
	ci->unavailable_capacity = c->unavail;
	ci->pending = (int64_t)s->pending.n;
	ci->reserved = s->nreserved;
	ci->idle_count = p->idle_count;
	ci->scale_factor = p->scale_factor;
	ci->scale_factor_limit = p->scale_factor_limit;
	ci->capacity_per_instance = s->cap;
	ci->desired = c->desired;
	ci->policy = p->index;
}

/* Is the plugin expected to report a change soon? */
static int
expecting(const struct scaler *s)
{
	return s->req_n > 0 || s->inflight > 0 ||
	    s->nstate[SCALER_CREATING] > 0 || s->nstate[SCALER_REMOVING] > 0 ||
	    s->nstate[SCALER_DELETING] > 0;
}

static int64_t
next_update_at(const struct scaler *s, int64_t now)
{
	if (!s->synced)
		return now;
	return s->last_update + (expecting(s) ? s->when_expecting :
	    s->update_interval);
}

static void
decide_shutdown(struct scaler *s, int64_t now, struct scaler_actions *out)
{
	int left = 0;

	if (!s->shutdown_delete) {
		out->shutdown_done = 1;
		out->next_update = out->wakeup = NEVER;
		return;
	}
	if (!s->shutdown_sent) {
		for (size_t k = 0; k < s->ninst; k++) {
			struct inst *i = s->inst[k];

			if (i->state == SCALER_UNSEEN)
				continue;
			acct_remove(s, i);
			cancel_all(s, i);
			acct_add(s, i);
			set_reason(s, i, SCALER_REASON_SHUTDOWN);
			if (i->state == SCALER_DELETING &&
			    i->pstate != SCALER_P_DELETING && !i->unexpected) {
				acct_remove(s, i);
				i->state = SCALER_REMOVING;
				acct_add(s, i);
			}
			if (i->state == SCALER_REMOVING && !i->dec_inflight)
				push_decrease(i, out, now);
		}
		s->shutdown_sent = 1;
		s->shutdown_next = now + s->shutdown_interval;
	} else if (now >= s->shutdown_next) {
		if (s->shutdown_polls >= s->shutdown_retries) {
			out->shutdown_done = 1;
		} else {
			s->shutdown_polls++;
			for (size_t k = 0; k < s->ninst; k++) {
				struct inst *i = s->inst[k];

				if (i->dec_inflight || i->state == SCALER_UNSEEN ||
				    i->pstate == SCALER_P_DELETING)
					continue;
				if (i->state != SCALER_REMOVING) {
					acct_remove(s, i);
					i->state = SCALER_REMOVING;
					acct_add(s, i);
				}
				push_decrease(i, out, now);
			}
		}
		s->shutdown_next = now + s->shutdown_interval;
	}
	for (size_t k = 0; k < s->ninst; k++)
		if (s->inst[k]->state != SCALER_UNSEEN)
			left++;
	if (left == 0)
		out->shutdown_done = 1;
	s->dirty = 0;
	out->next_update = out->wakeup = out->shutdown_done ? NEVER :
	    s->shutdown_next;
}

void
scaler_decide(struct scaler *s, int64_t now, struct scaler_actions *out)
{
	const struct scaler_policy_view *p;
	struct calc c;
	size_t ncand = 0;
	int scanned = 0;
	int64_t w, want = 0;

	actions_reset(out);
	s->now = now;
	p = policy_at(s, now);
	tb_refill(s, now);

	/* Requests the plugin never answered. */
	while (s->req_n > 0 && s->req[s->req_head] + SCALER_REQUEST_EXPIRY_NS <= now) {
		req_pop(s);
		s->m.internal_operations_total[SCALER_INT_REQUEST_EXPIRED]++;
	}
	/* Acquisitions that waited too long (deadlines are in FIFO order). */
	while (s->pending.head != NULL && s->pending.head->deadline <= now) {
		struct claim *pc = s->pending.head;

		clist_remove(&s->pending, pc);
		PUSH(s->ev_timeout, s->nev_timeout, s->capev_timeout,
		    claim_key(pc));
		s->m.task_operations_total[SCALER_TOP_ACQUIRE_TIMEOUT]++;
		claim_free(s, pc);
	}
	move_events(s, out);
	if (s->shutdown) {
		decide_shutdown(s, now, out);
		calc(s, p, &c);
		fill_capacity(s, p, &c);
		out->capacity = s->capinfo;
		update_gauges(s);
		return;
	}
	bind_waiting(s, out);
	calc(s, p, &c);

	if (s->dirty || now >= s->next_scan_at ||
	    (s->expired_idle > 0 && c.surplus >= s->expired_min_f)) {
		ncand = scan(s, now, out);
		scanned = 1;
	}

	/* Scale up. */
	if (s->synced && c.surplus < 0) {
		int64_t n = ceil_div(-c.surplus, c.u);

		if (s->max_instances > 0)
			n = min64(n, max64(0, s->max_instances - total_any(s)));
		want = n;
		if (now < s->backoff_until)
			n = 0;
		if (!s->tb_unlimited)
			n = min64(n, (int64_t)floor(s->tb_tokens));
		if (n > 0) {
			if (!s->tb_unlimited)
				s->tb_tokens -= (double)n;
			out->increase = n;
			s->inflight += n;
			s->inflight_at = now;
			s->m.scale_operations_up_total += (uint64_t)n;
			want -= n;
		}
	}

	/* Scale down: idle instances past idle_time the surplus covers. */
	if (scanned) {
		int64_t surplus = c.surplus;
		size_t kept = 0;
		int d = s->dirty;

		s->expired_idle = 0;
		s->expired_min_f = INT64_MAX;
		if (s->synced && surplus > 0 && ncand > 0)
			qsort(s->cand, ncand, sizeof(*s->cand), cand_cmp);
		for (size_t k = 0; k < ncand; k++) {
			struct inst *i = s->cand[k];
			int64_t f = i->c_usable;

			if (s->synced && surplus - f >= 0) {
				set_reason(s, i, SCALER_REASON_IDLE_TIME);
				push_decrease(i, out, now);
				s->m.scale_operations_down_total++;
				surplus -= f;
			} else {
				kept++;
				s->expired_min_f = min64(s->expired_min_f, f);
			}
		}
		s->expired_idle = (int64_t)kept;
		s->dirty = d;
		if (ncand > kept)
			calc(s, p, &c);
	}

	fill_capacity(s, p, &c);
	out->capacity = s->capinfo;
	if (!s->have_desired || c.desired != s->last_desired) {
		out->scaling_change = 1;
		s->have_desired = 1;
		s->last_desired = c.desired;
	}
	s->m.desired_instances = c.desired;
	update_gauges(s);

	/* When to come back. */
	out->next_update = next_update_at(s, now);
	w = out->next_update;
	w = min64(w, s->next_scan_at);
	if (s->pending.head != NULL)
		w = min64(w, s->pending.head->deadline);
	if (want > 0) {
		if (now < s->backoff_until) {
			w = min64(w, s->backoff_until);
		} else if (!s->tb_unlimited) {
			double need = 1.0 - (s->tb_tokens - floor(s->tb_tokens));
			int64_t dt = (int64_t)ceil(need / s->tb_rate * 1e9);

			w = min64(w, now + max64(dt, 1));
		}
	}
	if (s->req_n > 0)
		w = min64(w, s->req[s->req_head] + SCALER_REQUEST_EXPIRY_NS);
	if (s->npol > 0)
		w = min64(w, s->pol_until);
	out->wakeup = w;
}

void
scaler_shutdown(struct scaler *s, int64_t now, int delete_instances,
    struct scaler_actions *out)
{
	s->now = now;
	if (!s->shutdown) {
		s->shutdown = 1;
		s->shutdown_delete = delete_instances != 0;
		/* Waiting acquisitions will not get a slot any more. */
		while (s->pending.head != NULL) {
			struct claim *c = s->pending.head;

			clist_remove(&s->pending, c);
			PUSH(s->ev_timeout, s->nev_timeout, s->capev_timeout,
			    claim_key(c));
			claim_free(s, c);
		}
		while (s->unbound.head != NULL) {
			struct claim *c = s->unbound.head;

			clist_remove(&s->unbound, c);
			s->nreserved--;
			claim_free(s, c);
		}
	}
	scaler_decide(s, now, out);
}

/* ---- introspection ---- */

void
scaler_capacity(const struct scaler *s, struct scaler_capacity *out)
{
	*out = s->capinfo;
}

const struct scaler_metrics *
scaler_metrics(const struct scaler *s)
{
	return &s->m;
}

size_t
scaler_instance_count(const struct scaler *s)
{
	return s->ninst;
}

static void
info(const struct inst *i, struct scaler_instance_info *out)
{
	out->id = i->id;
	out->state = (enum scaler_istate)i->state;
	out->plugin_state = (enum scaler_pstate)i->pstate;
	out->cause = (enum scaler_cause)i->cause;
	out->reason = (enum scaler_reason)i->reason;
	out->use_count = i->use_count;
	out->acquired = i->nacq;
	out->reserved = i->nres;
	out->heartbeat_failures = i->hb_failures;
	out->created_at = i->created_at;
	out->ready_at = i->ready_at;
	out->idle_since = i->idle_since;
}

int
scaler_instance(const struct scaler *s, const char *id,
    struct scaler_instance_info *out)
{
	const struct inst *i = find(s, id);

	if (i == NULL)
		return FL_ERR_NOTFOUND;
	info(i, out);
	return 0;
}

int
scaler_instance_at(const struct scaler *s, size_t k,
    struct scaler_instance_info *out)
{
	if (k >= s->ninst)
		return FL_ERR_NOTFOUND;
	info(s->inst[k], out);
	return 0;
}
