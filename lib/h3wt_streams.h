/*
 * h3wt_streams: the stream dispatcher of one HTTP/3 connection.
 *
 * It sits between the QUIC layer and the two protocols above it: it fills
 * the upper half of the QUIC callbacks, owns ngtcp2's stream user data
 * (tagged, see h3wt_sud.h), tells WebTransport streams from HTTP/3 ones by
 * their first bytes, and hands each event to nghttp3 (through h3wt_h3) or
 * to WebTransport (h3wt_wt).  So h3wt_h3 knows nothing of WebTransport and
 * h3wt_wt uses h3wt_h3 only downwards (the CONNECT stream is an HTTP/3
 * request): the arrows point down.
 *
 *   facades (server, client) -> streams -> { wt -> h3 } -> quic
 */
#ifndef H3WT_STREAMS_H
#define H3WT_STREAMS_H

#include "h3wt_h3.h"
#include "h3wt_quic.h"
#include "h3wt_wt.h"

/* The QUIC callbacks to give h3wt_quic_config (the upper half; the owner
   adds send and the connection-ID callbacks).  The QUIC connection's user
   data must begin with an h3wt_h3_owner. */
void h3wt_streams_fill_quic_callbacks(h3wt_quic_callbacks *cbs);

/* Makes a connection's HTTP/3 layer and, when cfg->wt is set, its
   WebTransport state.  Returns 0 or H3WT_ERR_NOMEM. */
int h3wt_streams_conn_new(h3wt_h3_conn **ph3, const h3wt_h3_config *cfg,
                          h3wt_quic_conn *qc, int server, void *user_data);
/* Frees both; sessions still open hear H3WT_SESSION_CONN_LOST first. */
void h3wt_streams_conn_del(h3wt_h3_conn *h3);

#endif /* H3WT_STREAMS_H */
