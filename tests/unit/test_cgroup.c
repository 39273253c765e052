/* Unit tests for cgroup.c's pure parts: mountinfo and /proc/self/cgroup
 * from fixtures (hybrid host, pure v2, systemd delegation), controller
 * lists, formatters, -io_devices parsing, limit checks, and stats read
 * from a fixture directory laid out like a job cgroup. */
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

#include "cgroup.h"
#include "util.h"

static char *fixture(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
	char *text = NULL;
	if (read_file_at(AT_FDCWD, path, 1 << 20, &text, NULL) < 0)
		fail_msg("cannot read fixture %s", path);
	return text;
}

static void expect_mount(const char *file, const char *want)
{
	char *text = fixture(file);
	char *mount = NULL, *root = NULL;
	assert_int_equal(cgroup_parse_mountinfo(text, &mount, &root), 0);
	assert_string_equal(mount, want);
	assert_string_equal(root, "/");
	free(mount);
	free(root);
	free(text);
}

static void test_mountinfo(void **state)
{
	(void)state;
	expect_mount("mountinfo.hybrid", "/sys/fs/cgroup/unified");
	expect_mount("mountinfo.v2", "/sys/fs/cgroup");
	expect_mount("mountinfo.systemd", "/sys/fs/cgroup");
	expect_mount("mountinfo.escaped", "/mnt/odd dir\tx\\y");

	char *text = fixture("mountinfo.none");
	char *mount = NULL, *root = NULL;
	assert_int_equal(cgroup_parse_mountinfo(text, &mount, &root), -ENOENT);
	assert_null(mount);
	free(text);
	assert_int_equal(cgroup_parse_mountinfo("", &mount, &root), -ENOENT);
	assert_int_equal(cgroup_parse_mountinfo("1 2 3 - cgroup2 x y\n", &mount, &root), -EBADMSG);
	assert_int_equal(cgroup_parse_mountinfo("1 2 3 x /cg - cgroup2 x y\n", &mount, &root),
			 -EBADMSG); /* a root that is not a path */
	assert_null(mount);
	/* No trailing newline on the last line. */
	assert_int_equal(cgroup_parse_mountinfo("9 1 0:9 / /cg rw - cgroup2 c rw", &mount, &root),
			 0);
	assert_string_equal(mount, "/cg");
	assert_string_equal(root, "/");
	free(mount);
	free(root);
	/* A bind mount of a subtree reports that subtree as its root. */
	assert_int_equal(cgroup_parse_mountinfo("9 1 0:9 /sub\\040tree /cg rw - cgroup2 c rw\n",
						&mount, &root),
			 0);
	assert_string_equal(mount, "/cg");
	assert_string_equal(root, "/sub tree");
	free(mount);
	free(root);
}

