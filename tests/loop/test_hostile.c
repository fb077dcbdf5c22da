/*
 * Hostile requests against a real h3wt server, in one process: server and
 * client on one libuv loop, real UDP on 127.0.0.1, real TLS.  Every
 * malformed request must end in a 4xx or a stream reset, never a crash or a
 * lost connection: the same connection then serves a normal GET.
 *
 * Two things nghttp3 decides, and the test pins down:
 *  - invalid fields (upper-case names, CR/LF in values) are dropped before
 *    the application sees them (the handler answers 500 if one gets
 *    through);
 *  - DATA beyond the announced content-length is a *connection* error in
 *    nghttp3 (1.8 and upstream), so it runs on a second connection, which
 *    must die alone: a third connection is then served.
 * At the end the loop closes with nothing left open (uv_loop_close() == 0,
 * the libuv rule for leaks).
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

#define H(N, V) {N, sizeof(N) - 1, V, sizeof(V) - 1}

enum expect { EXPECT_4XX_OR_RESET, EXPECT_200, EXPECT_DROPPED, EXPECT_501 };

typedef struct hcase {
  const char *name;
  h3wt_header hdrs[8];
  size_t n;
  const char *body;
  enum expect expect;
  /* observed */
  int status;
  int err;
  int closed;
} hcase;

static char big_value[9000];
static char body_2000[2001];
static h3wt_header many[120];
static char many_names[120][16];

static hcase cases[] = {
    {"missing :path",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x")},
     3, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"missing :method",
     {H(":path", "/"), H(":scheme", "https"), H(":authority", "x")},
     3, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"duplicate :path",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/"), H(":path", "/echo")},
     5, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"unknown pseudo-header",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/"), H(":evil", "1")},
     5, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"pseudo-header after a field",
     {H(":method", "GET"), H(":scheme", "https"), H("accept", "*/*"),
      H(":authority", "x"), H(":path", "/")},
     5, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"upper-case field name",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/"), H("X-Upper", "1")},
     5, NULL, EXPECT_DROPPED, 0, 0, 0},
    {"CR LF in a field value",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/"), H("x-inject", "a\r\nb: c")},
     5, NULL, EXPECT_DROPPED, 0, 0, 0},
    {"non-numeric content-length",
     {H(":method", "POST"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/sink"), H("content-length", "abc")},
     5, "hello", EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"content-length over the body limit",
     {H(":method", "POST"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/sink"), H("content-length", "2000")},
     5, NULL /* 2000 bytes, set in the test */, EXPECT_4XX_OR_RESET, 0, 0,
     0},
    {"relative :path",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "relative")},
     4, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"asterisk :path on GET",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "*")},
     4, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"plain CONNECT",
     {H(":method", "CONNECT"), H(":authority", "x:443")},
     2, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"extended CONNECT for an unknown protocol",
     {H(":method", "CONNECT"), H(":protocol", "websocket"),
      H(":scheme", "https"), H(":authority", "x"), H(":path", "/")},
     5, NULL, EXPECT_501, 0, 0, 0},
    /* RFC 9220 3, WebTransport over HTTP/3 3.2: an extended CONNECT
       carries :scheme https, :authority and :path, to a route that exists
       (/wt here, which would accept the session). */
    {"WebTransport CONNECT with :scheme http",
     {H(":method", "CONNECT"), H(":protocol", "webtransport"),
      H(":scheme", "http"), H(":authority", "x"), H(":path", "/wt")},
     5, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"WebTransport CONNECT without :scheme",
     {H(":method", "CONNECT"), H(":protocol", "webtransport"),
      H(":authority", "x"), H(":path", "/wt")},
     4, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"WebTransport CONNECT without :authority",
     {H(":method", "CONNECT"), H(":protocol", "webtransport"),
      H(":scheme", "https"), H(":path", "/wt")},
     4, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"WebTransport CONNECT with an empty :authority",
     {H(":method", "CONNECT"), H(":protocol", "webtransport"),
      H(":scheme", "https"), H(":authority", ""), H(":path", "/wt")},
     5, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"WebTransport CONNECT without :path",
     {H(":method", "CONNECT"), H(":protocol", "webtransport"),
      H(":scheme", "https"), H(":authority", "x")},
     4, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"oversized field value", {{0}}, 0, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"too many fields", {{0}}, 0, NULL, EXPECT_4XX_OR_RESET, 0, 0, 0},
    {"body on a GET (allowed)",
     {H(":method", "GET"), H(":scheme", "https"), H(":authority", "x"),
      H(":path", "/")},
     4, "ignored", EXPECT_200, 0, 0, 0},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Runs on its own connection: it kills that connection (see above). */
static hcase cl_mismatch = {
    "content-length shorter than the body",
    {H(":method", "POST"), H(":scheme", "https"), H(":authority", "x"),
     H(":path", "/sink"), H("content-length", "3")},
    5, "0123456789", EXPECT_4XX_OR_RESET, 0, 0, 0};

typedef struct ctx {
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_client *client, *client2, *client3;
  size_t closed_cases;
  int final_status, final_done, third_status;
  int client_closed_err, client2_closed_err, client_closed_count;
  uv_timer_t guard;
  int timed_out;
} ctx;

static ctx T;

/* ---- server routes ------------------------------------------------------ */

/* Would accept any session: the malformed CONNECTs must not get here. */
static int wt_accept(h3wt_session *s, void *d) {
  (void)s;
  (void)d;
  return 200;
}

static const h3wt_session_handler wt_handler = {.on_session_request =
                                                    wt_accept};

static void hello(h3wt_request *req, void *d) {
  const h3wt_header *h;
  size_t n = h3wt_request_headers(req, &h);
  /* An invalid field that reached the application is a failure. */
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < h[i].namelen; ++k) {
      if (h[i].name[k] >= 'A' && h[i].name[k] <= 'Z') {
        h3wt_request_respond(req, 500, NULL, 0, "upper\n", 6);
        return;
      }
    }
    if (memchr(h[i].value, '\r', h[i].valuelen) ||
        memchr(h[i].value, '\n', h[i].valuelen)) {
      h3wt_request_respond(req, 500, NULL, 0, "crlf\n", 5);
      return;
    }
  }
  h3wt_request_respond(req, 200, NULL, 0, "hi\n", 3);
}
static const h3wt_request_handler hello_handler = {hello, NULL, NULL, NULL,
                                                   NULL};

