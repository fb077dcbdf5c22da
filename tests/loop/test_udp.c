/*
 * The socket layer and the driver's fine timer on a real libuv loop (UDP on
 * loopback, the kernel's own ECN handling):
 *
 *  - ecn_ipv4: datagrams sent with each ECN codepoint (one at a time and a
 *    GSO batch) arrive with that codepoint, read from the IP TOS byte.
 *  - ecn_dual_stack: a dual-stack [::] socket reads the marks of IPv4
 *    datagrams (v4-mapped) and marks its answers to them (IP_TOS, not the
 *    IPv6 traffic class); over ::1 the traffic class carries them.
 *  - batch_of_32: 100 datagrams queued in the kernel are read with at most
 *    32 per recvmmsg (libuv's own path reads 20), so 4 calls, not 5+.
 *  - fine_timer: deadlines under a millisecond away go on the driver's
 *    timerfd heap and fire in order, none before its time; a deadline
 *    further away takes the millisecond timer; a rescheduled and a closed
 *    item are taken off the heap.
 *  - fine_timer_off: a driver made without it (a client's) has no
 *    descriptor and puts every deadline on the millisecond timer.
 *
 * Each test ends with uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "h3wt_driver.h"
#include "h3wt_test.h"
#include "h3wt_udp.h"
#include "h3wt_util.h"

static h3wt_logger quiet = {NULL, NULL, H3WT_LOG_ERROR};

typedef struct rx {
  unsigned ecn[128];
  size_t len[128];
  size_t n;
  size_t want;
  struct sockaddr_storage from;
  uv_loop_t *loop;
} rx;

static void on_rx(h3wt_udp *udp, const struct sockaddr *remote,
                  const uint8_t *data, size_t len, unsigned ecn, uint64_t ts,
                  void *ud) {
  rx *r = ud;
  if (r->n < 128) {
    r->ecn[r->n] = ecn;
    r->len[r->n] = len;
    ++r->n;
  }
  memcpy(&r->from, remote,
         remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
  if (r->n >= r->want) {
    uv_stop(r->loop);
  }
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

/* Runs the loop until r has want datagrams (or 5 s). */
static void wait_for(uv_loop_t *loop, rx *r, size_t want) {
  uint64_t end = h3wt_now_ns() + 5000000000ULL;
  r->want = want;
  while (r->n < want && h3wt_now_ns() < end) {
    uv_run(loop, UV_RUN_NOWAIT);
  }
}

static void close_all(uv_loop_t *loop, h3wt_udp *a, h3wt_udp *b) {
  h3wt_udp_close(a, on_closed, NULL);
  h3wt_udp_close(b, on_closed, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(loop), 0);
}

static void open_at(uv_loop_t *loop, h3wt_udp *u, const char *ip, rx *r) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':')) {
    CHECK_EQ_INT(uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss), 0);
  } else {
    CHECK_EQ_INT(uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss), 0);
  }
  CHECK_EQ_INT(h3wt_udp_open(u, loop, (struct sockaddr *)&ss, &quiet, on_rx,
                             r),
               0);
}

/* The address to reach u at: its port on ip. */
static struct sockaddr_storage at(const h3wt_udp *u, const char *ip) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  uint16_t port = u->local.ss_family == AF_INET6
                      ? ntohs(((struct sockaddr_in6 *)&u->local)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&u->local)->sin_port);
  if (strchr(ip, ':')) {
    uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss);
  } else {
    uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss);
  }
  return ss;
}

TEST(ecn_ipv4) {
  uv_loop_t loop;
  h3wt_udp a, b;
  rx ra = {.loop = &loop}, rb = {.loop = &loop};
  uint8_t buf[3 * 1000];
  memset(buf, 0x5a, sizeof(buf));
  uv_loop_init(&loop);
  open_at(&loop, &a, "127.0.0.1", &ra);
  open_at(&loop, &b, "127.0.0.1", &rb);
  struct sockaddr_storage to = at(&b, "127.0.0.1");
  for (unsigned ecn = 0; ecn < 4; ++ecn) {
    CHECK_EQ_INT(h3wt_udp_send(&a, (struct sockaddr *)&to, buf, 100 + ecn, 0,
                               ecn),
                 0);
  }
  /* A GSO batch of three 1000-byte packets, all ECT(0). */
  CHECK_EQ_INT(h3wt_udp_send(&a, (struct sockaddr *)&to, buf, sizeof(buf),
                             1000, 2),
               0);
  wait_for(&loop, &rb, 7);
  CHECK_EQ_INT(rb.n, 7);
  for (unsigned i = 0; i < 4; ++i) {
    TEST_CONTEXT("datagram %u", i);
    CHECK_EQ_INT(rb.len[i], 100 + i);
    CHECK_EQ_INT(rb.ecn[i], i);
  }
  for (unsigned i = 4; i < 7; ++i) {
    CHECK_EQ_INT(rb.len[i], 1000);
    CHECK_EQ_INT(rb.ecn[i], 2);
  }
  CHECK_EQ_INT(b.stats.rx_ecn[2], 4);
  CHECK_EQ_INT(b.stats.rx_ecn[3], 1);
  CHECK_EQ_INT(a.stats.tx_ect, 5); /* ECT(1), ECT(0) and the batch of 3 */
  close_all(&loop, &a, &b);
}

