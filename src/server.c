/* server: listener, TLS handshakes with a deadline, and the byte pump
 * between each TLS connection and its h2 connection (contract in
 * server.h). The HTTP/2 and gRPC work happens in h2.c; this file only moves
 * bytes, enforces connection-level limits and closes things cleanly.
 *
 * We drive OpenSSL ourselves over a non-blocking socket instead of using
 * bufferevent_openssl, for two reasons measured on the Status and Log
 * paths. Writes: OpenSSL hands each 16 KiB record to the BIO separately;
 * our BIO gathers them in `wire` and one send() carries up to WIRE_HIGH
 * bytes (bufferevent_openssl made one write(2) and one TCP segment per
 * record). Latency: an answer is encrypted and sent as soon as h2 produced
 * it, in the same loop turn as the request, and the write event is only
 * armed while the socket is full (bufferevent_openssl always waited a loop
 * turn for EPOLLOUT, at two epoll_ctl calls per answer). Reads use
 * OpenSSL's read-ahead (one recv per burst instead of header + body), which
 * is safe here because we call SSL_read until it has nothing buffered.
 *
 * Output flow control: h2 appends frames to `out` (plaintext) but stops
 * above OUT_HIGH_WATER; conn_send encrypts from `out` into `wire` while
 * `wire` is below WIRE_HIGH and the socket takes it. While the output is
 * full we also stop reading, so a client that does not read its answers
 * cannot make us queue more of them. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "audit.h"
#include "h2.h"
#include "tls.h"
#include "util.h"

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_HANDSHAKES 64
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define ANON_SHARE 8			 /* SAN-less certificates share 1/8 of each identity cap */
#define FD_RESERVE 64			 /* listener, epoll, inotify, signals, spawning, stdio */
#define FD_MIN_SPARE 128		 /* at least this many for Log streams and jobs */
#define OUT_HIGH_WATER (2 * 1024 * 1024) /* bounds plaintext queued per connection */
#define OUT_LOW_WATER (512 * 1024)	 /* produce more below this */
#define WIRE_HIGH (256 * 1024)		 /* ciphertext gathered per send() */
#define WIRE_KEEP (16 * 1024)		 /* a drained wire buffer larger than this is freed */
#define TLS_RECORD 16384		 /* TLS plaintext record size */
#define SSL_WRITE_MAX (64 * 1024)	 /* plaintext per SSL_write call */
#define SMALL_CHAIN 512			 /* coalesce pieces this small into full records */
#define READ_BUDGET (1024 * 1024)	 /* plaintext read per event before yielding */
#define ACCEPT_RETRY_MS 100
#define CLOSE_LINGER_S 5 /* longest wait for a closing conn's output to drain */
#define LISTEN_BACKLOG 511
#define H2_PREFACE_LEN 24

/* One client identity: the connections that presented the same SAN set,
 * and the quota their calls share. A short list: identities are few
 * (certificates are issued by one CA) and it is searched once per
 * connection. */
struct ident {
	struct ident *next;
	char *key; /* the SANs joined by '\n'; "" = anonymous */
	size_t conns;
	struct h2_quota q;
};

struct sconn {
	struct server *srv;
	struct sconn *prev, *next;
	TAILQ_ENTRY(sconn) hs_link; /* while in_hs: oldest first */
	bool in_hs;		    /* counts against max_handshakes */
	bool answered;		    /* in_hs: we sent it something (a whole ClientHello came) */
	bool admitted;		    /* counts against max_connections and ident */
	struct ident *ident;	    /* admitted: its identity */
	struct event *tick;	    /* idle timeout and keepalive */
	uint64_t last_busy_ns;	    /* last time a call was open */
	uint64_t last_rx_ns;	    /* last bytes from the peer */
	uint64_t ping_sent_ns;	    /* 0 = no keepalive PING outstanding */
	int fd;			    /* owned */
	SSL *ssl;
	struct event *rev, *wev; /* persistent; wev armed only while wire waits */
	bool reading;		 /* rev added */
	bool writing;		 /* wev added */
	bool handshaking;
	struct evbuffer *out; /* plaintext frames from h2 */
	uint8_t *wire;	      /* ciphertext not yet sent: [wire_off, wire_len) */
	size_t wire_off, wire_len, wire_cap;
	struct h2_conn *h2;	     /* NULL until the TLS handshake completed */
	struct event *hs_timer;	     /* deadline for the TLS handshake + HTTP/2 preface */
	size_t fed;		     /* bytes fed to h2 until the preface was seen */
	struct event *flush_ev;	     /* h2 asked for a flush (wake) */
	bool closing;		     /* close once the output drained */
	char serial[TLS_SERIAL_MAX]; /* the client certificate's, for the audit log */
};

