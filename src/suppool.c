/* suppool: spare supervisors and their FIFOs. See suppool.h. */
#include "suppool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkserver.h"
#include "handoff.h"
#include "jobdir.h"
#include "sys.h"
#include "util.h"

struct suppool {
	struct loop *loop;
	const char *exe, *state_dir;
	int run_fd;
	TAILQ_HEAD(, sup) spares;
	size_t n_spares;
	struct fifo_ids fifos;
	struct loop_timer *refill_timer;
	char *warm; /* the warm-up every spare reads first; NULL: none */
	size_t warm_len;
	/* The fork server (forkserver.h), when the pool uses one: its
	 * socket, or -1 while there is none (then spares are spawned). */
	bool use_forkserver;
	/* NULL: we are in the jobs' daemon group; else the cgroup root whose
	 * daemon group the fork server joins. */
	const char *cgroup_root;
	int fs_sock, fs_pidfd;
	pid_t fs_pid;
	unsigned fs_starts; /* how many were started: bounded, so a broken one is not respawned
			       forever */
};

#define FORKSERVER_STARTS 8	   /* then spawn every supervisor */
#define FORKSERVER_TIMEOUT_MS 1000 /* its answer to one request (a fork: well under) */

/* --- FIFO names ----------------------------------------------------------- */

bool fifo_ids_take(struct fifo_ids *f, unsigned *id)
{
	if (f->n_free) {
		*id = f->free[--f->n_free];
		return false;
	}
	*id = f->next++;
	return true;
}

void fifo_ids_put(struct fifo_ids *f, unsigned id)
{
	if (f->n_free == f->cap_free) {
		f->cap_free = f->cap_free ? 2 * f->cap_free : 16;
		f->free = xrealloc(f->free, f->cap_free * sizeof *f->free);
	}
	f->free[f->n_free++] = id;
}

void fifo_ids_free(struct fifo_ids *f)
{
	free(f->free);
	*f = (struct fifo_ids){0};
}

/* --- supervisors ----------------------------------------------------------- */

void sup_release(struct sup *sp, bool reported)
{
	if (!sp)
		return;
	loop_watch_free(sp->watch);
	closep(&sp->fifo_fd);
	closep(&sp->report_fd);
	closep(&sp->pidfd);
	/* Pipe data does not outlive its last open fd, and a reported
	 * request was read whole: such a FIFO is empty and may be reused. */
	if (reported) {
		fifo_ids_put(&sp->pool->fifos, sp->fifo);
	} else {
		char name[JOBDIR_FIFO_NAME_MAX];
		jobdir_fifo_name(sp->fifo, name);
		unlinkat(sp->pool->run_fd, name, 0);
	}
	free(sp);
}

void sup_reap(struct sup *sp)
{
	kill(sp->pid, SIGKILL);
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
}

void sup_kill(struct sup *sp)
{
	sup_reap(sp);
	sup_release(sp, false);
}

static void spare_remove(struct sup *sp)
{
	TAILQ_REMOVE(&sp->pool->spares, sp, link);
	sp->pool->n_spares--;
	loop_watch_free(sp->watch);
	sp->watch = NULL;
}

/* A spare died before it was given a job: reap it and forget it. */
static void on_spare_exit(void *ctx)
{
	struct sup *sp = ctx;
	spare_remove(sp);
	fprintf(stderr, "rund: spare supervisor %d exited before it was given a job\n",
		(int)sp->pid);
	sup_kill(sp);
}

/* posix_spawn's view of `rund execute -fifo path`: stdin /dev/null,
 * stdout the report pipe, an empty signal mask, default dispositions for
 * what the daemon changed. */
