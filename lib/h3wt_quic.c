/*
 * h3wt_quic: one QUIC connection on ngtcp2 (see h3wt_quic.h).
 *
 * Lifecycle of a connection, one line per state:
 *   ACTIVE    handshaking or established; reads and writes flow
 *   CLOSING   we sent CONNECTION_CLOSE; answer further packets with it
 *             (rate-limited) until the closing period ends (RFC 9000 10.2.1)
 *   DRAINING  the peer closed; send nothing until the period ends (10.2.2)
 *   DEAD      the owner frees it
 */
#include "h3wt_quic.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

/* RFC 9114 section 8.1. */
#define H3_NO_ERROR 0x100
#define H3_INTERNAL_ERROR 0x102

/* Packets per write call at most (the send quantum usually says fewer). */
#define MAX_PKTS_PER_WRITE 64
/* GSO takes at most 64 segments per call. */
#define MAX_GSO_SEGMENTS 64

enum conn_state { ST_ACTIVE, ST_CLOSING, ST_DRAINING, ST_DEAD };

struct h3wt_quic_conn {
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
  void *ssl;
  h3wt_tls_crypto_rx crypto_rx;
  const h3wt_quic_config *cfg;
  void *user_data;
  int server;
  enum conn_state state;
  int end_reason;
  uint64_t app_error; /* to close with when an upper callback fails */
  int app_error_set;
  int alpn_refused; /* handshake done without ALPN "h3" */
  /* The closing/draining period ends at close_deadline. */
  uint64_t close_deadline;
  /* The CONNECTION_CLOSE packet we answer with while closing. */
  uint8_t *close_pkt;
  size_t close_pktlen;
  unsigned close_ecn; /* the ECN mark it went with */
  uint64_t close_pkts_recv; /* packets received while closing */
  ngtcp2_path_storage ps;
  ngtcp2_cid odcid; /* server: the client's first DCID */
  FILE *qlog;
  char name[20];
  /* For h3wt_quic_transport_info (ngtcp2 1.11's conn_info has none). */
  uint64_t tx_bytes, tx_pkts, rx_bytes, rx_pkts;
  uint64_t last_rx; /* ts of the last packet read */
  unsigned tickets; /* client: session tickets taken in (h3wt_tls) */
  /* Stream shutdowns asked for while ngtcp2_conn_read_pkt() runs (from a
     stream data callback, say): applied once it returns.  Shutting the
     read side down there would free ngtcp2's reassembly buffer, which the
     data being delivered may point into, under the application's feet. */
  int in_read;
  struct pending_shutdown {
    int64_t id;
    uint64_t code;
    int how; /* SHUT_RD_ONLY, SHUT_WR_ONLY or SHUT_BOTH */
  } *shut;
  size_t nshut, capshut;
};

enum { SHUT_RD_ONLY = 1, SHUT_WR_ONLY = 2, SHUT_BOTH = 3 };

static void run_shutdowns(h3wt_quic_conn *qc);

/* ---- ngtcp2 callbacks --------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((h3wt_quic_conn *)ref->user_data)->conn;
}

static void rand_cb(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  if (h3wt_random(dest, destlen) != 0) {
    /* getrandom() does not fail once the pool is initialised; this is a
       last resort that still never hands out zeros. */
    for (size_t i = 0; i < destlen; ++i) {
      dest[i] = (uint8_t)(rand() ^ (int)i);
    }
  }
}

/* A connection ID this server issues: random, with the worker's index
   in its first bytes when the server is one of a group, so the kernel's
   steering program (and a worker that got the packet anyway) knows
   whose it is. */
static int server_cid(const h3wt_quic_config *cfg, uint8_t *cid,
                      size_t len) {
  if (h3wt_random(cid, len) != 0) {
    return -1;
  }
  h3wt_cid_set_worker(cid, cfg->cid_workers, cfg->cid_worker);
  assert(cfg->cid_workers <= 1 ||
         h3wt_cid_worker(cid, len, cfg->cid_workers) == cfg->cid_worker);
  return 0;
}

static int get_new_connection_id_cb(ngtcp2_conn *conn, ngtcp2_cid *cid,
                                    uint8_t *token, size_t cidlen,
                                    void *user_data) {
  h3wt_quic_conn *qc = user_data;
  const h3wt_quic_callbacks *cbs = qc->cfg->cbs;
  for (int tries = 0; tries < 8; ++tries) {
    if (server_cid(qc->cfg, cid->data, cidlen) != 0) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    cid->datalen = cidlen;
    if (!cbs->cid_added || cbs->cid_added(qc, cid->data, cidlen,
                                          qc->user_data) == 0) {
      break;
    }
    if (tries == 7) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, qc->cfg->static_secret, sizeof(qc->cfg->static_secret),
          cid) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int remove_connection_id_cb(ngtcp2_conn *conn, const ngtcp2_cid *cid,
                                   void *user_data) {
  h3wt_quic_conn *qc = user_data;
  if (qc->cfg->cbs->cid_removed) {
    qc->cfg->cbs->cid_removed(qc, cid->data, cid->datalen, qc->user_data);
  }
  return 0;
}

/* Upper-layer callbacks return 0 or negative: map to ngtcp2's failure. */
#define UPPER(expr) ((expr) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE)

static int handshake_completed_cb(ngtcp2_conn *conn, void *user_data) {
  h3wt_quic_conn *qc = user_data;
  const uint8_t *alpn = NULL;
  size_t alpnlen = 0;
  /* RFC 9001 8.1: "endpoints MUST use ALPN"; a server that does not agree
     on one closes with no_application_protocol.  wolfSSL lets a client
     that offers no ALPN at all through, so check here. */
  h3wt_tls_session_alpn(qc->ssl, &alpn, &alpnlen);
  if (alpnlen != 2 || memcmp(alpn, "h3", 2) != 0) {
    H3WT_LOG(qc->cfg->log, H3WT_LOG_INFO, "quic",
             "[%s] handshake without ALPN h3: refused", qc->name);
    qc->alpn_refused = 1;
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  H3WT_LOG(qc->cfg->log, H3WT_LOG_DEBUG, "quic", "[%s] handshake completed",
           qc->name);
  if (!qc->cfg->cbs->handshake_completed) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->handshake_completed(qc, qc->user_data));
}

static int recv_stream_data_cb(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->recv_stream_data) {
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(conn, datalen);
    return 0;
  }
  return UPPER(qc->cfg->cbs->recv_stream_data(
      qc, stream_id, data, datalen, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
      qc->user_data, stream_user_data));
}

static int acked_stream_data_offset_cb(ngtcp2_conn *conn, int64_t stream_id,
                                       uint64_t offset, uint64_t datalen,
                                       void *user_data,
                                       void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->acked_stream_data) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->acked_stream_data(qc, stream_id, datalen,
                                               qc->user_data,
                                               stream_user_data));
}