struct server {
	struct event_base *base;
	struct server_opts opts;
	struct evconnlistener *listener;
	struct event *accept_retry;
	BIO_METHOD *bio_method;
	struct h2_pool *pool;		/* response blocks of every connection */
	uint8_t rbuf[TLS_RECORD + 256]; /* plaintext just read, fed to h2 at once */
	int port;
	struct sconn *conns;
	size_t n_conns;
	TAILQ_HEAD(, sconn) handshakes;
	size_t n_handshakes, n_established;
	struct ident *idents;
	struct h2_quota global;
	unsigned tick_ms; /* 0 = neither idle timeout nor keepalive */
	bool shutting_down;
	struct event *drain_timer;
	struct event *done_ev;
	void (*done)(void *ctx);
	void *done_ctx;
};

static void conn_flush(struct sconn *c);
static void conn_do_read(struct sconn *c);
static void conn_established(struct sconn *c);

/* ---- the socket BIO ------------------------------------------------- */

static size_t wire_pending(const struct sconn *c)
{
	return c->wire_len - c->wire_off;
}

/* Never refuses: conn_send bounds what it asks OpenSSL to encrypt. */
static int bio_wire_write(BIO *b, const char *data, int len)
{
	struct sconn *c = BIO_get_data(b);
	size_t n = (size_t)len;
	c->answered = true;
	if (c->wire_off > 0 && c->wire_len + n > c->wire_cap) {
		memmove(c->wire, c->wire + c->wire_off, wire_pending(c));
		c->wire_len -= c->wire_off;
		c->wire_off = 0;
	}
	if (c->wire_len + n > c->wire_cap) {
		size_t cap = c->wire_cap ? c->wire_cap * 2 : TLS_RECORD + 1024;
		while (cap < c->wire_len + n)
			cap *= 2;
		c->wire = xrealloc(c->wire, cap);
		c->wire_cap = cap;
	}
	memcpy(c->wire + c->wire_len, data, n);
	c->wire_len += n;
	return len;
}

static int bio_wire_read(BIO *b, char *buf, int len)
{
	struct sconn *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	for (;;) {
		ssize_t n = recv(c->fd, buf, (size_t)len, MSG_DONTWAIT);
		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
}

/* ---- identities and budgets ---------------------------------------- */

static char *ident_key(const struct san_set *sans)
{
	size_t len = 1;
	for (size_t i = 0; i < sans->n; i++)
		len += strlen(sans->names[i]) + 1;
	char *k = xmalloc(len), *p = k;
	for (size_t i = 0; i < sans->n; i++)
		p += sprintf(p, "%s%s", i ? "\n" : "", sans->names[i]);
	*p = '\0';
	return k;
}

static struct ident *ident_find(struct server *s, const char *key)
{
	for (struct ident *id = s->idents; id; id = id->next)
		if (strcmp(id->key, key) == 0)
			return id;
	return NULL;
}

static size_t anon_cap(size_t cap)
{
	return cap == 0 ? 0 : cap / ANON_SHARE ? cap / ANON_SHARE : 1;
}

static struct ident *ident_get(struct server *s, char *key)
{
	struct ident *id = ident_find(s, key);
	if (id) {
		free(key);
		return id;
	}
	id = xcalloc(1, sizeof *id);
	bool anon = key[0] == '\0';
	id->key = key;
	const struct server_opts *o = &s->opts;
	id->q.max_calls = anon ? anon_cap(o->identity_calls) : o->identity_calls;
	id->q.max_streaming = anon ? anon_cap(o->identity_log_streams) : o->identity_log_streams;
	id->q.max_held = anon ? anon_cap(o->identity_request_bytes) : o->identity_request_bytes;
	id->q.what = anon ? "anonymous (no SAN) identity's" : "per-identity";
	id->next = s->idents;
	s->idents = id;
	return id;
}

/* Drops a connection's hold on its identity (after its h2 conn is gone). */
static void ident_put(struct server *s, struct ident *id)
{
	if (!id || --id->conns > 0)
		return;
	for (struct ident **pp = &s->idents; *pp; pp = &(*pp)->next) {
		if (*pp == id) {
			*pp = id->next;
			break;
		}
	}
	free(id->key);
	free(id);
}

static size_t ident_conn_cap(const struct server *s, const char *key)
{
	size_t cap = s->opts.identity_connections;
	return key[0] == '\0' ? anon_cap(cap) : cap;
}

static void hs_leave(struct sconn *c)
{
	if (!c->in_hs)
		return;
	TAILQ_REMOVE(&c->srv->handshakes, c, hs_link);
	c->in_hs = false;
	c->srv->n_handshakes--;
}

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
	hs_leave(c);
	/* h2 first: handlers get their cancel callbacks while the peer
	 * identity and everything else are still intact. */
	h2_conn_free(c->h2);
	if (c->admitted)
		s->n_established--;
	ident_put(s, c->ident);
	if (c->tick)
		event_free(c->tick);
	event_free(c->hs_timer);
	event_free(c->flush_ev);
	event_free(c->rev);
	event_free(c->wev);
	SSL_free(c->ssl); /* and its BIO */
	close(c->fd);
	evbuffer_free(c->out);
	free(c->wire);
	free(c);
	if (s->shutting_down && s->n_conns == 0 && s->done_ev)
		event_active(s->done_ev, EV_TIMEOUT, 0);
}

