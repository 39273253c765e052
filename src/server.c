/* server: listener, TLS handshakes with a deadline, and the byte pump
 * between each TLS bufferevent and its h2 connection (contract in
 * server.h). The HTTP/2 and gRPC work happens in h2.c; this file only moves
 * bytes, enforces connection-level limits and closes things cleanly.
 *
 * Output flow control: h2 appends frames straight into the bufferevent's
 * output buffer but stops above OUT_HIGH_WATER; the write callback fires
 * once OpenSSL has drained it below OUT_LOW_WATER and we produce more. While
 * the output is full we also stop reading, so a client that does not read
 * its answers cannot make us queue more of them. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "grpc.h"
#include "h2.h"
#include "tls.h"
#include "util.h"

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define OUT_HIGH_WATER (2 * 1024 * 1024) /* bounds output queued per connection */
#define OUT_LOW_WATER (512 * 1024)
#define SSL_IO_CHUNK (1024 * 1024)
#define ACCEPT_RETRY_MS 100
#define CLOSE_LINGER_S 5 /* longest wait for a closing conn's output to drain */
#define LISTEN_BACKLOG 511
#define H2_PREFACE_LEN 24

struct sconn {
	struct server *srv;
	struct sconn *prev, *next;
	struct bufferevent *bev;
	struct h2_conn *h2;	/* NULL until the TLS handshake completed */
	struct event *hs_timer; /* deadline for the TLS handshake + HTTP/2 preface */
	size_t fed;		/* bytes fed to h2 until the preface was seen */
	struct event *flush_ev; /* h2 asked for a flush (wake) */
	bool closing;		/* close once the output drained */
};

struct server {
	struct event_base *base;
	struct server_opts opts;
	struct evconnlistener *listener;
	struct event *accept_retry;
	int port;
	struct sconn *conns;
	size_t n_conns;
	bool shutting_down;
	struct event *drain_timer;
	struct event *done_ev;
	void (*done)(void *ctx);
	void *done_ctx;
};

static void conn_flush(struct sconn *c);

/* ---- connections ---------------------------------------------------- */

static void conn_free(struct sconn *c)
{
	struct server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	/* h2 first: handlers get their cancel callbacks while the peer
	 * identity and everything else are still intact. */
	h2_conn_free(c->h2);
	if (c->hs_timer)
		event_free(c->hs_timer);
	if (c->flush_ev)
		event_free(c->flush_ev);
	/* BEV_OPT_CLOSE_ON_FREE: frees the SSL and closes the socket. */
	bufferevent_free(c->bev);
	free(c);
	if (s->shutting_down && s->n_conns == 0 && s->done_ev)
		event_active(s->done_ev, EV_TIMEOUT, 0);
}

/* Close once what is queued has reached the socket (GOAWAY, last
 * trailers); a client that stops reading is cut off by the drain timer or
 * because its socket errors. */
static void conn_close_soon(struct sconn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_free(c);
		return;
	}
	struct timeval tv = {CLOSE_LINGER_S, 0};
	evtimer_add(c->hs_timer, &tv);
}

static void conn_wake(void *ctx)
{
	struct sconn *c = ctx;
	event_active(c->flush_ev, EV_TIMEOUT, 0);
}

static void flush_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

/* Produces output and decides whether the connection is over. May free c. */
static void conn_flush(struct sconn *c)
{
	if (c->closing || !c->h2)
		return;
	if (h2_conn_flush(c->h2) < 0) {
		conn_close_soon(c);
		return;
	}
	if (!h2_conn_want_read(c->h2) && !h2_conn_want_write(c->h2)) {
		conn_close_soon(c);
		return;
	}
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) >= OUT_HIGH_WATER)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	if (c->closing || !c->h2)
		return;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[16];
	for (;;) {
		int n = evbuffer_peek(in, -1, NULL, v, ARRAY_SIZE(v));
		if (n <= 0)
			break;
		if (n > (int)ARRAY_SIZE(v))
			n = ARRAY_SIZE(v);
		size_t used = 0;
		for (int i = 0; i < n; i++) {
			int r = h2_conn_feed(c->h2, v[i].iov_base, v[i].iov_len);
			if (r < 0) {
				/* Bad preface, flood, ...: send what nghttp2 still
				 * has (GOAWAY) and close. */
				evbuffer_drain(in, evbuffer_get_length(in));
				h2_conn_flush(c->h2);
				conn_close_soon(c);
				return;
			}
			used += v[i].iov_len;
		}
		evbuffer_drain(in, used);
		/* The client preface (24 bytes) passed nghttp2's check: the
		 * connection is established, its deadline no longer applies. */
		if (c->fed < H2_PREFACE_LEN && (c->fed += used) >= H2_PREFACE_LEN)
			event_del(c->hs_timer);
	}
	conn_flush(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	conn_flush(c);
}