static int stream_close_cb(ngtcp2_conn *conn, uint32_t flags,
                           int64_t stream_id, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) {
    app_error_code = H3_NO_ERROR;
  }
  if (!qc->cfg->cbs->stream_close) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->stream_close(qc, stream_id, app_error_code,
                                          qc->user_data, stream_user_data));
}

static int stream_reset_cb(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->stream_reset) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->stream_reset(qc, stream_id, final_size,
                                          app_error_code, qc->user_data,
                                          stream_user_data));
}

static int stream_stop_sending_cb(ngtcp2_conn *conn, int64_t stream_id,
                                  uint64_t app_error_code, void *user_data,
                                  void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->stream_stop_sending) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->stream_stop_sending(
      qc, stream_id, app_error_code, qc->user_data, stream_user_data));
}

static int extend_max_stream_data_cb(ngtcp2_conn *conn, int64_t stream_id,
                                     uint64_t max_data, void *user_data,
                                     void *stream_user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->extend_max_stream_data) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->extend_max_stream_data(
      qc, stream_id, qc->user_data, stream_user_data));
}

static int extend_max_remote_streams_bidi_cb(ngtcp2_conn *conn,
                                             uint64_t max_streams,
                                             void *user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->extend_max_remote_streams_bidi) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->extend_max_remote_streams_bidi(qc, max_streams,
                                                            qc->user_data));
}

static int extend_max_local_streams_bidi_cb(ngtcp2_conn *conn,
                                            uint64_t max_streams,
                                            void *user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->extend_max_local_streams_bidi) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->extend_max_local_streams_bidi(qc, max_streams,
                                                           qc->user_data));
}

static int extend_max_local_streams_uni_cb(ngtcp2_conn *conn,
                                           uint64_t max_streams,
                                           void *user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->extend_max_local_streams_uni) {
    return 0;
  }
  return UPPER(qc->cfg->cbs->extend_max_local_streams_uni(qc, max_streams,
                                                          qc->user_data));
}

static int recv_datagram_cb(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data) {
  h3wt_quic_conn *qc = user_data;
  if (!qc->cfg->cbs->recv_datagram) {
    return 0;
  }
  return UPPER(
      qc->cfg->cbs->recv_datagram(qc, data, datalen, qc->user_data));
}

/* Not ngtcp2_crypto_recv_crypto_data_cb: see h3wt_tls_recv_crypto_data. */
static int recv_crypto_data_cb(ngtcp2_conn *conn,
                               ngtcp2_encryption_level level, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data) {
  h3wt_quic_conn *qc = user_data;

  (void)offset;
  if (!qc->ssl) {
    /* A server whose handshake is over has let its TLS session go (see
       tls_release), and a client has nothing more to say in TLS: RFC 9001
       6 forbids KeyUpdate ("MUST treat the receipt of a TLS KeyUpdate
       message as a connection error of type 0x010a"), and we ask for no
       post-handshake authentication.  So new CRYPTO data now is an
       unexpected_message, as wolfSSL would have answered it. */
    ngtcp2_conn_set_tls_alert(conn, 10 /* unexpected_message */);
    return NGTCP2_ERR_CRYPTO;
  }
  return h3wt_tls_recv_crypto_data(&qc->crypto_rx, conn, (int)level, data,
                                   datalen);
}

static void fill_callbacks(ngtcp2_callbacks *cb, int server) {
  memset(cb, 0, sizeof(*cb));
  if (server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = rand_cb;
  cb->get_new_connection_id = get_new_connection_id_cb;
  cb->remove_connection_id = remove_connection_id_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_stream_data_offset_cb;
  cb->stream_close = stream_close_cb;
  cb->stream_reset = stream_reset_cb;
  cb->stream_stop_sending = stream_stop_sending_cb;
  cb->extend_max_stream_data = extend_max_stream_data_cb;
  cb->extend_max_remote_streams_bidi = extend_max_remote_streams_bidi_cb;
  cb->recv_datagram = recv_datagram_cb;
  cb->extend_max_local_streams_bidi = extend_max_local_streams_bidi_cb;
  cb->extend_max_local_streams_uni = extend_max_local_streams_uni_cb;
}

/* ---- qlog --------------------------------------------------------------- */

static void qlog_write_cb(void *user_data, uint32_t flags, const void *data,
                          size_t datalen) {
  h3wt_quic_conn *qc = user_data;
  if (qc->qlog) {
    fwrite(data, 1, datalen, qc->qlog);
    if (flags & NGTCP2_QLOG_WRITE_FLAG_FIN) {
      fclose(qc->qlog);
      qc->qlog = NULL;
    }
  }
}

static void qlog_open(h3wt_quic_conn *qc, const ngtcp2_cid *odcid,
                      ngtcp2_settings *settings) {
  char hex[2 * NGTCP2_MAX_CIDLEN + 1], path[4096];
  if (!qc->cfg->qlog_dir) {
    return;
  }
  h3wt_hex(odcid->data, odcid->datalen, hex);
  snprintf(path, sizeof(path), "%s/%s-%s.sqlog", qc->cfg->qlog_dir, hex,
           qc->server ? "server" : "client");
  qc->qlog = fopen(path, "w");
  if (!qc->qlog) {
    H3WT_LOG(qc->cfg->log, H3WT_LOG_WARN, "quic", "qlog %s: %s", path,
             strerror(errno));
    return;
  }
  settings->qlog_write = qlog_write_cb;
}

/* ---- creation ----------------------------------------------------------- */

static void fill_settings(h3wt_quic_conn *qc, ngtcp2_settings *s,
                          uint64_t ts) {
  ngtcp2_settings_default(s);
  s->initial_ts = ts;
  s->max_tx_udp_payload_size = 1452;
  s->handshake_timeout = qc->cfg->handshake_timeout_ns;
  s->cc_algo = NGTCP2_CC_ALGO_CUBIC;
}

static void fill_params(const h3wt_quic_config *cfg, ngtcp2_transport_params *p) {
  ngtcp2_transport_params_default(p);
  p->initial_max_streams_bidi = cfg->max_streams_bidi;
  p->initial_max_streams_uni = cfg->max_streams_uni;
  p->initial_max_stream_data_bidi_local = cfg->max_stream_data;
  p->initial_max_stream_data_bidi_remote = cfg->max_stream_data;
  p->initial_max_stream_data_uni = cfg->max_stream_data;
  p->initial_max_data = cfg->max_data;
  p->max_idle_timeout = cfg->idle_timeout_ns;
  p->max_datagram_frame_size = cfg->max_datagram_frame_size;
  p->active_connection_id_limit = 4;
}

static h3wt_quic_conn *conn_alloc(const h3wt_quic_config *cfg, int server,
                                  void *user_data) {
  h3wt_quic_conn *qc = calloc(1, sizeof(*qc));
  if (!qc) {
    return NULL;
  }
  qc->cfg = cfg;
  qc->server = server;
  qc->user_data = user_data;
  qc->ref.get_conn = get_conn;
  qc->ref.user_data = qc;
  return qc;
}

static socklen_t sa_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

static void set_path(ngtcp2_path_storage *ps, const struct sockaddr *local,
                     const struct sockaddr *remote) {
  ngtcp2_path_storage_init(ps, local, sa_len(local), remote, sa_len(remote),
                           NULL);
}

/* How long a Retry token stays good: the client answers a Retry at once,
   so a few round trips are plenty (ngtcp2's examples use 10 s too). */
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)

