/* rundctl (runc in the build tree): the command-line client of rund.
 *
 *   rundctl [flags] <command> [command flags] [args]
 *
 * One RPC per invocation (wait and start -wait: as many as a daemon restart
 * takes). Exit status: 0 success, 1 the call failed (the server's gRPC
 * status or a transport error, on stderr as "rundctl: <command>: <reason>"),
 * 2 usage error, 130/143 interrupted by SIGINT/SIGTERM; wait and start
 * -wait exit with the job's code (exit_status()). The connection flags are
 * accepted before the command and after it, so `runc status -addr h:1 ID`
 * and `runc -addr h:1 status ID` mean the same. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "clientconf.h"
#include "config.h"
#include "flags.h"
#include "grpc.h"
#include "handoff.h"
#include "joblog.h"
#include "jobspec.h"
#include "health.pb-c.h"
#include "rund.pb-c.h"
#include "util.h"
#include "version.h"

#define UNARY_TIMEOUT_NS (30ull * 1000000000)

enum {
	EXIT_RPC = 1,
	EXIT_USAGE = 2,
	EXIT_LOST = 125, /* wait: the job's supervisor died (state LOST) */
};

/* The name we were called by (rundctl, or runc in the build tree), for
 * messages. */
static const char *prog = "rundctl";

/* wait: pause between attempts while the server is away (restarting). */
#define WAIT_RETRY_MIN_MS 100
#define WAIT_RETRY_MAX_MS 2000

/* Set by the SIGINT/SIGTERM handler; the client polls it. */
static volatile sig_atomic_t interrupted;

struct conn_flags {
	const char *addr, *ca, *cert, *key;
	uint64_t timeout_ns;
	bool timeout_set;
};

struct command;
typedef int (*command_fn)(const struct command *cmd, struct conn_flags *cf, int argc, char **argv);

struct command {
	const char *name;
	const char *args; /* synopsis after the flags */
	const char *summary;
	int min_args, max_args; /* max -1: unlimited */
	bool streaming;		/* no default deadline */
	command_fn run;
	struct flag *flags; /* command-specific flags, or NULL */
	size_t n_flags;
};

#define CONN_FLAGS(cf)                                                                             \
	{"addr", FLAG_STRING, &(cf)->addr, "server address, host:port or [v6addr]:port", false},   \
		{"ca", FLAG_STRING, &(cf)->ca, "CA certificate the server must chain to (PEM)",    \
		 false},                                                                           \
		{"cert", FLAG_STRING, &(cf)->cert, "client certificate (PEM)", false},             \
		{"key", FLAG_STRING, &(cf)->key, "client private key (PEM)", false},               \
	{                                                                                          \
		"timeout", FLAG_DURATION, &(cf)->timeout_ns,                                       \
			"deadline for the call, e.g. 5s; 0 = none (default 30s, none for log)",    \
			false                                                                      \
	}

/* ---- output -------------------------------------------------------------- */

static void on_signal(int sig)
{
	interrupted = sig;
}

/* Exits the way a Unix filter does when its reader went away (`| head`):
 * by SIGPIPE, silently. */
static void __attribute__((noreturn)) exit_broken_pipe(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(128 + SIGPIPE);
}

static void __attribute__((noreturn)) exit_interrupted(void)
{
	exit(128 + (interrupted ? interrupted : SIGINT));
}

static void fail_msg(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_msg(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: %s: ", prog, cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Writes s as a JSON string: valid UTF-8 passes through, invalid bytes
 * become U+FFFD, control characters, quotes and backslashes are escaped. */
static void json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', out);
	while (*p) {
		unsigned char b = *p;
		if (b == '"' || b == '\\') {
			fputc('\\', out);
			fputc(b, out);
			p++;
			continue;
		}
		if (b < 0x20 || b == 0x7f) {
			switch (b) {
			case '\n':
				fputs("\\n", out);
				break;
			case '\r':
				fputs("\\r", out);
				break;
			case '\t':
				fputs("\\t", out);
				break;
			case '\b':
				fputs("\\b", out);
				break;
			case '\f':
				fputs("\\f", out);
				break;
			default:
				fprintf(out, "\\u%04x", b);
				break;
			}
			p++;
			continue;
		}
		if (b < 0x80) {
			fputc(b, out);
			p++;
			continue;
		}
		/* The length and the allowed range of the first continuation
		 * byte exclude overlong forms, surrogates and > U+10FFFF. */
		size_t n = 0;
		unsigned char lo = 0x80, hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf)
			n = 1;
		else if (b >= 0xe0 && b <= 0xef) {
			n = 2;
			lo = b == 0xe0 ? 0xa0 : 0x80;
			hi = b == 0xed ? 0x9f : 0xbf;
		} else if (b >= 0xf0 && b <= 0xf4) {
			n = 3;
			lo = b == 0xf0 ? 0x90 : 0x80;
			hi = b == 0xf4 ? 0x8f : 0xbf;
		}
		bool ok = n > 0 && p[1] >= lo && p[1] <= hi;
		for (size_t i = 2; ok && i <= n; i++)
			ok = p[i] >= 0x80 && p[i] <= 0xbf;
		if (!ok) {
			fputs("\\ufffd", out);
			p++;
			continue;
		}
		fwrite(p, 1, n + 1, out);
		p += n + 1;
	}
	fputc('"', out);
}

/* Proto3 JSON fractions: 0, 3, 6 or 9 digits. */
static void json_fraction(FILE *out, uint32_t nanos)
{
	if (nanos == 0)
		return;
	if (nanos % 1000000 == 0)
		fprintf(out, ".%03" PRIu32, nanos / 1000000);
	else if (nanos % 1000 == 0)
		fprintf(out, ".%06" PRIu32, nanos / 1000);
	else
		fprintf(out, ".%09" PRIu32, nanos);
}

