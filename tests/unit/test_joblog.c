/* joblog: hand encoding and decoding of rund.JobLog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "joblog.h"

static size_t msg_of(uint8_t *buf, enum log_stream stream, const char *payload, size_t len)
{
	size_t n = joblog_header(buf, stream, len, 0, 0);
	memcpy(buf + n, payload, len);
	return n + len;
}

static void test_round_trip(void **state)
{
	(void)state;
	uint8_t buf[400];
	struct joblog_view v;
	size_t n = msg_of(buf, LOG_STDOUT, "hello", 5);
	assert_int_equal(n, 7);
	assert_int_equal(joblog_parse(buf, n, &v), 0);
	assert_int_equal(v.out_len, 5);
	assert_memory_equal(v.out, "hello", 5);
	assert_null(v.err);

	char big[300];
	memset(big, 'x', sizeof big); /* a two-byte length varint */
	n = msg_of(buf, LOG_STDERR, big, sizeof big);
	assert_int_equal(n, 3 + sizeof big);
	assert_int_equal(joblog_parse(buf, n, &v), 0);
	assert_int_equal(v.err_len, sizeof big);
	assert_int_equal(v.out_len, 0);

	struct logchunk t = {.stream = LOG_TRUNCATED, .truncated_at = 1ull << 40};
	n = joblog_notice(buf, &t);
	assert_int_equal(joblog_parse(buf, n, &v), 0);
	assert_true(v.truncated_at == 1ull << 40);

	/* Empty message: nothing set. */
	assert_int_equal(joblog_parse(buf, 0, &v), 0);
	assert_int_equal(v.out_len + v.err_len, 0);
}

/* Offsets, times and gap notices, byte for byte as protobuf encodes them
 * (fields in number order), and back. */
static void test_offset_time_gap(void **state)
{
	(void)state;
	uint8_t buf[JOBLOG_HDR_MAX + 8];
	/* offset 300, time 1.5 s, stdout "ab" */
	size_t n = joblog_header(buf, LOG_STDOUT, 2, 300, 1500000000ull);
	const uint8_t want[] = {0x20, 0xac, 0x02, 0x3a, 0x08, 0x08, 0x01, 0x10,
				0x80, 0xca, 0xb5, 0xee, 0x01, 0x0a, 0x02};
	assert_int_equal(n, sizeof want);
	assert_memory_equal(buf, want, n);
	memcpy(buf + n, "ab", 2);
	struct joblog_view v;
	assert_int_equal(joblog_parse(buf, n + 2, &v), 0);
	assert_int_equal(v.offset, 300);
	assert_true(v.has_time);
	assert_int_equal(v.time_sec, 1);
	assert_int_equal(v.time_nsec, 500000000);
	assert_int_equal(v.out_len, 2);
	assert_int_equal(joblog_header(buf, LOG_STDERR, 2, 0, 0), 2); /* offset 0: omitted */

	/* dropped by the cap: no truncated_at (the original notice means "later
	 * output was discarded", which is not so) */
	struct logchunk g = {.stream = LOG_GAP, .off = 5000, .lost = 4000, .why = LOG_GAP_DROPPED};
	n = joblog_notice(buf, &g);
	assert_int_equal(joblog_parse(buf, n, &v), 0);
	assert_int_equal(v.truncated_at, 0);
	assert_int_equal(v.offset, 5000);
	assert_int_equal(v.lost_bytes, 4000);
	assert_int_equal(v.gap_reason, 1);
	assert_null(v.out);
	/* never stored: the original notice, at the offset where storing stopped */
	g.why = LOG_GAP_UNSTORED;
	n = joblog_notice(buf, &g);
	assert_int_equal(joblog_parse(buf, n, &v), 0);
	assert_int_equal(v.truncated_at, 1000);
	assert_int_equal(v.gap_reason, 2);
	/* a malformed Timestamp */
	const uint8_t bad[] = {0x3a, 0x02, 0x09, 0x01};
	assert_int_equal(joblog_parse(bad, sizeof bad, &v), -EBADMSG);
}

