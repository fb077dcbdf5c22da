/*
 * WebTransport end to end in one process: a real h3wt server and client
 * on one libuv loop, UDP on 127.0.0.1, real TLS.  The server route echoes
 * (datagrams, bidi streams on the same stream, uni streams on a new server
 * uni stream, resets mirrored with the same code) and records how sessions
 * end.  Each test ends with uv_loop_close() == 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"
#include "h3wt_wtproto.h"

/* ---- the server's echo route --------------------------------------------- */

typedef struct srv_state {
  int requests, ready, closed;
  int last_close_err;
  uint32_t last_close_code;
  char last_reason[256];
  int reject_next; /* answer the next request with this status */
  int streams_opened, streams_closed, local_opened;
  uint32_t reset_seen;
  int reset_has_code;
  int datagrams;
} srv_state;

static srv_state S;

typedef struct uni_echo {
  h3wt_stream *out; /* the server's uni stream answering a peer uni */
} uni_echo;

static int se_request(h3wt_session *s, void *rd) {
  ++S.requests;
  if (S.reject_next) {
    int st = S.reject_next;
    S.reject_next = 0;
    return st;
  }
  return strcmp(h3wt_session_path(s), "/wt/echo") == 0 ? 200 : 404;
}
static void se_ready(h3wt_session *s, void *rd) {
  ++S.ready;
}
static void se_open(h3wt_stream *st, void *rd) {
  ++S.streams_opened;
  if (!h3wt_stream_is_bidi(st)) {
    uni_echo *u = calloc(1, sizeof(*u));
    h3wt_stream_set_data(st, u);
    ++S.local_opened;
    CHECK_EQ_INT(h3wt_session_open_stream(h3wt_stream_session(st), 0,
                                          &u->out),
                 0);
  }
}
static void se_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  h3wt_stream *out = st;
  uni_echo *u = h3wt_stream_get_data(st);
  if (u) {
    out = u->out;
  }
  if (n) {
    CHECK_EQ_INT(h3wt_stream_write(out, d, n), 0);
  }
  if (fin) {
    CHECK_EQ_INT(h3wt_stream_finish(out), 0);
  }
}
static void se_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  S.reset_seen = code;
  S.reset_has_code = has;
  /* Mirror it: the client must see the same WebTransport code. */
  h3wt_stream_reset(st, code);
}
static void se_stream_close(h3wt_stream *st, void *rd) {
  ++S.streams_closed;
  free(h3wt_stream_get_data(st));
  h3wt_stream_set_data(st, NULL);
}
static void se_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  ++S.datagrams;
  h3wt_session_send_datagram(s, d, n);
}
static void se_close(h3wt_session *s, int err, uint32_t code,
                     const char *reason, size_t rl, void *rd) {
  ++S.closed;
  S.last_close_err = err;
  S.last_close_code = code;
  snprintf(S.last_reason, sizeof(S.last_reason), "%.*s", (int)rl, reason);
}

static const h3wt_session_handler server_handler = {
    se_request, se_ready, se_open, se_data, se_reset, NULL,
    NULL,       se_stream_close, se_dgram, NULL, se_close, NULL};

/* ---- the client side ------------------------------------------------------- */

#define NSESS 10
#define NDGRAM 200
#define NSTREAMS 100

typedef struct csess {
  h3wt_session *s;
  int ready, closed, close_err;
  uint32_t close_code;
  char reason[256];
  int dgrams_back;
  int streams_done;
  int uni_back;
  size_t bytes_back;
  int reset_back;
  uint32_t reset_code;
  int reset_has;
} csess;

static csess C[NSESS];
static uv_loop_t loop;
static h3wt_server *server;
static h3wt_client *client;
static uv_timer_t guard, step;
static int phase, timed_out;
static int rejected_closed, rejected_err, rejected_status;
static h3wt_session *rejected;

static void finish(void);

static csess *cs_of(h3wt_session *s) {
  for (int i = 0; i < NSESS; ++i) {
    if (C[i].s == s) {
      return &C[i];
    }
  }
  return NULL;
}