static void json_duration(FILE *out, const Google__Protobuf__Duration *d)
{
	if (!d) {
		fputs("null", out);
		return;
	}
	bool neg = d->seconds < 0 || d->nanos < 0;
	uint64_t secs = d->seconds < 0 ? -(uint64_t)d->seconds : (uint64_t)d->seconds;
	uint32_t nanos = d->nanos < 0 ? (uint32_t) - (int64_t)d->nanos : (uint32_t)d->nanos;
	fprintf(out, "\"%s%" PRIu64, neg ? "-" : "", secs);
	json_fraction(out, nanos % 1000000000);
	fputs("s\"", out);
}

static void json_timestamp(FILE *out, const Google__Protobuf__Timestamp *t)
{
	if (!t) {
		fputs("null", out);
		return;
	}
	/* RFC 3339 as proto3 JSON uses it covers years 0001 to 9999. */
	if (t->seconds < -62135596800LL || t->seconds > 253402300799LL) {
		fputs("null", out);
		return;
	}
	time_t secs = (time_t)t->seconds;
	struct tm tm;
	char buf[64];
	if (!gmtime_r(&secs, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		fputs("null", out);
		return;
	}
	fprintf(out, "\"%s", buf);
	json_fraction(out, t->nanos > 0 ? (uint32_t)t->nanos % 1000000000 : 0);
	fputs("Z\"", out);
}

static void json_bool(FILE *out, const char *name, bool v, bool comma)
{
	fprintf(out, "\"%s\":%s%s", name, v ? "true" : "false", comma ? "," : "");
}

static void json_u64str(FILE *out, const char *name, uint64_t v)
{
	fprintf(out, "\"%s\":\"%" PRIu64 "\",", name, v);
}

/* The proto3 JSON mapping with proto field names and every field present
 * (unset messages as null), one line. */
static void print_status(FILE *out, const Rund__JobStatus *s)
{
	fputc('{', out);
	json_bool(out, "stopped", s->stopped, true);
	json_bool(out, "killed", s->killed, true);
	fputs("\"exit_code\":", out);
	if (s->exit_code)
		fprintf(out, "%" PRIu32, s->exit_code->value);
	else
		fputs("null", out);
	fputs(",\"user_time\":", out);
	json_duration(out, s->user_time);
	fputs(",\"system_time\":", out);
	json_duration(out, s->system_time);
	fputc(',', out);
	json_u64str(out, "memory_current", s->memory_current);

	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		&rund__job_status__state__descriptor, s->state);
	fputs("\"state\":", out);
	if (ev)
		json_string(out, ev->name);
	else
		fprintf(out, "%d", (int)s->state);
	fprintf(out, ",\"signal\":%" PRIu32 ",", s->signal);
	json_bool(out, "oom_killed", s->oom_killed, true);
	json_u64str(out, "memory_peak", s->memory_peak);
	fputs("\"start_time\":", out);
	json_timestamp(out, s->start_time);
	fputs(",\"end_time\":", out);
	json_timestamp(out, s->end_time);
	fputs(",\"command\":[", out);
	for (size_t i = 0; i < s->n_command; i++) {
		if (i)
			fputc(',', out);
		json_string(out, s->command[i]);
	}
	fputs("],", out);
	json_u64str(out, "log_bytes", s->log_bytes);
	json_bool(out, "log_truncated", s->log_truncated, true);
	fprintf(out, "\"uid\":%" PRIu32 ",", s->uid);
	json_bool(out, "timed_out", s->timed_out, true);
	json_u64str(out, "log_end", s->log_end);
	json_u64str(out, "log_lost", s->log_lost);
	fprintf(out, "\"log_first\":\"%" PRIu64 "\"}", s->log_first);
}

static int flush_stdout(const char *cmd)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			exit_broken_pipe();
		fail_msg(cmd, "write to stdout: %s", strerror(errno));
		return EXIT_RPC;
	}
	return 0;
}

/* ---- calls --------------------------------------------------------------- */

static struct client *dial(const struct command *cmd, const struct conn_flags *cf)
{
	struct client_opts o = {
		.addr = cf->addr,
		.ca = cf->ca,
		.cert = cf->cert,
		.key = cf->key,
		.cancel = &interrupted,
	};
	uint64_t t = cf->timeout_set ? cf->timeout_ns : cmd->streaming ? 0 : UNARY_TIMEOUT_NS;
	/* Round up: a 1ns deadline is still a deadline. */
	o.timeout_ms = (t + 999999) / 1000000;

	struct err err = {0};
	struct client *c = client_connect(&o, &err);
	if (!c) {
		if (err.code == ECANCELED && interrupted)
			exit_interrupted();
		fail_msg(cmd->name, "%s", err.msg);
	}
	return c;
}

/* A server's message goes to a terminal: its control characters (escape
 * sequences) are shown, not obeyed. Newlines and tabs are kept. */
static void sanitize(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			*p = '?';
}

/* Reports a failed call; returns the exit status. */
static int call_failed(const struct command *cmd, int r, struct client_status *st, struct err *err)
{
	if (r == -ECANCELED && interrupted)
		exit_interrupted();
	if (r < 0) {
		sanitize(err->msg);
		fail_msg(cmd->name, "%s", err->msg);
	} else {
		sanitize(st->message);
		fail_msg(cmd->name, "%s: %s", grpc_code_name(st->code), st->message);
	}
	return EXIT_RPC;
}

/* One unary call with the request packed from msg; *resp is the answer on
 * success (caller frees). Returns 0 or an exit status. */
static int unary(const struct command *cmd, struct conn_flags *cf, const char *path,
		 const ProtobufCMessage *msg, uint8_t **resp, size_t *resp_len)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	_cleanup_free_ uint8_t *req = xmalloc(len);
	protobuf_c_message_pack(msg, req);

	struct client *c = dial(cmd, cf);
	if (!c)
		return EXIT_RPC;
	struct client_status st;
	struct err err = {0};
	int r = client_unary(c, path, req, len, resp, resp_len, &st, &err);
	client_free(c);
	if (r < 0 || st.code != GRPC_OK)
		return call_failed(cmd, r, &st, &err);
	return 0;
}

/* Prints a JobStatus answer as one JSON line; EXIT_RPC if it does not
 * decode. */
