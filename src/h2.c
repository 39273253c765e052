/* h2: an HTTP/2 server session carrying gRPC calls (contract in h2.h and
 * rpc.h).
 *
 * Lifetime of a call: created when a request's HEADERS begin, freed when
 * nghttp2 closes its stream (or with the connection). Between dispatch and
 * rpc_call_finish the handler owns a reference ("handler_owns"); if the
 * stream goes away first, the handler's cancel callback is the last thing
 * it hears. Responses are either trailers-only (an error before any
 * message) or headers + a deferred data provider reading the call's queue
 * + trailers.
 *
 * Re-entrancy rule: nothing reachable from a handler or from rpc_* calls
 * runs nghttp2_session_send or _mem_recv. rpc_* functions only submit or
 * resume and ask the owner (wake) to flush from its event loop. */
#include "h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "grpc.h"
#include "util.h"

#define H2_MAX_STREAMS 100
#define H2_STREAM_WINDOW (1 << 20) /* request bytes in flight per stream */
#define H2_CONN_WINDOW (16 << 20)  /* ... and per connection */
/* Request bytes one connection may hold in unfinished requests. Flow
 * control alone does not bound this (windows refill as data is consumed),
 * and 100 streams x 4 MiB per connection would let one client exhaust the
 * daemon's memory. */
#define H2_CONN_HELD_MAX (16u << 20)
#define H2_MAX_DATA_FRAME (256 * 1024) /* our DATA payload cap, if the peer allows */
#define H2_QUEUE_LOW (256 * 1024)      /* pull a streaming call below this */
#define H2_PULL_BUDGET (512 * 1024)    /* ... up to about this much queued */
#define H2_PULL_MIN (16 * 1024)	       /* budget beyond the peer's window */
#define H2_DEFAULT_HIGH_WATER (1 << 20)
#define H2_BLOCK_SIZE (1024 * 1024) /* response bytes are copied into these */
#define H2_BLOCK_MIN_MESSAGE 4096   /* smaller messages go to plain chains */
#define H2_POOL_MAX 16		    /* free blocks kept for reuse */
#define H2_SMALL_FRAME 4096	    /* DATA payloads copied, not relinked */
#define H2_PATH_MAX 1024
#define H2_ENCODING_MAX 64

/* Large response messages are copied into big reference-counted blocks
 * that are recycled through a small free list, and appended to the call's
 * queue with evbuffer_add_reference: the bytes are copied once (from the
 * handler) and then only relinked, queue -> output, until OpenSSL encrypts
 * them. Without the pool every Log message would be a fresh 128 KiB+
 * allocation, and page faults on new memory cost more than the copy. */
struct h2_block {
	struct h2_pool *pool; /* NULL: freed when released */
	struct h2_block *next_free;
	size_t refs; /* queued pieces + the call appending to it */
	size_t used, size;
	uint8_t data[];
};

struct rpc_call {
	struct h2_conn *conn;
	int32_t stream_id;
	struct rpc_call *prev, *next;

	/* Request, as parsed from headers and DATA. */
	char *path;
	char *encoding; /* grpc-encoding when not identity */
	bool method_post;
	bool content_type_ok;
	bool bad_timeout;
	bool has_timeout;
	uint64_t timeout_ns;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
	const struct rpc_method *method;
	struct grpc_decoder dec;
	uint8_t *req;
	size_t req_len;
	size_t held; /* request bytes this call holds (decoder + message) */
	unsigned n_msgs;
	bool remote_closed; /* the client's END_STREAM arrived */
	bool counted;	    /* in the quotas' calls */
	bool counted_streaming;
	struct event *body_timer; /* request_timeout_ms until END_STREAM */

	/* Response. */
	bool handler_owns;     /* dispatched and neither finished nor cancelled */
	bool finished;	       /* the final status is decided */
	bool response_started; /* HEADERS + data provider submitted */
	bool responded;	       /* the final frame is submitted */
	bool deferred;	       /* data provider parked (NGHTTP2_ERR_DEFERRED) */
	bool in_pull;
	int code;
	char *message;
	struct evbuffer *queue; /* prefixed messages not yet framed */
	struct h2_block *block; /* block being filled by rpc_call_send */
	size_t reserved;	/* room of the pending rpc_call_reserve, 0 = none */
	struct event *deadline;

