/* loop: loop.h on top of libevent. The daemon's event_base is the loop. */
#include "loop.h"

#include <event2/event.h>
#include <stdio.h>

#include "util.h"

struct loop {
	struct event_base *base;
};

struct loop_watch {
	struct event *ev;
	loop_fn fn;
	void *ctx;
};

struct loop_timer {
	struct event *ev;
	loop_fn fn;
	void *ctx;
};

struct loop *loop_new(struct event_base *base)
{
	struct loop *loop = xcalloc(1, sizeof *loop);
	loop->base = base;
	return loop;
}

void loop_free(struct loop *loop)
{
	free(loop);
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct loop_watch *w = arg;
	w->fn(w->ctx);
}

struct loop_watch *loop_watch_fd(struct loop *loop, int fd, loop_fn fn, void *ctx)
{
	struct loop_watch *w = xcalloc(1, sizeof *w);
	w->fn = fn;
	w->ctx = ctx;
	w->ev = event_new(loop->base, fd, EV_READ | EV_PERSIST, on_fd, w);
	if (!w->ev || event_add(w->ev, NULL) < 0) {
		fprintf(stderr, "rund: cannot watch fd %d\n", fd);
		exit(1);
	}
	return w;
}

void loop_watch_free(struct loop_watch *w)
{
	if (!w)
		return;
	event_free(w->ev);
	free(w);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct loop_timer *t = arg;
	t->fn(t->ctx);
}

struct loop_timer *loop_timer_new(struct loop *loop, loop_fn fn, void *ctx)
{
	struct loop_timer *t = xcalloc(1, sizeof *t);
	t->fn = fn;
	t->ctx = ctx;
	t->ev = evtimer_new(loop->base, on_timer, t);
	if (!t->ev) {
		fprintf(stderr, "rund: cannot create a timer\n");
		exit(1);
	}
	return t;
}

void loop_timer_arm(struct loop_timer *t, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(t->ev, &tv);
}

void loop_timer_cancel(struct loop_timer *t)
{
	evtimer_del(t->ev);
}

void loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return;
	event_free(t->ev);
	free(t);
}