typedef struct cstream {
  csess *cs;
  uint8_t expect; /* every byte of stream k is k */
  size_t got, want;
  int ok;
} cstream;

static void cl_ready(h3wt_session *s, void *rd) {
  csess *cs = cs_of(s);
  cs->ready = 1;
}

static void cl_open(h3wt_stream *st, void *rd) {
  /* The server's uni stream answering ours. */
  cstream *x = calloc(1, sizeof(*x));
  x->cs = cs_of(h3wt_stream_session(st));
  x->expect = 0x55;
  x->want = 5000;
  x->ok = 1;
  h3wt_stream_set_data(st, x);
}

static void cl_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  cstream *x = h3wt_stream_get_data(st);
  if (!x) {
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (d[i] != x->expect) {
      x->ok = 0;
    }
  }
  x->got += n;
  x->cs->bytes_back += n;
  if (fin) {
    CHECK(x->ok);
    CHECK_EQ_INT(x->got, x->want);
    if (h3wt_stream_is_bidi(st)) {
      ++x->cs->streams_done;
    } else {
      ++x->cs->uni_back;
    }
  }
}

static void cl_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  cstream *x = h3wt_stream_get_data(st);
  if (x) {
    x->cs->reset_back = 1;
    x->cs->reset_code = code;
    x->cs->reset_has = has;
  }
}

static void cl_stream_close(h3wt_stream *st, void *rd) {
  free(h3wt_stream_get_data(st));
  h3wt_stream_set_data(st, NULL);
}

static void cl_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  csess *cs = cs_of(s);
  if (cs && n == 100 && d[0] == (uint8_t)(cs - C)) {
    ++cs->dgrams_back;
  }
}

static void cl_close(h3wt_session *s, int err, uint32_t code,
                     const char *reason, size_t rl, void *rd) {
  if (s == rejected) {
    rejected_closed = 1;
    rejected_err = err;
    rejected_status = h3wt_session_status(s);
    return;
  }
  csess *cs = cs_of(s);
  cs->closed = 1;
  cs->close_err = err;
  cs->close_code = code;
  snprintf(cs->reason, sizeof(cs->reason), "%.*s", (int)rl, reason);
}

static const h3wt_session_handler client_handler = {
    NULL, cl_ready, cl_open, cl_data, cl_reset, NULL,
    NULL, cl_stream_close, cl_dgram, NULL, cl_close, NULL};

static void open_bidi(csess *cs, size_t len, uint8_t fill) {
  h3wt_stream *st;
  CHECK_EQ_INT(h3wt_session_open_stream(cs->s, 1, &st), 0);
  cstream *x = calloc(1, sizeof(*x));
  x->cs = cs;
  x->expect = fill;
  x->want = len;
  x->ok = 1;
  h3wt_stream_set_data(st, x);
  uint8_t *buf = malloc(len);
  memset(buf, fill, len);
  CHECK_EQ_INT(h3wt_stream_write(st, buf, len), 0);
  CHECK_EQ_INT(h3wt_stream_finish(st), 0);
  free(buf);
}

