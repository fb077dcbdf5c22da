/*
 * h3wt_client_webtransport() with request headers: they reach the server's
 * session on the CONNECT (h3wt_session_header()), copied at the call so the
 * caller's buffers may go at once; pseudo-headers and a count without an
 * array are refused.  A real server and client on one loop, UDP on
 * 127.0.0.1, real TLS; ends with uv_loop_close() == 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"

static uv_loop_t loop;
static h3wt_server *server;
static h3wt_client *client;
static uv_timer_t guard;
static int requests, client_closes, timed_out;
static char seen_token[64], seen_two[64];
static int seen_path_ok;

static int sv_request(h3wt_session *s, void *rd) {
  const char *tok = h3wt_session_header(s, "x-token");
  const char *two = h3wt_session_header(s, "x-two");
  ++requests;
  snprintf(seen_token, sizeof(seen_token), "%s", tok ? tok : "(none)");
  snprintf(seen_two, sizeof(seen_two), "%s", two ? two : "(none)");
  seen_path_ok = strcmp(h3wt_session_path(s), "/wt") == 0;
  return 200;
}

static const h3wt_session_handler server_handler = {
    .on_session_request = sv_request,
};

static void cl_ready(h3wt_session *s, void *rd) {
  h3wt_session_close(s, 0, "done");
}

static void cl_session_close(h3wt_session *s, int err, uint32_t code,
                             const char *reason, size_t rl, void *rd) {
  ++client_closes;
  h3wt_client_close(client);
}

static const h3wt_session_handler client_handler = {
    .on_session_ready = cl_ready,
    .on_session_close = cl_session_close,
};

static void on_closed(h3wt_client *cl, int err, void *ud) {
  uv_close((uv_handle_t *)&guard, NULL);
  h3wt_server_close(server, NULL, NULL);
}

static void guard_cb(uv_timer_t *t) {
  timed_out = 1;
  h3wt_client_close(client);
}

TEST(headers_reach_the_server) {
  char dir[] = "/tmp/h3wt-hdrs-XXXXXX", cert[256], key[256];
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, on_closed};
  h3wt_session *s = NULL;

  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  CHECK_EQ_INT(h3wt_server_new(&server, &loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_webtransport(server, "/wt", &server_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(server), 0);
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(server);
  cs.insecure = 1;
  CHECK_EQ_INT(h3wt_client_new(&client, &loop, &cs, &cbs, NULL), 0);

  /* Refused before anything is queued. */
  h3wt_header pseudo[] = {{":path", 5, "/other", 6}};
  CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt", NULL, pseudo, 1,
                                        &client_handler, NULL, &s),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt", NULL, NULL, 2,
                                        &client_handler, NULL, &s),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK(s == NULL);

  /* The values live in a buffer that is overwritten right after the call:
     the library must have copied them (the session waits for the
     handshake). */
  char token[16] = "abc", two[16] = "2";
  h3wt_header hdrs[] = {{"x-token", 7, token, strlen(token)},
                        {"x-two", 5, two, strlen(two)}};
  CHECK_EQ_INT(h3wt_client_webtransport(client, "/wt", "https://o.test",
                                        hdrs, 2, &client_handler, NULL, &s),
               0);
  memset(token, 'X', sizeof(token) - 1);
  memset(two, 'Y', sizeof(two) - 1);

  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, guard_cb, 10000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);

  CHECK(!timed_out);
  CHECK_EQ_INT(requests, 1);
  CHECK(seen_path_ok);
  CHECK_EQ_STR(seen_token, "abc");
  CHECK_EQ_STR(seen_two, "2");
  CHECK_EQ_INT(client_closes, 1);
  h3wt_client_del(client);
  h3wt_server_del(server);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(headers_reach_the_server),
  };
  return TEST_MAIN(argc, argv, tests);
}
