/*
 * h3wt_server: the server facade.  It owns the routes, the requests in
 * flight and the WebTransport sessions, the drain, and the counters; the
 * QUIC endpoint under it (h3wt_endpoint) owns the socket, the connections
 * and the flush pass.  Each connection's HTTP/3 layer is made here and
 * hangs its requests off a srv_conn.
 */
#include "h3wt_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_endpoint.h"
#include "h3wt_h3.h"
#include "h3wt_list.h"
#include "h3wt_post.h"
#include "h3wt_quic.h"
#include "h3wt_router.h"
#include "h3wt_static.h"
#include "h3wt_streams.h"
#include "h3wt_tls.h"
#include "h3wt_udp.h"
#include "h3wt_wt.h"

typedef struct srv_conn srv_conn;

struct h3wt_request {
  h3wt_server *server;
  srv_conn *conn;
  int64_t stream_id;
  const h3wt_route *route;
  const h3wt_request_handler *handler;
  void *route_data;
  void *user_data;
  h3wt_list node; /* in conn->requests */
  /* Request fields: the pseudo-headers in one block (pseudo, below) as
     far as they fit, the headers each in its own allocation. */
  char *method, *path, *authority, *scheme, *protocol;
  char *pseudo; /* PSEUDO_BLOCK bytes, or NULL */
  size_t pseudo_used;
  h3wt_header *headers;
  size_t nheaders, headers_cap;
  uint64_t header_bytes;
  int64_t content_length;
  uint64_t body_received;
  /* Response. */
  h3wt_sendq sendq;
  int responded;     /* headers submitted */
  int ended;         /* body complete (h3wt_request_end or respond) */
  int want_writable; /* a write returned WOULDBLOCK */
  int head;          /* HEAD: never send a body */
  int discard_body;  /* stop_reading: ignore body bytes */
  int too_large_hdr; /* field section over max_header_bytes */
  int dispatched;
  int bad; /* malformed pseudo-headers */
  h3wt_session *session; /* an extended CONNECT for WebTransport */
  int wt_accepted;       /* the CONNECT stream now carries capsules */
};

typedef struct wt_route {
  char *path;
  h3wt_session_handler handler; /* the caller's, widened to this version */
  void *data;
} wt_route;

/* What the facade keeps per connection (the endpoint's conn->data). */
struct srv_conn {
  h3wt_ep_conn *ep; /* its HTTP/3 layer and QUIC connection */
  h3wt_server *server;
  int keep_alive; /* PINGs on: it carries WebTransport sessions */
  h3wt_list requests;
};

#define H3C(c) ((c)->ep->owner.h3)
#define QCC(c) ((c)->ep->qc)

struct h3wt_server {
  uv_loop_t *loop;
  h3wt_server_settings settings;
  char *strings[8]; /* copies of the settings' strings */
  h3wt_logger log;
  h3wt_tls_ctx *tls;
  h3wt_quic_callbacks qcbs;
  h3wt_quic_config qcfg;
  h3wt_h3_callbacks hcbs;
  h3wt_h3_config hcfg;
  h3wt_endpoint *ep;
  h3wt_ep_callbacks epcbs;
  int listening;
  h3wt_mailbox mailbox; /* h3wt_server_post() */
  int mailbox_open;     /* from h3wt_server_listen() to the close */
  h3wt_router router;
  wt_route *wt_routes;
  size_t nwt_routes;
  h3wt_wt_limits wt_limits;
  h3wt_wt_stats wt_stats; /* every connection's WebTransport counters */
  h3wt_wt_registry sessions; /* every session, by h3wt_session_id() */
  h3wt_request_handler **rhandlers; /* copies of the routes' handlers */
  size_t nrhandlers;
  h3wt_server_stats stats; /* the rest of h3wt_server_get_stats() */
  h3wt_static_mount **mounts;
  size_t nmounts;
  h3wt_static_cache *static_cache; /* shared by the mounts */
  char altsvc[32];
  int closing;
  int draining;           /* h3wt_server_shutdown(): winding down */
  int drain_timer_inited; /* drain_timer needs closing */
  uv_timer_t drain_timer;
  int pending_closes;
  h3wt_server_close_cb close_cb;
  void *close_ud;
  /* Calls from inside callbacks that would free connections or write
     packets under ngtcp2's feet: recorded while the endpoint's depth > 0
     and run by on_settled() once the outermost entry from libuv returns
     (libuv's uv_close runs its callback later for the same reason). */
  int close_deferred;    /* h3wt_server_close() asked for */
  int shutdown_deferred; /* h3wt_server_shutdown() asked for */
  uint64_t shutdown_timeout_ms;
  uint32_t shutdown_code;   /* sessions still open at the deadline */
  char *shutdown_reason;
};

static void drain_check(h3wt_server *srv);
static void server_close_now(h3wt_server *srv);
static void server_shutdown_now(h3wt_server *srv);

static void conn_mark_dirty(srv_conn *c) {
  h3wt_ep_mark_dirty(c->ep);
}

static int in_callback(const h3wt_server *srv) {
  return srv->ep && h3wt_ep_depth(srv->ep) > 0;
}

/* The endpoint's depth is back at 0: no ngtcp2 or nghttp3 call is on the
   stack, so what callbacks asked for can be done. */
static void on_settled(void *ud) {
  h3wt_server *srv = ud;
  if (srv->close_deferred) {
    srv->close_deferred = 0;
    srv->shutdown_deferred = 0;
    server_close_now(srv);
  } else if (srv->shutdown_deferred) {
    srv->shutdown_deferred = 0;
    server_shutdown_now(srv);
  }
}

/* ---- settings ----------------------------------------------------------- */

void h3wt_server_settings_default(h3wt_server_settings *s) {
  memset(s, 0, sizeof(*s));
  s->version = H3WT_SERVER_SETTINGS_VERSION;
  s->host = "::";
  s->port = 4433;
  s->server_name = "h3wt/" H3WT_VERSION;
  s->log_level = H3WT_LOG_INFO;
  s->max_request_body = 1024 * 1024;
  s->max_header_bytes = 16 * 1024;
  s->max_connections = 10000;
  s->max_streams_bidi = 100;
  s->idle_timeout_ms = 30000;
  s->max_response_queue = 256 * 1024;
  s->max_sessions_per_conn = 16;
  s->max_streams_per_session = 256;
  s->max_stream_queue = 256 * 1024;
  s->max_datagram_queue = 256;
  s->max_handshakes_per_addr = 100;
  s->max_session_queue = 1024 * 1024;
  s->keep_alive_ms = 5000;
  s->liveness_timeout_ms = 15000;
  s->orphan_stream_timeout_ms = 1000;
  s->max_unvalidated_handshakes = 1000;
  s->wt_session_max_data = 16 * 1024 * 1024;
  s->early_data = 1;
}

const h3wt_logger *h3wt_server_logger(const h3wt_server *server) {
  return &server->log;
}
uv_loop_t *h3wt_server_loop(const h3wt_server *server) {
  return server->loop;
}
size_t h3wt_server_response_queue_limit(const h3wt_server *server) {
  return server->settings.max_response_queue;
}

/* ---- requests ----------------------------------------------------------- */

/* The pseudo-headers of a request share one block of this size (one
   allocation instead of four, about the same bytes as the four made); a
   value that does not fit (a long :path) gets its own. */
#define PSEUDO_BLOCK 128

static char *pseudo_copy(h3wt_request *req, const uint8_t *value,
                         size_t len) {
  if (!req->pseudo && len < PSEUDO_BLOCK) {
    req->pseudo = malloc(PSEUDO_BLOCK);
    if (!req->pseudo) {
      return NULL;
    }
  }
  if (req->pseudo && len < PSEUDO_BLOCK - req->pseudo_used) {
    char *p = req->pseudo + req->pseudo_used;
    memcpy(p, value, len);
    p[len] = '\0';
    req->pseudo_used += len + 1;
    return p;
  }
  return strndup((const char *)value, len);
}

static void pseudo_free(h3wt_request *req, char *p) {
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)req->pseudo;
  if (p && !(req->pseudo && a >= b && a < b + PSEUDO_BLOCK)) {
    free(p);
  }
}

static void request_free(h3wt_request *req) {
  assert(!h3wt_list_linked(&req->node) && !req->session);
  for (size_t i = 0; i < req->nheaders; ++i) {
    free((void *)req->headers[i].name);
  }
  free(req->headers);
  pseudo_free(req, req->method);
  pseudo_free(req, req->path);
  pseudo_free(req, req->authority);
  pseudo_free(req, req->scheme);
  pseudo_free(req, req->protocol);
  free(req->pseudo);
  h3wt_sendq_free(&req->sendq);
  free(req);
}

static void request_unlink(h3wt_request *req) {
  h3wt_list_remove(&req->node);
}

