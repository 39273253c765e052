/* jobdir: the state directory's layout. See jobdir.h. */
#include "jobdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handoff.h"
#include "util.h"

#define SMALL_FILE_MAX 4096

const struct jobdir_file_info jobdir_files[JOBDIR_NFILES] = {
	[JOBDIR_SPEC] = {"spec", HANDOFF_REQUEST_MAX},
	[JOBDIR_STARTED] = {"started", SMALL_FILE_MAX},
	[JOBDIR_STATUS] = {"status", SMALL_FILE_MAX},
	[JOBDIR_LOG] = {"log", 0},
	[JOBDIR_LOCK] = {"lock", 0},
	[JOBDIR_STOP] = {"stop", 0},
	[JOBDIR_RESERVE] = {"status-space", 0},
	[JOBDIR_LOGPOS] = {"logpos", 0},
};

static const char jobs_name[] = "jobs", run_name[] = "run", lock_name[] = "daemon.lock";

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)

void jobdir_rel(const char *id, enum jobdir_file f, char out[JOBDIR_REL_MAX])
{
	snprintf(out, JOBDIR_REL_MAX, "%s/%s", id, jobdir_name(f));
}

void jobdir_fifo_name(unsigned n, char out[JOBDIR_FIFO_NAME_MAX])
{
	snprintf(out, JOBDIR_FIFO_NAME_MAX, "%u", n);
}

int jobdir_fifo_path(const char *state_dir, unsigned n, char *out, size_t cap)
{
	int len = snprintf(out, cap, "%s/%s/%u", state_dir, run_name, n);
	return len < 0 || (size_t)len >= cap ? -ENAMETOOLONG : 0;
}

/* mkdirat + open, tolerating an existing directory. */
static int subdir(struct jobdir_root *root, const char *name, int flags, struct err *err)
{
	if (mkdirat(root->fd, name, 0700) < 0 && errno != EEXIST)
		return err_sys(err, errno, "create %s/%s", root->path, name);
	int fd = openat(root->fd, name, flags);
	if (fd < 0)
		return err_sys(err, errno, "open %s/%s", root->path, name);
	return fd;
}

/* One daemon per state directory: a second one would reap the first's
 * FIFOs and race it on every job. The lock dies with the daemon. */
