/*
 * The simulator behind `flotilla simulate`: a job trace replayed against
 * the real scaler core (scaler.c), with a provider that boots instances in
 * a fixed delay, and a fake clock that jumps from event to event.
 *
 * Events, in time order: a job arrives (it joins a FIFO of jobs that have
 * no reservation yet); a job ends (its slot is released); the scaler's
 * wake-up or next Update falls due.  At each instant the loop applies the
 * events, polls the provider if an Update is due, then lets queued jobs
 * reserve and acquire (in arrival order, stopping at the first refused
 * reservation, as a runner stops asking GitLab), decides, carries the
 * actions out at once (Increase creates instances, Decrease deletes them,
 * ready checks and heartbeats succeed) and decides again until nothing
 * changes.  A job starts when its acquisition is granted; its wait is
 * arrival to start.  A job that cannot reserve within
 * instance_acquire_timeout is counted as timed out, as is a pending
 * acquisition the scaler times out.  Heartbeats are switched off: they
 * would all succeed, so they could not change a figure, only cost time.
 *
 * Figures are grouped by the policy in force: jobs by the policy at their
 * arrival, instance-hours, peaks and creations by the policy at the time.
 * The scaler wakes up at policy boundaries, so no interval straddles one.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "err.h"
#include "scaler.h"
#include "simulate.h"
#include "xmalloc.h"

#define NEVER		INT64_MAX
#define NS_PER_SEC	INT64_C(1000000000)
#define MAX_ERRORS	50
#define MAX_SAME_INSTANT 100000

/* ---- the trace ---- */

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Decimal seconds ("12", "0.25", ".5") or a Go duration. */
static const char *
parse_time(const char *s, int64_t *ns)
{
	size_t digits = 0, dots = 0;
	const char *p;
	int r;

	if (*s == '\0')
		return "empty field";
	for (p = s; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (*p == '.')
			dots++;
		else
			break;
	}
	if (*p == '\0' && digits > 0 && dots <= 1) {
		double d = strtod(s, NULL);

		if (!(d <= 9.2e9))
			return "out of range";
		*ns = llround(d * 1e9);
		return NULL;
	}
	r = duration_parse(s, ns);
	if (r == FL_ERR_RANGE)
		return "out of range";
	if (r != 0)
		return "not seconds or a duration";
	if (*ns < 0)
		return "negative";
	return NULL;
}

static int
job_cmp(const void *a, const void *b)
{
	const struct simulate_job *x = a, *y = b;

	if (x->arrival_ns != y->arrival_ns)
		return x->arrival_ns < y->arrival_ns ? -1 : 1;
	if (x->duration_ns != y->duration_ns)
		return x->duration_ns < y->duration_ns ? -1 : 1;
	return 0;
}

int
simulate_parse_jobs(const char *path, const char *buf, size_t len,
    struct simulate_jobs *out, struct sbuf *errors)
{
	size_t cap = 0, lineno = 0, nerr = 0, pos = 0;
	int seen_data = 0, sorted = 1;
	char *line = NULL;
	size_t linecap = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
		char *s, *hash, *comma, *f1, *f2;
		const char *why = NULL;
		struct simulate_job j;