/* Headers at the edges of the length varint's byte count: 127 is the
 * longest one-byte length, 128 the shortest two-byte one, 16383 the
 * longest two-byte one (and 16384 the first three-byte one). The expected
 * bytes are the protobuf base-128 varint, least significant group first. */
static void test_header_length_edges(void **state)
{
	(void)state;
	static const struct {
		size_t len;
		uint8_t hdr[4];
		size_t hdr_len;
	} cases[] = {
		{127, {0x0a, 0x7f}, 2},
		{128, {0x0a, 0x80, 0x01}, 3},
		{16383, {0x0a, 0xff, 0x7f}, 3},
		{16384, {0x0a, 0x80, 0x80, 0x01}, 4},
	};
	static uint8_t payload[16384], buf[JOBLOG_HDR_MAX + 16384];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int s = 0; s < 2; s++) {
			enum log_stream stream = s ? LOG_STDERR : LOG_STDOUT;
			size_t len = cases[i].len;
			size_t n = joblog_header(buf, stream, len, 0, 0);
			assert_int_equal(n, cases[i].hdr_len);
			/* Key: field 1 (stdout) or 2 (stderr), wire type 2. */
			assert_int_equal(buf[0], s ? 0x12 : 0x0a);
			assert_memory_equal(buf + 1, cases[i].hdr + 1, n - 1);
			memcpy(buf + n, payload, len);

			struct joblog_view v;
			assert_int_equal(joblog_parse(buf, n + len, &v), 0);
			const uint8_t *got = s ? v.err : v.out;
			assert_int_equal(s ? v.err_len : v.out_len, len);
			assert_int_equal(s ? v.out_len : v.err_len, 0);
			assert_ptr_equal(got, buf + n);
			assert_memory_equal(got, payload, len);
			assert_true(v.truncated_at == 0);
			/* One byte short is malformed, not a shorter payload. */
			assert_int_equal(joblog_parse(buf, n + len - 1, &v), -EBADMSG);
		}
	}
}

static void test_unknown_fields_and_repeats(void **state)
{
	(void)state;
	const uint8_t msg[] = {
		0x20, 0x96, 0x01,			   /* field 4 varint */
		0x29, 1,    2,	  3,	4, 5,	6,   7, 8, /* field 5 fixed64 */
		0x35, 1,    2,	  3,	4,		   /* field 6 fixed32 */
		0x4a, 2,    'z',  'z',			   /* field 9 bytes */
		0x0a, 1,    'a',  0x0a, 2, 'b', 'c',	   /* stdout twice: last wins */
	};
	struct joblog_view v;
	assert_int_equal(joblog_parse(msg, sizeof msg, &v), 0);
	assert_int_equal(v.out_len, 2);
	assert_memory_equal(v.out, "bc", 2);
}

static void test_malformed(void **state)
{
	(void)state;
	struct joblog_view v;
	static const struct {
		uint8_t b[12];
		size_t n;
	} bad[] = {
		{{0x0a, 5, 'a'}, 3},  /* length past the end */
		{{0x0a, 0x80}, 2},    /* truncated length varint */
		{{0x80}, 1},	      /* truncated key */
		{{0x00, 1}, 2},	      /* field 0 */
		{{0x0b}, 1},	      /* wire type 3 (group) */
		{{0x0e}, 1},	      /* wire type 6 */
		{{0x29, 1, 2, 3}, 4}, /* short fixed64 */
		{{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 11}, /* huge */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (joblog_parse(bad[i].b, bad[i].n, &v) != -EBADMSG)
			fail_msg("case %zu accepted", i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_offset_time_gap),
		cmocka_unit_test(test_header_length_edges),
		cmocka_unit_test(test_unknown_fields_and_repeats),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
