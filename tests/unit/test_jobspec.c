/* Unit tests for jobspec.c: validation matrix, codec round trips with
 * hostile argv, rejection of every truncation, random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobspec.h"
#include "util.h"

static char *nasty_args[] = {
	"/bin/echo", "",	  "two words", "line\nbreak",  "$HOME",
	"end\n",     "arg 3 x\n", " ",	       "\t\r\x7f\xff", NULL,
};

static void make_spec(struct jobspec *s)
{
	memset(s, 0, sizeof *s);
	memcpy(s->id, "01ARYZ6S41TSV4RRFFQ69G5FAV", 27);
	s->argc = ARRAY_SIZE(nasty_args) - 1;
	s->argv = xcalloc(s->argc + 1, sizeof *s->argv);
	for (size_t i = 0; i < s->argc; i++)
		s->argv[i] = xstrdup(nasty_args[i]);
	s->limits.has[LIMIT_CPU] = true;
	s->limits.value[LIMIT_CPU] = 50000;
	s->limits.has[LIMIT_WIOPS] = true;
	s->limits.value[LIMIT_WIOPS] = UINT64_MAX;
	s->limits.has[LIMIT_PIDS] = true;
	s->limits.value[LIMIT_PIDS] = 64;
	san_set_add(&s->owners, "DNS:client1.example");
	san_set_add(&s->owners, "URI:spiffe://x/y z\n");
	s->created_ns = 1700000000123456789ULL;
	s->cgroup = xstrdup("/sys/fs/cgroup/unified/rund");
	s->n_io_devices = 2;
	s->io_devices = xcalloc(2, sizeof *s->io_devices);
	s->io_devices[0] = (struct io_device){8, 0};
	s->io_devices[1] = (struct io_device){254, 16};
	s->max_log_bytes = 1 << 30;
}

static void test_validate(void **state)
{
	(void)state;
	struct jobspec s;
	struct err e;
	make_spec(&s);
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);

	s.limits.value[LIMIT_CPU] = 999;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_int_equal(e.kind, ERR_INVALID);
	assert_non_null(strstr(e.msg, "max_cpu_bandwidth 999 is out of range [1000, 200000]"));
	s.limits.value[LIMIT_CPU] = 1000;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.limits.value[LIMIT_CPU] = 200000;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.limits.value[LIMIT_CPU] = 200001;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_int_equal(jobspec_validate(&s, 3, 4096, &e), 0);
	s.limits.value[LIMIT_CPU] = 0;
	assert_int_equal(jobspec_validate(&s, 3, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "max_cpu_bandwidth 0"));
	s.limits.value[LIMIT_CPU] = 50000;

	s.limits.has[LIMIT_MEMORY] = true;
	s.limits.value[LIMIT_MEMORY] = 4095;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "max_memory_usage 4095"));
	s.limits.value[LIMIT_MEMORY] = 4096;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);

	static const char *io_names[] = {"max_rbps", "max_wbps", "max_riops", "max_wiops"};
	for (int i = LIMIT_RBPS; i <= LIMIT_WIOPS; i++) {
		bool had = s.limits.has[i];
		uint64_t v = s.limits.value[i];
		s.limits.has[i] = true;
		s.limits.value[i] = 0;
		assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
		assert_non_null(strstr(e.msg, io_names[i - LIMIT_RBPS]));
		s.limits.value[i] = 1;
		assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
		s.limits.has[i] = had;
		s.limits.value[i] = v;
	}
	/* pids.max: [1, PID_MAX_LIMIT], whatever the machine. */
	s.limits.value[LIMIT_PIDS] = 0;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_string_equal(e.msg, "max_pids 0 must be greater than 0");
	s.limits.value[LIMIT_PIDS] = 1;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.limits.value[LIMIT_PIDS] = 4194304;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.limits.value[LIMIT_PIDS] = 4194305;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_int_equal(e.kind, ERR_INVALID);
	assert_string_equal(e.msg, "max_pids 4194305 is out of range [1, 4194304] (processes and "
				   "threads at once)");
	s.limits.has[LIMIT_PIDS] = false;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.limits.has[LIMIT_PIDS] = true;
	s.limits.value[LIMIT_PIDS] = 64;

	/* A zero value without the wrapper is not a limit. */
	s.limits.has[LIMIT_RBPS] = false;
	s.limits.value[LIMIT_RBPS] = 0;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);

	s.argv[0][0] = '\0';
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "name"));
	jobspec_free(&s);
	struct jobspec empty = {0};
	assert_int_equal(jobspec_validate(&empty, 2, 4096, &e), -EINVAL);
	jobspec_free(&empty);
}

