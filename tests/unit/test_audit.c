/* Unit tests for audit.c: both formats, escaping that keeps one record on
 * one line, and job events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "grpc.h"

#define T0 1764475200123456789ull /* 2025-11-30T04:00:00.123Z */

static void test_call_logfmt(void **state)
{
	(void)state;
	char *names[] = {"DNS:client.rund.test", "URI:spiffe://rund.test/team-a"};
	struct san_set peer = {.n = 2, .names = names};
	struct audit_call c = {.method = "/rund.JobController/Status",
			       .peer = &peer,
			       .serial = "4F0A",
			       .job = "01JDQ7ZV3K8Y2X5N6M4P9R0T1W",
			       .code = GRPC_NOT_FOUND,
			       .duration_ns = 1234567};
	char *s = audit_format_call(AUDIT_LOGFMT, T0, &c);
	assert_string_equal(s, "time=2025-11-30T04:00:00.123Z event=call "
			       "method=/rund.JobController/Status "
			       "peer=\"DNS:client.rund.test URI:spiffe://rund.test/team-a\" "
			       "serial=4F0A job=01JDQ7ZV3K8Y2X5N6M4P9R0T1W code=NOT_FOUND "
			       "duration_ms=1.235\n");
	free(s);
}

static void test_call_json(void **state)
{
	(void)state;
	char *names[] = {"DNS:a"};
	struct san_set peer = {.n = 1, .names = names};
	struct audit_call c = {.method = "/x",
			       .peer = &peer,
			       .serial = "",
			       .job = "",
			       .code = GRPC_OK,
			       .duration_ns = 0};
	char *s = audit_format_call(AUDIT_JSON, T0, &c);
	assert_string_equal(s,
			    "{\"time\":\"2025-11-30T04:00:00.123Z\",\"event\":\"call\","
			    "\"method\":\"/x\",\"peer\":[\"DNS:a\"],\"serial\":\"\",\"job\":\"\","
			    "\"code\":\"OK\",\"duration_ms\":0.000}\n");
	free(s);
}

/* A client controls the job id it sends and the command it starts: neither
 * may break a record in two or add fields. */
static void test_escaping(void **state)
{
	(void)state;
	struct audit_call c = {.method = "/m", .job = "x\" code=OK\nfake=1", .code = 5};
	char *s = audit_format_call(AUDIT_LOGFMT, T0, &c);
	assert_non_null(strstr(s, "job=\"x\\\" code=OK\\x0afake=1\""));
	assert_ptr_equal(strchr(s, '\n'), s + strlen(s) - 1);
	free(s);
	s = audit_format_call(AUDIT_JSON, T0, &c);
	assert_non_null(strstr(s, "\"job\":\"x\\\" code=OK\\u000afake=1\""));
	assert_ptr_equal(strchr(s, '\n'), s + strlen(s) - 1);
	free(s);
}

static void test_job_events(void **state)
{
	(void)state;
	char *owners[] = {"DNS:a"};
	struct san_set o = {.n = 1, .names = owners};
	char *args[] = {"-c", "echo hi"};
	struct audit_job j = {.event = "job_end",
			      .job = "01J",
			      .owners = &o,
			      .name = "sh",
			      .args = args,
			      .n_args = 2,
			      .outcome = "exit 3"};
	char *s = audit_format_job(AUDIT_LOGFMT, T0, &j);
	assert_string_equal(s, "time=2025-11-30T04:00:00.123Z event=job_end job=01J "
			       "owners=\"DNS:a\" command=\"sh -c echo hi\" outcome=\"exit 3\"\n");
	free(s);
	j.event = "job_start";
	j.outcome = NULL;
	s = audit_format_job(AUDIT_JSON, T0, &j);
	assert_string_equal(s, "{\"time\":\"2025-11-30T04:00:00.123Z\",\"event\":\"job_start\","
			       "\"job\":\"01J\",\"owners\":[\"DNS:a\"],"
			       "\"command\":[\"sh\",\"-c\",\"echo hi\"]}\n");
	free(s);
}

static void test_parse_format(void **state)
{
	(void)state;
	enum audit_format f;
	assert_int_equal(audit_parse_format("json", &f), 0);
	assert_int_equal(f, AUDIT_JSON);
	assert_int_equal(audit_parse_format("logfmt", &f), 0);
	assert_int_equal(f, AUDIT_LOGFMT);
	assert_int_not_equal(audit_parse_format("xml", &f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_logfmt),  cmocka_unit_test(test_call_json),
		cmocka_unit_test(test_escaping),     cmocka_unit_test(test_job_events),
		cmocka_unit_test(test_parse_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
