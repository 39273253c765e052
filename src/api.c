/* api: request decoding, authorization context, and response encoding for
 * every method. Handlers never block: Start and Stop answer from job
 * callbacks, Log from the transport's pull callback. */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "grpc.h"
#include "joblog.h"
#include "health.pb-c.h"
#include "rund.pb-c.h"
#include "util.h"

/* One JobLog message carries at most this much output: large enough for
 * throughput, small enough to keep per-stream buffering modest. */
#define LOG_CHUNK (64u * 1024)

int api_status_code(const struct err *err)
{
	switch (err->kind) {
	case ERR_INVALID:
		return GRPC_INVALID_ARGUMENT;
	case ERR_NOT_FOUND:
		return GRPC_NOT_FOUND;
	case ERR_PRECONDITION:
		return GRPC_FAILED_PRECONDITION;
	case ERR_PERMISSION:
		return GRPC_PERMISSION_DENIED;
	case ERR_EXHAUSTED:
		return GRPC_RESOURCE_EXHAUSTED;
	case ERR_KIND_NONE:
	case ERR_INTERNAL:
		break;
	}
	switch (err->code) {
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
	case ENOMEM:
		return GRPC_RESOURCE_EXHAUSTED;
	default:
		return GRPC_INTERNAL;
	}
}

static void finish_err(struct rpc_call *call, const struct err *err)
{
	rpc_call_finish(call, api_status_code(err), err->msg);
}

static void send_packed(struct rpc_call *call, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	protobuf_c_message_pack(m, buf);
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	if (rpc_call_send(call, &iov, 1) < 0)
		rpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED,
				"response exceeds the message size limit");
	else
		rpc_call_finish(call, GRPC_OK, NULL);
}

/* Decodes a JobIdentifier and finds the caller's job; answers the call
 * itself on failure. */
static struct job *find_job(struct rpc_call *call, struct job_table *jobs, const uint8_t *req,
			    size_t len)
{
	Rund__JobIdentifier *m = rund__job_identifier__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed JobIdentifier message");
		return NULL;
	}
	struct err err = {0};
	struct job *j = NULL;
	rpc_call_set_job(call, m->ulid);
	if (job_find(jobs, m->ulid, strlen(m->ulid), rpc_call_peer(call), &j, &err) < 0)
		finish_err(call, &err);
	rund__job_identifier__free_unpacked(m, NULL);
	return j;
}

/* --- Status and Stop ---------------------------------------------------- */

static void to_duration(Google__Protobuf__Duration *d, uint64_t usec)
{
	d->seconds = (int64_t)(usec / 1000000);
	d->nanos = (int32_t)(usec % 1000000) * 1000;
}

static void to_timestamp(Google__Protobuf__Timestamp *ts, uint64_t ns)
{
	ts->seconds = (int64_t)(ns / 1000000000);
	ts->nanos = (int32_t)(ns % 1000000000);
}

static void send_status(struct rpc_call *call, struct job *j)
{
	struct job_info in;
	job_info(j, &in);
	Rund__JobStatus st = RUND__JOB_STATUS__INIT;
	Google__Protobuf__UInt32Value code = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	Google__Protobuf__Duration user = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Duration sys = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Timestamp start = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Timestamp end = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	st.stopped = in.stopped;
	st.killed = in.killed;
	if (in.has_exit_code) {
		code.value = in.exit_code;
		st.exit_code = &code;
	}
	to_duration(&user, in.user_usec);
	to_duration(&sys, in.system_usec);
	st.user_time = &user;
	st.system_time = &sys;
	st.memory_current = in.memory_current;
	switch (in.state) {
	case JOB_RUNNING:
		st.state = RUND__JOB_STATUS__STATE__RUNNING;
		break;
	case JOB_EXITED:
		st.state = RUND__JOB_STATUS__STATE__EXITED;
		break;
	case JOB_LOST:
		st.state = RUND__JOB_STATUS__STATE__LOST;
		break;
	}
	st.signal = (uint32_t)in.signal;
	st.oom_killed = in.oom_killed;
	st.memory_peak = in.memory_peak;
	if (in.start_ns) {
		to_timestamp(&start, in.start_ns);
		st.start_time = &start;
	}
	if (in.end_ns) {
		to_timestamp(&end, in.end_ns);
		st.end_time = &end;
	}
	st.n_command = in.argc;
	st.command = (char **)in.argv;
	st.log_bytes = in.log_bytes;
	st.log_truncated = in.log_truncated;
	st.uid = in.uid;
	send_packed(call, &st.base);
}

static void on_status(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct job *j = find_job(call, svc, req, len);
	if (j)
		send_status(call, j);
}

struct stop_ctx {
	struct rpc_call *call;
	struct job_waiter *waiter;
};

static void stop_done(void *ctx, struct job *j)
{
	struct stop_ctx *c = ctx;
	send_status(c->call, j);
	free(c);
}

static void stop_cancel(void *ctx)
{
	struct stop_ctx *c = ctx;
	job_waiter_cancel(c->waiter);
	free(c);
}

