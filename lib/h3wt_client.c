/*
 * h3wt_client: one client QUIC connection carrying HTTP/3 requests, on the
 * host's loop.  Same layers as the server (udp, quic, h3), one connection.
 *
 * Re-entrancy.  Application callbacks mostly run with ngtcp2 and nghttp3
 * below them on the stack (a response's body arrives inside
 * ngtcp2_conn_read_pkt), and ngtcp2 forbids writing packets from there.
 * So the client counts, in the depth of its driver (h3wt_driver, the one
 * the server's endpoint uses too: the timer, the flush pass, the depth),
 * the entries from libuv into the library that are on the stack (UDP
 * receive, timer, flush pass, and the public calls that close);
 * h3wt_client_close() at depth > 0 only records the request, and the
 * flush pass (before the loop sleeps) closes at the top of its own entry,
 * where nothing below uses the connection.
 * in_quic counts calls into the QUIC layer on the stack; debug builds
 * assert it is 0 wherever the client writes, closes or frees.  Memory goes
 * only in libuv's close callbacks, so it outlives every callback.
 */
#include <assert.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_client.h"
#include "h3wt_driver.h"
#include "h3wt_h3.h"
#include "h3wt_list.h"
#include "h3wt_quic.h"
#include "h3wt_resume.h"
#include "h3wt_streams.h"
#include "h3wt_tls.h"
#include "h3wt_udp.h"
#include "h3wt_wt.h"

struct h3wt_client_request {
  h3wt_client *client;
  int64_t stream_id;
  const h3wt_response_handler *handler;
  void *user_data;
  h3wt_list node; /* in client->reqs, newest first */
  /* Outgoing request, kept until the connection is ready. */
  h3wt_header *hdrs;
  size_t nhdrs;
  char *hdrbuf;
  h3wt_sendq body;
  int has_body;
  int submitted;
  /* Incoming response headers. */
  int status;
  h3wt_header *rh;
  size_t nrh, rhcap;
  int reset_code_set;
  uint64_t reset_code;
  h3wt_session *session; /* an extended CONNECT for WebTransport */
  int early; /* submitted in 0-RTT */
};

struct h3wt_client {
  h3wt_h3_owner owner; /* first, as h3wt_h3.c expects */
  uv_loop_t *loop;
  h3wt_client_settings settings;
  char *host, *sni;
  h3wt_client_callbacks cbs;
  void *user_data;
  h3wt_logger log;
  h3wt_tls_ctx *tls;
  h3wt_quic_callbacks qcbs;
  h3wt_quic_config qcfg;
  h3wt_h3_callbacks hcbs;
  h3wt_h3_config hcfg;
  h3wt_udp udp;
  h3wt_quic_conn *qc;
  struct sockaddr_storage remote;
  h3wt_driver drv;      /* timer, flush pass, depth: as the server's */
  h3wt_driver_callbacks drvcbs;
  h3wt_drv_item item;   /* the one connection's timer and dirty mark */
  int connected;
  int closed; /* the connection ended (on_closed is called, or was) */
  int close_requested; /* h3wt_client_close(): the flush pass closes */
  int quiet;       /* h3wt_client_del() ran first: no on_closed */
  int del_pending; /* h3wt_client_del() ran while handles were closing */
  int handles;
  int in_quic; /* calls into the QUIC layer (ngtcp2) on the stack */
  int waiting; /* requests wait for stream credit */
  h3wt_list reqs;
  h3wt_wt_limits wt_limits;
  /* Resumption (h3wt_resume.h).  early: 0-RTT is on, until the handshake
     completes; remembered: the saved session's SETTINGS (has_settings). */
  int early;
  unsigned resumption; /* H3WT_RESUMED... */
  h3wt_resume_state saved;
  int settings_checked; /* the resumed server's SETTINGS were compared */
  int offered;          /* a saved session was offered to the server */
  /* The saved session offered, kept whole: saved again as it was when
     no new ticket came (a resumed session without one of its own would
     be refused by the server, fatally), and the tickets counted by the
     end of the handshake (none of them is new). */
  uint8_t *offered_bytes;
  size_t offered_len;
  unsigned tickets_at_handshake;
  /* Streams answered 425, reset after the flush pass has written once
     more: ngtcp2 1.11 drops a RESET_STREAM queued before the client's
     first write after the handshake (conn_retry_early_payloadlen() takes
     every stream without data out of the send queue), and a 0-RTT answer
     arrives in the very read that completes the handshake. */
  int64_t late_reset[8];
  size_t nlate_reset;
};

void h3wt_client_settings_default(h3wt_client_settings *s) {
  memset(s, 0, sizeof(*s));
  s->version = H3WT_CLIENT_SETTINGS_VERSION;
  s->port = 443;
  s->log_level = H3WT_LOG_WARN;
  s->handshake_timeout_ms = 10000;
  s->idle_timeout_ms = 30000;
  s->max_stream_queue = 256 * 1024;
  s->max_session_queue = 1024 * 1024;
  s->wt_session_max_data = 16 * 1024 * 1024;
  s->early_data = 1;
}

/* ---- requests ----------------------------------------------------------- */

static void creq_free(h3wt_client_request *r) {
  for (size_t i = 0; i < r->nrh; ++i) {
    free((void *)r->rh[i].name);
  }
  free(r->rh);
  free(r->hdrs);
  free(r->hdrbuf);
  h3wt_sendq_free(&r->body);
  free(r);
}

#define CREQ_OF(n) h3wt_list_entry(n, h3wt_client_request, node)

static void request_rewind(h3wt_client_request *r);

static void creq_unlink(h3wt_client_request *r) {
  h3wt_list_remove(&r->node);
}

static void creq_finish(h3wt_client_request *r, int err, uint64_t code) {
  creq_unlink(r);
  r->handler->on_close(r, err, code, r->user_data);
  creq_free(r);
}

static void mark_dirty(h3wt_client *cl) {
  h3wt_drv_mark_dirty(&cl->item);
}

static int depth(const h3wt_client *cl) {
  return h3wt_driver_depth(&cl->drv);
}

