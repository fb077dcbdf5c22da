/*
 * A server group of two workers, each a real server on its own thread and
 * loop, both on one UDP port (SO_REUSEPORT), against real clients on the
 * test's own loop (real UDP on 127.0.0.1, real TLS):
 *
 *  - spread: 200 connections, each with a GET (the body names the worker
 *    that answered) and a WebTransport session whose stream and datagrams
 *    are echoed; both workers serve some, the per-worker counters add up,
 *    session ids are unique across the group and name their worker; with
 *    the steering program attached no packet needs handing over.
 *  - migration: clients behind a relay that switches the upstream socket
 *    (a new source port: NAT rebinding) in the middle of their session
 *    keep the session, with steering and, packets being handed over to
 *    the worker that owns the connection, without it.
 *  - retry: every handshake but the first gets a Retry (the per-address
 *    rate, shared by the group, is 1/s), steering off: Initials and the
 *    answers to the Retries land on either worker and are handed to the
 *    one that owns their connection ID; every client is served, nothing
 *    is dropped.
 *  - a Retry answer held back until the worker that sent the Retry has
 *    stopped: the other worker cannot hand it over, checks the token with
 *    the group's secret and serves the client.
 *  - max_connections counts both workers' connections.
 *
 * Server callbacks run on the worker threads and only touch their
 * worker's struct; the test thread reads it after joining the thread.
 * Each loop ends with uv_loop_close() == 0.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_group.h"
#include "h3wt_test.h"
#include "loop_cert.h"

#define NWORKERS 2
#define MAXCONNS 200
#define NDGRAMS 3
#define STREAM_BYTES 3000

/* ---- the workers --------------------------------------------------------- */

typedef struct worker {
  uint32_t index;
  uv_loop_t loop;
  uv_thread_t thread;
  h3wt_server *server;
  h3wt_server_stats st; /* read on the worker's thread at its close */
  atomic_int closed;    /* its server's close callback ran */
  /* Touched by the worker's thread only. */
  int sessions, bad_ids, datagrams, streams_echoed;
  uint64_t ids[MAXCONNS];
  size_t nids;
} worker;

static worker W[NWORKERS];
static char cert[256], key[256];

static void hello(h3wt_request *req, void *d) {
  worker *w = d;
  char body[8];
  int n = snprintf(body, sizeof(body), "w%u", w->index);
  h3wt_request_respond(req, 200, NULL, 0, body, (size_t)n);
}
static const h3wt_request_handler hello_handler = {.on_request = hello};

static int se_request(h3wt_session *s, void *rd) {
  return 200;
}
static void se_ready(h3wt_session *s, void *rd) {
  worker *w = rd;
  uint64_t id = h3wt_session_id(s);
  ++w->sessions;
  /* Worker w of n issues ids with id % n == w. */
  if (id % NWORKERS != w->index) {
    ++w->bad_ids;
  }
  if (w->nids < MAXCONNS) {
    w->ids[w->nids++] = id;
  }
}
static void se_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  worker *w = rd;
  if (n && h3wt_stream_write(st, d, n) != 0) {
    ++w->bad_ids; /* counted as a failure on the test thread */
  }
  if (fin) {
    h3wt_stream_finish(st);
    ++w->streams_echoed;
  }
}
static void se_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  worker *w = rd;
  ++w->datagrams;
  h3wt_session_send_datagram(s, d, n);
}
/* Both sides: how a session ends is not this test's concern. */
static void any_close(h3wt_session *s, int err, uint32_t code,
                      const char *reason, size_t rl, void *rd) {
}
static const h3wt_session_handler echo_handler = {
    .on_session_request = se_request,
    .on_session_ready = se_ready,
    .on_stream_data = se_data,
    .on_datagram = se_dgram,
    .on_session_close = any_close};