/* Ends a request: tells the handler, then frees it. */
static void request_finish(h3wt_request *req, uint64_t code) {
  request_unlink(req);
  if (req->dispatched && req->handler->on_close) {
    req->handler->on_close(req, code, req->route_data);
  }
  request_free(req);
}

const char *h3wt_request_method(const h3wt_request *req) {
  return req->method;
}
const char *h3wt_request_path(const h3wt_request *req) {
  return req->path;
}
const char *h3wt_request_authority(const h3wt_request *req) {
  return req->authority ? req->authority : "";
}
const char *h3wt_request_scheme(const h3wt_request *req) {
  return req->scheme ? req->scheme : "";
}
const char *h3wt_request_header(const h3wt_request *req, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < req->nheaders; ++i) {
    if (req->headers[i].namelen == nl &&
        memcmp(req->headers[i].name, name, nl) == 0) {
      return req->headers[i].value;
    }
  }
  return NULL;
}
size_t h3wt_request_headers(const h3wt_request *req,
                            const h3wt_header **headers) {
  *headers = req->headers;
  return req->nheaders;
}
int64_t h3wt_request_content_length(const h3wt_request *req) {
  return req->content_length;
}
const struct sockaddr *h3wt_request_peer(const h3wt_request *req) {
  return h3wt_quic_conn_remote(QCC(req->conn));
}
int64_t h3wt_request_stream_id(const h3wt_request *req) {
  return req->stream_id;
}
void h3wt_request_set_data(h3wt_request *req, void *data) {
  req->user_data = data;
}
void *h3wt_request_get_data(const h3wt_request *req) {
  return req->user_data;
}
h3wt_server *h3wt_request_server(const h3wt_request *req) {
  return req->server;
}
uint64_t h3wt_request_queued(const h3wt_request *req) {
  return req->sendq.unacked;
}
h3wt_static_cache *h3wt_server_static_cache(const h3wt_server *server) {
  return server->static_cache;
}


/* Submits the response headers: :status, server, alt-svc, content-length
   (when known and not given), then the handler's. */
static const char *log_path(const h3wt_server *srv, const char *path,
                            char *buf, size_t buflen);

static int submit_headers(h3wt_request *req, int status,
                          const h3wt_header *headers, size_t n,
                          int64_t content_length, int has_body) {
  h3wt_server *srv = req->server;
  char st[8], cl[24];
  h3wt_header stackbuf[24];
  h3wt_header *all;
  size_t k = 0;
  int rv, have_cl = 0;
  if (req->responded) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!req->conn || status < 100 || status > 999) {
    return req->conn ? H3WT_ERR_INVALID_ARGUMENT : H3WT_ERR_CLOSED;
  }
  for (size_t i = 0; i < n; ++i) {
    if (headers[i].namelen == 14 &&
        memcmp(headers[i].name, "content-length", 14) == 0) {
      have_cl = 1;
    }
  }
  all = n + 4 <= 24 ? stackbuf : malloc((n + 4) * sizeof(*all));
  if (!all) {
    return H3WT_ERR_NOMEM;
  }
  /* status is 100..999: three digits (snprintf cost more than the rest
     of this function). */
  st[0] = (char)('0' + status / 100);
  st[1] = (char)('0' + status / 10 % 10);
  st[2] = (char)('0' + status % 10);
  st[3] = '\0';
  all[k++] = (h3wt_header){":status", 7, st, 3};
  all[k++] = (h3wt_header){"server", 6, srv->settings.server_name,
                           strlen(srv->settings.server_name)};
  all[k++] = (h3wt_header){"alt-svc", 7, srv->altsvc, strlen(srv->altsvc)};
  if (content_length >= 0 && !have_cl) {
    all[k++] = (h3wt_header){"content-length", 14, cl,
                             h3wt_u64_dec((uint64_t)content_length, cl)};
  }
  if (n) {
    memcpy(all + k, headers, n * sizeof(*headers));
    k += n;
  }
  rv = h3wt_h3_submit_response(H3C(req->conn), req->stream_id, all, k,
                               has_body && !req->head);
  if (all != stackbuf) {
    free(all);
  }
  if (rv == 0) {
    uint64_t *cls[] = {NULL,
                       NULL,
                       &srv->stats.responses_2xx,
                       &srv->stats.responses_3xx,
                       &srv->stats.responses_4xx,
                       &srv->stats.responses_5xx};
    if (status / 100 < 6 && cls[status / 100]) {
      ++*cls[status / 100];
    }
    req->responded = 1;
    if (!has_body || req->head) {
      req->ended = 1;
    }
    char lp[256];
    H3WT_LOG(&srv->log, H3WT_LOG_INFO, "router", "[%s/%" PRId64 "] %s %s %d",
             h3wt_quic_conn_name(QCC(req->conn)), req->stream_id,
             req->method ? req->method : "-",
             log_path(srv, req->path, lp, sizeof(lp)), status);
    conn_mark_dirty(req->conn);
  }
  return rv;
}

int h3wt_request_respond(h3wt_request *req, int status,
                         const h3wt_header *headers, size_t nheaders,
                         const void *body, size_t bodylen) {
  int rv;
  if (req->responded) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (bodylen && !req->head) {
    rv = h3wt_sendq_append(&req->sendq, body, bodylen);
    if (rv != 0) {
      return rv;
    }
  }
  rv = submit_headers(req, status, headers, nheaders, (int64_t)bodylen,
                      bodylen > 0);
  if (rv != 0) {
    h3wt_sendq_free(&req->sendq);
    return rv;
  }
  req->ended = 1;
  return 0;
}

int h3wt_request_respond_owned(h3wt_request *req, int status,
                               const h3wt_header *headers, size_t nheaders,
                               void *data, size_t len,
                               void (*free_cb)(void *, void *),
                               void *user_data) {
  int body = len > 0 && !req->head;
  /* Headers first: nghttp3 reads the body only in a later write pass, and
     a failure here leaves data with the caller, untouched. */
  int rv = submit_headers(req, status, headers, nheaders, (int64_t)len, body);
  if (rv != 0) {
    if (rv == H3WT_ERR_NOMEM) {
      h3wt_request_reset(req, 0x102 /* H3_INTERNAL_ERROR */);
    }
    return rv;
  }
  req->ended = 1;
  if (!body) {
    if (free_cb) {
      free_cb(data, user_data);
    }
    return 0;
  }
  rv = h3wt_sendq_append_owned(&req->sendq, data, len, free_cb, user_data);
  if (rv != 0) {
    /* Headers promised a body that will not come. */
    h3wt_request_reset(req, 0x102 /* H3_INTERNAL_ERROR */);
  }
  return rv;
}

int h3wt_request_respond_start(h3wt_request *req, int status,
                               const h3wt_header *headers, size_t nheaders) {
  return submit_headers(req, status, headers, nheaders, -1, 1);
}

static int write_check(h3wt_request *req) {
  if (!req->responded || req->ended) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!req->conn) {
    return H3WT_ERR_CLOSED;
  }
  if (req->sendq.unacked >= req->server->settings.max_response_queue) {
    req->want_writable = 1;
    ++req->server->stats.limit_max_response_queue;
    return H3WT_ERR_WOULDBLOCK;
  }
  return 0;
}

static void write_done(h3wt_request *req) {
  h3wt_h3_resume(H3C(req->conn), req->stream_id);
  conn_mark_dirty(req->conn);
}

int h3wt_request_write(h3wt_request *req, const void *data, size_t len) {
  int rv = write_check(req);
  if (rv != 0) {
    return rv;
  }
  if (req->head || len == 0) {
    return 0;
  }
  rv = h3wt_sendq_append(&req->sendq, data, len);
  if (rv == 0) {
    write_done(req);
  }
  return rv;
}

int h3wt_request_write_owned(h3wt_request *req, void *data, size_t len,
                             void (*free_cb)(void *data, void *user_data),
                             void *user_data) {
  int rv = write_check(req);
  if (rv != 0) {
    return rv;
  }
  if (req->head || len == 0) {
    if (free_cb) {
      free_cb(data, user_data);
    }
    return 0;
  }
  rv = h3wt_sendq_append_owned(&req->sendq, data, len, free_cb, user_data);
  if (rv == 0) {
    write_done(req);
  }
  return rv;
}

int h3wt_request_end(h3wt_request *req) {
  if (!req->responded || req->ended) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!req->conn) {
    return H3WT_ERR_CLOSED;
  }
  req->ended = 1;
  write_done(req);
  return 0;
}

void h3wt_request_stop_reading(h3wt_request *req) {
  if (req->discard_body || !req->conn) {
    return;
  }
  req->discard_body = 1;
  h3wt_h3_stop_reading(H3C(req->conn), req->stream_id);
  conn_mark_dirty(req->conn);
}

