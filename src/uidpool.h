/* uidpool: the uids (and equal gids) that confined jobs run as (DESIGN §10).
 *
 * Every live job holds one uid of the range -job_uids FIRST-LAST, and no two
 * jobs ever hold the same. The daemon takes one at Start and releases it only
 * once no process of that job can remain (its cgroup is gone). Uids come
 * round-robin from a cursor, so a released uid is the last to be handed out
 * again. After a restart the daemon marks every uid still held and resumes
 * the cursor after the newest job's. Pure: no system calls. */
#ifndef RUND_UIDPOOL_H
#define RUND_UIDPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* The default range: above systemd's container ranges (which end at
 * 1879048191), below its foreign-uid range (2147352576) and below 2^31, so
 * nothing that treats uids as signed is surprised; far above /etc/subuid
 * allocations made from 100000 on. */
#define UIDPOOL_DEFAULT_FIRST 1900000000u
#define UIDPOOL_DEFAULT_LAST 1900065535u
#define UIDPOOL_DEFAULT "1900000000-1900065535"
#define UIDPOOL_MAX_SIZE (1u << 24)

struct uidpool;

/* Parses "FIRST-LAST" (decimal, FIRST <= LAST, at most UIDPOOL_MAX_SIZE
 * uids, none of them 0, 65534, 65535 or 4294967295). 0 or -EINVAL with err
 * naming the value. */
int uidpool_parse_range(const char *s, uint32_t *first, uint32_t *last, struct err *err);

/* A pool with every uid of [first, last] free; the first take returns
 * first. */
struct uidpool *uidpool_new(uint32_t first, uint32_t last);
void uidpool_free(struct uidpool *p); /* accepts NULL */

/* Takes the next free uid after the cursor. 0, or -EUSERS when every uid of
 * the range is held. */
int uidpool_take(struct uidpool *p, uint32_t *uid);
/* Marks uid held (recovery). 0; -ERANGE outside the range; -EEXIST if it is
 * already held (two jobs recorded with one uid). */
int uidpool_hold(struct uidpool *p, uint32_t uid);
/* Frees a held uid; a uid outside the range or not held is ignored. */
void uidpool_release(struct uidpool *p, uint32_t uid);
/* The next take starts looking after uid (recovery: the newest job's). */
void uidpool_resume_after(struct uidpool *p, uint32_t uid);

bool uidpool_contains(const struct uidpool *p, uint32_t uid);
uint32_t uidpool_held(const struct uidpool *p);

#endif
