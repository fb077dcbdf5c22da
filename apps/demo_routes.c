/*
 * demo_routes: the demo server's HTTP/3 and WebTransport routes (see
 * demo_routes.h).  Only the public API (h3wt.h) is used here, so this file
 * doubles as an example of embedding h3wt.
 */
#include "demo_routes.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static const char hello_text[] =
    "Hello from h3wt, an HTTP/3 and WebTransport server.\n";

/* ---- GET / -------------------------------------------------------------- */

static void hello_on_request(h3wt_request *req, void *data) {
  h3wt_header h[] = {{"content-type", 12, "text/plain; charset=utf-8", 25}};
  (void)data;
  h3wt_request_respond(req, 200, h, 1, hello_text, sizeof(hello_text) - 1);
}

static const h3wt_request_handler hello_handler = {hello_on_request, NULL, NULL,
                                                   NULL, NULL};

/* ---- POST /echo ---------------------------------------------------------- */

typedef struct echo_body {
  char *data;
  size_t len, cap;
} echo_body;

static void echo_on_request(h3wt_request *req, void *data) {
  /* The body arrives in pieces; the server already enforces
     max_request_body, so the buffer is bounded. */
  (void)data;
  h3wt_request_set_data(req, calloc(1, sizeof(echo_body)));
}

static void echo_on_body(h3wt_request *req, const uint8_t *data, size_t len,
                         void *rd) {
  echo_body *b = h3wt_request_get_data(req);
  (void)rd;
  if (!b || len == 0) {
    return;
  }
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + len) {
      cap *= 2;
    }
    char *n = realloc(b->data, cap);
    if (!n) {
      h3wt_request_reset(req, 0x102);
      return;
    }
    b->data = n;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

static void respond_json(h3wt_request *req, int status, json_t *v) {
  char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
  h3wt_header h[] = {{"content-type", 12, "application/json", 16}};
  if (!s) {
    h3wt_request_reset(req, 0x102);
    return;
  }
  size_t n = strlen(s);
  s[n] = '\n'; /* json_dumps leaves room for its NUL: reuse it */
  h3wt_request_respond(req, status, h, 1, s, n + 1);
  free(s);
}

static void echo_on_end(h3wt_request *req, void *rd) {
  echo_body *b = h3wt_request_get_data(req);
  json_error_t err;
  json_t *root;
  (void)rd;
  if (!b) {
    h3wt_request_reset(req, 0x102);
    return;
  }
  /* JSON_DECODE_ANY: any JSON value echoes, not only objects/arrays. */
  root = json_loadb(b->data ? b->data : "", b->len, JSON_DECODE_ANY, &err);
  if (!root) {
    json_t *e = json_pack("{s:s, s:s, s:i, s:i, s:i}", "error", "invalid JSON",
                          "detail", err.text, "line", err.line, "column",
                          err.column, "position", err.position);
    respond_json(req, 400, e);
    json_decref(e);
    return;
  }
  respond_json(req, 200, root);
  json_decref(root);
}

static void echo_on_close(h3wt_request *req, uint64_t code, void *rd) {
  echo_body *b = h3wt_request_get_data(req);
  (void)code;
  (void)rd;
  if (b) {
    free(b->data);
    free(b);
  }
}

static const h3wt_request_handler echo_handler = {
    echo_on_request, echo_on_body, echo_on_end, NULL, echo_on_close};

int demo_routes_http(h3wt_server *server) {
  int rv = h3wt_server_route(server, "GET", "/", &hello_handler, NULL);
  if (rv == 0) {
    rv = h3wt_server_route(server, "POST", "/echo", &echo_handler, NULL);
  }
  return rv;
}

/* ======================================================================== */
/* WebTransport                                                              */
/* ======================================================================== */

/* Limits of the demo routes (the library enforces its own on top). */
#define ECHO_CHUNK 65536                  /* bytes per stream write */
#define ECHO_MAX_BUFFERED (16u << 20)     /* per stream, refused by write */
/* Waiting bytes at which the echo stops reading its peer (who then waits
   on flow control) until the way back drains to half of it. */
