/* Unit tests for uidpool.c: range parsing, round-robin allocation, no
 * sharing, exhaustion, recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "uidpool.h"

static void test_parse_range(void **state)
{
	(void)state;
	struct err err;
	uint32_t a, b;
	assert_int_equal(uidpool_parse_range(UIDPOOL_DEFAULT, &a, &b, &err), 0);
	assert_int_equal(a, UIDPOOL_DEFAULT_FIRST);
	assert_int_equal(b, UIDPOOL_DEFAULT_LAST);
	assert_int_equal(uidpool_parse_range("70000-70000", &a, &b, &err), 0);
	assert_int_equal(a, 70000);
	assert_int_equal(b, 70000);

	static const char *const bad[] = {
		"",	 "100",		"-5",		"5-",		"9-5",
		"0-100", "65000-65534", "65535-70000",	"1-4294967295", "a-b",
		"1 -5",	 "+1-5",	"100-16777316", /* 2^24 + 1 uids */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err_clear(&err);
		assert_int_equal(uidpool_parse_range(bad[i], &a, &b, &err), -EINVAL);
		assert_non_null(strstr(err.msg, bad[i]));
	}
}

static void test_round_robin_never_shares(void **state)
{
	(void)state;
	struct uidpool *p = uidpool_new(1000000, 1000009);
	uint32_t u[10], x;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(uidpool_take(p, &u[i]), 0);
		assert_int_equal(u[i], 1000000 + (uint32_t)i);
	}
	assert_int_equal(uidpool_take(p, &x), -EUSERS);
	assert_int_equal(uidpool_held(p), 10);

	/* Released uids come back only after the cursor wraps, oldest
	 * release position first. */
	uidpool_release(p, u[3]);
	uidpool_release(p, u[7]);
	assert_int_equal(uidpool_take(p, &x), 0);
	assert_int_equal(x, u[3]);
	assert_int_equal(uidpool_take(p, &x), 0);
	assert_int_equal(x, u[7]);
	assert_int_equal(uidpool_take(p, &x), -EUSERS);

	/* Releasing twice or outside the range changes nothing. */
	uidpool_release(p, u[0]);
	uidpool_release(p, u[0]);
	uidpool_release(p, 5);
	assert_int_equal(uidpool_held(p), 9);
	uidpool_free(p);
}

static void test_released_uid_is_last_to_return(void **state)
{
	(void)state;
	struct uidpool *p = uidpool_new(50000, 50099);
	uint32_t a, b;
	assert_int_equal(uidpool_take(p, &a), 0);
	uidpool_release(p, a);
	/* 99 other uids come first. */
	for (int i = 0; i < 99; i++) {
		assert_int_equal(uidpool_take(p, &b), 0);
		assert_int_not_equal(b, a);
		uidpool_release(p, b);
	}
	assert_int_equal(uidpool_take(p, &b), 0);
	assert_int_equal(b, a);
	uidpool_free(p);
}

static void test_recovery(void **state)
{
	(void)state;
	struct uidpool *p = uidpool_new(2000, 2199);
	assert_int_equal(uidpool_hold(p, 2005), 0);
	assert_int_equal(uidpool_hold(p, 2005), -EEXIST);
	assert_int_equal(uidpool_hold(p, 1999), -ERANGE);
	assert_int_equal(uidpool_hold(p, 2200), -ERANGE);
	assert_int_equal(uidpool_hold(p, 2006), 0);
	uidpool_resume_after(p, 2005);
	uint32_t u;
	/* 2006 is still held by a recovered job: skipped. */
	assert_int_equal(uidpool_take(p, &u), 0);
	assert_int_equal(u, 2007);
	/* The cursor wraps at the end of the range. */
	uidpool_resume_after(p, 2199);
	assert_int_equal(uidpool_take(p, &u), 0);
	assert_int_equal(u, 2000);
	uidpool_free(p);
}

static void test_large_range_wraps_over_full_words(void **state)
{
	(void)state;
	/* 200 uids: three full 64-bit words and a partial one. */
	struct uidpool *p = uidpool_new(300000, 300199);
	uint32_t u;
	for (int i = 0; i < 200; i++)
		assert_int_equal(uidpool_take(p, &u), 0);
	uidpool_release(p, 300130);
	uidpool_resume_after(p, 300150);
	assert_int_equal(uidpool_take(p, &u), 0);
	assert_int_equal(u, 300130);
	assert_int_equal(uidpool_take(p, &u), -EUSERS);
	uidpool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_range),
		cmocka_unit_test(test_round_robin_never_shares),
		cmocka_unit_test(test_released_uid_is_last_to_return),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_large_range_wraps_over_full_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
