#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int neg(int code)
{
	return code > 0 ? -code : -EIO;
}

int err_set(struct err *err, int code, enum err_kind kind, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
		err->kind = kind;
	}
	return neg(code);
}

int err_sys(struct err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sizeof err->msg)
			snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(code));
		err->code = code;
		err->kind = ERR_INTERNAL;
	}
	return neg(code);
}

int err_wrap(struct err *err, const char *fmt, ...)
{
	if (!err)
		return -EIO;
	char prefix[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	/* Room for both whole, then cut to size: the newest context wins. */
	char joined[2 * ERR_MSG_MAX + 2];
	snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
	snprintf(err->msg, sizeof err->msg, "%.*s", ERR_MSG_MAX - 1, joined);
	return neg(err->code);
}

void err_clear(struct err *err)
{
	if (err) {
		err->code = 0;
		err->kind = ERR_KIND_NONE;
		err->msg[0] = '\0';
	}
}
