/* forkserver: supervisors forked from a process that has already started,
 * instead of one exec of rund each.
 *
 * An exec of rund costs about a millisecond of CPU here (the dynamic
 * loader, ~19,000 relocations of a PIE with OpenSSL inside, libc's and
 * OpenSSL's CPU probing), and the daemon starts one supervisor per job.
 * So it starts `rund execute -spares` once; that process does nothing but
 * fork supervisors when asked, each of which then runs exactly as
 * `rund execute -fifo PATH` would (supervisor.h).
 *
 * Protocol, over a SOCK_SEQPACKET socketpair that is the server's fd 0:
 *   request: struct forkserver_req, with the supervisor's stdout (the
 *            write end of its report pipe) passed as SCM_RIGHTS;
 *   reply:   an int32_t, the supervisor's pid or -errno.
 * The supervisor is cloned with CLONE_PARENT: it is the daemon's child,
 * reaped by the daemon exactly like one it spawned itself, and the server
 * never has children of its own. EOF on fd 0 (the daemon is gone) ends
 * the server. */
#ifndef RUND_FORKSERVER_H
#define RUND_FORKSERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct proctitle;

#define FORKSERVER_IDLE 1u /* the supervisor starts as SCHED_IDLE (a spare) */
/* The server is in the jobs' daemon group (the daemon's, or joined at its
 * start, `rund execute -spares -cgroup R`): the supervisor is born there
 * and is told so (`-placed`, supervisor.h). */
#define FORKSERVER_PLACED 2u

struct forkserver_req {
	uint32_t flags;	     /* FORKSERVER_*; any other bit: refused */
	char fifo[PATH_MAX]; /* NUL-terminated: the supervisor's -fifo */
};

/* The daemon's side: asks the server on sock for a supervisor on fifo with
 * report_w as its stdout and flags (FORKSERVER_*), waiting at most
 * timeout_ms for the answer. 0 with *pid set, or -errno with err set (the
 * server is then of no more use: the caller stops it). */
int forkserver_request(int sock, const char *fifo, int report_w, uint32_t flags, int timeout_ms,
		       pid_t *pid, struct err *err);

/* The server: `rund execute -spares`, fd 0 the socket. Each supervisor
 * runs run("execute", "-fifo", PATH [, "-placed"]) with pt, as main
 * would, and exits with what it returns. Returns 0 at EOF, 1 on a broken
 * socket. */
typedef int forkserver_run_fn(int argc, char **argv, const struct proctitle *pt);
int forkserver_main(const struct proctitle *pt, forkserver_run_fn *run);

#endif
