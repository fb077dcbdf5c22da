/*
 * h3wt_server: the server facade.  It owns the UDP socket, the table of
 * connections keyed by connection ID, one libuv timer per connection, the
 * routes, and the requests in flight.
 *
 * Writes are not done where the need arises: a connection that has
 * something to send is put on the dirty list, and one flush pass before
 * the loop sleeps (a uv_prepare handle) writes every dirty connection.  So
 * a batch of received datagrams is acknowledged in as few packets as
 * possible, and a handler that writes ten times causes one write pass
 * (redis's beforeSleep).
 */
#include "h3wt_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_h3.h"
#include "h3wt_quic.h"
#include "h3wt_router.h"
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
  h3wt_request *prev, *next; /* in conn->requests */
  /* Request fields, in one arena: pseudo-headers and headers. */
  char *method, *path, *authority, *scheme, *protocol;
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

struct srv_conn {
  h3wt_h3_owner owner; /* first: the shared QUIC callbacks find h3 here */
  h3wt_server *server;
  h3wt_quic_conn *qc;
  uv_timer_t timer;
  srv_conn *prev, *next;             /* all connections */
  srv_conn *dirty_next;              /* on the dirty list */
  int dirty;
  int dead;
  int counted; /* its timer's close is awaited by h3wt_server_close */
  int keep_alive; /* PINGs on: it carries WebTransport sessions */
  h3wt_request *requests;
};

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
  h3wt_udp udp;
  int listening;
  h3wt_cidmap cids;
  h3wt_ratemap handshakes; /* per source address; slots NULL: no limit */
  srv_conn *conns;
  size_t nconns;
  srv_conn *dirty;
  uv_prepare_t flush;
  uv_idle_t spin; /* keeps the loop from sleeping while work remains */
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
  char altsvc[32];
  int closing;
  int draining;           /* h3wt_server_shutdown(): winding down */
  int drain_timer_inited; /* drain_timer needs closing */
  uv_timer_t drain_timer;
  int pending_closes;
  h3wt_server_close_cb close_cb;
  void *close_ud;
  /* Calls from inside callbacks that would free connections or write
     packets under ngtcp2's feet: recorded while depth > 0 and run by
     srv_leave() once the outermost entry from libuv returns (libuv's
     uv_close runs its callback later for the same reason). */
  int depth;
  int close_deferred;    /* h3wt_server_close() asked for */
  int shutdown_deferred; /* h3wt_server_shutdown() asked for */
  uint64_t shutdown_timeout_ms;
  uint32_t shutdown_code;   /* sessions still open at the deadline */
  char *shutdown_reason;
};

static void conn_mark_dirty(srv_conn *c);
static void drain_check(h3wt_server *srv);
static void flush_pass(h3wt_server *srv);
static void server_close_now(h3wt_server *srv);
static void server_shutdown_now(h3wt_server *srv);

/* Every entry from libuv into code that may run application callbacks is
   bracketed by these two. */
static void srv_enter(h3wt_server *srv) {
  ++srv->depth;
}

