/*
 * The per-session write budget (max_session_queue) end to end: a real
 * server and client on one libuv loop, UDP on 127.0.0.1, real TLS.
 *
 * The server's route opens NSTREAMS unidirectional streams as soon as the
 * session is ready and writes STREAM_BYTES on each, as fast as the library
 * lets it.  The per-stream limit alone would let it queue NSTREAMS times
 * max_stream_queue; the session budget must stop it well before that, with
 * H3WT_ERR_WOULDBLOCK counted as limit_max_session_queue, and wake the
 * refused streams with on_stream_writable as acknowledgements free room.
 * The client checks that every byte of every stream arrives, in order.
 * Ends with uv_loop_close() == 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"

#define NSTREAMS 8
#define STREAM_BYTES (256 * 1024)
#define CHUNK 16384
#define STREAM_QUEUE (64 * 1024)
#define SESSION_QUEUE (128 * 1024)

static uv_loop_t loop;
static h3wt_server *server;
static h3wt_client *client;
static uv_timer_t guard;
static int timed_out, finished;

/* ---- the server: pushes on many streams ---------------------------------- */

typedef struct pusher {
  int index;
  size_t written;
  int finished;
} pusher;

static struct {
  int ready, writable, session_refusals, stream_refusals, finished_streams;
} S;

static pusher P[NSTREAMS];
static h3wt_stream *opened[NSTREAMS];

static uint64_t session_refusals_now(void) {
  h3wt_server_stats st;
  st.version = H3WT_SERVER_STATS_VERSION;
  CHECK_EQ_INT(h3wt_server_get_stats(server, &st), 0);
  return st.limit_max_session_queue;
}

static void pump(h3wt_stream *st) {
  pusher *p = h3wt_stream_get_data(st);
  uint8_t buf[CHUNK];
  memset(buf, p->index + 1, sizeof(buf));
  while (p->written < STREAM_BYTES) {
    uint64_t before = session_refusals_now();
    int rv = h3wt_stream_write(st, buf, sizeof(buf));
    if (rv == H3WT_ERR_WOULDBLOCK) {
      if (session_refusals_now() == before + 1) {
        ++S.session_refusals;
      } else {
        ++S.stream_refusals;
      }
      return;
    }
    CHECK_EQ_INT(rv, 0);
    if (rv != 0) {
      return;
    }
    p->written += sizeof(buf);
  }
  if (!p->finished) {
    p->finished = 1;
    ++S.finished_streams;
    CHECK_EQ_INT(h3wt_stream_finish(st), 0);
  }
}

static int sv_request(h3wt_session *s, void *rd) {
  return 200;
}

static void sv_writable(h3wt_stream *st, void *rd) {
  ++S.writable;
  pump(st);
}

/* ---- the client: checks every byte ------------------------------------- */

typedef struct got {
  uint8_t fill; /* 0 until the first byte */
  size_t bytes;
  int ok, fin;
} got;

static struct {
  int ready, streams, done, bad;
  got g[NSTREAMS];
} C;

static void cl_ready(h3wt_session *s, void *rd) {
  C.ready = 1;
}

static void cl_open(h3wt_stream *st, void *rd) {
  if (C.streams >= NSTREAMS) {
    ++C.bad;
    return;
  }
  got *g = &C.g[C.streams++];
  g->ok = 1;
  h3wt_stream_set_data(st, g);
}

static void finish(void);

static void cl_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  got *g = h3wt_stream_get_data(st);
  if (!g) {
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (!g->fill) {
      g->fill = d[i];
    }
    if (d[i] != g->fill) {
      g->ok = 0;
    }
  }
  g->bytes += n;
  if (fin) {
    g->fin = 1;
    if (++C.done == NSTREAMS) {
      finish();
    }
  }
}

static const h3wt_session_handler client_handler = {
    .on_session_ready = cl_ready,
    .on_stream_open = cl_open,
    .on_stream_data = cl_data,
};

/* ---- plumbing ---------------------------------------------------------- */

static void on_client_closed(h3wt_client *cl, int err, void *ud) {
  h3wt_server_close(server, NULL, NULL);
}

static void finish(void) {
  if (finished) {
    return;
  }
  finished = 1;
  uv_close((uv_handle_t *)&guard, NULL);
  h3wt_client_close(client);
}

static void guard_cb(uv_timer_t *t) {
  timed_out = 1;
  finish();
}

static void start_pushing(h3wt_session *s) {
  for (int i = 0; i < NSTREAMS; ++i) {
    if (opened[i]) {
      pump(opened[i]);
    }
  }
}

static void sv_ready_open(h3wt_session *s, void *rd) {
  ++S.ready;
  for (int i = 0; i < NSTREAMS; ++i) {
    CHECK_EQ_INT(h3wt_session_open_stream(s, 0, &opened[i]), 0);
    P[i].index = i;
    h3wt_stream_set_data(opened[i], &P[i]);
  }
  /* All writes in one callback: no acknowledgement can free room
     meanwhile, so the refusals are exactly the limits at work. */
  start_pushing(s);
}

