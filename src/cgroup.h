/* cgroup: the only code that writes under rund's cgroup v2 tree.
 *
 * Layout below the rund root R (the -cgroup flag, or derived from the
 * daemon's own cgroup, see cgroup_root_setup):
 *   R/daemon          leaf holding the daemon and every supervisor (with
 *                     -cgroup_daemon_stays: the supervisors and the holder
 *                     of rund-jobs.service, the daemon stays in its unit)
 *   R/jobs            controllers enabled in subtree_control
 *   R/jobs/<ULID>     one job, limits written here
 * The parsers and formatters are pure and unit-tested from fixtures. */
#ifndef RUND_CGROUP_H
#define RUND_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jobspec.h"

/* Controller sets are bitmasks over limits: LIMIT_BIT(l) is set when the
 * controller of job_limit_defs[l] is present, so the limit table alone says
 * which controllers rund knows (cgroup.controllers "io" sets the bits of
 * all four io limits). */

struct cgroup_root {
	char *path;	      /* absolute path of R */
	int dirfd;	      /* O_PATH|O_DIRECTORY of R */
	int jobs_fd;	      /* directory fd of R/jobs */
	unsigned controllers; /* LIMIT_BIT()s whose controller is enabled for jobs */
	unsigned undelegated; /* LIMIT_BIT()s whose controller the system has but R
			       * was not given */
};

/* What to do when the system has a controller but rund's cgroup was not
 * given it (a login session's scope, a unit without Delegate=yes). */
#define CGROUP_DELEGATE_HINT                                                                       \
	"Run rund from its systemd unit (Delegate=yes: systemctl start rund) or as "               \
	"`systemd-run -p Delegate=yes rund serve ...`, or start it in the cgroup v2 root"

/* Pure parsers. From /proc/self/mountinfo text: the mount point of the
 * cgroup2 filesystem (malloc'd). From /proc/self/cgroup text: the "0::"
 * path (malloc'd). From cgroup.controllers text: the LIMIT_BIT()s of the
 * limits whose controller it lists. 0 or -ENOENT / -EBADMSG. */
int cgroup_parse_mountinfo(const char *text, char **mount, char **root);
/* The same from this process's /proc/self/mountinfo. 0, or -errno with err
 * set (ERR_PRECONDITION when no cgroup2 is mounted). */
int cgroup_find_mount(char **mount, char **root, struct err *err);
int cgroup_parse_self(const char *text, char **path);
unsigned cgroup_parse_controllers(const char *text);

/* Formatters, from the limit's row. A lone value: "<value><suffix>"
 * ("50000 100000" for cpu.max, "64" for pids.max). A per-device knob
 * (io.max): one line "MAJ:MIN rbps=N wbps=N riops=N wiops=N" holding the
 * present limits of every row with that knob ("max" never written). Return
 * the string length or -ENOSPC. */
int cgroup_format_value(enum job_limit l, uint64_t value, char *buf, size_t cap);
int cgroup_format_device_line(const char *knob, const struct io_device *dev,
			      const struct job_limits *lim, char *buf, size_t cap);

/* Daemon start-up: finds the v2 mount and the daemon's cgroup (unless
 * override is given), chooses R (the daemon's own cgroup, or <mount>/rund
 * when that is the hierarchy's root), creates R/daemon and R/jobs, moves
 * this process into R/daemon and enables every controller a limit row names
 * (cpu, memory, io, pids) in R's and R/jobs' subtree_control where
 * available. 0 or -errno with err set.
 *
 * With daemon_stays (only with an override: R is another systemd unit's
 * cgroup, rund-jobs.service), this process stays where it is, so its own
 * unit keeps its main process; instead every process found directly in R
 * (that unit's holder) moves to R/daemon, which leaves R free of internal
 * processes. Supervisors move themselves (cgroup_enter_daemon). */
int cgroup_root_setup(const char *override, bool daemon_stays, struct cgroup_root *root,
		      struct err *err);
/* Supervisor start-up: moves the calling process into <root_path>/daemon,
 * next to the daemon's other supervisors and out of the daemon's unit,
 * whose restart must not find it there. A no-op where it already is. 0 or
 * -errno with err set. */
int cgroup_enter_daemon(const char *root_path, struct err *err);
/* Pure: the pids listed in cgroup.procs text, one decimal per line, into
 * pids[0..cap). Returns how many the text lists (more than cap means some
 * were left out), or -EBADMSG for a line that is not a pid. */
int cgroup_parse_procs(const char *text, int *pids, size_t cap);
/* Supervisor side: opens an existing R (set up by the daemon). */
int cgroup_root_open(const char *path, struct cgroup_root *root, struct err *err);
void cgroup_root_close(struct cgroup_root *root);

/* Fails with ERR_PRECONDITION ("memory controller not available in cgroup v2
 * hierarchy /sys/fs/cgroup/unified") if a requested limit's controller is
 * not enabled for jobs. */
int cgroup_check_limits(const struct cgroup_root *root, const struct job_limits *lim,
			struct err *err);

/* Supervisor: creates R/jobs/<id> and writes each present limit's knob (a
 * per-device knob such as io.max once per device). On success *fd is an
 * O_DIRECTORY fd of the job's cgroup (for CLONE_INTO_CGROUP). On failure
 * nothing is left behind. */
int cgroup_job_create(const struct cgroup_root *root, const char *id, const struct job_limits *lim,
		      const struct io_device *devs, size_t ndevs, int *fd, struct err *err);

/* SIGKILLs every process in R/jobs/<id> via cgroup.kill. 0, -ENOENT if the
 * group is gone, or -errno. */
int cgroup_job_kill(const struct cgroup_root *root, const char *id, struct err *err);

struct cgroup_stats {
	uint64_t user_usec, system_usec;
	uint64_t memory_current; /* 0 where memory.current does not exist */
	uint64_t memory_peak;	 /* 0 where memory.peak does not exist */
	uint64_t oom_kills;	 /* memory.events oom_kill */
	bool populated;		 /* cgroup.events */
};

/* Reads what exists of cpu.stat, memory.*, cgroup.events. 0 or -errno
 * (-ENOENT when the group is gone). */
int cgroup_job_stats(const struct cgroup_root *root, const char *id, struct cgroup_stats *st);

/* Removes R/jobs/<id> once it is empty (kills leftovers, waits for
 * "populated 0" up to timeout_ms). 0, or -EBUSY/-errno. */
int cgroup_job_remove(const struct cgroup_root *root, const char *id, unsigned timeout_ms,
		      struct err *err);

/* Whole disks under /sys/block except loop, ram and zram ("8:0"...). */
int cgroup_default_io_devices(struct io_device **devs, size_t *n, struct err *err);
/* Parses "-io_devices 8:0,254:0". 0 or -EINVAL with err naming the item. */
int cgroup_parse_io_devices(const char *s, struct io_device **devs, size_t *n, struct err *err);

#endif
