/*
 * h3wt-bench: a load generator on the h3wt client library.  One libuv loop,
 * many h3wt_client connections, one figure per run.
 *
 *   h3wt-bench MODE [options] https://host:port[/path]
 *
 * Modes (what one "op" is):
 *   dgram      S WebTransport sessions, W datagrams in flight each, payload
 *              P: echoes per second and their round-trip times (op: echo)
 *   stream     one bidi stream echoing B bytes: bytes per second (op: MB)
 *   download   one GET of a large file: bytes per second (op: MB)
 *   get        C connections with R concurrent small GETs each: requests
 *              per second (op: request)
 *   handshake  K connections in progress at once, each opening one
 *              WebTransport session and closing it: connections per second
 *              and their setup times (op: connection); with --resume each
 *              resumes the TLS session of the first one (no certificate,
 *              no signature: what a returning client costs)
 *   idle       N sessions held open over N/M connections: the server's
 *              resident memory per session (op: session)
 *   fanout     N subscribers (sessions over N/M connections) in one channel
 *              of the channels route (docs/channels.md), one more session
 *              publishing R messages/s into it, reliable or unreliable:
 *              deliveries per second, publish-to-delivery latency, order
 *              and losses (op: one message delivered to one subscriber)
 *   chmem      N sessions over N/M connections on the channels route, each
 *              with its channel stream open: the server's resident memory
 *              per subscription when all of them join one channel, beyond
 *              the sessions and streams (op: subscription); then every
 *              session unsubscribes and subscribes again, as a control
 *
 * With --server-pid the server's CPU time (utime + stime, /proc/PID/stat)
 * over the measurement is divided by the ops.  Output: one JSON line, then
 * one human line.  Exit 0 when the run completed without errors.
 *
 * The hot paths (datagram echo, request completion) allocate nothing here:
 * datagrams live in a fixed window of slots per session, RTTs in a fixed
 * histogram, the payload in one buffer.  (The library copies what it
 * queues.)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "h3wt/h3wt.h"
#include "h3wt_url.h"
#include "bench_common.h"
/* fanout speaks the channels wire format with the library's codec,
   compiled into this program (it is not public API). */
#include "../lib/h3wt_chproto.h"

#define DG_HDR 24             /* session, slot, generation, 0, send time */
#define DG_LOSS_NS 200000000u /* an unanswered datagram is resent after */
#define TICK_MS 5
#define CHUNK 65536 /* bytes per stream write */
#define MB 1e6      /* throughput figures are per 10^6 bytes */
#define FO_HDR 16   /* fanout payload: sequence number, send time */
#define FO_TICK_MS 1
#define FO_DRAIN_MS 3000 /* after the last publication, wait at most */
#define CM_TICK_MS 10

enum {
  M_DGRAM,
  M_STREAM,
  M_DOWNLOAD,
  M_GET,
  M_HANDSHAKE,
  M_IDLE,
  M_FANOUT,
  M_CHMEM,
};

static const char *const mode_names[] = {"dgram",     "stream", "download",
                                         "get",       "handshake", "idle",
                                         "fanout",    "chmem"};

/* The run's phases, in order. */
enum {
  P_SETUP,   /* connecting, opening sessions */
  P_WARMUP,  /* load running, not counted yet */
  P_MEASURE, /* load running and counted */
  P_DRAIN,   /* fanout: publishing stopped, the last deliveries arriving */
  P_DONE,    /* closing everything */
};

typedef struct opts {
  int mode;
  char host[256];
  uint16_t port;
  const char *path;
  uint32_t conns, sessions, window, payload, requests, inflight, per_conn;
  uint64_t bytes, count;
  double duration, warmup, settle, timeout;
  double msg_rate;     /* fanout: publications per second */
  int unreliable;      /* fanout: datagrams instead of PUBLISH frames */
  const char *channel; /* fanout: the channel's name */
  uint64_t presence_max; /* chmem: the server's channels_presence_events_max */
  int per_conn_set;
  long server_pid;
  const char *label;
  int verbose;
  int resume; /* handshake: resume a saved session */
} opts;

typedef struct bench bench;
typedef struct bconn bconn;

/* One datagram of the window. */
typedef struct slot {
  uint64_t sent_ns; /* 0: not in flight */
  uint32_t gen;
  uint8_t blocked; /* the send queue was full: resend on the next tick */
} slot;

typedef struct bsess {
  bconn *c;
  h3wt_session *s;
  uint32_t idx;
  int ready, ended, counted;
  slot *slots;
  /* stream mode */
  h3wt_stream *st;
  uint64_t tx, rx;
  int fin_sent;
  /* fanout: the channel stream's parser, the subscription, what arrived */
  h3wt_ch_parser *parser;
  uint64_t sub;
  int subscribed, is_pub;
  uint64_t next; /* the sequence number expected next */
  uint64_t got;  /* deliveries received, over the whole run */
} bsess;

/* One request slot of a connection (get, download): the exchange's status,
   so that only complete 200 answers count.  R slots per connection, reused:
   nothing is allocated per request. */
typedef struct breq {
  bconn *c;
  int status; /* 0 until the response headers */
} breq;

struct bconn {
  bench *b;
  breq *reqs; /* get: --requests slots; download: one */
  h3wt_client *cl; /* NULL when no connection is open in this slot */
  uint32_t idx;
  int connected;
  uint32_t first_sess, nsess, nready, ndone; /* its sessions in b->sess */
  uint64_t started_ns;
  uint64_t ops;     /* get, dgram: completed while measuring */
  h3wt_session *hs; /* handshake mode: the session */
  int hs_ready;
};

struct bench {
  opts o;
  uv_loop_t *loop;
  h3wt_client_settings cs;
  bconn *conns;
  uint32_t nconns;
  bsess *sess;
  uint32_t nsess;
  uint32_t live;         /* clients between new and on_closed */
  uint32_t nconnected;   /* get: connections ready */
  uint32_t nready;       /* sessions ready (dgram, idle) */
  uint32_t nsess_done;   /* idle: sessions ready or failed */
  uint32_t next_dial;    /* idle: next connection to open */
  uint32_t dialing;      /* idle: connections not yet all ready */
  int phase;
  uv_timer_t tick, timer, deadline;
  uv_check_t reaper;
  uv_timer_t wake; /* keeps the loop turning while clients await freeing */
  uint64_t iter;
  /* Clients after on_closed, freed two loop iterations later, once libuv
     has run their close callbacks: on_closed comes while the client's
     handles are still closing, and h3wt_client_del() frees them. */
  h3wt_client **dead;
  uint64_t *dead_iter;
  size_t dead_head, dead_n, dead_cap;
  bench_snap a, z;
  int64_t rss_before, rss_after;
  uint64_t ops, bytes, errors, lost, blocked, stale, started;
  uint64_t bad_status; /* get, download: answers other than 200 */
  bench_hist hist;
  /* fanout */
  uint32_t nsubscribed;   /* sessions (publisher included) subscribed */
  uint64_t pub_seq;       /* publications sent (the next one's number) */
  uint64_t pub_start_ns;  /* the schedule's origin */
  uint64_t drain_until_ns;
  uint64_t violations;    /* reliable: out of order, twice, or missing */
  uint64_t reordered;     /* unreliable: arrived after a later one */
  /* chmem: the steps (CM_*), each ended by a quiet server */
  int cm_step;
  uint32_t cm_replies, cm_next, cm_outstanding;
  int cm_waiting;           /* every reply in: waiting for quiet */
  uint64_t cm_rx;           /* channel stream bytes received */
  uint64_t cm_last_rx_ns;   /* when the last of them arrived */
  uint64_t cm_step_ns;      /* when the step began */
  uint64_t joins, leaves;   /* presence frames received */
  int64_t cm_rss[5];        /* KiB: start, base, sub, unsub, resub */
  double cm_secs[4];        /* wall time of each step to quiet */
  double cm_cpu[4];         /* server CPU (us) of each step */
  bench_snap cm_snap;
  /* handshake --resume: the session every connection resumes (the first
     one's), and how many measured handshakes did resume */
  uint8_t session[24576];
  size_t session_len;
  uint64_t resumed;
  int timed_out, handles_closed;
  uint8_t buf[CHUNK];
};

static void finish(bench *b);


