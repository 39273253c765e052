/* err: an error value carrying an errno-style code and a message chain.
 *
 * Functions that can fail return 0 or a negative errno value and, when given
 * a non-NULL struct err, describe the failure there. Callers add context on
 * the way up with err_wrap(): "start job X: create cgroup Y: Permission
 * denied". Errors become gRPC status codes in exactly one place (api.c). */
#ifndef RUND_ERR_H
#define RUND_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 512

/* Kinds refine the errno where the API needs more than errno says. */
enum err_kind {
	ERR_KIND_NONE = 0,
	ERR_INVALID,	  /* the caller's request is malformed */
	ERR_NOT_FOUND,	  /* unknown object (or not the caller's) */
	ERR_PRECONDITION, /* the system lacks something the request needs */
	ERR_PERMISSION,	  /* the caller may not do this */
	ERR_EXHAUSTED,	  /* a resource limit was reached */
	ERR_INTERNAL,	  /* our fault or the system's */
};

struct err {
	int code; /* positive errno, 0 when unset */
	enum err_kind kind;
	char msg[ERR_MSG_MAX];
};

/* Sets err (if non-NULL) and returns -code, so callers can write
 * `return err_set(err, ENOENT, ERR_NOT_FOUND, "no job %s", id);`. */
int err_set(struct err *err, int code, enum err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like err_set with ERR_INTERNAL and ": strerror(code)" appended. */
int err_sys(struct err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes context to an existing message; returns -err->code (or -EIO). */
int err_wrap(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *err);

#endif
