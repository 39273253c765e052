/* logstore: the output log's writer, record parser and follower (logstore.h).
 *
 * The writer appends each record with one writev() on an O_APPEND fd, so a
 * reader sees records in order and at worst the tail of the last one
 * missing. The follower reads a segment in large pread()s into one buffer
 * and hands out pieces that point into it: no per-byte work and no copy
 * beyond the kernel's, because the daemon streams logs through it at
 * gigabytes per second. */
#include "logstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "util.h"

#define READER_BUF (256u * 1024)
#define READER_DIRECT_MIN (16u * 1024) /* records read without the buffer */
#define SEGMENT_MIN (64u * 1024)
#define SEG_RECORD (LOGSTORE_HDR + 8) /* a segment's first record, whole */

/* The pos file: native-endian u64s (only processes of this host read it):
 * magic, a sequence count (odd while the writer updates), then struct
 * logpos's fields in order. */
#define POS_MAGIC 0x31534f50474c5255ull /* "RULGPOS1" */
#define POS_WORDS 7
#define POS_FILE_SIZE 4096

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void logstore_segment_name(const char *base, uint64_t seq, char out[LOGSTORE_NAME_MAX])
{
	snprintf(out, LOGSTORE_NAME_MAX, "%s.%" PRIu64, base, seq);
}

uint64_t logstore_segment_size(uint64_t cap)
{
	uint64_t s = cap ? cap / 8 : LOGSTORE_SEGMENT_MAX;
	if (s < SEGMENT_MIN)
		s = SEGMENT_MIN;
	if (s > LOGSTORE_SEGMENT_MAX)
		s = LOGSTORE_SEGMENT_MAX;
	if (cap && s > cap)
		s = cap;
	return s;
}

/* ---- writer ---- */

static struct logstore_seg *seg_at(struct logwriter *w, uint64_t seq)
{
	return w->segs + (seq - w->first_seq);
}

