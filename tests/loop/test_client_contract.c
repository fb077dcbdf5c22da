/*
 * The client side of the contract of h3wt.h: "any h3wt function may be
 * called from inside an h3wt callback".  For every callback the client
 * library makes (connection, response, and WebTransport session handler),
 * one fresh server and client on one libuv loop (UDP on 127.0.0.1, real
 * TLS) run a scenario that provokes them all, and the callback under test
 * does, the first time it runs, one of:
 *
 *   ops    a write (stream and datagram) to the other session,
 *          h3wt_stream_reset() of a live stream, and h3wt_session_close()
 *          of its own session (or of one still open); the test closes the
 *          client later, from a timer;
 *   close  the same, then h3wt_client_close();
 *   del    h3wt_client_del() on the open client.
 *
 * Before that it saves the connection's session for resumption
 * (h3wt_client_session_save(), h3wt_client_resumption()), which must
 * work, or say there is none yet, from inside any callback.
 *
 * Each run must end with every request and session told exactly once how
 * it ended, every stream closed that was opened, on_closed exactly once
 * (never after h3wt_client_del()), and uv_loop_close() == 0.  The sanitizer
 * build turns any use of memory freed under a callback into a failure, and
 * the library's debug assertions any packet written from inside ngtcp2.
 * H3WT_CONTRACT_VARIANT=ops|close|del runs one variant only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"

/* The callbacks under test. */
enum hook {
  H_CONNECTED,
  H_CLOSED,
  H_HEADERS,
  H_BODY,
  H_RESPONSE_CLOSE,
  H_SESSION_READY,
  H_STREAM_OPEN,
  H_STREAM_DATA,
  H_STREAM_RESET,
  H_STREAM_STOP_SENDING,
  H_STREAM_WRITABLE,
  H_STREAM_CLOSE,
  H_DATAGRAM,
  H_SESSION_DRAIN,
  H_SESSION_CLOSE
};

enum variant { V_OPS, V_CLOSE, V_DEL };
static const char *const variant_names[] = {"ops", "close", "del"};

#define BODY_LEN 5000
#define STREAM_QUEUE 8192 /* the client's per-stream limit: W blocks soon */
#define MAX_LIVE 64

/* ---- the server ---------------------------------------------------------- */

static void body_on_request(h3wt_request *req, void *rd) {
  static char body[BODY_LEN];
  memset(body, 'b', sizeof(body));
  h3wt_request_respond(req, 200, NULL, 0, body, sizeof(body));
}

static const h3wt_request_handler body_handler = {body_on_request, NULL, NULL,
                                                  NULL, NULL};

static int sv_request(h3wt_session *s, void *rd) {
  return 200;
}

/* /wt/a: a drain request now, and a server uni stream ("hi" and FIN) once
   the client's first datagram shows its side of the session is ready too
   (a stream that ends before then is dropped by the library). */
static void sv_ready(h3wt_session *s, void *rd) {
  if (strcmp(h3wt_session_path(s), "/wt/a") == 0) {
    h3wt_session_drain(s);
  }
}

/* A client bidi stream says what it wants by its first byte: 'E' echo,
   'R' reset and stop sending, 'W' swallow everything. */
static void sv_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  uintptr_t mode = (uintptr_t)h3wt_stream_get_data(st);
  if (!mode && n) {
    mode = d[0];
    h3wt_stream_set_data(st, (void *)mode);
    if (mode == 'R') {
      h3wt_stream_reset(st, 8);
      h3wt_stream_stop_sending(st, 9);
      return;
    }
  }
  if (mode == 'E') {
    if (n) {
      h3wt_stream_write(st, d, n);
    }
    if (fin) {
      h3wt_stream_finish(st);
    }
  }
}

static void sv_datagram(h3wt_session *s, const uint8_t *d, size_t n,
                        void *rd) {
  h3wt_stream *u;
  if (n == 4 && memcmp(d, "ping", 4) == 0 &&
      h3wt_session_open_stream(s, 0, &u) == 0) {
    h3wt_stream_write(u, "hi", 2);
    h3wt_stream_finish(u);
  }
  h3wt_session_send_datagram(s, d, n);
}

