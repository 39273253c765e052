/* jobspec: validation and the spec/started/status file codecs (jobspec.h).
 *
 * Encoding, shared by the three files:
 *   <version line>\n            "rund-spec 1", "rund-start 1", "rund-status 1"
 *   <key> <decimal>\n           integer fields (strict: digits only, no
 *                               leading zeros, must fit the field)
 *   <key> <len> <len bytes>\n   string fields: any bytes but NUL, so argv
 *                               may hold spaces, newlines, '$' or nothing
 *   end\n                       required last line; nothing may follow
 * Unknown keys and repeated single-valued keys are rejected: the files are
 * written by rund itself, so anything unexpected is corruption or a format
 * change, and a format change bumps the version. Decoders look at no byte
 * outside [buf, buf+len) and allocate only after checking a length against
 * the bytes that remain, so arbitrary input cannot crash or balloon them. */
#include "jobspec.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ulid.h"
#include "util.h"

/* The table of limits (see jobspec.h for what adding a row takes). */
const struct job_limit_def job_limit_defs[LIMIT_COUNT] = {
	[LIMIT_CPU] =
		{
			.name = "max_cpu_bandwidth",
			.controller = "cpu",
			.knob = "cpu.max",
			.suffix = " 100000",
			.unit = LIMIT_UNIT_NUMBER,
			.min = 1000,
			.max = 100000,
			.scale = LIMIT_SCALE_MAX_PER_CPU,
			.range_note = "microseconds of CPU per 100000",
			.help = "CPU quota in microseconds per 100000 us period (50000 = half a "
				"CPU)",
		},
	[LIMIT_MEMORY] =
		{
			.name = "max_memory_usage",
			.controller = "memory",
			.knob = "memory.max",
			/* An OOM kill takes the whole job, not one random
			 * process of it (memory.oom.group exists since 4.19). */
			.also_knob = "memory.oom.group",
			.also_value = "1",
			.unit = LIMIT_UNIT_BYTES,
			.min = 4096,
			.max = UINT64_MAX,
			.scale = LIMIT_SCALE_MIN_PAGE,
			.range_note = "at least one page",
			.help = "memory limit in bytes (K, M, G, T suffixes)",
		},
	[LIMIT_RBPS] =
		{
			.name = "max_rbps",
			.controller = "io",
			.knob = "io.max",
			.key = "rbps",
			.unit = LIMIT_UNIT_BYTES,
			.min = 1,
			.max = UINT64_MAX,
			.help = "disk read limit, bytes per second",
		},
	[LIMIT_WBPS] =
		{
			.name = "max_wbps",
			.controller = "io",
			.knob = "io.max",
			.key = "wbps",
			.unit = LIMIT_UNIT_BYTES,
			.min = 1,
			.max = UINT64_MAX,
			.help = "disk write limit, bytes per second",
		},
	[LIMIT_RIOPS] =
		{
			.name = "max_riops",
			.controller = "io",
			.knob = "io.max",
			.key = "riops",
			.unit = LIMIT_UNIT_NUMBER,
			.min = 1,
			.max = UINT64_MAX,
			.help = "disk read limit, operations per second",
		},
	[LIMIT_WIOPS] =
		{
			.name = "max_wiops",
			.controller = "io",
			.knob = "io.max",
			.key = "wiops",
			.unit = LIMIT_UNIT_NUMBER,
			.min = 1,
			.max = UINT64_MAX,
			.help = "disk write limit, operations per second",
		},
	[LIMIT_PIDS] =
		{
			.name = "max_pids",
			.controller = "pids",
			.knob = "pids.max",
			.unit = LIMIT_UNIT_NUMBER,
			.min = 1,
			/* The kernel refuses pids.max above PID_MAX_LIMIT. */
			.max = 4194304,
			.range_note = "processes and threads at once",
			.help = "most processes and threads the job may have at once",
		},
};

int job_limit_find(const char *s, size_t n)
{
	for (int i = 0; i < LIMIT_COUNT; i++)
		if (strlen(job_limit_defs[i].name) == n &&
		    memcmp(job_limit_defs[i].name, s, n) == 0)
			return i;
	return -1;
}

