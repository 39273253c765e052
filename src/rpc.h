/* rpc: the contract between the gRPC transport (server.c) and the method
 * handlers (api.c).
 *
 * The transport parses HTTP/2 + gRPC framing, enforces message size and
 * deadlines, and hands each complete request message to the handler of the
 * method named by :path. A handler answers at once or later (the call stays
 * open until rpc_call_finish), which is how Start waits for its supervisor
 * and Stop for the job's end without blocking the loop. */
#ifndef RUND_RPC_H
#define RUND_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rpc_call;
struct san_set;

/* Called once per call with the service's ctx and the request message
 * (valid only during the call of the handler; copy what must outlive it). */
typedef void (*rpc_handler_fn)(struct rpc_call *call, void *ctx, const uint8_t *req, size_t len);

struct rpc_method {
	const char *path; /* "/rund.JobController/Start" */
	bool streaming;	  /* server-streaming response */
	rpc_handler_fn handler;
};

/* What a server serves: a method table and the state its handlers act on
 * (passed to every handler as ctx). Both are borrowed by the transport and
 * must outlive it. */
struct rpc_service {
	const struct rpc_method *methods;
	size_t n_methods;
	void *ctx;
	/* Called once, with ctx, when the server starts draining (before
	 * GOAWAY): open calls that would only keep it waiting may answer now.
	 * May be NULL. */
	void (*drain)(void *ctx);
};

/* The connection's peer identity: the SANs of its client certificate.
 * Valid until the call is finished or cancelled. Never NULL. */
const struct san_set *rpc_call_peer(const struct rpc_call *call);

/* Names the job this call concerns (a copy is kept) for the audit line
 * the transport writes when the call ends. */
void rpc_call_set_job(struct rpc_call *call, const char *id);

/* Queues one response message, given as the concatenation of iov (copied;
 * the transport adds the 5-byte gRPC prefix). A unary call sends exactly
 * one message before rpc_call_finish(GRPC_OK). Returns 0, -EMSGSIZE if
 * the message exceeds the maximum message size, or -ECANCELED once the call
 * is finished, by rpc_call_finish() or by the transport (nothing is sent
 * then). */
int rpc_call_send(struct rpc_call *call, const struct iovec *iov, int iovcnt);

/* Zero-copy alternative to rpc_call_send for large messages: returns room
 * for max bytes in the transport's own buffer, so the handler can read or
 * encode a message straight into it. The room stays valid until the next
 * rpc_* call on this call; a reservation that is not committed costs
 * nothing. NULL if max exceeds the maximum message size or the call is
 * finished. */
uint8_t *rpc_call_reserve(struct rpc_call *call, size_t max);

/* Queues room[off, off + len) of the last reservation as one message
 * (off + len <= max; the bytes before off are skipped, which lets a
 * handler write a variable-length header just in front of its payload).
 * Returns 0 or -EINVAL when nothing valid is reserved. */
int rpc_call_commit(struct rpc_call *call, size_t off, size_t len);

/* Ends the call with a gRPC status (grpc.h) and an optional message; the
 * transport sends queued messages, then the trailers. The handler must not
 * use `call` afterwards; its cancel callback will not be called. Safe to
 * call from inside the pull callback. */
void rpc_call_finish(struct rpc_call *call, int code, const char *message);

/* Streaming flow control. The transport calls pull(call, ctx, budget) when
 * the call's queue has drained below its low-water mark and the peer's
 * window allows more; pull sends about `budget` bytes of messages (it may
 * send less, or finish). If pull neither sends nor finishes, the stream is
 * parked (costing nothing) until rpc_call_resume(). */
typedef void (*rpc_pull_fn)(struct rpc_call *call, void *ctx, size_t budget);

/* Called at most once, when the call goes away before rpc_call_finish: the
 * client cancelled (RST_STREAM), the connection closed, or the deadline
 * passed (the transport answers DEADLINE_EXCEEDED itself). The call is
 * invalid once cancel returns; ctx is the handler's to free. */
typedef void (*rpc_cancel_fn)(void *ctx);

/* Attaches handler state to the call. pull may be NULL (unary calls). */
void rpc_call_set_ctx(struct rpc_call *call, void *ctx, rpc_pull_fn pull, rpc_cancel_fn cancel);

/* Wakes a parked stream: pull will be called again soon (not from inside
 * this function). Cheap to call when the stream is not parked. */
void rpc_call_resume(struct rpc_call *call);

#endif
