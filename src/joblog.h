/* joblog: the wire encoding of rund.JobLog, written and read by hand on
 * the Log path so output bytes are never copied into or out of protobuf
 * objects: field 1 stdout (bytes), 2 stderr (bytes), 3 truncated_at
 * (varint), 4 offset (varint), 5 lost_bytes (varint), 6 gap_reason (enum),
 * 7 time (google.protobuf.Timestamp: 1 seconds, 2 nanos). Pure module; the
 * daemon encodes, runc and the benchmark decode. */
#ifndef RUND_JOBLOG_H
#define RUND_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logstore.h"

/* Longest header joblog_header() writes, and longest joblog_notice(). */
#define JOBLOG_HDR_MAX 48

/* Writes offset (field 4), time (field 7, only when time_ns != 0) and the
 * key and length of a len-byte payload (field 1 for LOG_STDOUT, 2 for
 * LOG_STDERR) to hdr; the payload follows. Returns the header's length. */
size_t joblog_header(uint8_t hdr[JOBLOG_HDR_MAX], enum log_stream stream, size_t len,
		     uint64_t offset, uint64_t time_ns);

/* Writes a whole JobLog for a LOG_TRUNCATED or LOG_GAP chunk: truncated_at
 * (for LOG_TRUNCATED, and for a gap of output that was never stored: the
 * offset where storing stopped, as the original notice means), offset,
 * lost_bytes and gap_reason. Returns its length. */
size_t joblog_notice(uint8_t msg[JOBLOG_HDR_MAX], const struct logchunk *ch);

/* A decoded JobLog; out and err point into the message. */
struct joblog_view {
	const uint8_t *out, *err;
	size_t out_len, err_len;
	uint64_t truncated_at;
	uint64_t offset, lost_bytes;
	uint32_t gap_reason;
	bool has_time;
	int64_t time_sec;
	int32_t time_nsec;
};

/* Decodes msg (proto3 wire format: unknown fields are skipped, the last
 * occurrence of a field wins). 0, or -EBADMSG for a malformed message. */
int joblog_parse(const uint8_t *msg, size_t len, struct joblog_view *v);

#endif
