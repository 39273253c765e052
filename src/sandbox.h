/* sandbox: what confines one job (DESIGN §10, README "Threat model").
 *
 * The operator's policy (struct sandbox_policy) is decided by the daemon,
 * persisted in the job's spec and handed to the supervisor, which turns it
 * into a plan: every path checked, every string built before clone3. The
 * plan's steps run in order, as bubblewrap's setup ops do, in two
 * processes and at two moments, so that most of the work is done before
 * a Start arrives (a spare supervisor prepares its job's sandbox while it
 * waits, suppool.h):
 *
 *   sandbox_init_start, before the job is known:
 *     clone3(NEWPID|NEWNS|NEWIPC|NEWUTS [|NEWNET]) the job's init, PID 1
 *     of its PID namespace, which stays in the supervisor's cgroup (so
 *     the job's limits and accounting are the job's) and holds the job's
 *     namespaces. Where sys.h has the clone trampoline it runs in the
 *     supervisor's memory (CLONE_VM) on a stack of its own: no address
 *     space to copy, and none to tear down when it dies. It makes the
 *     job's view: the host's whole tree private, read-only and nosuid;
 *     the state and key directories hidden under an empty read-only
 *     directory; a fresh /proc; private /tmp, /var/tmp, /dev/shm and
 *     /run/lock (directories of one tmpfs, which holds -job_tmp_size in
 *     all); the IPC namespace's own /dev/mqueue;
 *     [-job_network none: loopback up] [-rootfs: pivot_root into DIR].
 *     Then, in a session of its own, it forwards the signals it gets to
 *     the main process (with the PID namespace) and reaps the job's
 *     orphans, until its supervisor kills it at the job's end
 *     (or dies: PR_SET_PDEATHSIG).
 *   sandbox_spawn, at the Start: the supervisor clones the job's main
 *     process INTO_CGROUP (the job's group) in the init's PID namespace,
 *     sharing its memory until the exec (CLONE_VM | CLONE_VFORK). The
 *     main process enters the init's other namespaces (setns on its
 *     pidfd), binds its own group read-only over the cgroup2 mount, takes
 *     a new cgroup namespace rooted there, setgroups(0), setresgid,
 *     setresuid, empty capability sets, default SIGPIPE, a seccomp
 *     filter against new namespaces, keyrings and io_uring; then, in a
 *     session of its own, execs. What it needs from the supervisor (an
 *     empty bounding set, no_new_privs, RLIMIT_NPROC, default signal
 *     dispositions, an empty session keyring nobody else has) the
 *     supervisor gave itself before the job (sandbox_limit_self), as it
 *     never execs.
 *
 * A PID namespace's init ignores signals it has no handler for, so the job
 * is never PID 1: the init is our own code, not an exec. The main process
 * is the supervisor's child (it reaps it and reads its status), pid 2 in
 * the namespace.
 *
 * An init started early copied the host's mount table and host name
 * then: sandbox_init_fresh tells whether either changed since, and the
 * supervisor starts a new one if so.
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

/* What a child reports over a report pipe. */
struct sandbox_report {
	int32_t err;  /* errno */
	int32_t step; /* index into steps, or SANDBOX_STEP_* */
};
#define SANDBOX_STEP_EXEC (-1)
#define SANDBOX_STEP_IDENTITY (-2)
#define SANDBOX_STEP_ENTER (-4) /* the main process entering the init's namespaces */
#define SANDBOX_STEP_READY (-5) /* the init is ready (err 0), or died first */

/* A pipe; -1 for an end this process does not hold. */
struct sandbox_pipe {
	int r, w;
};

/* The stacks a confined job's main process (until its exec) and its init
 * run on, in our memory. */
#define SANDBOX_MAIN_STACK (256u << 10)
#define SANDBOX_INIT_STACK (64u << 10)

struct sandbox {
	bool root;
	unsigned namespaces;
	struct sandbox_step *steps;
	size_t n_steps;
	/* Steps [0, n_early) are the init's, before the job is known; the
	 * rest (the job's cgroup) the main process's. */
	size_t n_early;
	int last_cap; /* /proc/sys/kernel/cap_last_cap */
	uint64_t max_procs;

