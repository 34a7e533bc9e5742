/*
 * The Prometheus registry behind /metrics (see metrics.h for the API).
 *
 * A registry is an array of families; a family an array of series, each
 * series one combination of label values.  Families and series are few
 * (tens to a few hundred), so lookups are linear scans that compare a
 * 64-bit hash of the label values first.  Series are allocated one by one
 * so a pointer handed out by metrics_series() stays put while the array
 * grows.
 *
 * EXPOSITION (text format 0.0.4), per family with at least one series:
 *
 *	# HELP <name> <help, \ and newline escaped>
 *	# TYPE <name> counter|gauge|histogram
 *	<name>{l1="v1",l2="v2"} <value>		counters, gauges
 *	<name>_bucket{...,le="<bound>"} <cumulative count>
 *	<name>_bucket{...,le="+Inf"} <count>
 *	<name>_sum{...} <sum>
 *	<name>_count{...} <count>		histograms
 *
 * Label values escape \ " and newline; bytes that are not UTF-8 become
 * U+FFFD (the format is UTF-8).  A family without labels prints no braces.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "metrics.h"
#include "xmalloc.h"

struct metrics_series {
	struct metrics_family *fam;
	uint64_t hash;
	char **values;			/* fam->nlabels strings */
	double value;			/* counter, gauge */
	double *bounds;			/* histogram: own copy, or fam->bounds */
	size_t nbounds;
	uint64_t *counts;		/* nbounds + 1, not cumulative */
	double sum;
	uint64_t count;
};

struct metrics_family {
	char *name;
	char *help;
	enum metrics_type type;
	char *labels[METRICS_MAX_LABELS];
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	struct metrics_series **series;
	size_t nseries, cap;
};

struct collector {
	metrics_collect_fn fn;
	void *arg;
};

struct metrics {
	struct metrics_family **fam;
	size_t nfam, capfam;
	struct collector *col;
	size_t ncol, capcol;
};

/* ---- names ---- */

static int
valid_metric_name(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (const char *p = s; *p != '\0'; p++, n++) {
		int c = (unsigned char)*p;

		if (!(isalpha(c) && c < 128) && c != '_' && c != ':' &&
		    !(p != s && c >= '0' && c <= '9'))
			return 0;
	}
	return n <= METRICS_MAX_NAME;
}

static int
valid_label_name(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0' || strncmp(s, "__", 2) == 0)
		return 0;
	for (const char *p = s; *p != '\0'; p++, n++) {
		int c = (unsigned char)*p;

		if (!(isalpha(c) && c < 128) && c != '_' &&
		    !(p != s && c >= '0' && c <= '9'))
			return 0;
	}
	return n <= METRICS_MAX_NAME;
}

static int
valid_bounds(const double *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(b[i]))
			return 0;
		if (i > 0 && !(b[i] > b[i - 1]))
			return 0;
	}
	return 1;
}

/* ---- registry ---- */

struct metrics *
metrics_new(void)
{
	return xcalloc(1, sizeof(struct metrics));
}

static void
series_free(struct metrics_series *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->fam->nlabels; i++)
		free(s->values[i]);
	free(s->values);
	if (s->bounds != s->fam->bounds)
		free(s->bounds);
	free(s->counts);
	free(s);
}

static void
family_free(struct metrics_family *f)
{
	metrics_reset(f);
	free(f->series);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfam; i++)
		family_free(m->fam[i]);
	free(m->fam);
	free(m->col);
	free(m);
}

static struct metrics_family *
find_family(const struct metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nfam; i++)
		if (strcmp(m->fam[i]->name, name) == 0)
			return m->fam[i];
	return NULL;
}

static int
same_family(const struct metrics_family *f, enum metrics_type type,
    const char *const *labels, size_t nlabels, const double *bounds,
    size_t nbounds)
{
	if (f->type != type || f->nlabels != nlabels)
		return 0;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(f->labels[i], labels[i]) != 0)
			return 0;
	if (type == METRICS_HISTOGRAM) {
		if (f->nbounds != nbounds)
			return 0;
		for (size_t i = 0; i < nbounds; i++)
			if (f->bounds[i] != bounds[i])
				return 0;
	}
	return 1;
}

