/*
 * Session flow control (draft "Flow Control": WT_MAX_DATA, WT_MAX_STREAMS,
 * WT_DATA_BLOCKED, WT_STREAMS_BLOCKED and the SETTINGS_WT_INITIAL_*
 * settings) between a real h3wt server and client on one libuv loop (UDP
 * on 127.0.0.1, real TLS).  Both announce limits, so flow control is on,
 * except in the last case, where the client announces none (as browsers
 * today) and nothing may be enforced.
 *
 *  - window_smaller_than_transfer: a 64 KiB session window each way and
 *    2 MB echoed on one stream: it completes only because WT_MAX_DATA
 *    capsules flow both ways (counted on both sides), and no side ever
 *    finds the other over its limit.
 *  - stream_limit: the server allows 4 streams of each kind per session;
 *    the client's fifth open returns H3WT_ERR_WOULDBLOCK (and sends
 *    WT_STREAMS_BLOCKED), then on_streams_available follows the server's
 *    WT_MAX_STREAMS once streams close, and the fifth stream works.
 *  - hostile_peer: with test hooks the client sends what a broken peer
 *    would: more streams than allowed, more data than allowed, a
 *    WT_MAX_DATA that does not increase, a WT_MAX_STREAMS over 2^60, a
 *    WT_MAX_STREAM_DATA.  Each resets its session with
 *    WT_FLOW_CONTROL_ERROR (counted); the connection and a bystander
 *    session keep working.
 *  - not_negotiated: the same hostile input from a client that announced
 *    no limits is not enforced: flow-control capsules are ignored, the
 *    server sends none, the sessions stay up.
 *  - stopped_streams_count_to_final_size: streams the server stops
 *    reading still count, up to their final size (or, when none comes, a
 *    stream window), or the client stalls.
 *
 * Each test ends with uv_loop_close() == 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_client.h"
#include "h3wt_test.h"
#include "h3wt_wt.h"
#include "h3wt_wtproto.h"
#include "loop_cert.h"

/* ---- the fixture: one server, one client, a step timer ------------------- */

/* What the server's handlers saw (each test starts from zero). */
static struct {
  uint64_t uni_bytes;
  int uni_fins, bidi_fins, closes_reset, closes;
} S;

static struct {
  uv_loop_t loop;
  uv_timer_t step, guard;
  h3wt_server *server;
  h3wt_client *client;
  char dir[64], cert[256], key[256];
  void (*step_fn)(void);
  int timed_out, done;
  int client_closed; /* a client session ended before the fixture's end */
} F;

static void fx_stop(void) {
  if (F.done) {
    return;
  }
  F.done = 1;
  uv_timer_stop(&F.step);
  uv_close((uv_handle_t *)&F.step, NULL);
  uv_close((uv_handle_t *)&F.guard, NULL);
  h3wt_client_close(F.client);
  h3wt_server_close(F.server, NULL, NULL);
}

static void fx_guard(uv_timer_t *t) {
  F.timed_out = 1;
  fx_stop();
}

static void fx_step(uv_timer_t *t) {
  F.step_fn();
}

static void fx_settings(h3wt_server_settings *ss) {
  h3wt_server_settings_default(ss);
  ss->host = "127.0.0.1";
  ss->port = 0;
  ss->cert_file = F.cert;
  ss->key_file = F.key;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss->log_cb = h3wt_log_stderr;
    ss->log_level = H3WT_LOG_DEBUG;
  }
}

/* Starts the server and a client announcing client_max_data (0: none). */
static void fx_start(const h3wt_server_settings *ss, const char *path,
                     const h3wt_session_handler *h, uint64_t client_max_data) {
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, NULL};
  memset(&F, 0, sizeof(F));
  memset(&S, 0, sizeof(S));
  snprintf(F.dir, sizeof(F.dir), "/tmp/h3wt-fc-XXXXXX");
  CHECK_EQ_INT(loop_devcert(F.dir, F.cert, sizeof(F.cert), F.key,
                            sizeof(F.key)),
               0);
  CHECK_EQ_INT(uv_loop_init(&F.loop), 0);
  h3wt_server_settings s = *ss;
  s.cert_file = F.cert;
  s.key_file = F.key;
  CHECK_EQ_INT(h3wt_server_new(&F.server, &F.loop, &s), 0);
  CHECK_EQ_INT(h3wt_server_webtransport(F.server, path, h, NULL), 0);
  CHECK_EQ_INT(h3wt_server_listen(F.server), 0);
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(F.server);
  cs.insecure = 1;
  cs.wt_session_max_data = client_max_data;
  if (getenv("H3WT_TEST_VERBOSE")) {
    cs.log_cb = h3wt_log_stderr;
    cs.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_client_new(&F.client, &F.loop, &cs, &cbs, NULL), 0);
}

