/* flags: Go-style command-line flags (see flags.h for the accepted forms).
 *
 * Semantics follow Go's flag package where it matters to users: a lone "-"
 * is a positional argument, "--" ends the flags and is consumed, "---x" and
 * "-=x" are bad syntax, booleans never consume the next argument, and "-h",
 * "-help" or "--help" request usage unless a flag of that name is defined. */
#include "flags.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "util.h"

static struct flag *flag_find(struct flag *flags, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

/* Go's strconv.ParseBool spellings. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *value_error(int r)
{
	return r == -ERANGE ? "value out of range" : "invalid syntax";
}

static int flag_set_value(struct flag *f, const char *v, struct err *err)
{
	int r = 0;
	uint64_t u;

	switch (f->type) {
	case FLAG_STRING:
		*(const char **)f->value = v;
		break;
	case FLAG_STRINGS: {
		struct flag_strings *l = f->value;
		l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
		l->v[l->n++] = v;
		break;
	}
	case FLAG_BOOL: {
		bool b;
		if (parse_bool(v, &b) < 0)
			return err_set(err, EINVAL, ERR_INVALID,
				       "invalid boolean value \"%s\" for -%s: parse error", v,
				       f->name);
		*(bool *)f->value = b;
		break;
	}
	case FLAG_U64:
		r = parse_u64(v, &u);
		break;
	case FLAG_BYTES:
		r = flags_parse_bytes(v, &u);
		break;
	case FLAG_DURATION:
		r = flags_parse_duration(v, &u);
		break;
	}
	if (r < 0)
		return err_set(err, EINVAL, ERR_INVALID, "invalid value \"%s\" for flag -%s: %s", v,
			       f->name, value_error(r));
	if (f->type == FLAG_U64 || f->type == FLAG_BYTES || f->type == FLAG_DURATION)
		*(uint64_t *)f->value = u;
	f->set = true;
	return 0;
}

int flags_parse(struct flag *flags, size_t n, int argc, char **argv, struct err *err)
{
	int i = 0;

	while (i < argc) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			return i;
		const char *name = a + 1;
		if (name[0] == '-') {
			name++;
			if (name[0] == '\0')
				return i + 1; /* "--": end of flags, consumed */
		}
		if (name[0] == '-' || name[0] == '=')
			return err_set(err, EINVAL, ERR_INVALID, "bad flag syntax: %s", a);
		i++;

		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		struct flag *f = flag_find(flags, n, name, len);
		if (!f) {
			if ((len == 1 && name[0] == 'h') || (len == 4 && !memcmp(name, "help", 4)))
				return -FLAGS_HELP;
			return err_set(err, EINVAL, ERR_INVALID,
				       "flag provided but not defined: -%.*s", (int)len, name);
		}

		const char *value;
		if (eq) {
			value = eq + 1;
		} else if (f->type == FLAG_BOOL) {
			value = "true";
		} else if (i < argc) {
			value = argv[i++];
		} else {
			return err_set(err, EINVAL, ERR_INVALID, "flag needs an argument: -%s",
				       f->name);
		}
		int r = flag_set_value(f, value, err);
		if (r < 0)
			return r;
	}
	return argc;
}

/* Accepted: decimal digits, then optionally one of K M G T (either case),
 * then optionally "B" or "iB" after a unit, or a lone "B" ("512B"). Units
 * are powers of 1024. No sign, no spaces, no fractions. */
int flags_parse_bytes(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 40)
		return -EINVAL;

	char num[41];
	memcpy(num, s, digits);
	num[digits] = '\0';
	uint64_t v;
	int r = parse_u64(num, &v);
	if (r < 0)
		return r;

	const char *p = s + digits;
	unsigned shift = 0;
	const char *u = *p ? strchr(units, *p & ~0x20) : NULL;
	if (u) {
		shift = 10 * (unsigned)(u - units + 1);
		p++;
		if (p[0] == 'i' && p[1] == 'B')
			p += 2;
		else if (p[0] == 'B')
			p++;
	} else if (*p == 'B') {
		p++;
	}
	if (*p)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

struct duration_unit {
	const char *name;
	uint64_t ns;
};

