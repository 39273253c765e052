/* Unit tests for logstore.c: writer → follower round trips, partial and
 * long records, the output cap, corruption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "logstore.h"
#include "util.h"

static char tmpdir[64];
static int dirfd_;

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_logstore.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	unlinkat(dirfd_, "log", 0);
	close(dirfd_);
	rmdir(tmpdir);
	return 0;
}

static void reset_log(void)
{
	unlinkat(dirfd_, "log", 0);
}

static void append_raw(const void *p, size_t n)
{
	int fd = openat(dirfd_, "log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, p, n), 0);
	close(fd);
}

static void test_parse(void **state)
{
	(void)state;
	const uint8_t rec[] = {1, 3, 0, 0, 0, 'a', 'b', 'c', 2};
	enum log_stream s;
	const uint8_t *d;
	size_t len, used;
	assert_int_equal(logstore_parse(rec, sizeof rec, &s, &d, &len, &used), 1);
	assert_int_equal(s, LOG_STDOUT);
	assert_int_equal(len, 3);
	assert_int_equal(used, 8);
	assert_memory_equal(d, "abc", 3);
	for (size_t n = 0; n < 8; n++)
		assert_int_equal(logstore_parse(rec, n, &s, &d, &len, &used), 0);
	const uint8_t bad_stream[] = {0, 0, 0, 0, 0};
	assert_int_equal(logstore_parse(bad_stream, 1, &s, &d, &len, &used), -EBADMSG);
	const uint8_t bad_stream2[] = {4};
	assert_int_equal(logstore_parse(bad_stream2, 1, &s, &d, &len, &used), -EBADMSG);
	const uint8_t too_long[] = {2, 1, 0, 0x10, 0};
	assert_int_equal(logstore_parse(too_long, 5, &s, &d, &len, &used), -EBADMSG);
	const uint8_t bad_trunc[] = {3, 4, 0, 0, 0, 1, 2, 3, 4};
	assert_int_equal(logstore_parse(bad_trunc, sizeof bad_trunc, &s, &d, &len, &used),
			 -EBADMSG);
	const uint8_t empty[] = {2, 0, 0, 0, 0};
	assert_int_equal(logstore_parse(empty, 5, &s, &d, &len, &used), 1);
	assert_int_equal(len, 0);
}

/* Reads everything currently available and appends it to per-call arrays
 * of (stream, byte) so order across streams can be checked. */
struct seen {
	uint8_t *data;
	uint8_t *stream;
	size_t n, cap;
	uint64_t truncated_at;
	int truncated;
	size_t pieces, max_piece;
};

static int drain(struct logreader *r, size_t max, struct seen *s)
{
	struct logchunk c;
	int rc;
	while ((rc = logreader_next(r, max, &c)) == 1) {
		if (c.stream == LOG_TRUNCATED) {
			s->truncated++;
			s->truncated_at = c.truncated_at;
			assert_int_equal(c.len, 0);
			continue;
		}
		assert_true(c.len > 0);
		if (max)
			assert_true(c.len <= max);
		if (c.len > s->max_piece)
			s->max_piece = c.len;
		s->pieces++;
		if (s->n + c.len > s->cap) {
			s->cap = (s->n + c.len) * 2;
			s->data = xrealloc(s->data, s->cap);
			s->stream = xrealloc(s->stream, s->cap);
		}
		memcpy(s->data + s->n, c.data, c.len);
		memset(s->stream + s->n, c.stream, c.len);
		s->n += c.len;
	}
	return rc;
}

static void seen_free(struct seen *s)
{
	free(s->data);
	free(s->stream);
	memset(s, 0, sizeof *s);
}