static void sink_end(h3wt_request *req, void *d) {
  h3wt_request_respond(req, 200, NULL, 0, "ok\n", 3);
}
static void sink_req(h3wt_request *req, void *d) {
}
static const h3wt_request_handler sink_handler = {sink_req, NULL, sink_end,
                                                  NULL, NULL};

/* ---- client side ----------------------------------------------------------- */

static void finish_all(void);

static void case_headers(h3wt_client_request *r, int status,
                         const h3wt_header *h, size_t n, void *ud) {
  ((hcase *)ud)->status = status;
}
static void case_close(h3wt_client_request *r, int err, uint64_t code,
                       void *ud);
static const h3wt_response_handler case_handler = {case_headers, NULL,
                                                   case_close};

static void final_headers(h3wt_client_request *r, int status,
                          const h3wt_header *h, size_t n, void *ud) {
  *(int *)ud = status;
}
static void final_close(h3wt_client_request *r, int err, uint64_t code,
                        void *ud) {
  if (ud == &T.final_status) {
    T.final_done = 1;
    h3wt_client_close(T.client);
  } else {
    h3wt_client_close(T.client3);
  }
}
static const h3wt_response_handler final_handler = {final_headers, NULL,
                                                    final_close};

static void case_close(h3wt_client_request *r, int err, uint64_t code,
                       void *ud) {
  hcase *c = ud;
  c->err = err;
  c->closed = 1;
  if (++T.closed_cases == NCASES) {
    /* Every hostile request is over: the same connection must serve. */
    CHECK_EQ_INT(h3wt_client_request_send(T.client, "GET", "/", NULL, 0,
                                          NULL, 0, &final_handler,
                                          &T.final_status, NULL),
                 0);
  }
}

static void on_connected(h3wt_client *cl, void *ud) {
  for (size_t i = 0; i < NCASES; ++i) {
    if (cases[i].n == 0) {
      continue; /* sent before the handshake (see the test) */
    }
    TEST_CONTEXT("case '%s'", cases[i].name);
    CHECK_EQ_INT(h3wt_client_request_send_raw(
                     cl, cases[i].hdrs, cases[i].n, cases[i].body,
                     cases[i].body ? strlen(cases[i].body) : 0,
                     &case_handler, &cases[i]),
                 0);
  }
}

static void on_connected2(h3wt_client *cl, void *ud) {
  hcase *c = &cl_mismatch;
  CHECK_EQ_INT(h3wt_client_request_send_raw(cl, c->hdrs, c->n, c->body,
                                            strlen(c->body), &case_handler,
                                            c),
               0);
}

static void on_connected3(h3wt_client *cl, void *ud) {
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/", NULL, 0, NULL, 0,
                                        &final_handler, &T.third_status,
                                        NULL),
               0);
}

static void server_closed(h3wt_server *s, void *ud) {
  uv_close((uv_handle_t *)&T.guard, NULL);
}

static void finish_all(void) {
  h3wt_server_close(T.server, server_closed, NULL);
}

static h3wt_client *connect_client(h3wt_client_callbacks cbs) {
  h3wt_client_settings s;
  h3wt_client *cl = NULL;
  h3wt_client_settings_default(&s);
  s.host = "127.0.0.1";
  s.port = h3wt_server_port(T.server);
  s.insecure = 1;
  if (h3wt_client_new(&cl, &T.loop, &s, &cbs, NULL) != 0) {
    CHECK(!"client_new");
    finish_all();
  }
  return cl;
}