/* A client session's on_session_close for the cases that expect none. */
static void fx_client_close(h3wt_session *s, int err, uint32_t code,
                            const char *r, size_t rl, void *rd) {
  if (!F.done) { /* not the fixture closing the connection */
    F.client_closed = 1;
  }
}

static void fx_open(const char *path, const h3wt_session_handler *h,
                    h3wt_session **ps) {
  CHECK_EQ_INT(h3wt_client_webtransport(F.client, path, NULL, NULL, 0, h,
                                        NULL, ps),
               0);
}

static void fx_run(void (*step)(void), uint64_t timeout_ms) {
  F.step_fn = step;
  uv_timer_init(&F.loop, &F.guard);
  uv_timer_start(&F.guard, fx_guard, timeout_ms, 0);
  uv_timer_init(&F.loop, &F.step);
  uv_timer_start(&F.step, fx_step, 5, 5);
  uv_run(&F.loop, UV_RUN_DEFAULT);
}

/* Runs until *flag is set or a client session ends. */
static const int *fx_flag;
static void fx_until_step(void) {
  if (*fx_flag || F.client_closed) {
    fx_stop();
  }
}
static void fx_run_until(const int *flag, uint64_t timeout_ms) {
  fx_flag = flag;
  fx_run(fx_until_step, timeout_ms);
}

/* Both sides announce the same session window. */
static void fx_start_window(const char *path, const h3wt_session_handler *h,
                            uint64_t window) {
  h3wt_server_settings ss;
  fx_settings(&ss);
  ss.wt_session_max_data = window;
  fx_start(&ss, path, h, window);
}

static void fx_end(void) {
  h3wt_client_del(F.client);
  h3wt_server_del(F.server);
  CHECK_EQ_INT(uv_loop_close(&F.loop), 0);
  loop_devcert_remove(F.dir, F.cert, F.key);
}

static h3wt_server_stats server_stats(void) {
  h3wt_server_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_SERVER_STATS_VERSION;
  CHECK_EQ_INT(h3wt_server_get_stats(F.server, &st), 0);
  return st;
}

static const h3wt_wt_stats *client_stats(void) {
  return h3wt_wt_conn_stats(h3wt_client_wt(F.client));
}

static int accept_all(h3wt_session *s, void *rd) {
  return 200;
}


typedef struct echo {
  uint8_t *buf;
  size_t len, off;
  int fin;
} echo;

static void echo_pump(h3wt_stream *st) {
  echo *e = h3wt_stream_get_data(st);
  while (e->off < e->len) {
    size_t n = e->len - e->off < 16384 ? e->len - e->off : 16384;
    if (h3wt_stream_write(st, e->buf + e->off, n) != 0) {
      return; /* on_stream_writable */
    }
    e->off += n;
  }
  if (e->fin) {
    h3wt_stream_finish(st);
    e->fin = 0;
  }
}

static void sv_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  if (!h3wt_stream_is_bidi(st)) {
    S.uni_bytes += n;
    S.uni_fins += fin;
    return;
  }
  echo *e = h3wt_stream_get_data(st);
  if (!e) {
    e = calloc(1, sizeof(*e));
    h3wt_stream_set_data(st, e);
  }
  /* Kept whole: simple, and the tests move a few MB at most. */
  uint8_t *nb = realloc(e->buf, e->len + n + 1);
  CHECK(nb != NULL);
  e->buf = nb;
  memcpy(e->buf + e->len, d, n);
  e->len += n;
  if (fin) {
    ++S.bidi_fins;
    e->fin = 1;
  }
  echo_pump(st);
}

static void sv_writable(h3wt_stream *st, void *rd) {
  echo_pump(st);
}

static void sv_stream_close(h3wt_stream *st, void *rd) {
  echo *e = h3wt_stream_get_data(st);
  if (e) {
    free(e->buf);
    free(e);
  }
}