static int print_status_answer(const struct command *cmd, const uint8_t *resp, size_t len)
{
	Rund__JobStatus *s = rund__job_status__unpack(NULL, len, resp);
	if (!s) {
		fail_msg(cmd->name, "cannot decode the server's JobStatus (%zu bytes)", len);
		return EXIT_RPC;
	}
	print_status(stdout, s);
	putchar('\n');
	rund__job_status__free_unpacked(s, NULL);
	return flush_stdout(cmd->name);
}

static int cmd_status(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	Rund__JobIdentifier id = RUND__JOB_IDENTIFIER__INIT;
	id.ulid = argv[0];
	const char *path = strcmp(cmd->name, "stop") == 0 ? "/rund.JobController/Stop"
							  : "/rund.JobController/Status";
	_cleanup_free_ uint8_t *resp = NULL;
	size_t len;
	int r = unary(cmd, cf, path, &id.base, &resp, &len);
	if (r)
		return r;
	return print_status_answer(cmd, resp, len);
}

static int follow_and_wait(const struct command *cmd, struct conn_flags *cf, const char *id);

/* start's flags: one per row of job_limit_defs (start_flags_init), in
 * table order, so start_flags[l] is limit l; then the others. */
static uint64_t limit_values[LIMIT_COUNT];
static struct flag_strings start_env;
static const char *start_cwd;
static uint64_t start_max_run_time, start_run_time_grace;
static bool start_wait;
enum {
	START_ENV = LIMIT_COUNT,
	START_CWD,
	START_MAX_RUN_TIME,
	START_RUN_TIME_GRACE,
	START_WAIT,
	START_NFLAGS,
};
static struct flag start_flags[START_NFLAGS] = {
	[START_ENV] = {"env", FLAG_STRINGS, &start_env,
		       "KEY=VALUE added to the job's environment (repeat for more)", false},
	[START_CWD] = {"cwd", FLAG_STRING, &start_cwd,
		       "the job's working directory, absolute (default /)", false},
	[START_MAX_RUN_TIME] = {"max_run_time", FLAG_DURATION, &start_max_run_time,
				"stop the job after this long (SIGTERM, then kill after "
				"-run_time_grace), e.g. 1h",
				false},
	[START_RUN_TIME_GRACE] = {"run_time_grace", FLAG_DURATION, &start_run_time_grace,
				  "time between -max_run_time's SIGTERM and the kill (default "
				  "10s, at most 1h)",
				  false},
	[START_WAIT] = {"wait", FLAG_BOOL, &start_wait,
			"stream the job's output and exit with its code, as `wait` does", false},
};

static void start_flags_init(void)
{
	for (int l = 0; l < LIMIT_COUNT; l++) {
		const struct job_limit_def *d = &job_limit_defs[l];
		start_flags[l] = (struct flag){
			.name = d->name,
			.type = d->unit == LIMIT_UNIT_BYTES ? FLAG_BYTES : FLAG_U64,
			.value = &limit_values[l],
			.usage = d->help,
		};
	}
}

/* Sets the JobStartRequest wrapper field named like limit l to v (the
 * field and its width come from the descriptor, as in api.c). The wrapper
 * is malloc'd into *w. Returns 0, or an exit status after saying why. */
static int set_limit(Rund__JobStartRequest *req, int l, uint64_t v, ProtobufCMessage **w)
{
	const char *name = job_limit_defs[l].name;
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(req->base.descriptor, name);
	const ProtobufCFieldDescriptor *vf =
		f && f->type == PROTOBUF_C_TYPE_MESSAGE
			? protobuf_c_message_descriptor_get_field_by_name(f->descriptor, "value")
			: NULL;
	if (!vf || (vf->type != PROTOBUF_C_TYPE_UINT32 && vf->type != PROTOBUF_C_TYPE_UINT64)) {
		fail_msg("start", "-%s has no JobStartRequest field (a build error)", name);
		return EXIT_RPC;
	}
	if (vf->type == PROTOBUF_C_TYPE_UINT32 && v > UINT32_MAX) {
		fprintf(stderr,
			"%s: start: invalid value \"%" PRIu64 "\" for flag -%s: above %" PRIu32
			"\n",
			prog, v, name, UINT32_MAX);
		return EXIT_USAGE;
	}
	const ProtobufCMessageDescriptor *wd = f->descriptor;
	*w = xcalloc(1, wd->sizeof_message);
	protobuf_c_message_init(wd, *w);
	char *p = (char *)*w + vf->offset;
	if (vf->type == PROTOBUF_C_TYPE_UINT32)
		*(uint32_t *)p = (uint32_t)v;
	else
		*(uint64_t *)p = v;
	*(ProtobufCMessage **)((char *)req + f->offset) = *w;
	return 0;
}

static int cmd_start(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	Rund__JobStartRequest req = RUND__JOB_START_REQUEST__INIT;
	req.name = argv[0];
	req.n_args = (size_t)argc - 1;
	req.args = argv + 1;

	ProtobufCMessage *wrappers[LIMIT_COUNT] = {0};
	int r = 0;
	for (int l = 0; l < LIMIT_COUNT && r == 0; l++)
		if (start_flags[l].set)
			r = set_limit(&req, l, limit_values[l], &wrappers[l]);
	req.n_env = start_env.n;
	req.env = (char **)start_env.v;
	if (start_cwd)
		req.cwd = (char *)start_cwd;
	Google__Protobuf__Duration run = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Duration grace = GOOGLE__PROTOBUF__DURATION__INIT;
	if (start_flags[START_MAX_RUN_TIME].set) {
		run.seconds = (int64_t)(start_max_run_time / 1000000000);
		run.nanos = (int32_t)(start_max_run_time % 1000000000);
		req.max_run_time = &run;
	}
	if (start_flags[START_RUN_TIME_GRACE].set) {
		grace.seconds = (int64_t)(start_run_time_grace / 1000000000);
		grace.nanos = (int32_t)(start_run_time_grace % 1000000000);
		req.run_time_grace = &grace;
	}
	_cleanup_free_ uint8_t *resp = NULL;
	size_t len;
	if (r == 0)
		r = unary(cmd, cf, "/rund.JobController/Start", &req.base, &resp, &len);
	for (int l = 0; l < LIMIT_COUNT; l++)
		free(wrappers[l]);
	free(start_env.v);
	if (r)
		return r;
	Rund__JobIdentifier *id = rund__job_identifier__unpack(NULL, len, resp);
	if (!id) {
		fail_msg(cmd->name, "cannot decode the server's JobIdentifier (%zu bytes)", len);
		return EXIT_RPC;
	}
	if (start_wait) {
		/* The id goes to stderr: stdout is the job's. */
		fprintf(stderr, "%s\n", id->ulid);
		r = follow_and_wait(cmd, cf, id->ulid);
	} else {
		printf("%s\n", id->ulid);
		r = flush_stdout(cmd->name);
	}
	rund__job_identifier__free_unpacked(id, NULL);
	return r;
}

