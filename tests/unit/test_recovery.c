/* recovery: the start-up verdict for every combination of facts, and the
 * end time retention counts from. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recovery.h"

static void test_judge(void **state)
{
	static const struct {
		bool locked;
		int status;
		bool started;
		uint64_t waited_ms;
		enum recovery_verdict want;
	} cases[] = {
		/* A recorded status wins whatever else holds. */
		{false, 0, true, 0, RECOVERY_EXITED},
		{true, 0, true, 0, RECOVERY_EXITED},
		{false, 0, false, 0, RECOVERY_EXITED},
		/* An unreadable status. */
		{false, -EBADMSG, true, 0, RECOVERY_DAMAGED},
		{true, -EFBIG, false, 0, RECOVERY_DAMAGED},
		/* Started, no status: alive or dead by the lock. */
		{true, -ENOENT, true, 0, RECOVERY_ATTACH},
		{false, -ENOENT, true, 0, RECOVERY_LOST},
		{false, -ENOENT, true, RECOVERY_GRACE_MS * 10, RECOVERY_LOST},
		/* Not started: wait while locked or within the grace time. */
		{true, -ENOENT, false, 0, RECOVERY_WAIT},
		{true, -ENOENT, false, RECOVERY_GRACE_MS * 10, RECOVERY_WAIT},
		{false, -ENOENT, false, 0, RECOVERY_WAIT},
		{false, -ENOENT, false, RECOVERY_GRACE_MS - 1, RECOVERY_WAIT},
		{false, -ENOENT, false, RECOVERY_GRACE_MS, RECOVERY_DROP},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct recovery_facts f = {
			.locked = cases[i].locked,
			.status = cases[i].status,
			.started = cases[i].started,
			.waited_ms = cases[i].waited_ms,
		};
		assert_int_equal(recovery_judge(&f), cases[i].want);
	}
}

static void test_end_mono(void **state)
{
	const uint64_t s = 1000000000ull, real = 1700000000 * s, mono = 500 * s;
	/* Ended 60 s ago, in either clock. */
	assert_int_equal(recovery_end_mono(real - 60 * s, real, mono), mono - 60 * s);
	/* Unknown or in the future (a clock step): now. */
	assert_int_equal(recovery_end_mono(0, real, mono), mono);
	assert_int_equal(recovery_end_mono(real + 60 * s, real, mono), mono);
	/* Longer ago than the monotonic clock reaches back: its epoch. */
	assert_int_equal(recovery_end_mono(real - 600 * s, real, mono), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_judge),
		cmocka_unit_test(test_end_mono),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
