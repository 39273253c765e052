/* supervisor: `rund execute -fifo PATH`, one process per job (protocol in
 * supervisor.h).
 *
 * Life: read the spec from the FIFO, detach (setsid), lock the job
 * directory, create the cgroup, clone3() the job straight into it and exec
 * it, report "ok" or "err ..." to the daemon, then copy output into the log
 * until the job and everything it left behind are gone, record the final
 * status and remove the cgroup. Single-threaded; the only blocking points
 * are the FIFO read (ended by EOF if the daemon dies) and poll(). */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "err.h"
#include "jobspec.h"
#include "logstore.h"
#include "sys.h"
#include "util.h"

#define SPEC_MAX (16u << 20)  /* bounded request read from the FIFO */
#define STATUS_TRIES 10	      /* one a second */
#define STATUS_UNWRITABLE 3   /* exit code: the final status could not be written */
#define PIPE_SIZE (1 << 20)   /* larger pipes: fewer wakeups for chatty jobs */
#define READ_CHUNK (1u << 20) /* one read per wakeup; <= LOGSTORE_MAX_RECORD */
#define REMOVE_TIMEOUT_MS 10000
#define DRAIN_REKILL_MS 2000  /* after exit: kill the group again if pipes stay open */
#define DRAIN_GIVEUP_MS 10000 /* ... and stop waiting for EOF (a process escaped) */

static const char job_path[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/* Everything the child needs, prepared before clone3 so that the child
 * only makes async-signal-safe calls. */
struct exec_plan {
	char **argv;
	char *envp[4];
	char **paths; /* candidate executables, NULL-terminated */
	int devnull, out_w, err_w, errpipe_w;
	sigset_t empty;
};

/* ---- reporting to the daemon ---- */

/* One line, so the message is flattened: argv may contain newlines. */
static void report_err(const struct err *e)
{
	char msg[ERR_MSG_MAX];
	size_t n = strnlen(e->msg, sizeof msg - 1);
	memcpy(msg, e->msg, n);
	msg[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20)
			msg[i] = ' ';
	char line[ERR_MSG_MAX + 64];
	int len = snprintf(line, sizeof line, "err %d %d %s\n", e->code ? e->code : EIO,
			   (int)(e->kind ? e->kind : ERR_INTERNAL), msg);
	if (len > 0)
		write_all(STDOUT_FILENO, line,
			  (size_t)len < sizeof line ? (size_t)len : sizeof line);
}

/* ---- start-up helpers ---- */

/* The daemon might have started us with 0/1/2 closed or leaked fds without
 * CLOEXEC; make 0-2 valid (so our pipes never land there) and close the
 * rest, so nothing of the daemon reaches the job. */
static void sanitize_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
	close_range(3, ~0u, 0);
}

static const char *parse_args(int argc, char **argv)
{
	const char *fifo = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "execute") == 0)
			continue;
		if (a[0] == '-' && a[1] == '-')
			a++;
		if (strcmp(a, "-fifo") == 0 && i + 1 < argc)
			fifo = argv[++i];
		else if (strncmp(a, "-fifo=", 6) == 0)
			fifo = a + 6;
		else
			return NULL;
	}
	return fifo;
}

/* Reads the request: a decimal length line, then that many bytes of
 * jobspec. The daemon keeps its end open until we report, so there is no
 * EOF to wait for (see supervisor.h). */