/* The test proceeds in phases, checked every 20 ms. */
static void step_cb(uv_timer_t *t) {
  int all_ready = 1;
  for (int i = 0; i < NSESS; ++i) {
    all_ready &= C[i].ready;
  }
  switch (phase) {
  case 0: /* all sessions up: send traffic on each */
    if (!all_ready || !rejected_closed) {
      return;
    }
    for (int i = 0; i < NSESS; ++i) {
      uint8_t d[100];
      memset(d, 0, sizeof(d));
      d[0] = (uint8_t)i;
      CHECK(h3wt_session_max_datagram(C[i].s) >= 1000);
      CHECK_EQ_INT(h3wt_session_send_datagram(C[i].s, d, 100000),
                   H3WT_ERR_TOO_LARGE);
      for (int k = 0; k < NDGRAM / NSESS; ++k) {
        CHECK_EQ_INT(h3wt_session_send_datagram(C[i].s, d, sizeof(d)), 0);
      }
    }
    /* Session 0: 100 concurrent bidi streams. */
    for (int k = 0; k < NSTREAMS; ++k) {
      open_bidi(&C[0], 1000 + (size_t)k, (uint8_t)(k + 1));
    }
    /* Session 1: one uni stream, answered on a server uni stream. */
    {
      h3wt_stream *st;
      uint8_t buf[5000];
      memset(buf, 0x55, sizeof(buf));
      CHECK_EQ_INT(h3wt_session_open_stream(C[1].s, 0, &st), 0);
      CHECK_EQ_INT(h3wt_stream_write(st, buf, sizeof(buf)), 0);
      CHECK_EQ_INT(h3wt_stream_finish(st), 0);
      /* Writing on a uni stream after finish is refused. */
      CHECK_EQ_INT(h3wt_stream_write(st, buf, 1), H3WT_ERR_INVALID_STATE);
    }
    /* Session 2: a stream reset with an application code. */
    {
      h3wt_stream *st;
      CHECK_EQ_INT(h3wt_session_open_stream(C[2].s, 1, &st), 0);
      cstream *x = calloc(1, sizeof(*x));
      x->cs = &C[2];
      x->ok = 1;
      h3wt_stream_set_data(st, x);
      CHECK_EQ_INT(h3wt_stream_write(st, "abc", 3), 0);
      CHECK_EQ_INT(h3wt_stream_reset(st, 0x1e /* crosses a GREASE gap */),
                   0);
    }
    phase = 1;
    return;
  case 1:
    if (C[0].streams_done < NSTREAMS || C[1].uni_back < 1 ||
        !C[2].reset_back) {
      return;
    }
    /* Session 3: the client closes with a code and reason; session 4 is
       closed while streams are open on it. */
    CHECK_EQ_INT(h3wt_session_close(C[3].s, 4242, "bye from the client"),
                 0);
    open_bidi(&C[4], 200000, 7); /* still in flight when closed */
    CHECK_EQ_INT(h3wt_session_close(C[4].s, 7, "closed mid-stream"), 0);
    phase = 2;
    return;
  case 2:
    if (!C[3].closed || !C[4].closed || S.closed < 2) {
      return;
    }
    phase = 3;
    finish();
    return;
  }
}

static void on_connected(h3wt_client *cl, void *ud) {
}

static void on_client_closed(h3wt_client *cl, int err, void *ud) {
  h3wt_server_close(server, NULL, NULL);
}

static void finish(void) {
  uv_timer_stop(&step);
  uv_close((uv_handle_t *)&step, NULL);
  uv_close((uv_handle_t *)&guard, NULL);
  h3wt_client_close(client);
}

static void guard_cb(uv_timer_t *t) {
  timed_out = 1;
  finish();
}

