/*
 * h3wt_driver: timers, the flush pass and the callback depth (see
 * h3wt_driver.h).
 */
#include "h3wt_driver.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "h3wt_util.h"

static void fine_cb(uv_poll_t *h, int status, int events);

/* Deadlines closer than this take the fine timer. */
#define FINE_NS 1000000ULL

static void spin_cb(uv_idle_t *h) {
  (void)h; /* only keeps the loop polling without sleeping */
}

void h3wt_driver_enter(h3wt_driver *d) {
  ++d->depth;
}

void h3wt_driver_leave(h3wt_driver *d) {
  assert(d->depth > 0);
  if (--d->depth == 0 && d->cbs->settled) {
    d->cbs->settled(d->ud);
  }
}

int h3wt_driver_depth(const h3wt_driver *d) {
  return d->depth;
}

void h3wt_driver_wake(h3wt_driver *d) {
  if (!d->closing) {
    uv_idle_start(&d->spin, spin_cb);
  }
}

void h3wt_drv_mark_dirty(h3wt_drv_item *it) {
  if (it->dirty || it->gone) {
    return;
  }
  it->dirty = 1;
  it->dirty_next = it->drv->dirty;
  it->drv->dirty = it;
}

static void flush_pass(h3wt_driver *d) {
  h3wt_drv_item *list = d->dirty, *again = NULL;
  uint64_t ts = h3wt_now_ns();
  assert(d->depth > 0);
  d->dirty = NULL;
  while (list && !d->closing) {
    h3wt_drv_item *it = list;
    list = it->dirty_next;
    it->dirty = 0;
    it->dirty_next = NULL;
    if (it->gone) {
      continue;
    }
    if (d->cbs->flush(it, ts, d->ud) && !it->gone && !it->dirty) {
      it->dirty = 1;
      it->dirty_next = again;
      again = it;
    }
  }
  /* Items that had more to send go first next time round; callbacks may
     also have dirtied others meanwhile.  One that went later in this pass
     is dropped here. */
  for (h3wt_drv_item *it = again; it;) {
    h3wt_drv_item *next = it->dirty_next;
    if (it->gone) {
      it->dirty_next = NULL;
    } else {
      it->dirty_next = d->dirty;
      d->dirty = it;
    }
    it = next;
  }
  if (d->closing) {
    return;
  }
  if (d->dirty) {
    uv_idle_start(&d->spin, spin_cb);
  } else {
    uv_idle_stop(&d->spin);
  }
}

static void flush_cb(uv_prepare_t *h) {
  h3wt_driver *d = h->data;
  h3wt_driver_enter(d);
  flush_pass(d);
  if (d->cbs->after_flush && !d->closing) {
    d->cbs->after_flush(d->ud);
  }
  h3wt_driver_leave(d); /* runs what was asked for from inside callbacks */
}

int h3wt_driver_init(h3wt_driver *d, uv_loop_t *loop,
                     const h3wt_driver_callbacks *cbs, void *ud,
                     int fine_timer) {
  d->loop = loop;
  d->dirty = NULL;
  d->depth = 0;
  d->closing = 0;
  d->cbs = cbs;
  d->ud = ud;
  uv_prepare_init(loop, &d->flush);
  d->flush.data = d;
  uv_idle_init(loop, &d->spin);
  d->spin.data = d;
  uv_prepare_start(&d->flush, flush_cb);
  d->fine_heap = NULL;
  d->fine_len = d->fine_cap = 0;
  d->fine_armed = UINT64_MAX;
  d->tfd = fine_timer ? timerfd_create(CLOCK_MONOTONIC,
                                       TFD_NONBLOCK | TFD_CLOEXEC)
                       : -1;
  if (d->tfd >= 0 && uv_poll_init(loop, &d->fine_poll, d->tfd) != 0) {
    close(d->tfd);
    d->tfd = -1;
  }
  if (d->tfd >= 0) {
    d->fine_poll.data = d;
    uv_poll_start(&d->fine_poll, UV_READABLE, fine_cb);
  }
  return 0;
}

