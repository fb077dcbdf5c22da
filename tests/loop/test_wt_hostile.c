/*
 * Hostile WebTransport input against a real h3wt server (one process, one
 * loop, UDP on 127.0.0.1, real TLS).  The client uses test hooks to send
 * what a broken peer would: unknown and malformed capsules, streams naming
 * sessions that do not exist, a session ID that is not a CONNECT stream,
 * stream signals on the wrong stream type, bad datagrams, and a flood of
 * streams over the per-session limit.  Every case must get the response
 * the draft asks for, and the server must keep serving: a fresh session on
 * a fresh connection echoes at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_client.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"
#include "h3wt_wt.h"
#include "h3wt_wtproto.h"

#define STREAM_LIMIT 8

/* ---- server: echo, counting what its handler saw -------------------------- */

static struct {
  int requests, ready, stream_opens, closes_reset, closes_clean;
} S;

static int s_request(h3wt_session *s, void *rd) {
  ++S.requests;
  return 200;
}
static void s_ready(h3wt_session *s, void *rd) {
  ++S.ready;
}
static void s_open(h3wt_stream *st, void *rd) {
  ++S.stream_opens;
}
static void s_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                   void *rd) {
  if (h3wt_stream_is_bidi(st)) {
    h3wt_stream_write(st, d, n);
    if (fin) {
      h3wt_stream_finish(st);
    }
  }
}
static void s_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  h3wt_session_send_datagram(s, d, n);
}
static void s_close(h3wt_session *s, int err, uint32_t code, const char *r,
                    size_t rl, void *rd) {
  if (err == H3WT_SESSION_RESET) {
    ++S.closes_reset;
  } else {
    ++S.closes_clean;
  }
}
static const h3wt_session_handler server_handler = {
    s_request, s_ready, s_open, s_data, NULL, NULL,
    NULL,      NULL,    s_dgram, NULL, s_close, NULL};

/* ---- client ------------------------------------------------------------------- */

typedef struct csess {
  h3wt_session *s;
  int ready, closed, err, dgrams, flood_resets, flood_ok;
} csess;

static uv_loop_t loop;
static h3wt_server *server;
static h3wt_client *c1, *c2, *c3;
static csess A, B, Final;
static uv_timer_t step, guard;
static int phase, timed_out, c2_closed, c2_err, c3_closed;
static int bad_uni_done;
static uint64_t t_orphans, orphans_refused_after; /* ms */

static csess *cs(h3wt_session *s) {
  return s == A.s ? &A : s == B.s ? &B : &Final;
}
static void c_ready(h3wt_session *s, void *rd) {
  cs(s)->ready = 1;
}
static void c_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                   void *rd) {
  if (fin) {
    ++cs(h3wt_stream_session(st))->flood_ok;
  }
}
static void c_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  /* WT_FLOW_CONTROL_ERROR is an HTTP/3 code, not a mapped application
     code: has must be 0. */
  if (!has) {
    ++cs(h3wt_stream_session(st))->flood_resets;
  }
}
static void c_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  ++cs(s)->dgrams;
}
static void c_close(h3wt_session *s, int err, uint32_t code, const char *r,
                    size_t rl, void *rd) {
  cs(s)->closed = 1;
  cs(s)->err = err;
}
static const h3wt_session_handler client_handler = {
    NULL, c_ready, NULL, c_data, c_reset, NULL,
    NULL, NULL,    c_dgram, NULL, c_close, NULL};

static h3wt_client *connect_client(h3wt_client_callbacks cbs) {
  h3wt_client_settings s;
  h3wt_client *cl = NULL;
  h3wt_client_settings_default(&s);
  s.host = "127.0.0.1";
  s.port = h3wt_server_port(server);
  s.insecure = 1;
  /* No session flow control, as browsers today: the server's stream limit
     is then one the client does not know, and the flood goes over it
     (with flow control on, test_wt_flowctl.c). */
  s.wt_session_max_data = 0;
  CHECK_EQ_INT(h3wt_client_new(&cl, &loop, &s, &cbs, NULL), 0);
  return cl;
}

static void noop_connected(h3wt_client *cl, void *ud) {
}
static void c2_on_closed(h3wt_client *cl, int err, void *ud) {
  c2_closed = 1;
  c2_err = err;
}
static void c3_on_closed(h3wt_client *cl, int err, void *ud) {
  c3_closed = 1;
}
static void c1_on_closed(h3wt_client *cl, int err, void *ud) {
}

