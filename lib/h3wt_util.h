/*
 * h3wt_util: the base layer every module uses: logging, vectors, header
 * lists, time, randomness; and, through the includes at the end, the send
 * queues (h3wt_sendq.h) and the keyed tables (h3wt_cidmap.h).  No libuv,
 * no TLS, no QUIC here.
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
/* FNV-1a of len bytes over a seed: for tables keyed by names peers choose
   (a random seed per table keeps them from aiming at one chain). */
uint64_t h3wt_name_hash(uint64_t seed, const void *p, size_t len);

/* A chained hash table keyed by names peers choose (channel names), with
   the node inside the owner's struct (h3wt_list_entry() gets the owner
   back).  The owner keeps the name's bytes alive while the node is in the
   table.  The buckets double when there are more nodes than buckets. */
typedef struct h3wt_name_node {
  struct h3wt_name_node *next;
  const void *name;
  size_t len;
} h3wt_name_node;

typedef struct h3wt_name_table {
  h3wt_name_node **buckets;
  size_t nbuckets, count;
  uint64_t seed; /* random: see h3wt_name_hash */
} h3wt_name_table;

/* An empty table (nothing allocated until the first insert). */
void h3wt_name_table_init(h3wt_name_table *t);
/* Frees the buckets; the nodes are the owners'. */
void h3wt_name_table_free(h3wt_name_table *t);
h3wt_name_node *h3wt_name_table_find(const h3wt_name_table *t,
                                     const void *name, size_t len);
/* Adds n (name and len set, not in the table).  Returns 0 or
   H3WT_ERR_NOMEM (n not added). */
int h3wt_name_table_insert(h3wt_name_table *t, h3wt_name_node *n);
void h3wt_name_table_remove(h3wt_name_table *t, h3wt_name_node *n);
/* for (each node n of t): the body may remove n (and no other node). */
#define H3WT_NAME_TABLE_FOREACH(n, t)                                          \
  for (size_t n##_i_ = 0; n##_i_ < (t)->nbuckets; ++n##_i_)                    \
    for (h3wt_name_node *n = (t)->buckets[n##_i_], *n##_next_;                 \
         n && (n##_next_ = n->next, 1); n = n##_next_)
/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void h3wt_hex(const uint8_t *data, size_t len, char *out);
/* v in decimal into out (at least 21 bytes), NUL-terminated; returns the
   number of digits.  For per-request headers, where snprintf costs more
   than the rest of the work. */
size_t h3wt_u64_dec(uint64_t v, char *out);

/* ---- worker steering ---------------------------------------------------- */

/* A server that is worker `worker` of a group of `workers` puts its index
   in every connection ID it issues: the first 4 bytes, read as a
   big-endian number, modulo workers.  The kernel program that steers
   packets to workers (h3wt_group.c) reads the same bytes.  Sets them,
   keeping them random otherwise (workers <= 1: cid is left as it is). */
void h3wt_cid_set_worker(uint8_t *cid, uint32_t workers, uint32_t worker);
/* The worker whose connection ID cid is, or UINT32_MAX when it is shorter
   than 4 bytes or workers <= 1. */
uint32_t h3wt_cid_worker(const uint8_t *cid, size_t len, uint32_t workers);

/* The rest of the base layer, each in its own file. */
#include "h3wt_cidmap.h"
#include "h3wt_sendq.h"

#endif /* H3WT_UTIL_H */
