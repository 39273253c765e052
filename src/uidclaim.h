/* uidclaim: a daemon's host-wide claim on its -job_uids range.
 *
 * Two daemons on one host whose ranges overlap could give two live jobs
 * one uid, and each job could then signal, trace or write what belongs to
 * the other. So every confined daemon registers its range in a directory
 * shared by the host (UIDCLAIM_DIR): one file named "FIRST-LAST", holding
 * its pid and state directory, on which it holds an flock for as long as
 * it runs. The lock dies with the process, so the file of a daemon that is
 * gone (even by SIGKILL) is stale once its jobs are gone too (below), and
 * the next claim removes it. A claim that overlaps a live one is refused,
 * naming the other daemon. The scan and the new file are made under a lock
 * on the directory, so two daemons starting together cannot both miss each
 * other.
 *
 * Jobs outlive their daemon (a restart or a stop leaves them running),
 * and keep their uids: a claim whose daemon is gone is stale only once no
 * supervisor of its state directory runs (jobdir_any_locked). Until then it
 * still refuses overlaps, except to a daemon on the same state directory,
 * which recovers those jobs. */
#ifndef RUND_UIDCLAIM_H
#define RUND_UIDCLAIM_H

#include <stdint.h>

#include "err.h"

#define UIDCLAIM_DIR "/run/rund/job-uids"

/* A claim held: its file's lock (CLOEXEC) and what releasing it needs. */
struct uidclaim {
	int fd; /* -1: none */
	char *path, *state_dir;
};

/* Claims [first, last] in dir (created, with its parents, if missing) for
 * the daemon of state_dir. 0 with *out set, or -errno with err set (*out
 * then holds nothing): -EBUSY when a live claim overlaps, err naming it. */
int uidclaim_take(const char *dir, uint32_t first, uint32_t last, const char *state_dir,
		  struct uidclaim *out, struct err *err);
/* Gives the claim up: removes its file unless jobs of its state directory
 * still run, and closes it. Accepts one that holds nothing. */
void uidclaim_release(struct uidclaim *c);

#endif
