/*
 * The Redis broker (lib/h3wt_broker_redis.c) against a real redis-server
 * the test starts on a free port (and SIGKILLs and restarts mid-run):
 * nodes attached to one broker on one loop, each with event callbacks
 * that record what arrives, the way two hubs on two machines would.
 *
 *   - reliable messages from node A reach node B in order, exactly once,
 *     offsets 1..N, one epoch; A hears its own; unreliable ones arrive;
 *   - history(): recovery of exactly the missed ones, recovered 0 for
 *     another epoch, a trimmed gap, the future, and an age gap; the
 *     history-on-join fallback;
 *   - presence: joins and leaves seen by the other node, members();
 *     a node process SIGKILLed without leaving (this binary run again as
 *     a child) disappears within its TTL with a leave event;
 *   - a garbage frame on the channel is counted and dropped;
 *   - redis-server SIGKILLed: link 0, publishes fail with H3WT_ERR_IO
 *     (queued ones after timeout_ms, at once past max_queued), counted;
 *     restarted on the same port: link 1, resubscribed, a new epoch,
 *     messages flow again;
 *   - Redis asleep (DEBUG SLEEP 2 from another thread): the loop keeps
 *     ticking, requests time out, the link comes back;
 *   - watch/unwatch/watch before Redis confirmed either: subscribed once;
 *   - detach(): a pending publish completes once with H3WT_ERR_CLOSED and
 *     the node's members leave;
 *   - AUTH (password from the environment), SELECT (database from the
 *     URL); a wrong password: link 0, requests fail with H3WT_ERR_IO after
 *     timeout_ms, detach() fails the rest with H3WT_ERR_CLOSED.
 *
 * And hostile_replies: a fake Redis (a thread speaking just enough RESP)
 * answers publish, history and members with malformed replies (wrong
 * types, numbers out of range, offsets that do not add up, short and long
 * arrays, errors): each request fails with H3WT_ERR_IO, counted, nothing
 * reaches the hub, the link stays up; then good replies work.
 *
 * Exit 77 (CTest: skipped) when redis-server is not installed, unless the
 * environment has CI set (.ci/run sets it): then that is a failure.
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "h3wt/h3wt.h"
#include "h3wt_broker.h"
#include "h3wt_test.h"
#include "redis_spawn.h"

#define MAXMSG 256
#define MAXEV 64
#define CH "room 1:a"
#define CHLEN (sizeof(CH) - 1)

typedef struct rec {
  const char *name;
  h3wt_bnode *node;
  size_t nmsg;
  uint64_t epoch[MAXMSG], off[MAXMSG];
  char data[MAXMSG][32];
  size_t nunrel;
  char unrel[32];
  char pres[MAXEV][48]; /* "+member" / "-member" */
  size_t npres;
  int links[MAXEV];
  size_t nlinks;
} rec;

typedef struct pubres {
  int called, err;
  uint64_t epoch, offset;
} pubres;

typedef struct histres {
  int called, err, recovered;
  uint64_t epoch, last;
  size_t n;
  uint64_t off[MAXMSG];
  char data[MAXMSG][32];
} histres;

typedef struct memres {
  int called, err;
  size_t n;
  char m[16][32];
} memres;

static struct {
  uv_loop_t loop;
  h3wt_broker *broker;
  h3wt_broker_redis_settings set;
  char url[64], prefix[32];
  int port;
  pid_t redis;
  const char *exe;
  h3wt_logger log;
  uv_timer_t keep; /* keeps the loop polling: the nodes' handles do not */
} T;

static void keep_cb(uv_timer_t *t) {
  (void)t;
}

/* A node's handles are unreferenced (a host's loop ends when its server
   and hub do): this test's own loop is kept polling by a timer of its
   own while the phases wait in UV_RUN_ONCE. */
static void keep_loop(void) {
  uv_timer_init(&T.loop, &T.keep);
  uv_timer_start(&T.keep, keep_cb, 20, 20);
}

static void keep_loop_end(void) {
  uv_close((uv_handle_t *)&T.keep, NULL);
}

/* ---- redis-server ------------------------------------------------------ */

static int have_redis_server(void) {
  const char *path = getenv("PATH");
  char buf[4096];
  while (path && *path) {
    const char *colon = strchr(path, ':');
    size_t len = colon ? (size_t)(colon - path) : strlen(path);
    snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)len, path);
    if (access(buf, X_OK) == 0) {
      return 1;
    }
    path = colon ? colon + 1 : NULL;
  }
  return 0;
}

/* A blocking admin connection (the test's, never the broker's). */
static redisContext *admin(void) {
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", T.port, tv);
  if (c && c->err) {
    redisFree(c);
    return NULL;
  }
  return c;
}

static void redis_start(void) {
  int i;
  T.redis = redis_spawn(T.port, 1);
  for (i = 0; i < 100; ++i) {
    redisContext *c = admin();
    if (c) {
      redisFree(c);
      return;
    }
    usleep(20000);
  }
  fprintf(stderr, "redis-server did not start on port %d\n", T.port);
  kill(T.redis, SIGKILL);
  exit(1);
}

static void redis_kill(void) {
  if (T.redis > 0) {
    kill(T.redis, SIGKILL);
    waitpid(T.redis, NULL, 0);
    T.redis = 0;
  }
}

/* ---- the loop ------------------------------------------------------------ */

/* Runs the loop until *flag is non-zero or ms pass; returns *flag.  The
   nodes' watchdog timers wake the loop at least every 100 ms. */
static int run_until(const int *flag, uint64_t ms) {
  uint64_t end = h3wt_now_ns() + ms * 1000000ULL;
  while (!*flag && h3wt_now_ns() < end) {
    uv_run(&T.loop, UV_RUN_ONCE);
  }
  return *flag;
}

static void run_for(uint64_t ms) {
  int never = 0;
  run_until(&never, ms);
}

/* ---- recorders ------------------------------------------------------------
 */

