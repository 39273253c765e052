/* tls: the one place that knows rund's TLS policy (DESIGN §3). Both ends get
 * TLS 1.3 only, the same key-exchange groups and verification against one
 * CA; the server also insists on a client certificate and on ALPN "h2". The
 * peer's identity leaves this module as a san_set, nothing richer. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util.h"

/* ALPN wire format: one length byte, then the protocol name. */
static const unsigned char alpn_h2[] = {2, 'h', '2'};

/* Deep enough for a root, an intermediate or two and the leaf; anything
 * longer is not a chain this daemon was configured for. */
#define TLS_VERIFY_DEPTH 5

static void ctx_freep(SSL_CTX **ctx)
{
	SSL_CTX_free(*ctx);
}

/* Each setting failure below reports the OpenSSL reason with the file or
 * value at fault, so "rund serve" start-up errors say what to fix. */
static int tls_fail(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int tls_fail(struct err *err, const char *fmt, ...)
{
	char what[ERR_MSG_MAX], why[256];
	va_list ap;

	tls_last_error(why, sizeof why);
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return err_set(err, EINVAL, ERR_INVALID, "%s: %s", what, why);
}

/* OpenSSL's own message for an unreadable file is a chain of "system lib" /
 * "BIO lib" entries; opening the file first gives the plain errno. */
static int check_readable(const char *what, const char *path, struct err *err)
{
	if (!path || !*path)
		return err_set(err, EINVAL, ERR_INVALID, "%s: no file given", what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "%s %s", what, path);
	close(fd);
	return 0;
}

static int load_ca(SSL_CTX *ctx, const char *ca, struct err *err)
{
	int r = check_readable("CA file", ca, err);
	if (r < 0)
		return r;
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		return tls_fail(err, "CA file %s", ca);
	return 0;
}

static int load_cert_key(SSL_CTX *ctx, const char *cert, const char *key, struct err *err)
{
	int r = check_readable("certificate", cert, err);
	if (r < 0)
		return r;
	r = check_readable("private key", key, err);
	if (r < 0)
		return r;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return tls_fail(err, "certificate %s", cert);
	/* Loading by file name means the key's bytes only ever sit in
	 * OpenSSL's own buffers, never in one of ours that would need wiping. */
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* A key that parses but belongs to another certificate is the
		 * likely mix-up; say so with both names. */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			return tls_fail(err, "private key %s does not match certificate %s", key,
					cert);
		return tls_fail(err, "private key %s", key);
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		return tls_fail(err, "private key %s does not match certificate %s", key, cert);
	return 0;
}

/* Settings shared by both ends. */
static SSL_CTX *ctx_new_common(const SSL_METHOD *method, const struct tls_opts *opts,
			       struct err *err)
{
	_cleanup_(ctx_freep) SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		tls_fail(err, "create TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		tls_fail(err, "restrict to TLS 1.3");
		return NULL;
	}
	const char *groups = opts->groups ? opts->groups : TLS_DEFAULT_GROUPS;
	if (!*groups) {
		err_set(err, EINVAL, ERR_INVALID, "TLS groups: empty list");
		return NULL;
	}
	if (SSL_CTX_set1_groups_list(ctx, groups) != 1) {
		tls_fail(err, "TLS groups \"%s\"", groups);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Send our certificate with the chain from its file, as given. Without
	 * this OpenSSL rebuilds the chain against the CA store on every
	 * handshake, verifying our own certificate's signature: a P-521
	 * verification per handshake on each side for nothing. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	if (load_ca(ctx, opts->ca, err) < 0)
		return NULL;
	return steal_pointer(&ctx);
}

/* Finds "h2" in an ALPN protocol list (wire format, without the outer
 * 2-byte length). Returns a pointer to the name inside list, or NULL when
 * absent or when the list is malformed. */
static const unsigned char *alpn_find_h2(const unsigned char *list, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t n = list[i];
		if (n == 0 || n > len - i - 1)
			return NULL;
		if (n == sizeof alpn_h2 - 1 && memcmp(list + i + 1, alpn_h2 + 1, n) == 0)
			return list + i + 1;
		i += 1 + n;
	}
	return NULL;
}

/* The ALPN select callback only runs when the client offers ALPN at all, so
 * a client offering none would get a session without it; refuse that here,
 * before any key exchange. */
static int server_client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const unsigned char *ext;
	size_t len;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
				      &len) != 1 ||
	    len < 2 || (((size_t)ext[0] << 8) | ext[1]) != len - 2 ||
	    !alpn_find_h2(ext + 2, len - 2)) {
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int server_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
				 const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *h2 = alpn_find_h2(in, inlen);
	if (!h2)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = h2;
	*outlen = (unsigned char)(sizeof alpn_h2 - 1);
	return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL's SSL-client purpose check passes a CA certificate that carries
 * the client usages, and a CA key should sign certificates, not connect:
 * the peer's own certificate must be an end-entity client certificate. */
static int server_verify_cb(int ok, X509_STORE_CTX *store)
{
	if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
		return ok;
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	if (X509_check_ca(cert) != 0 || X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) != 1) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	return 1;
}

