/*
 * h3wt_wt: WebTransport sessions and streams on one HTTP/3 connection.
 *
 * Sits beside nghttp3 in the HTTP/3 layer: h3wt_h3 hands it every peer
 * stream's first bytes (h3wt_wt_recv_stream_data) so WebTransport streams
 * (signal 0x41 on bidi, type 0x54 on uni) never reach nghttp3, asks it for
 * stream data and datagrams to write, and forwards QUIC stream events for
 * streams it owns.  The facades (server, client) create sessions from
 * extended CONNECT requests and feed the CONNECT stream's capsules in.
 *
 * Application callbacks for stream and session ends are deferred to
 * h3wt_wt_run_deferred() (the facades' flush pass), so an application may
 * close or reset anything from inside any callback without freeing memory
 * its caller still uses.
 */
#ifndef H3WT_WT_H
#define H3WT_WT_H

#include "h3wt/h3wt.h"
#include "h3wt_h3.h"
#include "h3wt_list.h"
#include "h3wt_sud.h"
#include "h3wt_util.h"
#include "h3wt_wtproto.h"

typedef struct h3wt_wt_conn h3wt_wt_conn;


/* What the WebTransport layer counts (h3wt_server_stats takes these).
   Plain increments on the loop thread. */
typedef struct h3wt_wt_stats {
  uint64_t sessions_current, sessions_total; /* established */
  uint64_t streams_bidi_peer, streams_uni_peer;
  uint64_t streams_bidi_local, streams_uni_local;
  uint64_t streams_refused_limit;    /* over max_streams_per_session */
  uint64_t streams_refused_buffered; /* WT_BUFFERED_STREAM_REJECTED */
  uint64_t dgrams_received, dgrams_received_dropped, dgrams_sent;
  uint64_t dgrams_dropped_full, dgrams_dropped_too_large;
  uint64_t dgrams_dropped_oldest;  /* evicted for a newer (drop-oldest) */
  uint64_t dgrams_dropped_expired; /* older than their max age */
  uint64_t wouldblock_stream;  /* writes refused by max_stream_queue */
  uint64_t wouldblock_session; /* writes refused by max_session_queue */
  /* Session flow control (only when both sides offered it). */
  uint64_t fc_capsules_sent;     /* WT_MAX_* and WT_*_BLOCKED */
  uint64_t fc_capsules_received; /* the same, from the peer */
  uint64_t fc_errors;            /* sessions reset with WT_FLOW_CONTROL_ERROR */
  uint64_t fc_data_blocked;      /* streams held back for the peer's
                                    WT_MAX_DATA */
  uint64_t fc_streams_blocked;   /* opens refused for its WT_MAX_STREAMS */
} h3wt_wt_stats;

/* Every session of a server (all its connections), for lookup by
   h3wt_session_id() and iteration: a list in creation order and a hash
   table of chains.  Ids come from next_id and are never reused. */
typedef struct h3wt_wt_registry {
  uint64_t next_id; /* the last id given */
  uint64_t id_step; /* between ids (a group's worker: the number of
                       workers; 0 means 1) */
  h3wt_list list; /* by age (zeroed until the first session) */
  h3wt_session **buckets;
  size_t nbuckets, count;
} h3wt_wt_registry;

void h3wt_wt_registry_free(h3wt_wt_registry *reg);
h3wt_session *h3wt_wt_registry_find(const h3wt_wt_registry *reg,
                                    uint64_t id);
/* Established sessions, oldest first, path (without query) matching when
   not NULL; stops when cb returns non-zero. */
size_t h3wt_wt_registry_foreach(h3wt_wt_registry *reg, const char *path,
                                int (*cb)(h3wt_session *s, void *ud),
                                void *ud);

typedef struct h3wt_wt_limits {
  uint32_t max_sessions;            /* per connection */
  uint32_t max_streams_per_session; /* concurrent, peer-opened */
  size_t max_stream_queue;          /* unacked bytes per stream */
  size_t max_session_queue;         /* unacked bytes per session; 0: none */
  size_t max_datagram_queue;        /* datagrams per connection */
  size_t max_orphan_streams;        /* streams waiting for their session */
  size_t max_orphan_bytes;          /* bytes buffered per waiting stream */
  uint64_t orphan_timeout_ns;       /* how long one may wait; 0: no bound */
  /* Where every connection made with these limits counts (shared by all
     connections of a server); NULL: each connection counts on its own. */
  h3wt_wt_stats *stats;
  /* Where sessions are registered (shared by a server's connections);
     NULL: each connection keeps its own. */
  h3wt_wt_registry *registry;
  /* Datagram policy and liveness of new sessions. */
  int dgram_drop_oldest;
  uint64_t dgram_max_age_ms;
  /* Session flow control: the data window each session grants its peer
     (SETTINGS_WT_INITIAL_MAX_DATA, and kept that far ahead of what
     arrived); its stream limits are max_streams_per_session.  0: flow
     control is not offered, so it is never on. */
  uint64_t session_max_data;
} h3wt_wt_limits;