static int submit(h3wt_client *cl, h3wt_client_request *r) {
  int rv = h3wt_h3_submit_request(cl->owner.h3, r->hdrs, r->nhdrs,
                                  r->has_body || r->session, r,
                                  &r->stream_id);
  if (rv == 0) {
    r->submitted = 1;
    r->early = !cl->connected;
    if (r->early) {
      cl->resumption |= H3WT_EARLY_DATA_SENT;
    }
    if (r->session) {
      h3wt_wt_session_set_stream(r->session, r->stream_id);
    }
    mark_dirty(cl);
  }
  return rv;
}

/* Whether r may be sent in 0-RTT: a safe method without a body (RFC 9114
   10.9: early data can be replayed), or, when the application asked for
   it, a WebTransport CONNECT to a server remembered to take them ("Clients
   cannot initiate WebTransport sessions in 0-RTT packets, as the CONNECT
   method is not considered safe" says the draft; the server decides). */
static int may_go_early(const h3wt_client *cl, const h3wt_client_request *r) {
  if (r->session) {
    const h3wt_peer_fc *pf = &cl->saved.settings;
    return cl->settings.early_connect && cl->saved.has_settings &&
           pf->connect_protocol && pf->h3_datagram && pf->webtransport;
  }
  if (r->has_body || r->nhdrs == 0 || r->hdrs[0].namelen != 7 ||
      memcmp(r->hdrs[0].name, ":method", 7) != 0) {
    return 0;
  }
  const h3wt_header *m = &r->hdrs[0];
  return (m->valuelen == 3 && memcmp(m->value, "GET", 3) == 0) ||
         (m->valuelen == 4 && memcmp(m->value, "HEAD", 4) == 0);
}

/* Queues a request whose field section is fixed[] then headers[], both
   copied (the request may wait for the handshake). */
static int request_send(h3wt_client *cl, const h3wt_header *fixed,
                        size_t nfixed, const h3wt_header *headers,
                        size_t nheaders, const void *body, size_t bodylen,
                        int add_content_length,
                        const h3wt_response_handler *handler, void *user_data,
                        h3wt_session *session, h3wt_client_request **preq) {
  h3wt_client_request *r;
  size_t bytes = 32, off = 0, k = 0;
  char cl_value[24];
  if (!handler || !handler->on_close) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (cl->closed || cl->close_requested ||
      (cl->qc && h3wt_quic_conn_is_closing(cl->qc))) {
    return H3WT_ERR_CLOSED;
  }
  r = calloc(1, sizeof(*r));
  if (!r) {
    return H3WT_ERR_NOMEM;
  }
  h3wt_list_init(&r->node);
  r->client = cl;
  r->handler = handler;
  r->user_data = user_data;
  r->stream_id = -1;
  r->session = session;
  h3wt_sendq_init(&r->body);
  snprintf(cl_value, sizeof(cl_value), "%zu", bodylen);
  for (size_t i = 0; i < nfixed; ++i) {
    bytes += fixed[i].namelen + fixed[i].valuelen + 2;
  }
  for (size_t i = 0; i < nheaders; ++i) {
    bytes += headers[i].namelen + headers[i].valuelen + 2;
  }
  r->hdrbuf = malloc(bytes);
  r->hdrs = calloc(nfixed + nheaders + 1, sizeof(*r->hdrs));
  if (!r->hdrbuf || !r->hdrs) {
    creq_free(r);
    return H3WT_ERR_NOMEM;
  }
  int have_cl = 0;
  for (size_t i = 0; i < nfixed + nheaders + 1; ++i) {
    h3wt_header h;
    if (i < nfixed) {
      h = fixed[i];
    } else if (i < nfixed + nheaders) {
      h = headers[i - nfixed];
    } else if (bodylen && add_content_length && !have_cl) {
      h = (h3wt_header){"content-length", 14, cl_value, strlen(cl_value)};
    } else {
      break;
    }
    if (h.namelen == 14 && memcmp(h.name, "content-length", 14) == 0) {
      have_cl = 1;
    }
    memcpy(r->hdrbuf + off, h.name, h.namelen);
    r->hdrs[k].name = r->hdrbuf + off;
    r->hdrs[k].namelen = h.namelen;
    off += h.namelen;
    r->hdrbuf[off++] = '\0';
    memcpy(r->hdrbuf + off, h.value, h.valuelen);
    r->hdrs[k].value = r->hdrbuf + off;
    r->hdrs[k].valuelen = h.valuelen;
    off += h.valuelen;
    r->hdrbuf[off++] = '\0';
    ++k;
  }
  r->nhdrs = k;
  if (bodylen) {
    if (h3wt_sendq_append(&r->body, body, bodylen) != 0) {
      creq_free(r);
      return H3WT_ERR_NOMEM;
    }
    r->has_body = 1;
  }
  if ((cl->connected || (cl->early && may_go_early(cl, r))) && !cl->waiting) {
    int rv = submit(cl, r);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      /* No stream credit now: queued, sent when the server grants more. */
      cl->waiting = 1;
    } else if (rv != 0) {
      creq_free(r);
      return rv;
    }
  }
  h3wt_list_insert_head(&cl->reqs, &r->node);
  if (preq) {
    *preq = r;
  }
  return 0;
}

int h3wt_client_request_send(h3wt_client *cl, const char *method,
                             const char *path, const h3wt_header *headers,
                             size_t nheaders, const void *body,
                             size_t bodylen,
                             const h3wt_response_handler *handler,
                             void *user_data, h3wt_client_request **preq) {
  if (!method || !path) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  const h3wt_header fixed[] = {
      {":method", 7, method, strlen(method)},
      {":scheme", 7, "https", 5},
      {":authority", 10, cl->host, strlen(cl->host)},
      {":path", 5, path, strlen(path)},
      {"user-agent", 10, "h3wt-client/" H3WT_VERSION,
       sizeof("h3wt-client/" H3WT_VERSION) - 1},
  };
  return request_send(cl, fixed, sizeof(fixed) / sizeof(fixed[0]), headers,
                      nheaders, body, bodylen, 1, handler, user_data, NULL,
                      preq);
}