static void worker_main(void *arg) {
  worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void worker_closed(h3wt_server *s, void *ud) {
  worker *w = ud;
  atomic_store(&w->closed, 1);
}

/* Posted to each worker: its counters, then the close (which ends its
   loop, and so its thread). */
static void worker_stop(void *arg) {
  worker *w = arg;
  memset(&w->st, 0, sizeof(w->st));
  w->st.version = H3WT_SERVER_STATS_VERSION;
  h3wt_server_get_stats(w->server, &w->st);
  h3wt_server_close(w->server, worker_closed, w);
}

/* Makes the group's servers (listening: worker 0 first, which binds every
   socket; the port is returned) and starts their threads. */
static uint16_t workers_start(h3wt_server_group *g,
                              uint32_t max_handshakes_per_addr,
                              uint32_t max_connections) {
  for (uint32_t i = 0; i < NWORKERS; ++i) {
    worker *w = &W[i];
    h3wt_server_settings ss;
    memset(w, 0, sizeof(*w));
    w->index = i;
    CHECK_EQ_INT(uv_loop_init(&w->loop), 0);
    h3wt_server_settings_default(&ss);
    ss.host = "127.0.0.1";
    ss.port = 0;
    ss.cert_file = cert;
    ss.key_file = key;
    ss.max_handshakes_per_addr = max_handshakes_per_addr;
    if (max_connections) {
      ss.max_connections = max_connections;
    }
    ss.group = g;
    ss.worker = i;
    if (getenv("H3WT_TEST_VERBOSE")) {
      ss.log_cb = h3wt_log_stderr;
      ss.log_level = H3WT_LOG_DEBUG;
    }
    CHECK_EQ_INT(h3wt_server_new(&w->server, &w->loop, &ss), 0);
    CHECK_EQ_INT(h3wt_server_route(w->server, "GET", "/", &hello_handler, w),
                 0);
    CHECK_EQ_INT(
        h3wt_server_webtransport(w->server, "/wt/echo", &echo_handler, w), 0);
    CHECK_EQ_INT(h3wt_server_listen(w->server), 0);
  }
  uint16_t port = h3wt_server_port(W[0].server);
  CHECK(port != 0);
  CHECK_EQ_INT(h3wt_server_port(W[1].server), port);
  /* The loops are handed to their threads here: from now on each server
     is touched on its own thread only (or through h3wt_server_post). */
  for (uint32_t i = 0; i < NWORKERS; ++i) {
    CHECK_EQ_INT(uv_thread_create(&W[i].thread, worker_main, &W[i]), 0);
  }
  return port;
}

static void workers_stop(void) {
  for (uint32_t i = 0; i < NWORKERS; ++i) {
    /* A worker stopped earlier refuses: it has nothing more to do. */
    if (!atomic_load(&W[i].closed)) {
      CHECK_EQ_INT(h3wt_server_post(W[i].server, worker_stop, &W[i]), 0);
    }
  }
}

static void workers_join(void) {
  for (uint32_t i = 0; i < NWORKERS; ++i) {
    uv_thread_join(&W[i].thread);
    h3wt_server_del(W[i].server);
    CHECK_EQ_INT(uv_loop_close(&W[i].loop), 0);
  }
}

/* ---- the clients --------------------------------------------------------- */

typedef struct conn {
  h3wt_client *cl;
  h3wt_session *s;
  int worker; /* from the GET body; -1 until then */
  int ready, got_get, stream_done, stream_ok, closed, finished;
  size_t bytes_back;
  int dgram_back[NDGRAMS];
  int relay; /* index of its relay, or -1 */
} conn;

/* A relay per migrating client: the client talks to down, the relay to
   the server from up[cur]; switching cur changes the source port the
   server sees.  Answers from either upstream socket go back down. */
typedef struct relay {
  uv_udp_t down, up[2];
  struct sockaddr_storage client;
  int have_client, cur;
  uint64_t switched_at_packets, packets;
} relay;

#define MAXRELAYS 16

static struct {
  uv_loop_t loop;
  conn c[MAXCONNS];
  int n;
  relay r[MAXRELAYS];
  int nrelays;
  struct sockaddr_in server_addr;
  int finished, closed, migrate, stopping, timed_out;
  uv_timer_t tick, guard;
} T;

static conn *conn_of_session(h3wt_session *s) {
  for (int i = 0; i < T.n; ++i) {
    if (T.c[i].s == s) {
      return &T.c[i];
    }
  }
  return NULL;
}

static int conn_complete(const conn *c) {
  if (!c->got_get || !c->stream_done) {
    return 0;
  }
  for (int k = 0; k < NDGRAMS; ++k) {
    if (!c->dgram_back[k]) {
      return 0;
    }
  }
  /* A migrating client must have moved before it is done. */
  return c->relay < 0 || T.r[c->relay].cur == 1;
}

static void conn_check_done(conn *c) {
  if (!c->finished && conn_complete(c)) {
    c->finished = 1;
    ++T.finished;
    h3wt_client_close(c->cl);
  }
}

static void got_body(h3wt_client_request *r, const uint8_t *d, size_t n,
                     void *ud) {
  conn *c = ud;
  if (n >= 2 && d[0] == 'w') {
    c->worker = d[1] - '0';
  }
}
static void got_close(h3wt_client_request *r, int err, uint64_t code,
                      void *ud) {
  conn *c = ud;
  c->got_get = err == 0 && c->worker >= 0;
  conn_check_done(c);
}
static const h3wt_response_handler get_handler = {NULL, got_body, got_close};

static void send_dgrams(conn *c) {
  for (int k = 0; k < NDGRAMS; ++k) {
    if (!c->dgram_back[k]) {
      uint8_t d[64];
      memset(d, (int)(c - T.c) & 0xff, sizeof(d));
      d[0] = (uint8_t)k;
      h3wt_session_send_datagram(c->s, d, sizeof(d));
    }
  }
}

static void send_stream(conn *c) {
  h3wt_stream *st;
  uint8_t buf[STREAM_BYTES];
  CHECK_EQ_INT(h3wt_session_open_stream(c->s, 1, &st), 0);
  memset(buf, (int)(c - T.c) & 0xff, sizeof(buf));
  CHECK_EQ_INT(h3wt_stream_write(st, buf, sizeof(buf)), 0);
  CHECK_EQ_INT(h3wt_stream_finish(st), 0);
}

static void cl_ready(h3wt_session *s, void *rd) {
  conn *c = conn_of_session(s);
  c->ready = 1;
  c->stream_ok = 1;
  send_stream(c);
  send_dgrams(c);
}
static void cl_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                    void *rd) {
  conn *c = conn_of_session(h3wt_stream_session(st));
  for (size_t i = 0; i < n; ++i) {
    if (d[i] != ((c - T.c) & 0xff)) {
      c->stream_ok = 0;
    }
  }
  c->bytes_back += n;
  if (fin) {
    c->stream_done = c->stream_ok && c->bytes_back == STREAM_BYTES;
    conn_check_done(c);
  }
}
static void cl_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  conn *c = conn_of_session(s);
  if (c && n == 64 && d[0] < NDGRAMS && d[1] == ((c - T.c) & 0xff)) {
    c->dgram_back[d[0]] = 1;
    conn_check_done(c);
  }
}
static const h3wt_session_handler client_handler = {
    .on_session_ready = cl_ready,
    .on_stream_data = cl_data,
    .on_datagram = cl_dgram,
    .on_session_close = any_close};

