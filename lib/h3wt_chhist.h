/*
 * h3wt_chhist: the history of one channel, and the recovery rule of
 * docs/channels.md ("Offsets, epochs, recovery").
 *
 * A channel counts its reliable messages (the first has offset 1, each next
 * one the previous plus 1) and keeps the last of them, bounded by a count
 * and by an age, so a subscriber that lost its session can come back with
 * (epoch, offset) and be sent what it missed, or be told plainly that it
 * cannot (recovered 0: the application reloads its state).
 *
 * Pure: no libuv, no I/O, no clock.  Time is a parameter in nanoseconds on
 * the caller's monotonic clock, so the tests run under a fake one.
 *
 * The kept messages are always one contiguous run of offsets ending at the
 * last one: entries leave only from the oldest end (count bound, age bound)
 * and enter only at the newest.  That is what makes recovery honest: if
 * since+1 is kept, every offset after it up to the last is kept too, so a
 * recovery never claims a message it does not have.  When memory runs out
 * the run gets shorter from the old end instead of getting a hole (see
 * h3wt_chhist_append()).  Offsets are therefore implied by the position in
 * the ring and not stored.
 *
 * Memory (LP64): 80 bytes per channel (sizeof(h3wt_chhist)) whatever its
 * traffic, plus 16 bytes per slot (a time and a pointer) of a ring that
 * starts at 8 slots on the first append and doubles when full: 8, or at
 * most twice the most entries ever kept at once, and never more than
 * max_count slots (history_size 100: 1600 bytes at most).  The ring is
 * freed when the age bound empties it.  The payloads are not copied: an
 * entry holds a reference to the h3wt_buf the hub fanned out, which stays
 * alive as long as a subscriber's queue or the history holds it.  History
 * is per channel, not per subscriber: none of it counts against the
 * per-subscription budget.
 *
 * Not thread-safe, like every h3wt object: one loop thread owns it.
 */
#ifndef H3WT_CHHIST_H
#define H3WT_CHHIST_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

/* Results of h3wt_chhist_recover(), equal to the wire's "recovered" field
   of SUBSCRIBED (docs/channels.md), so the hub can send them as they are. */
#define H3WT_CHHIST_NOT_RECOVERED 0
#define H3WT_CHHIST_RECOVERED 1

/* The largest epoch: SUBSCRIBED carries it as a QUIC varint, whose largest
   value is 2^62 - 1 (RFC 9000 16), so the hub draws its random epoch below
   this (mask the random value with it). */
#define H3WT_CHHIST_EPOCH_MAX 0x3fffffffffffffffULL

typedef struct h3wt_chhist_entry {
  uint64_t ts;   /* appended at (ns) */
  h3wt_buf *buf; /* a reference of the history's own */
} h3wt_chhist_entry;

typedef struct h3wt_chhist {
  uint64_t epoch;       /* this life of the history */
  uint64_t last;        /* offset of the newest message; 0 before the first */
  uint64_t max_age_ns;  /* 0: no age bound */
  uint64_t nomem;       /* appends that met an allocation failure */
  h3wt_chhist_entry *e; /* ring of cap slots: count entries from head, the
                           oldest first, offsets last-count+1 .. last */
  size_t cap, max_count, head, count;
  /* Test seam: when set, used instead of malloc() for the ring, so the unit
     tests can fail an allocation and walk the out-of-memory path (the
     house style's allocator hook); the ring is still released with free().
     h3wt_chhist_init() sets it to NULL. */
  void *(*alloc)(size_t size);
} h3wt_chhist;

/* The entries of a successful recovery: offsets first .. first+count-1, in
   order.  It points into the history: valid until the next
   h3wt_chhist_append(), h3wt_chhist_trim(), h3wt_chhist_recover() or
   h3wt_chhist_free() on it (each may drop entries or move the ring). */
typedef struct h3wt_chhist_range {
  const h3wt_chhist *h;
  uint64_t first; /* offset of entry 0 */
  size_t count;
} h3wt_chhist_range;

