/* ulid: job identifiers (26 Crockford base32 characters: 48-bit millisecond
 * time, 80 random bits), monotonic within a millisecond. Pure except for
 * the random source. */
#ifndef RUND_ULID_H
#define RUND_ULID_H

#include <stddef.h>
#include <stdint.h>

#define ULID_LEN 26

struct ulid {
	uint8_t b[16]; /* big-endian: 6 bytes time, 10 bytes randomness */
};

struct ulid_gen {
	uint64_t last_ms;
	struct ulid last;
};

/* A new ULID for time now_ms: fresh randomness (getrandom) in a new
 * millisecond, the previous value + 1 within the same or an earlier one.
 * 0, or -EOVERFLOW when the random part of this millisecond is exhausted,
 * or -errno from getrandom. */
int ulid_next(struct ulid_gen *g, uint64_t now_ms, struct ulid *out);

/* Canonical text: 26 upper-case characters and a NUL. */
void ulid_format(const struct ulid *u, char out[ULID_LEN + 1]);

/* Strict parse: exactly 26 characters of the Crockford alphabet (0-9 A-Z
 * without I L O U), in either case, first character 0-7. 0 or -EINVAL.
 * ulid_format() gives the canonical upper-case text back. */
int ulid_parse(const char *s, size_t len, struct ulid *out);

#endif
