/* sandbox: the plan that confines one job, and the job's init (see
 * sandbox.h for the order of things and why). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <inttypes.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys.h"
#include "util.h"

/* ---- policy ---------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned bit;
	uint64_t clone_flag;
} ns_table[] = {
	{"pid", SANDBOX_NS_PID, CLONE_NEWPID},
	{"mount", SANDBOX_NS_MOUNT, CLONE_NEWNS},
	{"ipc", SANDBOX_NS_IPC, CLONE_NEWIPC},
	{"uts", SANDBOX_NS_UTS, CLONE_NEWUTS},
	{"cgroup", SANDBOX_NS_CGROUP, 0 /* unshared by the main process, in its group */},
	{"net", SANDBOX_NS_NET, CLONE_NEWNET},
};

int sandbox_parse_namespaces(const char *s, unsigned *out, struct err *err)
{
	if (strcmp(s, "all") == 0) {
		*out = SANDBOX_NS_DEFAULT;
		return 0;
	}
	if (strcmp(s, "none") == 0) {
		*out = 0;
		return 0;
	}
	unsigned ns = 0;
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		size_t i;
		for (i = 0; i < ARRAY_SIZE(ns_table); i++)
			if (strlen(ns_table[i].name) == n && memcmp(ns_table[i].name, p, n) == 0)
				break;
		if (i == ARRAY_SIZE(ns_table) || ns_table[i].bit == SANDBOX_NS_NET)
			return err_set(err, EINVAL, ERR_INVALID,
				       "unknown namespace \"%.*s\" in \"%s\" (want a list of pid, "
				       "mount, ipc, uts, cgroup; or all, none)",
				       (int)n, p, s);
		ns |= ns_table[i].bit;
		if (!p[n])
			break;
		p += n + 1;
	}
	*out = ns;
	return 0;
}

void sandbox_format_namespaces(unsigned ns, char *buf, size_t cap)
{
	size_t len = 0;
	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(ns_table); i++) {
		if (!(ns & ns_table[i].bit))
			continue;
		int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", ns_table[i].name);
		if (n < 0 || (size_t)n >= cap - len)
			return;
		len += (size_t)n;
	}
	if (len == 0)
		snprintf(buf, cap, "none");
}

/* Directories a job needs to see: hiding one of these, or a directory
 * above one, would break every job. */
static const char *const needed_dirs[] = {
	"/",	  "/bin",   "/dev",	"/etc",	    "/etc/ssl",	 "/etc/ssl/certs", "/lib",
	"/lib32", "/lib64", "/opt",	"/proc",    "/run",	 "/sbin",	   "/sys",
	"/tmp",	  "/usr",   "/usr/bin", "/usr/lib", "/usr/sbin", "/var",	   "/var/tmp",
};

/* True when dir is path or one of its ancestors (both absolute, no
 * trailing slash except "/"). */