static void error(bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Counts an error; prints the first few. */
static void error(bench *b, const char *fmt, ...) {
  va_list ap;
  if (b->errors++ >= 5 && !b->o.verbose) {
    return;
  }
  fprintf(stderr, "h3wt-bench: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
}

static int measuring(const bench *b) {
  return b->phase == P_MEASURE;
}

/* ---- connections ------------------------------------------------------------ */

/* Repeats every millisecond while clients await freeing.  A one-shot timer
   is not enough: if it fires in the timers phase of the iteration after
   bury(), before that iteration's poll, nothing is left to bound the poll
   and the loop sleeps forever with the client unfreed (seen: stream and
   handshake runs hanging at exit). */
static void wake_cb(uv_timer_t *t) {
  (void)t; /* the loop turned: reaper_cb runs after this iteration's poll */
}

static void bury(bench *b, h3wt_client *cl) {
  if (b->dead_n == b->dead_cap) {
    size_t cap = b->dead_cap ? b->dead_cap * 2 : 64;
    h3wt_client **d = malloc(cap * sizeof(*d));
    uint64_t *it = malloc(cap * sizeof(*it));
    if (!d || !it) {
      /* Leak rather than free too early. */
      free(d);
      free(it);
      return;
    }
    for (size_t i = 0; i < b->dead_n; ++i) {
      size_t k = (b->dead_head + i) % (b->dead_cap ? b->dead_cap : 1);
      d[i] = b->dead[k];
      it[i] = b->dead_iter[k];
    }
    free(b->dead);
    free(b->dead_iter);
    b->dead = d;
    b->dead_iter = it;
    b->dead_head = 0;
    b->dead_cap = cap;
  }
  size_t k = (b->dead_head + b->dead_n) % b->dead_cap;
  b->dead[k] = cl;
  b->dead_iter[k] = b->iter;
  ++b->dead_n;
  if (!uv_is_active((uv_handle_t *)&b->wake)) {
    uv_timer_start(&b->wake, wake_cb, 1, 1);
  }
}

static void handle_closed(uv_handle_t *h) {
  bench *b = h->data;
  ++b->handles_closed;
}

static void reaper_cb(uv_check_t *h) {
  bench *b = h->data;
  ++b->iter;
  while (b->dead_n && b->dead_iter[b->dead_head] + 2 <= b->iter) {
    h3wt_client_del(b->dead[b->dead_head]);
    b->dead_head = (b->dead_head + 1) % b->dead_cap;
    --b->dead_n;
  }
  if (b->dead_n == 0) {
    uv_timer_stop(&b->wake);
  }
  if (b->phase == P_DONE && b->live == 0 && b->dead_n == 0 &&
      !uv_is_closing((uv_handle_t *)&b->reaper)) {
    uv_close((uv_handle_t *)&b->tick, handle_closed);
    uv_close((uv_handle_t *)&b->timer, handle_closed);
    uv_close((uv_handle_t *)&b->deadline, handle_closed);
    uv_close((uv_handle_t *)&b->reaper, handle_closed);
    uv_close((uv_handle_t *)&b->wake, handle_closed);
  }
}

static void on_connected(h3wt_client *cl, void *ud);
static void on_closed(h3wt_client *cl, int err, void *ud);
static const h3wt_client_callbacks client_cbs = {on_connected, on_closed};

/* Opens a connection in slot c.  Returns 0 or an H3WT_ERR_* code. */
static int conn_open(bconn *c) {
  bench *b = c->b;
  h3wt_client *cl = NULL;
  c->connected = 0;
  c->nready = c->ndone = 0;
  c->hs = NULL;
  c->hs_ready = 0;
  c->started_ns = bench_now_ns();
  b->cs.session = b->o.resume && b->session_len ? b->session : NULL;
  b->cs.session_len = b->cs.session ? b->session_len : 0;
  int rv = h3wt_client_new(&cl, b->loop, &b->cs, &client_cbs, c);
  if (rv != 0) {
    if (cl) {
      bury(b, cl); /* parked by the library: freed after its close */
    }
    error(b, "connection %u: %s", c->idx, h3wt_strerror(rv));
    return rv;
  }
  c->cl = cl;
  ++b->live;
  ++b->started;
  return 0;
}

static void conn_close(bconn *c) {
  if (c->cl) {
    h3wt_client_close(c->cl); /* on_closed runs inside */
  }
}

/* ---- dgram ------------------------------------------------------------------ */

static void dg_send(bench *b, bsess *ss, uint32_t si) {
  slot *sl = &ss->slots[si];
  sl->gen++;
  sl->sent_ns = bench_now_ns();
  bench_put32(b->buf, ss->idx);
  bench_put32(b->buf + 4, si);
  bench_put32(b->buf + 8, sl->gen);
  bench_put32(b->buf + 12, 0);
  bench_put64(b->buf + 16, sl->sent_ns);
  int rv = h3wt_session_send_datagram(ss->s, b->buf, b->o.payload);
  if (rv == H3WT_ERR_DGRAM_DROPPED) {
    sl->blocked = 1; /* dropped by the library: again on the next tick */
    ++b->blocked;
    return;
  }
  sl->blocked = 0;
  if (rv != 0) {
    sl->sent_ns = 0;
    error(b, "session %u: datagram: %s", ss->idx, h3wt_strerror(rv));
  }
}

static void dg_on_datagram(h3wt_session *s, const uint8_t *d, size_t len,
                           void *rd) {
  bsess *ss = rd;
  bench *b = ss->c->b;
  uint64_t now = bench_now_ns();
  if (len != b->o.payload || bench_get32(d) != ss->idx ||
      bench_get32(d + 4) >= b->o.window) {
    ++b->stale;
    return;
  }
  uint32_t si = bench_get32(d + 4);
  slot *sl = &ss->slots[si];
  if (bench_get32(d + 8) != sl->gen || sl->sent_ns == 0 ||
      bench_get64(d + 16) != sl->sent_ns) {
    ++b->stale; /* the echo of one already given up on */
    return;
  }
  if (measuring(b)) {
    ++b->ops;
    ++ss->c->ops;
    bench_hist_add(&b->hist, now - sl->sent_ns);
  }
  if (b->phase == P_DONE) {
    sl->sent_ns = 0;
    return;
  }
  dg_send(b, ss, si);
}

/* Every TICK_MS: resend what the queue refused and what looks lost. */
static void dg_tick(bench *b) {
  uint64_t now = bench_now_ns();
  for (uint32_t i = 0; i < b->nsess; ++i) {
    bsess *ss = &b->sess[i];
    if (!ss->ready || ss->ended) {
      continue;
    }
    for (uint32_t si = 0; si < b->o.window; ++si) {
      slot *sl = &ss->slots[si];
      if (sl->blocked) {
        dg_send(b, ss, si);
      } else if (sl->sent_ns && now - sl->sent_ns > DG_LOSS_NS) {
        if (measuring(b)) {
          ++b->lost;
        }
        dg_send(b, ss, si);
      }
    }
  }
}

/* ---- stream ----------------------------------------------------------------- */

static void st_pump(bench *b, bsess *ss) {
  while (ss->tx < b->o.bytes) {
    size_t n = b->o.bytes - ss->tx < CHUNK ? (size_t)(b->o.bytes - ss->tx)
                                           : CHUNK;
    int rv = h3wt_stream_write(ss->st, b->buf, n);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return; /* on_stream_writable resumes */
    }
    if (rv != 0) {
      error(b, "stream write at %" PRIu64 ": %s", ss->tx, h3wt_strerror(rv));
      finish(b);
      return;
    }
    ss->tx += n;
  }
  if (!ss->fin_sent) {
    ss->fin_sent = 1;
    int rv = h3wt_stream_finish(ss->st);
    if (rv != 0) {
      error(b, "stream finish: %s", h3wt_strerror(rv));
      finish(b);
    }
  }
}

static void st_start(bench *b, bsess *ss) {
  int rv = h3wt_session_open_stream(ss->s, 1, &ss->st);
  if (rv != 0) {
    error(b, "cannot open a stream: %s", h3wt_strerror(rv));
    finish(b);
    return;
  }
  h3wt_stream_set_data(ss->st, ss);
  b->phase = P_MEASURE;
  bench_snap_take(&b->a, b->o.server_pid);
  st_pump(b, ss);
}

static void st_on_data(h3wt_stream *st, const uint8_t *data, size_t len,
                       int fin, void *rd) {
  bsess *ss = h3wt_stream_get_data(st);
  bench *b;
  if (!ss) {
    return;
  }
  b = ss->c->b;
  ss->rx += len;
  if (fin && b->phase == P_MEASURE) {
    bench_snap_take(&b->z, b->o.server_pid);
    b->bytes = ss->rx;
    if (ss->rx != b->o.bytes) {
      error(b, "the echo ended after %" PRIu64 " of %" PRIu64 " bytes",
            ss->rx, b->o.bytes);
    } else {
      b->ops = 1; /* the figure is bytes/s; this says it is complete */
    }
    finish(b);
  }
}

static void st_on_writable(h3wt_stream *st, void *rd) {
  bsess *ss = h3wt_stream_get_data(st);
  if (ss && ss->c->b->phase == P_MEASURE) {
    st_pump(ss->c->b, ss);
  }
}

static void st_on_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  bsess *ss = h3wt_stream_get_data(st);
  if (ss && ss->c->b->phase != P_DONE) {
    error(ss->c->b, "the server reset the stream (code 0x%" PRIx32 ")", code);
    finish(ss->c->b);
  }
}

static void st_on_close(h3wt_stream *st, void *rd) {
  bsess *ss = h3wt_stream_get_data(st);
  if (ss) {
    h3wt_stream_set_data(st, NULL);
    ss->st = NULL;
    if (ss->c->b->phase != P_DONE) {
      error(ss->c->b, "the stream closed before the echo ended");
      finish(ss->c->b);
    }
  }
}

/* ---- sessions (dgram, stream, idle) ------------------------------------------ */

static void begin_warmup(bench *b);
static void idle_sess_mark(bsess *ss);
static void idle_check(bench *b);
static void fo_ready(bench *b, bsess *ss);
static const h3wt_session_handler fo_handler;
static void cm_ready(bench *b, bsess *ss);

static void s_on_ready(h3wt_session *s, void *rd) {
  bsess *ss = rd;
  bconn *c = ss->c;
  bench *b = c->b;
  ss->ready = 1;
  ++c->nready;
  ++b->nready;
  if (b->phase == P_DONE) {
    return;
  }
  switch (b->o.mode) {
  case M_DGRAM:
    if (h3wt_session_max_datagram(s) < b->o.payload) {
      error(b, "payload %u over the session's maximum datagram %zu",
            b->o.payload, h3wt_session_max_datagram(s));
      finish(b);
      return;
    }
    for (uint32_t si = 0; si < b->o.window; ++si) {
      dg_send(b, ss, si);
    }
    if (b->nready == b->nsess) {
      begin_warmup(b);
    }
    break;
  case M_STREAM:
    st_start(b, ss);
    break;
  case M_IDLE:
    idle_sess_mark(ss);
    idle_check(b);
    break;
  case M_FANOUT:
    fo_ready(b, ss);
    break;
  case M_CHMEM:
    cm_ready(b, ss);
    break;
  }
}