static void conn_set_reading(struct sconn *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (!on) {
		event_del(c->rev);
		return;
	}
	event_add(c->rev, NULL);
	/* Read-ahead may hold records the socket will not announce again. */
	if (SSL_has_pending(c->ssl))
		event_active(c->rev, EV_READ, 0);
}

/* Sends queued ciphertext until done or the socket is full, and arms the
 * write event exactly while something waits. 0 or -errno. */
static int wire_send(struct sconn *c)
{
	while (wire_pending(c) > 0) {
		ssize_t n = send(c->fd, c->wire + c->wire_off, wire_pending(c),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		c->wire_off += (size_t)n;
	}
	if (wire_pending(c) == 0) {
		c->wire_off = c->wire_len = 0;
		if (c->wire_cap > WIRE_KEEP) {
			free(c->wire);
			c->wire = NULL;
			c->wire_cap = 0;
		}
	}
	bool wait = wire_pending(c) > 0;
	if (wait != c->writing) {
		c->writing = wait;
		if (wait)
			event_add(c->wev, NULL);
		else
			event_del(c->wev);
	}
	return 0;
}

/* Encrypts frames from `out` and sends them, as far as the socket takes
 * them now. Pieces smaller than SMALL_CHAIN (frame headers, trailers) are
 * gathered with what follows into one full record instead of becoming
 * records of their own. 0 or -errno (the connection is broken). */
static int conn_send(struct sconn *c)
{
	for (;;) {
		if (wire_pending(c) >= WIRE_HIGH) {
			int r = wire_send(c);
			if (r < 0)
				return r;
			if (wire_pending(c) >= WIRE_HIGH)
				return 0; /* the write event resumes us */
		}
		size_t avail = evbuffer_get_length(c->out);
		if (avail == 0)
			break;
		struct evbuffer_iovec v;
		if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1)
			break;
		uint8_t small[TLS_RECORD];
		const void *p = v.iov_base;
		size_t n = v.iov_len;
		if (n < SMALL_CHAIN && avail > n) {
			ev_ssize_t got = evbuffer_copyout(c->out, small, sizeof small);
			if (got <= 0)
				return -EIO;
			p = small;
			n = (size_t)got;
		} else if (n > SSL_WRITE_MAX) {
			n = SSL_WRITE_MAX;
		}
		ERR_clear_error();
		int w = SSL_write(c->ssl, p, (int)n);
		if (w <= 0)
			return -EPROTO; /* the BIO never blocks: a real failure */
		evbuffer_drain(c->out, (size_t)w);
	}
	return wire_send(c);
}

static bool conn_drained(const struct sconn *c)
{
	return evbuffer_get_length(c->out) == 0 && wire_pending(c) == 0;
}

/* Close once what is queued has reached the socket (GOAWAY, last
 * trailers); a client that stops reading is cut off by the linger timer or
 * because its socket errors. */
