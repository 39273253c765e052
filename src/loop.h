/* loop: the small slice of the event loop the job layer may use (fd
 * readiness and timers), so that nothing below api.c includes libevent.
 * Implemented in loop.c on top of the daemon's event_base. */
#ifndef RUND_LOOP_H
#define RUND_LOOP_H

#include <stdint.h>

struct event_base;
struct loop;
struct loop_watch;
struct loop_timer;

typedef void (*loop_fn)(void *ctx);

/* Wraps the daemon's event_base (borrowed: it must outlive the loop and
 * every watch and timer made from it). Never NULL (allocation failure
 * exits). */
struct loop *loop_new(struct event_base *base);
/* Frees the wrapper, not the event_base. Accepts NULL. */
void loop_free(struct loop *loop);

/* Calls fn(ctx) each time fd is readable, until loop_watch_free(). The fd
 * stays owned by the caller. Never NULL (allocation failure exits). */
struct loop_watch *loop_watch_fd(struct loop *loop, int fd, loop_fn fn, void *ctx);
void loop_watch_free(struct loop_watch *w);

/* A one-shot timer, re-armable; loop_timer_arm replaces a pending expiry. */
struct loop_timer *loop_timer_new(struct loop *loop, loop_fn fn, void *ctx);
void loop_timer_arm(struct loop_timer *t, uint64_t ms);
void loop_timer_cancel(struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);

#endif
