/* api: request decoding, authorization context, and response encoding for
 * every method. Handlers never block: Start and Stop answer from job
 * callbacks, Log from the transport's pull callback. */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "grpc.h"
#include "joblog.h"
#include "health.pb-c.h"
#include "rund.pb-c.h"
#include "util.h"

/* One JobLog message carries at most this much output: large enough for
 * throughput, small enough to keep per-stream buffering modest. */
#define LOG_CHUNK (64u * 1024)

/* Calls that stay open until something happens, answered early when the
 * server drains. */
struct parked {
	struct rpc_call *call;
	struct job_waiter *waiter; /* Wait; NULL for Health/Watch */
	struct api *api;
	LIST_ENTRY(parked) link;
};

struct api {
	struct job_table *jobs;
	bool draining;
	LIST_HEAD(, parked) waits, watches;
	LIST_HEAD(, log_ctx) logs; /* open Log and ReadLog streams */
};

struct api *api_new(struct job_table *jobs)
{
	struct api *a = xcalloc(1, sizeof *a);
	a->jobs = jobs;
	LIST_INIT(&a->waits);
	LIST_INIT(&a->watches);
	LIST_INIT(&a->logs);
	return a;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	/* The server is gone: its calls were cancelled, which freed them. */
	free(a);
}

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

static bool wire_field_has_nul(const uint8_t *p, size_t len, unsigned field);

/* Finds the caller's job named by id, field 1 of the request message req;
 * answers the call itself on failure. */
static struct job *find_id(struct rpc_call *call, struct api *a, const char *id, const uint8_t *req,
			   size_t len)
{
	struct err err = {0};
	struct job *j = NULL;
	rpc_call_set_job(call, id);
	/* protobuf-c's string ends at a NUL: "<id>\0junk" must not name the
	 * job <id>. */
	if (wire_field_has_nul(req, len, 1)) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT,
				"malformed job id: it contains a NUL byte");
		return NULL;
	}
	if (job_find(a->jobs, id, strlen(id), rpc_call_peer(call), &j, &err) < 0)
		finish_err(call, &err);
	return j;
}

static struct job *find_job(struct rpc_call *call, struct api *a, const uint8_t *req, size_t len)
{
	Rund__JobIdentifier *m = rund__job_identifier__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed JobIdentifier message");
		return NULL;
	}
	struct job *j = find_id(call, a, m->ulid, req, len);
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

/* A JobStatus and the sub-messages it points to. */
struct status_msg {
	Rund__JobStatus st;
	Google__Protobuf__UInt32Value code;
	Google__Protobuf__Duration user, sys;
	Google__Protobuf__Timestamp start, end;
};