static struct metrics_family *
family_get(struct metrics *m, enum metrics_type type, const char *name,
    const char *help, const char *const *labels, size_t nlabels,
    const double *bounds, size_t nbounds)
{
	struct metrics_family *f;

	if (m == NULL || !valid_metric_name(name) || nlabels > METRICS_MAX_LABELS)
		return NULL;
	if (nlabels > 0 && labels == NULL)
		return NULL;
	for (size_t i = 0; i < nlabels; i++) {
		if (!valid_label_name(labels[i]))
			return NULL;
		if (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0)
			return NULL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				return NULL;
	}
	if (type == METRICS_HISTOGRAM &&
	    ((nbounds > 0 && bounds == NULL) || !valid_bounds(bounds, nbounds)))
		return NULL;
	if ((f = find_family(m, name)) != NULL)
		return same_family(f, type, labels, nlabels, bounds, nbounds) ?
		    f : NULL;

	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->help = xstrdup(help != NULL ? help : "");
	f->type = type;
	f->nlabels = nlabels;
	for (size_t i = 0; i < nlabels; i++)
		f->labels[i] = xstrdup(labels[i]);
	if (type == METRICS_HISTOGRAM) {
		f->bounds = xcalloc(nbounds ? nbounds : 1, sizeof(double));
		if (nbounds > 0)
			memcpy(f->bounds, bounds, nbounds * sizeof(double));
		f->nbounds = nbounds;
	}
	if (m->nfam == m->capfam) {
		m->capfam = m->capfam ? m->capfam * 2 : 16;
		m->fam = xreallocarray(m->fam, m->capfam, sizeof(*m->fam));
	}
	m->fam[m->nfam++] = f;
	return f;
}

struct metrics_family *
metrics_counter(struct metrics *m, const char *name, const char *help,
    const char *const *labels, size_t nlabels)
{
	return family_get(m, METRICS_COUNTER, name, help, labels, nlabels,
	    NULL, 0);
}

struct metrics_family *
metrics_gauge(struct metrics *m, const char *name, const char *help,
    const char *const *labels, size_t nlabels)
{
	return family_get(m, METRICS_GAUGE, name, help, labels, nlabels,
	    NULL, 0);
}

struct metrics_family *
metrics_histogram(struct metrics *m, const char *name, const char *help,
    const char *const *labels, size_t nlabels, const double *bounds,
    size_t nbounds)
{
	return family_get(m, METRICS_HISTOGRAM, name, help, labels, nlabels,
	    bounds, nbounds);
}

/* ---- series ---- */

static const char *
val(const char *const *values, size_t i)
{
	return values != NULL && values[i] != NULL ? values[i] : "";
}

static uint64_t
hash_values(const struct metrics_family *f, const char *const *values)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < f->nlabels; i++) {
		for (const unsigned char *p = (const unsigned char *)val(values, i);
		    *p != '\0'; p++) {
			h ^= *p;
			h *= UINT64_C(1099511628211);
		}
		h ^= 0xff;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static ssize_t
find_series(const struct metrics_family *f, const char *const *values,
    uint64_t h)
{
	for (size_t i = 0; i < f->nseries; i++) {
		const struct metrics_series *s = f->series[i];
		size_t k;

		if (s->hash != h)
			continue;
		for (k = 0; k < f->nlabels; k++)
			if (strcmp(s->values[k], val(values, k)) != 0)
				break;
		if (k == f->nlabels)
			return (ssize_t)i;
	}
	return -1;
}

struct metrics_series *
metrics_series(struct metrics_family *f, const char *const *values)
{
	struct metrics_series *s;
	uint64_t h;
	ssize_t at;

	if (f == NULL)
		return NULL;
	h = hash_values(f, values);
	if ((at = find_series(f, values, h)) >= 0)
		return f->series[at];

	s = xcalloc(1, sizeof(*s));
	s->fam = f;
	s->hash = h;
	s->values = xcalloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = xstrdup(val(values, i));
	if (f->type == METRICS_HISTOGRAM) {
		s->bounds = f->bounds;
		s->nbounds = f->nbounds;
		s->counts = xcalloc(f->nbounds + 1, sizeof(uint64_t));
	}
	if (f->nseries == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->series = xreallocarray(f->series, f->cap, sizeof(*f->series));
	}
	f->series[f->nseries++] = s;
	return s;
}

int
metrics_series_add(struct metrics_series *s, double v)
{
	if (s == NULL || s->fam->type == METRICS_HISTOGRAM)
		return FL_ERR_INVAL;
	if (s->fam->type == METRICS_COUNTER && !(v >= 0))
		return FL_ERR_INVAL;
	s->value += v;
	return 0;
}

int
metrics_series_set(struct metrics_series *s, double v)
{
	if (s == NULL || s->fam->type == METRICS_HISTOGRAM)
		return FL_ERR_INVAL;
	s->value = v;
	return 0;
}

int
metrics_series_observe(struct metrics_series *s, double v)
{
	size_t k = 0;

	if (s == NULL || s->fam->type != METRICS_HISTOGRAM)
		return FL_ERR_INVAL;
	/* NaN compares false everywhere and lands in +Inf. */
	while (k < s->nbounds && !(v <= s->bounds[k]))
		k++;
	s->counts[k]++;
	s->sum += v;
	s->count++;
	return 0;
}

double
metrics_series_value(const struct metrics_series *s)
{
	if (s == NULL)
		return 0;
	return s->fam->type == METRICS_HISTOGRAM ? (double)s->count : s->value;
}

int
metrics_add(struct metrics_family *f, const char *const *values, double v)
{
	if (f == NULL || f->type == METRICS_HISTOGRAM ||
	    (f->type == METRICS_COUNTER && !(v >= 0)))
		return FL_ERR_INVAL;
	return metrics_series_add(metrics_series(f, values), v);
}

int
metrics_inc(struct metrics_family *f, const char *const *values)
{
	return metrics_add(f, values, 1);
}

int
metrics_set(struct metrics_family *f, const char *const *values, double v)
{
	if (f == NULL || f->type == METRICS_HISTOGRAM)
		return FL_ERR_INVAL;
	return metrics_series_set(metrics_series(f, values), v);
}

int
metrics_observe(struct metrics_family *f, const char *const *values, double v)
{
	if (f == NULL || f->type != METRICS_HISTOGRAM)
		return FL_ERR_INVAL;
	return metrics_series_observe(metrics_series(f, values), v);
}

int
metrics_histogram_load(struct metrics_family *f, const char *const *values,
    const double *bounds, size_t nbounds, const uint64_t *counts, double sum)
{
	struct metrics_series *s;

	if (f == NULL || f->type != METRICS_HISTOGRAM || counts == NULL ||
	    (nbounds > 0 && bounds == NULL) || !valid_bounds(bounds, nbounds))
		return FL_ERR_INVAL;
	s = metrics_series(f, values);
	if (s->bounds != f->bounds)
		free(s->bounds);
	s->bounds = xcalloc(nbounds ? nbounds : 1, sizeof(double));
	if (nbounds > 0)
		memcpy(s->bounds, bounds, nbounds * sizeof(double));
	s->nbounds = nbounds;
	free(s->counts);
	s->counts = xcalloc(nbounds + 1, sizeof(uint64_t));
	memcpy(s->counts, counts, (nbounds + 1) * sizeof(uint64_t));
	s->count = 0;
	for (size_t i = 0; i <= nbounds; i++)
		s->count += counts[i];
	s->sum = sum;
	return 0;
}

int
metrics_remove(struct metrics_family *f, const char *const *values)
{
	ssize_t at;

	if (f == NULL)
		return FL_ERR_INVAL;
	if ((at = find_series(f, values, hash_values(f, values))) < 0)
		return FL_ERR_NOTFOUND;
	series_free(f->series[at]);
	memmove(&f->series[at], &f->series[at + 1],
	    (f->nseries - (size_t)at - 1) * sizeof(*f->series));
	f->nseries--;
	return 0;
}

void
metrics_reset(struct metrics_family *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nseries; i++)
		series_free(f->series[i]);
	f->nseries = 0;
}

