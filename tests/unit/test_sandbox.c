/* Unit tests for sandbox.c: namespace lists, policy checks, and the plan
 * (which steps, in which order) for the default, -job_network none, -rootfs
 * and -job_user root. The steps themselves run in the integration and
 * kernel lanes (tests/integration/test_isolation.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"
#include "sys.h"
#include "util.h"

static void test_namespaces_parse_and_format(void **state)
{
	(void)state;
	struct err err;
	unsigned ns;
	char buf[128];
	assert_int_equal(sandbox_parse_namespaces("all", &ns, &err), 0);
	assert_int_equal(ns, SANDBOX_NS_DEFAULT);
	sandbox_format_namespaces(ns, buf, sizeof buf);
	assert_string_equal(buf, "pid,mount,ipc,uts,cgroup");
	assert_int_equal(sandbox_parse_namespaces("none", &ns, &err), 0);
	assert_int_equal(ns, 0);
	sandbox_format_namespaces(ns, buf, sizeof buf);
	assert_string_equal(buf, "none");
	assert_int_equal(sandbox_parse_namespaces("mount,pid", &ns, &err), 0);
	assert_int_equal(ns, SANDBOX_NS_MOUNT | SANDBOX_NS_PID);

	static const char *const bad[] = {"", "pid,", "pids", "net", "pid,,mount", "user"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err_clear(&err);
		assert_int_equal(sandbox_parse_namespaces(bad[i], &ns, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "namespace"));
	}
}

static struct sandbox_policy policy(void)
{
	struct sandbox_policy p;
	memset(&p, 0, sizeof p);
	p.uid = p.gid = 1900000001;
	p.namespaces = SANDBOX_NS_DEFAULT;
	return p;
}

static void test_policy_check(void **state)
{
	(void)state;
	struct err err;
	struct sandbox_policy p = policy();
	assert_int_equal(sandbox_policy_check(&p, &err), 0);

	static const char *const refused[] = {"/", "/etc", "/usr", "/var", "relative/dir"};
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
		p.hide[0] = (char *)refused[i];
		p.n_hide = 1;
		err_clear(&err);
		assert_int_equal(sandbox_policy_check(&p, &err), -EINVAL);
		assert_non_null(strstr(err.msg, refused[i]));
	}
	static const char *const fine[] = {"/etc/rund", "/var/lib/rund", "/srv/tls", "/usrx"};
	for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
		p.hide[0] = (char *)fine[i];
		assert_int_equal(sandbox_policy_check(&p, &err), 0);
	}
	p.n_hide = 0;

	p.hide[0] = (char *)"/";
	p.n_hide = 1;
	p.root = true; /* root is the explicit opt-out: nothing to check */
	assert_int_equal(sandbox_policy_check(&p, &err), 0);
}

static void test_rootfs_check(void **state)
{
	(void)state;
	struct err err;
	char dir[] = "/tmp/rund-test-rootfs.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sandbox_policy p = policy();
	p.rootfs = dir;
	err_clear(&err);
	assert_int_equal(sandbox_policy_check(&p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "proc/"));
	static const char *const sub[] = {"proc", "dev", "tmp"};
	for (size_t i = 0; i < 3; i++) {
		_cleanup_free_ char *d = xasprintf("%s/%s", dir, sub[i]);
		assert_int_equal(mkdir(d, 0755), 0);
	}
	assert_int_equal(sandbox_policy_check(&p, &err), 0);
	p.rootfs = (char *)"/";
	assert_int_equal(sandbox_policy_check(&p, &err), -EINVAL);
	for (size_t i = 0; i < 3; i++) {
		_cleanup_free_ char *d = xasprintf("%s/%s", dir, sub[i]);
		rmdir(d);
	}
	rmdir(dir);
}

/* The op sequence of a plan, as a string of names, for comparisons. */
static void ops(const struct sandbox *sb, char *buf, size_t cap)
{
	buf[0] = '\0';
	for (size_t i = 0; i < sb->n_steps; i++) {
		size_t n = strlen(buf);
		char step[256];
		snprintf(buf + n, cap - n, "%s%s", i ? "; " : "",
			 sandbox_step_name(sb, (int)i, step, sizeof step));
	}
}

