/* Unit tests for grpc.c: framing, grpc-timeout, grpc-message encoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc.h"

/* Collects decoded messages. */
struct sink {
	int n;
	size_t lens[16];
	uint8_t data[16][256];
	bool compressed[16];
	int stop_after; /* return non-zero after this many messages (0 = never) */
};

static int collect(void *ctx, const uint8_t *msg, size_t len, bool compressed)
{
	struct sink *s = ctx;
	assert_true(s->n < 16);
	s->lens[s->n] = len;
	s->compressed[s->n] = compressed;
	memcpy(s->data[s->n], msg, len < 256 ? len : 256);
	s->n++;
	if (s->stop_after && s->n == s->stop_after)
		return 42;
	return 0;
}

/* Builds prefix + payload into buf; returns total length. */
static size_t frame(uint8_t *buf, const char *payload, uint8_t flag)
{
	size_t len = strlen(payload);
	grpc_prefix_encode(buf, (uint32_t)len);
	buf[0] = flag;
	memcpy(buf + GRPC_PREFIX_LEN, payload, len);
	return GRPC_PREFIX_LEN + len;
}

static void test_code_names(void **state)
{
	assert_string_equal(grpc_code_name(GRPC_OK), "OK");
	assert_string_equal(grpc_code_name(GRPC_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(grpc_code_name(GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
	assert_string_equal(grpc_code_name(17), "UNKNOWN_CODE");
	assert_string_equal(grpc_code_name(-1), "UNKNOWN_CODE");
}

static void test_prefix_encode(void **state)
{
	uint8_t p[GRPC_PREFIX_LEN];
	grpc_prefix_encode(p, 0x01020304);
	uint8_t want[] = {0, 1, 2, 3, 4};
	assert_memory_equal(p, want, sizeof want);
	grpc_prefix_encode(p, 0);
	uint8_t zero[5] = {0};
	assert_memory_equal(p, zero, sizeof zero);
}

static void test_decode_whole(void **state)
{
	uint8_t buf[64];
	size_t n = frame(buf, "hello", 0);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 0);
	assert_int_equal(d.max_message, GRPC_DEFAULT_MAX_MESSAGE);
	assert_true(grpc_decoder_idle(&d));
	assert_int_equal(grpc_decoder_feed(&d, buf, n, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.lens[0], 5);
	assert_memory_equal(s.data[0], "hello", 5);
	assert_false(s.compressed[0]);
	assert_true(grpc_decoder_idle(&d));
	grpc_decoder_free(&d);
}

static void test_decode_byte_by_byte(void **state)
{
	uint8_t buf[128];
	size_t n = frame(buf, "first message", 0);
	n += frame(buf + n, "", 0);
	n += frame(buf + n, "third", 1);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 100);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(grpc_decoder_feed(&d, buf + i, 1, collect, &s), 0);
		/* Idle exactly at message boundaries: after 18, 23 and 33 bytes. */
		bool boundary = i + 1 == 18 || i + 1 == 23 || i + 1 == n;
		assert_int_equal(grpc_decoder_idle(&d), boundary);
	}
	assert_int_equal(s.n, 3);
	assert_int_equal(s.lens[0], 13);
	assert_memory_equal(s.data[0], "first message", 13);
	assert_int_equal(s.lens[1], 0);
	assert_int_equal(s.lens[2], 5);
	assert_true(s.compressed[2]);
	assert_true(grpc_decoder_idle(&d));
	grpc_decoder_free(&d);
}

static void test_decode_every_split(void **state)
{
	uint8_t buf[128];
	size_t n = frame(buf, "alpha", 0);
	n += frame(buf + n, "beta-gamma", 0);
	for (size_t cut = 0; cut <= n; cut++) {
		struct grpc_decoder d;
		struct sink s = {0};
		grpc_decoder_init(&d, 64);
		assert_int_equal(grpc_decoder_feed(&d, buf, cut, collect, &s), 0);
		assert_int_equal(grpc_decoder_feed(&d, buf + cut, n - cut, collect, &s), 0);
		assert_int_equal(s.n, 2);
		assert_memory_equal(s.data[0], "alpha", 5);
		assert_int_equal(s.lens[1], 10);
		assert_memory_equal(s.data[1], "beta-gamma", 10);
		assert_true(grpc_decoder_idle(&d));
		grpc_decoder_free(&d);
	}
}

static void test_decode_partial_not_idle(void **state)
{
	uint8_t buf[64];
	size_t n = frame(buf, "abcdef", 0);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 64);
	assert_int_equal(grpc_decoder_feed(&d, buf, 3, collect, &s), 0);
	assert_false(grpc_decoder_idle(&d));
	assert_int_equal(grpc_decoder_feed(&d, buf + 3, n - 4, collect, &s), 0);
	assert_false(grpc_decoder_idle(&d));
	assert_int_equal(s.n, 0);
	grpc_decoder_free(&d); /* frees the partial buffer */
}

static void test_decode_oversized(void **state)
{
	uint8_t p[GRPC_PREFIX_LEN];
	grpc_prefix_encode(p, 5 * 1024 * 1024);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 0);
	assert_int_equal(grpc_decoder_feed(&d, p, 3, collect, &s), 0);
	assert_int_equal(grpc_decoder_feed(&d, p + 3, 2, collect, &s), -EMSGSIZE);
	assert_int_equal(d.msg_len, 5 * 1024 * 1024);
	assert_int_equal(s.n, 0);
	grpc_decoder_free(&d);

	/* Exactly the limit is fine. */
	grpc_decoder_init(&d, 4);
	uint8_t buf[16];
	size_t n = frame(buf, "four", 0);
	assert_int_equal(grpc_decoder_feed(&d, buf, n, collect, &s), 0);
	assert_int_equal(s.n, 1);
	n = frame(buf, "fiver", 0);
	assert_int_equal(grpc_decoder_feed(&d, buf, n, collect, &s), -EMSGSIZE);
	grpc_decoder_free(&d);
}

