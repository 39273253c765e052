/* client: a blocking gRPC-over-HTTP/2 client with rund's TLS policy, used by
 * runc, the benchmarks and tests. One call at a time per connection. */
#ifndef RUND_CLIENT_H
#define RUND_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct client;

struct client_opts {
	const char *addr; /* "host:port", "[v6]:port" */
	const char *ca, *cert, *key;
	uint64_t timeout_ms; /* per call deadline (sent as grpc-timeout); 0 = none */
	/* When non-NULL and it becomes non-zero (e.g. from a SIGINT handler), a
	 * blocked call cancels its stream and returns -ECANCELED. */
	volatile sig_atomic_t *cancel;
};

/* The outcome of a call that reached the server. */
struct client_status {
	int code;	    /* grpc_code */
	char message[1024]; /* decoded grpc-message */
};

/* Connects and completes the TLS and HTTP/2 handshakes. NULL with err set
 * ("connect 127.0.0.1:8000: Connection refused", "server rejected our
 * certificate: ..."). */
struct client *client_connect(const struct client_opts *opts, struct err *err);
void client_free(struct client *c);

/* Unary call. Returns 0 when a gRPC status was received (see st->code; on
 * GRPC_OK *resp is a malloc'd message of *resp_len bytes), or -errno for a
 * transport failure with err set. */
int client_unary(struct client *c, const char *path, const uint8_t *req, size_t req_len,
		 uint8_t **resp, size_t *resp_len, struct client_status *st, struct err *err);

/* Server-streaming call: on_message is called for each message as it
 * arrives (msg valid during the call); a non-zero return cancels the
 * stream and client_stream returns -ECANCELED. Otherwise as client_unary. */
typedef int (*client_message_fn)(void *ctx, const uint8_t *msg, size_t len);
int client_stream(struct client *c, const char *path, const uint8_t *req, size_t req_len,
		  client_message_fn on_message, void *ctx, struct client_status *st,
		  struct err *err);

#endif
