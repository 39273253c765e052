/* server: the gRPC server transport. A listener, TLS handshakes with a
 * deadline, one nghttp2 session per connection, and gRPC calls dispatched
 * to the rpc_method table (rpc.h). */
#ifndef RUND_SERVER_H
#define RUND_SERVER_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>

#include "err.h"
#include "rpc.h"

struct server;

struct server_opts {
	const char *addr;	       /* ":8000", "127.0.0.1:0", "[::1]:8000" */
	SSL_CTX *ssl_ctx;	       /* server policy (tls.h); borrowed */
	struct rpc_service service;    /* its table and ctx are borrowed */
	size_t max_message;	       /* passed to h2 (h2.h): 0 = its default */
	size_t max_connections;	       /* 0 = 1024 */
	unsigned handshake_timeout_ms; /* 0 = 10000 */
};

/* Binds and listens (":port" means all IPv6 and IPv4 interfaces). NULL
 * with err set ("listen on :8000: Address already in use"). */
struct server *server_new(struct event_base *base, const struct server_opts *opts, struct err *err);

/* The bound port (useful with port 0). */
int server_port(const struct server *s);

/* Stops accepting, sends GOAWAY on every connection, lets running calls
 * finish for up to drain_ms, then closes everything and calls done(ctx). */
void server_shutdown(struct server *s, unsigned drain_ms, void (*done)(void *ctx), void *ctx);
void server_free(struct server *s);

#endif