static void test_decode_lying_prefix(void **state)
{
	/* Announces 1 MiB but sends 10 bytes: no message, no huge buffer. */
	uint8_t buf[32];
	grpc_prefix_encode(buf, 1 << 20);
	memset(buf + 5, 'x', 10);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 4 << 20);
	assert_int_equal(grpc_decoder_feed(&d, buf, 15, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_false(grpc_decoder_idle(&d));
	assert_true(d.msg_cap < 65536);
	assert_int_equal(d.msg_have, 10);
	grpc_decoder_free(&d);
}

static void test_decode_bad_flag(void **state)
{
	uint8_t buf[16];
	size_t n = frame(buf, "x", 2);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 0);
	assert_int_equal(grpc_decoder_feed(&d, buf, n, collect, &s), -EPROTO);
	assert_int_equal(s.n, 0);
	grpc_decoder_free(&d);
	buf[0] = 0x80;
	grpc_decoder_init(&d, 0);
	assert_int_equal(grpc_decoder_feed(&d, buf, 1, collect, &s), 0);
	assert_int_equal(grpc_decoder_feed(&d, buf + 1, n - 1, collect, &s), -EPROTO);
	grpc_decoder_free(&d);
}

static void test_decode_callback_stops(void **state)
{
	uint8_t buf[64];
	size_t n = frame(buf, "a", 0);
	n += frame(buf + n, "b", 0);
	n += frame(buf + n, "c", 0);
	struct grpc_decoder d;
	struct sink s = {.stop_after = 2};
	grpc_decoder_init(&d, 0);
	assert_int_equal(grpc_decoder_feed(&d, buf, n, collect, &s), 42);
	assert_int_equal(s.n, 2);
	grpc_decoder_free(&d);
}

static void test_decode_large_message(void **state)
{
	size_t len = 300000;
	uint8_t *buf = malloc(len + GRPC_PREFIX_LEN);
	grpc_prefix_encode(buf, (uint32_t)len);
	for (size_t i = 0; i < len; i++)
		buf[GRPC_PREFIX_LEN + i] = (uint8_t)(i * 7);
	struct grpc_decoder d;
	struct sink s = {0};
	grpc_decoder_init(&d, 0);
	/* Odd-sized chunks, as DATA frames would split it. */
	size_t off = 0, step = 16383;
	while (off < len + GRPC_PREFIX_LEN) {
		size_t k = len + GRPC_PREFIX_LEN - off < step ? len + GRPC_PREFIX_LEN - off : step;
		assert_int_equal(grpc_decoder_feed(&d, buf + off, k, collect, &s), 0);
		off += k;
	}
	assert_int_equal(s.n, 1);
	assert_int_equal(s.lens[0], len);
	assert_memory_equal(s.data[0], buf + GRPC_PREFIX_LEN, 256);
	grpc_decoder_free(&d);
	free(buf);
}

static void check_timeout(const char *s, uint64_t want)
{
	uint64_t ns = 12345;
	assert_int_equal(grpc_timeout_parse(s, strlen(s), &ns), 0);
	assert_true(ns == want);
}

static void check_bad_timeout(const char *s)
{
	uint64_t ns = 7;
	assert_int_equal(grpc_timeout_parse(s, strlen(s), &ns), -EINVAL);
	assert_true(ns == 7);
}

