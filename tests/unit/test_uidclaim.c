/* Unit tests for uidclaim.c: a live claim refuses overlaps and names its
 * holder; disjoint ranges coexist; a claim whose holder is gone is stale
 * and removed by the next, unless its jobs still run; odd files under a
 * claim's name neither hang nor pass for claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobdir.h"
#include "uidclaim.h"
#include "util.h"

/* A fresh directory under /tmp (malloc'ed), and its removal. */
static char *make_tmp(void)
{
	char *tmp = xstrdup("/tmp/test_uidclaim.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	return tmp;
}

static void remove_tmp(char *tmp)
{
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", tmp);
	assert_int_equal(system(cmd), 0);
	free(tmp);
}

/* The daemon holding c is gone without releasing it (SIGKILL): its lock
 * goes, its file stays. */
static void die(struct uidclaim *c)
{
	close(c->fd);
	free(c->path);
	free(c->state_dir);
	*c = (struct uidclaim){.fd = -1};
}

static void test_claims(void **state)
{
	(void)state;
	char *tmp = make_tmp();
	_cleanup_free_ char *dir = xasprintf("%s/run/claims", tmp); /* made, parents too */
	struct err err;
	struct uidclaim a, b, c;

	assert_int_equal(uidclaim_take(dir, 70000, 70999, "/state/a", &a, &err), 0);
	assert_true(a.fd >= 0);
	_cleanup_free_ char *text = NULL;
	size_t len;
	_cleanup_free_ char *file = xasprintf("%s/70000-70999", dir);
	assert_string_equal(a.path, file);
	assert_int_equal(read_file_at(AT_FDCWD, file, 4096, &text, &len), 0);
	char want[128];
	snprintf(want, sizeof want, "pid %d\nstate_dir /state/a\n", (int)getpid());
	assert_string_equal(text, want);

	/* Overlapping at either end, or inside: refused, naming the holder. */
	static const uint32_t overlaps[][2] = {{69000, 70000}, {70999, 71999}, {70100, 70200}};
	for (size_t i = 0; i < sizeof overlaps / sizeof overlaps[0]; i++) {
		err_clear(&err);
		assert_int_equal(
			uidclaim_take(dir, overlaps[i][0], overlaps[i][1], "/state/b", &b, &err),
			-EBUSY);
		assert_int_equal(b.fd, -1);
		assert_non_null(strstr(err.msg, "70000-70999"));
		assert_non_null(strstr(err.msg, "/state/a"));
		char pid[32];
		snprintf(pid, sizeof pid, "pid %d,", (int)getpid());
		assert_non_null(strstr(err.msg, pid));
	}
	/* Disjoint: both live. */
	assert_int_equal(uidclaim_take(dir, 71000, 71999, "/state/b", &b, &err), 0);

	/* a's holder is gone: its file is stale, and a claim over it is
	 * taken, and the stale file removed. */
	die(&a);
	assert_int_equal(uidclaim_take(dir, 70500, 70600, "/state/c", &c, &err), 0);
	assert_int_equal(access(file, F_OK), -1);
	/* b is still live. */
	err_clear(&err);
	struct uidclaim d;
	assert_int_equal(uidclaim_take(dir, 71500, 71500, "/state/d", &d, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "71000-71999"));

	/* Released: its file goes with it. */
	_cleanup_free_ char *bfile = xstrdup(b.path);
	uidclaim_release(&b);
	assert_int_equal(b.fd, -1);
	assert_int_equal(access(bfile, F_OK), -1);
	uidclaim_release(&b); /* holds nothing now: a no-op */
	assert_int_equal(uidclaim_take(dir, 71500, 71500, "/state/d", &d, &err), 0);
	uidclaim_release(&d);
	uidclaim_release(&c);
	remove_tmp(tmp);
}

/* Files under a claim's name that are not regular files: nothing opens
 * them in a way that blocks (a FIFO would wait for a writer forever, with
 * the directory locked against every other daemon), and none is taken for
 * a claim. */
static void test_odd_files(void **state)
{
	(void)state;
	char *tmp = make_tmp();
	struct err err;
	struct uidclaim a;
	_cleanup_free_ char *fifo = xasprintf("%s/70000-70999", tmp);
	_cleanup_free_ char *dir = xasprintf("%s/72000-72999", tmp);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* A hang is a failure, not a stuck test run. */
	alarm(10);
	/* Overlapping both: neither is a live claim. */
	assert_int_equal(uidclaim_take(tmp, 69000, 73000, "/state/a", &a, &err), 0);
	die(&a);
	/* Under our own name: refused, saying why. */
	err_clear(&err);
	assert_true(uidclaim_take(tmp, 70000, 70999, "/state/a", &a, &err) < 0);
	assert_non_null(strstr(err.msg, "70000-70999"));
	err_clear(&err);
	assert_true(uidclaim_take(tmp, 72000, 72999, "/state/a", &a, &err) < 0);
	assert_non_null(strstr(err.msg, "72000-72999"));
	alarm(0);
	remove_tmp(tmp);
}

/* Jobs outlive their daemon, with their uids: its claim holds until the
 * last of its supervisors (the holder of a job's lock) is gone, against
 * every daemon but one on its own state directory. */
static void test_jobs_outlive_daemon(void **state)
{
	(void)state;
	char *tmp = make_tmp();
	_cleanup_free_ char *dir = xasprintf("%s/claims", tmp);
	_cleanup_free_ char *sd = xasprintf("%s/state", tmp);
	_cleanup_free_ char *jobs = xasprintf("%s/jobs", sd);
	const char *id = "01M8P28NN422NQCG1JMRGPXCTV";
	_cleanup_free_ char *job = xasprintf("%s/%s", jobs, id);
	assert_int_equal(mkdir(sd, 0700), 0);
	assert_int_equal(mkdir(jobs, 0700), 0);
	assert_int_equal(mkdir(job, 0700), 0);
	char rel[JOBDIR_REL_MAX];
	jobdir_rel(id, JOBDIR_LOCK, rel);
	_cleanup_free_ char *lock = xasprintf("%s/%s", jobs, rel);
	/* The job's supervisor. */
	int sup = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(sup >= 0);
	assert_int_equal(flock(sup, LOCK_EX | LOCK_NB), 0);

	struct err err;
	struct uidclaim a, b;
	assert_int_equal(uidclaim_take(dir, 70000, 70999, sd, &a, &err), 0);
	/* The daemon stops (cleanly, or killed: its lock is gone either
	 * way); its job runs on. */
	uidclaim_release(&a);
	err_clear(&err);
	assert_int_equal(uidclaim_take(dir, 70500, 70600, "/state/other", &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "70000-70999"));
	assert_non_null(strstr(err.msg, sd));
	/* A daemon on the same state directory recovers the job. */
	assert_int_equal(uidclaim_take(dir, 70000, 70999, sd, &a, &err), 0);
	die(&a);
	/* The job ends: its uids are free. */
	close(sup);
	assert_int_equal(uidclaim_take(dir, 70500, 70600, "/state/other", &b, &err), 0);
	_cleanup_free_ char *file = xasprintf("%s/70000-70999", dir);
	assert_int_equal(access(file, F_OK), -1);
	uidclaim_release(&b);
	remove_tmp(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_jobs_outlive_daemon),
		cmocka_unit_test(test_odd_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
