/* supervisor: `rund execute -fifo PATH`, one process per job (protocol in
 * supervisor.h).
 *
 * Life: detach (setsid); a confined daemon's warm-up first (join the
 * daemon group, prepare the job's sandbox, sandbox.h); read the spec from
 * the FIFO, lock the job directory, create the cgroup, clone3() the job
 * straight into it and exec it, report "ok" or "err ..." to the daemon,
 * then copy output into the log until the job and everything it left
 * behind are gone, record the final status and remove the cgroup.
 * Single-threaded; the only blocking points are the FIFO read (ended by
 * EOF if the daemon dies) and poll().
 *
 * Graceful stops and the run-time limit live here, not in the daemon, so a
 * daemon restart changes nothing about them: the daemon writes a jobstop
 * into the job's "stop" file and wakes us (supervisor.h), we send the signal
 * (to the job's main process, our child, or to every process of the job's
 * group) and kill the whole group, and a confined job's init, once the
 * grace period is over. The run-time limit does the same with SIGTERM
 * to the main process at start + max_run_time. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "err.h"
#include "handoff.h"
#include "jobdir.h"
#include "jobspec.h"
#include "logstore.h"
#include "proctitle.h"
#include "sandbox.h"
#include "jobspawn.h"
#include "sys.h"
#include "util.h"

#define STATUS_TRIES 10	      /* one a second */
#define STATUS_UNWRITABLE 3   /* exit code: the final status could not be written */
#define PIPE_SIZE (1 << 20)   /* larger pipes: fewer wakeups for chatty jobs */
#define READ_CHUNK (1u << 20) /* one read per wakeup; <= LOGSTORE_MAX_RECORD */
#define REMOVE_TIMEOUT_MS 10000
#define DRAIN_REKILL_MS 2000  /* after exit: kill the group again if pipes stay open */
#define DRAIN_GIVEUP_MS 10000 /* ... and stop waiting for EOF (a process escaped) */

/* Everything a supervisor holds, released in one place (sup_job_release)
 * whichever way it ends. */
struct sup_job {
	char *state_dir; /* from the request */
	struct jobspec spec;
	/* The warm-up read before the request (cgroup and sandbox policy
	 * only), and the cgroup root we moved into, if any. */
	struct jobspec warm;
	bool entered;
	bool placed; /* born in the daemon's cgroup, the jobs' daemon group */
	const struct proctitle *pt;
	struct cgroup_root root;
	int dirfd, lockfd, cgfd, devnull, pidfd;
	int out_r, err_r, out_w, err_w; /* the write ends until the job has them */
	pid_t pid;
	struct logwriter log;
	uint8_t *buf;
	struct sandbox sb;     /* a confined job's plan and init */
	int sigfd;	       /* SUPERVISOR_STOP_SIGNAL: the daemon wrote a "stop" file */
	uint64_t run_deadline; /* mono ns: start + max_run_time; 0 = none */
	uint64_t kill_at;      /* mono ns: the grace period ends; 0 = none */
	bool timed_out;
};

static void sup_job_init(struct sup_job *j)
{
	memset(j, 0, sizeof *j);
	j->dirfd = j->lockfd = j->cgfd = j->devnull = j->pidfd = -1;
	j->out_r = j->err_r = j->out_w = j->err_w = -1;
	j->sigfd = -1;
	j->log.fd = j->log.dirfd = -1;
	j->root.dirfd = j->root.jobs_fd = -1;
	sandbox_prepare(&(struct sandbox_policy){.root = true}, &j->sb, NULL);
}

static void close_fd(int *fd)
{
	closep(fd);
	*fd = -1;
}

static void sup_job_release(struct sup_job *j)
{
	logwriter_close(&j->log);
	cgroup_root_close(&j->root);
	jobspec_free(&j->spec);
	jobspec_free(&j->warm);
	free(j->state_dir);
	free(j->buf);
	sandbox_free(&j->sb);
	int *fds[] = {&j->cgfd,	 &j->devnull, &j->pidfd, &j->out_r, &j->err_r,
		      &j->out_w, &j->err_w,   &j->dirfd, &j->sigfd, &j->lockfd}; /* the lock last */
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		close_fd(fds[i]);
}

/* A pipe pair, both ends owned by the caller's cleanup. */
struct pipe_pair {
	int r, w;
};

static void pipe_pair_close(struct pipe_pair *p)
{
	closep(&p->r);
	closep(&p->w);
}