int h3wt_driver_close(h3wt_driver *d, uv_close_cb cb, void *data) {
  int n = 2;
  d->closing = 1;
  d->dirty = NULL;
  uv_prepare_stop(&d->flush);
  uv_idle_stop(&d->spin);
  d->flush.data = data;
  d->spin.data = data;
  uv_close((uv_handle_t *)&d->flush, cb);
  uv_close((uv_handle_t *)&d->spin, cb);
  for (size_t i = 0; i < d->fine_len; ++i) {
    d->fine_heap[i]->fine_idx = SIZE_MAX;
  }
  free(d->fine_heap);
  d->fine_heap = NULL;
  d->fine_len = d->fine_cap = 0;
  if (d->tfd >= 0) {
    /* libuv stops watching the descriptor in uv_close (epoll_ctl DEL
       before the close below). */
    uv_poll_stop(&d->fine_poll);
    d->fine_poll.data = data;
    uv_close((uv_handle_t *)&d->fine_poll, cb);
    close(d->tfd);
    d->tfd = -1;
    ++n;
  }
  return n;
}


/* ---- the fine timer ------------------------------------------------------ */

static void fine_swap(h3wt_driver *d, size_t a, size_t b) {
  h3wt_drv_item *t = d->fine_heap[a];
  d->fine_heap[a] = d->fine_heap[b];
  d->fine_heap[b] = t;
  d->fine_heap[a]->fine_idx = a;
  d->fine_heap[b]->fine_idx = b;
}

static void fine_up(h3wt_driver *d, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (d->fine_heap[p]->fine_due <= d->fine_heap[i]->fine_due) {
      break;
    }
    fine_swap(d, i, p);
    i = p;
  }
}

static void fine_down(h3wt_driver *d, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < d->fine_len &&
        d->fine_heap[l]->fine_due < d->fine_heap[m]->fine_due) {
      m = l;
    }
    if (r < d->fine_len &&
        d->fine_heap[r]->fine_due < d->fine_heap[m]->fine_due) {
      m = r;
    }
    if (m == i) {
      break;
    }
    fine_swap(d, i, m);
    i = m;
  }
}

/* Sets the timerfd to the earliest item's deadline (or disarms it). */
static void fine_arm(h3wt_driver *d) {
  uint64_t due = d->fine_len ? d->fine_heap[0]->fine_due : UINT64_MAX;
  struct itimerspec its = {{0, 0}, {0, 0}};
  if (due == d->fine_armed || d->tfd < 0) {
    return;
  }
  if (due != UINT64_MAX) {
    /* 0 would disarm: an already-passed deadline is "1 ns", due at once. */
    uint64_t v = due ? due : 1;
    its.it_value.tv_sec = (time_t)(v / 1000000000ULL);
    its.it_value.tv_nsec = (long)(v % 1000000000ULL);
  }
  timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
  d->fine_armed = due;
}

static void fine_remove(h3wt_drv_item *it) {
  h3wt_driver *d = it->drv;
  size_t i = it->fine_idx;
  if (i == SIZE_MAX) {
    return;
  }
  assert(i < d->fine_len && d->fine_heap[i] == it);
  it->fine_idx = SIZE_MAX;
  if (i != --d->fine_len) {
    d->fine_heap[i] = d->fine_heap[d->fine_len];
    d->fine_heap[i]->fine_idx = i;
    fine_up(d, i);
    fine_down(d, d->fine_heap[i]->fine_idx);
  }
}

/* Puts it on the fine heap for deadline.  Returns 0, or -1 when the heap
   cannot grow (the caller takes the millisecond timer instead). */
static int fine_set(h3wt_drv_item *it, uint64_t deadline) {
  h3wt_driver *d = it->drv;
  if (d->tfd < 0) {
    return -1;
  }
  if (it->fine_idx == SIZE_MAX) {
    if (d->fine_len == d->fine_cap) {
      size_t cap = d->fine_cap ? 2 * d->fine_cap : 16;
      h3wt_drv_item **h = realloc(d->fine_heap, cap * sizeof(*h));
      if (h == NULL) {
        return -1;
      }
      d->fine_heap = h;
      d->fine_cap = cap;
    }
    it->fine_idx = d->fine_len++;
    d->fine_heap[it->fine_idx] = it;
    it->fine_due = deadline;
    fine_up(d, it->fine_idx);
  } else {
    uint64_t old = it->fine_due;
    it->fine_due = deadline;
    if (deadline < old) {
      fine_up(d, it->fine_idx);
    } else {
      fine_down(d, it->fine_idx);
    }
  }
  return 0;
}