/* Every row is complete: the layers that read it (api.c, runc, cgroup.c)
 * would otherwise drop or mangle that limit. */
static void test_limit_table(void **state)
{
	(void)state;
	for (int l = 0; l < LIMIT_COUNT; l++) {
		const struct job_limit_def *d = &job_limit_defs[l];
		assert_non_null(d->name);
		assert_int_equal(strncmp(d->name, "max_", 4), 0);
		assert_non_null(d->controller);
		assert_non_null(d->knob);
		/* The knob belongs to the controller ("pids" -> "pids.max"). */
		size_t cl = strlen(d->controller);
		assert_int_equal(strncmp(d->knob, d->controller, cl), 0);
		assert_int_equal(d->knob[cl], '.');
		assert_non_null(d->help);
		assert_true(d->min >= 1 && d->min <= d->max);
		assert_true(d->key == NULL || d->suffix == NULL);
		assert_true((d->also_knob == NULL) == (d->also_value == NULL));
		assert_int_equal(job_limit_find(d->name, strlen(d->name)), l);
		for (int k = 0; k < l; k++)
			assert_string_not_equal(job_limit_defs[k].name, d->name);
	}
	assert_int_equal(job_limit_find("max_pid", 7), -1);
	assert_int_equal(job_limit_find("max_pidsx", 9), -1);
	assert_int_equal(job_limit_find("", 0), -1);
	assert_int_equal(job_limit_find("max_pids trailing", 8), LIMIT_PIDS);
}

