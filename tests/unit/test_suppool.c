/* suppool: FIFO names, and the pool driving stand-in supervisors (a shell
 * script that reads one request the way `rund execute` does and reports)
 * so that the request really crosses a FIFO and the report a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <event2/event.h>

#include "handoff.h"
#include "jobdir.h"
#include "suppool.h"
#include "util.h"

static void test_fifo_ids(void **state)
{
	struct fifo_ids f = {0};
	unsigned a, b, c;
	assert_true(fifo_ids_take(&f, &a));
	assert_true(fifo_ids_take(&f, &b));
	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	fifo_ids_put(&f, a);
	fifo_ids_put(&f, b);
	/* Reused, last released first, before a new number. */
	assert_false(fifo_ids_take(&f, &c));
	assert_int_equal(c, 1);
	assert_false(fifo_ids_take(&f, &c));
	assert_int_equal(c, 0);
	assert_true(fifo_ids_take(&f, &c));
	assert_int_equal(c, 2);
	for (unsigned i = 0; i < 100; i++)
		fifo_ids_put(&f, i);
	assert_int_equal(f.n_free, 100);
	fifo_ids_free(&f);
}

struct fixture {
	char *dir;   /* temporary: state/ and the script */
	char *state; /* the state directory */
	char *exe;
	struct jobdir_root root;
	struct event_base *base;
	struct loop *loop;
	struct suppool *pool;
};

/* Argv is "rund execute -fifo PATH": read the header line, then exactly
 * the bytes it announces, keep them for the test, report ok. "fail" as
 * the spec makes it exit without reading anything. */
static const char script[] = "#!/bin/sh\n"
			     "exec 3<\"$3\"\n"
			     "read -r hdr <&3\n"
			     "set -- $hdr\n"
			     "head -c $(($1 + $2)) <&3 >\"$0.got\"\n"
			     "echo ok\n";

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	char tmpl[] = "/tmp/test_suppool.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->dir = xstrdup(tmpl);
	f->state = xasprintf("%s/state", tmpl);
	f->exe = xasprintf("%s/sup", tmpl);
	int fd = open(f->exe, O_WRONLY | O_CREAT | O_CLOEXEC, 0700);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, script, strlen(script)), 0);
	close(fd);
	assert_int_equal(jobdir_root_open(f->state, &f->root, NULL), 0);
	f->base = event_base_new();
	f->loop = loop_new(f->base);
	f->pool = suppool_new(f->loop, f->exe, f->state, f->root.run_fd, NULL, 0, false, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	suppool_free(f->pool);
	loop_free(f->loop);
	event_base_free(f->base);
	jobdir_root_close(&f->root);
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", f->dir);
	int r = system(cmd);
	(void)r;
	free(f->dir);
	free(f->state);
	free(f->exe);
	free(f);
	return 0;
}