/* ---- reporting to the daemon ---- */

static void report(const struct err *e)
{
	char line[HANDOFF_REPORT_MAX];
	size_t n = handoff_report_format(e, line);
	write_all(STDOUT_FILENO, line, n);
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

static const char *parse_args(int argc, char **argv, bool *placed)
{
	const char *fifo = NULL;
	*placed = false;
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
		else if (strcmp(a, "-placed") == 0)
			*placed = true;
		else
			return NULL;
	}
	return fifo;
}

/* Opens the FIFO for reading. O_NONBLOCK so the open never waits for a
 * writer: if the daemon's end is already gone, the first read sees EOF
 * instead of hanging. Reads then block: no timeout is needed, the daemon
 * holds the FIFO's other end, so if it dies before writing, the read sees
 * EOF. */
static int open_fifo(const char *fifo, struct err *err)
{
	int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "open fifo %s", fifo);
	if (fcntl(fd, F_SETFL, 0) < 0) {
		int e = errno;
		close(fd);
		return err_sys(err, e, "fifo %s", fifo);
	}
	return fd;
}

/* Decodes the request (the job's spec) read from the FIFO. */
static int take_request(struct handoff_request *req, struct sup_job *j, struct err *err)
{
	int r = jobspec_decode(req->spec, req->spec_len, &j->spec, err);
	if (r < 0)
		return err_wrap(err, "job request");
	if (!j->spec.cgroup)
		return err_set(err, EINVAL, ERR_INTERNAL, "job request names no cgroup root");
	j->state_dir = steal_pointer(&req->state_dir);
	return 0;
}

/* ---- the supervisor proper ---- */

static int make_pipe(struct pipe_pair *p, bool big, struct err *err)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_sys(err, errno, "pipe");
	p->r = fds[0];
	p->w = fds[1];
	if (big)
		fcntl(p->r, F_SETPIPE_SZ, PIPE_SIZE); /* best effort */
	return 0;
}

/* The exec plan of spec, on the job's stdio (the plan is complete before
 * clone3, jobspawn.h). */
static void plan_for(const struct sup_job *j, const struct jobspec *spec,
		     struct jobspawn_plan *plan)
{
	jobspawn_plan_init(plan, spec->argv);
	jobspawn_plan_env(plan, spec->env, spec->n_env);
	if (spec->cwd)
		plan->cwd = spec->cwd;
	plan->stdin_fd = j->devnull;
	plan->stdout_fd = j->out_w;
	plan->stderr_fd = j->err_w;
}

/* The job's /dev/null and output pipes; ours until the job holds the
 * write ends. */