static void test_spec_round_trip(void **state)
{
	(void)state;
	struct jobspec s, d;
	struct err e;
	make_spec(&s);
	size_t len;
	char *buf = jobspec_encode(&s, &len);
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_string_equal(d.id, s.id);
	assert_int_equal(d.argc, s.argc);
	for (size_t i = 0; i < s.argc; i++)
		assert_string_equal(d.argv[i], s.argv[i]);
	assert_null(d.argv[d.argc]);
	assert_memory_equal(&d.limits, &s.limits, sizeof s.limits);
	assert_true(d.limits.has[LIMIT_PIDS] && d.limits.value[LIMIT_PIDS] == 64);
	/* Limits are stored under their table names. */
	assert_non_null(strstr(buf, "\nmax_pids 64\n"));
	assert_non_null(strstr(buf, "\nmax_cpu_bandwidth 50000\n"));
	assert_int_equal(d.owners.n, 2);
	assert_true(san_set_intersects(&d.owners, &s.owners));
	assert_int_equal(d.created_ns, s.created_ns);
	assert_string_equal(d.cgroup, s.cgroup);
	assert_int_equal(d.n_io_devices, 2);
	assert_int_equal(d.io_devices[1].major, 254);
	assert_int_equal(d.io_devices[1].minor, 16);
	assert_int_equal(d.max_log_bytes, s.max_log_bytes);
	jobspec_free(&d);
	free(buf);

	/* The sandbox policy round-trips; a root job writes none of it. */
	struct jobspec p;
	make_spec(&p);
	p.sandbox.uid = 1900000007;
	p.sandbox.gid = 1900000007;
	p.sandbox.namespaces = SANDBOX_NS_DEFAULT | SANDBOX_NS_NET;
	p.sandbox.hide[0] = xstrdup("/var/lib/rund");
	p.sandbox.hide[1] = xstrdup("/etc/rund");
	p.sandbox.n_hide = 2;
	p.sandbox.cgroup_mount = xstrdup("/sys/fs/cgroup");
	p.sandbox.rootfs = xstrdup("/srv/root\nwith newline");
	p.sandbox.tmp_size = 1ull << 30;
	p.sandbox.max_procs = 4096;
	buf = jobspec_encode(&p, &len);
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_false(d.sandbox.root);
	assert_int_equal(d.sandbox.uid, 1900000007);
	assert_int_equal(d.sandbox.gid, 1900000007);
	assert_int_equal(d.sandbox.namespaces, SANDBOX_NS_DEFAULT | SANDBOX_NS_NET);
	assert_int_equal(d.sandbox.n_hide, 2);
	assert_string_equal(d.sandbox.hide[1], "/etc/rund");
	assert_string_equal(d.sandbox.cgroup_mount, "/sys/fs/cgroup");
	assert_string_equal(d.sandbox.rootfs, "/srv/root\nwith newline");
	assert_int_equal(d.sandbox.tmp_size, 1ull << 30);
	assert_int_equal(d.sandbox.max_procs, 4096);
	jobspec_free(&d);
	free(buf);
	/* uid without gid and namespaces is corruption, as is uid 0. */
	static const char *const partial[] = {"uid 1900000007\n", "uid 0\ngid 0\nnamespaces 31\n",
					      "hide 4 /etc\n", "max_procs 5\n"};
	for (size_t i = 0; i < 4; i++) {
		_cleanup_free_ char *bad =
			xasprintf("rund-spec 1\nid 26 %s\ncreated_ns 1\narg 4 true\n%send\n", p.id,
				  partial[i]);
		assert_int_equal(jobspec_decode(bad, strlen(bad), &d, &e), -EBADMSG);
		jobspec_free(&d);
	}
	p.sandbox.root = true;
	buf = jobspec_encode(&p, &len);
	assert_null(strstr(buf, "uid"));
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_true(d.sandbox.root);
	jobspec_free(&d);
	free(buf);
	jobspec_free(&p);

	/* Minimal spec: no limits, owners, cgroup or devices. */
	struct jobspec m = {0};
	memcpy(m.id, s.id, 27);
	char *argv[] = {"true", NULL};
	m.argv = argv;
	m.argc = 1;
	buf = jobspec_encode(&m, &len);
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_null(d.cgroup);
	assert_int_equal(d.argc, 1);
	assert_string_equal(d.argv[0], "true");
	jobspec_free(&d);
	free(buf);
	jobspec_free(&s);
}

/* Every proper prefix of a valid encoding must be rejected with -EBADMSG
 * and leave the output empty. */
static void test_spec_truncations(void **state)
{
	(void)state;
	struct jobspec s, d;
	struct err e;
	make_spec(&s);
	size_t len;
	char *buf = jobspec_encode(&s, &len);
	for (size_t n = 0; n < len; n++) {
		char *copy = xmalloc(n ? n : 1);
		memcpy(copy, buf, n);
		err_clear(&e);
		int r = jobspec_decode(copy, n, &d, &e);
		if (r != -EBADMSG)
			fail_msg("prefix of %zu bytes decoded to %d", n, r);
		assert_int_equal(e.code, EBADMSG);
		assert_true(e.msg[0] != '\0');
		assert_null(d.argv);
		assert_null(d.cgroup);
		jobspec_free(&d);
		free(copy);
	}
	/* Trailing garbage too. */
	char *longer = xmalloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 'x';
	assert_int_equal(jobspec_decode(longer, len + 1, &d, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "after"));
	free(longer);
	free(buf);
	jobspec_free(&s);
}

