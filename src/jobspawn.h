/* jobspawn: starting a job's process from a prepared exec plan.
 *
 * The plan is built (allocating) before clone3, so the child between
 * clone3 and execve makes only async-signal-safe calls: dup2 of the plan's
 * descriptors onto 0-2, chdir to the plan's cwd (as the job's own uid,
 * inside its namespaces), a session of its own, default signal
 * dispositions and an empty mask, the conventional RLIMIT_NOFILE soft
 * limit, then an execvp-like walk over the plan's candidate paths. An exec
 * failure travels back over a CLOEXEC pipe as an errno.
 *
 * A root job is cloned and exec'd here (jobspawn_start). A confined job's
 * main process is cloned by sandbox_spawn, which calls jobspawn_exec once
 * the job is confined. */
#ifndef RUND_JOBSPAWN_H
#define RUND_JOBSPAWN_H

#include <signal.h>
#include <stdbool.h>
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
	bool defaults_set;	 /* dispositions and NOFILE are the job's already (sandbox.h) */
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

/* clone3()s a root job (into p->cgroup_fd when >= 0, with CLONE_PIDFD)
 * and waits until it exec'd. 0 with *out set; or -errno with err set
 * (jobspawn_report_err) and nothing left running. */
int jobspawn_start(const struct jobspawn_plan *p, struct jobspawn_child *out, struct err *err);

/* The child's side: sets up stdio and the rest (top of this file) and
 * execs plan p. Returns only on failure, with an errno; a working
 * directory the job cannot enter adds a bit that jobspawn_report_err
 * reads back. Async-signal-safe. */
int jobspawn_exec(void *p);

/* What a failure report is about, for its message. */
struct jobspawn_what {
	const char *argv0, *cwd;
	const struct sandbox *sandbox; /* names the steps */
};

/* Turns a child's report into err: the kind follows the exec errno
 * (ENOENT ERR_NOT_FOUND; EACCES, ENOEXEC... ERR_PRECONDITION; E2BIG,
 * ENOMEM... ERR_EXHAUSTED), a working directory the job cannot enter is
 * ERR_PRECONDITION naming it, a failed sandbox step ERR_INTERNAL naming
 * the step. Returns -errno. */
int jobspawn_report_err(const struct sandbox_report *rep, const struct jobspawn_what *what,
			struct err *err);

/* The err_kind an exec failure with errno e maps to. */
enum err_kind jobspawn_exec_kind(int e);

#endif
