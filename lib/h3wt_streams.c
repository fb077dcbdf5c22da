/*
 * h3wt_streams: the stream dispatcher (see h3wt_streams.h).
 */
#include "h3wt_streams.h"

#include <stdlib.h>

h3wt_sud h3wt_sud_h3 = {H3WT_SUD_H3};

#define SUD_KIND(sud) H3WT_SUD_KIND(sud)

#define H3(ud) (((h3wt_h3_owner *)(ud))->h3)

/* Did the last writev hand out this WebTransport stream's bytes? */
static int from_wt(h3wt_h3_conn *h3, int64_t stream_id) {
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  return wt && h3wt_h3_scheduler(h3)->last_from_wt &&
         h3wt_wt_owns_write(wt, stream_id);
}

/* ---- QUIC callbacks (upper half) ------------------------------------------ */

static int q_recv_stream_data(h3wt_quic_conn *qc, int64_t stream_id,
                              const uint8_t *data, size_t len, int fin,
                              void *ud, void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3) {
    return -1;
  }
  if (!h3wt_h3_started(h3) && h3wt_h3_start(h3) != 0) {
    return -1;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  if (wt) {
    /* WebTransport streams are told apart by their first bytes, before
       nghttp3 (which would parse them as HTTP/3 frames) sees them. */
    uint8_t pre[16];
    size_t prelen = 0;
    /* Until a peer stream is decided, its user data is none or pending. */
    int first = SUD_KIND(sud) == 0 || SUD_KIND(sud) == H3WT_SUD_PENDING;
    uint64_t h3err = H3WT_H3_GENERAL_PROTOCOL_ERROR;
    int rv = h3wt_wt_recv_stream_data(wt, stream_id, sud, data, len, fin, pre,
                                      &prelen, &h3err);
    if (rv < 0) {
      h3wt_quic_conn_set_app_error(qc, h3err);
      return -1;
    }
    if (rv == H3WT_WT_TAKEN) {
      return 0;
    }
    if (first) {
      /* The stream's first bytes: the held-back ones, else data's. */
      h3wt_h3_peer_stream_begins(h3, stream_id, prelen ? pre : data,
                                 prelen ? prelen : len);
    }
    /* Bytes held back while undecided were credited then. */
    if (prelen &&
        h3wt_h3_read_stream(h3, stream_id, pre, prelen, 0, 0) != 0) {
      return -1;
    }
  }
  return h3wt_h3_read_stream(h3, stream_id, data, len, fin, 1);
}

static int q_acked_stream_data(h3wt_quic_conn *qc, int64_t stream_id,
                               uint64_t datalen, void *ud, void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3)) {
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  if (SUD_KIND(sud) == H3WT_SUD_WT) {
    h3wt_wt_stream_acked(wt, sud, datalen);
    return 0;
  }
  if (wt && !sud) {
    return 0; /* a WebTransport stream already let go */
  }
  return h3wt_h3_acked(h3, stream_id, datalen);
}

static int q_stream_close(h3wt_quic_conn *qc, int64_t stream_id,
                          uint64_t app_error_code, void *ud, void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3)) {
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  int server = h3wt_quic_conn_is_server(qc);
  int kind = SUD_KIND(sud);
  if (kind == H3WT_SUD_WT || kind == H3WT_SUD_PENDING ||
      (!sud && wt && (stream_id & 0x1) == (server ? 0 : 1))) {
    /* A WebTransport stream (or one that never said what it was): give
       the peer its stream credit back. */
    if ((stream_id & 0x1) == (server ? 0 : 1)) {
      if (stream_id & 0x2) {
        h3wt_quic_extend_max_streams_uni(qc, 1);
      } else {
        h3wt_quic_extend_max_streams_bidi(qc, 1);
      }
    }
    if (sud) {
      h3wt_wt_stream_closed(wt, sud, app_error_code);
    }
    return 0;
  }
  return h3wt_h3_close_stream(h3, stream_id, app_error_code);
}