static void publish(struct logwriter *w)
{
	volatile uint64_t *s = w->shared;
	if (!s)
		return;
	uint64_t seq = s[1];
	__atomic_store_n(&s[1], seq + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	const uint64_t v[] = {w->pos.end, w->pos.first, w->pos.kept, w->pos.lost, w->pos.dropped};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		__atomic_store_n(&s[2 + i], v[i], __ATOMIC_RELAXED);
	__atomic_store_n(&s[1], seq + 2, __ATOMIC_RELEASE);
}

/* The pos file is reserved whole before it is mapped, so a full disk can
 * never fault the writer; without it readers only lack live counters. */
static void pos_create(struct logwriter *w, const char *name)
{
	_cleanup_close_ int fd =
		openat(w->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	void *m = MAP_FAILED;
	if (posix_fallocate(fd, 0, POS_FILE_SIZE) == 0)
		m = mmap(NULL, POS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		unlinkat(w->dirfd, name, 0);
		return;
	}
	w->shared = m;
	w->shared[0] = POS_MAGIC;
	publish(w);
}

/* Creates segment seq + 1 starting at pos.end: its first record is written
 * under a temporary name, then the file is renamed into place, so readers
 * never see a segment without it. 0 or -errno (nothing is left then). */
static int segment_start(struct logwriter *w)
{
	char tmp[LOGSTORE_NAME_MAX + 8], name[LOGSTORE_NAME_MAX];
	snprintf(tmp, sizeof tmp, "%s.new", w->base);
	logstore_segment_name(w->base, w->seq + 1, name);
	int fd = openat(w->dirfd, tmp,
			O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	uint8_t rec[SEG_RECORD];
	rec[0] = LOGREC_SEGMENT;
	put_le32(rec + 1, 8);
	put_le64(rec + LOGSTORE_HDR, w->pos.end);
	int r = write_all(fd, rec, sizeof rec);
	if (r == 0 && renameat(w->dirfd, tmp, w->dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		unlinkat(w->dirfd, tmp, 0);
		return r;
	}
	size_t n = w->seq == 0 ? 1 : (size_t)(w->seq - w->first_seq) + 2;
	if (n > w->seg_alloc) {
		w->seg_alloc = n * 2;
		w->segs = xrealloc(w->segs, w->seg_alloc * sizeof *w->segs);
	}
	if (w->seq == 0)
		w->first_seq = 1;
	w->seq++;
	*seg_at(w, w->seq) = (struct logstore_seg){w->pos.end, 0};
	if (w->pos.kept == 0)
		w->pos.first = w->pos.end;
	w->fd = fd;
	return 0;
}

int logwriter_open(struct logwriter *w, int dirfd, const char *base, const char *pos_name,
		   uint64_t cap)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	if (strlen(base) + 24 >= LOGSTORE_NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(w->base, sizeof w->base, "%s", base);
	w->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (w->dirfd < 0)
		return -errno;
	w->cap = cap;
	w->seg_max = logstore_segment_size(cap);
	int r = segment_start(w);
	if (r < 0) {
		logwriter_close(w);
		return r;
	}
	if (pos_name)
		pos_create(w, pos_name);
	return 0;
}

/* Header and payload in one writev so a record lands in one piece; the
 * loop only matters for short writes (a nearly full disk). *stored is the
 * payload that reached the file, also when the write then failed. */
static int write_record(int fd, enum log_record type, uint64_t time_ns, const void *data,
			size_t len, size_t *stored)
{
	uint8_t hdr[LOGSTORE_HDR_TIMED];
	hdr[0] = (uint8_t)type;
	put_le32(hdr + 1, (uint32_t)len);
	put_le64(hdr + LOGSTORE_HDR, time_ns);
	struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
	struct iovec *v = iov;
	int n = 2;
	*stored = 0;
	while (n > 0) {
		ssize_t r = writev(fd, v, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (v != iov)
				*stored = len - v->iov_len;
			return -errno;
		}
		size_t done = (size_t)r;
		while (n > 0 && done >= v->iov_len) {
			done -= v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + done;
			v->iov_len -= done;
		}
	}
	*stored = len;
	return 0;
}

static void lose(struct logwriter *w, size_t n)
{
	w->pos.end += n;
	w->pos.lost += n;
	w->truncated = true;
}

/* Keeps the newest output: deletes the oldest segments while the kept
 * payload is over the cap, never the one being written. */
static void trim(struct logwriter *w)
{
	while (w->cap && w->pos.kept > w->cap && w->first_seq < w->seq) {
		char name[LOGSTORE_NAME_MAX];
		logstore_segment_name(w->base, w->first_seq, name);
		unlinkat(w->dirfd, name, 0);
		struct logstore_seg *s = seg_at(w, w->first_seq);
		w->pos.kept -= s->bytes;
		w->pos.dropped += s->bytes;
		w->pos.first = s[1].base;
		memmove(s, s + 1, (size_t)(w->seq - w->first_seq) * sizeof *s);
		w->first_seq++;
		w->truncated = true;
	}
}

int logwriter_append(struct logwriter *w, enum log_stream stream, const void *data, size_t len)
{
	enum log_record type = stream == LOG_STDERR ? LOGREC_STDERR : LOGREC_STDOUT;
	uint64_t now = now_real_ns();
	const uint8_t *p = data;
	int ret = 0;
	while (len > 0) {
		if (w->fd < 0 && (ret = segment_start(w)) < 0) {
			lose(w, len);
			break;
		}
		struct logstore_seg *s = seg_at(w, w->seq);
		size_t n = len > LOGSTORE_MAX_RECORD ? LOGSTORE_MAX_RECORD : len;
		if (n > w->seg_max - s->bytes)
			n = (size_t)(w->seg_max - s->bytes);
		size_t stored;
		ret = write_record(w->fd, type, now, p, n, &stored);
		s->bytes += stored;
		w->pos.kept += stored;
		w->pos.end += stored;
		if (ret < 0) {
			/* What follows goes to a new segment past the loss:
			 * readers then see exactly which bytes are missing. */
			close_fd(&w->fd);
			lose(w, len - stored);
			break;
		}
		p += n;
		len -= n;
		if (s->bytes == w->seg_max)
			close_fd(&w->fd);
		trim(w);
	}
	publish(w);
	return ret;
}

void logwriter_finish(struct logwriter *w)
{
	if (w->fd >= 0 || w->seq == 0)
		return;
	struct logstore_seg *s = seg_at(w, w->seq);
	if (w->pos.end > s->base + s->bytes && segment_start(w) == 0)
		close_fd(&w->fd);
}

void logwriter_close(struct logwriter *w)
{
	close_fd(&w->fd);
	close_fd(&w->dirfd);
	free(w->segs);
	w->segs = NULL;
	if (w->shared)
		munmap((void *)w->shared, POS_FILE_SIZE);
	w->shared = NULL;
}

int logstore_pos_read(int dirfd, const char *path, struct logpos *out)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t a[POS_WORDS], b[POS_WORDS];
		if (pread(fd, a, sizeof a, 0) != (ssize_t)sizeof a || a[0] != POS_MAGIC)
			return -EBADMSG;
		if (a[1] & 1)
			continue;
		if (pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b)
			return -EBADMSG;
		if (memcmp(a, b, sizeof a) != 0)
			continue;
		*out = (struct logpos){
			.end = a[2], .first = a[3], .kept = a[4], .lost = a[5], .dropped = a[6]};
		return 0;
	}
	return -EAGAIN;
}

/* ---- parsing ---- */

static size_t header_len(uint8_t type)
{
	return type == LOGREC_STDOUT || type == LOGREC_STDERR ? LOGSTORE_HDR_TIMED : LOGSTORE_HDR;
}

/* Checks a header: the type byte and the length bound. 1 when whole, 0
 * when more bytes are needed, -EBADMSG. */
static int check_header(const uint8_t *h, size_t avail, uint32_t *len)
{
	if (avail == 0)
		return 0;
	switch (h[0]) {
	case LOGREC_STDOUT_V1:
	case LOGREC_STDERR_V1:
	case LOGREC_TRUNCATED_V1:
	case LOGREC_SEGMENT:
	case LOGREC_STDOUT:
	case LOGREC_STDERR:
		break;
	default:
		return -EBADMSG;
	}
	if (avail < header_len(h[0]))
		return 0;
	*len = get_le32(h + 1);
	if (*len > LOGSTORE_MAX_RECORD)
		return -EBADMSG;
	if ((h[0] == LOGREC_TRUNCATED_V1 || h[0] == LOGREC_SEGMENT) && *len != 8)
		return -EBADMSG;
	return 1;
}

int logstore_parse(const uint8_t *buf, size_t buflen, enum log_record *type, uint64_t *time_ns,
		   const uint8_t **data, size_t *len, size_t *consumed)
{
	uint32_t n = 0;
	int r = check_header(buf, buflen, &n);
	if (r <= 0)
		return r;
	size_t h = header_len(buf[0]);
	if (buflen - h < n)
		return 0;
	*type = (enum log_record)buf[0];
	*time_ns = h == LOGSTORE_HDR_TIMED ? get_le64(buf + LOGSTORE_HDR) : 0;
	*data = buf + h;
	*len = n;
	*consumed = h + (size_t)n;
	return 1;
}

/* ---- follower ---- */

int logreader_open(struct logreader *r, int dirfd, const char *dir, const char *base, uint64_t from)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	r->dirfd = dirfd;
	if (strlen(dir) >= sizeof r->dir || strlen(base) + 24 >= sizeof r->base)
		return -ENAMETOOLONG;
	snprintf(r->dir, sizeof r->dir, "%s", dir);
	snprintf(r->base, sizeof r->base, "%s", base);
	r->want = from;
	r->cap = READER_BUF;
	r->why = LOG_GAP_DROPPED; /* output before the oldest segment was deleted */
	return 0;
}

/* "<dir>/<base>" or "<dir>/<base>.<seq>". */
static void file_path(const struct logreader *r, uint64_t seq, bool v1, char *out, size_t cap)
{
	if (v1)
		snprintf(out, cap, "%s/%s", r->dir, r->base);
	else
		snprintf(out, cap, "%s/%s.%" PRIu64, r->dir, r->base, seq);
}

/* The oldest and newest segment numbers on disk; 0 when there is none.
 * *v1 tells whether the version-1 file exists. 0 or -errno. */
static int list_segments(const struct logreader *r, uint64_t *lo, uint64_t *hi, bool *v1)
{
	*lo = *hi = 0;
	*v1 = false;
	int fd = openat(r->dirfd, r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	size_t bl = strlen(r->base);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, r->base, bl) != 0)
			continue;
		const char *s = de->d_name + bl;
		uint64_t seq;
		if (*s == '\0')
			*v1 = true;
		else if (*s == '.' && parse_u64(s + 1, &seq) == 0 && seq > 0) {
			if (!*lo || seq < *lo)
				*lo = seq;
			if (seq > *hi)
				*hi = seq;
		}
	}
	closedir(d);
	return 0;
}