static void sv_close(h3wt_session *s, int err, uint32_t code, const char *r,
                     size_t rl, void *rd) {
  ++S.closes;
  S.closes_reset += err == H3WT_SESSION_RESET;
}

static const h3wt_session_handler echo_handler = {
    .on_session_request = accept_all,
    .on_stream_data = sv_data,
    .on_stream_writable = sv_writable,
    .on_stream_close = sv_stream_close,
    .on_session_close = sv_close,
};

/* ======================================================================== */
/* A transfer 30 times the window.                                          */

#define W_WINDOW (64 * 1024)
#define W_BYTES (2u * 1000 * 1000)

static struct {
  h3wt_session *s;
  h3wt_stream *st;
  int ready, fin;
  size_t sent, total;
  uint64_t echoed;
  int in_order;
} W;

static uint8_t w_byte(size_t i) {
  return (uint8_t)(i * 7 + (i >> 9));
}

static void w_pump(void) {
  uint8_t chunk[16384];
  while (W.sent < W.total) {
    size_t n = W.total - W.sent < sizeof(chunk) ? W.total - W.sent
                                                : sizeof(chunk);
    for (size_t i = 0; i < n; ++i) {
      chunk[i] = w_byte(W.sent + i);
    }
    if (h3wt_stream_write(W.st, chunk, n) != 0) {
      return;
    }
    W.sent += n;
  }
  if (W.sent == W.total) {
    CHECK_EQ_INT(h3wt_stream_finish(W.st), 0);
    ++W.sent;
  }
}

static void wc_ready(h3wt_session *s, void *rd) {
  W.ready = 1;
  CHECK_EQ_INT(h3wt_session_open_stream(s, 1, &W.st), 0);
  w_pump();
}

static void wc_writable(h3wt_stream *st, void *rd) {
  w_pump();
}

static void wc_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  for (size_t i = 0; i < n; ++i) {
    W.in_order &= d[i] == w_byte(W.echoed + i);
  }
  W.echoed += n;
  W.fin |= fin;
}

static const h3wt_session_handler w_client = {
    .on_session_ready = wc_ready,
    .on_stream_data = wc_data,
    .on_stream_writable = wc_writable,
    .on_session_close = fx_client_close,
};

TEST(window_smaller_than_transfer) {
  memset(&W, 0, sizeof(W));
  W.in_order = 1;
  W.total = W_BYTES;
  fx_start_window("/w", &echo_handler, W_WINDOW);
  fx_open("/w", &w_client, &W.s);
  fx_run_until(&W.fin, 60000);
  h3wt_server_stats st = server_stats();
  const h3wt_wt_stats *cst = client_stats();
  TEST_CONTEXT("sent %zu echoed %llu fin %d closed %d; server fc sent %llu "
               "received %llu errors %llu; client fc sent %llu received "
               "%llu errors %llu blocked %llu",
               W.sent, (unsigned long long)W.echoed, W.fin, F.client_closed,
               (unsigned long long)st.wt_fc_capsules_sent,
               (unsigned long long)st.wt_fc_capsules_received,
               (unsigned long long)st.wt_fc_errors,
               (unsigned long long)cst->fc_capsules_sent,
               (unsigned long long)cst->fc_capsules_received,
               (unsigned long long)cst->fc_errors,
               (unsigned long long)cst->fc_data_blocked);
  CHECK(!F.timed_out);
  CHECK(W.fin);
  CHECK(!F.client_closed);
  CHECK_EQ_INT(W.echoed, W_BYTES);
  CHECK(W.in_order);
  /* 2 MB through a 64 KiB window: a grant at least every 32 KiB, each
     way. */
  CHECK(st.wt_fc_capsules_sent >= W_BYTES / (W_WINDOW / 2) - 2);
  CHECK(cst->fc_capsules_sent >= W_BYTES / (W_WINDOW / 2) - 2);
  CHECK(st.wt_fc_capsules_received >= cst->fc_capsules_sent / 2);
  CHECK(cst->fc_capsules_received >= st.wt_fc_capsules_sent / 2);
  CHECK_EQ_INT(st.wt_fc_errors, 0);
  CHECK_EQ_INT(cst->fc_errors, 0);
  fx_end();
}

