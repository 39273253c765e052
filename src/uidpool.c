/* uidpool: a bitmap over the range and a round-robin cursor. */
#include "uidpool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct uidpool {
	uint32_t first;
	uint32_t size; /* uids in the range */
	uint32_t next; /* offset where the next take starts looking */
	uint32_t nheld;
	uint64_t *bits; /* 1 = held */
};

int uidpool_parse_range(const char *s, uint32_t *first, uint32_t *last, struct err *err)
{
	const char *dash = strchr(s, '-');
	uint64_t a, b;
	if (!dash)
		return err_set(err, EINVAL, ERR_INVALID, "uid range \"%s\": want FIRST-LAST", s);
	_cleanup_free_ char *lo = xstrndup(s, (size_t)(dash - s));
	if (parse_u64(lo, &a) < 0 || parse_u64(dash + 1, &b) < 0 || a > b || b >= 4294967295u)
		return err_set(err, EINVAL, ERR_INVALID,
			       "uid range \"%s\": want FIRST-LAST, decimal, FIRST <= LAST < "
			       "4294967295",
			       s);
	if (b - a + 1 > UIDPOOL_MAX_SIZE)
		return err_set(err, EINVAL, ERR_INVALID, "uid range \"%s\" is larger than %u uids",
			       s, UIDPOOL_MAX_SIZE);
	/* Below 4294967295 only 0 (root), 65534 (nobody) and 65535 (the
	 * 16-bit -1) are special. */
	if (a == 0 || (a <= 65535 && b >= 65534))
		return err_set(err, EINVAL, ERR_INVALID, "uid range \"%s\" contains uid %s", s,
			       a == 0 ? "0 (root)" : "65534 or 65535 (nobody, 16-bit -1)");
	*first = (uint32_t)a;
	*last = (uint32_t)b;
	return 0;
}

struct uidpool *uidpool_new(uint32_t first, uint32_t last)
{
	struct uidpool *p = xcalloc(1, sizeof *p);
	p->first = first;
	p->size = last - first + 1;
	p->bits = xcalloc((p->size + 63) / 64, sizeof *p->bits);
	return p;
}

void uidpool_free(struct uidpool *p)
{
	if (!p)
		return;
	free(p->bits);
	free(p);
}

static bool held(const struct uidpool *p, uint32_t off)
{
	return p->bits[off / 64] >> (off % 64) & 1;
}

int uidpool_take(struct uidpool *p, uint32_t *uid)
{
	if (p->nheld == p->size)
		return -EUSERS;
	uint32_t off = p->next;
	/* Skip whole held words; at most one pass over the range. */
	for (;;) {
		if (off >= p->size)
			off = 0;
		if (off % 64 == 0 && p->bits[off / 64] == UINT64_MAX) {
			off += 64;
			continue;
		}
		if (!held(p, off))
			break;
		off++;
	}
	p->bits[off / 64] |= 1ull << (off % 64);
	p->nheld++;
	p->next = off + 1;
	*uid = p->first + off;
	return 0;
}

bool uidpool_contains(const struct uidpool *p, uint32_t uid)
{
	return uid >= p->first && uid - p->first < p->size;
}

int uidpool_hold(struct uidpool *p, uint32_t uid)
{
	if (!uidpool_contains(p, uid))
		return -ERANGE;
	uint32_t off = uid - p->first;
	if (held(p, off))
		return -EEXIST;
	p->bits[off / 64] |= 1ull << (off % 64);
	p->nheld++;
	return 0;
}

void uidpool_release(struct uidpool *p, uint32_t uid)
{
	if (!uidpool_contains(p, uid))
		return;
	uint32_t off = uid - p->first;
	if (!held(p, off))
		return;
	p->bits[off / 64] &= ~(1ull << (off % 64));
	p->nheld--;
}

void uidpool_resume_after(struct uidpool *p, uint32_t uid)
{
	if (uidpool_contains(p, uid))
		p->next = uid - p->first + 1;
}

uint32_t uidpool_held(const struct uidpool *p)
{
	return p->nheld;
}
