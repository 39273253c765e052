/* Unit tests for h2.c, driven in memory by an nghttp2 client session: no
 * sockets, no TLS. The pump moves bytes client -> h2_conn_feed and
 * h2's output evbuffer -> client until both are quiet. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "grpc.h"
#include "h2.h"

#define MAX_STREAMS 64

struct result {
	int http_status;
	int grpc_status; /* -1 until seen */
	char grpc_message[256];
	bool trailers_only;
	int header_blocks;
	size_t data_len;
	uint8_t *data;
	bool closed;
	uint32_t close_error;
};

struct tc {
	struct event_base *base;
	struct evbuffer *out;
	struct h2_conn *h2;
	nghttp2_session *client;
	struct result res[MAX_STREAMS];
	int wakes;
	bool conn_failed;
};

/* ---- server side: test methods -------------------------------------- */

static int cancels;
static struct rpc_call *deferred_call;
static size_t stream_total, stream_sent, stream_msg = 65536, max_queue_seen;

static void echo(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct iovec iov = {(void *)req, len};
	assert_int_equal(rpc_call_send(call, &iov, 1), 0);
	rpc_call_finish(call, GRPC_OK, NULL);
}

static void cancel_cb(void *ctx)
{
	cancels++;
	deferred_call = NULL;
}

/* Answers later (or never): the test finishes it or lets it time out. */
static void defer(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	deferred_call = call;
	rpc_call_set_ctx(call, NULL, NULL, cancel_cb);
}

static void fail_with_percent(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	rpc_call_finish(call, GRPC_NOT_FOUND, "no job 100% \"x\"\n");
}

static uint8_t stream_buf[65536];

static void stream_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	size_t sent = 0;
	while (sent < budget && stream_sent < stream_total) {
		size_t n = stream_total - stream_sent < stream_msg ? stream_total - stream_sent
								   : stream_msg;
		struct iovec iov = {stream_buf, n};
		assert_int_equal(rpc_call_send(call, &iov, 1), 0);
		sent += n + GRPC_PREFIX_LEN;
		stream_sent += n;
	}
	if (sent > max_queue_seen)
		max_queue_seen = sent;
	if (stream_sent == stream_total)
		rpc_call_finish(call, GRPC_OK, NULL);
}

static void stream(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	rpc_call_set_ctx(call, NULL, stream_pull, cancel_cb);
}

/* A streaming call that parks until resumed. */
static bool parked_ready;
static void parked_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	if (!parked_ready)
		return;
	struct iovec iov = {"late", 4};
	rpc_call_send(call, &iov, 1);
	rpc_call_finish(call, GRPC_OK, NULL);
	deferred_call = NULL;
}

static void parked(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	deferred_call = call;
	rpc_call_set_ctx(call, NULL, parked_pull, cancel_cb);
}

/* Zero-copy sending: two messages written into reserved room, the second
 * with a skipped head; a reservation over the limit and a commit without
 * one are refused. The request says the size of the second message. */
static void reserve(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	assert_null(rpc_call_reserve(call, GRPC_DEFAULT_MAX_MESSAGE + 1));
	assert_int_equal(rpc_call_commit(call, 0, 1), -EINVAL);
	uint8_t *room = rpc_call_reserve(call, 3);
	assert_non_null(room);
	memcpy(room, "abc", 3);
	assert_int_equal(rpc_call_commit(call, 0, 3), 0);
	assert_int_equal(rpc_call_commit(call, 0, 3), -EINVAL); /* used up */
	char num[16] = "";
	memcpy(num, req, len < sizeof num - 1 ? len : sizeof num - 1);
	size_t big = (size_t)atoi(num);
	room = rpc_call_reserve(call, big + 7);
	assert_non_null(room);
	for (size_t i = 0; i < big; i++)
		room[7 + i] = (uint8_t)(i % 251);
	assert_int_equal(rpc_call_commit(call, 7, big + 1), -EINVAL); /* past the room */
	room = rpc_call_reserve(call, big + 7);
	assert_int_equal(rpc_call_commit(call, 7, big), 0);
	rpc_call_finish(call, GRPC_OK, NULL);
}

static const struct rpc_method methods[] = {
	{"/t.S/Echo", false, echo},
	{"/t.S/Defer", false, defer},
	{"/t.S/Fail", false, fail_with_percent},
	{"/t.S/Stream", true, stream},
	{"/t.S/Parked", true, parked},
	{"/t.S/Reserve", false, reserve},
};
static const struct rpc_service service = {methods, sizeof methods / sizeof methods[0], NULL};

