/*
 * Channels end to end: a hub on a real server, clients on real sessions
 * over loopback speaking docs/channels.md with the codec (h3wt_chproto):
 * subscribe, reliable publish in order with offsets, presence, unreliable
 * publish by datagram, the permission hook, an unknown command, recovery
 * after a reconnect (recovered and not), a publication from C, members,
 * and a malformed frame closing only its own session; history on join
 * (in order, the limit respected and capped, recovery first); two hubs on
 * two threads sharing a memory broker (one channel across them: order,
 * presence, recovery, datagrams).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_chproto.h"
#include "h3wt_test.h"
#include "loop_cert.h"

#define NCL 5
#define NEV 64

typedef struct cl {
  h3wt_client *c;
  h3wt_session *s;
  h3wt_stream *st;
  h3wt_ch_parser parser;
  uint16_t port; /* 0: T.server's */
  int ready, closed;
  uint32_t close_code;
  char ev[NEV][128]; /* what arrived, one line each */
  int nev;
} cl;

static struct {
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_channels *hub;
  cl c[NCL];
  int step;
  int done, server_closed;
  uv_timer_t tick, guard;
  int timed_out;
  int joins, leaves, publishes_seen;
  uint64_t epoch;   /* of "room", from A's SUBSCRIBED */
  uint64_t c_off;   /* offset of the publication from C */
  size_t members;
} T;

static void ev(cl *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ev(cl *k, const char *fmt, ...) {
  va_list ap;
  if (k->nev >= NEV) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(k->ev[k->nev++], sizeof(k->ev[0]), fmt, ap);
  va_end(ap);
}

static int has(const cl *k, const char *line) {
  for (int i = 0; i < k->nev; ++i) {
    if (strcmp(k->ev[i], line) == 0) {
      return i + 1;
    }
  }
  return 0;
}

/* ---- hub hooks -------------------------------------------------------------- */

static int hub_subscribe(h3wt_channels *hub, h3wt_session *s,
                         const char *channel, void *ud) {
  return strcmp(channel, "secret") == 0 ? H3WT_CHANNELS_FORBIDDEN : 0;
}
static int hub_publish(h3wt_channels *hub, h3wt_session *s,
                       const char *channel, const uint8_t *data, size_t len,
                       int reliable, void *ud) {
  ++T.publishes_seen;
  return len == 6 && memcmp(data, "banned", 6) == 0 ? H3WT_CHANNELS_FORBIDDEN
                                                    : 0;
}
static void hub_join(h3wt_channels *hub, const char *channel, h3wt_session *s,
                     void *ud) {
  ++T.joins;
}
static void hub_leave(h3wt_channels *hub, const char *channel,
                      h3wt_session *s, void *ud) {
  ++T.leaves;
}
static const h3wt_channels_handler hub_handler = {
    .on_subscribe = hub_subscribe,
    .on_publish = hub_publish,
    .on_join = hub_join,
    .on_leave = hub_leave};

/* ---- the clients ------------------------------------------------------------ */

static int on_frame(uint64_t type, const uint8_t *p, size_t len, void *ud) {
  cl *k = ud;
  switch (type) {
  case H3WT_CH_SUBSCRIBED: {
    h3wt_ch_subscribed f;
    CHECK_EQ_INT(h3wt_ch_decode_subscribed(p, len, &f), 0);
    ev(k, "SUBSCRIBED req=%" PRIu64 " %.*s sub=%" PRIu64 " rec=%d off=%" PRIu64
          " missed=%" PRIu64,
       f.req, (int)f.namelen, f.name, f.sub, f.recovered, f.offset,
       f.missed);
    if (k == &T.c[0] && (f.namelen == 4 || f.namelen == 1)) { /* room, h */
      T.epoch = f.epoch;
    }
    break;
  }
  case H3WT_CH_PUBLISHED: {
    h3wt_ch_published f;
    CHECK_EQ_INT(h3wt_ch_decode_published(p, len, &f), 0);
    CHECK(f.epoch == T.epoch);
    ev(k, "PUBLISHED req=%" PRIu64 " off=%" PRIu64, f.req, f.offset);
    break;
  }
  case H3WT_CH_MESSAGE: {
    h3wt_ch_message f;
    CHECK_EQ_INT(h3wt_ch_decode_message(p, len, &f), 0);
    ev(k, "MESSAGE sub=%" PRIu64 " off=%" PRIu64 " %.*s", f.sub, f.offset,
       (int)f.datalen, f.data);
    break;
  }
  case H3WT_CH_JOIN:
  case H3WT_CH_LEAVE: {
    h3wt_ch_member_event f;
    CHECK_EQ_INT(type == H3WT_CH_JOIN ? h3wt_ch_decode_join(p, len, &f)
                                      : h3wt_ch_decode_leave(p, len, &f),
                 0);
    ev(k, "%s sub=%" PRIu64, type == H3WT_CH_JOIN ? "JOIN" : "LEAVE", f.sub);
    break;
  }
  case H3WT_CH_MEMBERS: {
    h3wt_ch_members f;
    CHECK_EQ_INT(h3wt_ch_decode_members(p, len, &f), 0);
    ev(k, "MEMBERS req=%" PRIu64 " count=%" PRIu64, f.req, f.count);
    break;
  }
  case H3WT_CH_ERROR: {
    h3wt_ch_error f;
    CHECK_EQ_INT(h3wt_ch_decode_error(p, len, &f), 0);
    ev(k, "ERROR req=%" PRIu64 " code=%" PRIu64, f.req, f.code);
    break;
  }
  case H3WT_CH_UNSUBSCRIBED: {
    h3wt_ch_unsubscribed f;
    CHECK_EQ_INT(h3wt_ch_decode_unsubscribed(p, len, &f), 0);
    ev(k, "UNSUBSCRIBED req=%" PRIu64 " sub=%" PRIu64 " code=%" PRIu64,
       f.req, f.sub, f.code);
    break;
  }
  default:
    ev(k, "type %" PRIu64, type);
  }
  return 0;
}

static void c_ready(h3wt_session *s, void *rd) {
  cl *k = rd;
  k->ready = 1;
  CHECK_EQ_INT(h3wt_session_open_stream(s, 1, &k->st), 0);
}
static void c_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                   void *rd) {
  cl *k = rd;
  CHECK_EQ_INT(h3wt_ch_parse(&k->parser, d, n, on_frame, k), 0);
}
static void c_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  cl *k = rd;
  uint64_t type, sub;
  const uint8_t *data;
  size_t len;
  CHECK_EQ_INT(h3wt_ch_decode_dgram(d, n, &type, &sub, &data, &len), 0);
  ev(k, "DGRAM sub=%" PRIu64 " %.*s", sub, (int)len, data);
}
static void c_close(h3wt_session *s, int err, uint32_t code,
                    const char *reason, size_t rl, void *rd) {
  cl *k = rd;
  k->closed = 1;
  k->close_code = code;
  k->s = NULL;
  k->st = NULL;
}
static const h3wt_session_handler c_handler = {
    .on_session_ready = c_ready,
    .on_stream_data = c_data,
    .on_datagram = c_dgram,
    .on_session_close = c_close};