static int is_retry_token(const ngtcp2_pkt_hd *hd) {
  return hd->tokenlen && hd->token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY;
}

ssize_t h3wt_quic_write_retry(uint8_t *out, size_t outlen,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *remote,
                              const uint8_t *data, size_t len, uint64_t ts) {
  ngtcp2_pkt_hd hd;
  ngtcp2_cid scid;
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];

  if (ngtcp2_accept(&hd, data, len) != 0 || hd.type != NGTCP2_PKT_INITIAL) {
    return -1;
  }
  if (is_retry_token(&hd)) {
    return 0; /* the answer to a Retry: h3wt_quic_conn_server_new checks it */
  }
  scid.datalen = H3WT_QUIC_SCIDLEN;
  if (server_cid(cfg, scid.data, scid.datalen) != 0) {
    return -1;
  }
  ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token(
      token, cfg->static_secret, sizeof(cfg->static_secret), hd.version,
      remote, sa_len(remote), &scid, &hd.dcid, ts);
  if (tokenlen < 0) {
    return -1;
  }
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(out, outlen, hd.version, &hd.scid,
                                             &scid, &hd.dcid, token,
                                             (size_t)tokenlen);
  return n < 0 ? -1 : (ssize_t)n;
}

int h3wt_quic_conn_server_new(h3wt_quic_conn **pqc,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *local,
                              const struct sockaddr *remote,
                              const uint8_t *data, size_t len, uint64_t ts,
                              void *user_data) {
  ngtcp2_pkt_hd hd;
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid scid;
  int rv;

  /* ngtcp2_accept checks this is a client Initial we may answer (long
     enough, right version, no token we must validate). */
  if (ngtcp2_accept(&hd, data, len) != 0) {
    return H3WT_ERR_QUIC;
  }
  if (hd.type != NGTCP2_PKT_INITIAL) {
    /* 0-RTT that overtook its Initial: nothing to attach it to. */
    return H3WT_ERR_QUIC;
  }
  /* An answer to our Retry proves the client owns its address: check the
     token (bound to that address and to the DCID of the Retry) and recover
     the DCID of the client's first Initial.  Other tokens (NEW_TOKEN; we
     issue none) are ignored. */
  ngtcp2_cid odcid = hd.dcid;
  int retried = 0;
  if (is_retry_token(&hd)) {
    if (ngtcp2_crypto_verify_retry_token(
            &odcid, hd.token, hd.tokenlen, cfg->static_secret,
            sizeof(cfg->static_secret), hd.version, remote, sa_len(remote),
            &hd.dcid, RETRY_TOKEN_TIMEOUT, ts) != 0) {
      H3WT_LOG(cfg->log, H3WT_LOG_DEBUG, "quic",
               "Initial with an invalid or expired Retry token: dropped");
      return H3WT_ERR_HANDSHAKE;
    }
    retried = 1;
  }
  h3wt_quic_conn *qc = conn_alloc(cfg, 1, user_data);
  if (!qc) {
    return H3WT_ERR_NOMEM;
  }
  set_path(&qc->ps, local, remote);
  qc->odcid = hd.dcid;

  scid.datalen = H3WT_QUIC_SCIDLEN;
  if (server_cid(cfg, scid.data, scid.datalen) != 0) {
    free(qc);
    return H3WT_ERR_QUIC;
  }
  h3wt_hex(scid.data, 8, qc->name);

  fill_callbacks(&cb, 1);
  fill_settings(qc, &settings, ts);
  qlog_open(qc, &hd.dcid, &settings);
  fill_params(cfg, &params);
  params.original_dcid = odcid;
  params.original_dcid_present = 1;
  if (retried) {
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
    settings.token = hd.token;
    settings.tokenlen = hd.tokenlen;
    settings.token_type = NGTCP2_TOKEN_TYPE_RETRY;
  }
  params.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(
          params.stateless_reset_token, cfg->static_secret,
          sizeof(cfg->static_secret), &scid) != 0) {
    goto fail;
  }

  rv = ngtcp2_conn_server_new(&qc->conn, &hd.scid, &scid, &qc->ps.path,
                              hd.version, &cb, &settings, &params, NULL, qc);
  if (rv != 0) {
    H3WT_LOG(cfg->log, H3WT_LOG_ERROR, "quic", "ngtcp2_conn_server_new: %s",
             ngtcp2_strerror(rv));
    goto fail;
  }
  qc->ssl = h3wt_tls_session_new_server(cfg->tls, &qc->ref);
  if (!qc->ssl) {
    ngtcp2_conn_del(qc->conn);
    H3WT_LOG(cfg->log, H3WT_LOG_ERROR, "quic", "TLS session setup failed");
    free(qc);
    return H3WT_ERR_TLS;
  }
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->ssl);

  /* The map needs the IDs the client may address us by: the one it chose
     (until the handshake is done it keeps using it) and our first SCID. */
  if (cfg->cbs->cid_added &&
      (cfg->cbs->cid_added(qc, scid.data, scid.datalen, user_data) != 0 ||
       cfg->cbs->cid_added(qc, hd.dcid.data, hd.dcid.datalen, user_data) !=
           0)) {
    if (cfg->cbs->cid_removed) {
      cfg->cbs->cid_removed(qc, scid.data, scid.datalen, user_data);
    }
    h3wt_tls_session_del(qc->ssl);
    ngtcp2_conn_del(qc->conn);
    free(qc);
    return H3WT_ERR_QUIC;
  }
  *pqc = qc;
  return 0;
fail:
  if (qc->qlog) {
    fclose(qc->qlog);
  }
  free(qc);
  return H3WT_ERR_QUIC;
}

