/* handoff: the daemon <-> supervisor codec. See handoff.h. */
#include "handoff.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void handoff_request_free(struct handoff_request *req)
{
	free(req->state_dir);
	free(req->spec);
	*req = (struct handoff_request){0};
}

size_t handoff_spec_limit(size_t dir_len)
{
	char hdr[HANDOFF_HEADER_MAX];
	/* The header grows with the numbers in it: size it for the largest. */
	int n = snprintf(hdr, sizeof hdr, "%u %zu\n", HANDOFF_REQUEST_MAX, dir_len);
	if (n < 0 || dir_len + (size_t)n >= HANDOFF_REQUEST_MAX)
		return 0;
	return HANDOFF_REQUEST_MAX - (size_t)n - dir_len;
}

int handoff_request_header(size_t spec_len, size_t dir_len, char hdr[HANDOFF_HEADER_MAX])
{
	if (spec_len > handoff_spec_limit(dir_len))
		return -E2BIG;
	int n = snprintf(hdr, HANDOFF_HEADER_MAX, "%zu %zu\n", spec_len, dir_len);
	return n > 0 && n < HANDOFF_HEADER_MAX ? n : -E2BIG;
}

/* A decimal without sign or leading zeros, at most HANDOFF_REQUEST_MAX. */
static int parse_len(const char *s, size_t n, size_t *out)
{
	if (n == 0 || n > 8 || (s[0] == '0' && n > 1))
		return -EPROTO;
	size_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	if (v > HANDOFF_REQUEST_MAX)
		return -EPROTO;
	*out = v;
	return 0;
}

int handoff_header_parse(const char *line, size_t len, size_t *spec_len, size_t *dir_len)
{
	const char *sp = memchr(line, ' ', len);
	size_t s, d;
	if (!sp || parse_len(line, (size_t)(sp - line), &s) < 0 ||
	    parse_len(sp + 1, len - (size_t)(sp - line) - 1, &d) < 0)
		return -EPROTO;
	/* The same bound the writer checked, so no reader allocates more. */
	if (d == 0 || s > handoff_spec_limit(d))
		return -EPROTO;
	*spec_len = s;
	*dir_len = d;
	return 0;
}

/* Takes the body (state dir, then spec) apart; body holds exactly
 * dir_len + spec_len bytes. */
static int split_body(const char *body, size_t spec_len, size_t dir_len,
		      struct handoff_request *req, struct err *err)
{
	if (memchr(body, '\0', dir_len))
		return err_set(err, EPROTO, ERR_INTERNAL, "request: state directory holds a NUL");
	req->state_dir = xstrndup(body, dir_len);
	req->spec = xmalloc(spec_len + 1);
	memcpy(req->spec, body + dir_len, spec_len);
	req->spec[spec_len] = '\0';
	req->spec_len = spec_len;
	return 0;
}

int handoff_request_decode(const char *buf, size_t len, struct handoff_request *req,
			   struct err *err)
{
	*req = (struct handoff_request){0};
	const char *nl = memchr(buf, '\n', len < HANDOFF_HEADER_MAX ? len : HANDOFF_HEADER_MAX);
	size_t spec_len, dir_len;
	if (!nl)
		return err_set(err, EPROTO, ERR_INTERNAL, "request: no header line");
	if (handoff_header_parse(buf, (size_t)(nl - buf), &spec_len, &dir_len) < 0)
		return err_set(err, EPROTO, ERR_INTERNAL, "request: bad header \"%.*s\"",
			       (int)(nl - buf), buf);
	size_t hdr = (size_t)(nl - buf) + 1;
	if (len - hdr != spec_len + dir_len)
		return err_set(err, EPROTO, ERR_INTERNAL,
			       "request: %zu bytes after the header, want %zu", len - hdr,
			       spec_len + dir_len);
	return split_body(buf + hdr, spec_len, dir_len, req, err);
}

int handoff_request_read(int fd, struct handoff_request *req, struct err *err)
{
	*req = (struct handoff_request){0};
	/* Byte by byte up to the newline: the header says how much follows,
	 * and nothing past the request may be consumed. */
	char hdr[HANDOFF_HEADER_MAX];
	size_t n = 0;
	for (;;) {
		ssize_t r = read_retry(fd, hdr + n, 1);
		if (r <= 0)
			return r < 0 ? err_sys(err, (int)-r, "read request header")
				     : err_set(err, EPROTO, ERR_INTERNAL,
					       "request ends in its header");
		if (hdr[n] == '\n')
			break;
		if (++n == sizeof hdr)
			return err_set(err, EPROTO, ERR_INTERNAL, "request header too long");
	}
	size_t spec_len, dir_len;
	if (handoff_header_parse(hdr, n, &spec_len, &dir_len) < 0)
		return err_set(err, EPROTO, ERR_INTERNAL, "bad request header \"%.*s\"", (int)n,
			       hdr);
	size_t want = spec_len + dir_len;
	_cleanup_free_ char *body = xmalloc(want);
	for (size_t have = 0; have < want;) {
		ssize_t r = read_retry(fd, body + have, want - have);
		if (r <= 0)
			return r < 0 ? err_sys(err, (int)-r, "read request")
				     : err_set(err, EPROTO, ERR_INTERNAL,
					       "request truncated at %zu of %zu bytes", have, want);
		have += (size_t)r;
	}
	return split_body(body, spec_len, dir_len, req, err);
}

size_t handoff_report_format(const struct err *e, char line[HANDOFF_REPORT_MAX])
{
	if (!e) {
		memcpy(line, "ok\n", 3);
		return 3;
	}
	int n = snprintf(
		line, HANDOFF_REPORT_MAX, "err %d %d ", e->code > 0 ? e->code : EIO,
		(int)(e->kind > ERR_KIND_NONE && e->kind <= ERR_INTERNAL ? e->kind : ERR_INTERNAL));
	size_t len = (size_t)n;
	/* One line, so the message is flattened: argv may contain newlines. */
	size_t m = strnlen(e->msg, sizeof e->msg);
	for (size_t i = 0; i < m && len < HANDOFF_REPORT_MAX - 1; i++) {
		unsigned char c = (unsigned char)e->msg[i];
		line[len++] = c < 0x20 ? ' ' : (char)c;
	}
	line[len++] = '\n';
	return len;
}

/* A positive decimal int ending at a space; advances *s past the space. */
static int parse_int_field(const char **s, int *out)
{
	const char *p = *s;
	long v = 0;
	if (*p < '1' || *p > '9')
		return -EPROTO;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (*p - '0')) > INT32_MAX)
			return -EPROTO;
	if (*p != ' ')
		return -EPROTO;
	*s = p + 1;
	*out = (int)v;
	return 0;
}

int handoff_report_parse(const char *line, struct err *err)
{
	if (strcmp(line, "ok") == 0)
		return 0;
	const char *p = line;
	int code, kind;
	if (strncmp(p, "err ", 4) == 0) {
		p += 4;
		if (parse_int_field(&p, &code) == 0 && parse_int_field(&p, &kind) == 0 &&
		    kind > ERR_KIND_NONE && kind <= ERR_INTERNAL)
			return err_set(err, code, (enum err_kind)kind, "%s", p);
	}
	return err_set(err, EPROTO, ERR_INTERNAL, "supervisor reported \"%.200s\"", line);
}
