/*
 * The runner's own lines in a job trace (see joblog.h).  Kept apart from
 * the executor so the exact bytes GitLab's trace viewer parses (section
 * markers, colours) are stated, and tested, in one place.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "joblog.h"
#include "xmalloc.h"

void
joblog_section_start(struct sbuf *out, int64_t unix_time, const char *name,
    const char *header, int collapsed)
{
	sbuf_addf(out, "section_start:%" PRId64 ":%s%s" JOBLOG_ERASE,
	    unix_time, name, collapsed ? "[collapsed=true]" : "");
	if (header != NULL)
		sbuf_addf(out, JOBLOG_BOLD_CYAN "%s" JOBLOG_RESET "\n", header);
}

void
joblog_section_end(struct sbuf *out, int64_t unix_time, const char *name)
{
	sbuf_addf(out, "section_end:%" PRId64 ":%s" JOBLOG_ERASE, unix_time,
	    name);
}

const char *
joblog_color(enum joblog_level lv)
{
	switch (lv) {
	case JOBLOG_NOTICE:
		return JOBLOG_BOLD_GREEN;
	case JOBLOG_WARNING:
		return JOBLOG_YELLOW;
	case JOBLOG_ERROR:
		return JOBLOG_BOLD_RED;
	case JOBLOG_PLAIN:
		break;
	}
	return "";
}

void
joblog_line(struct sbuf *out, enum joblog_level lv, const char *fmt, ...)
{
	va_list ap;
	size_t start;

	sbuf_adds(out, joblog_color(lv));
	start = out->len;
	va_start(ap, fmt);
	sbuf_vaddf(out, fmt, ap);
	va_end(ap);
	if (out->len > start && out->buf[out->len - 1] == '\n') {
		out->len--;
		out->buf[out->len] = '\0';
	}
	if (lv != JOBLOG_PLAIN)
		sbuf_adds(out, JOBLOG_RESET);
	sbuf_addch(out, '\n');
}