static void conn_close_soon(struct sconn *c)
{
	c->closing = true;
	conn_set_reading(c, false);
	if (conn_send(c) < 0 || conn_drained(c)) {
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

/* Produces output, sends it, and decides whether the connection is over.
 * May free c. */
static void conn_flush(struct sconn *c)
{
	if (c->closing || !c->h2)
		return;
	if (h2_conn_active_calls(c->h2) > 0)
		c->last_busy_ns = now_mono_ns();
	for (;;) {
		if (h2_conn_flush(c->h2) < 0) {
			conn_close_soon(c);
			return;
		}
		/* h2 stopped at the high-water mark: once the socket took
		 * most of it, produce the next batch in the same turn. */
		bool stopped = evbuffer_get_length(c->out) >= OUT_HIGH_WATER;
		if (conn_send(c) < 0) {
			conn_free(c);
			return;
		}
		if (!stopped || evbuffer_get_length(c->out) >= OUT_LOW_WATER)
			break;
	}
	if (!h2_conn_want_read(c->h2) && !h2_conn_want_write(c->h2)) {
		conn_close_soon(c);
		return;
	}
	conn_set_reading(c, evbuffer_get_length(c->out) < OUT_HIGH_WATER);
}

static void conn_do_read(struct sconn *c)
{
	uint8_t *buf = c->srv->rbuf;
	size_t budget = READ_BUDGET;
	c->last_rx_ns = now_mono_ns();
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(c->ssl, buf, sizeof c->srv->rbuf);
		if (n <= 0) {
			if (SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ)
				break;
			/* EOF, TLS or socket error: nothing more can be
			 * delivered. */
			conn_free(c);
			return;
		}
		if (h2_conn_feed(c->h2, buf, (size_t)n) < 0) {
			/* Bad preface, flood, ...: send what nghttp2 still has
			 * (GOAWAY) and close. */
			h2_conn_flush(c->h2);
			conn_close_soon(c);
			return;
		}
		/* The client preface (24 bytes) passed nghttp2's check: the
		 * connection is established, its deadline no longer applies
		 * (a refused one keeps it: it is only there to say why). */
		if (c->fed < H2_PREFACE_LEN && (c->fed += (size_t)n) >= H2_PREFACE_LEN &&
		    c->admitted)
			conn_established(c);
		/* Level-triggered: more on the socket wakes us again. */
		if (!SSL_has_pending(c->ssl))
			break;
		budget = budget > (size_t)n ? budget - (size_t)n : 0;
		if (budget == 0 || evbuffer_get_length(c->out) >= OUT_HIGH_WATER) {
			event_active(c->rev, EV_READ, 0);
			break;
		}
	}
	conn_flush(c);
}

static void tick_arm(struct sconn *c)
{
	unsigned ms = c->srv->tick_ms;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(c->tick, &tv);
}

/* Idle timeout: no call open for idle_timeout_ms -> GOAWAY and close.
 * Keepalive: while calls are open, a PING every keepalive_ms; a peer that
 * sent nothing at all in the keepalive_ms after one is gone. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	const struct server_opts *o = &c->srv->opts;
	if (c->closing || !c->h2)
		return;
	uint64_t now = now_mono_ns(), ms = 1000000;
	tick_arm(c);
	if (h2_conn_active_calls(c->h2) == 0) {
		c->ping_sent_ns = 0;
		if (o->idle_timeout_ms && now - c->last_busy_ns >= o->idle_timeout_ms * ms) {
			h2_conn_goaway(c->h2);
			conn_flush(c);
		}
		return;
	}
	c->last_busy_ns = now;
	if (!o->keepalive_ms)
		return;
	if (c->ping_sent_ns && c->last_rx_ns < c->ping_sent_ns) {
		if (now - c->ping_sent_ns >= o->keepalive_ms * ms)
			conn_free(c); /* no answer: the peer is gone */
		return;
	}
	if (now - c->ping_sent_ns >= o->keepalive_ms * ms) {
		c->ping_sent_ns = now;
		h2_conn_ping(c->h2);
		conn_flush(c);
	}
}

/* The preface arrived on an admitted connection: it leaves the handshake
 * budget and its deadline; the idle and keepalive clock starts. */
