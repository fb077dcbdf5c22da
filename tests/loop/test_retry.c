/*
 * Address validation under a handshake flood: a real server whose
 * max_handshakes_per_addr is 2, and eight clients from 127.0.0.1 opening
 * connections at once.  Two get in directly; the others get a Retry, come
 * back with the token and are served too: every client gets its 200, and
 * the server's log counts the Retry packets it sent.  A second round with
 * the limit off sends none.  Ends with uv_loop_close() == 0.
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

#define NCLIENTS 8

typedef struct ctx {
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_client *clients[NCLIENTS];
  int status[NCLIENTS];
  int closed;
  int retries; /* "Retry sent" lines in the server's log */
  uv_timer_t guard;
  int timed_out;
} ctx;

static ctx T;

static void count_retries(h3wt_log_level level, const char *component,
                          const char *msg, void *ud) {
  (void)ud;
  (void)level;
  (void)component;
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "%s: %s\n", component, msg);
  }
  if (strncmp(msg, "Retry sent", 10) == 0) {
    ++T.retries;
  }
}

static void hello(h3wt_request *req, void *d) {
  (void)d;
  h3wt_request_respond(req, 200, NULL, 0, "hi\n", 3);
}
static const h3wt_request_handler hello_handler = {hello, NULL, NULL, NULL,
                                                   NULL};

static void got_headers(h3wt_client_request *r, int status,
                        const h3wt_header *h, size_t n, void *ud) {
  (void)r;
  (void)h;
  (void)n;
  *(int *)ud = status;
}
static void got_close(h3wt_client_request *r, int err, uint64_t code,
                      void *ud) {
  (void)r;
  (void)err;
  (void)code;
  int i = (int)((int *)ud - T.status);
  h3wt_client_close(T.clients[i]);
}
static const h3wt_response_handler get_handler = {got_headers, NULL,
                                                  got_close};

static void on_connected(h3wt_client *cl, void *ud) {
  int i = (int)(intptr_t)ud;
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/", NULL, 0, NULL, 0,
                                        &get_handler, &T.status[i], NULL),
               0);
}

static void server_closed(h3wt_server *s, void *ud) {
  (void)s;
  (void)ud;
  uv_close((uv_handle_t *)&T.guard, NULL);
}

static void on_client_closed(h3wt_client *cl, int err, void *ud) {
  (void)cl;
  (void)err;
  (void)ud;
  if (++T.closed == NCLIENTS) {
    h3wt_server_close(T.server, server_closed, NULL);
  }
}

static void guard_cb(uv_timer_t *t) {
  (void)t;
  T.timed_out = 1;
  for (int i = 0; i < NCLIENTS; ++i) {
    h3wt_client_close(T.clients[i]);
  }
}

/* One round: NCLIENTS connections at once against a fresh server. */
static void run_round(const char *cert, const char *key, uint32_t limit) {
  h3wt_server_settings ss;
  memset(&T, 0, sizeof(T));
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.max_handshakes_per_addr = limit;
  ss.log_cb = count_retries;
  ss.log_level = H3WT_LOG_DEBUG;
  CHECK_EQ_INT(h3wt_server_new(&T.server, &T.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(T.server, "GET", "/", &hello_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(T.server), 0);
  for (int i = 0; i < NCLIENTS; ++i) {
    h3wt_client_settings cs;
    h3wt_client_callbacks cbs = {on_connected, on_client_closed};
    h3wt_client_settings_default(&cs);
    cs.host = "127.0.0.1";
    cs.port = h3wt_server_port(T.server);
    cs.insecure = 1;
    CHECK_EQ_INT(h3wt_client_new(&T.clients[i], &T.loop, &cs, &cbs,
                                 (void *)(intptr_t)i),
                 0);
  }
  uv_timer_init(&T.loop, &T.guard);
  uv_timer_start(&T.guard, guard_cb, 20000, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  CHECK(!T.timed_out);
  for (int i = 0; i < NCLIENTS; ++i) {
    TEST_CONTEXT("client %d of %d, limit %u", i, NCLIENTS, limit);
    CHECK_EQ_INT(T.status[i], 200);
    h3wt_client_del(T.clients[i]);
  }
  TEST_CONTEXT("%s", "");
  h3wt_server_del(T.server);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
}

TEST(retry_over_the_handshake_rate) {
  char dir[] = "/tmp/h3wt-retry-XXXXXX", cert[256], key[256];
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);

  /* Within one second, only two handshakes from 127.0.0.1 go straight in
     (a slow machine may spill into a second window: at least half of the
     rest must have been retried). */
  run_round(cert, key, 2);
  TEST_CONTEXT("retries with a limit of 2: %d", T.retries);
  CHECK(T.retries >= (NCLIENTS - 2) / 2);
  CHECK(T.retries <= NCLIENTS - 2);

  run_round(cert, key, 0);
  TEST_CONTEXT("retries with no limit: %d", T.retries);
  CHECK_EQ_INT(T.retries, 0);

  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(retry_over_the_handshake_rate),
  };
  return TEST_MAIN(argc, argv, tests);
}
