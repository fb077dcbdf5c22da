/*
 * h3wt_cidmap: hash tables keyed by what peers choose: the connection-ID
 * map and the per-address event rate.
 */
#ifndef H3WT_CIDMAP_H
#define H3WT_CIDMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "h3wt/h3wt.h" /* error codes */

/* ---- connection-ID map ------------------------------------------------
 * Open addressing with a keyed hash (SipHash-1-3): the first DCID of a
 * connection is chosen by the peer, so the table must not be floodable. */

#define H3WT_CID_MAXLEN 20

typedef struct h3wt_cid_entry {
  uint8_t len; /* 0: empty; 0xff: tombstone */
  uint8_t data[H3WT_CID_MAXLEN];
  void *value;
} h3wt_cid_entry;

typedef struct h3wt_cidmap {
  h3wt_cid_entry *slots;
  size_t cap;   /* power of two */
  size_t count; /* live entries */
  size_t used;  /* live + tombstones */
  uint64_t key[2];
} h3wt_cidmap;

/* key: 16 random bytes. */
int h3wt_cidmap_init(h3wt_cidmap *m, const uint8_t key[16]);
void h3wt_cidmap_free(h3wt_cidmap *m);
/* Returns 0, H3WT_ERR_INVALID_STATE (already present) or H3WT_ERR_NOMEM. */
int h3wt_cidmap_insert(h3wt_cidmap *m, const uint8_t *cid, size_t len,
                       void *value);
void *h3wt_cidmap_find(const h3wt_cidmap *m, const uint8_t *cid, size_t len);
/* Returns the removed value or NULL. */
void *h3wt_cidmap_remove(h3wt_cidmap *m, const uint8_t *cid, size_t len);

uint64_t h3wt_siphash13(const uint64_t key[2], const uint8_t *data,
                        size_t len);

/* ---- per-address event rate --------------------------------------------
 * How many events (new handshakes) each source address caused in the
 * current one-second window.  A fixed table of slots chosen by a keyed hash
 * of the address (the port is ignored): no allocation after init, and a
 * peer cannot aim collisions; two addresses that share a slot take it in
 * turns (each reset restarts the count: forgetting errs towards letting
 * handshakes through). */

typedef struct h3wt_rate_slot {
  uint64_t hash; /* 0: empty */
  uint64_t window_start;
  uint32_t count;
} h3wt_rate_slot;

typedef struct h3wt_ratemap {
  h3wt_rate_slot *slots;
  size_t nslots;
  uint32_t limit; /* events per second per address */
  uint64_t key[2];
} h3wt_ratemap;

/* key: 16 random bytes.  Returns 0 or H3WT_ERR_NOMEM. */
int h3wt_ratemap_init(h3wt_ratemap *m, size_t nslots, uint32_t limit,
                      const uint8_t key[16]);
void h3wt_ratemap_free(h3wt_ratemap *m);
/* Counts one event from sa's address at ts (ns).  Returns 1 when that makes
   more than limit in the address's current window, else 0. */
int h3wt_ratemap_hit(h3wt_ratemap *m, const struct sockaddr *sa, uint64_t ts);

#endif /* H3WT_CIDMAP_H */