static void conn_established(struct sconn *c)
{
	event_del(c->hs_timer);
	hs_leave(c);
	c->last_busy_ns = now_mono_ns();
	if (c->srv->tick_ms) {
		c->tick = evtimer_new(c->srv->base, tick_cb, c);
		if (!c->tick) {
			fprintf(stderr, "rund: out of memory arming a timer\n");
			exit(1);
		}
		tick_arm(c);
	}
}

static void conn_call_done(void *ctx, const struct h2_call_record *rec)
{
	struct sconn *c = ctx;
	struct audit_call a = {
		.method = rec->method,
		.peer = rec->peer,
		.serial = c->serial,
		.job = rec->job,
		.code = rec->code,
		.duration_ns = rec->duration_ns,
	};
	audit_call(c->srv->opts.audit, &a);
}

static void conn_handshake_done(struct sconn *c)
{
	if (!tls_alpn_is_h2(c->ssl)) {
		conn_free(c);
		return;
	}
	struct san_set sans = {0};
	if (tls_peer_sans(c->ssl, &sans, NULL) < 0) {
		san_set_free(&sans);
		conn_free(c);
		return;
	}
	struct server *s = c->srv;
	_cleanup_free_ char *key = ident_key(&sans);
	char why[160] = "";
	struct ident *found = ident_find(s, key);
	size_t cap = ident_conn_cap(s, key);
	if (s->n_established >= s->opts.max_connections)
		snprintf(why, sizeof why, "server limit of %zu connections reached",
			 s->opts.max_connections);
	else if (cap && found && found->conns >= cap)
		snprintf(why, sizeof why, "%s limit of %zu connections reached", found->q.what,
			 cap);
	else if (cap == 0 && s->opts.identity_connections)
		snprintf(why, sizeof why, "no connections allowed");
	if (!why[0]) {
		c->admitted = true;
		s->n_established++;
		c->ident = ident_get(s, steal_pointer(&key));
		c->ident->conns++;
	}
	struct h2_conn_config cfg = {
		.service = &c->srv->opts.service,
		.identity = c->ident ? &c->ident->q : NULL,
		.global = &s->global,
		.request_timeout_ms = s->opts.request_timeout_ms,
		.max_message = c->srv->opts.max_message,
		.base = c->srv->base,
		.pool = c->srv->pool,
		.out = c->out,
		.out_high_water = OUT_HIGH_WATER,
		.wake = conn_wake,
		.call_done = c->srv->opts.audit ? conn_call_done : NULL,
		.ctx = c,
	};
	tls_peer_serial(c->ssl, c->serial, sizeof c->serial);
	c->h2 = h2_conn_new(&cfg, &sans);
	san_set_free(&sans);
	if (why[0])
		h2_conn_refuse(c->h2, why);
	if (c->srv->shutting_down)
		h2_conn_goaway(c->h2);
	/* The client's preface may already be buffered. */
	conn_do_read(c);
}

