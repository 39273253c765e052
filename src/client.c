/* client: blocking gRPC client over nghttp2 and OpenSSL (contract in
 * client.h).
 *
 * One connection, one call at a time. The socket is non-blocking and every
 * wait is a poll() so that a deadline, a cancel flag set by a signal handler
 * (poll fails with EINTR) and a server that goes away all end a call
 * promptly. nghttp2 runs in memory mode (mem_recv/mem_send): we own all
 * socket I/O. The TLS layer talks to the socket through a small BIO that
 * uses send(MSG_NOSIGNAL), so a server that closes the connection under us
 * yields EPIPE instead of killing the process with SIGPIPE.
 *
 * A call ends when its stream closes. Locally decided endings (deadline,
 * cancel, a callback's refusal, a protocol violation) reset the stream with
 * RST_STREAM and leave the connection usable; transport failures (EOF, TLS
 * error, GOAWAY below our stream) mark the connection dead and every later
 * call fails fast with the same message. */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "grpc.h"
#include "tls.h"
#include "util.h"

/* Budget for TCP connect, TLS and HTTP/2 handshakes when the caller set no
 * deadline (or a longer one). */
#define CLIENT_CONNECT_TIMEOUT_MS 10000
/* A flagged cancel is seen within this long even when the signal landed
 * between our check and poll(). */
#define CLIENT_CANCEL_POLL_MS 100
/* Plaintext chunk handed to nghttp2 at once, and OpenSSL's socket read
 * size (read-ahead): big reads keep a fast Log stream at few syscalls. */
#define CLIENT_READ_CHUNK (256 * 1024)
/* Outgoing frames are small (requests, WINDOW_UPDATE): one TLS record. */
#define CLIENT_WRITE_CHUNK (16 * 1024)
/* Flow control: the server may have this much in flight before we grant
 * more. We consume data as it arrives, so it bounds socket buffering, not
 * our memory. */
#define CLIENT_STREAM_WINDOW (8 * 1024 * 1024)
#define CLIENT_CONN_WINDOW (32 * 1024 * 1024)
#define CLIENT_MAX_FRAME (256 * 1024)

struct call {
	int32_t stream_id;
	bool unary;
	uint8_t *req; /* prefix + message */
	size_t req_len, req_off;

	int http_status; /* 0 until the response headers arrived */
	char content_type[96];
	bool have_grpc_status;
	int grpc_status;
	char *grpc_message;

	struct grpc_decoder dec;
	size_t messages;
	uint8_t *resp; /* unary: the one response message */
	size_t resp_len;
	client_message_fn on_message;
	void *ctx;

	bool closed;
	uint32_t close_error; /* RST_STREAM code, 0 when closed normally */
	int stop;	      /* local reason to abandon the call, -errno */
	char stop_msg[256];
};

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO_METHOD *bio_method;
	nghttp2_session *h2;
	char *addr;
	uint64_t timeout_ms;
	volatile sig_atomic_t *cancel;

	uint8_t *rbuf;
	uint8_t wbuf[CLIENT_WRITE_CHUNK];
	struct call *call;

	bool got_settings; /* the server's first SETTINGS: our certificate was accepted */
	bool goaway;
	uint32_t goaway_error;
	int dead; /* -errno once the connection is unusable */
	char dead_msg[ERR_MSG_MAX];
};

/* ---- socket BIO ---------------------------------------------------------- */

