/* job: the daemon's job table. See job.h for the contract and jobspec.h for
 * the files of a job directory. */
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys.h"
#include "ulid.h"
#include "util.h"

#define SPEC_MAX (8u << 20)
#define SMALL_FILE_MAX 4096
#define REQUEST_MAX (1u << 20) /* encoded command line + limits + owners */
#define REQUEST_HDR_MAX 24     /* room for the decimal length line in front */

struct job_follower {
	struct job *job;
	struct logreader reader;
	bool have_reader;
	void (*notify)(void *ctx);
	void *ctx;
	struct job_follower *next;
};

struct job_waiter {
	struct job *job;
	job_ended_fn cb;
	void *ctx;
	struct loop_timer *timer; /* for jobs that had already ended */
	struct job_waiter *next;
};

struct job {
	struct job_table *t;
	char id[ULID_LEN + 1];
	int refs;
	bool in_table;
	struct jobspec spec;
	struct jobstart start;
	bool has_start;
	struct jobstatus status;
	enum job_state state;
	int dirfd;
	pid_t sup_pid;
	bool sup_is_child;
	int pidfd;
	struct loop_watch *pid_watch;
	int wd; /* inotify watch on the job dir, -1 if none */
	uint64_t ended_mono_ns;
	struct job_follower *followers;
	struct job_waiter *waiters;
	struct job *id_next, *wd_next; /* hash chains */
};

struct job_pending {
	struct job_table *t;
	struct job *job; /* not yet in the table */
	struct sup *sup; /* the supervisor given the request */
	struct loop_watch *report_watch;
	bool reported; /* it read its request whole and answered */
	char line[1024];
	size_t line_len;
	job_started_fn cb;
	void *ctx;
	bool detached;
	bool retried; /* the request went to a second supervisor already */
};

/* A supervisor process we spawned: idle in the spare pool, or handed a
 * job's request (job_pending) until it reports. */
struct sup {
	struct job_table *t;
	pid_t pid;
	int pidfd, report_fd, fifo_fd;
	unsigned fifo;		  /* its FIFO is <state_dir>/run/<fifo> */
	struct loop_watch *watch; /* pidfd, while a spare */
	struct sup *next;	  /* in the spare pool */
};

#define SPARES 2
#define NBUCKETS 4096

struct job_table {
	struct loop *loop;
	struct job_config cfg;
	int state_fd;
	int jobs_fd;
	struct ulid_gen gen;
	long ncpu, page_size;
	struct job *by_id[NBUCKETS];
	struct job *by_wd[NBUCKETS];
	size_t count;
	int inotify_fd;
	struct loop_watch *inotify_watch;
	struct loop_timer *retention_timer;
	uint64_t retention_due; /* mono ns of the armed sweep, 0 = none */
	int run_fd;		/* <state_dir>/run: supervisors' FIFOs */
	int lock_fd;		/* <state_dir>/daemon.lock, flock'ed while we serve */
	struct sup *spares;
	size_t n_spares;
	unsigned *fifo_free; /* names of FIFOs ready for reuse */
	size_t n_fifo_free, cap_fifo_free;
	unsigned fifo_next;
	struct loop_timer *refill_timer;
	struct cg_reaper *reapers; /* cgroups still being removed */
	struct recheck *rechecks;  /* recovered jobs not settled yet */
};

/* --- hashing ------------------------------------------------------------ */

static size_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603u;
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211u;
	return (size_t)(h % NBUCKETS);
}

static void table_insert(struct job_table *t, struct job *j)
{
	size_t b = id_hash(j->id);
	j->id_next = t->by_id[b];
	t->by_id[b] = j;
	j->in_table = true;
	t->count++;
}

static void table_remove(struct job_table *t, struct job *j)
{
	for (struct job **p = &t->by_id[id_hash(j->id)]; *p; p = &(*p)->id_next) {
		if (*p == j) {
			*p = j->id_next;
			j->in_table = false;
			t->count--;
			return;
		}
	}
}