static void c_closed(h3wt_client *c, int err, void *ud) {
}

static void open_client_with(int i, const h3wt_session_handler *h) {
  cl *k = &T.c[i];
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, c_closed};
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = k->port ? k->port : h3wt_server_port(T.server);
  cs.insecure = 1;
  h3wt_ch_parser_init(&k->parser, 1 << 20);
  CHECK_EQ_INT(h3wt_client_new(&k->c, &T.loop, &cs, &cbs, NULL), 0);
  CHECK_EQ_INT(h3wt_client_webtransport(k->c, "/ch", NULL, NULL, 0, h, k,
                                        &k->s),
               0);
}

static void open_client(int i) {
  open_client_with(i, &c_handler);
}

static void send_frame(cl *k, const uint8_t *f, size_t n) {
  CHECK(n > 0);
  CHECK_EQ_INT(h3wt_stream_write(k->st, f, n), 0);
}

static void subscribe(cl *k, uint64_t req, const char *ch, int recover,
                      uint64_t epoch, uint64_t off) {
  uint8_t f[300];
  send_frame(k, f,
             h3wt_ch_encode_subscribe(f, sizeof(f), req, (const uint8_t *)ch,
                                      strlen(ch), recover ? 1 : 0, epoch,
                                      off));
}

/* SUBSCRIBE with any flags: epoch/off with the recover bit, limit with
   the history bit. */
static void subscribe_ex(cl *k, uint64_t req, const char *ch, uint64_t flags,
                         uint64_t epoch, uint64_t off, uint64_t limit) {
  uint8_t f[300];
  send_frame(k, f,
             h3wt_ch_encode_subscribe_ex(f, sizeof(f), req, (const uint8_t *)ch,
                                         strlen(ch), flags, epoch, off, limit));
}

static void publish(cl *k, uint64_t req, const char *ch, const char *text) {
  uint8_t f[300];
  send_frame(k, f,
             h3wt_ch_encode_publish(f, sizeof(f), req, (const uint8_t *)ch,
                                    strlen(ch), (const uint8_t *)text,
                                    strlen(text)));
}

static void presence_request(cl *k, uint64_t req, const char *ch) {
  uint8_t f[300];
  send_frame(k, f,
             h3wt_ch_encode_presence(f, sizeof(f), req, (const uint8_t *)ch,
                                     strlen(ch)));
}

/* ---- the script ------------------------------------------------------------- */

static void finish(void) {
  if (T.done) {
    return;
  }
  T.done = 1;
  uv_timer_stop(&T.tick);
  uv_timer_stop(&T.guard);
  for (int i = 0; i < NCL; ++i) {
    if (T.c[i].c) {
      h3wt_client_close(T.c[i].c);
    }
  }
  h3wt_server_close(T.server, NULL, NULL);
}

static void step(uv_timer_t *t) {
  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2], *D = &T.c[3], *E = &T.c[4];
  switch (T.step) {
  case 0: /* A and B connected: both subscribe to "room" */
    if (!A->st || !B->st) {
      return;
    }
    subscribe(A, 1, "room", 0, 0, 0);
    subscribe(B, 1, "room", 0, 0, 0);
    T.step = 1;
    return;
  case 1:
    if (!has(A, "SUBSCRIBED req=1 room sub=1 rec=0 off=0 missed=0") ||
        !has(B, "SUBSCRIBED req=1 room sub=1 rec=0 off=0 missed=0")) {
      return;
    }
    publish(A, 2, "room", "m1");
    publish(A, 3, "room", "m2");
    publish(A, 4, "room", "m3");
    publish(A, 5, "room", "banned"); /* the hook refuses it */
    subscribe(A, 6, "secret", 0, 0, 0); /* the hook refuses it */
    T.step = 2;
    return;
  case 2:
    if (!has(B, "MESSAGE sub=1 off=3 m3") || !has(A, "ERROR req=6 code=3")) {
      return;
    }
    /* B: an unreliable publication by datagram, to its subscription 1. */
    {
      uint8_t d[32];
      size_t n = h3wt_ch_encode_dgram_head(d, sizeof(d), H3WT_CH_DGRAM_PUBLISH,
                                           1);
      memcpy(d + n, "pos", 3);
      CHECK_EQ_INT(h3wt_session_send_datagram(B->s, d, n + 3), 0);
    }
    T.step = 3;
    return;
  case 3:
    if (!has(A, "DGRAM sub=1 pos")) {
      /* datagrams may be lost: send again */
      uint8_t d[32];
      size_t n = h3wt_ch_encode_dgram_head(d, sizeof(d), H3WT_CH_DGRAM_PUBLISH,
                                           1);
      memcpy(d + n, "pos", 3);
      h3wt_session_send_datagram(B->s, d, n + 3);
      return;
    }
    /* B leaves (closes its session); A publishes two more. */
    h3wt_session_close(B->s, 0, "bye");
    T.step = 4;
    return;
  case 4:
    if (!B->closed || !has(A, "LEAVE sub=1")) {
      return;
    }
    publish(A, 7, "room", "m4");
    publish(A, 8, "room", "m5");
    open_client(2);
    open_client(3);
    T.step = 5;
    return;
  case 5:
    if (!has(A, "PUBLISHED req=8 off=5") || !C->st || !D->st) {
      return;
    }
    /* C saw up to 3 (as B did): recovered, 4 and 5 follow.  D names
       another epoch: not recovered. */
    subscribe(C, 1, "room", 1, T.epoch, 3);
    subscribe(D, 1, "room", 1, T.epoch ^ 1, 3);
    T.step = 6;
    return;
  case 6:
    if (!has(C, "MESSAGE sub=1 off=5 m5") ||
        !has(D, "SUBSCRIBED req=1 room sub=1 rec=0 off=5 missed=0")) {
      return;
    }
    /* From C code on the loop: everyone in "room" hears it. */
    CHECK_EQ_INT(h3wt_channels_publish(T.hub, "room", "from-c", 6, 1,
                                       &T.c_off),
                 0);
    T.members = h3wt_channels_members(T.hub, "room", NULL, NULL);
    open_client(4);
    T.step = 7;
    return;
  case 7:
    if (!has(D, "MESSAGE sub=1 off=6 from-c") || !E->st) {
      return;
    }
    /* E sends a SUBSCRIBE cut short: a protocol error closes E only. */
    {
      uint8_t bad[4] = {H3WT_CH_SUBSCRIBE, 2, 1, 9};
      send_frame(E, bad, sizeof(bad));
    }
    /* And A an unknown command, answered and skipped. */
    {
      uint8_t unk[3] = {0x30, 1, 0};
      send_frame(A, unk, sizeof(unk));
    }
    T.step = 8;
    return;
  case 8:
    if (!E->closed || !has(A, "ERROR req=0 code=2")) {
      return;
    }
    finish();
    return;
  }
}

