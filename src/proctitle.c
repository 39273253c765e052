/* proctitle: rewrite the command line ps shows (see proctitle.h). */
#include <string.h>
#include <unistd.h>

#include "proctitle.h"
#include "util.h"

extern char **environ;

struct proctitle proctitle_init(int argc, char **argv)
{
	struct proctitle area = {NULL, 0};
	if (argc < 1 || !argv[0])
		return area;
	char *end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	/* The environment usually follows argv; take it over too, after
	 * copying it, so getenv keeps working. */
	size_t n = 0;
	while (environ[n])
		n++;
	char **copy = xcalloc(n + 1, sizeof *copy);
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		copy[i] = xstrdup(environ[i]);
	}
	environ = copy;
	area.start = argv[0];
	area.len = (size_t)(end - argv[0]);
	return area;
}

void proctitle_set(const struct proctitle *pt, const char *title)
{
	if (!pt || !pt->start || pt->len < 2)
		return;
	size_t n = strlen(title);
	if (n > pt->len - 1)
		n = pt->len - 1;
	memcpy(pt->start, title, n);
	/* NUL-filled: the kernel shows the area up to the first NUL when the
	 * last byte is NUL. */
	memset(pt->start + n, 0, pt->len - n);
}