static int bio_sock_write(BIO *b, const char *buf, int len)
{
	struct client *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static int bio_sock_read(BIO *b, char *buf, int len)
{
	struct client *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t n = recv(c->fd, buf, (size_t)len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			BIO_set_retry_read(b);
		return -1;
	}
	return (int)n;
}

/* ---- small helpers ------------------------------------------------------- */

static uint64_t deadline_after(uint64_t ms)
{
	return ms ? now_mono_ns() + ms * 1000000 : 0;
}

/* Marks the connection unusable and reports why; returns the code. */
static int conn_fail(struct client *c, struct err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int conn_fail(struct client *c, struct err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->dead_msg, sizeof c->dead_msg, fmt, ap);
	va_end(ap);
	c->dead = -code;
	return err_set(err, code, ERR_INTERNAL, "%s", c->dead_msg);
}

static bool cancelled(const struct client *c)
{
	return c->cancel && *c->cancel;
}

/* Waits for events on the socket. 0 when ready, -ECANCELED when the cancel
 * flag is up, -ETIMEDOUT at the deadline (0 = none), other -errno. */
static int wait_fd(struct client *c, short events, uint64_t deadline)
{
	for (;;) {
		if (cancelled(c))
			return -ECANCELED;
		int timeout = -1;
		if (deadline) {
			uint64_t now = now_mono_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			uint64_t left = (deadline - now + 999999) / 1000000;
			timeout = left > INT32_MAX ? INT32_MAX : (int)left;
		}
		if (c->cancel && (timeout < 0 || timeout > CLIENT_CANCEL_POLL_MS))
			timeout = CLIENT_CANCEL_POLL_MS;
		struct pollfd p = {.fd = c->fd, .events = events};
		int r = poll(&p, 1, timeout);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* TLS alerts a server sends when it refuses our certificate. */
static bool is_cert_alert(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return false;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

/* Turns a failed SSL_read/SSL_write into a connection failure. */
/* After a failed write before HTTP/2 started: did the server send an alert
 * (refusing our certificate) before it closed? Its bytes are still in our
 * receive queue even after the reset that made the write fail. */
static bool pending_cert_alert(struct client *c)
{
	char scratch[256];
	ERR_clear_error();
	for (int i = 0; i < 16; i++) {
		int r = SSL_read(c->ssl, scratch, sizeof scratch);
		if (r > 0)
			continue;
		return SSL_get_error(c->ssl, r) == SSL_ERROR_SSL &&
		       is_cert_alert(ERR_peek_last_error());
	}
	return false;
}

static int tls_io_fail(struct client *c, int ret, int e, int saved, struct err *err)
{
	char buf[256];

	if (!c->got_settings && e == SSL_ERROR_SYSCALL && pending_cert_alert(c))
		return conn_fail(c, err, EACCES, "server rejected our certificate: %s",
				 tls_last_error(buf, sizeof buf));

	bool peer_gone = e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
			 (ret == 0 || saved == 0 || saved == EPIPE || saved == ECONNRESET);
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (peer_gone && (!c->got_settings || saved == 0 || ret == 0))) {
		ERR_clear_error();
		if (!c->got_settings)
			return conn_fail(c, err, ECONNRESET,
					 "connection to %s closed by the server right after the "
					 "TLS handshake (did it refuse our certificate?)",
					 c->addr);
		if (c->goaway)
			return conn_fail(c, err, ECONNRESET,
					 "connection to %s closed by the server (GOAWAY %s)",
					 c->addr, nghttp2_http2_strerror(c->goaway_error));
		return conn_fail(c, err, ECONNRESET, "connection to %s closed by the server",
				 c->addr);
	}
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		return conn_fail(c, err, saved ? saved : EIO, "connection to %s: %s", c->addr,
				 strerror(saved ? saved : EIO));
	}
	unsigned long last = ERR_peek_last_error();
	if (!c->got_settings && is_cert_alert(last))
		return conn_fail(c, err, EACCES, "server rejected our certificate: %s",
				 tls_last_error(buf, sizeof buf));
	return conn_fail(c, err, EPROTO, "TLS connection to %s: %s", c->addr,
			 tls_last_error(buf, sizeof buf));
}

static int ssl_write_all(struct client *c, const uint8_t *p, size_t n, uint64_t deadline,
			 struct err *err)
{
	if (n == 0)
		return 0;
	while (n > 0) {
		int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
		ERR_clear_error();
		int r = SSL_write(c->ssl, p, chunk);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
			return tls_io_fail(c, r, e, errno, err);
		/* A partially written record must be finished with the same
		 * arguments; a cancel here would corrupt the stream, so it only
		 * ends the wait together with the connection. */
		int w = wait_fd(c, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
		if (w == -ETIMEDOUT)
			return conn_fail(c, err, ETIMEDOUT, "send to %s timed out", c->addr);
		if (w == -ECANCELED)
			return conn_fail(c, err, ECANCELED, "cancelled");
		if (w < 0)
			return conn_fail(c, err, -w, "poll: %s", strerror(-w));
	}
	return 0;
}

/* Sends everything nghttp2 has queued, gathering its frames so that a
 * request's HEADERS and DATA leave in one TLS record and one send(). */
static int flush(struct client *c, uint64_t deadline, struct err *err)
{
	size_t have = 0;
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);
		if (n < 0)
			return conn_fail(c, err, EPROTO, "HTTP/2: %s", nghttp2_strerror((int)n));
		if (n == 0 || have + (size_t)n > CLIENT_WRITE_CHUNK) {
			int r = ssl_write_all(c, c->wbuf, have, deadline, err);
			if (r < 0)
				return r;
			have = 0;
		}
		if (n == 0)
			return 0;
		if ((size_t)n > CLIENT_WRITE_CHUNK) {
			int r = ssl_write_all(c, data, (size_t)n, deadline, err);
			if (r < 0)
				return r;
			continue;
		}
		memcpy(c->wbuf + have, data, (size_t)n);
		have += (size_t)n;
	}
}

/* Reads what TLS has (up to CLIENT_READ_CHUNK) and feeds it to nghttp2.
 * Returns >0 when bytes were processed, 0 when the socket must be waited
 * for (*events says how), or -errno with the connection marked dead. */
static int pump(struct client *c, short *events, struct err *err)
{
	size_t have = 0;
	int fail = 0, fail_e = 0, fail_errno = 0;
	*events = POLLIN;
	while (have < CLIENT_READ_CHUNK) {
		ERR_clear_error();
		int r = SSL_read(c->ssl, c->rbuf + have, (int)(CLIENT_READ_CHUNK - have));
		if (r > 0) {
			have += (size_t)r;
			/* A unary answer is small: when TLS holds nothing more,
			 * do not ask the socket for an EAGAIN. */
			if (c->call && c->call->unary && !SSL_has_pending(c->ssl))
				break;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			*events = POLLOUT;
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			fail = r;
			fail_e = e;
			fail_errno = errno;
		}
		break;
	}
	if (have > 0) {
		/* Deliver what arrived before a failure: it may end the call. */
		ssize_t n = nghttp2_session_mem_recv(c->h2, c->rbuf, have);
		if (n < 0) {
			ERR_clear_error();
			return conn_fail(c, err, EPROTO, "HTTP/2 from %s: %s", c->addr,
					 nghttp2_strerror((int)n));
		}
	}
	if (fail_e)
		return tls_io_fail(c, fail, fail_e, fail_errno, err);
	return have > 0;
}

/* ---- nghttp2 callbacks --------------------------------------------------- */

static struct call *stream_call(struct client *c, int32_t stream_id)
{
	return c->call && c->call->stream_id == stream_id ? c->call : NULL;
}

static bool header_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct call *call = stream_call(ud, frame->hd.stream_id);
	if (!call)
		return 0;
	if (header_is(name, namelen, ":status")) {
		int v = 0;
		for (size_t i = 0; i < valuelen && i < 4; i++)
			v = v * 10 + (value[i] - '0'); /* nghttp2 checked: 3 digits */
		/* 1xx responses are informational; the final one follows. */
		call->http_status = v >= 200 ? v : 0;
	} else if (header_is(name, namelen, "content-type")) {
		snprintf(call->content_type, sizeof call->content_type, "%.*s", (int)valuelen,
			 (const char *)value);
	} else if (header_is(name, namelen, "grpc-status")) {
		int v = 0;
		bool ok = valuelen > 0 && valuelen <= 3;
		for (size_t i = 0; ok && i < valuelen; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			v = v * 10 + (value[i] - '0');
		}
		call->have_grpc_status = true;
		call->grpc_status = ok ? v : GRPC_UNKNOWN;
	} else if (header_is(name, namelen, "grpc-message")) {
		free(call->grpc_message);
		call->grpc_message = grpc_message_decode((const char *)value, valuelen);
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct client *c = ud;
	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		c->got_settings = true;
	} else if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = true;
		c->goaway_error = frame->goaway.error_code;
	}
	return 0;
}

