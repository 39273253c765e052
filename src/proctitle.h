/* proctitle: what ps shows for a process. A supervisor is started as
 * `rund execute -fifo PATH` before it knows its job; once it does, it
 * rewrites its command line to `rund execute <ULID>` so operators can
 * tell supervisors apart (ps, top, /proc/PID/cmdline).
 *
 * The kernel shows the memory that held argv and, right after it, the
 * environment. proctitle_init records that area and moves the environment
 * to the heap so the area can be reused; it keeps that record in this
 * module's one static variable (a process has one command line). */
#ifndef RUND_PROCTITLE_H
#define RUND_PROCTITLE_H

/* Call once, early in main, with main's argc and argv. */
void proctitle_init(int argc, char **argv);

/* Replaces the command line with title, cut to the space available (at
 * least the original argv's length). Does nothing before proctitle_init. */
void proctitle_set(const char *title);

#endif