static void s_on_close(h3wt_session *s, int err, uint32_t code,
                       const char *reason, size_t rl, void *rd) {
  bsess *ss = rd;
  bconn *c = ss->c;
  bench *b = c->b;
  ss->ended = 1;
  if (b->phase == P_DONE) {
    return;
  }
  if (err == H3WT_SESSION_REJECTED) {
    error(b, "session %u rejected with status %d", ss->idx,
          h3wt_session_status(s));
  } else {
    error(b, "session %u ended (err %d, code %" PRIu32 ")", ss->idx, err,
          code);
  }
  if (b->o.mode == M_IDLE) {
    idle_sess_mark(ss);
    idle_check(b);
  } else {
    finish(b);
  }
}

static const h3wt_session_handler sess_handler = {
    .on_session_ready = s_on_ready,
    .on_stream_data = st_on_data,
    .on_stream_reset = st_on_reset,
    .on_stream_writable = st_on_writable,
    .on_stream_close = st_on_close,
    .on_datagram = dg_on_datagram,
    .on_session_close = s_on_close,
};

/* Opens the connection's sessions (queued until the handshake). */
static int conn_open_sessions(bconn *c) {
  bench *b = c->b;
  for (uint32_t i = 0; i < c->nsess; ++i) {
    bsess *ss = &b->sess[c->first_sess + i];
    ss->ready = ss->ended = ss->counted = 0;
    int rv = h3wt_client_webtransport(
        c->cl, b->o.path, NULL, NULL, 0,
        b->o.mode == M_FANOUT || b->o.mode == M_CHMEM ? &fo_handler
                                                       : &sess_handler,
        ss, &ss->s);
    if (rv != 0) {
      error(b, "session %u: %s", ss->idx, h3wt_strerror(rv));
      return rv;
    }
  }
  return 0;
}

/* ---- idle -------------------------------------------------------------------- */

static void idle_measure(uv_timer_t *t) {
  bench *b = t->data;
  b->rss_after = bench_proc_rss_kib(b->o.server_pid);
  bench_snap_take(&b->z, b->o.server_pid);
  b->ops = b->nready;
  finish(b);
}

/* A session is ready or failed; a connection is "dialling" until all of
   its sessions are. */
static void idle_sess_mark(bsess *ss) {
  bconn *c = ss->c;
  if (ss->counted) {
    return;
  }
  ss->counted = 1;
  ++c->b->nsess_done;
  if (++c->ndone == c->nsess) {
    --c->b->dialing;
  }
}

/* Dials connections while fewer than --inflight are still opening. */
static void idle_dial(bench *b) {
  while (b->phase == P_MEASURE && b->next_dial < b->nconns &&
         b->dialing < b->o.inflight) {
    bconn *c = &b->conns[b->next_dial++];
    ++b->dialing;
    if (conn_open(c) != 0) {
      for (uint32_t i = 0; i < c->nsess; ++i) {
        idle_sess_mark(&b->sess[c->first_sess + i]);
      }
    } else if (conn_open_sessions(c) != 0) {
      finish(b);
    }
  }
}

static void idle_check(bench *b) {
  if (b->phase != P_MEASURE) {
    return;
  }
  idle_dial(b);
  if (b->nsess_done == b->nsess &&
      !uv_is_active((uv_handle_t *)&b->timer)) {
    if (b->o.verbose) {
      fprintf(stderr, "h3wt-bench: %u sessions ready, settling\n",
              b->nready);
    }
    uv_timer_start(&b->timer, idle_measure, (uint64_t)(b->o.settle * 1000),
                   0);
  }
}

/* ---- get and download --------------------------------------------------------- */

static void get_send(breq *r);

static void r_on_headers(h3wt_client_request *req, int status,
                         const h3wt_header *h, size_t n, void *ud) {
  breq *r = ud;
  r->status = status;
  if (status != 200) {
    /* A 404 (a wrong path, or --web not found) is answered as fast as a
       200: counting it as an op would report a rate for nothing. */
    ++r->c->b->bad_status;
    error(r->c->b, "%s: status %d", r->c->b->o.path, status);
  }
}

static void r_on_body(h3wt_client_request *req, const uint8_t *data,
                      size_t len, void *ud) {
  breq *r = ud;
  r->c->b->bytes += len;
}

static void r_on_close(h3wt_client_request *req, int err, uint64_t code,
                       void *ud) {
  breq *r = ud;
  bench *b = r->c->b;
  if (b->phase == P_DONE) {
    return;
  }
  if (err) {
    error(b, "request: %s (stream error 0x%" PRIx64 ")", h3wt_strerror(err),
          code);
  }
  if (b->o.mode == M_DOWNLOAD) {
    bench_snap_take(&b->z, b->o.server_pid);
    if (!err && r->status == 200) {
      b->ops = 1;
    } else if (b->bytes == 0) {
      error(b, "download: nothing received");
    }
    finish(b);
    return;
  }
  if (measuring(b) && !err && r->status == 200) {
    ++b->ops;
    ++r->c->ops;
  }
  get_send(r);
}

static const h3wt_response_handler resp_handler = {r_on_headers, r_on_body,
                                                   r_on_close};

static void get_send(breq *r) {
  bench *b = r->c->b;
  r->status = 0;
  int rv = h3wt_client_request_send(r->c->cl, "GET", b->o.path, NULL, 0, NULL,
                                    0, &resp_handler, r, NULL);
  if (rv != 0) {
    error(b, "request: %s", h3wt_strerror(rv));
    finish(b);
  }
}

/* ---- handshake ---------------------------------------------------------------- */

static void hs_on_ready(h3wt_session *s, void *rd) {
  bconn *c = rd;
  c->hs_ready = 1;
  h3wt_session_close(s, 0, "");
}

static void hs_on_close(h3wt_session *s, int err, uint32_t code,
                        const char *reason, size_t rl, void *rd) {
  bconn *c = rd;
  bench *b = c->b;
  if (c->hs_ready && err == H3WT_SESSION_CLOSED) {
    if (measuring(b)) {
      ++b->ops;
      if (h3wt_client_resumption(c->cl) & H3WT_RESUMED) {
        ++b->resumed;
      }
      bench_hist_add(&b->hist, bench_now_ns() - c->started_ns);
    }
  } else if (b->phase != P_DONE) {
    error(b, "handshake session ended (err %d, status %d)", err,
          h3wt_session_status(s));
  }
  c->hs = NULL;
  conn_close(c);
}

static const h3wt_session_handler hs_handler = {
    .on_session_ready = hs_on_ready,
    .on_session_close = hs_on_close,
};

static void hs_start(bconn *c) {
  bench *b = c->b;
  if (b->phase != P_WARMUP && b->phase != P_MEASURE) {
    return;
  }
  if (conn_open(c) != 0) {
    finish(b);
    return;
  }
  int rv = h3wt_client_webtransport(c->cl, b->o.path, NULL, NULL, 0,
                                    &hs_handler, c, &c->hs);
  if (rv != 0) {
    error(b, "session: %s", h3wt_strerror(rv));
    conn_close(c); /* on_closed inside restarts the slot */
  }
}

/* ---- fanout -------------------------------------------------------------------
 * Every session opens its channel stream and subscribes; connections are
 * dialled --inflight at a time, and one counts as dialled once all of its
 * sessions are subscribed.  Then the publisher (the last session, on a
 * connection of its own; subscribed too, because the hub takes
 * publications only into channels the session is in, and deaf to what it
 * hears back) sends --rate messages per second, each carrying its sequence
 * number and send time, and every subscriber checks what it gets.  After
 * the measurement the publisher stops and the run waits, at most
 * FO_DRAIN_MS, for the last deliveries: then whatever a reliable
 * subscriber still lacks is a violation, and an unreliable one's shortfall
 * is lost. */

static void fo_dial(bench *b) {
  while (b->phase == P_SETUP && b->next_dial < b->nconns &&
         b->dialing < b->o.inflight) {
    bconn *c = &b->conns[b->next_dial++];
    ++b->dialing;
    if (conn_open(c) != 0 || conn_open_sessions(c) != 0) {
      finish(b);
      return;
    }
  }
}

static void fo_write(bench *b, bsess *ss, const uint8_t *f, size_t n) {
  int rv = n ? h3wt_stream_write(ss->st, f, n) : H3WT_ERR_INVALID_ARGUMENT;
  if (rv != 0) {
    error(b, "session %u: channel stream: %s", ss->idx, h3wt_strerror(rv));
    finish(b);
  }
}

static void fo_ready(bench *b, bsess *ss) {
  uint8_t f[320];
  int rv = h3wt_session_open_stream(ss->s, 1, &ss->st);
  if (rv != 0) {
    error(b, "session %u: cannot open the channel stream: %s", ss->idx,
          h3wt_strerror(rv));
    finish(b);
    return;
  }
  if (b->o.unreliable && ss->is_pub &&
      h3wt_session_max_datagram(ss->s) < b->o.payload + H3WT_CH_DGRAM_HEAD_MAX) {
    error(b, "payload %u over the session's maximum datagram %zu",
          b->o.payload, h3wt_session_max_datagram(ss->s));
    finish(b);
    return;
  }
  fo_write(b, ss,
           f, h3wt_ch_encode_subscribe(f, sizeof(f), 1,
                                       (const uint8_t *)b->o.channel,
                                       strlen(b->o.channel), 0, 0, 0));
}

static void fo_subscribed(bench *b, bsess *ss) {
  bconn *c = ss->c;
  ss->subscribed = 1;
  ++b->nsubscribed;
  if (++c->ndone == c->nsess) {
    --b->dialing;
  }
  if (b->nsubscribed == b->nsess) {
    if (b->o.verbose) {
      fprintf(stderr, "h3wt-bench: %u sessions subscribed, publishing\n",
              b->nsess);
    }
    b->pub_start_ns = bench_now_ns();
    begin_warmup(b);
  } else {
    fo_dial(b);
  }
}