int h3wt_client_request_send_raw(h3wt_client *cl, const h3wt_header *headers,
                                 size_t nheaders, const void *body,
                                 size_t bodylen,
                                 const h3wt_response_handler *handler,
                                 void *user_data) {
  return request_send(cl, NULL, 0, headers, nheaders, body, bodylen, 0,
                      handler, user_data, NULL, NULL);
}

/* ---- HTTP/3 callbacks (client side) -------------------------------------- */

static int hc_begin_headers(h3wt_h3_conn *h3, int64_t stream_id, void *ud,
                            void *sud, void **psud) {
  *psud = sud;
  return 0;
}

static int hc_recv_header(h3wt_h3_conn *h3, int64_t stream_id,
                          const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen, void *ud,
                          void *sud) {
  h3wt_client_request *r = sud;
  if (!r) {
    return 0;
  }
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
    r->status = 0;
    for (size_t i = 0; i < valuelen && i < 3; ++i) {
      r->status = r->status * 10 + (value[i] - '0');
    }
    return 0;
  }
  return h3wt_headers_append(&r->rh, &r->nrh, &r->rhcap, name, namelen, value,
                             valuelen) == 0
             ? 0
             : -1;
}

static int set_protocol(const char *p, size_t len, void *ud) {
  h3wt_wt_session_set_protocol(ud, p, len);
  return 1; /* one String: stop after it */
}

static int hc_end_headers(h3wt_h3_conn *h3, int64_t stream_id, int fin,
                          void *ud, void *sud) {
  h3wt_client_request *r = sud;
  if (r && r->early && r->status == 425) {
    /* RFC 8470 5.2: "A client that receives a response with a 425 (Too
       Early) status code MAY retry the request after the TLS handshake
       is complete".  The rest of this answer is of no use: the stream is
       reset both ways and let go (its later events find no request), and
       the request goes again from the flush pass, on a new stream,
       outside nghttp3's callbacks. */
    h3wt_client *cl = ud;
    H3WT_LOG(&cl->log, H3WT_LOG_DEBUG, "client",
             "[%s/%lld] 425 Too Early: the request goes again",
             h3wt_quic_conn_name(cl->qc), (long long)stream_id);
    h3wt_h3_set_stream_data(h3, stream_id, NULL);
    if (cl->nlate_reset < sizeof(cl->late_reset) / sizeof(cl->late_reset[0])) {
      cl->late_reset[cl->nlate_reset++] = stream_id;
    } else {
      h3wt_h3_reset_stream(h3, stream_id, H3WT_H3_REQUEST_CANCELLED);
    }
    request_rewind(r);
    cl->waiting = 1;
    mark_dirty(cl);
    return 0;
  }
  if (r && r->session) {
    h3wt_wt_session_set_status(r->session, r->status);
    for (size_t i = 0; i < r->nrh; ++i) {
      if (r->rh[i].namelen == 11 &&
          memcmp(r->rh[i].name, "wt-protocol", 11) == 0) {
        /* The server's choice: one structured-field String. */
        h3wt_sf_string_list_parse(r->rh[i].value, r->rh[i].valuelen,
                                  set_protocol, r->session);
      }
    }
    if (r->status >= 200 && r->status <= 299) {
      h3wt_wt_session_ready(r->session);
    } else {
      h3wt_wt_session_rejected(r->session, r->status);
    }
    return 0;
  }
  if (r && r->handler->on_headers) {
    r->handler->on_headers(r, r->status, r->rh, r->nrh, r->user_data);
  }
  return 0;
}

static int hc_recv_data(h3wt_h3_conn *h3, int64_t stream_id,
                        const uint8_t *data, size_t len, void *ud, void *sud) {
  h3wt_client_request *r = sud;
  if (r && r->session) {
    return h3wt_wt_session_recv(r->session, data, len);
  }
  if (r && r->handler->on_body) {
    r->handler->on_body(r, data, len, r->user_data);
  }
  return 0;
}

static int hc_stream_reset(h3wt_h3_conn *h3, int64_t stream_id, uint64_t code,
                           void *ud, void *sud) {
  h3wt_client *cl = ud;
  h3wt_client_request *r = NULL;
  for (h3wt_list *it = cl->reqs.next; it != &cl->reqs; it = it->next) {
    if (CREQ_OF(it)->stream_id == stream_id) {
      r = CREQ_OF(it);
      break;
    }
  }
  if (r) {
    r->reset_code_set = 1;
    r->reset_code = code;
  }
  return 0;
}

static int hc_stream_close(h3wt_h3_conn *h3, int64_t stream_id, uint64_t code,
                           void *ud, void *sud) {
  h3wt_client_request *r = sud;
  if (!r) {
    return 0;
  }
  if (r->reset_code_set) {
    code = r->reset_code;
  }
  if (r->session) {
    h3wt_wt_session_stream_closed(r->session, code != H3WT_H3_NO_ERROR);
    r->session = NULL;
  }
  int err = (code == H3WT_H3_NO_ERROR && r->status) ? 0 : H3WT_ERR_CLOSED;
  creq_finish(r, err, code);
  return 0;
}

static ssize_t hc_read_body(h3wt_h3_conn *h3, int64_t stream_id, h3wt_vec *vec,
                            size_t veccnt, int *eof, void *ud, void *sud) {
  h3wt_client_request *r = sud;
  if (r->session) {
    return h3wt_wt_session_read_capsules(r->session, vec, veccnt, eof);
  }
  size_t n = h3wt_sendq_read(&r->body, vec, veccnt);
  if (r->body.unread == 0) {
    *eof = 1;
  }
  return (ssize_t)n;
}

static int hc_acked_body(h3wt_h3_conn *h3, int64_t stream_id, uint64_t n,
                         void *ud, void *sud) {
  h3wt_client_request *r = sud;
  if (r && r->session) {
    h3wt_wt_session_capsules_acked(r->session, n);
  } else if (r) {
    h3wt_sendq_ack(&r->body, n);
  }
  return 0;
}

