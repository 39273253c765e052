/* Unit tests for tls.c: context set-up errors, SAN extraction, and the
 * handshake policy, driven in memory over a BIO pair with the example PKI
 * in tls/ (TLS_DIR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define F(name) TLS_DIR "/" name

static X509 *load_x509(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		fail_msg("open %s: %s", path, strerror(errno));
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		fail_msg("parse %s", path);
	return x;
}

static void assert_sans(const struct san_set *s, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < s->n; i++)
		print_message("# got %s\n", s->names[i]);
	assert_int_equal(s->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(s->names[i], want[i]);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static SSL_CTX *server_ctx(const char *groups)
{
	struct err err = {0};
	struct tls_opts o = {F("ca.pem"), F("server.pem"), F("server-key.pem"), groups};
	SSL_CTX *ctx = tls_server_ctx_new(&o, &err);
	if (!ctx)
		fail_msg("server ctx: %s", err.msg);
	return ctx;
}

static SSL_CTX *client_ctx(const char *who, const char *groups)
{
	struct err err = {0};
	char cert[512] = "", key[512] = "";
	if (who) {
		snprintf(cert, sizeof cert, TLS_DIR "/%s.pem", who);
		snprintf(key, sizeof key, TLS_DIR "/%s-key.pem", who);
	}
	struct tls_opts o = {F("ca.pem"), who ? cert : NULL, who ? key : NULL, groups};
	SSL_CTX *ctx = tls_client_ctx_new(&o, &err);
	if (!ctx)
		fail_msg("client ctx: %s", err.msg);
	return ctx;
}

/* ---- context creation ---- */

static void test_ctx_ok(void **state)
{
	SSL_CTX *s = server_ctx(NULL);
	SSL_CTX *c = client_ctx("client", NULL);
	SSL_CTX *anon = client_ctx(NULL, NULL);

	assert_int_equal(SSL_CTX_get_min_proto_version(s), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(s), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_min_proto_version(c), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(s),
			 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_int_equal(SSL_CTX_get_verify_mode(c), SSL_VERIFY_PEER);
	assert_int_equal(SSL_CTX_get_num_tickets(s), 0);
	assert_true(SSL_CTX_get_options(s) & SSL_OP_NO_TICKET);
	/* The server advertises the CA it accepts client certificates from. */
	assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(s)), 1);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	SSL_CTX_free(anon);
}

static void expect_fail_server(struct tls_opts o, int code, const char *const *needles)
{
	struct err err = {0};
	SSL_CTX *ctx = tls_server_ctx_new(&o, &err);
	assert_null(ctx);
	print_message("# %s\n", err.msg);
	if (code)
		assert_int_equal(err.code, code);
	else
		assert_int_not_equal(err.code, 0);
	for (; *needles; needles++)
		assert_contains(err.msg, *needles);
	/* Nothing left behind for the next caller to misreport. */
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_missing_files(void **state)
{
	const char *nope = F("does-not-exist.pem");

	expect_fail_server((struct tls_opts){nope, F("server.pem"), F("server-key.pem"), NULL},
			   ENOENT, (const char *const[]){"CA file", nope, NULL});
	expect_fail_server((struct tls_opts){F("ca.pem"), nope, F("server-key.pem"), NULL}, ENOENT,
			   (const char *const[]){"certificate", nope, NULL});
	expect_fail_server((struct tls_opts){F("ca.pem"), F("server.pem"), nope, NULL}, ENOENT,
			   (const char *const[]){"private key", nope, NULL});
	expect_fail_server((struct tls_opts){F("ca.pem"), NULL, F("server-key.pem"), NULL}, EINVAL,
			   (const char *const[]){"certificate", NULL});

	struct err err = {0};
	struct tls_opts o = {F("ca.pem"), nope, F("client-key.pem"), NULL};
	assert_null(tls_client_ctx_new(&o, &err));
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, nope);
}

static void test_key_mismatch(void **state)
{
	expect_fail_server(
		(struct tls_opts){F("ca.pem"), F("server.pem"), F("client-key.pem"), NULL}, EINVAL,
		(const char *const[]){"does not match", F("client-key.pem"), F("server.pem"),
				      NULL});
}

