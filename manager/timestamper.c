/*
 * The job log's timestamper: see timestamper.h.  Why a module: the exact
 * byte format is what GitLab parses, and the line splitting (partial
 * lines, carriage returns, long lines) is easiest to get right, and to
 * test, away from the executor.
 */
#include <string.h>
#include <time.h>

#include "timestamper.h"

void
tstamp_init(struct tstamp *t, uint8_t stream, enum tstamp_type type)
{
	t->stream = stream;
	t->type = (char)type;
	t->flag = ' ';
	sbuf_init(&t->buf);
}

void
tstamp_release(struct tstamp *t)
{
	sbuf_release(&t->buf);
}

int64_t
tstamp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void
tstamp_header(char *buf, int64_t now_us, uint8_t stream, char type,
    char flag)
{
	static const char hex[] = "0123456789abcdef";
	time_t sec = (time_t)(now_us / 1000000);
	int us = (int)(now_us % 1000000);
	struct tm tm;

	if (us < 0) {
		us += 1000000;
		sec--;
	}
	gmtime_r(&sec, &tm);
	put2(buf, (tm.tm_year + 1900) / 100);
	put2(buf + 2, (tm.tm_year + 1900) % 100);
	buf[4] = '-';
	put2(buf + 5, tm.tm_mon + 1);
	buf[7] = '-';
	put2(buf + 8, tm.tm_mday);
	buf[10] = 'T';
	put2(buf + 11, tm.tm_hour);
	buf[13] = ':';
	put2(buf + 14, tm.tm_min);
	buf[16] = ':';
	put2(buf + 17, tm.tm_sec);
	buf[19] = '.';
	put2(buf + 20, us / 10000);
	put2(buf + 22, us / 100 % 100);
	put2(buf + 24, us % 100);
	buf[26] = 'Z';
	buf[27] = ' ';
	buf[28] = hex[stream >> 4];
	buf[29] = hex[stream & 0x0f];
	buf[30] = type;
	buf[31] = flag;
}

/* The header of the next line into out; the next one is a new line. */
static void
header(struct tstamp *t, int64_t now_us, struct sbuf *out)
{
	char h[TSTAMP_HEADER_LEN];

	tstamp_header(h, now_us, t->stream, t->type, t->flag);
	sbuf_add(out, h, TSTAMP_HEADER_LEN);
	t->flag = ' ';
}

void
tstamp_write(struct tstamp *t, const void *data, size_t len, int64_t now_us,
    struct sbuf *out)
{
	const char *p = data, *nl;
	size_t n = 0;

	/* Whole lines: the pending partial one first. */
	while ((nl = memchr(p + n, '\n', len - n)) != NULL) {
		size_t l = (size_t)(nl - (p + n)) + 1;

		if (t->buf.len > 0) {
			sbuf_add(out, t->buf.buf, t->buf.len);
			sbuf_reset(&t->buf);
		} else {
			header(t, now_us, out);
		}
		sbuf_add(out, p + n, l);
		n += l;
	}
	if (n == len)
		return;
	/* The rest: a progress bar ('\r') goes out now, whole. */
	if (memchr(p + n, '\r', len - n) != NULL) {
		if (t->buf.len > 0) {
			sbuf_add(out, t->buf.buf, t->buf.len);
			sbuf_reset(&t->buf);
		} else {
			header(t, now_us, out);
		}
		sbuf_add(out, p + n, len - n);
		sbuf_addch(out, '\n');
		t->flag = '+';
		return;
	}
	/* A partial line waits, unless it grows too long. */
	if (t->buf.len + (len - n) > TSTAMP_BUF_MAX) {
		if (t->buf.len == 0)
			header(t, now_us, out);
		sbuf_add(out, t->buf.buf, t->buf.len);
		sbuf_reset(&t->buf);
		sbuf_add(out, p + n, len - n);
		sbuf_addch(out, '\n');
		t->flag = '+';
		return;
	}
	if (t->buf.len == 0)
		header(t, now_us, &t->buf);
	sbuf_add(&t->buf, p + n, len - n);
}

void
tstamp_close(struct tstamp *t, struct sbuf *out)
{
	if (t->buf.len == 0)
		return;
	sbuf_add(out, t->buf.buf, t->buf.len);
	sbuf_addch(out, '\n');
	sbuf_reset(&t->buf);
}