SSL_CTX *tls_server_ctx_new(const struct tls_opts *opts, struct err *err)
{
	_cleanup_(ctx_freep) SSL_CTX *ctx = ctx_new_common(TLS_server_method(), opts, err);
	if (!ctx)
		return NULL;
	if (load_cert_key(ctx, opts->cert, opts->key, err) < 0)
		return NULL;

	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(opts->ca);
	if (!names) {
		tls_fail(err, "CA file %s: no CA names", opts->ca);
		return NULL;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   server_verify_cb);

	/* No resumption: every connection presents and has verified a client
	 * certificate now, so an expired or replaced certificate never rides
	 * on an old ticket, and the daemon keeps no per-client session state. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

	SSL_CTX_set_client_hello_cb(ctx, server_client_hello_cb, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, server_alpn_select_cb, NULL);
	return steal_pointer(&ctx);
}

int tls_server_ctx_reload(SSL_CTX *ctx, const struct tls_opts *opts, struct err *err)
{
	_cleanup_(ctx_freep) SSL_CTX *fresh = tls_server_ctx_new(opts, err);
	if (!fresh)
		return err->code ? -err->code : -EINVAL;
	STACK_OF(X509) *chain = NULL;
	SSL_CTX_get0_chain_certs(fresh, &chain);
	STACK_OF(X509_NAME) *names = SSL_dup_CA_list(SSL_CTX_get_client_CA_list(fresh));
	if (!names)
		return tls_fail(err, "copy the CA names of %s", opts->ca);
	/* Past this point only allocation can fail. Replacing the
	 * certificate drops a key that does not match it; the new key
	 * follows at once. */
	if (SSL_CTX_use_certificate(ctx, SSL_CTX_get0_certificate(fresh)) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, SSL_CTX_get0_privatekey(fresh)) != 1 ||
	    SSL_CTX_set1_chain(ctx, chain) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return tls_fail(err, "install the reloaded certificate %s", opts->cert);
	}
	SSL_CTX_set1_cert_store(ctx, SSL_CTX_get_cert_store(fresh));
	SSL_CTX_set_client_CA_list(ctx, names);
	ERR_clear_error();
	return 0;
}

int tls_ca_is_example(const char *ca, struct err *err)
{
	int r = check_readable("CA file", ca, err);
	if (r < 0)
		return r;
	BIO *bio = BIO_new_file(ca, "r");
	if (!bio)
		return tls_fail(err, "CA file %s", ca);
	int found = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		char org[128];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName, org,
					      sizeof org) > 0 &&
		    strcmp(org, TLS_EXAMPLE_CA_ORG) == 0)
			found = 1;
		X509_free(x);
	}
	/* The loop ends on "no start line" at the end of the file. */
	ERR_clear_error();
	BIO_free(bio);
	return found;
}

SSL_CTX *tls_client_ctx_new(const struct tls_opts *opts, struct err *err)
{
	_cleanup_(ctx_freep) SSL_CTX *ctx = ctx_new_common(TLS_client_method(), opts, err);
	if (!ctx)
		return NULL;
	/* A client without a certificate is only useful to tests that check
	 * the server refuses it; both or neither. */
	if (opts->cert || opts->key) {
		if (load_cert_key(ctx, opts->cert, opts->key, err) < 0)
			return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* SSL_CTX_set_alpn_protos returns 0 on success. */
	if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof alpn_h2) != 0) {
		tls_fail(err, "set ALPN");
		return NULL;
	}
	return steal_pointer(&ctx);
}