static void test_not_pem(void **state)
{
	/* gen.sh is text but no certificate or key. */
	expect_fail_server((struct tls_opts){F("ca.pem"), F("gen.sh"), F("server-key.pem"), NULL},
			   EINVAL, (const char *const[]){"certificate", F("gen.sh"), NULL});
	expect_fail_server((struct tls_opts){F("ca.pem"), F("server.pem"), F("gen.sh"), NULL},
			   EINVAL, (const char *const[]){"private key", F("gen.sh"), NULL});
	expect_fail_server(
		(struct tls_opts){F("gen.sh"), F("server.pem"), F("server-key.pem"), NULL}, EINVAL,
		(const char *const[]){"CA file", F("gen.sh"), NULL});
}

static void test_bad_groups(void **state)
{
	expect_fail_server((struct tls_opts){F("ca.pem"), F("server.pem"), F("server-key.pem"),
					     "X25519:P-999"},
			   EINVAL, (const char *const[]){"X25519:P-999", NULL});
	expect_fail_server((struct tls_opts){F("ca.pem"), F("server.pem"), F("server-key.pem"), ""},
			   EINVAL, (const char *const[]){"groups", NULL});
}

/* ---- SAN extraction ---- */

static void check_file_sans(const char *path, const char *const *want)
{
	struct san_set s = {0};
	struct err err = {0};
	X509 *x = load_x509(path);
	assert_int_equal(tls_cert_sans(x, &s, &err), 0);
	assert_sans(&s, want);
	san_set_free(&s);
	X509_free(x);
}

static void test_example_sans(void **state)
{
	check_file_sans(F("server.pem"),
			(const char *const[]){"DNS:localhost", "IP:127.0.0.1", "IP:::1", NULL});
	check_file_sans(F("client.pem"),
			(const char *const[]){"DNS:client.rund.test",
					      "URI:spiffe://rund.test/team-a", NULL});
	check_file_sans(F("client2.pem"),
			(const char *const[]){"DNS:client2.rund.test",
					      "URI:spiffe://rund.test/team-a", NULL});
	check_file_sans(F("client3.pem"),
			(const char *const[]){"DNS:client3.rund.test",
					      "URI:spiffe://rund.test/team-b", NULL});
	/* The CA has no SAN extension at all: success, nothing added. */
	check_file_sans(F("ca.pem"), (const char *const[]){NULL});
}

/* A bare certificate carrying only the given SAN extension; tls_cert_sans
 * does not need it signed. */
static X509 *cert_with_sans(GENERAL_NAMES *names)
{
	X509 *x = X509_new();
	assert_non_null(x);
	if (names)
		assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0), 1);
	return x;
}

static GENERAL_NAMES *names_from_conf(const char *conf)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, conf);
	if (!ext)
		fail_msg("bad SAN conf %s", conf);
	GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
	X509_EXTENSION_free(ext);
	assert_non_null(names);
	return names;
}

static void test_sans_formatting(void **state)
{
	GENERAL_NAMES *names = names_from_conf(
		"IP:2001:0db8:0000:0000:0000:0000:0000:0001, IP:fe80::1:2, IP:::ffff:10.1.2.3,"
		"IP:10.0.0.255, IP:0:0:0:0:0:0:0:0, email:ops@rund.test, DNS:Mixed.Case.TEST,"
		"URI:https://rund.test/a?b=c, RID:1.2.3.4");
	X509 *x = cert_with_sans(names);
	struct san_set s = {0};
	struct err err = {0};

	assert_int_equal(tls_cert_sans(x, &s, &err), 0);
	assert_sans(&s, (const char *const[]){"DNS:mixed.case.test", "IP:10.0.0.255",
					      "IP:2001:db8::1", "IP:::", "IP:::ffff:10.1.2.3",
					      "IP:fe80::1:2", "URI:https://rund.test/a?b=c",
					      "email:ops@rund.test", NULL});
	/* Adding to a non-empty set keeps what was there. */
	assert_int_equal(tls_cert_sans(x, &s, &err), 0);
	assert_int_equal(s.n, 8);
	san_set_free(&s);
	X509_free(x);
	GENERAL_NAMES_free(names);
}