/* The first offset of segment seq: 0 or -errno (-ENOENT: gone). */
static int segment_base(const struct logreader *r, uint64_t seq, uint64_t *base)
{
	char path[2 * LOGSTORE_NAME_MAX + 32];
	file_path(r, seq, false, path, sizeof path);
	_cleanup_close_ int fd = openat(r->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	uint8_t rec[SEG_RECORD];
	if (pread(fd, rec, sizeof rec, 0) != (ssize_t)sizeof rec || rec[0] != LOGREC_SEGMENT)
		return -EBADMSG;
	*base = get_le64(rec + LOGSTORE_HDR);
	return 0;
}

/* Chooses the file to read: the newest segment starting at or before the
 * offset wanted (the oldest when every kept one starts later: the
 * difference was dropped), or the version-1 file. 1, 0 when there is no
 * log yet, -errno. */
static int locate(struct logreader *r)
{
	uint64_t lo, hi, target = r->pos > r->want ? r->pos : r->want;
	bool v1;
	int e = list_segments(r, &lo, &hi, &v1);
	if (e < 0)
		return e == -ENOENT ? 0 : e;
	if (!hi) {
		if (!v1)
			return 0;
		r->seq = 0;
		r->seg_open = true;
		r->seg_base = 0;
	} else {
		uint64_t seq = hi;
		for (; seq > lo; seq--) {
			uint64_t b = 0;
			e = segment_base(r, seq, &b);
			if (e == 0 && b <= target)
				break;
			if (e < 0 && e != -ENOENT)
				return e;
		}
		r->seq = seq;
		r->seg_open = false;
	}
	r->found = true;
	r->rec_left = 0;
	r->boff = 0;
	r->start = r->end = 0;
	return 1;
}

/* Opens the current file if the reader has none. 1, 0 (no log yet), -errno. */
static int ensure_open(struct logreader *r)
{
	while (r->fd < 0) {
		if (!r->found) {
			int l = locate(r);
			if (l <= 0)
				return l;
		}
		char path[2 * LOGSTORE_NAME_MAX + 32];
		file_path(r, r->seq, r->seq == 0, path, sizeof path);
		r->fd = openat(r->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (r->fd < 0) {
			if (errno != ENOENT || r->seq == 0 || r->one_segment)
				return -errno;
			/* Deleted by the cap while we were away from it. */
			r->found = false;
			r->why = LOG_GAP_DROPPED;
			continue;
		}
		if (!r->buf)
			r->buf = xmalloc(r->cap);
	}
	return 1;
}

/* Moves the unread tail to the front and reads up to `want` bytes (at most
 * what fits) behind it. Returns bytes read (0 at the current end of file)
 * or -errno. */
static ssize_t refill(struct logreader *r, size_t want)
{
	if (r->start > 0) {
		size_t keep = r->end - r->start;
		if (keep)
			memmove(r->buf, r->buf + r->start, keep);
		r->boff += r->start;
		r->start = 0;
		r->end = keep;
	}
	if (want > r->cap - r->end)
		want = r->cap - r->end;
	for (;;) {
		ssize_t n = pread(r->fd, r->buf + r->end, want, (off_t)(r->boff + r->end));
		if (n >= 0) {
			r->end += (size_t)n;
			return n;
		}
		if (errno != EINTR)
			return -errno;
	}
}

/* At the end of the current file: 0 when the reader must wait for more,
 * 1 when it moved on to the next segment (this one is final: what is left
 * of a torn record is dropped, the next segment's offset tells what was
 * lost), 2 when more bytes arrived, -errno. */
static int at_eof(struct logreader *r)
{
	if (r->seq == 0 || r->one_segment)
		return 0;
	char path[2 * LOGSTORE_NAME_MAX + 32];
	file_path(r, r->seq + 1, false, path, sizeof path);
	struct stat st;
	/* The next segment, or this one deleted by the cap (then the next
	 * exists or was deleted too): either way this one is final. */
	if (faccessat(r->dirfd, path, F_OK, 0) < 0 && (fstat(r->fd, &st) < 0 || st.st_nlink > 0))
		return 0;
	/* The writer never returns to a segment once the next exists, so
	 * one more read sees all of this one. */
	ssize_t n = refill(r, SIZE_MAX);
	if (n != 0)
		return n < 0 ? (int)n : 2;
	close_fd(&r->fd);
	r->seq++;
	r->seg_open = false;
	r->rec_left = 0;
	r->boff = 0;
	r->start = r->end = 0;
	r->why = LOG_GAP_UNSTORED;
	return 1;
}

/* Skips n payload bytes of the current record without reading them. */
static void skip(struct logreader *r, size_t n)
{
	size_t buffered = r->end - r->start;
	if (n <= buffered) {
		r->start += n;
	} else {
		r->boff += r->end + (n - buffered);
		r->start = r->end = 0;
	}
	r->rec_left -= n;
	r->pos += n;
}

/* A segment's first record: where its output starts. A later start than
 * the reader's position is a gap (reported from the offset wanted on). */
static int open_segment(struct logreader *r, struct logchunk *out)
{
	uint8_t *h = r->buf + r->start;
	if (h[0] != LOGREC_SEGMENT || get_le32(h + 1) != 8)
		return -EBADMSG;
	uint64_t base = get_le64(h + LOGSTORE_HDR);
	r->start += SEG_RECORD;
	r->seg_open = true;
	r->seg_base = base;
	if (base < r->pos) {
		/* Back inside output already handed out (after a relocation). */
		if (r->want < r->pos)
			r->want = r->pos;
		r->pos = base;
		return 0;
	}
	uint64_t from = r->pos > r->want ? r->pos : r->want;
	r->pos = base;
	if (base <= from)
		return 0;
	*out = (struct logchunk){
		.stream = LOG_GAP, .off = base, .lost = base - from, .why = r->why};
	return 1;
}

/* Between records: interprets the next header. Returns 1 with *out set for
 * a LOG_TRUNCATED or LOG_GAP chunk, 2 when a record's payload begins
 * (r->cur, r->rec_left), 0 when the reader must wait, or -errno. A
 * header, and for control records their payload, must be whole before it
 * is interpreted; refills read up to `want` bytes. */
static int next_header(struct logreader *r, size_t want, struct logchunk *out)
{
	for (;;) {
		int o = ensure_open(r);
		if (o <= 0)
			return o;
		uint32_t len = 0;
		size_t avail = r->end - r->start;
		int h = check_header(r->buf + r->start, avail, &len);
		if (h < 0)
			return h;
		uint8_t type = avail ? r->buf[r->start] : 0;
		size_t need = h > 0 ? header_len(type) : 0;
		if (h > 0 && (type == LOGREC_TRUNCATED_V1 || type == LOGREC_SEGMENT))
			need += 8;
		if (h > 0 && !r->seg_open && type != LOGREC_SEGMENT)
			return -EBADMSG;
		if (h == 0 || avail < need) {
			ssize_t n = refill(r, want < SEG_RECORD ? SEG_RECORD : want);
			if (n < 0)
				return (int)n;
			if (n == 0) {
				int e = at_eof(r);
				if (e <= 0)
					return e;
			}
			continue;
		}
		if (type == LOGREC_SEGMENT) {
			if (r->seg_open)
				return -EBADMSG;
			int g = open_segment(r, out);
			if (g != 0)
				return g;
			continue;
		}
		if (type == LOGREC_TRUNCATED_V1) {
			r->start += LOGSTORE_HDR;
			*out = (struct logchunk){.stream = LOG_TRUNCATED,
						 .off = r->pos,
						 .truncated_at = get_le64(r->buf + r->start)};
			r->start += 8;
			if (r->pos < r->want)
				continue;
			return 1;
		}
		r->cur =
			type == LOGREC_STDERR || type == LOGREC_STDERR_V1 ? LOG_STDERR : LOG_STDOUT;
		r->cur_time =
			need == LOGSTORE_HDR_TIMED ? get_le64(r->buf + r->start + LOGSTORE_HDR) : 0;
		r->start += need;
		r->rec_left = len;
		/* Large records: read the next header alone, so that its
		 * payload goes straight to logreader_read's destination. */
		r->direct = len >= READER_DIRECT_MIN;
		if (r->pos < r->want) {
			uint64_t gap = r->want - r->pos;
			skip(r, gap < len ? (size_t)gap : len);
		}
		if (r->rec_left > 0)
			return 2;
	}
}

static void data_chunk(struct logreader *r, const uint8_t *data, size_t n, struct logchunk *out)
{
	*out = (struct logchunk){
		.stream = r->cur, .data = data, .len = n, .off = r->pos, .time_ns = r->cur_time};
	r->rec_left -= n;
	r->pos += n;
}

int logreader_next(struct logreader *r, size_t max, struct logchunk *out)
{
	if (max == 0)
		max = r->cap;
	for (;;) {
		if (r->rec_left == 0) {
			int h = next_header(r, SIZE_MAX, out);
			if (h != 2)
				return h;
		}
		int o = ensure_open(r);
		if (o <= 0)
			return o;
		if (r->rec_left == 0)
			continue; /* relocated: the record is gone */
		/* Inside a record's payload: hand out what is buffered, even
		 * before the whole record arrived; it is output the writer
		 * already committed. */
		if (r->start == r->end) {
			ssize_t n = refill(r, SIZE_MAX);
			if (n < 0)
				return (int)n;
			if (n == 0) {
				int e = at_eof(r);
				if (e <= 0)
					return e;
				continue;
			}
		}
		size_t n = r->end - r->start;
		if (n > r->rec_left)
			n = r->rec_left;
		if (n > max)
			n = max;
		data_chunk(r, r->buf + r->start, n, out);
		r->start += n;
		return 1;
	}
}

int logreader_read(struct logreader *r, uint8_t *dst, size_t max, struct logchunk *out)
{
	for (;;) {
		if (r->rec_left == 0) {
			int h = next_header(r, r->direct ? LOGSTORE_HDR_TIMED + 8 : SIZE_MAX, out);
			if (h != 2)
				return h;
		}
		int o = ensure_open(r);
		if (o <= 0)
			return o;
		if (r->rec_left == 0)
			continue;
		size_t want = r->rec_left < max ? r->rec_left : max;
		size_t got = r->end - r->start;
		if (got > want)
			got = want;
		memcpy(dst, r->buf + r->start, got);
		r->start += got;
		if (got < want) {
			/* The buffer is empty: the rest comes straight from the file. */
			r->boff += r->end;
			r->start = r->end = 0;
			ssize_t n;
			do
				n = pread(r->fd, dst + got, want - got, (off_t)r->boff);
			while (n < 0 && errno == EINTR);
			if (n < 0 && got == 0)
				return -errno;
			if (n > 0) {
				r->boff += (uint64_t)n;
				got += (size_t)n;
			}
		}
		if (got == 0) {
			int e = at_eof(r);
			if (e <= 0)
				return e;
			continue;
		}
		data_chunk(r, dst, got, out);
		return 1;
	}
}

void logreader_park(struct logreader *r)
{
	close_fd(&r->fd);
	r->boff += r->start;
	r->start = r->end = 0;
	free(r->buf);
	r->buf = NULL;
}

void logreader_close(struct logreader *r)
{
	close_fd(&r->fd);
	free(r->buf);
	r->buf = NULL;
}

/* ---- tail ---- */

/* Scans one file for newlines: the positions of the last `cap` of them in
 * ring (count of all of them in *count), the file's first and end offsets. */
static int scan_newlines(struct logreader *r, uint64_t *ring, size_t cap, uint64_t *count,
			 uint64_t *first, uint64_t *end)
{
	*count = 0;
	struct logchunk ch;
	int n;
	while ((n = logreader_next(r, 0, &ch)) == 1) {
		if (ch.stream != LOG_STDOUT && ch.stream != LOG_STDERR)
			continue;
		const uint8_t *p = ch.data, *e = ch.data + ch.len;
		while ((p = memchr(p, '\n', (size_t)(e - p)))) {
			ring[*count % cap] = ch.off + (uint64_t)(p - ch.data);
			++*count;
			p++;
		}
	}
	*first = r->seg_base;
	*end = r->pos;
	return n;
}

int logstore_tail(int dirfd, const char *dir, const char *base, uint64_t lines, uint64_t *off)
{
	*off = 0;
	struct logreader r;
	int e = logreader_open(&r, dirfd, dir, base, 0);
	if (e < 0)
		return e;
	uint64_t lo, hi;
	bool v1;
	if ((e = list_segments(&r, &lo, &hi, &v1)) < 0)
		return e;
	if (!hi && !v1)
		return -ENOENT;
	if (!hi)
		lo = hi = 0;
	size_t cap = (size_t)lines + 1;
	_cleanup_free_ uint64_t *ring = xmalloc(cap * sizeof *ring);
	uint64_t need = lines, end = 0, result = UINT64_MAX, scanned = 0;
	for (uint64_t seq = hi;; seq--) {
		logreader_open(&r, dirfd, dir, base, 0);
		r.one_segment = true;
		r.found = true;
		r.seq = seq;
		r.seg_open = seq == 0;
		uint64_t count, first, seg_end;
		e = scan_newlines(&r, ring, cap, &count, &first, &seg_end);
		logreader_close(&r);
		if (e == -ENOENT && seq != hi)
			break; /* deleted meanwhile: start at the next one */
		if (e < 0)
			return e;
		result = first;
		if (seq == hi) {
			end = seg_end;
			if (lines == 0) {
				*off = end;
				return 0;
			}
		}
		/* A newline that ends the output ends the last line, it does
		 * not start one. */
		if (count > 0 && end > 0 && ring[(count - 1) % cap] == end - 1)
			count--;
		if (count >= need) {
			*off = ring[(count - need) % cap] + 1;
			return 0;
		}
		need -= count;
		/* The scan runs on the daemon's event loop: a log of few, long
		 * lines starts at the oldest segment read within the bound
		 * rather than stalling every other call. */
		scanned += seg_end - first;
		if (seq <= lo || scanned >= LOGSTORE_TAIL_SCAN_MAX)
			break;
	}
	*off = result;
	return 0;
}