static void stop_all(void) {
  uv_timer_stop(&step);
  uv_close((uv_handle_t *)&step, NULL);
  uv_close((uv_handle_t *)&guard, NULL);
  if (c1) {
    h3wt_client_close(c1);
  }
  if (c2) {
    h3wt_client_close(c2);
  }
  if (c3) {
    h3wt_client_close(c3);
  }
  h3wt_server_close(server, NULL, NULL);
}

static void guard_cb(uv_timer_t *t) {
  timed_out = 1;
  stop_all();
}

static void step_cb(uv_timer_t *t) {
  h3wt_wt_conn *wt = c1 ? h3wt_client_wt(c1) : NULL;
  uint8_t buf[64], *p;
  static int wait;
  switch (phase) {
  case 0:
    if (!A.ready || !B.ready) {
      return;
    }
    /* An unknown capsule is skipped (RFC 9297 3.2): A stays up. */
    p = h3wt_varint_encode(buf, 0x17);
    p = h3wt_varint_encode(p, 5);
    memcpy(p, "hello", 5);
    CHECK_EQ_INT(h3wt_wt_test_raw_capsule(A.s, buf, (size_t)(p - buf) + 5),
                 0);
    /* A close capsule too short for its code: malformed, B is reset. */
    p = h3wt_varint_encode(buf, H3WT_CAPSULE_CLOSE_SESSION);
    p = h3wt_varint_encode(p, 2);
    CHECK_EQ_INT(h3wt_wt_test_raw_capsule(B.s, buf, (size_t)(p - buf) + 2),
                 0);
    /* Streams naming a session that does not exist: buffered (bounded in
       count, size and time: orphan_stream_timeout_ms), never handed to the
       application. */
    t_orphans = uv_now(&loop);
    for (int i = 0; i < 20; ++i) {
      p = h3wt_varint_encode(buf, H3WT_WT_STREAM_BIDI);
      p = h3wt_varint_encode(p, 400);
      memcpy(p, "orphan", 6);
      CHECK_EQ_INT(h3wt_wt_test_raw_stream(wt, 1, buf, (size_t)(p - buf) + 6,
                                           1),
                   0);
    }
    p = h3wt_varint_encode(buf, H3WT_WT_STREAM_UNI);
    p = h3wt_varint_encode(p, 404);
    CHECK_EQ_INT(h3wt_wt_test_raw_stream(wt, 0, buf, (size_t)(p - buf), 1),
                 0);
    /* Datagrams: an unknown session, and a truncated quarter stream ID. */
    p = h3wt_varint_encode(buf, 1000);
    CHECK_EQ_INT(h3wt_wt_test_raw_datagram(wt, buf, (size_t)(p - buf) + 4),
                 0);
    CHECK_EQ_INT(h3wt_wt_test_raw_datagram(wt, "\x40", 1), 0);
    /* A flood: more streams than the session may have open. */
    for (int i = 0; i < 20; ++i) {
      h3wt_stream *st;
      CHECK_EQ_INT(h3wt_session_open_stream(A.s, 1, &st), 0);
      CHECK_EQ_INT(h3wt_stream_write(st, "flood", 5), 0);
    }
    phase = 1;
    return;
  case 1:
    if (!B.closed || A.flood_resets < 20 - STREAM_LIMIT) {
      return;
    }
    /* A still works: a datagram echoes. */
    CHECK_EQ_INT(h3wt_session_send_datagram(A.s, "ping", 4), 0);
    phase = 2;
    return;
  case 2:
    if (!A.dgrams) {
      return;
    }
    /* Wrong signals on a second connection: a uni stream with the bidi
       signal (an unknown uni stream type to HTTP/3), then a session ID
       that is not a client bidi stream (H3_ID_ERROR closes it). */
    {
      h3wt_client_callbacks cbs = {noop_connected, c2_on_closed};
      c2 = connect_client(cbs);
    }
    phase = 3;
    return;
  case 3: {
    h3wt_wt_conn *wt2 = h3wt_client_wt(c2);
    if (!bad_uni_done) {
      /* Wait for the handshake: streams need credit. */
      if (h3wt_wt_test_raw_stream(wt2, 0, "\x40\x41\x00junk", 7, 1) != 0) {
        return;
      }
      bad_uni_done = 1;
      wait = 0;
      return;
    }
    if (++wait < 10) {
      return; /* let it arrive before the fatal one */
    }
    p = h3wt_varint_encode(buf, H3WT_WT_STREAM_BIDI);
    p = h3wt_varint_encode(p, 2); /* a server uni stream's ID */
    CHECK_EQ_INT(h3wt_wt_test_raw_stream(wt2, 1, buf, (size_t)(p - buf), 0),
                 0);
    phase = 4;
    return;
  }
  case 4:
    if (!c2_closed) {
      return;
    }
    /* The server still serves: a fresh connection, a fresh session. */
    {
      h3wt_client_callbacks cbs = {noop_connected, c3_on_closed};
      c3 = connect_client(cbs);
      CHECK_EQ_INT(h3wt_client_webtransport(c3, "/wt", NULL, NULL, 0,
                                            &client_handler, NULL, &Final.s),
                   0);
    }
    phase = 5;
    return;
  case 5:
    if (!Final.ready) {
      return;
    }
    CHECK_EQ_INT(h3wt_session_send_datagram(Final.s, "hi", 2), 0);
    phase = 6;
    return;
  case 6: {
    if (!Final.dgrams) {
      return;
    }
    /* The 21 orphans: 5 refused at once (16 may wait), the other 16 once
       their second is up. */
    h3wt_server_stats st;
    memset(&st, 0, sizeof(st));
    st.version = H3WT_SERVER_STATS_VERSION;
    CHECK_EQ_INT(h3wt_server_get_stats(server, &st), 0);
    if (st.wt_streams_rejected_buffered < 21) {
      return;
    }
    orphans_refused_after = uv_now(&loop) - t_orphans;
    phase = 7;
    stop_all();
    return;
  }
  }
}