/* Fills m from j; valid while j is and m lives. */
static void status_fill(struct status_msg *m, struct job *j)
{
	struct job_info in;
	job_info(j, &in);
	m->st = (Rund__JobStatus)RUND__JOB_STATUS__INIT;
	m->code = (Google__Protobuf__UInt32Value)GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	m->user = m->sys = (Google__Protobuf__Duration)GOOGLE__PROTOBUF__DURATION__INIT;
	m->start = m->end = (Google__Protobuf__Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	m->st.stopped = in.stopped;
	m->st.killed = in.killed;
	if (in.has_exit_code) {
		m->code.value = in.exit_code;
		m->st.exit_code = &m->code;
	}
	to_duration(&m->user, in.user_usec);
	to_duration(&m->sys, in.system_usec);
	m->st.user_time = &m->user;
	m->st.system_time = &m->sys;
	m->st.memory_current = in.memory_current;
	switch (in.state) {
	case JOB_RUNNING:
		m->st.state = RUND__JOB_STATUS__STATE__RUNNING;
		break;
	case JOB_EXITED:
		m->st.state = RUND__JOB_STATUS__STATE__EXITED;
		break;
	case JOB_LOST:
		m->st.state = RUND__JOB_STATUS__STATE__LOST;
		break;
	}
	m->st.signal = (uint32_t)in.signal;
	m->st.oom_killed = in.oom_killed;
	m->st.memory_peak = in.memory_peak;
	if (in.start_ns) {
		to_timestamp(&m->start, in.start_ns);
		m->st.start_time = &m->start;
	}
	if (in.end_ns) {
		to_timestamp(&m->end, in.end_ns);
		m->st.end_time = &m->end;
	}
	m->st.n_command = in.argc;
	m->st.command = (char **)in.argv;
	m->st.log_bytes = in.log_bytes;
	m->st.log_truncated = in.log_truncated;
	m->st.log_end = in.log_end;
	m->st.log_lost = in.log_lost;
	m->st.log_first = in.log_first;
	m->st.uid = in.uid;
	m->st.timed_out = in.timed_out;
}

static void send_status(struct rpc_call *call, struct job *j)
{
	struct status_msg m;
	status_fill(&m, j);
	send_packed(call, &m.st.base);
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
	if (job_stop(j, NULL, stop_done, c, &c->waiter, &err) < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, NULL, stop_cancel);
}

/* Duration -> ns: false (with why) for negative, malformed or too large. */
static bool duration_ns(const Google__Protobuf__Duration *d, uint64_t max_ns, uint64_t *ns)
{
	if (!d) {
		*ns = 0;
		return true;
	}
	if (d->seconds < 0 || d->nanos < 0 || d->nanos > 999999999 ||
	    (uint64_t)d->seconds > max_ns / 1000000000)
		return false;
	*ns = (uint64_t)d->seconds * 1000000000 + (uint64_t)d->nanos;
	return *ns <= max_ns;
}

static void on_terminate(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	Rund__JobTerminateRequest *m = rund__job_terminate_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT,
				"malformed JobTerminateRequest message");
		return;
	}
	struct jobstop how = {.signal = (int)m->signal,
			      .to_group = m->to == RUND__JOB_TERMINATE_REQUEST__TARGET__GROUP};
	char msg[96] = "";
	if (m->signal >= 65)
		snprintf(msg, sizeof msg, "signal %u is not a signal (1 ... 64)", m->signal);
	else if (m->signal == SIGSTOP)
		/* It cannot be caught, so a confined job's init could not
		 * forward it: it would stop the init itself. */
		snprintf(msg, sizeof msg, "signal %u (SIGSTOP) cannot end a job", m->signal);
	else if (m->to != RUND__JOB_TERMINATE_REQUEST__TARGET__MAIN && !how.to_group)
		snprintf(msg, sizeof msg, "to %d is neither MAIN nor GROUP", (int)m->to);
	else if (!duration_ns(m->grace, JOBSPEC_GRACE_MAX_NS, &how.grace_ns))
		snprintf(msg, sizeof msg, "grace must be between 0 and 1h");
	struct job *j = msg[0] ? NULL : find_id(call, svc, m->ulid, req, len);
	rund__job_terminate_request__free_unpacked(m, NULL);
	if (msg[0]) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, msg);
		return;
	}
	if (!j)
		return;
	struct stop_ctx *c = xcalloc(1, sizeof *c);
	c->call = call;
	struct err err = {0};
	if (job_stop(j, &how, stop_done, c, &c->waiter, &err) < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, NULL, stop_cancel);
}

/* --- Wait and Health/Watch: calls parked until something happens ------- */

static struct parked *park(struct rpc_call *call, struct api *a, bool wait)
{
	struct parked *p = xcalloc(1, sizeof *p);
	p->call = call;
	p->api = a;
	LIST_INSERT_HEAD(wait ? &a->waits : &a->watches, p, link);
	return p;
}

static void unpark(struct parked *p)
{
	LIST_REMOVE(p, link);
	free(p);
}

static void wait_done(void *ctx, struct job *j)
{
	struct parked *p = ctx;
	send_status(p->call, j);
	unpark(p);
}

static void parked_cancel(void *ctx)
{
	struct parked *p = ctx;
	if (p->waiter)
		job_waiter_cancel(p->waiter);
	unpark(p);
}