static struct job *table_lookup(struct job_table *t, const char *id)
{
	for (struct job *j = t->by_id[id_hash(id)]; j; j = j->id_next)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

static void wd_insert(struct job_table *t, struct job *j)
{
	size_t b = (size_t)j->wd % NBUCKETS;
	j->wd_next = t->by_wd[b];
	t->by_wd[b] = j;
}

static void wd_remove(struct job_table *t, struct job *j)
{
	if (j->wd < 0)
		return;
	for (struct job **p = &t->by_wd[(size_t)j->wd % NBUCKETS]; *p; p = &(*p)->wd_next) {
		if (*p == j) {
			*p = j->wd_next;
			break;
		}
	}
	inotify_rm_watch(t->inotify_fd, j->wd);
	j->wd = -1;
}

static struct job *wd_lookup(struct job_table *t, int wd)
{
	for (struct job *j = t->by_wd[(size_t)wd % NBUCKETS]; j; j = j->wd_next)
		if (j->wd == wd)
			return j;
	return NULL;
}

/* --- job objects -------------------------------------------------------- */

static struct job *job_new(struct job_table *t, const char *id)
{
	struct job *j = xcalloc(1, sizeof *j);
	j->t = t;
	snprintf(j->id, sizeof j->id, "%s", id);
	j->refs = 1;
	j->dirfd = -1;
	j->pidfd = -1;
	j->wd = -1;
	return j;
}

static void job_release(struct job *j)
{
	loop_watch_free(j->pid_watch);
	if (j->pidfd >= 0)
		close(j->pidfd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	jobspec_free(&j->spec);
	free(j);
}

void job_ref(struct job *j)
{
	j->refs++;
}

void job_unref(struct job *j)
{
	if (j && --j->refs == 0)
		job_release(j);
}

bool job_ended(const struct job *j)
{
	return j->state != JOB_RUNNING;
}

#define JOB_FILE_MAX (ULID_LEN + 16)

/* "<id>/<name>": a job's file relative to the table's jobs directory. */
static void job_file(const struct job *j, const char *name, char path[JOB_FILE_MAX])
{
	snprintf(path, JOB_FILE_MAX, "%s/%s", j->id, name);
}

/* Jobs in the table hold no directory fd (10,000 jobs must fit in the
 * descriptor limit): their files are opened by path when needed. */
static void close_dirfd(struct job *j)
{
	if (j->dirfd >= 0) {
		close(j->dirfd);
		j->dirfd = -1;
	}
}

/* Removes a job directory and its files (no subdirectories are expected). */
static void remove_job_dir(int jobs_fd, const char *id)
{
	int fd = openat(jobs_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		if (d) {
			struct dirent *e;
			while ((e = readdir(d)))
				if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
					unlinkat(dirfd(d), e->d_name, 0);
			closedir(d);
		} else {
			close(fd);
		}
	}
	if (unlinkat(jobs_fd, id, AT_REMOVEDIR) < 0 && errno != ENOENT)
		fprintf(stderr, "rund: job %s: cannot remove its directory: %s\n", id,
			strerror(errno));
}

/* True while the job's supervisor holds its lock, i.e. is alive. */
static bool supervisor_alive(struct job *j)
{
	char path[JOB_FILE_MAX];
	job_file(j, "lock", path);
	_cleanup_close_ int fd = openat(j->t->jobs_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return false;
	}
	return errno == EWOULDBLOCK;
}

static int load_start(struct job *j, struct err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char path[JOB_FILE_MAX];
	job_file(j, "started", path);
	int r = read_file_at(j->t->jobs_fd, path, SMALL_FILE_MAX, &buf, &len);
	if (r < 0)
		return err_sys(err, -r, "job %s: read started", j->id);
	r = jobstart_decode(buf, len, &j->start, err);
	if (r < 0)
		return err_wrap(err, "job %s: started", j->id);
	j->has_start = true;
	return 0;
}

/* 0, -ENOENT when there is no status yet, or another error. */
static int load_status(struct job *j, struct err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char path[JOB_FILE_MAX];
	job_file(j, "status", path);
	int r = read_file_at(j->t->jobs_fd, path, SMALL_FILE_MAX, &buf, &len);
	if (r < 0)
		return r == -ENOENT ? r : err_sys(err, -r, "job %s: read status", j->id);
	r = jobstatus_decode(buf, len, &j->status, err);
	if (r < 0)
		return err_wrap(err, "job %s: status", j->id);
	return 0;
}

/* --- leftover cgroups ---------------------------------------------------- */

/* Removing a killed job's cgroup waits for its processes to be gone, which
 * can take a while (uninterruptible sleep, a large address space): retry
 * from a timer instead of sleeping on the event loop. */
struct cg_reaper {
	struct job_table *t;
	char id[ULID_LEN + 1];
	unsigned tries;
	struct loop_timer *timer;
	struct cg_reaper *next;
};

static void cg_reaper_free(struct cg_reaper *c)
{
	for (struct cg_reaper **p = &c->t->reapers; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	loop_timer_free(c->timer);
	free(c);
}

#define CG_REAP_INTERVAL_MS 50
#define CG_REAP_TRIES 600 /* 30 s */

static void cg_reap(void *ctx)
{
	struct cg_reaper *c = ctx;
	struct err err = {0};
	int r = cgroup_job_remove(c->t->cfg.cgroup, c->id, 0, &err);
	if (r == -EBUSY && ++c->tries < CG_REAP_TRIES) {
		loop_timer_arm(c->timer, CG_REAP_INTERVAL_MS);
		return;
	}
	if (r < 0 && r != -ENOENT)
		fprintf(stderr, "rund: job %s: %s\n", c->id, err.msg);
	cg_reaper_free(c);
}

/* Kills what is left of job `id` and removes its cgroup, now or soon. */
static void cgroup_remove_soon(struct job_table *t, const char *id)
{
	cgroup_job_kill(t->cfg.cgroup, id, NULL);
	if (cgroup_job_remove(t->cfg.cgroup, id, 0, NULL) != -EBUSY)
		return;
	struct cg_reaper *c = xcalloc(1, sizeof *c);
	c->t = t;
	snprintf(c->id, sizeof c->id, "%s", id);
	c->timer = loop_timer_new(t->loop, cg_reap, c);
	c->next = t->reapers;
	t->reapers = c;
	loop_timer_arm(c->timer, CG_REAP_INTERVAL_MS);
}

/* --- retention ---------------------------------------------------------- */

static void retention_arm(struct job_table *t, uint64_t due)
{
	if (!t->cfg.retention_ns)
		return;
	if (t->retention_due && t->retention_due <= due)
		return;
	uint64_t now = now_mono_ns();
	t->retention_due = due;
	loop_timer_arm(t->retention_timer, due > now ? (due - now) / 1000000 + 1 : 0);
}

static void job_forget(struct job *j)
{
	struct job_table *t = j->t;
	wd_remove(t, j);
	table_remove(t, j);
	remove_job_dir(t->jobs_fd, j->id);
	job_unref(j);
}

static void retention_sweep(void *ctx)
{
	struct job_table *t = ctx;
	uint64_t now = now_mono_ns(), next = 0;
	t->retention_due = 0;
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct job *j = t->by_id[b];
		while (j) {
			struct job *n = j->id_next;
			if (job_ended(j)) {
				uint64_t due = j->ended_mono_ns + t->cfg.retention_ns;
				if (due <= now)
					job_forget(j);
				else if (!next || due < next)
					next = due;
			}
			j = n;
		}
	}
	if (next)
		retention_arm(t, next);
}

/* --- end of a job ------------------------------------------------------- */

static void notify_followers(struct job *j)
{
	for (struct job_follower *f = j->followers; f; f = f->next)
		f->notify(f->ctx);
}

static void mark_ended(struct job *j)
{
	struct job_table *t = j->t;
	wd_remove(t, j);
	/* Retention counts from the recorded end, also across restarts. */
	uint64_t now = now_mono_ns(), real = now_real_ns(), end = j->status.end_ns;
	uint64_t ago = end && end < real ? real - end : 0;
	j->ended_mono_ns = ago < now ? now - ago : 0;
	close_dirfd(j);
	retention_arm(t, j->ended_mono_ns + t->cfg.retention_ns);
	job_ref(j);
	while (j->waiters) {
		struct job_waiter *w = j->waiters;
		j->waiters = w->next;
		w->cb(w->ctx, j);
		loop_timer_free(w->timer);
		free(w);
	}
	notify_followers(j);
	job_unref(j);
}

/* The job is gone with its supervisor and without a status: killed, its
 * cgroup removed, reported LOST. Its output stays readable. */
static void mark_lost(struct job *j)
{
	j->state = JOB_LOST;
	cgroup_remove_soon(j->t, j->id);
	j->status = (struct jobstatus){.end_ns = now_real_ns(), .signal = SIGKILL};
	if (!j->in_table)
		table_insert(j->t, j);
	mark_ended(j);
}

/* The supervisor is gone: its status tells how the job ended; without one
 * it died abnormally, so the job is killed and reported LOST. */
static void supervisor_gone(struct job *j)
{
	int wstatus = 0;
	if (j->sup_is_child)
		while (waitpid(j->sup_pid, &wstatus, 0) < 0 && errno == EINTR)
			;
	loop_watch_free(j->pid_watch);
	j->pid_watch = NULL;
	close(j->pidfd);
	j->pidfd = -1;

	struct err err = {0};
	int r = load_status(j, &err);
	if (r == 0) {
		j->state = JOB_EXITED;
		mark_ended(j);
		return;
	}
	if (r != -ENOENT)
		fprintf(stderr, "rund: %s\n", err.msg);
	if (j->sup_is_child && WIFEXITED(wstatus))
		fprintf(stderr,
			"rund: job %s: supervisor exited %d without recording a status (it could "
			"not write it); killing what is left of the job\n",
			j->id, WEXITSTATUS(wstatus));
	else
		fprintf(stderr,
			"rund: job %s: supervisor died without recording a status; killing the "
			"job\n",
			j->id);
	mark_lost(j);
}

static void on_supervisor_exit(void *ctx)
{
	supervisor_gone(ctx);
}

static void watch_running(struct job *j)
{
	struct job_table *t = j->t;
	close_dirfd(j);
	j->pid_watch = loop_watch_fd(t->loop, j->pidfd, on_supervisor_exit, j);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/jobs/%s", t->cfg.state_dir, j->id);
	j->wd = inotify_add_watch(t->inotify_fd, path, IN_MODIFY | IN_MOVED_TO);
	if (j->wd < 0)
		/* Followers then only learn of output at the job's end; say so. */
		fprintf(stderr, "rund: job %s: inotify_add_watch: %s\n", j->id, strerror(errno));
	else
		wd_insert(t, j);
}

static void notify_all_followers(struct job_table *t)
{
	for (size_t b = 0; b < NBUCKETS; b++)
		for (struct job *j = t->by_id[b]; j; j = j->id_next)
			notify_followers(j);
}

static void on_inotify(void *ctx)
{
	struct job_table *t = ctx;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(t->inotify_fd, buf, sizeof buf);
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events were lost: wake every follower. */
				notify_all_followers(t);
				continue;
			}
			struct job *j = wd_lookup(t, ev->wd);
			if (j && ev->len && strcmp(ev->name, "log") == 0)
				notify_followers(j);
		}
	}
}

