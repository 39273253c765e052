/* handoff: the daemon <-> supervisor protocol, both directions, as one
 * codec (see supervisor.h for who does what when).
 *
 * Request, daemon -> supervisor, through the supervisor's FIFO:
 *   "<spec_len> <dir_len>\n"  two decimals (no sign, no leading zeros)
 *   <dir_len bytes>           the state directory (no NUL)
 *   <spec_len bytes>          the encoded jobspec (jobspec.h)
 * The whole request is at most HANDOFF_REQUEST_MAX bytes, so it fits the
 * FIFO's pipe buffer and the daemon's write never blocks.
 *
 * Report, supervisor -> daemon, one line on the supervisor's stdout:
 *   "ok\n"                               the job was exec'd
 *   "err <errno> <err_kind> <message>\n" it was not; why (message has no
 *                                        control characters)
 *
 * Pure module: buffers and a reader over an fd, no event loop. */
#ifndef RUND_HANDOFF_H
#define RUND_HANDOFF_H

#include <stddef.h>

#include "err.h"

/* Bounds, one row each. */
#define HANDOFF_REQUEST_MAX (1u << 20) /* a whole request; also bounds the spec file */
#define HANDOFF_HEADER_MAX 48	       /* the length line, newline included */
#define HANDOFF_REPORT_MAX 1024	       /* a report line, newline included */

/* The environment's PATH of supervisors and jobs (and the directories an
 * unqualified job name is looked up in). */
#define HANDOFF_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct handoff_request {
	char *state_dir; /* NUL-terminated, owned */
	char *spec;	 /* spec_len bytes plus a NUL, owned */
	size_t spec_len;
};

void handoff_request_free(struct handoff_request *req); /* accepts zeroed */

/* The largest encoded spec that fits one request beside state_dir. */
size_t handoff_spec_limit(size_t dir_len);

/* Writes the header line for a request into hdr. Returns its length, or
 * -E2BIG when the request would exceed HANDOFF_REQUEST_MAX. */
int handoff_request_header(size_t spec_len, size_t dir_len, char hdr[HANDOFF_HEADER_MAX]);

/* Parses a header line (without its newline). 0 or -EPROTO. */
int handoff_header_parse(const char *line, size_t len, size_t *spec_len, size_t *dir_len);

/* Decodes a whole request held in buf (header, state dir, spec and
 * nothing else). 0, or -EPROTO with err saying what is wrong; *req is
 * left empty then. */
int handoff_request_decode(const char *buf, size_t len, struct handoff_request *req,
			   struct err *err);

/* Reads one request from fd, blocking: exactly its bytes, nothing after
 * them (the FIFO is reused). 0, -EPROTO (malformed or ended early) or
 * -errno, with err set; *req is left empty on failure. */
int handoff_request_read(int fd, struct handoff_request *req, struct err *err);

/* Formats the report for e (NULL: "ok\n") into line. Returns its length
 * (newline included, no NUL counted). A message too long for one line is
 * cut; control characters become spaces. */
size_t handoff_report_format(const struct err *e, char line[HANDOFF_REPORT_MAX]);

/* Parses a report line without its newline. 0 for "ok"; otherwise
 * -code with err set to the supervisor's error, or -EPROTO with
 * ERR_INTERNAL for anything malformed. */
int handoff_report_parse(const char *line, struct err *err);

#endif