int h3wt_quic_conn_client_new(h3wt_quic_conn **pqc,
                              const h3wt_quic_config *cfg,
                              const struct sockaddr *local,
                              const struct sockaddr *remote, const char *sni,
                              uint64_t ts, void *user_data) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  int rv;
  h3wt_quic_conn *qc = conn_alloc(cfg, 0, user_data);
  if (!qc) {
    return H3WT_ERR_NOMEM;
  }
  set_path(&qc->ps, local, remote);
  dcid.datalen = 18;
  scid.datalen = 18;
  if (h3wt_random(dcid.data, dcid.datalen) != 0 ||
      h3wt_random(scid.data, scid.datalen) != 0) {
    free(qc);
    return H3WT_ERR_QUIC;
  }
  h3wt_hex(scid.data, 8, qc->name);
  fill_callbacks(&cb, 0);
  fill_settings(qc, &settings, ts);
  qlog_open(qc, &dcid, &settings);
  fill_params(cfg, &params);
  rv = ngtcp2_conn_client_new(&qc->conn, &dcid, &scid, &qc->ps.path,
                              NGTCP2_PROTO_VER_V1, &cb, &settings, &params,
                              NULL, qc);
  if (rv != 0) {
    H3WT_LOG(cfg->log, H3WT_LOG_ERROR, "quic", "ngtcp2_conn_client_new: %s",
             ngtcp2_strerror(rv));
    if (qc->qlog) {
      fclose(qc->qlog);
    }
    free(qc);
    return H3WT_ERR_QUIC;
  }
  qc->ssl = h3wt_tls_session_new_client(cfg->tls, &qc->ref, sni);
  if (!qc->ssl) {
    ngtcp2_conn_del(qc->conn);
    if (qc->qlog) {
      fclose(qc->qlog);
    }
    free(qc);
    return H3WT_ERR_TLS;
  }
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->ssl);
  h3wt_tls_session_count_tickets(qc->ssl, &qc->tickets);
  *pqc = qc;
  return 0;
}

void h3wt_quic_conn_del(h3wt_quic_conn *qc) {
  if (!qc) {
    return;
  }
  if (qc->conn) {
    ngtcp2_conn_del(qc->conn);
  }
  if (qc->ssl) {
    h3wt_tls_session_del(qc->ssl);
  }
  if (qc->qlog) {
    fclose(qc->qlog);
  }
  free(qc->close_pkt);
  free(qc->shut);
  free(qc);
}

/* ---- closing ------------------------------------------------------------ */

static void enter_period(h3wt_quic_conn *qc, enum conn_state st,
                         uint64_t ts) {
  qc->state = st;
  /* RFC 9000 10.2: "at least three times the current PTO interval". */
  qc->close_deadline = ts + 3 * ngtcp2_conn_get_pto(qc->conn);
}

/* Writes CONNECTION_CLOSE for ccerr and enters the closing period. */
static void start_closing(h3wt_quic_conn *qc, const ngtcp2_ccerr *ccerr,
                          uint64_t ts) {
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  uint8_t buf[1500];
  if (qc->state != ST_ACTIVE) {
    return;
  }
  if (ngtcp2_conn_in_closing_period(qc->conn) ||
      ngtcp2_conn_in_draining_period(qc->conn)) {
    enter_period(qc, ST_DRAINING, ts);
    return;
  }
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
      qc->conn, &ps.path, &pi, buf, sizeof(buf), ccerr, ts);
  if (n <= 0) {
    /* Nothing to say (e.g. before any key): just go away quietly. */
    qc->state = ST_DEAD;
    return;
  }
  qc->close_pkt = malloc((size_t)n);
  if (qc->close_pkt) {
    memcpy(qc->close_pkt, buf, (size_t)n);
    qc->close_pktlen = (size_t)n;
  }
  qc->cfg->cbs->send(qc, (const struct sockaddr *)ps.path.remote.addr, buf,
                     (size_t)n, 0, pi.ecn, qc->user_data);
  qc->close_ecn = pi.ecn;
  enter_period(qc, ST_CLOSING, ts);
}

static void close_on_liberr(h3wt_quic_conn *qc, int liberr, uint64_t ts) {
  ngtcp2_ccerr ccerr;
  ngtcp2_ccerr_default(&ccerr);
  if (qc->alpn_refused) {
    ngtcp2_ccerr_set_tls_alert(&ccerr, 120 /* no_application_protocol */,
                               NULL, 0);
  } else if (liberr == NGTCP2_ERR_CRYPTO) {
    /* CRYPTO_ERROR carrying the TLS alert (RFC 9001 4.8), not the
       PROTOCOL_VIOLATION ngtcp2_ccerr_set_liberr() would pick. */
    ngtcp2_ccerr_set_tls_alert(&ccerr, ngtcp2_conn_get_tls_alert(qc->conn),
                               NULL, 0);
  } else if (liberr == NGTCP2_ERR_CALLBACK_FAILURE) {
    ngtcp2_ccerr_set_application_error(
        &ccerr, qc->app_error_set ? qc->app_error : H3_INTERNAL_ERROR, NULL,
        0);
  } else {
    ngtcp2_ccerr_set_liberr(&ccerr, liberr, NULL, 0);
  }
  if (qc->end_reason == 0) {
    qc->end_reason = h3wt_quic_conn_handshake_done(qc) ? H3WT_ERR_QUIC
                                                        : H3WT_ERR_HANDSHAKE;
  }
  start_closing(qc, &ccerr, ts);
}

void h3wt_quic_conn_close(h3wt_quic_conn *qc, uint64_t app_error_code,
                          const char *reason, uint64_t ts) {
  ngtcp2_ccerr ccerr;
  ngtcp2_ccerr_default(&ccerr);
  ngtcp2_ccerr_set_application_error(&ccerr, app_error_code,
                                     (const uint8_t *)reason,
                                     reason ? strlen(reason) : 0);
  start_closing(qc, &ccerr, ts);
}

void h3wt_quic_conn_set_app_error(h3wt_quic_conn *qc, uint64_t code) {
  qc->app_error = code;
  qc->app_error_set = 1;
}

/* ---- I/O ---------------------------------------------------------------- */

/* A server's TLS session is done with once its handshake has completed:
   the 1-RTT keys, and every key update after them, live in ngtcp2's own
   crypto contexts (ngtcp2_crypto_update_key derives them from the secrets
   ngtcp2 keeps, with the negotiated cipher, never through the WOLFSSL
   object), and the session ticket went out with the handshake's last
   flight (ngtcp2 copies CRYPTO data).  wolfSSL's WOLFSSL object, its
   handshake buffers and key schedule were some 10 KB per connection kept
   for nothing (bench/README.md, idle memory); freed here, after
   ngtcp2_conn_read_pkt() has returned (the handshake completes inside
   wolfSSL's own call stack).  A client keeps its session: tickets arrive
   after the handshake. */
static void tls_release(h3wt_quic_conn *qc) {
  if (!qc->server || !qc->ssl ||
      !ngtcp2_conn_get_handshake_completed(qc->conn)) {
    return;
  }
  ngtcp2_conn_set_tls_native_handle(qc->conn, NULL);
  h3wt_tls_session_del(qc->ssl);
  qc->ssl = NULL;
}