static void on_message(void *ud, const char *ch, size_t chlen, int reliable,
                       uint64_t epoch, uint64_t offset, h3wt_buf *buf) {
  rec *r = ud;
  int len = (int)h3wt_buf_len(buf);
  (void)ch;
  (void)chlen;
  if (!reliable) {
    CHECK_EQ_INT(epoch, 0);
    CHECK_EQ_INT(offset, 0);
    ++r->nunrel;
    snprintf(r->unrel, sizeof(r->unrel), "%.*s", len,
             (const char *)h3wt_buf_data(buf));
    return;
  }
  if (r->nmsg < MAXMSG) {
    r->epoch[r->nmsg] = epoch;
    r->off[r->nmsg] = offset;
    snprintf(r->data[r->nmsg], sizeof(r->data[0]), "%.*s", len,
             (const char *)h3wt_buf_data(buf));
  }
  ++r->nmsg;
}

static void on_presence(void *ud, const char *ch, size_t chlen,
                        const char *member, size_t mlen, int join) {
  rec *r = ud;
  (void)ch;
  (void)chlen;
  if (r->npres < MAXEV) {
    snprintf(r->pres[r->npres++], sizeof(r->pres[0]), "%c%.*s",
             join ? '+' : '-', (int)mlen, member);
  }
}

static void on_link(void *ud, int up) {
  rec *r = ud;
  if (r->nlinks < MAXEV) {
    r->links[r->nlinks++] = up;
  }
}

static const h3wt_bnode_events events = {on_message, on_presence, on_link};

static void on_published(void *arg, int err, uint64_t epoch, uint64_t off) {
  pubres *p = arg;
  ++p->called;
  p->err = err;
  p->epoch = epoch;
  p->offset = off;
}

static void on_history(void *arg, int err, int recovered, uint64_t epoch,
                       uint64_t last, const h3wt_bentry *e, size_t n) {
  histres *h = arg;
  size_t i;
  ++h->called;
  h->err = err;
  h->recovered = recovered;
  h->epoch = epoch;
  h->last = last;
  h->n = n;
  for (i = 0; i < n && i < MAXMSG; ++i) {
    h->off[i] = e[i].offset;
    snprintf(h->data[i], sizeof(h->data[0]), "%.*s",
             (int)h3wt_buf_len(e[i].buf),
             (const char *)h3wt_buf_data(e[i].buf));
  }
}

static void on_members(void *arg, int err, const h3wt_bmember *m, size_t n) {
  memres *r = arg;
  size_t i;
  ++r->called;
  r->err = err;
  r->n = n;
  for (i = 0; i < n && i < 16; ++i) {
    snprintf(r->m[i], sizeof(r->m[0]), "%.*s", (int)m[i].len, m[i].name);
  }
}

static h3wt_bnode *attach(rec *r, const char *name, size_t hsize,
                          uint64_t httl) {
  h3wt_battach a;
  memset(&a, 0, sizeof(a));
  memset(r, 0, sizeof(*r));
  r->name = name;
  a.loop = &T.loop;
  a.log = &T.log;
  a.events = &events;
  a.ud = r;
  a.history_size = hsize;
  a.history_ttl_ms = httl;
  CHECK_EQ_INT(T.broker->kind->attach(T.broker, &a, &r->node), 0);
  return r->node;
}

static h3wt_bnode_stats stats(const rec *r) {
  h3wt_bnode_stats s;
  r->node->ops->stats(r->node, &s);
  return s;
}

static int link_up(const rec *r) {
  return (int)stats(r).link_up;
}

static int wait_link(const rec *r, uint64_t ms) {
  uint64_t end = h3wt_now_ns() + ms * 1000000ULL;
  while (!link_up(r) && h3wt_now_ns() < end) {
    uv_run(&T.loop, UV_RUN_ONCE);
  }
  return link_up(r);
}

static int publish(rec *r, const char *ch, const char *data, int reliable,
                   pubres *p) {
  h3wt_buf *b;
  int rv;
  CHECK_EQ_INT(h3wt_buf_new(&b, data, strlen(data)), 0);
  rv = r->node->ops->publish(r->node, ch, strlen(ch), b, reliable,
                             p ? on_published : NULL, p);
  h3wt_buf_unref(b);
  return rv;
}

static void history(rec *r, const char *ch, int recover, uint64_t epoch,
                    uint64_t since, uint64_t limit, histres *h) {
  memset(h, 0, sizeof(*h));
  CHECK_EQ_INT(r->node->ops->history(r->node, ch, strlen(ch), recover, epoch,
                                     since, limit, on_history, h),
               0);
  CHECK(run_until(&h->called, 3000));
  CHECK_EQ_INT(h->called, 1);
  CHECK_EQ_INT(h->err, 0);
}

static void members(rec *r, const char *ch, memres *m) {
  memset(m, 0, sizeof(*m));
  CHECK_EQ_INT(r->node->ops->members(r->node, ch, strlen(ch), on_members, m),
               0);
  CHECK(run_until(&m->called, 3000));
  CHECK_EQ_INT(m->err, 0);
}

static int has_pres(const rec *r, const char *what) {
  size_t i;
  for (i = 0; i < r->npres; ++i) {
    if (strcmp(r->pres[i], what) == 0) {
      return 1;
    }
  }
  return 0;
}

static int wait_pres(const rec *r, const char *what, uint64_t ms) {
  uint64_t end = h3wt_now_ns() + ms * 1000000ULL;
  while (!has_pres(r, what) && h3wt_now_ns() < end) {
    uv_run(&T.loop, UV_RUN_ONCE);
  }
  return has_pres(r, what);
}

static int wait_msgs(const rec *r, size_t n, uint64_t ms) {
  uint64_t end = h3wt_now_ns() + ms * 1000000ULL;
  while (r->nmsg < n && h3wt_now_ns() < end) {
    uv_run(&T.loop, UV_RUN_ONCE);
  }
  return r->nmsg >= n;
}

static void make_broker(void) {
  h3wt_broker_redis_settings_default(&T.set);
  snprintf(T.url, sizeof(T.url), "redis://127.0.0.1:%d", T.port);
  T.set.url = T.url;
  T.set.prefix = T.prefix;
  T.set.presence_ttl_ms = 600;
  T.set.timeout_ms = 400;
  T.set.max_queued = 8;
  T.set.reconnect_min_ms = 50;
  T.set.reconnect_max_ms = 300;
  CHECK_EQ_INT(h3wt_broker_redis_new(&T.broker, &T.set), 0);
}

/* ---- the child: a node that joins and is then killed ------------------- */

