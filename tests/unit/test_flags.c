/* Unit tests for flags.c: every accepted form, every error message, the
 * byte and duration parsers and the usage text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flags.h"
#include "util.h"

/* A flag set like runc's, reset before every test. */
struct fixture {
	const char *addr;
	bool verbose;
	uint64_t count;
	uint64_t rbps;
	uint64_t timeout;
	struct flag flags[5];
	struct err err;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	f->addr = "localhost:8000";
	f->timeout = 30ull * 1000000000;
	struct flag fl[] = {
		{"addr", FLAG_STRING, &f->addr, "server address", false},
		{"v", FLAG_BOOL, &f->verbose, "verbose", false},
		{"count", FLAG_U64, &f->count, "how many", false},
		{"max_rbps", FLAG_BYTES, &f->rbps, "read bytes/s", false},
		{"timeout", FLAG_DURATION, &f->timeout, "deadline", false},
	};
	memcpy(f->flags, fl, sizeof fl);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define PARSE(f, ...)                                                                              \
	flags_parse((f)->flags, ARRAY_SIZE((f)->flags),                                            \
		    (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), ARGV(__VA_ARGS__),    \
		    &(f)->err)

static void test_forms(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-addr", "a:1", "-count=3", "--max_rbps", "10M", "--timeout=1m",
			       "-v", "rest"),
			 7);
	assert_string_equal(f->addr, "a:1");
	assert_int_equal(f->count, 3);
	assert_int_equal(f->rbps, 10ull << 20);
	assert_int_equal(f->timeout, 60ull * 1000000000);
	assert_true(f->verbose);
	assert_true(f->flags[0].set && f->flags[1].set && f->flags[2].set && f->flags[3].set &&
		    f->flags[4].set);
}

static void test_defaults_kept(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "status", "-addr", "x"), 0);
	assert_string_equal(f->addr, "localhost:8000");
	assert_int_equal(f->timeout, 30ull * 1000000000);
	for (size_t i = 0; i < ARRAY_SIZE(f->flags); i++)
		assert_false(f->flags[i].set);
}

static void test_stops_at_positional(void **state)
{
	struct fixture *f = *state;
	/* "runc start echo -max_rbps 7" runs "echo -max_rbps 7". */
	assert_int_equal(PARSE(f, "echo", "-max_rbps", "7"), 0);
	assert_int_equal(f->rbps, 0);
	assert_int_equal(PARSE(f, "-v", "echo", "-max_rbps", "7"), 1);
	/* A lone "-" is positional. */
	assert_int_equal(PARSE(f, "-count", "1", "-", "-v"), 2);
	/* Nothing positional. */
	assert_int_equal(PARSE(f, "-count", "2"), 2);
}

static void test_double_dash(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-v", "--", "-count", "5"), 2);
	assert_int_equal(f->count, 0);
	assert_int_equal(PARSE(f, "--"), 1);
}

static void test_bool_forms(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-v=false", "x"), 1);
	assert_false(f->verbose);
	assert_true(f->flags[1].set);
	assert_int_equal(PARSE(f, "--v=T", "x"), 1);
	assert_true(f->verbose);
	/* A boolean never takes the next argument. */
	assert_int_equal(PARSE(f, "-v", "false"), 1);
	assert_true(f->verbose);
	assert_int_equal(PARSE(f, "-v=0"), 1);
	assert_false(f->verbose);

	assert_int_equal(PARSE(f, "-v=yes"), -EINVAL);
	assert_string_equal(f->err.msg, "invalid boolean value \"yes\" for -v: parse error");
}

static void test_help(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-h"), -FLAGS_HELP);
	assert_int_equal(PARSE(f, "-help"), -FLAGS_HELP);
	assert_int_equal(PARSE(f, "--help"), -FLAGS_HELP);
	assert_int_equal(PARSE(f, "-count", "1", "-h", "x"), -FLAGS_HELP);
	/* After the flags, -h is an argument. */
	assert_int_equal(PARSE(f, "x", "-h"), 0);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-foo"), -EINVAL);
	assert_string_equal(f->err.msg, "flag provided but not defined: -foo");
	assert_int_equal(f->err.kind, ERR_INVALID);

	assert_int_equal(PARSE(f, "--foo=bar"), -EINVAL);
	assert_string_equal(f->err.msg, "flag provided but not defined: -foo");

	assert_int_equal(PARSE(f, "-max_rbps", "abc"), -EINVAL);
	assert_string_equal(f->err.msg, "invalid value \"abc\" for flag -max_rbps: invalid syntax");

	assert_int_equal(PARSE(f, "-max_rbps=99999999999999999999"), -EINVAL);
	assert_string_equal(f->err.msg,
			    "invalid value \"99999999999999999999\" for flag -max_rbps: value out "
			    "of range");

	assert_int_equal(PARSE(f, "-count", "-1"), -EINVAL);
	assert_string_equal(f->err.msg, "invalid value \"-1\" for flag -count: invalid syntax");

	assert_int_equal(PARSE(f, "-timeout", "5"), -EINVAL);
	assert_string_equal(f->err.msg, "invalid value \"5\" for flag -timeout: invalid syntax");

	assert_int_equal(PARSE(f, "-addr"), -EINVAL);
	assert_string_equal(f->err.msg, "flag needs an argument: -addr");

	assert_int_equal(PARSE(f, "-v", "--count"), -EINVAL);
	assert_string_equal(f->err.msg, "flag needs an argument: -count");

	assert_int_equal(PARSE(f, "---addr", "x"), -EINVAL);
	assert_string_equal(f->err.msg, "bad flag syntax: ---addr");

	assert_int_equal(PARSE(f, "-=x"), -EINVAL);
	assert_string_equal(f->err.msg, "bad flag syntax: -=x");
}

