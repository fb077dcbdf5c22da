/*
 * h3wt_sendq: the queues of bytes waiting to be sent: a stream's send
 * queue (acknowledged, handed out, waiting) and a byte-ring queue of
 * datagrams.
 */
#ifndef H3WT_SENDQ_H
#define H3WT_SENDQ_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt_util.h" /* h3wt_vec */

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
  size_t next_cap;        /* the next copy chunk's size (grows to
                             H3WT_SENDQ_CHUNK; small again once empty) */
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
/* Copies a (small) frame head in and links an owned payload after it, in
   one allocation at most: how one shared message is queued on each of
   many streams.  Returns 0 or H3WT_ERR_NOMEM (nothing queued, ownership
   stays with the caller). */
int h3wt_sendq_append_framed(h3wt_sendq *q, const void *head, size_t headlen,
                             void *data, size_t len,
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

#endif /* H3WT_SENDQ_H */
