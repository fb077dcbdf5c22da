/*
 * h3wt_post: the loop's mailbox for other threads (see h3wt_post.h).
 */
#include "h3wt_post.h"

#include <stdlib.h>

struct h3wt_post_item {
  void (*fn)(void *arg);
  void *arg;
  h3wt_post_item *next;
};

/* Takes the whole list under the lock, runs it outside: a posted
   function may post again (it lands in the next round) or close. */
static void drain(h3wt_mailbox *mb) {
  uv_mutex_lock(&mb->lock);
  h3wt_post_item *list = mb->head;
  mb->head = mb->tail = NULL;
  uv_mutex_unlock(&mb->lock);
  while (list) {
    h3wt_post_item *it = list;
    list = it->next;
    if (mb->enter) {
      mb->enter(mb->ud);
    }
    it->fn(it->arg);
    if (mb->leave) {
      mb->leave(mb->ud);
    }
    free(it);
  }
}

static void async_cb(uv_async_t *a) {
  drain(a->data);
}

int h3wt_mailbox_init(h3wt_mailbox *mb, uv_loop_t *loop, void *ud) {
  mb->head = mb->tail = NULL;
  mb->closed = 0;
  mb->ud = ud;
  mb->close_cb = NULL;
  mb->close_data = NULL;
  mb->enter = mb->leave = NULL;
  if (uv_mutex_init(&mb->lock) != 0) {
    return -1;
  }
  if (uv_async_init(loop, &mb->async, async_cb) != 0) {
    uv_mutex_destroy(&mb->lock);
    return -1;
  }
  mb->async.data = mb;
  /* Only work in flight keeps the loop alive, not the mailbox itself. */
  uv_unref((uv_handle_t *)&mb->async);
  return 0;
}

int h3wt_mailbox_post(h3wt_mailbox *mb, void (*fn)(void *arg),
                      void *arg) {
  h3wt_post_item *it = malloc(sizeof(*it));
  if (!it) {
    return -1;
  }
  it->fn = fn;
  it->arg = arg;
  it->next = NULL;
  uv_mutex_lock(&mb->lock);
  if (mb->closed) {
    uv_mutex_unlock(&mb->lock);
    free(it);
    return -1;
  }
  if (mb->tail) {
    mb->tail->next = it;
  } else {
    mb->head = it;
  }
  mb->tail = it;
  /* uv_async_send is libuv's one thread-safe call; sends coalesce.  Under
     the lock, so a close on the loop thread cannot slip in between. */
  uv_async_send(&mb->async);
  uv_mutex_unlock(&mb->lock);
  return 0;
}

static void closed_cb(uv_handle_t *h) {
  h3wt_mailbox *mb = h->data;
  /* The lock stays until h3wt_mailbox_fini: a late post from another
     thread must still find it (and be refused). */
  if (mb->close_cb) {
    h->data = mb->close_data;
    mb->close_cb(h);
  }
}

void h3wt_mailbox_fini(h3wt_mailbox *mb) {
  uv_mutex_destroy(&mb->lock);
}

void h3wt_mailbox_close(h3wt_mailbox *mb, uv_close_cb close_cb,
                        void *close_data) {
  uv_mutex_lock(&mb->lock);
  mb->closed = 1;
  uv_mutex_unlock(&mb->lock);
  drain(mb); /* what was posted before the close still runs */
  mb->close_cb = close_cb;
  mb->close_data = close_data;
  uv_close((uv_handle_t *)&mb->async, closed_cb);
}