void h3wt_request_reset(h3wt_request *req, uint64_t h3_error_code) {
  if (!req->conn) {
    return;
  }
  h3wt_h3_reset_stream(H3C(req->conn), req->stream_id, h3_error_code);
  conn_mark_dirty(req->conn);
}

/* A response the library makes itself (404, 405, 413, 431, 400). */
static void respond_error(h3wt_request *req, int status, const char *extra_name,
                          const char *extra_value) {
  char body[128];
  h3wt_header hdrs[2];
  size_t n = 0;
  int len = snprintf(body, sizeof(body), "%d %s\n", status,
                     h3wt_status_text(status));
  hdrs[n++] = (h3wt_header){"content-type", 12, "text/plain; charset=utf-8",
                            25};
  if (extra_name) {
    hdrs[n++] = (h3wt_header){extra_name, strlen(extra_name), extra_value,
                              strlen(extra_value)};
  }
  h3wt_request_respond(req, status, hdrs, n, body, (size_t)len);
}

/* ---- HTTP/3 callbacks (server side) -------------------------------------- */

/* A handshake completed: count what it did with tickets and 0-RTT. */
static void hs_handshake_done(h3wt_h3_conn *h3, void *ud) {
  srv_conn *c = ud;
  void *ssl = h3wt_quic_conn_tls(h3wt_h3_quic(h3));
  int early = h3wt_tls_early_data_status(ssl);
  int resumed = h3wt_tls_session_reused(ssl);
  if (resumed) {
    ++c->server->stats.handshakes_resumed;
  }
  if (early == 2 && resumed) {
    ++c->server->stats.early_data_accepted;
  } else if (early != 0) {
    ++c->server->stats.early_data_rejected;
  }
}

static int hs_begin_headers(h3wt_h3_conn *h3, int64_t stream_id, void *ud,
                            void *sud, void **psud) {
  srv_conn *c = ud;
  h3wt_request *req = calloc(1, sizeof(*req));
  if (!req) {
    return -1;
  }
  req->server = c->server;
  req->conn = c;
  req->stream_id = stream_id;
  ++c->server->stats.requests_total;
  req->content_length = -1;
  h3wt_sendq_init(&req->sendq);
  h3wt_list_insert_head(&c->requests, &req->node);
  *psud = req;
  return 0;
}

static int set_pseudo(h3wt_request *req, char **field, const uint8_t *value,
                      size_t len) {
  if (*field) {
    req->bad = 1; /* RFC 9114 4.3: each pseudo-header at most once */
    return 0;
  }
  *field = pseudo_copy(req, value, len);
  return *field ? 0 : -1;
}

static int hs_recv_header(h3wt_h3_conn *h3, int64_t stream_id,
                          const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen, void *ud,
                          void *sud) {
  h3wt_request *req = sud;
  srv_conn *c = ud;
  if (!req) {
    return 0; /* trailers of a stream we no longer track */
  }
  /* RFC 9114 4.2.2: the size of a field is its name and value plus 32. */
  req->header_bytes += namelen + valuelen + 32;
  if (req->header_bytes > c->server->settings.max_header_bytes) {
    req->too_large_hdr = 1;
    return 0; /* keep nothing more; answered with 431 */
  }
  if (namelen && name[0] == ':') {
#define PSEUDO(N, F)                                                           \
  if (namelen == sizeof(N) - 1 && memcmp(name, N, namelen) == 0) {             \
    return set_pseudo(req, &req->F, value, valuelen);                          \
  }
    PSEUDO(":method", method)
    PSEUDO(":path", path)
    PSEUDO(":authority", authority)
    PSEUDO(":scheme", scheme)
    PSEUDO(":protocol", protocol)
#undef PSEUDO
    req->bad = 1; /* an unknown pseudo-header makes it malformed */
    return 0;
  }
  if (h3wt_headers_append(&req->headers, &req->nheaders, &req->headers_cap,
                          name, namelen, value, valuelen) != 0) {
    return -1;
  }
  if (namelen == 14 && memcmp(name, "content-length", 14) == 0) {
    char *end;
    unsigned long long v =
        strtoull(req->headers[req->nheaders - 1].value, &end, 10);
    if (*end != '\0' || valuelen == 0 || valuelen > 19) {
      req->bad = 1;
    } else {
      req->content_length = (int64_t)v;
    }
  }
  return 0;
}

/* The path for the log: query values may carry tokens, so unless the
   settings say otherwise each is shown as "...". */
static const char *log_path(const h3wt_server *srv, const char *path,
                            char *buf, size_t buflen) {
  const char *q = path ? strchr(path, '?') : NULL;
  size_t k = 0;
  if (!path) {
    return "-";
  }
  if (!q || srv->settings.log_full_paths) {
    return path;
  }
  for (const char *p = path; *p && k + 5 < buflen; ++p) {
    buf[k++] = *p;
    if (p >= q && *p == '=') {
      memcpy(buf + k, "...", 3);
      k += 3;
      p += strcspn(p + 1, "&#");
    }
  }
  buf[k] = '\0';
  return buf;
}

/* The answer to a session request (status < 200 or > 299 rejects). */
static int session_answer(h3wt_request *req, h3wt_session *s, int status,
                          const h3wt_header *extra, size_t nextra) {
  h3wt_server *srv = req->server;
  char lp[256];
  h3wt_wt_session_set_answered(s);
  h3wt_wt_session_set_pending(s, 0);
  if (status < 200 || status > 299) {
    H3WT_LOG(&srv->log, H3WT_LOG_INFO, "wt",
             "[%s/%" PRId64 "] session to %s rejected: %d",
             h3wt_quic_conn_name(QCC(req->conn)), req->stream_id,
             log_path(srv, req->path, lp, sizeof(lp)), status);
    ++srv->stats.sessions_rejected;
    if (status == 403) {
      ++srv->stats.sessions_rejected_403;
    } else if (status == 404) {
      ++srv->stats.sessions_rejected_404;
    } else if (status == 429) {
      ++srv->stats.sessions_rejected_429;
    } else {
      ++srv->stats.sessions_rejected_other;
    }
    /* req->session stays: the CONNECT stream's close frees it. */
    h3wt_wt_session_rejected(s, status);
    h3wt_request_stop_reading(req);
    if (status >= 400 && status <= 599 && nextra) {
      return h3wt_request_respond(req, status, extra, nextra, NULL, 0);
    }
    respond_error(req, status >= 400 && status <= 599 ? status : 500, NULL,
                  NULL);
    return 0;
  }
  h3wt_header stackh[16], *h = stackh;
  size_t n = 0;
  char proto[300];
  if (nextra + 2 > sizeof(stackh) / sizeof(stackh[0])) {
    h = malloc((nextra + 2) * sizeof(*h));
    if (!h) {
      return H3WT_ERR_NOMEM;
    }
  }
  /* Chrome's draft-02 path waits for this answer header. */
  const char *d02 = h3wt_session_header(s, "sec-webtransport-http3-draft02");
  if (d02 && strcmp(d02, "1") == 0) {
    h[n++] = (h3wt_header){"sec-webtransport-http3-draft", 28, "draft02", 7};
  }
  const char *chosen = h3wt_session_protocol(s);
  if (chosen) {
    /* WT-Protocol is a structured-field string. */
    size_t plen = h3wt_sf_string_encode(proto, sizeof(proto), chosen);
    if (plen) {
      h[n++] = (h3wt_header){"wt-protocol", 11, proto, plen};
    }
  }
  for (size_t i = 0; i < nextra; ++i) {
    h[n++] = extra[i];
  }
  req->wt_accepted = 1;
  int rv = submit_headers(req, status, h, n, -1, 1);
  if (h != stackh) {
    free(h);
  }
  if (rv != 0) {
    req->wt_accepted = 0;
    h3wt_wt_session_rejected(s, 500);
    h3wt_request_reset(req, H3WT_H3_INTERNAL_ERROR);
    return rv;
  }
  h3wt_wt_session_ready(s);
  return 0;
}

