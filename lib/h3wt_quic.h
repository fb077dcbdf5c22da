/*
 * h3wt_quic: one QUIC connection on ngtcp2, server or client role.
 *
 * Sans-I/O: the caller hands in received datagrams with a timestamp
 * (h3wt_quic_conn_read), asks for packets to send (h3wt_quic_conn_write,
 * which hands them to the send callback in GSO-sized batches) and for the
 * next deadline (h3wt_quic_conn_expiry).  No sockets, no timers, no libuv:
 * the server and client facades own those.  Stream payloads go to and come
 * from the layer above (HTTP/3) through the callbacks, in nghttp3's shape.
 *
 * The only module that includes ngtcp2's headers (with h3wt_tls, which
 * includes ngtcp2_crypto_wolfssl to bridge the two).
 */
#ifndef H3WT_QUIC_H
#define H3WT_QUIC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "h3wt_util.h"
#include "h3wt_tls.h"

typedef struct h3wt_quic_conn h3wt_quic_conn;

/* What read/write/handle_expiry tell the owner. */
typedef enum h3wt_quic_status {
  H3WT_QUIC_OK = 0,   /* carry on */
  H3WT_QUIC_MORE = 1, /* (write) stopped early; call write again soon */
  H3WT_QUIC_DEAD = 2  /* the connection is over: free it */
} h3wt_quic_status;

/* Callbacks into the layer above and into the owner.  Upper-layer callbacks
   return 0 or a negative value; a negative value closes the connection
   with the application error set by h3wt_quic_conn_set_app_error() (or
   H3_INTERNAL_ERROR). */
typedef struct h3wt_quic_callbacks {
  /* -- owner (server/client facade) -- */
  /* Sends len bytes of packets to remote (gso_size > 0: several), all
     with the ECN codepoint ecn (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE: the
     low two bits of the IP TOS / traffic class). */
  void (*send)(h3wt_quic_conn *qc, const struct sockaddr *remote,
               const uint8_t *data, size_t len, size_t gso_size,
               unsigned ecn, void *ud);
  /* Server: a connection ID was issued / retired; keep the CID map in step. */
  int (*cid_added)(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                   void *ud);
  void (*cid_removed)(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                      void *ud);
  /* -- upper layer (HTTP/3) -- */
  int (*handshake_completed)(h3wt_quic_conn *qc, void *ud);
  int (*recv_stream_data)(h3wt_quic_conn *qc, int64_t stream_id,
                          const uint8_t *data, size_t len, int fin, void *ud,
                          void *stream_ud);
  int (*acked_stream_data)(h3wt_quic_conn *qc, int64_t stream_id,
                           uint64_t datalen, void *ud, void *stream_ud);
  int (*stream_close)(h3wt_quic_conn *qc, int64_t stream_id,
                      uint64_t app_error_code, void *ud, void *stream_ud);
  /* final_size: the stream's length the RESET_STREAM declares (session
     flow control counts a reset stream's bytes up to it). */
  int (*stream_reset)(h3wt_quic_conn *qc, int64_t stream_id,
                      uint64_t final_size, uint64_t app_error_code, void *ud,
                      void *stream_ud);
  int (*stream_stop_sending)(h3wt_quic_conn *qc, int64_t stream_id,
                             uint64_t app_error_code, void *ud,
                             void *stream_ud);
  int (*extend_max_stream_data)(h3wt_quic_conn *qc, int64_t stream_id,
                                void *ud, void *stream_ud);
  int (*extend_max_remote_streams_bidi)(h3wt_quic_conn *qc,
                                        uint64_t max_streams, void *ud);
  /* The peer lets us open more bidirectional streams. */
  int (*extend_max_local_streams_bidi)(h3wt_quic_conn *qc,
                                       uint64_t max_streams, void *ud);
  int (*recv_datagram)(h3wt_quic_conn *qc, const uint8_t *data, size_t len,
                       void *ud);
  /* The write path pulls stream data (nghttp3_conn_writev_stream's shape):
     returns the number of vectors (0 with *pstream_id == -1: nothing),
     or a negative value on a fatal error. */
  ssize_t (*writev_stream)(h3wt_quic_conn *qc, int64_t *pstream_id, int *pfin,
                           h3wt_vec *vec, size_t veccnt, void *ud);
  /* n bytes (or just the FIN, n == 0) of the stream went into a packet. */
  int (*add_write_offset)(h3wt_quic_conn *qc, int64_t stream_id, size_t n,
                          void *ud);
  /* Datagrams to send: the oldest as up to 2 vectors (0: none; ts is the
     time of this write, for age limits), and its removal. */
  size_t (*datagram_front)(h3wt_quic_conn *qc, h3wt_vec *vec, uint64_t ts,
                           void *ud);
  void (*datagram_pop)(h3wt_quic_conn *qc, void *ud);
  /* The peer raised our limit of unidirectional streams. */
  int (*extend_max_local_streams_uni)(h3wt_quic_conn *qc,
                                      uint64_t max_streams, void *ud);
  /* The stream is flow-control blocked / its write side is shut. */
  void (*stream_blocked)(h3wt_quic_conn *qc, int64_t stream_id, void *ud);
  void (*stream_shut_wr)(h3wt_quic_conn *qc, int64_t stream_id, void *ud);
} h3wt_quic_callbacks;