static void conn_handshake_done(struct sconn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		conn_free(c);
		return;
	}
	struct san_set sans = {0};
	if (tls_peer_sans(ssl, &sans, NULL) < 0) {
		san_set_free(&sans);
		conn_free(c);
		return;
	}
	struct h2_conn_config cfg = {
		.methods = c->srv->opts.methods,
		.n_methods = c->srv->opts.n_methods,
		.max_message = c->srv->opts.max_message,
		.base = c->srv->base,
		.out = bufferevent_get_output(c->bev),
		.out_high_water = OUT_HIGH_WATER,
		.wake = conn_wake,
		.ctx = c,
	};
	c->h2 = h2_conn_new(&cfg, &sans);
	san_set_free(&sans);
	if (c->srv->shutting_down)
		h2_conn_goaway(c->h2);
	/* The client's preface may already be buffered. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_read_cb(c->bev, c);
	else
		conn_flush(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sconn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		conn_handshake_done(c);
		return;
	}
	/* EOF, TLS or socket error: nothing more can be delivered. */
	conn_free(c);
}

/* Handshake deadline (TLS and the HTTP/2 preface: a client that connects
 * and then stays silent is dropped too), and the linger limit of a closing
 * connection. */
static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_free(arg);
}

/* ---- listener ------------------------------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
		      int addrlen, void *arg)
{
	struct server *s = arg;
	if (s->shutting_down || s->n_conns >= s->opts.max_connections) {
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	SSL *ssl = SSL_new(s->opts.ssl_ctx);
	if (!ssl) {
		close(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	/* Clients often close without close_notify after their last call. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* Fewer, larger SSL_read/SSL_write rounds per loop iteration. */
	bufferevent_set_max_single_read(bev, SSL_IO_CHUNK);
	bufferevent_set_max_single_write(bev, SSL_IO_CHUNK);
	bufferevent_setwatermark(bev, EV_WRITE, OUT_LOW_WATER, 0);

	struct sconn *c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->bev = bev;
	c->hs_timer = evtimer_new(s->base, handshake_timeout_cb, c);
	c->flush_ev = event_new(s->base, -1, 0, flush_ev_cb, c);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;

	struct timeval tv = {
		.tv_sec = s->opts.handshake_timeout_ms / 1000,
		.tv_usec = (suseconds_t)(s->opts.handshake_timeout_ms % 1000) * 1000,
	};
	evtimer_add(c->hs_timer, &tv);
	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	if (!s->shutting_down)
		evconnlistener_enable(s->listener);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS): the pending connection stays
 * in the backlog and the listener would spin, so pause it briefly. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *s = arg;
	int e = EVUTIL_SOCKET_ERROR();
	fprintf(stderr, "rund: accept: %s\n", strerror(e));
	evconnlistener_disable(l);
	struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
	evtimer_add(s->accept_retry, &tv);
}