/* An extended CONNECT (RFC 9220): a WebTransport session request. */
static void dispatch_connect(h3wt_request *req) {
  h3wt_server *srv = req->server;
  h3wt_wt_conn *wt = h3wt_h3_wt(H3C(req->conn));
  const wt_route *rt = NULL;
  size_t pathlen = strcspn(req->path, "?#");
  if (strcmp(req->method, "CONNECT") != 0 ||
      (strcmp(req->protocol, "webtransport") != 0 &&
       strcmp(req->protocol, "webtransport-h3") != 0)) {
    /* Another protocol than WebTransport: not implemented here. */
    h3wt_request_stop_reading(req);
    respond_error(req, 501, NULL, NULL);
    return;
  }
  if (!req->scheme || strcmp(req->scheme, "https") != 0 || !req->authority ||
      !req->authority[0]) {
    /* WebTransport over HTTP/3 3.2: :scheme https and an :authority
       (nghttp3 checks that they are there, not what they say). */
    ++srv->stats.sessions_rejected;
    ++srv->stats.sessions_rejected_other;
    h3wt_request_stop_reading(req);
    respond_error(req, 400, NULL, NULL);
    return;
  }
  for (size_t i = 0; i < srv->nwt_routes; ++i) {
    if (strlen(srv->wt_routes[i].path) == pathlen &&
        memcmp(srv->wt_routes[i].path, req->path, pathlen) == 0) {
      rt = &srv->wt_routes[i];
    }
  }
  if (!rt || !wt) {
    ++srv->stats.sessions_rejected;
    ++srv->stats.sessions_rejected_404;
    h3wt_request_stop_reading(req);
    respond_error(req, 404, NULL, NULL);
    return;
  }
  if (h3wt_wt_session_count(wt) >= srv->settings.max_sessions_per_conn) {
    H3WT_LOG(&srv->log, H3WT_LOG_INFO, "wt",
             "[%s/%" PRId64 "] session limit (%u) reached: 429",
             h3wt_quic_conn_name(QCC(req->conn)), req->stream_id,
             srv->settings.max_sessions_per_conn);
    ++srv->stats.sessions_rejected;
    ++srv->stats.sessions_rejected_429;
    ++srv->stats.limit_max_sessions_per_conn;
    h3wt_request_stop_reading(req);
    respond_error(req, 429, NULL, NULL);
    return;
  }
  h3wt_session *s;
  if (h3wt_wt_session_new(wt, req->stream_id, &rt->handler, rt->data,
                          req->path, req->authority,
                          h3wt_request_header(req, "origin"), &s) != 0) {
    h3wt_request_reset(req, H3WT_H3_INTERNAL_ERROR);
    return;
  }
  /* The session keeps the CONNECT's header fields for its life; the
     request (the session's facade, as long) needs them no more. */
  h3wt_wt_session_take_headers(s, &req->headers, &req->nheaders,
                               &req->headers_cap);
  req->session = s;
  h3wt_wt_session_set_facade(s, req);
  int status = rt->handler.on_session_request(s, rt->data);
  if (!req->conn || h3wt_wt_session_answered(s)) {
    return; /* answered (h3wt_session_respond) inside the handler */
  }
  if (status == H3WT_SESSION_PENDING) {
    /* The application answers later; until then it holds s, so it hears
       of its end even unanswered. */
    h3wt_wt_session_set_pending(s, 1);
    return;
  }
  session_answer(req, s, status, NULL, 0);
}

int h3wt_session_respond(h3wt_session *s, int status,
                         const h3wt_header *headers, size_t nheaders) {
  h3wt_request *req = h3wt_wt_session_facade(s);
  if (h3wt_wt_session_answered(s) || !h3wt_wt_session_is_server(s)) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!req || !req->conn || req->session != s) {
    /* The CONNECT stream or the connection went first (on_session_close
       told, or is about to tell, the application). */
    return H3WT_ERR_SESSION_CLOSING;
  }
  if (status < 200 || status > 599 || (nheaders && !headers)) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  return session_answer(req, s, status, headers, nheaders);
}

static void dispatch(h3wt_request *req, int fin) {
  h3wt_server *srv = req->server;
  const h3wt_route *rt = NULL;
  char allow[128];
  size_t pathlen;

  if (req->too_large_hdr) {
    ++srv->stats.limit_max_header_bytes;
    h3wt_request_stop_reading(req);
    respond_error(req, 431, NULL, NULL);
    return;
  }
  if (req->bad || !req->method || !req->path || req->path[0] != '/') {
    /* nghttp3 already refuses most malformed requests (RFC 9114 4.1.2);
       what it lets through (CONNECT without :protocol support here, odd
       paths) gets a plain 400. */
    h3wt_request_stop_reading(req);
    respond_error(req, 400, NULL, NULL);
    return;
  }
  if (!h3wt_quic_conn_handshake_done(QCC(req->conn))) {
    /* Before the handshake completes a request can only have come in
       0-RTT, which an attacker can replay (RFC 9114 10.9, RFC 8470):
       only safe methods are served; the rest are asked to come again
       after the handshake ("425 (Too Early)"), as are WebTransport
       CONNECTs unless wt_0rtt says otherwise. */
    ++srv->stats.requests_0rtt;
    int safe = strcmp(req->method, "GET") == 0 ||
               strcmp(req->method, "HEAD") == 0 ||
               strcmp(req->method, "OPTIONS") == 0;
    if (req->protocol ? !srv->settings.wt_0rtt : !safe) {
      ++srv->stats.requests_too_early;
      if (!req->protocol) {
        h3wt_request_stop_reading(req);
      }
      respond_error(req, 425, NULL, NULL);
      return;
    }
  }
  if (req->protocol) {
    dispatch_connect(req);
    return;
  }
  req->head = strcmp(req->method, "HEAD") == 0;
  if (req->content_length >= 0 &&
      (uint64_t)req->content_length > srv->settings.max_request_body) {
    ++srv->stats.limit_max_request_body;
    h3wt_request_stop_reading(req);
    respond_error(req, 413, NULL, NULL);
    return;
  }
  pathlen = strcspn(req->path, "?#");
  /* HEAD is served wherever GET is (RFC 9110 9.3.2). */
  int m = h3wt_router_match(&srv->router, req->head ? "GET" : req->method,
                            req->path, pathlen, &rt, allow, sizeof(allow));
  if (m == H3WT_ROUTE_NO_PATH) {
    h3wt_request_stop_reading(req);
    respond_error(req, 404, NULL, NULL);
    return;
  }
  if (m == H3WT_ROUTE_NO_METHOD) {
    h3wt_request_stop_reading(req);
    respond_error(req, 405, "allow", allow);
    return;
  }
  req->route = rt;
  req->handler = rt->handler;
  req->route_data = rt->data;
  req->dispatched = 1;
  req->handler->on_request(req, req->route_data);
  if (fin && req->handler->on_end && req->conn) {
    req->handler->on_end(req, req->route_data);
  }
}

static int hs_end_headers(h3wt_h3_conn *h3, int64_t stream_id, int fin,
                          void *ud, void *sud) {
  h3wt_request *req = sud;
  if (!req || req->dispatched || req->responded) {
    return 0;
  }
  dispatch(req, fin);
  return 0;
}

static int hs_recv_data(h3wt_h3_conn *h3, int64_t stream_id,
                        const uint8_t *data, size_t len, void *ud, void *sud) {
  h3wt_request *req = sud;
  if (!req || req->discard_body) {
    return 0;
  }
  if (req->wt_accepted) {
    return h3wt_wt_session_recv(req->session, data, len);
  }
  req->body_received += len;
  if (req->body_received > req->server->settings.max_request_body) {
    /* The body outgrew the limit without announcing it: stop reading
       (nothing more is buffered) and answer 413 if we still can. */
    h3wt_request_stop_reading(req);
    if (!req->responded) {
      ++req->server->stats.limit_max_request_body;
      respond_error(req, 413, NULL, NULL);
    }
    return 0;
  }
  if (req->dispatched && req->handler->on_body) {
    req->handler->on_body(req, data, len, req->route_data);
  }
  return 0;
}

static int hs_end_stream(h3wt_h3_conn *h3, int64_t stream_id, void *ud,
                         void *sud) {
  h3wt_request *req = sud;
  if (!req || req->discard_body) {
    return 0;
  }
  if (req->wt_accepted) {
    h3wt_wt_session_recv_fin(req->session);
    return 0;
  }
  if (req->dispatched && req->handler->on_end) {
    req->handler->on_end(req, req->route_data);
  }
  return 0;
}

static int hs_stream_close(h3wt_h3_conn *h3, int64_t stream_id,
                           uint64_t app_error_code, void *ud, void *sud) {
  h3wt_request *req = sud;
  if (req) {
    if (req->session) {
      h3wt_wt_session_set_facade(req->session, NULL);
      h3wt_wt_session_stream_closed(req->session,
                                    app_error_code != H3WT_H3_NO_ERROR);
      req->session = NULL;
    }
    request_finish(req, app_error_code == H3WT_H3_NO_ERROR ? 0
                                                           : app_error_code);
  }
  return 0;
}