/* Forgets that r was sent (0-RTT rejected, or 425): it waits to be sent
   again.  Only requests without a body go early, so nothing else of it
   was consumed. */
static void request_rewind(h3wt_client_request *r) {
  for (size_t i = 0; i < r->nrh; ++i) {
    free((void *)r->rh[i].name);
  }
  r->nrh = 0;
  r->status = 0;
  r->submitted = 0;
  r->stream_id = -1;
  r->early = 0;
  r->reset_code_set = 0;
}

static int hc_end_stream(h3wt_h3_conn *h3, int64_t stream_id, void *ud,
                         void *sud) {
  h3wt_client_request *r = sud;
  if (r && r->session) {
    h3wt_wt_session_recv_fin(r->session);
  }
  return 0;
}

static void hc_want_write(h3wt_h3_conn *h3, void *ud) {
  mark_dirty(ud);
}

/* Sends queued requests, oldest first, while there is stream credit. */
static void submit_waiting(h3wt_client *cl) {
  cl->waiting = 0;
  /* From the tail: the list is newest first. */
  for (h3wt_list *it = cl->reqs.prev, *prev; it != &cl->reqs; it = prev) {
    h3wt_client_request *r = CREQ_OF(it);
    prev = it->prev;
    if (!r->submitted) {
      int rv = submit(cl, r);
      if (rv == H3WT_ERR_WOULDBLOCK) {
        cl->waiting = 1;
        return;
      }
      if (rv != 0) {
        if (r->session) {
          h3wt_wt_session_rejected(r->session, 0);
          h3wt_wt_session_stream_closed(r->session, 1);
          r->session = NULL;
        }
        creq_finish(r, H3WT_ERR_CLOSED, 0);
      }
    }
  }
}

static void hc_streams_available(h3wt_h3_conn *h3, void *ud) {
  h3wt_client *cl = ud;
  if (cl->connected && cl->waiting) {
    submit_waiting(cl);
  }
}

/* At the end of the handshake: what became of the saved session and of
   what was sent in 0-RTT. */
static void resumption_outcome(h3wt_client *cl) {
  void *ssl = h3wt_quic_conn_tls(cl->qc);
  int was_early = cl->early;
  cl->tickets_at_handshake = h3wt_quic_conn_tickets(cl->qc);
  cl->early = 0;
  if (h3wt_tls_session_reused(ssl)) {
    cl->resumption |= H3WT_RESUMED;
  } else if (cl->offered) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] the server did not resume the saved session: full "
             "handshake", h3wt_quic_conn_name(cl->qc));
  }
  if (!was_early) {
    return;
  }
  if (h3wt_tls_early_data_accepted(ssl)) {
    if (cl->resumption & H3WT_EARLY_DATA_SENT) {
      cl->resumption |= H3WT_EARLY_DATA_ACCEPTED;
    }
    return;
  }
  /* Rejected: QUIC forgets every stream, nghttp3 starts over, and what
     went early is sent again in 1-RTT. */
  H3WT_LOG(&cl->log, H3WT_LOG_INFO, "client",
           "[%s] 0-RTT rejected by the server: requests sent again",
           h3wt_quic_conn_name(cl->qc));
  if (h3wt_quic_conn_early_data_rejected(cl->qc) != 0 ||
      h3wt_h3_restart(cl->owner.h3) != 0) {
    h3wt_h3_request_close(cl->owner.h3, H3WT_H3_INTERNAL_ERROR,
                          "cannot restart after 0-RTT");
    return;
  }
  for (h3wt_list *it = cl->reqs.next; it != &cl->reqs; it = it->next) {
    h3wt_client_request *r = CREQ_OF(it);
    if (r->submitted) {
      request_rewind(r);
    }
  }
}

/* RFC 9114 7.2.4.2 and the draft: after resuming with 0-RTT accepted,
   "A client MUST close the connection with H3_SETTINGS_ERROR if the
   SETTINGS frame received in the resumed connection reduces any flow
   control values from the cached previous values." */
static void check_resumed_settings(h3wt_client *cl) {
  h3wt_peer_fc pf;
  const h3wt_peer_fc *was = &cl->saved.settings;
  if (cl->settings_checked || !(cl->resumption & H3WT_EARLY_DATA_ACCEPTED) ||
      !cl->saved.has_settings || !h3wt_h3_peer_fc(cl->owner.h3, &pf)) {
    return;
  }
  cl->settings_checked = 1;
  if (pf.max_data < was->max_data ||
      pf.max_streams_bidi < was->max_streams_bidi ||
      pf.max_streams_uni < was->max_streams_uni ||
      (was->webtransport && !pf.webtransport) ||
      (was->connect_protocol && !pf.connect_protocol) ||
      (was->h3_datagram && !pf.h3_datagram)) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] the resumed server's SETTINGS reduce what 0-RTT used: "
             "closing", h3wt_quic_conn_name(cl->qc));
    h3wt_h3_request_close(cl->owner.h3, 0x109 /* H3_SETTINGS_ERROR */,
                          "SETTINGS reduced after 0-RTT");
  }
}

static void hc_ready(h3wt_h3_conn *h3, void *ud) {
  h3wt_client *cl = ud;
  resumption_outcome(cl);
  cl->connected = 1;
  /* Requests made before the handshake go out now. */
  submit_waiting(cl);
  if (cl->cbs.on_connected) {
    cl->cbs.on_connected(cl, cl->user_data);
  }
}

/* ---- driving the connection ---------------------------------------------- */

static void client_free(h3wt_client *cl);

/* Around every entry from libuv into the library (see the top of the
   file). */
static void enter(h3wt_client *cl) {
  h3wt_driver_enter(&cl->drv);
}

static void leave(h3wt_client *cl) {
  h3wt_driver_leave(&cl->drv);
}

/* The calls into ngtcp2 that it forbids from inside its own callbacks
   (reading, writing), counted so that debug builds catch a re-entry. */
