/* jobspec: what a job is (written by the daemon before it starts) and how it
 * ended (written by its supervisor), as files in the job's state directory,
 * plus validation of limits. Pure module: encode/decode buffers only.
 *
 * Files in <state_dir>/jobs/<ULID>/:
 *   spec     jobspec, written by the daemon before the supervisor runs
 *   started  jobstart, written by the supervisor once the job was exec'd
 *   status   jobstatus, written by the supervisor after the job ended
 *   log      output records (logstore.h), written by the supervisor
 *   lock     flock'ed by the supervisor for its whole life
 *   stop     created by the daemon when a Stop call kills the job; empty,
 *            or a jobstop (signal, target, grace) for a graceful stop
 * The encodings are line-oriented text with length-prefixed strings, begin
 * with a version line, and decoders reject anything malformed. */
#ifndef RUND_JOBSPEC_H
#define RUND_JOBSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "san.h"
#include "sandbox.h"

/* Limits: ONE table, job_limit_defs[] (jobspec.c), that every layer reads:
 * api.c maps each row to the JobStartRequest field of the same name, the
 * spec file stores it under that name, jobspec_validate checks its bounds,
 * cgroup.c enables its controller and writes its knob, and runc makes the
 * row a -flag with its help line.
 *
 * Adding a limit takes exactly:
 *   1. a field in JobStartRequest (api/rund.proto) with a NEW field number,
 *      typed google.protobuf.UInt32Value or UInt64Value, named like the row;
 *   2. an enum constant below (before LIMIT_COUNT) and its row in
 *      job_limit_defs[] at that index (tests/unit/test_jobspec.c fails on
 *      a missing or incomplete row);
 *   3. a line in README.md's runc flag table.
 * A controller rund has not used before needs nothing more: the rows name
 * the controllers that cgroup.c enables and checks. */
enum job_limit {
	LIMIT_CPU = 0, /* cpu.max quota in µs per 100000 µs period */
	LIMIT_MEMORY,  /* memory.max bytes */
	LIMIT_RBPS,    /* io.max */
	LIMIT_WBPS,
	LIMIT_RIOPS,
	LIMIT_WIOPS,
	LIMIT_PIDS, /* pids.max */
	LIMIT_COUNT,
};

#define LIMIT_BIT(l) (1u << (l))

/* How a value is written on the command line (runc's flag type). */
enum job_limit_unit {
	LIMIT_UNIT_NUMBER, /* plain decimal */
	LIMIT_UNIT_BYTES,  /* decimal with optional K, M, G, T (powers of 1024) */
};

/* How a bound depends on the machine (jobspec_validate's ncpu, page_size). */
enum job_limit_scale {
	LIMIT_SCALE_NONE,
	LIMIT_SCALE_MAX_PER_CPU, /* max is per CPU: max * ncpu */
	LIMIT_SCALE_MIN_PAGE,	 /* min is the page size */
};

struct job_limit_def {
	const char *name;	/* proto field, runc flag (without '-') and spec key */
	const char *controller; /* cgroup v2 controller the limit needs */
	const char *knob;	/* file written in the job's group */
	/* Per-device knobs (io.max): "KEY=value" on one line per device, all
	 * rows sharing the knob combined on that line. NULL: the file holds
	 * the value alone, followed by suffix. */
	const char *key;
	const char *suffix; /* after a lone value: " 100000" for cpu.max */
	/* Written best effort after the knob; a kernel without that file
	 * still enforces the limit. */
	const char *also_knob, *also_value;
	enum job_limit_unit unit;
	uint64_t min, max; /* accepted range (a present limit is never 0) */
	enum job_limit_scale scale;
	const char *range_note; /* shown with an out-of-range value */
	const char *help;	/* runc's one-line help */
};

extern const struct job_limit_def job_limit_defs[LIMIT_COUNT];

/* The row named s[0..n) ("max_pids"), or -1. */
int job_limit_find(const char *s, size_t n);

struct job_limits {
	bool has[LIMIT_COUNT];
	uint64_t value[LIMIT_COUNT];
};

struct io_device {
	unsigned major, minor;
};

/* Parses s[0..n) as "MAJ:MIN" within Linux's dev_t ranges (12-bit major,
 * 20-bit minor). False for anything else. */
bool io_device_parse(const char *s, size_t n, struct io_device *dev);

struct jobspec {
	char id[27]; /* ULID text */
	char **argv; /* argv[0] = name; NULL-terminated; owned */
	size_t argc;
	struct job_limits limits;
	struct san_set owners;
	uint64_t created_ns; /* CLOCK_REALTIME */
	char *cgroup;	     /* absolute path of the rund cgroup root R (job: R/jobs/<id>) */
	struct io_device *io_devices; /* io.max targets (owned) */
	size_t n_io_devices;
	uint64_t max_log_bytes; /* 0 = unlimited */
	/* How the job is confined (DESIGN §10), as the daemon's flags said at
	 * Start. A spec without "uid" (written before isolation existed) runs
	 * as root. */
	struct sandbox_policy sandbox;
	/* "KEY=VALUE" entries added to the default environment (owned),
	 * the working directory (NULL: "/"), and the run-time limit with its
	 * grace period (0: none / the default). */
	char **env;
	size_t n_env;
	char *cwd;
	uint64_t max_run_time_ns, run_time_grace_ns;
};