#define ECHO_PAUSE_AT (1u << 20)
#define ECHO_MAX_BUFFERED_ALL (64u << 20) /* all echo streams together */
#define TICK_INTERVAL_MS 500

/* WebTransport application error codes the demo uses on streams. */
#define DEMO_ERR_OVERLOAD 0x10u  /* echo: too much buffered */
/* 0x11 was the chat route's "message too large" (the chat is on channels
   now: demo_channels.c). */
#define DEMO_ERR_NO_STREAM 0x12u /* echo: no server stream to answer on */

typedef struct wt_route {
  demo_wt *wt;
  const char *path;
} wt_route;

struct demo_wt {
  uv_loop_t *loop;
  char *origin;
  h3wt_log_cb log_cb;
  void *log_ud;
  h3wt_log_level log_level;
  wt_route echo, ticker;
  size_t echo_buffered; /* bytes held by all echo pipes */
};

static void dlog(const demo_wt *wt, h3wt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dlog(const demo_wt *wt, h3wt_log_level level, const char *fmt,
                 ...) {
  char buf[2048];
  va_list ap;
  if (!wt->log_cb || level > wt->log_level) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  wt->log_cb(level, "demo", buf, wt->log_ud);
}

/* Wall-clock milliseconds (JSON "ts" fields). */
static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies a peer-supplied string for a log line: printable ASCII stays,
   everything else (and ' and \) becomes \xNN, so a reason can neither
   forge log lines nor break the quoting. */
static void escape_for_log(const char *s, size_t len, char *out,
                           size_t outlen) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len && o + 5 < outlen; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\') {
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
}

static const char *session_end_text(int err) {
  switch (err) {
  case H3WT_SESSION_CLOSED:
    return "";
  case H3WT_SESSION_RESET:
    return " (CONNECT stream reset)";
  case H3WT_SESSION_CONN_LOST:
    return " (connection lost)";
  default:
    return " (ended)";
  }
}

static void log_session_close(const wt_route *r, h3wt_session *s, int err,
                              uint32_t code, const char *reason,
                              size_t reasonlen) {
  char esc[1024 * 4 + 8];
  escape_for_log(reason ? reason : "", reason ? reasonlen : 0, esc,
                 sizeof(esc));
  dlog(r->wt, H3WT_LOG_INFO,
       "[%s s%" PRId64 "] session closed: code %" PRIu32 " reason '%s'%s",
       r->path, h3wt_session_id(s), code, esc, session_end_text(err));
}

/* Shared by all routes: the origin check. */
static int check_origin(const wt_route *r, h3wt_session *s) {
  const char *origin = h3wt_session_origin(s);
  if (r->wt->origin && strcmp(origin ? origin : "", r->wt->origin) != 0) {
    char esc[512];
    escape_for_log(origin ? origin : "", origin ? strlen(origin) : 0, esc,
                   sizeof(esc));
    dlog(r->wt, H3WT_LOG_INFO, "[%s s%" PRId64 "] origin '%s' refused: 403",
         r->path, h3wt_session_id(s), esc);
    return 403;
  }
  return 200;
}

static void log_session_ready(const wt_route *r, h3wt_session *s) {
  char esc[512];
  const char *origin = h3wt_session_origin(s);
  escape_for_log(origin ? origin : "", origin ? strlen(origin) : 0, esc,
                 sizeof(esc));
  dlog(r->wt, H3WT_LOG_INFO, "[%s s%" PRId64 "] session ready (origin '%s')",
       r->path, h3wt_session_id(s), esc);
}

/* ---- /wt/echo -------------------------------------------------------------
 * A pipe joins the stream bytes come in on and the stream they go back on:
 * the same stream for bidi, a server-opened uni stream for a peer uni
 * stream.  Bytes a write refuses (WOULDBLOCK) wait in the pipe, in order,
 * and go out from on_stream_writable; the peer's FIN becomes our FIN once
 * they are all out.  The pipe is freed when both its streams are closed. */

typedef struct echo_pipe {
  demo_wt *wt;
  h3wt_stream *in;  /* NULL once closed */
  h3wt_stream *out; /* NULL once closed (or never opened) */
  uint8_t *buf;     /* waiting bytes: [off, len) */
  size_t off, len, cap;
  int fin;  /* the peer finished: finish out after the waiting bytes */
  int done; /* out was finished or reset: drop whatever comes */
  int paused; /* reading in is paused: the way back is behind */
} echo_pipe;

static void pipe_drop_buffer(echo_pipe *p) {
  p->wt->echo_buffered -= p->len - p->off;
  free(p->buf);
  p->buf = NULL;
  p->off = p->len = p->cap = 0;
}

static void pipe_abort(echo_pipe *p, uint32_t code) {
  pipe_drop_buffer(p);
  if (!p->done && p->out) {
    h3wt_stream_reset(p->out, code);
  }
  p->done = 1;
  if (p->in) {
    h3wt_stream_stop_sending(p->in, code);
  }
}

static int pipe_keep(echo_pipe *p, const uint8_t *data, size_t len) {
  size_t waiting = p->len - p->off;
  if (waiting + len > ECHO_MAX_BUFFERED ||
      p->wt->echo_buffered + len > ECHO_MAX_BUFFERED_ALL) {
    return -1;
  }
  if (p->off > 0 && p->len + len > p->cap) {
    memmove(p->buf, p->buf + p->off, waiting);
    p->off = 0;
    p->len = waiting;
  }
  if (p->len + len > p->cap) {
    size_t cap = p->cap ? p->cap : ECHO_CHUNK;
    uint8_t *n;
    while (cap < p->len + len) {
      cap *= 2;
    }
    n = realloc(p->buf, cap);
    if (!n) {
      return -1;
    }
    p->buf = n;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, data, len);
  p->len += len;
  p->wt->echo_buffered += len;
  return 0;
}

/* Writes data (or keeps what the stream refuses).  Returns 0, or -1 when
   the pipe had to give up. */
static int pipe_write(echo_pipe *p, const uint8_t *data, size_t len,
                      size_t *written) {
  *written = 0;
  while (len > 0) {
    size_t n = len < ECHO_CHUNK ? len : ECHO_CHUNK;
    int rv = h3wt_stream_write(p->out, data, n);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return 0;
    }
    if (rv != 0) {
      dlog(p->wt, H3WT_LOG_DEBUG, "echo: stream %" PRId64 " write: %s",
           h3wt_stream_id(p->out), h3wt_strerror(rv));
      return -1;
    }
    data += n;
    len -= n;
    *written += n;
  }
  return 0;
}