static void wait_report(struct sup *sp, char *line, size_t cap)
{
	struct pollfd pfd = {.fd = sp->report_fd, .events = POLLIN};
	size_t n = 0;
	while (n == 0 || line[n - 1] != '\n') {
		assert_true(poll(&pfd, 1, 10000) == 1);
		ssize_t k = read(sp->report_fd, line + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	line[n] = '\0';
}

static void test_request_crosses(void **state)
{
	struct fixture *f = *state;
	struct sup *sp;
	struct err err = {0};
	/* No loop turn yet: no spare, so a fresh supervisor on FIFO 0. */
	assert_int_equal(suppool_take(f->pool, false, &sp, &err), 0);
	assert_int_equal(sp->fifo, 0);
	assert_int_equal(faccessat(f->root.run_fd, "0", F_OK, 0), 0);
	assert_int_equal(sup_send(sp, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "SPEC\nx", 6, &err), 0);
	char line[64];
	wait_report(sp, line, sizeof line);
	assert_string_equal(line, "ok\n");
	assert_false(sup_request_unread(sp));
	/* What it read is one whole request: the state dir and the spec. */
	_cleanup_free_ char *got_path = xasprintf("%s.got", f->exe), *got = NULL;
	size_t len;
	assert_int_equal(read_file_at(AT_FDCWD, got_path, 4096, &got, &len), 0);
	_cleanup_free_ char *want = xasprintf("%s%s", f->state, "SPEC\nx");
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	sup_reap(sp);
	sup_release(sp, true);
	/* Reported: its FIFO is kept and handed out again. */
	assert_int_equal(faccessat(f->root.run_fd, "0", F_OK, 0), 0);
	assert_int_equal(suppool_take(f->pool, false, &sp, &err), 0);
	assert_int_equal(sp->fifo, 0);
	sup_kill(sp);
	/* Not reported: the FIFO is removed. */
	assert_int_equal(faccessat(f->root.run_fd, "0", F_OK, 0), -1);
}

static void test_spares(void **state)
{
	struct fixture *f = *state;
	/* A loop turn prepares the spares. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	for (unsigned i = 0; i < SUPPOOL_SPARES; i++) {
		char name[JOBDIR_FIFO_NAME_MAX];
		jobdir_fifo_name(i, name);
		assert_int_equal(faccessat(f->root.run_fd, name, F_OK, 0), 0);
	}
	struct sup *a, *b, *c;
	struct err err = {0};
	assert_int_equal(suppool_take(f->pool, false, &a, &err), 0);
	assert_int_equal(suppool_take(f->pool, false, &b, &err), 0);
	assert_true(a->fifo < SUPPOOL_SPARES && b->fifo < SUPPOOL_SPARES);
	/* The pool is empty now: a third is spawned on a new FIFO. */
	assert_int_equal(suppool_take(f->pool, false, &c, &err), 0);
	assert_int_equal(c->fifo, SUPPOOL_SPARES);
	/* A supervisor that died without reading leaves its request. */
	sup_reap(c);
	assert_int_equal(sup_send(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "S", 1, &err), 0);
	assert_true(sup_request_unread(c));
	sup_release(c, false);
	sup_kill(a);
	sup_kill(b);
}

/* Spares are taken oldest first: the one that has had the longest to
 * prepare its job's sandbox, not the one made by the last refill. */
static void test_spares_oldest_first(void **state)
{
	struct fixture *f = *state;
	event_base_loop(f->base, EVLOOP_NONBLOCK); /* spares on FIFOs 0, 1... in that order */
	struct sup *sp[SUPPOOL_SPARES + 1];
	struct err err = {0};
	assert_int_equal(suppool_take(f->pool, false, &sp[0], &err), 0);
	assert_int_equal(sp[0]->fifo, 0);
	/* The refill's spare (a new FIFO) queues behind the older ones. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	for (unsigned i = 1; i <= SUPPOOL_SPARES; i++) {
		assert_int_equal(suppool_take(f->pool, false, &sp[i], &err), 0);
		assert_int_equal(sp[i]->fifo, i);
	}
	for (unsigned i = 0; i <= SUPPOOL_SPARES; i++)
		sup_kill(sp[i]);
}

/* fresh: a supervisor spawned now, on a new FIFO; the spares stay. */
static void test_take_fresh(void **state)
{
	struct fixture *f = *state;
	event_base_loop(f->base, EVLOOP_NONBLOCK); /* spares on FIFOs 0, 1... */
	struct sup *fresh, *spare;
	struct err err = {0};
	assert_int_equal(suppool_take(f->pool, true, &fresh, &err), 0);
	assert_int_equal(fresh->fifo, SUPPOOL_SPARES);
	assert_int_equal(suppool_take(f->pool, false, &spare, &err), 0);
	assert_int_equal(spare->fifo, 0);
	sup_kill(fresh);
	sup_kill(spare);
}

static void test_too_big(void **state)
{
	struct fixture *f = *state;
	struct sup *sp;
	struct err err = {0};
	assert_int_equal(suppool_take(f->pool, false, &sp, &err), 0);
	size_t big = handoff_spec_limit(strlen(f->state)) + 1;
	_cleanup_free_ char *spec = xcalloc(1, big);
	assert_int_equal(sup_send(sp, "01ARZ3NDEKTSV4RRFFQ69G5FAV", spec, big, &err), -E2BIG);
	assert_int_equal(err.kind, ERR_EXHAUSTED);
	/* The largest request fits the pipe in one write. */
	assert_int_equal(sup_send(sp, "01ARZ3NDEKTSV4RRFFQ69G5FAV", spec, big - 1, &err), 0);
	sup_kill(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_ids),
		cmocka_unit_test_setup_teardown(test_request_crosses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spares, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spares_oldest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