static const h3wt_session_handler server_handler = {
    .on_session_request = sv_request,
    .on_session_ready = sv_ready,
    .on_stream_data = sv_data,
    .on_datagram = sv_datagram,
};

/* ---- the client ---------------------------------------------------------- */

typedef struct tsess {
  h3wt_session *s; /* not used once closed */
  int ready, closed, close_err;
  h3wt_stream *keep; /* an open bidi stream, for writes from elsewhere */
} tsess;

static struct {
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_client *client; /* NULL once deleted */
  uv_timer_t tick, guard;
  enum hook hook;
  enum variant variant;
  int fired;      /* the callback under test ran (its first run acted) */
  int gone;       /* on_closed ran, or the client was deleted */
  int deleted;
  int closed_calls, closed_err;
  int resp_closes, resp_err;
  tsess sess[2]; /* /wt/a, /wt/b */
  int session_closes;
  h3wt_stream *live[MAX_LIVE];
  int streams_opened, streams_closed;
  int server_closed, driver_closed, driver_closed_a, after;
  int timed_out;
  int calls[H_SESSION_CLOSE + 1]; /* how often each callback ran */
} T;

static tsess *ts_of(h3wt_session *s) {
  for (int i = 0; i < 2; ++i) {
    if (!T.sess[i].closed && T.sess[i].s == s) {
      return &T.sess[i];
    }
  }
  return NULL;
}

static void live_add(h3wt_stream *st) {
  ++T.streams_opened;
  for (int i = 0; i < MAX_LIVE; ++i) {
    if (!T.live[i]) {
      T.live[i] = st;
      return;
    }
  }
  CHECK(!"too many streams");
}