/* log's flags. */
static bool log_follow = true, log_timestamps;
static uint64_t log_offset, log_tail;
static struct flag log_flags[] = {
	{"follow", FLAG_BOOL, &log_follow,
	 "stream until the job ends; -follow=false prints what is there now and exits", false},
	{"offset", FLAG_U64, &log_offset, "start at this output byte offset", false},
	{"tail", FLAG_U64, &log_tail, "start at the last N lines", false},
	{"timestamps", FLAG_BOOL, &log_timestamps,
	 "prefix each line with the time the server read it (RFC 3339, UTC)", false},
};

#define RECONNECT_GIVEUP_NS (60ull * 1000000000) /* without any progress */

struct log_ctx {
	const char *cmd;
	bool bad_message;
	bool got;	 /* a message arrived (a tail became an offset) */
	uint64_t msgs;	 /* messages so far */
	uint64_t next;	 /* offset of the next byte we want */
	bool at_line[3]; /* per stream: the next byte starts a line */
	bool timestamps;
};

/* A JobLog seen in place. The Log stream is the one hot path of runc: its
 * payloads go from the receive buffer to fd 1/2 without protobuf-c's copy
 * and allocation per message. */
static int write_out(int fd, const uint8_t *b, size_t len)
{
	if (len == 0)
		return 0;
	int r = write_all(fd, b, len);
	if (r == -EPIPE)
		exit_broken_pipe();
	return r;
}

/* Output with the message's time in front of every line it starts. */
static int write_stamped(struct log_ctx *lc, int fd, const struct joblog_view *l, const uint8_t *b,
			 size_t len)
{
	char stamp[48];
	struct tm tm;
	time_t sec = (time_t)l->time_sec;
	gmtime_r(&sec, &tm);
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%09dZ ", (int)l->time_nsec);
	while (len > 0) {
		int r;
		if (lc->at_line[fd] &&
		    (r = write_out(fd, (const uint8_t *)stamp, strlen(stamp))) < 0)
			return r;
		const uint8_t *nl = memchr(b, '\n', len);
		size_t k = nl ? (size_t)(nl - b) + 1 : len;
		if ((r = write_out(fd, b, k)) < 0)
			return r;
		lc->at_line[fd] = nl != NULL;
		b += k;
		len -= k;
	}
	return 0;
}

static int emit(struct log_ctx *lc, int fd, const struct joblog_view *l, const uint8_t *b,
		size_t len)
{
	return lc->timestamps && l->has_time ? write_stamped(lc, fd, l, b, len)
					     : write_out(fd, b, len);
}

static int on_log(void *ctx, const uint8_t *msg, size_t len)
{
	struct log_ctx *lc = ctx;
	struct joblog_view l;
	if (joblog_parse(msg, len, &l) < 0) {
		lc->bad_message = true;
		return 1;
	}
	lc->got = true;
	lc->msgs++;
	int r = emit(lc, STDOUT_FILENO, &l, l.out, l.out_len);
	if (r == 0)
		r = emit(lc, STDERR_FILENO, &l, l.err, l.err_len);
	if (r < 0) {
		fail_msg(lc->cmd, "write output: %s", strerror(-r));
		return 1;
	}
	if (l.lost_bytes) {
		fflush(stdout);
		fprintf(stderr,
			"%s: output bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64 " bytes) %s\n", prog,
			l.offset - l.lost_bytes, l.offset, l.lost_bytes,
			l.gap_reason == 2
				? "were lost: the server could not store them"
				: "were dropped: the server keeps only the newest output");
		lc->next = l.offset;
	} else if (l.truncated_at) {
		fprintf(stderr, "%s: output truncated by the server after %" PRIu64 " bytes\n",
			prog, l.truncated_at);
	} else {
		lc->next = l.offset + l.out_len + l.err_len;
	}
	return 0;
}

/* A connection the server dropped or drained (UNAVAILABLE, GOAWAY, reset)
 * is worth another try; anything else is the answer. */
static bool retryable(int r, const struct client_status *st)
{
	if (r == -ECANCELED)
		return false;
	return r < 0 || st->code == GRPC_UNAVAILABLE;
}

static uint8_t *log_request(const char *id, const struct log_ctx *lc, size_t *len)
{
	Rund__LogRequest req = RUND__LOG_REQUEST__INIT;
	Google__Protobuf__UInt64Value tail = GOOGLE__PROTOBUF__UINT64_VALUE__INIT;
	req.ulid = (char *)id;
	req.no_follow = !log_follow;
	req.timestamps = log_timestamps;
	if (log_flags[2].set && !lc->got) {
		tail.value = log_tail;
		req.tail_lines = &tail;
	} else {
		req.offset = lc->next;
	}
	*len = rund__log_request__get_packed_size(&req);
	uint8_t *buf = xmalloc(*len);
	rund__log_request__pack(&req, buf);
	return buf;
}

/* Streams the log; when the server goes away (a restart, a drain) it
 * reconnects and asks for the next byte it has not printed. */