static const h3wt_session_handler push_handler = {
    .on_session_request = sv_request,
    .on_session_ready = sv_ready_open,
    .on_stream_writable = sv_writable,
};

static void run(size_t session_queue, h3wt_server_stats *out) {
  char dir[] = "/tmp/h3wt-budget-XXXXXX", cert[256], key[256];
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, on_client_closed};
  h3wt_session *sess;

  memset(&S, 0, sizeof(S));
  memset(&C, 0, sizeof(C));
  memset(P, 0, sizeof(P));
  memset(opened, 0, sizeof(opened));
  timed_out = finished = 0;
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  h3wt_server_settings_default(&ss);
  CHECK_EQ_INT(ss.max_session_queue, 1024 * 1024); /* the documented default */
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.max_stream_queue = STREAM_QUEUE;
  ss.max_session_queue = session_queue;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&server, &loop, &ss), 0);
  CHECK_EQ_INT(
      h3wt_server_webtransport(server, "/wt/push", &push_handler, NULL), 0);
  CHECK_EQ_INT(h3wt_server_listen(server), 0);

  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(server);
  cs.insecure = 1;
  CHECK_EQ_INT(h3wt_client_new(&client, &loop, &cs, &cbs, NULL), 0);
  CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt/push", NULL, NULL, 0,
                                        &client_handler, NULL, &sess),
               0);
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, guard_cb, 60000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);

  out->version = H3WT_SERVER_STATS_VERSION;
  CHECK_EQ_INT(h3wt_server_get_stats(server, out), 0);
  h3wt_client_del(client);
  h3wt_server_del(server);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  loop_devcert_remove(dir, cert, key);
}

static void check_all_bytes_arrived(void) {
  CHECK(!timed_out);
  CHECK_EQ_INT(S.ready, 1);
  CHECK_EQ_INT(S.finished_streams, NSTREAMS);
  CHECK_EQ_INT(C.streams, NSTREAMS);
  CHECK_EQ_INT(C.done, NSTREAMS);
  CHECK_EQ_INT(C.bad, 0);
  for (int i = 0; i < NSTREAMS; ++i) {
    TEST_CONTEXT("client stream %d", i);
    CHECK(C.g[i].ok);
    CHECK(C.g[i].fin);
    CHECK_EQ_INT(C.g[i].bytes, STREAM_BYTES);
  }
  TEST_CONTEXT("%s", "");
}

/* Eight streams, a budget of two streams' worth: most first writes are
   refused by the session, and every refused stream is woken later. */
TEST(session_budget_blocks_then_wakes) {
  h3wt_server_stats st;
  run(SESSION_QUEUE, &st);
  check_all_bytes_arrived();
  TEST_CONTEXT("session refusals %d, stream refusals %d, writable %d",
               S.session_refusals, S.stream_refusals, S.writable);
  /* With CHUNK-sized writes, stream 0 fills its own queue (64 KiB + one
     chunk), stream 1 takes the session past 128 KiB, and the first write
     of every later stream is refused by the session. */
  printf("session refusals %d, stream refusals %d, writable %d\n",
         S.session_refusals, S.stream_refusals, S.writable);
  CHECK(S.session_refusals >= NSTREAMS - 2);
  CHECK(S.writable >= S.session_refusals + S.stream_refusals - NSTREAMS);
  CHECK(S.writable > 0);
  CHECK_EQ_INT(st.limit_max_session_queue, (uint64_t)S.session_refusals);
  CHECK_EQ_INT(st.limit_max_stream_queue, (uint64_t)S.stream_refusals);
  CHECK_EQ_INT(st.sessions_total, 1);
  CHECK_EQ_INT(st.sessions_current, 0);
  CHECK_EQ_INT(st.wt_streams_uni_local, NSTREAMS);
  CHECK_EQ_INT(st.connections_total, 1);
  CHECK_EQ_INT(st.connections_current, 0);
  CHECK_EQ_INT(st.requests_total, 1); /* the CONNECT */
  CHECK(st.udp_bytes_sent > (uint64_t)NSTREAMS * STREAM_BYTES);
  CHECK(st.udp_bytes_received > 0);
}

/* max_session_queue 0: no session budget, only the per-stream limit. */
TEST(no_session_budget) {
  h3wt_server_stats st;
  run(0, &st);
  check_all_bytes_arrived();
  CHECK_EQ_INT(S.session_refusals, 0);
  CHECK_EQ_INT(st.limit_max_session_queue, 0);
  /* Every stream fills its own queue first. */
  CHECK(S.stream_refusals >= NSTREAMS);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(session_budget_blocks_then_wakes),
      TEST_ENTRY(no_session_budget),
  };
  return TEST_MAIN(argc, argv, tests);
}
