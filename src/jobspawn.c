/* jobspawn: a job's process from a prepared plan. See spawn.h. */
#include "jobspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "handoff.h"
#include "sys.h"
#include "util.h"

/* The child cannot enter the working directory: its errno travels back
 * with this bit, through the sandbox's report, to tell it from an exec
 * failure (errno values are far below it). */
#define CWD_FAILED (1 << 20)

void jobspawn_plan_init(struct jobspawn_plan *p, char **argv)
{
	static const char *const defaults[] = JOBSPAWN_DEFAULT_ENV;
	memset(p, 0, sizeof *p);
	p->argv = argv;
	p->cwd = "/";
	p->envp = xcalloc(ARRAY_SIZE(defaults) + 1, sizeof *p->envp);
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		p->envp[i] = xstrdup(defaults[i]);
	p->stdin_fd = p->stdout_fd = p->stderr_fd = p->cgroup_fd = -1;
	sigemptyset(&p->empty);

	const char *name = argv[0];
	if (strchr(name, '/')) {
		p->paths = xcalloc(2, sizeof *p->paths);
		p->paths[0] = xstrdup(name);
		return;
	}
	static const char path[] = HANDOFF_PATH;
	size_t n = 1;
	for (const char *c = path; *c; c++)
		n += *c == ':';
	p->paths = xcalloc(n + 1, sizeof *p->paths);
	size_t i = 0;
	for (const char *d = path; i < n; i++) {
		size_t dl = strcspn(d, ":");
		p->paths[i] = xasprintf("%.*s/%s", (int)dl, d, name);
		d += dl + (d[dl] == ':');
	}
}

void jobspawn_plan_env(struct jobspawn_plan *p, char *const *env, size_t n)
{
	size_t have = 0;
	while (p->envp[have])
		have++;
	p->envp = xrealloc(p->envp, (have + n + 1) * sizeof *p->envp);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strcspn(env[i], "=") + 1; /* with the '=' */
		size_t k = 0;
		while (k < have && strncmp(p->envp[k], env[i], klen) != 0)
			k++;
		if (k == have)
			have++;
		else
			free(p->envp[k]);
		p->envp[k] = xstrdup(env[i]);
	}
	p->envp[have] = NULL;
}

void jobspawn_plan_free(struct jobspawn_plan *p)
{
	for (size_t i = 0; p->envp && p->envp[i]; i++)
		free(p->envp[i]);
	free(p->envp);
	p->envp = NULL;
	for (size_t i = 0; p->paths && p->paths[i]; i++)
		free(p->paths[i]);
	free(p->paths);
	p->paths = NULL;
}

enum err_kind jobspawn_exec_kind(int e)
{
	switch (e) {
	case ENOENT:
		return ERR_NOT_FOUND;
	case EACCES:
	case ENOEXEC:
	case ENOTDIR:
	case EPERM:
	case ELOOP:
	case ENAMETOOLONG:
	case EISDIR:
	case ETXTBSY:
	case ELIBBAD:
		return ERR_PRECONDITION;
	case ENOMEM:
	case E2BIG:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
		return ERR_EXHAUSTED;
	default:
		return ERR_INTERNAL;
	}
}

/* ---- the child, between clone3 and execve: async-signal-safe only ---- */

int jobspawn_exec(void *arg)
{
	const struct jobspawn_plan *p = arg;
	bool eacces = false;
	if (dup2(p->stdin_fd, STDIN_FILENO) < 0 || dup2(p->stdout_fd, STDOUT_FILENO) < 0 ||
	    dup2(p->stderr_fd, STDERR_FILENO) < 0)
		return errno;
	if (chdir(p->cwd) < 0)
		return errno | CWD_FAILED;
	/* A session and process group of its own: the job's process groups
	 * are the job's, and an orphaned one it leaves (the kernel then sends
	 * SIGHUP and SIGCONT to the whole group) reaches none of ours. */
	if (setsid() < 0)
		return errno;
	/* Pristine dispositions and the conventional descriptor limit,
	 * unless the job's init gave them already; and an empty mask (exec
	 * keeps it). */
	if (!p->defaults_set)
		sandbox_job_defaults(0);
	sigprocmask(SIG_SETMASK, &p->empty, NULL);

	/* Like execvp: ENOENT-like errors move on to the next directory, the
	 * first EACCES wins if nothing runs, anything else (ENOEXEC...) is
	 * final. No shell fallback. */
	int e = ENOENT;
	for (size_t i = 0; p->paths[i]; i++) {
		execve(p->paths[i], p->argv, p->envp);
		e = errno;
		if (e == EACCES) {
			eacces = true;
			continue;
		}
		if (e == ENOENT || e == ENOTDIR || e == ESTALE || e == ENODEV || e == ETIMEDOUT ||
		    e == ENAMETOOLONG)
			continue;
		return e;
	}
	return eacces ? EACCES : e;
}

/* A root job's child: the exec, or its errno over errfd. */
static _Noreturn void exec_or_report(const struct jobspawn_plan *p, int errfd)
{
	struct sandbox_report rep = {.err = jobspawn_exec((void *)p), .step = SANDBOX_STEP_EXEC};
	ssize_t w;
	do
		w = write(errfd, &rep, sizeof rep);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* ---- the parent ---- */

int jobspawn_report_err(const struct sandbox_report *rep, const struct jobspawn_what *what,
			struct err *err)
{
	if (rep->step == SANDBOX_STEP_EXEC && (rep->err & CWD_FAILED)) {
		int e = rep->err & ~CWD_FAILED;
		return err_set(err, e, ERR_PRECONDITION, "cwd \"%s\": the job cannot enter it: %s",
			       what->cwd, strerror(e));
	}
	if (rep->step == SANDBOX_STEP_EXEC)
		return err_set(err, rep->err, jobspawn_exec_kind(rep->err), "exec \"%s\": %s",
			       what->argv0, strerror(rep->err));
	char step[512];
	return err_set(err, rep->err, ERR_INTERNAL, "sandbox: %s: %s",
		       sandbox_step_name(what->sandbox, rep->step, step, sizeof step),
		       strerror(rep->err));
}

int jobspawn_start(const struct jobspawn_plan *p, struct jobspawn_child *out, struct err *err)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return err_sys(err, errno, "pipe");
	_cleanup_close_ int ep_r = ep[0], ep_w = ep[1];
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD;
	if (p->cgroup_fd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)p->cgroup_fd;
	}
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	pid_t pid = sys_clone3(&ca);
	if (pid == 0)
		exec_or_report(p, ep_w);
	if (pid < 0)
		return err_sys(err, errno, "clone3 for cgroup %s",
			       p->cgroup_name ? p->cgroup_name : "(own)");
	closep(&ep_w);
	ep_w = -1;

	/* EOF: the CLOEXEC end closed because execve succeeded. */
	struct sandbox_report rep;
	if (sandbox_wait_report(ep_r, &rep) == 1) {
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		close(pidfd);
		struct sandbox none = {.root = true};
		return jobspawn_report_err(&rep, &(struct jobspawn_what){p->argv[0], p->cwd, &none},
					   err);
	}
	out->pid = pid;
	out->pidfd = pidfd;
	return 0;
}