static int cmd_log(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	if (log_flags[1].set && log_flags[2].set) {
		fail_msg(cmd->name, "-offset and -tail exclude each other");
		return EXIT_USAGE;
	}
	struct log_ctx lc = {.cmd = cmd->name, .next = log_offset, .timestamps = log_timestamps};
	lc.at_line[STDOUT_FILENO] = lc.at_line[STDERR_FILENO] = true;
	struct client *c = dial(cmd, cf);
	if (!c)
		return EXIT_RPC;
	uint64_t progress_ns = now_mono_ns(), delay_ms = 50, seen = 0;
	for (;;) {
		size_t len;
		_cleanup_free_ uint8_t *req = log_request(argv[0], &lc, &len);
		struct client_status st = {0};
		struct err err = {0};
		int r = client_stream(c, "/rund.JobController/ReadLog", req, len, on_log, &lc, &st,
				      &err);
		if (r == -ECANCELED && !interrupted) {
			client_free(c);
			if (lc.bad_message)
				fail_msg(cmd->name,
					 "cannot decode a JobLog message from the server");
			return EXIT_RPC; /* a write error, already reported */
		}
		if (r == 0 && st.code == GRPC_OK) {
			client_free(c);
			return 0;
		}
		if (!retryable(r, &st) || interrupted) {
			client_free(c);
			return call_failed(cmd, r, &st, &err);
		}
		if (lc.msgs != seen) {
			seen = lc.msgs;
			progress_ns = now_mono_ns();
			delay_ms = 50;
		}
		client_free(c);
		c = NULL;
		/* Reconnect until it works or nothing moved for a long while. */
		while (!c) {
			if (now_mono_ns() - progress_ns > RECONNECT_GIVEUP_NS)
				return call_failed(cmd, r, &st, &err);
			struct timespec ts = {(time_t)(delay_ms / 1000),
					      (long)(delay_ms % 1000) * 1000000};
			nanosleep(&ts, NULL);
			if (interrupted)
				exit_interrupted();
			delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
			struct client_opts o = {.addr = cf->addr,
						.ca = cf->ca,
						.cert = cf->cert,
						.key = cf->key,
						.cancel = &interrupted};
			struct err e2 = {0};
			c = client_connect(&o, &e2);
		}
	}
}

/* ---- wait ---------------------------------------------------------------- */

/* The exit status a shell would give the job: its exit code, 128 + the
 * signal that ended it, EXIT_LOST when its supervisor died. */
static int exit_status(const Rund__JobStatus *s)
{
	if (s->state == RUND__JOB_STATUS__STATE__LOST)
		return EXIT_LOST;
	if (s->exit_code)
		return (int)(s->exit_code->value & 0xff);
	if (s->signal)
		return 128 + (int)(s->signal & 0x7f);
	return EXIT_RPC;
}

static struct client *dial_quiet(const struct conn_flags *cf, struct err *err)
{
	struct client_opts o = {
		.addr = cf->addr,
		.ca = cf->ca,
		.cert = cf->cert,
		.key = cf->key,
		.cancel = &interrupted,
		.timeout_ms = cf->timeout_set ? (cf->timeout_ns + 999999) / 1000000 : 0,
	};
	return client_connect(&o, err);
}

/* Sleeps ms, or less when a signal arrives. */
static void pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	if (interrupted)
		exit_interrupted();
}

/* Calls Wait until it answers. Once the server was reached, a lost
 * connection or UNAVAILABLE (a daemon restarting) is tried again until the
 * server is back; the first connection failing is an error. Returns 0 with
 * *out set (caller frees), or an exit status. */
static int wait_status(const struct command *cmd, struct conn_flags *cf, const char *id,
		       Rund__JobStatus **out)
{
	Rund__JobIdentifier m = RUND__JOB_IDENTIFIER__INIT;
	m.ulid = (char *)id;
	size_t len = rund__job_identifier__get_packed_size(&m);
	_cleanup_free_ uint8_t *req = xmalloc(len);
	rund__job_identifier__pack(&m, req);
	unsigned pause = WAIT_RETRY_MIN_MS;
	bool reached = false, said = false;
	for (;;) {
		struct err err = {0};
		struct client_status st = {0};
		int r;
		struct client *c = dial_quiet(cf, &err);
		if (!c) {
			r = -(err.code ? err.code : EIO);
		} else {
			reached = true;
			_cleanup_free_ uint8_t *resp = NULL;
			size_t resp_len;
			r = client_unary(c, "/rund.JobController/Wait", req, len, &resp, &resp_len,
					 &st, &err);
			client_free(c);
			if (r == 0 && st.code == GRPC_OK) {
				*out = rund__job_status__unpack(NULL, resp_len, resp);
				if (*out)
					return 0;
				fail_msg(cmd->name, "cannot decode the server's JobStatus");
				return EXIT_RPC;
			}
		}
		if (r == -ECANCELED && interrupted)
			exit_interrupted();
		bool retry = reached && (r < 0 || st.code == GRPC_UNAVAILABLE);
		if (!retry)
			return call_failed(cmd, r, &st, &err);
		if (!said) {
			sanitize(r < 0 ? err.msg : st.message);
			fail_msg(cmd->name, "%s; waiting for the server to come back",
				 r < 0 ? err.msg : st.message);
			said = true;
		}
		pause_ms(pause);
		pause = pause * 2 > WAIT_RETRY_MAX_MS ? WAIT_RETRY_MAX_MS : pause * 2;
	}
}

static int cmd_wait(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	Rund__JobStatus *s = NULL;
	int r = wait_status(cmd, cf, argv[0], &s);
	if (r)
		return r;
	r = exit_status(s);
	rund__job_status__free_unpacked(s, NULL);
	return r;
}

/* start -wait: the output as it comes, then the job's exit status. */
static int follow_and_wait(const struct command *cmd, struct conn_flags *cf, const char *id)
{
	Rund__JobIdentifier m = RUND__JOB_IDENTIFIER__INIT;
	m.ulid = (char *)id;
	size_t len = rund__job_identifier__get_packed_size(&m);
	_cleanup_free_ uint8_t *req = xmalloc(len);
	rund__job_identifier__pack(&m, req);
	struct conn_flags stream_cf = *cf;
	stream_cf.timeout_set = false; /* -timeout was the Start's */
	struct err err = {0};
	struct client *c = dial_quiet(&stream_cf, &err);
	if (c) {
		struct log_ctx lc = {.cmd = cmd->name};
		struct client_status st;
		int r = client_stream(c, "/rund.JobController/Log", req, len, on_log, &lc, &st,
				      &err);
		client_free(c);
		if (r == -ECANCELED && interrupted)
			exit_interrupted();
		if (r == -ECANCELED)
			return EXIT_RPC; /* a write error, already reported */
		if (r == 0 && st.code != GRPC_OK && st.code != GRPC_UNAVAILABLE)
			return call_failed(cmd, r, &st, &err);
		/* A transport failure: the daemon went away; wait for it. */
	}
	Rund__JobStatus *s = NULL;
	int r = wait_status(cmd, &stream_cf, id, &s);
	if (r)
		return r;
	r = exit_status(s);
	rund__job_status__free_unpacked(s, NULL);
	return r;
}