/* Bounds of a start request's environment and working directory. */
#define JOBSPEC_ENV_MAX 256	    /* entries */
#define JOBSPEC_ENV_ENTRY_MAX 32768 /* bytes of one "KEY=VALUE" */
#define JOBSPEC_CWD_MAX 4095	    /* bytes of the directory's path */
/* The grace period of a stop or a run-time limit: at most an hour, and
 * 10 s when none is given for the run-time limit. */
#define JOBSPEC_GRACE_MAX_NS (3600ull * 1000000000)
#define JOBSPEC_RUN_TIME_GRACE_NS (10ull * 1000000000)
/* The longest -max_run_time: 100 years (a deadline never overflows). */
#define JOBSPEC_RUN_TIME_MAX_NS (100ull * 36525 * 864 * 1000000000)

struct jobstart {
	pid_t supervisor_pid;
	pid_t pid;	   /* the job's main process */
	uint64_t start_ns; /* CLOCK_REALTIME at exec */
};

struct jobstatus {
	uint64_t end_ns; /* CLOCK_REALTIME when the main process ended */
	bool exited;	 /* true: exit_code valid; false: killed by signal */
	int exit_code;
	int signal;
	bool stopped; /* a Stop call ended it (the "stop" file existed) */
	bool oom_killed;
	uint64_t user_usec, system_usec;
	uint64_t memory_peak; /* 0 when the kernel does not offer it */
	uint64_t log_bytes;   /* output bytes kept */
	bool log_truncated;   /* some output is not kept (dropped by the cap or lost) */
	uint64_t log_end;     /* offset after the job's last output byte, kept or not */
	uint64_t log_lost;    /* output bytes that could not be stored (full disk) */
	uint64_t log_first;   /* offset of the oldest byte kept */
	bool timed_out;	      /* max_run_time ran out and the job was stopped for it */
};

/* A graceful stop, as the daemon asks it of the supervisor (the job's
 * "stop" file). signal 0 is an immediate kill (an empty file, as before
 * graceful stops existed, means the same). */
struct jobstop {
	int signal;	   /* 1 .. 64 */
	bool to_group;	   /* every process of the job's cgroup, not just the main one */
	uint64_t grace_ns; /* then cgroup.kill; <= JOBSPEC_GRACE_MAX_NS */
};

/* Validates a start request's shape and limits against this machine:
 * non-empty name; every present limit > 0 and within its row's bounds
 * (cpu in [1000, 100000 * ncpu], memory >= page_size, ...); env entries
 * "KEY=VALUE" with a non-empty KEY, no NUL, within JOBSPEC_ENV_*; cwd
 * absolute, no NUL, within JOBSPEC_CWD_MAX; the run-time grace within
 * JOBSPEC_GRACE_MAX_NS. -EINVAL with err naming the field and value. */
int jobspec_validate(const struct jobspec *spec, long ncpu, long page_size, struct err *err);

/* Encoders return a malloc'd buffer. Decoders return 0 or -EBADMSG with err
 * saying what is wrong (truncated, bad version, bad field) and leave *out
 * empty (safe to free). */
char *jobspec_encode(const struct jobspec *spec, size_t *len);
int jobspec_decode(const char *buf, size_t len, struct jobspec *out, struct err *err);
void jobspec_free(struct jobspec *spec); /* frees members; accepts zeroed */

/* The warm-up a spare supervisor reads before its job (supervisor.h):
 * the cgroup root and the policy that confines every job of this daemon,
 * uid and gid aside, as the spec's own keys under their own version line.
 * Decoded into out's cgroup and sandbox (uid and gid 0). */
#define JOBSPEC_WARM_VERSION "rund-warm 1"
char *jobspec_warm_encode(const char *cgroup, const struct sandbox_policy *p, size_t *len);
int jobspec_warm_decode(const char *buf, size_t len, struct jobspec *out, struct err *err);
/* True when buf begins with the warm-up's version line. */
bool jobspec_is_warm(const char *buf, size_t len);

char *jobstart_encode(const struct jobstart *st, size_t *len);
int jobstart_decode(const char *buf, size_t len, struct jobstart *out, struct err *err);

char *jobstatus_encode(const struct jobstatus *st, size_t *len);
/* "timed_out" may be absent (status files written before it existed). */
int jobstatus_decode(const char *buf, size_t len, struct jobstatus *out, struct err *err);

/* An empty buffer decodes as an immediate kill (signal 0). */
char *jobstop_encode(const struct jobstop *st, size_t *len);
int jobstop_decode(const char *buf, size_t len, struct jobstop *out, struct err *err);

#endif
