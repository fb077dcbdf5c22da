/*
 * h3wt_list: an intrusive, circular, doubly-linked list (the idea of
 * libuv's queue.h).  A list is a head node; an element embeds a node and
 * is found again with h3wt_list_entry().  Unlinking needs no head and no
 * walk, and an unlinked node points at itself, so "is it linked" is one
 * compare: every module uses this one instead of its own unlinking code.
 */
#ifndef H3WT_LIST_H
#define H3WT_LIST_H

#include <stddef.h>

typedef struct h3wt_list {
  struct h3wt_list *prev, *next;
} h3wt_list;

#define h3wt_list_entry(ptr, type, field)                                      \
  ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

/* Walks head's elements; the current one may be unlinked (or freed) in
   the body, the next one may not. */
#define h3wt_list_foreach_safe(it, tmp, head)                                  \
  for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head);              \
       (it) = (tmp), (tmp) = (it)->next)

static inline void h3wt_list_init(h3wt_list *h) {
  h->prev = h->next = h;
}

static inline int h3wt_list_empty(const h3wt_list *h) {
  return h->next == h;
}

/* An element node that was h3wt_list_init()ed or removed is unlinked. */
static inline int h3wt_list_linked(const h3wt_list *n) {
  return n->next != n;
}

static inline void h3wt_list_insert_tail(h3wt_list *h, h3wt_list *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}

static inline void h3wt_list_insert_head(h3wt_list *h, h3wt_list *n) {
  n->next = h->next;
  n->prev = h;
  h->next->prev = n;
  h->next = n;
}

/* Inserts n right after the node at (a head or an element). */
static inline void h3wt_list_insert_after(h3wt_list *at, h3wt_list *n) {
  h3wt_list_insert_head(at, n);
}

static inline void h3wt_list_remove(h3wt_list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* Moves every element of from to the end of to; from ends empty. */
static inline void h3wt_list_move(h3wt_list *from, h3wt_list *to) {
  if (h3wt_list_empty(from)) {
    return;
  }
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  h3wt_list_init(from);
}

#endif /* H3WT_LIST_H */