	void *ctx;
	rpc_pull_fn pull;
	rpc_cancel_fn cancel;

	uint64_t start_ns; /* for the audit record */
	char job[32];
};

struct h2_conn {
	nghttp2_session *session;
	struct h2_conn_config cfg;
	struct san_set peer;
	struct rpc_call *calls;
	size_t n_calls;
	size_t held; /* sum of the calls' held request bytes */
	bool goaway;
	char *refuse; /* h2_conn_refuse's reason */
};

/* ---- response blocks ------------------------------------------------ */

/* The free list of one server's connections. Blocks outlive their call
 * (they sit in the owner's output buffer until encrypted), so each block
 * holds the pool and the pool goes away with its last block. */
struct h2_pool {
	struct h2_block *free;
	size_t n_free;
	size_t n_out; /* blocks handed out and not yet released */
	bool closed;  /* h2_pool_free was called */
};

struct h2_pool *h2_pool_new(void)
{
	return xcalloc(1, sizeof(struct h2_pool));
}

static void pool_release(struct h2_pool *p)
{
	if (!p->closed || p->n_out > 0)
		return;
	while (p->free) {
		struct h2_block *b = p->free;
		p->free = b->next_free;
		free(b);
	}
	free(p);
}

void h2_pool_free(struct h2_pool *p)
{
	if (!p)
		return;
	p->closed = true;
	pool_release(p);
}

static struct h2_block *block_get(struct h2_pool *pool, size_t need)
{
	struct h2_block *b;
	if (need <= H2_BLOCK_SIZE && pool && pool->free) {
		b = pool->free;
		pool->free = b->next_free;
		pool->n_free--;
	} else {
		size_t size = need > H2_BLOCK_SIZE ? need : H2_BLOCK_SIZE;
		b = xmalloc(sizeof *b + size);
		b->size = size;
	}
	b->pool = pool;
	if (pool)
		pool->n_out++;
	b->next_free = NULL;
	b->refs = 1;
	b->used = 0;
	return b;
}

static void block_unref(struct h2_block *b)
{
	if (!b || --b->refs > 0)
		return;
	struct h2_pool *pool = b->pool;
	if (!pool) {
		free(b);
		return;
	}
	pool->n_out--;
	if (!pool->closed && b->size == H2_BLOCK_SIZE && pool->n_free < H2_POOL_MAX) {
		b->next_free = pool->free;
		pool->free = b;
		pool->n_free++;
		return;
	}
	free(b);
	pool_release(pool);
}

static void block_piece_done(const void *data, size_t len, void *extra)
{
	block_unref(extra);
}

/* Makes the call's block hold `need` more bytes. */
static struct h2_block *call_block(struct rpc_call *call, size_t need)
{
	struct h2_block *b = call->block;
	if (!b || b->size - b->used < need) {
		block_unref(b);
		b = call->block = block_get(call->conn->cfg.pool, need);
	}
	return b;
}

/* Queues b->data[used + skip, +need) (a prefixed message) and advances. */
static void queue_block_piece(struct rpc_call *call, struct h2_block *b, size_t skip, size_t need)
{
	uint8_t *p = b->data + b->used + skip;
	b->used += skip + need;
	b->refs++;
	if (evbuffer_add_reference(call->queue, p, need, block_piece_done, b) < 0) {
		fprintf(stderr, "rund: out of memory queueing a response\n");
		exit(1);
	}
}

/* Appends prefix + iov to the queue through the call's current block. */
static void queue_in_block(struct rpc_call *call, const uint8_t prefix[GRPC_PREFIX_LEN],
			   const struct iovec *iov, int iovcnt, size_t total)
{
	size_t need = GRPC_PREFIX_LEN + total;
	struct h2_block *b = call_block(call, need);
	uint8_t *p = b->data + b->used;
	memcpy(p, prefix, GRPC_PREFIX_LEN);
	size_t off = GRPC_PREFIX_LEN;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	queue_block_piece(call, b, 0, need);
}

/* ---- calls ---------------------------------------------------------- */

static void wake(struct h2_conn *c)
{
	if (c->cfg.wake)
		c->cfg.wake(c->cfg.ctx);
}