static int spawn_rund(struct suppool *pool, char **argv, int stdin_fd, int stdout_fd, bool idle,
		      pid_t *pid)
{
	/* A clean environment; sanitizer settings pass through so that an
	 * instrumented supervisor reports where the test lane looks. */
	static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
	char *envp[2 + ARRAY_SIZE(keep)];
	size_t ne = 0;
	envp[ne++] = (char *)"PATH=" HANDOFF_PATH;
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		const char *v = getenv(keep[i]);
		if (v)
			envp[ne++] = xasprintf("%s=%s", keep[i], v);
	}
	envp[ne] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (stdin_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (stdout_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	sigset_t dfl;
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	if (idle) {
		posix_spawnattr_setschedpolicy(&attr, SCHED_IDLE);
		posix_spawnattr_setschedparam(&attr, &(struct sched_param){0});
		flags |= POSIX_SPAWN_SETSCHEDULER;
	}
	posix_spawnattr_setflags(&attr, flags);
	int r = posix_spawn(pid, pool->exe, &fa, &attr, argv, envp);
	for (size_t i = 1; i < ne; i++)
		free(envp[i]);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return r;
}

/* posix_spawn's view of `rund execute -fifo path [-placed]` (see
 * spawn_rund). */
static int spawn_supervisor(struct suppool *pool, const char *path, int report_w, bool idle,
			    pid_t *pid)
{
	char *argv[] = {(char *)"rund",
			(char *)"execute",
			(char *)"-fifo",
			(char *)path,
			pool->cgroup_root ? NULL : (char *)"-placed",
			NULL};
	return spawn_rund(pool, argv, -1, report_w, idle, pid);
}

/* --- the fork server ------------------------------------------------------ */

static void forkserver_stop(struct suppool *pool)
{
	if (pool->fs_sock < 0)
		return;
	/* EOF ends it; the kill covers one that does not listen. */
	closep(&pool->fs_sock);
	pool->fs_sock = -1;
	sys_pidfd_send_signal(pool->fs_pidfd, SIGKILL, NULL, 0);
	while (waitpid(pool->fs_pid, NULL, 0) < 0 && errno == EINTR)
		;
	closep(&pool->fs_pidfd);
	pool->fs_pidfd = -1;
}

static void forkserver_start(struct suppool *pool)
{
	if (!pool->use_forkserver || pool->fs_sock >= 0 || pool->fs_starts >= FORKSERVER_STARTS)
		return;
	pool->fs_starts++;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		fprintf(stderr, "rund: fork server: socketpair: %s\n", strerror(errno));
		return;
	}
	/* `-cgroup R`: the server joins R's daemon group first. */
	char *argv[] = {(char *)"rund",
			(char *)"execute",
			(char *)"-spares",
			pool->cgroup_root ? (char *)"-cgroup" : NULL,
			(char *)pool->cgroup_root,
			NULL};
	int r = spawn_rund(pool, argv, sv[1], -1, false, &pool->fs_pid);
	close(sv[1]);
	if (r != 0) {
		fprintf(stderr, "rund: fork server: spawn %s: %s\n", pool->exe, strerror(r));
		close(sv[0]);
		return;
	}
	pool->fs_pidfd = sys_pidfd_open(pool->fs_pid, 0);
	pool->fs_sock = sv[0];
}

/* A supervisor from the fork server; on any failure the server is stopped
 * and the caller spawns one instead. */
static int forkserver_spawn(struct suppool *pool, const char *path, int report_w, bool idle,
			    pid_t *pid)
{
	forkserver_start(pool);
	if (pool->fs_sock < 0)
		return -ENOENT;
	struct err err;
	err_clear(&err);
	/* The server is in the jobs' daemon group: ours, or joined. */
	uint32_t flags = (idle ? FORKSERVER_IDLE : 0) | FORKSERVER_PLACED;
	int r = forkserver_request(pool->fs_sock, path, report_w, flags, FORKSERVER_TIMEOUT_MS, pid,
				   &err);
	if (r < 0) {
		fprintf(stderr, "rund: fork server: %s; spawning supervisors instead\n", err.msg);
		forkserver_stop(pool);
	}
	return r;
}

/* One request frame (handoff.h) into the supervisor's FIFO, in one write
 * that never blocks; what names it in errors. */