TEST(hostile_webtransport_input) {
  char dir[] = "/tmp/h3wt-wth-XXXXXX", cert[256], key[256];
  h3wt_server_settings ss;
  h3wt_client_callbacks cbs = {noop_connected, c1_on_closed};
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.max_streams_per_session = STREAM_LIMIT;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&server, &loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_webtransport(server, "/wt", &server_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(server), 0);
  c1 = connect_client(cbs);
  CHECK_EQ_INT(h3wt_client_webtransport(c1, "/wt", NULL, NULL, 0,
                                        &client_handler, NULL, &A.s),
               0);
  CHECK_EQ_INT(h3wt_client_webtransport(c1, "/wt", NULL, NULL, 0,
                                        &client_handler, NULL, &B.s),
               0);
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, guard_cb, 60000, 0);
  uv_timer_init(&loop, &step);
  uv_timer_start(&step, step_cb, 20, 20);
  uv_run(&loop, UV_RUN_DEFAULT);

  TEST_CONTEXT("phase %d", phase);
  CHECK(!timed_out);
  CHECK_EQ_INT(phase, 7);
  TEST_CONTEXT("malformed capsule: B closed %d err %d", B.closed, B.err);
  CHECK(B.closed);
  CHECK_EQ_INT(B.err, H3WT_SESSION_RESET);
  CHECK(S.closes_reset >= 1);
  TEST_CONTEXT("flood: resets %d", A.flood_resets);
  CHECK(A.flood_resets >= 20 - STREAM_LIMIT);
  /* Only A's flood streams within the limit reached the handler: the
     orphans and the bad streams never did. */
  TEST_CONTEXT("server saw %d stream opens", S.stream_opens);
  CHECK(S.stream_opens <= STREAM_LIMIT);
  TEST_CONTEXT("H3_ID_ERROR: c2 closed %d err %d", c2_closed, c2_err);
  CHECK(c2_closed);
  CHECK(c2_err != 0);
  CHECK(Final.dgrams >= 1);
  CHECK_EQ_INT(S.requests, 3);
  TEST_CONTEXT("orphans all refused %llu ms after they came",
               (unsigned long long)orphans_refused_after);
  CHECK(orphans_refused_after >= 900 && orphans_refused_after < 10000);

  h3wt_client_del(c1);
  h3wt_client_del(c2);
  h3wt_client_del(c3);
  h3wt_server_del(server);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(hostile_webtransport_input),
  };
  return TEST_MAIN(argc, argv, tests);
}