/* --- supervisors -------------------------------------------------------- */

/* Supervisors' FIFOs are reused rather than unlinked: creating and
 * deleting an inode per Start showed up as ext4 inode allocation (scans
 * past recently deleted inodes) at the top of the Start profile. FIFOs are
 * named by small numbers. Returns true when FIFO *id must still be
 * created. */
static bool fifo_take(struct job_table *t, unsigned *id)
{
	if (t->n_fifo_free) {
		*id = t->fifo_free[--t->n_fifo_free];
		return false;
	}
	*id = t->fifo_next++;
	return true;
}

static void fifo_name(unsigned id, char name[16])
{
	snprintf(name, 16, "%u", id);
}

/* Returns a FIFO to the pool once its supervisor read its request whole
 * (nothing is left in it, and pipe data does not outlive its last open
 * fd anyway); otherwise removes it. */
static void fifo_release(struct job_table *t, unsigned id, bool reusable)
{
	if (!reusable) {
		char name[16];
		fifo_name(id, name);
		unlinkat(t->run_fd, name, 0);
		return;
	}
	if (t->n_fifo_free == t->cap_fifo_free) {
		t->cap_fifo_free = t->cap_fifo_free ? 2 * t->cap_fifo_free : 16;
		t->fifo_free = xrealloc(t->fifo_free, t->cap_fifo_free * sizeof *t->fifo_free);
	}
	t->fifo_free[t->n_fifo_free++] = id;
}

/* Closes our ends of a supervisor and releases its FIFO (for reuse only
 * when `reported`: it read its request whole). The process is not
 * touched. */
static void sup_free(struct sup *sp, bool reported)
{
	if (!sp)
		return;
	loop_watch_free(sp->watch);
	if (sp->fifo_fd >= 0)
		close(sp->fifo_fd);
	if (sp->report_fd >= 0)
		close(sp->report_fd);
	if (sp->pidfd >= 0)
		close(sp->pidfd);
	fifo_release(sp->t, sp->fifo, reported);
	free(sp);
}