/* One delivery to a subscriber (data: the publisher's payload). */
static void fo_delivery(bench *b, bsess *ss, const uint8_t *data,
                        size_t len) {
  uint64_t now = bench_now_ns();
  if (ss->is_pub) {
    return;
  }
  if (len != b->o.payload) {
    error(b, "session %u: a delivery of %zu bytes, not %u", ss->idx, len,
          b->o.payload);
    return;
  }
  uint64_t seq = bench_get64(data), sent = bench_get64(data + 8);
  ++ss->got;
  if (!b->o.unreliable) {
    /* "exactly once, in order": seq must be the next one. */
    if (seq > ss->next) {
      b->violations += seq - ss->next; /* skipped (or late: counted again) */
      ss->next = seq + 1;
    } else if (seq < ss->next) {
      ++b->violations; /* again, or after a later one */
    } else {
      ++ss->next;
    }
  } else if (seq < ss->next) {
    ++b->reordered;
  } else {
    ss->next = seq + 1;
  }
  if (measuring(b)) {
    ++b->ops;
    ++ss->c->ops;
    bench_hist_add(&b->hist, now - sent);
  }
}

static int cm_on_frame(bench *b, bsess *ss, uint64_t type, const uint8_t *p,
                       size_t len);

static int fo_on_frame(uint64_t type, const uint8_t *p, size_t len,
                       void *ud) {
  bsess *ss = ud;
  bench *b = ss->c->b;
  if (b->o.mode == M_CHMEM) {
    return cm_on_frame(b, ss, type, p, len);
  }
  switch (type) {
  case H3WT_CH_SUBSCRIBED: {
    h3wt_ch_subscribed f;
    if (h3wt_ch_decode_subscribed(p, len, &f) != 0) {
      return 1;
    }
    if (!ss->subscribed) {
      ss->sub = f.sub;
      fo_subscribed(b, ss);
    }
    break;
  }
  case H3WT_CH_MESSAGE: {
    h3wt_ch_message f;
    if (h3wt_ch_decode_message(p, len, &f) != 0) {
      return 1;
    }
    if (f.sub == ss->sub) {
      fo_delivery(b, ss, f.data, f.datalen);
    }
    break;
  }
  case H3WT_CH_UNSUBSCRIBED: {
    h3wt_ch_unsubscribed f;
    if (h3wt_ch_decode_unsubscribed(p, len, &f) != 0) {
      return 1;
    }
    if (b->phase != P_DONE) {
      error(b, "session %u unsubscribed by the server: %s '%.*s'", ss->idx,
            h3wt_ch_strerror(f.code), (int)f.reasonlen,
            (const char *)f.reason);
    }
    break;
  }
  case H3WT_CH_ERROR: {
    h3wt_ch_error f;
    if (h3wt_ch_decode_error(p, len, &f) != 0) {
      return 1;
    }
    error(b, "session %u: ERROR %s '%.*s'", ss->idx,
          h3wt_ch_strerror(f.code), (int)f.textlen, (const char *)f.text);
    finish(b);
    break;
  }
  default: /* JOIN, LEAVE: the others subscribing */
    break;
  }
  return 0;
}

static void fo_on_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                       void *rd) {
  bsess *ss = rd;
  bench *b = ss->c->b;
  if (n) {
    b->cm_rx += n;
    b->cm_last_rx_ns = bench_now_ns();
  }
  if (h3wt_ch_parse(ss->parser, d, n, fo_on_frame, ss) != 0 &&
      b->phase != P_DONE) {
    error(b, "session %u: malformed frame from the server", ss->idx);
    finish(b);
  }
}

static void fo_on_datagram(h3wt_session *s, const uint8_t *d, size_t n,
                           void *rd) {
  bsess *ss = rd;
  uint64_t type, sub;
  const uint8_t *data;
  size_t len;
  if (h3wt_ch_decode_dgram(d, n, &type, &sub, &data, &len) != 0 ||
      type != H3WT_CH_DGRAM_DELIVER || !ss->subscribed || sub != ss->sub) {
    ++ss->c->b->stale;
    return;
  }
  fo_delivery(ss->c->b, ss, data, len);
}

static void fo_on_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  bsess *ss = rd;
  if (ss->c->b->phase != P_DONE) {
    error(ss->c->b, "session %u: the server reset the channel stream",
          ss->idx);
    finish(ss->c->b);
  }
}

static void fo_on_close(h3wt_stream *st, void *rd) {
  bsess *ss = rd;
  if (ss->st == st) {
    ss->st = NULL;
  }
  if (ss->c->b->phase != P_DONE) {
    /* With its session (which says why next) or alone. */
    error(ss->c->b, "session %u: the channel stream closed", ss->idx);
    if (h3wt_session_is_open(ss->s)) {
      finish(ss->c->b);
    }
  }
}

static const h3wt_session_handler fo_handler = {
    .on_session_ready = s_on_ready,
    .on_stream_data = fo_on_data,
    .on_stream_reset = fo_on_reset,
    .on_stream_close = fo_on_close,
    .on_datagram = fo_on_datagram,
    .on_session_close = s_on_close,
};

/* Sends the publications due by now.  A reliable one the stream cannot
   take waits for the next tick under the same number (the sequence must
   have no holes); an unreliable one the queue drops is gone, as on the
   wire, and shows up as lost. */
static void fo_publish(bench *b) {
  bsess *ss = &b->sess[b->nsess - 1];
  uint64_t due = (uint64_t)((double)(bench_now_ns() - b->pub_start_ns) *
                            b->o.msg_rate / 1e9) + 1;
  uint8_t f[H3WT_CH_PUBLISH_HEAD_MAX + 65536];
  for (int burst = 0; b->pub_seq < due && burst < 10000; ++burst) {
    uint8_t *data;
    size_t n;
    int rv;
    if (b->o.unreliable) {
      n = h3wt_ch_encode_dgram_head(f, sizeof(f), H3WT_CH_DGRAM_PUBLISH,
                                    ss->sub);
      data = f + n;
      n += b->o.payload;
    } else {
      n = h3wt_ch_encode_publish_head(f, sizeof(f), 0,
                                      (const uint8_t *)b->o.channel,
                                      strlen(b->o.channel), b->o.payload);
      data = f + n;
      n += b->o.payload;
    }
    memset(data, 0x5a, b->o.payload);
    bench_put64(data, b->pub_seq);
    bench_put64(data + 8, bench_now_ns());
    if (b->o.unreliable) {
      rv = h3wt_session_send_datagram(ss->s, f, n);
      if (rv == H3WT_ERR_DGRAM_DROPPED) {
        ++b->blocked;
        rv = 0;
      }
    } else {
      rv = h3wt_stream_write(ss->st, f, n);
      if (rv == H3WT_ERR_WOULDBLOCK) {
        ++b->blocked;
        return;
      }
    }
    if (rv != 0) {
      error(b, "publish: %s", h3wt_strerror(rv));
      finish(b);
      return;
    }
    ++b->pub_seq;
  }
}

/* 1 when every subscriber has everything published. */
static int fo_complete(const bench *b) {
  for (uint32_t i = 0; i + 1 < b->nsess; ++i) {
    const bsess *ss = &b->sess[i];
    if ((b->o.unreliable ? ss->got : ss->next) < b->pub_seq) {
      return 0;
    }
  }
  return 1;
}

/* The end of the drain: the shortfall of each subscriber. */
static void fo_account(bench *b) {
  for (uint32_t i = 0; i + 1 < b->nsess; ++i) {
    const bsess *ss = &b->sess[i];
    if (b->o.unreliable) {
      b->lost += ss->got < b->pub_seq ? b->pub_seq - ss->got : 0;
    } else if (ss->next < b->pub_seq) {
      b->violations += b->pub_seq - ss->next;
    }
  }
}

static void fo_tick(bench *b) {
  if (b->phase == P_WARMUP || b->phase == P_MEASURE) {
    fo_publish(b);
  } else if (b->phase == P_DRAIN &&
             (fo_complete(b) || bench_now_ns() >= b->drain_until_ns)) {
    fo_account(b);
    finish(b);
  }
}

/* ---- chmem ----------------------------------------------------------------------
 * What a subscription costs the server in memory, beyond the session and
 * its channel stream.  Steps, each ended by a quiet server (every reply in
 * and no channel stream byte for --settle seconds), each followed by a
 * VmRSS reading:
 *
 *   CM_OPEN   dial N sessions (N/M connections, --inflight at a time);
 *             each opens its channel stream and sends PRESENCE of the
 *             channel, answered ERROR NOT_SUBSCRIBED: the stream then
 *             exists on both sides and has carried a command and a reply,
 *             and nothing of the channel exists yet (rss base)
 *   CM_SUB    every session SUBSCRIBEs to the one channel (--window
 *             commands in flight); all SUBSCRIBED, then every JOIN the hub
 *             sends (each subscribe is announced to every member: N(N+1)/2
 *             JOINs) (rss sub: the figure is (sub - base) / N)
 *   CM_UNSUB  every session UNSUBSCRIBEs (N(N-1)/2 LEAVEs) (rss unsub)
 *   CM_RESUB  every session subscribes again (rss resub): the control,
 *             the same structures in memory malloc has already touched
 */
enum { CM_OPEN, CM_SUB, CM_UNSUB, CM_RESUB };
static const char *const cm_names[] = {"open", "subscribe", "unsubscribe",
                                       "resubscribe"};

static void cm_send(bench *b, bsess *ss, int step) {
  uint8_t f[320];
  const uint8_t *ch = (const uint8_t *)b->o.channel;
  size_t chl = strlen(b->o.channel), n = 0;
  uint64_t req = (uint64_t)step + 1;
  switch (step) {
  case CM_OPEN:
    n = h3wt_ch_encode_presence(f, sizeof(f), req, ch, chl);
    break;
  case CM_SUB:
  case CM_RESUB:
    n = h3wt_ch_encode_subscribe(f, sizeof(f), req, ch, chl, 0, 0, 0);
    break;
  case CM_UNSUB:
    n = h3wt_ch_encode_unsubscribe(f, sizeof(f), req, ch, chl);
    break;
  }
  fo_write(b, ss, f, n);
}