/* Sets the request bytes `call` holds, in the conn and both quotas. */
static void call_account_set(struct rpc_call *call, size_t now)
{
	struct h2_conn *c = call->conn;
	c->held = c->held - call->held + now;
	if (c->cfg.identity)
		c->cfg.identity->held = c->cfg.identity->held - call->held + now;
	if (c->cfg.global)
		c->cfg.global->held = c->cfg.global->held - call->held + now;
	call->held = now;
}

/* Re-counts the request bytes `call` holds after its decoder or request
 * buffer changed. */
static void call_account(struct rpc_call *call)
{
	call_account_set(call, call->dec.msg_cap + call->req_len);
}

static void quota_leave(struct rpc_call *call)
{
	struct h2_quota *q[] = {call->conn->cfg.identity, call->conn->cfg.global};
	for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
		if (!q[i])
			continue;
		if (call->counted)
			q[i]->calls--;
		if (call->counted_streaming)
			q[i]->streaming--;
	}
	call->counted = call->counted_streaming = false;
}

static struct rpc_call *call_new(struct h2_conn *c, int32_t stream_id)
{
	struct rpc_call *call = xcalloc(1, sizeof *call);
	call->conn = c;
	call->stream_id = stream_id;
	call->start_ns = now_mono_ns();
	grpc_decoder_init(&call->dec, c->cfg.max_message);
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->n_calls++;
	return call;
}

/* Tells the handler (if it still holds the call) that the call is gone. */
static void call_cancel_handler(struct rpc_call *call)
{
	if (!call->handler_owns)
		return;
	call->handler_owns = false;
	if (call->cancel)
		call->cancel(call->ctx);
}

static void call_free(struct rpc_call *call)
{
	struct h2_conn *c = call->conn;
	if (c->cfg.call_done && call->path) {
		struct h2_call_record rec = {
			.method = call->path,
			.job = call->job,
			.code = call->finished ? call->code : GRPC_CANCELLED,
			.duration_ns = now_mono_ns() - call->start_ns,
			.peer = &c->peer,
		};
		c->cfg.call_done(c->cfg.ctx, &rec);
	}
	call_cancel_handler(call);
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->n_calls--;
	call_account_set(call, 0);
	quota_leave(call);
	if (call->deadline)
		event_free(call->deadline);
	if (call->body_timer)
		event_free(call->body_timer);
	if (call->queue)
		evbuffer_free(call->queue);
	block_unref(call->block);
	grpc_decoder_free(&call->dec);
	free(call->path);
	free(call->encoding);
	free(call->req);
	free(call->message);
	free(call);
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE     \
	}

static int status_headers(struct rpc_call *call, nghttp2_nv *nv, char *code_buf, size_t cap,
			  char **encoded)
{
	snprintf(code_buf, cap, "%d", call->code);
	int n = 0;
	nv[n++] = (nghttp2_nv)NV("grpc-status", code_buf);
	if (call->message && call->message[0]) {
		*encoded = grpc_message_encode(call->message);
		nv[n++] = (nghttp2_nv)NV("grpc-message", *encoded);
	}
	return n;
}

/* Submits the final frame of a call whose status is decided. */
static void call_submit_final(struct rpc_call *call)
{
	struct h2_conn *c = call->conn;
	if (call->responded)
		return;
	if (call->response_started) {
		/* The data provider sends what is queued, then the trailers. */
		if (call->deferred && !call->in_pull) {
			call->deferred = false;
			nghttp2_session_resume_data(c->session, call->stream_id);
		}
		return;
	}
	char code_buf[16];
	_cleanup_free_ char *encoded = NULL;
	nghttp2_nv nv[4] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	int n = 2 + status_headers(call, nv + 2, code_buf, sizeof code_buf, &encoded);
	call->responded = true;
	nghttp2_submit_response(c->session, call->stream_id, nv, (size_t)n, NULL);
}