/* Kills a supervisor of ours (if still alive) and reaps it. */
static void sup_reap(struct sup *sp)
{
	kill(sp->pid, SIGKILL);
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void sup_kill(struct sup *sp)
{
	sup_reap(sp);
	sup_free(sp, false);
}

/* A spare died before it was given a job: reap it and forget it. The pool
 * is refilled by the next Start, not here, so a supervisor that cannot
 * start at all does not make us spin. */
static void on_spare_exit(void *ctx)
{
	struct sup *sp = ctx;
	struct job_table *t = sp->t;
	for (struct sup **p = &t->spares; *p; p = &(*p)->next) {
		if (*p == sp) {
			*p = sp->next;
			t->n_spares--;
			break;
		}
	}
	fprintf(stderr, "rund: spare supervisor %d exited before it was given a job\n",
		(int)sp->pid);
	sup_kill(sp);
}

/* Starts `rund execute -fifo <state_dir>/run/<n>`. The supervisor waits for
 * its request, so the daemon can keep one ready and take an exec off the
 * critical path of Start. */
static int sup_spawn(struct job_table *t, struct sup **out, struct err *err)
{
	struct sup *sp = xcalloc(1, sizeof *sp);
	sp->t = t;
	sp->pidfd = sp->report_fd = sp->fifo_fd = -1;
	bool fresh = fifo_take(t, &sp->fifo);
	char name[16], path[PATH_MAX];
	fifo_name(sp->fifo, name);
	int n = snprintf(path, sizeof path, "%s/run/%s", t->cfg.state_dir, name);
	int pipefd[2] = {-1, -1};
	int r = 0;
	if (n < 0 || (size_t)n >= sizeof path)
		r = err_set(err, ENAMETOOLONG, ERR_INTERNAL, "state directory path too long");
	else if (fresh && mkfifoat(t->run_fd, name, 0600) < 0)
		r = err_sys(err, errno, "create fifo %s", path);
	/* Read-write: never blocks, and keeps the FIFO's data alive until
	 * the supervisor has read it; our close is its EOF if we die. */
	else if ((sp->fifo_fd = openat(t->run_fd, name,
				       O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)) < 0)
		r = err_sys(err, errno, "open fifo %s", path);
	else if (pipe2(pipefd, O_CLOEXEC) < 0)
		r = err_sys(err, errno, "create report pipe");
	if (r < 0) {
		sup_free(sp, false);
		return r;
	}
	sp->report_fd = pipefd[0];

	char *argv[] = {(char *)"rund", (char *)"execute", (char *)"-fifo", path, NULL};
	/* A clean environment; sanitizer settings pass through so that an
	 * instrumented supervisor reports where the test lane looks. */
	static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
	char *envp[2 + ARRAY_SIZE(keep)];
	size_t ne = 0;
	envp[ne++] = (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		const char *v = getenv(keep[i]);
		if (v)
			envp[ne++] = xasprintf("%s=%s", keep[i], v);
	}
	envp[ne] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
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
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&sp->pid, t->cfg.exe, &fa, &attr, argv, envp);
	for (size_t i = 1; i < ne; i++)
		free(envp[i]);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pipefd[1]);
	if (r != 0) {
		r = err_sys(err, r, "spawn supervisor %s", t->cfg.exe);
		sup_free(sp, false);
		return r;
	}
	sp->pidfd = sys_pidfd_open(sp->pid, 0);
	if (sp->pidfd < 0) {
		r = err_sys(err, errno, "pidfd_open supervisor %d", (int)sp->pid);
		sup_kill(sp);
		return r;
	}
	fcntl(sp->report_fd, F_SETFL, O_NONBLOCK);
	*out = sp;
	return 0;
}

static void spares_refill(void *ctx)
{
	struct job_table *t = ctx;
	while (t->n_spares < SPARES) {
		struct sup *sp;
		struct err err = {0};
		if (sup_spawn(t, &sp, &err) < 0) {
			fprintf(stderr, "rund: cannot prepare a spare supervisor: %s\n", err.msg);
			return;
		}
		sp->watch = loop_watch_fd(t->loop, sp->pidfd, on_spare_exit, sp);
		sp->next = t->spares;
		t->spares = sp;
		t->n_spares++;
	}
}

/* A ready supervisor: a spare when there is one, else a new one. */
static int sup_take(struct job_table *t, struct sup **out, struct err *err)
{
	struct sup *sp = t->spares;
	/* A spare that died since the loop last looked is reaped here, not
	 * handed a job it cannot run. */
	while (sp && poll(&(struct pollfd){.fd = sp->pidfd, .events = POLLIN}, 1, 0) > 0) {
		on_spare_exit(sp);
		sp = t->spares;
	}
	if (sp) {
		t->spares = sp->next;
		t->n_spares--;
		loop_watch_free(sp->watch);
		sp->watch = NULL;
		*out = sp;
	} else {
		int r = sup_spawn(t, out, err);
		if (r < 0)
			return r;
	}
	/* Refill from the loop, after this Start's own work. */
	loop_timer_arm(t->refill_timer, 0);
	return 0;
}

/* Writes the whole request into a supervisor's FIFO. job_start bounded
 * its size; it must also fit in the pipe buffer, so the write never
 * blocks. */
static int write_request(struct sup *sp, const char *id, const char *spec, size_t len,
			 struct err *err)
{
	char hdr[REQUEST_HDR_MAX];
	int n = snprintf(hdr, sizeof hdr, "%zu\n", len);
	size_t total = (size_t)n + len;
	int cap = fcntl(sp->fifo_fd, F_GETPIPE_SZ);
	if (cap >= 0 && (size_t)cap < total)
		cap = fcntl(sp->fifo_fd, F_SETPIPE_SZ, (int)REQUEST_MAX);
	if (cap < 0 || (size_t)cap < total)
		return err_set(err, E2BIG, ERR_EXHAUSTED,
			       "command line too long for the request pipe: %zu bytes", total);
	struct iovec iov[2] = {{hdr, (size_t)n}, {(void *)spec, len}};
	ssize_t w = writev(sp->fifo_fd, iov, 2);
	if (w < 0)
		return err_sys(err, errno, "write request of job %s", id);
	if ((size_t)w != total)
		return err_set(err, EIO, ERR_INTERNAL, "short write of request of job %s", id);
	return 0;
}