static h3wt_quic_status quic_read(h3wt_client *cl, const uint8_t *data,
                                  size_t len, const struct sockaddr *remote,
                                  unsigned ecn, uint64_t ts) {
  assert(cl->in_quic == 0);
  ++cl->in_quic;
  h3wt_quic_status st = h3wt_quic_conn_read(
      cl->qc, (const struct sockaddr *)&cl->udp.local, remote, data, len, ecn,
      ts);
  --cl->in_quic;
  return st;
}

static h3wt_quic_status quic_write(h3wt_client *cl) {
  assert(cl->in_quic == 0);
  ++cl->in_quic;
  h3wt_quic_status st = h3wt_quic_conn_write(cl->qc, h3wt_now_ns());
  --cl->in_quic;
  return st;
}

static h3wt_quic_status quic_expiry(h3wt_client *cl) {
  assert(cl->in_quic == 0);
  ++cl->in_quic;
  h3wt_quic_status st =
      h3wt_quic_conn_handle_expiry(cl->qc, h3wt_now_ns());
  --cl->in_quic;
  return st;
}

/* Writes CONNECTION_CLOSE (ngtcp2_conn_write_connection_close). */
static void quic_close(h3wt_client *cl) {
  assert(cl->in_quic == 0);
  ++cl->in_quic;
  h3wt_quic_conn_close(cl->qc, H3WT_H3_NO_ERROR, NULL, h3wt_now_ns());
  --cl->in_quic;
}

static void handle_closed(uv_handle_t *h) {
  h3wt_client *cl = h->data;
  if (--cl->handles == 0 && cl->del_pending) {
    client_free(cl);
  }
}

/* The timer, the driver's handles and the socket. */
static void close_handles(h3wt_client *cl) {
  h3wt_drv_item_close(&cl->item, handle_closed, cl);
  cl->handles = 2 + h3wt_driver_close(&cl->drv, handle_closed, cl);
  h3wt_udp_close(&cl->udp, handle_closed, cl);
}

/* The connection is over: release the handles, fail what is open, tell
   the host.  Only at the top of a library entry: what it frees (requests,
   sessions) must not be in use below. */
static void conn_end(h3wt_client *cl, int err) {
  assert(depth(cl) == 1 && cl->in_quic == 0);
  if (cl->closed) {
    return;
  }
  cl->closed = 1;
  if (cl->close_requested) {
    err = 0; /* the host asked for it; whatever happened meanwhile */
  }
  /* The handles first: from here on h3wt_client_del(), from any callback
     below, waits for libuv to release them. */
  close_handles(cl);
  /* Sessions first: they hear the connection is gone before on_closed. */
  h3wt_wt_conn *wt = cl->owner.h3 ? h3wt_h3_wt(cl->owner.h3) : NULL;
  if (wt) {
    h3wt_wt_conn_lost(wt);
    /* Every CONNECT stream went with the connection.  Saying so lets the
       sessions' memory go now, and tells a session that was closed but
       not yet told (one closed from inside another's on_session_close:
       the WebTransport layer finds it again only when its stream ends). */
    for (h3wt_list *it = cl->reqs.next; it != &cl->reqs; it = it->next) {
      h3wt_client_request *r = CREQ_OF(it);
      if (r->session) {
        h3wt_wt_session_stream_closed(r->session, 1);
        r->session = NULL;
      }
    }
    h3wt_wt_run_deferred(wt);
  }
  while (!h3wt_list_empty(&cl->reqs)) {
    creq_finish(CREQ_OF(cl->reqs.next), err ? err : H3WT_ERR_CLOSED,
                H3WT_H3_REQUEST_CANCELLED);
  }
  if (cl->cbs.on_closed && !cl->quiet) {
    cl->cbs.on_closed(cl, err, cl->user_data);
  }
}

/* Closes now: sends what is queued, then CONNECTION_CLOSE.  Called at the
   top of an entry: the flush pass, or h3wt_client_close() from outside
   any callback. */
static void close_now(h3wt_client *cl) {
  assert(depth(cl) == 1 && cl->in_quic == 0 && cl->close_requested);
  if (cl->closed) {
    return;
  }
  /* Send what is already queued first (a WT_CLOSE_SESSION capsule written
     just before the close, a FIN), so that closing the connection right
     after closing a session does not lose the session's close.  Callbacks
     run here may ask for a close again: it is under way. */
  if (cl->owner.h3 && h3wt_h3_wt(cl->owner.h3)) {
    h3wt_wt_run_deferred(h3wt_h3_wt(cl->owner.h3));
  }
  (void)quic_write(cl);
  quic_close(cl);
  conn_end(cl, 0);
}

static int dead_reason(h3wt_client *cl) {
  return h3wt_quic_conn_end_reason(cl->qc);
}

static void schedule(h3wt_client *cl) {
  h3wt_drv_schedule(&cl->item, h3wt_quic_conn_expiry(cl->qc));
}

/* The connection's timer fired (inside the driver's depth). */
static void on_expired(h3wt_drv_item *it, uint64_t ts, void *ud) {
  h3wt_client *cl = ud;
  if (cl->closed) {
    return;
  }
  if (cl->close_requested) {
    mark_dirty(cl); /* the flush pass closes; nothing else to do */
    return;
  }
  if (quic_expiry(cl) == H3WT_QUIC_DEAD) {
    conn_end(cl, dead_reason(cl));
  } else {
    mark_dirty(cl);
  }
}

/* The flush pass reached the (dirty) connection.  Returns 1 when it has
   more to send. */