static const struct duration_unit duration_units[] = {
	{"ns", 1},
	{"us", 1000},
	{"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
	{"\xce\xbcs", 1000}, /* U+03BC Greek mu */
	{"ms", 1000000},
	{"s", 1000000000},
	{"m", 60ull * 1000000000},
	{"h", 3600ull * 1000000000},
};

/* Go's time.ParseDuration without the sign: a sequence of decimal numbers,
 * each with optional fraction and a required unit ("1h30m", "1.5s", ".5ms");
 * "0" alone needs no unit. Fractions below 1 ns are truncated. */
int flags_parse_duration(const char *s, uint64_t *ns)
{
	if (strcmp(s, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (*s == '\0')
		return -EINVAL;

	uint64_t total = 0;
	const char *p = s;
	while (*p) {
		uint64_t whole = 0, frac = 0;
		double scale = 1;
		bool overflow = false, any = false;

		for (; *p >= '0' && *p <= '9'; p++, any = true) {
			unsigned d = (unsigned)(*p - '0');
			if (whole > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				whole = whole * 10 + d;
		}
		if (*p == '.') {
			p++;
			for (; *p >= '0' && *p <= '9'; p++, any = true) {
				/* Digits beyond what fits add nothing measurable. */
				if (frac <= (UINT64_MAX - 9) / 10) {
					frac = frac * 10 + (unsigned)(*p - '0');
					scale *= 10;
				}
			}
		}
		if (!any)
			return -EINVAL;
		if (overflow)
			return -ERANGE;

		size_t ulen = strcspn(p, "0123456789.");
		const struct duration_unit *unit = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++)
			if (strlen(duration_units[i].name) == ulen &&
			    memcmp(p, duration_units[i].name, ulen) == 0)
				unit = &duration_units[i];
		if (!unit)
			return -EINVAL;
		p += ulen;

		if (whole > UINT64_MAX / unit->ns)
			return -ERANGE;
		uint64_t v = whole * unit->ns;
		if (frac) {
			double f = (double)frac * ((double)unit->ns / scale);
			uint64_t fv = (uint64_t)f;
			if (v > UINT64_MAX - fv)
				return -ERANGE;
			v += fv;
		}
		if (total > UINT64_MAX - v)
			return -ERANGE;
		total += v;
	}
	*ns = total;
	return 0;
}

/* Go's Duration.String: "1h30m0s", "1.5s", "300ms", "0s". */
static void format_duration(uint64_t ns, char *out, size_t cap)
{
	if (ns == 0) {
		snprintf(out, cap, "0s");
		return;
	}
	if (ns < 1000000000) {
		static const struct duration_unit small[] = {
			{"ms", 1000000}, {"\xc2\xb5s", 1000}, {"ns", 1}};
		for (size_t i = 0; i < ARRAY_SIZE(small); i++) {
			if (ns >= small[i].ns) {
				uint64_t w = ns / small[i].ns, f = ns % small[i].ns;
				char fr[16] = "";
				if (f) {
					int width = small[i].ns == 1000000 ? 6 : 3;
					snprintf(fr, sizeof fr, ".%0*" PRIu64, width, f);
					size_t l = strlen(fr);
					while (fr[l - 1] == '0')
						fr[--l] = '\0';
				}
				snprintf(out, cap, "%" PRIu64 "%s%s", w, fr, small[i].name);
				return;
			}
		}
	}
	uint64_t secs = ns / 1000000000, sub = ns % 1000000000;
	uint64_t h = secs / 3600, m = secs / 60 % 60, sec = secs % 60;
	char fr[16] = "";
	if (sub) {
		snprintf(fr, sizeof fr, ".%09" PRIu64, sub);
		size_t l = strlen(fr);
		while (fr[l - 1] == '0')
			fr[--l] = '\0';
	}
	if (h)
		snprintf(out, cap, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "%ss", h, m, sec, fr);
	else if (m)
		snprintf(out, cap, "%" PRIu64 "m%" PRIu64 "%ss", m, sec, fr);
	else
		snprintf(out, cap, "%" PRIu64 "%ss", sec, fr);
}

/* The largest exact unit, so a default of 10M prints as "10M". */
static void format_bytes(uint64_t v, char *out, size_t cap)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && v && (v & 1023) == 0) {
		v >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(out, cap, "%" PRIu64, v);
	else
		snprintf(out, cap, "%" PRIu64 "%c", v, units[u]);
}

void flags_usage(FILE *out, const struct flag *flags, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct flag *f = &flags[i];
		static const char *const type_names[] = {
			[FLAG_STRING] = "string",     [FLAG_BOOL] = "",
			[FLAG_U64] = "uint",	      [FLAG_BYTES] = "bytes",
			[FLAG_DURATION] = "duration", [FLAG_STRINGS] = "value (repeatable)",
		};
		char line[128];
		int len = snprintf(line, sizeof line, "  -%s", f->name);
		if (type_names[f->type][0])
			len += snprintf(line + len, sizeof line - (size_t)len, " %s",
					type_names[f->type]);
		/* Go puts the usage of a one-letter boolean on the same line. */
		fprintf(out, "%s%s%s", line, len <= 4 ? "\t" : "\n    \t",
			f->usage ? f->usage : "");

		char def[64] = "";
		switch (f->type) {
		case FLAG_STRING: {
			const char *s = *(const char *const *)f->value;
			if (s && *s)
				fprintf(out, " (default \"%s\")", s);
			break;
		}
		case FLAG_BOOL:
			if (*(const bool *)f->value)
				fprintf(out, " (default true)");
			break;
		case FLAG_STRINGS:
			break;
		case FLAG_U64:
			if (*(const uint64_t *)f->value)
				snprintf(def, sizeof def, "%" PRIu64, *(const uint64_t *)f->value);
			break;
		case FLAG_BYTES:
			if (*(const uint64_t *)f->value)
				format_bytes(*(const uint64_t *)f->value, def, sizeof def);
			break;
		case FLAG_DURATION:
			if (*(const uint64_t *)f->value)
				format_duration(*(const uint64_t *)f->value, def, sizeof def);
			break;
		}
		if (def[0])
			fprintf(out, " (default %s)", def);
		fputc('\n', out);
	}
}
