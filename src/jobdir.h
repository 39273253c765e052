/* jobdir: the layout of the state directory, shared by the daemon and the
 * supervisor (it crosses their process boundary, so it has one owner):
 *
 *   <state_dir>/daemon.lock      flock'ed by the daemon while it serves
 *   <state_dir>/run/<n>          FIFOs handing requests to supervisors
 *   <state_dir>/jobs/<ULID>/     one job; its files are jobdir_files[]
 *
 * Every name is spelled once, in jobdir.c; callers name files by enum.
 * Paths below a jobdir_root are opened with *at() calls relative to its
 * directory fds. */
#ifndef RUND_JOBDIR_H
#define RUND_JOBDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "ulid.h"

/* The files of a job directory: who writes them, see jobspec.h. */
enum jobdir_file {
	JOBDIR_SPEC = 0, /* jobspec, written by the daemon before the supervisor runs */
	JOBDIR_STARTED,	 /* jobstart, written by the supervisor once the job was exec'd */
	JOBDIR_STATUS,	 /* jobstatus, written by the supervisor after the job ended */
	JOBDIR_LOG,	 /* output: "log" (version 1) or segments "log.1"... (logstore.h) */
	JOBDIR_LOCK,	 /* flock'ed by the supervisor for its whole life */
	JOBDIR_STOP,	 /* created by the daemon when a Stop call kills the job */
	JOBDIR_RESERVE,	 /* the status's disk space, reserved by the supervisor */
	JOBDIR_LOGPOS,	 /* the log writer's live counters (logstore.h), by the supervisor */
	JOBDIR_NFILES,
};

struct jobdir_file_info {
	const char *name;
	size_t max; /* bound for reading it whole; 0 = not read whole */
};

/* One row per file, indexed by enum jobdir_file. */
extern const struct jobdir_file_info jobdir_files[JOBDIR_NFILES];

static inline const char *jobdir_name(enum jobdir_file f)
{
	return jobdir_files[f].name;
}

/* "<id>/<name>": a job's file relative to the jobs directory. */
#define JOBDIR_REL_MAX (ULID_LEN + 16)
void jobdir_rel(const char *id, enum jobdir_file f, char out[JOBDIR_REL_MAX]);

/* FIFO names in run/ are small decimal numbers. */
#define JOBDIR_FIFO_NAME_MAX 16
void jobdir_fifo_name(unsigned n, char out[JOBDIR_FIFO_NAME_MAX]);
/* "<state_dir>/run/<n>" into out[cap]. 0 or -ENAMETOOLONG. */
int jobdir_fifo_path(const char *state_dir, unsigned n, char *out, size_t cap);

/* The daemon's view of a state directory. */
struct jobdir_root {
	char *path; /* as given (owned) */
	int fd;	    /* <state_dir> */
	int jobs_fd;
	int run_fd;
	int lock_fd; /* daemon.lock, flock'ed */
};

/* Creates what is missing of <path>, <path>/jobs and <path>/run, takes the
 * daemon lock (-EBUSY with ERR_PRECONDITION when another daemon serves
 * this directory) and empties run/ (FIFOs of an earlier daemon are stale:
 * its spares saw EOF when it died). 0 or -errno with err set; *root is
 * then closed (safe to close again). */
int jobdir_root_open(const char *path, struct jobdir_root *root, struct err *err);
/* Closes the fds and releases the lock; accepts a zeroed or closed root
 * whose fds are -1. */
void jobdir_root_close(struct jobdir_root *root);

/* Creates <jobs>/<id> and returns an fd of it (O_DIRECTORY), or -errno. */
int jobdir_create(int jobs_fd, const char *id);
/* Opens <jobs>/<id>; fd or -errno. */
int jobdir_open(int jobs_fd, const char *id);
/* "<state_dir>/jobs/<id>" into out[cap]. 0 or -ENAMETOOLONG. */
int jobdir_path(const char *state_dir, const char *id, char *out, size_t cap);
/* Supervisor side: opens <state_dir>/jobs/<id>; fd or -errno with err
 * naming the path. */
int jobdir_open_path(const char *state_dir, const char *id, struct err *err);
/* Removes a job directory and its files (it has no subdirectories).
 * Best effort: a failure other than ENOENT is logged to stderr. */
void jobdir_remove(int jobs_fd, const char *id);

/* Reads file f of job id whole (bounded by its row's max). 0 or -errno
 * (-ENOENT when it does not exist, -EFBIG when it is too long). */
int jobdir_read(int jobs_fd, const char *id, enum jobdir_file f, char **out, size_t *len);

/* Supervisor, before the job starts: reserves the disk space of the job's
 * final status (JOBDIR_RESERVE, jobdir_files[JOBDIR_STATUS].max bytes
 * written, so every status a reader accepts fits), so that recording it
 * needs no new blocks even when the disk has filled up since. 0 or -errno
 * (-ENOSPC: the job must not start). This does not hold on copy-on-write
 * filesystems, where an overwrite needs new blocks too. */
int jobdir_status_reserve(int dirfd);
/* Supervisor: records the final status atomically (a reader sees none or
 * all of it): written into the reserved file in place, cut to its length
 * and renamed to JOBDIR_STATUS. Without a reservation, through a fresh
 * temporary file. 0, -EFBIG when text exceeds the status's bound, or
 * -errno. */
int jobdir_status_write(int dirfd, const char *text, size_t len);

/* Supervisor: takes the job's lock (non-blocking: a second supervisor for
 * one job is a bug, not something to wait for). The fd, or -EBUSY /
 * -errno with err set. The lock lives as long as the fd. */
int jobdir_lock(int dirfd, struct err *err);
/* Daemon: true while someone (the job's supervisor) holds the job's lock. */
bool jobdir_locked(int jobs_fd, const char *id);
/* True while a supervisor of any job under the state directory path runs
 * (holds its job's lock), whether or not a daemon serves it. */
bool jobdir_any_locked(const char *path);
/* True when file f of job id exists. */
bool jobdir_has(int jobs_fd, const char *id, enum jobdir_file f);

#endif