static void cm_ready(bench *b, bsess *ss) {
  int rv = h3wt_session_open_stream(ss->s, 1, &ss->st);
  if (rv != 0) {
    error(b, "session %u: cannot open the channel stream: %s", ss->idx,
          h3wt_strerror(rv));
    finish(b);
    return;
  }
  cm_send(b, ss, CM_OPEN);
}

/* Sends the step's command to the next sessions, --window in flight. */
static void cm_pump(bench *b) {
  while (b->phase != P_DONE && b->cm_next < b->nsess &&
         b->cm_outstanding < b->o.window) {
    ++b->cm_outstanding;
    cm_send(b, &b->sess[b->cm_next++], b->cm_step);
  }
}

static void cm_begin(bench *b, int step) {
  b->cm_step = step;
  b->cm_replies = b->cm_next = b->cm_outstanding = 0;
  b->cm_waiting = 0;
  b->cm_step_ns = bench_now_ns();
  bench_snap_take(&b->cm_snap, b->o.server_pid);
  if (step == CM_SUB) {
    b->a = b->cm_snap; /* the measured step: CPU per subscription */
  }
  if (b->o.verbose) {
    fprintf(stderr, "h3wt-bench: chmem: %s\n", cm_names[step]);
  }
  if (step != CM_OPEN) {
    cm_pump(b);
  }
}

/* A reply to the step's command. */
static void cm_reply(bench *b, bsess *ss, uint64_t req) {
  if (req != (uint64_t)b->cm_step + 1) {
    error(b, "session %u: a reply to request %" PRIu64 " in step %s",
          ss->idx, req, cm_names[b->cm_step]);
    finish(b);
    return;
  }
  ++b->cm_replies;
  if (b->cm_step == CM_OPEN) {
    bconn *c = ss->c;
    if (++c->ndone == c->nsess) {
      --b->dialing;
    }
    fo_dial(b);
  } else {
    --b->cm_outstanding;
    cm_pump(b);
  }
  if (b->cm_replies == b->nsess) {
    b->cm_waiting = 1; /* cm_tick waits for quiet */
    b->cm_last_rx_ns = bench_now_ns();
  }
}

/* Ends a step once the server has been quiet for --settle seconds. */
static void cm_tick(bench *b) {
  uint64_t now = bench_now_ns();
  if (!b->cm_waiting ||
      now - b->cm_last_rx_ns < (uint64_t)(b->o.settle * 1e9)) {
    return;
  }
  int step = b->cm_step;
  bench_snap z;
  bench_snap_take(&z, b->o.server_pid);
  b->cm_rss[step + 1] =
      b->o.server_pid > 0 ? bench_proc_rss_kib(b->o.server_pid) : -1;
  /* The step's time and CPU without the quiet wait at its end. */
  b->cm_secs[step] = (double)(b->cm_last_rx_ns - b->cm_step_ns) / 1e9;
  b->cm_cpu[step] = b->cm_snap.server_cpu_us >= 0 && z.server_cpu_us >= 0
                        ? (double)(z.server_cpu_us - b->cm_snap.server_cpu_us)
                        : -1;
  if (b->o.verbose) {
    fprintf(stderr,
            "h3wt-bench: chmem: %s done in %.2f s, server RSS %" PRId64
            " KiB\n",
            cm_names[step], b->cm_secs[step], b->cm_rss[step + 1]);
  }
  if (step == CM_SUB) {
    b->z = z;
    b->ops = b->nsess;
  }
  if (step == CM_RESUB) {
    finish(b);
  } else {
    cm_begin(b, step + 1);
  }
}

static int cm_on_frame(bench *b, bsess *ss, uint64_t type, const uint8_t *p,
                       size_t len) {
  if (b->phase == P_DONE) {
    return 0;
  }
  switch (type) {
  case H3WT_CH_ERROR: {
    h3wt_ch_error f;
    if (h3wt_ch_decode_error(p, len, &f) != 0) {
      return 1;
    }
    if (b->cm_step == CM_OPEN && f.code == H3WT_CH_ERR_NOT_SUBSCRIBED) {
      cm_reply(b, ss, f.req); /* the PRESENCE that opened the stream */
      break;
    }
    error(b, "session %u: ERROR %s '%.*s' in step %s", ss->idx,
          h3wt_ch_strerror(f.code), (int)f.textlen, (const char *)f.text,
          cm_names[b->cm_step]);
    finish(b);
    break;
  }
  case H3WT_CH_SUBSCRIBED: {
    h3wt_ch_subscribed f;
    if (h3wt_ch_decode_subscribed(p, len, &f) != 0) {
      return 1;
    }
    ss->sub = f.sub;
    cm_reply(b, ss, f.req);
    break;
  }
  case H3WT_CH_UNSUBSCRIBED: {
    h3wt_ch_unsubscribed f;
    if (h3wt_ch_decode_unsubscribed(p, len, &f) != 0) {
      return 1;
    }
    if (f.req == 0 || f.code != 0) {
      error(b, "session %u unsubscribed by the server: %s '%.*s'", ss->idx,
            h3wt_ch_strerror(f.code), (int)f.reasonlen,
            (const char *)f.reason);
      finish(b);
      break;
    }
    cm_reply(b, ss, f.req);
    break;
  }
  case H3WT_CH_JOIN:
    ++b->joins;
    break;
  case H3WT_CH_LEAVE:
    ++b->leaves;
    break;
  default:
    error(b, "session %u: unexpected frame 0x%" PRIx64, ss->idx, type);
    finish(b);
    break;
  }
  return 0;
}

/* ---- connection callbacks ------------------------------------------------------ */

static void on_connected(h3wt_client *cl, void *ud) {
  bconn *c = ud;
  bench *b = c->b;
  c->connected = 1;
  if (b->phase == P_DONE) {
    return;
  }
  if (b->o.mode == M_GET) {
    for (uint32_t i = 0; i < b->o.requests; ++i) {
      get_send(&c->reqs[i]);
    }
    if (++b->nconnected == b->nconns) {
      begin_warmup(b);
    }
  } else if (b->o.mode == M_DOWNLOAD) {
    b->phase = P_MEASURE;
    bench_snap_take(&b->a, b->o.server_pid);
    get_send(&c->reqs[0]);
  }
}

static void on_closed(h3wt_client *cl, int err, void *ud) {
  bconn *c = ud;
  bench *b = c->b;
  c->cl = NULL;
  c->hs = NULL;
  --b->live;
  if (b->o.resume && !b->session_len && !err) {
    size_t n = 0;
    if (h3wt_client_session_save(cl, b->session, sizeof(b->session), &n) ==
        0) {
      b->session_len = n; /* from now on every connection resumes it */
    }
  }
  bury(b, cl);
  if (b->phase == P_DONE) {
    return;
  }
  if (b->o.mode == M_HANDSHAKE) {
    if (err) {
      error(b, "connection: %s", h3wt_strerror(err));
    }
    if (b->errors > 1000) {
      finish(b); /* failing over and over: give up */
      return;
    }
    hs_start(c);
    return;
  }
  error(b, "connection %u closed: %s", c->idx,
        err ? h3wt_strerror(err) : "by the server");
  if (b->o.mode == M_IDLE) {
    for (uint32_t i = 0; i < c->nsess; ++i) {
      idle_sess_mark(&b->sess[c->first_sess + i]);
    }
    idle_check(b);
  } else {
    finish(b);
  }
}

/* ---- phases -------------------------------------------------------------------- */

static void measure_end(uv_timer_t *t) {
  bench *b = t->data;
  bench_snap_take(&b->z, b->o.server_pid);
  if (b->o.mode == M_FANOUT) {
    b->phase = P_DRAIN; /* fo_tick ends it */
    b->drain_until_ns = bench_now_ns() + FO_DRAIN_MS * 1000000ull;
    return;
  }
  finish(b);
}

static void measure_begin(uv_timer_t *t) {
  bench *b = t->data;
  b->phase = P_MEASURE;
  bench_snap_take(&b->a, b->o.server_pid);
  uv_timer_start(&b->timer, measure_end, (uint64_t)(b->o.duration * 1000), 0);
}

static void begin_warmup(bench *b) {
  if (b->phase != P_SETUP) {
    return;
  }
  b->phase = P_WARMUP;
  uv_timer_start(&b->timer, measure_begin, (uint64_t)(b->o.warmup * 1000), 0);
}

static void tick_cb(uv_timer_t *t) {
  bench *b = t->data;
  if (b->o.mode == M_DGRAM && b->phase != P_DONE) {
    dg_tick(b);
  } else if (b->o.mode == M_FANOUT && b->phase != P_DONE) {
    fo_tick(b);
  } else if (b->o.mode == M_CHMEM && b->phase != P_DONE) {
    cm_tick(b);
  }
}

static void deadline_cb(uv_timer_t *t) {
  bench *b = t->data;
  b->timed_out = 1;
  error(b, "timed out after %g s (phase %d, %u of %u sessions ready)",
        b->o.timeout, b->phase, b->nready, b->nsess);
  finish(b);
}

/* Stops the load and closes every connection; the loop ends once all
   handles are closed. */
static void finish(bench *b) {
  if (b->phase == P_DONE) {
    return;
  }
  if (b->phase == P_MEASURE && b->z.wall_ns == 0) {
    bench_snap_take(&b->z, b->o.server_pid); /* cut short */
  }
  b->phase = P_DONE;
  uv_timer_stop(&b->tick);
  uv_timer_stop(&b->timer);
  uv_timer_stop(&b->deadline);
  for (uint32_t i = 0; i < b->nconns; ++i) {
    conn_close(&b->conns[i]);
  }
}

/* ---- report -------------------------------------------------------------------- */

/* Errors that only show at the end: a connection that stalled while the
   others went on (the total rate alone would hide a server that stopped
   answering one peer), and a server process that vanished. */