static int on_flush(h3wt_drv_item *it, uint64_t ts, void *ud) {
  h3wt_client *cl = ud;
  uint64_t code;
  const char *reason;
  if (cl->closed) {
    return 0;
  }
  /* Close notifications held back so that handlers could close and reset
     from inside callbacks; they may ask for the connection's close. */
  h3wt_wt_run_deferred(h3wt_h3_wt(cl->owner.h3));
  if (cl->connected) {
    check_resumed_settings(cl);
    if (cl->waiting) {
      /* Requests answered 425, or waiting for stream credit. */
      submit_waiting(cl);
    }
  }
  if (h3wt_h3_close_requested(cl->owner.h3, &code, &reason)) {
    /* h3wt_session_close_connection() on one of our sessions. */
    cl->close_requested = 1;
  }
  if (cl->close_requested) {
    close_now(cl);
    return 0;
  }
  h3wt_quic_status st = quic_write(cl);
  if (st == H3WT_QUIC_DEAD) {
    conn_end(cl, dead_reason(cl));
    return 0;
  }
  if (cl->close_requested) {
    close_now(cl);
    return 0;
  }
  if (cl->nlate_reset && cl->connected) {
    /* The write above went past the handshake (see late_reset). */
    for (size_t i = 0; i < cl->nlate_reset; ++i) {
      h3wt_h3_reset_stream(cl->owner.h3, cl->late_reset[i],
                           H3WT_H3_REQUEST_CANCELLED);
    }
    cl->nlate_reset = 0;
    st = H3WT_QUIC_MORE; /* written on the next turn of the pass */
  }
  schedule(cl);
  return st == H3WT_QUIC_MORE;
}

static void on_datagram(h3wt_udp *udp, const struct sockaddr *remote,
                        const uint8_t *data, size_t len, unsigned ecn,
                        uint64_t ts, void *ud) {
  h3wt_client *cl = ud;
  if (cl->closed || cl->close_requested) {
    return; /* closing: the rest of the batch is moot */
  }
  enter(cl);
  if (quic_read(cl, data, len, remote, ecn, ts) == H3WT_QUIC_DEAD) {
    conn_end(cl, dead_reason(cl));
  } else {
    mark_dirty(cl);
  }
  leave(cl);
}

static void q_send(h3wt_quic_conn *qc, const struct sockaddr *remote,
                   const uint8_t *data, size_t len, size_t gso, unsigned ecn,
                   void *ud) {
  h3wt_client *cl = ud;
  h3wt_udp_send(&cl->udp, remote, data, len, gso, ecn);
}

void h3wt_client_close(h3wt_client *cl) {
  if (cl->closed || cl->close_requested) {
    return;
  }
  cl->close_requested = 1;
  if (depth(cl) > 0) {
    /* Inside a callback: ngtcp2 or nghttp3 may be below us, using what
       the close frees, and ngtcp2 forbids writing from there.  The flush
       pass of this loop iteration closes. */
    mark_dirty(cl);
    return;
  }
  enter(cl);
  close_now(cl);
  leave(cl);
}

/* Offers a saved session (h3wt_resume.h) before the first packet is
   written, and turns 0-RTT on when it allows.  Whatever is wrong with it
   is logged and leaves a full handshake. */
static void resume_setup(h3wt_client *cl, const uint8_t *data, size_t len) {
  h3wt_resume_state st;
  const char *name = h3wt_quic_conn_name(cl->qc);
  if (h3wt_resume_decode(data, len, &st) != 0) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] saved session unusable (damaged, cut or of another "
             "version): full handshake", name);
    return;
  }
  if (st.namelen != strlen(cl->sni) ||
      memcmp(st.name, cl->sni, st.namelen) != 0) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] saved session is for server %.*s, not %s: full handshake",
             name, (int)st.namelen, st.name, cl->sni);
    return;
  }
  int early = h3wt_tls_session_resume(h3wt_quic_conn_tls(cl->qc), st.tls,
                                      st.tlslen);
  if (early < 0) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] saved TLS session unusable: full handshake", name);
    return;
  }
  cl->offered = 1;
  cl->offered_bytes = malloc(len);
  if (cl->offered_bytes) {
    memcpy(cl->offered_bytes, data, len);
    cl->offered_len = len;
  }
  cl->saved.has_settings = st.has_settings;
  cl->saved.settings = st.settings;
  if (!early || !cl->settings.early_data || st.paramslen == 0) {
    return;
  }
  /* 0-RTT: the remembered limits bound what goes early, and HTTP/3 must
     be running (its control and QPACK streams go first). */
  if (h3wt_quic_conn_set_0rtt_params(cl->qc, st.params, st.paramslen) != 0 ||
      h3wt_h3_start(cl->owner.h3) != 0) {
    H3WT_LOG(&cl->log, H3WT_LOG_WARN, "client",
             "[%s] saved transport parameters unusable: no 0-RTT", name);
    return;
  }
  cl->early = 1;
}

