/*
 * Session resumption and 0-RTT (issue 11), over loopback UDP with real
 * TLS: servers and clients of this library on one loop.
 *
 * One connection writes a saved session (h3wt_client_session_save); the
 * next resumes it, sends its GET in 0-RTT (queued before the first packet)
 * and the server answers it before the handshake is over (its 0-RTT
 * counters say so).  A WebTransport CONNECT in 0-RTT is taken by a server
 * with wt_0rtt on, answered 425 by one with it off (the client sends it
 * again after the handshake and the session opens).  A damaged, cut or
 * foreign saved session, a server with another ticket key (another
 * secret), one that no longer grants the limits the session remembers,
 * and one with 0-RTT off each give a full handshake or a rejected 0-RTT,
 * and the GET is still answered.  Ends with uv_loop_close() == 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_resume.h"

static uv_loop_t loop;
static char cert[256], key[256];

static const uint8_t secret1[] = "resume test secret number one!";
static const uint8_t secret2[] = "another secret, another ticket key";

typedef struct srv_opts {
  const uint8_t *secret;
  size_t secret_len;
  int early_data;
  int wt_0rtt;
  uint32_t max_streams_bidi;
} srv_opts;

static int warnings; /* client log lines at WARN or above */

static void client_log(h3wt_log_level level, const char *component,
                       const char *msg, void *ud) {
  (void)ud;
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "client %s: %s\n", component, msg);
  }
  if (level <= H3WT_LOG_WARN) {
    ++warnings;
  }
}

static void server_log(h3wt_log_level level, const char *component,
                       const char *msg, void *ud) {
  (void)level;
  (void)ud;
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "server %s: %s\n", component, msg);
  }
}

static void hello(h3wt_request *req, void *d) {
  (void)d;
  h3wt_request_respond(req, 200, NULL, 0, "hello\n", 6);
}
static const h3wt_request_handler hello_handler = {hello, NULL, NULL, NULL,
                                                   NULL};

static int accept_session(h3wt_session *s, void *d) {
  (void)s;
  (void)d;
  return 200;
}
static const h3wt_session_handler wt_server_handler = {
    .on_session_request = accept_session};

static h3wt_server *server_new(const srv_opts *o) {
  h3wt_server_settings ss;
  h3wt_server *s;
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.secret = o->secret;
  ss.secret_len = o->secret_len;
  ss.early_data = o->early_data;
  ss.wt_0rtt = o->wt_0rtt;
  if (o->max_streams_bidi) {
    ss.max_streams_bidi = o->max_streams_bidi;
  }
  ss.log_cb = server_log;
  ss.log_level = H3WT_LOG_DEBUG;
  CHECK_EQ_INT(h3wt_server_new(&s, &loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(s, "GET", "/", &hello_handler, NULL), 0);
  CHECK_EQ_INT(h3wt_server_webtransport(s, "/wt", &wt_server_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(s), 0);
  return s;
}

static void server_closed(h3wt_server *s, void *ud) {
  (void)s;
  *(int *)ud = 1;
}

/* Closes one server while others may still listen on the loop. */
static void server_end(h3wt_server *s) {
  int closed = 0;
  h3wt_server_close(s, server_closed, &closed);
  while (!closed) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  h3wt_server_del(s);
}

/* ---- one client connection ----------------------------------------------- */

typedef struct run {
  /* in */
  const uint8_t *session;
  size_t session_len;
  int wt;            /* also open a WebTransport session on /wt */
  int early_connect; /* and let its CONNECT go in 0-RTT */
  /* out */
  int status;
  char body[32];
  size_t bodylen;
  int get_done, wt_ready, wt_closed;
  unsigned resumption;
  uint8_t saved[H3WT_RESUME_MAX_TLS + 2048];
  size_t savedlen;
  int closed;
  h3wt_client *client;
} run;

static void maybe_finish(run *r) {
  if (r->get_done && (!r->wt || r->wt_ready || r->wt_closed)) {
    h3wt_client_close(r->client);
  }
}

static void got_headers(h3wt_client_request *q, int status,
                        const h3wt_header *h, size_t n, void *ud) {
  (void)q;
  (void)h;
  (void)n;
  ((run *)ud)->status = status;
}
static void got_body(h3wt_client_request *q, const uint8_t *d, size_t n,
                     void *ud) {
  run *r = ud;
  (void)q;
  if (r->bodylen + n < sizeof(r->body)) {
    memcpy(r->body + r->bodylen, d, n);
    r->bodylen += n;
  }
}
static void got_close(h3wt_client_request *q, int err, uint64_t code,
                      void *ud) {
  run *r = ud;
  (void)q;
  (void)code;
  CHECK_EQ_INT(err, 0);
  r->get_done = 1;
  maybe_finish(r);
}
static const h3wt_response_handler get_handler = {got_headers, got_body,
                                                  got_close};

static void wt_ready(h3wt_session *s, void *ud) {
  run *r = ud;
  (void)s;
  r->wt_ready = 1;
  maybe_finish(r);
}
static void wt_close(h3wt_session *s, int err, uint32_t code,
                     const char *reason, size_t reasonlen, void *ud) {
  run *r = ud;
  (void)s;
  (void)err;
  (void)code;
  (void)reason;
  (void)reasonlen;
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "client session closed: %d\n", err);
  }
  r->wt_closed = 1;
  maybe_finish(r);
}