static ssize_t hs_read_body(h3wt_h3_conn *h3, int64_t stream_id,
                            h3wt_vec *vec, size_t veccnt, int *eof, void *ud,
                            void *sud) {
  h3wt_request *req = sud;
  if (!req) {
    *eof = 1;
    return 0;
  }
  if (req->wt_accepted) {
    return h3wt_wt_session_read_capsules(req->session, vec, veccnt, eof);
  }
  size_t n = h3wt_sendq_read(&req->sendq, vec, veccnt);
  if (req->ended && req->sendq.unread == 0) {
    *eof = 1;
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : H3WT_ERR_WOULDBLOCK;
}

static int hs_acked_body(h3wt_h3_conn *h3, int64_t stream_id, uint64_t n,
                         void *ud, void *sud) {
  h3wt_request *req = sud;
  if (!req) {
    return 0;
  }
  if (req->wt_accepted) {
    h3wt_wt_session_capsules_acked(req->session, n);
    return 0;
  }
  h3wt_sendq_ack(&req->sendq, n);
  if (req->want_writable &&
      req->sendq.unacked < req->server->settings.max_response_queue / 2) {
    req->want_writable = 0;
    if (req->handler && req->handler->on_writable) {
      req->handler->on_writable(req, req->route_data);
    }
  }
  return 0;
}

/* ---- connections (the endpoint's callbacks) ------------------------------ */

static void hs_want_write(h3wt_h3_conn *h3, void *ud) {
  conn_mark_dirty(ud);
}

static int on_conn_open(h3wt_ep_conn *ec, void *ud) {
  h3wt_server *srv = ud;
  srv_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    return -1;
  }
  c->ep = ec;
  c->server = srv;
  h3wt_list_init(&c->requests);
  ec->data = c;
  if (h3wt_streams_conn_new(&ec->owner.h3, &srv->hcfg, ec->qc, 1, c) != 0) {
    free(c);
    ec->data = NULL;
    return -1;
  }
  return 0;
}

static void on_conn_gone(h3wt_ep_conn *ec, uint64_t code, void *ud) {
  srv_conn *c = ec->data;
  h3wt_list reqs, *it, *tmp;
  /* Every request leaves the connection before any handler hears of it,
     so a handler that writes to a sibling request meets H3WT_ERR_CLOSED
     rather than a connection half torn down. */
  h3wt_list_init(&reqs);
  h3wt_list_move(&c->requests, &reqs);
  h3wt_list_foreach_safe(it, tmp, &reqs) {
    h3wt_request *req = h3wt_list_entry(it, h3wt_request, node);
    req->conn = NULL;
    if (req->session) {
      /* The session outlives the request by a moment (its close is told
         when the HTTP/3 layer goes): it must not find the request. */
      h3wt_wt_session_set_facade(req->session, NULL);
      req->session = NULL;
    }
  }
  while (!h3wt_list_empty(&reqs)) {
    h3wt_request *req = h3wt_list_entry(reqs.next, h3wt_request, node);
    h3wt_list_remove(&req->node);
    if (req->dispatched && req->handler->on_close) {
      req->handler->on_close(req, code, req->route_data);
    }
    request_free(req);
  }
}

static void on_conn_freed(h3wt_ep_conn *ec, void *ud) {
  h3wt_streams_conn_del(ec->owner.h3);
  ec->owner.h3 = NULL;
  free(ec->data);
  ec->data = NULL;
}

/* The liveness timeout that applies to c now (ns; 0: none): its sessions'
   own, else the server's while it carries a session.  Keep-alive PINGs
   follow the same condition, so a live peer always has something to
   answer before the timeout. */
static uint64_t conn_liveness_ns(srv_conn *c, h3wt_wt_conn *wt) {
  const h3wt_server_settings *st = &c->server->settings;
  size_t n = wt ? h3wt_wt_session_count(wt) : 0;
  int want_ka = n > 0 && st->keep_alive_ms > 0;
  if (want_ka != c->keep_alive) {
    c->keep_alive = want_ka;
    h3wt_quic_set_keep_alive(QCC(c), want_ka ? st->keep_alive_ms * 1000000ULL
                                              : 0);
  }
  if (!n) {
    return 0;
  }
  uint64_t ms = h3wt_wt_liveness_ms(wt);
  if (!ms) {
    ms = st->liveness_timeout_ms;
  }
  return ms * 1000000ULL;
}

static uint64_t on_conn_deadline(h3wt_ep_conn *ec, void *ud) {
  srv_conn *c = ec->data;
  h3wt_wt_conn *wt = h3wt_h3_wt(H3C(c));
  uint64_t l = wt ? conn_liveness_ns(c, wt) : 0;
  /* A millisecond late, so the check finds it expired. */
  uint64_t d = l ? h3wt_quic_last_rx(QCC(c)) + l + 1000000 : UINT64_MAX;
  uint64_t o = wt ? h3wt_wt_orphan_deadline(wt) : UINT64_MAX;
  return o < d ? o : d;
}

static int conn_liveness_expired(srv_conn *c, h3wt_wt_conn *wt, uint64_t ts) {
  uint64_t l = conn_liveness_ns(c, wt);
  uint64_t last = h3wt_quic_last_rx(QCC(c));
  if (!l || !h3wt_quic_conn_handshake_done(QCC(c)) || ts <= last + l) {
    return 0;
  }
  H3WT_LOG(&c->server->log, H3WT_LOG_INFO, "server",
           "[%s] nothing received for %" PRIu64 " ms: closing (liveness)",
           h3wt_quic_conn_name(QCC(c)), (ts - last) / 1000000);
  return 1;
}

/* In the flush pass, before the endpoint writes c. */
static void on_conn_before_write(h3wt_ep_conn *ec, uint64_t ts, void *ud) {
  h3wt_server *srv = ud;
  srv_conn *c = ec->data;
  h3wt_wt_conn *wt = h3wt_h3_wt(H3C(c));
  uint64_t close_code;
  const char *close_reason;
  if (srv->close_deferred) {
    return; /* everything goes in on_settled() */
  }
  if (wt) {
    /* Close notifications held back so that handlers could close and
       reset from inside callbacks. */
    h3wt_wt_run_deferred(wt);
    if (ec->dead) {
      return;
    }
    h3wt_wt_expire_orphans(wt, ts);
    if (conn_liveness_expired(c, wt, ts)) {
      ++srv->stats.liveness_closes;
      h3wt_h3_request_close(H3C(c), H3WT_H3_NO_ERROR, "liveness timeout");
    }
  }
  if (h3wt_h3_close_requested(H3C(c), &close_code, &close_reason)) {
    /* h3wt_session_close_connection(), or the liveness check: here no
       ngtcp2 or nghttp3 call is on the stack. */
    h3wt_ep_conn_close(ec, close_code, close_reason);
  }
}

static void on_after_flush(void *ud) {
  h3wt_server *srv = ud;
  if (srv->draining && !srv->close_deferred) {
    drain_check(srv);
  }
}

/* ---- lifecycle ----------------------------------------------------------- */

static char *keep(h3wt_server *srv, int slot, const char *s) {
  if (!s) {
    return NULL;
  }
  srv->strings[slot] = strdup(s);
  return srv->strings[slot];
}

/* The session ticket key: the static secret (shared by a group, stable
   across restarts when the settings give it) with a label, bound to every
   limit a client resuming with 0-RTT relies on.  A server whose limits
   changed cannot open its old tickets: those clients make a full
   handshake instead of sending early data over limits no longer granted
   ("the server MUST NOT reduce these initial flow control values"). */
static int set_ticket_key(h3wt_server *srv) {
  static const char label[] = "h3wt session ticket key v1";
  const uint64_t bound[] = {
      srv->qcfg.max_streams_bidi,     srv->qcfg.max_streams_uni,
      srv->qcfg.max_stream_data,      srv->qcfg.max_data,
      srv->qcfg.max_datagram_frame_size, srv->hcfg.max_field_section_size,
      srv->hcfg.wt_fc_max_data,       srv->hcfg.wt_fc_max_streams,
      srv->wt_limits.max_sessions,
  };
  uint8_t buf[sizeof(label) + 32 + sizeof(bound) * 8 / sizeof(bound[0])];
  uint8_t key[32], *p = buf;
  int rv;
  memcpy(p, label, sizeof(label));
  p += sizeof(label);
  memcpy(p, srv->qcfg.static_secret, 32);
  p += 32;
  for (size_t i = 0; i < sizeof(bound) / sizeof(bound[0]); ++i) {
    for (int b = 7; b >= 0; --b) {
      *p++ = (uint8_t)(bound[i] >> (8 * b));
    }
  }
  if (h3wt_tls_sha256(buf, (size_t)(p - buf), key) != 0) {
    return -1;
  }
  rv = h3wt_tls_ctx_set_ticket_key(srv->tls, key);
  memset(buf, 0, sizeof(buf));
  memset(key, 0, sizeof(key));
  return rv;
}