h3wt_quic_status h3wt_quic_conn_read(h3wt_quic_conn *qc,
                                     const struct sockaddr *local,
                                     const struct sockaddr *remote,
                                     const uint8_t *data, size_t len,
                                     unsigned ecn, uint64_t ts) {
  ngtcp2_path path;
  ngtcp2_pkt_info pi = {(uint8_t)(ecn & 3)};
  int rv;
  qc->rx_bytes += len;
  ++qc->rx_pkts;
  qc->last_rx = ts;
  switch (qc->state) {
  case ST_DEAD:
    return H3WT_QUIC_DEAD;
  case ST_DRAINING:
    return H3WT_QUIC_OK;
  case ST_CLOSING:
    /* Answer with the stored close, backing off exponentially so a flood
       of packets cannot turn us into an amplifier (RFC 9000 10.2.1). */
    ++qc->close_pkts_recv;
    if (qc->close_pkt &&
        (qc->close_pkts_recv & (qc->close_pkts_recv - 1)) == 0) {
      qc->cfg->cbs->send(qc, remote, qc->close_pkt, qc->close_pktlen, 0,
                         qc->close_ecn, qc->user_data);
    }
    return H3WT_QUIC_OK;
  case ST_ACTIVE:
    break;
  }
  path.local.addr = (ngtcp2_sockaddr *)local;
  path.local.addrlen = local->sa_family == AF_INET6
                           ? sizeof(struct sockaddr_in6)
                           : sizeof(struct sockaddr_in);
  path.remote.addr = (ngtcp2_sockaddr *)remote;
  path.remote.addrlen = remote->sa_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in);
  path.user_data = NULL;
  qc->in_read = 1;
  rv = ngtcp2_conn_read_pkt(qc->conn, &path, &pi, data, len, ts);
  qc->in_read = 0;
  if (qc->nshut) {
    run_shutdowns(qc);
  }
  if (rv == 0) {
    tls_release(qc);
    return H3WT_QUIC_OK;
  }
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
    /* The peer closed.  Its close code tells whether that was an error. */
    {
      const ngtcp2_ccerr *ce = ngtcp2_conn_get_ccerr(qc->conn);
      if (ce->type == NGTCP2_CCERR_TYPE_APPLICATION) {
        /* Above QUIC, only H3_NO_ERROR is a clean close. */
        if (ce->error_code != H3_NO_ERROR) {
          qc->end_reason = H3WT_ERR_H3;
        }
      } else if (ce->error_code != 0) {
        qc->end_reason = H3WT_ERR_QUIC;
      }
      H3WT_LOG(qc->cfg->log, H3WT_LOG_DEBUG, "quic",
               "[%s] peer closed: %s code 0x%llx", qc->name,
               ce->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application"
                                                         : "transport",
               (unsigned long long)ce->error_code);
    }
    enter_period(qc, ST_DRAINING, ts);
    return H3WT_QUIC_OK;
  case NGTCP2_ERR_DROP_CONN:
    qc->state = ST_DEAD;
    return H3WT_QUIC_DEAD;
  case NGTCP2_ERR_CRYPTO:
    H3WT_LOG(qc->cfg->log, H3WT_LOG_INFO, "quic", "[%s] TLS alert %u %s",
             qc->name, ngtcp2_conn_get_tls_alert(qc->conn),
             h3wt_quic_conn_handshake_done(qc) ? "after the handshake"
                                               : "during handshake");
    close_on_liberr(qc, rv, ts);
    break;
  default:
    H3WT_LOG(qc->cfg->log, H3WT_LOG_INFO, "quic", "[%s] read: %s", qc->name,
             ngtcp2_strerror(rv));
    close_on_liberr(qc, rv, ts);
    break;
  }
  return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
}

/* Packets collected for one sendmsg: same path, same ECN mark, all gso
   bytes long but the last. */
typedef struct batch {
  uint8_t *buf;
  size_t len;
  size_t gso;
  size_t npkts;
  unsigned ecn;
  struct sockaddr_storage remote;
} batch;

static void batch_flush(h3wt_quic_conn *qc, batch *b) {
  if (b->len) {
    qc->tx_bytes += b->len;
    qc->tx_pkts += b->npkts;
    qc->cfg->cbs->send(qc, (const struct sockaddr *)&b->remote, b->buf,
                       b->len, b->npkts > 1 ? b->gso : 0, b->ecn,
                       qc->user_data);
  }
  b->len = 0;
  b->npkts = 0;
  b->gso = 0;
}

/* A packet of n bytes was written at b->buf + b->len: add it to the batch.
   Returns 0 when this write call has sent its share of packets. */
static int packet_added(h3wt_quic_conn *qc, batch *b, ngtcp2_path_storage *ps,
                        const ngtcp2_pkt_info *pi, size_t n, size_t *pkts,
                        size_t max_pkts) {
  socklen_t rlen = ps->path.remote.addrlen;
  if (b->npkts && (memcmp(&b->remote, ps->path.remote.addr, rlen) != 0 ||
                   b->ecn != pi->ecn)) {
    /* A packet for another path (migration, probing) or with another ECN
       mark (ngtcp2 validating ECN): send the batch before it, then start
       a new batch with this packet. */
    uint8_t *pkt = b->buf + b->len;
    batch_flush(qc, b);
    memmove(b->buf, pkt, n);
  }
  if (b->npkts == 0) {
    memcpy(&b->remote, ps->path.remote.addr, rlen);
    b->gso = n;
    b->ecn = pi->ecn;
  }
  b->len += n;
  ++b->npkts;
  ++*pkts;
  if (n < b->gso) {
    batch_flush(qc, b); /* a short packet ends a GSO batch */
  }
  return *pkts < max_pkts;
}

/* How many packets one write may send back to back.  No more than the
   send quantum: what congestion control allows to leave at once (ngtcp2
   then spaces the next burst: update_pkt_tx_time sets when, and the
   connection's expiry includes it, so the driver comes back at that time,
   deadlines under a millisecond on its fine timer).  With CUBIC that
   quantum is a fixed 64 KiB, a burst of 45 packets whatever the path, so
   it is also held to what the pacing rate (1.25 cwnd per smoothed RTT,
   RFC 9002 7.7) sends in a millisecond, as ngtcp2's BBR sizes its own
   quantum: a 100 Mbit/s path gets bursts of 10 packets, loopback still
   gets 45. */
static size_t burst_pkts(h3wt_quic_conn *qc, size_t maxpkt) {
  size_t quantum = ngtcp2_conn_get_send_quantum(qc->conn);
  ngtcp2_conn_info ci;
  ngtcp2_conn_get_conn_info(qc->conn, &ci);
  if (ci.smoothed_rtt > 0) {
    uint64_t per_ms = ci.cwnd * 125 / 100 * 1000000 / ci.smoothed_rtt;
    if (per_ms < quantum) {
      quantum = (size_t)per_ms;
    }
  }
  size_t n = quantum / maxpkt;
  if (n < 2) {
    return 2;
  }
  return n > MAX_PKTS_PER_WRITE ? MAX_PKTS_PER_WRITE : n;
}