static void live_remove(h3wt_stream *st) {
  for (int i = 0; i < MAX_LIVE; ++i) {
    if (T.live[i] == st) {
      T.live[i] = NULL;
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (T.sess[i].keep == st) {
      T.sess[i].keep = NULL;
    }
  }
}

/* Session and stream calls from inside a callback: a write to the other
   session, a reset, then a close of the current session (or of /wt/a). */
static void ops(h3wt_session *cur) {
  tsess *self = cur ? ts_of(cur) : NULL;
  for (int i = 0; i < 2; ++i) {
    tsess *o = &T.sess[i];
    if (o == self || !o->ready || o->closed) {
      continue;
    }
    if (o->keep) {
      h3wt_stream_write(o->keep, "more", 4);
    }
    h3wt_session_send_datagram(o->s, "other", 5);
  }
  for (int i = 0; i < MAX_LIVE; ++i) {
    if (T.live[i] && h3wt_stream_reset(T.live[i], 5) == 0) {
      break;
    }
  }
  for (int i = 0; i < 2 && !self; ++i) {
    if (T.sess[i].ready && !T.sess[i].closed) {
      self = &T.sess[i];
    }
  }
  if (self && self->ready) {
    h3wt_session_close(self->s, 77, "closed from a callback");
  }
}

/* Called by every client callback: acts on the first run of the one under
   test. */
static void act(enum hook h, h3wt_session *cur) {
  ++T.calls[h];
  if (h != T.hook || T.fired++) {
    return;
  }
  if (T.client) {
    /* The resumption calls read state: safe from any callback too (a
       session is there once a ticket came, or not yet). */
    static uint8_t saved[32768];
    size_t n = 0;
    int rv = h3wt_client_session_save(T.client, NULL, 0, &n);
    CHECK(rv == 0 || rv == H3WT_ERR_INVALID_STATE);
    if (rv == 0) {
      CHECK(n > 0 && n <= sizeof(saved));
      CHECK_EQ_INT(h3wt_client_session_save(T.client, saved, sizeof(saved),
                                            &n),
                   0);
    }
    CHECK_EQ_INT(h3wt_client_resumption(T.client) & H3WT_RESUMED, 0);
  }
  switch (T.variant) {
  case V_OPS:
    ops(cur);
    break;
  case V_CLOSE:
    ops(cur);
    h3wt_client_close(T.client);
    /* Twice is harmless. */
    h3wt_client_close(T.client);
    break;
  case V_DEL:
    h3wt_client_del(T.client);
    T.client = NULL;
    T.deleted = 1;
    T.gone = 1;
    break;
  }
}

static void cl_headers(h3wt_client_request *req, int status,
                       const h3wt_header *h, size_t n, void *ud) {
  CHECK_EQ_INT(status, 200);
  act(H_HEADERS, NULL);
}

static void cl_body(h3wt_client_request *req, const uint8_t *d, size_t n,
                    void *ud) {
  act(H_BODY, NULL);
}

static void cl_resp_close(h3wt_client_request *req, int err, uint64_t code,
                          void *ud) {
  ++T.resp_closes;
  T.resp_err = err;
  act(H_RESPONSE_CLOSE, NULL);
}

static const h3wt_response_handler resp_handler = {cl_headers, cl_body,
                                                   cl_resp_close};

static h3wt_stream *open_bidi(tsess *ts, const char *first, size_t len,
                              int fin) {
  h3wt_stream *st;
  if (h3wt_session_open_stream(ts->s, 1, &st) != 0) {
    return NULL;
  }
  live_add(st);
  h3wt_stream_write(st, first, len);
  if (fin) {
    h3wt_stream_finish(st);
  }
  return st;
}

static void cl_ready(h3wt_session *s, void *rd) {
  tsess *ts = ts_of(s);
  static uint8_t chunk[4096];
  ts->ready = 1;
  if (ts == &T.sess[0]) {
    /* Provokes on_stream_data and on_stream_close (echo), on_stream_reset
       (R), on_stream_writable (W), on_datagram (echo) and, through the
       server's answer to it, on_stream_open.  on_stream_stop_sending runs
       when we stop reading a stream ourselves (ngtcp2's stop_sending
       callback is about the local side). */
    open_bidi(ts, "Echo me", 7, 1);
    open_bidi(ts, "Reset me", 8, 0);
    h3wt_stream *e = open_bidi(ts, "Echo, unread", 12, 0);
    if (e) {
      h3wt_stream_stop_sending(e, 3);
    }
    h3wt_stream *w = open_bidi(ts, "W", 1, 0);
    memset(chunk, 'w', sizeof(chunk));
    for (int i = 0; w && i < 64; ++i) {
      if (h3wt_stream_write(w, chunk, sizeof(chunk)) != 0) {
        break;
      }
    }
    h3wt_session_send_datagram(s, "ping", 4);
  } else {
    ts->keep = open_bidi(ts, "Echo later", 10, 0);
  }
  act(H_SESSION_READY, s);
}

static void cl_stream_open(h3wt_stream *st, void *rd) {
  live_add(st);
  act(H_STREAM_OPEN, h3wt_stream_session(st));
}

static void cl_stream_data(h3wt_stream *st, const uint8_t *d, size_t n,
                           int fin, void *rd) {
  act(H_STREAM_DATA, h3wt_stream_session(st));
}

static void cl_stream_reset(h3wt_stream *st, uint32_t code, int has,
                            void *rd) {
  act(H_STREAM_RESET, h3wt_stream_session(st));
}

static void cl_stream_stop(h3wt_stream *st, uint32_t code, int has,
                           void *rd) {
  act(H_STREAM_STOP_SENDING, h3wt_stream_session(st));
}

static void cl_stream_writable(h3wt_stream *st, void *rd) {
  act(H_STREAM_WRITABLE, h3wt_stream_session(st));
}

static void cl_stream_close(h3wt_stream *st, void *rd) {
  ++T.streams_closed;
  live_remove(st);
  act(H_STREAM_CLOSE, h3wt_stream_session(st));
}

static void cl_datagram(h3wt_session *s, const uint8_t *d, size_t n,
                        void *rd) {
  act(H_DATAGRAM, s);
}

static void cl_drain(h3wt_session *s, void *rd) {
  act(H_SESSION_DRAIN, s);
}

static void cl_session_close(h3wt_session *s, int err, uint32_t code,
                             const char *reason, size_t rl, void *rd) {
  tsess *ts = ts_of(s);
  CHECK(ts != NULL); /* told once only */
  ++T.session_closes;
  if (ts) {
    ts->closed = 1;
    ts->close_err = err;
  }
  act(H_SESSION_CLOSE, s);
}

static const h3wt_session_handler client_handler = {
    .on_session_ready = cl_ready,
    .on_stream_open = cl_stream_open,
    .on_stream_data = cl_stream_data,
    .on_stream_reset = cl_stream_reset,
    .on_stream_stop_sending = cl_stream_stop,
    .on_stream_writable = cl_stream_writable,
    .on_stream_close = cl_stream_close,
    .on_datagram = cl_datagram,
    .on_session_drain = cl_drain,
    .on_session_close = cl_session_close,
};

static void on_connected(h3wt_client *cl, void *ud) {
  act(H_CONNECTED, NULL);
}

static void on_closed(h3wt_client *cl, int err, void *ud) {
  CHECK(!T.deleted);
  ++T.closed_calls;
  T.closed_err = err;
  T.gone = 1;
  /* The connection is gone: new work is refused. */
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/body", NULL, 0, NULL, 0,
                                        &resp_handler, NULL, NULL),
               H3WT_ERR_CLOSED);
  act(H_CLOSED, NULL);
  if (T.hook == H_CLOSED && T.variant == V_DEL) {
    CHECK(T.deleted); /* from inside on_closed, just now */
  }
}

