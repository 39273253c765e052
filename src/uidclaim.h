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

/* Claims [first, last] in dir (created, with its parents, if missing). The
 * fd that holds the claim (CLOEXEC; closing it gives the range up), or
 * -errno with err set: -EBUSY when a live claim overlaps, err naming it. */
int uidclaim_take(const char *dir, uint32_t first, uint32_t last, const char *state_dir,
		  struct err *err);
/* Gives up the claim uidclaim_take returned as fd (accepts -1): removes its
 * file unless jobs of state_dir still run, and closes fd. */
void uidclaim_release(const char *dir, uint32_t first, uint32_t last, const char *state_dir,
		      int fd);

#endif
