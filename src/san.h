/* san: sets of certificate subject alternative names, as the strings
 * "DNS:name", "URI:uri", "IP:addr" and "email:addr". Ownership of jobs is
 * decided by whether two sets intersect (DESIGN §4). Pure module. */
#ifndef RUND_SAN_H
#define RUND_SAN_H

#include <stdbool.h>
#include <stddef.h>

struct san_set {
	size_t n;
	char **names; /* owned; kept sorted and unique */
};

/* Adds a copy of name (DNS names are lower-cased so comparison is case
 * insensitive as DNS is). Duplicates are ignored. */
void san_set_add(struct san_set *set, const char *name);
bool san_set_intersects(const struct san_set *a, const struct san_set *b);
void san_set_copy(struct san_set *dst, const struct san_set *src);
void san_set_free(struct san_set *set); /* empties; accepts an empty set */

#endif
