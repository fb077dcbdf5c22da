/*
 * h3wt_sendq: the send queue of a stream and the byte-ring datagram queue
 * (see h3wt_sendq.h).
 */
#include "h3wt_sendq.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- send queue -------------------------------------------------------- */

struct h3wt_sendq_chunk {
  h3wt_sendq_chunk *next;
  uint8_t *data;
  size_t len; /* bytes filled */
  size_t cap; /* 0 for owned buffers: never appended to */
  void (*free_cb)(void *, void *);
  void *free_ud;
  /* A frame's head and its owned payload share one allocation (see
     h3wt_sendq_append_framed): the first of the pair is freed with the
     second, which always goes after it (chunks go in order). */
  uint8_t pair; /* 0, PAIR_FIRST or PAIR_SECOND */
};

enum { PAIR_FIRST = 1, PAIR_SECOND = 2 };

/* Copy chunks start small and double up to H3WT_SENDQ_CHUNK while the
   queue keeps data; an emptied queue frees its last chunk and starts small
   again.  A stream that sends a message now and then (a chat line, a
   presence event) then holds a few hundred bytes at most, not 16 KiB, and
   an idle one holds nothing; a bulk sender reaches full chunks after a
   few.  A fresh chunk for copies that follow an owned buffer stays small:
   a run of "copied head, owned payload" (one frame per message, written
   to many streams) would otherwise take a big chunk for a few bytes. */
#define SENDQ_SMALL_CHUNK 256
#define SENDQ_FIRST_CHUNK 512

void h3wt_sendq_init(h3wt_sendq *q) {
  memset(q, 0, sizeof(*q));
}

static void chunk_free(h3wt_sendq_chunk *c) {
  if (c->free_cb) {
    c->free_cb(c->data, c->free_ud);
  }
  if (c->pair == PAIR_FIRST) {
    return; /* its memory goes with the second */
  }
  free(c->pair == PAIR_SECOND ? c - 1 : c);
}

void h3wt_sendq_free(h3wt_sendq *q) {
  h3wt_sendq_chunk *c = q->head, *next;
  for (; c; c = next) {
    next = c->next;
    chunk_free(c);
  }
  h3wt_sendq_init(q);
}

static void link_chunk(h3wt_sendq *q, h3wt_sendq_chunk *c) {
  if (q->tail) {
    q->tail->next = c;
  } else {
    q->head = c;
    q->ack_off = 0;
  }
  q->tail = c;
  if (!q->read) {
    q->read = c;
    q->read_off = 0;
  }
}

int h3wt_sendq_append(h3wt_sendq *q, const void *data, size_t len) {
  const uint8_t *p = data;
  size_t need = len;
  /* What fits in the tail chunk goes there; a fresh chunk takes the rest,
     so the (rare) failure leaves nothing half-queued. */
  h3wt_sendq_chunk *t = q->tail;
  size_t room = (t && t->cap) ? t->cap - t->len : 0;
  h3wt_sendq_chunk *c = NULL;
  if (need > room) {
    size_t rest = need - room;
    size_t min = (t && !t->cap)  ? SENDQ_SMALL_CHUNK
                 : q->next_cap   ? q->next_cap
                                 : SENDQ_FIRST_CHUNK;
    size_t cap = rest > min ? rest : min;
    c = malloc(sizeof(*c) + cap);
    if (!c) {
      return H3WT_ERR_NOMEM;
    }
    memset(c, 0, sizeof(*c));
    c->data = (uint8_t *)(c + 1);
    c->cap = cap;
    if (!(t && !t->cap)) {
      q->next_cap = min * 2 < H3WT_SENDQ_CHUNK ? min * 2 : H3WT_SENDQ_CHUNK;
    }
  }
  if (room) {
    size_t n = room < need ? room : need;
    memcpy(t->data + t->len, p, n);
    t->len += n;
    p += n;
    need -= n;
    if (!q->read) {
      /* Everything was read before: resume at the new bytes. */
      q->read = t;
      q->read_off = t->len - n;
    }
  }
  if (c) {
    memcpy(c->data, p, need);
    c->len = need;
    link_chunk(q, c);
  }
  q->unacked += len;
  q->unread += len;
  q->total += len;
  return 0;
}

int h3wt_sendq_append_owned(h3wt_sendq *q, void *data, size_t len,
                            void (*free_cb)(void *, void *), void *ud) {
  h3wt_sendq_chunk *c = calloc(1, sizeof(*c));
  if (!c) {
    return H3WT_ERR_NOMEM;
  }
  c->data = data;
  c->len = len;
  c->free_cb = free_cb;
  c->free_ud = ud;
  link_chunk(q, c);
  q->unacked += len;
  q->unread += len;
  q->total += len;
  return 0;
}

int h3wt_sendq_append_framed(h3wt_sendq *q, const void *head, size_t headlen,
                             void *data, size_t len,
                             void (*free_cb)(void *, void *), void *ud) {
  h3wt_sendq_chunk *t = q->tail;
  if (headlen == 0 || (t && t->cap && t->cap - t->len >= headlen)) {
    /* The head fits where copies go anyway. */
    h3wt_sendq_chunk *c = calloc(1, sizeof(*c));
    if (!c) {
      return H3WT_ERR_NOMEM;
    }
    if (headlen) {
      int rv = h3wt_sendq_append(q, head, headlen); /* fits: no allocation */
      (void)rv;
      assert(rv == 0);
    }
    c->data = data;
    c->len = len;
    c->free_cb = free_cb;
    c->free_ud = ud;
    link_chunk(q, c);
  } else {
    h3wt_sendq_chunk *pair = malloc(2 * sizeof(*pair) + headlen);
    if (!pair) {
      return H3WT_ERR_NOMEM;
    }
    memset(pair, 0, 2 * sizeof(*pair));
    pair[0].data = (uint8_t *)(pair + 2);
    memcpy(pair[0].data, head, headlen);
    pair[0].len = pair[0].cap = headlen; /* full: nothing appended to it */
    pair[0].pair = PAIR_FIRST;
    pair[1].data = data;
    pair[1].len = len;
    pair[1].free_cb = free_cb;
    pair[1].free_ud = ud;
    pair[1].pair = PAIR_SECOND;
    link_chunk(q, &pair[0]);
    link_chunk(q, &pair[1]);
    q->unacked += headlen;
    q->unread += headlen;
    q->total += headlen;
  }
  q->unacked += len;
  q->unread += len;
  q->total += len;
  return 0;
}