static bool covers(const char *dir, const char *path)
{
	if (strcmp(dir, "/") == 0)
		return true;
	size_t n = strlen(dir);
	return strncmp(dir, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool is_dir_at(const char *base, const char *sub)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", base, sub);
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int sandbox_policy_check(const struct sandbox_policy *p, struct err *err)
{
	if (p->root)
		return 0;
	for (size_t i = 0; i < p->n_hide; i++) {
		const char *h = p->hide[i];
		if (h[0] != '/')
			return err_set(err, EINVAL, ERR_INVALID,
				       "directory to hide \"%s\" is not absolute", h);
		for (size_t k = 0; k < ARRAY_SIZE(needed_dirs); k++)
			if (covers(h, needed_dirs[k]))
				return err_set(
					err, EINVAL, ERR_INVALID,
					"cannot hide \"%s\" from jobs: they need %s; keep the "
					"state directory and the server's key and "
					"certificates in directories of their own "
					"(e.g. /var/lib/rund, /etc/rund)",
					h, needed_dirs[k]);
	}
	if (p->rootfs) {
		struct stat st;
		if (p->rootfs[0] != '/' || strcmp(p->rootfs, "/") == 0)
			return err_set(err, EINVAL, ERR_INVALID,
				       "-rootfs \"%s\": want an absolute directory other than /",
				       p->rootfs);
		if (stat(p->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			return err_set(err, ENOTDIR, ERR_INVALID,
				       "-rootfs \"%s\" is not a directory", p->rootfs);
		static const char *const sub[] = {"proc", "dev", "tmp"};
		for (size_t i = 0; i < ARRAY_SIZE(sub); i++)
			if (!is_dir_at(p->rootfs, sub[i]))
				return err_set(err, ENOENT, ERR_INVALID,
					       "-rootfs \"%s\" has no directory %s/ to mount on",
					       p->rootfs, sub[i]);
		if (!(p->namespaces & SANDBOX_NS_MOUNT))
			return err_set(err, EINVAL, ERR_INVALID,
				       "-rootfs needs the mount namespace");
	}
	return 0;
}

void sandbox_policy_free(struct sandbox_policy *p)
{
	for (size_t i = 0; i < p->n_hide; i++)
		free(p->hide[i]);
	free(p->rootfs);
	free(p->cgroup_mount);
	memset(p, 0, sizeof *p);
}

void sandbox_policy_copy(struct sandbox_policy *dst, const struct sandbox_policy *src)
{
	*dst = *src;
	for (size_t i = 0; i < src->n_hide; i++)
		dst->hide[i] = xstrdup(src->hide[i]);
	dst->rootfs = src->rootfs ? xstrdup(src->rootfs) : NULL;
	dst->cgroup_mount = src->cgroup_mount ? xstrdup(src->cgroup_mount) : NULL;
}

/* ---- the plan ---------------------------------------------------------- */

static const char *const op_names[] = {
	[SB_MOUNT_PRIVATE] = "make mounts private",
	[SB_ROOT_RO] = "make private, read-only and nosuid",
	[SB_MQUEUE] = "mount mqueue on",
	[SB_SCRATCH] = "make the job's tmpfs at",
	[SB_PRIVATE] = "bind a private directory on",
	[SB_HIDE] = "hide",
	[SB_PROC] = "mount proc on",
	[SB_TMPFS] = "mount tmpfs on",
	[SB_CGROUP2] = "bind the job's cgroup on",
	[SB_LOOPBACK_UP] = "bring up loopback",
	[SB_ROOTFS_BIND] = "bind rootfs",
	[SB_DEV] = "populate /dev in",
	[SB_ROOTFS_RO] = "make rootfs read-only",
	[SB_PIVOT] = "pivot_root into",
};

/* Private writable directories every job gets (when they exist). */
static const char *const tmp_dirs[] = {"/tmp", "/var/tmp", "/dev/shm", "/run/lock"};

static struct sandbox_step *add_step(struct sandbox *sb, enum sandbox_op op, const char *path)
{
	sb->steps = xrealloc(sb->steps, (sb->n_steps + 1) * sizeof *sb->steps);
	sb->steps[sb->n_steps] =
		(struct sandbox_step){.op = op, .path = path ? xstrdup(path) : NULL};
	return &sb->steps[sb->n_steps++];
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True when another directory to hide is hide[i] or above it: hiding
 * that one hides hide[i] too (and hide[i]'s path is gone under it). The
 * first of two equal ones is kept. */
static bool hidden_by_other(const struct sandbox_policy *p, size_t i)
{
	for (size_t k = 0; k < p->n_hide; k++)
		if (k != i && covers(p->hide[k], p->hide[i]) &&
		    (strcmp(p->hide[k], p->hide[i]) != 0 || k < i))
			return true;
	return false;
}

static int read_last_cap(void)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	uint64_t v;
	if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 32, &text, &len) == 0) {
		while (len && (text[len - 1] == '\n'))
			text[--len] = '\0';
		if (parse_u64(text, &v) == 0 && v < 64)
			return (int)v;
	}
	return CAP_LAST_CAP;
}

static void init_fields_clear(struct sandbox *sb)
{
	sb->init_pid = 0;
	sb->init_pidfd = sb->mounts_fd = -1;
	sb->go = sb->report = sb->status = (struct sandbox_pipe){-1, -1};
}

int sandbox_prepare(const struct sandbox_policy *p, struct sandbox *sb, struct err *err)
{
	(void)err;
	memset(sb, 0, sizeof *sb);
	init_fields_clear(sb);
	sb->root = p->root;
	if (p->root)
		return 0;
	sb->uid = p->uid;
	sb->gid = p->gid;
	sb->namespaces = p->namespaces;
	sb->last_cap = read_last_cap();
	sb->max_procs = p->max_procs;

	/* The job's private directories share one tmpfs of at most tmp_size
	 * (tmpfs's own default is half of RAM). */
	_cleanup_free_ char *tmp_opts =
		p->tmp_size ? xasprintf("size=%" PRIu64, p->tmp_size) : xstrdup("");
	bool mnt = p->namespaces & SANDBOX_NS_MOUNT;
	if (mnt && p->rootfs) {
		_cleanup_free_ char *proc = xasprintf("%s/proc", p->rootfs);
		_cleanup_free_ char *dev = xasprintf("%s/dev", p->rootfs);
		_cleanup_free_ char *tmp = xasprintf("%s/tmp", p->rootfs);
		add_step(sb, SB_MOUNT_PRIVATE, "/");
		/* Read-only, nosuid and nodev down the whole tree first; the
		 * mounts made on top afterwards are the job's own. */
		add_step(sb, SB_ROOTFS_BIND, p->rootfs);
		add_step(sb, SB_ROOTFS_RO, p->rootfs);
		if (p->namespaces & SANDBOX_NS_PID)
			add_step(sb, SB_PROC, proc);
		add_step(sb, SB_DEV, dev);
		add_step(sb, SB_TMPFS, tmp)->data =
			p->tmp_size ? xasprintf("mode=1777,%s", tmp_opts) : xstrdup("mode=1777");
	} else if (mnt) {
		/* The host's tree private and read-only: nothing propagates
		 * back, and nothing a job writes outlives it outside its
		 * private directories (world-writable host directories would be
		 * a channel between jobs and to a later holder of the same
		 * uid). */
		add_step(sb, SB_ROOT_RO, "/");
		/* One tmpfs (one superblock to make and tear down per job, not
		 * one per directory), attached first at a directory the job
		 * will not see (a hidden one, else the first private one),
		 * then bound where it is needed; the last bind over that
		 * directory covers its root. */
		const char *at = NULL;
		for (size_t i = 0; i < p->n_hide && !at; i++)
			if (is_dir(p->hide[i]) && !hidden_by_other(p, i))
				at = p->hide[i];
		for (size_t i = 0; i < ARRAY_SIZE(tmp_dirs) && !at; i++)
			if (is_dir(tmp_dirs[i]))
				at = tmp_dirs[i];
		if (at)
			add_step(sb, SB_SCRATCH, at)->data = xstrdup(tmp_opts);
		/* Hidden first: a state directory below /tmp is then covered
		 * twice, which is harmless. */
		for (size_t i = 0; i < p->n_hide; i++)
			if (is_dir(p->hide[i]) && !hidden_by_other(p, i))
				add_step(sb, SB_HIDE, p->hide[i]);
		if (p->namespaces & SANDBOX_NS_PID)
			add_step(sb, SB_PROC, "/proc");
		for (size_t i = 0, k = 0; i < ARRAY_SIZE(tmp_dirs); i++)
			if (is_dir(tmp_dirs[i]))
				add_step(sb, SB_PRIVATE, tmp_dirs[i])->src = xasprintf("%zu", k++);
		if ((p->namespaces & SANDBOX_NS_IPC) && is_dir("/dev/mqueue"))
			add_step(sb, SB_MQUEUE, "/dev/mqueue");
	}
	if (p->namespaces & SANDBOX_NS_NET)
		add_step(sb, SB_LOOPBACK_UP, NULL);
	/* The rest needs the job: its group, and the rootfs only once the
	 * group was opened through the host's tree. */
	sb->n_early = sb->n_steps;
	/* Mounting cgroup2 again on its own mount point is refused (EBUSY),
	 * so the job's group (the launch names it) is bound there instead. */
	if (mnt && !p->rootfs && p->cgroup_mount && is_dir(p->cgroup_mount))
		add_step(sb, SB_CGROUP2, p->cgroup_mount);
	if (mnt && p->rootfs)
		add_step(sb, SB_PIVOT, p->rootfs);
	return 0;
}

void sandbox_free(struct sandbox *sb)
{
	sandbox_init_stop(sb);
	for (size_t i = 0; i < sb->n_steps; i++) {
		free(sb->steps[i].path);
		free(sb->steps[i].src);
		free(sb->steps[i].data);
	}
	free(sb->steps);
	sb->steps = NULL;
	sb->n_steps = sb->n_early = 0;
}

uint64_t sandbox_clone_flags(const struct sandbox *sb)
{
	uint64_t f = 0;
	if (sb->root)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(ns_table); i++)
		if (sb->namespaces & ns_table[i].bit)
			f |= ns_table[i].clone_flag;
	return f;
}

bool sandbox_take_status(struct sandbox *sb, siginfo_t *si)
{
	if (sb->root || sb->status.r < 0)
		return false;
	int32_t ws;
	ssize_t n = read_retry(sb->status.r, &ws, sizeof ws);
	if (n != (ssize_t)sizeof ws)
		return false;
	if (WIFEXITED(ws)) {
		si->si_code = CLD_EXITED;
		si->si_status = WEXITSTATUS(ws);
	} else if (WIFSIGNALED(ws)) {
		si->si_code = WCOREDUMP(ws) ? CLD_DUMPED : CLD_KILLED;
		si->si_status = WTERMSIG(ws);
	}
	closep(&sb->status.r);
	sb->status.r = -1;
	return true;
}

void sandbox_main_status(struct sandbox *sb, siginfo_t *si)
{
	sandbox_take_status(sb, si);
}

const char *sandbox_step_name(const struct sandbox *sb, int step, char *buf, size_t cap)
{
	const char *what = step == SANDBOX_STEP_EXEC	   ? "exec"
			   : step == SANDBOX_STEP_IDENTITY ? "drop identity and privileges"
			   : step == SANDBOX_STEP_FORK	   ? "fork the job's main process"
			   : step == SANDBOX_STEP_LAUNCH   ? "read the job from the supervisor"
			   : step == SANDBOX_STEP_CGROUP   ? "open the job's cgroup"
							   : NULL;
	if (!what && (step < 0 || (size_t)step >= sb->n_steps))
		what = "unknown sandbox step";
	if (what) {
		snprintf(buf, cap, "%s", what);
		return buf;
	}
	const struct sandbox_step *s = &sb->steps[step];
	snprintf(buf, cap, "%s%s%s", op_names[s->op], s->path ? " " : "", s->path ? s->path : "");
	return buf;
}

/* ---- the child: async-signal-safe from here on ------------------------ */

/* dst = a + b, without snprintf. False if it does not fit. */
static bool join(char *dst, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la + lb + 1 > cap)
		return false;
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb + 1);
	return true;
}

