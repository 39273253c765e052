/* fuzz_state: the parsers of everything rund reads back from disk or from
 * the kernel: job spec/started/status files, log records, ULIDs, byte and
 * duration flag values, and the cgroup parsers (/proc/self/mountinfo,
 * /proc/self/cgroup, cgroup.controllers, -io_devices), and JobLog messages
 * as runc decodes them.
 *
 * Input: the first byte picks the parser, the rest is its input. A spec,
 * start or status that decodes must encode and decode again to the same
 * bytes (the codecs are each other's inverse).
 *
 * Its `_replay` binary links fuzz/replay.c: a main() that runs each file named on the
 * command line once (regression runs without libFuzzer). */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cgroup.h"
#include "flags.h"
#include "joblog.h"
#include "jobspec.h"
#include "logstore.h"
#include "ulid.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static void spec(const char *buf, size_t len)
{
	struct jobspec s = {0}, again = {0};
	if (jobspec_decode(buf, len, &s, NULL) == 0) {
		size_t n;
		_cleanup_free_ char *enc = jobspec_encode(&s, &n);
		CHECK(jobspec_decode(enc, n, &again, NULL) == 0);
		size_t n2;
		_cleanup_free_ char *enc2 = jobspec_encode(&again, &n2);
		CHECK(n == n2 && memcmp(enc, enc2, n) == 0);
	}
	jobspec_free(&s);
	jobspec_free(&again);
}

static void start(const char *buf, size_t len)
{
	struct jobstart st = {0};
	if (jobstart_decode(buf, len, &st, NULL) == 0) {
		size_t n;
		_cleanup_free_ char *enc = jobstart_encode(&st, &n);
		struct jobstart again = {0};
		CHECK(jobstart_decode(enc, n, &again, NULL) == 0);
		CHECK(memcmp(&st, &again, sizeof st) == 0);
	}
}

static void status(const char *buf, size_t len)
{
	struct jobstatus st = {0};
	if (jobstatus_decode(buf, len, &st, NULL) == 0) {
		size_t n;
		_cleanup_free_ char *enc = jobstatus_encode(&st, &n);
		struct jobstatus again = {0};
		CHECK(jobstatus_decode(enc, n, &again, NULL) == 0);
		size_t n2;
		_cleanup_free_ char *enc2 = jobstatus_encode(&again, &n2);
		CHECK(n == n2 && memcmp(enc, enc2, n) == 0);
	}
}

static void records(const uint8_t *buf, size_t len)
{
	while (len > 0) {
		enum log_record type;
		uint64_t time_ns;
		const uint8_t *payload;
		size_t plen, used;
		int r = logstore_parse(buf, len, &type, &time_ns, &payload, &plen, &used);
		if (r != 1)
			return;
		CHECK(used <= len && payload + plen <= buf + len);
		buf += used;
		len -= used;
	}
}

/* The follower over bytes as a log file: first as segment 1 of a log
 * (version 2), then as the version-1 file, from the first byte and from
 * an offset taken from the input. Every chunk must lie inside what was
 * asked for and offsets must only grow. */
static void follow(const uint8_t *buf, size_t len)
{
	static char dir[64];
	static int dirfd_ = -1;
	if (dirfd_ < 0) {
		strcpy(dir, "/tmp/fuzz_state.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		mkdirat(dirfd_, "j", 0700);
	}
	uint64_t from = len > 0 ? buf[0] : 0;
	for (int v1 = 0; v1 < 2; v1++) {
		const char *name = v1 ? "j/log" : "j/log.1";
		int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, buf, len) < 0)
			abort();
		close(fd);
		for (int k = 0; k < 2; k++) {
			struct logreader r;
			CHECK(logreader_open(&r, dirfd_, "j", "log", k ? from : 0) == 0);
			uint8_t dst[4096];
			struct logchunk ch;
			uint64_t last = 0;
			for (int i = 0; i < 100000; i++) {
				int n = (i & 1) ? logreader_read(&r, dst, sizeof dst, &ch)
						: logreader_next(&r, 0, &ch);
				if (n != 1)
					break;
				CHECK(ch.off >= last);
				CHECK(ch.len <= len);
				if (ch.stream == LOG_STDOUT || ch.stream == LOG_STDERR)
					CHECK(ch.off >= (k ? from : 0));
				last = ch.off + ch.len;
				if (i % 7 == 3)
					logreader_park(&r);
			}
			logreader_close(&r);
		}
		unlinkat(dirfd_, name, 0);
	}
}

static void text_parsers(const char *s)
{
	struct ulid u;
	if (ulid_parse(s, strlen(s), &u) == 0) {
		char back[ULID_LEN + 1];
		ulid_format(&u, back);
		/* Ids are read in either case and written in upper case. */
		CHECK(strcasecmp(back, s) == 0);
	}
	uint64_t v;
	flags_parse_bytes(s, &v);
	flags_parse_duration(s, &v);
	char *a = NULL, *b = NULL;
	if (cgroup_parse_mountinfo(s, &a, &b) == 0)
		CHECK(a[0] == '/' && b[0] == '/');
	free(a);
	free(b);
	a = NULL;
	if (cgroup_parse_self(s, &a) == 0)
		CHECK(a[0] == '/');
	free(a);
	cgroup_parse_controllers(s);
	struct io_device *devs = NULL;
	size_t n = 0;
	if (cgroup_parse_io_devices(s, &devs, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			CHECK(devs[i].major < 4096 && devs[i].minor < (1u << 20));
	free(devs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *rest = (const char *)data + 1;
	size_t len = size - 1;
	switch (data[0] % 7) {
	case 0:
		spec(rest, len);
		break;
	case 1:
		start(rest, len);
		break;
	case 2:
		status(rest, len);
		break;
	case 3:
		records(data + 1, len);
		break;
	case 5: {
		struct joblog_view v;
		if (joblog_parse(data + 1, len, &v) == 0)
			CHECK((!v.out || v.out + v.out_len <= data + size) &&
			      (!v.err || v.err + v.err_len <= data + size));
		break;
	}
	case 6:
		follow(data + 1, len);
		break;
	default: {
		char *s = xstrndup(rest, len); /* text parsers take C strings */
		text_parsers(s);
		free(s);
		break;
	}
	}
	return 0;
}