/* Splits "host:port", "[v6]:port" or ":port". host is NULL for ":port". */
static int split_addr(const char *addr, char *host, size_t cap, bool *any, uint16_t *port)
{
	const char *colon, *h;
	size_t hlen;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
		if (hlen == 0)
			return -EINVAL;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		h = addr;
		hlen = (size_t)(colon - addr);
		if (memchr(h, ':', hlen))
			return -EINVAL; /* bare IPv6 needs brackets */
	}
	if (hlen >= cap)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*any = hlen == 0;
	uint64_t p;
	if (parse_u64(colon + 1, &p) < 0 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

static int listen_socket(const char *addr, int *out, struct err *err)
{
	char host[256];
	bool any;
	uint16_t port;
	if (split_addr(addr, host, sizeof host, &any, &port) < 0)
		return err_set(err, EINVAL, ERR_INVALID,
			       "listen on %s: expected host:port, [ipv6]:port or :port", addr);

	struct sockaddr_storage ss = {0};
	socklen_t sslen;
	if (any) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(port);
		sslen = sizeof *sin6;
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
		struct addrinfo *res;
		char portstr[8];
		snprintf(portstr, sizeof portstr, "%u", port);
		int r = getaddrinfo(host, portstr, &hints, &res);
		if (r != 0)
			return err_set(err, EINVAL, ERR_INVALID, "listen on %s: %s", addr,
				       r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		sslen = res->ai_addrlen;
		freeaddrinfo(res);
	}

	_cleanup_close_ int fd =
		socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return err_sys(err, errno, "listen on %s: socket", addr);
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* ":port" serves IPv4 too, whatever net.ipv6.bindv6only says. */
	if (any && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
		return err_sys(err, errno, "listen on %s: IPV6_V6ONLY", addr);
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0)
		return err_sys(err, errno, "listen on %s", addr);
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return err_sys(err, errno, "listen on %s", addr);
	*out = steal_fd(&fd);
	return 0;
}

/* ---- public --------------------------------------------------------- */

struct server *server_new(struct event_base *base, const struct server_opts *opts, struct err *err)
{
	_cleanup_close_ int fd = -1;
	if (listen_socket(opts->addr, &fd, err) < 0)
		return NULL;

	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		err_sys(err, errno, "listen on %s: getsockname", opts->addr);
		return NULL;
	}

	struct server *s = xcalloc(1, sizeof *s);
	s->base = base;
	s->opts = *opts;
	if (!s->opts.max_message)
		s->opts.max_message = GRPC_DEFAULT_MAX_MESSAGE;
	if (!s->opts.max_connections)
		s->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
	if (!s->opts.handshake_timeout_ms)
		s->opts.handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);

	/* listen() was already called: backlog 0 here means "leave it". */
	s->listener = evconnlistener_new(
		base, accept_cb, s,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 0, fd);
	if (!s->listener) {
		free(s);
		err_set(err, ENOMEM, ERR_INTERNAL, "listen on %s: cannot create listener",
			opts->addr);
		return NULL;
	}
	steal_fd(&fd);
	evconnlistener_set_error_cb(s->listener, accept_error_cb);
	s->accept_retry = evtimer_new(base, accept_retry_cb, s);
	return s;
}

int server_port(const struct server *s)
{
	return s->port;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	while (s->conns)
		conn_free(s->conns);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	if (s->done) {
		void (*done)(void *) = s->done;
		s->done = NULL;
		done(s->done_ctx);
	}
}

void server_shutdown(struct server *s, unsigned drain_ms, void (*done)(void *ctx), void *ctx)
{
	if (s->shutting_down)
		return;
	s->shutting_down = true;
	s->done = done;
	s->done_ctx = ctx;
	s->done_ev = event_new(s->base, -1, 0, done_cb, s);
	evconnlistener_disable(s->listener);
	evtimer_del(s->accept_retry);

	struct sconn *next;
	for (struct sconn *c = s->conns; c; c = next) {
		next = c->next;
		if (!c->h2) {
			conn_free(c); /* still handshaking: nothing to drain */
			continue;
		}
		h2_conn_goaway(c->h2);
		conn_flush(c);
	}
	if (s->n_conns == 0) {
		event_active(s->done_ev, EV_TIMEOUT, 0);
		return;
	}
	s->drain_timer = evtimer_new(s->base, drain_timeout_cb, s);
	struct timeval tv = {.tv_sec = drain_ms / 1000, .tv_usec = (drain_ms % 1000) * 1000};
	evtimer_add(s->drain_timer, &tv);
}

void server_free(struct server *s)
{
	if (!s)
		return;
	struct event *done_ev = steal_pointer(&s->done_ev); /* no callback from here on */
	while (s->conns)
		conn_free(s->conns);
	if (done_ev)
		event_free(done_ev);
	if (s->listener)
		evconnlistener_free(s->listener);
	if (s->accept_retry)
		event_free(s->accept_retry);
	if (s->drain_timer)
		event_free(s->drain_timer);
	free(s);
}
