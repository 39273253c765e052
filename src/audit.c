/* audit: structured lines for calls and job events (contract in audit.h). */
#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc.h"
#include "util.h"

/* A line under construction: an open_memstream of the output. */
struct line {
	enum audit_format f;
	FILE *m;
	char *buf;
	size_t len;
	int n; /* fields written */
};

static void line_open(struct line *l, enum audit_format f)
{
	memset(l, 0, sizeof *l);
	l->f = f;
	l->m = open_memstream(&l->buf, &l->len);
	if (!l->m)
		abort(); /* allocation failure: exit like xmalloc */
	if (f == AUDIT_JSON)
		fputc('{', l->m);
}

static char *line_close(struct line *l)
{
	fputs(l->f == AUDIT_JSON ? "}\n" : "\n", l->m);
	fclose(l->m);
	return l->buf;
}

static void key(struct line *l, const char *k)
{
	if (l->f == AUDIT_JSON)
		fprintf(l->m, "%s\"%s\":", l->n++ ? "," : "", k);
	else
		fprintf(l->m, "%s%s=", l->n++ ? " " : "", k);
}

/* The characters of s escaped for a JSON string or a quoted logfmt value
 * (both use \" and \\); bytes outside printable ASCII escaped. */
static void escaped(FILE *m, enum audit_format f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(m, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(m, f == AUDIT_JSON ? "\\u%04x" : "\\x%02x", *p);
		else
			fputc(*p, m);
	}
}

static bool logfmt_bare(const char *s)
{
	if (!*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '=' || *p == '\\')
			return false;
	return true;
}

static void str(struct line *l, const char *k, const char *v)
{
	key(l, k);
	if (l->f == AUDIT_LOGFMT && logfmt_bare(v)) {
		fputs(v, l->m);
		return;
	}
	fputc('"', l->m);
	escaped(l->m, l->f, v);
	fputc('"', l->m);
}

/* A list: a JSON array, or one space-separated quoted logfmt value. */
static void list(struct line *l, const char *k, const char *first, char *const *items, size_t n)
{
	key(l, k);
	fputs(l->f == AUDIT_JSON ? "[" : "\"", l->m);
	size_t i = 0;
	for (int idx = first ? -1 : 0; idx < (int)n; idx++, i++) {
		const char *v = idx < 0 ? first : items[idx];
		if (l->f == AUDIT_JSON) {
			fprintf(l->m, "%s\"", i ? "," : "");
			escaped(l->m, l->f, v);
			fputc('"', l->m);
		} else {
			if (i)
				fputc(' ', l->m);
			escaped(l->m, l->f, v);
		}
	}
	fputs(l->f == AUDIT_JSON ? "]" : "\"", l->m);
}

static void timestamp(struct line *l, uint64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;
	char buf[48];
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%03uZ", (unsigned)(ns % 1000000000u / 1000000u));
	str(l, "time", buf);
}

int audit_parse_format(const char *s, enum audit_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = AUDIT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = AUDIT_JSON;
	else
		return -EINVAL;
	return 0;
}

char *audit_format_call(enum audit_format f, uint64_t now_ns, const struct audit_call *c)
{
	struct line l;
	line_open(&l, f);
	timestamp(&l, now_ns);
	str(&l, "event", "call");
	str(&l, "method", c->method ? c->method : "");
	list(&l, "peer", NULL, c->peer ? c->peer->names : NULL, c->peer ? c->peer->n : 0);
	str(&l, "serial", c->serial ? c->serial : "");
	str(&l, "job", c->job ? c->job : "");
	str(&l, "code", grpc_code_name(c->code));
	key(&l, "duration_ms");
	fprintf(l.m, "%.3f", (double)c->duration_ns / 1e6);
	return line_close(&l);
}

char *audit_format_job(enum audit_format f, uint64_t now_ns, const struct audit_job *j)
{
	struct line l;
	line_open(&l, f);
	timestamp(&l, now_ns);
	str(&l, "event", j->event);
	str(&l, "job", j->job);
	if (j->owners)
		list(&l, "owners", NULL, j->owners->names, j->owners->n);
	if (j->name)
		list(&l, "command", j->name, j->args, j->n_args);
	if (j->outcome)
		str(&l, "outcome", j->outcome);
	return line_close(&l);
}

static void emit(const struct audit *a, char *text)
{
	fputs(text, a->out);
	fflush(a->out);
	free(text);
}

void audit_call(const struct audit *a, const struct audit_call *c)
{
	if (a && a->out)
		emit(a, audit_format_call(a->format, now_real_ns(), c));
}

void audit_job(const struct audit *a, const struct audit_job *j)
{
	if (a && a->out)
		emit(a, audit_format_job(a->format, now_real_ns(), j));
}