		lineno++;
		if (n + 1 > linecap) {
			linecap = n + 1;
			line = xreallocarray(line, linecap, 1);
		}
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		pos += n + 1;
		if (memchr(line, '\0', n) != NULL) {
			why = "NUL byte in line";
			goto bad;
		}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		comma = strchr(s, ',');
		if (comma == NULL || strchr(comma + 1, ',') != NULL) {
			why = "expected arrival,duration";
			goto header_or_bad;
		}
		*comma = '\0';
		f1 = trim(s);
		f2 = trim(comma + 1);
		if ((why = parse_time(f1, &j.arrival_ns)) != NULL) {
			why = why[0] == 'e' ? "arrival: empty field" :
			    strcmp(why, "out of range") == 0 ?
			    "arrival: out of range" :
			    strcmp(why, "negative") == 0 ? "arrival: negative" :
			    "arrival: not seconds or a duration";
			goto header_or_bad;
		}
		if ((why = parse_time(f2, &j.duration_ns)) != NULL) {
			why = why[0] == 'e' ? "duration: empty field" :
			    strcmp(why, "out of range") == 0 ?
			    "duration: out of range" :
			    strcmp(why, "negative") == 0 ? "duration: negative" :
			    "duration: not seconds or a duration";
			goto header_or_bad;
		}
		seen_data = 1;
		if (out->n > 0 && job_cmp(&out->v[out->n - 1], &j) > 0)
			sorted = 0;
		if (out->n == cap) {
			cap = cap ? cap * 2 : 1024;
			out->v = xreallocarray(out->v, cap, sizeof(*out->v));
		}
		out->v[out->n++] = j;
		continue;
header_or_bad:
		/* A first line of words is a header. */
		if (!seen_data && isalpha((unsigned char)*s)) {
			seen_data = 1;
			continue;
		}
bad:
		seen_data = 1;
		if (nerr < MAX_ERRORS)
			sbuf_addf(errors, "%s:%zu: %s\n", path, lineno, why);
		nerr++;
	}
	free(line);
	if (nerr > MAX_ERRORS)
		sbuf_addf(errors, "%s: %zu more bad lines\n", path,
		    nerr - MAX_ERRORS);
	if (nerr > 0) {
		simulate_jobs_release(out);
		return FL_ERR_PARSE;
	}
	if (!sorted)
		qsort(out->v, out->n, sizeof(*out->v), job_cmp);
	return 0;
}

int
simulate_load_jobs(const char *path, struct simulate_jobs *out,
    struct sbuf *errors)
{
	struct sbuf sb;
	char chunk[65536];
	FILE *fp;
	size_t n;
	int r;

	memset(out, 0, sizeof(*out));
	fp = fopen(path, "r");
	if (fp == NULL) {
		r = errno == ENOENT ? FL_ERR_NOTFOUND : FL_ERR_IO;
		sbuf_addf(errors, "%s: %s\n", path, strerror(errno));
		return r;
	}
	sbuf_init(&sb);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		sbuf_add(&sb, chunk, n);
	if (ferror(fp)) {
		sbuf_addf(errors, "%s: read error\n", path);
		fclose(fp);
		sbuf_release(&sb);
		return FL_ERR_IO;
	}
	fclose(fp);
	r = simulate_parse_jobs(path, sb.buf, sb.len, out, errors);
	sbuf_release(&sb);
	return r;
}

void
simulate_jobs_release(struct simulate_jobs *j)
{
	free(j->v);
	memset(j, 0, sizeof(*j));
}

/* ---- the simulation ---- */

enum { J_FUTURE, J_QUEUED, J_PENDING, J_RUNNING, J_DONE, J_FAILED };

struct sjob {
	int64_t arrival;	/* absolute */
	int64_t duration;
	int64_t wait;
	scaler_key key;
	int32_t group;
	uint8_t state;
};

struct sinst {
	int64_t created;
	uint32_t pos;		/* in alive[], or UINT32_MAX once deleted */
	char id[20];
};

struct hent {
	int64_t t;
	uint32_t job;
};

/* scaler_key -> job, open addressing with backward-shift deletion. */
struct kent {
	uint64_t key;		/* 0: empty */
	uint32_t job;
};

struct kmap {
	struct kent *v;
	size_t cap, n;
};

