/*
 * h3wt_h3: nghttp3 glued to the QUIC layer (see h3wt_h3.h).
 */
#include "h3wt_h3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp3/nghttp3.h>

#include "h3wt_wtproto.h"

/* The control stream's first write is rewritten to carry WebTransport's
   SETTINGS (see h3wt_settings_rewrite); until the rewritten bytes are all
   written, QUIC's offsets and nghttp3's differ. */
enum { CTRL_PLAIN, CTRL_PREFIX, CTRL_DONE };

/* Buffers a connection needs only at its start, allocated then and freed
   once done with (an idle connection keeps none: bench/README.md): the
   rewritten control stream prefix until the peer has acknowledged it
   (QUIC may send it again until then), the peer's SETTINGS frame while
   it is read, and a close reason, when there is one. */
#define CTRL_BUF_LEN 256
#define PEER_BUF_LEN 512
#define CLOSE_REASON_MAX 127

/* Reading the peer's SETTINGS, one line per state. */
enum {
  PEER_WAIT,   /* its control stream has not begun */
  PEER_READ,   /* collecting its SETTINGS frame */
  PEER_KNOWN,  /* read: peer_fc holds what it said */
  PEER_UNREAD  /* could not be read: treated as "no flow control" */
};

struct h3wt_h3_conn {
  nghttp3_conn *conn;
  h3wt_quic_conn *qc;
  const h3wt_h3_config *cfg;
  void *user_data;
  int server;
  int started;
  int goaway; /* GOAWAY submitted */
  struct h3wt_wt_conn *wt; /* attached by h3wt_streams; opaque here */
  void *marker;             /* ngtcp2 user data of our own streams */
  h3wt_h3_sched sched;      /* the dispatcher's turn-taking state */
  int64_t ctrl_id;
  int ctrl_state;
  uint8_t *ctrl_buf; /* CTRL_BUF_LEN bytes, or NULL */
  size_t ctrl_len;  /* rewritten prefix */
  size_t ctrl_orig; /* what nghttp3 handed out for it */
  size_t ctrl_off;  /* prefix bytes written */
  uint64_t ctrl_acked, ctrl_acked_fwd;
  /* The peer's control stream, read until its SETTINGS frame is whole
     (bounded: a frame that does not fit leaves flow control off). */
  int64_t peer_ctrl_id;
  int peer_settings; /* PEER_* above */
  uint8_t *peer_buf; /* PEER_BUF_LEN bytes while PEER_READ */
  size_t peer_len;
  h3wt_peer_fc peer_fc;
  /* A close of the whole connection asked for by the application; the
     owner performs it in its flush pass. */
  int close_requested;
  uint64_t close_code;
  char *close_reason; /* NULL: none */
};


/* ---- nghttp3 callbacks ---------------------------------------------------- */

static int acked_stream_data(nghttp3_conn *conn, int64_t stream_id,
                             uint64_t datalen, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  if (!h3->cfg->cbs->acked_body) {
    return 0;
  }
  return h3->cfg->cbs->acked_body(h3, stream_id, datalen, h3->user_data, sud)
             ? NGHTTP3_ERR_CALLBACK_FAILURE
             : 0;
}

static int stream_close(nghttp3_conn *conn, int64_t stream_id,
                        uint64_t app_error_code, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  /* A finished request frees a slot for another (RFC 9000 4.6: the
     peer's limit is cumulative, so it is raised as streams close). */
  if (h3->server && (stream_id & 0x3) == 0) {
    h3wt_quic_extend_max_streams_bidi(h3->qc, 1);
  }
  if (!h3->cfg->cbs->stream_close) {
    return 0;
  }
  return h3->cfg->cbs->stream_close(h3, stream_id, app_error_code,
                                    h3->user_data, sud)
             ? NGHTTP3_ERR_CALLBACK_FAILURE
             : 0;
}

