/*
 * h3wt_wt_dgram: the outgoing WebTransport datagram queue of one
 * connection.
 *
 * Each entry belongs to a session and holds its quarter-stream-ID prefix
 * and either a copy of the payload (in one reused byte ring, so queuing
 * costs a copy and no allocation) or a reference to a shared h3wt_buf (no
 * copy: one payload fanned out to many sessions).  Entries carry the time
 * they were queued, so a session's maximum age can discard stale state
 * before it is sent, and a session may evict its own oldest entry to make
 * room (drop-oldest).  Bounded by a count and by the ring's bytes.
 */
#ifndef H3WT_WT_DGRAM_H
#define H3WT_WT_DGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"
#include "h3wt_util.h"

/* The quarter stream ID (8) and room for a protocol header above it (the
   channels' type and subscription number). */
#define H3WT_WT_DGRAM_PREFIX_MAX 24

typedef struct h3wt_wt_dgram_entry {
  void *owner;        /* the session; NULL once dropped in place */
  h3wt_buf *buf;      /* shared payload, or NULL: inline in the ring */
  uint64_t ts;        /* queued at (ns) */
  uint32_t off, len;  /* inline payload in the ring */
  uint8_t prefix[H3WT_WT_DGRAM_PREFIX_MAX]; /* quarter stream ID, and a
                                               protocol's own header */
  uint8_t prefixlen;
} h3wt_wt_dgram_entry;

typedef struct h3wt_wt_dgramq {
  h3wt_wt_dgram_entry *e; /* ring of cap entries, grown up to max_count */
  size_t cap, max_count, head, count;
  uint8_t *bytes; /* ring of inline payloads: [bhead, btail) in use */
  size_t bcap, bhead, btail, bmax;
} h3wt_wt_dgramq;

void h3wt_wt_dgramq_init(h3wt_wt_dgramq *q, size_t max_count,
                         size_t max_bytes);
/* Frees the storage and drops every reference. */
void h3wt_wt_dgramq_free(h3wt_wt_dgramq *q);
/* Queues a datagram of owner: prefix, then either buf (a reference is
   taken) or data (copied).  Returns 0 or H3WT_ERR_DGRAM_DROPPED (full). */
int h3wt_wt_dgramq_push(h3wt_wt_dgramq *q, void *owner, const uint8_t *prefix,
                        size_t prefixlen, h3wt_buf *buf, const uint8_t *data,
                        size_t len, uint64_t ts);
/* The oldest entry (live or dropped in place), or NULL. */
h3wt_wt_dgram_entry *h3wt_wt_dgramq_front(h3wt_wt_dgramq *q);
/* The bytes of e as one or two non-empty vectors (prefix, payload); 0
   for an empty datagram. */
size_t h3wt_wt_dgramq_vec(const h3wt_wt_dgramq *q,
                          const h3wt_wt_dgram_entry *e, h3wt_vec *vec);
/* Removes the oldest entry. */
void h3wt_wt_dgramq_pop(h3wt_wt_dgramq *q);
/* Drops owner's oldest live entry in place (its slot is skipped when it
   reaches the front).  Returns 1 if there was one. */
int h3wt_wt_dgramq_drop_oldest(h3wt_wt_dgramq *q, void *owner);
/* Drops every entry of owner in place (the session is going). */
void h3wt_wt_dgramq_forget(h3wt_wt_dgramq *q, void *owner);
size_t h3wt_wt_dgramq_count(const h3wt_wt_dgramq *q);

#endif /* H3WT_WT_DGRAM_H */