size_t h3wt_sendq_read(h3wt_sendq *q, h3wt_vec *vec, size_t veccnt) {
  size_t n = 0;
  while (n < veccnt && q->read) {
    h3wt_sendq_chunk *c = q->read;
    size_t avail = c->len - q->read_off;
    if (avail) {
      vec[n].base = c->data + q->read_off;
      vec[n].len = avail;
      ++n;
      q->unread -= avail;
      q->read_off = c->len;
    }
    if (c->next) {
      q->read = c->next;
      q->read_off = 0;
    } else {
      /* Stay on the tail: later copied appends may extend it. */
      break;
    }
  }
  return n;
}

size_t h3wt_sendq_peek(const h3wt_sendq *q, h3wt_vec *vec, size_t veccnt,
                       size_t *total) {
  size_t n = 0, off = q->read_off;
  *total = 0;
  for (h3wt_sendq_chunk *c = q->read; c && n < veccnt; c = c->next, off = 0) {
    if (c->len > off) {
      vec[n].base = c->data + off;
      vec[n].len = c->len - off;
      *total += vec[n].len;
      ++n;
    }
  }
  return n;
}

void h3wt_sendq_consume(h3wt_sendq *q, size_t n) {
  if (n > q->unread) {
    n = (size_t)q->unread;
  }
  q->unread -= n;
  while (n && q->read) {
    h3wt_sendq_chunk *c = q->read;
    size_t avail = c->len - q->read_off;
    if (n < avail) {
      q->read_off += n;
      return;
    }
    n -= avail;
    q->read_off = c->len;
    if (c->next) {
      q->read = c->next;
      q->read_off = 0;
    }
  }
}

void h3wt_sendq_ack(h3wt_sendq *q, uint64_t n) {
  if (n > q->unacked) {
    n = q->unacked;
  }
  q->unacked -= n;
  while (n && q->head) {
    h3wt_sendq_chunk *c = q->head;
    size_t left = c->len - q->ack_off;
    if (n < left) {
      q->ack_off += (size_t)n;
      return;
    }
    n -= left;
    /* Fully acknowledged (so fully read): it goes, even the tail, which
       later copies could have filled; the queue is then empty and its
       next chunk small (see SENDQ_FIRST_CHUNK). */
    q->head = c->next;
    q->ack_off = 0;
    if (q->read == c) {
      q->read = c->next;
      q->read_off = 0;
    }
    if (q->tail == c) {
      q->tail = NULL;
      q->read = NULL;
      q->read_off = 0;
      q->next_cap = 0;
    }
    chunk_free(c);
  }
}

/* ---- datagram queue ------------------------------------------------------ */

void h3wt_dgramq_init(h3wt_dgramq *q, size_t max_count, size_t max_bytes) {
  memset(q, 0, sizeof(*q));
  q->max_count = max_count;
  q->max_bytes = max_bytes;
}

void h3wt_dgramq_free(h3wt_dgramq *q) {
  free(q->buf);
  q->buf = NULL;
  q->cap = q->head = q->tail = q->count = 0;
}

int h3wt_dgramq_push(h3wt_dgramq *q, const uint8_t *prefix, size_t prefixlen,
                     const uint8_t *data, size_t len) {
  size_t need = 2 + prefixlen + len;
  if (q->count >= q->max_count || prefixlen + len > 0xffff) {
    ++q->dropped;
    return H3WT_ERR_WOULDBLOCK;
  }
  if (q->tail + need > q->cap && q->head > 0) {
    /* Slide the live entries to the front before growing. */
    memmove(q->buf, q->buf + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
  }
  if (q->tail + need > q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 4096;
    while (cap < q->tail + need) {
      cap *= 2;
    }
    if (cap > q->max_bytes) {
      cap = q->max_bytes;
    }
    uint8_t *nb = cap >= q->tail + need ? realloc(q->buf, cap) : NULL;
    if (!nb) {
      ++q->dropped;
      return H3WT_ERR_WOULDBLOCK;
    }
    q->buf = nb;
    q->cap = cap;
  }
  uint8_t *p = q->buf + q->tail;
  p[0] = (uint8_t)((prefixlen + len) >> 8);
  p[1] = (uint8_t)(prefixlen + len);
  if (prefixlen) {
    memcpy(p + 2, prefix, prefixlen);
  }
  if (len) {
    memcpy(p + 2 + prefixlen, data, len);
  }
  q->tail += need;
  ++q->count;
  return 0;
}

const uint8_t *h3wt_dgramq_front(const h3wt_dgramq *q, size_t *len) {
  if (!q->count) {
    return NULL;
  }
  const uint8_t *p = q->buf + q->head;
  *len = ((size_t)p[0] << 8) | p[1];
  return p + 2;
}

void h3wt_dgramq_pop(h3wt_dgramq *q) {
  size_t len;
  if (!h3wt_dgramq_front(q, &len)) {
    return;
  }
  q->head += 2 + len;
  if (--q->count == 0) {
    q->head = q->tail = 0;
  }
}