static void pipe_flush(echo_pipe *p) {
  size_t w;
  if (p->done || !p->out) {
    return;
  }
  if (p->len > p->off) {
    if (pipe_write(p, p->buf + p->off, p->len - p->off, &w) != 0) {
      pipe_drop_buffer(p);
      p->done = 1;
      return;
    }
    p->off += w;
    p->wt->echo_buffered -= w;
    if (p->paused && p->in && p->len - p->off <= ECHO_PAUSE_AT / 2) {
      /* The way back caught up: read the peer again (what it sent
         meanwhile comes in the flush pass). */
      h3wt_stream_resume_reading(p->in);
      p->paused = 0;
    }
    if (p->off < p->len) {
      return; /* on_stream_writable resumes */
    }
    if (p->cap > 4 * ECHO_CHUNK) {
      pipe_drop_buffer(p); /* don't sit on a big buffer */
    } else {
      p->off = p->len = 0;
    }
  }
  if (p->fin) {
    int rv = h3wt_stream_finish(p->out);
    if (rv != 0) {
      dlog(p->wt, H3WT_LOG_DEBUG, "echo: finish %" PRId64 ": %s",
           h3wt_stream_id(p->out), h3wt_strerror(rv));
    }
    p->done = 1;
  }
}

static void pipe_push(echo_pipe *p, const uint8_t *data, size_t len) {
  size_t w = 0;
  if (p->done || !p->out || len == 0) {
    return;
  }
  if (p->len == p->off) { /* nothing waiting: straight to the stream */
    if (pipe_write(p, data, len, &w) != 0) {
      pipe_drop_buffer(p);
      p->done = 1;
      return;
    }
  }
  if (w < len && p->len == p->off) {
    dlog(p->wt, H3WT_LOG_DEBUG,
         "echo: stream %" PRId64 " blocked (WOULDBLOCK): keeping bytes until "
         "it is writable",
         h3wt_stream_id(p->out));
  }
  if (w < len && pipe_keep(p, data + w, len - w) != 0) {
    dlog(p->wt, H3WT_LOG_WARN,
         "echo: stream %" PRId64 ": peer sends faster than it reads "
         "(%zu bytes waiting): reset with code %u",
         h3wt_stream_id(p->in), p->len - p->off, DEMO_ERR_OVERLOAD);
    pipe_abort(p, DEMO_ERR_OVERLOAD);
    return;
  }
  if (p->len - p->off > ECHO_PAUSE_AT && p->in && !p->paused &&
      h3wt_stream_pause_reading(p->in) == 0) {
    /* Backpressure: the peer sends faster than the echo gets back to it
       (its reading slower, or our sending paced): stop taking its bytes,
       so it waits on the stream's flow control instead of the buffer
       growing to the reset above. */
    p->paused = 1;
  }
}