static void guard_cb(uv_timer_t *t) {
  T.timed_out = 1;
  finish();
}

/* ---- the fixture: a server with a hub, clients, a tick and a watchdog ------ */

static char fx_dir[64], fx_cert[256], fx_key[256];
static const h3wt_channels_settings *fx_hub_settings; /* NULL: defaults */

static void guard_cb(uv_timer_t *t);

/* A fresh loop, server and hub on /ch, the step timer every 5 ms and a
   watchdog at guard_ms. */
static void fx_start(const h3wt_channels_handler *handler,
                     void (*stepfn)(uv_timer_t *), uint64_t guard_ms) {
  h3wt_server_settings ss;
  memset(&T, 0, sizeof(T));
  snprintf(fx_dir, sizeof(fx_dir), "/tmp/h3wt-ch-XXXXXX");
  CHECK_EQ_INT(loop_devcert(fx_dir, fx_cert, sizeof(fx_cert), fx_key,
                            sizeof(fx_key)),
               0);
  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = fx_cert;
  ss.key_file = fx_key;
  ss.log_cb = getenv("H3WT_TEST_VERBOSE") ? h3wt_log_stderr : NULL;
  ss.log_level = H3WT_LOG_DEBUG;
  CHECK_EQ_INT(h3wt_server_new(&T.server, &T.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_channels_new(&T.hub, T.server, "/ch", fx_hub_settings,
                                 handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(T.server), 0);
  uv_timer_init(&T.loop, &T.tick);
  uv_timer_start(&T.tick, stepfn, 5, 5);
  uv_timer_init(&T.loop, &T.guard);
  uv_timer_start(&T.guard, guard_cb, guard_ms, 0);
}

/* After the run: every handle closed, everything freed, the loop empty. */
static void fx_end(void) {
  uv_close((uv_handle_t *)&T.tick, NULL);
  uv_close((uv_handle_t *)&T.guard, NULL);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  h3wt_channels_del(T.hub);
  for (int i = 0; i < NCL; ++i) {
    if (T.c[i].c) {
      h3wt_client_del(T.c[i].c);
      h3wt_ch_parser_free(&T.c[i].parser);
    }
  }
  uv_run(&T.loop, UV_RUN_DEFAULT);
  h3wt_server_del(T.server);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  loop_devcert_remove(fx_dir, fx_cert, fx_key);
}

TEST(channels_end_to_end) {
  fx_start(&hub_handler, step, 10000);
  open_client(0);
  open_client(1);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2], *E = &T.c[4];
  TEST_CONTEXT("step %d", T.step);
  CHECK(!T.timed_out);
  CHECK_EQ_INT(T.step, 8);
  /* Reliable: in order, offsets from 1, the publisher told each. */
  CHECK(has(B, "MESSAGE sub=1 off=1 m1") < has(B, "MESSAGE sub=1 off=2 m2"));
  CHECK(has(B, "MESSAGE sub=1 off=2 m2") < has(B, "MESSAGE sub=1 off=3 m3"));
  CHECK(has(A, "PUBLISHED req=2 off=1"));
  CHECK(has(A, "PUBLISHED req=4 off=3"));
  CHECK(has(A, "ERROR req=5 code=3")); /* the hook's "banned" */
  CHECK(!has(B, "MESSAGE sub=1 off=4 banned"));
  /* Presence: B joined after A; A heard B's join and leave. */
  CHECK(has(A, "JOIN sub=1"));
  CHECK(has(A, "LEAVE sub=1"));
  /* Recovery: C got 4 and 5, told first how many. */
  CHECK(has(C, "SUBSCRIBED req=1 room sub=1 rec=1 off=5 missed=2"));
  CHECK(has(C, "MESSAGE sub=1 off=4 m4") < has(C, "MESSAGE sub=1 off=5 m5"));
  CHECK(!has(C, "MESSAGE sub=1 off=3 m3"));
  CHECK_EQ_INT((int)T.c_off, 6);
  CHECK_EQ_INT((int)T.members, 3); /* A, C, D */
  /* The malformed frame closed E with the channels' code, nobody else. */
  CHECK_EQ_INT((int)E->close_code, 0x4348);
  CHECK(!A->closed || T.done);

  h3wt_channels_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_CHANNELS_STATS_V1;
  CHECK_EQ_INT(h3wt_channels_get_stats(T.hub, &st), 0);
  CHECK_EQ_INT((int)st.recoveries, 1);
  CHECK_EQ_INT((int)st.recoveries_failed, 1);
  CHECK_EQ_INT((int)st.protocol_errors, 1);
  CHECK_EQ_INT((int)st.refused_subscribe, 1);
  CHECK_EQ_INT((int)st.refused_publish, 1);
  CHECK(st.deliveries_unreliable >= 1);
  fx_end();
}

/* ---- presence events stop above presence_events_max ------------------------ */

static void cap_step(uv_timer_t *t) {
  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2];
  switch (T.step) {
  case 0: /* one at a time, so that who hears whose join is known */
    if (A->st && B->st && C->st) {
      subscribe(A, 1, "room", 0, 0, 0);
      T.step = 1;
    }
    return;
  case 1:
  case 2:
  case 3:
    if (has(&T.c[T.step - 1], "SUBSCRIBED req=1 room sub=1 rec=0 off=0 missed=0")) {
      if (T.step < 3) {
        subscribe(&T.c[T.step], 1, "room", 0, 0, 0);
      } else {
        publish(C, 2, "room", "after"); /* ordered after any presence */
      }
      ++T.step;
    }
    return;
  case 4:
    if (has(A, "MESSAGE sub=1 off=1 after") && has(B, "MESSAGE sub=1 off=1 after")) {
      finish();
    }
    return;
  }
}

