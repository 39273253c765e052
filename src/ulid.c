/* ulid: generation, canonical formatting and strict parsing (ulid.h). */
#include "ulid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Fills n bytes from the kernel's CSPRNG; getrandom may return short reads
 * for large requests or be interrupted, so loop. */
static int fill_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void set_time(struct ulid *u, uint64_t ms)
{
	for (int i = 5; i >= 0; i--) {
		u->b[i] = (uint8_t)(ms & 0xff);
		ms >>= 8;
	}
}

int ulid_next(struct ulid_gen *g, uint64_t now_ms, struct ulid *out)
{
	/* 48 bits of time: clamp rather than wrap for absurd clocks. */
	if (now_ms > 0xffffffffffffULL)
		now_ms = 0xffffffffffffULL;

	if (g->last_ms != 0 && now_ms <= g->last_ms) {
		/* Same millisecond, or the clock went backwards: keep the last
		 * time and increment the 80-bit random part so ids stay ordered. */
		struct ulid next = g->last;
		int i;
		for (i = 15; i >= 6; i--) {
			if (++next.b[i] != 0)
				break;
		}
		if (i < 6)
			return -EOVERFLOW;
		g->last = next;
		*out = next;
		return 0;
	}

	struct ulid u;
	set_time(&u, now_ms);
	int r = fill_random(u.b + 6, 10);
	if (r < 0)
		return r;
	g->last_ms = now_ms;
	g->last = u;
	*out = u;
	return 0;
}

void ulid_format(const struct ulid *u, char out[ULID_LEN + 1])
{
	/* 128 bits as 26 base32 digits: the first digit carries the top 3 bits
	 * (130 - 128 = 2 implicit leading zero bits). Walk from the least
	 * significant end, 5 bits at a time. */
	unsigned acc = 0, nbits = 0;
	int byte = 15;
	for (int i = ULID_LEN - 1; i >= 0; i--) {
		if (nbits < 5 && byte >= 0) {
			acc |= (unsigned)u->b[byte--] << nbits;
			nbits += 8;
		}
		out[i] = alphabet[acc & 31];
		acc >>= 5;
		nbits = nbits >= 5 ? nbits - 5 : 0;
	}
	out[ULID_LEN] = '\0';
}

static int decode_char(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	/* Crockford base32 is case-insensitive; ulid_format writes upper case. */
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	if (c < 'A' || c > 'Z')
		return -1;
	const char *p = memchr(alphabet + 10, c, 22);
	return p ? (int)(p - alphabet) : -1;
}

int ulid_parse(const char *s, size_t len, struct ulid *out)
{
	if (!s || len != ULID_LEN || s[0] < '0' || s[0] > '7')
		return -EINVAL;
	struct ulid u;
	memset(&u, 0, sizeof u);
	unsigned acc = 0, nbits = 0;
	int byte = 15;
	for (int i = ULID_LEN - 1; i >= 0; i--) {
		int v = decode_char(s[i]);
		if (v < 0)
			return -EINVAL;
		acc |= (unsigned)v << nbits;
		nbits += 5;
		while (nbits >= 8 && byte >= 0) {
			u.b[byte--] = (uint8_t)(acc & 0xff);
			acc >>= 8;
			nbits -= 8;
		}
	}
	/* The 2 bits left in acc lie beyond bit 127; the 0-7 check on the
	 * first character already forced them to zero. */
	*out = u;
	return 0;
}
