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

/* ---- a flood from spoofed addresses ------------------------------------- */
/* NSPOOF clients send their Initials through a relay that re-sends each
   client's packets from its own loopback address (127.0.0.2, .3, ...) and
   never passes an answer back: to the server, NSPOOF handshakes from as
   many addresses that never complete, each far under the per-address
   rate, as a spoofed flood looks.  They would take every connection slot
   (max_connections 64); with max_unvalidated_handshakes 16 the server
   answers everyone with a Retry past 16 of them, and a real client from
   127.0.0.1 still gets its 200.  Without the global trigger it cannot
   connect (the control). */

#define NSPOOF 120

static struct {
  uv_loop_t loop;
  h3wt_server *server;
  uv_udp_t relay;
  struct sockaddr_in server_addr;
  struct {
    struct sockaddr_in from; /* the client's real address */
    uv_udp_t out;            /* bound to 127.0.0.(2 + i) */
  } map[NSPOOF];
  int nmap;
  h3wt_client *spoof[NSPOOF];
  h3wt_client *real;
  int real_status, real_closed, real_err;
  uint64_t forwarded, answers_dropped;
  uv_timer_t tick, guard;
  int ticks, timed_out, done;
} SF;

static void sf_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[65536];
  b->base = buf;
  b->len = sizeof(buf);
}

static void sf_drop(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                    const struct sockaddr *a, unsigned flags) {
  if (n > 0) {
    ++SF.answers_dropped; /* a spoofed address never answers */
  }
}

static void sf_relay(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                     const struct sockaddr *a, unsigned flags) {
  if (n <= 0 || !a || a->sa_family != AF_INET) {
    return;
  }
  const struct sockaddr_in *from = (const struct sockaddr_in *)a;
  int i;
  for (i = 0; i < SF.nmap; ++i) {
    if (SF.map[i].from.sin_port == from->sin_port &&
        SF.map[i].from.sin_addr.s_addr == from->sin_addr.s_addr) {
      break;
    }
  }
  if (i == SF.nmap) {
    if (SF.nmap == NSPOOF) {
      return;
    }
    char ip[32];
    struct sockaddr_in bind_addr;
    snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + i);
    CHECK_EQ_INT(uv_ip4_addr(ip, 0, &bind_addr), 0);
    SF.map[i].from = *from;
    uv_udp_init(&SF.loop, &SF.map[i].out);
    CHECK_EQ_INT(uv_udp_bind(&SF.map[i].out,
                             (const struct sockaddr *)&bind_addr, 0),
                 0);
    uv_udp_recv_start(&SF.map[i].out, sf_alloc, sf_drop);
    ++SF.nmap;
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  if (uv_udp_try_send(&SF.map[i].out, &out, 1,
                      (const struct sockaddr *)&SF.server_addr) > 0) {
    ++SF.forwarded;
  }
}

static void sf_real_headers(h3wt_client_request *r, int status,
                            const h3wt_header *h, size_t n, void *ud) {
  SF.real_status = status;
}
static void sf_real_close(h3wt_client_request *r, int err, uint64_t code,
                          void *ud) {
  SF.done = 1;
}
static const h3wt_response_handler sf_get = {sf_real_headers, NULL,
                                             sf_real_close};
static void sf_real_connected(h3wt_client *cl, void *ud) {
  CHECK_EQ_INT(h3wt_client_request_send(cl, "GET", "/", NULL, 0, NULL, 0,
                                        &sf_get, NULL, NULL),
               0);
}
static void sf_real_closed(h3wt_client *cl, int err, void *ud) {
  SF.real_closed = 1;
  SF.real_err = err;
  SF.done = 1;
}
static void sf_noop(h3wt_client *cl, void *ud) {
}
static void sf_spoof_closed(h3wt_client *cl, int err, void *ud) {
}

static h3wt_client *sf_client(uint16_t port, h3wt_client_callbacks cbs,
                              uint64_t handshake_ms) {
  h3wt_client_settings cs;
  h3wt_client *cl = NULL;
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = port;
  cs.insecure = 1;
  cs.handshake_timeout_ms = handshake_ms;
  CHECK_EQ_INT(h3wt_client_new(&cl, &SF.loop, &cs, &cbs, NULL), 0);
  return cl;
}

static void sf_close_all(void) {
  uv_timer_stop(&SF.tick);
  uv_timer_stop(&SF.guard);
  for (int i = 0; i < NSPOOF; ++i) {
    h3wt_client_close(SF.spoof[i]);
  }
  if (SF.real) {
    h3wt_client_close(SF.real);
  }
  uv_close((uv_handle_t *)&SF.relay, NULL);
  for (int i = 0; i < SF.nmap; ++i) {
    uv_close((uv_handle_t *)&SF.map[i].out, NULL);
  }
  uv_close((uv_handle_t *)&SF.tick, NULL);
  uv_close((uv_handle_t *)&SF.guard, NULL);
  h3wt_server_close(SF.server, NULL, NULL);
}

