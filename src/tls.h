/* tls: rund's TLS policy (DESIGN §3) for both ends, and the peer identity.
 * TLS 1.3 only, mutual authentication against one CA, ALPN "h2" required,
 * key-exchange groups X25519:P-521:P-384:P-256 unless narrowed. */
#ifndef RUND_TLS_H
#define RUND_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "err.h"
#include "san.h"

#define TLS_DEFAULT_GROUPS "X25519:P-521:P-384:P-256"

struct tls_opts {
	const char *ca;	    /* PEM CA bundle the peer's certificate must chain to */
	const char *cert;   /* our PEM certificate (chain) */
	const char *key;    /* our PEM private key */
	const char *groups; /* NULL = TLS_DEFAULT_GROUPS */
};

/* Server context: requires and verifies a client certificate, which must be
 * an end-entity certificate fit for client authentication (a CA:TRUE one is
 * refused), selects "h2" or aborts the handshake (no_application_protocol). NULL with err set
 * naming the file or setting at fault. */
SSL_CTX *tls_server_ctx_new(const struct tls_opts *opts, struct err *err);

/* Client context with the same policy, offering ALPN "h2". */
SSL_CTX *tls_client_ctx_new(const struct tls_opts *opts, struct err *err);

/* Prepares a client SSL for `host` (a DNS name or an IP literal): SNI for
 * names, and certificate verification of the name or IP. 0 or -errno. */
int tls_client_set_host(SSL *ssl, const char *host, struct err *err);

/* Adds the DNS, URI, IP and email SANs of the verified peer certificate to
 * out. Returns 0 (possibly adding nothing) or -errno. */
int tls_peer_sans(SSL *ssl, struct san_set *out, struct err *err);

/* The verified peer certificate's serial number in upper-case hex into
 * buf ("" when there is none or it does not fit). */
#define TLS_SERIAL_MAX 48
void tls_peer_serial(SSL *ssl, char *buf, size_t cap);

/* Same for an X509 (exposed for unit tests). */
int tls_cert_sans(X509 *cert, struct san_set *out, struct err *err);

/* True when the handshake settled on ALPN "h2". Both ends check it after
 * the handshake: a peer that negotiated nothing speaks no HTTP/2. */
bool tls_alpn_is_h2(const SSL *ssl);

/* A source/sink BIO method for moving TLS records over a socket with the
 * caller's own write and read (each finds its state with BIO_get_data).
 * Flush and dup succeed, other controls answer 0; new BIOs start
 * initialised. NULL when OpenSSL is out of memory or BIO type indexes.
 * Free with BIO_meth_free() after every BIO made from it is gone. */
BIO_METHOD *tls_socket_bio_method(const char *name, int (*write)(BIO *, const char *, int),
				  int (*read)(BIO *, char *, int));

/* The repository's example PKI (tls/gen.sh) names its CA with the
 * organization "rund example"; its private key is public. Returns 1 when
 * a certificate in the PEM file ca has that subject, 0 when none does,
 * or -errno with err naming the file. */
#define TLS_EXAMPLE_CA_ORG "rund example"
int tls_ca_is_example(const char *ca, struct err *err);

/* Re-reads opts' CA, certificate and key into a server context made by
 * tls_server_ctx_new, for connections accepted from now on (established
 * ones keep theirs). Everything is loaded and checked before ctx changes:
 * on failure (-errno, err naming the file) ctx is as it was. */
int tls_server_ctx_reload(SSL_CTX *ctx, const struct tls_opts *opts, struct err *err);

/* One line describing the latest OpenSSL error queue entry, for messages
 * ("certificate verify failed"); clears the queue. */
const char *tls_last_error(char *buf, size_t cap);

#endif