/* ---- list ---------------------------------------------------------------- */

static bool list_json;
static const char *list_state;
static uint64_t list_limit;
static struct flag list_flags[] = {
	{"json", FLAG_BOOL, &list_json, "one JSON object per job and line", false},
	{"state", FLAG_STRING, &list_state, "only jobs in this state: running, exited or lost",
	 false},
	{"limit", FLAG_U64, &list_limit, "only the N newest jobs", false},
};

struct list_out {
	const char *cmd;
	bool bad_message;
};

static void print_started(const Google__Protobuf__Timestamp *t)
{
	char buf[32] = "-";
	if (t) {
		time_t secs = (time_t)t->seconds;
		struct tm tm;
		if (gmtime_r(&secs, &tm))
			strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("%-21s", buf);
}

static int on_list_entry(void *ctx, const uint8_t *msg, size_t len)
{
	struct list_out *lo = ctx;
	Rund__JobListEntry *e = rund__job_list_entry__unpack(NULL, len, msg);
	if (!e || !e->status) {
		if (e)
			rund__job_list_entry__free_unpacked(e, NULL);
		lo->bad_message = true;
		return 1;
	}
	const Rund__JobStatus *s = e->status;
	if (list_json) {
		fputs("{\"ulid\":", stdout);
		json_string(stdout, e->ulid);
		fputs(",\"status\":", stdout);
		print_status(stdout, s);
		fputs("}\n", stdout);
	} else {
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
			&rund__job_status__state__descriptor, s->state);
		char exit_col[24] = "-";
		if (s->exit_code)
			snprintf(exit_col, sizeof exit_col, "%" PRIu32, s->exit_code->value);
		else if (s->signal && sigabbrev_np((int)s->signal))
			snprintf(exit_col, sizeof exit_col, "SIG%s", sigabbrev_np((int)s->signal));
		else if (s->signal)
			snprintf(exit_col, sizeof exit_col, "signal %" PRIu32, s->signal);
		_cleanup_free_ char *id = xstrdup(e->ulid);
		sanitize(id);
		printf("%-26s  %-7s  %-7s  ", id, ev ? ev->name : "?", exit_col);
		print_started(s->start_time);
		for (size_t i = 0; i < s->n_command; i++) {
			_cleanup_free_ char *a = xstrdup(s->command[i]);
			/* One line per job: newlines and tabs shown as '?' too. */
			for (char *p = a; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			printf(" %s", a);
		}
		putchar('\n');
	}
	rund__job_list_entry__free_unpacked(e, NULL);
	if (ferror(stdout) && errno == EPIPE)
		exit_broken_pipe();
	return 0;
}

static int cmd_list(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	Rund__JobListRequest req = RUND__JOB_LIST_REQUEST__INIT;
	if (list_state) {
		static const struct {
			const char *name;
			Rund__JobStatus__State state;
		} states[] = {
			{"running", RUND__JOB_STATUS__STATE__RUNNING},
			{"exited", RUND__JOB_STATUS__STATE__EXITED},
			{"lost", RUND__JOB_STATUS__STATE__LOST},
		};
		size_t i = 0;
		while (i < ARRAY_SIZE(states) && strcasecmp(states[i].name, list_state) != 0)
			i++;
		if (i == ARRAY_SIZE(states)) {
			fail_msg(cmd->name,
				 "invalid value \"%s\" for flag -state: want running, "
				 "exited or lost",
				 list_state);
			return EXIT_USAGE;
		}
		req.state = states[i].state;
	}
	if (list_limit > UINT32_MAX) {
		fail_msg(cmd->name, "-limit %" PRIu64 " is above %" PRIu32, list_limit, UINT32_MAX);
		return EXIT_USAGE;
	}
	req.limit = (uint32_t)list_limit;
	size_t len = rund__job_list_request__get_packed_size(&req);
	_cleanup_free_ uint8_t *buf = xmalloc(len);
	rund__job_list_request__pack(&req, buf);

	struct client *c = dial(cmd, cf);
	if (!c)
		return EXIT_RPC;
	if (!list_json)
		printf("%-26s  %-7s  %-7s  %-21s %s\n", "ID", "STATE", "EXIT", "STARTED",
		       "COMMAND");
	struct list_out lo = {.cmd = cmd->name};
	struct client_status st;
	struct err err = {0};
	int r = client_stream(c, "/rund.JobController/List", buf, len, on_list_entry, &lo, &st,
			      &err);
	client_free(c);
	if (r == -ECANCELED && !interrupted && lo.bad_message) {
		fail_msg(cmd->name, "cannot decode a JobListEntry message from the server");
		return EXIT_RPC;
	}
	if (r < 0 || st.code != GRPC_OK)
		return call_failed(cmd, r, &st, &err);
	return flush_stdout(cmd->name);
}

/* ---- stop ---------------------------------------------------------------- */

static const char *stop_signal;
static uint64_t stop_grace;
static const char *stop_to = "main";
static struct flag stop_flags[] = {
	{"signal", FLAG_STRING, &stop_signal,
	 "send this signal first (TERM, SIGINT, 15...); without it the job is killed at once",
	 false},
	{"grace", FLAG_DURATION, &stop_grace,
	 "with -signal: how long the job may take to end before the whole group is killed "
	 "(at most 1h)",
	 false},
	{"to", FLAG_STRING, &stop_to,
	 "with -signal: main (the job's main process) or group (every process of the job)", false},
};

/* "TERM", "SIGTERM", "term", "15" -> 15; 0 when it is none of those. */
static int parse_signal(const char *s)
{
	uint64_t n;
	if (parse_u64(s, &n) == 0)
		return n >= 1 && n < (uint64_t)NSIG ? (int)n : 0;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (int sig = 1; sig < NSIG; sig++) {
		const char *abbrev = sigabbrev_np(sig);
		if (abbrev && strcasecmp(abbrev, s) == 0)
			return sig;
	}
	return 0;
}

static int cmd_stop(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	if (!stop_signal) {
		if (stop_flags[1].set || stop_flags[2].set) {
			fail_msg(cmd->name, "-grace and -to need -signal");
			return EXIT_USAGE;
		}
		return cmd_status(cmd, cf, argc, argv); /* the original Stop */
	}
	Rund__JobTerminateRequest req = RUND__JOB_TERMINATE_REQUEST__INIT;
	req.ulid = argv[0];
	int sig = parse_signal(stop_signal);
	if (!sig) {
		fail_msg(cmd->name, "invalid value \"%s\" for flag -signal: not a signal",
			 stop_signal);
		return EXIT_USAGE;
	}
	req.signal = (uint32_t)sig;
	if (strcmp(stop_to, "main") == 0)
		req.to = RUND__JOB_TERMINATE_REQUEST__TARGET__MAIN;
	else if (strcmp(stop_to, "group") == 0)
		req.to = RUND__JOB_TERMINATE_REQUEST__TARGET__GROUP;
	else {
		fail_msg(cmd->name, "invalid value \"%s\" for flag -to: main or group", stop_to);
		return EXIT_USAGE;
	}
	Google__Protobuf__Duration grace = GOOGLE__PROTOBUF__DURATION__INIT;
	grace.seconds = (int64_t)(stop_grace / 1000000000);
	grace.nanos = (int32_t)(stop_grace % 1000000000);
	req.grace = &grace;
	/* The call lasts the grace period: the default deadline grows with it. */
	if (!cf->timeout_set) {
		cf->timeout_ns = UNARY_TIMEOUT_NS + stop_grace;
		cf->timeout_set = true;
	}
	_cleanup_free_ uint8_t *resp = NULL;
	size_t len;
	int r = unary(cmd, cf, "/rund.JobController/Terminate", &req.base, &resp, &len);
	if (r)
		return r;
	return print_status_answer(cmd, resp, len);
}

static int cmd_health(const struct command *cmd, struct conn_flags *cf, int argc, char **argv)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	if (argc > 0)
		req.service = argv[0];
	_cleanup_free_ uint8_t *resp = NULL;
	size_t len;
	int r = unary(cmd, cf, "/grpc.health.v1.Health/Check", &req.base, &resp, &len);
	if (r)
		return r;
	Grpc__Health__V1__HealthCheckResponse *h =
		grpc__health__v1__health_check_response__unpack(NULL, len, resp);
	if (!h) {
		fail_msg(cmd->name, "cannot decode the server's HealthCheckResponse");
		return EXIT_RPC;
	}
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		&grpc__health__v1__health_check_response__serving_status__descriptor, h->status);
	bool serving =
		h->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	if (ev)
		printf("%s\n", ev->name);
	else
		printf("%d\n", (int)h->status);
	grpc__health__v1__health_check_response__free_unpacked(h, NULL);
	r = flush_stdout(cmd->name);
	return r ? r : serving ? 0 : EXIT_RPC;
}

