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
	struct cgroup_root root;
	int dirfd, lockfd, cgfd, devnull, pidfd;
	int out_r, err_r;
	pid_t pid;
	struct logwriter log;
	uint8_t *buf;
	struct sandbox sb; /* pidfd is the job's init when confined */
};

static void sup_job_init(struct sup_job *j)
{
	memset(j, 0, sizeof *j);
	j->dirfd = j->lockfd = j->cgfd = j->devnull = j->pidfd = j->out_r = j->err_r = -1;
	j->log.fd = -1;
	j->root.dirfd = j->root.jobs_fd = -1;
	j->sb.status_fds[0] = j->sb.status_fds[1] = -1;
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
	free(j->state_dir);
	free(j->buf);
	sandbox_free(&j->sb);
	int *fds[] = {&j->cgfd,	 &j->devnull, &j->pidfd, &j->out_r,
		      &j->err_r, &j->dirfd,   &j->lockfd}; /* the job's lock last */
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

/* Waits for the request. No timeout is needed: the daemon holds the FIFO's
 * other end, so if it dies before writing, the read sees EOF. */
static int read_request(const char *fifo, struct sup_job *j, struct err *err)
{
	/* O_NONBLOCK so the open never waits for a writer: if the daemon's end
	 * is already gone, the first read sees EOF instead of hanging. */
	_cleanup_close_ int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "open fifo %s", fifo);
	if (fcntl(fd, F_SETFL, 0) < 0)
		return err_sys(err, errno, "fifo %s", fifo);
	_cleanup_(handoff_request_free) struct handoff_request req = {0};
	int r = handoff_request_read(fd, &req, err);
	if (r < 0)
		return err_wrap(err, "fifo %s", fifo);
	r = jobspec_decode(req.spec, req.spec_len, &j->spec, err);
	if (r < 0)
		return err_wrap(err, "job request");
	if (!j->spec.cgroup)
		return err_set(err, EINVAL, ERR_INTERNAL, "job request names no cgroup root");
	j->state_dir = steal_pointer(&req.state_dir);
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

/* The job's output pipes, /dev/null, the exec plan, then the job: the
 * plan is complete before clone3 (spawn.h). */
static int spawn_into_cgroup(struct sup_job *j, struct err *err)
{
	_cleanup_(pipe_pair_close) struct pipe_pair out = {-1, -1}, errp = {-1, -1};
	_cleanup_(jobspawn_plan_free) struct jobspawn_plan plan = {0};
	int r;
	j->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (j->devnull < 0)
		return err_sys(err, errno, "open /dev/null");
	if ((r = make_pipe(&out, true, err)) < 0 || (r = make_pipe(&errp, true, err)) < 0)
		return r;

	_cleanup_free_ char *cg_name = xasprintf("%s/jobs/%s", j->root.path, j->spec.id);
	if ((r = sandbox_prepare(&j->spec.sandbox, cg_name, &j->sb, err)) < 0)
		return r;
	jobspawn_plan_init(&plan, j->spec.argv);
	plan.sandbox = &j->sb;
	plan.stdin_fd = j->devnull;
	plan.stdout_fd = out.w;
	plan.stderr_fd = errp.w;
	plan.cgroup_fd = j->cgfd;
	plan.cgroup_name = cg_name;
	struct jobspawn_child sp;
	if ((r = jobspawn_start(&plan, &sp, err)) < 0)
		return r;
	j->pid = sp.pid;
	j->pidfd = sp.pidfd;
	j->out_r = steal_fd(&out.r);
	j->err_r = steal_fd(&errp.r);
	return 0;
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
	r = logwriter_open(&j->log, j->dirfd, jobdir_name(JOBDIR_LOG), j->spec.max_log_bytes);
	if (r < 0)
		err_sys(err, -r, "create log file");
	else
		r = spawn_into_cgroup(j, err);
	if (r < 0) {
		close_fd(&j->cgfd);
		cgroup_job_remove(&j->root, j->spec.id, REMOVE_TIMEOUT_MS, NULL);
		unlinkat(j->dirfd, jobdir_name(JOBDIR_LOG), 0);
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
	unlinkat(j->dirfd, jobdir_name(JOBDIR_LOG), 0);
	return r;
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

static void run_job(struct sup_job *j, struct jobstatus *st)
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
			if (w == 0)
				sandbox_main_status(&j->sb, &si);
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
	st->log_bytes = j->log.kept;
	st->log_truncated = j->log.truncated;
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

/* Everything from the request to "ok"; on failure err says why and
 * nothing is left but the job directory's files. */
static int start(struct sup_job *j, const char *fifo, struct err *err)
{
	int r;
	if ((r = read_request(fifo, j, err)) < 0)
		return r;
	/* The request is read: fifo (in argv) is not needed again, and ps
	 * shows which job this supervisor runs. */
	char title[64];
	snprintf(title, sizeof title, "rund execute %s", j->spec.id);
	proctitle_set(title);
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
	return record_started(j, err);
}

int supervisor_main(int argc, char **argv)
{
	sanitize_fds();
	/* The daemon may go away while we run: writing to a dead pipe must
	 * be an error, not our death. */
	signal(SIGPIPE, SIG_IGN);
	const char *fifo = parse_args(argc, argv);
	if (!fifo) {
		fprintf(stderr, "usage: rund execute -fifo PATH\n");
		return 2;
	}
	/* Our own session: signals for the daemon's terminal or process
	 * group (^C) must not reach the job or us, nor a spare supervisor
	 * waiting for its job. */
	setsid();

	_cleanup_(sup_job_release) struct sup_job j;
	sup_job_init(&j);
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
	return record_status(&j, &st);
}
