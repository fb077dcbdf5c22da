/*
 * h3wt_post: a mailbox that other threads drop work into and the loop
 * thread empties: a mutex-guarded list and a uv_async_t.  The one part of
 * h3wt that is thread-safe (h3wt_server_post() is built on it; the
 * scale-out work hands work between workers the same way).
 */
#ifndef H3WT_POST_H
#define H3WT_POST_H

#include <uv.h>

typedef struct h3wt_post_item h3wt_post_item;

typedef struct h3wt_mailbox {
  uv_async_t async;
  uv_mutex_t lock;
  h3wt_post_item *head, *tail; /* under lock */
  int closed;                  /* under lock: no more posts */
  void *ud;                    /* the owner, for enter and leave */
  void (*enter)(void *ud);     /* around each item (the owner's callback
                                  depth); may be NULL */
  void (*leave)(void *ud);
  uv_close_cb close_cb;
  void *close_data;
} h3wt_mailbox;

/* On the loop thread.  Each posted item later runs as fn(arg) on the
   loop thread, between enter(ud) and leave(ud) when those are set. */
int h3wt_mailbox_init(h3wt_mailbox *mb, uv_loop_t *loop, void *ud);
/* Any thread.  Returns 0, or -1 when the mailbox is closed or memory
   ran out (fn will not run). */
int h3wt_mailbox_post(h3wt_mailbox *mb, void (*fn)(void *arg),
                      void *arg);
/* On the loop thread: refuses new posts, runs what is queued, closes the
   async handle (close_cb with handle->data = close_data). */
void h3wt_mailbox_close(h3wt_mailbox *mb, uv_close_cb close_cb,
                        void *close_data);

/* After the close callback, when no thread posts any more: frees the
   lock. */
void h3wt_mailbox_fini(h3wt_mailbox *mb);

#endif /* H3WT_POST_H */