static void on_connected(h3wt_client *cl, void *ud) {
  conn *c = ud;
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/", NULL, 0, NULL, 0,
                                        &get_handler, c, NULL),
               0);
}

static void close_test_handles(void) {
  uv_close((uv_handle_t *)&T.tick, NULL);
  uv_close((uv_handle_t *)&T.guard, NULL);
  for (int i = 0; i < T.nrelays; ++i) {
    uv_close((uv_handle_t *)&T.r[i].down, NULL);
    uv_close((uv_handle_t *)&T.r[i].up[0], NULL);
    uv_close((uv_handle_t *)&T.r[i].up[1], NULL);
  }
}

static void on_client_closed(h3wt_client *cl, int err, void *ud) {
  conn *c = ud;
  c->closed = 1;
  if (++T.closed == T.n && !T.stopping) {
    T.stopping = 1;
    close_test_handles();
    workers_stop();
  }
}

/* Every 50 ms: datagrams not echoed yet are sent again (a datagram may be
   lost even on loopback when 200 handshakes run at once), and migrating
   clients whose session works switch their relay's upstream socket. */
static void tick_cb(uv_timer_t *t) {
  for (int i = 0; i < T.n; ++i) {
    conn *c = &T.c[i];
    if (!c->ready || c->finished) {
      continue;
    }
    if (c->relay >= 0) {
      relay *r = &T.r[c->relay];
      if (r->cur == 0 && c->stream_done) {
        /* The session works: move, then the datagrams go again through
           the new port. */
        r->cur = 1;
        r->switched_at_packets = r->packets;
        memset(c->dgram_back, 0, sizeof(c->dgram_back));
      }
    }
    send_dgrams(c);
  }
}

static void guard_cb(uv_timer_t *t) {
  T.timed_out = 1;
  for (int i = 0; i < T.n; ++i) {
    h3wt_client_close(T.c[i].cl);
  }
}

/* ---- the relay ----------------------------------------------------------- */

static void relay_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[65536];
  b->base = buf;
  b->len = sizeof(buf);
}

static void relay_from_client(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                              const struct sockaddr *a, unsigned flags) {
  relay *r = h->data;
  if (n <= 0 || !a) {
    return;
  }
  memcpy(&r->client, a, sizeof(struct sockaddr_in));
  r->have_client = 1;
  ++r->packets;
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  uv_udp_try_send(&r->up[r->cur], &out, 1,
                  (const struct sockaddr *)&T.server_addr);
}