static void test_plan_default(void **state)
{
	(void)state;
	struct err err;
	char dir[] = "/tmp/rund-test-hide.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sandbox_policy p = policy();
	p.hide[0] = dir;
	p.hide[1] = (char *)"/nonexistent-rund-dir";
	p.n_hide = 2;
	p.cgroup_mount = NULL;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	char buf[2048], want[2048];
	ops(&sb, buf, sizeof buf);
	/* One tmpfs, attached first where it is then hidden; hidden before
	 * /tmp is covered; a missing directory is skipped. */
	snprintf(want, sizeof want,
		 "make private, read-only and nosuid /; make the job's tmpfs at %s; hide %s; "
		 "mount proc on /proc; bind a private directory on /tmp",
		 dir, dir);
	assert_true(strncmp(buf, want, strlen(want)) == 0);
	assert_null(strstr(buf, "nonexistent"));
	assert_null(strstr(buf, "loopback"));
	uint64_t f = sandbox_clone_flags(&sb);
	assert_true(f & CLONE_NEWPID);
	assert_true(f & CLONE_NEWNS);
	assert_true(f & CLONE_NEWIPC);
	assert_true(f & CLONE_NEWUTS);
	assert_false(f & CLONE_NEWNET);
	/* The cgroup namespace is unshared by the main process, inside its
	 * group; the init stays outside the job's group. */
	assert_false(f & CLONE_NEWCGROUP);
	assert_false(f & CLONE_INTO_CGROUP);
	/* Nothing needs the job: all of it runs before the job is known. */
	assert_int_equal(sb.n_early, sb.n_steps);
	/* A plan holds no process and no fd. */
	assert_int_equal(sb.init_pidfd, -1);
	assert_int_equal(sb.report.r, -1);
	assert_true(sb.last_cap >= 30);
	sandbox_free(&sb);
	assert_int_equal(sb.n_steps, 0);
	sandbox_free(&sb); /* twice is fine */
	rmdir(dir);
}

/* A directory inside another hidden one is hidden with it: its own step
 * would find no path to cover. Without one to hide, the job's tmpfs is
 * attached at /tmp, which its own directory then covers. */
static void test_plan_nested_hide_and_no_hide(void **state)
{
	(void)state;
	struct err err;
	char dir[] = "/tmp/rund-test-nest.XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *inner = xasprintf("%s/tls", dir);
	assert_int_equal(mkdir(inner, 0700), 0);
	struct sandbox_policy p = policy();
	p.hide[0] = inner;
	p.hide[1] = dir;
	p.hide[2] = dir; /* twice: one step */
	p.n_hide = 3;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	size_t hides = 0, scratch = 0;
	for (size_t i = 0; i < sb.n_steps; i++) {
		hides += sb.steps[i].op == SB_HIDE;
		if (sb.steps[i].op == SB_SCRATCH) {
			scratch++;
			assert_string_equal(sb.steps[i].path, dir);
		}
		if (sb.steps[i].op == SB_HIDE)
			assert_string_equal(sb.steps[i].path, dir);
	}
	assert_int_equal(hides, 1);
	assert_int_equal(scratch, 1);
	sandbox_free(&sb);

	p.n_hide = 0;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	char buf[2048];
	ops(&sb, buf, sizeof buf);
	assert_non_null(strstr(buf, "make the job's tmpfs at /tmp; "));
	assert_null(strstr(buf, "hide"));
	sandbox_free(&sb);
	rmdir(inner);
	rmdir(dir);
}

static void test_plan_cgroup(void **state)
{
	(void)state;
	struct err err;
	struct sandbox_policy p = policy();
	p.cgroup_mount = (char *)"/proc"; /* any existing directory */
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	const struct sandbox_step *last = &sb.steps[sb.n_steps - 1];
	assert_int_equal(last->op, SB_CGROUP2);
	assert_string_equal(last->path, "/proc");
	/* The job's group is the launch's to name: the one late step. */
	assert_null(last->src);
	assert_int_equal(sb.n_early, sb.n_steps - 1);
	sandbox_free(&sb);
	/* Without a cgroup mount nothing is bound, and nothing waits. */
	p.cgroup_mount = NULL;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	assert_int_not_equal(sb.steps[sb.n_steps - 1].op, SB_CGROUP2);
	assert_int_equal(sb.n_early, sb.n_steps);
	sandbox_free(&sb);
}

static void test_plan_network_none(void **state)
{
	(void)state;
	struct err err;
	struct sandbox_policy p = policy();
	p.namespaces |= SANDBOX_NS_NET;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	assert_true(sandbox_clone_flags(&sb) & CLONE_NEWNET);
	char buf[2048];
	ops(&sb, buf, sizeof buf);
	assert_non_null(strstr(buf, "bring up loopback"));
	sandbox_free(&sb);
}

