/*
 * h3wt_h3: HTTP/3 on one QUIC connection, through nghttp3.
 *
 * It implements the QUIC layer's stream callbacks (h3wt_quic_callbacks'
 * upper half), binds the control and QPACK streams, returns flow-control
 * credit as nghttp3 consumes bytes, and hands requests/responses to the
 * facade above (server or client) through h3wt_h3_callbacks.  The only
 * module that includes nghttp3's header.
 */
#ifndef H3WT_H3_H
#define H3WT_H3_H

#include "h3wt_quic.h"
#include "h3wt_wtproto.h"

typedef struct h3wt_h3_conn h3wt_h3_conn;

typedef struct h3wt_h3_callbacks {
  /* A request (server) or response (client) begins on stream_id.  Server:
     return the new stream's user data in *psud. */
  int (*begin_headers)(h3wt_h3_conn *h3, int64_t stream_id, void *ud,
                       void *sud, void **psud);
  int (*recv_header)(h3wt_h3_conn *h3, int64_t stream_id, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen,
                     void *ud, void *sud);
  int (*end_headers)(h3wt_h3_conn *h3, int64_t stream_id, int fin, void *ud,
                     void *sud);
  /* Body bytes.  Flow-control credit is returned after this returns. */
  int (*recv_data)(h3wt_h3_conn *h3, int64_t stream_id, const uint8_t *data,
                   size_t len, void *ud, void *sud);
  int (*end_stream)(h3wt_h3_conn *h3, int64_t stream_id, void *ud, void *sud);
  /* The stream is gone; free its user data. */
  int (*stream_close)(h3wt_h3_conn *h3, int64_t stream_id,
                      uint64_t app_error_code, void *ud, void *sud);
  /* The peer reset the stream.  sud is NULL here (nghttp3 1.8 has no
     getter for its stream user data): find the stream by its ID. */
  int (*stream_reset)(h3wt_h3_conn *h3, int64_t stream_id,
                      uint64_t app_error_code, void *ud, void *sud);
  /* Body to send: fill vec with up to veccnt pieces that stay valid until
     acknowledged; set *eof at the end.  Return the count, or
     H3WT_ERR_WOULDBLOCK to pause until h3wt_h3_resume(). */
  ssize_t (*read_body)(h3wt_h3_conn *h3, int64_t stream_id, h3wt_vec *vec,
                       size_t veccnt, int *eof, void *ud, void *sud);
  /* n more body bytes were acknowledged. */
  int (*acked_body)(h3wt_h3_conn *h3, int64_t stream_id, uint64_t n,
                    void *ud, void *sud);
  /* The handshake completed: HTTP/3 is ready (control streams bound). */
  void (*ready)(h3wt_h3_conn *h3, void *ud);
  /* Client: the server allows more requests (new bidi stream credit). */
  void (*streams_available)(h3wt_h3_conn *h3, void *ud);
  /* Something was queued outside a QUIC callback: the owner should write
     the connection soon (it marks it dirty). */
  void (*want_write)(h3wt_h3_conn *h3, void *ud);
} h3wt_h3_callbacks;

struct h3wt_wt_limits;
struct h3wt_wt_conn;

typedef struct h3wt_h3_config {
  const h3wt_logger *log;
  const h3wt_h3_callbacks *cbs;
  uint64_t max_field_section_size;
  uint64_t max_streams_bidi; /* server: requests the client may open */
  /* WebTransport: its limits, or NULL to leave it off. */
  const struct h3wt_wt_limits *wt;
  /* Session flow control's initial limits for our SETTINGS (with wt);
     wt_fc_max_data 0: flow control is not offered. */
  uint64_t wt_fc_max_data;
  uint64_t wt_fc_max_streams;
} h3wt_h3_config;

/* Made and freed by the stream dispatcher (h3wt_streams_conn_new), which
   attaches the WebTransport state; facades do not call these. */
int h3wt_h3_conn_new(h3wt_h3_conn **ph3, const h3wt_h3_config *cfg,
                     h3wt_quic_conn *qc, int server, void *user_data);
void h3wt_h3_conn_del(h3wt_h3_conn *h3);
h3wt_quic_conn *h3wt_h3_quic(const h3wt_h3_conn *h3);
void *h3wt_h3_user_data(const h3wt_h3_conn *h3);

/* Opens the control and QPACK streams if not yet done and possible.  Safe
   to call repeatedly.  Returns 0 or an error. */
int h3wt_h3_start(h3wt_h3_conn *h3);
int h3wt_h3_started(const h3wt_h3_conn *h3);
/* Client, when the server rejected 0-RTT (QUIC forgot every stream):
   drops nghttp3's state and starts HTTP/3 again on new streams.  Returns
   0 or an error. */
int h3wt_h3_restart(h3wt_h3_conn *h3);

/* Server: submits response headers; has_body 0 ends the stream. */
int h3wt_h3_submit_response(h3wt_h3_conn *h3, int64_t stream_id,
                            const h3wt_header *hdrs, size_t n, int has_body);
/* Client: opens a stream and submits a request on it. */
int h3wt_h3_submit_request(h3wt_h3_conn *h3, const h3wt_header *hdrs,
                           size_t n, int has_body, void *sud,
                           int64_t *pstream_id);
