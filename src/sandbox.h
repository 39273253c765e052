/* sandbox: what confines one job (DESIGN §10, README "Threat model").
 *
 * The operator's policy (struct sandbox_policy) is decided by the daemon,
 * persisted in the job's spec and handed to the supervisor, which turns it
 * into a plan: every path checked, every string built before clone3. The
 * job's init applies the plan's steps in order, as bubblewrap does with
 * its setup ops. It does so in two moments, so that most of the work is
 * done before a Start arrives (a spare supervisor starts its init while
 * it waits for a job, suppool.h):
 *
 *   sandbox_init_start: clone3(NEWPID|NEWNS|NEWIPC|NEWUTS [|NEWNET])
 *   child = PID 1 of the job's PID namespace ("init"), which stays in the
 *   supervisor's cgroup, so the job's limits and accounting are the job's:
 *     the host's whole tree private, read-only and nosuid; hide the state
 *     and key directories under an empty read-only directory; fresh
 *     /proc; private /tmp, /var/tmp, /dev/shm, /run/lock (directories of
 *     one tmpfs, which holds -job_tmp_size in all); the IPC namespace's
 *     own /dev/mqueue; [-job_network none: loopback up]; then wait.
 *   sandbox_launch: the init learns the job (its group and a payload
 *     that describes it), binds the job's own cgroup read-only over the
 *     cgroup2 mount [-rootfs: pivot_root into DIR instead], clone3s the
 *     job's main process INTO_CGROUP (the job's group), then forwards
 *     signals to it and reaps every orphan until it ends; reports its
 *     wait status; exits (the kernel then kills the rest of the PID
 *     namespace).
 *   main process: a new cgroup namespace rooted at its group; RLIMIT_NPROC;
 *     drop the bounding, ambient and inheritable capability sets,
 *     setgroups(0), setresgid, setresuid; an empty session keyring of its
 *     own; no_new_privs; a seccomp filter against new namespaces, keyrings
 *     and io_uring; then exec.
 *
 * The supervisor is single-threaded, so the init (a copy of it) may
 * allocate; it stays async-signal-safe anyway except in describe.
 * An init started early copied the host's mount table and host name
 * then: sandbox_init_fresh tells whether either changed since, and the
 * supervisor starts a new init if so.
 *
 * A PID namespace's init ignores signals it has no handler for, so the job
 * is never PID 1: the init is our own code, not an exec.
 *
 * With policy.root (`-job_user root`) none of this happens: the job is
 * exec'd straight from the supervisor's clone3 child, as root, in the
 * host's namespaces (jobspawn.h). */
#ifndef RUND_SANDBOX_H
#define RUND_SANDBOX_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Namespaces a job gets (policy.namespaces). */
enum {
	SANDBOX_NS_PID = 1 << 0,
	SANDBOX_NS_MOUNT = 1 << 1,
	SANDBOX_NS_IPC = 1 << 2,
	SANDBOX_NS_UTS = 1 << 3,
	SANDBOX_NS_CGROUP = 1 << 4,
	SANDBOX_NS_NET = 1 << 5, /* -job_network none */
	SANDBOX_NS_DEFAULT = SANDBOX_NS_PID | SANDBOX_NS_MOUNT | SANDBOX_NS_IPC | SANDBOX_NS_UTS |
			     SANDBOX_NS_CGROUP,
};

#define SANDBOX_MAX_HIDE 8
/* The RLIMIT_NOFILE soft limit jobs get: the conventional one (some
 * programs loop over every possible fd; the daemon raises its own). */
#define SANDBOX_JOB_NOFILE 1024

struct sandbox_policy {
	bool root;	     /* -job_user root: no identity, no namespaces */
	uint32_t uid, gid;   /* the job's own identity (not root) */
	unsigned namespaces; /* SANDBOX_NS_* */
	/* Directories made invisible (the state directory, the server's key
	 * and certificate directories). Absolute, owned. */
	char *hide[SANDBOX_MAX_HIDE];
	size_t n_hide;
	char *rootfs;	    /* NULL, or a directory to pivot_root into */
	char *cgroup_mount; /* the cgroup2 mount point, remounted for the job */
	uint64_t tmp_size;  /* bytes each private tmpfs may hold; 0 = tmpfs's default */
	uint64_t max_procs; /* RLIMIT_NPROC of the job's uid; 0 = inherited */
};