static void relay_from_server(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                              const struct sockaddr *a, unsigned flags) {
  relay *r = h->data;
  if (n <= 0 || !r->have_client) {
    return;
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  uv_udp_try_send(&r->down, &out, 1, (const struct sockaddr *)&r->client);
}

static uint16_t relay_open(relay *r) {
  struct sockaddr_in any;
  int len = sizeof(any);
  uv_ip4_addr("127.0.0.1", 0, &any);
  memset(r, 0, sizeof(*r));
  uv_udp_init(&T.loop, &r->down);
  r->down.data = r;
  CHECK_EQ_INT(uv_udp_bind(&r->down, (const struct sockaddr *)&any, 0), 0);
  uv_udp_recv_start(&r->down, relay_alloc, relay_from_client);
  for (int k = 0; k < 2; ++k) {
    uv_udp_init(&T.loop, &r->up[k]);
    r->up[k].data = r;
    CHECK_EQ_INT(uv_udp_bind(&r->up[k], (const struct sockaddr *)&any, 0), 0);
    uv_udp_recv_start(&r->up[k], relay_alloc, relay_from_server);
  }
  struct sockaddr_in me;
  CHECK_EQ_INT(uv_udp_getsockname(&r->down, (struct sockaddr *)&me, &len), 0);
  return ntohs(me.sin_port);
}

/* ---- one round ----------------------------------------------------------- */

typedef struct round_opts {
  int nconns;
  int nmigrating;          /* the first ones go through a relay */
  int steering;            /* attach the program */
  uint32_t handshake_rate; /* max_handshakes_per_addr (0: never Retry) */
} round_opts;

typedef struct round_result {
  h3wt_server_stats st[NWORKERS];
  int served_by[NWORKERS]; /* GET bodies */
  int complete;
  int steering;
} round_result;

static void run_round(const round_opts *o, round_result *res) {
  h3wt_server_group *g;
  memset(&T, 0, sizeof(T));
  memset(res, 0, sizeof(*res));
  CHECK_EQ_INT(h3wt_server_group_new(&g, NWORKERS), 0);
  h3wt_group_set_steering(g, o->steering);
  uint16_t port = workers_start(g, o->handshake_rate, 0);
  res->steering = h3wt_group_steering(g);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  uv_ip4_addr("127.0.0.1", port, &T.server_addr);
  T.n = o->nconns;
  for (int i = 0; i < T.n; ++i) {
    conn *c = &T.c[i];
    h3wt_client_settings cs;
    h3wt_client_callbacks cbs = {on_connected, on_client_closed};
    c->worker = -1;
    c->relay = -1;
    h3wt_client_settings_default(&cs);
    cs.host = "127.0.0.1";
    cs.port = port;
    cs.insecure = 1;
    if (i < o->nmigrating && T.nrelays < MAXRELAYS) {
      c->relay = T.nrelays++;
      cs.port = relay_open(&T.r[c->relay]);
    }
    CHECK_EQ_INT(h3wt_client_new(&c->cl, &T.loop, &cs, &cbs, c), 0);
    CHECK_EQ_INT(h3wt_client_webtransport(c->cl, "/wt/echo",
                                          "https://example.test", NULL, 0,
                                          &client_handler, NULL, &c->s),
                 0);
  }
  uv_timer_init(&T.loop, &T.tick);
  uv_timer_start(&T.tick, tick_cb, 50, 50);
  uv_timer_init(&T.loop, &T.guard);
  uv_timer_start(&T.guard, guard_cb, 60000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  workers_join();
  for (int i = 0; i < T.n; ++i) {
    conn *c = &T.c[i];
    if (c->worker >= 0 && c->worker < NWORKERS) {
      ++res->served_by[c->worker];
    }
    res->complete += c->finished;
    h3wt_client_del(c->cl);
  }
  for (int i = 0; i < NWORKERS; ++i) {
    res->st[i] = W[i].st;
  }
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  h3wt_server_group_del(g);
}

/* What every round checks: all served, the counters of both workers add
   up to what the clients did, ids unique and each naming its worker,
   nothing dropped between workers. */
static void check_round(const round_opts *o, const round_result *res) {
  uint64_t conns = 0, sessions = 0, dropped = 0;
  TEST_CONTEXT("%d connections (%d migrating, steering %d/%d): complete %d, "
               "served by w0 %d w1 %d, timed out %d",
               o->nconns, o->nmigrating, o->steering, res->steering,
               res->complete, res->served_by[0], res->served_by[1],
               T.timed_out);
  printf("  %d connections (%d migrating, steering %s): served by w0 %d, "
         "w1 %d; packets handed over %llu + %llu, dropped %llu + %llu\n",
         o->nconns, o->nmigrating, res->steering ? "on" : "off",
         res->served_by[0], res->served_by[1],
         (unsigned long long)res->st[0].packets_handed_off,
         (unsigned long long)res->st[1].packets_handed_off,
         (unsigned long long)res->st[0].packets_misrouted_dropped,
         (unsigned long long)res->st[1].packets_misrouted_dropped);
  CHECK(!T.timed_out);
  CHECK_EQ_INT(res->complete, o->nconns);
  for (int i = 0; i < NWORKERS; ++i) {
    conns += res->st[i].connections_total;
    sessions += res->st[i].sessions_total;
    dropped += res->st[i].packets_misrouted_dropped;
    CHECK_EQ_INT(W[i].bad_ids, 0);
    CHECK_EQ_INT(W[i].sessions, (int)res->st[i].sessions_total);
    CHECK_EQ_INT(W[i].streams_echoed, W[i].sessions);
  }
  CHECK_EQ_INT(conns, o->nconns);
  CHECK_EQ_INT(sessions, o->nconns);
  CHECK_EQ_INT(dropped, 0);
  /* Session ids: unique across the group. */
  for (size_t a = 0; a < W[0].nids; ++a) {
    for (size_t b = 0; b < W[1].nids; ++b) {
      CHECK(W[0].ids[a] != W[1].ids[b]);
    }
  }
}

static void with_cert(void (*fn)(void)) {
  char dir[] = "/tmp/h3wt-workers-XXXXXX";
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  fn();
  loop_devcert_remove(dir, cert, key);
}

static void spread(void) {
  round_opts o = {MAXCONNS, 0, 1, 0};
  round_result res;
  run_round(&o, &res);
  check_round(&o, &res);
  /* Both workers got a share of the connections (the clients' random
     DCIDs spread them: one worker getting all 200 has odds of 2^-199). */
  CHECK(res.served_by[0] > 0);
  CHECK(res.served_by[1] > 0);
  CHECK_EQ_INT(res.served_by[0] + res.served_by[1], MAXCONNS);
  CHECK_EQ_INT(res.st[0].connections_total, res.served_by[0]);
  CHECK_EQ_INT(res.st[1].connections_total, res.served_by[1]);
  if (res.steering) {
    /* The kernel put every packet on its owner's socket. */
    CHECK_EQ_INT(res.st[0].packets_handed_off + res.st[1].packets_handed_off,
                 0);
  } else {
    fprintf(stderr, "note: the steering program could not be attached "
                    "here; packets were handed over instead\n");
  }
}

TEST(two_workers_spread_200_connections) {
  with_cert(spread);
}

static void migration(void) {
  round_result res;
  for (int steering = 1; steering >= 0; --steering) {
    round_opts o = {MAXRELAYS, MAXRELAYS, steering, 0};
    run_round(&o, &res);
    check_round(&o, &res);
    for (int i = 0; i < T.nrelays; ++i) {
      /* Packets went through the new port after the switch. */
      CHECK(T.r[i].cur == 1);
      CHECK(T.r[i].packets > T.r[i].switched_at_packets);
    }
    uint64_t handed =
        res.st[0].packets_handed_off + res.st[1].packets_handed_off;
    TEST_CONTEXT("steering %d: %llu packets handed over", res.steering,
                 (unsigned long long)handed);
    if (res.steering) {
      CHECK_EQ_INT(handed, 0);
    } else {
      /* The kernel's 4-tuple hash put some of 16 clients (before or after
         their move) on the worker that does not own their connection. */
      CHECK(handed > 0);
    }
  }
}

TEST(a_client_that_changes_port_keeps_its_session) {
  with_cert(migration);
}

static void retry(void) {
  round_opts o = {40, 0, 0, 1};
  round_result res;
  run_round(&o, &res);
  check_round(&o, &res);
  uint64_t retries = res.st[0].limit_max_handshakes_per_addr +
                     res.st[1].limit_max_handshakes_per_addr;
  uint64_t handed = res.st[0].packets_handed_off + res.st[1].packets_handed_off;
  TEST_CONTEXT("Retries w0 %llu w1 %llu, handed over w0 %llu w1 %llu",
               (unsigned long long)res.st[0].limit_max_handshakes_per_addr,
               (unsigned long long)res.st[1].limit_max_handshakes_per_addr,
               (unsigned long long)res.st[0].packets_handed_off,
               (unsigned long long)res.st[1].packets_handed_off);
  CHECK_EQ_INT(res.steering, 0);
  /* One rate for the group: at most one handshake per second goes in
     without a Retry (a slow machine spans a few seconds). */
  CHECK(retries >= (uint64_t)o.nconns / 2);
  CHECK(res.st[0].limit_max_handshakes_per_addr > 0);
  CHECK(res.st[1].limit_max_handshakes_per_addr > 0);
  /* Without steering the Initials and Retry answers of about half the
     clients land on the worker that does not own their ID. */
  CHECK(handed > 0);
  CHECK(res.served_by[0] > 0);
  CHECK(res.served_by[1] > 0);
}

TEST(retry_tokens_across_workers) {
  with_cert(retry);
}

/* ---- a Retry answer that outlives the worker that sent the Retry --------- */
/* One client behind a relay that holds back its Initials that carry a
   token (its answers to a Retry) until the worker that sent the Retry
   has stopped.  The answer then reaches the other worker (one socket is
   left in the group), which cannot hand it to a stopped worker: it
   checks the token itself, with the group's secret, and serves the
   client.  The per-address rate (1/s, shared) is used up first by two
   packets that look like Initials, so the client's own Initial gets the
   Retry. */

static struct {
  relay r;
  h3wt_client *cl;
  int status, closed, worker_served;
  int held_n, released, owner, phase, timed_out;
  uint8_t held[8][1500];
  size_t held_len[8];
  uv_timer_t tick, guard;
} RA;

/* A v1 long-header Initial whose token is not empty (RFC 9000 17.2.2). */
static int is_token_initial(const uint8_t *b, size_t n) {
  if (n < 7 || !(b[0] & 0x80) || (b[0] & 0x30) != 0 || b[1] || b[2] || b[3] ||
      b[4] != 1) {
    return 0;
  }
  size_t off = 6 + b[5];
  if (off >= n) {
    return 0;
  }
  off += 1 + b[off]; /* SCID */
  if (off >= n) {
    return 0;
  }
  return (b[off] & 0x3f) != 0 || (b[off] >> 6) != 0; /* a varint > 0 */
}

static void ra_from_client(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                           const struct sockaddr *a, unsigned flags) {
  relay *r = &RA.r;
  if (n <= 0 || !a) {
    return;
  }
  memcpy(&r->client, a, sizeof(struct sockaddr_in));
  r->have_client = 1;
  const uint8_t *p = (const uint8_t *)b->base;
  if (!RA.released && is_token_initial(p, (size_t)n) && n <= 1500) {
    if (RA.held_n < 8) {
      /* Whose Retry it answers: the DCID is the Retry's SCID. */
      uint32_t v = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 |
                   (uint32_t)p[8] << 8 | p[9];
      RA.owner = (int)(v % NWORKERS);
      memcpy(RA.held[RA.held_n], p, (size_t)n);
      RA.held_len[RA.held_n++] = (size_t)n;
    }
    return;
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  uv_udp_try_send(&r->up[0], &out, 1, (const struct sockaddr *)&T.server_addr);
}

static void ra_body(h3wt_client_request *q, const uint8_t *d, size_t n,
                    void *ud) {
  if (n >= 2 && d[0] == 'w') {
    RA.worker_served = d[1] - '0';
  }
}
static void ra_headers(h3wt_client_request *q, int status, const h3wt_header *h,
                       size_t n, void *ud) {
  RA.status = status;
}
static void ra_done(h3wt_client_request *q, int err, uint64_t code, void *ud) {
  h3wt_client_close(RA.cl);
}
static const h3wt_response_handler ra_get = {ra_headers, ra_body, ra_done};
static void ra_connected(h3wt_client *cl, void *ud) {
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/", NULL, 0, NULL, 0,
                                        &ra_get, NULL, NULL),
               0);
}
static void ra_client_closed(h3wt_client *cl, int err, void *ud) {
  RA.closed = 1;
  uv_close((uv_handle_t *)&RA.tick, NULL);
  uv_close((uv_handle_t *)&RA.guard, NULL);
  uv_close((uv_handle_t *)&RA.r.down, NULL);
  uv_close((uv_handle_t *)&RA.r.up[0], NULL);
  uv_close((uv_handle_t *)&RA.r.up[1], NULL);
  workers_stop();
}

static void ra_tick(uv_timer_t *t) {
  switch (RA.phase) {
  case 0: { /* the rate used up: the client */
    h3wt_client_settings cs;
    h3wt_client_callbacks cbs = {ra_connected, ra_client_closed};
    struct sockaddr_in me;
    int len = sizeof(me);
    uv_udp_getsockname(&RA.r.down, (struct sockaddr *)&me, &len);
    h3wt_client_settings_default(&cs);
    cs.host = "127.0.0.1";
    cs.port = ntohs(me.sin_port);
    cs.insecure = 1;
    CHECK_EQ_INT(h3wt_client_new(&RA.cl, &T.loop, &cs, &cbs, NULL), 0);
    RA.phase = 1;
    return;
  }
  case 1: /* its answer to the Retry is held: stop the Retry's worker */
    if (RA.held_n > 0) {
      CHECK_EQ_INT(
          h3wt_server_post(W[RA.owner].server, worker_stop, &W[RA.owner]), 0);
      RA.phase = 2;
    }
    return;
  case 2: /* stopped (its socket gone): the answer goes on */
    if (atomic_load(&W[RA.owner].closed)) {
      RA.released = 1;
      for (int i = 0; i < RA.held_n; ++i) {
        uv_buf_t out =
            uv_buf_init((char *)RA.held[i], (unsigned)RA.held_len[i]);
        uv_udp_try_send(&RA.r.up[0], &out, 1,
                        (const struct sockaddr *)&T.server_addr);
      }
      RA.phase = 3;
    }
    return;
  }
}

static void ra_guard(uv_timer_t *t) {
  RA.timed_out = 1;
  if (RA.cl) {
    h3wt_client_close(RA.cl);
  } else {
    ra_client_closed(NULL, 0, NULL);
  }
}

static void retry_outlives(void) {
  h3wt_server_group *g;
  memset(&T, 0, sizeof(T));
  memset(&RA, 0, sizeof(RA));
  RA.owner = -1;
  CHECK_EQ_INT(h3wt_server_group_new(&g, NWORKERS), 0);
  uint16_t port = workers_start(g, 1, 0);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  uv_ip4_addr("127.0.0.1", port, &T.server_addr);
  relay_open(&RA.r);
  uv_udp_recv_stop(&RA.r.down);
  uv_udp_recv_start(&RA.r.down, relay_alloc, ra_from_client);
  RA.r.up[0].data = &RA.r;
  /* Two packets with a v1 long header from the relay's address: each
     counts in the rate (one per second), and neither makes a connection
     (shorter than an Initial must be, RFC 9000 14.1). */
  uint8_t fake[100];
  memset(fake, 0, sizeof(fake));
  fake[0] = 0xc0;
  fake[4] = 1;
  fake[5] = 8;
  for (int i = 0; i < 2; ++i) {
    fake[6] = (uint8_t)(0x10 + i); /* random-looking DCIDs */
    uv_buf_t out = uv_buf_init((char *)fake, sizeof(fake));
    uv_udp_try_send(&RA.r.up[0], &out, 1,
                    (const struct sockaddr *)&T.server_addr);
  }
  uv_timer_init(&T.loop, &RA.tick);
  uv_timer_init(&T.loop, &RA.guard);
  /* The client after the fakes were seen (well within the rate's 1 s). */
  uv_timer_start(&RA.tick, ra_tick, 200, 20);
  uv_timer_start(&RA.guard, ra_guard, 30000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  workers_join();
  h3wt_client_del(RA.cl);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  h3wt_server_group_del(g);

  int other = RA.owner == 0 ? 1 : 0;
  printf("  Retry sent by worker %d, its answer held (%d packets) until that "
         "worker stopped, then served by worker %d: status %d\n",
         RA.owner, RA.held_n, RA.worker_served, RA.status);
  TEST_CONTEXT("owner %d, held %d, status %d, served by %d, timed out %d",
               RA.owner, RA.held_n, RA.status, RA.worker_served, RA.timed_out);
  CHECK(!RA.timed_out);
  CHECK(RA.held_n > 0); /* the client was retried */
  CHECK(RA.owner >= 0);
  CHECK_EQ_INT(RA.status, 200);
  CHECK_EQ_INT(RA.worker_served, other);
  if (RA.owner >= 0) {
    CHECK(W[RA.owner].st.limit_max_handshakes_per_addr >= 1);
    CHECK_EQ_INT(W[other].st.connections_total, 1);
    CHECK_EQ_INT(W[other].st.packets_misrouted_dropped, 0);
  }
}

TEST(retry_answer_taken_by_another_worker) {
  with_cert(retry_outlives);
}

/* ---- max_connections counts both workers' connections -------------------- */
/* 8 clients at once against max_connections 4: 4 connect (spread over
   both workers) and hold on; the others' Initials are dropped until
   their handshake timeout.  Each worker counting only its own would let
   up to 8 in. */

#define LIMIT_CLIENTS 8
#define LIMIT_CONNS 4

static struct {
  h3wt_client *cl[LIMIT_CLIENTS];
  int connected, failed, closed, released;
  uv_timer_t guard;
} LC;

static void lc_release(void) {
  /* Every client is in or out: the ones in let go. */
  LC.released = 1;
  for (int i = 0; i < LIMIT_CLIENTS; ++i) {
    h3wt_client_close(LC.cl[i]);
  }
}
static void lc_connected(h3wt_client *cl, void *ud) {
  ++LC.connected;
  if (LC.connected + LC.failed == LIMIT_CLIENTS) {
    lc_release();
  }
}
static void lc_closed(h3wt_client *cl, int err, void *ud) {
  if (!LC.released) {
    ++LC.failed; /* never connected: its handshake timed out */
    if (LC.connected + LC.failed == LIMIT_CLIENTS) {
      lc_release();
    }
  }
  if (++LC.closed == LIMIT_CLIENTS) {
    uv_close((uv_handle_t *)&LC.guard, NULL);
    workers_stop();
  }
}
static void lc_guard(uv_timer_t *t) {
  T.timed_out = 1;
  lc_release();
}

static void connection_limit(void) {
  h3wt_server_group *g;
  memset(&T, 0, sizeof(T));
  memset(&LC, 0, sizeof(LC));
  CHECK_EQ_INT(h3wt_server_group_new(&g, NWORKERS), 0);
  uint16_t port = workers_start(g, 0, LIMIT_CONNS);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  for (int i = 0; i < LIMIT_CLIENTS; ++i) {
    h3wt_client_settings cs;
    h3wt_client_callbacks cbs = {lc_connected, lc_closed};
    h3wt_client_settings_default(&cs);
    cs.host = "127.0.0.1";
    cs.port = port;
    cs.insecure = 1;
    cs.handshake_timeout_ms = 2000;
    CHECK_EQ_INT(h3wt_client_new(&LC.cl[i], &T.loop, &cs, &cbs, NULL), 0);
  }
  uv_timer_init(&T.loop, &LC.guard);
  uv_timer_start(&LC.guard, lc_guard, 30000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  workers_join();
  for (int i = 0; i < LIMIT_CLIENTS; ++i) {
    h3wt_client_del(LC.cl[i]);
  }
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  h3wt_server_group_del(g);
  uint64_t conns = W[0].st.connections_total + W[1].st.connections_total;
  uint64_t refused =
      W[0].st.limit_max_connections + W[1].st.limit_max_connections;
  printf("  max_connections %d, %d clients: %d connected (w0 %llu, w1 "
         "%llu), %d refused (%llu Initials dropped)\n",
         LIMIT_CONNS, LIMIT_CLIENTS, LC.connected,
         (unsigned long long)W[0].st.connections_total,
         (unsigned long long)W[1].st.connections_total, LC.failed,
         (unsigned long long)refused);
  TEST_CONTEXT("connected %d, failed %d, timed out %d", LC.connected, LC.failed,
               T.timed_out);
  CHECK(!T.timed_out);
  CHECK_EQ_INT(LC.connected, LIMIT_CONNS);
  CHECK_EQ_INT(LC.failed, LIMIT_CLIENTS - LIMIT_CONNS);
  CHECK_EQ_INT(conns, LIMIT_CONNS);
  CHECK(refused >= LIMIT_CLIENTS - LIMIT_CONNS);
}

TEST(max_connections_over_the_group) {
  with_cert(connection_limit);
}

TEST(group_arguments) {
  h3wt_server_group *g = NULL;
  h3wt_server_settings ss;
  h3wt_server *s = NULL;
  uv_loop_t loop;
  CHECK_EQ_INT(h3wt_server_group_new(&g, 0), H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_server_group_new(NULL, 2), H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_server_group_new(&g, 2), 0);
  char dir[] = "/tmp/h3wt-workers-XXXXXX";
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  h3wt_server_settings_default(&ss);
  ss.cert_file = cert;
  ss.key_file = key;
  ss.group = g;
  ss.worker = 2; /* past the last */
  CHECK_EQ_INT(h3wt_server_new(&s, &loop, &ss), H3WT_ERR_INVALID_ARGUMENT);
  /* A V4 caller never sees the group fields. */
  ss.version = H3WT_SERVER_SETTINGS_V4;
  CHECK_EQ_INT(h3wt_server_new(&s, &loop, &ss), 0);
  h3wt_server_del(s);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  h3wt_server_group_del(g);
  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(group_arguments),
      TEST_ENTRY(two_workers_spread_200_connections),
      TEST_ENTRY(a_client_that_changes_port_keeps_its_session),
      TEST_ENTRY(retry_tokens_across_workers),
      TEST_ENTRY(retry_answer_taken_by_another_worker),
      TEST_ENTRY(max_connections_over_the_group),
  };
  return TEST_MAIN(argc, argv, tests);
}