static int limit_bounds(const struct job_limit_def *d, uint64_t v, long ncpu, long page_size,
			struct err *err)
{
	uint64_t min = d->min, max = d->max;
	long cpus = ncpu > 0 ? ncpu : 1;
	if (d->scale == LIMIT_SCALE_MAX_PER_CPU)
		max *= (uint64_t)cpus;
	if (d->scale == LIMIT_SCALE_MIN_PAGE && page_size > 0)
		min = (uint64_t)page_size;
	if (v >= min && v <= max)
		return 0;
	char note[96] = "";
	if (d->range_note && d->scale == LIMIT_SCALE_MAX_PER_CPU)
		snprintf(note, sizeof note, " (%s on %ld CPUs)", d->range_note, cpus);
	else if (d->range_note)
		snprintf(note, sizeof note, " (%s)", d->range_note);
	return err_set(err, EINVAL, ERR_INVALID,
		       "%s %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]%s", d->name, v,
		       min, max, note);
}

int jobspec_validate(const struct jobspec *spec, long ncpu, long page_size, struct err *err)
{
	if (!spec->argv || spec->argc == 0 || !spec->argv[0])
		return err_set(err, EINVAL, ERR_INVALID, "name is missing");
	if (spec->argv[0][0] == '\0')
		return err_set(err, EINVAL, ERR_INVALID, "name is empty");

	if (spec->n_env > JOBSPEC_ENV_MAX)
		return err_set(err, EINVAL, ERR_INVALID, "%zu env entries: at most %d", spec->n_env,
			       JOBSPEC_ENV_MAX);
	for (size_t i = 0; i < spec->n_env; i++) {
		const char *e = spec->env[i];
		size_t n = strlen(e);
		const char *eq = strchr(e, '=');
		if (n > JOBSPEC_ENV_ENTRY_MAX)
			return err_set(err, EINVAL, ERR_INVALID,
				       "env[%zu] \"%.40s...\" is %zu bytes: at most %d", i, e, n,
				       JOBSPEC_ENV_ENTRY_MAX);
		if (!eq)
			return err_set(err, EINVAL, ERR_INVALID,
				       "env[%zu] \"%.80s\" is not KEY=VALUE (no '=')", i, e);
		if (eq == e)
			return err_set(err, EINVAL, ERR_INVALID,
				       "env[%zu] \"%.80s\" has an empty key", i, e);
	}
	if (spec->cwd) {
		size_t n = strlen(spec->cwd);
		if (n > JOBSPEC_CWD_MAX)
			return err_set(err, EINVAL, ERR_INVALID,
				       "cwd \"%.40s...\" is %zu bytes: at most %d", spec->cwd, n,
				       JOBSPEC_CWD_MAX);
		if (spec->cwd[0] != '/')
			return err_set(err, EINVAL, ERR_INVALID,
				       "cwd \"%.80s\" is not an absolute path", spec->cwd);
	}
	if (spec->run_time_grace_ns > JOBSPEC_GRACE_MAX_NS)
		return err_set(err, EINVAL, ERR_INVALID,
			       "run_time_grace %" PRIu64 "s is longer than an hour",
			       spec->run_time_grace_ns / 1000000000);

	const struct job_limits *l = &spec->limits;
	for (int i = 0; i < LIMIT_COUNT; i++) {
		if (l->has[i] && l->value[i] == 0)
			return err_set(err, EINVAL, ERR_INVALID, "%s 0 must be greater than 0",
				       job_limit_defs[i].name);
	}
	for (int i = 0; i < LIMIT_COUNT; i++) {
		int r = l->has[i] ? limit_bounds(&job_limit_defs[i], l->value[i], ncpu, page_size,
						 err)
				  : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- encoding ---- */

struct wbuf {
	char *p;
	size_t len, cap;
};

static void wb_reserve(struct wbuf *w, size_t n)
{
	if (w->len + n + 1 <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n + 1)
		cap *= 2;
	w->p = xrealloc(w->p, cap);
	w->cap = cap;
}

static void wb_put(struct wbuf *w, const void *data, size_t n)
{
	wb_reserve(w, n);
	memcpy(w->p + w->len, data, n);
	w->len += n;
	w->p[w->len] = '\0';
}

static void wb_u64(struct wbuf *w, const char *key, uint64_t v)
{
	char line[96];
	int n = snprintf(line, sizeof line, "%s %" PRIu64 "\n", key, v);
	wb_put(w, line, (size_t)n);
}

static void wb_str(struct wbuf *w, const char *key, const char *s)
{
	size_t sl = strlen(s);
	char head[96];
	int n = snprintf(head, sizeof head, "%s %zu ", key, sl);
	wb_put(w, head, (size_t)n);
	wb_put(w, s, sl);
	wb_put(w, "\n", 1);
}

static char *wb_finish(struct wbuf *w, size_t *len)
{
	wb_put(w, "end\n", 4);
	if (len)
		*len = w->len;
	return w->p;
}

/* A confined job's policy, uid and gid aside. */
static void wb_policy(struct wbuf *w, const struct sandbox_policy *sb)
{
	wb_u64(w, "namespaces", sb->namespaces);
	for (size_t i = 0; i < sb->n_hide; i++)
		wb_str(w, "hide", sb->hide[i]);
	if (sb->rootfs)
		wb_str(w, "rootfs", sb->rootfs);
	if (sb->cgroup_mount)
		wb_str(w, "cgroup_mount", sb->cgroup_mount);
	if (sb->tmp_size)
		wb_u64(w, "tmp_size", sb->tmp_size);
	if (sb->max_procs)
		wb_u64(w, "max_procs", sb->max_procs);
}

char *jobspec_warm_encode(const char *cgroup, const struct sandbox_policy *p, size_t *len)
{
	struct wbuf w = {0};
	wb_put(&w, JOBSPEC_WARM_VERSION "\n", sizeof JOBSPEC_WARM_VERSION);
	wb_str(&w, "cgroup", cgroup);
	wb_policy(&w, p);
	return wb_finish(&w, len);
}

char *jobspec_encode(const struct jobspec *spec, size_t *len)
{
	struct wbuf w = {0};
	wb_put(&w, "rund-spec 1\n", 12);
	wb_str(&w, "id", spec->id);
	wb_u64(&w, "created_ns", spec->created_ns);
	for (size_t i = 0; i < spec->argc; i++)
		wb_str(&w, "arg", spec->argv[i]);
	for (int i = 0; i < LIMIT_COUNT; i++)
		if (spec->limits.has[i])
			wb_u64(&w, job_limit_defs[i].name, spec->limits.value[i]);
	for (size_t i = 0; i < spec->owners.n; i++)
		wb_str(&w, "owner", spec->owners.names[i]);
	if (spec->cgroup)
		wb_str(&w, "cgroup", spec->cgroup);
	for (size_t i = 0; i < spec->n_io_devices; i++) {
		char dev[48];
		snprintf(dev, sizeof dev, "%u:%u", spec->io_devices[i].major,
			 spec->io_devices[i].minor);
		wb_str(&w, "io_device", dev);
	}
	wb_u64(&w, "max_log_bytes", spec->max_log_bytes);
	/* A root job (or a zeroed policy) writes no sandbox keys at all,
	 * exactly as specs from before isolation. */
	const struct sandbox_policy *sb = &spec->sandbox;
	if (!sb->root && sb->uid) {
		wb_u64(&w, "uid", sb->uid);
		wb_u64(&w, "gid", sb->gid);
		wb_policy(&w, sb);
	}
	/* Written only when set, so specs without them read as before. */
	for (size_t i = 0; i < spec->n_env; i++)
		wb_str(&w, "env", spec->env[i]);
	if (spec->cwd)
		wb_str(&w, "cwd", spec->cwd);
	if (spec->max_run_time_ns)
		wb_u64(&w, "max_run_time_ns", spec->max_run_time_ns);
	if (spec->run_time_grace_ns)
		wb_u64(&w, "run_time_grace_ns", spec->run_time_grace_ns);
	return wb_finish(&w, len);
}

char *jobstart_encode(const struct jobstart *st, size_t *len)
{
	struct wbuf w = {0};
	wb_put(&w, "rund-start 1\n", 13);
	wb_u64(&w, "supervisor_pid", (uint64_t)st->supervisor_pid);
	wb_u64(&w, "pid", (uint64_t)st->pid);
	wb_u64(&w, "start_ns", st->start_ns);
	return wb_finish(&w, len);
}

char *jobstatus_encode(const struct jobstatus *st, size_t *len)
{
	struct wbuf w = {0};
	wb_put(&w, "rund-status 1\n", 14);
	wb_u64(&w, "end_ns", st->end_ns);
	wb_u64(&w, "exited", st->exited);
	wb_u64(&w, "exit_code", (uint64_t)(st->exit_code < 0 ? 0 : st->exit_code));
	wb_u64(&w, "signal", (uint64_t)(st->signal < 0 ? 0 : st->signal));
	wb_u64(&w, "stopped", st->stopped);
	wb_u64(&w, "oom_killed", st->oom_killed);
	wb_u64(&w, "user_usec", st->user_usec);
	wb_u64(&w, "system_usec", st->system_usec);
	wb_u64(&w, "memory_peak", st->memory_peak);
	wb_u64(&w, "log_bytes", st->log_bytes);
	wb_u64(&w, "log_truncated", st->log_truncated);
	wb_u64(&w, "log_end", st->log_end);
	wb_u64(&w, "log_lost", st->log_lost);
	wb_u64(&w, "log_first", st->log_first);
	if (st->timed_out)
		wb_u64(&w, "timed_out", 1);
	return wb_finish(&w, len);
}

char *jobstop_encode(const struct jobstop *st, size_t *len)
{
	struct wbuf w = {0};
	wb_put(&w, "rund-stop 1\n", 12);
	wb_u64(&w, "signal", (uint64_t)(st->signal < 0 ? 0 : st->signal));
	wb_u64(&w, "to_group", st->to_group);
	wb_u64(&w, "grace_ns", st->grace_ns);
	return wb_finish(&w, len);
}

/* ---- decoding ---- */

struct rd {
	const char *p, *end;
	unsigned line;
	const char *what; /* "spec", "started", "status" for messages */
	struct err *err;
};

static int rd_bad(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rd_bad(struct rd *r, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_set(r->err, EBADMSG, ERR_INTERNAL, "%s file line %u: %s", r->what, r->line, msg);
}

static int rd_version(struct rd *r, const char *want)
{
	size_t n = strlen(want);
	r->line = 1;
	size_t avail = r->p ? (size_t)(r->end - r->p) : 0;
	if (avail < n + 1 || memcmp(r->p, want, n) != 0 || r->p[n] != '\n') {
		const char *nl = avail ? memchr(r->p, '\n', avail) : NULL;
		size_t shown = nl ? (size_t)(nl - r->p) : avail;
		if (shown > 40)
			shown = 40;
		char got[48];
		if (shown)
			memcpy(got, r->p, shown);
		got[shown] = '\0';
		for (size_t i = 0; i < shown; i++)
			if ((unsigned char)got[i] < 0x20 || (unsigned char)got[i] >= 0x7f)
				got[i] = '?';
		char msg[120];
		snprintf(msg, sizeof msg, "expected version \"%s\", got \"%s\"", want, got);
		return rd_bad(r, "%s", msg);
	}
	r->p += n + 1;
	return 0;
}

/* Reads the next key (letters, digits, '_') into key and the separator
 * after it. Returns 1 for a key followed by ' ', 2 for the "end" line
 * that finishes the input, or -EBADMSG. */
static int rd_key(struct rd *r, char *key, size_t cap)
{
	r->line++;
	size_t n = 0;
	while (r->p < r->end) {
		char c = *r->p;
		if (c == ' ' || c == '\n')
			break;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') || n + 1 >= cap)
			return rd_bad(r, "%s", "malformed key");
		key[n++] = c;
		r->p++;
	}
	key[n] = '\0';
	if (r->p >= r->end)
		return rd_bad(r, "%s", "truncated (no \"end\" line)");
	char sep = *r->p++;
	if (sep == '\n') {
		if (strcmp(key, "end") != 0)
			return rd_bad(r, "key \"%s\" has no value", key);
		if (r->p != r->end)
			return rd_bad(r, "%s", "data after the \"end\" line");
		return 2;
	}
	if (n == 0)
		return rd_bad(r, "%s", "empty key");
	return 1;
}

/* Strict unsigned decimal terminated by term; at most max. */
static int rd_num(struct rd *r, char term, uint64_t max, uint64_t *out, const char *key)
{
	const char *s = r->p;
	uint64_t v = 0;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return rd_bad(r, "number for \"%s\" is too large", key);
		v = v * 10 + d;
		r->p++;
	}
	size_t digits = (size_t)(r->p - s);
	if (r->p >= r->end)
		return rd_bad(r, "value of \"%s\" is truncated", key);
	if (digits == 0 || *r->p != term || (digits > 1 && *s == '0'))
		return rd_bad(r, "bad number for \"%s\"", key);
	if (v > max)
		return rd_bad(r, "number for \"%s\" is out of range", key);
	r->p++;
	*out = v;
	return 0;
}

static unsigned count_newlines(const char *p, size_t n)
{
	unsigned c = 0;
	const char *end = p + n;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		c++;
		p++;
	}
	return c;
}

/* "<len> <bytes>\n" → a malloc'd NUL-terminated copy. */
static int rd_str(struct rd *r, const char *key, char **out)
{
	uint64_t n;
	int e = rd_num(r, ' ', UINT64_MAX, &n, key);
	if (e < 0)
		return e;
	if (n >= (uint64_t)(r->end - r->p))
		return rd_bad(r, "string for \"%s\" is truncated", key);
	if (memchr(r->p, '\0', (size_t)n))
		return rd_bad(r, "string for \"%s\" contains a NUL byte", key);
	if (r->p[n] != '\n')
		return rd_bad(r, "string for \"%s\" is not followed by a newline", key);
	*out = xstrndup(r->p, (size_t)n);
	r->line += count_newlines(r->p, (size_t)n);
	r->p += n + 1;
	return 0;
}

bool io_device_parse(const char *s, size_t n, struct io_device *dev)
{
	char buf[32];
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *colon = strchr(buf, ':');
	if (!colon)
		return false;
	*colon = '\0';
	uint64_t maj, min;
	if (parse_u64(buf, &maj) < 0 || parse_u64(colon + 1, &min) < 0 || maj >= (1u << 12) ||
	    min >= (1u << 20))
		return false;
	dev->major = (unsigned)maj;
	dev->minor = (unsigned)min;
	return true;
}

static int spec_field(struct rd *r, const char *key, struct jobspec *s, bool *seen_id,
		      bool *seen_created, bool *seen_log, unsigned *seen_sandbox)
{
	_cleanup_free_ char *v = NULL;
	int e;

	if (strcmp(key, "arg") == 0) {
		if ((e = rd_str(r, key, &v)) < 0)
			return e;
		s->argv = xrealloc(s->argv, (s->argc + 2) * sizeof *s->argv);
		s->argv[s->argc++] = steal_pointer(&v);
		s->argv[s->argc] = NULL;
		return 0;
	}
	if (strcmp(key, "owner") == 0) {
		if ((e = rd_str(r, key, &v)) < 0)
			return e;
		san_set_add(&s->owners, v);
		return 0;
	}
	if (strcmp(key, "io_device") == 0) {
		if ((e = rd_str(r, key, &v)) < 0)
			return e;
		struct io_device dev;
		if (!io_device_parse(v, strlen(v), &dev))
			return rd_bad(r, "bad io_device \"%.40s\"", v);
		s->io_devices =
			xrealloc(s->io_devices, (s->n_io_devices + 1) * sizeof *s->io_devices);
		s->io_devices[s->n_io_devices++] = dev;
		return 0;
	}
	if (strcmp(key, "id") == 0) {
		if (*seen_id)
			return rd_bad(r, "repeated key \"%s\"", key);
		if ((e = rd_str(r, key, &v)) < 0)
			return e;
		struct ulid u;
		if (ulid_parse(v, strlen(v), &u) < 0)
			return rd_bad(r, "bad id \"%.40s\"", v);
		memcpy(s->id, v, ULID_LEN + 1);
		*seen_id = true;
		return 0;
	}
	if (strcmp(key, "cgroup") == 0 || strcmp(key, "cwd") == 0) {
		char **dst = key[1] == 'g' ? &s->cgroup : &s->cwd;
		if (*dst)
			return rd_bad(r, "repeated key \"%s\"", key);
		return rd_str(r, key, dst);
	}
	if (strcmp(key, "env") == 0) {
		if (s->n_env == JOBSPEC_ENV_MAX)
			return rd_bad(r, "more than %d \"env\" lines", JOBSPEC_ENV_MAX);
		if ((e = rd_str(r, key, &v)) < 0)
			return e;
		if (!strchr(v, '=') || v[0] == '=')
			return rd_bad(r, "env \"%.40s\" is not KEY=VALUE", v);
		s->env = xrealloc(s->env, (s->n_env + 1) * sizeof *s->env);
		s->env[s->n_env++] = steal_pointer(&v);
		return 0;
	}
	struct sandbox_policy *sb = &s->sandbox;
	if (strcmp(key, "hide") == 0) {
		if (sb->n_hide == SANDBOX_MAX_HIDE)
			return rd_bad(r, "more than %d \"hide\" lines", SANDBOX_MAX_HIDE);
		return rd_str(r, key, &sb->hide[sb->n_hide++]);
	}
	if (strcmp(key, "rootfs") == 0 || strcmp(key, "cgroup_mount") == 0) {
		char **dst = key[0] == 'r' ? &sb->rootfs : &sb->cgroup_mount;
		if (*dst)
			return rd_bad(r, "repeated key \"%s\"", key);
		return rd_str(r, key, dst);
	}
	/* uid, gid and namespaces are required together; the rest optional. */
	static const char *const sandbox_keys[] = {"uid", "gid", "namespaces", "tmp_size",
						   "max_procs"};
	for (unsigned i = 0; i < ARRAY_SIZE(sandbox_keys); i++) {
		if (strcmp(key, sandbox_keys[i]) != 0)
			continue;
		uint64_t max = i < 2	? 4294967294u
			       : i == 2 ? (uint64_t)(SANDBOX_NS_DEFAULT | SANDBOX_NS_NET)
					: UINT64_MAX;
		uint64_t num;
		if (*seen_sandbox & (1u << i))
			return rd_bad(r, "repeated key \"%s\"", key);
		if ((e = rd_num(r, '\n', max, &num, key)) < 0)
			return e;
		if (i == 0)
			sb->uid = (uint32_t)num;
		else if (i == 1)
			sb->gid = (uint32_t)num;
		else if (i == 2)
			sb->namespaces = (unsigned)num;
		else if (i == 3)
			sb->tmp_size = num;
		else
			sb->max_procs = num;
		*seen_sandbox |= 1u << i;
		return 0;
	}
	uint64_t *dst = NULL;
	bool *seen = NULL;
	if (strcmp(key, "created_ns") == 0) {
		dst = &s->created_ns;
		seen = seen_created;
	} else if (strcmp(key, "max_log_bytes") == 0) {
		dst = &s->max_log_bytes;
		seen = seen_log;
	} else if (strcmp(key, "max_run_time_ns") == 0 || strcmp(key, "run_time_grace_ns") == 0) {
		bool grace = key[0] == 'r';
		uint64_t num;
		if (grace ? s->run_time_grace_ns : s->max_run_time_ns)
			return rd_bad(r, "repeated key \"%s\"", key);
		if ((e = rd_num(r, '\n', grace ? JOBSPEC_GRACE_MAX_NS : UINT64_MAX, &num, key)) < 0)
			return e;
		if (num == 0)
			return rd_bad(r, "\"%s\" is 0", key);
		*(grace ? &s->run_time_grace_ns : &s->max_run_time_ns) = num;
		return 0;
	} else {
		int l = job_limit_find(key, strlen(key));
		if (l >= 0) {
			dst = &s->limits.value[l];
			seen = &s->limits.has[l];
		}
	}
	if (!dst)
		return rd_bad(r, "unknown key \"%s\"", key);
	if (*seen)
		return rd_bad(r, "repeated key \"%s\"", key);
	if ((e = rd_num(r, '\n', UINT64_MAX, dst, key)) < 0)
		return e;
	*seen = true;
	return 0;
}

int jobspec_decode(const char *buf, size_t len, struct jobspec *out, struct err *err)
{
	struct jobspec s;
	memset(&s, 0, sizeof s);
	memset(out, 0, sizeof *out);
	struct rd r = {.p = buf, .end = buf ? buf + len : buf, .what = "spec", .err = err};
	bool seen_id = false, seen_created = false, seen_log = false;
	unsigned seen_sandbox = 0; /* bits: uid, gid, namespaces */

	int e = rd_version(&r, "rund-spec 1");
	while (e == 0) {
		char key[32];
		int k = rd_key(&r, key, sizeof key);
		if (k == 2)
			break;
		e = k < 0 ? k
			  : spec_field(&r, key, &s, &seen_id, &seen_created, &seen_log,
				       &seen_sandbox);
	}
	if (e == 0 && !seen_id)
		e = rd_bad(&r, "%s", "missing \"id\"");
	if (e == 0 && !seen_created)
		e = rd_bad(&r, "%s", "missing \"created_ns\"");
	if (e == 0 && s.argc == 0)
		e = rd_bad(&r, "%s", "missing \"arg\" (no command)");
	/* uid, gid and namespaces come together, or the job ran as root. */
	unsigned required = seen_sandbox & 7;
	if (e == 0 && required != 0 && required != 7)
		e = rd_bad(&r, "%s", "\"uid\", \"gid\" and \"namespaces\" must come together");
	if (e == 0 && required == 0 &&
	    (seen_sandbox || s.sandbox.n_hide || s.sandbox.rootfs || s.sandbox.cgroup_mount))
		e = rd_bad(&r, "%s", "sandbox settings without a \"uid\"");
	if (e == 0 && required == 7 && (s.sandbox.uid == 0 || s.sandbox.gid == 0))
		e = rd_bad(&r, "%s", "a confined job's uid and gid cannot be 0");
	s.sandbox.root = required == 0;
	if (e < 0) {
		jobspec_free(&s);
		return e;
	}
	*out = s;
	return 0;
}

bool jobspec_is_warm(const char *buf, size_t len)
{
	static const char v[] = JOBSPEC_WARM_VERSION "\n";
	return len >= sizeof v - 1 && memcmp(buf, v, sizeof v - 1) == 0;
}

int jobspec_warm_decode(const char *buf, size_t len, struct jobspec *out, struct err *err)
{
	struct jobspec s;
	memset(&s, 0, sizeof s);
	memset(out, 0, sizeof *out);
	struct rd r = {.p = buf, .end = buf ? buf + len : buf, .what = "warm-up", .err = err};
	bool unused = false;
	unsigned seen_sandbox = 0;
	/* The spec's own keys, but only those every job of a daemon shares. */
	static const char *const keys[] = {"cgroup",	   "namespaces", "hide",     "rootfs",
					   "cgroup_mount", "tmp_size",	 "max_procs"};
	int e = rd_version(&r, JOBSPEC_WARM_VERSION);
	while (e == 0) {
		char key[32];
		int k = rd_key(&r, key, sizeof key);
		if (k == 2)
			break;
		size_t i = 0;
		while (k >= 0 && i < ARRAY_SIZE(keys) && strcmp(key, keys[i]) != 0)
			i++;
		if (k >= 0 && i == ARRAY_SIZE(keys))
			k = rd_bad(&r, "unknown key \"%s\"", key);
		e = k < 0 ? k : spec_field(&r, key, &s, &unused, &unused, &unused, &seen_sandbox);
	}
	if (e == 0 && !s.cgroup)
		e = rd_bad(&r, "%s", "missing \"cgroup\"");
	if (e == 0 && !(seen_sandbox & 4))
		e = rd_bad(&r, "%s", "missing \"namespaces\"");
	if (e < 0) {
		jobspec_free(&s);
		return e;
	}
	*out = s;
	return 0;
}

void jobspec_free(struct jobspec *spec)
{
	if (!spec)
		return;
	for (size_t i = 0; i < spec->argc; i++)
		free(spec->argv[i]);
	free(spec->argv);
	san_set_free(&spec->owners);
	free(spec->cgroup);
	free(spec->io_devices);
	sandbox_policy_free(&spec->sandbox);
	for (size_t i = 0; i < spec->n_env; i++)
		free(spec->env[i]);
	free(spec->env);
	free(spec->cwd);
	memset(spec, 0, sizeof *spec);
}

/* start/status: flat sets of integers, each required exactly once. */
struct num_field {
	const char *key;
	uint64_t max;
	uint64_t val;
	bool seen;
	bool optional; /* added after version 1: absent reads as 0 */
};

static int decode_numbers(struct rd *r, const char *version, struct num_field *f, size_t n)
{
	int e = rd_version(r, version);
	while (e == 0) {
		char key[32];
		int k = rd_key(r, key, sizeof key);
		if (k == 2)
			break;
		if (k < 0)
			return k;
		struct num_field *hit = NULL;
		for (size_t i = 0; i < n; i++)
			if (strcmp(f[i].key, key) == 0)
				hit = &f[i];
		if (!hit)
			return rd_bad(r, "unknown key \"%s\"", key);
		if (hit->seen)
			return rd_bad(r, "repeated key \"%s\"", key);
		e = rd_num(r, '\n', hit->max, &hit->val, key);
		hit->seen = true;
	}
	if (e < 0)
		return e;
	for (size_t i = 0; i < n; i++)
		if (!f[i].seen && !f[i].optional)
			return rd_bad(r, "missing \"%s\"", f[i].key);
	return 0;
}

int jobstart_decode(const char *buf, size_t len, struct jobstart *out, struct err *err)
{
	memset(out, 0, sizeof *out);
	struct rd r = {.p = buf, .end = buf ? buf + len : buf, .what = "started", .err = err};
	struct num_field f[] = {
		{"supervisor_pid", INT_MAX, 0, false},
		{"pid", INT_MAX, 0, false},
		{"start_ns", UINT64_MAX, 0, false},
	};
	int e = decode_numbers(&r, "rund-start 1", f, ARRAY_SIZE(f));
	if (e < 0)
		return e;
	out->supervisor_pid = (pid_t)f[0].val;
	out->pid = (pid_t)f[1].val;
	out->start_ns = f[2].val;
	return 0;
}

int jobstatus_decode(const char *buf, size_t len, struct jobstatus *out, struct err *err)
{
	memset(out, 0, sizeof *out);
	struct rd r = {.p = buf, .end = buf ? buf + len : buf, .what = "status", .err = err};
	struct num_field f[] = {
		{"end_ns", UINT64_MAX, 0, false},
		{"exited", 1, 0, false},
		{"exit_code", 255, 0, false},
		{"signal", 127, 0, false},
		{"stopped", 1, 0, false},
		{"oom_killed", 1, 0, false},
		{"user_usec", UINT64_MAX, 0, false},
		{"system_usec", UINT64_MAX, 0, false},
		{"memory_peak", UINT64_MAX, 0, false},
		{"log_bytes", UINT64_MAX, 0, false},
		{"log_truncated", 1, 0, false},
		{"timed_out", 1, 0, false, true},
		{"log_end", UINT64_MAX, 0, false, true},
		{"log_lost", UINT64_MAX, 0, false, true},
		{"log_first", UINT64_MAX, 0, false, true},
	};
	int e = decode_numbers(&r, "rund-status 1", f, ARRAY_SIZE(f));
	if (e < 0)
		return e;
	out->end_ns = f[0].val;
	out->exited = f[1].val;
	out->exit_code = (int)f[2].val;
	out->signal = (int)f[3].val;
	out->stopped = f[4].val;
	out->oom_killed = f[5].val;
	out->user_usec = f[6].val;
	out->system_usec = f[7].val;
	out->memory_peak = f[8].val;
	out->log_bytes = f[9].val;
	out->log_truncated = f[10].val;
	/* A status from before segments: its log kept everything up to the
	 * cap and lost nothing that a reader would not see. */
	out->log_end = f[12].seen ? f[12].val : f[9].val;
	out->log_lost = f[13].val;
	out->log_first = f[14].val;
	out->timed_out = f[11].val;
	return 0;
}

int jobstop_decode(const char *buf, size_t len, struct jobstop *out, struct err *err)
{
	memset(out, 0, sizeof *out);
	if (len == 0)
		return 0;
	struct rd r = {.p = buf, .end = buf ? buf + len : buf, .what = "stop", .err = err};
	struct num_field f[] = {
		{"signal", 64, 0, false},
		{"to_group", 1, 0, false},
		{"grace_ns", JOBSPEC_GRACE_MAX_NS, 0, false},
	};
	int e = decode_numbers(&r, "rund-stop 1", f, ARRAY_SIZE(f));
	if (e < 0)
		return e;
	out->signal = (int)f[0].val;
	out->to_group = f[1].val;
	out->grace_ns = f[2].val;
	return 0;
}
