/* Unit tests for logstore.c: the record codec (both versions), writer →
 * follower round trips with offsets and times, segments and the cap that
 * keeps the newest output, lost output, parked readers, tail. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "logstore.h"
#include "util.h"

static char tmpdir[64];
static int root_fd, job_fd;

static void clear_job(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s/j", tmpdir);
	assert_int_equal(system(cmd), 0);
	if (job_fd >= 0)
		close(job_fd);
	assert_int_equal(mkdirat(root_fd, "j", 0700), 0);
	job_fd = openat(root_fd, "j", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(job_fd >= 0);
}

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_logstore.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	root_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	job_fd = -1;
	return root_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	close(job_fd);
	close(root_fd);
	return system(cmd) == 0 ? 0 : -1;
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off * 7 + off / 251) % 253);
}

/* Appends n pattern bytes continuing the writer's offset. */
static void append_pattern(struct logwriter *w, size_t n, size_t piece)
{
	uint8_t *b = xmalloc(piece);
	while (n > 0) {
		size_t k = n < piece ? n : piece;
		for (size_t i = 0; i < k; i++)
			b[i] = pattern(w->pos.end + i);
		assert_int_equal(logwriter_append(w, LOG_STDOUT, b, k), 0);
		n -= k;
	}
	free(b);
}

/* Reads everything available; data must be the pattern at its offsets.
 * Returns the bytes read; *gaps and *gap_from describe the gaps seen. */
struct seen {
	uint64_t bytes, first_off, end;
	int gaps;
	struct logchunk gap[4];
};

static void drain(struct logreader *r, struct seen *s, bool park_each)
{
	struct logchunk ch;
	uint8_t dst[5000];
	int n, i = 0;
	while ((n = (i++ & 1) ? logreader_read(r, dst, sizeof dst, &ch)
			      : logreader_next(r, 0, &ch)) == 1) {
		if (ch.stream == LOG_GAP) {
			assert_true(s->gaps < 4);
			s->gap[s->gaps++] = ch;
			s->end = ch.off;
			continue;
		}
		assert_int_equal(ch.stream, LOG_STDOUT);
		if (s->bytes == 0 && s->end == 0)
			s->first_off = ch.off;
		if (s->bytes || s->gaps)
			assert_int_equal(ch.off, s->end);
		for (size_t k = 0; k < ch.len; k++)
			if (ch.data[k] != pattern(ch.off + k))
				fail_msg("byte %zu of the chunk at %lu differs", k,
					 (unsigned long)ch.off);
		s->bytes += ch.len;
		s->end = ch.off + ch.len;
		if (park_each)
			logreader_park(r);
	}
	assert_int_equal(n, 0);
}

static void test_parse(void **state)
{
	(void)state;
	enum log_record t;
	uint64_t ns;
	const uint8_t *d;
	size_t len, used;
	const uint8_t v1[] = {1, 3, 0, 0, 0, 'a', 'b', 'c'};
	assert_int_equal(logstore_parse(v1, sizeof v1, &t, &ns, &d, &len, &used), 1);
	assert_int_equal(t, LOGREC_STDOUT_V1);
	assert_int_equal(ns, 0);
	assert_int_equal(len, 3);
	assert_int_equal(used, 8);
	assert_memory_equal(d, "abc", 3);
	for (size_t n = 0; n < sizeof v1; n++)
		assert_int_equal(logstore_parse(v1, n, &t, &ns, &d, &len, &used), 0);
	const uint8_t v2[] = {18, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'h', 'i'};
	assert_int_equal(logstore_parse(v2, sizeof v2, &t, &ns, &d, &len, &used), 1);
	assert_int_equal(t, LOGREC_STDERR);
	assert_int_equal(ns, 0x0807060504030201ull);
	assert_int_equal(used, sizeof v2);
	assert_memory_equal(d, "hi", 2);
	for (size_t n = 0; n < sizeof v2; n++)
		assert_int_equal(logstore_parse(v2, n, &t, &ns, &d, &len, &used), 0);
	const uint8_t bad_type[] = {9, 0, 0, 0, 0};
	assert_int_equal(logstore_parse(bad_type, 1, &t, &ns, &d, &len, &used), -EBADMSG);
	const uint8_t bad_seg[] = {16, 7, 0, 0, 0};
	assert_int_equal(logstore_parse(bad_seg, 5, &t, &ns, &d, &len, &used), -EBADMSG);
	const uint8_t too_long[] = {17, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(logstore_parse(too_long, 13, &t, &ns, &d, &len, &used), -EBADMSG);
}

/* A log written before segments existed reads as it always did, now with
 * offsets. */
static void test_v1_log_readable(void **state)
{
	(void)state;
	clear_job();
	const uint8_t v1[] = {1,   5,	0,   0, 0, 'h', 'e', 'l', 'l', 'o', 2, 4, 0, 0, 0, 'o',
			      'o', 'p', 's', 3, 8, 0,	0,   0,	  9,   0,   0, 0, 0, 0, 0, 0};
	int fd = openat(job_fd, "log", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(write_all(fd, v1, sizeof v1), 0);
	close(fd);
	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	struct logchunk ch;
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(ch.stream, LOG_STDOUT);
	assert_int_equal(ch.off, 0);
	assert_int_equal(ch.time_ns, 0);
	assert_memory_equal(ch.data, "hello", 5);
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(ch.stream, LOG_STDERR);
	assert_int_equal(ch.off, 5);
	assert_memory_equal(ch.data, "oops", 4);
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(ch.stream, LOG_TRUNCATED);
	assert_int_equal(ch.truncated_at, 9);
	assert_int_equal(logreader_next(&r, 0, &ch), 0);
	logreader_close(&r);

	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 3), 0);
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(ch.off, 3);
	assert_int_equal(ch.len, 2);
	assert_memory_equal(ch.data, "lo", 2);
	logreader_close(&r);

	uint64_t off;
	assert_int_equal(logstore_tail(root_fd, "j", "log", 1, &off), 0);
	assert_int_equal(off, 0); /* no newline: one line */
}