/* dst = a + "/" + b. False if it does not fit. */
static bool join3(char *dst, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a);
	if (la + 1 >= cap)
		return false;
	memcpy(dst, a, la);
	dst[la] = '/';
	return join(dst + la + 1, cap - la - 1, "", b);
}

static int mnt(const char *src, const char *dst, const char *type, unsigned long flags,
	       const char *data)
{
	return mount(src, dst, type, flags, data) < 0 ? -errno : 0;
}

static int loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = -errno;
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = -errno;
	}
	close(s);
	return r;
}

/* A tmpfs /dev with the harmless devices bound from the host's. */
static int populate_dev(const char *dev)
{
	static const char *const nodes[] = {"/null",   "/zero",	   "/full",
					    "/random", "/urandom", "/tty"};
	static const char *const links[][2] = {{"/proc/self/fd", "/fd"},
					       {"/proc/self/fd/0", "/stdin"},
					       {"/proc/self/fd/1", "/stdout"},
					       {"/proc/self/fd/2", "/stderr"}};
	char dst[4096], src[64];
	int r = mnt("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k");
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		if (!join(dst, sizeof dst, dev, nodes[i]) ||
		    !join(src, sizeof src, "/dev", nodes[i]))
			return -ENAMETOOLONG;
		int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
		if (fd < 0)
			return -errno;
		close(fd);
		if ((r = mnt(src, dst, NULL, MS_BIND, NULL)) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		if (!join(dst, sizeof dst, dev, links[i][1]))
			return -ENAMETOOLONG;
		if (symlink(links[i][0], dst) < 0)
			return -errno;
	}
	return 0;
}

