/* flags: Go-style command-line flags for rund and runc.
 *
 * Accepted forms: -name value, -name=value, --name value, --name=value;
 * booleans also as -name (true) and -name=false. Parsing stops at the first
 * argument that is not a flag, or after "--". "-h", "-help" and "--help"
 * request usage. Pure module: errors are reported through struct err. */
#ifndef RUND_FLAGS_H
#define RUND_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum flag_type {
	FLAG_STRING,   /* const char ** (points into argv) */
	FLAG_BOOL,     /* bool * */
	FLAG_U64,      /* uint64_t *, plain decimal */
	FLAG_BYTES,    /* uint64_t *, decimal with optional K M G T (powers of 1024), "10M" */
	FLAG_DURATION, /* uint64_t * nanoseconds, Go syntax: "300ms", "1h30m", "10s" */
	FLAG_STRINGS,  /* struct flag_strings *: repeatable, every value appended */
};

/* A repeatable string flag's values (pointing into argv); v is malloc'd,
 * the caller frees it. */
struct flag_strings {
	const char **v;
	size_t n;
};

struct flag {
	const char *name; /* without dashes */
	enum flag_type type;
	void *value;	   /* holds the default on entry */
	const char *usage; /* one line */
	bool set;	   /* out: given on the command line */
};

#define FLAGS_HELP 1

/* Parses argv[0..argc). Returns:
 *   >= 0         the index of the first positional argument (argc if none)
 *   -FLAGS_HELP  help was requested (-h, -help, --help)
 *   -EINVAL      a bad flag or value; err names it ("invalid value \"x\" for
 *                flag -max_rbps: ...", "flag provided but not defined: -foo")
 */
int flags_parse(struct flag *flags, size_t n, int argc, char **argv, struct err *err);

/* Prints "  -name type\n    \tusage (default ...)" lines, Go style. */
void flags_usage(FILE *out, const struct flag *flags, size_t n);

/* Value parsers shared with other modules. 0 or -EINVAL/-ERANGE. */
int flags_parse_bytes(const char *s, uint64_t *out);
int flags_parse_duration(const char *s, uint64_t *ns);

#endif
