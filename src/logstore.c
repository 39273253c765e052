/* logstore: the output log's writer, record parser and follower (logstore.h).
 *
 * The writer appends each record with one writev() on an O_APPEND fd, so a
 * reader sees records in order and at worst the tail of the last one
 * missing. The follower reads the file in large pread()s into one buffer
 * and hands out pieces that point into it: no per-byte work and no copy
 * beyond the kernel's, because the daemon streams logs through it at
 * gigabytes per second. */
#include "logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "util.h"

#define READER_BUF (256u * 1024)
#define READER_DIRECT_MIN (16u * 1024) /* records read without the buffer */

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- writer ---- */

int logwriter_open(struct logwriter *w, int dirfd, const char *path, uint64_t cap)
{
	memset(w, 0, sizeof *w);
	w->fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->fd < 0)
		return -errno;
	w->cap = cap;
	return 0;
}

/* Header and payload in one writev so a record lands in one piece; the
 * loop only matters for short writes (a nearly full disk). *torn tells
 * whether a failure left part of the record in the file. */
static int write_record(int fd, enum log_stream stream, const void *data, size_t len, bool *torn)
{
	uint8_t hdr[LOGSTORE_HDR];
	hdr[0] = (uint8_t)stream;
	put_le32(hdr + 1, (uint32_t)len);
	struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
	struct iovec *v = iov;
	int n = 2;
	*torn = false;
	while (n > 0) {
		ssize_t r = writev(fd, v, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*torn = v != iov || v->iov_len != sizeof hdr;
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
	return 0;
}

/* A record written in part may only be the file's last: readers wait for
 * the rest of a last record, but would misread anything appended after
 * it. So after a torn write the log takes no more output (the job still
 * runs; its status says the output was truncated). A write that failed
 * before any byte landed can simply be tried again with the next output. */
static int stop_if_torn(struct logwriter *w, bool torn, int r)
{
	if (torn)
		w->truncated = true;
	return r;
}

int logwriter_append(struct logwriter *w, enum log_stream stream, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0 && !w->truncated) {
		size_t n = len > LOGSTORE_MAX_RECORD ? LOGSTORE_MAX_RECORD : len;
		bool hit_cap = false;
		if (w->cap && n > w->cap - w->kept) {
			n = (size_t)(w->cap - w->kept);
			hit_cap = true;
		}
		bool torn;
		if (n > 0) {
			int r = write_record(w->fd, stream, p, n, &torn);
			if (r < 0)
				return stop_if_torn(w, torn, r);
			w->kept += n;
			p += n;
			len -= n;
		}
		if (hit_cap) {
			uint8_t kept[8];
			put_le32(kept, (uint32_t)w->kept);
			put_le32(kept + 4, (uint32_t)(w->kept >> 32));
			int r = write_record(w->fd, LOG_TRUNCATED, kept, sizeof kept, &torn);
			if (r < 0)
				return stop_if_torn(w, torn, r);
			w->truncated = true;
		}
	}
	return 0;
}

void logwriter_close(struct logwriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* ---- parsing ---- */

/* Checks a header: the stream byte and the length bound. */
static int check_header(const uint8_t *h, size_t avail, uint32_t *len)
{
	if (avail >= 1 && (h[0] < LOG_STDOUT || h[0] > LOG_TRUNCATED))
		return -EBADMSG;
	if (avail < LOGSTORE_HDR)
		return 0;
	*len = get_le32(h + 1);
	if (*len > LOGSTORE_MAX_RECORD || (h[0] == LOG_TRUNCATED && *len != 8))
		return -EBADMSG;
	return 1;
}

int logstore_parse(const uint8_t *buf, size_t buflen, enum log_stream *stream, const uint8_t **data,
		   size_t *len, size_t *consumed)
{
	uint32_t n = 0;
	int r = check_header(buf, buflen, &n);
	if (r <= 0)
		return r;
	if (buflen - LOGSTORE_HDR < n)
		return 0;
	*stream = (enum log_stream)buf[0];
	*data = buf + LOGSTORE_HDR;
	*len = n;
	*consumed = LOGSTORE_HDR + (size_t)n;
	return 1;
}

/* ---- follower ---- */

int logreader_open(struct logreader *r, int dirfd, const char *path)
{
	memset(r, 0, sizeof *r);
	r->fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->fd < 0)
		return -errno;
	r->cap = READER_BUF;
	r->buf = xmalloc(r->cap);
	return 0;
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
		r->off += r->start;
		r->start = 0;
		r->end = keep;
	}
	if (want > r->cap - r->end)
		want = r->cap - r->end;
	for (;;) {
		ssize_t n = pread(r->fd, r->buf + r->end, want, (off_t)(r->off + r->end));
		if (n >= 0) {
			r->end += (size_t)n;
			return n;
		}
		if (errno != EINTR)
			return -errno;
	}
}

