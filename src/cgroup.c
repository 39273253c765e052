/* cgroup: rund's cgroup v2 subtree (cgroup.h). The only writer below R.
 *
 * Controllers may be missing (hybrid v1/v2 hosts bind cpu, memory and io
 * to v1): setup enables what the hierarchy offers, records it, and only a
 * job asking for a limit whose controller is missing is refused. Grouping,
 * cgroup.kill, cpu.stat and cgroup.events work on any v2 hierarchy. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "util.h"

#define KNOB_MAX 65536

/* True when row l is the first to name its controller: loops over
 * controllers visit those rows only. */
static bool first_of_controller(int l)
{
	for (int i = 0; i < l; i++)
		if (strcmp(job_limit_defs[i].controller, job_limit_defs[l].controller) == 0)
			return false;
	return true;
}

/* ---- pure parsers and formatters ---- */

/* Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline,
 * \134 backslash) in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

int cgroup_find_mount(char **mount, char **root, struct err *err)
{
	_cleanup_free_ char *mountinfo = NULL;
	int r = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, &mountinfo, NULL);
	if (r < 0)
		return err_sys(err, -r, "read /proc/self/mountinfo");
	if (cgroup_parse_mountinfo(mountinfo, mount, root) < 0)
		return err_set(err, ENOENT, ERR_PRECONDITION,
			       "no cgroup v2 filesystem is mounted (see /proc/self/mountinfo); "
			       "mount one or pass -cgroup");
	return 0;
}

int cgroup_parse_mountinfo(const char *text, char **mount, char **root)
{
	/* Line: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC SUPEROPTS */
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		_cleanup_free_ char *l = xstrndup(line, n);
		line = eol ? eol + 1 : NULL;

		char *sep = strstr(l, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		char *fstype = sep + 3;
		char *sp = strchr(fstype, ' ');
		if (sp)
			*sp = '\0';
		if (strcmp(fstype, "cgroup2") != 0)
			continue;

		char *save = NULL, *f = strtok_r(l, " ", &save), *fsroot = NULL;
		for (int i = 0; f && i < 4; i++) {
			if (i == 3)
				fsroot = f;
			f = strtok_r(NULL, " ", &save);
		}
		if (!f || f[0] != '/' || !fsroot || fsroot[0] != '/')
			return -EBADMSG;
		unescape_octal(f);
		unescape_octal(fsroot);
		*mount = xstrdup(f);
		*root = xstrdup(fsroot);
		return 0;
	}
	return -ENOENT;
}

int cgroup_parse_self(const char *text, char **path)
{
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		if (n >= 3 && memcmp(line, "0::", 3) == 0) {
			if (n == 3 || line[3] != '/')
				return -EBADMSG;
			*path = xstrndup(line + 3, n - 3);
			return 0;
		}
		line = eol ? eol + 1 : NULL;
	}
	return -ENOENT;
}

unsigned cgroup_parse_controllers(const char *text)
{
	unsigned bits = 0;
	const char *p = text;
	while (p && *p) {
		p += strspn(p, " \t\n");
		size_t n = strcspn(p, " \t\n");
		for (int l = 0; l < LIMIT_COUNT; l++) {
			const char *c = job_limit_defs[l].controller;
			if (strlen(c) == n && memcmp(p, c, n) == 0)
				bits |= LIMIT_BIT(l);
		}
		p += n;
	}
	return bits;
}

int cgroup_parse_procs(const char *text, int *pids, size_t cap)
{
	size_t n = 0;
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char num[16];
		uint64_t v;
		if (len == 0 || len >= sizeof num)
			return -EBADMSG;
		memcpy(num, line, len);
		num[len] = '\0';
		if (parse_u64(num, &v) < 0 || v == 0 || v > INT32_MAX)
			return -EBADMSG;
		if (n < cap)
			pids[n] = (int)v;
		n++;
		line = eol ? eol + 1 : NULL;
	}
	return (int)n;
}