static void final_checks(bench *b) {
  const opts *o = &b->o;
  if (b->a.wall_ns == 0 || b->timed_out) {
    return; /* never measured: already an error */
  }
  if (o->mode == M_GET || o->mode == M_DGRAM) {
    for (uint32_t i = 0; i < b->nconns; ++i) {
      if (b->conns[i].ops == 0) {
        error(b, "connection %u: nothing completed while measuring", i);
      }
    }
  }
  if (o->mode == M_CHMEM && b->ops == 0) {
    return; /* stopped before its measured step: already an error */
  }
  if (o->server_pid > 0 &&
      (b->a.server_cpu_us < 0 || b->z.server_cpu_us < 0)) {
    error(b, "server process %ld is gone", o->server_pid);
  }
}

static void report(bench *b) {
  const opts *o = &b->o;
  bench_json j;
  double secs = b->z.wall_ns > b->a.wall_ns && b->a.wall_ns
                    ? (double)(b->z.wall_ns - b->a.wall_ns) / 1e9
                    : 0;
  double srv = b->a.server_cpu_us >= 0 && b->z.server_cpu_us >= 0
                   ? (double)(b->z.server_cpu_us - b->a.server_cpu_us)
                   : -1;
  double ops = (double)b->ops, rate;
  const char *unit = "op";
  char human[512];
  int hl = 0;

  bench_json_begin(&j);
  bench_json_str(&j, "mode", mode_names[o->mode]);
  bench_json_str(&j, "target", o->label);
  switch (o->mode) {
  case M_DGRAM:
    unit = "echo";
    bench_json_int(&j, "sessions", o->sessions);
    bench_json_int(&j, "conns", o->conns);
    bench_json_int(&j, "window", o->window);
    bench_json_int(&j, "payload", o->payload);
    break;
  case M_STREAM:
  case M_DOWNLOAD:
    unit = "MB";
    ops = (double)b->bytes / MB;
    bench_json_int(&j, "bytes", b->bytes);
    break;
  case M_GET:
    unit = "request";
    bench_json_int(&j, "conns", o->conns);
    bench_json_int(&j, "concurrent", o->requests);
    bench_json_int(&j, "bad_status", b->bad_status);
    break;
  case M_HANDSHAKE:
    unit = "connection";
    bench_json_int(&j, "inflight", o->inflight);
    bench_json_int(&j, "resume", o->resume);
    bench_json_int(&j, "resumed", b->resumed);
    break;
  case M_IDLE:
    unit = "session";
    bench_json_int(&j, "sessions", b->nready);
    bench_json_int(&j, "conns", b->nconns);
    bench_json_int(&j, "per_conn", o->per_conn);
    break;
  case M_FANOUT:
    unit = "delivery";
    bench_json_int(&j, "subscribers", b->nsess - 1);
    bench_json_int(&j, "conns", b->nconns - 1);
    bench_json_int(&j, "per_conn", o->per_conn);
    bench_json_str(&j, "delivery", o->unreliable ? "unreliable" : "reliable");
    bench_json_num(&j, "msg_rate", o->msg_rate);
    bench_json_int(&j, "payload", o->payload);
    bench_json_int(&j, "published", b->pub_seq);
    break;
  case M_CHMEM:
    unit = "subscription";
    bench_json_int(&j, "sessions", b->nsess);
    bench_json_int(&j, "conns", b->nconns);
    bench_json_int(&j, "per_conn", o->per_conn);
    bench_json_int(&j, "window", o->window);
    break;
  }
  rate = secs > 0 ? ops / secs : 0;
  bench_json_num(&j, "ops", ops);
  bench_json_str(&j, "unit", unit);
  if (o->mode == M_STREAM || o->mode == M_DOWNLOAD) {
    rate = secs > 0 ? (double)b->bytes / secs : 0;
    bench_json_num(&j, "rate", rate); /* bytes/s */
    bench_json_num(&j, "mbit_per_s", rate * 8 / 1e6);
  } else if (o->mode != M_IDLE && o->mode != M_CHMEM) {
    bench_json_num(&j, "rate", rate);
  }
  if (o->mode == M_DGRAM || o->mode == M_HANDSHAKE) {
    const char *what = o->mode == M_DGRAM ? "rtt" : "setup";
    char k[32];
    snprintf(k, sizeof(k), "%s_p50_us", what);
    bench_json_num(&j, k, (double)bench_hist_quantile(&b->hist, 0.5) / 1e3);
    snprintf(k, sizeof(k), "%s_p99_us", what);
    bench_json_num(&j, k, (double)bench_hist_quantile(&b->hist, 0.99) / 1e3);
    snprintf(k, sizeof(k), "%s_p999_us", what);
    bench_json_num(&j, k, (double)bench_hist_quantile(&b->hist, 0.999) / 1e3);
  }
  if (o->mode == M_DGRAM) {
    bench_json_int(&j, "lost", b->lost);
    bench_json_int(&j, "blocked", b->blocked);
  }
  if (o->mode == M_FANOUT) {
    bench_json_num(&j, "lat_p50_us",
                   (double)bench_hist_quantile(&b->hist, 0.5) / 1e3);
    bench_json_num(&j, "lat_p99_us",
                   (double)bench_hist_quantile(&b->hist, 0.99) / 1e3);
    bench_json_num(&j, "lat_p999_us",
                   (double)bench_hist_quantile(&b->hist, 0.999) / 1e3);
    bench_json_num(&j, "lat_max_us", (double)b->hist.max / 1e3);
    bench_json_int(&j, "violations", b->violations);
    bench_json_int(&j, "lost", b->lost);
    bench_json_int(&j, "reordered", b->reordered);
    bench_json_int(&j, "blocked", b->blocked);
  }
  if (o->mode == M_IDLE && b->rss_before >= 0 && b->rss_after >= 0) {
    double per = b->nready ? (double)(b->rss_after - b->rss_before) /
                                 (double)b->nready
                           : 0;
    bench_json_int(&j, "rss_before_kib", (uint64_t)b->rss_before);
    bench_json_int(&j, "rss_after_kib", (uint64_t)b->rss_after);
    bench_json_num(&j, "kib_per_session", per);
  }
  double n = (double)b->nsess;
  const int64_t *r = b->cm_rss;
  int have_rss = o->mode == M_CHMEM && r[0] >= 0 && r[1] >= 0 && r[2] >= 0 &&
                 r[3] >= 0 && r[4] >= 0 && b->ops;
  if (o->mode == M_CHMEM) {
    static const char *const keys[] = {"rss_start_kib", "rss_base_kib",
                                       "rss_sub_kib", "rss_unsub_kib",
                                       "rss_resub_kib"};
    for (int i = 0; i < 5 && have_rss; ++i) {
      bench_json_int(&j, keys[i], (uint64_t)r[i]);
    }
    if (have_rss) {
      /* the figure: the subscription beyond session and stream */
      bench_json_num(&j, "bytes_per_sub", (double)(r[2] - r[1]) * 1024 / n);
      bench_json_num(&j, "base_kib_per_session", (double)(r[1] - r[0]) / n);
      bench_json_num(&j, "bytes_per_unsub", (double)(r[3] - r[2]) * 1024 / n);
      bench_json_num(&j, "bytes_per_resub", (double)(r[4] - r[3]) * 1024 / n);
    }
    /* The k-th subscribe reaches its k members while k <= presence_max
       (two subscribe steps); a leave reaches the r members left while
       r <= presence_max. */
    uint64_t jm = b->nsess < o->presence_max ? b->nsess : o->presence_max;
    uint64_t lm = b->nsess - 1 < o->presence_max ? b->nsess - 1
                                                 : o->presence_max;
    bench_json_int(&j, "joins", b->joins);
    bench_json_int(&j, "joins_expected", jm * (jm + 1));
    bench_json_int(&j, "leaves", b->leaves);
    bench_json_int(&j, "leaves_expected", lm * (lm + 1) / 2);
    for (int i = 0; i < 4; ++i) {
      char k[40];
      snprintf(k, sizeof(k), "%s_secs", cm_names[i]);
      bench_json_num(&j, k, b->cm_secs[i]);
      snprintf(k, sizeof(k), "%s_server_cpu_us", cm_names[i]);
      bench_json_num(&j, k, b->cm_cpu[i]);
    }
  }
  bench_json_cpu(&j, &b->a, &b->z, ops);
  bench_json_int(&j, "errors", b->errors);
  bench_json_end(&j, stdout);

  /* The human line. */
  hl += snprintf(human + hl, sizeof(human) - (size_t)hl, "%s %s: ", o->label,
                 mode_names[o->mode]);
  switch (o->mode) {
  case M_DGRAM:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%.0f echoes/s (%u sessions x %u in flight, %u B), rtt "
                   "p50 %.1f us p99 %.1f us p999 %.1f us, lost %" PRIu64,
                   rate, o->sessions, o->window, o->payload,
                   (double)bench_hist_quantile(&b->hist, 0.5) / 1e3,
                   (double)bench_hist_quantile(&b->hist, 0.99) / 1e3,
                   (double)bench_hist_quantile(&b->hist, 0.999) / 1e3,
                   b->lost);
    break;
  case M_STREAM:
  case M_DOWNLOAD:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%.1f MB/s (%.0f Mbit/s), %" PRIu64 " bytes in %.2f s",
                   rate / MB, rate * 8 / 1e6, b->bytes, secs);
    break;
  case M_GET:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%.0f requests/s (%u connections x %u concurrent)", rate,
                   o->conns, o->requests);
    break;
  case M_HANDSHAKE:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%.0f %sconnections/s (%u in progress), setup p50 %.2f "
                   "ms p99 %.2f ms",
                   rate, o->resume ? "resumed " : "", o->inflight,
                   (double)bench_hist_quantile(&b->hist, 0.5) / 1e6,
                   (double)bench_hist_quantile(&b->hist, 0.99) / 1e6);
    if (o->resume) {
      hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                     ", %" PRIu64 " of %" PRIu64 " resumed", b->resumed,
                     b->ops);
    }
    break;
  case M_IDLE:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%u sessions on %u connections", b->nready, b->nconns);
    if (b->rss_before >= 0 && b->rss_after >= 0 && b->nready) {
      hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                     ", server RSS %" PRId64 " -> %" PRId64
                     " KiB = %.2f KiB/session",
                     b->rss_before, b->rss_after,
                     (double)(b->rss_after - b->rss_before) /
                         (double)b->nready);
    }
    break;
  case M_FANOUT:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%.0f deliveries/s (%u subscribers on %u connections, "
                   "%g msg/s %s, %u B), latency p50 %.2f ms p99 %.2f ms, "
                   "violations %" PRIu64 ", lost %" PRIu64,
                   rate, b->nsess - 1, b->nconns - 1, o->msg_rate,
                   o->unreliable ? "unreliable" : "reliable", o->payload,
                   (double)bench_hist_quantile(&b->hist, 0.5) / 1e6,
                   (double)bench_hist_quantile(&b->hist, 0.99) / 1e6,
                   b->violations, b->lost);
    break;
  case M_CHMEM:
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   "%u sessions on %u connections", b->nsess, b->nconns);
    if (have_rss) {
      hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                     ", server RSS %" PRId64 " -> %" PRId64 " (open) -> %" PRId64
                     " (subscribed) KiB = %.0f B/subscription beyond %.2f "
                     "KiB/session; unsubscribe %+.0f B, resubscribe %+.0f B",
                     r[0], r[1], r[2], (double)(r[2] - r[1]) * 1024 / n,
                     (double)(r[1] - r[0]) / n,
                     (double)(r[3] - r[2]) * 1024 / n,
                     (double)(r[4] - r[3]) * 1024 / n);
    }
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   ", %" PRIu64 " joins in %.1f s", b->joins, b->cm_secs[1]);
    break;
  }
  if (srv >= 0 && ops > 0 && hl < (int)sizeof(human)) {
    hl += snprintf(human + hl, sizeof(human) - (size_t)hl,
                   ", server CPU %.2f us/%s (%.0f%%)", srv / ops, unit,
                   secs > 0 ? srv / secs / 1e4 : 0);
  }
  if (b->errors && hl < (int)sizeof(human)) {
    snprintf(human + hl, sizeof(human) - (size_t)hl, ", %" PRIu64 " errors",
             b->errors);
  }
  printf("%s\n", human);
  fflush(stdout);
}

