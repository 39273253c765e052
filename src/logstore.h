/* logstore: a job's output as one append-only file of records
 *   { u8 stream, u32 little-endian length, length bytes }
 * preserving the order in which stdout and stderr were read. The
 * supervisor is the only writer; any number of readers follow it, each
 * with its own offset, tolerating a partially written last record. Pure
 * file I/O, no event loop. */
#ifndef RUND_LOGSTORE_H
#define RUND_LOGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGSTORE_HDR 5
#define LOGSTORE_MAX_RECORD (1u << 20)

enum log_stream {
	LOG_STDOUT = 1,
	LOG_STDERR = 2,
	LOG_TRUNCATED = 3, /* payload: u64 LE count of output bytes kept */
};

struct logwriter {
	int fd;		/* O_APPEND file, owned */
	uint64_t kept;	/* output bytes written (excluding headers) */
	uint64_t cap;	/* 0 = unlimited */
	bool truncated; /* cap reached or a write tore a record: further output is dropped */
};

/* Opens (creating) path relative to dirfd for appending. 0 or -errno. */
int logwriter_open(struct logwriter *w, int dirfd, const char *path, uint64_t cap);
/* Appends output as records of at most LOGSTORE_MAX_RECORD bytes; when the
 * cap is reached it writes what fits, then one LOG_TRUNCATED record, and
 * drops the rest silently. 0 or -errno; after an error that left part of a
 * record in the file, all further output is dropped (see truncated). */
int logwriter_append(struct logwriter *w, enum log_stream stream, const void *data, size_t len);
void logwriter_close(struct logwriter *w);

/* Parses one record at the start of buf. Returns 1 and fills *stream,
 * *data, *len, *consumed for a complete record; 0 if buf holds only part
 * of one (read more); -EBADMSG for a bad stream byte or oversized length. */
int logstore_parse(const uint8_t *buf, size_t buflen, enum log_stream *stream, const uint8_t **data,
		   size_t *len, size_t *consumed);

/* A follower of a log file. */
struct logreader {
	int fd;	      /* owned */
	uint64_t off; /* file offset of buf[0] */
	uint8_t *buf;
	size_t cap, start, end; /* valid bytes are buf[start..end) */
	enum log_stream cur;	/* stream of the record being handed out */
	size_t rec_left;	/* its payload bytes not yet handed out */
	bool direct;		/* last record was large: read headers alone */
};

struct logchunk {
	enum log_stream stream;
	const uint8_t *data; /* valid until the next logreader call */
	size_t len;
	uint64_t truncated_at; /* for LOG_TRUNCATED */
};

/* Opens path relative to dirfd. 0 or -errno. */
int logreader_open(struct logreader *r, int dirfd, const char *path);
/* Next piece of output of at most max bytes (max 0: no limit but the
 * reader's buffer). A long record is returned in several pieces, and the
 * buffered part of a record still being written is returned before the
 * rest arrives. A LOG_TRUNCATED chunk has len 0 and truncated_at set.
 * 1 with *out filled; 0 when no more output is available yet (call again
 * after the file grows); -EBADMSG on corruption; -errno on read failure. */
int logreader_next(struct logreader *r, size_t max, struct logchunk *out);
/* As logreader_next, but the piece (at most max > 0 bytes) is copied into
 * dst and out->data == dst. The payload of a large record is pread()
 * straight into dst, so a follower that reads into its transport's buffer
 * costs no copy in user space. Calls may be mixed with logreader_next. */
int logreader_read(struct logreader *r, uint8_t *dst, size_t max, struct logchunk *out);
void logreader_close(struct logreader *r);

#endif