static void expect_bad(const char *text, const char *msg_part)
{
	struct jobspec d;
	struct err e;
	err_clear(&e);
	int r = jobspec_decode(text, strlen(text), &d, &e);
	if (r != -EBADMSG)
		fail_msg("decoded (%d): %s", r, text);
	if (!strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
	jobspec_free(&d);
}

static void test_spec_corrupt(void **state)
{
	(void)state;
	const char *ok = "rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 4 true\n"
			 "max_log_bytes 0\nend\n";
	struct jobspec d;
	struct err e;
	assert_int_equal(jobspec_decode(ok, strlen(ok), &d, &e), 0);
	jobspec_free(&d);

	expect_bad("rund-spec 2\nend\n", "version");
	expect_bad("rund-start 1\nend\n", "version");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 4 true\n"
		   "bogus 1\nend\n",
		   "unknown key \"bogus\"");
	expect_bad(
		"rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 05\narg 4 true\nend\n",
		"bad number");
	expect_bad(
		"rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns -5\narg 4 true\nend\n",
		"bad number");
	expect_bad(
		"rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5 \narg 4 true\nend\n",
		"bad number");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\n"
		   "created_ns 99999999999999999999\narg 4 true\nend\n",
		   "too large");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 5 true\nend\n",
		   "newline");
	expect_bad(
		"rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 400 true\nend\n",
		"truncated");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\nend\n", "arg");
	expect_bad("rund-spec 1\ncreated_ns 5\narg 4 true\nend\n", "missing \"id\"");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAI\ncreated_ns 5\narg 4 true\nend\n",
		   "bad id");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\ncreated_ns 5\n"
		   "arg 4 true\nend\n",
		   "repeated");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 4 true\n"
		   "io_device 3 8:x\nend\n",
		   "io_device");
	expect_bad("rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\narg 4 true\n"
		   "max_rbps 1\nmax_rbps 2\nend\n",
		   "repeated");
	/* Embedded NUL in a string. */
	static const char nul[] = "rund-spec 1\nid 26 01ARYZ6S41TSV4RRFFQ69G5FAV\ncreated_ns 5\n"
				  "arg 4 t\0ue\nend\n";
	assert_int_equal(jobspec_decode(nul, sizeof nul - 1, &d, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "NUL"));
	jobspec_free(&d);
	assert_int_equal(jobspec_decode(NULL, 0, &d, &e), -EBADMSG);
	jobspec_free(&d);
}

static void test_start_status(void **state)
{
	(void)state;
	struct err e;
	struct jobstart st = {.supervisor_pid = 1234, .pid = 1235, .start_ns = 42}, st2;
	size_t len;
	char *buf = jobstart_encode(&st, &len);
	assert_int_equal(jobstart_decode(buf, len, &st2, &e), 0);
	assert_int_equal(st2.supervisor_pid, 1234);
	assert_int_equal(st2.pid, 1235);
	assert_int_equal(st2.start_ns, 42);
	for (size_t n = 0; n < len; n++)
		assert_int_equal(jobstart_decode(buf, n, &st2, &e), -EBADMSG);
	free(buf);

	/* memset first: the struct is compared bytewise, padding included. */
	struct jobstatus s, s2;
	memset(&s, 0, sizeof s);
	s.end_ns = UINT64_MAX;
	s.signal = 9;
	s.stopped = s.oom_killed = s.log_truncated = true;
	s.user_usec = 1;
	s.system_usec = 2;
	s.memory_peak = 3;
	s.log_bytes = 4;
	buf = jobstatus_encode(&s, &len);
	assert_int_equal(jobstatus_decode(buf, len, &s2, &e), 0);
	assert_memory_equal(&s, &s2, sizeof s);
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(jobstatus_decode(buf, n, &s2, &e), -EBADMSG);
		assert_int_equal(s2.signal, 0);
	}
	free(buf);
	s.exited = true;
	s.exit_code = 255;
	s.signal = 0;
	buf = jobstatus_encode(&s, &len);
	assert_int_equal(jobstatus_decode(buf, len, &s2, &e), 0);
	assert_true(s2.exited);
	assert_int_equal(s2.exit_code, 255);
	free(buf);

	const char *bad = "rund-status 1\nend_ns 1\nexited 2\nexit_code 0\nsignal 0\nstopped 0\n"
			  "oom_killed 0\nuser_usec 0\nsystem_usec 0\nmemory_peak 0\nlog_bytes 0\n"
			  "log_truncated 0\nend\n";
	assert_int_equal(jobstatus_decode(bad, strlen(bad), &s2, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "exited"));
	const char *missing = "rund-start 1\nsupervisor_pid 1\npid 2\nend\n";
	assert_int_equal(jobstart_decode(missing, strlen(missing), &st2, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "start_ns"));
}