static int read_request(int fd, char **out, size_t *len, struct err *err)
{
	char hdr[24];
	size_t n = 0;
	for (;;) {
		ssize_t r = read_retry(fd, hdr + n, 1);
		if (r <= 0)
			return r < 0 ? err_sys(err, (int)-r, "read request header")
				     : err_set(err, EPROTO, ERR_INTERNAL,
					       "request ends in its header");
		if (hdr[n] == '\n')
			break;
		if (++n == sizeof hdr - 1)
			return err_set(err, EPROTO, ERR_INTERNAL, "request header too long");
	}
	hdr[n] = '\0';
	uint64_t want;
	if (parse_u64(hdr, &want) < 0 || want > SPEC_MAX)
		return err_set(err, EPROTO, ERR_INTERNAL, "bad request length \"%s\"", hdr);
	_cleanup_free_ char *buf = xmalloc(want + 1);
	for (size_t have = 0; have < want;) {
		ssize_t r = read_retry(fd, buf + have, want - have);
		if (r <= 0)
			return r < 0 ? err_sys(err, (int)-r, "read request")
				     : err_set(err, EPROTO, ERR_INTERNAL,
					       "request truncated at %zu of %llu bytes", have,
					       (unsigned long long)want);
		have += (size_t)r;
	}
	buf[want] = '\0';
	*out = steal_pointer(&buf);
	*len = want;
	return 0;
}

/* Waits for the request. No timeout is needed: the daemon holds the FIFO's
 * other end, so if it dies before writing, the read sees EOF. */
static int read_spec(const char *fifo, struct jobspec *spec, struct err *err)
{
	/* O_NONBLOCK so the open never waits for a writer: if the daemon's end
	 * is already gone, the first read sees EOF instead of hanging. */
	_cleanup_close_ int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "open fifo %s", fifo);
	if (fcntl(fd, F_SETFL, 0) < 0)
		return err_sys(err, errno, "fifo %s", fifo);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_request(fd, &buf, &len, err);
	if (r < 0)
		return err_wrap(err, "fifo %s", fifo);
	r = jobspec_decode(buf, len, spec, err);
	if (r < 0)
		return err_wrap(err, "job request");
	if (!spec->cgroup)
		return err_set(err, EINVAL, ERR_INTERNAL, "job request names no cgroup root");
	return 0;
}

/* The FIFO is <state_dir>/run/<name>; the job is <state_dir>/jobs/<id>. */
static int open_jobdir(const char *fifo, const char *id, struct err *err)
{
	const char *slash = strrchr(fifo, '/');
	_cleanup_free_ char *run =
		slash ? xstrndup(fifo, slash == fifo ? 1 : (size_t)(slash - fifo)) : xstrdup(".");
	_cleanup_free_ char *dir = xasprintf("%s/../jobs/%s", run, id);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_sys(err, errno, "open job directory %s", dir);
	return fd;
}

static int take_lock(int dirfd, struct err *err)
{
	int fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_sys(err, errno, "open lock file");
	/* Non-blocking: a second supervisor for one job is a bug, not
	 * something to wait for. */
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return err_set(err, EBUSY, ERR_INTERNAL,
				       "another supervisor holds this job's lock");
		return err_sys(err, e, "lock job directory");
	}
	return fd;
}

static void plan_init(struct exec_plan *p, const struct jobspec *spec)
{
	memset(p, 0, sizeof *p);
	p->argv = spec->argv;
	p->envp[0] = xasprintf("PATH=%s", job_path);
	p->envp[1] = xstrdup("HOME=/");
	p->envp[2] = xstrdup("LANG=C.UTF-8");
	p->envp[3] = NULL;
	sigemptyset(&p->empty);

	const char *name = spec->argv[0];
	if (strchr(name, '/')) {
		p->paths = xcalloc(2, sizeof *p->paths);
		p->paths[0] = xstrdup(name);
		return;
	}
	size_t n = 1;
	for (const char *c = job_path; *c; c++)
		n += *c == ':';
	p->paths = xcalloc(n + 1, sizeof *p->paths);
	size_t i = 0;
	for (const char *d = job_path; i < n; i++) {
		size_t dl = strcspn(d, ":");
		p->paths[i] = xasprintf("%.*s/%s", (int)dl, d, name);
		d += dl + (d[dl] == ':');
	}
}