static void on_wait(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct api *a = svc;
	struct job *j = find_job(call, a, req, len);
	if (!j)
		return;
	if (a->draining) {
		rpc_call_finish(call, GRPC_UNAVAILABLE,
				"the server is restarting: call Wait again");
		return;
	}
	struct parked *p = park(call, a, true);
	job_wait(j, wait_done, p, &p->waiter);
	rpc_call_set_ctx(call, p, NULL, parked_cancel);
}

static void send_health(struct rpc_call *call, int status)
{
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	r.status = status;
	uint8_t buf[16];
	size_t n = grpc__health__v1__health_check_response__pack(&r, buf);
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	rpc_call_send(call, &iov, 1);
}

static void log_drain(struct api *a);

static void api_drain(void *ctx)
{
	struct api *a = ctx;
	a->draining = true;
	log_drain(a);
	while (!LIST_EMPTY(&a->watches)) {
		struct parked *p = LIST_FIRST(&a->watches);
		send_health(p->call,
			    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
		rpc_call_finish(p->call, GRPC_OK, NULL);
		unpark(p);
	}
	while (!LIST_EMPTY(&a->waits)) {
		struct parked *p = LIST_FIRST(&a->waits);
		job_waiter_cancel(p->waiter);
		rpc_call_finish(p->call, GRPC_UNAVAILABLE,
				"the server is restarting: call Wait again");
		unpark(p);
	}
}

/* --- List --------------------------------------------------------------- */

struct list_ctx {
	struct job **jobs;
	size_t n, next;
};

static void list_free(struct list_ctx *c)
{
	for (size_t i = c->next; i < c->n; i++)
		job_unref(c->jobs[i]);
	free(c->jobs);
	free(c);
}

static void list_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	struct list_ctx *c = ctx;
	size_t sent = 0;
	while (sent < budget && c->next < c->n) {
		struct job *j = c->jobs[c->next++];
		struct status_msg m;
		status_fill(&m, j);
		Rund__JobListEntry e = RUND__JOB_LIST_ENTRY__INIT;
		e.ulid = (char *)job_id(j);
		e.status = &m.st;
		size_t n = rund__job_list_entry__get_packed_size(&e);
		uint8_t *room = rpc_call_reserve(call, n);
		if (room) {
			rund__job_list_entry__pack(&e, room);
			rpc_call_commit(call, 0, n);
		}
		job_unref(j);
		sent += n + 5;
	}
	if (c->next == c->n) {
		list_free(c);
		rpc_call_finish(call, GRPC_OK, NULL);
	}
}

static void list_cancel(void *ctx)
{
	list_free(ctx);
}

static void on_list(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct api *a = svc;
	Rund__JobListRequest *m = rund__job_list_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed JobListRequest message");
		return;
	}
	int state = (int)m->state;
	size_t limit = m->limit;
	rund__job_list_request__free_unpacked(m, NULL);
	if (state < 0 || state > RUND__JOB_STATUS__STATE__LOST) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "unknown state");
		return;
	}
	struct list_ctx *c = xcalloc(1, sizeof *c);
	c->n = job_list(a->jobs, rpc_call_peer(call), (enum job_state)state, limit, &c->jobs);
	rpc_call_set_ctx(call, c, list_pull, list_cancel);
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

/* The string fields of JobStartRequest that reach the job. */
enum {
	FIELD_NAME = 1,
	FIELD_ARGS = 2,
	FIELD_ENV = 10,
	FIELD_CWD = 11,
};

struct nul_hit {
	unsigned field; /* FIELD_*, 0: none */
	size_t index;	/* for the repeated ones */
};

/* Calls fn for each length-delimited field of the message in p[0..len)
 * until fn returns true; true if one did. Stops quietly at anything
 * malformed (unpack has refused such input already). */
static bool wire_each_bytes(const uint8_t *p, size_t len,
			    bool (*fn)(void *ctx, unsigned field, const uint8_t *v, size_t n),
			    void *ctx)
{
	size_t off = 0;
	while (off < len) {
		uint64_t key, v;
		if (!wire_varint(p, len, &off, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!wire_varint(p, len, &off, &v))
				return false;
			break;
		case 1:
			off += 8;
			break;
		case 5:
			off += 4;
			break;
		case 2:
			if (!wire_varint(p, len, &off, &v) || v > len - off)
				return false;
			if (fn(ctx, (unsigned)(key >> 3), p + off, (size_t)v))
				return true;
			off += (size_t)v;
			break;
		default:
			return false; /* groups */
		}
	}
	return false;
}