void h3wt_wt_limits_default(h3wt_wt_limits *l);

/* When the oldest stream waiting for its session runs out of time
   (orphan_timeout_ns), or UINT64_MAX. */
uint64_t h3wt_wt_orphan_deadline(const h3wt_wt_conn *wt);
/* Refuses (WT_BUFFERED_STREAM_REJECTED, counted) the streams that have
   waited for their session longer than orphan_timeout_ns at ts.  Not from
   inside an ngtcp2 callback (the flush pass). */
void h3wt_wt_expire_orphans(h3wt_wt_conn *wt, uint64_t ts);

int h3wt_wt_conn_new(h3wt_wt_conn **pwt, h3wt_h3_conn *h3,
                     const h3wt_wt_limits *limits, const h3wt_logger *log,
                     int server);
/* The connection is gone: sessions still open get on_session_close with
   H3WT_SESSION_CONN_LOST (their streams' closes first). */
void h3wt_wt_conn_lost(h3wt_wt_conn *wt);
/* Frees everything (after h3wt_wt_conn_lost, which it runs if needed). */
void h3wt_wt_conn_del(h3wt_wt_conn *wt);

/* ---- from the HTTP/3 layer ---------------------------------------------- */

/* What h3wt_wt_recv_stream_data decided. */
#define H3WT_WT_TAKEN 0 /* WebTransport (or still undecided): consumed */
#define H3WT_WT_PASS 1  /* HTTP/3: give prebuf (prelen) then data to nghttp3 */

/* Stream data for a stream whose ngtcp2 user data is sud.  Returns
   H3WT_WT_TAKEN, H3WT_WT_PASS (with bytes held back earlier copied to
   prebuf, 16 bytes of room), or a negative value: close the connection
   with *h3err. */
int h3wt_wt_recv_stream_data(h3wt_wt_conn *wt, int64_t stream_id,
                             h3wt_sud *sud, const uint8_t *data, size_t len,
                             int fin, uint8_t *prebuf, size_t *prelen,
                             uint64_t *h3err);
/* QUIC events on streams whose user data is a WT stream or pending. */
void h3wt_wt_stream_acked(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t n);
void h3wt_wt_stream_closed(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t code);
void h3wt_wt_stream_reset(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t code,
                          uint64_t final_size);
void h3wt_wt_stream_stop_sending(h3wt_wt_conn *wt, h3wt_sud *sud,
                                 uint64_t code);
void h3wt_wt_stream_unblocked(h3wt_wt_conn *wt, h3wt_sud *sud);

/* The write path: a stream with data (as nghttp3_conn_writev_stream). */
ssize_t h3wt_wt_writev(h3wt_wt_conn *wt, int64_t *pstream_id, int *pfin,
                       h3wt_vec *vec, size_t veccnt);
int h3wt_wt_has_writable(const h3wt_wt_conn *wt);
/* For the stream the last h3wt_wt_writev returned: */
void h3wt_wt_written(h3wt_wt_conn *wt, int64_t stream_id, size_t n);
void h3wt_wt_blocked(h3wt_wt_conn *wt, int64_t stream_id);
void h3wt_wt_shut_wr(h3wt_wt_conn *wt, int64_t stream_id);
/* Does the stream the write path is on belong to us? */
int h3wt_wt_owns_write(const h3wt_wt_conn *wt, int64_t stream_id);

/* Datagrams. */
void h3wt_wt_recv_datagram(h3wt_wt_conn *wt, const uint8_t *data, size_t len);
/* The next datagram to send as vectors (0: none); entries of closed
   sessions, and those older than their session's maximum age at ts, are
   dropped on the way. */
size_t h3wt_wt_datagram_front(h3wt_wt_conn *wt, h3wt_vec *vec, uint64_t ts);
void h3wt_wt_datagram_pop(h3wt_wt_conn *wt);

/* The peer raised our stream limit (bidi or uni): sessions that were
   refused a stream of that kind hear of it. */
void h3wt_wt_streams_available(h3wt_wt_conn *wt, int bidi);
/* The smallest liveness timeout of the connection's established sessions
   (0: none set). */
uint64_t h3wt_wt_liveness_ms(const h3wt_wt_conn *wt);

/* The counters this connection adds to (limits.stats, or its own). */
const h3wt_wt_stats *h3wt_wt_conn_stats(const h3wt_wt_conn *wt);

/* Runs deferred stream/session close notifications and frees. */
void h3wt_wt_run_deferred(h3wt_wt_conn *wt);

/* ---- for protocols built on sessions (channels) ------------------------- */

/* Queues head (copied) and buf (referenced) on a stream as one unit: both
   or neither, so a reader never sees half a frame.  Returns as
   h3wt_stream_write(). */
int h3wt_wt_stream_write_frame(h3wt_stream *st, const uint8_t *head,
                               size_t headlen, h3wt_buf *buf);
/* Queues bytes whatever the stream's and session's budgets hold: for a
   small, bounded notice that must reach a reader whose queue is full
   (why it was cut off).  Never for anything a peer can make repeat. */
