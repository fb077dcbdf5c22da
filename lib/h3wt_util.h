/*
 * h3wt_util: small pieces every layer uses: logging, the send queue, the
 * connection-ID map, time.  No libuv, no TLS, no QUIC here.
 */
#ifndef H3WT_UTIL_H
#define H3WT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#include "h3wt/h3wt.h"

/* ---- logging ---------------------------------------------------------- */

typedef struct h3wt_logger {
  h3wt_log_cb cb;
  void *user_data;
  h3wt_log_level level;
} h3wt_logger;

void h3wt_log_emit(const h3wt_logger *lg, h3wt_log_level level,
                   const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks the level before any argument is formatted (redis serverLog). */
#define H3WT_LOG(LG, LEVEL, COMP, ...)                                         \
  do {                                                                         \
    const h3wt_logger *h3wt_lg_ = (LG);                                        \
    if (h3wt_lg_->cb && (LEVEL) <= h3wt_lg_->level) {                          \
      h3wt_log_emit(h3wt_lg_, (LEVEL), (COMP), __VA_ARGS__);                   \
    }                                                                          \
  } while (0)

/* ---- vectors ---------------------------------------------------------- */

/* Same layout as ngtcp2_vec and nghttp3_vec, so arrays pass through. */
typedef struct h3wt_vec {
  uint8_t *base;
  size_t len;
} h3wt_vec;

/* ---- send queue --------------------------------------------------------
 * Bytes an application queued on a stream, from the moment it hands them
 * over until the peer acknowledged them.  Three cursors: everything before
 * `ack` is freed, everything between `ack` and `read` was handed to the
 * transport (and must stay put until acknowledged), the rest waits.  Copied
 * writes fill chunks of H3WT_SENDQ_CHUNK bytes; owned buffers are linked in
 * without copying. */

#define H3WT_SENDQ_CHUNK 16384

typedef struct h3wt_sendq_chunk h3wt_sendq_chunk;

typedef struct h3wt_sendq {
  h3wt_sendq_chunk *head; /* oldest chunk not fully acknowledged */
  h3wt_sendq_chunk *tail;
  h3wt_sendq_chunk *read; /* chunk holding the next byte to hand out */
  size_t ack_off;         /* offset of the first unacked byte in head */
  size_t read_off;        /* offset of the next byte to hand out in read */
  uint64_t unacked;       /* bytes queued and not yet acknowledged */
  uint64_t unread;        /* bytes queued and not yet handed out */
  uint64_t total;         /* bytes ever queued */
} h3wt_sendq;

void h3wt_sendq_init(h3wt_sendq *q);
/* Frees every chunk (running free callbacks of owned buffers). */
void h3wt_sendq_free(h3wt_sendq *q);
/* Copies data in.  Returns 0 or H3WT_ERR_NOMEM (nothing queued). */
int h3wt_sendq_append(h3wt_sendq *q, const void *data, size_t len);
/* Links an owned buffer in.  Returns 0 or H3WT_ERR_NOMEM (ownership stays
   with the caller). */
int h3wt_sendq_append_owned(h3wt_sendq *q, void *data, size_t len,
                            void (*free_cb)(void *, void *), void *ud);
/* Hands out up to veccnt vectors of unread bytes and marks them read.
   Returns the number of vectors. */
size_t h3wt_sendq_read(h3wt_sendq *q, h3wt_vec *vec, size_t veccnt);
/* Like h3wt_sendq_read() but leaves the bytes unread: the transport may
   take fewer; h3wt_sendq_consume() then marks what it took.  Returns the
   number of vectors; *total gets their byte count. */
size_t h3wt_sendq_peek(const h3wt_sendq *q, h3wt_vec *vec, size_t veccnt,
                       size_t *total);
void h3wt_sendq_consume(h3wt_sendq *q, size_t n);
/* The peer acknowledged n more bytes: frees what is no longer needed. */
void h3wt_sendq_ack(h3wt_sendq *q, uint64_t n);

/* ---- datagram queue ---------------------------------------------------
 * Datagrams waiting for a packet, in one buffer that grows to a cap:
 * queuing one costs a copy, not an allocation.  Full means dropped. */

typedef struct h3wt_dgramq {
  uint8_t *buf;
  size_t cap, head, tail; /* entries in [head, tail): 2-byte length, bytes */
  size_t count, max_count, max_bytes;
  uint64_t dropped;
} h3wt_dgramq;

void h3wt_dgramq_init(h3wt_dgramq *q, size_t max_count, size_t max_bytes);
void h3wt_dgramq_free(h3wt_dgramq *q);
/* Queues prefix then data as one datagram.  Returns 0, or
   H3WT_ERR_WOULDBLOCK when full (counted as dropped). */
int h3wt_dgramq_push(h3wt_dgramq *q, const uint8_t *prefix, size_t prefixlen,
                     const uint8_t *data, size_t len);
/* The oldest datagram, or NULL. */
const uint8_t *h3wt_dgramq_front(const h3wt_dgramq *q, size_t *len);
void h3wt_dgramq_pop(h3wt_dgramq *q);

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

/* ---- header lists -------------------------------------------------------- */

/* Appends a copy of name and value to the array *hs of *n entries (*cap
   allocated; the array doubles, from 8).  Name and value share one
   allocation, both NUL-terminated: free(hs[i].name) frees the entry.
   Returns 0 or H3WT_ERR_NOMEM (nothing appended). */
int h3wt_headers_append(h3wt_header **hs, size_t *n, size_t *cap,
                        const void *name, size_t namelen, const void *value,
                        size_t valuelen);

/* ---- misc ------------------------------------------------------------- */

/* Monotonic nanoseconds (ngtcp2_tstamp). */
uint64_t h3wt_now_ns(void);
/* Fills buf with len random bytes from the kernel.  Returns 0 or -1. */
int h3wt_random(void *buf, size_t len);
/* Formats a socket address as "1.2.3.4:80" or "[::1]:80". */
void h3wt_addr_format(const struct sockaddr *sa, char *buf, size_t buflen);
/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void h3wt_hex(const uint8_t *data, size_t len, char *out);

#endif /* H3WT_UTIL_H */