TEST(presence_events_capped) {
  h3wt_channels_settings hs;
  h3wt_channels_settings_default(&hs);
  hs.presence_events_max = 2;
  fx_hub_settings = &hs;
  fx_start(&hub_handler, cap_step, 10000);
  fx_hub_settings = NULL;
  open_client(0);
  open_client(1);
  open_client(2);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2];
  TEST_CONTEXT("step %d", T.step);
  CHECK(!T.timed_out);
  /* Two members: B's join reaches A (and B its own).  The third makes
     three: C's join goes to nobody, not even C. */
  CHECK(has(A, "JOIN sub=1"));
  int joins_a = 0, joins_c = 0;
  for (int i = 0; i < A->nev; ++i) {
    joins_a += strcmp(A->ev[i], "JOIN sub=1") == 0;
  }
  for (int i = 0; i < C->nev; ++i) {
    joins_c += strcmp(C->ev[i], "JOIN sub=1") == 0;
  }
  CHECK_EQ_INT(joins_a, 2); /* its own and B's, not C's */
  CHECK_EQ_INT(joins_c, 0);
  CHECK(has(B, "MESSAGE sub=1 off=1 after"));
  CHECK_EQ_INT(T.joins, 3); /* the hook runs at any size */
  h3wt_channels_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_CHANNELS_STATS_V1;
  CHECK_EQ_INT(h3wt_channels_get_stats(T.hub, &st), 0);
  CHECK_EQ_INT((int)st.presence_skipped, 1);
  fx_end();
}

/* ---- history on join ----------------------------------------------------------
 * A hub keeping 4 messages; A publishes 6 to "h" (3..6 kept), then:
 *   B  history 2                   -> rec=0 missed=2: 5, 6
 *   C  history 100 (capped to 4)   -> rec=0 missed=4: 3..6
 *   D  recover from 5 + history 3  -> rec=1 missed=1: 6 (recovery wins)
 *   E  recover, other epoch + h. 3 -> rec=0 missed=3: 4..6
 *   A  history 5 of an empty channel -> missed=0
 * then B sends a SUBSCRIBE with an unknown flag bit: B is closed (BAD_FRAME)
 * and the others go on. */

static void hist_step(uv_timer_t *t) {
  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2], *D = &T.c[3], *E = &T.c[4];
  char line[64];
  switch (T.step) {
  case 0:
    if (!A->st) {
      return;
    }
    subscribe(A, 1, "h", 0, 0, 0);
    T.step = 1;
    return;
  case 1:
    if (!has(A, "SUBSCRIBED req=1 h sub=1 rec=0 off=0 missed=0")) {
      return;
    }
    for (int i = 1; i <= 6; ++i) {
      snprintf(line, sizeof(line), "h%d", i);
      publish(A, (uint64_t)(1 + i), "h", line);
    }
    for (int i = 1; i < NCL; ++i) {
      open_client(i);
    }
    T.step = 2;
    return;
  case 2:
    if (!has(A, "PUBLISHED req=7 off=6") || !B->st || !C->st || !D->st ||
        !E->st) {
      return;
    }
    subscribe_ex(B, 1, "h", H3WT_CH_FLAG_HISTORY, 0, 0, 2);
    subscribe_ex(C, 1, "h", H3WT_CH_FLAG_HISTORY, 0, 0, 100);
    subscribe_ex(D, 1, "h", H3WT_CH_FLAG_RECOVER | H3WT_CH_FLAG_HISTORY,
                 T.epoch, 5, 3);
    subscribe_ex(E, 1, "h", H3WT_CH_FLAG_RECOVER | H3WT_CH_FLAG_HISTORY,
                 T.epoch ^ 1, 5, 3);
    subscribe_ex(A, 8, "empty", H3WT_CH_FLAG_HISTORY, 0, 0, 5);
    T.step = 3;
    return;
  case 3:
    if (!has(B, "MESSAGE sub=1 off=6 h6") ||
        !has(C, "MESSAGE sub=1 off=6 h6") ||
        !has(D, "MESSAGE sub=1 off=6 h6") ||
        !has(E, "MESSAGE sub=1 off=6 h6") ||
        !has(A, "SUBSCRIBED req=8 empty sub=2 rec=0 off=0 missed=0")) {
      return;
    }
    /* Flags 0x04: a bit this draft lacks. */
    subscribe_ex(B, 2, "other", 0x04, 0, 0, 0);
    T.step = 4;
    return;
  case 4:
    if (!B->closed) {
      return;
    }
    /* The others still work: A publishes, C hears it live. */
    publish(A, 9, "h", "h7");
    T.step = 5;
    return;
  case 5:
    if (!has(C, "MESSAGE sub=1 off=7 h7")) {
      return;
    }
    finish();
    return;
  }
}

static void check_messages(const cl *k, int from, int to) {
  char line[64];
  int prev = 0;
  for (int i = 0; i < k->nev && !prev; ++i) {
    prev = strncmp(k->ev[i], "SUBSCRIBED req=1 h ", 19) == 0 ? i + 1 : 0;
  }
  CHECK(prev);
  for (int i = 1; i <= 7; ++i) {
    snprintf(line, sizeof(line), "MESSAGE sub=1 off=%d h%d", i, i);
    TEST_CONTEXT("%s", line);
    int at = has(k, line);
    if (i < from) {
      CHECK(!at);
    } else if (i <= to) {
      CHECK(at > prev); /* after SUBSCRIBED and the one before */
      prev = at;
    }
  }
}