/* Ends a call with a status produced by the transport itself. */
static int call_fail(struct rpc_call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int call_fail(struct rpc_call *call, int code, const char *fmt, ...)
{
	if (call->finished)
		return 1;
	va_list ap;
	va_start(ap, fmt);
	char *msg;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	call_cancel_handler(call);
	call->finished = true;
	call->code = code;
	call->message = msg;
	call_submit_final(call);
	return 1;
}

/* A plain HTTP error: the request is not gRPC at all. */
static void call_fail_http(struct rpc_call *call, const char *status)
{
	call->finished = true;
	call->responded = true;
	nghttp2_nv nv[2] = {NV(":status", status), NV("allow", "POST")};
	nghttp2_submit_response(call->conn->session, call->stream_id, nv,
				strcmp(status, "405") == 0 ? 2 : 1, NULL);
}

/* ---- response data provider ---------------------------------------- */

static void submit_trailers(struct rpc_call *call)
{
	char code_buf[16];
	_cleanup_free_ char *encoded = NULL;
	nghttp2_nv nv[2];
	int n = status_headers(call, nv, code_buf, sizeof code_buf, &encoded);
	call->responded = true;
	nghttp2_submit_trailer(call->conn->session, call->stream_id, nv, (size_t)n);
}

/* The longest prefix of q, at most len bytes, that ends on a chain
 * boundary (len itself if the first chain is longer): frames that end
 * there let send_data_cb relink chains instead of copying a split one. */
static size_t whole_pieces(struct evbuffer *q, size_t len)
{
	struct evbuffer_iovec v[64];
	int n = evbuffer_peek(q, (ev_ssize_t)len, NULL, v, ARRAY_SIZE(v));
	if (n > (int)ARRAY_SIZE(v))
		n = ARRAY_SIZE(v);
	size_t sum = 0;
	for (int i = 0; i < n && sum + v[i].iov_len <= len; i++)
		sum += v[i].iov_len;
	return sum ? sum : len;
}

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			    size_t length, uint32_t *flags, nghttp2_data_source *source,
			    void *user_data)
{
	struct rpc_call *call = source->ptr;
	size_t q = evbuffer_get_length(call->queue);

	if (!call->finished && call->pull && q < H2_QUEUE_LOW && !call->in_pull) {
		/* Pull no more than the peer's window lets us send soon: a slow
		 * reader's bytes wait in its job's log, not in our memory. */
		size_t budget = H2_PULL_BUDGET - q;
		int32_t window = nghttp2_session_get_stream_remote_window_size(session, stream_id);
		if (window >= 0 && (size_t)window + H2_PULL_MIN < budget)
			budget = (size_t)window + H2_PULL_MIN;
		call->in_pull = true;
		call->pull(call, call->ctx, budget);
		call->in_pull = false;
		q = evbuffer_get_length(call->queue);
	}
	if (q > 0) {
		size_t n = q < length ? q : length;
		if (n < q)
			n = whole_pieces(call->queue, n);
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
		if (n == q && call->finished) {
			*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
			submit_trailers(call);
		}
		return (ssize_t)n;
	}
	/* Nothing queued: a parked stream must not pin a mostly empty block
	 * (thousands of idle Log followers would hold a MiB each). */
	block_unref(steal_pointer(&call->block));
	if (call->finished) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		submit_trailers(call);
		return 0;
	}
	call->deferred = true;
	return NGHTTP2_ERR_DEFERRED;
}

static void call_start_response(struct rpc_call *call)
{
	if (call->response_started)
		return;
	call->response_started = true;
	if (!call->queue)
		call->queue = evbuffer_new();
	nghttp2_nv nv[2] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read_cb};
	nghttp2_submit_response(call->conn->session, call->stream_id, nv, 2, &prd);
}

/* ---- rpc.h ---------------------------------------------------------- */

const struct san_set *rpc_call_peer(const struct rpc_call *call)
{
	return &call->conn->peer;
}

/* After queueing a message: get the response going. */
static void call_queued(struct rpc_call *call)
{
	if (!call->response_started) {
		call_start_response(call);
		wake(call->conn);
	} else if (call->deferred && !call->in_pull) {
		rpc_call_resume(call);
	}
}

int rpc_call_send(struct rpc_call *call, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	call->reserved = 0;
	if (total > call->conn->cfg.max_message || call->finished)
		return call->finished ? -ECANCELED : -EMSGSIZE;
	if (!call->queue)
		call->queue = evbuffer_new();
	uint8_t prefix[GRPC_PREFIX_LEN];
	grpc_prefix_encode(prefix, (uint32_t)total);
	if (total >= H2_BLOCK_MIN_MESSAGE) {
		queue_in_block(call, prefix, iov, iovcnt, total);
	} else {
		evbuffer_add(call->queue, prefix, sizeof prefix);
		for (int i = 0; i < iovcnt; i++)
			if (iov[i].iov_len)
				evbuffer_add(call->queue, iov[i].iov_base, iov[i].iov_len);
	}
	call_queued(call);
	return 0;
}