static void call_stop(struct call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void call_stop(struct call *call, int code, const char *fmt, ...)
{
	if (call->stop)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call->stop_msg, sizeof call->stop_msg, fmt, ap);
	va_end(ap);
	call->stop = -code;
}

static int on_grpc_message(void *ctx, const uint8_t *msg, size_t len, bool compressed)
{
	struct call *call = ctx;
	if (compressed) {
		call_stop(call, EPROTO, "server sent a compressed message; none was negotiated");
		return -EPROTO;
	}
	call->messages++;
	if (call->unary) {
		if (call->messages > 1) {
			call_stop(call, EPROTO, "server sent more than one response message");
			return -EPROTO;
		}
		call->resp = xmalloc(len);
		memcpy(call->resp, msg, len);
		call->resp_len = len;
		return 0;
	}
	if (call->on_message(call->ctx, msg, len) != 0) {
		call_stop(call, ECANCELED, "cancelled by the message handler");
		return -ECANCELED;
	}
	return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t stream_id,
			      const uint8_t *data, size_t len, void *ud)
{
	struct call *call = stream_call(ud, stream_id);
	/* Data after a local stop would reach a handler that asked to stop. */
	if (!call || call->stop)
		return 0;
	if (call->http_status != 200)
		return 0; /* an error body (HTML, text): the status says it all */
	int r = grpc_decoder_feed(&call->dec, data, len, on_grpc_message, call);
	if (r == -EMSGSIZE)
		call_stop(call, EMSGSIZE, "server sent a message over %zu bytes",
			  call->dec.max_message);
	else if (r == -EPROTO)
		call_stop(call, EPROTO, "server sent a malformed message prefix");
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
	struct call *call = stream_call(ud, stream_id);
	if (call) {
		call->closed = true;
		call->close_error = error_code;
	}
	return 0;
}

