/* job: the daemon's table of jobs and their lifecycle.
 *
 * A job is a directory <state_dir>/jobs/<ULID>/ (see jobdir.h for its
 * files) plus a supervisor process (`rund execute`). The daemon writes the
 * spec, spawns the supervisor, and from then on only observes: the
 * supervisor's exit through a pidfd, new output through inotify. Ownership
 * (DESIGN §4) is enforced here: job_find() answers NOT_FOUND for a job the
 * caller does not share a SAN with, exactly as for an unknown id.
 *
 * Nothing here knows about gRPC or protobuf; results are plain structs and
 * errors are struct err with a kind (api.c maps kinds to status codes). */
#ifndef RUND_JOB_H
#define RUND_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"
#include "err.h"
#include "jobspec.h"
#include "logstore.h"
#include "loop.h"
#include "san.h"
#include "sandbox.h"
#include "uidpool.h"

struct job_table;
struct job;
struct audit;

struct job_config {
	const char *state_dir;	    /* absolute; created if missing */
	const char *exe;	    /* the rund binary to run as supervisor */
	struct cgroup_root *cgroup; /* set up by the caller; borrowed */
	/* We run in cgroup's daemon group (not -cgroup_daemon_stays): the
	 * supervisors we start are born there. */
	bool in_daemon_group;
	const struct io_device *io_devices;
	size_t n_io_devices;
	uint64_t max_log_bytes; /* per job; 0 = unlimited */
	uint64_t retention_ns;	/* ended jobs are removed after this; 0 = never */
	uint64_t min_free;	/* bytes; Start is refused while the state disk has less */
	/* How jobs are confined; copied into every job's spec at Start. For
	 * confined jobs (!sandbox->root) each gets a uid of `uids`. Both
	 * borrowed. */
	const struct sandbox_policy *sandbox;
	struct uidpool *uids;
	const struct audit *audit; /* job start and end lines (audit.h); NULL = none */
};

/* Opens the state directory and serves every job found there (running jobs
 * keep running; damaged entries are logged to stderr and skipped). */
int job_table_open(struct loop *loop, const struct job_config *cfg, struct job_table **out,
		   struct err *err);
/* Frees the table; running jobs keep running (their supervisors own them). */
void job_table_free(struct job_table *t);
size_t job_table_count(const struct job_table *t);

/* --- Start ------------------------------------------------------------ */

struct job_request {
	char **argv; /* argv[0] is the name; borrowed */
	size_t argc;
	struct job_limits limits;
	const struct san_set *owner; /* the caller's SANs; borrowed */
	char **env;		     /* "KEY=VALUE" entries; borrowed */
	size_t n_env;
	const char *cwd;	    /* NULL or "": "/"; borrowed */
	uint64_t max_run_time_ns;   /* 0: none */
	uint64_t run_time_grace_ns; /* 0: JOBSPEC_RUN_TIME_GRACE_NS */
};

struct job_pending;

/* Called once when the job was exec'd (id set, err NULL) or could not be
 * started (id NULL, err says why; nothing is left behind). */
typedef void (*job_started_fn)(void *ctx, const char *id, const struct err *err);

/* Validates and starts a job. Returns 0 with *pending set (the callback
 * follows from the loop), or -errno with err set and no callback. While
 * the state directory's filesystem has less than cfg.min_free bytes or
 * almost no inodes available, Start is refused (-ENOSPC, ERR_EXHAUSTED,
 * naming the floor and the free space; the daemon's log says when such a
 * shortage begins and ends). */
int job_start(struct job_table *t, const struct job_request *req, job_started_fn cb, void *ctx,
	      struct job_pending **pending, struct err *err);
/* The caller went away before cb: cb will not be called, and a job that
 * starts anyway is killed and removed (its directory, cgroup and uid) once
 * its supervisor is gone, since nobody could learn its id. A caller that
 * got cb has the id; detaching then is not allowed. */
void job_pending_detach(struct job_pending *p);

/* --- Lookup, Status, Stop --------------------------------------------- */

