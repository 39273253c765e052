/* uidclaim: one flock'ed file per live daemon's range. */
#include "uidclaim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobdir.h"
#include "uidpool.h"
#include "util.h"

/* mkdir -p; the last directory 0700 (nobody but root reads the claims). */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	for (char *p = path + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, last ? 0700 : 0755) < 0 && errno != EEXIST)
			return -errno;
		if (last)
			return 0;
		*p = '/';
	}
}

/* The claim named name, held by a live daemon: "pid N, state_dir PATH"
 * (its file's lines) for an error message. */
static void describe(int dfd, const char *name, char *buf, size_t cap)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(dfd, name, 4096, &text, &len) < 0 || len == 0) {
		snprintf(buf, cap, "unknown");
		return;
	}
	size_t n = 0;
	buf[0] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line && n < cap;
	     line = strtok_r(NULL, "\n", &save)) {
		int k = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", line);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}

/* The state directory claim name's file names (malloc'ed), or NULL. */
static char *claim_state_dir(int dfd, const char *name)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(dfd, name, 2 * PATH_MAX, &text, &len) < 0)
		return NULL;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "state_dir ", 10) == 0)
			return xstrdup(line + 10);
	return NULL;
}

/* Removes the stale claims in dfd and fails if a live one overlaps: a
 * daemon's, or, once it is gone, its jobs' (they outlive it, and keep
 * their uids) unless its state directory is state_dir, ours: we recover
 * them. */
static int scan(int dfd, uint32_t first, uint32_t last, const char *state_dir, struct err *err)
{
	int dup_fd = dup(dfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		int e = errno;
		if (dup_fd >= 0)
			close(dup_fd);
		return err_sys(err, e, "read the uid claims");
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		uint32_t a, b;
		if (de->d_name[0] == '.' || uidpool_parse_range(de->d_name, &a, &b, NULL) < 0)
			continue;
		/* O_NONBLOCK: a FIFO planted under a claim's name must not
		 * hang us with the directory locked; only regular files are
		 * claims. */
		_cleanup_close_ int fd =
			openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		struct stat sb;
		if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
			continue;
		bool overlaps = !(a > last || b < first);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* Nobody holds it: its daemon is gone. Its jobs? */
			_cleanup_free_ char *owner = claim_state_dir(dfd, de->d_name);
			if (!owner || !jobdir_any_locked(owner)) {
				unlinkat(dfd, de->d_name, 0);
				continue;
			}
			if (!overlaps || strcmp(owner, state_dir) == 0)
				continue;
			r = err_set(err, EBUSY, ERR_PRECONDITION,
				    "-job_uids %u-%u overlaps %u-%u, the range of a stopped rund "
				    "whose jobs still run (state_dir %s): two jobs could share one "
				    "uid; give each daemon its own range, or start rund on %s",
				    first, last, a, b, owner, owner);
			continue;
		}
		if (!overlaps)
			continue;
		char who[PATH_MAX + 64];
		describe(dfd, de->d_name, who, sizeof who);
		r = err_set(err, EBUSY, ERR_PRECONDITION,
			    "-job_uids %u-%u overlaps %u-%u, the range of another rund (%s): two "
			    "daemons could give two jobs one uid; give each its own range",
			    first, last, a, b, who);
	}
	closedir(d);
	return r;
}

static void claim_name(uint32_t first, uint32_t last, char name[static 32])
{
	snprintf(name, 32, "%u-%u", first, last);
}

int uidclaim_take(const char *dir, uint32_t first, uint32_t last, const char *state_dir,
		  struct err *err)
{
	int r = make_dirs(dir);
	if (r < 0)
		return err_sys(err, -r, "create %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_sys(err, errno, "open %s", dir);
	/* Held until we return (dfd's close): one claim at a time. */
	if (flock(dfd, LOCK_EX) < 0)
		return err_sys(err, errno, "lock %s", dir);
	if ((r = scan(dfd, first, last, state_dir, err)) < 0)
		return r;
	char name[32];
	claim_name(first, last, name);
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
			0600);
	if (fd < 0)
		return err_sys(err, errno, "create %s/%s", dir, name);
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return err_set(err, EEXIST, ERR_PRECONDITION,
			       "%s/%s is not a regular file: not a claim of rund's; remove it", dir,
			       name);
	}
	char text[PATH_MAX + 64];
	int n = snprintf(text, sizeof text, "pid %d\nstate_dir %s\n", (int)getpid(), state_dir);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 ||
	    (r = write_all(fd, text, (size_t)(n < (int)sizeof text ? n : (int)sizeof text - 1))) <
		    0) {
		int e = r < 0 ? -r : errno;
		close(fd);
		unlinkat(dfd, name, 0);
		return err_sys(err, e, "claim %s/%s", dir, name);
	}
	return fd;
}

void uidclaim_release(const char *dir, uint32_t first, uint32_t last, const char *state_dir, int fd)
{
	if (fd < 0)
		return;
	char name[32];
	claim_name(first, last, name);
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	/* Still ours: we hold its lock until the close below. Jobs that
	 * outlive us keep their uids: the file then tells the next claim. */
	if (!jobdir_any_locked(state_dir))
		unlink(path);
	close(fd);
}