static int q_stream_reset(h3wt_quic_conn *qc, int64_t stream_id,
                          uint64_t final_size, uint64_t app_error_code,
                          void *ud, void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3)) {
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  if (SUD_KIND(sud) == H3WT_SUD_WT) {
    h3wt_wt_stream_reset(wt, sud, app_error_code, final_size);
    return 0;
  }
  if (SUD_KIND(sud) == H3WT_SUD_PENDING || (wt && !sud)) {
    return 0; /* not nghttp3's (a WebTransport stream already let go) */
  }
  return h3wt_h3_reset_read(h3, stream_id, app_error_code);
}

static int q_stream_stop_sending(h3wt_quic_conn *qc, int64_t stream_id,
                                 uint64_t app_error_code, void *ud,
                                 void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3)) {
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  if (SUD_KIND(sud) == H3WT_SUD_WT) {
    h3wt_wt_stream_stop_sending(wt, sud, app_error_code);
    return 0;
  }
  if (SUD_KIND(sud) == H3WT_SUD_PENDING || (wt && !sud)) {
    return 0;
  }
  return h3wt_h3_stop_read(h3, stream_id);
}

static int q_extend_max_stream_data(h3wt_quic_conn *qc, int64_t stream_id,
                                    void *ud, void *sud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3)) {
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  if (SUD_KIND(sud) == H3WT_SUD_WT) {
    h3wt_wt_stream_unblocked(wt, sud);
    return 0;
  }
  if (wt && !sud) {
    return 0;
  }
  return h3wt_h3_unblock(h3, stream_id);
}

static int q_extend_max_remote_streams_bidi(h3wt_quic_conn *qc,
                                            uint64_t max_streams, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (h3) {
    h3wt_h3_peer_streams_bidi(h3, max_streams);
  }
  return 0;
}

static ssize_t q_writev_stream(h3wt_quic_conn *qc, int64_t *pstream_id,
                               int *pfin, h3wt_vec *vec, size_t veccnt,
                               void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (!h3wt_h3_live(h3) || !h3wt_h3_started(h3)) {
    *pstream_id = -1;
    return 0;
  }
  h3wt_wt_conn *wt = h3wt_h3_wt(h3);
  h3wt_h3_sched *sc = h3wt_h3_scheduler(h3);
  /* WebTransport streams and nghttp3's streams take turns, so neither a
     bulk WebTransport stream nor a big response starves the other. */
  sc->prefer_wt = !sc->prefer_wt;
  if (wt && sc->prefer_wt && h3wt_wt_has_writable(wt)) {
    sc->last_from_wt = 1;
    return h3wt_wt_writev(wt, pstream_id, pfin, vec, veccnt);
  }
  ssize_t n = h3wt_h3_writev(h3, pstream_id, pfin, vec, veccnt);
  if (n == 0 && !*pfin && wt && h3wt_wt_has_writable(wt)) {
    sc->last_from_wt = 1;
    return h3wt_wt_writev(wt, pstream_id, pfin, vec, veccnt);
  }
  sc->last_from_wt = 0;
  return n;
}

static int q_add_write_offset(h3wt_quic_conn *qc, int64_t stream_id, size_t n,
                              void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (from_wt(h3, stream_id)) {
    h3wt_wt_written(h3wt_h3_wt(h3), stream_id, n);
    return 0;
  }
  return h3wt_h3_add_write_offset(h3, stream_id, n);
}

static void q_stream_blocked(h3wt_quic_conn *qc, int64_t stream_id, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (from_wt(h3, stream_id)) {
    h3wt_wt_blocked(h3wt_h3_wt(h3), stream_id);
    return;
  }
  h3wt_h3_block(h3, stream_id);
}

static void q_stream_shut_wr(h3wt_quic_conn *qc, int64_t stream_id, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (from_wt(h3, stream_id)) {
    h3wt_wt_shut_wr(h3wt_h3_wt(h3), stream_id);
    return;
  }
  h3wt_h3_shut_wr(h3, stream_id);
}