static int send_frame(struct sup *sp, const char *what, const char *body, size_t len,
		      struct err *err)
{
	const char *dir = sp->pool->state_dir;
	size_t dir_len = strlen(dir);
	char hdr[HANDOFF_HEADER_MAX];
	int n = handoff_request_header(len, dir_len, hdr);
	if (n < 0)
		return err_set(err, E2BIG, ERR_EXHAUSTED,
			       "command line too long for the request pipe: %zu bytes", len);
	size_t total = (size_t)n + dir_len + len;
	int cap = fcntl(sp->fifo_fd, F_GETPIPE_SZ);
	if (cap >= 0 && (size_t)cap < total)
		cap = fcntl(sp->fifo_fd, F_SETPIPE_SZ, (int)HANDOFF_REQUEST_MAX);
	if (cap < 0 || (size_t)cap < total)
		return err_set(err, E2BIG, ERR_EXHAUSTED,
			       "command line too long for the request pipe: %zu bytes", total);
	struct iovec iov[3] = {{hdr, (size_t)n}, {(void *)dir, dir_len}, {(void *)body, len}};
	ssize_t w = writev(sp->fifo_fd, iov, 3);
	if (w < 0)
		return err_sys(err, errno, "write %s", what);
	if ((size_t)w != total)
		return err_set(err, EIO, ERR_INTERNAL, "short write of %s", what);
	return 0;
}

/* Starts a supervisor on a FIFO of its own, from the fork server when
 * use_forkserver (else spawned). */
static int sup_make(struct suppool *pool, bool idle, bool use_forkserver, struct sup **out,
		    struct err *err)
{
	struct sup *sp = xcalloc(1, sizeof *sp);
	sp->pool = pool;
	sp->pidfd = sp->report_fd = sp->fifo_fd = -1;
	bool fresh = fifo_ids_take(&pool->fifos, &sp->fifo);
	char name[JOBDIR_FIFO_NAME_MAX], path[PATH_MAX];
	jobdir_fifo_name(sp->fifo, name);
	int pipefd[2] = {-1, -1};
	int r = 0;
	if (jobdir_fifo_path(pool->state_dir, sp->fifo, path, sizeof path) < 0)
		r = err_set(err, ENAMETOOLONG, ERR_INTERNAL, "state directory path too long");
	else if (fresh && mkfifoat(pool->run_fd, name, 0600) < 0)
		r = err_sys(err, errno, "create fifo %s", path);
	/* Read-write: never blocks, and keeps the FIFO's data alive until
	 * the supervisor has read it; our close is its EOF if we die. */
	else if ((sp->fifo_fd = openat(pool->run_fd, name,
				       O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)) < 0)
		r = err_sys(err, errno, "open fifo %s", path);
	else if (pipe2(pipefd, O_CLOEXEC) < 0)
		r = err_sys(err, errno, "create report pipe");
	if (r < 0) {
		sup_release(sp, false);
		return r;
	}
	sp->report_fd = pipefd[0];
	if (use_forkserver) {
		r = forkserver_spawn(pool, path, pipefd[1], idle, &sp->pid);
		close(pipefd[1]);
		if (r < 0) {
			/* A server that failed after our request may still have
			 * forked one for this FIFO and pipe: both go, and the
			 * supervisor spawned instead gets its own. */
			sup_release(sp, false);
			return r;
		}
	} else {
		r = spawn_supervisor(pool, path, pipefd[1], idle, &sp->pid);
		close(pipefd[1]);
		if (r != 0) {
			r = err_sys(err, r, "spawn supervisor %s", pool->exe);
			sup_release(sp, false);
			return r;
		}
	}
	sp->pidfd = sys_pidfd_open(sp->pid, 0);
	if (sp->pidfd < 0) {
		r = err_sys(err, errno, "pidfd_open supervisor %d", (int)sp->pid);
		sup_kill(sp);
		return r;
	}
	fcntl(sp->report_fd, F_SETFL, O_NONBLOCK);
	/* Read while the spare waits: it prepares its job's sandbox now,
	 * not on Start's path. */
	if (pool->warm && (r = send_frame(sp, "warm-up", pool->warm, pool->warm_len, err)) < 0) {
		sup_kill(sp);
		return r;
	}
	*out = sp;
	return 0;
}