/* The smallest window there is still moves: a grant after every byte. */
TEST(one_byte_window) {
  memset(&W, 0, sizeof(W));
  W.in_order = 1;
  W.total = 2000;
  fx_start_window("/w", &echo_handler, 1);
  fx_open("/w", &w_client, &W.s);
  fx_run_until(&W.fin, 30000);
  h3wt_server_stats st = server_stats();
  TEST_CONTEXT("sent %zu echoed %llu; server fc sent %llu errors %llu",
               W.sent, (unsigned long long)W.echoed,
               (unsigned long long)st.wt_fc_capsules_sent,
               (unsigned long long)st.wt_fc_errors);
  CHECK(!F.timed_out);
  CHECK_EQ_INT(W.echoed, 2000);
  CHECK(W.in_order);
  CHECK(st.wt_fc_capsules_sent >= 2000);
  CHECK_EQ_INT(st.wt_fc_errors, 0);
  fx_end();
}

/* ======================================================================== */
/* The peer's stream limit: WOULDBLOCK, then on_streams_available.           */

#define L_LIMIT 4

static struct {
  h3wt_session *s;
  int ready;
  int opened[2], refused[2], available[2], echoes_done;
  int extra_opened[2];
} L;

static void l_open_all(int bidi) {
  for (;;) {
    h3wt_stream *st;
    int rv = h3wt_session_open_stream(L.s, bidi, &st);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      ++L.refused[bidi];
      return;
    }
    CHECK_EQ_INT(rv, 0);
    if (rv != 0) {
      return;
    }
    ++L.opened[bidi];
    CHECK_EQ_INT(h3wt_stream_write(st, "x", 1), 0);
    CHECK_EQ_INT(h3wt_stream_finish(st), 0);
    if (L.available[bidi]) {
      ++L.extra_opened[bidi];
      return; /* one more after the wait is enough */
    }
  }
}

static void lc_ready(h3wt_session *s, void *rd) {
  L.ready = 1;
  l_open_all(1);
  l_open_all(0);
}

static void lc_available(h3wt_session *s, int bidi, void *rd) {
  ++L.available[bidi];
  l_open_all(bidi);
}

static void lc_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  L.echoes_done += fin;
}

static const h3wt_session_handler l_client = {
    .on_session_ready = lc_ready,
    .on_stream_data = lc_data,
    .on_session_close = fx_client_close,
    .on_streams_available = lc_available,
};

static void l_step(void) {
  if (F.client_closed || (L.extra_opened[0] && L.extra_opened[1] &&
                   L.echoes_done == L_LIMIT + 1 && S.uni_fins == L_LIMIT + 1)) {
    fx_stop();
  }
}

TEST(stream_limit) {
  h3wt_server_settings ss;
  memset(&L, 0, sizeof(L));
  fx_settings(&ss);
  ss.max_streams_per_session = L_LIMIT;
  fx_start(&ss, "/l", &echo_handler, 1024 * 1024);
  fx_open("/l", &l_client, &L.s);
  fx_run(l_step, 30000);
  h3wt_server_stats st = server_stats();
  const h3wt_wt_stats *cst = client_stats();
  TEST_CONTEXT("opened bidi %d uni %d, refused %d/%d, available %d/%d, "
               "echoes %d, uni fins %d; client streams blocked %llu; "
               "server fc received %llu sent %llu",
               L.opened[1], L.opened[0], L.refused[1], L.refused[0],
               L.available[1], L.available[0], L.echoes_done, S.uni_fins,
               (unsigned long long)cst->fc_streams_blocked,
               (unsigned long long)st.wt_fc_capsules_received,
               (unsigned long long)st.wt_fc_capsules_sent);
  CHECK(!F.timed_out);
  CHECK(!F.client_closed);
  for (int b = 0; b < 2; ++b) {
    /* The first L_LIMIT opened at once, the next refused until the
       server's WT_MAX_STREAMS came. */
    CHECK_EQ_INT(L.opened[b], L_LIMIT + 1);
    CHECK(L.refused[b] >= 1);
    CHECK(L.available[b] >= 1);
    CHECK_EQ_INT(L.extra_opened[b], 1);
  }
  CHECK_EQ_INT(L.echoes_done, L_LIMIT + 1);
  CHECK_EQ_INT(S.uni_fins, L_LIMIT + 1);
  CHECK(cst->fc_streams_blocked >= 2);
  /* WT_STREAMS_BLOCKED (bidi and uni) reached the server; WT_MAX_STREAMS
     went the other way. */
  CHECK(st.wt_fc_capsules_received >= 2);
  CHECK(st.wt_fc_capsules_sent >= 2);
  CHECK_EQ_INT(st.limit_max_streams_per_session, 0);
  CHECK_EQ_INT(st.wt_fc_errors, 0);
  fx_end();
}

