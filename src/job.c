/* job: the daemon's job table. See job.h for the contract. What lives
 * elsewhere: the state directory's layout (jobdir.h), the hand-off to a
 * supervisor (handoff.h) and the pool of ready supervisors (suppool.h). */
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "handoff.h"
#include "jobdir.h"
#include "recovery.h"
#include "supervisor.h"
#include "suppool.h"
#include "sys.h"
#include "ulid.h"
#include "util.h"

struct job_follower {
	struct job *job;
	struct logreader reader;
	void (*notify)(void *ctx);
	void *ctx;
	LIST_ENTRY(job_follower) link;
};

struct job_waiter {
	struct job *job;
	job_ended_fn cb;
	void *ctx;
	struct loop_timer *timer;      /* for jobs that had already ended */
	struct loop_timer *kill_timer; /* a graceful stop's backstop */
	LIST_ENTRY(job_waiter) link;
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
	LIST_HEAD(, job_follower) followers;
	LIST_HEAD(, job_waiter) waiters;
	LIST_ENTRY(job) id_link, wd_link; /* hash chains */
	bool holds_uid;			  /* spec.sandbox.uid is ours in the pool */
};

struct job_pending {
	struct job_table *t;
	struct job *job; /* not yet in the table */
	struct sup *sup; /* the supervisor given the request */
	struct loop_watch *report_watch;
	bool reported; /* it read its request whole and answered */
	char line[HANDOFF_REPORT_MAX];
	size_t line_len;
	job_started_fn cb;
	void *ctx;
	bool detached;
	bool retried; /* the request went to a second supervisor already */
};

#define NBUCKETS 4096

LIST_HEAD(job_list, job);

struct job_table {
	struct loop *loop;
	struct job_config cfg;
	struct jobdir_root dir;
	struct suppool *pool;
	struct ulid_gen gen;
	long ncpu, page_size;
	struct job_list by_id[NBUCKETS];
	struct job_list by_wd[NBUCKETS];
	size_t count;
	int inotify_fd;
	struct loop_watch *inotify_watch;
	struct loop_timer *retention_timer;
	uint64_t retention_due;		/* mono ns of the armed sweep, 0 = none */
	LIST_HEAD(, cg_reaper) reapers; /* cgroups still being removed */
	LIST_HEAD(, recheck) rechecks;	/* recovered jobs not settled yet */
	uint64_t newest_created_ns;	/* recovery: uids resume after the newest job's */
	uint32_t newest_uid;
	bool short_of_space; /* the last Start found the state disk below its floor */
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
	LIST_INSERT_HEAD(&t->by_id[id_hash(j->id)], j, id_link);
	j->in_table = true;
	t->count++;
}

static void table_remove(struct job_table *t, struct job *j)
{
	if (!j->in_table)
		return;
	LIST_REMOVE(j, id_link);
	j->in_table = false;
	t->count--;
}

static struct job *table_lookup(struct job_table *t, const char *id)
{
	struct job *j;
	LIST_FOREACH(j, &t->by_id[id_hash(id)], id_link)
	if (strcmp(j->id, id) == 0)
		return j;
	return NULL;
}

static void wd_insert(struct job_table *t, struct job *j)
{
	LIST_INSERT_HEAD(&t->by_wd[(size_t)j->wd % NBUCKETS], j, wd_link);
}

static void wd_remove(struct job_table *t, struct job *j)
{
	if (j->wd < 0)
		return;
	LIST_REMOVE(j, wd_link);
	inotify_rm_watch(t->inotify_fd, j->wd);
	j->wd = -1;
}