struct sim {
	struct scaler *s;
	struct scaler_actions a;
	struct sjob *job;
	size_t njob, next_arrival;
	uint32_t *queue;	/* jobs without a reservation, FIFO */
	size_t qhead, qtail;
	struct hent *heap;	/* job ends */
	size_t nheap;
	struct kmap km;
	struct sinst *inst;
	size_t ninst, capinst;
	uint32_t *alive;
	size_t nalive, capalive;
	struct scaler_report *rep;
	size_t caprep;
	const char **req, **ok;
	size_t capreq;
	int64_t now, boot, acquire_timeout;
	struct simulate_stats *g;
	size_t ng;
	int cur;		/* group in force */
	uint64_t running, pending, finished;
	int64_t last_end;
	int64_t peak;
	uint64_t decisions;
};

static uint64_t
kmix(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return k;
}

static void
km_put(struct kmap *m, uint64_t key, uint32_t job)
{
	size_t mask, k;

	if ((m->n + 1) * 2 > m->cap) {
		struct kent *old = m->v;
		size_t oldcap = m->cap;

		m->cap = m->cap ? m->cap * 2 : 1024;
		m->v = xcalloc(m->cap, sizeof(*m->v));
		m->n = 0;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].key != 0)
				km_put(m, old[i].key, old[i].job);
		free(old);
	}
	mask = m->cap - 1;
	for (k = kmix(key) & mask; m->v[k].key != 0; k = (k + 1) & mask)
		;
	m->v[k].key = key;
	m->v[k].job = job;
	m->n++;
}

/* Remove key; returns its job or UINT32_MAX. */
static uint32_t
km_take(struct kmap *m, uint64_t key)
{
	size_t mask, k, j, home;
	uint32_t job;

	if (m->cap == 0)
		return UINT32_MAX;
	mask = m->cap - 1;
	for (k = kmix(key) & mask; m->v[k].key != key; k = (k + 1) & mask)
		if (m->v[k].key == 0)
			return UINT32_MAX;
	job = m->v[k].job;
	for (j = (k + 1) & mask; m->v[j].key != 0; j = (j + 1) & mask) {
		home = kmix(m->v[j].key) & mask;
		if (((j - home) & mask) >= ((j - k) & mask)) {
			m->v[k] = m->v[j];
			k = j;
		}
	}
	m->v[k].key = 0;
	m->n--;
	return job;
}

static void
heap_push(struct sim *m, int64_t t, uint32_t job)
{
	size_t i = m->nheap++;

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (m->heap[p].t <= t)
			break;
		m->heap[i] = m->heap[p];
		i = p;
	}
	m->heap[i].t = t;
	m->heap[i].job = job;
}

static struct hent
heap_pop(struct sim *m)
{
	struct hent top = m->heap[0], last = m->heap[--m->nheap];
	size_t i = 0, n = m->nheap;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && m->heap[c + 1].t < m->heap[c].t)
			c++;
		if (m->heap[c].t >= last.t)
			break;
		m->heap[i] = m->heap[c];
		i = c;
	}
	if (n > 0)
		m->heap[i] = last;
	return top;
}

static int
group_at(struct sim *m, int64_t t)
{
	struct scaler_policy_view v;

	scaler_policy(m->s, t, &v);
	return v.index + 1;
}

static void
start_job(struct sim *m, uint32_t j)
{
	struct sjob *job = &m->job[j];
	struct simulate_stats *g = &m->g[job->group];

	job->state = J_RUNNING;
	job->wait = m->now - job->arrival;
	g->started++;
	heap_push(m, m->now + job->duration, j);
	m->running++;
}

static void
fail_job(struct sim *m, uint32_t j)
{
	m->job[j].state = J_FAILED;
	m->g[m->job[j].group].timed_out++;
	m->finished++;
}

static void
inst_create(struct sim *m)
{
	struct sinst *i;

	if (m->ninst == m->capinst) {
		m->capinst = m->capinst ? m->capinst * 2 : 256;
		m->inst = xreallocarray(m->inst, m->capinst, sizeof(*m->inst));
	}
	if (m->nalive == m->capalive) {
		m->capalive = m->capalive ? m->capalive * 2 : 256;
		m->alive = xreallocarray(m->alive, m->capalive,
		    sizeof(*m->alive));
	}
	i = &m->inst[m->ninst];
	i->created = m->now;
	snprintf(i->id, sizeof(i->id), "s-%zu", m->ninst);
	i->pos = (uint32_t)m->nalive;
	m->alive[m->nalive++] = (uint32_t)m->ninst;
	m->ninst++;
	m->g[m->cur].instances_created++;
}