size_t
metrics_family_size(const struct metrics_family *f)
{
	return f != NULL ? f->nseries : 0;
}

/* Drop the series whose label `label` has value `value`. */
static void
remove_where(struct metrics_family *f, const char *label, const char *value)
{
	size_t k, j = 0;

	if (f == NULL)
		return;
	for (k = 0; k < f->nlabels; k++)
		if (strcmp(f->labels[k], label) == 0)
			break;
	if (k == f->nlabels)
		return;
	for (size_t i = 0; i < f->nseries; i++) {
		if (strcmp(f->series[i]->values[k], value) == 0)
			series_free(f->series[i]);
		else
			f->series[j++] = f->series[i];
	}
	f->nseries = j;
}

/* ---- collectors ---- */

void
metrics_add_collector(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	if (m == NULL || fn == NULL)
		return;
	if (m->ncol == m->capcol) {
		m->capcol = m->capcol ? m->capcol * 2 : 4;
		m->col = xreallocarray(m->col, m->capcol, sizeof(*m->col));
	}
	m->col[m->ncol].fn = fn;
	m->col[m->ncol].arg = arg;
	m->ncol++;
}

void
metrics_remove_collector(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->ncol; i++) {
		if (m->col[i].fn == fn && m->col[i].arg == arg) {
			memmove(&m->col[i], &m->col[i + 1],
			    (m->ncol - i - 1) * sizeof(*m->col));
			m->ncol--;
			return;
		}
	}
}

/* ---- text format ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0;	/* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

static void
escape(struct sbuf *out, const char *v, int quote)
{
	const unsigned char *p = (const unsigned char *)(v != NULL ? v : "");

	while (*p != '\0') {
		size_t n;

		switch (*p) {
		case '\\':
			sbuf_add(out, "\\\\", 2);
			p++;
			continue;
		case '\n':
			sbuf_add(out, "\\n", 2);
			p++;
			continue;
		case '"':
			if (quote) {
				sbuf_add(out, "\\\"", 2);
				p++;
				continue;
			}
			break;
		default:
			break;
		}
		/* The NUL terminator stops utf8_len's continuation checks. */
		if ((n = utf8_len(p)) == 0) {
			sbuf_adds(out, "\xef\xbf\xbd");	/* U+FFFD */
			p++;
		} else {
			sbuf_add(out, p, n);
			p += n;
		}
	}
}

void
metrics_escape_label(struct sbuf *out, const char *v)
{
	escape(out, v, 1);
}

