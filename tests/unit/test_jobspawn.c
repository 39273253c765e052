/* jobspawn: the exec plan and the child between clone3 and execve, run
 * for real in this process's own cgroup (cgroup_fd -1). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "handoff.h"
#include "jobspawn.h"
#include "util.h"

static void test_plan(void **state)
{
	char *argv[] = {(char *)"sh", (char *)"-c", (char *)"true", NULL};
	struct jobspawn_plan p;
	jobspawn_plan_init(&p, argv);
	/* One candidate per PATH directory, in order. */
	size_t n = 0;
	while (p.paths[n])
		n++;
	assert_int_equal(n, 6);
	assert_string_equal(p.paths[0], "/usr/local/sbin/sh");
	assert_string_equal(p.paths[5], "/bin/sh");
	assert_string_equal(p.envp[0], "PATH=" HANDOFF_PATH);
	assert_null(p.envp[3]);
	assert_int_equal(p.stdout_fd, -1);
	jobspawn_plan_free(&p);
	jobspawn_plan_free(&p);

	/* Extra entries replace a default in place or are appended. */
	jobspawn_plan_init(&p, argv);
	char *env[] = {(char *)"HOME=/work", (char *)"A=1", (char *)"HOMEX=2", (char *)"A=3=4"};
	jobspawn_plan_env(&p, env, 4);
	assert_string_equal(p.envp[0], "PATH=" HANDOFF_PATH);
	assert_string_equal(p.envp[1], "HOME=/work");
	assert_string_equal(p.envp[2], "LANG=C.UTF-8");
	assert_string_equal(p.envp[3], "A=3=4");
	assert_string_equal(p.envp[4], "HOMEX=2");
	assert_null(p.envp[5]);
	assert_string_equal(p.cwd, "/");
	jobspawn_plan_free(&p);

	char *abs[] = {(char *)"./x/y", NULL};
	jobspawn_plan_init(&p, abs);
	assert_string_equal(p.paths[0], "./x/y");
	assert_null(p.paths[1]);
	jobspawn_plan_free(&p);
}

/* Runs argv in cwd (NULL: the default) with stdout a pipe; returns what
 * it printed and its status. */
static int run_in(const char *cwd, char **argv, char *out, size_t cap, int *wstatus,
		  struct err *err)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct jobspawn_plan plan;
	jobspawn_plan_init(&plan, argv);
	if (cwd)
		plan.cwd = cwd;
	plan.stdin_fd = plan.stderr_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	plan.stdout_fd = p[1];
	struct jobspawn_child c = {0};
	int r = jobspawn_start(&plan, &c, err);
	close(plan.stdin_fd);
	close(p[1]);
	jobspawn_plan_free(&plan);
	size_t n = 0;
	ssize_t k;
	while (n < cap - 1 && (k = read(p[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(p[0]);
	if (r == 0) {
		assert_int_equal(waitpid(c.pid, wstatus, 0), c.pid);
		close(c.pidfd);
	}
	return r;
}

static int run(char **argv, char *out, size_t cap, int *wstatus, struct err *err)
{
	return run_in(NULL, argv, out, cap, wstatus, err);
}

static void test_cwd(void **state)
{
	char out[256];
	int ws;
	struct err err = {0};
	char *pwd[] = {(char *)"pwd", NULL};
	assert_int_equal(run_in("/usr/bin", pwd, out, sizeof out, &ws, &err), 0);
	assert_string_equal(out, "/usr/bin\n");
	/* A directory that is not there: a precondition naming it, not an
	 * exec failure of the program. */
	err_clear(&err);
	assert_int_equal(run_in("/rund-test-no-such-dir", pwd, out, sizeof out, &ws, &err),
			 -ENOENT);
	assert_int_equal(err.kind, ERR_PRECONDITION);
	assert_non_null(strstr(err.msg, "cwd \"/rund-test-no-such-dir\""));
	assert_null(strstr(err.msg, "exec"));
}

static void test_exec_ok_and_pristine(void **state)
{
	/* What the job inherits must not be ours: block and ignore a few
	 * signals and raise our fd limit's use, then look from inside. */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* grep itself, not through a shell: dash clears the mask it got. */
	char *argv[] = {(char *)"grep", (char *)"-E", (char *)"^Sig(Blk|Ign)",
			(char *)"/proc/self/status", NULL};
	char out[512];
	int ws;
	struct err err = {0};
	assert_int_equal(run(argv, out, sizeof out, &ws, &err), 0);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	assert_non_null(strstr(out, "SigBlk:\t0000000000000000\n"));
	assert_non_null(strstr(out, "SigIgn:\t0000000000000000\n"));

	/* As the daemon does: a raised descriptor limit, not for the job. */
	struct rlimit raised;
	getrlimit(RLIMIT_NOFILE, &raised);
	if (raised.rlim_max > 4096)
		raised.rlim_cur = 4096;
	setrlimit(RLIMIT_NOFILE, &raised);
	char *sh[] = {(char *)"sh", (char *)"-c", (char *)"ulimit -n; pwd; echo \"$PATH\"", NULL};
	assert_int_equal(run(sh, out, sizeof out, &ws, &err), 0);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	char want[32];
	snprintf(want, sizeof want, "%llu\n/\n",
		 (unsigned long long)(rl.rlim_cur > 1024 ? 1024 : rl.rlim_cur));
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, HANDOFF_PATH "\n"));
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static void test_exec_errors(void **state)
{
	char out[64];
	int ws;
	struct err err = {0};
	char *missing[] = {(char *)"rund-test-no-such-program", NULL};
	assert_int_equal(run(missing, out, sizeof out, &ws, &err), -ENOENT);
	assert_int_equal(err.kind, ERR_NOT_FOUND);
	assert_non_null(strstr(err.msg, "rund-test-no-such-program"));

	/* A file without exec permission: EACCES, a precondition. */
	char tmpl[] = "/tmp/test_jobspawn.XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	close(fd);
	char *noexec[] = {tmpl, NULL};
	err_clear(&err);
	assert_int_equal(run(noexec, out, sizeof out, &ws, &err), -EACCES);
	assert_int_equal(err.kind, ERR_PRECONDITION);
	unlink(tmpl);

	assert_int_equal(jobspawn_exec_kind(E2BIG), ERR_EXHAUSTED);
	assert_int_equal(jobspawn_exec_kind(ENOEXEC), ERR_PRECONDITION);
	assert_int_equal(jobspawn_exec_kind(EIO), ERR_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_exec_ok_and_pristine),
		cmocka_unit_test(test_exec_errors),
		cmocka_unit_test(test_cwd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
