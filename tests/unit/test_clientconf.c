/* Unit tests for clientconf.c: the file syntax, its errors with file and
 * line, relative paths, and the precedence of environment over file over
 * defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clientconf.h"

static const char *const defaults[CLIENTCONF_N] = {"localhost:8000", "tls/ca.pem", "tls/client.pem",
						   "tls/client-key.pem"};

static void test_defaults(void **state)
{
	(void)state;
	struct clientconf c;
	clientconf_init(&c, defaults);
	for (int k = 0; k < CLIENTCONF_N; k++) {
		assert_string_equal(c.value[k], defaults[k]);
		assert_string_equal(c.origin[k], "built-in default");
	}
	clientconf_free(&c);
}

static void test_parse_sets_and_resolves(void **state)
{
	(void)state;
	struct clientconf c;
	struct err err = {0};
	clientconf_init(&c, defaults);
	const char *text = "# comment\n\n  addr =  jobs.example:8000  \r\n"
			   "ca=/etc/rund/ca.pem\ncert = me.pem\n";
	assert_int_equal(clientconf_parse(&c, "/home/u/.config/rund/client.conf", text, &err), 0);
	assert_string_equal(c.value[CLIENTCONF_ADDR], "jobs.example:8000");
	assert_string_equal(c.origin[CLIENTCONF_ADDR], "/home/u/.config/rund/client.conf:3");
	assert_string_equal(c.value[CLIENTCONF_CA], "/etc/rund/ca.pem");
	assert_string_equal(c.value[CLIENTCONF_CERT], "/home/u/.config/rund/me.pem");
	assert_string_equal(c.origin[CLIENTCONF_CERT], "/home/u/.config/rund/client.conf:5");
	assert_string_equal(c.value[CLIENTCONF_KEY], "tls/client-key.pem");
	assert_string_equal(c.origin[CLIENTCONF_KEY], "built-in default");
	clientconf_free(&c);
}

static void expect_error(const char *text, const char *msg)
{
	struct clientconf c;
	struct err err = {0};
	clientconf_init(&c, defaults);
	assert_int_equal(clientconf_parse(&c, "/c.conf", text, &err), -EINVAL);
	assert_string_equal(err.msg, msg);
	clientconf_free(&c);
}

static void test_parse_errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("addr = a:1\nadress = b:2\n",
		     "/c.conf:2: unknown key \"adress\" (known: addr, ca, cert, key)");
	expect_error("\n\naddr\n", "/c.conf:3: expected \"key = value\", got \"addr\"");
	expect_error("ca = a\nca = b\n", "/c.conf:2: \"ca\" is set twice");
	expect_error("key =\n", "/c.conf:1: \"key\" has no value");
}

static void test_load_env_over_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_clientconf.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char sub[64], path[96];
	snprintf(sub, sizeof sub, "%s/rund", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof path, "%s/client.conf", sub);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("addr = file:1\nca = ca.pem\n", f);
	fclose(f);

	setenv("XDG_CONFIG_HOME", dir, 1);
	setenv("RUND_ADDR", "env:2", 1);
	setenv("RUND_CA", "", 1); /* empty: not set */
	unsetenv("RUND_CERT");
	unsetenv("RUND_KEY");
	struct clientconf c;
	struct err err = {0};
	clientconf_init(&c, defaults);
	assert_int_equal(clientconf_load(&c, &err), 0);
	assert_string_equal(c.path, path);
	assert_string_equal(c.value[CLIENTCONF_ADDR], "env:2");
	assert_string_equal(c.origin[CLIENTCONF_ADDR], "RUND_ADDR");
	char want[128];
	snprintf(want, sizeof want, "%s/ca.pem", sub);
	assert_string_equal(c.value[CLIENTCONF_CA], want);
	assert_string_equal(c.value[CLIENTCONF_CERT], "tls/client.pem");
	clientconf_set_flag(&c, CLIENTCONF_ADDR, "flag:3");
	assert_string_equal(c.value[CLIENTCONF_ADDR], "flag:3");
	assert_string_equal(c.origin[CLIENTCONF_ADDR], "flag -addr");
	clientconf_free(&c);

	/* A missing file is no error; the defaults stay. */
	unlink(path);
	unsetenv("RUND_ADDR");
	clientconf_init(&c, defaults);
	assert_int_equal(clientconf_load(&c, &err), 0);
	assert_string_equal(c.value[CLIENTCONF_ADDR], "localhost:8000");
	clientconf_free(&c);
	rmdir(sub);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse_sets_and_resolves),
		cmocka_unit_test(test_parse_errors_name_file_and_line),
		cmocka_unit_test(test_load_env_over_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