static void on_stop(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct job *j = find_job(call, svc, req, len);
	if (!j)
		return;
	struct stop_ctx *c = xcalloc(1, sizeof *c);
	c->call = call;
	struct err err = {0};
	if (job_stop(j, stop_done, c, &c->waiter, &err) < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, NULL, stop_cancel);
}

/* --- Start -------------------------------------------------------------- */

/* Every row of job_limit_defs is the JobStartRequest field of its name, a
 * UInt32Value or UInt64Value wrapper: the descriptor finds it, so a new
 * limit needs no code here. An absent wrapper is no limit. */
static void limits_from_request(const Rund__JobStartRequest *m, struct job_limits *lim)
{
	for (int l = 0; l < LIMIT_COUNT; l++) {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
			&rund__job_start_request__descriptor, job_limit_defs[l].name);
		if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue; /* not on the wire: runc refuses such a row too */
		const ProtobufCMessage *w =
			*(const ProtobufCMessage *const *)((const char *)m + f->offset);
		if (!w)
			continue;
		const ProtobufCFieldDescriptor *vf =
			protobuf_c_message_descriptor_get_field_by_name(w->descriptor, "value");
		if (!vf ||
		    (vf->type != PROTOBUF_C_TYPE_UINT32 && vf->type != PROTOBUF_C_TYPE_UINT64))
			continue;
		const char *v = (const char *)w + vf->offset;
		lim->has[l] = true;
		if (vf->type == PROTOBUF_C_TYPE_UINT32)
			lim->value[l] = *(const uint32_t *)v;
		else
			lim->value[l] = *(const uint64_t *)v;
	}
}

struct start_ctx {
	struct rpc_call *call;
	struct job_pending *pending;
};

static void start_done(void *ctx, const char *id, const struct err *err)
{
	struct start_ctx *c = ctx;
	if (err) {
		finish_err(c->call, err);
	} else {
		Rund__JobIdentifier m = RUND__JOB_IDENTIFIER__INIT;
		m.ulid = (char *)id;
		rpc_call_set_job(c->call, id);
		send_packed(c->call, &m.base);
	}
	free(c);
}

static void start_cancel(void *ctx)
{
	struct start_ctx *c = ctx;
	job_pending_detach(c->pending);
	free(c);
}

/* Reads a protobuf varint at p[*off..len). false when it runs off the end. */
static bool wire_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *off < len; shift += 7) {
		uint8_t b = p[(*off)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* protobuf-c hands strings over NUL-terminated, so "ec\0ho" would reach
 * the job as "ec". Scans a JobStartRequest's wire bytes for a name (field
 * 1) or args (field 2) value holding a NUL: returns 0 for name, i + 1 for
 * args[i], -1 when there is none. */
static long start_request_nul(const uint8_t *p, size_t len)
{
	size_t off = 0, n_args = 0;
	while (off < len) {
		uint64_t key, v;
		if (!wire_varint(p, len, &off, &key))
			return -1;
		switch (key & 7) {
		case 0:
			if (!wire_varint(p, len, &off, &v))
				return -1;
			break;
		case 1:
			off += 8;
			break;
		case 5:
			off += 4;
			break;
		case 2:
			if (!wire_varint(p, len, &off, &v) || v > len - off)
				return -1;
			if ((key >> 3 == 1 || key >> 3 == 2) && memchr(p + off, 0, (size_t)v))
				return key >> 3 == 1 ? 0 : (long)n_args + 1;
			if (key >> 3 == 2)
				n_args++;
			off += (size_t)v;
			break;
		default:
			return -1; /* groups: unpack refused them already */
		}
	}
	return -1;
}

static void on_start(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	Rund__JobStartRequest *m = rund__job_start_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed JobStartRequest message");
		return;
	}
	long nul = start_request_nul(req, len);
	if (nul >= 0) {
		char msg[96];
		if (nul == 0)
			snprintf(msg, sizeof msg, "name contains a NUL byte");
		else
			snprintf(msg, sizeof msg, "args[%ld] contains a NUL byte", nul - 1);
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, msg);
		rund__job_start_request__free_unpacked(m, NULL);
		return;
	}
	/* protobuf-c does not check proto3's UTF-8 rule; a job whose command
	 * could not be echoed back in a JobStatus must not exist. */
	for (size_t i = 0; i <= m->n_args; i++) {
		const char *a = i == 0 ? m->name : m->args[i - 1];
		if (!utf8_valid(a, strlen(a))) {
			char msg[96];
			if (i == 0)
				snprintf(msg, sizeof msg, "name is not valid UTF-8");
			else
				snprintf(msg, sizeof msg, "args[%zu] is not valid UTF-8", i - 1);
			rpc_call_finish(call, GRPC_INVALID_ARGUMENT, msg);
			rund__job_start_request__free_unpacked(m, NULL);
			return;
		}
	}
	_cleanup_free_ char **argv = xcalloc(m->n_args + 2, sizeof *argv);
	argv[0] = m->name;
	for (size_t i = 0; i < m->n_args; i++)
		argv[i + 1] = m->args[i];
	struct job_request jr = {.argv = argv, .argc = m->n_args + 1, .owner = rpc_call_peer(call)};
	limits_from_request(m, &jr.limits);
	struct start_ctx *c = xcalloc(1, sizeof *c);
	c->call = call;
	struct err err = {0};
	int r = job_start(svc, &jr, start_done, c, &c->pending, &err);
	rund__job_start_request__free_unpacked(m, NULL);
	if (r < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, NULL, start_cancel);
}