int h3wt_server_new(h3wt_server **psrv, uv_loop_t *loop,
                    const h3wt_server_settings *settings) {
  h3wt_server *srv;
  char err[512];

  if (!settings || settings->version < 1 ||
      settings->version > H3WT_SERVER_SETTINGS_VERSION || !loop ||
      !settings->cert_file || !settings->key_file) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  srv = calloc(1, sizeof(*srv));
  if (!srv) {
    return H3WT_ERR_NOMEM;
  }
  srv->loop = loop;
  /* A caller built against an older header passed a shorter struct: take
     only its fields, the later ones keep their defaults. */
  h3wt_server_settings_default(&srv->settings);
  memcpy(&srv->settings, settings,
         settings->version == H3WT_SERVER_SETTINGS_V1
             ? offsetof(h3wt_server_settings, max_session_queue)
         : settings->version == H3WT_SERVER_SETTINGS_V2
             ? offsetof(h3wt_server_settings, keep_alive_ms)
         : settings->version == H3WT_SERVER_SETTINGS_V3
             ? offsetof(h3wt_server_settings, secret)
         : settings->version == H3WT_SERVER_SETTINGS_V4
             ? offsetof(h3wt_server_settings, group)
         : settings->version == H3WT_SERVER_SETTINGS_V5
             ? offsetof(h3wt_server_settings, wt_session_max_data)
         : settings->version == H3WT_SERVER_SETTINGS_V6
             ? offsetof(h3wt_server_settings, early_data)
             : sizeof(*settings));
  if ((srv->settings.secret && srv->settings.secret_len < 16) ||
      (srv->settings.group &&
       srv->settings.worker >= h3wt_group_workers(srv->settings.group))) {
    free(srv);
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  srv->settings.host = keep(srv, 0, settings->host ? settings->host : "::");
  srv->settings.cert_file = keep(srv, 1, settings->cert_file);
  srv->settings.key_file = keep(srv, 2, settings->key_file);
  srv->settings.qlog_dir = keep(srv, 3, settings->qlog_dir);
  srv->settings.keylog_file = keep(srv, 4, settings->keylog_file);
  srv->settings.server_name =
      keep(srv, 5, settings->server_name ? settings->server_name
                                         : "h3wt/" H3WT_VERSION);
  srv->log.cb = settings->log_cb;
  srv->log.user_data = settings->log_user_data;
  srv->log.level = settings->log_level;
  h3wt_router_init(&srv->router);

  h3wt_tls_ctx_opts topts = {0};
  topts.cert_file = srv->settings.cert_file;
  topts.key_file = srv->settings.key_file;
  topts.keylog_file = srv->settings.keylog_file;
  topts.no_early_data = !srv->settings.early_data;
  if (h3wt_tls_server_ctx_new(&srv->tls, &topts, err, sizeof(err)) != 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_ERROR, "server", "TLS: %s", err);
    h3wt_server_del(srv);
    return H3WT_ERR_TLS;
  }
  srv->qcfg.txbuflen = H3WT_QUIC_TXBUF_MIN;
  srv->qcfg.txbuf = malloc(srv->qcfg.txbuflen);
  if (srv->settings.secret) {
    if (h3wt_tls_sha256(srv->settings.secret, srv->settings.secret_len,
                        srv->qcfg.static_secret) != 0) {
      h3wt_server_del(srv);
      return H3WT_ERR_TLS;
    }
  } else if (h3wt_random(srv->qcfg.static_secret, 32) != 0) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  if (srv->settings.group) {
    /* One secret for the group: the first server's (its settings' or its
       random one), so every worker verifies the Retry tokens and
       recognises the stateless reset tokens of every other. */
    h3wt_group_secret(srv->settings.group, srv->qcfg.static_secret);
    srv->qcfg.cid_workers = h3wt_group_workers(srv->settings.group);
    srv->qcfg.cid_worker = srv->settings.worker;
    /* Session ids unique across the group (channel presence names
       members by them): worker w of n issues w + n, w + 2n, ... */
    srv->sessions.next_id = srv->settings.worker;
    srv->sessions.id_step = srv->qcfg.cid_workers;
  }
  srv->settings.secret = NULL; /* not kept: the caller's memory */
  srv->settings.secret_len = 0;
  if (!srv->qcfg.txbuf) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  h3wt_streams_fill_quic_callbacks(&srv->qcbs);
  srv->qcfg.log = &srv->log;
  srv->qcfg.tls = srv->tls;
  srv->qcfg.cbs = &srv->qcbs;
  srv->qcfg.qlog_dir = srv->settings.qlog_dir;
  srv->qcfg.pacing = h3wt_quic_pacing_default();
  srv->qcfg.idle_timeout_ns = srv->settings.idle_timeout_ms * 1000000ULL;
  srv->qcfg.handshake_timeout_ns = 10ULL * 1000000000ULL;
  srv->qcfg.max_streams_bidi = srv->settings.max_streams_bidi;
  /* WebTransport sessions open unidirectional streams of their own. */
  srv->qcfg.max_streams_uni = 100;
  srv->qcfg.max_stream_data = 1024 * 1024;
  srv->qcfg.max_data = 4 * 1024 * 1024;
  srv->qcfg.max_datagram_frame_size = 65535;

  srv->hcbs.begin_headers = hs_begin_headers;
  srv->hcbs.recv_header = hs_recv_header;
  srv->hcbs.end_headers = hs_end_headers;
  srv->hcbs.recv_data = hs_recv_data;
  srv->hcbs.end_stream = hs_end_stream;
  srv->hcbs.stream_close = hs_stream_close;
  srv->hcbs.read_body = hs_read_body;
  srv->hcbs.acked_body = hs_acked_body;
  srv->hcbs.want_write = hs_want_write;
  srv->hcfg.log = &srv->log;
  srv->hcfg.cbs = &srv->hcbs;
  srv->hcfg.max_field_section_size = srv->settings.max_header_bytes;
  srv->hcfg.max_streams_bidi = srv->settings.max_streams_bidi;
  h3wt_wt_limits_default(&srv->wt_limits);
  srv->wt_limits.max_sessions = srv->settings.max_sessions_per_conn;
  srv->wt_limits.max_streams_per_session =
      srv->settings.max_streams_per_session;
  srv->wt_limits.max_stream_queue = srv->settings.max_stream_queue;
  srv->wt_limits.max_session_queue = srv->settings.max_session_queue;
  srv->wt_limits.max_datagram_queue = srv->settings.max_datagram_queue;
  srv->wt_limits.orphan_timeout_ns =
      srv->settings.orphan_stream_timeout_ms * 1000000ull;
  srv->wt_limits.stats = &srv->wt_stats;
  srv->wt_limits.registry = &srv->sessions;
  srv->wt_limits.dgram_drop_oldest = srv->settings.datagram_drop_oldest;
  srv->wt_limits.dgram_max_age_ms = srv->settings.datagram_max_age_ms;
  srv->wt_limits.session_max_data = srv->settings.wt_session_max_data;
  srv->hcfg.wt = &srv->wt_limits;
  srv->hcfg.wt_fc_max_data = srv->settings.wt_session_max_data;
  srv->hcfg.wt_fc_max_streams = srv->settings.max_streams_per_session;
  srv->hcbs.ready = hs_handshake_done;
  if (set_ticket_key(srv) != 0) {
    h3wt_server_del(srv);
    return H3WT_ERR_TLS;
  }

  srv->epcbs.conn_open = on_conn_open;
  srv->epcbs.conn_gone = on_conn_gone;
  srv->epcbs.conn_freed = on_conn_freed;
  srv->epcbs.conn_before_write = on_conn_before_write;
  srv->epcbs.conn_deadline = on_conn_deadline;
  srv->epcbs.after_flush = on_after_flush;
  srv->epcbs.settled = on_settled;
  h3wt_ep_config ecfg = {0};
  ecfg.loop = loop;
  ecfg.log = &srv->log;
  ecfg.qcfg = &srv->qcfg;
  ecfg.max_connections = srv->settings.max_connections;
  ecfg.max_handshakes_per_addr = srv->settings.max_handshakes_per_addr;
  ecfg.max_unvalidated_handshakes = srv->settings.max_unvalidated_handshakes;
  ecfg.group = srv->settings.group;
  ecfg.worker = srv->settings.worker;
  ecfg.cbs = &srv->epcbs;
  ecfg.ud = srv;
  if (h3wt_ep_new(&srv->ep, &ecfg) != 0) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  *psrv = srv;
  return 0;
}

/* Posted work runs like any other entry from libuv: inside the endpoint's
   depth, so what it closes is closed once it returns. */
static void post_enter(void *ud) {
  h3wt_ep_enter(ud);
}
static void post_leave(void *ud) {
  h3wt_ep_leave(ud);
}

int h3wt_server_post(h3wt_server *srv, void (*fn)(void *arg), void *arg) {
  if (!srv || !fn) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (!srv->mailbox_open) {
    return H3WT_ERR_INVALID_STATE; /* before h3wt_server_listen() */
  }
  /* No field of srv is read here but the mailbox, whose lock makes the
     close race-free: posting after the close began is refused. */
  return h3wt_mailbox_post(&srv->mailbox, fn, arg) == 0 ? 0 : H3WT_ERR_CLOSED;
}