/* Namespace names in flag and spec order ("pid,mount,ipc,uts,cgroup,net"). */
/* Parses "pid,mount,..." / "all" / "none" into SANDBOX_NS_* bits (net is
 * not in "all": it is -job_network's). 0 or -EINVAL naming the item. */
int sandbox_parse_namespaces(const char *s, unsigned *out, struct err *err);
/* Writes the names of the bits in ns, comma-separated ("none" for 0). */
void sandbox_format_namespaces(unsigned ns, char *buf, size_t cap);

/* Checks a policy the operator asked for (uid and gid are the daemon's to
 * fill in per job): hidden directories absolute and not one a job needs
 * (/, /etc, /usr, /bin, /lib, /tmp, /dev, /proc...); a rootfs that is a
 * directory other than / with proc, dev and tmp in it, and the mount
 * namespace it needs. Fewer namespaces are allowed (they weaken isolation;
 * the daemon warns). 0 or -EINVAL with err naming the value. */
int sandbox_policy_check(const struct sandbox_policy *p, struct err *err);
void sandbox_policy_free(struct sandbox_policy *p); /* members; accepts zeroed */
/* Deep copy; *dst must be zeroed or freed. */
void sandbox_policy_copy(struct sandbox_policy *dst, const struct sandbox_policy *src);

enum sandbox_op {
	SB_MOUNT_PRIVATE, /* make every mount private: nothing propagates back */
	SB_ROOT_RO,	  /* the whole host tree private, read-only and nosuid */
	SB_MQUEUE,	  /* the IPC namespace's own message queues on /dev/mqueue */
	SB_SCRATCH,	  /* the job's one private tmpfs, not attached anywhere:
			   * its directory src (mode 1777) or "empty" (0555) is
			   * what each SB_PRIVATE and SB_HIDE binds */
	SB_PRIVATE,	  /* a private writable directory of the scratch tmpfs */
	SB_HIDE,	  /* the scratch's empty directory, read-only, over a directory */
	SB_PROC,	  /* fresh procfs */
	SB_TMPFS,	  /* private writable tmpfs, mode 1777 (-rootfs's /tmp) */
	SB_CGROUP2,	  /* the job's own group, bound read-only on the cgroup2 mount */
	SB_LOOPBACK_UP,
	SB_ROOTFS_BIND, /* bind DIR on itself, later made read-only */
	SB_DEV,		/* minimal /dev: tmpfs plus bind-mounted device nodes */
	SB_ROOTFS_RO,
	SB_PIVOT,
};

struct sandbox_step {
	enum sandbox_op op;
	char *path; /* owned */
	char *src;  /* owned; SB_CGROUP2: the job's group; SB_PRIVATE: the
		     * scratch directory */
	char *data; /* owned; SB_TMPFS, SB_SCRATCH: mount options */
};

/* What a child reports over the report pipe when it fails. */
struct sandbox_report {
	int32_t err;  /* errno */
	int32_t step; /* index into steps, or SANDBOX_STEP_* */
};
#define SANDBOX_STEP_EXEC (-1)
#define SANDBOX_STEP_IDENTITY (-2)
#define SANDBOX_STEP_FORK (-3)
#define SANDBOX_STEP_LAUNCH (-4) /* reading the job from the supervisor */
#define SANDBOX_STEP_CGROUP (-5) /* opening the job's group */

/* A pipe; -1 for an end this process does not hold. */
struct sandbox_pipe {
	int r, w;
};

struct sandbox {
	bool root;
	uint32_t uid, gid; /* the init learns them at launch */
	unsigned namespaces;
	struct sandbox_step *steps;
	size_t n_steps;
	/* Steps [0, n_early) run as soon as the init starts; the rest (the
	 * job's cgroup, pivot_root) once it knows the job. */
	size_t n_early;
	int last_cap; /* /proc/sys/kernel/cap_last_cap */
	uint64_t max_procs;

	/* The init, from sandbox_init_start on. */
	pid_t init_pid;
	int init_pidfd;
	struct sandbox_pipe go;	    /* supervisor -> init: the job (sandbox_launch) */
	struct sandbox_pipe report; /* init, main -> supervisor: a report, or EOF at exec */
	struct sandbox_pipe status; /* init -> supervisor: the main process's wait status */
	/* The host's view the init copied: a poll on mounts_fd says whether
	 * the mount table changed since; hostname is the UTS name then. */
	int mounts_fd;
	char hostname[65];
};