static void test_round_trip_interleaved(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 0), 0);
	struct logreader r;
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);

	size_t total = 4u << 20;
	uint8_t *want = xmalloc(total);
	uint8_t *want_stream = xmalloc(total);
	srandom(7);
	for (size_t i = 0; i < total; i++)
		want[i] = (uint8_t)random();
	struct seen s = {0};
	size_t pos = 0;
	int round = 0;
	while (pos < total) {
		size_t n = (size_t)random() % 70000 + 1;
		if (round % 13 == 0)
			n = (size_t)random() % 7 + 1;
		if (n > total - pos)
			n = total - pos;
		enum log_stream st = (random() & 1) ? LOG_STDOUT : LOG_STDERR;
		assert_int_equal(logwriter_append(&w, st, want + pos, n), 0);
		memset(want_stream + pos, st, n);
		pos += n;
		/* Follow while writing, every few records. */
		if (++round % 5 == 0)
			assert_int_equal(drain(&r, 4096, &s), 0);
	}
	assert_int_equal(drain(&r, 4096, &s), 0);
	assert_int_equal(s.n, total);
	assert_memory_equal(s.data, want, total);
	assert_memory_equal(s.stream, want_stream, total);
	assert_int_equal(s.truncated, 0);
	assert_int_equal(w.kept, total);
	assert_false(w.truncated);

	/* A second, independent reader sees the same bytes with max 0. */
	struct logreader r2;
	struct seen s2 = {0};
	assert_int_equal(logreader_open(&r2, dirfd_, "log"), 0);
	assert_int_equal(drain(&r2, 0, &s2), 0);
	assert_int_equal(s2.n, total);
	assert_memory_equal(s2.data, want, total);
	logreader_close(&r2);
	seen_free(&s2);

	seen_free(&s);
	free(want);
	free(want_stream);
	logreader_close(&r);
	logwriter_close(&w);
}

static void test_partial_last_record(void **state)
{
	(void)state;
	reset_log();
	struct logreader r;
	struct logchunk c;
	append_raw("", 0);
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(logreader_next(&r, 100, &c), 0);

	/* Header arrives byte by byte: nothing until it is whole. */
	const uint8_t rec[] = {2, 6, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', '\n'};
	for (size_t i = 0; i < LOGSTORE_HDR; i++) {
		assert_int_equal(logreader_next(&r, 100, &c), 0);
		append_raw(rec + i, 1);
	}
	/* Header whole, no payload yet. */
	assert_int_equal(logreader_next(&r, 100, &c), 0);
	append_raw(rec + 5, 2);
	assert_int_equal(logreader_next(&r, 100, &c), 1);
	assert_int_equal(c.stream, LOG_STDERR);
	assert_int_equal(c.len, 2);
	assert_memory_equal(c.data, "he", 2);
	assert_int_equal(logreader_next(&r, 100, &c), 0);
	append_raw(rec + 7, 4);
	assert_int_equal(logreader_next(&r, 100, &c), 1);
	assert_int_equal(c.len, 4);
	assert_memory_equal(c.data, "llo\n", 4);
	assert_int_equal(logreader_next(&r, 100, &c), 0);

	/* A truncation marker split in two waits for its payload. */
	const uint8_t tr[] = {3, 8, 0, 0, 0, 0x39, 0x30, 0, 0, 0, 0, 0, 0};
	append_raw(tr, 9);
	assert_int_equal(logreader_next(&r, 100, &c), 0);
	append_raw(tr + 9, 4);
	assert_int_equal(logreader_next(&r, 100, &c), 1);
	assert_int_equal(c.stream, LOG_TRUNCATED);
	assert_int_equal(c.truncated_at, 12345);
	logreader_close(&r);
}

static void test_long_record_split(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 0), 0);
	size_t n = LOGSTORE_MAX_RECORD;
	uint8_t *big = xmalloc(n + 10);
	for (size_t i = 0; i < n + 10; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, big, n), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDERR, "x", 1), 0);
	/* Longer than a record: the writer splits it. */
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, big, n + 10), 0);
	logwriter_close(&w);

	struct stat st;
	assert_int_equal(fstatat(dirfd_, "log", &st, 0), 0);
	assert_int_equal((size_t)st.st_size, 4 * LOGSTORE_HDR + 2 * n + 11);

	struct logreader r;
	struct seen s = {0};
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(drain(&r, 65536, &s), 0);
	assert_int_equal(s.n, 2 * n + 11);
	assert_true(s.max_piece <= 65536);
	assert_true(s.pieces >= 2 * n / 65536);
	assert_memory_equal(s.data, big, n);
	assert_int_equal(s.stream[n - 1], LOG_STDOUT);
	assert_int_equal(s.data[n], 'x');
	assert_int_equal(s.stream[n], LOG_STDERR);
	assert_memory_equal(s.data + n + 1, big, n + 10);
	seen_free(&s);
	logreader_close(&r);
	free(big);
}

