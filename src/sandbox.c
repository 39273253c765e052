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
#include <stdlib.h>
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

/* The stacks of the processes that share our memory, in one mapping:
 * a guard page, the main process's stack, a guard page, the init's. */
static size_t stacks_size(void)
{
	return 2 * (size_t)getpagesize() + SANDBOX_MAIN_STACK + SANDBOX_INIT_STACK;
}

/* NULL without the mapping. */
static void *main_stack(const struct sandbox *sb)
{
	return sb->stack ? (char *)sb->stack + getpagesize() : NULL;
}

static void *init_stack(const struct sandbox *sb)
{
	return sb->stack ? (char *)main_stack(sb) + SANDBOX_MAIN_STACK + getpagesize() : NULL;
}

/* NULL when there is no memory for it (the processes are then copies). */
static void *stacks_map(void)
{
	size_t guard = (size_t)getpagesize();
	char *m = mmap(NULL, stacks_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1,
		       0);
	if (m == MAP_FAILED)
		return NULL;
	const int rw = PROT_READ | PROT_WRITE;
	if (mprotect(m + guard, SANDBOX_MAIN_STACK, rw) < 0 ||
	    mprotect(m + 2 * guard + SANDBOX_MAIN_STACK, SANDBOX_INIT_STACK, rw) < 0) {
		munmap(m, stacks_size());
		return NULL;
	}
	return m;
}

/* clone3(ca) of a child that runs fn(arg) and exits with what it
 * returns: with shared (CLONE_VM...) and on stack where sys.h has the
 * trampoline and our stacks are mapped, else a copy of us. The child's
 * pid, or -1/errno. */