static void plan_free(struct exec_plan *p)
{
	for (size_t i = 0; i < 3; i++)
		free(p->envp[i]);
	for (size_t i = 0; p->paths && p->paths[i]; i++)
		free(p->paths[i]);
	free(p->paths);
}

/* ---- the child, between clone3 and execve: async-signal-safe only ---- */

static _Noreturn void child_exec(const struct exec_plan *p)
{
	struct sigaction dfl;
	bool eacces = false;
	int e = 0;
	if (dup2(p->devnull, STDIN_FILENO) < 0 || dup2(p->out_w, STDOUT_FILENO) < 0 ||
	    dup2(p->err_w, STDERR_FILENO) < 0 || chdir("/") < 0) {
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
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > 1024) {
		nofile.rlim_cur = 1024;
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
		w = write(p->errpipe_w, &e, sizeof e);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* ---- the supervisor proper ---- */

struct job {
	struct jobspec spec;
	struct cgroup_root root;
	int dirfd, lockfd, cgfd, devnull, pidfd;
	int out_r, err_r;
	pid_t pid;
	struct logwriter log;
	uint8_t *buf;
};

static enum err_kind exec_kind(int e)
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

static int make_pipe(int fds[2], bool big, struct err *err)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_sys(err, errno, "pipe");
	if (big)
		fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE); /* best effort */
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Creates the cgroup and starts the job. On failure nothing is left but
 * the job directory's files; err says why. */
static int start_job(struct job *j, struct err *err)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, ep[2] = {-1, -1};
	int pidfd = -1, child_errno = 0, clone_errno;
	struct exec_plan plan;
	struct clone_args ca;
	pid_t pid;
	ssize_t n;

	int r = cgroup_root_open(j->spec.cgroup, &j->root, err);
	if (r < 0)
		return r;
	r = cgroup_job_create(&j->root, j->spec.id, &j->spec.limits, j->spec.io_devices,
			      j->spec.n_io_devices, &j->cgfd, err);
	if (r < 0)
		return r;

	r = logwriter_open(&j->log, j->dirfd, "log", j->spec.max_log_bytes);
	if (r < 0) {
		err_sys(err, -r, "create log file");
		goto bad_cgroup;
	}
	j->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (j->devnull < 0) {
		r = err_sys(err, errno, "open /dev/null");
		goto bad_cgroup;
	}
	if ((r = make_pipe(out, true, err)) < 0 || (r = make_pipe(errp, true, err)) < 0 ||
	    (r = make_pipe(ep, false, err)) < 0)
		goto bad_pipes;

	plan_init(&plan, &j->spec);
	plan.devnull = j->devnull;
	plan.out_w = out[1];
	plan.err_w = errp[1];
	plan.errpipe_w = ep[1];

	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)j->cgfd;
	pid = sys_clone3(&ca);
	if (pid == 0)
		child_exec(&plan);
	clone_errno = errno;
	plan_free(&plan);
	close_fd(&out[1]);
	close_fd(&errp[1]);
	close_fd(&ep[1]);
	if (pid < 0) {
		r = err_sys(err, clone_errno, "clone3 into cgroup %s/jobs/%s", j->root.path,
			    j->spec.id);
		goto bad_pipes;
	}
	j->pid = pid;
	j->pidfd = pidfd;

	/* EOF: the CLOEXEC end closed because execve succeeded. */
	n = read_retry(ep[0], &child_errno, sizeof child_errno);
	close_fd(&ep[0]);
	if (n == (ssize_t)sizeof child_errno) {
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)j->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		close_fd(&j->pidfd);
		r = err_set(err, child_errno, exec_kind(child_errno), "exec \"%s\": %s",
			    j->spec.argv[0], strerror(child_errno));
		goto bad_pipes;
	}
	j->out_r = out[0];
	j->err_r = errp[0];
	return 0;

bad_pipes:
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	close_fd(&ep[0]);
	close_fd(&ep[1]);
