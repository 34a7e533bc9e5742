/*
 * One error space for all of flotilla's library code.  Functions return 0 on
 * success or a negative FL_ERR_* value; err_str() turns it into text.  Callers
 * add context when they log (the library itself never prints).
 */
#ifndef FL_ERR_H
#define FL_ERR_H

enum fl_err {
	FL_OK = 0,
	FL_ERR_NOMEM = -1,	/* allocation failed */
	FL_ERR_INVAL = -2,	/* invalid argument or value */
	FL_ERR_PARSE = -3,	/* malformed input */
	FL_ERR_RANGE = -4,	/* value out of bounds */
	FL_ERR_IO = -5,		/* read or write failed (see errno) */
	FL_ERR_NOTFOUND = -6,	/* no such file, key or object */
	FL_ERR_TOOBIG = -7,	/* input over its size limit */
	FL_ERR_TIMEOUT = -8,	/* deadline passed */
	FL_ERR_PROTO = -9,	/* peer broke the protocol */
	FL_ERR_EXISTS = -10,	/* already exists */
	FL_ERR_CLOSED = -11,	/* peer or channel closed */
	FL_ERR_AGAIN = -12,	/* would block, try later */
	FL_ERR_INTERNAL = -13,	/* broken invariant */
	FL_ERR_MAX_ = -14
};

/* Static text for an FL_ERR_* code; never NULL. */
const char *err_str(int code);

#endif
