/*
 * h3wt_chhist: a channel's history and the recovery rule (see
 * h3wt_chhist.h and docs/channels.md, "Offsets, epochs, recovery").
 */
#include "h3wt_chhist.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Slots of a new ring: a channel that publishes now and then should not
   hold max_count slots; 8 entries are 128 bytes. */
#define CHHIST_FIRST_CAP 8

int h3wt_chhist_init(h3wt_chhist *h, uint64_t epoch, size_t max_count,
                     uint64_t max_age_ns) {
  /* The epoch travels as a varint in SUBSCRIBED and PUBLISHED: one the wire
     cannot carry would be sent wrong, and no client could ever name it. */
  if (!h || epoch > H3WT_CHHIST_EPOCH_MAX) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  /* The ring's size in bytes must not wrap when it reaches max_count. */
  if (max_count > SIZE_MAX / sizeof(h3wt_chhist_entry)) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  memset(h, 0, sizeof(*h));
  h->epoch = epoch;
  h->max_count = max_count;
  h->max_age_ns = max_age_ns;
  return 0;
}

/* Entry i from the oldest (0 <= i < count). */
static h3wt_chhist_entry *at(const h3wt_chhist *h, size_t i) {
  assert(i < h->count);
  return &h->e[(h->head + i) % h->cap];
}

static void pop_oldest(h3wt_chhist *h) {
  assert(h->count > 0);
  h3wt_buf_unref(h->e[h->head].buf);
  h->e[h->head].buf = NULL;
  h->head = (h->head + 1) % h->cap;
  --h->count;
}

/* The ring without entries: give its storage back, so a channel whose
   history aged out costs what an unused one does. */
static void release(h3wt_chhist *h) {
  assert(h->count == 0);
  free(h->e);
  h->e = NULL;
  h->cap = 0;
  h->head = 0;
}

void h3wt_chhist_free(h3wt_chhist *h) {
  while (h->count) {
    pop_oldest(h);
  }
  release(h);
}

/* Room for one more entry: doubles from CHHIST_FIRST_CAP up to max_count,
   the entries copied to the front in order.  Returns 0 or -1 (nothing
   changed). */
static int grow(h3wt_chhist *h) {
  size_t cap = h->cap ? h->cap * 2 : CHHIST_FIRST_CAP;
  /* max_count is at most SIZE_MAX / 16 (init checks), so neither the
     doubling nor the size in bytes can wrap. */
  if (cap > h->max_count) {
    cap = h->max_count;
  }
  size_t bytes = cap * sizeof(h3wt_chhist_entry);
  h3wt_chhist_entry *ne = h->alloc ? h->alloc(bytes) : malloc(bytes);
  if (!ne) {
    return -1;
  }
  for (size_t i = 0; i < h->count; ++i) {
    ne[i] = *at(h, i);
  }
  free(h->e);
  h->e = ne;
  h->cap = cap;
  h->head = 0;
  return 0;
}

/* Whether an entry stamped ets is past the age bound at ts.  The times
   come from the caller; one later than ts (a clock that stepped back) is
   taken as new rather than wrapping into a huge age. */
static int too_old(const h3wt_chhist *h, uint64_t ets, uint64_t ts) {
  return h->max_age_ns && ts > ets && ts - ets > h->max_age_ns;
}

void h3wt_chhist_trim(h3wt_chhist *h, uint64_t ts) {
  /* "History keeps the last history_size messages that are at most
     history_ttl old."  From the oldest end only, so the run of kept offsets
     stays contiguous. */
  while (h->count && too_old(h, h->e[h->head].ts, ts)) {
    pop_oldest(h);
  }
  if (h->count == 0 && h->e) {
    release(h);
  }
}

int h3wt_chhist_append(h3wt_chhist *h, h3wt_buf *buf, uint64_t ts,
                       uint64_t *offset) {
  int rv = 0;
  if (!buf) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  /* "The first has offset 1, each next one the previous plus 1": the
     offset is taken whatever happens to the history below, because the
     message goes out live with it.  2^62 - 1 messages (the varint limit)
     would take 146 years at a billion a second: not checked. */
  ++h->last;
  if (offset) {
    *offset = h->last;
  }
  if (h->max_count == 0) {
    return 0; /* offsets only */
  }
  h3wt_chhist_trim(h, ts);
  if (h->count == h->max_count) {
    pop_oldest(h);
  } else if (h->count == h->cap && grow(h) != 0) {
    ++h->nomem;
    rv = H3WT_ERR_NOMEM;
    if (h->count == 0) {
      /* No ring at all: this message is not kept.  The history is empty,
         its oldest offset last+1, so a recovery from before this message
         is refused as it must be. */
      return rv;
    }
    /* The ring is full below max_count and cannot grow: the oldest makes
       room, so the newest (the likeliest to be asked for) is kept and the
       run has no hole. */
    pop_oldest(h);
  }
  h3wt_chhist_entry *e = &h->e[(h->head + h->count) % h->cap];
  e->ts = ts;
  e->buf = h3wt_buf_ref(buf);
  ++h->count;
  return rv;
}

int h3wt_chhist_recover(h3wt_chhist *h, uint64_t epoch, uint64_t since,
                        uint64_t ts, h3wt_chhist_range *out) {
  /* Whatever is past its age is gone now, even with nothing published
     since; the oldest kept offset F below is the one after this. */
  h3wt_chhist_trim(h, ts);
  out->h = h;
  out->first = h->last + 1;
  out->count = 0;
  /* "Otherwise (other epoch ...): recovered 0": the offsets of another
     life of the history name other messages. */
  if (epoch != h->epoch) {
    return H3WT_CHHIST_NOT_RECOVERED;
  }
  /* "E == E', O > T: the client claims the future: recovered 0". */
  if (since > h->last) {
    return H3WT_CHHIST_NOT_RECOVERED;
  }
  /* "E == E', O == T: nothing missed: recovered 1, missed 0" (whatever is
     kept: there is nothing to send). */
  if (since == h->last) {
    return H3WT_CHHIST_RECOVERED;
  }
  /* "E == E', O < T, O + 1 >= F: recovered 1, then the MESSAGE frames
     O+1 .. T in order". */
  if (since + 1 < h3wt_chhist_oldest(h)) {
    /* "O + 1 < F: some are gone: recovered 0, missed 0". */
    return H3WT_CHHIST_NOT_RECOVERED;
  }
  out->first = since + 1;
  out->count = (size_t)(h->last - since);
  return H3WT_CHHIST_RECOVERED;
}

size_t h3wt_chhist_range_count(const h3wt_chhist_range *r) {
  return r->count;
}

h3wt_buf *h3wt_chhist_range_at(const h3wt_chhist_range *r, size_t i,
                               uint64_t *offset) {
  if (i >= r->count) {
    return NULL;
  }
  const h3wt_chhist *h = r->h;
  uint64_t oldest = h3wt_chhist_oldest(h);
  /* A range used after an append, trim or recover may name entries that
     are gone: caught here in debug builds. */
  assert(r->first >= oldest && r->first + r->count - 1 <= h->last);
  if (offset) {
    *offset = r->first + i;
  }
  return at(h, (size_t)(r->first - oldest) + i)->buf;
}

uint64_t h3wt_chhist_epoch(const h3wt_chhist *h) {
  return h->epoch;
}

uint64_t h3wt_chhist_last(const h3wt_chhist *h) {
  return h->last;
}

uint64_t h3wt_chhist_oldest(const h3wt_chhist *h) {
  return h->last - h->count + 1;
}

size_t h3wt_chhist_count(const h3wt_chhist *h) {
  return h->count;
}