bad_cgroup:
	close_fd(&j->cgfd);
	cgroup_job_remove(&j->root, j->spec.id, REMOVE_TIMEOUT_MS, NULL);
	unlinkat(j->dirfd, "log", 0);
	return r;
}

/* One read from a pipe into the log. Returns false at EOF or on error. */
static bool pump(struct job *j, int fd, enum log_stream stream)
{
	ssize_t n = read_retry(fd, j->buf, READ_CHUNK);
	if (n <= 0)
		return false;
	/* A full disk loses output but must not stop the draining: a job
	 * blocked on a full pipe would never end. */
	logwriter_append(&j->log, stream, j->buf, (size_t)n);
	return true;
}

static void run_job(struct job *j, struct jobstatus *st)
{
	bool exited = false;
	uint64_t exit_mono = 0;
	bool rekilled = false;
	j->buf = xmalloc(READ_CHUNK);

	while (j->out_r >= 0 || j->err_r >= 0 || !exited) {
		struct pollfd pfd[3];
		int nfd = 0, i_out = -1, i_err = -1, i_pid = -1;
		if (j->out_r >= 0) {
			i_out = nfd;
			pfd[nfd++] = (struct pollfd){.fd = j->out_r, .events = POLLIN};
		}
		if (j->err_r >= 0) {
			i_err = nfd;
			pfd[nfd++] = (struct pollfd){.fd = j->err_r, .events = POLLIN};
		}
		if (!exited) {
			i_pid = nfd;
			pfd[nfd++] = (struct pollfd){.fd = j->pidfd, .events = POLLIN};
		}
		int timeout = exited ? 500 : -1;
		int pr = poll(pfd, (nfds_t)nfd, timeout);
		if (pr < 0 && errno != EINTR)
			break;

		if (pr > 0 && i_out >= 0 && pfd[i_out].revents && !pump(j, j->out_r, LOG_STDOUT))
			close_fd(&j->out_r);
		if (pr > 0 && i_err >= 0 && pfd[i_err].revents && !pump(j, j->err_r, LOG_STDERR))
			close_fd(&j->err_r);
		if (pr > 0 && i_pid >= 0 && pfd[i_pid].revents) {
			siginfo_t si;
			memset(&si, 0, sizeof si);
			int w;
			while ((w = waitid(P_PIDFD, (id_t)j->pidfd, &si, WEXITED)) < 0 &&
			       errno == EINTR)
				;
			st->end_ns = now_real_ns();
			exit_mono = now_mono_ns();
			exited = true;
			if (w == 0 && si.si_code == CLD_EXITED) {
				st->exited = true;
				st->exit_code = si.si_status;
			} else if (w == 0) {
				st->exited = false;
				st->signal = si.si_status;
			}
			close_fd(&j->pidfd);
			/* Whatever the job left running dies with it, or a
			 * daemonized grandchild holding the pipes would keep us
			 * here forever. */
			cgroup_job_kill(&j->root, j->spec.id, NULL);
		}
		if (exited && (j->out_r >= 0 || j->err_r >= 0)) {
			uint64_t ms = (now_mono_ns() - exit_mono) / 1000000u;
			if (ms >= DRAIN_REKILL_MS && !rekilled) {
				cgroup_job_kill(&j->root, j->spec.id, NULL);
				rekilled = true;
			}
			if (ms >= DRAIN_GIVEUP_MS) {
				/* Someone outside the group (a process that moved
				 * itself out) still holds a pipe: stop waiting. */
				close_fd(&j->out_r);
				close_fd(&j->err_r);
			}
		}
	}
	free(j->buf);
	j->buf = NULL;
}