/* Starts an empty history (nothing is allocated until the first append):
   epoch names this life of it, max_count bounds the entries kept (0: keep
   none; offsets still count) and max_age_ns their age (0: no age bound).
   Returns 0 or H3WT_ERR_INVALID_ARGUMENT (epoch above
   H3WT_CHHIST_EPOCH_MAX, or a max_count whose ring would not fit in
   memory's address range); h is usable (empty, h3wt_chhist_free() safe)
   only after 0. */
int h3wt_chhist_init(h3wt_chhist *h, uint64_t epoch, size_t max_count,
                     uint64_t max_age_ns);

/* Drops every reference and frees the ring.  h may be freed again, or
   reinitialised. */
void h3wt_chhist_free(h3wt_chhist *h);

/* Counts a published message: the channel's last offset advances by one
   and, if max_count allows, buf is kept (the history takes its own
   reference; the caller keeps its own) with time ts.  Entries older than
   max_age at ts go first, then the oldest one if the history is full.
   *offset (if offset is not NULL) gets the message's offset.

   Returns 0, H3WT_ERR_INVALID_ARGUMENT (buf is NULL: nothing changes) or
   H3WT_ERR_NOMEM.  On H3WT_ERR_NOMEM the offset has advanced all the same
   and *offset is set: the message was delivered live and its subscribers
   saw that offset, so it must stay taken.  The history only got shorter
   than its bounds: when the ring could not grow, the oldest entry made
   room (this message is kept); when there was no ring yet, nothing is kept
   (the history stays empty, its oldest offset last+1).  Either way the run
   stays contiguous, so a later recovery across the lost entries answers
   not recovered.  h->nomem counts these appends. */
int h3wt_chhist_append(h3wt_chhist *h, h3wt_buf *buf, uint64_t ts,
                       uint64_t *offset);

/* Drops the entries too old at time ts (ts minus the entry's time above
   max_age_ns; none when max_age_ns is 0); an entry stamped later than ts
   is taken as new.  Only the oldest end is
   trimmed, so entries whose times went backwards stay until everything
   older than them has gone.  Frees the ring when it empties it (an idle
   channel costs its 80 bytes only). */
void h3wt_chhist_trim(h3wt_chhist *h, uint64_t ts);

/* The recovery rule of docs/channels.md for a SUBSCRIBE with recover
   (epoch, since) at time ts.  First trims at ts (an entry past its age is
   gone even if nothing was published since).  Returns
   H3WT_CHHIST_RECOVERED with *out the entries since+1 .. last (empty when
   since == last), or H3WT_CHHIST_NOT_RECOVERED with *out empty: another
   epoch, since past the last offset (the client claims the future), or
   since+1 older than the oldest entry kept (some are gone).  out must not
   be NULL. */
int h3wt_chhist_recover(h3wt_chhist *h, uint64_t epoch, uint64_t since,
                        uint64_t ts, h3wt_chhist_range *out);

/* Entries in the range ("missed" of SUBSCRIBED). */
size_t h3wt_chhist_range_count(const h3wt_chhist_range *r);

/* Entry i (< count) of the range: its buffer, borrowed (h3wt_buf_ref() it
   to keep it past the range's validity), and, if offset is not NULL, its
   offset in *offset.  NULL when i is out of range. */
h3wt_buf *h3wt_chhist_range_at(const h3wt_chhist_range *r, size_t i,
                               uint64_t *offset);

uint64_t h3wt_chhist_epoch(const h3wt_chhist *h);
/* The newest offset; 0 before the first message. */
uint64_t h3wt_chhist_last(const h3wt_chhist *h);
/* The oldest offset kept as of the last append, trim or recover (age is
   not applied here: no time is given); last+1 when nothing is kept. */
uint64_t h3wt_chhist_oldest(const h3wt_chhist *h);
/* Entries kept. */
size_t h3wt_chhist_count(const h3wt_chhist *h);

#endif /* H3WT_CHHIST_H */