static int pivot_into(const char *root)
{
	if (chdir(root) < 0)
		return -errno;
	/* pivot_root(".", "."): the old root ends up stacked under the new
	 * one, and detaching "." then removes it. */
	if (sys_pivot_root(".", ".") < 0)
		return -errno;
	if (umount2(".", MNT_DETACH) < 0)
		return -errno;
	return chdir("/") < 0 ? -errno : 0;
}

/* The scratch tmpfs's directory for what cannot be seen. */
#define SCRATCH_EMPTY "empty"
#define SCRATCH_MAX (SANDBOX_MAX_HIDE + 8)

/* What the steps hand on to later steps, in the init. */
struct step_state {
	const struct sandbox *sb;
	size_t i; /* the running step */
	/* SB_SCRATCH's detached clones, one per later SB_HIDE or SB_PRIVATE
	 * in plan order; next is the one the next such step attaches. */
	int clones[SCRATCH_MAX];
	size_t n_clones, next;
};

/* A detached clone of dir, read-only and noexec when ro. fd or -errno. */
static int clone_dir(const char *dir, bool ro)
{
	int t = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0)
		return -errno;
	struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC};
	if (ro && mount_setattr(t, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
		int e = errno;
		close(t);
		return -e;
	}
	return t;
}

/* The job's one private tmpfs (s->data: its size option, or ""),
 * attached at s->path, with a directory per later SB_PRIVATE (mode 1777,
 * named by its src) and an empty one (0555); then a detached clone of
 * the directory each later SB_HIDE or SB_PRIVATE attaches, made now,
 * while all of them can still be reached by path. */