static void on_closed(h3wt_client *cl, int err, void *ud) {
  run *r = ud;
  (void)err;
  r->resumption = h3wt_client_resumption(cl);
  /* After the connection: what h3wt-client --session-file writes. */
  if (h3wt_client_session_save(cl, r->saved, sizeof(r->saved),
                               &r->savedlen) != 0) {
    r->savedlen = 0;
  }
  r->closed = 1;
  uv_stop(&loop);
}

static void guard_cb(uv_timer_t *t) {
  run *r = t->data;
  if (!r->closed) {
    fprintf(stderr, "timed out\n");
    h3wt_client_close(r->client);
  }
}

/* Connects to srv with r's saved session (if any), sends the GET (and
   the CONNECT) before the handshake, runs until the connection closed. */
static void run_client(h3wt_server *srv, run *r) {
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, on_closed};
  uv_timer_t guard;
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.sni = "localhost";
  cs.port = h3wt_server_port(srv);
  cs.insecure = 1;
  cs.session = r->session;
  cs.session_len = r->session_len;
  cs.early_connect = r->early_connect;
  cs.qlog_dir = getenv("H3WT_TEST_QLOG");
  cs.log_cb = client_log;
  cs.log_level = H3WT_LOG_DEBUG;
  warnings = 0;
  CHECK_EQ_INT(h3wt_client_new(&r->client, &loop, &cs, &cbs, r), 0);
  CHECK_EQ_INT(h3wt_client_request_send(r->client, "GET", "/", NULL, 0, NULL,
                                        0, &get_handler, r, NULL),
               0);
  if (r->wt) {
    h3wt_session_handler h = {0};
    h.on_session_ready = wt_ready;
    h.on_session_close = wt_close;
    CHECK_EQ_INT(h3wt_client_webtransport(r->client, "/wt", NULL, NULL, 0,
                                          &h, r, NULL),
                 0);
  }
  uv_timer_init(&loop, &guard);
  guard.data = r;
  uv_timer_start(&guard, guard_cb, 10000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  h3wt_client_del(r->client);
  /* Lets libuv release the client's and the timer's handles (the server
     keeps the loop alive: one non-blocking pass each). */
  for (int i = 0; i < 4; ++i) {
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  CHECK(r->closed);
  CHECK_EQ_INT(r->status, 200);
  CHECK_EQ_INT(r->bodylen, 6);
  CHECK(memcmp(r->body, "hello\n", 6) == 0);
}

static h3wt_server_stats stats(h3wt_server *s) {
  h3wt_server_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_SERVER_STATS_VERSION;
  CHECK_EQ_INT(h3wt_server_get_stats(s, &st), 0);
  return st;
}

/* A first connection to srv: full handshake, returns the saved session. */
static void first_connection(h3wt_server *srv, run *r) {
  memset(r, 0, sizeof(*r));
  run_client(srv, r);
  CHECK_EQ_INT(r->resumption, 0);
  CHECK(r->savedlen > 0);
}

/* ---- the cases ---------------------------------------------------------- */

static const srv_opts plain = {secret1, sizeof(secret1), 1, 0, 0};

TEST(full_then_resumed_with_0rtt_get) {
  h3wt_server *srv = server_new(&plain);
  static run first, second, third;
  h3wt_server_stats st;

  first_connection(srv, &first);
  st = stats(srv);
  CHECK_EQ_INT(st.handshakes_resumed, 0);
  CHECK_EQ_INT(st.requests_0rtt, 0);
  /* What the server's SETTINGS said is remembered with the ticket. */
  h3wt_resume_state rs;
  CHECK_EQ_INT(h3wt_resume_decode(first.saved, first.savedlen, &rs), 0);
  CHECK_EQ_INT(rs.namelen, 9);
  CHECK(memcmp(rs.name, "localhost", 9) == 0);
  CHECK(rs.paramslen > 0);
  CHECK(rs.has_settings);
  CHECK(rs.settings.connect_protocol && rs.settings.h3_datagram &&
        rs.settings.webtransport);

  second.session = first.saved;
  second.session_len = first.savedlen;
  run_client(srv, &second);
  CHECK_EQ_INT(second.resumption, H3WT_RESUMED | H3WT_EARLY_DATA_SENT |
                                      H3WT_EARLY_DATA_ACCEPTED);
  CHECK_EQ_INT(warnings, 0);
  st = stats(srv);
  CHECK_EQ_INT(st.handshakes_resumed, 1);
  CHECK_EQ_INT(st.early_data_accepted, 1);
  CHECK_EQ_INT(st.early_data_rejected, 0);
  /* The GET reached the server before the handshake was over: it was in
     the client's first flight, a round trip earlier than after it. */
  CHECK_EQ_INT(st.requests_0rtt, 1);
  CHECK_EQ_INT(st.requests_too_early, 0);

  /* The resumed connection's own ticket resumes too. */
  CHECK(second.savedlen > 0);
  third.session = second.saved;
  third.session_len = second.savedlen;
  run_client(srv, &third);
  CHECK_EQ_INT(third.resumption, H3WT_RESUMED | H3WT_EARLY_DATA_SENT |
                                     H3WT_EARLY_DATA_ACCEPTED);
  CHECK_EQ_INT(stats(srv).requests_0rtt, 2);
  server_end(srv);
}

/* The draft: "Clients cannot initiate WebTransport sessions in 0-RTT
   packets, as the CONNECT method is not considered safe".  With wt_0rtt
   off the server answers 425 and the client sends it again after the
   handshake; with it on the server takes it.  The server with wt_0rtt on
   has the same secret and limits: it takes the first one's tickets (as a
   restart with the same secret would). */
TEST(webtransport_connect_in_0rtt) {
  srv_opts on = plain;
  on.wt_0rtt = 1;
  h3wt_server *off_srv = server_new(&plain);
  h3wt_server *on_srv = server_new(&on);
  static run first, refused, taken, not_asked;
  h3wt_server_stats st;

  first_connection(off_srv, &first);

  refused.session = first.saved;
  refused.session_len = first.savedlen;
  refused.wt = 1;
  refused.early_connect = 1;
  run_client(off_srv, &refused);
  CHECK(refused.wt_ready);
  CHECK_EQ_INT(refused.resumption, H3WT_RESUMED | H3WT_EARLY_DATA_SENT |
                                       H3WT_EARLY_DATA_ACCEPTED);
  st = stats(off_srv);
  CHECK_EQ_INT(st.requests_0rtt, 2); /* the GET and the CONNECT */
  CHECK_EQ_INT(st.requests_too_early, 1);
  CHECK_EQ_INT(st.sessions_total, 1); /* the CONNECT sent again */

  taken.session = first.saved;
  taken.session_len = first.savedlen;
  taken.wt = 1;
  taken.early_connect = 1;
  run_client(on_srv, &taken);
  CHECK(taken.wt_ready);
  CHECK_EQ_INT(taken.resumption, H3WT_RESUMED | H3WT_EARLY_DATA_SENT |
                                     H3WT_EARLY_DATA_ACCEPTED);
  st = stats(on_srv);
  CHECK_EQ_INT(st.handshakes_resumed, 1);
  CHECK_EQ_INT(st.requests_0rtt, 2);
  CHECK_EQ_INT(st.requests_too_early, 0);
  CHECK_EQ_INT(st.sessions_total, 1);

  /* By default the client follows the draft: the CONNECT waits for the
     handshake, only the GET goes early. */
  not_asked.session = first.saved;
  not_asked.session_len = first.savedlen;
  not_asked.wt = 1;
  run_client(on_srv, &not_asked);
  CHECK(not_asked.wt_ready);
  st = stats(on_srv);
  CHECK_EQ_INT(st.requests_0rtt, 3);
  CHECK_EQ_INT(st.sessions_total, 2);

  server_end(off_srv);
  server_end(on_srv);
}

/* A saved session that is damaged, cut, padded, empty or garbage: a
   warning and a full handshake, never a crash. */
TEST(bad_saved_session_falls_back) {
  h3wt_server *srv = server_new(&plain);
  static run first, bad;
  static uint8_t buf[sizeof(first.saved) + 16];
  first_connection(srv, &first);
  size_t n = first.savedlen;
  struct {
    const char *what;
    size_t len;
    size_t flip; /* byte to flip, or SIZE_MAX */
  } cases[] = {
      {"one byte flipped in the TLS session", n, n / 2},
      {"one byte flipped in the digest", n, n - 1},
      {"the format version changed", n, 12},
      {"cut in half", n / 2, SIZE_MAX},
      {"cut by one byte", n - 1, SIZE_MAX},
      {"one byte too many", n + 1, SIZE_MAX},
      {"just the magic", 12, SIZE_MAX},
      {"one byte", 1, SIZE_MAX},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    TEST_CONTEXT("%s", cases[i].what);
    memset(buf, 0, sizeof(buf));
    memcpy(buf, first.saved, n);
    if (cases[i].flip != SIZE_MAX) {
      buf[cases[i].flip] ^= 0x40;
    }
    memset(&bad, 0, sizeof(bad));
    bad.session = buf;
    bad.session_len = cases[i].len;
    run_client(srv, &bad);
    CHECK_EQ_INT(bad.resumption, 0);
    CHECK(warnings >= 1);
  }
  /* Garbage of every length up to a few hundred bytes never resumes. */
  TEST_CONTEXT("%s", "garbage");
  for (size_t len = 0; len < 400; len += 37) {
    h3wt_resume_state rs;
    for (size_t k = 0; k < len; ++k) {
      buf[k] = (uint8_t)(k * 131 + len);
    }
    CHECK_EQ_INT(h3wt_resume_decode(buf, len, &rs), -1);
  }
  /* A session for another server name is not offered. */
  TEST_CONTEXT("%s", "another name");
  h3wt_resume_state rs;
  CHECK_EQ_INT(h3wt_resume_decode(first.saved, n, &rs), 0);
  rs.name = "elsewhere";
  rs.namelen = 9;
  size_t m = h3wt_resume_encode(&rs, buf, sizeof(buf));
  CHECK(m > 0);
  memset(&bad, 0, sizeof(bad));
  bad.session = buf;
  bad.session_len = m;
  run_client(srv, &bad);
  CHECK_EQ_INT(bad.resumption, 0);
  CHECK(warnings >= 1);
  CHECK_EQ_INT(stats(srv).handshakes_resumed, 0);
  CHECK_EQ_INT(stats(srv).requests_0rtt, 0);
  server_end(srv);
}

/* Tickets of a server with another secret (another ticket key), of one
   whose limits shrank, and 0-RTT to a server that turned it off. */
TEST(other_server_or_changed_limits) {
  srv_opts other = {secret2, sizeof(secret2), 1, 0, 0};
  srv_opts smaller = plain;
  srv_opts no_early = plain;
  smaller.max_streams_bidi = 50;
  no_early.early_data = 0;
  h3wt_server *srv = server_new(&plain);
  static run first, r;
  h3wt_server_stats st;
  first_connection(srv, &first);

  /* Another key: the ticket is not ours, the handshake is a full one and
     the 0-RTT GET, rejected with it, goes again after the handshake. */
  h3wt_server *o = server_new(&other);
  memset(&r, 0, sizeof(r));
  r.session = first.saved;
  r.session_len = first.savedlen;
  run_client(o, &r);
  CHECK_EQ_INT(r.resumption, H3WT_EARLY_DATA_SENT);
  st = stats(o);
  CHECK_EQ_INT(st.handshakes_resumed, 0);
  CHECK_EQ_INT(st.early_data_accepted, 0);
  CHECK_EQ_INT(st.early_data_rejected, 1);
  CHECK_EQ_INT(st.requests_0rtt, 0);
  CHECK_EQ_INT(st.requests_total, 1);
  server_end(o);

  /* Smaller limits: old tickets no longer open (RFC 9000 7.4.1: 0-RTT
     must not run on limits the server no longer grants). */
  o = server_new(&smaller);
  memset(&r, 0, sizeof(r));
  r.session = first.saved;
  r.session_len = first.savedlen;
  run_client(o, &r);
  CHECK_EQ_INT(r.resumption, H3WT_EARLY_DATA_SENT);
  CHECK_EQ_INT(stats(o).handshakes_resumed, 0);
  CHECK_EQ_INT(stats(o).requests_0rtt, 0);
  server_end(o);

  /* 0-RTT off, same key: resumed, early data rejected, the GET sent again
     in 1-RTT and answered. */
  o = server_new(&no_early);
  memset(&r, 0, sizeof(r));
  r.session = first.saved;
  r.session_len = first.savedlen;
  run_client(o, &r);
  CHECK_EQ_INT(r.resumption, H3WT_RESUMED | H3WT_EARLY_DATA_SENT);
  st = stats(o);
  CHECK_EQ_INT(st.handshakes_resumed, 1);
  CHECK_EQ_INT(st.early_data_accepted, 0);
  CHECK_EQ_INT(st.requests_0rtt, 0);
  CHECK_EQ_INT(st.requests_total, 1);
  /* Its own tickets resume too; 0-RTT stays refused.  (wolfSSL 5.7.2's
     client keeps the early-data allowance of the ticket it resumed with
     when a new ticket says none, so it may try again: rejected again.) */
  static run again;
  again.session = r.saved;
  again.session_len = r.savedlen;
  run_client(o, &again);
  CHECK(again.resumption & H3WT_RESUMED);
  CHECK(!(again.resumption & H3WT_EARLY_DATA_ACCEPTED));
  CHECK_EQ_INT(stats(o).requests_0rtt, 0);
  server_end(o);
  server_end(srv);
}

int main(int argc, char **argv) {
  static const h3wt_test_case cases[] = {
      TEST_ENTRY(full_then_resumed_with_0rtt_get),
      TEST_ENTRY(webtransport_connect_in_0rtt),
      TEST_ENTRY(bad_saved_session_falls_back),
      TEST_ENTRY(other_server_or_changed_limits),
  };
  char dir[] = "/tmp/h3wt-resume-XXXXXX";
  if (loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)) != 0 ||
      uv_loop_init(&loop) != 0) {
    return 1;
  }
  int rv = TEST_MAIN(argc, argv, cases);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "uv_loop_close: handles left open\n");
    rv = 1;
  }
  loop_devcert_remove(dir, cert, key);
  return rv;
}
