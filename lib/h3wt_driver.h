/*
 * h3wt_driver: how connections are driven from a libuv loop, shared by
 * the server's endpoint and the client.
 *
 *  - One timer per connection, armed at the connection's next deadline
 *    (rounded up to the millisecond: firing early finds nothing expired).
 *    Deadlines less than a millisecond away (packet pacing asks for
 *    microseconds) go instead to one fine timer per driver: a timerfd with
 *    nanosecond resolution and a min-heap of the items waiting on it, so a
 *    paced connection sends its next burst when it is due, not up to a
 *    millisecond late.
 *  - A dirty list and one flush pass before the loop sleeps (uv_prepare):
 *    a connection that has something to send is marked, and written once,
 *    so a batch of received datagrams is acknowledged in as few packets as
 *    possible and a handler that writes ten times causes one write
 *    (redis's beforeSleep).  A uv_idle handle keeps the loop from
 *    sleeping while a connection has more to send.
 *  - The "inside a callback" depth: every entry from libuv (timer, flush,
 *    and the owner's own entries such as received datagrams) is bracketed
 *    by h3wt_driver_enter/leave; the settled callback runs when the depth
 *    is back at 0, where closes asked for from inside callbacks are done.
 */
#ifndef H3WT_DRIVER_H
#define H3WT_DRIVER_H

#include <stdint.h>

#include <uv.h>

typedef struct h3wt_driver h3wt_driver;

/* One connection's part (embed it; the owner finds its connection with
   h3wt_list_entry-style arithmetic or keeps a pointer in data). */
typedef struct h3wt_drv_item {
  h3wt_driver *drv;
  uv_timer_t timer;
  struct h3wt_drv_item *dirty_next;
  int dirty;
  int gone; /* h3wt_drv_item_close() was called */
  void *data;
  uint64_t due_ms; /* when the armed timer fires (the loop's ms clock) */
  uint64_t fine_due; /* ns, while on the fine heap */
  size_t fine_idx;   /* its place in the fine heap; SIZE_MAX: not on it */
} h3wt_drv_item;

typedef struct h3wt_driver_callbacks {
  /* Required.  The flush pass reached a dirty item: write it (at ts).
     Returns 1 when it has more to send (it stays dirty and the loop does
     not sleep), else 0.  It may close the item. */
  int (*flush)(h3wt_drv_item *it, uint64_t ts, void *ud);
  /* Required.  The item's timer fired. */
  void (*expired)(h3wt_drv_item *it, uint64_t ts, void *ud);
  /* Optional.  At the end of each flush pass. */
  void (*after_flush)(void *ud);
  /* Optional.  The depth is back at 0. */
  void (*settled)(void *ud);
} h3wt_driver_callbacks;

struct h3wt_driver {
  uv_loop_t *loop;
  uv_prepare_t flush;
  uv_idle_t spin;
  /* The fine timer: tfd is a timerfd (-1 when the system gave none: then
     every deadline takes the millisecond timers), watched by fine_poll;
     fine_heap holds the items due within a millisecond, earliest first. */
  int tfd;
  uv_poll_t fine_poll;
  h3wt_drv_item **fine_heap;
  size_t fine_len, fine_cap;
  uint64_t fine_armed; /* what tfd is set to; UINT64_MAX: disarmed */
  h3wt_drv_item *dirty;
  int depth;
  int closing;
  const h3wt_driver_callbacks *cbs;
  void *ud;
};

/* Starts the flush pass on loop.  fine_timer: whether to have the fine
   timer (a descriptor per driver: the server's endpoint has one; a client,
   one driver per connection, rounds its deadlines to the millisecond so
   that a process with ten thousand clients does not need ten thousand
   more descriptors).  Returns 0 (libuv's init cannot fail for these
   handles; without a timerfd the fine timer is simply off). */
int h3wt_driver_init(h3wt_driver *d, uv_loop_t *loop,
                     const h3wt_driver_callbacks *cbs, void *ud,
                     int fine_timer);
/* Stops and closes the driver's handles; cb runs for each, with
   handle->data = data.  Returns how many there are (2 or 3). */
int h3wt_driver_close(h3wt_driver *d, uv_close_cb cb, void *data);

void h3wt_driver_enter(h3wt_driver *d);
void h3wt_driver_leave(h3wt_driver *d);
int h3wt_driver_depth(const h3wt_driver *d);
/* A flush pass soon, even if nothing is dirty (after_flush work). */
void h3wt_driver_wake(h3wt_driver *d);

void h3wt_drv_item_init(h3wt_driver *d, h3wt_drv_item *it, void *data);
void h3wt_drv_mark_dirty(h3wt_drv_item *it);
/* Arms the timer for deadline (ns, h3wt_now_ns's clock; UINT64_MAX:
   none). */
void h3wt_drv_schedule(h3wt_drv_item *it, uint64_t deadline);
/* The item goes: off the dirty list, its timer closed (cb with
   handle->data = data, then its memory may go). */
void h3wt_drv_item_close(h3wt_drv_item *it, uv_close_cb cb, void *data);

#endif /* H3WT_DRIVER_H */
