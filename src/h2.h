/* h2: one HTTP/2 server connection carrying gRPC calls (nghttp2 session +
 * the rpc.h call objects). It performs no I/O: the owner feeds it received
 * bytes and it appends outgoing frames to an evbuffer the owner drains, so
 * the same code runs over a TLS bufferevent (server.c) or in memory (the
 * fuzz target, unit tests). Timers for grpc-timeout deadlines run on the
 * given event_base; no socket is needed. */
#ifndef RUND_H2_H
#define RUND_H2_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"
#include "san.h"

struct h2_conn;

/* Large response messages are copied into reusable 1 MiB blocks; a pool
 * keeps a few free ones for all connections of one server. Blocks in use
 * keep the pool alive after h2_pool_free (which accepts NULL). Never NULL
 * (allocation failure exits). */
struct h2_pool;
struct h2_pool *h2_pool_new(void);
void h2_pool_free(struct h2_pool *p);

/* Counters shared by the connections of one client identity (or by all of
 * a server's connections) and their caps; 0 = no cap. The owner zeroes
 * the counters once; each conn adds and removes only its own share. */
struct h2_quota {
	size_t calls;	  /* open calls dispatched to a known method */
	size_t streaming; /* ... of them server-streaming (Log) */
	size_t held;	  /* bytes of unfinished request messages */
	size_t max_calls, max_streaming, max_held;
	const char *what; /* "per-identity", "server-wide": in refusals */
};

/* What the owner hears about each call when it ends, for the audit log. */
struct h2_call_record {
	const char *method; /* the request's :path */
	const char *job;    /* set by the handler (rpc_call_set_job), "" if none */
	int code;	    /* the gRPC status sent; CANCELLED if the call went away */
	uint64_t duration_ns;
	const struct san_set *peer;
};

struct h2_conn_config {
	const struct rpc_service *service; /* borrowed; must outlive the conn */
	size_t max_message;	 /* request and response limit; 0 = GRPC_DEFAULT_MAX_MESSAGE */
	struct event_base *base; /* deadline timers */
	struct h2_pool *pool;	 /* borrowed; NULL = no reuse of blocks */
	struct evbuffer *out;	 /* frames are appended here; borrowed */
	size_t out_high_water;	 /* stop producing while out holds more; 0 = 1 MiB */
	/* Going over a cap answers RESOURCE_EXHAUSTED naming it. Borrowed;
	 * NULL = none. */
	struct h2_quota *identity, *global;
	/* A request body must be complete this long after its headers, or the
	 * call fails with RESOURCE_EXHAUSTED and its bytes are dropped; 0 =
	 * no limit. */
	unsigned request_timeout_ms;
	/* Called when the conn has output to produce outside h2_conn_feed and
	 * h2_conn_flush (a deferred handler answered, a stream was resumed, a
	 * deadline passed). The owner should call h2_conn_flush soon, from
	 * its event loop, not from inside wake. */
	void (*wake)(void *ctx);
	/* Optional: called once per request when its stream closes. */
	void (*call_done)(void *ctx, const struct h2_call_record *rec);
	void *ctx;
};

/* Creates a server session and queues our SETTINGS. peer's contents are
 * moved into the conn (peer is left empty). Never NULL (allocation failure
 * exits). */
struct h2_conn *h2_conn_new(const struct h2_conn_config *cfg, struct san_set *peer);

/* Processes received bytes (client preface and frames); may call handlers.
 * Returns 0, or a negative nghttp2 error when the connection must be
 * closed (after flushing what h2_conn_flush still produces). */
int h2_conn_feed(struct h2_conn *c, const uint8_t *data, size_t len);

/* Appends pending frames to cfg->out until nothing is pending or out
 * exceeds the high-water mark (call again once it drained). Returns 0 or a
 * negative nghttp2 error (close the connection). */
int h2_conn_flush(struct h2_conn *c);

/* True while the session has frames to send (possibly held back by the
 * high-water mark). */
bool h2_conn_want_write(const struct h2_conn *c);
/* False once the connection is finished: GOAWAY exchanged or sent and no
 * stream left, or a fatal error. Close when !want_read && !want_write. */
bool h2_conn_want_read(const struct h2_conn *c);

/* Graceful shutdown: GOAWAY with the last processed stream; running calls
 * continue, new streams are refused. Idempotent. */
void h2_conn_goaway(struct h2_conn *c);

/* Answers every call with RESOURCE_EXHAUSTED and `why` (copied), then
 * GOAWAY: for a connection admitted only to say why it is refused. */
void h2_conn_refuse(struct h2_conn *c, const char *why);

/* Queues a PING (keepalive; nghttp2 matches the ACK). */
void h2_conn_ping(struct h2_conn *c);

/* Number of open calls (streams the client has opened and not closed). */
size_t h2_conn_active_calls(const struct h2_conn *c);

/* Cancels every open call (their cancel callbacks run), frees everything.
 * Accepts NULL. */
void h2_conn_free(struct h2_conn *c);

#endif
