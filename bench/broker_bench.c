/*
 * broker_bench: channel messages through the Redis broker between two
 * nodes, each on its own loop thread (as two hubs on two machines would
 * be, here on one): node A publishes reliable messages to one channel,
 * node B watches it.
 *
 *   broker_bench [-d SECONDS] [-r RATE] [-w WINDOW] [-P BYTES] [--url URL]
 *                [--memory]
 *
 *   latency     A publishes RATE messages/s (default 1000) for SECONDS
 *               (default 5); B takes each message's send time out of its
 *               payload: publish-to-delivery latency, p50 / p99 / max
 *   throughput  A keeps WINDOW publishes in flight (default 256) for
 *               SECONDS; B counts deliveries: messages/s through Redis
 *
 * Without --url it starts its own redis-server on a free port (and stops
 * it), so its figures are this machine's loopback and Redis 7's.  With
 * --memory the two nodes share a memory broker instead (the in-process
 * baseline of the same run: two worker threads of one process); only the
 * latency phase runs, since its publishes complete before the message
 * has reached the other thread, so a window would measure nothing.  Prints
 * what it measured, then one JSON line (bench/README.md's format): rate
 * (the throughput), lat_p50_us, lat_p99_us, redis_cpu_us_per_msg (Redis's
 * CPU over both phases per message), errors.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "h3wt/h3wt.h"
#include "h3wt_broker.h"
#include "redis_spawn.h"

#define CHAN "bench"
#define CHANLEN 5

static struct {
  uint64_t dur_ms, rate, window;
  size_t payload;
  const char *url;
  int memory; /* --memory: the memory broker, latency only */
  char urlbuf[64];
  pid_t redis;
  h3wt_broker *broker;
  h3wt_logger log;
  /* Node A, the publisher (main thread). */
  uv_loop_t la;
  h3wt_bnode *a;
  int phase; /* 1 latency, 2 throughput, 3 done */
  uint64_t phase_end, sent, pub_ok, pub_err, inflight;
  uv_timer_t pace;
  /* Node B, the receiver (its own thread). */
  uv_loop_t lb;
  h3wt_bnode *b;
  uv_timer_t bpoll;
  atomic_int b_ready, stop;
  atomic_ullong received[3];
  uint64_t b_first_ns, b_last_ns; /* deliveries of the throughput phase */
  uint64_t b_errors, b_bad;
  bench_hist lat;
} B;

/* ---- node B ---------------------------------------------------------------
 */

static void b_message(void *ud, const char *ch, size_t chlen, int reliable,
                      uint64_t epoch, uint64_t offset, h3wt_buf *buf) {
  const uint8_t *p = h3wt_buf_data(buf);
  uint64_t now = bench_now_ns(), sent;
  uint32_t phase;
  (void)ud, (void)ch, (void)chlen, (void)epoch, (void)offset;
  if (!reliable || h3wt_buf_len(buf) < 12) {
    ++B.b_bad;
    return;
  }
  sent = bench_get64(p);
  phase = bench_get32(p + 8);
  if (phase == 1) {
    bench_hist_add(&B.lat, now - sent);
  } else if (phase == 2) {
    if (!B.b_first_ns) {
      B.b_first_ns = now;
    }
    B.b_last_ns = now;
  }
  if (phase < 3) {
    atomic_fetch_add(&B.received[phase], 1);
  }
}

static void b_presence(void *ud, const char *ch, size_t chlen, const char *m,
                       size_t mlen, int join) {
  (void)ud, (void)ch, (void)chlen, (void)m, (void)mlen, (void)join;
}

static void b_link(void *ud, int up) {
  (void)ud;
  if (!up) {
    ++B.b_errors;
  }
}

static const h3wt_bnode_events b_events = {b_message, b_presence, b_link};

static void b_history(void *arg, int err, int recovered, uint64_t epoch,
                      uint64_t last, const h3wt_bentry *e, size_t n) {
  (void)arg, (void)recovered, (void)epoch, (void)last, (void)e, (void)n;
  if (err) {
    ++B.b_errors;
  }
  atomic_store(&B.b_ready, 1); /* subscribed: every later message arrives */
}

static void b_poll(uv_timer_t *t) {
  if (atomic_load(&B.stop)) {
    B.b->ops->detach(B.b);
    uv_close((uv_handle_t *)t, NULL);
  }
}

/* A node on loop, as a hub with the default history settings would be. */
static int attach(uv_loop_t *loop, const h3wt_bnode_events *ev,
                  h3wt_bnode **node) {
  h3wt_battach at;
  memset(&at, 0, sizeof(at));
  at.loop = loop;
  at.log = &B.log;
  at.events = ev;
  at.history_size = 100;
  at.history_ttl_ms = 300000;
  return B.broker->kind->attach(B.broker, &at, node);
}

