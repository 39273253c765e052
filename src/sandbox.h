/* sandbox: what confines one job (DESIGN §10, README "Threat model").
 *
 * The operator's policy (struct sandbox_policy) is decided by the daemon,
 * persisted in the job's spec and handed to the supervisor, which turns it
 * into a plan before clone3: every path checked, every string built, so
 * that the child only makes async-signal-safe calls. The child then applies
 * the plan's steps in order, as bubblewrap does with its setup ops:
 *
 *   clone3(NEWPID|NEWNS|NEWIPC|NEWUTS [|NEWNET])
 *   child = PID 1 of the job's PID namespace ("init"), which stays in the
 *   supervisor's cgroup, so the job's limits and accounting are the job's:
 *     mounts private; the host's whole tree read-only and nosuid;
 *     hide the state and key directories under empty read-only tmpfs;
 *     fresh /proc; private /tmp, /var/tmp, /dev/shm, /run/lock (sized),
 *     and the IPC namespace's own /dev/mqueue;
 *     the job's own cgroup bound read-only over the cgroup2 mount;
 *     [-job_network none: loopback up] [-rootfs: pivot_root into DIR]
 *     clone3 the job's main process INTO_CGROUP (the job's group), then
 *     forward signals to it and reap every orphan until it ends; report
 *     its wait status; exit (the kernel then kills the rest of the PID
 *     namespace).
 *   main process: a new cgroup namespace rooted at its group; RLIMIT_NPROC;
 *     drop the bounding, ambient and inheritable capability sets,
 *     setgroups(0), setresgid, setresuid; an empty session keyring of its
 *     own; no_new_privs; a seccomp filter against new namespaces, keyrings
 *     and io_uring; then exec.
 *
 * A PID namespace's init ignores signals it has no handler for, so the job
 * is never PID 1: the init is our own code, not an exec.
 *
 * With policy.root (`-job_user root`) none of this happens: the job is
 * exec'd straight from the clone3 child, as root, in the host's namespaces. */
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
	SB_ROOT_RO,	  /* the whole host tree read-only and nosuid for the job */
	SB_MQUEUE,	  /* the IPC namespace's own message queues on /dev/mqueue */
	SB_HIDE,	  /* empty read-only tmpfs over a directory */
	SB_PROC,	  /* fresh procfs */
	SB_TMPFS,	  /* private writable tmpfs, mode 1777 */
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
	char *src;  /* owned; SB_CGROUP2: the job's group */
	char *data; /* owned; SB_TMPFS: mount options */
};

/* What the child reports over the error pipe when it fails. */
struct sandbox_report {
	int32_t err;  /* errno */
	int32_t step; /* index into steps, or SANDBOX_STEP_* */
};
#define SANDBOX_STEP_EXEC (-1)
#define SANDBOX_STEP_IDENTITY (-2)
#define SANDBOX_STEP_FORK (-3)

struct sandbox {
	bool root;
	uint32_t uid, gid;
	unsigned namespaces;
	struct sandbox_step *steps;
	size_t n_steps;
	int last_cap; /* /proc/sys/kernel/cap_last_cap */
	uint64_t max_procs;
	int status_fds[2]; /* init -> supervisor: the main process's wait status */
};

/* Builds the plan for policy p (see the top of this file); job_cgroup is
 * the absolute path of the job's own group (NULL: leave the cgroup mount
 * alone). Directories that do not exist are left out (nothing to hide or
 * cover). On success *sb owns its strings and two pipe fds. 0 or -errno
 * with err set. */
int sandbox_prepare(const struct sandbox_policy *p, const char *job_cgroup, struct sandbox *sb,
		    struct err *err);
void sandbox_free(struct sandbox *sb); /* accepts zeroed and freed */

/* clone3 flags for the plan's first child: its namespaces, plus
 * CLONE_INTO_CGROUP for a root job (which is exec'd from that child); a
 * confined job's init stays outside the job's group. */
uint64_t sandbox_clone_flags(const struct sandbox *sb);

/* Runs in the clone3 child and never returns. cgroup_fd is the job's
 * group (a confined job's main process is cloned into it). exec(arg) must set up stdio
 * and exec; it returns errno only on failure. Any failure is written as a
 * struct sandbox_report to errfd (CLOEXEC: EOF means the exec happened).
 * Async-signal-safe throughout. */
_Noreturn void sandbox_child(const struct sandbox *sb, int cgroup_fd, int errfd,
			     int (*exec)(void *arg), void *arg);

/* In the supervisor after clone3: closes the child's end of the status
 * pipe. */
void sandbox_after_clone(struct sandbox *sb);

/* After the clone3 child was reaped with si: when that child was the
 * job's init, replaces si's code and status with those of the job's main
 * process as the init reported them. An init that did not report (it was
 * killed with the whole group, by Stop) leaves si as it is. */
void sandbox_main_status(struct sandbox *sb, siginfo_t *si);

/* Describes step (an index, or SANDBOX_STEP_*) into buf, e.g. "mount
 * tmpfs on /tmp", for the failure the child reported. Returns buf. */
const char *sandbox_step_name(const struct sandbox *sb, int step, char *buf, size_t cap);

#endif