static void test_self(void **state)
{
	(void)state;
	struct {
		const char *file, *want;
	} cases[] = {
		{"cgroup.hybrid", "/"},
		{"cgroup.v2", "/"},
		{"cgroup.systemd", "/system.slice/rund.service"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = fixture(cases[i].file);
		char *path = NULL;
		assert_int_equal(cgroup_parse_self(text, &path), 0);
		assert_string_equal(path, cases[i].want);
		free(path);
		free(text);
	}
	char *text = fixture("cgroup.v1only");
	char *path = NULL;
	assert_int_equal(cgroup_parse_self(text, &path), -ENOENT);
	free(text);
	assert_int_equal(cgroup_parse_self("0::\n", &path), -EBADMSG);
	assert_int_equal(cgroup_parse_self("0::relative\n", &path), -EBADMSG);
	assert_int_equal(cgroup_parse_self("", &path), -ENOENT);
}

/* cgroup.procs as the kernel writes it: the holder the daemon moves out
 * of rund-jobs.service's cgroup (-cgroup_daemon_stays). */
static void test_procs(void **state)
{
	(void)state;
	int pids[3] = {0};
	assert_int_equal(cgroup_parse_procs("", pids, 3), 0);
	assert_int_equal(cgroup_parse_procs("412\n", pids, 3), 1);
	assert_int_equal(pids[0], 412);
	assert_int_equal(cgroup_parse_procs("7\n4194304\n19", pids, 3), 3);
	assert_int_equal(pids[0], 7);
	assert_int_equal(pids[1], 4194304);
	assert_int_equal(pids[2], 19);
	/* More than fit: the count says so, nothing is written past cap. */
	int few[2] = {0};
	assert_int_equal(cgroup_parse_procs("1\n2\n3\n4\n", few, 1), 4);
	assert_int_equal(few[0], 1);
	assert_int_equal(few[1], 0);
	assert_int_equal(cgroup_parse_procs("12\n\n13\n", pids, 3), -EBADMSG);
	assert_int_equal(cgroup_parse_procs("x\n", pids, 3), -EBADMSG);
	assert_int_equal(cgroup_parse_procs("0\n", pids, 3), -EBADMSG);
	assert_int_equal(cgroup_parse_procs("-5\n", pids, 3), -EBADMSG);
	assert_int_equal(cgroup_parse_procs("99999999999\n", pids, 3), -EBADMSG);
}

static void test_controllers(void **state)
{
	(void)state;
	assert_int_equal(cgroup_parse_controllers("hugetlb\n"), 0);
	assert_int_equal(cgroup_parse_controllers(""), 0);
	/* Every limit's controller listed: every limit's bit. */
	assert_int_equal(cgroup_parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
			 LIMIT_BIT(LIMIT_COUNT) - 1);
	assert_int_equal(cgroup_parse_controllers("cpuset memory"), LIMIT_BIT(LIMIT_MEMORY));
	/* One controller serves several limits. */
	assert_int_equal(cgroup_parse_controllers("io"),
			 LIMIT_BIT(LIMIT_RBPS) | LIMIT_BIT(LIMIT_WBPS) | LIMIT_BIT(LIMIT_RIOPS) |
				 LIMIT_BIT(LIMIT_WIOPS));
	assert_int_equal(cgroup_parse_controllers("pids\n"), LIMIT_BIT(LIMIT_PIDS));
	assert_int_equal(cgroup_parse_controllers("cpu\tpids"),
			 LIMIT_BIT(LIMIT_CPU) | LIMIT_BIT(LIMIT_PIDS));
	/* Prefixes must not match. */
	assert_int_equal(cgroup_parse_controllers("cpuset cpuacct iox"), 0);
}

static void test_format(void **state)
{
	(void)state;
	char buf[128];
	assert_int_equal(cgroup_format_value(LIMIT_CPU, 50000, buf, sizeof buf), 12);
	assert_string_equal(buf, "50000 100000");
	assert_int_equal(cgroup_format_value(LIMIT_CPU, 50000, buf, 12), -ENOSPC);
	assert_int_equal(cgroup_format_value(LIMIT_CPU, 50000, buf, 13), 12);
	/* Lone values without a suffix: the number alone. */
	assert_int_equal(cgroup_format_value(LIMIT_PIDS, 64, buf, sizeof buf), 2);
	assert_string_equal(buf, "64");
	assert_int_equal(cgroup_format_value(LIMIT_MEMORY, 1048576, buf, sizeof buf), 7);
	assert_string_equal(buf, "1048576");
	assert_int_equal(cgroup_format_value(LIMIT_PIDS, 64, buf, 2), -ENOSPC);

	struct job_limits lim = {0};
	struct io_device dev = {8, 16};
	lim.has[LIMIT_RBPS] = true;
	lim.value[LIMIT_RBPS] = 1048576;
	lim.has[LIMIT_WIOPS] = true;
	lim.value[LIMIT_WIOPS] = 100;
	int n = cgroup_format_device_line("io.max", &dev, &lim, buf, sizeof buf);
	assert_string_equal(buf, "8:16 rbps=1048576 wiops=100");
	assert_int_equal(n, (int)strlen(buf));
	lim.has[LIMIT_WBPS] = lim.has[LIMIT_RIOPS] = true;
	lim.value[LIMIT_WBPS] = UINT64_MAX;
	lim.value[LIMIT_RIOPS] = 1;
	cgroup_format_device_line("io.max", &dev, &lim, buf, sizeof buf);
	assert_string_equal(buf, "8:16 rbps=1048576 wbps=18446744073709551615 riops=1 wiops=100");
	/* CPU, memory and pids limits never leak into io.max. */
	struct job_limits only_cpu = {0};
	only_cpu.has[LIMIT_CPU] = only_cpu.has[LIMIT_MEMORY] = only_cpu.has[LIMIT_PIDS] = true;
	only_cpu.value[LIMIT_CPU] = 5;
	only_cpu.value[LIMIT_PIDS] = 7;
	cgroup_format_device_line("io.max", &dev, &only_cpu, buf, sizeof buf);
	assert_string_equal(buf, "8:16");
	for (size_t cap = 0; cap < 20; cap++)
		assert_int_equal(cgroup_format_device_line("io.max", &dev, &lim, buf, cap),
				 -ENOSPC);
}

static void test_io_devices(void **state)
{
	(void)state;
	struct io_device *d = NULL;
	size_t n = 99;
	struct err e;
	assert_int_equal(cgroup_parse_io_devices("8:0,254:16", &d, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(d[0].major, 8);
	assert_int_equal(d[0].minor, 0);
	assert_int_equal(d[1].major, 254);
	assert_int_equal(d[1].minor, 16);
	free(d);
	assert_int_equal(cgroup_parse_io_devices("8:0,8:0", &d, &n, &e), 0);
	assert_int_equal(n, 1);
	free(d);
	assert_int_equal(cgroup_parse_io_devices("", &d, &n, &e), 0);
	assert_int_equal(n, 0);
	free(d);

	const char *bad[] = {"8",      "8:",
			     ":0",     "8:0,",
			     ",8:0",   "8:0,,9:0",
			     "a:b",    "8:-1",
			     "4096:0", "8:1048576",
			     "8:0 ",   " 8:0",
			     "8:0:1",  "99999999999999999999:0"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err_clear(&e);
		d = (struct io_device *)&e; /* must be reset */
		int r = cgroup_parse_io_devices(bad[i], &d, &n, &e);
		if (r != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_null(d);
		assert_int_equal(n, 0);
		assert_int_equal(e.kind, ERR_INVALID);
		assert_non_null(strstr(e.msg, "-io_devices"));
	}
	cgroup_parse_io_devices("8:0,x:1", &d, &n, &e);
	assert_non_null(strstr(e.msg, "\"x:1\""));

	/* The host's own list: whatever it is, no loop/ram/zram majors
	 * (7, 1) and sorted. */
	if (cgroup_default_io_devices(&d, &n, &e) == 0) {
		for (size_t i = 0; i < n; i++) {
			assert_int_not_equal(d[i].major, 7);
			assert_int_not_equal(d[i].major, 1);
			if (i)
				assert_true(d[i - 1].major < d[i].major ||
					    (d[i - 1].major == d[i].major &&
					     d[i - 1].minor < d[i].minor));
		}
		free(d);
	}
}

static void test_check_limits(void **state)
{
	(void)state;
	struct cgroup_root root = {.path = "/sys/fs/cgroup/unified/rund",
				   .dirfd = -1,
				   .jobs_fd = -1,
				   .controllers = 0};
	struct job_limits lim = {0};
	struct err e;
	assert_int_equal(cgroup_check_limits(&root, &lim, &e), 0);
	lim.has[LIMIT_MEMORY] = true;
	lim.value[LIMIT_MEMORY] = 1 << 20;
	assert_true(cgroup_check_limits(&root, &lim, &e) < 0);
	assert_int_equal(e.kind, ERR_PRECONDITION);
	assert_string_equal(e.msg, "memory controller is not available in the cgroup v2 "
				   "hierarchy at /sys/fs/cgroup/unified/rund (needed for "
				   "max_memory_usage)");
	root.controllers = cgroup_parse_controllers("memory");
	assert_int_equal(cgroup_check_limits(&root, &lim, &e), 0);
	lim.has[LIMIT_RIOPS] = true;
	lim.value[LIMIT_RIOPS] = 10;
	assert_true(cgroup_check_limits(&root, &lim, &e) < 0);
	assert_non_null(strstr(e.msg, "io controller"));
	assert_non_null(strstr(e.msg, "max_riops"));
	root.controllers |= cgroup_parse_controllers("io");
	lim.has[LIMIT_CPU] = true;
	assert_true(cgroup_check_limits(&root, &lim, &e) < 0);
	assert_non_null(strstr(e.msg, "cpu controller"));
	root.controllers |= cgroup_parse_controllers("cpu");
	assert_int_equal(cgroup_check_limits(&root, &lim, &e), 0);
	/* pids.max needs the pids controller, named with the field. */
	lim.has[LIMIT_PIDS] = true;
	lim.value[LIMIT_PIDS] = 64;
	assert_true(cgroup_check_limits(&root, &lim, &e) < 0);
	assert_int_equal(e.kind, ERR_PRECONDITION);
	assert_string_equal(e.msg, "pids controller is not available in the cgroup v2 "
				   "hierarchy at /sys/fs/cgroup/unified/rund (needed for "
				   "max_pids)");
	root.controllers |= cgroup_parse_controllers("pids");
	assert_int_equal(cgroup_check_limits(&root, &lim, &e), 0);
}

static void test_stats_fixture(void **state)
{
	(void)state;
	struct cgroup_root root = {.path = FIXTURES "/cgroup_root", .dirfd = -1};
	root.jobs_fd = open(FIXTURES "/cgroup_root/jobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root.jobs_fd >= 0);
	struct cgroup_stats st;
	/* Memory files are read only where the memory controller is on. */
	assert_int_equal(cgroup_job_stats(&root, "01ARYZ6S41TSV4RRFFQ69G5FAV", &st), 0);
	assert_int_equal(st.user_usec, 1000);
	assert_int_equal(st.memory_current, 0);
	assert_int_equal(st.oom_kills, 0);
	root.controllers = cgroup_parse_controllers("cpu memory");
	assert_int_equal(cgroup_job_stats(&root, "01ARYZ6S41TSV4RRFFQ69G5FAV", &st), 0);
	assert_int_equal(st.user_usec, 1000);
	assert_int_equal(st.system_usec, 500);
	assert_int_equal(st.memory_current, 8192000);
	assert_int_equal(st.memory_peak, 16384000);
	assert_int_equal(st.oom_kills, 1);

	/* A hybrid host's group: no memory files at all. */
	assert_int_equal(cgroup_job_stats(&root, "01ARYZ6S41TSV4RRFFQ69G5FAW", &st), 0);
	assert_int_equal(st.user_usec, 4);
	assert_int_equal(st.system_usec, 3);
	assert_int_equal(st.memory_current, 0);
	assert_int_equal(st.memory_peak, 0);
	assert_int_equal(st.oom_kills, 0);

	assert_int_equal(cgroup_job_stats(&root, "01ARYZ6S41TSV4RRFFQ69G5FAX", &st), -ENOENT);
	assert_int_equal(cgroup_job_stats(&root, "..", &st), -EINVAL);
	assert_int_equal(cgroup_job_stats(&root, "a/b", &st), -EINVAL);
	close(root.jobs_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo),     cmocka_unit_test(test_self),
		cmocka_unit_test(test_controllers),   cmocka_unit_test(test_format),
		cmocka_unit_test(test_io_devices),    cmocka_unit_test(test_check_limits),
		cmocka_unit_test(test_stats_fixture), cmocka_unit_test(test_procs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
