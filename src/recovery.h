/* recovery: what a job directory found at daemon start-up is, decided from
 * facts the daemon can observe (pure; job.c gathers the facts and acts).
 *
 * Order matters when gathering: liveness (the job's lock) first, then the
 * status file, because a supervisor writes its status before it lets go
 * of the lock; so "not locked and no status" means it died without one. */
#ifndef RUND_RECOVERY_H
#define RUND_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

/* A supervisor may be about to take the lock of a job whose Start was in
 * flight: such a directory is dropped only after this long. */
#define RECOVERY_GRACE_MS 2000

struct recovery_facts {
	bool locked;	    /* a supervisor holds the job's lock */
	int status;	    /* reading the status file: 0, -ENOENT, or another error */
	bool started;	    /* the started file was read */
	uint64_t waited_ms; /* since the directory was first looked at */
};

enum recovery_verdict {
	RECOVERY_EXITED = 1, /* a final status is recorded: serve it as ended */
	RECOVERY_DAMAGED,    /* the status is unreadable: report the job lost */
	RECOVERY_ATTACH,     /* running under its supervisor: watch it */
	RECOVERY_LOST,	     /* started, supervisor gone without a status: lost */
	RECOVERY_WAIT,	     /* undecided yet: look again later */
	RECOVERY_DROP,	     /* never started, nobody will: remove the directory */
};

enum recovery_verdict recovery_judge(const struct recovery_facts *f);

/* The monotonic time at which a job that ended at end_real_ns (realtime,
 * as recorded; 0 = unknown) ended, given both clocks now: retention counts
 * from the recorded end, also across a restart. An end in the future
 * (clock steps) counts as now; one before the monotonic epoch as 0. */
uint64_t recovery_end_mono(uint64_t end_real_ns, uint64_t now_real_ns, uint64_t now_mono_ns);

#endif