/* Between records: interprets the next header. Returns 1 with *out set for
 * a LOG_TRUNCATED record, 2 when a record's payload begins (r->cur,
 * r->rec_left), 0 when the header is not all there yet, or -errno. A
 * header, and for LOG_TRUNCATED its 8-byte payload, must be whole before
 * it is interpreted; refills read up to `want` bytes. */
static int next_header(struct logreader *r, size_t want, struct logchunk *out)
{
	for (;;) {
		uint32_t len = 0;
		int h = check_header(r->buf + r->start, r->end - r->start, &len);
		if (h < 0)
			return h;
		size_t need = LOGSTORE_HDR;
		if (h > 0 && r->buf[r->start] == LOG_TRUNCATED)
			need += 8;
		if (h == 0 || r->end - r->start < need) {
			ssize_t n = refill(r, want);
			if (n <= 0)
				return (int)n;
			continue;
		}
		enum log_stream stream = (enum log_stream)r->buf[r->start];
		r->start += LOGSTORE_HDR;
		if (stream == LOG_TRUNCATED) {
			out->stream = stream;
			out->data = NULL;
			out->len = 0;
			out->truncated_at = get_le64(r->buf + r->start);
			r->start += 8;
			return 1;
		}
		r->cur = stream;
		r->rec_left = len;
		/* Large records: read the next header alone, so that its
		 * payload goes straight to logreader_read's destination. */
		r->direct = len >= READER_DIRECT_MIN;
		return 2;
	}
}

int logreader_next(struct logreader *r, size_t max, struct logchunk *out)
{
	if (max == 0)
		max = r->cap;
	for (;;) {
		if (r->rec_left > 0) {
			/* Inside a record's payload: hand out what is buffered,
			 * even before the whole record arrived; it is output
			 * the writer already committed. */
			if (r->start == r->end) {
				ssize_t n = refill(r, SIZE_MAX);
				if (n <= 0)
					return (int)n;
			}
			size_t n = r->end - r->start;
			if (n > r->rec_left)
				n = r->rec_left;
			if (n > max)
				n = max;
			out->stream = r->cur;
			out->data = r->buf + r->start;
			out->len = n;
			out->truncated_at = 0;
			r->start += n;
			r->rec_left -= n;
			return 1;
		}
		int h = next_header(r, SIZE_MAX, out);
		if (h != 2)
			return h;
		/* an empty record is skipped by the loop */
	}
}

int logreader_read(struct logreader *r, uint8_t *dst, size_t max, struct logchunk *out)
{
	while (r->rec_left == 0) {
		int h = next_header(r, r->direct ? LOGSTORE_HDR + 8 : SIZE_MAX, out);
		if (h != 2)
			return h;
	}
	size_t want = r->rec_left < max ? r->rec_left : max;
	size_t got = r->end - r->start;
	if (got > want)
		got = want;
	memcpy(dst, r->buf + r->start, got);
	r->start += got;
	if (got < want) {
		/* The buffer is empty: the rest comes straight from the file. */
		r->off += r->end;
		r->start = r->end = 0;
		ssize_t n;
		do
			n = pread(r->fd, dst + got, want - got, (off_t)r->off);
		while (n < 0 && errno == EINTR);
		if (n < 0 && got == 0)
			return -errno;
		if (n > 0) {
			r->off += (uint64_t)n;
			got += (size_t)n;
		}
	}
	if (got == 0)
		return 0;
	r->rec_left -= got;
	out->stream = r->cur;
	out->data = dst;
	out->len = got;
	out->truncated_at = 0;
	return 1;
}

void logreader_close(struct logreader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->buf);
	r->buf = NULL;
}