void
metrics_escape_help(struct sbuf *out, const char *v)
{
	escape(out, v, 0);
}

void
metrics_format_value(struct sbuf *out, double v)
{
	char buf[64];

	if (isnan(v)) {
		sbuf_adds(out, "NaN");
		return;
	}
	if (isinf(v)) {
		sbuf_adds(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		sbuf_addch(out, '0');
		return;
	}
	if (v == trunc(v) && fabs(v) < 1e15) {
		sbuf_addf(out, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		int n = snprintf(buf, sizeof(buf), "%.*g", prec, v);

		if (n > 0 && (size_t)n < sizeof(buf) && strtod(buf, NULL) == v)
			break;
	}
	sbuf_adds(out, buf);
}

/* {l1="v1",...[,le="b"]}; nothing when there are no labels at all. */
static void
write_labels(struct sbuf *out, const struct metrics_series *s,
    const char *le)
{
	const struct metrics_family *f = s->fam;

	if (f->nlabels == 0 && le == NULL)
		return;
	sbuf_addch(out, '{');
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i > 0)
			sbuf_addch(out, ',');
		sbuf_adds(out, f->labels[i]);
		sbuf_add(out, "=\"", 2);
		metrics_escape_label(out, s->values[i]);
		sbuf_addch(out, '"');
	}
	if (le != NULL) {
		if (f->nlabels > 0)
			sbuf_addch(out, ',');
		sbuf_add(out, "le=\"", 4);
		sbuf_adds(out, le);
		sbuf_addch(out, '"');
	}
	sbuf_addch(out, '}');
}

static void
write_sample(struct sbuf *out, const struct metrics_series *s,
    const char *suffix, const char *le, double v)
{
	sbuf_adds(out, s->fam->name);
	sbuf_adds(out, suffix);
	write_labels(out, s, le);
	sbuf_addch(out, ' ');
	metrics_format_value(out, v);
	sbuf_addch(out, '\n');
}

static int
series_cmp(const void *a, const void *b)
{
	const struct metrics_series *x = *(const struct metrics_series *const *)a;
	const struct metrics_series *y = *(const struct metrics_series *const *)b;

	for (size_t i = 0; i < x->fam->nlabels; i++) {
		int c = strcmp(x->values[i], y->values[i]);

		if (c != 0)
			return c;
	}
	return 0;
}

static int
family_cmp(const void *a, const void *b)
{
	const struct metrics_family *x = *(const struct metrics_family *const *)a;
	const struct metrics_family *y = *(const struct metrics_family *const *)b;

	return strcmp(x->name, y->name);
}

static void
write_family(struct sbuf *out, struct metrics_family *f)
{
	static const char *const tname[] = { "counter", "gauge", "histogram" };
	struct metrics_series **ss;

	if (f->nseries == 0)
		return;
	sbuf_addf(out, "# HELP %s ", f->name);
	metrics_escape_help(out, f->help);
	sbuf_addf(out, "\n# TYPE %s %s\n", f->name, tname[f->type]);

	/* Sort a copy: handles into f->series stay as they are. */
	ss = xreallocarray(NULL, f->nseries, sizeof(*ss));
	memcpy(ss, f->series, f->nseries * sizeof(*ss));
	qsort(ss, f->nseries, sizeof(*ss), series_cmp);
	for (size_t i = 0; i < f->nseries; i++) {
		const struct metrics_series *s = ss[i];
		uint64_t cum = 0;

		if (f->type != METRICS_HISTOGRAM) {
			write_sample(out, s, "", NULL, s->value);
			continue;
		}
		for (size_t k = 0; k < s->nbounds; k++) {
			struct sbuf le;

			sbuf_init(&le);
			metrics_format_value(&le, s->bounds[k]);
			cum += s->counts[k];
			write_sample(out, s, "_bucket", le.buf, (double)cum);
			sbuf_release(&le);
		}
		write_sample(out, s, "_bucket", "+Inf", (double)s->count);
		write_sample(out, s, "_sum", NULL, s->sum);
		write_sample(out, s, "_count", NULL, (double)s->count);
	}
	free(ss);
}

int
metrics_render(struct metrics *m, struct sbuf *out)
{
	struct metrics *scratch = metrics_new();
	struct metrics_family **all;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < m->ncol; i++)
		m->col[i].fn(scratch, m->col[i].arg);

	all = xcalloc(m->nfam + scratch->nfam + 1, sizeof(*all));
	for (size_t i = 0; i < m->nfam; i++)
		all[n++] = m->fam[i];
	for (size_t i = 0; i < scratch->nfam; i++) {
		if (find_family(m, scratch->fam[i]->name) != NULL) {
			rc = FL_ERR_EXISTS;
			continue;
		}
		all[n++] = scratch->fam[i];
	}
	qsort(all, n, sizeof(*all), family_cmp);
	for (size_t i = 0; i < n; i++)
		write_family(out, all[i]);
	free(all);
	metrics_free(scratch);
	return rc;
}