static void test_timeout_parse(void **state)
{
	check_timeout("1H", 3600000000000ull);
	check_timeout("2M", 120000000000ull);
	check_timeout("1S", 1000000000ull);
	check_timeout("250m", 250000000ull);
	check_timeout("100u", 100000ull);
	check_timeout("5n", 5);
	check_timeout("0S", 0);
	check_timeout("99999999n", 99999999ull);
	check_timeout("00000001m", 1000000ull);
	/* 99999999 hours overflows 64-bit nanoseconds: saturate. */
	check_timeout("99999999H", UINT64_MAX);
	check_timeout("99999999S", 99999999000000000ull);

	check_bad_timeout("");
	check_bad_timeout("S");
	check_bad_timeout("1");
	check_bad_timeout("10");
	check_bad_timeout("1s");
	check_bad_timeout("1x");
	check_bad_timeout("-1S");
	check_bad_timeout(" 1S");
	check_bad_timeout("1 S");
	check_bad_timeout("123456789S"); /* 9 digits */
	check_bad_timeout("1.5S");
	/* Length-bounded: does not read past len. */
	uint64_t ns;
	assert_int_equal(grpc_timeout_parse("1Sxyz", 2, &ns), 0);
	assert_true(ns == 1000000000ull);
}

static void check_format(uint64_t ns, const char *want)
{
	char buf[16];
	grpc_timeout_format(ns, buf, sizeof buf);
	assert_string_equal(buf, want);
	uint64_t back;
	assert_int_equal(grpc_timeout_parse(buf, strlen(buf), &back), 0);
	assert_true(back >= ns || ns > 99999999ull * 3600000000000ull);
}

static void test_timeout_format(void **state)
{
	check_format(0, "0H");
	check_format(1000000000ull, "1S");
	check_format(250000000ull, "250m");
	check_format(3600000000000ull, "1H");
	check_format(90000000000ull, "90S");
	check_format(1, "1n");
	check_format(123456789ull, "123457u"); /* not exact in 8 digits: round up */
	check_format(1500, "1500n");
	check_format(UINT64_MAX, "5124096H");
}

static void test_message_encoding(void **state)
{
	char *e = grpc_message_encode("plain text ok");
	assert_string_equal(e, "plain text ok");
	free(e);
	e = grpc_message_encode("50% done\n\xc3\xa9");
	assert_string_equal(e, "50%25 done%0A%C3%A9");
	char *d = grpc_message_decode(e, strlen(e));
	assert_string_equal(d, "50% done\n\xc3\xa9");
	free(d);
	free(e);

	/* Every byte value round-trips. */
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	e = grpc_message_encode(all);
	for (const char *p = e; *p; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e);
	d = grpc_message_decode(e, strlen(e));
	assert_string_equal(d, all);
	free(d);
	free(e);

	/* Invalid escapes stay literal; lower-case hex is accepted. */
	d = grpc_message_decode("%zz%4%%41%e9", 12);
	assert_string_equal(d, "%zz%4%A\xe9");
	free(d);
	d = grpc_message_decode("abc%", 4);
	assert_string_equal(d, "abc%");
	free(d);
	d = grpc_message_decode("ab%4", 4);
	assert_string_equal(d, "ab%4");
	free(d);
}

static void test_content_type(void **state)
{
	static const struct {
		const char *v;
		bool ok;
	} cases[] = {
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"application/grpc;charset=utf-8", false},
		{"application/grpc+json", false},
		{"application/grpc+json;x=y", false},
		{"application/grpc+protobuf", false},
		{"application/grpc+prot", false},
		{"application/grpc+", false},
		{"application/grpcx", false},
		{"application/grp", false},
		{"application/json", false},
		{"Application/grpc", false},
		{"text/plain", false},
		{" application/grpc", false},
		{"", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool got = grpc_content_type_ok(cases[i].v, strlen(cases[i].v));
		if (got != cases[i].ok)
			fail_msg("content-type \"%s\": got %d, want %d", cases[i].v, got,
				 cases[i].ok);
	}
	/* The length bounds the check: no reading past it for a NUL. */
	assert_false(grpc_content_type_ok("application/grpc", 15));
	assert_true(grpc_content_type_ok("application/grpc+proto", 16));
	assert_false(grpc_content_type_ok("application/grpcx", 17));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_names),
		cmocka_unit_test(test_prefix_encode),
		cmocka_unit_test(test_decode_whole),
		cmocka_unit_test(test_decode_byte_by_byte),
		cmocka_unit_test(test_decode_every_split),
		cmocka_unit_test(test_decode_partial_not_idle),
		cmocka_unit_test(test_decode_oversized),
		cmocka_unit_test(test_decode_lying_prefix),
		cmocka_unit_test(test_decode_bad_flag),
		cmocka_unit_test(test_decode_callback_stops),
		cmocka_unit_test(test_decode_large_message),
		cmocka_unit_test(test_timeout_parse),
		cmocka_unit_test(test_timeout_format),
		cmocka_unit_test(test_message_encoding),
		cmocka_unit_test(test_content_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