int supervisor_main(int argc, char **argv)
{
	sanitize_fds();
	/* The daemon may go away while we run: writing to a dead pipe must
	 * be an error, not our death. */
	signal(SIGPIPE, SIG_IGN);

	struct err err;
	err_clear(&err);
	/* Declared before the first goto: cleanup must never see them unset. */
	_cleanup_free_ char *text = NULL;
	struct jobstart started;
	struct jobstatus st;
	struct cgroup_stats cs;
	size_t len;
	const char *fifo = parse_args(argc, argv);
	if (!fifo) {
		fprintf(stderr, "usage: rund execute -fifo PATH\n");
		return 2;
	}

	struct job j;
	memset(&j, 0, sizeof j);
	j.dirfd = j.lockfd = j.cgfd = j.devnull = j.pidfd = j.out_r = j.err_r = -1;
	j.log.fd = -1;
	j.root.dirfd = j.root.jobs_fd = -1;
	int r;

	/* Our own session: signals for the daemon's terminal or process
	 * group (^C) must not reach the job or us, nor a spare supervisor
	 * waiting for its job. */
	setsid();
	if ((r = read_spec(fifo, &j.spec, &err)) < 0 ||
	    (j.dirfd = open_jobdir(fifo, j.spec.id, &err)) < 0)
		goto fail;
	if ((j.lockfd = take_lock(j.dirfd, &err)) < 0 || (r = start_job(&j, &err)) < 0)
		goto fail;

	started = (struct jobstart){
		.supervisor_pid = getpid(), .pid = j.pid, .start_ns = now_real_ns()};
	text = jobstart_encode(&started, &len);
	r = write_file_atomic(j.dirfd, "started", text, len);
	if (r < 0) {
		/* The daemon could not tell this job was ever running: undo. */
		err_sys(&err, -r, "write started file");
		sys_pidfd_send_signal(j.pidfd, SIGKILL, NULL, 0);
		cgroup_job_kill(&j.root, j.spec.id, NULL);
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)j.pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		cgroup_job_remove(&j.root, j.spec.id, REMOVE_TIMEOUT_MS, NULL);
		unlinkat(j.dirfd, "log", 0);
		goto fail;
	}
	write_all(STDOUT_FILENO, "ok\n", 3);
	/* From here on nobody reads our stdout/stderr. */
	dup2(j.devnull, STDOUT_FILENO);
	dup2(j.devnull, STDERR_FILENO);

	memset(&st, 0, sizeof st);
	run_job(&j, &st);

	/* Final numbers must be read before the group disappears. */
	if (cgroup_job_stats(&j.root, j.spec.id, &cs) == 0) {
		st.user_usec = cs.user_usec;
		st.system_usec = cs.system_usec;
		st.memory_peak = cs.memory_peak;
		st.oom_killed = cs.oom_kills > 0;
	}
	st.stopped = faccessat(j.dirfd, "stop", F_OK, 0) == 0;
	st.log_bytes = j.log.kept;
	st.log_truncated = j.log.truncated;
	logwriter_close(&j.log);
	free(text);
	text = jobstatus_encode(&st, &len);
	/* The status is the job's outcome: a full disk may free up, so try
	 * for a while. If it never works, exit with STATUS_UNWRITABLE; the
	 * daemon then reports the job as lost and says why. */
	int tries = 0;
	while ((r = write_file_atomic(j.dirfd, "status", text, len)) < 0 && ++tries < STATUS_TRIES)
		sleep(1);
	int code = r < 0 ? STATUS_UNWRITABLE : 0;
	close_fd(&j.cgfd);
	cgroup_job_remove(&j.root, j.spec.id, REMOVE_TIMEOUT_MS, NULL);
	cgroup_root_close(&j.root);
	jobspec_free(&j.spec);
	close_fd(&j.devnull);
	close_fd(&j.dirfd);
	close_fd(&j.lockfd);
	return code;

fail:
	report_err(&err);
	if (j.log.fd >= 0)
		logwriter_close(&j.log);
	cgroup_root_close(&j.root);
	jobspec_free(&j.spec);
	close_fd(&j.cgfd);
	close_fd(&j.devnull);
	close_fd(&j.pidfd);
	close_fd(&j.dirfd);
	close_fd(&j.lockfd);
	return 1;
}
