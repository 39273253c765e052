/* suppool: the daemon's supervisor processes before they run a job.
 *
 * A supervisor is `rund execute -fifo <state_dir>/run/<n>` (supervisor.h)
 * with stdout a pipe back to us (its report, handoff.h). The pool keeps
 * SUPPOOL_SPARES of them idle and waiting for their request, so that
 * Start does not wait for a new process, and reuses FIFOs (creating and
 * deleting an inode per Start showed up as ext4 inode allocation at the
 * top of the Start profile). A spare that dies is reaped and forgotten;
 * the pool is refilled after the next take, not at once, so a supervisor
 * that cannot start at all does not make the daemon spin.
 *
 * Spares start as SCHED_IDLE: what they prepare ahead (their start, a
 * confined job's namespaces and mounts) runs on CPU time nobody else
 * wants, so it never slows the Starts being served. The one taken for a
 * Start is raised to SCHED_OTHER first, and raises its job's init. */
#ifndef RUND_SUPPOOL_H
#define RUND_SUPPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "err.h"
#include "loop.h"

#define SUPPOOL_SPARES 2

/* --- FIFO names ---------------------------------------------------------
 * FIFOs are named by small numbers; a released one is handed out again
 * (last released first) before a new number is used. Pure. */
struct fifo_ids {
	unsigned *free; /* released, ready for reuse */
	size_t n_free, cap_free;
	unsigned next; /* the lowest number never handed out */
};

/* Sets *id; returns true when FIFO *id does not exist yet (create it). */
bool fifo_ids_take(struct fifo_ids *f, unsigned *id);
void fifo_ids_put(struct fifo_ids *f, unsigned id);
void fifo_ids_free(struct fifo_ids *f);

/* --- supervisors ---------------------------------------------------------- */

struct suppool;

/* A supervisor of ours. The fds are the pool's until sup_release, except
 * that the caller may steal pidfd. */
struct sup {
	struct suppool *pool;
	pid_t pid;
	int pidfd, report_fd, fifo_fd; /* report_fd is non-blocking */
	unsigned fifo;		       /* its FIFO is <state_dir>/run/<fifo> */
	struct loop_watch *watch;      /* pidfd, while a spare */
	TAILQ_ENTRY(sup) link;	       /* in the spare list */
};

/* exe: the rund binary; state_dir and run_fd: borrowed, live longer than
 * the pool (run_fd is <state_dir>/run). cgroup_root: NULL when we run in
 * the jobs' daemon group ourselves, so that every supervisor is born
 * there; else the root (borrowed) whose daemon group the fork server
 * joins when it starts, so that its supervisors are. Supervisors born
 * there are told so (`-placed`, supervisor.h). warm (copied; NULL for
 * none) is
 * written to every spare as its first frame, before any request
 * (jobspec_warm_encode): it then prepares its job's sandbox while it
 * waits. With forkserver, supervisors are forked by `exe execute
 * -spares` (forkserver.h), started when first needed; if it fails they
 * are spawned, and it is started again, a bounded number of times. Spares
 * are prepared from the loop, not inside this call. */
struct suppool *suppool_new(struct loop *loop, const char *exe, const char *state_dir, int run_fd,
			    const char *warm, size_t warm_len, bool forkserver,
			    const char *cgroup_root);
/* Idle spares see EOF on their FIFO and exit on their own. */
void suppool_free(struct suppool *pool);

/* A ready supervisor: the oldest live spare, else (or with fresh) one
 * spawned now. fresh is for a request whose spare died before reading it:
 * spares killed together die together, and the next may be dying too. 0
 * with *out set (the caller's until sup_release/sup_kill), or -errno. */
int suppool_take(struct suppool *pool, bool fresh, struct sup **out, struct err *err);

/* Writes the request for job `id` (handoff.h) into the supervisor's FIFO,
 * in one write that never blocks. -E2BIG (ERR_EXHAUSTED) when the pipe
 * cannot hold it, or -errno. */
int sup_send(struct sup *sp, const char *id, const char *spec, size_t len, struct err *err);
/* True when the supervisor left (part of) its request unread. */
bool sup_request_unread(struct sup *sp);
/* Closes our ends and releases its FIFO: for reuse when `reported` (the
 * request was read whole), else it is removed. The process is not
 * touched. Accepts NULL. */
void sup_release(struct sup *sp, bool reported);
/* Kills the supervisor (if still alive) and reaps it. */
void sup_reap(struct sup *sp);
/* sup_reap, then sup_release(sp, false). */
void sup_kill(struct sup *sp);

#endif