/* env, cwd, run-time limit (spec), timed_out (status), the stop file. */
static void test_everyday_keys(void **state)
{
	(void)state;
	struct jobspec s, d;
	struct err e;
	make_spec(&s);
	size_t len;
	/* A spec without the new keys says nothing of them and reads back
	 * without them (files from before they existed). */
	char *buf = jobspec_encode(&s, &len);
	assert_null(strstr(buf, "\nenv "));
	assert_null(strstr(buf, "\ncwd "));
	assert_null(strstr(buf, "run_time"));
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_int_equal(d.n_env, 0);
	assert_null(d.cwd);
	assert_int_equal(d.max_run_time_ns, 0);
	jobspec_free(&d);
	free(buf);

	s.env = xcalloc(3, sizeof *s.env);
	s.env[0] = xstrdup("A=b c");
	s.env[1] = xstrdup("MULTI=line\nend x");
	s.env[2] = xstrdup("EMPTY=");
	s.n_env = 3;
	s.cwd = xstrdup("/srv/a dir");
	s.max_run_time_ns = 3600ull * 1000000000;
	s.run_time_grace_ns = 5000000000;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	buf = jobspec_encode(&s, &len);
	assert_non_null(strstr(buf, "\nenv 5 A=b c\n"));
	assert_non_null(strstr(buf, "\ncwd 10 /srv/a dir\n"));
	assert_non_null(strstr(buf, "\nmax_run_time_ns 3600000000000\n"));
	assert_int_equal(jobspec_decode(buf, len, &d, &e), 0);
	assert_int_equal(d.n_env, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(d.env[i], s.env[i]);
	assert_string_equal(d.cwd, "/srv/a dir");
	assert_int_equal(d.max_run_time_ns, s.max_run_time_ns);
	assert_int_equal(d.run_time_grace_ns, s.run_time_grace_ns);
	jobspec_free(&d);
	for (size_t n = 0; n < len; n++)
		assert_int_equal(jobspec_decode(buf, n, &d, &e), -EBADMSG);
	free(buf);

	/* Corrupt values are refused by the decoder. */
	static const char *const bad_lines[] = {
		"env 3 A_B\n",
		"env 2 =x\n",
		"cwd 1 /\ncwd 1 /\n",
		"max_run_time_ns 0\n",
		"run_time_grace_ns 3600000000001\n",
		"max_run_time_ns 1\nmax_run_time_ns 1\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_lines); i++) {
		char *good = jobspec_encode(&s, &len);
		char *end = strstr(good, "end\n");
		*end = '\0';
		char *text = xasprintf("%s%send\n", good, bad_lines[i]);
		assert_int_equal(jobspec_decode(text, strlen(text), &d, &e), -EBADMSG);
		free(text);
		free(good);
	}

	/* Validation names the bad value. */
	free(s.env[1]);
	s.env[1] = xstrdup("NOEQUALS");
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_int_equal(e.kind, ERR_INVALID);
	assert_non_null(strstr(e.msg, "env[1] \"NOEQUALS\" is not KEY=VALUE"));
	free(s.env[1]);
	s.env[1] = xstrdup("=v");
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "env[1] \"=v\" has an empty key"));
	free(s.env[1]);
	s.env[1] = xcalloc(1, JOBSPEC_ENV_ENTRY_MAX + 2);
	memset(s.env[1], 'x', JOBSPEC_ENV_ENTRY_MAX + 1);
	s.env[1][0] = 'K';
	s.env[1][1] = '=';
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "env[1]"));
	assert_non_null(strstr(e.msg, "at most 32768"));
	s.env[1][JOBSPEC_ENV_ENTRY_MAX] = '\0';
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	size_t n_env = s.n_env;
	s.n_env = JOBSPEC_ENV_MAX + 1;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "257 env entries"));
	s.n_env = n_env;
	free(s.cwd);
	s.cwd = xstrdup("relative/dir");
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "cwd \"relative/dir\" is not an absolute path"));
	s.cwd[0] = '/';
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), 0);
	s.run_time_grace_ns = JOBSPEC_GRACE_MAX_NS + 1;
	assert_int_equal(jobspec_validate(&s, 2, 4096, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "run_time_grace"));
	jobspec_free(&s);

	/* timed_out: written only when true; absent reads as false. */
	struct jobstatus st, st2;
	memset(&st, 0, sizeof st);
	st.signal = 15;
	buf = jobstatus_encode(&st, &len);
	assert_null(strstr(buf, "timed_out"));
	assert_int_equal(jobstatus_decode(buf, len, &st2, &e), 0);
	assert_false(st2.timed_out);
	free(buf);
	st.timed_out = true;
	buf = jobstatus_encode(&st, &len);
	assert_non_null(strstr(buf, "\ntimed_out 1\n"));
	assert_int_equal(jobstatus_decode(buf, len, &st2, &e), 0);
	assert_memory_equal(&st, &st2, sizeof st);
	free(buf);

	/* The stop file: empty is a kill now; otherwise all three keys. */
	struct jobstop sp = {.signal = 15, .to_group = true, .grace_ns = 10000000000}, sp2;
	assert_int_equal(jobstop_decode("", 0, &sp2, &e), 0);
	assert_int_equal(sp2.signal, 0);
	buf = jobstop_encode(&sp, &len);
	assert_int_equal(jobstop_decode(buf, len, &sp2, &e), 0);
	assert_int_equal(sp2.signal, 15);
	assert_true(sp2.to_group);
	assert_int_equal(sp2.grace_ns, 10000000000);
	for (size_t n = 1; n < len; n++)
		assert_int_equal(jobstop_decode(buf, n, &sp2, &e), -EBADMSG);
	free(buf);
	const char *bad_stop[] = {
		"rund-stop 1\nsignal 65\nto_group 0\ngrace_ns 0\nend\n",
		"rund-stop 1\nsignal 9\nto_group 2\ngrace_ns 0\nend\n",
		"rund-stop 1\nsignal 9\nto_group 0\ngrace_ns 3600000000001\nend\n",
		"rund-stop 1\nsignal 9\nto_group 0\nend\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_stop); i++)
		assert_int_equal(jobstop_decode(bad_stop[i], strlen(bad_stop[i]), &sp2, &e),
				 -EBADMSG);
}