/* ---- driving ------------------------------------------------------------- */

static void finish_case(void) {
  if (!T.server_closed) {
    T.server_closed = 1;
    h3wt_server_close(T.server, NULL, NULL);
  }
  uv_timer_stop(&T.tick);
  uv_timer_stop(&T.guard);
  if (!uv_is_closing((uv_handle_t *)&T.tick)) {
    uv_close((uv_handle_t *)&T.tick, NULL);
    uv_close((uv_handle_t *)&T.guard, NULL);
  }
}

/* Every 5 ms, from outside any client callback. */
static void tick_cb(uv_timer_t *t) {
  if (T.gone) {
    finish_case();
    return;
  }
  if (!T.fired) {
    int settled = T.sess[0].ready && T.sess[1].ready && T.resp_closes;
    /* The two callbacks nothing in the scenario provokes by itself. */
    if (T.hook == H_SESSION_CLOSE && settled && !T.driver_closed_a) {
      T.driver_closed_a = 1;
      h3wt_session_close(T.sess[0].s, 1, "from the driver");
    }
    if (T.hook == H_CLOSED && settled && !T.server_closed) {
      /* The server goes first: the client ends in its draining timer. */
      T.server_closed = 1;
      h3wt_server_close(T.server, NULL, NULL);
    }
    return;
  }
  /* The callback acted and the client lives on: close it from here after
     a few ticks, so what the callback queued is flushed first. */
  if (!T.driver_closed && ++T.after >= 4) {
    T.driver_closed = 1;
    h3wt_client_close(T.client);
  }
}

static void guard_cb(uv_timer_t *t) {
  T.timed_out = 1;
  if (T.client && !T.gone) {
    h3wt_client_close(T.client);
  }
  finish_case();
}

static char cert[256], key[256];