static void
inst_delete(struct sim *m, const char *id)
{
	unsigned long k;
	struct sinst *i;
	uint32_t last;
	char *end;

	if (strncmp(id, "s-", 2) != 0)
		return;
	k = strtoul(id + 2, &end, 10);
	if (*end != '\0' || k >= m->ninst)
		return;
	i = &m->inst[k];
	if (i->pos == UINT32_MAX)
		return;
	last = m->alive[--m->nalive];
	m->alive[i->pos] = last;
	m->inst[last].pos = i->pos;
	i->pos = UINT32_MAX;
}

static void
provider_update(struct sim *m)
{
	if (m->nalive > m->caprep) {
		m->caprep = m->nalive * 2;
		m->rep = xreallocarray(m->rep, m->caprep, sizeof(*m->rep));
	}
	for (size_t k = 0; k < m->nalive; k++) {
		const struct sinst *i = &m->inst[m->alive[k]];

		m->rep[k].id = i->id;
		m->rep[k].state = m->now >= i->created + m->boot ?
		    SCALER_P_RUNNING : SCALER_P_CREATING;
	}
	scaler_update(m->s, m->now, m->rep, m->nalive);
}

/* Carry out the scaler's actions at once; nonzero if anything changed. */
static int
apply(struct sim *m)
{
	struct scaler_actions *a = &m->a;
	int fed = 0;

	if (a->increase > 0) {
		for (int64_t k = 0; k < a->increase; k++)
			inst_create(m);
		scaler_increase_result(m->s, m->now, a->increase, a->increase);
		fed = 1;
	}
	if (a->ndecrease > 0) {
		if (a->ndecrease > m->capreq) {
			m->capreq = a->ndecrease * 2;
			m->req = xreallocarray(m->req, m->capreq, sizeof(*m->req));
		}
		for (size_t k = 0; k < a->ndecrease; k++)
			m->req[k] = a->decrease[k].id;
		scaler_decrease_result(m->s, m->now, m->req, a->ndecrease,
		    m->req, a->ndecrease);
		for (size_t k = 0; k < a->ndecrease; k++)
			inst_delete(m, m->req[k]);
		fed = 1;
	}
	for (size_t k = 0; k < a->nready_checks; k++) {
		scaler_ready_result(m->s, m->now, a->ready_checks[k], 1);
		fed = 1;
	}
	for (size_t k = 0; k < a->nheartbeats; k++) {
		scaler_heartbeat_result(m->s, m->now, a->heartbeats[k], 1);
		fed = 1;
	}
	for (size_t k = 0; k < a->ngranted; k++) {
		uint32_t j = km_take(&m->km, a->granted[k].key);

		if (j != UINT32_MAX) {
			m->pending--;
			start_job(m, j);
		}
		fed = 1;
	}
	for (size_t k = 0; k < a->ntimed_out; k++) {
		uint32_t j = km_take(&m->km, a->timed_out[k]);

		if (j != UINT32_MAX) {
			m->pending--;
			fail_job(m, j);
		}
	}
	return fed;
}

/* Queued jobs reserve and acquire, in arrival order. */
static void
dispatch(struct sim *m)
{
	while (m->qhead < m->qtail) {
		uint32_t j = m->queue[m->qhead];
		struct sjob *job = &m->job[j];
		scaler_key key;
		int r;

		if (m->now - job->arrival >= m->acquire_timeout) {
			m->qhead++;
			fail_job(m, j);
			continue;
		}
		if (scaler_reserve(m->s, m->now, &key) != 0)
			break;
		m->qhead++;
		job->key = key;
		r = scaler_acquire(m->s, m->now, key, NULL, NULL);
		if (r == 0) {
			start_job(m, j);
		} else if (r == FL_ERR_AGAIN) {
			job->state = J_PENDING;
			km_put(&m->km, key, j);
			m->pending++;
		} else {
			fail_job(m, j);
		}
	}
}