static const struct command commands[] = {
	{"start", "NAME [ARGS...]",
	 "start NAME with ARGS (no shell, PATH lookup); prints the job ID", 1, -1, false, cmd_start,
	 start_flags, ARRAY_SIZE(start_flags)},
	{"stop", "ID",
	 "kill the job (or signal it, then kill it after -grace); print its final status as JSON",
	 1, 1, false, cmd_stop, stop_flags, ARRAY_SIZE(stop_flags)},
	{"status", "ID", "print the job's status as JSON", 1, 1, false, cmd_status, NULL, 0},
	{"wait", "ID", "wait until the job ends; exit with its code (128+N: signal N, 125: LOST)",
	 1, 1, true, cmd_wait, NULL, 0},
	{"list", "", "list your jobs, newest first (ID, STATE, EXIT, STARTED, COMMAND)", 0, 0,
	 false, cmd_list, list_flags, ARRAY_SIZE(list_flags)},
	{"ps", "", "same as list", 0, 0, false, cmd_list, list_flags, ARRAY_SIZE(list_flags)},
	{"log", "ID",
	 "stream the job's output until it ends, from its first byte; reconnects when the server "
	 "restarts",
	 1, 1, true, cmd_log, log_flags, ARRAY_SIZE(log_flags)},
	{"logs", "ID", "same as log", 1, 1, true, cmd_log, log_flags, ARRAY_SIZE(log_flags)},
	{"health", "[SERVICE]", "ask the server's grpc.health.v1 service; prints SERVING", 0, 1,
	 false, cmd_health, NULL, 0},
};

/* ---- usage and main ------------------------------------------------------ */

static void usage_main(FILE *out, struct flag *flags, size_t n)
{
	fprintf(out, "Usage: %s [flags] <command> [command flags] [args]\n\nCommands:\n", prog);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		char syn[64];
		snprintf(syn, sizeof syn, "%s %s", commands[i].name, commands[i].args);
		fprintf(out, "  %-22s %s\n", syn, commands[i].summary);
	}
	fprintf(out, "\nFlags (also accepted after the command):\n");
	flags_usage(out, flags, n);
	fprintf(out,
		"\nExit status: 0 ok, 1 the call failed, 2 usage error, 130 interrupted.\n"
		"Run '%s <command> -h' for the flags of a command.\n",
		prog);
}