static int make_scratch(const struct sandbox_step *s, struct step_state *st)
{
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	int r = 0;
	const char *eq = strchr(s->data, '=');
	char key[16];
	if (eq && (size_t)(eq - s->data) < sizeof key) {
		memcpy(key, s->data, (size_t)(eq - s->data));
		key[eq - s->data] = '\0';
		if (fsconfig(fs, FSCONFIG_SET_STRING, key, eq + 1, 0) < 0)
			r = -errno;
	} else if (s->data[0]) {
		r = -EINVAL;
	}
	if (r == 0 && (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
		       fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0))
		r = -errno;
	int m = r == 0 ? fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) : -1;
	if (r == 0 && m < 0)
		r = -errno;
	close(fs);
	if (r < 0)
		return r;
	const struct sandbox *sb = st->sb;
	for (size_t k = st->i + 1; k < sb->n_steps && r == 0; k++) {
		const struct sandbox_step *t = &sb->steps[k];
		/* chmod after mkdir: the umask would take the sticky and
		 * world bits away. */
		if (t->op == SB_PRIVATE &&
		    (mkdirat(m, t->src, 0755) < 0 || fchmodat(m, t->src, 01777, 0) < 0))
			r = -errno;
	}
	if (r == 0 && mkdirat(m, SCRATCH_EMPTY, 0555) < 0)
		r = -errno;
	if (r == 0 && move_mount(m, "", AT_FDCWD, s->path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		r = -errno;
	close(m);
	char dir[4096];
	for (size_t k = st->i + 1; k < sb->n_steps && r == 0; k++) {
		const struct sandbox_step *t = &sb->steps[k];
		if (t->op != SB_PRIVATE && t->op != SB_HIDE)
			continue;
		if (st->n_clones == SCRATCH_MAX ||
		    !join3(dir, sizeof dir, s->path, t->op == SB_HIDE ? SCRATCH_EMPTY : t->src))
			return -ENAMETOOLONG;
		int c = clone_dir(dir, t->op == SB_HIDE);
		if (c < 0)
			return c;
		st->clones[st->n_clones++] = c;
	}
	return r;
}

/* Attaches the next clone SB_SCRATCH made over path. */
static int attach_clone(struct step_state *st, const char *path)
{
	if (st->next == st->n_clones)
		return -EBADF;
	int c = st->clones[st->next++];
	int r = move_mount(c, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0 ? -errno : 0;
	close(c);
	return r;
}

static int run_step(const struct sandbox_step *s, struct step_state *st)
{
	const unsigned long safe = MS_NOSUID | MS_NODEV;
	switch (s->op) {
	case SB_MOUNT_PRIVATE:
		return mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	case SB_ROOT_RO:
		return sys_mount_setattr_tree(s->path,
					      SYS_MOUNT_ATTR_RDONLY | SYS_MOUNT_ATTR_NOSUID,
					      MS_PRIVATE) < 0
			       ? -errno
			       : 0;
	case SB_MQUEUE:
		return mnt("mqueue", s->path, "mqueue", safe | MS_NOEXEC, NULL);
	case SB_SCRATCH:
		return make_scratch(s, st);
	case SB_PRIVATE:
	case SB_HIDE:
		return attach_clone(st, s->path);
	case SB_PROC:
		return mnt("proc", s->path, "proc", safe | MS_NOEXEC, NULL);
	case SB_TMPFS:
		return mnt("tmpfs", s->path, "tmpfs", safe, s->data);
	case SB_CGROUP2: {
		int r = mnt(s->src, s->path, NULL, MS_BIND, NULL);
		return r < 0 ? r
			     : mnt(NULL, s->path, NULL,
				   MS_REMOUNT | MS_BIND | MS_RDONLY | safe | MS_NOEXEC, NULL);
	}
	case SB_LOOPBACK_UP:
		return loopback_up();
	case SB_ROOTFS_BIND:
		return mnt(s->path, s->path, NULL, MS_BIND | MS_REC, NULL);
	case SB_DEV:
		return populate_dev(s->path);
	case SB_ROOTFS_RO:
		return sys_mount_setattr_tree(s->path,
					      SYS_MOUNT_ATTR_RDONLY | SYS_MOUNT_ATTR_NOSUID |
						      SYS_MOUNT_ATTR_NODEV,
					      0) < 0
			       ? -errno
			       : 0;
	case SB_PIVOT:
		return pivot_into(s->path);
	}
	return -EINVAL;
}

static _Noreturn void fail(int errfd, int e, int step)
{
	struct sandbox_report rep = {.err = e, .step = step};
	ssize_t w;
	do
		w = write(errfd, &rep, sizeof rep);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* Namespace-creating flags: without capabilities only a user namespace
 * could still be made, and inside one a job would be root again. */
#define NS_CLONE_FLAGS                                                                             \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	 CLONE_NEWPID | CLONE_NEWNET | 0x80 /* CLONE_NEWTIME */)

#if defined(__x86_64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define LD_ABS(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define DENY(e) RET(SECCOMP_RET_ERRNO | ((e)&SECCOMP_RET_DATA))

/* System calls a confined job may not make, and the errno it gets.
 * clone3 passes its flags in memory, which a filter cannot read: it gets
 * ENOSYS, and libc falls back to clone, whose flags the filter checks.
 * Keyrings outlive the job and belong to its uid, whose next holder would
 * find them. io_uring is attack surface no job needs (programs fall back
 * on ENOSYS). */
static const struct {
	unsigned nr;
	int err;
} denied_syscalls[] = {
	{SYS_clone3, ENOSYS},	      {SYS_setns, EPERM},
	{SYS_keyctl, EPERM},	      {SYS_add_key, EPERM},
	{SYS_request_key, EPERM},     {SYS_io_uring_setup, ENOSYS},
	{SYS_io_uring_enter, ENOSYS}, {SYS_io_uring_register, ENOSYS},
};

static int seccomp_no_namespaces(void)
{
#ifdef SB_AUDIT_ARCH
	struct sock_filter f[32 + 2 * ARRAY_SIZE(denied_syscalls)];
	size_t n = 0;
	f[n++] = (struct sock_filter)LD_ABS(offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_AUDIT_ARCH, 1, 0);
	f[n++] = (struct sock_filter)DENY(EPERM); /* another ABI (i386; x32 below) */
	f[n++] = (struct sock_filter)LD_ABS(offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	f[n++] = (struct sock_filter)DENY(EPERM);
#endif
	for (size_t i = 0; i < ARRAY_SIZE(denied_syscalls); i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      denied_syscalls[i].nr, 0, 1);
		f[n++] = (struct sock_filter)DENY(denied_syscalls[i].err);
	}
	/* unshare(flags) and clone(flags, ...) both take flags first. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 1, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
	f[n++] = (struct sock_filter)LD_ABS(offsetof(struct seccomp_data, args[0]));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_CLONE_FLAGS, 0, 1);
	f[n++] = (struct sock_filter)DENY(EPERM);
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0 ? -errno : 0;
#else
	return -ENOSYS;
#endif
}

/* In the init, before the job is known: what the job inherits and no
 * root process of ours needs (the init does not exec). The bounding and
 * ambient sets only matter at exec; no_new_privs too; RLIMIT_NPROC does
 * not bind root. */
static int limit_early(const struct sandbox *sb)
{
	for (int cap = 0; cap <= sb->last_cap; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	/* Counted per uid, and the uid is the job's alone: a bound on its
	 * processes even where there is no pids controller. */
	if (sb->max_procs) {
		struct rlimit rl = {sb->max_procs, sb->max_procs};
		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			return -errno;
	}
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

/* In the job's main process, still root (but with the init's empty
 * bounding set): become the job's uid with nothing to fall back on. */
static int drop_identity(const struct sandbox *sb)
{
	/* Rooted at the group it was born in: its own. */
	if ((sb->namespaces & SANDBOX_NS_CGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		return -errno;
	if (sys_setgroups_none() < 0 || sys_setresgid(sb->gid) < 0 || sys_setresuid(sb->uid) < 0)
		return -errno;
	/* The session keyring came from the daemon (possession is inherited
	 * across fork and setuid): start from an empty one of our own. */
	if (sys_new_session_keyring() < 0 && errno != ENOSYS)
		return -errno;
	/* The uid change cleared effective and permitted; inheritable
	 * survives it. */
	if (sys_capset_none() < 0)
		return -errno;
	return seccomp_no_namespaces();
}

/* The job's PID 1: forwards every signal it can catch to the main
 * process, reaps everything, and reports the main process's status. */
static _Noreturn void init_loop(const struct sandbox *sb, pid_t main_pid, const sigset_t *all)
{
	int out = sb->status.w;
	/* Nothing of the supervisor's stays open here: not its lock (the
	 * daemon reads the lock as "the supervisor lives"), not the pipes. */
	if (out > 0)
		close_range(0, (unsigned)out - 1, 0);
	close_range((unsigned)out + 1, ~0u, 0);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(all, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(main_pid, sig);
			continue;
		}
		int ws;
		pid_t p;
		while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
			if (p != main_pid)
				continue;
			int32_t v = ws;
			ssize_t w;
			do
				w = write(out, &v, sizeof v);
			while (w < 0 && errno == EINTR);
			/* Our exit takes the rest of the namespace with it,
			 * as a job's end always has (the supervisor kills the
			 * job's group too). Tearing the namespaces down is
			 * nobody's wait: at the lowest priority. */
			setpriority(PRIO_PROCESS, 0, 19);
			_exit(0);
		}
	}
}

/* Reads exactly n bytes; false on EOF or error. */
static bool read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* The supervisor's two messages to the init, each a uint32_t length and
 * that many bytes: the job (sandbox_give), then its group (sandbox_launch).
 * The first is read and described while the supervisor creates the group. */
#define GIVE_MAX (16u << 20)
#define GROUP_MAX 4095u

/* Reads one message into a NUL-terminated buffer of its own. NULL on EOF
 * before it, or when it is empty or longer than max; *len is its length. */
static char *read_message(int fd, uint32_t max, uint32_t *len)
{
	if (!read_full(fd, len, sizeof *len) || *len == 0 || *len > max)
		return NULL;
	char *buf = malloc((size_t)*len + 1);
	if (!buf || !read_full(fd, buf, *len))
		return NULL;
	buf[*len] = '\0';
	return buf;
}

static int write_message(int fd, const void *data, size_t len)
{
	uint32_t n = (uint32_t)len;
	struct iovec iov[2] = {{&n, sizeof n}, {(void *)data, len}};
	size_t total = sizeof n + len;
	/* One writev: the reader wakes once for what fits the pipe. */
	while (total) {
		ssize_t w = writev(fd, iov, 2);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		total -= (size_t)w;
		for (int i = 0; i < 2 && w; i++) {
			size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			w -= (ssize_t)k;
		}
	}
	return 0;
}

void sandbox_job_defaults(void)
{
	/* exec keeps ignored signals ignored: default them all, whatever we
	 * or the daemon had. Through the kernel: glibc's sigaction() refuses
	 * its own signals 32 and 33, which posix_spawn left ignored in the
	 * supervisor. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sys_signal_default(sig);
	/* The daemon raises its descriptor limit for its own bookkeeping. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > SANDBOX_JOB_NOFILE) {
		nofile.rlim_cur = SANDBOX_JOB_NOFILE;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
}

/* Closes every descriptor but keep[0..n) (n <= 16). */
static void keep_only(const int *keep, size_t n)
{
	int k[16];
	size_t m = 0;
	for (size_t i = 0; i < n && m < ARRAY_SIZE(k); i++) {
		if (keep[i] < 0)
			continue;
		size_t j = m++;
		for (; j > 0 && k[j - 1] > keep[i]; j--)
			k[j] = k[j - 1];
		k[j] = keep[i];
	}
	unsigned from = 0;
	for (size_t i = 0; i < m; i++) {
		if ((unsigned)k[i] > from)
			close_range(from, (unsigned)k[i] - 1, 0);
		from = (unsigned)k[i] + 1;
	}
	close_range(from, ~0u, 0);
}

/* The job's main process, from its init. */
struct main_args {
	struct sandbox *sb;
	const struct sandbox_job *job;
	int errfd;
};

static int main_proc(void *arg)
{
	struct main_args *m = arg;
	int r = drop_identity(m->sb);
	if (r < 0)
		fail(m->errfd, -r, SANDBOX_STEP_IDENTITY);
	fail(m->errfd, m->job->exec(m->job->arg), SANDBOX_STEP_EXEC);
}

/* The stack the main process runs on until its exec. */
#define MAIN_STACK (256u << 10)

/* Clones the main process into its group. Where it can, it shares our
 * memory until its exec, and we wait for that (CLONE_VM | CLONE_VFORK,
 * as posix_spawn does): no copy of our address space to make on Start's
 * path, and none to tear down at its exec. */
static pid_t clone_main(struct main_args *m, int cgfd, void *stack)
{
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	ca.flags = CLONE_INTO_CGROUP;
	ca.cgroup = (uint64_t)cgfd;
	if (SYS_HAVE_CLONE3_RUN && stack != MAP_FAILED) {
		ca.flags |= CLONE_VM | CLONE_VFORK;
		ca.stack = (uint64_t)(uintptr_t)stack;
		ca.stack_size = MAIN_STACK;
		return sys_clone3_run(&ca, main_proc, m);
	}
	pid_t pid = sys_clone3(&ca);
	if (pid == 0)
		_exit(main_proc(m));
	return pid;
}

/* The init: the early steps, then the job. */
static _Noreturn void init_main(struct sandbox *sb, sandbox_describe_fn *describe, void *ctx,
				const int *keep, size_t n_keep)
{
	int errfd = sb->report.w;
	/* Tells the init from its supervisor in ps (both show the
	 * supervisor's command line). */
	prctl(PR_SET_NAME, "rund-init", 0, 0, 0);
	int mine[16 + 3];
	size_t n = 0;
	for (size_t i = 0; i < n_keep && i < 16; i++)
		mine[n++] = keep[i];
	mine[n++] = sb->go.r;
	mine[n++] = sb->report.w;
	mine[n++] = sb->status.w;
	keep_only(mine, n);
	struct step_state st = {.sb = sb};
	for (size_t i = 0; i < sb->n_early; i++) {
		st.i = i;
		int r = run_step(&sb->steps[i], &st);
		if (r < 0)
			fail(errfd, -r, (int)i);
	}
	int lr = limit_early(sb);
	if (lr < 0)
		fail(errfd, -lr, SANDBOX_STEP_IDENTITY);

	/* Mapped now, off Start's path; the pages it uses fault in then. */
	void *stack = mmap(NULL, MAIN_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	/* What the job starts with, set now so that its main process need
	 * not. Our own blocked mask is set only at launch: a signal sent to a
	 * spare's init is then dropped, not forwarded to a later job. */
	sandbox_job_defaults();

	/* Wait for the job. EOF: the supervisor is gone without one. */
	uint32_t len;
	if (!read_full(sb->go.r, &len, sizeof len))
		_exit(0);
	char *payload = malloc((size_t)len + 1);
	if (len == 0 || len > GIVE_MAX || !payload || !read_full(sb->go.r, payload, len))
		fail(errfd, EPROTO, SANDBOX_STEP_LAUNCH);
	payload[len] = '\0';
	struct sandbox_job job = {0};
	int e = describe(ctx, payload, len, &job);
	if (e)
		fail(errfd, e, SANDBOX_STEP_LAUNCH);
	sb->uid = job.uid;
	sb->gid = job.gid;
	/* Then its group, once the supervisor made it. */
	char *cg = read_message(sb->go.r, GROUP_MAX, &len);
	if (!cg)
		fail(errfd, EPROTO, SANDBOX_STEP_LAUNCH);
	close(sb->go.r);

	/* Opened through the host's tree, before the cgroup mount is
	 * covered and before a pivot_root. */
	int cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		fail(errfd, errno, SANDBOX_STEP_CGROUP);
	for (size_t i = sb->n_early; i < sb->n_steps; i++) {
		struct sandbox_step *step = &sb->steps[i];
		if (step->op == SB_CGROUP2 && !step->src)
			step->src = cg;
		st.i = i;
		int r = run_step(step, &st);
		if (r < 0)
			fail(errfd, -r, (int)i);
	}

	/* Every signal stays pending for sigwaitinfo (dispositions are all
	 * default, so SIGCHLD is not ignored and children do not reap
	 * themselves); the main process restores an empty mask before exec
	 * (job.exec does). */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	struct main_args m = {sb, &job, errfd};
	pid_t pid = clone_main(&m, cgfd, stack);
	if (pid < 0)
		fail(errfd, errno, SANDBOX_STEP_FORK);
	/* The stack stays mapped: unmapping it now costs a TLB shootdown on
	 * the CPU the main process ran on, and only the few pages it touched
	 * hold memory. */
	close(cgfd);
	init_loop(sb, pid, &all);
}

/* ---- the supervisor's side of the init -------------------------------- */

static void pipe_close(struct sandbox_pipe *p)
{
	closep(&p->r);
	closep(&p->w);
	*p = (struct sandbox_pipe){-1, -1};
}

static int pipe_open(struct sandbox_pipe *p)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	p->r = fds[0];
	p->w = fds[1];
	return 0;
}

int sandbox_init_start(struct sandbox *sb, sandbox_describe_fn *describe, void *ctx,
		       const int *keep, size_t n_keep, struct err *err)
{
	if (sb->root || sb->init_pidfd >= 0)
		return err_set(err, EINVAL, ERR_INTERNAL, "sandbox: no init to start");
	if (n_keep > 16)
		return err_set(err, EINVAL, ERR_INTERNAL, "sandbox: too many fds to keep");
	int r;
	if ((r = pipe_open(&sb->go)) < 0 || (r = pipe_open(&sb->report)) < 0 ||
	    (r = pipe_open(&sb->status)) < 0) {
		sandbox_init_stop(sb);
		return err_sys(err, -r, "sandbox pipes");
	}
	fcntl(sb->status.r, F_SETFL, O_NONBLOCK);
	/* What the init copies of the host, to tell later whether it is
	 * still the host's (see sandbox_init_fresh). Opened before the clone,
	 * so a change during it counts. */
	sb->mounts_fd = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(sb->hostname, sizeof sb->hostname, "%s", u.nodename);

	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD | sandbox_clone_flags(sb);
	ca.pidfd = (uint64_t)(uintptr_t)&sb->init_pidfd;
	ca.exit_signal = SIGCHLD;
	pid_t pid = sys_clone3(&ca);
	if (pid == 0)
		init_main(sb, describe, ctx, keep, n_keep);
	if (pid < 0) {
		int e = errno;
		sb->init_pidfd = -1;
		sandbox_init_stop(sb);
		return err_sys(err, e, "clone3 the job's init");
	}
	sb->init_pid = pid;
	closep(&sb->go.r);
	closep(&sb->report.w);
	closep(&sb->status.w);
	sb->go.r = sb->report.w = sb->status.w = -1;
	return 0;
}

bool sandbox_init_fresh(const struct sandbox *sb)
{
	if (sb->init_pidfd < 0 || sb->go.w < 0 || sb->mounts_fd < 0)
		return false;
	struct pollfd p[2] = {{.fd = sb->init_pidfd, .events = POLLIN},
			      {.fd = sb->mounts_fd, .events = POLLPRI}};
	if (poll(p, 2, 0) < 0 || p[0].revents || (p[1].revents & (POLLPRI | POLLERR)))
		return false;
	struct utsname u;
	return uname(&u) == 0 && strcmp(u.nodename, sb->hostname) == 0;
}

void sandbox_init_stop(struct sandbox *sb)
{
	if (sb->init_pidfd >= 0) {
		sys_pidfd_send_signal(sb->init_pidfd, SIGKILL, NULL, 0);
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)sb->init_pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
	}
	closep(&sb->init_pidfd);
	closep(&sb->mounts_fd);
	pipe_close(&sb->go);
	pipe_close(&sb->report);
	pipe_close(&sb->status);
	init_fields_clear(sb);
}

int sandbox_give(struct sandbox *sb, const void *payload, size_t len, struct err *err)
{
	if (len == 0 || len > GIVE_MAX)
		return err_set(err, E2BIG, ERR_INTERNAL, "sandbox: a job of %zu bytes", len);
	/* A dead init makes this EPIPE (the supervisor ignores SIGPIPE). */
	int r = write_message(sb->go.w, payload, len);
	return r < 0 ? err_sys(err, -r, "hand the job to its init") : 0;
}

int sandbox_launch(struct sandbox *sb, const char *job_cgroup, struct err *err)
{
	size_t cl = strlen(job_cgroup);
	if (cl == 0 || cl > GROUP_MAX)
		return err_set(err, ENAMETOOLONG, ERR_INTERNAL, "sandbox: cgroup path too long");
	int r = write_message(sb->go.w, job_cgroup, cl);
	closep(&sb->go.w);
	sb->go.w = -1;
	return r < 0 ? err_sys(err, -r, "hand the job's cgroup to its init") : 0;
}

int sandbox_wait_report(int fd, struct sandbox_report *rep)
{
	ssize_t n;
	do
		n = read(fd, rep, sizeof *rep);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof *rep ? 1 : 0;
}

bool sandbox_policy_same(const struct sandbox_policy *a, const struct sandbox_policy *b)
{
	if (a->root != b->root || a->namespaces != b->namespaces || a->n_hide != b->n_hide ||
	    a->tmp_size != b->tmp_size || a->max_procs != b->max_procs)
		return false;
	for (size_t i = 0; i < a->n_hide; i++)
		if (strcmp(a->hide[i], b->hide[i]) != 0)
			return false;
	const char *as[] = {a->rootfs, a->cgroup_mount}, *bs[] = {b->rootfs, b->cgroup_mount};
	for (size_t i = 0; i < ARRAY_SIZE(as); i++)
		if ((as[i] == NULL) != (bs[i] == NULL) || (as[i] && strcmp(as[i], bs[i]) != 0))
			return false;
	return true;
}