static ssize_t req_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
			uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
	struct call *call = source->ptr;
	size_t n = call->req_len - call->req_off;
	if (n > length)
		n = length;
	memcpy(buf, call->req + call->req_off, n);
	call->req_off += n;
	if (call->req_off == call->req_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* ---- connect ------------------------------------------------------------- */

/* A client needs somewhere to go: unlike a listener, no empty host (all
 * interfaces) and no port 0 (kernel's pick). */
static int client_addr(const char *addr, char **host, char **port, struct err *err)
{
	_cleanup_free_ char *h = NULL, *p = NULL;
	int r = addr_split(addr, &h, &p, err);
	if (r < 0)
		return r;
	if (h[0] == '\0')
		return err_set(err, EINVAL, ERR_INVALID, "bad address \"%s\": no host", addr);
	if (strspn(p, "0") == strlen(p))
		return err_set(err, EINVAL, ERR_INVALID, "bad port in address \"%s\": port 0",
			       addr);
	*host = steal_pointer(&h);
	*port = steal_pointer(&p);
	return 0;
}

static int connect_one(struct client *c, const struct addrinfo *ai, uint64_t deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			int e = errno;
			close(steal_fd(&c->fd));
			return -e;
		}
		int r = wait_fd(c, POLLOUT, deadline);
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (r < 0 || soerr) {
			close(steal_fd(&c->fd));
			return r < 0 ? r : -soerr;
		}
	}
	return 0;
}