uint8_t *rpc_call_reserve(struct rpc_call *call, size_t max)
{
	call->reserved = 0;
	if (call->finished || max > call->conn->cfg.max_message)
		return NULL;
	if (!call->queue)
		call->queue = evbuffer_new();
	struct h2_block *b = call_block(call, GRPC_PREFIX_LEN + max);
	call->reserved = max;
	return b->data + b->used + GRPC_PREFIX_LEN;
}

int rpc_call_commit(struct rpc_call *call, size_t off, size_t len)
{
	size_t max = call->reserved;
	call->reserved = 0;
	if (call->finished || !call->block || off > max || len > max - off)
		return -EINVAL;
	struct h2_block *b = call->block;
	/* The prefix goes just in front of the message, into the skipped
	 * part of the room or the prefix space reserved before it. */
	grpc_prefix_encode(b->data + b->used + off, (uint32_t)len);
	queue_block_piece(call, b, off, GRPC_PREFIX_LEN + len);
	call_queued(call);
	return 0;
}

void rpc_call_finish(struct rpc_call *call, int code, const char *message)
{
	if (!call->handler_owns)
		return; /* already ended by the transport; the handler raced it */
	call->handler_owns = false;
	call->finished = true;
	call->code = code;
	call->message = message ? xstrdup(message) : NULL;
	call_submit_final(call);
	if (!call->in_pull)
		wake(call->conn);
}

void rpc_call_set_job(struct rpc_call *call, const char *id)
{
	snprintf(call->job, sizeof call->job, "%s", id);
}

void rpc_call_set_ctx(struct rpc_call *call, void *ctx, rpc_pull_fn pull, rpc_cancel_fn cancel)
{
	call->ctx = ctx;
	call->pull = pull;
	call->cancel = cancel;
	/* A puller produces its messages from inside the data provider, so
	 * the response (headers) must be under way. */
	if (pull && !call->finished && !call->response_started) {
		call_start_response(call);
		wake(call->conn);
	}
}

void rpc_call_resume(struct rpc_call *call)
{
	if (!call->deferred || call->in_pull || call->responded)
		return;
	call->deferred = false;
	nghttp2_session_resume_data(call->conn->session, call->stream_id);
	wake(call->conn);
}

/* ---- request processing --------------------------------------------- */

static const struct rpc_method *find_method(struct h2_conn *c, const char *path)
{
	const struct rpc_service *svc = c->cfg.service;
	for (size_t i = 0; i < svc->n_methods; i++)
		if (strcmp(svc->methods[i].path, path) == 0)
			return &svc->methods[i];
	return NULL;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_call *call = arg;
	call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline of %llu ms exceeded",
		  (unsigned long long)(call->timeout_ns / 1000000));
	wake(call->conn);
}

/* The request body did not arrive in time: drop what it holds. */
static void body_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_call *call = arg;
	call_fail(call, GRPC_RESOURCE_EXHAUSTED,
		  "request not complete within the server's limit of %u ms",
		  call->conn->cfg.request_timeout_ms);
	grpc_decoder_free(&call->dec);
	grpc_decoder_init(&call->dec, call->conn->cfg.max_message);
	call_account(call);
	wake(call->conn);
}

/* Counts the call in the quotas, or refuses it naming the cap it would
 * exceed. */
static bool call_admit(struct rpc_call *call)
{
	struct h2_quota *q[] = {call->conn->cfg.identity, call->conn->cfg.global};
	bool streaming = call->method->streaming;
	for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
		if (!q[i])
			continue;
		if (q[i]->max_calls && q[i]->calls >= q[i]->max_calls) {
			call_fail(call, GRPC_RESOURCE_EXHAUSTED,
				  "%s limit of %zu concurrent calls reached", q[i]->what,
				  q[i]->max_calls);
			return false;
		}
		if (streaming && q[i]->max_streaming && q[i]->streaming >= q[i]->max_streaming) {
			call_fail(call, GRPC_RESOURCE_EXHAUSTED,
				  "%s limit of %zu concurrent streaming calls (Log) reached",
				  q[i]->what, q[i]->max_streaming);
			return false;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
		if (!q[i])
			continue;
		q[i]->calls++;
		if (streaming)
			q[i]->streaming++;
	}
	call->counted = true;
	call->counted_streaming = streaming;
	return true;
}

