/* Text for the FL_ERR_* codes of err.h. */
#include "err.h"

const char *
err_str(int code)
{
	switch (code) {
	case FL_OK:		return "success";
	case FL_ERR_NOMEM:	return "out of memory";
	case FL_ERR_INVAL:	return "invalid value";
	case FL_ERR_PARSE:	return "malformed input";
	case FL_ERR_RANGE:	return "value out of range";
	case FL_ERR_IO:		return "input/output error";
	case FL_ERR_NOTFOUND:	return "not found";
	case FL_ERR_TOOBIG:	return "input too large";
	case FL_ERR_TIMEOUT:	return "deadline exceeded";
	case FL_ERR_PROTO:	return "protocol error";
	case FL_ERR_EXISTS:	return "already exists";
	case FL_ERR_CLOSED:	return "connection closed";
	case FL_ERR_AGAIN:	return "try again";
	case FL_ERR_INTERNAL:	return "internal error";
	default:		return "unknown error";
	}
}