/* ---- process_* ---- */

int
metrics_parse_proc_stat(const char *stat, int64_t btime, long ticks,
    long pagesize, struct metrics_proc *out)
{
	/* Fields after the command's closing ")": 0 is field 3 (state). */
	enum { F_UTIME = 11, F_STIME = 12, F_START = 19, F_VSIZE = 20,
	    F_RSS = 21 };
	unsigned long long f[F_RSS + 1];
	const char *p;

	memset(out, 0, sizeof(*out));
	if (stat == NULL || ticks <= 0 || pagesize <= 0 ||
	    (p = strrchr(stat, ')')) == NULL)
		return FL_ERR_PARSE;
	p++;
	for (int i = 0; i <= F_RSS; i++) {
		char *end;

		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			return FL_ERR_PARSE;
		if (i == 0) {		/* the state letter */
			while (*p != ' ' && *p != '\0')
				p++;
			f[0] = 0;
			continue;
		}
		errno = 0;
		f[i] = strtoull(*p == '-' ? p + 1 : p, &end, 10);
		if (errno != 0 || (end == p || (*end != ' ' && *end != '\n' &&
		    *end != '\0')))
			return FL_ERR_PARSE;
		p = end;
	}
	out->cpu_seconds = (double)(f[F_UTIME] + f[F_STIME]) / (double)ticks;
	out->start_time_seconds = (double)btime +
	    (double)f[F_START] / (double)ticks;
	out->virtual_memory_bytes = (double)f[F_VSIZE];
	out->resident_memory_bytes = (double)f[F_RSS] * (double)pagesize;
	return 0;
}

/* Read a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got + 1 < len) {
		ssize_t r = read(fd, buf + got, len - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

static int64_t
boot_time(void)
{
	static int64_t cached = -1;
	char buf[8192];
	const char *p;

	if (cached >= 0)
		return cached;
	if (read_small("/proc/stat", buf, sizeof(buf)) <= 0)
		return -1;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "btime ", 6) == 0) {
			cached = strtoll(p + 6, NULL, 10);
			return cached;
		}
	}
	return -1;
}

static long
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) == dirfd(d))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static void
gauge1(struct metrics *m, const char *name, const char *help, double v)
{
	metrics_set(metrics_gauge(m, name, help, NULL, 0), NULL, v);
}

static double
rlim_value(rlim_t r)
{
	/* The Go client reports an unlimited limit as 2^64 - 1. */
	return r == RLIM_INFINITY ? 18446744073709551615.0 : (double)r;
}

void
metrics_process_collect(struct metrics *scratch, void *arg)
{
	char buf[2048];
	struct metrics_proc p;
	struct rlimit rl;
	int64_t bt = boot_time();
	long fds;

	(void)arg;
	if (bt >= 0 && read_small("/proc/self/stat", buf, sizeof(buf)) > 0 &&
	    metrics_parse_proc_stat(buf, bt, sysconf(_SC_CLK_TCK),
	    sysconf(_SC_PAGESIZE), &p) == 0) {
		metrics_set(metrics_counter(scratch, "process_cpu_seconds_total",
		    "Total user and system CPU time spent in seconds.", NULL, 0),
		    NULL, p.cpu_seconds);
		gauge1(scratch, "process_resident_memory_bytes",
		    "Resident memory size in bytes.", p.resident_memory_bytes);
		gauge1(scratch, "process_start_time_seconds",
		    "Start time of the process since unix epoch in seconds.",
		    p.start_time_seconds);
		gauge1(scratch, "process_virtual_memory_bytes",
		    "Virtual memory size in bytes.", p.virtual_memory_bytes);
	}
	if ((fds = count_fds()) >= 0)
		gauge1(scratch, "process_open_fds",
		    "Number of open file descriptors.", (double)fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge1(scratch, "process_max_fds",
		    "Maximum number of open file descriptors.",
		    rlim_value(rl.rlim_cur));
	if (getrlimit(RLIMIT_AS, &rl) == 0)
		gauge1(scratch, "process_virtual_memory_max_bytes",
		    "Maximum amount of virtual memory available in bytes.",
		    rlim_value(rl.rlim_cur));
}

/* ---- gitlab_runner_* ---- */

#define L(...)	((const char *const[]){ __VA_ARGS__ })
#define NL(...)	(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))
#define COUNTER(m, name, help, ...) \
	metrics_counter(m, name, help, L(__VA_ARGS__), NL(__VA_ARGS__))
#define GAUGE(m, name, help, ...) \
	metrics_gauge(m, name, help, L(__VA_ARGS__), NL(__VA_ARGS__))

/* R: commands/builds_helper.go newBuildsHelper. */
static const double job_duration_buckets[] = { 30, 60, 300, 600, 1800, 3600,
    7200, 10800, 18000, 36000 };
/* R: network/api_requests_collector.go requestDurationBuckets. */
static const double api_duration_buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    30, 60 };
/* R: helpers/prometheus/log_hook.go Levels(), logrus' level names. */
static const char *const error_levels[] = { "panic", "fatal", "error",
    "warning" };