TEST(history_on_join_in_order_limited_recovery_first) {
  h3wt_channels_settings chs;
  h3wt_channels_settings_default(&chs);
  chs.history_size = 4;
  fx_hub_settings = &chs;
  fx_start(NULL, hist_step, 10000);
  fx_hub_settings = NULL;
  open_client(0);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  cl *B = &T.c[1], *C = &T.c[2], *D = &T.c[3], *E = &T.c[4];
  TEST_CONTEXT("step %d", T.step);
  CHECK(!T.timed_out);
  CHECK_EQ_INT(T.step, 5);
  CHECK(has(B, "SUBSCRIBED req=1 h sub=1 rec=0 off=6 missed=2"));
  CHECK(has(C, "SUBSCRIBED req=1 h sub=1 rec=0 off=6 missed=4"));
  CHECK(has(D, "SUBSCRIBED req=1 h sub=1 rec=1 off=6 missed=1"));
  CHECK(has(E, "SUBSCRIBED req=1 h sub=1 rec=0 off=6 missed=3"));
  TEST_CONTEXT("%s", "B");
  check_messages(B, 5, 6);
  TEST_CONTEXT("%s", "C");
  check_messages(C, 3, 6);
  TEST_CONTEXT("%s", "D");
  check_messages(D, 6, 6);
  TEST_CONTEXT("%s", "E");
  check_messages(E, 4, 6);
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT((int)B->close_code, 0x4348);
  CHECK(!has(B, "SUBSCRIBED req=2 other sub=2 rec=0 off=0 missed=0"));

  h3wt_channels_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_CHANNELS_STATS_V1;
  CHECK_EQ_INT(h3wt_channels_get_stats(T.hub, &st), 0);
  CHECK_EQ_INT((int)st.recoveries, 1);
  CHECK_EQ_INT((int)st.recoveries_failed, 1);
  CHECK_EQ_INT((int)st.protocol_errors, 1);
  fx_end();
}

/* ---- a slow consumer is cut, the others keep receiving ---------------------- */

#define SLOW_MSGS 360 /* 5.6 MiB: past the client's 4 MiB stream window */
#define SLOW_SIZE (16 * 1024)

static struct {
  int phase;
  int sent;
  uint64_t r_next;      /* R: the next offset expected */
  int r_in_order;
  int s_cut;            /* S: UNSUBSCRIBED SLOW_CONSUMER seen */
  uint64_t s_last;      /* S: the last offset it got */
  int s_paused;
} SL;

static int slow_frame(uint64_t type, const uint8_t *p, size_t len, void *ud) {
  cl *k = ud;
  if (type == H3WT_CH_MESSAGE) {
    h3wt_ch_message f;
    CHECK_EQ_INT(h3wt_ch_decode_message(p, len, &f), 0);
    if (k == &T.c[0]) {
      if (f.offset != SL.r_next) {
        SL.r_in_order = 0;
      }
      SL.r_next = f.offset + 1;
    } else {
      SL.s_last = f.offset;
    }
  } else if (type == H3WT_CH_UNSUBSCRIBED) {
    h3wt_ch_unsubscribed f;
    CHECK_EQ_INT(h3wt_ch_decode_unsubscribed(p, len, &f), 0);
    if (k == &T.c[1] && f.code == 9 /* SLOW_CONSUMER */) {
      SL.s_cut = 1;
    }
  } else if (type == H3WT_CH_SUBSCRIBED) {
    ev(k, "SUBSCRIBED");
  }
  return 0;
}

static void slow_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                      void *rd) {
  cl *k = rd;
  CHECK_EQ_INT(h3wt_ch_parse(&k->parser, d, n, slow_frame, k), 0);
}

static const h3wt_session_handler slow_handler = {
    .on_session_ready = c_ready,
    .on_stream_data = slow_data,
    .on_session_close = c_close};

static void slow_step(uv_timer_t *t) {
  cl *R = &T.c[0], *S = &T.c[1];
  switch (SL.phase) {
  case 0:
    if (!R->st || !S->st) {
      return;
    }
    subscribe(R, 1, "feed", 0, 0, 0);
    subscribe(S, 1, "feed", 0, 0, 0);
    SL.phase = 1;
    return;
  case 1:
    if (!has(R, "SUBSCRIBED") || !has(S, "SUBSCRIBED")) {
      return;
    }
    /* S stops reading: its flow-control window fills, then its queue on
       the server. */
    CHECK_EQ_INT(h3wt_stream_pause_reading(S->st), 0);
    SL.s_paused = 1;
    SL.phase = 2;
    return;
  case 2: {
    /* A few messages a tick: R keeps up, S does not. */
    static uint8_t payload[SLOW_SIZE];
    for (int i = 0; i < 4 && SL.sent < SLOW_MSGS; ++i, ++SL.sent) {
      memset(payload, 'a' + SL.sent % 26, sizeof(payload));
      CHECK_EQ_INT(h3wt_channels_publish(T.hub, "feed", payload,
                                         sizeof(payload), 1, NULL),
                   0);
    }
    if (SL.sent == SLOW_MSGS) {
      CHECK_EQ_INT(h3wt_stream_resume_reading(S->st), 0);
      SL.phase = 3;
    }
    return;
  }
  case 3:
    if (SL.r_next == SLOW_MSGS + 1 && SL.s_cut) {
      finish();
    }
    return;
  }
}