h3wt_quic_status h3wt_quic_conn_write(h3wt_quic_conn *qc, uint64_t ts) {
  const h3wt_quic_callbacks *cbs = qc->cfg->cbs;
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  batch b = {qc->cfg->txbuf, 0, 0, 0, 0, {0}};
  size_t maxpkt = ngtcp2_conn_get_max_tx_udp_payload_size(qc->conn);
  size_t pkts = 0;
  int more = 0;
  size_t max_pkts = qc->cfg->pacing ? burst_pkts(qc, maxpkt)
                                     : MAX_PKTS_PER_WRITE;

  if (qc->state == ST_DEAD) {
    return H3WT_QUIC_DEAD;
  }
  if (qc->state != ST_ACTIVE) {
    return H3WT_QUIC_OK;
  }
  ngtcp2_path_storage_zero(&ps);
  for (;;) {
    int64_t stream_id = -1;
    int fin = 0;
    h3wt_vec vec[16];
    ssize_t nvec = 0;
    ngtcp2_ssize ndatalen = -1;
    h3wt_vec dvec[2];
    size_t ndv = cbs->datagram_front
                     ? cbs->datagram_front(qc, dvec, ts, qc->user_data)
                     : 0;
    if (ndv) {
      if (b.len + maxpkt > qc->cfg->txbuflen ||
          b.npkts == MAX_GSO_SEGMENTS) {
        batch_flush(qc, &b);
      }
      size_t ddest = b.npkts ? b.gso : maxpkt;
      int accepted = 0;
      ngtcp2_vec dv[2] = {{dvec[0].base, dvec[0].len},
                          {ndv > 1 ? dvec[1].base : NULL,
                           ndv > 1 ? dvec[1].len : 0}};
      ngtcp2_ssize n = ngtcp2_conn_writev_datagram(
          qc->conn, &ps.path, &pi, b.buf + b.len, ddest, &accepted,
          NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, dv, ndv, ts);
      if (n == NGTCP2_ERR_WRITE_MORE) {
        /* Packed; the packet has room for more frames. */
        cbs->datagram_pop(qc, qc->user_data);
        continue;
      }
      if (n < 0) {
        if (n == NGTCP2_ERR_INVALID_ARGUMENT) {
          /* Over the peer's limit: it can never be sent; drop it rather
             than block every later datagram. */
          cbs->datagram_pop(qc, qc->user_data);
          continue;
        }
        batch_flush(qc, &b);
        close_on_liberr(qc, (int)n, ts);
        return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
      }
      if (accepted) {
        cbs->datagram_pop(qc, qc->user_data);
      }
      if (n == 0) {
        /* Congestion-limited: datagrams wait (their queue is bounded). */
        break;
      }
      if (!packet_added(qc, &b, &ps, &pi, (size_t)n, &pkts, max_pkts)) {
        more = !qc->cfg->pacing;
        break;
      }
      continue;
    }
    if (cbs->writev_stream) {
      nvec = cbs->writev_stream(qc, &stream_id, &fin, vec, 16, qc->user_data);
      if (nvec < 0) {
        close_on_liberr(qc, NGTCP2_ERR_CALLBACK_FAILURE, ts);
        return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
      }
    }
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (fin) {
      flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    }
    if (b.len + maxpkt > qc->cfg->txbuflen ||
        b.npkts == MAX_GSO_SEGMENTS) {
      batch_flush(qc, &b);
    }
    /* After the first packet of a batch, no packet may be longer than it
       (GSO segments are equal but for the last). */
    size_t destlen = b.npkts ? b.gso : maxpkt;
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(
        qc->conn, &ps.path, &pi, b.buf + b.len, destlen, &ndatalen, flags,
        stream_id, (const ngtcp2_vec *)vec, (size_t)nvec, ts);
    if (n < 0) {
      switch (n) {
      case NGTCP2_ERR_STREAM_DATA_BLOCKED:
        cbs->stream_blocked(qc, stream_id, qc->user_data);
        continue;
      case NGTCP2_ERR_STREAM_SHUT_WR:
        cbs->stream_shut_wr(qc, stream_id, qc->user_data);
        continue;
      case NGTCP2_ERR_WRITE_MORE:
        if (cbs->add_write_offset(qc, stream_id, (size_t)ndatalen,
                                  qc->user_data) != 0) {
          batch_flush(qc, &b);
          close_on_liberr(qc, NGTCP2_ERR_CALLBACK_FAILURE, ts);
          return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
        }
        continue;
      default:
        batch_flush(qc, &b);
        H3WT_LOG(qc->cfg->log, H3WT_LOG_INFO, "quic", "[%s] write: %s",
                 qc->name, ngtcp2_strerror((int)n));
        close_on_liberr(qc, (int)n, ts);
        return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
      }
    }
    if (ndatalen >= 0 && stream_id >= 0 &&
        cbs->add_write_offset(qc, stream_id, (size_t)ndatalen,
                              qc->user_data) != 0) {
      batch_flush(qc, &b);
      close_on_liberr(qc, NGTCP2_ERR_CALLBACK_FAILURE, ts);
      return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
    }
    if (n == 0) {
      break;
    }
    if (!packet_added(qc, &b, &ps, &pi, (size_t)n, &pkts, max_pkts)) {
      more = !qc->cfg->pacing;
      break;
    }
  }
  batch_flush(qc, &b);
  if (qc->cfg->pacing) {
    ngtcp2_conn_update_pkt_tx_time(qc->conn, ts);
  }
  return more ? H3WT_QUIC_MORE : H3WT_QUIC_OK;
}

uint64_t h3wt_quic_conn_expiry(const h3wt_quic_conn *qc) {
  switch (qc->state) {
  case ST_ACTIVE:
    return ngtcp2_conn_get_expiry(qc->conn);
  case ST_CLOSING:
  case ST_DRAINING:
    return qc->close_deadline;
  default:
    return 0;
  }
}

h3wt_quic_status h3wt_quic_conn_handle_expiry(h3wt_quic_conn *qc,
                                              uint64_t ts) {
  int rv;
  switch (qc->state) {
  case ST_DEAD:
    return H3WT_QUIC_DEAD;
  case ST_CLOSING:
  case ST_DRAINING:
    if (ts >= qc->close_deadline) {
      qc->state = ST_DEAD;
      return H3WT_QUIC_DEAD;
    }
    return H3WT_QUIC_OK;
  case ST_ACTIVE:
    break;
  }
  rv = ngtcp2_conn_handle_expiry(qc->conn, ts);
  if (rv == 0) {
    return H3WT_QUIC_OK;
  }
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    /* RFC 9000 10.1: an idle connection is discarded silently. */
    H3WT_LOG(qc->cfg->log, H3WT_LOG_DEBUG, "quic", "[%s] idle timeout",
             qc->name);
    qc->end_reason = H3WT_ERR_IDLE_TIMEOUT;
    qc->state = ST_DEAD;
    return H3WT_QUIC_DEAD;
  }
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    qc->end_reason = H3WT_ERR_HANDSHAKE;
    qc->state = ST_DEAD;
    return H3WT_QUIC_DEAD;
  }
  close_on_liberr(qc, rv, ts);
  return qc->state == ST_DEAD ? H3WT_QUIC_DEAD : H3WT_QUIC_OK;
}