/* All request headers are in: decide whether this is a call we serve. */
static void on_request_headers(struct rpc_call *call)
{
	struct h2_conn *c = call->conn;
	if (!call->method_post) {
		call_fail_http(call, "405");
		return;
	}
	if (!call->content_type_ok) {
		call_fail_http(call, "415");
		return;
	}
	call->method = call->path ? find_method(c, call->path) : NULL;
	if (!call->method) {
		call_fail(call, GRPC_UNIMPLEMENTED, "unknown method %s",
			  call->path ? call->path : "(none)");
		return;
	}
	if (call->bad_timeout) {
		call_fail(call, GRPC_INTERNAL, "malformed grpc-timeout header");
		return;
	}
	if (c->refuse) {
		call_fail(call, GRPC_RESOURCE_EXHAUSTED, "%s", c->refuse);
		h2_conn_goaway(c);
		return;
	}
	if (!call_admit(call))
		return;
	if (c->cfg.request_timeout_ms && !call->remote_closed) {
		unsigned ms = c->cfg.request_timeout_ms;
		struct timeval tv = {.tv_sec = ms / 1000,
				     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
		call->body_timer = event_new(c->cfg.base, -1, 0, body_timeout_cb, call);
		event_add(call->body_timer, &tv);
	}
	if (call->has_timeout && call->timeout_ns == 0) {
		/* Zero is no special case: that deadline has passed, as 1n's
		 * has by the time the request is read. */
		call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline of 0 ns exceeded");
		return;
	}
	/* Beyond ~68 years a timer is pointless: treat as no deadline. */
	if (call->has_timeout && call->timeout_ns / 1000000000ull < INT32_MAX) {
		call->deadline_ns = now_mono_ns() + call->timeout_ns;
		struct timeval tv = {
			.tv_sec = (time_t)(call->timeout_ns / 1000000000ull),
			.tv_usec = (suseconds_t)(call->timeout_ns % 1000000000ull / 1000),
		};
		call->deadline = event_new(c->cfg.base, -1, 0, deadline_cb, call);
		event_add(call->deadline, &tv);
	}
}

static int on_message(void *ctx, const uint8_t *msg, size_t len, bool compressed)
{
	struct rpc_call *call = ctx;
	if (compressed) {
		if (call->encoding)
			return call_fail(call, GRPC_UNIMPLEMENTED,
					 "grpc-encoding %s is not supported (only identity)",
					 call->encoding);
		return call_fail(call, GRPC_INTERNAL,
				 "compressed message without a grpc-encoding header");
	}
	if (++call->n_msgs > 1)
		return call_fail(call, GRPC_UNIMPLEMENTED,
				 "%s expects exactly one request message, got more",
				 call->method->path);
	call->req = xmalloc(len);
	memcpy(call->req, msg, len);
	call->req_len = len;
	return 0;
}

/* The client half-closed: dispatch the request to its handler. */
static void on_request_end(struct rpc_call *call)
{
	call->remote_closed = true;
	if (call->body_timer)
		event_del(call->body_timer);
	if (call->finished)
		return;
	if (!grpc_decoder_idle(&call->dec)) {
		call_fail(call, GRPC_INTERNAL, "request ended inside a message (%zu of %zu bytes)",
			  call->dec.msg_have, call->dec.msg_len);
		return;
	}
	if (call->n_msgs == 0) {
		call_fail(call, GRPC_UNIMPLEMENTED, "%s expects exactly one request message, got 0",
			  call->method->path);
		return;
	}
	/* A deadline that passed while the request arrived: the handler must
	 * not start work (a job) nobody will hear of. */
	if (call->deadline_ns && now_mono_ns() >= call->deadline_ns) {
		call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline of %llu ms exceeded",
			  (unsigned long long)(call->timeout_ns / 1000000));
		return;
	}
	_cleanup_free_ uint8_t *req = steal_pointer(&call->req);
	call->handler_owns = true;
	call->method->handler(call, call->conn->cfg.service->ctx, req, call->req_len);
}