TEST(slow_consumer_cut_others_served) {
  memset(&SL, 0, sizeof(SL));
  SL.r_next = 1;
  SL.r_in_order = 1;
  fx_start(NULL, slow_step, 15000);
  open_client_with(0, &slow_handler);
  open_client_with(1, &slow_handler);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  TEST_CONTEXT("phase %d, sent %d, R at %llu, S cut %d at %llu", SL.phase,
               SL.sent, (unsigned long long)SL.r_next, SL.s_cut,
               (unsigned long long)SL.s_last);
  CHECK(!T.timed_out);
  CHECK(SL.r_in_order);
  CHECK_EQ_INT((int)SL.r_next, SLOW_MSGS + 1); /* R: every one, in order */
  CHECK(SL.s_cut);                             /* S: told why */
  CHECK(SL.s_last < SLOW_MSGS);                /* S: cut short */
  h3wt_channels_stats st;
  memset(&st, 0, sizeof(st));
  st.version = H3WT_CHANNELS_STATS_V1;
  CHECK_EQ_INT(h3wt_channels_get_stats(T.hub, &st), 0);
  CHECK_EQ_INT((int)st.slow_consumers, 1);
  TEST_CONTEXT("%s", "");
  fx_end();
}

/* ---- every hub hook may call every closing and writing function ------------- */

enum { H_CONNECT, H_SUBSCRIBE, H_PUBLISH, H_JOIN, H_LEAVE, NHOOK };
enum {
  A_SERVER_CLOSE,
  A_SESSION_CLOSE,
  A_CLOSE_CONNECTION,
  A_UNSUBSCRIBE_SELF,
  A_SUBSCRIBE_OTHER,
  A_PUBLISH_RELIABLE,
  A_PUBLISH_UNRELIABLE,
  A_SERVER_SHUTDOWN,
  NACT
};
static const char *hook_names[NHOOK] = {"on_connect", "on_subscribe",
                                        "on_publish", "on_join", "on_leave"};
static const char *act_names[NACT] = {
    "server_close",       "session_close",      "close_connection",
    "unsubscribe_self",   "subscribe_other",    "publish_reliable",
    "publish_unreliable", "server_shutdown"};

static struct {
  int hook, act, acted, fired;
  int server_closed;
  int phase;
  uint64_t t0;
} HK;

static void hk_server_closed(h3wt_server *srv, void *ud) {
  HK.server_closed = 1;
}

/* The action of this case, from inside hook h (s: the session). */
static void hk_act(int h, h3wt_session *s) {
  ++HK.fired;
  if (h != HK.hook || HK.acted) {
    return;
  }
  HK.acted = 1;
  switch (HK.act) {
  case A_SERVER_CLOSE:
    h3wt_server_close(T.server, hk_server_closed, NULL);
    break;
  case A_SERVER_SHUTDOWN:
    h3wt_server_shutdown(T.server, 100, 7, "hook", hk_server_closed, NULL);
    break;
  case A_SESSION_CLOSE:
    h3wt_session_close(s, 7, "hook");
    break;
  case A_CLOSE_CONNECTION:
    h3wt_session_close_connection(s, 0x100, "hook");
    break;
  case A_UNSUBSCRIBE_SELF:
    h3wt_channels_unsubscribe(T.hub, s, "room");
    break;
  case A_SUBSCRIBE_OTHER:
    h3wt_channels_subscribe(T.hub, s, "other");
    break;
  case A_PUBLISH_RELIABLE:
    h3wt_channels_publish(T.hub, "room", "from-hook", 9, 1, NULL);
    break;
  case A_PUBLISH_UNRELIABLE:
    h3wt_channels_publish(T.hub, "room", "dg-hook", 7, 0, NULL);
    break;
  }
}

static int hk_connect(h3wt_channels *hub, h3wt_session *s, void *ud) {
  hk_act(H_CONNECT, s);
  return 200;
}
static int hk_subscribe(h3wt_channels *hub, h3wt_session *s, const char *ch,
                        void *ud) {
  hk_act(H_SUBSCRIBE, s);
  return 0;
}
static int hk_publish(h3wt_channels *hub, h3wt_session *s, const char *ch,
                      const uint8_t *d, size_t n, int reliable, void *ud) {
  hk_act(H_PUBLISH, s);
  return 0;
}
static void hk_join(h3wt_channels *hub, const char *ch, h3wt_session *s,
                    void *ud) {
  hk_act(H_JOIN, s);
}
static void hk_leave(h3wt_channels *hub, const char *ch, h3wt_session *s,
                     void *ud) {
  hk_act(H_LEAVE, s);
}
static const h3wt_channels_handler hk_handler = {
    .on_connect = hk_connect,
    .on_subscribe = hk_subscribe,
    .on_publish = hk_publish,
    .on_join = hk_join,
    .on_leave = hk_leave};

static void hk_step(uv_timer_t *t) {
  cl *A = &T.c[0];
  uint64_t now = uv_now(&T.loop);
  if (now - HK.t0 > 1500 || HK.server_closed) {
    finish(); /* every case ends here, whatever its action did */
    return;
  }
  switch (HK.phase) {
  case 0:
    if (A->st) {
      subscribe(A, 1, "room", 0, 0, 0);
      HK.phase = 1;
    }
    return;
  case 1:
    if (has(A, "SUBSCRIBED req=1 room sub=1 rec=0 off=0 missed=0") &&
        A->st) {
      publish(A, 2, "room", "x");
      uint8_t d[16];
      size_t n = h3wt_ch_encode_dgram_head(d, sizeof(d),
                                           H3WT_CH_DGRAM_PUBLISH, 1);
      d[n] = 'u';
      h3wt_session_send_datagram(A->s, d, n + 1);
      HK.phase = 2;
    }
    return;
  case 2:
    if (has(A, "PUBLISHED req=2 off=1") && A->s) {
      h3wt_session_close(A->s, 0, "done"); /* on_leave */
      HK.phase = 3;
    }
    return;
  case 3:
    if (A->closed && now - HK.t0 > 200) {
      finish();
    }
    return;
  }
}

static int run_hook_case(int hook, int act) {
  unsigned long failed_before = h3wt_test_failed_checks_;
  memset(&HK, 0, sizeof(HK));
  HK.hook = hook;
  HK.act = act;
  fx_start(&hk_handler, hk_step, 5000);
  open_client(0);
  HK.t0 = uv_now(&T.loop);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  CHECK(!T.timed_out);
  CHECK(HK.acted); /* the hook under test ran, and acted */
  fx_end();
  return h3wt_test_failed_checks_ == failed_before;
}

