/* handoff: the request framing and the report line between the daemon and
 * a supervisor. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "handoff.h"
#include "util.h"

/* header + dir + spec in one malloc'd buffer. */
static char *frame(const char *dir, const char *spec, size_t spec_len, size_t *len)
{
	char hdr[HANDOFF_HEADER_MAX];
	int n = handoff_request_header(spec_len, strlen(dir), hdr);
	assert_true(n > 0);
	*len = (size_t)n + strlen(dir) + spec_len;
	char *buf = xmalloc(*len);
	memcpy(buf, hdr, (size_t)n);
	memcpy(buf + n, dir, strlen(dir));
	memcpy(buf + n + strlen(dir), spec, spec_len);
	return buf;
}

static void test_request_round_trip(void **state)
{
	size_t len;
	_cleanup_free_ char *buf = frame("/var/lib/rund", "spec\nbytes\0x", 12, &len);
	assert_memory_equal(buf, "12 13\n/var/lib/rund", 19);
	struct handoff_request req;
	assert_int_equal(handoff_request_decode(buf, len, &req, NULL), 0);
	assert_string_equal(req.state_dir, "/var/lib/rund");
	assert_int_equal(req.spec_len, 12);
	assert_memory_equal(req.spec, "spec\nbytes\0x", 12);
	assert_int_equal(req.spec[12], '\0');
	handoff_request_free(&req);
	handoff_request_free(&req); /* idempotent */
}

static void test_request_bounds(void **state)
{
	char hdr[HANDOFF_HEADER_MAX];
	size_t lim = handoff_spec_limit(10);
	/* The whole request at the limit is exactly HANDOFF_REQUEST_MAX at
	 * most, one byte more is refused. */
	int n = handoff_request_header(lim, 10, hdr);
	assert_true(n > 0);
	assert_true((size_t)n + 10 + lim <= HANDOFF_REQUEST_MAX);
	assert_int_equal(handoff_request_header(lim + 1, 10, hdr), -E2BIG);
	assert_true(lim > HANDOFF_REQUEST_MAX - 64);
	/* A longer state dir leaves less room for the spec: 100 bytes, and
	 * one more digit in the header. */
	assert_int_equal(handoff_spec_limit(110), lim - 101);
	assert_int_equal(handoff_spec_limit(HANDOFF_REQUEST_MAX), 0);
	size_t s, d;
	snprintf(hdr, sizeof hdr, "%zu 10", lim);
	assert_int_equal(handoff_header_parse(hdr, strlen(hdr), &s, &d), 0);
	snprintf(hdr, sizeof hdr, "%zu 10", lim + 1);
	assert_int_equal(handoff_header_parse(hdr, strlen(hdr), &s, &d), -EPROTO);
}

static void test_request_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"5\nabcde",
		"5 \nabcde",
		" 5 1\nabcdef",
		"05 1\nxabcde",
		"5 01\nxabcde",
		"+5 1\nxabcde",
		"5 1 \nxabcde",
		"5 0\nabcde",
		"5 1\nxabcd",
		"5 1\nxabcdef",
		"-1 1\nx",
		"99999999999999999999 1\nx",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct handoff_request req;
		struct err err = {0};
		assert_int_equal(handoff_request_decode(bad[i], strlen(bad[i]), &req, &err),
				 -EPROTO);
		assert_null(req.state_dir);
		assert_true(err.msg[0] != '\0');
	}
	struct handoff_request req;
	assert_int_equal(handoff_request_decode("1 2\na\0x", 7, &req, NULL), -EPROTO);
	assert_null(req.spec);
}

/* The reader takes exactly one request off a pipe and nothing after it. */
static void test_request_read(void **state)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	size_t len;
	_cleanup_free_ char *buf = frame("/s", "SPEC", 4, &len);
	assert_int_equal(write_all(p[1], buf, len), 0);
	assert_int_equal(write_all(p[1], "NEXT", 4), 0);
	struct handoff_request req;
	assert_int_equal(handoff_request_read(p[0], &req, NULL), 0);
	assert_string_equal(req.state_dir, "/s");
	assert_string_equal(req.spec, "SPEC");
	handoff_request_free(&req);
	char rest[8];
	assert_int_equal(read(p[0], rest, sizeof rest), 4);
	assert_memory_equal(rest, "NEXT", 4);

	/* Truncated: EOF inside the body. */
	assert_int_equal(write_all(p[1], buf, len - 1), 0);
	close(p[1]);
	struct err err = {0};
	assert_int_equal(handoff_request_read(p[0], &req, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_null(req.spec);
	close(p[0]);

	/* A header without end. */
	assert_int_equal(pipe(p), 0);
	char junk[HANDOFF_HEADER_MAX + 4];
	memset(junk, '1', sizeof junk);
	assert_int_equal(write_all(p[1], junk, sizeof junk), 0);
	assert_int_equal(handoff_request_read(p[0], &req, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "too long"));
	close(p[0]);
	close(p[1]);
}

static void test_report(void **state)
{
	char line[HANDOFF_REPORT_MAX];
	assert_int_equal(handoff_report_format(NULL, line), 3);
	assert_memory_equal(line, "ok\n", 3);
	assert_int_equal(handoff_report_parse("ok", NULL), 0);

	struct err e = {0}, got = {0};
	err_set(&e, ENOENT, ERR_NOT_FOUND, "exec \"a\nb\": No such file");
	size_t n = handoff_report_format(&e, line);
	assert_true(n > 0 && line[n - 1] == '\n');
	assert_null(memchr(line, '\n', n - 1)); /* one line */
	line[n - 1] = '\0';
	assert_string_equal(line, "err 2 2 exec \"a b\": No such file");
	assert_int_equal(handoff_report_parse(line, &got), -ENOENT);
	assert_int_equal(got.code, ENOENT);
	assert_int_equal(got.kind, ERR_NOT_FOUND);
	assert_string_equal(got.msg, "exec \"a b\": No such file");

	/* Unset code and kind travel as EIO / internal. */
	struct err blank = {0};
	n = handoff_report_format(&blank, line);
	line[n - 1] = '\0';
	assert_string_equal(line, "err 5 6 ");

	/* The longest message fits one line. */
	memset(e.msg, 'm', sizeof e.msg - 1);
	e.msg[sizeof e.msg - 1] = '\0';
	n = handoff_report_format(&e, line);
	line[n - 1] = '\0';
	assert_int_equal(handoff_report_parse(line, &got), -ENOENT);
	assert_int_equal(strlen(got.msg), sizeof e.msg - 1);
}

static void test_report_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"ok ",
		"OK",
		"err",
		"err 2",
		"err 2 2",
		"err 0 2 x",
		"err 2 0 x",
		"err 2 7 x",
		"err -2 2 x",
		"err 2 -2 x",
		"err 2x 2 x",
		"err 99999999999 2 x",
		"erx 2 2 x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct err err = {0};
		assert_int_equal(handoff_report_parse(bad[i], &err), -EPROTO);
		assert_int_equal(err.kind, ERR_INTERNAL);
		assert_non_null(strstr(err.msg, "supervisor reported"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_bounds),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_request_read),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_report_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