static int child_main(int port, const char *prefix, const char *member) {
  rec r;
  T.port = port;
  snprintf(T.prefix, sizeof(T.prefix), "%s", prefix);
  uv_loop_init(&T.loop);
  keep_loop();
  make_broker();
  attach(&r, "child", 10, 0);
  r.node->ops->watch(r.node, CH, CHLEN);
  r.node->ops->join(r.node, CH, CHLEN, member, strlen(member));
  /* Until SIGKILL (or the parent's death, PR_SET_PDEATHSIG); at most a
     minute whatever happens. */
  alarm(60);
  for (;;) {
    uv_run(&T.loop, UV_RUN_DEFAULT);
  }
  return 0;
}

/* ---- the phases ------------------------------------------------------------
 */

static rec A, B, C;
static uint64_t E0;

static void phase_messages(void) {
  histres h;
  pubres p[20];
  char data[32];
  size_t i;
  CHECK_EQ_INT(A.node->ops->watch(A.node, CH, CHLEN), 0);
  CHECK_EQ_INT(B.node->ops->watch(B.node, CH, CHLEN), 0);
  /* Counted: a second watch needs a second unwatch. */
  CHECK_EQ_INT(B.node->ops->watch(B.node, CH, CHLEN), 0);
  B.node->ops->unwatch(B.node, CH, CHLEN);
  /* History waits for the subscription: after it every message counts. */
  history(&A, CH, 0, 0, 0, 0, &h);
  history(&B, CH, 0, 0, 0, 0, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK_EQ_INT(h.last, 0);
  CHECK_EQ_INT(h.n, 0);
  CHECK(h.epoch <= 0x3fffffffffffffffULL);
  E0 = h.epoch;
  memset(p, 0, sizeof(p));
  for (i = 0; i < 20; ++i) {
    snprintf(data, sizeof(data), "m%zu", i + 1);
    CHECK_EQ_INT(publish(&A, CH, data, 1, &p[i]), 0);
  }
  CHECK(wait_msgs(&B, 20, 3000));
  CHECK(wait_msgs(&A, 20, 3000));
  run_for(100); /* nothing more may come */
  CHECK_EQ_INT(B.nmsg, 20);
  CHECK_EQ_INT(A.nmsg, 20);
  for (i = 0; i < 20 && i < B.nmsg; ++i) {
    TEST_CONTEXT("message %zu", i);
    snprintf(data, sizeof(data), "m%zu", i + 1);
    CHECK_EQ_INT(B.off[i], i + 1);
    CHECK(B.epoch[i] == E0);
    CHECK_EQ_STR(B.data[i], data);
    CHECK_EQ_INT(A.off[i], i + 1);
    CHECK_EQ_INT(p[i].called, 1);
    CHECK_EQ_INT(p[i].err, 0);
    CHECK_EQ_INT(p[i].offset, i + 1);
    CHECK(p[i].epoch == E0);
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT(stats(&A).publishes, 20);
  CHECK(stats(&A).round_trips >= 20);
  CHECK(stats(&A).rtt_us_sum > 0);

  /* Unreliable: no offset, no history. */
  CHECK_EQ_INT(publish(&A, CH, "u1", 0, &p[0]), 0);
  CHECK(run_until((const int *)&B.nunrel, 2000));
  CHECK_EQ_STR(B.unrel, "u1");
  CHECK_EQ_INT(B.nmsg, 20);

  /* Bad arguments are refused without a callback. */
  CHECK_EQ_INT(publish(&A, "", "x", 1, NULL), H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(publish(&A, "a\nb", "x", 1, NULL), H3WT_ERR_INVALID_ARGUMENT);
}

static void phase_history(void) {
  histres h;
  size_t i;
  /* Missed 16..20. */
  history(&B, CH, 1, E0, 15, 0, &h);
  CHECK_EQ_INT(h.recovered, 1);
  CHECK(h.epoch == E0);
  CHECK_EQ_INT(h.last, 20);
  CHECK_EQ_INT(h.n, 5);
  for (i = 0; i < h.n; ++i) {
    char want[16];
    snprintf(want, sizeof(want), "m%zu", 16 + i);
    CHECK_EQ_INT(h.off[i], 16 + i);
    CHECK_EQ_STR(h.data[i], want);
  }
  /* Nothing missed. */
  history(&B, CH, 1, E0, 20, 5, &h);
  CHECK_EQ_INT(h.recovered, 1);
  CHECK_EQ_INT(h.n, 0);
  /* history_size 10: 11..20 kept; since 10 is just recoverable... */
  history(&B, CH, 1, E0, 10, 0, &h);
  CHECK_EQ_INT(h.recovered, 1);
  CHECK_EQ_INT(h.n, 10);
  CHECK_EQ_INT(h.off[0], 11);
  /* ...since 9 is not (11 is the oldest kept): the fallback, capped at
     history_size. */
  history(&B, CH, 1, E0, 9, 100, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK_EQ_INT(h.last, 20);
  CHECK_EQ_INT(h.n, 10);
  CHECK_EQ_INT(h.off[0], 11);
  CHECK_EQ_INT(h.off[9], 20);
  /* Another epoch, with history on join: the last 3. */
  history(&B, CH, 1, E0 ^ 1, 15, 3, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK(h.epoch == E0);
  CHECK_EQ_INT(h.n, 3);
  CHECK_EQ_INT(h.off[0], 18);
  CHECK_EQ_STR(h.data[2], "m20");
  /* The future. */
  history(&B, CH, 1, E0, 21, 0, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK_EQ_INT(h.n, 0);
  /* No recover, no limit: just the position. */
  history(&B, CH, 0, 0, 0, 0, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK_EQ_INT(h.last, 20);
  CHECK_EQ_INT(h.n, 0);
}

/* Node C keeps 1 s of history: 1..3 age out while 4 stays. */
static void phase_age(void) {
  pubres p;
  histres h;
  uint64_t e;
  int i;
  for (i = 0; i < 3; ++i) {
    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(publish(&C, "aged", "old", 1, &p), 0);
    CHECK(run_until(&p.called, 2000));
  }
  e = p.epoch;
  run_for(650);
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&C, "aged", "new", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK_EQ_INT(p.offset, 4);
  run_for(650);
  history(&C, "aged", 1, e, 1, 10, &h);
  CHECK(h.epoch == e);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK_EQ_INT(h.n, 1);
  CHECK_EQ_INT(h.off[0], 4);
  history(&C, "aged", 1, e, 3, 0, &h);
  CHECK_EQ_INT(h.recovered, 1);
  CHECK_EQ_INT(h.n, 1);
  CHECK_EQ_STR(h.data[0], "new");

  /* A watched channel keeps its epoch past history_ttl without a
     publish (the watchers renew it); an unwatched one starts anew. */
  CHECK_EQ_INT(C.node->ops->watch(C.node, "kept", 4), 0);
  history(&C, "kept", 0, 0, 0, 0, &h);
  e = h.epoch;
  history(&C, "gone", 0, 0, 0, 0, &h);
  run_for(1500);
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&C, "kept", "k", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK(p.epoch == e);
  CHECK_EQ_INT(p.offset, 1);
  e = h.epoch;
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&C, "gone", "g", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK(p.epoch != e);
  C.node->ops->unwatch(C.node, "kept", 4);
}

static void phase_presence(void) {
  memres m;
  char port[16], *args[6];
  pid_t child;
  CHECK_EQ_INT(A.node->ops->join(A.node, CH, CHLEN, "alice", 5), 0);
  CHECK(wait_pres(&B, "+alice", 2000));
  CHECK(!has_pres(&A, "+alice")); /* its own are not echoed */
  members(&B, CH, &m);
  CHECK_EQ_INT(m.n, 1);
  CHECK_EQ_STR(m.m[0], "alice");
  members(&A, CH, &m);
  CHECK_EQ_INT(m.n, 0);
  A.node->ops->leave(A.node, CH, CHLEN, "alice", 5);
  CHECK(wait_pres(&B, "-alice", 2000));
  members(&B, CH, &m);
  CHECK_EQ_INT(m.n, 0);

  /* A node that dies without a word: this binary, run as a child. */
  snprintf(port, sizeof(port), "%d", T.port);
  args[0] = (char *)T.exe;
  args[1] = "child";
  args[2] = port;
  args[3] = T.prefix;
  args[4] = "zombie";
  args[5] = NULL;
  child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv("/proc/self/exe", args);
    _exit(127);
  }
  CHECK(wait_pres(&B, "+zombie", 5000));
  members(&A, CH, &m);
  CHECK_EQ_INT(m.n, 1);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  /* TTL 600 ms, sweeps every 200 ms. */
  CHECK(wait_pres(&B, "-zombie", 2500));
  CHECK(wait_pres(&A, "-zombie", 1000));
  members(&A, CH, &m);
  CHECK_EQ_INT(m.n, 0);
}

static void phase_garbage(void) {
  redisContext *c = admin();
  redisReply *rep;
  char chan[64];
  uint64_t before = stats(&B).errors;
  size_t nmsg = B.nmsg, nunrel = B.nunrel;
  static const char *const frames[] = {
      "",       "R",      "R1", "R1 ",    "R1 2",   "R99999999999999999999 1 x",
      "Rx 1 y", "R1 0 y", "J",  "Jshort", "Z hello"};
  size_t i;
  CHECK(c != NULL);
  if (!c) {
    return;
  }
  snprintf(chan, sizeof(chan), "%sc:%s", T.prefix, CH);
  for (i = 0; i < sizeof(frames) / sizeof(frames[0]); ++i) {
    rep = redisCommand(c, "PUBLISH %s %b", chan, frames[i], strlen(frames[i]));
    freeReplyObject(rep);
  }
  /* A replay of offset 5 of this epoch is not delivered again. */
  rep = redisCommand(c, "PUBLISH %s R%" PRIu64 " 5 again", chan, E0);
  freeReplyObject(rep);
  redisFree(c);
  run_for(300);
  CHECK_EQ_INT(stats(&B).errors - before, 11);
  CHECK_EQ_INT(B.nmsg, nmsg);
  CHECK_EQ_INT(B.nunrel, nunrel);
}

static void phase_restart(void) {
  pubres p[12];
  histres h;
  uint64_t errs = stats(&A).errors;
  size_t i, ok = 0, a_links = A.nlinks, b_links = B.nlinks, n0;
  redis_kill();
  /* Both nodes notice (the connections close). */
  for (i = 0; i < 40 && (A.nlinks == a_links || B.nlinks == b_links); ++i) {
    run_for(50);
  }
  CHECK_EQ_INT(A.nlinks, a_links + 1);
  CHECK_EQ_INT(B.nlinks, b_links + 1);
  CHECK_EQ_INT(A.links[a_links], 0);
  CHECK_EQ_INT(link_up(&A), 0);
  memset(p, 0, sizeof(p));
  for (i = 0; i < 12; ++i) {
    int rv = publish(&A, CH, "lost", 1, &p[i]);
    if (rv == 0) {
      ++ok;
    } else {
      CHECK_EQ_INT(rv, H3WT_ERR_IO);
    }
  }
  CHECK_EQ_INT(ok, 8); /* max_queued */
  CHECK_EQ_INT(stats(&A).queued, 8);
  /* Unreliable ones are never held: refused at once. */
  CHECK_EQ_INT(publish(&A, CH, "stale", 0, NULL), H3WT_ERR_IO);
  run_for(600); /* timeout_ms 400 */
  for (i = 0; i < ok; ++i) {
    CHECK_EQ_INT(p[i].called, 1);
    CHECK_EQ_INT(p[i].err, H3WT_ERR_IO);
  }
  CHECK_EQ_INT(stats(&A).queued, 0);
  /* 12 publishes, and what was in flight when Redis died (a presence
     refresh, say). */
  CHECK(stats(&A).errors - errs >= 13);

  redis_start();
  CHECK(wait_link(&A, 3000));
  CHECK(wait_link(&B, 3000));
  run_for(50);
  CHECK_EQ_INT(A.nlinks, a_links + 2);
  CHECK_EQ_INT(A.links[a_links + 1], 1);
  CHECK_EQ_INT(B.links[b_links + 1], 1);
  CHECK(stats(&A).reconnects >= 1);
  /* Redis came back empty: a new epoch, resubscribed. */
  history(&B, CH, 1, E0, 20, 0, &h);
  CHECK_EQ_INT(h.recovered, 0);
  CHECK(h.epoch != E0);
  CHECK_EQ_INT(h.last, 0);
  n0 = B.nmsg;
  for (i = 0; i < 3; ++i) {
    memset(&p[i], 0, sizeof(p[i]));
    CHECK_EQ_INT(publish(&A, CH, "back", 1, &p[i]), 0);
  }
  CHECK(wait_msgs(&B, n0 + 3, 3000));
  for (i = 0; i < 3 && n0 + i < MAXMSG; ++i) {
    CHECK_EQ_INT(B.off[n0 + i], i + 1);
    CHECK(B.epoch[n0 + i] == h.epoch);
  }
}

static void sleeper(void *arg) {
  redisContext *c = admin();
  (void)arg;
  if (c) {
    freeReplyObject(redisCommand(c, "DEBUG SLEEP 2"));
    redisFree(c);
  }
}

static int ticks;
static void on_test_tick(uv_timer_t *t) {
  (void)t;
  ++ticks;
}

static void phase_sleep(void) {
  uv_thread_t th;
  uv_timer_t t;
  pubres p;
  size_t n0 = B.nmsg, a_links = A.nlinks;
  uint64_t t0;
  uv_timer_init(&T.loop, &t);
  uv_timer_start(&t, on_test_tick, 50, 50);
  ticks = 0;
  CHECK_EQ_INT(uv_thread_create(&th, sleeper, NULL), 0);
  run_for(100);
  memset(&p, 0, sizeof(p));
  t0 = h3wt_now_ns();
  CHECK_EQ_INT(publish(&A, CH, "asleep", 1, &p), 0);
  CHECK(run_until(&p.called, 3000));
  /* It timed out well before Redis woke up. */
  CHECK_EQ_INT(p.err, H3WT_ERR_IO);
  CHECK((h3wt_now_ns() - t0) / 1000000 < 1200);
  run_for(2200);
  uv_thread_join(&th);
  /* The loop kept running all along. */
  CHECK(ticks >= 35);
  uv_close((uv_handle_t *)&t, NULL);
  CHECK(wait_link(&A, 3000));
  CHECK(wait_link(&B, 3000));
  CHECK(A.nlinks >= a_links + 2);
  CHECK_EQ_INT(A.links[A.nlinks - 1], 1);
  /* The timed-out publish may have been made after all (its outcome is
     unknown); a new one arrives. */
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&A, CH, "awake", 1, &p), 0);
  CHECK(run_until(&p.called, 3000));
  CHECK_EQ_INT(p.err, 0);
  {
    uint64_t end = h3wt_now_ns() + 3000000000ULL;
    while ((B.nmsg == n0 || strcmp(B.data[B.nmsg - 1], "awake") != 0) &&
           h3wt_now_ns() < end) {
      uv_run(&T.loop, UV_RUN_ONCE);
    }
  }
  CHECK(B.nmsg > n0 && B.nmsg <= MAXMSG);
  if (B.nmsg > n0 && B.nmsg <= MAXMSG) {
    CHECK_EQ_STR(B.data[B.nmsg - 1], "awake");
    CHECK(B.off[B.nmsg - 1] == p.offset);
  }
}

static void phase_detach(void) {
  pubres p;
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(A.node->ops->join(A.node, CH, CHLEN, "bob", 3), 0);
  CHECK(wait_pres(&B, "+bob", 2000));
  CHECK_EQ_INT(publish(&A, CH, "last", 1, &p), 0);
  A.node->ops->detach(A.node);
  CHECK_EQ_INT(p.called, 1);
  CHECK_EQ_INT(p.err, H3WT_ERR_CLOSED);
  CHECK(wait_pres(&B, "-bob", 2000));
  CHECK_EQ_INT(p.called, 1);
}

/* SCRIPT FLUSH (or a failover to a Redis without the scripts): the next
   publish fails (NOSCRIPT), the node reconnects, loads them again, and
   the one after works. */
static void phase_noscript(void) {
  redisContext *c = admin();
  pubres p;
  size_t links = A.nlinks, b_links = B.nlinks;
  CHECK(c != NULL);
  if (!c) {
    return;
  }
  freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
  redisFree(c);
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&A, CH, "noscript", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK_EQ_INT(p.err, H3WT_ERR_IO);
  CHECK(wait_link(&A, 3000));
  run_for(20);
  CHECK_EQ_INT(A.nlinks, links + 2); /* 0 then 1 */
  /* B meets NOSCRIPT too if its next sweep (within presence_ttl / 3)
     comes before A loaded the scripts again (they are the server's, not
     a connection's): let that happen and B come back before publishing,
     or B could miss the message. */
  run_for(300);
  CHECK(wait_link(&B, 3000));
  run_for(20);
  CHECK(B.nlinks == b_links || B.nlinks == b_links + 2);
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&A, CH, "script", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK_EQ_INT(p.err, 0);
  CHECK(p.epoch == E0);
  CHECK_EQ_INT(p.offset, 22);
  CHECK(wait_msgs(&B, 22 + 1, 2000)); /* 20, r1 of rewatch, script */
}

/* Unwatch then watch again before Redis confirmed the UNSUBSCRIBE, and
   watch then unwatch then watch before it confirmed the SUBSCRIBE: the
   node ends subscribed once, and nothing is lost or doubled. */
static void phase_rewatch(void) {
  histres h;
  pubres p;
  size_t n0;
  B.node->ops->unwatch(B.node, CH, CHLEN);
  CHECK_EQ_INT(B.node->ops->watch(B.node, CH, CHLEN), 0);
  CHECK_EQ_INT(B.node->ops->watch(B.node, "fresh", 5), 0);
  B.node->ops->unwatch(B.node, "fresh", 5);
  CHECK_EQ_INT(B.node->ops->watch(B.node, "fresh", 5), 0);
  history(&B, CH, 0, 0, 0, 0, &h);
  history(&B, "fresh", 0, 0, 0, 0, &h);
  n0 = B.nmsg;
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&A, CH, "r1", 1, &p), 0);
  CHECK_EQ_INT(publish(&A, "fresh", "f1", 1, NULL), 0);
  CHECK(wait_msgs(&B, n0 + 2, 2000));
  run_for(100);
  CHECK_EQ_INT(B.nmsg, n0 + 2);
  B.node->ops->unwatch(B.node, "fresh", 5);
}

/* While the link is down: members() and history() wait and fail with
   H3WT_ERR_IO after timeout_ms; detach() fails what still waits with
   H3WT_ERR_CLOSED, once. */
static void phase_down_requests(rec *r) {
  memres m;
  histres h;
  pubres p;
  memset(&m, 0, sizeof(m));
  memset(&h, 0, sizeof(h));
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(r->node->ops->members(r->node, CH, CHLEN, on_members, &m), 0);
  CHECK_EQ_INT(
      r->node->ops->history(r->node, CH, CHLEN, 0, 0, 0, 0, on_history, &h), 0);
  CHECK(run_until(&h.called, 2000));
  CHECK_EQ_INT(m.called, 1);
  CHECK_EQ_INT(m.err, H3WT_ERR_IO);
  CHECK_EQ_INT(h.err, H3WT_ERR_IO);
  CHECK_EQ_INT(publish(r, CH, "never", 1, &p), 0);
  r->node->ops->detach(r->node);
  r->node = NULL;
  CHECK_EQ_INT(p.called, 1);
  CHECK_EQ_INT(p.err, H3WT_ERR_CLOSED);
}

/* A password (from the environment) and a database from the URL; a wrong
   password never links, and its requests fail. */
static void phase_auth(void) {
  redisContext *c = admin();
  redisReply *rep;
  h3wt_broker *good = NULL, *bad = NULL, *saved = T.broker;
  rec G, W;
  pubres p;
  char url[96], key[96];
  CHECK(c != NULL);
  if (!c) {
    return;
  }
  freeReplyObject(redisCommand(c, "CONFIG SET requirepass s3cr%%t"));
  T.set.url = url;
  /* localhost: ::1 first on most systems, where this redis-server does
     not listen (--bind 127.0.0.1). */
  snprintf(url, sizeof(url), "redis://localhost:%d/3", T.port);
  setenv("H3WT_REDIS_PASSWORD", "s3cr%t", 1);
  CHECK_EQ_INT(h3wt_broker_redis_new(&good, &T.set), 0);
  unsetenv("H3WT_REDIS_PASSWORD");
  snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", T.port);
  CHECK_EQ_INT(h3wt_broker_redis_new(&bad, &T.set), 0);
  T.set.url = T.url;
  T.broker = good;
  attach(&G, "G", 10, 0);
  T.broker = bad;
  attach(&W, "W", 10, 0);
  T.broker = saved;
  CHECK(wait_link(&G, 3000));
  memset(&p, 0, sizeof(p));
  CHECK_EQ_INT(publish(&G, "authed", "x", 1, &p), 0);
  CHECK(run_until(&p.called, 2000));
  CHECK_EQ_INT(p.err, 0);
  /* The keys went to database 3. */
  freeReplyObject(redisCommand(c, "AUTH s3cr%%t"));
  freeReplyObject(redisCommand(c, "SELECT 3"));
  snprintf(key, sizeof(key), "%sm:authed", T.prefix);
  rep = redisCommand(c, "EXISTS %s", key);
  CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
  freeReplyObject(rep);
  freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", ""));
  redisFree(c);
  CHECK_EQ_INT(link_up(&W), 0);
  /* The first attempt fails: link 0, once, however many attempts. */
  {
    uint64_t end = h3wt_now_ns() + 3000000000ULL;
    while (W.nlinks == 0 && h3wt_now_ns() < end) {
      uv_run(&T.loop, UV_RUN_ONCE);
    }
  }
  CHECK_EQ_INT(W.nlinks, 1);
  CHECK_EQ_INT(W.links[0], 0);
  phase_down_requests(&W);
  G.node->ops->detach(G.node);
  run_for(50);
  h3wt_broker_del(good);
  h3wt_broker_del(bad);
}

TEST(redis_broker) {
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  keep_loop();
  redis_start();
  make_broker();
  attach(&A, "A", 10, 0);
  attach(&B, "B", 10, 0);
  attach(&C, "C", 10, 1000);
  CHECK(wait_link(&A, 3000));
  CHECK(wait_link(&B, 3000));
  CHECK(wait_link(&C, 3000));
  CHECK_EQ_INT(A.nlinks, 0); /* the first connection is no event */
  phase_messages();
  phase_history();
  phase_age();
  phase_presence();
  phase_garbage();
  phase_rewatch();
  phase_noscript();
  phase_restart();
  phase_sleep();
  phase_detach();
  phase_auth();
  B.node->ops->detach(B.node);
  C.node->ops->detach(C.node);
  keep_loop_end();
  uv_run(&T.loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  h3wt_broker_del(T.broker);
  redis_kill();
}

/* ---- a hostile Redis ---------------------------------------------------- */
/* A fake server on another thread: enough of RESP for the handshake, the
   subscriptions and PUBLISH (so the heartbeat comes round), and, to
   EVALSHA, the next reply of a list of malformed ones per script.  Every
   malformed reply must fail its request with H3WT_ERR_IO (counted), never
   reach the hub as data, never crash. */

#define FAKE_FDS 16

static const char *const bad_publish[] = {
    "*2\r\n:5\r\n:1\r\n",                          /* epoch not a string */
    "*2\r\n$3\r\nabc\r\n:1\r\n",                   /* epoch not digits */
    "*2\r\n$20\r\n99999999999999999999\r\n:1\r\n", /* epoch past 2^62 */
    "*2\r\n$19\r\n4611686018427387904\r\n:1\r\n",  /* 2^62 exactly */
    "*2\r\n$1\r\n7\r\n:0\r\n",                     /* offset 0 */
    "*2\r\n$1\r\n7\r\n:-3\r\n",                    /* negative */
    "*2\r\n$1\r\n7\r\n:9007199254740993\r\n",      /* past 2^53 */
    "*1\r\n$1\r\n7\r\n",                           /* short */
    "*3\r\n$1\r\n7\r\n:1\r\n:1\r\n",               /* long */
    "$5\r\nhello\r\n",                             /* not an array */
    "-ERR boom\r\n",                               /* an error */
};
static const char *const bad_history[] = {
    "*3\r\n:2\r\n$1\r\n7\r\n:0\r\n",                  /* recovered 2 */
    "*4\r\n:0\r\n$1\r\n7\r\n:3\r\n:3\r\n",            /* half an entry */
    "*5\r\n:0\r\n$1\r\n7\r\n:3\r\n:2\r\n$1\r\nx\r\n", /* not ending at last */
    "*5\r\n:1\r\n$1\r\n7\r\n:3\r\n:3\r\n$1\r\nx\r\n", /* recovery not from
                                                         since + 1 */
    "*5\r\n:0\r\n$1\r\n7\r\n:1\r\n:1\r\n:9\r\n",      /* payload integer */
    "*7\r\n:0\r\n$1\r\n7\r\n:1\r\n:1\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n",
    /* more entries than offsets */
    "*3\r\n:0\r\n$1\r\n7\r\n:-1\r\n", /* last negative */
    "*3\r\n:0\r\n:7\r\n:0\r\n",       /* epoch integer */
    "*2\r\n:0\r\n$1\r\n7\r\n",        /* short */
};
static const char *const bad_members[] = {
    "*1\r\n:1\r\n",     /* not a string */
    "*1\r\n$0\r\n\r\n", /* empty */
    ":1\r\n",           /* not an array */
};
#define NBAD(A) (sizeof(A) / sizeof((A)[0]))
static const char good_publish[] = "*2\r\n$1\r\n7\r\n:1\r\n";
static const char good_history[] =
    "*5\r\n:0\r\n$1\r\n7\r\n:4\r\n:4\r\n$3\r\nabc\r\n";
static const char good_members[] = "*2\r\n$1\r\na\r\n$1\r\nb\r\n";

static struct {
  int lfd, port;
  atomic_int stop;
  int fd[FAKE_FDS];
  char in[FAKE_FDS][8192];
  size_t inlen[FAKE_FDS];
  char subch[FAKE_FDS][128]; /* one subscription per connection is enough
                                here (the node channel, one channel) */
  size_t nloaded[FAKE_FDS];  /* SCRIPT LOADs answered */
  size_t next[3];
} F;

static void fake_write(int fd, const char *s, size_t len) {
  while (len) {
    ssize_t w = write(fd, s, len);
    if (w <= 0) {
      return;
    }
    s += w;
    len -= (size_t)w;
  }
}

static void fake_bulk(char *out, size_t *olen, const char *s, size_t len) {
  *olen += (size_t)sprintf(out + *olen, "$%zu\r\n", len);
  memcpy(out + *olen, s, len);
  *olen += len;
  memcpy(out + *olen, "\r\n", 2);
  *olen += 2;
}

static int is_cmd(const char *a, size_t len, const char *name) {
  return len == strlen(name) && strncasecmp(a, name, len) == 0;
}

/* One command of connection i: argv[0..argc). */
static void fake_command(int i, int argc, const char **argv,
                         const size_t *lens) {
  char out[1024];
  size_t olen = 0;
  int j;
  if (argc >= 2 && is_cmd(argv[0], lens[0], "SCRIPT")) {
    /* sha "0000..." for the first script loaded, "1111..." next. */
    char sha[40];
    memset(sha, '0' + (int)(F.nloaded[i]++ % 4), 40);
    fake_bulk(out, &olen, sha, 40);
  } else if (argc == 2 && is_cmd(argv[0], lens[0], "SUBSCRIBE") &&
             lens[1] < sizeof(F.subch[0])) {
    memcpy(F.subch[i], argv[1], lens[1]);
    F.subch[i][lens[1]] = '\0';
    olen = (size_t)sprintf(out, "*3\r\n");
    fake_bulk(out, &olen, "subscribe", 9);
    fake_bulk(out, &olen, argv[1], lens[1]);
    olen += (size_t)sprintf(out + olen, ":1\r\n");
  } else if (argc == 3 && is_cmd(argv[0], lens[0], "PUBLISH")) {
    for (j = 0; j < FAKE_FDS; ++j) {
      if (F.fd[j] >= 0 && strlen(F.subch[j]) == lens[1] &&
          memcmp(F.subch[j], argv[1], lens[1]) == 0 && lens[2] < 512) {
        char msg[1024];
        size_t mlen = (size_t)sprintf(msg, "*3\r\n");
        fake_bulk(msg, &mlen, "message", 7);
        fake_bulk(msg, &mlen, argv[1], lens[1]);
        fake_bulk(msg, &mlen, argv[2], lens[2]);
        fake_write(F.fd[j], msg, mlen);
      }
    }
    olen = (size_t)sprintf(out, ":1\r\n");
  } else if (argc >= 2 && is_cmd(argv[0], lens[0], "EVALSHA")) {
    int k = argv[1][0] - '0';
    const char *r = ":0\r\n";
    if (k == 0) {
      r = F.next[0] < NBAD(bad_publish) ? bad_publish[F.next[0]++]
                                        : good_publish;
    } else if (k == 1) {
      r = F.next[1] < NBAD(bad_history) ? bad_history[F.next[1]++]
                                        : good_history;
    } else if (k == 2) {
      r = F.next[2] < NBAD(bad_members) ? bad_members[F.next[2]++]
                                        : good_members;
    }
    olen = strlen(r);
    memcpy(out, r, olen);
  } else {
    olen = (size_t)sprintf(out, "+OK\r\n");
  }
  fake_write(F.fd[i], out, olen);
}

/* Parses whole commands (arrays of bulk strings) out of connection i's
   buffer; what is incomplete waits. */
static void fake_parse(int i) {
  for (;;) {
    const char *p = F.in[i], *end = F.in[i] + F.inlen[i];
    const char *argv[64];
    size_t lens[64];
    long argc, k;
    char *e;
    if (p == end || *p != '*') {
      return;
    }
    argc = strtol(p + 1, &e, 10);
    if (e + 2 > end || argc < 1 || argc > 64) {
      return;
    }
    p = e + 2;
    for (k = 0; k < argc; ++k) {
      long len;
      if (p >= end || *p != '$') {
        return;
      }
      len = strtol(p + 1, &e, 10);
      if (e + 2 > end || len < 0 || e + 2 + len + 2 > end) {
        return;
      }
      argv[k] = e + 2;
      lens[k] = (size_t)len;
      p = e + 2 + len + 2;
    }
    fake_command(i, (int)argc, argv, lens);
    memmove(F.in[i], p, (size_t)(end - p));
    F.inlen[i] = (size_t)(end - p);
  }
}

static void fake_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&F.stop)) {
    struct pollfd pf[FAKE_FDS + 1];
    int n = 0, i, c;
    pf[n].fd = F.lfd;
    pf[n++].events = POLLIN;
    for (i = 0; i < FAKE_FDS; ++i) {
      pf[n].fd = F.fd[i];
      pf[n++].events = POLLIN;
    }
    if (poll(pf, (nfds_t)n, 20) <= 0) {
      continue;
    }
    if (pf[0].revents & POLLIN) {
      c = accept(F.lfd, NULL, NULL);
      for (i = 0; c >= 0 && i < FAKE_FDS && F.fd[i] >= 0; ++i) {
      }
      if (c >= 0 && i < FAKE_FDS) {
        F.fd[i] = c;
        F.inlen[i] = 0;
        F.nloaded[i] = 0;
        F.subch[i][0] = '\0';
      } else if (c >= 0) {
        close(c);
      }
    }
    for (i = 0; i < FAKE_FDS; ++i) {
      ssize_t r;
      if (F.fd[i] < 0 || !(pf[i + 1].revents & (POLLIN | POLLHUP))) {
        continue;
      }
      r = read(F.fd[i], F.in[i] + F.inlen[i], sizeof(F.in[0]) - F.inlen[i]);
      if (r <= 0) {
        close(F.fd[i]);
        F.fd[i] = -1;
        continue;
      }
      F.inlen[i] += (size_t)r;
      fake_parse(i);
    }
  }
}