/* Finds job `id` for `peer`. -EINVAL (malformed id) or -ENOENT (unknown,
 * or owned by nobody the peer shares a SAN with). Borrowed pointer, valid
 * until control returns to the loop unless job_ref()'d. */
int job_find(struct job_table *t, const char *id, size_t id_len, const struct san_set *peer,
	     struct job **out, struct err *err);
void job_ref(struct job *j);
void job_unref(struct job *j);

enum job_state {
	JOB_RUNNING = 1,
	JOB_EXITED = 2,
	JOB_LOST = 3, /* its supervisor died; the job was killed */
};

struct job_info {
	enum job_state state;
	bool stopped, killed;
	bool has_exit_code;
	uint32_t exit_code;
	int signal;
	bool oom_killed;
	uint64_t user_usec, system_usec;
	uint64_t memory_current, memory_peak;
	uint64_t start_ns, end_ns; /* 0 = unknown / not yet */
	char *const *argv;	   /* borrowed from the job */
	size_t argc;
	uint64_t log_bytes; /* kept; live while running */
	bool log_truncated;
	uint64_t log_end, log_lost, log_first; /* see jobstatus */
	uint32_t uid;	/* the job ran as this uid (0: root, by -job_user root) */
	bool timed_out; /* its max_run_time ran out */
};

/* Fills info: live values from the cgroup while running, the recorded
 * final status after the end. */
void job_info(struct job *j, struct job_info *info);
bool job_ended(const struct job *j);

struct job_waiter;
typedef void (*job_ended_fn)(void *ctx, struct job *j);

/* Stops the job and calls cb once it has ended and its final status is
 * known; from the loop, without stopping anything, if it already ended.
 * how NULL (or signal 0): the whole group is killed now (cgroup.kill).
 * Otherwise the job's supervisor sends how->signal (to the main process,
 * or with to_group to every process of the group) and kills the group
 * after how->grace_ns (see supervisor.c); the daemon kills it itself a
 * little later should the supervisor not have (one older than graceful
 * stops). 0 with *w set, or -errno. */
int job_stop(struct job *j, const struct jobstop *how, job_ended_fn cb, void *ctx,
	     struct job_waiter **w, struct err *err);
/* Calls cb once the job has ended (from the loop if it already has). */
int job_wait(struct job *j, job_ended_fn cb, void *ctx, struct job_waiter **w);
void job_waiter_cancel(struct job_waiter *w);

/* --- List ----------------------------------------------------------------- */

/* The canonical id of a job. */
const char *job_id(const struct job *j);

/* The jobs `peer` may see (the job_find rule), in state `state` (0: any),
 * newest first, at most `limit` of them (0: all). *out is a malloc'd
 * array of referenced jobs: job_unref each, then free the array. Returns
 * how many. */
size_t job_list(struct job_table *t, const struct san_set *peer, enum job_state state, size_t limit,
		struct job ***out);

/* --- Log ---------------------------------------------------------------- */

struct job_follower;

#define JOB_LOG_END 2

/* A reader of the job's output from offset `from` (0: the first byte).
 * notify(ctx) is called when more output may be available or the job
 * ended. While it waits it holds no file descriptor. */
int job_follow(struct job *j, uint64_t from, void (*notify)(void *ctx), void *ctx,
	       struct job_follower **out, struct err *err);
/* 1: a chunk (valid until the next call); 0: nothing now, wait for notify;
 * JOB_LOG_END: the job ended and everything was read; <0 error. */
int job_follow_next(struct job_follower *f, size_t max, struct logchunk *out, struct err *err);
/* As job_follow_next, but the chunk (at most max > 0 bytes) is read into
 * dst (out->data == dst), straight from the file when it is large. */
int job_follow_read(struct job_follower *f, uint8_t *dst, size_t max, struct logchunk *out,
		    struct err *err);
void job_follow_close(struct job_follower *f);
/* The offset where the job's last `lines` lines of output start (see
 * logstore_tail); 0 when there is no output yet. 0 or -errno. */
int job_log_tail(struct job *j, uint64_t lines, uint64_t *off, struct err *err);

#endif