static void pipe_maybe_free(echo_pipe *p) {
  if (!p->in && !p->out) {
    pipe_drop_buffer(p);
    free(p);
  }
}

static int wt_on_session_request(h3wt_session *s, void *rd) {
  const wt_route *r = rd;
  /* A native client can carry a credential in a CONNECT header (browsers
     cannot set one); an embedder would check it here.  The demo only says
     that one arrived, at debug level, and never logs its value. */
  const char *token = h3wt_session_header(s, "x-token");
  if (token) {
    dlog(r->wt, H3WT_LOG_DEBUG, "[%s s%" PRId64 "] x-token: %zu bytes",
         r->path, h3wt_session_id(s), strlen(token));
  }
  return check_origin(r, s);
}

static void echo_on_session_ready(h3wt_session *s, void *rd) {
  log_session_ready(rd, s);
}

static void echo_on_stream_open(h3wt_stream *st, void *rd) {
  wt_route *r = rd;
  echo_pipe *p = calloc(1, sizeof(*p));
  if (!p) {
    h3wt_stream_stop_sending(st, DEMO_ERR_OVERLOAD);
    if (h3wt_stream_is_bidi(st)) {
      h3wt_stream_reset(st, DEMO_ERR_OVERLOAD);
    }
    return;
  }
  p->wt = r->wt;
  p->in = st;
  h3wt_stream_set_data(st, p);
  if (h3wt_stream_is_bidi(st)) {
    p->out = st;
  } else {
    h3wt_stream *out = NULL;
    int rv = h3wt_session_open_stream(h3wt_stream_session(st), 0, &out);
    if (rv != 0) {
      dlog(r->wt, H3WT_LOG_WARN,
           "echo: no server stream to answer %" PRId64 " on: %s",
           h3wt_stream_id(st), h3wt_strerror(rv));
      p->done = 1;
      h3wt_stream_stop_sending(st, DEMO_ERR_NO_STREAM);
      return;
    }
    p->out = out;
    h3wt_stream_set_data(out, p);
  }
  dlog(r->wt, H3WT_LOG_DEBUG, "echo: stream %" PRId64 " (%s) open",
       h3wt_stream_id(st), h3wt_stream_is_bidi(st) ? "bidi" : "uni");
}

static void echo_on_stream_data(h3wt_stream *st, const uint8_t *data,
                                size_t len, int fin, void *rd) {
  echo_pipe *p = h3wt_stream_get_data(st);
  (void)rd;
  if (!p || st != p->in) {
    return;
  }
  pipe_push(p, data, len);
  if (fin) {
    p->fin = 1;
    pipe_flush(p);
  }
}

static void echo_on_stream_writable(h3wt_stream *st, void *rd) {
  echo_pipe *p = h3wt_stream_get_data(st);
  (void)rd;
  if (p && st == p->out) {
    pipe_flush(p);
  }
}