static int tcp_connect(struct client *c, const char *host, const char *port, uint64_t deadline,
		       struct err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g != 0)
		return err_set(err, g == EAI_SYSTEM ? errno : EHOSTUNREACH, ERR_INTERNAL,
			       "connect %s: resolve %s: %s", c->addr, host,
			       g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
	int r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(c, ai, deadline);
		if (r == 0 || r == -ECANCELED || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (r == -ETIMEDOUT)
		return err_set(err, ETIMEDOUT, ERR_INTERNAL, "connect %s: timed out", c->addr);
	if (r == -ECANCELED)
		return err_set(err, ECANCELED, ERR_INTERNAL, "connect %s: cancelled", c->addr);
	if (r < 0)
		return err_sys(err, -r, "connect %s", c->addr);
	return 0;
}

/* Loads the CA, certificate and key: a bad file is reported even when the
 * server is down. */
static int tls_setup(struct client *c, const struct client_opts *opts, struct err *err)
{
	struct tls_opts t = {.ca = opts->ca, .cert = opts->cert, .key = opts->key};
	c->ctx = tls_client_ctx_new(&t, err);
	if (!c->ctx)
		return -(err && err->code ? err->code : EINVAL);
	return 0;
}

static int tls_handshake(struct client *c, const struct client_opts *opts, const char *host,
			 uint64_t deadline, struct err *err)
{
	c->ssl = SSL_new(c->ctx);
	c->bio_method = tls_socket_bio_method("rund socket", bio_sock_write, bio_sock_read);
	if (!c->ssl || !c->bio_method)
		return err_set(err, ENOMEM, ERR_INTERNAL, "TLS: out of memory");
	BIO *bio = BIO_new(c->bio_method);
	if (!bio)
		return err_set(err, ENOMEM, ERR_INTERNAL, "TLS: out of memory");
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);

	int r = tls_client_set_host(c->ssl, host, err);
	if (r < 0)
		return r;
	/* Without close_notify the HTTP/2 framing still tells a complete
	 * response from a cut one, so a bare EOF is just EOF. */
	SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_read_ahead(c->ssl, 1);
	SSL_set_default_read_buffer_len(c->ssl, CLIENT_READ_CHUNK);

	for (;;) {
		ERR_clear_error();
		int h = SSL_connect(c->ssl);
		if (h == 1)
			break;
		int e = SSL_get_error(c->ssl, h);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			int w = wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
			if (w == -ETIMEDOUT)
				return err_set(err, ETIMEDOUT, ERR_INTERNAL,
					       "TLS handshake with %s: timed out", c->addr);
			if (w == -ECANCELED)
				return err_set(err, ECANCELED, ERR_INTERNAL,
					       "TLS handshake with %s: cancelled", c->addr);
			if (w < 0)
				return err_sys(err, -w, "TLS handshake with %s: poll", c->addr);
			continue;
		}
		char buf[256];
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK) {
			ERR_clear_error();
			return err_set(err, EPROTO, ERR_INTERNAL,
				       "TLS handshake with %s: server certificate verify failed: "
				       "%s (CA %s)",
				       c->addr, X509_verify_cert_error_string(v), opts->ca);
		}
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			return err_set(err, ECONNRESET, ERR_INTERNAL,
				       "TLS handshake with %s: connection closed by the server",
				       c->addr);
		return err_set(err, EPROTO, ERR_INTERNAL, "TLS handshake with %s: %s", c->addr,
			       tls_last_error(buf, sizeof buf));
	}

	if (!tls_alpn_is_h2(c->ssl))
		return err_set(err, EPROTO, ERR_INTERNAL,
			       "TLS handshake with %s: server did not select HTTP/2 (ALPN h2)",
			       c->addr);
	return 0;
}

static int h2_start(struct client *c, uint64_t deadline, struct err *err)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return err_set(err, ENOMEM, ERR_INTERNAL, "HTTP/2: out of memory");
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	int r = nghttp2_session_client_new(&c->h2, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (r != 0)
		return err_set(err, ENOMEM, ERR_INTERNAL, "HTTP/2: %s", nghttp2_strerror(r));

	const nghttp2_settings_entry settings[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, CLIENT_STREAM_WINDOW},
		{NGHTTP2_SETTINGS_MAX_FRAME_SIZE, CLIENT_MAX_FRAME},
	};
	r = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, ARRAY_SIZE(settings));
	if (r == 0)
		r = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
							  CLIENT_CONN_WINDOW);
	if (r != 0)
		return err_set(err, EPROTO, ERR_INTERNAL, "HTTP/2: %s", nghttp2_strerror(r));
	r = flush(c, deadline, err);
	if (r < 0)
		return r;

	/* In TLS 1.3 the server checks our certificate after our handshake
	 * ended; its verdict (an alert, or its SETTINGS) comes now. */
	while (!c->got_settings) {
		short events;
		r = pump(c, &events, err);
		if (r < 0)
			return r;
		if (r > 0) {
			r = flush(c, deadline, err);
			if (r < 0)
				return r;
			continue;
		}
		r = wait_fd(c, events, deadline);
		if (r == -ETIMEDOUT)
			return err_set(err, ETIMEDOUT, ERR_INTERNAL,
				       "HTTP/2 handshake with %s: timed out", c->addr);
		if (r == -ECANCELED)
			return err_set(err, ECANCELED, ERR_INTERNAL, "connect %s: cancelled",
				       c->addr);
		if (r < 0)
			return err_sys(err, -r, "HTTP/2 handshake with %s: poll", c->addr);
	}
	return 0;
}

struct client *client_connect(const struct client_opts *opts, struct err *err)
{
	struct client *c = xcalloc(1, sizeof *c);
	c->fd = -1;
	c->addr = xstrdup(opts->addr ? opts->addr : "");
	c->timeout_ms = opts->timeout_ms;
	c->cancel = opts->cancel;
	c->rbuf = xmalloc(CLIENT_READ_CHUNK);

