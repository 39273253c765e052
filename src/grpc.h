/* grpc: the gRPC-over-HTTP/2 pieces that are pure data handling: status
 * codes, the 5-byte length-prefixed message framing, grpc-timeout values
 * and grpc-message percent-encoding. No I/O; used by server and client. */
#ifndef RUND_GRPC_H
#define RUND_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum grpc_code {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)
#define GRPC_PREFIX_LEN 5

/* "NOT_FOUND" for GRPC_NOT_FOUND; "UNKNOWN_CODE" outside the range. */
const char *grpc_code_name(int code);

/* Writes the 5-byte prefix of an uncompressed message of len bytes. */
void grpc_prefix_encode(uint8_t out[GRPC_PREFIX_LEN], uint32_t len);

/* Incremental decoder for a stream of length-prefixed messages, fed DATA
 * frame payloads in arbitrary pieces. */
struct grpc_decoder {
	size_t max_message; /* messages above this fail with -EMSGSIZE */
	uint8_t prefix[GRPC_PREFIX_LEN];
	size_t prefix_have;
	uint8_t *msg; /* owned buffer of the message being assembled */
	size_t msg_len, msg_have;
	size_t msg_cap; /* allocated size of msg; grows with bytes received */
	bool compressed;
};

void grpc_decoder_init(struct grpc_decoder *d, size_t max_message);
void grpc_decoder_free(struct grpc_decoder *d);

/* Called for each complete message; returns 0 to continue, non-zero to stop
 * decoding (grpc_decoder_feed then returns that value). `msg` is valid only
 * during the call. */
typedef int (*grpc_message_fn)(void *ctx, const uint8_t *msg, size_t len, bool compressed);

/* Feeds bytes; calls fn for every message completed. Returns 0, fn's
 * non-zero value, -EMSGSIZE (a prefix announces more than max_message; then
 * msg_len holds the announced length) or -EPROTO (a prefix flag byte other
 * than 0 or 1). After a non-zero return the decoder must not be fed again. */
int grpc_decoder_feed(struct grpc_decoder *d, const uint8_t *data, size_t len, grpc_message_fn fn,
		      void *ctx);
/* True when no partial message is pending (a request ended cleanly). */
bool grpc_decoder_idle(const struct grpc_decoder *d);

/* True when a content-type value v[0..len) (not NUL-terminated) names gRPC
 * with protobuf messages: exactly "application/grpc" or
 * "application/grpc+proto". Both ends refuse anything else ("+json" would
 * be parsed as protobuf). */
bool grpc_content_type_ok(const char *v, size_t len);

/* Parses a grpc-timeout header value ("1S", "250m", "100u", 1-8 digits and
 * one unit of H M S m u n) into nanoseconds, saturating. 0 or -EINVAL. */
int grpc_timeout_parse(const char *s, size_t len, uint64_t *ns);
/* Formats ns as a grpc-timeout value (at most 8 digits, coarsest exact-
 * enough unit) into out (>= 10 bytes). */
void grpc_timeout_format(uint64_t ns, char *out, size_t cap);

/* Percent-encodes a grpc-message value: bytes outside 0x20..0x7e and '%'
 * become %XX. Returns a malloc'd string. */
char *grpc_message_encode(const char *msg);
/* Decodes the above (invalid escapes are kept literally). malloc'd. */
char *grpc_message_decode(const char *s, size_t len);

#endif