static void test_round_trip_offsets_and_time(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	uint64_t t0 = now_real_ns();
	assert_int_equal(logwriter_open(&w, job_fd, "log", "logpos", 0), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "one\n", 4), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDERR, "two\n", 4), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "three", 5), 0);
	uint64_t t1 = now_real_ns();
	struct logpos pos;
	assert_int_equal(logstore_pos_read(job_fd, "logpos", &pos), 0);
	assert_int_equal(pos.end, 13);
	assert_int_equal(pos.kept, 13);
	assert_int_equal(pos.lost + pos.dropped + pos.first, 0);

	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	const char *want[] = {"one\n", "two\n", "three"};
	uint64_t off = 0;
	for (int i = 0; i < 3; i++) {
		struct logchunk ch;
		assert_int_equal(logreader_next(&r, 0, &ch), 1);
		assert_int_equal(ch.stream, i == 1 ? LOG_STDERR : LOG_STDOUT);
		assert_int_equal(ch.off, off);
		assert_true(ch.time_ns >= t0 && ch.time_ns <= t1);
		assert_int_equal(ch.len, strlen(want[i]));
		assert_memory_equal(ch.data, want[i], ch.len);
		off += ch.len;
	}
	struct logchunk ch;
	assert_int_equal(logreader_next(&r, 0, &ch), 0);
	/* a parked reader holds nothing and continues where it was */
	logreader_park(&r);
	assert_int_equal(r.fd, -1);
	assert_null(r.buf);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "four", 4), 0);
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(ch.off, 13);
	assert_memory_equal(ch.data, "four", 4);
	logreader_close(&r);

	uint64_t t;
	assert_int_equal(logstore_tail(root_fd, "j", "log", 1, &t), 0);
	assert_int_equal(t, 8); /* "threefour" */
	assert_int_equal(logstore_tail(root_fd, "j", "log", 2, &t), 0);
	assert_int_equal(t, 4);
	assert_int_equal(logstore_tail(root_fd, "j", "log", 0, &t), 0);
	assert_int_equal(t, 17);
	assert_int_equal(logstore_tail(root_fd, "j", "log", 50, &t), 0);
	assert_int_equal(t, 0);
	logwriter_close(&w);
}

/* The cap keeps the newest output: whole old segments go, readers are told
 * exactly where the kept output starts, and every offset stays absolute. */