struct nul_scan {
	unsigned want; /* one field, or 0: the JobStartRequest strings */
	size_t n_args, n_env;
	struct nul_hit hit;
};

static bool nul_in_field(void *ctx, unsigned f, const uint8_t *v, size_t n)
{
	struct nul_scan *s = ctx;
	if (s->want)
		return f == s->want && memchr(v, 0, n);
	size_t *count = f == FIELD_ARGS ? &s->n_args : f == FIELD_ENV ? &s->n_env : NULL;
	bool str = f == FIELD_NAME || f == FIELD_CWD || count;
	if (str && memchr(v, 0, n)) {
		s->hit = (struct nul_hit){f, count ? *count : 0};
		return true;
	}
	if (count)
		(*count)++;
	return false;
}

/* protobuf-c hands strings over NUL-terminated, so "ec\0ho" would reach
 * the job as "ec". Scans a JobStartRequest's wire bytes for a name, args,
 * env or cwd value holding a NUL: the first one found, field 0 if none. */
static struct nul_hit start_request_nul(const uint8_t *p, size_t len)
{
	struct nul_scan s = {0};
	wire_each_bytes(p, len, nul_in_field, &s);
	return s.hit;
}

/* True when a length-delimited occurrence of field holds a NUL byte. */
static bool wire_field_has_nul(const uint8_t *p, size_t len, unsigned field)
{
	struct nul_scan s = {.want = field};
	return wire_each_bytes(p, len, nul_in_field, &s);
}

/* "name", "args[3]", "env[0]", "cwd" */
static void field_name(unsigned f, size_t i, char *buf, size_t cap)
{
	if (f == FIELD_ARGS || f == FIELD_ENV)
		snprintf(buf, cap, "%s[%zu]", f == FIELD_ARGS ? "args" : "env", i);
	else
		snprintf(buf, cap, "%s", f == FIELD_NAME ? "name" : "cwd");
}

static void on_start(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	Rund__JobStartRequest *m = rund__job_start_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed JobStartRequest message");
		return;
	}
	struct nul_hit nul = start_request_nul(req, len);
	char what[32], msg[160];
	if (nul.field) {
		field_name(nul.field, nul.index, what, sizeof what);
		snprintf(msg, sizeof msg, "%s contains a NUL byte", what);
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, msg);
		rund__job_start_request__free_unpacked(m, NULL);
		return;
	}
	/* protobuf-c does not check proto3's UTF-8 rule; a job whose command
	 * could not be echoed back in a JobStatus must not exist. */
	size_t n_str = 2 + m->n_args + m->n_env;
	for (size_t i = 0; i < n_str; i++) {
		unsigned f = i == 0		 ? FIELD_NAME
			     : i == 1		 ? FIELD_CWD
			     : i < 2 + m->n_args ? FIELD_ARGS
						 : FIELD_ENV;
		size_t k = f == FIELD_ARGS ? i - 2 : i - 2 - m->n_args;
		const char *a = f == FIELD_NAME	  ? m->name
				: f == FIELD_CWD  ? m->cwd
				: f == FIELD_ARGS ? m->args[k]
						  : m->env[k];
		if (!utf8_valid(a, strlen(a))) {
			field_name(f, k, what, sizeof what);
			snprintf(msg, sizeof msg, "%s is not valid UTF-8", what);
			rpc_call_finish(call, GRPC_INVALID_ARGUMENT, msg);
			rund__job_start_request__free_unpacked(m, NULL);
			return;
		}
	}
	uint64_t run_ns, grace_ns;
	bool run_ok = duration_ns(m->max_run_time, JOBSPEC_RUN_TIME_MAX_NS, &run_ns);
	if (!run_ok || !duration_ns(m->run_time_grace, JOBSPEC_GRACE_MAX_NS, &grace_ns)) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT,
				run_ok ? "run_time_grace must be between 0 and 1h"
				       : "max_run_time must be between 0 and 100 years");
		rund__job_start_request__free_unpacked(m, NULL);
		return;
	}
	_cleanup_free_ char **argv = xcalloc(m->n_args + 2, sizeof *argv);
	argv[0] = m->name;
	for (size_t i = 0; i < m->n_args; i++)
		argv[i + 1] = m->args[i];
	struct job_request jr = {
		.argv = argv,
		.argc = m->n_args + 1,
		.owner = rpc_call_peer(call),
		.env = m->env,
		.n_env = m->n_env,
		.cwd = m->cwd,
		.max_run_time_ns = run_ns,
		.run_time_grace_ns = grace_ns,
	};
	limits_from_request(m, &jr.limits);
	struct start_ctx *c = xcalloc(1, sizeof *c);
	c->call = call;
	struct err err = {0};
	int r = job_start(((struct api *)svc)->jobs, &jr, start_done, c, &c->pending, &err);
	rund__job_start_request__free_unpacked(m, NULL);
	if (r < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	rpc_call_set_ctx(call, c, NULL, start_cancel);
}