static int recv_data(nghttp3_conn *conn, int64_t stream_id,
                     const uint8_t *data, size_t datalen, void *ud,
                     void *sud) {
  h3wt_h3_conn *h3 = ud;
  int rv = 0;
  if (h3->cfg->cbs->recv_data) {
    rv = h3->cfg->cbs->recv_data(h3, stream_id, data, datalen, h3->user_data,
                                 sud);
  }
  /* Body bytes are not counted in nghttp3_conn_read_stream()'s result:
     the application returns their credit once it has them. */
  h3wt_quic_consume(h3->qc, stream_id, datalen);
  return rv ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

static int deferred_consume(nghttp3_conn *conn, int64_t stream_id,
                            size_t consumed, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  h3wt_quic_consume(h3->qc, stream_id, consumed);
  return 0;
}

static int begin_headers(nghttp3_conn *conn, int64_t stream_id, void *ud,
                         void *sud) {
  h3wt_h3_conn *h3 = ud;
  void *nsud = sud;
  if (!h3->cfg->cbs->begin_headers) {
    return 0;
  }
  if (h3->cfg->cbs->begin_headers(h3, stream_id, h3->user_data, sud, &nsud)) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  if (nsud != sud) {
    nghttp3_conn_set_stream_user_data(conn, stream_id, nsud);
  }
  return 0;
}

static int recv_header(nghttp3_conn *conn, int64_t stream_id, int32_t token,
                       nghttp3_rcbuf *name, nghttp3_rcbuf *value,
                       uint8_t flags, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
  nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
  if (!h3->cfg->cbs->recv_header) {
    return 0;
  }
  return h3->cfg->cbs->recv_header(h3, stream_id, n.base, n.len, v.base,
                                   v.len, h3->user_data, sud)
             ? NGHTTP3_ERR_CALLBACK_FAILURE
             : 0;
}

static int end_headers(nghttp3_conn *conn, int64_t stream_id, int fin,
                       void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  if (!h3->cfg->cbs->end_headers) {
    return 0;
  }
  return h3->cfg->cbs->end_headers(h3, stream_id, fin, h3->user_data, sud)
             ? NGHTTP3_ERR_CALLBACK_FAILURE
             : 0;
}

static int end_stream(nghttp3_conn *conn, int64_t stream_id, void *ud,
                      void *sud) {
  h3wt_h3_conn *h3 = ud;
  if (!h3->cfg->cbs->end_stream) {
    return 0;
  }
  return h3->cfg->cbs->end_stream(h3, stream_id, h3->user_data, sud)
             ? NGHTTP3_ERR_CALLBACK_FAILURE
             : 0;
}

/* nghttp3 decided a stream must be aborted (malformed message, ...): it
   asks us to send STOP_SENDING / RESET_STREAM through QUIC. */
static int stop_sending(nghttp3_conn *conn, int64_t stream_id,
                        uint64_t app_error_code, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  h3wt_quic_shutdown_stream_read(h3->qc, stream_id, app_error_code);
  return 0;
}

static int reset_stream(nghttp3_conn *conn, int64_t stream_id,
                        uint64_t app_error_code, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  h3wt_quic_shutdown_stream_write(h3->qc, stream_id, app_error_code);
  return 0;
}

static nghttp3_ssize read_data(nghttp3_conn *conn, int64_t stream_id,
                               nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *ud, void *sud) {
  h3wt_h3_conn *h3 = ud;
  int eof = 0;
  ssize_t n = h3->cfg->cbs->read_body(h3, stream_id, (h3wt_vec *)vec, veccnt,
                                      &eof, h3->user_data, sud);
  if (n == H3WT_ERR_WOULDBLOCK) {
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  if (n < 0) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  if (eof) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
  }
  return (nghttp3_ssize)n;
}

/* ---- what the stream dispatcher calls (h3wt_streams) ---------------------- */

/* The control stream's first bytes, rewritten once with WebTransport's
   settings; returns 1 (one vector: the prefix still to write) or -1. */
static ssize_t ctrl_prefix(h3wt_h3_conn *h3, h3wt_vec *vec, size_t nvec) {
  if (h3->ctrl_state == CTRL_PLAIN) {
    uint8_t lin[256];
    size_t len = 0;
    h3wt_setting extra[12];
    for (size_t i = 0; i < nvec && len < sizeof(lin); ++i) {
      size_t k = vec[i].len < sizeof(lin) - len ? vec[i].len
                                                : sizeof(lin) - len;
      memcpy(lin + len, vec[i].base, k);
      len += k;
    }
    size_t nextra = h3wt_wt_settings(
        extra, 12, h3->cfg->wt_fc_max_data,
        h3->cfg->wt_fc_max_data ? h3->cfg->wt_fc_max_streams : 0,
        h3->cfg->wt_fc_max_data ? h3->cfg->wt_fc_max_streams : 0);
    ssize_t n = h3->ctrl_buf ? h3wt_settings_rewrite(lin, len, extra, nextra,
                                                     h3->ctrl_buf,
                                                     CTRL_BUF_LEN)
                             : -1;
    if (n <= 0) {
      /* Cannot happen with nghttp3's control stream; without the rewrite
         browsers refuse WebTransport, but HTTP/3 still works. */
      H3WT_LOG(h3->cfg->log, H3WT_LOG_ERROR, "h3",
               "[%s] cannot add WebTransport SETTINGS",
               h3wt_quic_conn_name(h3->qc));
      h3->ctrl_state = CTRL_DONE;
      return -1;
    }
    h3->ctrl_state = CTRL_PREFIX;
    h3->ctrl_len = (size_t)n;
    h3->ctrl_orig = len;
    h3->ctrl_off = 0;
  }
  vec[0].base = h3->ctrl_buf + h3->ctrl_off;
  vec[0].len = h3->ctrl_len - h3->ctrl_off;
  return 1;
}

int h3wt_h3_live(const h3wt_h3_conn *h3) {
  return h3 && h3->conn;
}

void h3wt_h3_peer_stream_begins(h3wt_h3_conn *h3, int64_t stream_id,
                                const uint8_t *first, size_t firstlen) {
  uint64_t type;
  /* Only peer-initiated unidirectional streams can be its control stream
     (RFC 9114 6.2.1), and there is one. */
  if (h3->peer_settings != PEER_WAIT || !(stream_id & 0x2) ||
      (int)(stream_id & 0x1) == (h3->server ? 1 : 0)) {
    return;
  }
  if (h3wt_varint_decode(first, firstlen, &type) && type == 0x00) {
    h3->peer_ctrl_id = stream_id;
    h3->peer_buf = malloc(PEER_BUF_LEN);
    /* Out of memory: as if the frame could not be read. */
    h3->peer_settings = h3->peer_buf ? PEER_READ : PEER_UNREAD;
  }
}

/* The peer's control stream on its way to nghttp3 (in order, as QUIC
   delivers it): collect the start until the SETTINGS frame is whole. */
static void peer_settings_feed(h3wt_h3_conn *h3, const uint8_t *data,
                               size_t len) {
  size_t k = len < PEER_BUF_LEN - h3->peer_len ? len
                                                : PEER_BUF_LEN - h3->peer_len;
  memcpy(h3->peer_buf + h3->peer_len, data, k);
  h3->peer_len += k;
  ssize_t n = h3wt_peer_settings_parse(h3->peer_buf, h3->peer_len,
                                       &h3->peer_fc);
  if (n > 0) {
    h3->peer_settings = PEER_KNOWN;
    H3WT_LOG(h3->cfg->log, H3WT_LOG_DEBUG, "h3",
             "[%s] peer SETTINGS: WT initial max data %llu, streams bidi "
             "%llu uni %llu",
             h3wt_quic_conn_name(h3->qc),
             (unsigned long long)h3->peer_fc.max_data,
             (unsigned long long)h3->peer_fc.max_streams_bidi,
             (unsigned long long)h3->peer_fc.max_streams_uni);
  } else if (n < 0 || h3->peer_len == PEER_BUF_LEN) {
    /* nghttp3 judges the stream itself; we only give up on it. */
    h3->peer_settings = PEER_UNREAD;
  }
  if (h3->peer_settings != PEER_READ) {
    free(h3->peer_buf);
    h3->peer_buf = NULL;
  }
}

int h3wt_h3_peer_fc(const h3wt_h3_conn *h3, h3wt_peer_fc *fc) {
  if (h3->peer_settings != PEER_KNOWN) {
    return 0;
  }
  *fc = h3->peer_fc;
  return 1;
}

int h3wt_h3_read_stream(h3wt_h3_conn *h3, int64_t stream_id,
                        const uint8_t *data, size_t len, int fin,
                        int credit) {
  if (h3->peer_settings == PEER_READ && stream_id == h3->peer_ctrl_id) {
    peer_settings_feed(h3, data, len);
  }
  nghttp3_ssize n = nghttp3_conn_read_stream(h3->conn, stream_id, data, len,
                                             fin);
  if (n < 0) {
    H3WT_LOG(h3->cfg->log, H3WT_LOG_INFO, "h3",
             "[%s/%lld] nghttp3_conn_read_stream: %s",
             h3wt_quic_conn_name(h3->qc), (long long)stream_id,
             nghttp3_strerror((int)n));
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code((int)n));
    return -1;
  }
  if (credit) {
    h3wt_quic_consume(h3->qc, stream_id, (size_t)n);
  }
  return 0;
}