static GENERAL_NAME *raw_name(int type, const void *data, int len)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *s =
		ASN1_STRING_type_new(type == GEN_IPADD ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING);
	assert_non_null(gn);
	assert_non_null(s);
	assert_int_equal(ASN1_STRING_set(s, data, len), 1);
	GENERAL_NAME_set0_value(gn, type, s);
	return gn;
}

/* Names that could be mistaken for another identity are dropped, not
 * truncated or passed through. */
static void test_sans_hostile(void **state)
{
	static const unsigned char mask[8] = {10, 0, 0, 0, 255, 0, 0, 0};
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	sk_GENERAL_NAME_push(names, raw_name(GEN_DNS, "client.rund.test\0.evil", 22));
	sk_GENERAL_NAME_push(names, raw_name(GEN_DNS, "a b.test", 8));
	sk_GENERAL_NAME_push(names, raw_name(GEN_URI, "spiffe://x\n", 11));
	sk_GENERAL_NAME_push(names, raw_name(GEN_EMAIL, "\xc3\xa9@x.test", 8));
	sk_GENERAL_NAME_push(names, raw_name(GEN_DNS, "", 0));
	sk_GENERAL_NAME_push(names, raw_name(GEN_IPADD, mask, sizeof mask));
	sk_GENERAL_NAME_push(names, raw_name(GEN_IPADD, mask, 3));
	sk_GENERAL_NAME_push(names, raw_name(GEN_DNS, "ok.test", 7));
	X509 *x = cert_with_sans(names);
	struct san_set s = {0};
	struct err err = {0};

	assert_int_equal(tls_cert_sans(x, &s, &err), 0);
	assert_sans(&s, (const char *const[]){"DNS:ok.test", NULL});
	san_set_free(&s);
	X509_free(x);
	GENERAL_NAMES_free(names);

	assert_int_equal(tls_cert_sans(NULL, &s, &err), -EINVAL);
}

/* ---- handshakes in memory ---- */

struct conn {
	SSL_CTX *sctx, *cctx;
	SSL *s, *c;
	bool s_ok, c_ok;
	bool s_failed, c_failed;
	char s_why[256], c_why[256];
};

static void conn_init(struct conn *k, SSL_CTX *sctx, SSL_CTX *cctx, const char *host)
{
	BIO *bc, *bs;
	memset(k, 0, sizeof *k);
	k->sctx = sctx;
	k->cctx = cctx;
	k->s = SSL_new(sctx);
	k->c = SSL_new(cctx);
	assert_non_null(k->s);
	assert_non_null(k->c);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(k->c, bc, bc);
	SSL_set_bio(k->s, bs, bs);
	SSL_set_connect_state(k->c);
	SSL_set_accept_state(k->s);
	if (host) {
		struct err err = {0};
		if (tls_client_set_host(k->c, host, &err) < 0)
			fail_msg("set host %s: %s", host, err.msg);
	}
}

static void step(SSL *ssl, bool *ok, bool *failed, char *why)
{
	if (*ok || *failed)
		return;
	int r = SSL_do_handshake(ssl);
	if (r == 1) {
		*ok = true;
		return;
	}
	int e = SSL_get_error(ssl, r);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
		*failed = true;
		tls_last_error(why, 256);
	}
}

/* Drives both ends until each has finished or failed. In TLS 1.3 the client
 * finishes first; a server refusing its certificate only shows on the
 * client's next read, which this also performs. */
static void conn_run(struct conn *k)
{
	for (int i = 0; i < 20 && !((k->s_ok || k->s_failed) && (k->c_ok || k->c_failed)); i++) {
		step(k->c, &k->c_ok, &k->c_failed, k->c_why);
		step(k->s, &k->s_ok, &k->s_failed, k->s_why);
	}
	if (k->c_ok && k->s_failed) {
		char b;
		int r = SSL_read(k->c, &b, 1);
		assert_true(r <= 0);
		k->c_ok = false;
		k->c_failed = true;
		tls_last_error(k->c_why, sizeof k->c_why);
	}
	print_message("# client %s %s; server %s %s\n", k->c_ok ? "ok" : "FAILED", k->c_why,
		      k->s_ok ? "ok" : "FAILED", k->s_why);
	ERR_clear_error();
}

