/* fuzz_h2: feeds client bytes into an in-memory h2 connection (h2.c and the
 * gRPC framing of grpc.c), with handlers that answer at once, later, by
 * streaming, or after parking, so the lifecycle paths (deferred finish,
 * resume, cancel on RST/close) run under the sanitizers too.
 *
 * Input: the bytes a client sends after the connection preface magic (the
 * harness sends the magic). The first byte picks the size of the pieces
 * the rest is fed in, so frame boundaries and read boundaries differ.
 *
 * Its `_replay` binary links fuzz/replay.c: a main() that runs each file named on the
 * command line once (regression runs without libFuzzer). */
#include <event2/buffer.h>
#include <fcntl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "h2.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PENDING 128

static struct rpc_call *pending[MAX_PENDING];
static size_t n_pending;

static void forget(struct rpc_call *call)
{
	for (size_t i = 0; i < n_pending; i++) {
		if (pending[i] == call) {
			pending[i] = pending[--n_pending];
			return;
		}
	}
}

static void on_cancel(void *ctx)
{
	forget(ctx);
}

static void echo(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	struct iovec iov[2] = {{(void *)req, len / 2}, {(void *)(req + len / 2), len - len / 2}};
	rpc_call_send(call, iov, 2);
	rpc_call_finish(call, len % 2 ? GRPC_OK : GRPC_NOT_FOUND, len ? "m\xff%" : NULL);
}

static void defer(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	if (n_pending == MAX_PENDING) {
		rpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "busy");
		return;
	}
	pending[n_pending++] = call;
	rpc_call_set_ctx(call, call, NULL, on_cancel);
}

/* Streams a few messages per pull, then finishes. */
static void stream_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	static uint8_t chunk[5000]; /* above H2_BLOCK_MIN_MESSAGE: pooled blocks */
	struct iovec iov = {chunk, sizeof chunk};
	rpc_call_send(call, &iov, 1);
	rpc_call_send(call, &iov, 1);
	if (rand() % 8 == 0)
		rpc_call_finish(call, GRPC_OK, NULL);
}

static void stream(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	rpc_call_set_ctx(call, NULL, stream_pull, NULL);
}

/* Parks until the harness resumes it, then answers. */
static void park_pull(struct rpc_call *call, void *ctx, size_t budget)
{
	if (rand() % 2)
		return;
	forget(call);
	struct iovec iov = {"x", 1};
	rpc_call_send(call, &iov, 1);
	rpc_call_finish(call, GRPC_OK, NULL);
}

static void park(struct rpc_call *call, void *svc, const uint8_t *req, size_t len)
{
	if (n_pending == MAX_PENDING) {
		rpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "busy");
		return;
	}
	pending[n_pending++] = call;
	rpc_call_set_ctx(call, call, park_pull, on_cancel);
}

static const struct rpc_method methods[] = {
	{"/t.S/Echo", false, echo},
	{"/t.S/Defer", false, defer},
	{"/t.S/Stream", true, stream},
	{"/t.S/Park", true, park},
};
static const struct rpc_service service = {methods, ARRAY_SIZE(methods), NULL};

/* Between input pieces: answer or resume what is waiting. */
static void settle_pending(void)
{
	for (size_t i = n_pending; i-- > 0;) {
		struct rpc_call *call = pending[i];
		if (rand() % 3 == 0) {
			rpc_call_resume(call);
			continue;
		}
		forget(call);
		struct iovec iov = {"later", 5};
		rpc_call_send(call, &iov, 1);
		/* For parked streams finish is also legal at any time. */
		rpc_call_finish(call, GRPC_OK, NULL);
	}
}

static void nop_wake(void *ctx)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	if (!base)
		base = event_base_new();
	srand((unsigned)size);
	n_pending = 0;

	struct evbuffer *out = evbuffer_new();
	struct h2_conn_config cfg = {
		.service = &service,
		.max_message = 8192, /* small, so the limit is reachable */
		.base = base,
		.out = out,
		.out_high_water = 16384,
		.wake = nop_wake,
	};
	struct san_set peer = {0};
	san_set_add(&peer, "DNS:fuzz");
	struct h2_conn *c = h2_conn_new(&cfg, &peer);

	static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	int r = h2_conn_feed(c, (const uint8_t *)magic, sizeof magic - 1);
	size_t piece = size ? (size_t)data[0] * 7 + 1 : 1;
	if (size) {
		data++;
		size--;
	}
	while (r == 0 && size > 0) {
		size_t n = size < piece ? size : piece;
		r = h2_conn_feed(c, data, n);
		data += n;
		size -= n;
		if (r == 0)
			r = h2_conn_flush(c);
		evbuffer_drain(out, evbuffer_get_length(out));
		settle_pending();
		if (r == 0)
			r = h2_conn_flush(c);
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	/* Let expired deadlines (grpc-timeout 0) fire. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	if (r == 0)
		h2_conn_flush(c);
	h2_conn_free(c);
	evbuffer_free(out);
	n_pending = 0;
	return 0;
}