int h3wt_h3_acked(h3wt_h3_conn *h3, int64_t stream_id, uint64_t datalen) {
  if (stream_id == h3->ctrl_id && h3->ctrl_state != CTRL_PLAIN) {
    /* Acks count rewritten bytes; nghttp3 knows only its own: the prefix
       maps to its original bytes once it is acknowledged whole. */
    h3->ctrl_acked += datalen;
    uint64_t orig = h3->ctrl_acked >= h3->ctrl_len
                        ? h3->ctrl_acked - (h3->ctrl_len - h3->ctrl_orig)
                        : 0;
    datalen = orig - h3->ctrl_acked_fwd;
    h3->ctrl_acked_fwd = orig;
    if (h3->ctrl_state == CTRL_DONE && h3->ctrl_acked >= h3->ctrl_len) {
      /* Acknowledged whole: QUIC will not send it again. */
      free(h3->ctrl_buf);
      h3->ctrl_buf = NULL;
    }
    if (datalen == 0) {
      return 0;
    }
  }
  int rv = nghttp3_conn_add_ack_offset(h3->conn, stream_id, datalen);
  if (rv != 0) {
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code(rv));
    return -1;
  }
  return 0;
}

int h3wt_h3_close_stream(h3wt_h3_conn *h3, int64_t stream_id,
                         uint64_t app_error_code) {
  int rv = nghttp3_conn_close_stream(h3->conn, stream_id, app_error_code);
  if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
    /* A stream nghttp3 never saw (reset before any byte): still a slot
       the client may reuse. */
    if (h3->server && (stream_id & 0x3) == 0) {
      h3wt_quic_extend_max_streams_bidi(h3->qc, 1);
    }
    return 0;
  }
  if (rv != 0) {
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code(rv));
    return -1;
  }
  return 0;
}