	/* The init, from sandbox_init_start on. */
	pid_t init_pid;
	int init_pidfd;
	struct sandbox_pipe report; /* the init's "ready", while it starts */
	/* The host's view the init copied: a poll on mounts_fd says whether
	 * the mount table changed since; hostname and domainname are the UTS
	 * names then. */
	int mounts_fd;
	char hostname[65], domainname[65];
	int own_pidns; /* our own PID namespace, to return to after a spawn */
	int init_root; /* O_PATH: the init's root directory, in its mount namespace */
	void *stack;   /* both stacks, with guard pages; or NULL */
};

/* Builds the plan for policy p (see the top of this file). Directories
 * that do not exist are left out (nothing to hide or cover). On success
 * *sb owns its strings; no process or fd yet. 0 or -errno with err set. */
int sandbox_prepare(const struct sandbox_policy *p, struct sandbox *sb, struct err *err);
/* Stops the init if it still runs (sandbox_init_stop), closes every fd,
 * unmaps the stack and frees the plan. Accepts a prepared or freed sandbox
 * (not a zeroed one: its fds would read as 0). */
void sandbox_free(struct sandbox *sb);

/* clone3 flags of the job's init: its namespaces (0 for a root plan). */
uint64_t sandbox_clone_flags(const struct sandbox *sb);

/* For the supervisor of a confined job, which never execs: what its job's
 * main process inherits from it and it needs none of. The bounding and
 * ambient capability sets emptied, no_new_privs, RLIMIT_NPROC (which does
 * not bind root), every signal disposition but SIGPIPE's default, the
 * job's RLIMIT_NOFILE, a new empty session keyring. 0 or -errno with err
 * set. */
int sandbox_limit_self(const struct sandbox *sb, struct err *err);

/* Starts the job's init, before the job is known, in the caller's cgroup,
 * and waits until it made the job's view (the early steps). If wake_fd
 * (-1: none) becomes readable meanwhile, a job waits: the init, which
 * inherited our class and may be idle, is raised to the normal one. 0; 1
 * when the init failed, with *rep saying at which step (nothing is left
 * running); or -errno with err set. */
int sandbox_init_start(struct sandbox *sb, int wake_fd, struct sandbox_report *rep,
		       struct err *err);

/* True while the init started earlier can take a job: it lives, and the
 * host's mount table and UTS names are as it copied them (a spare's view
 * of the host must not be older than the job). */
bool sandbox_init_fresh(const struct sandbox *sb);

/* Kills and reaps the init and closes what it left; the plan is kept, so
 * sandbox_init_start may run again. */
void sandbox_init_stop(struct sandbox *sb);
/* Kills the init without waiting (the job ended: its namespaces go). */
void sandbox_init_kill(struct sandbox *sb);

/* What the main process runs as, and runs. */
struct sandbox_job {
	uint32_t uid, gid;
	/* Sets up stdio and execs (jobspawn.h); returns an errno (with
	 * whatever bits the caller adds) only on failure. Async-signal-safe. */
	int (*exec)(void *arg);
	void *arg;
};

struct sandbox_child {
	pid_t pid;
	int pidfd; /* the caller's */
};

/* Clones the job's main process into cgroup_fd (job_cgroup is that
 * group's path), in the init's PID namespace, as our child; it enters the
 * init's other namespaces, binds its group, drops its identity and
 * execs. Returns once it exec'd (0, *out set) or failed (1, *rep says at
 * which step, the child reaped), or -errno with err set. The caller must
 * ignore SIGPIPE, be single-threaded, and have run sandbox_limit_self. */
int sandbox_spawn(struct sandbox *sb, const struct sandbox_job *job, const char *job_cgroup,
		  int cgroup_fd, struct sandbox_child *out, struct sandbox_report *rep,
		  struct err *err);

/* Reads a struct sandbox_report from fd: 1 with *rep set, 0 at EOF (the
 * exec happened). */
int sandbox_wait_report(int fd, struct sandbox_report *rep);

/* Gives the calling process every default signal disposition but
 * except's (0: all) and the RLIMIT_NOFILE soft limit a job starts with
 * (SANDBOX_JOB_NOFILE). Async-signal-safe. */
void sandbox_job_defaults(int except);

/* Describes step (an index, or SANDBOX_STEP_*) into buf, e.g. "mount
 * tmpfs on /tmp", for the failure the child reported. Returns buf. */
const char *sandbox_step_name(const struct sandbox *sb, int step, char *buf, size_t cap);

/* True when a and b confine jobs alike (everything but uid and gid). */
bool sandbox_policy_same(const struct sandbox_policy *a, const struct sandbox_policy *b);

#endif