/* The peer reset its sending side with code N: reset ours with N. */
static void echo_on_stream_reset(h3wt_stream *st, uint32_t code, int has_code,
                                 void *rd) {
  echo_pipe *p = h3wt_stream_get_data(st);
  wt_route *r = rd;
  if (!p) {
    return;
  }
  if (!has_code) {
    code = 0;
  }
  dlog(r->wt, H3WT_LOG_INFO,
       "echo: stream %" PRId64 " reset by the peer with code %" PRIu32
       "%s: mirrored",
       h3wt_stream_id(st), code, has_code ? "" : " (not a WT code)");
  pipe_drop_buffer(p);
  if (!p->done && p->out) {
    h3wt_stream_reset(p->out, code);
  }
  p->done = 1;
}

/* The peer asked us to stop sending with code N: reset with N (as QUIC
   wants) and ask it to stop sending on the stream that feeds this one. */
static void echo_on_stream_stop_sending(h3wt_stream *st, uint32_t code,
                                        int has_code, void *rd) {
  echo_pipe *p = h3wt_stream_get_data(st);
  wt_route *r = rd;
  if (!p || st != p->out) {
    return;
  }
  if (!has_code) {
    code = 0;
  }
  dlog(r->wt, H3WT_LOG_INFO,
       "echo: stream %" PRId64 " STOP_SENDING from the peer with code %" PRIu32
       ": mirrored",
       h3wt_stream_id(st), code);
  pipe_drop_buffer(p);
  if (!p->done) {
    h3wt_stream_reset(st, code);
  }
  p->done = 1;
  if (p->in) {
    h3wt_stream_stop_sending(p->in, code);
  }
}

static void echo_on_stream_close(h3wt_stream *st, void *rd) {
  echo_pipe *p = h3wt_stream_get_data(st);
  (void)rd;
  if (!p) {
    return;
  }
  h3wt_stream_set_data(st, NULL);
  if (st == p->in) {
    p->in = NULL;
  }
  if (st == p->out) {
    p->out = NULL;
    pipe_drop_buffer(p);
    p->done = 1;
  }
  pipe_maybe_free(p);
}

static void echo_on_datagram(h3wt_session *s, const uint8_t *data, size_t len,
                             void *rd) {
  wt_route *r = rd;
  /* An empty datagram may come with data == NULL. */
  int rv = h3wt_session_send_datagram(s, len ? data : (const uint8_t *)"", len);
  if (rv != 0) {
    dlog(r->wt, H3WT_LOG_DEBUG, "echo: datagram of %zu bytes not echoed: %s",
         len, h3wt_strerror(rv));
  }
}

static void wt_on_session_close(h3wt_session *s, int err, uint32_t code,
                                const char *reason, size_t reasonlen,
                                void *rd) {
  log_session_close(rd, s, err, code, reason, reasonlen);
}

static const h3wt_session_handler echo_wt_handler = {
    .on_session_request = wt_on_session_request,
    .on_session_ready = echo_on_session_ready,
    .on_stream_open = echo_on_stream_open,
    .on_stream_data = echo_on_stream_data,
    .on_stream_reset = echo_on_stream_reset,
    .on_stream_stop_sending = echo_on_stream_stop_sending,
    .on_stream_writable = echo_on_stream_writable,
    .on_stream_close = echo_on_stream_close,
    .on_datagram = echo_on_datagram,
    .on_session_close = wt_on_session_close,
};

/* ---- /wt/ticker
 * --------------------------------------------------------------- On session
 * ready: a server uni stream and a libuv timer; every TICK_INTERVAL_MS a JSON
 * line {"type":"tick","n":N,"ts":MS}\n on the stream and the same JSON as a
 * datagram.  A tick the stream refuses (the reader is slow) is skipped, not
 * queued: n shows the gap.  The timer is closed when the session ends. */

typedef struct ticker {
  demo_wt *wt;
  h3wt_session *s;
  h3wt_stream *st; /* NULL once closed */
  uv_timer_t timer;
  uint64_t n, skipped;
} ticker;

static void ticker_freed(uv_handle_t *h) {
  free(h->data);
}