int h3wt_h3_stop_read(h3wt_h3_conn *h3, int64_t stream_id) {
  int rv = nghttp3_conn_shutdown_stream_read(h3->conn, stream_id);
  if (rv != 0) {
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code(rv));
    return -1;
  }
  return 0;
}

int h3wt_h3_reset_read(h3wt_h3_conn *h3, int64_t stream_id,
                       uint64_t app_error_code) {
  if (h3->cfg->cbs->stream_reset) {
    h3->cfg->cbs->stream_reset(h3, stream_id, app_error_code, h3->user_data,
                               NULL);
  }
  return h3wt_h3_stop_read(h3, stream_id);
}

int h3wt_h3_unblock(h3wt_h3_conn *h3, int64_t stream_id) {
  int rv = nghttp3_conn_unblock_stream(h3->conn, stream_id);
  return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
}

void h3wt_h3_peer_streams_bidi(h3wt_h3_conn *h3, uint64_t max_streams) {
  /* Only a server counts the client's request streams (nghttp3 asserts
     it); a client gets here when a server-opened WebTransport stream
     closes. */
  if (h3->conn && h3->server) {
    nghttp3_conn_set_max_client_streams_bidi(h3->conn, max_streams);
  }
}

ssize_t h3wt_h3_writev(h3wt_h3_conn *h3, int64_t *pstream_id, int *pfin,
                       h3wt_vec *vec, size_t veccnt) {
  nghttp3_ssize n = nghttp3_conn_writev_stream(h3->conn, pstream_id, pfin,
                                               (nghttp3_vec *)vec, veccnt);
  if (n < 0) {
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code((int)n));
    return -1;
  }
  if (h3->cfg->wt && *pstream_id == h3->ctrl_id &&
      h3->ctrl_state != CTRL_DONE && n > 0) {
    ssize_t k = ctrl_prefix(h3, vec, (size_t)n);
    if (k > 0) {
      *pfin = 0;
      return k;
    }
  }
  return (ssize_t)n;
}