static void on_client3_closed(h3wt_client *cl, int err, void *ud) {
  ++T.client_closed_count;
  finish_all();
}

static void on_client2_closed(h3wt_client *cl, int err, void *ud) {
  h3wt_client_callbacks cbs = {on_connected3, on_client3_closed};
  T.client2_closed_err = err;
  ++T.client_closed_count;
  T.client3 = connect_client(cbs);
}

static void on_client_closed(h3wt_client *cl, int err, void *ud) {
  h3wt_client_callbacks cbs = {on_connected2, on_client2_closed};
  T.client_closed_err = err;
  ++T.client_closed_count;
  T.client2 = connect_client(cbs);
}

static void guard_cb(uv_timer_t *t) {
  T.timed_out = 1;
  if (!T.final_done) {
    h3wt_client_close(T.client);
  } else if (T.client3) {
    h3wt_client_close(T.client3);
  } else if (T.client2) {
    h3wt_client_close(T.client2);
  }
  finish_all();
}

TEST(hostile_requests_keep_the_connection) {
  char dir[] = "/tmp/h3wt-hostile-XXXXXX", cert[256], key[256];
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {on_connected, on_client_closed};

  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);

  /* The generated cases. */
  memset(body_2000, 'b', 2000);
  for (size_t i = 0; i < NCASES; ++i) {
    if (strcmp(cases[i].name, "content-length over the body limit") == 0) {
      cases[i].body = body_2000;
    }
  }
  memset(big_value, 'v', sizeof(big_value) - 1);
  hcase *big = &cases[NCASES - 3], *lots = &cases[NCASES - 2];
  h3wt_header base[] = {H(":method", "GET"), H(":scheme", "https"),
                        H(":authority", "x"), H(":path", "/")};
  memcpy(big->hdrs, base, sizeof(base));
  big->hdrs[4] = (h3wt_header){"x-big", 5, big_value, sizeof(big_value) - 1};
  big->n = 5;
  memcpy(many, base, sizeof(base));
  for (int i = 4; i < 120; ++i) {
    snprintf(many_names[i], sizeof(many_names[i]), "x-field-%d", i);
    many[i] = (h3wt_header){many_names[i], strlen(many_names[i]),
                            "a-value-of-some-length-to-add-up", 32};
  }

  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.max_header_bytes = 4096;
  ss.max_request_body = 1000;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&T.server, &T.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(T.server, "GET", "/", &hello_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_route(T.server, "POST", "/sink", &sink_handler,
                                 NULL),
               0);
  CHECK_EQ_INT(h3wt_server_webtransport(T.server, "/wt", &wt_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(T.server), 0);

  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(T.server);
  cs.insecure = 1;
  CHECK_EQ_INT(h3wt_client_new(&T.client, &T.loop, &cs, &cbs, NULL), 0);
  /* "too many fields" is sent from here: its list is longer than 8. */
  CHECK_EQ_INT(h3wt_client_request_send_raw(T.client, many, 120, NULL, 0,
                                            &case_handler, lots),
               0);
  /* Queued before the handshake; on_connected skips it (n == 0). */

  uv_timer_init(&T.loop, &T.guard);
  uv_timer_start(&T.guard, guard_cb, 20000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  CHECK(!T.timed_out);
  for (size_t i = 0; i < NCASES; ++i) {
    hcase *c = &cases[i];
    TEST_CONTEXT("case '%s': status %d err %d", c->name, c->status, c->err);
    CHECK(c->closed);
    if (c->expect == EXPECT_200 || c->expect == EXPECT_DROPPED) {
      CHECK_EQ_INT(c->status, 200);
    } else if (c->expect == EXPECT_501) {
      CHECK_EQ_INT(c->status, 501); /* only WebTransport is implemented */
    } else {
      CHECK(c->err != 0 || (c->status >= 400 && c->status < 500));
    }
    fprintf(stderr, "  %-42s -> %s %d\n", c->name,
            c->status ? "status" : "reset", c->status ? c->status : c->err);
  }
  TEST_CONTEXT("after the hostile requests");
  CHECK_EQ_INT(T.final_status, 200);
  CHECK_EQ_INT(T.client_closed_err, 0);
  TEST_CONTEXT("content-length mismatch: status %d err %d, conn err %d",
               cl_mismatch.status, cl_mismatch.err, T.client2_closed_err);
  CHECK(cl_mismatch.closed);
  CHECK(cl_mismatch.status == 0 || cl_mismatch.status >= 400);
  CHECK(cl_mismatch.err != 0 || cl_mismatch.status >= 400);
  TEST_CONTEXT("third connection");
  CHECK_EQ_INT(T.third_status, 200);
  CHECK_EQ_INT(T.client_closed_count, 3);
  h3wt_client_del(T.client);
  h3wt_client_del(T.client2);
  h3wt_client_del(T.client3);
  h3wt_server_del(T.server);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(hostile_requests_keep_the_connection),
  };
  return TEST_MAIN(argc, argv, tests);
}
