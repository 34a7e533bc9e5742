/*
 * Which libcurl transport failures are worth another attempt.  Shared by
 * the manager's GitLab client and fleeting-plugin-aws, so that both retry
 * the same network trouble (a dropped connection, a timeout, a failed
 * TLS handshake) and give up at once on the rest (a bad URL, a refused
 * certificate, a failed write of our own).
 */
#ifndef FL_CURLRETRY_H
#define FL_CURLRETRY_H

/* 1 for a CURLcode that may go away on its own, else 0. */
int curlretry_transient(int code);

#endif