static void usage_command(FILE *out, const struct command *cmd, struct flag *flags, size_t n)
{
	fprintf(out, "Usage: %s %s [flags] %s\n\n%s.\n\nFlags:\n", prog, cmd->name, cmd->args,
		cmd->summary);
	flags_usage(out, flags, n);
	if (cmd->run == cmd_start)
		fprintf(out, "\nLimits are sent only when given. Flags end at NAME: "
			     "`runc start ls -l` runs `ls -l`.\n"
			     "The job's environment is PATH=" HANDOFF_PATH ", HOME=/ and "
			     "LANG=C.UTF-8,\nplus -env entries (which may replace those).\n"
			     "With -wait the job's id goes to stderr and runc exits as `wait` "
			     "does.\n");
	if (cmd->run == cmd_wait)
		fprintf(out, "\nExit status: the job's exit code; 128+N when signal N ended it; "
			     "125 when it was\nLOST (its supervisor died); 1 when the call "
			     "failed. A daemon restart\nmeanwhile is waited out.\n");
	if (cmd->run == cmd_stop)
		fprintf(out, "\nWithout -signal the whole job is killed at once (cgroup.kill). "
			     "With -signal the\nsignal goes to the main process (-to main, the "
			     "default) or to every process\nof the job (-to group); whatever is "
			     "left after -grace is killed.\n");
}

/* Where each connection setting came from, for -h. */
static void print_sources(FILE *out, const struct clientconf *conf)
{
	fprintf(out, "\nConnection settings (flag, then $RUND_*, then %s, then built in):\n",
		conf->path ? conf->path
			   : "no config file: neither XDG_CONFIG_HOME nor HOME is set");
	for (int k = 0; k < CLIENTCONF_N; k++)
		fprintf(out, "  %-5s %s\t(%s)\n", clientconf_name(k), conf->value[k],
			conf->origin[k]);
}

/* Copies the connection flags that were given into conf; flags[0..3] are
 * CONN_FLAGS' addr, ca, cert, key. */
static void note_flags(struct clientconf *conf, const struct flag *flags)
{
	for (int k = 0; k < CLIENTCONF_N; k++)
		if (flags[k].set)
			clientconf_set_flag(conf, k, *(const char **)flags[k].value);
}

static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll() must return EINTR so the call ends now. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	static const char *const defaults[CLIENTCONF_N] = {
		[CLIENTCONF_ADDR] = "localhost:8000",
		[CLIENTCONF_CA] = RUND_DEFAULT_CA,
		[CLIENTCONF_CERT] = RUND_DEFAULT_CLIENT_CERT,
		[CLIENTCONF_KEY] = RUND_DEFAULT_CLIENT_KEY,
	};
	_cleanup_(clientconf_free) struct clientconf conf = {0};
	struct err err = {0};

	if (argv[0] && argv[0][0]) {
		const char *slash = strrchr(argv[0], '/');
		prog = slash ? slash + 1 : argv[0];
	}
	if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-version"))) {
		printf("%s (rund) %s\n", prog, RUND_VERSION);
		return 0;
	}
	install_signals();
	start_flags_init();

	clientconf_init(&conf, defaults);
	if (clientconf_load(&conf, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_USAGE;
	}
	struct conn_flags cf = {
		.addr = conf.value[CLIENTCONF_ADDR],
		.ca = conf.value[CLIENTCONF_CA],
		.cert = conf.value[CLIENTCONF_CERT],
		.key = conf.value[CLIENTCONF_KEY],
	};
	struct flag global[] = {CONN_FLAGS(&cf)};

	int r = flags_parse(global, ARRAY_SIZE(global), argc - 1, argv + 1, &err);
	note_flags(&conf, global);
	if (r == -FLAGS_HELP) {
		usage_main(stdout, global, ARRAY_SIZE(global));
		print_sources(stdout, &conf);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s\n\n", prog, err.msg);
		usage_main(stderr, global, ARRAY_SIZE(global));
		return EXIT_USAGE;
	}
	argc -= 1 + r;
	argv += 1 + r;
	if (argc == 0) {
		fprintf(stderr, "%s: no command given\n\n", prog);
		usage_main(stderr, global, ARRAY_SIZE(global));
		return EXIT_USAGE;
	}

	const struct command *cmd = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "%s: unknown command \"%s\"\n\n", prog, argv[0]);
		usage_main(stderr, global, ARRAY_SIZE(global));
		return EXIT_USAGE;
	}

	/* The command's own flags first, then the connection flags again,
	 * writing to the same variables. */
	size_t n = cmd->n_flags + ARRAY_SIZE(global);
	_cleanup_free_ struct flag *flags = xcalloc(n, sizeof *flags);
	for (size_t i = 0; i < cmd->n_flags; i++)
		flags[i] = cmd->flags[i];
	struct flag again[] = {CONN_FLAGS(&cf)};
	memcpy(flags + cmd->n_flags, again, sizeof again);

	r = flags_parse(flags, n, argc - 1, argv + 1, &err);
	note_flags(&conf, flags + cmd->n_flags);
	if (r == -FLAGS_HELP) {
		usage_command(stdout, cmd, flags, n);
		print_sources(stdout, &conf);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s\n\n", prog, cmd->name, err.msg);
		usage_command(stderr, cmd, flags, n);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < cmd->n_flags; i++)
		cmd->flags[i].set = flags[i].set;
	cf.timeout_set = global[4].set || flags[cmd->n_flags + 4].set;

	int nargs = argc - 1 - r;
	char **args = argv + 1 + r;
	if (nargs < cmd->min_args) {
		fprintf(stderr, "%s: %s: missing %s\n\n", prog, cmd->name, cmd->args);
		usage_command(stderr, cmd, flags, n);
		return EXIT_USAGE;
	}
	if (cmd->max_args >= 0 && nargs > cmd->max_args) {
		fprintf(stderr, "%s: %s: unexpected argument \"%s\" (usage: %s %s [flags] %s)\n",
			prog, cmd->name, args[cmd->max_args], prog, cmd->name, cmd->args);
		return EXIT_USAGE;
	}
	/* A malformed address is the caller's mistake, not a failed call. */
	_cleanup_free_ char *host = NULL, *port = NULL;
	if (addr_split(cf.addr, &host, &port, NULL) < 0 || !host[0]) {
		fprintf(stderr, "%s: -addr: bad address \"%s\": want host:port or [v6addr]:port\n",
			prog, cf.addr);
		return EXIT_USAGE;
	}
	return cmd->run(cmd, &cf, nargs, args);
}