int h3wt_server_listen(h3wt_server *srv) {
  struct sockaddr_storage ss;
  const char *host = srv->settings.host;
  int rv;
  if (srv->listening || srv->closing) {
    return H3WT_ERR_INVALID_STATE;
  }
  memset(&ss, 0, sizeof(ss));
  if (uv_ip6_addr(host, srv->settings.port, (struct sockaddr_in6 *)&ss) != 0 &&
      uv_ip4_addr(host, srv->settings.port, (struct sockaddr_in *)&ss) != 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_ERROR, "server",
             "listen address '%s' is not a numeric IPv4 or IPv6 address",
             host);
    return H3WT_ERR_ADDRESS;
  }
  rv = h3wt_ep_listen(srv->ep, (struct sockaddr *)&ss);
  if (rv != 0 && strcmp(host, "::") == 0) {
    /* No IPv6 on this host: the IPv4 wildcard still serves. */
    uv_ip4_addr("0.0.0.0", srv->settings.port, (struct sockaddr_in *)&ss);
    rv = h3wt_ep_listen(srv->ep, (struct sockaddr *)&ss);
  }
  if (rv != 0) {
    return rv;
  }
  srv->listening = 1; /* from here h3wt_server_close() frees the socket */
  if (h3wt_mailbox_init(&srv->mailbox, srv->loop, srv->ep) != 0) {
    return H3WT_ERR_NOMEM;
  }
  srv->mailbox.enter = post_enter;
  srv->mailbox.leave = post_leave;
  srv->mailbox_open = 1;
  snprintf(srv->altsvc, sizeof(srv->altsvc), "h3=\":%u\"",
           h3wt_server_port(srv));
  return 0;
}

int h3wt_server_get_stats(const h3wt_server *srv, h3wt_server_stats *out) {
  const h3wt_wt_stats *w;
  h3wt_server_stats st;
  size_t size;
  if (!srv || !out) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  switch (out->version) {
  case H3WT_SERVER_STATS_V1:
    size = offsetof(h3wt_server_stats, datagrams_dropped_oldest);
    break;
  case H3WT_SERVER_STATS_V2:
    size = offsetof(h3wt_server_stats, limit_max_unvalidated_handshakes);
    break;
  case H3WT_SERVER_STATS_V3:
    size = offsetof(h3wt_server_stats, packets_handed_off);
    break;
  case H3WT_SERVER_STATS_V4:
    size = offsetof(h3wt_server_stats, wt_fc_capsules_sent);
    break;
  case H3WT_SERVER_STATS_V5:
    size = offsetof(h3wt_server_stats, udp_rx_ecn_ect0);
    break;
  case H3WT_SERVER_STATS_V6:
    size = sizeof(h3wt_server_stats);
    break;
  default:
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  w = &srv->wt_stats;
  st = srv->stats;
  st.version = out->version;
  const h3wt_ep_stats *es = h3wt_ep_stats_get(srv->ep);
  const h3wt_udp_stats *us = h3wt_ep_udp_stats(srv->ep);
  st.connections_current = h3wt_ep_nconns(srv->ep);
  st.connections_total = es->connections_total;
  st.handshake_failures = es->handshake_failures;
  st.limit_max_connections = es->limit_max_connections;
  st.limit_max_handshakes_per_addr = es->limit_max_handshakes_per_addr;
  st.limit_max_unvalidated_handshakes = es->limit_max_unvalidated_handshakes;
  st.packets_handed_off = es->packets_handed_off;
  st.packets_misrouted_dropped = es->packets_misrouted_dropped;
  st.sessions_current = w->sessions_current;
  st.sessions_total = w->sessions_total;
  st.wt_streams_bidi_peer = w->streams_bidi_peer;
  st.wt_streams_uni_peer = w->streams_uni_peer;
  st.wt_streams_bidi_local = w->streams_bidi_local;
  st.wt_streams_uni_local = w->streams_uni_local;
  st.wt_streams_rejected_buffered = w->streams_refused_buffered;
  st.datagrams_received = w->dgrams_received;
  st.datagrams_received_dropped = w->dgrams_received_dropped;
  st.datagrams_sent = w->dgrams_sent;
  st.datagrams_dropped_queue_full = w->dgrams_dropped_full;
  st.datagrams_dropped_too_large = w->dgrams_dropped_too_large;
  st.udp_bytes_received = us->rx_bytes;
  st.udp_datagrams_received = us->rx_datagrams;
  st.udp_bytes_sent = us->tx_bytes;
  st.udp_datagrams_sent = us->tx_datagrams;
  st.udp_send_dropped = us->tx_dropped;
  st.limit_max_streams_per_session = w->streams_refused_limit;
  st.limit_max_stream_queue = w->wouldblock_stream;
  st.limit_max_session_queue = w->wouldblock_session;
  st.limit_max_datagram_queue = w->dgrams_dropped_full;
  st.datagrams_dropped_oldest = w->dgrams_dropped_oldest;
  st.datagrams_dropped_expired = w->dgrams_dropped_expired;
  st.wt_fc_capsules_sent = w->fc_capsules_sent;
  st.wt_fc_capsules_received = w->fc_capsules_received;
  st.wt_fc_errors = w->fc_errors;
  st.wt_fc_data_blocked = w->fc_data_blocked;
  st.wt_fc_streams_blocked = w->fc_streams_blocked;
  st.udp_rx_ecn_ect0 = us->rx_ecn[2];
  st.udp_rx_ecn_ect1 = us->rx_ecn[1];
  st.udp_rx_ecn_ce = us->rx_ecn[3];
  st.udp_tx_ecn_ect = us->tx_ect;
  /* Later versions append fields: copy only what this caller's has (an
     older caller's struct is shorter). */
  memcpy(out, &st, size);
  return 0;
}

uint16_t h3wt_server_port(const h3wt_server *srv) {
  const struct sockaddr *sa = srv->listening ? h3wt_ep_local(srv->ep) : NULL;
  if (!sa) {
    return 0;
  }
  return sa->sa_family == AF_INET6
             ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
             : ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

/* The size of a handler struct of an older version: the offset of the
   first callback that version did not have. */
static size_t request_handler_size(int version) {
  switch (version) {
  case H3WT_REQUEST_HANDLER_V1:
    return sizeof(h3wt_request_handler);
  default:
    return 0;
  }
}

size_t h3wt_session_handler_size(int version) {
  switch (version) {
  case H3WT_SESSION_HANDLER_V1:
    return offsetof(h3wt_session_handler, on_streams_available);
  case H3WT_SESSION_HANDLER_V2:
    return sizeof(h3wt_session_handler);
  default:
    return 0;
  }
}

int h3wt_server_route_versioned(h3wt_server *srv, const char *method,
                                const char *path, int handler_version,
                                const h3wt_request_handler *handler,
                                void *route_data) {
  size_t size = request_handler_size(handler_version);
  if (!handler || !size || !handler->on_request) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  h3wt_request_handler **nh =
      realloc(srv->rhandlers, (srv->nrhandlers + 1) * sizeof(*nh));
  if (!nh) {
    return H3WT_ERR_NOMEM;
  }
  srv->rhandlers = nh;
  h3wt_request_handler *copy = calloc(1, sizeof(*copy));
  if (!copy) {
    return H3WT_ERR_NOMEM;
  }
  memcpy(copy, handler, size);
  int rv = h3wt_router_add(&srv->router, method, path, copy, route_data);
  if (rv != 0) {
    free(copy);
    return rv;
  }
  nh[srv->nrhandlers++] = copy;
  return 0;
}

h3wt_session *h3wt_server_find_session(const h3wt_server *srv, uint64_t id) {
  return h3wt_wt_registry_find(&srv->sessions, id);
}

size_t h3wt_server_foreach_session(h3wt_server *srv, const char *path,
                                   int (*cb)(h3wt_session *s, void *ud),
                                   void *ud) {
  if (!cb) {
    return 0;
  }
  return h3wt_wt_registry_foreach(&srv->sessions, path, cb, ud);
}

int h3wt_server_webtransport_versioned(h3wt_server *srv, const char *path,
                                       int handler_version,
                                       const h3wt_session_handler *handler,
                                       void *route_data) {
  size_t size = h3wt_session_handler_size(handler_version);
  if (!path || path[0] != '/' || !handler || !size ||
      !handler->on_session_request) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  wt_route *nr =
      realloc(srv->wt_routes, (srv->nwt_routes + 1) * sizeof(*nr));
  if (!nr) {
    return H3WT_ERR_NOMEM;
  }
  srv->wt_routes = nr;
  nr[srv->nwt_routes].path = strdup(path);
  if (!nr[srv->nwt_routes].path) {
    return H3WT_ERR_NOMEM;
  }
  memset(&nr[srv->nwt_routes].handler, 0, sizeof(nr->handler));
  memcpy(&nr[srv->nwt_routes].handler, handler, size);
  nr[srv->nwt_routes].data = route_data;
  ++srv->nwt_routes;
  return 0;
}

int h3wt_server_static(h3wt_server *srv, const char *prefix, const char *dir) {
  h3wt_static_mount *m;
  char pattern[1024];
  size_t len = prefix ? strlen(prefix) : 0;
  if (!len || prefix[0] != '/' || prefix[len - 1] != '/' ||
      len + 2 > sizeof(pattern) || !dir) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  h3wt_static_mount **nm =
      realloc(srv->mounts, (srv->nmounts + 1) * sizeof(*nm));
  if (!nm) {
    return H3WT_ERR_NOMEM;
  }
  srv->mounts = nm;
  if (!srv->static_cache &&
      h3wt_static_cache_new(&srv->static_cache, srv->loop) != 0) {
    return H3WT_ERR_NOMEM;
  }
  int rv = h3wt_static_mount_new(&m, prefix, dir, srv->static_cache);
  if (rv != 0) {
    return rv;
  }
  snprintf(pattern, sizeof(pattern), "%s*", prefix);
  rv = h3wt_router_add(&srv->router, "GET", pattern, &h3wt_static_handler, m);
  if (rv != 0) {
    h3wt_static_mount_del(m);
    return rv;
  }
  srv->mounts[srv->nmounts++] = m;
  return 0;
}

static void close_step(h3wt_server *srv) {
  if (--srv->pending_closes == 0 && srv->close_cb) {
    srv->close_cb(srv, srv->close_ud);
  }
}

static void handle_closed(uv_handle_t *h) {
  close_step(h->data);
}

static void ep_closed(void *ud) {
  close_step(ud);
}

void h3wt_server_close(h3wt_server *srv, h3wt_server_close_cb cb,
                       void *user_data) {
  if (srv->closing || srv->close_deferred) {
    return;
  }
  srv->close_cb = cb;
  srv->close_ud = user_data;
  if (in_callback(srv)) {
    /* Inside a callback: the connection that called may be in the middle
       of ngtcp2_conn_read_pkt.  on_settled() closes. */
    srv->close_deferred = 1;
    return;
  }
  server_close_now(srv);
}

static void server_close_now(h3wt_server *srv) {
  if (srv->closing) {
    return;
  }
  assert(!in_callback(srv));
  srv->closing = 1;
  srv->pending_closes = 1; /* held until the end of this function */
  H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server", "closing %zu connection(s)",
           h3wt_ep_nconns(srv->ep));
  if (srv->drain_timer_inited) {
    uv_timer_stop(&srv->drain_timer);
    ++srv->pending_closes;
    uv_close((uv_handle_t *)&srv->drain_timer, handle_closed);
  }
  if (srv->listening) {
    ++srv->pending_closes;
    h3wt_ep_close(srv->ep, ep_closed, srv);
    if (srv->mailbox_open) {
      /* Work posted before now still runs; later posts are refused. */
      ++srv->pending_closes;
      h3wt_mailbox_close(&srv->mailbox, handle_closed, srv);
    }
  }
  close_step(srv);
}

/* While draining: connections with nothing in flight (no request, no
   session) are closed; when none is left, the server closes. */
static void drain_check(h3wt_server *srv) {
  h3wt_list *it, *tmp;
  h3wt_list_foreach_safe(it, tmp, h3wt_ep_conns(srv->ep)) {
    h3wt_ep_conn *ec = h3wt_ep_conn_of(it);
    srv_conn *c = ec->data;
    if (!ec->dead && h3wt_list_empty(&c->requests)) {
      h3wt_ep_conn_close(ec, H3WT_H3_NO_ERROR, "server shutting down");
    }
  }
  if (h3wt_ep_nconns(srv->ep) == 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server", "drained");
    h3wt_server_close(srv, srv->close_cb, srv->close_ud);
  }
}

static void drain_deadline(uv_timer_t *t) {
  h3wt_server *srv = t->data;
  size_t sessions = 0;
  const char *reason = srv->shutdown_reason ? srv->shutdown_reason : "";
  h3wt_list *it;
  h3wt_ep_enter(srv->ep);
  for (it = h3wt_ep_conns(srv->ep)->next; it != h3wt_ep_conns(srv->ep);
       it = it->next) {
    h3wt_ep_conn *ec = h3wt_ep_conn_of(it);
    h3wt_wt_conn *wt = ec->owner.h3 ? h3wt_h3_wt(ec->owner.h3) : NULL;
    if (wt && !ec->dead) {
      sessions += h3wt_wt_session_count(wt);
      h3wt_wt_close_all(wt, srv->shutdown_code, reason);
    }
  }
  H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server",
           "drain deadline: closing %zu connection(s), %zu session(s)",
           h3wt_ep_nconns(srv->ep), sessions);
  /* The close capsules go out just before each CONNECTION_CLOSE. */
  h3wt_server_close(srv, srv->close_cb, srv->close_ud);
  h3wt_ep_leave(srv->ep); /* closes */
}

