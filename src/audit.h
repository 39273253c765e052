/* audit: one structured line per gRPC call and per job start and end, on
 * a stdio stream (the daemon's stderr, which systemd puts in the journal).
 *
 *   logfmt: time=2026-11-30T04:00:00.123Z event=call method=/rund.JobController/Start
 *           peer="DNS:a URI:spiffe://x" serial=4F0A... job=01J... code=OK duration_ms=1.234
 *   json:   {"time":"...","event":"call","method":"...","peer":["DNS:a"],...}
 *
 * Values are quoted where logfmt needs it; JSON strings are escaped; bytes
 * that are not printable ASCII are written as \u00XX (JSON) or \xXX
 * (logfmt), so a client cannot forge lines. Pure module apart from the
 * clock. */
#ifndef RUND_AUDIT_H
#define RUND_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "san.h"

enum audit_format {
	AUDIT_LOGFMT,
	AUDIT_JSON,
};

struct audit {
	FILE *out;
	enum audit_format format;
};

struct audit_call {
	const char *method;	    /* the request's :path */
	const struct san_set *peer; /* the client certificate's SANs */
	const char *serial;	    /* its serial number in hex, "" if unknown */
	const char *job;	    /* the job the call named or started, "" if none */
	int code;		    /* the gRPC status sent */
	uint64_t duration_ns;
};

struct audit_job {
	const char *event; /* "job_start" or "job_end" */
	const char *job;
	const struct san_set *owners; /* may be NULL */
	const char *name;	      /* the command and its arguments */
	char *const *args;
	size_t n_args;
	const char *outcome; /* job_end: "exit 3", "signal 9", "lost"; else NULL */
};

/* "logfmt" or "json". 0 or -EINVAL. */
int audit_parse_format(const char *s, enum audit_format *out);

/* Writes one line for a call or a job event, with the current time, and
 * flushes. Nothing happens when a is NULL or has no stream. */
void audit_call(const struct audit *a, const struct audit_call *c);
void audit_job(const struct audit *a, const struct audit_job *j);

/* Same lines with a given time (ns since the epoch) into a malloc'd
 * string, for tests. */
char *audit_format_call(enum audit_format f, uint64_t now_ns, const struct audit_call *c);
char *audit_format_job(enum audit_format f, uint64_t now_ns, const struct audit_job *j);

#endif