/* --- Log ---------------------------------------------------------------- */

struct log_ctx {
	struct rpc_call *call;
	struct job_follower *follower;
};

static void log_notify(void *ctx)
{
	struct log_ctx *c = ctx;
	rpc_call_resume(c->call);
}

static void log_free(struct log_ctx *c)
{
	job_follow_close(c->follower);
	free(c);
}

/* Sends a chunk by copying it (JobLog field 3, truncated_at, is a varint). */
static int send_chunk(struct rpc_call *call, const struct logchunk *ch)
{
	uint8_t hdr[16];
	struct iovec iov[2];
	if (ch->stream == LOG_TRUNCATED) {
		iov[0] = (struct iovec){hdr, joblog_truncated(hdr, ch->truncated_at)};
		return rpc_call_send(call, iov, 1);
	}
	iov[0] = (struct iovec){hdr, joblog_header(hdr, ch->stream, ch->len)};
	iov[1] = (struct iovec){(void *)ch->data, ch->len};
	return rpc_call_send(call, iov, 2);
}

/* JobLog header room in front of the payload: tag + varint(LOG_CHUNK). */
#define LOG_HDR_ROOM 4
_Static_assert(LOG_CHUNK < (1u << 21), "the length varint must fit in LOG_HDR_ROOM - 1 bytes");

/* Reads output straight into the transport's buffer, then writes the
 * JobLog header just in front of it: the bytes cross user space once, in
 * OpenSSL. */
static int log_read_one(struct log_ctx *c, struct rpc_call *call, size_t *sent, struct err *err)
{
	struct logchunk ch;
	uint8_t *room = rpc_call_reserve(call, LOG_HDR_ROOM + LOG_CHUNK);
	int r = room ? job_follow_read(c->follower, room + LOG_HDR_ROOM, LOG_CHUNK, &ch, err)
		     : job_follow_next(c->follower, LOG_CHUNK, &ch, err);
	if (r != 1)
		return r;
	*sent += ch.len + 16;
	if (!room || ch.stream == LOG_TRUNCATED) {
		/* A message limit below LOG_CHUNK: copy (as rpc_call_send
		 * refuses what does not fit, like any other handler). */
		if (ch.len > 0 || ch.stream == LOG_TRUNCATED)
			send_chunk(call, &ch);
		return 1;
	}
	uint8_t hdr[16];
	size_t n = joblog_header(hdr, ch.stream, ch.len);
	size_t off = LOG_HDR_ROOM - n;
	memcpy(room + off, hdr, n);
	rpc_call_commit(call, off, n + ch.len);
	return 1;
}

static void log_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	struct log_ctx *c = ctx;
	size_t sent = 0;
	while (sent < budget) {
		struct err err = {0};
		int r = log_read_one(c, call, &sent, &err);
		if (r == 0)
			return; /* parked until log_notify */
		if (r == JOB_LOG_END || r < 0) {
			log_free(c);
			if (r < 0)
				finish_err(call, &err);
			else
				rpc_call_finish(call, GRPC_OK, NULL);
			return;
		}
	}
}

static void log_cancel(void *ctx)
{
	log_free(ctx);
}

static void on_log(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct job *j = find_job(call, svc, req, len);
	if (!j)
		return;
	struct log_ctx *c = xcalloc(1, sizeof *c);
	c->call = call;
	struct err err = {0};
	if (job_follow(j, log_notify, c, &c->follower, &err) < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, log_pull, log_cancel);
}

/* --- Health ------------------------------------------------------------- */

static void on_health_check(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	Grpc__Health__V1__HealthCheckRequest *m =
		grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT,
				"malformed HealthCheckRequest message");
		return;
	}
	bool known = m->service[0] == '\0' || strcmp(m->service, "rund.JobController") == 0;
	if (!known) {
		char msg[160];
		snprintf(msg, sizeof msg, "unknown service \"%.100s\"", m->service);
		rpc_call_finish(call, GRPC_NOT_FOUND, msg);
	} else {
		Grpc__Health__V1__HealthCheckResponse r =
			GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
		r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
		send_packed(call, &r.base);
	}
	grpc__health__v1__health_check_request__free_unpacked(m, NULL);
}

static const struct rpc_method methods[] = {
	{"/rund.JobController/Start", false, on_start},
	{"/rund.JobController/Stop", false, on_stop},
	{"/rund.JobController/Status", false, on_status},
	{"/rund.JobController/Log", true, on_log},
	{"/grpc.health.v1.Health/Check", false, on_health_check},
};

struct rpc_service api_service(struct job_table *jobs)
{
	return (struct rpc_service){methods, ARRAY_SIZE(methods), jobs};
}
