/* logstore: a job's output as append-only files of records, preserving the
 * order in which stdout and stderr were read. The supervisor is the only
 * writer; any number of readers follow it, each with its own position,
 * tolerating a partially written last record. Pure file I/O, no event loop.
 *
 * Positions are absolute output offsets: byte N of everything the job
 * wrote, counted whether or not it is still kept. Two formats:
 *
 *   version 1, the file "<base>" (logs written before segments existed):
 *     { u8 type 1 stdout | 2 stderr, u32 LE len, len bytes }
 *     { u8 type 3 (cap reached), u32 LE 8, u64 LE bytes kept }
 *   version 2, segment files "<base>.<seq>", seq = 1, 2, ... with no gaps:
 *     { u8 type 16, u32 LE 8, u64 LE offset of the segment's first byte }
 *         first record of every segment, and only there;
 *     { u8 type 17 stdout | 18 stderr, u32 LE len, u64 LE CLOCK_REALTIME ns
 *       when the supervisor read it, len bytes }
 *
 * A segment appears whole with its first record (it is written under a
 * temporary name and renamed). Once segment seq + 1 exists, segment seq
 * never grows again. The writer keeps the newest output: when the kept
 * payload exceeds its cap it deletes the oldest whole segments. Output it
 * could not store (a full disk) is counted and the writer continues in a
 * new segment whose first offset lies past the loss, so the hole between
 * two segments is exactly what was lost, and a deleted segment is exactly
 * what the cap dropped. Readers report both as gaps.
 *
 * The writer also keeps its counters in a small shared file ("<pos>") that
 * readers can poll without parsing the log (log_bytes while a job runs). */
#ifndef RUND_LOGSTORE_H
#define RUND_LOGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGSTORE_HDR 5	      /* v1 header and v2 control-record header */
#define LOGSTORE_HDR_TIMED 13 /* v2 output-record header */
#define LOGSTORE_MAX_RECORD (1u << 20)
#define LOGSTORE_SEGMENT_MAX (64u << 20) /* payload bytes per segment, at most */
#define LOGSTORE_NAME_MAX 64

/* Record types in the files. */
enum log_record {
	LOGREC_STDOUT_V1 = 1,
	LOGREC_STDERR_V1 = 2,
	LOGREC_TRUNCATED_V1 = 3,
	LOGREC_SEGMENT = 16,
	LOGREC_STDOUT = 17,
	LOGREC_STDERR = 18,
};

/* What a reader hands out. */
enum log_stream {
	LOG_STDOUT = 1,
	LOG_STDERR = 2,
	LOG_TRUNCATED = 3, /* v1 logs: the cap was reached; truncated_at = bytes kept */
	LOG_GAP = 4,	   /* output [off - lost, off) is gone; reading resumes at off */
};

enum log_gap {
	LOG_GAP_DROPPED = 1,  /* deleted by the cap (oldest output goes first) */
	LOG_GAP_UNSTORED = 2, /* never stored: writing it failed (full disk) */
};

/* The writer's counters, mirrored in the pos file. */
struct logpos {
	uint64_t end;	  /* offset after the last byte the job wrote (kept or not) */
	uint64_t first;	  /* offset of the oldest byte still kept (== end: none) */
	uint64_t kept;	  /* payload bytes kept in the segments */
	uint64_t lost;	  /* bytes never stored (write failures) */
	uint64_t dropped; /* bytes deleted by the cap */
};

struct logwriter {
	int dirfd; /* the job directory (dup, owned) */
	int fd;	   /* current segment, O_APPEND; -1 = open a new one first */
	char base[LOGSTORE_NAME_MAX];
	uint64_t cap;	    /* kept payload bound; 0 = unlimited */
	uint64_t seg_max;   /* payload bytes per segment */
	uint64_t seq;	    /* current (newest) segment; 0 = none yet */
	uint64_t first_seq; /* oldest segment still on disk */
	struct logstore_seg {
		uint64_t base, bytes; /* first offset, payload kept */
	} * segs;		      /* segments first_seq..seq */
	size_t seg_alloc;
	struct logpos pos;
	bool truncated;		   /* some output is not kept (dropped or lost) */
	volatile uint64_t *shared; /* the pos file, mapped; NULL if unavailable */
};

/* Segment payload size for a cap: cap/8 within [64 KiB, LOGSTORE_SEGMENT_MAX],
 * and never more than the cap (a tiny cap: one segment is the cap). */
uint64_t logstore_segment_size(uint64_t cap);

/* Opens the writer on directory dirfd (duplicated) and creates the first
 * segment "<base>.1" and the pos file "<pos_name>" (NULL: none). cap 0 =
 * unlimited. 0 or -errno (nothing is left behind then). */
int logwriter_open(struct logwriter *w, int dirfd, const char *base, const char *pos_name,
		   uint64_t cap);
/* Appends output as timed records of at most LOGSTORE_MAX_RECORD bytes,
 * starting a new segment whenever one is full and deleting the oldest
 * segments beyond the cap. Output that cannot be written is counted in
 * pos.lost, and the next append starts a new segment past it. 0, or the
 * -errno of the write that lost output. */
