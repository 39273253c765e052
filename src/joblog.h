/* joblog: the wire encoding of rund.JobLog, written and read by hand on
 * the Log path so output bytes are never copied into or out of protobuf
 * objects: field 1 stdout (bytes), 2 stderr (bytes), 3 truncated_at
 * (varint). Pure module; the daemon encodes, runc and the benchmark
 * decode. */
#ifndef RUND_JOBLOG_H
#define RUND_JOBLOG_H

#include <stddef.h>
#include <stdint.h>

#include "logstore.h"

/* Longest header joblog_header() writes. */
#define JOBLOG_HDR_MAX 11

/* Writes the key (field 1 for LOG_STDOUT, 2 for LOG_STDERR) and the length
 * of a len-byte payload to hdr; the payload follows. Returns the header's
 * length. */
size_t joblog_header(uint8_t hdr[JOBLOG_HDR_MAX], enum log_stream stream, size_t len);

/* Writes a whole JobLog carrying only truncated_at. Returns its length. */
size_t joblog_truncated(uint8_t msg[JOBLOG_HDR_MAX], uint64_t truncated_at);

/* A decoded JobLog; out and err point into the message. */
struct joblog_view {
	const uint8_t *out, *err;
	size_t out_len, err_len;
	uint64_t truncated_at;
};

/* Decodes msg (proto3 wire format: unknown fields are skipped, the last
 * occurrence of a field wins). 0, or -EBADMSG for a malformed message. */
int joblog_parse(const uint8_t *msg, size_t len, struct joblog_view *v);

#endif