/* ---- nghttp2 callbacks ---------------------------------------------- */

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *user_data)
{
	struct h2_conn *c = user_data;
	if (evbuffer_get_length(c->cfg.out) >= c->cfg.out_high_water)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(c->cfg.out, data, length) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)length;
}

/* Frames DATA straight from the call's queue into the output: the payload
 * chains move between evbuffers without being copied. */
static int send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *source, void *user_data)
{
	struct h2_conn *c = user_data;
	struct rpc_call *call = source->ptr;
	if (evbuffer_get_length(c->cfg.out) >= c->cfg.out_high_water)
		return NGHTTP2_ERR_WOULDBLOCK;
	evbuffer_add(c->cfg.out, framehd, 9);
	size_t padlen = frame->data.padlen;
	if (padlen > 0) {
		uint8_t b = (uint8_t)(padlen - 1);
		evbuffer_add(c->cfg.out, &b, 1);
	}
	if (length <= H2_SMALL_FRAME) {
		/* Copy small payloads so that headers, data and trailers of a
		 * unary answer share one chain: one TLS record, one write(2). */
		uint8_t tmp[H2_SMALL_FRAME];
		if (evbuffer_remove(call->queue, tmp, length) != (int)length)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		evbuffer_add(c->cfg.out, tmp, length);
	} else if (evbuffer_remove_buffer(call->queue, c->cfg.out, length) != (int)length) {
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (padlen > 1) {
		static const uint8_t zeros[256];
		evbuffer_add(c->cfg.out, zeros, padlen - 1);
	}
	return 0;
}

static ssize_t read_length_cb(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
			      int32_t session_window, int32_t stream_window, uint32_t max_frame,
			      void *user_data)
{
	ssize_t n = H2_MAX_DATA_FRAME;
	if (session_window < n)
		n = session_window;
	if (stream_window < n)
		n = stream_window;
	if ((ssize_t)max_frame < n)
		n = (ssize_t)max_frame;
	return n > 0 ? n : 1;
}

static struct rpc_call *stream_call(nghttp2_session *session, int32_t stream_id)
{
	return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame,
			       void *user_data)
{
	struct h2_conn *c = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct rpc_call *call = call_new(c, frame->hd.stream_id);
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
	return 0;
}

static bool header_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
			size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user_data)
{
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct rpc_call *call = stream_call(session, frame->hd.stream_id);
	if (!call)
		return 0;
	const char *v = (const char *)value;
	if (header_is(name, namelen, ":method")) {
		call->method_post = valuelen == 4 && memcmp(v, "POST", 4) == 0;
	} else if (header_is(name, namelen, ":path")) {
		free(call->path);
		call->path = xstrndup(v, valuelen < H2_PATH_MAX ? valuelen : H2_PATH_MAX);
	} else if (header_is(name, namelen, "content-type")) {
		call->content_type_ok = grpc_content_type_ok(v, valuelen);
	} else if (header_is(name, namelen, "grpc-timeout")) {
		call->has_timeout = true;
		call->bad_timeout = grpc_timeout_parse(v, valuelen, &call->timeout_ns) < 0;
	} else if (header_is(name, namelen, "grpc-encoding")) {
		free(call->encoding);
		call->encoding = NULL;
		if (!(valuelen == 8 && memcmp(v, "identity", 8) == 0))
			call->encoding = xstrndup(v, valuelen < H2_ENCODING_MAX ? valuelen
										: H2_ENCODING_MAX);
	}
	return 0;
}

static int on_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	struct rpc_call *call = stream_call(session, frame->hd.stream_id);
	if (!call)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		on_request_headers(call);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		on_request_end(call);
	return 0;
}

/* The first cap the held request bytes exceed, or NULL. */
static const struct h2_quota *held_over(struct h2_conn *c)
{
	if (c->cfg.identity && c->cfg.identity->max_held &&
	    c->cfg.identity->held > c->cfg.identity->max_held)
		return c->cfg.identity;
	if (c->cfg.global && c->cfg.global->max_held &&
	    c->cfg.global->held > c->cfg.global->max_held)
		return c->cfg.global;
	return NULL;
}