/* ---- client side ---------------------------------------------------- */

static struct result *res_of(struct tc *t, int32_t id)
{
	assert_true(id > 0 && id / 2 < MAX_STREAMS);
	return &t->res[id / 2];
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		       const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct result *r = res_of(ud, f->hd.stream_id);
	if (nl == 7 && memcmp(name, ":status", 7) == 0)
		r->http_status = atoi((const char *)value);
	else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
		r->grpc_status = atoi((const char *)value);
	else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
		char *d = grpc_message_decode((const char *)value, vl);
		snprintf(r->grpc_message, sizeof r->grpc_message, "%s", d);
		free(d);
	}
	return 0;
}

static int c_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct result *r = res_of(ud, f->hd.stream_id);
	r->header_blocks++;
	if (r->header_blocks == 1 && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		r->trailers_only = true;
	return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		     void *ud)
{
	struct result *r = res_of(ud, id);
	r->data = realloc(r->data, r->data_len + len);
	memcpy(r->data + r->data_len, data, len);
	r->data_len += len;
	return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct result *r = res_of(ud, id);
	r->closed = true;
	r->close_error = err;
	return 0;
}

static void t_wake(void *ctx)
{
	((struct tc *)ctx)->wakes++;
}

/* The identity quota the next tc_init's conn counts against (NULL: none). */
static struct h2_quota *tc_identity;

static void tc_init(struct tc *t, size_t max_message, int32_t client_window)
{
	memset(t, 0, sizeof *t);
	for (int i = 0; i < MAX_STREAMS; i++)
		t->res[i].grpc_status = -1;
	t->base = event_base_new();
	t->out = evbuffer_new();
	struct san_set peer = {0};
	san_set_add(&peer, "DNS:client.test");
	struct h2_conn_config cfg = {
		.service = &service,
		.max_message = max_message,
		.base = t->base,
		.out = t->out,
		.out_high_water = 64 * 1024,
		.wake = t_wake,
		.ctx = t,
		.identity = tc_identity,
	};
	t->h2 = h2_conn_new(&cfg, &peer);
	assert_int_equal(peer.n, 0); /* moved */

	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
	nghttp2_session_client_new(&t->client, cb, t);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client_window},
				       {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20}};
	nghttp2_submit_settings(t->client, NGHTTP2_FLAG_NONE, iv, 2);
	nghttp2_session_set_local_window_size(t->client, NGHTTP2_FLAG_NONE, 0, 1 << 30);
}

static void tc_free(struct tc *t)
{
	h2_conn_free(t->h2);
	nghttp2_session_del(t->client);
	evbuffer_free(t->out);
	event_base_free(t->base);
	for (int i = 0; i < MAX_STREAMS; i++)
		free(t->res[i].data);
}

/* Moves bytes both ways until nothing moves. */
static void pump(struct tc *t)
{
	for (int round = 0; round < 100000; round++) {
		bool moved = false;
		const uint8_t *p;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(t->client, &p)) > 0) {
			moved = true;
			if (h2_conn_feed(t->h2, p, (size_t)n) < 0)
				t->conn_failed = true;
		}
		assert_int_equal(h2_conn_flush(t->h2), 0);
		size_t len = evbuffer_get_length(t->out);
		if (len) {
			moved = true;
			uint8_t *b = evbuffer_pullup(t->out, -1);
			assert_int_equal(nghttp2_session_mem_recv(t->client, b, len), (ssize_t)len);
			evbuffer_drain(t->out, len);
		}
		event_base_loop(t->base, EVLOOP_NONBLOCK);
		if (!moved)
			return;
	}
	fail_msg("pump did not settle");
}

#define HDR(n, v)                                                                                  \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE         \
	}

struct body {
	const uint8_t *data;
	size_t len, off;
	bool open; /* never end the request: DEFERRED once everything was sent */
};

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct body *b = src->ptr;
	if (b->open && b->off == b->len)
		return NGHTTP2_ERR_DEFERRED;
	size_t n = b->len - b->off < len ? b->len - b->off : len;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	if (b->off == b->len && !b->open)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Starts a request; body (already gRPC-framed) may be NULL (END_STREAM on
 * HEADERS). Extra headers are name/value pairs, NULL-terminated. */