/* ======================================================================== */
/* Hostile input: each case resets its own session.                          */

#define H_LIMIT 4
#define H_WINDOW 1000 /* a packet's worth of data goes over it */

enum { H_STREAMS, H_DATA, H_DECREASE, H_STREAMS_2_60, H_STREAM_DATA,
       H_BYSTANDER, H_N };

static struct {
  h3wt_session *s[H_N];
  int ready[H_N], closed[H_N], err[H_N];
  int phase, echo_fin;
} H;

static int h_index(h3wt_session *s) {
  for (int i = 0; i < H_N; ++i) {
    if (H.s[i] == s) {
      return i;
    }
  }
  return -1;
}

static void hc_ready(h3wt_session *s, void *rd) {
  H.ready[h_index(s)] = 1;
}

static void hc_close(h3wt_session *s, int err, uint32_t code, const char *r,
                     size_t rl, void *rd) {
  if (F.done) {
    return; /* the fixture closing the connection */
  }
  int i = h_index(s);
  H.closed[i] = 1;
  H.err[i] = err;
}

static void hc_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  H.echo_fin |= fin;
}

static const h3wt_session_handler h_client = {
    .on_session_ready = hc_ready,
    .on_stream_data = hc_data,
    .on_session_close = hc_close,
};

/* A raw stream naming session s (the hook adds no header of its own). */
static void raw_stream(h3wt_session *s, int bidi, size_t body, int fin) {
  static uint8_t buf[8192];
  uint8_t *p = h3wt_varint_encode(
      buf, bidi ? H3WT_WT_STREAM_BIDI : H3WT_WT_STREAM_UNI);
  p = h3wt_varint_encode(p, (uint64_t)h3wt_session_stream_id(s));
  size_t hdr = (size_t)(p - buf);
  CHECK(hdr + body <= sizeof(buf));
  memset(p, 'h', body);
  CHECK_EQ_INT(h3wt_wt_test_raw_stream(h3wt_client_wt(F.client), bidi, buf,
                                       hdr + body, fin),
               0);
}

static void raw_capsule(h3wt_session *s, uint64_t type, uint64_t v) {
  uint8_t buf[24];
  size_t n = h3wt_capsule_varint(buf, type, v);
  CHECK_EQ_INT(h3wt_wt_test_raw_capsule(s, buf, n), 0);
}

/* Sends every hostile case, each on its own session. */
static void h_send_all(void) {
  /* One stream more than allowed, none finished (no credit comes back). */
  for (int i = 0; i < H_LIMIT + 1; ++i) {
    raw_stream(H.s[H_STREAMS], 0, 0, 0);
  }
  /* Four times the window in one go, on one stream. */
  raw_stream(H.s[H_DATA], 0, 4 * H_WINDOW, 1);
  /* The client announced 1 MiB: 1000 does not increase it. */
  raw_capsule(H.s[H_DECREASE], H3WT_CAPSULE_MAX_DATA, 1000);
  raw_capsule(H.s[H_STREAMS_2_60], H3WT_CAPSULE_MAX_STREAMS_UNI,
              H3WT_MAX_STREAMS_LIMIT + 1);
  raw_capsule(H.s[H_STREAM_DATA], H3WT_CAPSULE_MAX_STREAM_DATA, 5000);
}

static int h_hostile_closed(void) {
  for (int i = 0; i < H_BYSTANDER; ++i) {
    if (!H.closed[i]) {
      return 0;
    }
  }
  return 1;
}

/* Both cases: every session ready, all the hostile input at once, then
   once settled() says its effects are in, an echo on session echo_on. */
static struct {
  int (*settled)(void);
  int echo_on;
  size_t echo_len;
} HC;

static void h_step(void) {
  static h3wt_stream *st;
  static uint8_t blob[3 * H_WINDOW];
  switch (H.phase) {
  case 0:
    for (int i = 0; i < H_N; ++i) {
      if (!H.ready[i]) {
        return;
      }
    }
    h_send_all();
    H.phase = 1;
    return;
  case 1:
    if (!HC.settled()) {
      return;
    }
    CHECK_EQ_INT(h3wt_session_open_stream(H.s[HC.echo_on], 1, &st), 0);
    CHECK_EQ_INT(h3wt_stream_write(st, blob, HC.echo_len), 0);
    CHECK_EQ_INT(h3wt_stream_finish(st), 0);
    H.phase = 2;
    return;
  case 2:
    if (H.echo_fin) {
      fx_stop();
    }
    return;
  }
}