static void conn_handshake(struct sconn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
	/* Our flight, or the alert that refuses the client's certificate. */
	if (wire_send(c) < 0) {
		conn_free(c);
		return;
	}
	if (r == 1) {
		c->handshaking = false;
		conn_handshake_done(c);
	} else if (e != SSL_ERROR_WANT_READ) {
		conn_free(c);
	}
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	if (c->handshaking)
		conn_handshake(c);
	else if (!c->closing && c->h2)
		conn_do_read(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	if (c->handshaking || c->closing) {
		if (conn_send(c) < 0 || (c->closing && conn_drained(c)))
			conn_free(c);
		return;
	}
	if (conn_send(c) < 0) {
		conn_free(c);
		return;
	}
	conn_flush(c);
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
	if (s->shutting_down) {
		close(fd);
		return;
	}
	/* The newcomer may be the real client; the oldest unfinished one has
	 * had its chance. Oldest among those that never sent a whole
	 * ClientHello first: a real client that is waiting for our slower
	 * side of the handshake must not lose its place to connections that
	 * arrive later and say nothing (SYNs retried after a full backlog
	 * arrive late). */
	if (s->n_handshakes >= s->opts.max_handshakes) {
		struct sconn *victim = TAILQ_FIRST(&s->handshakes), *it;
		TAILQ_FOREACH(it, &s->handshakes, hs_link)
		if (!it->answered) {
			victim = it;
			break;
		}
		conn_free(victim);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	SSL *ssl = SSL_new(s->opts.ssl_ctx);
	BIO *bio = ssl ? BIO_new(s->bio_method) : NULL;
	if (!bio) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	struct sconn *c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->fd = fd;
	c->ssl = ssl;
	c->handshaking = true;
	BIO_set_data(bio, c);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_accept_state(ssl);
	/* Clients often close without close_notify after their last call. */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_read_ahead(ssl, 1);
	c->out = evbuffer_new();
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->hs_timer = evtimer_new(s->base, handshake_timeout_cb, c);
	c->flush_ev = event_new(s->base, -1, 0, flush_ev_cb, c);
	if (!c->out || !c->rev || !c->wev || !c->hs_timer || !c->flush_ev) {
		fprintf(stderr, "rund: out of memory accepting a connection\n");
		exit(1);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	TAILQ_INSERT_TAIL(&s->handshakes, c, hs_link);
	c->in_hs = true;
	s->n_handshakes++;

	struct timeval tv = {
		.tv_sec = s->opts.handshake_timeout_ms / 1000,
		.tv_usec = (suseconds_t)(s->opts.handshake_timeout_ms % 1000) * 1000,
	};
	evtimer_add(c->hs_timer, &tv);
	conn_set_reading(c, true);
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

static int listen_socket(const char *addr, int *out, struct err *err)
{
	_cleanup_free_ char *host = NULL, *port = NULL;
	int r = addr_split(addr, &host, &port, err);
	if (r < 0) {
		err_wrap(err, "listen");
		return r;
	}
	/* Port 0 (the kernel picks) and an empty host (all interfaces) are
	 * fine for a listener. */
	bool any = host[0] == '\0';

	struct sockaddr_storage ss = {0};
	socklen_t sslen;
	if (any) {
		uint64_t p = 0;
		parse_u64(port, &p); /* addr_split checked it: 0..65535 */
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)p);
		sslen = sizeof *sin6;
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
		struct addrinfo *res;
		r = getaddrinfo(host, port, &hints, &res);
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

/* Splits RLIMIT_NOFILE: connections and handshakes first, a fixed reserve,
 * then half of the rest for Log streams (each may hold a file) and half for
 * jobs (each running job holds a few). */
static int fd_budget(struct server *s, struct err *err)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return err_sys(err, errno, "getrlimit(RLIMIT_NOFILE)");
	uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : rl.rlim_cur;
	uint64_t conns = (uint64_t)s->opts.max_connections + s->opts.max_handshakes;
	if (limit < conns + FD_RESERVE + FD_MIN_SPARE)
		return err_set(err, EMFILE, ERR_INVALID,
			       "the open-file limit %llu cannot hold -max_connections %zu + "
			       "-max_handshakes %zu + %d reserved descriptors; raise the limit or "
			       "lower the flags",
			       (unsigned long long)limit, s->opts.max_connections,
			       s->opts.max_handshakes, FD_RESERVE + FD_MIN_SPARE);
	s->global.max_streaming = (size_t)((limit - conns - FD_RESERVE) / 2);
	return 0;
}

size_t server_max_streams(const struct server *s)
{
	return s->global.max_streaming;
}

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
	TAILQ_INIT(&s->handshakes);
	if (!s->opts.max_connections)
		s->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
	if (!s->opts.max_handshakes)
		s->opts.max_handshakes = DEFAULT_MAX_HANDSHAKES;
	if (!s->opts.handshake_timeout_ms)
		s->opts.handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (fd_budget(s, err) < 0) {
		free(s);
		return NULL;
	}
	unsigned idle = s->opts.idle_timeout_ms, ka = s->opts.keepalive_ms;
	s->tick_ms = !idle ? ka : !ka ? idle : idle < ka ? idle : ka;
	s->global.max_held = s->opts.request_bytes;
	s->global.what = "server-wide";
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
	s->bio_method = tls_socket_bio_method("rund wire", bio_wire_write, bio_wire_read);
	s->pool = h2_pool_new();
	if (!s->accept_retry || !s->bio_method) {
		server_free(s);
		err_set(err, ENOMEM, ERR_INTERNAL, "listen on %s: out of memory", opts->addr);
		return NULL;
	}
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
	if (s->opts.service.drain)
		s->opts.service.drain(s->opts.service.ctx);

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
	BIO_meth_free(s->bio_method);
	h2_pool_free(s->pool);
	free(s);
}