/* Shared by every connection of one server or client. */
typedef struct h3wt_quic_config {
  const h3wt_logger *log;
  h3wt_tls_ctx *tls;
  const h3wt_quic_callbacks *cbs;
  uint8_t static_secret[32]; /* for stateless reset tokens */
  const char *qlog_dir;      /* NULL: no qlog */
  uint64_t idle_timeout_ns;
  uint64_t handshake_timeout_ns;
  uint64_t max_streams_bidi; /* the peer may open */
  uint64_t max_streams_uni;
  uint64_t max_stream_data; /* per stream, each direction */
  uint64_t max_data;        /* per connection */
  uint64_t max_datagram_frame_size;
  /* Server of a group: every connection ID it issues names worker
     cid_worker of cid_workers (h3wt_cid_set_worker); cid_workers 0 or 1:
     plain random IDs. */
  uint32_t cid_workers, cid_worker;
  /* 1: at most the send quantum per write, paced by ngtcp2 (the default,
     h3wt_quic_pacing_default()); 0: up to 64 packets back to back. */
  int pacing;
  /* Scratch buffer for outgoing packets, shared: writes are synchronous. */
  uint8_t *txbuf;
  size_t txbuflen;
} h3wt_quic_config;

/* 1 unless the environment has H3WT_PACING=0: a switch to compare paced
   with unpaced sending in benchmarks (bench/README.md). */
int h3wt_quic_pacing_default(void);

/* Smallest txbuflen that works. */
#define H3WT_QUIC_TXBUF_MIN 65536

/* The server's connection-ID length. */
#define H3WT_QUIC_SCIDLEN 18

/* What the server learns from a datagram's first bytes. */
typedef struct h3wt_quic_pkt_info {
  uint32_t version;
  const uint8_t *dcid;
  size_t dcidlen;
  const uint8_t *scid;
  size_t scidlen;
  int long_header;
} h3wt_quic_pkt_info;

/* Decodes the version and connection IDs.  Returns 0, 1 when the version
   is not supported (answer with version negotiation), or -1 when the
   datagram is not a QUIC packet (drop it). */
int h3wt_quic_decode(const uint8_t *data, size_t len, h3wt_quic_pkt_info *pi);

/* Writes a Version Negotiation packet answering pi.  Returns its length or
   -1. */
ssize_t h3wt_quic_write_version_negotiation(uint8_t *out, size_t outlen,
                                            const h3wt_quic_pkt_info *pi);

/* Writes a Stateless Reset for a packet of pktlen bytes to an unknown
   connection ID (RFC 9000 section 10.3): shorter than the packet that
   triggered it, so it can never amplify.  Returns its length, or 0 when
   the packet is too short to answer. */
size_t h3wt_quic_write_stateless_reset(uint8_t *out, size_t outlen,
                                       const uint8_t secret[32],
                                       const uint8_t *dcid, size_t dcidlen,
                                       size_t pktlen);

/* Server: writes a Retry answering the client Initial in data (RFC 9000
   8.1.2), with a token bound to remote, the DCID of this Initial and ts.
   Returns the Retry's length; 0 when the Initial already answers a Retry
   (create the connection: h3wt_quic_conn_server_new checks the token); -1
   when the packet is not a client Initial (drop it). */
