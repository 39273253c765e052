/* util and err: parsing, UTF-8 validation, atomic files, error chains. */
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

#include "err.h"
#include "util.h"

static void test_parse_u64(void **state)
{
	uint64_t v;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("+1", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(parse_u64("1 ", &v), -EINVAL);
	assert_int_equal(parse_u64("12a", &v), -EINVAL);
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
}

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{"", true},
		{"plain ascii $HOME 'x'", true},
		{"caf\xc3\xa9", true},	    /* é */
		{"\xe2\x82\xac", true},	    /* € */
		{"\xf0\x9f\x98\x80", true}, /* U+1F600 */
		{"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
		{"\xff", false},
		{"\xc0\xaf", false},	     /* overlong '/' */
		{"\xe0\x80\xaf", false},     /* overlong */
		{"\xed\xa0\x80", false},     /* surrogate */
		{"\xf4\x90\x80\x80", false}, /* above U+10FFFF */
		{"\xc3", false},	     /* truncated */
		{"\xe2\x82", false},	     /* truncated */
		{"a\x80", false},	     /* stray continuation */
		{"\xc3\x28", false},	     /* bad continuation */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("case %zu (%s): want %d", i, cases[i].s, cases[i].ok);
	}
}

static void test_err_chain(void **state)
{
	struct err err = {0};
	assert_int_equal(err_set(&err, ENOENT, ERR_NOT_FOUND, "no job %s", "X"), -ENOENT);
	assert_int_equal(err_wrap(&err, "stop"), -ENOENT);
	assert_string_equal(err.msg, "stop: no job X");
	assert_int_equal(err.kind, ERR_NOT_FOUND);
	assert_int_equal(err_sys(&err, EACCES, "open %s", "/x"), -EACCES);
	assert_string_equal(err.msg, "open /x: Permission denied");
	assert_int_equal(err.kind, ERR_INTERNAL);
	/* Long chains are cut, never overflow. */
	char big[2 * ERR_MSG_MAX];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	err_set(&err, EIO, ERR_INTERNAL, "%s", big);
	err_wrap(&err, "%s", big);
	assert_int_equal(strlen(err.msg), ERR_MSG_MAX - 1);
	assert_int_equal(err_set(NULL, EINVAL, ERR_INVALID, "x"), -EINVAL);
}

static void test_atomic_file(void **state)
{
	char dir[] = "/tmp/rund-test-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_file_atomic(fd, "f", "hello", 5), 0);
	assert_int_equal(write_file_atomic(fd, "f", "bye", 3), 0);
	char *buf;
	size_t len;
	assert_int_equal(read_file_at(fd, "f", 100, &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "bye");
	free(buf);
	assert_int_equal(read_file_at(fd, "f", 2, &buf, &len), -EFBIG);
	assert_int_equal(read_file_at(fd, "missing", 2, &buf, &len), -ENOENT);
	assert_int_equal(faccessat(fd, ".f.tmp", F_OK, 0), -1);
	unlinkat(fd, "f", 0);
	close(fd);
	rmdir(dir);
}

static void test_addr_split(void **state)
{
	static const struct {
		const char *addr, *host, *port;
	} ok[] = {
		{"localhost:8443", "localhost", "8443"},
		{"10.0.0.1:0", "10.0.0.1", "0"},
		{":8000", "", "8000"},
		{"[::1]:65535", "::1", "65535"},
		{"[fe80::1%eth0]:1", "fe80::1%eth0", "1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char *host = NULL, *port = NULL;
		struct err e = {0};
		assert_int_equal(addr_split(ok[i].addr, &host, &port, &e), 0);
		assert_string_equal(host, ok[i].host);
		assert_string_equal(port, ok[i].port);
		assert_int_equal(e.code, 0);
		free(host);
		free(port);
	}

	static const char *const bad[] = {
		"",	    "localhost", "localhost:", "host:http", "host:65536", "host:-1",
		"host: 80", "::1:80",	 "[::1]",      "[::1]80",   "[::1:80",	  "::1]:80",
		"[]:80",    "[[::1]:80", "a[b]:80",    ":",	    "host:80x",	  "[::1]:",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *host = (char *)"untouched", *port = (char *)"untouched";
		struct err e = {0};
		assert_int_equal(addr_split(bad[i], &host, &port, &e), -EINVAL);
		assert_int_equal(e.code, EINVAL);
		/* The message names the address so the user sees what to fix. */
		char quoted[64];
		snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
		assert_non_null(strstr(e.msg, quoted));
		assert_string_equal(host, "untouched");
		assert_string_equal(port, "untouched");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),   cmocka_unit_test(test_addr_split),
		cmocka_unit_test(test_utf8),	    cmocka_unit_test(test_err_chain),
		cmocka_unit_test(test_atomic_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