/* What the init needs to know about the job, from the launch's payload. */
struct sandbox_job {
	uint32_t uid, gid;
	/* Sets up stdio and execs (jobspawn.h); returns an errno (with
	 * whatever bits the caller adds) only on failure. */
	int (*exec)(void *arg);
	void *arg;
};

/* Runs in the init with sandbox_launch's payload; fills *job. 0 or an
 * errno. */
typedef int sandbox_describe_fn(void *ctx, const char *payload, size_t len,
				struct sandbox_job *job);

/* Builds the plan for policy p (see the top of this file). Directories
 * that do not exist are left out (nothing to hide or cover). On success
 * *sb owns its strings; no process or fd yet. 0 or -errno with err set. */
int sandbox_prepare(const struct sandbox_policy *p, struct sandbox *sb, struct err *err);
/* Stops the init if it still runs (sandbox_init_stop), closes every fd and
 * frees the plan. Accepts a prepared or freed sandbox (not a zeroed
 * one: its fds would read as 0). */
void sandbox_free(struct sandbox *sb);

/* clone3 flags of the job's init: its namespaces (0 for a root plan). */
uint64_t sandbox_clone_flags(const struct sandbox *sb);

/* Starts the job's init before the job is known, in the caller's cgroup:
 * clone3 into the plan's namespaces; the init runs the early steps, then
 * waits for sandbox_launch (or EOF: the supervisor is gone, and the init
 * exits). It keeps only keep[0..n_keep) of the caller's descriptors (the
 * job's stdio) and the sandbox's own pipe ends. A failing step is not
 * reported here but at launch, as the job's failure. describe(ctx, ...)
 * runs in the init at launch. 0, or -errno with err set and nothing left
 * running. */
int sandbox_init_start(struct sandbox *sb, sandbox_describe_fn *describe, void *ctx,
		       const int *keep, size_t n_keep, struct err *err);

/* True while the init started earlier can take a job: it still waits,
 * and the host's mount table and host name are as it copied them (a
 * spare's view of the host must not be older than the job). */
bool sandbox_init_fresh(const struct sandbox *sb);

/* Kills and reaps the init, and closes the sandbox's pipes. The plan is
 * kept: sandbox_init_start may run again. */
void sandbox_init_stop(struct sandbox *sb);

/* Hands the init its job: payload, for describe, which the init runs
 * while the caller goes on (creating the job's group). 0, or -errno with
 * err set (the init is gone: its report says why). */
int sandbox_give(struct sandbox *sb, const void *payload, size_t len, struct err *err);

/* Names the job's group (absolute; it exists now): the init runs the late
 * steps, clones the job's main process into the group and reports. 0, or
 * -errno with err set (the init is gone: its report says why). */
int sandbox_launch(struct sandbox *sb, const char *job_cgroup, struct err *err);

/* After sandbox_launch (or a root job's clone3; fd is the report pipe's
 * read end): waits until the job exec'd (0) or a report arrived (1, *rep
 * set). */
int sandbox_wait_report(int fd, struct sandbox_report *rep);

/* The init's report of the main process's end, if it has come: true with
 * si's code and status set as for a reaped child. Reads it once. */
bool sandbox_take_status(struct sandbox *sb, siginfo_t *si);

/* After the init was reaped with si: replaces si's code and status with
 * those of the job's main process as the init reported them. An init that
 * did not report (it was killed with the whole group, by Stop) leaves si
 * as it is. */
void sandbox_main_status(struct sandbox *sb, siginfo_t *si);

/* Describes step (an index, or SANDBOX_STEP_*) into buf, e.g. "mount
 * tmpfs on /tmp", for the failure the child reported. Returns buf. */
const char *sandbox_step_name(const struct sandbox *sb, int step, char *buf, size_t cap);

/* Gives the calling process the signal dispositions (all default) and the
 * RLIMIT_NOFILE soft limit (SANDBOX_JOB_NOFILE) a job starts with. Runs
 * in a clone3 child: async-signal-safe. */
void sandbox_job_defaults(void);

/* True when a and b confine jobs alike (everything but uid and gid). */
bool sandbox_policy_same(const struct sandbox_policy *a, const struct sandbox_policy *b);

#endif