static void fine_cb(uv_poll_t *h, int status, int events) {
  h3wt_driver *d = h->data;
  h3wt_drv_item *due[64];
  uint64_t expirations;
  (void)status;
  (void)events;
  /* Reading clears the readiness; nothing to do if another wake-up
     already took it (EAGAIN). */
  if (read(d->tfd, &expirations, sizeof(expirations)) < 0) {
    (void)0;
  }
  d->fine_armed = UINT64_MAX; /* a fired one-shot timer is disarmed */
  h3wt_driver_enter(d);
  for (;;) {
    uint64_t now = h3wt_now_ns();
    size_t n = 0;
    /* Taken off the heap first: an expiry may put its item straight back
       (the next paced burst), which must wait for its own deadline. */
    while (n < sizeof(due) / sizeof(due[0]) && d->fine_len &&
           d->fine_heap[0]->fine_due <= now) {
      due[n] = d->fine_heap[0];
      fine_remove(due[n]);
      ++n;
    }
    if (n == 0) {
      break;
    }
    /* Items stay allocated until their close callbacks, so one closed by
       an earlier expiry here is still readable (and marked gone). */
    for (size_t i = 0; i < n && !d->closing; ++i) {
      if (!due[i]->gone) {
        d->cbs->expired(due[i], now, d->ud);
      }
    }
    if (d->closing) {
      break;
    }
  }
  if (!d->closing) {
    fine_arm(d);
  }
  h3wt_driver_leave(d);
}

static void timer_cb(uv_timer_t *t) {
  h3wt_drv_item *it = t->data;
  h3wt_driver *d = it->drv;
  h3wt_driver_enter(d);
  d->cbs->expired(it, h3wt_now_ns(), d->ud);
  h3wt_driver_leave(d);
}

void h3wt_drv_item_init(h3wt_driver *d, h3wt_drv_item *it, void *data) {
  it->drv = d;
  it->dirty_next = NULL;
  it->dirty = 0;
  it->gone = 0;
  it->due_ms = 0;
  it->fine_due = 0;
  it->fine_idx = SIZE_MAX;
  it->data = data;
  uv_timer_init(d->loop, &it->timer);
  it->timer.data = it;
}

void h3wt_drv_schedule(h3wt_drv_item *it, uint64_t deadline) {
  uint64_t now = h3wt_now_ns();
  if (it->gone) {
    return;
  }
  if (deadline == UINT64_MAX) {
    uv_timer_stop(&it->timer);
    fine_remove(it);
    fine_arm(it->drv);
    return;
  }
  if (deadline > now && deadline - now < FINE_NS && !it->drv->closing &&
      fine_set(it, deadline) == 0) {
    uv_timer_stop(&it->timer);
    fine_arm(it->drv);
    return;
  }
  if (it->fine_idx != SIZE_MAX) {
    fine_remove(it);
    fine_arm(it->drv);
  }
  /* In the loop's own clock: libuv counts the timeout from uv_now(), the
     loop's cached time (monotonic milliseconds, taken at the start of the
     iteration, so possibly well behind now), and fires once its clock
     reaches due.  Rounded up: firing early would find nothing expired. */
  uint64_t due = (deadline + 999999) / 1000000;
  uint64_t loop_now = uv_now(it->drv->loop);
  uint64_t ms = due > loop_now ? due - loop_now : 0;
  if (due == it->due_ms && uv_is_active((uv_handle_t *)&it->timer)) {
    return; /* armed for that already: a flush per delivery re-arms a lot */
  }
  it->due_ms = due;
  uv_timer_start(&it->timer, timer_cb, ms, 0);
}

void h3wt_drv_item_close(h3wt_drv_item *it, uv_close_cb cb, void *data) {
  h3wt_driver *d = it->drv;
  if (it->gone) {
    return;
  }
  it->gone = 1;
  /* Off the dirty list, which outlives this loop iteration; if it is on a
     flush pass's own lists instead, those skip gone items. */
  for (h3wt_drv_item **pp = &d->dirty; *pp; pp = &(*pp)->dirty_next) {
    if (*pp == it) {
      *pp = it->dirty_next;
      it->dirty_next = NULL;
      break;
    }
  }
  fine_remove(it);
  if (!d->closing) {
    fine_arm(d);
  }
  uv_timer_stop(&it->timer);
  it->timer.data = data;
  uv_close((uv_handle_t *)&it->timer, cb);
}