int logwriter_append(struct logwriter *w, enum log_stream stream, const void *data, size_t len);
/* Before the final status: when output was lost after the last segment's
 * data, tries once more to start a segment past it so that readers see
 * the loss in the log itself (they also see it in the status). */
void logwriter_finish(struct logwriter *w);
void logwriter_close(struct logwriter *w);

/* Reads the pos file at path relative to dirfd. 0, -ENOENT, -EBADMSG. */
int logstore_pos_read(int dirfd, const char *path, struct logpos *out);

/* "<base>.<seq>" into out. */
void logstore_segment_name(const char *base, uint64_t seq, char out[LOGSTORE_NAME_MAX]);

/* Parses one record at the start of buf (either version). Returns 1 and
 * fills *type, *time_ns (0 for v1), *data, *len, *consumed for a complete
 * record; 0 if buf holds only part of one (read more); -EBADMSG for a bad
 * type byte or length. */
int logstore_parse(const uint8_t *buf, size_t buflen, enum log_record *type, uint64_t *time_ns,
		   const uint8_t **data, size_t *len, size_t *consumed);

/* A follower of a job's log. It holds a file descriptor only while it
 * reads: logreader_park() gives it and the buffer back while the reader
 * waits, and the next read reopens its segment by name. */
struct logreader {
	int dirfd;		     /* borrowed: the directory holding `dir` */
	char dir[LOGSTORE_NAME_MAX]; /* the job directory, relative to dirfd */
	char base[LOGSTORE_NAME_MAX];
	int fd;		  /* current file; -1 while parked or before the log exists */
	uint64_t seq;	  /* current segment; 0 = the v1 file */
	bool found;	  /* a file was chosen (seq is meaningful) */
	bool one_segment; /* stop at the end of seq (tail scans) */
	bool seg_open;	  /* the segment's first record was read */
	uint64_t boff;	  /* file offset of buf[0] */
	uint8_t *buf;
	size_t cap, start, end; /* valid bytes are buf[start..end) */
	enum log_stream cur;	/* stream of the record being handed out */
	uint64_t cur_time;
	size_t rec_left;   /* its payload bytes not yet handed out */
	bool direct;	   /* last record was large: read headers alone */
	uint64_t pos;	   /* offset of the next byte handed out */
	uint64_t want;	   /* bytes before this offset are skipped */
	uint64_t seg_base; /* first offset of the current segment */
	enum log_gap why;  /* how a gap before the next segment came about */
};

struct logchunk {
	enum log_stream stream;
	const uint8_t *data; /* valid until the next logreader call */
	size_t len;
	uint64_t off;	       /* offset of data[0]; LOG_GAP: first byte after the gap */
	uint64_t time_ns;      /* when the output was read (0: v1 log) */
	uint64_t truncated_at; /* LOG_TRUNCATED */
	uint64_t lost;	       /* LOG_GAP */
	enum log_gap why;      /* LOG_GAP */
};

/* Prepares a reader of the log named base in the job directory `dir`
 * (relative to dirfd, which must outlive the reader) from offset `from`:
 * earlier output is skipped, and a start inside a dropped range is
 * reported as a gap. Nothing is opened yet; a log that does not exist is
 * looked for again by each read. 0, or -ENAMETOOLONG. */
int logreader_open(struct logreader *r, int dirfd, const char *dir, const char *base,
		   uint64_t from);
/* Next piece of output of at most max bytes (max 0: no limit but the
 * reader's buffer). A long record is returned in several pieces, and the
 * buffered part of a record still being written is returned before the
 * rest arrives. LOG_TRUNCATED and LOG_GAP chunks have len 0. 1 with *out
 * filled; 0 when no more output is available yet (call again after the
 * log grows); -EBADMSG on corruption; -errno on read failure. */
int logreader_next(struct logreader *r, size_t max, struct logchunk *out);
/* As logreader_next, but the piece (at most max > 0 bytes) is copied into
 * dst and out->data == dst. The payload of a large record is pread()
 * straight into dst, so a follower that reads into its transport's buffer
 * costs no copy in user space. Calls may be mixed with logreader_next. */
int logreader_read(struct logreader *r, uint8_t *dst, size_t max, struct logchunk *out);
/* Closes the file and frees the buffer while the reader waits; the next
 * read reopens where it stopped. */
void logreader_park(struct logreader *r);
void logreader_close(struct logreader *r);

/* At most this many bytes of segments are read to find the lines of a tail
 * (beyond the newest segment, which is always read). */
#define LOGSTORE_TAIL_SCAN_MAX (64u << 20)

/* The offset where the last `lines` lines of the log start (a final line
 * without a newline counts); the first kept byte when there are fewer, the
 * end for 0. Reads the newest segments only as far as needed, and no more
 * than LOGSTORE_TAIL_SCAN_MAX: where that holds fewer lines, the tail starts
 * at the oldest segment read. 0 or -errno (-ENOENT: no log yet, *off = 0). */
int logstore_tail(int dirfd, const char *dir, const char *base, uint64_t lines, uint64_t *off);

#endif
