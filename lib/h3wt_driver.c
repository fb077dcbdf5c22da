/*
 * h3wt_driver: timers, the flush pass and the callback depth (see
 * h3wt_driver.h).
 */
#include "h3wt_driver.h"

#include <assert.h>
#include <stddef.h>

#include "h3wt_util.h"

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
                     const h3wt_driver_callbacks *cbs, void *ud) {
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
  return 0;
}

void h3wt_driver_close(h3wt_driver *d, uv_close_cb cb, void *data) {
  d->closing = 1;
  d->dirty = NULL;
  uv_prepare_stop(&d->flush);
  uv_idle_stop(&d->spin);
  d->flush.data = data;
  d->spin.data = data;
  uv_close((uv_handle_t *)&d->flush, cb);
  uv_close((uv_handle_t *)&d->spin, cb);
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
    return;
  }
  /* Round up: firing early would find nothing expired and spin. */
  uint64_t ms = deadline > now ? (deadline - now + 999999) / 1000000 : 0;
  uint64_t due = uv_now(it->drv->loop) + ms;
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
  uv_timer_stop(&it->timer);
  it->timer.data = data;
  uv_close((uv_handle_t *)&it->timer, cb);
}