TEST(hooks_may_call_anything) {
  for (int h = 0; h < NHOOK; ++h) {
    for (int a = 0; a < NACT; ++a) {
      TEST_CONTEXT("%s.%s", hook_names[h], act_names[a]);
      int ok = run_hook_case(h, a);
      printf("  %s %s.%s\n", ok ? "ok  " : "FAIL", hook_names[h],
             act_names[a]);
    }
  }
  TEST_CONTEXT("%s", "");
}

/* ---- 1,000 subscribers over many connections --------------------------------- */

#define K_CONNS 63
#define K_PER 16 /* sessions per connection (the server's default limit) */
#define K_SUBS (K_CONNS * K_PER)
#define K_MSGS 20

typedef struct ksub {
  h3wt_session *s;
  h3wt_stream *st;
  h3wt_ch_parser parser;
  int subscribed;
  uint64_t next; /* the next offset expected */
  int bad;       /* out of order or twice */
} ksub;

static struct {
  h3wt_client *c[K_CONNS];
  ksub subs[K_SUBS];
  int nsubscribed, phase, sent;
} K;

static int k_frame(uint64_t type, const uint8_t *p, size_t len, void *ud) {
  ksub *k = ud;
  if (type == H3WT_CH_SUBSCRIBED) {
    k->subscribed = 1;
    ++K.nsubscribed;
  } else if (type == H3WT_CH_MESSAGE) {
    h3wt_ch_message f;
    if (h3wt_ch_decode_message(p, len, &f) != 0 || f.offset != k->next) {
      k->bad = 1;
    }
    k->next = f.offset + 1;
  }
  return 0;
}

static void k_ready(h3wt_session *s, void *rd) {
  ksub *k = rd;
  uint8_t f[64];
  CHECK_EQ_INT(h3wt_session_open_stream(s, 1, &k->st), 0);
  size_t n = h3wt_ch_encode_subscribe(f, sizeof(f), 1,
                                      (const uint8_t *)"big", 3, 0, 0, 0);
  CHECK_EQ_INT(h3wt_stream_write(k->st, f, n), 0);
}
static void k_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                   void *rd) {
  ksub *k = rd;
  CHECK_EQ_INT(h3wt_ch_parse(&k->parser, d, n, k_frame, k), 0);
}
static const h3wt_session_handler k_handler = {.on_session_ready = k_ready,
                                               .on_stream_data = k_data};

static void k_step(uv_timer_t *t) {
  if (K.phase == 0 && K.nsubscribed == K_SUBS) {
    K.phase = 1;
  }
  if (K.phase == 1) {
    /* Reliable publications from C, a few per tick. */
    for (int i = 0; i < 5 && K.sent < K_MSGS; ++i) {
      char text[16];
      int n = snprintf(text, sizeof(text), "m%d", K.sent + 1);
      CHECK_EQ_INT(h3wt_channels_publish(T.hub, "big", text, (size_t)n, 1,
                                         NULL),
                   0);
      ++K.sent;
    }
    if (K.sent == K_MSGS) {
      K.phase = 2;
    }
  }
  if (K.phase == 2) {
    for (int i = 0; i < K_SUBS; ++i) {
      if (K.subs[i].next != K_MSGS + 1) {
        return;
      }
    }
    finish();
  }
}

TEST(thousand_subscribers_every_message_once_in_order) {
  memset(&K, 0, sizeof(K));
  fx_start(NULL, k_step, 60000);
  for (int c = 0; c < K_CONNS; ++c) {
    h3wt_client_settings cs;
    h3wt_client_callbacks cbs = {NULL, c_closed};
    h3wt_client_settings_default(&cs);
    cs.host = "127.0.0.1";
    cs.port = h3wt_server_port(T.server);
    cs.insecure = 1;
    CHECK_EQ_INT(h3wt_client_new(&K.c[c], &T.loop, &cs, &cbs, NULL), 0);
    for (int j = 0; j < K_PER; ++j) {
      ksub *k = &K.subs[c * K_PER + j];
      k->next = 1;
      h3wt_ch_parser_init(&k->parser, 1 << 16);
      CHECK_EQ_INT(h3wt_client_webtransport(K.c[c], "/ch", NULL, NULL, 0,
                                            &k_handler, k, &k->s),
                   0);
    }
  }
  uv_run(&T.loop, UV_RUN_DEFAULT);
  int complete = 0, bad = 0;
  for (int i = 0; i < K_SUBS; ++i) {
    complete += K.subs[i].next == K_MSGS + 1;
    bad += K.subs[i].bad;
  }
  TEST_CONTEXT("%d subscribed, %d complete, %d out of order or twice",
               K.nsubscribed, complete, bad);
  CHECK(!T.timed_out);
  CHECK_EQ_INT(K.nsubscribed, K_SUBS);
  CHECK_EQ_INT(complete, K_SUBS);
  CHECK_EQ_INT(bad, 0);
  TEST_CONTEXT("%s", "");
  for (int c = 0; c < K_CONNS; ++c) {
    h3wt_client_del(K.c[c]); /* their memory goes in fx_end's loop run */
  }
  for (int i = 0; i < K_SUBS; ++i) {
    h3wt_ch_parser_free(&K.subs[i].parser);
  }
  fx_end();
}

/* ---- two hubs on two threads, one memory broker ------------------------- */

/* The second server, its hub and its loop, on a thread of their own (a
   worker).  Only the main thread checks: this one records what failed. */
static struct {
  uv_thread_t th;
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_channels *hub;
  uv_async_t stop;
  uv_sem_t ready;
  uint16_t port;
  int failed;
} W2;