static int q_recv_datagram(h3wt_quic_conn *qc, const uint8_t *data,
                           size_t len, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (h3 && h3wt_h3_wt(h3)) {
    h3wt_wt_recv_datagram(h3wt_h3_wt(h3), data, len);
  }
  return 0;
}

static size_t q_datagram_front(h3wt_quic_conn *qc, h3wt_vec *vec,
                               uint64_t ts, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  return h3 && h3wt_h3_wt(h3) ? h3wt_wt_datagram_front(h3wt_h3_wt(h3), vec, ts) : 0;
}

static void q_datagram_pop(h3wt_quic_conn *qc, void *ud) {
  h3wt_wt_datagram_pop(h3wt_h3_wt(H3(ud)));
}


static int q_extend_max_local_streams_bidi(h3wt_quic_conn *qc,
                                           uint64_t max_streams, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (h3) {
    h3wt_h3_streams_available(h3);
  }
  if (h3 && h3wt_h3_wt(h3)) {
    h3wt_wt_streams_available(h3wt_h3_wt(h3), 1);
  }
  return 0;
}

static int q_extend_max_local_streams_uni(h3wt_quic_conn *qc,
                                          uint64_t max_streams, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  if (h3 && h3wt_h3_wt(h3)) {
    h3wt_wt_streams_available(h3wt_h3_wt(h3), 0);
  }
  return 0;
}

static int q_handshake_completed(h3wt_quic_conn *qc, void *ud) {
  h3wt_h3_conn *h3 = H3(ud);
  return h3 ? h3wt_h3_handshake_completed(h3) : 0;
}



void h3wt_streams_fill_quic_callbacks(h3wt_quic_callbacks *cbs) {
  cbs->handshake_completed = q_handshake_completed;
  cbs->recv_stream_data = q_recv_stream_data;
  cbs->acked_stream_data = q_acked_stream_data;
  cbs->stream_close = q_stream_close;
  cbs->stream_reset = q_stream_reset;
  cbs->stream_stop_sending = q_stream_stop_sending;
  cbs->extend_max_stream_data = q_extend_max_stream_data;
  cbs->extend_max_remote_streams_bidi = q_extend_max_remote_streams_bidi;
  cbs->writev_stream = q_writev_stream;
  cbs->add_write_offset = q_add_write_offset;
  cbs->stream_blocked = q_stream_blocked;
  cbs->stream_shut_wr = q_stream_shut_wr;
  cbs->recv_datagram = q_recv_datagram;
  cbs->extend_max_local_streams_bidi = q_extend_max_local_streams_bidi;
  cbs->extend_max_local_streams_uni = q_extend_max_local_streams_uni;
  cbs->datagram_front = q_datagram_front;
  cbs->datagram_pop = q_datagram_pop;
}

/* ---- lifecycle ------------------------------------------------------------ */

int h3wt_streams_conn_new(h3wt_h3_conn **ph3, const h3wt_h3_config *cfg,
                          h3wt_quic_conn *qc, int server, void *user_data) {
  h3wt_h3_conn *h3;
  h3wt_wt_conn *wt = NULL;
  if (h3wt_h3_conn_new(&h3, cfg, qc, server, user_data) != 0) {
    return H3WT_ERR_NOMEM;
  }
  if (cfg->wt && h3wt_wt_conn_new(&wt, h3, cfg->wt, cfg->log, server) != 0) {
    h3wt_h3_conn_del(h3);
    return H3WT_ERR_NOMEM;
  }
  h3wt_h3_set_wt(h3, wt, &h3wt_sud_h3);
  *ph3 = h3;
  return 0;
}

void h3wt_streams_conn_del(h3wt_h3_conn *h3) {
  if (!h3) {
    return;
  }
  /* Sessions learn the connection is gone before nghttp3 goes. */
  h3wt_wt_conn_del(h3wt_h3_wt(h3));
  h3wt_h3_set_wt(h3, NULL, &h3wt_sud_h3);
  h3wt_h3_conn_del(h3);
}