int h3wt_h3_add_write_offset(h3wt_h3_conn *h3, int64_t stream_id, size_t n) {
  if (stream_id == h3->ctrl_id && h3->ctrl_state == CTRL_PREFIX) {
    h3->ctrl_off += n;
    if (h3->ctrl_off < h3->ctrl_len) {
      return 0;
    }
    /* The whole rewritten prefix is out: nghttp3 sees its own bytes as
       written. */
    h3->ctrl_state = CTRL_DONE;
    n = h3->ctrl_orig;
  }
  int rv = nghttp3_conn_add_write_offset(h3->conn, stream_id, n);
  if (rv != 0) {
    h3wt_quic_conn_set_app_error(h3->qc,
                                 nghttp3_err_infer_quic_app_error_code(rv));
    return -1;
  }
  return 0;
}

void h3wt_h3_block(h3wt_h3_conn *h3, int64_t stream_id) {
  nghttp3_conn_block_stream(h3->conn, stream_id);
}

void h3wt_h3_shut_wr(h3wt_h3_conn *h3, int64_t stream_id) {
  nghttp3_conn_shutdown_stream_write(h3->conn, stream_id);
}

void h3wt_h3_streams_available(h3wt_h3_conn *h3) {
  if (h3->started && h3->cfg->cbs->streams_available) {
    h3->cfg->cbs->streams_available(h3, h3->user_data);
  }
}

int h3wt_h3_handshake_completed(h3wt_h3_conn *h3) {
  if (h3wt_h3_start(h3) != 0) {
    return -1;
  }
  if (h3->cfg->cbs->ready) {
    h3->cfg->cbs->ready(h3, h3->user_data);
  }
  return 0;
}

h3wt_h3_sched *h3wt_h3_scheduler(h3wt_h3_conn *h3) {
  return &h3->sched;
}

void h3wt_h3_set_wt(h3wt_h3_conn *h3, struct h3wt_wt_conn *wt,
                    void *stream_marker) {
  h3->wt = wt;
  h3->marker = stream_marker;
}


/* ---- lifecycle ------------------------------------------------------------ */

int h3wt_h3_conn_new(h3wt_h3_conn **ph3, const h3wt_h3_config *cfg,
                     h3wt_quic_conn *qc, int server, void *user_data) {
  h3wt_h3_conn *h3 = calloc(1, sizeof(*h3));
  if (!h3) {
    return H3WT_ERR_NOMEM;
  }
  h3->cfg = cfg;
  h3->qc = qc;
  h3->server = server;
  h3->user_data = user_data;
  h3->ctrl_id = -1;
  h3->peer_ctrl_id = -1;
  *ph3 = h3;
  return 0;
}

void h3wt_h3_want_write(h3wt_h3_conn *h3) {
  if (h3->cfg->cbs->want_write) {
    h3->cfg->cbs->want_write(h3, h3->user_data);
  }
}

void h3wt_h3_request_close(h3wt_h3_conn *h3, uint64_t code,
                           const char *reason) {
  if (h3->close_requested) {
    return;
  }
  h3->close_requested = 1;
  h3->close_code = code;
  if (reason && *reason) {
    /* Out of memory: closed without the reason. */
    h3->close_reason = strndup(reason, CLOSE_REASON_MAX);
  }
  h3wt_h3_want_write(h3);
}

int h3wt_h3_close_requested(const h3wt_h3_conn *h3, uint64_t *code,
                            const char **reason) {
  if (!h3 || !h3->close_requested) {
    return 0;
  }
  *code = h3->close_code;
  *reason = h3->close_reason ? h3->close_reason : "";
  return 1;
}

struct h3wt_wt_conn *h3wt_h3_wt(const h3wt_h3_conn *h3) {
  return h3->wt;
}

void h3wt_h3_conn_del(h3wt_h3_conn *h3) {
  if (!h3) {
    return;
  }
  if (h3->conn) {
    nghttp3_conn_del(h3->conn);
  }
  free(h3->ctrl_buf);
  free(h3->peer_buf);
  free(h3->close_reason);
  free(h3);
}

h3wt_quic_conn *h3wt_h3_quic(const h3wt_h3_conn *h3) {
  return h3->qc;
}

void *h3wt_h3_user_data(const h3wt_h3_conn *h3) {
  return h3->user_data;
}

int h3wt_h3_started(const h3wt_h3_conn *h3) {
  return h3->started;
}