static void test_cap_keeps_newest(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	const uint64_t cap = 256 << 10, seg = logstore_segment_size(cap);
	assert_int_equal(seg, 64 << 10);
	assert_int_equal(logwriter_open(&w, job_fd, "log", "logpos", cap), 0);
	/* a reader that starts now and parks after every chunk */
	struct logreader early;
	assert_int_equal(logreader_open(&early, root_fd, "j", "log", 0), 0);
	struct seen se = {0};
	drain(&early, &se, true);
	append_pattern(&w, 100, 100);
	drain(&early, &se, true);
	assert_int_equal(se.bytes, 100);
	append_pattern(&w, (1 << 20) - 100, 10000);
	assert_true(w.pos.kept <= cap);
	assert_true(w.pos.kept > cap - seg);
	assert_int_equal(w.pos.end, 1 << 20);
	assert_int_equal(w.pos.first + w.pos.kept, w.pos.end);
	assert_int_equal(w.pos.dropped, w.pos.first);
	assert_true(w.truncated);
	struct logpos pos;
	assert_int_equal(logstore_pos_read(job_fd, "logpos", &pos), 0);
	assert_int_equal(pos.first, w.pos.first);
	assert_int_equal(pos.kept, w.pos.kept);

	/* from the start: a gap up to the first kept byte, then the tail */
	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	struct seen s = {0};
	drain(&r, &s, false);
	assert_int_equal(s.gaps, 1);
	assert_int_equal(s.gap[0].why, LOG_GAP_DROPPED);
	assert_int_equal(s.gap[0].off, w.pos.first);
	assert_int_equal(s.gap[0].lost, w.pos.first);
	assert_int_equal(s.bytes, w.pos.kept);
	assert_int_equal(s.end, 1 << 20);
	logreader_close(&r);

	/* the early reader's segment was deleted: it reads on while it still
	 * holds it open, and is told the rest is gone; every offset is
	 * accounted for exactly once */
	drain(&early, &se, true);
	assert_int_equal(se.gaps, 1);
	assert_int_equal(se.gap[0].off, w.pos.first);
	assert_int_equal(se.gap[0].why, LOG_GAP_DROPPED);
	assert_int_equal(se.bytes + se.gap[0].lost, 1 << 20);
	assert_int_equal(se.end, 1 << 20);
	logreader_close(&early);

	/* from an offset inside the kept range: exactly from there */
	uint64_t from = w.pos.first + 12345;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", from), 0);
	struct seen s2 = {0};
	drain(&r, &s2, false);
	assert_int_equal(s2.gaps, 0);
	assert_int_equal(s2.first_off, from);
	assert_int_equal(s2.bytes, (1 << 20) - from);
	logreader_close(&r);
	/* beyond the end: nothing until the output gets there */
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", (1 << 20) + 10), 0);
	struct seen s3 = {0};
	drain(&r, &s3, false);
	assert_int_equal(s3.bytes, 0);
	append_pattern(&w, 30, 30);
	drain(&r, &s3, false);
	assert_int_equal(s3.first_off, (1 << 20) + 10);
	assert_int_equal(s3.bytes, 20);
	logreader_close(&r);
	logwriter_close(&w);
}

/* Output the writer cannot store is counted, and the next segment starts
 * past it: readers see a gap of exactly the lost bytes. */
static void test_lost_output_is_a_gap(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, job_fd, "log", "logpos", 0), 0);
	append_pattern(&w, 1000, 1000);
	/* the segment becomes unwritable, as on a full disk */
	int ro = openat(job_fd, "log.1", O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	assert_int_equal(dup2(ro, w.fd), w.fd);
	close(ro);
	uint8_t b[500];
	for (size_t i = 0; i < sizeof b; i++)
		b[i] = pattern(1000 + i);
	assert_true(logwriter_append(&w, LOG_STDOUT, b, sizeof b) < 0);
	assert_int_equal(w.pos.lost, 500);
	assert_int_equal(w.pos.end, 1500);
	append_pattern(&w, 300, 300);
	assert_int_equal(w.seq, 2);
	assert_int_equal(w.pos.kept, 1300);

	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	struct seen s = {0};
	drain(&r, &s, false);
	assert_int_equal(s.gaps, 1);
	assert_int_equal(s.gap[0].why, LOG_GAP_UNSTORED);
	assert_int_equal(s.gap[0].off, 1500);
	assert_int_equal(s.gap[0].lost, 500);
	assert_int_equal(s.bytes, 1300);
	assert_int_equal(s.end, 1800);
	logreader_close(&r);

	/* lost at the very end: finish leaves an empty segment marking it */
	ro = openat(job_fd, "log.2", O_RDONLY | O_CLOEXEC);
	assert_int_equal(dup2(ro, w.fd), w.fd);
	close(ro);
	assert_true(logwriter_append(&w, LOG_STDOUT, b, 200) < 0);
	logwriter_finish(&w);
	assert_int_equal(w.seq, 3);
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 1600), 0);
	struct seen s2 = {0};
	drain(&r, &s2, false);
	assert_int_equal(s2.bytes, 200);
	assert_int_equal(s2.gaps, 1);
	assert_int_equal(s2.gap[0].off, 2000);
	assert_int_equal(s2.gap[0].lost, 200);
	logreader_close(&r);
	logwriter_close(&w);
}