/* --- start -------------------------------------------------------------- */

static void on_report(void *ctx);

/* Gives the job's request to a ready supervisor and waits for its report. */
static int pending_hand_over(struct job_pending *p, const char *spec, size_t len, struct err *err)
{
	int r = sup_take(p->t, &p->sup, err);
	if (r == 0)
		r = write_request(p->sup, p->job->id, spec, len, err);
	if (r == 0)
		p->report_watch = loop_watch_fd(p->t->loop, p->sup->report_fd, on_report, p);
	return r;
}

static void pending_free(struct job_pending *p)
{
	loop_watch_free(p->report_watch);
	sup_free(p->sup, p->reported);
	if (p->job)
		job_unref(p->job);
	free(p);
}

static void pending_fail(struct job_pending *p, const struct err *err)
{
	struct job_table *t = p->t;
	/* The supervisor exits right after reporting (or already has). */
	if (p->sup)
		sup_reap(p->sup);
	cgroup_remove_soon(t, p->job->id);
	remove_job_dir(t->jobs_fd, p->job->id);
	if (!p->detached)
		p->cb(p->ctx, NULL, err);
	pending_free(p);
}

static void pending_ok(struct job_pending *p)
{
	struct job *j = steal_pointer(&p->job);
	struct err err = {0};
	if (load_start(j, &err) < 0) {
		p->job = j;
		pending_fail(p, &err);
		return;
	}
	j->state = JOB_RUNNING;
	j->sup_pid = p->sup->pid;
	j->sup_is_child = true;
	j->pidfd = steal_fd(&p->sup->pidfd);
	table_insert(p->t, j);
	watch_running(j);
	if (!p->detached)
		p->cb(p->ctx, j->id, NULL);
	pending_free(p);
}

/* Parses "err <errno> <kind> <message>" from the supervisor. */
static void parse_report_error(const char *line, struct err *err)
{
	int code = 0, kind = 0, off = 0;
	if (sscanf(line, "err %d %d %n", &code, &kind, &off) >= 2 && off > 0 && code > 0 &&
	    kind > ERR_KIND_NONE && kind <= ERR_INTERNAL)
		err_set(err, code, (enum err_kind)kind, "%s", line + off);
	else
		err_set(err, EPROTO, ERR_INTERNAL, "supervisor reported \"%.200s\"", line);
}

/* The supervisor died without reading its request (a spare killed just
 * before it was used): nothing was started, so give the request to a
 * fresh supervisor, once. */
static bool pending_retry(struct job_pending *p)
{
	int unread = 0;
	if (p->retried || ioctl(p->sup->fifo_fd, FIONREAD, &unread) < 0 || unread <= 0)
		return false;
	p->retried = true;
	fprintf(stderr,
		"rund: job %s: its supervisor %d died before reading the request; "
		"handing it to another\n",
		p->job->id, (int)p->sup->pid);
	loop_watch_free(steal_pointer(&p->report_watch));
	sup_kill(steal_pointer(&p->sup)); /* its FIFO still holds the request */
	p->line_len = 0;

	struct err err = {0};
	size_t len;
	_cleanup_free_ char *spec = jobspec_encode(&p->job->spec, &len);
	if (pending_hand_over(p, spec, len, &err) < 0) {
		fprintf(stderr, "rund: job %s: %s\n", p->job->id, err.msg);
		return false;
	}
	return true;
}

static void on_report(void *ctx)
{
	struct job_pending *p = ctx;
	ssize_t n =
		read(p->sup->report_fd, p->line + p->line_len, sizeof p->line - 1 - p->line_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		p->line_len += (size_t)n;
		p->line[p->line_len] = '\0';
		char *nl = memchr(p->line, '\n', p->line_len);
		if (!nl && p->line_len < sizeof p->line - 1)
			return;
		if (nl)
			*nl = '\0';
	}
	struct err err = {0};
	/* A report means the request was read whole: the FIFO is empty and
	 * may serve the next supervisor. */
	p->reported = n > 0;
	if (n > 0 && strcmp(p->line, "ok") == 0) {
		pending_ok(p);
		return;
	}
	if (n == 0 && pending_retry(p))
		return;
	if (n > 0)
		parse_report_error(p->line, &err);
	else
		err_set(&err, EPROTO, ERR_INTERNAL,
			"the job's supervisor exited before reporting whether the job started");
	pending_fail(p, &err);
}

int job_start(struct job_table *t, const struct job_request *req, job_started_fn cb, void *ctx,
	      struct job_pending **pending, struct err *err)
{
	if (!req->owner || req->owner->n == 0)
		return err_set(err, EACCES, ERR_PERMISSION,
			       "the client certificate has no subject alternative name "
			       "(DNS, URI, IP or email), so no job could ever be shown to it");

	struct ulid u;
	uint64_t now = now_real_ns();
	int r = ulid_next(&t->gen, now / 1000000, &u);
	if (r < 0)
		return err_sys(err, -r, "generate a job id");
	char id[ULID_LEN + 1];
	ulid_format(&u, id);

	struct job *j = job_new(t, id);
	struct jobspec *s = &j->spec;
	snprintf(s->id, sizeof s->id, "%s", id);
	s->argc = req->argc;
	s->argv = xcalloc(req->argc + 1, sizeof *s->argv);
	for (size_t i = 0; i < req->argc; i++)
		s->argv[i] = xstrdup(req->argv[i]);
	s->limits = req->limits;
	san_set_copy(&s->owners, req->owner);
	s->created_ns = now;
	s->cgroup = xstrdup(t->cfg.cgroup->path);
	if (t->cfg.n_io_devices) {
		s->io_devices = xcalloc(t->cfg.n_io_devices, sizeof *s->io_devices);
		memcpy(s->io_devices, t->cfg.io_devices,
		       t->cfg.n_io_devices * sizeof *s->io_devices);
		s->n_io_devices = t->cfg.n_io_devices;
	}
	s->max_log_bytes = t->cfg.max_log_bytes;