int tls_client_set_host(SSL *ssl, const char *host, struct err *err)
{
	if (!host || !*host)
		return err_set(err, EINVAL, ERR_INVALID, "empty server host name");

	/* "[::1]" as written in an address; a zone ("fe80::1%eth0") selects an
	 * interface and is not part of the certificate's address. */
	size_t len = strlen(host);
	_cleanup_free_ char *ip = NULL;
	if (host[0] == '[') {
		if (len < 3 || host[len - 1] != ']')
			return err_set(err, EINVAL, ERR_INVALID, "bad server address \"%s\"", host);
		ip = xstrndup(host + 1, len - 2);
	} else {
		ip = xstrdup(host);
	}
	char *zone = strchr(ip, '%');
	if (zone)
		*zone = '\0';

	unsigned char addr[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1) {
		/* RFC 6066: SNI carries host names only, never addresses. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1)
			return tls_fail(err, "server address %s", ip);
		return 0;
	}
	if (host[0] == '[' || zone)
		return err_set(err, EINVAL, ERR_INVALID, "bad server address \"%s\"", host);

	if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
		return tls_fail(err, "server name %s", host);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return 0;
}

/* IA5String SANs become strings compared byte for byte; one with a NUL, a
 * control character or a space could pass for a different name when printed
 * or truncated, so such a name identifies nobody and is left out. */
static char *ia5_text(const ASN1_IA5STRING *s)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s);

	if (!p || n <= 0)
		return NULL;
	for (int i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return NULL;
	return xstrndup((const char *)p, (size_t)n);
}

static void add_prefixed(struct san_set *out, const char *prefix, const char *text)
{
	_cleanup_free_ char *s = xasprintf("%s:%s", prefix, text);
	san_set_add(out, s);
}

int tls_cert_sans(X509 *cert, struct san_set *out, struct err *err)
{
	if (!cert)
		return err_set(err, EINVAL, ERR_INVALID, "no certificate");

	int crit = 0;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!names) {
		if (crit == -1)
			return 0; /* no SAN extension */
		ERR_clear_error();
		return err_set(err, EINVAL, ERR_INVALID,
			       crit == -2 ? "certificate has more than one subjectAltName extension"
					  : "certificate subjectAltName extension is malformed");
	}

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		_cleanup_free_ char *text = NULL;

		switch (gn->type) {
		case GEN_DNS:
			text = ia5_text(gn->d.dNSName);
			if (text)
				add_prefixed(out, "DNS", text);
			break;
		case GEN_URI:
			text = ia5_text(gn->d.uniformResourceIdentifier);
			if (text)
				add_prefixed(out, "URI", text);
			break;
		case GEN_EMAIL:
			text = ia5_text(gn->d.rfc822Name);
			if (text)
				add_prefixed(out, "email", text);
			break;
		case GEN_IPADD: {
			const unsigned char *p = ASN1_STRING_get0_data(gn->d.iPAddress);
			int n = ASN1_STRING_length(gn->d.iPAddress);
			char buf[INET6_ADDRSTRLEN];
			/* Other lengths are name-constraint address/mask pairs. */
			int af = n == 4 ? AF_INET : n == 16 ? AF_INET6 : AF_UNSPEC;
			if (af != AF_UNSPEC && inet_ntop(af, p, buf, sizeof buf))
				add_prefixed(out, "IP", buf);
			break;
		}
		default:
			break; /* otherName, directoryName, ...: not identities here */
		}
	}
	GENERAL_NAMES_free(names);
	return 0;
}

int tls_peer_sans(SSL *ssl, struct san_set *out, struct err *err)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (!cert)
		return err_set(err, EPERM, ERR_PERMISSION, "peer presented no certificate");
	long v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK)
		return err_set(err, EPERM, ERR_PERMISSION, "peer certificate not verified: %s",
			       X509_verify_cert_error_string(v));
	return tls_cert_sans(cert, out, err);
}

void tls_peer_serial(SSL *ssl, char *buf, size_t cap)
{
	buf[0] = '\0';
	X509 *cert = SSL_get0_peer_certificate(ssl);
	BIGNUM *bn = cert ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex && strlen(hex) < cap)
		memcpy(buf, hex, strlen(hex) + 1);
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
}

bool tls_alpn_is_h2(const SSL *ssl)
{
	const unsigned char *alpn = NULL;
	unsigned len = 0;
	SSL_get0_alpn_selected(ssl, &alpn, &len);
	return len == alpn_h2[0] && memcmp(alpn, alpn_h2 + 1, len) == 0;
}

static long socket_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	/* SSL flushes after each record and may dup the BIO; nothing to do
	 * for either. The rest (pending bytes, EOF) has no answer here. */
	return cmd == BIO_CTRL_FLUSH || cmd == BIO_CTRL_DUP;
}

static int socket_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

BIO_METHOD *tls_socket_bio_method(const char *name, int (*write)(BIO *, const char *, int),
				  int (*read)(BIO *, char *, int))
{
	int index = BIO_get_new_index();
	if (index < 0)
		return NULL;
	BIO_METHOD *m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, name);
	if (m && BIO_meth_set_write(m, write) == 1 && BIO_meth_set_read(m, read) == 1 &&
	    BIO_meth_set_ctrl(m, socket_bio_ctrl) == 1 &&
	    BIO_meth_set_create(m, socket_bio_create) == 1)
		return m;
	BIO_meth_free(m);
	return NULL;
}

const char *tls_last_error(char *buf, size_t cap)
{
	unsigned long code = 0, e;
	const char *d;
	int f;
	/* The queue entry's data may be reused once popped: copy it now. */
	char data[256] = "";

	if (cap == 0)
		return buf;
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &d, &f)) != 0) {
		code = e;
		snprintf(data, sizeof data, "%s", d && (f & ERR_TXT_STRING) ? d : "");
	}
	if (code == 0) {
		snprintf(buf, cap, "unknown TLS error");
		return buf;
	}
	const char *reason = ERR_reason_error_string(code);
	char num[32];
	if (!reason) {
		snprintf(num, sizeof num, "error %#lx", code);
		reason = num;
	}
	if (*data)
		snprintf(buf, cap, "%s (%s)", reason, data);
	else
		snprintf(buf, cap, "%s", reason);
	return buf;
}