ssize_t h3wt_quic_write_retry(uint8_t *out, size_t outlen,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *remote,
                              const uint8_t *data, size_t len, uint64_t ts);

/* Server: creates a connection for a client's first Initial packet.
   Returns 0, H3WT_ERR_QUIC when the packet is not an acceptable Initial
   (drop it), H3WT_ERR_HANDSHAKE when it carries a Retry token that is
   invalid, expired or from another address (drop it), H3WT_ERR_TLS or
   H3WT_ERR_NOMEM.  The caller then feeds the
   same packet to h3wt_quic_conn_read(). */
int h3wt_quic_conn_server_new(h3wt_quic_conn **pqc,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *local,
                              const struct sockaddr *remote,
                              const uint8_t *data, size_t len, uint64_t ts,
                              void *user_data);

/* Client: creates a connection and its first flight (sent by the next
   h3wt_quic_conn_write()). */
int h3wt_quic_conn_client_new(h3wt_quic_conn **pqc,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *local,
                              const struct sockaddr *remote, const char *sni,
                              uint64_t ts, void *user_data);

void h3wt_quic_conn_del(h3wt_quic_conn *qc);

/* Feeds one received datagram, which arrived with the ECN codepoint ecn
   (0 when the socket cannot tell). */
h3wt_quic_status h3wt_quic_conn_read(h3wt_quic_conn *qc,
                                     const struct sockaddr *local,
                                     const struct sockaddr *remote,
                                     const uint8_t *data, size_t len,
                                     unsigned ecn, uint64_t ts);

/* Writes what is ready to send through cbs->send. */
h3wt_quic_status h3wt_quic_conn_write(h3wt_quic_conn *qc, uint64_t ts);

/* The next deadline (UINT64_MAX: none) and its handler. */
uint64_t h3wt_quic_conn_expiry(const h3wt_quic_conn *qc);
h3wt_quic_status h3wt_quic_conn_handle_expiry(h3wt_quic_conn *qc,
                                              uint64_t ts);

/* Starts closing with an application error (CONNECTION_CLOSE, then the
   closing period).  reason may be NULL. */
void h3wt_quic_conn_close(h3wt_quic_conn *qc, uint64_t app_error_code,
                          const char *reason, uint64_t ts);

/* The application error code to close with when an upper-layer callback
   fails. */
void h3wt_quic_conn_set_app_error(h3wt_quic_conn *qc, uint64_t code);

/* Why the connection ended: 0 (closed locally, or by the peer with no
   error), H3WT_ERR_IDLE_TIMEOUT, H3WT_ERR_HANDSHAKE, H3WT_ERR_QUIC (a
   transport error) or H3WT_ERR_H3 (the peer closed with an application
   error other than H3_NO_ERROR). */
int h3wt_quic_conn_end_reason(const h3wt_quic_conn *qc);

int h3wt_quic_conn_is_server(const h3wt_quic_conn *qc);
int h3wt_quic_conn_handshake_done(const h3wt_quic_conn *qc);
/* Starts a key update (RFC 9001 6); -1 while one is in progress or before
   the handshake is confirmed. */
int h3wt_quic_conn_initiate_key_update(h3wt_quic_conn *qc, uint64_t ts);
/* For tests: queues len bytes of CRYPTO data at the 1-RTT level, as a TLS
   stack sends post-handshake messages (of which a peer accepts only a
   server's NewSessionTicket).  0 or -1. */
int h3wt_quic_conn_submit_crypto_1rtt(h3wt_quic_conn *qc, const uint8_t *data,
                                      size_t len);
int h3wt_quic_conn_is_closing(const h3wt_quic_conn *qc);
const struct sockaddr *h3wt_quic_conn_remote(const h3wt_quic_conn *qc);
void *h3wt_quic_conn_user_data(const h3wt_quic_conn *qc);
/* A printable ID for logs (the first 8 bytes of the server's CID, hex). */
const char *h3wt_quic_conn_name(const h3wt_quic_conn *qc);
/* Every CID currently registered for this connection (for the owner's map
   at teardown): returns the count written (at most max). */
size_t h3wt_quic_conn_cids(const h3wt_quic_conn *qc, uint8_t (*cids)[20],
                           size_t *lens, size_t max);