int h3wt_h3_start(h3wt_h3_conn *h3) {
  nghttp3_callbacks cb;
  nghttp3_settings settings;
  int64_t ctrl, qenc, qdec;
  int rv;
  if (h3->started) {
    return 0;
  }
  /* RFC 9114 6.2: each side opens a control stream and, for QPACK, an
     encoder and a decoder stream; the peer must allow three. */
  if (h3wt_quic_streams_uni_left(h3->qc) < 3) {
    return H3WT_ERR_H3;
  }
  if (h3->cfg->wt && !h3->ctrl_buf &&
      !(h3->ctrl_buf = malloc(CTRL_BUF_LEN))) {
    return H3WT_ERR_NOMEM;
  }
  memset(&cb, 0, sizeof(cb));
  cb.acked_stream_data = acked_stream_data;
  cb.stream_close = stream_close;
  cb.recv_data = recv_data;
  cb.deferred_consume = deferred_consume;
  cb.begin_headers = begin_headers;
  cb.recv_header = recv_header;
  cb.end_headers = end_headers;
  cb.stop_sending = stop_sending;
  cb.end_stream = end_stream;
  cb.reset_stream = reset_stream;
  nghttp3_settings_default(&settings);
  /* No QPACK dynamic table either way (RFC 9204 3.2.3: a capacity of 0
     lets the peer encode with static and literal fields only).  A
     WebTransport connection carries one CONNECT and its answer, where a
     dynamic table compresses nothing; with it, each side kept the other's
     entries, a reference map and a blocked-streams list for the
     connection's life (some 3 KB of nghttp3's per idle session:
     bench/README.md), and our encoder spent time indexing.  Many small
     requests on one connection pay a few bytes per header on the wire. */
  settings.qpack_max_dtable_capacity = 0;
  settings.qpack_encoder_max_dtable_capacity = 0;
  settings.qpack_blocked_streams = 0;
  settings.max_field_section_size = h3->cfg->max_field_section_size;
  /* RFC 9220 (extended CONNECT) and RFC 9297 (HTTP datagrams): what
     WebTransport builds on. */
  settings.enable_connect_protocol = 1;
  settings.h3_datagram = 1;
  if (h3->server) {
    rv = nghttp3_conn_server_new(&h3->conn, &cb, &settings, NULL, h3);
  } else {
    rv = nghttp3_conn_client_new(&h3->conn, &cb, &settings, NULL, h3);
  }
  if (rv != 0) {
    return H3WT_ERR_NOMEM;
  }
  if (h3->server) {
    nghttp3_conn_set_max_client_streams_bidi(h3->conn,
                                             h3->cfg->max_streams_bidi);
  }
  if (h3wt_quic_open_uni_stream(h3->qc, &ctrl, h3->marker) != 0 ||
      nghttp3_conn_bind_control_stream(h3->conn, ctrl) != 0 ||
      h3wt_quic_open_uni_stream(h3->qc, &qenc, h3->marker) != 0 ||
      h3wt_quic_open_uni_stream(h3->qc, &qdec, h3->marker) != 0 ||
      nghttp3_conn_bind_qpack_streams(h3->conn, qenc, qdec) != 0) {
    nghttp3_conn_del(h3->conn);
    h3->conn = NULL;
    return H3WT_ERR_H3;
  }
  h3->ctrl_id = ctrl;
  h3->started = 1;
  return 0;
}

int h3wt_h3_restart(h3wt_h3_conn *h3) {
  /* nghttp3 calls nothing back as it goes: the owner already knows that
     every request it carried must be sent again. */
  if (h3->conn) {
    nghttp3_conn_del(h3->conn);
    h3->conn = NULL;
  }
  h3->started = 0;
  h3->ctrl_id = -1;
  h3->ctrl_state = CTRL_PLAIN;
  h3->ctrl_len = h3->ctrl_orig = h3->ctrl_off = 0;
  h3->ctrl_acked = h3->ctrl_acked_fwd = 0;
  memset(&h3->sched, 0, sizeof(h3->sched));
  return h3wt_h3_start(h3);
}