/* A follower reading while the writer crosses segments gets every byte
 * once, and a record torn at the end of a segment becomes a gap. */
static void test_follow_across_segments(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, job_fd, "log", NULL, 1 << 20), 0);
	assert_int_equal(w.seg_max, 128 << 10);
	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	struct seen s = {0};
	for (int i = 0; i < 40; i++) {
		append_pattern(&w, 7000 + (size_t)i * 1000, 3000);
		drain(&r, &s, i % 3 == 0);
		assert_int_equal(s.end, w.pos.end);
	}
	assert_int_equal(s.gaps, 0);
	assert_true(w.seq > 5);
	assert_int_equal(s.bytes, w.pos.end);
	/* tear the last record of the current segment by hand, then go on */
	uint64_t at = w.pos.end;
	const uint8_t torn[] = {
		17, 100, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, pattern(at), pattern(at + 1)};
	assert_int_equal(write_all(w.fd, torn, sizeof torn), 0);
	drain(&r, &s, false);
	assert_int_equal(s.end, at + 2);
	w.pos.end += 100;
	close(w.fd);
	w.fd = -1;
	append_pattern(&w, 10, 10);
	drain(&r, &s, false);
	assert_int_equal(s.gaps, 1);
	assert_int_equal(s.gap[0].why, LOG_GAP_UNSTORED);
	assert_int_equal(s.gap[0].off, at + 100);
	assert_int_equal(s.gap[0].lost, 98);
	assert_int_equal(s.end, at + 110);
	logreader_close(&r);
	logwriter_close(&w);
}

static void test_tail_across_segments(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, job_fd, "log", NULL, 1 << 20), 0);
	uint64_t line_at[20000];
	char line[32];
	for (int i = 0; i < 20000; i++) {
		line_at[i] = w.pos.end;
		int n = snprintf(line, sizeof line, "line %d\n", i);
		assert_int_equal(
			logwriter_append(&w, i % 2 ? LOG_STDERR : LOG_STDOUT, line, (size_t)n), 0);
	}
	assert_true(w.seq >= 2);
	uint64_t off;
	const uint64_t ns[] = {1, 2, 10, 5000, 19999};
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
		assert_int_equal(logstore_tail(root_fd, "j", "log", ns[k], &off), 0);
		assert_int_equal(off, line_at[20000 - ns[k]]);
	}
	assert_int_equal(logstore_tail(root_fd, "j", "log", 20000, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(logstore_tail(root_fd, "j", "log", 30000, &off), 0);
	assert_int_equal(off, 0);
	/* an unfinished last line is a line */
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "tail", 4), 0);
	assert_int_equal(logstore_tail(root_fd, "j", "log", 2, &off), 0);
	assert_int_equal(off, line_at[19999]);
	logwriter_close(&w);
	assert_int_equal(logstore_tail(root_fd, "nothing", "log", 2, &off), -ENOENT);
}

static void test_corrupt(void **state)
{
	(void)state;
	clear_job();
	struct logwriter w;
	assert_int_equal(logwriter_open(&w, job_fd, "log", NULL, 0), 0);
	assert_int_equal(logwriter_append(&w, LOG_STDOUT, "ok", 2), 0);
	const uint8_t junk[] = {0x42, 0, 0, 0, 0};
	assert_int_equal(write_all(w.fd, junk, sizeof junk), 0);
	struct logreader r;
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	struct logchunk ch;
	assert_int_equal(logreader_next(&r, 0, &ch), 1);
	assert_int_equal(logreader_next(&r, 0, &ch), -EBADMSG);
	logreader_close(&r);
	/* a segment must begin with its segment record */
	int fd = openat(job_fd, "log.2", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	const uint8_t no_seg[] = {17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(write_all(fd, no_seg, sizeof no_seg), 0);
	close(fd);
	assert_int_equal(unlinkat(job_fd, "log.1", 0), 0);
	assert_int_equal(logreader_open(&r, root_fd, "j", "log", 0), 0);
	assert_int_equal(logreader_next(&r, 0, &ch), -EBADMSG);
	logreader_close(&r);
	logwriter_close(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_v1_log_readable),
		cmocka_unit_test(test_round_trip_offsets_and_time),
		cmocka_unit_test(test_cap_keeps_newest),
		cmocka_unit_test(test_lost_output_is_a_gap),
		cmocka_unit_test(test_follow_across_segments),
		cmocka_unit_test(test_tail_across_segments),
		cmocka_unit_test(test_corrupt),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