static void sf_tick(uv_timer_t *t) {
  /* Once every spoofer's first Initial went through (and a moment for the
     server to take them), the real client. */
  if (!SF.real && SF.nmap == NSPOOF && ++SF.ticks > 10) {
    h3wt_client_callbacks cbs = {sf_real_connected, sf_real_closed};
    SF.real = sf_client(h3wt_server_port(SF.server), cbs, 3000);
  }
  if (SF.done) {
    sf_close_all();
  }
}

static void sf_guard(uv_timer_t *t) {
  SF.timed_out = 1;
  sf_close_all();
}

static void spoofed_round(const char *cert, const char *key,
                          uint32_t max_unvalidated,
                          h3wt_server_stats *st) {
  h3wt_server_settings ss;
  struct sockaddr_in relay_addr;
  int len = sizeof(relay_addr);
  memset(&SF, 0, sizeof(SF));
  CHECK_EQ_INT(uv_loop_init(&SF.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert;
  ss.key_file = key;
  ss.max_connections = 64;
  ss.max_unvalidated_handshakes = max_unvalidated;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&SF.server, &SF.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(SF.server, "GET", "/", &hello_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(SF.server), 0);
  uv_ip4_addr("127.0.0.1", h3wt_server_port(SF.server), &SF.server_addr);
  uv_ip4_addr("127.0.0.1", 0, &relay_addr);
  uv_udp_init(&SF.loop, &SF.relay);
  CHECK_EQ_INT(uv_udp_bind(&SF.relay, (const struct sockaddr *)&relay_addr, 0),
               0);
  CHECK_EQ_INT(uv_udp_getsockname(&SF.relay, (struct sockaddr *)&relay_addr,
                                  &len),
               0);
  uv_udp_recv_start(&SF.relay, sf_alloc, sf_relay);
  for (int i = 0; i < NSPOOF; ++i) {
    h3wt_client_callbacks cbs = {sf_noop, sf_spoof_closed};
    SF.spoof[i] = sf_client(ntohs(relay_addr.sin_port), cbs, 30000);
  }
  uv_timer_init(&SF.loop, &SF.tick);
  uv_timer_start(&SF.tick, sf_tick, 20, 20);
  uv_timer_init(&SF.loop, &SF.guard);
  uv_timer_start(&SF.guard, sf_guard, 20000, 0);
  uv_run(&SF.loop, UV_RUN_DEFAULT);
  memset(st, 0, sizeof(*st));
  st->version = H3WT_SERVER_STATS_VERSION;
  CHECK_EQ_INT(h3wt_server_get_stats(SF.server, st), 0);
  for (int i = 0; i < NSPOOF; ++i) {
    h3wt_client_del(SF.spoof[i]);
  }
  h3wt_client_del(SF.real);
  h3wt_server_del(SF.server);
  CHECK_EQ_INT(uv_loop_close(&SF.loop), 0);
}

TEST(retry_for_everyone_under_a_spoofed_flood) {
  char dir[] = "/tmp/h3wt-retry-XXXXXX", cert[256], key[256];
  h3wt_server_stats st;
  CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);

  spoofed_round(cert, key, 16, &st);
  TEST_CONTEXT("global trigger 16: real client status %d (closed %d err %d), "
               "%d spoofed addresses, %llu packets relayed, %llu answers "
               "dropped, connections %llu, global Retries %llu, dropped "
               "at the connection limit %llu",
               SF.real_status, SF.real_closed, SF.real_err, SF.nmap,
               (unsigned long long)SF.forwarded,
               (unsigned long long)SF.answers_dropped,
               (unsigned long long)st.connections_total,
               (unsigned long long)st.limit_max_unvalidated_handshakes,
               (unsigned long long)st.limit_max_connections);
  CHECK(!SF.timed_out);
  CHECK_EQ_INT(SF.nmap, NSPOOF);
  CHECK_EQ_INT(SF.real_status, 200);
  CHECK(st.limit_max_unvalidated_handshakes >= NSPOOF - 16);
  /* 16 spoofed handshakes and the real client, nothing more. */
  CHECK(st.connections_total <= 17);
  CHECK_EQ_INT(st.limit_max_connections, 0);

  spoofed_round(cert, key, 0, &st);
  TEST_CONTEXT("no global trigger: real client status %d (closed %d err %d), "
               "connections %llu, dropped at the limit %llu",
               SF.real_status, SF.real_closed, SF.real_err,
               (unsigned long long)st.connections_total,
               (unsigned long long)st.limit_max_connections);
  CHECK(!SF.timed_out);
  CHECK(SF.real_status != 200); /* the flood holds every slot */
  CHECK(st.limit_max_connections > 0);
  loop_devcert_remove(dir, cert, key);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(retry_over_the_handshake_rate),
      TEST_ENTRY(retry_for_everyone_under_a_spoofed_flood),
  };
  return TEST_MAIN(argc, argv, tests);
}