/* logreader_read: the same byte stream as logreader_next, through small
 * and large records (large ones are read past the buffer), a partially
 * written last record, and the truncation marker. */
static void test_read_into(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 2 * 100002 + 46), 0);
	size_t big = 100000;
	uint8_t *data = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(logwriter_append(&w, LOG_STDERR, "ab", 2), 0);
		assert_int_equal(logwriter_append(&w, LOG_STDOUT, data, big), 0);
	}
	logwriter_close(&w);

	struct logreader r;
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	uint8_t *got = xmalloc(4 * big), dst[40000];
	size_t n = 0, pieces = 0;
	int truncated = 0;
	uint64_t truncated_at = 0;
	struct logchunk c;
	int rc;
	while ((rc = logreader_read(&r, dst, sizeof dst, &c)) == 1) {
		if (c.stream == LOG_TRUNCATED) {
			truncated++;
			truncated_at = c.truncated_at;
			continue;
		}
		assert_ptr_equal(c.data, dst);
		assert_true(c.len > 0 && c.len <= sizeof dst);
		/* "ab" on stderr starts every big + 2 bytes */
		assert_int_equal(c.stream, n % (big + 2) == 0 ? LOG_STDERR : LOG_STDOUT);
		if (c.stream == LOG_STDERR)
			assert_int_equal(c.len, 2);
		memcpy(got + n, c.data, c.len);
		n += c.len;
		pieces++;
	}
	assert_int_equal(rc, 0);
	/* The cap cut the third big record after 44 bytes. */
	assert_int_equal(truncated, 1);
	assert_int_equal(truncated_at, 2 * (big + 2) + 46);
	assert_int_equal(n, 2 * (big + 2) + 46);
	for (int i = 0; i < 2; i++) {
		assert_memory_equal(got + i * (big + 2), "ab", 2);
		assert_memory_equal(got + i * (big + 2) + 2, data, big);
	}
	assert_memory_equal(got + 2 * (big + 2), "ab", 2);
	assert_memory_equal(got + 2 * (big + 2) + 2, data, 44);
	assert_true(pieces >= 2 * (big / sizeof dst + 1));

	/* A record still being written: its committed part first, then the
	 * rest once it arrives, at any mix with logreader_next. */
	logreader_close(&r);
	reset_log();
	uint8_t hdr[LOGSTORE_HDR] = {LOG_STDOUT, 0x50, 0xc3, 0, 0}; /* 50000 */
	append_raw(hdr, sizeof hdr);
	append_raw(data, 30000);
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(logreader_read(&r, dst, sizeof dst, &c), 1);
	assert_int_equal(c.len, 30000);
	assert_memory_equal(c.data, data, 30000);
	assert_int_equal(logreader_read(&r, dst, sizeof dst, &c), 0);
	append_raw(data + 30000, 20000);
	assert_int_equal(logreader_next(&r, 5000, &c), 1);
	assert_int_equal(c.len, 5000);
	assert_memory_equal(c.data, data + 30000, 5000);
	assert_int_equal(logreader_read(&r, dst, sizeof dst, &c), 1);
	assert_int_equal(c.len, 15000);
	assert_memory_equal(c.data, data + 35000, 15000);
	assert_int_equal(logreader_read(&r, dst, sizeof dst, &c), 0);
	logreader_close(&r);
	free(got);
	free(data);
}