static int on_data_chunk_recv_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
				 const uint8_t *data, size_t len, void *user_data)
{
	struct rpc_call *call = stream_call(session, stream_id);
	if (!call || call->finished)
		return 0;
	int r = grpc_decoder_feed(&call->dec, data, len, on_message, call);
	call_account(call);
	if (r == -EMSGSIZE)
		call_fail(call, GRPC_RESOURCE_EXHAUSTED,
			  "request message of %zu bytes exceeds the limit of %zu bytes",
			  call->dec.msg_len, call->dec.max_message);
	else if (r == -EPROTO)
		call_fail(call, GRPC_INTERNAL, "invalid message flag byte 0x%02x",
			  call->dec.prefix[0]);
	else if (r == 0 && call->conn->held > H2_CONN_HELD_MAX)
		call_fail(call, GRPC_RESOURCE_EXHAUSTED,
			  "this connection holds more than %u bytes of unfinished requests",
			  H2_CONN_HELD_MAX);
	else if (r == 0 && held_over(call->conn))
		call_fail(call, GRPC_RESOURCE_EXHAUSTED,
			  "%s limit of %zu bytes held in unfinished requests reached",
			  held_over(call->conn)->what, held_over(call->conn)->max_held);
	if (call->finished) {
		/* Nothing more of this request will be used. */
		grpc_decoder_free(&call->dec);
		grpc_decoder_init(&call->dec, call->conn->cfg.max_message);
		call_account(call);
	}
	return 0;
}

static int on_frame_send_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	struct rpc_call *call = stream_call(session, frame->hd.stream_id);
	/* We answered before the client finished its request: tell it to
	 * stop sending (RFC 9113 §8.1) so the stream can close. */
	if (call && !call->remote_closed)
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
					  NGHTTP2_NO_ERROR);
	return 0;
}

static int on_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			      void *user_data)
{
	struct rpc_call *call = stream_call(session, stream_id);
	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	call_free(call);
	return 0;
}

/* ---- connection ----------------------------------------------------- */

static nghttp2_session_callbacks *callbacks(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		fprintf(stderr, "rund: out of memory creating nghttp2 callbacks\n");
		exit(1);
	}
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, read_length_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close_cb);
	return cb;
}

struct h2_conn *h2_conn_new(const struct h2_conn_config *cfg, struct san_set *peer)
{
	struct h2_conn *c = xcalloc(1, sizeof *c);
	c->cfg = *cfg;
	if (!c->cfg.max_message)
		c->cfg.max_message = GRPC_DEFAULT_MAX_MESSAGE;
	if (!c->cfg.out_high_water)
		c->cfg.out_high_water = H2_DEFAULT_HIGH_WATER;
	if (peer) {
		c->peer = *peer;
		peer->n = 0;
		peer->names = NULL;
	}

	nghttp2_session_callbacks *cb = callbacks();
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt) != 0) {
		fprintf(stderr, "rund: out of memory creating nghttp2 options\n");
		exit(1);
	}
	/* A client that never reads cannot make us queue control frames
	 * without bound (PING/SETTINGS acks): nghttp2 drops it. */
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	int r = nghttp2_session_server_new2(&c->session, cb, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (r != 0) {
		fprintf(stderr, "rund: nghttp2_session_server_new: %s\n", nghttp2_strerror(r));
		exit(1);
	}

	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
	nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
	return c;
}

int h2_conn_feed(struct h2_conn *c, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = nghttp2_session_mem_recv(c->session, data, len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int h2_conn_flush(struct h2_conn *c)
{
	int r = nghttp2_session_send(c->session);
	return r < 0 ? r : 0;
}

bool h2_conn_want_write(const struct h2_conn *c)
{
	return nghttp2_session_want_write(c->session);
}

bool h2_conn_want_read(const struct h2_conn *c)
{
	return nghttp2_session_want_read(c->session);
}

void h2_conn_goaway(struct h2_conn *c)
{
	if (c->goaway)
		return;
	c->goaway = true;
	nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
			      NULL, 0);
}

void h2_conn_refuse(struct h2_conn *c, const char *why)
{
	free(c->refuse);
	c->refuse = xstrdup(why);
}

void h2_conn_ping(struct h2_conn *c)
{
	nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
}

size_t h2_conn_active_calls(const struct h2_conn *c)
{
	return c->n_calls;
}

void h2_conn_free(struct h2_conn *c)
{
	if (!c)
		return;
	while (c->calls)
		call_free(c->calls);
	nghttp2_session_del(c->session);
	san_set_free(&c->peer);
	free(c->refuse);
	free(c);
}