#define RUNNER_NFAMILIES 19
_Static_assert(sizeof(struct metrics_runner) ==
    RUNNER_NFAMILIES * sizeof(struct metrics_family *),
    "runner_families() must list every member of struct metrics_runner");

/* The families of rm into fams (RUNNER_NFAMILIES); returns the count. */
static size_t
runner_families(const struct metrics_runner *rm, struct metrics_family **fams)
{
	struct metrics_family *const all[RUNNER_NFAMILIES] = {
		rm->jobs, rm->jobs_total, rm->failed_jobs_total,
		rm->job_duration_seconds, rm->concurrent, rm->limit,
		rm->request_concurrency, rm->request_concurrency_exceeded_total,
		rm->request_concurrency_hard_limit,
		rm->api_request_statuses_total,
		rm->api_request_duration_seconds, rm->worker_feeds_total,
		rm->worker_feed_failures_total,
		rm->worker_processing_failures_total, rm->worker_slots_number,
		rm->worker_slot_operations_total, rm->errors_total,
		rm->version_info, rm->process_state_info
	};

	memcpy(fams, all, sizeof(all));
	return RUNNER_NFAMILIES;
}

int
metrics_runner_init(struct metrics_runner *rm, struct metrics *m,
    const struct metrics_version *v)
{
	struct metrics_family *fams[RUNNER_NFAMILIES];

	memset(rm, 0, sizeof(*rm));
	rm->jobs = GAUGE(m, "gitlab_runner_jobs",
	    "The current number of running builds.",
	    "runner", "runner_name", "system_id", "state", "stage",
	    "executor_stage");
	rm->jobs_total = COUNTER(m, "gitlab_runner_jobs_total",
	    "Total number of handled jobs",
	    "runner", "runner_name", "system_id");
	rm->failed_jobs_total = COUNTER(m, "gitlab_runner_failed_jobs_total",
	    "Total number of failed jobs",
	    "runner", "runner_name", "failure_reason", "mode");
	rm->job_duration_seconds = metrics_histogram(m,
	    "gitlab_runner_job_duration_seconds", "Histogram of job durations",
	    L("runner", "runner_name", "system_id", "mode"), 4,
	    job_duration_buckets,
	    sizeof(job_duration_buckets) / sizeof(double));
	rm->concurrent = metrics_gauge(m, "gitlab_runner_concurrent",
	    "The current value of concurrent setting", NULL, 0);
	/* (GitLab Runner's help text for limit says "concurrent" too.) */
	rm->limit = GAUGE(m, "gitlab_runner_limit",
	    "The current value of limit setting",
	    "runner", "runner_name", "system_id");
	rm->request_concurrency = GAUGE(m, "gitlab_runner_request_concurrency",
	    "The current number of concurrent requests for a new job",
	    "runner", "system_id");
	rm->request_concurrency_exceeded_total = COUNTER(m,
	    "gitlab_runner_request_concurrency_exceeded_total",
	    "Count of excess requests above the configured request_concurrency limit",
	    "runner", "system_id");
	rm->request_concurrency_hard_limit = GAUGE(m,
	    "gitlab_runner_request_concurrency_hard_limit",
	    "Configured request_concurrency limit", "runner", "system_id");
	rm->api_request_statuses_total = COUNTER(m,
	    "gitlab_runner_api_request_statuses_total",
	    "The total number of API requests made by GitLab Runner, partitioned by runner, system_id, endpoint, status and method.",
	    "runner", "system_id", "endpoint", "status", "method");
	rm->api_request_duration_seconds = metrics_histogram(m,
	    "gitlab_runner_api_request_duration_seconds",
	    "Latency histogram of API requests made by GitLab Runner, partitioned by runner, system_id, endpoint, status_class and method.",
	    L("runner", "system_id", "endpoint", "status_class", "method"), 5,
	    api_duration_buckets,
	    sizeof(api_duration_buckets) / sizeof(double));
	rm->worker_feeds_total = COUNTER(m, "gitlab_runner_worker_feeds_total",
	    "Total number of times that runner worker is fed to the main loop",
	    "runner", "runner_name", "system_id");
	rm->worker_feed_failures_total = COUNTER(m,
	    "gitlab_runner_worker_feed_failures_total",
	    "Total number of times that runner worker feeding have failed",
	    "runner", "runner_name", "system_id");
	rm->worker_processing_failures_total = COUNTER(m,
	    "gitlab_runner_worker_processing_failures_total",
	    "Total number of failures when processing runner worker",
	    "failure_type", "runner", "runner_name", "system_id");
	/* GitLab's worker goroutines, one per concurrent slot: here the
	 * concurrent setting, started at launch and on a reload. */
	rm->worker_slots_number = metrics_gauge(m,
	    "gitlab_runner_worker_slots_number",
	    "Current number of runner worker slots", NULL, 0);
	rm->worker_slot_operations_total = COUNTER(m,
	    "gitlab_runner_worker_slot_operations_total",
	    "Total number of runner workers slot operations (starting and stopping slots)",
	    "operation");
	rm->errors_total = COUNTER(m, "gitlab_runner_errors_total",
	    "The number of caught errors.", "level");
	rm->version_info = GAUGE(m, "gitlab_runner_version_info",
	    "A metric with a constant '1' value labeled by different build stats fields.",
	    "name", "version", "revision", "branch", "go_version", "built_at",
	    "os", "architecture");
	rm->process_state_info = GAUGE(m, "gitlab_runner_process_state_info",
	    "This metric provides info about the current state of the GitLab Runner process",
	    "state");

	for (size_t i = 0; i < runner_families(rm, fams); i++)
		if (fams[i] == NULL)
			return FL_ERR_EXISTS;

	metrics_series(rm->concurrent, NULL);
	metrics_series(rm->worker_slots_number, NULL);
	{
		static const char *const ops[] = { "started", "stopped" };

		for (size_t i = 0; i < 2; i++)
			metrics_series(rm->worker_slot_operations_total,
			    &ops[i]);
	}
	for (size_t i = 0; i < 4; i++)
		metrics_series(rm->errors_total, &error_levels[i]);
	if (v != NULL)
		metrics_set(rm->version_info, L(v->name, v->version, v->revision,
		    v->branch, v->go_version, v->built_at, v->os,
		    v->architecture), 1);
	metrics_runner_set_state(rm, "starting");
	return 0;
}