int h3wt_wt_stream_write_past_budget(h3wt_stream *st, const uint8_t *data,
                                     size_t len);
/* Sends a datagram whose payload is head (at most 16 bytes, copied) then
   buf (referenced).  Returns as h3wt_session_send_datagram(). */
int h3wt_wt_send_datagram_head(h3wt_session *s, const uint8_t *head,
                               size_t headlen, h3wt_buf *buf);

/* ---- from the facades ------------------------------------------------------ */

/* A session for the CONNECT on stream_id (server: a request; client: the
   session it opens).  The facade copies the request's fields in. */
int h3wt_wt_session_new(h3wt_wt_conn *wt, int64_t stream_id,
                        const h3wt_session_handler *handler, void *route_data,
                        const char *path, const char *authority,
                        const char *origin, h3wt_session **ps);
/* Adds a request header (server side) to the session's copy; a
   wt-available-protocols header also fills the offered list. */
int h3wt_wt_session_add_header(h3wt_session *s, const h3wt_header *h);
/* The session takes a whole header list (h3wt_headers_append's, with its
   count and capacity), leaving the caller's empty; the session must have
   none yet. */
void h3wt_wt_session_take_headers(h3wt_session *s, h3wt_header **hs,
                                  size_t *n, size_t *cap);
/* The application answers later (on_session_request said PENDING). */
void h3wt_wt_session_set_pending(h3wt_session *s, int on);
int h3wt_wt_session_answered(const h3wt_session *s);
void h3wt_wt_session_set_answered(h3wt_session *s);
/* The facade's object behind the session (server: its request). */
void h3wt_wt_session_set_facade(h3wt_session *s, void *facade);
void *h3wt_wt_session_facade(const h3wt_session *s);
int h3wt_wt_session_is_server(const h3wt_session *s);
/* Client: the server's WT-Protocol answer (copied). */
int h3wt_wt_session_set_protocol(h3wt_session *s, const char *proto,
                                 size_t len);
/* The connection the session is on. */
h3wt_wt_conn *h3wt_wt_session_conn(const h3wt_session *s);
h3wt_h3_conn *h3wt_wt_h3(const h3wt_wt_conn *wt);
size_t h3wt_wt_session_count(const h3wt_wt_conn *wt);
/* Graceful shutdown: WT_DRAIN_SESSION to every established session. */
void h3wt_wt_drain_all(h3wt_wt_conn *wt);
/* Closes every established session with code and reason. */
void h3wt_wt_close_all(h3wt_wt_conn *wt, uint32_t code, const char *reason);
/* The session is established: on_session_ready, buffered streams and
   datagrams are delivered. */
void h3wt_wt_session_ready(h3wt_session *s);
/* Rejected (server: the handler said no; client: a non-2xx answer): free
   it and reject the streams that waited for it. */
void h3wt_wt_session_rejected(h3wt_session *s, int status);
/* Forgets a session that never reached the wire (no callbacks). */
void h3wt_wt_session_discard(h3wt_session *s);
/* CONNECT stream bytes (capsules). */
int h3wt_wt_session_recv(h3wt_session *s, const uint8_t *data, size_t len);
/* The peer finished the CONNECT stream. */
void h3wt_wt_session_recv_fin(h3wt_session *s);
/* The CONNECT stream is gone (closed or reset). */
void h3wt_wt_session_stream_closed(h3wt_session *s, int reset);
/* The capsule bytes to send on the CONNECT stream (nghttp3 read_data):
   returns vectors, *eof at the end, H3WT_ERR_WOULDBLOCK when none yet. */
ssize_t h3wt_wt_session_read_capsules(h3wt_session *s, h3wt_vec *vec,
                                      size_t veccnt, int *eof);
void h3wt_wt_session_capsules_acked(h3wt_session *s, uint64_t n);
void h3wt_wt_session_set_status(h3wt_session *s, int status);
/* Client: the CONNECT stream's ID, once the request is on the wire. */
void h3wt_wt_session_set_stream(h3wt_session *s, int64_t stream_id);
int64_t h3wt_wt_session_stream(const h3wt_session *s);

#ifdef H3WT_TEST_HOOKS /* only in the tests' build of the library */
/* Test hooks: send exactly what a broken or hostile peer would. */
/* A stream carrying bytes (no WebTransport header added). */
int h3wt_wt_test_raw_stream(h3wt_wt_conn *wt, int bidi, const void *bytes,
                            size_t len, int fin);
/* Bytes appended to a session's CONNECT stream as if they were capsules. */
int h3wt_wt_test_raw_capsule(h3wt_session *s, const void *bytes, size_t len);
/* A QUIC DATAGRAM frame with this payload (no quarter stream ID added). */
int h3wt_wt_test_raw_datagram(h3wt_wt_conn *wt, const void *bytes,
                              size_t len);
#endif /* H3WT_TEST_HOOKS */


#endif /* H3WT_WT_H */