/* Random bytes and random mutations of a valid file: the decoders must
 * return cleanly (ASan/valgrind catch what a plain run would not). */
/* The warm-up: the policy every job of a daemon shares, round trip;
 * anything job-specific, or a spec, refused by name. */
static void test_warm(void **state)
{
	(void)state;
	struct sandbox_policy p;
	memset(&p, 0, sizeof p);
	p.namespaces = SANDBOX_NS_DEFAULT | SANDBOX_NS_NET;
	p.hide[0] = (char *)"/var/lib/rund";
	p.hide[1] = (char *)"/etc/rund";
	p.n_hide = 2;
	p.cgroup_mount = (char *)"/sys/fs/cgroup";
	p.tmp_size = 1u << 30;
	p.max_procs = 4096;
	size_t len;
	_cleanup_free_ char *text = jobspec_warm_encode("/sys/fs/cgroup/rund", &p, &len);
	assert_true(jobspec_is_warm(text, len));
	struct jobspec w;
	struct err err;
	assert_int_equal(jobspec_warm_decode(text, len, &w, &err), 0);
	assert_string_equal(w.cgroup, "/sys/fs/cgroup/rund");
	assert_true(sandbox_policy_same(&w.sandbox, &p));
	assert_int_equal(w.sandbox.uid, 0);
	jobspec_free(&w);

	/* A spec is not a warm-up, and a warm-up is not a spec. */
	struct jobspec spec;
	memset(&spec, 0, sizeof spec);
	memcpy(spec.id, "01ARZ3NDEKTSV4RRFFQ69G5FAV", 27);
	char *argv[] = {(char *)"true", NULL};
	spec.argv = argv;
	spec.argc = 1;
	_cleanup_free_ char *stext = jobspec_encode(&spec, &len);
	assert_false(jobspec_is_warm(stext, len));
	err_clear(&err);
	assert_int_equal(jobspec_warm_decode(stext, len, &w, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "rund-warm 1"));
	assert_int_equal(jobspec_decode(text, strlen(text), &w, &err), -EBADMSG);

	static const char *const bad[][2] = {
		{"rund-warm 1\ncgroup 2 /x\nnamespaces 1\nuid 5\nend\n", "uid"},
		{"rund-warm 1\ncgroup 2 /x\nnamespaces 1\narg 4 true\nend\n", "arg"},
		{"rund-warm 1\nnamespaces 1\nend\n", "cgroup"},
		{"rund-warm 1\ncgroup 2 /x\nend\n", "namespaces"},
		{"rund-warm 1\ncgroup 2 /x\nnamespaces 1\n", "end"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err_clear(&err);
		assert_int_equal(jobspec_warm_decode(bad[i][0], strlen(bad[i][0]), &w, &err),
				 -EBADMSG);
		assert_non_null(strstr(err.msg, bad[i][1]));
		assert_null(w.cgroup);
	}
}

static void test_random(void **state)
{
	(void)state;
	struct jobspec s, d;
	struct jobstart st;
	struct jobstatus ss;
	struct err e;
	make_spec(&s);
	size_t len;
	char *good = jobspec_encode(&s, &len);
	srandom(12345);
	char *buf = xmalloc(len + 64);
	int accepted = 0;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n;
		if (iter % 2) {
			n = (size_t)random() % 200;
			for (size_t i = 0; i < n; i++)
				buf[i] = (char)random();
		} else {
			n = len;
			memcpy(buf, good, len);
			int flips = 1 + (int)(random() % 4);
			for (int f = 0; f < flips; f++)
				buf[(size_t)random() % len] = (char)random();
		}
		int r = jobspec_decode(buf, n, &d, &e);
		assert_true(r == 0 || r == -EBADMSG);
		if (r == 0)
			accepted++;
		jobspec_free(&d);
		r = jobstart_decode(buf, n, &st, &e);
		assert_true(r == 0 || r == -EBADMSG);
		r = jobstatus_decode(buf, n, &ss, &e);
		assert_true(r == 0 || r == -EBADMSG);
	}
	(void)accepted;
	free(buf);
	free(good);
	jobspec_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_table),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_spec_round_trip),
		cmocka_unit_test(test_spec_truncations),
		cmocka_unit_test(test_spec_corrupt),
		cmocka_unit_test(test_start_status),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_everyday_keys),
		cmocka_unit_test(test_warm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