TEST(ecn_dual_stack) {
  uv_loop_t loop;
  h3wt_udp v4, v6;
  rx r4 = {.loop = &loop}, r6 = {.loop = &loop};
  uint8_t buf[200];
  memset(buf, 1, sizeof(buf));
  uv_loop_init(&loop);
  open_at(&loop, &v4, "127.0.0.1", &r4);
  struct sockaddr_in6 any;
  uv_ip6_addr("::", 0, &any);
  if (h3wt_udp_open(&v6, &loop, (struct sockaddr *)&any, &quiet, on_rx,
                    &r6) != 0) {
    /* No IPv6 here: nothing to test. */
    h3wt_udp_close(&v4, on_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return;
  }
  /* IPv4 into the dual-stack socket: arrives v4-mapped, mark read. */
  struct sockaddr_storage to6 = at(&v6, "127.0.0.1");
  CHECK_EQ_INT(h3wt_udp_send(&v4, (struct sockaddr *)&to6, buf, 50, 0, 3), 0);
  wait_for(&loop, &r6, 1);
  CHECK_EQ_INT(r6.n, 1);
  CHECK_EQ_INT(r6.ecn[0], 3);
  CHECK_EQ_INT(r6.from.ss_family, AF_INET6);
  /* The answer to the v4-mapped address carries its mark in IP_TOS. */
  CHECK_EQ_INT(h3wt_udp_send(&v6, (struct sockaddr *)&r6.from, buf, 60, 0, 1),
               0);
  wait_for(&loop, &r4, 1);
  CHECK_EQ_INT(r4.n, 1);
  CHECK_EQ_INT(r4.len[0], 60);
  CHECK_EQ_INT(r4.ecn[0], 1);
  /* Over ::1 (where the host has it): the traffic class. */
  h3wt_udp c6;
  rx rc = {.loop = &loop};
  struct sockaddr_in6 lo6;
  uv_ip6_addr("::1", 0, &lo6);
  if (h3wt_udp_open(&c6, &loop, (struct sockaddr *)&lo6, &quiet, on_rx,
                    &rc) == 0) {
    struct sockaddr_storage to = at(&v6, "::1");
    CHECK_EQ_INT(h3wt_udp_send(&c6, (struct sockaddr *)&to, buf, 70, 0, 2), 0);
    wait_for(&loop, &r6, 2);
    CHECK_EQ_INT(r6.n, 2);
    CHECK_EQ_INT(r6.len[1], 70);
    CHECK_EQ_INT(r6.ecn[1], 2);
    h3wt_udp_close(&c6, on_closed, NULL);
  }
  close_all(&loop, &v4, &v6);
}

TEST(batch_of_32) {
  uv_loop_t loop;
  h3wt_udp a, b;
  rx ra = {.loop = &loop}, rb = {.loop = &loop};
  uint8_t buf[64];
  memset(buf, 2, sizeof(buf));
  uv_loop_init(&loop);
  open_at(&loop, &a, "127.0.0.1", &ra);
  open_at(&loop, &b, "127.0.0.1", &rb);
  struct sockaddr_storage to = at(&b, "127.0.0.1");
  /* All queued in b's socket buffer before its loop reads any. */
  for (int i = 0; i < 100; ++i) {
    CHECK_EQ_INT(h3wt_udp_send(&a, (struct sockaddr *)&to, buf, sizeof(buf),
                               0, 0),
                 0);
  }
  wait_for(&loop, &rb, 100);
  CHECK_EQ_INT(rb.n, 100);
  TEST_CONTEXT("%llu recvmmsg calls for 100 datagrams",
               (unsigned long long)b.stats.rx_syscalls);
  /* 32 + 32 + 32 + 4: four calls (uv_stop ends the run before a fifth
     that would find the socket empty). */
  CHECK(b.stats.rx_syscalls <= 4);
  close_all(&loop, &a, &b);
}

/* -- the fine timer -- */

typedef struct fine_fx {
  h3wt_driver drv;
  h3wt_drv_item items[40];
  uint64_t due[40];
  uint64_t fired_at[40];
  int order[40];
  int nfired;
  int early; /* an item fired before its deadline */
} fine_fx;

static fine_fx FX;

static int fx_flush(h3wt_drv_item *it, uint64_t ts, void *ud) {
  return 0;
}

static void fx_expired(h3wt_drv_item *it, uint64_t ts, void *ud) {
  int i = (int)(it - FX.items);
  if (h3wt_now_ns() < FX.due[i]) {
    FX.early = 1;
  }
  FX.fired_at[i] = ts;
  FX.order[FX.nfired++] = i;
}

static void fx_closed(uv_handle_t *h) {
  (void)h;
}

TEST(fine_timer) {
  uv_loop_t loop;
  static const h3wt_driver_callbacks cbs = {fx_flush, fx_expired, NULL, NULL};
  memset(&FX, 0, sizeof(FX));
  uv_loop_init(&loop);
  h3wt_driver_init(&FX.drv, &loop, &cbs, NULL, 1);
  CHECK(FX.drv.tfd >= 0);
  for (int i = 0; i < 40; ++i) {
    h3wt_drv_item_init(&FX.drv, &FX.items[i], NULL);
  }
  uint64_t now = h3wt_now_ns();
  /* 30 items between 300 and 880 us away, in scrambled order.  A machine
     stalled for 300 us between two of these calls would put that item on
     the millisecond timer instead, as it should (its deadline is then
     less than 300 us away... or past): the checks allow a few. */
  for (int i = 0; i < 30; ++i) {
    FX.due[i] = h3wt_now_ns() + 300000 + (uint64_t)((i * 7919) % 30) * 20000;
    h3wt_drv_schedule(&FX.items[i], FX.due[i]);
  }
  size_t on_heap = FX.drv.fine_len;
  TEST_CONTEXT("%zu of 30 on the fine heap", on_heap);
  CHECK(on_heap >= 25 && on_heap <= 30);
  /* One 50 ms away: the millisecond timer, not the heap. */
  FX.due[30] = now + 50000000;
  h3wt_drv_schedule(&FX.items[30], FX.due[30]);
  CHECK_EQ_INT(FX.drv.fine_len, on_heap);
  CHECK(FX.items[30].fine_idx == SIZE_MAX);
  /* One moved from the heap to far away, one closed while waiting. */
  int moved = FX.items[3].fine_idx != SIZE_MAX;
  int closed = FX.items[4].fine_idx != SIZE_MAX;
  FX.due[3] = now + 60000000;
  h3wt_drv_schedule(&FX.items[3], FX.due[3]);
  h3wt_drv_item_close(&FX.items[4], fx_closed, NULL);
  CHECK(FX.items[3].fine_idx == SIZE_MAX && FX.items[4].fine_idx == SIZE_MAX);
  CHECK_EQ_INT(FX.drv.fine_len, on_heap - (size_t)moved - (size_t)closed);
  /* The 28 near ones fire (those that took the millisecond timer too). */
  while (FX.nfired < 28 && h3wt_now_ns() < now + 5000000000ULL) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  CHECK_EQ_INT(FX.nfired, 28);
  CHECK_EQ_INT(FX.early, 0);
  /* Those of the heap in deadline order (firings from the millisecond
     timer come after, rounded up). */
  for (int k = 1; k < (int)on_heap - moved - closed; ++k) {
    TEST_CONTEXT("firing %d: item %d then %d", k, FX.order[k - 1],
                 FX.order[k]);
    CHECK(FX.due[FX.order[k - 1]] <= FX.due[FX.order[k]]);
  }
  CHECK_EQ_INT(FX.drv.fine_len, 0);
  while (FX.nfired < 30 && h3wt_now_ns() < now + 5000000000ULL) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  CHECK_EQ_INT(FX.nfired, 30); /* and the two far ones, after */
  CHECK_EQ_INT(FX.early, 0);
  for (int i = 0; i < 40; ++i) {
    if (i != 4) {
      h3wt_drv_item_close(&FX.items[i], fx_closed, NULL);
    }
  }
  h3wt_driver_close(&FX.drv, fx_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(fine_timer_off) {
  uv_loop_t loop;
  static const h3wt_driver_callbacks cbs = {fx_flush, fx_expired, NULL, NULL};
  memset(&FX, 0, sizeof(FX));
  uv_loop_init(&loop);
  /* A client's driver: no timerfd; a deadline 300 us away takes the
     millisecond timer (rounded up) and still never fires early. */
  h3wt_driver_init(&FX.drv, &loop, &cbs, NULL, 0);
  CHECK(FX.drv.tfd < 0);
  h3wt_drv_item_init(&FX.drv, &FX.items[0], NULL);
  uint64_t now = h3wt_now_ns();
  FX.due[0] = now + 300000;
  h3wt_drv_schedule(&FX.items[0], FX.due[0]);
  CHECK_EQ_INT(FX.drv.fine_len, 0);
  CHECK(FX.items[0].fine_idx == SIZE_MAX);
  while (FX.nfired < 1 && h3wt_now_ns() < now + 5000000000ULL) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  CHECK_EQ_INT(FX.nfired, 1);
  CHECK_EQ_INT(FX.early, 0);
  h3wt_drv_item_close(&FX.items[0], fx_closed, NULL);
  CHECK_EQ_INT(h3wt_driver_close(&FX.drv, fx_closed, NULL), 2);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(ecn_ipv4),
      TEST_ENTRY(ecn_dual_stack),
      TEST_ENTRY(batch_of_32),
      TEST_ENTRY(fine_timer),
      TEST_ENTRY(fine_timer_off),
  };
  return TEST_MAIN(argc, argv, tests);
}