/* ---- endpoint helpers --------------------------------------------------- */

int h3wt_quic_decode(const uint8_t *data, size_t len, h3wt_quic_pkt_info *pi) {
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, H3WT_QUIC_SCIDLEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    rv = 1;
  } else if (rv != 0) {
    return -1;
  }
  pi->version = vc.version;
  pi->dcid = vc.dcid;
  pi->dcidlen = vc.dcidlen;
  pi->scid = vc.scid;
  pi->scidlen = vc.scidlen;
  pi->long_header = (data[0] & 0x80) != 0;
  return rv;
}

ssize_t h3wt_quic_write_version_negotiation(uint8_t *out, size_t outlen,
                                            const h3wt_quic_pkt_info *pi) {
  static const uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
  uint8_t r;
  h3wt_random(&r, 1);
  /* Echo the client's IDs swapped, as RFC 9000 17.2.1 asks. */
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
      out, outlen, r, pi->scid, pi->scidlen, pi->dcid, pi->dcidlen, sv,
      sizeof(sv) / sizeof(sv[0]));
  return n < 0 ? -1 : (ssize_t)n;
}

size_t h3wt_quic_write_stateless_reset(uint8_t *out, size_t outlen,
                                       const uint8_t secret[32],
                                       const uint8_t *dcid, size_t dcidlen,
                                       size_t pktlen) {
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  uint8_t rnd[64];
  ngtcp2_cid cid;
  /* RFC 9000 10.3: at least 21 bytes look like a short-header packet, and
     the reset must be smaller than the packet it answers (10.3.3), so that
     two endpoints cannot loop and nobody is amplified. */
  size_t randlen = pktlen > 1 + NGTCP2_STATELESS_RESET_TOKENLEN + 1
                       ? pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1
                       : 0;
  if (randlen < NGTCP2_MIN_STATELESS_RESET_RANDLEN || dcidlen == 0 ||
      dcidlen > NGTCP2_MAX_CIDLEN) {
    return 0;
  }
  if (randlen > sizeof(rnd)) {
    randlen = sizeof(rnd);
  }
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(token, secret, 32, &cid) !=
      0) {
    return 0;
  }
  h3wt_random(rnd, randlen);
  ngtcp2_ssize n =
      ngtcp2_pkt_write_stateless_reset(out, outlen, token, rnd, randlen);
  return n < 0 ? 0 : (size_t)n;
}

/* ---- accessors and stream wrappers --------------------------------------- */

int h3wt_quic_conn_end_reason(const h3wt_quic_conn *qc) {
  return qc->end_reason;
}
int h3wt_quic_conn_is_server(const h3wt_quic_conn *qc) {
  return qc->server;
}
int h3wt_quic_conn_handshake_done(const h3wt_quic_conn *qc) {
  return ngtcp2_conn_get_handshake_completed(qc->conn);
}

int h3wt_quic_conn_initiate_key_update(h3wt_quic_conn *qc, uint64_t ts) {
  return ngtcp2_conn_initiate_key_update(qc->conn, ts) == 0 ? 0 : -1;
}

int h3wt_quic_conn_submit_crypto_1rtt(h3wt_quic_conn *qc, const uint8_t *data,
                                      size_t len) {
  return ngtcp2_conn_submit_crypto_data(qc->conn, NGTCP2_ENCRYPTION_LEVEL_1RTT,
                                        data, len) == 0
             ? 0
             : -1;
}
int h3wt_quic_conn_is_closing(const h3wt_quic_conn *qc) {
  return qc->state != ST_ACTIVE;
}
const struct sockaddr *h3wt_quic_conn_remote(const h3wt_quic_conn *qc) {
  return (const struct sockaddr *)ngtcp2_conn_get_path(qc->conn)->remote.addr;
}
void *h3wt_quic_conn_user_data(const h3wt_quic_conn *qc) {
  return qc->user_data;
}
const char *h3wt_quic_conn_name(const h3wt_quic_conn *qc) {
  return qc->name;
}

size_t h3wt_quic_conn_cids(const h3wt_quic_conn *qc, uint8_t (*cids)[20],
                           size_t *lens, size_t max) {
  ngtcp2_cid scids[16];
  size_t n = ngtcp2_conn_get_scid(qc->conn, NULL), k = 0;
  if (n > 16) {
    n = 16;
  }
  ngtcp2_conn_get_scid(qc->conn, scids);
  for (size_t i = 0; i < n && k < max; ++i, ++k) {
    memcpy(cids[k], scids[i].data, scids[i].datalen);
    lens[k] = scids[i].datalen;
  }
  if (qc->server && k < max) {
    memcpy(cids[k], qc->odcid.data, qc->odcid.datalen);
    lens[k] = qc->odcid.datalen;
    ++k;
  }
  return k;
}

int h3wt_quic_open_bidi_stream(h3wt_quic_conn *qc, int64_t *pid, void *sud) {
  int rv = ngtcp2_conn_open_bidi_stream(qc->conn, pid, sud);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    return H3WT_ERR_WOULDBLOCK;
  }
  return rv == 0 ? 0 : H3WT_ERR_QUIC;
}

int h3wt_quic_open_uni_stream(h3wt_quic_conn *qc, int64_t *pid, void *sud) {
  int rv = ngtcp2_conn_open_uni_stream(qc->conn, pid, sud);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    return H3WT_ERR_WOULDBLOCK;
  }
  return rv == 0 ? 0 : H3WT_ERR_QUIC;
}

uint64_t h3wt_quic_streams_uni_left(const h3wt_quic_conn *qc) {
  return ngtcp2_conn_get_streams_uni_left(qc->conn);
}

uint64_t h3wt_quic_streams_bidi_left(const h3wt_quic_conn *qc) {
  return ngtcp2_conn_get_streams_bidi_left(qc->conn);
}

void h3wt_quic_set_stream_data(h3wt_quic_conn *qc, int64_t id, void *sud) {
  ngtcp2_conn_set_stream_user_data(qc->conn, id, sud);
}

void h3wt_quic_consume(h3wt_quic_conn *qc, int64_t id, size_t n) {
  ngtcp2_conn_extend_max_stream_offset(qc->conn, id, n);
  ngtcp2_conn_extend_max_offset(qc->conn, n);
}

void h3wt_quic_consume_conn(h3wt_quic_conn *qc, size_t n) {
  ngtcp2_conn_extend_max_offset(qc->conn, n);
}