static int
wait_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Mean and 95th percentile (nearest rank) of n waits, sorted in place. */
static void
wait_stats(int64_t *w, size_t n, struct simulate_stats *st)
{
	double sum = 0;

	if (n == 0)
		return;
	qsort(w, n, sizeof(*w), wait_cmp);
	for (size_t k = 0; k < n; k++)
		sum += (double)w[k];
	st->wait_mean_s = sum / (double)n / 1e9;
	st->wait_p95_s = (double)w[(size_t)ceil(0.95 * (double)n) - 1] / 1e9;
}

static void
sim_release(struct sim *m)
{
	scaler_actions_release(&m->a);
	scaler_free(m->s);
	free(m->job);
	free(m->queue);
	free(m->heap);
	free(m->km.v);
	free(m->inst);
	free(m->alive);
	free(m->rep);
	free(m->req);
	free(m->g);
}

int
simulate_run(const struct config_autoscaler *as,
    const struct simulate_jobs *jobs, const struct simulate_options *o,
    struct simulate_result *res, char *err, size_t errlen)
{
	struct sim m;
	int64_t max_idle = 5 * 60 * NS_PER_SEC, update_iv, settle = NEVER;
	int64_t *waits;
	size_t same = 0, nw;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&m, 0, sizeof(m));
	m.s = scaler_new(as, err, errlen);
	if (m.s == NULL)
		return FL_ERR_INVAL;
	/* Simulated heartbeats always succeed: they cannot change the
	 * outcome, only cost a decision per instance per minute. */
	scaler_set_heartbeat_interval(m.s, 0);
	scaler_actions_init(&m.a);
	m.ng = as->npolicy + 1;
	m.g = xcalloc(m.ng, sizeof(*m.g));
	for (size_t k = 0; k < m.ng; k++) {
		m.g[k].policy = (int)k - 1;
		m.g[k].line = k > 0 ? as->policy[k - 1].line : 0;
		if (k > 0 && as->policy[k - 1].idle_time_ns > max_idle)
			max_idle = as->policy[k - 1].idle_time_ns;
	}
	update_iv = as->update_interval_ns > 0 ? as->update_interval_ns :
	    60 * NS_PER_SEC;
	m.acquire_timeout = as->instance_acquire_timeout_ns > 0 ?
	    as->instance_acquire_timeout_ns : 15 * 60 * NS_PER_SEC;
	m.njob = jobs->n;
	m.job = xcalloc(m.njob + 1, sizeof(*m.job));
	m.queue = xcalloc(m.njob + 1, sizeof(*m.queue));
	m.heap = xcalloc(m.njob + 1, sizeof(*m.heap));
	for (size_t k = 0; k < m.njob; k++) {
		m.job[k].arrival = o->start_ns + jobs->v[k].arrival_ns;
		m.job[k].duration = jobs->v[k].duration_ns;
	}
	m.now = o->start_ns;
	m.boot = o->boot_delay_ns > 0 ? o->boot_delay_ns : 0;
	m.cur = group_at(&m, m.now);
	m.g[m.cur].active = 1;
	m.a.next_update = m.a.wakeup = m.now;

	for (;;) {
		int64_t t;

		/* The events of this instant: ends first, then arrivals. */
		while (m.nheap > 0 && m.heap[0].t <= m.now) {
			struct hent e = heap_pop(&m);

			scaler_release(m.s, m.now, m.job[e.job].key);
			m.job[e.job].state = J_DONE;
			m.running--;
			m.finished++;
			m.last_end = m.now;
		}
		while (m.next_arrival < m.njob &&
		    m.job[m.next_arrival].arrival <= m.now) {
			uint32_t j = (uint32_t)m.next_arrival++;

			m.job[j].state = J_QUEUED;
			m.job[j].group = m.cur;
			m.g[m.cur].jobs++;
			m.queue[m.qtail++] = j;
		}
		if (m.now >= m.a.next_update)
			provider_update(&m);
		for (size_t iter = 0;; iter++) {
			dispatch(&m);
			scaler_decide(m.s, m.now, &m.a);
			m.decisions++;
			if (!apply(&m))
				break;
			if (iter > MAX_SAME_INSTANT)
				goto stuck;
		}
		if ((int64_t)m.nalive > m.g[m.cur].peak_instances)
			m.g[m.cur].peak_instances = (int64_t)m.nalive;
		if ((int64_t)m.nalive > m.peak)
			m.peak = (int64_t)m.nalive;

		if (m.finished == m.njob) {
			if (settle == NEVER)
				settle = (m.njob > 0 ? m.last_end : m.now) +
				    max_idle + 2 * update_iv;
			if (m.nalive == 0 || m.now >= settle)
				break;
		}

		/* The next instant. */
		t = m.a.wakeup < m.a.next_update ? m.a.wakeup : m.a.next_update;
		if (m.nheap > 0 && m.heap[0].t < t)
			t = m.heap[0].t;
		if (m.next_arrival < m.njob && m.job[m.next_arrival].arrival < t)
			t = m.job[m.next_arrival].arrival;
		if (m.qhead < m.qtail &&
		    m.job[m.queue[m.qhead]].arrival + m.acquire_timeout < t)
			t = m.job[m.queue[m.qhead]].arrival + m.acquire_timeout;
		if (settle < t)
			t = settle;
		if (t <= m.now) {
			if (++same > MAX_SAME_INSTANT)
				goto stuck;
			continue;
		}
		same = 0;
		m.g[m.cur].instance_hours += (double)m.nalive *
		    (double)(t - m.now) / 3600e9;
		m.now = t;
		m.cur = group_at(&m, m.now);
		m.g[m.cur].active = 1;
	}
	goto done;