static int open_stdio(struct sup_job *j, struct err *err)
{
	struct pipe_pair out, errp;
	int r;
	if (j->devnull < 0 && (j->devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return err_sys(err, errno, "open /dev/null");
	if ((r = make_pipe(&out, true, err)) < 0)
		return r;
	if ((r = make_pipe(&errp, true, err)) < 0) {
		pipe_pair_close(&out);
		return r;
	}
	j->out_r = out.r;
	j->out_w = out.w;
	j->err_r = errp.r;
	j->err_w = errp.w;
	return 0;
}

static void close_stdio(struct sup_job *j)
{
	int *fds[] = {&j->out_r, &j->out_w, &j->err_r, &j->err_w};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		close_fd(fds[i]);
}

/* The job's stdio, the sandbox's plan, our own limits and the job's init,
 * which makes the job's view of the host and waits (sandbox.h). 1 with
 * *rep when the init failed at a step. */
static int ready_sandbox(struct sup_job *j, const struct sandbox_policy *policy, int fifo,
			 struct sandbox_report *rep, struct err *err)
{
	int r;
	if ((r = open_stdio(j, err)) < 0 || (r = sandbox_prepare(policy, &j->sb, err)) < 0 ||
	    (r = sandbox_limit_self(&j->sb, err)) < 0)
		return r;
	return sandbox_init_start(&j->sb, fifo, rep, err);
}

/* Drops a sandbox prepared for another policy or an older view of the
 * host. */
static void drop_sandbox(struct sup_job *j)
{
	sandbox_free(&j->sb);
	close_stdio(j);
}

/* A root job: cloned straight into its group and exec'd. */
static int spawn_root(struct sup_job *j, const char *cg_name, struct err *err)
{
	_cleanup_(jobspawn_plan_free) struct jobspawn_plan plan = {0};
	int r;
	/* A sandbox prepared for a confined job (a warm-up) is not this
	 * job's: its init and its stdio go. */
	drop_sandbox(j);
	if ((r = open_stdio(j, err)) < 0)
		return r;
	plan_for(j, &j->spec, &plan);
	plan.cgroup_fd = j->cgfd;
	plan.cgroup_name = cg_name;
	struct jobspawn_child sp;
	r = jobspawn_start(&plan, &sp, err);
	close_fd(&j->out_w);
	close_fd(&j->err_w);
	if (r < 0)
		return r;
	j->pid = sp.pid;
	j->pidfd = sp.pidfd;
	return 0;
}

/* A confined job: into the init a spare prepared while it waited, if it
 * is still right for this job, else a new one. */
static int spawn_confined(struct sup_job *j, const char *cg_name, struct err *err)
{
	struct sandbox_report rep;
	struct jobspawn_what what = {j->spec.argv[0], j->spec.cwd ? j->spec.cwd : "/", &j->sb};
	int r;
	if (!sandbox_policy_same(&j->warm.sandbox, &j->spec.sandbox) ||
	    !sandbox_init_fresh(&j->sb)) {
		drop_sandbox(j);
		r = ready_sandbox(j, &j->spec.sandbox, -1, &rep, err);
		if (r == 1)
			return jobspawn_report_err(&rep, &what, err);
		if (r < 0)
			return r;
	}
	_cleanup_(jobspawn_plan_free) struct jobspawn_plan plan = {0};
	plan_for(j, &j->spec, &plan);
	plan.defaults_set = true; /* ours, but SIGPIPE's (sandbox_limit_self) */
	struct sandbox_job job = {.uid = j->spec.sandbox.uid,
				  .gid = j->spec.sandbox.gid,
				  .exec = jobspawn_exec,
				  .arg = &plan};
	struct sandbox_child child;
	r = sandbox_spawn(&j->sb, &job, cg_name, j->cgfd, &child, &rep, err);
	close_fd(&j->out_w);
	close_fd(&j->err_w);
	if (r == 1)
		return jobspawn_report_err(&rep, &what, err);
	if (r < 0)
		return r;
	j->pid = child.pid;
	j->pidfd = child.pidfd;
	return 0;
}

static int spawn_into_cgroup(struct sup_job *j, struct err *err)
{
	_cleanup_free_ char *cg_name = xasprintf("%s/jobs/%s", j->root.path, j->spec.id);
	return j->spec.sandbox.root ? spawn_root(j, cg_name, err) : spawn_confined(j, cg_name, err);
}

/* A job that never ran leaves no output files. */
static void remove_log(struct sup_job *j)
{
	char name[LOGSTORE_NAME_MAX];
	for (uint64_t seq = j->log.first_seq; seq && seq <= j->log.seq; seq++) {
		logstore_segment_name(jobdir_name(JOBDIR_LOG), seq, name);
		unlinkat(j->dirfd, name, 0);
	}
	unlinkat(j->dirfd, jobdir_name(JOBDIR_LOGPOS), 0);
	logwriter_close(&j->log);
}

/* Creates the cgroup and starts the job. On failure nothing is left but
 * the job directory's files; err says why. */
static int start_job(struct sup_job *j, struct err *err)
{
	int r = cgroup_root_open(j->spec.cgroup, &j->root, err);
	if (r < 0)
		return r;
	r = cgroup_job_create(&j->root, j->spec.id, &j->spec.limits, j->spec.io_devices,
			      j->spec.n_io_devices, &j->cgfd, err);
	if (r < 0)
		return r;
	r = logwriter_open(&j->log, j->dirfd, jobdir_name(JOBDIR_LOG), jobdir_name(JOBDIR_LOGPOS),
			   j->spec.max_log_bytes);
	if (r < 0)
		err_sys(err, -r, "create log file");
	else
		r = spawn_into_cgroup(j, err);
	if (r < 0) {
		close_fd(&j->cgfd);
		cgroup_job_remove(&j->root, j->spec.id, REMOVE_TIMEOUT_MS, NULL);
		remove_log(j);
	}
	return r;
}

/* Records that the job runs. If that fails the daemon could not tell it
 * was ever running: undo it. */
static int record_started(struct sup_job *j, struct err *err)
{
	struct jobstart started = {
		.supervisor_pid = getpid(), .pid = j->pid, .start_ns = now_real_ns()};
	size_t len;
	_cleanup_free_ char *text = jobstart_encode(&started, &len);
	int r = write_file_atomic(j->dirfd, jobdir_name(JOBDIR_STARTED), text, len);
	if (r == 0)
		return 0;
	err_sys(err, -r, "write started file");
	sys_pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
	cgroup_job_kill(&j->root, j->spec.id, NULL);
	siginfo_t si;
	while (waitid(P_PIDFD, (id_t)j->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	cgroup_job_remove(&j->root, j->spec.id, REMOVE_TIMEOUT_MS, NULL);
	remove_log(j);
	return r;
}

/* ---- graceful stops and the run-time limit ---- */

/* Sends sig to every process in the job's group. A pid read from
 * cgroup.procs may exit before the kill; it cannot be reused by a process
 * outside the group meanwhile unless the job's processes vanish that fast,
 * which the final cgroup.kill covers anyway. */
static void signal_group(struct sup_job *j, int sig)
{
	_cleanup_close_ int fd = openat(j->cgfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[8192];
	size_t have = 0;
	for (;;) {
		ssize_t n = read_retry(fd, buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			uint64_t pid;
			if (parse_u64(line, &pid) == 0 && pid > 0 && pid <= INT32_MAX)
				kill((pid_t)pid, sig);
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
}

/* Starts a graceful stop: the signal now, the group's kill after grace.
 * A second request can only bring the kill closer. */
static void begin_stop(struct sup_job *j, const struct jobstop *how)
{
	if (how->signal == 0) {
		cgroup_job_kill(&j->root, j->spec.id, NULL);
		return;
	}
	if (how->to_group)
		signal_group(j, how->signal);
	else if (j->pidfd >= 0)
		sys_pidfd_send_signal(j->pidfd, how->signal, NULL, 0);
	uint64_t at = now_mono_ns() + how->grace_ns;
	if (!j->kill_at || at < j->kill_at)
		j->kill_at = at ? at : 1;
}

/* Listens for the daemon's wake-up. Blocked only now, after the job was
 * cloned, so neither the job nor its init inherits the mask. Without a
 * signalfd a graceful stop degrades to the daemon's kill after the grace
 * period (job.c). */
static void listen_stop(struct sup_job *j)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SUPERVISOR_STOP_SIGNAL);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == 0)
		j->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void read_stop(struct sup_job *j)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int fd = openat(j->dirfd, jobdir_name(JOBDIR_STOP), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	int r = read_fd_all(fd, 4096, &text, &len);
	close(fd);
	struct jobstop how;
	/* Unreadable or damaged: the daemon meant to stop the job, so kill. */
	if (r < 0 || jobstop_decode(text, len, &how, NULL) < 0)
		how = (struct jobstop){0};
	begin_stop(j, &how);
}

static void on_stop_signal(struct sup_job *j)
{
	struct signalfd_siginfo si;
	while (read(j->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		;
	read_stop(j);
}

/* Timers: the run-time limit and the end of a grace period. */
static void check_deadlines(struct sup_job *j, uint64_t now)
{
	if (j->run_deadline && now >= j->run_deadline) {
		j->run_deadline = 0;
		j->timed_out = true;
		uint64_t grace = j->spec.run_time_grace_ns ? j->spec.run_time_grace_ns
							   : JOBSPEC_RUN_TIME_GRACE_NS;
		begin_stop(j, &(struct jobstop){.signal = SIGTERM, .grace_ns = grace});
	}
	if (j->kill_at && now >= j->kill_at) {
		j->kill_at = 0;
		cgroup_job_kill(&j->root, j->spec.id, NULL);
		/* A confined job's init is outside the group: killed too (it
		 * takes the rest of its PID namespace with it). */
		sandbox_init_kill(&j->sb);
	}
}

/* poll()'s timeout for the next deadline, -1 for none. */
static int deadline_timeout(const struct sup_job *j, uint64_t now)
{
	uint64_t next = 0;
	if (j->run_deadline)
		next = j->run_deadline;
	if (j->kill_at && (!next || j->kill_at < next))
		next = j->kill_at;
	if (!next)
		return -1;
	uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* One read from a pipe into the log. Returns false at EOF or on error. */
static bool pump(struct sup_job *j, int fd, enum log_stream stream)
{
	ssize_t n = read_retry(fd, j->buf, READ_CHUNK);
	if (n <= 0)
		return false;
	/* A full disk loses output but must not stop the draining: a job
	 * blocked on a full pipe would never end. */
	logwriter_append(&j->log, stream, j->buf, (size_t)n);
	return true;
}

/* The job's main process ended with si (reaped; known false when the
 * wait failed). */
static void main_ended(struct sup_job *j, struct jobstatus *st, const siginfo_t *si, bool known)
{
	st->end_ns = now_real_ns();
	if (known && si->si_code == CLD_EXITED) {
		st->exited = true;
		st->exit_code = si->si_status;
	} else if (known) {
		st->exited = false;
		st->signal = si->si_status;
	}
	/* Whatever the job left running dies with it, or a daemonized
	 * grandchild holding the pipes would keep us here forever; with a
	 * confined job's init (outside the group) go its namespaces. */
	cgroup_job_kill(&j->root, j->spec.id, NULL);
	sandbox_init_kill(&j->sb);
}

static void run_job(struct sup_job *j, struct jobstatus *st)
{
	bool exited = false;
	uint64_t exit_mono = 0;
	bool rekilled = false;
	j->buf = xmalloc(READ_CHUNK);

	while (j->out_r >= 0 || j->err_r >= 0 || !exited) {
		struct pollfd pfd[4];
		int nfd = 0, i_out = -1, i_err = -1, i_pid = -1, i_dir = -1;
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
		if (!exited && j->sigfd >= 0) {
			i_dir = nfd;
			pfd[nfd++] = (struct pollfd){.fd = j->sigfd, .events = POLLIN};
		}
		int timeout = exited ? 500 : deadline_timeout(j, now_mono_ns());
		int pr = poll(pfd, (nfds_t)nfd, timeout);
		if (pr < 0 && errno != EINTR)
			break;
		if (!exited) {
			if (pr > 0 && i_dir >= 0 && pfd[i_dir].revents)
				on_stop_signal(j);
			check_deadlines(j, now_mono_ns());
		}

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
			exit_mono = now_mono_ns();
			exited = true;
			close_fd(&j->pidfd);
			main_ended(j, st, &si, w == 0);
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
}

/* The job ended: final numbers (read before the group disappears), the
 * status file, the cgroup removed. Returns the supervisor's exit code. */
static int record_status(struct sup_job *j, struct jobstatus *st)
{
	struct cgroup_stats cs;
	if (cgroup_job_stats(&j->root, j->spec.id, &cs) == 0) {
		st->user_usec = cs.user_usec;
		st->system_usec = cs.system_usec;
		st->memory_peak = cs.memory_peak;
		st->oom_killed = cs.oom_kills > 0;
	}
	st->stopped = faccessat(j->dirfd, jobdir_name(JOBDIR_STOP), F_OK, 0) == 0;
	logwriter_finish(&j->log);
	st->log_bytes = j->log.pos.kept;
	st->log_truncated = j->log.truncated;
	st->timed_out = j->timed_out;
	st->log_end = j->log.pos.end;
	st->log_lost = j->log.pos.lost;
	st->log_first = j->log.pos.first;
	logwriter_close(&j->log);
	size_t len;
	_cleanup_free_ char *text = jobstatus_encode(st, &len);
	/* The status is the job's outcome: a full disk may free up, so try
	 * for a while. If it never works, exit with STATUS_UNWRITABLE; the
	 * daemon then reports the job as lost and says why. */
	int r, tries = 0;
	while ((r = jobdir_status_write(j->dirfd, text, len)) < 0 && ++tries < STATUS_TRIES)
		sleep(1);
	close_fd(&j->cgfd);
	cgroup_job_remove(&j->root, j->spec.id, REMOVE_TIMEOUT_MS, NULL);
	return r < 0 ? STATUS_UNWRITABLE : 0;
}

/* The warm-up a spare reads before its request (jobspec.h): it joins the
 * jobs' cgroup root and prepares the sandbox now, while nobody waits.
 * Whatever fails here is tried again once the job is known, and reported
 * then. */
static void warm_up(struct sup_job *j, struct handoff_request *req, const char *fifo_path, int fifo)
{
	struct err err;
	if (jobspec_warm_decode(req->spec, req->spec_len, &j->warm, &err) < 0 ||
	    (!j->placed && cgroup_enter_daemon(j->warm.cgroup, &err) < 0))
		return;
	j->entered = true;
	/* Our command line is the init's (it shares our memory, or is a
	 * copy made now), so the job's /proc/1/cmdline: without the state
	 * directory's path. */
	const char *base = strrchr(fifo_path, '/');
	char title[64];
	snprintf(title, sizeof title, "rund execute -fifo run/%s", base ? base + 1 : fifo_path);
	proctitle_set(j->pt, title);
	struct sandbox_report rep;
	/* A request arriving meanwhile (on fifo) waits for this init. */
	if (ready_sandbox(j, &j->warm.sandbox, fifo, &rep, &err) != 0)
		drop_sandbox(j);
}

/* Everything from the request to "ok"; on failure err says why and
 * nothing is left but the job directory's files. */
static int start(struct sup_job *j, const char *fifo, struct err *err)
{
	int r;
	_cleanup_close_ int fd = open_fifo(fifo, err);
	if (fd < 0)
		return fd;
	_cleanup_(handoff_request_free) struct handoff_request req = {0};
	if ((r = handoff_request_read(fd, &req, err)) < 0)
		return err_wrap(err, "fifo %s", fifo);
	if (jobspec_is_warm(req.spec, req.spec_len)) {
		warm_up(j, &req, fifo, fd);
		handoff_request_free(&req);
		if ((r = handoff_request_read(fd, &req, err)) < 0)
			return err_wrap(err, "fifo %s", fifo);
	}
	if ((r = take_request(&req, j, err)) < 0)
		return r;
	/* Spawned in the daemon's cgroup, which may be a systemd unit of its
	 * own (-cgroup_daemon_stays): a supervisor belongs with the jobs'
	 * unit, where restarting the daemon's unit never looks. */
	if (!j->placed && (!j->entered || strcmp(j->warm.cgroup, j->spec.cgroup) != 0) &&
	    (r = cgroup_enter_daemon(j->spec.cgroup, err)) < 0)
		return r;
	/* The request is read: fifo (in argv) is not needed again, and ps
	 * shows which job this supervisor runs. */
	char title[64];
	snprintf(title, sizeof title, "rund execute %s", j->spec.id);
	proctitle_set(j->pt, title);
	if ((j->dirfd = jobdir_open_path(j->state_dir, j->spec.id, err)) < 0)
		return j->dirfd;
	if ((j->lockfd = jobdir_lock(j->dirfd, err)) < 0)
		return j->lockfd;
	/* The job's outcome must be recordable whatever other jobs write. */
	if ((r = jobdir_status_reserve(j->dirfd)) < 0)
		return err_sys(err, -r, "reserve %zu bytes for the job's status in %s/jobs/%s",
			       jobdir_files[JOBDIR_STATUS].max, j->state_dir, j->spec.id);
	if ((r = start_job(j, err)) < 0)
		return r;
	if (j->spec.max_run_time_ns)
		j->run_deadline = now_mono_ns() + j->spec.max_run_time_ns;
	/* Before the daemon learns that the job runs: no Stop can come
	 * earlier, so none is missed. */
	listen_stop(j);
	return record_started(j, err);
}

int supervisor_main(int argc, char **argv, const struct proctitle *pt)
{
	sanitize_fds();
	/* The daemon may go away while we run: writing to a dead pipe must
	 * be an error, not our death. */
	signal(SIGPIPE, SIG_IGN);
	bool placed;
	const char *fifo = parse_args(argc, argv, &placed);
	if (!fifo) {
		fprintf(stderr, "usage: rund execute -fifo PATH [-placed]\n");
		return 2;
	}
	/* Our own session: signals for the daemon's terminal or process
	 * group (^C) must not reach the job or us, nor a spare supervisor
	 * waiting for its job. */
	setsid();

	_cleanup_(sup_job_release) struct sup_job j;
	sup_job_init(&j);
	j.pt = pt;
	j.placed = placed;
	struct err err;
	err_clear(&err);
	if (start(&j, fifo, &err) < 0) {
		report(&err);
		return 1;
	}
	report(NULL);
	/* From here on nobody reads our stdout/stderr. */
	dup2(j.devnull, STDOUT_FILENO);
	dup2(j.devnull, STDERR_FILENO);

	struct jobstatus st;
	memset(&st, 0, sizeof st);
	run_job(&j, &st);
	/* A confined job's init, still tearing its namespaces down, is
	 * reaped with the rest (sup_job_release). */
	return record_status(&j, &st);
}
