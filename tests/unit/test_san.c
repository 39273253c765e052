/* Unit tests for san.c: the SAN set that decides job ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "san.h"

/* Builds a set from a NULL-terminated list of names. */
static void set_of(struct san_set *set, const char *const *names)
{
	for (; *names; names++)
		san_set_add(set, *names);
}

static void assert_set_is(const struct san_set *set, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	assert_int_equal(set->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(set->names[i], want[i]);
}

static void test_empty(void **state)
{
	struct san_set a = {0}, b = {0};

	assert_int_equal(a.n, 0);
	assert_false(san_set_intersects(&a, &b));
	san_set_add(&b, "DNS:x.test");
	assert_false(san_set_intersects(&a, &b));
	assert_false(san_set_intersects(&b, &a));
	san_set_free(&a); /* empty set is fine */
	san_set_free(&b);
	assert_int_equal(b.n, 0);
	assert_null(b.names);
	san_set_free(&b); /* and freeing twice */
}

static void test_add_sorted_unique(void **state)
{
	struct san_set s = {0};

	san_set_add(&s, "URI:spiffe://rund.test/team-a");
	san_set_add(&s, "DNS:b.test");
	san_set_add(&s, "DNS:a.test");
	san_set_add(&s, "DNS:b.test");
	san_set_add(&s, "URI:spiffe://rund.test/team-a");
	san_set_add(&s, "IP:127.0.0.1");
	assert_set_is(&s, (const char *const[]){"DNS:a.test", "DNS:b.test", "IP:127.0.0.1",
						"URI:spiffe://rund.test/team-a", NULL});
	san_set_free(&s);
}

static void test_add_copies(void **state)
{
	struct san_set s = {0};
	char buf[32];

	strcpy(buf, "DNS:copy.test");
	san_set_add(&s, buf);
	memset(buf, 'X', sizeof buf - 1);
	assert_set_is(&s, (const char *const[]){"DNS:copy.test", NULL});
	san_set_free(&s);
}

static void test_dns_case_insensitive(void **state)
{
	struct san_set s = {0};

	san_set_add(&s, "DNS:Client.RUND.Test");
	san_set_add(&s, "DNS:client.rund.test");
	assert_set_is(&s, (const char *const[]){"DNS:client.rund.test", NULL});
	san_set_free(&s);
}

/* Only DNS names are case-insensitive: URI paths and the other kinds are
 * compared exactly, and the "DNS:" prefix itself must match. */
static void test_other_kinds_case_sensitive(void **state)
{
	struct san_set a = {0}, b = {0};

	san_set_add(&a, "URI:spiffe://rund.test/Team-A");
	san_set_add(&b, "URI:spiffe://rund.test/team-a");
	assert_false(san_set_intersects(&a, &b));
	san_set_add(&a, "email:Ops@rund.test");
	san_set_add(&b, "email:ops@rund.test");
	assert_false(san_set_intersects(&a, &b));
	assert_int_equal(a.n, 2);
	san_set_free(&a);
	san_set_free(&b);

	/* The kind prefix separates identities that share a value. */
	san_set_add(&a, "DNS:x.test");
	san_set_add(&b, "URI:x.test");
	assert_false(san_set_intersects(&a, &b));
	san_set_free(&a);
	san_set_free(&b);
}

static void test_copy(void **state)
{
	struct san_set a = {0}, b = {0};

	set_of(&a, (const char *const[]){"DNS:one.test", "URI:u:1", NULL});
	san_set_add(&b, "DNS:one.test");
	san_set_copy(&b, &a);
	assert_set_is(&b, (const char *const[]){"DNS:one.test", "URI:u:1", NULL});
	/* Deep copy: freeing the source leaves the copy intact. */
	san_set_free(&a);
	assert_string_equal(b.names[1], "URI:u:1");
	san_set_free(&b);
}

/* The example identities (tls/gen.sh): client and client2 share the team-a
 * URI, client3 shares nothing with either. */
static const char *const client[] = {"DNS:client.rund.test", "URI:spiffe://rund.test/team-a", NULL};
static const char *const client2[] = {"DNS:client2.rund.test", "URI:spiffe://rund.test/team-a",
				      NULL};
static const char *const client3[] = {"DNS:client3.rund.test", "URI:spiffe://rund.test/team-b",
				      NULL};
static const char *const upper[] = {"DNS:CLIENT.rund.test", NULL};
static const char *const none[] = {NULL};
static const char *const ips[] = {"IP:127.0.0.1", "IP:::1", "DNS:zzz.test", NULL};
static const char *const ip6[] = {"IP:::1", NULL};

static void test_intersects_matrix(void **state)
{
	const struct {
		const char *const *a, *const *b;
		bool want;
	} cases[] = {
		{client, client, true},	   {client, client2, true},  {client, client3, false},
		{client2, client3, false}, {client, upper, true},    {client3, upper, false},
		{none, client, false},	   {none, none, false},	     {ips, ip6, true},
		{ips, client, false},	   {client3, client3, true},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct san_set a = {0}, b = {0};
		set_of(&a, cases[i].a);
		set_of(&b, cases[i].b);
		/* Symmetric, whatever the sizes and order. */
		if (san_set_intersects(&a, &b) != cases[i].want ||
		    san_set_intersects(&b, &a) != cases[i].want)
			fail_msg("case %zu: want %s", i, cases[i].want ? "intersect" : "disjoint");
		san_set_free(&a);
		san_set_free(&b);
	}
}

/* A common element at the very end of both sorted arrays, after many that
 * differ, exercises the merge walk past its first steps. */
static void test_intersects_last(void **state)
{
	struct san_set a = {0}, b = {0};
	char name[32];

	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "DNS:a%02d.test", i);
		san_set_add(&a, name);
		snprintf(name, sizeof name, "DNS:b%02d.test", i);
		san_set_add(&b, name);
	}
	assert_false(san_set_intersects(&a, &b));
	san_set_add(&a, "URI:zz");
	san_set_add(&b, "URI:zz");
	assert_int_equal(a.n, 51);
	assert_true(san_set_intersects(&a, &b));
	assert_true(san_set_intersects(&b, &a));
	san_set_free(&a);
	san_set_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_add_sorted_unique),
		cmocka_unit_test(test_add_copies),
		cmocka_unit_test(test_dns_case_insensitive),
		cmocka_unit_test(test_other_kinds_case_sensitive),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_intersects_matrix),
		cmocka_unit_test(test_intersects_last),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