/* The server of both cases: a small stream limit and a window a packet
   goes over; the client announces client_max_data (0: nothing). */
static void h_start(uint64_t client_max_data) {
  h3wt_server_settings ss;
  memset(&H, 0, sizeof(H));
  fx_settings(&ss);
  ss.max_streams_per_session = H_LIMIT;
  ss.wt_session_max_data = H_WINDOW;
  fx_start(&ss, "/h", &echo_handler, client_max_data);
  for (int i = 0; i < H_N; ++i) {
    fx_open("/h", &h_client, &H.s[i]);
  }
}

TEST(hostile_peer) {
  h_start(1024 * 1024);
  /* Once every hostile session is gone, the bystander still works,
     within the small window too. */
  HC.settled = h_hostile_closed;
  HC.echo_on = H_BYSTANDER;
  HC.echo_len = 3 * H_WINDOW;
  fx_run(h_step, 30000);
  h3wt_server_stats st = server_stats();
  TEST_CONTEXT("phase %d; closed %d %d %d %d %d (bystander %d); server fc "
               "errors %llu, resets %d",
               H.phase, H.closed[0], H.closed[1], H.closed[2], H.closed[3],
               H.closed[4], H.closed[H_BYSTANDER],
               (unsigned long long)st.wt_fc_errors, S.closes_reset);
  CHECK(!F.timed_out);
  for (int i = 0; i < H_BYSTANDER; ++i) {
    TEST_CONTEXT("hostile case %d: closed %d err %d", i, H.closed[i],
                 H.err[i]);
    CHECK(H.closed[i]);
    CHECK_EQ_INT(H.err[i], H3WT_SESSION_RESET);
  }
  TEST_CONTEXT("server fc errors %llu, resets %d",
               (unsigned long long)st.wt_fc_errors, S.closes_reset);
  CHECK_EQ_INT(st.wt_fc_errors, H_BYSTANDER);
  CHECK_EQ_INT(S.closes_reset, H_BYSTANDER);
  CHECK(!H.closed[H_BYSTANDER]);
  CHECK(H.echo_fin);
  fx_end();
}

/* ======================================================================== */
/* Not negotiated: the client announces nothing, nothing is enforced.       */

/* The uni stream over the window arrived whole. */
static int n_settled(void) {
  return S.uni_fins >= 1;
}

TEST(not_negotiated) {
  h_start(0); /* the client offers nothing */
  /* Then a session that sent a decreasing WT_MAX_DATA still echoes. */
  HC.settled = n_settled;
  HC.echo_on = H_DECREASE;
  HC.echo_len = 10;
  fx_run(h_step, 30000);
  h3wt_server_stats st = server_stats();
  TEST_CONTEXT("phase %d; closed %d %d %d %d %d; uni bytes %llu; server fc "
               "sent %llu received %llu errors %llu; refused %llu",
               H.phase, H.closed[0], H.closed[1], H.closed[2], H.closed[3],
               H.closed[4], (unsigned long long)S.uni_bytes,
               (unsigned long long)st.wt_fc_capsules_sent,
               (unsigned long long)st.wt_fc_capsules_received,
               (unsigned long long)st.wt_fc_errors,
               (unsigned long long)st.limit_max_streams_per_session);
  CHECK(!F.timed_out);
  CHECK(H.echo_fin);
  /* The prohibited WT_MAX_STREAM_DATA is a session error whatever was
     negotiated; every other session stays up. */
  for (int i = 0; i < H_N; ++i) {
    TEST_CONTEXT("session %d: closed %d err %d", i, H.closed[i], H.err[i]);
    CHECK_EQ_INT(H.closed[i], i == H_STREAM_DATA);
  }
  CHECK_EQ_INT(S.uni_bytes, 4 * H_WINDOW);
  /* Without flow control the limit is the old one: concurrent streams,
     the one over it refused alone. */
  CHECK_EQ_INT(st.limit_max_streams_per_session, 1);
  /* Nothing new on the wire, nothing counted but the prohibited capsule. */
  CHECK_EQ_INT(st.wt_fc_capsules_sent, 0);
  CHECK_EQ_INT(st.wt_fc_capsules_received, 0);
  CHECK_EQ_INT(st.wt_fc_errors, 1);
  fx_end();
}