/* Starts a supervisor on a FIFO of its own. It waits for its request, so
 * the daemon can keep one ready and take the making of it off Start's
 * path. */
static int sup_spawn(struct suppool *pool, bool idle, struct sup **out, struct err *err)
{
	if (pool->use_forkserver && sup_make(pool, idle, true, out, err) == 0)
		return 0;
	return sup_make(pool, idle, false, out, err);
}

static void refill(void *ctx)
{
	struct suppool *pool = ctx;
	while (pool->n_spares < SUPPOOL_SPARES) {
		struct sup *sp;
		struct err err = {0};
		if (sup_spawn(pool, true, &sp, &err) < 0) {
			fprintf(stderr, "rund: cannot prepare a spare supervisor: %s\n", err.msg);
			return;
		}
		sp->watch = loop_watch_fd(pool->loop, sp->pidfd, on_spare_exit, sp);
		TAILQ_INSERT_TAIL(&pool->spares, sp, link);
		pool->n_spares++;
	}
}

struct suppool *suppool_new(struct loop *loop, const char *exe, const char *state_dir, int run_fd,
			    const char *warm, size_t warm_len, bool forkserver,
			    const char *cgroup_root)
{
	struct suppool *pool = xcalloc(1, sizeof *pool);
	pool->use_forkserver = forkserver;
	pool->cgroup_root = cgroup_root;
	pool->fs_sock = pool->fs_pidfd = -1;
	if (warm) {
		pool->warm = xmalloc(warm_len);
		memcpy(pool->warm, warm, warm_len);
		pool->warm_len = warm_len;
	}
	pool->loop = loop;
	pool->exe = exe;
	pool->state_dir = state_dir;
	pool->run_fd = run_fd;
	TAILQ_INIT(&pool->spares);
	pool->refill_timer = loop_timer_new(loop, refill, pool);
	loop_timer_arm(pool->refill_timer, 0);
	return pool;
}

void suppool_free(struct suppool *pool)
{
	if (!pool)
		return;
	while (!TAILQ_EMPTY(&pool->spares)) {
		struct sup *sp = TAILQ_FIRST(&pool->spares);
		spare_remove(sp);
		sup_release(sp, false);
	}
	forkserver_stop(pool);
	loop_timer_free(pool->refill_timer);
	fifo_ids_free(&pool->fifos);
	free(pool->warm);
	free(pool);
}

int suppool_take(struct suppool *pool, bool fresh, struct sup **out, struct err *err)
{
	/* The oldest: it has had the longest to prepare, in idle time. */
	struct sup *sp = fresh ? NULL : TAILQ_FIRST(&pool->spares);
	/* A spare that died since the loop last looked is reaped here, not
	 * handed a job it cannot run. */
	while (sp && poll(&(struct pollfd){.fd = sp->pidfd, .events = POLLIN}, 1, 0) > 0) {
		on_spare_exit(sp);
		sp = TAILQ_FIRST(&pool->spares);
	}
	if (sp) {
		spare_remove(sp);
		/* Its job is waited for now. Best effort: at worst it runs idle. */
		sched_setscheduler(sp->pid, SCHED_OTHER, &(struct sched_param){0});
		*out = sp;
	} else {
		int r = sup_spawn(pool, false, out, err);
		if (r < 0)
			return r;
	}
	/* Refill from the loop, after this Start's own work. */
	loop_timer_arm(pool->refill_timer, 0);
	return 0;
}

int sup_send(struct sup *sp, const char *id, const char *spec, size_t len, struct err *err)
{
	char what[64];
	snprintf(what, sizeof what, "request of job %s", id);
	return send_frame(sp, what, spec, len, err);
}

bool sup_request_unread(struct sup *sp)
{
	int unread = 0;
	return ioctl(sp->fifo_fd, FIONREAD, &unread) == 0 && unread > 0;
}