static nghttp3_nv *make_nva(const h3wt_header *hdrs, size_t n,
                            nghttp3_nv *stackbuf, size_t stackn) {
  nghttp3_nv *nva = n <= stackn ? stackbuf : malloc(n * sizeof(*nva));
  if (!nva) {
    return NULL;
  }
  for (size_t i = 0; i < n; ++i) {
    nva[i].name = (uint8_t *)hdrs[i].name;
    nva[i].namelen = hdrs[i].namelen;
    nva[i].value = (uint8_t *)hdrs[i].value;
    nva[i].valuelen = hdrs[i].valuelen;
    nva[i].flags = NGHTTP3_NV_FLAG_NONE;
  }
  return nva;
}

int h3wt_h3_submit_response(h3wt_h3_conn *h3, int64_t stream_id,
                            const h3wt_header *hdrs, size_t n, int has_body) {
  nghttp3_nv stackbuf[16] = {{0}}; /* zeroed: GCC 12 -O3 sees a maybe-uninitialized read */
  nghttp3_data_reader dr = {read_data};
  nghttp3_nv *nva = make_nva(hdrs, n, stackbuf, 16);
  if (!nva) {
    return H3WT_ERR_NOMEM;
  }
  int rv = nghttp3_conn_submit_response(h3->conn, stream_id, nva, n,
                                        has_body ? &dr : NULL);
  if (nva != stackbuf) {
    free(nva);
  }
  if (rv == NGHTTP3_ERR_NOMEM) {
    return H3WT_ERR_NOMEM;
  }
  return rv == 0 ? 0 : H3WT_ERR_CLOSED;
}

int h3wt_h3_submit_request(h3wt_h3_conn *h3, const h3wt_header *hdrs,
                           size_t n, int has_body, void *sud,
                           int64_t *pstream_id) {
  nghttp3_nv stackbuf[16] = {{0}}; /* zeroed: GCC 12 -O3 sees a maybe-uninitialized read */
  nghttp3_data_reader dr = {read_data};
  int64_t sid;
  if (!h3->started) {
    return H3WT_ERR_INVALID_STATE;
  }
  int rv = h3wt_quic_open_bidi_stream(h3->qc, &sid, h3->marker);
  if (rv != 0) {
    return rv;
  }
  nghttp3_nv *nva = make_nva(hdrs, n, stackbuf, 16);
  if (!nva) {
    h3wt_quic_shutdown_stream(h3->qc, sid, H3WT_H3_REQUEST_CANCELLED);
    return H3WT_ERR_NOMEM;
  }
  rv = nghttp3_conn_submit_request(h3->conn, sid, nva, n,
                                   has_body ? &dr : NULL, sud);
  if (nva != stackbuf) {
    free(nva);
  }
  if (rv != 0) {
    h3wt_quic_shutdown_stream(h3->qc, sid, H3WT_H3_REQUEST_CANCELLED);
    return rv == NGHTTP3_ERR_NOMEM ? H3WT_ERR_NOMEM : H3WT_ERR_H3;
  }
  *pstream_id = sid;
  return 0;
}

int h3wt_h3_resume(h3wt_h3_conn *h3, int64_t stream_id) {
  int rv = nghttp3_conn_resume_stream(h3->conn, stream_id);
  return rv == 0 ? 0 : H3WT_ERR_CLOSED;
}

void h3wt_h3_set_stream_data(h3wt_h3_conn *h3, int64_t stream_id, void *sud) {
  if (h3->conn) {
    nghttp3_conn_set_stream_user_data(h3->conn, stream_id, sud);
  }
}

void h3wt_h3_stop_reading(h3wt_h3_conn *h3, int64_t stream_id) {
  /* RFC 9114 4.1.1: "The error code H3_NO_ERROR SHOULD be used when
     requesting that the client stop sending on the request stream." */
  h3wt_quic_shutdown_stream_read(h3->qc, stream_id, H3WT_H3_NO_ERROR);
  nghttp3_conn_shutdown_stream_read(h3->conn, stream_id);
}

void h3wt_h3_reset_stream(h3wt_h3_conn *h3, int64_t stream_id,
                          uint64_t code) {
  h3wt_quic_shutdown_stream(h3->qc, stream_id, code);
  if (h3->conn) {
    nghttp3_conn_shutdown_stream_read(h3->conn, stream_id);
  }
}

int h3wt_h3_shutdown(h3wt_h3_conn *h3) {
  if (!h3->conn || h3->goaway) {
    return 0;
  }
  h3->goaway = 1;
  return nghttp3_conn_shutdown(h3->conn) == 0 ? 0 : H3WT_ERR_H3;
}