/* ---- options ------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(
      f,
      "Usage: h3wt-bench MODE [options] https://host:port[/path]\n"
      "Modes: dgram stream download get handshake idle fanout chmem\n"
      "       (see bench/README.md)\n"
      "  -c, --conns C        connections (get: 4; dgram: one per session)\n"
      "  -s, --sessions S     dgram: sessions (default 8)\n"
      "  -w, --window W       dgram: datagrams in flight per session (16);\n"
      "                       chmem: commands in flight (16)\n"
      "  -P, --payload B      dgram, fanout: payload bytes, >= %d (64)\n"
      "  -r, --requests R     get: concurrent requests per connection (16)\n"
      "  -K, --inflight K     handshake: connections in progress (16);\n"
      "                       idle, fanout: connections opening at once (32)\n"
      "  -n, --count N        idle: sessions to open; fanout: subscribers\n"
      "                       (default 1000); chmem: sessions (10000)\n"
      "  -m, --per-conn M     idle, chmem: sessions per connection (16);\n"
      "                       fanout: subscribers per connection (1)\n"
      "      --rate R         fanout: messages published per second (100)\n"
      "      --unreliable     fanout: publish datagrams, not PUBLISH frames\n"
      "      --resume         handshake: every connection resumes the TLS\n"
      "                       session of the first (no 0-RTT)\n"
      "      --channel NAME   fanout, chmem: the channel (default\n"
      "                       bench.fanout, bench.chmem)\n"
      "  -b, --bytes B        stream: bytes to echo (K/M/G; default 256M)\n"
      "  -d, --duration S     measured seconds (default 10)\n"
      "      --warmup S       seconds of load before measuring (default 1)\n"
      "      --settle S       idle: wait before reading the RSS (default 2);\n"
      "                       chmem: quiet time that ends a step (1)\n"
      "      --presence-max M chmem: the server's channels_presence_events_max\n"
      "                       (default 1000: JOIN/LEAVE only up to M members)\n"
      "      --timeout S      give up after S seconds (default 120)\n"
      "      --server-pid PID report the server's CPU (and idle: RSS)\n"
      "      --label TEXT     the 'target' field of the result (default "
      "h3wt)\n"
      "  -k, --insecure       accepted; certificates are never verified\n"
      "  -v, --verbose        progress and every error on stderr\n"
      "Paths default to /wt/echo (WebTransport modes), /wt/channels\n"
      "(fanout, chmem) and / (get); download needs the file's path in the\n"
      "URL.\n",
      DG_HDR);
}

static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno) {
    return -1;
  }
  switch (*end) {
  case 'K':
  case 'k':
    v <<= 10;
    ++end;
    break;
  case 'M':
  case 'm':
    v <<= 20;
    ++end;
    break;
  case 'G':
  case 'g':
    v <<= 30;
    ++end;
    break;
  }
  if (*end) {
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_u32(const char *s, uint32_t *out) {
  uint64_t v;
  if (parse_size(s, &v) != 0 || v > UINT32_MAX) {
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* https://host[:port][/path]; without a path the mode's default stays. */
static int parse_url(const char *url, opts *o) {
  const char *path;
  if (h3wt_url_parse(url, o->host, sizeof(o->host), &o->port, &path) != 0 ||
      path[0] != '/') {
    return -1;
  }
  if (strcmp(path, "/") != 0) {
    o->path = path;
  }
  return 0;
}