static void run(enum hook hook, enum variant variant) {
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {on_connected, on_closed};

  memset(&T, 0, sizeof(T));
  T.hook = hook;
  T.variant = variant;
  TEST_CONTEXT("variant %s", variant_names[variant]);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&T.server, &T.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(T.server, "GET", "/body", &body_handler,
                                 NULL),
               0);
  CHECK_EQ_INT(h3wt_server_webtransport(T.server, "/wt/a", &server_handler,
                                        NULL),
               0);
  CHECK_EQ_INT(h3wt_server_webtransport(T.server, "/wt/b", &server_handler,
                                        NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(T.server), 0);

  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(T.server);
  cs.insecure = 1;
  cs.max_stream_queue = STREAM_QUEUE;
  if (getenv("H3WT_TEST_VERBOSE")) {
    cs.log_cb = h3wt_log_stderr;
    cs.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_client_new(&T.client, &T.loop, &cs, &cbs, NULL), 0);
  /* All queued before the handshake ends. */
  CHECK_EQ_INT(h3wt_client_request_send(T.client, "GET", "/body", NULL, 0,
                                        NULL, 0, &resp_handler, NULL, NULL),
               0);
  CHECK_EQ_INT(h3wt_client_webtransport(T.client, "/wt/a", NULL, NULL, 0,
                                        &client_handler, NULL,
                                        &T.sess[0].s),
               0);
  CHECK_EQ_INT(h3wt_client_webtransport(T.client, "/wt/b", NULL, NULL, 0,
                                        &client_handler, NULL,
                                        &T.sess[1].s),
               0);
  uv_timer_init(&T.loop, &T.tick);
  uv_timer_start(&T.tick, tick_cb, 5, 5);
  uv_timer_init(&T.loop, &T.guard);
  uv_timer_start(&T.guard, guard_cb, 5000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  if (getenv("H3WT_TEST_VERBOSE")) {
    for (int i = 0; i <= H_SESSION_CLOSE; ++i) {
      fprintf(stderr, "callback %d ran %d time(s)\n", i, T.calls[i]);
    }
  }
  CHECK(!T.timed_out);
  CHECK(T.fired >= 1);
  /* Told exactly once how each request and session ended. */
  CHECK_EQ_INT(T.resp_closes, 1);
  CHECK_EQ_INT(T.session_closes, 2);
  CHECK(T.sess[0].closed && T.sess[1].closed);
  CHECK_EQ_INT(T.streams_opened, T.streams_closed);
  if (variant == V_DEL && hook != H_CLOSED) {
    CHECK_EQ_INT(T.closed_calls, 0); /* nothing after h3wt_client_del() */
  } else {
    CHECK_EQ_INT(T.closed_calls, 1);
  }
  if (T.client) {
    h3wt_client_del(T.client);
  }
  h3wt_server_del(T.server);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
}

/* H3WT_CONTRACT_VARIANT=ops|close|del runs one variant only (to tell
   which one a crash is in). */
static void run_all(enum hook hook) {
  const char *only = getenv("H3WT_CONTRACT_VARIANT");
  for (int v = V_OPS; v <= V_DEL; ++v) {
    if (!only || strcmp(only, variant_names[v]) == 0) {
      run(hook, (enum variant)v);
    }
  }
}

TEST(on_connected) { run_all(H_CONNECTED); }
TEST(on_closed) { run_all(H_CLOSED); }
TEST(on_headers) { run_all(H_HEADERS); }
TEST(on_body) { run_all(H_BODY); }
TEST(on_response_close) { run_all(H_RESPONSE_CLOSE); }
TEST(on_session_ready) { run_all(H_SESSION_READY); }
TEST(on_stream_open) { run_all(H_STREAM_OPEN); }
TEST(on_stream_data) { run_all(H_STREAM_DATA); }
TEST(on_stream_reset) { run_all(H_STREAM_RESET); }
TEST(on_stream_stop_sending) { run_all(H_STREAM_STOP_SENDING); }
TEST(on_stream_writable) { run_all(H_STREAM_WRITABLE); }
TEST(on_stream_close) { run_all(H_STREAM_CLOSE); }
TEST(on_datagram) { run_all(H_DATAGRAM); }
TEST(on_session_drain) { run_all(H_SESSION_DRAIN); }
TEST(on_session_close) { run_all(H_SESSION_CLOSE); }

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(on_connected),
      TEST_ENTRY(on_closed),
      TEST_ENTRY(on_headers),
      TEST_ENTRY(on_body),
      TEST_ENTRY(on_response_close),
      TEST_ENTRY(on_session_ready),
      TEST_ENTRY(on_stream_open),
      TEST_ENTRY(on_stream_data),
      TEST_ENTRY(on_stream_reset),
      TEST_ENTRY(on_stream_stop_sending),
      TEST_ENTRY(on_stream_writable),
      TEST_ENTRY(on_stream_close),
      TEST_ENTRY(on_datagram),
      TEST_ENTRY(on_session_drain),
      TEST_ENTRY(on_session_close),
  };
  char dir[] = "/tmp/h3wt-contract-XXXXXX";
  int rv;
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  rv = TEST_MAIN(argc, argv, tests);
  loop_devcert_remove(dir, cert, key);
  return rv;
}
