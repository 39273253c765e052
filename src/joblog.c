#include "joblog.h"

#include <errno.h>
#include <string.h>

enum {
	F_STDOUT = 1,
	F_STDERR = 2,
	F_TRUNCATED_AT = 3,
	F_OFFSET = 4,
	F_LOST = 5,
	F_GAP_REASON = 6,
	F_TIME = 7,
};

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t put_uint_field(uint8_t *p, unsigned field, uint64_t v)
{
	p[0] = (uint8_t)(field << 3);
	return 1 + put_varint(p + 1, v);
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EBADMSG;
}

size_t joblog_header(uint8_t hdr[JOBLOG_HDR_MAX], enum log_stream stream, size_t len,
		     uint64_t offset, uint64_t time_ns)
{
	size_t n = 0;
	if (offset)
		n += put_uint_field(hdr, F_OFFSET, offset);
	if (time_ns) {
		/* Timestamp { 1: seconds, 2: nanos }, at most 1+10+1+5 bytes. */
		uint8_t ts[20];
		size_t tl = put_uint_field(ts, 1, time_ns / 1000000000u);
		if (time_ns % 1000000000u)
			tl += put_uint_field(ts + tl, 2, time_ns % 1000000000u);
		hdr[n++] = (uint8_t)(F_TIME << 3 | 2);
		hdr[n++] = (uint8_t)tl;
		memcpy(hdr + n, ts, tl);
		n += tl;
	}
	hdr[n++] = (uint8_t)((stream == LOG_STDERR ? F_STDERR : F_STDOUT) << 3 | 2);
	return n + put_varint(hdr + n, len);
}

size_t joblog_notice(uint8_t msg[JOBLOG_HDR_MAX], const struct logchunk *ch)
{
	size_t n = 0;
	uint64_t at = ch->stream == LOG_TRUNCATED   ? ch->truncated_at
		      : ch->why == LOG_GAP_UNSTORED ? ch->off - ch->lost
						    : 0;
	if (at)
		n += put_uint_field(msg + n, F_TRUNCATED_AT, at);
	if (ch->off)
		n += put_uint_field(msg + n, F_OFFSET, ch->off);
	if (ch->stream == LOG_GAP) {
		n += put_uint_field(msg + n, F_LOST, ch->lost);
		n += put_uint_field(msg + n, F_GAP_REASON, (uint64_t)ch->why);
	}
	if (n == 0) /* truncated_at 0 of a v1 log: keep the notice visible */
		n += put_uint_field(msg, F_TRUNCATED_AT, 0);
	return n;
}

static int parse_time(const uint8_t *p, const uint8_t *end, struct joblog_view *v)
{
	v->has_time = true;
	v->time_sec = 0;
	v->time_nsec = 0;
	while (p < end) {
		uint64_t key, n;
		if (get_varint(&p, end, &key) < 0 || (key & 7) != 0 || get_varint(&p, end, &n) < 0)
			return -EBADMSG;
		if (key >> 3 == 1)
			v->time_sec = (int64_t)n;
		else if (key >> 3 == 2)
			v->time_nsec = (int32_t)n;
	}
	return 0;
}

int joblog_parse(const uint8_t *p, size_t len, struct joblog_view *v)
{
	const uint8_t *end = p + len;
	memset(v, 0, sizeof *v);
	while (p < end) {
		uint64_t key, n;
		if (get_varint(&p, end, &key) < 0 || key >> 3 == 0)
			return -EBADMSG;
		switch (key & 7) {
		case 0:
			if (get_varint(&p, end, &n) < 0)
				return -EBADMSG;
			switch (key >> 3) {
			case F_TRUNCATED_AT:
				v->truncated_at = n;
				break;
			case F_OFFSET:
				v->offset = n;
				break;
			case F_LOST:
				v->lost_bytes = n;
				break;
			case F_GAP_REASON:
				v->gap_reason = (uint32_t)n;
				break;
			}
			break;
		case 1:
		case 5: {
			size_t w = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < w)
				return -EBADMSG;
			p += w;
			break;
		}
		case 2:
			if (get_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
				return -EBADMSG;
			if (key >> 3 == F_STDOUT) {
				v->out = p;
				v->out_len = (size_t)n;
			} else if (key >> 3 == F_STDERR) {
				v->err = p;
				v->err_len = (size_t)n;
			} else if (key >> 3 == F_TIME && parse_time(p, p + n, v) < 0) {
				return -EBADMSG;
			}
			p += n;
			break;
		default:
			return -EBADMSG;
		}
	}
	return 0;
}