static int32_t request(struct tc *t, const char *method, const char *path, const char *ctype,
		       struct body *body, ...)
{
	nghttp2_nv nv[16] = {
		HDR(":method", method),		HDR(":scheme", "https"), HDR(":path", path),
		HDR(":authority", "localhost"), HDR("te", "trailers"),
	};
	size_t n = 5;
	if (ctype)
		nv[n++] = (nghttp2_nv)HDR("content-type", ctype);
	va_list ap;
	va_start(ap, body);
	const char *k;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		nv[n++] = (nghttp2_nv)HDR(k, v);
	}
	va_end(ap);
	nghttp2_data_provider prd = {.source.ptr = body, .read_callback = body_read};
	int32_t id = nghttp2_submit_request(t->client, NULL, nv, n, body ? &prd : NULL, NULL);
	assert_true(id > 0);
	return id;
}

static struct body framed(uint8_t *buf, const char *msg)
{
	size_t len = strlen(msg);
	grpc_prefix_encode(buf, (uint32_t)len);
	memmove(buf + GRPC_PREFIX_LEN, msg, len); /* msg may point into buf */
	return (struct body){buf, len + GRPC_PREFIX_LEN, 0};
}

/* ---- tests ---------------------------------------------------------- */

static void test_echo(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "ping");
	int32_t id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b, NULL);
	pump(&t);
	struct result *r = res_of(&t, id);
	assert_true(r->closed);
	assert_int_equal(r->close_error, 0);
	assert_int_equal(r->http_status, 200);
	assert_int_equal(r->grpc_status, 0);
	assert_false(r->trailers_only);
	assert_int_equal(r->header_blocks, 2);
	assert_int_equal(r->data_len, 9);
	assert_memory_equal(r->data, buf, 9);
	assert_int_equal(h2_conn_active_calls(t.h2), 0);
	tc_free(&t);
}

static void test_reserve_commit(void **state)
{
	/* Sizes around the 1 MiB block: in the current block, in a fresh
	 * one, and larger than a block. */
	static const char *const sizes[] = {"5000", "1048000", "1500000"};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		struct tc t;
		tc_init(&t, 0, 1 << 30);
		uint8_t buf[64];
		struct body b = framed(buf, sizes[k]);
		int32_t id = request(&t, "POST", "/t.S/Reserve", "application/grpc", &b, NULL);
		pump(&t);
		struct result *r = res_of(&t, id);
		size_t big = (size_t)atoi(sizes[k]);
		assert_true(r->closed);
		assert_int_equal(r->grpc_status, 0);
		assert_int_equal(r->data_len, 5 + 3 + 5 + big);
		assert_memory_equal(r->data, "\0\0\0\0\3abc", 8);
		uint8_t prefix[5];
		grpc_prefix_encode(prefix, (uint32_t)big);
		assert_memory_equal(r->data + 8, prefix, 5);
		for (size_t i = 0; i < big; i++)
			if (r->data[13 + i] != (uint8_t)(i % 251))
				fail_msg("byte %zu of %zu differs", i, big);
		tc_free(&t);
	}
}

static void test_unknown_method(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "x");
	int32_t id = request(&t, "POST", "/x/y", "application/grpc+proto", &b, NULL);
	pump(&t);
	struct result *r = res_of(&t, id);
	assert_int_equal(r->http_status, 200);
	assert_int_equal(r->grpc_status, GRPC_UNIMPLEMENTED);
	assert_string_equal(r->grpc_message, "unknown method /x/y");
	assert_true(r->trailers_only);
	assert_true(r->closed);
	tc_free(&t);
}

static void test_bad_content_type_and_method(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b1 = framed(buf, "x"), b2 = b1, b3 = b1;
	int32_t a = request(&t, "POST", "/t.S/Echo", "text/plain", &b1, NULL);
	int32_t c = request(&t, "POST", "/t.S/Echo", "application/grpcx", &b2, NULL);
	int32_t d = request(&t, "GET", "/t.S/Echo", "application/grpc", NULL, NULL);
	int32_t e = request(&t, "POST", "/t.S/Echo", NULL, &b3, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, a)->http_status, 415);
	assert_int_equal(res_of(&t, c)->http_status, 415);
	assert_int_equal(res_of(&t, d)->http_status, 405);
	assert_int_equal(res_of(&t, e)->http_status, 415);
	assert_int_equal(res_of(&t, a)->grpc_status, -1);
	assert_true(res_of(&t, a)->closed && res_of(&t, d)->closed);
	tc_free(&t);
}

