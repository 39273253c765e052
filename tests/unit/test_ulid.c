/* Unit tests for ulid.c: monotonicity, overflow, formatting, strict parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "ulid.h"

static uint64_t time_of(const struct ulid *u)
{
	uint64_t t = 0;
	for (int i = 0; i < 6; i++)
		t = t << 8 | u->b[i];
	return t;
}

static void test_new_ms_sets_time(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	struct ulid a, b;
	assert_int_equal(ulid_next(&g, 1700000000123ULL, &a), 0);
	assert_int_equal(time_of(&a), 1700000000123ULL);
	assert_int_equal(ulid_next(&g, 1700000000124ULL, &b), 0);
	assert_int_equal(time_of(&b), 1700000000124ULL);
	assert_true(memcmp(&a, &b, 16) < 0);
}

static void test_monotonic_same_ms(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	struct ulid prev, cur;
	assert_int_equal(ulid_next(&g, 5000, &prev), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(ulid_next(&g, 5000, &cur), 0);
		assert_true(memcmp(&prev, &cur, 16) < 0);
		char a[ULID_LEN + 1], b[ULID_LEN + 1];
		ulid_format(&prev, a);
		ulid_format(&cur, b);
		assert_true(strcmp(a, b) < 0);
		prev = cur;
	}
}

static void test_clock_backwards(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	struct ulid a, b;
	assert_int_equal(ulid_next(&g, 9000, &a), 0);
	assert_int_equal(ulid_next(&g, 8000, &b), 0);
	assert_int_equal(time_of(&b), 9000);
	assert_true(memcmp(&a, &b, 16) < 0);
}

static void test_carry(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	struct ulid u;
	assert_int_equal(ulid_next(&g, 42, &u), 0);
	/* Random part ...00 FF FF FF: the increment must carry three bytes. */
	memset(g.last.b + 6, 0, 10);
	g.last.b[12] = 0x00;
	memset(g.last.b + 13, 0xff, 3);
	g.last.b[11] = 0x07;
	assert_int_equal(ulid_next(&g, 42, &u), 0);
	assert_int_equal(u.b[11], 0x07);
	assert_int_equal(u.b[12], 0x01);
	assert_int_equal(u.b[13], 0);
	assert_int_equal(u.b[14], 0);
	assert_int_equal(u.b[15], 0);
	assert_int_equal(time_of(&u), 42);
}

static void test_overflow(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	struct ulid u;
	assert_int_equal(ulid_next(&g, 77, &u), 0);
	memset(g.last.b + 6, 0xff, 10);
	struct ulid before = g.last;
	assert_int_equal(ulid_next(&g, 77, &u), -EOVERFLOW);
	/* The time bytes must not have been touched by the carry. */
	assert_memory_equal(&g.last, &before, 16);
	/* A new millisecond recovers. */
	assert_int_equal(ulid_next(&g, 78, &u), 0);
	assert_int_equal(time_of(&u), 78);
}

static void test_format_known(void **state)
{
	(void)state;
	struct ulid u;
	char s[ULID_LEN + 1];
	memset(&u, 0, sizeof u);
	ulid_format(&u, s);
	assert_string_equal(s, "00000000000000000000000000");
	memset(&u, 0xff, sizeof u);
	ulid_format(&u, s);
	assert_string_equal(s, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
	memset(&u, 0, sizeof u);
	u.b[15] = 1;
	ulid_format(&u, s);
	assert_string_equal(s, "00000000000000000000000001");
	/* Time 1469918176385 ms from the ULID spec's example prefix. */
	memset(&u, 0, sizeof u);
	uint64_t t = 1469918176385ULL;
	for (int i = 5; i >= 0; i--, t >>= 8)
		u.b[i] = (uint8_t)t;
	ulid_format(&u, s);
	assert_memory_equal(s, "01ARYZ6S41", 10);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct ulid_gen g = {0};
	for (int i = 0; i < 2000; i++) {
		struct ulid u, v;
		char s[ULID_LEN + 1];
		assert_int_equal(ulid_next(&g, 1000 + (uint64_t)i * 7, &u), 0);
		ulid_format(&u, s);
		assert_int_equal(strlen(s), ULID_LEN);
		assert_int_equal(ulid_parse(s, ULID_LEN, &v), 0);
		assert_memory_equal(&u, &v, 16);
	}
	struct ulid v;
	assert_int_equal(ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", ULID_LEN, &v), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(v.b[i], 0xff);
}

static void test_parse_strict(void **state)
{
	(void)state;
	struct ulid u;
	const char *good = "01ARYZ6S41TSV4RRFFQ69G5FAV";
	assert_int_equal(ulid_parse(good, strlen(good), &u), 0);
	/* Case-insensitive, and the same id either way. */
	struct ulid lower;
	char canon[ULID_LEN + 1];
	assert_int_equal(ulid_parse("01arYZ6s41tsv4rrffq69g5fav", 26, &lower), 0);
	assert_memory_equal(lower.b, u.b, sizeof u.b);
	ulid_format(&lower, canon);
	assert_string_equal(canon, good);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAi", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAl", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAo", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAu", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA@", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA`", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA{", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAI", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAL", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAO", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAU", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA-", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse(good, 25, &u), -EINVAL);
	assert_int_equal(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAVX", 27, &u), -EINVAL);
	assert_int_equal(ulid_parse("", 0, &u), -EINVAL);
	assert_int_equal(ulid_parse("81ARYZ6S41TSV4RRFFQ69G5FAV", 26, &u), -EINVAL);
	assert_int_equal(ulid_parse("Z1ARYZ6S41TSV4RRFFQ69G5FAV", 26, &u), -EINVAL);
	char nul[27];
	memcpy(nul, good, 27);
	nul[10] = '\0';
	assert_int_equal(ulid_parse(nul, 26, &u), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_ms_sets_time), cmocka_unit_test(test_monotonic_same_ms),
		cmocka_unit_test(test_clock_backwards),	 cmocka_unit_test(test_carry),
		cmocka_unit_test(test_overflow),	 cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_round_trip),	 cmocka_unit_test(test_parse_strict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
