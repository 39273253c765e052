/* util: cleanup attributes, allocation that cannot fail, and the EINTR-safe
 * I/O helpers every module uses. Nothing here knows about rund's domain. */
#ifndef RUND_UTIL_H
#define RUND_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Cleanup helpers: a variable declared with one of these is released when it
 * goes out of scope. Hand ownership on with steal_pointer()/steal_fd(). */
void freep(void *p);
void closep(int *fd);
void fclosep(void *fp);
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *steal_pointer_impl(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_pointer(pp) ((__typeof__(*(pp)))steal_pointer_impl(pp))

static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* Allocation: on failure these print a message and exit(1) (STYLE §5: the
 * only request-path exit). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* I/O: retry on EINTR; write_all loops over short writes.
 * Return 0 (or bytes read) on success, -errno on failure. */
ssize_t read_retry(int fd, void *buf, size_t n);
int write_all(int fd, const void *buf, size_t n);
/* Reads up to max bytes of fd until EOF into a NUL-terminated malloc'd
 * buffer; *len receives the byte count. -EFBIG if the file is longer. */
int read_fd_all(int fd, size_t max, char **out, size_t *len);
/* Reads a whole file relative to dirfd (AT_FDCWD allowed), same contract. */
int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len);
/* Writes data to dirfd/name atomically: temp file, then rename. Readers
 * see the old or the new content, never a mix, whatever process dies
 * when. Not fsync'ed: rund's files describe processes, which do not
 * survive a power loss either, and an fsync on Start's path costs
 * milliseconds. Returns 0 or -errno. */
int write_file_atomic(int dirfd, const char *name, const void *data, size_t len);
/* Writes a short string to an existing file (cgroup/proc knobs). 0 or -errno. */
int write_file_at(int dirfd, const char *path, const char *s);

/* Parsing: strict decimal, whole string, no sign, no spaces. 0 or -EINVAL /
 * -ERANGE. */
int parse_u64(const char *s, uint64_t *out);

struct err;
/* Splits a network address "host:port", "[v6addr]:port" or ":port" into
 * malloc'd *host and *port (the decimal port text, 0..65535). *host is ""
 * for ":port"; what an empty host or port 0 means is the caller's policy.
 * A bare IPv6 literal needs brackets. Returns 0, or -EINVAL with err naming
 * the address (empty or non-numeric port, unbalanced brackets, no colon);
 * *host and *port are untouched on failure. */
int addr_split(const char *addr, char **host, char **port, struct err *err);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF), as proto3 requires of string fields. */
bool utf8_valid(const char *s, size_t len);

/* Monotonic and real clocks in nanoseconds. */
uint64_t now_mono_ns(void);
uint64_t now_real_ns(void);

#endif