/* --- Log ---------------------------------------------------------------- */

#define TAIL_LINES_MAX 1000000
#define LOG_DRAINING "the server is restarting: read again from the next offset"

struct log_ctx {
	struct rpc_call *call;
	struct job_follower *follower;
	LIST_ENTRY(log_ctx) link; /* in api.logs */
	bool no_follow;		  /* end at the current end of the output */
	bool timestamps;	  /* fill JobLog.time */
};

static void log_notify(void *ctx)
{
	struct log_ctx *c = ctx;
	rpc_call_resume(c->call);
}

static void log_free(struct log_ctx *c)
{
	LIST_REMOVE(c, link);
	job_follow_close(c->follower);
	free(c);
}

/* Sends a chunk by copying it. */
static int send_chunk(struct log_ctx *c, struct rpc_call *call, const struct logchunk *ch)
{
	uint8_t hdr[JOBLOG_HDR_MAX];
	struct iovec iov[2];
	if (ch->stream == LOG_TRUNCATED || ch->stream == LOG_GAP) {
		iov[0] = (struct iovec){hdr, joblog_notice(hdr, ch)};
		return rpc_call_send(call, iov, 1);
	}
	iov[0] = (struct iovec){hdr, joblog_header(hdr, ch->stream, ch->len, ch->off,
						   c->timestamps ? ch->time_ns : 0)};
	iov[1] = (struct iovec){(void *)ch->data, ch->len};
	return rpc_call_send(call, iov, 2);
}

/* JobLog header room in front of the payload. */
#define LOG_HDR_ROOM JOBLOG_HDR_MAX
_Static_assert(LOG_CHUNK < (1u << 21), "the length varint must fit the header room");

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
	bool notice = ch.stream == LOG_TRUNCATED || ch.stream == LOG_GAP;
	if (!room || notice) {
		/* A message limit below LOG_CHUNK: copy (as rpc_call_send
		 * refuses what does not fit, like any other handler). */
		if (ch.len > 0 || notice)
			send_chunk(c, call, &ch);
		return 1;
	}
	uint8_t hdr[JOBLOG_HDR_MAX];
	size_t n = joblog_header(hdr, ch.stream, ch.len, ch.off, c->timestamps ? ch.time_ns : 0);
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
		if (r == 0 && !c->no_follow)
			return; /* parked until log_notify */
		if (r == 0 || r == JOB_LOG_END || r < 0) {
			log_free(c);
			if (r < 0)
				finish_err(call, &err);
			else
				rpc_call_finish(call, GRPC_OK, NULL);
			return;
		}
	}
}

/* A restart: readers are told to come back (UNAVAILABLE); what was
 * queued for them is sent first, so the offset they continue at is exact. */
static void log_drain(struct api *a)
{
	while (!LIST_EMPTY(&a->logs)) {
		struct log_ctx *c = LIST_FIRST(&a->logs);
		rpc_call_finish(c->call, GRPC_UNAVAILABLE, LOG_DRAINING);
		log_free(c);
	}
}