	uint64_t budget = CLIENT_CONNECT_TIMEOUT_MS;
	if (opts->timeout_ms && opts->timeout_ms < budget)
		budget = opts->timeout_ms;
	uint64_t deadline = deadline_after(budget);

	_cleanup_free_ char *host = NULL;
	_cleanup_free_ char *port = NULL;
	if (client_addr(c->addr, &host, &port, err) < 0 || tls_setup(c, opts, err) < 0 ||
	    tcp_connect(c, host, port, deadline, err) < 0 ||
	    tls_handshake(c, opts, host, deadline, err) < 0 || h2_start(c, deadline, err) < 0) {
		client_free(c);
		return NULL;
	}
	return c;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	nghttp2_session_del(c->h2);
	SSL_free(c->ssl); /* frees the BIO */
	BIO_meth_free(c->bio_method);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->addr);
	free(c);
}

/* ---- calls --------------------------------------------------------------- */

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                          \
			NGHTTP2_NV_FLAG_NO_COPY_NAME                                               \
	}

static void call_free(struct call *call)
{
	grpc_decoder_free(&call->dec);
	free(call->req);
	free(call->resp);
	free(call->grpc_message);
}

/* Abandons the stream (RST_STREAM CANCEL); the connection stays usable. */
static void call_reset(struct client *c, struct call *call)
{
	c->call = NULL;
	if (!call->closed && !c->dead) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
					  NGHTTP2_CANCEL);
		/* Best effort: a connection that cannot take the reset is dead
		 * anyway and the next call says so. */
		flush(c, deadline_after(1000), NULL);
	}
}

/* Classifies a closed stream; see client.h for the return contract. */
static int call_result(struct client *c, struct call *call, struct client_status *st,
		       struct err *err)
{
	if (call->http_status == 0) {
		if (call->close_error == NGHTTP2_REFUSED_STREAM)
			return err_set(err, ECONNREFUSED, ERR_INTERNAL,
				       "%s refused the call (REFUSED_STREAM)%s", c->addr,
				       c->goaway ? "; it is shutting down" : "");
		if (call->close_error)
			return err_set(err, ECONNRESET, ERR_INTERNAL,
				       "%s reset the call before answering: %s", c->addr,
				       nghttp2_http2_strerror(call->close_error));
		return err_set(err, EPROTO, ERR_INTERNAL, "%s ended the call without a response",
			       c->addr);
	}
	if (call->http_status != 200)
		return err_set(err, EPROTO, ERR_INTERNAL, "server answered HTTP %d%s%s",
			       call->http_status, call->content_type[0] ? " with " : "",
			       call->content_type);
	if (!grpc_content_type_ok(call->content_type, strlen(call->content_type)))
		return err_set(err, EPROTO, ERR_INTERNAL,
			       "server answered content-type \"%s\", not application/grpc",
			       call->content_type);
	if (!call->have_grpc_status) {
		if (call->close_error)
			return err_set(err, ECONNRESET, ERR_INTERNAL, "%s reset the call: %s",
				       c->addr, nghttp2_http2_strerror(call->close_error));
		return err_set(err, EPROTO, ERR_INTERNAL,
			       "server ended the call without a grpc-status");
	}
	if (call->grpc_status == GRPC_OK) {
		if (!grpc_decoder_idle(&call->dec))
			return err_set(err, EPROTO, ERR_INTERNAL,
				       "server ended the call inside a message");
		if (call->unary && call->messages != 1)
			return err_set(err, EPROTO, ERR_INTERNAL,
				       "server answered OK without a response message");
	}
	st->code = call->grpc_status;
	snprintf(st->message, sizeof st->message, "%s",
		 call->grpc_message ? call->grpc_message : "");
	return 0;
}

static int call_run(struct client *c, const char *path, const uint8_t *req, size_t req_len,
		    struct call *call, struct client_status *st, struct err *err)
{
	st->code = GRPC_UNKNOWN;
	st->message[0] = '\0';
	grpc_decoder_init(&call->dec, GRPC_DEFAULT_MAX_MESSAGE);
	if (c->dead)
		return err_set(err, -c->dead, ERR_INTERNAL, "%s", c->dead_msg);
	if (req_len > GRPC_DEFAULT_MAX_MESSAGE)
		return err_set(err, EMSGSIZE, ERR_INVALID, "request of %zu bytes is too large",
			       req_len);

