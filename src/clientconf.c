/* clientconf: rundctl's connection settings from the environment, the
 * per-user file and the built-in defaults (see clientconf.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "clientconf.h"
#include "util.h"

#define CONF_MAX_BYTES (64 << 10)

static const struct {
	const char *name, *env;
} keys[CLIENTCONF_N] = {
	[CLIENTCONF_ADDR] = {"addr", "RUND_ADDR"},
	[CLIENTCONF_CA] = {"ca", "RUND_CA"},
	[CLIENTCONF_CERT] = {"cert", "RUND_CERT"},
	[CLIENTCONF_KEY] = {"key", "RUND_KEY"},
};

const char *clientconf_name(enum clientconf_key k)
{
	return keys[k].name;
}

const char *clientconf_env(enum clientconf_key k)
{
	return keys[k].env;
}

static void set(struct clientconf *c, enum clientconf_key k, char *owned, const char *value,
		char *origin)
{
	free(c->owned[k]);
	free(c->origin[k]);
	c->owned[k] = owned;
	c->value[k] = owned ? owned : value;
	c->origin[k] = origin;
}

void clientconf_init(struct clientconf *c, const char *const defaults[CLIENTCONF_N])
{
	memset(c, 0, sizeof *c);
	for (int k = 0; k < CLIENTCONF_N; k++)
		set(c, k, NULL, defaults[k], xstrdup("built-in default"));
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* File names other than addr are relative to the file's directory. */
static char *resolve(enum clientconf_key k, const char *path, const char *value)
{
	const char *slash = strrchr(path, '/');
	if (k == CLIENTCONF_ADDR || value[0] == '/' || !slash)
		return xstrdup(value);
	return xasprintf("%.*s/%s", (int)(slash - path), path, value);
}

int clientconf_parse(struct clientconf *c, const char *path, const char *text, struct err *err)
{
	_cleanup_free_ char *copy = xstrdup(text);
	bool seen[CLIENTCONF_N] = {0};
	unsigned lineno = 0;
	char *next = copy;
	while (next) {
		char *line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		char *eq = strchr(line, '=');
		if (!eq)
			return err_set(err, EINVAL, ERR_INVALID,
				       "%s:%u: expected \"key = value\", got \"%s\"", path, lineno,
				       line);
		*eq = '\0';
		const char *key = trim(line), *value = trim(eq + 1);
		int k = 0;
		while (k < CLIENTCONF_N && strcmp(key, keys[k].name) != 0)
			k++;
		if (k == CLIENTCONF_N)
			return err_set(err, EINVAL, ERR_INVALID,
				       "%s:%u: unknown key \"%s\" (known: addr, ca, cert, key)",
				       path, lineno, key);
		if (seen[k])
			return err_set(err, EINVAL, ERR_INVALID, "%s:%u: \"%s\" is set twice", path,
				       lineno, key);
		if (value[0] == '\0')
			return err_set(err, EINVAL, ERR_INVALID, "%s:%u: \"%s\" has no value", path,
				       lineno, key);
		seen[k] = true;
		set(c, k, resolve(k, path, value), NULL, xasprintf("%s:%u", path, lineno));
	}
	return 0;
}

static char *conf_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	/* The XDG rules ignore a relative XDG_CONFIG_HOME. */
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/rund/client.conf", xdg);
	const char *home = getenv("HOME");
	if (home && home[0])
		return xasprintf("%s/.config/rund/client.conf", home);
	return NULL;
}

int clientconf_load(struct clientconf *c, struct err *err)
{
	free(c->path);
	c->path = conf_path();
	if (c->path) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		int r = read_file_at(AT_FDCWD, c->path, CONF_MAX_BYTES, &text, &len);
		if (r < 0 && r != -ENOENT)
			return err_sys(err, -r, "read %s", c->path);
		if (r == 0 && memchr(text, '\0', len))
			return err_set(err, EINVAL, ERR_INVALID, "%s: holds a NUL byte", c->path);
		if (r == 0 && (r = clientconf_parse(c, c->path, text, err)) < 0)
			return r;
	}
	for (int k = 0; k < CLIENTCONF_N; k++) {
		const char *v = getenv(keys[k].env);
		if (v && v[0])
			set(c, k, xstrdup(v), NULL, xstrdup(keys[k].env));
	}
	return 0;
}

void clientconf_set_flag(struct clientconf *c, enum clientconf_key k, const char *value)
{
	set(c, k, NULL, value, xasprintf("flag -%s", keys[k].name));
}

void clientconf_free(struct clientconf *c)
{
	if (!c)
		return;
	for (int k = 0; k < CLIENTCONF_N; k++) {
		free(c->owned[k]);
		free(c->origin[k]);
	}
	free(c->path);
	memset(c, 0, sizeof *c);
}
