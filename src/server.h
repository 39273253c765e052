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
struct audit;

struct server_opts {
	const char *addr;	       /* ":8000", "127.0.0.1:0", "[::1]:8000" */
	SSL_CTX *ssl_ctx;	       /* server policy (tls.h); borrowed */
	struct rpc_service service;    /* its table and ctx are borrowed */
	size_t max_message;	       /* passed to h2 (h2.h): 0 = its default */
	size_t max_connections;	       /* established connections; 0 = 1024 */
	size_t max_handshakes;	       /* unfinished handshakes; 0 = 64 */
	unsigned handshake_timeout_ms; /* TLS handshake + HTTP/2 preface; 0 = 5000 */
	unsigned idle_timeout_ms;      /* no open call this long: GOAWAY; 0 = never */
	unsigned keepalive_ms;	       /* PING interval under open calls; 0 = none */
	unsigned request_timeout_ms;   /* to finish a request body; 0 = no limit */
	/* Per identity (the SAN set of the client certificate; all SAN-less
	 * certificates are one anonymous identity with an eighth of each
	 * cap, at least 1). 0 = no cap. */
	size_t identity_connections, identity_calls, identity_log_streams;
	size_t identity_request_bytes;
	size_t request_bytes;	   /* held in unfinished requests, all clients; 0 = no cap */
	const struct audit *audit; /* one line per call (audit.h); NULL = none */
};

/* Binds and listens (":port" means all IPv6 and IPv4 interfaces). NULL
 * with err set ("listen on :8000: Address already in use").
 *
 * Descriptors are budgeted below RLIMIT_NOFILE (which the caller should
 * have raised): connections and handshakes take one each, every Log stream
 * may hold one, and a reserve stays for jobs. When the limit cannot hold
 * max_connections + max_handshakes with that reserve, server_new fails
 * naming the numbers. The rest becomes the server-wide cap on streaming
 * calls.
 *
 * When max_handshakes connections are still in their handshake, a new one
 * replaces the oldest (sshd's MaxStartups and HAProxy do the same), so
 * bare or stalled connections cannot keep a real client out. */
struct server *server_new(struct event_base *base, const struct server_opts *opts, struct err *err);

/* The server-wide cap on concurrent streaming calls derived from the
 * descriptor budget (for the log line). */
size_t server_max_streams(const struct server *s);

/* The bound port (useful with port 0). */
int server_port(const struct server *s);

/* Stops accepting, sends GOAWAY on every connection, lets running calls
 * finish for up to drain_ms, then closes everything and calls done(ctx). */
void server_shutdown(struct server *s, unsigned drain_ms, void (*done)(void *ctx), void *ctx);
void server_free(struct server *s);

#endif