static struct job *wd_lookup(struct job_table *t, int wd)
{
	struct job *j;
	LIST_FOREACH(j, &t->by_wd[(size_t)wd % NBUCKETS], wd_link)
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
	LIST_INIT(&j->followers);
	LIST_INIT(&j->waiters);
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

/* Jobs in the table hold no directory fd (10,000 jobs must fit in the
 * descriptor limit): their files are opened by path when needed. */
static void close_dirfd(struct job *j)
{
	if (j->dirfd >= 0) {
		close(j->dirfd);
		j->dirfd = -1;
	}
}

static int load_start(struct job *j, struct err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = jobdir_read(j->t->dir.jobs_fd, j->id, JOBDIR_STARTED, &buf, &len);
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
	int r = jobdir_read(j->t->dir.jobs_fd, j->id, JOBDIR_STATUS, &buf, &len);
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
	uint32_t uid; /* returned to the pool once the group is gone; 0 = none */
	unsigned tries;
	struct loop_timer *timer;
	LIST_ENTRY(cg_reaper) link;
};

static void cg_reaper_free(struct cg_reaper *c)
{
	LIST_REMOVE(c, link);
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
		fprintf(stderr, "rund: job %s: %s%s\n", c->id, err.msg,
			c->uid ? "; its uid stays reserved" : "");
	else if (c->uid)
		uidpool_release(c->t->cfg.uids, c->uid);
	cg_reaper_free(c);
}

/* Kills what is left of job `id` and removes its cgroup, now or soon.
 * Only then may its uid (0 = none) serve another job: nothing of this one
 * can remain once its group is gone. */
static void cgroup_remove_soon(struct job_table *t, const char *id, uint32_t uid)
{
	cgroup_job_kill(t->cfg.cgroup, id, NULL);
	int r = cgroup_job_remove(t->cfg.cgroup, id, 0, NULL);
	if (r != -EBUSY) {
		if (uid && (r == 0 || r == -ENOENT))
			uidpool_release(t->cfg.uids, uid);
		else if (uid)
			fprintf(stderr,
				"rund: job %s: cannot remove its cgroup (%s); its uid %u stays "
				"reserved\n",
				id, strerror(-r), uid);
		return;
	}
	struct cg_reaper *c = xcalloc(1, sizeof *c);
	c->t = t;
	c->uid = uid;
	snprintf(c->id, sizeof c->id, "%s", id);
	c->timer = loop_timer_new(t->loop, cg_reap, c);
	LIST_INSERT_HEAD(&t->reapers, c, link);
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
	jobdir_remove(t->dir.jobs_fd, j->id);
	job_unref(j);
}

static void retention_sweep(void *ctx)
{
	struct job_table *t = ctx;
	uint64_t now = now_mono_ns(), next = 0;
	t->retention_due = 0;
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct job *j = LIST_FIRST(&t->by_id[b]);
		while (j) {
			struct job *n = LIST_NEXT(j, id_link);
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

/* One audit line for a job seen starting or ending by this daemon (not
 * for jobs found already ended in the state directory). */
static void audit_event(struct job *j, const char *event)
{
	const struct audit *a = j->t->cfg.audit;
	if (!a)
		return;
	char outcome[32];
	if (j->state == JOB_LOST)
		snprintf(outcome, sizeof outcome, "lost");
	else if (j->status.exited)
		snprintf(outcome, sizeof outcome, "exit %d", j->status.exit_code);
	else
		snprintf(outcome, sizeof outcome, "signal %d", j->status.signal);
	bool end = strcmp(event, "job_end") == 0;
	struct audit_job aj = {
		.event = event,
		.job = j->id,
		.owners = &j->spec.owners,
		.name = j->spec.argc ? j->spec.argv[0] : "",
		.args = j->spec.argc ? j->spec.argv + 1 : NULL,
		.n_args = j->spec.argc ? j->spec.argc - 1 : 0,
		.outcome = end ? outcome : NULL,
	};
	audit_job(a, &aj);
}

static void notify_followers(struct job *j)
{
	struct job_follower *f;
	LIST_FOREACH(f, &j->followers, link)
	f->notify(f->ctx);
}

/* Hands the job's uid back to the pool once its cgroup is gone, which
 * also removes the group of a job whose supervisor could not. */
static void job_cleanup_cgroup(struct job *j)
{
	uint32_t uid = j->holds_uid ? j->spec.sandbox.uid : 0;
	j->holds_uid = false;
	cgroup_remove_soon(j->t, j->id, uid);
}

static void mark_ended(struct job *j)
{
	struct job_table *t = j->t;
	wd_remove(t, j);
	job_cleanup_cgroup(j);
	/* Retention counts from the recorded end, also across restarts. */
	j->ended_mono_ns = recovery_end_mono(j->status.end_ns, now_real_ns(), now_mono_ns());
	close_dirfd(j);
	retention_arm(t, j->ended_mono_ns + t->cfg.retention_ns);
	job_ref(j);
	while (!LIST_EMPTY(&j->waiters)) {
		struct job_waiter *w = LIST_FIRST(&j->waiters);
		LIST_REMOVE(w, link);
		loop_timer_free(w->kill_timer);
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
		audit_event(j, "job_end");
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
	j->state = JOB_LOST;
	audit_event(j, "job_end");
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
	if (jobdir_path(t->dir.path, j->id, path, sizeof path) < 0)
		errno = ENAMETOOLONG;
	else
		j->wd = inotify_add_watch(t->inotify_fd, path, IN_MODIFY | IN_MOVED_TO);
	if (j->wd < 0)
		/* Followers then only learn of output at the job's end; say so. */
		fprintf(stderr, "rund: job %s: inotify_add_watch: %s\n", j->id, strerror(errno));
	else
		wd_insert(t, j);
}

static void notify_all_followers(struct job_table *t)
{
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct job *j;
		LIST_FOREACH(j, &t->by_id[b], id_link)
		notify_followers(j);
	}
}

/* "log" (version 1) or a segment "log.N". */
static bool is_log_file(const char *name)
{
	const char *base = jobdir_name(JOBDIR_LOG);
	size_t n = strlen(base);
	return strncmp(name, base, n) == 0 && (name[n] == '\0' || name[n] == '.');
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
			if (j && ev->len && is_log_file(ev->name))
				notify_followers(j);
		}
	}
}

/* --- start -------------------------------------------------------------- */

static void on_report(void *ctx);

/* Gives the job's request to a ready supervisor (fresh: one spawned now,
 * not a spare) and waits for its report. */
static int pending_hand_over(struct job_pending *p, const char *spec, size_t len, bool fresh,
			     struct err *err)
{
	int r = suppool_take(p->t->pool, fresh, &p->sup, err);
	if (r == 0)
		r = sup_send(p->sup, p->job->id, spec, len, err);
	if (r == 0)
		p->report_watch = loop_watch_fd(p->t->loop, p->sup->report_fd, on_report, p);
	return r;
}

static void pending_free(struct job_pending *p)
{
	loop_watch_free(p->report_watch);
	sup_release(p->sup, p->reported);
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
	job_cleanup_cgroup(p->job);
	jobdir_remove(t->dir.jobs_fd, p->job->id);
	if (!p->detached)
		p->cb(p->ctx, NULL, err);
	pending_free(p);
}

/* The caller of Start went away (stream reset, deadline, connection
 * closed) before it could learn the job's id, so nobody can ever know the
 * job exists: Start is all or nothing, and this one counts as failed. The
 * job is killed as by Stop and forgotten once its supervisor is gone: its
 * directory removed, its cgroup and uid released. */
static void abandoned_ended(void *ctx, struct job *j)
{
	(void)ctx;
	job_forget(j);
}

static void abandon(struct job *j)
{
	struct job_waiter *w;
	struct err err = {0};
	fprintf(stderr,
		"rund: job %s: its Start call went away before it learned the id; killing and "
		"removing the job\n",
		j->id);
	if (job_stop(j, NULL, abandoned_ended, NULL, &w, &err) < 0)
		fprintf(stderr, "rund: %s; the job stays, as if started\n", err.msg);
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
	audit_event(j, "job_start");
	if (p->detached)
		abandon(j);
	else
		p->cb(p->ctx, j->id, NULL);
	pending_free(p);
}

/* The supervisor died without reading its request (a spare killed just
 * before it was used): nothing was started, so give the request to a
 * fresh supervisor, once. */
static bool pending_retry(struct job_pending *p)
{
	if (p->retried || !sup_request_unread(p->sup))
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
	if (pending_hand_over(p, spec, len, true, &err) < 0) {
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
	if (n > 0 && handoff_report_parse(p->line, &err) == 0) {
		pending_ok(p);
		return;
	}
	if (n == 0 && pending_retry(p))
		return;
	if (n <= 0)
		err_set(&err, EPROTO, ERR_INTERNAL,
			"the job's supervisor exited before reporting whether the job started");
	pending_fail(p, &err);
}

/* A job needs a handful of inodes (its directory and files). */
#define MIN_FREE_INODES 64

/* Refuses a Start while the state directory's disk is short of space: a
 * job started then could not keep its output, and the next one could not
 * even reserve its status. Logs when a shortage begins and ends. */
static int check_free_space(struct job_table *t, struct err *err)
{
	struct statvfs sv;
	if (fstatvfs(t->dir.fd, &sv) < 0)
		return 0; /* no numbers: the writes themselves will tell */
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* Filesystems without an inode count report 0 files. */
	bool inodes_short = sv.f_files && sv.f_favail < MIN_FREE_INODES;
	bool is_short = avail < t->cfg.min_free || inodes_short;
	if (is_short != t->short_of_space)
		fprintf(stderr,
			"rund: state directory %s: %llu bytes and %llu inodes free, %s the floor "
			"of "
			"%llu bytes (-min_free_space): %s Start\n",
			t->dir.path, (unsigned long long)avail, (unsigned long long)sv.f_favail,
			is_short ? "below" : "above", (unsigned long long)t->cfg.min_free,
			is_short ? "refusing" : "accepting");
	t->short_of_space = is_short;
	if (inodes_short)
		return err_set(err, ENOSPC, ERR_EXHAUSTED,
			       "the server's state directory has %llu free inodes, below the "
			       "floor of %d; no job can start until space is freed",
			       (unsigned long long)sv.f_favail, MIN_FREE_INODES);
	if (is_short)
		return err_set(err, ENOSPC, ERR_EXHAUSTED,
			       "the server's state directory has %llu bytes free, below the "
			       "floor of %llu bytes (-min_free_space); no job can start until "
			       "space is freed",
			       (unsigned long long)avail, (unsigned long long)t->cfg.min_free);
	return 0;
}

int job_start(struct job_table *t, const struct job_request *req, job_started_fn cb, void *ctx,
	      struct job_pending **pending, struct err *err)
{
	if (!req->owner || req->owner->n == 0)
		return err_set(err, EACCES, ERR_PERMISSION,
			       "the client certificate has no subject alternative name "
			       "(DNS, URI, IP or email), so no job could ever be shown to it");
	int r = check_free_space(t, err);
	if (r < 0)
		return r;

	struct ulid u;
	uint64_t now = now_real_ns();
	r = ulid_next(&t->gen, now / 1000000, &u);
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
	if (req->n_env) {
		s->env = xcalloc(req->n_env, sizeof *s->env);
		for (size_t i = 0; i < req->n_env; i++)
			s->env[i] = xstrdup(req->env[i]);
		s->n_env = req->n_env;
	}
	if (req->cwd && req->cwd[0])
		s->cwd = xstrdup(req->cwd);
	s->max_run_time_ns = req->max_run_time_ns;
	s->run_time_grace_ns = req->run_time_grace_ns;
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
	if (t->cfg.sandbox)
		sandbox_policy_copy(&s->sandbox, t->cfg.sandbox);
	else
		s->sandbox.root = true;

	r = jobspec_validate(s, t->ncpu, t->page_size, err);
	if (r == 0)
		r = cgroup_check_limits(t->cfg.cgroup, &s->limits, err);
	if (r == 0 && !s->sandbox.root) {
		uint32_t uid;
		if (uidpool_take(t->cfg.uids, &uid) < 0) {
			r = err_set(err, EUSERS, ERR_EXHAUSTED,
				    "every job uid is in use (%u jobs hold one); widen -job_uids",
				    uidpool_held(t->cfg.uids));
		} else {
			s->sandbox.uid = s->sandbox.gid = uid;
			j->holds_uid = true;
		}
	}
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
	size_t limit = handoff_spec_limit(strlen(t->dir.path));
	if (spec_len > limit) {
		job_cleanup_cgroup(j);
		pending_free(p);
		return err_set(
			err, E2BIG, ERR_INVALID,
			"command line and environment too long: %zu bytes encoded, limit %zu",
			spec_len, limit);
	}

	if ((j->dirfd = jobdir_create(t->dir.jobs_fd, id)) < 0) {
		r = err_sys(err, -j->dirfd, "create job directory %s/jobs/%s", t->dir.path, id);
		job_cleanup_cgroup(j);
		pending_free(p);
		return r;
	}
	if ((r = write_file_atomic(j->dirfd, jobdir_name(JOBDIR_SPEC), spec, spec_len)) < 0)
		r = err_sys(err, -r, "write %s/jobs/%s/spec", t->dir.path, id);
	else
		r = pending_hand_over(p, spec, spec_len, false, err);
	if (r < 0) {
		if (p->sup)
			sup_kill(steal_pointer(&p->sup));
		jobdir_remove(t->dir.jobs_fd, id);
		job_cleanup_cgroup(j);
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
	info->uid = j->spec.sandbox.root ? 0 : j->spec.sandbox.uid;
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
		/* Output counters as the supervisor last published them. */
		char path[JOBDIR_REL_MAX];
		jobdir_rel(j->id, JOBDIR_LOGPOS, path);
		struct logpos pos;
		if (logstore_pos_read(j->t->dir.jobs_fd, path, &pos) == 0) {
			info->log_bytes = pos.kept;
			info->log_truncated = pos.lost + pos.dropped > 0;
			info->log_end = pos.end;
			info->log_lost = pos.lost;
			info->log_first = pos.first;
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
	info->timed_out = s->timed_out;
	info->log_end = s->log_end;
	info->log_lost = s->log_lost;
	info->log_first = s->log_first;
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

/* A waiter on job j: queued for its end, or fired from the loop when it
 * has ended already. */
static struct job_waiter *waiter_new(struct job *j, job_ended_fn cb, void *ctx)
{
	struct job_waiter *w = xcalloc(1, sizeof *w);
	w->job = j;
	w->cb = cb;
	w->ctx = ctx;
	if (job_ended(j)) {
		/* Answer from the loop, not from inside the call. */
		job_ref(j);
		w->timer = loop_timer_new(j->t->loop, waiter_fire, w);
		loop_timer_arm(w->timer, 0);
	}
	return w;
}

int job_wait(struct job *j, job_ended_fn cb, void *ctx, struct job_waiter **out)
{
	struct job_waiter *w = waiter_new(j, cb, ctx);
	if (!w->timer)
		LIST_INSERT_HEAD(&j->waiters, w, link);
	*out = w;
	return 0;
}

/* The supervisor should have killed the group by now; one that predates
 * graceful stops never will. */
#define STOP_BACKSTOP_MS 2000

static void stop_backstop(void *ctx)
{
	struct job_waiter *w = ctx;
	if (!job_ended(w->job))
		cgroup_job_kill(w->job->t->cfg.cgroup, w->job->id, NULL);
}

int job_stop(struct job *j, const struct jobstop *how, job_ended_fn cb, void *ctx,
	     struct job_waiter **out, struct err *err)
{
	bool graceful = how && how->signal > 0;
	struct job_waiter *w = waiter_new(j, cb, ctx);
	if (w->timer) {
		*out = w;
		return 0; /* nothing to stop */
	}
	char path[JOBDIR_REL_MAX];
	jobdir_rel(j->id, JOBDIR_STOP, path);
	int r;
	if (graceful) {
		/* Written whole (renamed into place): the supervisor reads it
		 * when it appears. */
		size_t len;
		_cleanup_free_ char *text = jobstop_encode(how, &len);
		_cleanup_close_ int dirfd = jobdir_open(j->t->dir.jobs_fd, j->id);
		r = dirfd < 0 ? dirfd
			      : write_file_atomic(dirfd, jobdir_name(JOBDIR_STOP), text, len);
	} else {
		int fd = openat(j->t->dir.jobs_fd, path,
				O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		r = fd < 0 ? -errno : 0;
		closep(&fd);
	}
	if (r < 0) {
		free(w);
		return err_sys(err, -r, "job %s: record the stop request", j->id);
	}
	if (graceful) {
		/* Wakes the supervisor to read the file (supervisor.h). */
		if (j->pidfd >= 0)
			sys_pidfd_send_signal(j->pidfd, SUPERVISOR_STOP_SIGNAL, NULL, 0);
		w->kill_timer = loop_timer_new(j->t->loop, stop_backstop, w);
		loop_timer_arm(w->kill_timer, how->grace_ns / 1000000 + STOP_BACKSTOP_MS);
		LIST_INSERT_HEAD(&j->waiters, w, link);
		*out = w;
		return 0;
	}
	r = cgroup_job_kill(j->t->cfg.cgroup, j->id, err);
	if (r < 0 && r != -ENOENT) {
		/* Not stopped after all: a later natural end must not say so. */
		unlinkat(j->t->dir.jobs_fd, path, 0);
		free(w);
		return err_wrap(err, "stop job %s", j->id);
	}
	LIST_INSERT_HEAD(&j->waiters, w, link);
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
	LIST_REMOVE(w, link);
	loop_timer_free(w->kill_timer);
	free(w);
}

/* --- list --------------------------------------------------------------- */

const char *job_id(const struct job *j)
{
	return j->id;
}

/* ULIDs sort by time as text: the newest first. */
static int newest_first(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	return strcmp(y->id, x->id);
}

size_t job_list(struct job_table *t, const struct san_set *peer, enum job_state state, size_t limit,
		struct job ***out)
{
	struct job **v = xcalloc(t->count ? t->count : 1, sizeof *v);
	size_t n = 0;
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct job *j;
		LIST_FOREACH(j, &t->by_id[b], id_link)
		{
			if (n < t->count && (!state || j->state == state) &&
			    san_set_intersects(&j->spec.owners, peer))
				v[n++] = j;
		}
	}
	qsort(v, n, sizeof *v, newest_first);
	if (limit && n > limit)
		n = limit;
	for (size_t i = 0; i < n; i++)
		job_ref(v[i]);
	*out = v;
	return n;
}

/* --- log ---------------------------------------------------------------- */

int job_follow(struct job *j, uint64_t from, void (*notify)(void *ctx), void *ctx,
	       struct job_follower **out, struct err *err)
{
	struct job_follower *f = xcalloc(1, sizeof *f);
	int r = logreader_open(&f->reader, j->t->dir.jobs_fd, j->id, jobdir_name(JOBDIR_LOG), from);
	if (r < 0) {
		free(f);
		return err_sys(err, -r, "open the output of job %s", j->id);
	}
	f->job = j;
	f->notify = notify;
	f->ctx = ctx;
	LIST_INSERT_HEAD(&j->followers, f, link);
	job_ref(j);
	*out = f;
	return 0;
}

/* After a read found nothing: the end of the output once the job ended,
 * where output lost after the last stored byte is reported first (the
 * status knows how much the job wrote); otherwise the reader parks,
 * holding no descriptor while it waits. */
static int follow_idle(struct job_follower *f, bool ended, struct logchunk *out)
{
	logreader_park(&f->reader);
	if (!ended)
		return 0;
	struct logreader *r = &f->reader;
	uint64_t from = r->pos > r->want ? r->pos : r->want;
	uint64_t end = f->job->status.log_end;
	if (f->job->state == JOB_EXITED && end > from) {
		*out = (struct logchunk){
			.stream = LOG_GAP, .off = end, .lost = end - from, .why = LOG_GAP_UNSTORED};
		r->pos = end;
		return 1;
	}
	return JOB_LOG_END;
}

int job_follow_next(struct job_follower *f, size_t max, struct logchunk *out, struct err *err)
{
	/* Decide "ended" before reading: the supervisor writes all output
	 * before its status, so a read after seeing the end sees everything. */
	bool ended = job_ended(f->job);
	int r = logreader_next(&f->reader, max, out);
	if (r == 0)
		return follow_idle(f, ended, out);
	if (r < 0)
		return err_sys(err, -r, "read the output of job %s", f->job->id);
	return r;
}

int job_follow_read(struct job_follower *f, uint8_t *dst, size_t max, struct logchunk *out,
		    struct err *err)
{
	/* As job_follow_next: "ended" is decided before reading. */
	bool ended = job_ended(f->job);
	int r = logreader_read(&f->reader, dst, max, out);
	if (r == 0)
		return follow_idle(f, ended, out);
	if (r < 0)
		return err_sys(err, -r, "read the output of job %s", f->job->id);
	return r;
}

void job_follow_close(struct job_follower *f)
{
	if (!f)
		return;
	struct job *j = f->job;
	LIST_REMOVE(f, link);
	logreader_close(&f->reader);
	free(f);
	job_unref(j);
}

int job_log_tail(struct job *j, uint64_t lines, uint64_t *off, struct err *err)
{
	int r = logstore_tail(j->t->dir.jobs_fd, j->id, jobdir_name(JOBDIR_LOG), lines, off);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return err_sys(err, -r, "read the output of job %s", j->id);
	return 0;
}

/* --- table -------------------------------------------------------------- */

/* A job found at start-up whose supervisor is still starting it (or
 * whose pidfd could not be opened yet) is looked at again until it is
 * clearly running, ended or never started. */
struct recheck {
	struct job *job;
	uint64_t since_ns;
	struct loop_timer *timer;
	LIST_ENTRY(recheck) link;
};

static void recheck_free(struct recheck *rc)
{
	LIST_REMOVE(rc, link);
	loop_timer_free(rc->timer);
	free(rc);
}

#define RECHECK_MS 100

/* Decides what a job directory found at start-up is. Returns true when
 * done: the job is in the table (running, ended or lost) or was dropped;
 * false to look again later. Takes over the caller's reference. */
static bool settle_recovered(struct job *j, uint64_t waited_ms)
{
	struct job_table *t = j->t;
	struct err err = {0};
	struct recovery_facts f = {.waited_ms = waited_ms};
	f.locked = jobdir_locked(t->dir.jobs_fd, j->id); /* first: see recovery.h */
	f.status = load_status(j, &err);
	f.started = load_start(j, NULL) == 0;
	switch (recovery_judge(&f)) {
	case RECOVERY_EXITED:
		j->state = JOB_EXITED;
		table_insert(t, j);
		mark_ended(j);
		return true;
	case RECOVERY_DAMAGED:
		fprintf(stderr, "rund: state: jobs/%s: %s; treating it as lost\n", j->id, err.msg);
		mark_lost(j);
		return true;
	case RECOVERY_ATTACH:
		/* The lock proves the recorded pid is still our supervisor; a
		 * pidfd opened before re-checking it cannot name a reused pid. */
		j->pidfd = sys_pidfd_open(j->start.supervisor_pid, 0);
		if (j->pidfd >= 0 && jobdir_locked(t->dir.jobs_fd, j->id)) {
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
	case RECOVERY_LOST:
		fprintf(stderr,
			"rund: job %s: supervisor died without recording a status; "
			"killing the job\n",
			j->id);
		mark_lost(j);
		return true;
	case RECOVERY_WAIT:
		return false;
	case RECOVERY_DROP:
		/* Never started: its Start failed while no daemon was watching. */
		jobdir_remove(t->dir.jobs_fd, j->id);
		job_cleanup_cgroup(j);
		job_unref(j);
		return true;
	}
	return false;
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
	LIST_INSERT_HEAD(&j->t->rechecks, rc, link);
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
	j->dirfd = jobdir_open(t->dir.jobs_fd, name);
	if (j->dirfd < 0) {
		fprintf(stderr, "rund: state: skipping jobs/%s: %s\n", name, strerror(-j->dirfd));
		goto bad;
	}
	r = jobdir_read(t->dir.jobs_fd, name, JOBDIR_SPEC, &buf, &len);
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
	/* Held until its group is gone, as for a job started now: while the
	 * group exists, or before the job has a status (its supervisor may be
	 * about to create the group). An ended job whose group is gone
	 * holds nothing. */
	if (!j->spec.sandbox.root && t->cfg.uids &&
	    (faccessat(t->cfg.cgroup->jobs_fd, canon, F_OK, 0) == 0 ||
	     !jobdir_has(t->dir.jobs_fd, canon, JOBDIR_STATUS))) {
		uint32_t uid = j->spec.sandbox.uid;
		r = uidpool_hold(t->cfg.uids, uid);
		j->holds_uid = r == 0;
		if (r == -EEXIST)
			fprintf(stderr, "rund: state: jobs/%s: uid %u is recorded for two jobs\n",
				canon, uid);
		if (j->spec.created_ns >= t->newest_created_ns) {
			t->newest_created_ns = j->spec.created_ns;
			t->newest_uid = uid;
		}
	}
	if (!settle_recovered(j, 0))
		recheck_later(j);
	return;
bad:
	job_unref(j);
}

int job_table_open(struct loop *loop, const struct job_config *cfg, struct job_table **out,
		   struct err *err)
{
	struct job_table *t = xcalloc(1, sizeof *t);
	t->loop = loop;
	t->cfg = *cfg;
	t->inotify_fd = -1;
	t->dir = (struct jobdir_root){.fd = -1, .jobs_fd = -1, .run_fd = -1, .lock_fd = -1};
	LIST_INIT(&t->reapers);
	LIST_INIT(&t->rechecks);
	t->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	t->page_size = sysconf(_SC_PAGESIZE);
	int r = jobdir_root_open(cfg->state_dir, &t->dir, err);
	if (r == 0 && (t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		r = err_sys(err, errno, "inotify_init1");
	if (r < 0) {
		job_table_free(t);
		return r;
	}
	t->inotify_watch = loop_watch_fd(loop, t->inotify_fd, on_inotify, t);
	t->retention_timer = loop_timer_new(loop, retention_sweep, t);
	/* Spares of a confined daemon prepare their job's sandbox while they
	 * wait (sandbox.h); a root job has none to prepare. */
	size_t warm_len = 0;
	_cleanup_free_ char *warm =
		cfg->sandbox && !cfg->sandbox->root
			? jobspec_warm_encode(cfg->cgroup->path, cfg->sandbox, &warm_len)
			: NULL;
	t->pool = suppool_new(loop, cfg->exe, t->dir.path, t->dir.run_fd, warm, warm_len, true,
			      cfg->in_daemon_group ? NULL : cfg->cgroup->path);

	int fd = dup(t->dir.jobs_fd);
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
	if (t->newest_uid && t->cfg.uids)
		uidpool_resume_after(t->cfg.uids, t->newest_uid);
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
		while (!LIST_EMPTY(&t->by_id[b])) {
			struct job *j = LIST_FIRST(&t->by_id[b]);
			table_remove(t, j);
			while (!LIST_EMPTY(&j->waiters)) {
				struct job_waiter *w = LIST_FIRST(&j->waiters);
				LIST_REMOVE(w, link);
				loop_timer_free(w->kill_timer);
				free(w);
			}
			job_unref(j);
		}
	}
	while (!LIST_EMPTY(&t->reapers))
		cg_reaper_free(LIST_FIRST(&t->reapers));
	while (!LIST_EMPTY(&t->rechecks)) {
		struct job *j = LIST_FIRST(&t->rechecks)->job;
		recheck_free(LIST_FIRST(&t->rechecks));
		job_unref(j);
	}
	suppool_free(t->pool);
	loop_watch_free(t->inotify_watch);
	loop_timer_free(t->retention_timer);
	closep(&t->inotify_fd);
	jobdir_root_close(&t->dir);
	free(t);
}