static void b_thread(void *arg) {
  (void)arg;
  if (attach(&B.lb, &b_events, &B.b) != 0 ||
      B.b->ops->watch(B.b, CHAN, CHANLEN) != 0 ||
      B.b->ops->history(B.b, CHAN, CHANLEN, 0, 0, 0, 0, b_history, NULL) != 0) {
    fprintf(stderr, "broker_bench: node B cannot start\n");
    exit(1);
  }
  uv_timer_init(&B.lb, &B.bpoll);
  uv_timer_start(&B.bpoll, b_poll, 10, 10);
  uv_run(&B.lb, UV_RUN_DEFAULT);
}

/* ---- node A ---------------------------------------------------------------
 */

static void a_message(void *ud, const char *ch, size_t chlen, int reliable,
                      uint64_t epoch, uint64_t offset, h3wt_buf *buf) {
  (void)ud, (void)ch, (void)chlen, (void)reliable, (void)epoch, (void)offset,
      (void)buf;
}

static const h3wt_bnode_events a_events = {a_message, b_presence, b_link};

static void a_publish(void);

static void a_published(void *arg, int err, uint64_t epoch, uint64_t off) {
  (void)arg, (void)epoch, (void)off;
  --B.inflight;
  if (err) {
    ++B.pub_err;
  } else {
    ++B.pub_ok;
  }
  if (B.phase == 2 && bench_now_ns() < B.phase_end) {
    a_publish();
  }
}

static void a_publish(void) {
  uint8_t *p = calloc(1, B.payload);
  h3wt_buf *buf;
  bench_put64(p, bench_now_ns());
  bench_put32(p + 8, (uint32_t)B.phase);
  if (h3wt_buf_new(&buf, p, B.payload) != 0) {
    exit(1);
  }
  free(p);
  /* Counted before the call: the memory broker answers inside it. */
  ++B.sent;
  ++B.inflight;
  if (B.a->ops->publish(B.a, CHAN, CHANLEN, buf, 1, a_published, NULL) != 0) {
    --B.sent;
    --B.inflight;
    ++B.pub_err;
  }
  h3wt_buf_unref(buf);
}

/* Every millisecond in the latency phase: the messages due by now. */
static void a_pace(uv_timer_t *t) {
  static uint64_t start, due_sent;
  uint64_t now = bench_now_ns(), due;
  (void)t;
  if (B.phase != 1) {
    return; /* only keeping the loop polling */
  }
  if (!start) {
    start = now;
  }
  if (now >= B.phase_end) {
    B.phase = 0; /* between phases */
    return;
  }
  due = (now - start) * B.rate / 1000000000u;
  while (due_sent < due) {
    a_publish();
    ++due_sent;
  }
}

/* Runs A's loop until cond() or ms pass. */
static int a_run_until(int (*cond)(void), uint64_t ms) {
  uint64_t end = bench_now_ns() + ms * 1000000u;
  while (!cond() && bench_now_ns() < end) {
    uv_run(&B.la, UV_RUN_ONCE);
  }
  return cond();
}

static int b_is_ready(void) {
  return atomic_load(&B.b_ready);
}
static int a_idle(void) {
  return B.inflight == 0;
}
static int lat_all_in(void) {
  return atomic_load(&B.received[1]) >= B.pub_ok && B.inflight == 0;
}

/* ---- redis-server ------------------------------------------------------ */

static void start_redis(void) {
  int p = redis_spawn_free_port();
  snprintf(B.urlbuf, sizeof(B.urlbuf), "redis://127.0.0.1:%d", p);
  B.url = B.urlbuf;
  B.redis = redis_spawn(p, 0);
  usleep(300000); /* the nodes retry until it listens anyway */
}

static void log_cb(h3wt_log_level level, const char *component, const char *msg,
                   void *ud) {
  (void)ud;
  fprintf(stderr, "[%d %s] %s\n", (int)level, component, msg);
}

