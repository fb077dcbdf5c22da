/*
 * h3wt_buf: reference-counted immutable bytes, for fan-out without a copy
 * per receiver.  The count is atomic, the one exception to "one loop
 * thread per object": a message published on one worker's loop is kept in
 * a shared history and delivered by every other worker's loop (the memory
 * broker), all holding references to the same bytes.  The bytes never
 * change after h3wt_buf_new(), so sharing them needs nothing more.  An
 * uncontended atomic add costs a few nanoseconds, against the delivery's
 * microseconds.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"

struct h3wt_buf {
  atomic_size_t refs;
  size_t len;
  uint8_t data[];
};

int h3wt_buf_new(h3wt_buf **pbuf, const void *data, size_t len) {
  h3wt_buf *b;
  if (!pbuf || (len && !data)) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  b = malloc(sizeof(*b) + (len ? len : 1));
  if (!b) {
    return H3WT_ERR_NOMEM;
  }
  atomic_init(&b->refs, 1);
  b->len = len;
  if (len) {
    memcpy(b->data, data, len);
  }
  *pbuf = b;
  return 0;
}

h3wt_buf *h3wt_buf_ref(h3wt_buf *buf) {
  size_t old = atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
  assert(old > 0);
  (void)old;
  return buf;
}

void h3wt_buf_unref(h3wt_buf *buf) {
  if (!buf) {
    return;
  }
  /* Release, so this thread's reads of the bytes happen before the free
     on whichever thread drops the last reference, and acquire for that
     one (acq_rel on the one operation rather than a separate fence, which
     ThreadSanitizer does not model; on x86 it is the same instruction). */
  size_t old = atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel);
  assert(old > 0);
  if (old == 1) {
    free(buf);
  }
}

const uint8_t *h3wt_buf_data(const h3wt_buf *buf) {
  return buf->data;
}

size_t h3wt_buf_len(const h3wt_buf *buf) {
  return buf->len;
}
