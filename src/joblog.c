#include "joblog.h"

#include <errno.h>
#include <string.h>

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

size_t joblog_header(uint8_t hdr[JOBLOG_HDR_MAX], enum log_stream stream, size_t len)
{
	hdr[0] = (uint8_t)(((stream == LOG_STDERR ? 2 : 1) << 3) | 2);
	return 1 + put_varint(hdr + 1, len);
}

size_t joblog_truncated(uint8_t msg[JOBLOG_HDR_MAX], uint64_t truncated_at)
{
	msg[0] = (3 << 3) | 0;
	return 1 + put_varint(msg + 1, truncated_at);
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
			if (key >> 3 == 3)
				v->truncated_at = n;
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
			if (key >> 3 == 1) {
				v->out = p;
				v->out_len = (size_t)n;
			} else if (key >> 3 == 2) {
				v->err = p;
				v->err_len = (size_t)n;
			}
			p += n;
			break;
		default:
			return -EBADMSG;
		}
	}
	return 0;
}
