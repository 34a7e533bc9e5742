/*
 * systemd's readiness protocol without libsystemd: when systemd starts the
 * manager with Type=notify (or notify-reload) it sets NOTIFY_SOCKET to a
 * unix datagram socket (a path, or "@name" for the abstract namespace) and
 * waits for "READY=1" there.  Each call sends one datagram of
 * newline-separated KEY=VALUE assignments.  Without NOTIFY_SOCKET every
 * call is a no-op, so the manager calls these unconditionally.
 *
 * Return values, as sd_notify(3): 1 sent, 0 nothing to do (no
 * NOTIFY_SOCKET, or the watchdog is not ours), negative FL_ERR_* on
 * failure (FL_ERR_INVAL: an unusable NOTIFY_SOCKET; FL_ERR_IO: the send
 * failed, errno kept).
 */
#ifndef FL_SDNOTIFY_H
#define FL_SDNOTIFY_H

#include <stdint.h>

/* Send `msg` (assignments separated by "\n") to socket `addr` (path or
 * "@abstract"); the others read NOTIFY_SOCKET and call this. */
int sdnotify_send(const char *addr, const char *msg);

/* msg to $NOTIFY_SOCKET. */
int sdnotify(const char *msg);
/* printf-style. */
int sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "READY=1", with "STATUS=<status>" when status is not NULL. */
int sdnotify_ready(const char *status);
/* "STOPPING=1". */
int sdnotify_stopping(void);
/*
 * "RELOADING=1" and "MONOTONIC_USEC=<t>" (Type=notify-reload wants both
 * in one datagram); t is CLOCK_MONOTONIC in microseconds, 0: read it now.
 * Send sdnotify_ready() once the reload is done.
 */
int sdnotify_reloading(uint64_t monotonic_usec);
/* "STATUS=<text>" (a newline in text would start another assignment, so
 * newlines are sent as spaces). */
int sdnotify_status(const char *text);
/* "WATCHDOG=1" if the watchdog is ours (see sdnotify_watchdog_usec()). */
int sdnotify_watchdog(void);

/*
 * The watchdog interval in microseconds from WATCHDOG_USEC, 0 if none or
 * not meant for this process (WATCHDOG_PID set to another pid), or if the
 * value is malformed.  Ping at half of it.
 */
uint64_t sdnotify_watchdog_usec(void);

#endif