static void shutdown_now(h3wt_quic_conn *qc, int64_t id, uint64_t code,
                         int how) {
  switch (how) {
  case SHUT_RD_ONLY:
    ngtcp2_conn_shutdown_stream_read(qc->conn, 0, id, code);
    break;
  case SHUT_WR_ONLY:
    ngtcp2_conn_shutdown_stream_write(qc->conn, 0, id, code);
    break;
  default:
    ngtcp2_conn_shutdown_stream(qc->conn, 0, id, code);
    break;
  }
}

static void shutdown_stream(h3wt_quic_conn *qc, int64_t id, uint64_t code,
                            int how) {
  if (!qc->in_read) {
    shutdown_now(qc, id, code, how);
    return;
  }
  if (qc->nshut == qc->capshut) {
    size_t cap = qc->capshut ? 2 * qc->capshut : 8;
    struct pending_shutdown *p = realloc(qc->shut, cap * sizeof(*p));
    if (!p) {
      /* Rather now than never: the stream must not stay open. */
      shutdown_now(qc, id, code, how);
      return;
    }
    qc->shut = p;
    qc->capshut = cap;
  }
  qc->shut[qc->nshut++] = (struct pending_shutdown){id, code, how};
}

/* Applies the shutdowns deferred during ngtcp2_conn_read_pkt(). */
static void run_shutdowns(h3wt_quic_conn *qc) {
  /* in_read is 0 again: anything asked for meanwhile runs at once. */
  for (size_t i = 0; i < qc->nshut; ++i) {
    struct pending_shutdown p = qc->shut[i];
    shutdown_now(qc, p.id, p.code, p.how);
  }
  qc->nshut = 0;
}

void h3wt_quic_shutdown_stream_read(h3wt_quic_conn *qc, int64_t id,
                                    uint64_t code) {
  shutdown_stream(qc, id, code, SHUT_RD_ONLY);
}

void h3wt_quic_shutdown_stream_write(h3wt_quic_conn *qc, int64_t id,
                                     uint64_t code) {
  shutdown_stream(qc, id, code, SHUT_WR_ONLY);
}

void h3wt_quic_shutdown_stream(h3wt_quic_conn *qc, int64_t id, uint64_t code) {
  shutdown_stream(qc, id, code, SHUT_BOTH);
}

void h3wt_quic_extend_max_streams_bidi(h3wt_quic_conn *qc, size_t n) {
  ngtcp2_conn_extend_max_streams_bidi(qc->conn, n);
}

void h3wt_quic_extend_max_streams_uni(h3wt_quic_conn *qc, size_t n) {
  ngtcp2_conn_extend_max_streams_uni(qc->conn, n);
}

size_t h3wt_quic_max_datagram_payload(const h3wt_quic_conn *qc) {
  const ngtcp2_transport_params *p =
      ngtcp2_conn_get_remote_transport_params(qc->conn);
  if (!p || p->max_datagram_frame_size == 0) {
    return 0;
  }
  /* A short-header packet: 1 byte of flags, our DCID, up to 4 bytes of
     packet number, the 16-byte AEAD tag; the frame: type and a 2-byte
     length. */
  size_t dcidlen = ngtcp2_conn_get_dcid(qc->conn)->datalen;
  size_t pkt = ngtcp2_conn_get_path_max_tx_udp_payload_size(qc->conn);
  size_t overhead = 1 + dcidlen + 4 + 16 + 1 + 2;
  size_t fit = pkt > overhead ? pkt - overhead : 0;
  /* max_datagram_frame_size counts the frame's type and length too
     (RFC 9221 3). */
  uint64_t peer = p->max_datagram_frame_size > 3
                      ? p->max_datagram_frame_size - 3
                      : 0;
  return peer < fit ? (size_t)peer : fit;
}

uint64_t h3wt_quic_peer_max_datagram(const h3wt_quic_conn *qc) {
  const ngtcp2_transport_params *p =
      ngtcp2_conn_get_remote_transport_params(qc->conn);
  return p ? p->max_datagram_frame_size : 0;
}

void h3wt_quic_transport_info(const h3wt_quic_conn *qc,
                              h3wt_transport_info *info, uint64_t ts) {
  ngtcp2_conn_info ci;
  ngtcp2_conn_get_conn_info(qc->conn, &ci);
  info->smoothed_rtt_us = ci.smoothed_rtt / 1000;
  info->min_rtt_us = ci.min_rtt == UINT64_MAX ? 0 : ci.min_rtt / 1000;
  info->rttvar_us = ci.rttvar / 1000;
  info->latest_rtt_us = ci.latest_rtt / 1000;
  info->cwnd = ci.cwnd;
  info->bytes_in_flight = ci.bytes_in_flight;
  info->bytes_sent = qc->tx_bytes;
  info->packets_sent = qc->tx_pkts;
  info->bytes_received = qc->rx_bytes;
  info->packets_received = qc->rx_pkts;
#if defined(NGTCP2_CONN_INFO_V2)
  info->has_lost = 1;
  info->packets_lost = ci.pkt_lost;
  info->bytes_lost = ci.bytes_lost;
#endif
  info->idle_ms = ts > qc->last_rx ? (ts - qc->last_rx) / 1000000 : 0;
}

uint64_t h3wt_quic_last_rx(const h3wt_quic_conn *qc) {
  return qc->last_rx;
}

uint64_t h3wt_quic_stream_window(const h3wt_quic_conn *qc) {
  return qc->cfg->max_stream_data;
}

void h3wt_quic_set_keep_alive(h3wt_quic_conn *qc, uint64_t ns) {
  if (qc->conn) {
    ngtcp2_conn_set_keep_alive_timeout(qc->conn, ns ? ns : UINT64_MAX);
  }
}

int h3wt_quic_pacing_default(void) {
  const char *v = getenv("H3WT_PACING");
  return !(v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0));
}

/* ---- resumption and 0-RTT ------------------------------------------------ */

void *h3wt_quic_conn_tls(const h3wt_quic_conn *qc) {
  return qc->ssl;
}

int h3wt_quic_conn_set_0rtt_params(h3wt_quic_conn *qc, const uint8_t *data,
                                   size_t len) {
  return ngtcp2_conn_decode_and_set_0rtt_transport_params(qc->conn, data,
                                                          len) == 0
             ? 0
             : -1;
}

ssize_t h3wt_quic_conn_get_0rtt_params(const h3wt_quic_conn *qc,
                                       uint8_t *buf, size_t len) {
  ngtcp2_ssize n = ngtcp2_conn_encode_0rtt_transport_params(qc->conn, buf,
                                                            len);
  return n < 0 ? -1 : (ssize_t)n;
}

unsigned h3wt_quic_conn_tickets(const h3wt_quic_conn *qc) {
  return qc->tickets;
}

int h3wt_quic_conn_early_data_rejected(h3wt_quic_conn *qc) {
  return ngtcp2_conn_tls_early_data_rejected(qc->conn) == 0 ? 0 : -1;
}
