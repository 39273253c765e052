#include "san.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void san_set_add(struct san_set *set, const char *name)
{
	char *s = xstrdup(name);
	if (strncmp(s, "DNS:", 4) == 0)
		for (char *p = s + 4; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->names[i], s) == 0) {
			free(s);
			return;
		}
	}
	set->names = xrealloc(set->names, (set->n + 1) * sizeof *set->names);
	set->names[set->n++] = s;
	qsort(set->names, set->n, sizeof *set->names, cmp);
}

bool san_set_intersects(const struct san_set *a, const struct san_set *b)
{
	size_t i = 0, j = 0;
	while (i < a->n && j < b->n) {
		int c = strcmp(a->names[i], b->names[j]);
		if (c == 0)
			return true;
		if (c < 0)
			i++;
		else
			j++;
	}
	return false;
}

void san_set_copy(struct san_set *dst, const struct san_set *src)
{
	for (size_t i = 0; i < src->n; i++)
		san_set_add(dst, src->names[i]);
}

void san_set_free(struct san_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->names[i]);
	free(set->names);
	set->names = NULL;
	set->n = 0;
}