static void test_oversized(void **state)
{
	struct tc t;
	tc_init(&t, 100, 65535);
	uint8_t buf[300];
	memset(buf, 'a', sizeof buf);
	buf[250] = '\0';
	struct body b = framed(buf, (char *)buf);
	int32_t id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b, NULL);
	pump(&t);
	struct result *r = res_of(&t, id);
	assert_int_equal(r->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(r->grpc_message, "250"));
	assert_non_null(strstr(r->grpc_message, "100"));
	assert_true(r->closed);
	/* The connection still serves. */
	struct body b2 = framed(buf + 280, "ok");
	id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b2, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, GRPC_OK);
	tc_free(&t);
}

/* Unfinished requests on one connection cannot pile up without bound:
 * each may stay under the message limit, their sum may not. */
static void test_unfinished_requests_bounded(void **state)
{
	struct tc t;
	tc_init(&t, 8 << 20, 65535);
	size_t part = 3 << 20;
	uint8_t *data = calloc(1, part);
	assert_non_null(data);
	grpc_prefix_encode(data, 6 << 20); /* announces more than is ever sent */
	struct body bodies[8];
	int32_t ids[8];
	for (int i = 0; i < 8; i++) {
		bodies[i] = (struct body){data, part, 0, true};
		ids[i] = request(&t, "POST", "/t.S/Echo", "application/grpc", &bodies[i], NULL);
	}
	pump(&t);
	int refused = 0;
	for (int i = 0; i < 8; i++) {
		struct result *r = res_of(&t, ids[i]);
		if (r->grpc_status == GRPC_RESOURCE_EXHAUSTED) {
			assert_non_null(strstr(r->grpc_message, "unfinished requests"));
			refused++;
		}
	}
	/* 8 x 3 MiB would be 24 MiB held; the bound is 16 MiB. */
	assert_true(refused >= 2);
	assert_true(refused < 8);
	tc_free(&t);
	free(data);
}

static void test_cardinality(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body two = framed(buf, "a");
	framed(buf + two.len, "b");
	two.len *= 2;
	int32_t a = request(&t, "POST", "/t.S/Echo", "application/grpc", &two, NULL);
	int32_t z = request(&t, "POST", "/t.S/Echo", "application/grpc", NULL, NULL);
	uint8_t part[3] = {0, 0, 0};
	struct body partial = {part, 3, 0};
	int32_t p = request(&t, "POST", "/t.S/Echo", "application/grpc", &partial, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, a)->grpc_status, GRPC_UNIMPLEMENTED);
	assert_int_equal(res_of(&t, z)->grpc_status, GRPC_UNIMPLEMENTED);
	assert_non_null(strstr(res_of(&t, z)->grpc_message, "got 0"));
	assert_int_equal(res_of(&t, p)->grpc_status, GRPC_INTERNAL);
	tc_free(&t);
}

static void test_compressed(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64], buf2[64];
	struct body b = framed(buf, "zz"), b2 = framed(buf2, "zz");
	buf[0] = 1;
	buf2[0] = 1;
	int32_t a = request(&t, "POST", "/t.S/Echo", "application/grpc", &b, "grpc-encoding",
			    "gzip", NULL);
	int32_t c = request(&t, "POST", "/t.S/Echo", "application/grpc", &b2, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, a)->grpc_status, GRPC_UNIMPLEMENTED);
	assert_non_null(strstr(res_of(&t, a)->grpc_message, "gzip"));
	assert_int_equal(res_of(&t, c)->grpc_status, GRPC_INTERNAL);
	tc_free(&t);
}

static void test_message_encoding(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "");
	int32_t id = request(&t, "POST", "/t.S/Fail", "application/grpc", &b, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, GRPC_NOT_FOUND);
	assert_string_equal(res_of(&t, id)->grpc_message, "no job 100% \"x\"\n");
	tc_free(&t);
}