static void test_plan_rootfs(void **state)
{
	(void)state;
	struct err err;
	struct sandbox_policy p = policy();
	p.rootfs = (char *)"/srv/jobroot";
	p.hide[0] = (char *)"/etc/rund";
	p.n_hide = 1;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	char buf[2048];
	ops(&sb, buf, sizeof buf);
	assert_string_equal(buf,
			    "make mounts private /; bind rootfs /srv/jobroot; make rootfs "
			    "read-only /srv/jobroot; mount proc on /srv/jobroot/proc; populate "
			    "/dev in /srv/jobroot/dev; mount tmpfs on /srv/jobroot/tmp; "
			    "pivot_root into /srv/jobroot");
	/* All of it the init's, the pivot too: the main process enters the
	 * mount namespace, whose root is then the rootfs. */
	assert_int_equal(sb.n_early, sb.n_steps);
	sandbox_free(&sb);
}

static void test_plan_root(void **state)
{
	(void)state;
	struct err err;
	struct sandbox_policy p = policy();
	p.root = true;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	assert_int_equal(sb.n_steps, 0);
	/* No init and no namespaces: jobspawn execs a root job itself. */
	assert_int_equal(sandbox_clone_flags(&sb), 0);
	assert_int_equal(sb.init_pidfd, -1);
	struct err e2;
	err_clear(&e2);
	struct sandbox_report rep;
	assert_int_equal(sandbox_init_start(&sb, -1, &rep, &e2), -EINVAL);
	sandbox_free(&sb);
}

/* Namespace inode of process pid (0: ours) for ns, e.g. "pid". */
static unsigned long ns_ino(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/%s", pid ? (int)pid : (int)getpid(), ns);
	struct stat st;
	return stat(path, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* A real init (root only): it makes its namespaces and says so; it goes
 * stale when the host's mount table changes; it dies with stop; an early
 * step that fails is reported with its index and leaves nothing. */
static void test_init_lifecycle(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct err err;
	struct sandbox_report rep;
	char dir[] = "/tmp/rund-test-init.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sandbox_policy p = policy();
	p.hide[0] = dir;
	p.n_hide = 1;
	struct sandbox sb;
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	err_clear(&err);
	int started = sandbox_init_start(&sb, -1, &rep, &err);
	if (started != 0) {
		char name[256];
		print_message("init: %d %s; step %d (%s): %s\n", started, err.msg, rep.step,
			      sandbox_step_name(&sb, rep.step, name, sizeof name),
			      strerror(rep.err));
	}
	assert_int_equal(started, 0);
	pid_t init = sb.init_pid;
	assert_true(init > 0);
	assert_int_not_equal(ns_ino(init, "pid_for_children"), 0);
	assert_int_not_equal(ns_ino(init, "mnt"), ns_ino(0, "mnt"));
	assert_int_not_equal(ns_ino(init, "ipc"), ns_ino(0, "ipc"));
	/* Our memory, not a copy, where the clone trampoline exists. */
	long same_vm = syscall(SYS_kcmp, getpid(), init, 1 /* KCMP_VM */, 0, 0);
	assert_int_equal(same_vm == 0, SYS_HAVE_CLONE3_RUN);
	assert_true(sandbox_init_fresh(&sb));
	/* The host's mounts change: the init's copy is stale. */
	_cleanup_free_ char *sub = xasprintf("%s/m", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mount("tmpfs", sub, "tmpfs", 0, "size=4k"), 0);
	assert_false(sandbox_init_fresh(&sb));
	assert_int_equal(umount(sub), 0);
	rmdir(sub);
	sandbox_init_stop(&sb);
	assert_int_equal(sb.init_pidfd, -1);
	assert_true(kill(init, 0) < 0 && errno == ESRCH); /* reaped, gone */

	/* Started again from the same plan: fresh again. */
	assert_int_equal(sandbox_init_start(&sb, -1, &rep, &err), 0);
	assert_true(sandbox_init_fresh(&sb));
	sandbox_free(&sb);

	/* The directory to hide is gone by the time the init runs. */
	assert_int_equal(sandbox_prepare(&p, &sb, &err), 0);
	rmdir(dir);
	assert_int_equal(sandbox_init_start(&sb, -1, &rep, &err), 1);
	assert_int_equal(rep.err, ENOENT);
	assert_true(rep.step >= 0 && (size_t)rep.step < sb.n_early);
	assert_int_equal(sb.init_pidfd, -1);
	char name[256];
	assert_non_null(strstr(sandbox_step_name(&sb, rep.step, name, sizeof name), dir));
	sandbox_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_namespaces_parse_and_format),
		cmocka_unit_test(test_policy_check),
		cmocka_unit_test(test_rootfs_check),
		cmocka_unit_test(test_plan_default),
		cmocka_unit_test(test_plan_nested_hide_and_no_hide),
		cmocka_unit_test(test_plan_cgroup),
		cmocka_unit_test(test_plan_network_none),
		cmocka_unit_test(test_plan_rootfs),
		cmocka_unit_test(test_plan_root),
		cmocka_unit_test(test_init_lifecycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