static void conn_free(struct conn *k)
{
	SSL_free(k->c);
	SSL_free(k->s);
	SSL_CTX_free(k->cctx);
	SSL_CTX_free(k->sctx);
}

static void assert_handshake_ok(struct conn *k)
{
	assert_true(k->c_ok);
	assert_true(k->s_ok);
	assert_int_equal(SSL_version(k->s), TLS1_3_VERSION);
	const unsigned char *p;
	unsigned int n;
	SSL_get0_alpn_selected(k->s, &p, &n);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "h2", 2);
	SSL_get0_alpn_selected(k->c, &p, &n);
	assert_int_equal(n, 2);
}

static void test_handshake_ok_peer_sans(void **state)
{
	static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]", "::1", "LOCALHOST"};
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		struct conn k;
		conn_init(&k, server_ctx(NULL), client_ctx(i % 2 ? "client2" : "client", NULL),
			  hosts[i]);
		conn_run(&k);
		assert_handshake_ok(&k);

		struct san_set s = {0};
		struct err err = {0};
		assert_int_equal(tls_peer_sans(k.s, &s, &err), 0);
		assert_sans(&s,
			    i % 2 ? (const char *const[]){"DNS:client2.rund.test",
							  "URI:spiffe://rund.test/team-a", NULL}
				  : (const char *const[]){"DNS:client.rund.test",
							  "URI:spiffe://rund.test/team-a", NULL});
		san_set_free(&s);
		/* And the client sees the server's. */
		assert_int_equal(tls_peer_sans(k.c, &s, &err), 0);
		assert_int_equal(s.n, 3);
		san_set_free(&s);
		conn_free(&k);
	}
}

static void test_wrong_server_name(void **state)
{
	static const char *const hosts[] = {"client.rund.test", "127.0.0.2", "[::2]", "local"};
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		struct conn k;
		conn_init(&k, server_ctx(NULL), client_ctx("client", NULL), hosts[i]);
		conn_run(&k);
		assert_true(k.c_failed);
		assert_false(k.s_ok);
		assert_int_not_equal(SSL_get_verify_result(k.c), X509_V_OK);
		conn_free(&k);
	}
}

static void test_set_host_bad(void **state)
{
	SSL_CTX *c = client_ctx("client", NULL);
	SSL *ssl = SSL_new(c);
	struct err err = {0};

	assert_int_equal(tls_client_set_host(ssl, "", &err), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "[::1", &err), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "[localhost]", &err), -EINVAL);
	assert_contains(err.msg, "[localhost]");
	/* A name sets SNI; an address must not. */
	assert_int_equal(tls_client_set_host(ssl, "localhost", &err), 0);
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "localhost");
	SSL_free(ssl);
	ssl = SSL_new(c);
	assert_int_equal(tls_client_set_host(ssl, "[fe80::1%lo]", &err), 0);
	assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	SSL_free(ssl);
	SSL_CTX_free(c);
}

static void test_no_client_cert(void **state)
{
	struct conn k;
	conn_init(&k, server_ctx(NULL), client_ctx(NULL, NULL), "localhost");
	conn_run(&k);
	assert_true(k.s_failed);
	assert_true(k.c_failed);
	assert_contains(k.s_why, "certificate");
	conn_free(&k);
}

static void test_untrusted_client_cert(void **state)
{
	/* The server certificate is signed by the CA but is no client
	 * certificate (serverAuth only): the purpose check refuses it. */
	struct err err = {0};
	struct tls_opts o = {F("ca.pem"), F("server.pem"), F("server-key.pem"), NULL};
	SSL_CTX *c = tls_client_ctx_new(&o, &err);
	assert_non_null(c);
	struct conn k;
	conn_init(&k, server_ctx(NULL), c, "localhost");
	conn_run(&k);
	assert_true(k.s_failed);
	assert_int_equal(SSL_get_verify_result(k.s), X509_V_ERR_INVALID_PURPOSE);
	conn_free(&k);
}

/* A certificate from the trusted CA with clientAuth usage, but CA:TRUE: a
 * CA key must not log in as a client (OpenSSL's purpose check alone lets
 * it pass). */
