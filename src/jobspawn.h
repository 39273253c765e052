/* jobspawn: starting a job's process from a prepared exec plan.
 *
 * The plan is built (allocating, in the supervisor) before clone3, so the
 * child between clone3 and execve makes only async-signal-safe calls:
 * dup2 of the plan's descriptors onto 0-2, chdir to the plan's cwd (as
 * the job's own uid, inside its namespaces), default signal
 * dispositions and an empty mask, the conventional RLIMIT_NOFILE soft
 * limit, then an execvp-like walk over the plan's candidate paths. An
 * exec failure travels back over a CLOEXEC pipe as an errno.
 *
 * The child confines itself as the plan's sandbox says (sandbox.h): a
 * confined job's first child is its init, and the exec walk runs in the
 * main process the init clones. */
#ifndef RUND_JOBSPAWN_H
#define RUND_JOBSPAWN_H

#include <signal.h>
#include <sys/types.h>

#include "err.h"
#include "sandbox.h"

/* The environment every job starts from, exactly (README "Jobs"); a
 * start request's env entries are added to it or replace its entries. */
#define JOBSPAWN_DEFAULT_ENV                                                                       \
	{                                                                                          \
		"PATH=" HANDOFF_PATH, "HOME=/", "LANG=C.UTF-8"                                     \
	}

struct jobspawn_plan {
	char **argv;	 /* borrowed; argv[0] is the name */
	char **envp;	 /* owned, NULL-terminated: JOBSPAWN_DEFAULT_ENV + extra */
	const char *cwd; /* borrowed; the job's working directory */
	char **paths;	 /* owned candidate executables, NULL-terminated */
	int stdin_fd;	 /* borrowed descriptors the job gets as 0, 1, 2 */
	int stdout_fd;
	int stderr_fd;
	int cgroup_fd;		 /* CLONE_INTO_CGROUP target; -1: the caller's cgroup */
	const char *cgroup_name; /* for messages; borrowed */
	sigset_t empty;		 /* the job's signal mask */
	struct sandbox *sandbox; /* borrowed, prepared; NULL: exec as we are */
};

/* Prepares argv's plan: a clean environment and, for a name without a
 * slash, one candidate per directory of HANDOFF_PATH; cwd "/".
 * Descriptors are -1; the caller sets them. */
void jobspawn_plan_init(struct jobspawn_plan *p, char **argv);
/* Adds env[0..n) ("KEY=VALUE", validated by jobspec) to the plan's
 * environment; an entry whose KEY is already there replaces it, in place. */
void jobspawn_plan_env(struct jobspawn_plan *p, char *const *env, size_t n);
void jobspawn_plan_free(struct jobspawn_plan *p); /* accepts zeroed */

struct jobspawn_child {
	pid_t pid;
	int pidfd; /* owned by the caller */
};

/* clone3()s the job (into p->cgroup_fd when >= 0, with CLONE_PIDFD; a
 * confined job's init instead, which clones the main process into it) and
 * waits until it exec'd. out->pid and out->pidfd are the first child's. 0
 * with *out set; or -errno with err set and nothing left running: the kind
 * follows the exec errno (ENOENT ERR_NOT_FOUND; EACCES, ENOEXEC...
 * ERR_PRECONDITION; E2BIG, ENOMEM... ERR_EXHAUSTED), a working directory
 * the job cannot enter is ERR_PRECONDITION naming it, a failed clone3 or
 * sandbox step is ERR_INTERNAL naming the step. */
int jobspawn_start(const struct jobspawn_plan *p, struct jobspawn_child *out, struct err *err);

/* The err_kind an exec failure with errno e maps to. */
enum err_kind jobspawn_exec_kind(int e);

#endif