static void test_empty_string_value(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(PARSE(f, "-addr=", "x"), 1);
	assert_string_equal(f->addr, "");
	assert_int_equal(PARSE(f, "-addr", "", "x"), 2);
	assert_string_equal(f->addr, "");
	/* The value may itself look like a flag, as in Go. */
	assert_int_equal(PARSE(f, "-addr", "-v"), 2);
	assert_string_equal(f->addr, "-v");
}

static void test_bytes(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t out;
	} ok[] = {
		{"0", 0},
		{"123", 123},
		{"512B", 512},
		{"1K", 1024},
		{"1k", 1024},
		{"10M", 10ull << 20},
		{"10m", 10ull << 20},
		{"2G", 2ull << 30},
		{"3T", 3ull << 40},
		{"4KB", 4096},
		{"4KiB", 4096},
		{"5MiB", 5ull << 20},
		{"18446744073709551615", UINT64_MAX},
		{"16777215T", 16777215ull << 40},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 42;
		assert_int_equal(flags_parse_bytes(ok[i].in, &v), 0);
		assert_int_equal(v, ok[i].out);
	}
	static const char *const bad[] = {"",	 "abc", "K",   "-1",  "+1",   "1.5M", "1 M", "1P",
					  "1Ki", "1iB", "1KK", "1BB", "0x10", "1M ",  " 1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 42;
		if (flags_parse_bytes(bad[i], &v) != -EINVAL)
			fail_msg("bytes \"%s\" accepted", bad[i]);
		assert_int_equal(v, 42);
	}
	uint64_t v = 42;
	assert_int_equal(flags_parse_bytes("16777216T", &v), -ERANGE);
	assert_int_equal(flags_parse_bytes("18446744073709551616", &v), -ERANGE);
	assert_int_equal(flags_parse_bytes("17179869184G", &v), -ERANGE);
	assert_int_equal(v, 42);
}

static void test_duration(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t out;
	} ok[] = {
		{"0", 0},
		{"0s", 0},
		{"5ns", 5},
		{"7us", 7000},
		{"7\xc2\xb5s", 7000},
		{"7\xce\xbcs", 7000},
		{"300ms", 300000000},
		{"10s", 10000000000ull},
		{"1.5s", 1500000000},
		{".5s", 500000000},
		{"1.s", 1000000000},
		{"2m", 120000000000ull},
		{"1h30m", 5400000000000ull},
		{"1h2m3s4ms5us6ns", 3723004005006ull},
		{"1.0000000001s", 1000000000},
		{"0.000000001s", 1},
		{"2562047h", 2562047ull * 3600 * 1000000000},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 42;
		if (flags_parse_duration(ok[i].in, &v) != 0)
			fail_msg("duration \"%s\" refused", ok[i].in);
		assert_int_equal(v, ok[i].out);
	}
	static const char *const bad[] = {"",	"5",   "s",   ".s",  "-1s", "1d",
					  "1S", "1 s", "1.5", "1s5", "1hh", "1m.s"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 42;
		if (flags_parse_duration(bad[i], &v) != -EINVAL)
			fail_msg("duration \"%s\" accepted", bad[i]);
		assert_int_equal(v, 42);
	}
	uint64_t v = 42;
	assert_int_equal(flags_parse_duration("99999999999999999999s", &v), -ERANGE);
	assert_int_equal(flags_parse_duration("6000000h", &v), -ERANGE);
	assert_int_equal(flags_parse_duration("5124095h5124095h", &v), -ERANGE);
	assert_int_equal(v, 42);
}

static char *usage_text(const struct flag *flags, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	flags_usage(out, flags, n);
	fclose(out);
	return buf;
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	f->rbps = 10ull << 20;
	_cleanup_free_ char *text = usage_text(f->flags, ARRAY_SIZE(f->flags));
	assert_string_equal(text, "  -addr string\n"
				  "    \tserver address (default \"localhost:8000\")\n"
				  "  -v\tverbose\n"
				  "  -count uint\n"
				  "    \thow many\n"
				  "  -max_rbps bytes\n"
				  "    \tread bytes/s (default 10M)\n"
				  "  -timeout duration\n"
				  "    \tdeadline (default 30s)\n");

	f->timeout = 5400500000000ull;
	f->count = 7;
	f->verbose = true;
	f->addr = NULL;
	f->rbps = 1000;
	_cleanup_free_ char *t2 = usage_text(f->flags, ARRAY_SIZE(f->flags));
	assert_non_null(strstr(t2, "(default 1h30m0.5s)"));
	assert_non_null(strstr(t2, "how many (default 7)"));
	assert_non_null(strstr(t2, "verbose (default true)"));
	assert_non_null(strstr(t2, "read bytes/s (default 1000)"));
	assert_null(strstr(t2, "server address (default"));

	f->timeout = 1500000;
	_cleanup_free_ char *t3 = usage_text(&f->flags[4], 1);
	assert_string_equal(t3, "  -timeout duration\n    \tdeadline (default 1.5ms)\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stops_at_positional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_dash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bool_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_help, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_string_value, setup, teardown),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_duration),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
