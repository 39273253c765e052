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

#define JOB_NOFILE 1024 /* the conventional soft limit jobs get back */

void jobspawn_plan_init(struct jobspawn_plan *p, char **argv)
{
	memset(p, 0, sizeof *p);
	p->argv = argv;
	p->envp[0] = xstrdup("PATH=" HANDOFF_PATH);
	p->envp[1] = xstrdup("HOME=/");
	p->envp[2] = xstrdup("LANG=C.UTF-8");
	p->envp[3] = NULL;
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

void jobspawn_plan_free(struct jobspawn_plan *p)
{
	for (size_t i = 0; i < 3; i++)
		free(p->envp[i]);
	for (size_t i = 0; p->paths && p->paths[i]; i++)
		free(p->paths[i]);
	free(p->paths);
	p->paths = NULL;
	memset(p->envp, 0, sizeof p->envp);
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

static _Noreturn void child_exec(const struct jobspawn_plan *p, int errpipe)
{
	struct sigaction dfl;
	bool eacces = false;
	int e = 0;
	if (dup2(p->stdin_fd, STDIN_FILENO) < 0 || dup2(p->stdout_fd, STDOUT_FILENO) < 0 ||
	    dup2(p->stderr_fd, STDERR_FILENO) < 0 || chdir("/") < 0) {
		e = errno;
		goto fail;
	}
	/* exec keeps ignored signals ignored and the signal mask: give the
	 * job pristine ones, whatever we or the daemon had. */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigprocmask(SIG_SETMASK, &p->empty, NULL);
	/* The daemon raises its descriptor limit for its own bookkeeping; the
	 * job gets the conventional soft limit back (some programs loop over
	 * every possible fd). */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > JOB_NOFILE) {
		nofile.rlim_cur = JOB_NOFILE;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}

	/* Like execvp: ENOENT-like errors move on to the next directory, the
	 * first EACCES wins if nothing runs, anything else (ENOEXEC...) is
	 * final. No shell fallback. */
	e = ENOENT;
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
		goto fail;
	}
	if (eacces)
		e = EACCES;
fail:;
	ssize_t w;
	do
		w = write(errpipe, &e, sizeof e);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* ---- the parent ---- */

int jobspawn_start(const struct jobspawn_plan *p, struct jobspawn_child *out, struct err *err)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return err_sys(err, errno, "pipe");
	_cleanup_close_ int ep_r = ep[0], ep_w = ep[1];
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD | (p->cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = p->cgroup_fd >= 0 ? (uint64_t)p->cgroup_fd : 0;
	pid_t pid = sys_clone3(&ca);
	if (pid == 0)
		child_exec(p, ep_w);
	if (pid < 0)
		return err_sys(err, errno, "clone3 into cgroup %s",
			       p->cgroup_name ? p->cgroup_name : "(own)");
	closep(&ep_w);
	ep_w = -1;

	/* EOF: the CLOEXEC end closed because execve succeeded. */
	int child_errno = 0;
	ssize_t n = read_retry(ep_r, &child_errno, sizeof child_errno);
	if (n == (ssize_t)sizeof child_errno) {
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		close(pidfd);
		return err_set(err, child_errno, jobspawn_exec_kind(child_errno), "exec \"%s\": %s",
			       p->argv[0], strerror(child_errno));
	}
	out->pid = pid;
	out->pidfd = pidfd;
	return 0;
}