static pid_t clone_child(const struct sandbox *sb, struct clone_args *ca, uint64_t shared,
			 void *stack, size_t stack_size, int (*fn)(void *), void *arg)
{
	if (SYS_HAVE_CLONE3_RUN && sb->stack) {
		ca->flags |= shared;
		ca->stack = (uint64_t)(uintptr_t)stack;
		ca->stack_size = stack_size;
		return sys_clone3_run(ca, fn, arg);
	}
	pid_t pid = sys_clone3(ca);
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

static void init_fields_clear(struct sandbox *sb)
{
	sb->init_pid = 0;
	sb->init_pidfd = sb->mounts_fd = sb->own_pidns = sb->init_root = -1;
	sb->report = (struct sandbox_pipe){-1, -1};
}

int sandbox_prepare(const struct sandbox_policy *p, struct sandbox *sb, struct err *err)
{
	(void)err;
	memset(sb, 0, sizeof *sb);
	init_fields_clear(sb);
	sb->root = p->root;
	if (p->root)
		return 0;
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
	if (mnt && p->rootfs)
		add_step(sb, SB_PIVOT, p->rootfs);
	/* The rest needs the job, and is the main process's to do. */
	sb->n_early = sb->n_steps;
	/* Mounting cgroup2 again on its own mount point is refused (EBUSY),
	 * so the job's group is bound there instead. */
	if (mnt && !p->rootfs && p->cgroup_mount && is_dir(p->cgroup_mount))
		add_step(sb, SB_CGROUP2, p->cgroup_mount);
	return 0;
}

void sandbox_free(struct sandbox *sb)
{
	sandbox_init_stop(sb);
	if (sb->stack)
		munmap(sb->stack, stacks_size());
	sb->stack = NULL;
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

const char *sandbox_step_name(const struct sandbox *sb, int step, char *buf, size_t cap)
{
	const char *what = step == SANDBOX_STEP_EXEC	   ? "exec"
			   : step == SANDBOX_STEP_IDENTITY ? "drop identity and privileges"
			   : step == SANDBOX_STEP_ENTER	   ? "enter the job's namespaces"
			   : step == SANDBOX_STEP_READY	   ? "start the job's init"
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

void sandbox_job_defaults(int except)
{
	/* exec keeps ignored signals ignored: default them all, whatever we
	 * or the daemon had. Through the kernel: glibc's sigaction() refuses
	 * its own signals 32 and 33, which posix_spawn left ignored in the
	 * supervisor. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != except)
			sys_signal_default(sig);
	/* The daemon raises its descriptor limit for its own bookkeeping. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > SANDBOX_JOB_NOFILE) {
		nofile.rlim_cur = SANDBOX_JOB_NOFILE;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
}

int sandbox_limit_self(const struct sandbox *sb, struct err *err)
{
	if (sb->root)
		return 0;
	for (int cap = 0; cap <= sb->last_cap; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return err_sys(err, errno, "drop capability %d from the bounding set", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_sys(err, errno, "clear the ambient capabilities");
	/* Counted per uid, and the uid is the job's alone: a bound on its
	 * processes even where there is no pids controller. It does not
	 * bind root, so not us. */
	if (sb->max_procs) {
		struct rlimit rl = {sb->max_procs, sb->max_procs};
		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			return err_sys(err, errno, "RLIMIT_NPROC %" PRIu64, sb->max_procs);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_sys(err, errno, "no_new_privs");
	/* The session keyring came from the daemon (possession is inherited
	 * across fork and setuid): the job's processes, our children, start
	 * from an empty one of ours, which nobody else has. */
	if (sys_new_session_keyring() < 0 && errno != ENOSYS)
		return err_sys(err, errno, "join a new session keyring");
	/* We need SIGPIPE ignored (the daemon may be gone); the job gets it
	 * back by default in drop_identity. */
	sandbox_job_defaults(SIGPIPE);
	return 0;
}

/* In the job's main process, still root (with the supervisor's empty
 * bounding set, see sandbox_limit_self): become the job's uid with nothing
 * to fall back on. */
static int drop_identity(const struct sandbox *sb, uint32_t uid, uint32_t gid)
{
	/* Rooted at the group it was born in: its own. */
	if ((sb->namespaces & SANDBOX_NS_CGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		return -errno;
	if (sys_setgroups_none() < 0 || sys_setresgid(gid) < 0 || sys_setresuid(uid) < 0)
		return -errno;
	/* The uid change cleared effective and permitted; inheritable
	 * survives it. */
	if (sys_capset_none() < 0)
		return -errno;
	if (sys_signal_default(SIGPIPE) < 0)
		return -errno;
	return seccomp_no_namespaces();
}

/* Closes every descriptor but keep[0..n) (n <= 4). */
static void keep_only(const int *keep, size_t n)
{
	int k[4];
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

static void report_to(int fd, int e, int step)
{
	struct sandbox_report rep = {.err = e, .step = step};
	ssize_t w;
	do
		w = write(fd, &rep, sizeof rep);
	while (w < 0 && errno == EINTR);
}

/* The job's main process is the first process made in the PID namespace
 * after the init: pid 2 there, always (the init never forks). */
#define MAIN_PID 2

/* What the init is started with. It may share our memory: it reads
 * these, and the plan, only until it says it is ready (we wait for that
 * and change nothing meanwhile). */
struct init_args {
	const struct sandbox *sb;
	int report; /* the write end of sb->report */
};

/* AddressSanitizer keeps its stack bounds per thread, in thread-local
 * storage: the init, sharing our memory but not our thread, runs on a
 * stack it does not know. Its entry, which never returns, is left
 * uninstrumented, or each noreturn call there would have the sanitizer
 * unpoison "our" stack from the init's stack pointer: refused with a
 * report. The steps it calls return normally and are instrumented. */
#if defined(__SANITIZE_ADDRESS__)
#define INIT_ENTRY __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INIT_ENTRY __attribute__((no_sanitize_address))
#endif
#endif
#ifndef INIT_ENTRY
#define INIT_ENTRY
#endif

/* The init: PID 1 of the job's PID namespace and holder of its other
 * namespaces. It makes the job's view (the early steps), says so, then
 * forwards every signal it can catch to the main process (when it is PID
 * 1 of a namespace of its own) and reaps the orphans the job leaves, until
 * its supervisor kills it (the job's end) or dies (PR_SET_PDEATHSIG).
 *
 * Started with CLONE_VM it has our memory, and so our thread's errno:
 * until "ready" we only wait, so it may use libc; from then on we run
 * and it makes only sys_raw calls, which leave errno alone. */
INIT_ENTRY static _Noreturn void init_main(const struct init_args *a)
{
	const struct sandbox *sb = a->sb;
	int out = a->report;
	/* Without a PID namespace, pid 2 is the host's. */
	const bool forward = sb->namespaces & SANDBOX_NS_PID;
	/* Tells the init from its supervisor in ps (both show the
	 * supervisor's command line). */
	prctl(PR_SET_NAME, "rund-init", 0, 0, 0);
	/* A supervisor that died before this line is seen at "ready": nobody
	 * reads it (EPIPE). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(127);
	keep_only(&out, 1);
	/* A session of its own, as the job has (jobspawn.h): nothing the job
	 * does to its process groups reaches the init or the supervisor. */
	setsid();
	/* Signals wait for rt_sigtimedwait from now on (dispositions are all
	 * default, so SIGCHLD is not ignored and orphans do not reap
	 * themselves). */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	struct step_state st = {.sb = sb};
	for (size_t i = 0; i < sb->n_early; i++) {
		st.i = i;
		int r = run_step(&sb->steps[i], &st);
		if (r < 0) {
			report_to(out, -r, (int)i);
			_exit(127);
		}
	}
	/* What is left is waiting: it need not compete with anyone. */
	sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0});
	setpriority(PRIO_PROCESS, 0, 19);
	struct sandbox_report ready = {.err = 0, .step = SANDBOX_STEP_READY};
	if (sys_raw(SYS_write, out, (long)&ready, sizeof ready, 0) != (long)sizeof ready)
		_exit(0);
	sys_raw(SYS_close, out, 0, 0, 0);
	for (;;) {
		siginfo_t si;
		long sig = sys_raw(SYS_rt_sigtimedwait, (long)&all, (long)&si, 0, _NSIG / 8);
		if (sig == SIGCHLD)
			while (sys_raw(SYS_wait4, -1, 0, WNOHANG, 0) > 0)
				;
		else if (sig > 0 && forward)
			sys_raw(SYS_kill, MAIN_PID, sig, 0, 0);
	}
}

INIT_ENTRY static int init_run(void *arg)
{
	init_main(arg);
}

/* ---- the supervisor's side -------------------------------------------- */

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

int sandbox_wait_report(int fd, struct sandbox_report *rep)
{
	ssize_t n;
	do
		n = read(fd, rep, sizeof *rep);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof *rep ? 1 : 0;
}

/* Waits for the init's word. When wake_fd becomes readable first (a job
 * waits for this init), the init, idle until then if we were, is raised
 * to the normal class. */
static int wait_ready(struct sandbox *sb, int wake_fd, struct sandbox_report *rep)
{
	struct pollfd p[2] = {{.fd = sb->report.r, .events = POLLIN},
			      {.fd = wake_fd, .events = POLLIN}};
	while (wake_fd >= 0) {
		int n = poll(p, 2, -1);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && p[1].revents) {
			sched_setscheduler(sb->init_pid, SCHED_OTHER, &(struct sched_param){0});
			break;
		}
		if (n > 0 && p[0].revents)
			break;
	}
	return sandbox_wait_report(sb->report.r, rep);
}

int sandbox_init_start(struct sandbox *sb, int wake_fd, struct sandbox_report *rep, struct err *err)
{
	if (sb->root || sb->init_pidfd >= 0)
		return err_set(err, EINVAL, ERR_INTERNAL, "sandbox: no init to start");
	int r = pipe_open(&sb->report);
	if (r < 0)
		return err_sys(err, -r, "sandbox pipe");
	/* What the init copies of the host, to tell later whether it is
	 * still the host's (see sandbox_init_fresh). Opened before the clone,
	 * so a change during it counts. */
	sb->mounts_fd = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
	if (sb->own_pidns < 0)
		sb->own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	struct utsname u;
	if (uname(&u) == 0) {
		snprintf(sb->hostname, sizeof sb->hostname, "%s", u.nodename);
		snprintf(sb->domainname, sizeof sb->domainname, "%s", u.domainname);
	}
	if (!sb->stack)
		sb->stack = stacks_map();

	struct init_args a = {sb, sb->report.w};
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD | sandbox_clone_flags(sb);
	ca.pidfd = (uint64_t)(uintptr_t)&sb->init_pidfd;
	ca.exit_signal = SIGCHLD;
	/* Our memory, not a copy: no page tables to copy now, none to tear
	 * down at its exit, no copy-on-write faults on either side. */
	pid_t pid =
		clone_child(sb, &ca, CLONE_VM, init_stack(sb), SANDBOX_INIT_STACK, init_run, &a);
	if (pid < 0) {
		int e = errno;
		sb->init_pidfd = -1;
		sandbox_init_stop(sb);
		return err_sys(err, e, "clone3 the job's init");
	}
	sb->init_pid = pid;
	closep(&sb->report.w);
	sb->report.w = -1;
	/* Ready, or why not. EOF: it died before either. */
	struct sandbox_report got = {.err = EPIPE, .step = SANDBOX_STEP_READY};
	if (wait_ready(sb, wake_fd, &got) == 1 && got.step == SANDBOX_STEP_READY && got.err == 0) {
		pipe_close(&sb->report);
		/* Its root, in its mount namespace, for the main process. */
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
		sb->init_root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (sb->init_root >= 0)
			return 0;
		got = (struct sandbox_report){.err = errno, .step = SANDBOX_STEP_READY};
	}
	*rep = got;
	sandbox_init_stop(sb);
	return 1;
}

bool sandbox_init_fresh(const struct sandbox *sb)
{
	if (sb->init_pidfd < 0 || sb->mounts_fd < 0)
		return false;
	struct pollfd p[2] = {{.fd = sb->init_pidfd, .events = POLLIN},
			      {.fd = sb->mounts_fd, .events = POLLPRI}};
	if (poll(p, 2, 0) < 0 || p[0].revents || (p[1].revents & (POLLPRI | POLLERR)))
		return false;
	struct utsname u;
	return uname(&u) == 0 && strcmp(u.nodename, sb->hostname) == 0 &&
	       strcmp(u.domainname, sb->domainname) == 0;
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
	closep(&sb->own_pidns);
	closep(&sb->init_root);
	pipe_close(&sb->report);
	sb->init_pid = 0;
	sb->init_pidfd = sb->mounts_fd = sb->own_pidns = sb->init_root = -1;
}

void sandbox_init_kill(struct sandbox *sb)
{
	if (sb->init_pidfd >= 0)
		sys_pidfd_send_signal(sb->init_pidfd, SIGKILL, NULL, 0);
}

/* The main process, from its first instruction to its exec. */
struct main_args {
	const struct sandbox *sb;
	const struct sandbox_job *job;
	const char *job_cgroup;
	int errfd;
};

static int main_proc(void *arg)
{
	const struct main_args *m = arg;
	const struct sandbox *sb = m->sb;
	/* The init's namespaces but the PID one, which we were born in. */
	unsigned ns = (unsigned)sandbox_clone_flags(sb) & ~(unsigned)CLONE_NEWPID;
	if (ns && setns(sb->init_pidfd, (int)ns) < 0)
		report_to(m->errfd, errno, SANDBOX_STEP_ENTER), _exit(127);
	/* Entering a mount namespace moves us to its root; the init's root
	 * may be below it (we run chroot'ed, or -rootfs): that one. */
	if ((ns & CLONE_NEWNS) && (fchdir(sb->init_root) < 0 || chroot(".") < 0))
		report_to(m->errfd, errno, SANDBOX_STEP_ENTER), _exit(127);
	struct step_state st = {.sb = sb};
	for (size_t i = sb->n_early; i < sb->n_steps; i++) {
		struct sandbox_step step = sb->steps[i];
		if (step.op == SB_CGROUP2)
			step.src = (char *)m->job_cgroup;
		st.i = i;
		int r = run_step(&step, &st);
		if (r < 0)
			report_to(m->errfd, -r, (int)i), _exit(127);
	}
	int r = drop_identity(sb, m->job->uid, m->job->gid);
	if (r < 0)
		report_to(m->errfd, -r, SANDBOX_STEP_IDENTITY), _exit(127);
	report_to(m->errfd, m->job->exec(m->job->arg), SANDBOX_STEP_EXEC);
	_exit(127);
}

int sandbox_spawn(struct sandbox *sb, const struct sandbox_job *job, const char *job_cgroup,
		  int cgroup_fd, struct sandbox_child *out, struct sandbox_report *rep,
		  struct err *err)
{
	if (sb->root || sb->init_pidfd < 0)
		return err_set(err, EINVAL, ERR_INTERNAL, "sandbox: no init to spawn into");
	/* Our next child is born in the job's PID namespace (ours again right
	 * after: nothing else of ours belongs there, not even the tracer a
	 * sanitizer forks at our exit). */
	bool pidns = sb->namespaces & SANDBOX_NS_PID;
	if (pidns && (sb->own_pidns < 0 || setns(sb->init_pidfd, CLONE_NEWPID) < 0))
		return err_sys(err, sb->own_pidns < 0 ? EBADF : errno,
			       "enter the job's PID namespace");
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return err_sys(err, errno, "pipe");
	struct main_args m = {sb, job, job_cgroup, ep[1]};
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD | CLONE_INTO_CGROUP;
	ca.cgroup = (uint64_t)cgroup_fd;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	/* It shares our memory until its exec and we wait for that (as
	 * posix_spawn does): no copy of our address space to make, and none
	 * to tear down at its exec. */
	pid_t pid = clone_child(sb, &ca, CLONE_VM | CLONE_VFORK, main_stack(sb), SANDBOX_MAIN_STACK,
				main_proc, &m);
	int e = errno;
	/* Cannot fail: it is our own active namespace. */
	if (pidns)
		(void)setns(sb->own_pidns, CLONE_NEWPID);
	close(ep[1]);
	if (pid < 0) {
		close(ep[0]);
		return err_sys(err, e, "clone3 the job's main process");
	}
	/* EOF: its exec closed the CLOEXEC end. */
	int got = sandbox_wait_report(ep[0], rep);
	close(ep[0]);
	if (got == 1) {
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		close(pidfd);
		return 1;
	}
	out->pid = pid;
	out->pidfd = pidfd;
	return 0;
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