/* ======================================================================== */
/* Streams the receiver stops: their bytes count up to the final size.      */
/* The server stops reading every uni stream at its first bytes; what was
   in flight then is discarded by QUIC, never delivered, yet the client
   spent session credit on it.  The RESET_STREAM's final size tells the
   server how much; a stream whose FIN had gone out gets no RESET_STREAM,
   and the server must allow for up to a stream window.  Without either,
   the two sides disagree by those bytes on each stream and the client
   runs out of credit the server never sees used (it stalls).  40 streams
   of 48 KiB through a 64 KiB window, then an echo must still complete
   (each half of that fails this test on its own). */

#define R_WINDOW (64 * 1024)
#define R_STREAM (48 * 1024)
#define R_ROUNDS 40

static struct {
  h3wt_session *s;
  h3wt_stream *cur, *echo;
  int ready, rounds, echo_fin;
  uint64_t stopped;
} R;

static void rs_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  if (!h3wt_stream_is_bidi(st)) {
    ++R.stopped;
    h3wt_stream_stop_sending(st, 7);
    return;
  }
  sv_data(st, d, n, fin, rd);
}

static const h3wt_session_handler r_server = {
    .on_session_request = accept_all,
    .on_stream_data = rs_data,
    .on_stream_writable = sv_writable,
    .on_stream_close = sv_stream_close,
    .on_session_close = sv_close,
};

static void r_next(void) {
  static uint8_t blob[R_STREAM];
  if (R.rounds == R_ROUNDS) {
    static uint8_t tail[100 * 1024];
    CHECK_EQ_INT(h3wt_session_open_stream(R.s, 1, &R.echo), 0);
    CHECK_EQ_INT(h3wt_stream_write(R.echo, tail, sizeof(tail)), 0);
    CHECK_EQ_INT(h3wt_stream_finish(R.echo), 0);
    ++R.rounds;
    return;
  }
  CHECK_EQ_INT(h3wt_session_open_stream(R.s, 0, &R.cur), 0);
  /* Accepted whole (the queues hold 256 KiB): session credit decides how
     much of it goes out before the stop. */
  CHECK_EQ_INT(h3wt_stream_write(R.cur, blob, sizeof(blob)), 0);
  CHECK_EQ_INT(h3wt_stream_finish(R.cur), 0);
  ++R.rounds;
}

static void rc_ready(h3wt_session *s, void *rd) {
  R.ready = 1;
  r_next();
}

static void rc_stream_close(h3wt_stream *st, void *rd) {
  if (st == R.cur && !F.done) {
    R.cur = NULL;
    r_next();
  }
}

static void rc_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  R.echo_fin |= fin;
}

static const h3wt_session_handler r_client = {
    .on_session_ready = rc_ready,
    .on_stream_data = rc_data,
    .on_stream_close = rc_stream_close,
    .on_session_close = fx_client_close,
};

TEST(stopped_streams_count_to_final_size) {
  memset(&R, 0, sizeof(R));
  fx_start_window("/r", &r_server, R_WINDOW);
  fx_open("/r", &r_client, &R.s);
  fx_run_until(&R.echo_fin, 20000);
  h3wt_server_stats st = server_stats();
  const h3wt_wt_stats *cst = client_stats();
  TEST_CONTEXT("rounds %d, stopped %llu, echo fin %d, closed %d; client "
               "blocked %llu, server fc errors %llu",
               R.rounds, (unsigned long long)R.stopped, R.echo_fin,
               F.client_closed,
               (unsigned long long)cst->fc_data_blocked,
               (unsigned long long)st.wt_fc_errors);
  CHECK(!F.timed_out);
  CHECK_EQ_INT(R.rounds, R_ROUNDS + 1);
  CHECK(R.echo_fin);
  CHECK(!F.client_closed);
  CHECK_EQ_INT(st.wt_fc_errors, 0);
  fx_end();
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(window_smaller_than_transfer),
      TEST_ENTRY(one_byte_window),
      TEST_ENTRY(stream_limit),
      TEST_ENTRY(hostile_peer),
      TEST_ENTRY(not_negotiated),
      TEST_ENTRY(stopped_streams_count_to_final_size),
  };
  return TEST_MAIN(argc, argv, tests);
}