int main(int argc, char **argv) {
  h3wt_broker_redis_settings set;
  uv_thread_t th;
  int64_t rcpu0 = 0, rcpu1 = 0;
  uint64_t rcvd_tp, total;
  double tp_s, tp_rate;
  int i, rv;
  B.dur_ms = 5000;
  B.rate = 1000;
  B.window = 256;
  B.payload = 64;
  for (i = 1; i < argc; ++i) {
    if (i + 1 < argc && strcmp(argv[i], "-d") == 0) {
      B.dur_ms = (uint64_t)(atof(argv[++i]) * 1000);
    } else if (i + 1 < argc && strcmp(argv[i], "-r") == 0) {
      B.rate = strtoull(argv[++i], NULL, 10);
    } else if (i + 1 < argc && strcmp(argv[i], "-w") == 0) {
      B.window = strtoull(argv[++i], NULL, 10);
    } else if (i + 1 < argc && strcmp(argv[i], "-P") == 0) {
      B.payload = strtoull(argv[++i], NULL, 10);
    } else if (i + 1 < argc && strcmp(argv[i], "--url") == 0) {
      B.url = argv[++i];
    } else if (strcmp(argv[i], "--memory") == 0) {
      B.memory = 1;
    } else {
      fprintf(stderr, "usage: broker_bench [-d SECONDS] [-r RATE] "
                      "[-w WINDOW] [-P BYTES] [--url URL] [--memory]\n");
      return 2;
    }
  }
  if (B.payload < 12 || B.rate == 0 || B.window == 0 || B.dur_ms == 0) {
    fprintf(stderr, "broker_bench: -P >= 12, -r, -w, -d > 0\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (!B.url && !B.memory) {
    start_redis();
  }
  B.log.cb = log_cb;
  B.log.level = H3WT_LOG_WARN;
  h3wt_broker_redis_settings_default(&set);
  set.url = B.url;
  set.prefix = "bench:";
  rv = B.memory ? h3wt_broker_memory_new(&B.broker)
                : h3wt_broker_redis_new(&B.broker, &set);
  if (rv != 0) {
    fprintf(stderr, "broker_bench: cannot make the broker: %s\n",
            h3wt_strerror(rv));
    return 1;
  }
  uv_loop_init(&B.la);
  uv_loop_init(&B.lb);
  /* The node's handles keep no loop alive: this timer keeps A's polling
     throughout (it paces the latency phase, and only ticks otherwise). */
  uv_timer_init(&B.la, &B.pace);
  uv_timer_start(&B.pace, a_pace, 1, 1);
  if (attach(&B.la, &a_events, &B.a) != 0) {
    return 1;
  }
  uv_thread_create(&th, b_thread, NULL);
  if (!a_run_until(b_is_ready, 10000)) {
    fprintf(stderr, "broker_bench: node B did not subscribe in 10 s\n");
    return 1;
  }
  if (B.redis > 0) {
    rcpu0 = bench_proc_cpu_us(B.redis);
  }

  /* Latency at a fixed rate. */
  B.phase = 1;
  B.phase_end = bench_now_ns() + B.dur_ms * 1000000u;

  while (B.phase == 1) {
    uv_run(&B.la, UV_RUN_ONCE);
  }
  a_run_until(lat_all_in, 5000);

  /* Throughput with a window of publishes in flight. */
  B.phase = 2;
  B.phase_end = bench_now_ns() + B.dur_ms * 1000000u;
  for (i = 0; i < (int)B.window && !B.memory; ++i) {
    a_publish();
  }
  a_run_until(a_idle, B.dur_ms + 10000);
  total = B.sent;
  /* Let B take what is on its way. */
  {
    uint64_t end = bench_now_ns() + 3000000000u;
    while (atomic_load(&B.received[1]) + atomic_load(&B.received[2]) <
               B.pub_ok &&
           bench_now_ns() < end) {
      usleep(1000);
    }
  }
  if (B.redis > 0) {
    rcpu1 = bench_proc_cpu_us(B.redis);
  }
  atomic_store(&B.stop, 1);
  uv_thread_join(&th);
  B.a->ops->detach(B.a);
  uv_close((uv_handle_t *)&B.pace, NULL);
  uv_run(&B.la, UV_RUN_DEFAULT);
  uv_loop_close(&B.la);
  uv_loop_close(&B.lb);
  h3wt_broker_del(B.broker);
  if (B.redis > 0) {
    kill(B.redis, SIGTERM);
    waitpid(B.redis, NULL, 0);
  }

  rcvd_tp = atomic_load(&B.received[2]);
  tp_s = (double)(B.b_last_ns - B.b_first_ns) / 1e9;
  tp_rate = tp_s > 0 ? (double)rcvd_tp / tp_s : 0;
  printf("latency at %" PRIu64 " msg/s (%zu B): p50 %.0f us, p99 %.0f us, "
         "max %.0f us over %" PRIu64 " messages\n",
         B.rate, B.payload, bench_hist_quantile(&B.lat, 0.5) / 1e3,
         bench_hist_quantile(&B.lat, 0.99) / 1e3, B.lat.max / 1e3,
         (uint64_t)atomic_load(&B.received[1]));
  if (!B.memory) {
    printf("throughput, %" PRIu64 " in flight: %.0f msg/s delivered to the "
           "other node (%" PRIu64 " messages)\n",
           B.window, tp_rate, rcvd_tp);
  }
  if (rcpu1 > rcpu0) {
    printf("redis-server CPU: %.1f us per message\n",
           (double)(rcpu1 - rcpu0) / (double)(total ? total : 1));
  }
  printf("{\"bench\":\"broker\",\"label\":\"%s\",\"rate\":%.0f,"
         "\"lat_rate\":%" PRIu64 ",\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,"
         "\"lat_max_us\":%.1f,\"window\":%" PRIu64 ",\"payload\":%zu,"
         "\"redis_cpu_us_per_msg\":%.2f,\"errors\":%" PRIu64 "}\n",
         B.memory ? "memory" : "redis", tp_rate, B.rate,
         bench_hist_quantile(&B.lat, 0.5) / 1e3,
         bench_hist_quantile(&B.lat, 0.99) / 1e3, B.lat.max / 1e3, B.window,
         B.payload,
         rcpu1 > rcpu0 ? (double)(rcpu1 - rcpu0) / (double)(total ? total : 1)
                       : 0.0,
         B.pub_err + B.b_errors + B.b_bad);
  return 0;
}
