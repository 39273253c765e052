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

/* What claim name's file says: its daemon's pid and state directory
 * (malloc'ed; NULL for a line it lacks, or all of them for a file that
 * cannot be read). */
static void read_claim(int dfd, const char *name, char **pid, char **state_dir)
{
	*pid = *state_dir = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(dfd, name, 2 * PATH_MAX, &text, &len) < 0)
		return;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "pid ", 4) == 0 && !*pid)
			*pid = xstrdup(line + 4);
		else if (strncmp(line, "state_dir ", 10) == 0 && !*state_dir)
			*state_dir = xstrdup(line + 10);
	}
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
		_cleanup_free_ char *pid = NULL, *owner = NULL;
		read_claim(dfd, de->d_name, &pid, &owner);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* Nobody holds it: its daemon is gone. Its jobs? */
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
		r = err_set(err, EBUSY, ERR_PRECONDITION,
			    "-job_uids %u-%u overlaps %u-%u, the range of another rund (pid %s, "
			    "state_dir %s): two daemons could give two jobs one uid; give each its "
			    "own range",
			    first, last, a, b, pid ? pid : "unknown", owner ? owner : "unknown");
	}
	closedir(d);
	return r;
}

int uidclaim_take(const char *dir, uint32_t first, uint32_t last, const char *state_dir,
		  struct uidclaim *out, struct err *err)
{
	*out = (struct uidclaim){.fd = -1};
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
	snprintf(name, sizeof name, "%u-%u", first, last);
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
	_cleanup_free_ char *text = xasprintf("pid %d\nstate_dir %s\n", (int)getpid(), state_dir);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || (r = write_all(fd, text, strlen(text))) < 0) {
		int e = r < 0 ? -r : errno;
		close(fd);
		unlinkat(dfd, name, 0);
		return err_sys(err, e, "claim %s/%s", dir, name);
	}
	*out = (struct uidclaim){
		.fd = fd, .path = xasprintf("%s/%s", dir, name), .state_dir = xstrdup(state_dir)};
	return 0;
}

void uidclaim_release(struct uidclaim *c)
{
	if (c->fd < 0)
		return;
	/* Still ours: we hold its lock until the close below. Jobs that
	 * outlive us keep their uids: the file then tells the next claim. */
	if (!jobdir_any_locked(c->state_dir))
		unlink(c->path);
	close(c->fd);
	free(c->path);
	free(c->state_dir);
	*c = (struct uidclaim){.fd = -1};
}
