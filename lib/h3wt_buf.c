/*
 * h3wt_buf: reference-counted immutable bytes, for fan-out without a copy
 * per receiver.  The count is a plain integer: buffers live on one loop
 * thread, like every other h3wt object.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"

struct h3wt_buf {
  size_t refs;
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
  b->refs = 1;
  b->len = len;
  if (len) {
    memcpy(b->data, data, len);
  }
  *pbuf = b;
  return 0;
}

h3wt_buf *h3wt_buf_ref(h3wt_buf *buf) {
  assert(buf->refs > 0);
  ++buf->refs;
  return buf;
}

void h3wt_buf_unref(h3wt_buf *buf) {
  if (!buf) {
    return;
  }
  assert(buf->refs > 0);
  if (--buf->refs == 0) {
    free(buf);
  }
}

const uint8_t *h3wt_buf_data(const h3wt_buf *buf) {
  return buf->data;
}

size_t h3wt_buf_len(const h3wt_buf *buf) {
  return buf->len;
}