TEST(hostile_replies) {
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  uv_thread_t th;
  h3wt_broker *saved = T.broker, *fake = NULL;
  h3wt_broker_redis_settings set;
  rec H;
  char url[64];
  size_t i;
  uint64_t errs;
  memset(&F, 0, sizeof(F));
  for (i = 0; i < FAKE_FDS; ++i) {
    F.fd[i] = -1;
  }
  F.lfd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ_INT(bind(F.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  CHECK_EQ_INT(listen(F.lfd, 8), 0);
  CHECK_EQ_INT(getsockname(F.lfd, (struct sockaddr *)&a, &alen), 0);
  CHECK_EQ_INT(uv_thread_create(&th, fake_thread, NULL), 0);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  keep_loop();
  h3wt_broker_redis_settings_default(&set);
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));
  set.url = url;
  set.timeout_ms = 400;
  CHECK_EQ_INT(h3wt_broker_redis_new(&fake, &set), 0);
  T.broker = fake;
  attach(&H, "H", 10, 0);
  T.broker = saved;
  CHECK(wait_link(&H, 3000));
  errs = stats(&H).errors;
  for (i = 0; i <= NBAD(bad_publish); ++i) {
    pubres p;
    memset(&p, 0, sizeof(p));
    TEST_CONTEXT("publish reply %zu", i);
    CHECK_EQ_INT(publish(&H, "x", "data", 1, &p), 0);
    CHECK(run_until(&p.called, 2000));
    CHECK_EQ_INT(p.err, i < NBAD(bad_publish) ? H3WT_ERR_IO : 0);
    if (i == NBAD(bad_publish)) {
      CHECK_EQ_INT(p.epoch, 7);
      CHECK_EQ_INT(p.offset, 1);
    }
  }
  for (i = 0; i <= NBAD(bad_history); ++i) {
    histres h;
    memset(&h, 0, sizeof(h));
    TEST_CONTEXT("history reply %zu", i);
    CHECK_EQ_INT(
        H.node->ops->history(H.node, "x", 1, 0, 0, 0, 10, on_history, &h), 0);
    CHECK(run_until(&h.called, 2000));
    CHECK_EQ_INT(h.err, i < NBAD(bad_history) ? H3WT_ERR_IO : 0);
    if (i == NBAD(bad_history)) {
      CHECK_EQ_INT(h.n, 1);
      CHECK_EQ_INT(h.off[0], 4);
      CHECK_EQ_STR(h.data[0], "abc");
    }
  }
  for (i = 0; i <= NBAD(bad_members); ++i) {
    memres m;
    memset(&m, 0, sizeof(m));
    TEST_CONTEXT("members reply %zu", i);
    CHECK_EQ_INT(H.node->ops->members(H.node, "x", 1, on_members, &m), 0);
    CHECK(run_until(&m.called, 2000));
    CHECK_EQ_INT(m.err, i < NBAD(bad_members) ? H3WT_ERR_IO : 0);
    if (i == NBAD(bad_members)) {
      CHECK_EQ_INT(m.n, 2);
    }
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT(stats(&H).errors - errs,
               NBAD(bad_publish) + NBAD(bad_history) + NBAD(bad_members));
  /* None of it dropped the link (the connection itself is sound). */
  CHECK_EQ_INT(H.nlinks, 0);
  H.node->ops->detach(H.node);
  keep_loop_end();
  uv_run(&T.loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  h3wt_broker_del(fake);
  atomic_store(&F.stop, 1);
  uv_thread_join(&th);
  for (i = 0; i < FAKE_FDS; ++i) {
    if (F.fd[i] >= 0) {
      close(F.fd[i]);
    }
  }
  close(F.lfd);
}

static const h3wt_test_case tests[] = {
    TEST_ENTRY(redis_broker),
    TEST_ENTRY(hostile_replies),
};

static void log_cb(h3wt_log_level level, const char *component, const char *msg,
                   void *ud) {
  (void)ud;
  fprintf(stderr, "[%d %s] %s\n", (int)level, component, msg);
}

int main(int argc, char **argv) {
  h3wt_broker *probe = NULL;
  int rv;
  if (argc == 5 && strcmp(argv[1], "child") == 0) {
    return child_main(atoi(argv[2]), argv[3], argv[4]);
  }
  T.exe = argv[0];
  if (!have_redis_server() ||
      h3wt_broker_redis_new(&probe, NULL) == H3WT_ERR_INVALID_STATE) {
    fprintf(stderr, "redis-server or hiredis missing%s\n",
            getenv("CI") ? ": a failure under CI" : ": skipped");
    return getenv("CI") ? 1 : 77;
  }
  h3wt_broker_del(probe);
  signal(SIGPIPE, SIG_IGN);
  T.log.cb = log_cb;
  T.log.level = getenv("H3WT_TEST_VERBOSE") ? H3WT_LOG_DEBUG : H3WT_LOG_WARN;
  T.port = redis_spawn_free_port();
  snprintf(T.prefix, sizeof(T.prefix), "t%d:", (int)getpid());
  rv = TEST_MAIN(argc, argv, tests);
  redis_kill();
  return rv;
}