static void test_deferred_finish(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q");
	cancels = 0;
	int32_t id = request(&t, "POST", "/t.S/Defer", "application/grpc", &b, NULL);
	pump(&t);
	assert_non_null(deferred_call);
	assert_false(res_of(&t, id)->closed);
	assert_int_equal(h2_conn_active_calls(t.h2), 1);
	const struct san_set *peer = rpc_call_peer(deferred_call);
	assert_int_equal(peer->n, 1);
	assert_string_equal(peer->names[0], "DNS:client.test");
	int wakes = t.wakes;
	struct iovec iov = {"later", 5};
	rpc_call_send(deferred_call, &iov, 1);
	rpc_call_finish(deferred_call, GRPC_OK, NULL);
	deferred_call = NULL;
	assert_true(t.wakes > wakes);
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, 0);
	assert_int_equal(res_of(&t, id)->data_len, 10);
	assert_int_equal(cancels, 0);
	tc_free(&t);
}

static void test_deadline(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q");
	cancels = 0;
	int32_t id = request(&t, "POST", "/t.S/Defer", "application/grpc", &b, "grpc-timeout",
			     "20m", NULL);
	pump(&t);
	assert_non_null(deferred_call);
	event_base_loop(t.base, EVLOOP_ONCE); /* waits for the 20 ms timer */
	pump(&t);
	assert_int_equal(cancels, 1);
	assert_null(deferred_call);
	assert_int_equal(res_of(&t, id)->grpc_status, GRPC_DEADLINE_EXCEEDED);
	assert_true(res_of(&t, id)->closed);

	id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b, "grpc-timeout", "1x", NULL);
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, GRPC_INTERNAL);
	tc_free(&t);
}

/* A grpc-timeout of zero is a deadline that has passed, like 1n: the
 * handler never runs. */
static void test_zero_timeout_expired(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	const char *values[] = {"0n", "1n", "0H"};
	for (size_t i = 0; i < 3; i++) {
		struct body b = framed(buf, "q");
		int32_t id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b,
				     "grpc-timeout", values[i], NULL);
		pump(&t);
		assert_int_equal(res_of(&t, id)->grpc_status, GRPC_DEADLINE_EXCEEDED);
		assert_int_equal(res_of(&t, id)->data_len, 0);
	}
	tc_free(&t);
}

/* Two conns of one identity share its cap on calls; a third identity's conn
 * is not affected; the counters return to zero. */