void
metrics_runner_add(struct metrics_runner *rm,
    const struct metrics_runner_id *id, int64_t limit,
    int64_t request_concurrency)
{
	metrics_series(rm->jobs, L(id->runner, id->runner_name, id->system_id,
	    "idle", "idle", "idle"));
	metrics_set(rm->limit, L(id->runner, id->runner_name, id->system_id),
	    (double)limit);
	metrics_series(rm->request_concurrency, L(id->runner, id->system_id));
	metrics_series(rm->request_concurrency_exceeded_total,
	    L(id->runner, id->system_id));
	metrics_set(rm->request_concurrency_hard_limit,
	    L(id->runner, id->system_id), (double)request_concurrency);
}

void
metrics_runner_remove(struct metrics_runner *rm,
    const struct metrics_runner_id *id)
{
	struct metrics_family *fams[RUNNER_NFAMILIES];

	for (size_t i = 0; i < runner_families(rm, fams); i++)
		remove_where(fams[i], "runner",
		    id->runner != NULL ? id->runner : "");
}

void
metrics_runner_set_state(struct metrics_runner *rm, const char *state)
{
	metrics_reset(rm->process_state_info);
	metrics_set(rm->process_state_info, &state, 1);
}

const char *
metrics_error_level(const char *level)
{
	if (level == NULL)
		return NULL;
	if (strcmp(level, "warn") == 0 || strcmp(level, "warning") == 0)
		return "warning";
	for (size_t i = 0; i < 3; i++)
		if (strcmp(level, error_levels[i]) == 0)
			return error_levels[i];
	return NULL;
}