	r = jobspec_validate(s, t->ncpu, t->page_size, err);
	if (r == 0)
		r = cgroup_check_limits(t->cfg.cgroup, &s->limits, err);
	if (r < 0) {
		job_unref(j);
		return r;
	}

	struct job_pending *p = xcalloc(1, sizeof *p);
	p->t = t;
	p->job = j;
	p->cb = cb;
	p->ctx = ctx;
	size_t spec_len;
	_cleanup_free_ char *spec = jobspec_encode(s, &spec_len);
	/* Refuse before anything is created or a supervisor is used up. */
	if (spec_len + REQUEST_HDR_MAX > REQUEST_MAX) {
		pending_free(p);
		return err_set(err, E2BIG, ERR_INVALID,
			       "command line too long: %zu bytes encoded, limit %u", spec_len,
			       REQUEST_MAX - REQUEST_HDR_MAX);
	}

	if (mkdirat(t->jobs_fd, id, 0700) < 0) {
		r = err_sys(err, errno, "create job directory %s/jobs/%s", t->cfg.state_dir, id);
		pending_free(p);
		return r;
	}
	j->dirfd = openat(t->jobs_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (j->dirfd < 0)
		r = err_sys(err, errno, "open job directory %s", id);
	else if ((r = write_file_atomic(j->dirfd, "spec", spec, spec_len)) < 0)
		r = err_sys(err, -r, "write %s/jobs/%s/spec", t->cfg.state_dir, id);
	else
		r = pending_hand_over(p, spec, spec_len, err);
	if (r < 0) {
		if (p->sup)
			sup_kill(steal_pointer(&p->sup));
		remove_job_dir(t->jobs_fd, id);
		pending_free(p);
		return r;
	}
	*pending = p;
	return 0;
}

void job_pending_detach(struct job_pending *p)
{
	p->detached = true;
}

/* --- lookup, status, stop ----------------------------------------------- */

int job_find(struct job_table *t, const char *id, size_t id_len, const struct san_set *peer,
	     struct job **out, struct err *err)
{
	struct ulid u;
	if (ulid_parse(id, id_len, &u) < 0)
		return err_set(err, EINVAL, ERR_INVALID,
			       "malformed job id \"%.*s\": want 26 characters of Crockford base32",
			       (int)(id_len > 64 ? 64 : id_len), id);
	char canon[ULID_LEN + 1];
	ulid_format(&u, canon);
	struct job *j = table_lookup(t, canon);
	if (!j || !san_set_intersects(&j->spec.owners, peer))
		return err_set(err, ENOENT, ERR_NOT_FOUND, "no job %s", canon);
	*out = j;
	return 0;
}

void job_info(struct job *j, struct job_info *info)
{
	*info = (struct job_info){0};
	info->argv = j->spec.argv;
	info->argc = j->spec.argc;
	info->start_ns = j->has_start ? j->start.start_ns : 0;
	info->state = j->state;
	if (j->state == JOB_RUNNING) {
		struct cgroup_stats st = {0};
		if (cgroup_job_stats(j->t->cfg.cgroup, j->id, &st) == 0) {
			info->user_usec = st.user_usec;
			info->system_usec = st.system_usec;
			info->memory_current = st.memory_current;
			info->memory_peak = st.memory_peak;
			info->oom_killed = st.oom_kills > 0;
		}
		return;
	}
	const struct jobstatus *s = &j->status;
	info->stopped = s->stopped;
	info->killed = !s->exited;
	info->has_exit_code = s->exited;
	info->exit_code = (uint32_t)s->exit_code;
	info->signal = s->exited ? 0 : s->signal;
	info->oom_killed = s->oom_killed;
	info->user_usec = s->user_usec;
	info->system_usec = s->system_usec;
	info->memory_peak = s->memory_peak;
	info->end_ns = s->end_ns;
	info->log_bytes = s->log_bytes;
	info->log_truncated = s->log_truncated;
}

static void waiter_fire(void *ctx)
{
	struct job_waiter *w = ctx;
	struct job *j = w->job;
	w->cb(w->ctx, j);
	loop_timer_free(w->timer);
	free(w);
	job_unref(j);
}

int job_stop(struct job *j, job_ended_fn cb, void *ctx, struct job_waiter **out, struct err *err)
{
	struct job_waiter *w = xcalloc(1, sizeof *w);
	w->job = j;
	w->cb = cb;
	w->ctx = ctx;
	if (job_ended(j)) {
		/* Nothing to kill; answer from the loop, not from inside the call. */
		job_ref(j);
		w->timer = loop_timer_new(j->t->loop, waiter_fire, w);
		loop_timer_arm(w->timer, 0);
		*out = w;
		return 0;
	}
	char path[JOB_FILE_MAX];
	job_file(j, "stop", path);
	_cleanup_close_ int fd =
		openat(j->t->jobs_fd, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		free(w);
		return err_sys(err, errno, "job %s: record the stop request", j->id);
	}
	int r = cgroup_job_kill(j->t->cfg.cgroup, j->id, err);
	if (r < 0 && r != -ENOENT) {
		/* Not stopped after all: a later natural end must not say so. */
		unlinkat(j->t->jobs_fd, path, 0);
		free(w);
		return err_wrap(err, "stop job %s", j->id);
	}
	w->next = j->waiters;
	j->waiters = w;
	*out = w;
	return 0;
}

void job_waiter_cancel(struct job_waiter *w)
{
	struct job *j = w->job;
	if (w->timer) {
		loop_timer_free(w->timer);
		free(w);
		job_unref(j);
		return;
	}
	for (struct job_waiter **p = &j->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	free(w);
}

/* --- log ---------------------------------------------------------------- */

int job_follow(struct job *j, void (*notify)(void *ctx), void *ctx, struct job_follower **out,
	       struct err *err)
{
	struct job_follower *f = xcalloc(1, sizeof *f);
	char path[JOB_FILE_MAX];
	job_file(j, "log", path);
	int r = logreader_open(&f->reader, j->t->jobs_fd, path);
	if (r < 0 && r != -ENOENT) {
		free(f);
		return err_sys(err, -r, "open the output of job %s", j->id);
	}
	f->have_reader = r == 0;
	f->job = j;
	f->notify = notify;
	f->ctx = ctx;
	f->next = j->followers;
	j->followers = f;
	job_ref(j);
	*out = f;
	return 0;
}

int job_follow_next(struct job_follower *f, size_t max, struct logchunk *out, struct err *err)
{
	/* Decide "ended" before reading: the supervisor writes all output
	 * before its status, so a read after seeing the end sees everything. */
	bool ended = job_ended(f->job);
	if (!f->have_reader)
		return ended ? JOB_LOG_END : 0;
	int r = logreader_next(&f->reader, max, out);
	if (r == 0 && ended)
		return JOB_LOG_END;
	if (r < 0)
		return err_sys(err, -r, "read the output of job %s", f->job->id);
	return r;
}

int job_follow_read(struct job_follower *f, uint8_t *dst, size_t max, struct logchunk *out,
		    struct err *err)
{
	/* As job_follow_next: "ended" is decided before reading. */
	bool ended = job_ended(f->job);
	if (!f->have_reader)
		return ended ? JOB_LOG_END : 0;
	int r = logreader_read(&f->reader, dst, max, out);
	if (r == 0 && ended)
		return JOB_LOG_END;
	if (r < 0)
		return err_sys(err, -r, "read the output of job %s", f->job->id);
	return r;
}

void job_follow_close(struct job_follower *f)
{
	if (!f)
		return;
	struct job *j = f->job;
	for (struct job_follower **p = &j->followers; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			break;
		}
	}
	if (f->have_reader)
		logreader_close(&f->reader);
	free(f);
	job_unref(j);
}

/* --- table -------------------------------------------------------------- */

/* A job found at start-up whose supervisor is still starting it (or
 * whose pidfd could not be opened yet) is looked at again until it is
 * clearly running, ended or never started. */
struct recheck {
	struct job *job;
	uint64_t since_ns;
	struct loop_timer *timer;
	struct recheck *next;
};

static void recheck_free(struct recheck *rc)
{
	for (struct recheck **p = &rc->job->t->rechecks; *p; p = &(*p)->next) {
		if (*p == rc) {
			*p = rc->next;
			break;
		}
	}
	loop_timer_free(rc->timer);
	free(rc);
}

#define RECHECK_MS 100
#define NEVER_STARTED_GRACE_MS 2000 /* a supervisor may be about to lock */

/* Decides what a job directory found at start-up is. Returns true when
 * done: the job is in the table (running, ended or lost) or was dropped;
 * false to look again later. Takes over the caller's reference. */
static bool settle_recovered(struct job *j, uint64_t waited_ms)
{
	struct job_table *t = j->t;
	struct err err = {0};
	/* Liveness first: a supervisor that is gone by now wrote its status
	 * (if it could) before it let go of the lock. */
	bool alive = supervisor_alive(j);
	int r = load_status(j, &err);
	bool started = load_start(j, NULL) == 0;
	if (r == 0) {
		j->state = JOB_EXITED;
		table_insert(t, j);
		mark_ended(j);
		return true;
	}
	if (r != -ENOENT) {
		fprintf(stderr, "rund: state: jobs/%s: %s; treating it as lost\n", j->id, err.msg);
		mark_lost(j);
		return true;
	}
	if (started && alive) {
		/* The lock proves the recorded pid is still our supervisor; a
		 * pidfd opened before re-checking it cannot name a reused pid. */
		j->pidfd = sys_pidfd_open(j->start.supervisor_pid, 0);
		if (j->pidfd >= 0 && supervisor_alive(j)) {
			j->sup_pid = j->start.supervisor_pid;
			j->state = JOB_RUNNING;
			table_insert(t, j);
			watch_running(j);
			return true;
		}
		if (j->pidfd >= 0) {
			close(j->pidfd);
			j->pidfd = -1;
		}
		return false; /* it just ended, or pidfd_open failed: look again */
	}
	if (started) {
		fprintf(stderr,
			"rund: job %s: supervisor died without recording a status; "
			"killing the job\n",
			j->id);
		mark_lost(j);
		return true;
	}
	if (alive || waited_ms < NEVER_STARTED_GRACE_MS)
		return false;
	/* Never started: its Start failed while no daemon was watching. */
	remove_job_dir(t->jobs_fd, j->id);
	job_unref(j);
	return true;
}

static void on_recheck(void *ctx)
{
	struct recheck *rc = ctx;
	if (!settle_recovered(rc->job, (now_mono_ns() - rc->since_ns) / 1000000)) {
		loop_timer_arm(rc->timer, RECHECK_MS);
		return;
	}
	recheck_free(rc);
}

static void recheck_later(struct job *j)
{
	struct recheck *rc = xcalloc(1, sizeof *rc);
	rc->job = j;
	rc->since_ns = now_mono_ns();
	rc->timer = loop_timer_new(j->t->loop, on_recheck, rc);
	rc->next = j->t->rechecks;
	j->t->rechecks = rc;
	loop_timer_arm(rc->timer, RECHECK_MS);
}

/* Serves one existing job directory found at start-up. */
static void recover_job(struct job_table *t, const char *name)
{
	struct ulid u;
	char canon[ULID_LEN + 1];
	if (ulid_parse(name, strlen(name), &u) < 0) {
		fprintf(stderr, "rund: state: ignoring unexpected entry jobs/%s\n", name);
		return;
	}
	ulid_format(&u, canon);
	struct job *j = job_new(t, canon);
	struct err err = {0};
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;
	j->dirfd = openat(t->jobs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (j->dirfd < 0) {
		fprintf(stderr, "rund: state: skipping jobs/%s: %s\n", name, strerror(errno));
		goto bad;
	}
	r = read_file_at(j->dirfd, "spec", SPEC_MAX, &buf, &len);
	if (r < 0) {
		fprintf(stderr, "rund: state: skipping jobs/%s: read spec: %s\n", name,
			strerror(-r));
		goto bad;
	}
	if (jobspec_decode(buf, len, &j->spec, &err) < 0 || strcmp(j->spec.id, canon) != 0) {
		fprintf(stderr, "rund: state: skipping jobs/%s: spec: %s\n", name,
			err.msg[0] ? err.msg : "id does not match the directory");
		goto bad;
	}
	if (!settle_recovered(j, 0))
		recheck_later(j);
	return;
bad:
	job_unref(j);
}

/* One daemon per state directory: a second one would reap the first's
 * FIFOs and race it on every job. The lock dies with the daemon. */
static int lock_state_dir(struct job_table *t, struct err *err)
{
	t->lock_fd =
		openat(t->state_fd, "daemon.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->lock_fd < 0)
		return err_sys(err, errno, "open %s/daemon.lock", t->cfg.state_dir);
	if (flock(t->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return err_set(err, EBUSY, ERR_PRECONDITION,
				       "another rund already serves the state directory %s",
				       t->cfg.state_dir);
		return err_sys(err, errno, "lock %s/daemon.lock", t->cfg.state_dir);
	}
	return 0;
}

/* <state_dir>/run holds supervisors' FIFOs. Whatever an earlier daemon
 * left there is stale: its spares saw EOF when it died. */
static int open_run_dir(struct job_table *t, struct err *err)
{
	if (mkdirat(t->state_fd, "run", 0700) < 0 && errno != EEXIST)
		return err_sys(err, errno, "create %s/run", t->cfg.state_dir);
	t->run_fd = openat(t->state_fd, "run", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (t->run_fd < 0)
		return err_sys(err, errno, "open %s/run", t->cfg.state_dir);
	int fd = dup(t->run_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return err_sys(err, errno, "read %s/run", t->cfg.state_dir);
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(t->run_fd, e->d_name, 0);
	closedir(d);
	return 0;
}

int job_table_open(struct loop *loop, const struct job_config *cfg, struct job_table **out,
		   struct err *err)
{
	struct job_table *t = xcalloc(1, sizeof *t);
	t->loop = loop;
	t->cfg = *cfg;
	t->state_fd = t->jobs_fd = t->inotify_fd = t->run_fd = t->lock_fd = -1;
	t->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	t->page_size = sysconf(_SC_PAGESIZE);
	int r = 0;
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST)
		r = err_sys(err, errno, "create state directory %s", cfg->state_dir);
	if (r == 0 && (t->state_fd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = err_sys(err, errno, "open state directory %s", cfg->state_dir);
	if (r == 0 && mkdirat(t->state_fd, "jobs", 0700) < 0 && errno != EEXIST)
		r = err_sys(err, errno, "create %s/jobs", cfg->state_dir);
	if (r == 0 &&
	    (t->jobs_fd = openat(t->state_fd, "jobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = err_sys(err, errno, "open %s/jobs", cfg->state_dir);
	if (r == 0)
		r = lock_state_dir(t, err);
	if (r == 0)
		r = open_run_dir(t, err);
	if (r == 0 && (t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		r = err_sys(err, errno, "inotify_init1");
	if (r < 0) {
		job_table_free(t);
		return r;
	}
	t->inotify_watch = loop_watch_fd(loop, t->inotify_fd, on_inotify, t);
	t->retention_timer = loop_timer_new(loop, retention_sweep, t);
	t->refill_timer = loop_timer_new(loop, spares_refill, t);
	loop_timer_arm(t->refill_timer, 0);

	int fd = dup(t->jobs_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		r = err_sys(err, errno, "read %s/jobs", cfg->state_dir);
		if (fd >= 0)
			close(fd);
		job_table_free(t);
		return r;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			recover_job(t, e->d_name);
	closedir(d);
	*out = t;
	return 0;
}

size_t job_table_count(const struct job_table *t)
{
	return t->count;
}

void job_table_free(struct job_table *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < NBUCKETS; b++) {
		while (t->by_id[b]) {
			struct job *j = t->by_id[b];
			t->by_id[b] = j->id_next;
			while (j->waiters) {
				struct job_waiter *w = j->waiters;
				j->waiters = w->next;
				free(w);
			}
			j->in_table = false;
			job_unref(j);
		}
	}
	while (t->reapers)
		cg_reaper_free(t->reapers);
	while (t->rechecks) {
		struct job *j = t->rechecks->job;
		recheck_free(t->rechecks);
		job_unref(j);
	}
	/* Spares see EOF on their FIFO and exit on their own. */
	while (t->spares) {
		struct sup *sp = t->spares;
		t->spares = sp->next;
		sup_free(sp, false);
	}
	loop_watch_free(t->inotify_watch);
	loop_timer_free(t->retention_timer);
	loop_timer_free(t->refill_timer);
	free(t->fifo_free);
	if (t->run_fd >= 0)
		close(t->run_fd);
	if (t->lock_fd >= 0)
		close(t->lock_fd);
	if (t->inotify_fd >= 0)
		close(t->inotify_fd);
	if (t->jobs_fd >= 0)
		close(t->jobs_fd);
	if (t->state_fd >= 0)
		close(t->state_fd);
	free(t);
}
