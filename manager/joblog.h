/*
 * The runner's own lines in a job trace, formatted as GitLab Runner
 * writes them (runner-jobs-docker.md §2.11 "Markers written by the
 * runner"): collapsible section markers, and coloured message lines.
 * Pure: everything is appended to a caller's sbuf.
 */
#ifndef FL_JOBLOG_H
#define FL_JOBLOG_H

#include <stdint.h>

struct sbuf;

#define JOBLOG_ERASE	"\r\033[0K"	/* ends a section marker */
#define JOBLOG_RESET	"\033[0;m"
#define JOBLOG_BOLD_CYAN	"\033[36;1m"
#define JOBLOG_BOLD_GREEN	"\033[32;1m"
#define JOBLOG_YELLOW		"\033[0;33m"	/* GitLab's ANSI_YELLOW */
#define JOBLOG_BOLD_RED		"\033[31;1m"

/*
 * "section_start:<unix>:<name>\r\e[0K" ("section_start:<unix>:<name>
 * [collapsed=true]\r\e[0K" when collapsed), then, when header is not NULL,
 * the header line in bold cyan: "\e[36;1m<header>\e[0;m\n".
 */
void joblog_section_start(struct sbuf *out, int64_t unix_time,
    const char *name, const char *header, int collapsed);
/* "section_end:<unix>:<name>\r\e[0K" */
void joblog_section_end(struct sbuf *out, int64_t unix_time,
    const char *name);

enum joblog_level {
	JOBLOG_PLAIN,
	JOBLOG_NOTICE,		/* bold green */
	JOBLOG_WARNING,		/* yellow, as GitLab's warnings ("\e[0;33m") */
	JOBLOG_ERROR		/* bold red */
};

/*
 * One runner message line: the colour, the text, the reset, "\n"
 * (JOBLOG_PLAIN: the text and "\n" only).  A "\n" at the end of the text
 * is not doubled.  No "WARNING: "/"ERROR: " is added (GitLab's
 * Warningln and Errorln add them): callers put them in fmt.
 */
void joblog_line(struct sbuf *out, enum joblog_level lv, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* The colour that starts a level's lines ("" for JOBLOG_PLAIN). */
const char *joblog_color(enum joblog_level lv);

#endif
