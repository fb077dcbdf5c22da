/*
 * h3wt_wt_dgram: the outgoing WebTransport datagram queue (see
 * h3wt_wt_dgram.h).
 */
#include "h3wt_wt_dgram.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void h3wt_wt_dgramq_init(h3wt_wt_dgramq *q, size_t max_count,
                         size_t max_bytes) {
  memset(q, 0, sizeof(*q));
  q->max_count = max_count ? max_count : 1;
  q->bmax = max_bytes;
}

static h3wt_wt_dgram_entry *at(const h3wt_wt_dgramq *q, size_t i) {
  return &q->e[(q->head + i) % q->cap];
}

/* Room for one more entry: the ring starts small (an idle session that
   sent one datagram should not hold max_count slots) and doubles, the
   live entries copied to the front in order. */
static int grow(h3wt_wt_dgramq *q) {
  if (q->count < q->cap) {
    return 0;
  }
  size_t cap = q->cap ? q->cap * 2 : 8;
  if (cap > q->max_count) {
    cap = q->max_count;
  }
  h3wt_wt_dgram_entry *ne = malloc(cap * sizeof(*ne));
  if (!ne) {
    return -1;
  }
  for (size_t i = 0; i < q->count; ++i) {
    ne[i] = *at(q, i);
  }
  free(q->e);
  q->e = ne;
  q->cap = cap;
  q->head = 0;
  return 0;
}

void h3wt_wt_dgramq_free(h3wt_wt_dgramq *q) {
  while (q->count) {
    h3wt_wt_dgramq_pop(q);
  }
  free(q->e);
  free(q->bytes);
  q->e = NULL;
  q->cap = 0;
  q->bytes = NULL;
  q->bcap = q->bhead = q->btail = 0;
}

/* Room for len inline bytes at btail: slide the live bytes to the front
   first, grow (up to bmax) only when that is not enough. */
static int reserve(h3wt_wt_dgramq *q, size_t len) {
  if (q->btail + len <= q->bcap) {
    return 0;
  }
  if (q->bhead > 0) {
    size_t shift = q->bhead;
    memmove(q->bytes, q->bytes + shift, q->btail - shift);
    q->btail -= shift;
    q->bhead = 0;
    for (size_t i = 0; i < q->count; ++i) {
      h3wt_wt_dgram_entry *e = at(q, i);
      if (!e->buf) {
        e->off -= (uint32_t)shift;
      }
    }
    if (q->btail + len <= q->bcap) {
      return 0;
    }
  }
  size_t cap = q->bcap ? q->bcap * 2 : 4096;
  while (cap < q->btail + len) {
    cap *= 2;
  }
  if (cap > q->bmax) {
    cap = q->bmax;
  }
  if (cap < q->btail + len) {
    return -1;
  }
  uint8_t *nb = realloc(q->bytes, cap);
  if (!nb) {
    return -1;
  }
  q->bytes = nb;
  q->bcap = cap;
  return 0;
}

int h3wt_wt_dgramq_push(h3wt_wt_dgramq *q, void *owner, const uint8_t *prefix,
                        size_t prefixlen, h3wt_buf *buf, const uint8_t *data,
                        size_t len, uint64_t ts) {
  assert(prefixlen <= H3WT_WT_DGRAM_PREFIX_MAX);
  if (q->count >= q->max_count || len > 0xffff) {
    return H3WT_ERR_DGRAM_DROPPED;
  }
  if (grow(q) != 0) {
    return H3WT_ERR_DGRAM_DROPPED;
  }
  h3wt_wt_dgram_entry *e = &q->e[(q->head + q->count) % q->cap];
  memset(e, 0, sizeof(*e));
  if (buf) {
    e->buf = h3wt_buf_ref(buf);
    e->len = (uint32_t)h3wt_buf_len(buf);
  } else {
    if (reserve(q, len) != 0) {
      return H3WT_ERR_DGRAM_DROPPED;
    }
    if (len) {
      memcpy(q->bytes + q->btail, data, len);
    }
    e->off = (uint32_t)q->btail;
    e->len = (uint32_t)len;
    q->btail += len;
  }
  e->owner = owner;
  e->ts = ts;
  if (prefixlen) {
    memcpy(e->prefix, prefix, prefixlen);
  }
  e->prefixlen = (uint8_t)prefixlen;
  ++q->count;
  return 0;
}

h3wt_wt_dgram_entry *h3wt_wt_dgramq_front(h3wt_wt_dgramq *q) {
  return q->count ? at(q, 0) : NULL;
}

size_t h3wt_wt_dgramq_vec(const h3wt_wt_dgramq *q,
                          const h3wt_wt_dgram_entry *e, h3wt_vec *vec) {
  /* Only non-empty pieces: ngtcp2 refuses a zero-length vector. */
  size_t n = 0;
  if (e->prefixlen) {
    vec[n].base = (uint8_t *)e->prefix;
    vec[n++].len = e->prefixlen;
  }
  if (e->len) {
    vec[n].base =
        e->buf ? (uint8_t *)h3wt_buf_data(e->buf) : q->bytes + e->off;
    vec[n++].len = e->len;
  }
  return n;
}

void h3wt_wt_dgramq_pop(h3wt_wt_dgramq *q) {
  if (!q->count) {
    return;
  }
  h3wt_wt_dgram_entry *e = at(q, 0);
  if (e->buf) {
    h3wt_buf_unref(e->buf);
  } else {
    /* Inline payloads leave the byte ring in the order they entered (an
       entry dropped from the middle leaves a gap, skipped here). */
    assert(e->off >= q->bhead);
    q->bhead = e->off + e->len;
  }
  q->head = (q->head + 1) % q->cap;
  if (--q->count == 0) {
    q->head = 0;
    q->bhead = q->btail = 0;
  }
}

int h3wt_wt_dgramq_drop_oldest(h3wt_wt_dgramq *q, void *owner) {
  for (size_t i = 0; i < q->count; ++i) {
    h3wt_wt_dgram_entry *e = at(q, i);
    if (e->owner != owner) {
      continue;
    }
    if (i == 0) {
      h3wt_wt_dgramq_pop(q);
      return 1;
    }
    /* From the middle: the slot must come free now (the caller queues in
       its place), so the later entries move up one; its inline bytes
       stay as a gap until the front passes them. */
    h3wt_buf_unref(e->buf);
    for (size_t k = i; k + 1 < q->count; ++k) {
      *at(q, k) = *at(q, k + 1);
    }
    --q->count;
    return 1;
  }
  return 0;
}

void h3wt_wt_dgramq_forget(h3wt_wt_dgramq *q, void *owner) {
  for (size_t i = 0; i < q->count; ++i) {
    h3wt_wt_dgram_entry *e = at(q, i);
    if (e->owner == owner) {
      e->owner = NULL;
    }
  }
}

size_t h3wt_wt_dgramq_count(const h3wt_wt_dgramq *q) {
  return q->count;
}