static void test_cap(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 100), 0);
	char a[60];
	memset(a, 'a', sizeof a);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, a, 60), 0);
	assert_false(w.truncated);
	memset(a, 'b', sizeof a);
	assert_int_equal(logwriter_append(&w, LOG_STDERR, a, 60), 0);
	assert_true(w.truncated);
	assert_int_equal(w.kept, 100);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, a, 60), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDERR, a, 1), 0);
	assert_int_equal(w.kept, 100);
	logwriter_close(&w);

	struct stat st;
	assert_int_equal(fstatat(dirfd_, "log", &st, 0), 0);
	assert_int_equal(st.st_size, 5 + 60 + 5 + 40 + 5 + 8);

	struct logreader r;
	struct seen s = {0};
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(drain(&r, 0, &s), 0);
	assert_int_equal(s.n, 100);
	assert_int_equal(s.truncated, 1);
	assert_int_equal(s.truncated_at, 100);
	assert_int_equal(s.data[59], 'a');
	assert_int_equal(s.data[60], 'b');
	assert_int_equal(s.stream[99], LOG_STDERR);
	seen_free(&s);
	logreader_close(&r);

	/* Cap hit exactly: the marker comes with the next output. */
	reset_log();
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 10), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "0123456789", 10), 0);
	assert_false(w.truncated);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "z", 1), 0);
	assert_true(w.truncated);
	logwriter_close(&w);
	assert_int_equal(fstatat(dirfd_, "log", &st, 0), 0);
	assert_int_equal(st.st_size, 5 + 10 + 5 + 8);
}

/* A write that fails halfway through a record (a full disk; here the file
 * size limit) leaves that record last: nothing is appended after it, and
 * a write that failed before any byte landed does not stop the log. */
static void test_torn_write(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 0), 0);
	struct rlimit old, lim = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	char a[200];
	memset(a, 'a', sizeof a);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, a, 40), 0);
	assert_false(w.truncated);
	assert_true(logwriter_append(&w, LOG_STDOUT, a, 200) < 0); /* torn at 100 bytes */
	assert_true(w.truncated);
	setrlimit(RLIMIT_FSIZE, &old);
	assert_int_equal(logwriter_append(&w, LOG_STDERR, "more", 4), 0);
	logwriter_close(&w);

	struct stat st;
	assert_int_equal(fstatat(dirfd_, "log", &st, 0), 0);
	assert_int_equal(st.st_size, 100);
	struct logreader r;
	struct seen sn = {0};
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	/* 40 bytes, then the 50 of the torn record that landed; "more" never
	 * follows it. */
	assert_int_equal(drain(&r, 0, &sn), 0);
	assert_int_equal(sn.n, 90);
	seen_free(&sn);
	logreader_close(&r);

	/* Nothing landed at all: the next output is still kept. */
	reset_log();
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 0), 0);
	lim.rlim_cur = 0;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_true(logwriter_append(&w, LOG_STDOUT, a, 10) < 0);
	assert_false(w.truncated);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, a, 10), 0);
	logwriter_close(&w);
	assert_int_equal(fstatat(dirfd_, "log", &st, 0), 0);
	assert_int_equal(st.st_size, 15);
}

static void test_corrupt(void **state)
{
	(void)state;
	reset_log();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, dirfd_, "log", 0), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "good", 4), 0);
	logwriter_close(&w);
	append_raw("\x09garbage", 8);

	struct logreader r;
	struct logchunk c;
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(logreader_next(&r, 0, &c), 1);
	assert_memory_equal(c.data, "good", 4);
	assert_int_equal(logreader_next(&r, 0, &c), -EBADMSG);
	assert_int_equal(logreader_next(&r, 0, &c), -EBADMSG);
	logreader_close(&r);

	/* Oversized length in an otherwise valid header. */
	reset_log();
	append_raw("\x01\xff\xff\xff\x7f", 5);
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(logreader_next(&r, 0, &c), -EBADMSG);
	logreader_close(&r);

	/* A bad stream byte is detected before the header is whole. */
	reset_log();
	append_raw("\x00", 1);
	assert_int_equal(logreader_open(&r, dirfd_, "log"), 0);
	assert_int_equal(logreader_next(&r, 0, &c), -EBADMSG);
	logreader_close(&r);

	assert_int_equal(logreader_open(&r, dirfd_, "nonexistent"), -ENOENT);
	logreader_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_round_trip_interleaved),
		cmocka_unit_test(test_partial_last_record),
		cmocka_unit_test(test_long_record_split),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_read_into),
		cmocka_unit_test(test_torn_write),
		cmocka_unit_test(test_corrupt),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