int h3wt_client_new(h3wt_client **pcl, uv_loop_t *loop,
                    const h3wt_client_settings *s,
                    const h3wt_client_callbacks *cbs, void *user_data) {
  h3wt_client *cl;
  char err[512], port[8];
  struct addrinfo hints, *res = NULL;
  int rv;
  if (!s || !s->host || s->version < 1 ||
      s->version > H3WT_CLIENT_SETTINGS_VERSION) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  cl = calloc(1, sizeof(*cl));
  if (cl) {
    h3wt_list_init(&cl->reqs);
  }
  if (!cl) {
    return H3WT_ERR_NOMEM;
  }
  cl->loop = loop;
  /* An older caller's struct is shorter: only its fields are read. */
  h3wt_client_settings_default(&cl->settings);
  memcpy(&cl->settings, s,
         s->version == H3WT_CLIENT_SETTINGS_V1
             ? offsetof(h3wt_client_settings, max_stream_queue)
         : s->version == H3WT_CLIENT_SETTINGS_V2
             ? offsetof(h3wt_client_settings, wt_session_max_data)
         : s->version == H3WT_CLIENT_SETTINGS_V3
             ? offsetof(h3wt_client_settings, session)
             : sizeof(*s));
  cl->user_data = user_data;
  if (cbs) {
    cl->cbs = *cbs;
  }
  cl->log.cb = s->log_cb;
  cl->log.user_data = s->log_user_data;
  cl->log.level = s->log_level;
  cl->host = strdup(s->host);
  cl->sni = strdup(s->sni ? s->sni : s->host);
  if (!cl->host || !cl->sni) {
    rv = H3WT_ERR_NOMEM;
    goto fail;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  snprintf(port, sizeof(port), "%u", s->port);
  if (getaddrinfo(s->host, port, &hints, &res) != 0 || !res) {
    H3WT_LOG(&cl->log, H3WT_LOG_ERROR, "client", "cannot resolve %s",
             s->host);
    rv = H3WT_ERR_ADDRESS;
    goto fail;
  }
  memcpy(&cl->remote, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);

  h3wt_tls_ctx_opts topts = {0};
  topts.ca_file = s->ca_file;
  topts.insecure = s->insecure;
  topts.keylog_file = s->keylog_file;
  if (h3wt_tls_client_ctx_new(&cl->tls, &topts, err, sizeof(err)) != 0) {
    H3WT_LOG(&cl->log, H3WT_LOG_ERROR, "client", "TLS: %s", err);
    rv = H3WT_ERR_TLS;
    goto fail;
  }
  h3wt_streams_fill_quic_callbacks(&cl->qcbs);
  cl->qcbs.send = q_send;
  cl->qcfg.log = &cl->log;
  cl->qcfg.tls = cl->tls;
  cl->qcfg.cbs = &cl->qcbs;
  cl->qcfg.qlog_dir = s->qlog_dir;
  cl->qcfg.pacing = h3wt_quic_pacing_default();
  cl->qcfg.idle_timeout_ns = s->idle_timeout_ms * 1000000ULL;
  cl->qcfg.handshake_timeout_ns = s->handshake_timeout_ms * 1000000ULL;
  /* WebTransport servers open streams towards us too. */
  cl->qcfg.max_streams_bidi = 100;
  cl->qcfg.max_streams_uni = 100;
  cl->qcfg.max_stream_data = 4 * 1024 * 1024;
  cl->qcfg.max_data = 16 * 1024 * 1024;
  cl->qcfg.max_datagram_frame_size = 65535;
  cl->qcfg.txbuflen = H3WT_QUIC_TXBUF_MIN;
  cl->qcfg.txbuf = malloc(cl->qcfg.txbuflen);
  if (!cl->qcfg.txbuf || h3wt_random(cl->qcfg.static_secret, 32) != 0) {
    rv = H3WT_ERR_NOMEM;
    goto fail;
  }
  cl->hcbs.begin_headers = hc_begin_headers;
  cl->hcbs.recv_header = hc_recv_header;
  cl->hcbs.end_headers = hc_end_headers;
  cl->hcbs.recv_data = hc_recv_data;
  cl->hcbs.stream_close = hc_stream_close;
  cl->hcbs.stream_reset = hc_stream_reset;
  cl->hcbs.read_body = hc_read_body;
  cl->hcbs.acked_body = hc_acked_body;
  cl->hcbs.ready = hc_ready;
  cl->hcbs.end_stream = hc_end_stream;
  cl->hcbs.streams_available = hc_streams_available;
  cl->hcbs.want_write = hc_want_write;
  h3wt_wt_limits_default(&cl->wt_limits);
  if (cl->settings.max_stream_queue) {
    cl->wt_limits.max_stream_queue = cl->settings.max_stream_queue;
  }
  cl->wt_limits.max_session_queue = cl->settings.max_session_queue;
  cl->wt_limits.session_max_data = cl->settings.wt_session_max_data;
  cl->hcfg.wt = &cl->wt_limits;
  cl->hcfg.wt_fc_max_data = cl->settings.wt_session_max_data;
  cl->hcfg.wt_fc_max_streams = cl->wt_limits.max_streams_per_session;
  cl->hcfg.log = &cl->log;
  cl->hcfg.cbs = &cl->hcbs;
  cl->hcfg.max_field_section_size = 64 * 1024;

  struct sockaddr_storage any;
  memset(&any, 0, sizeof(any));
  if (cl->remote.ss_family == AF_INET6) {
    uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
  } else {
    uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
  }
  rv = h3wt_udp_open(&cl->udp, loop, (struct sockaddr *)&any, &cl->log,
                     on_datagram, cl);
  if (rv != 0) {
    goto fail;
  }
  cl->drvcbs.flush = on_flush;
  cl->drvcbs.expired = on_expired;
  h3wt_driver_init(&cl->drv, loop, &cl->drvcbs, cl, 0);
  h3wt_drv_item_init(&cl->drv, &cl->item, cl);
  /* The handshake starts here (ngtcp2 calls back into TLS): an entry like
     the others. */
  enter(cl);
  rv = h3wt_quic_conn_client_new(&cl->qc, &cl->qcfg,
                                 (struct sockaddr *)&cl->udp.local,
                                 (struct sockaddr *)&cl->remote, cl->sni,
                                 h3wt_now_ns(), cl);
  if (rv == 0) {
    rv = h3wt_streams_conn_new(&cl->owner.h3, &cl->hcfg, cl->qc, 0, cl);
  }
  if (rv == 0 && s->version >= H3WT_CLIENT_SETTINGS_V4 && s->session) {
    resume_setup(cl, s->session, s->session_len);
  }
  /* The caller's bytes are not kept. */
  cl->settings.session = NULL;
  cl->settings.session_len = 0;
  leave(cl);
  if (rv != 0) {
    /* The UDP handle is closing: the memory must outlive the close, so
       the client is parked as closed rather than freed, and
       h3wt_client_del() waits for the handle like after on_closed. */
    close_handles(cl);
    cl->closed = 1;
    *pcl = cl;
    return rv;
  }
  mark_dirty(cl);
  *pcl = cl;
  return 0;
fail:
  h3wt_tls_ctx_del(cl->tls);
  free(cl->qcfg.txbuf);
  free(cl->host);
  free(cl->sni);
  free(cl);
  return rv;
}

void h3wt_client_del(h3wt_client *cl) {
  if (!cl) {
    return;
  }
  cl->del_pending = 1;
  if (!cl->closed) {
    /* Still open (a callback, say, frees its client): close first,
       without on_closed; the memory goes with the handles below. */
    cl->quiet = 1;
    h3wt_client_close(cl);
    return;
  }
  if (cl->handles > 0) {
    /* Called from on_closed (or right after it): libuv still holds the
       handles inside cl until their close callbacks run. */
    return;
  }
  client_free(cl);
}

static void client_free(h3wt_client *cl) {
  /* Only from outside every callback: handle close callbacks run from
     libuv directly, and handles are closed by the time anyone else
     frees. */
  assert(cl->in_quic == 0 && cl->handles == 0);
  while (!h3wt_list_empty(&cl->reqs)) {
    h3wt_client_request *r = CREQ_OF(cl->reqs.next);
    creq_unlink(r);
    creq_free(r);
  }
  h3wt_streams_conn_del(cl->owner.h3);
  h3wt_quic_conn_del(cl->qc);
  h3wt_tls_ctx_del(cl->tls);
  free(cl->qcfg.txbuf);
  free(cl->host);
  free(cl->sni);
  free(cl->offered_bytes);
  free(cl);
}

/* ---- WebTransport --------------------------------------------------------- */

static void wt_request_close(h3wt_client_request *r, int err, uint64_t code,
                             void *ud) {
  /* The session learnt its end through the WebTransport layer. */
}

static const h3wt_response_handler wt_request_handler = {NULL, NULL,
                                                         wt_request_close};

int h3wt_client_webtransport_versioned(h3wt_client *cl, const char *path,
                                       const char *origin,
                                       const h3wt_header *headers,
                                       size_t nheaders, int handler_version,
                                       const h3wt_session_handler *handler,
                                       void *route_data, h3wt_session **ps) {
  h3wt_client_request *r;
  h3wt_session *s;
  h3wt_session_handler full;
  size_t hsize = h3wt_session_handler_size(handler_version);
  if (!path || path[0] != '/' || !handler || !hsize ||
      (nheaders && !headers)) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  /* The caller's struct may be an older, shorter one: widen it. */
  memset(&full, 0, sizeof(full));
  memcpy(&full, handler, hsize);
  handler = &full;
  for (size_t i = 0; i < nheaders; ++i) {
    /* RFC 9114 4.3: pseudo-header fields after a regular one make the
       request malformed; the CONNECT's own are set below. */
    if (headers[i].namelen == 0 || headers[i].name[0] == ':') {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
  }
  h3wt_wt_conn *wt = h3wt_client_wt(cl);
  if (!wt || cl->closed || cl->close_requested) {
    return H3WT_ERR_CLOSED;
  }
  /* RFC 9220 and the draft: :protocol, and Chrome's draft-02 marker so
     servers of that vintage answer too. */
  const h3wt_header fixed[] = {
      {":method", 7, "CONNECT", 7},
      {":protocol", 9, "webtransport", 12},
      {":scheme", 7, "https", 5},
      {":authority", 10, cl->host, strlen(cl->host)},
      {":path", 5, path, strlen(path)},
      {"sec-webtransport-http3-draft02", 30, "1", 1},
      {"origin", 6, origin ? origin : "", origin ? strlen(origin) : 0},
  };
  size_t nfixed = sizeof(fixed) / sizeof(fixed[0]) - (origin ? 0 : 1);
  int rv = h3wt_wt_session_new(wt, -1, handler, route_data, path, cl->host,
                               origin, &s);
  if (rv != 0) {
    return rv;
  }
  rv = request_send(cl, fixed, nfixed, headers, nheaders, NULL, 0, 0,
                    &wt_request_handler, NULL, s, &r);
  if (rv != 0) {
    /* Never on the wire: nothing to tell the handler. */
    h3wt_wt_session_discard(s);
    return rv;
  }
  if (ps) {
    *ps = s;
  }
  return 0;
}

struct h3wt_wt_conn *h3wt_client_wt(h3wt_client *cl) {
  return cl->owner.h3 ? h3wt_h3_wt(cl->owner.h3) : NULL;
}

/* ---- resumption ---------------------------------------------------------- */

int h3wt_client_session_save(h3wt_client *cl, uint8_t *buf, size_t buflen,
                             size_t *len) {
  h3wt_resume_state st;
  uint8_t *der = NULL, params[H3WT_RESUME_MAX_PARAMS];
  size_t derlen = 0, need;
  ssize_t n;
  int rv = 0;
  if (!cl || !len) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  *len = 0;
  if (cl->qc && cl->connected &&
      h3wt_quic_conn_tickets(cl->qc) == cl->tickets_at_handshake &&
      cl->offered_bytes) {
    /* No ticket of this connection's own (the server sends it after the
       handshake: a connection closed at once, as after a 0-RTT answer,
       has none): the one it came with is still good. */
    *len = cl->offered_len;
    if (!buf || buflen < cl->offered_len) {
      return buf ? H3WT_ERR_TOO_LARGE : 0;
    }
    memcpy(buf, cl->offered_bytes, cl->offered_len);
    return 0;
  }
  if (!cl->qc || !cl->connected ||
      h3wt_quic_conn_tickets(cl->qc) == cl->tickets_at_handshake ||
      h3wt_tls_session_export(h3wt_quic_conn_tls(cl->qc), &der, &derlen) != 0) {
    return H3WT_ERR_INVALID_STATE;
  }
  memset(&st, 0, sizeof(st));
  st.name = cl->sni;
  st.namelen = strlen(cl->sni);
  st.tls = der;
  st.tlslen = derlen;
  n = h3wt_quic_conn_handshake_done(cl->qc)
          ? h3wt_quic_conn_get_0rtt_params(cl->qc, params, sizeof(params))
          : -1;
  if (n > 0) {
    st.params = params;
    st.paramslen = (size_t)n;
  }
  st.has_settings = cl->owner.h3 && h3wt_h3_peer_fc(cl->owner.h3, &st.settings);
  need = h3wt_resume_encoded_len(&st);
  if (need == 0) {
    rv = H3WT_ERR_TOO_LARGE;
  } else if (!buf || buflen < need) {
    *len = need;
    rv = buf ? H3WT_ERR_TOO_LARGE : 0;
  } else {
    *len = h3wt_resume_encode(&st, buf, buflen);
    rv = *len ? 0 : H3WT_ERR_NOMEM;
  }
  free(der);
  return rv;
}

unsigned h3wt_client_resumption(const h3wt_client *cl) {
  return cl ? cl->resumption : 0;
}
