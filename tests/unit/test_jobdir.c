/* jobdir: the state directory's layout, the daemon lock, job directories
 * and the supervisor's lock, on a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "handoff.h"
#include "jobdir.h"
#include "jobspec.h"
#include "util.h"

static const char id[] = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

static int setup(void **state)
{
	char tmpl[] = "/tmp/test_jobdir.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	*state = xasprintf("%s/state", tmpl);
	return 0;
}

static int teardown(void **state)
{
	char *dir = *state;
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s/..'", dir);
	int r = system(cmd);
	(void)r;
	free(dir);
	return 0;
}

static void test_names(void **state)
{
	/* Every file has a distinct, plain name; the ones read whole are
	 * bounded, the spec by what fits a request. */
	for (int i = 0; i < JOBDIR_NFILES; i++) {
		assert_non_null(jobdir_files[i].name);
		assert_null(strchr(jobdir_files[i].name, '/'));
		for (int k = 0; k < i; k++)
			assert_string_not_equal(jobdir_files[i].name, jobdir_files[k].name);
	}
	assert_string_equal(jobdir_name(JOBDIR_SPEC), "spec");
	assert_string_equal(jobdir_name(JOBDIR_LOCK), "lock");
	assert_int_equal(jobdir_files[JOBDIR_SPEC].max, HANDOFF_REQUEST_MAX);
	assert_true(jobdir_files[JOBDIR_STATUS].max > 0);
	char rel[JOBDIR_REL_MAX], path[64];
	jobdir_rel(id, JOBDIR_STARTED, rel);
	assert_string_equal(rel, "01ARZ3NDEKTSV4RRFFQ69G5FAV/started");
	assert_int_equal(jobdir_fifo_path("/s", 42, path, sizeof path), 0);
	assert_string_equal(path, "/s/run/42");
	assert_int_equal(jobdir_fifo_path("/s", 42, path, 8), -ENAMETOOLONG);
	assert_int_equal(jobdir_path("/s", id, path, sizeof path), 0);
	assert_string_equal(path, "/s/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV");
}

static void test_root(void **state)
{
	const char *dir = *state;
	struct jobdir_root a, b;
	struct err err = {0};
	assert_int_equal(jobdir_root_open(dir, &a, &err), 0);
	/* A FIFO left by an earlier daemon is stale. */
	assert_int_equal(mkfifoat(a.run_fd, "7", 0600), 0);
	/* One daemon per state directory. */
	assert_int_equal(jobdir_root_open(dir, &b, &err), -EBUSY);
	assert_int_equal(err.kind, ERR_PRECONDITION);
	assert_int_equal(b.fd, -1);
	assert_null(b.path);
	jobdir_root_close(&a);
	jobdir_root_close(&a); /* idempotent */
	assert_int_equal(jobdir_root_open(dir, &b, &err), 0);
	assert_int_equal(faccessat(b.run_fd, "7", F_OK, 0), -1);
	assert_int_equal(faccessat(b.fd, "jobs", F_OK, 0), 0);
	jobdir_root_close(&b);
}