stuck:
	snprintf(err, errlen, "simulation stopped making progress at +%.3fs",
	    (double)(m.now - o->start_ns) / 1e9);
	rc = FL_ERR_INTERNAL;
done:
	/* Waits per group, then for all. */
	waits = xcalloc(m.njob + 1, sizeof(*waits));
	for (size_t gi = 0; gi < m.ng; gi++) {
		nw = 0;
		for (size_t k = 0; k < m.njob; k++)
			if (m.job[k].group == (int32_t)gi &&
			    (m.job[k].state == J_RUNNING ||
			    m.job[k].state == J_DONE))
				waits[nw++] = m.job[k].wait;
		wait_stats(waits, nw, &m.g[gi]);
	}
	nw = 0;
	for (size_t k = 0; k < m.njob; k++)
		if (m.job[k].state == J_RUNNING || m.job[k].state == J_DONE)
			waits[nw++] = m.job[k].wait;
	wait_stats(waits, nw, &res->total);
	free(waits);
	res->total.policy = -1;
	res->total.active = 1;
	for (size_t gi = 0; gi < m.ng; gi++) {
		res->total.jobs += m.g[gi].jobs;
		res->total.started += m.g[gi].started;
		res->total.timed_out += m.g[gi].timed_out;
		res->total.instance_hours += m.g[gi].instance_hours;
		res->total.instances_created += m.g[gi].instances_created;
	}
	res->total.peak_instances = m.peak;
	res->end_ns = m.now - o->start_ns;
	res->decisions = m.decisions;
	res->groups = m.g;
	res->ngroups = m.ng;
	m.g = NULL;
	sim_release(&m);
	return rc;
}

void
simulate_result_release(struct simulate_result *r)
{
	free(r->groups);
	memset(r, 0, sizeof(*r));
}
