/* fuzz_handoff: the daemon <-> supervisor codec (handoff.h).
 *
 * Input: the first byte picks the side, the rest is its input.
 *   0: a request as the supervisor reads it, from memory and from a pipe
 *      (both must agree); one that decodes must frame again to the same
 *      bytes.
 *   1: a report line as the daemon parses it; an error that parses must
 *      format and parse again to the same error.
 *
 * Its `_replay` binary links fuzz/replay.c: a main() that runs each file named on the
 * command line once (regression runs without libFuzzer). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* What handoff_request_read makes of buf, through a pipe (inputs larger
 * than a pipe's default buffer are skipped here). */
static int read_via_pipe(const char *buf, size_t len, struct handoff_request *req)
{
	int p[2];
	if (len > 60000 || pipe2(p, O_CLOEXEC) < 0)
		return 1;
	int r = write_all(p[1], buf, len);
	close(p[1]);
	if (r == 0)
		r = handoff_request_read(p[0], req, NULL);
	else
		r = 1;
	close(p[0]);
	return r;
}

static void request(const char *buf, size_t len)
{
	struct handoff_request req = {0}, piped = {0};
	int r = handoff_request_decode(buf, len, &req, NULL);
	int rp = read_via_pipe(buf, len, &piped);
	if (rp != 1) {
		/* The reader stops at the announced length; a decoded buffer
		 * holds exactly one request, so it reads the same. */
		if (r == 0) {
			CHECK(rp == 0);
			CHECK(strcmp(req.state_dir, piped.state_dir) == 0);
			CHECK(req.spec_len == piped.spec_len);
			CHECK(memcmp(req.spec, piped.spec, req.spec_len) == 0);
		}
	}
	if (r == 0) {
		char hdr[HANDOFF_HEADER_MAX];
		size_t dl = strlen(req.state_dir);
		int n = handoff_request_header(req.spec_len, dl, hdr);
		CHECK(n > 0);
		CHECK((size_t)n + dl + req.spec_len == len);
		CHECK(memcmp(buf, hdr, (size_t)n) == 0);
		CHECK(memcmp(buf + n, req.state_dir, dl) == 0);
		CHECK(memcmp(buf + n + dl, req.spec, req.spec_len) == 0);
	} else {
		CHECK(req.state_dir == NULL && req.spec == NULL);
	}
	handoff_request_free(&req);
	handoff_request_free(&piped);
}

static void report(const char *buf, size_t len)
{
	_cleanup_free_ char *line = xstrndup(buf, len);
	struct err e = {0};
	int r = handoff_report_parse(line, &e);
	if (r == 0 || e.code == EPROTO)
		return;
	char out[HANDOFF_REPORT_MAX];
	size_t n = handoff_report_format(&e, out);
	CHECK(n >= 2 && n <= sizeof out && out[n - 1] == '\n');
	CHECK(memchr(out, '\n', n - 1) == NULL);
	out[n - 1] = '\0';
	struct err again = {0};
	CHECK(handoff_report_parse(out, &again) == r);
	CHECK(again.code == e.code && again.kind == e.kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;
	if (data[0] & 1)
		report(buf, len);
	else
		request(buf, len);
	return 0;
}