static int lock_root(struct jobdir_root *root, struct err *err)
{
	root->lock_fd =
		openat(root->fd, lock_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (root->lock_fd < 0)
		return err_sys(err, errno, "open %s/%s", root->path, lock_name);
	if (flock(root->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return err_set(err, EBUSY, ERR_PRECONDITION,
				       "another rund already serves the state directory %s",
				       root->path);
		return err_sys(err, errno, "lock %s/%s", root->path, lock_name);
	}
	return 0;
}

static int empty_run_dir(struct jobdir_root *root, struct err *err)
{
	int fd = dup(root->run_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return err_sys(err, e, "read %s/%s", root->path, run_name);
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(root->run_fd, e->d_name, 0);
	closedir(d);
	return 0;
}

int jobdir_root_open(const char *path, struct jobdir_root *root, struct err *err)
{
	*root = (struct jobdir_root){
		.path = xstrdup(path), .fd = -1, .jobs_fd = -1, .run_fd = -1, .lock_fd = -1};
	int r = 0;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		r = err_sys(err, errno, "create state directory %s", path);
	else if ((root->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = err_sys(err, errno, "open state directory %s", path);
	else if ((root->jobs_fd =
			  subdir(root, jobs_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, err)) < 0)
		r = root->jobs_fd;
	else if ((r = lock_root(root, err)) < 0)
		;
	else if ((root->run_fd = subdir(root, run_name, DIR_FLAGS, err)) < 0)
		r = root->run_fd;
	else
		r = empty_run_dir(root, err);
	if (r < 0)
		jobdir_root_close(root);
	return r;
}

void jobdir_root_close(struct jobdir_root *root)
{
	closep(&root->run_fd);
	closep(&root->lock_fd);
	closep(&root->jobs_fd);
	closep(&root->fd);
	root->run_fd = root->lock_fd = root->jobs_fd = root->fd = -1;
	free(root->path);
	root->path = NULL;
}

int jobdir_create(int jobs_fd, const char *id)
{
	if (mkdirat(jobs_fd, id, 0700) < 0)
		return -errno;
	return jobdir_open(jobs_fd, id);
}

int jobdir_open(int jobs_fd, const char *id)
{
	int fd = openat(jobs_fd, id, DIR_FLAGS);
	return fd < 0 ? -errno : fd;
}

int jobdir_path(const char *state_dir, const char *id, char *out, size_t cap)
{
	int len = snprintf(out, cap, "%s/%s/%s", state_dir, jobs_name, id);
	return len < 0 || (size_t)len >= cap ? -ENAMETOOLONG : 0;
}

int jobdir_open_path(const char *state_dir, const char *id, struct err *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/%s/%s", state_dir, jobs_name, id);
	int fd = open(dir, DIR_FLAGS);
	if (fd < 0)
		return err_sys(err, errno, "open job directory %s", dir);
	return fd;
}

void jobdir_remove(int jobs_fd, const char *id)
{
	int fd = openat(jobs_fd, id, DIR_FLAGS);
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

int jobdir_read(int jobs_fd, const char *id, enum jobdir_file f, char **out, size_t *len)
{
	char path[JOBDIR_REL_MAX];
	jobdir_rel(id, f, path);
	return read_file_at(jobs_fd, path, jobdir_files[f].max, out, len);
}

/* The space is written, not fallocate()d: overwriting written blocks needs
 * no allocation on any filesystem that overwrites in place, while an
 * unwritten extent must still be converted (ext4 may need a metadata block
 * for that). */
int jobdir_status_reserve(int dirfd)
{
	const char *name = jobdir_name(JOBDIR_RESERVE);
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	_cleanup_free_ char *zeros = xcalloc(1, jobdir_files[JOBDIR_STATUS].max);
	int r = write_all(fd, zeros, jobdir_files[JOBDIR_STATUS].max);
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}

/* pwrite at 0 until len bytes are written. */
static int pwrite_all(int fd, const char *p, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = pwrite(fd, p + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

int jobdir_status_write(int dirfd, const char *text, size_t len)
{
	if (len > jobdir_files[JOBDIR_STATUS].max)
		return -EFBIG;
	const char *space = jobdir_name(JOBDIR_RESERVE);
	_cleanup_close_ int fd = openat(dirfd, space, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return write_file_atomic(dirfd, jobdir_name(JOBDIR_STATUS), text, len);
	if (fd < 0)
		return -errno;
	/* Shrinking and renaming allocate nothing; the name is not yet
	 * "status", so no reader sees the file half written. */
	int r = pwrite_all(fd, text, len);
	if (r == 0 && ftruncate(fd, (off_t)len) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, space, dirfd, jobdir_name(JOBDIR_STATUS)) < 0)
		r = -errno;
	return r;
}

int jobdir_lock(int dirfd, struct err *err)
{
	_cleanup_close_ int fd = openat(dirfd, jobdir_name(JOBDIR_LOCK),
					O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_sys(err, errno, "open lock file");
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return err_set(err, EBUSY, ERR_INTERNAL,
				       "another supervisor holds this job's lock");
		return err_sys(err, errno, "lock job directory");
	}
	return steal_fd(&fd);
}

bool jobdir_has(int jobs_fd, const char *id, enum jobdir_file f)
{
	char path[JOBDIR_REL_MAX];
	jobdir_rel(id, f, path);
	return faccessat(jobs_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

bool jobdir_locked(int jobs_fd, const char *id)
{
	char path[JOBDIR_REL_MAX];
	jobdir_rel(id, JOBDIR_LOCK, path);
	_cleanup_close_ int fd = openat(jobs_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return false;
	}
	return errno == EWOULDBLOCK;
}

bool jobdir_any_locked(const char *path)
{
	_cleanup_free_ char *jobs = xasprintf("%s/%s", path, jobs_name);
	int fd = open(jobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	bool any = false;
	struct dirent *de;
	while (!any && (de = readdir(d)))
		any = strlen(de->d_name) == ULID_LEN && jobdir_locked(fd, de->d_name);
	closedir(d);
	return any;
}