static void ticker_tick(uv_timer_t *timer) {
  ticker *t = timer->data;
  char line[128];
  int n = snprintf(line, sizeof(line),
                   "{\"type\":\"tick\",\"n\":%" PRIu64 ",\"ts\":%" PRId64 "}\n",
                   ++t->n, now_ms());
  if (t->st) {
    int rv = h3wt_stream_write(t->st, line, (size_t)n);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      t->skipped++;
    } else if (rv != 0) {
      dlog(t->wt, H3WT_LOG_DEBUG, "ticker s%" PRId64 ": stream: %s",
           h3wt_session_id(t->s), h3wt_strerror(rv));
    }
  }
  /* The datagram carries the same JSON without the newline. */
  h3wt_session_send_datagram(t->s, line, (size_t)n - 1);
}

static void ticker_on_session_ready(h3wt_session *s, void *rd) {
  wt_route *r = rd;
  ticker *t = calloc(1, sizeof(*t));
  int rv;
  log_session_ready(r, s);
  if (!t) {
    h3wt_session_close(s, 1, "out of memory");
    return;
  }
  t->wt = r->wt;
  t->s = s;
  uv_timer_init(r->wt->loop, &t->timer);
  t->timer.data = t;
  h3wt_session_set_data(s, t);
  rv = h3wt_session_open_stream(s, 0, &t->st);
  if (rv != 0) {
    t->st = NULL;
    dlog(r->wt, H3WT_LOG_WARN,
         "ticker s%" PRId64 ": no stream (%s): "
         "datagrams only",
         h3wt_session_id(s), h3wt_strerror(rv));
  } else {
    h3wt_stream_set_data(t->st, t);
  }
  uv_timer_start(&t->timer, ticker_tick, 0, TICK_INTERVAL_MS);
}

static void ticker_on_stream_close(h3wt_stream *st, void *rd) {
  ticker *t = h3wt_stream_get_data(st);
  (void)rd;
  if (t && t->st == st) {
    t->st = NULL;
  }
}

static void ticker_on_session_close(h3wt_session *s, int err, uint32_t code,
                                    const char *reason, size_t reasonlen,
                                    void *rd) {
  ticker *t = h3wt_session_get_data(s);
  log_session_close(rd, s, err, code, reason, reasonlen);
  if (t) {
    h3wt_session_set_data(s, NULL);
    dlog(t->wt, H3WT_LOG_DEBUG,
         "ticker s%" PRId64 ": %" PRIu64 " ticks, %" PRIu64 " skipped",
         h3wt_session_id(s), t->n, t->skipped);
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, ticker_freed);
  }
}

static const h3wt_session_handler ticker_wt_handler = {
    .on_session_request = wt_on_session_request,
    .on_session_ready = ticker_on_session_ready,
    .on_stream_close = ticker_on_stream_close,
    .on_session_close = ticker_on_session_close,
};

/* ---- setup
 * ------------------------------------------------------------------------ */

int demo_routes_wt(h3wt_server *server, uv_loop_t *loop,
                   const demo_wt_opts *opts, demo_wt **pwt) {
  demo_wt *wt = calloc(1, sizeof(*wt));
  int rv;
  if (!wt) {
    return H3WT_ERR_NOMEM;
  }
  wt->loop = loop;
  wt->log_cb = opts->log_cb;
  wt->log_ud = opts->log_user_data;
  wt->log_level = opts->log_level;
  if (opts->origin) {
    wt->origin = strdup(opts->origin);
  }
  if (opts->origin && !wt->origin) {
    demo_wt_del(wt);
    return H3WT_ERR_NOMEM;
  }
  wt->echo = (wt_route){wt, "/wt/echo"};
  wt->ticker = (wt_route){wt, "/wt/ticker"};
  rv = h3wt_server_webtransport(server, wt->echo.path, &echo_wt_handler,
                                &wt->echo);
  if (rv == 0) {
    rv = h3wt_server_webtransport(server, wt->ticker.path, &ticker_wt_handler,
                                  &wt->ticker);
  }
  if (rv != 0) {
    demo_wt_del(wt); /* the server is deleted by the caller: no session yet */
    return rv;
  }
  *pwt = wt;
  return 0;
}

void demo_wt_del(demo_wt *wt) {
  if (!wt) {
    return;
  }
  free(wt->origin);
  free(wt);
}