static void test_job_dir(void **state)
{
	const char *dir = *state;
	struct jobdir_root root;
	assert_int_equal(jobdir_root_open(dir, &root, NULL), 0);
	int fd = jobdir_create(root.jobs_fd, id);
	assert_true(fd >= 0);
	assert_int_equal(jobdir_create(root.jobs_fd, id), -EEXIST);
	assert_int_equal(write_file_atomic(fd, "status", "x", 1), 0);

	char *buf;
	size_t len;
	assert_int_equal(jobdir_read(root.jobs_fd, id, JOBDIR_STATUS, &buf, &len), 0);
	assert_int_equal(len, 1);
	free(buf);
	assert_int_equal(jobdir_read(root.jobs_fd, id, JOBDIR_STARTED, &buf, &len), -ENOENT);
	/* Bounded by the table. */
	size_t big = jobdir_files[JOBDIR_STATUS].max + 1;
	_cleanup_free_ char *junk = xcalloc(1, big);
	assert_int_equal(write_file_atomic(fd, "status", junk, big), 0);
	assert_int_equal(jobdir_read(root.jobs_fd, id, JOBDIR_STATUS, &buf, &len), -EFBIG);

	/* The supervisor's lock, seen from the daemon. */
	assert_false(jobdir_locked(root.jobs_fd, id));
	struct err err = {0};
	int lock = jobdir_lock(fd, &err);
	assert_true(lock >= 0);
	assert_true(jobdir_locked(root.jobs_fd, id));
	assert_int_equal(jobdir_lock(fd, &err), -EBUSY); /* a second supervisor */
	close(lock);
	assert_false(jobdir_locked(root.jobs_fd, id));

	int fd2 = jobdir_open_path(dir, id, &err);
	assert_true(fd2 >= 0);
	close(fd2);
	close(fd);
	jobdir_remove(root.jobs_fd, id);
	assert_int_equal(jobdir_open(root.jobs_fd, id), -ENOENT);
	assert_int_equal(jobdir_open_path(dir, id, &err), -ENOENT);
	assert_non_null(strstr(err.msg, id));
	jobdir_remove(root.jobs_fd, id); /* gone already: quiet */
	jobdir_root_close(&root);
}

static void test_status_space(void **state)
{
	const char *dir = *state;
	struct jobdir_root root;
	assert_int_equal(jobdir_root_open(dir, &root, NULL), 0);
	int fd = jobdir_create(root.jobs_fd, id);
	assert_true(fd >= 0);

	/* The reservation holds the longest status the codec can produce. */
	struct jobstatus big = {.end_ns = UINT64_MAX,
				.exited = true,
				.exit_code = INT32_MAX,
				.signal = INT32_MAX,
				.stopped = true,
				.oom_killed = true,
				.user_usec = UINT64_MAX,
				.system_usec = UINT64_MAX,
				.memory_peak = UINT64_MAX,
				.log_bytes = UINT64_MAX,
				.log_truncated = true};
	size_t len;
	_cleanup_free_ char *text = jobstatus_encode(&big, &len);
	assert_true(len <= jobdir_files[JOBDIR_STATUS].max);

	assert_int_equal(jobdir_status_reserve(fd), 0);
	struct stat st;
	assert_int_equal(fstatat(fd, jobdir_name(JOBDIR_RESERVE), &st, 0), 0);
	assert_int_equal(st.st_size, jobdir_files[JOBDIR_STATUS].max);
	assert_int_equal(faccessat(fd, jobdir_name(JOBDIR_STATUS), F_OK, 0), -1);

	/* Recorded into the reserved space, which becomes the status. */
	assert_int_equal(jobdir_status_write(fd, text, len), 0);
	char *got;
	size_t got_len;
	assert_int_equal(jobdir_read(root.jobs_fd, id, JOBDIR_STATUS, &got, &got_len), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, text, len);
	free(got);
	assert_int_equal(faccessat(fd, jobdir_name(JOBDIR_RESERVE), F_OK, 0), -1);

	/* Without a reservation (a supervisor of an older rund): a new file. */
	assert_int_equal(jobdir_status_write(fd, "short", 5), 0);
	assert_int_equal(jobdir_read(root.jobs_fd, id, JOBDIR_STATUS, &got, &got_len), 0);
	assert_int_equal(got_len, 5);
	free(got);
	/* Never more than a reader accepts. */
	size_t over = jobdir_files[JOBDIR_STATUS].max + 1;
	_cleanup_free_ char *junk = xcalloc(1, over);
	assert_int_equal(jobdir_status_write(fd, junk, over), -EFBIG);

	close(fd);
	jobdir_remove(root.jobs_fd, id);
	assert_int_equal(jobdir_open(root.jobs_fd, id), -ENOENT);
	jobdir_root_close(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_space, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
