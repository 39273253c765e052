/* proctitle: what ps shows for a process. A supervisor is started as
 * `rund execute -fifo PATH` before it knows its job; once it does, it
 * rewrites its command line to `rund execute <ULID>` so operators can
 * tell supervisors apart (ps, top, /proc/PID/cmdline).
 *
 * The kernel shows the memory that held argv and, right after it, the
 * environment. proctitle_init records that area and moves the environment
 * to the heap so the area can be reused; the record is the caller's to keep
 * and pass to proctitle_set. */
#ifndef RUND_PROCTITLE_H
#define RUND_PROCTITLE_H

#include <stddef.h>

struct proctitle {
	char *start; /* argv[0] */
	size_t len;  /* bytes up to the end of the last contiguous string */
};

/* Call once, early in main, with main's argc and argv. */
struct proctitle proctitle_init(int argc, char **argv);

/* Replaces the command line with title, cut to the space available (at
 * least the original argv's length). Does nothing for a NULL or empty
 * area. */
void proctitle_set(const struct proctitle *pt, const char *title);

#endif