const char *
metrics_status_class(int status)
{
	static const char *const c[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

	if (status >= 100 && status < 600)
		return c[status / 100 - 1];
	return "unknown";
}

/* ---- fleeting_* ---- */

static void
fleet_hist(struct metrics *m, const char *name, const char *help,
    const struct metrics_runner_id *id, const struct scaler_histogram *h)
{
	struct metrics_family *f = metrics_histogram(m, name, help,
	    L("runner", "runner_name", "system_id"), 3, NULL, 0);

	if (h->counts == NULL)
		return;
	metrics_histogram_load(f, L(id->runner, id->runner_name, id->system_id),
	    h->bounds, h->nbounds, h->counts, h->sum);
}

/* A family labelled by the runner identity plus `extra` (or nothing). */
static struct metrics_family *
fleet_family(struct metrics *m, enum metrics_type t, const char *name,
    const char *help, const char *extra)
{
	const char *labels[] = { "runner", "runner_name", "system_id", extra };
	size_t n = extra != NULL ? 4 : 3;

	return t == METRICS_COUNTER ? metrics_counter(m, name, help, labels, n) :
	    metrics_gauge(m, name, help, labels, n);
}

static void
fleet_one(struct metrics *m, const struct metrics_fleet *fl)
{
	const struct scaler_metrics *sm = fl->m;
	const struct metrics_runner_id *id = &fl->id;
	const char *v[4] = { id->runner, id->runner_name, id->system_id, NULL };
	struct metrics_family *f;

	/* fleeting_provisioner_* */
	f = fleet_family(m, METRICS_GAUGE, "fleeting_provisioner_instances",
	    "Number of instances by state", "state");
	for (int st = 0; st <= SCALER_P_COUNT; st++) {
		v[3] = scaler_pstate_name((enum scaler_pstate)st);
		metrics_set(f, v, (double)sm->instances[st]);
	}
	metrics_set(fleet_family(m, METRICS_GAUGE,
	    "fleeting_provisioner_max_instances",
	    "Maximum number of instances", NULL), v, (double)sm->max_instances);
	metrics_set(fleet_family(m, METRICS_COUNTER,
	    "fleeting_provisioner_missed_updates_total",
	    "Number of instance updates (provider reconciliations) that were missed",
	    NULL), v, (double)sm->missed_updates_total);
	f = fleet_family(m, METRICS_COUNTER,
	    "fleeting_provisioner_instance_operations_total",
	    "Number of instance operations by type", "operation");
	for (int op = 0; op < SCALER_IOP_COUNT; op++) {
		v[3] = scaler_iop_name((enum scaler_iop)op);
		metrics_set(f, v, (double)sm->instance_operations_total[op]);
	}
	f = fleet_family(m, METRICS_COUNTER,
	    "fleeting_provisioner_internal_operations_total",
	    "Number of internal provisioner operations by type", "operation");
	for (int op = 0; op < SCALER_INT_COUNT; op++) {
		v[3] = scaler_internal_op_name((enum scaler_internal_op)op);
		metrics_set(f, v, (double)sm->internal_operations_total[op]);
	}
	fleet_hist(m, "fleeting_provisioner_instance_creation_time_seconds",
	    "Time from an instance request until the provider lists it",
	    id, &sm->creation_time);
	fleet_hist(m, "fleeting_provisioner_instance_is_running_time_seconds",
	    "Time from an instance request until it is running",
	    id, &sm->is_running_time);
	fleet_hist(m, "fleeting_provisioner_instance_deletion_time_seconds",
	    "Time from an instance deletion request until it is gone",
	    id, &sm->deletion_time);
	fleet_hist(m, "fleeting_provisioner_instance_life_duration_seconds",
	    "Time from an instance's creation until its deletion",
	    id, &sm->life_duration);

	/* fleeting_taskscaler_* */
	v[3] = NULL;
	f = fleet_family(m, METRICS_GAUGE, "fleeting_taskscaler_tasks",
	    "Number of task slots by state", "state");
	for (int st = 0; st < SCALER_TASK_COUNT; st++) {
		v[3] = scaler_task_state_name((enum scaler_task_state)st);
		metrics_set(f, v, (double)sm->tasks[st]);
	}
	metrics_set(fleet_family(m, METRICS_GAUGE,
	    "fleeting_taskscaler_max_tasks_per_instance",
	    "Maximum number of tasks (capacity) per instance", NULL), v,
	    (double)sm->max_tasks_per_instance);
	metrics_set(fleet_family(m, METRICS_GAUGE,
	    "fleeting_taskscaler_max_use_count_per_instance",
	    "Maximum number of times an instance is used before removal", NULL),
	    v, (double)sm->max_use_count_per_instance);
	f = fleet_family(m, METRICS_COUNTER,
	    "fleeting_taskscaler_task_operations_total",
	    "Number of task operations by type", "operation");
	for (int op = 0; op < SCALER_TOP_COUNT; op++) {
		v[3] = scaler_task_op_name((enum scaler_task_op)op);
		metrics_set(f, v, (double)sm->task_operations_total[op]);
	}
	f = fleet_family(m, METRICS_COUNTER,
	    "fleeting_taskscaler_scale_operations_total",
	    "Number of instances asked for (up) and removed (down)",
	    "operation");
	v[3] = "up";
	metrics_set(f, v, (double)sm->scale_operations_up_total);
	v[3] = "down";
	metrics_set(f, v, (double)sm->scale_operations_down_total);
	/* XXX our own name: taskscaler's removal-reason family is not in the
	 * sources we could read. */
	f = fleet_family(m, METRICS_COUNTER,
	    "fleeting_taskscaler_instance_removals_total",
	    "Number of instances removed, by reason", "reason");
	for (int r = SCALER_REASON_NONE + 1; r < SCALER_REASON_COUNT; r++) {
		v[3] = scaler_reason_name((enum scaler_reason)r);
		metrics_set(f, v, (double)sm->removals_total[r]);
	}
	v[3] = NULL;
	metrics_set(fleet_family(m, METRICS_GAUGE,
	    "fleeting_taskscaler_desired_instances",
	    "Number of instances the taskscaler wants", NULL), v,
	    (double)sm->desired_instances);
	fleet_hist(m, "fleeting_taskscaler_task_instance_readiness_time_seconds",
	    "Time from an instance's creation until it is ready for tasks",
	    id, &sm->readiness_time);
}

void
metrics_fleet_collect(struct metrics *scratch,
    const struct metrics_fleet *fleets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fleets[i].m != NULL)
			fleet_one(scratch, &fleets[i]);
}