static void log_cancel(void *ctx)
{
	log_free(ctx);
}

static void log_begin(struct rpc_call *call, struct api *a, struct job *j, uint64_t from,
		      struct log_ctx *c)
{
	c->call = call;
	struct err err = {0};
	if (a->draining) {
		free(c);
		rpc_call_finish(call, GRPC_UNAVAILABLE, LOG_DRAINING);
		return;
	}
	if (job_follow(j, from, log_notify, c, &c->follower, &err) < 0) {
		free(c);
		finish_err(call, &err);
		return;
	}
	LIST_INSERT_HEAD(&a->logs, c, link);
	rpc_call_set_ctx(call, c, log_pull, log_cancel);
}

static void on_log(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct job *j = find_job(call, svc, req, len);
	if (j)
		log_begin(call, svc, j, 0, xcalloc(1, sizeof(struct log_ctx)));
}

static void on_read_log(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	Rund__LogRequest *m = rund__log_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed LogRequest message");
		return;
	}
	struct job *j = find_id(call, svc, m->ulid, req, len);
	struct err err = {0};
	uint64_t from = m->offset;
	int r = j ? 0 : -ENOENT;
	if (j && m->tail_lines && m->offset) {
		r = err_set(&err, EINVAL, ERR_INVALID, "offset and tail_lines exclude each other");
	} else if (j && m->tail_lines && m->tail_lines->value > TAIL_LINES_MAX) {
		r = err_set(&err, EINVAL, ERR_INVALID, "tail_lines %" PRIu64 " is above %u",
			    m->tail_lines->value, TAIL_LINES_MAX);
	} else if (j && m->tail_lines) {
		r = job_log_tail(j, m->tail_lines->value, &from, &err);
	}
	struct log_ctx *c = NULL;
	if (r == 0) {
		c = xcalloc(1, sizeof *c);
		c->no_follow = m->no_follow;
		c->timestamps = m->timestamps;
	}
	rund__log_request__free_unpacked(m, NULL);
	if (r < 0) {
		if (j) /* else find_id answered */
			finish_err(call, &err);
		return;
	}
	log_begin(call, svc, j, from, c);
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

/* Watch: the current status now, then NOT_SERVING when the server drains
 * (api_drain), which ends the stream. An unknown service is reported as
 * SERVICE_UNKNOWN in the stream, as the health protocol asks. */
static void on_health_watch(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct api *a = svc;
	Grpc__Health__V1__HealthCheckRequest *m =
		grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (!m) {
		rpc_call_finish(call, GRPC_INVALID_ARGUMENT,
				"malformed HealthCheckRequest message");
		return;
	}
	bool known = m->service[0] == '\0' || strcmp(m->service, "rund.JobController") == 0;
	grpc__health__v1__health_check_request__free_unpacked(m, NULL);
	if (!known) {
		send_health(
			call,
			GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
	} else if (a->draining) {
		send_health(call,
			    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
		rpc_call_finish(call, GRPC_OK, NULL);
		return;
	} else {
		send_health(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	}
	/* Open until the server drains or the client goes away. */
	struct parked *p = park(call, a, false);
	rpc_call_set_ctx(call, p, NULL, parked_cancel);
}

static const struct rpc_method methods[] = {
	{"/rund.JobController/Start", false, on_start},
	{"/rund.JobController/Stop", false, on_stop},
	{"/rund.JobController/Status", false, on_status},
	{"/rund.JobController/Log", true, on_log},
	{"/rund.JobController/List", true, on_list},
	{"/rund.JobController/Wait", false, on_wait},
	{"/rund.JobController/Terminate", false, on_terminate},
	{"/rund.JobController/ReadLog", true, on_read_log},
	{"/grpc.health.v1.Health/Check", false, on_health_check},
	{"/grpc.health.v1.Health/Watch", true, on_health_watch},
};

struct rpc_service api_service(struct api *a)
{
	return (struct rpc_service){methods, ARRAY_SIZE(methods), a, api_drain};
}