static void test_identity_quota(void **state)
{
	struct h2_quota q = {.max_calls = 1, .what = "per-identity"}, other = {.max_calls = 1};
	struct tc a, b, c;
	uint8_t buf[64];
	struct body ba = framed(buf, "q"), bb = framed(buf, "q"), bc = framed(buf, "q");
	tc_identity = &q;
	tc_init(&a, 0, 65535);
	tc_init(&b, 0, 65535);
	tc_identity = &other;
	tc_init(&c, 0, 65535);
	tc_identity = NULL;
	int32_t ida = request(&a, "POST", "/t.S/Defer", "application/grpc", &ba, NULL);
	pump(&a);
	assert_non_null(deferred_call);
	assert_int_equal(q.calls, 1);
	int32_t idb = request(&b, "POST", "/t.S/Echo", "application/grpc", &bb, NULL);
	pump(&b);
	assert_int_equal(res_of(&b, idb)->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(res_of(&b, idb)->grpc_message,
			    "per-identity limit of 1 concurrent calls reached");
	int32_t idc = request(&c, "POST", "/t.S/Echo", "application/grpc", &bc, NULL);
	pump(&c);
	assert_int_equal(res_of(&c, idc)->grpc_status, GRPC_OK);
	rpc_call_finish(deferred_call, GRPC_OK, NULL);
	deferred_call = NULL;
	pump(&a);
	assert_int_equal(res_of(&a, ida)->grpc_status, GRPC_OK);
	assert_int_equal(q.calls, 0);
	bb = framed(buf, "q");
	idb = request(&b, "POST", "/t.S/Echo", "application/grpc", &bb, NULL);
	pump(&b);
	assert_int_equal(res_of(&b, idb)->grpc_status, GRPC_OK);
	tc_free(&a);
	tc_free(&b);
	tc_free(&c);
	assert_int_equal(q.calls + q.streaming + q.held, 0);
	assert_int_equal(other.calls + other.streaming + other.held, 0);
}

/* A connection admitted only to say why it is refused. */
static void test_refuse(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	h2_conn_refuse(t.h2, "limit of 2 connections reached");
	uint8_t buf[64];
	struct body b = framed(buf, "q");
	int32_t id = request(&t, "POST", "/t.S/Echo", "application/grpc", &b, NULL);
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(res_of(&t, id)->grpc_message, "limit of 2 connections reached");
	assert_false(h2_conn_want_read(t.h2));
	tc_free(&t);
}

static void test_cancel_by_rst_and_close(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q"), b2 = b;
	cancels = 0;
	int32_t id = request(&t, "POST", "/t.S/Defer", "application/grpc", &b, NULL);
	pump(&t);
	assert_non_null(deferred_call);
	nghttp2_submit_rst_stream(t.client, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	pump(&t);
	assert_int_equal(cancels, 1);
	assert_int_equal(h2_conn_active_calls(t.h2), 0);

	request(&t, "POST", "/t.S/Defer", "application/grpc", &b2, NULL);
	pump(&t);
	assert_non_null(deferred_call);
	tc_free(&t); /* the connection goes away with the call open */
	assert_int_equal(cancels, 2);
}

static void test_stream_flow_control(void **state)
{
	struct tc t;
	/* A small client window: the stream must park on flow control and
	 * the queue stay bounded while the client reads slowly. */
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q");
	stream_total = 8u << 20;
	stream_sent = 0;
	max_queue_seen = 0;
	int32_t id = request(&t, "POST", "/t.S/Stream", "application/grpc", &b, NULL);
	pump(&t);
	struct result *r = res_of(&t, id);
	assert_int_equal(r->grpc_status, 0);
	assert_int_equal(stream_sent, stream_total);
	size_t nmsg = (stream_total + stream_msg - 1) / stream_msg;
	assert_int_equal(r->data_len, stream_total + nmsg * GRPC_PREFIX_LEN);
	assert_true(max_queue_seen <= 512 * 1024 + stream_msg + GRPC_PREFIX_LEN);
	tc_free(&t);
}

static void test_stream_parked_resume(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q");
	parked_ready = false;
	int32_t id = request(&t, "POST", "/t.S/Parked", "application/grpc", &b, NULL);
	pump(&t);
	struct rpc_call *call = deferred_call;
	assert_non_null(call);
	assert_int_equal(res_of(&t, id)->http_status, 200); /* headers went out */
	assert_false(res_of(&t, id)->closed);
	pump(&t); /* parked: nothing happens */
	assert_false(res_of(&t, id)->closed);
	parked_ready = true;
	rpc_call_resume(call);
	pump(&t);
	assert_true(res_of(&t, id)->closed);
	assert_int_equal(res_of(&t, id)->grpc_status, 0);
	assert_int_equal(res_of(&t, id)->data_len, 9);
	tc_free(&t);
}

static void test_goaway(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	uint8_t buf[64];
	struct body b = framed(buf, "q"), b2 = b;
	int32_t id = request(&t, "POST", "/t.S/Defer", "application/grpc", &b, NULL);
	pump(&t);
	h2_conn_goaway(t.h2);
	h2_conn_goaway(t.h2);
	pump(&t);
	assert_true(h2_conn_want_read(t.h2)); /* a call is still running */
	rpc_call_finish(deferred_call, GRPC_OK, NULL);
	deferred_call = NULL;
	pump(&t);
	assert_int_equal(res_of(&t, id)->grpc_status, 0);
	assert_false(h2_conn_want_read(t.h2) && h2_conn_want_write(t.h2));
	(void)b2;
	tc_free(&t);
}

static void test_bad_preface(void **state)
{
	struct tc t;
	tc_init(&t, 0, 65535);
	const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_true(h2_conn_feed(t.h2, (const uint8_t *)junk, sizeof junk - 1) < 0);
	tc_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_reserve_commit),
		cmocka_unit_test(test_unknown_method),
		cmocka_unit_test(test_bad_content_type_and_method),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_unfinished_requests_bounded),
		cmocka_unit_test(test_cardinality),
		cmocka_unit_test(test_compressed),
		cmocka_unit_test(test_message_encoding),
		cmocka_unit_test(test_deferred_finish),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_zero_timeout_expired),
		cmocka_unit_test(test_identity_quota),
		cmocka_unit_test(test_refuse),
		cmocka_unit_test(test_cancel_by_rst_and_close),
		cmocka_unit_test(test_stream_flow_control),
		cmocka_unit_test(test_stream_parked_resume),
		cmocka_unit_test(test_goaway),
		cmocka_unit_test(test_bad_preface),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
