/* clientconf: where rundctl's connection settings come from.
 *
 * Each setting (addr, ca, cert, key) is taken from the first source that
 * sets it: the command line (applied by the caller, after this module),
 * the environment (RUND_ADDR, RUND_CA, RUND_CERT, RUND_KEY), the per-user
 * file ($XDG_CONFIG_HOME/rund/client.conf, else ~/.config/rund/client.conf),
 * the built-in default. The file holds `key = value` lines; blank lines
 * and lines starting with '#' are ignored; a relative file name in it is
 * relative to the file's directory. Pure module apart from reading the
 * file and the environment. */
#ifndef RUND_CLIENTCONF_H
#define RUND_CLIENTCONF_H

#include <stddef.h>

#include "err.h"

enum clientconf_key {
	CLIENTCONF_ADDR,
	CLIENTCONF_CA,
	CLIENTCONF_CERT,
	CLIENTCONF_KEY,
	CLIENTCONF_N,
};

struct clientconf {
	const char *value[CLIENTCONF_N]; /* the setting; owned by owned[] or static */
	char *origin[CLIENTCONF_N];	 /* "built-in default", "RUND_CA", "PATH:LINE" */
	char *owned[CLIENTCONF_N];	 /* values this object allocated */
	char *path;			 /* the file looked at, or NULL if none */
};

/* The setting's name in the file and the environment variable that sets it. */
const char *clientconf_name(enum clientconf_key k);
const char *clientconf_env(enum clientconf_key k);

/* Starts c from the built-in defaults (static strings, not copied). */
void clientconf_init(struct clientconf *c, const char *const defaults[CLIENTCONF_N]);

/* Applies file text read from path over c. -EINVAL with err naming
 * "PATH:LINE: ..." for an unknown key, a line without '=', an empty or
 * repeated key. */
int clientconf_parse(struct clientconf *c, const char *path, const char *text, struct err *err);

/* Resolves the file's path from XDG_CONFIG_HOME or HOME (NULL if neither
 * is set), reads it if it exists and applies it, then applies the
 * environment variables that are set and not empty. 0, or -errno with
 * err naming the file. */
int clientconf_load(struct clientconf *c, struct err *err);

/* Records that the command line set k (value not copied). */
void clientconf_set_flag(struct clientconf *c, enum clientconf_key k, const char *value);

void clientconf_free(struct clientconf *c);

#endif