static void w2_stop(uv_async_t *a) {
  h3wt_server_close(W2.server, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void w2_main(void *arg) {
  h3wt_server_settings ss;
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = fx_cert;
  ss.key_file = fx_key;
  W2.failed = uv_loop_init(&W2.loop) != 0 ||
              h3wt_server_new(&W2.server, &W2.loop, &ss) != 0 ||
              h3wt_channels_new(&W2.hub, W2.server, "/ch", fx_hub_settings,
                                NULL, NULL) != 0 ||
              h3wt_server_listen(W2.server) != 0 ||
              uv_async_init(&W2.loop, &W2.stop, w2_stop) != 0;
  W2.port = W2.failed ? 0 : h3wt_server_port(W2.server);
  uv_sem_post(&W2.ready);
  if (W2.failed) {
    return;
  }
  uv_run(&W2.loop, UV_RUN_DEFAULT);
  h3wt_channels_del(W2.hub);
  uv_run(&W2.loop, UV_RUN_DEFAULT);
  h3wt_server_del(W2.server);
  W2.failed |= uv_loop_close(&W2.loop) != 0;
}

/* The text of k's MESSAGE at offset off ("" if none). */
static const char *message_at(const cl *k, int off) {
  char head[64];
  int n = snprintf(head, sizeof(head), "MESSAGE sub=1 off=%d ", off);
  for (int i = 0; i < k->nev; ++i) {
    if (strncmp(k->ev[i], head, (size_t)n) == 0) {
      return k->ev[i] + n;
    }
  }
  return "";
}

static int count_prefix(const cl *k, const char *prefix) {
  int c = 0;
  for (int i = 0; i < k->nev; ++i) {
    c += strncmp(k->ev[i], prefix, strlen(prefix)) == 0;
  }
  return c;
}

static void shared_step(uv_timer_t *t) {
  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2];
  switch (T.step) {
  case 0: /* A on the first hub, B on the second */
    if (!A->st || !B->st) {
      return;
    }
    subscribe(A, 1, "room", 0, 0, 0);
    subscribe(B, 1, "room", 0, 0, 0);
    T.step = 1;
    return;
  case 1:
    if (!has(A, "SUBSCRIBED req=1 room sub=1 rec=0 off=0 missed=0") ||
        !count_prefix(B, "SUBSCRIBED req=1 room sub=1 rec=0")) {
      return;
    }
    publish(A, 2, "room", "a1");
    publish(B, 2, "room", "b1");
    publish(A, 3, "room", "a2");
    T.step = 2;
    return;
  case 2:
    if (count_prefix(A, "MESSAGE ") < 3 || count_prefix(B, "MESSAGE ") < 3) {
      return;
    }
    presence_request(A, 9, "room");
    T.step = 3;
    return;
  case 3:
    if (!count_prefix(A, "MEMBERS req=9")) {
      return;
    }
    h3wt_session_close(B->s, 0, "bye");
    T.step = 4;
    return;
  case 4:
    if (!B->closed || !has(A, "LEAVE sub=1")) {
      return;
    }
    C->port = W2.port;
    open_client(2);
    T.step = 5;
    return;
  case 5:
    if (!C->st) {
      return;
    }
    subscribe(C, 1, "room", 1, T.epoch, 1); /* saw offset 1 only */
    T.step = 6;
    return;
  case 6:
    if (!count_prefix(C, "MESSAGE sub=1 off=3 ")) {
      return;
    }
    T.step = 7;
    return;
  case 7: { /* C's datagram, again until A hears it */
    if (has(A, "DGRAM sub=1 pos")) {
      finish();
      uv_async_send(&W2.stop);
      return;
    }
    uint8_t d[32];
    size_t n = h3wt_ch_encode_dgram_head(d, sizeof(d), H3WT_CH_DGRAM_PUBLISH,
                                         1);
    memcpy(d + n, "pos", 3);
    h3wt_session_send_datagram(C->s, d, n + 3);
    return;
  }
  }
}

TEST(two_hubs_on_two_threads_share_a_memory_broker) {
  h3wt_broker *broker = NULL;
  h3wt_channels_settings hs;
  CHECK_EQ_INT(h3wt_broker_memory_new(&broker), 0);
  h3wt_channels_settings_default(&hs);
  hs.broker = broker;
  fx_hub_settings = &hs;
  fx_start(NULL, shared_step, 10000);
  memset(&W2, 0, sizeof(W2));
  CHECK_EQ_INT(uv_sem_init(&W2.ready, 0), 0);
  CHECK_EQ_INT(uv_thread_create(&W2.th, w2_main, NULL), 0);
  uv_sem_wait(&W2.ready);
  CHECK(!W2.failed);
  T.c[1].port = W2.port;
  open_client(0);
  open_client(1);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  if (T.timed_out) {
    uv_async_send(&W2.stop);
  }
  uv_thread_join(&W2.th);
  uv_sem_destroy(&W2.ready);

  cl *A = &T.c[0], *B = &T.c[1], *C = &T.c[2];
  TEST_CONTEXT("step %d", T.step);
  CHECK(!T.timed_out);
  CHECK(!W2.failed);
  /* One channel: offsets 1..3 from both hubs' publishers, the same
     message at each offset on both sides (and one epoch: on_frame checks
     every PUBLISHED against A's). */
  for (int off = 1; off <= 3; ++off) {
    TEST_CONTEXT("offset %d", off);
    CHECK(message_at(A, off)[0] != '\0');
    CHECK_EQ_STR(message_at(A, off), message_at(B, off));
  }
  TEST_CONTEXT("%s", "");
  CHECK(has(A, "PUBLISHED req=3 off=1") || has(A, "PUBLISHED req=3 off=2") ||
        has(A, "PUBLISHED req=3 off=3"));
  CHECK(has(A, "JOIN sub=1") || has(B, "JOIN sub=1")); /* the later one's */
  CHECK(has(A, "MEMBERS req=9 count=2")); /* A here, B there */
  /* C, on the second hub, recovers what it missed from the shared
     history. */
  CHECK(has(C, "SUBSCRIBED req=1 room sub=1 rec=1 off=3 missed=2"));
  CHECK_EQ_STR(message_at(C, 2), message_at(A, 2));
  CHECK_EQ_STR(message_at(C, 3), message_at(A, 3));
  CHECK(!count_prefix(C, "MESSAGE sub=1 off=1 "));
  fx_end();
  fx_hub_settings = NULL;
  h3wt_broker_del(broker);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(channels_end_to_end),
      TEST_ENTRY(history_on_join_in_order_limited_recovery_first),
      TEST_ENTRY(presence_events_capped),
      TEST_ENTRY(slow_consumer_cut_others_served),
      TEST_ENTRY(hooks_may_call_anything),
      TEST_ENTRY(thousand_subscribers_every_message_once_in_order),
      TEST_ENTRY(two_hubs_on_two_threads_share_a_memory_broker),
  };
  return TEST_MAIN(argc, argv, tests);
}