/* New body bytes are ready after read_body returned WOULDBLOCK. */
int h3wt_h3_resume(h3wt_h3_conn *h3, int64_t stream_id);
void h3wt_h3_set_stream_data(h3wt_h3_conn *h3, int64_t stream_id, void *sud);
/* Stops reading a request body (STOP_SENDING with H3_NO_ERROR). */
void h3wt_h3_stop_reading(h3wt_h3_conn *h3, int64_t stream_id);
/* Resets both directions of a stream with an HTTP/3 error code. */
void h3wt_h3_reset_stream(h3wt_h3_conn *h3, int64_t stream_id,
                          uint64_t code);
/* Sends GOAWAY (server: refuse new requests).  Returns 0 or an error. */
int h3wt_h3_shutdown(h3wt_h3_conn *h3);
/* Tells the owner to write soon (see want_write). */
void h3wt_h3_want_write(h3wt_h3_conn *h3);
/* The application asked to close the whole connection (from anywhere,
   including inside callbacks): recorded here, and want_write tells the
   owner, which closes in its flush pass where no ngtcp2 or nghttp3 call
   is on the stack.  The first request wins. */
void h3wt_h3_request_close(h3wt_h3_conn *h3, uint64_t code,
                           const char *reason);
/* 1 (with the code and reason) when a close was requested. */
int h3wt_h3_close_requested(const h3wt_h3_conn *h3, uint64_t *code,
                            const char **reason);
/* The peer's session flow-control settings: 1 (and *fc) once its
   SETTINGS frame was read, 0 before (or when it could not be read: then
   flow control stays off). */
int h3wt_h3_peer_fc(const h3wt_h3_conn *h3, h3wt_peer_fc *fc);
/* The connection's WebTransport state (NULL when off), attached by the
   dispatcher; opaque to this module. */
struct h3wt_wt_conn *h3wt_h3_wt(const h3wt_h3_conn *h3);

/* ---- what the stream dispatcher (h3wt_streams) calls --------------------
 * The QUIC callbacks are the dispatcher's: it owns ngtcp2's stream user
 * data and hands nghttp3's streams to these.  Each returns 0 (or a count)
 * or -1 after setting the connection's application error. */

/* Which side writes next: WebTransport streams and nghttp3's take turns. */
typedef struct h3wt_h3_sched {
  int prefer_wt;    /* alternate between WebTransport and nghttp3 */
  int last_from_wt; /* which source the last writev used */
} h3wt_h3_sched;
h3wt_h3_sched *h3wt_h3_scheduler(h3wt_h3_conn *h3);
void h3wt_h3_set_wt(h3wt_h3_conn *h3, struct h3wt_wt_conn *wt,
                    void *stream_marker);
int h3wt_h3_live(const h3wt_h3_conn *h3); /* nghttp3 is running */
/* Stream bytes for nghttp3; credit: return their flow-control credit
   (0 for bytes credited when they were held back). */
int h3wt_h3_read_stream(h3wt_h3_conn *h3, int64_t stream_id,
                        const uint8_t *data, size_t len, int fin, int credit);
/* A peer stream was just handed to nghttp3; first/firstlen are its first
   bytes (at least its type varint).  The peer's control stream is then
   read on its way to nghttp3 until its SETTINGS frame is whole, because
   nghttp3 ignores the WebTransport settings it does not know. */
void h3wt_h3_peer_stream_begins(h3wt_h3_conn *h3, int64_t stream_id,
                                const uint8_t *first, size_t firstlen);
int h3wt_h3_acked(h3wt_h3_conn *h3, int64_t stream_id, uint64_t datalen);
int h3wt_h3_close_stream(h3wt_h3_conn *h3, int64_t stream_id,
                         uint64_t app_error_code);
/* The peer reset the stream / we stopped reading it. */
int h3wt_h3_reset_read(h3wt_h3_conn *h3, int64_t stream_id,
                       uint64_t app_error_code);
int h3wt_h3_stop_read(h3wt_h3_conn *h3, int64_t stream_id);
int h3wt_h3_unblock(h3wt_h3_conn *h3, int64_t stream_id);
void h3wt_h3_peer_streams_bidi(h3wt_h3_conn *h3, uint64_t max_streams);
/* nghttp3's next stream data (the control stream's first write carries
   WebTransport's SETTINGS when it is on). */
ssize_t h3wt_h3_writev(h3wt_h3_conn *h3, int64_t *pstream_id, int *pfin,
                       h3wt_vec *vec, size_t veccnt);
int h3wt_h3_add_write_offset(h3wt_h3_conn *h3, int64_t stream_id, size_t n);
void h3wt_h3_block(h3wt_h3_conn *h3, int64_t stream_id);
void h3wt_h3_shut_wr(h3wt_h3_conn *h3, int64_t stream_id);
void h3wt_h3_streams_available(h3wt_h3_conn *h3);
/* The handshake is done: start HTTP/3 (client: tell the owner). */
int h3wt_h3_handshake_completed(h3wt_h3_conn *h3);

/* The facade's per-connection object passed as the QUIC connection's user
   data must begin with this, so the shared callbacks find the HTTP/3 conn. */
typedef struct h3wt_h3_owner {
  h3wt_h3_conn *h3;
} h3wt_h3_owner;

/* HTTP/3 error codes (RFC 9114 section 8.1). */
#define H3WT_H3_NO_ERROR 0x100
#define H3WT_H3_GENERAL_PROTOCOL_ERROR 0x101
#define H3WT_H3_INTERNAL_ERROR 0x102
#define H3WT_H3_REQUEST_REJECTED 0x10b
#define H3WT_H3_REQUEST_CANCELLED 0x10c
#define H3WT_H3_MESSAGE_ERROR 0x10e

#endif /* H3WT_H3_H */