static int fmt_result(int n, size_t cap)
{
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int cgroup_format_value(enum job_limit l, uint64_t value, char *buf, size_t cap)
{
	const char *suffix = job_limit_defs[l].suffix;
	return fmt_result(snprintf(buf, cap, "%" PRIu64 "%s", value, suffix ? suffix : ""), cap);
}

int cgroup_format_device_line(const char *knob, const struct io_device *dev,
			      const struct job_limits *lim, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%u:%u", dev->major, dev->minor);
	if (fmt_result(n, cap) < 0)
		return -ENOSPC;
	size_t len = (size_t)n;
	for (int l = 0; l < LIMIT_COUNT; l++) {
		const struct job_limit_def *d = &job_limit_defs[l];
		if (!lim->has[l] || !d->key || strcmp(d->knob, knob) != 0)
			continue;
		n = snprintf(buf + len, cap - len, " %s=%" PRIu64, d->key, lim->value[l]);
		if (fmt_result(n, cap - len) < 0)
			return -ENOSPC;
		len += (size_t)n;
	}
	return (int)len;
}

/* Finds "key N" in a flat-keyed file (cpu.stat, memory.events, cgroup.events). */
static bool keyed_u64(const char *text, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			char num[24];
			const char *v = line + kl + 1;
			size_t n = eol ? (size_t)(eol - v) : strlen(v);
			if (n == 0 || n >= sizeof num)
				return false;
			memcpy(num, v, n);
			num[n] = '\0';
			return parse_u64(num, out) == 0;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

/* ---- helpers ---- */

/* A job id becomes a directory name: refuse anything that could escape
 * R/jobs. */
static bool id_ok(const char *id)
{
	return id && id[0] && strchr(id, '/') == NULL && strcmp(id, ".") != 0 &&
	       strcmp(id, "..") != 0;
}

/* Reads a cgroup knob. The kernel generates a knob's whole text on the
 * first read from offset 0, so a read that does not fill the buffer has
 * everything: one read instead of reading on to EOF. */
static int read_knob(int dirfd, const char *path, char **out)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	char buf[4096];
	ssize_t n = read_retry(fd, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof buf) {
		*out = xstrndup(buf, (size_t)n);
		return 0;
	}
	/* Longer than one page: read the rest the general way. */
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	return read_fd_all(fd, KNOB_MAX, out, NULL);
}

static bool is_cgroup2(int fd)
{
	struct statfs sfs;
	return fstatfs(fd, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

static void root_init(struct cgroup_root *root)
{
	memset(root, 0, sizeof *root);
	root->dirfd = -1;
	root->jobs_fd = -1;
}

static int mkdir_ok(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Enables each available controller of want in dir's subtree_control, one
 * at a time so one refusal does not hide the others. Returns the bits that
 * ended up enabled. */
static unsigned enable_controllers(int dirfd, const char *dir, const char *sub, unsigned want)
{
	char path[64];
	_cleanup_free_ char *avail_text = NULL;
	snprintf(path, sizeof path, "%s%scgroup.controllers", sub, *sub ? "/" : "");
	if (read_knob(dirfd, path, &avail_text) < 0)
		return 0;
	unsigned avail = cgroup_parse_controllers(avail_text) & want;

	snprintf(path, sizeof path, "%s%scgroup.subtree_control", sub, *sub ? "/" : "");
	for (int l = 0; l < LIMIT_COUNT; l++) {
		if (!(avail & LIMIT_BIT(l)) || !first_of_controller(l))
			continue;
		const char *name = job_limit_defs[l].controller;
		char cmd[32];
		snprintf(cmd, sizeof cmd, "+%s", name);
		int r = write_file_at(dirfd, path, cmd);
		if (r < 0)
			/* Start-up diagnostics: a missing controller is not
			 * fatal, but the operator should learn why. */
			fprintf(stderr, "rund: warning: cannot enable %s in %s/%s: %s\n", name, dir,
				path, strerror(-r));
	}
	_cleanup_free_ char *on_text = NULL;
	if (read_knob(dirfd, path, &on_text) < 0)
		return 0;
	return cgroup_parse_controllers(on_text);
}

/* The controllers of the hierarchy's root: what the system could give us.
 * Walks up from dirfd to the cgroup without cgroup.type. */
static unsigned system_controllers(int dirfd)
{
	_cleanup_close_ int fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (int depth = 0; fd >= 0 && depth < 64; depth++) {
		if (faccessat(fd, "cgroup.type", F_OK, 0) < 0 && errno == ENOENT) {
			_cleanup_free_ char *text = NULL;
			return read_knob(fd, "cgroup.controllers", &text) == 0
				       ? cgroup_parse_controllers(text)
				       : 0;
		}
		int up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = up;
	}
	return 0;
}

static int open_jobs(struct cgroup_root *root, struct err *err)
{
	root->jobs_fd = openat(root->dirfd, "jobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root->jobs_fd < 0)
		return err_sys(err, errno, "open %s/jobs", root->path);
	_cleanup_free_ char *text = NULL;
	if (read_knob(root->jobs_fd, "cgroup.subtree_control", &text) == 0)
		root->controllers = cgroup_parse_controllers(text);
	return 0;
}

/* ---- root ---- */

/* Moves every process directly in R into R/daemon (daemon_stays: the
 * holder of the unit R belongs to). Processes may come and go meanwhile, so
 * it reads again until R is empty, a few rounds at most. */
static int move_procs_to_daemon(struct cgroup_root *root, struct err *err)
{
	for (int round = 0;; round++) {
		_cleanup_free_ char *text = NULL;
		int pids[64];
		int r = read_knob(root->dirfd, "cgroup.procs", &text);
		if (r < 0)
			return err_sys(err, -r, "read %s/cgroup.procs", root->path);
		int n = cgroup_parse_procs(text, pids, ARRAY_SIZE(pids));
		if (n < 0)
			return err_set(err, EBADMSG, ERR_INTERNAL,
				       "%s/cgroup.procs: unexpected text", root->path);
		if (n == 0)
			return 0;
		if (round == 8)
			return err_set(err, EBUSY, ERR_PRECONDITION,
				       "processes keep appearing in %s; it must hold only its "
				       "unit's holder",
				       root->path);
		for (int i = 0; i < n && i < (int)ARRAY_SIZE(pids); i++) {
			char num[16];
			snprintf(num, sizeof num, "%d", pids[i]);
			r = write_file_at(root->dirfd, "daemon/cgroup.procs", num);
			/* ESRCH: it exited meanwhile. */
			if (r < 0 && r != -ESRCH)
				return err_sys(err, -r, "move process %d from %s to %s/daemon",
					       pids[i], root->path, root->path);
		}
	}
}

int cgroup_enter_daemon(const char *root_path, struct err *err)
{
	_cleanup_free_ char *path = xasprintf("%s/daemon/cgroup.procs", root_path);
	int r = write_file_at(AT_FDCWD, path, "0");
	if (r < 0)
		return err_sys(err, -r, "move into %s/daemon", root_path);
	return 0;
}

int cgroup_root_setup(const char *override, bool daemon_stays, struct cgroup_root *root,
		      struct err *err)
{
	root_init(root);
	_cleanup_free_ char *path = NULL;
	unsigned want = LIMIT_BIT(LIMIT_COUNT) - 1;
	int r;

	if (daemon_stays && !override)
		return err_set(err, EINVAL, ERR_INVALID,
			       "the daemon can stay in its own cgroup only when -cgroup names "
			       "another one");
	if (override) {
		if (override[0] != '/')
			return err_set(err, EINVAL, ERR_INVALID,
				       "cgroup root \"%s\" is not an absolute path", override);
		path = xstrdup(override);
		/* Only the last component is created: its parent must already
		 * be a cgroup the administrator chose. */
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return err_sys(err, errno, "create cgroup %s", path);
	} else {
		_cleanup_free_ char *mount = NULL, *fsroot = NULL, *self = NULL;
		if ((r = cgroup_find_mount(&mount, &fsroot, err)) < 0)
			return r;
		_cleanup_free_ char *text = NULL;
		r = read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 20, &text, NULL);
		if (r < 0)
			return err_sys(err, -r, "read /proc/self/cgroup");
		r = cgroup_parse_self(text, &self);
		if (r < 0)
			return err_set(err, -r, ERR_PRECONDITION,
				       "this process is in no cgroup v2 group (/proc/self/cgroup "
				       "has no \"0::\" line)");
		/* A mount of a subtree (mountinfo's root field) shows our
		 * cgroup relative to that subtree. */
		size_t rl = strcmp(fsroot, "/") == 0 ? 0 : strlen(fsroot);
		if (rl && (strncmp(self, fsroot, rl) != 0 || (self[rl] && self[rl] != '/')))
			return err_set(
				err, ENOENT, ERR_PRECONDITION,
				"this process's cgroup %s is outside the cgroup2 mount at %s "
				"(which shows %s); pass -cgroup",
				self, mount, fsroot);
		memmove(self, self + rl, strlen(self + rl) + 1);
		if (self[0] == '\0' || strcmp(self, "/") == 0) {
			/* The hierarchy's root cannot hold limits for us; use a
			 * subtree of our own. */
			path = xasprintf("%s/rund", mount);
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				return err_sys(err, errno, "create cgroup %s", path);
		} else {
			path = xasprintf("%s%s", mount, self);
			/* A daemon re-executed from inside R/daemon (upgrade in
			 * place) must find the same R, not nest a new one. */
			char *slash = strrchr(path, '/');
			if (slash && strcmp(slash, "/daemon") == 0) {
				*slash = '\0';
				_cleanup_free_ char *jobs = xasprintf("%s/jobs", path);
				struct stat sb;
				if (stat(jobs, &sb) < 0 || !S_ISDIR(sb.st_mode))
					*slash = '/';
			}
		}
	}

	root->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root->dirfd < 0) {
		r = err_sys(err, errno, "open cgroup %s", path);
		goto bad;
	}
	if (!is_cgroup2(root->dirfd)) {
		r = err_set(err, ENOTDIR, ERR_PRECONDITION, "%s is not on a cgroup v2 filesystem",
			    path);
		goto bad;
	}
	root->path = steal_pointer(&path);

	if ((r = mkdir_ok(root->dirfd, "daemon")) < 0 || (r = mkdir_ok(root->dirfd, "jobs")) < 0) {
		r = err_sys(err, -r, "create cgroups below %s", root->path);
		goto bad;
	}
	/* No internal processes: leave R itself empty so its subtree_control
	 * may enable controllers. */
	if (daemon_stays) {
		if ((r = move_procs_to_daemon(root, err)) < 0)
			goto bad;
	} else if ((r = write_file_at(root->dirfd, "daemon/cgroup.procs", "0")) < 0) {
		r = err_sys(err, -r, "move rund into %s/daemon", root->path);
		goto bad;
	}
	/* R directly below the hierarchy's root (our own subtree, or a
	 * -cgroup made there): nobody else delegates to it, so enable the
	 * controllers in the root's subtree_control, as a container runtime
	 * without systemd does. The root is the cgroup without cgroup.type. */
	{
		/* A block of its own: the gotos above must not jump into the
		 * scope of a cleanup variable. */
		_cleanup_close_ int parent =
			openat(root->dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (parent >= 0 && is_cgroup2(parent) &&
		    faccessat(parent, "cgroup.type", F_OK, 0) < 0 && errno == ENOENT) {
			_cleanup_free_ char *ppath =
				xstrndup(root->path, strrchr(root->path, '/') - root->path);
			enable_controllers(parent, ppath[0] ? ppath : "/", "", want);
		}
	}
	unsigned got = enable_controllers(root->dirfd, root->path, "", want);
	enable_controllers(root->dirfd, root->path, "jobs", want);
	if ((r = open_jobs(root, err)) < 0)
		goto bad;
	root->undelegated = system_controllers(root->dirfd) & want & ~got;
	if (root->undelegated)
		fprintf(stderr,
			"rund: warning: the system has controllers that are not delegated to %s, "
			"so limits that need them will be refused. %s\n",
			root->path, CGROUP_DELEGATE_HINT);
	return 0;
bad:
	cgroup_root_close(root);
	return r;
}

int cgroup_root_open(const char *path, struct cgroup_root *root, struct err *err)
{
	root_init(root);
	if (!path || path[0] != '/')
		return err_set(err, EINVAL, ERR_INTERNAL, "cgroup root \"%s\" is not absolute",
			       path ? path : "(none)");
	root->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root->dirfd < 0)
		return err_sys(err, errno, "open cgroup %s", path);
	root->path = xstrdup(path);
	int r = open_jobs(root, err);
	if (r < 0)
		cgroup_root_close(root);
	return r;
}

void cgroup_root_close(struct cgroup_root *root)
{
	if (!root)
		return;
	if (root->dirfd >= 0)
		close(root->dirfd);
	if (root->jobs_fd >= 0)
		close(root->jobs_fd);
	free(root->path);
	root_init(root);
}

int cgroup_check_limits(const struct cgroup_root *root, const struct job_limits *lim,
			struct err *err)
{
	for (int l = 0; l < LIMIT_COUNT; l++) {
		if (lim->has[l] && !(root->controllers & LIMIT_BIT(l)))
			return err_set(
				err, EOPNOTSUPP, ERR_PRECONDITION,
				"%s controller is not available in the cgroup v2 hierarchy "
				"at %s (needed for %s)%s%s",
				job_limit_defs[l].controller, root->path, job_limit_defs[l].name,
				root->undelegated & LIMIT_BIT(l) ? ": " : "",
				root->undelegated & LIMIT_BIT(l) ? CGROUP_DELEGATE_HINT : "");
	}
	return 0;
}

/* ---- jobs ---- */

static int write_knob(int fd, const struct cgroup_root *root, const char *id, const char *knob,
		      const char *value, struct err *err)
{
	int r = write_file_at(fd, knob, value);
	if (r == 0)
		return 0;
	if (r == -ENOENT)
		return err_set(err, EOPNOTSUPP, ERR_PRECONDITION,
			       "%s/jobs/%s has no %s (controller not enabled)", root->path, id,
			       knob);
	return err_sys(err, -r, "kernel refused \"%s\" in %s/jobs/%s/%s", value, root->path, id,
		       knob);
}

/* Writes limit l of lim into the job's group fd: a lone value, or for a
 * per-device knob, the combined line of each device, written once, by the
 * first present row of that knob. */
static int write_limit(int fd, const struct cgroup_root *root, const char *id, int l,
		       const struct job_limits *lim, const struct io_device *devs, size_t ndevs,
		       struct err *err)
{
	const struct job_limit_def *d = &job_limit_defs[l];
	char buf[256];
	int r;
	if (d->key) {
		for (int i = 0; i < l; i++)
			if (lim->has[i] && job_limit_defs[i].key &&
			    strcmp(job_limit_defs[i].knob, d->knob) == 0)
				return 0;
		for (size_t i = 0; i < ndevs; i++) {
			r = cgroup_format_device_line(d->knob, &devs[i], lim, buf, sizeof buf);
			if (r < 0 || (r = write_knob(fd, root, id, d->knob, buf, err)) < 0)
				return r;
		}
		return 0;
	}
	if ((r = cgroup_format_value(l, lim->value[l], buf, sizeof buf)) < 0 ||
	    (r = write_knob(fd, root, id, d->knob, buf, err)) < 0)
		return r;
	if (d->also_knob)
		write_file_at(fd, d->also_knob, d->also_value);
	return 0;
}

int cgroup_job_create(const struct cgroup_root *root, const char *id, const struct job_limits *lim,
		      const struct io_device *devs, size_t ndevs, int *fd, struct err *err)
{
	*fd = -1;
	if (!id_ok(id))
		return err_set(err, EINVAL, ERR_INTERNAL, "bad job id \"%s\"", id ? id : "");
	for (int l = 0; l < LIMIT_COUNT; l++)
		if (lim->has[l] && job_limit_defs[l].key && ndevs == 0)
			return err_set(err, ENODEV, ERR_PRECONDITION,
				       "%s limits requested but no block devices are configured "
				       "(see -io_devices)",
				       job_limit_defs[l].controller);
	int r = cgroup_check_limits(root, lim, err);
	if (r < 0)
		return r;

	if (mkdirat(root->jobs_fd, id, 0755) < 0)
		return err_sys(err, errno, "create cgroup %s/jobs/%s", root->path, id);
	_cleanup_close_ int dfd = openat(root->jobs_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = err_sys(err, errno, "open cgroup %s/jobs/%s", root->path, id);
		goto bad;
	}

	for (int l = 0; l < LIMIT_COUNT; l++)
		if (lim->has[l] && (r = write_limit(dfd, root, id, l, lim, devs, ndevs, err)) < 0)
			goto bad;
	*fd = steal_fd(&dfd);
	return 0;
bad:
	if (r == -ENOSPC)
		r = err_set(err, ENOSPC, ERR_INTERNAL, "limit value too long");
	unlinkat(root->jobs_fd, id, AT_REMOVEDIR);
	return r;
}

int cgroup_job_kill(const struct cgroup_root *root, const char *id, struct err *err)
{
	if (!id_ok(id))
		return err_set(err, EINVAL, ERR_INTERNAL, "bad job id \"%s\"", id ? id : "");
	char path[300];
	snprintf(path, sizeof path, "%s/cgroup.kill", id);
	int r = write_file_at(root->jobs_fd, path, "1");
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return err_sys(err, -r, "kill cgroup %s/jobs/%s", root->path, id);
	return 0;
}

/* A knob holding one number and a newline. */
static int parse_line_u64(char *text, uint64_t *v)
{
	text[strcspn(text, "\n")] = '\0';
	return parse_u64(text, v);
}

int cgroup_job_stats(const struct cgroup_root *root, const char *id, struct cgroup_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!id_ok(id))
		return -EINVAL;
	/* Status calls land here while a job runs: one open per file, by
	 * path, no directory fd. cpu.stat exists in every v2 group, so its
	 * absence means the group is gone. */
	char path[64];
	_cleanup_free_ char *cpu = NULL;
	snprintf(path, sizeof path, "%s/cpu.stat", id);
	int r = read_knob(root->jobs_fd, path, &cpu);
	if (r < 0)
		return r;
	keyed_u64(cpu, "user_usec", &st->user_usec);
	keyed_u64(cpu, "system_usec", &st->system_usec);

	/* Without the memory controller these files do not exist: do not pay
	 * three failed lookups per call to find out again. */
	if (!(root->controllers & LIMIT_BIT(LIMIT_MEMORY)))
		return 0;
	_cleanup_free_ char *cur = NULL, *peak = NULL, *mev = NULL;
	uint64_t v;
	snprintf(path, sizeof path, "%s/memory.current", id);
	if (read_knob(root->jobs_fd, path, &cur) == 0 && parse_line_u64(cur, &v) == 0)
		st->memory_current = v;
	snprintf(path, sizeof path, "%s/memory.peak", id);
	if (read_knob(root->jobs_fd, path, &peak) == 0 && parse_line_u64(peak, &v) == 0)
		st->memory_peak = v;
	snprintf(path, sizeof path, "%s/memory.events", id);
	if (read_knob(root->jobs_fd, path, &mev) == 0)
		keyed_u64(mev, "oom_kill", &st->oom_kills);
	return 0;
}

/* Removes dir/name and any child groups a job created below itself,
 * deepest first. */
static int rmdir_tree(int parent, const char *name)
{
	if (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno != EBUSY && errno != ENOTEMPTY)
		return -errno;
	int saved = errno;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -saved;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type == DT_DIR && strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			rmdir_tree(dirfd(d), de->d_name);
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return -errno;
}

int cgroup_job_remove(const struct cgroup_root *root, const char *id, unsigned timeout_ms,
		      struct err *err)
{
	if (!id_ok(id))
		return err_set(err, EINVAL, ERR_INTERNAL, "bad job id \"%s\"", id ? id : "");
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	bool killed = false;
	long sleep_ns = 500000;
	for (;;) {
		int r = rmdir_tree(root->jobs_fd, id);
		if (r == 0)
			return 0;
		if (r != -EBUSY && r != -ENOTEMPTY)
			return err_sys(err, -r, "remove cgroup %s/jobs/%s", root->path, id);
		if (!killed) {
			/* Leftovers (daemonized grandchildren) die with the
			 * job; cgroup.kill reaches every descendant group. */
			cgroup_job_kill(root, id, NULL);
			killed = true;
		}
		if (now_mono_ns() >= deadline)
			return err_set(err, EBUSY, ERR_INTERNAL,
				       "cgroup %s/jobs/%s still has processes after %u ms",
				       root->path, id, timeout_ms);
		/* Dying processes leave within milliseconds; a short growing
		 * sleep avoids both a busy loop and added latency. */
		struct timespec ts = {0, sleep_ns};
		nanosleep(&ts, NULL);
		if (sleep_ns < 20000000)
			sleep_ns *= 2;
	}
}

/* ---- io devices ---- */

static int cmp_dev(const void *a, const void *b)
{
	const struct io_device *x = a, *y = b;
	if (x->major != y->major)
		return x->major < y->major ? -1 : 1;
	return x->minor < y->minor ? -1 : x->minor > y->minor;
}

static void add_dev(struct io_device **devs, size_t *n, struct io_device d)
{
	for (size_t i = 0; i < *n; i++)
		if ((*devs)[i].major == d.major && (*devs)[i].minor == d.minor)
			return;
	*devs = xrealloc(*devs, (*n + 1) * sizeof **devs);
	(*devs)[(*n)++] = d;
}

int cgroup_default_io_devices(struct io_device **devs, size_t *n, struct err *err)
{
	*devs = NULL;
	*n = 0;
	DIR *d = opendir("/sys/block");
	if (!d)
		return err_sys(err, errno, "read /sys/block");
	int fd = dirfd(d);
	struct io_device *list = NULL;
	size_t count = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		if (name[0] == '.' || strncmp(name, "loop", 4) == 0 ||
		    strncmp(name, "ram", 3) == 0 || strncmp(name, "zram", 4) == 0)
			continue;
		/* /sys/block lists whole disks only (partitions live below
		 * them). */
		char path[300];
		snprintf(path, sizeof path, "%s/dev", name);
		_cleanup_free_ char *text = NULL;
		if (read_file_at(fd, path, 64, &text, NULL) < 0)
			continue;
		struct io_device dev;
		if (io_device_parse(text, strcspn(text, "\n"), &dev))
			add_dev(&list, &count, dev);
	}
	closedir(d);
	if (count)
		qsort(list, count, sizeof *list, cmp_dev);
	*devs = list;
	*n = count;
	return 0;
}

int cgroup_parse_io_devices(const char *s, struct io_device **devs, size_t *n, struct err *err)
{
	*devs = NULL;
	*n = 0;
	struct io_device *list = NULL;
	size_t count = 0;
	/* An empty value means "no devices" (io limits then fail clearly). */
	for (const char *p = s; p && *p;) {
		size_t len = strcspn(p, ",");
		struct io_device dev;
		if (!io_device_parse(p, len, &dev)) {
			free(list);
			return err_set(err, EINVAL, ERR_INVALID,
				       "-io_devices: bad device \"%.*s\" (expected MAJ:MIN, e.g. "
				       "8:0)",
				       (int)(len > 64 ? 64 : len), p);
		}
		add_dev(&list, &count, dev);
		p += len;
		if (*p == ',') {
			p++;
			if (*p == '\0') {
				free(list);
				return err_set(err, EINVAL, ERR_INVALID,
					       "-io_devices: trailing comma in \"%s\"", s);
			}
		}
	}
	*devs = list;
	*n = count;
	return 0;
}
