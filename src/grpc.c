/* grpc: pure gRPC data handling (see grpc.h). Everything here works on
 * bytes that came from a peer, so every length is checked before use and
 * nothing aborts on bad input. */
#include "grpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const code_names[] = {
	[GRPC_OK] = "OK",
	[GRPC_CANCELLED] = "CANCELLED",
	[GRPC_UNKNOWN] = "UNKNOWN",
	[GRPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[GRPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[GRPC_NOT_FOUND] = "NOT_FOUND",
	[GRPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[GRPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[GRPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[GRPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[GRPC_ABORTED] = "ABORTED",
	[GRPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[GRPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[GRPC_INTERNAL] = "INTERNAL",
	[GRPC_UNAVAILABLE] = "UNAVAILABLE",
	[GRPC_DATA_LOSS] = "DATA_LOSS",
	[GRPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *grpc_code_name(int code)
{
	if (code < 0 || (size_t)code >= ARRAY_SIZE(code_names))
		return "UNKNOWN_CODE";
	return code_names[code];
}

void grpc_prefix_encode(uint8_t out[GRPC_PREFIX_LEN], uint32_t len)
{
	out[0] = 0; /* never compressed: we only speak identity */
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

void grpc_decoder_init(struct grpc_decoder *d, size_t max_message)
{
	memset(d, 0, sizeof *d);
	d->max_message = max_message ? max_message : GRPC_DEFAULT_MAX_MESSAGE;
}

void grpc_decoder_free(struct grpc_decoder *d)
{
	free(d->msg);
	d->msg = NULL;
	d->msg_cap = d->msg_len = d->msg_have = 0;
	d->prefix_have = 0;
}

bool grpc_decoder_idle(const struct grpc_decoder *d)
{
	return d->prefix_have == 0;
}

/* Validates a complete prefix and sets up the message it announces. */
static int start_message(struct grpc_decoder *d)
{
	if (d->prefix[0] > 1)
		return -EPROTO;
	d->compressed = d->prefix[0] == 1;
	d->msg_len = (size_t)d->prefix[1] << 24 | (size_t)d->prefix[2] << 16 |
		     (size_t)d->prefix[3] << 8 | (size_t)d->prefix[4];
	d->msg_have = 0;
	if (d->msg_len > d->max_message)
		return -EMSGSIZE;
	return 0;
}

/* After a message was delivered: a large buffer is not kept around for
 * the next message of a stream. */
static void trim_buffer(struct grpc_decoder *d)
{
	if (d->msg_cap > 64 * 1024) {
		free(d->msg);
		d->msg = NULL;
		d->msg_cap = 0;
	}
}

int grpc_decoder_feed(struct grpc_decoder *d, const uint8_t *data, size_t len, grpc_message_fn fn,
		      void *ctx)
{
	while (len > 0 || (d->prefix_have == GRPC_PREFIX_LEN && d->msg_have == d->msg_len)) {
		if (d->prefix_have < GRPC_PREFIX_LEN) {
			size_t n = GRPC_PREFIX_LEN - d->prefix_have;
			if (n > len)
				n = len;
			memcpy(d->prefix + d->prefix_have, data, n);
			d->prefix_have += n;
			data += n;
			len -= n;
			if (d->prefix_have < GRPC_PREFIX_LEN)
				return 0;
			int r = start_message(d);
			if (r < 0)
				return r;
		}

		size_t want = d->msg_len - d->msg_have;
		const uint8_t *msg;
		if (d->msg_have == 0 && len >= want) {
			/* The whole message is in this piece: no copy. */
			msg = data;
			data += want;
			len -= want;
		} else {
			size_t n = want < len ? want : len;
			if (n == 0)
				return 0; /* the prefix ended this piece */
			/* Grow with the bytes that actually arrived, so a prefix
			 * that lies about its length cannot make us reserve
			 * max_message up front. */
			if (d->msg_have + n > d->msg_cap) {
				size_t cap = d->msg_cap ? d->msg_cap : 4096;
				while (cap < d->msg_have + n)
					cap *= 2;
				if (cap > d->msg_len)
					cap = d->msg_len;
				d->msg = xrealloc(d->msg, cap);
				d->msg_cap = cap;
			}
			memcpy(d->msg + d->msg_have, data, n);
			d->msg_have += n;
			data += n;
			len -= n;
			if (d->msg_have < d->msg_len)
				return 0;
			msg = d->msg;
		}
		size_t mlen = d->msg_len;
		d->prefix_have = 0;
		d->msg_have = d->msg_len = 0;
		int r = fn(ctx, msg ? msg : (const uint8_t *)"", mlen, d->compressed);
		trim_buffer(d);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Units of grpc-timeout, coarsest first. */
static const struct {
	char unit;
	uint64_t ns;
} timeout_units[] = {
	{'H', 3600ull * 1000000000ull},
	{'M', 60ull * 1000000000ull},
	{'S', 1000000000ull},
	{'m', 1000000ull},
	{'u', 1000ull},
	{'n', 1ull},
};

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE 99999999ull

bool grpc_content_type_ok(const char *v, size_t len)
{
	static const char plain[] = "application/grpc", proto[] = "application/grpc+proto";
	return (len == sizeof plain - 1 && memcmp(v, plain, len) == 0) ||
	       (len == sizeof proto - 1 && memcmp(v, proto, len) == 0);
}

int grpc_timeout_parse(const char *s, size_t len, uint64_t *ns)
{
	if (len < 2 || len > TIMEOUT_MAX_DIGITS + 1)
		return -EINVAL;
	uint64_t v = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	for (size_t i = 0; i < ARRAY_SIZE(timeout_units); i++) {
		if (s[len - 1] != timeout_units[i].unit)
			continue;
		uint64_t mul = timeout_units[i].ns;
		*ns = v > UINT64_MAX / mul ? UINT64_MAX : v * mul;
		return 0;
	}
	return -EINVAL;
}

void grpc_timeout_format(uint64_t ns, char *out, size_t cap)
{
	/* The coarsest unit that represents ns exactly in 8 digits. */
	for (size_t i = 0; i < ARRAY_SIZE(timeout_units); i++) {
		uint64_t u = timeout_units[i].ns;
		if (ns % u == 0 && ns / u <= TIMEOUT_MAX_VALUE) {
			snprintf(out, cap, "%llu%c", (unsigned long long)(ns / u),
				 timeout_units[i].unit);
			return;
		}
	}
	/* Not exact anywhere: the finest unit that fits, rounded up so a
	 * deadline is never shortened. */
	for (size_t i = ARRAY_SIZE(timeout_units); i-- > 0;) {
		uint64_t u = timeout_units[i].ns;
		uint64_t v = ns / u + (ns % u != 0);
		if (v <= TIMEOUT_MAX_VALUE) {
			snprintf(out, cap, "%llu%c", (unsigned long long)v, timeout_units[i].unit);
			return;
		}
	}
	snprintf(out, cap, "%lluH", TIMEOUT_MAX_VALUE);
}

static bool message_plain(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e && c != '%';
}

char *grpc_message_encode(const char *msg)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		n += message_plain(*p) ? 1 : 3;
	char *out = xmalloc(n + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (message_plain(*p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *grpc_message_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}