	uint64_t deadline = deadline_after(c->timeout_ms);
	char timeout[16] = "";
	if (c->timeout_ms)
		grpc_timeout_format(c->timeout_ms * 1000000, timeout, sizeof timeout);

	call->req = xmalloc(GRPC_PREFIX_LEN + req_len);
	grpc_prefix_encode(call->req, (uint32_t)req_len);
	if (req_len)
		memcpy(call->req + GRPC_PREFIX_LEN, req, req_len);
	call->req_len = GRPC_PREFIX_LEN + req_len;

	nghttp2_nv nva[] = {
		NV(":method", "POST"),
		NV(":scheme", "https"),
		NV(":path", path),
		NV(":authority", c->addr),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("user-agent", "rund-client/0.1"),
		NV("grpc-timeout", timeout),
	};
	nghttp2_data_provider dp = {.source.ptr = call, .read_callback = req_read};
	int32_t id = nghttp2_submit_request(c->h2, NULL, nva,
					    ARRAY_SIZE(nva) - (timeout[0] ? 0 : 1), &dp, call);
	if (id < 0) {
		if (id == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED)
			return conn_fail(c, err, ECONNRESET,
					 "%s is closing the connection (GOAWAY)", c->addr);
		return conn_fail(c, err, EPROTO, "HTTP/2: %s", nghttp2_strerror(id));
	}
	call->stream_id = id;
	c->call = call;

	int r = flush(c, deadline, err);
	/* The answer to a request just sent is not there yet: poll before
	 * the first read instead of reading into an EAGAIN. */
	bool wait_first = !SSL_has_pending(c->ssl);
	while (r == 0 && !call->closed && !call->stop) {
		if (cancelled(c)) {
			call_stop(call, ECANCELED, "cancelled");
			break;
		}
		short events = POLLIN;
		r = wait_first ? 0 : pump(c, &events, err);
		wait_first = false;
		if (r > 0) {
			r = flush(c, deadline, err);
			continue;
		}
		if (r < 0) {
			/* A call the dying connection managed to finish is not lost. */
			if (call->closed)
				r = 0;
			break;
		}
		if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
			r = conn_fail(c, err, ECONNRESET, "%s closed the connection (GOAWAY %s)",
				      c->addr, nghttp2_http2_strerror(c->goaway_error));
			break;
		}
		r = wait_fd(c, events, deadline);
		if (r == -ETIMEDOUT) {
			/* As gRPC does: the deadline is the client's to enforce. */
			call_reset(c, call);
			st->code = GRPC_DEADLINE_EXCEEDED;
			snprintf(st->message, sizeof st->message,
				 "deadline of %" PRIu64 " ms exceeded", c->timeout_ms);
			return 0;
		}
		if (r == -ECANCELED) {
			call_stop(call, ECANCELED, "cancelled");
			r = 0;
			break;
		}
		if (r < 0)
			r = conn_fail(c, err, -r, "poll: %s", strerror(-r));
	}
	if (r < 0) {
		c->call = NULL;
		return r;
	}
	if (call->stop) {
		call_reset(c, call);
		return err_set(err, -call->stop, ERR_INTERNAL, "%s", call->stop_msg);
	}
	c->call = NULL;
	return call_result(c, call, st, err);
}

int client_unary(struct client *c, const char *path, const uint8_t *req, size_t req_len,
		 uint8_t **resp, size_t *resp_len, struct client_status *st, struct err *err)
{
	struct call call = {.unary = true};
	*resp = NULL;
	*resp_len = 0;
	int r = call_run(c, path, req, req_len, &call, st, err);
	if (r == 0 && st->code == GRPC_OK) {
		*resp = steal_pointer(&call.resp);
		*resp_len = call.resp_len;
	}
	call_free(&call);
	return r;
}

int client_stream(struct client *c, const char *path, const uint8_t *req, size_t req_len,
		  client_message_fn on_message, void *ctx, struct client_status *st,
		  struct err *err)
{
	struct call call = {.on_message = on_message, .ctx = ctx};
	int r = call_run(c, path, req, req_len, &call, st, err);
	call_free(&call);
	return r;
}