TEST(sessions_streams_datagrams_close) {
  char dir[] = "/tmp/h3wt-wt-XXXXXX", cert[256], key[256];
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {on_connected, on_client_closed};

  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  /* Ten CONNECT streams plus a hundred WebTransport streams at once. */
  ss.max_streams_bidi = 256;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&server, &loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_webtransport(server, "/wt/echo", &server_handler,
                                        NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(server), 0);

  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(server);
  cs.insecure = 1;
  if (getenv("H3WT_TEST_VERBOSE")) {
    cs.log_cb = h3wt_log_stderr;
    cs.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_client_new(&client, &loop, &cs, &cbs, NULL), 0);
  /* Ten sessions on one connection, opened before the handshake ends. */
  for (int i = 0; i < NSESS; ++i) {
    CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt/echo",
                                          "https://example.test", NULL, 0,
                                          &client_handler, NULL, &C[i].s),
                 0);
  }
  /* A path without a route: 404, and the server's handler is not asked. */
  CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt/nowhere", NULL, NULL, 0,
                                        &client_handler, NULL, &rejected),
               0);
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, guard_cb, 60000, 0);
  uv_timer_init(&loop, &step);
  uv_timer_start(&step, step_cb, 20, 20);
  uv_run(&loop, UV_RUN_DEFAULT);

  CHECK(!timed_out);
  TEST_CONTEXT("phase %d", phase);
  CHECK_EQ_INT(phase, 3);
  CHECK_EQ_INT(S.requests, NSESS); /* the 404 never reached the handler */
  CHECK(rejected_closed);
  CHECK_EQ_INT(rejected_err, H3WT_SESSION_REJECTED);
  CHECK_EQ_INT(rejected_status, 404);
  int dgrams = 0;
  for (int i = 0; i < NSESS; ++i) {
    dgrams += C[i].dgrams_back;
  }
  TEST_CONTEXT("datagrams echoed %d of %d (server saw %d)", dgrams, NDGRAM,
               S.datagrams);
  CHECK_EQ_INT(dgrams, NDGRAM); /* loopback, a modest rate: no loss */
  TEST_CONTEXT("streams");
  CHECK_EQ_INT(C[0].streams_done, NSTREAMS);
  CHECK_EQ_INT(C[1].uni_back, 1);
  TEST_CONTEXT("reset: server saw %u (has %d), client %u (has %d)",
               S.reset_seen, S.reset_has_code, C[2].reset_code,
               C[2].reset_has);
  CHECK_EQ_INT(S.reset_has_code, 1);
  CHECK_EQ_INT(S.reset_seen, 0x1e);
  CHECK_EQ_INT(C[2].reset_has, 1);
  CHECK_EQ_INT(C[2].reset_code, 0x1e);
  TEST_CONTEXT("close codes");
  CHECK_EQ_INT(C[3].close_err, H3WT_SESSION_CLOSED);
  CHECK_EQ_INT(C[3].close_code, 4242);
  CHECK_EQ_STR(C[3].reason, "bye from the client");
  CHECK_EQ_INT(C[4].close_code, 7);
  /* The server saw the client's codes and reasons. */
  CHECK_EQ_INT(S.closed >= 2, 1);
  /* Sessions still open when the client closed the connection ended with
     CONN_LOST on the client side. */
  CHECK_EQ_INT(C[5].closed, 1);
  CHECK_EQ_INT(C[5].close_err, H3WT_SESSION_CONN_LOST);
  TEST_CONTEXT("server streams opened %d closed %d", S.streams_opened,
               S.streams_closed);
  CHECK_EQ_INT(S.streams_opened + S.local_opened, S.streams_closed);
  CHECK_EQ_INT(S.ready, NSESS);
  CHECK_EQ_INT(S.closed, NSESS);

  h3wt_client_del(client);
  h3wt_server_del(server);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  loop_devcert_remove(dir, cert, key);
}

/* The code mapping, exhaustively around the GREASE gaps. */
TEST(code_mapping_round_trips) {
  for (uint32_t n = 0; n < 100000; ++n) {
    uint32_t back = 0;
    uint64_t h = h3wt_wt_code_to_h3(n);
    CHECK(h3wt_wt_code_from_h3(h, &back));
    CHECK_EQ_INT(back, n);
    /* Never a reserved codepoint 0x1f * N + 0x21. */
    CHECK((h - 0x21) % 0x1f != 0);
  }
  uint32_t back;
  CHECK_EQ_INT(h3wt_wt_code_to_h3(0xffffffffu), H3WT_WT_CODE_LAST);
  CHECK(h3wt_wt_code_from_h3(H3WT_WT_CODE_LAST, &back));
  CHECK_EQ_INT(back, 0xffffffffu);
  CHECK(!h3wt_wt_code_from_h3(H3WT_WT_CODE_FIRST - 1, &back));
  CHECK(!h3wt_wt_code_from_h3(H3WT_WT_CODE_LAST + 1, &back));
  CHECK(!h3wt_wt_code_from_h3(0x100, &back));
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(code_mapping_round_trips),
      TEST_ENTRY(sessions_streams_datagrams_close),
  };
  return TEST_MAIN(argc, argv, tests);
}