void h3wt_server_shutdown(h3wt_server *srv, uint64_t timeout_ms,
                          uint32_t code, const char *reason,
                          h3wt_server_close_cb cb, void *user_data) {
  if (srv->closing || srv->draining || srv->close_deferred ||
      srv->shutdown_deferred) {
    return;
  }
  char *r = strdup(reason ? reason : "server shutting down");
  if (r) { /* out of memory: the sessions are closed without a reason */
    free(srv->shutdown_reason);
    srv->shutdown_reason = r;
  }
  srv->shutdown_code = code;
  srv->shutdown_timeout_ms = timeout_ms;
  srv->close_cb = cb;
  srv->close_ud = user_data;
  if (in_callback(srv)) {
    /* GOAWAY is an nghttp3 call: not from inside its callbacks. */
    srv->shutdown_deferred = 1;
    return;
  }
  server_shutdown_now(srv);
}

static void server_shutdown_now(h3wt_server *srv) {
  uint64_t timeout_ms = srv->shutdown_timeout_ms;
  if (srv->closing || srv->draining) {
    return;
  }
  if (!srv->listening) {
    server_close_now(srv);
    return;
  }
  srv->draining = 1;
  H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server",
           "draining %zu connection(s) (at most %" PRIu64 " ms)",
           h3wt_ep_nconns(srv->ep), timeout_ms);
  h3wt_ep_stop_accepting(srv->ep);
  h3wt_list *it;
  for (it = h3wt_ep_conns(srv->ep)->next; it != h3wt_ep_conns(srv->ep);
       it = it->next) {
    h3wt_ep_conn *ec = h3wt_ep_conn_of(it);
    if (ec->dead || !ec->owner.h3) {
      continue;
    }
    if (h3wt_h3_started(ec->owner.h3)) {
      h3wt_h3_shutdown(ec->owner.h3); /* GOAWAY: no new requests */
    }
    h3wt_wt_conn *wt = h3wt_h3_wt(ec->owner.h3);
    if (wt) {
      h3wt_wt_drain_all(wt);
    }
    h3wt_ep_mark_dirty(ec);
  }
  uv_timer_init(srv->loop, &srv->drain_timer);
  srv->drain_timer.data = srv;
  srv->drain_timer_inited = 1;
  uv_timer_start(&srv->drain_timer, drain_deadline, timeout_ms, 0);
  /* Idle connections go at the end of the next flush pass (after their
     GOAWAY is written); h3wt_ep_stop_accepting made sure one runs. */
}

void h3wt_server_del(h3wt_server *srv) {
  if (!srv) {
    return;
  }
  h3wt_router_free(&srv->router);
  for (size_t i = 0; i < srv->nrhandlers; ++i) {
    free(srv->rhandlers[i]);
  }
  free(srv->rhandlers);
  h3wt_wt_registry_free(&srv->sessions);
  for (size_t i = 0; i < srv->nwt_routes; ++i) {
    free(srv->wt_routes[i].path);
  }
  free(srv->wt_routes);
  for (size_t i = 0; i < srv->nmounts; ++i) {
    h3wt_static_mount_del(srv->mounts[i]);
  }
  free(srv->mounts);
  /* Responses still queued keep their cached files until freed below. */
  h3wt_static_cache_del(srv->static_cache);
  h3wt_ep_del(srv->ep);
  if (srv->mailbox_open) {
    h3wt_mailbox_fini(&srv->mailbox);
  }
  h3wt_tls_ctx_del(srv->tls);
  free(srv->qcfg.txbuf);
  free(srv->shutdown_reason);
  for (size_t i = 0; i < sizeof(srv->strings) / sizeof(srv->strings[0]);
       ++i) {
    free(srv->strings[i]);
  }
  free(srv);
}