static void test_ca_client_cert(void **state)
{
	struct err err = {0};
	struct tls_opts o = {F("ca.pem"), FIXTURES "/ca-true-client.pem",
			     FIXTURES "/ca-true-client-key.pem", NULL};
	SSL_CTX *c = tls_client_ctx_new(&o, &err);
	assert_non_null(c);
	struct conn k;
	conn_init(&k, server_ctx(NULL), c, "localhost");
	conn_run(&k);
	assert_true(k.s_failed);
	assert_true(k.c_failed);
	assert_int_equal(SSL_get_verify_result(k.s), X509_V_ERR_INVALID_PURPOSE);
	conn_free(&k);
}

/* A client context built without our policy's ALPN. */
static SSL_CTX *client_ctx_alpn(const unsigned char *alpn, size_t len)
{
	SSL_CTX *c = client_ctx("client", NULL);
	if (alpn)
		assert_int_equal(SSL_CTX_set_alpn_protos(c, alpn, (unsigned int)len), 0);
	else
		assert_int_equal(SSL_CTX_set_alpn_protos(c, NULL, 0), 0);
	return c;
}

static void test_alpn(void **state)
{
	static const unsigned char http11[] = "\x08http/1.1";
	static const unsigned char several[] = "\x08http/1.1\x03h2c\x02h2";
	struct conn k;

	conn_init(&k, server_ctx(NULL), client_ctx_alpn(NULL, 0), "localhost");
	conn_run(&k);
	assert_true(k.s_failed);
	assert_true(k.c_failed);
	assert_contains(k.c_why, "no application protocol");
	conn_free(&k);

	conn_init(&k, server_ctx(NULL), client_ctx_alpn(http11, sizeof http11 - 1), "localhost");
	conn_run(&k);
	assert_true(k.s_failed);
	assert_true(k.c_failed);
	assert_contains(k.c_why, "no application protocol");
	conn_free(&k);

	conn_init(&k, server_ctx(NULL), client_ctx_alpn(several, sizeof several - 1), "localhost");
	conn_run(&k);
	assert_handshake_ok(&k);
	conn_free(&k);
}

static void test_groups(void **state)
{
	static const struct {
		const char *server, *client;
		int nid; /* 0: handshake must fail */
	} cases[] = {
		{NULL, "X25519", NID_X25519},
		{NULL, "P-521", NID_secp521r1},
		{NULL, "P-384", NID_secp384r1},
		{NULL, "P-256", NID_X9_62_prime256v1},
		{NULL, "P-256:X25519", NID_X9_62_prime256v1},
		{"X25519:P-521", "P-521", NID_secp521r1},
		{"X25519:P-521", "P-256", 0},
		{"X25519:P-521", "P-384:P-256", 0},
		{NULL, "ffdhe2048", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conn k;
		conn_init(&k, server_ctx(cases[i].server), client_ctx("client", cases[i].client),
			  "localhost");
		conn_run(&k);
		print_message("# server %s client %s\n", cases[i].server, cases[i].client);
		if (cases[i].nid) {
			assert_handshake_ok(&k);
			assert_int_equal(SSL_get_negotiated_group(k.s), cases[i].nid);
		} else {
			assert_true(k.s_failed);
			assert_true(k.c_failed);
		}
		conn_free(&k);
	}
}

static void test_last_error(void **state)
{
	char buf[128];

	ERR_clear_error();
	assert_string_equal(tls_last_error(buf, sizeof buf), "unknown TLS error");
	ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
	assert_contains(tls_last_error(buf, sizeof buf), "certificate verify failed");
	assert_int_equal(ERR_peek_error(), 0);
	/* Truncates rather than overflows. */
	ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
	char small[8];
	tls_last_error(small, sizeof small);
	assert_int_equal(strlen(small), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctx_ok),
		cmocka_unit_test(test_missing_files),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_not_pem),
		cmocka_unit_test(test_bad_groups),
		cmocka_unit_test(test_example_sans),
		cmocka_unit_test(test_sans_formatting),
		cmocka_unit_test(test_sans_hostile),
		cmocka_unit_test(test_handshake_ok_peer_sans),
		cmocka_unit_test(test_wrong_server_name),
		cmocka_unit_test(test_set_host_bad),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_untrusted_client_cert),
		cmocka_unit_test(test_ca_client_cert),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_last_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