static int parse_args(int argc, char **argv, opts *o) {
  static const struct option lopts[] = {
      {"conns", required_argument, 0, 'c'},
      {"sessions", required_argument, 0, 's'},
      {"window", required_argument, 0, 'w'},
      {"payload", required_argument, 0, 'P'},
      {"requests", required_argument, 0, 'r'},
      {"inflight", required_argument, 0, 'K'},
      {"count", required_argument, 0, 'n'},
      {"per-conn", required_argument, 0, 'm'},
      {"bytes", required_argument, 0, 'b'},
      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},
      {"settle", required_argument, 0, 'T'},
      {"timeout", required_argument, 0, 'O'},
      {"server-pid", required_argument, 0, 'S'},
      {"label", required_argument, 0, 'L'},
      {"rate", required_argument, 0, 'R'},
      {"unreliable", no_argument, 0, 'U'},
      {"resume", no_argument, 0, 'Z'},
      {"channel", required_argument, 0, 'C'},
      {"presence-max", required_argument, 0, 'X'},
      {"insecure", no_argument, 0, 'k'},
      {"verbose", no_argument, 0, 'v'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c, m = -1;
  if (argc < 2) {
    return -1;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    exit(0);
  }
  for (int i = 0; i < (int)(sizeof(mode_names) / sizeof(mode_names[0]));
       ++i) {
    if (strcmp(argv[1], mode_names[i]) == 0) {
      m = i;
    }
  }
  if (m < 0) {
    fprintf(stderr, "h3wt-bench: unknown mode '%s'\n", argv[1]);
    return -1;
  }
  memset(o, 0, sizeof(*o));
  o->mode = m;
  o->sessions = 8;
  o->window = 16; /* chmem: 256 makes the JOIN storm's queues grow */
  o->payload = 64;
  o->requests = 16;
  o->inflight = m == M_IDLE || m == M_FANOUT || m == M_CHMEM ? 32 : 16;
  o->per_conn = m == M_FANOUT ? 1 : 16;
  o->msg_rate = 100;
  o->channel = m == M_CHMEM ? "bench.chmem" : "bench.fanout";
  o->bytes = 256u << 20;
  o->count = m == M_CHMEM ? 10000 : 1000;
  o->duration = 10;
  o->warmup = 1;
  o->settle = m == M_CHMEM ? 1 : 2;
  o->presence_max = 1000;
  o->timeout = 120;
  o->label = "h3wt";
  optind = 2;
  while ((c = getopt_long(argc, argv, "c:s:w:P:r:K:n:m:b:d:kvh", lopts,
                          NULL)) != -1) {
    int bad = 0;
    switch (c) {
    case 'c':
      bad = parse_u32(optarg, &o->conns);
      break;
    case 's':
      bad = parse_u32(optarg, &o->sessions);
      break;
    case 'w':
      bad = parse_u32(optarg, &o->window);
      break;
    case 'P':
      bad = parse_u32(optarg, &o->payload);
      break;
    case 'r':
      bad = parse_u32(optarg, &o->requests);
      break;
    case 'K':
      bad = parse_u32(optarg, &o->inflight);
      break;
    case 'n':
      bad = parse_size(optarg, &o->count);
      break;
    case 'm':
      bad = parse_u32(optarg, &o->per_conn);
      break;
    case 'R':
      o->msg_rate = strtod(optarg, NULL);
      break;
    case 'U':
      o->unreliable = 1;
      break;
    case 'C':
      o->channel = optarg;
      break;
    case 'b':
      bad = parse_size(optarg, &o->bytes);
      break;
    case 'd':
      o->duration = strtod(optarg, NULL);
      break;
    case 'W':
      o->warmup = strtod(optarg, NULL);
      break;
    case 'T':
      o->settle = strtod(optarg, NULL);
      break;
    case 'X':
      o->presence_max = strtoull(optarg, NULL, 10);
      break;
    case 'O':
      o->timeout = strtod(optarg, NULL);
      break;
    case 'S':
      o->server_pid = strtol(optarg, NULL, 10);
      break;
    case 'L':
      o->label = optarg;
      break;
    case 'k':
      break;
    case 'v':
      o->verbose = 1;
      break;
    case 'Z':
      o->resume = 1;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      return -1;
    }
    if (bad) {
      fprintf(stderr, "h3wt-bench: bad value '%s'\n", optarg);
      return -1;
    }
  }
  if (optind != argc - 1 || parse_url(argv[optind], o) != 0) {
    fprintf(stderr, "h3wt-bench: one https:// URL expected\n");
    return -1;
  }
  if (!o->path) {
    o->path = m == M_GET        ? "/"
              : m == M_DOWNLOAD ? NULL
              : m == M_FANOUT || m == M_CHMEM ? "/wt/channels"
                                : "/wt/echo";
  }
  if (!o->path) {
    fprintf(stderr, "h3wt-bench: download needs a path in the URL\n");
    return -1;
  }
  if (o->payload < DG_HDR || o->payload > 65535 || o->window < 1 ||
      o->sessions < 1 || o->requests < 1 || o->inflight < 1 ||
      o->per_conn < 1 || o->count < 1 || o->count > 1000000 ||
      o->duration <= 0 || o->warmup < 0 || o->timeout <= 0 ||
      o->msg_rate <= 0 || o->msg_rate > 1e6 ||
      !h3wt_ch_name_valid((const uint8_t *)o->channel, strlen(o->channel))) {
    fprintf(stderr, "h3wt-bench: a value is out of range\n");
    return -1;
  }
  if (o->resume && o->mode != M_HANDSHAKE) {
    fprintf(stderr, "h3wt-bench: --resume is for the handshake mode\n");
    return -1;
  }
  if (o->mode == M_DGRAM && (o->conns == 0 || o->conns > o->sessions)) {
    o->conns = o->sessions;
  }
  if (o->mode == M_GET && o->conns == 0) {
    o->conns = 4;
  }
  return 0;
}

/* ---- main -------------------------------------------------------------------------- */

/* Lays out connections and sessions: session i on connection i % C
   (dgram), i / M (idle). */
static int layout(bench *b) {
  const opts *o = &b->o;
  switch (o->mode) {
  case M_DGRAM:
    b->nconns = o->conns;
    b->nsess = o->sessions;
    break;
  case M_STREAM:
    b->nconns = b->nsess = 1;
    break;
  case M_DOWNLOAD:
    b->nconns = 1;
    break;
  case M_GET:
    b->nconns = o->conns;
    break;
  case M_HANDSHAKE:
    b->nconns = o->inflight;
    break;
  case M_IDLE:
  case M_CHMEM:
    b->nsess = (uint32_t)o->count;
    b->nconns = (b->nsess + o->per_conn - 1) / o->per_conn;
    break;
  case M_FANOUT: /* the subscribers, then the publisher on its own */
    b->nsess = (uint32_t)o->count + 1;
    b->nconns = ((uint32_t)o->count + o->per_conn - 1) / o->per_conn + 1;
    break;
  }
  b->conns = calloc(b->nconns, sizeof(*b->conns));
  b->sess = calloc(b->nsess ? b->nsess : 1, sizeof(*b->sess));
  if (!b->conns || !b->sess) {
    return -1;
  }
  for (uint32_t i = 0; i < b->nconns; ++i) {
    bconn *c = &b->conns[i];
    c->b = b;
    c->idx = i;
    if (o->mode == M_GET || o->mode == M_DOWNLOAD) {
      uint32_t n = o->mode == M_GET ? o->requests : 1;
      c->reqs = calloc(n, sizeof(*c->reqs));
      if (!c->reqs) {
        return -1;
      }
      for (uint32_t k = 0; k < n; ++k) {
        c->reqs[k].c = c;
      }
    }
  }
  /* Sessions are grouped by connection: first_sess .. + nsess. */
  if (o->mode == M_DGRAM) {
    for (uint32_t i = 0; i < b->nconns; ++i) {
      bconn *c = &b->conns[i];
      c->first_sess = i * (b->nsess / b->nconns) +
                      (i < b->nsess % b->nconns ? i : b->nsess % b->nconns);
      c->nsess = b->nsess / b->nconns + (i < b->nsess % b->nconns);
    }
  } else if (o->mode == M_STREAM) {
    b->conns[0].nsess = 1;
  } else if (o->mode == M_IDLE || o->mode == M_FANOUT ||
             o->mode == M_CHMEM) {
    uint32_t nsubs = o->mode == M_FANOUT ? b->nsess - 1 : b->nsess;
    uint32_t nc = o->mode == M_FANOUT ? b->nconns - 1 : b->nconns;
    for (uint32_t i = 0; i < nc; ++i) {
      bconn *c = &b->conns[i];
      c->first_sess = i * o->per_conn;
      c->nsess = nsubs - c->first_sess < o->per_conn
                     ? nsubs - c->first_sess
                     : o->per_conn;
    }
    if (o->mode == M_FANOUT) {
      b->conns[nc].first_sess = nsubs;
      b->conns[nc].nsess = 1;
    }
  }
  for (uint32_t i = 0; i < b->nconns; ++i) {
    for (uint32_t k = 0; k < b->conns[i].nsess; ++k) {
      bsess *ss = &b->sess[b->conns[i].first_sess + k];
      ss->c = &b->conns[i];
      ss->idx = b->conns[i].first_sess + k;
      if (o->mode == M_DGRAM) {
        ss->slots = calloc(o->window, sizeof(*ss->slots));
        if (!ss->slots) {
          return -1;
        }
      }
      if (o->mode == M_FANOUT || o->mode == M_CHMEM) {
        ss->parser = malloc(sizeof(*ss->parser));
        if (!ss->parser) {
          return -1;
        }
        h3wt_ch_parser_init(ss->parser, H3WT_CH_MAX_FRAME_DEFAULT);
        ss->is_pub = ss->idx == b->nsess - 1;
      }
    }
  }
  return 0;
}

static int start(bench *b) {
  const opts *o = &b->o;
  switch (o->mode) {
  case M_DGRAM:
  case M_STREAM:
    for (uint32_t i = 0; i < b->nconns; ++i) {
      if (conn_open(&b->conns[i]) != 0 ||
          conn_open_sessions(&b->conns[i]) != 0) {
        return -1;
      }
    }
    break;
  case M_DOWNLOAD:
  case M_GET:
    for (uint32_t i = 0; i < b->nconns; ++i) {
      if (conn_open(&b->conns[i]) != 0) {
        return -1;
      }
    }
    break;
  case M_HANDSHAKE:
    begin_warmup(b);
    for (uint32_t i = 0; i < b->nconns; ++i) {
      hs_start(&b->conns[i]);
    }
    break;
  case M_IDLE:
    b->rss_before = o->server_pid > 0 ? bench_proc_rss_kib(o->server_pid)
                                      : -1;
    b->phase = P_MEASURE;
    bench_snap_take(&b->a, o->server_pid);
    idle_dial(b);
    break;
  case M_FANOUT:
    fo_dial(b);
    break;
  case M_CHMEM:
    b->cm_rss[0] = o->server_pid > 0 ? bench_proc_rss_kib(o->server_pid) : -1;
    cm_begin(b, CM_OPEN);
    fo_dial(b);
    break;
  }
  return 0;
}

int main(int argc, char **argv) {
  static bench bb;
  bench *b = &bb;
  int rv;

  if (parse_args(argc, argv, &b->o) != 0) {
    usage(stderr);
    return 2;
  }
  memset(b->buf, 0x5a, sizeof(b->buf));
  b->rss_before = b->rss_after = -1;
  b->a.server_cpu_us = b->z.server_cpu_us = -1;
  h3wt_client_settings_default(&b->cs);
  b->cs.host = b->o.host;
  b->cs.port = b->o.port;
  b->cs.insecure = 1;
  b->cs.log_cb = h3wt_log_stderr;
  b->cs.log_level = b->o.verbose ? H3WT_LOG_WARN : H3WT_LOG_ERROR;
  b->cs.idle_timeout_ms = (uint64_t)(b->o.timeout * 1000) + 10000;
  if (layout(b) != 0) {
    fprintf(stderr, "h3wt-bench: out of memory\n");
    return 1;
  }
  b->loop = uv_default_loop();
  uv_timer_init(b->loop, &b->tick);
  uv_timer_init(b->loop, &b->timer);
  uv_timer_init(b->loop, &b->deadline);
  uv_check_init(b->loop, &b->reaper);
  uv_timer_init(b->loop, &b->wake);
  b->tick.data = b->timer.data = b->deadline.data = b->reaper.data = b;
  b->wake.data = b;
  uv_check_start(&b->reaper, reaper_cb);
  uv_timer_start(&b->deadline, deadline_cb, (uint64_t)(b->o.timeout * 1000),
                 0);
  if (b->o.mode == M_DGRAM) {
    uv_timer_start(&b->tick, tick_cb, TICK_MS, TICK_MS);
  } else if (b->o.mode == M_FANOUT) {
    uv_timer_start(&b->tick, tick_cb, FO_TICK_MS, FO_TICK_MS);
  } else if (b->o.mode == M_CHMEM) {
    uv_timer_start(&b->tick, tick_cb, CM_TICK_MS, CM_TICK_MS);
  }
  if (start(b) != 0) {
    finish(b);
  }
  uv_run(b->loop, UV_RUN_DEFAULT);
  final_checks(b);
  report(b);
  rv = uv_loop_close(b->loop);
  if (rv != 0) {
    fprintf(stderr, "h3wt-bench: loop not empty at exit: %s\n",
            uv_strerror(rv));
  }
  for (uint32_t i = 0; i < b->nsess; ++i) {
    free(b->sess[i].slots);
    if (b->sess[i].parser) {
      h3wt_ch_parser_free(b->sess[i].parser);
      free(b->sess[i].parser);
    }
  }
  for (uint32_t i = 0; i < b->nconns; ++i) {
    free(b->conns[i].reqs);
  }
  free(b->sess);
  free(b->conns);
  free(b->dead);
  free(b->dead_iter);
  /* A reliable fan-out that lost or reordered a message is a failure
     whatever its figures. */
  return b->errors || b->timed_out || b->ops == 0 || b->violations ? 1 : 0;
}