/* Streams (thin wrappers over ngtcp2, for the HTTP/3 layer). */
int h3wt_quic_open_bidi_stream(h3wt_quic_conn *qc, int64_t *pid, void *sud);
int h3wt_quic_open_uni_stream(h3wt_quic_conn *qc, int64_t *pid, void *sud);
uint64_t h3wt_quic_streams_uni_left(const h3wt_quic_conn *qc);
uint64_t h3wt_quic_streams_bidi_left(const h3wt_quic_conn *qc);
void h3wt_quic_set_stream_data(h3wt_quic_conn *qc, int64_t id, void *sud);
/* Returns n bytes of flow-control credit (stream and connection). */
void h3wt_quic_consume(h3wt_quic_conn *qc, int64_t id, size_t n);
/* Connection credit only (stream credit is moot, e.g. after a reset). */
void h3wt_quic_consume_conn(h3wt_quic_conn *qc, size_t n);
void h3wt_quic_shutdown_stream_read(h3wt_quic_conn *qc, int64_t id,
                                    uint64_t code);
void h3wt_quic_shutdown_stream_write(h3wt_quic_conn *qc, int64_t id,
                                     uint64_t code);
/* Resets both directions of a stream. */
void h3wt_quic_shutdown_stream(h3wt_quic_conn *qc, int64_t id, uint64_t code);
/* Lets the peer open n more bidirectional/unidirectional streams (after
   one closed). */
void h3wt_quic_extend_max_streams_bidi(h3wt_quic_conn *qc, size_t n);
void h3wt_quic_extend_max_streams_uni(h3wt_quic_conn *qc, size_t n);
/* The largest DATAGRAM frame payload that fits a packet on the current
   path and the peer's max_datagram_frame_size (0: none allowed). */
size_t h3wt_quic_max_datagram_payload(const h3wt_quic_conn *qc);
/* RTT, congestion window and the byte/packet counts of the connection;
   idle_ms against ts. */
void h3wt_quic_transport_info(const h3wt_quic_conn *qc,
                              h3wt_transport_info *info, uint64_t ts);
/* When the last packet was read (ts of h3wt_quic_conn_read). */
uint64_t h3wt_quic_last_rx(const h3wt_quic_conn *qc);
/* PING after ns without traffic (0: never). */
void h3wt_quic_set_keep_alive(h3wt_quic_conn *qc, uint64_t ns);
/* The peer's max_datagram_frame_size (0: datagrams not allowed). */
uint64_t h3wt_quic_peer_max_datagram(const h3wt_quic_conn *qc);
/* Our per-stream receive window (max_stream_data): how far beyond what
   was read a peer may send on a stream. */
uint64_t h3wt_quic_stream_window(const h3wt_quic_conn *qc);

/* Resumption and 0-RTT.  The connection's TLS object (h3wt_tls_session_*
   calls take it), or NULL: a server lets its session go once the
   handshake has completed (after the read call in which it did), since
   everything after it is ngtcp2's own crypto. */
void *h3wt_quic_conn_tls(const h3wt_quic_conn *qc);
/* Client, before the first write: the server's transport parameters
   remembered from an earlier connection (h3wt_quic_conn_get_0rtt_params
   there), which 0-RTT packets must respect (RFC 9000 7.4.1); streams may
   be opened and written at once.  Returns 0 or -1 (unusable: then do not
   attempt 0-RTT). */
int h3wt_quic_conn_set_0rtt_params(h3wt_quic_conn *qc, const uint8_t *data,
                                   size_t len);
/* Client, after the handshake: those of the server's parameters a later
   0-RTT connection needs.  Returns their length or -1. */
ssize_t h3wt_quic_conn_get_0rtt_params(const h3wt_quic_conn *qc,
                                       uint8_t *buf, size_t len);
/* Client: how many session tickets the TLS session took in so far. */
unsigned h3wt_quic_conn_tickets(const h3wt_quic_conn *qc);
/* Client: the server did not accept the 0-RTT data; ngtcp2 forgets every
   stream opened so far (without stream callbacks): whatever went early
   must be opened and sent again.  Returns 0 or -1. */
int h3wt_quic_conn_early_data_rejected(h3wt_quic_conn *qc);

#endif /* H3WT_QUIC_H */