static void srv_leave(h3wt_server *srv) {
  assert(srv->depth > 0);
  if (--srv->depth > 0) {
    return;
  }
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

static void request_free(h3wt_request *req) {
  assert(!req->prev && !req->next && !req->session);
  for (size_t i = 0; i < req->nheaders; ++i) {
    free((void *)req->headers[i].name);
  }
  free(req->headers);
  free(req->method);
  free(req->path);
  free(req->authority);
  free(req->scheme);
  free(req->protocol);
  h3wt_sendq_free(&req->sendq);
  free(req);
}

static void request_unlink(h3wt_request *req) {
  srv_conn *c = req->conn;
  if (req->prev) {
    req->prev->next = req->next;
  } else if (c && c->requests == req) {
    c->requests = req->next;
  }
  if (req->next) {
    req->next->prev = req->prev;
  }
  req->prev = req->next = NULL;
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
  return h3wt_quic_conn_remote(req->conn->qc);
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

const char *h3wt_status_text(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "";
  }
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
  snprintf(st, sizeof(st), "%d", status);
  all[k++] = (h3wt_header){":status", 7, st, strlen(st)};
  all[k++] = (h3wt_header){"server", 6, srv->settings.server_name,
                           strlen(srv->settings.server_name)};
  all[k++] = (h3wt_header){"alt-svc", 7, srv->altsvc, strlen(srv->altsvc)};
  if (content_length >= 0 && !have_cl) {
    snprintf(cl, sizeof(cl), "%" PRId64, content_length);
    all[k++] = (h3wt_header){"content-length", 14, cl, strlen(cl)};
  }
  if (n) {
    memcpy(all + k, headers, n * sizeof(*headers));
    k += n;
  }
  rv = h3wt_h3_submit_response(req->conn->owner.h3, req->stream_id, all, k,
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
             h3wt_quic_conn_name(req->conn->qc), req->stream_id,
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
  h3wt_h3_resume(req->conn->owner.h3, req->stream_id);
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
  h3wt_h3_stop_reading(req->conn->owner.h3, req->stream_id);
  conn_mark_dirty(req->conn);
}

void h3wt_request_reset(h3wt_request *req, uint64_t h3_error_code) {
  if (!req->conn) {
    return;
  }
  h3wt_h3_reset_stream(req->conn->owner.h3, req->stream_id, h3_error_code);
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
  req->next = c->requests;
  if (c->requests) {
    c->requests->prev = req;
  }
  c->requests = req;
  *psud = req;
  return 0;
}

static int set_pseudo(h3wt_request *req, char **field, const uint8_t *value,
                      size_t len) {
  if (*field) {
    req->bad = 1; /* RFC 9114 4.3: each pseudo-header at most once */
    return 0;
  }
  *field = strndup((const char *)value, len);
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
             h3wt_quic_conn_name(req->conn->qc), req->stream_id,
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
  const char *d02 = h3wt_request_header(req, "sec-webtransport-http3-draft02");
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
  h3wt_wt_conn *wt = h3wt_h3_wt(req->conn->owner.h3);
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
             h3wt_quic_conn_name(req->conn->qc), req->stream_id,
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
  for (size_t i = 0; i < req->nheaders; ++i) {
    h3wt_wt_session_add_header(s, &req->headers[i]);
  }
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
  if (h3wt_wt_session_answered(s)) {
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

/* ---- connections ------------------------------------------------------- */

static void spin_cb(uv_idle_t *h) {
  (void)h; /* only keeps the loop polling without sleeping */
}

static void conn_mark_dirty(srv_conn *c) {
  if (c->dirty || c->dead) {
    return;
  }
  c->dirty = 1;
  c->dirty_next = c->server->dirty;
  c->server->dirty = c;
}

static void conn_timer_closed(uv_handle_t *h) {
  srv_conn *c = h->data;
  h3wt_server *srv = c->server;
  int counted = c->counted;
  free(c);
  if (counted && --srv->pending_closes == 0 && srv->close_cb) {
    srv->close_cb(srv, srv->close_ud);
  }
}

/* Frees a connection: its CIDs leave the map now, its memory once libuv
   has released the timer. */
static void conn_free(srv_conn *c, uint64_t code) {
  h3wt_server *srv = c->server;
  uint8_t cids[20][20];
  size_t lens[20];
  if (c->dead) {
    return;
  }
  c->dead = 1;
  if (c->qc && !srv->closing && !h3wt_quic_conn_handshake_done(c->qc)) {
    ++srv->stats.handshake_failures;
  }
  if (c->qc) {
    size_t n = h3wt_quic_conn_cids(c->qc, cids, lens, 20);
    for (size_t i = 0; i < n; ++i) {
      if (h3wt_cidmap_find(&srv->cids, cids[i], lens[i]) == c) {
        h3wt_cidmap_remove(&srv->cids, cids[i], lens[i]);
      }
    }
  }
  /* Every request leaves the connection before any handler hears of it,
     so a handler that writes to a sibling request meets H3WT_ERR_CLOSED
     rather than a connection half torn down. */
  h3wt_request *reqs = c->requests;
  c->requests = NULL;
  for (h3wt_request *req = reqs; req; req = req->next) {
    req->conn = NULL;
    req->session = NULL; /* the WebTransport state goes with h3 below */
  }
  while (reqs) {
    h3wt_request *req = reqs;
    reqs = req->next;
    req->prev = req->next = NULL;
    if (req->dispatched && req->handler->on_close) {
      req->handler->on_close(req, code, req->route_data);
    }
    request_free(req);
  }
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    srv->conns = c->next;
  }
  if (c->next) {
    c->next->prev = c->prev;
  }
  assert(srv->nconns > 0 && !c->requests);
  --srv->nconns;
  H3WT_LOG(&srv->log, H3WT_LOG_DEBUG, "server", "[%s] connection freed",
           c->qc ? h3wt_quic_conn_name(c->qc) : "-");
  h3wt_h3_conn_del(c->owner.h3);
  c->owner.h3 = NULL;
  h3wt_quic_conn_del(c->qc);
  c->qc = NULL;
  uv_timer_stop(&c->timer);
  if (srv->closing) {
    c->counted = 1;
    ++srv->pending_closes;
  }
  uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

static void conn_timer_cb(uv_timer_t *t) {
  srv_conn *c = t->data;
  h3wt_server *srv = c->server;
  srv_enter(srv);
  if (h3wt_quic_conn_handle_expiry(c->qc, h3wt_now_ns()) == H3WT_QUIC_DEAD) {
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
  } else {
    conn_mark_dirty(c);
  }
  srv_leave(srv);
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
    h3wt_quic_set_keep_alive(c->qc, want_ka ? st->keep_alive_ms * 1000000ULL
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

static int conn_liveness_expired(srv_conn *c, h3wt_wt_conn *wt, uint64_t ts) {
  uint64_t l = conn_liveness_ns(c, wt);
  uint64_t last = h3wt_quic_last_rx(c->qc);
  if (!l || !h3wt_quic_conn_handshake_done(c->qc) || ts <= last + l) {
    return 0;
  }
  H3WT_LOG(&c->server->log, H3WT_LOG_INFO, "server",
           "[%s] nothing received for %" PRIu64 " ms: closing (liveness)",
           h3wt_quic_conn_name(c->qc), (ts - last) / 1000000);
  return 1;
}

static void conn_schedule(srv_conn *c) {
  uint64_t exp = h3wt_quic_conn_expiry(c->qc), now = h3wt_now_ns();
  h3wt_wt_conn *wt = c->owner.h3 ? h3wt_h3_wt(c->owner.h3) : NULL;
  uint64_t l = wt ? conn_liveness_ns(c, wt) : 0;
  if (l && h3wt_quic_last_rx(c->qc) + l + 1000000 < exp) {
    exp = h3wt_quic_last_rx(c->qc) + l + 1000000;
  }
  if (exp == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  /* Round up: firing early would find nothing expired and spin. */
  uint64_t ms = exp > now ? (exp - now + 999999) / 1000000 : 0;
  uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

static void flush_cb(uv_prepare_t *h) {
  h3wt_server *srv = h->data;
  srv_enter(srv);
  flush_pass(srv);
  srv_leave(srv); /* runs a close or shutdown asked for meanwhile */
}

static void flush_pass(h3wt_server *srv) {
  srv_conn *list = srv->dirty, *again = NULL;
  assert(srv->depth > 0 && !srv->closing);
  uint64_t ts = h3wt_now_ns();
  srv->dirty = NULL;
  while (list) {
    srv_conn *c = list;
    list = c->dirty_next;
    c->dirty = 0;
    c->dirty_next = NULL;
    if (c->dead) {
      continue;
    }
    if (srv->close_deferred) {
      /* Everything goes in srv_leave(): writing now is wasted. */
      continue;
    }
    h3wt_wt_conn *wt = c->owner.h3 ? h3wt_h3_wt(c->owner.h3) : NULL;
    if (wt) {
      /* Close notifications held back so that handlers could close and
         reset from inside callbacks. */
      h3wt_wt_run_deferred(wt);
      if (c->dead) {
        continue;
      }
    }
    uint64_t close_code;
    const char *close_reason;
    if (wt && conn_liveness_expired(c, wt, ts)) {
      ++srv->stats.liveness_closes;
      h3wt_h3_request_close(c->owner.h3, H3WT_H3_NO_ERROR,
                            "liveness timeout");
    }
    if (h3wt_h3_close_requested(c->owner.h3, &close_code, &close_reason)) {
      /* h3wt_session_close_connection(), asked for inside a callback:
         here no ngtcp2 or nghttp3 call is on the stack. */
      if (h3wt_h3_started(c->owner.h3)) {
        h3wt_h3_shutdown(c->owner.h3);
        h3wt_quic_conn_write(c->qc, ts);
      }
      h3wt_quic_conn_close(c->qc, close_code, close_reason, ts);
      conn_free(c, close_code);
      continue;
    }
    h3wt_quic_status st = h3wt_quic_conn_write(c->qc, ts);
    if (st == H3WT_QUIC_DEAD) {
      conn_free(c, H3WT_H3_REQUEST_CANCELLED);
      continue;
    }
    conn_schedule(c);
    if (st == H3WT_QUIC_MORE) {
      c->dirty = 1;
      c->dirty_next = again;
      again = c;
    }
  }
  /* Connections that had more to send go first next time round; handlers
     may also have dirtied others meanwhile. */
  for (srv_conn *c = again; c;) {
    srv_conn *next = c->dirty_next;
    c->dirty_next = srv->dirty;
    srv->dirty = c;
    c = next;
  }
  if (srv->dirty) {
    uv_idle_start(&srv->spin, spin_cb);
  } else {
    uv_idle_stop(&srv->spin);
  }
  if (srv->draining) {
    drain_check(srv);
  }
}

/* ---- QUIC callbacks (owner half) ---------------------------------------- */

static void hs_want_write(h3wt_h3_conn *h3, void *ud) {
  conn_mark_dirty(ud);
}

static void q_send(h3wt_quic_conn *qc, const struct sockaddr *remote,
                   const uint8_t *data, size_t len, size_t gso, void *ud) {
  srv_conn *c = ud;
  h3wt_udp_send(&c->server->udp, remote, data, len, gso);
}

static int q_cid_added(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                       void *ud) {
  srv_conn *c = ud;
  return h3wt_cidmap_insert(&c->server->cids, cid, len, c);
}

static void q_cid_removed(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                          void *ud) {
  srv_conn *c = ud;
  if (h3wt_cidmap_find(&c->server->cids, cid, len) == c) {
    h3wt_cidmap_remove(&c->server->cids, cid, len);
  }
}

/* ---- UDP input ----------------------------------------------------------- */

static void on_packet(h3wt_server *srv, const struct sockaddr *remote,
                      const uint8_t *data, size_t len, uint64_t ts);

static void on_datagram(h3wt_udp *udp, const struct sockaddr *remote,
                        const uint8_t *data, size_t len, uint64_t ts,
                        void *user_data) {
  h3wt_server *srv = user_data;
  if (srv->closing || srv->close_deferred) {
    return; /* the rest of a receive batch after a close */
  }
  srv_enter(srv);
  on_packet(srv, remote, data, len, ts);
  srv_leave(srv);
}

static void on_packet(h3wt_server *srv, const struct sockaddr *remote,
                      const uint8_t *data, size_t len, uint64_t ts) {
  h3wt_udp *udp = &srv->udp;
  const struct sockaddr *local = (const struct sockaddr *)&udp->local;
  h3wt_quic_pkt_info pi;
  uint8_t out[1500];
  int rv = h3wt_quic_decode(data, len, &pi);
  if (rv < 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_TRACE, "udp", "dropped %zu bytes: not QUIC",
             len);
    return;
  }
  if (rv == 1) {
    /* RFC 9000 6.1 / 14.1: answer an unknown version only for a datagram
       as large as an Initial must be, so VN cannot amplify. */
    if (pi.long_header && len >= 1200) {
      ssize_t n = h3wt_quic_write_version_negotiation(out, sizeof(out), &pi);
      if (n > 0) {
        h3wt_udp_send(udp, remote, out, (size_t)n, 0);
      }
    }
    return;
  }
  srv_conn *c = h3wt_cidmap_find(&srv->cids, pi.dcid, pi.dcidlen);
  if (!c) {
    if (!pi.long_header) {
      /* A short-header packet for a connection we do not know (we
         restarted, or it timed out): tell the peer with a stateless
         reset so it need not wait for its idle timeout. */
      size_t n = h3wt_quic_write_stateless_reset(
          out, sizeof(out), srv->qcfg.static_secret, pi.dcid, pi.dcidlen,
          len);
      if (n) {
        h3wt_udp_send(udp, remote, out, n, 0);
      }
      return;
    }
    if (srv->closing || srv->draining) {
      return;
    }
    if (srv->handshakes.slots &&
        h3wt_ratemap_hit(&srv->handshakes, remote, ts)) {
      /* Over the rate for this address: no state until the client proves
         the address is its own by answering a Retry (RFC 9000 8.1.2). */
      ssize_t n = h3wt_quic_write_retry(out, sizeof(out), &srv->qcfg, remote,
                                        data, len, ts);
      if (n < 0) {
        return;
      }
      if (n > 0) {
        h3wt_udp_send(udp, remote, out, (size_t)n, 0);
        ++srv->stats.limit_max_handshakes_per_addr;
        if (srv->log.level >= H3WT_LOG_DEBUG) {
          char addr[64];
          h3wt_addr_format(remote, addr, sizeof(addr));
          H3WT_LOG(&srv->log, H3WT_LOG_DEBUG, "server",
                   "Retry sent to %s (over %u handshakes/s)", addr,
                   srv->settings.max_handshakes_per_addr);
        }
        return;
      }
      /* n == 0: this Initial answers a Retry; its token is checked below. */
    }
    if (srv->nconns >= srv->settings.max_connections) {
      ++srv->stats.limit_max_connections;
      H3WT_LOG(&srv->log, H3WT_LOG_WARN, "server",
               "connection limit (%u) reached: new connection dropped",
               srv->settings.max_connections);
      return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
      return;
    }
    c->server = srv;
    rv = h3wt_quic_conn_server_new(&c->qc, &srv->qcfg, local, remote, data,
                                   len, ts, c);
    if (rv != 0) {
      free(c);
      return;
    }
    if (h3wt_h3_conn_new(&c->owner.h3, &srv->hcfg, c->qc, 1, c) != 0) {
      /* conn_free() expects a linked connection: undo by hand. */
      uint8_t cids[4][20];
      size_t lens[4], n = h3wt_quic_conn_cids(c->qc, cids, lens, 4);
      for (size_t i = 0; i < n; ++i) {
        h3wt_cidmap_remove(&srv->cids, cids[i], lens[i]);
      }
      h3wt_quic_conn_del(c->qc);
      free(c);
      return;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns) {
      srv->conns->prev = c;
    }
    srv->conns = c;
    ++srv->nconns;
    ++srv->stats.connections_total;
    if (srv->log.level >= H3WT_LOG_DEBUG) {
      char addr[64];
      h3wt_addr_format(remote, addr, sizeof(addr));
      H3WT_LOG(&srv->log, H3WT_LOG_DEBUG, "server",
               "[%s] new connection from %s (%zu open)",
               h3wt_quic_conn_name(c->qc), addr, srv->nconns);
    }
  }
  if (c->dead) {
    return;
  }
  if (h3wt_quic_conn_read(c->qc, local, remote, data, len, ts) ==
      H3WT_QUIC_DEAD) {
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
    return;
  }
  conn_mark_dirty(c);
}

/* ---- lifecycle ----------------------------------------------------------- */

static char *keep(h3wt_server *srv, int slot, const char *s) {
  if (!s) {
    return NULL;
  }
  srv->strings[slot] = strdup(s);
  return srv->strings[slot];
}

int h3wt_server_new(h3wt_server **psrv, uv_loop_t *loop,
                    const h3wt_server_settings *settings) {
  h3wt_server *srv;
  char err[512];
  uint8_t key[16];
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
             : sizeof(*settings));
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
  if (h3wt_tls_server_ctx_new(&srv->tls, &topts, err, sizeof(err)) != 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_ERROR, "server", "TLS: %s", err);
    h3wt_server_del(srv);
    return H3WT_ERR_TLS;
  }
  if (h3wt_random(key, sizeof(key)) != 0 ||
      h3wt_cidmap_init(&srv->cids, key) != 0) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  if (srv->settings.max_handshakes_per_addr &&
      (h3wt_random(key, sizeof(key)) != 0 ||
       h3wt_ratemap_init(&srv->handshakes, 4096,
                         srv->settings.max_handshakes_per_addr, key) != 0)) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  srv->qcfg.txbuflen = H3WT_QUIC_TXBUF_MIN;
  srv->qcfg.txbuf = malloc(srv->qcfg.txbuflen);
  if (!srv->qcfg.txbuf || h3wt_random(srv->qcfg.static_secret, 32) != 0) {
    h3wt_server_del(srv);
    return H3WT_ERR_NOMEM;
  }
  h3wt_h3_fill_quic_callbacks(&srv->qcbs);
  srv->qcbs.send = q_send;
  srv->qcbs.cid_added = q_cid_added;
  srv->qcbs.cid_removed = q_cid_removed;
  srv->qcfg.log = &srv->log;
  srv->qcfg.tls = srv->tls;
  srv->qcfg.cbs = &srv->qcbs;
  srv->qcfg.qlog_dir = srv->settings.qlog_dir;
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
  srv->wt_limits.stats = &srv->wt_stats;
  srv->wt_limits.registry = &srv->sessions;
  srv->wt_limits.dgram_drop_oldest = srv->settings.datagram_drop_oldest;
  srv->wt_limits.dgram_max_age_ms = srv->settings.datagram_max_age_ms;
  srv->hcfg.wt = &srv->wt_limits;

  *psrv = srv;
  return 0;
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
  rv = h3wt_udp_open(&srv->udp, srv->loop, (struct sockaddr *)&ss, &srv->log,
                     on_datagram, srv);
  if (rv != 0 && strcmp(host, "::") == 0) {
    /* No IPv6 on this host: the IPv4 wildcard still serves. */
    uv_ip4_addr("0.0.0.0", srv->settings.port, (struct sockaddr_in *)&ss);
    rv = h3wt_udp_open(&srv->udp, srv->loop, (struct sockaddr *)&ss,
                       &srv->log, on_datagram, srv);
  }
  if (rv != 0) {
    return rv;
  }
  uv_prepare_init(srv->loop, &srv->flush);
  srv->flush.data = srv;
  uv_idle_init(srv->loop, &srv->spin);
  srv->spin.data = srv;
  srv->listening = 1;
  snprintf(srv->altsvc, sizeof(srv->altsvc), "h3=\":%u\"",
           h3wt_server_port(srv));
  uv_prepare_start(&srv->flush, flush_cb);
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
    size = sizeof(h3wt_server_stats);
    break;
  default:
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  w = &srv->wt_stats;
  st = srv->stats;
  st.version = out->version;
  st.connections_current = srv->nconns;
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
  st.udp_bytes_received = srv->udp.stats.rx_bytes;
  st.udp_datagrams_received = srv->udp.stats.rx_datagrams;
  st.udp_bytes_sent = srv->udp.stats.tx_bytes;
  st.udp_datagrams_sent = srv->udp.stats.tx_datagrams;
  st.udp_send_dropped = srv->udp.stats.tx_dropped;
  st.limit_max_streams_per_session = w->streams_refused_limit;
  st.limit_max_stream_queue = w->wouldblock_stream;
  st.limit_max_session_queue = w->wouldblock_session;
  st.limit_max_datagram_queue = w->dgrams_dropped_full;
  st.datagrams_dropped_oldest = w->dgrams_dropped_oldest;
  st.datagrams_dropped_expired = w->dgrams_dropped_expired;
  /* Later versions append fields: copy only what this caller's has (an
     older caller's struct is shorter). */
  memcpy(out, &st, size);
  return 0;
}

uint16_t h3wt_server_port(const h3wt_server *srv) {
  if (!srv->listening) {
    return 0;
  }
  const struct sockaddr *sa = (const struct sockaddr *)&srv->udp.local;
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

static size_t session_handler_size(int version) {
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
  size_t size = session_handler_size(handler_version);
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
  int rv = h3wt_static_mount_new(&m, prefix, dir);
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

void h3wt_server_close(h3wt_server *srv, h3wt_server_close_cb cb,
                       void *user_data) {
  if (srv->closing || srv->close_deferred) {
    return;
  }
  srv->close_cb = cb;
  srv->close_ud = user_data;
  if (srv->depth > 0) {
    /* Inside a callback: the connection that called may be in the middle
       of ngtcp2_conn_read_pkt.  srv_leave() closes. */
    srv->close_deferred = 1;
    return;
  }
  server_close_now(srv);
}

static void server_close_now(h3wt_server *srv) {
  uint64_t ts = h3wt_now_ns();
  if (srv->closing) {
    return;
  }
  assert(srv->depth == 0);
  srv->closing = 1;
  srv->pending_closes = 1; /* held until the end of this function */
  H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server", "closing %zu connection(s)",
           srv->nconns);
  while (srv->conns) {
    srv_conn *c = srv->conns;
    /* GOAWAY first, so a client knows no request was lost silently, then
       CONNECTION_CLOSE with H3_NO_ERROR. */
    if (c->owner.h3 && h3wt_h3_started(c->owner.h3)) {
      h3wt_h3_shutdown(c->owner.h3);
      h3wt_quic_conn_write(c->qc, ts);
    }
    h3wt_quic_conn_close(c->qc, H3WT_H3_NO_ERROR, "server shutting down", ts);
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
  }
  srv->dirty = NULL;
  if (srv->drain_timer_inited) {
    uv_timer_stop(&srv->drain_timer);
    ++srv->pending_closes;
    uv_close((uv_handle_t *)&srv->drain_timer, handle_closed);
  }
  if (srv->listening) {
    uv_prepare_stop(&srv->flush);
    uv_idle_stop(&srv->spin);
    srv->pending_closes += 3;
    uv_close((uv_handle_t *)&srv->flush, handle_closed);
    uv_close((uv_handle_t *)&srv->spin, handle_closed);
    h3wt_udp_close(&srv->udp, handle_closed, srv);
  }
  close_step(srv);
}

/* While draining: connections with nothing in flight (no request, no
   session) are closed; when none is left, the server closes. */
static void drain_check(h3wt_server *srv) {
  uint64_t ts = h3wt_now_ns();
  for (srv_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if (!c->dead && !c->requests) {
      h3wt_quic_conn_close(c->qc, H3WT_H3_NO_ERROR, "server shutting down",
                           ts);
      conn_free(c, H3WT_H3_NO_ERROR);
    }
  }
  if (srv->nconns == 0) {
    H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server", "drained");
    h3wt_server_close(srv, srv->close_cb, srv->close_ud);
  }
}

static void drain_deadline(uv_timer_t *t) {
  h3wt_server *srv = t->data;
  size_t sessions = 0;
  const char *reason = srv->shutdown_reason ? srv->shutdown_reason : "";
  srv_enter(srv);
  for (srv_conn *c = srv->conns; c; c = c->next) {
    h3wt_wt_conn *wt = c->owner.h3 ? h3wt_h3_wt(c->owner.h3) : NULL;
    if (wt && !c->dead) {
      sessions += h3wt_wt_session_count(wt);
      h3wt_wt_close_all(wt, srv->shutdown_code, reason);
    }
  }
  H3WT_LOG(&srv->log, H3WT_LOG_INFO, "server",
           "drain deadline: closing %zu connection(s), %zu session(s)",
           srv->nconns, sessions);
  /* The close capsules go out just before each CONNECTION_CLOSE. */
  h3wt_server_close(srv, srv->close_cb, srv->close_ud);
  srv_leave(srv);
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
  if (srv->depth > 0) {
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
           "draining %zu connection(s) (at most %" PRIu64 " ms)", srv->nconns,
           timeout_ms);
  for (srv_conn *c = srv->conns; c; c = c->next) {
    if (c->dead || !c->owner.h3) {
      continue;
    }
    if (h3wt_h3_started(c->owner.h3)) {
      h3wt_h3_shutdown(c->owner.h3); /* GOAWAY: no new requests */
    }
    h3wt_wt_conn *wt = h3wt_h3_wt(c->owner.h3);
    if (wt) {
      h3wt_wt_drain_all(wt);
    }
    conn_mark_dirty(c);
  }
  uv_timer_init(srv->loop, &srv->drain_timer);
  srv->drain_timer.data = srv;
  srv->drain_timer_inited = 1;
  uv_timer_start(&srv->drain_timer, drain_deadline, timeout_ms, 0);
  /* Idle connections go at the end of the next flush pass (after their
     GOAWAY is written); make sure one runs. */
  uv_idle_start(&srv->spin, spin_cb);
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
  h3wt_cidmap_free(&srv->cids);
  h3wt_ratemap_free(&srv->handshakes);
  h3wt_tls_ctx_del(srv->tls);
  free(srv->qcfg.txbuf);
  free(srv->shutdown_reason);
  for (size_t i = 0; i < sizeof(srv->strings) / sizeof(srv->strings[0]);
       ++i) {
    free(srv->strings[i]);
  }
  free(srv);
}
